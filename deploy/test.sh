#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what is missing, builds
# (warnings are errors), generates the fixture models, runs every unit and
# integration test; runs each libFuzzer driver (tests/fuzz) a short while;
# builds the Dockerfile with podman and gets a Forward answer from the
# daemon inside the image; then runs the normal build's tests again under
# AddressSanitizer and UndefinedBehaviorSanitizer.
# Exits non-zero on any failure.
#
#   deploy/test.sh             both builds
#   NNE_SKIP_ASAN=1 deploy/test.sh   the normal build only (quicker, local use)
#   NNE_SKIP_CONTAINER=1 deploy/test.sh   without the container test (podman)
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/setup.sh
jobs=${NNE_JOBS:-2}

run_suite() {
  local dir=$1; shift
  # Test builds carry the fault switch (base/fault.h); the image does not.
  cmake -S . -B "$dir" -DNNE_WERROR=ON -DNNE_FAULT_INJECTION=ON "$@"
  cmake --build "$dir" -j"$jobs"
  ctest --test-dir "$dir" --output-on-failure --timeout 900
}

echo "== build and test: $PWD/build"
run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo

echo "== fuzz drivers (clang, ASan+UBSan), a short run each: $PWD/build-fuzz"
# The libtorch shim comes from build/: the drivers parse, they never run a
# model, and compiling the engine again would cost minutes.
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DNNE_FUZZ=ON -DNNE_WERROR=ON \
  -DNNE_FIXTURES=OFF -DNNE_ENGINE_LIB="$PWD/build/libnne_engine.so" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build-fuzz -j"$jobs" --target fuzz_all
ctest --test-dir build-fuzz -L fuzz --output-on-failure

# Once, not per build: the image compiles the tree itself, and the daemon in
# it is driven by this build's nneditctl and fixture models.
if [[ -z "${NNE_SKIP_CONTAINER:-}" ]]; then
  echo "== the container: build the Dockerfile with podman, run its nneditd"
  tests/deploy/test_container.sh build
fi

if [[ -z "${NNE_SKIP_ASAN:-}" ]]; then
  echo "== build and test with ASan+UBSan: $PWD/build-asan"
  # RelWithDebInfo, not Debug: at -O0 a libtorch 1.13 header leaves an
  # undefined typeinfo (c10::DynamicType) in libnne_engine.so.
  run_suite build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNNE_SANITIZE=ON
fi
echo "== all tests passed"
