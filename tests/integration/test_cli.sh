#!/usr/bin/env bash
# test_cli.sh — nneditctl end to end: exit codes (0 ok, 1 error, 2 usage,
# 3 unreachable), global options anywhere on the line, errors as JSON with
# -o json, messages in the user's words, the table and JSON outputs
# (parsed with Python), numbers against the
# fixtures' references, and libnnedit's defences against a misbehaving
# server (a scripted fake that sends broken replies: the CLI must report
# them as errors, never crash or hang).
#
# Runs under ctest or by hand from the source tree with a build in ./build;
# the paths, helpers, daemon handling and cleanup are in cli_lib.sh.
# shellcheck disable=SC2119 # start_fake passes its arguments to the fake; this one takes none
set -u

TEST_NAME=test_cli
# shellcheck source=cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

need_built "$CTL" "$NNEDITD"
need_fixtures

# ---- usage errors (no daemon needed) -----------------------------------------

run
expect 2 "no command"
has "$ERR" "usage: nneditctl" "no command"
run --bogus health
expect 2 "unknown global option"
run frobnicate
expect 2 "unknown command"
has "$ERR" "unknown command 'frobnicate'" "unknown command"
run models
expect 2 "models without subcommand"
run models fly
expect 2 "unknown models subcommand"
run models load
expect 2 "models load without NAME"
has "$ERR" "usage: nneditctl models load NAME" "models load usage line"
run models load a b
expect 2 "models load with two names"
run models load x --dtype float128
expect 2 "unknown dtype"
has "$ERR" "float128" "unknown dtype"
run models load x --device
expect 2 "--device without value"
run modules
expect 2 "modules without MODEL"
run modules m --bogus
expect 2 "modules with an unknown option"
run modules m --module
expect 2 "modules --module without a value"
run modules m n
expect 2 "modules with two models"
run sites
expect 2 "sites without MODEL"
has "$ERR" "usage: nneditctl sites MODEL" "sites usage line"
run sites m --sites
expect 2 "sites --sites"
run forward m --tokens 1 --save
expect 2 "--save without a site"
run forward m --tokens 1 --save-dir "$TMP/sd"
expect 2 "--save-dir without --save"
has "$ERR" "--save-dir needs at least one --save" "--save-dir without --save message"
run forward m --tokens 1 --values
expect 2 "--values without --save"
run forward m --tokens 1 --save "$(printf 'x%.0s' $(seq 300))"
expect 2 "--save with a name longer than a tensor name"
has "$ERR" "longer than 255" "--save name bound"
run forward gpt2-script
expect 2 "forward without tokens"
run forward --tokens 1,2
expect 2 "forward without MODEL"
run forward m --tokens 1,x
expect 2 "unparsable token"
has "$ERR" "'1,x'" "unparsable token named"
run forward m --tokens 1,,2
expect 2 "empty element"
run forward m --tokens 99999999999999999999
expect 2 "token out of int64"
run forward m --tokens 1 --mask 1,3000000000
expect 2 "mask value out of int32"
run forward m --tokens 1 --top-k -1
expect 2 "negative top-k"
run forward m --tokens 1 --top-k many
expect 2 "unparsable top-k"
run forward m --tokens 1 --pad up
expect 2 "bad --pad"
run forward m --tokens 1 --logits some
expect 2 "bad --logits"
run forward m --tokens 1 --logits none --save-logits "$TMP/x.npy"
expect 2 "--save-logits with --logits none"
run --timeout abc health
expect 2 "unparsable timeout"
run --timeout -1 health
expect 2 "negative timeout"
run -o yaml health
expect 2 "bad output format"
run --addr
expect 2 "--addr without value"

run --help
expect 0 "--help"
has "$OUT" "usage: nneditctl" "--help text"
run --version
expect 0 "--version"
has "$OUT" "nneditctl " "--version text"
for c in "health" "models" "models list" "models load" "models unload" "modules" "sites" "forward"; do
  # shellcheck disable=SC2086
  run $c --help
  expect 0 "$c --help"
  has "$OUT" "usage: nneditctl $c" "$c --help text"
done

# ---- usage errors: the user's words, JSON with -o json -----------------------

# Values are named by the option as typed and the value as given, never by
# the wire's enum words.
run forward m --tokens 1 --pad up
has "$ERR" "--pad 'up': expected none, left or right" "--pad message"
hasnt "$ERR" "PADDING" "--pad message in the user's words"
run forward m --tokens 1 --pad=up
has "$ERR" "--pad 'up'" "--pad=up named as --pad"
run models load x --dtype float128
has "$ERR" "--dtype 'float128': unknown dtype" "--dtype message"
run forward m --tokens 1 --top-k many
has "$ERR" "--top-k 'many'" "--top-k message"
run forward m --tokens 1 --logits some
has "$ERR" "--logits 'some': expected none, last or all" "--logits message"
run --timeout abc health
has "$ERR" "--timeout 'abc'" "--timeout message"
# -o json anywhere makes a usage error one JSON line on stderr, code USAGE,
# with the command's usage; exit 2 all the same.
run forward m --tokens 1,x -o json
expect 2 "usage error in JSON mode"
json_err "
assert e['code'] == 'USAGE', e
assert e['message'] == \"--tokens '1,x': expected a comma-separated list of token ids (integers)\", e
assert e['usage'].startswith('nneditctl forward MODEL --tokens'), e" "usage error as JSON"
[ -z "$OUT" ] || fail "usage error in JSON mode printed on stdout: $OUT"
run -o json frobnicate
expect 2 "unknown command in JSON mode"
json_err "assert e['code'] == 'USAGE' and 'frobnicate' in e['message'], e
assert e['usage'].startswith('nneditctl [GLOBAL OPTIONS] COMMAND'), e" "unknown command as JSON"
run models list --output=json --bogus
expect 2 "unknown option after the command, JSON mode"
json_err "assert e['code'] == 'USAGE' and \"'--bogus'\" in e['message'], e" "unknown option as JSON"
run --tokens 1 forward m
expect 2 "a command's option before the command"
has "$ERR" "unknown option '--tokens'" "a command's option before the command"
run forward m --tokens 1 -o npy
expect 2 "-o npy on forward"
has "$ERR" "only trace writes .npy files" "-o npy on forward"
run --help
has "$OUT" "3  the daemon is unreachable" "--help documents exit 3"
has "$OUT" "\"USAGE\"" "--help documents the JSON usage error"
has "$OUT" "anywhere on the line" "--help says where global options go"

# ---- no daemon: connection errors, exit 3 --------------------------------------

run --addr 127.0.0.1:1 health
expect 3 "unreachable daemon"
has "$ERR" "nneditctl: UNAVAILABLE: " "unreachable daemon message"
has "$ERR" "127.0.0.1:1" "unreachable daemon address"
NNEDIT_ADDR=127.0.0.1:1 run models list
expect 3 "NNEDIT_ADDR is used"
has "$ERR" "127.0.0.1:1" "NNEDIT_ADDR named"
# Global options after the command, and the error as JSON.
run models list --addr 127.0.0.1:1 -o json
expect 3 "unreachable, global options after the command"
json_err "assert e['code'] == 'UNAVAILABLE' and '127.0.0.1:1' in e['message'], e" \
  "unreachable as JSON"
# A port that takes the TCP connection and never answers: connecting does not
# end, --connect-timeout does (exit 3, not a DEADLINE_EXCEEDED of the call).
"$PY" -c '
import os, socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("127.0.0.1:%d\n" % s.getsockname()[1])
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)' "$TMP/silent.ready" >"$TMP/silent.log" 2>&1 &
FPID=$!
SILENT=$(await_server "the silent listener" "$TMP/silent.ready" "$FPID" "$TMP/silent.log") || exit 1
SECONDS=0
run health --addr "$SILENT" --connect-timeout 1
expect 3 "a daemon that never answers"
has "$ERR" "no connection to $SILENT after 1000 ms" "connect timeout message"
[ "$SECONDS" -le 10 ] || fail "connect timeout took $SECONDS s"
run -o json stats --addr "$SILENT" --connect-timeout 0.5
expect 3 "a daemon that never answers, JSON"
json_err "assert e['code'] == 'UNAVAILABLE', e" "connect timeout as JSON"
stop_fake

# ---- a real daemon -----------------------------------------------------------

start_daemon

run "${A[@]}" health
expect 0 "health"
[ "$OUT" = "SERVING" ] || fail "health prints '$OUT'"
NNEDIT_ADDR=$ADDR run health nnedit.v1.Inference
expect 0 "health of a service via NNEDIT_ADDR"
run "${A[@]}" -o json health nnedit.v1.Models
expect 0 "health json"
json 'assert d == {"service": "nnedit.v1.Models", "status": "SERVING"}, d' "health json"
run health nnedit.v1.Models -o json "${A[@]}"
expect 0 "health, every global option after the command"
json 'assert d == {"service": "nnedit.v1.Models", "status": "SERVING"}, d' "health json, options after"
run "${A[@]}" health no.such.Service
expect 1 "health of an unknown service"
has "$ERR" "nneditctl: NOT_FOUND: " "unknown service status"
has "$ERR" "no.such.Service" "unknown service named"

run "${A[@]}" models load gpt2-script
expect 0 "models load"
has "$OUT" "state:        LOADED" "models load table"
has "$OUT" "vocab size:   1000" "models load table vocab"
# Loaded as float32 already: another dtype is refused, saying why (it used
# to exit 0 and stay float32).
run "${A[@]}" models load gpt2-script --dtype bfloat16
expect 1 "models load in another dtype"
has "$ERR" "FAILED_PRECONDITION" "reload refusal status"
has "$ERR" "loaded as float32 on cpu; unload it first to load it as bfloat16" "reload refusal says why"
run "${A[@]}" -o json models load llama-script --device cpu --dtype float32
expect 0 "models load json"
json '
m = d["model"]
assert m["name"] == "llama-script" and m["state"] == "LOADED", m
assert m["device"] == "cpu" and m["dtype"] == "float32" and m["vocab_size"] == 1000, m
assert m["param_bytes"] == 4 * m["param_count"] > 0, m
assert set(m) >= {"family", "export_kind", "error", "module_count", "max_batch",
                  "max_seq_len", "load_ms", "in_flight"}, sorted(m)' "models load json"
run models load no-such-model -o json "${A[@]}"
expect 1 "load of an unknown model, JSON mode"
json_err "assert e['code'] == 'NOT_FOUND' and 'no-such-model' in e['message'], e" \
  "a daemon error as JSON"
[ -z "$OUT" ] || fail "a daemon error in JSON mode printed on stdout: $OUT"
run "${A[@]}" models load no-such-model
expect 1 "load of an unknown model"
has "$ERR" "nneditctl: NOT_FOUND: " "unknown model status"
has "$ERR" "no-such-model" "unknown model named"

run models list "${A[@]}" -o json
expect 0 "models list -o json after the command"
json 'assert any(m["name"] == "gpt2-script" for m in d["models"]), d' "models list, options after"
run "${A[@]}" models list
expect 0 "models list"
for n in gpt2-script gpt2-trace llama-script llama-trace neox-script neox-trace; do
  has "$OUT" "$n" "models list names $n"
done
has "$OUT" "NAME" "models list header"
run "${A[@]}" -o json models list
expect 0 "models list json"
json '
names = {m["name"]: m for m in d["models"]}
assert d["server_version"].startswith("nneditd "), d["server_version"]
assert names["gpt2-script"]["state"] == "LOADED", names["gpt2-script"]
assert names["neox-trace"]["state"] in ("AVAILABLE", "LOADED")' "models list json"

# The tree: a line on the model (family and how it was found), the root as
# the model class, children indented by depth under their standard names
# with the raw path beside, identical layers folded; the JSON equal to what
# Python saw.
run "${A[@]}" modules gpt2-script
expect 0 "modules"
line() { printf '%s\n' "$OUT" | sed -n "$1p"; }
case "$(line 1)" in "gpt2-script: GPT2LMHeadModel, family gpt2 ("*"), 2 layers") ;;
  *) fail "modules model line: '$(line 1)'" ;; esac
case "$(line 2)" in GPT2LMHeadModel*"call 0") ;; *) fail "modules root line: '$(line 2)'" ;; esac
case "$(line 3)" in "  transformer "*GPT2Model*"call 1") ;; *) fail "modules line 3: '$(line 3)'" ;; esac
has "$OUT" "      layers.0 (transformer.h.0) " "depth-3 indent, standard name first"
printf '%s\n' "$OUT" | grep -Eq '^        layers\.0\.self_attn \(transformer\.h\.0\.attn\) +GPT2Attention +call [0-9]+' ||
  fail "modules: no 'layers.0.self_attn (transformer.h.0.attn)  GPT2Attention' line: $OUT"
has "$OUT" "    embed_tokens (transformer.wte) " "embed_tokens"
has "$OUT" "  lm_head " "lm_head (standard name = raw path)"
printf '%s\n' "$OUT" | grep -qx '      layers\.1  (1 more like layers\.0)' ||
  fail "modules: no fold line for layers.1: $OUT"
case "$OUT" in *transformer.h.1.*) fail "modules: layer 1 not folded" ;; esac
has "$OUT" "transformer.drop " "a module without a standard name shows its path"
has "$OUT" "not called" "a module never called"
printf '%s\n' "$OUT" | grep -q ' $' && fail "modules: trailing blanks"
run "${A[@]}" modules gpt2-script --all
expect 0 "modules --all"
has "$OUT" "        layers.1.self_attn (transformer.h.1.attn) " "--all shows layer 1"
case "$OUT" in *"more like"*) fail "modules --all folded something" ;; esac
run "${A[@]}" models load llama-script
expect 0 "models load llama-script"
run "${A[@]}" modules llama-script
expect 0 "modules llama"
has "$OUT" "layers.0.self_attn (model.layers.0.self_attn) " "llama standard names"
has "$OUT" "family llama (" "llama family"
run "${A[@]}" models load neox-script
expect 0 "models load neox-script"
run "${A[@]}" modules neox-script
expect 0 "modules neox"
has "$OUT" "layers.0.self_attn (gpt_neox.layers.0.attention) " "neox standard names"
has "$OUT" "family gpt_neox (" "neox family"
for spelling in layers.0.self_attn transformer.h.0.attn; do
  run "${A[@]}" modules gpt2-script --module $spelling
  expect 0 "modules --module $spelling"
  case "$(line 2)" in "layers.0.self_attn (transformer.h.0.attn)  "*GPT2Attention*) ;;
    *) fail "modules --module $spelling: first module line '$(line 2)'" ;; esac
  has "$OUT" "  transformer.h.0.attn.c_attn " "modules --module $spelling: children"
  case "$OUT" in *ln_2*|*mlp*) fail "modules --module $spelling: outside the subtree: $OUT" ;; esac
done
run "${A[@]}" modules gpt2-script --module layers.0.self_atn
expect 1 "modules --module with a typo"
has "$ERR" "nneditctl: NOT_FOUND: " "modules --module typo status"
has "$ERR" "layers.0.self_attn" "modules --module typo suggestion"
run "${A[@]}" modules gpt2-script --module layers.99.mlp
expect 1 "modules --module out of range"
has "$ERR" "nneditctl: INVALID_ARGUMENT: " "modules --module out of range status"
run "${A[@]}" -o json modules gpt2-script
expect 0 "modules json"
json "
ref = json.load(open('$FIX/gpt2-script/ref/manifest.json'))['modules']
got = d['modules']
assert [m['path'] for m in got] == [m['path'] for m in ref]
assert [m['class_name'] for m in got] == [m['class'] for m in ref]
assert [m['call_index'] for m in got] == [m['call_index'] for m in ref]
assert got[0]['parent'] == -1 and got[0]['depth'] == 0
for m in got[1:]:
    assert m['depth'] == got[m['parent']]['depth'] + 1, m
assert d['model']['module_count'] == len(ref)
by = {m['path']: m for m in got}
assert 'layers.0.self_attn' in by['transformer.h.0.attn']['standard_names'], by['transformer.h.0.attn']
assert 'layers.1' in by['transformer.h.1']['standard_names']
assert all(isinstance(m['aliases'], list) for m in got)
assert d['model']['family'] == 'gpt2' and d['model']['family_reason'], d['model']
assert d['model']['layer_count'] == 2 and isinstance(d['model']['warnings'], list)
sites = {s['name']: s for s in d['sites']}
s = sites['layers.1.resid_post']
assert s['tl_name'] == 'blocks.1.hook_resid_post' and s['available'], s
assert s['module'] == 'transformer.h.1' and s['kind'] == 'output', s" "modules json vs manifest"

# The standard sites, folded per layer.
run "${A[@]}" sites gpt2-script
expect 0 "sites"
has "$OUT" "SITE" "sites header"
printf '%s\n' "$OUT" | grep -Eq '^layers\.0\.resid_post +blocks\.0\.hook_resid_post +transformer\.h\.0\.' ||
  fail "sites: no layers.0.resid_post line: $OUT"
printf '%s\n' "$OUT" | grep -Eq '^embed +hook_embed +transformer\.wte\.' || fail "sites: no embed line: $OUT"
printf '%s\n' "$OUT" | grep -qx 'layers\.1  (1 more like layers\.0)' || fail "sites: no fold line: $OUT"
printf '%s\n' "$OUT" | grep -q ' $' && fail "sites: trailing blanks"
run "${A[@]}" sites gpt2-script --all
expect 0 "sites --all"
has "$OUT" "layers.1.resid_post " "sites --all shows layer 1"
run "${A[@]}" -o json sites gpt2-script
expect 0 "sites json"
json "
names = [s['name'] for s in d['sites']]
assert 'layers.0.self_attn.pattern' in names and 'logits' in names, names
for s in d['sites']:
    assert s['available'] or s['reason'], s" "sites json"
run "${A[@]}" modules no-such-model
expect 1 "modules of an unknown model"
has "$ERR" "nneditctl: NOT_FOUND: " "modules unknown model"

# Forward: the reference batch, all logits saved and compared bit for bit
# with the archive run in Python; top-k from those logits.
run "${A[@]}" forward gpt2-script --tokens $IDS0 --tokens $IDS1 --top-k 5 \
  --save-logits "$TMP/logits.npy"
expect 0 "forward table"
has "$OUT" "batch 2  seq_len 7" "forward table header"
has "$OUT" "row 1  position 6" "forward table rows"
has "$OUT" "saved to $TMP/logits.npy" "forward table saved"
run "${A[@]}" -o json forward gpt2-script --tokens $IDS0 --tokens $IDS1 --top-k 5 \
  --save-logits "$TMP/logits.npy"
expect 0 "forward json"
json "
import numpy as np
ref = np.load('$FIX/gpt2-script/ref/logits_jit.npy')
got = np.load('$TMP/logits.npy')
assert got.dtype == np.float32 and got.shape == (2, 7, 1000), (got.dtype, got.shape)
assert np.array_equal(got, ref), float(np.abs(got - ref).max())
assert (d['model'], d['batch'], d['seq_len']) == ('gpt2-script', 2, 7), d
assert d['logits'] == {'name': 'logits', 'dtype': 'float32', 'shape': [2, 7, 1000],
                       'nbytes': 56000, 'file': '$TMP/logits.npy'}, d['logits']
assert set(d['timing']) == {'queue_ms', 'compute_ms', 'total_ms'}
for r, row in enumerate(d['rows']):
    assert row['row'] == r and row['position'] == 6
    v = ref[r, 6]
    want = np.argsort(-v, kind='stable')[:5]
    assert [t['token_id'] for t in row['top']] == list(want), (row, want)
    assert [np.float32(t['logit']) for t in row['top']] == list(v[want])
    p = np.exp(v.astype(np.float64) - v.max()); p /= p.sum()
    assert np.allclose([t['prob'] for t in row['top']], p[want], rtol=1e-5, atol=0)" \
  "forward json vs reference"

# The masked batch, with the mask given and with left padding by the daemon.
run "${A[@]}" forward gpt2-script --tokens 11,42,7,500,999 --tokens 0,0,123,45,6 \
  --mask 1,1,1,1,1 --mask 0,0,1,1,1 --top-k 1 --logits all --save-logits "$TMP/m1.npy"
expect 0 "forward with a mask"
run "${A[@]}" -o json forward gpt2-script --tokens 11,42,7,500,999 --tokens 123,45,6 \
  --pad left --top-k 1 --save-logits "$TMP/m2.npy"
expect 0 "forward with left padding"
json "
import numpy as np
ref = np.load('$FIX/gpt2-script/ref/logits_masked_jit.npy')
assert np.array_equal(np.load('$TMP/m1.npy'), ref)
assert np.array_equal(np.load('$TMP/m2.npy'), ref)
assert [r['position'] for r in d['rows']] == [4, 4], d['rows']" "masked forward vs reference"
run "${A[@]}" -o json forward gpt2-script --tokens 5,6,7,8,9 --tokens 10,11 --pad right \
  --top-k 0 --logits last
expect 0 "forward with right padding"
json "
assert [r['position'] for r in d['rows']] == [4, 1], d['rows']
assert all(r['top'] == [] for r in d['rows'])
assert d['logits']['shape'] == [2, 1000] and d['logits']['file'] is None, d['logits']" \
  "right padding json"
run "${A[@]}" -o json forward gpt2-script --tokens 1,2,3
expect 0 "forward without logits"
json 'assert d["logits"] is None and len(d["rows"][0]["top"]) == 5, d' "default top-k 5, no logits"

# Saved sites: one site under several spellings, written as .npy files
# that numpy reads with the right shape and the values Python captured.
run "${A[@]}" forward gpt2-script --tokens $IDS0 --tokens $IDS1 --top-k 1 \
  --save transformer.h.0.output --save layers.0.resid_post --save blocks.0.hook_resid_post \
  --save layers.0.attn_out --save layers.0.self_attn.pattern --save-dir "$TMP/saves"
expect 0 "forward --save --save-dir"
has "$OUT" "saved:" "forward --save table"
printf '%s\n' "$OUT" | grep -Eq '^  layers\.0\.resid_post +float32 +\[2, 7, 64\] +-> '"$TMP"'/saves/layers\.0\.resid_post\.npy$' ||
  fail "forward --save: no line for layers.0.resid_post: $OUT"
"$PY" -c "
import numpy as np
d = '$TMP/saves/'
io = '$FIX/gpt2-script/ref/io/'
a = [np.load(d + n + '.npy') for n in ('transformer.h.0.output', 'layers.0.resid_post', 'blocks.0.hook_resid_post')]
for x in a:
    assert x.dtype == np.float32 and x.shape == (2, 7, 64), (x.dtype, x.shape)
    assert np.array_equal(x, a[0])
ref = np.load(io + 'transformer.h.0.output.0.npy')
assert np.abs(a[0] - ref).max() <= 1e-5, np.abs(a[0] - ref).max()
att = np.load(d + 'layers.0.attn_out.npy')
assert np.abs(att - np.load(io + 'transformer.h.0.attn.output.0.npy')).max() <= 1e-5
p = np.load(d + 'layers.0.self_attn.pattern.npy')
assert p.shape == (2, 4, 7, 7) and np.allclose(p.sum(-1), 1, atol=1e-5), p.shape
" 2>"$TMP/pyerr" || fail "forward --save-dir files: $(tail -3 "$TMP/pyerr")"
run "${A[@]}" -o json forward gpt2-script --tokens $IDS0 --tokens $IDS1 --top-k 1 \
  --save layers.0.self_attn.pattern --save lm_head.output --values
expect 0 "forward --save json --values"
json "
import numpy as np
s = d['saved']
assert [t['name'] for t in s] == ['layers.0.self_attn.pattern', 'lm_head.output'], s
assert s[0]['dtype'] == 'float32' and s[0]['shape'] == [2, 4, 7, 7] and s[0]['file'] is None
p = np.array(s[0]['values'])
assert p.shape == (2, 4, 7, 7) and np.allclose(p.sum(-1), 1, atol=1e-5)
assert s[1]['shape'] == [2, 7, 1000] and s[1]['values'] is None, s[1]['shape']" "forward --save json"
run "${A[@]}" forward gpt2-script --tokens 1,2 --save transformer.h.0.atn.output
expect 1 "forward --save in an unknown module"
has "$ERR" "nneditctl: NOT_FOUND: " "unknown module status"
has "$ERR" "transformer.h.0.attn" "unknown module suggestion"
run "${A[@]}" forward gpt2-script --tokens 1,2 --save -o
expect 1 "--save -o: the value is the site's, not a global -o"
has "$ERR" "nneditctl: NOT_FOUND: " "--save -o asks for site '-o'"
run "${A[@]}" forward gpt2-script --tokens 1,2 --save layers.0.resid_pots
expect 1 "forward --save of an unknown site"
has "$ERR" "nneditctl: NOT_FOUND: " "unknown site status"
has "$ERR" "layers.0.resid_post" "unknown site suggestion"
run "${A[@]}" forward gpt2-script --tokens 1,2 --save layers.99.resid_post
expect 1 "forward --save out of range"
has "$ERR" "nneditctl: INVALID_ARGUMENT: " "site out of range status"

# Forward errors: named by the daemon, status name on stderr, exit 1.
run "${A[@]}" forward no-such-model --tokens 1,2
expect 1 "forward of an unknown model"
has "$ERR" "nneditctl: NOT_FOUND: " "forward unknown model"
run "${A[@]}" forward gpt2-script --tokens 1,1000
expect 1 "token id over the vocabulary"
has "$ERR" "nneditctl: INVALID_ARGUMENT: " "token id status"
has "$ERR" "input_ids[0][1]" "token id field"
run "${A[@]}" forward gpt2-script --tokens 1,2 --tokens 3
expect 1 "ragged rows without padding"
has "$ERR" "INVALID_ARGUMENT" "ragged rows status"
run "${A[@]}" forward gpt2-script --tokens 1,2 --mask 1
expect 1 "mask shape mismatch"
has "$ERR" "attention_mask[0]" "mask field"
run "${A[@]}" forward gpt2-script --tokens 1,2 --top-k 1001
expect 1 "top-k over the limit"
has "$ERR" "top_k" "top-k field"
# The deadline counts from the call, once connected: the largest batch the
# fixture takes, all its logits streamed back, cannot be done in 1 ms.
ROW64=$(seq -s, 1 64)
ROWS16=()
for _ in $(seq 16); do ROWS16+=(--tokens "$ROW64"); done
run "${A[@]}" --timeout 0.001 forward gpt2-script "${ROWS16[@]}" --logits all
expect 1 "a 1 ms deadline"
has "$ERR" "nneditctl: DEADLINE_EXCEEDED: " "deadline status"

run "${A[@]}" -o json models unload llama-script
expect 0 "models unload"
json 'assert d["model"]["state"] == "AVAILABLE", d' "models unload json"
run "${A[@]}" forward llama-script --tokens 1
expect 1 "forward of an unloaded model"
has "$ERR" "FAILED_PRECONDITION" "unloaded model status"

# SIGTERM drains and exits 0 (bounded wait).
if stop_daemon; then
  [ "$DAEMON_RC" = 0 ] || { fail "nneditd exited $DAEMON_RC after SIGTERM"; cat "$TMP/nneditd.log" >&2; }
fi

# ---- a misbehaving server ------------------------------------------------------
#
# A fake daemon in Python answering with crafted bytes. Each model name picks
# one breach of the protocol; the CLI must exit 1 with the status libnnedit
# gives it (INTERNAL, or RESOURCE_EXHAUSTED for a client limit) and a message
# that says what was wrong. "ooo" is legal protobuf that no encoder we know
# writes (a chunk's data before its header): it must work.

cat >"$TMP/fake.py" <<'PYEOF'
import sys, os, struct, time
from concurrent import futures
from fakeserve import serve, field
sys.path.insert(0, os.environ["NNE_PY_GEN"])
import grpc
from nnedit.v1 import inference_pb2 as ip, models_pb2 as mp, tensor_pb2 as tp

def result(batch=1, rows=None, logits=True):
    rows = rows if rows is not None else [ip.RowTopK(position=0, top=[ip.TokenScore(token_id=1, logit=1.0, prob=0.5)])]
    r = ip.ForwardResult(batch=batch, seq_len=1, rows=rows, logits_tensor="logits" if logits else "")
    return ip.ForwardResponse(result=r).SerializeToString()

DATA = bytes(range(256)) * 4          # 1024 bytes = float32 [16, 16]

def chunk(**kw):
    return ip.ForwardResponse(chunk=tp.TensorChunk(**kw)).SerializeToString()

def good_chunks(n=256):
    out = []
    for off in range(0, len(DATA), n):
        kw = dict(name="logits", offset=off, data=DATA[off:off + n], last=off + n >= len(DATA))
        if off == 0:
            kw.update(dtype=tp.DTYPE_FLOAT32, shape=[16, 16], total_bytes=len(DATA))
        out.append(chunk(**kw))
    return out

def forward(req_bytes, ctx):
    req = ip.ForwardRequest.FromString(req_bytes)
    m = req.model
    if m == "ok":
        yield result(); yield from good_chunks()
    elif m == "ooo":                    # data field before the header fields
        yield result()
        for off in range(0, len(DATA), 300):
            n = min(300, len(DATA) - off)
            hdr = tp.TensorChunk(name="logits", offset=off, last=off + n == len(DATA))
            if off == 0:
                hdr.dtype = tp.DTYPE_FLOAT32; hdr.shape.extend([16, 16]); hdr.total_bytes = len(DATA)
            inner = field(6, DATA[off:off + n]) + hdr.SerializeToString()
            yield field(2, inner)
    elif m == "gap":
        yield result(); c = good_chunks(); yield c[0]; yield c[2]
    elif m == "huge":
        yield result(); yield chunk(name="logits", dtype=tp.DTYPE_FLOAT32, shape=[1 << 20, 1 << 20], total_bytes=1 << 42, data=b"x")
    elif m == "overrun":
        yield result(); yield chunk(name="logits", dtype=tp.DTYPE_FLOAT32, shape=[2], total_bytes=8, data=b"0123456789ab", last=True)
    elif m == "badshape":
        yield result(); yield chunk(name="logits", dtype=tp.DTYPE_FLOAT32, shape=[3, 3], total_bytes=1024, data=DATA, last=True)
    elif m == "negshape":
        yield result(); yield chunk(name="logits", dtype=tp.DTYPE_FLOAT32, shape=[-4, -64], total_bytes=1024, data=DATA, last=True)
    elif m == "dtype":
        yield result(); yield chunk(name="logits", dtype=99, shape=[1024], total_bytes=1024, data=DATA, last=True)
    elif m == "cut":
        yield result(); yield good_chunks()[0]
    elif m == "nolast":
        yield result(); yield from good_chunks()[:-1]
        yield chunk(name="logits", offset=768, data=DATA[768:], last=False)
    elif m == "othername":
        yield result(); c = good_chunks(); yield c[0]; yield chunk(name="other", offset=256, data=DATA[256:], last=True)
    elif m == "chunkfirst":
        yield good_chunks()[0]
    elif m == "tworesults":
        yield result(); yield result()
    elif m == "rows":
        yield result(batch=5, rows=[ip.RowTopK()] * 5, logits=False)
    elif m == "topk":
        yield result(rows=[ip.RowTopK(top=[ip.TokenScore(token_id=i) for i in range(50)])], logits=False)
    elif m == "unasked":
        yield result(logits=False); yield from good_chunks()
    elif m == "garbage":
        yield b"\xff\xff\xff\xff\x0f\x12"
    elif m == "empty":
        yield result(); yield b""
    elif m == "noresult":
        return
    elif m.startswith("saved"):        # saves: [2, 3] float32 0..5 each
        names = list(req.save)
        listed = {"savedwrong": names[::-1], "savednone": []}.get(m, names)
        r = ip.ForwardResult(batch=1, seq_len=1, saved=listed)
        yield ip.ForwardResponse(result=r).SerializeToString()
        order = names[::-1] if m == "savedorder" else names
        if m == "savedmissing":
            order = order[:-1]
        vals = b"".join(struct.pack("<f", float(i)) for i in range(6))
        for n in order:
            yield chunk(name=n, dtype=tp.DTYPE_FLOAT32, shape=[2, 3], total_bytes=24, data=vals, last=True)
    elif m == "endless":                 # a stream that never ends: the deadline does
        yield result()
        while ctx.is_active():
            time.sleep(0.05)
            yield chunk(name="logits", dtype=tp.DTYPE_FLOAT32, shape=[1 << 20], total_bytes=4 << 20, data=b"", offset=0)

def describe(req_bytes, ctx):
    req = mp.DescribeModelRequest.FromString(req_bytes)
    mods = [mp.Module(path="", class_name="Root", parent=-1, depth=0),
            mp.Module(path="a", class_name="A", parent=0, depth=1)]
    if req.name == "badparent":
        mods.append(mp.Module(path="a.b", class_name="B", parent=7, depth=2))
    elif req.name == "baddepth":
        mods.append(mp.Module(path="a.b", class_name="B", parent=1, depth=4000000000))
    elif req.name == "tworoots":
        mods.append(mp.Module(path="x", class_name="X", parent=-1, depth=0))
    elif req.name == "longpath":
        mods.append(mp.Module(path="p" * 600, class_name="B", parent=1, depth=2))
    elif req.name == "many":
        mods += [mp.Module(path="m%d" % i, class_name="M", parent=0, depth=1) for i in range(70000)]
    elif req.name == "manywarnings":
        return mp.DescribeModelResponse(model=mp.ModelInfo(name=req.name, warnings=["w"] * 5000),
                                        modules=mods).SerializeToString()
    elif req.name == "longwarning":
        return mp.DescribeModelResponse(model=mp.ModelInfo(name=req.name, warnings=["w" * 5000]),
                                        modules=mods).SerializeToString()
    elif req.name == "manyaliases":
        mods[1].aliases.extend("a%d" % i for i in range(65))
    elif req.name == "badview":
        return mp.DescribeModelResponse(model=mp.ModelInfo(name=req.name), modules=mods, sites=[
            mp.Site(name="layers.0.self_attn.q", available=True, view_parts=3, view_part=3)]).SerializeToString()
    elif req.name == "names":
        return names_reply(req)
    return mp.DescribeModelResponse(model=mp.ModelInfo(name=req.name), modules=mods).SerializeToString()

def names_reply(req):
    """A family model: layers 1 and 2 like layer 0, layer 3 not; standard
    names, aliases, sites, a warning. With `module`, the subtree of h.0 as a
    daemon sends it (the root keeps its depth in the model)."""
    M = mp.Module
    mods = [M(path="", class_name="Root", parent=-1, depth=0),
            M(path="h", class_name="ModuleList", parent=0, depth=1, standard_names=["layers"])]
    for i in range(4):
        b = len(mods)
        mods.append(M(path="h.%d" % i, class_name="OddBlock" if i == 3 else "Block", parent=1, depth=2,
                      standard_names=["layers.%d" % i], aliases=["block%d" % i], call_index=i))
        mods.append(M(path="h.%d.attn" % i, class_name="Attn", parent=b, depth=3,
                      standard_names=["layers.%d.self_attn" % i], aliases=["blk%d.attention" % i, "att%d" % i],
                      param_count=12))
        mods.append(M(path="h.%d.attn.proj" % i, class_name="Linear", parent=b + 1, depth=4, param_count=4))
    mods.append(M(path="head", class_name="Linear", parent=0, depth=1, standard_names=["lm_head", "unembed"]))
    sites = [mp.Site(name="embed", tl_name="hook_embed", available=True, canonical="wte.output.0",
                     module="wte", kind=mp.SITE_KIND_OUTPUT)]
    for i in range(4):
        sites.append(mp.Site(name="layers.%d.resid_post" % i, tl_name="blocks.%d.hook_resid_post" % i,
                             available=True, canonical="h.%d.output.0" % i, module="h.%d" % i,
                             kind=mp.SITE_KIND_OUTPUT))
        sites.append(mp.Site(name="layers.%d.self_attn.q" % i, tl_name="blocks.%d.attn.hook_q" % i,
                             available=True, canonical="h.%d.attn.proj.output.0" % i,
                             module="h.%d.attn.proj" % i, kind=mp.SITE_KIND_OUTPUT, view_parts=3, view_part=0,
                             view_heads=True))
        sites.append(mp.Site(name="layers.%d.self_attn.pattern" % i, tl_name="blocks.%d.attn.hook_pattern" % i,
                             available=False, reason="layers.%d.self_attn: not eager attention" % i))
    sites.append(mp.Site(name="logits", available=True, canonical="head.output.0", module="head",
                         kind=mp.SITE_KIND_OUTPUT))
    if req.module:
        if req.module not in ("layers.0", "h.0", "block0"):
            raise_not_found(req.module)
        mods = [M(path=m.path, class_name=m.class_name, parent=-1 if m.path == "h.0" else m.parent - 2,
                  depth=m.depth, standard_names=m.standard_names, aliases=m.aliases)
                for m in mods if m.path == "h.0" or m.path.startswith("h.0.")]
        sites = [s for s in sites if s.module.startswith("h.0")]
    info = mp.ModelInfo(name="names", state=mp.MODEL_STATE_LOADED, family="gpt2", family_reason="class Root",
                        layer_count=4, warnings=["names: 'x.{i}' matches no module"])
    return mp.DescribeModelResponse(model=info, modules=mods, sites=sites).SerializeToString()

class NotFound(Exception):
    pass

def raise_not_found(name):
    raise NotFound(name)

def describe_or_abort(req_bytes, ctx):
    try:
        return describe(req_bytes, ctx)
    except NotFound as e:
        ctx.abort(grpc.StatusCode.NOT_FOUND, "module: no module '%s' (closest: layers.0)" % e)

def list_models(req_bytes, ctx):
    if os.environ.get("FAKE_LIST") == "many":
        return mp.ListModelsResponse(models=[mp.ModelInfo(name="m%d" % i) for i in range(5000)]).SerializeToString()
    return mp.ListModelsResponse(models=[mp.ModelInfo(name="x" * 300)]).SerializeToString()

def load(req_bytes, ctx):
    return b""                          # a reply without the model

server = grpc.server(futures.ThreadPoolExecutor(4), options=[("grpc.max_send_message_length", 1 << 26)])
server.add_generic_rpc_handlers([
    grpc.method_handlers_generic_handler("nnedit.v1.Inference", {
        "Forward": grpc.unary_stream_rpc_method_handler(forward)}),
    grpc.method_handlers_generic_handler("nnedit.v1.Models", {
        "Describe": grpc.unary_unary_rpc_method_handler(describe_or_abort),
        "List": grpc.unary_unary_rpc_method_handler(list_models),
        "Load": grpc.unary_unary_rpc_method_handler(load)}),
    grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(lambda b, c: b"\x08\x01\xff")}),
])
serve(server)
PYEOF

start_fake
run "${F[@]}" forward ok --tokens 1 --save-logits "$TMP/ok.npy"
expect 0 "fake: a well-formed stream"
run "${F[@]}" -o json forward ooo --tokens 1 --save-logits "$TMP/ooo.npy"
expect 0 "fake: data before header"
json "
import numpy as np
a = np.load('$TMP/ooo.npy'); b = np.load('$TMP/ok.npy')
assert a.shape == (16, 16) and np.array_equal(a.view(np.uint8), b.view(np.uint8))
assert a.tobytes() == bytes(range(256)) * 4" "fake: reassembly of both orders"

# model  status  needle
while read -r model status needle; do
  run "${F[@]}" --timeout 10 forward "$model" --tokens 1 --logits all
  expect 1 "fake forward $model"
  has "$ERR" "nneditctl: $status: " "fake forward $model status"
  has "$ERR" "$needle" "fake forward $model message"
done <<'EOF'
gap INTERNAL offset
huge RESOURCE_EXHAUSTED max_tensor_bytes
overrun INTERNAL 12 bytes of 8
badshape INTERNAL numel
negshape INTERNAL shape
dtype INTERNAL dtype
cut INTERNAL cut short
nolast INTERNAL not marked last
othername INTERNAL other
chunkfirst INTERNAL before the ForwardResult
tworesults INTERNAL second ForwardResult
rows INTERNAL more rows
garbage INTERNAL undecodable
empty INTERNAL members
noresult INTERNAL without a result
EOF
run "${F[@]}" forward topk --tokens 1 --top-k 3
expect 1 "fake forward topk"
has "$ERR" "more scores than top_k" "fake: more scores than asked"
run "${F[@]}" forward unasked --tokens 1
expect 1 "fake forward unasked"
has "$ERR" "no logits were asked for" "fake: unasked tensor"
SECONDS=0
run "${F[@]}" --timeout 1 forward endless --tokens 1 --logits all
expect 1 "fake forward endless"
has "$ERR" "DEADLINE_EXCEEDED" "fake: endless stream ends at the deadline"
[ "$SECONDS" -le 10 ] || fail "fake: endless stream took $SECONDS s"

while read -r model status needle; do
  run "${F[@]}" modules "$model"
  expect 1 "fake modules $model"
  has "$ERR" "nneditctl: $status: " "fake modules $model status"
  has "$ERR" "$needle" "fake modules $model message"
done <<'EOF'
badparent INTERNAL parent 7
baddepth INTERNAL depth
tworoots INTERNAL parent -1
longpath INTERNAL modules[2]
many RESOURCE_EXHAUSTED 65536
EOF
run "${F[@]}" modules fine
expect 0 "fake modules fine"
while read -r model status needle; do
  run "${F[@]}" modules "$model"
  expect 1 "fake modules $model"
  has "$ERR" "nneditctl: $status: " "fake modules $model status"
  has "$ERR" "$needle" "fake modules $model message"
done <<'EOF'
manywarnings RESOURCE_EXHAUSTED 4096 warnings
longwarning INTERNAL warnings
manyaliases RESOURCE_EXHAUSTED more than 64
badview INTERNAL view part 3 of 3
EOF

# The tree and the sites of a family model, folded and not, exactly.
run "${F[@]}" modules names
expect 0 "fake modules names"
cat >"$TMP/want" <<'EOF'
names: Root, family gpt2 (class Root), 4 layers
Root                                             call 0
  layers (h)                         ModuleList  call 0
    layers.0 (h.0)                   Block       call 0     aka block0
      layers.0.self_attn (h.0.attn)  Attn        call 0     12 params  aka blk0.attention, att0
        h.0.attn.proj                Linear      call 0     4 params
    layers.1 .. layers.2  (2 more like layers.0)
    layers.3 (h.3)                   OddBlock    call 3     aka block3
      layers.3.self_attn (h.3.attn)  Attn        call 0     12 params  aka blk3.attention, att3
        h.3.attn.proj                Linear      call 0     4 params
  lm_head (head)                     Linear      call 0     aka unembed
generation: recomputes each step, eos none
warnings:
  names: 'x.{i}' matches no module
EOF
printf '%s\n' "$OUT" | diff "$TMP/want" - >"$TMP/diff" || fail "fake modules names: $(cat "$TMP/diff")"
run "${F[@]}" modules names --all
expect 0 "fake modules names --all"
has "$OUT" "    layers.2 (h.2)                   Block       call 2     aka block2" "--all: layer 2"
case "$OUT" in *"more like"*) fail "fake modules --all folded" ;; esac
for spelling in layers.0 h.0 block0; do
  run "${F[@]}" modules names --module $spelling
  expect 0 "fake modules --module $spelling"
  case "$(printf '%s\n' "$OUT" | sed -n 2p)" in "layers.0 (h.0)  "*Block*"aka block0") ;;
    *) fail "fake modules --module $spelling: subtree root not at the left: $OUT" ;; esac
  has "$OUT" "; module $spelling (h.0)" "fake modules --module $spelling: model line"
  has "$OUT" "
  layers.0.self_attn (h.0.attn) " "fake modules --module $spelling: child indent"
done
run "${F[@]}" modules names --module nope
expect 1 "fake modules --module nope"
has "$ERR" "nneditctl: NOT_FOUND: module: no module 'nope'" "fake modules --module NOT_FOUND"
run "${F[@]}" sites names
expect 0 "fake sites names"
cat >"$TMP/want" <<'EOF'
names: Root, family gpt2 (class Root), 4 layers
SITE                        TRANSFORMERLENS             WHERE
embed                       hook_embed                  wte.output.0
layers.0.resid_post         blocks.0.hook_resid_post    h.0.output.0
layers.0.self_attn.q        blocks.0.attn.hook_q        h.0.attn.proj.output.0 [part 0 of 3 per head]
layers.0.self_attn.pattern  blocks.0.attn.hook_pattern  unavailable: layers.0.self_attn: not eager attention
layers.1 .. layers.3  (3 more like layers.0)
logits                      -                           head.output.0
generation: recomputes each step, eos none
warnings:
  names: 'x.{i}' matches no module
EOF
printf '%s\n' "$OUT" | diff "$TMP/want" - >"$TMP/diff" || fail "fake sites names: $(cat "$TMP/diff")"
run "${F[@]}" sites names --all
expect 0 "fake sites names --all"
has "$OUT" "layers.3.self_attn.pattern  blocks.3.attn.hook_pattern  unavailable: layers.3.self_attn: not eager attention" "sites --all: layer 3"
run "${F[@]}" modules names --sites
expect 0 "fake modules --sites"
has "$OUT" "layers.1 .. layers.3  (3 more like layers.0)" "modules --sites: the sites"
run "${F[@]}" -o json modules names
expect 0 "fake modules names json"
json '
by = {m["path"]: m for m in d["modules"]}
assert by["h.0.attn"]["standard_names"] == ["layers.0.self_attn"], by["h.0.attn"]
assert by["h.0.attn"]["aliases"] == ["blk0.attention", "att0"]
assert by["head"]["standard_names"] == ["lm_head", "unembed"]
m = d["model"]
assert (m["family"], m["family_reason"], m["layer_count"]) == ("gpt2", "class Root", 4), m
assert m["warnings"] == ["names: '"'"'x.{i}'"'"' matches no module"], m["warnings"]
q = [s for s in d["sites"] if s["name"] == "layers.2.self_attn.q"][0]
assert q["view"] == {"parts": 3, "part": 0, "heads": True} and q["kind"] == "output", q
p = [s for s in d["sites"] if s["name"] == "layers.2.self_attn.pattern"][0]
assert not p["available"] and p["reason"].endswith("not eager attention") and p["view"] is None, p
assert len(d["sites"]) == 14 and d["module"] is None' "fake modules names json"

# Saved tensors: named as asked, written under sanitized names, values.
run "${F[@]}" forward saved --tokens 1 --top-k 0 --save 'a/b:c#0' --save x --save x --save-dir "$TMP/fs"
expect 0 "fake forward saved"
has "$OUT" "-> $TMP/fs/a_b_c_0.npy" "fake saved: sanitized file"
"$PY" -c "
import numpy as np
for n in ('a_b_c_0', 'x'):
    a = np.load('$TMP/fs/%s.npy' % n)
    assert a.shape == (2, 3) and a.tolist() == [[0, 1, 2], [3, 4, 5]], a
" 2>"$TMP/pyerr" || fail "fake saved files: $(tail -3 "$TMP/pyerr")"
[ "$(ls "$TMP/fs" | wc -l)" = 2 ] || fail "fake saved: files $(ls "$TMP/fs")"
run "${F[@]}" -o json forward saved --tokens 1 --top-k 0 --save 'a:b' --save 'a_b' --save-dir "$TMP/fs2" --values
expect 0 "fake forward saved json"
json "
s = d['saved']
assert [t['name'] for t in s] == ['a:b', 'a_b'], s
assert s[0]['file'] == '$TMP/fs2/a_b.npy' and s[1]['file'] == '$TMP/fs2/a_b~2.npy', s
assert s[0]['values'] == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]] and s[0]['shape'] == [2, 3], s
assert d['logits'] is None" "fake saved json"
run "${F[@]}" forward saved --tokens 1 --top-k 0 --save q --values
expect 0 "fake forward saved --values table"
has "$OUT" "    [[0.0,1.0,2.0],[3.0,4.0,5.0]]" "fake saved --values table"
run "${F[@]}" forward saved --tokens 1 --save q --save-dir /proc/nope/x
expect 1 "fake forward --save-dir that cannot be made"
has "$ERR" "--save-dir '/proc/nope/x'" "--save-dir error names it"
while read -r model status needle; do
  run "${F[@]}" forward "$model" --tokens 1 --top-k 0 --save s1 --save s2
  expect 1 "fake forward $model"
  has "$ERR" "nneditctl: $status: " "fake forward $model status"
  has "$ERR" "$needle" "fake forward $model message"
done <<'EOF'
savedwrong INTERNAL result.saved[0] is 's2'
savednone INTERNAL without save support
savedmissing INTERNAL save[1] 's2' was asked for and not sent
savedorder INTERNAL expected 's1'
EOF
run "${F[@]}" models list
expect 1 "fake: a name over its bound"
has "$ERR" "nneditctl: INTERNAL: " "fake: name over its bound"
run "${F[@]}" models load x
expect 1 "fake: load reply without a model"
has "$ERR" "no model" "fake: load reply without a model"
run "${F[@]}" health
expect 1 "fake: undecodable health reply"
has "$ERR" "INTERNAL" "fake: undecodable health reply"
stop_fake

FAKE_LIST=many start_fake
run "${F[@]}" models list
expect 1 "fake: too many models"
has "$ERR" "nneditctl: RESOURCE_EXHAUSTED: " "fake: too many models"
has "$ERR" "4096" "fake: too many models limit"
stop_fake

finish
