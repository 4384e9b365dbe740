#!/usr/bin/env bash
# Snapshot-store scale benchmark: compiles N routes (default 100,000) into a fresh database,
# starts mc-proxy on it, reloads it with SIGHUP, and reports each step's time as logged by the
# binaries themselves. Optimized build; loopback only; cleans up after itself.
#   tools/bench/snapshot_scale.sh [ROUTES]
set -euo pipefail
cd "$(dirname "$0")/../.."
routes=${1:-100000}

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

"$work/mc-proxy" --db "$work/scale.db" --workers "$(nproc)" >"$work/proxy.log" 2>&1 &
proxy_pid=$!
for _ in $(seq 1 200); do grep -q "started" "$work/proxy.log" && break; sleep 0.05; done
kill -HUP "$proxy_pid"
for _ in $(seq 1 200); do grep -q "reload done" "$work/proxy.log" && break; sleep 0.05; done
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$proxy_pid/status")
kill -TERM "$proxy_pid"; wait "$proxy_pid" || true; proxy_pid=""

number() { grep -o "$1 [0-9.]* ms" "$work/proxy.log" | head -n1 | grep -o '[0-9.]*' | tail -n1; }
echo "| routes | mcproxyctl compile, total | of which DB write | start: read from DB | start: compile | SIGHUP reload: read + compile + publish | RSS after reload | DB size |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
echo "| $((routes + 1)) | ${compile_ms} ms | $(echo "$compile_out" | grep -o '[0-9.]* ms') | $(number 'database in') ms | $(number 'compiled in') ms | $(number 'routes) in') ms | $((rss_kib / 1024)) MiB | $(( $(stat -c %s "$work/scale.db") / 1024 / 1024 )) MiB |"
