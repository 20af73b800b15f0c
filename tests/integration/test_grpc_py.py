"""nneditd driven by a Python grpcio client generated from proto/.

Numbers are checked against the fixture references computed in Python
(tests/fixtures), statuses and messages against the bad-input rules of the
foundation issue, and the process's life (drain on SIGTERM) end to end.
"""

import os
import shutil
import signal
import tempfile
import threading
import time
import unittest

import grpc
import numpy as np

from nnedit_testlib import (Daemon, FIXTURES, forward, health_pb2, inference_pb2,
                            manifest, models_pb2, ref_array, tensor_pb2,
                            write_slow_model)

FIXTURE_NAMES = ["gpt2-script", "gpt2-trace", "llama-script", "llama-trace",
                 "neox-script", "neox-trace"]
NONE, LEFT, RIGHT = (inference_pb2.PADDING_UNSPECIFIED, inference_pb2.PADDING_LEFT,
                     inference_pb2.PADDING_RIGHT)
ALL, LAST = inference_pb2.LOGITS_MODE_ALL, inference_pb2.LOGITS_MODE_LAST


def softmax(x):
    e = np.exp(x.astype(np.float64) - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Serving(unittest.TestCase):
    """One daemon with every fixture loaded."""

    @classmethod
    def setUpClass(cls):
        args = []
        for n in FIXTURE_NAMES:
            args += ["--load", n]
        cls.d = Daemon(*args)
        # --load runs in the background: wait (bounded) for every model.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = {m.name: m.state for m in cls.d.models.List(models_pb2.ListModelsRequest()).models}
            if all(states.get(n) == models_pb2.MODEL_STATE_LOADED for n in FIXTURE_NAMES):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("fixtures did not load: %s\n%s" % (states, cls.d.log_text()))

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop()
        assert code == 0, "nneditd exited %s:\n%s" % (code, cls.d.log_text())

    def assertStatus(self, fn, code, *needles):
        with self.assertRaises(grpc.RpcError) as cm:
            fn()
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        for n in needles:
            self.assertIn(n, cm.exception.details())
        return cm.exception.details()

    # ---- health -------------------------------------------------------------

    def test_health_check(self):
        for svc in ["", "nnedit.v1.Models", "nnedit.v1.Inference", "grpc.health.v1.Health"]:
            r = self.d.health.Check(health_pb2.HealthCheckRequest(service=svc), timeout=5)
            self.assertEqual(r.status, health_pb2.HealthCheckResponse.SERVING, svc)
        self.assertStatus(lambda: self.d.health.Check(
            health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5),
            grpc.StatusCode.NOT_FOUND, "no.such.Service")

    def test_health_watch(self):
        stream = self.d.health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
        first = next(stream)
        self.assertEqual(first.status, health_pb2.HealthCheckResponse.SERVING)
        stream.cancel()
        stream = self.d.health.Watch(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
        self.assertEqual(next(stream).status, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
        stream.cancel()

    # ---- models -------------------------------------------------------------

    def test_list(self):
        r = self.d.models.List(models_pb2.ListModelsRequest(), timeout=5)
        by_name = {m.name: m for m in r.models}
        self.assertTrue(r.server_version.startswith("nneditd "))
        for n in FIXTURE_NAMES:
            m = by_name[n]
            self.assertEqual(m.state, models_pb2.MODEL_STATE_LOADED)
            self.assertEqual(m.vocab_size, 1000)
            self.assertEqual(m.device, "cpu")
            self.assertEqual(m.dtype, tensor_pb2.DTYPE_FLOAT32)
            self.assertEqual(m.export_kind, n.split("-")[1])
            self.assertEqual(m.max_batch, 16)
            self.assertGreater(m.param_count, 0)
            self.assertEqual(m.param_bytes, 4 * m.param_count)

    def test_describe_matches_python_tree(self):
        for n in FIXTURE_NAMES:
            with self.subTest(model=n):
                ref = manifest(n)["modules"]
                r = self.d.models.Describe(models_pb2.DescribeModelRequest(name=n), timeout=5)
                got = list(r.modules)
                self.assertEqual([m.path for m in got], [m["path"] for m in ref])
                self.assertEqual([m.class_name for m in got], [m["class"] for m in ref])
                self.assertEqual([m.call_index for m in got], [m["call_index"] for m in ref])
                self.assertEqual(r.model.module_count, len(ref))
                # children, as the parent links give them
                for i, m in enumerate(got):
                    kids = [g.path.rsplit(".", 1)[-1] for g in got if g.parent == i]
                    self.assertEqual(kids, ref[i]["children"], m.path)
                    if i:
                        self.assertEqual(m.depth, got[m.parent].depth + 1)

    def test_describe_errors(self):
        self.assertStatus(lambda: self.d.models.Describe(
            models_pb2.DescribeModelRequest(name="no-such-model"), timeout=5),
            grpc.StatusCode.NOT_FOUND, "no-such-model", "gpt2-script")
        self.assertStatus(lambda: self.d.models.Describe(
            models_pb2.DescribeModelRequest(name="../etc"), timeout=5),
            grpc.StatusCode.INVALID_ARGUMENT, "name")

    # ---- forward numbers ----------------------------------------------------

    def test_logits_match_reference(self):
        for n in FIXTURE_NAMES:
            with self.subTest(model=n):
                ids = manifest(n)["inputs"]["input_ids"]
                res, t = forward(self.d.inference, n, ids, logits=ALL, top_k=5)
                got = t["logits"]
                self.assertEqual(got.shape, (2, 7, 1000))
                self.assertEqual(res.logits_tensor, "logits")
                # The archive run in Python on the same libtorch and BLAS:
                # the daemon runs the very same graph, so every bit agrees.
                np.testing.assert_array_equal(got, ref_array(n, "logits_jit.npy"))
                # Eager PyTorch differs by a few ulps where TorchScript splits
                # addmm into mm + add (GPT-2's Conv1D).
                np.testing.assert_allclose(got, ref_array(n, "logits.npy"), rtol=0, atol=1e-5)

    def test_masked_batch_matches_reference(self):
        for n in FIXTURE_NAMES:
            with self.subTest(model=n):
                mm = manifest(n)["masked"]
                res, t = forward(self.d.inference, n, mm["input_ids"], mask=mm["attention_mask"],
                                 logits=ALL, top_k=3)
                np.testing.assert_array_equal(t["logits"], ref_array(n, "logits_masked_jit.npy"))
                self.assertEqual([r.position for r in res.rows], [4, 4])

    def test_top_k_and_last_logits(self):
        n = "llama-script"
        ids = manifest(n)["inputs"]["input_ids"]
        ref = ref_array(n, "logits_jit.npy")[:, -1, :]
        res, t = forward(self.d.inference, n, ids, top_k=10, logits=LAST)
        np.testing.assert_array_equal(t["logits"], ref)
        self.assertEqual((res.batch, res.seq_len), (2, 7))
        p = softmax(ref)
        for b, row in enumerate(res.rows):
            self.assertEqual(row.position, 6)
            want = np.argsort(-ref[b], kind="stable")[:10]
            self.assertEqual([s.token_id for s in row.top], list(want))
            np.testing.assert_allclose([s.logit for s in row.top], ref[b][want], rtol=0, atol=0)
            np.testing.assert_allclose([s.prob for s in row.top], p[b][want], rtol=1e-5)
        self.assertGreaterEqual(res.timing.total_ms, res.timing.compute_ms)
        self.assertGreater(res.timing.compute_ms, 0)

    def test_padding(self):
        n = "gpt2-script"
        rows = [[5, 6, 7, 8, 9], [10, 11]]
        res, t = forward(self.d.inference, n, rows, padding=RIGHT, logits=ALL, top_k=1)
        self.assertEqual([r.position for r in res.rows], [4, 1])
        # Right padding never changes what the real tokens see (causal mask):
        # the short row's logits equal the row run alone, up to BLAS blocking.
        _, alone = forward(self.d.inference, n, [rows[1]], logits=ALL)
        np.testing.assert_allclose(t["logits"][1, :2], alone["logits"][0], rtol=0, atol=1e-5)
        res, t = forward(self.d.inference, n, rows, padding=LEFT, logits=LAST, top_k=2)
        self.assertEqual([r.position for r in res.rows], [4, 4])
        self.assertEqual(t["logits"].shape, (2, 1000))
        self.assertEqual(res.seq_len, 5)

    def test_big_logits_stream_in_chunks(self):
        n = "neox-trace"
        rows = [[(i * 37 + j) % 1000 for j in range(64)] for i in range(16)]
        res, t = forward(self.d.inference, n, rows, logits=ALL)
        self.assertEqual(t["logits"].shape, (16, 64, 1000))  # 4 MB: several 1 MiB chunks
        _, one = forward(self.d.inference, n, rows[3:4], logits=ALL)
        np.testing.assert_allclose(t["logits"][3], one["logits"][0], rtol=0, atol=1e-5)

    # ---- bad input ----------------------------------------------------------

    def test_bad_inputs(self):
        I, R, N = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED,
                   grpc.StatusCode.NOT_FOUND)
        cases = [
            (N, ["model", "'nope'"], dict(model="nope")),
            (I, ["model", "character"], dict(model="a/b")),
            (I, ["input_ids[0][1]", "1000", "vocabulary"], dict(rows=[[1, 1000]])),
            (I, ["input_ids[1][0]", "-5"], dict(rows=[[1], [-5]])),
            (I, ["input_ids", "empty"], dict(rows=[])),
            (I, ["input_ids[1]", "empty"], dict(rows=[[1], []])),
            (I, ["input_ids", "differ", "padding"], dict(rows=[[1, 2], [3]])),
            (I, ["input_ids", "differ"], dict(rows=[[1, 2], [3]], mask=[[1, 1], [1]])),
            (I, ["attention_mask", "1 rows for 2"], dict(rows=[[1], [2]], mask=[[1]])),
            (I, ["attention_mask[0]", "2 values for 3 tokens"], dict(rows=[[1, 2, 3]], mask=[[1, 1]])),
            (I, ["attention_mask[0][1]", "value 2"], dict(rows=[[1, 2]], mask=[[1, 2]])),
            (I, ["attention_mask[0]", "padding"], dict(rows=[[1, 2]], mask=[[0, 0]])),
            (I, ["top_k", "1000"], dict(top_k=1001)),
            (I, ["padding", "7"], dict(padding=7)),
            (I, ["logits", "9"], dict(logits=9)),
            (R, ["17 rows", "max_batch 16"], dict(rows=[[1]] * 17)),
            (R, ["input_ids[0]", "65 tokens", "max_seq_len 64"], dict(rows=[[1] * 65])),
        ]
        for code, needles, kw in cases:
            with self.subTest(case=kw):
                kw.setdefault("model", "gpt2-script")
                kw.setdefault("rows", [[1, 2, 3]])
                self.assertStatus(lambda: forward(self.d.inference, **kw), code, *needles)
        # The daemon and the model stay healthy.
        res, _ = forward(self.d.inference, "gpt2-script", [[1, 2, 3]], top_k=1)
        self.assertEqual(len(res.rows), 1)

    def test_malformed_and_unknown(self):
        raw = self.d.channel.unary_stream("/nnedit.v1.Inference/Forward",
                                          request_serializer=lambda b: b,
                                          response_deserializer=lambda b: b)
        # field 2 (input_ids), length-delimited, declares 50 bytes, has 2
        self.assertStatus(lambda: list(raw(b"\x12\x32\x08\x01", timeout=5)),
                          grpc.StatusCode.INVALID_ARGUMENT, "malformed")
        unknown = self.d.channel.unary_unary("/nnedit.v2.Models/List",
                                             request_serializer=lambda b: b,
                                             response_deserializer=lambda b: b)
        self.assertStatus(lambda: unknown(b"", timeout=5), grpc.StatusCode.UNIMPLEMENTED,
                          "/nnedit.v2.Models/List")


class Repository(unittest.TestCase):
    """Load, Unload and broken models in a repository of the test's own."""

    def setUp(self):
        self.repo = tempfile.mkdtemp(prefix="nnedit-repo-")
        os.symlink(os.path.join(FIXTURES, "gpt2-script"), os.path.join(self.repo, "good"))
        os.symlink(os.path.join(FIXTURES, "gpt2-trace"), os.path.join(self.repo, "traced"))
        os.makedirs(os.path.join(self.repo, "corrupt"))
        with open(os.path.join(self.repo, "corrupt", "model.pt"), "wb") as f:
            f.write(b"PK\x03\x04 this is not a TorchScript archive" * 10)
        os.makedirs(os.path.join(self.repo, "nopt"))
        with open(os.path.join(self.repo, "nopt", "model.json"), "w") as f:
            f.write('{"family": "gpt2"}')
        os.makedirs(os.path.join(self.repo, "badjson"))
        shutil.copy(os.path.join(FIXTURES, "gpt2-script", "model.pt"),
                    os.path.join(self.repo, "badjson", "model.pt"))
        with open(os.path.join(self.repo, "badjson", "model.json"), "w") as f:
            f.write('{"family": "gpt2",\n "dtype": 32}')
        self.d = Daemon(repo=self.repo)

    def tearDown(self):
        code = self.d.stop()
        shutil.rmtree(self.repo, ignore_errors=True)
        self.assertEqual(code, 0, self.d.log_text())

    def load(self, name, **kw):
        return self.d.models.Load(models_pb2.LoadModelRequest(name=name, **kw), timeout=60)

    def test_broken_models_fail_and_others_serve(self):
        F = grpc.StatusCode.FAILED_PRECONDITION
        for name, needles in [("corrupt", ["corrupt"]), ("nopt", ["model.pt"]),
                              ("badjson", ["badjson/model.json", "dtype"])]:
            with self.subTest(model=name):
                with self.assertRaises(grpc.RpcError) as cm:
                    self.load(name)
                self.assertEqual(cm.exception.code(), F, cm.exception.details())
                for n in needles:
                    self.assertIn(n, cm.exception.details())
        listed = {m.name: m for m in self.d.models.List(models_pb2.ListModelsRequest()).models}
        self.assertEqual(listed["corrupt"].state, models_pb2.MODEL_STATE_FAILED)
        self.assertTrue(listed["corrupt"].error)
        r = self.load("good")
        self.assertEqual(r.model.state, models_pb2.MODEL_STATE_LOADED)
        res, _ = forward(self.d.inference, "good", [[1, 2, 3]], top_k=3)
        self.assertEqual(len(res.rows[0].top), 3)
        # A failed model reports why on use.
        with self.assertRaises(grpc.RpcError) as cm:
            forward(self.d.inference, "corrupt", [[1]])
        self.assertEqual(cm.exception.code(), F)

    def test_load_unload_cycle(self):
        self.assertEqual(self.load("good").model.state, models_pb2.MODEL_STATE_LOADED)
        self.assertEqual(self.load("good").model.state, models_pb2.MODEL_STATE_LOADED)  # idempotent
        r = self.d.models.Unload(models_pb2.UnloadModelRequest(name="good"), timeout=30)
        self.assertEqual(r.model.state, models_pb2.MODEL_STATE_AVAILABLE)
        with self.assertRaises(grpc.RpcError) as cm:
            forward(self.d.inference, "good", [[1]])
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("not loaded", cm.exception.details())
        r = self.load("good", dtype=tensor_pb2.DTYPE_FLOAT64)
        self.assertEqual(r.model.dtype, tensor_pb2.DTYPE_FLOAT64)
        self.assertEqual(r.model.param_bytes, 8 * r.model.param_count)
        res, t = forward(self.d.inference, "good", manifest("gpt2-script")["inputs"]["input_ids"],
                         logits=ALL)
        self.assertEqual(t["logits"].dtype, np.float64)
        np.testing.assert_allclose(t["logits"], ref_array("gpt2-script", "logits.npy"), atol=1e-4)

    def test_load_arguments(self):
        I = grpc.StatusCode.INVALID_ARGUMENT
        for kw, needle in [(dict(device="tpu"), "device"), (dict(device="cuda:7"), "device"),
                           (dict(dtype=tensor_pb2.DTYPE_INT64), "dtype")]:
            with self.subTest(kw=kw):
                with self.assertRaises(grpc.RpcError) as cm:
                    self.load("good", **kw)
                self.assertEqual(cm.exception.code(), I, cm.exception.details())
                self.assertIn(needle, cm.exception.details())
        # A traced archive has its dtype baked in: the load-time check
        # forward fails and the message says why.
        with self.assertRaises(grpc.RpcError) as cm:
            self.load("traced", dtype=tensor_pb2.DTYPE_FLOAT64)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("traced archive", cm.exception.details())
        self.assertEqual(self.load("traced").model.dtype, tensor_pb2.DTYPE_FLOAT32)
        with self.assertRaises(grpc.RpcError) as cm:
            self.load("missing")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("missing", cm.exception.details())


class Limits(unittest.TestCase):
    def test_oversized_message(self):
        with Daemon("--load", "gpt2-script", "--max-message-bytes", "64K") as d:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    forward(d.inference, "gpt2-script", [[1]])
                    break
                except grpc.RpcError:
                    time.sleep(0.05)
            rows = [[999] * 60] * 16 * 40  # ~2 bytes per id: > 64 KiB
            with self.assertRaises(grpc.RpcError) as cm:
                forward(d.inference, "gpt2-script", rows)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            # and the daemon goes on serving
            res, _ = forward(d.inference, "gpt2-script", [[1, 2]], top_k=1)
            self.assertEqual(len(res.rows), 1)


class Lifecycle(unittest.TestCase):
    """Draining on SIGTERM, the second signal, admission control."""

    @classmethod
    def setUpClass(cls):
        cls.repo = tempfile.mkdtemp(prefix="nnedit-slow-")
        write_slow_model(cls.repo)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.repo, ignore_errors=True)

    def slow_forward(self, d, out, key, batch=8):
        try:
            out[key] = forward(d.inference, "slow", [[1] * 32] * batch, top_k=1, timeout=120)
        except grpc.RpcError as e:
            out[key] = e

    def wait_in_flight(self, d, n=1):
        """Waits (bounded) until n calls hold the slow model: the signal
        then lands while they run, however fast this machine is."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ms = {m.name: m for m in d.models.List(models_pb2.ListModelsRequest()).models}
            if ms["slow"].in_flight >= n:
                return
            time.sleep(0.005)
        raise AssertionError("no call in flight:\n" + d.log_text())

    def test_sigterm_drains_in_flight_forward(self):
        d = Daemon("--load", "slow", repo=self.repo)
        try:
            self.wait_loaded(d)
            out = {}
            th = threading.Thread(target=self.slow_forward, args=(d, out, "a", 16))
            t0 = time.monotonic()
            th.start()
            self.wait_in_flight(d)
            t_sig = time.monotonic()
            d.signal(signal.SIGTERM)
            # New calls are refused while the old one finishes: UNAVAILABLE
            # naming the shutdown (clients retry it elsewhere); health says
            # NOT_SERVING while the daemon still answers.
            time.sleep(0.02)
            with self.assertRaises(grpc.RpcError) as cm:
                d.models.List(models_pb2.ListModelsRequest(), timeout=5)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
            self.assertIn("shutting down", cm.exception.details())
            r = d.health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            self.assertEqual(r.status, health_pb2.HealthCheckResponse.NOT_SERVING)
            th.join(120)
            self.assertFalse(th.is_alive())
            res = out["a"]
            self.assertNotIsInstance(res, grpc.RpcError, getattr(res, "details", lambda: "")())
            result, _ = res
            # It really was in flight when the signal came.
            self.assertGreater(result.timing.total_ms, (t_sig - t0) * 1000 - 50)
            self.assertEqual(d.wait(60), 0, d.log_text())
            self.assertIn("SIGTERM", d.log_text())
        finally:
            d.stop()

    def test_second_signal_exits_at_once(self):
        d = Daemon("--load", "slow", repo=self.repo)
        try:
            self.wait_loaded(d)
            out = {}
            th = threading.Thread(target=self.slow_forward, args=(d, out, "a", 16))
            th.start()
            self.wait_in_flight(d)
            d.signal(signal.SIGTERM)
            time.sleep(0.05)
            t0 = time.monotonic()
            d.signal(signal.SIGINT)
            code = d.wait(10)
            self.assertLess(time.monotonic() - t0, 2.0)
            self.assertEqual(code, 128 + signal.SIGINT)
            th.join(60)
        finally:
            d.stop()

    def test_full_queue_is_resource_exhausted(self):
        d = Daemon("--load", "slow", "--workers", "1", "--max-queue", "1", repo=self.repo)
        try:
            self.wait_loaded(d)
            out = {}
            threads = [threading.Thread(target=self.slow_forward, args=(d, out, i, 4))
                       for i in range(4)]
            for th in threads:
                th.start()
                time.sleep(0.05)
            for th in threads:
                th.join(120)
            errors = [v for v in out.values() if isinstance(v, grpc.RpcError)]
            ok = [v for v in out.values() if not isinstance(v, grpc.RpcError)]
            self.assertGreaterEqual(len(ok), 2)  # one running, one queued
            self.assertGreaterEqual(len(errors), 1)
            for e in errors:
                self.assertEqual(e.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
                self.assertIn("--max-queue", e.details())
        finally:
            self.assertEqual(d.stop(), 0)

    def wait_loaded(self, d):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ms = {m.name: m for m in d.models.List(models_pb2.ListModelsRequest()).models}
            if ms["slow"].state == models_pb2.MODEL_STATE_LOADED:
                return
            if ms["slow"].state == models_pb2.MODEL_STATE_FAILED:
                raise AssertionError("slow model failed: " + ms["slow"].error)
            time.sleep(0.05)
        raise AssertionError("slow model did not load:\n" + d.log_text())


if __name__ == "__main__":
    unittest.main()
