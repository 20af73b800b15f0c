#!/usr/bin/env bash
# test_trace_cli.sh — `nneditctl trace` end to end: the simple form
# (--tokens, --invoke, --save), the JSON file form (client/TRACE-JSON.md)
# and the output forms (table, json, npy).
#
#   1. Usage errors (exit 2) with no daemon: flags, and malformed trace
#      files whose message names the place (traces[0].nodes[3].call...).
#   2. A fake server (Python) that records the TraceRequest it receives and
#      answers with crafted tensors: the request nneditctl puts on the wire
#      equals the file (every node, argument and index kind, tensor bytes,
#      invokes and masks, defaults and command-line overrides) or the
#      flags; -o npy writes files numpy loads; -o json has its documented
#      form; a refusal by the server exits 1 with its message.
#   3. The real nneditd on the gpt2 fixture: the simple form's .npy files
#      have the right shapes and equal `forward --save`'s; the attention
#      pattern sums to 1 over keys; --invoke splits the batch without
#      changing values; a file with every node kind runs, and its write
#      changes the logits; a session patches a saved value into a later
#      trace through a ref; the daemon's refusals exit 1 naming the node;
#      global options anywhere (-o npy before the command too), errors as
#      JSON with -o json, exit 3 for an unreachable daemon.
#
# Runs under ctest or by hand from the source tree with a build in ./build;
# the paths, helpers, daemon handling and cleanup are in cli_lib.sh.
set -u

TEST_NAME=test_trace_cli
# shellcheck source=cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"
RUN_TIMEOUT=120

need_built "$CTL"

# ---- 1. usage errors (no daemon) ---------------------------------------------

run trace --help
expect 0 "trace --help"
has "$OUT" "usage: nneditctl trace MODEL --tokens" "trace --help synopsis"
for w in --invoke '"kwargs"' '"index"' '"ref"' '"constant"' "-o npy" "--save-dir" "TRACE-JSON.md"; do
  has "$OUT" "$w" "trace --help documents $w"
done
run --help
has "$OUT" "trace MODEL --tokens" "global --help lists trace"

run trace
expect 2 "trace without anything"
run trace m --save layers.0.resid_post
expect 2 "trace without --tokens"
has "$ERR" "at least one --tokens row" "trace without --tokens message"
has "$ERR" "usage: nneditctl trace" "usage line"
run trace --tokens 1,2
expect 2 "trace without MODEL"
has "$ERR" "missing MODEL" "trace without MODEL message"
run trace m --tokens 1,2 --invoke
expect 2 "a trailing --invoke"
has "$ERR" "an --invoke without --tokens" "trailing --invoke message"
run trace m --tokens 1 --invoke --invoke --tokens 2
expect 2 "two --invoke in a row"
run trace m --tokens 1,x
expect 2 "bad --tokens"
run trace m --tokens 1 -o yaml
expect 2 "-o yaml"
has "$ERR" "table, json or npy" "-o message"
run trace m --tokens 1 --top-k -1
expect 2 "--top-k -1"
run trace m --tokens 1 --logits most
expect 2 "--logits most"
run trace m --tokens 1 --pad middle
expect 2 "--pad middle"
has "$ERR" "--pad 'middle': expected none, left or right" "--pad named as typed"
run trace m --tokens 1 --pad middle -o json
expect 2 "--pad middle, JSON mode"
json_err "assert e['code'] == 'USAGE' and e['message'].startswith(\"--pad 'middle'\"), e
assert e['usage'].startswith('nneditctl trace MODEL --tokens') and '; nneditctl trace [MODEL] -f' in e['usage'], e" \
  "--pad middle as JSON"
run trace m --tokens 1 --frob
expect 2 "unknown option"
run trace m -f "$TMP/x.json" --tokens 1
expect 2 "-f with --tokens"
has "$ERR" "-f cannot be combined" "-f with --tokens message"
run trace m --tokens 1 --save "$(printf 's%.0s' $(seq 300))"
expect 2 "a site longer than a tensor name"
run trace m --tokens 1 --name "$(printf 'n%.0s' $(seq 70))"
expect 2 "an over-long --name"
run trace m -f "$TMP/none.json"
expect 2 "a missing file"
run -o json trace m -f "$TMP/none.json"
expect 2 "a missing file, JSON mode"
json_err "assert e['code'] == 'USAGE' and e['message'].startswith('$TMP/none.json: '), e" \
  "a missing file as JSON"
has "$ERR" "none.json" "missing file named"

# badfile NAME JSON NEEDLE: the file is refused with exit 2 and a message
# that names the file and the place.
badfile() {
  printf '%s' "$2" >"$TMP/$1.json"
  run trace -f "$TMP/$1.json"
  expect 2 "bad file $1"
  has "$ERR" "nneditctl: $TMP/$1.json: " "bad file $1 names the file"
  has "$ERR" "$3" "bad file $1 message"
  has "$ERR" "usage: nneditctl trace" "bad file $1 usage line"
}
# T PREFIX NODES: a one-trace file with one invoke [[1, 2]] and these nodes.
T() {
  printf '{"model": "m", "traces": [{"invokes": [{"tokens": [[1, 2]]}], "nodes": [%s]}]}' "$1"
}
R='{"id": 1, "read": {"site": "layers.0.resid_post"}}'
badfile syntax '{"traces": [' "line 1"
badfile notobj '[1]' "expected an object"
badfile topkey '{"traces": [], "modle": "m"}' "unknown key 'modle'"
badfile dupkey '{"traces": [], "traces": []}' "duplicate"
badfile notraces '{"model": "m"}' "traces: expected a non-empty array"
badfile notraces2 '{"model": "m", "traces": []}' "traces: expected a non-empty array"
printf '%s' '{"traces": [{"invokes": [{"tokens": [1]}]}]}' >"$TMP/nomodel.json"
run trace -f "$TMP/nomodel.json"
expect 2 "a file without a model and no MODEL"
has "$ERR" 'missing MODEL (an argument, or "model" in the file)' "no model message"
badfile padding '{"model": "m", "padding": "middle", "traces": []}' "padding: expected"
badfile logits '{"model": "m", "logits": 1, "traces": []}' "logits: expected"
badfile topk '{"model": "m", "top_k": -2, "traces": []}' "top_k: expected"
badfile tracekey '{"model": "m", "traces": [{"invoke": []}]}' "traces[0]: unknown key 'invoke'"
badfile noinvokes '{"model": "m", "traces": [{"name": "a"}]}' "traces[0].invokes: expected a non-empty array"
badfile tokens '{"model": "m", "traces": [{"invokes": [{"tokens": [[1, "x"]]}]}]}' "traces[0].invokes[0].tokens[0][1]: expected a token id"
badfile mask '{"model": "m", "traces": [{"invokes": [{"tokens": [[1]], "mask": [[3000000000]]}]}]}' "traces[0].invokes[0].mask[0][0]: expected a mask value"
badfile tname "{\"model\": \"m\", \"traces\": [{\"name\": \"$(printf 'n%.0s' $(seq 64))\", \"invokes\": [{\"tokens\": [1]}]}]}" "traces[0].name: expected a string of 1 to 63 bytes"
badfile twoops "$(T '{"id": 1, "read": {"site": "a"}, "ref": {"name": "x"}}')" "traces[0].nodes[0]: expected exactly one of read, write, call, constant, save, ref (found 2)"
badfile noop "$(T '{"id": 1}')" "traces[0].nodes[0]: expected exactly one of"
badfile nodekey "$(T '{"id": 1, "raed": {"site": "a"}}')" "traces[0].nodes[0]: unknown key 'raed'"
badfile badid "$(T '{"id": 0, "read": {"site": "a"}}')" "traces[0].nodes[0].id: expected an integer from 1"
badfile dupid "$(T "$R, {\"id\": 1, \"save\": {\"value\": 1, \"name\": \"x\"}}")" "traces[0].nodes[1].id: 1 is already the id of nodes[0]"
badfile nosite "$(T '{"id": 1, "read": {"invoke": 0}}')" "traces[0].nodes[0].read.site: expected a string"
badfile invoke "$(T '{"id": 1, "read": {"site": "a", "invoke": 1}}')" "traces[0].nodes[0].read.invoke: expected an invoke of this trace (0 to 0)"
badfile readkey "$(T '{"id": 1, "read": {"site": "a", "invok": 0}}')" "traces[0].nodes[0].read: unknown key 'invok'"
badfile noref "$(T "$R, {\"id\": 2, \"save\": {\"value\": 9, \"name\": \"x\"}}")" "traces[0].nodes[1].save.value: no node 9 in this trace"
badfile savename "$(T "$R, {\"id\": 2, \"save\": {\"value\": 1}}")" "traces[0].nodes[1].save.name: expected a string"
badfile dupsave "{\"model\": \"m\", \"traces\": [{\"invokes\": [{\"tokens\": [1]}], \"nodes\": [$R, {\"save\": {\"value\": 1, \"name\": \"x\"}}]}, {\"invokes\": [{\"tokens\": [1]}], \"nodes\": [$R, {\"save\": {\"value\": 1, \"name\": \"x\"}}]}]}" "traces[1].nodes[1].save.name: 'x' is already saved by traces[0].nodes[1]"
badfile writeval "$(T "$R, {\"id\": 2, \"write\": {\"site\": \"a\", \"value\": \"1\"}}")" "traces[0].nodes[1].write.value: expected a node id"
badfile writedim "$(T "$R, {\"id\": 2, \"write\": {\"site\": \"a\", \"value\": 1, \"rows\": 0, \"ranges\": [[0, 1, 2]]}}")" "traces[0].nodes[1].write.rows: dim 0 already has a range"
badfile writerange "$(T "$R, {\"id\": 2, \"write\": {\"site\": \"a\", \"value\": 1, \"ranges\": [{\"dim\": 1, \"begin\": 0}]}}")" "traces[0].nodes[1].write.ranges[0]: unknown key 'begin'"
badfile fn "$(T "$R, {\"id\": 2, \"call\": {\"args\": [{\"node\": 1}]}}")" "traces[0].nodes[1].call.fn: expected a string"
badfile callkey "$(T "$R, {\"id\": 2, \"call\": {\"fn\": \"neg\", \"arg\": []}}")" "traces[0].nodes[1].call: unknown key 'arg'"
badfile argnode "$(T "$R, {\"id\": 2, \"call\": {\"fn\": \"mul\", \"args\": [{\"node\": 1}, {\"node\": 9}]}}")" "traces[0].nodes[1].call.args[1].node: no node 9 in this trace"
badfile argkey "$(T "$R, {\"id\": 2, \"call\": {\"fn\": \"mul\", \"args\": [{\"node\": 1}, {\"nod\": 1}]}}")" "traces[0].nodes[1].call.args[1]: unknown key 'nod'"
badfile argtwo "$(T "$R, {\"id\": 2, \"call\": {\"fn\": \"mul\", \"args\": [{\"node\": 1, \"scalar\": 2}]}}")" "traces[0].nodes[1].call.args[0]: expected exactly one of node, scalar"
badfile argstr "$(T "$R, {\"id\": 2, \"call\": {\"fn\": \"to\", \"args\": [{\"node\": 1}, \"float16\"]}}")" "traces[0].nodes[1].call.args[1]: expected a number, a boolean"
badfile argint "$(T "$R, {\"id\": 2, \"call\": {\"fn\": \"sum\", \"args\": [{\"node\": 1}, {\"int\": 1.5}]}}")" "traces[0].nodes[1].call.args[1].int: expected an integer"
badfile argints "$(T "$R, {\"id\": 2, \"call\": {\"fn\": \"permute\", \"args\": [{\"node\": 1}, [0, 1, 2, 3, 4, 5, 6, 7, 8]]}}")" "traces[0].nodes[1].call.args[1]: expected a list of at most 8 integers"
badfile argdtype "$(T "$R, {\"id\": 2, \"call\": {\"fn\": \"to\", \"args\": [{\"node\": 1}, {\"dtype\": \"float128\"}]}}")" "traces[0].nodes[1].call.args[1].dtype: unknown dtype 'float128'"
badfile kwname "$(T "$R, {\"id\": 2, \"call\": {\"fn\": \"sum\", \"args\": [{\"node\": 1}], \"kwargs\": {\"dim\": {\"int\": 1, \"name\": \"x\"}}}}")" "traces[0].nodes[1].call.kwargs.dim.name: a keyword argument is named by its key"
badfile kwlong "$(T "$R, {\"id\": 2, \"call\": {\"fn\": \"sum\", \"args\": [{\"node\": 1}], \"kwargs\": {\"$(printf 'k%.0s' $(seq 40))\": 1}}}")" "traces[0].nodes[1].call.kwargs: a keyword of 1 to 31 bytes"
badfile manyargs "$(T "$R, {\"id\": 2, \"call\": {\"fn\": \"cat\", \"args\": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}}")" "traces[0].nodes[1].call: 17 arguments, more than 16"
badfile index "$(T "$R, {\"id\": 2, \"call\": {\"fn\": \"index\", \"args\": [{\"node\": 1}], \"index\": [0, \"1:2:0\"]}}")" "traces[0].nodes[1].call.index[1]"
badfile index2 "$(T "$R, {\"id\": 2, \"call\": {\"fn\": \"index\", \"args\": [{\"node\": 1}], \"index\": [{\"slice\": 3}]}}")" "traces[0].nodes[1].call.index[0]: expected an index"
badfile constboth "$(T '{"id": 1, "constant": {"scalar": 1, "tensor": {"data": 1}}}')" "traces[0].nodes[0].constant: give exactly one of 'tensor' and 'scalar'"
badfile constshape "$(T '{"id": 1, "constant": {"tensor": {"shape": [2], "data": [1]}}}')" "traces[0].nodes[0].constant.tensor.data: 1 values, shape needs 2"
badfile constnpy "$(T '{"id": 1, "constant": {"tensor": {"npy": "nope.npy"}}}')" "traces[0].nodes[0].constant.tensor.npy: read_npy: $TMP/nope.npy"
badfile refkey "$(T '{"id": 1, "ref": {"nam": "x"}}')" "traces[0].nodes[0].ref: unknown key 'nam'"
badfile refname "$(T '{"id": 1, "ref": {"name": ""}}')" "traces[0].nodes[0].ref.name: expected a string of 1 to 255 bytes"

run trace -f - </dev/null
expect 2 "trace -f - with empty stdin"
has "$ERR" "nneditctl: -: " "stdin named as -"

# ---- 2. a fake server ---------------------------------------------------------

cat >"$TMP/fake.py" <<'PYEOF'
import sys, os, json, struct
from concurrent import futures
from fakeserve import serve
sys.path.insert(0, os.environ["NNE_PY_GEN"])
import grpc
from nnedit.v1 import inference_pb2 as ip, tensor_pb2 as tp

LOG = sys.argv[2]

def invoke(x):  # None: unset, every invoke
    return x.invoke if x.HasField("invoke") else None

def node_rec(n):
    d = {"id": n.id}
    if n.HasField("read"):
        d["read"] = [n.read.site, invoke(n.read)]
    if n.HasField("write"):
        w = n.write
        d["write"] = [w.site, w.value, invoke(w), [[r.dim, r.start, r.stop] for r in w.ranges]]
    if n.HasField("call"):
        args = []
        for a in n.call.args:
            k = a.WhichOneof("value")
            v = list(a.ints.values) if k == "ints" else getattr(a, k)
            args.append([k, v, a.name])
        items = []
        for it in n.call.index_items:
            k = it.WhichOneof("item")
            if k == "slice":
                s = it.slice
                items.append(["slice", s.start if s.HasField("start") else None,
                              s.stop if s.HasField("stop") else None, s.step])
            else:
                items.append([k, getattr(it, k)])
        d["call"] = [n.call.fn, args, items]
    if n.HasField("constant"):
        c = n.constant
        if c.WhichOneof("value") == "scalar":
            d["constant"] = ["scalar", c.scalar]
        else:
            d["constant"] = ["tensor", tp.DType.Name(c.tensor.dtype), list(c.tensor.shape),
                             c.tensor.data.hex()]
    if n.HasField("save"):
        d["save"] = [n.save.value, n.save.name]
    if n.HasField("ref"):
        d["ref"] = n.ref.name
    return d

def trace(b, ctx):
    req = ip.TraceRequest.FromString(b)
    rec = {"model": req.model, "edit_set": req.edit_set,
           "padding": ip.Padding.Name(req.padding), "top_k": req.top_k,
           "logits": ip.LogitsMode.Name(req.logits), "traces": []}
    for tr in req.traces:
        rec["traces"].append({
            "name": tr.name,
            "invokes": [[[list(r.ids) for r in inv.input_ids],
                         [list(m.values) for m in inv.attention_mask]] for inv in tr.invokes],
            "nodes": [node_rec(n) for n in tr.nodes]})
    with open(LOG, "a") as f:
        f.write(json.dumps(rec) + "\n")
    if req.model == "reject":
        ctx.abort(grpc.StatusCode.INVALID_ARGUMENT,
                  "traces[0].nodes[1] (id 2): call 'mul': expected 2 arguments")
    for t, tr in enumerate(req.traces):
        sent = []
        for k, n in enumerate([n for n in tr.nodes if n.HasField("save")]):
            vals = b"".join(struct.pack("<f", float(t * 100 + k * 10 + i)) for i in range(6))
            yield ip.TraceResponse(chunk=tp.TensorChunk(
                name=n.save.name, dtype=tp.DTYPE_FLOAT32, shape=[2, 3], total_bytes=24,
                offset=0, data=vals, last=True)).SerializeToString()
            sent.append(n.save.name)
        rows = [list(r.ids) for inv in tr.invokes for r in inv.input_ids]
        if req.logits:
            name = (tr.name or str(t)) + "/logits"
            vals = b"".join(struct.pack("<f", float(i)) for i in range(5 * len(rows)))
            yield ip.TraceResponse(chunk=tp.TensorChunk(
                name=name, dtype=tp.DTYPE_FLOAT32, shape=[len(rows), 5], total_bytes=len(vals),
                offset=0, data=vals, last=True)).SerializeToString()
        r = ip.TraceResult(trace=t, name=tr.name, batch=len(rows), seq_len=max(map(len, rows)),
                           rows=[ip.RowTopK(position=len(x) - 1,
                                            top=[ip.TokenScore(token_id=7 + j, logit=2.5 - j,
                                                               prob=0.25)
                                                 for j in range(req.top_k)])
                                 for x in rows],
                           timing=ip.Timing(queue_ms=0.5, compute_ms=1.25, total_ms=2.0),
                           cache_hit=t > 0, backend_key="fakekey%d" % t, saved=sent)
        yield ip.TraceResponse(result=r).SerializeToString()

server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers([
    grpc.method_handlers_generic_handler("nnedit.v1.Inference", {
        "Trace": grpc.unary_stream_rpc_method_handler(trace)})])
serve(server)
PYEOF

start_fake "$TMP/requests.jsonl"
F+=(--timeout 30)
last_request() {
  tail -n1 "$TMP/requests.jsonl"
}

# Every node, argument and index kind: the request on the wire equals the
# file (the constant's bytes as numpy writes them, dtype conversions, ids
# given and defaulted, invokes by index, -1, "all" and default).
mkdir -p "$TMP/sub"
py "np.save('$TMP/sub/steer.npy', (np.arange(4) / 8).astype(np.float64))" "numpy writes steer.npy"
cat >"$TMP/sub/every.json" <<'EOF'
{"model": "fake", "edit_set": "es-1", "padding": "right", "top_k": 2, "logits": "all",
 "traces": [
  {"name": "clean",
   "invokes": [{"tokens": [[1, 2, 3], [4, 5]], "mask": [[1, 1, 1], [0, 1, 1]]},
               {"tokens": [6, 7, 8]}],
   "nodes": [
    {"id": 10, "read": {"site": "layers.0.resid_post", "invoke": 1}},
    {"read": {"site": "layers.0.self_attn.pattern", "invoke": "all"}},
    {"id": 5, "read": {"site": "blocks.1.hook_resid_pre", "invoke": -1}},
    {"read": {"site": "transformer.h.0.attn:aten::softmax#0"}},
    {"id": 20, "constant": {"tensor": {"npy": "steer.npy", "dtype": "float16"}}},
    {"id": 21, "constant": {"tensor": {"dtype": "int32", "data": [[1, -2], [3, 4]]}}},
    {"id": 22, "constant": {"scalar": -0.5}},
    {"id": 30, "call": {"fn": "sum", "args": [{"node": 10}, [0, 2], true, 1.5, -7,
                                               {"dtype": "bf16"}, {"scalar": 3},
                                               {"int": 4, "name": "k"}],
                        "kwargs": {"keepdim": false, "dim": {"ints": [1]}}}},
    {"id": 31, "call": {"fn": "module", "args": [{"module": "layers.1.mlp"}, {"node": 12}]}},
    {"id": 32, "call": {"fn": "index", "args": [{"node": 11}],
                        "index": [0, ":", "1:3", "-1:", "::2", "1:7:2", "...", null,
                                  {"slice": [null, -1]}, {"slice": [2, null, 3]},
                                  {"ellipsis": true}, {"newaxis": true}, -1]}},
    {"id": 40, "write": {"site": "layers.0.resid_post", "value": 30, "invoke": 1,
                         "ranges": [[2, 0, 16], {"dim": -2, "start": 1}], "rows": 0,
                         "positions": -1}},
    {"id": 41, "write": {"site": "layers.1.resid_pre", "value": 22}},
    {"id": 50, "save": {"value": 32, "name": "pattern row"}},
    {"save": {"value": 10, "name": "resid0"}}
   ]},
  {"invokes": [{"tokens": [[9]]}],
   "nodes": [{"ref": {"name": "resid0"}}, {"save": {"value": 1, "name": "again"}}]}
 ]}
EOF
run "${F[@]}" trace -f "$TMP/sub/every.json"
expect 0 "fake: every node kind"
last_request >"$TMP/req.json"
py "
r = json.load(open('$TMP/req.json'))
assert (r['model'], r['edit_set'], r['padding'], r['top_k'], r['logits']) == \
    ('fake', 'es-1', 'PADDING_RIGHT', 2, 'LOGITS_MODE_ALL'), r
t0, t1 = r['traces']
assert t0['name'] == 'clean' and t1['name'] == '', (t0['name'], t1['name'])
assert t0['invokes'] == [[[[1, 2, 3], [4, 5]], [[1, 1, 1], [0, 1, 1]]], [[[6, 7, 8]], []]], t0['invokes']
n = t0['nodes']
assert [x['id'] for x in n] == [10, 11, 5, 12, 20, 21, 22, 30, 31, 32, 40, 41, 50, 51], [x['id'] for x in n]
assert n[0]['read'] == ['layers.0.resid_post', 1], n[0]
# "all", -1 and no invoke at all: an unset invoke on the wire (every invoke).
assert n[1]['read'] == ['layers.0.self_attn.pattern', None], n[1]
assert n[2]['read'] == ['blocks.1.hook_resid_pre', None], n[2]
assert n[3]['read'] == ['transformer.h.0.attn:aten::softmax#0', None], n[3]
assert n[4]['constant'] == ['tensor', 'DTYPE_FLOAT16', [4], (np.arange(4) / 8).astype(np.float16).tobytes().hex()], n[4]
assert n[5]['constant'] == ['tensor', 'DTYPE_INT32', [2, 2], np.array([[1, -2], [3, 4]], np.int32).tobytes().hex()], n[5]
assert n[6]['constant'] == ['scalar', -0.5], n[6]
assert n[7]['call'] == ['sum', [['node', 10, ''], ['ints', [0, 2], ''], ['boolean', True, ''],
                                ['scalar', 1.5, ''], ['integer', -7, ''], ['dtype', 3, ''],
                                ['scalar', 3.0, ''], ['integer', 4, 'k'],
                                ['boolean', False, 'keepdim'], ['ints', [1], 'dim']], []], n[7]
assert n[8]['call'] == ['module', [['module', 'layers.1.mlp', ''], ['node', 12, '']], []], n[8]
assert n[9]['call'] == ['index', [['node', 11, '']],
    [['index', 0], ['slice', None, None, 0], ['slice', 1, 3, 0], ['slice', -1, None, 0],
     ['slice', None, None, 2], ['slice', 1, 7, 2], ['ellipsis', True], ['newaxis', True],
     ['slice', None, -1, 0], ['slice', 2, None, 3], ['ellipsis', True], ['newaxis', True],
     ['index', -1]]], n[9]
assert n[10]['write'] == ['layers.0.resid_post', 30, 1, [[2, 0, 16], [-2, 1, 0], [0, 0, 1], [1, -1, 0]]], n[10]
assert n[11]['write'] == ['layers.1.resid_pre', 22, None, []], n[11]
assert n[12]['save'] == [32, 'pattern row'] and n[13]['save'] == [10, 'resid0'], n[12:]
assert t1['invokes'] == [[[[9]], []]], t1
assert t1['nodes'] == [{'id': 1, 'ref': 'resid0'}, {'id': 2, 'save': [1, 'again']}], t1['nodes']
" "fake: the request equals the file"
has "$OUT" "trace 0 'clean'  batch 3  seq_len 3  backend fakekey0 (cache miss)" "fake: table trace line"
has "$OUT" "trace 1  batch 1" "fake: unnamed trace line"
has "$OUT" "logits: clean/logits float32 [3, 5]" "fake: logits line"
has "$OUT" "logits: 1/logits float32 [1, 5]" "fake: unnamed trace's logits"

# The command line overrides the file; -f - reads stdin (npy paths then
# relative to the working directory).
(cd "$TMP/sub" && timeout 60 "$CTL" "${F[@]}" trace other -f - --top-k 0 --pad left \
  --logits none --edit-set es-2 <every.json >"$TMP/stdin.out" 2>&1) ||
  fail "fake: -f - with overrides: $(cat "$TMP/stdin.out")"
last_request >"$TMP/req.json"
py "
r = json.load(open('$TMP/req.json'))
assert (r['model'], r['edit_set'], r['padding'], r['top_k'], r['logits']) == \
    ('other', 'es-2', 'PADDING_LEFT', 0, 'LOGITS_MODE_UNSPECIFIED'), r
" "fake: command-line overrides"

# The simple form: invokes split by --invoke, masks, one read of the whole
# batch and one save per distinct --save, named as spelled; defaults.
run "${F[@]}" trace fake --tokens 1,2,3 --mask 1,1,1 --tokens 4,5,6 --invoke --tokens 7,8 \
  --save layers.0.resid_post --save blocks.0.attn.hook_pattern --save layers.0.resid_post \
  --name simple
expect 0 "fake: simple form"
last_request >"$TMP/req.json"
py "
r = json.load(open('$TMP/req.json'))
assert (r['model'], r['edit_set'], r['padding'], r['top_k'], r['logits']) == \
    ('fake', '', 'PADDING_UNSPECIFIED', 5, 'LOGITS_MODE_UNSPECIFIED'), r
(t,) = r['traces']
assert t['name'] == 'simple', t
assert t['invokes'] == [[[[1, 2, 3], [4, 5, 6]], [[1, 1, 1]]], [[[7, 8]], []]], t['invokes']
assert t['nodes'] == [{'id': 1, 'read': ['layers.0.resid_post', None]},
                      {'id': 2, 'save': [1, 'layers.0.resid_post']},
                      {'id': 3, 'read': ['blocks.0.attn.hook_pattern', None]},
                      {'id': 4, 'save': [3, 'blocks.0.attn.hook_pattern']}], t['nodes']
" "fake: the simple form's request"
has "$OUT" "saved:" "fake: simple form table"

# -o npy: every tensor (saves and logits) as a file numpy loads.
run "${F[@]}" trace fake --tokens 1,2 --invoke --tokens 3,4 --save "a/b c" --save x \
  --logits last -o npy --save-dir "$TMP/npy"
expect 0 "fake: -o npy"
has "$OUT" "-> $TMP/npy/a_b_c.npy" "fake: npy file named in the table"
py "
a = np.load('$TMP/npy/a_b_c.npy'); x = np.load('$TMP/npy/x.npy'); l = np.load('$TMP/npy/0_logits.npy')
assert a.dtype == np.float32 and a.shape == (2, 3), (a.dtype, a.shape)
assert (a.ravel() == np.arange(6)).all() and (x.ravel() == np.arange(10, 16)).all(), (a, x)
assert l.shape == (2, 5), l.shape
" "fake: the .npy files"
(cd "$TMP" && mkdir -p here && cd here && timeout 60 "$CTL" "${F[@]}" trace fake --tokens 1 \
  --save s -o npy >/dev/null 2>&1 && [ -f s.npy ]) || fail "fake: -o npy writes to . by default"

# -o json: the documented document.
run "${F[@]}" -o json trace fake --tokens 1,2 --save x --top-k 2 --values --save-dir "$TMP/j"
expect 0 "fake: -o json"
json "
(t,) = d['traces']
assert d['model'] == 'fake' and d['edit_set'] is None, d
assert (t['trace'], t['name'], t['batch'], t['seq_len']) == (0, None, 1, 2), t
assert t['cache_hit'] is False and t['backend_key'] == 'fakekey0', t
assert t['timing'] == {'queue_ms': 0.5, 'compute_ms': 1.25, 'total_ms': 2.0}, t
assert t['rows'] == [{'row': 0, 'position': 1, 'top': [{'token_id': 7, 'logit': 2.5, 'prob': 0.25, 'text': ''},
                                                       {'token_id': 8, 'logit': 1.5, 'prob': 0.25, 'text': ''}]}], t
assert t['logits'] is None, t
(s,) = t['saved']
assert s == {'name': 'x', 'dtype': 'float32', 'shape': [2, 3], 'nbytes': 24,
             'file': '$TMP/j/x.npy', 'values': [[0, 1, 2], [3, 4, 5]]}, s
" "fake: json output"
run "${F[@]}" trace fake -o json --tokens 1 --save x
expect 0 "fake: -o json after the command"
json "assert d['traces'][0]['saved'][0]['file'] is None" "fake: json without files"

# A refusal: exit 1 with the server's words.
run "${F[@]}" trace reject --tokens 1 --save x
expect 1 "fake: refused trace"
has "$ERR" "nneditctl: INVALID_ARGUMENT: traces[0].nodes[1] (id 2): call 'mul'" "fake: refusal message"

stop_fake

# ---- 3. the real daemon -------------------------------------------------------

start_daemon
M=gpt2-script

run "${A[@]}" models load $M
expect 0 "load $M"

# The simple form's files: the right shapes, equal to Forward's saves of
# the same sites; the pattern sums to 1 over keys.
run "${A[@]}" trace $M --tokens $IDS0 --tokens $IDS1 --save layers.0.resid_post \
  --save layers.0.self_attn.pattern -o npy --save-dir "$TMP/t1" --logits all
expect 0 "daemon: simple form -o npy"
has "$OUT" "layers.0.self_attn.pattern  float32   [2, 4, 7, 7]" "daemon: pattern line"
run "${A[@]}" forward $M --tokens $IDS0 --tokens $IDS1 --save layers.0.resid_post \
  --save layers.0.self_attn.pattern --save-dir "$TMP/f1" --save-logits "$TMP/f1/logits.npy"
expect 0 "daemon: forward --save"
py "
r = np.load('$TMP/t1/layers.0.resid_post.npy'); p = np.load('$TMP/t1/layers.0.self_attn.pattern.npy')
assert r.shape == (2, 7, 64) and r.dtype == np.float32, (r.shape, r.dtype)
assert p.shape == (2, 4, 7, 7), p.shape
assert np.array_equal(r, np.load('$TMP/f1/layers.0.resid_post.npy'))
assert np.array_equal(p, np.load('$TMP/f1/layers.0.self_attn.pattern.npy'))
assert np.abs(p.sum(-1) - 1).max() < 1e-5, np.abs(p.sum(-1) - 1).max()
assert np.array_equal(np.load('$TMP/t1/0_logits.npy'), np.load('$TMP/f1/logits.npy'))
" "daemon: trace saves equal forward's; the pattern sums to 1"

# Two invokes in one forward: the same values as one invoke of both rows.
run "${A[@]}" trace $M --tokens $IDS0 --invoke --tokens $IDS1 --save layers.1.resid_post \
  --name two -o npy --save-dir "$TMP/t2"
expect 0 "daemon: two invokes"
run "${A[@]}" trace $M --tokens $IDS0 --tokens $IDS1 --save layers.1.resid_post \
  --save-dir "$TMP/t3"
expect 0 "daemon: one invoke"
py "
a = np.load('$TMP/t2/layers.1.resid_post.npy'); b = np.load('$TMP/t3/layers.1.resid_post.npy')
assert a.shape == (2, 7, 64) and np.array_equal(a, b)
" "daemon: --invoke keeps the values"

# Every node kind against the real model: a session where the first trace
# steers with a constant from a .npy, saves the pattern's last query row and
# its sum, and the second patches the first's residual in through a ref.
py "np.save('$TMP/sub/steer64.npy', np.full(64, 0.25, np.float32))" "numpy writes steer64.npy"
cat >"$TMP/sub/run.json" <<EOF
{"model": "$M", "top_k": 1, "logits": "last",
 "traces": [
  {"name": "clean",
   "invokes": [{"tokens": [[${IDS0}]]}],
   "nodes": [
    {"id": 1, "read": {"site": "layers.0.resid_post", "invoke": 0}},
    {"id": 2, "save": {"value": 1, "name": "clean_resid0"}},
    {"id": 3, "read": {"site": "layers.1.self_attn.pattern"}},
    {"id": 4, "call": {"fn": "index", "args": [{"node": 3}], "index": [0, "...", -1, ":"]}},
    {"id": 5, "save": {"value": 4, "name": "pattern_last"}},
    {"id": 6, "call": {"fn": "sum", "args": [{"node": 4}], "kwargs": {"dim": -1}}},
    {"id": 7, "save": {"value": 6, "name": "pattern_sum"}}
   ]},
  {"name": "corrupted", "invokes": [{"tokens": [[${IDS1}]]}]},
  {"name": "steered",
   "invokes": [{"tokens": [[${IDS1}]]}],
   "nodes": [
    {"id": 1, "read": {"site": "layers.1.resid_post"}},
    {"id": 2, "constant": {"tensor": {"npy": "steer64.npy"}}},
    {"id": 3, "constant": {"scalar": 4.0}},
    {"id": 4, "call": {"fn": "mul", "args": [{"node": 2}, {"node": 3}]}},
    {"id": 5, "call": {"fn": "add", "args": [{"node": 1}, {"node": 4}]}},
    {"id": 6, "write": {"site": "layers.1.resid_post", "value": 5}}
   ]},
  {"name": "patched",
   "invokes": [{"tokens": [[${IDS1}]]}],
   "nodes": [
    {"id": 1, "ref": {"name": "clean_resid0"}},
    {"id": 2, "write": {"site": "layers.0.resid_post", "value": 1, "invoke": 0}}
   ]}
 ]}
EOF
run "${A[@]}" trace -f "$TMP/sub/run.json" -o npy --save-dir "$TMP/t4"
expect 0 "daemon: every node kind"
py "
d = '$TMP/t4/'
pl = np.load(d + 'pattern_last.npy'); ps = np.load(d + 'pattern_sum.npy')
assert pl.shape == (4, 7) and ps.shape == (4,), (pl.shape, ps.shape)
assert np.abs(ps - 1).max() < 1e-5 and np.allclose(pl.sum(-1), ps), ps
assert np.load(d + 'clean_resid0.npy').shape == (1, 7, 64)
c, k, s, p = (np.load(d + n + '_logits.npy') for n in ('clean', 'corrupted', 'steered', 'patched'))
assert c.shape == (1, 1000), c.shape
assert not np.array_equal(c, k), 'the two prompts give the same logits'
assert not np.array_equal(s, k), 'steering changed nothing'
assert np.abs(p - c).max() < 1e-5, np.abs(p - c).max()
" "daemon: the session's results"
run "${A[@]}" -o json trace -f "$TMP/sub/run.json" --top-k 2
expect 0 "daemon: every node kind, json"
json "
assert [t['name'] for t in d['traces']] == ['clean', 'corrupted', 'steered', 'patched'], d
assert [s['name'] for s in d['traces'][0]['saved']] == ['clean_resid0', 'pattern_last', 'pattern_sum'] or \
       sorted(s['name'] for s in d['traces'][0]['saved']) == ['clean_resid0', 'pattern_last', 'pattern_sum'], d
assert all(len(r['top']) == 2 for t in d['traces'] for r in t['rows']), d
assert d['traces'][3]['logits']['name'] == 'patched/logits', d
" "daemon: json of the session"

# A write that names no invoke reaches every row (the file's default, sent
# as an unset invoke); one that names invoke 0 leaves invoke 1's row alone.
cat >"$TMP/sub/every_row.json" <<EOF
{"model": "$M", "logits": "last",
 "traces": [
  {"name": "clean", "invokes": [{"tokens": [[${IDS0}]]}, {"tokens": [[${IDS1}]]}]},
  {"name": "all", "invokes": [{"tokens": [[${IDS0}]]}, {"tokens": [[${IDS1}]]}],
   "nodes": [{"id": 1, "constant": {"scalar": 0}},
             {"id": 2, "write": {"site": "layers.0.resid_post", "value": 1}}]},
  {"name": "first", "invokes": [{"tokens": [[${IDS0}]]}, {"tokens": [[${IDS1}]]}],
   "nodes": [{"id": 1, "constant": {"scalar": 0}},
             {"id": 2, "write": {"site": "layers.0.resid_post", "value": 1, "invoke": 0}}]}
 ]}
EOF
run "${A[@]}" trace -f "$TMP/sub/every_row.json" -o npy --save-dir "$TMP/t6"
expect 0 "daemon: a write without an invoke"
py "
c, a, f = (np.load('$TMP/t6/' + n + '_logits.npy') for n in ('clean', 'all', 'first'))
assert c.shape == (2, 1000), c.shape
assert not np.allclose(a[0], c[0]) and not np.allclose(a[1], c[1]), 'a write without an invoke missed a row'
assert not np.allclose(f[0], c[0]), 'a write to invoke 0 missed its row'
assert np.abs(f[1] - c[1]).max() < 1e-5, 'a write to invoke 0 reached invoke 1'
" "daemon: a write without an invoke reaches every row"

# The daemon's refusals exit 1 and name the node.
run "${A[@]}" trace $M --tokens $IDS0 --save layers.9.nope
expect 1 "daemon: unknown site"
has "$ERR" "INVALID_ARGUMENT" "daemon: unknown site status"
has "$ERR" "(id 1)" "daemon: unknown site names the node"
cat >"$TMP/late.json" <<EOF
{"model": "$M", "traces": [{"invokes": [{"tokens": [${IDS0}]}], "nodes": [
  {"id": 1, "read": {"site": "layers.1.resid_post"}},
  {"id": 2, "write": {"site": "layers.0.resid_post", "value": 1}}]}]}
EOF
run "${A[@]}" trace -f "$TMP/late.json"
expect 1 "daemon: a write depending on a later read"
has "$ERR" "depends on read node 1" "daemon: late read named"
run "${A[@]}" trace no-such-model --tokens 1 --save layers.0.resid_post
expect 1 "daemon: unknown model"
run trace no-such-model --tokens 1 --save layers.0.resid_post -o json "${A[@]}"
expect 1 "daemon: unknown model, JSON mode"
json_err "assert e['code'] == 'NOT_FOUND' and 'no-such-model' in e['message'], e" \
  "daemon: unknown model as JSON"
run -o npy "${A[@]}" trace $M --tokens $IDS0 --save layers.1.resid_post --save-dir "$TMP/t5"
expect 0 "daemon: -o npy before the command"
py "assert np.load('$TMP/t5/layers.1.resid_post.npy').shape == (1, 7, 64)" \
  "daemon: -o npy before the command wrote the file"
run trace $M --tokens $IDS0 --save layers.1.resid_post --addr 127.0.0.1:1
expect 3 "unreachable daemon"
has "$ERR" "nneditctl: UNAVAILABLE: " "unreachable daemon status"
run "${A[@]}" trace $M --tokens $IDS0 --save layers.0.resid_post
expect 0 "daemon: serves after refusals"

stop_daemon

finish
