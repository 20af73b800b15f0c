#!/usr/bin/env bash
# Installs exactly what nnedit's build and tests need, from Debian 12's
# packages. Idempotent: packages already present are left alone, and apt is
# only asked (and its index refreshed) when something is missing.
#
#   deploy/setup.sh            install what is missing (needs root)
#   deploy/setup.sh --check    list what is missing; exit 1 if anything is
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config
  # libraries nneditd and libnnedit link
  libtorch-dev libgrpc-dev libuv1-dev libjansson-dev libnanopb-dev
  libmicrohttpd-dev
  # code generation: protoc + the nanopb plugin
  protobuf-compiler nanopb
  # unit tests
  check
  # the fuzz drivers (tests/fuzz): clang's libFuzzer
  clang libfuzzer-14-dev
  # TLS tests make their certificates at test time
  openssl
  # the metrics test has a real Prometheus scrape the daemon
  prometheus
  # Debian's libtorch runs ~20x slower on the reference BLAS
  libopenblas0-pthread
  # fixtures and the Python client tests (Debian's interpreter: /usr/bin/python3)
  python3-torch python3-numpy python3-grpcio python3-grpc-tools
  # the container test (tests/deploy/test_container.sh): builds the Dockerfile
  # without a registry, on a Debian base made by debootstrap; ps finds the
  # daemon inside it
  podman buildah debootstrap procps
  # the Kubernetes manifests' check (tests/deploy/check_manifests.py)
  python3-yaml
  # the tokenizer (daemon/text) and its conformance test against the
  # reference library from npm (tests/text)
  libpcre2-dev libutf8proc-dev nodejs
)
# npm comes with NodeSource's nodejs package (which conflicts with Debian's
# npm); ask for Debian's only when no npm is there.
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ "${1:-}" == "--check" ]]; then
  if ((${#missing[@]})); then
    echo "missing: ${missing[*]}"
    exit 1
  fi
  echo "all build and test dependencies are installed"
  exit 0
fi

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: missing packages: ${missing[*]}" >&2
    echo "setup.sh: run as root (or with sudo) to install them" >&2
    exit 1
  fi
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# OpenBLAS must be the BLAS that libtorch finds through the alternatives
# system; with the reference BLAS every matmul is ~20x slower.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in
  *openblas*) ;;
  *)
    if [[ $(id -u) -eq 0 ]]; then
      update-alternatives --set libblas.so.3-x86_64-linux-gnu \
        /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
    else
      echo "setup.sh: warning: libblas.so.3 is $blas, not OpenBLAS (slow)" >&2
    fi
    ;;
esac
