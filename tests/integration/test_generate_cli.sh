#!/bin/bash
# test_generate_cli.sh — nneditctl generate (issue 12): the options on the
# wire, the text streamed as it comes, JSON lines, the summary, saved
# tensors per step, and a stream that breaks the protocol.
#
# First against a fake server (Python grpcio), which echoes the request
# it got (model "echo") or streams what a daemon may send (texts with a
# newline, a UTF-8 character split over two tokens, rows that finish at
# different steps, saves). Then against the real nneditd on the fixtures:
# greedy generation of 8 tokens on gpt2-script, whose JSON lines must add
# up (8 steps, ids in the vocabulary, the row's text the concatenation of
# the streamed pieces, finish "length"), and the daemon's INVALID_ARGUMENT
# naming max_new_tokens.
set -u
TEST_NAME=test_generate_cli
. "$(dirname "$0")/cli_lib.sh"

need_built "$CTL"

# ---- the fake server ------------------------------------------------------

cat >"$TMP/fake.py" <<'PYEOF'
import sys, os, struct
from concurrent import futures
from fakeserve import serve
sys.path.insert(0, os.environ["NNE_PY_GEN"])
import grpc
from nnedit.v1 import inference_pb2 as ip, tensor_pb2 as tp

def rows_text(rows):
    return "|".join("T" + r.text if r.text else "I" + ",".join(map(str, r.ids)) for r in rows)

def echo(req):
    s = req.sampling
    return ("prompts=%s max_new_tokens=%d sampling=%s temperature=%g top_k=%d top_p=%g "
            "seed=%s repetition_penalty=%g stop_ids=%s stops=%s ignore_eos=%s alternatives=%d "
            "edit_set=%s save=%s cache=%d" % (
                rows_text(req.prompts), req.max_new_tokens, req.HasField("sampling"),
                s.temperature, s.top_k, s.top_p, s.seed if s.HasField("seed") else "-",
                s.repetition_penalty, list(req.stop_token_ids), list(req.stop_strings),
                req.ignore_eos, req.top_alternatives, req.edit_set, list(req.save), req.cache))

# Row 0's pieces: "é" comes in two tokens (the first adds "", the second
# the whole character), and a newline.
PIECES = [" Caf", "", "\u00e9", "\n", " ok"]

def generate(req_bytes, ctx):
    req = ip.GenerateRequest.FromString(req_bytes)
    if req.model == "echo":
        ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, echo(req))
    n = len(req.prompts)
    steps = min(req.max_new_tokens, len(PIECES))
    ids = [[] for _ in range(n)]
    text = ["" for _ in range(n)]
    if req.model == "broken":   # a step out of order
        yield ip.GenerateResponse(step=ip.GenerateStep(step=1)).SerializeToString()
        return
    for s in range(steps):
        toks = []
        for r in range(n):
            if r == 1 and s >= 2:        # row 1 stops after 2 tokens
                continue
            piece = PIECES[s] if r == 0 else "x"
            top = [ip.TokenScore(token_id=900 + k, logit=2.0 - k, prob=0.5 / (k + 1), text="a%d" % k)
                   for k in range(req.top_alternatives)]
            toks.append(ip.GeneratedToken(row=r, token_id=10 + s, text=piece, logprob=-0.5, top=top))
            ids[r].append(10 + s)
            text[r] += piece
        yield ip.GenerateResponse(step=ip.GenerateStep(step=s, tokens=toks)).SerializeToString()
    saved = []
    for s in range(steps):
        for site in req.save:
            name = "%s@%d" % (site, s)
            yield ip.GenerateResponse(chunk=tp.TensorChunk(
                name=name, dtype=tp.DTYPE_FLOAT32, shape=[2], total_bytes=8, offset=0,
                data=struct.pack("<2f", s, -s), last=True)).SerializeToString()
            saved.append(name)
    rows = [ip.GeneratedRow(ids=ids[r], text=text[r], prompt_tokens=3,
                            finish_reason=ip.FINISH_REASON_STOP_TOKEN if r == 1 else ip.FINISH_REASON_LENGTH)
            for r in range(n)]
    res = ip.GenerateResult(rows=rows, steps=steps, seed=18446744073709551615, kv_cache=True,
                            kv_cache_bytes=4096, saved=saved,
                            timing=ip.GenerateTiming(prefill_ms=10.0, decode_ms=8.0,
                                                     per_token_ms=2.0, total_ms=20.0))
    yield ip.GenerateResponse(result=res).SerializeToString()

server = grpc.server(futures.ThreadPoolExecutor(4))
server.add_generic_rpc_handlers([
    grpc.method_handlers_generic_handler("nnedit.v1.Inference", {
        "Generate": grpc.unary_stream_rpc_method_handler(generate)}),
])
serve(server)
PYEOF

start_fake

# Every option on the wire, as the library puts it there.
run "${F[@]}" generate echo --prompt "The Eiffel Tower" --ids 5,6 -n 7 --temperature 0.5 \
  --top-k 40 --top-p 0.9 --seed 42 --repetition-penalty 1.5 --stop-id 50256,13 --stop "\n\n" \
  --stop "." --ignore-eos --alternatives 3 --edit-set es-1 --save layers.0.resid_post --no-cache
expect 1 "fake: echo"
has "$ERR" "INVALID_ARGUMENT: prompts=TThe Eiffel Tower|I5,6 max_new_tokens=7 sampling=True" \
  "fake: prompts and length on the wire"
has "$ERR" "temperature=0.5 top_k=40 top_p=0.9 seed=42 repetition_penalty=1.5" \
  "fake: sampling on the wire"
has "$ERR" "stop_ids=[50256, 13] stops=['\\\\n\\\\n', '.'] ignore_eos=True alternatives=3" \
  "fake: stop criteria on the wire"
has "$ERR" "edit_set=es-1 save=['layers.0.resid_post'] cache=1" "fake: edit set, saves, cache"
run "${F[@]}" generate echo --prompt "hi"
expect 1 "fake: echo, defaults"
has "$ERR" "max_new_tokens=16 sampling=False" "fake: greedy goes without sampling"
has "$ERR" "seed=- " "fake: no seed unless asked"
has "$ERR" "cache=0" "fake: the default cache mode"

# One prompt: the text as it is, then the summary.
run "${F[@]}" generate ok --prompt "x" -n 5
expect 0 "fake: one prompt"
[ "$(printf '%s\n' "$OUT" | head -2)" = "$(printf ' Café\n ok')" ] ||
  fail "fake: the streamed text: $OUT"
has "$OUT" "-- length, 5 tokens | 5 steps, prefill 10.0 ms, 2.00 ms/token, 250.0 tokens/s" \
  "fake: the summary line"
has "$OUT" "kv cache 4096 bytes | seed 18446744073709551615" "fake: cache and seed"

# Several prompts: each row at the end; how each finished.
run "${F[@]}" generate ok --prompt "a" --prompt "b" -n 3
expect 0 "fake: two prompts"
has "$OUT" "row 0  prompt 'a':" "fake: row 0 header"
has "$OUT" "row 1  prompt 'b':
xx" "fake: row 1 text"
has "$OUT" "-- row 0: length, 3 tokens; row 1: stop_token, 2 tokens" "fake: finish per row"

# Alternatives: a line per token.
run "${F[@]}" generate ok --prompt "a" -n 2 --alternatives 2
expect 0 "fake: alternatives"
has "$OUT" "step    0  row   0        10  ' Caf'" "fake: a token line"
has "$OUT" "| 'a0' 0.5000, 'a1' 0.2500" "fake: its alternatives"
has "$OUT" "row 0: ' Caf'" "fake: the row's text quoted"

# JSON lines: a line per token, then the result; the pieces add up.
run -o json "${F[@]}" generate ok --prompt "a" --prompt "b" -n 5 --alternatives 1
expect 0 "fake: JSON lines"
printf '%s\n' "$OUT" >"$TMP/lines.json"
py "lines = [json.loads(l) for l in open('$TMP/lines.json')]
toks, res = lines[:-1], lines[-1]
assert len(toks) == 7, toks
assert toks[0] == {'step': 0, 'row': 0, 'id': 10, 'text': ' Caf', 'logprob': -0.5,
                   'top': [{'token_id': 900, 'logit': 2.0, 'prob': 0.5, 'text': 'a0'}]}, toks[0]
assert [t['step'] for t in toks] == [0, 0, 1, 1, 2, 3, 4], toks
for r in (0, 1):
    assert ''.join(t['text'] for t in toks if t['row'] == r) == res['rows'][r]['text'], (r, res)
    assert [t['id'] for t in toks if t['row'] == r] == res['rows'][r]['ids'], (r, res)
assert res['rows'][0]['text'] == ' Caf\u00e9\n ok', res
assert [r['finish_reason'] for r in res['rows']] == ['length', 'stop_token'], res
assert res['steps'] == 5 and res['seed'] == '18446744073709551615' and res['kv_cache'], res
assert res['timing']['per_token_ms'] == 2.0 and res['saved'] == [], res" \
  "fake: JSON lines add up"

# Saves: SITE@STEP per step, in .npy files too.
run "${F[@]}" generate ok --prompt "a" -n 2 --save layers.0.resid_post --save-dir "$TMP/npy"
expect 0 "fake: saves"
has "$OUT" "layers.0.resid_post@1" "fake: a save per step"
py "a = np.load('$TMP/npy/layers.0.resid_post_1.npy')
assert a.tolist() == [1.0, -1.0], a" "fake: the .npy of step 1"

# A stream out of order: the library's INTERNAL, exit 1.
run "${F[@]}" generate broken --prompt "a"
expect 1 "fake: broken stream"
has "$ERR" "INTERNAL: Inference/Generate: step 1 came where step 0 was due" \
  "fake: broken stream message"

# Usage errors: exit 2, the option named as typed.
run "${F[@]}" generate ok --prompt "a" --max-new-tokens 0
expect 2 "usage: --max-new-tokens 0"
has "$ERR" "--max-new-tokens '0': expected a number from 1 to" "usage: --max-new-tokens message"
run -o json "${F[@]}" generate ok --prompt "a" --temperature hot
expect 2 "usage: --temperature hot"
json_err "assert e['code'] == 'USAGE' and e['message'].startswith(\"--temperature 'hot'\"), e" \
  "usage: JSON error"

stop_fake

# ---- the real daemon ------------------------------------------------------

start_daemon
run "${A[@]}" models load gpt2-script
expect 0 "load gpt2-script"
run -o json "${A[@]}" models load gpt2-script
VOCAB=$(printf '%s' "$OUT" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["model"]["vocab_size"])')

# Greedy, 8 tokens: 8 steps of one token, ids in the vocabulary, the text
# the concatenation of the pieces, finish length (EOS ignored).
run -o json "${A[@]}" generate gpt2-script --prompt "The Eiffel Tower is in" -n 8 --ignore-eos
expect 0 "daemon: greedy generation"
printf '%s\n' "$OUT" >"$TMP/greedy.json"
py "lines = [json.loads(l) for l in open('$TMP/greedy.json')]
toks, res = lines[:-1], lines[-1]
assert [t['step'] for t in toks] == list(range(8)), toks
assert all(t['row'] == 0 and 0 <= t['id'] < $VOCAB for t in toks), toks
row = res['rows'][0]
assert row['finish_reason'] == 'length' and len(row['ids']) == 8, row
assert row['ids'] == [t['id'] for t in toks], (row, toks)
assert row['text'] == ''.join(t['text'] for t in toks), (row, toks)
assert res['steps'] == 8, res" "daemon: the JSON lines add up"

# The same twice (greedy is deterministic), and the text form streams it.
run -o json "${A[@]}" generate gpt2-script --prompt "The Eiffel Tower is in" -n 8 --ignore-eos
[ "$OUT" != "" ] && [ "$(printf '%s\n' "$OUT" | head -8)" = "$(head -8 "$TMP/greedy.json")" ] ||
  fail "daemon: greedy generation is not deterministic"
run "${A[@]}" generate gpt2-script --prompt "The Eiffel Tower is in" -n 8 --ignore-eos
expect 0 "daemon: the text form"
has "$OUT" "-- length, 8 tokens | 8 steps" "daemon: the summary"

# The daemon is the judge of lengths: too many new tokens for the model's
# sequence is its INVALID_ARGUMENT naming max_new_tokens.
run "${A[@]}" generate gpt2-script --prompt "The Eiffel Tower is in" -n 1000000
expect 1 "daemon: max_new_tokens over the sequence"
has "$ERR" "INVALID_ARGUMENT" "daemon: max_new_tokens status"
has "$ERR" "max_new_tokens" "daemon: max_new_tokens named"

stop_daemon
finish
