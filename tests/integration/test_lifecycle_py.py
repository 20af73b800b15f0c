"""The daemon's life around Unload and SIGTERM, under concurrent calls
(issue 8), with a Python grpcio client.

- An Apply whose job waits behind a slow Trace while Models.Unload arrives
  must not create an edit set on a model that is going away (it used to:
  the set then pointed into the freed backend cache, Edits.List answered
  garbage and Edits.Drop crashed the daemon). The rule: Unload refuses a
  model that has edit sets (FAILED_PRECONDITION naming them); once an
  Unload is accepted, an Apply still on an executor fails with
  FAILED_PRECONDITION, and nothing of it remains.
- Random mixes of Load/Unload/Apply/Drop/Forward/Trace/List/Get/Describe/
  Graph never crash the daemon or corrupt what List and Get return.
- SIGTERM under load: every call the daemon accepted ends OK, every call it
  will not serve ends UNAVAILABLE ("shutting down", which clients retry
  elsewhere), never CANCELLED, never unanswered; exit 0.
"""

import os
import random
import signal
import sys
import threading
import time
import unittest

import grpc

from nnedit_testlib import (Daemon, forward, health_pb2, inference_pb2, models_pb2,
                            tensor_pb2, wait_loaded)

sys.path.insert(0, os.environ.get("NNE_PY_GEN", ""))
from nnedit.v1 import edits_pb2, edits_pb2_grpc  # noqa: E402

I = inference_pb2
NAME = "gpt2-script"
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


def slow_trace_request(n_tanh):
    """16 rows x 64 tokens (the fixture's max_batch; the outside check
    used 32 on a model that allows it), a read of layers.0.resid_post, n_tanh chained
    tanh calls on it, a save: a trace whose forward is quick and whose
    graph keeps the one executor busy for a while."""
    nodes = [I.Node(id=0, read=I.ReadNode(site="layers.0.resid_post"))]
    for k in range(n_tanh):
        nodes.append(I.Node(id=k + 1, call=I.CallNode(fn="tanh", args=[I.Arg(node=k)])))
    nodes.append(I.Node(id=n_tanh + 1, save=I.SaveNode(value=n_tanh, name="h")))
    rows = [[(r * 64 + c) % 997 + 1 for c in range(64)] for r in range(16)]
    inv = I.Invoke(input_ids=[I.TokenRow(ids=r) for r in rows])
    return I.TraceRequest(model=NAME, traces=[I.Trace(invokes=[inv], nodes=nodes)])


def run_trace(d, req, timeout=120):
    """Runs a Trace to its end; returns its TraceResults."""
    return [m.result for m in d.inference.Trace(req, timeout=timeout) if m.HasField("result")]


def add_edit(site="layers.1.resid_post", scalar=0.5):
    return edits_pb2.Edit(site=site, op=edits_pb2.EDIT_OP_ADD, scalar=scalar)


def outcome_into(out):
    """A function go(key, fn) that stores fn()'s value, or the RpcError it
    raised, under out[key] (for calls run on threads)."""
    def go(key, fn):
        try:
            out[key] = fn()
        except grpc.RpcError as e:
            out[key] = e
    return go


def model_state(d, name=NAME):
    for m in d.models.List(models_pb2.ListModelsRequest()).models:
        if m.name == name:
            return m.state
    return None


class UnloadRace(unittest.TestCase):
    """Unload against calls that hold the model across an executor job."""

    def start(self):
        d = Daemon("--load", NAME, "--max-trace-nodes", "20000")
        wait_loaded(d, [NAME])
        return d, edits_pb2_grpc.EditsStub(d.channel)

    def calibrate(self, d):
        """A tanh count that makes the slow trace last >= 0.6 s here."""
        n = 1000
        while True:
            t0 = time.monotonic()
            run_trace(d, slow_trace_request(n))
            took = time.monotonic() - t0
            if took >= 0.6 or n >= 16000:
                return n, took
            n = min(16000, int(n * 0.8 / max(took, 0.01)) + 1)

    def test_apply_behind_a_slow_trace_while_the_model_unloads(self):
        """The outside check's exact sequence: slow Trace; Apply 150 ms
        later (its job queues behind the trace); Unload 150 ms after that.
        Unload is accepted (no edit set exists yet) and the Apply fails: no
        set may be created on a model that is going away."""
        d, edits = self.start()
        try:
            n, took = self.calibrate(d)
            step = max(0.15, took / 6)
            out = {}
            go = outcome_into(out)

            req = slow_trace_request(n)
            apply_req = edits_pb2.ApplyEditsRequest(model=NAME, label="race", edits=[add_edit()])
            threads = [
                threading.Thread(target=go, args=("trace", lambda: run_trace(d, req))),
                threading.Thread(target=go, args=("apply", lambda: edits.Apply(apply_req,
                                                                                timeout=120))),
                threading.Thread(target=go, args=("unload", lambda: d.models.Unload(
                    models_pb2.UnloadModelRequest(name=NAME), timeout=120))),
            ]
            t_start = time.monotonic()
            for k, th in enumerate(threads):
                th.start()
                time.sleep(step)
            for th in threads:
                th.join(180)
                self.assertFalse(th.is_alive())
            trace_s = time.monotonic() - t_start
            self.assertNotIsInstance(out["trace"], grpc.RpcError, str(out["trace"]))
            # The race was real: the trace still ran when Unload was sent.
            self.assertGreater(trace_s, 2 * step, (trace_s, step))
            self.assertNotIsInstance(out["unload"], grpc.RpcError, str(out["unload"]))
            self.assertIsInstance(out["apply"], grpc.RpcError, "an edit set was created "
                                  "on a model that was unloading: %s" % out["apply"])
            self.assertEqual(out["apply"].code(), FAILED_PRECONDITION, out["apply"].details())
            self.assertIn("unload", out["apply"].details())
            # Nothing of the Apply remains, and every call answers sanely.
            self.assertEqual(list(edits.List(edits_pb2.ListEditSetsRequest()).edit_sets), [])
            self.assertEqual(model_state(d), models_pb2.MODEL_STATE_AVAILABLE)
            # The model loads again and works with edit sets as before.
            d.models.Load(models_pb2.LoadModelRequest(name=NAME), timeout=120)
            es = edits.Apply(apply_req, timeout=120).edit_set
            got = edits.Get(edits_pb2.GetEditSetRequest(id=es.id))
            self.assertEqual(got.edit_set.backend_key, es.backend_key)
            self.assertEqual(len(got.edit_set.backend_key), 16)
            # Unload refuses while the set exists, naming it.
            with self.assertRaises(grpc.RpcError) as cm:
                d.models.Unload(models_pb2.UnloadModelRequest(name=NAME), timeout=60)
            self.assertEqual(cm.exception.code(), FAILED_PRECONDITION)
            self.assertIn(es.id, cm.exception.details())
            edits.Drop(edits_pb2.DropEditSetRequest(id=es.id))
            d.models.Unload(models_pb2.UnloadModelRequest(name=NAME), timeout=60)
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())

    def test_forward_and_trace_on_a_set_across_drop_and_unload(self):
        """A Forward and a Trace on an edit set hold the set and the model:
        the set is dropped and the model unloaded while both are queued
        behind a slow trace; both finish with the set's edits applied, then
        the model unloads."""
        d, edits = self.start()
        try:
            n, took = self.calibrate(d)
            step = max(0.1, took / 8)
            es = edits.Apply(edits_pb2.ApplyEditsRequest(
                model=NAME, edits=[edits_pb2.Edit(site="layers.1.resid_post",
                                                  op=edits_pb2.EDIT_OP_ZERO)]), timeout=120).edit_set
            ids = [[5, 6, 7, 8]]
            _, pristine = forward(d.inference, NAME, ids, logits=I.LOGITS_MODE_ALL)
            out = {}
            go = outcome_into(out)

            slow = slow_trace_request(n)
            set_trace = I.TraceRequest(model=NAME, edit_set=es.id, logits=I.LOGITS_MODE_ALL,
                                       traces=[I.Trace(invokes=[I.Invoke(
                                           input_ids=[I.TokenRow(ids=ids[0])])])])
            calls = [
                ("slow", lambda: run_trace(d, slow)),
                ("fwd", lambda: forward(d.inference, NAME, ids, logits=I.LOGITS_MODE_ALL,
                                        edit_set=es.id)),
                ("trace", lambda: list(d.inference.Trace(set_trace, timeout=120))),
            ]
            threads = [threading.Thread(target=go, args=c) for c in calls]
            for th in threads:
                th.start()
                time.sleep(step)
            edits.Drop(edits_pb2.DropEditSetRequest(id=es.id))
            go("unload", lambda: d.models.Unload(models_pb2.UnloadModelRequest(name=NAME),
                                                  timeout=120))
            for th in threads:
                th.join(180)
            for k in ("slow", "fwd", "trace", "unload"):
                self.assertNotIsInstance(out[k], grpc.RpcError, "%s: %s" % (k, out[k]))
            # The edit (layers.1 zeroed) applied: logits differ from pristine.
            self.assertGreater(abs(out["fwd"][1]["logits"] - pristine["logits"]).max(), 1e-3)
            self.assertEqual(model_state(d), models_pb2.MODEL_STATE_AVAILABLE)
            self.assertEqual(list(edits.List(edits_pb2.ListEditSetsRequest()).edit_sets), [])
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())

    def test_random_mixes_with_unload(self):
        """Six clients send random mixes of every call that touches models
        and edit sets (fixed seeds) for a few seconds; Load and Unload
        included. No call may end INTERNAL or UNKNOWN, List and Get must
        always encode, the daemon must stay up and exit 0."""
        d, edits = self.start()
        allowed = {grpc.StatusCode.OK, FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND,
                   grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
                   grpc.StatusCode.INVALID_ARGUMENT}
        bad = []
        live_ids = []
        lock = threading.Lock()
        stop = time.monotonic() + 6.0
        ids = [[3, 4, 5, 6, 7]]

        def one(rng):
            op = rng.choice(["load", "unload", "apply", "apply", "drop", "list", "get",
                             "forward", "trace", "describe", "graph"])
            with lock:
                es = rng.choice(live_ids) if live_ids and rng.random() < 0.9 else "es-0"
            if op == "load":
                d.models.Load(models_pb2.LoadModelRequest(name=NAME), timeout=60)
            elif op == "unload":
                d.models.Unload(models_pb2.UnloadModelRequest(name=NAME), timeout=60)
            elif op == "apply":
                site = rng.choice(["layers.0.resid_post", "layers.1.resid_post",
                                   "layers.1.self_attn.pattern", "layers.0.mlp_out"])
                r = edits.Apply(edits_pb2.ApplyEditsRequest(
                    model=NAME, edits=[add_edit(site, rng.random())]), timeout=60)
                with lock:
                    live_ids.append(r.edit_set.id)
            elif op == "drop":
                edits.Drop(edits_pb2.DropEditSetRequest(id=es), timeout=60)
                with lock:
                    if es in live_ids:
                        live_ids.remove(es)
            elif op == "list":
                for s in edits.List(edits_pb2.ListEditSetsRequest(), timeout=60).edit_sets:
                    assert s.id.startswith("es-") and len(s.backend_key) in (0, 16), s
            elif op == "get":
                g = edits.Get(edits_pb2.GetEditSetRequest(id=es), timeout=60)
                assert g.edit_set.model == NAME and len(g.edits) == 1, g
            elif op == "forward":
                forward(d.inference, NAME, ids, top_k=1, edit_set=es if rng.random() < .5 else "")
            elif op == "trace":
                req = I.TraceRequest(model=NAME, edit_set=es if rng.random() < .5 else "",
                                     traces=[I.Trace(invokes=[I.Invoke(
                                         input_ids=[I.TokenRow(ids=ids[0])])], nodes=[
                                         I.Node(id=0, read=I.ReadNode(site="layers.0.resid_post")),
                                         I.Node(id=1, save=I.SaveNode(value=0, name="r"))])])
                list(d.inference.Trace(req, timeout=60))
            elif op == "describe":
                d.models.Describe(models_pb2.DescribeModelRequest(name=NAME, edit_set=es),
                                  timeout=60)
            else:
                d.models.Graph(models_pb2.GraphRequest(model=NAME, module="layers.0.self_attn",
                                                       edit_set=es), timeout=60)

        def client(seed):
            rng = random.Random(seed)
            while time.monotonic() < stop:
                try:
                    one(rng)
                except grpc.RpcError as e:
                    if e.code() not in allowed:
                        bad.append("%s: %s" % (e.code(), e.details()))
                except AssertionError as e:
                    bad.append("bad reply: %s" % e)

        try:
            threads = [threading.Thread(target=client, args=(seed,)) for seed in range(6)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(120)
            self.assertEqual(bad, [], d.log_text()[-3000:])
            self.assertIsNone(d.proc.poll(), "nneditd died:\n" + d.log_text()[-3000:])
            # Every set still listed is whole and can be dropped.
            for s in edits.List(edits_pb2.ListEditSetsRequest()).edit_sets:
                self.assertEqual(len(s.backend_key), 16, s)
                self.assertEqual(len(edits.Get(edits_pb2.GetEditSetRequest(id=s.id)).edits), 1)
                edits.Drop(edits_pb2.DropEditSetRequest(id=s.id))
        finally:
            self.assertEqual(d.stop(), 0, d.log_text()[-3000:])


class DrainUnderLoad(unittest.TestCase):
    """SIGTERM while 8 clients stream Forward and Trace and a burst of 64
    calls arrives around the signal."""

    ROUNDS = 3

    def test_sigterm_under_a_burst(self):
        for rnd in range(self.ROUNDS):
            with self.subTest(round=rnd):
                self.one_round(rnd)

    def one_round(self, rnd):
        d = Daemon("--load", NAME, "--drain-timeout", "30")
        wait_loaded(d, [NAME])
        ids = [[(7 * k + rnd) % 997 + 1 for k in range(48)]] * 4
        trace_req = I.TraceRequest(model=NAME, traces=[I.Trace(
            invokes=[I.Invoke(input_ids=[I.TokenRow(ids=r) for r in ids])],
            nodes=[I.Node(id=0, read=I.ReadNode(site="layers.1.resid_post")),
                   I.Node(id=1, save=I.SaveNode(value=0, name="r"))])])
        results = []  # (code, details, t_end)
        lock = threading.Lock()
        stopping = threading.Event()

        def record(code, details):
            with lock:
                results.append((code, details, time.monotonic()))

        def call_once(kind):
            # Deadlines far beyond the drain: a call the daemon forgets shows
            # up as an end long after the signal, not as a timeout.
            try:
                if kind == 0:
                    forward(d.inference, NAME, ids, top_k=3, logits=I.LOGITS_MODE_LAST, timeout=25)
                elif kind == 1:
                    list(d.inference.Trace(trace_req, timeout=25))
                elif kind == 2:
                    d.models.List(models_pb2.ListModelsRequest(), timeout=25)
                else:
                    d.models.Describe(models_pb2.DescribeModelRequest(name=NAME), timeout=25)
                record(grpc.StatusCode.OK, "")
                return True
            except grpc.RpcError as e:
                record(e.code(), e.details())
                return False

        def streamer(k):
            # Streams until the daemon refuses it.
            while not stopping.is_set():
                if not call_once(k % 2):
                    return

        streamers = [threading.Thread(target=streamer, args=(k,)) for k in range(8)]
        for th in streamers:
            th.start()
        time.sleep(0.3)
        burst = [threading.Thread(target=call_once, args=(k % 4,)) for k in range(64)]
        for th in burst[:32]:
            th.start()
        t_sig = time.monotonic()
        d.signal(signal.SIGTERM)
        for th in burst[32:]:
            th.start()
        for th in burst + streamers:
            th.join(60)
        stopping.set()
        code = d.wait(60)
        log = d.log_text()
        d.stop()
        self.assertEqual(code, 0, log[-3000:])
        self.assertGreater(len(results), 64)
        bad = [(c, m) for c, m, _ in results
               if c not in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE)]
        self.assertEqual(bad, [], "calls ended neither OK nor UNAVAILABLE")
        late = [(c, m, t - t_sig) for c, m, t in results if t - t_sig > 8.0]
        self.assertEqual(late, [], "calls answered long after the signal")
        refused = [m for c, m, _ in results if c == grpc.StatusCode.UNAVAILABLE]
        print("round %d: %d calls, %d OK, %d UNAVAILABLE" % (
            rnd, len(results), len(results) - len(refused), len(refused)))


class DrainHealth(unittest.TestCase):
    def test_health_says_not_serving_while_draining(self):
        """While a call is still in flight after SIGTERM, Check answers
        NOT_SERVING (a readiness probe takes the replica out) or, once the
        daemon stops accepting calls, UNAVAILABLE; other calls are refused
        with UNAVAILABLE naming the shutdown."""
        d = Daemon("--load", NAME, "--max-trace-nodes", "20000")
        try:
            wait_loaded(d, [NAME])
            out = {}
            req = slow_trace_request(6000)

            def slow():
                try:
                    out["t"] = run_trace(d, req)
                except grpc.RpcError as e:
                    out["t"] = e

            th = threading.Thread(target=slow)
            th.start()
            time.sleep(0.2)
            d.signal(signal.SIGTERM)
            time.sleep(0.02)
            try:
                r = d.health.Check(health_pb2.HealthCheckRequest(), timeout=5)
                self.assertEqual(r.status, health_pb2.HealthCheckResponse.NOT_SERVING)
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.UNAVAILABLE, e.details())
            with self.assertRaises(grpc.RpcError) as cm:
                d.models.List(models_pb2.ListModelsRequest(), timeout=5)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
            th.join(120)
            self.assertNotIsInstance(out["t"], grpc.RpcError, str(out["t"]))
            self.assertEqual(d.wait(60), 0, d.log_text())
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main()
