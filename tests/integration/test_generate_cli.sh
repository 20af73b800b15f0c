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
# the streamed pieces, finish "length"), an intervention file (-f) that
# zeroes a head from step 3 on and saves a residual at steps 1 and 2, and
# the daemon's INVALID_ARGUMENT naming max_new_tokens, and naming both
# nodes of an intervention whose input does not run at its node's steps.
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
            "edit_set=%s save=%s cache=%d%s" % (
                rows_text(req.prompts), req.max_new_tokens, req.HasField("sampling"),
                s.temperature, s.top_k, s.top_p, s.seed if s.HasField("seed") else "-",
                s.repetition_penalty, list(req.stop_token_ids), list(req.stop_strings),
                req.ignore_eos, req.top_alternatives, req.edit_set, list(req.save), req.cache,
                ivn(req)))

def ivn(req):
    # The intervention: its nodes (id and kind) and each node's steps.
    if not req.HasField("intervention"):
        return ""
    nodes = ",".join("%d:%s" % (n.id, n.WhichOneof("op")) for n in req.intervention.nodes)
    steps = ",".join("%d:%d-%s" % (st.node, st.start, st.stop if st.HasField("stop") else "end")
                     for st in req.steps)
    return " intervention=[%s] invokes=%d steps=[%s]" % (nodes, len(req.intervention.invokes), steps)

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

# An intervention file (-f): its nodes and their steps on the wire, the
# prompts from the file unless the command line has some.
cat >"$TMP/ivn.json" <<'EOF'
{"model": "echo", "prompts": ["from the file"],
 "nodes": [
  {"id": 1, "constant": {"scalar": 0}},
  {"id": 2, "write": {"site": "layers.0.self_attn.z", "value": 1, "last": [16, 32]},
   "steps": {"start": 3}},
  {"id": 3, "read": {"site": "layers.1.resid_post"}, "steps": [1, 3]},
  {"id": 4, "save": {"value": 3, "name": "resid"}, "steps": [1, 3]},
  {"id": 5, "read": {"site": "layers.0.resid_post", "invoke": "all"}, "steps": 2},
  {"id": 6, "save": {"value": 5, "name": "r0"}, "steps": "all"}
 ]}
EOF
run "${F[@]}" generate -f "$TMP/ivn.json"
expect 1 "fake: echo, an intervention"
has "$ERR" "prompts=Tfrom the file " "fake: the file's prompts"
has "$ERR" "intervention=[1:constant,2:write,3:read,4:save,5:read,6:save] invokes=0" \
  "fake: the intervention's nodes"
has "$ERR" "steps=[2:3-end,3:1-3,4:1-3,5:2-3]" "fake: the nodes' steps"
run "${F[@]}" generate echo --ids 7,8 -f "$TMP/ivn.json"
expect 1 "fake: echo, the command line's prompts"
has "$ERR" "prompts=I7,8 " "fake: --ids over the file's prompts"

# Usage errors of the file: exit 2, naming the place.
printf '{"nodes": [{"read": {"site": "x"}, "steps": [3, 2]}]}' >"$TMP/bad.json"
run "${F[@]}" generate echo --prompt x -f "$TMP/bad.json"
expect 2 "usage: steps stop before start"
has "$ERR" "bad.json: nodes[0].steps: stop 2 is not after start 3" "usage: steps message"
printf '{"nodes": [{"read": {"site": "x", "invoke": 0}}]}' >"$TMP/bad.json"
run "${F[@]}" generate echo --prompt x -f "$TMP/bad.json"
expect 2 "usage: an invoke in Generate's intervention"
has "$ERR" "nodes[0].read.invoke: expected -1 or \"all\"" "usage: invoke message"
printf '{"nodes": [], "invokes": []}' >"$TMP/bad.json"
run "${F[@]}" generate echo --prompt x -f "$TMP/bad.json"
expect 2 "usage: invokes in Generate's file"
has "$ERR" "unknown key 'invokes'" "usage: invokes message"
printf '{"traces": [{"invokes": [{"tokens": [1]}], "nodes": [{"read": {"site": "x"}, "steps": 1}]}]}' \
  >"$TMP/bad.json"
run "${F[@]}" trace m -f "$TMP/bad.json"
expect 2 "usage: steps in a trace"
has "$ERR" "traces[0].nodes[0].steps: only Generate's intervention runs nodes at steps" \
  "usage: steps in a trace message"

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

# An intervention (nnsight: tracer.iter[3:] zeroes head 1 of layer 0's
# attention, tracer.iter[1:3] saves layer 1's residual): the first 3 ids
# are greedy's, a later one differs; the saves come back as resid@1 and
# resid@2, [1, 1, 64] each (the new token's position), in .npy files too.
cat >"$TMP/head.json" <<'EOF'
{"model": "gpt2-script", "prompt": "The Eiffel Tower is in",
 "nodes": [
  {"id": 1, "constant": {"scalar": 0}},
  {"id": 2, "write": {"site": "layers.0.self_attn.z", "value": 1,
                      "ranges": [{"dim": -1, "start": 16, "stop": 32}]},
   "steps": {"start": 3}},
  {"id": 3, "read": {"site": "layers.1.resid_post"}, "steps": [1, 3]},
  {"id": 4, "save": {"value": 3, "name": "resid"}, "steps": [1, 3]}
 ]}
EOF
run -o json "${A[@]}" generate -f "$TMP/head.json" -n 8 --ignore-eos --save-dir "$TMP/ivn"
expect 0 "daemon: an intervention"
printf '%s\n' "$OUT" >"$TMP/head_out.json"
py "greedy = json.loads(open('$TMP/greedy.json').read().splitlines()[-1])['rows'][0]['ids']
res = json.loads(open('$TMP/head_out.json').read().splitlines()[-1])
ids = res['rows'][0]['ids']
assert len(ids) == 8 and ids[:3] == greedy[:3], (ids, greedy)
assert ids[3:] != greedy[3:], (ids, greedy)
assert [s['name'] for s in res['saved']] == ['resid@1', 'resid@2'], res['saved']
assert all(s['shape'] == [1, 1, 64] for s in res['saved']), res['saved']
a = np.load('$TMP/ivn/resid_2.npy')
assert a.shape == (1, 1, 64), a.shape" "daemon: the head zeroed from step 3, saves at steps 1 and 2"

# A node whose input does not run at its steps: the daemon's
# INVALID_ARGUMENT naming both.
cat >"$TMP/input.json" <<'EOF'
{"nodes": [{"id": 1, "read": {"site": "layers.1.resid_post"}, "steps": {"start": 2}},
           {"id": 2, "save": {"value": 1, "name": "resid"}}]}
EOF
run "${A[@]}" generate gpt2-script --prompt "The Eiffel Tower is in" -n 4 -f "$TMP/input.json"
expect 1 "daemon: an input that does not run"
has "$ERR" "INVALID_ARGUMENT" "daemon: input status"
has "$ERR" "node 2 runs at steps [0, end) but its input, node 1, only at [2, end)" \
  "daemon: both nodes named"

# The daemon is the judge of lengths: too many new tokens for the model's
# sequence is its INVALID_ARGUMENT naming max_new_tokens.
run "${A[@]}" generate gpt2-script --prompt "The Eiffel Tower is in" -n 1000000
expect 1 "daemon: max_new_tokens over the sequence"
has "$ERR" "INVALID_ARGUMENT" "daemon: max_new_tokens status"
has "$ERR" "max_new_tokens" "daemon: max_new_tokens named"

stop_daemon
finish
