#!/usr/bin/env bash
# The container test: builds the top-level Dockerfile for real with Debian's
# podman, runs the image's nneditd on loopback with the fixture model
# repository mounted, and asks it for health and a Forward with the host's
# nneditctl, outside the container.
#
#   tests/deploy/test_container.sh [BUILD_DIR]     (default: ./build)
#
# BUILD_DIR is a normal build of this tree: its nneditctl is the client and its
# fixtures/ the model repository. No registry is used: the Dockerfile's Debian
# base is made by debootstrap (cached in $NNE_BOOKWORM_ROOTFS, default
# /var/tmp/nnedit-bookworm, reused when present) and imported under the name
# the Dockerfile's FROM uses. apt inside the build reaches Debian's mirror
# through the host network, as deploy/setup.sh does.
#
# What works on this machine kind (deploy/README.md, "What was measured"):
# `podman build --isolation=chroot`, and `buildah run --isolation chroot` to
# run the image; `podman run` fails in crun (setrlimit RLIMIT_NOFILE/NPROC:
# Operation not permitted), so it is not used.
#
# Prints "SKIP: ..." and exits 0 only where podman cannot run at all.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
CTL=$BUILD/nneditctl
FIX=$BUILD/fixtures
MODEL=gpt2-script
IMAGE=${NNE_TEST_IMAGE:-localhost/nnedit:test}
ROOTFS=${NNE_BOOKWORM_ROOTFS:-/var/tmp/nnedit-bookworm}
MIRROR=${NNE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PY=${NNE_PYTHON:-/usr/bin/python3}
# The base image's name: the Dockerfile's own default, so the two never differ.
BASE=$(sed -n 's/^ARG DEBIAN_IMAGE=//p' "$ROOT/Dockerfile")

say() { echo "test_container: $*"; }
die() { echo "test_container: FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: container test: $*"; exit 0; }
# Elapsed seconds since $1 (from `date +%s`), for the timings printed.
since() { echo "$(($(date +%s) - $1))s"; }

[[ -x $CTL ]] || die "$CTL missing: build the tree first"
[[ -f $FIX/$MODEL/model.pt ]] || die "$FIX/$MODEL missing: build the fixtures target"
[[ -n $BASE ]] || die "no 'ARG DEBIAN_IMAGE=' in $ROOT/Dockerfile"

# ---- can podman run here at all? ---------------------------------------------
# Rootless podman needs subordinate ids and user namespaces this test does not
# set up; as root a missing podman is an install step that was skipped.
if ! command -v podman >/dev/null || ! command -v buildah >/dev/null; then
  [[ $(id -u) -eq 0 ]] || skip "podman/buildah not installed and not root to install them"
  die "podman/buildah not installed: run deploy/setup.sh"
fi
[[ $(id -u) -eq 0 ]] || skip "needs root (rootless podman is not set up here)"
# cgroupfs: there is no systemd to manage cgroups on these machines. overlay
# is podman's default and works on ext4; where it does not (an overlayfs
# root, say) vfs does, slower, in a store of its own so the two never mix.
PODMAN=(podman --cgroup-manager=cgroupfs)
BUILDAH=(buildah)
if ! info=$("${PODMAN[@]}" info 2>&1); then
  say "podman info failed with the default storage; trying vfs: ${info##*$'\n'}"
  store=(--storage-driver=vfs --root /var/lib/containers/nnedit-vfs)
  PODMAN+=("${store[@]}")
  BUILDAH+=("${store[@]}")
  info=$("${PODMAN[@]}" info 2>&1) || skip "podman cannot run here: ${info##*$'\n'}"
fi

# ---- everything started below is stopped on exit -----------------------------
TMP=$(mktemp -d)
CTR=
DPID= # buildah run
NPID= # the nneditd it runs
cleanup() {
  local rc=$?
  # nneditd first: killing buildah run would kill it without a drain.
  [[ -n $NPID ]] && kill -TERM "$NPID" 2>/dev/null || true
  if [[ -n $DPID ]] && kill -0 "$DPID" 2>/dev/null; then
    kill -TERM "$DPID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$DPID" 2>/dev/null || true
  fi
  [[ -n $CTR ]] && "${BUILDAH[@]}" rm "$CTR" >/dev/null 2>&1 || true
  if ((rc != 0)) && [[ -f $TMP/daemon.log ]]; then
    echo "--- the container's nneditd log:" >&2
    tail -n 40 "$TMP/daemon.log" >&2
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the base image, from debootstrap ----------------------------------------
t0=$(date +%s)
if ! "${PODMAN[@]}" image exists "$BASE"; then
  if [[ ! -f $ROOTFS/.nnedit-complete ]]; then
    command -v debootstrap >/dev/null || die "debootstrap not installed: run deploy/setup.sh"
    say "debootstrap bookworm into $ROOTFS (from $MIRROR)"
    # Into a fresh folder and renamed at the end: a run cut short leaves no
    # half-made root that a later run would take for finished.
    rm -rf "$ROOTFS.tmp"
    timeout 900 debootstrap --variant=minbase bookworm "$ROOTFS.tmp" "$MIRROR" \
      >"$TMP/debootstrap.log" 2>&1 || { tail -n 20 "$TMP/debootstrap.log" >&2; die "debootstrap failed"; }
    touch "$ROOTFS.tmp/.nnedit-complete"
    rm -rf "$ROOTFS"
    mv "$ROOTFS.tmp" "$ROOTFS"
    say "debootstrap: $(since "$t0")"
  fi
  tar -C "$ROOTFS" --exclude=./.nnedit-complete -c . | "${PODMAN[@]}" import --quiet - "$BASE" >/dev/null
  say "imported $ROOTFS as $BASE: $(since "$t0")"
else
  say "base image $BASE present"
fi

# ---- the image ---------------------------------------------------------------
# --format docker keeps HEALTHCHECK (OCI images have none); --pull=never
# because no registry is reachable and the base is local; chroot isolation
# because the default runtime fails here on cgroups and rlimits; host network
# so that apt reaches the mirror. Layers are cached between runs.
t0=$(date +%s)
say "podman build $IMAGE (log: $TMP/build.log)"
if ! timeout 3000 "${PODMAN[@]}" build --format docker --pull=never --isolation=chroot \
     --network host -t "$IMAGE" "$ROOT" >"$TMP/build.log" 2>&1; then
  tail -n 40 "$TMP/build.log" >&2
  die "podman build failed"
fi
say "podman build: $(since "$t0")"
# Each build whose tree changed leaves the previous images untagged (~4 GB
# with the build stage). Tag this build stage (cached: instant) so that it,
# and the apt layers beneath it, stay as the next run's cache, then drop the
# untagged rest.
"${PODMAN[@]}" build --format docker --pull=never --isolation=chroot --network host \
  --target build-cpu -t "$IMAGE-build" "$ROOT" >>"$TMP/build.log" 2>&1 || die "tagging the build stage failed"
"${PODMAN[@]}" image prune -f >/dev/null 2>&1 || true

# What the image promises, read back from its configuration.
config=$("${PODMAN[@]}" image inspect --format \
  '{{json .Config.Entrypoint}} {{.Config.User}} {{json .Config.ExposedPorts}} {{json .Config.Volumes}} {{json .Config.Env}}' "$IMAGE")
health=$("${PODMAN[@]}" image inspect --format '{{json .HealthCheck}}' "$IMAGE")
for want in '"nneditd"' '10001' '50051/tcp' '9090/tcp' '/models' 'OMP_WAIT_POLICY=PASSIVE' 'OPENBLAS_CORETYPE='; do
  [[ $config == *"$want"* ]] || die "image config lacks $want: $config"
done
[[ $health == *"nneditctl"*"health"* ]] || die "image has no nneditctl health check: $health"

# ---- run the image's nneditd ---------------------------------------------------
# buildah run executes a command, not the image's entry point: read the entry
# point and append to it, as `docker run IMAGE ARGS` would. The later --listen
# (loopback, port 0: the daemon picks a free one) overrides the image's
# 0.0.0.0, so nothing here listens beyond loopback. The daemon writes the bound
# address to the ready file once the --load model has loaded.
mapfile -t entry < <("${PODMAN[@]}" image inspect --format '{{range .Config.Entrypoint}}{{println .}}{{end}}' "$IMAGE" | sed '/^$/d')
mkdir -p "$TMP/run"
chmod 0777 "$TMP/run" # the image's user (10001) writes the ready file here
# Inside the container the folder's name is unique to this run: chroot
# isolation shares the host's PID namespace, and ps finds this run's nneditd
# by it (below).
RUNDIR=/run/nnedit-test-$$-$RANDOM
CTR=$("${BUILDAH[@]}" from --pull-never "$IMAGE")
# Metrics, where this tree's nneditd has them: on a loopback port that was
# free a moment ago (the flag may not take port 0), scraped from the host.
metrics=()
if "${BUILDAH[@]}" run --isolation chroot "$CTR" -- nneditd --help | grep -q -- --metrics-listen; then
  MPORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  metrics=(--metrics-listen "127.0.0.1:$MPORT")
fi
t0=$(date +%s)
"${BUILDAH[@]}" run --isolation chroot --network host \
  -v "$FIX:/models:ro" -v "$TMP/run:$RUNDIR" "$CTR" -- \
  "${entry[@]}" --listen 127.0.0.1:0 --load "$MODEL" \
  --ready-file "$RUNDIR/ready" --drain-timeout 5 "${metrics[@]}" >"$TMP/daemon.log" 2>&1 &
DPID=$!
for _ in $(seq 600); do
  [[ -s $TMP/run/ready ]] && break
  kill -0 "$DPID" 2>/dev/null || die "the container's nneditd exited before it was ready"
  sleep 0.2
done
[[ -s $TMP/run/ready ]] || die "the container's nneditd was not ready within 120 s"
ADDR=$(cat "$TMP/run/ready")
say "nneditd in the container is ready at $ADDR: $(since "$t0")"
[[ $ADDR == 127.0.0.1:* ]] || die "bound $ADDR, not loopback"

# The daemon must run as the image's user, not root. buildah run forwards no
# signal (a SIGTERM to it kills the command), so the drain is asked of
# nneditd itself, by the pid ps gives for this run's ready file.
read -r NPID uid < <(ps -eo pid=,uid=,args= |
  awk -v f="$RUNDIR/ready" 'index($0, f) && $3 ~ /nneditd$/ {print $1, $2; exit}') || true
[[ -n ${NPID:-} ]] || die "no nneditd process with --ready-file $RUNDIR/ready"
[[ $uid == 10001 ]] || die "the container's nneditd runs as uid '${uid}', not 10001"

# The image's own HEALTHCHECK command, run inside the image as Docker would
# (CMD-SHELL, the image's user and environment): it also proves that the
# image's nneditctl finds its libraries.
hc=$("${PODMAN[@]}" image inspect --format '{{index .HealthCheck.Test 1}}' "$IMAGE")
timeout 60 "${BUILDAH[@]}" run --isolation chroot --network host --env NNEDIT_ADDR="$ADDR" \
  "$CTR" -- /bin/sh -c "$hc" >"$TMP/healthcheck.log" 2>&1 ||
  die "the image's HEALTHCHECK ($hc) failed: $(cat "$TMP/healthcheck.log")"
# libtorch's BLAS must be OpenBLAS: the reference BLAS is ~20x slower.
blas=$("${BUILDAH[@]}" run --isolation chroot "$CTR" -- readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3)
[[ $blas == *openblas* ]] || die "the image's libblas.so.3 is $blas, not OpenBLAS"

# ---- a client outside the container --------------------------------------------
"$CTL" --addr "$ADDR" --timeout 20 health | grep -q SERVING || die "health is not SERVING"
"$CTL" --addr "$ADDR" --timeout 20 health nnedit.ready | grep -q SERVING || die "readiness is not SERVING"
# The fixture's reference input: the top next token must be the one the
# eager Python model predicts (ref/logits.npy, row 0, last position).
tokens=$("$PY" -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))["inputs"]["input_ids"][0])))' \
  "$FIX/$MODEL/ref/manifest.json")
"$CTL" --addr "$ADDR" --timeout 60 -o json forward "$MODEL" --tokens "$tokens" --top-k 1 \
  >"$TMP/forward.json" || die "Forward failed: $(cat "$TMP/forward.json")"
"$PY" - "$TMP/forward.json" "$FIX/$MODEL/ref/logits.npy" <<'EOF' || die "Forward answered the wrong token"
import json, sys
import numpy as np
got = json.load(open(sys.argv[1]))["rows"][0]["top"][0]["token_id"]
want = int(np.load(sys.argv[2])[0, -1].argmax())
print(f"test_container: Forward top token {got}, reference {want}")
sys.exit(0 if got == want else 1)
EOF

if ((${#metrics[@]})); then
  "$PY" - "http://127.0.0.1:$MPORT/metrics" <<'EOF' || die "no nnedit metrics at 127.0.0.1:$MPORT/metrics"
import sys, urllib.request
body = urllib.request.urlopen(sys.argv[1], timeout=20).read().decode()
n = sum(1 for line in body.splitlines() if line.startswith("# TYPE nnedit_"))
# The Forward above, counted: nnedit_requests_total{...method="Forward"...code="OK"} 1
fwd = [l for l in body.splitlines() if l.startswith("nnedit_requests_total{")
       and 'method="Forward"' in l and 'code="OK"' in l]
print(f"test_container: /metrics from the host: {n} nnedit_ metric families; {fwd}")
sys.exit(0 if n and fwd and float(fwd[0].rsplit(" ", 1)[1]) == 1 else 1)
EOF
else
  say "this nneditd has no --metrics-listen: metrics not checked"
fi

# ---- stop: SIGTERM drains and exits 0 --------------------------------------------
kill -TERM "$NPID"
rc=0
timeout 30 tail --pid="$DPID" -f /dev/null || die "the container's nneditd did not stop within 30 s of SIGTERM"
wait "$DPID" || rc=$?
DPID=
NPID=
((rc == 0)) || die "the container's nneditd exited $rc after SIGTERM"
echo "test_container: PASS: image built, its health check and health SERVING, Forward matches the reference, metrics scraped, drained on SIGTERM"
