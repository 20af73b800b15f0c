#!/usr/bin/env bash
# Runs every fuzz driver for SECONDS (default 60) each, from its seed
# corpus, keeping what it finds in build-fuzz/fuzz-found/<driver>/ (never in
# the source tree). A crash leaves crash-* / leak-* / timeout-* files in the
# current directory and stops that driver; copy such an input into
# tests/fuzz/corpus/<driver>/ with the fix, as a regression input.
#
#   tests/fuzz/run.sh [SECONDS]       builds build-fuzz first if needed
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
if [[ ! -x build/libnne_engine.so && ! -e build/libnne_engine.so ]]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j"${NNE_JOBS:-2}" --target nne_engine
fi
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DNNE_FUZZ=ON -DNNE_FIXTURES=OFF \
  -DNNE_ENGINE_LIB="$PWD/build/libnne_engine.so" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"${NNE_JOBS:-2}" --target fuzz_all
status=0
for d in model_json family_map edits_json trace_json apply_request \
    tokenizer_json trace_request generate_request forward_request tokenizer_encode other_requests; do
  found=build-fuzz/fuzz-found/$d
  mkdir -p "$found"
  echo "== $d: ${secs} s"
  if ! build-fuzz/tests/fuzz/fuzz_$d -max_total_time="$secs" -max_len=65536 \
      -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
      "$found" "tests/fuzz/corpus/$d" 2>&1 | tail -12; then
    status=1
  fi
done
exit $status
