"""The device path (issue 14), checked where CI can: on the CPU.

- Memory: Describe's device_bytes is what the archive's parameters and
  buffers hold (each storage once, as PyTorch counts them); kv_cache_bytes,
  Admin.Stats' memory and devices lists and /metrics say the same figures,
  and a Generate's KV cache is counted from admission to its end.
- Out of memory: an allocation the process cannot have (a real one, under
  RLIMIT_AS) is RESOURCE_EXHAUSTED naming the model, its device and the
  bytes, and the daemon serves on with unchanged results.
- bfloat16 and float16: a model loaded in another dtype answers as the same
  archive converted in PyTorch does; an edit's float32 operand is converted
  once to its site's dtype, and a value that dtype cannot hold is refused,
  naming the edit; where eager PyTorch has no kernel for a dtype on this
  device (float16 on 1.13's CPU), the load fails saying so.

The CUDA specifics (streams, pinned copies, the caching allocator's figures)
run only on a GPU machine: deploy/gpu-check.sh.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import grpc
import numpy as np
import torch

from nnedit_testlib import (Daemon, FIXTURES, forward, manifest, models_pb2, tensor_pb2,
                            trace, wait_loaded, write_slow_model)
from nnedit.v1 import admin_pb2, admin_pb2_grpc, edits_pb2, edits_pb2_grpc
from nnedit.v1 import inference_pb2 as I

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "fixtures"))
import reference_generate as rg  # noqa: E402

NAMES = ["gpt2-script", "llama-script", "neox-script", "gpt2-trace"]
LAYER1 = {"gpt2": "transformer.h.1", "llama": "model.layers.1", "neox": "gpt_neox.layers.1"}
SANITIZED = os.environ.get("NNE_SANITIZED", "0") not in ("", "0", "OFF", "FALSE")


def resident_bytes(archive, float_itemsize=None):
    """Bytes of the archive's parameters and buffers, each storage once;
    with float_itemsize, as if its floating ones had that item size (a
    model loaded in another floating dtype; integer buffers stay)."""
    m = torch.jit.load(archive, map_location="cpu")
    seen, total = set(), 0
    for t in list(m.parameters()) + list(m.buffers()):
        s = t.storage()
        if s.data_ptr() in seen:
            continue
        seen.add(s.data_ptr())
        n = s.nbytes()
        if float_itemsize is not None and t.is_floating_point():
            n = n // t.element_size() * float_itemsize
        total += n
    return total


def bf16_to_f32(a):
    """bfloat16 bits (as uint16) to float32: the top half of a float32."""
    return (a.astype(np.uint32) << 16).view(np.float32)


def metrics_text(d):
    m = re.search(r"metrics at http://([0-9.:]+)/metrics", d.log_text())
    assert m, d.log_text()
    with urllib.request.urlopen("http://%s/metrics" % m.group(1), timeout=30) as r:
        return r.read().decode()


def sample(text, name, **labels):
    """The value of the one sample of `name` with these labels, or None."""
    for line in text.split("\n"):
        if not line.startswith(name + "{"):
            continue
        got = dict(re.findall(r'([a-zA-Z_]+)="([^"]*)"', line[len(name):line.index("}") + 1]))
        if got == labels:
            return float(line.rsplit(" ", 1)[1])
    return None


class Memory(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # A repository with the fixtures and a slow model: a Forward on it
        # keeps the only worker busy while a Generate waits its turn.
        cls.repo = tempfile.mkdtemp(prefix="nnedit-device-")
        for n in NAMES:
            os.symlink(os.path.join(FIXTURES, n), os.path.join(cls.repo, n))
        write_slow_model(cls.repo, iters=2400)
        cls.d = Daemon("--workers", "1", "--metrics-listen", "127.0.0.1:0",
                       *sum((["--load", n] for n in NAMES + ["slow"]), []), repo=cls.repo)
        wait_loaded(cls.d, NAMES + ["slow"])
        cls.admin = admin_pb2_grpc.AdminStub(cls.d.channel)

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop()
        shutil.rmtree(cls.repo, ignore_errors=True)
        assert code == 0, cls.d.log_text()

    def describe(self, name):
        return self.d.models.Describe(models_pb2.DescribeModelRequest(name=name), timeout=30).model

    def test_device_bytes_are_the_archives(self):
        for name in NAMES:
            with self.subTest(model=name):
                info = self.describe(name)
                want = resident_bytes(os.path.join(FIXTURES, name, "model.pt"))
                self.assertEqual(info.device_bytes, want)
                # Tied weights (GPT-2's lm_head) count once here and in
                # param_bytes; buffers (masks, rotary tables) only here.
                self.assertGreaterEqual(info.device_bytes, info.param_bytes)
                self.assertEqual(info.kv_cache_bytes, 0)

    def test_stats_and_metrics_say_the_same(self):
        st = self.admin.Stats(admin_pb2.StatsRequest(), timeout=30)
        mem = {m.model: m for m in st.memory}
        self.assertEqual(sorted(mem), sorted(NAMES + ["slow"]))
        for name in NAMES:
            info = self.describe(name)
            self.assertEqual(mem[name].device, "cpu")
            self.assertEqual(mem[name].weights_bytes, info.device_bytes)
            self.assertEqual(mem[name].kv_cache_bytes, 0)
        devs = {x.device: x for x in st.devices}
        self.assertEqual(list(devs), ["cpu"])
        cpu = devs["cpu"]
        self.assertEqual(cpu.total_bytes, os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        self.assertGreater(cpu.free_bytes, 0)
        self.assertLessEqual(cpu.free_bytes, cpu.total_bytes)
        self.assertFalse(cpu.allocator_stats)  # the CUDA caching allocator's figures
        self.assertEqual(cpu.models, len(NAMES) + 1)
        self.assertEqual(cpu.models_bytes, sum(m.weights_bytes for m in st.memory))
        text = metrics_text(self.d)
        for name in NAMES:
            self.assertEqual(sample(text, "nnedit_model_parameter_bytes", model=name, device="cpu"),
                             mem[name].weights_bytes)
            self.assertEqual(sample(text, "nnedit_model_kv_cache_bytes", model=name, device="cpu"), 0)
        self.assertEqual(sample(text, "nnedit_device_memory_bytes", device="cpu", kind="total"),
                         cpu.total_bytes)
        self.assertIsNone(sample(text, "nnedit_device_memory_bytes", device="cpu", kind="allocated"))

    def test_kv_cache_counted_from_admission_to_end(self):
        name = "gpt2-script"
        rows, new = [[5, 6, 7, 8], [9, 10, 11, 12]], 20
        layers, heads, dim = rg.kv_shape_of_archive(os.path.join(FIXTURES, name, "model.json"))
        want = 2 * layers * len(rows) * heads * (len(rows[0]) + new) * dim * 4
        slow_done = threading.Event()
        errors = []

        def slow():
            try:
                forward(self.d.inference, "slow", [[1, 2, 3]], timeout=120)
            except grpc.RpcError as e:
                errors.append(e)
            slow_done.set()

        t = threading.Thread(target=slow)
        t.start()
        try:
            # The slow Forward holds the one worker (Stats: nothing queued
            # yet, one call live) before the Generate is sent.
            deadline = time.monotonic() + 30
            while self.admin.Stats(admin_pb2.StatsRequest(), timeout=30).live_calls < 1:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.01)
            req = I.GenerateRequest(model=name, prompts=[I.TokenRow(ids=r) for r in rows],
                                    max_new_tokens=new, ignore_eos=True)
            call = self.d.inference.Generate(req, timeout=120)
            seen = 0
            deadline = time.monotonic() + 30
            while seen == 0 and not slow_done.is_set():
                self.assertLess(time.monotonic(), deadline)
                seen = self.describe(name).kv_cache_bytes
                if seen == 0:
                    time.sleep(0.005)
            self.assertFalse(slow_done.is_set() and seen == 0,
                             "the Generate was never seen holding its cache")
            self.assertEqual(seen, want)
            st = self.admin.Stats(admin_pb2.StatsRequest(), timeout=30)
            self.assertEqual({m.model: m.kv_cache_bytes for m in st.memory}[name], want)
            text = metrics_text(self.d)
            self.assertEqual(sample(text, "nnedit_model_kv_cache_bytes", model=name, device="cpu"), want)
            n = sum(1 for msg in call if msg.WhichOneof("msg") == "step")
            self.assertEqual(n, new)
        finally:
            t.join(120)
        self.assertEqual(errors, [])
        # Freed with the generation (the done callback runs on the loop just
        # before the stream's last message goes out, or just after).
        deadline = time.monotonic() + 10
        while self.describe(name).kv_cache_bytes != 0:
            self.assertLess(time.monotonic(), deadline, "the KV cache was never given back")
            time.sleep(0.01)


def vm_size(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize")


@unittest.skipIf(SANITIZED, "ASan's allocator ends the process rather than fail an allocation")
@unittest.skipUnless(shutil.which("prlimit"), "needs prlimit (util-linux)")
class OutOfMemory(unittest.TestCase):
    def test_resource_exhausted_names_model_device_bytes(self):
        name = "gpt2-script"
        ids = manifest(name)["inputs"]["input_ids"]
        with Daemon("--load", name, "--max-trace-value-bytes", str(4 << 30)) as d:
            wait_loaded(d, [name])
            before, _ = forward(d.inference, name, ids, top_k=5)
            # Room for 1 GiB more address space than the daemon has now: a
            # 1.5 GiB value cannot be had; everything else still can.
            limit = vm_size(d.proc.pid) + (1 << 30)
            subprocess.run(["prlimit", "--pid", str(d.proc.pid), "--as=%d:" % limit],
                           check=True, timeout=30)
            try:
                big = [I.Node(id=1, call=I.CallNode(fn="full", args=[
                           I.Arg(ints=I.IntList(values=[196608, 2048])), I.Arg(scalar=1.0)])),
                       I.Node(id=2, save=I.SaveNode(value=1, name="big"))]
                with self.assertRaises(grpc.RpcError) as cm:
                    trace(d.inference, name, [I.Trace(invokes=[I.Invoke(input_ids=[I.TokenRow(ids=ids[0])])],
                                                      nodes=big)], timeout=120)
                e = cm.exception
                self.assertEqual(e.code(), grpc.StatusCode.RESOURCE_EXHAUSTED, e.details())
                self.assertIn("model 'gpt2-script' on cpu", e.details())
                self.assertIn("traces[0].nodes[0] (id 1): full", e.details())
                self.assertIn("out of memory: tried to allocate 1610612736 bytes (1.50 GiB)", e.details())
                self.assertNotIn("[enforce fail", e.details())
                # The same daemon, still under the limit, answers as before.
                after, _ = forward(d.inference, name, ids, top_k=5)
                self.assertEqual([list(r.top) for r in after.rows], [list(r.top) for r in before.rows])
            finally:
                subprocess.run(["prlimit", "--pid", str(d.proc.pid), "--as=unlimited:"],
                               check=True, timeout=30)
            self.assertIsNone(d.proc.poll())


class OtherDtypes(unittest.TestCase):
    """Models loaded as bfloat16 / float16 (Models.Load's dtype)."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon()
        cls.edits = edits_pb2_grpc.EditsStub(cls.d.channel)

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop()
        assert code == 0, cls.d.log_text()

    def load(self, name, dtype):
        return self.d.models.Load(models_pb2.LoadModelRequest(name=name, dtype=dtype), timeout=120).model

    def unload(self, name):
        self.d.models.Unload(models_pb2.UnloadModelRequest(name=name), timeout=60)

    def archive(self, name, dtype):
        m = torch.jit.load(os.path.join(FIXTURES, name, "model.pt"), map_location="cpu")
        return m.to(dtype).eval()

    def eager(self, name, dtype):
        return rg.eager_model(name, archive=os.path.join(FIXTURES, name, "model.pt")).to(dtype)

    def assertClose(self, got, want, bound, what):
        worst = float(np.abs(got - want).max()) / max(float(np.abs(want).max()), 1e-30)
        print("%s: max |daemon - eager| / max |eager| = %.3g" % (what, worst))
        self.assertLessEqual(worst, bound, what)

    def test_bfloat16_forward_saves_and_edits(self):
        ids = [[31, 415, 926, 5, 27, 3, 777]]
        steer = np.random.default_rng(7).normal(size=64).astype(np.float32)
        for name in ["gpt2-script", "llama-script", "neox-script"]:
            with self.subTest(model=name):
                info = self.load(name, tensor_pb2.DTYPE_BFLOAT16)
                try:
                    self.assertEqual(info.dtype, tensor_pb2.DTYPE_BFLOAT16)
                    self.assertEqual(info.device_bytes,
                                     resident_bytes(os.path.join(FIXTURES, name, "model.pt"), 2))
                    # Logits and a save: as the archive converted by PyTorch.
                    res, t = forward(self.d.inference, name, ids, logits=I.LOGITS_MODE_ALL,
                                     save=["layers.0.resid_post"])
                    with torch.no_grad():
                        want = self.archive(name, torch.bfloat16)(torch.tensor(ids)).float().numpy()
                    self.assertEqual(t["logits"].dtype, np.uint16)  # bfloat16 bits, as computed
                    got = bf16_to_f32(t["logits"])
                    self.assertClose(got, want, 1e-2, name + " bfloat16 logits")
                    self.assertEqual(t["layers.0.resid_post"].shape, (1, 7, 64))
                    # An edit with a float32 operand: converted once, to the
                    # site's dtype, and equal to the eager model with a hook.
                    es = self.edits.Apply(edits_pb2.ApplyEditsRequest(model=name, edits=[edits_pb2.Edit(
                        site="layers.1.resid_post", op=edits_pb2.EDIT_OP_ADD,
                        tensor=tensor_pb2.Tensor(dtype=tensor_pb2.DTYPE_FLOAT32, shape=[64],
                                                 data=steer.tobytes()))]), timeout=60).edit_set
                    try:
                        got_es = self.edits.Get(edits_pb2.GetEditSetRequest(id=es.id), timeout=30)
                        self.assertEqual(got_es.edits[0].tensor_dtype, tensor_pb2.DTYPE_BFLOAT16)
                        _, t2 = forward(self.d.inference, name, ids, logits=I.LOGITS_MODE_ALL,
                                        edit_set=es.id)
                        eager = self.eager(name, torch.bfloat16)
                        add = torch.from_numpy(steer).to(torch.bfloat16)
                        h = eager.get_submodule(LAYER1[name.split("-")[0]]).register_forward_hook(
                            lambda mod, args, out: (out[0] + add,) + tuple(out[1:]))
                        try:
                            with torch.no_grad():
                                want2 = eager(torch.tensor(ids))
                        finally:
                            h.remove()
                        want2 = (want2[0] if isinstance(want2, tuple) else want2).float().numpy()
                        got2 = bf16_to_f32(t2["logits"])
                        self.assertGreater(float(np.abs(got2 - got).max()), 0.1)
                        self.assertClose(got2, want2, 3e-2, name + " bfloat16 edited logits")
                    finally:
                        self.edits.Drop(edits_pb2.DropEditSetRequest(id=es.id), timeout=10)
                    # A float32 value that bfloat16 cannot hold: refused at
                    # Apply, naming the edit; no set is made.
                    bad = steer.copy()
                    bad[3] = 3.4e38
                    with self.assertRaises(grpc.RpcError) as cm:
                        self.edits.Apply(edits_pb2.ApplyEditsRequest(model=name, edits=[edits_pb2.Edit(
                            site="layers.1.resid_post", op=edits_pb2.EDIT_OP_ADD,
                            tensor=tensor_pb2.Tensor(dtype=tensor_pb2.DTYPE_FLOAT32, shape=[64],
                                                     data=bad.tobytes()))]), timeout=60)
                    self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
                    self.assertIn("edits[0].tensor (layers.1.resid_post): 1 of 64 values are beyond "
                                  "bfloat16's range", cm.exception.details())
                    # Generation runs in the model's dtype too.
                    res = self.d.inference.Generate(I.GenerateRequest(
                        model=name, prompts=[I.TokenRow(ids=ids[0])], max_new_tokens=4,
                        ignore_eos=True), timeout=60)
                    self.assertEqual(sum(1 for m in res if m.WhichOneof("msg") == "step"), 4)
                finally:
                    self.unload(name)

    def test_float16_as_eager_pytorch_can(self):
        ids = [[31, 415, 926, 5]]
        name = "gpt2-script"
        try:
            with torch.no_grad():
                want = self.archive(name, torch.float16)(torch.tensor(ids)).float().numpy()
            eager_error = None
        except RuntimeError as e:
            eager_error = str(e)
        if eager_error is not None:
            # No float16 kernel on this device (1.13's CPU LayerNorm): the
            # daemon's load-time forward meets the same error and says so.
            kernel = re.search(r'"(\w+)" not implemented for \'Half\'', eager_error)
            self.assertTrue(kernel, eager_error)
            with self.assertRaises(grpc.RpcError) as cm:
                self.load(name, tensor_pb2.DTYPE_FLOAT16)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
            self.assertIn("test forward on one token failed", cm.exception.details())
            self.assertIn(kernel.group(0), cm.exception.details())
            # Nothing is left half-loaded: float32 loads as before.
            info = self.load(name, tensor_pb2.DTYPE_FLOAT32)
            self.assertEqual(info.dtype, tensor_pb2.DTYPE_FLOAT32)
            self.unload(name)
            return
        info = self.load(name, tensor_pb2.DTYPE_FLOAT16)
        try:
            self.assertEqual(info.dtype, tensor_pb2.DTYPE_FLOAT16)
            _, t = forward(self.d.inference, name, ids, logits=I.LOGITS_MODE_ALL)
            self.assertClose(t["logits"].astype(np.float32), want, 2e-3, name + " float16 logits")
        finally:
            self.unload(name)


if __name__ == "__main__":
    unittest.main()
