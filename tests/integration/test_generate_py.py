"""Inference.Generate end to end through Python grpcio (issue 12), against
the Python reference loop over the eager model with a KV cache
(tests/fixtures/reference_generate.py, HF-style past_key_values).

On every fixture family, scripted and traced, with left-padded prompts of
different lengths: greedy ids equal the reference's, plain and with a
steering vector at layers.1.resid_post from an edit set at every step;
per-step saves of the residual equal the reference's hooks (<= 1e-5);
cached and recomputing generation agree; sampling with a seed repeats
across runs and batch positions; stop ids, EOS and stop strings end rows
with the right reason and text (the streamed pieces add up to it); each
bad option gets a precise status, and a KV cache over --max-kv-bytes
RESOURCE_EXHAUSTED naming the bytes; a client that cancels mid-generation
gets its KV budget back (a second generation that needs all of it runs).
"""

import os
import sys
import threading
import time
import unittest

import grpc
import numpy as np
import torch

from nnedit_testlib import Daemon, generate, models_pb2, tensor_pb2, wait_loaded
from nnedit.v1 import edits_pb2, edits_pb2_grpc, inference_pb2 as I

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "fixtures"))
import reference_generate as rg  # noqa: E402

FIXTURES = os.environ.get("NNE_FIXTURES_DIR", "")
NAMES = ["gpt2-script", "gpt2-trace", "llama-script", "llama-trace", "neox-script", "neox-trace"]
LAYER1 = {"gpt2": "transformer.h.1", "llama": "model.layers.1", "neox": "gpt_neox.layers.1"}
OPROJ0 = {"gpt2": "transformer.h.0.attn.c_proj", "llama": "model.layers.0.self_attn.o_proj",
          "neox": "gpt_neox.layers.0.attention.dense"}
PROMPTS = [[31, 415, 926, 5, 27, 3, 777], [1, 998, 512], [64, 300, 71, 2, 11]]
NEW = 32


def fam(name):
    return name.split("-")[0]


def request(model, prompts, n=NEW, **kw):
    return I.GenerateRequest(model=model, prompts=[I.TokenRow(ids=p) for p in prompts],
                             max_new_tokens=n, ignore_eos=True, **kw)


class Generate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        args = []
        for n in NAMES:
            args += ["--load", n]
        # A small KV budget: one generation of the test's largest size fits,
        # two do not (the cancellation test relies on it).
        cls.d = Daemon(*args, "--max-kv-bytes", "200000", "--kv-budget-bytes", "300000")
        cls.edits = edits_pb2_grpc.EditsStub(cls.d.channel)
        wait_loaded(cls.d, NAMES)
        cls.eager = {n: rg.eager_model(n, archive=os.path.join(FIXTURES, n, "model.pt")) for n in NAMES}

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop()
        assert code == 0, cls.d.log_text()

    def gen(self, req, timeout=60):
        return generate(self.d.inference, req, timeout=timeout)

    def ids(self, result):
        return [list(r.ids) for r in result.rows]

    def test_describe_says_kv_cache(self):
        for name in NAMES:
            info = self.d.models.Describe(models_pb2.DescribeModelRequest(name=name)).model
            self.assertTrue(info.kv_cache, name)
            self.assertEqual(list(info.eos_token_ids), [999], name)

    def test_greedy_matches_reference(self):
        for name in NAMES:
            with self.subTest(model=name):
                want, _ = rg.greedy_generate(self.eager[name], PROMPTS, NEW)
                steps, _, res = self.gen(request(name, PROMPTS))
                self.assertEqual(self.ids(res), want)
                self.assertTrue(res.kv_cache)
                self.assertEqual(res.steps, NEW)
                self.assertEqual(len(steps), NEW)
                for k, st in enumerate(steps):
                    self.assertEqual([t.row for t in st.tokens], [0, 1, 2])
                    self.assertEqual([t.token_id for t in st.tokens], [w[k] for w in want])
                self.assertEqual([r.finish_reason for r in res.rows], [I.FINISH_REASON_LENGTH] * 3)
                self.assertEqual([r.prompt_tokens for r in res.rows], [len(p) for p in PROMPTS])
                # Recomputing gives the same tokens for unpadded prompts
                # (forward's positions are arange; a padded row's differ).
                _, _, off = self.gen(request(name, [PROMPTS[0]], cache=I.CACHE_MODE_OFF))
                self.assertFalse(off.kv_cache)
                self.assertEqual(self.ids(off)[0], want[0])

    def test_steering_edit_set_and_saves_every_step(self):
        rng = np.random.default_rng(3)
        steer = rng.normal(size=64).astype(np.float32)
        for name in NAMES:
            with self.subTest(model=name):
                es = self.edits.Apply(edits_pb2.ApplyEditsRequest(model=name, edits=[edits_pb2.Edit(
                    site="layers.1.resid_post", op=edits_pb2.EDIT_OP_ADD,
                    tensor=tensor_pb2.Tensor(dtype=tensor_pb2.DTYPE_FLOAT32, shape=[64],
                                             data=steer.tobytes()))]), timeout=60).edit_set
                try:
                    path = LAYER1[fam(name)]

                    def hooks(step, path=path):
                        def add(module, args, output):
                            return (output[0] + torch.from_numpy(steer),) + tuple(output[1:])
                        return [(path, add)]

                    n = NEW
                    want, cap = rg.greedy_generate(self.eager[name], PROMPTS, n, step_hooks=hooks,
                                                   capture=[path])
                    plain, _ = rg.greedy_generate(self.eager[name], PROMPTS, n)
                    self.assertNotEqual(want, plain, "the steering vector must change something")
                    _, t, res = self.gen(request(name, PROMPTS, n, edit_set=es.id,
                                                 save=["layers.1.resid_post"]))
                    self.assertEqual(self.ids(res), want)
                    self.assertEqual(list(res.saved), [f"layers.1.resid_post@{k}" for k in range(n)])
                    worst = 0.0
                    for k in range(n):
                        got = t[f"layers.1.resid_post@{k}"]
                        ref = cap[path][k].numpy()
                        self.assertEqual(got.shape, ref.shape, k)  # step 0 the prompt, then 1 position
                        worst = max(worst, float(np.abs(got - ref).max()))
                    print(f"{name}: steered saves, max |daemon - reference hooks| {worst:g}")
                    self.assertLessEqual(worst, 1e-5)
                finally:
                    self.edits.Drop(edits_pb2.DropEditSetRequest(id=es.id), timeout=10)

    def test_head_zeroed_from_step_3_and_saves_at_steps(self):
        # nnsight: with model.generate(...): model.layers[0].self_attn.z[..., h] = 0
        # from step 3 on (.all() after 3 .next()s), and the residual saved at
        # steps 2..4 (iter[2:5]).
        head, hd, n = 1, 16, NEW
        nodes = [I.Node(id=1, constant=I.ConstNode(scalar=0.0)),
                 I.Node(id=2, write=I.WriteNode(site="layers.0.self_attn.z", value=1, ranges=[
                     edits_pb2.DimRange(dim=-1, start=head * hd, stop=(head + 1) * hd)])),
                 I.Node(id=3, read=I.ReadNode(site="layers.1.resid_post")),
                 I.Node(id=4, save=I.SaveNode(value=3, name="resid"))]
        steps = [I.NodeSteps(node=2, start=3), I.NodeSteps(node=3, start=2, stop=5),
                 I.NodeSteps(node=4, start=2, stop=5)]
        for name in NAMES:
            with self.subTest(model=name):
                f = fam(name)

                def hooks(step, f=f):
                    def ablate(module, args):
                        x = args[0].clone()
                        x[..., head * hd:(head + 1) * hd] = 0
                        return (x,) + tuple(args[1:])
                    return [(OPROJ0[f], "pre", ablate)] if step >= 3 else []

                want, cap = rg.greedy_generate(self.eager[name], PROMPTS, n, step_hooks=hooks,
                                               capture=[LAYER1[f]])
                plain, _ = rg.greedy_generate(self.eager[name], PROMPTS, n)
                self.assertEqual(want[0][:3], plain[0][:3])
                self.assertNotEqual(want, plain, "zeroing the head must change something")
                _, t, res = self.gen(request(name, PROMPTS, n, intervention=I.Trace(nodes=nodes),
                                             steps=steps))
                self.assertEqual(self.ids(res), want)
                self.assertEqual(list(res.saved), ["resid@2", "resid@3", "resid@4"])
                for k in (2, 3, 4):
                    diff = float(np.abs(t[f"resid@{k}"] - cap[LAYER1[f]][k].numpy()).max())
                    self.assertLessEqual(diff, 1e-5, (k, diff))

    def test_save_layout_sequence(self):
        # One tensor per save: the steps concatenated along the sequence,
        # the value at every position of the final sequence.
        n = 6
        for name in ("gpt2-script", "llama-trace"):
            with self.subTest(model=name):
                path = LAYER1[fam(name)]
                _, cap = rg.greedy_generate(self.eager[name], PROMPTS, n, capture=[path])
                want = np.concatenate([c.numpy() for c in cap[path]], axis=1)
                nodes = [I.Node(id=1, read=I.ReadNode(site="layers.0.resid_post")),
                         I.Node(id=2, save=I.SaveNode(value=1, name="r0"))]
                _, t, res = self.gen(request(name, PROMPTS, n, save=["layers.1.resid_post"],
                                             intervention=I.Trace(nodes=nodes),
                                             steps=[I.NodeSteps(node=1, start=2),
                                                    I.NodeSteps(node=2, start=2)],
                                             save_layout=I.SAVE_LAYOUT_SEQUENCE))
                self.assertEqual(list(res.saved), ["layers.1.resid_post", "r0"])
                got = t["layers.1.resid_post"]
                self.assertEqual(got.shape, (3, 7 + n - 1, 64))
                self.assertLessEqual(float(np.abs(got - want).max()), 1e-5)
                # Saved from step 2 on: the positions of steps 2..n-1.
                self.assertEqual(t["r0"].shape, (3, n - 2, 64))
        cases = [(dict(save=["layers.0.self_attn.pattern"]),
                  "'layers.0.self_attn.pattern' (steps 0 to 3) does not concatenate"),
                 (dict(save=["layers.1.resid_post"], cache=I.CACHE_MODE_OFF), "save_layout: SEQUENCE needs"),
                 (dict(save_layout=5), "save_layout: unknown")]
        for kw, _ in cases:
            kw.setdefault("save_layout", I.SAVE_LAYOUT_SEQUENCE)
        self.refused(cases)

    def refused(self, cases):
        """Each (request fields, message part) is INVALID_ARGUMENT saying it."""
        for kw, needle in cases:
            with self.subTest(needle=needle):
                with self.assertRaises(grpc.RpcError) as cm:
                    list(self.d.inference.Generate(request("gpt2-script", [[1, 2]], 4, **kw), timeout=30))
                self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT,
                                 cm.exception.details())
                self.assertIn(needle, cm.exception.details())

    def test_intervention_errors(self):
        r3 = I.Node(id=3, read=I.ReadNode(site="layers.1.resid_post"))
        s4 = I.Node(id=4, save=I.SaveNode(value=3, name="resid"))
        cases = [
            (dict(intervention=I.Trace(nodes=[r3, s4]), steps=[I.NodeSteps(node=4, start=0)] +
                  [I.NodeSteps(node=3, start=2)]), "node 4 runs at steps [0, end) but its input, node 3, "
                                                   "only at [2, end)"),
            (dict(intervention=I.Trace(nodes=[r3, s4]), steps=[I.NodeSteps(node=9, start=0)]),
             "steps[0]: node 9 is not a node of the intervention"),
            (dict(intervention=I.Trace(nodes=[r3, s4]), steps=[I.NodeSteps(node=3, start=8)]),
             "steps[0]: start 8 is not before max_new_tokens 4"),
            (dict(intervention=I.Trace(nodes=[r3, s4]), steps=[I.NodeSteps(node=3, start=2, stop=2)]),
             "steps[0]: stop 2 is not after start 2"),
            (dict(steps=[I.NodeSteps(node=3, start=1)]), "steps: given without an intervention"),
            (dict(intervention=I.Trace(nodes=[r3, s4], invokes=[I.Invoke(input_ids=[I.TokenRow(ids=[1])])])),
             "intervention.invokes"),
            (dict(intervention=I.Trace(nodes=[I.Node(id=1, read=I.ReadNode(site="layers.7.resid_post"))])),
             "intervention.nodes[0]"),
            (dict(intervention=I.Trace(nodes=[I.Node(id=1, ref=I.RefNode(name="x"))])), "ref"),
            (dict(intervention=I.Trace(nodes=[r3, s4]), save=["resid"]), "also save[0]"),
            (dict(intervention=I.Trace(nodes=[r3, I.Node(id=4, save=I.SaveNode(value=3, name="n" * 254))])),
             "the save name with a step (+ \"@3\") is over 255 bytes"),
        ]
        self.refused(cases)

    def test_sampling_seed_repeats_across_runs_and_positions(self):
        s = I.Sampling(temperature=0.9, top_k=50, top_p=0.95, seed=1234)
        p, q = PROMPTS[0], PROMPTS[1]
        _, _, a = self.gen(request("llama-script", [p, q, p], 20, sampling=s))
        _, _, b = self.gen(request("llama-script", [q, p], 20, sampling=s))
        ia, ib = self.ids(a), self.ids(b)
        self.assertEqual(ia[0], ia[2])       # the same prompt at two batch positions
        self.assertEqual(ia[0], ib[1])       # and in another batch, another run
        self.assertEqual(ia[1], ib[0])
        self.assertEqual(a.seed, 1234)
        greedy, _ = rg.greedy_generate(self.eager["llama-script"], [p], 20)
        self.assertNotEqual(ia[0], greedy[0], "sampling at T=0.9 should leave the greedy path")
        _, _, c = self.gen(request("llama-script", [p], 20, sampling=I.Sampling(temperature=0.9, seed=99)))
        self.assertNotEqual(self.ids(c)[0], ia[0])
        # Unset seed: drawn, and reported.
        _, _, d = self.gen(request("llama-script", [p], 4, sampling=I.Sampling(temperature=1.0)))
        self.assertNotEqual(d.seed, 0)

    def test_stop_token_eos_and_top_alternatives(self):
        want, _ = rg.greedy_generate(self.eager["gpt2-script"], PROMPTS, NEW)
        stop = want[0][5]
        steps, _, res = self.gen(request("gpt2-script", PROMPTS, NEW, stop_token_ids=[stop],
                                         top_alternatives=3))
        r0 = res.rows[0]
        self.assertEqual(r0.finish_reason, I.FINISH_REASON_STOP_TOKEN)
        self.assertEqual(list(r0.ids), want[0][:want[0].index(stop) + 1])
        # A finished row is not in later steps; the others go on.
        first_stop = want[0].index(stop)
        for k, st in enumerate(steps):
            rows = [t.row for t in st.tokens]
            self.assertEqual(0 in rows, k <= first_stop, k)
            for t in st.tokens:
                self.assertEqual(len(t.top), 3)
                self.assertEqual(t.top[0].token_id, t.token_id)  # greedy: the best
                self.assertGreaterEqual(t.top[0].prob, t.top[1].prob)
                self.assertAlmostEqual(t.logprob, float(np.log(t.top[0].prob)), places=4)
        # EOS from model.json (999) unless ignore_eos.
        req = request("gpt2-script", [PROMPTS[0]], 3)
        req.ignore_eos = False
        req.stop_token_ids[:] = [want[0][0]]
        _, _, res = self.gen(req)
        self.assertEqual(list(res.rows[0].ids), want[0][:1])

    def test_text_stop_strings(self):
        # The tokenizer's text: the streamed pieces add up to the row's text.
        steps, _, res = self.gen(request("gpt2-script", [PROMPTS[0]], 24))
        steps_all = steps
        text = res.rows[0].text
        pieces = "".join(t.text for st in steps for t in st.tokens)
        self.assertEqual(pieces, text)
        self.assertGreater(len(text), 10)
        stop = text[8:11]
        i = text.index(stop)
        steps, _, res = self.gen(request("gpt2-script", [PROMPTS[0]], 24, stop_strings=["zz-none", stop]))
        r = res.rows[0]
        self.assertEqual(r.finish_reason, I.FINISH_REASON_STOP_STRING)
        self.assertEqual(r.stop, stop)
        self.assertEqual(r.text, text[:i])
        self.assertEqual("".join(t.text for st in steps for t in st.tokens), text[:i])
        self.assertLess(len(r.ids), 24)
        # A stop string across two tokens' pieces: from the last character
        # of one piece to the first of the next.
        pieces = [t.text for st in steps_all for t in st.tokens]
        k = next(i for i in range(1, len(pieces)) if pieces[i - 1] and pieces[i] and
                 len("".join(pieces[:i])) > 2)
        at = len("".join(pieces[:k]))
        across = text[at - 1:at + 1]
        _, _, res = self.gen(request("gpt2-script", [PROMPTS[0]], 24, stop_strings=[across]))
        self.assertEqual(res.rows[0].finish_reason, I.FINISH_REASON_STOP_STRING)
        self.assertEqual(res.rows[0].text, text[:text.index(across)])

    def test_bad_requests(self):
        inf = self.d.inference
        cases = [
            (request("gpt2-script", [[1]], 0), grpc.StatusCode.INVALID_ARGUMENT, "max_new_tokens"),
            (request("gpt2-script", [[1, 2, 3]], 62), grpc.StatusCode.INVALID_ARGUMENT, "max_seq_len 64"),
            (request("gpt2-script", [[1]], 4, sampling=I.Sampling(temperature=-1)),
             grpc.StatusCode.INVALID_ARGUMENT, "sampling.temperature"),
            (request("gpt2-script", [[1]], 4, sampling=I.Sampling(top_p=2)),
             grpc.StatusCode.INVALID_ARGUMENT, "sampling.top_p"),
            (request("gpt2-script", [[1]], 4, sampling=I.Sampling(top_k=5000)),
             grpc.StatusCode.INVALID_ARGUMENT, "sampling.top_k"),
            (request("gpt2-script", [[1]], 4, sampling=I.Sampling(repetition_penalty=20)),
             grpc.StatusCode.INVALID_ARGUMENT, "sampling.repetition_penalty"),
            (request("gpt2-script", [[1]], 4, stop_token_ids=[1000]),
             grpc.StatusCode.INVALID_ARGUMENT, "stop_token_ids[0]"),
            (request("gpt2-script", [[1]], 4, stop_token_ids=list(range(65))),
             grpc.StatusCode.RESOURCE_EXHAUSTED, "stop_token_ids"),
            (request("gpt2-script", [[1]], 4, stop_strings=["x"] * 17),
             grpc.StatusCode.RESOURCE_EXHAUSTED, "stop_strings"),
            (request("gpt2-script", [[1]], 4, stop_strings=["y" * 257]),
             grpc.StatusCode.RESOURCE_EXHAUSTED, "stop_strings"),
            (request("gpt2-script", [[1]], 4, top_alternatives=101),
             grpc.StatusCode.INVALID_ARGUMENT, "top_alternatives"),
            (request("gpt2-script", [[1]], 4, cache=7), grpc.StatusCode.INVALID_ARGUMENT, "cache"),
            (request("gpt2-script", [[1, 5000]], 4), grpc.StatusCode.INVALID_ARGUMENT, "prompts[0][1]"),
            (request("gpt2-script", [], 4), grpc.StatusCode.INVALID_ARGUMENT, "prompts"),
            (request("gpt2-script", [[1]], 4, save=["layers.9.resid_post"]),
             grpc.StatusCode.INVALID_ARGUMENT, "save[0]"),
            (request("gpt2-script", [[1]], 4, edit_set="es-nope"), grpc.StatusCode.NOT_FOUND, "edit_set"),
            (request("nope", [[1]], 4), grpc.StatusCode.NOT_FOUND, "nope"),
            # 2 x 2 layers x 16 rows x 4 heads x 60 positions x 16 x 4 bytes
            (request("gpt2-script", [[1] * 10] * 16, 50), grpc.StatusCode.RESOURCE_EXHAUSTED,
             "--max-kv-bytes 200000"),
        ]
        for req, code, needle in cases:
            with self.subTest(needle=needle):
                with self.assertRaises(grpc.RpcError) as cm:
                    list(inf.Generate(req, timeout=30))
                self.assertEqual(cm.exception.code(), code, cm.exception.details())
                self.assertIn(needle, cm.exception.details())

    def test_cancel_frees_the_kv_budget(self):
        # 3 rows x 50 positions x 2 x 2 layers x 4 heads x 16 x 4 bytes =
        # 153,600: two do not fit the 300,000 budget, so the second waits for
        # the first's cache. The first is cancelled after its first step.
        big = request("gpt2-script", [[1, 2, 3, 4]] * 3, 46)
        call = self.d.inference.Generate(big, timeout=60)
        first = next(call)
        self.assertEqual(first.WhichOneof("msg"), "step")
        call.cancel()
        deadline = time.monotonic() + 10
        while True:
            try:
                self.gen(big)
                break
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.RESOURCE_EXHAUSTED, e.details())
                self.assertLess(time.monotonic(), deadline, "the cancelled cache was never freed")
                time.sleep(0.05)
        # Two at once cannot both have their caches.
        errors = []

        def run():
            try:
                self.gen(big)
            except grpc.RpcError as e:
                errors.append(e)
        ts = [threading.Thread(target=run) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for e in errors:
            self.assertEqual(e.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertIn("--kv-budget-bytes", e.details())


if __name__ == "__main__":
    unittest.main()
