"""Module edits end to end with a Python grpcio client, checked against the
eager model with forward hooks doing the same thing (pyref.py).

Covers: an edit inside one instance of a scripted module whose graph every
layer shares changes that instance only; steering, head ablation, scaling,
replacement and saves equal their hook references; Apply is atomic; edit sets
run concurrently without seeing each other; cache hits, Drop and graph
inspection.
"""

import os
import sys
import threading
import time
import unittest

import grpc
import numpy as np

from nnedit_testlib import Daemon, forward, manifest, models_pb2, ref_array, tensor_pb2

sys.path.insert(0, os.environ.get("NNE_PY_GEN", ""))
from nnedit.v1 import admin_pb2, admin_pb2_grpc, edits_pb2, edits_pb2_grpc  # noqa: E402

import pyref  # noqa: E402
import torch  # noqa: E402

NAMES = ["gpt2-script", "gpt2-trace", "llama-script", "llama-trace", "neox-script", "neox-trace"]
# The attention output projection and a layer path per family.
OPROJ = {"gpt2": "transformer.h.{i}.attn.c_proj", "llama": "model.layers.{i}.self_attn.o_proj",
         "neox": "gpt_neox.layers.{i}.attention.dense"}
LAYER = {"gpt2": "transformer.h.{i}", "llama": "model.layers.{i}", "neox": "gpt_neox.layers.{i}"}
MLP = {"gpt2": "transformer.h.{i}.mlp", "llama": "model.layers.{i}.mlp",
       "neox": "gpt_neox.layers.{i}.mlp"}


def fam(name):
    return name.split("-")[0]


def tensor_msg(a):
    a = np.ascontiguousarray(a, dtype=np.float32)
    return tensor_pb2.Tensor(dtype=tensor_pb2.DTYPE_FLOAT32, shape=list(a.shape), data=a.tobytes())


class Edits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        args = []
        for n in NAMES:
            args += ["--load", n]
        cls.d = Daemon(*args)
        cls.edits = edits_pb2_grpc.EditsStub(cls.d.channel)
        cls.admin = admin_pb2_grpc.AdminStub(cls.d.channel)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ms = {m.name: m.state for m in cls.d.models.List(models_pb2.ListModelsRequest()).models}
            if all(ms.get(n) == models_pb2.MODEL_STATE_LOADED for n in NAMES):
                break
            time.sleep(0.05)
        cls.eager = {n: pyref.eager_model(n) for n in NAMES}

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop()
        assert code == 0, cls.d.log_text()

    def apply(self, model, edits, label=""):
        return self.edits.Apply(edits_pb2.ApplyEditsRequest(model=model, edits=edits, label=label),
                                timeout=60).edit_set

    def drop(self, es):
        return self.edits.Drop(edits_pb2.DropEditSetRequest(id=es.id), timeout=10)

    def check(self, got, want, what):
        diff = float(np.abs(got - want).max())
        print(f"{what}: max |daemon - eager hooks| {diff:g}")
        self.assertLessEqual(diff, 1e-5, what)

    def test_zero_pattern_edits_one_instance(self):
        for name in NAMES:
            with self.subTest(model=name):
                ids = manifest(name)["inputs"]["input_ids"]
                es = self.apply(name, [edits_pb2.Edit(site="layers.0.self_attn.pattern",
                                                      op=edits_pb2.EDIT_OP_ZERO)])
                try:
                    res, t = forward(self.d.inference, name, ids, logits=2,
                                     save=["layers.1.self_attn.pattern", "layers.0.self_attn.z"],
                                     edit_set=es.id)
                    # Only layer 0's instance is edited, although a scripted
                    # model's layers share one attention graph.
                    np.testing.assert_allclose(t["layers.1.self_attn.pattern"].sum(-1), 1.0, atol=1e-5)
                    self.assertEqual(float(np.abs(t["layers.0.self_attn.z"]).max()), 0.0)
                    # A zero pattern makes z zero: the reference zeroes the
                    # output projection's input with a pre-hook.
                    path = OPROJ[fam(name)].format(i=0)
                    want = pyref.run(self.eager[name], ids,
                                     [(path, "pre", lambda m, a: (torch.zeros_like(a[0]),) + a[1:])])
                    self.check(t["logits"], want, f"{name} zero pattern")
                    pristine = ref_array(name, "logits_jit.npy")
                    self.assertGreater(float(np.abs(t["logits"] - pristine).max()), 1e-3)
                finally:
                    self.drop(es)

    def test_steering_ablation_scale_replace(self):
        rng = np.random.default_rng(0)
        for name in NAMES:
            f = fam(name)
            ids = manifest(name)["inputs"]["input_ids"]
            d = 64
            steer = rng.normal(size=d).astype(np.float32)
            head = 1
            hd = d // 4
            repl = rng.normal(size=(1, 7, d)).astype(np.float32)
            edits = [
                edits_pb2.Edit(site="layers.1.resid_post", op=edits_pb2.EDIT_OP_ADD, tensor=tensor_msg(steer)),
                edits_pb2.Edit(site="layers.0.self_attn.z", op=edits_pb2.EDIT_OP_ZERO,
                               ranges=[edits_pb2.DimRange(dim=-1, start=head * hd, stop=(head + 1) * hd)]),
                edits_pb2.Edit(site="layers.0.mlp_out", op=edits_pb2.EDIT_OP_SCALE, scalar=0.5),
                edits_pb2.Edit(site="layers.0.resid_post", op=edits_pb2.EDIT_OP_REPLACE, tensor=tensor_msg(repl),
                               ranges=[edits_pb2.DimRange(dim=0, start=1, stop=2)]),
                edits_pb2.Edit(site="layers.1.resid_post", op=edits_pb2.EDIT_OP_SAVE, name="steered"),
            ]
            with self.subTest(model=name):
                es = self.apply(name, edits, label="combo")
                try:
                    res, t = forward(self.d.inference, name, ids, logits=2, edit_set=es.id,
                                     save=["layers.1.resid_post"])

                    def ablate(m, a):
                        x = a[0].clone()
                        x[..., head * hd:(head + 1) * hd] = 0
                        return (x,) + a[1:]

                    def scale(m, a, o):
                        return o * 0.5

                    def replace(m, a, o):
                        x = pyref.first(o).clone()
                        x[1:2] = torch.from_numpy(repl)
                        return pyref.replace_first(o, x)

                    def add(m, a, o):
                        return pyref.replace_first(o, pyref.first(o) + torch.from_numpy(steer))

                    want = pyref.run(self.eager[name], ids, [
                        (OPROJ[f].format(i=0), "pre", ablate),
                        (MLP[f].format(i=0), "out", scale),
                        (LAYER[f].format(i=0), "out", replace),
                        (LAYER[f].format(i=1), "out", add),
                    ])
                    self.check(t["logits"], want, f"{name} steer+ablate+scale+replace")
                    # The SAVE edit sees the value where it stands in the chain:
                    # after the ADD before it; the request's save sees the end.
                    np.testing.assert_array_equal(t["steered"], t["layers.1.resid_post"])
                    self.assertEqual(list(res.saved), ["layers.1.resid_post", "steered"])
                finally:
                    self.drop(es)

    def test_apply_is_atomic(self):
        before = self.edits.List(edits_pb2.ListEditSetsRequest()).edit_sets
        bad = [
            ([edits_pb2.Edit(site="layers.0.resid_post", op=edits_pb2.EDIT_OP_ZERO),
              edits_pb2.Edit(site="layers.0.no_such_site", op=edits_pb2.EDIT_OP_ZERO)],
             grpc.StatusCode.INVALID_ARGUMENT, "edits[1]"),
            ([edits_pb2.Edit(site="layers.0.resid_post", op=edits_pb2.EDIT_OP_ADD,
                             tensor=tensor_pb2.Tensor(dtype=tensor_pb2.DTYPE_INT64, shape=[64],
                                                      data=bytes(8 * 64)))],
             grpc.StatusCode.INVALID_ARGUMENT, "int64"),
            ([edits_pb2.Edit(site="layers.0.resid_post", op=edits_pb2.EDIT_OP_ZERO,
                             ranges=[edits_pb2.DimRange(dim=-1, start=60, stop=70)])],
             grpc.StatusCode.INVALID_ARGUMENT, "edits[0]"),
            ([edits_pb2.Edit(site="layers.0.resid_post", op=edits_pb2.EDIT_OP_ADD,
                             tensor=tensor_msg(np.zeros(63)))],
             grpc.StatusCode.INVALID_ARGUMENT, "edits[0]"),
            # The operand is a oneof: none for ADD, one for ZERO (a scalar 0
            # is an operand too: presence, not value, decides).
            ([edits_pb2.Edit(site="layers.0.resid_post", op=edits_pb2.EDIT_OP_ADD)],
             grpc.StatusCode.INVALID_ARGUMENT, "edits[0]: ADD needs a tensor or a scalar"),
            ([edits_pb2.Edit(site="layers.0.resid_post", op=edits_pb2.EDIT_OP_ZERO, scalar=0.0)],
             grpc.StatusCode.INVALID_ARGUMENT, "edits[0]: ZERO takes no tensor or scalar"),
            ([edits_pb2.Edit(site="layers.9.resid_post", op=edits_pb2.EDIT_OP_ZERO)],
             grpc.StatusCode.INVALID_ARGUMENT, "2 layers"),
            ([], grpc.StatusCode.INVALID_ARGUMENT, "edits"),
        ]
        for edits, code, needle in bad:
            with self.subTest(needle=needle, n=len(edits)):
                with self.assertRaises(grpc.RpcError) as cm:
                    self.apply("gpt2-script", edits)
                self.assertEqual(cm.exception.code(), code, cm.exception.details())
                self.assertIn(needle, cm.exception.details())
        after = self.edits.List(edits_pb2.ListEditSetsRequest()).edit_sets
        self.assertEqual(len(after), len(before))

    def test_concurrent_edit_sets_do_not_see_each_other(self):
        name = "llama-script"
        ids = manifest(name)["inputs"]["input_ids"]
        a = self.apply(name, [edits_pb2.Edit(site="layers.0.resid_post", op=edits_pb2.EDIT_OP_SCALE,
                                             scalar=0.0)])
        b = self.apply(name, [edits_pb2.Edit(site="layers.0.resid_post", op=edits_pb2.EDIT_OP_SCALE,
                                             scalar=2.0)])
        try:
            self.assertTrue(b.cache_hit)  # same structure, other values
            self.assertEqual(a.backend_key, b.backend_key)
            out = {}

            def run(key, es):
                for k in range(5):
                    out[(key, k)] = forward(self.d.inference, name, ids, logits=2, edit_set=es.id)[1]["logits"]

            threads = [threading.Thread(target=run, args=(k, es)) for k, es in (("a", a), ("b", b))]
            for th in threads:
                th.start()
            for th in threads:
                th.join(60)
            want = {s: pyref.run(self.eager[name], ids, [(LAYER["llama"].format(i=0), "out",
                                                         lambda m, x, o, s=s: pyref.replace_first(o, pyref.first(o) * s))])
                    for s in (0.0, 2.0)}
            for k in range(5):
                self.check(out[("a", k)], want[0.0], "edit set a")
                self.check(out[("b", k)], want[2.0], "edit set b")
        finally:
            r1 = self.drop(a)
            r2 = self.drop(b)
            self.assertEqual(r1.freed_bytes, 0)       # still pinned by b
            self.assertGreater(r2.freed_bytes, 0)     # the last holder frees it

    def test_drop_and_stats(self):
        name = "neox-script"
        s0 = {c.model: c for c in self.admin.Stats(admin_pb2.StatsRequest()).caches}[name]
        es = self.apply(name, [edits_pb2.Edit(site="layers.1.mlp.post", op=edits_pb2.EDIT_OP_ZERO)])
        self.assertFalse(es.cache_hit)
        self.assertGreater(es.compile_ms, 0)
        s1 = {c.model: c for c in self.admin.Stats(admin_pb2.StatsRequest()).caches}[name]
        self.assertEqual(s1.misses, s0.misses + 1)
        self.assertGreater(s1.bytes, s0.bytes)
        self.assertEqual(s1.pinned, s0.pinned + 1)
        es2 = self.apply(name, [edits_pb2.Edit(site="layers.1.mlp.post", op=edits_pb2.EDIT_OP_SCALE,
                                               scalar=3.0)])
        s2 = {c.model: c for c in self.admin.Stats(admin_pb2.StatsRequest()).caches}[name]
        self.assertEqual(s2.hits, s1.hits + 1)
        got = self.edits.Get(edits_pb2.GetEditSetRequest(id=es.id))
        self.assertEqual(got.edits[0].canonical, "gpt_neox.layers.1.mlp.dense_4h_to_h.input")
        self.assertEqual(got.edits[0].instance, "gpt_neox.layers.1.mlp.dense_4h_to_h")
        self.assertFalse(got.edits[0].HasField("scalar"))  # ZERO: no operand
        got2 = self.edits.Get(edits_pb2.GetEditSetRequest(id=es2.id)).edits[0]
        self.assertEqual((got2.op, got2.HasField("scalar"), got2.scalar),
                         (edits_pb2.EDIT_OP_SCALE, True, 3.0))
        self.assertEqual(got2.tensor_dtype, tensor_pb2.DTYPE_UNSPECIFIED)
        self.drop(es2)
        r = self.drop(es)
        self.assertGreater(r.freed_bytes, 0)
        s3 = {c.model: c for c in self.admin.Stats(admin_pb2.StatsRequest()).caches}[name]
        self.assertEqual(s3.bytes, s0.bytes)
        with self.assertRaises(grpc.RpcError) as cm:
            forward(self.d.inference, name, [[1, 2]], edit_set=es.id)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_graph_shows_hooks(self):
        name = "gpt2-script"
        es = self.apply(name, [edits_pb2.Edit(site="layers.0.self_attn.pattern", op=edits_pb2.EDIT_OP_ZERO)])
        try:
            g0 = self.d.models.Graph(models_pb2.GraphRequest(model=name, module="layers.0.self_attn"))
            self.assertFalse(g0.edited)
            self.assertFalse(any(n.inserted for n in g0.nodes))
            self.assertIn("transformer.h.0.attn:aten::softmax#0", [n.selector for n in g0.nodes])
            g1 = self.d.models.Graph(models_pb2.GraphRequest(model=name, module="layers.0.self_attn",
                                                             edit_set=es.id))
            self.assertTrue(g1.edited)
            hooks = [n for n in g1.nodes if n.kind == models_pb2.NODE_KIND_HOOK]
            self.assertTrue(hooks and all(n.inserted for n in hooks))
            self.assertTrue(g1.text)
            g2 = self.d.models.Graph(models_pb2.GraphRequest(model=name, module="transformer.h.1.attn",
                                                             edit_set=es.id))
            self.assertFalse(g2.edited)
            # The tree stays the same; the edited instance is marked.
            plain = self.d.models.Describe(models_pb2.DescribeModelRequest(name=name))
            marked = self.d.models.Describe(models_pb2.DescribeModelRequest(name=name,
                                                                            edit_set=es.id))
            self.assertEqual([m.path for m in plain.modules], [m.path for m in marked.modules])
            edited = {m.path: list(m.edits) for m in marked.modules if m.edits}
            self.assertEqual(list(edited), ["transformer.h.0.attn"])
            self.assertIn("ZERO transformer.h.0.attn:aten::softmax#0",
                          edited["transformer.h.0.attn"][0])
        finally:
            self.drop(es)

    def test_unload_refused_while_edit_sets_exist(self):
        name = "gpt2-trace"
        es = self.apply(name, [edits_pb2.Edit(site="layers.0.resid_post", op=edits_pb2.EDIT_OP_ZERO)])
        with self.assertRaises(grpc.RpcError) as cm:
            self.d.models.Unload(models_pb2.UnloadModelRequest(name=name))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("edit set", cm.exception.details())
        self.drop(es)


if __name__ == "__main__":
    unittest.main()
