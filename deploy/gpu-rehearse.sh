#!/bin/bash
# deploy/gpu-rehearse.sh — the CPU rehearsal of deploy/gpu-check.sh on a
# machine that, like the GPU machine, has none of nnedit's build
# dependencies: a fresh Debian 12 container with only Python, torch (Debian's
# 1.13 and its libtorch-dev), grpcio, numpy, CMake and a compiler. gRPC core,
# libuv, jansson, nanopb, libmicrohttpd, PCRE2, utf8proc, check, protoc and
# pkg-config then come from the bundle (deploy/gpu-bundle.sh) or nowhere, so
# a package missing from it fails the build here rather than on the GPU.
#
#   deploy/gpu-rehearse.sh [RESULTS_DIR]       (root; podman and buildah)
#
# Needs the local image debian:bookworm, which tests/deploy/test_container.sh
# makes with debootstrap (run it once: `tests/deploy/test_container.sh
# build`), and build-gpucheck/nnedit-gpu-bundle.tar.gz (deploy/gpu-bundle.sh).
# Copies the committed tree (git archive HEAD) and the bundle into the
# container, runs `gpu-check.sh --device cpu --quick` there, and copies its
# results to RESULTS_DIR (default build-gpucheck/rehearsal/). About 6
# minutes on 2 cores. Exit status: gpu-check's.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RES=${1:-$ROOT/build-gpucheck/rehearsal}
BUNDLE=$ROOT/build-gpucheck/nnedit-gpu-bundle.tar.gz
BASE=debian:bookworm
say() { echo "gpu-rehearse: $*" >&2; }
die() { say "$*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (buildah with chroot isolation)"
command -v buildah >/dev/null && command -v podman >/dev/null ||
  die "podman/buildah not installed: run deploy/setup.sh"
podman --cgroup-manager=cgroupfs image exists "$BASE" ||
  die "no local image $BASE: run tests/deploy/test_container.sh build once (it debootstraps one)"
[[ -f $BUNDLE ]] || die "no $BUNDLE: run deploy/gpu-bundle.sh first"

CTR=$(buildah from --pull=never "$BASE")
TMP=$(mktemp -d)
cleanup() { buildah rm "$CTR" >/dev/null 2>&1 || true; rm -rf "$TMP"; }
trap cleanup EXIT

# What the GPU machine has, in Debian's packages: Python with torch (and the
# libtorch CMake package the wheel carries), grpcio, numpy, protobuf, CMake,
# a compiler. Nothing else of nnedit's dependencies.
say "container $CTR: installing python3-torch, libtorch-dev, grpcio, cmake, g++"
buildah run --isolation chroot "$CTR" -- sh -c \
  'apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
     --no-install-recommends python3-torch libtorch-dev python3-grpcio python3-numpy \
     python3-protobuf cmake g++ make ca-certificates >/tmp/apt.log 2>&1 || { tail -n 20 /tmp/apt.log; exit 1; }'
# The point of the exercise: none of these may be installed.
present=$(buildah run --isolation chroot "$CTR" -- sh -c \
  'dpkg -l libgrpc-dev libuv1-dev libjansson-dev libnanopb-dev libmicrohttpd-dev libpcre2-dev \
     libutf8proc-dev check protobuf-compiler pkgconf 2>/dev/null | grep "^ii" || true')
[[ -z $present ]] || die "the container has some of nnedit's build dependencies: $present"

mkdir -p "$TMP/src/build-gpucheck"
git -C "$ROOT" archive HEAD | tar -x -C "$TMP/src"
cp "$BUNDLE" "$TMP/src/build-gpucheck/"
buildah copy "$CTR" "$TMP/src" /src >/dev/null
say "running deploy/gpu-check.sh --device cpu in the container"
rc=0
buildah run --isolation chroot "$CTR" -- sh -c \
  'cd /src && deploy/gpu-check.sh --device cpu --python /usr/bin/python3 --jobs "$(nproc)" --quick \
     --budget 900 --out /tmp/gc --results /tmp/gcres' || rc=$?

rm -rf "$RES"
mkdir -p "$RES"
MNT=$(buildah mount "$CTR")
cp -r "$MNT/tmp/gcres/." "$RES/"
buildah umount "$CTR" >/dev/null
say "exit $rc; results in $RES (summary.txt, logs/)"
exit "$rc"
