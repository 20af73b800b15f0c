/* trace.c — nnedit.v1.Inference/Trace: traced forward passes.
 *
 * The request is decoded through callbacks, one trace, invoke and node at
 * a time, into a trace session (trace.h) — token rows into bounded arrays
 * (infer/batch.h), each node into the session's compact form, constants'
 * bytes into buffers bounded by the message limit (Node.op and
 * ConstNode.value are oneofs: nanopb's message callbacks, run just before a
 * member is decoded, point the constant's bytes at that buffer). An unset
 * invoke is every invoke (NNE_TRACE_ALL_INVOKES). The request's options
 * are checked here; everything else — rows against the model, each graph
 * against the model's names and the whitelist, backends planned, the job
 * run and the reply streamed — is the inference pipeline's
 * (infer/session.h). This file encodes each TraceResult.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/batch.h"
#include "infer/session.h"
#include "base/log.h"
#include "base/vec.h"
#include "nnedit/v1/inference.pb.h"
#include "rpc/rpc.h"
#include "trace/trace.h"


/* ---- decoding -------------------------------------------------------------
 */

typedef struct invoke_in {
  nne_rows_dec_t ids, mask;
} invoke_in_t;

typedef struct trace_in {
  nne_trace_t *t;
  invoke_in_t *inv;
  size_t n_inv, cap_inv;
  size_t n_nodes_seen;
} trace_in_t;

typedef struct req_dec {
  const nne_config_t *cfg;
  nne_trace_session_t *sess;
  trace_in_t *tr;
  size_t n_tr, cap_tr;
  nnedit_v1_Node *node; /* scratch for one node (several KiB) */
  size_t data_left;     /* constant bytes still allowed */
  nne_err_t err;        /* our reason for stopping the decode */
} req_dec_t;

typedef struct trace_ctx {
  req_dec_t *rd;
  trace_in_t *ti;
} trace_ctx_t;

typedef struct data_ctx {
  req_dec_t *rd;
  void *data;
  size_t len;
} data_ctx_t;

static bool stop(pb_istream_t *s, req_dec_t *rd, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool stop(pb_istream_t *s, req_dec_t *rd, int code, const char *fmt,
                 ...) {
  va_list ap;
  char msg[NNE_ERR_MSG_MAX];
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  nne_err_set(&rd->err, code, "%s", msg);
  PB_RETURN_ERROR(s, "stopped");
}

static bool invoke_cb(pb_istream_t *s, const pb_field_t *f, void **arg) {
  trace_ctx_t *tc = *arg;
  req_dec_t *rd = tc->rd;
  trace_in_t *ti = tc->ti;
  nnedit_v1_Invoke msg = nnedit_v1_Invoke_init_zero;
  invoke_in_t *iv;
  (void)f;
  if (ti->n_inv >= rd->cfg->max_batch)
    return stop(s, rd, NNE_ERESOURCE,
                "traces[%zu].invokes: more than %u invokes (--max-batch)",
                ti->t->index, rd->cfg->max_batch);
  if (NNE_VEC_GROW(&ti->inv, &ti->cap_inv, ti->n_inv + 1) != 0)
    return stop(s, rd, NNE_ENOMEM, "out of memory");
  iv = &ti->inv[ti->n_inv++];
  /* Every value takes a byte on the wire: the message limit bounds them. */
  nne_rows_dec_init(&iv->ids, nnedit_v1_TokenRow_ids_tag, rd->cfg->max_batch,
                    rd->cfg->max_message_bytes);
  nne_rows_dec_init(&iv->mask, nnedit_v1_MaskRow_values_tag, rd->cfg->max_batch,
                    rd->cfg->max_message_bytes);
  NNE_PB_DEC(msg.input_ids, nne_rows_dec_cb, &iv->ids);
  NNE_PB_DEC(msg.attention_mask, nne_rows_dec_cb, &iv->mask);
  if (pb_decode(s, nnedit_v1_Invoke_fields, &msg))
    return true;
  if (iv->ids.text_too_big)
    return stop(s, rd, NNE_ERESOURCE,
                "traces[%zu].invokes[%zu].input_ids: a text row over %zu "
                "bytes, or texts over the message limit",
                ti->t->index, ti->n_inv - 1, NNE_ROW_TEXT_MAX);
  if (iv->ids.overflow || iv->mask.overflow)
    return stop(s, rd, NNE_ERESOURCE,
                "traces[%zu].invokes[%zu].%s: more than %u rows (--max-batch)",
                ti->t->index, ti->n_inv - 1,
                iv->ids.overflow ? "input_ids" : "attention_mask",
                rd->cfg->max_batch);
  return false;
}

/* ConstNode.tensor.data into its own buffer, within the request's allowance
 * (the message limit). */
static bool data_cb(pb_istream_t *s, const pb_field_t *f, void **arg) {
  data_ctx_t *dc = *arg;
  size_t n = s->bytes_left;
  void *p;
  (void)f;
  if (n > dc->rd->data_left)
    return stop(s, dc->rd, NNE_ERESOURCE,
                "constant tensors exceed the message limit "
                "(--max-message-bytes)");
  p = malloc(n ? n : 1);
  if (p == NULL)
    return stop(s, dc->rd, NNE_ENOMEM, "out of memory");
  if (!pb_read(s, p, n)) {
    free(p);
    return false;
  }
  free(dc->data);
  dc->data = p;
  dc->len = n;
  dc->rd->data_left -= n;
  return true;
}

/* A read's or write's optional invoke: unset is every invoke; a set one is
 * a position, never negative. */
static int node_invoke(const char *where, const char *op, bool has_invoke,
                       int32_t invoke, int *out, nne_err_t *err) {
  if (!has_invoke) {
    *out = NNE_TRACE_ALL_INVOKES;
    return 0;
  }
  if (invoke < 0)
    return nne_err_set(err, NNE_EINVAL,
                       "%s: %s.invoke %" PRId32 " is negative (an invoke's "
                       "position in invokes; leave it unset for the whole "
                       "batch)",
                       where, op, invoke);
  *out = invoke;
  return 0;
}

/* A constant: a tensor (its bytes in dc) or a scalar. */
static int add_const(nne_trace_t *t, const char *where,
                     const nnedit_v1_Node *nd, data_ctx_t *dc, nne_err_t *err) {
  const nnedit_v1_ConstNode *c = &nd->op.constant;
  void *data;
  switch (c->which_value) {
  case nnedit_v1_ConstNode_scalar_tag:
    return nne_trace_add_scalar(t, nd->id, c->value.scalar, err);
  case nnedit_v1_ConstNode_tensor_tag:
    data = dc->data;
    dc->data = NULL; /* the trace owns it now, even on failure */
    return nne_trace_add_const(
        t, nd->id, (nne_dtype_t)c->value.tensor.dtype, c->value.tensor.shape,
        (int)c->value.tensor.shape_count, data, dc->len, err);
  default:
    return nne_err_set(err, NNE_EINVAL,
                       "%s: constant: needs a tensor or a scalar", where);
  }
}

/* One decoded Node into the session's form. */
static int add_node(trace_in_t *ti, const nnedit_v1_Node *nd, data_ctx_t *dc,
                    nne_err_t *err) {
  nne_trace_t *t = ti->t;
  size_t k = ti->n_nodes_seen, i;
  char where[96];
  int inv = NNE_TRACE_ALL_INVOKES, rc;

  snprintf(where, sizeof where, "traces[%zu].nodes[%zu] (id %" PRIu32 ")",
           t->index, k, nd->id);
  switch (nd->which_op) {
  case nnedit_v1_Node_read_tag:
    if ((rc = node_invoke(where, "read", nd->op.read.has_invoke,
                          nd->op.read.invoke, &inv, err)) != 0)
      return rc;
    return nne_trace_add_read(t, nd->id, nd->op.read.site, inv, err);
  case nnedit_v1_Node_write_tag: {
    const nnedit_v1_WriteNode *w = &nd->op.write;
    nne_dim_range_t r[NNE_TRACE_MAX_RANGES];
    if ((rc = node_invoke(where, "write", w->has_invoke, w->invoke, &inv,
                          err)) != 0)
      return rc;
    for (i = 0; i < w->ranges_count; i++) {
      r[i].dim = w->ranges[i].dim;
      r[i].start = w->ranges[i].start;
      r[i].stop = w->ranges[i].stop;
    }
    return nne_trace_add_write(t, nd->id, w->site, w->value, inv, r,
                               w->ranges_count, err);
  }
  case nnedit_v1_Node_call_tag: {
    nne_trace_arg_t a[NNE_TRACE_MAX_ARGS];
    nne_index_item_t it[NNE_TRACE_MAX_ITEMS];
    const nnedit_v1_CallNode *c = &nd->op.call;
    memset(a, 0, sizeof a);
    memset(it, 0, sizeof it);
    for (i = 0; i < c->args_count; i++) {
      const nnedit_v1_Arg *pa = &c->args[i];
      a[i].name = pa->name;
      switch (pa->which_value) {
      case nnedit_v1_Arg_node_tag:
        a[i].kind = NNE_ARG_TENSOR;
        a[i].node = pa->value.node;
        break;
      case nnedit_v1_Arg_scalar_tag:
        a[i].kind = NNE_ARG_SCALAR;
        a[i].scalar = pa->value.scalar;
        break;
      case nnedit_v1_Arg_integer_tag:
        a[i].kind = NNE_ARG_INT;
        a[i].integer = pa->value.integer;
        break;
      case nnedit_v1_Arg_ints_tag:
        a[i].kind = NNE_ARG_INTS;
        a[i].ints = pa->value.ints.values;
        a[i].n_ints = pa->value.ints.values_count;
        break;
      case nnedit_v1_Arg_boolean_tag:
        a[i].kind = NNE_ARG_BOOL;
        a[i].boolean = pa->value.boolean;
        break;
      case nnedit_v1_Arg_dtype_tag:
        a[i].kind = NNE_ARG_DTYPE;
        a[i].dtype = (nne_dtype_t)pa->value.dtype;
        break;
      case nnedit_v1_Arg_module_tag:
        a[i].kind = NNE_ARG_TENSOR;
        a[i].module = pa->value.module;
        break;
      default:
        return nne_err_set(err, NNE_EINVAL, "%s: call.args[%zu]: no value set",
                           where, i);
      }
    }
    for (i = 0; i < c->index_items_count; i++) {
      const nnedit_v1_IndexItem *pi = &c->index_items[i];
      switch (pi->which_item) {
      case nnedit_v1_IndexItem_index_tag:
        it[i].kind = NNE_INDEX_INT;
        it[i].index = pi->item.index;
        break;
      case nnedit_v1_IndexItem_slice_tag:
        it[i].kind = NNE_INDEX_SLICE;
        it[i].has_start = pi->item.slice.has_start;
        it[i].has_stop = pi->item.slice.has_stop;
        it[i].start = it[i].has_start ? pi->item.slice.start : 0;
        it[i].stop = it[i].has_stop ? pi->item.slice.stop : 0;
        it[i].step = pi->item.slice.step;
        break;
      case nnedit_v1_IndexItem_ellipsis_tag:
        it[i].kind = NNE_INDEX_ELLIPSIS;
        break;
      case nnedit_v1_IndexItem_newaxis_tag:
        it[i].kind = NNE_INDEX_NEWAXIS;
        break;
      default:
        return nne_err_set(err, NNE_EINVAL,
                           "%s: call.index_items[%zu]: no item set", where, i);
      }
    }
    return nne_trace_add_call(t, nd->id, c->fn, a, c->args_count, it,
                              c->index_items_count, err);
  }
  case nnedit_v1_Node_constant_tag: return add_const(t, where, nd, dc, err);
  case nnedit_v1_Node_save_tag:
    if (!nne_pb_utf8_valid(nd->op.save.name))
      /* The saved tensor streams back under this name. */
      return nne_err_set(err, NNE_EINVAL, "%s: save.name: not valid UTF-8",
                         where);
    return nne_trace_add_save(t, nd->id, nd->op.save.value, nd->op.save.name,
                              err);
  case nnedit_v1_Node_ref_tag:
    return nne_trace_add_ref(t, nd->id, nd->op.ref.name, err);
  default:
    return nne_err_set(err, NNE_EINVAL,
                       "%s: exactly one of read, write, call, constant, save, "
                       "ref must be set (none is)",
                       where);
  }
}

/* ConstNode.value: just before its tensor member is decoded (nanopb has
 * zeroed the member), its bytes go to data_cb. */
static bool const_value_cb(pb_istream_t *s, const pb_field_t *f, void **arg) {
  (void)s;
  if (f->tag == nnedit_v1_ConstNode_tensor_tag)
    NNE_PB_DEC(((nnedit_v1_Tensor *)f->pData)->data, data_cb, *arg);
  return true;
}

/* Node.op: just before its constant member is decoded (zeroed by nanopb,
 * cb_value included), arm the constant's own callback. */
static bool node_op_cb(pb_istream_t *s, const pb_field_t *f, void **arg) {
  (void)s;
  if (f->tag == nnedit_v1_Node_constant_tag)
    NNE_PB_DEC(((nnedit_v1_ConstNode *)f->pData)->cb_value, const_value_cb,
               *arg);
  return true;
}

static bool node_cb(pb_istream_t *s, const pb_field_t *f, void **arg) {
  trace_ctx_t *tc = *arg;
  req_dec_t *rd = tc->rd;
  data_ctx_t dc = {rd, NULL, 0};
  bool ok;
  (void)f;
  memset(rd->node, 0, sizeof *rd->node);
  NNE_PB_DEC(rd->node->cb_op, node_op_cb, &dc);
  ok = pb_decode(s, nnedit_v1_Node_fields, rd->node);
  if (ok && add_node(tc->ti, rd->node, &dc, &rd->err) != 0)
    ok = false;
  tc->ti->n_nodes_seen++;
  free(dc.data);
  if (!ok && rd->err.code != 0)
    PB_RETURN_ERROR(s, "stopped");
  return ok;
}

static bool trace_cb(pb_istream_t *s, const pb_field_t *f, void **arg) {
  req_dec_t *rd = *arg;
  nnedit_v1_Trace msg = nnedit_v1_Trace_init_zero;
  trace_ctx_t tc;
  trace_in_t *ti;
  (void)f;
  if (NNE_VEC_GROW(&rd->tr, &rd->cap_tr, rd->n_tr + 1) != 0)
    return stop(s, rd, NNE_ENOMEM, "out of memory");
  ti = &rd->tr[rd->n_tr];
  memset(ti, 0, sizeof *ti);
  if (nne_trace_session_add(rd->sess, NULL, &ti->t, &rd->err) != 0)
    PB_RETURN_ERROR(s, "stopped");
  rd->n_tr++;
  tc.rd = rd;
  tc.ti = ti;
  NNE_PB_DEC(msg.invokes, invoke_cb, &tc);
  NNE_PB_DEC(msg.nodes, node_cb, &tc);
  if (!pb_decode(s, nnedit_v1_Trace_fields, &msg))
    return false;
  if (!nne_pb_utf8_valid(msg.name))
    /* TraceResult.name and the "<name>/..." tensor names echo it. */
    return stop(s, rd, NNE_EINVAL, "traces[%zu].name: not valid UTF-8",
                ti->t->index);
  nne_trace_set_name(ti->t, msg.name);
  return true;
}

static void req_dec_free(req_dec_t *rd) {
  size_t i, j;
  for (i = 0; i < rd->n_tr; i++) {
    for (j = 0; j < rd->tr[i].n_inv; j++) {
      nne_rows_free(&rd->tr[i].inv[j].ids);
      nne_rows_free(&rd->tr[i].inv[j].mask);
    }
    free(rd->tr[i].inv);
  }
  free(rd->tr);
  free(rd->node);
  rd->tr = NULL;
  rd->node = NULL;
  rd->n_tr = 0;
}

/* ---- one Trace message for another request (Generate's intervention) ---- */

struct nne_rpc_trace_in {
  req_dec_t rd;
};

nne_rpc_trace_in_t *nne_rpc_trace_in_new(const nne_config_t *cfg,
                                         nne_trace_session_t *sess) {
  nne_rpc_trace_in_t *in = calloc(1, sizeof *in);
  if (in == NULL)
    return NULL;
  in->rd.cfg = cfg;
  in->rd.sess = sess;
  in->rd.data_left = cfg->max_message_bytes;
  in->rd.node = malloc(sizeof *in->rd.node);
  if (in->rd.node == NULL) {
    free(in);
    return NULL;
  }
  return in;
}

bool nne_rpc_trace_in_cb(pb_istream_t *s, const pb_field_t *f, void **arg) {
  nne_rpc_trace_in_t *in = *arg;
  void *rd = &in->rd;
  if (in->rd.n_tr > 0) {
    stop(s, &in->rd, NNE_EINVAL, "%s: given twice", "intervention");
    return false;
  }
  return trace_cb(s, f, &rd);
}

const nne_err_t *nne_rpc_trace_in_err(const nne_rpc_trace_in_t *in) {
  return in->rd.err.code != 0 ? &in->rd.err : NULL;
}

nne_trace_t *nne_rpc_trace_in_trace(const nne_rpc_trace_in_t *in,
                                    size_t *n_invokes) {
  if (in->rd.n_tr == 0)
    return NULL;
  *n_invokes = in->rd.tr[0].n_inv;
  return in->rd.tr[0].t;
}

void nne_rpc_trace_in_free(nne_rpc_trace_in_t *in) {
  if (in == NULL)
    return;
  req_dec_free(&in->rd);
  free(in);
}

int nne_rpc_trace_decode(const nne_config_t *cfg, const uint8_t *buf,
                         size_t len, nne_err_t *err) {
  nnedit_v1_TraceRequest in = nnedit_v1_TraceRequest_init_zero;
  nne_trace_session_t sess;
  pb_istream_t s = pb_istream_from_buffer(buf, len);
  req_dec_t rd;
  int rc = 0;

  memset(&rd, 0, sizeof rd);
  nne_trace_session_init(&sess, cfg->max_traces, cfg->max_trace_nodes);
  rd.cfg = cfg;
  rd.sess = &sess;
  rd.data_left = cfg->max_message_bytes;
  rd.node = malloc(sizeof *rd.node);
  if (rd.node == NULL) {
    rc = nne_err_set(err, NNE_ENOMEM, "out of memory");
  } else {
    NNE_PB_DEC(in.traces, trace_cb, &rd);
    if (!pb_decode(&s, nnedit_v1_TraceRequest_fields, &in)) {
      if (rd.err.code != 0)
        *err = rd.err;
      else
        nne_err_set(err, NNE_EINVAL, "malformed TraceRequest: %s",
                    PB_GET_ERROR(&s));
      rc = err->code;
    }
  }
  req_dec_free(&rd);
  nne_trace_session_free(&sess);
  return rc;
}

/* ---- the result of one trace ------------------------------------------------
 */

static int send_result(nne_call_t *call, void *ctx, size_t i,
                       void (*on_sent)(nne_call_t *, bool)) {
  nne_infer_session_t *s = ctx;
  nne_infer_trace_t *tr = &s->tr[i];
  nnedit_v1_TraceResponse resp = nnedit_v1_TraceResponse_init_zero;
  nnedit_v1_TraceResult *r = &resp.msg.result;
  nne_pb_str_list_enc_t saved = {NULL, 0};
  nne_outbox_rows_t rows;
  const char **names;
  nne_err_t err;
  int rc;

  resp.which_msg = nnedit_v1_TraceResponse_result_tag;
  r->trace = (uint32_t)i;
  snprintf(r->name, sizeof r->name, "%s", tr->t->name);
  r->batch = (uint32_t)tr->in.B;
  r->seq_len = (uint32_t)tr->in.S;
  if (nne_outbox_rows_init(&rows, &tr->pass, tr->in.last_pos, tr->in.B,
                           s->top_k, &err) != 0) {
    nne_call_fail_err(call, &err);
    return -1;
  }
  NNE_PB_ENC(r->rows, nne_pb_list_enc, &rows.list);
  r->has_timing = true;
  r->timing.queue_ms = s->queue_ms;
  r->timing.compute_ms = tr->compute_ms;
  r->timing.total_ms = (double)(nne_now_ns() - nne_call_start_ns(call)) / 1e6;
  r->cache_hit = tr->cache_hit;
  snprintf(r->backend_key, sizeof r->backend_key, "%s", tr->backend_key);
  /* Every tensor that streamed for this trace since the previous result,
   * in stream order, its "<trace>/logits" included: a client can pair
   * each result with what came before it without knowing the convention. */
  names = calloc(tr->out_end - tr->out_first + 1, sizeof *names);
  if (names == NULL) {
    nne_outbox_rows_free(&rows);
    nne_call_fail(call, NNE_ENOMEM, "out of memory building the reply");
    return -1;
  }
  saved.n = nne_outbox_names(&s->ob, tr->out_first, tr->out_end, names);
  saved.v = names;
  NNE_PB_ENC(r->saved, nne_pb_str_list_enc, &saved);
  rc = nne_call_send_msg(call, nnedit_v1_TraceResponse_fields, &resp, on_sent);
  /* Encoding is synchronous: the contexts are no longer used. */
  nne_outbox_rows_free(&rows);
  free(names);
  return rc;
}

/* ---- the handler -------------------------------------------------------------
 */

/* The decoded traces into the session, with their invokes' rows. */
static int add_traces(nne_infer_session_t *s, req_dec_t *rd, nne_err_t *err) {
  size_t i, k;
  int rc = 0;
  for (i = 0; rc == 0 && i < rd->n_tr; i++) {
    trace_in_t *ti = &rd->tr[i];
    nne_batch_group_t *groups = calloc(ti->n_inv ? ti->n_inv : 1,
                                       sizeof *groups);
    char(*prefix)[48] = calloc(ti->n_inv ? ti->n_inv : 1, sizeof *prefix);
    if (groups == NULL || prefix == NULL) {
      free(groups);
      free(prefix);
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
    }
    for (k = 0; k < ti->n_inv; k++) {
      snprintf(prefix[k], sizeof prefix[k], "traces[%zu].invokes[%zu].",
               ti->t->index, k);
      groups[k].ids = &ti->inv[k].ids;
      groups[k].mask = &ti->inv[k].mask;
      groups[k].prefix = prefix[k];
    }
    rc = nne_infer_session_add(s, ti->t, groups, ti->n_inv, err);
    free(groups);
    free(prefix);
  }
  return rc;
}

void nne_rpc_inference_trace(nne_call_t *call, grpc_byte_buffer *req) {
  nne_daemon_t *d = nne_call_app(call);
  const nne_config_t *cfg = d->cfg;
  nnedit_v1_TraceRequest in = nnedit_v1_TraceRequest_init_zero;
  nne_infer_session_t *s;
  req_dec_t rd;
  nne_err_t err;
  char why[256];
  int rc;

  memset(&rd, 0, sizeof rd);
  s = nne_infer_session_new(d, call, send_result, NULL,
                            nnedit_v1_TraceResponse_chunk_tag);
  if (s == NULL || (rd.node = malloc(sizeof *rd.node)) == NULL) {
    nne_infer_session_free(s);
    nne_call_fail(call, NNE_ENOMEM, "out of memory");
    return;
  }
  s->ob.ctx = s;
  rd.cfg = cfg;
  rd.sess = &s->sess;
  rd.data_left = cfg->max_message_bytes;
  NNE_PB_DEC(in.traces, trace_cb, &rd);
  if (!nne_pb_decode_bb(req, nnedit_v1_TraceRequest_fields, &in, why,
                        sizeof why)) {
    if (rd.err.code != 0)
      err = rd.err;
    else
      nne_err_set(&err, NNE_EINVAL, "malformed TraceRequest: %s", why);
    goto fail;
  }
  nne_call_set_model(call, in.model);
  rc = nne_infer_session_hold(s, in.model, in.edit_set, &err);
  if (rc == 0)
    rc = nne_rpc_check_options(in.padding, in.logits, in.top_k,
                               s->hold.entry, &err);
  if (rc == 0)
    rc = nne_infer_session_options(s, (int)in.padding, (int)in.top_k,
                                   (nne_logits_mode_t)in.logits, &err);
  if (rc == 0)
    rc = add_traces(s, &rd, &err);
  if (rc == 0)
    rc = nne_infer_session_submit(s, &err);
  if (rc != 0)
    goto fail;
  req_dec_free(&rd);
  return;
fail:
  req_dec_free(&rd);
  nne_infer_session_free(s);
  nne_call_fail_err(call, &err);
}
