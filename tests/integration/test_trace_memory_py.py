"""Memory of traces stays flat (issue 5): the daemon's resident set
(VmRSS in /proc/<pid>/status) over 200 repeated traces, and intermediate
values that no later node needs are freed while a trace runs (peak RSS,
VmHWM, of a long chain of logits-sized calls).

The bounds are generous on purpose (allocator caches, libtorch's
once-per-process state); what they catch is a per-trace leak of saved or
intermediate tensors, which at these sizes is hundreds of MB. Every figure
is printed.
"""

import os
import time
import unittest

import numpy as np

from nnedit_testlib import Daemon, trace
from test_trace_workflows_py import Graph, invokes, wait_loaded

MB = 1 << 20
NAME = "gpt2-script"


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "VmSize"):
                out[k] = int(v.split()[0]) * 1024  # kB
    return out


class Memory(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        # Under AddressSanitizer (the test command's second build) freed
        # memory sits in ASan's quarantine (256 MiB by default) before it is
        # reused, so "freed" would not show in RSS. A small quarantine keeps
        # use-after-free detection for recent frees and lets the bounds below
        # measure our frees, not ASan's. No effect on a normal build.
        asan = os.environ.get("ASAN_OPTIONS", "")
        os.environ["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=8"
        cls.d = Daemon("--load", NAME)
        wait_loaded(cls.d, [NAME])
        cls.pid = cls.d.proc.pid

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop()
        assert code == 0, "nneditd exited %s:\n%s" % (code, cls.d.log_text())

    def rss(self):
        return proc_status(self.pid)["VmRSS"]

    def test_rss_flat_over_200_traces(self):
        """200 requests, each a session of two traces over a batch of 8 x 48
        tokens in two invokes: saves of every residual, pattern and the
        logits (~2.7 MB per request), a steering write from a constant, a
        logit lens through module calls and topk, mean ablation, and a
        RefNode patch in the second trace. Growth of VmRSS from request 20
        to request 200 must stay under 50 MB; the outputs must not change."""
        rng = np.random.default_rng(0)
        rows = [list(rng.integers(1, 1000, size=48)) for _ in range(8)]
        vec = rng.normal(size=64).astype(np.float32)

        g = Graph()
        for L in range(2):
            g.save(g.read(f"layers.{L}.resid_pre"), f"pre.{L}")
            g.save(g.read(f"layers.{L}.self_attn.pattern"), f"pattern.{L}")
        r = g.read("layers.0.resid_post")
        g.save(r, "post.0")
        g.write("layers.0.resid_post", g.call("add", r, g.const(vec)))
        m = g.read("layers.1.mlp_out", invoke=1)
        mu = g.call("mean", m, dim=[1], keepdim=True)
        g.write("layers.1.mlp_out", g.call("add", g.call("zeros_like", m), mu), invoke=1)
        lens = g.module("lm_head", g.module("ln_final", g.read("layers.1.resid_post")))
        g.save(g.call("topk_indices", lens, k=10, dim=-1), "lens.top")
        g.save(g.read("logits"), "logits")
        g2 = Graph(first_id=1000)
        c = g2.ref("post.0")
        g2.write("layers.0.resid_post", g2.index(c, slice(None), slice(10, 11)),
                 ranges=[(1, 10, 11)])
        g2.save(g2.read("layers.1.resid_post"), "patched.post.1")
        traces = [g.trace("main", invokes(rows[:4], rows[4:])), g2.trace("patch", invokes(rows))]

        figures = []
        first = None
        t0 = time.monotonic()
        for i in range(1, 201):
            res, t = trace(self.d.inference, NAME, traces, timeout=120)
            if first is None:
                first = t
                nbytes = sum(a.nbytes for a in t.values())
                print(f"\n{len(t)} tensors, {nbytes / MB:.2f} MiB streamed per request")
            elif i % 50 == 0:
                for k in first:
                    np.testing.assert_array_equal(t[k], first[k], k)
            if i in (1, 20) or i % 20 == 0:
                figures.append((i, self.rss()))
        dt = time.monotonic() - t0
        print(f"200 requests (400 traces) in {dt:.1f} s")
        print("request  VmRSS (MiB)")
        for i, v in figures:
            print(f"{i:7d}  {v / MB:9.1f}")
        at20 = dict(figures)[20]
        at200 = dict(figures)[200]
        growth = (at200 - at20) / MB
        peak = proc_status(self.pid)["VmHWM"] / MB
        print(f"growth from request 20 to 200: {growth:+.1f} MiB (bound 50); VmHWM {peak:.1f} MiB")
        self.assertLess(growth, 50.0)

    def test_intermediates_are_freed(self):
        """A chain of 150 calls on the [16, 64, 1000] lens logits (3.9 MiB
        each; ~590 MiB if every intermediate stayed alive until the end):
        the daemon's peak RSS may rise by at most 100 MiB over what a trace
        holding a few such values needs."""
        rows = [[(i * 37 + j * 11) % 999 + 1 for j in range(64)] for i in range(16)]

        def chain(n):
            g = Graph()
            x = g.module("lm_head", g.module("ln_final", g.read("layers.1.resid_post")))
            for _ in range(n):
                x = g.call("mul", x, 1.0)
            g.save(g.call("topk_indices", x, k=1, dim=-1), "top")
            return [g.trace(f"chain{n}", invokes(rows))]

        # Warm up with a short chain (same sizes, 2 calls), then measure
        # the peak the long chain adds.
        for _ in range(3):
            trace(self.d.inference, NAME, chain(2), timeout=120)
        before = proc_status(self.pid)
        res, t = trace(self.d.inference, NAME, chain(150), timeout=300)
        after = proc_status(self.pid)
        _, short = trace(self.d.inference, NAME, chain(2), timeout=120)
        rise = (after["VmHWM"] - before["VmHWM"]) / MB
        print(f"\nVmRSS before {before['VmRSS'] / MB:.1f} MiB, VmHWM before {before['VmHWM'] / MB:.1f}"
              f" after {after['VmHWM'] / MB:.1f} MiB: the 150-call chain raised the peak by "
              f"{rise:.1f} MiB (bound 100; 590 if nothing were freed)")
        np.testing.assert_array_equal(t["top"], short["top"])
        self.assertLess(rise, 100.0)


if __name__ == "__main__":
    unittest.main()
