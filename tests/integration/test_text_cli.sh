#!/bin/bash
# test_text_cli.sh — nneditctl and libnnedit on text (issue 10): --prompt
# rows, the token text of top-k tables, tokenize and detokenize, the
# tokenizer in a model's info, prompts in TRACE-JSON.
#
# First against a fake server (Python grpcio), which checks what goes on
# the wire (text rows as text, in order, beside id rows) and sends back
# what a daemon may send (texts with newlines, invisible characters, an
# empty text, special tokens, FAILED_PRECONDITION for a model without a
# tokenizer). Then against the real nneditd, on a repository whose model
# has a tokenizer.json made here (a small byte-level BPE, ids below the
# fixture's vocabulary), and one whose model has none.
set -u
TEST_NAME=test_text_cli
. "$(dirname "$0")/cli_lib.sh"

need_built "$CTL"

# ---- the fake server ------------------------------------------------------

cat >"$TMP/fake.py" <<'PYEOF'
import sys, os
from concurrent import futures
from fakeserve import serve
sys.path.insert(0, os.environ["NNE_PY_GEN"])
import grpc
from nnedit.v1 import inference_pb2 as ip, models_pb2 as mp

def rows_text(rows):
    """What arrived, row by row: T<text> or I<ids>."""
    out = []
    for r in rows:
        if r.text:
            assert not r.ids, "a row with both text and ids"
            out.append("T" + r.text)
        else:
            out.append("I" + ",".join(str(i) for i in r.ids))
    return "|".join(out)

TOP = [(6342, " Paris"), (198, "\n"), (7, "\u00e9\u200b"), (8, "it's \\"), (9, "")]

def forward(req_bytes, ctx):
    req = ip.ForwardRequest.FromString(req_bytes)
    if req.model == "none":
        ctx.abort(grpc.StatusCode.FAILED_PRECONDITION,
                  "model 'none' has no tokenizer (looked for /r/none/tokenizer.json)")
    if req.model == "echo":
        ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "rows: " + rows_text(req.input_ids))
    rows = [ip.RowTopK(position=i, top=[ip.TokenScore(token_id=t, logit=1.0, prob=0.5, text=s)
                                        for t, s in TOP[:req.top_k]])
            for i in range(len(req.input_ids))]
    r = ip.ForwardResult(batch=len(rows), seq_len=1, rows=rows)
    yield ip.ForwardResponse(result=r).SerializeToString()

def trace(req_bytes, ctx):
    req = ip.TraceRequest.FromString(req_bytes)
    inv = ["/".join(rows_text(i.input_ids) for i in t.invokes) for t in req.traces]
    ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "invokes: " + " ; ".join(inv))
    yield b""

def tokenize(req_bytes, ctx):
    req = ip.TokenizeRequest.FromString(req_bytes)
    if req.model == "none":
        ctx.abort(grpc.StatusCode.FAILED_PRECONDITION,
                  "model 'none' has no tokenizer (looked for /r/none/tokenizer.json)")
    if req.model == "nopair" and req.pairs:
        ctx.abort(grpc.StatusCode.UNIMPLEMENTED,
                  "pair: the tokenizer's post_processor has no pair template")
    out = []
    for i, t in enumerate(req.texts):
        # (id, token, piece, special, start, end, source, type, bytes)
        toks = [] if req.raw else [(1, "<s>", "", True, 0, 0, ip.TOKEN_SOURCE_TEMPLATE, 0, b"")]
        for src, text in [(ip.TOKEN_SOURCE_TEXT, t)] + (
                [(ip.TOKEN_SOURCE_PAIR, req.pairs[i])] if req.pairs else []):
            at = 0
            for c in text:
                n = len(c.encode())
                # A byte token's piece is lossy: its bytes come beside it.
                lossy = c == "\u00e9"
                toks.append((ord(c), "\u0120" if c == " " else c, "\ufffd" if lossy else c,
                             False, at, at + n, src, 1 if src == ip.TOKEN_SOURCE_PAIR else 0,
                             b"\xc3" if lossy else b""))
                at += n
        out.append(ip.TokenizedText(ids=[x[0] for x in toks], tokens=[x[1] for x in toks],
                                    pieces=[x[2] for x in toks], special=[x[3] for x in toks],
                                    offset_starts=[x[4] for x in toks],
                                    offset_ends=[x[5] for x in toks],
                                    sources=[x[6] for x in toks], type_ids=[x[7] for x in toks],
                                    piece_bytes=[x[8] for x in toks]))
    if req.model == "short":          # a daemon that lost a text
        out = out[:-1]
    if req.model == "ragged":         # pieces not parallel to the ids
        del out[0].pieces[-1]
    return ip.TokenizeResponse(texts=out, vocab_size=1000).SerializeToString()

def detokenize(req_bytes, ctx):
    req = ip.DetokenizeRequest.FromString(req_bytes)
    texts = []
    for r in req.rows:
        assert not r.text
        texts.append("".join("" if (i == 1 and req.skip_special) else "<s>" if i == 1 else chr(i)
                             for i in r.ids))
    return ip.DetokenizeResponse(texts=texts).SerializeToString()

def info(name):
    m = mp.ModelInfo(name=name, state=mp.MODEL_STATE_LOADED, device="cpu", vocab_size=1000)
    if name != "none":
        m.tokenizer.file = "/r/%s/tokenizer.json" % name
        m.tokenizer.kind = "BPE"
        m.tokenizer.vocab_size = 1000
        m.tokenizer.special.add(id=1, text="<s>")
        m.tokenizer.special.add(id=2, text="</s>\n")
    return m

def describe(req_bytes, ctx):
    req = mp.DescribeModelRequest.FromString(req_bytes)
    mods = [mp.Module(path="", class_name="Root", parent=-1, depth=0)]
    return mp.DescribeModelResponse(model=info(req.name), modules=mods).SerializeToString()

def load(req_bytes, ctx):
    req = mp.LoadModelRequest.FromString(req_bytes)
    return mp.LoadModelResponse(model=info(req.name)).SerializeToString()

server = grpc.server(futures.ThreadPoolExecutor(4))
server.add_generic_rpc_handlers([
    grpc.method_handlers_generic_handler("nnedit.v1.Inference", {
        "Forward": grpc.unary_stream_rpc_method_handler(forward),
        "Trace": grpc.unary_stream_rpc_method_handler(trace),
        "Tokenize": grpc.unary_unary_rpc_method_handler(tokenize),
        "Detokenize": grpc.unary_unary_rpc_method_handler(detokenize)}),
    grpc.method_handlers_generic_handler("nnedit.v1.Models", {
        "Describe": grpc.unary_unary_rpc_method_handler(describe),
        "Load": grpc.unary_unary_rpc_method_handler(load)}),
])
serve(server)
PYEOF

start_fake

# Rows in the order given, text as text, ids as ids (the fake echoes them).
run "${F[@]}" forward echo --tokens 1,2 --prompt "The Eiffel Tower is in" --prompt "a, b"
expect 1 "fake: echo"
has "$ERR" "rows: I1,2|TThe Eiffel Tower is in|Ta, b" "fake: rows on the wire"

# The top-k table: texts quoted and escaped, last column.
run "${F[@]}" forward ok --prompt "x" --top-k 5
expect 0 "fake: forward on a prompt"
has "$OUT" "TEXT" "fake: a TEXT column"
has "$OUT" "row 0  position 0  prompt 'x'" "fake: a row names its prompt"
has "$OUT" "' Paris'" "fake: a leading space shows"
has "$OUT" "'\\n'" "fake: a newline is escaped"
has "$OUT" "'é\\u200b'" "fake: an invisible character is escaped"
has "$OUT" "'it\\'s \\\\'" "fake: a quote and a backslash are escaped"
has "$OUT" "''" "fake: an empty text"
run -o json "${F[@]}" forward ok --prompt "x" --top-k 5
expect 0 "fake: forward -o json"
json "t = d['rows'][0]['top']
assert [x['text'] for x in t] == [' Paris', '\n', '\u00e9\u200b', 'it\'s \\\\', ''], t" \
  "fake: texts in JSON"

# A model without a tokenizer: the daemon's status and message, exit 1.
run "${F[@]}" forward none --prompt "x"
expect 1 "fake: no tokenizer"
has "$ERR" "FAILED_PRECONDITION: model 'none' has no tokenizer (looked for /r/none/tokenizer.json)" \
  "fake: no tokenizer message"
run -o json "${F[@]}" tokenize none "x"
expect 1 "fake: tokenize, no tokenizer"
json_err "assert e['code'] == 'FAILED_PRECONDITION' and 'tokenizer.json' in e['message'], e" \
  "fake: tokenize, no tokenizer, JSON"

# Trace: prompts of the simple form and of a file reach the invokes.
run "${F[@]}" trace echo --prompt "hello" --tokens 3 --invoke --prompt "bye" --save layers.0.resid_post
expect 1 "fake: trace echo"
has "$ERR" "invokes: Thello|I3/Tbye" "fake: trace rows on the wire"
cat >"$TMP/t.json" <<'EOF'
{"model": "echo", "traces": [
  {"invokes": [{"prompt": "The Eiffel Tower is in"}, {"prompts": ["a", "b c"]}, {"tokens": [[4, 5]]}]},
  {"invokes": [{"prompts": ["\u00e9t\u00e9"]}]}]}
EOF
run "${F[@]}" trace -f "$TMP/t.json"
expect 1 "fake: trace -f echo"
has "$ERR" "invokes: TThe Eiffel Tower is in/Ta|Tb c/I4,5 ; Tété" "fake: file prompts on the wire"

# Tokenize: the table, --raw, several texts, JSON lines.
run "${F[@]}" tokenize m "a b"
expect 0 "fake: tokenize"
has "$OUT" "4 tokens (vocabulary of 1000)" "fake: tokenize count"
has "$OUT" "INDEX  ID  TOKEN  PIECE  OFFSETS  SPECIAL" "fake: tokenize header"
has "$OUT" "    0   1  '<s>'  ''           -  yes" "fake: tokenize BOS row"
has "$OUT" "    2  32  'Ġ'    ' '        1-2" "fake: tokenize space row, its offsets"
run "${F[@]}" tokenize m "aé b" --pair "cé"
expect 0 "fake: tokenize --pair"
has "$OUT" "text 0: 'aé b'" "fake: --pair names the text"
has "$OUT" "pair: 'cé'" "fake: --pair names the pair"
has "$OUT" "OFFSETS  SPECIAL  TYPE" "fake: --pair adds a TYPE column"
has "$OUT" "'�'    text 1-3" "fake: offsets in bytes, a two-byte character"
has "$OUT" "'c'    pair 0-1              1" "fake: the pair's tokens, type 1"
run "${F[@]}" tokenize m "a" "b" --pair "c"
expect 2 "fake: --pair for some texts only"
has "$ERR" "1 --pair for 2 TEXT" "fake: --pair count message"
run "${F[@]}" tokenize nopair "a" --pair "b"
expect 1 "fake: a tokenizer without a pair template"
has "$ERR" "UNIMPLEMENTED: pair: the tokenizer's post_processor has no pair template" \
  "fake: no pair template message"
run "${F[@]}" tokenize m "a b" --raw
expect 0 "fake: tokenize --raw"
has "$OUT" "3 tokens" "fake: --raw leaves BOS out"
run "${F[@]}" tokenize m "a" "b"
expect 0 "fake: two texts"
has "$OUT" "text 0: 'a'" "fake: text 0 named"
has "$OUT" "text 1: 'b'" "fake: text 1 named"
run -o json "${F[@]}" tokenize m "a\"" -- "-b"
expect 0 "fake: tokenize -o json"
printf '%s\n' "$OUT" >"$TMP/lines.json"
py "lines = [json.loads(l) for l in open('$TMP/lines.json')]
assert len(lines) == 6, lines
assert lines[0] == {'text': 0, 'index': 0, 'id': 1, 'token': '<s>', 'piece': '', 'bytes': None,
                    'special': True, 'start': 0, 'end': 0, 'source': 'template', 'type_id': 0}, lines[0]
assert lines[2]['piece'] == '\"' and lines[5]['piece'] == 'b' and lines[3]['text'] == 1, lines
assert (lines[2]['start'], lines[2]['end'], lines[2]['source']) == (1, 2, 'text'), lines[2]" \
  "fake: JSON lines"
run -o json "${F[@]}" tokenize m "é" --pair "x"
expect 0 "fake: tokenize --pair -o json"
printf '%s\n' "$OUT" >"$TMP/pair.json"
py "lines = [json.loads(l) for l in open('$TMP/pair.json')]
assert [(l['source'], l['start'], l['end'], l['type_id']) for l in lines] == [
    ('template', 0, 0, 0), ('text', 0, 2, 0), ('pair', 0, 1, 1)], lines
assert lines[1]['piece'] == '\ufffd' and lines[1]['bytes'] == 'c3' and lines[2]['bytes'] is None, lines" \
  "fake: JSON lines of a pair, a token's bytes"
run "${F[@]}" tokenize short "a" "b"
expect 1 "fake: a lost text"
has "$ERR" "INTERNAL: Inference/Tokenize: 1 tokenized texts for 2 texts" "fake: lost text message"
run "${F[@]}" tokenize ragged "ab"
expect 1 "fake: ragged lists"
has "$ERR" "INTERNAL: Inference/Tokenize: texts[0]: 3 ids, 3 tokens, 2 pieces" "fake: ragged message"
run "${F[@]}" tokenize m
expect 2 "fake: tokenize without TEXT"

# Detokenize: the text as it is, one row a line; --skip-special.
run "${F[@]}" detokenize m 1,72,105 33,10,33
expect 0 "fake: detokenize"
[ "$OUT" = "$(printf '<s>Hi\n!\n!')" ] || fail "fake: detokenize output: $OUT"
run "${F[@]}" detokenize m 1,72,105 --skip-special
expect 0 "fake: detokenize --skip-special"
[ "$OUT" = "Hi" ] || fail "fake: --skip-special output: $OUT"
run -o json "${F[@]}" detokenize m 72,10
expect 0 "fake: detokenize -o json"
json "assert d == {'model': 'm', 'texts': ['H\n']}, d" "fake: detokenize JSON"
run "${F[@]}" detokenize m 1,x
expect 2 "fake: detokenize bad ids"
has "$ERR" "IDS '1,x': expected a comma-separated list of token ids" "fake: bad ids message"

# The tokenizer in a model's info.
run "${F[@]}" models load m
expect 0 "fake: load"
has "$OUT" "tokenizer:    BPE, 1000 ids, special: 1 '<s>', 2 '</s>\\n' (/r/m/tokenizer.json)" \
  "fake: tokenizer line"
run "${F[@]}" models load none
has "$OUT" "tokenizer:    none" "fake: no tokenizer line"
run -o json "${F[@]}" modules m
expect 0 "fake: modules -o json"
json "t = d['model']['tokenizer']
assert t == {'file': '/r/m/tokenizer.json', 'kind': 'BPE', 'vocab_size': 1000,
             'special': [{'id': 1, 'text': '<s>'}, {'id': 2, 'text': '</s>\n'}]}, t" \
  "fake: tokenizer JSON"
run "${F[@]}" modules m
has "$OUT" "tokenizer: BPE, 1000 ids" "fake: modules shows the tokenizer"
stop_fake

# ---- the real daemon ------------------------------------------------------

# A repository of two models: the gpt2 fixture with its tokenizer.json, and
# the same model without one.
need_built "$NNEDITD"
need_fixtures
M=gpt2-script
P="The Eiffel Tower is in"
mkdir -p "$TMP/repo/notok"
ln -s "$FIX/$M" "$TMP/repo/$M"
ln -s "$FIX/$M/model.json" "$FIX/$M/model.pt" "$TMP/repo/notok/"
rm -f "$TMP/ready"
"$NNEDITD" --listen 127.0.0.1:0 --ready-file "$TMP/ready" --model-repo "$TMP/repo" \
  --load "$M" --load notok >"$TMP/nneditd.log" 2>&1 &
DPID=$!
ADDR=$(await_server nneditd "$TMP/ready" "$DPID" "$TMP/nneditd.log") || exit 1
A=(--addr "$ADDR")

# ids NAME: the ids of a tokenize -o json run saved as $TMP/NAME.json.
ids() {
  "$PY" -c "import json; print(','.join(str(json.loads(l)['id']) for l in open('$TMP/$1.json')))"
}

run "${A[@]}" models load $M
expect 0 "load"
has "$OUT" "tokenizer:    BPE, " "load shows the tokenizer"
has "$OUT" "tokenizer.json)" "load shows the tokenizer's file"
run "${A[@]}" models list
expect 0 "list"
case "$(printf '%s\n' "$OUT" | grep "^$M ")" in *"  BPE") ;; *) fail "list: the tokenizer column: $OUT" ;; esac
case "$(printf '%s\n' "$OUT" | grep "^notok ")" in *"  -") ;; *) fail "list: no tokenizer: $OUT" ;; esac

# Tokenize and back: the ids of the text alone give the text again.
run -o json "${A[@]}" tokenize $M "$P" --raw
expect 0 "tokenize --raw -o json"
printf '%s\n' "$OUT" >"$TMP/raw.json"
RAW=$(ids raw)
py "lines = [json.loads(l) for l in open('$TMP/raw.json')]
assert ''.join(l['piece'] for l in lines) == '$P', lines
assert not any(l['special'] for l in lines), lines" "tokenize pieces spell the text"
run "${A[@]}" detokenize $M "$RAW"
expect 0 "detokenize"
[ "$OUT" = "$P" ] || fail "round trip: '$OUT'"
run "${A[@]}" detokenize $M 1,5000
expect 1 "detokenize: an id outside the vocabulary"
has "$ERR" "OUT_OF_RANGE" "detokenize: out of range status"
run "${A[@]}" forward $M --prompt "$(printf 'a\xffb')"
expect 1 "forward: a prompt that is not UTF-8"
has "$ERR" "invalid UTF-8 at byte 1" "forward: the byte offset of invalid UTF-8"
run "${A[@]}" tokenize $M "$P"
expect 0 "tokenize table"
has "$OUT" "INDEX" "tokenize header"
has "$OUT" "SPECIAL" "tokenize header: special"
has "$OUT" "'Ġ" "a byte-level spelling, quoted"
# Offsets: bytes of the text, each token's piece is its span.
Q="naïve café — ok"
run -o json "${A[@]}" tokenize $M "$Q" --raw
expect 0 "tokenize offsets -o json"
printf '%s\n' "$OUT" >"$TMP/offs.json"
py "q = '$Q'.encode()
lines = [json.loads(l) for l in open('$TMP/offs.json')]
assert all(l['source'] == 'text' for l in lines), lines
spans = [q[l['start']:l['end']] for l in lines]
assert b''.join(s for i, s in enumerate(spans) if i == 0 or spans[i] != spans[i - 1]) == q, spans
for l, s in zip(lines, spans):
    if l['bytes'] is None:
        assert l['piece'].encode() == s, (l, s)" "tokenize offsets span the text"

# The template's ids: what a prompt row is.
run -o json "${A[@]}" tokenize $M "$P"
printf '%s\n' "$OUT" >"$TMP/tok.json"
IDS=$(ids tok)

run "${A[@]}" forward $M --prompt "$P" --top-k 5
expect 0 "forward --prompt"
has "$OUT" "TEXT" "forward --prompt: a TEXT column"
[ "$(printf '%s\n' "$OUT" | grep -c "  '.*'$")" = 5 ] || fail "five quoted texts: $OUT"
run -o json "${A[@]}" forward $M --prompt "$P" --top-k 5
expect 0 "forward --prompt -o json"
printf '%s' "$OUT" >"$TMP/fp.json"
run -o json "${A[@]}" forward $M --tokens "$IDS" --top-k 5
expect 0 "forward --tokens (the prompt's ids)"
printf '%s' "$OUT" >"$TMP/fi.json"
py "p = json.load(open('$TMP/fp.json')); i = json.load(open('$TMP/fi.json'))
assert p['rows'][0]['top'] == i['rows'][0]['top'], (p['rows'], i['rows'])
assert p['seq_len'] == len('$IDS'.split(',')), p" "a prompt row is its ids"
TOP=$("$PY" -c "import json; print(json.load(open('$TMP/fp.json'))['rows'][0]['top'][0]['token_id'])")
run -o json "${A[@]}" detokenize $M "$TOP"
expect 0 "detokenize one id"
printf '%s' "$OUT" >"$TMP/one.json"
py "t = json.load(open('$TMP/fp.json'))['rows'][0]['top'][0]['text']
assert json.load(open('$TMP/one.json'))['texts'] == [t], t" "a top-k text is its id decoded alone"

# A batch of a prompt and ids, padded; a trace on prompts; an edit set.
run "${A[@]}" forward $M --prompt "$P" --tokens "$IDS0" --pad left --top-k 2
expect 0 "forward: prompt and ids in one batch"
run -o json "${A[@]}" trace $M --prompt "$P" --save layers.0.resid_post
expect 0 "trace --prompt"
json "s = d['traces'][0]['saved'][0]
assert s['shape'] == [1, len('$IDS'.split(',')), 64], s" "trace --prompt saves the prompt's rows"
cat >"$TMP/t.json" <<EOF
{"model": "$M", "padding": "left", "traces": [
  {"name": "p", "invokes": [{"prompts": ["$P", "The Colosseum is in"]}, {"tokens": [[$IDS]]}],
   "nodes": [{"id": 1, "read": {"site": "layers.0.resid_post", "invoke": 0}},
             {"id": 2, "save": {"value": 1, "name": "r"}}]}]}
EOF
run -o json "${A[@]}" trace -f "$TMP/t.json"
expect 0 "trace -f with prompts"
json "assert d['traces'][0]['saved'][0]['shape'][0] == 2, d['traces'][0]['saved']" "trace -f: two prompt rows"
cat >"$TMP/zero.json" <<'EOF'
{"edits": [{"site": "layers.0.self_attn.pattern", "op": "zero"}]}
EOF
run "${A[@]}" edits apply $M -f "$TMP/zero.json"
expect 0 "apply"
ES=$OUT
run -o json "${A[@]}" forward $M --prompt "$P" --edit-set "$ES" --top-k 5
expect 0 "forward --prompt on an edit set"
printf '%s' "$OUT" >"$TMP/fe.json"
py "e = json.load(open('$TMP/fe.json')); p = json.load(open('$TMP/fp.json'))
assert e['edit_set'] == '$ES' and e['rows'][0]['top'] != p['rows'][0]['top'], e" \
  "the edit set changes the prompt's top-k"
run "${A[@]}" edits drop "$ES"
expect 0 "drop"

# The logit lens: its last layer is the model's own answer, as text.
run -o json "${A[@]}" lens $M --prompt "$P" --top-k 5
expect 0 "lens -o json"
printf '%s' "$OUT" >"$TMP/lens.json"
py "l = json.load(open('$TMP/lens.json')); p = json.load(open('$TMP/fp.json'))
last = l['rows'][0]['layers'][-1]['top']
assert l['layers'] == len(l['rows'][0]['layers']) >= 1, l
assert [t['token_id'] for t in last] == [t['token_id'] for t in p['rows'][0]['top']], (last, p)
assert [t['text'] for t in last] == [t['text'] for t in p['rows'][0]['top']], last
assert all(abs(a['prob'] - b['prob']) < 1e-5 for a, b in zip(last, p['rows'][0]['top'])), last" \
  "lens: the last layer is the forward's top-k"
run "${A[@]}" lens $M --prompt "$P" --prompt "Hello" --pad left --top-k 2
expect 0 "lens table"
has "$OUT" "logit lens: " "lens table title"
has "$OUT" "row 1  prompt 'Hello'" "lens table: a row per prompt"
run "${A[@]}" lens $M --prompt "$P" --pad right
expect 2 "lens --pad right"
run "${A[@]}" lens notok --prompt "$P"
expect 1 "lens without a family or tokenizer"

# A model without a tokenizer: FAILED_PRECONDITION naming the file, exit 1.
run "${A[@]}" forward notok --prompt "$P"
expect 1 "no tokenizer: forward"
has "$ERR" "FAILED_PRECONDITION" "no tokenizer: status"
has "$ERR" "tokenizer.json" "no tokenizer: the file it looked for"
run -o json "${A[@]}" tokenize notok "$P"
expect 1 "no tokenizer: tokenize"
json_err "assert e['code'] == 'FAILED_PRECONDITION' and 'tokenizer.json' in e['message'], e" \
  "no tokenizer: JSON error"
run "${A[@]}" forward notok --tokens "$IDS0"
expect 0 "no tokenizer: id rows still work"
run "${A[@]}" models load notok
has "$OUT" "tokenizer:    none" "no tokenizer: load says none"

stop_daemon
[ "${DAEMON_RC:-1}" = 0 ] || fail "nneditd exited ${DAEMON_RC:-?}"
finish
