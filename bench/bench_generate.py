#!/usr/bin/python3
"""bench_generate.py — issue 12's generation figures, measured side by side
in one run (ratios, not timed asserts). See bench/README.md, "Generation".

  /usr/bin/python3 bench/bench_generate.py [--threads N] [--rounds R] [--new N]

A. Speed: the GPT-2-small-sized fixture, greedy, 64 new tokens, batch 1 and
   8, prompts of 16 tokens: tokens/s of Generate over loopback gRPC (request
   to result, every step streamed into this client) against the in-process
   Python eager loop with a KV cache on the same weights (hfmodels'
   forward_cached through reference_generate.py, torch in this process with
   the daemon's thread count). Rounds interleave the two, the order
   rotated. Target: Generate >= 0.9x.
B. Cost per token against the prefix: ms per decode step (the daemon's own
   per_token_ms) at prompts of 16 and 512 tokens, with the cache and
   recomputing (CACHE_MODE_OFF). With the cache a step costs about the
   same at any prefix (attention's own share grows); recomputing grows
   with the prefix.
C. Per-step overhead of watching a step, as ms per decode step: a
   one-node intervention graph (a read of layers.6.resid_post), a read +
   save graph, and a save site, against none. Target (issue 12, the
   one-node graph): <= 5%.

Prints the machine, tables and a PASS/MISS line per target. Exits 0
whenever it could run at all.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--new", type=int, default=64, help="new tokens in A and C (default 64)")
    ap.add_argument("--as-is", action="store_true",
                    help="leave OPENBLAS_CORETYPE / OMP_WAIT_POLICY as they are")
    ap.add_argument("--fixtures", default=os.path.join(ROOT, "build", "fixtures-bench"))
    ap.add_argument("--nneditd", default=os.environ.get("NNEDITD", os.path.join(ROOT, "build", "nneditd")))
    ap.add_argument("--py-gen", default=os.environ.get("NNE_PY_GEN", os.path.join(ROOT, "build", "gen_py")))
    ap.add_argument("--skip", default="", help="comma list of sections to skip (A,B,C)")
    return ap.parse_args()


ARGS = parse_args()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchenv import setup  # noqa: E402

setup(ARGS.as_is, ARGS.py_gen, ARGS.nneditd, ARGS.fixtures)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))

import torch  # noqa: E402

from nnedit_testlib import Daemon, inference_pb2, models_pb2  # noqa: E402
import reference_generate as rg  # noqa: E402

P = inference_pb2
BIG = "gpt2-small"
SKIP = set(ARGS.skip.upper().split(",")) - {""}


def prompts(batch, length):
    return [[(r * 7919 + i * 104729 + 13) % 50000 + 1 for i in range(length)] for r in range(batch)]


def daemon_generate(stub, batch, length, new, cache=P.CACHE_MODE_UNSPECIFIED, save=(),
                    intervention=None):
    req = P.GenerateRequest(model=BIG, prompts=[P.TokenRow(ids=p) for p in prompts(batch, length)],
                            max_new_tokens=new, ignore_eos=True, cache=cache, save=list(save),
                            intervention=intervention)
    t0 = time.perf_counter()
    result = None
    for msg in stub.Generate(req, timeout=600):
        if msg.WhichOneof("msg") == "result":
            result = msg.result
    return time.perf_counter() - t0, result


def eager_generate(model, batch, length, new):
    t0 = time.perf_counter()
    ids, _ = rg.greedy_generate(model, prompts(batch, length), new, kv=rg.kv_shape(model))
    return time.perf_counter() - t0, ids


def med(xs):
    return statistics.median(xs)


def section_a(d, model):
    print("\nA. tokens/s, greedy, prompts of 16 tokens, %d new tokens" % ARGS.new)
    print(f"{'batch':>5} {'Generate (gRPC)':>16} {'eager loop':>12} {'ratio':>7}")
    ok = True
    for batch in (1, 8):
        daemon_generate(d.inference, batch, 16, 4)  # warm-up: backend, executors
        eager_generate(model, batch, 16, 4)
        ts_d, ts_e = [], []
        for r in range(ARGS.rounds):
            runs = [("d", lambda: daemon_generate(d.inference, batch, 16, ARGS.new)),
                    ("e", lambda: eager_generate(model, batch, 16, ARGS.new))]
            if r % 2:
                runs.reverse()
            for who, fn in runs:
                t, out = fn()
                (ts_d if who == "d" else ts_e).append(t)
        tok = batch * ARGS.new
        rd, re_ = tok / med(ts_d), tok / med(ts_e)
        ratio = rd / re_
        ok = ok and ratio >= 0.9
        print(f"{batch:>5} {rd:>14.1f}/s {re_:>10.1f}/s {ratio:>6.2f}x")
    print(f"{'PASS' if ok else 'MISS'} A: Generate >= 0.9x the in-process eager loop")
    # Same tokens as the reference, once.
    _, res = daemon_generate(d.inference, 2, 16, 16)
    _, want = eager_generate(model, 2, 16, 16)
    same = [list(r.ids) for r in res.rows] == want
    print(f"check   : Generate's ids equal the eager loop's: {'yes' if same else 'NO'}")


def section_b(d):
    print("\nB. ms per decode step (daemon's per_token_ms), batch 1, 32 new tokens")
    print(f"{'prefix':>6} {'cached':>9} {'recompute':>10}")
    rows = {}
    for length in (16, 512):
        cached, off = [], []
        for r in range(ARGS.rounds):
            cached.append(daemon_generate(d.inference, 1, length, 32)[1].timing.per_token_ms)
            off.append(daemon_generate(d.inference, 1, length, 32, cache=P.CACHE_MODE_OFF)[1]
                       .timing.per_token_ms)
        rows[length] = (med(cached), med(off))
        print(f"{length:>6} {rows[length][0]:>8.2f} {rows[length][1]:>9.2f}")
    growth_c = rows[512][0] / rows[16][0]
    growth_o = rows[512][1] / rows[16][1]
    print(f"growth 16 -> 512: cached {growth_c:.2f}x, recompute {growth_o:.2f}x")
    print(f"{'PASS' if growth_c < growth_o / 4 else 'MISS'} B: a cached step grows far less "
          "than a recomputed one")


def section_c(d):
    print("\nC. per-step overhead of watching each step, batch 1, prefix 16, ms per decode step")
    site = "layers.6.resid_post"
    one_node = P.Trace(nodes=[P.Node(id=1, read=P.ReadNode(site=site))])
    read_save = P.Trace(nodes=[P.Node(id=1, read=P.ReadNode(site=site)),
                               P.Node(id=2, save=P.SaveNode(value=1, name="r"))])
    kinds = [("none", {}), ("one-node graph (read)", {"intervention": one_node}),
             ("graph read + save", {"intervention": read_save}), ("save site", {"save": [site]})]
    times = {k: [] for k, _ in kinds}
    for _, kw in kinds:
        daemon_generate(d.inference, 1, 16, 4, **kw)
    for r in range(ARGS.rounds):
        for k, kw in (kinds if r % 2 == 0 else kinds[::-1]):
            times[k].append(daemon_generate(d.inference, 1, 16, ARGS.new, **kw)[1].timing.per_token_ms)
    base = med(times["none"])
    for k, _ in kinds:
        m = med(times[k])
        print(f"  {k:<24} {m:8.3f}  {100 * (m - base) / base:+6.1f}%")
    over = (med(times["one-node graph (read)"]) - base) / base
    print(f"{'PASS' if over <= 0.05 else 'MISS'} C: a one-node intervention graph <= 5% per step")


def main():
    path = os.path.join(ARGS.fixtures, BIG, "model.pt")
    if not os.path.exists(path):
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "fixtures", "gen_fixtures.py"),
                        "--out", ARGS.fixtures, "--only", "gpt2", "--bench"], check=True)
    torch.set_num_threads(ARGS.threads)
    with open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    print(f"machine : {os.cpu_count()} CPUs, {cpu}, Linux {platform.release()}")
    print(f"torch   : {torch.__version__}; daemon --threads {ARGS.threads}, "
          f"torch.set_num_threads({ARGS.threads}); rounds {ARGS.rounds}")
    model = rg.eager_model(BIG, archive=path)
    d = Daemon("--load", BIG, "--threads", str(ARGS.threads), repo=ARGS.fixtures, timeout=120)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            ms = {m.name: m.state for m in d.models.List(models_pb2.ListModelsRequest()).models}
            if ms.get(BIG) == models_pb2.MODEL_STATE_LOADED:
                break
            time.sleep(0.1)
        if "A" not in SKIP:
            section_a(d, model)
        if "B" not in SKIP:
            section_b(d)
        if "C" not in SKIP:
            section_c(d)
    finally:
        d.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
