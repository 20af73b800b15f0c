"""Inference.Trace basics with a Python grpcio client (one daemon, the GPT-2
fixture): the fast checks of issue 5's daemon side. The six research
workflows against Python references live in their own test.

Covers: a read + save equals Forward's save of the same site; two invokes
(rows narrowed per invoke, padded when their lengths differ); a write that
zeroes a layer's output (for the whole batch or one invoke's rows) changes
the logits, and only those rows'; a call chain (matmul, softmax) and a module
call (ln_final, lm_head on the last residual = the logits); an edit set's
edits apply before the trace reads; a session where trace 2 writes what
trace 1 saved (RefNode); every validation error class with its status and
message; a run-time shape mismatch, after which the same daemon serves a good
trace.
"""

import time
import unittest

import grpc
import numpy as np

from nnedit_testlib import (Daemon, forward, inference_pb2, manifest, tensor_pb2,
                            trace, wait_loaded, write_layered_slow_model)

import os
import sys
sys.path.insert(0, os.environ.get("NNE_PY_GEN", ""))
from nnedit.v1 import edits_pb2, edits_pb2_grpc  # noqa: E402

I = inference_pb2
NAME = "gpt2-script"
INV, RES = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED
LEFT = I.PADDING_LEFT
ALL, LAST = I.LOGITS_MODE_ALL, I.LOGITS_MODE_LAST

# ---- building graphs -----------------------------------------------------------


def invoke(rows, mask=None):
    return I.Invoke(input_ids=[I.TokenRow(ids=r) for r in rows],
                    attention_mask=[I.MaskRow(values=m) for m in (mask or [])])


def read(i, site, inv=None):
    """inv None: the invoke left unset, every invoke's rows."""
    return I.Node(id=i, read=I.ReadNode(site=site, invoke=inv))


def write(i, site, value, inv=None, ranges=()):
    return I.Node(id=i, write=I.WriteNode(site=site, value=value, invoke=inv,
                                          ranges=[edits_pb2.DimRange(dim=d, start=s, stop=e)
                                                  for d, s, e in ranges]))


def arg(v=None, name="", **kw):
    """A call argument: an int is a node reference; keywords pick the kind."""
    if v is not None:
        kw["node"] = v
    return I.Arg(name=name, **kw)


def call(i, fn, *args, items=()):
    return I.Node(id=i, call=I.CallNode(fn=fn, args=list(args), index_items=list(items)))


def const(i, a):
    a = np.ascontiguousarray(a, dtype=np.float32)
    return I.Node(id=i, constant=I.ConstNode(tensor=tensor_pb2.Tensor(
        dtype=tensor_pb2.DTYPE_FLOAT32, shape=list(a.shape), data=a.tobytes())))


def scalar(i, v):
    return I.Node(id=i, constant=I.ConstNode(scalar=v))


def save(i, value, name):
    return I.Node(id=i, save=I.SaveNode(value=value, name=name))


def ref(i, name):
    return I.Node(id=i, ref=I.RefNode(name=name))


def tr(nodes=(), invokes=None, name=""):
    return I.Trace(name=name, invokes=invokes or [invoke(IDS)], nodes=list(nodes))


IDS = manifest(NAME)["inputs"]["input_ids"]  # 2 rows x 7 tokens


class TraceBasics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Small limits so that the limit errors are cheap to provoke.
        cls.d = Daemon("--load", NAME, "--max-trace-nodes", "64", "--max-traces", "4",
                       "--max-response-bytes", "1M")
        cls.edits = edits_pb2_grpc.EditsStub(cls.d.channel)
        wait_loaded(cls.d, [NAME])
        cls.pristine = forward(cls.d.inference, NAME, IDS, logits=ALL)[1]["logits"]

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop()
        assert code == 0, cls.d.log_text()

    def run_trace(self, traces, **kw):
        return trace(self.d.inference, NAME, traces, **kw)

    def assertStatus(self, traces, code, *needles, **kw):
        with self.assertRaises(grpc.RpcError) as cm:
            self.run_trace(traces, **kw)
        e = cm.exception
        print("%s: %s" % (e.code(), e.details()))
        self.assertEqual(e.code(), code, e.details())
        for n in needles:
            self.assertIn(n, e.details())

    # ---- results ----------------------------------------------------------------

    def test_read_save_equals_forward(self):
        _, fwd = forward(self.d.inference, NAME, IDS, logits=ALL,
                         save=["layers.0.resid_post", "layers.1.self_attn.pattern"])
        res, t = self.run_trace([tr([read(1, "layers.0.resid_post"), save(2, 1, "resid0"),
                                     read(3, "blocks.1.attn.hook_pattern"), save(4, 3, "pat1")],
                                    name="clean")], logits=ALL, top_k=3)
        self.assertEqual(len(res), 1)
        r = res[0]
        self.assertEqual((r.trace, r.name, r.batch, r.seq_len), (0, "clean", 2, 7))
        self.assertEqual(list(r.saved), ["resid0", "pat1", "clean/logits"])
        self.assertEqual(len(r.rows), 2)
        self.assertEqual([len(x.top) for x in r.rows], [3, 3])
        self.assertEqual(len(r.backend_key), 16)
        self.assertGreater(r.timing.total_ms, 0)
        np.testing.assert_array_equal(t["resid0"], fwd["layers.0.resid_post"])
        np.testing.assert_array_equal(t["pat1"], fwd["layers.1.self_attn.pattern"])
        np.testing.assert_array_equal(t["clean/logits"], fwd["logits"])
        # The same structure again: the backend comes from the cache.
        res2, _ = self.run_trace([tr([read(1, "layers.0.resid_post"), save(2, 1, "x"),
                                      read(3, "layers.1.self_attn.pattern"), save(4, 3, "y")])])
        self.assertTrue(res2[0].cache_hit)
        self.assertEqual(res2[0].backend_key, r.backend_key)

    def test_empty_graph_is_the_pristine_forward(self):
        res, t = self.run_trace([tr()], logits=ALL)
        self.assertEqual(list(res[0].saved), ["0/logits"])
        self.assertEqual(res[0].backend_key, "")
        np.testing.assert_array_equal(t["0/logits"], self.pristine)

    def test_two_invokes(self):
        a, b = [5, 6, 7, 8, 9], [11, 12, 13, 14, 15, 16, 17]
        c = [21, 22, 23, 24, 25, 26, 27]
        _, fwd = forward(self.d.inference, NAME, [a, b, c], padding=LEFT, logits=ALL,
                         save=["layers.0.resid_post"])
        res, t = self.run_trace([tr([read(1, "layers.0.resid_post", 0), save(2, 1, "inv0"),
                                     read(3, "layers.0.resid_post", 1), save(4, 3, "inv1"),
                                     read(5, "layers.0.resid_post"), save(6, 5, "all")],
                                    invokes=[invoke([a]), invoke([b, c])])],
                                padding=LEFT, logits=LAST, top_k=1)
        whole = fwd["layers.0.resid_post"]
        self.assertEqual(res[0].batch, 3)
        self.assertEqual(t["inv0"].shape, (1, 7, 64))
        self.assertEqual(t["inv1"].shape, (2, 7, 64))
        np.testing.assert_array_equal(t["inv0"], whole[:1])
        np.testing.assert_array_equal(t["inv1"], whole[1:])
        np.testing.assert_array_equal(t["all"], whole)
        self.assertEqual([x.position for x in res[0].rows], [6, 6, 6])
        np.testing.assert_allclose(t["0/logits"], fwd["logits"][:, -1], rtol=0, atol=1e-6)
        # Without padding, ragged invokes are refused like ragged rows.
        self.assertStatus([tr(invokes=[invoke([a]), invoke([b])])], INV,
                          "traces[0].invokes", "differ in length", "PADDING_LEFT")

    def test_zeroing_write_changes_logits(self):
        zero = [read(1, "layers.0.resid_post"), call(2, "zeros_like", arg(1)),
                write(3, "layers.0.resid_post", 2)]
        _, t = self.run_trace([tr(zero)], logits=ALL)
        self.assertGreater(float(np.abs(t["0/logits"] - self.pristine).max()), 1e-2)
        # A write whose invoke is unset reaches every row of every invoke.
        inv = [invoke(IDS[:1]), invoke(IDS[1:])]
        self.assertFalse(zero[2].write.HasField("invoke"))
        _, t = self.run_trace([tr(zero, invokes=inv)], logits=ALL)
        for row in range(2):
            self.assertGreater(float(np.abs(t["0/logits"][row] - self.pristine[row]).max()),
                               1e-2, "row %d not written" % row)
        # Only invoke 1's rows: invoke 0's logits stay the pristine ones.
        only = [read(1, "layers.0.resid_post", 1), call(2, "zeros_like", arg(1)),
                write(3, "layers.0.resid_post", 2, inv=1),
                read(4, "layers.0.resid_post"), save(5, 4, "before"),
                read(6, "layers.1.resid_pre"), save(7, 6, "after")]
        _, t = self.run_trace([tr(only, invokes=inv)], logits=ALL)
        np.testing.assert_array_equal(t["0/logits"][0], self.pristine[0])
        self.assertGreater(float(np.abs(t["0/logits"][1] - self.pristine[1]).max()), 1e-2)
        # A read at the written site sees the value before the write; the
        # next layer's input sees the write.
        self.assertGreater(float(np.abs(t["before"][1]).max()), 0)
        self.assertEqual(float(np.abs(t["after"][1]).max()), 0.0)
        np.testing.assert_array_equal(t["after"][0], t["before"][0])
        # A scalar written at one position of one row (ranges within the
        # invoke's rows).
        pos = [read(1, "layers.1.resid_post"), scalar(2, 0.0),
               write(3, "layers.1.resid_post", 2, inv=1, ranges=[(0, 0, 1), (1, -1, 0)])]
        _, t = self.run_trace([tr(pos, invokes=inv)], logits=ALL)
        diff = np.abs(t["0/logits"] - self.pristine).max(axis=-1)
        self.assertEqual(float(diff[0].max()), 0.0)
        self.assertEqual(float(diff[1, :6].max()), 0.0)
        self.assertGreater(float(diff[1, 6]), 0.0)

    def test_call_chain_and_module(self):
        rng = np.random.default_rng(0)
        w = rng.normal(size=(64, 8)).astype(np.float32)
        nodes = [read(1, "layers.0.resid_post"), const(2, w),
                 call(3, "matmul", arg(1), arg(2)),
                 call(4, "softmax", arg(3), arg(name="dim", integer=-1)),
                 save(5, 4, "probs"), save(6, 1, "resid"),
                 # index: the last position of every row
                 call(7, "index", arg(1), items=[I.IndexItem(slice=I.Slice()),
                                                 I.IndexItem(index=-1)]),
                 save(8, 7, "last"),
                 # logit lens on the last layer: ln_final, then lm_head
                 read(9, "layers.1.resid_post"),
                 call(10, "module", arg(module="ln_final"), arg(9)),
                 call(11, "module", arg(module="lm_head"), arg(10)),
                 save(12, 11, "lens")]
        res, t = self.run_trace([tr(nodes)], logits=ALL)
        x = t["resid"].astype(np.float64) @ w
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        np.testing.assert_allclose(t["probs"], e / e.sum(-1, keepdims=True), rtol=0, atol=1e-5)
        np.testing.assert_array_equal(t["last"], t["resid"][:, -1])
        np.testing.assert_allclose(t["lens"], t["0/logits"], rtol=0, atol=1e-5)

    def test_edit_set_applies_first(self):
        es = self.edits.Apply(edits_pb2.ApplyEditsRequest(
            model=NAME, edits=[edits_pb2.Edit(site="layers.0.mlp_out", op=edits_pb2.EDIT_OP_ZERO),
                               edits_pb2.Edit(site="layers.1.resid_post", op=edits_pb2.EDIT_OP_SAVE,
                                              name="r1")]), timeout=60).edit_set
        try:
            _, fwd = forward(self.d.inference, NAME, IDS, logits=ALL, edit_set=es.id)
            res, t = self.run_trace([tr([read(1, "layers.0.mlp_out"), save(2, 1, "mlp")], name="a"),
                                     tr(name="b")], edit_set=es.id, logits=ALL)
            self.assertEqual(float(np.abs(t["mlp"]).max()), 0.0)
            np.testing.assert_array_equal(t["a/logits"], fwd["logits"])
            np.testing.assert_array_equal(t["b/logits"], fwd["logits"])
            self.assertEqual(list(res[0].saved), ["mlp", "a/r1", "a/logits"])
            self.assertEqual(list(res[1].saved), ["b/r1", "b/logits"])
            self.assertTrue(res[1].cache_hit)
        finally:
            self.edits.Drop(edits_pb2.DropEditSetRequest(id=es.id), timeout=10)

    def test_session_ref(self):
        other = [[7, 8, 9, 10, 11, 12, 13], [100, 200, 300, 400, 500, 600, 700]]
        clean = tr([read(1, "layers.0.resid_post"), save(2, 1, "clean_resid")], name="clean")
        patched = tr([ref(1, "clean_resid"), write(2, "layers.0.resid_post", 1),
                      read(3, "layers.0.resid_post"), save(4, 3, "own")],
                     invokes=[invoke(other)], name="patched")
        res, t = self.run_trace([clean, patched], logits=ALL)
        self.assertEqual([r.trace for r in res], [0, 1])
        self.assertEqual([r.name for r in res], ["clean", "patched"])
        # Everything after layer 0 sees the clean residual: the clean logits.
        np.testing.assert_allclose(t["patched/logits"], t["clean/logits"], rtol=0, atol=1e-6)
        np.testing.assert_array_equal(t["clean/logits"], self.pristine)
        self.assertGreater(float(np.abs(t["own"] - t["clean_resid"]).max()), 1e-3)

    # ---- bad input ---------------------------------------------------------------

    def test_validation_errors(self):
        r0 = "layers.0.resid_post"
        big = np.zeros((300000,), np.float32)
        cases = [
            ("no op", [tr([I.Node(id=3)])], INV,
             ["traces[0].nodes[0] (id 3)", "exactly one of read, write, call", "none"]),
            ("duplicate id", [tr([read(1, r0), read(1, r0)])], INV,
             ["traces[0].nodes[1] (id 1)", "also the id of nodes[0]"]),
            ("dangling", [tr([read(1, r0), save(2, 5, "x")])], INV,
             ["traces[0].nodes[1] (id 2)", "save.value", "node 5", "not in this trace"]),
            ("no value", [tr([read(1, r0), write(2, r0, 1), save(3, 2, "x")])], INV,
             ["traces[0].nodes[2] (id 3)", "a write, which has no value"]),
            ("cycle", [tr([call(1, "neg", arg(2)), call(2, "exp", arg(1))])], INV,
             ["traces[0].nodes[1] (id 2)", "the graph has a cycle", "2 -> 1 -> 2"]),
            ("unknown site", [tr([read(4, "layers.0.resid_psot")])], INV,
             ["traces[0].nodes[0] (id 4)", "read.site", "closest: layers.0.resid_post"]),
            ("layer out of range", [tr([read(4, "layers.9.resid_post")])], INV,
             ["traces[0].nodes[0] (id 4)", "2 layers"]),
            ("no such node in the code", [tr([read(1, r0), save(2, 1, "x"),
                                              read(3, "layers.0.self_attn:aten::frob#0"),
                                              save(4, 3, "y")])], INV,
             ["traces[0].nodes[2] (id 3)", "aten::frob"]),
            ("write to a view", [tr([read(1, "layers.0.self_attn.q"),
                                     write(2, "layers.0.self_attn.q", 1)])], INV,
             ["traces[0].nodes[1] (id 2)", "view of a fused value"]),
            ("bad invoke", [tr([read(1, r0, 1)])], INV,
             ["traces[0].nodes[0] (id 1)", "read.invoke 1", "1 invoke"]),
            ("negative invoke", [tr([read(1, r0), write(2, r0, 1, inv=-1)])], INV,
             ["traces[0].nodes[1] (id 2)", "write.invoke -1 is negative", "unset"]),
            ("bad call", [tr([read(1, r0), call(2, "softmax", arg(1))])], INV,
             ["traces[0].nodes[1] (id 2)", "softmax: missing argument 'dim'"]),
            ("unknown fn", [tr([read(1, r0), call(2, "eval", arg(1))])], INV,
             ["traces[0].nodes[1] (id 2)", "eval: not a function a trace may call"]),
            ("unknown module", [tr([read(1, r0), call(2, "module", arg(module="lm_heda"), arg(1))])],
             INV, ["traces[0].nodes[1] (id 2)", "lm_heda", "lm_head"]),
            ("save clash", [tr([read(1, r0), save(2, 1, "x")]), tr([read(1, r0), save(2, 1, "x")])],
             INV, ["traces[1].nodes[1] (id 2)", "'x'", "traces[0].nodes[1] (id 2)"]),
            ("save takes logits' name", [tr([read(1, r0), save(2, 1, "0/logits")])], INV,
             ["traces[0].nodes[1] (id 2)", "the logits of traces[0]"], dict(logits=LAST)),
            ("ref to later", [tr([ref(1, "later"), write(2, r0, 1)]),
                              tr([read(1, r0), save(2, 1, "later")])], INV,
             ["traces[0].nodes[0] (id 1)", "ref 'later'", "no earlier trace"]),
            ("late read", [tr([read(1, "layers.1.resid_post"), call(2, "neg", arg(1)),
                               write(3, r0, 2)])], INV,
             ["traces[0].nodes[2] (id 3): node 3 writes layers.0.resid_post but depends on "
              "read node 1 of layers.1.resid_post, which runs later in the forward"]),
            ("const bytes", [tr([I.Node(id=1, constant=I.ConstNode(tensor=tensor_pb2.Tensor(
                dtype=tensor_pb2.DTYPE_FLOAT32, shape=[2, 2], data=b"\0" * 12)))])], INV,
             ["traces[0].nodes[0] (id 1)", "12 bytes", "16 expected"]),
            ("no traces", [], INV, ["traces: a request needs at least one trace"]),
            ("no invokes", [I.Trace()], INV, ["traces[0].invokes", "at least one invoke"]),
            ("empty invoke", [tr(invokes=[invoke([[1, 2]]), I.Invoke()])], INV,
             ["traces[0].invokes[1].input_ids", "no rows"]),
            ("token", [tr(invokes=[invoke([[1, 2000]])])], INV,
             ["traces[0].invokes[0].input_ids[0][1]", "vocabulary"]),
            ("mask", [tr(invokes=[invoke([[1, 2]], mask=[[1]])])], INV,
             ["traces[0].invokes[0].attention_mask[0]", "1 values for 2 tokens"]),
            ("top_k", [tr()], INV, ["top_k"], dict(top_k=5000)),
            ("rows", [tr(invokes=[invoke([[1]] * 9), invoke([[1]] * 8)])], RES,
             ["traces[0].invokes", "17 rows", "max_batch 16"]),
            ("seq", [tr(invokes=[invoke([[1] * 65])])], RES, ["65 tokens", "max_seq_len 64"]),
            ("nodes", [tr([scalar(i, 1.0) for i in range(65)])], RES,
             ["traces[0].nodes", "64 nodes", "--max-trace-nodes"]),
            ("traces", [tr()] * 5, RES, ["more than 4 traces", "--max-traces"]),
            ("saved bytes", [tr([const(1, big), save(2, 1, "big")])], RES,
             ["--max-response-bytes"]),
            ("logits bytes", [tr(invokes=[invoke([[1] * 64] * 8)])], RES,
             ["logits", "--max-response-bytes"], dict(logits=ALL)),
        ]
        for case in cases:
            what, traces, code, needles = case[:4]
            kw = case[4] if len(case) > 4 else {}
            with self.subTest(case=what):
                self.assertStatus(traces, code, *needles, **kw)
        with self.subTest(case="unknown model"):
            with self.assertRaises(grpc.RpcError) as cm:
                trace(self.d.inference, "nope", [tr()])
            self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        with self.subTest(case="unknown edit set"):
            self.assertStatus([tr()], grpc.StatusCode.NOT_FOUND, "edit_set", "es-nope",
                              edit_set="es-nope")
        # The daemon and the model stay healthy.
        res, _ = self.run_trace([tr()], top_k=1)
        self.assertEqual(len(res[0].rows), 2)

    def test_huge_value_is_refused_before_it_is_made(self):
        # 16 GiB from a request of a few bytes: sized on meta tensors and
        # refused (RESOURCE_EXHAUSTED naming the node and the limit) before
        # anything is allocated; the daemon stays healthy.
        huge = [call(1, "full", arg(ints=I.IntList(values=[65536, 65536])), arg(scalar=1.0)),
                call(2, "sum", arg(1)), save(3, 2, "s")]
        self.assertStatus([tr(huge)], RES, "traces[0].nodes[0] (id 1)", "17179869184",
                          "--max-trace-value-bytes")
        # A broadcast of two small inputs into a 896 x 896 float32 value
        # (3.2 MB): runs under the default limit (2 GiB) ...
        bcast = [read(1, "layers.0.resid_post"),
                 call(2, "reshape", arg(1), arg(ints=I.IntList(values=[-1, 1]))),
                 call(3, "reshape", arg(1), arg(ints=I.IntList(values=[1, -1]))),
                 call(4, "mul", arg(2), arg(3)), call(5, "sum", arg(4)),
                 save(6, 5, "total")]
        res, t = self.run_trace([tr(bcast)])
        self.assertEqual(t["total"].shape, ())
        # ... and is refused by a daemon whose limit is 1 MiB, at the mul.
        with Daemon("--load", NAME, "--max-trace-value-bytes", "1M") as d:
            wait_loaded(d, [NAME])
            with self.assertRaises(grpc.RpcError) as cm:
                trace(d.inference, NAME, [tr(bcast)])
            self.assertEqual(cm.exception.code(), RES)
            for needle in ("traces[0].nodes[3] (id 4)", "3211264", "1048576"):
                self.assertIn(needle, cm.exception.details())
        res, t = self.run_trace([tr([read(1, "layers.0.resid_post"), save(2, 1, "ok")])])
        self.assertEqual(t["ok"].shape, (2, 7, 64))

    def test_run_time_failure_then_good_trace(self):
        bad = [read(1, "layers.0.resid_post"), call(2, "matmul", arg(1), arg(1)),
               save(3, 2, "mm")]
        self.assertStatus([tr(bad)], INV, "traces[0].nodes[1] (id 2)", "matmul")
        # A write whose value does not broadcast to the site: named too.
        wrong = [const(1, np.ones((5,), np.float32)), write(2, "layers.0.resid_post", 1)]
        self.assertStatus([tr(wrong)], INV, "traces[0].nodes[1] (id 2)",
                          "write to layers.0.resid_post", "does not broadcast")
        res, t = self.run_trace([tr([read(1, "layers.0.resid_post"), save(2, 1, "ok")])],
                                logits=ALL)
        np.testing.assert_array_equal(t["0/logits"], self.pristine)
        self.assertEqual(t["ok"].shape, (2, 7, 64))


class Cancellation(unittest.TestCase):
    """A trace whose client deadline passes stops its forward at the next
    site instead of running to the end (the issue's "stops the forward at
    the next site"), and the daemon serves the next request."""

    def test_deadline_stops_the_forward(self):
        import re
        import shutil
        import tempfile
        repo = tempfile.mkdtemp(prefix="nnedit-cancel-")
        try:
            blocks = 64
            write_layered_slow_model(repo, blocks=blocks)
            with Daemon("--model-repo", repo, "--load", "slowlayers", "--workers", "1",
                        "--log-level", "debug", repo=repo) as d:
                wait_loaded(d, ["slowlayers"])
                ids = [[1, 2, 3, 4, 5, 6, 7, 8] * 8]
                # Every block's output is read and reduced to a scalar that is
                # saved: a hook at each of the 64 sites, little to stream.
                nodes = []
                for b in range(blocks):
                    nodes += [read(3 * b + 1, "blocks.%d.output" % b),
                              call(3 * b + 2, "sum", arg(3 * b + 1)),
                              save(3 * b + 3, 3 * b + 2, "s%d" % b)]
                t = tr(nodes, invokes=[invoke(ids)])
                # The whole traced forward, for scale.
                res, saved = trace(d.inference, "slowlayers", [t], timeout=300)
                full_ms = res[0].timing.compute_ms
                self.assertEqual(len(saved), blocks)
                print("full traced forward: %.0f ms" % full_ms)
                # The same with a deadline of a tenth of that.
                with self.assertRaises(grpc.RpcError) as cm:
                    trace(d.inference, "slowlayers", [t], timeout=full_ms / 10000.0)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
                gone = None
                wait = time.monotonic() + 4 * full_ms / 1000.0 + 30
                while gone is None and time.monotonic() < wait:
                    m = re.search(r"Trace: client gone after ([0-9.]+) ms of compute",
                                  d.log_text())
                    if m:
                        gone = float(m.group(1))
                    else:
                        time.sleep(0.05)
                self.assertIsNotNone(gone, "no 'client gone' line:\n" + d.log_text()[-3000:])
                print("cancelled after %.0f ms of compute" % gone)
                # Stopped early: well under the whole forward (its deadline
                # was a tenth of it; half leaves room for a busy machine).
                self.assertLess(gone, full_ms / 2)
                # And the daemon serves the next trace in full.
                res, saved = trace(d.inference, "slowlayers", [tr(nodes[:3], invokes=[invoke(ids)])],
                                   timeout=300)
                self.assertEqual(list(saved), ["s0"])
        finally:
            shutil.rmtree(repo, ignore_errors=True)

    def test_apply_whose_client_left_creates_nothing(self):
        """An Apply whose deadline passes while its job runs (the backend's
        probe forwards) does not create the set afterwards: the client was
        told DEADLINE_EXCEEDED and has no id to drop it by."""
        import shutil
        import tempfile
        repo = tempfile.mkdtemp(prefix="nnedit-cancel-")
        try:
            # Probe forwards of ~1 s each (2 and 6 tokens through 64 x 400
            # small matmuls), so the deadline passes during the job.
            write_layered_slow_model(repo, blocks=64, iters=400, width=256)
            with Daemon("--model-repo", repo, "--load", "slowlayers", "--workers", "1",
                        repo=repo) as d:
                edits = edits_pb2_grpc.EditsStub(d.channel)
                wait_loaded(d, ["slowlayers"])
                req = edits_pb2.ApplyEditsRequest(
                    model="slowlayers", label="left",
                    edits=[edits_pb2.Edit(site="blocks.3.output", op=edits_pb2.EDIT_OP_ZERO)])
                with self.assertRaises(grpc.RpcError) as cm:
                    edits.Apply(req, timeout=0.3)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
                # A trace queues behind the Apply's job on the one worker:
                # when it returns, the Apply has finished.
                trace(d.inference, "slowlayers", [tr([], invokes=[invoke([[1, 2]])])],
                      timeout=300)
                listed = edits.List(edits_pb2.ListEditSetsRequest(model="slowlayers"))
                self.assertEqual([e.label for e in listed.edit_sets], [])
                # An Apply that waits creates its set (and finds the backend
                # the abandoned one built).
                es = edits.Apply(req, timeout=300)
                self.assertTrue(es.edit_set.cache_hit)
                listed = edits.List(edits_pb2.ListEditSetsRequest(model="slowlayers"))
                self.assertEqual([e.id for e in listed.edit_sets], [es.edit_set.id])
        finally:
            shutil.rmtree(repo, ignore_errors=True)

if __name__ == "__main__":
    unittest.main()
