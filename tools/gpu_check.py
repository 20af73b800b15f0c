#!/usr/bin/env python3
"""gpu_check.py — the checks of deploy/gpu-check.sh (which builds nneditd and
calls this): export models with tools/nnedit_export.py, serve them with
nneditd on --device, compare against the same models in eager PyTorch on the
same device, time Forward and Trace against the eager forward.

  gpu_check.py --device cpu|cuda[:N] --nneditd PATH --py-gen DIR --out DIR
               [--results DIR] [--budget SEC] [--models LIST] [--quick]

Models. With transformers: real architectures at real sizes with random
weights (no hub): gpt2 (GPT-2 small, via a saved HF folder: the folder path of
the tool), gpt2-bf16, llama (Llama-3.2-1B's config), qwen2 (Qwen2-0.5B's),
gemma2 (Gemma-2-2B's, bfloat16); in-memory exports for all but gpt2. Without
transformers (the CPU rehearsal on Debian): the fixture classes as HF folders
(gpt2, llama, gpt_neox tiny; llama-bf16, the tiny llama in bfloat16; gpt2-small
for the benchmark).

Per model: the daemon loads it; Describe names the family with every standard
site available; Forward logits (plain and left-padded) and 12 saves
(layers.{i}.resid_post) equal eager's within the bound (float32: 1e-4
relative to the largest logit; bfloat16: 3e-2); an edit set (scale
layers.0.mlp_out by 0.5) equals an eager forward hook doing the same; a
Trace that halves one layer's residual and saves the next layer's input
equals eager with that hook; Generate greedy, 16 new tokens for two prompts
(one left-padded) with the KV cache as model.json says, and one unpadded
prompt with CACHE_MODE_OFF, against an eager greedy loop with the model's
own cache on the same device (transformers: its forward with
past_key_values; fixture classes: forward_cached, as
tests/fixtures/reference_generate.py): float32 token sequences equal;
bfloat16 equal, or parting only at a near-tie (eager's top-2 logits within
the 3e-2 bound), with the leading tokens that matched. Then the benchmark
(GPT-2-small-sized model): eager forward in this process vs Forward and a
12-save Trace over loopback, at batch 8 x 512 (cuda) or 1 x 128 (cpu), the
fixed overhead of a one-token Forward, and greedy Generate throughput,
new tokens/s of the daemon vs the eager loop (8 x 128 prompt, 64 new on
cuda; 1 x 32, 16 new on cpu).

Writes RESULTS/check-summary.txt and .json after every model (a run stopped
by a time limit keeps what it found); exits 1 when a check failed or was
skipped for want of time (the benchmark's targets are reported, never
failed on).
"""

import argparse
import json
import os
import statistics
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

BOUND = {"float32": 1e-4, "bfloat16": 3e-2, "float16": 5e-3}

# Real configurations (published config.json values), random weights.
REAL = {
    "gpt2": dict(model_type="gpt2", vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12,
                 n_head=12),
    "llama": dict(model_type="llama", vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                  num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, head_dim=64,
                  max_position_embeddings=131072, rope_theta=500000.0, rms_norm_eps=1e-5,
                  tie_word_embeddings=True, bos_token_id=128000, eos_token_id=128001,
                  rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                "original_max_position_embeddings": 8192, "rope_type": "llama3"}),
    "qwen2": dict(model_type="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864,
                  num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                  max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                  tie_word_embeddings=True, eos_token_id=151643),
    "gemma2": dict(model_type="gemma2", vocab_size=256000, hidden_size=2304, intermediate_size=9216,
                   num_hidden_layers=26, num_attention_heads=8, num_key_value_heads=4, head_dim=256,
                   max_position_embeddings=8192, rms_norm_eps=1e-6, rope_theta=10000.0,
                   attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
                   query_pre_attn_scalar=256, sliding_window=4096, pad_token_id=0, eos_token_id=1,
                   hidden_activation="gelu_pytorch_tanh"),
}
# name -> (config key, dtype, how: "folder" = save_pretrained then the tool's folder path)
TRANSFORMERS_MODELS = {"gpt2": ("gpt2", "float32", "folder"), "gpt2-bf16": ("gpt2", "bfloat16", "memory"),
                       "llama": ("llama", "float32", "memory"), "qwen2": ("qwen2", "float32", "memory"),
                       "gemma2": ("gemma2", "bfloat16", "memory")}
FIXTURE_MODELS = {"gpt2": ("gpt2", "tiny"), "llama": ("llama", "tiny"), "gpt_neox": ("gpt_neox", "tiny"),
                  "llama-bf16": ("llama", "tiny", "bfloat16"), "gpt2-small": ("gpt2", "small")}
BENCH_MODEL = {"transformers": "gpt2", "fixture": "gpt2-small"}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--nneditd", required=True)
    ap.add_argument("--py-gen", required=True)
    ap.add_argument("--out", required=True, help="checkpoints and the model repository")
    ap.add_argument("--results", help="check-summary.{txt,json}, nneditd.log (default: --out)")
    ap.add_argument("--budget", type=float, default=0,
                    help="seconds for everything here (0: none); what no longer fits is skipped")
    ap.add_argument("--models", default="", help="comma list (default: all of the kind available)")
    ap.add_argument("--quick", action="store_true", help="fewer benchmark rounds")
    ap.add_argument("--threads", type=int, default=0, help="daemon --threads (default: cores, max 16)")
    return ap.parse_args()


ARGS = parse_args()
# Before torch loads OpenMP: idle OpenMP threads spin for a while by default,
# and with the daemon and this process on the same cores each side's
# spinning threads slow the other's compute several-fold (bench/README.md,
# "Environment"). The daemon inherits it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ["NNEDITD"] = ARGS.nneditd
os.environ["NNE_PY_GEN"] = ARGS.py_gen
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import nnedit_export  # noqa: E402
from nnedit_testlib import (NP_DTYPES, Daemon, forward, generate, inference_pb2,  # noqa: E402
                            models_pb2, tensor_pb2, trace, wait_loaded)
from nnedit.v1 import edits_pb2, edits_pb2_grpc  # noqa: E402

I = inference_pb2
# bfloat16 has no numpy type: read its bytes as uint16 (widened below).
NP_DTYPES[tensor_pb2.DTYPE_BFLOAT16] = np.uint16
DEV = torch.device(ARGS.device)
RESULTS = {"device": ARGS.device, "torch": torch.__version__, "models": {}, "bench": {}, "errors": [],
           "device_path": {}}


def log(msg):
    print("gpu_check: " + msg, flush=True)


T_START = time.monotonic()


def time_left():
    return float("inf") if ARGS.budget <= 0 else ARGS.budget - (time.monotonic() - T_START)


def out_of_time(what, need):
    """True (and recorded) when `what`, expected to take about `need`
    seconds, no longer fits in --budget."""
    if time_left() >= need:
        return False
    RESULTS["errors"].append("skipped for want of time: %s (%.0f s left)" % (what, time_left()))
    log("skipping %s: %.0f s left" % (what, time_left()))
    return True


def f32(a, dtype):
    """A response tensor as float32 (bfloat16 arrives as its uint16 bits)."""
    if dtype == "bfloat16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


def sync():
    if DEV.type == "cuda":
        torch.cuda.synchronize(DEV)


# --------------------------------------------------------------------------
# models


def make_models(out):
    """Exports into out/repo; returns {name: (eager model, spec)} and the kind."""
    repo = os.path.join(out, "repo")
    kind = "transformers" if nnedit_export.have_transformers() else "fixture"
    table = TRANSFORMERS_MODELS if kind == "transformers" else FIXTURE_MODELS
    names = [n for n in (ARGS.models.split(",") if ARGS.models else table) if n]
    models = {}
    for name in names:
        if name not in table:
            RESULTS["errors"].append("unknown model '%s' for %s (%s)" % (name, kind, ", ".join(table)))
            continue
        if out_of_time("export of " + name, 30):
            continue
        t0 = time.monotonic()
        try:
            if kind == "transformers":
                model, spec = export_transformers(name, table[name], out, repo)
            else:
                model, spec = export_fixture(name, table[name], out, repo)
        except Exception as e:
            RESULTS["models"][name] = {"export": "FAILED: %s" % e}
            RESULTS["errors"].append("%s: export: %s" % (name, e))
            traceback.print_exc()
            continue
        info = spec["export_info"]
        RESULTS["models"][name] = {"export_s": round(time.monotonic() - t0, 1), "family": spec["family"],
                                   "dtype": spec["dtype"], "export_kind": spec["export"],
                                   "export_parity": info["parity"],
                                   "export_kv_cache": (
                                       "kv_cache %s, cached parity %.3g relative (worst at %s)"
                                       % (spec["kv_cache"], info["cached_parity"]["relative"],
                                          info["cached_parity"]["worst_at"])
                                       if "kv_cache" in spec and "cached_parity" in info
                                       else info.get("kv_cache", "no kv_cache")),
                                   "eos_token_id": spec.get("eos_token_id"),
                                   "params": sum(p.numel() for p in model.parameters())}
        models[name] = (model, spec)
        log("exported %s in %.1f s" % (name, time.monotonic() - t0))
        write_summary()
    return models, kind


def export_transformers(name, how, out, repo):
    import transformers
    key, dtype, path = how
    cfg = transformers.AutoConfig.for_model(**REAL[key])
    tdt = getattr(torch, dtype)
    ver = tuple(int(x) for x in transformers.__version__.split(".")[:2] if x.isdigit())
    kw = {"attn_implementation": "eager", ("dtype" if ver >= (4, 56) else "torch_dtype"): tdt}
    torch.manual_seed(0)
    # Random init straight on the device (torch 2.x device context): a
    # 2.6B-parameter init on the CPU takes minutes.
    ctx = DEV if hasattr(torch.device, "__enter__") else None
    if ctx is not None:
        with ctx:
            model = transformers.AutoModelForCausalLM.from_config(cfg, **kw)
    else:
        model = transformers.AutoModelForCausalLM.from_config(cfg, **kw).to(DEV)
    model.eval()
    if path == "folder":
        folder = os.path.join(out, "ckpt", name)
        model.save_pretrained(folder)
        spec = nnedit_export.export_folder(folder, repo, name, impl="transformers", dtype=dtype,
                                           device=ARGS.device, force=True)
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, **kw).to(DEV).eval()
    else:
        kw = dict(device=ARGS.device, dtype=dtype, max_seq_len=4096, force=True,
                  description="%s config, random weights" % key)
        # No retry with config.torchscript: set on a model that exists it
        # changes nothing (transformers reads it when tying weights at
        # init), so a second trace would fail the same way, at GPU cost.
        spec = nnedit_export.export_model(model, repo, name, **kw)
    return model, spec


def export_fixture(name, how, out, repo):
    family, size = how[:2]
    dtype = how[2] if len(how) > 2 else "float32"
    folder = os.path.join(out, "ckpt", name)
    model = nnedit_export.fixture_checkpoint(family, folder, "safetensors", size, seed=5)
    spec = nnedit_export.export_folder(folder, repo, name, impl="fixture", device=ARGS.device,
                                       dtype=dtype, force=True)
    return model.to(DEV, getattr(torch, dtype)).eval(), spec


# --------------------------------------------------------------------------
# eager references


def layer_list(model, family):
    paths = {"gpt2": "transformer.h", "llama": "model.layers", "gemma": "model.layers",
             "gpt_neox": "gpt_neox.layers"}
    return model.get_submodule(paths[family])


def first(o):
    return o[0] if isinstance(o, (tuple, list)) else o


def replace_first(o, v):
    return (v,) + tuple(o[1:]) if isinstance(o, tuple) else v


def eager(model, ids, mask, hooks=()):
    """Logits (float32, numpy) of the eager model with forward hooks
    [(module, fn)] in place."""
    hs = [m.register_forward_hook(fn) for m, fn in hooks]
    try:
        with torch.no_grad():
            out = nnedit_export.call_eager(model, torch.tensor(ids, device=DEV),
                                           torch.tensor(mask, device=DEV))
        return out.float().cpu().numpy()
    finally:
        for h in hs:
            h.remove()


def rel_diff(got, want, mask):
    real = np.array(mask, dtype=bool)
    d = float(np.abs(got - want)[real].max())
    s = float(np.abs(want[real]).max())
    return d, d / max(s, 1e-30)


def verdict(rel, dtype):
    return "PASS" if rel <= BOUND.get(dtype, 1e-4) else "FAIL"


# --------------------------------------------------------------------------
# checks per model


def check_model(d, name, model, spec):
    r = RESULTS["models"][name]
    dtype, fam = spec["dtype"], spec["family"]
    vocab = spec["config"]["vocab_size"]
    layers = layer_list(model, fam)
    n_layers = len(layers)
    g = np.random.default_rng(7)
    ids = g.integers(1, vocab, size=(2, 16)).tolist()
    ones = [[1] * 16] * 2
    padded = [[1] * 16, [0] * 5 + [1] * 11]

    def record(key, got, want, mask):
        d_abs, d_rel = rel_diff(got, want, mask)
        r[key] = {"max_abs_diff": d_abs, "relative": d_rel, "verdict": verdict(d_rel, dtype)}
        log("%s %s: max abs diff %.3g, relative %.3g -> %s" % (name, key, d_abs, d_rel, r[key]["verdict"]))

    # Describe: family and standard sites
    info = d.models.Describe(models_pb2.DescribeModelRequest(name=name), timeout=60)
    sites = {s.name: s for s in info.sites}
    unavailable = sorted(n for n, s in sites.items() if not s.available)
    r["describe"] = {"family": info.model.family, "layers": info.model.layer_count,
                     "warnings": list(info.model.warnings), "sites": len(sites),
                     "unavailable_sites": unavailable[:8],
                     "verdict": "PASS" if info.model.family == fam and info.model.layer_count == n_layers
                     else "FAIL"}
    log("%s describe: family %s, %d layers, %d sites (%d unavailable), warnings %s"
        % (name, info.model.family, info.model.layer_count, len(sites), len(unavailable),
           list(info.model.warnings)))

    # Forward logits, plain and left-padded
    for key, mask in (("forward", ones), ("forward_padded", padded)):
        _, t = forward(d.inference, name, ids, mask=mask, logits=I.LOGITS_MODE_ALL, timeout=300)
        record(key, f32(t["logits"], dtype), eager(model, ids, mask), mask)

    # Saves: up to 12 layers' residual outputs
    picked = list(range(n_layers))[:12]
    got_eager = {}

    def saver(i):
        def hook(m, a, o):
            got_eager[i] = first(o).detach().float().cpu().numpy()
        return hook

    eager(model, ids, ones, [(layers[i], saver(i)) for i in picked])
    _, t = forward(d.inference, name, ids, mask=ones, save=["layers.%d.resid_post" % i for i in picked],
                   timeout=300)
    worst = (0.0, 0.0)
    for i in picked:
        key = [k for k in t if k.endswith("layers.%d.resid_post" % i) or k == "layers.%d.resid_post" % i]
        got = f32(t[key[0]], dtype)
        d_abs, d_rel = rel_diff(got, got_eager[i], [[1] * 16] * 2)
        worst = max(worst, (d_rel, d_abs))
    r["saves"] = {"count": len(picked), "max_abs_diff": worst[1], "relative": worst[0],
                  "verdict": verdict(worst[0], dtype)}
    log("%s saves x%d: worst relative %.3g -> %s" % (name, len(picked), worst[0], r["saves"]["verdict"]))

    # Edits: scale layers.0.mlp_out by 0.5
    mlp0 = layers[0].mlp

    def half(m, a, o):
        return replace_first(o, first(o) * 0.5)

    edits = edits_pb2_grpc.EditsStub(d.channel)
    es = edits.Apply(edits_pb2.ApplyEditsRequest(
        model=name, edits=[edits_pb2.Edit(site="layers.0.mlp_out", op=edits_pb2.EDIT_OP_SCALE,
                                          scalar=0.5)]), timeout=300).edit_set
    try:
        _, t = forward(d.inference, name, ids, mask=ones, logits=I.LOGITS_MODE_ALL, edit_set=es.id,
                       timeout=300)
        record("edit_scale_mlp0", f32(t["logits"], dtype), eager(model, ids, ones, [(mlp0, half)]), ones)
    finally:
        edits.Drop(edits_pb2.DropEditSetRequest(id=es.id), timeout=30)

    # Trace: halve layer k's output, save layer k+1's input
    k = min(1, n_layers - 2)
    site = "layers.%d.resid_post" % k
    nodes = [I.Node(id=1, read=I.ReadNode(site=site)),
             I.Node(id=2, constant=I.ConstNode(scalar=0.5)),
             I.Node(id=3, call=I.CallNode(fn="mul", args=[I.Arg(node=1), I.Arg(node=2)])),
             I.Node(id=4, write=I.WriteNode(site=site, value=3)),
             I.Node(id=5, read=I.ReadNode(site="layers.%d.resid_pre" % (k + 1))),
             I.Node(id=6, save=I.SaveNode(value=5, name="next_in"))]
    inv = I.Invoke(input_ids=[I.TokenRow(ids=row) for row in ids],
                   attention_mask=[I.MaskRow(values=m) for m in ones])
    _, t = trace(d.inference, name, [I.Trace(name="t", invokes=[inv], nodes=nodes)],
                 logits=I.LOGITS_MODE_ALL, timeout=300)
    want_next = {}

    def grab(m, a):
        # HF passes the hidden states positionally; a layer called with
        # keywords only leaves nothing to compare (noted, not failed)
        if a:
            want_next.setdefault("v", first(a).detach().float().cpu().numpy())

    pre = layers[k + 1].register_forward_pre_hook(grab)
    try:
        want = eager(model, ids, ones, [(layers[k], half)])
    finally:
        pre.remove()
    record("trace_halve_layer", f32(t["t/logits"], dtype), want, ones)
    if want_next.get("v") is not None:
        d_abs, d_rel = rel_diff(f32(t["next_in"], dtype), want_next["v"], ones)
        r["trace_save"] = {"max_abs_diff": d_abs, "relative": d_rel, "verdict": verdict(d_rel, dtype)}


# --------------------------------------------------------------------------
# The device path: memory figures, requests on several streams at once, an
# allocation the device cannot make, an edit operand in another dtype


def archive_bytes(path):
    """Bytes of an archive's parameters and buffers, each storage once (what
    Describe's device_bytes must say)."""
    m = torch.jit.load(path, map_location="cpu")
    seen, total = set(), 0
    for t in list(m.parameters()) + list(m.buffers()):
        st = t.storage()
        if st.data_ptr() not in seen:
            seen.add(st.data_ptr())
            total += st.nbytes()
    return total


def check_device(d, models, out):
    """One set of checks of the daemon's device path, recorded in
    RESULTS["device_path"] (each with a verdict)."""
    from nnedit.v1 import admin_pb2, admin_pb2_grpc
    r = RESULTS["device_path"]
    admin = admin_pb2_grpc.AdminStub(d.channel)
    canon = "cpu" if DEV.type == "cpu" else "cuda:%d" % (DEV.index or 0)

    # Memory: Describe against the archive for the benchmark model and the
    # first bfloat16 one (reading every multi-GB archive again would cost
    # GPU minutes for no other code path), Stats per device for all.
    try:
        worst = []
        bench_name = BENCH_MODEL.get(RESULTS.get("kind"))
        bf = [n for n, (_, sp) in models.items() if sp["dtype"] == "bfloat16"][:1]
        for name in [n for n in models if n == bench_name] + bf:
            info = d.models.Describe(models_pb2.DescribeModelRequest(name=name), timeout=60).model
            want = archive_bytes(os.path.join(out, "repo", name, "model.pt"))
            if info.device_bytes != want:
                worst.append("%s: device_bytes %d, archive %d" % (name, info.device_bytes, want))
        st = admin.Stats(admin_pb2.StatsRequest(), timeout=60)
        devs = {x.device: x for x in st.devices}
        dev = devs.get(canon)
        weights = sum(m.weights_bytes for m in st.memory if m.device == canon)
        problems = list(worst)
        if dev is None:
            problems.append("Stats has no device %s (%s)" % (canon, sorted(devs)))
        else:
            if DEV.type == "cuda":
                total = torch.cuda.get_device_properties(DEV).total_memory
                if not dev.allocator_stats:
                    problems.append("no caching-allocator figures (built without NNE_WITH_CUDA?)")
                elif dev.allocated_bytes < weights:
                    problems.append("allocated %d < the models' weights %d" % (dev.allocated_bytes, weights))
                if dev.total_bytes != total:
                    problems.append("total %d, torch says %d" % (dev.total_bytes, total))
            if dev.models_bytes != weights:
                problems.append("models_bytes %d, weights %d" % (dev.models_bytes, weights))
        r["memory"] = {"verdict": "FAIL" if problems else "PASS", "problems": problems,
                       "weights_bytes": weights,
                       "allocated_bytes": dev.allocated_bytes if dev else None,
                       "reserved_bytes": dev.reserved_bytes if dev else None,
                       "total_bytes": dev.total_bytes if dev else None}
        log("device memory: %s %s" % (r["memory"]["verdict"], problems or r["memory"]))
    except Exception as e:
        r["memory"] = {"verdict": "FAIL", "problems": ["%s: %s" % (type(e).__name__, e)]}

    name = BENCH_MODEL.get(RESULTS.get("kind"), next(iter(models)))
    if name not in models:
        name = next(iter(models))
    model, spec = models[name]
    vocab = spec["config"]["vocab_size"]

    # Streams: four clients at once, each with its own rows, several rounds;
    # every answer equal to its own eager forward (a mix-up between the
    # executor threads' streams would give another request's numbers or
    # half-written ones).
    try:
        import threading
        g = np.random.default_rng(11)
        batches = [g.integers(1, vocab, size=(2, 64)).tolist() for _ in range(4)]
        ones = [[1] * 64] * 2
        want = [eager(model, b, ones) for b in batches]
        worst, errors = [0.0], []

        def client(k):
            try:
                for _ in range(5):
                    _, t = forward(d.inference, name, batches[k], mask=ones, logits=I.LOGITS_MODE_ALL,
                                   timeout=300)
                    worst[0] = max(worst[0], rel_diff(f32(t["logits"], spec["dtype"]), want[k], ones)[1])
            except Exception as e:
                errors.append("%s: %s" % (type(e).__name__, e))

        ths = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(600)
        v = verdict(worst[0], spec["dtype"]) if not errors else "FAIL"
        r["concurrent"] = {"verdict": v, "relative": worst[0], "clients": 4, "rounds": 5,
                           "errors": errors[:3]}
        log("concurrent Forwards x4 x5: worst relative %.3g -> %s %s" % (worst[0], v, errors[:1]))
    except Exception as e:
        r["concurrent"] = {"verdict": "FAIL", "errors": ["%s: %s" % (type(e).__name__, e)]}

    # Out of memory: a 256 GiB value (no device has it) is RESOURCE_EXHAUSTED
    # naming the model, the device and the bytes; the daemon then answers as
    # before. (The daemon runs with --max-trace-value-bytes 0 for this.)
    overcommit = ""
    try:
        with open("/proc/sys/vm/overcommit_memory") as f:
            overcommit = f.read().strip()
    except OSError:
        pass
    if DEV.type == "cpu" and overcommit == "1":
        # Host memory that always overcommits would hand the 256 GiB out and
        # the kernel would kill the daemon while filling it.
        r["out_of_memory"] = {"verdict": "SKIP", "problems": ["vm.overcommit_memory=1"]}
    else:
        check_oom(d, name, canon, r)
    check_bf16_operand(d, models, r)


def check_oom(d, name, canon, r):
    try:
        import grpc
        ids = [[5, 6, 7, 8]]
        _, before = forward(d.inference, name, ids, logits=I.LOGITS_MODE_ALL, timeout=300)
        nodes = [I.Node(id=1, call=I.CallNode(fn="full", args=[
                     I.Arg(ints=I.IntList(values=[1 << 18, 1 << 18])), I.Arg(scalar=1.0)])),
                 I.Node(id=2, save=I.SaveNode(value=1, name="big"))]
        problems, details = [], ""
        try:
            trace(d.inference, name, [I.Trace(invokes=[I.Invoke(input_ids=[I.TokenRow(ids=ids[0])])],
                                              nodes=nodes)], timeout=300)
            problems.append("a 256 GiB value was allocated?")
        except grpc.RpcError as e:
            details = e.details()
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                problems.append("status %s" % e.code())
            for needle in ("model '%s' on %s" % (name, canon), "tried to allocate 274877906944 bytes"):
                if needle not in details:
                    problems.append("no %r in the message" % needle)
        _, after = forward(d.inference, name, ids, logits=I.LOGITS_MODE_ALL, timeout=300)
        if not np.array_equal(before["logits"], after["logits"]):
            problems.append("a Forward after it answers differently")
        r["out_of_memory"] = {"verdict": "FAIL" if problems else "PASS", "problems": problems,
                              "message": details[:300]}
        log("out of memory: %s %s" % (r["out_of_memory"]["verdict"], problems or details[:200]))
    except Exception as e:
        r["out_of_memory"] = {"verdict": "FAIL", "problems": ["%s: %s" % (type(e).__name__, e)]}



def check_bf16_operand(d, models, r):
    """An edit's float32 operand on a bfloat16 model: converted once to the
    site's dtype (Get says so), equal to an eager hook adding it in
    bfloat16; a value bfloat16 cannot hold is refused naming the edit."""
    bf = [n for n, (_, sp) in models.items() if sp["dtype"] == "bfloat16"]
    if not bf:
        r["bf16_operand"] = {"verdict": "SKIP", "problems": ["no bfloat16 model"]}
        return
    try:
        import grpc
        name = bf[0]
        model, spec = models[name]
        layers = layer_list(model, spec["family"])
        width = spec["config"].get("hidden_size") or spec["config"].get("n_embd") or spec["config"]["d_model"]
        vec = np.random.default_rng(5).normal(size=width).astype(np.float32)
        edits = edits_pb2_grpc.EditsStub(d.channel)

        def edit(v):
            return edits_pb2.ApplyEditsRequest(model=name, edits=[edits_pb2.Edit(
                site="layers.1.resid_post", op=edits_pb2.EDIT_OP_ADD,
                tensor=tensor_pb2.Tensor(dtype=tensor_pb2.DTYPE_FLOAT32, shape=[width],
                                         data=v.tobytes()))])
        problems = []
        es = edits.Apply(edit(vec), timeout=300).edit_set
        try:
            got = edits.Get(edits_pb2.GetEditSetRequest(id=es.id), timeout=60)
            if got.edits[0].tensor_dtype != tensor_pb2.DTYPE_BFLOAT16:
                problems.append("operand kept as %s" % tensor_pb2.DType.Name(got.edits[0].tensor_dtype))
            ids = np.random.default_rng(6).integers(1, spec["config"]["vocab_size"], size=(2, 16)).tolist()
            ones = [[1] * 16] * 2
            _, t = forward(d.inference, name, ids, mask=ones, logits=I.LOGITS_MODE_ALL, edit_set=es.id,
                           timeout=300)
            add = torch.from_numpy(vec).to(DEV, torch.bfloat16)
            want = eager(model, ids, ones, [(layers[1], lambda m, a, o: replace_first(o, first(o) + add))])
            rel = rel_diff(f32(t["logits"], "bfloat16"), want, ones)[1]
            if verdict(rel, "bfloat16") != "PASS":
                problems.append("edited logits differ by %.3g relative" % rel)
        finally:
            edits.Drop(edits_pb2.DropEditSetRequest(id=es.id), timeout=30)
        bad = vec.copy()
        bad[0] = 3.4e38
        try:
            edits.Apply(edit(bad), timeout=300)
            problems.append("an operand beyond bfloat16's range was accepted")
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.INVALID_ARGUMENT or "beyond bfloat16's range" not in e.details():
                problems.append("overflow: %s %s" % (e.code(), e.details()[:120]))
        r["bf16_operand"] = {"verdict": "FAIL" if problems else "PASS", "problems": problems, "model": name}
        log("bfloat16 operand: %s %s" % (r["bf16_operand"]["verdict"], problems))
    except Exception as e:
        r["bf16_operand"] = {"verdict": "FAIL", "problems": ["%s: %s" % (type(e).__name__, e)]}


# --------------------------------------------------------------------------
# Generate: the daemon's greedy decoding against an eager greedy loop


GEN_NEW = 16                      # new tokens per row in the parity check
GEN_PROMPT_LENS = (12, 7)         # two rows: the second left-padded


def left_pad(prompts, pad_id):
    """(ids, mask) on DEV, int64 [B, longest], left-padded (the daemon's way)."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[r, width - len(p):] = 1
    return ids.to(DEV), mask.to(DEV)


def eager_greedy(model, spec, prompts, n):
    """Greedy decoding of n tokens per row on the eager model, on DEV, with a
    KV cache, the way HF generate does it: left-padded prompts, a mask that
    grows by a 1 per step, position ids cumsum(mask) - 1 (pads 1), the
    prompt first and then one token per step. The cache is the model's own:
    for a transformers model its forward with past_key_values None (it
    makes its own cache, e.g. 5.x's DynamicCache(config) with Gemma-2's
    sliding-window layers), then whatever it returned — not the export's
    flat-list conversion, so the check is independent of it; for the
    fixture classes their forward_cached with the flat past, as
    tests/fixtures/reference_generate.py does. Returns (new ids per row,
    [B, V] float32 logits of each step's last position)."""
    pad_id = int(spec.get("pad_token_id", 0))
    ids, mask = left_pad(prompts, pad_id)
    b = ids.shape[0]
    hf = nnedit_export._is_transformers_model(model)
    if not hf:
        kv = spec.get("kv_cache")
        if kv is None:
            raise RuntimeError("fixture model without kv_cache in model.json")
        dt = next(model.parameters()).dtype
        past = [torch.zeros(b, kv["kv_heads"], 0, kv["head_dim"], dtype=dt, device=DEV)
                for _ in range(2 * kv["layers"])]
    else:
        past = None
        import transformers
        if int(transformers.__version__.split(".")[0]) < 5:
            # 4.x Gemma-2 makes a HybridCache sized to the prompt when given
            # None, and the next step writes past its end (on CUDA a
            # device-side assert that ends the run); a DynamicCache grows.
            # 5.x makes a DynamicCache(config) itself.
            past = transformers.DynamicCache()
    out_ids, steps = [[] for _ in range(b)], []
    step_ids = ids
    with torch.no_grad():
        for _ in range(n):
            pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)[:, -step_ids.shape[1]:]
            if hf:
                out = model(input_ids=step_ids, attention_mask=mask, position_ids=pos,
                            past_key_values=past, use_cache=True, return_dict=True)
                logits, past = out.logits, out.past_key_values
            else:
                logits, past = model.forward_cached(step_ids, mask, pos, past)
            last = logits[:, -1].float()
            steps.append(last)
            nxt = last.argmax(-1)
            for r in range(b):
                out_ids[r].append(int(nxt[r]))
            step_ids = nxt[:, None]
            mask = torch.cat((mask, torch.ones_like(step_ids)), dim=1)
    return out_ids, steps


def compare_tokens(got, want, eager_steps, row_of):
    """Per row: leading tokens equal, and at the first difference eager's
    top-2 margin relative to its largest logit (a near-tie explains a
    difference within the parity bound; nothing else does)."""
    rows = []
    for r, (g, w) in enumerate(zip(got, want)):
        k = 0
        while k < min(len(g), len(w)) and g[k] == w[k]:
            k += 1
        row = {"leading_equal": k, "of": len(w), "equal": list(g) == list(w)}
        if not row["equal"] and k < len(eager_steps):
            lg = eager_steps[k][row_of(r)]
            top = torch.topk(lg, 2).values
            row["margin_at_first_difference"] = float(top[0] - top[1]) / max(float(lg.abs().max()), 1e-30)
            row["daemon_token"] = int(g[k]) if k < len(g) else None
            row["eager_token"] = int(w[k])
        rows.append(row)
    return rows


def check_generate(d, name, model, spec):
    """Generate greedy (cached, and one CACHE_MODE_OFF run) vs eager_greedy.
    float32: the token sequences must be equal. bfloat16: they should be; a
    row may part from eager's at a near-tie, i.e. where eager's top-2
    logits differ by no more than the parity bound (3e-2 of the largest
    logit): then it passes as `near-tie` with the number of leading tokens
    that matched; a difference anywhere else fails."""
    r = RESULTS["models"][name]
    dtype = spec["dtype"]
    vocab = spec["config"]["vocab_size"]
    g = np.random.default_rng(13)
    prompts = [g.integers(1, vocab, size=n).tolist() for n in GEN_PROMPT_LENS]
    t0 = time.monotonic()
    want, steps = eager_greedy(model, spec, prompts, GEN_NEW)
    want1, steps1 = eager_greedy(model, spec, prompts[:1], GEN_NEW)

    def req(ps, cache):
        return I.GenerateRequest(model=name, prompts=[I.TokenRow(ids=p) for p in ps],
                                 max_new_tokens=GEN_NEW, ignore_eos=True, cache=cache)

    _, _, res = generate(d.inference, req(prompts, I.CACHE_MODE_UNSPECIFIED), timeout=600)
    got = [list(row.ids) for row in res.rows]
    # Recomputing runs forward, which has no position ids (arange, as
    # HF's forward without them): one unpadded row, where those are the
    # mask's positions too.
    _, _, off = generate(d.inference, req(prompts[:1], I.CACHE_MODE_OFF), timeout=600)
    got_off = [list(row.ids) for row in off.rows]
    cached_rows = compare_tokens(got, want, steps, lambda i: i)
    off_rows = compare_tokens(got_off, want1, steps1, lambda i: i)
    bound = BOUND.get(dtype, 1e-4)

    def verdict_of(rows):
        if all(x["equal"] for x in rows):
            return "PASS"
        if dtype != "float32" and all(x["equal"] or x.get("margin_at_first_difference", 1.0) <= bound
                                      for x in rows):
            return "PASS near-tie"
        return "FAIL"

    want_kv = "kv_cache" in spec
    v_cached, v_off = verdict_of(cached_rows), verdict_of(off_rows)
    ok_flags = res.kv_cache == want_kv and not off.kv_cache
    verdict_all = ("FAIL" if "FAIL" in (v_cached, v_off) or not ok_flags
                   else "PASS near-tie" if "near-tie" in v_cached + v_off else "PASS")
    r["generate"] = {
        "verdict": verdict_all, "new_tokens": GEN_NEW, "prompt_lens": list(GEN_PROMPT_LENS),
        "kv_cache": bool(res.kv_cache), "kv_cache_expected": want_kv,
        "cached": {"verdict": v_cached, "rows": cached_rows},
        "cache_off": {"verdict": v_off, "rows": off_rows},
        "leading_equal_min": min(x["leading_equal"] for x in cached_rows + off_rows),
        "expectation": ("float32: every token equal" if dtype == "float32" else
                        "%s: every token equal, or parting only at a near-tie (eager's top-2 "
                        "logits within %.3g of the largest)" % (dtype, bound)),
        "seconds": round(time.monotonic() - t0, 2)}
    log("%s generate: %s (cached %s, kv_cache %s; cache off %s; leading tokens equal >= %d of %d)"
        % (name, verdict_all, v_cached, res.kv_cache, v_off, r["generate"]["leading_equal_min"],
           GEN_NEW))


# --------------------------------------------------------------------------
# benchmark


def timed(fn, rounds):
    ts = []
    for _ in range(rounds):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3, min(ts) * 1e3


def bench(d, name, model, spec):
    b = RESULTS["bench"]
    cuda = DEV.type == "cuda"
    batch, seq = (8, 512) if cuda else (1, 128)
    rounds = 5 if ARGS.quick else 21
    vocab = spec["config"]["vocab_size"]
    g = np.random.default_rng(11)
    ids = g.integers(1, vocab, size=(batch, seq)).tolist()
    mask = [[1] * seq] * batch
    tids, tmask = torch.tensor(ids, device=DEV), torch.tensor(mask, device=DEV)
    n_layers = spec["config"]["n_layers"]
    saves = ["layers.%d.resid_post" % i for i in range(min(12, n_layers))]

    def eager_fwd():
        with torch.no_grad():
            nnedit_export.call_eager(model, tids, tmask)

    def daemon_fwd():
        forward(d.inference, name, ids, mask=mask, top_k=1, timeout=300)

    nodes = []
    for i, s in enumerate(saves):
        nodes += [I.Node(id=2 * i + 1, read=I.ReadNode(site=s)),
                  I.Node(id=2 * i + 2, save=I.SaveNode(value=2 * i + 1, name="r%d" % i))]
    inv = I.Invoke(input_ids=[I.TokenRow(ids=r) for r in ids],
                   attention_mask=[I.MaskRow(values=m) for m in mask])

    def daemon_trace():
        trace(d.inference, name, [I.Trace(name="b", invokes=[inv], nodes=nodes)], timeout=300)

    for f in (eager_fwd, daemon_fwd, daemon_trace):  # warm-up: executor profiling, cuBLAS plans
        f()
        f()
    e, emin = timed(eager_fwd, rounds)
    fw, fwmin = timed(daemon_fwd, rounds)
    tr, trmin = timed(daemon_trace, rounds)
    saved_mb = len(saves) * batch * seq * spec["config"]["d_model"] * (2 if spec["dtype"] != "float32" else 4) / 1e6
    b["shape"] = "%d x %d, %s, %s" % (batch, seq, spec["dtype"], name)
    b["eager_forward_ms"] = [round(e, 3), round(emin, 3)]
    b["daemon_forward_ms"] = [round(fw, 3), round(fwmin, 3)]
    b["daemon_trace_12_saves_ms"] = [round(tr, 3), round(trmin, 3)]
    b["trace_saved_mb"] = round(saved_mb, 1)
    b["trace_vs_eager"] = round(tr / e, 3)
    b["forward_vs_eager"] = round(fw / e, 3)
    b["trace_vs_forward"] = round(tr / fw, 3)
    b["trace_target"] = "PASS" if tr / e <= 1.05 else "MISS"

    one = [[5]]

    def eager_one():
        with torch.no_grad():
            nnedit_export.call_eager(model, torch.tensor(one, device=DEV), torch.tensor([[1]], device=DEV))

    def daemon_one():
        forward(d.inference, name, one, mask=[[1]], top_k=1, timeout=60)

    for f in (eager_one, daemon_one):
        f()
        f()
    n = 50 if ARGS.quick else 300
    e1, _ = timed(eager_one, n)
    d1, _ = timed(daemon_one, n)
    b["one_token_eager_ms"] = round(e1, 4)
    b["one_token_forward_ms"] = round(d1, 4)
    b["fixed_overhead_ms"] = round(d1 - e1, 4)
    b["overhead_target"] = "PASS" if d1 - e1 <= 0.2 else "MISS"
    log("bench: %s" % json.dumps(b))


def bench_generate(d, name, model, spec):
    """Greedy Generate throughput: new tokens per second of wall time,
    the daemon (over loopback, KV cache as model.json says) against
    eager_greedy in this process on the same device, same prompts."""
    b = RESULTS["bench"]
    cuda = DEV.type == "cuda"
    batch, plen, n = (8, 128, 64) if cuda else (1, 32, 16)
    rounds = 3 if ARGS.quick else 7
    vocab = spec["config"]["vocab_size"]
    g = np.random.default_rng(17)
    prompts = [g.integers(1, vocab, size=plen).tolist() for _ in range(batch)]
    req = I.GenerateRequest(model=name, prompts=[I.TokenRow(ids=p) for p in prompts],
                            max_new_tokens=n, ignore_eos=True)
    timing = []

    def daemon_gen():
        _, _, res = generate(d.inference, req, timeout=600)
        timing.append(res.timing)

    def eager_gen():
        eager_greedy(model, spec, prompts, n)

    for f in (eager_gen, daemon_gen):  # warm-up
        f()
    e, emin = timed(eager_gen, rounds)
    dg, dgmin = timed(daemon_gen, rounds)
    toks = batch * n
    b["generate_shape"] = "%d x %d prompt tokens, %d new, greedy, %s" % (batch, plen, n, name)
    b["generate_eager_tok_s"] = round(toks / (e / 1e3), 1)
    b["generate_daemon_tok_s"] = round(toks / (dg / 1e3), 1)
    b["generate_tok_s_daemon_over_eager"] = round(e / dg, 3)
    b["generate_daemon_kv_cache"] = bool("kv_cache" in spec)
    per_tok = [t.per_token_ms for t in timing[1:]]
    pre = [t.prefill_ms for t in timing[1:]]
    if per_tok:
        b["generate_daemon_prefill_ms"] = round(statistics.median(pre), 3)
        b["generate_daemon_per_step_ms"] = round(statistics.median(per_tok), 3)
    log("bench generate: %s" % json.dumps({k: v for k, v in b.items() if k.startswith("generate")}))


# --------------------------------------------------------------------------


def summary_text():
    lines = ["device %s, torch %s" % (RESULTS["device"], RESULTS["torch"])]
    if RESULTS.get("kind"):
        lines.append("models from: %s" % RESULTS["kind"])
    if "daemon_start_s" in RESULTS:
        lines.append("nneditd start, all models loaded: %s s" % RESULTS["daemon_start_s"])
    lines.append("")
    lines.append("%-11s %-8s %-6s %-9s %-8s %-24s %-24s %-24s %-24s %-24s"
                 % ("model", "family", "kind", "dtype", "export s", "forward (rel)", "padded (rel)",
                    "12 saves (rel)", "edit (rel)", "trace (rel)"))
    for name, r in RESULTS["models"].items():
        def cell(k):
            v = r.get(k)
            return "%s %.2g" % (v["verdict"], v["relative"]) if isinstance(v, dict) and "relative" in v else "-"
        lines.append("%-11s %-8s %-6s %-9s %-8s %-24s %-24s %-24s %-24s %-24s"
                     % (name, r.get("family", "-"), r.get("export_kind", "-"), r.get("dtype", "-"),
                        r.get("export_s", "-"), cell("forward"), cell("forward_padded"), cell("saves"),
                        cell("edit_scale_mlp0"), cell("trace_halve_layer")))
        if "describe" in r:
            lines.append("    describe: family %s, %d layers, %d sites, unavailable %s, warnings %s"
                         % (r["describe"]["family"], r["describe"]["layers"], r["describe"]["sites"],
                            r["describe"]["unavailable_sites"], r["describe"]["warnings"]))
        gen = r.get("generate")
        if isinstance(gen, dict):
            if "error" in gen:
                lines.append("    generate: FAIL: %s" % gen["error"])
            else:
                lines.append("    generate %d new x %d rows: %s — cached %s (kv_cache %s), cache off %s; "
                             "leading tokens equal >= %d of %d; expected: %s"
                             % (gen["new_tokens"], len(gen["prompt_lens"]), gen["verdict"],
                                gen["cached"]["verdict"], gen["kv_cache"], gen["cache_off"]["verdict"],
                                gen["leading_equal_min"], gen["new_tokens"], gen["expectation"]))
        ek = (r.get("export_kv_cache") or "")
        if ek:
            lines.append("    export: %s" % ek)
        if "export" in r:
            lines.append("    export: %s" % r["export"])
    dp = RESULTS.get("device_path") or {}
    if dp:
        lines += ["", "device path:"]
        for k in ("memory", "concurrent", "out_of_memory", "bf16_operand"):
            v = dp.get(k)
            if isinstance(v, dict):
                extra = {x: v[x] for x in v if x != "verdict"}
                lines.append("  %-14s %s %s" % (k, v["verdict"], json.dumps(extra, default=str)[:300]))
    b = RESULTS["bench"]
    if b:
        lines += ["", "benchmark (%s): median/min ms" % b.get("shape", "?")]
        for k in ("eager_forward_ms", "daemon_forward_ms", "daemon_trace_12_saves_ms"):
            if k in b:
                lines.append("  %-26s %s" % (k, b[k]))
        for k in ("trace_saved_mb", "forward_vs_eager", "trace_vs_eager", "trace_vs_forward", "trace_target",
                  "one_token_eager_ms", "one_token_forward_ms", "fixed_overhead_ms", "overhead_target"):
            if k in b:
                lines.append("  %-26s %s" % (k, b[k]))
        lines.append("  targets: trace <= 1.05x eager forward at 8 x 512 on cuda; overhead <= 0.2 ms")
        if "generate_shape" in b:
            lines.append("  generate (%s): tokens/s, median of rounds" % b["generate_shape"])
            for k in ("generate_eager_tok_s", "generate_daemon_tok_s", "generate_tok_s_daemon_over_eager",
                      "generate_daemon_kv_cache", "generate_daemon_prefill_ms",
                      "generate_daemon_per_step_ms"):
                if k in b:
                    lines.append("  %-26s %s" % (k, b[k]))
    if RESULTS["errors"]:
        lines += ["", "errors:"] + ["  " + e for e in RESULTS["errors"]]
    return "\n".join(lines) + "\n"


def write_summary(final=False):
    RESULTS["seconds"] = round(time.monotonic() - T_START, 1)
    RESULTS["complete"] = final
    res = os.path.abspath(ARGS.results or ARGS.out)
    os.makedirs(res, exist_ok=True)
    with open(os.path.join(res, "check-summary.json.tmp"), "w") as f:
        json.dump(RESULTS, f, indent=1, default=str)
    os.replace(os.path.join(res, "check-summary.json.tmp"), os.path.join(res, "check-summary.json"))
    text = summary_text() + "checks took %.1f s%s\n" % (RESULTS["seconds"], "" if final else
                                                         " so far (incomplete)")
    with open(os.path.join(res, "check-summary.txt"), "w") as f:
        f.write(text)
    return text


def main():
    out = os.path.abspath(ARGS.out)
    os.makedirs(out, exist_ok=True)
    if DEV.type == "cuda":
        RESULTS["gpu"] = torch.cuda.get_device_name(DEV)
    threads = ARGS.threads or min(16, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    models, kind = make_models(out)
    RESULTS["kind"] = kind
    ld = os.environ.get("NNE_DAEMON_LD_LIBRARY_PATH", "")
    if ld:
        # Only the daemon gets the carried Debian libraries.
        os.environ["LD_LIBRARY_PATH"] = ld + (":" + os.environ["LD_LIBRARY_PATH"]
                                              if os.environ.get("LD_LIBRARY_PATH") else "")
    d = None
    if models:
        # --max-trace-value-bytes 0: the out-of-memory check asks for more
        # than any device has, which must reach the allocator.
        args = ["--device", ARGS.device, "--threads", str(threads), "--max-seq-len", "4096",
                "--max-trace-value-bytes", "0"]
        for n in models:
            args += ["--load", n]
        t0 = time.monotonic()
        try:
            limit = max(30.0, min(600.0, time_left() - 30))
            d = Daemon(*args, repo=os.path.join(out, "repo"), timeout=limit)
            wait_loaded(d, list(models), timeout=limit)
            RESULTS["daemon_start_s"] = round(time.monotonic() - t0, 1)
        except Exception as e:
            RESULTS["errors"].append("daemon: %s" % e)
            if d is not None:
                RESULTS["errors"].append(d.log_text()[-3000:])
            d = None
    try:
        if d is not None:
            for name, (model, spec) in models.items():
                if out_of_time("checks of " + name, 20):
                    continue
                try:
                    check_model(d, name, model, spec)
                except Exception as e:
                    RESULTS["errors"].append("%s: %s: %s" % (name, type(e).__name__, e))
                    traceback.print_exc()
                write_summary()
                if out_of_time("generate check of " + name, 15):
                    continue
                try:
                    check_generate(d, name, model, spec)
                except Exception as e:
                    RESULTS["models"][name]["generate"] = {"verdict": "FAIL", "error": str(e)}
                    RESULTS["errors"].append("%s: generate: %s: %s" % (name, type(e).__name__, e))
                    traceback.print_exc()
                write_summary()
            if not out_of_time("device path checks", 30):
                try:
                    check_device(d, models, out)
                except Exception as e:
                    RESULTS["errors"].append("device path: %s: %s" % (type(e).__name__, e))
                    traceback.print_exc()
                write_summary()
            bname = BENCH_MODEL[kind]
            if bname in models and not out_of_time("benchmark", 45):
                try:
                    bench(d, bname, *models[bname])
                except Exception as e:
                    RESULTS["errors"].append("bench: %s: %s" % (type(e).__name__, e))
                    traceback.print_exc()
                write_summary()
                if not out_of_time("generate benchmark", 40):
                    try:
                        bench_generate(d, bname, *models[bname])
                    except Exception as e:
                        RESULTS["errors"].append("bench generate: %s: %s" % (type(e).__name__, e))
                        traceback.print_exc()
    finally:
        if d is not None:
            code = d.stop()
            if code != 0:
                RESULTS["errors"].append("nneditd exited %d" % code)
            with open(os.path.join(os.path.abspath(ARGS.results or out), "nneditd.log"), "w") as f:
                f.write(d.log_text())
    print(write_summary(final=True))
    failed = bool(RESULTS["errors"]) or any(
        isinstance(v, dict) and v.get("verdict") == "FAIL"
        for r in RESULTS["models"].values() for v in r.values()) or any(
        v.get("verdict") == "FAIL" for v in RESULTS["device_path"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
