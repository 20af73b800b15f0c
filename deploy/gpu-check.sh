#!/bin/bash
# deploy/gpu-check.sh — build nnedit against the libtorch of the PyTorch on
# this machine, export models with tools/nnedit_export.py, serve them with
# nneditd and check parity, edits, traces and greedy Generate against eager
# PyTorch on the same device, then run the benchmarks. Writes OUT/summary.txt
# (and .json).
# See deploy/README-gpu.md.
#
#   deploy/gpu-check.sh [--device cpu|cuda|cuda:N] [--bundle FILE.tar.gz]
#                       [--python PY] [--out DIR] [--jobs N] [--models LIST]
#                       [--results DIR] [--budget SEC] [--skip-build] [--quick]
#
#   --device    where models run (default: cuda when torch sees one, else cpu)
#   --bundle    the tarball deploy/gpu-bundle.sh made on a Debian machine
#               (default: OUT/ or build-gpucheck/nnedit-gpu-bundle.tar.gz,
#               when there); without one the system's packages are used
#   --python    the Python with torch 2.x (default python3; the CPU
#               rehearsal on Debian uses /usr/bin/python3, torch 1.13)
#   --out       the build, unpacked packages, checkpoints and model
#               repository: several GB with the real models (default
#               build-gpucheck/)
#   --results   summary.txt, check-summary.{txt,json}, logs/ and nneditd.log
#               (default: OUT); written as the steps go, so that a run
#               stopped by a time limit still leaves what it found
#   --budget    seconds for the whole run (default 0: none): the checks skip
#               what no longer fits and the summary is still written
#   --jobs      build parallelism (default: nproc)
#   --models    comma list for tools/gpu_check.py (default: its own)
#   --skip-build  reuse OUT/build
#   --quick     fewer benchmark rounds (the CPU rehearsal)
#
# Every step logs to RESULTS/logs/<step>.log and may fail without stopping the
# steps that do not need it: GPU time is short, one run must say everything.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEVICE=""
BUNDLE=""
PY=python3
OUT=$ROOT/build-gpucheck
JOBS=$(nproc)
MODELS=""
RESULTS=""
BUDGET=0
SKIP_BUILD=0
QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --bundle) BUNDLE=$2; shift 2 ;;
    --python) PY=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --models) MODELS=$2; shift 2 ;;
    --results) RESULTS=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --quick) QUICK=1; shift ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "gpu-check.sh: unknown argument '$1' (--help)" >&2; exit 2 ;;
  esac
done
[ -n "$RESULTS" ] || RESULTS=$OUT
mkdir -p "$OUT" "$RESULTS/logs"
OUT=$(cd "$OUT" && pwd)
RESULTS=$(cd "$RESULTS" && pwd)
LOGS=$RESULTS/logs
if [ -z "$BUNDLE" ]; then
  for b in "$OUT/nnedit-gpu-bundle.tar.gz" "$ROOT/build-gpucheck/nnedit-gpu-bundle.tar.gz"; do
    [ -f "$b" ] && { BUNDLE=$b; break; }
  done
fi
START=$(date +%s)
STEPS=""

say() { echo "gpu-check: $*" | tee -a "$LOGS/gpu-check.log" >&2; }
# step NAME CMD...: runs CMD with its output in logs/NAME.log; records the
# result and the seconds it took for the summary.
step() {
  local name=$1 t0 rc
  shift
  t0=$(date +%s)
  say "step $name ..."
  "$@" >"$LOGS/$name.log" 2>&1
  rc=$?
  STEPS="$STEPS$name $rc $(( $(date +%s) - t0 ))"$'\n'
  if [ $rc -eq 0 ]; then say "step $name: ok ($(( $(date +%s) - t0 )) s)"
  else say "step $name: FAILED (exit $rc, $(( $(date +%s) - t0 )) s); tail of logs/$name.log:"
       tail -n 15 "$LOGS/$name.log" | sed 's/^/    /' >&2
  fi
  return $rc
}

# ---- 1. what this machine is ------------------------------------------------
machine() {
  date -u +%FT%TZ
  uname -a
  (. /etc/os-release 2>/dev/null && echo "os: $PRETTY_NAME")
  echo "cores: $(nproc)"
  "$PY" - <<'EOF'
import sys, torch
print("python:", sys.version.split()[0])
print("torch:", torch.__version__, "cuda:", torch.version.cuda, "available:", torch.cuda.is_available())
print("cxx11_abi:", torch.compiled_with_cxx11_abi())
print("cmake_prefix_path:", torch.utils.cmake_prefix_path)
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        print("gpu%d:" % i, torch.cuda.get_device_name(i))
try:
    import transformers
    print("transformers:", transformers.__version__)
except ImportError:
    print("transformers: absent (fixture classes will be exported)")
EOF
  command -v nvidia-smi >/dev/null &&
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  command -v nvcc >/dev/null && nvcc --version | tail -n 2
  cmake --version | head -n 1
  true
}
step machine machine
cat "$LOGS/machine.log" >&2
if [ -z "$DEVICE" ]; then
  DEVICE=$("$PY" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")' 2>/dev/null || echo cpu)
fi
say "device $DEVICE, python $PY, out $OUT"

# ---- 2. Debian's packages, carried -------------------------------------------
PREFIX=""
unpack() {
  local plib=$OUT/bundle/prefix/usr/lib/x86_64-linux-gnu l sys
  rm -rf "$OUT/bundle" && mkdir -p "$OUT/bundle" &&
    tar -C "$OUT/bundle" -xzf "$BUNDLE" && cat "$OUT/bundle/MANIFEST" || return 1
  # grpc.pc and gpr.pc say libdir=${exec_prefix}/lib while their libraries
  # are in the multiarch directory: on Debian the linker's default path hides
  # that, on a machine without them the link would find nothing (or, worse,
  # another copy).
  sed -i -E 's#^libdir=\$\{(exec_)?prefix\}/lib$#libdir=${prefix}/lib/x86_64-linux-gnu#' \
    "$plib"/pkgconfig/*.pc
  # Development symlinks whose runtime package is not carried (zlib: the
  # machine's own is newer and is what everything else there uses) point
  # at the machine's copy.
  for l in $(find "$plib" -maxdepth 1 -xtype l -name '*.so'); do
    sys=$(/sbin/ldconfig -p 2>/dev/null | awk -v b="$(basename "$l")." 'index($1, b) == 1 { print $NF; exit }')
    if [ -n "$sys" ]; then ln -sfn "$sys" "$l"; echo "relinked $(basename "$l") -> $sys"; fi
  done
}
if [ -n "$BUNDLE" ]; then
  step unpack unpack && PREFIX=$OUT/bundle/prefix
else
  say "no bundle: using the system's gRPC, libuv, nanopb, jansson, libmicrohttpd, check"
fi
ARCHLIB=x86_64-linux-gnu
if [ -n "$PREFIX" ]; then
  PLIB=$PREFIX/usr/lib/$ARCHLIB
  # Debian's .pc files say prefix=/usr: the sysroot puts the prefix in front
  # of every -I and -L they give; LIBDIR (not PATH) so that the machine's
  # own .pc files (another grpc, say) are never mixed in.
  export PKG_CONFIG_SYSROOT_DIR=$PREFIX
  export PKG_CONFIG_LIBDIR=$PLIB/pkgconfig:$PREFIX/usr/share/pkgconfig
  export PKG_CONFIG=$PREFIX/usr/bin/pkgconf
  export LIBRARY_PATH=$PLIB${LIBRARY_PATH:+:$LIBRARY_PATH}
  # Only the programs that need the carried libraries get them: the
  # machine's Python (torch, grpcio) keeps its own OpenSSL and zlib.
  NNE_LD=$PLIB
  # protoc and its plugin are run through wrappers that give them the
  # carried libraries and Debian's pure-Python protobuf (the plugin is Python).
  mkdir -p "$OUT/bin"
  cat >"$OUT/bin/protoc" <<EOF
#!/bin/sh
LD_LIBRARY_PATH=$PLIB exec $PREFIX/usr/bin/protoc "\$@"
EOF
  cat >"$OUT/bin/protoc-gen-nanopb" <<EOF
#!/bin/sh
PYTHONPATH=$PREFIX/usr/lib/python3/dist-packages:$PREFIX/usr/bin PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python exec $PY $PREFIX/usr/bin/protoc-gen-nanopb "\$@"
EOF
  chmod +x "$OUT/bin/protoc" "$OUT/bin/protoc-gen-nanopb"
  PROTOC_ARGS=(-DPROTOC="$OUT/bin/protoc" -DPROTOC_GEN_NANOPB="$OUT/bin/protoc-gen-nanopb")
  # The carried packages first: on Debian, where torch's prefix is the
  # system's CMake directory, nanopb would otherwise come from the system.
  CMAKE_PREFIX_EXTRA="$PLIB/cmake;"
  GEN_PY=$OUT/bundle/gen_py
else
  NNE_LD=""
  PROTOC_ARGS=()
  CMAKE_PREFIX_EXTRA=""
  GEN_PY=""
fi

# ---- 3. build against this PyTorch's libtorch --------------------------------
TORCH_PREFIX=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)
TORCH_ARGS=()
if [ ! -f "$TORCH_PREFIX/Torch/TorchConfig.cmake" ]; then
  # Debian's python3-torch ships no CMake files beside the Python package;
  # its libtorch's are under the multiarch libdir.
  say "no TorchConfig.cmake under '$TORCH_PREFIX'; using /usr/lib/$ARCHLIB/cmake (Debian's libtorch)"
  TORCH_PREFIX=/usr/lib/$ARCHLIB/cmake
else
  # The wheel's libtorch, its C++ ABI read from its torch (CMakeLists.txt).
  TORCH_ARGS=(-DNNE_TORCH_PYTHON="$PY")
fi
# build [CMAKE ARGS...]
build() {
  set -e
  local cuda_args=()
  # A CUDA libtorch's CMake config (Caffe2's cuda.cmake) needs the CUDA
  # toolkit before find_package(Torch) can succeed: point it at nvcc and the
  # toolkit around it. Its major version must be the wheel's (cu130: 13).
  if command -v nvcc >/dev/null; then
    local nvcc
    nvcc=$(readlink -f "$(command -v nvcc)")
    nvcc --version | tail -n 2
    cuda_args=(-DCMAKE_CUDA_COMPILER="$nvcc" -DCUDAToolkit_ROOT="$(dirname "$(dirname "$nvcc")")")
  else
    echo "no nvcc on PATH: a CUDA libtorch's CMake config will not find the toolkit"
  fi
  cmake -S "$ROOT" -B "$OUT/build" -DCMAKE_BUILD_TYPE=Release -DNNE_FIXTURES=OFF \
    -DCMAKE_PREFIX_PATH="$CMAKE_PREFIX_EXTRA$TORCH_PREFIX" \
    -DNNE_PYTHON="$PY" "${PROTOC_ARGS[@]}" "${cuda_args[@]}" "${TORCH_ARGS[@]}" "$@"
  grep -E '^(Torch_DIR|nanopb_DIR|PROTOC|PROTOC_GEN_NANOPB):' "$OUT/build/CMakeCache.txt"
  cmake --build "$OUT/build" -j "$JOBS" --target nneditd nneditctl
  ldd "$OUT/build/nneditd" | grep -E 'grpc|uv|jansson|microhttpd|torch|c10|nne_engine'
  # What the link took from outside the build and the carried prefix: only
  # libtorch's and the C library's pieces should be here.
  echo "linked from outside the carried prefix:"
  tr ' ' '\n' <"$OUT/build/CMakeFiles/nneditd.dir/link.txt" | grep -E '^/.*\.(so|a)$' |
    grep -v "^$OUT/" | sort -u | sed 's/^/  /'
}
if [ $SKIP_BUILD -eq 0 ]; then
  BUILD_ENV="$(declare -f build); $(declare -p ROOT OUT TORCH_PREFIX TORCH_ARGS CMAKE_PREFIX_EXTRA PY JOBS PROTOC_ARGS)"
  if ! step build env LD_LIBRARY_PATH="$NNE_LD${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
      bash -c "$BUILD_ENV; build"; then
    # The one piece compiled only against a CUDA libtorch is the caching
    # allocator's figures (daemon/engine/device.cc): without them the rest
    # can still be checked, and the log above says what failed.
    say "build failed; again without the CUDA allocator figures (-DNNE_CUDA_STATS=OFF)"
    step build-nostats env LD_LIBRARY_PATH="$NNE_LD${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
      bash -c "$BUILD_ENV; build -DNNE_CUDA_STATS=OFF"
  fi
fi
NNEDITD=$OUT/build/nneditd

# ---- 4. Python stubs -----------------------------------------------------------
stubs() {
  if [ -z "$GEN_PY" ]; then
    GEN_PY=$OUT/gen_py
    "$PY" "$ROOT/tests/proto/gen_py.py" "$(command -v protoc)" "$ROOT/proto" "$GEN_PY" \
      $(cd "$ROOT/proto" && ls nnedit/v1/*.proto grpc_health/v1/*.proto)
  fi
  PYTHONPATH=$GEN_PY "$PY" -c 'import grpc; from nnedit.v1 import inference_pb2, models_pb2; print("grpcio", grpc.__version__)'
}
if ! step stubs stubs; then
  # The stubs were made by Debian's protoc 3.21; a much newer protobuf
  # runtime may refuse them: Debian's pure-Python protobuf is carried too.
  if [ -n "$PREFIX" ]; then
    export PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python
    GEN_PY=$GEN_PY:$PREFIX/usr/lib/python3/dist-packages
    step stubs-debian-protobuf stubs
  fi
fi
[ -n "$GEN_PY" ] || GEN_PY=$OUT/gen_py

# ---- 5. export, serve, compare, benchmark --------------------------------------
ARGS=(--device "$DEVICE" --nneditd "$NNEDITD" --py-gen "$GEN_PY" --out "$OUT" --results "$RESULTS")
if [ "$BUDGET" -gt 0 ]; then
  # what is left, less time for the summary
  ARGS+=(--budget $(( BUDGET - ($(date +%s) - START) - 10 )))
fi
[ -n "$MODELS" ] && ARGS+=(--models "$MODELS")
[ $QUICK -eq 1 ] && ARGS+=(--quick)
step check env NNE_DAEMON_LD_LIBRARY_PATH="$NNE_LD" PYTHONPATH="$GEN_PY" \
  "$PY" "$ROOT/tools/gpu_check.py" "${ARGS[@]}"

# ---- 6. summary ------------------------------------------------------------------
{
  echo "nnedit gpu-check, $(date -u +%FT%TZ), device $DEVICE, $(( $(date +%s) - START )) s in all"
  echo
  sed -n '1,20p' "$LOGS/machine.log"
  echo
  echo "steps (name exit seconds):"
  printf '%s' "$STEPS" | sed 's/^/  /'
  echo
  if [ -f "$RESULTS/check-summary.txt" ]; then cat "$RESULTS/check-summary.txt"
  else echo "no results from tools/gpu_check.py: see logs/check.log"; fi
} >"$RESULTS/summary.txt"
cat "$RESULTS/summary.txt"
say "summary: $RESULTS/summary.txt"
printf '%s' "$STEPS" | awk '$2 != 0 { bad = 1 } END { exit bad }'
