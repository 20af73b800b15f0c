"""Python references for edits: the eager Hugging Face-layout model with the
archive's weights, and forward hooks that do what an edit does.

The eager model is rebuilt from tests/fixtures (the same classes and
configuration that wrote the archive) and loaded with the archive's own
state dict, so weights are identical; an edit is then replayed with
register_forward_hook / register_forward_pre_hook, the way nnsight and
TransformerLens users do it.
"""

import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))

import gen_fixtures  # noqa: E402
import hfmodels  # noqa: E402

FIXTURES = os.environ.get("NNE_FIXTURES_DIR", "")
_SPEC_BY_FAMILY = {"gpt2": "gpt2", "llama": "llama", "gpt_neox": "neox"}


def eager_model(name):
    """The eager model of fixture `name` with the archive's weights."""
    with open(os.path.join(FIXTURES, name, "model.json")) as f:
        family = json.load(f)["family"]
    spec = gen_fixtures.model_specs(hfmodels)[_SPEC_BY_FAMILY[family]]
    model = spec["cls"](spec["cfg"])
    archive = torch.jit.load(os.path.join(FIXTURES, name, "model.pt"), map_location="cpu")
    state = archive.state_dict()
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Non-persistent buffers (causal masks, rotary frequencies) are not in an
    # eager state dict but are in the archive: copy those by hand.
    buffers = dict(model.named_buffers())
    for k in unexpected:
        assert k in buffers, k
        buffers[k].copy_(state[k])
    assert all(k in buffers for k in missing), missing
    model.eval()
    return model


def run(model, ids, hooks=()):
    """Logits with the given (module path, kind, fn) hooks installed:
    kind "pre" → forward_pre_hook(module, args) -> args, "out" →
    forward_hook(module, args, output) -> output."""
    modules = dict(model.named_modules())
    handles = []
    try:
        for path, kind, fn in hooks:
            m = modules[path]
            if kind == "pre":
                handles.append(m.register_forward_pre_hook(fn))
            else:
                handles.append(m.register_forward_hook(fn))
        with torch.no_grad():
            return model(torch.tensor(ids)).numpy()
    finally:
        for h in handles:
            h.remove()


def first(output):
    return output[0] if isinstance(output, tuple) else output


def replace_first(output, value):
    return (value,) + tuple(output[1:]) if isinstance(output, tuple) else value


# ---- standard sites on the eager model (traces) ------------------------------
#
# The eager counterpart of the standard sites a trace reads and writes
# (daemon/names/<family>.json): site suffix -> (module path template, "in" |
# "out", positional input / output-tuple index). "out" index 1 of an
# attention module is its attention weights, i.e. the softmax output that
# the daemon exposes as the node site `layers.{i}.self_attn.pattern`; it can
# only be captured here (the module returns it after using it).

SITES = {
    "gpt2": {
        "resid_pre": ("transformer.h.{i}", "in", 0),
        "resid_post": ("transformer.h.{i}", "out", 0),
        "resid_mid": ("transformer.h.{i}.ln_2", "in", 0),
        "attn_out": ("transformer.h.{i}.attn", "out", 0),
        "self_attn.pattern": ("transformer.h.{i}.attn", "out", 1),
        "self_attn.z": ("transformer.h.{i}.attn.c_proj", "in", 0),
        "mlp_out": ("transformer.h.{i}.mlp", "out", 0),
    },
    "llama": {
        "resid_pre": ("model.layers.{i}", "in", 0),
        "resid_post": ("model.layers.{i}", "out", 0),
        "resid_mid": ("model.layers.{i}.post_attention_layernorm", "in", 0),
        "attn_out": ("model.layers.{i}.self_attn", "out", 0),
        "self_attn.pattern": ("model.layers.{i}.self_attn", "out", 1),
        "self_attn.z": ("model.layers.{i}.self_attn.o_proj", "in", 0),
        "mlp_out": ("model.layers.{i}.mlp", "out", 0),
    },
    "gpt_neox": {
        "resid_pre": ("gpt_neox.layers.{i}", "in", 0),
        "resid_post": ("gpt_neox.layers.{i}", "out", 0),
        "attn_out": ("gpt_neox.layers.{i}.attention", "out", 0),
        "self_attn.pattern": ("gpt_neox.layers.{i}.attention", "out", 1),
        "self_attn.z": ("gpt_neox.layers.{i}.attention.dense", "in", 0),
        "mlp_out": ("gpt_neox.layers.{i}.mlp", "out", 0),
    },
}

# Standard module name -> eager path.
MODULES = {
    "gpt2": {"ln_final": "transformer.ln_f", "lm_head": "lm_head"},
    "llama": {"ln_final": "model.norm", "lm_head": "lm_head"},
    "gpt_neox": {"ln_final": "gpt_neox.final_layer_norm", "lm_head": "embed_out"},
}


def family_of(name):
    """The model.json family of fixture `name` ("gpt2", "llama", "gpt_neox")."""
    with open(os.path.join(FIXTURES, name, "model.json")) as f:
        return json.load(f)["family"]


def site_target(family, site):
    """"layers.3.resid_post" -> ("transformer.h.3", "out", 0) for `family`."""
    parts = site.split(".", 2)
    if len(parts) != 3 or parts[0] != "layers" or not parts[1].isdigit():
        raise KeyError(site)
    path, kind, index = SITES[family][parts[2]]
    return path.format(i=int(parts[1])), kind, index


def module(model, family, std):
    """The eager submodule for a standard module name ("ln_final", "lm_head")."""
    return dict(model.named_modules())[MODULES[family][std]]


def run_sites(model, family, ids, mask=None, edits=(), capture=()):
    """Runs the eager model with edits at standard sites and captures values.

    edits: (site, fn) pairs; fn(value) -> new value (a tensor), applied in
    order with forward (pre-)hooks. capture: sites whose value is recorded
    (cloned) the first time its module runs, after the edits at that site.
    Returns (logits ndarray, {site: ndarray})."""
    modules = dict(model.named_modules())
    handles = []
    captured = {}

    def out_hook(index, fn):
        def hook(m, args, output):
            if isinstance(output, tuple):
                v = fn(output[index])
                return None if v is None else output[:index] + (v,) + output[index + 1:]
            assert index == 0
            return fn(output)
        return hook

    def pre_hook(index, fn):
        def hook(m, args):
            v = fn(args[index])
            return None if v is None else args[:index] + (v,) + args[index + 1:]
        return hook

    def install(site, fn):
        path, kind, index = site_target(family, site)
        m = modules[path]
        if kind == "in":
            handles.append(m.register_forward_pre_hook(pre_hook(index, fn)))
        else:
            handles.append(m.register_forward_hook(out_hook(index, fn)))

    def recorder(site):
        def fn(v):
            if site not in captured:
                captured[site] = v.detach().clone().numpy()
            return None
        return fn

    try:
        for site, fn in edits:
            if site.endswith("self_attn.pattern"):
                raise ValueError("the attention weights output cannot be edited by a hook")
            install(site, fn)
        for site in capture:
            install(site, recorder(site))
        with torch.no_grad():
            args = [torch.tensor(ids)]
            if mask is not None:
                args.append(torch.tensor(mask))
            logits = model(*args).numpy()
    finally:
        for h in handles:
            h.remove()
    return logits, captured
