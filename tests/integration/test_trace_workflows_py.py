"""Traced forward passes (Inference.Trace) end to end with a Python grpcio
client, each workflow of issue 5 checked against a Python reference: the
eager Hugging Face-layout model rebuilt with the archive's weights, with
forward hooks doing what the trace does (pyref.py).

Workflows, for gpt2-script, gpt2-trace, llama-script and llama-trace:
  1. the residual stream (resid_pre, resid_post) at every layer, batch of 2;
  2. activation patching, clean -> corrupted, per layer and position, in one
     session: (a) two invokes in one forward per trace, (b) a clean trace
     whose saves later traces read through RefNode;
  3. ablation: one head's slice of self_attn.z zeroed (zeros_like of the
     slice; a broadcast scalar constant); mlp_out mean-ablated over positions;
  4. steering: a constant vector added to resid_post at every position;
  5. logit lens: ln_final then lm_head called as modules (and the
     unembedding as a matmul with a constant) on each layer's residual,
     top-k per layer;
  6. the attention pattern (a node inside the module) saved, summing to 1
     over keys and equal to the eager attention weights.
Plus invokes of different lengths (padding), the edit set applying first,
TraceResult fields and the backend cache, every bad-input class of the issue,
and workflows through the CLI (steering and a RefNode session with
`nneditctl trace -f FILE`, the pattern with `--save ... -o npy`; skipped with
a message when $NNEDITCTL has no `trace` command). Class WorkflowsViaCtl runs
every test of Workflows again through `nneditctl trace -f FILE -o json
--save-dir DIR`: the same requests, written as client/TRACE-JSON.md files.

Tolerances: Llama archives reproduce the eager model bit for bit, so every
Llama comparison of a model value is exact (0). GPT-2 archives split
Conv1D's addmm into mm + add, which rounds differently (~1.4e-6 on logits):
1e-5. Values the daemon computes with a different op than the reference
(a matmul with a constant against nn.Linear) get 1e-5 for both. Every
comparison prints the measured max |daemon - reference|.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import grpc
import numpy as np

from nnedit_testlib import (Daemon, FIXTURES, NP_DTYPES, inference_pb2, manifest, models_pb2,
                            tensor_pb2, trace, wait_loaded)

sys.path.insert(0, os.environ.get("NNE_PY_GEN", ""))
from nnedit.v1 import edits_pb2, edits_pb2_grpc  # noqa: E402

import pyref  # noqa: E402
import torch  # noqa: E402

P = inference_pb2
NAMES = ["gpt2-script", "gpt2-trace", "llama-script", "llama-trace"]
TOL = {"gpt2": 1e-5, "llama": 0.0, "gpt_neox": 0.0}
OP_TOL = 1e-5  # a different op than the reference's (matmul vs linear)
LAST, ALL = P.LOGITS_MODE_LAST, P.LOGITS_MODE_ALL
NONE, RIGHT = P.PADDING_UNSPECIFIED, P.PADDING_RIGHT


# ---- building intervention graphs ---------------------------------------------


class V:
    """The value of a node (its id), as an argument of later nodes."""

    def __init__(self, nid):
        self.id = nid


class Mod:
    """A module argument of fn "module" (any spelling)."""

    def __init__(self, name):
        self.name = name


class Dt:
    """A dtype argument (tensor_pb2 enum value)."""

    def __init__(self, dtype):
        self.dtype = dtype


def arg(x, name=""):
    if isinstance(x, V):
        return P.Arg(node=x.id, name=name)
    if isinstance(x, Mod):
        return P.Arg(module=x.name, name=name)
    if isinstance(x, Dt):
        return P.Arg(dtype=x.dtype, name=name)
    if isinstance(x, bool):
        return P.Arg(boolean=x, name=name)
    if isinstance(x, int):
        return P.Arg(integer=x, name=name)
    if isinstance(x, float):
        return P.Arg(scalar=x, name=name)
    if isinstance(x, (list, tuple)):
        return P.Arg(ints=P.IntList(values=list(x)), name=name)
    raise TypeError(x)


def index_item(x):
    if x is Ellipsis:
        return P.IndexItem(ellipsis=True)
    if x is None:
        return P.IndexItem(newaxis=True)
    if isinstance(x, int):
        return P.IndexItem(index=x)
    if isinstance(x, slice):
        return P.IndexItem(slice=P.Slice(start=x.start, stop=x.stop, step=x.step or 0))
    raise TypeError(x)


def tensor_msg(a, dtype=tensor_pb2.DTYPE_FLOAT32):
    np_dtype = {tensor_pb2.DTYPE_FLOAT32: np.float32, tensor_pb2.DTYPE_INT64: np.int64}[dtype]
    a = np.ascontiguousarray(a, dtype=np_dtype)
    return tensor_pb2.Tensor(dtype=dtype, shape=list(a.shape), data=a.tobytes())


def invokes(*groups):
    """invokes([row, row], [row]) -> [Invoke, Invoke]."""
    return [P.Invoke(input_ids=[P.TokenRow(ids=list(r)) for r in rows]) for rows in groups]


class Graph:
    """An intervention graph under construction; node ids count up from
    `first_id` (distinct from small integers, so that an error naming a node
    id is unambiguous)."""

    def __init__(self, first_id=100):
        self.nodes = []
        self.next_id = first_id

    def add(self, nid=None, **op):
        if nid is None:
            nid = self.next_id
        self.next_id = max(self.next_id, nid) + 1
        self.nodes.append(P.Node(id=nid, **op))
        return V(nid)

    # invoke None: unset, every invoke's rows.
    def read(self, site, invoke=None, nid=None):
        return self.add(nid, read=P.ReadNode(site=site, invoke=invoke))

    def write(self, site, value, invoke=None, ranges=(), nid=None):
        return self.add(nid, write=P.WriteNode(
            site=site, value=value.id, invoke=invoke,
            ranges=[edits_pb2.DimRange(dim=d, start=a, stop=b) for d, a, b in ranges]))

    def call(self, fn, *args, nid=None, **kw):
        a = [arg(x) for x in args] + [arg(v, name=k) for k, v in kw.items()]
        return self.add(nid, call=P.CallNode(fn=fn, args=a))

    def index(self, x, *items, nid=None):
        return self.add(nid, call=P.CallNode(fn="index", args=[arg(x)],
                                             index_items=[index_item(i) for i in items]))

    def module(self, name, *inputs, nid=None):
        return self.call("module", Mod(name), *inputs, nid=nid)

    def const(self, a, nid=None):
        return self.add(nid, constant=P.ConstNode(tensor=tensor_msg(a)))

    def scalar(self, x, nid=None):
        return self.add(nid, constant=P.ConstNode(scalar=x))

    def save(self, value, name, nid=None):
        return self.add(nid, save=P.SaveNode(value=value.id, name=name))

    def ref(self, name, nid=None):
        return self.add(nid, ref=P.RefNode(name=name))

    def trace(self, name, invoke_list):
        return P.Trace(name=name, invokes=invoke_list, nodes=self.nodes)


def family(name):
    return pyref.family_of(name)


def n_layers(name):
    with open(os.path.join(FIXTURES, name, "model.json")) as f:
        return json.load(f)["config"]["n_layers"]


def logit_diff(logits_row, correct, incorrect):
    return float(logits_row[correct]) - float(logits_row[incorrect])


class TraceCase(unittest.TestCase):
    """One daemon with the GPT-2 and Llama fixtures (both exports) loaded,
    and the eager reference models."""

    DAEMON_ARGS = ()

    @classmethod
    def setUpClass(cls):
        args = list(cls.DAEMON_ARGS)
        for n in NAMES:
            args += ["--load", n]
        cls.d = Daemon(*args)
        wait_loaded(cls.d, NAMES)
        cls.eager = {n: pyref.eager_model(n) for n in NAMES}

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop()
        assert code == 0, "nneditd exited %s:\n%s" % (code, cls.d.log_text())

    def run_trace(self, name, traces, **kw):
        try:
            return trace(self.d.inference, name, traces, **kw)
        except grpc.RpcError as e:
            self.fail("%s: Trace failed: %s %s" % (name, e.code(), e.details()))

    def check(self, got, want, what, tol):
        """got == want within tol (tol 0: bit for bit); prints the figure."""
        want = np.asarray(want)
        self.assertEqual(tuple(got.shape), tuple(want.shape), what)
        self.assertEqual(got.dtype, want.dtype, what)
        diff = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max()) if got.size else 0.0
        print(f"  {what}: max |daemon - eager| = {diff:.3g} (bound {tol:g})")
        if tol == 0:
            self.assertTrue(np.array_equal(got, want), f"{what}: not bit-identical, max diff {diff:g}")
        else:
            self.assertLessEqual(diff, tol, what)
        return diff

    def check_topk(self, values, indices, ref_logits, k, what, tol):
        """Daemon top-k (values, indices over the last dim) against reference
        logits: the values equal the reference top-k values, and the
        reference logits at the daemon's indices are those values (robust
        to near-ties reordering within tol)."""
        ref = torch.from_numpy(ref_logits)
        rv, ri = torch.topk(ref, k, dim=-1)
        self.check(values, rv.numpy(), what + " top-k values", tol)
        self.assertEqual(indices.dtype, np.int64, what)
        at = np.take_along_axis(ref_logits, indices, axis=-1)
        d = float(np.abs(at - rv.numpy()).max())
        print(f"  {what}: top-{k} indices agree (reference logits at daemon's indices within {d:.3g})")
        self.assertLessEqual(d, max(tol, 1e-6), what + " top-k indices")
        if tol == 0:
            np.testing.assert_array_equal(indices, ri.numpy(), what)


# ---- the six workflows ----------------------------------------------------------


class Workflows(TraceCase):

    def test_1_residual_stream_every_layer(self):
        """resid_pre and resid_post of every layer for a batch of 2 prompts
        (one invoke of 2 rows, whole-batch reads), plus last-token logits and
        top-k, against eager hooks."""
        for name in NAMES:
            fam = family(name)
            ids = manifest(name)["inputs"]["input_ids"]
            nl = n_layers(name)
            with self.subTest(model=name):
                print(f"\n{name}:")
                g = Graph()
                sites = []
                for i in range(nl):
                    for s in ("resid_pre", "resid_post"):
                        site = f"layers.{i}.{s}"
                        sites.append(site)
                        g.save(g.read(site), site)
                results, t = self.run_trace(name, [g.trace("resid", invokes(ids))],
                                            top_k=5, logits=LAST)
                want_logits, cap = pyref.run_sites(self.eager[name], fam, ids, capture=sites)
                self.assertEqual(len(results), 1)
                r = results[0]
                self.assertEqual((r.trace, r.name, r.batch, r.seq_len), (0, "resid", 2, 7))
                self.assertEqual([s for s in r.saved if not s.endswith("/logits")], sites)
                for site in sites:
                    self.check(t[site], cap[site], f"{name} {site}", TOL[fam])
                # The residual stream is one stream: layer i's output is
                # layer i+1's input, bit for bit, inside the daemon.
                for i in range(nl - 1):
                    np.testing.assert_array_equal(t[f"layers.{i}.resid_post"],
                                                  t[f"layers.{i + 1}.resid_pre"])
                self.check(t["resid/logits"], want_logits[:, -1, :], f"{name} last-token logits",
                           TOL[fam])
                self.assertEqual(len(r.rows), 2)
                for b, row in enumerate(r.rows):
                    self.assertEqual(row.position, 6)
                    got_ids = [s.token_id for s in row.top]
                    self.assertEqual(len(got_ids), 5)
                    ref_sorted = np.argsort(-want_logits[b, -1], kind="stable")[:5]
                    np.testing.assert_allclose([s.logit for s in row.top],
                                               want_logits[b, -1, ref_sorted], atol=1e-5)
                    np.testing.assert_allclose(want_logits[b, -1, got_ids],
                                               want_logits[b, -1, ref_sorted], atol=1e-5)
                self.assertGreater(r.timing.compute_ms, 0)
                self.assertGreaterEqual(r.timing.total_ms, r.timing.compute_ms)
                self.assertTrue(r.backend_key)

    def _patch_setup(self, name):
        ids = manifest(name)["inputs"]["input_ids"]
        clean = list(ids[0])
        pos = 3
        corrupt = list(clean)
        corrupt[pos] = (clean[pos] + 500) % 1000 or 1
        eager = self.eager[name]
        fam = family(name)
        lc, _ = pyref.run_sites(eager, fam, [clean])
        lx, _ = pyref.run_sites(eager, fam, [corrupt])
        correct = int(np.argmax(lc[0, -1]))
        order = np.argsort(-lx[0, -1], kind="stable")
        incorrect = int(order[0] if order[0] != correct else order[1])
        return clean, corrupt, pos, correct, incorrect

    def test_2a_activation_patching_two_invokes_one_session(self):
        """One session; each trace runs [clean] and [corrupted] as two invokes
        in one forward and writes clean's resid_post at one position into the
        corrupted row (read invoke 0, write invoke 1 with a position range).
        Logit difference per (layer, position) against eager hooks patching
        the same batch."""
        for name in NAMES:
            fam = family(name)
            nl = n_layers(name)
            clean, corrupt, pos, correct, incorrect = self._patch_setup(name)
            last = len(clean) - 1
            cases = [(L, p) for L in range(nl) for p in (pos, last)]
            with self.subTest(model=name):
                print(f"\n{name}: clean {clean} corrupted {corrupt}; "
                      f"logit diff = logit[{correct}] - logit[{incorrect}] at the last token")
                traces = [Graph().trace("baseline", invokes([clean], [corrupt]))]
                for L, p in cases:
                    g = Graph()
                    site = f"layers.{L}.resid_post"
                    r = g.read(site, invoke=0)
                    v = g.index(r, slice(None), slice(p, p + 1), Ellipsis)
                    g.write(site, v, invoke=1, ranges=[(1, p, p + 1)])
                    traces.append(g.trace(f"patch.L{L}.p{p}", invokes([clean], [corrupt])))
                results, t = self.run_trace(name, traces, logits=LAST)
                self.assertEqual([r.name for r in results], [tr.name for tr in traces])
                self.assertEqual([r.trace for r in results], list(range(len(traces))))
                base_ref, _ = pyref.run_sites(self.eager[name], fam, [clean, corrupt])
                self.check(t["baseline/logits"], base_ref[:, -1], f"{name} baseline", TOL[fam])
                print(f"  clean {logit_diff(base_ref[0, -1], correct, incorrect):+.6f}  "
                      f"corrupted {logit_diff(base_ref[1, -1], correct, incorrect):+.6f}")
                for L, p in cases:
                    def patch(x, p=p):
                        x = x.clone()
                        x[1, p] = x[0, p]
                        return x
                    want, _ = pyref.run_sites(self.eager[name], fam, [clean, corrupt],
                                              edits=[(f"layers.{L}.resid_post", patch)])
                    got = t[f"patch.L{L}.p{p}/logits"]
                    gd = logit_diff(got[1], correct, incorrect)
                    wd = logit_diff(want[1, -1], correct, incorrect)
                    print(f"  layer {L} pos {p}: logit diff daemon {gd:+.6f} eager {wd:+.6f} "
                          f"|d| {abs(gd - wd):.3g}")
                    self.check(got, want[:, -1], f"{name} patched L{L} p{p} logits", TOL[fam])
                    self.assertLessEqual(abs(gd - wd), 2 * TOL[fam])
                # Patching the last layer at the last token restores the clean
                # prediction (the row then computes clean's logits; another
                # row of the same GEMM, so within rounding, not bit for bit).
                self.check(t[f"patch.L{nl - 1}.p{last}/logits"][1],
                           t[f"patch.L{nl - 1}.p{last}/logits"][0],
                           f"{name} last layer+token patch == clean row", 1e-5)

    def test_2b_activation_patching_refnode_session(self):
        """One session: trace 0 runs the clean prompt and saves every layer's
        resid_post; traces 1.. run the corrupted prompt and write the clean
        value at one position, read through RefNode (no round trip)."""
        for name in NAMES:
            fam = family(name)
            nl = n_layers(name)
            clean, corrupt, pos, correct, incorrect = self._patch_setup(name)
            last = len(clean) - 1
            cases = [(L, p) for L in range(nl) for p in (pos, last)]
            with self.subTest(model=name):
                print(f"\n{name}:")
                g = Graph()
                for L in range(nl):
                    g.save(g.read(f"layers.{L}.resid_post"), f"clean.resid.{L}")
                traces = [g.trace("clean", invokes([clean])),
                          Graph().trace("corrupted", invokes([corrupt]))]
                for L, p in cases:
                    g = Graph()
                    c = g.ref(f"clean.resid.{L}")
                    v = g.index(c, slice(None), slice(p, p + 1))
                    g.write(f"layers.{L}.resid_post", v, ranges=[(1, p, p + 1)])
                    traces.append(g.trace(f"patched.L{L}.p{p}", invokes([corrupt])))
                results, t = self.run_trace(name, traces, logits=LAST)
                self.assertEqual(len(results), len(traces))
                self.assertEqual(list(results[0].saved)[:nl], [f"clean.resid.{L}" for L in range(nl)])
                sites = [f"layers.{L}.resid_post" for L in range(nl)]
                lc, cap = pyref.run_sites(self.eager[name], fam, [clean], capture=sites)
                lx, _ = pyref.run_sites(self.eager[name], fam, [corrupt])
                for L in range(nl):
                    self.check(t[f"clean.resid.{L}"], cap[sites[L]], f"{name} clean resid {L}", TOL[fam])
                self.check(t["clean/logits"], lc[:, -1], f"{name} clean logits", TOL[fam])
                self.check(t["corrupted/logits"], lx[:, -1], f"{name} corrupted logits", TOL[fam])
                for L, p in cases:
                    cv = torch.from_numpy(cap[sites[L]])

                    def patch(x, p=p, cv=cv):
                        x = x.clone()
                        x[:, p] = cv[:, p]
                        return x
                    want, _ = pyref.run_sites(self.eager[name], fam, [corrupt],
                                              edits=[(sites[L], patch)])
                    got = t[f"patched.L{L}.p{p}/logits"]
                    gd = logit_diff(got[0], correct, incorrect)
                    wd = logit_diff(want[0, -1], correct, incorrect)
                    print(f"  layer {L} pos {p}: logit diff daemon {gd:+.6f} eager {wd:+.6f} "
                          f"|d| {abs(gd - wd):.3g}")
                    self.check(got, want[:, -1], f"{name} patched L{L} p{p} logits", TOL[fam])
                # The last layer at the last token: the clean prediction.
                self.check(t[f"patched.L{nl - 1}.p{last}/logits"], t["clean/logits"],
                           f"{name} last layer+token patch == clean", 0.0)

    def test_3a_head_ablation_zeros_like(self):
        """Zero head 1 of layers.0.self_attn.z: zeros_like of the head's
        slice written back with a last-dim range."""
        for name in NAMES:
            fam = family(name)
            ids = manifest(name)["inputs"]["input_ids"]
            hd, head = 16, 1
            with self.subTest(model=name):
                print(f"\n{name}:")
                g = Graph()
                site = "layers.0.self_attn.z"
                z = g.read(site)
                sl = g.index(z, Ellipsis, slice(head * hd, (head + 1) * hd))
                g.write(site, g.call("zeros_like", sl), ranges=[(-1, head * hd, (head + 1) * hd)])
                g.save(g.read("layers.0.attn_out"), "attn_out")
                g.save(z, "z_before")
                _, t = self.run_trace(name, [g.trace("ablate", invokes(ids))], logits=ALL)

                def zero(x):
                    x = x.clone()
                    x[..., head * hd:(head + 1) * hd] = 0
                    return x
                want, cap = pyref.run_sites(self.eager[name], fam, ids, edits=[(site, zero)],
                                            capture=["layers.0.attn_out"])
                _, pristine = pyref.run_sites(self.eager[name], fam, ids, capture=[site])
                self.check(t["ablate/logits"], want, f"{name} head-ablated logits", TOL[fam])
                self.check(t["attn_out"], cap["layers.0.attn_out"], f"{name} attn_out after ablation",
                           TOL[fam])
                # A read takes the value before the site's writes.
                self.check(t["z_before"], pristine[site], f"{name} z read before the write", TOL[fam])
                self.assertGreater(float(np.abs(want - pyref.run_sites(self.eager[name], fam, ids)[0]).max()),
                                   1e-4)

    def test_3b_head_ablation_scalar_const(self):
        """Zero head 2 of layers.1.self_attn.z with a 0-d constant broadcast
        over the written range."""
        for name in NAMES:
            fam = family(name)
            ids = manifest(name)["inputs"]["input_ids"]
            hd, head = 16, 2
            with self.subTest(model=name):
                print(f"\n{name}:")
                g = Graph()
                g.write("layers.1.self_attn.z", g.scalar(0.0),
                        ranges=[(-1, head * hd, (head + 1) * hd)])
                _, t = self.run_trace(name, [g.trace("ablate", invokes(ids))], logits=ALL)

                def zero(x):
                    x = x.clone()
                    x[..., head * hd:(head + 1) * hd] = 0
                    return x
                want, _ = pyref.run_sites(self.eager[name], fam, ids,
                                          edits=[("layers.1.self_attn.z", zero)])
                self.check(t["ablate/logits"], want, f"{name} head-ablated (const) logits", TOL[fam])

    def test_3c_mean_ablation_mlp_out(self):
        """layers.0.mlp_out replaced by its mean over positions (mean with
        dim=[1], keepdim): written as the [b, 1, d] mean (broadcast by the
        write), and as an explicitly broadcast [b, s, d] value."""
        for name in NAMES:
            fam = family(name)
            ids = manifest(name)["inputs"]["input_ids"]
            site = "layers.0.mlp_out"

            def mean_ablate(x):
                return x.mean(dim=1, keepdim=True).expand_as(x).clone()
            want, cap = pyref.run_sites(self.eager[name], fam, ids, edits=[(site, mean_ablate)],
                                        capture=["layers.1.resid_pre"])
            for form in ("broadcast by the write", "explicit broadcast"):
                with self.subTest(model=name, form=form):
                    print(f"\n{name} ({form}):")
                    g = Graph()
                    m = g.read(site)
                    mu = g.call("mean", m, dim=[1], keepdim=True)
                    g.save(mu, "mean")
                    if form == "explicit broadcast":
                        mu = g.call("add", g.call("zeros_like", m), mu)
                    g.write(site, mu)
                    g.save(g.read("layers.1.resid_pre"), "next_resid")
                    _, t = self.run_trace(name, [g.trace("mean_ablate", invokes(ids))], logits=ALL)
                    self.assertEqual(t["mean"].shape, (2, 1, 64))
                    self.check(t["mean_ablate/logits"], want, f"{name} mean-ablated logits", TOL[fam])
                    self.check(t["next_resid"], cap["layers.1.resid_pre"],
                               f"{name} resid after mean ablation", TOL[fam])

    def test_4_steering(self):
        """A vector (times 3.0) added to layers.L.resid_post at every
        position: read -> mul(const, scalar) -> add -> write."""
        rng = np.random.default_rng(5)
        for name in NAMES:
            fam = family(name)
            ids = manifest(name)["inputs"]["input_ids"]
            vec = rng.normal(size=64).astype(np.float32)
            for L in range(n_layers(name)):
                with self.subTest(model=name, layer=L):
                    print(f"\n{name} layer {L}:")
                    site = f"layers.{L}.resid_post"
                    g = Graph()
                    r = g.read(site)
                    s = g.call("add", r, g.call("mul", g.const(vec), 3.0))
                    g.write(site, s)
                    g.save(s, "steered")
                    _, t = self.run_trace(name, [g.trace("steer", invokes(ids))], logits=ALL)
                    v = torch.from_numpy(vec)
                    want, cap = pyref.run_sites(self.eager[name], fam, ids,
                                                edits=[(site, lambda x: x + v * 3.0)], capture=[site])
                    self.check(t["steer/logits"], want, f"{name} steered logits", TOL[fam])
                    self.check(t["steered"], cap[site], f"{name} steered resid", TOL[fam])
                    pristine = pyref.run_sites(self.eager[name], fam, ids)[0]
                    self.assertGreater(float(np.abs(want - pristine).max()), 1e-3)

    def test_5a_logit_lens_module_calls(self):
        """For each layer: fn "module" ln_final, then lm_head, on the layer's
        resid_post; topk / topk_indices (k 5) saved, and the lens logits.
        Reference: eager ln_f and lm_head on the hooked residuals. The last
        layer's lens is the model's own logits."""
        k = 5
        for name in NAMES:
            fam = family(name)
            ids = manifest(name)["inputs"]["input_ids"]
            nl = n_layers(name)
            with self.subTest(model=name):
                print(f"\n{name}:")
                g = Graph()
                for L in range(nl):
                    r = g.read(f"layers.{L}.resid_post")
                    lg = g.module("lm_head", g.module("ln_final", r))
                    g.save(lg, f"lens.{L}")
                    g.save(g.call("topk", lg, k=k, dim=-1), f"lens.{L}.topk")
                    g.save(g.call("topk_indices", lg, k=k, dim=-1), f"lens.{L}.topk_indices")
                _, t = self.run_trace(name, [g.trace("lens", invokes(ids))], logits=ALL)
                sites = [f"layers.{L}.resid_post" for L in range(nl)]
                logits, cap = pyref.run_sites(self.eager[name], fam, ids, capture=sites)
                ln = pyref.module(self.eager[name], fam, "ln_final")
                head = pyref.module(self.eager[name], fam, "lm_head")
                for L in range(nl):
                    with torch.no_grad():
                        ref = head(ln(torch.from_numpy(cap[sites[L]]))).numpy()
                    self.check(t[f"lens.{L}"], ref, f"{name} lens layer {L} logits", TOL[fam])
                    self.check_topk(t[f"lens.{L}.topk"], t[f"lens.{L}.topk_indices"], ref, k,
                                    f"{name} lens layer {L}", TOL[fam])
                self.check(t[f"lens.{nl - 1}"], t["lens/logits"], f"{name} last lens == model logits",
                           TOL[fam])

    def test_5b_logit_lens_unembedding_const(self):
        """The issue's form: ln_final as a module call, then a matmul with
        the unembedding (lm_head.weight transposed) sent as a constant."""
        k = 5
        for name in NAMES:
            fam = family(name)
            ids = manifest(name)["inputs"]["input_ids"]
            nl = n_layers(name)
            head = pyref.module(self.eager[name], fam, "lm_head")
            w_u = head.weight.detach().numpy().T.copy()  # [d_model, vocab]
            with self.subTest(model=name):
                print(f"\n{name}:")
                g = Graph()
                wu = g.const(w_u)
                for L in range(nl):
                    n = g.module("ln_final", g.read(f"layers.{L}.resid_post"))
                    lg = g.call("matmul", n, wu)
                    g.save(g.call("topk", lg, k=k, dim=-1), f"lens.{L}.topk")
                    g.save(g.call("topk_indices", lg, k=k, dim=-1), f"lens.{L}.topk_indices")
                _, t = self.run_trace(name, [g.trace("lens", invokes(ids))])
                sites = [f"layers.{L}.resid_post" for L in range(nl)]
                _, cap = pyref.run_sites(self.eager[name], fam, ids, capture=sites)
                ln = pyref.module(self.eager[name], fam, "ln_final")
                for L in range(nl):
                    with torch.no_grad():
                        ref = head(ln(torch.from_numpy(cap[sites[L]]))).numpy()
                    self.check_topk(t[f"lens.{L}.topk"], t[f"lens.{L}.topk_indices"], ref, k,
                                    f"{name} lens (const W_U) layer {L}", OP_TOL)

    def test_6_attention_pattern(self):
        """layers.L.self_attn.pattern (the softmax node inside the attention
        module) for every layer: sums to 1 over keys, is causal, and equals
        the eager attention weights; its raw node spelling gives the same
        tensor; a sum call over keys in the daemon gives ones."""
        for name in NAMES:
            fam = family(name)
            ids = manifest(name)["inputs"]["input_ids"]
            nl = n_layers(name)
            with self.subTest(model=name):
                print(f"\n{name}:")
                g = Graph()
                for L in range(nl):
                    pat = g.read(f"layers.{L}.self_attn.pattern")
                    g.save(pat, f"pattern.{L}")
                    g.save(g.call("sum", pat, dim=[-1]), f"pattern.{L}.rowsum")
                g.save(g.read("layers.0.self_attn:aten::softmax#0"), "pattern.0.raw")
                _, t = self.run_trace(name, [g.trace("pattern", invokes(ids))])
                sites = [f"layers.{L}.self_attn.pattern" for L in range(nl)]
                _, cap = pyref.run_sites(self.eager[name], fam, ids, capture=sites)
                for L in range(nl):
                    p = t[f"pattern.{L}"]
                    self.assertEqual(p.shape, (2, 4, 7, 7))
                    s = p.astype(np.float64).sum(-1)
                    print(f"  layer {L}: max |sum over keys - 1| = {np.abs(s - 1).max():.3g}")
                    np.testing.assert_allclose(s, 1.0, atol=1e-5)
                    np.testing.assert_allclose(t[f"pattern.{L}.rowsum"], 1.0, atol=1e-5)
                    self.assertEqual(float(np.abs(np.triu(p, 1)).max()), 0.0, "not causal")
                    self.check(p, cap[sites[L]], f"{name} pattern layer {L}", TOL[fam])
                np.testing.assert_array_equal(t["pattern.0.raw"], t["pattern.0"])


# ---- invokes, edit sets, result fields ----------------------------------------


class TraceSemantics(TraceCase):

    def test_invokes_of_different_lengths_padding(self):
        """Two invokes of 7 and 4 tokens, right-padded into one forward:
        per-invoke reads see their own rows ([1, 7, d]), the whole-batch read
        both; real positions equal each prompt run alone (the batch
        composition changes GEMM blocking: ~2e-6), and a per-invoke write
        changes only that invoke's rows."""
        for name in NAMES:
            fam = family(name)
            ids = manifest(name)["inputs"]["input_ids"]
            a, b = list(ids[0]), list(ids[1][:4])
            with self.subTest(model=name):
                print(f"\n{name}:")
                g = Graph()
                site = "layers.1.resid_post"
                whole = g.read(site)
                r0 = g.read(site, invoke=0)
                r1 = g.read(site, invoke=1)
                g.save(whole, "whole")
                g.save(r0, "inv0")
                g.save(r1, "inv1")
                results, t = self.run_trace(name, [g.trace("pad", invokes([a], [b]))],
                                            padding=RIGHT, logits=LAST)
                self.assertEqual((results[0].batch, results[0].seq_len), (2, 7))
                self.assertEqual(t["whole"].shape, (2, 7, 64))
                self.assertEqual(t["inv0"].shape, (1, 7, 64))
                self.assertEqual(t["inv1"].shape, (1, 7, 64))
                np.testing.assert_array_equal(t["inv0"], t["whole"][0:1])
                np.testing.assert_array_equal(t["inv1"], t["whole"][1:2])
                la, ca = pyref.run_sites(self.eager[name], fam, [a], capture=[site])
                lb, cb = pyref.run_sites(self.eager[name], fam, [b], capture=[site])
                self.check(t["inv0"], ca[site], f"{name} invoke 0 (7 tokens)", 1e-5)
                self.check(t["inv1"][:, :4], cb[site], f"{name} invoke 1 (4 real tokens)", 1e-5)
                got = t["pad/logits"]
                self.check(got[0:1], la[:, -1], f"{name} invoke 0 last-token logits", 1e-5)
                self.check(got[1:2], lb[:, -1], f"{name} invoke 1 last-token logits", 1e-5)
                self.assertEqual([r.position for r in results[0].rows], [6, 3])

                # A write scoped to invoke 1 leaves invoke 0's rows alone.
                g = Graph()
                g.write("layers.0.resid_post", g.scalar(0.0), invoke=1)
                g.save(g.read("layers.0.resid_post"), "before")
                g.save(g.read("layers.1.resid_pre"), "after")
                _, t2 = self.run_trace(name, [g.trace("w1", invokes([a], [b]))], padding=RIGHT)
                np.testing.assert_array_equal(t2["after"][0], t2["before"][0])
                self.assertEqual(float(np.abs(t2["after"][1]).max()), 0.0)
                self.assertGreater(float(np.abs(t2["before"][1]).max()), 0.0)

    def test_edit_set_applies_first(self):
        """With an edit set, a read sees the value after its edits, and the
        trace's write applies on top."""
        edits = edits_pb2_grpc.EditsStub(self.d.channel)
        rng = np.random.default_rng(9)
        for name in NAMES:
            fam = family(name)
            ids = manifest(name)["inputs"]["input_ids"]
            vec = rng.normal(size=64).astype(np.float32)
            es = edits.Apply(edits_pb2.ApplyEditsRequest(model=name, edits=[
                edits_pb2.Edit(site="layers.0.resid_post", op=edits_pb2.EDIT_OP_ADD, tensor=tensor_msg(vec))]),
                timeout=60).edit_set
            try:
                with self.subTest(model=name):
                    print(f"\n{name}:")
                    g = Graph()
                    r = g.read("layers.0.resid_post")
                    g.save(r, "edited")
                    g.write("layers.0.resid_post", g.call("mul", r, 0.5))
                    _, t = self.run_trace(name, [g.trace("es", invokes(ids))], edit_set=es.id,
                                          logits=ALL)
                    v = torch.from_numpy(vec)
                    want, cap = pyref.run_sites(
                        self.eager[name], fam, ids,
                        edits=[("layers.0.resid_post", lambda x: x + v)],
                        capture=["layers.0.resid_post"])
                    self.check(t["edited"], cap["layers.0.resid_post"], f"{name} read after edit set",
                               TOL[fam])
                    want2, _ = pyref.run_sites(
                        self.eager[name], fam, ids,
                        edits=[("layers.0.resid_post", lambda x: (x + v) * 0.5)])
                    self.check(t["es/logits"], want2, f"{name} edit set then trace write", TOL[fam])
            finally:
                edits.Drop(edits_pb2.DropEditSetRequest(id=es.id), timeout=10)

    def test_result_fields_and_backend_cache(self):
        """Same structure with other values hits the backend cache with the
        same key; other sites give another key. An empty graph is a plain
        forward. Timing fields are filled in."""
        name = "llama-script"
        ids = manifest(name)["inputs"]["input_ids"]

        def steer(site, vec):
            g = Graph()
            g.write(site, g.call("add", g.read(site), g.const(vec)))
            return g.trace("s", invokes(ids))
        r1, _ = self.run_trace(name, [steer("layers.1.mlp_out", np.ones(64, np.float32))])
        r2, _ = self.run_trace(name, [steer("layers.1.mlp_out", np.full(64, 2.0, np.float32))])
        r3, _ = self.run_trace(name, [steer("layers.0.attn_out", np.ones(64, np.float32))])
        print(f"\nkeys {r1[0].backend_key} hit={r1[0].cache_hit} / {r2[0].backend_key} "
              f"hit={r2[0].cache_hit} / {r3[0].backend_key}")
        self.assertTrue(r2[0].cache_hit)
        self.assertEqual(r1[0].backend_key, r2[0].backend_key)
        self.assertNotEqual(r1[0].backend_key, r3[0].backend_key)
        for r in (r1[0], r2[0], r3[0]):
            self.assertGreaterEqual(r.timing.queue_ms, 0)
            self.assertGreater(r.timing.compute_ms, 0)
            self.assertGreaterEqual(r.timing.total_ms, r.timing.compute_ms)
        res, t = self.run_trace(name, [Graph().trace("empty", invokes(ids))], logits=ALL, top_k=3)
        self.check(t["empty/logits"], pyref.run_sites(self.eager[name], "llama", ids)[0],
                   "empty graph == pristine", 0.0)
        self.assertEqual(len(res[0].rows), 2)
        self.assertEqual([n for n in res[0].saved if n != "empty/logits"], [])


# ---- bad input --------------------------------------------------------------------


class BadInput(TraceCase):
    """Every class of bad input in issue 5: validation failures are
    INVALID_ARGUMENT naming the node id and the reason; a too-large request
    is RESOURCE_EXHAUSTED naming the limit; a run-time failure inside a call
    is INVALID_ARGUMENT naming the node, and the daemon and model stay
    healthy."""

    IDS = [[5, 6, 7, 8]]
    # Small limits, so that "too large" is cheap to reach: the saves and
    # logits of one request, nodes per trace, traces per request.
    DAEMON_ARGS = ("--max-response-bytes", "1048576", "--max-trace-nodes", "64", "--max-traces", "4")

    def expect(self, traces, code, *needles, node=None, model="gpt2-script", **kw):
        with self.assertRaises(grpc.RpcError) as cm:
            trace(self.d.inference, model, traces, **kw)
        det = cm.exception.details() or ""
        print(f"  {cm.exception.code().name}: {det}")
        self.assertEqual(cm.exception.code(), code, det)
        for n in needles:
            self.assertIn(n.lower(), det.lower())
        if node is not None:
            ids = node if isinstance(node, (list, tuple)) else [node]
            self.assertTrue(any(re.search(r"(?<![0-9])%d(?![0-9])" % i, det) for i in ids),
                            f"the message does not name node {ids}: {det}")
            self.assertIn("node", det.lower())
        return det

    def healthy(self, model="gpt2-script"):
        g = Graph()
        g.save(g.read("layers.0.resid_post"), "x")
        res, t = trace(self.d.inference, model, [g.trace("ok", invokes(self.IDS))])
        self.assertEqual(t["x"].shape, (1, 4, 64))

    def one(self, build, inv=None):
        g = Graph()
        build(g)
        return [g.trace("bad", inv or invokes(self.IDS))]

    def test_validation_names_the_node(self):
        E = grpc.StatusCode.INVALID_ARGUMENT
        cases = [
            ("unknown site", lambda g: g.save(g.read("layers.0.no_such_site", nid=4101), "x"),
             ["no_such_site"], 4101),
            ("layer out of range", lambda g: g.save(g.read("layers.9.resid_post", nid=4102), "x"),
             ["layers.9"], 4102),
            ("unknown function", lambda g: g.save(g.call("frobnicate", g.read("layers.0.resid_post"),
                                                         nid=4103), "x"), ["frobnicate"], 4103),
            ("missing argument", lambda g: g.save(g.call("softmax", g.read("layers.0.resid_post"),
                                                         nid=4104), "x"), ["dim"], 4104),
            ("wrong argument kind", lambda g: g.save(g.call("transpose", g.read("layers.0.resid_post"),
                                                            0.5, 1.5, nid=4105), "x"), [], 4105),
            ("too many arguments", lambda g: g.save(g.call("neg", g.read("layers.0.resid_post"),
                                                           g.read("layers.0.resid_pre"), nid=4106),
                                                    "x"), [], 4106),
            ("unknown node id", lambda g: g.save(V(9999), "x", nid=4107), [], [4107, 9999]),
            ("unknown module", lambda g: g.save(g.call("module", Mod("no.such.module"),
                                                       g.read("layers.0.resid_post"), nid=4108), "x"),
             ["no.such.module"], 4108),
            ("invoke out of range", lambda g: g.save(g.read("layers.0.resid_post", invoke=3, nid=4109),
                                                     "x"), ["invoke"], 4109),
            ("ref to a name no earlier trace saved", lambda g: g.save(g.ref("nowhere", nid=4110), "x"),
             ["nowhere"], 4110),
            ("write range dim out of range", lambda g: g.write(
                "layers.0.resid_post", g.scalar(0.0), ranges=[(5, 0, 1)], nid=4111), [], 4111),
        ]
        for what, build, needles, node in cases:
            with self.subTest(case=what):
                print(f"\n{what}:")
                self.expect(self.one(build), E, *needles, node=node)

        with self.subTest(case="cycle"):
            print("\ncycle:")
            g = Graph()
            g.call("add", V(4202), 1.0, nid=4201)
            g.call("add", V(4201), 1.0, nid=4202)
            g.save(V(4202), "x", nid=4203)
            det = self.expect([g.trace("cyc", invokes(self.IDS))], E, node=[4201, 4202])
            self.assertTrue(re.search("cycl|acyclic|loop", det, re.I), det)
        with self.subTest(case="duplicate node id"):
            print("\nduplicate id:")
            g = Graph()
            g.read("layers.0.resid_post", nid=4301)
            g.read("layers.1.resid_post", nid=4301)
            self.expect([g.trace("dup", invokes(self.IDS))], E, node=4301)
        with self.subTest(case="node with no op"):
            print("\nno op:")
            t = P.Trace(name="noop", invokes=invokes(self.IDS), nodes=[P.Node(id=4401)])
            self.expect([t], E, node=4401)
        with self.subTest(case="node with two ops"):
            print("\ntwo ops:")
            t = P.Trace(name="two", invokes=invokes(self.IDS), nodes=[P.Node(
                id=4501, read=P.ReadNode(site="layers.0.resid_post"),
                save=P.SaveNode(value=4501, name="x"))])
            self.expect([t], E, node=4501)
        with self.subTest(case="write depends on a later read"):
            print("\nwrite from a later site:")
            g = Graph()
            late = g.read("layers.1.resid_post", nid=4601)
            g.write("layers.0.resid_post", g.call("mul", late, 2.0, nid=4602), nid=4603)
            det = self.expect([g.trace("late", invokes(self.IDS))], E, "layers.1.resid_post", node=4601)
            print("  (names the read that comes too late: node 4601)")
        with self.subTest(case="duplicate save name in a session"):
            print("\nduplicate save name:")
            g1 = Graph()
            g1.save(g1.read("layers.0.resid_post"), "same")
            g2 = Graph(first_id=4700)
            g2.save(g2.read("layers.1.resid_post"), "same", nid=4701)
            self.expect([g1.trace("a", invokes(self.IDS)), g2.trace("b", invokes(self.IDS))], E,
                        "same", node=4701)
        with self.subTest(case="ref to a later trace's save"):
            print("\nref forward in the session:")
            g1 = Graph(first_id=4800)
            g1.save(g1.ref("later", nid=4801), "y")
            g2 = Graph(first_id=4900)
            g2.save(g2.read("layers.0.resid_post"), "later")
            self.expect([g1.trace("a", invokes(self.IDS)), g2.trace("b", invokes(self.IDS))], E,
                        "later", node=4801)
        with self.subTest(case="structure errors without a node"):
            print("\nno traces / no invokes / unequal rows without padding / bad token:")
            self.expect([], E)
            self.expect([P.Trace(name="x", nodes=[])], E)
            self.expect(self.one(lambda g: None, invokes([[1, 2, 3], [1, 2]])), E, padding=NONE)
            self.expect(self.one(lambda g: None, invokes([[1, 2, 5000]])), E, "5000")
        with self.subTest(case="unknown model"):
            with self.assertRaises(grpc.RpcError) as cm:
                trace(self.d.inference, "no-such-model", self.one(lambda g: None))
            self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.healthy()

    def test_too_large_names_the_limit(self):
        R = grpc.StatusCode.RESOURCE_EXHAUSTED
        with self.subTest(limit="max_batch"):
            print("\nbatch over the model's max_batch (16):")
            self.expect(self.one(lambda g: None, invokes(*[[[1, 2, 3]]] * 17)), R, "max_batch", "16")
        with self.subTest(limit="max_seq_len"):
            print("\nrow over the model's max_seq_len (64):")
            self.expect(self.one(lambda g: None, invokes([list(range(1, 66))])), R, "max_seq_len", "64")
        with self.subTest(limit="nodes"):
            print("\ntoo many nodes (--max-trace-nodes 64):")
            g = Graph()
            r = g.read("layers.0.resid_post")
            for _ in range(70):
                r = g.call("neg", r)
            g.save(r, "x")
            self.expect([g.trace("big", invokes(self.IDS))], R, "--max-trace-nodes", "64")
        with self.subTest(limit="traces"):
            print("\ntoo many traces in a session (--max-traces 4):")
            self.expect([Graph().trace(f"t{i}", invokes(self.IDS)) for i in range(5)], R,
                        "--max-traces", "4")
        with self.subTest(limit="saved bytes"):
            # The logits site of 8 x 64 tokens: 8*64*1000*4 B = 2 MB > 1 MiB.
            print("\nsaved bytes over the response limit (--max-response-bytes 1048576):")
            g = Graph()
            g.save(g.read("logits"), "big")
            self.expect([g.trace("big", invokes([list(range(1, 65))] * 8))], R,
                        "--max-response-bytes", "1048576")
        with self.subTest(limit="saved bytes, summed over saves and traces"):
            # 3 traces x 2 saves of 2 x 64 x 1000 x 4 B = 512 KB each: 3 MB in all.
            print("\nsaves that only together exceed the limit:")
            trs = []
            for k in range(3):
                g = Graph(first_id=6000 + 10 * k)
                lg = g.read("logits")
                g.save(lg, f"a{k}")
                g.save(g.call("mul", lg, 2.0), f"b{k}")
                trs.append(g.trace(f"t{k}", invokes([list(range(1, 65))] * 2)))
            # The message names the configured limit, not what is left of it.
            self.expect(trs, R, "--max-response-bytes", "1048576")
        with self.subTest(limit="logits"):
            print("\nLOGITS_ALL over the response limit:")
            self.expect([Graph().trace("l", invokes([list(range(1, 65))] * 8))], R,
                        "--max-response-bytes", logits=ALL)
        self.healthy()

    def test_runtime_call_failure_names_the_node(self):
        E = grpc.StatusCode.INVALID_ARGUMENT
        with self.subTest(case="matmul shape mismatch"):
            print("\nmatmul [1,4,64] x [32,10]:")
            g = Graph()
            w = g.const(np.ones((32, 10), np.float32))
            g.save(g.call("matmul", g.read("layers.0.resid_post"), w, nid=5101), "x")
            self.expect([g.trace("rt", invokes(self.IDS))], E, node=5101)
        self.healthy()
        with self.subTest(case="add of unbroadcastable shapes"):
            print("\nadd [1,4,64] + [63]:")
            g = Graph()
            g.save(g.call("add", g.read("layers.1.resid_post"), g.const(np.ones(63, np.float32)),
                          nid=5201), "x")
            self.expect([g.trace("rt", invokes(self.IDS))], E, node=5201)
        self.healthy()
        with self.subTest(case="write of a wrongly shaped value"):
            print("\nwrite [63] into [1,4,64]:")
            g = Graph()
            g.write("layers.0.resid_post", g.const(np.ones(63, np.float32)), nid=5301)
            self.expect([g.trace("rt", invokes(self.IDS))], E, node=5301)
        self.healthy()
        with self.subTest(case="reshape to a wrong size, second trace of a session"):
            print("\nreshape 256 -> [3, 5] in trace 1 of 2:")
            g1 = Graph()
            g1.save(g1.read("layers.0.resid_post"), "first")
            g2 = Graph(first_id=5400)
            g2.save(g2.call("reshape", g2.read("layers.0.resid_post"), [3, 5], nid=5401), "x")
            self.expect([g1.trace("ok", invokes(self.IDS)), g2.trace("rt", invokes(self.IDS))], E,
                        node=5401)
        self.healthy()
        # The model computes what it did before the failures.
        for name in ("gpt2-script", "llama-trace"):
            res, t = trace(self.d.inference, name, [Graph().trace("p", invokes(self.IDS))], logits=ALL)
            want = pyref.run_sites(self.eager[name], family(name), self.IDS)[0]
            self.check(t["p/logits"], want, f"{name} after the failures", TOL[family(name)])


# ---- the CLI ------------------------------------------------------------------------


NNEDITCTL = os.environ.get("NNEDITCTL") or os.path.join(
    os.path.dirname(os.environ.get("NNEDITD", "")), "nneditctl")
CTL_TIMEOUT = 120  # seconds per nneditctl run; the grpcio path allows 60 per request


def ctl_trace_missing():
    """Why nneditctl cannot run `trace -f` (a skip message), or None."""
    if not os.path.exists(NNEDITCTL):
        return f"{NNEDITCTL} does not exist"
    p = subprocess.run([NNEDITCTL, "trace", "--help"], capture_output=True, text=True, timeout=30)
    if p.returncode != 0 or "-f TRACE.json" not in p.stdout + p.stderr:
        return f"{NNEDITCTL} has no 'trace' command yet (exit {p.returncode})"
    return None


# ---- a TraceRequest as the JSON file of `nneditctl trace -f` (client/TRACE-JSON.md)
#
# Every field is converted or the conversion raises: a request the file form
# cannot express must fail the test, not silently run a different graph.

PADDING_JSON = {P.PADDING_UNSPECIFIED: "none", P.PADDING_LEFT: "left", P.PADDING_RIGHT: "right"}
LOGITS_JSON = {P.LOGITS_MODE_UNSPECIFIED: "none", P.LOGITS_MODE_LAST: "last", P.LOGITS_MODE_ALL: "all"}
NODE_OPS = ("read", "write", "call", "constant", "save", "ref")


def arg_json(a):
    """An Arg in its object form ({"node": 3}, {"scalar": 2.0}, ...): the bare
    forms (3, 2.0) depend on how JSON spells a number, the object forms say
    the kind."""
    kind = a.WhichOneof("value")
    if kind is None:
        raise ValueError(f"an argument with no value: {a}")
    v = getattr(a, kind)
    j = {"node": lambda: {"node": v},
         "scalar": lambda: {"scalar": v},
         "integer": lambda: {"int": v},
         "ints": lambda: {"ints": list(v.values)},
         "boolean": lambda: {"bool": v},
         "dtype": lambda: {"dtype": tensor_pb2.DType.Name(v).lower().removeprefix("dtype_")},
         "module": lambda: {"module": v}}[kind]()
    if a.name:
        j["name"] = a.name
    return j


def call_args_json(args):
    """(args, kwargs): keyword arguments after the last positional one go to
    `kwargs` (the form a user writes); any other keyword argument stays in
    `args` with its "name", so that the positional order is kept."""
    args = list(args)
    tail = len(args)
    while tail > 0 and args[tail - 1].name:
        tail -= 1
    names = [a.name for a in args[tail:]]
    if len(set(names)) != len(names):  # a JSON object cannot hold a key twice
        tail = len(args)
    kwargs = {}
    for a in args[tail:]:
        j = arg_json(a)
        del j["name"]
        kwargs[a.name] = j
    return [arg_json(a) for a in args[:tail]], kwargs


def index_item_json(it):
    kind = it.WhichOneof("item")
    if kind == "index":
        return it.index
    if kind == "slice":
        # Python's spelling: ":", "3:4", "1:7:2".
        s = it.slice
        text = "%s:%s" % (s.start if s.HasField("start") else "",
                          s.stop if s.HasField("stop") else "")
        return text + (":%d" % s.step if s.step else "")
    if kind == "ellipsis" and it.ellipsis:
        return "..."
    if kind == "newaxis" and it.newaxis:
        return None
    raise ValueError(f"an index item the file form has no spelling for: {it}")


def node_json(n, tensor_dir, prefix):
    """One Node as a file node; a constant tensor goes to a .npy file in
    tensor_dir (exact, unlike decimal data), named relative to the file."""
    ops = [op for op in NODE_OPS if n.HasField(op)]
    if len(ops) != 1:
        raise ValueError(f"node {n.id} has {len(ops)} ops ({ops}); the file form takes exactly one")
    op = ops[0]
    m = getattr(n, op)
    if op in ("read", "write"):
        body = {"site": m.site}
        if m.HasField("invoke"):
            body["invoke"] = m.invoke  # else the file's default: every invoke
        if op == "write":
            body["value"] = m.value
            if m.ranges:
                body["ranges"] = [{"dim": r.dim, "start": r.start, "stop": r.stop}
                                  for r in m.ranges]
    elif op == "call":
        body = {"fn": m.fn}
        args, kwargs = call_args_json(m.args)
        if args:
            body["args"] = args
        if kwargs:
            body["kwargs"] = kwargs
        if m.index_items:
            body["index"] = [index_item_json(i) for i in m.index_items]
    elif op == "constant":
        if m.WhichOneof("value") == "scalar":
            body = {"scalar": m.scalar}
        else:
            t = m.tensor
            a = np.frombuffer(t.data, dtype=NP_DTYPES[t.dtype]).reshape(list(t.shape))
            fname = f"{prefix}.const{n.id}.npy"
            np.save(os.path.join(tensor_dir, fname), a)
            body = {"tensor": {"npy": fname}}
    elif op == "save":
        body = {"value": m.value, "name": m.name}
    else:
        body = {"name": m.name}
    return {"id": n.id, op: body}


def request_json(model, traces, tensor_dir, edit_set="", padding=0, top_k=0, logits=0):
    """The TraceRequest that nnedit_testlib.trace() sends, as a file for
    `nneditctl trace -f` in tensor_dir. Every top-level option is written
    out: the file's top_k defaults to 5 where the proto's is 0."""
    doc_traces = []
    for ti, tr in enumerate(traces):
        invs = []
        for inv in tr.invokes:
            j = {"tokens": [list(r.ids) for r in inv.input_ids]}
            if inv.attention_mask:
                j["mask"] = [list(m.values) for m in inv.attention_mask]
            invs.append(j)
        t = {"invokes": invs}
        if tr.name:
            t["name"] = tr.name
        if tr.nodes:
            t["nodes"] = [node_json(n, tensor_dir, f"t{ti}") for n in tr.nodes]
        doc_traces.append(t)
    doc = {"model": model, "traces": doc_traces, "padding": PADDING_JSON[padding],
           "top_k": top_k, "logits": LOGITS_JSON[logits]}
    if edit_set:
        doc["edit_set"] = edit_set
    return doc


class Cli(TraceCase):
    """Workflows through the CLI: steering from a JSON file
    (`nneditctl trace -f`, with the vector as a .npy constant, a session of
    two traces with a RefNode patch), the attention pattern with the simple
    form (`--save SITE -o npy`), and a bad node's message; checked against
    the same eager references as the grpcio path."""

    def setUp(self):
        why = ctl_trace_missing()
        if why:
            self.skipTest(why)
        self.tmp = tempfile.mkdtemp(prefix="nnedit-trace-cli-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def ctl(self, *args, rc=0):
        p = subprocess.run([NNEDITCTL, "--addr", self.d.addr] + list(args), capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(p.returncode, rc, "nneditctl %s\nstdout:\n%s\nstderr:\n%s"
                         % (" ".join(args), p.stdout, p.stderr))
        return p

    def test_steering_session_via_file(self):
        rng = np.random.default_rng(11)
        for name in ("gpt2-script", "llama-trace"):
            fam = family(name)
            ids = manifest(name)["inputs"]["input_ids"]
            vec = rng.normal(size=64).astype(np.float32)
            with self.subTest(model=name):
                print(f"\n{name}:")
                d = os.path.join(self.tmp, name)
                os.makedirs(d)
                np.save(os.path.join(d, "vec.npy"), vec)
                site = "layers.1.resid_post"
                doc = {"model": name, "traces": [
                    {"name": "steer", "invokes": [{"tokens": ids}], "nodes": [
                        {"id": 1, "read": {"site": site}},
                        {"id": 2, "constant": {"tensor": {"npy": os.path.join(d, "vec.npy")}}},
                        {"id": 3, "call": {"fn": "mul", "args": [{"node": 2}, 3.0]}},
                        {"id": 4, "call": {"fn": "add", "args": [{"node": 1}, {"node": 3}]}},
                        {"id": 5, "write": {"site": site, "value": 4}},
                        {"id": 6, "save": {"value": 4, "name": "steered"}},
                        {"id": 7, "save": {"value": 1, "name": "clean.post.1"}}]},
                    # A second trace of the session steers the same way, then
                    # puts the clean value (saved by trace 0, read through a
                    # ref) back at the last position: two writes to one site,
                    # applied in request order.
                    {"name": "unsteer_last", "invokes": [{"tokens": ids}], "nodes": [
                        {"id": 1, "read": {"site": site}},
                        {"id": 2, "constant": {"tensor": {"npy": os.path.join(d, "vec.npy")}}},
                        {"id": 3, "call": {"fn": "mul", "args": [{"node": 2}, 3.0]}},
                        {"id": 4, "call": {"fn": "add", "args": [{"node": 1}, {"node": 3}]}},
                        {"id": 5, "write": {"site": site, "value": 4}},
                        {"id": 6, "ref": {"name": "clean.post.1"}},
                        {"id": 7, "call": {"fn": "index", "args": [{"node": 6}], "index": [":", "6:7"]}},
                        {"id": 8, "write": {"site": site, "value": 7,
                                            "ranges": [{"dim": 1, "start": 6, "stop": 7}]}}]},
                ]}
                path = os.path.join(d, "trace.json")
                with open(path, "w") as f:
                    json.dump(doc, f)
                p = self.ctl("trace", "-f", path, "--logits", "all", "-o", "json", "--save-dir", d)
                out = json.loads(p.stdout)
                self.assertEqual([t["name"] for t in out["traces"]], ["steer", "unsteer_last"])
                files = {}
                for t in out["traces"]:
                    for sv in t["saved"] + ([t["logits"]] if t.get("logits") else []):
                        files[sv["name"]] = sv["file"]
                got = {k: np.load(v if os.path.isabs(v) else os.path.join(d, v)) for k, v in files.items()}
                v = torch.from_numpy(vec)
                want, cap = pyref.run_sites(self.eager[name], fam, ids,
                                            edits=[(site, lambda x: x + v * 3.0)], capture=[site])
                self.check(got["steer/logits"], want, f"{name} CLI steered logits", TOL[fam])
                self.check(got["steered"], cap[site], f"{name} CLI steered resid", TOL[fam])
                _, clean = pyref.run_sites(self.eager[name], fam, ids, capture=[site])
                cv = torch.from_numpy(clean[site])

                def steer_then_restore(x):
                    x = x + v * 3.0
                    x[:, 6] = cv[:, 6]
                    return x
                want2, _ = pyref.run_sites(self.eager[name], fam, ids, edits=[(site, steer_then_restore)])
                self.check(got["unsteer_last/logits"], want2, f"{name} CLI steer + RefNode restore",
                           TOL[fam])

    def test_pattern_simple_form_npy(self):
        for name in ("gpt2-trace", "llama-script"):
            fam = family(name)
            ids = manifest(name)["inputs"]["input_ids"]
            with self.subTest(model=name):
                print(f"\n{name}:")
                d = os.path.join(self.tmp, name)
                args = ["trace", name]
                for row in ids:
                    args += ["--tokens", ",".join(str(x) for x in row)]
                args += ["--save", "layers.0.self_attn.pattern", "--save", "layers.1.resid_post",
                         "-o", "npy", "--save-dir", d]
                self.ctl(*args)
                sites = ["layers.0.self_attn.pattern", "layers.1.resid_post"]
                _, cap = pyref.run_sites(self.eager[name], fam, ids, capture=sites)
                for s in sites:
                    a = np.load(os.path.join(d, s + ".npy"))
                    self.check(a, cap[s], f"{name} CLI {s}", TOL[fam])
                np.testing.assert_allclose(np.load(os.path.join(d, sites[0] + ".npy")).sum(-1), 1.0,
                                           atol=1e-5)

    def test_bad_node_message(self):
        path = os.path.join(self.tmp, "bad.json")
        with open(path, "w") as f:
            json.dump({"model": "gpt2-script", "traces": [{"invokes": [{"tokens": [[1, 2, 3]]}], "nodes": [
                {"id": 77, "read": {"site": "layers.0.no_such_site"}},
                {"id": 78, "save": {"value": 77, "name": "x"}}]}]}, f)
        p = self.ctl("trace", "-f", path, rc=1)
        print(f"\n{p.stderr.strip()}")
        self.assertIn("77", p.stderr)
        self.assertIn("no_such_site", p.stderr)


class WorkflowsViaCtl(Workflows):
    """Every workflow of class Workflows again, through the CLI: each
    request the test builds is written as the file of `nneditctl trace -f`
    (request_json), run by nneditctl against this class's daemon with
    `-o json --save-dir`, and its JSON and .npy files read back into the
    (TraceResults, tensors) that the grpcio path returns, so the same
    assertions against the same eager references run unchanged. A daemon of
    its own: its backend cache starts cold, as a CLI user's would."""

    @classmethod
    def setUpClass(cls):
        # Before the daemon starts: a skip costs nothing.
        why = ctl_trace_missing()
        if why:
            raise unittest.SkipTest(why)
        super().setUpClass()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="nnedit-trace-wf-ctl-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def run_trace(self, name, traces, edit_set="", padding=0, top_k=0, logits=0):
        d = tempfile.mkdtemp(dir=self.tmp)
        doc = request_json(name, traces, d, edit_set=edit_set, padding=padding, top_k=top_k,
                           logits=logits)
        path = os.path.join(d, "trace.json")
        with open(path, "w") as f:
            json.dump(doc, f, allow_nan=False)
        out_dir = os.path.join(d, "out")
        argv = [NNEDITCTL, "--addr", self.d.addr, "trace", "-f", path, "-o", "json",
                "--save-dir", out_dir]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=CTL_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail(f"{name}: nneditctl trace -f did not finish in {CTL_TIMEOUT} s: {' '.join(argv)}")
        if p.returncode != 0:
            self.fail(f"{name}: nneditctl trace -f exited {p.returncode}: {p.stderr.strip()}\n"
                      f"file: {json.dumps(doc)[:2000]}")
        out = json.loads(p.stdout)
        self.assertEqual(out["model"], name)
        self.assertEqual(len(out["traces"]), len(traces), "one JSON trace per requested trace")
        results, tensors = [], {}
        for t in out["traces"]:
            saves = t["saved"] + ([t["logits"]] if t["logits"] else [])
            for sv in saves:
                f = sv["file"] if os.path.isabs(sv["file"]) else os.path.join(out_dir, sv["file"])
                a = np.load(f)
                # The .npy and the JSON describe the same tensor.
                self.assertEqual((str(a.dtype), list(a.shape), a.nbytes),
                                 (sv["dtype"], sv["shape"], sv["nbytes"]), sv["name"])
                self.assertNotIn(sv["name"], tensors, "a tensor name came back twice")
                tensors[sv["name"]] = a
            self.assertEqual([r["row"] for r in t["rows"]], list(range(len(t["rows"]))))
            results.append(P.TraceResult(
                trace=t["trace"], name=t["name"] or "", batch=t["batch"], seq_len=t["seq_len"],
                rows=[P.RowTopK(position=r["position"],
                                top=[P.TokenScore(token_id=s["token_id"], logit=s["logit"],
                                                  prob=s["prob"]) for s in r["top"]])
                      for r in t["rows"]],
                timing=P.Timing(**t["timing"]), cache_hit=t["cache_hit"],
                backend_key=t["backend_key"], saved=[sv["name"] for sv in t["saved"]]))
        return results, tensors


if __name__ == "__main__":
    unittest.main()
