"""Memory flatness (issue 13): a daemon that researchers leave running for
weeks must not grow with the calls it serves. 10,000 mixed requests from 4
clients — Forward with logits and saves, Trace sessions, Apply / Forward on
the set / Drop, Describe, List, health, Generate (read to the end, or
cancelled after its first step: its KV cache must go with it), and failing
calls — and the
daemon's resident memory after the warm-up (the first 1,000) may grow by
less than RSS_BOUND_MB over the other 9,000. The figures go to the README.

Skipped in the ASan build: its allocator keeps freed memory in quarantine
on purpose, so RSS there measures ASan, not the daemon (LeakSanitizer
checks that build's frees instead).
"""

import os
import random
import threading
import time
import unittest

import grpc

from nnedit_testlib import Daemon, forward, generate, health_pb2, manifest, models_pb2, trace
from nnedit.v1 import edits_pb2, edits_pb2_grpc, inference_pb2 as I

NAME = "gpt2-script"
IDS = manifest(NAME)["inputs"]["input_ids"]
TOTAL = 10000
WARMUP = 1000
CLIENTS = 4
RSS_BOUND_MB = 8  # measured: 0.3 MiB (README, "Tests")


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def one_request(d, edits, rng):
    k = rng.randrange(12)
    if k == 10:
        generate(d.inference, I.GenerateRequest(
            model=NAME, prompts=[I.TokenRow(ids=r) for r in IDS], max_new_tokens=8,
            ignore_eos=True, save=["layers.1.resid_post"]))
        return
    if k == 11:
        call = d.inference.Generate(I.GenerateRequest(
            model=NAME, prompts=[I.TokenRow(ids=IDS[0])], max_new_tokens=40, ignore_eos=True),
            timeout=60)
        next(call)
        call.cancel()
        return
    if k < 3:
        forward(d.inference, NAME, IDS, top_k=3, logits=2, save=["layers.0.resid_post"])
    elif k < 5:
        tr = I.Trace(name="t", invokes=[I.Invoke(input_ids=[I.TokenRow(ids=r) for r in IDS])],
                     nodes=[I.Node(id=1, read=I.ReadNode(site="layers.1.mlp_out")),
                            I.Node(id=2, save=I.SaveNode(value=1, name="m"))])
        trace(d.inference, NAME, [tr], top_k=2)
    elif k == 5:
        es = edits.Apply(edits_pb2.ApplyEditsRequest(model=NAME, edits=[
            edits_pb2.Edit(site="layers.%d.mlp_out" % rng.randrange(2),
                           op=edits_pb2.EDIT_OP_SCALE, scalar=rng.random())]),
            timeout=60).edit_set
        forward(d.inference, NAME, IDS, top_k=1, edit_set=es.id)
        edits.Drop(edits_pb2.DropEditSetRequest(id=es.id), timeout=30)
    elif k == 6:
        d.models.Describe(models_pb2.DescribeModelRequest(name=NAME), timeout=30)
    elif k == 7:
        d.models.List(models_pb2.ListModelsRequest(), timeout=30)
        d.health.Check(health_pb2.HealthCheckRequest(service="nnedit.ready"), timeout=30)
    else:
        # Calls that fail: they must not leave anything behind either.
        try:
            forward(d.inference, NAME if k == 8 else "no-such-model", [[1, 10 ** 9]])
        except grpc.RpcError as e:
            assert e.code() in (grpc.StatusCode.INVALID_ARGUMENT,
                                grpc.StatusCode.NOT_FOUND), e
        else:
            raise AssertionError("a bad request succeeded")


@unittest.skipIf(os.environ.get("NNE_SANITIZED") == "1",
                 "RSS under ASan measures its quarantine, not the daemon")
class Memory(unittest.TestCase):
    def test_rss_flat_over_10000_requests(self):
        with Daemon("--load", NAME) as d:
            edits = edits_pb2_grpc.EditsStub(d.channel)
            pid = d.proc.pid
            lock = threading.Lock()
            state = {"done": 0, "rss_warm": None, "errors": []}

            def worker(seed):
                rng = random.Random(seed)
                while True:
                    with lock:
                        if state["done"] >= TOTAL or state["errors"]:
                            return
                        state["done"] += 1
                        n = state["done"]
                        if n == WARMUP:
                            state["rss_warm"] = rss_kb(pid)
                    try:
                        one_request(d, edits, rng)
                    except Exception as e:  # noqa: BLE001 - reported below
                        with lock:
                            state["errors"].append(repr(e))
                        return

            t0 = time.monotonic()
            threads = [threading.Thread(target=worker, args=(s,)) for s in range(CLIENTS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=1200)
            self.assertFalse(any(t.is_alive() for t in threads), "clients still running")
            self.assertEqual(state["errors"], [])
            rss_end = rss_kb(pid)
            grown = (rss_end - state["rss_warm"]) / 1024.0
            print("memory: %d requests in %.0f s; RSS after %d: %.1f MiB, after %d: "
                  "%.1f MiB (grew %.1f MiB; bound %d MiB)" %
                  (TOTAL, time.monotonic() - t0, WARMUP, state["rss_warm"] / 1024.0,
                   TOTAL, rss_end / 1024.0, grown, RSS_BOUND_MB))
            self.assertLess(grown, RSS_BOUND_MB)
        self.assertEqual(d.proc.returncode, 0, d.log_text())


if __name__ == "__main__":
    unittest.main()
