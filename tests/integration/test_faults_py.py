"""Faults (issue 13): with the test build's switch (NNE_FAULTS, base/fault.h)
the Nth forward pass, backend build, response send or model load fails. Each
failure must give that request alone a clean status, leave the daemon
serving, and leak nothing (the ASan build's LeakSanitizer runs at exit: a
leak makes the exit code non-zero). Clients that leave at every stage of a
Trace stream are the same: the daemon serves on and exits clean.
"""

import os
import subprocess
import unittest

import grpc
from nnedit_testlib import NNEDITD, Daemon, forward, manifest, models_pb2, trace
from nnedit.v1 import edits_pb2, edits_pb2_grpc, inference_pb2 as I

NAME = "gpt2-script"
IDS = manifest(NAME)["inputs"]["input_ids"]


def compiled_in():
    out = subprocess.run([NNEDITD, "--version"], capture_output=True, text=True,
                         timeout=30).stdout
    return "fault injection compiled in" in out


def start(faults, *args):
    os.environ["NNE_FAULTS"] = faults
    try:
        return Daemon(*args)
    finally:
        del os.environ["NNE_FAULTS"]


def saving_trace(name, sites=("layers.0.resid_post", "layers.1.resid_post")):
    nodes = []
    for k, site in enumerate(sites):
        nodes.append(I.Node(id=2 * k + 1, read=I.ReadNode(site=site)))
        nodes.append(I.Node(id=2 * k + 2, save=I.SaveNode(value=2 * k + 1,
                                                           name="%s/%d" % (name, k))))
    return I.Trace(name=name, invokes=[I.Invoke(input_ids=[I.TokenRow(ids=r) for r in IDS])],
                   nodes=nodes)


STEER = [edits_pb2.Edit(site="layers.0.mlp_out", op=edits_pb2.EDIT_OP_SCALE, scalar=0.5),
         edits_pb2.Edit(site="layers.1.resid_post", op=edits_pb2.EDIT_OP_SAVE, name="r1")]


@unittest.skipUnless(compiled_in(), "nneditd built without -DNNE_FAULT_INJECTION=ON "
                     "(deploy/test.sh builds with it)")
class Faults(unittest.TestCase):
    def assertFails(self, fn, code, needle):
        with self.assertRaises(grpc.RpcError) as cm:
            fn()
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        self.assertIn(needle, cm.exception.details())

    def test_forward_fails_alone(self):
        d = start("forward=2", "--load", NAME)
        try:
            ok, _ = forward(d.inference, NAME, IDS, top_k=3)
            self.assertFails(lambda: forward(d.inference, NAME, IDS, top_k=3),
                             grpc.StatusCode.INTERNAL, "injected fault")
            again, _ = forward(d.inference, NAME, IDS, top_k=3)
            self.assertEqual(str(again.rows), str(ok.rows))
            self.assertIn("fault injection (test build): forward call 2", d.log_text())
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())

    def test_forward_fails_mid_trace(self):
        # Trace a's pass is call 1, trace b's call 2. The session runs its
        # traces in one job before it streams (b may read a's saves), so the
        # call fails as a whole, with nothing half-sent; the next is whole.
        d = start("forward=2", "--load", NAME)
        try:
            got = []
            with self.assertRaises(grpc.RpcError) as cm:
                req = I.TraceRequest(model=NAME, traces=[saving_trace("a"), saving_trace("b")])
                for msg in d.inference.Trace(req, timeout=60):
                    if msg.HasField("result"):
                        got.append(msg.result)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INTERNAL)
            self.assertIn("injected fault", cm.exception.details())
            self.assertEqual(got, [])
            results, tensors = trace(d.inference, NAME, [saving_trace("a"), saving_trace("b")])
            self.assertEqual(len(results), 2)
            self.assertEqual(sorted(tensors), ["a/0", "a/1", "b/0", "b/1"])
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())

    def test_backend_build_fails_apply_creates_nothing(self):
        d = start("backend_build=1", "--load", NAME)
        edits = edits_pb2_grpc.EditsStub(d.channel)
        try:
            self.assertFails(lambda: edits.Apply(edits_pb2.ApplyEditsRequest(
                model=NAME, edits=STEER), timeout=60), grpc.StatusCode.INTERNAL,
                "injected fault")
            self.assertEqual(len(edits.List(edits_pb2.ListEditSetsRequest(),
                                            timeout=30).edit_sets), 0)
            # Not remembered as built: the same structure builds now.
            es = edits.Apply(edits_pb2.ApplyEditsRequest(model=NAME, edits=STEER),
                             timeout=60).edit_set
            self.assertFalse(es.cache_hit)
            _, tensors = forward(d.inference, NAME, IDS, edit_set=es.id)
            self.assertIn("r1", tensors)
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())

    def test_send_fails_promptly(self):
        # A Forward that streams logits and a save: its 2nd message fails.
        d = start("send=2", "--load", NAME, "--chunk-bytes", "1024")
        try:
            self.assertFails(lambda: forward(d.inference, NAME, IDS, logits=2,
                                             save=["layers.0.resid_post"], timeout=20),
                             grpc.StatusCode.INTERNAL, "could not send")
            res, tensors = forward(d.inference, NAME, IDS, logits=2,
                                   save=["layers.0.resid_post"])
            self.assertEqual(tensors["layers.0.resid_post"].shape[0], len(IDS))
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())

    def test_model_load_fails_half_way(self):
        with self.assertRaises(RuntimeError) as cm:
            start("model_load=1", "--load", NAME)
        self.assertIn("injected fault", str(cm.exception))
        d = start("model_load=1", "--load", NAME, "--allow-failed-loads")
        try:
            m = {x.name: x for x in d.models.List(models_pb2.ListModelsRequest(),
                                                  timeout=30).models}[NAME]
            self.assertEqual(m.state, models_pb2.MODEL_STATE_FAILED)
            self.assertIn("injected fault", m.error)
            d.models.Load(models_pb2.LoadModelRequest(name=NAME), timeout=120)
            forward(d.inference, NAME, IDS, top_k=1)
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())


class Disconnects(unittest.TestCase):
    """A client that leaves after k messages of a Trace, for every k."""

    def test_leave_at_every_stage_of_a_trace(self):
        with Daemon("--load", NAME, "--chunk-bytes", "1024") as d:
            req = I.TraceRequest(model=NAME, traces=[saving_trace("a"), saving_trace("b")],
                                 logits=2)
            full = list(d.inference.Trace(req, timeout=60))
            self.assertGreater(len(full), 8)
            for k in range(len(full)):
                stream = d.inference.Trace(req, timeout=60)
                for _ in range(k):
                    next(stream)
                stream.cancel()
            # Serves on, with the same bytes as before.
            again = list(d.inference.Trace(req, timeout=60))
            self.assertEqual([m.SerializeToString() for m in again if m.HasField("chunk")],
                             [m.SerializeToString() for m in full if m.HasField("chunk")])
        self.assertEqual(d.proc.returncode, 0, d.log_text())


if __name__ == "__main__":
    unittest.main()
