#!/bin/bash
# deploy/gpu-bundle.sh — on a Debian 12 machine, pack what deploy/gpu-check.sh
# needs on a machine that has PyTorch but none of Debian's packages (a GPU
# node with no apt and no network): gRPC core, libuv, nanopb, jansson,
# libmicrohttpd, check, PCRE2, utf8proc, protoc and pkgconf, unpacked into a prefix, plus the
# Python stubs of proto/ (grpc_tools is not there to make them).
#
#   deploy/gpu-bundle.sh [--out FILE.tar.gz]     (default: build-gpucheck/nnedit-gpu-bundle.tar.gz)
#
# The tarball holds prefix/ (`dpkg-deb -x` of every package: usr/lib/...,
# usr/include/..., usr/bin/protoc), gen_py/ (nnedit/v1/*_pb2*.py) and
# MANIFEST (package versions, the Debian release). Carry it next to the
# source tree; gpu-check.sh --bundle FILE unpacks it. Needs apt-get download
# (a Debian mirror), dpkg-deb, protoc and python3-grpc-tools here (deploy/setup.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/build-gpucheck/nnedit-gpu-bundle.tar.gz
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "gpu-bundle.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

# The packages the build asks pkg-config, CMake and protoc for; the rest is
# their dependency closure below.
SEEDS="libgrpc-dev libuv1-dev libnanopb-dev nanopb libjansson-dev
       libmicrohttpd-dev check protobuf-compiler pkgconf python3-protobuf
       libpcre2-dev libutf8proc-dev"
# Never carried: the C runtime and toolchain pieces (the GPU machine's own,
# newer ones must be used: a Debian libc6 on LD_LIBRARY_PATH would break
# every program there), interpreters, and what only maintainer scripts use.
# What remains is libraries, headers, .pc files, protoc and nanopb.
EXCLUDE='^(libc6|libc6-dev|libc-dev-bin|libc-bin|linux-libc-dev|libgcc-s1|libstdc\+\+6|gcc-[0-9]+-base|libcrypt1|libcrypt-dev|libnsl2|libnsl-dev|libtirpc.*|rpcsvc-proto|dpkg|tar|install-info|debconf|perl|perl-base|perl-modules-.*|libperl.*|python3|python3\.[0-9]+|python3\.[0-9]+-minimal|libpython3.*|mawk|mailcap|media-types|mime-support|readline-common|libreadline8|libncursesw6|libtinfo6|libsqlite3-0|libdb5\.3|libgdbm.*|libbz2-1\.0|liblzma5|libexpat1|libffi8|libuuid1|libcom-err2|libgssapi-krb5-2|libk5crypto3|libkeyutils1|libkrb5-3|libkrb5support0|libevent-.*|libunbound8|libgnutls-dane0|zlib1g)$'

WORK=$(mktemp -d /tmp/nnedit-gpu-bundle.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/debs" "$WORK/b/prefix" "$WORK/b/gen_py"

PKGS=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
         --no-breaks --no-replaces --no-enhances $SEEDS 2>/dev/null |
       grep -v '^[ <]' | sort -u | grep -Ev "$EXCLUDE" || true)
[ -n "$PKGS" ] || { echo "gpu-bundle.sh: apt-cache found no packages" >&2; exit 1; }
echo "gpu-bundle.sh: $(echo $PKGS | wc -w) packages: $(echo $PKGS)" >&2

# apt-get download writes into the current directory; as root it warns that
# _apt cannot write there, which is harmless.
(cd "$WORK/debs" && timeout 600 apt-get download $PKGS 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) || true
for p in $PKGS; do
  ls "$WORK/debs/${p}_"*.deb >/dev/null 2>&1 ||
    { echo "gpu-bundle.sh: apt-get download did not fetch $p" >&2; exit 1; }
done
for d in "$WORK"/debs/*.deb; do
  dpkg-deb -x "$d" "$WORK/b/prefix"
done

# Absolute symlinks (a few -dev packages have them) would point at the GPU
# machine's own /usr: make them relative, inside the prefix.
find "$WORK/b/prefix" -type l | while read -r l; do
  t=$(readlink "$l")
  case "$t" in
    /*) ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$WORK/b/prefix$t")" "$l" ;;
  esac
done
# Docs and manuals are a third of the bytes and nothing reads them.
rm -rf "$WORK/b/prefix/usr/share/doc" "$WORK/b/prefix/usr/share/man" \
       "$WORK/b/prefix/usr/share/lintian" "$WORK/b/prefix/usr/share/info"

# The Python stubs, made here with the same generator the tests use.
PROTOS=$(cd "$ROOT/proto" && ls nnedit/v1/*.proto grpc_health/v1/*.proto)
/usr/bin/python3 "$ROOT/tests/proto/gen_py.py" "$(command -v protoc)" "$ROOT/proto" \
  "$WORK/b/gen_py" $PROTOS >&2

{
  echo "made $(date -u +%FT%TZ) on $(. /etc/os-release; echo "$PRETTY_NAME") $(uname -m)"
  echo "source $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >"$WORK/b/MANIFEST"
for d in "$WORK"/debs/*.deb; do
  echo "$(dpkg-deb -f "$d" Package) $(dpkg-deb -f "$d" Version)"
done >>"$WORK/b/MANIFEST"

mkdir -p "$(dirname "$OUT")"
tar -C "$WORK/b" -czf "$OUT" prefix gen_py MANIFEST
echo "gpu-bundle.sh: wrote $OUT ($(du -h "$OUT" | cut -f1))" >&2
