/* test_trace_client.c — libnnedit's traced forward passes: the graph
 * builder (nne_client_igraph_*), nne_client_trace and its bounds.
 *
 * Three groups of cases:
 *   local   no server: what the builder and the request checks refuse,
 *           with messages naming the node or the place (sticky builder
 *           errors, ids, bounds, duplicate save names, NULLs);
 *   fake    a fake Inference/Trace in Python (grpcio, the stubs generated
 *           from proto/) that records each request as a JSON line and
 *           answers as the request's model says: the request on the wire
 *           equals what was built (every node, argument and index kind,
 *           invokes, masks, tensor bytes), results are filled exactly
 *           (rows, timing, cache, logits, saves in any order, chunked, an
 *           edit set's extra saves), and every malformed reply (a tensor not
 *           asked for, sent twice, of another trace, missing, cut short, over
 *           the size limit, unlisted, too many rows or scores, results out
 *           of order, too many or too few, a message with both members or
 *           none) fails the call with INTERNAL or RESOURCE_EXHAUSTED, never
 *           a crash or a hang;
 *   daemon  the real nneditd on the gpt2-script fixture (2 layers, d_model
 *           64, the reference batch of 2 rows of 7 tokens): a trace's save
 *           of layers.0.resid_post equals Forward's save of that site (and
 *           the logits equal Forward's); two invokes see their own rows; a
 *           write that changes the logits (and one confined to the last
 *           position changes only that position; writing a value back
 *           unchanged changes nothing); a session in which a later trace
 *           refs an earlier trace's save and patches it in; bad graphs are
 *           INVALID_ARGUMENT and the daemon serves the next request.
 *
 * The fake server and the daemon are started in unchecked fixtures
 * (tests/support/daemon.h), the fake as `python3 -c SCRIPT READY LOG`.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "nnedit.h"
#include "daemon.h"
#include "client_helpers.h"

#define MODEL "gpt2-script"
#define VOCAB 1000
#define D_MODEL 64

static nne_test_daemon_t g_daemon;
static nne_test_daemon_t g_fake; /* the fake server */
static char g_fake_log[400];     /* the requests it recorded */

/* The fake server (Python 3, grpcio): see the top of this file. */
static const char *const fake_py[] = {
    "# A fake nnedit.v1.Inference/Trace for test_trace_client: records each",
    "# request as one JSON line and answers as the request's model says.",
    "import sys, os, json, struct",
    "from concurrent import futures",
    "sys.path.insert(0, os.environ['NNE_PY_GEN'])",
    "import grpc",
    "from nnedit.v1 import inference_pb2 as ip, tensor_pb2 as tp",
    "",
    "LOG = sys.argv[2]",
    "F32 = tp.DTYPE_FLOAT32",
    "",
    "def invoke(x):  # null: unset, every invoke",
    "    return x.invoke if x.HasField('invoke') else None",
    "",
    "def node_rec(n):",
    "    d = {'id': n.id}",
    "    if n.HasField('read'):",
    "        d['read'] = {'site': n.read.site, 'invoke': invoke(n.read)}",
    "    if n.HasField('write'):",
    "        w = n.write",
    "        d['write'] = {'site': w.site, 'value': w.value, 'invoke': "
    "invoke(w),",
    "                      'ranges': [[r.dim, r.start, r.stop] for r in "
    "w.ranges]}",
    "    if n.HasField('call'):",
    "        args = []",
    "        for a in n.call.args:",
    "            k = a.WhichOneof('value')",
    "            v = list(a.ints.values) if k == 'ints' else getattr(a, k)",
    "            args.append({'kind': k, 'value': v, 'name': a.name})",
    "        items = []",
    "        for it in n.call.index_items:",
    "            k = it.WhichOneof('item')",
    "            if k == 'slice':",
    "                s = it.slice",
    "                items.append({'slice': [s.start if s.HasField('start') "
    "else None,",
    "                                        s.stop if s.HasField('stop') else "
    "None, s.step]})",
    "            else:",
    "                items.append({k: getattr(it, k)})",
    "        d['call'] = {'fn': n.call.fn, 'args': args, 'index': items}",
    "    if n.HasField('constant'):",
    "        c = n.constant",
    "        d['constant'] = {'value': c.WhichOneof('value'), 'scalar': "
    "c.scalar}",
    "        if c.HasField('tensor'):",
    "            d['constant']['tensor'] = {'dtype': c.tensor.dtype,",
    "                                       'shape': list(c.tensor.shape),",
    "                                       'hex': c.tensor.data.hex()}",
    "    if n.HasField('save'):",
    "        d['save'] = {'value': n.save.value, 'name': n.save.name}",
    "    if n.HasField('ref'):",
    "        d['ref'] = {'name': n.ref.name}",
    "    return d",
    "",
    "def record(req):",
    "    rec = {'model': req.model, 'edit_set': req.edit_set, 'padding': "
    "req.padding,",
    "           'top_k': req.top_k, 'logits': req.logits, 'traces': []}",
    "    for tr in req.traces:",
    "        rec['traces'].append({",
    "            'name': tr.name,",
    "            'invokes': [{'ids': [list(r.ids) for r in inv.input_ids],",
    "                         'mask': [list(m.values) for m in "
    "inv.attention_mask]}",
    "                        for inv in tr.invokes],",
    "            'nodes': [node_rec(n) for n in tr.nodes]})",
    "    with open(LOG, 'a') as f:",
    "        f.write(json.dumps(rec) + '\\n')",
    "",
    "def chunks(name, data, shape, pieces=1, cut=False, total=None):",
    "    total = len(data) if total is None else total",
    "    step = max(1, -(-len(data) // pieces))",
    "    off = 0",
    "    while True:",
    "        part = data[off:off + step]",
    "        c = tp.TensorChunk(name=name, offset=off, data=part,",
    "                           last=(off + len(part) >= total) and not cut)",
    "        if off == 0:",
    "            c.dtype = F32",
    "            c.shape.extend(shape)",
    "            c.total_bytes = total",
    "        yield ip.TraceResponse(chunk=c).SerializeToString()",
    "        off += len(part)",
    "        if off >= len(data):",
    "            break",
    "",
    "def floats(base, n):",
    "    return b''.join(struct.pack('<f', float(base + i)) for i in range(n))",
    "",
    "def trace(b, ctx):",
    "    req = ip.TraceRequest.FromString(b)",
    "    record(req)",
    "    mode = req.model",
    "    if mode == 'error':",
    "        ctx.abort(grpc.StatusCode.INVALID_ARGUMENT,",
    "                  \"traces[0] node 2: call 'mul': expected 2 arguments\")",
    "    for t, tr in enumerate(req.traces):",
    "        order = [n.save.name for n in tr.nodes if n.HasField('save')]",
    "        if mode == 'reverse':",
    "            order.reverse()",
    "        if mode == 'missing':",
    "            order = order[:-1]",
    "        if mode == 'twice':",
    "            order = order + order[:1]",
    "        if mode == 'unknown':",
    "            order = order + ['nope']",
    "        if mode == 'foreign' and t == 0:",
    "            order += [n.save.name for n in req.traces[1].nodes if "
    "n.HasField('save')][:1]",
    "        sent = []",
    "        for k, name in enumerate(order):",
    "            if mode == 'big':",
    "                yield from chunks(name, floats(0, 4), [1 << 18], total=1 "
    "<< 20)",
    "                return",
    "            yield from chunks(name, floats(t * 100 + k * 10, 6), [2, 3],",
    "                              pieces=3 if mode == 'chunked' else 1,",
    "                              cut=mode == 'cut')",
    "            sent.append(name)",
    "        if mode == 'both':  # a oneof's two members: only as wire bytes",
    "            yield (ip.TraceResponse(result=ip.TraceResult(trace=t))."
    "SerializeToString() +",
    "                   ip.TraceResponse(chunk=tp.TensorChunk(name='x'))."
    "SerializeToString())",
    "            return",
    "        if mode == 'empty':",
    "            yield ip.TraceResponse().SerializeToString()",
    "            return",
    "        if req.edit_set:",
    "            yield from chunks('es-save', floats(-1, 6), [2, 3])",
    "            sent.append('es-save')",
    "        rows = [list(r.ids) for inv in tr.invokes for r in inv.input_ids]",
    "        logits = None",
    "        if req.logits and mode != 'nologits':",
    "            logits = (tr.name if tr.name else str(t)) + '/logits'",
    "            yield from chunks(logits, floats(1000 * t, 5 * len(rows)), "
    "[len(rows), 5])",
    "        n_rows = len(rows) + (mode == 'rows')",
    "        top_k = req.top_k + (mode == 'topk')",
    "        rtk = [ip.RowTopK(position=max(0, len(rows[i % len(rows)]) - 1),",
    "                          top=[ip.TokenScore(token_id=10 * i + j, "
    "logit=5.0 - j,",
    "                                             prob=0.5 / (j + 1)) for j in "
    "range(top_k)])",
    "               for i in range(n_rows)]",
    "        listed = list(sent)",
    "        if mode == 'listlogits' and logits:",
    "            listed.insert(0, logits)",
    "        if mode == 'unlisted':",
    "            listed = []",
    "        if mode == 'longname':",
    "            listed.append('n' * 300)",
    "        r = ip.TraceResult(trace=t + (mode == 'order'), name=tr.name, "
    "batch=len(rows),",
    "                           seq_len=max([len(x) for x in rows] or [0]), "
    "rows=rtk,",
    "                           timing=ip.Timing(queue_ms=0.25, compute_ms=1.5 "
    "+ t,",
    "                                            total_ms=2.5 + t),",
    "                           cache_hit=t > 0, backend_key='bk-%d' % t, "
    "saved=listed)",
    "        yield ip.TraceResponse(result=r).SerializeToString()",
    "        if mode == 'early':",
    "            return",
    "    if mode == 'extra':",
    "        yield "
    "ip.TraceResponse(result=ip.TraceResult(trace=len(req.traces)))."
    "SerializeToString()",
    "",
    "server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))",
    "server.add_generic_rpc_handlers([",
    "    grpc.method_handlers_generic_handler('nnedit.v1.Inference', {",
    "        'Trace': grpc.unary_stream_rpc_method_handler(trace)})])",
    "port = server.add_insecure_port('127.0.0.1:0')",
    "server.start()",
    "with open(sys.argv[1] + '.tmp', 'w') as f:",
    "    f.write('127.0.0.1:%d' % port + chr(10))",
    "os.rename(sys.argv[1] + '.tmp', sys.argv[1])",
    "server.wait_for_termination()",
    NULL};

/* ---- helpers ------------------------------------------------------------- */

static nne_client_t *client_at(const char *addr) {
  return nne_tc_ready(addr, 120000, 0);
}

#define EXPECT_STATUS NNE_TC_EXPECT_STATUS

static bool same_tensor(const nne_client_tensor_t *a,
                        const nne_client_tensor_t *b) {
  return a->dtype == b->dtype && a->ndim == b->ndim &&
         memcmp(a->shape, b->shape, a->ndim * sizeof a->shape[0]) == 0 &&
         a->nbytes == b->nbytes && memcmp(a->data, b->data, a->nbytes) == 0;
}

static double max_abs_diff(const nne_client_tensor_t *a,
                           const nne_client_tensor_t *b) {
  const float *x = a->data, *y = b->data;
  size_t i, n = a->nbytes / 4;
  double m = 0;
  for (i = 0; i < n && i < b->nbytes / 4; i++)
    m = fmax(m, fabs((double)x[i] - (double)y[i]));
  return m;
}

static void expect_same(const nne_client_tensor_t *a,
                        const nne_client_tensor_t *b, const char *what) {
  ck_assert_msg(a != NULL && b != NULL, "%s: a tensor is missing", what);
  ck_assert_msg(same_tensor(a, b), "%s: tensors differ (max |diff| %.3g)", what,
                max_abs_diff(a, b));
}

/* A trace request of one trace on `model` (the other fields zero). */
static nne_client_trace_req_t one_trace(const char *model,
                                        const nne_client_trace_t *t) {
  nne_client_trace_req_t req;
  memset(&req, 0, sizeof req);
  req.model = model;
  req.traces = t;
  req.n_traces = 1;
  return req;
}

static void trace_ok(nne_client_t *c, const nne_client_trace_req_t *req,
                     nne_client_trace_results_t *res) {
  nne_client_err_t err;
  int rc = nne_client_trace(c, req, res, &err);
  ck_assert_msg(rc == 0, "trace on %s: %s: %s", req->model,
                nne_client_status_name(err.code), err.message);
  ck_assert_uint_eq(res->n_traces, req->n_traces);
}

/* ---- the fake server ----------------------------------------------------- */

static void fake_setup(void) {
  static char script[16384];
  const char *py = getenv("NNE_PYTHON");
  const char *argv[] = {py ? py : "/usr/bin/python3", "-c", script,
                        NNE_TEST_DIR "/ready", NNE_TEST_DIR "/requests.jsonl",
                        NULL};
  size_t i, n = 0;

  for (i = 0; fake_py[i] != NULL && n < sizeof script; i++)
    n += (size_t)snprintf(script + n, sizeof script - n, "%s\n", fake_py[i]);
  if (n >= sizeof script) {
    fprintf(stderr, "test_trace_client: the fake server's script is too long\n");
    exit(1);
  }
  if (getenv("NNE_PY_GEN") == NULL)
    setenv("NNE_PY_GEN", NNE_FIXTURES_DIR_DEFAULT "/../gen_py", 1);
  if (nne_test_server_start(&g_fake, argv) != 0) {
    fprintf(stderr, "test_trace_client: the fake server did not start\n");
    exit(1);
  }
  snprintf(g_fake_log, sizeof g_fake_log, "%s/requests.jsonl", g_fake.dir);
}

static void fake_teardown(void) {
  nne_test_server_kill(&g_fake);
}

/* The last request the fake server recorded, as JSON (decref it). */
static json_t *last_request(void) {
  FILE *f = fopen(g_fake_log, "r");
  char *line = NULL, *last = NULL;
  size_t cap = 0;
  json_error_t jerr;
  json_t *doc;
  ck_assert_msg(f != NULL, "no request log %s", g_fake_log);
  while (getline(&line, &cap, f) > 0) {
    free(last);
    last = strdup(line);
  }
  free(line);
  fclose(f);
  ck_assert_msg(last != NULL, "the fake server recorded no request");
  doc = json_loads(last, 0, &jerr);
  ck_assert_msg(doc != NULL, "request log: %s", jerr.text);
  free(last);
  return doc;
}

/* json_object_get along a path of keys and indices: "traces", 0, ... is
 * written jget(doc, "traces/0/nodes/3/call/fn"). */
static json_t *jget(json_t *doc, const char *path) {
  char buf[256], *tok, *save = NULL;
  json_t *v = doc;
  snprintf(buf, sizeof buf, "%s", path);
  for (tok = strtok_r(buf, "/", &save); tok != NULL && v != NULL;
       tok = strtok_r(NULL, "/", &save)) {
    if (json_is_array(v))
      v = json_array_get(v, (size_t)atoi(tok));
    else
      v = json_object_get(v, tok);
  }
  ck_assert_msg(v != NULL, "request has no %s", path);
  return v;
}

static long long jint(json_t *doc, const char *path) {
  json_t *v = jget(doc, path);
  ck_assert_msg(json_is_integer(v), "%s is not an integer", path);
  return (long long)json_integer_value(v);
}

static const char *jstr(json_t *doc, const char *path) {
  json_t *v = jget(doc, path);
  ck_assert_msg(json_is_string(v), "%s is not a string", path);
  return json_string_value(v);
}

/* The JSON text of doc at path, compact, for whole-structure comparisons. */
static void expect_json(json_t *doc, const char *path, const char *want) {
  json_error_t jerr;
  json_t *w = json_loads(want, JSON_DECODE_ANY, &jerr), *v = jget(doc, path);
  char *got;
  ck_assert_msg(w != NULL, "bad expectation %s: %s", want, jerr.text);
  got = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
  ck_assert_msg(json_equal(v, w), "%s: got %s, want %s", path, got, want);
  free(got);
  json_decref(w);
}

/* ---- the suite's daemon -------------------------------------------------- */

static void daemon_setup(void) {
  nne_test_daemon_setup(&g_daemon, NULL);
}

static void daemon_teardown(void) {
  nne_test_daemon_teardown(&g_daemon);
}

/* ---- local: the builder and the request checks --------------------------- */

START_TEST(test_builder_ids) {
  nne_client_igraph_t *g = nne_client_igraph_new();
  nne_client_err_t err;
  int r, m, w, s;

  ck_assert_ptr_nonnull(g);
  ck_assert_uint_eq(nne_client_igraph_size(g), 0);
  ck_assert_int_eq(nne_client_igraph_error(g, &err), 0);
  r = nne_client_igraph_read(g, "layers.0.resid_post", 0);
  ck_assert_int_eq(r, 1);
  m = NNE_CLIENT_IGRAPH_CALL(g, "mul", nne_client_arg_node(r),
                             nne_client_arg_scalar(2.0));
  ck_assert_int_eq(m, 2);
  w = nne_client_igraph_write(g, "layers.0.resid_post", m, 0, NULL, 0);
  ck_assert_int_eq(w, 3);
  /* Explicit ids: the next one, then on from the largest. */
  ck_assert_int_eq(nne_client_igraph_next_id(g, 10), 0);
  s = nne_client_igraph_save(g, r, "x");
  ck_assert_int_eq(s, 10);
  ck_assert_int_eq(nne_client_igraph_ref(g, "y"), 11);
  ck_assert_int_eq(nne_client_igraph_next_id(g, 5), 0);
  ck_assert_int_eq(nne_client_igraph_const_scalar(g, 1.5), 5);
  ck_assert_int_eq(nne_client_igraph_const_scalar(g, 2.5), 12);
  ck_assert_uint_eq(nne_client_igraph_size(g), 7);
  ck_assert_int_eq(nne_client_igraph_error(g, NULL), 0);
  /* An id in use. */
  ck_assert_int_eq(nne_client_igraph_next_id(g, 10),
                   -NNE_CLIENT_INVALID_ARGUMENT);
  ck_assert_int_eq(nne_client_igraph_error(g, &err),
                   -NNE_CLIENT_INVALID_ARGUMENT);
  ck_assert_msg(strstr(err.message, "id 10 is already") != NULL, "%s",
                err.message);
  nne_client_igraph_free(g);
  nne_client_igraph_free(NULL);
}
END_TEST

/* build(g, k): the k-th way to get a build error, with the words the error
 * must contain. */
typedef struct bad_build {
  const char *needle;
  int (*build)(nne_client_igraph_t *g);
} bad_build_t;

static int bb_null_site(nne_client_igraph_t *g) {
  return nne_client_igraph_read(g, NULL, 0);
}
static int bb_long_site(nne_client_igraph_t *g) {
  char s[300];
  memset(s, 's', sizeof s - 1);
  s[sizeof s - 1] = '\0';
  return nne_client_igraph_read(g, s, 0);
}
static int bb_invoke(nne_client_igraph_t *g) {
  return nne_client_igraph_read(g, "a", -2);
}
static int bb_failed_input(nne_client_igraph_t *g) {
  return NNE_CLIENT_IGRAPH_CALL(g, "neg", nne_client_arg_node(-3));
}
static int bb_zero_input(nne_client_igraph_t *g) {
  return nne_client_igraph_save(g, 0, "x");
}
static int bb_many_args(nne_client_igraph_t *g) {
  nne_client_arg_t a[17];
  int k;
  for (k = 0; k < 17; k++)
    a[k] = nne_client_arg_int(k);
  return nne_client_igraph_call(g, "cat", a, 17, NULL, 0);
}
static int bb_many_ints(nne_client_igraph_t *g) {
  int64_t v[9] = {0};
  return NNE_CLIENT_IGRAPH_CALL(g, "permute", nne_client_arg_node(1),
                                nne_client_arg_ints(v, 9));
}
static int bb_long_kw(nne_client_igraph_t *g) {
  return NNE_CLIENT_IGRAPH_CALL(
      g, "sum",
      nne_client_arg_kw("a_keyword_name_much_longer_than_31",
                        nne_client_arg_int(1)));
}
static int bb_long_fn(nne_client_igraph_t *g) {
  return NNE_CLIENT_IGRAPH_CALL(g, "a_function_name_much_longer_than_31",
                                nne_client_arg_node(1));
}
static int bb_dtype(nne_client_igraph_t *g) {
  return NNE_CLIENT_IGRAPH_CALL(g, "to", nne_client_arg_node(1),
                                nne_client_arg_dtype(99));
}
static int bb_module(nne_client_igraph_t *g) {
  return NNE_CLIENT_IGRAPH_CALL(g, "module", nne_client_arg_module(""),
                                nne_client_arg_node(1));
}
static int bb_ranges(nne_client_igraph_t *g) {
  nne_client_dim_range_t r[9] = {{0}};
  return nne_client_igraph_write(g, "a", 1, 0, r, 9);
}
static int bb_tensor(nne_client_igraph_t *g) {
  float v[3] = {1, 2, 3};
  nne_client_tensor_t t = {.dtype = NNE_CLIENT_DTYPE_FLOAT32,
                           .ndim = 1,
                           .shape = {4},
                           .nbytes = sizeof v,
                           .data = v};
  return nne_client_igraph_const_tensor(g, &t);
}
static int bb_items(nne_client_igraph_t *g) {
  nne_client_index_item_t it = nne_client_idx(0);
  it.kind = 9;
  return nne_client_igraph_call(
      g, "index", (nne_client_arg_t[]){nne_client_arg_node(1)}, 1, &it, 1);
}
static int bb_empty_save(nne_client_igraph_t *g) {
  return nne_client_igraph_save(g, 1, "");
}

START_TEST(test_builder_errors) {
  static const bad_build_t cases[] = {
      {"node 2 (read): site is NULL", bb_null_site},
      {"node 2 (read): site 'sss", bb_long_site},
      {"node 2 (read): invoke -2", bb_invoke},
      {"node 2 (call 'neg'): args[0].node is -3, the status of a failed call",
       bb_failed_input},
      {"node 2 (save): value is 0", bb_zero_input},
      {"node 2 (call 'cat'): 17 arguments, more than 16", bb_many_args},
      {"args[1]: 9 integers, more than 8", bb_many_ints},
      {"args[0]: keyword 'a_keyword", bb_long_kw},
      {"fn 'a_function_name", bb_long_fn},
      {"args[1]: unknown dtype 99", bb_dtype},
      {"args[0] is empty", bb_module},
      {"node 2 (write): 9 ranges, more than 8", bb_ranges},
      {"node 2 (constant): nbytes 12 is not numel(shape) * 4", bb_tensor},
      {"items[0]: unknown index item kind 9", bb_items},
      {"node 2 (save): name is empty", bb_empty_save},
  };
  size_t k;
  for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    nne_client_igraph_t *g = nne_client_igraph_new();
    nne_client_err_t err;
    char what[64];
    int rc;
    ck_assert_int_eq(nne_client_igraph_read(g, "layers.0.resid_post", 0), 1);
    rc = cases[k].build(g);
    snprintf(what, sizeof what, "case %zu", k);
    ck_assert_msg(rc == -NNE_CLIENT_INVALID_ARGUMENT, "%s: rc %d", what, rc);
    ck_assert_int_eq(nne_client_igraph_error(g, &err), rc);
    ck_assert_msg(strstr(err.message, cases[k].needle) != NULL,
                  "case %zu: '%s' does not contain '%s'", k, err.message,
                  cases[k].needle);
    /* Sticky: nothing more is added, the first error stays. */
    ck_assert_int_eq(nne_client_igraph_const_scalar(g, 1.0), rc);
    ck_assert_uint_eq(nne_client_igraph_size(g), 1);
    ck_assert_int_eq(nne_client_igraph_error(g, &err), rc);
    ck_assert_msg(strstr(err.message, cases[k].needle) != NULL, "%s",
                  err.message);
    nne_client_igraph_free(g);
  }
}
END_TEST

/* Refused before any I/O: the client points nowhere. */
START_TEST(test_request_errors) {
  nne_client_t *c = nne_tc_connect("127.0.0.1:1", 120000, 0);
  nne_client_igraph_t *g = nne_client_igraph_new(),
                      *g2 = nne_client_igraph_new(),
                      *bad = nne_client_igraph_new();
  int64_t ids[3] = {1, 2, 3};
  nne_client_token_row_t rows[2] = {{.ids = ids, .n_ids = 3},
                                     {.ids = NULL, .n_ids = 2}};
  nne_client_invoke_t inv = {.rows = rows, .n_rows = 1};
  nne_client_trace_t tr[2];
  nne_client_trace_req_t req;
  nne_client_trace_results_t res;
  nne_client_err_t err;
  char longname[80];

  nne_client_igraph_save(g, nne_client_igraph_read(g, "a", 0), "same");
  nne_client_igraph_save(g2, nne_client_igraph_read(g2, "b", 0), "same");
  nne_client_igraph_read(bad, NULL, 0);
  memset(tr, 0, sizeof tr);
  tr[0].invokes = &inv;
  tr[0].n_invokes = 1;
  tr[0].graph = g;
  tr[1] = tr[0];
  tr[1].graph = g2;

  EXPECT_STATUS(nne_client_trace(NULL, NULL, &res, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "NULL", NULL);
  ck_assert_ptr_null(res.traces);
  req = one_trace(NULL, tr);
  EXPECT_STATUS(nne_client_trace(c, &req, &res, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "name is NULL", NULL);
  req = one_trace("m", tr);
  req.n_traces = 2;
  EXPECT_STATUS(nne_client_trace(c, &req, &res, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT,
                "traces[1] node 2: save name 'same' is already the name of "
                "traces[0] node 2",
                NULL);
  /* One graph with a save in two traces of one request is the same. */
  tr[1].graph = g;
  EXPECT_STATUS(nne_client_trace(c, &req, &res, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "unique in a request", NULL);
  tr[1].graph = bad;
  EXPECT_STATUS(nne_client_trace(c, &req, &res, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT,
                "traces[1].graph: node 1 (read): site is NULL", NULL);
  tr[1].graph = NULL;
  inv.n_rows = 2;
  EXPECT_STATUS(nne_client_trace(c, &req, &res, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT,
                "traces[0].invokes[0].rows[1].ids is NULL", NULL);
  inv.n_rows = 1;
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  tr[1].name = longname;
  EXPECT_STATUS(nne_client_trace(c, &req, &res, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "traces[1].name", NULL);
  tr[1].name = NULL;
  tr[1].n_invokes = 1;
  tr[1].invokes = NULL;
  EXPECT_STATUS(nne_client_trace(c, &req, &res, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT,
                "traces[1].invokes is NULL with n_invokes 1", NULL);
  tr[1].invokes = &inv;
  req.padding = 7;
  EXPECT_STATUS(nne_client_trace(c, &req, &res, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "padding 7", NULL);
  req.padding = NNE_CLIENT_PAD_NONE;
  req.edit_set = longname;
  EXPECT_STATUS(nne_client_trace(c, &req, &res, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "edit_set", NULL);
  req.edit_set = NULL;
  req.traces = NULL;
  EXPECT_STATUS(nne_client_trace(c, &req, &res, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "traces is NULL", NULL);
  nne_client_trace_results_free(&res);
  ck_assert_ptr_null(nne_client_trace_results_saved(&res, "same"));
  nne_client_igraph_free(g);
  nne_client_igraph_free(g2);
  nne_client_igraph_free(bad);
  nne_client_close(c);
}
END_TEST

/* ---- fake: the request on the wire and the results ------------------------
 */

/* A graph with every node, argument and index kind. */
static nne_client_igraph_t *every_kind(void) {
  nne_client_igraph_t *g = nne_client_igraph_new();
  static const float cv[4] = {0.5f, -1.0f, 2.0f, 65504.0f};
  static const int64_t dims[3] = {0, 2, 1};
  nne_client_tensor_t ct = {.dtype = NNE_CLIENT_DTYPE_FLOAT32,
                            .ndim = 2,
                            .shape = {2, 2},
                            .nbytes = sizeof cv,
                            .data = (void *)cv};
  nne_client_dim_range_t rg[2] = {{1, -1, 0}, {-1, 8, 16}};
  int r, c, k, m, x;

  r = nne_client_igraph_read(g, "layers.0.resid_post", 0); /* 1 */
  c = nne_client_igraph_const_tensor(g, &ct);              /* 2 */
  k = nne_client_igraph_const_scalar(g, -0.25);            /* 3 */
  m = NNE_CLIENT_IGRAPH_CALL(                              /* 4 */
                             g, "sum", nne_client_arg_node(r),
                             nne_client_arg_kw("dim",
                                               nne_client_arg_ints(dims, 3)),
                             nne_client_arg_kw("keepdim",
                                               nne_client_arg_bool(true)),
                             nne_client_arg_scalar(1.5), nne_client_arg_int(-7),
                             nne_client_arg_dtype(NNE_CLIENT_DTYPE_BFLOAT16),
                             nne_client_arg_module("layers.1.mlp"));
  x = NNE_CLIENT_IGRAPH_INDEX(
      g, r, nne_client_idx(0), nne_client_idx_all(), /* 5 */
      nne_client_idx_slice(3, 5),
      nne_client_idx_slice_ex(false, 0, true, -1, 2), nne_client_idx_ellipsis(),
      nne_client_idx_newaxis());
  nne_client_igraph_write(g, "layers.1.resid_pre", m, /* 6 */
                          NNE_CLIENT_INVOKE_ALL, rg, 2);
  nne_client_igraph_save(g, x, "x5");                             /* 7 */
  nne_client_igraph_ref(g, "earlier");                            /* 8 */
  (void)c;
  (void)k;
  ck_assert_int_eq(nne_client_igraph_error(g, NULL), 0);
  ck_assert_uint_eq(nne_client_igraph_size(g), 8);
  return g;
}

START_TEST(test_fake_round_trip) {
  nne_client_t *c = client_at(g_fake.addr);
  nne_client_igraph_t *g = every_kind(), *g2 = nne_client_igraph_new();
  int64_t a[3] = {5, 6, 7}, b[2] = {8, 9}, d[1] = {10};
  int32_t ma[3] = {1, 1, 1}, mb[3] = {0, 1, 1};
  nne_client_token_row_t r0[2] = {{.ids = a, .n_ids = 3}, {.ids = b, .n_ids = 2}},
                         r1[1] = {{.ids = d, .n_ids = 1}};
  nne_client_mask_row_t m0[2] = {{ma, 3}, {mb, 3}};
  nne_client_invoke_t inv[2] = {
      {.rows = r0, .n_rows = 2, .mask = m0, .n_mask = 2},
      {.rows = r1, .n_rows = 1}};
  nne_client_trace_t tr[2];
  nne_client_trace_req_t req;
  nne_client_trace_results_t res;
  json_t *doc;

  nne_client_igraph_save(g2, nne_client_igraph_ref(g2, "x5"), "again");
  memset(tr, 0, sizeof tr);
  tr[0] = (nne_client_trace_t){
      .name = "clean", .invokes = inv, .n_invokes = 2, .graph = g};
  tr[1] = (nne_client_trace_t){.invokes = inv + 1, .n_invokes = 1, .graph = g2};
  req = one_trace("echo", tr);
  req.n_traces = 2;
  req.edit_set = NULL;
  req.padding = NNE_CLIENT_PAD_LEFT;
  req.top_k = 3;
  req.logits = NNE_CLIENT_LOGITS_LAST;
  trace_ok(c, &req, &res);

  doc = last_request();
  ck_assert_str_eq(jstr(doc, "model"), "echo");
  ck_assert_int_eq(jint(doc, "padding"), 1);
  ck_assert_int_eq(jint(doc, "top_k"), 3);
  ck_assert_int_eq(jint(doc, "logits"), 1);
  expect_json(doc, "traces/0/name", "\"clean\"");
  expect_json(doc, "traces/0/invokes",
              "[{\"ids\": [[5,6,7],[8,9]], \"mask\": [[1,1,1],[0,1,1]]},"
              " {\"ids\": [[10]], \"mask\": []}]");
  expect_json(doc, "traces/0/nodes/0",
              "{\"id\": 1, \"read\": {\"site\": \"layers.0.resid_post\", "
              "\"invoke\": 0}}");
  /* 0.5, -1, 2, 65504 as float32 little-endian. */
  expect_json(doc, "traces/0/nodes/1",
              "{\"id\": 2, \"constant\": {\"value\": \"tensor\", \"scalar\": "
              "0.0, \"tensor\": {\"dtype\": 1, \"shape\": [2, 2], \"hex\": "
              "\"0000003f000080bf0000004000e07f47\"}}}");
  expect_json(doc, "traces/0/nodes/2",
              "{\"id\": 3, \"constant\": {\"value\": \"scalar\", \"scalar\": "
              "-0.25}}");
  expect_json(
      doc, "traces/0/nodes/3",
      "{\"id\": 4, \"call\": {\"fn\": \"sum\", \"index\": [], \"args\": ["
      "{\"kind\": \"node\", \"value\": 1, \"name\": \"\"},"
      "{\"kind\": \"ints\", \"value\": [0, 2, 1], \"name\": \"dim\"},"
      "{\"kind\": \"boolean\", \"value\": true, \"name\": \"keepdim\"},"
      "{\"kind\": \"scalar\", \"value\": 1.5, \"name\": \"\"},"
      "{\"kind\": \"integer\", \"value\": -7, \"name\": \"\"},"
      "{\"kind\": \"dtype\", \"value\": 3, \"name\": \"\"},"
      "{\"kind\": \"module\", \"value\": \"layers.1.mlp\", \"name\": "
      "\"\"}]}}");
  expect_json(
      doc, "traces/0/nodes/4",
      "{\"id\": 5, \"call\": {\"fn\": \"index\", \"args\": ["
      "{\"kind\": \"node\", \"value\": 1, \"name\": \"\"}], \"index\": ["
      "{\"index\": 0}, {\"slice\": [null, null, 0]}, "
      "{\"slice\": [3, 5, 0]}, {\"slice\": [null, -1, 2]}, "
      "{\"ellipsis\": true}, {\"newaxis\": true}]}}");
  expect_json(doc, "traces/0/nodes/5",
              "{\"id\": 6, \"write\": {\"site\": \"layers.1.resid_pre\", "
              "\"value\": 4, \"invoke\": null, \"ranges\": [[1, -1, 0], "
              "[-1, 8, 16]]}}");
  expect_json(doc, "traces/0/nodes/6",
              "{\"id\": 7, \"save\": {\"value\": 5, \"name\": \"x5\"}}");
  expect_json(doc, "traces/0/nodes/7",
              "{\"id\": 8, \"ref\": {\"name\": \"earlier\"}}");
  expect_json(
      doc, "traces/1",
      "{\"name\": \"\", \"invokes\": [{\"ids\": [[10]], \"mask\": []}], "
      "\"nodes\": [{\"id\": 1, \"ref\": {\"name\": \"x5\"}}, "
      "{\"id\": 2, \"save\": {\"value\": 1, \"name\": \"again\"}}]}");
  json_decref(doc);

  /* The results, as the fake makes them: trace t's k-th save holds
   * t*100 + k*10 + [0..5] as float32 [2, 3]; logits [rows, 5]. */
  {
    const nne_client_trace_result_t *r0r = &res.traces[0],
                                    *r1r = &res.traces[1];
    const nne_client_tensor_t *x5 = nne_client_trace_results_saved(&res, "x5"),
                              *ag =
                                  nne_client_trace_results_saved(&res, "again");
    ck_assert_uint_eq(r0r->trace, 0);
    ck_assert_str_eq(r0r->name, "clean");
    ck_assert_uint_eq(r0r->batch, 3);
    ck_assert_uint_eq(r0r->seq_len, 3);
    ck_assert_uint_eq(r0r->n_rows, 3);
    ck_assert_uint_eq(r0r->rows[1].position, 1);
    ck_assert_uint_eq(r0r->rows[1].n_top, 3);
    ck_assert_int_eq(r0r->rows[1].top[2].token_id, 12);
    ck_assert(r0r->rows[1].top[2].logit == 3.0f);
    ck_assert(r0r->timing.compute_ms == 1.5 && r0r->timing.total_ms == 2.5 &&
              r0r->timing.queue_ms == 0.25);
    ck_assert(!r0r->cache_hit && r1r->cache_hit);
    ck_assert_str_eq(r0r->backend_key, "bk-0");
    ck_assert_str_eq(r1r->backend_key, "bk-1");
    ck_assert(r0r->has_logits && r1r->has_logits);
    ck_assert_str_eq(r0r->logits.name, "clean/logits");
    ck_assert_str_eq(r1r->logits.name, "1/logits");
    ck_assert_uint_eq(r0r->logits.ndim, 2);
    ck_assert_int_eq(r0r->logits.shape[0], 3);
    ck_assert_uint_eq(r0r->n_saved, 1);
    ck_assert_uint_eq(r1r->n_saved, 1);
    ck_assert_ptr_eq(x5, &r0r->saved[0]);
    ck_assert_ptr_eq(ag, &r1r->saved[0]);
    ck_assert_int_eq(x5->dtype, NNE_CLIENT_DTYPE_FLOAT32);
    ck_assert_uint_eq(x5->ndim, 2);
    ck_assert(((const float *)ag->data)[5] == 105.0f);
    ck_assert_ptr_null(nne_client_trace_results_saved(&res, "nope"));
  }
  nne_client_trace_results_free(&res);
  ck_assert_ptr_null(res.traces);
  ck_assert_uint_eq(res.n_traces, 0);
  nne_client_igraph_free(g);
  nne_client_igraph_free(g2);
  nne_client_close(c);
}
END_TEST

/* Two saves (and a graph-less trace) through the fake in mode `model`. */
static int fake_call(nne_client_t *c, const char *model, const char *edit_set,
                     nne_client_logits_t logits, size_t n_traces,
                     nne_client_trace_results_t *res, nne_client_err_t *err) {
  static int64_t ids[2] = {1, 2};
  static nne_client_token_row_t row = {.ids = ids, .n_ids = 2};
  static nne_client_invoke_t inv = {.rows = &row, .n_rows = 1};
  nne_client_igraph_t *g = nne_client_igraph_new(),
                      *g2 = nne_client_igraph_new();
  nne_client_trace_t tr[2] = {
      {.name = "a", .invokes = &inv, .n_invokes = 1, .graph = g},
      {.name = "b", .invokes = &inv, .n_invokes = 1, .graph = g2}};
  nne_client_trace_req_t req = one_trace(model, tr);
  int r, rc;
  r = nne_client_igraph_read(g, "s", 0);
  nne_client_igraph_save(g, r, "first");
  nne_client_igraph_save(g, r, "second");
  nne_client_igraph_save(g2, nne_client_igraph_read(g2, "s", 0), "third");
  req.n_traces = n_traces;
  req.edit_set = edit_set;
  req.logits = logits;
  req.top_k = 2;
  rc = nne_client_trace(c, &req, res, err);
  nne_client_igraph_free(g);
  nne_client_igraph_free(g2);
  return rc;
}

START_TEST(test_fake_results) {
  nne_client_t *c = client_at(g_fake.addr);
  nne_client_trace_results_t res;
  nne_client_err_t err;
  const nne_client_trace_result_t *r;

  /* Saves may stream in any order the result lists. */
  ck_assert_int_eq(fake_call(c, "reverse", NULL, 0, 2, &res, &err), 0);
  r = &res.traces[0];
  ck_assert_uint_eq(r->n_saved, 2);
  ck_assert_str_eq(r->saved[0].name, "second");
  ck_assert_str_eq(r->saved[1].name, "first");
  ck_assert(
      ((const float *)nne_client_trace_results_saved(&res, "first")->data)[0] ==
      10.0f);
  ck_assert(!r->has_logits);
  ck_assert_uint_eq(res.traces[1].n_saved, 1);
  nne_client_trace_results_free(&res);

  /* Tensors in several chunks; logits listed among the saves. */
  ck_assert_msg(
      fake_call(c, "chunked", NULL, NNE_CLIENT_LOGITS_ALL, 2, &res, &err) == 0,
      "%s", err.message);
  ck_assert(((const float *)res.traces[1].saved[0].data)[5] == 105.0f);
  ck_assert_str_eq(res.traces[1].logits.name, "b/logits");
  nne_client_trace_results_free(&res);
  ck_assert_msg(fake_call(c, "listlogits", NULL, NNE_CLIENT_LOGITS_LAST, 1,
                          &res, &err) == 0,
                "%s", err.message);
  ck_assert(res.traces[0].has_logits);
  ck_assert_uint_eq(res.traces[0].n_saved, 2);
  nne_client_trace_results_free(&res);

  /* An edit set's own saves come too. */
  ck_assert_msg(fake_call(c, "echo", "es-1", 0, 2, &res, &err) == 0, "%s",
                err.message);
  ck_assert_uint_eq(res.traces[0].n_saved, 3);
  ck_assert_str_eq(res.traces[0].saved[2].name, "es-save");
  ck_assert_uint_eq(res.traces[1].n_saved, 2);
  nne_client_trace_results_free(&res);

  /* The daemon's refusal, verbatim. */
  EXPECT_STATUS(fake_call(c, "error", NULL, 0, 1, &res, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT,
                "traces[0] node 2: call 'mul': expected 2 arguments", NULL);
  ck_assert_ptr_null(res.traces);
  nne_client_close(c);
}
END_TEST

/* Malformed replies: each fails the call, nothing leaks (the sanitizer
 * build checks that), and the client stays usable. */
START_TEST(test_fake_bad_replies) {
  static const struct {
    const char *mode;
    size_t n_traces;
    nne_client_logits_t logits;
    int code;
    const char *needle;
  } cases[] = {
      {"missing", 1, 0, NNE_CLIENT_INTERNAL,
       "traces[0]: save 'second' (node 3) was not sent before its result"},
      {"twice", 1, 0, NNE_CLIENT_INTERNAL, "tensor 'first' was sent twice"},
      {"unknown", 1, 0, NNE_CLIENT_INTERNAL,
       "tensor 'nope' is neither a save of traces[0] ('a') nor logits"},
      {"foreign", 2, 0, NNE_CLIENT_INTERNAL,
       "tensor 'third' (a save of traces[1]) came among those of traces[0]"},
      {"unlisted", 1, 0, NNE_CLIENT_INTERNAL,
       "the result of traces[0] lists 0 saved tensors, 2 were sent"},
      {"longname", 1, 0, NNE_CLIENT_INTERNAL,
       "saved[2]: a string of 300 bytes"},
      {"rows", 1, 0, NNE_CLIENT_INTERNAL, "more rows than the request's 1"},
      {"topk", 1, 0, NNE_CLIENT_INTERNAL, "more scores than top_k = 2"},
      {"order", 1, 0, NNE_CLIENT_INTERNAL,
       "the result of traces[0] says it is of trace 1"},
      {"early", 2, 0, NNE_CLIENT_INTERNAL,
       "the stream ended after 1 of 2 trace results"},
      {"extra", 1, 0, NNE_CLIENT_INTERNAL, "a result after the 1 traces"},
      {"both", 1, 0, NNE_CLIENT_INTERNAL, "both a result and a chunk"},
      {"empty", 1, 0, NNE_CLIENT_INTERNAL, "neither"},
      {"cut", 1, 0, NNE_CLIENT_INTERNAL, "not marked last"},
      {"big", 1, 0, NNE_CLIENT_RESOURCE_EXHAUSTED, "over this client's limit"},
      {"nologits", 2, NNE_CLIENT_LOGITS_LAST, NNE_CLIENT_INTERNAL,
       "traces[0]: logits were asked for and not sent"},
  };
  nne_client_t *c = nne_tc_connect(g_fake.addr, 120000, 65536);
  nne_client_trace_results_t res;
  nne_client_err_t err;
  size_t k;

  for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    int rc = fake_call(c, cases[k].mode, NULL, cases[k].logits,
                       cases[k].n_traces, &res, &err);
    ck_assert_msg(rc == -cases[k].code && err.code == cases[k].code,
                  "mode %s: rc %d, %s: %s", cases[k].mode, rc,
                  nne_client_status_name(err.code), err.message);
    ck_assert_msg(strstr(err.message, cases[k].needle) != NULL,
                  "mode %s: '%s' does not contain '%s'", cases[k].mode,
                  err.message, cases[k].needle);
    ck_assert_msg(strncmp(err.message, "Inference/Trace: ", 17) == 0,
                  "mode %s: '%s'", cases[k].mode, err.message);
    ck_assert_ptr_null(res.traces);
    nne_client_trace_results_free(&res);
  }
  /* The client is still usable. */
  ck_assert_int_eq(fake_call(c, "echo", NULL, 0, 2, &res, &err), 0);
  nne_client_trace_results_free(&res);
  nne_client_close(c);
}
END_TEST

/* ---- daemon: the real nneditd -------------------------------------------- */

/* The fixture's reference batch: 2 rows of 7 tokens. */
typedef struct batch {
  nne_fixture_t *f;
  nne_client_token_row_t rows[8];
  size_t n_rows;
  int64_t seq;
} batch_t;

static void batch_init(batch_t *b) {
  char msg[512];
  int64_t r;
  memset(b, 0, sizeof *b);
  ck_assert_msg(nne_fixture_load(MODEL, &b->f, msg, sizeof msg) == 0, "%s",
                msg);
  ck_assert(b->f->input_ids.rows >= 2 && b->f->input_ids.rows <= 8);
  for (r = 0; r < b->f->input_ids.rows; r++) {
    b->rows[r].ids = b->f->input_ids.data + r * b->f->input_ids.cols;
    b->rows[r].n_ids = (size_t)b->f->input_ids.cols;
  }
  b->n_rows = (size_t)b->f->input_ids.rows;
  b->seq = b->f->input_ids.cols;
}

static void batch_free(batch_t *b) {
  nne_fixture_free(b->f);
}

/* Forward of rows[0..n-1] with all logits and the given saves. */
static void forward_ok(nne_client_t *c, const nne_client_token_row_t *rows,
                       size_t n, const char *const *save, size_t n_save,
                       nne_client_forward_result_t *res) {
  nne_client_forward_req_t req;
  nne_client_err_t err;
  memset(&req, 0, sizeof req);
  req.model = MODEL;
  req.rows = rows;
  req.n_rows = n;
  req.top_k = 5;
  req.logits = NNE_CLIENT_LOGITS_ALL;
  req.save = save;
  req.n_save = n_save;
  ck_assert_msg(nne_client_forward(c, &req, res, &err) == 0, "forward: %s: %s",
                nne_client_status_name(err.code), err.message);
}

/* One element of a [rows, seq, d] float tensor. */
static float at3(const nne_client_tensor_t *t, int64_t r, int64_t p,
                 int64_t k) {
  return ((const float *)t->data)[(r * t->shape[1] + p) * t->shape[2] + k];
}

START_TEST(test_daemon_save_equals_forward) {
  nne_client_t *c = client_at(g_daemon.addr);
  const char *site = "layers.0.resid_post";
  nne_client_igraph_t *g = nne_client_igraph_new();
  nne_client_forward_result_t fr;
  nne_client_trace_results_t res;
  nne_client_invoke_t inv;
  nne_client_trace_t tr;
  nne_client_trace_req_t req;
  batch_t b;
  size_t i, k;

  nne_tc_load(c, MODEL);
  batch_init(&b);
  forward_ok(c, b.rows, b.n_rows, &site, 1, &fr);
  nne_client_igraph_save(
      g, nne_client_igraph_read(g, site, NNE_CLIENT_INVOKE_ALL), "resid0");
  /* The same value read for invoke 0 (here every row). */
  nne_client_igraph_save(g, nne_client_igraph_read(g, site, 0), "resid0_inv0");
  inv = (nne_client_invoke_t){.rows = b.rows, .n_rows = b.n_rows};
  tr = (nne_client_trace_t){
      .name = "t", .invokes = &inv, .n_invokes = 1, .graph = g};
  req = one_trace(MODEL, &tr);
  req.top_k = 5;
  req.logits = NNE_CLIENT_LOGITS_ALL;
  trace_ok(c, &req, &res);
  expect_same(nne_client_trace_results_saved(&res, "resid0"),
              nne_client_forward_result_saved(&fr, site),
              "trace save vs Forward save of layers.0.resid_post");
  expect_same(nne_client_trace_results_saved(&res, "resid0_inv0"),
              nne_client_forward_result_saved(&fr, site),
              "invoke 0's read vs Forward's save");
  ck_assert(res.traces[0].has_logits);
  ck_assert_str_eq(res.traces[0].logits.name, "t/logits");
  expect_same(&res.traces[0].logits, &fr.logits, "trace logits vs Forward's");
  ck_assert_uint_eq(res.traces[0].batch, b.n_rows);
  ck_assert_uint_eq(res.traces[0].seq_len, (uint32_t)b.seq);
  ck_assert_uint_eq(res.traces[0].n_rows, fr.n_rows);
  for (i = 0; i < fr.n_rows; i++) {
    ck_assert_uint_eq(res.traces[0].rows[i].n_top, fr.rows[i].n_top);
    for (k = 0; k < fr.rows[i].n_top; k++)
      ck_assert_int_eq(res.traces[0].rows[i].top[k].token_id,
                       fr.rows[i].top[k].token_id);
  }
  ck_assert(res.traces[0].timing.total_ms >= res.traces[0].timing.compute_ms);
  ck_assert_msg(res.traces[0].backend_key[0] != '\0', "no backend key");
  nne_client_trace_results_free(&res);
  /* Same structure again: the backend comes from the cache. */
  trace_ok(c, &req, &res);
  ck_assert_msg(res.traces[0].cache_hit, "the second trace of one structure "
                                         "was not a cache hit");
  nne_client_trace_results_free(&res);
  nne_client_forward_result_free(&fr);
  nne_client_igraph_free(g);
  batch_free(&b);
  nne_client_close(c);
}
END_TEST

START_TEST(test_daemon_two_invokes) {
  nne_client_t *c = client_at(g_daemon.addr);
  const char *site = "layers.1.resid_post";
  nne_client_igraph_t *g = nne_client_igraph_new();
  nne_client_forward_result_t fr;
  nne_client_trace_results_t res;
  nne_client_invoke_t inv[2];
  nne_client_trace_t tr;
  nne_client_trace_req_t req;
  const nne_client_tensor_t *all, *s0, *s1, *whole;
  batch_t b;
  int64_t p, k;

  nne_tc_load(c, MODEL);
  batch_init(&b);
  forward_ok(c, b.rows, 2, &site, 1, &fr);
  nne_client_igraph_save(g, nne_client_igraph_read(g, site, 0), "inv0");
  nne_client_igraph_save(g, nne_client_igraph_read(g, site, 1), "inv1");
  nne_client_igraph_save(
      g, nne_client_igraph_read(g, site, NNE_CLIENT_INVOKE_ALL), "all");
  inv[0] = (nne_client_invoke_t){.rows = &b.rows[0], .n_rows = 1};
  inv[1] = (nne_client_invoke_t){.rows = &b.rows[1], .n_rows = 1};
  tr = (nne_client_trace_t){
      .name = "two", .invokes = inv, .n_invokes = 2, .graph = g};
  req = one_trace(MODEL, &tr);
  req.top_k = 1;
  trace_ok(c, &req, &res);
  whole = nne_client_forward_result_saved(&fr, site);
  all = nne_client_trace_results_saved(&res, "all");
  s0 = nne_client_trace_results_saved(&res, "inv0");
  s1 = nne_client_trace_results_saved(&res, "inv1");
  ck_assert(all && s0 && s1);
  expect_same(all, whole, "both invokes in one forward vs Forward's batch");
  ck_assert_uint_eq(s0->ndim, 3);
  ck_assert_int_eq(s0->shape[0], 1);
  ck_assert_int_eq(s1->shape[0], 1);
  ck_assert_int_eq(s0->shape[1], b.seq);
  ck_assert_int_eq(s0->shape[2], D_MODEL);
  for (p = 0; p < b.seq; p++)
    for (k = 0; k < D_MODEL; k++) {
      ck_assert(at3(s0, 0, p, k) == at3(whole, 0, p, k));
      ck_assert(at3(s1, 0, p, k) == at3(whole, 1, p, k));
    }
  ck_assert_uint_eq(res.traces[0].batch, 2);
  ck_assert_uint_eq(res.traces[0].n_rows, 2);
  nne_client_trace_results_free(&res);
  nne_client_forward_result_free(&fr);
  nne_client_igraph_free(g);
  batch_free(&b);
  nne_client_close(c);
}
END_TEST

/* Logits [batch, seq, VOCAB]: are positions [p0, p1) of every row equal? */
static bool positions_equal(const nne_client_tensor_t *a,
                            const nne_client_tensor_t *b, int64_t p0,
                            int64_t p1) {
  const float *x = a->data, *y = b->data;
  int64_t r, p;
  for (r = 0; r < a->shape[0]; r++)
    for (p = p0; p < p1; p++) {
      size_t off = (size_t)((r * a->shape[1] + p) * VOCAB);
      if (memcmp(x + off, y + off, VOCAB * sizeof *x) != 0)
        return false;
    }
  return true;
}

START_TEST(test_daemon_write) {
  nne_client_t *c = client_at(g_daemon.addr);
  const char *site = "layers.0.resid_post";
  nne_client_igraph_t *zero = nne_client_igraph_new(),
                      *same = nne_client_igraph_new(),
                      *last = nne_client_igraph_new();
  nne_client_dim_range_t lastpos = {1, -1, 0};
  nne_client_forward_result_t fr;
  nne_client_trace_results_t res;
  nne_client_invoke_t inv;
  nne_client_trace_t tr[3];
  nne_client_trace_req_t req;
  batch_t b;
  int r, m;

  nne_tc_load(c, MODEL);
  batch_init(&b);
  forward_ok(c, b.rows, b.n_rows, NULL, 0, &fr);
  /* resid * 0 written back: every position changes. */
  r = nne_client_igraph_read(zero, site, 0);
  m = NNE_CLIENT_IGRAPH_CALL(zero, "mul", nne_client_arg_node(r),
                             nne_client_arg_scalar(0.0));
  nne_client_igraph_write(zero, site, m, 0, NULL, 0);
  /* The value written back as read: nothing changes. */
  r = nne_client_igraph_read(same, site, NNE_CLIENT_INVOKE_ALL);
  nne_client_igraph_write(same, site, r, NNE_CLIENT_INVOKE_ALL, NULL, 0);
  /* 3 added at the last position only (r[:, -1:] + 3 written to that
   * range): only that position changes, the model being causal. */
  r = nne_client_igraph_read(last, site, 0);
  m = NNE_CLIENT_IGRAPH_INDEX(last, r, nne_client_idx_all(),
                              nne_client_idx_slice_ex(true, -1, false, 0, 0));
  m = NNE_CLIENT_IGRAPH_CALL(
      last, "add", nne_client_arg_node(m),
      nne_client_arg_node(nne_client_igraph_const_scalar(last, 3.0)));
  nne_client_igraph_write(last, site, m, 0, &lastpos, 1);
  ck_assert_int_eq(nne_client_igraph_error(last, NULL), 0);

  inv = (nne_client_invoke_t){.rows = b.rows, .n_rows = b.n_rows};
  tr[0] = (nne_client_trace_t){
      .name = "zero", .invokes = &inv, .n_invokes = 1, .graph = zero};
  tr[1] = (nne_client_trace_t){
      .name = "same", .invokes = &inv, .n_invokes = 1, .graph = same};
  tr[2] = (nne_client_trace_t){
      .name = "last", .invokes = &inv, .n_invokes = 1, .graph = last};
  req = one_trace(MODEL, tr);
  req.n_traces = 3;
  req.logits = NNE_CLIENT_LOGITS_ALL;
  trace_ok(c, &req, &res);
  ck_assert_msg(!positions_equal(&res.traces[0].logits, &fr.logits, 0, 1),
                "writing zeros into layers.0.resid_post changed nothing");
  ck_assert_msg(
      !positions_equal(&res.traces[0].logits, &fr.logits, b.seq - 1, b.seq),
      "writing zeros changed the first position only");
  expect_same(&res.traces[1].logits, &fr.logits, "writing back the value read");
  ck_assert_msg(
      positions_equal(&res.traces[2].logits, &fr.logits, 0, b.seq - 1),
      "a write at the last position changed an earlier one");
  ck_assert_msg(
      !positions_equal(&res.traces[2].logits, &fr.logits, b.seq - 1, b.seq),
      "a write at the last position did not change it");
  nne_client_trace_results_free(&res);
  nne_client_forward_result_free(&fr);
  nne_client_igraph_free(zero);
  nne_client_igraph_free(same);
  nne_client_igraph_free(last);
  batch_free(&b);
  nne_client_close(c);
}
END_TEST

/* Are the logits [batch, seq, VOCAB] of row r equal in a and b? */
static bool row_equal(const nne_client_tensor_t *a,
                      const nne_client_tensor_t *b, int64_t r) {
  size_t n = (size_t)(a->shape[1] * VOCAB);
  return memcmp((const float *)a->data + (size_t)r * n,
                (const float *)b->data + (size_t)r * n, n * sizeof(float)) == 0;
}

/* Two invokes of one row each: a write with NNE_CLIENT_INVOKE_ALL (an
 * unset invoke on the wire) reaches both rows; one with invoke 0 only the
 * first. */
START_TEST(test_daemon_write_every_invoke) {
  nne_client_t *c = client_at(g_daemon.addr);
  const char *site = "layers.0.resid_post";
  nne_client_igraph_t *all = nne_client_igraph_new(),
                      *first = nne_client_igraph_new();
  nne_client_forward_result_t fr;
  nne_client_trace_results_t res;
  nne_client_invoke_t inv[2];
  nne_client_trace_t tr[2];
  nne_client_trace_req_t req;
  batch_t b;

  nne_tc_load(c, MODEL);
  batch_init(&b);
  forward_ok(c, b.rows, 2, NULL, 0, &fr);
  nne_client_igraph_write(all, site, nne_client_igraph_const_scalar(all, 0.0),
                          NNE_CLIENT_INVOKE_ALL, NULL, 0);
  nne_client_igraph_write(
      first, site, nne_client_igraph_const_scalar(first, 0.0), 0, NULL, 0);
  ck_assert_int_eq(nne_client_igraph_error(all, NULL), 0);
  ck_assert_int_eq(nne_client_igraph_error(first, NULL), 0);
  inv[0] = (nne_client_invoke_t){.rows = &b.rows[0], .n_rows = 1};
  inv[1] = (nne_client_invoke_t){.rows = &b.rows[1], .n_rows = 1};
  tr[0] = (nne_client_trace_t){
      .name = "all", .invokes = inv, .n_invokes = 2, .graph = all};
  tr[1] = (nne_client_trace_t){
      .name = "first", .invokes = inv, .n_invokes = 2, .graph = first};
  req = one_trace(MODEL, tr);
  req.n_traces = 2;
  req.logits = NNE_CLIENT_LOGITS_ALL;
  trace_ok(c, &req, &res);
  ck_assert_msg(!row_equal(&res.traces[0].logits, &fr.logits, 0) &&
                    !row_equal(&res.traces[0].logits, &fr.logits, 1),
                "a write with NNE_CLIENT_INVOKE_ALL missed a row");
  ck_assert_msg(!row_equal(&res.traces[1].logits, &fr.logits, 0),
                "a write to invoke 0 missed its row");
  ck_assert_msg(row_equal(&res.traces[1].logits, &fr.logits, 1),
                "a write to invoke 0 reached invoke 1's row");
  nne_client_trace_results_free(&res);
  nne_client_forward_result_free(&fr);
  nne_client_igraph_free(all);
  nne_client_igraph_free(first);
  batch_free(&b);
  nne_client_close(c);
}
END_TEST

/* Activation patching in one session: trace "clean" saves its residual,
 * "corrupted" runs the other prompt, "patched" runs it too but writes the
 * clean residual in, through a ref: its logits are the clean run's. */
START_TEST(test_daemon_session_ref) {
  nne_client_t *c = client_at(g_daemon.addr);
  const char *site = "layers.0.resid_post";
  nne_client_igraph_t *gc = nne_client_igraph_new(),
                      *gp = nne_client_igraph_new();
  nne_client_trace_results_t res;
  nne_client_invoke_t clean, corrupt;
  nne_client_trace_t tr[3];
  nne_client_trace_req_t req;
  batch_t b;
  double d;

  nne_tc_load(c, MODEL);
  batch_init(&b);
  nne_client_igraph_save(gc, nne_client_igraph_read(gc, site, 0),
                         "clean_resid");
  nne_client_igraph_write(gp, site, nne_client_igraph_ref(gp, "clean_resid"), 0,
                          NULL, 0);
  clean = (nne_client_invoke_t){.rows = &b.rows[0], .n_rows = 1};
  corrupt = (nne_client_invoke_t){.rows = &b.rows[1], .n_rows = 1};
  tr[0] = (nne_client_trace_t){
      .name = "clean", .invokes = &clean, .n_invokes = 1, .graph = gc};
  tr[1] = (nne_client_trace_t){
      .name = "corrupted", .invokes = &corrupt, .n_invokes = 1};
  tr[2] = (nne_client_trace_t){
      .name = "patched", .invokes = &corrupt, .n_invokes = 1, .graph = gp};
  req = one_trace(MODEL, tr);
  req.n_traces = 3;
  req.logits = NNE_CLIENT_LOGITS_ALL;
  trace_ok(c, &req, &res);
  ck_assert_str_eq(res.traces[2].name, "patched");
  ck_assert_str_eq(res.traces[2].logits.name, "patched/logits");
  ck_assert_uint_eq(res.traces[0].n_saved, 1);
  ck_assert_msg(!same_tensor(&res.traces[0].logits, &res.traces[1].logits),
                "the two prompts give the same logits");
  d = max_abs_diff(&res.traces[2].logits, &res.traces[0].logits);
  ck_assert_msg(d <= 1e-5, "patched vs clean logits: max |diff| %.3g", d);
  nne_client_trace_results_free(&res);
  nne_client_igraph_free(gc);
  nne_client_igraph_free(gp);
  batch_free(&b);
  nne_client_close(c);
}
END_TEST

/* Bad graphs are INVALID_ARGUMENT naming the node; the daemon then serves
 * the next request. */
START_TEST(test_daemon_bad_graphs) {
  nne_client_t *c = client_at(g_daemon.addr);
  nne_client_igraph_t *late = nne_client_igraph_new(),
                      *nosite = nne_client_igraph_new(),
                      *noref = nne_client_igraph_new(),
                      *ok = nne_client_igraph_new();
  nne_client_trace_results_t res;
  nne_client_invoke_t inv;
  nne_client_trace_t tr;
  nne_client_trace_req_t req;
  nne_client_err_t err;
  batch_t b;

  nne_tc_load(c, MODEL);
  batch_init(&b);
  /* A write whose value is read at a later site. */
  nne_client_igraph_write(
      late, "layers.0.resid_post",
      nne_client_igraph_read(late, "layers.1.resid_post", 0), 0, NULL, 0);
  nne_client_igraph_save(
      nosite, nne_client_igraph_read(nosite, "layers.9.nope", 0), "x");
  nne_client_igraph_save(noref, nne_client_igraph_ref(noref, "never_saved"),
                         "y");
  nne_client_igraph_save(
      ok, nne_client_igraph_read(ok, "layers.1.resid_post", 0), "z");
  inv = (nne_client_invoke_t){.rows = b.rows, .n_rows = 1};
  tr = (nne_client_trace_t){.invokes = &inv, .n_invokes = 1, .graph = late};
  req = one_trace(MODEL, &tr);
  EXPECT_STATUS(nne_client_trace(c, &req, &res, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "(id 2)", "depends on read node 1",
                "later", NULL);
  tr.graph = nosite;
  EXPECT_STATUS(nne_client_trace(c, &req, &res, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "(id 1)", "layers.9.nope", NULL);
  tr.graph = noref;
  EXPECT_STATUS(nne_client_trace(c, &req, &res, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "never_saved", NULL);
  req.model = "no-such-model";
  tr.graph = ok;
  ck_assert_int_lt(nne_client_trace(c, &req, &res, &err), 0);
  req.model = MODEL;
  trace_ok(c, &req, &res);
  ck_assert_uint_eq(res.traces[0].n_saved, 1);
  nne_client_trace_results_free(&res);
  nne_client_igraph_free(late);
  nne_client_igraph_free(nosite);
  nne_client_igraph_free(noref);
  nne_client_igraph_free(ok);
  batch_free(&b);
  nne_client_close(c);
}
END_TEST

static Suite *trace_suite(void) {
  Suite *s = suite_create("trace_client");
  TCase *tc;

  tc = tcase_create("local");
  tcase_add_test(tc, test_builder_ids);
  tcase_add_test(tc, test_builder_errors);
  tcase_add_test(tc, test_request_errors);
  tcase_set_timeout(tc, 30);
  suite_add_tcase(s, tc);

  tc = tcase_create("fake");
  tcase_add_unchecked_fixture(tc, fake_setup, fake_teardown);
  tcase_add_test(tc, test_fake_round_trip);
  tcase_add_test(tc, test_fake_results);
  tcase_add_test(tc, test_fake_bad_replies);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);

  tc = tcase_create("daemon");
  tcase_add_unchecked_fixture(tc, daemon_setup, daemon_teardown);
  tcase_add_test(tc, test_daemon_save_equals_forward);
  tcase_add_test(tc, test_daemon_two_invokes);
  tcase_add_test(tc, test_daemon_write);
  tcase_add_test(tc, test_daemon_write_every_invoke);
  tcase_add_test(tc, test_daemon_session_ref);
  tcase_add_test(tc, test_daemon_bad_graphs);
  tcase_set_timeout(tc, 180);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv) {
  SRunner *sr = srunner_create(trace_suite());
  int failed;
  /* "local", "fake" or "daemon" runs that group only (as CK_RUN_CASE). */
  if (argc > 1)
    setenv("CK_RUN_CASE", argv[1], 1);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
