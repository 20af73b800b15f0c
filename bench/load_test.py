"""Load test (issue 13): nneditd on 127.0.0.1 under 1, 4, 16 and 64
concurrent clients, each running a fixed number of calls that mix Forward,
Trace, Apply/Drop and Describe on the fixture GPT-2. Prints, per client
count and method, throughput, p50 and p99 latency and how many calls were
refused (RESOURCE_EXHAUSTED past --max-queue), and per client count the p99
of the refusals alone — which must be milliseconds, not seconds.

Bounded in count and time; loopback only; the daemon it starts is stopped.
A benchmark, not a test: it asserts nothing about times (tests/integration/
test_overload_py.py checks the behaviours).

  PYTHONPATH=build/gen_py NNE_PY_GEN=build/gen_py NNEDITD=build/nneditd \\
  NNE_FIXTURES_DIR=build/fixtures /usr/bin/python3 bench/load_test.py [--calls N]
"""

import argparse
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import grpc  # noqa: E402

from nnedit_testlib import Daemon, forward, manifest, models_pb2, trace  # noqa: E402
from nnedit.v1 import edits_pb2, edits_pb2_grpc, inference_pb2 as I  # noqa: E402

NAME = "gpt2-script"


def pct(v, p):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def one(d, edits, rng, ids):
    k = rng.randrange(10)
    if k < 5:
        forward(d.inference, NAME, ids, top_k=5)
        return "Forward"
    if k < 8:
        tr = I.Trace(name="t", invokes=[I.Invoke(input_ids=[I.TokenRow(ids=r) for r in ids])],
                     nodes=[I.Node(id=1, read=I.ReadNode(site="layers.1.resid_post")),
                            I.Node(id=2, save=I.SaveNode(value=1, name="r"))])
        trace(d.inference, NAME, [tr], top_k=1)
        return "Trace"
    if k == 8:
        es = edits.Apply(edits_pb2.ApplyEditsRequest(model=NAME, edits=[
            edits_pb2.Edit(site="layers.0.mlp_out", op=edits_pb2.EDIT_OP_SCALE,
                           scalar=0.5)]), timeout=60).edit_set
        edits.Drop(edits_pb2.DropEditSetRequest(id=es.id), timeout=60)
        return "Apply+Drop"
    d.models.Describe(models_pb2.DescribeModelRequest(name=NAME), timeout=60)
    return "Describe"


def run(d, clients, calls_each):
    edits = edits_pb2_grpc.EditsStub(d.channel)
    ids = manifest(NAME)["inputs"]["input_ids"]
    lat = {}
    refused = []
    errors = []
    lock = threading.Lock()

    def client(seed):
        rng = random.Random(seed)
        for _ in range(calls_each):
            t0 = time.perf_counter()
            try:
                what = one(d, edits, rng, ids)
                dt = time.perf_counter() - t0
                with lock:
                    lat.setdefault(what, []).append(dt)
            except grpc.RpcError as e:
                dt = time.perf_counter() - t0
                with lock:
                    if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        refused.append(dt)
                    else:
                        errors.append("%s: %s" % (e.code(), e.details()))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(s,)) for s in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    wall = time.perf_counter() - t0
    return lat, refused, errors, wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=40, help="calls per client")
    ap.add_argument("--max-queue", type=int, default=8)
    args = ap.parse_args()
    d = Daemon("--load", NAME, "--max-queue", str(args.max_queue), "--workers", "1")
    try:
        print("nneditd on %s, --max-queue %d, 1 worker; %d calls per client\n"
              % (d.addr, args.max_queue, args.calls))
        print("| clients | method | calls | calls/s | p50 ms | p99 ms | refused | refusal p99 ms |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|")
        for clients in (1, 4, 16, 64):
            lat, refused, errors, wall = run(d, clients, args.calls)
            if errors:
                print("errors:", errors[:3])
            for what in ("Forward", "Trace", "Apply+Drop", "Describe"):
                v = lat.get(what, [])
                print("| %d | %s | %d | %.0f | %.1f | %.1f | | |" % (
                    clients, what, len(v), len(v) / wall, pct(v, 50) * 1e3, pct(v, 99) * 1e3))
            print("| %d | (all) | %d | %.0f | | | %d | %.1f |" % (
                clients, sum(len(v) for v in lat.values()) + len(refused),
                (sum(len(v) for v in lat.values()) + len(refused)) / wall, len(refused),
                pct(refused, 99) * 1e3))
    finally:
        code = d.stop()
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
