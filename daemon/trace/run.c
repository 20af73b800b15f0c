/* run.c — running a validated trace along one forward: event-driven, on
 * the executor (trace.h says how). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace/internal.h"

enum { RS_WAIT = 0, RS_DONE = 1 };

int nne_trace_run_init(nne_trace_run_t *r, nne_trace_t *t,
                       const nne_trace_run_opts_t *o, nne_err_t *err) {
  size_t n = t->n_nodes, nh = t->n_hooks, k;
  char *p;
  size_t sz_val = (n ? n : 1) * sizeof(nne_tensor_t *);
  size_t sz_int = (n ? n : 1) * sizeof(int);

  memset(r, 0, sizeof *r);
  r->t = t;
  r->o = *o;
  r->used = o->used;
  /* One allocation per run for all the per-node and per-hook state. */
  p = malloc(sz_val + 3 * sz_int + (n ? n : 1) + (nh ? nh : 1));
  if (p == NULL)
    return nne__trace_oom(err);
  r->val = (nne_tensor_t **)p;
  r->pending = (int *)(p + sz_val);
  r->left = r->pending + (n ? n : 1);
  r->queue = r->left + (n ? n : 1);
  r->state = (unsigned char *)(r->queue + (n ? n : 1));
  r->fired = r->state + (n ? n : 1);
  for (k = 0; k < n; k++) {
    r->val[k] = NULL;
    r->pending[k] = (int)t->nodes[k].n_in;
    r->left[k] = (int)t->nodes[k].n_out;
    r->state[k] = RS_WAIT;
  }
  memset(r->fired, 0, nh ? nh : 1);
  return 0;
}

void nne_trace_run_free(nne_trace_run_t *r) {
  size_t k;
  if (r->val == NULL)
    return;
  for (k = 0; k < r->t->n_nodes; k++)
    nne_tensor_unref(r->val[k]);
  free(r->val); /* the one allocation */
  r->val = NULL;
}

/* A consumer of node k is done with it. */
static void release(nne_trace_run_t *r, int k) {
  if (--r->left[k] <= 0 && r->val[k] != NULL) {
    nne_tensor_unref(r->val[k]);
    r->val[k] = NULL;
  }
}

/* Node k's value is known (takes the reference). */
static void produce(nne_trace_run_t *r, int k, nne_tensor_t *v) {
  r->val[k] = v;
  r->state[k] = RS_DONE;
  r->queue[r->qt++] = k;
  if (r->left[k] <= 0) { /* nobody needs it */
    nne_tensor_unref(v);
    r->val[k] = NULL;
  }
}

#define run_err(r, k, code, ...)                                               \
  nne__trace_node_err((r)->t, (k), &(r)->err, (code), __VA_ARGS__)

/* Whether a call's result might exceed `limit` bytes, so that it must be
 * sized on meta tensors first (a few microseconds a call). Functions whose
 * result is never larger than their input in elements (unary maps,
 * reductions, softmax, topk, views, indexing) are not: their input exists
 * already, and at most 8 bytes per element come out. Element-wise functions
 * on tensors of one shape are not either, when that shape at 8 bytes per
 * element fits. The rest (full, matmul, cat, stack, broadcasting) are. */
static bool may_outgrow(const char *fn, const nne_op_arg_t *oa, size_t n,
                        uint64_t limit) {
  static const char *const grow[] = {"full", "matmul", "cat", "stack", "to"};
  static const char *const elementwise[] = {"add", "sub",   "mul",  "div",
                                            "pow", "where", "clamp"};
  const nne_tensor_t *first = NULL;
  size_t i;
  int d;
  for (i = 0; i < sizeof grow / sizeof grow[0]; i++)
    if (strcmp(fn, grow[i]) == 0)
      return true;
  for (i = 0; i < sizeof elementwise / sizeof elementwise[0]; i++)
    if (strcmp(fn, elementwise[i]) == 0)
      break;
  if (i == sizeof elementwise / sizeof elementwise[0])
    return false;
  for (i = 0; i < n; i++) {
    const nne_tensor_t *t = oa[i].tensor;
    if (oa[i].kind != NNE_ARG_TENSOR || t == NULL)
      continue;
    if (first == NULL) {
      first = t;
      continue;
    }
    if (nne_tensor_ndim(t) != nne_tensor_ndim(first))
      return true;
    for (d = 0; d < nne_tensor_ndim(t); d++)
      if (nne_tensor_shape(t)[d] != nne_tensor_shape(first)[d])
        return true;
  }
  return first == NULL || (uint64_t)nne_tensor_numel(first) > limit / 8;
}

static int eval_call(nne_trace_run_t *r, int k) {
  const nne_trace_node_t *nd = &r->t->nodes[k];
  nne_op_arg_t oa[NNE_TRACE_MAX_ARGS];
  const nne_tensor_t *inputs[NNE_TRACE_MAX_ARGS];
  nne_tensor_t *out = NULL;
  nne_err_t e;
  size_t i, n_oa = 0, ti = 0;
  int rc;

  /* A client that left stops the trace at its next call, not only at the
   * next site: a graph of many heavy calls (before the forward, or between
   * two sites) would otherwise hold the executor long after the reply can
   * go anywhere. */
  if (r->o.cancel != NULL && atomic_load(r->o.cancel) != 0)
    return nne_err_set(&r->err, NNE_ECANCELED, "cancelled during the trace");
  for (i = 0; i < nd->n_args; i++) {
    const nne_trace_arg_t *a = &nd->args[i];
    if (a->module != NULL)
      continue;
    nne__trace_op_arg(&oa[n_oa], a);
    if (a->kind == NNE_ARG_TENSOR) {
      /* The j-th tensor argument is the j-th input edge. */
      oa[n_oa].tensor = r->val[nd->in[ti]];
      inputs[ti] = oa[n_oa].tensor;
      ti++;
    }
    n_oa++;
  }
  if (nd->module < 0 && r->o.max_value_bytes > 0 &&
      may_outgrow(nd->fn, oa, n_oa, r->o.max_value_bytes)) {
    /* Sized before it runs (on meta tensors): a short request can ask for
     * full([65536, 65536]) or a broadcast of two huge operands. */
    uint64_t bytes = 0;
    rc = nne_op_result_bytes(nd->fn, oa, n_oa, nd->items, nd->n_items, &bytes,
                             &e);
    if (rc != 0)
      return run_err(r, (size_t)k, rc, "%s", e.msg);
    if (bytes > r->o.max_value_bytes)
      return run_err(r, (size_t)k, NNE_ERESOURCE,
                     "call %s would make a value of %llu bytes, over the "
                     "limit of %llu (--max-trace-value-bytes)",
                     nd->fn, (unsigned long long)bytes,
                     (unsigned long long)r->o.max_value_bytes);
  }
  if (nd->module >= 0)
    rc = nne_model_call_module(r->o.model, nd->module, inputs, ti, &out, &e);
  else
    rc = nne_op_call(nd->fn, oa, n_oa, nd->items, nd->n_items, &out, &e);
  if (rc != 0)
    return run_err(r, (size_t)k, rc, "%s", e.msg);
  for (i = 0; i < nd->n_in; i++)
    release(r, nd->in[i]);
  produce(r, k, out);
  return 0;
}

/* A save's value is known: keep it (a copy when it may be activation memory
 * that the forward can still write). */
static int capture(nne_trace_run_t *r, int k) {
  nne_trace_t *t = r->t;
  const nne_trace_node_t *nd = &t->nodes[k];
  int v = nd->in[0];
  nne_tensor_t *x = r->val[v], *keep = NULL;
  nne_err_t e;

  r->used += nne_tensor_nbytes(x);
  if (r->used > r->o.budget)
    return nne__trace_node_err(
        t, (size_t)k, &r->err, NNE_ERESOURCE,
        "save '%s': the saved tensors exceed the response limit "
        "of %llu bytes (--max-response-bytes)",
        nd->name, (unsigned long long)(r->o.limit ? r->o.limit : r->o.budget));
  if (r->in_forward && t->nodes[v].aliases) {
    if (nne_tensor_clone(x, &keep, &e) != 0)
      return run_err(r, (size_t)k, e.code, "%s", e.msg);
  } else {
    keep = nne_tensor_ref(x);
  }
  nne_tensor_unref(t->saved[nd->slot]);
  t->saved[nd->slot] = keep;
  r->state[k] = RS_DONE;
  release(r, v);
  return 0;
}

/* Computes everything that became computable: nodes taken off the queue
 * tell their consumers; a call whose inputs are all known runs, a save
 * whose value is known takes it. Writes wait for their hook. */
static int drain(nne_trace_run_t *r) {
  nne_trace_t *t = r->t;
  int rc;
  while (r->qh < r->qt) {
    const nne_trace_node_t *nd = &t->nodes[r->queue[r->qh++]];
    size_t i;
    for (i = 0; i < nd->n_out; i++) {
      int c = nd->out[i];
      if (--r->pending[c] > 0)
        continue;
      if (t->nodes[c].op == NNE_TRACE_CALL)
        rc = eval_call(r, c);
      else if (t->nodes[c].op == NNE_TRACE_SAVE)
        rc = capture(r, c);
      else
        rc = 0;
      if (rc != 0)
        return rc;
    }
  }
  return 0;
}

static int make_const(nne_trace_run_t *r, int k, nne_tensor_t **out) {
  const nne_trace_node_t *nd = &r->t->nodes[k];
  nne_tensor_t *x = NULL, *moved;
  const char *dev = r->o.model ? nne_model_device(r->o.model) : "cpu";
  nne_err_t e;
  int rc;

  if (nd->use_scalar) {
    float f = (float)nd->scalar;
    rc = nne_tensor_from_host(NNE_DTYPE_F32, NULL, 0, &f, &x, &e);
  } else {
    rc = nne_tensor_from_host(nd->dtype, nd->shape, nd->ndim, nd->data, &x, &e);
  }
  if (rc == 0 && strcmp(dev, "cpu") != 0) {
    rc = nne_tensor_to_device(x, dev, &moved, &e);
    nne_tensor_unref(x);
    x = rc == 0 ? moved : NULL;
  }
  if (rc != 0)
    return run_err(r, (size_t)k, rc, "%s", e.msg);
  *out = x;
  return 0;
}

int nne_trace_run_begin(nne_trace_run_t *r, nne_err_t *err) {
  nne_trace_t *t = r->t;
  size_t k;
  int rc = 0;

  for (k = 0; k < t->n_nodes && rc == 0; k++) {
    const nne_trace_node_t *nd = &t->nodes[k];
    nne_tensor_t *x;
    switch (nd->op) {
    case NNE_TRACE_CONST:
      if ((rc = make_const(r, (int)k, &x)) == 0)
        produce(r, (int)k, x);
      break;
    case NNE_TRACE_REF: {
      nne_trace_t *src = t->session->traces[nd->ref_trace];
      x = src->saved != NULL ? src->saved[nd->ref_slot] : NULL;
      if (x == NULL)
        rc = run_err(r, k, NNE_ESTATE,
                     "ref: the earlier trace did not save the value");
      else
        produce(r, (int)k, nne_tensor_ref(x));
      break;
    }
    case NNE_TRACE_CALL:
      if (nd->n_in == 0)
        rc = eval_call(r, (int)k); /* full(...): needs nothing */
      break;
    default: break;
    }
  }
  if (rc == 0)
    rc = drain(r);
  if (rc != 0) {
    *err = r->err;
    return rc;
  }
  r->in_forward = true;
  return 0;
}

/* The rows of an invoke out of a whole-batch value. */
static int take_rows(nne_trace_run_t *r, size_t k, const char *what,
                     nne_tensor_t *x, int invoke, nne_tensor_t **out) {
  const nne_trace_node_t *nd = &r->t->nodes[k];
  nne_op_arg_t a;
  nne_index_item_t it;
  nne_err_t e;
  int rc;

  if (invoke == NNE_TRACE_ALL_INVOKES ||
      r->o.invoke_rows[invoke] == r->o.batch) {
    *out = nne_tensor_ref(x);
    return 0;
  }
  if (nne_tensor_ndim(x) < 1 || nne_tensor_shape(x)[0] != r->o.batch)
    return run_err(r, k, NNE_EINVAL,
                   "%s %s: the value's dim 0 is not the batch (%" PRId64
                   " rows), so invoke %d cannot select rows; leave invoke "
                   "unset for the whole batch",
                   what, nd->site_text, r->o.batch, invoke);
  memset(&a, 0, sizeof a);
  memset(&it, 0, sizeof it);
  a.kind = NNE_ARG_TENSOR;
  a.tensor = x;
  it.kind = NNE_INDEX_SLICE;
  it.start = r->o.invoke_row0[invoke];
  it.stop = r->o.invoke_row0[invoke] + r->o.invoke_rows[invoke];
  it.step = 1;
  it.has_start = it.has_stop = 1;
  rc = nne_op_call("index", &a, 1, &it, 1, out, &e);
  if (rc != 0)
    return run_err(r, k, rc, "%s", e.msg);
  return 0;
}

static int take_read(nne_trace_run_t *r, size_t k, nne_tensor_t *cur) {
  const nne_trace_node_t *nd = &r->t->nodes[k];
  nne_tensor_t *x = NULL, *part;
  nne_err_t e;
  int rc;

  if (r->left[k] <= 0) {
    /* Nobody uses it: the read is a no-op. */
    r->state[k] = RS_DONE;
    r->queue[r->qt++] = (int)k;
    return 0;
  }
  if ((rc = take_rows(r, k, "read", cur, nd->invoke, &x)) != 0)
    return rc;
  if (nd->site->view.parts > 0) {
    rc = nne_tensor_split_last(x, nd->site->view.parts, nd->site->view.part,
                               nd->site->view.heads_view ? r->o.n_heads : 0,
                               &part, &e);
    nne_tensor_unref(x);
    if (rc != 0)
      return run_err(r, k, rc, "%s", e.msg);
    x = part;
  }
  produce(r, (int)k, x);
  return 0;
}

/* Applies write k to *cur (replacing it with the edited copy). */
static int apply_write(nne_trace_run_t *r, size_t k, nne_tensor_t *value,
                       nne_tensor_t **cur) {
  const nne_trace_node_t *nd = &r->t->nodes[k];
  nne_dim_range_t ranges[NNE_TRACE_MAX_RANGES + 1];
  size_t n = 0, i;
  int v = nd->in[0], inv = nd->invoke, rc;
  nne_tensor_t *next = NULL;
  nne_err_t e;

  if (r->state[v] != RS_DONE || r->val[v] == NULL)
    return run_err(r, k, NNE_EINVAL,
                   "write to %s: its value (node %" PRIu32
                   ") is not known yet when "
                   "the site runs",
                   nd->site_text, r->t->nodes[v].id);
  if (inv != NNE_TRACE_ALL_INVOKES && r->o.invoke_rows[inv] != r->o.batch) {
    int nd0 = nne_tensor_ndim(*cur);
    int64_t row0 = r->o.invoke_row0[inv], rows = r->o.invoke_rows[inv];
    int64_t s0 = 0, e0 = rows;
    if (nd0 < 1 || nne_tensor_shape(*cur)[0] != r->o.batch)
      return run_err(r, k, NNE_EINVAL,
                     "write %s: the value's dim 0 is not the batch (%" PRId64
                     " rows), so invoke %d cannot select rows; leave invoke "
                     "unset for the whole batch",
                     nd->site_text, r->o.batch, inv);
    /* The node's ranges are within the invoke's rows: its dim-0 range (if
     * any) moves by the invoke's first row. */
    for (i = 0; i < nd->n_ranges; i++) {
      const nne_dim_range_t *g = &nd->ranges[i];
      int d = g->dim < 0 ? g->dim + nd0 : g->dim;
      if (d != 0) {
        ranges[n++] = *g;
        continue;
      }
      s0 = g->start < 0 ? g->start + rows : g->start;
      e0 = g->stop == 0 ? rows : g->stop < 0 ? g->stop + rows : g->stop;
      if (s0 < 0 || e0 > rows || s0 >= e0)
        return run_err(r, k, NNE_EINVAL,
                       "write.ranges[%zu]: rows [%" PRId64 ", %" PRId64
                       ") of invoke %d, which has %" PRId64 " row%s",
                       i, g->start, g->stop, inv, rows, rows == 1 ? "" : "s");
    }
    ranges[n].dim = 0;
    ranges[n].start = row0 + s0;
    ranges[n].stop = row0 + e0;
    n++;
  } else {
    for (i = 0; i < nd->n_ranges; i++)
      ranges[n++] = nd->ranges[i];
  }
  rc = nne_tensor_apply_edit(*cur, NNE_EDIT_REPLACE, r->val[v], 0, ranges, n,
                             &next, &e);
  if (rc != 0)
    return run_err(r, k, rc, "write to %s: %s", nd->site_text, e.msg);
  if (*cur != value)
    nne_tensor_unref(*cur);
  *cur = next;
  r->state[k] = RS_DONE;
  release(r, v);
  return 0;
}

int nne_trace_hook(void *ctx, int site, nne_tensor_t *value,
                   nne_tensor_t **replace) {
  nne_trace_run_t *r = ctx;
  nne_trace_t *t = r->t;
  nne_tensor_t *cur = value, *edited = NULL;
  size_t h, i, q0;
  int rc;

  if (r->o.rt != NULL) {
    /* The edit set's edits (every firing), which also checks for cancel. */
    rc = nne_runtime_hook(r->o.rt, site, value, &edited);
    if (rc != 0) {
      r->err = r->o.rt->err;
      return rc;
    }
    if (edited != NULL)
      cur = edited;
  } else if (r->o.cancel != NULL && atomic_load(r->o.cancel) != 0) {
    return nne_err_set(&r->err, NNE_ECANCELED, "cancelled during the forward");
  }
  if (site < 0 || (size_t)site >= t->n_hooks || r->fired[site]) {
    if (cur != value)
      *replace = cur;
    return 0;
  }
  h = (size_t)site;
  r->fired[h] = 1;
  if (t->read_start[h] == t->read_start[h + 1] &&
      t->write_start[h] == t->write_start[h + 1]) {
    if (cur != value)
      *replace = cur;
    return 0;
  }
  q0 = r->qt;
  /* Reads (of the value after the edit set's edits), then everything that
   * became computable, then the writes, in request order. */
  for (i = t->read_start[h]; i < t->read_start[h + 1]; i++)
    if ((rc = take_read(r, t->read_idx[i], cur)) != 0)
      goto fail;
  if ((rc = drain(r)) != 0)
    goto fail;
  for (i = t->write_start[h]; i < t->write_start[h + 1]; i++)
    if ((rc = apply_write(r, t->write_idx[i], value, &cur)) != 0)
      goto fail;
  /* Values taken or computed here that later nodes still need may share
   * memory with activations that the forward can still change in place:
   * keep copies instead. */
  for (i = q0; i < r->qt; i++) {
    int k = r->queue[i];
    nne_tensor_t *copy;
    nne_err_t e;
    if (r->val[k] == NULL || !t->nodes[k].aliases)
      continue;
    if (nne_tensor_clone(r->val[k], &copy, &e) != 0) {
      rc = run_err(r, (size_t)k, e.code, "%s", e.msg);
      goto fail;
    }
    nne_tensor_unref(r->val[k]);
    r->val[k] = copy;
  }
  if (cur != value)
    *replace = cur;
  return 0;
fail:
  if (cur != value)
    nne_tensor_unref(cur);
  return rc;
}

/* The read (or NULL) behind node k that did not run. */
static const nne_trace_node_t *missing_read(const nne_trace_run_t *r, int k) {
  const nne_trace_node_t *nd = &r->t->nodes[k];
  size_t i;
  if (nd->op == NNE_TRACE_READ)
    return r->state[k] == RS_DONE ? NULL : nd;
  for (i = 0; i < nd->n_in; i++)
    if (r->state[nd->in[i]] != RS_DONE) {
      const nne_trace_node_t *m = missing_read(r, nd->in[i]);
      if (m != NULL)
        return m;
    }
  return NULL;
}

int nne_trace_run_end(nne_trace_run_t *r, nne_err_t *err) {
  nne_trace_t *t = r->t;
  size_t k;
  int rc = 0;

  r->in_forward = false;
  for (k = 0; k < t->n_nodes && rc == 0; k++) {
    const nne_trace_node_t *nd = &t->nodes[k];
    char m[NNE_ERR_MSG_MAX];
    if (r->state[k] == RS_DONE)
      continue;
    if (nd->op == NNE_TRACE_WRITE && !r->fired[nd->hook]) {
      snprintf(m, sizeof m,
               "write to %s: the site did not run in this "
               "forward",
               nd->site_text);
      rc = run_err(r, k, NNE_EINVAL, "%s", m);
    } else if (nd->op == NNE_TRACE_SAVE || nd->op == NNE_TRACE_WRITE) {
      const nne_trace_node_t *mr = missing_read(r, (int)k);
      if (mr != NULL)
        snprintf(m, sizeof m,
                 "%s not done: it needs read node %" PRIu32 " of %s, whose "
                 "site did not run in this forward",
                 nd->op == NNE_TRACE_SAVE ? "save" : "write", mr->id,
                 mr->site_text);
      else
        snprintf(m, sizeof m, "%s not done",
                 nd->op == NNE_TRACE_SAVE ? "save" : "write");
      rc = run_err(r, k, NNE_EINVAL, "%s", m);
    }
  }
  if (rc != 0)
    *err = r->err;
  return rc;
}
