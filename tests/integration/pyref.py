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
