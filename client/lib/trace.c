/* trace.c — nnedit.v1.Inference/Trace: sessions of traced forward passes.
 * The graphs come from the builder (igraph.c); rows and top-k go through
 * forward.c's helpers, tensors through the reassembler (tensor.c). */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define M_TRACE "/nnedit.v1.Inference/Trace"

_Static_assert(NNE__FIELD_SIZE(nnedit_v1_Trace, name) ==
                       NNE_CLIENT_TRACE_NAME_MAX &&
                   NNE__FIELD_SIZE(nnedit_v1_TraceResult, name) ==
                       NNE_CLIENT_TRACE_NAME_MAX &&
                   NNE__FIELD_SIZE(nnedit_v1_TraceResult, backend_key) ==
                       NNE_CLIENT_BACKEND_KEY_MAX,
               "Trace.name, TraceResult.name, TraceResult.backend_key bounds");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_TraceRequest, model) ==
                       NNE_CLIENT_MODEL_NAME_MAX &&
                   NNE__FIELD_SIZE(nnedit_v1_TraceRequest, edit_set) ==
                       NNE_CLIENT_EDIT_SET_ID_MAX,
               "TraceRequest.model, TraceRequest.edit_set bounds");

/* A save node of the request, for telling the streamed tensors apart: save
 * names are unique in a request (checked before sending), so a tensor's
 * name says which trace and node it belongs to. Sorted by name. */
typedef struct trace_save {
  const char *name;
  size_t trace;
  uint32_t node;
  bool got;
} trace_save_t;

static int save_cmp(const void *a, const void *b) {
  return strcmp(((const trace_save_t *)a)->name,
                ((const trace_save_t *)b)->name);
}

/* What the tensor in progress is. */
typedef enum trace_tensor_kind {
  TT_NONE = 0,
  TT_SAVE,   /* a save node of the current trace */
  TT_LOGITS, /* the current trace's logits */
  TT_EXTRA,  /* one of the edit set's saves */
} trace_tensor_kind_t;

typedef struct trace_dec {
  const nne_client_trace_req_t *req;
  nne_client_trace_results_t *out;
  trace_save_t *saves; /* every save of the request, sorted by name */
  size_t n_saves;
  size_t *saves_of; /* saves_of[t]: the number of saves of trace t */
  size_t *rows_of;  /* rows_of[t]: the number of rows of trace t */
  /* The trace whose tensors and result come now: the results so far. */
  size_t cur;
  trace_tensor_kind_t kind; /* of the tensor in progress */
  trace_save_t *save;       /* TT_SAVE: its entry */
  size_t saved_cap;         /* room in out->traces[cur].saved */
  size_t n_extra;           /* the edit set's saves of this trace so far */
  /* Result of the current trace, while it is decoded. */
  nne__topk_t topk;
  unsigned members;   /* bit per TraceResponse member seen in this message */
  size_t n_listed;    /* its `saved` entries matched so far */
  bool listed_logits; /* its `saved` list named the logits */
  nne__asm_t asm_;
  nne__dec_t dec;
} trace_dec_t;

static bool trace_has_edit_set(const nne_client_trace_req_t *req) {
  return req->edit_set != NULL && req->edit_set[0] != '\0';
}

static const char *trace_name(const nne_client_trace_req_t *req, size_t t) {
  return req->traces[t].name != NULL ? req->traces[t].name : "";
}

/* Whether `name` is what trace t's logits stream as: "<name>/logits", or
 * for an unnamed trace "<t>/logits" (its position in decimal). */
static bool logits_name_ok(const nne_client_trace_req_t *req, size_t t,
                           const char *name) {
  char want[NNE_CLIENT_TRACE_NAME_MAX + sizeof "/logits"];
  const char *tn = trace_name(req, t);
  if (tn[0] != '\0')
    snprintf(want, sizeof want, "%s/logits", tn);
  else
    snprintf(want, sizeof want, "%zu/logits", t);
  return strcmp(name, want) == 0;
}

static trace_save_t *find_save(const trace_dec_t *st, const char *name) {
  trace_save_t key;
  key.name = name;
  return st->n_saves == 0 ? NULL
                          : bsearch(&key, st->saves, st->n_saves,
                                    sizeof *st->saves, save_cmp);
}

/* A result or a chunk must belong to a trace of the request. */
static bool trace_in_range(trace_dec_t *st, const char *what) {
  if (st->cur < st->req->n_traces)
    return true;
  return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                       "%s after the %zu traces of the request", what,
                       st->req->n_traces);
}

/* ---- decoding ------------------------------------------------------------ */

/* TraceResult.saved: the tensors of this trace that came, in the order they
 * came (the logits may be listed too, anywhere). */
static bool trace_saved_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  trace_dec_t *st = *arg;
  nne_client_trace_result_t *r;
  char name[NNE_CLIENT_NAME_MAX], what[64];
  size_t k = st->n_listed;
  (void)f;
  if (!trace_in_range(st, "a result"))
    return false;
  r = &st->out->traces[st->cur];
  snprintf(what, sizeof what, "traces[%zu] result: saved[%zu]", st->cur,
           k + st->listed_logits);
  if (!nne__dec_str(s, name, sizeof name, &st->dec, what))
    return false;
  if (r->has_logits && !st->listed_logits &&
      strcmp(name, r->logits.name) == 0) {
    st->listed_logits = true;
    return true;
  }
  if (!nne__saved_listed(&st->dec, what, name, r->saved, r->n_saved, k))
    return false;
  st->n_listed++;
  return true;
}

static bool trace_rows_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  trace_dec_t *st = *arg;
  void *rows = &st->topk.rows;
  if (!trace_in_range(st, "a result"))
    return false;
  return nne__rep_dec(s, f, &rows);
}

/* Checks the result of the current trace (decoded into m, its rows and
 * saved list already taken) and moves on to the next trace. */
static bool trace_result_done(trace_dec_t *st, const nnedit_v1_TraceResult *m) {
  nne_client_trace_result_t *r;
  size_t t = st->cur, i;
  if (!trace_in_range(st, "a result"))
    return false;
  r = &st->out->traces[t];
  if (m->trace != t)
    return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                         "the result of traces[%zu] says it is of trace "
                         "%" PRIu32,
                         t, m->trace);
  if (m->name[0] != '\0' && strcmp(m->name, trace_name(st->req, t)) != 0)
    return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                         "the result of traces[%zu] ('%s') is named '%s'", t,
                         trace_name(st->req, t), m->name);
  if (st->asm_.active)
    return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                         "the result of traces[%zu] came while tensor '%s' "
                         "was incomplete (%" PRIu64 " of %zu bytes)",
                         t, st->asm_.t.name, st->asm_.got, st->asm_.t.nbytes);
  for (i = 0; i < st->n_saves; i++)
    if (st->saves[i].trace == t && !st->saves[i].got)
      return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                           "traces[%zu]: save '%s' (node %" PRIu32
                           ") was not sent before its result",
                           t, st->saves[i].name, st->saves[i].node);
  if (st->req->logits != NNE_CLIENT_LOGITS_NONE && !r->has_logits)
    return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                         "traces[%zu]: logits were asked for and not sent", t);
  if (st->n_listed != r->n_saved)
    return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                         "the result of traces[%zu] lists %zu saved tensors, "
                         "%zu were sent",
                         t, st->n_listed, r->n_saved);
  r->trace = m->trace;
  nne__copy_str(r->name, sizeof r->name, trace_name(st->req, t));
  r->batch = m->batch;
  r->seq_len = m->seq_len;
  if (m->has_timing) {
    r->timing.queue_ms = m->timing.queue_ms;
    r->timing.compute_ms = m->timing.compute_ms;
    r->timing.total_ms = m->timing.total_ms;
  }
  r->cache_hit = m->cache_hit;
  memcpy(r->backend_key, m->backend_key, sizeof r->backend_key);
  st->cur++;
  st->saved_cap = 0;
  st->n_extra = 0;
  st->n_listed = 0;
  st->listed_logits = false;
  return true;
}

/* Which tensor a first chunk starts: a save of the current trace not yet
 * received, its logits, or one of the edit set's saves. */
static bool trace_tensor_begin(trace_dec_t *st, const char *name) {
  size_t t = st->cur;
  nne_client_trace_result_t *r = &st->out->traces[t];
  trace_save_t *sv = find_save(st, name);
  if (sv != NULL) {
    if (sv->trace != t)
      return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                           "tensor '%.200s' (a save of traces[%zu]) came "
                           "among those of traces[%zu]",
                           name, sv->trace, t);
    if (sv->got)
      return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                           "tensor '%.200s' was sent twice", name);
    st->kind = TT_SAVE;
    st->save = sv;
    return true;
  }
  if (st->req->logits != NNE_CLIENT_LOGITS_NONE && !r->has_logits &&
      logits_name_ok(st->req, t, name)) {
    st->kind = TT_LOGITS;
    return true;
  }
  if (trace_has_edit_set(st->req)) {
    if (st->n_extra >= NNE_CLIENT_MAX_EDITS)
      return nne__dec_fail(&st->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                           "traces[%zu]: more than %d saved tensors of the "
                           "edit set",
                           t, NNE_CLIENT_MAX_EDITS);
    st->kind = TT_EXTRA;
    return true;
  }
  return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                       "tensor '%.200s' is neither a save of traces[%zu] "
                       "('%s') nor %s",
                       name, t, trace_name(st->req, t),
                       st->req->logits != NNE_CLIENT_LOGITS_NONE
                           ? "its logits"
                           : "logits (none were asked for)");
}

/* After a chunk was decoded: checks it and feeds it on. */
static bool trace_chunk_done(trace_dec_t *st) {
  nne_client_trace_result_t *r;
  size_t t = st->cur;
  bool done;
  if (!trace_in_range(st, "a tensor chunk"))
    return false;
  r = &st->out->traces[t];
  if (!st->asm_.active && !trace_tensor_begin(st, st->asm_.msg->name))
    return false;
  if (!nne__asm_feed(&st->asm_, &done, &st->dec))
    return false;
  if (!done)
    return true;
  if (st->kind == TT_LOGITS) {
    nne__asm_take(&st->asm_, &r->logits);
    r->has_logits = true;
  } else {
    size_t max = st->saves_of[t] +
                 (trace_has_edit_set(st->req) ? NNE_CLIENT_MAX_EDITS : 0);
    if (nne_vec_grow_max(&r->saved, &st->saved_cap, r->n_saved + 1,
                         sizeof *r->saved, max) != 0)
      return nne__dec_fail(&st->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                           "out of memory");
    nne__asm_take(&st->asm_, &r->saved[r->n_saved++]);
    if (st->kind == TT_SAVE)
      st->save->got = true;
    else
      st->n_extra++;
  }
  st->kind = TT_NONE;
  st->save = NULL;
  return true;
}

/* TraceResponse.msg: just before a member is decoded (nanopb has zeroed
 * it, callbacks included), point its lists or bytes at us: a result's rows
 * go to the trace whose result this would be. */
static bool trace_member_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  trace_dec_t *st = *arg;
  nnedit_v1_TraceResult *m = f->pData;
  (void)s;
  if (st->members & (1u << f->tag))
    return nne__dec_fail(
        &st->dec, NNE_CLIENT_INTERNAL, "a TraceResponse with two %ss",
        f->tag == nnedit_v1_TraceResponse_chunk_tag ? "chunk" : "result");
  st->members |= 1u << f->tag;
  if (f->tag == nnedit_v1_TraceResponse_chunk_tag) {
    nne__asm_arm(&st->asm_, f->pData);
    return true;
  }
  if (st->cur < st->req->n_traces) {
    nne_client_trace_result_t *r = &st->out->traces[st->cur];
    nne__topk_init(&st->topk, &r->rows, &r->n_rows, st->rows_of[st->cur],
                   st->req->top_k, &st->dec);
  }
  NNE_PB_DEC(m->rows, trace_rows_dec, st);
  NNE_PB_DEC(m->saved, trace_saved_dec, st);
  return true;
}

static int trace_msg(void *ctx, grpc_byte_buffer *msg, nne_client_err_t *err) {
  trace_dec_t *st = ctx;
  nnedit_v1_TraceResponse m;
  char why[128] = "";
  bool ok;

  memset(&m, 0, sizeof m);
  NNE_PB_DEC(m.cb_msg, trace_member_dec, st);
  st->members = 0;
  if (!nne_pb_decode_bb(msg, nnedit_v1_TraceResponse_fields, &m, why,
                        sizeof why)) {
    /* The reassembler's refusal, if it refused, is the reason. */
    nne__asm_refused(&st->asm_, &st->dec);
    return nne__dec_error(&st->dec, M_TRACE, why, err);
  }
  if (st->members != 1u << m.which_msg)
    ok = nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                       "a TraceResponse with %s (one of result and chunk "
                       "expected)",
                       st->members ? "both a result and a chunk" : "neither");
  else if (m.which_msg == nnedit_v1_TraceResponse_chunk_tag)
    ok = trace_chunk_done(st);
  else
    ok = trace_result_done(st, &m.msg.result);
  return ok ? NNE__STREAM_MORE : nne__dec_error(&st->dec, M_TRACE, "", err);
}

/* ---- encoding ------------------------------------------------------------ */

/* The request's traces, each trace's invokes (each a list of rows and of
 * mask rows) and nodes, one element at a time. Each level has its own
 * state, so that a nested list never overwrites its parent's. */
typedef struct trace_enc {
  const nne_client_trace_req_t *req;
  nne_pb_list_enc_t traces, invokes; /* invokes: of the trace being encoded */
  const nne_client_trace_t *trace;   /* that trace */
  nne__rows_enc_t rows;              /* rows of the invoke being encoded */
  nne__igraph_enc_t nodes;           /* nodes of the trace being encoded */
} trace_enc_t;

static bool fill_invoke(void *ctx, size_t i, void *msg) {
  trace_enc_t *e = ctx;
  const nne_client_invoke_t *inv = &e->trace->invokes[i];
  nnedit_v1_Invoke *m = msg;
  e->rows.rows = inv->rows;
  e->rows.mask = inv->mask;
  nne__rows_enc(&e->rows, inv->n_rows, inv->n_mask, &m->input_ids,
                &m->attention_mask);
  return true;
}

static bool fill_trace(void *ctx, size_t i, void *msg) {
  trace_enc_t *e = ctx;
  const nne_client_trace_t *tr = &e->req->traces[i];
  nnedit_v1_Trace *m = msg;
  e->trace = tr;
  nne__copy_str(m->name, sizeof m->name, tr->name);
  e->invokes = (nne_pb_list_enc_t){tr->n_invokes, fill_invoke, e,
                                   sizeof(nnedit_v1_Invoke)};
  NNE_PB_ENC(m->invokes, nne_pb_list_enc, &e->invokes);
  nne__igraph_enc(&e->nodes, tr->graph, &m->nodes);
  return true;
}

/* The saves of the request, sorted by name; a name used twice is refused
 * naming both places. */
static int index_saves(const nne_client_trace_req_t *req, trace_dec_t *st,
                       size_t n, nne_client_err_t *err) {
  size_t t, k = 0, pos;
  const char *name;
  uint32_t id;
  if (n > 0 && (st->saves = calloc(n, sizeof *st->saves)) == NULL)
    return nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                        "trace: out of memory");
  for (t = 0; t < req->n_traces; t++)
    for (pos = 0;
         nne__igraph_next_save(req->traces[t].graph, &pos, &name, &id) && k < n;
         k++) {
      st->saves[k] = (trace_save_t){name, t, id, false};
      st->saves_of[t]++;
    }
  st->n_saves = n;
  if (n > 1)
    qsort(st->saves, n, sizeof *st->saves, save_cmp);
  for (k = 1; k < n; k++)
    if (strcmp(st->saves[k].name, st->saves[k - 1].name) == 0) {
      const trace_save_t *a = &st->saves[k - 1], *b = &st->saves[k];
      if (a->trace > b->trace || (a->trace == b->trace && a->node > b->node)) {
        const trace_save_t *x = a;
        a = b;
        b = x;
      }
      return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                          "trace: traces[%zu] node %" PRIu32
                          ": save name '%.200s' is already the name of "
                          "traces[%zu] node %" PRIu32
                          " (save names are unique in a request)",
                          b->trace, b->node, b->name, a->trace, a->node);
    }
  return 0;
}

/* What cannot go on the wire, and the index of the request's saves. Fills
 * st->saves, saves_of, rows_of. */
static int trace_check(const nne_client_trace_req_t *req, trace_dec_t *st,
                       size_t *max_mask, nne_client_err_t *err) {
  size_t t, i, n = 0;
  int rc;
  char where[80];

  *max_mask = 0;
  if ((rc = nne__check_name("trace", req->model, NNE_CLIENT_MODEL_NAME_MAX,
                            err)) < 0 ||
      (rc = nne__check_opt_str("trace: edit_set", req->edit_set,
                               NNE_CLIENT_EDIT_SET_ID_MAX, err)) < 0)
    return rc;
  if ((int)req->padding < 0 || (int)req->padding > NNE_CLIENT_PAD_RIGHT)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "trace: unknown padding %d", (int)req->padding);
  if ((int)req->logits < 0 || (int)req->logits > NNE_CLIENT_LOGITS_ALL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "trace: unknown logits mode %d", (int)req->logits);
  if (req->n_traces > 0 && req->traces == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "trace: traces is NULL with n_traces %zu",
                        req->n_traces);
  for (t = 0; t < req->n_traces; t++) {
    const nne_client_trace_t *tr = &req->traces[t];
    nne_client_err_t gerr;
    const char *name;
    uint32_t id;
    size_t pos = 0;
    snprintf(where, sizeof where, "trace: traces[%zu].name", t);
    if ((rc = nne__check_opt_str(where, tr->name, NNE_CLIENT_TRACE_NAME_MAX,
                                 err)) < 0)
      return rc;
    if (tr->n_invokes > 0 && tr->invokes == NULL)
      return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                          "trace: traces[%zu].invokes is NULL with n_invokes "
                          "%zu",
                          t, tr->n_invokes);
    for (i = 0; i < tr->n_invokes; i++) {
      const nne_client_invoke_t *inv = &tr->invokes[i];
      snprintf(where, sizeof where, "trace: traces[%zu].invokes[%zu].", t, i);
      if ((rc = nne__rows_check(where, inv->rows, inv->n_rows, inv->mask,
                                inv->n_mask, max_mask, err)) < 0)
        return rc;
      st->rows_of[t] += inv->n_rows;
    }
    if (tr->graph != NULL && nne_client_igraph_error(tr->graph, &gerr) < 0)
      return nne__err_set(err, gerr.code, "trace: traces[%zu].graph: %s", t,
                          gerr.message);
    if (nne__igraph_first_steps(tr->graph, &id))
      return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                          "trace: traces[%zu].graph: node %" PRIu32
                          " has steps, which only Generate's intervention "
                          "runs at (a trace is one forward)",
                          t, id);
    while (nne__igraph_next_save(tr->graph, &pos, &name, &id))
      n++;
  }
  return index_saves(req, st, n, err);
}

int nne_client_trace(nne_client_t *cli, const nne_client_trace_req_t *req,
                     nne_client_trace_results_t *out, nne_client_err_t *err) {
  nnedit_v1_TraceRequest preq = nnedit_v1_TraceRequest_init_zero;
  trace_enc_t enc;
  trace_dec_t *st;
  size_t max_mask;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || req == NULL || out == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "trace: NULL argument");
  memset(&enc, 0, sizeof enc);
  if ((st = calloc(1, sizeof *st)) == NULL ||
      (req->n_traces > 0 &&
       ((st->saves_of = calloc(req->n_traces, sizeof *st->saves_of)) == NULL ||
        (st->rows_of = calloc(req->n_traces, sizeof *st->rows_of)) == NULL))) {
    rc = nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                      "trace: out of memory");
    goto done;
  }
  st->req = req;
  st->out = out;
  if ((rc = trace_check(req, st, &max_mask, err)) < 0)
    goto done;

  enc.req = req;
  /* One result per trace, zeroed, so that a failure halfway leaves nothing
   * that trace_results_free would not find. */
  if ((max_mask > 0 &&
       (enc.rows.tmp = malloc(max_mask * sizeof *enc.rows.tmp)) == NULL) ||
      (req->n_traces > 0 &&
       (out->traces = calloc(req->n_traces, sizeof *out->traces)) == NULL)) {
    rc = nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                      "trace: out of memory");
    goto done;
  }
  out->n_traces = req->n_traces;
  nne__copy_str(preq.model, sizeof preq.model, req->model);
  nne__copy_str(preq.edit_set, sizeof preq.edit_set, req->edit_set);
  enc.traces = (nne_pb_list_enc_t){req->n_traces, fill_trace, &enc,
                                   sizeof(nnedit_v1_Trace)};
  NNE_PB_ENC(preq.traces, nne_pb_list_enc, &enc.traces);
  preq.padding = (nnedit_v1_Padding)req->padding;
  preq.top_k = req->top_k;
  preq.logits = (nnedit_v1_LogitsMode)req->logits;

  nne__asm_init(&st->asm_, cli->max_tensor_bytes);
  rc = nne__stream(cli, M_TRACE, nnedit_v1_TraceRequest_fields, &preq,
                   cli->timeout_ms, trace_msg, st, err);
  /* The server said OK: the stream must have been whole. */
  if (rc == 0)
    rc = nne__asm_end(&st->asm_, M_TRACE, err);
  if (rc == 0 && st->cur < req->n_traces)
    rc = nne__err_set(err, NNE_CLIENT_INTERNAL,
                      "Inference/Trace: the stream ended after %zu of %zu "
                      "trace results",
                      st->cur, req->n_traces);
  nne__asm_reset(&st->asm_);
done:
  free(enc.rows.tmp);
  if (st != NULL) {
    free(st->saves);
    free(st->saves_of);
    free(st->rows_of);
    free(st);
  }
  if (rc < 0)
    nne_client_trace_results_free(out);
  return rc;
}

void nne_client_trace_results_free(nne_client_trace_results_t *res) {
  size_t t;
  if (res == NULL)
    return;
  for (t = 0; t < res->n_traces; t++) {
    nne_client_trace_result_t *r = &res->traces[t];
    nne__rows_free(r->rows, r->n_rows);
    nne_client_tensor_free(&r->logits);
    nne__tensors_free(r->saved, r->n_saved);
  }
  free(res->traces);
  memset(res, 0, sizeof *res);
}

const nne_client_tensor_t *
nne_client_trace_results_saved(const nne_client_trace_results_t *res,
                               const char *name) {
  const nne_client_tensor_t *found = NULL;
  size_t t;
  for (t = 0; res != NULL && found == NULL && t < res->n_traces; t++)
    found =
        nne__tensor_find(res->traces[t].saved, res->traces[t].n_saved, name);
  return found;
}
