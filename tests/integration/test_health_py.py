"""Health the Kubernetes way, binding, and --load failures (issue 11's first
two points), through grpc.health.v1 from a Python grpcio client.

- A second nneditd on a port in use exits 1 naming the port (gRPC would set
  SO_REUSEPORT and let both "serve").
- "" is liveness (SERVING as soon as the process serves), "nnedit.ready" is
  readiness (SERVING once every --load model is LOADED), "model/NAME"
  follows one model; --ready-file appears only when ready; Watch sees the
  change. A slow-to-load model makes the window before readiness wide
  enough to look into.
- A --load that fails exits 1 unless --allow-failed-loads, which serves the
  others (ready) with the failed model NOT_SERVING.
- Loading a loaded model in another dtype fails and says why.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

from nnedit_testlib import (Daemon, FIXTURES, NNEDITD, _die_with_parent, _save_scripted,
                            health_pb2, health_pb2_grpc, models_pb2, tensor_pb2, wait_loaded)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def write_slow_load_model(repo, name="slowload", iters=50):
    """A scripted model whose every forward (the load's one-token check
    included) spends about two seconds on matmuls that do not depend on the
    input: Load takes that long."""
    import torch

    class SlowLoad(torch.nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(0)
            self.emb = torch.nn.Parameter(torch.randn(100, 16, generator=g))
            self.iters = iters

        def forward(self, input_ids: torch.Tensor):
            a = torch.ones(1536, 1536)
            for _ in range(self.iters):
                a = torch.tanh(a @ a / 1536.0)
            return self.emb[input_ids] @ self.emb.t() + a.sum() * 0.0

    return _save_scripted(repo, name, SlowLoad())


def write_broken_model(repo, name="broken"):
    d = os.path.join(repo, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.pt"), "wb") as f:
        f.write(b"this is not a TorchScript archive")
    with open(os.path.join(d, "model.json"), "w") as f:
        json.dump({"family": "test"}, f)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(stub, service, timeout=5):
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout).status


def run_nneditd(args, timeout=60):
    """Runs nneditd to its exit; returns (code, log)."""
    p = subprocess.run(_die_with_parent([NNEDITD] + args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


class Binding(unittest.TestCase):
    def test_second_daemon_on_a_used_port_exits_1(self):
        with Daemon() as d:
            port = d.addr.rsplit(":", 1)[1]
            code, log = run_nneditd(["--listen", "127.0.0.1:" + port, "--model-repo", FIXTURES])
            self.assertEqual(code, 1, log)
            self.assertIn("port " + port, log)
            # The first one still serves every call.
            hs = health_pb2_grpc.HealthStub(d.channel)
            for _ in range(20):
                self.assertEqual(check(hs, ""), SERVING)


class Readiness(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.repo = tempfile.mkdtemp(prefix="nnedit-health-")
        write_slow_load_model(cls.repo)
        write_broken_model(cls.repo)
        # A fast model beside them, loaded on demand.
        shutil.copytree(os.path.join(FIXTURES, "gpt2-script"),
                        os.path.join(cls.repo, "gpt2-script"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.repo, ignore_errors=True)

    def test_liveness_readiness_and_models(self):
        port = free_port()
        state = tempfile.mkdtemp(prefix="nnedit-ready-")
        ready = os.path.join(state, "ready")
        log = open(os.path.join(state, "log"), "wb")
        proc = subprocess.Popen(_die_with_parent(
            [NNEDITD, "--listen", "127.0.0.1:%d" % port, "--model-repo", self.repo,
             "--load", "slowload", "--ready-file", ready]), stdout=log, stderr=subprocess.STDOUT)
        channel = None
        try:
            # Wait for the port with plain TCP (a gRPC channel that finds
            # nothing backs off for a second or more, longer than the load).
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    self.assertLess(time.monotonic(), deadline, "nneditd never listened")
                    self.assertIsNone(proc.poll())
                    time.sleep(0.01)
            channel = grpc.insecure_channel("127.0.0.1:%d" % port)
            hs = health_pb2_grpc.HealthStub(channel)
            # Live as soon as it listens, while the model loads.
            self.assertEqual(check(hs, ""), SERVING)
            statuses = []
            done = threading.Event()

            def watch():
                try:
                    for r in hs.Watch(health_pb2.HealthCheckRequest(service="nnedit.ready"),
                                      timeout=60):
                        statuses.append(r.status)
                        if r.status == SERVING:
                            break
                finally:
                    done.set()

            th = threading.Thread(target=watch)
            th.start()
            self.assertEqual(check(hs, "nnedit.ready"), NOT_SERVING)
            self.assertEqual(check(hs, "model/slowload"), NOT_SERVING)
            self.assertFalse(os.path.exists(ready), "ready file written before ready")
            # Then ready: the file appears, with the address.
            deadline = time.monotonic() + 60
            while not os.path.exists(ready):
                self.assertLess(time.monotonic(), deadline, "never ready")
                self.assertIsNone(proc.poll())
                time.sleep(0.02)
            with open(ready) as f:
                self.assertEqual(f.read().strip(), "127.0.0.1:%d" % port)
            self.assertEqual(check(hs, "nnedit.ready"), SERVING)
            self.assertEqual(check(hs, "model/slowload"), SERVING)
            th.join(60)
            self.assertTrue(done.is_set())
            self.assertEqual(statuses, [NOT_SERVING, SERVING])
            # Per model: a model loaded on demand, then unloaded.
            models = __import__("nnedit.v1.models_pb2_grpc", fromlist=["x"]).ModelsStub(channel)
            self.assertEqual(check(hs, "model/gpt2-script"), NOT_SERVING)
            models.Load(models_pb2.LoadModelRequest(name="gpt2-script"), timeout=60)
            self.assertEqual(check(hs, "model/gpt2-script"), SERVING)
            # Another dtype on a loaded model: refused, saying why.
            with self.assertRaises(grpc.RpcError) as cm:
                models.Load(models_pb2.LoadModelRequest(name="gpt2-script",
                                                        dtype=tensor_pb2.DTYPE_BFLOAT16),
                            timeout=60)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
            self.assertIn("float32", cm.exception.details())
            self.assertIn("bfloat16", cm.exception.details())
            self.assertIn("unload it first", cm.exception.details())
            models.Unload(models_pb2.UnloadModelRequest(name="gpt2-script"), timeout=60)
            self.assertEqual(check(hs, "model/gpt2-script"), NOT_SERVING)
            # Readiness is about the --load models only.
            self.assertEqual(check(hs, "nnedit.ready"), SERVING)
            with self.assertRaises(grpc.RpcError) as cm:
                check(hs, "model/nope")
            self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
            # Draining: nothing is ready any more.
            proc.send_signal(signal.SIGTERM)
            try:
                # The signal lands asynchronously: liveness says when.
                deadline = time.monotonic() + 10
                while check(hs, "") == SERVING:
                    self.assertLess(time.monotonic(), deadline, "SIGTERM not seen")
                    time.sleep(0.005)
                self.assertEqual(check(hs, "nnedit.ready"), NOT_SERVING)
                self.assertEqual(check(hs, "model/slowload"), NOT_SERVING)
            except grpc.RpcError as e:
                # Or it already stopped listening.
                self.assertEqual(e.code(), grpc.StatusCode.UNAVAILABLE)
            self.assertEqual(proc.wait(60), 0)
        finally:
            if channel is not None:
                channel.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            log.close()
            shutil.rmtree(state, ignore_errors=True)

    def test_failed_load_exits_1(self):
        state = tempfile.mkdtemp(prefix="nnedit-ready-")
        ready = os.path.join(state, "ready")
        try:
            code, log = run_nneditd(["--listen", "127.0.0.1:0", "--model-repo", self.repo,
                                     "--load", "gpt2-script", "--load", "broken",
                                     "--ready-file", ready])
            self.assertEqual(code, 1, log)
            self.assertIn("--load broken", log)
            self.assertFalse(os.path.exists(ready), "a daemon that failed a --load said ready")
        finally:
            shutil.rmtree(state, ignore_errors=True)

    def test_allow_failed_loads_serves_the_others(self):
        with Daemon("--load", "gpt2-script", "--load", "broken", "--allow-failed-loads",
                    repo=self.repo) as d:
            hs = health_pb2_grpc.HealthStub(d.channel)
            # The ready file came: readiness is reached with the failure excused.
            self.assertEqual(check(hs, "nnedit.ready"), SERVING)
            self.assertEqual(check(hs, "model/gpt2-script"), SERVING)
            self.assertEqual(check(hs, "model/broken"), NOT_SERVING)
            states = {m.name: m.state for m in
                      d.models.List(models_pb2.ListModelsRequest()).models}
            self.assertEqual(states["broken"], models_pb2.MODEL_STATE_FAILED)
            self.assertEqual(states["gpt2-script"], models_pb2.MODEL_STATE_LOADED)


if __name__ == "__main__":
    unittest.main()
