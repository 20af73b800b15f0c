"""tools/nnedit_export.py end to end: Hugging Face checkpoint folders in, a
model repository out, served by the real nneditd.

The checkpoints are the fixture classes (tests/fixtures/hfmodels.py: GPT-2,
Llama, GPT-NeoX in transformers' module layout and key names) with seeded
random weights, written as HF folders in both weight formats: safetensors
(read without the safetensors package, which Debian lacks) and
pytorch_model.bin. The tool runs as a user runs it (its command line, Debian's
Python, no transformers); the daemon must load every entry, name its family
and standard modules, and return the eager model's logits. Refusals (a family
with no name map, a feature the classes lack, a failed parity check, an
existing entry) must be clear errors that write nothing.

Environment (set by ctest): NNEDITD, NNE_PY_GEN, NNE_SOURCE_DIR (default: this
checkout).
"""

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("NNE_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))
sys.path.insert(0, os.path.join(SOURCE, "tools"))
sys.path.insert(0, os.path.join(SOURCE, "tests", "fixtures"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import make_tokenizer  # noqa: E402
import nnedit_export  # noqa: E402
from nnedit_testlib import Daemon, forward, generate, models_pb2, wait_loaded  # noqa: E402
from nnedit_testlib import inference_pb2  # noqa: E402

TOOL = os.path.join(SOURCE, "tools", "nnedit_export.py")
FAMILIES = ("gpt2", "llama", "gpt_neox")
# (weights format, export kind): every family in both formats and both kinds.
VARIANTS = (("safetensors", "trace"), ("bin", "script"))
LAYOUT = {"gpt2": ("transformer.h", "attn"), "llama": ("model.layers", "self_attn"),
          "gpt_neox": ("gpt_neox.layers", "attention")}
# Tiny float32 models: the daemon runs the same graph as Python's torch on
# the same BLAS; batch composition moves results by ~2e-6 (fixtures README).
ATOL = 1e-5


def transformers_shaped(model, cache="legacy"):
    """The fixture GPT-2 dressed as a transformers model: its class lives in
    transformers' module and has transformers' name, its forward has GPT-2's
    real parameter order (past_key_values before attention_mask, then
    token_type_ids, position_ids), takes use_cache/return_dict and returns a
    tuple, and it carries a config with to_dict(). That is what the tool's
    transformers path (eager attention, keyword calls through per-trace
    forward and forward_cached attributes) meets; Debian has no transformers
    to meet it for real.

    cache: "legacy" — like GPT-2 before transformers moved it to Cache
    objects (_supports_cache_class False): past_key_values a tuple of (key,
    value) pairs, returned as (logits, presents); the cached step runs the
    fixture's own cache code. "none" — a model that cannot take a cache
    (the export must go without kv_cache and say why). "baked" — like
    "legacy" but its positions come from the past length read as a Python
    int, which a trace records as a constant (the export must detect it and
    go without kv_cache)."""
    base = type(model)

    def forward(self, input_ids=None, past_key_values=None, attention_mask=None, token_type_ids=None,
                position_ids=None, use_cache=None, return_dict=None):
        assert return_dict is False, return_dict
        if past_key_values is None:
            assert use_cache is False and position_ids is None, (use_cache, position_ids)
            return (base.forward(self, input_ids, attention_mask),)
        assert cache != "none", "this model takes no cache"
        assert use_cache is True and isinstance(past_key_values, tuple), type(past_key_values)
        past = [t for pair in past_key_values for t in pair]
        if cache == "baked":
            p = int(past[0].shape[2])  # a Python int: the tracer keeps its value
            position_ids = (torch.arange(input_ids.shape[1]) + p).unsqueeze(0).expand_as(input_ids)
        logits, present = base.forward_cached(self, input_ids, attention_mask, position_ids, past)
        return (logits, tuple((present[2 * i], present[2 * i + 1]) for i in range(len(present) // 2)))

    cls = type("GPT2LMHeadModel", (base,), {"forward": forward, "_supports_cache_class": False,
                                            "__module__": "transformers.models.gpt2.modeling_gpt2"})

    class Config:
        _attn_implementation = "eager"
        use_cache = True

        def to_dict(self):
            return {"model_type": "gpt2", "vocab_size": 1000, "n_positions": 64, "n_embd": 64,
                    "n_layer": 2, "n_head": 4, "eos_token_id": 999}

    model.__class__ = cls
    model.config = Config()
    return model


def run_tool(*args):
    return subprocess.run([sys.executable, TOOL] + list(args), capture_output=True, text=True,
                          timeout=300)


class Export(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        cls.tmp = tempfile.mkdtemp(prefix="nnedit-export-")
        cls.repo = os.path.join(cls.tmp, "repo")
        cls.eager = {}
        cls.logs = {}
        for fam in FAMILIES:
            for fmt, kind in VARIANTS:
                name = "%s-%s" % (fam, fmt)
                ckpt = os.path.join(cls.tmp, "ckpt", name)
                cls.eager[name] = nnedit_export.fixture_checkpoint(fam, ckpt, fmt, "tiny", seed=77)
                if fam == "llama":
                    # tokenizer.json travels with the model, and the daemon
                    # loads it with the model: a real one, of its vocabulary.
                    with open(os.path.join(ckpt, "config.json")) as f:
                        vocab = json.load(f)["vocab_size"]
                    make_tokenizer.write(os.path.join(ckpt, "tokenizer.json"), vocab, bos=True)
                r = run_tool("export", ckpt, "--repo", cls.repo, "--export", kind)
                if r.returncode != 0:
                    raise AssertionError("export of %s failed:\n%s" % (name, r.stderr))
                cls.logs[name] = r.stderr
        # the in-memory path, with a transformers-shaped model
        hfm = transformers_shaped(nnedit_export.fixture_checkpoint(
            "gpt2", os.path.join(cls.tmp, "ckpt", "hf-shaped"), "safetensors", "tiny", seed=78))
        nnedit_export.export_model(hfm, cls.repo, "gpt2-hfshaped")
        cls.eager["gpt2-hfshaped"] = hfm
        cls.names = sorted(cls.eager)
        args = []
        for n in cls.names:
            args += ["--load", n]
        cls.d = Daemon(*args, "--threads", "1", repo=cls.repo)
        try:
            wait_loaded(cls.d, cls.names)
        except Exception:
            cls.d.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert code == 0, cls.d.log_text()

    def describe(self, name, module=""):
        return self.d.models.Describe(models_pb2.DescribeModelRequest(name=name, module=module),
                                      timeout=30)

    # -- what the tool wrote -------------------------------------------------

    def test_entry_files(self):
        for n in self.names:
            with self.subTest(model=n):
                d = os.path.join(self.repo, n)
                with open(os.path.join(d, "model.json")) as f:
                    spec = json.load(f)
                fam, fmt = n.rsplit("-", 1)
                self.assertEqual(spec["family"], fam)
                self.assertEqual(spec["export"], dict(VARIANTS).get(fmt, "trace"))
                self.assertEqual((spec["device"], spec["dtype"]), ("cpu", "float32"))
                self.assertEqual(spec["config"]["vocab_size"], 1000)
                self.assertEqual(spec["config"]["n_layers"], 2)
                self.assertEqual(spec["limits"]["max_batch"], 16)
                self.assertGreater(spec["limits"]["max_seq_len"], 0)
                self.assertIsInstance(spec["pad_token_id"], int)
                self.assertTrue(spec["export_info"]["parity"])
                for p in spec["export_info"]["parity"]:
                    self.assertLessEqual(p["max_abs_diff"], 1e-4 * p["max_abs_logit"])
                self.assertEqual(os.path.isfile(os.path.join(d, "tokenizer.json")), fam == "llama")
                # the parity figures are printed (by the command-line exports)
                if n in self.logs:
                    self.assertIn("max abs logit difference", self.logs[n])
        # nothing but the entries (no temporary directories left)
        self.assertEqual(sorted(os.listdir(self.repo)), self.names)

    def test_transformers_shaped_root_keeps_its_type(self):
        """Traced through the per-trace forward attribute, the root is the
        model itself (no wrapper module): transformers' qualified class
        name, the same module paths, a forward the daemon can call."""
        m = torch.jit.load(os.path.join(self.repo, "gpt2-hfshaped", "model.pt"))
        self.assertIn("transformers.models.gpt2.modeling_gpt2", m._c._type().qualified_name())
        self.assertEqual(m.original_name, "GPT2LMHeadModel")
        self.assertIn("transformer.h.1.attn", dict(m.named_modules()))
        self.assertNotIn("forward", self.eager["gpt2-hfshaped"].__dict__)

    # -- what the daemon makes of it ---------------------------------------------

    def test_family_and_standard_names(self):
        for n in self.names:
            fam = n.rsplit("-", 1)[0]
            layers, attn = LAYOUT[fam]

            with self.subTest(model=n):
                info = self.describe(n).model
                self.assertEqual(info.family, fam)
                self.assertEqual(info.layer_count, 2)
                self.assertEqual(list(info.warnings), [])
                r = self.describe(n, "layers.1.%s" % "self_attn")
                self.assertEqual(r.modules[0].path, "%s.1.%s" % (layers, attn))
                self.assertIn("layers.1.self_attn", list(r.modules[0].standard_names))
                sites = {s.name: s for s in self.describe(n).sites}
                for s in ("embed", "layers.0.resid_post", "layers.1.self_attn.pattern",
                          "layers.0.mlp_out", "logits"):
                    self.assertIn(s, sites)
                    self.assertTrue(sites[s].available, (s, sites[s].reason))

    def eager_logits(self, name, rows, mask):
        return nnedit_export.call_eager(self.eager[name], torch.tensor(rows),
                                        torch.tensor(mask)).numpy()

    def test_forward_equals_eager(self):
        rows = [[5, 17, 999, 3, 42, 8, 100, 7, 1], [9, 9, 250, 4, 77, 31, 600, 12, 2]]
        ones = [[1] * 9, [1] * 9]
        padded = [[1] * 9, [0, 0, 0, 1, 1, 1, 1, 1, 1]]
        for n in self.names:
            with self.subTest(model=n):
                for mask in (ones, padded):
                    _, t = forward(self.d.inference, n, rows, mask=mask,
                                   logits=inference_pb2.LOGITS_MODE_ALL)
                    want = self.eager_logits(n, rows, mask)
                    real = np.array(mask, dtype=bool)
                    diff = np.abs(t["logits"] - want)[real].max()
                    self.assertLessEqual(diff, ATOL, (n, mask))

    def test_cached_decoding(self):
        """Models that define forward_cached (the fixture classes) are exported
        with it: model.json's kv_cache, Describe says so, and Generate with
        the cache gives the eager model's greedy ids (recomputing agrees)."""
        sys.path.insert(0, os.path.join(SOURCE, "tests", "fixtures"))
        import reference_generate as rg
        prompt = [5, 17, 999, 3, 42]
        for n in self.names:
            with self.subTest(model=n):
                with open(os.path.join(self.repo, n, "model.json")) as f:
                    spec = json.load(f)
                info = self.describe(n).model
                self.assertEqual(spec["kv_cache"]["method"], "forward_cached")
                self.assertTrue(info.kv_cache)
                kv = rg.kv_shape(self.eager[n])
                self.assertEqual((spec["kv_cache"]["layers"], spec["kv_cache"]["kv_heads"],
                                  spec["kv_cache"]["head_dim"]), kv)
                want, _ = rg.greedy_generate(self.eager[n], [prompt], 8)
                for cache in (inference_pb2.CACHE_MODE_UNSPECIFIED, inference_pb2.CACHE_MODE_OFF):
                    _, _, res = generate(self.d.inference, inference_pb2.GenerateRequest(
                        model=n, prompts=[inference_pb2.TokenRow(ids=prompt)], max_new_tokens=8,
                        ignore_eos=True, cache=cache))
                    self.assertEqual(list(res.rows[0].ids), want[0], cache)
                    self.assertEqual(res.kv_cache, cache == inference_pb2.CACHE_MODE_UNSPECIFIED)

    def test_transformers_cached_method(self):
        """A transformers-shaped model gets forward_cached from the tool
        (_HFCalls: the flat past converted to what the model takes and
        back), traced with trace_module beside forward: the archive's root
        is still the model, its submodules are shared, eos comes from the
        config, the check compared it at other past lengths than traced."""
        with open(os.path.join(self.repo, "gpt2-hfshaped", "model.json")) as f:
            spec = json.load(f)
        self.assertEqual(spec["kv_cache"], {"method": "forward_cached", "layers": 2, "kv_heads": 4,
                                            "head_dim": 16})
        self.assertEqual(spec["eos_token_id"], 999)
        cp = spec["export_info"]["cached_parity"]
        self.assertLessEqual(cp["relative"], 1e-4)
        self.assertLessEqual(cp["cached_vs_whole_sequence"], 1e-4)
        self.assertNotIn("forward_cached", self.eager["gpt2-hfshaped"].__dict__)
        m = torch.jit.load(os.path.join(self.repo, "gpt2-hfshaped", "model.pt"))
        self.assertEqual(m.original_name, "GPT2LMHeadModel")
        # the cached graph calls the blocks (their traced methods), not inlined copies
        calls = [n for n in m.forward_cached.graph.nodes() if n.kind() == "prim::CallMethod"]
        self.assertTrue(calls, m.forward_cached.graph)

    def test_transformers_without_a_cached_path(self):
        """A model whose cached call fails, or whose trace holds the past
        length as a constant, is exported without kv_cache, and the tool
        says why (in its output and in model.json), rather than writing a
        wrong method."""
        repo = os.path.join(self.tmp, "repo-nocache")
        for how, why in (("none", "forward_cached failed"), ("baked", "likely holds a Python int")):
            with self.subTest(cache=how):
                m = transformers_shaped(nnedit_export.fixture_checkpoint(
                    "gpt2", os.path.join(self.tmp, "ckpt", "hf-" + how), "safetensors", "tiny", seed=79),
                    cache=how)
                spec = nnedit_export.export_model(m, repo, "gpt2-" + how)
                self.assertNotIn("kv_cache", spec)
                self.assertIn(why, spec["export_info"]["kv_cache"])
                with open(os.path.join(repo, "gpt2-" + how, "model.json")) as f:
                    self.assertNotIn("kv_cache", json.load(f))
                self.assertNotIn("forward_cached", m.__dict__)
                self.assertNotIn("forward", m.__dict__)
                a = torch.jit.load(os.path.join(repo, "gpt2-" + how, "model.pt"))
                self.assertFalse(hasattr(a, "forward_cached"))

    def test_save_equals_eager_hook(self):
        """A standard site's saved value is the eager module's output."""
        rows = [[5, 17, 999, 3, 42]]
        for n in self.names:
            fam = n.rsplit("-", 1)[0]
            layers, _ = LAYOUT[fam]
            model = self.eager[n]
            got = {}
            block = model.get_submodule("%s.1" % layers)
            h = block.register_forward_hook(lambda m, a, o: got.setdefault("v", o[0].detach()))
            try:
                self.eager_logits(n, rows, [[1] * 5])
            finally:
                h.remove()
            with self.subTest(model=n):
                _, t = forward(self.d.inference, n, rows, mask=[[1] * 5],
                               save=["layers.1.resid_post"])
                (saved,) = [v for k, v in t.items() if k != "logits"]
                self.assertLessEqual(np.abs(saved - got["v"].numpy()).max(), ATOL)

    # -- refusals -----------------------------------------------------------

    def folder(self, name, config, weights_from=None):
        d = os.path.join(self.tmp, "bad", name)
        os.makedirs(d)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        if weights_from:
            shutil.copy(os.path.join(self.tmp, "ckpt", weights_from, "model.safetensors"), d)
        return d

    def test_refuses_unmapped_family(self):
        d = self.folder("t5", {"model_type": "t5", "architectures": ["T5ForConditionalGeneration"],
                               "d_model": 64})
        r = run_tool("export", d, "--repo", self.repo)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("refused", r.stderr)
        self.assertIn("T5ForConditionalGeneration", r.stderr)
        self.assertIn("no standard-name map", r.stderr)
        self.assertIn("gpt_neox", r.stderr)  # it lists what is known
        self.assertNotIn("Traceback", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.repo, "t5")))

    def test_refuses_what_the_classes_lack(self):
        with open(os.path.join(self.tmp, "ckpt", "llama-safetensors", "config.json")) as f:
            cfg = json.load(f)
        cfg["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0}
        d = self.folder("llama-scaled", cfg, "llama-safetensors")
        r = run_tool("export", d, "--repo", self.repo, "--impl", "fixture")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("rope_scaling", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.repo, "llama-scaled")))

    def test_refuses_wrong_weights(self):
        with open(os.path.join(self.tmp, "ckpt", "gpt2-safetensors", "config.json")) as f:
            cfg = json.load(f)
        cfg["n_embd"] = 32
        d = self.folder("gpt2-narrow", cfg, "gpt2-safetensors")
        r = run_tool("export", d, "--repo", self.repo)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("shape", r.stderr)
        self.assertNotIn("Traceback", r.stderr)

    def test_refuses_failed_parity(self):
        """An archive that does not compute what its model does is not written."""
        repo = os.path.join(self.tmp, "repo-parity")

        def perturb(archive):
            # a new tensor, not an in-place change: a scripted archive shares
            # its parameters with the eager model
            with torch.no_grad():
                archive.lm_head._c.setattr("weight", archive.lm_head.weight + 0.05)

        with self.assertRaises(nnedit_export.ExportError) as cm:
            nnedit_export.export_model(copy.deepcopy(self.eager["gpt2-bin"]), repo, "gpt2-bad",
                                       kind="script", _perturb=perturb)
        self.assertIn("refused: the archive differs from the eager model", str(cm.exception))
        self.assertEqual([f for f in os.listdir(repo)], [])

    def test_refuses_existing_entry(self):
        r = run_tool("export", os.path.join(self.tmp, "ckpt", "gpt2-bin"), "--repo", self.repo,
                     "--name", "gpt2-safetensors")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("--force", r.stderr)

    def test_help_says_how_models_are_built(self):
        r = run_tool("export", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("hfmodels.py", r.stdout)


class SafeTensors(unittest.TestCase):
    def test_round_trip_every_dtype(self):
        g = torch.Generator().manual_seed(3)
        ts = {"f32": torch.randn(3, 4, generator=g), "bf16": torch.randn(5, generator=g).bfloat16(),
              "f16": torch.randn(2, 2, generator=g).half(), "i64": torch.arange(7),
              "b": torch.tensor([True, False]), "empty": torch.zeros(0, 3),
              "scalar": torch.tensor(2.5)}
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "x.safetensors")
            nnedit_export.write_safetensors(p, ts, {"format": "pt"})
            with open(p, "rb") as f:
                n = int.from_bytes(f.read(8), "little")
                self.assertEqual(n % 8, 0)
                header = json.loads(f.read(n))
            self.assertEqual(header["bf16"]["dtype"], "BF16")
            back = nnedit_export.read_safetensors(p)
        self.assertEqual(sorted(back), sorted(ts))
        for k, v in ts.items():
            self.assertEqual(back[k].dtype, v.dtype, k)
            self.assertEqual(tuple(back[k].shape), tuple(v.shape), k)
            self.assertTrue(torch.equal(back[k], v), k)

    def test_truncated_file_is_an_error(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "x.safetensors")
            nnedit_export.write_safetensors(p, {"a": torch.ones(100)})
            with open(p, "r+b") as f:
                f.truncate(os.path.getsize(p) - 40)
            with self.assertRaises(nnedit_export.ExportError):
                nnedit_export.read_safetensors(p)


if __name__ == "__main__":
    unittest.main()
