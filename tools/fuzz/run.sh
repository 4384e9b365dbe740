#!/usr/bin/env bash
# Fuzzes one target with clang-14's libFuzzer + ASan/UBSan for SECONDS of wall time (default 60)
# on JOBS processes (default 1), seeded with test/fuzz/corpus/TARGET.
#   tools/fuzz/run.sh proxy_protocol|client_hello|http1_request|config [SECONDS] [JOBS]
# New coverage is merged back into test/fuzz/corpus/TARGET (minimized, so only inputs that add
# coverage are kept); a crash is written there as crash-<sha1>, so that
# `bazel test //test/fuzz:TARGET_corpus_test` replays it from then on. Fix it, and keep the file.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${1:?usage: tools/fuzz/run.sh TARGET [SECONDS] [JOBS]}
seconds=${2:-60}
jobs=${3:-1}
corpus="test/fuzz/corpus/$target"
[ -d "$corpus" ] || { echo "no corpus at $corpus" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A separate output base: switching the compiler would otherwise throw away the gcc build.
output_base="${MC_PROXY_FUZZ_OUTPUT_BASE:-$HOME/.cache/mcproxy-fuzz}"
fuzz_bazel() { CC=clang-14 CXX=clang++-14 bazel --output_base="$output_base" "$@"; }
# No convenience symlinks: bazel-bin and friends stay the gcc build's.
if ! fuzz_bazel build --config=fuzz --symlink_prefix=/ "//test/fuzz:${target}_fuzzer" >"$work/build.log" 2>&1; then
  grep -v "Cannot export local symbol" "$work/build.log" | tail -40
  exit 1
fi
binary="$(fuzz_bazel info --config=fuzz bazel-bin 2>/dev/null)/test/fuzz/${target}_fuzzer"
mkdir -p "$work/new"
options=(-artifact_prefix="$corpus/" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048)
if [ "$jobs" -gt 1 ]; then
  options+=(-fork="$jobs")
fi
status=0
cpu_before=$(awk '{print $14 + $15 + $16 + $17}' /proc/$$/stat)
"$binary" "${options[@]}" -max_total_time="$seconds" "$work/new" "$corpus" \
  >"$work/log" 2>&1 || status=$?
# CPU the fuzzer used (children's utime + stime, in clock ticks), not wall time: on a shared
# machine the two differ, and "10 minutes of fuzzing" means CPU.
cpu_after=$(awk '{print $14 + $15 + $16 + $17}' /proc/$$/stat)
echo "$target: $(( (cpu_after - cpu_before) / $(getconf CLK_TCK) )) CPU seconds" >&2
grep -E "^(#[0-9]+ *DONE|stat::|==[0-9]+==ERROR|SUMMARY|INFO: (fork|Running)|artifact_prefix)" \
  "$work/log" | tail -20 || true
if [ "$status" -ne 0 ]; then
  tail -60 "$work/log"
  echo "fuzzer exited $status: see the crash-* file above in $corpus" >&2
fi
# Keep only what adds coverage to the checked-in corpus.
"$binary" -merge=1 -rss_limit_mb=2048 -artifact_prefix="$work/" "$corpus" "$work/new" >"$work/merge.log" 2>&1 ||
  tail -20 "$work/merge.log"
echo "$target: $(ls "$corpus" | wc -l) corpus files" >&2
exit "$status"
