"""Text in, text out (issue 10) through Python grpcio: the fixtures carry a
byte-level BPE tokenizer.json (tests/fixtures/make_tokenizer.py; Llama's
wants a BOS). Tokenize and Detokenize round-trip; a text row is exactly its
Tokenize ids (logits bit-identical, in Forward, in a Trace invoke and on an
edit set); top-k entries carry their token's text; Describe shows the
tokenizer; Tokenize gives each token's byte offsets in its text (through
multibyte characters and byte-level tokens inside them) and encodes pairs
with the pair template; and every bad input gets a precise status: invalid
UTF-8 (its
byte offset), ids and text in one row, a mask on a text row, pairs not
one per text or over the length limit, a text over
max_seq_len once tokenized (the count and the limit), a model without a
tokenizer (the file looked for), a tokenizer.json the daemon cannot use
(its JSON path, at load).
"""

import json
import os
import shutil
import tempfile
import unittest

import grpc
import numpy as np

from nnedit_testlib import FIXTURES, Daemon, forward, models_pb2, trace
from nnedit.v1 import edits_pb2, edits_pb2_grpc, inference_pb2 as I

GPT2, LLAMA = "gpt2-script", "llama-script"
TEXTS = ["The Eiffel Tower is in the city of", "héllo wörld, ça va?", "🙂 emoji 👩‍💻 zwj",
         "tabs\tand\nnewlines  ", "", "x"]


class Text(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon("--load", GPT2, "--load", LLAMA)
        cls.edits = edits_pb2_grpc.EditsStub(cls.d.channel)

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop()
        assert code == 0, cls.d.log_text()

    def tokenize(self, model, texts, raw=False, pairs=()):
        return self.d.inference.Tokenize(
            I.TokenizeRequest(model=model, texts=texts, raw=raw, pairs=pairs), timeout=30)

    def detok(self, model, rows, skip_special=False):
        return list(self.d.inference.Detokenize(I.DetokenizeRequest(
            model=model, rows=[I.TokenRow(ids=r) for r in rows], skip_special=skip_special),
            timeout=30).texts)

    def assertStatus(self, fn, code, *needles):
        with self.assertRaises(grpc.RpcError) as cm:
            fn()
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        for n in needles:
            self.assertIn(n, cm.exception.details())

    def test_round_trip(self):
        r = self.tokenize(GPT2, TEXTS)
        self.assertEqual(r.vocab_size, 1000)
        self.assertEqual(len(r.texts), len(TEXTS))
        rows = [list(t.ids) for t in r.texts]
        self.assertEqual(self.detok(GPT2, rows), TEXTS)
        for t in r.texts:
            self.assertEqual(len(t.tokens), len(t.ids))
            self.assertEqual(len(t.pieces), len(t.ids))
            self.assertFalse(any(t.special))
            # The pieces are each token decoded alone: they concatenate to
            # the text where every token is whole characters.
        self.assertEqual("".join(r.texts[0].pieces), TEXTS[0])
        self.assertEqual(r.texts[0].tokens[1][0], "\u0120")  # GPT-2's space mark

    def test_template_bos(self):
        t = self.tokenize(LLAMA, ["The cat"]).texts[0]
        self.assertEqual(t.ids[0], 999)
        self.assertEqual(t.special[0], True)
        self.assertEqual(t.tokens[0], "<|endoftext|>")
        raw = self.tokenize(LLAMA, ["The cat"], raw=True).texts[0]
        self.assertEqual(list(raw.ids), list(t.ids[1:]))
        self.assertEqual(self.detok(LLAMA, [list(t.ids)], skip_special=True), ["The cat"])
        self.assertEqual(self.detok(LLAMA, [list(t.ids)]), ["<|endoftext|>The cat"])

    def test_offsets(self):
        """Each token's [start, end) is bytes of the UTF-8 text; a byte-level
        token inside a character spans the whole character and carries its
        own bytes beside its lossy piece."""
        texts = ["héllo wörld, ça va?", "🙂 emoji 👩‍💻 zwj", "日本語のテキスト", ""]
        for model in (GPT2, LLAMA):
            r = self.tokenize(model, texts)
            for text, t in zip(texts, r.texts):
                b = text.encode()
                n = len(t.ids)
                for field in (t.offset_starts, t.offset_ends, t.sources, t.type_ids,
                              t.piece_bytes):
                    self.assertEqual(len(field), n, (model, text))
                self.assertEqual(set(t.type_ids), {0} if n else set())
                at, cut = 0, b""
                for k in range(n):
                    s, e, src = t.offset_starts[k], t.offset_ends[k], t.sources[k]
                    if src == I.TOKEN_SOURCE_TEMPLATE:
                        self.assertEqual((s, e, t.special[k]), (0, 0, True))
                        continue
                    self.assertEqual(src, I.TOKEN_SOURCE_TEXT)
                    span = b[s:e]
                    span.decode()  # whole characters: never a cut one
                    if t.piece_bytes[k]:
                        # A part of a character: its bytes, the span the
                        # character's (shared with the other parts).
                        self.assertIn("\ufffd", t.pieces[k])
                        cut += t.piece_bytes[k]
                        if cut == span:
                            self.assertEqual(s, at)
                            at, cut = e, b""
                        continue
                    self.assertEqual(cut, b"")
                    self.assertEqual((s, t.pieces[k].encode()), (at, span), (model, text, k))
                    at = e
                self.assertEqual(at, len(b), (model, text))
            # Bytes, not characters: "é" is bytes 1-3 of "héllo", so a
            # token starts at 1 and none starts or ends at 2, inside it.
            t = r.texts[0]
            spans = [(t.offset_starts[k], t.offset_ends[k]) for k in range(len(t.ids))
                     if t.sources[k] == I.TOKEN_SOURCE_TEXT]
            self.assertIn(1, [s for s, _ in spans], spans)
            self.assertNotIn(2, [x for span in spans for x in span], spans)

    def test_pairs(self):
        a, b = "Where is the Eiffel Tower?", "In Paris, ça va."
        ra = self.tokenize(LLAMA, [a], raw=True).texts[0]
        rb = self.tokenize(LLAMA, [b], raw=True).texts[0]
        p = self.tokenize(LLAMA, [a, "x"], pairs=[b, ""]).texts
        # Llama's pair template: BOS A B, B's tokens type 1.
        self.assertEqual(list(p[0].ids), [999] + list(ra.ids) + list(rb.ids))
        self.assertEqual(list(p[0].type_ids), [0] * (1 + len(ra.ids)) + [1] * len(rb.ids))
        self.assertEqual(list(p[0].sources), [I.TOKEN_SOURCE_TEMPLATE] +
                         [I.TOKEN_SOURCE_TEXT] * len(ra.ids) + [I.TOKEN_SOURCE_PAIR] * len(rb.ids))
        # The pair's offsets count in the pair.
        self.assertEqual(list(p[0].offset_starts[1 + len(ra.ids):]), list(rb.offset_starts))
        self.assertEqual(p[0].offset_ends[-1], len(b.encode()))
        self.assertEqual(len(p[1].ids), 2)  # BOS, x; "" adds nothing
        raw = self.tokenize(LLAMA, [a], pairs=[b], raw=True).texts[0]
        self.assertEqual(list(raw.ids), list(ra.ids) + list(rb.ids))
        # GPT-2's has no template: the two one after the other, types 0, 1.
        g = self.tokenize(GPT2, [a], pairs=[b]).texts[0]
        ga = self.tokenize(GPT2, [a]).texts[0]
        self.assertEqual(list(g.ids[:len(ga.ids)]), list(ga.ids))
        self.assertEqual(set(g.type_ids[len(ga.ids):]), {1})
        # Pairs must be one per text, and as bounded as texts.
        self.assertStatus(lambda: self.tokenize(LLAMA, [a, a], pairs=[b]),
                          grpc.StatusCode.INVALID_ARGUMENT, "pairs: 1 for 2 texts")
        self.assertStatus(lambda: self.tokenize(LLAMA, [a], pairs=["y" * ((1 << 20) + 1)]),
                          grpc.StatusCode.RESOURCE_EXHAUSTED, "too long pairs")

    def test_forward_text_is_its_ids(self):
        for model in (GPT2, LLAMA):
            ids = [list(t.ids) for t in self.tokenize(model, TEXTS[:3]).texts]
            req = I.ForwardRequest(model=model, input_ids=[I.TokenRow(text=s) for s in TEXTS[:3]],
                                   top_k=5, logits=2, padding=1, save=["layers.1.resid_post"])
            got = {}
            res = None
            for m in self.d.inference.Forward(req, timeout=60):
                if m.HasField("result"):
                    res = m.result
                else:
                    got.setdefault(m.chunk.name, bytearray()).extend(m.chunk.data)
            want_res, want = forward(self.d.inference, model, ids, top_k=5, logits=2, padding=1,
                                     save=["layers.1.resid_post"])
            self.assertEqual(bytes(got["logits"]), want["logits"].tobytes(), model)
            self.assertEqual(bytes(got["layers.1.resid_post"]),
                             want["layers.1.resid_post"].tobytes(), model)
            self.assertEqual(str(res.rows), str(want_res.rows))
            # Each top-k entry's text is its id decoded alone.
            for row in res.rows:
                texts = self.detok(model, [[t.token_id] for t in row.top])
                self.assertEqual([t.text for t in row.top], texts)
                self.assertTrue(all(t.text != "" for t in row.top))

    def test_mixed_rows_trace_and_edit_set(self):
        ids = list(self.tokenize(GPT2, ["The quick brown fox"]).texts[0].ids)
        # A text row beside an id row, left padding.
        _, a = forward(self.d.inference, GPT2, [ids, [5, 6]], logits=2, padding=1)
        req = I.ForwardRequest(model=GPT2, input_ids=[I.TokenRow(text="The quick brown fox"),
                                                      I.TokenRow(ids=[5, 6])],
                               logits=2, padding=1)
        b = bytearray()
        for m in self.d.inference.Forward(req, timeout=60):
            if m.HasField("chunk"):
                b.extend(m.chunk.data)
        self.assertEqual(bytes(b), a["logits"].tobytes())
        # A trace whose invoke is text.
        def tr(rows):
            return I.Trace(name="t", invokes=[I.Invoke(input_ids=rows)],
                           nodes=[I.Node(id=1, read=I.ReadNode(site="layers.0.mlp_out")),
                                  I.Node(id=2, save=I.SaveNode(value=1, name="m"))])
        _, by_ids = trace(self.d.inference, GPT2, [tr([I.TokenRow(ids=ids)])], logits=2)
        _, by_text = trace(self.d.inference, GPT2, [tr([I.TokenRow(text="The quick brown fox")])],
                           logits=2)
        for k in by_ids:
            self.assertTrue(np.array_equal(by_ids[k], by_text[k]), k)
        # An edit set, run on a prompt.
        es = self.edits.Apply(edits_pb2.ApplyEditsRequest(model=GPT2, edits=[
            edits_pb2.Edit(site="layers.0.mlp_out", op=edits_pb2.EDIT_OP_SCALE, scalar=0.0)]),
            timeout=60).edit_set
        try:
            _, e_ids = forward(self.d.inference, GPT2, [ids], logits=2, edit_set=es.id)
            req = I.ForwardRequest(model=GPT2, input_ids=[I.TokenRow(text="The quick brown fox")],
                                   logits=2, edit_set=es.id)
            b = bytearray()
            for m in self.d.inference.Forward(req, timeout=60):
                if m.HasField("chunk"):
                    b.extend(m.chunk.data)
            self.assertEqual(bytes(b), e_ids["logits"].tobytes())
            _, plain = forward(self.d.inference, GPT2, [ids], logits=2)
            self.assertFalse(np.array_equal(plain["logits"], e_ids["logits"]))
        finally:
            self.edits.Drop(edits_pb2.DropEditSetRequest(id=es.id), timeout=30)

    def test_describe(self):
        info = self.d.models.Describe(models_pb2.DescribeModelRequest(name=LLAMA), timeout=30).model
        self.assertTrue(info.HasField("tokenizer"))
        self.assertEqual(info.tokenizer.file, LLAMA + "/tokenizer.json")
        self.assertEqual((info.tokenizer.kind, info.tokenizer.vocab_size), ("BPE", 1000))
        self.assertEqual([(s.id, s.text) for s in info.tokenizer.special], [(999, "<|endoftext|>")])

    def test_bad_inputs(self):
        inv = grpc.StatusCode.INVALID_ARGUMENT
        # Invalid UTF-8: protobuf's Python refuses to build it, so the bytes
        # go on the wire by hand.
        raw = I.ForwardRequest(model=GPT2, input_ids=[I.TokenRow(text="abXYZW")],
                               top_k=1).SerializeToString().replace(b"XYZW", b"\xff\xfeZW")
        call = self.d.channel.unary_stream("/nnedit.v1.Inference/Forward",
                                           request_serializer=lambda b: b,
                                           response_deserializer=I.ForwardResponse.FromString)
        self.assertStatus(lambda: list(call(raw, timeout=30)), inv,
                          "input_ids[0].text", "invalid UTF-8 at byte 2")
        self.assertStatus(lambda: list(self.d.inference.Forward(I.ForwardRequest(
            model=GPT2, input_ids=[I.TokenRow(ids=[1, 2], text="ab")]), timeout=30)), inv,
            "input_ids[0]: ids and text both given")
        self.assertStatus(lambda: list(self.d.inference.Forward(I.ForwardRequest(
            model=GPT2, input_ids=[I.TokenRow(text="ab")],
            attention_mask=[I.MaskRow(values=[1, 1])]), timeout=30)), inv,
            "attention_mask: not with text rows")
        long_text = "The cat sat on the mat. " * 40
        n = len(self.tokenize(GPT2, [long_text]).texts[0].ids)
        self.assertGreater(n, 64)
        self.assertStatus(lambda: list(self.d.inference.Forward(I.ForwardRequest(
            model=GPT2, input_ids=[I.TokenRow(text=long_text)]), timeout=30)),
            grpc.StatusCode.RESOURCE_EXHAUSTED, "input_ids[0]", str(n), "64")
        self.assertStatus(lambda: self.detok(GPT2, [[1, 5000]]), grpc.StatusCode.OUT_OF_RANGE,
                          "rows[0]")

    def test_no_tokenizer_and_bad_tokenizer(self):
        repo = tempfile.mkdtemp(prefix="nnedit-text-")
        try:
            for name in ("plain", "broken"):
                os.makedirs(os.path.join(repo, name))
                for f in ("model.pt", "model.json"):
                    shutil.copy(os.path.join(FIXTURES, GPT2, f), os.path.join(repo, name, f))
            with open(os.path.join(FIXTURES, GPT2, "tokenizer.json")) as f:
                tok = json.load(f)
            tok["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
                tok["pre_tokenizer"], {"type": "UnicodeScripts"}]}
            with open(os.path.join(repo, "broken", "tokenizer.json"), "w") as f:
                json.dump(tok, f)
            with Daemon("--load", "plain", "--load", "broken", "--allow-failed-loads",
                        repo=repo) as d:
                with self.assertRaises(grpc.RpcError) as cm:
                    list(d.inference.Forward(I.ForwardRequest(
                        model="plain", input_ids=[I.TokenRow(text="hi")]), timeout=30))
                self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
                self.assertIn("plain/tokenizer.json", cm.exception.details())
                with self.assertRaises(grpc.RpcError) as cm:
                    d.inference.Tokenize(I.TokenizeRequest(model="plain", texts=["hi"]), timeout=30)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
                ms = {m.name: m for m in d.models.List(models_pb2.ListModelsRequest(),
                                                       timeout=30).models}
                self.assertEqual(ms["broken"].state, models_pb2.MODEL_STATE_FAILED)
                self.assertIn("broken/tokenizer.json", ms["broken"].error)
                self.assertIn("pre_tokenizer.pretokenizers[1].type", ms["broken"].error)
                self.assertFalse(ms["plain"].HasField("tokenizer"))
        finally:
            shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
