/* rpc_trace.c — nnedit.v1.Inference/Trace: traced forward passes.
 *
 * On the loop: the request is decoded through callbacks, one trace, invoke
 * and node at a time, into a trace session (trace.h) — token rows into
 * bounded arrays (batch.h), each node into the session's compact form,
 * constants' bytes into buffers bounded by the message limit. Then every
 * check that needs no forward: rows against the model, each graph against
 * the model's names and the whitelist (nne_trace_validate), sizes against
 * the limits. Each trace's sites, with the edit set's, are planned
 * (compiler.h) and looked up in the model's backend cache; traces of one
 * request with the same structure share one backend.
 *
 * On the compute executor, one job runs the session's traces in order:
 * per trace, the backend is built when the cache did not have it, a probe
 * forward learns its hooks' firing order when a write depends on a read
 * and the cache does not know the order yet (the last check: no write may
 * depend on a later read), then the forward runs with the trace's hook
 * context, then top-k and logits. An empty graph runs the pristine model.
 *
 * Back on the loop: new backends (and learnt orders) go into the cache, and
 * the reply streams — per trace its saved tensors, the edit set's SAVE
 * edits and its logits as TensorChunk messages sent zero-copy from tensor
 * memory, then its TraceResult — one message in flight at a time.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/slice.h>

#include "batch.h"
#include "chunk.h"
#include "compiler.h"
#include "base/log.h"
#include "nnedit/v1/inference.pb.h"
#include "rpc.h"
#include "runtime.h"
#include "trace/trace.h"

#define NNE_TOP_K_MAX 1000

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
  if (ti->n_inv == ti->cap_inv) {
    size_t cap = ti->cap_inv ? 2 * ti->cap_inv : 4;
    invoke_in_t *nv = realloc(ti->inv, cap * sizeof *nv);
    if (nv == NULL)
      return stop(s, rd, NNE_ENOMEM, "out of memory");
    ti->inv = nv;
    ti->cap_inv = cap;
  }
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

/* One decoded Node into the session's form. */
static int add_node(trace_in_t *ti, const nnedit_v1_Node *nd, data_ctx_t *dc,
                    nne_err_t *err) {
  nne_trace_t *t = ti->t;
  size_t k = ti->n_nodes_seen, i;
  int set = nd->has_read + nd->has_write + nd->has_call + nd->has_constant +
            nd->has_save + nd->has_ref;
  char where[96];

  snprintf(where, sizeof where, "traces[%zu].nodes[%zu] (id %" PRIu32 ")",
           t->index, k, nd->id);
  if (set != 1) {
    char which[64] = "";
    if (set > 1)
      snprintf(which, sizeof which, "%s%s%s%s%s%s", nd->has_read ? " read" : "",
               nd->has_write ? " write" : "", nd->has_call ? " call" : "",
               nd->has_constant ? " constant" : "", nd->has_save ? " save" : "",
               nd->has_ref ? " ref" : "");
    return nne_err_set(err, NNE_EINVAL,
                       "%s: exactly one of read, write, call, constant, save, "
                       "ref must be set (%s%s)",
                       where, set == 0 ? "none is" : "these are:", which);
  }
  if (nd->has_read)
    return nne_trace_add_read(t, nd->id, nd->read.site, nd->read.invoke, err);
  if (nd->has_write) {
    nne_dim_range_t r[NNE_TRACE_MAX_RANGES];
    for (i = 0; i < nd->write.ranges_count; i++) {
      r[i].dim = nd->write.ranges[i].dim;
      r[i].start = nd->write.ranges[i].start;
      r[i].stop = nd->write.ranges[i].stop;
    }
    return nne_trace_add_write(t, nd->id, nd->write.site, nd->write.value,
                               nd->write.invoke, r, nd->write.ranges_count,
                               err);
  }
  if (nd->has_call) {
    nne_trace_arg_t a[NNE_TRACE_MAX_ARGS];
    nne_index_item_t it[NNE_TRACE_MAX_ITEMS];
    const nnedit_v1_CallNode *c = &nd->call;
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
        it[i].start = pi->item.slice.start;
        it[i].stop = pi->item.slice.stop;
        it[i].step = pi->item.slice.step;
        it[i].has_start = pi->item.slice.has_start;
        it[i].has_stop = pi->item.slice.has_stop;
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
  if (nd->has_constant) {
    const nnedit_v1_ConstNode *c = &nd->constant;
    void *data;
    if (c->use_scalar && c->has_tensor)
      return nne_err_set(err, NNE_EINVAL,
                         "%s: constant: give a tensor or a scalar "
                         "(use_scalar), not both",
                         where);
    if (c->use_scalar)
      return nne_trace_add_scalar(t, nd->id, c->scalar, err);
    if (!c->has_tensor)
      return nne_err_set(err, NNE_EINVAL,
                         "%s: constant: needs a tensor or a scalar "
                         "(use_scalar)",
                         where);
    data = dc->data;
    dc->data = NULL; /* the trace owns it now, even on failure */
    return nne_trace_add_const(t, nd->id, (nne_dtype_t)c->tensor.dtype,
                               c->tensor.shape, (int)c->tensor.shape_count,
                               data, dc->len, err);
  }
  if (nd->has_save) {
    if (!nne_pb_utf8_valid(nd->save.name))
      /* The saved tensor streams back under this name. */
      return nne_err_set(err, NNE_EINVAL, "%s: save.name: not valid UTF-8",
                         where);
    return nne_trace_add_save(t, nd->id, nd->save.value, nd->save.name, err);
  }
  return nne_trace_add_ref(t, nd->id, nd->ref.name, err);
}

static bool node_cb(pb_istream_t *s, const pb_field_t *f, void **arg) {
  trace_ctx_t *tc = *arg;
  req_dec_t *rd = tc->rd;
  data_ctx_t dc = {rd, NULL, 0};
  bool ok;
  (void)f;
  memset(rd->node, 0, sizeof *rd->node);
  NNE_PB_DEC(rd->node->constant.tensor.data, data_cb, &dc);
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
  if (rd->n_tr == rd->cap_tr) {
    size_t cap = rd->cap_tr ? 2 * rd->cap_tr : 4;
    trace_in_t *nv = realloc(rd->tr, cap * sizeof *nv);
    if (nv == NULL)
      return stop(s, rd, NNE_ENOMEM, "out of memory");
    rd->tr = nv;
    rd->cap_tr = cap;
  }
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

/* ---- the job --------------------------------------------------------------
 */

/* A distinct backend among the request's traces (equal structure keys share
 * one). */
typedef struct bk_slot {
  nne_compile_plan_t plan;
  bool own_plan;          /* else it is the edit set's */
  nne_variant_t *variant; /* from the cache or the set, or built */
  bool hit;               /* found in the cache (or the set's) */
  bool built;             /* built by the job: the loop caches it */
  double build_ms;
  int *order;  /* first-firing order per hook, or NULL */
  bool probed; /* order learnt by this job */
  char digest[17];
} bk_slot_t;

typedef struct out_item {
  bool result; /* a TraceResult, else a tensor's chunks */
  size_t trace;
  const char *name; /* borrowed (session arena or trace_job) */
  nne_tensor_t *t;
  const uint8_t *p;
  size_t bytes;
} out_item_t;

typedef struct trace_job {
  nne_trace_t *t;
  nne_batch_t in;
  int64_t *row0, *rows; /* per invoke */
  int slot;             /* -1: the pristine model */
  bool reused;          /* its slot's backend was built by an earlier
                           trace of this request */
  int *set_edit_hook;   /* per edit of the set: its hook in the slot */
  char *logits_name;
  char **set_save_names; /* per edit of the set: "<label>/<name>" */
  /* results */
  nne_tensor_t *tk_ids, *tk_vals, *tk_probs;
  const int64_t *tk_ids_p;
  const float *tk_vals_p, *tk_probs_p;
  double compute_ms;
  size_t out_first, out_end; /* its tensors in the job's out list */
} trace_job_t;

typedef struct tr_job {
  nne_job_t job;
  nne_server_t *srv;
  nne_call_t *call;
  nne_model_entry_t *entry;
  nne_model_t *model;
  nne_edit_set_t *set; /* held (in_flight) until done, or NULL */
  size_t n_set_edits;
  nne_trace_session_t sess;
  trace_job_t *tj;
  size_t n_tj;
  bk_slot_t *slots;
  size_t n_slots;
  int top_k;
  int logits_mode;
  int n_heads;
  int64_t vocab;
  uint64_t budget, used; /* response bytes for saves */
  int rc;
  nne_err_t err;
  out_item_t *outs;
  size_t n_outs, cap_outs;
  size_t out_i, sent;
  nne_pb_list_enc_t *row_tops;
  double queue_ms;
} tr_job_t;

static void tr_job_free(tr_job_t *j) {
  size_t i, k;
  for (i = 0; i < j->n_tj; i++) {
    trace_job_t *tj = &j->tj[i];
    nne_batch_free(&tj->in);
    free(tj->row0);
    free(tj->rows);
    free(tj->set_edit_hook);
    free(tj->logits_name);
    for (k = 0; tj->set_save_names != NULL && k < j->n_set_edits; k++)
      free(tj->set_save_names[k]);
    free(tj->set_save_names);
    nne_tensor_unref(tj->tk_ids);
    nne_tensor_unref(tj->tk_vals);
    nne_tensor_unref(tj->tk_probs);
  }
  free(j->tj);
  for (i = 0; i < j->n_slots; i++) {
    if (j->slots[i].own_plan)
      nne_compiler_plan_free(&j->slots[i].plan);
    nne_variant_unref(j->slots[i].variant);
    free(j->slots[i].order);
  }
  free(j->slots);
  for (i = 0; i < j->n_outs; i++)
    nne_tensor_unref(j->outs[i].t);
  free(j->outs);
  free(j->row_tops);
  nne_trace_session_free(&j->sess);
  free(j);
}

static int push_out(tr_job_t *j, const out_item_t *o) {
  if (j->n_outs == j->cap_outs) {
    size_t cap = j->cap_outs ? 2 * j->cap_outs : 16;
    out_item_t *nv = realloc(j->outs, cap * sizeof *nv);
    if (nv == NULL)
      return nne_err_set(&j->err, NNE_ENOMEM, "out of memory");
    j->outs = nv;
    j->cap_outs = cap;
  }
  j->outs[j->n_outs++] = *o;
  return 0;
}

/* A tensor to stream (takes the reference; host bytes made here, on the
 * executor, so that the loop only hands out slices). */
static int add_tensor_out(tr_job_t *j, size_t trace, const char *name,
                          nne_tensor_t *t) {
  out_item_t o;
  const void *p;
  int rc = nne_tensor_host_data(t, &p, &j->err);
  if (rc == 0) {
    memset(&o, 0, sizeof o);
    o.trace = trace;
    o.name = name;
    o.t = t;
    o.p = p;
    o.bytes = nne_tensor_nbytes(t);
    rc = push_out(j, &o);
  }
  if (rc != 0)
    nne_tensor_unref(t);
  return rc;
}

/* Trace i's backend, ready before any trace runs: built when the cache did
 * not have it, and the last check, which needs the hooks' firing order (a
 * probe forward, once per backend), done. */
static int prepare_trace(tr_job_t *j, size_t i) {
  trace_job_t *tj = &j->tj[i];
  nne_trace_t *t = tj->t;
  bk_slot_t *bk = tj->slot >= 0 ? &j->slots[tj->slot] : NULL;
  int rc = 0;

  if (nne_call_cancelled(j->call))
    return nne_err_set(&j->err, NNE_ECANCELED, "cancelled before it ran");
  if (bk != NULL && bk->variant == NULL) {
    uint64_t t0 = nne_now_ns();
    rc = nne_variant_build(j->model, bk->plan.engine_sites, bk->plan.n_hooks,
                           &bk->variant, &j->err);
    bk->build_ms = (double)(nne_now_ns() - t0) / 1e6;
    if (rc != 0) {
      size_t k;
      char where[96];
      /* The engine names the site it could not hook (a node selector
       * that is not in the module's code): name the node too. */
      for (k = 0; k < t->n_nodes; k++)
        if (t->nodes[k].site != NULL &&
            strstr(j->err.msg, t->nodes[k].site->canonical) != NULL)
          break;
      if (k < t->n_nodes)
        nne_err_prefix(&j->err, "%s: %s: compiling the backend",
                       nne_trace_node_where(t, k, where, sizeof where),
                       t->nodes[k].site_text);
      else
        nne_err_prefix(&j->err, "traces[%zu]: compiling the backend", i);
      return rc;
    }
    bk->built = true;
  }
  if (bk != NULL && t->needs_order) {
    if (bk->order == NULL) {
      bk->order =
          malloc((bk->plan.n_hooks ? bk->plan.n_hooks : 1) * sizeof *bk->order);
      if (bk->order == NULL)
        return nne_err_set(&j->err, NNE_ENOMEM, "out of memory");
      rc = nne_trace_probe_order(bk->variant, bk->plan.n_hooks, j->vocab,
                                 bk->order, &j->err);
      if (rc != 0) {
        free(bk->order);
        bk->order = NULL;
        return rc;
      }
      bk->probed = true;
    }
    if ((rc = nne_trace_check_order(t, bk->order, &j->err)) != 0)
      return rc;
  }
  return 0;
}

/* Runs trace i of the session (prepare_trace() done). */
static int run_trace(tr_job_t *j, size_t i) {
  trace_job_t *tj = &j->tj[i];
  nne_trace_t *t = tj->t;
  bk_slot_t *bk = tj->slot >= 0 ? &j->slots[tj->slot] : NULL;
  nne_tensor_t *ids = NULL, *mask = NULL, *logits = NULL, *last = NULL;
  int64_t shape[2] = {tj->in.B, tj->in.S};
  nne_trace_run_t run;
  nne_runtime_t rt;
  bool have_run = false, have_rt = false;
  const void *p;
  uint64_t used0 = j->used;
  size_t k;
  int rc = 0;

  memset(&run, 0, sizeof run);
  memset(&rt, 0, sizeof rt);
  if (nne_call_cancelled(j->call))
    return nne_err_set(&j->err, NNE_ECANCELED, "cancelled before it ran");
  rc = nne_tensor_from_host(NNE_DTYPE_I64, shape, 2, tj->in.ids, &ids, &j->err);
  if (rc == 0 && tj->in.mask != NULL)
    rc = nne_tensor_from_host(NNE_DTYPE_I64, shape, 2, tj->in.mask, &mask,
                              &j->err);
  if (rc == 0 && j->set != NULL && bk != NULL) {
    rc = nne_runtime_init(&rt, bk->plan.n_hooks, j->set->n_edits, &j->err);
    have_rt = rc == 0;
    if (rc == 0)
      rc = nne_runtime_track(&rt, j->set->edits, tj->set_edit_hook, &j->err);
    rt.edit_set_id = j->set->id;
    rt.cancel = &j->call->cancel;
    rt.budget = j->budget;
    rt.used = used0;
  }
  if (rc == 0 && t->n_nodes > 0) {
    nne_trace_run_opts_t o;
    memset(&o, 0, sizeof o);
    o.model = j->model;
    o.invoke_row0 = tj->row0;
    o.invoke_rows = tj->rows;
    o.batch = tj->in.B;
    o.n_heads = j->n_heads;
    o.rt = have_rt ? &rt : NULL;
    o.cancel = &j->call->cancel;
    o.budget = j->budget;
    o.used = used0;
    o.limit = j->srv->cfg->max_response_bytes;
    o.max_value_bytes = j->srv->cfg->max_trace_value_bytes;
    rc = nne_trace_run_init(&run, t, &o, &j->err);
    have_run = rc == 0;
    if (rc == 0)
      rc = nne_trace_run_begin(&run, &j->err);
  }
  if (rc == 0 && bk != NULL) {
    if (have_run)
      rc = nne_variant_forward(bk->variant, ids, mask, nne_trace_hook, &run,
                               &logits, &j->err);
    else
      rc = nne_variant_forward(bk->variant, ids, mask, nne_runtime_hook, &rt,
                               &logits, &j->err);
    if (rc != 0 && have_run && run.err.code != 0)
      j->err = run.err; /* our reason beats the engine's relay */
    else if (rc != 0 && !have_run && rt.err.code != 0)
      j->err = rt.err;
  } else if (rc == 0) {
    rc = nne_model_forward(j->model, ids, mask, &logits, &j->err);
  }
  if (rc == 0 && have_run)
    rc = nne_trace_run_end(&run, &j->err);
  /* Both count from what earlier traces took. */
  if (have_run)
    j->used += run.used - used0;
  if (have_rt)
    j->used += rt.used - used0;
  if (rc == 0 && j->used > j->budget)
    rc = nne_err_set(&j->err, NNE_ERESOURCE,
                     "traces[%zu]: the saved tensors exceed the response "
                     "limit of %llu bytes (--max-response-bytes)",
                     i, (unsigned long long)j->srv->cfg->max_response_bytes);
  if (rc == 0 &&
      (j->top_k > 0 || j->logits_mode == nnedit_v1_LogitsMode_LOGITS_LAST))
    rc = nne_tensor_select_positions(logits, tj->in.last_pos, &last, &j->err);
  if (rc == 0 && j->top_k > 0) {
    rc = nne_tensor_topk(last, j->top_k, &tj->tk_ids, &tj->tk_vals,
                         &tj->tk_probs, &j->err);
    if (rc == 0)
      rc = nne_tensor_host_data(tj->tk_ids, &p, &j->err);
    if (rc == 0) {
      tj->tk_ids_p = p;
      rc = nne_tensor_host_data(tj->tk_vals, &p, &j->err);
    }
    if (rc == 0) {
      tj->tk_vals_p = p;
      rc = nne_tensor_host_data(tj->tk_probs, &p, &j->err);
    }
    if (rc == 0)
      tj->tk_probs_p = p;
  }
  /* What streams for this trace: its saves in node order, the edit set's
   * SAVE edits, its logits; then its result. */
  tj->out_first = j->n_outs;
  for (k = 0; rc == 0 && k < t->n_nodes; k++) {
    const nne_trace_node_t *nd = &t->nodes[k];
    if (nd->op == NNE_TRACE_SAVE)
      rc = add_tensor_out(j, i, nd->name, nne_tensor_ref(t->saved[nd->slot]));
  }
  for (k = 0; rc == 0 && have_rt && k < j->set->n_edits; k++) {
    const nne_edit_t *ed = &j->set->edits[k];
    if (ed->op != NNE_EDIT_SAVE)
      continue;
    if (rt.edit_saves[k] == NULL) {
      rc = nne_err_set(&j->err, NNE_ESTATE,
                       "traces[%zu]: edit_set %s: edits[%zu] '%s': the site "
                       "did not run in this forward",
                       i, j->set->id, k, ed->site_text);
      break;
    }
    rc = add_tensor_out(j, i, tj->set_save_names[k],
                        nne_tensor_ref(rt.edit_saves[k]));
  }
  if (rc == 0 && j->logits_mode != nnedit_v1_LogitsMode_LOGITS_NONE)
    rc = add_tensor_out(
        j, i, tj->logits_name,
        nne_tensor_ref(j->logits_mode == nnedit_v1_LogitsMode_LOGITS_LAST
                           ? last
                           : logits));
  tj->out_end = j->n_outs;
  if (rc == 0) {
    out_item_t o;
    memset(&o, 0, sizeof o);
    o.result = true;
    o.trace = i;
    rc = push_out(j, &o);
  }
  if (have_run)
    nne_trace_run_free(&run);
  if (have_rt)
    nne_runtime_free(&rt);
  nne_tensor_unref(ids);
  nne_tensor_unref(mask);
  nne_tensor_unref(logits);
  nne_tensor_unref(last);
  return rc;
}

static void tr_work(nne_job_t *job) {
  tr_job_t *j = (tr_job_t *)job;
  size_t i;
  /* Every check first, so that a bad trace late in a session costs no
   * forward of the traces before it. */
  for (i = 0; i < j->n_tj; i++) {
    uint64_t t0 = nne_now_ns();
    j->rc = prepare_trace(j, i);
    j->tj[i].compute_ms = (double)(nne_now_ns() - t0) / 1e6;
    if (j->rc != 0)
      return;
  }
  for (i = 0; i < j->n_tj; i++) {
    uint64_t t0 = nne_now_ns();
    j->rc = run_trace(j, i);
    j->tj[i].compute_ms += (double)(nne_now_ns() - t0) / 1e6;
    if (j->rc != 0)
      return;
  }
}

/* ---- streaming the reply --------------------------------------------------
 */

typedef struct row_ctx {
  trace_job_t *tj;
  int top_k;
  int64_t row;
} row_ctx_t;

typedef struct rows_ctx {
  trace_job_t *tj;
  nne_pb_list_enc_t *tops;
} rows_ctx_t;

static bool fill_score(void *ctx, size_t i, void *msg) {
  row_ctx_t *rc = ctx;
  nnedit_v1_TokenScore *ts = msg;
  size_t k = (size_t)rc->row * (size_t)rc->top_k + i;
  ts->token_id = rc->tj->tk_ids_p[k];
  ts->logit = rc->tj->tk_vals_p[k];
  ts->prob = rc->tj->tk_probs_p[k];
  return true;
}

static bool fill_row(void *ctx, size_t i, void *msg) {
  rows_ctx_t *rc = ctx;
  nnedit_v1_RowTopK *row = msg;
  row->position = (uint32_t)rc->tj->in.last_pos[i];
  if (rc->tops != NULL)
    NNE_PB_ENC(row->top, nne_pb_list_enc, &rc->tops[i]);
  return true;
}

static void send_next(nne_call_t *call, bool ok);

static void send_result(nne_call_t *call, tr_job_t *j, size_t i) {
  trace_job_t *tj = &j->tj[i];
  nnedit_v1_TraceResponse resp = nnedit_v1_TraceResponse_init_zero;
  nnedit_v1_TraceResult *r = &resp.result;
  nne_pb_list_enc_t rows;
  nne_pb_str_list_enc_t saved = {NULL, 0};
  const char **names = NULL;
  row_ctx_t *rcs = NULL;
  nne_pb_list_enc_t *tops = NULL;
  rows_ctx_t rctx;
  int64_t b;
  size_t k;

  resp.has_result = true;
  r->trace = (uint32_t)i;
  snprintf(r->name, sizeof r->name, "%s", tj->t->name);
  r->batch = (uint32_t)tj->in.B;
  r->seq_len = (uint32_t)tj->in.S;
  if (j->top_k > 0) {
    rcs = calloc((size_t)tj->in.B, sizeof *rcs);
    tops = calloc((size_t)tj->in.B, sizeof *tops);
    if (rcs == NULL || tops == NULL) {
      free(rcs);
      free(tops);
      nne_call_fail(call, NNE_ENOMEM, "out of memory building the reply");
      return;
    }
    for (b = 0; b < tj->in.B; b++) {
      rcs[b].tj = tj;
      rcs[b].top_k = j->top_k;
      rcs[b].row = b;
      tops[b].n = (size_t)j->top_k;
      tops[b].fill = fill_score;
      tops[b].ctx = &rcs[b];
      tops[b].msg_size = sizeof(nnedit_v1_TokenScore);
    }
  }
  rctx.tj = tj;
  rctx.tops = tops;
  rows.n = (size_t)tj->in.B;
  rows.fill = fill_row;
  rows.ctx = &rctx;
  rows.msg_size = sizeof(nnedit_v1_RowTopK);
  NNE_PB_ENC(r->rows, nne_pb_list_enc, &rows);
  r->has_timing = true;
  r->timing.queue_ms = j->queue_ms;
  r->timing.compute_ms = tj->compute_ms;
  r->timing.total_ms = (double)(nne_now_ns() - call->t_start_ns) / 1e6;
  if (tj->slot >= 0) {
    const bk_slot_t *bk = &j->slots[tj->slot];
    r->cache_hit = bk->hit || tj->reused;
    snprintf(r->backend_key, sizeof r->backend_key, "%s", bk->digest);
  }
  /* The tensors that streamed for this trace, logits aside (the result
   * names them by the "<trace>/logits" convention). */
  names = calloc(tj->out_end - tj->out_first + 1, sizeof *names);
  if (names == NULL) {
    free(rcs);
    free(tops);
    nne_call_fail(call, NNE_ENOMEM, "out of memory building the reply");
    return;
  }
  for (k = tj->out_first; k < tj->out_end; k++)
    if (j->outs[k].name != tj->logits_name)
      names[saved.n++] = j->outs[k].name;
  saved.v = names;
  NNE_PB_ENC(r->saved, nne_pb_str_list_enc, &saved);
  nne_call_send_msg(call, nnedit_v1_TraceResponse_fields, &resp, send_next);
  /* Encoding is synchronous: the contexts are no longer used. */
  free(rcs);
  free(tops);
  free(names);
}

static void send_next(nne_call_t *call, bool ok) {
  tr_job_t *j = call->user;
  grpc_byte_buffer *bb;
  out_item_t *o;
  bool done;

  if (!ok || nne_call_cancelled(call))
    return; /* the client went away; the call's free releases the job */
  if (j->out_i >= j->n_outs) {
    nne_call_finish(call);
    return;
  }
  o = &j->outs[j->out_i];
  if (o->result) {
    j->out_i++;
    j->sent = 0;
    send_result(call, j, o->trace);
    return;
  }
  bb = nne_chunk_next(o->name, o->t, o->p, o->bytes,
                      call->srv->cfg->chunk_bytes,
                      nnedit_v1_TraceResponse_chunk_tag, &j->sent, &done);
  if (bb == NULL) {
    nne_call_fail(call, NNE_EINTERNAL, "cannot encode a tensor chunk header");
    return;
  }
  if (done) {
    j->out_i++;
    j->sent = 0;
  }
  nne_call_send(call, bb, send_next);
}

/* Finds the cache entry of a key without counting a hit or a miss. */
static nne_backend_t *cache_entry(nne_backend_cache_t *c, const char *key) {
  nne_backend_t *b;
  for (b = c->entries; b != NULL; b = b->next)
    if (strcmp(b->key, key) == 0)
      return b;
  return NULL;
}

static void tr_done(nne_job_t *job) {
  tr_job_t *j = (tr_job_t *)job;
  nne_call_t *call = j->call;
  size_t i;

  j->queue_ms = (double)(job->t_start_ns - job->t_submit_ns) / 1e6;
  for (i = 0; i < j->n_slots && j->entry->model != NULL; i++) {
    bk_slot_t *bk = &j->slots[i];
    nne_backend_t *b = NULL;
    nne_err_t cerr;
    if (bk->built &&
        nne_backend_cache_put(&j->entry->backends, bk->plan.key, bk->variant,
                              bk->build_ms, &b, &cerr) != 0) {
      /* A full cache of pinned backends only means this one is not kept. */
      nne_log_debug("backend not cached: %s", cerr.msg);
      continue;
    }
    if (bk->probed) {
      if (b == NULL)
        b = cache_entry(&j->entry->backends, bk->plan.key);
      if (b != NULL && b->hook_order == NULL) {
        /* The order depends on the structure only: later traces on this
         * backend skip the probe. */
        b->hook_order = bk->order;
        b->n_hooks = bk->plan.n_hooks;
        bk->order = NULL;
      }
    }
  }
  if (j->set != NULL) {
    /* The stream needs nothing of the set: its saves' names are copies. */
    nne_edit_set_release(&j->srv->editor, j->set);
    j->set = NULL;
  }
  nne_registry_release(&j->srv->registry, j->entry, j->model);
  j->model = NULL;
  nne_server_poke(j->srv);
  if (nne_call_cancelled(call)) {
    nne_log_debug("Trace: client gone after %.1f ms of compute",
                  (double)(job->t_end_ns - job->t_start_ns) / 1e6);
  } else if (j->rc != 0) {
    nne_call_fail_err(call, &j->err);
  } else {
    /* The call owns the job from here: the stream reads from it. */
    call->user = j;
    call->user_free = (void (*)(void *))tr_job_free;
    send_next(call, true);
    nne_call_unref(call); /* the job's reference, after the send holds one */
    return;
  }
  nne_call_unref(call);
  tr_job_free(j);
}

/* ---- preparing the session on the loop ------------------------------------
 */

/* Rows of trace i: checked, padded, and each invoke's place in the batch. */
static int prepare_rows(tr_job_t *j, const trace_in_t *ti, int padding,
                        nne_err_t *err) {
  trace_job_t *tj = &j->tj[ti->t->index];
  nne_batch_group_t *groups;
  char(*prefix)[48];
  char what[48];
  size_t k, n = ti->n_inv;
  int64_t row = 0;
  int rc;

  if (n == 0)
    return nne_err_set(err, NNE_EINVAL,
                       "traces[%zu].invokes: a trace needs at least one "
                       "invoke",
                       ti->t->index);
  for (k = 0; k < n; k++)
    if (ti->inv[k].ids.n == 0)
      return nne_err_set(err, NNE_EINVAL,
                         "traces[%zu].invokes[%zu].input_ids: the invoke has "
                         "no rows",
                         ti->t->index, k);
  groups = calloc(n, sizeof *groups);
  prefix = calloc(n, sizeof *prefix);
  tj->row0 = calloc(n, sizeof *tj->row0);
  tj->rows = calloc(n, sizeof *tj->rows);
  if (groups == NULL || prefix == NULL || tj->row0 == NULL ||
      tj->rows == NULL) {
    free(groups);
    free(prefix);
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  for (k = 0; k < n; k++) {
    snprintf(prefix[k], sizeof prefix[k], "traces[%zu].invokes[%zu].",
             ti->t->index, k);
    groups[k].ids = &ti->inv[k].ids;
    groups[k].mask = &ti->inv[k].mask;
    groups[k].prefix = prefix[k];
    tj->row0[k] = row;
    tj->rows[k] = (int64_t)ti->inv[k].ids.n;
    row += tj->rows[k];
  }
  snprintf(what, sizeof what, "traces[%zu].invokes", ti->t->index);
  rc = nne_batch_check(groups, n, what, padding, j->entry, err);
  if (rc == 0)
    rc = nne_batch_build(&tj->in, groups, n, padding, j->entry->pad_token_id,
                         err);
  free(groups);
  free(prefix);
  ti->t->n_invokes = n;
  return rc;
}

/* The backend of trace i: the edit set's hooks plus the trace's sites,
 * shared with an earlier trace of the request when the structure is the
 * same. No sites and no set: the pristine model. */
static int prepare_backend(tr_job_t *j, size_t i, nne_err_t *err) {
  trace_job_t *tj = &j->tj[i];
  nne_trace_t *t = tj->t;
  nne_edit_set_t *set = j->set;
  size_t n_set = set ? set->plan.n_hooks : 0, n_edits = set ? set->n_edits : 0;
  size_t n = t->n_sites, k;
  nne_names_site_t *rs = NULL;
  nne_compile_plan_t plan;
  bk_slot_t *bk;
  int rc;

  tj->slot = -1;
  if (n == 0 && set == NULL)
    return 0;
  tj->set_edit_hook = calloc(n_edits ? n_edits : 1, sizeof *tj->set_edit_hook);
  if (tj->set_edit_hook == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  if (n == 0) {
    /* The edit set's own backend: its plan, its variant. */
    plan = set->plan;
    for (k = 0; k < n_edits; k++)
      tj->set_edit_hook[k] = set->edits[k].hook;
  } else {
    rs = calloc(n_set + n, sizeof *rs);
    if (rs == NULL)
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
    for (k = 0; k < n_set; k++)
      rs[k] = set->plan.hooks[k];
    nne_trace_sites(t, rs + n_set);
    rc = nne_compiler_plan(j->model, rs, n_set + n, &plan, err);
    free(rs);
    if (rc != 0)
      return rc;
    for (k = 0; k < n_edits; k++)
      tj->set_edit_hook[k] = plan.item_hook[set->edits[k].hook];
  }
  rc = nne_trace_bind(t, plan.n_hooks, n > 0 ? plan.item_hook + n_set : NULL,
                      err);
  for (k = 0; k < j->n_slots; k++)
    if (strcmp(j->slots[k].plan.key, plan.key) == 0)
      break;
  if (k < j->n_slots) {
    /* Same structure as an earlier trace: same hook numbering. */
    if (n > 0)
      nne_compiler_plan_free(&plan);
    tj->slot = (int)k;
    tj->reused = true;
    return rc;
  }
  bk = &j->slots[j->n_slots++];
  memset(bk, 0, sizeof *bk);
  bk->plan = plan;
  bk->own_plan = n > 0;
  tj->slot = (int)(bk - j->slots);
  nne_backend_key_digest(plan.key, bk->digest);
  if (rc != 0)
    return rc;
  if (n == 0) {
    /* No sites: no writes, so no order is ever needed. */
    bk->variant = nne_variant_ref(set->variant);
    bk->hit = true;
  } else {
    nne_backend_t *b = nne_compiler_get_backend(&j->entry->backends, &plan);
    if (b != NULL) {
      bk->variant = nne_variant_ref(b->variant);
      bk->hit = true;
      if (b->hook_order != NULL && b->n_hooks == plan.n_hooks) {
        /* A copy: the entry may be evicted while the job runs. */
        bk->order =
            malloc((plan.n_hooks ? plan.n_hooks : 1) * sizeof *bk->order);
        if (bk->order != NULL)
          memcpy(bk->order, b->hook_order, plan.n_hooks * sizeof *bk->order);
      }
    }
  }
  tj->reused = false;
  return 0;
}

/* Names the request streams besides saves, reserved before any save is
 * validated: each trace's logits and the edit set's SAVE edits. */
static int reserve_names(tr_job_t *j, nne_err_t *err) {
  char what[128];
  size_t i, k;
  int rc;
  for (i = 0; i < j->n_tj; i++) {
    trace_job_t *tj = &j->tj[i];
    const char *label = tj->t->label;
    size_t len = strlen(label);
    if (j->logits_mode != nnedit_v1_LogitsMode_LOGITS_NONE) {
      tj->logits_name = malloc(len + sizeof "/logits");
      if (tj->logits_name == NULL)
        return nne_err_set(err, NNE_ENOMEM, "out of memory");
      snprintf(tj->logits_name, len + sizeof "/logits", "%s/logits", label);
      snprintf(what, sizeof what, "the logits of traces[%zu]", i);
      if ((rc = nne_trace_session_reserve(&j->sess, tj->logits_name, i, what,
                                          err)) != 0)
        return rc;
    }
    if (j->set == NULL)
      continue;
    tj->set_save_names = calloc(j->set->n_edits ? j->set->n_edits : 1,
                                sizeof *tj->set_save_names);
    if (tj->set_save_names == NULL)
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
    for (k = 0; k < j->set->n_edits; k++) {
      const nne_edit_t *ed = &j->set->edits[k];
      size_t nl;
      if (ed->op != NNE_EDIT_SAVE)
        continue;
      nl = len + 1 + strlen(ed->name) + 1;
      if (nl > 256)
        return nne_err_set(err, NNE_EINVAL,
                           "traces[%zu]: '%s/%s' (the edit set's save) is "
                           "longer than 255 characters",
                           i, label, ed->name);
      tj->set_save_names[k] = malloc(nl);
      if (tj->set_save_names[k] == NULL)
        return nne_err_set(err, NNE_ENOMEM, "out of memory");
      snprintf(tj->set_save_names[k], nl, "%s/%s", label, ed->name);
      snprintf(what, sizeof what, "edit_set edits[%zu] of traces[%zu]", k, i);
      if ((rc = nne_trace_session_reserve(&j->sess, tj->set_save_names[k], i,
                                          what, err)) != 0)
        return rc;
    }
  }
  return 0;
}

static int check_request(const nnedit_v1_TraceRequest *in,
                         const nne_model_entry_t *e, size_t n_traces,
                         nne_err_t *err) {
  if (in->padding < nnedit_v1_Padding_PADDING_NONE ||
      in->padding > nnedit_v1_Padding_PADDING_RIGHT)
    return nne_err_set(err, NNE_EINVAL, "padding: unknown value %d",
                       (int)in->padding);
  if (in->logits < nnedit_v1_LogitsMode_LOGITS_NONE ||
      in->logits > nnedit_v1_LogitsMode_LOGITS_ALL)
    return nne_err_set(err, NNE_EINVAL, "logits: unknown value %d",
                       (int)in->logits);
  if (in->top_k > NNE_TOP_K_MAX)
    return nne_err_set(err, NNE_EINVAL, "top_k: %u is more than %d", in->top_k,
                       NNE_TOP_K_MAX);
  if ((int64_t)in->top_k > e->vocab_size)
    return nne_err_set(err, NNE_EINVAL,
                       "top_k: %u is more than the vocabulary (%" PRId64 ")",
                       in->top_k, e->vocab_size);
  if (n_traces == 0)
    return nne_err_set(err, NNE_EINVAL,
                       "traces: a request needs at least one trace");
  return 0;
}

/* Everything on the loop after decoding; the job is complete when it
 * returns 0. */
static int prepare(tr_job_t *j, const nnedit_v1_TraceRequest *in, req_dec_t *rd,
                   nne_err_t *err) {
  const nne_config_t *cfg = j->srv->cfg;
  nne_model_entry_t *e = j->entry;
  nne_trace_env_t env;
  uint64_t out_bytes = 0;
  size_t i;
  int rc;

  if ((rc = check_request(in, e, rd->n_tr, err)) != 0)
    return rc;
  j->top_k = (int)in->top_k;
  j->logits_mode = (int)in->logits;
  j->n_heads = (int)e->spec.n_heads;
  j->vocab = e->vocab_size;
  j->tj = calloc(rd->n_tr, sizeof *j->tj);
  j->slots = calloc(rd->n_tr, sizeof *j->slots);
  if (j->tj == NULL || j->slots == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  j->n_tj = rd->n_tr;
  for (i = 0; i < rd->n_tr; i++) {
    j->tj[i].t = rd->tr[i].t;
    j->tj[i].slot = -1;
  }
  if (in->edit_set[0] != '\0') {
    nne_edit_set_t *set = nne_editor_find(&j->srv->editor, in->edit_set);
    if (set == NULL)
      return nne_err_set(err, NNE_ENOTFOUND, "edit_set: no edit set '%s'",
                         in->edit_set);
    if (set->entry != e)
      return nne_err_set(err, NNE_EINVAL,
                         "edit_set: '%s' edits model '%s', not '%s'",
                         in->edit_set, set->entry->name, e->name);
    j->set = set;
    j->n_set_edits = set->n_edits;
    nne_edit_set_hold(set);
  }
  for (i = 0; i < rd->n_tr; i++) {
    if ((rc = prepare_rows(j, &rd->tr[i], (int)in->padding, err)) != 0)
      return rc;
    if (in->logits == nnedit_v1_LogitsMode_LOGITS_LAST)
      out_bytes += (uint64_t)j->tj[i].in.B * (uint64_t)e->vocab_size * 4u;
    else if (in->logits == nnedit_v1_LogitsMode_LOGITS_ALL)
      out_bytes += (uint64_t)j->tj[i].in.B * (uint64_t)j->tj[i].in.S *
                   (uint64_t)e->vocab_size * nne_dtype_size(e->dtype);
  }
  if (out_bytes > cfg->max_response_bytes)
    return nne_err_set(err, NNE_ERESOURCE,
                       "logits: %" PRIu64 " bytes exceed the response limit "
                       "of %" PRIu64 " bytes (--max-response-bytes)",
                       out_bytes, cfg->max_response_bytes);
  j->budget = cfg->max_response_bytes - out_bytes;
  if ((rc = reserve_names(j, err)) != 0)
    return rc;
  env.names = e->names;
  env.model = j->model;
  for (i = 0; i < j->n_tj; i++) {
    if ((rc = nne_trace_validate(j->tj[i].t, &env, err)) != 0)
      return rc;
    if ((rc = prepare_backend(j, i, err)) != 0)
      return rc;
  }
  return 0;
}

void nne_rpc_inference_trace(nne_server_t *srv, nne_call_t *call,
                             grpc_byte_buffer *req) {
  const nne_config_t *cfg = srv->cfg;
  nnedit_v1_TraceRequest in = nnedit_v1_TraceRequest_init_zero;
  req_dec_t rd;
  nne_model_entry_t *e;
  tr_job_t *j;
  nne_err_t err;
  char why[256];

  j = calloc(1, sizeof *j);
  memset(&rd, 0, sizeof rd);
  if (j == NULL || (rd.node = malloc(sizeof *rd.node)) == NULL) {
    free(j);
    nne_call_fail(call, NNE_ENOMEM, "out of memory");
    return;
  }
  nne_trace_session_init(&j->sess, cfg->max_traces, cfg->max_trace_nodes);
  j->srv = srv;
  j->call = call;
  rd.cfg = cfg;
  rd.sess = &j->sess;
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
  if (nne_registry_lookup(&srv->registry, "model", in.model, &e, &err) != 0)
    goto fail;
  if (nne_registry_acquire(&srv->registry, e, &j->model, &err) != 0)
    goto fail;
  j->entry = e;
  if (prepare(j, &in, &rd, &err) != 0)
    goto fail;
  j->job.work = tr_work;
  j->job.done = tr_done;
  nne_call_ref(call); /* the job's reference */
  if (nne_executor_submit(&srv->compute, &j->job, &err) != 0) {
    nne_call_unref(call);
    goto fail;
  }
  req_dec_free(&rd);
  return;
fail:
  req_dec_free(&rd);
  if (j->set != NULL) {
    nne_edit_set_release(&srv->editor, j->set);
    j->set = NULL;
  }
  if (j->entry != NULL)
    nne_registry_release(&srv->registry, j->entry, j->model);
  j->model = NULL;
  tr_job_free(j);
  nne_call_fail_err(call, &err);
}
