#!/usr/bin/env python3
"""nnedit_export.py — turn a Hugging Face causal LM into an nnedit model repository entry.

  nnedit_export.py export SRC --repo REPO [--name NAME] [options]
  nnedit_export.py fixture-checkpoint --family gpt2|llama|gpt_neox --out DIR [options]

`export` reads SRC, a Hugging Face model folder (config.json; model.safetensors,
pytorch_model.bin or their sharded *.index.json forms; tokenizer.json when
present), and writes REPO/NAME/ for nneditd:

  model.pt        TorchScript archive: forward(input_ids, attention_mask) -> logits
                  [batch, seq, vocab] (the daemon's forward contract), and
                  forward_cached (README, "Cached decoding"): the fixture
                  classes' own method, or for a transformers model the model's
                  own cache path behind the contract's flat past/present lists
                  (a DynamicCache built per call; legacy tuples for 4.x models
                  without Cache support); both traced by one trace_module, and
                  checked by a greedy loop against the eager model's at other
                  past lengths than the traced one
  model.json      family, export kind, device, dtype, config, limits, pad token,
                  eos (generation config, else config), kv_cache (with
                  forward_cached), and the parity figures measured here
  tokenizer.json  copied from SRC when present

Before writing, the archive (saved and loaded back) is run against the eager
model on a few prompts, padded ones included and at shapes other than the traced
one; the max abs logit difference is printed and the export is refused above
--tolerance. A transformers model whose cached method cannot be traced or does
not match its eager cache path (a trace that recorded the past length as a
constant, say) is exported without kv_cache, and the output says why
(model.json export_info.kv_cache); Generate then recomputes each step. A model whose family has no standard-name map in daemon/names/ is
refused (the families: gpt2, llama (Mistral, Qwen2/3, Gemma 1), gemma (Gemma 2/3),
gpt_neox, gptj, opt, phi, bloom).

Model classes. With `transformers` importable (4.4x or 5.x), the model is built by
transformers.AutoModelForCausalLM with eager attention. Without it (Debian has
no transformers; the project's CI), or with --impl fixture, the model is built
from the project's own HF-layout classes, tests/fixtures/hfmodels.py, which
cover gpt2, llama and gpt_neox with the exact module trees and checkpoint key
names of transformers: a checkpoint of those families exports the same way
(within the features the classes implement; others are refused by name).

`fixture-checkpoint` writes such a folder from the fixture classes with seeded
random weights (config.json in transformers' format; safetensors or .bin): what
the tool's own test and the CPU rehearsal of deploy/gpu-check.sh export.

From Python, for an in-memory transformers (or fixture) model:
  import nnedit_export; nnedit_export.export_model(model, repo, name, ...)

Runs with torch 1.13 through 2.x. The safetensors format is read directly
when the `safetensors` package is absent (Debian 12 has none).
"""

import argparse
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NAMES_DIR = os.path.join(ROOT, "daemon", "names")
FIXTURE_DIR = os.path.join(ROOT, "tests", "fixtures")

# Parity bounds (relative: max |archive - eager| / max |eager|, over real
# tokens). float32 archives of the fixtures match to ~1e-7 relative; the
# issue's bound for fp32 is 1e-4. Half-precision formats round each op's
# output, and a traced graph may order ops differently from eager (addmm
# split into mm + add, say): 8 bits of mantissa (bf16) give ~4e-3 per
# rounding, 11 (fp16) ~5e-4.
DEFAULT_TOLERANCE = {"float32": 1e-4, "float64": 1e-9, "bfloat16": 3e-2, "float16": 5e-3}
DEFAULT_MAX_BATCH = 16


class ExportError(Exception):
    """A refusal or failure with a message meant for the user."""


def log(msg):
    print("nnedit_export: " + msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# families: read from the daemon's own maps, so that the tool refuses exactly
# what the daemon cannot name


def load_families(names_dir=NAMES_DIR):
    """{family: {"classes": [...], "aliases": [...]}} from daemon/names/*.json."""
    fams = {}
    try:
        files = sorted(f for f in os.listdir(names_dir) if f.endswith(".json"))
    except OSError as e:
        raise ExportError("cannot read the family maps in %s: %s" % (names_dir, e))
    for f in files:
        with open(os.path.join(names_dir, f)) as fh:
            d = json.load(fh)
        fams[d["family"]] = {"classes": list(d.get("detect", {}).get("classes", [])),
                             "aliases": list(d.get("aliases", []))}
    if not fams:
        raise ExportError("no family maps in %s" % names_dir)
    return fams


def family_of(class_name=None, model_type=None, families=None):
    """The daemon family for a root class name or a config model_type, or
    raises ExportError naming what is known."""
    families = families or load_families()
    if class_name:
        for fam, d in families.items():
            if class_name in d["classes"]:
                return fam
    if model_type:
        mt = model_type.lower()
        for fam, d in families.items():
            if mt == fam or mt in d["aliases"]:
                return fam
    known = ", ".join("%s (%s)" % (f, ", ".join(d["classes"])) for f, d in sorted(families.items()))
    what = " / ".join(([("class " + class_name)] if class_name else []) +
                      ([("model_type '%s'" % model_type)] if model_type else [])) or "this model"
    raise ExportError(
        "refused: %s has no standard-name map in daemon/names/, so nneditd could "
        "serve it by raw module paths only; known families: %s" % (what, known))


# --------------------------------------------------------------------------
# checkpoint reading: safetensors (with or without the package) and .bin

# safetensors dtype codes -> torch dtype names
_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
              "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
              "BOOL": "bool"}
_ST_CODES = {v: k for k, v in _ST_DTYPES.items()}


def read_safetensors(path):
    """{name: tensor} from a .safetensors file. The format: 8-byte little-endian
    header length N, N bytes of JSON ({name: {dtype, shape, data_offsets:
    [begin, end]}}, "__metadata__" optional), then the raw little-endian
    tensor bytes, offsets relative to the end of the header."""
    import torch
    try:
        from safetensors.torch import load_file
        return load_file(path)
    except ImportError:
        pass
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ExportError("%s: not a safetensors file (shorter than 8 bytes)" % path)
        (n,) = struct.unpack("<Q", raw)
        if n > 100 << 20:
            raise ExportError("%s: safetensors header of %d bytes is implausible" % (path, n))
        header = json.loads(f.read(n))
        data = bytearray(f.read())
    if sys.byteorder != "little":
        raise ExportError("reading safetensors without the package needs a little-endian machine")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = _ST_DTYPES.get(info["dtype"])
        if dt is None:
            raise ExportError("%s: tensor %s has dtype %s, which this reader does not know"
                              % (path, name, info["dtype"]))
        begin, end = info["data_offsets"]
        if not 0 <= begin <= end <= len(data):
            raise ExportError("%s: tensor %s lies outside the file" % (path, name))
        shape = list(info["shape"])
        dtype = getattr(torch, dt)
        count = math.prod(shape) if shape else 1
        if count * torch.empty((), dtype=dtype).element_size() != end - begin:
            raise ExportError("%s: tensor %s: %d bytes for shape %s %s"
                              % (path, name, end - begin, shape, dt))
        if count == 0:
            out[name] = torch.empty(shape, dtype=dtype)
        else:
            # frombuffer shares the bytearray; clone so each tensor owns its
            # storage (and the file-sized buffer can go).
            out[name] = torch.frombuffer(data, dtype=dtype, count=count,
                                         offset=begin).reshape(shape).clone()
    return out


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} in the safetensors format (for the fixture
    checkpoints; transformers' save_pretrained uses the package)."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        dt = str(t.dtype).replace("torch.", "")
        if dt not in _ST_CODES:
            raise ExportError("write_safetensors: %s has dtype %s" % (name, dt))
        # bytes of any dtype (bfloat16 has no numpy twin): view as uint8
        b = t.reshape(-1).view(__import__("torch").uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _ST_CODES[dt], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)  # the format pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_checkpoint(folder):
    """The state dict of an HF folder: model.safetensors, pytorch_model.bin,
    or a sharded form (*.index.json naming the shards). Returns (dict, what)."""
    import torch
    for index, reader in (("model.safetensors.index.json", read_safetensors),
                          ("pytorch_model.bin.index.json", None)):
        p = os.path.join(folder, index)
        if os.path.isfile(p):
            with open(p) as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            sd = {}
            for s in shards:
                sp = os.path.join(folder, s)
                sd.update(reader(sp) if reader else _torch_load(torch, sp))
            return sd, "%s (%d shards)" % (index, len(shards))
    p = os.path.join(folder, "model.safetensors")
    if os.path.isfile(p):
        return read_safetensors(p), "model.safetensors"
    p = os.path.join(folder, "pytorch_model.bin")
    if os.path.isfile(p):
        return _torch_load(torch, p), "pytorch_model.bin"
    raise ExportError("%s: no weights (model.safetensors, pytorch_model.bin or an index of shards)"
                      % folder)


def _torch_load(torch, path):
    # weights_only where torch has it (1.13 does): a .bin is a pickle, and
    # only tensors are wanted from it.
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:
        return torch.load(path, map_location="cpu")


# --------------------------------------------------------------------------
# building the model: transformers, or the fixture classes


def have_transformers():
    try:
        import transformers  # noqa: F401
        return True
    except ImportError:
        return False


def _fixture_module():
    if FIXTURE_DIR not in sys.path:
        sys.path.insert(0, FIXTURE_DIR)
    import hfmodels
    return hfmodels


def _cfg_get(cfg, key, default=None):
    v = cfg.get(key, default)
    return default if v is None else v


def fixture_config(hf, cfg):
    """(family, root class, fixture config) for an HF config dict, refusing
    what the fixture classes do not implement (rather than exporting a model
    that computes something else)."""
    mt = cfg.get("model_type")

    def refuse(what):
        raise ExportError("refused: the fixture classes (tests/fixtures/hfmodels.py) do not "
                          "implement %s for model_type '%s'; export it with transformers "
                          "installed" % (what, mt))

    def require(cond, what):
        if not cond:
            refuse(what)

    if mt == "gpt2":
        n_embd = cfg["n_embd"]
        require(cfg.get("n_inner") in (None, 4 * n_embd), "n_inner other than 4 * n_embd")
        require(cfg.get("activation_function", "gelu_new") == "gelu_new",
                "activation_function '%s'" % cfg.get("activation_function"))
        require(not cfg.get("scale_attn_by_inverse_layer_idx") and not cfg.get("reorder_and_upcast_attn"),
                "scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn")
        require(cfg.get("tie_word_embeddings", True), "untied embeddings")
        c = hf.GPT2Config(vocab_size=cfg["vocab_size"], n_positions=cfg["n_positions"], n_embd=n_embd,
                          n_layer=cfg["n_layer"], n_head=cfg["n_head"],
                          layer_norm_epsilon=_cfg_get(cfg, "layer_norm_epsilon", 1e-5))
        return "gpt2", hf.GPT2LMHeadModel, c
    if mt == "llama":
        heads = cfg["num_attention_heads"]
        require(cfg.get("head_dim") in (None, cfg["hidden_size"] // heads), "head_dim other than hidden/heads")
        require(cfg.get("hidden_act", "silu") == "silu", "hidden_act '%s'" % cfg.get("hidden_act"))
        require(not cfg.get("rope_scaling"), "rope_scaling")
        require(not cfg.get("attention_bias") and not cfg.get("mlp_bias"), "biases in attention or MLP")
        require(not cfg.get("tie_word_embeddings", False), "tied embeddings")
        c = hf.LlamaConfig(vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"],
                           intermediate_size=cfg["intermediate_size"],
                           num_hidden_layers=cfg["num_hidden_layers"], num_attention_heads=heads,
                           num_key_value_heads=_cfg_get(cfg, "num_key_value_heads", heads),
                           max_position_embeddings=cfg["max_position_embeddings"],
                           rope_theta=float(_cfg_get(cfg, "rope_theta", 10000.0)),
                           rms_norm_eps=_cfg_get(cfg, "rms_norm_eps", 1e-6))
        return "llama", hf.LlamaForCausalLM, c
    if mt == "gpt_neox":
        require(cfg.get("hidden_act", "gelu") == "gelu", "hidden_act '%s'" % cfg.get("hidden_act"))
        require(cfg.get("attention_bias", True), "attention without biases")
        require(not cfg.get("rope_scaling"), "rope_scaling")
        require(not cfg.get("tie_word_embeddings", False), "tied embeddings")
        c = hf.GPTNeoXConfig(vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"],
                             intermediate_size=cfg["intermediate_size"],
                             num_hidden_layers=cfg["num_hidden_layers"],
                             num_attention_heads=cfg["num_attention_heads"],
                             rotary_pct=_cfg_get(cfg, "rotary_pct", 0.25),
                             rotary_emb_base=float(_cfg_get(cfg, "rotary_emb_base", 10000.0)),
                             max_position_embeddings=cfg["max_position_embeddings"],
                             layer_norm_eps=_cfg_get(cfg, "layer_norm_eps", 1e-5),
                             use_parallel_residual=_cfg_get(cfg, "use_parallel_residual", True))
        return "gpt_neox", hf.GPTNeoXForCausalLM, c
    family_of(None, mt)  # refuses a family the daemon cannot name, by name
    refuse("this model type (the classes cover gpt2, llama and gpt_neox)")


# Checkpoint entries that are buffers the classes rebuild themselves (causal
# masks, rotary frequencies), saved by some transformers versions.
_IGNORABLE_SUFFIXES = (".attn.bias", ".attn.masked_bias", ".attention.bias",
                       ".attention.masked_bias", ".rotary_emb.inv_freq")


def load_state(model, sd, family):
    """Loads an HF checkpoint's state dict into a fixture-class model,
    refusing missing or unknown weights by name."""
    import torch
    own = dict(model.named_parameters())
    base = {"gpt2": "transformer.", "llama": "model.", "gpt_neox": "gpt_neox."}[family]
    fixed = {}
    for k, v in sd.items():
        if k.endswith(_IGNORABLE_SUFFIXES):
            continue
        # The original GPT-2 checkpoints were saved from the base model: no
        # "transformer." prefix.
        if k not in own and base + k in own:
            k = base + k
        fixed[k] = v
    unknown = sorted(k for k in fixed if k not in own)
    if unknown:
        raise ExportError("checkpoint has weights the model does not: %s%s"
                          % (", ".join(unknown[:5]), " ..." if len(unknown) > 5 else ""))
    # A tied lm_head is saved once, as the embedding.
    seen, missing = set(), []
    with torch.no_grad():
        for name, p in model.named_parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            if name not in fixed:
                missing.append(name)
                continue
            v = fixed[name]
            if tuple(v.shape) != tuple(p.shape):
                raise ExportError("checkpoint weight %s has shape %s; the config gives %s"
                                  % (name, list(v.shape), list(p.shape)))
            p.copy_(v.to(p.dtype))
    if missing:
        raise ExportError("checkpoint lacks weights: %s%s"
                          % (", ".join(missing[:5]), " ..." if len(missing) > 5 else ""))


def _torch_dtype(name):
    import torch
    try:
        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
                "float64": torch.float64}[name]
    except KeyError:
        raise ExportError("dtype '%s': expected float32, bfloat16, float16 or float64" % name)


def build_from_folder(folder, impl, dtype):
    """(model, family, hf config dict, impl used) for an HF model folder."""
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    arch = (cfg.get("architectures") or [None])[0]
    family = family_of(arch, cfg.get("model_type"))  # refuses before any weights are read
    if impl == "auto":
        impl = "transformers" if have_transformers() else "fixture"
    if impl == "transformers":
        import transformers
        kw = {"attn_implementation": "eager"}
        # 4.56 renamed torch_dtype to dtype; an unknown keyword would be
        # stored on the config silently, so choose by version.
        ver = tuple(int(x) for x in transformers.__version__.split(".")[:2] if x.isdigit())
        kw["dtype" if ver >= (4, 56) else "torch_dtype"] = _torch_dtype(dtype)
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, **kw)
        return model, family, cfg, "transformers %s" % transformers.__version__
    hf = _fixture_module()
    fam2, cls, fcfg = fixture_config(hf, cfg)
    model = cls(fcfg)
    sd, what = read_checkpoint(folder)
    load_state(model, sd, fam2)
    log("weights: %s, %d tensors, into %s (fixture classes)" % (what, len(sd), cls.__name__))
    return model.to(_torch_dtype(dtype)), family, cfg, "fixture classes (tests/fixtures/hfmodels.py)"


def hf_config_dict(model):
    """The config of an in-memory model as a plain dict (transformers' or the
    fixture classes' config)."""
    c = getattr(model, "config", None)
    if c is not None and hasattr(c, "to_dict"):
        return c.to_dict()
    # fixture classes keep no config object: read it off the modules
    cls = type(model).__name__
    if cls == "GPT2LMHeadModel":
        t = model.transformer
        return {"model_type": "gpt2", "vocab_size": t.wte.num_embeddings, "n_embd": t.embed_dim,
                "n_layer": len(t.h), "n_head": t.h[0].attn.num_heads,
                "n_positions": t.wpe.num_embeddings, "n_inner": t.h[0].mlp.c_fc.nf}
    if cls == "LlamaForCausalLM":
        m = model.model
        a = m.layers[0].self_attn
        return {"model_type": "llama", "vocab_size": m.embed_tokens.num_embeddings,
                "hidden_size": m.embed_tokens.embedding_dim, "num_hidden_layers": len(m.layers),
                "num_attention_heads": a.num_heads, "num_key_value_heads": a.num_key_value_heads,
                "head_dim": a.head_dim, "intermediate_size": m.layers[0].mlp.gate_proj.out_features,
                "max_position_embeddings": getattr(model, "max_positions", 256)}
    if cls == "GPTNeoXForCausalLM":
        m = model.gpt_neox
        a = m.layers[0].attention
        return {"model_type": "gpt_neox", "vocab_size": m.embed_in.num_embeddings,
                "hidden_size": a.hidden_size, "num_hidden_layers": len(m.layers),
                "num_attention_heads": a.num_attention_heads,
                "intermediate_size": m.layers[0].mlp.dense_h_to_4h.out_features,
                "max_position_embeddings": getattr(model, "max_positions", 256),
                "rotary_ndims": a.rotary_ndims}
    return {}


def summary_config(cfg, vocab):
    """model.json's "config": the family-neutral sizes the daemon and its
    users read (the same keys the fixtures write)."""
    g = lambda *ks: next((cfg[k] for k in ks if cfg.get(k) is not None), None)  # noqa: E731
    d_model = g("hidden_size", "n_embd", "d_model")
    heads = g("num_attention_heads", "n_head")
    out = {"vocab_size": vocab, "d_model": d_model, "n_layers": g("num_hidden_layers", "n_layer"),
           "n_heads": heads, "max_seq_len": g("max_position_embeddings", "n_positions"),
           "n_kv_heads": g("num_key_value_heads") or heads,
           "head_dim": g("head_dim") or (d_model // heads if d_model and heads else None),
           "d_ff": g("intermediate_size", "n_inner") or (4 * d_model if d_model else None)}
    if cfg.get("rotary_ndims") is not None:
        out["rotary_ndims"] = cfg["rotary_ndims"]
    return {k: v for k, v in out.items() if v is not None}


# --------------------------------------------------------------------------
# tracing / scripting


def _is_transformers_model(model):
    return type(model).__module__.startswith("transformers.")


def _prepare_transformers(model, hf_torchscript_flag):
    """What a traceable transformers model needs, each for a reason:
    * eager attention: SDPA / flash kernels are single fused ops, so the
      attention pattern (the softmax the daemon's `self_attn.pattern` and
      `scores` sites read) would not exist in the graph, and SDPA takes
      data-dependent shortcuts (is_causal when the mask is all ones) that a
      trace would bake in;
    * use_cache=False (config and per call): forward returns the logits
      only; a cache object is not a traceable output (forward_cached,
      _HFCalls, passes use_cache=True and flattens the cache);
    * return_dict=False: ModelOutput dataclasses are not traceable outputs;
      tuples are (both are passed per call, in the forward below).
    * torchscript=True is NOT set by default: its one effect today is to clone
      tied embeddings (so that very old torch could save them), which would
      double the embedding memory (590M parameters for Gemma-2), while tied
      parameters trace and save fine from torch 1.13 on (the GPT-2 fixtures
      do it). --hf-torchscript sets it for a transformers that needs it."""
    cfg = model.config
    if getattr(cfg, "_attn_implementation", None) != "eager":
        try:
            # set_attn_implementation in newer transformers (it updates the
            # submodules' configs too); 4.4x reads config._attn_implementation
            if hasattr(model, "set_attn_implementation"):
                model.set_attn_implementation("eager")
            else:
                cfg._attn_implementation = "eager"
        except Exception as e:  # a model that cannot run eager attention
            raise ExportError("cannot switch %s to eager attention: %s" % (type(model).__name__, e))
    impl = getattr(cfg, "_attn_implementation", "eager")
    if impl != "eager":
        raise ExportError("%s uses attention implementation '%s'; the export needs 'eager' "
                          "(load it with attn_implementation='eager')" % (type(model).__name__, impl))
    if hasattr(cfg, "use_cache"):
        cfg.use_cache = False
    if hf_torchscript_flag:
        cfg.torchscript = True
        # transformers reads the flag when it ties the output embedding to
        # the input one (it then clones rather than shares, which a trace
        # needs in some versions): tie again so that the flag applies.
        if hasattr(model, "tie_weights"):
            model.tie_weights()


class _CallAs:
    """Gives a transformers model, for the duration of a trace, the forward
    the daemon calls: forward(input_ids, attention_mask) -> logits.
    The root module stays the model itself (not a wrapper), so that module
    paths and the root class name (what the daemon detects the family from)
    are transformers' own. torch.jit.trace(mod) runs mod.__call__, which
    calls the instance's `forward` attribute: set here, removed on exit. Not
    example_kwarg_inputs: torch 1.13 has none, and GPT-2's second positional
    parameter is past_key_values, not the mask."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        cls_forward = type(self.model).forward
        model = self.model

        def forward(input_ids, attention_mask):
            out = cls_forward(model, input_ids=input_ids, attention_mask=attention_mask,
                              use_cache=False, return_dict=False)
            if hasattr(out, "logits"):  # a version that ignores return_dict=False
                return out.logits
            return out[0] if isinstance(out, (tuple, list)) else out

        self.model.forward = forward
        return self.model

    def __exit__(self, *exc):
        del self.model.forward


class _NoExports:
    """torch.jit.trace scripts a module's @torch.jit.export methods (the
    fixture classes' forward_cached) instead of tracing them, and the
    scripted method then takes the submodules with it: the archive's
    forward would call none of them. Lifted when only forward is traced (a
    transformers-shaped model; the others trace both, make_archive)."""

    def __init__(self, model):
        self.fns = [f for f in (getattr(type(m), "forward_cached", None)
                                for m in model.modules()) if f is not None]
        self.saved = []

    def __enter__(self):
        for f in self.fns:
            self.saved.append((f, f.__dict__.pop("_torchscript_modifier", None)))

    def __exit__(self, *exc):
        for f, mod in self.saved:
            if mod is not None:
                f._torchscript_modifier = mod


def call_eager(model, ids, mask):
    import torch
    with torch.no_grad():
        if _is_transformers_model(model):
            with _CallAs(model) as m:
                return m(ids, mask)
        return model(ids, mask)


def has_cached(model):
    """Whether the export tries the cached-decoding method: the fixture
    classes define forward_cached themselves; a transformers model gets one
    from _HFCalls (its own cache path, the past converted per call)."""
    return _is_transformers_model(model) or hasattr(type(model), "forward_cached")


def _hf_uses_cache_class(model):
    """Whether the model takes a transformers Cache object as
    past_key_values. transformers 5.x: yes (the legacy tuples are gone).
    4.4x: when the class says so with _supports_cache_class (Llama, Qwen2,
    Gemma-2 ... up to 4.53), or when its forward takes cache_position (every
    Cache-capable decoder from 4.45 on; 4.54 removed the class flag, and
    its Llama/Qwen2/Gemma-2/GPT-2 no longer convert tuples); the others
    (GPT-2 before its port to Cache) take the legacy tuple of (key, value)
    pairs. Without transformers importable (the tool's test, with a
    transformers-shaped fixture model): the legacy tuples."""
    try:
        import transformers
        from transformers.cache_utils import DynamicCache  # noqa: F401
    except ImportError:
        return False
    try:
        major = int(transformers.__version__.split(".")[0])
    except ValueError:
        major = 0
    if major >= 5 or getattr(type(model), "_supports_cache_class", False):
        return True
    import inspect
    try:
        return "cache_position" in inspect.signature(type(model).forward).parameters
    except (TypeError, ValueError):
        return False


def _hf_cache_from_flat(past, legacy):
    """The flat past list [k0, v0, k1, v1, ...] as what the model takes.

    A DynamicCache is built per call and filled with update(k, v, layer):
    the one call that exists with the same meaning in 4.4x (key_cache lists)
    and 5.x (DynamicLayer objects; from_legacy_cache and the constructor's
    data argument came and went between versions). No config is given on
    purpose: with one, 5.x makes sliding-window layers for Gemma-2 and the
    like, which keep only the last window of keys and count their length in
    a Python int (cumulative_length) that a trace would record as a
    constant; plain DynamicLayers keep every position (the contract's
    present = past + new) and the sliding-window mask is still applied,
    by positions, in the attention mask. With P = 0 the entries are empty
    [B, H, 0, D] tensors: the cache then reports length 0 in eager code,
    and in the traced graph (recorded at P > 0) a cat with an empty tensor
    and a size of 0 give the same result."""
    pairs = [(past[2 * i], past[2 * i + 1]) for i in range(len(past) // 2)]
    if legacy:
        return tuple(pairs)
    from transformers.cache_utils import DynamicCache
    cache = DynamicCache()
    for i, (k, v) in enumerate(pairs):
        cache.update(k, v, i)
    return cache


def _hf_flat_from_cache(pkv):
    """The model's returned cache (a Cache of either version, or legacy
    tuples) as the flat present list."""
    if hasattr(pkv, "self_attention_cache"):  # EncoderDecoderCache (cross-attention builds)
        pkv = pkv.self_attention_cache
    layers = getattr(pkv, "layers", None)
    if layers is not None and all(hasattr(lay, "keys") and hasattr(lay, "values") for lay in layers):
        pairs = [(lay.keys, lay.values) for lay in layers]              # 5.x
    elif hasattr(pkv, "key_cache") and hasattr(pkv, "value_cache"):
        pairs = list(zip(pkv.key_cache, pkv.value_cache))               # 4.4x DynamicCache
    elif hasattr(pkv, "to_legacy_cache"):
        pairs = list(pkv.to_legacy_cache())
    else:
        pairs = list(pkv)                                               # legacy tuples
    flat = []
    for pair in pairs:
        flat += [pair[0], pair[1]]
    return flat


class _HFCalls(_CallAs):
    """_CallAs plus forward_cached(input_ids, attention_mask, position_ids,
    past) -> (logits, present) for a transformers model: the contract's
    method (README, "Cached decoding") through the model's own cache path.
    Like forward, it is an instance attribute for the duration of the trace
    (torch.jit.trace_module traces `getattr(model, "forward_cached")`), so
    the root stays the transformers model and both methods call the same
    submodules, which the trace turns into forwardN methods.

    What is passed, and why:
    * attention_mask [B, P+S], 1 = token: what HF generate passes with a
      cache (the mask covers past and new positions); the model makes its
      4D mask from it (eager attention: a float mask, no is_causal shortcut).
    * position_ids [B, S], the daemon's (cumsum(mask) - 1): what HF generate
      computes itself for left-padded rows; without them the model would
      count positions from the cache length (arange(P, P+S)) and a
      left-padded row would get other rotary/learned positions than with
      HF generate.
    * cache_position arange(P, P+S), where the model's forward takes it
      (4.4x; 5.x derives it or has dropped it): the slots of the new
      positions in the cache and the causal part of the mask. Computed from
      the tensors' sizes (P = mask width - S), which the tracer records as
      size ops, so the graph works at every P; the model's own default is
      the same arange but from the cache's bookkeeping.
    * use_cache=True, return_dict=False: the cache comes back as the second
      element of a tuple (ModelOutput is not a traceable output).
    The attention implementation is "eager" for the same reasons as forward
    (_prepare_transformers): SDPA would hide the pattern site and take
    shortcuts (is_causal when nothing is padded) that a trace records."""

    def __enter__(self):
        model = super().__enter__()
        cls_forward = type(model).forward
        legacy = not _hf_uses_cache_class(model)
        import inspect
        try:
            params = inspect.signature(cls_forward).parameters
        except (TypeError, ValueError):
            params = {}
        with_cache_position = "cache_position" in params

        def forward_cached(input_ids, attention_mask, position_ids, past):
            import torch
            kw = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                      past_key_values=_hf_cache_from_flat(past, legacy), use_cache=True,
                      return_dict=False)
            if with_cache_position:
                s = input_ids.shape[1]
                p = attention_mask.shape[1] - s
                kw["cache_position"] = torch.arange(p, p + s, device=input_ids.device)
            out = cls_forward(model, **kw)
            if hasattr(out, "logits"):  # a version that ignores return_dict=False
                logits, pkv = out.logits, out.past_key_values
            else:
                logits, pkv = out[0], out[1]
            return logits, _hf_flat_from_cache(pkv)

        model.forward_cached = forward_cached
        return model

    def __exit__(self, *exc):
        self.model.__dict__.pop("forward_cached", None)
        super().__exit__(*exc)


def eager_cached(model, ids, mask, pos, past):
    """forward_cached on the eager model: the fixture classes' own method,
    or _HFCalls's for a transformers model."""
    import torch
    with torch.no_grad():
        if _is_transformers_model(model):
            with _HFCalls(model) as m:
                return m.forward_cached(ids, mask, pos, past)
        return model.forward_cached(ids, mask, pos, past)


CACHED_EXAMPLE_PAST = 3


def CACHED_EXAMPLE_SHAPE(example):  # noqa: N802 (read like the constant above)
    """(P, S) of forward_cached's trace example."""
    return CACHED_EXAMPLE_PAST, int(example[0].shape[1])


def cached_example(torch, example, layout, dtype, device):
    """forward_cached's trace example from forward's: the same rows with a
    past of 3 positions, so that one graph serves P = 0 and P > 0 (a cache
    path with a branch on "is the cache empty" records its P > 0 side, which
    also computes the right thing with an empty past: a cat with an empty
    tensor, a length of 0)."""
    ids, mask = example
    b, s = ids.shape
    layers, heads, dim = layout
    past_len = CACHED_EXAMPLE_PAST
    full = torch.cat((torch.ones(b, past_len, dtype=mask.dtype, device=device), mask), dim=1)
    pos = (full.cumsum(-1) - 1).masked_fill(full == 0, 1)[:, past_len:]
    past = [torch.zeros(b, heads, past_len, dim, dtype=dtype, device=device)
            for _ in range(2 * layers)]
    return ids, full, pos, past


def make_archive(model, kind, example, cached=None):
    """A ScriptModule: torch.jit.trace or torch.jit.script of the model;
    with `cached` (forward_cached's example inputs) a trace of that method
    too (trace_module: its submodule calls become forwardN methods, which
    the daemon hooks as forward)."""
    import torch
    if kind == "script":
        if _is_transformers_model(model):
            raise ExportError("--export script: transformers models are not scriptable "
                              "(their forwards take **kwargs and return dataclasses); use trace")
        return torch.jit.script(model)
    if cached is not None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            # trace_module scripts an @torch.jit.export method instead of
            # tracing it: the marker is lifted for the trace.
            fn = getattr(type(model), "forward_cached", None)
            mark = fn.__dict__.pop("_torchscript_modifier", None) if fn is not None else None
            try:
                methods = {"forward": example, "forward_cached": cached}
                if _is_transformers_model(model):
                    with _HFCalls(model) as m:
                        return torch.jit.trace_module(m, methods, check_trace=False, strict=False)
                return torch.jit.trace_module(model, methods, check_trace=False, strict=False)
            except Exception as e:
                raise ExportError("torch.jit.trace_module of %s failed (torch %s): %s: %s"
                                  % (type(model).__name__, torch.__version__, type(e).__name__,
                                     str(e).strip().splitlines()[0] if str(e).strip() else ""))
            finally:
                if mark is not None:
                    fn._torchscript_modifier = mark
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about every Python bool/int it records; the
        # parity check below is what decides whether the trace generalises.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        try:
            with _NoExports(model):
                if _is_transformers_model(model):
                    with _CallAs(model) as m:
                        return torch.jit.trace(m, example, check_trace=False)
                return torch.jit.trace(model, example, check_trace=False)
        except Exception as e:
            raise ExportError("torch.jit.trace of %s failed (torch %s): %s: %s"
                              % (type(model).__name__, torch.__version__, type(e).__name__,
                                 str(e).strip().splitlines()[0] if str(e).strip() else ""))


# --------------------------------------------------------------------------
# parity


def parity_inputs(torch, vocab, device, max_seq):
    """Prompts for the parity check: (name, ids, mask). The trace example is
    left-padded so that the general masking path is what gets traced (a
    model that skips its mask when it is all ones would otherwise record the
    shortcut); the checks use other shapes, so a trace that baked in a
    length or batch size fails them."""
    g = torch.Generator().manual_seed(20240)
    lo = 1 if vocab > 1 else 0

    def ids(b, s):
        return torch.randint(lo, vocab, (b, s), generator=g).to(device)

    def mask(b, s, pads):
        m = torch.ones(b, s, dtype=torch.long)
        for r, p in enumerate(pads):
            m[r, :p] = 0
        return m.to(device)

    s = lambda n: max(2, min(n, max_seq))  # noqa: E731
    example = (ids(2, s(6)), mask(2, s(6), [0, 2]))
    checks = [("1x%d" % s(5), ids(1, s(5)), mask(1, s(5), [0])),
              ("3x%d left-padded" % s(11), ids(3, s(11)), mask(3, s(11), [0, 3, s(11) - 1])),
              ("2x%d" % s(32), ids(2, s(32)), mask(2, s(32), [0, 0]))]
    return example, checks


def parity(torch, eager, loaded, checks):
    """[(name, max abs diff, max abs eager logit)] over real (unmasked) tokens."""
    rows = []
    with torch.no_grad():
        # TorchScript's profiling executor optimises a graph on its second
        # and third runs (GPT-2's addmm becomes mm + add, ~1e-6 apart): check
        # the optimised graph, the one the daemon will run.
        for _ in range(2):
            loaded(checks[0][1], checks[0][2])
        for name, ids, mask in checks:
            a = call_eager(eager, ids, mask).float()
            b = loaded(ids, mask)
            b = (b[0] if isinstance(b, (tuple, list)) else b).float()
            if tuple(a.shape) != tuple(b.shape):
                raise ExportError("parity %s: archive logits %s, eager %s"
                                  % (name, list(b.shape), list(a.shape)))
            real = mask.bool()
            d = (a - b).abs()[real]
            if not torch.isfinite(a[real]).all():
                raise ExportError("parity %s: the eager model gives non-finite logits" % name)
            rows.append((name, float(d.max()) if d.numel() else 0.0, float(a[real].abs().max())))
    return rows


# --------------------------------------------------------------------------
# writing the entry


def cached_parity(torch, eager, loaded, checks, layout, dtype, device, steps=4):
    """Greedy decoding through the archive's forward_cached against the eager
    model's (the fixture classes' method, or the model's own cache path
    through _HFCalls), the daemon's way: left-padded prompts, positions from
    the mask, an empty past first (P = 0, S = the prompt), then one token a
    step (S = 1) at growing P. The trace example has P = 3, S = 6, so every
    step runs the graph at a past length other than the traced one: a trace
    that recorded the past length as a Python int (the cache's length,
    a cache_position, a mask width) fails here.

    Returns {"trace": worst relative logit difference archive vs eager,
    "where": (prompt, step, P, S) of it, "cache": worst relative difference
    of the eager cached step vs the eager model run on the whole sequence
    with an empty past (a wrong conversion of the past, such as keys and
    values swapped or a layer out of order, shows here and not in "trace"),
    "shape": None or the first present tensor of the wrong shape}."""
    layers, heads, dim = layout
    res = {"trace": 0.0, "where": None, "cache": 0.0, "shape": None}

    def empty(b):
        return [torch.zeros(b, heads, 0, dim, dtype=dtype, device=device) for _ in range(2 * layers)]

    def rel(a, c):
        return float((a - c).abs().max()) / max(float(a.abs().max()), 1e-30)

    with torch.no_grad():
        for pname, ids, mask in checks:
            b = ids.shape[0]
            pasts = [empty(b), empty(b)]
            step_ids, full, seq = ids, mask, ids
            for step in range(steps):
                s = step_ids.shape[1]
                pos_all = (full.cumsum(-1) - 1).masked_fill(full == 0, 1)
                pos = pos_all[:, -s:]
                a, pasts[0] = eager_cached(eager, step_ids, full, pos, pasts[0])
                c, pasts[1] = loaded.forward_cached(step_ids, full, pos, pasts[1])
                want = (b, heads, full.shape[1], dim)
                for n, t in enumerate(list(pasts[0]) + list(pasts[1])):
                    if res["shape"] is None and (len(pasts[0]) != 2 * layers or len(pasts[1]) != 2 * layers
                                                 or tuple(t.shape) != want):
                        res["shape"] = ("%s step %d: present has %d/%d tensors, #%d is %s; expected "
                                        "%d of %s" % (pname, step, len(pasts[0]), len(pasts[1]), n,
                                                      list(t.shape), 2 * layers, list(want)))
                la, lc = a[:, -1].float(), c[:, -1].float()
                r = rel(la, lc)
                if res["where"] is None or r > res["trace"]:
                    res["trace"], res["where"] = r, (pname, step, full.shape[1] - s, s)
                if step > 0:  # step 0 is itself the whole sequence with an empty past
                    whole, _ = eager_cached(eager, seq, full, pos_all, empty(b))
                    res["cache"] = max(res["cache"], rel(whole[:, -1].float(), la))
                step_ids = la.argmax(-1, keepdim=True)
                seq = torch.cat((seq, step_ids), dim=1)
                full = torch.cat((full, torch.ones_like(step_ids)), dim=1)
    return res


def export_model(model, repo, name, family=None, kind="trace", device="cpu", dtype=None,
                 max_batch=DEFAULT_MAX_BATCH, max_seq_len=None, tolerance=None, tokenizer=None,
                 pad_token_id=None, description=None, hf_config=None, source=None,
                 hf_torchscript=False, force=False, _perturb=None):
    """Exports an in-memory model (transformers or fixture classes) to
    REPO/NAME/. Returns the model.json dict. Raises ExportError on refusal."""
    import torch
    if not name or name.startswith(".") or "/" in name:
        raise ExportError("name '%s': must be a plain directory name not starting with '.'" % name)
    cls = type(model).__name__
    cfg = hf_config if hf_config is not None else hf_config_dict(model)
    fam = family_of(cls, cfg.get("model_type"))
    if family is not None and family != fam:
        raise ExportError("family '%s' was asked for, but %s is %s" % (family, cls, fam))
    if _is_transformers_model(model):
        _prepare_transformers(model, hf_torchscript)
    if dtype is not None:
        model = model.to(_torch_dtype(dtype))
    pdt = next(model.parameters()).dtype
    dtype = str(pdt).replace("torch.", "")
    tol = tolerance if tolerance is not None else DEFAULT_TOLERANCE.get(dtype, 1e-4)
    dev = torch.device(device)
    model = model.to(dev).eval()
    vocab = (model.get_output_embeddings().weight.shape[0]
             if hasattr(model, "get_output_embeddings") and model.get_output_embeddings() is not None
             else cfg.get("vocab_size"))
    cfg_max = cfg.get("max_position_embeddings") or cfg.get("n_positions") or 2048
    # Never past the position table: a learned one (GPT-2's wpe, 1024 rows)
    # would be indexed out of range by a longer request, on a GPU a
    # device-side assert that ends every later CUDA call of the daemon.
    limit_seq = min(int(max_seq_len), int(cfg_max)) if max_seq_len else int(cfg_max)
    example, checks = parity_inputs(torch, int(cfg.get("vocab_size") or vocab), dev, int(cfg_max))

    summary = summary_config(cfg, int(vocab or 0))
    hf = _is_transformers_model(model)
    layout, no_cache, cp = None, None, None
    if has_cached(model):
        layout = (summary.get("n_layers"), summary.get("n_kv_heads"), summary.get("head_dim"))
        if None in layout:
            if not hf:
                raise ExportError("forward_cached: the config does not say the KV layout "
                                  "(layers, kv heads, head dim): %s" % (layout,))
            no_cache = "the config does not say the KV layout (layers, kv heads, head dim): %s" % (layout,)
            layout = None
    dest = os.path.join(repo, name)
    os.makedirs(repo, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".%s.tmp" % name, dir=repo)
    try:
        # A transformers model whose cached path does not trace correctly is
        # exported without it (a second round, forward alone) rather than
        # with a wrong method; the fixture classes define the method
        # themselves, so there a failure is refused.
        while True:
            t0 = time.monotonic()
            try:
                archive = make_archive(model, kind, example,
                                       cached_example(torch, example, layout, pdt, dev) if layout else None)
            except ExportError as e:
                if not (hf and layout):
                    raise
                no_cache = "tracing forward_cached failed: %s" % e
                log("kv_cache: not exported: %s; tracing forward alone" % no_cache)
                layout = None
                continue
            t_export = time.monotonic() - t0
            if _perturb is not None:  # tests: an archive that does not match its model
                _perturb(archive)
            torch.jit.save(archive, os.path.join(tmp, "model.pt"))
            loaded = torch.jit.load(os.path.join(tmp, "model.pt"), map_location=dev).eval()
            rows = parity(torch, model, loaded, checks)
            worst = 0.0
            for pname, diff, scale in rows:
                rel = diff / max(scale, 1e-30)
                worst = max(worst, rel)
                log("parity %-22s max abs logit difference %.3g (max |logit| %.3g, relative %.3g)"
                    % (pname, diff, scale, rel))
            if worst > tol:
                raise ExportError("refused: the archive differs from the eager model by %.3g relative "
                                  "(bound %.3g for %s); nothing written" % (worst, tol, dtype))
            if layout is None:
                break
            try:
                cp = cached_parity(torch, model, loaded, checks, layout, pdt, dev)
            except Exception as e:  # eager or archive failing at another P, S than traced
                if not hf:
                    raise
                no_cache = "forward_cached failed in the greedy check: %s: %s" % (
                    type(e).__name__, (str(e).strip().splitlines() or [""])[0])
                log("kv_cache: not exported: %s; tracing forward alone" % no_cache)
                layout, cp = None, None
                continue
            log("parity cached decoding     max relative logit difference %.3g (greedy, 4 steps; "
                "worst at %s step %d, past length %d, %d new); eager cached step vs whole "
                "sequence %.3g" % ((cp["trace"],) + tuple(cp["where"]) + (cp["cache"],)))
            problem = None
            if cp["shape"]:
                problem = "forward_cached returns a present list of the wrong shape (%s)" % cp["shape"]
            elif cp["cache"] > tol:
                problem = ("the eager cached step differs from the whole sequence recomputed by %.3g "
                           "relative (bound %.3g): the past is not carried over correctly"
                           % (cp["cache"], tol))
            elif cp["trace"] > tol:
                pn, st, pl, sl = cp["where"]
                problem = ("the archive's forward_cached differs from the eager model by %.3g relative "
                           "(bound %.3g), worst at %s step %d: past length P = %d, %d new positions; "
                           "the trace was recorded at P = %d, S = %d, so it likely holds a Python int "
                           "(such as the past length) as a constant"
                           % ((cp["trace"], tol, pn, st, pl, sl) + CACHED_EXAMPLE_SHAPE(example)))
            if problem is None:
                break
            if not hf:
                raise ExportError("refused: %s; nothing written" % problem)
            no_cache = problem
            log("kv_cache: not exported: %s; tracing forward alone" % problem)
            layout, cp = None, None
        # The forward contract, as the daemon will call it: one token, no mask
        # argument for a scripted archive, an all-ones mask for a traced one.
        with torch.no_grad():
            one = torch.zeros(1, 1, dtype=torch.long, device=dev)
            out = loaded(one, torch.ones_like(one)) if kind == "trace" else loaded(one)
            out = out[0] if isinstance(out, (tuple, list)) else out
        if out.dim() != 3 or tuple(out.shape[:2]) != (1, 1):
            raise ExportError("the archive returns %s for one token; expected [1, 1, vocab]"
                              % list(out.shape))
        eos = _eos_token_id(model, cfg)
        if pad_token_id is None:
            pad_token_id, pad_from = _pad_token(cfg)
        else:
            pad_from = "argument"
        spec = {
            "family": fam,
            "export": kind,
            "device": str(dev),
            "dtype": dtype,
            "config": summary_config(cfg, int(out.shape[-1])),
            "limits": {"max_batch": int(max_batch), "max_seq_len": limit_seq},
            "pad_token_id": int(pad_token_id),
            **({"kv_cache": {"method": "forward_cached", "layers": int(layout[0]),
                             "kv_heads": int(layout[1]), "head_dim": int(layout[2])}}
               if layout is not None else {}),
            **({"eos_token_id": eos} if eos is not None else {}),
            "description": description or "%s exported by tools/nnedit_export.py" % cls,
            "export_info": {
                "class": cls, "pad_token_from": pad_from,
                "torch": torch.__version__, "source": source or "in-memory model",
                "seconds": round(t_export, 3), "tolerance": tol,
                "parity": [{"prompt": p, "max_abs_diff": d, "max_abs_logit": s}
                           for p, d, s in rows]},
        }
        if cp is not None:
            spec["export_info"]["cached_parity"] = {
                "relative": cp["trace"], "worst_at": list(cp["where"]),
                "cached_vs_whole_sequence": cp["cache"]}
        if no_cache is not None:
            spec["export_info"]["kv_cache"] = "not exported: " + no_cache
        if kind == "trace" and dev.type != "cpu":
            spec["export_info"]["note"] = ("traced on %s: the archive's factory ops (arange, "
                                           "zeros) are fixed to that device" % dev)
        with open(os.path.join(tmp, "model.json"), "w") as f:
            json.dump(spec, f, indent=1)
            f.write("\n")
        if tokenizer and os.path.isfile(tokenizer):
            shutil.copyfile(tokenizer, os.path.join(tmp, "tokenizer.json"))
        if os.path.exists(dest):
            if not force:
                raise ExportError("%s exists (--force replaces it)" % dest)
            shutil.rmtree(dest)
        os.rename(tmp, dest)
        tmp = None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    log("wrote %s (%s, %s, %s, %s; worst relative parity %.3g; %s)"
        % (dest, fam, kind, spec["device"], dtype, worst,
           "kv_cache forward_cached" if "kv_cache" in spec else
           "no kv_cache: " + (no_cache or "the model has no cached method")))
    return spec


def _eos_token_id(model, cfg):
    """model.json's eos_token_id: the generation config's (what HF generate
    stops at; some checkpoints list several ids there and one in config.json),
    else the config's; an int or a list of ints, None when neither says."""
    gc = getattr(model, "generation_config", None)
    for v in (getattr(gc, "eos_token_id", None) if gc is not None else None, cfg.get("eos_token_id")):
        if isinstance(v, (list, tuple)):
            ids = [int(x) for x in v if isinstance(x, int) and not isinstance(x, bool) and x >= 0]
            if ids:
                return ids[0] if len(ids) == 1 else ids
        elif isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            return int(v)
    return None


def _pad_token(cfg):
    """The pad id: the config's, else its eos (what HF users pad GPT-2 and
    Llama with), else 0."""
    for key in ("pad_token_id", "eos_token_id"):
        v = cfg.get(key)
        if isinstance(v, list):
            v = v[0] if v else None
        if isinstance(v, int) and v >= 0:
            return v, "config %s" % key
    return 0, "default"


def export_folder(folder, repo, name=None, impl="auto", dtype="float32", **kw):
    """Exports an HF model folder; see export_model for the keywords."""
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise ExportError("%s: no config.json (not a Hugging Face model folder)" % folder)
    model, family, cfg, how = build_from_folder(folder, impl, dtype)
    tok = os.path.join(folder, "tokenizer.json")
    return export_model(model, repo, name or os.path.basename(os.path.normpath(folder)),
                        family=family, dtype=dtype, hf_config=cfg,
                        tokenizer=tok if os.path.isfile(tok) else None,
                        source="%s (%s)" % (os.path.abspath(folder), how), **kw)


# --------------------------------------------------------------------------
# fixture checkpoints


FIXTURE_SIZES = {
    # tiny: the test fixtures' sizes; small: GPT-2-small-like widths, for the
    # rehearsal's benchmarks
    "tiny": {"gpt2": dict(vocab_size=1000, n_positions=64, n_embd=64, n_layer=2, n_head=4),
             "llama": dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                           rope_theta=10000.0, rms_norm_eps=1e-6),
             "gpt_neox": dict(vocab_size=1000, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                              num_attention_heads=4, rotary_pct=0.25, max_position_embeddings=256)},
    "small": {"gpt2": dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12),
              "llama": dict(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                            num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=2048,
                            rope_theta=10000.0, rms_norm_eps=1e-6),
              "gpt_neox": dict(vocab_size=50304, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                               num_attention_heads=12, rotary_pct=0.25, max_position_embeddings=2048)},
}
_ARCH = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "gpt_neox": "GPTNeoXForCausalLM"}


def fixture_checkpoint(family, out, fmt="safetensors", size="tiny", seed=1234):
    """Writes an HF-format folder (config.json + weights) of a fixture-class
    model with seeded random weights. Returns the model (eager, float32)."""
    import torch
    hf = _fixture_module()
    if family not in _ARCH:
        raise ExportError("fixture-checkpoint: family '%s' (the classes cover %s)"
                          % (family, ", ".join(_ARCH)))
    args = dict(FIXTURE_SIZES[size][family])
    cfg = {"model_type": family, "architectures": [_ARCH[family]], "torch_dtype": "float32"}
    cfg.update(args)
    if family == "gpt2":
        cfg.update(n_inner=None, activation_function="gelu_new", layer_norm_epsilon=1e-5,
                   tie_word_embeddings=True, bos_token_id=args["vocab_size"] - 1,
                   eos_token_id=args["vocab_size"] - 1)
        model = hf.GPT2LMHeadModel(hf.GPT2Config(**args))
    elif family == "llama":
        cfg.update(hidden_act="silu", tie_word_embeddings=False, attention_bias=False,
                   mlp_bias=False, rope_scaling=None, pad_token_id=0, eos_token_id=2)
        model = hf.LlamaForCausalLM(hf.LlamaConfig(**args))
    else:
        cfg.update(hidden_act="gelu", use_parallel_residual=True, rotary_emb_base=10000.0,
                   layer_norm_eps=1e-5, attention_bias=True, tie_word_embeddings=False,
                   eos_token_id=0)
        model = hf.GPTNeoXForCausalLM(hf.GPTNeoXConfig(**args))
    hf.init_weights(model, seed)
    model.eval()
    os.makedirs(out, exist_ok=True)
    # Parameters only, a tied one once (as transformers saves them); buffers
    # are rebuilt by the classes.
    sd, seen = {}, set()
    for k, p in model.named_parameters():
        if id(p) not in seen:
            seen.add(id(p))
            sd[k] = p.detach()
    if fmt == "safetensors":
        write_safetensors(os.path.join(out, "model.safetensors"), sd, {"format": "pt"})
    elif fmt == "bin":
        torch.save(sd, os.path.join(out, "pytorch_model.bin"))
    else:
        raise ExportError("fixture-checkpoint: --format %s (safetensors or bin)" % fmt)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return model


# --------------------------------------------------------------------------
# command line


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="nnedit_export.py", description=__doc__.split("\n\n")[0],
        epilog=("Without transformers importable (Debian, the project's CI) models are "
                "built from tests/fixtures/hfmodels.py, which covers gpt2, llama and "
                "gpt_neox checkpoints; with it, from transformers (eager attention)."),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    ex = sub.add_parser("export", help="HF model folder -> REPO/NAME/ (model.pt, model.json, tokenizer.json)",
                        epilog=("--impl auto uses transformers when importable, else the fixture "
                                "classes (tests/fixtures/hfmodels.py: gpt2, llama, gpt_neox), "
                                "which is what CI here uses."))
    ex.add_argument("src", help="Hugging Face model folder (config.json + weights [+ tokenizer.json])")
    ex.add_argument("--repo", required=True, help="model repository (nneditd --model-repo)")
    ex.add_argument("--name", help="entry name (default: the folder's name)")
    ex.add_argument("--export", choices=("trace", "script"), default="trace",
                    help="torch.jit.trace (default; any transformers model) or torch.jit.script "
                         "(fixture classes only)")
    ex.add_argument("--impl", choices=("auto", "transformers", "fixture"), default="auto")
    ex.add_argument("--device", default="cpu",
                    help="where to trace and check (a traced archive is fixed to it; default cpu)")
    ex.add_argument("--dtype", default="float32", help="float32 (default), bfloat16, float16, float64")
    ex.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH)
    ex.add_argument("--max-seq-len", type=int, help="default: the config's position limit")
    ex.add_argument("--tolerance", type=float,
                    help="max relative logit difference accepted (default %s)"
                         % ", ".join("%s %g" % kv for kv in DEFAULT_TOLERANCE.items()))
    ex.add_argument("--pad-token-id", type=int, help="default: config pad, else eos, else 0")
    ex.add_argument("--hf-torchscript", action="store_true",
                    help="set transformers' config.torchscript (clones tied weights; off by default)")
    ex.add_argument("--force", action="store_true", help="replace an existing entry")
    fx = sub.add_parser("fixture-checkpoint", help="write an HF-format folder of a fixture-class model")
    fx.add_argument("--family", required=True, choices=sorted(_ARCH))
    fx.add_argument("--out", required=True)
    fx.add_argument("--format", choices=("safetensors", "bin"), default="safetensors")
    fx.add_argument("--size", choices=sorted(FIXTURE_SIZES), default="tiny")
    fx.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args(argv)
    if a.cmd is None:
        ap.print_help()
        return 2
    try:
        if a.cmd == "fixture-checkpoint":
            fixture_checkpoint(a.family, a.out, a.format, a.size, a.seed)
            log("wrote %s (%s, %s, %s)" % (a.out, a.family, a.size, a.format))
            return 0
        export_folder(a.src, a.repo, a.name, impl=a.impl, dtype=a.dtype, kind=a.export,
                      device=a.device, max_batch=a.max_batch, max_seq_len=a.max_seq_len,
                      tolerance=a.tolerance, pad_token_id=a.pad_token_id,
                      hf_torchscript=a.hf_torchscript, force=a.force)
        return 0
    except ExportError as e:
        print("nnedit_export: error: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
