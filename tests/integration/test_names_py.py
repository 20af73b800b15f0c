"""Standard names end to end, with a Python grpcio client.

Family detection from the archive itself, the module tree with standard
names beside raw paths, user aliases and their warnings, every spelling of a
module or site resolving to the same thing, and saved values equal to the
Python reference captured with forward hooks on the eager model.
"""

import json
import os
import shutil
import tempfile
import time
import unittest

import grpc
import numpy as np

from nnedit_testlib import (Daemon, FIXTURES, forward, manifest, models_pb2,
                            ref_array)

FAMILIES = {"gpt2": "gpt2", "llama": "llama", "neox": "gpt_neox"}
# Standard module name -> raw path template, per fixture family.
LAYOUT = {
    "gpt2": {"embed_tokens": "transformer.wte", "embed_positions": "transformer.wpe",
             "layers.{i}": "transformer.h.{i}", "layers.{i}.self_attn": "transformer.h.{i}.attn",
             "layers.{i}.mlp": "transformer.h.{i}.mlp", "layers.{i}.ln_attn": "transformer.h.{i}.ln_1",
             "layers.{i}.ln_mlp": "transformer.h.{i}.ln_2", "ln_final": "transformer.ln_f",
             "lm_head": "lm_head"},
    "llama": {"embed_tokens": "model.embed_tokens", "layers.{i}": "model.layers.{i}",
              "layers.{i}.self_attn": "model.layers.{i}.self_attn",
              "layers.{i}.mlp": "model.layers.{i}.mlp",
              "layers.{i}.ln_attn": "model.layers.{i}.input_layernorm",
              "layers.{i}.ln_mlp": "model.layers.{i}.post_attention_layernorm",
              "ln_final": "model.norm", "lm_head": "lm_head"},
    "neox": {"embed_tokens": "gpt_neox.embed_in", "layers.{i}": "gpt_neox.layers.{i}",
             "layers.{i}.self_attn": "gpt_neox.layers.{i}.attention",
             "layers.{i}.mlp": "gpt_neox.layers.{i}.mlp",
             "layers.{i}.ln_attn": "gpt_neox.layers.{i}.input_layernorm",
             "layers.{i}.ln_mlp": "gpt_neox.layers.{i}.post_attention_layernorm",
             "ln_final": "gpt_neox.final_layer_norm", "lm_head": "embed_out"},
}
EXPORTS = ["script", "trace"]


def io_ref(name, path, kind, index):
    for e in manifest(name)["io"]:
        if e["path"] == path and e["kind"] == kind and e["index"] == index:
            return np.load(os.path.join(FIXTURES, name, "ref", e["file"]))
    raise KeyError((name, path, kind, index))


class Names(unittest.TestCase):
    """A repository of the fixtures whose model.json names no family (so the
    family must come from the archive), one with user renames, one with a
    rename that matches nothing."""

    @classmethod
    def setUpClass(cls):
        cls.repo = tempfile.mkdtemp(prefix="nnedit-names-")
        for fam in FAMILIES:
            for ex in EXPORTS:
                src = os.path.join(FIXTURES, f"{fam}-{ex}")
                dst = os.path.join(cls.repo, f"{fam}-{ex}")
                os.makedirs(dst)
                os.symlink(os.path.join(src, "model.pt"), os.path.join(dst, "model.pt"))
                with open(os.path.join(src, "model.json")) as f:
                    spec = json.load(f)
                spec.pop("family")  # detection from the archive alone
                if fam == "gpt2":
                    spec["names"] = {"transformer.h.{i}.attn": ["blk{i}.attention", "A{i}"],
                                     "lm_head": "unembed",
                                     "no.such.module": "ghost"}
                with open(os.path.join(dst, "model.json"), "w") as f:
                    json.dump(spec, f)
        # A family the daemon has no map for: the model still loads, the
        # family is detected, and a warning says so.
        dst = os.path.join(cls.repo, "custom")
        os.makedirs(dst)
        os.symlink(os.path.join(FIXTURES, "gpt2-script", "model.pt"),
                   os.path.join(dst, "model.pt"))
        with open(os.path.join(dst, "model.json"), "w") as f:
            json.dump({"family": "made-up-arch"}, f)
        args = ["--load", "custom"]
        for fam in FAMILIES:
            for ex in EXPORTS:
                args += ["--load", f"{fam}-{ex}"]
        cls.d = Daemon(*args, repo=cls.repo)
        names = [f"{f}-{e}" for f in FAMILIES for e in EXPORTS]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ms = {m.name: m for m in cls.d.models.List(models_pb2.ListModelsRequest()).models}
            if all(ms.get(n) and ms[n].state in (models_pb2.MODEL_STATE_LOADED, models_pb2.MODEL_STATE_FAILED) for n in names):
                break
            time.sleep(0.05)
        bad = {n: ms[n].error for n in names if ms[n].state != models_pb2.MODEL_STATE_LOADED}
        if bad:
            raise AssertionError("not loaded: %s\n%s" % (bad, cls.d.log_text()))

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop()
        shutil.rmtree(cls.repo, ignore_errors=True)
        assert code == 0, cls.d.log_text()

    def describe(self, name, module=""):
        return self.d.models.Describe(models_pb2.DescribeModelRequest(name=name, module=module),
                                      timeout=10)

    def test_family_detected_from_archive(self):
        for fam, want in FAMILIES.items():
            for ex in EXPORTS:
                with self.subTest(model=f"{fam}-{ex}"):
                    info = self.describe(f"{fam}-{ex}").model
                    self.assertEqual(info.family, want)
                    self.assertTrue(info.family_reason)
                    self.assertNotIn("json", info.family_reason)
                    self.assertEqual(info.layer_count, 2)

    def test_every_standard_module_resolves(self):
        for fam, layout in LAYOUT.items():
            for ex in EXPORTS:
                name = f"{fam}-{ex}"
                with self.subTest(model=name):
                    r = self.describe(name)
                    by_path = {m.path: m for m in r.modules}
                    for std, raw in layout.items():
                        for i in (range(2) if "{i}" in std else [None]):
                            s = std.format(i=i) if i is not None else std
                            p = raw.format(i=i) if i is not None else raw
                            self.assertIn(s, list(by_path[p].standard_names), (s, p))
                    # validation found nothing wrong with the fixtures' maps
                    self.assertFalse([w for w in r.model.warnings if "ghost" not in w
                                      and "no.such.module" not in w], r.model.warnings)

    def test_spellings_describe_identically(self):
        base = self.describe("gpt2-script", "transformer.h.1.attn")
        self.assertEqual(base.modules[0].path, "transformer.h.1.attn")
        self.assertEqual(base.modules[0].parent, -1)
        self.assertEqual([m.path for m in base.modules],
                         ["transformer.h.1.attn", "transformer.h.1.attn.c_attn",
                          "transformer.h.1.attn.c_proj", "transformer.h.1.attn.attn_dropout",
                          "transformer.h.1.attn.resid_dropout"])
        self.assertIn("blk1.attention", list(base.modules[0].aliases))
        self.assertIn("A1", list(base.modules[0].aliases))
        for spelling in ["layers.1.self_attn", "blk1.attention", "A1"]:
            with self.subTest(spelling=spelling):
                r = self.describe("gpt2-script", spelling)
                self.assertEqual(r.modules, base.modules)
                self.assertEqual(r.sites, base.sites)
        self.assertIn("layers.1.self_attn.pattern", [s.name for s in base.sites])

    def test_unmatched_rename_is_a_warning(self):
        info = self.describe("gpt2-script").model
        self.assertTrue(any("no.such.module" in w for w in info.warnings), info.warnings)
        listed = {m.name: m for m in self.d.models.List(models_pb2.ListModelsRequest()).models}
        self.assertTrue(any("no.such.module" in w for w in listed["gpt2-script"].warnings))
        self.assertIn("no.such.module", self.d.log_text())

    def test_unknown_family_in_model_json(self):
        info = self.describe("custom").model
        self.assertEqual(info.family, "gpt2")
        self.assertTrue(any("made-up-arch" in w for w in info.warnings), info.warnings)

    def test_bad_names(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.describe("gpt2-script", "layers.0.self_atn")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("layers.0.self_attn", cm.exception.details())  # the suggestion
        with self.assertRaises(grpc.RpcError) as cm:
            self.describe("gpt2-script", "layers.7.mlp")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("2 layers", cm.exception.details())
        with self.assertRaises(grpc.RpcError) as cm:
            forward(self.d.inference, "gpt2-script", [[1, 2]], save=["layers.0.resid_pots"])
        self.assertIn(cm.exception.code(), (grpc.StatusCode.NOT_FOUND,
                                            grpc.StatusCode.INVALID_ARGUMENT))
        self.assertIn("save[0]", cm.exception.details())
        self.assertIn("layers.0.resid_post", cm.exception.details())

    def test_sites_listed(self):
        for fam in FAMILIES:
            r = self.describe(f"{fam}-script")
            sites = {s.name: s for s in r.sites}
            for n in ["embed", "layers.0.resid_pre", "layers.1.resid_post", "layers.0.attn_out",
                      "layers.0.mlp_out", "layers.0.self_attn.pattern", "layers.0.self_attn.z",
                      "layers.0.mlp.pre", "layers.0.mlp.post", "logits"]:
                with self.subTest(model=fam, site=n):
                    self.assertIn(n, sites)
                    self.assertTrue(sites[n].available, sites[n].reason)
            self.assertEqual(sites["layers.1.resid_post"].tl_name, "blocks.1.hook_resid_post")
            # parallel residual: NeoX has no resid_mid
            if fam == "neox":
                self.assertTrue("layers.0.resid_mid" not in sites
                                or not sites["layers.0.resid_mid"].available)

    def test_saves_equal_python_hooks_under_every_spelling(self):
        for fam in FAMILIES:
            for ex in EXPORTS:
                name = f"{fam}-{ex}"
                raw = LAYOUT[fam]["layers.{i}"].format(i=1)
                spellings = [f"{raw}.output", "layers.1.resid_post", "blocks.1.hook_resid_post",
                             "layers.1.output"]
                if fam == "gpt2":
                    spellings += [f"{raw}.output.0"]
                with self.subTest(model=name):
                    ids = manifest(name)["inputs"]["input_ids"]
                    res, t = forward(self.d.inference, name, ids, save=spellings, logits=2)
                    self.assertEqual(list(res.saved), spellings)
                    first = t[spellings[0]]
                    for sp in spellings[1:]:
                        np.testing.assert_array_equal(t[sp], first, sp)
                    ref = io_ref(name, raw, "output", 0)
                    diff = float(np.abs(first - ref).max())
                    print(f"{name}: layers.1.resid_post vs Python hook: max |diff| {diff:g}")
                    self.assertLessEqual(diff, 1e-5)
                    # saving changes nothing about the logits
                    np.testing.assert_array_equal(t["logits"], ref_array(name, "logits_jit.npy"))

    def test_user_alias_site(self):
        ids = manifest("gpt2-script")["inputs"]["input_ids"]
        _, t = forward(self.d.inference, "gpt2-script", ids,
                       save=["blk0.attention.output", "transformer.h.0.attn.output.0",
                             "layers.0.attn_out"])
        np.testing.assert_array_equal(t["blk0.attention.output"], t["layers.0.attn_out"])
        np.testing.assert_array_equal(t["transformer.h.0.attn.output.0"], t["layers.0.attn_out"])

    def test_pattern_sums_to_one(self):
        for fam in FAMILIES:
            for ex in EXPORTS:
                name = f"{fam}-{ex}"
                with self.subTest(model=name):
                    ids = manifest(name)["inputs"]["input_ids"]
                    _, t = forward(self.d.inference, name, ids,
                                   save=["layers.0.self_attn.pattern", "blocks.0.attn.hook_pattern",
                                         "layers.0.self_attn.scores"])
                    p = t["layers.0.self_attn.pattern"]
                    self.assertEqual(p.shape, (2, 4, 7, 7))
                    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
                    self.assertLess(float(np.abs(np.triu(p, 1)).max()), 1e-6)  # causal
                    np.testing.assert_array_equal(t["blocks.0.attn.hook_pattern"], p)
                    s = t["layers.0.self_attn.scores"].astype(np.float64)
                    e = np.exp(s - s.max(-1, keepdims=True))
                    np.testing.assert_allclose(e / e.sum(-1, keepdims=True), p, atol=1e-5)

    def test_qkv_views(self):
        # GPT-2's fused c_attn splits in three along the last dim.
        ids = manifest("gpt2-script")["inputs"]["input_ids"]
        _, t = forward(self.d.inference, "gpt2-script", ids,
                       save=["layers.0.self_attn.q", "layers.0.self_attn.k",
                             "layers.0.self_attn.v", "transformer.h.0.attn.c_attn.output"])
        qkv = t["transformer.h.0.attn.c_attn.output"]
        d = qkv.shape[-1] // 3
        np.testing.assert_array_equal(t["layers.0.self_attn.q"], qkv[..., :d])
        np.testing.assert_array_equal(t["layers.0.self_attn.v"], qkv[..., 2 * d:])
        # Llama has separate projections.
        ids = manifest("llama-script")["inputs"]["input_ids"]
        _, t = forward(self.d.inference, "llama-script", ids,
                       save=["layers.0.self_attn.k", "model.layers.0.self_attn.k_proj.output"])
        np.testing.assert_array_equal(t["layers.0.self_attn.k"],
                                      t["model.layers.0.self_attn.k_proj.output"])


class MapFiles(unittest.TestCase):
    def test_malformed_override_stops_the_daemon(self):
        repo = tempfile.mkdtemp(prefix="nnedit-badmap-")
        try:
            os.makedirs(os.path.join(repo, "names.d"))
            with open(os.path.join(repo, "names.d", "gpt2.json"), "w") as f:
                f.write('{\n  "family": "gpt2",\n  "modules": {,\n}\n')
            with self.assertRaises(RuntimeError) as cm:
                Daemon(repo=repo, timeout=30)
            self.assertIn("gpt2.json", str(cm.exception))
            self.assertIn("line 3", str(cm.exception))
        finally:
            shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
