"""Overload (issue 13), asserted on behaviour, never on times:
- past --max-queue a Forward is refused RESOURCE_EXHAUSTED at once: every
  refusal arrives while the first slow pass is still running;
- cheap calls (Describe, List, health) are answered while the compute queue
  is full, before the queued passes finish;
- a client that stops reading a large stream holds only what its call had
  (one message in flight) and is ended after --send-timeout, while another
  client's calls go on being answered.
"""

import shutil
import tempfile
import threading
import time
import unittest

import grpc

from nnedit_testlib import (Daemon, forward, health_pb2, models_pb2,
                            write_slow_model)
from nnedit.v1 import admin_pb2, admin_pb2_grpc, inference_pb2, inference_pb2_grpc

NAME = "gpt2-script"


def other_live_calls(d):
    """Calls the daemon holds, apart from the Stats call asking."""
    stats = admin_pb2_grpc.AdminStub(d.channel).Stats(admin_pb2.StatsRequest(), timeout=30)
    return stats.live_calls - 1


class QueueFull(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.repo = tempfile.mkdtemp(prefix="nnedit-overload-")
        write_slow_model(cls.repo)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.repo, ignore_errors=True)

    def test_refusals_and_cheap_calls_while_full(self):
        with Daemon("--load", "slow", "--workers", "1", "--max-queue", "2",
                    repo=self.repo) as d:
            lock = threading.Lock()
            events = []  # (what, code) in the order they completed

            rows = [[(r + c) % 100 for c in range(64)] for r in range(4)]

            def slow_call(k):
                try:
                    forward(d.inference, "slow", rows, top_k=1, timeout=300)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as e:
                    code = e.code()
                with lock:
                    events.append(("forward", code))

            threads = [threading.Thread(target=slow_call, args=(k,)) for k in range(10)]
            threads[0].start()
            # The first pass runs (a pass of this model takes seconds) ...
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and other_live_calls(d) < 1:
                time.sleep(0.01)
            # ... while the nine others arrive.
            for t in threads[1:]:
                t.start()
            # The queue is full now (1 running + 2 queued): cheap calls.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and len(events) < 7:
                time.sleep(0.02)
            d.models.Describe(models_pb2.DescribeModelRequest(name="slow"), timeout=30)
            d.models.List(models_pb2.ListModelsRequest(), timeout=30)
            d.health.Check(health_pb2.HealthCheckRequest(service="nnedit.ready"), timeout=30)
            with lock:
                events.append(("cheap", grpc.StatusCode.OK))
            for t in threads:
                t.join(timeout=300)
            codes = [c for w, c in events if w == "forward"]
            self.assertEqual(codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED), 7, events)
            self.assertEqual(codes.count(grpc.StatusCode.OK), 3, events)
            # Every refusal came before any pass finished, and the cheap calls
            # were answered while the three passes were still queued or running.
            first_ok = next(i for i, (w, c) in enumerate(events)
                            if w == "forward" and c == grpc.StatusCode.OK)
            cheap = events.index(("cheap", grpc.StatusCode.OK))
            self.assertTrue(all(c == grpc.StatusCode.RESOURCE_EXHAUSTED
                                for w, c in events[:first_ok] if w == "forward"), events)
            self.assertLess(cheap, first_ok, events)
        self.assertEqual(d.proc.returncode, 0, d.log_text())


class StalledReader(unittest.TestCase):
    def test_client_that_stops_reading_is_ended(self):
        with Daemon("--load", NAME, "--send-timeout", "2", "--chunk-bytes", "65536") as d:
            # No BDP probing: the HTTP/2 window stays at its 64 KiB default,
            # so a client that does not read stops the daemon's sends.
            ch = grpc.insecure_channel(d.addr, options=[
                ("grpc.http2.bdp_probe", 0),
                ("grpc.max_receive_message_length", 64 << 20)])
            stub = inference_pb2_grpc.InferenceStub(ch)
            rows = [[(7 * r + c) % 1000 for c in range(64)] for r in range(16)]
            req = inference_pb2.ForwardRequest(
                model=NAME, input_ids=[inference_pb2.TokenRow(ids=r) for r in rows],
                logits=2, save=["layers.0.resid_post", "layers.1.resid_post"])
            stream = stub.Forward(req, timeout=120)  # 4+ MiB of logits
            next(stream)  # the call is running; now stop reading
            # Another client is served meanwhile.
            for _ in range(5):
                forward(d.inference, NAME, [[1, 2, 3]], top_k=1)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if "--send-timeout" in d.log_text() and other_live_calls(d) == 0:
                    break
                time.sleep(0.2)
            self.assertIn("the client read nothing for 2 s (--send-timeout)", d.log_text())
            self.assertEqual(other_live_calls(d), 0)  # freed, tensors and all
            with self.assertRaises(grpc.RpcError) as cm:
                for _ in stream:
                    pass
            self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED,
                             cm.exception.details())
            ch.close()
            forward(d.inference, NAME, [[1, 2, 3]], top_k=1)
        self.assertEqual(d.proc.returncode, 0, d.log_text())


if __name__ == "__main__":
    unittest.main()
