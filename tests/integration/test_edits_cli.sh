#!/usr/bin/env bash
# test_edits_cli.sh — nneditctl's edit commands end to end: `edits
# apply|list|get|drop`, `graph`, `stats` and `forward --edit-set`.
#
#   1. The edits file (client/EDITS-JSON.md): malformed files are usage
#      errors (exit 2) whose message names the edit and key; no daemon.
#   2. A fake server (Python) that records what it receives and answers
#      with crafted replies: the request nneditctl puts on the wire equals
#      the file (tensor bytes included), the outputs have their documented
#      forms, and libnnedit refuses replies over its bounds (exit 1,
#      INTERNAL or RESOURCE_EXHAUSTED), never crashes or hangs.
#   3. The real nneditd on the gpt2 fixture: apply -> id, get, forward with
#      and without the set, SAVE edits, atomic Apply, graph with hooks
#      marked and a legend, colour rules, stats cache hits, drop; global
#      options after the subcommand, errors as JSON with -o json, exit 3
#      for an unreachable daemon.
#
# Runs under ctest or by hand from the source tree with a build in ./build;
# the paths, helpers, daemon handling and cleanup are in cli_lib.sh.
set -u

TEST_NAME=test_edits_cli
# shellcheck source=cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

# The node lines of the last `graph` run (the legend names [edit] itself).
nodes_only() {
  printf '%s\n' "$OUT" | grep -v '^LEGEND:'
}

need_built "$CTL"

# ---- 1. the edits file: usage errors (no daemon) ----------------------------

for c in "edits" "edits apply" "edits list" "edits get" "edits drop" "graph" "stats"; do
  # shellcheck disable=SC2086
  run $c --help
  expect 0 "$c --help"
  has "$OUT" "usage: nneditctl $c" "$c --help text"
done
run edits apply --help
has "$OUT" '"positions"' "apply --help documents the shorthands"
has "$OUT" '"npy"' "apply --help documents npy"
run edits
expect 2 "edits without subcommand"
run edits frob
expect 2 "unknown edits subcommand"
run edits apply
expect 2 "apply without MODEL"
run edits apply m
expect 2 "apply without -f"
has "$ERR" "missing -f" "apply without -f message"
run edits apply m -f "$TMP/none.json"
expect 2 "apply of a missing file"
has "$ERR" "none.json" "missing file named"
run edits get
expect 2 "get without ID"
run edits drop a b
expect 2 "drop with two ids"
run edits get "$(printf 'x%.0s' $(seq 70))"
expect 2 "get with an over-long id"
run graph
expect 2 "graph without MODEL"
run graph m mod extra
expect 2 "graph with three arguments"
run graph m --edit-set
expect 2 "graph --edit-set without value"
run stats extra
expect 2 "stats with an argument"
run edits list -o yaml
expect 2 "edits list -o yaml"
run forward m --tokens 1 --edit-set
expect 2 "forward --edit-set without value"

# badfile NAME JSON NEEDLE: the file is refused with exit 2 and a message
# that names the place (edits[i].key).
badfile() {
  printf '%s' "$2" >"$TMP/$1.json"
  run edits apply m -f "$TMP/$1.json"
  expect 2 "bad file $1"
  has "$ERR" "nneditctl: $TMP/$1.json: " "bad file $1 names the file"
  has "$ERR" "$3" "bad file $1 message"
  has "$ERR" "usage: nneditctl edits apply" "bad file $1 usage line"
}
badfile syntax '{"edits": [{"site": "a"' "line 1"
badfile notobj '[1, 2]' "expected an object"
badfile topkey '{"edits": [], "labl": "x"}' "unknown key 'labl'"
badfile dupkey '{"edits": [], "edits": []}' "duplicate"
badfile noedits '{"label": "x"}' "edits: expected an array"
badfile empty '{"edits": []}' "edits: the array is empty"
badfile nosite '{"edits": [{"op": "zero"}]}' "edits[0].site"
badfile noop '{"edits": [{"site": "a", "op": "zero"}, {"site": "b"}]}' "edits[1].op"
badfile badop '{"edits": [{"site": "a", "op": "zap"}]}' "edits[0].op: unknown edit op 'zap'"
badfile editkey '{"edits": [{"site": "a", "op": "zero", "positons": 1}]}' "edits[0]: unknown key 'positons'"
badfile nooperand '{"edits": [{"site": "a", "op": "zero"}, {"site": "b", "op": "add"}]}' "edits[1]: op add needs exactly one of 'tensor' and 'scalar'"
badfile twooperands '{"edits": [{"site": "a", "op": "scale", "scalar": 2, "tensor": {"data": 1}}]}' "edits[0]: op scale needs exactly one"
badfile zeroscalar '{"edits": [{"site": "a", "op": "zero", "scalar": 2}]}' "edits[0].scalar: op zero takes no operand"
badfile scalarstr '{"edits": [{"site": "a", "op": "add", "scalar": "2"}]}' "edits[0].scalar: expected a number"
badfile name '{"edits": [{"site": "a", "op": "zero", "name": "x"}]}' "edits[0].name: only a save edit"
badfile shapecount '{"edits": [{"site": "a", "op": "zero"}, {"site": "a", "op": "zero"}, {"site": "b", "op": "add", "tensor": {"shape": [3], "data": [1, 2]}}]}' "edits[2].tensor.data: 2 values, shape needs 3"
badfile shapetype '{"edits": [{"site": "a", "op": "zero"}, {"site": "a", "op": "zero"}, {"site": "b", "op": "add", "tensor": {"shape": [2, -1], "data": [1, 2]}}]}' "edits[2].tensor.shape[1]"
badfile shapestr '{"edits": [{"site": "b", "op": "add", "tensor": {"shape": "x", "data": [1]}}]}' "edits[0].tensor.shape"
badfile ragged '{"edits": [{"site": "a", "op": "add", "tensor": {"data": [[1, 2], [3]]}}]}' "edits[0].tensor: ragged"
badfile dtype '{"edits": [{"site": "a", "op": "add", "tensor": {"dtype": "float128", "data": [1]}}]}' "edits[0].tensor.dtype: unknown dtype 'float128'"
badfile range8 '{"edits": [{"site": "a", "op": "add", "tensor": {"dtype": "int8", "data": [1, 300]}}]}' "edits[0].tensor.data: value 1 as int8: out of the dtype's range"
badfile notint '{"edits": [{"site": "a", "op": "add", "tensor": {"dtype": "int64", "data": [1.5]}}]}' "value 0 as int64: not an integer"
badfile strval '{"edits": [{"site": "a", "op": "add", "tensor": {"data": ["x"]}}]}' "edits[0].tensor.data: value 0: expected a number"
badfile tensorkey '{"edits": [{"site": "a", "op": "add", "tensor": {"data": [1], "shap": [1]}}]}' "edits[0].tensor: unknown key 'shap'"
badfile both '{"edits": [{"site": "a", "op": "add", "tensor": {"data": [1], "npy": "x.npy"}}]}' "edits[0].tensor: give exactly one of 'data' and 'npy'"
badfile npymissing '{"edits": [{"site": "a", "op": "add", "tensor": {"npy": "nope.npy"}}]}' "edits[0].tensor.npy: read_npy: $TMP/nope.npy"
badfile npyshape '{"edits": [{"site": "a", "op": "add", "tensor": {"npy": "x.npy", "shape": [1]}}]}' "edits[0].tensor.shape: the .npy file has its own shape"
badfile dupdim '{"edits": [{"site": "a", "op": "zero", "ranges": [[0, 1, 2]], "rows": [1, 2]}]}' "edits[0].rows: dim 0 already has a range"
badfile rangeobj '{"edits": [{"site": "a", "op": "zero", "ranges": [{"dim": 1, "begin": 2}]}]}' "edits[0].ranges[0]: unknown key 'begin'"
badfile rangedim '{"edits": [{"site": "a", "op": "zero", "ranges": [{"start": 2}]}]}' "edits[0].ranges[0].dim: expected an integer"
badfile span '{"edits": [{"site": "a", "op": "zero", "last": [1, 2, 3]}]}' "edits[0].last: expected an index or [start, stop]"
badfile toomany '{"edits": [{"site": "a", "op": "zero", "ranges": [[1,0,1],[2,0,1],[3,0,1],[4,0,1],[5,0,1],[6,0,1],[7,0,1],[8,0,1]], "rows": 1}]}' "edits[0].rows: more than 8 ranges"
badfile longsite "{\"edits\": [{\"site\": \"$(printf 's%.0s' $(seq 300))\", \"op\": \"zero\"}]}" "edits[0].site: longer than 255"
"$PY" -c "
import numpy as np
np.save('$TMP/fortran.npy', np.asfortranarray(np.ones((2, 3), np.float32)))
np.save('$TMP/big.npy', np.ones(3, '>f4'))
np.save('$TMP/c64.npy', np.ones(3, np.complex64))
np.save('$TMP/frac.npy', np.array([1.5], np.float32))
" || fail "numpy writes the bad .npy files"
badfile npyfortran '{"edits": [{"site": "a", "op": "add", "tensor": {"npy": "fortran.npy"}}]}' "fortran_order"
badfile npybig '{"edits": [{"site": "a", "op": "add", "tensor": {"npy": "big.npy"}}]}' "'>f4'"
badfile npycomplex '{"edits": [{"site": "a", "op": "add", "tensor": {"npy": "c64.npy"}}]}' "'<c8'"
badfile npycast '{"edits": [{"site": "a", "op": "add", "tensor": {"npy": "frac.npy", "dtype": "int32"}}]}' "edits[0].tensor: element 0 as int32: not an integer"
printf '\x93NUMPY\x01\x00\x10\x00{"desc' >"$TMP/trunc.npy"
badfile npytrunc '{"edits": [{"site": "a", "op": "add", "tensor": {"npy": "trunc.npy"}}]}' "header cut short"

# With -o json (anywhere) a bad file is one JSON line: code USAGE, the file
# and the place named, the usage of the subcommand.
run edits apply m -f "$TMP/badop.json" -o json
expect 2 "bad file, JSON mode"
json_err "
assert e['code'] == 'USAGE', e
assert e['message'].startswith('$TMP/badop.json: edits[0].op: unknown edit op'), e
assert e['usage'] == 'nneditctl edits apply MODEL -f EDITS.json [--label L]', e" \
  "bad file as JSON"
run edits list --addr 127.0.0.1:1 -o json
expect 3 "edits list: unreachable daemon"
json_err "assert e['code'] == 'UNAVAILABLE', e" "edits list unreachable as JSON"
run edits --addr 127.0.0.1:1 drop es-1
expect 3 "a global option between group and subcommand"

# A file read from stdin: npy paths are then relative to the working dir.
run edits apply m -f - </dev/null
expect 2 "apply -f - with empty stdin"
has "$ERR" "-: " "stdin named as -"

# ---- 2. a fake server -------------------------------------------------------

cat >"$TMP/fake.py" <<'PYEOF'
import sys, os, json, struct
from concurrent import futures
from fakeserve import serve, field
sys.path.insert(0, os.environ["NNE_PY_GEN"])
import grpc
from nnedit.v1 import (edits_pb2 as ep, models_pb2 as mp, admin_pb2 as ap,
                       inference_pb2 as ip, tensor_pb2 as tp)

LOG = sys.argv[2]
SETS = {}

def info(i, model="fake", label="", n=0, hit=False):
    return ep.EditSetInfo(id="es-%04d" % i, model=model, label=label, edit_count=n,
                          backend_key="k%d" % (i % 2), backend_bytes=1000 + i,
                          compile_ms=0.0 if hit else 1.5, cache_hit=hit,
                          created_unix_ms=1700000000000 + i, tensor_bytes=4 * i)

def apply(b, ctx):
    req = ep.ApplyEditsRequest.FromString(b)
    # What arrived, for the test to compare with the file.
    rec = {"model": req.model, "label": req.label, "edits": []}
    for e in req.edits:
        # The enum words without their type's prefix, as the file spells them.
        d = {"site": e.site, "op": ep.EditOp.Name(e.op).removeprefix("EDIT_OP_"),
             "name": e.name, "operand": e.WhichOneof("operand"), "scalar": e.scalar,
             "ranges": [[r.dim, r.start, r.stop] for r in e.ranges]}
        if e.HasField("tensor"):
            d["tensor"] = {"dtype": tp.DType.Name(e.tensor.dtype).removeprefix("DTYPE_"),
                           "shape": list(e.tensor.shape), "hex": e.tensor.data.hex()}
        rec["edits"].append(d)
    with open(LOG, "a") as f:
        f.write(json.dumps(rec) + "\n")
    if req.model == "reject":
        ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "edits[1]: site 'nope': no such site")
    if req.model == "noid":
        return ep.ApplyEditsResponse().SerializeToString()
    i = len(SETS) + 1
    SETS[i] = req
    return ep.ApplyEditsResponse(edit_set=info(i, req.model, req.label, len(req.edits),
                                               hit=i > 1)).SerializeToString()

def list_sets(b, ctx):
    req = ep.ListEditSetsRequest.FromString(b)
    if req.model == "many":
        return field(1, b"") * 65537
    return ep.ListEditSetsResponse(edit_sets=[info(i, r.model, r.label, len(r.edits))
                                              for i, r in SETS.items()
                                              if not req.model or r.model == req.model]
                                   ).SerializeToString()

def get(b, ctx):
    req = ep.GetEditSetRequest.FromString(b)
    if req.id == "es-many":
        return field(1, info(9).SerializeToString()) + field(2, b"") * 65537
    if req.id == "es-badindex":
        return ep.GetEditSetResponse(edit_set=info(9, n=1), edits=[ep.ResolvedEdit(index=1)]
                                     ).SerializeToString()
    if req.id == "es-noset":
        return b""
    if req.id == "es-longsite":
        return field(1, info(9, n=1).SerializeToString()) + field(2, field(2, b"s" * 300))
    i = int(req.id[3:]) if req.id[3:].isdigit() else 0
    if i not in SETS:
        ctx.abort(grpc.StatusCode.NOT_FOUND, "edit set '%s': no such edit set" % req.id)
    r = SETS[i]
    out = []
    for k, e in enumerate(r.edits):
        out.append(ep.ResolvedEdit(index=k, site=e.site, canonical="h.0.attn:aten::softmax#0",
                                   instance="h.0.attn", node="aten::softmax#0",
                                   standard="layers.0.self_attn.pattern", op=e.op,
                                   tensor_dtype=e.tensor.dtype if e.HasField("tensor") else 0,
                                   tensor_shape=list(e.tensor.shape),
                                   scalar=e.scalar if e.HasField("scalar") else None,
                                   ranges=e.ranges, hook_id=10 + k,
                                   name=e.name))
    return ep.GetEditSetResponse(edit_set=info(i, r.model, r.label, len(r.edits)),
                                 edits=out).SerializeToString()

def drop(b, ctx):
    req = ep.DropEditSetRequest.FromString(b)
    i = int(req.id[3:]) if req.id[3:].isdigit() else 0
    if i not in SETS:
        ctx.abort(grpc.StatusCode.NOT_FOUND, "edit set '%s': no such edit set" % req.id)
    r = SETS.pop(i)
    return ep.DropEditSetResponse(edit_set=info(i, r.model, r.label, len(r.edits)),
                                  freed_bytes=4096).SerializeToString()

def graph(b, ctx):
    req = mp.GraphRequest.FromString(b)
    N = mp.GraphNode
    if req.model == "manynodes":
        return field(2, b"") * 1000001
    if req.model == "manyvalues":
        return field(2, field(4, b"x") * 65537)
    if req.model == "longvalue":
        return field(2, field(4, b"x" * 1024))
    if req.model == "longop":
        return field(2, field(2, b"o" * 200))
    nodes = [N(index=0, op="prim::GetAttr", kind=mp.NODE_KIND_ATTRIBUTE, inputs=["%self"],
               outputs=["%c_attn"], instance="h.0.attn", selector="h.0.attn:prim::GetAttr#0"),
             N(index=1, op="prim::Constant", kind=mp.NODE_KIND_CONSTANT, outputs=["%4"],
               instance="h.0.attn", selector="h.0.attn:prim::Constant#0"),
             N(index=2, op="prim::CallMethod", kind=mp.NODE_KIND_CALL, inputs=["%c_attn", "%x"],
               outputs=["%qkv"], instance="h.0.attn", selector="h.0.attn.c_attn.output",
               callee="h.0.attn.c_attn", shape="[2, 7, 192]"),
             N(index=3, op="aten::softmax", kind=mp.NODE_KIND_OP, inputs=["%w", "%4"],
               outputs=["%p.1"], instance="h.0.attn", selector="h.0.attn:aten::softmax#0",
               shape="[2, 4, 7, 7]", source="w = nn.functional.softmax(w, dim=-1)"),
             N(index=4, op="prim::If", kind=mp.NODE_KIND_OTHER, inputs=["%c"], outputs=["%y"],
               instance="h.0.attn", selector="h.0.attn:prim::If#0"),
             N(index=5, op="aten::mul", kind=mp.NODE_KIND_OP, inputs=["%y", "%y"], outputs=["%z"],
               instance="h.0.attn", selector="h.0.attn:aten::mul#0", depth=1)]
    if req.edit_set:
        nodes.insert(4, N(index=4, op="nne::hook", kind=mp.NODE_KIND_HOOK, inputs=["%p.1"],
                          outputs=["%p.2"], instance="h.0.attn", inserted=True,
                          selector="h.0.attn:aten::softmax#0"))
    return mp.GraphResponse(module="h.0.attn", nodes=nodes, text="graph(%self):\n  return (%z)\n",
                            edited=bool(req.edit_set)).SerializeToString()

def stats(b, ctx):
    return ap.StatsResponse(caches=[ap.BackendCacheStats(model="fake", hits=3, misses=2, entries=2,
                                                         bytes=5000, capacity_bytes=1 << 30,
                                                         evictions=1, compile_ms_total=12.5,
                                                         compile_ms_last=4.25, pinned=2)],
                            queue_depth=1, queue_capacity=64, calls_total=99, live_calls=1,
                            edit_sets=len(SETS)).SerializeToString()

def forward(b, ctx):
    req = ip.ForwardRequest.FromString(b)
    names = list(req.save)
    listed = list(names)
    sent = list(names)
    if req.edit_set:
        extra = ["mlp2", "layers.1.resid_post"]
        if req.model != "unlisted":     # the set's saves may go unlisted
            listed += extra
        sent += extra if req.model != "unsent" else extra[:1]
    r = ip.ForwardResult(batch=1, seq_len=1, saved=listed,
                         rows=[ip.RowTopK(position=0)])
    yield ip.ForwardResponse(result=r).SerializeToString()
    for k, n in enumerate(sent):
        vals = b"".join(struct.pack("<f", float(k * 10 + i)) for i in range(6))
        yield ip.ForwardResponse(chunk=tp.TensorChunk(
            name=n, dtype=tp.DTYPE_FLOAT32, shape=[2, 3], total_bytes=24, data=vals,
            last=True)).SerializeToString()

server = grpc.server(futures.ThreadPoolExecutor(4),
                     options=[("grpc.max_send_message_length", 1 << 26)])
u = grpc.unary_unary_rpc_method_handler
server.add_generic_rpc_handlers([
    grpc.method_handlers_generic_handler("nnedit.v1.Edits", {
        "Apply": u(apply), "List": u(list_sets), "Get": u(get), "Drop": u(drop)}),
    grpc.method_handlers_generic_handler("nnedit.v1.Models", {"Graph": u(graph)}),
    grpc.method_handlers_generic_handler("nnedit.v1.Admin", {"Stats": u(stats)}),
    grpc.method_handlers_generic_handler("nnedit.v1.Inference", {
        "Forward": grpc.unary_stream_rpc_method_handler(forward)}),
])
serve(server)
PYEOF

start_fake "$TMP/applied.jsonl"
F+=(--timeout 30)

# The request on the wire equals the file: sites, ops, operands (the tensor
# bytes as numpy would write them, dtype conversions included), ranges and
# their shorthands, names, the label (and --label over it).
mkdir -p "$TMP/sub"
"$PY" -c "
import numpy as np
np.save('$TMP/sub/steer.npy', (np.arange(64) / 10).astype(np.float64))
np.save('$TMP/sub/ids.npy', np.array([[1, -2], [3, 4]], np.int32))
"
cat >"$TMP/sub/edits.json" <<'EOF'
{"label": "from the file",
 "edits": [
  {"site": "layers.0.self_attn.pattern", "op": "zero",
   "ranges": [{"dim": 1, "start": 3, "stop": 4}, [2, -1]]},
  {"site": "layers.3.resid_post", "op": "add",
   "tensor": {"dtype": "float32", "shape": [2, 2], "data": [0.1, -2, 1e-3, 65504]}},
  {"site": "layers.3.resid_post", "op": "add", "tensor": {"npy": "steer.npy", "dtype": "float32"},
   "positions": -1},
  {"site": "layers.3.resid_post", "op": "replace", "tensor": {"npy": "ids.npy"}, "rows": [0, 1]},
  {"site": "layers.1.mlp_out", "op": "scale", "scalar": 0.5, "last": [128, 192], "rows": 1},
  {"site": "layers.1.mlp_out", "op": "scale",
   "tensor": {"dtype": "float16", "data": [[1.5, -0.1], [70000, 6e-8]]}},
  {"site": "layers.1.mlp_out", "op": "add",
   "tensor": {"dtype": "bfloat16", "data": [1.0, 3.14159, -1e-30]}},
  {"site": "x", "op": "add", "tensor": {"dtype": "bool", "data": [true, false, 1]}},
  {"site": "x", "op": "add", "tensor": {"dtype": "int64", "data": 9007199254740993}},
  {"site": "layers.2.mlp_out", "op": "save", "name": "mlp2", "last": [3]},
  {"site": "layers.2.mlp_out", "op": "SAVE"}
 ]}
EOF
run "${F[@]}" edits apply fake -f "$TMP/sub/edits.json"
expect 0 "fake: apply"
[ "$OUT" = "es-0001" ] || fail "fake: apply prints the id alone, got '$OUT'"
py "
rec = [json.loads(l) for l in open('$TMP/applied.jsonl')][-1]
assert rec['model'] == 'fake' and rec['label'] == 'from the file', rec
e = rec['edits']
assert len(e) == 11, len(e)
assert e[0]['site'] == 'layers.0.self_attn.pattern' and e[0]['op'] == 'ZERO'
assert e[0]['ranges'] == [[1, 3, 4], [2, -1, 0]] and 'tensor' not in e[0], e[0]
def arr(t, dt):
    return np.frombuffer(bytes.fromhex(t['hex']), dt).reshape(t['shape'])
t = e[1]['tensor']
assert t['dtype'] == 'FLOAT32' and t['shape'] == [2, 2], t
assert np.array_equal(arr(t, '<f4'), np.array([[0.1, -2], [1e-3, 65504]], np.float32))
t = e[2]['tensor']
assert t['dtype'] == 'FLOAT32' and t['shape'] == [64], t
assert np.array_equal(arr(t, '<f4'), (np.arange(64) / 10).astype(np.float32))
assert e[2]['ranges'] == [[1, -1, 0]], e[2]
t = e[3]['tensor']
assert e[3]['op'] == 'REPLACE' and t['dtype'] == 'INT32' and t['shape'] == [2, 2], t
assert np.array_equal(arr(t, '<i4'), np.array([[1, -2], [3, 4]])) and e[3]['ranges'] == [[0, 0, 1]]
assert e[4]['operand'] == 'scalar' and e[4]['scalar'] == 0.5 and 'tensor' not in e[4], e[4]
assert e[4]['ranges'] == [[0, 1, 2], [-1, 128, 192]], e[4]['ranges']
t = e[5]['tensor']
assert t['dtype'] == 'FLOAT16' and t['shape'] == [2, 2], t
want = np.array([[1.5, -0.1], [70000, 6e-8]]).astype(np.float16)
assert arr(t, '<f2').tobytes() == want.tobytes(), (arr(t, '<f2'), want)
t = e[6]['tensor']
assert t['dtype'] == 'BFLOAT16' and t['shape'] == [3], t
b = np.frombuffer(bytes.fromhex(t['hex']), '<u2').astype(np.uint32) << 16
got = b.view(np.float32)
f = np.array([1.0, 3.14159, -1e-30], np.float32).view(np.uint32)
rne = ((f + 0x7fff + ((f >> 16) & 1)) >> 16) << 16
assert np.array_equal(got.view(np.uint32), rne), (got, rne.view(np.float32))
t = e[7]['tensor']
assert t['dtype'] == 'BOOL' and bytes.fromhex(t['hex']) == b'\x01\x00\x01', t
t = e[8]['tensor']
assert t['dtype'] == 'INT64' and t['shape'] == [] and arr(t, '<i8') == 9007199254740993, t
assert e[9]['op'] == 'SAVE' and e[9]['name'] == 'mlp2' and e[9]['ranges'] == [[-1, 3, 0]], e[9]
assert e[10]['op'] == 'SAVE' and e[10]['name'] == '', e[10]
" "fake: the Apply request equals the file"

run "${F[@]}" -o json edits apply fake -f "$TMP/sub/edits.json" --label "over"
expect 0 "fake: apply -o json --label"
json '
s = d["edit_set"]
assert s["id"] == "es-0002" and s["label"] == "over" and s["edit_count"] == 11, s
assert s["cache_hit"] is True and s["compile_ms"] == 0 and s["backend_key"] == "k0", s
assert set(s) == {"id", "model", "label", "edit_count", "backend_key", "backend_bytes",
                  "compile_ms", "cache_hit", "created_unix_ms", "in_flight", "tensor_bytes"}, s' \
  "fake: apply json"
# -o after the command, stdin, npy paths relative to the working directory.
(cd "$TMP/sub" && "$CTL" "${F[@]}" edits apply fake -o json -f - <edits.json >"$TMP/stdin.out" 2>&1) ||
  fail "fake: apply -f - with npy paths relative to the working directory: $(cat "$TMP/stdin.out")"

run "${F[@]}" edits apply reject -f "$TMP/sub/edits.json"
expect 1 "fake: a refused Apply"
has "$ERR" "nneditctl: INVALID_ARGUMENT: edits[1]: site 'nope'" "fake: refused Apply message"
run "${F[@]}" edits apply noid -f "$TMP/sub/edits.json"
expect 1 "fake: an Apply reply without an id"
has "$ERR" "INTERNAL" "fake: no id status"

run "${F[@]}" edits list
expect 0 "fake: list"
has "$OUT" "ID" "fake: list header"
printf '%s\n' "$OUT" | grep -Eq '^es-0001 +fake +from the file +11 +miss +1\.50 ms +1001 +4 +2023-11-14 ' ||
  fail "fake: list row: $OUT"
printf '%s\n' "$OUT" | grep -q ' $' && fail "fake: list has trailing blanks"
run "${F[@]}" -o json edits list fake
json 'assert [s["id"] for s in d["edit_sets"]] == ["es-0001", "es-0002", "es-0003"], d' "fake: list json"
run "${F[@]}" edits list other
expect 0 "fake: list of a model without sets"
has "$OUT" "no edit sets on other" "fake: empty list"

run "${F[@]}" edits get es-0001
expect 0 "fake: get"
has "$OUT" "id:            es-0001" "fake: get header"
printf '%s\n' "$OUT" | grep -Eq '^# +SITE +CANONICAL +INSTANCE +NODE +OP +OPERAND +RANGES +HOOK$' ||
  fail "fake: get table header: $OUT"
printf '%s\n' "$OUT" | grep -Eq '^0 +layers\.0\.self_attn\.pattern +h\.0\.attn:aten::softmax#0 +h\.0\.attn +aten::softmax#0 +zero +- +d1\[3:4\] d2\[-1:\] +10$' ||
  fail "fake: get row 0: $OUT"
printf '%s\n' "$OUT" | grep -Eq '^1 +layers\.3\.resid_post \(layers\.0\.self_attn\.pattern\) .* add +float32\[2, 2\] +- +11$' ||
  fail "fake: get row 1 (operand, standard name): $OUT"
printf '%s\n' "$OUT" | grep -Eq '^4 .* scale +scalar 0\.5 +d0\[1:2\] d-1\[128:192\] +14$' ||
  fail "fake: get row 4 (scalar, ranges): $OUT"
printf '%s\n' "$OUT" | grep -Eq '^9 .* save as mlp2 +- +d-1\[3:\] +19$' || fail "fake: get row 9 (save name): $OUT"
run "${F[@]}" -o json edits get es-0001
json '
assert d["edit_set"]["id"] == "es-0001", d["edit_set"]
e = d["edits"]
assert len(e) == 11 and [x["index"] for x in e] == list(range(11))
assert e[0]["operand"] is None and e[0]["ranges"] == [{"dim": 1, "start": 3, "stop": 4},
                                                      {"dim": 2, "start": -1, "stop": 0}], e[0]
assert e[1]["operand"] == {"dtype": "float32", "shape": [2, 2]}, e[1]
assert e[4]["operand"] == {"scalar": 0.5}, e[4]
assert e[9]["name"] == "mlp2" and e[9]["op"] == "save" and e[9]["hook_id"] == 19, e[9]
assert set(e[0]) == {"index", "site", "canonical", "instance", "node", "standard", "op",
                     "operand", "ranges", "hook_id", "name"}, sorted(e[0])' "fake: get json"
run "${F[@]}" edits get es-9999
expect 1 "fake: get of an unknown id"
has "$ERR" "nneditctl: NOT_FOUND: edit set 'es-9999'" "fake: unknown id message"

run "${F[@]}" edits drop es-0002
expect 0 "fake: drop"
[ "$OUT" = "dropped es-0002 (freed 4096 bytes)" ] || fail "fake: drop prints '$OUT'"
run "${F[@]}" -o json edits drop es-0003
json 'assert d["edit_set"]["id"] == "es-0003" and d["freed_bytes"] == 4096, d' "fake: drop json"
run "${F[@]}" edits drop es-0003
expect 1 "fake: drop twice"
has "$ERR" "NOT_FOUND" "fake: drop twice status"

# Graph: one line per node; [edit] marks inserted nodes with or without
# colour; colour only when asked for here (stdout is a pipe).
run "${F[@]}" graph fake layers.0.self_attn
expect 0 "fake: graph"
has "$OUT" "LEGEND: [edit] hook / edited value | submodule call | tensor op | constant / attribute | other" "fake: legend"
hasnt "$OUT" $'\033' "fake: no colour on a pipe"
hasnt "$(nodes_only)" "[edit]" "fake: pristine graph has no [edit]"
case "$(printf '%s\n' "$OUT" | head -1)" in "fake h.0.attn (layers.0.self_attn): 6 nodes") ;;
  *) fail "fake: graph header: $(printf '%s\n' "$OUT" | head -1)" ;; esac
printf '%s\n' "$OUT" | grep -Eq '^    3  %p\.1 = aten::softmax\(%w, %4\) +h\.0\.attn:aten::softmax#0 +\[2, 4, 7, 7\] +# w = nn\.functional\.softmax\(w, dim=-1\)$' ||
  fail "fake: graph softmax line: $OUT"
printf '%s\n' "$OUT" | grep -Eq '^    2  %qkv = prim::CallMethod\(%c_attn, %x\) -> h\.0\.attn\.c_attn +h\.0\.attn\.c_attn\.output +\[2, 7, 192\]$' ||
  fail "fake: graph call line: $OUT"
printf '%s\n' "$OUT" | grep -Eq '^    5    %z = aten::mul\(%y, %y\) ' || fail "fake: nested node indented: $OUT"
printf '%s\n' "$OUT" | grep -q ' $' && fail "fake: graph has trailing blanks"
run "${F[@]}" graph fake layers.0.self_attn --edit-set es-0001 --no-color
expect 0 "fake: graph of an edit set"
has "$OUT" ", edit set es-0001 (edited): 7 nodes, 1 inserted by edits" "fake: edit set header"
printf '%s\n' "$OUT" | grep -Eq '^    4  \[edit\] %p\.2 = nne::hook\(%p\.1\) +h\.0\.attn:aten::softmax#0' ||
  fail "fake: hook line: $OUT"
hasnt "$OUT" $'\033' "fake: --no-color"
run "${F[@]}" graph fake layers.0.self_attn --edit-set es-0001 --color
expect 0 "fake: graph --color"
has "$OUT" $'\033[1;31m[edit] %p.2 = nne::hook(%p.1)\033[0m' "fake: hook in red"
has "$OUT" $'\033[32m%p.1 = aten::softmax' "fake: op in green"
has "$OUT" $'\033[1;34m%qkv = prim::CallMethod' "fake: call in blue"
has "$OUT" $'\033[2m%4 = prim::Constant()' "fake: constant dim"
has "$OUT" $'\033[2m%c_attn = prim::GetAttr' "fake: attribute dim"
has "$OUT" $'\033[35m%y = prim::If' "fake: other in magenta"
has "$OUT" $'LEGEND: \033[1;31m[edit] hook / edited value\033[0m' "fake: coloured legend"
NO_COLOR=1 run "${F[@]}" graph fake layers.0.self_attn --color
has "$OUT" $'\033[' "fake: --color beats NO_COLOR"
# A terminal gets colour unless NO_COLOR (script(1) gives us one).
if command -v script >/dev/null 2>&1; then
  script -qec "'$CTL' --addr $FADDR graph fake m" /dev/null >"$TMP/tty.out" 2>&1
  grep -q $'\033\[32m' "$TMP/tty.out" || fail "fake: no colour on a terminal: $(head -c 300 "$TMP/tty.out")"
  NO_COLOR=1 script -qec "'$CTL' --addr $FADDR graph fake m" /dev/null >"$TMP/tty.out" 2>&1
  grep -q $'\033\[32m' "$TMP/tty.out" && fail "fake: colour on a terminal with NO_COLOR set"
  script -qec "'$CTL' --addr $FADDR graph fake m --no-color" /dev/null >"$TMP/tty.out" 2>&1
  grep -q $'\033\[32m' "$TMP/tty.out" && fail "fake: colour on a terminal with --no-color"
fi
run "${F[@]}" graph fake m --edit-set es-0001 -o json
expect 0 "fake: graph -o json"
json '
assert d["model"] == "fake" and d["module"] == "h.0.attn" and d["edit_set"] == "es-0001"
assert d["edited"] is True and d["text"].startswith("graph(%self)"), d
n = d["nodes"]
assert [x["kind"] for x in n] == ["attribute", "constant", "call", "op", "hook", "other", "op"], n
assert [x["inserted"] for x in n].count(True) == 1 and n[4]["op"] == "nne::hook"
assert n[2]["callee"] == "h.0.attn.c_attn" and n[2]["inputs"] == ["%c_attn", "%x"]
assert n[6]["depth"] == 1 and n[3]["source"].startswith("w = ")
assert set(n[0]) == {"index", "op", "kind", "inputs", "outputs", "instance", "selector",
                     "source", "shape", "inserted", "depth", "callee"}, sorted(n[0])' "fake: graph json"
run "${F[@]}" graph fake m --text
expect 0 "fake: graph --text"
[ "$OUT" = $'graph(%self):\n  return (%z)' ] || fail "fake: graph --text: '$OUT'"

run "${F[@]}" stats
expect 0 "fake: stats"
has "$OUT" "queue 1 / 64  calls 99 (1 live)  edit sets 1" "fake: stats summary"
printf '%s\n' "$OUT" | grep -Eq '^MODEL +HITS +MISSES +ENTRIES +BYTES +CAPACITY +EVICTIONS +PINNED +COMPILE_MS +LAST_MS$' ||
  fail "fake: stats header: $OUT"
printf '%s\n' "$OUT" | grep -Eq '^fake +3 +2 +2 +5000 +1073741824 +1 +2 +12\.50 +4\.25$' ||
  fail "fake: stats row: $OUT"
run "${F[@]}" stats -o json
json '
c = d["caches"][0]
assert (c["model"], c["hits"], c["misses"], c["entries"], c["pinned"]) == ("fake", 3, 2, 2, 2), c
assert c["compile_ms_total"] == 12.5 and c["capacity_bytes"] == 1 << 30 and c["evictions"] == 1
assert (d["queue_depth"], d["queue_capacity"], d["calls_total"], d["live_calls"], d["edit_sets"]) == (1, 64, 99, 1, 1), d' \
  "fake: stats json"

# Forward on an edit set: its SAVE edits come back after the request's own
# saves, named by their names, and --save-dir writes them all.
run "${F[@]}" -o json forward fake --tokens 1 --top-k 0 --save a.b --edit-set es-0001 \
  --save-dir "$TMP/fsaves" --values
expect 0 "fake: forward --edit-set"
json "
assert d['edit_set'] == 'es-0001', d
s = d['saved']
assert [t['name'] for t in s] == ['a.b', 'mlp2', 'layers.1.resid_post'], s
assert s[1]['values'] == [[10, 11, 12], [13, 14, 15]], s[1]
assert s[2]['file'] == '$TMP/fsaves/layers.1.resid_post.npy', s[2]
import numpy as np
assert np.array_equal(np.load('$TMP/fsaves/mlp2.npy'), np.arange(10, 16, dtype=np.float32).reshape(2, 3))" \
  "fake: forward --edit-set json"
run "${F[@]}" -o json forward unlisted --tokens 1 --top-k 0 --save a.b --edit-set es-0001 --values
expect 0 "fake: forward --edit-set, the set's saves not listed in the result"
json "
s = d['saved']
assert [t['name'] for t in s] == ['a.b', 'mlp2', 'layers.1.resid_post'], s
assert s[2]['values'] == [[20, 21, 22], [23, 24, 25]], s[2]" "fake: unlisted edit set saves"
run "${F[@]}" forward unlisted --tokens 1 --edit-set es-0001
expect 0 "fake: unlisted edit set saves without request saves"
run "${F[@]}" forward fake --tokens 1 --edit-set es-0001
expect 0 "fake: forward --edit-set table"
has "$OUT" "model fake  edit set es-0001  batch 1" "fake: forward header names the set"
printf '%s\n' "$OUT" | grep -Eq '^  mlp2 +float32 +\[2, 3\]$' || fail "fake: forward saved table: $OUT"
run "${F[@]}" forward fake --tokens 1 --save-dir "$TMP/fs2"
expect 2 "fake: --save-dir without saves or edit set"
run "${F[@]}" forward unsent --tokens 1 --edit-set es-0001
expect 1 "fake: an edit set save listed and not sent"
has "$ERR" "INTERNAL: Inference/Forward: the edit set's save 'layers.1.resid_post' was listed and not sent" \
  "fake: unsent save message"
run "${F[@]}" forward fake --tokens 1
expect 0 "fake: forward without an edit set"

# Replies over libnnedit's bounds: refused, named. STATUS|NEEDLE|ARGS
while IFS='|' read -r status needle args; do
  # shellcheck disable=SC2086
  run "${F[@]}" $args
  expect 1 "fake: $args"
  has "$ERR" "nneditctl: $status: " "fake: $args status"
  has "$ERR" "$needle" "fake: $args message"
done <<'EOF'
RESOURCE_EXHAUSTED|more than 1000000 nodes|graph manynodes m
RESOURCE_EXHAUSTED|nodes[0].inputs: more than 65536 values|graph manyvalues m
INTERNAL|nodes[0].inputs: a string of 1024 bytes|graph longvalue m
INTERNAL|nodes[0]|graph longop m
RESOURCE_EXHAUSTED|more than 65536 edit sets|edits list many
RESOURCE_EXHAUSTED|more than 65536 edits|edits get es-many
INTERNAL|edits[0] has index 1 in a set of 1 edits|edits get es-badindex
INTERNAL|reply has no edit set|edits get es-noset
INTERNAL|edits[0]|edits get es-longsite
EOF
stop_fake

# ---- 3. the real daemon -----------------------------------------------------

start_daemon
M=gpt2-script

run "${A[@]}" models load $M
expect 0 "load $M"
run "${A[@]}" edits list $M
expect 0 "edits list before any apply"
has "$OUT" "no edit sets on $M" "edits list empty"

cat >"$TMP/zero.json" <<'EOF'
{"label": "zero the pattern of layer 0",
 "edits": [{"site": "layers.0.self_attn.pattern", "op": "zero"},
           {"site": "layers.0.mlp_out", "op": "save", "name": "mlp0"}]}
EOF
run "${A[@]}" edits apply $M -f "$TMP/zero.json"
expect 0 "apply zero.json"
ID=$OUT
case "$ID" in "" | *" "* | *$'\n'*) fail "apply prints one id, got '$ID'" ;; esac

run edits get "$ID" "${A[@]}" --output json
expect 0 "edits get"
json "
s = d['edit_set']
assert s['id'] == '$ID' and s['model'] == '$M' and s['edit_count'] == 2, s
assert s['label'] == 'zero the pattern of layer 0', s
e = d['edits']
assert [x['index'] for x in e] == [0, 1], e
z, sv = e
assert z['op'] == 'zero' and z['site'] == 'layers.0.self_attn.pattern', z
assert z['instance'] == 'transformer.h.0.attn', z
assert z['canonical'].startswith('transformer.h.0.attn:aten::softmax#'), z
assert z['node'].startswith('aten::softmax#'), z
assert sv['op'] == 'save' and sv['name'] == 'mlp0' and sv['instance'].startswith('transformer.h.0'), sv
assert z['hook_id'] != sv['hook_id'], e" "edits get resolves canonical, instance, node, hook"
run "${A[@]}" edits get "$ID"
expect 0 "edits get table"
printf '%s\n' "$OUT" | grep -Eq '^0 +layers\.0\.self_attn\.pattern +transformer\.h\.0\.attn:aten::softmax#[0-9]+ +transformer\.h\.0\.attn +aten::softmax#[0-9]+ +zero +- +- +[0-9]+$' ||
  fail "edits get table row 0: $OUT"
has "$OUT" "save as mlp0" "edits get table save row"

run "${A[@]}" edits list $M
expect 0 "edits list"
has "$OUT" "$ID" "edits list names the set"
run "${A[@]}" -o json edits list
json "assert '$ID' in [s['id'] for s in d['edit_sets']], d" "edits list json (all models)"

# Forward with and without the set: the zeroed pattern changes the logits;
# the SAVE edit streams back as mlp0 and equals a save of the same site in
# the same (edited) forward.
run "${A[@]}" forward $M --tokens $IDS0 --tokens $IDS1 --top-k 1 --save-logits "$TMP/pristine.npy"
expect 0 "forward pristine"
run "${A[@]}" -o json forward $M --tokens $IDS0 --tokens $IDS1 --top-k 1 --edit-set "$ID" \
  --save layers.0.mlp_out --save-logits "$TMP/edited.npy" --save-dir "$TMP/esaves"
expect 0 "forward --edit-set"
json "
assert d['edit_set'] == '$ID'
assert [t['name'] for t in d['saved']] == ['layers.0.mlp_out', 'mlp0'], d['saved']
assert d['saved'][1]['shape'] == [2, 7, 64], d['saved'][1]" "forward --edit-set saved names"
py "
p = np.load('$TMP/pristine.npy'); e = np.load('$TMP/edited.npy')
ref = np.load('$FIX/$M/ref/logits_jit.npy')
assert np.array_equal(p, ref), 'pristine logits differ from the reference'
assert p.shape == e.shape and not np.array_equal(p, e), 'ZERO of the pattern did not change the logits'
a = np.load('$TMP/esaves/layers.0.mlp_out.npy'); b = np.load('$TMP/esaves/mlp0.npy')
assert np.array_equal(a, b), float(np.abs(a - b).max())" "forward: edit set vs pristine, SAVE edit vs save"
run "${A[@]}" forward $M --tokens $IDS0 --save-logits "$TMP/pristine2.npy"
expect 0 "forward pristine after the edited one"
py "
p = np.load('$TMP/pristine2.npy'); ref = np.load('$FIX/$M/ref/logits_jit.npy')[:1]
assert np.allclose(p, ref, atol=1e-5, rtol=0), 'the pristine model changed after an edited run'" \
  "pristine model unaffected by the edit set"

# Graph: the legend always; [edit] on the edit set's hook, not on the
# pristine graph; no escapes with --no-color (nor on a pipe), some with --color.
run "${A[@]}" graph $M layers.0.self_attn --no-color
expect 0 "graph pristine"
has "$OUT" "LEGEND:" "graph legend"
has "$OUT" "aten::softmax" "graph shows the softmax"
has "$OUT" "transformer.h.0.attn:aten::softmax#" "graph shows selectors"
hasnt "$(nodes_only)" "[edit]" "pristine graph has no [edit]"
hasnt "$OUT" $'\033' "graph --no-color has no escapes"
run "${A[@]}" graph $M layers.0.self_attn --edit-set "$ID" --no-color
expect 0 "graph of the edit set"
has "$OUT" "LEGEND:" "graph legend (edit set)"
has "$(nodes_only)" "[edit]" "graph marks the inserted hook"
has "$OUT" "(edited)" "graph header says edited"
hasnt "$OUT" $'\033' "graph --no-color (edit set) has no escapes"
run "${A[@]}" graph $M layers.0.self_attn --edit-set "$ID"
hasnt "$OUT" $'\033' "graph on a pipe has no escapes"
run "${A[@]}" graph $M layers.0.self_attn --edit-set "$ID" --color
has "$OUT" $'\033[1;31m[edit]' "graph --color colours the hook"
run "${A[@]}" -o json graph $M layers.0.self_attn --edit-set "$ID"
json "
assert d['edited'] is True and d['module'] == 'transformer.h.0.attn', (d['edited'], d['module'])
ins = [n for n in d['nodes'] if n['inserted'] or n['kind'] == 'hook']
assert ins, 'no inserted node'
assert any(n['op'] == 'aten::softmax' for n in d['nodes'])" "graph json of the edit set"
run "${A[@]}" -o json graph $M layers.0.self_attn
json "
assert d['edited'] is False and d['edit_set'] is None
assert not [n for n in d['nodes'] if n['inserted'] or n['kind'] == 'hook']
sm = [n for n in d['nodes'] if n['op'] == 'aten::softmax']
assert sm and sm[0]['selector'].startswith('transformer.h.0.attn:aten::softmax#'), sm" "graph json pristine"

# Apply is atomic: one bad edit (unknown site, range outside the value,
# operand of the wrong shape) and nothing is created.
run "${A[@]}" -o json edits list
NSETS=$(printf '%s' "$OUT" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["edit_sets"]))')
while read -r name edit; do
  printf '{"edits": [{"site": "layers.1.resid_post", "op": "scale", "scalar": 2}, %s]}' "$edit" \
    >"$TMP/bad-$name.json"
  run "${A[@]}" edits apply $M -f "$TMP/bad-$name.json"
  expect 1 "apply with a bad edit ($name)"
  # Within Apply every bad edit is INVALID_ARGUMENT naming it.
  has "$ERR" "nneditctl: INVALID_ARGUMENT: " "bad edit ($name) status"
  has "$ERR" "edits[1]" "bad edit ($name) named by position"
  run "${A[@]}" -o json edits list
  json "assert len(d['edit_sets']) == $NSETS, d['edit_sets']" "bad edit ($name) left no set behind"
done <<'EOF'
site {"site": "layers.0.no_such_site", "op": "zero"}
range {"site": "layers.0.self_attn.pattern", "op": "zero", "positions": [50, 60]}
EOF
# An operand of the wrong shape (63 values for a 64-wide residual).
printf '{"edits": [{"site": "layers.1.resid_post", "op": "scale", "scalar": 2}, {"site": "layers.1.resid_post", "op": "add", "tensor": {"shape": [63], "data": [%s]}}]}' \
  "$(seq -s, 63 | sed 's/[0-9]\+/0.5/g')" >"$TMP/bad-shape.json"
run "${A[@]}" edits apply $M -f "$TMP/bad-shape.json"
expect 1 "apply with an operand of the wrong shape"
has "$ERR" "INVALID_ARGUMENT" "wrong operand shape status"
has "$ERR" "edits[1]" "wrong operand shape named"
run "${A[@]}" -o json edits list
json "assert len(d['edit_sets']) == $NSETS" "wrong operand shape left no set behind"

# Stats: two sets of the same structure with different values share one
# backend: the second is a cache hit, and the model's hits grow.
run "${A[@]}" -o json stats
expect 0 "stats json"
HITS0=$(printf '%s' "$OUT" | "$PY" -c "
import json, sys
d = json.load(sys.stdin)
print(sum(c['hits'] for c in d['caches'] if c['model'] == '$M'))")
printf '{"edits": [{"site": "layers.1.mlp_out", "op": "scale", "scalar": 0.5}]}' >"$TMP/s1.json"
printf '{"edits": [{"site": "layers.1.mlp_out", "op": "scale", "scalar": 2.0}]}' >"$TMP/s2.json"
run "${A[@]}" -o json edits apply $M -f "$TMP/s1.json"
expect 0 "apply s1"
S1=$(printf '%s' "$OUT" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["edit_set"]["id"])')
KEY1=$(printf '%s' "$OUT" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["edit_set"]["backend_key"])')
run "${A[@]}" -o json edits apply $M -f "$TMP/s2.json"
expect 0 "apply s2"
json "
s = d['edit_set']
assert s['cache_hit'] is True and s['backend_key'] == '$KEY1', s" "same structure: cache hit, same backend key"
S2=$(printf '%s' "$OUT" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["edit_set"]["id"])')
run "${A[@]}" stats
expect 0 "stats table"
has "$OUT" "MODEL" "stats header"
printf '%s\n' "$OUT" | grep -Eq "^$M +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ " || fail "stats row for $M: $OUT"
run "${A[@]}" -o json stats
json "
c = [c for c in d['caches'] if c['model'] == '$M']
assert c, d
c = c[0]
assert c['hits'] >= $HITS0 + 1, (c, $HITS0)
assert c['entries'] >= 1 and c['misses'] >= 1 and c['bytes'] > 0, c
assert d['edit_sets'] >= 3, d" "stats: cache hits after two sets of one structure"
# Different values, different results.
run "${A[@]}" forward $M --tokens $IDS0 --top-k 0 --edit-set "$S1" --save-logits "$TMP/s1.npy"
expect 0 "forward on s1"
run "${A[@]}" forward $M --tokens $IDS0 --top-k 0 --edit-set "$S2" --save-logits "$TMP/s2.npy"
expect 0 "forward on s2"
py "assert not np.array_equal(np.load('$TMP/s1.npy'), np.load('$TMP/s2.npy'))" \
  "two sets sharing a backend keep their own values"

# Drop: then the id is gone for forward, get and drop.
run "${A[@]}" edits drop "$ID"
expect 0 "edits drop"
has "$OUT" "dropped $ID (freed " "drop message"
run "${A[@]}" forward $M --tokens 1,2 --edit-set "$ID"
expect 1 "forward on a dropped set"
has "$ERR" "nneditctl: NOT_FOUND: " "forward on a dropped set status"
has "$ERR" "$ID" "forward on a dropped set names it"
run "${A[@]}" edits get "$ID"
expect 1 "get of a dropped set"
has "$ERR" "NOT_FOUND" "get of a dropped set status"
run edits drop "$ID" -o json "${A[@]}"
expect 1 "drop twice"
json_err "assert e['code'] == 'NOT_FOUND' and '$ID' in e['message'], e" \
  "drop twice as JSON"
run "${A[@]}" edits list $M
hasnt "$OUT" "$ID" "list after drop"
for s in "$S1" "$S2"; do
  run "${A[@]}" edits drop "$s"
  expect 0 "drop $s"
done

stop_daemon

finish
