"""Shared pieces of the Python integration tests.

Starts a real nneditd on 127.0.0.1 with a free port (it announces the port in
its --ready-file), gives out grpcio stubs generated from proto/, and reads the
fixture references. Every wait is bounded and every daemon started is stopped
(SIGTERM, then SIGKILL) by the test that started it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.environ.get("NNE_PY_GEN", ""))
# Must be set before grpc is imported: with fork support on, Popen waits for
# grpc's thread pool to idle and can hang (CI saw a 900 s timeout).
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from nnedit.v1 import inference_pb2, inference_pb2_grpc  # noqa: E402
from nnedit.v1 import models_pb2, models_pb2_grpc  # noqa: E402
from nnedit.v1 import tensor_pb2  # noqa: E402

FIXTURES = os.environ.get("NNE_FIXTURES_DIR", "")
NNEDITD = os.environ.get("NNEDITD", "nneditd")

NP_DTYPES = {
    tensor_pb2.DTYPE_FLOAT32: np.float32,
    tensor_pb2.DTYPE_FLOAT64: np.float64,
    tensor_pb2.DTYPE_FLOAT16: np.float16,
    # numpy has no bfloat16: its bits, as uint16 (test_device_py widens them).
    tensor_pb2.DTYPE_BFLOAT16: np.uint16,
    tensor_pb2.DTYPE_INT64: np.int64,
    tensor_pb2.DTYPE_INT32: np.int32,
    tensor_pb2.DTYPE_BOOL: np.bool_,
    tensor_pb2.DTYPE_UINT8: np.uint8,
    tensor_pb2.DTYPE_INT8: np.int8,
    tensor_pb2.DTYPE_INT16: np.int16,
}


def _die_with_parent(argv):
    """argv, run so that a test runner killed by a timeout takes its daemon
    along (PR_SET_PDEATHSIG, kept across exec). setpriv sets it: Python code
    in the child between fork and exec (a preexec_fn) is not safe while grpc's
    threads run in the parent; it crashed a daemon start in CI."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL"] + argv if setpriv else argv


class Daemon:
    """A real nneditd process; use as a context manager or call stop()."""

    def __init__(self, *args, repo=None, timeout=60.0):
        self.dir = tempfile.mkdtemp(prefix="nnedit-pytest-")
        self.ready = os.path.join(self.dir, "ready")
        self.log_path = os.path.join(self.dir, "nneditd.log")
        self.log = open(self.log_path, "wb")
        argv = [NNEDITD, "--listen", "127.0.0.1:0", "--ready-file", self.ready,
                "--model-repo", repo or FIXTURES] + list(args)
        self.proc = subprocess.Popen(_die_with_parent(argv), stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(self.ready):
                with open(self.ready) as f:
                    addr = f.read().strip()
                if addr:
                    self.addr = addr
                    break
            if self.proc.poll() is not None:
                text = self.log_text()
                self.log.close()
                raise RuntimeError("nneditd exited during start:\n" + text)
            time.sleep(0.02)
        else:
            self.kill()
            text = self.log_text()
            self.log.close()
            raise RuntimeError("nneditd did not become ready:\n" + text)
        self.channel = grpc.insecure_channel(
            self.addr, options=[("grpc.max_receive_message_length", 64 << 20)])
        self.models = models_pb2_grpc.ModelsStub(self.channel)
        self.inference = inference_pb2_grpc.InferenceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout=30.0):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self):
        """SIGTERM and wait; returns the exit code."""
        if hasattr(self, "channel"):
            self.channel.close()
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("nneditd did not stop in 30 s:\n" + self.log_text())
        else:
            code = self.proc.returncode
        self.log.close()
        return code

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def wait_loaded(d, names, timeout=120):
    """Waits (bounded) until every model in `names` is LOADED on daemon d."""
    deadline = time.monotonic() + timeout
    states = {}
    while time.monotonic() < deadline:
        states = {m.name: m.state for m in d.models.List(models_pb2.ListModelsRequest()).models}
        if all(states.get(n) == models_pb2.MODEL_STATE_LOADED for n in names):
            return
        time.sleep(0.05)
    raise AssertionError("models did not load: %s\n%s" % (states, d.log_text()))


def manifest(name):
    with open(os.path.join(FIXTURES, name, "ref", "manifest.json")) as f:
        return json.load(f)


def ref_array(name, rel):
    return np.load(os.path.join(FIXTURES, name, "ref", rel))


def forward(stub, model, rows, mask=None, padding=0, top_k=0, logits=0, timeout=60,
            save=(), edit_set=""):
    """Runs Forward; returns (result, {tensor name: ndarray})."""
    req = inference_pb2.ForwardRequest(
        model=model,
        input_ids=[inference_pb2.TokenRow(ids=r) for r in rows],
        attention_mask=[inference_pb2.MaskRow(values=m) for m in (mask or [])],
        padding=padding, top_k=top_k, logits=logits, save=list(save), edit_set=edit_set)
    result = None
    tensors = {}
    bufs = {}
    for msg in stub.Forward(req, timeout=timeout):
        if msg.HasField("result"):
            result = msg.result
            continue
        add_chunk(bufs, tensors, msg.chunk)
    return result, tensors


def add_chunk(bufs, tensors, c):
    """Assembles TensorChunk c; a finished tensor lands in tensors[name]."""
    buf = bufs.setdefault(c.name, {"dtype": c.dtype, "shape": list(c.shape),
                                   "data": bytearray(), "total": c.total_bytes})
    assert c.offset == len(buf["data"]), (c.offset, len(buf["data"]))
    buf["data"] += c.data
    if c.last:
        assert len(buf["data"]) == buf["total"]
        tensors[c.name] = np.frombuffer(bytes(buf["data"]), dtype=NP_DTYPES[buf["dtype"]]) \
            .reshape(buf["shape"])


def generate(stub, req, timeout=60):
    """Runs Generate; returns (steps, {tensor name: ndarray}, result), checking
    the stream's order: steps, then chunks, then the result."""
    steps, tensors, bufs, result = [], {}, {}, None
    phase = 0
    for msg in stub.Generate(req, timeout=timeout):
        kind = msg.WhichOneof("msg")
        assert result is None, "a message after the result"
        if kind == "step":
            assert phase == 0, "a step after a chunk"
            assert msg.step.step == len(steps), (msg.step.step, len(steps))
            steps.append(msg.step)
        elif kind == "chunk":
            phase = 1
            add_chunk(bufs, tensors, msg.chunk)
        else:
            result = msg.result
    assert result is not None, "no result"
    return steps, tensors, result


def write_slow_model(repo, name="slow", iters=400, width=512, vocab=100):
    """A scripted model whose forward takes about a second on two cores, for
    tests that need a call to be in flight while something happens."""
    import torch  # Debian's torch; only the tests that need it import it

    class Slow(torch.nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(0)
            self.emb = torch.nn.Parameter(torch.randn(vocab, width, generator=g) * 0.1)
            self.w = torch.nn.Parameter(torch.randn(width, width, generator=g) / width ** 0.5)
            self.iters = iters
            self.vocab = vocab

        def forward(self, input_ids: torch.Tensor):
            x = self.emb[input_ids]
            for _ in range(self.iters):
                x = torch.tanh(x @ self.w)
            return x[..., : self.vocab]

    return _save_scripted(repo, name, Slow())


def _save_scripted(repo, name, module):
    """Scripts `module` into <repo>/<name>/model.pt with a model.json."""
    import torch
    d = os.path.join(repo, name)
    os.makedirs(d, exist_ok=True)
    torch.jit.save(torch.jit.script(module), os.path.join(d, "model.pt"))
    with open(os.path.join(d, "model.json"), "w") as f:
        json.dump({"family": "test", "device": "cpu", "dtype": "float32"}, f)
    return d


def write_layered_slow_model(repo, name="slowlayers", blocks=64, iters=24, width=384, vocab=100):
    """A scripted model of `blocks` submodules, each a few seconds' worth of
    matmuls in all on two cores: a trace that reads every block's output has
    a site every few tens of milliseconds, where a cancelled forward stops."""
    import torch

    class Block(torch.nn.Module):
        def __init__(self, g):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(width, width, generator=g) / width ** 0.5)
            self.iters = iters

        def forward(self, x):
            for _ in range(self.iters):
                x = torch.tanh(x @ self.w)
            return x

    class Layered(torch.nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(0)
            self.emb = torch.nn.Parameter(torch.randn(vocab, width, generator=g) * 0.1)
            self.blocks = torch.nn.ModuleList([Block(g) for _ in range(blocks)])
            self.vocab = vocab

        def forward(self, input_ids: torch.Tensor):
            x = self.emb[input_ids]
            for b in self.blocks:
                x = b(x)
            return x[..., :self.vocab]

    return _save_scripted(repo, name, Layered())


def trace(stub, model, traces, edit_set="", padding=0, top_k=0, logits=0, timeout=60):
    """Runs Trace (a session of one or more inference_pb2.Trace messages).

    Returns ([TraceResult, one per trace, in stream order], {tensor name:
    ndarray}). Checks the stream's framing as it goes: chunks of one tensor
    arrive in order and whole before the next tensor starts, every tensor
    name occurs once in the stream, and each TraceResult's `saved` names the
    tensors that streamed since the previous result, in order (logits aside)."""
    req = inference_pb2.TraceRequest(model=model, traces=list(traces), edit_set=edit_set,
                                     padding=padding, top_k=top_k, logits=logits)
    results = []
    tensors = {}
    since_result = []
    cur = None
    for msg in stub.Trace(req, timeout=timeout):
        if msg.HasField("chunk"):
            c = msg.chunk
            if cur is None:
                assert c.offset == 0, (c.name, c.offset)
                assert c.name not in tensors, "tensor %r streamed twice" % c.name
                cur = {"name": c.name, "dtype": c.dtype, "shape": list(c.shape),
                       "data": bytearray(), "total": c.total_bytes}
            assert c.name == cur["name"], "chunks of %r and %r interleave" % (cur["name"], c.name)
            assert c.offset == len(cur["data"]), (c.name, c.offset, len(cur["data"]))
            cur["data"] += c.data
            if c.last:
                assert len(cur["data"]) == cur["total"], (c.name, len(cur["data"]), cur["total"])
                tensors[c.name] = np.frombuffer(bytes(cur["data"]), dtype=NP_DTYPES[cur["dtype"]]) \
                    .reshape(cur["shape"])
                since_result.append(c.name)
                cur = None
        if msg.HasField("result"):
            assert cur is None, "TraceResult inside the chunks of %r" % cur["name"]
            saved = list(msg.result.saved)
            # `saved` names exactly the tensors that came before the result,
            # in stream order, the "<trace>/logits" tensor included.
            assert saved == since_result, (saved, since_result)
            results.append(msg.result)
            since_result = []
    assert cur is None, "the stream ended inside tensor %r" % cur["name"]
    assert not since_result, "tensors after the last TraceResult: %s" % since_result
    return results, tensors
