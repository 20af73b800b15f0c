# cli_lib.sh — the shared part of the nneditctl shell tests (test_*cli.sh).
# Sourced, never run; not named test_*.sh, so tests/CMakeLists.txt does not
# register it as a test.
#
# A sourcing test must, before `. "$(dirname "$0")/cli_lib.sh"`:
#   - run under bash with `set -u`;
#   - set TEST_NAME (e.g. test_cli): it prefixes the test's messages and
#     names its temporary directory (/tmp/nnedit-cli-XXXXXX for test_cli).
# It may, after sourcing, change RUN_TIMEOUT (seconds one nneditctl run may
# take; 60 by default). To use start_fake it writes $TMP/fake.py first.
#
# Paths, from ctest's environment (NNEDITCTL, NNEDITD, NNE_FIXTURES_DIR,
# NNE_PYTHON, NNE_PY_GEN) or, run by hand from the source tree, from a build
# in ./build (NNE_BUILD_DIR overrides):
#   HERE (this folder), BUILD, CTL, NNEDITD, FIX, PY, PY_GEN
# State: TMP (a fresh temporary directory, removed on exit), FAILS and
# CHECKS (counters), OUT, ERR and RC (the last run), DPID and FPID (the
# daemon and the fake server, killed on exit), ADDR and A=(--addr ADDR)
# after start_daemon, FADDR and F=(--addr FADDR) after start_fake.
# The fixtures' reference batch (ref/logits_jit.npy): IDS0, IDS1.
#
# Helpers:
#   fail MESSAGE             count a failed expectation, say it on stderr
#   run ARGS...              run nneditctl (bounded); sets OUT, ERR, RC
#   expect CODE WHAT         the last run exited CODE
#   has HAYSTACK NEEDLE WHAT / hasnt HAYSTACK NEEDLE WHAT
#   json PYTHON WHAT         the last run's stdout is one JSON document `d`
#                            for which the Python statements hold
#   json_err PYTHON WHAT     the last run's stderr is one line, a JSON error
#                            `e` ({"code", "message"}) for which they hold
#   py PYTHON WHAT           the Python statements hold (json, sys, numpy as np)
#   wait_ready FILE PID      bounded wait for a "host:port\n" ready file
#   need_built FILE...       exit 1 unless each is an executable
#   need_fixtures            exit 1 unless $FIX holds the fixtures
#   start_daemon             need_built nneditd, need_fixtures, then nneditd
#                            on 127.0.0.1:0 with the fixtures
#   stop_daemon              SIGTERM and a bounded wait; fails if nneditd
#                            stays; else returns 0 with its status in DAEMON_RC
#   start_fake ARGS...       python $TMP/fake.py READY_FILE ARGS...; fake.py
#                            imports field and serve from fakeserve (written
#                            to $TMP here) and ends with serve(server)
#   stop_fake                kill the fake server
#   finish                   print the counts; exit 1 if anything failed
#
# Only 127.0.0.1 is used; every wait is bounded; everything started is
# killed on exit (and on INT or TERM).

# The variables set here are used by the sourcing tests.
# shellcheck shell=bash disable=SC2034
: "${TEST_NAME:?set TEST_NAME before sourcing cli_lib.sh}"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=${NNE_BUILD_DIR:-$HERE/../../build}
CTL=${NNEDITCTL:-$BUILD/nneditctl}
NNEDITD=${NNEDITD:-$BUILD/nneditd}
FIX=${NNE_FIXTURES_DIR:-$BUILD/fixtures}
PY=${NNE_PYTHON:-/usr/bin/python3}
PY_GEN=${NNE_PY_GEN:-$BUILD/gen_py}

IDS0=31,415,926,5,27,3,777
IDS1=1,998,512,64,300,71,2

RUN_TIMEOUT=60

_tmp_tag=${TEST_NAME#test_}
TMP=$(mktemp -d "/tmp/nnedit-${_tmp_tag//_/-}-XXXXXX")
DPID=
FPID=
FAILS=0
CHECKS=0

cleanup() {
  local p
  for p in $DPID $FPID; do
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "FAIL: $*" >&2
  FAILS=$((FAILS + 1))
}

# run ARGS...: runs nneditctl (bounded), sets OUT, ERR and RC.
run() {
  OUT=$(timeout "$RUN_TIMEOUT" "$CTL" "$@" 2>"$TMP/stderr")
  RC=$?
  ERR=$(cat "$TMP/stderr")
  CHECKS=$((CHECKS + 1))
}

# expect CODE WHAT: the last run's exit status.
expect() {
  [ "$RC" = "$1" ] || fail "$2: exit $RC, expected $1 (stdout: ${OUT:0:300}; stderr: ${ERR:0:600})"
}

# has HAYSTACK NEEDLE WHAT
has() {
  case "$1" in
  *"$2"*) ;;
  *) fail "$3: '$2' not in: ${1:0:600}" ;;
  esac
}

# hasnt HAYSTACK NEEDLE WHAT
hasnt() {
  case "$1" in
  *"$2"*) fail "$3: '$2' unexpectedly in: ${1:0:600}" ;;
  esac
}

# json PYTHON WHAT: the last run's stdout is one JSON document `d` for which
# the Python statements hold.
json() {
  printf '%s' "$OUT" | "$PY" -c "
import json, sys
d = json.load(sys.stdin)
$1
" 2>"$TMP/pyerr" || fail "$2: $(tail -3 "$TMP/pyerr") (stdout: ${OUT:0:300})"
}

# json_err PYTHON WHAT: the last run's stderr is one line holding one JSON
# object `e` (nneditctl's error in JSON mode) for which the statements hold.
json_err() {
  [ "$(printf '%s\n' "$ERR" | wc -l)" = 1 ] || fail "$2: stderr is not one line: ${ERR:0:600}"
  printf '%s' "$ERR" | "$PY" -c "
import json, sys
e = json.load(sys.stdin)
assert isinstance(e['code'], str) and isinstance(e['message'], str), e
$1
" 2>"$TMP/pyerr" || fail "$2: $(tail -3 "$TMP/pyerr") (stderr: ${ERR:0:600})"
}

# py PYTHON WHAT: the statements hold (numpy imported as np).
py() {
  "$PY" -c "
import json, sys
import numpy as np
$1
" 2>"$TMP/pyerr" || fail "$2: $(tail -3 "$TMP/pyerr")"
}

# wait_ready FILE PID: bounded wait for a "host:port\n" ready file.
wait_ready() {
  local _
  for _ in $(seq 600); do
    if [ -s "$1" ] && [ -z "$(tail -c1 "$1" | tr -d '\n')" ]; then
      head -n1 "$1"
      return 0
    fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# need_built FILE...: every FILE is built (executable), or the test stops.
need_built() {
  local f
  for f in "$@"; do
    [ -x "$f" ] || { echo "$TEST_NAME: $f is not built" >&2; exit 1; }
  done
}

# need_fixtures: the fixture model repository is there, or the test stops.
need_fixtures() {
  [ -f "$FIX/gpt2-script/ref/manifest.json" ] ||
    { echo "$TEST_NAME: no fixtures in $FIX" >&2; exit 1; }
}

# await_server WHAT READY PID LOG: prints the address that server PID
# announces in READY; if it never does, says that WHAT did not start, shows
# LOG on stderr and fails.
await_server() {
  wait_ready "$2" "$3" && return 0
  echo "$TEST_NAME: $1 did not start:" >&2
  cat "$4" >&2
  return 1
}

# start_daemon: nneditd on a free loopback port with the fixtures as its
# model repository; sets DPID, ADDR and A. Stops the test if nneditd is not
# built, the fixtures are missing, or it does not start (with its log).
start_daemon() {
  need_built "$NNEDITD"
  need_fixtures
  rm -f "$TMP/ready"
  "$NNEDITD" --listen 127.0.0.1:0 --ready-file "$TMP/ready" --model-repo "$FIX" \
    >"$TMP/nneditd.log" 2>&1 &
  DPID=$!
  ADDR=$(await_server nneditd "$TMP/ready" "$DPID" "$TMP/nneditd.log") || exit 1
  A=(--addr "$ADDR")
}

# stop_daemon: SIGTERM, then a bounded wait (30 s) for nneditd to exit. A
# daemon still running is a failure (and is left to cleanup to kill); one
# that exited leaves its exit status in DAEMON_RC and stop_daemon returns 0.
stop_daemon() {
  local _
  kill -TERM "$DPID"
  for _ in $(seq 300); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$DPID" 2>/dev/null; then
    fail "nneditd did not exit within 30 s of SIGTERM"
    return 1
  fi
  wait "$DPID" 2>/dev/null
  DAEMON_RC=$?
  DPID=
  return 0
}

# The fake servers' common code, imported by $TMP/fake.py as fakeserve (its
# own folder is first on sys.path). field(num, payload): one length-delimited
# protobuf field, for hand-made (broken) replies. serve(server): starts the
# grpc.server on a free loopback port, announces "127.0.0.1:PORT\n" in the
# ready file (sys.argv[1], written whole by a rename) and serves until killed.
cat >"$TMP/fakeserve.py" <<'PYEOF'
import os, sys

def varint(n):
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7f) | 0x80]); n >>= 7
    return out + bytes([n])

def field(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload

def serve(server):
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write("127.0.0.1:%d\n" % port)
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    server.wait_for_termination()
PYEOF

# start_fake ARGS...: runs the test's fake server, $TMP/fake.py (which ends
# in fakeserve's serve(server)), as `$PY $TMP/fake.py READY_FILE ARGS...`;
# sets FPID, FADDR and F, or stops the test with its log.
start_fake() {
  rm -f "$TMP/fake.ready"
  NNE_PY_GEN=$PY_GEN "$PY" "$TMP/fake.py" "$TMP/fake.ready" "$@" >"$TMP/fake.log" 2>&1 &
  FPID=$!
  FADDR=$(await_server "the fake server" "$TMP/fake.ready" "$FPID" "$TMP/fake.log") || exit 1
  F=(--addr "$FADDR")
}

stop_fake() {
  kill -KILL "$FPID" 2>/dev/null
  wait "$FPID" 2>/dev/null
  FPID=
}

# finish: the last line of a test; its exit status says whether every
# expectation held.
finish() {
  if [ "$FAILS" -ne 0 ]; then
    echo "$TEST_NAME: $FAILS failed expectations in $CHECKS runs" >&2
    exit 1
  fi
  echo "$TEST_NAME: $CHECKS runs, every expectation met"
  exit 0
}
