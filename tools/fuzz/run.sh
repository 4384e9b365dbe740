#!/usr/bin/env bash
# Fuzzes a target with clang-14's libFuzzer + ASan/UBSan for SECONDS (default 60), seeded with
# and growing test/fuzz/corpus/TARGET. New crashes are written to test/fuzz/corpus/TARGET too,
# so that `bazel test //test/fuzz:TARGET_corpus_test` replays them once fixed.
#   tools/fuzz/run.sh proxy_protocol|client_hello [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
target=$1
seconds=${2:-60}
case "$target" in
  proxy_protocol) sources="source/common/proxy_protocol/proxy_protocol.cc source/common/network/address.cc" ;;
  client_hello) sources="source/common/tls/client_hello.cc" ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
clang++-14 -std=c++20 -g -O1 -I. -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  "test/fuzz/${target}_fuzz.cc" $sources -o "$work/fuzz"
mkdir -p "$work/new"
"$work/fuzz" -max_total_time="$seconds" -artifact_prefix="test/fuzz/corpus/$target/crash-" \
  -print_final_stats=1 "$work/new" "test/fuzz/corpus/$target" 2>&1 | tail -15
