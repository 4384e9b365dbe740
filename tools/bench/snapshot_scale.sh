#!/usr/bin/env bash
# Snapshot-store scale benchmark: compiles N routes (default 100,000) into a fresh database,
# starts mc-proxy on it, reloads it with SIGHUP, and reports each step's time as logged by the
# binaries themselves; then adds routes one by one through the admin API (CHANGES, default 10)
# and reports the median time of an add, the database's growth per add and the slowest
# /healthz answer meanwhile. Optimized build; loopback only; cleans up after itself.
#   tools/bench/snapshot_scale.sh [ROUTES [CHANGES]]
set -euo pipefail
cd "$(dirname "$0")/../.."
routes=${1:-100000}
changes=${2:-10}

bazel build --config=opt //source/exe:mc-proxy //source/exe:mcproxyctl >/dev/null 2>&1
work=$(mktemp -d)
cp bazel-bin/source/exe/mc-proxy bazel-bin/source/exe/mcproxyctl "$work/"
proxy_pid=""
cleanup() {
  [ -n "$proxy_pid" ] && kill -9 "$proxy_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

python3 - "$routes" >"$work/routes.textproto" <<'PY'
import sys
n = int(sys.argv[1])
print('listeners { name: "scale" address: "127.0.0.1:0"')
for i in range(n):
    print(f'  routes {{ hostname: "host{i}.scale.test" backend: "127.0.0.1:{10000 + i % 50000}" }}')
print('  routes { hostname: "*.wild.scale.test" backend: "127.0.0.1:9" } }')
PY

start=$(date +%s%N)
compile_out=$("$work/mcproxyctl" compile --config "$work/routes.textproto" --db "$work/scale.db")
compile_ms=$(( ($(date +%s%N) - start) / 1000000 ))

echo "admin { socket: \"$work/admin.sock\" http_address: \"127.0.0.1:0\" }" >"$work/admin.textproto"
"$work/mc-proxy" --db "$work/scale.db" --config "$work/admin.textproto" --workers "$(nproc)" \
  >"$work/proxy.log" 2>&1 &
proxy_pid=$!
for _ in $(seq 1 200); do grep -q "started" "$work/proxy.log" && break; sleep 0.05; done
kill -HUP "$proxy_pid"
for _ in $(seq 1 200); do grep -q "reload done" "$work/proxy.log" && break; sleep 0.05; done
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$proxy_pid/status")

# Changes through the admin API: one route each. The database's growth is counted in used
# pages after a checkpoint (the WAL is not the database).
used_pages() {
  sqlite3 "$work/scale.db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
  echo $(( $(sqlite3 "$work/scale.db" "PRAGMA page_count") - $(sqlite3 "$work/scale.db" "PRAGMA freelist_count") ))
}
add() { "$work/mcproxyctl" --socket "$work/admin.sock" routes add --listener scale --hostname "$1" --backend 127.0.0.1:9 --mode l4 >/dev/null; }
add warm.scale.test  # the first change after a fresh compile writes like any other; warm the caches
admin_port=$(grep -ao "admin HTTP.*on 127.0.0.1:[0-9]*" "$work/proxy.log" | grep -o "[0-9]*$")
pages_before=$(used_pages)
(for _ in $(seq 1 2000); do curl -s -o /dev/null -w "%{time_total}\n" "http://127.0.0.1:$admin_port/healthz"; sleep 0.02; done >"$work/healthz.txt") &
probe_pid=$!
for i in $(seq 1 "$changes"); do
  begin=$(date +%s%N); add "added$i.scale.test"; echo $(( ($(date +%s%N) - begin) / 1000000 ))
done | sort -n >"$work/adds.txt"
kill "$probe_pid" 2>/dev/null || true; wait "$probe_pid" 2>/dev/null || true
growth=$(( ($(used_pages) - pages_before) * $(sqlite3 "$work/scale.db" "PRAGMA page_size") / changes ))
add_ms=$(awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}' "$work/adds.txt")
healthz_ms=$(sort -n "$work/healthz.txt" | tail -n1 | awk '{printf "%d", $1 * 1000}')
kill -TERM "$proxy_pid"; wait "$proxy_pid" || true; proxy_pid=""

number() { grep -o "$1 [0-9.]* ms" "$work/proxy.log" | head -n1 | grep -o '[0-9.]*' | tail -n1; }
echo "| routes | mcproxyctl compile, total | of which DB write | start: read from DB | start: compile | SIGHUP reload: read + compile + publish | RSS after reload | DB size | admin API add (median of $changes) | DB growth per add | slowest /healthz during the adds |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
echo "| $((routes + 1)) | ${compile_ms} ms | $(echo "$compile_out" | grep -o '[0-9.]* ms') | $(number 'database in') ms | $(number 'compiled in') ms | $(number 'routes) in') ms | $((rss_kib / 1024)) MiB | $(( $(stat -c %s "$work/scale.db") / 1024 / 1024 )) MiB | ${add_ms} ms | ${growth} bytes | ${healthz_ms} ms |"
