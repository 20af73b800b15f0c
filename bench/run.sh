#!/bin/sh
# bench/run.sh — generate the GPT-2-small fixture if missing, build the
# benchmark against the engine, run it. See bench/README.md.
#
#   bench/run.sh [--as-is] [--bin PATH] [--fixtures DIR] [-- bench_edits args]
#
#   --as-is      run with the environment as it is; by default OpenBLAS is
#                told the CPU's kernel family (OPENBLAS_CORETYPE, from the
#                CPU flags, unless already set) and OpenMP threads sleep
#                instead of spinning (OMP_WAIT_POLICY=PASSIVE, unless set):
#                see "Environment" in the README for why.
#   --bin PATH   use this bench_edits instead of building one
#   --fixtures DIR  where the bench fixture lives (default BUILD/fixtures-bench)
#
# Environment: NNE_BUILD_DIR (default ./build, must hold libnne_engine.so
# or be a configured top-level build), NNE_PYTHON (default /usr/bin/python3).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${NNE_BUILD_DIR:-$ROOT/build}
PY=${NNE_PYTHON:-/usr/bin/python3}
FIX=""
BIN=""
AS_IS=0

while [ $# -gt 0 ]; do
  case "$1" in
    --as-is) AS_IS=1; shift ;;
    --bin) BIN=$2; shift 2 ;;
    --fixtures) FIX=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[ -n "$FIX" ] || FIX=$BUILD/fixtures-bench

# 1. The fixture: ~500 MB, ~10 s the first time; a no-op (~0.1 s) when its
#    stamp matches.
"$PY" "$ROOT/tests/fixtures/gen_fixtures.py" --out "$FIX" --bench >&2

# 2. The benchmark binary.
if [ -z "$BIN" ]; then
  if [ -f "$BUILD/bench/Makefile" ] || [ -f "$BUILD/bench/build.ninja" ] ||
     [ -f "$BUILD/bench/cmake_install.cmake" ]; then
    # The top-level project has add_subdirectory(bench).
    cmake --build "$BUILD" --target bench_edits >&2
    BIN=$BUILD/bench/bench_edits
  else
    if [ ! -f "$BUILD/libnne_engine.so" ]; then
      echo "run.sh: $BUILD/libnne_engine.so is missing: build the engine first" \
           "(cmake -S . -B build && cmake --build build --target nne_engine)" >&2
      exit 1
    fi
    SB=$BUILD/bench-standalone
    cmake -S "$ROOT/bench" -B "$SB" -DNNE_ENGINE_LIB="$BUILD/libnne_engine.so" \
          >/dev/null
    cmake --build "$SB" >&2
    BIN=$SB/bench_edits
  fi
fi

# 3. The environment (printed by the benchmark either way).
if [ "$AS_IS" -eq 0 ]; then
  if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
    case " $flags " in
      *" avx512f "*) OPENBLAS_CORETYPE=SkylakeX; export OPENBLAS_CORETYPE ;;
      *" avx2 "*) OPENBLAS_CORETYPE=Haswell; export OPENBLAS_CORETYPE ;;
    esac
  fi
  : "${OMP_WAIT_POLICY:=PASSIVE}"
  export OMP_WAIT_POLICY
fi

exec "$BIN" --model "$FIX/gpt2-small/model.pt" "$@"
