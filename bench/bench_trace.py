#!/usr/bin/python3
"""bench_trace.py — issue 5's performance figures for traces, measured side by
side in one run (ratios, not timed asserts). See bench/README.md, "Traces".

  /usr/bin/python3 bench/bench_trace.py [--threads N] [--rounds R] [--as-is]

A. GPT-2-small-sized fixture, batch 1 x 128 tokens, CPU: a Trace saving all
   12 residuals (layers.{i}.resid_post), end to end over gRPC on loopback
   (request, forward, 12 x 384 KiB streamed back and assembled into numpy
   arrays), against the in-process pristine forward (Debian's torch in this
   process, torch.jit.load of the same archive, the daemon's thread count).
   Rounds interleave the runs, the order rotated each round. Target <= 1.2x.
B. The daemon's fixed per-trace overhead: the tiny gpt2-script fixture, one
   token; Trace with an empty graph against Forward, both end to end and from
   the results' own timing fields (in the daemon). Target <= 0.3 ms.
C. Streaming of saved tensors: a large save (the logits site, [4, 128, 50257]
   float32, 103 MB) against the same Trace with an empty graph; bytes/s into
   this Python client, as the daemon sees it, and into the C client
   (nneditctl trace -f, when build/nneditctl or $NNEDITCTL exists).

Prints the machine and environment, tables, and a PASS/MISS line per target.
Exits 0 whenever it could run at all.
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
    ap.add_argument("--threads", type=int, default=2,
                    help="daemon --threads and torch.set_num_threads (default 2)")
    ap.add_argument("--rounds", type=int, default=21, help="rounds of A (default 21)")
    ap.add_argument("--overhead-calls", type=int, default=1500,
                    help="calls of each kind in B (default 1500)")
    ap.add_argument("--stream-reps", type=int, default=5, help="repetitions of C (default 5)")
    ap.add_argument("--seq", type=int, default=128, help="tokens in A (default 128)")
    ap.add_argument("--as-is", action="store_true",
                    help="leave OPENBLAS_CORETYPE / OMP_WAIT_POLICY as they are")
    ap.add_argument("--fixtures", default=os.path.join(ROOT, "build", "fixtures-bench"))
    ap.add_argument("--nneditd", default=os.environ.get("NNEDITD", os.path.join(ROOT, "build", "nneditd")))
    ap.add_argument("--py-gen", default=os.environ.get("NNE_PY_GEN", os.path.join(ROOT, "build", "gen_py")))
    ap.add_argument("--skip", default="", help="comma list of sections to skip (A,B,C)")
    ap.add_argument("--chunk-bytes", type=int, default=0,
                    help="daemon --chunk-bytes (default: the daemon's, 1 MiB)")
    return ap.parse_args()


ARGS = parse_args()


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchenv import cpu_flags, setup  # noqa: E402

setup(ARGS.as_is, ARGS.py_gen, ARGS.nneditd, ARGS.fixtures)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import ctypes  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from nnedit_testlib import NP_DTYPES, Daemon, inference_pb2, models_pb2  # noqa: E402

P = inference_pb2
BIG = "gpt2-small"
TINY = "gpt2-script"
MiB = 1 << 20


# ---- machine ---------------------------------------------------------------------


def openblas_core():
    """The OpenBLAS kernel family in use in this process (its loaded library)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
        for lib in sorted(libs):
            fn = getattr(ctypes.CDLL(lib), "openblas_get_corename", None)
            if fn:
                fn.restype = ctypes.c_char_p
                return fn().decode() + f" ({os.path.basename(lib)})"
    except OSError:
        pass
    return "(OpenBLAS not found in this process)"


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    fl = cpu_flags()
    simd = " ".join(x for x in ("avx512f", "avx2", "fma") if x in fl)
    print(f"machine : {os.cpu_count()} CPUs, {model} ({simd}), {mem} RAM, "
          f"Linux {platform.release()}")
    print(f"torch   : {torch.__version__} (Python {platform.python_version()}), "
          f"OpenBLAS core {openblas_core()}")
    print("env     : " + " ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in
                                  ("OPENBLAS_CORETYPE", "OMP_WAIT_POLICY", "OMP_NUM_THREADS",
                                   "OPENBLAS_NUM_THREADS"))
          + ("  [--as-is]" if ARGS.as_is else "  [set by bench_trace.py unless already set]"))
    print(f"threads : daemon --threads {ARGS.threads}, torch.set_num_threads({ARGS.threads})")


def cpu_ns(pid):
    """CPU time of every thread of process pid so far, in ns (schedstat)."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except OSError:
                pass  # the thread ended
    except OSError:
        pass
    return total


class Load:
    """Other load on the machine: busy CPU time from /proc/stat minus this
    process's and the daemon's own, as a share of all cores."""

    def __init__(self, pids):
        self.pids = pids
        self.t0 = self.sample()

    @staticmethod
    def _jiffies(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
            return int(parts[11]) + int(parts[12])  # utime stime
        except OSError:
            return 0

    def sample(self):
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        total = sum(v)
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        own = sum(self._jiffies(p) for p in self.pids)
        return total, total - idle, own

    def share(self):
        t1 = self.sample()
        total = t1[0] - self.t0[0]
        busy = t1[1] - self.t0[1]
        own = t1[2] - self.t0[2]
        return max(0.0, (busy - own) / total) if total else 0.0


# ---- requests ------------------------------------------------------------------------


def trace_req(model, rows, nodes=(), logits=P.LOGITS_MODE_UNSPECIFIED):
    return P.TraceRequest(model=model, logits=logits, traces=[P.Trace(
        name="t", invokes=[P.Invoke(input_ids=[P.TokenRow(ids=r) for r in rows])], nodes=list(nodes))])


def save_nodes(sites):
    nodes = []
    for k, s in enumerate(sites):
        nodes.append(P.Node(id=2 * k + 1, read=P.ReadNode(site=s)))
        nodes.append(P.Node(id=2 * k + 2, save=P.SaveNode(value=2 * k + 1, name=s)))
    return nodes


def run_trace(stub, req, assemble=True):
    """Runs a Trace, assembling every tensor into an ndarray (what a client
    does; with assemble False only counting the bytes). Returns (result,
    tensors, wall s, first chunk -> last chunk s)."""
    t0 = time.perf_counter()
    bufs = {}
    tensors = {}
    result = None
    first = last = None
    for msg in stub.Trace(req, timeout=600):
        if msg.HasField("chunk"):
            c = msg.chunk
            if first is None:
                first = time.perf_counter()
            if not assemble:
                tensors[c.name] = tensors.get(c.name, 0) + len(c.data)
                last = time.perf_counter()
                continue
            b = bufs.get(c.name)
            if b is None:  # one buffer of the announced size, filled in place
                b = bufs[c.name] = [c.dtype, list(c.shape), bytearray(c.total_bytes)]
            b[2][c.offset:c.offset + len(c.data)] = c.data
            if c.last:
                tensors[c.name] = np.frombuffer(b[2], dtype=NP_DTYPES[b[0]]).reshape(b[1])
                del bufs[c.name]
                last = time.perf_counter()
        if msg.HasField("result"):
            result = msg.result
    wall = time.perf_counter() - t0
    return result, tensors, wall, (last - first) if first is not None else 0.0


def run_forward(stub, req):
    t0 = time.perf_counter()
    result = None
    for msg in stub.Forward(req, timeout=600):
        if msg.HasField("result"):
            result = msg.result
    return result, time.perf_counter() - t0


def wait_loaded(d, names, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ms = {m.name: m for m in d.models.List(models_pb2.ListModelsRequest()).models}
        if all(n in ms and ms[n].state == models_pb2.MODEL_STATE_LOADED for n in names):
            return
        bad = [n for n in names if n in ms and ms[n].state == models_pb2.MODEL_STATE_FAILED]
        if bad:
            raise SystemExit(f"bench_trace: {bad} failed to load: {ms[bad[0]].error}")
        time.sleep(0.1)
    raise SystemExit("bench_trace: models did not load in time")


def stats(xs):
    xs = sorted(xs)
    return statistics.median(xs), xs[0], xs[-1]


def ms(x):
    return f"{x * 1e3:9.2f}"


def verdict(ok):
    return "PASS" if ok else "MISS"


# ---- A: 12 residuals end to end vs the in-process pristine forward --------------------


def section_a(d, load_pids):
    seq = ARGS.seq
    with open(os.path.join(ARGS.fixtures, BIG, "model.json")) as f:
        vocab = __import__("json").load(f)["config"]["vocab_size"]
    ids = [(i * 7919 + 13) % vocab for i in range(seq)]
    torch.set_num_threads(ARGS.threads)
    model = torch.jit.load(os.path.join(ARGS.fixtures, BIG, "model.pt"), map_location="cpu")
    model.eval()
    x = torch.tensor([ids])

    def pristine():
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model(x)
        return time.perf_counter() - t0, out

    sites = [f"layers.{i}.resid_post" for i in range(12)]
    saves = trace_req(BIG, [ids], save_nodes(sites))
    empty = trace_req(BIG, [ids])
    fwd = P.ForwardRequest(model=BIG, input_ids=[P.TokenRow(ids=ids)])

    # Correctness once: the daemon's logits (Trace, LOGITS_MODE_LAST) against the
    # in-process archive, and the saves' shapes.
    _, ref = pristine()
    res, t, _, _ = run_trace(d.inference, trace_req(BIG, [ids], save_nodes(sites), P.LOGITS_MODE_LAST))
    diff = float(np.abs(t["t/logits"] - ref[:, -1].numpy()).max())
    nbytes = sum(t[s].nbytes for s in sites)
    print(f"\nA. {BIG}, batch 1 x {seq}: check: max |daemon last-token logits - in-process| = {diff:g}; "
          f"12 saves {tuple(t[sites[0]].shape)} float32 = {nbytes / MiB:.2f} MiB per trace")

    runs = {
        "in-process pristine forward": lambda: (pristine()[0], None),
        "daemon Forward (gRPC, no saves)": lambda: (lambda r: (r[1], r[0].timing))(run_forward(d.inference, fwd)),
        "daemon Trace, empty graph": lambda: (lambda r: (r[2], r[0].timing))(run_trace(d.inference, empty)),
        "daemon Trace, save 12 residuals": lambda: (lambda r: (r[2], r[0].timing))(run_trace(d.inference, saves)),
    }
    names = list(runs)
    for _ in range(3):  # warm-up (the profiling executors optimise on the first runs)
        for n in names:
            runs[n]()
    wall = {n: [] for n in names}
    timing = {n: [] for n in names}
    cpu = {n: [] for n in names}
    load = Load(load_pids)
    for r in range(ARGS.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            c0 = sum(cpu_ns(p) for p in load_pids)
            w, tm = runs[n]()
            cpu[n].append((sum(cpu_ns(p) for p in load_pids) - c0) / 1e9)
            wall[n].append(w)
            timing[n].append(tm)
    other = load.share()
    base = wall[names[0]]
    print(f"   {ARGS.rounds} rounds, order rotated per round; other load on the machine during A: "
          f"{other * 100:.0f}%")
    print(f"   {'run':34s} {'median ms':>9s} {'min ms':>9s} {'max ms':>9s} {'ratio':>6s} {'min r':>6s}"
          f" {'paired':>6s} {'daemon compute ms':>18s} {'CPU ms':>8s} {'CPU r':>6s}")
    fig = {}
    for n in names:
        med, lo, hi = stats(wall[n])
        ratio = med / statistics.median(base)
        min_r = lo / min(base)
        paired = statistics.median(a / b for a, b in zip(wall[n], base))
        comp = [tm.compute_ms for tm in timing[n] if tm is not None]
        comp_s = f"{statistics.median(comp):18.2f}" if comp else f"{'':18s}"
        cpu_r = statistics.median(cpu[n]) / statistics.median(cpu[names[0]])
        print(f"   {n:34s} {ms(med)} {ms(lo)} {ms(hi)} {ratio:6.3f} {min_r:6.3f} {paired:6.3f}{comp_s}"
              f" {statistics.median(cpu[n]) * 1e3:8.1f} {cpu_r:6.3f}")
        fig[n] = (ratio, min_r, paired, cpu_r)
    n = "daemon Trace, save 12 residuals"
    tot = [tm.total_ms for tm in timing[n]]
    qu = [tm.queue_ms for tm in timing[n]]
    print(f"   {n}: in-daemon total median {statistics.median(tot):.2f} ms "
          f"(queue {statistics.median(qu):.3f} ms); streamed {nbytes / MiB:.2f} MiB")
    fw = wall["daemon Forward (gRPC, no saves)"]
    print(f"   12-residual trace / daemon Forward (what the trace itself adds): "
          f"{statistics.median(wall[n]) / statistics.median(fw):.3f} (median), "
          f"{min(wall[n]) / min(fw):.3f} (min), "
          f"{statistics.median(a / b for a, b in zip(wall[n], fw)):.3f} (paired)")
    ratio, min_r, paired, cpu_r = fig[n]
    print("   (CPU ms: CPU time of this process and the daemon, all threads, per run; CPU r: its ratio "
          "to the in-process forward's, a figure other load on the machine disturbs less than wall time)")
    judged, how = (min_r, "min/min, other load > 10%") if other > 0.10 else (ratio, "median/median")
    print(f"   => 12-residual trace end to end / in-process pristine = {ratio:.3f} (median), "
          f"{min_r:.3f} (min), {paired:.3f} (paired), CPU time {cpu_r:.3f}")
    return [f"{verdict(judged <= 1.2)}  A. trace saving 12 residuals end to end <= 1.2x in-process "
            f"pristine forward: {judged:.3f} ({how}; median {ratio:.3f}, min {min_r:.3f}, paired {paired:.3f}, "
            f"CPU time {cpu_r:.3f})"]


# ---- B: fixed per-trace overhead -------------------------------------------------------


def section_b(d, load_pids):
    ids = [[13]]
    fwd = P.ForwardRequest(model=TINY, input_ids=[P.TokenRow(ids=r) for r in ids])
    empty = trace_req(TINY, ids)
    one = trace_req(TINY, ids, save_nodes(["layers.0.resid_post"]))
    kinds = {
        "Forward": lambda: (lambda r: (r[1], r[0].timing))(run_forward(d.inference, fwd)),
        "Trace, empty graph": lambda: (lambda r: (r[2], r[0].timing))(run_trace(d.inference, empty)),
        "Trace, 1 read + save": lambda: (lambda r: (r[2], r[0].timing))(run_trace(d.inference, one)),
    }
    names = list(kinds)
    for _ in range(50):
        for n in names:
            kinds[n]()
    wall = {n: [] for n in names}
    tim = {n: [] for n in names}
    load = Load(load_pids)
    blocks = 30
    per = max(1, ARGS.overhead_calls // blocks)
    for b in range(blocks):
        order = names[b % len(names):] + names[:b % len(names)]
        for n in order:
            for _ in range(per):
                w, tm = kinds[n]()
                wall[n].append(w)
                tim[n].append(tm)
    other = load.share()
    print(f"\nB. {TINY}, 1 token, {blocks} blocks x {per} calls of each kind (order rotated); "
          f"other load {other * 100:.0f}%")
    print(f"   {'call':22s} {'e2e median ms':>13s} {'e2e min ms':>10s} {'daemon total':>12s} "
          f"{'compute':>8s} {'queue':>7s} {'total-compute':>13s}")
    med = {}
    for n in names:
        e2e = statistics.median(wall[n])
        tot = statistics.median(t.total_ms for t in tim[n])
        comp = statistics.median(t.compute_ms for t in tim[n])
        qu = statistics.median(t.queue_ms for t in tim[n])
        rest = statistics.median(t.total_ms - t.compute_ms for t in tim[n])
        med[n] = (e2e * 1e3, min(wall[n]) * 1e3, tot, comp)
        print(f"   {n:22s} {e2e * 1e3:13.3f} {min(wall[n]) * 1e3:10.3f} {tot:12.3f} {comp:8.3f} "
              f"{qu:7.3f} {rest:13.3f}")
    e2e_over = med["Trace, empty graph"][0] - med["Forward"][0]
    e2e_min_over = med["Trace, empty graph"][1] - med["Forward"][1]
    in_over = med["Trace, empty graph"][2] - med["Forward"][2]
    comp_over = med["Trace, empty graph"][3] - med["Forward"][3]
    abs_in = med["Trace, empty graph"][2]
    one_in = med["Trace, 1 read + save"][2] - med["Forward"][2]
    one_e2e = med["Trace, 1 read + save"][0] - med["Forward"][0]
    print(f"   => fixed overhead of an empty-graph Trace over Forward: end to end {e2e_over:+.3f} ms "
          f"(min {e2e_min_over:+.3f}), in the daemon {in_over:+.3f} ms (total_ms; compute_ms "
          f"{comp_over:+.3f}); an empty trace's whole in-daemon time {abs_in:.3f} ms")
    print(f"   (context: a trace with one read + save costs {one_in:+.3f} ms in the daemon, "
          f"{one_e2e:+.3f} ms end to end, over Forward)")
    return [f"{verdict(in_over <= 0.3)}  B. fixed per-trace overhead (empty graph) <= 0.3 ms, in the daemon: "
            f"{in_over:+.3f} ms (Trace total_ms - Forward total_ms, medians)",
            f"{verdict(e2e_over <= 0.3)}  B. fixed per-trace overhead (empty graph) <= 0.3 ms, end to end: "
            f"{e2e_over:+.3f} ms (median e2e Trace - Forward over gRPC loopback)"]


# ---- C: streaming throughput ------------------------------------------------------------


def section_c(d, load_pids):
    rows = [[(i * 7919 + 13 + r * 31) % 50257 for i in range(128)] for r in range(4)]
    big = trace_req(BIG, rows, save_nodes(["logits"]))
    empty = trace_req(BIG, rows)
    fwd_all = P.ForwardRequest(model=BIG, input_ids=[P.TokenRow(ids=r) for r in rows],
                               logits=P.LOGITS_MODE_ALL)
    tr_all = trace_req(BIG, rows, logits=P.LOGITS_MODE_ALL)
    run_trace(d.inference, big)
    run_trace(d.inference, empty)
    load = Load(load_pids)
    rec = {"save": [], "empty": [], "fwd": [], "tall": [], "raw": []}
    for k in range(ARGS.stream_reps):
        for what in (["save", "empty", "raw", "tall", "fwd"] if k % 2 == 0
                     else ["fwd", "tall", "raw", "empty", "save"]):
            if what == "save":
                rec["save"].append(run_trace(d.inference, big))
            elif what == "raw":
                rec["raw"].append(run_trace(d.inference, big, assemble=False))
            elif what == "empty":
                rec["empty"].append(run_trace(d.inference, empty))
            elif what == "tall":
                rec["tall"].append(run_trace(d.inference, tr_all))
            else:
                r, w = run_forward(d.inference, fwd_all)
                rec["fwd"].append((r, w))
    other = load.share()
    ctl = ctl_stream(d, rows)
    nbytes = rec["save"][0][1]["logits"].nbytes
    w_save = statistics.median(x[2] for x in rec["save"])
    w_empty = statistics.median(x[2] for x in rec["empty"])
    w_fwd = statistics.median(x[1] for x in rec["fwd"])
    span = statistics.median(x[3] for x in rec["save"])
    c_save = statistics.median(x[0].timing.compute_ms for x in rec["save"])
    c_empty = statistics.median(x[0].timing.compute_ms for x in rec["empty"])
    # Per run, the wall time outside the daemon's compute (request, queue,
    # sending, receiving, assembling): save minus empty, immune to the
    # compute time's swings on a loaded machine.
    inc = statistics.median(x[2] - x[0].timing.compute_ms / 1e3 for x in rec["save"]) - \
        statistics.median(x[2] - x[0].timing.compute_ms / 1e3 for x in rec["empty"])
    span_raw = statistics.median(x[3] for x in rec["raw"])
    w_tall = statistics.median(x[2] for x in rec["tall"])
    span_tall = statistics.median(x[3] for x in rec["tall"])
    # In the daemon, total_ms - compute_ms of the save trace minus that of
    # the empty one: the time the result waited for the chunks to be sent.
    send = statistics.median(x[0].timing.total_ms - x[0].timing.compute_ms for x in rec["save"]) - \
        statistics.median(x[0].timing.total_ms - x[0].timing.compute_ms for x in rec["empty"])
    print(f"\nC. {BIG}, batch 4 x 128, save the `logits` site: {tuple(rec['save'][0][1]['logits'].shape)} "
          f"float32 = {nbytes / 1e6:.1f} MB per trace; {ARGS.stream_reps} reps; other load {other * 100:.0f}%")
    print(f"   Trace with the save     e2e median {w_save * 1e3:9.1f} ms (daemon compute {c_save:.1f} ms)")
    print(f"   Trace, empty graph      e2e median {w_empty * 1e3:9.1f} ms (daemon compute {c_empty:.1f} ms)")
    print(f"   Trace, LOGITS_MODE_ALL  e2e median {w_tall * 1e3:9.1f} ms (the same bytes as logits; "
          f"first -> last chunk {span_tall * 1e3:.1f} ms)")
    print(f"   Forward, LOGITS_MODE_ALL e2e median {w_fwd * 1e3:9.1f} ms (the same bytes through Forward)")
    if send > 0:
        print(f"   in the daemon, total_ms - compute_ms grew by {send:.1f} ms with the save "
              f"= {nbytes / (send / 1e3) / 1e9:.2f} GB/s (sending, as the daemon sees it)")
    print(f"   first -> last chunk at the client: {span * 1e3:.1f} ms = {nbytes / span / 1e9:.2f} GB/s "
          f"(assembling ndarrays); {span_raw * 1e3:.1f} ms = {nbytes / span_raw / 1e9:.2f} GB/s "
          f"(only counting bytes)")
    print(f"   wall time outside the daemon's compute grew by {inc * 1e3:.1f} ms with the save = "
          f"{nbytes / inc / 1e9:.2f} GB/s end to end (the daemon's compute: {c_save:.1f} vs "
          f"{c_empty:.1f} ms)")
    if ctl:
        print(f"   C client (nneditctl trace -f, -o json, nothing written): with the save {ctl[0] * 1e3:.1f} ms, "
              f"empty graph {ctl[1] * 1e3:.1f} ms; outside compute +{ctl[2] * 1e3:.1f} ms = "
              f"{nbytes / ctl[2] / 1e9:.2f} GB/s end to end")
    return ([f"INFO  C. saved tensor streaming, C client (nneditctl): {nbytes / ctl[2] / 1e9:.2f} GB/s end to end"]
            if ctl else []) + [f"INFO  C. saved tensor streaming (gRPC loopback, Python grpcio client): "
            f"{nbytes / inc / 1e9:.2f} GB/s end to end, {nbytes / span / 1e9:.2f} GB/s first->last chunk"
            + (f", {nbytes / (send / 1e3) / 1e9:.2f} GB/s sending as the daemon sees it" if send > 0 else "")]


def ctl_stream(d, rows):
    """The same large save through the C client: nneditctl trace -f with -o
    json (it receives and assembles every chunk, writes no file). Returns
    (wall with save, wall empty, growth of wall minus the daemon's compute)
    as medians, or None without nneditctl."""
    import json
    import tempfile
    ctl = os.environ.get("NNEDITCTL") or os.path.join(os.path.dirname(ARGS.nneditd), "nneditctl")
    if not os.path.exists(ctl):
        return None
    tmp = tempfile.mkdtemp(prefix="bench-trace-")
    files = {}
    for kind, nodes in (("save", [{"id": 1, "read": {"site": "logits"}},
                                  {"id": 2, "save": {"value": 1, "name": "logits"}}]),
                        ("empty", [])):
        files[kind] = os.path.join(tmp, kind + ".json")
        with open(files[kind], "w") as f:
            json.dump({"model": BIG, "top_k": 0, "traces": [{"name": "t", "invokes": [{"tokens": rows}],
                                                              "nodes": nodes}]}, f)
    out = {"save": [], "empty": []}
    try:
        for k in range(ARGS.stream_reps + 1):
            for kind in (("save", "empty") if k % 2 else ("empty", "save")):
                t0 = time.perf_counter()
                p = subprocess.run([ctl, "--addr", d.addr, "trace", "-f", files[kind], "-o", "json"],
                                   capture_output=True, text=True, timeout=600)
                w = time.perf_counter() - t0
                if p.returncode != 0:
                    print(f"   nneditctl failed: {p.stderr.strip()}")
                    return None
                comp = json.loads(p.stdout)["traces"][0]["timing"]["compute_ms"] / 1e3
                if k:
                    out[kind].append((w, w - comp))
    finally:
        for f in files.values():
            os.unlink(f)
        os.rmdir(tmp)
    med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
           for k, v in out.items()}
    return med["save"][0], med["empty"][0], med["save"][1] - med["empty"][1]


def main():
    machine()
    for n in (BIG, TINY):
        if not os.path.exists(os.path.join(ARGS.fixtures, n, "model.pt")):
            print(f"bench_trace: {ARGS.fixtures}/{n} is missing; generating with gen_fixtures.py --bench",
                  file=sys.stderr)
            subprocess.run([sys.executable, os.path.join(ROOT, "tests", "fixtures", "gen_fixtures.py"),
                            "--out", ARGS.fixtures, "--bench"], check=True)
    ver = subprocess.run([ARGS.nneditd, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"daemon  : {ARGS.nneditd} ({ver})")
    extra = ["--chunk-bytes", str(ARGS.chunk_bytes)] if ARGS.chunk_bytes else []
    print(f"daemon args: --threads {ARGS.threads} {' '.join(extra)}")
    d = Daemon("--load", BIG, "--load", TINY, "--threads", str(ARGS.threads), *extra, repo=ARGS.fixtures,
               timeout=120)
    lines = []
    try:
        wait_loaded(d, [BIG, TINY])
        pids = [os.getpid(), d.proc.pid]
        skip = {s.strip().upper() for s in ARGS.skip.split(",") if s.strip()}
        for name, fn in (("A", section_a), ("B", section_b), ("C", section_c)):
            if name in skip:
                continue
            try:
                lines += fn(d, pids)
            except Exception as e:  # a benchmark reports what it could not measure
                import grpc
                if isinstance(e, grpc.RpcError):
                    lines.append(f"ERROR {name}. {e.code().name}: {e.details()}")
                else:
                    raise
    finally:
        d.stop()
    print()
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
