# nneditd in a container (deploy/README.md says how to build, run and test it).
#
#   podman build --format docker -t nnedit .                   CPU image, Debian 12
#   podman build --format docker --target cuda -t nnedit:cuda .
#                         CUDA image on an NVIDIA PyTorch base (untested here)
#
# Stages: build-cuda and cuda compile with the project's CMake on NVIDIA's
# PyTorch image (its torch wheel holds a CUDA libtorch) and run there;
# build-cpu compiles on Debian 12 and the last stage, the default target,
# holds nneditd, nneditctl and the Debian runtime packages they link, nothing
# else. Builders skip the stages the chosen target does not need, so the CPU
# image never pulls the CUDA base.
#
# Two targets rather than a build argument choosing the final stage's base
# (FROM runtime-${VARIANT}): buildah 1.28 (Debian 12's) does not see such a
# FROM as depending on a stage, skips every stage and fails.
#
# `--format docker` matters for podman/buildah: the OCI image format has no
# HEALTHCHECK, and buildah drops it (with a warning) without that flag.

# Debian 12, by the name Docker Hub gives it. The container test imports a
# debootstrapped bookworm under this very name, so no registry is needed.
ARG DEBIAN_IMAGE=debian:bookworm
# NVIDIA's PyTorch container: CUDA, cuDNN and a CUDA libtorch (the one inside
# the torch wheel). Any tag whose torch still builds with C++17 (torch < 2.12,
# see shared/design/NOTES-gpu.md); pin the one you validated.
ARG CUDA_IMAGE=nvcr.io/nvidia/pytorch:25.01-py3

# ---- CUDA: build on NVIDIA's PyTorch image (untested here) -------------------
FROM ${CUDA_IMAGE} AS build-cuda
# The base is Ubuntu: same packages by their (Debian-family) names. libtorch is
# the torch wheel's; torch.utils.cmake_prefix_path tells CMake where it is.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libgrpc-dev libuv1-dev libjansson-dev libnanopb-dev libmicrohttpd-dev \
      libpcre2-dev libutf8proc-dev protobuf-compiler nanopb check \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNNE_FIXTURES=OFF \
      -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')" \
 && cmake --build build -j"$(nproc)" --target nneditd nneditctl \
 && mkdir -p /out/bin /out/lib \
 && cp build/nneditd build/nneditctl /out/bin/ \
 && cp -P build/libnne_engine.so build/libnnedit.so* /out/lib/ \
 && for f in /out/bin/* /out/lib/*.so*; do readelf -d "$f"; done \
    | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u | while read -r lib; do \
      dpkg -S "*/$(gcc -dumpmachine)/$lib" 2>/dev/null | cut -d: -f1 || true; \
    done | sort -u > /out/runtime-packages && cat /out/runtime-packages
# The loop above lists the distribution packages that own the libraries the
# programs link (the torch wheel's own libraries belong to no package), so the
# runtime stage installs the right names whatever the base's Ubuntu release.

# ---- CUDA: the image, on the same base (untested here) -----------------------
FROM ${CUDA_IMAGE} AS cuda
COPY --from=build-cuda /out/runtime-packages /tmp/runtime-packages
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive xargs -a /tmp/runtime-packages \
      apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages
COPY --from=build-cuda /out/bin/ /usr/local/bin/
COPY --from=build-cuda /out/lib/ /usr/local/lib/
# nneditd's RUNPATH keeps the torch wheel's lib folder (CMake links it by
# absolute path), which exists here as it did in the build stage.
RUN ldconfig && nneditd --version && nneditctl --version
# What every nnedit image has; the same lines as the CPU image below.
# A fixed numeric id, so that Kubernetes' runAsNonRoot can verify it and a
# mounted model repository can be made readable to it.
RUN useradd --uid 10001 --user-group --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin nnedit
# libgomp's workers spin between parallel regions by default and starve
# OpenBLAS's threads on the same cores (bench/README.md: forwards 3x slower).
ENV OMP_WAIT_POLICY=PASSIVE
# Where nneditctl (and the health check) connect by default.
ENV NNEDIT_ADDR=127.0.0.1:50051
# Extra nneditctl options for the health check, e.g. "--ca /tls/ca.crt" when
# the daemon serves TLS (its certificate must then name 127.0.0.1).
ENV NNEDIT_HEALTHCHECK_FLAGS=""
# The model repository: DIR/<name>/model.pt + model.json, mounted read-only.
VOLUME /models
# gRPC; Prometheus metrics when started with --metrics-listen=0.0.0.0:9090.
EXPOSE 50051 9090
USER 10001:10001
WORKDIR /models
# Liveness (health service ""): SERVING while the process serves, also while
# models load. Docker wants 0 or 1; nneditctl says 3 when unreachable.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD nneditctl --connect-timeout 3 --timeout 5 $NNEDIT_HEALTHCHECK_FLAGS health || exit 1
# Every interface, because a container is reached through its network
# namespace; nneditd then refuses to start until the operator chooses:
# --token-file and --tls-cert/--tls-key, or --insecure (for a private network
# or a TLS-terminating mesh). Arguments given to `run` are appended; a later
# --listen overrides this one.
ENTRYPOINT ["nneditd", "--model-repo=/models", "--listen=0.0.0.0:50051"]
CMD []

# ---- CPU: build on Debian 12 --------------------------------------------------
FROM ${DEBIAN_IMAGE} AS build-cpu
# The packages deploy/setup.sh installs for the build, less the test-only ones
# (Python, torch, openssl, prometheus, podman): keep the two lists in step (a
# library CMake requires and this list lacks fails the container test's
# build). check stays: the top-level CMakeLists requires it even when only
# the programs are built.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libtorch-dev libgrpc-dev libuv1-dev libjansson-dev libnanopb-dev \
      libmicrohttpd-dev libpcre2-dev libutf8proc-dev protobuf-compiler nanopb \
      check \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# NNE_FIXTURES=OFF: the fixture models need Python's torch, which a server
# image has no use for. -j2: the project's builders have two cores.
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNNE_FIXTURES=OFF \
 && cmake --build build -j2 --target nneditd nneditctl \
 && mkdir -p /out/bin /out/lib \
 && cp build/nneditd build/nneditctl /out/bin/ \
 && cp -P build/libnne_engine.so build/libnnedit.so* /out/lib/ \
 && for f in /out/bin/* /out/lib/*.so*; do readelf -d "$f"; done \
    | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u | while read -r lib; do \
      dpkg -S "*/$(gcc -dumpmachine)/$lib" 2>/dev/null | cut -d: -f1 || true; \
    done | sort -u > /out/runtime-packages && cat /out/runtime-packages
# The runtime packages are read off the programs (the Debian packages that own
# the libraries they link) rather than listed by hand, so a library the daemon
# starts to link is never missing from the image. Today: libtorch1.13,
# libgrpc29, libuv1, libjansson4, libmicrohttpd12 (and libc6, libstdc++6,
# libgcc-s1).

# ---- CPU: the image, on Debian 12 (the default target) -----------------------
FROM ${DEBIAN_IMAGE} AS cpu
# Exactly the packages of the libraries nneditd and nneditctl link (from the
# build stage), plus OpenBLAS: libtorch1.13 takes any libblas.so.3, and with
# Debian's reference BLAS every matmul is ~20x slower (deploy/setup.sh). The
# alternatives link is set explicitly because apt may pick the reference BLAS
# to satisfy libtorch's dependency.
COPY --from=build-cpu /out/runtime-packages /tmp/runtime-packages
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive xargs -a /tmp/runtime-packages \
      apt-get install -y --no-install-recommends libopenblas0-pthread \
 && update-alternatives --set libblas.so.3-x86_64-linux-gnu \
      /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages
COPY --from=build-cpu /out/bin/ /usr/local/bin/
# /usr/local/lib is on Debian's loader path (ld.so.conf.d/libc.conf); the
# binaries' RUNPATH names the build folder, which does not exist here.
COPY --from=build-cpu /out/lib/ /usr/local/lib/
RUN ldconfig && nneditd --version && nneditctl --version
# OpenBLAS picks its kernels from CPUID at run time and, on CPUs it does not
# recognise (common in VMs), falls back to SSE3 (Prescott) kernels, 3-4x
# slower (bench/README.md). Haswell (AVX2) runs on every x86-64 server CPU
# of the last decade; SkylakeX (AVX-512) is faster but dies with SIGILL where
# AVX-512 is missing, so it is the operator's choice: -e OPENBLAS_CORETYPE=SkylakeX.
ENV OPENBLAS_CORETYPE=Haswell
# What every nnedit image has; the same lines as the CUDA image above.
# A fixed numeric id, so that Kubernetes' runAsNonRoot can verify it and a
# mounted model repository can be made readable to it.
RUN useradd --uid 10001 --user-group --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin nnedit
# libgomp's workers spin between parallel regions by default and starve
# OpenBLAS's threads on the same cores (bench/README.md: forwards 3x slower).
ENV OMP_WAIT_POLICY=PASSIVE
# Where nneditctl (and the health check) connect by default.
ENV NNEDIT_ADDR=127.0.0.1:50051
# Extra nneditctl options for the health check, e.g. "--ca /tls/ca.crt" when
# the daemon serves TLS (its certificate must then name 127.0.0.1).
ENV NNEDIT_HEALTHCHECK_FLAGS=""
# The model repository: DIR/<name>/model.pt + model.json, mounted read-only.
VOLUME /models
# gRPC; Prometheus metrics when started with --metrics-listen=0.0.0.0:9090.
EXPOSE 50051 9090
USER 10001:10001
WORKDIR /models
# Liveness (health service ""): SERVING while the process serves, also while
# models load. Docker wants 0 or 1; nneditctl says 3 when unreachable.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD nneditctl --connect-timeout 3 --timeout 5 $NNEDIT_HEALTHCHECK_FLAGS health || exit 1
# Every interface, because a container is reached through its network
# namespace; nneditd then refuses to start until the operator chooses:
# --token-file and --tls-cert/--tls-key, or --insecure (for a private network
# or a TLS-terminating mesh). Arguments given to `run` are appended; a later
# --listen overrides this one.
ENTRYPOINT ["nneditd", "--model-repo=/models", "--listen=0.0.0.0:50051"]
CMD []
