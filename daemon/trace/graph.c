/* graph.c — building a trace's graph from the request: one node per
 * nne_trace_add_*() call, everything copied into the session's arena; and
 * how messages name a node. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/vec.h"
#include "trace/internal.h"

static int new_node(nne_trace_t *t, uint32_t id, nne_trace_op_t op,
                    nne_trace_node_t **out, nne_err_t *err) {
  nne_trace_node_t *n;
  if (t->n_nodes >= t->session->max_nodes)
    return nne_err_set(err, NNE_ERESOURCE,
                       "traces[%zu].nodes: more than %zu nodes "
                       "(--max-trace-nodes)",
                       t->index, t->session->max_nodes);
  /* Never more room than the limit allows, whatever doubling would give. */
  if (nne_vec_grow_max(&t->nodes, &t->cap_nodes, t->n_nodes + 1,
                       sizeof *t->nodes, t->session->max_nodes) != 0)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  n = &t->nodes[t->n_nodes++];
  memset(n, 0, sizeof *n);
  n->id = id;
  n->op = op;
  n->invoke = NNE_TRACE_ALL_INVOKES;
  n->hook = -1;
  n->module = -1;
  *out = n;
  return 0;
}

int nne_trace_add_read(nne_trace_t *t, uint32_t id, const char *site,
                       int invoke, nne_err_t *err) {
  nne_trace_node_t *n;
  int rc = new_node(t, id, NNE_TRACE_READ, &n, err);
  if (rc != 0)
    return rc;
  n->invoke = invoke;
  if ((n->site_text = nne_arena_strdup(&t->session->arena, site)) == NULL)
    return nne__trace_oom(err);
  return 0;
}

int nne_trace_add_write(nne_trace_t *t, uint32_t id, const char *site,
                        uint32_t value, int invoke,
                        const nne_dim_range_t *ranges, size_t n_ranges,
                        nne_err_t *err) {
  nne_trace_node_t *n;
  int rc = new_node(t, id, NNE_TRACE_WRITE, &n, err);
  if (rc != 0)
    return rc;
  n->invoke = invoke;
  n->value_id = value;
  if ((n->site_text = nne_arena_strdup(&t->session->arena, site)) == NULL)
    return nne__trace_oom(err);
  if (n_ranges > 0) {
    n->ranges =
        nne_arena_zalloc(&t->session->arena, n_ranges * sizeof *n->ranges);
    if (n->ranges == NULL)
      return nne__trace_oom(err);
    memcpy(n->ranges, ranges, n_ranges * sizeof *n->ranges);
  }
  n->n_ranges = n_ranges;
  return 0;
}

int nne_trace_add_call(nne_trace_t *t, uint32_t id, const char *fn,
                       const nne_trace_arg_t *args, size_t n_args,
                       const nne_index_item_t *items, size_t n_items,
                       nne_err_t *err) {
  nne_trace_session_t *s = t->session;
  nne_trace_node_t *n;
  size_t i;
  int rc = new_node(t, id, NNE_TRACE_CALL, &n, err);
  if (rc != 0)
    return rc;
  if ((n->fn = nne_arena_strdup(&s->arena, fn)) == NULL)
    return nne__trace_oom(err);
  if (n_args > 0) {
    n->args = nne_arena_zalloc(&s->arena, n_args * sizeof *n->args);
    if (n->args == NULL)
      return nne__trace_oom(err);
    for (i = 0; i < n_args; i++) {
      nne_trace_arg_t *a = &n->args[i];
      *a = args[i];
      a->name = args[i].name != NULL && args[i].name[0] != '\0'
                    ? nne_arena_strdup(&s->arena, args[i].name)
                    : NULL;
      a->module = args[i].module != NULL
                      ? nne_arena_strdup(&s->arena, args[i].module)
                      : NULL;
      if (args[i].n_ints > 0) {
        int64_t *v = nne_arena_zalloc(&s->arena, args[i].n_ints * sizeof *v);
        if (v == NULL)
          return nne__trace_oom(err);
        memcpy(v, args[i].ints, args[i].n_ints * sizeof *v);
        a->ints = v;
      } else {
        a->ints = NULL;
      }
      if ((args[i].name != NULL && args[i].name[0] != '\0' && !a->name) ||
          (args[i].module != NULL && a->module == NULL))
        return nne__trace_oom(err);
    }
  }
  n->n_args = n_args;
  if (n_items > 0) {
    n->items = nne_arena_zalloc(&s->arena, n_items * sizeof *n->items);
    if (n->items == NULL)
      return nne__trace_oom(err);
    memcpy(n->items, items, n_items * sizeof *n->items);
  }
  n->n_items = n_items;
  return 0;
}

int nne_trace_add_const(nne_trace_t *t, uint32_t id, nne_dtype_t dt,
                        const int64_t *shape, int ndim, void *data,
                        size_t nbytes, nne_err_t *err) {
  nne_trace_node_t *n;
  int rc = new_node(t, id, NNE_TRACE_CONST, &n, err);
  if (rc != 0) {
    free(data);
    return rc;
  }
  n->data = data; /* freed with the session from here on */
  n->nbytes = nbytes;
  n->dtype = dt;
  n->ndim = ndim;
  if (ndim > 0) {
    n->shape =
        nne_arena_zalloc(&t->session->arena, (size_t)ndim * sizeof *n->shape);
    if (n->shape == NULL)
      return nne__trace_oom(err);
    memcpy(n->shape, shape, (size_t)ndim * sizeof *n->shape);
  }
  return 0;
}

int nne_trace_add_scalar(nne_trace_t *t, uint32_t id, double v,
                         nne_err_t *err) {
  nne_trace_node_t *n;
  int rc = new_node(t, id, NNE_TRACE_CONST, &n, err);
  if (rc != 0)
    return rc;
  n->use_scalar = true;
  n->scalar = v;
  n->dtype = NNE_DTYPE_F32;
  return 0;
}

int nne_trace_add_save(nne_trace_t *t, uint32_t id, uint32_t value,
                       const char *name, nne_err_t *err) {
  nne_trace_node_t *n;
  int rc = new_node(t, id, NNE_TRACE_SAVE, &n, err);
  if (rc != 0)
    return rc;
  n->value_id = value;
  if ((n->name = nne_arena_strdup(&t->session->arena, name)) == NULL)
    return nne__trace_oom(err);
  return 0;
}

int nne_trace_add_ref(nne_trace_t *t, uint32_t id, const char *name,
                      nne_err_t *err) {
  nne_trace_node_t *n;
  int rc = new_node(t, id, NNE_TRACE_REF, &n, err);
  if (rc != 0)
    return rc;
  if ((n->name = nne_arena_strdup(&t->session->arena, name)) == NULL)
    return nne__trace_oom(err);
  return 0;
}

int nne_trace_copy_node(nne_trace_t *t, const nne_trace_node_t *n,
                        nne_err_t *err) {
  void *data;
  switch (n->op) {
  case NNE_TRACE_READ:
    return nne_trace_add_read(t, n->id, n->site_text, n->invoke, err);
  case NNE_TRACE_WRITE:
    return nne_trace_add_write(t, n->id, n->site_text, n->value_id, n->invoke,
                               n->ranges, n->n_ranges, err);
  case NNE_TRACE_CALL:
    return nne_trace_add_call(t, n->id, n->fn, n->args, n->n_args, n->items,
                              n->n_items, err);
  case NNE_TRACE_CONST:
    if (n->use_scalar)
      return nne_trace_add_scalar(t, n->id, n->scalar, err);
    data = malloc(n->nbytes ? n->nbytes : 1);
    if (data == NULL)
      return nne__trace_oom(err);
    if (n->nbytes > 0)
      memcpy(data, n->data, n->nbytes);
    return nne_trace_add_const(t, n->id, n->dtype, n->shape, n->ndim, data,
                               n->nbytes, err);
  case NNE_TRACE_SAVE:
    return nne_trace_add_save(t, n->id, n->value_id, n->name, err);
  case NNE_TRACE_REF:
    return nne_trace_add_ref(t, n->id, n->name, err);
  }
  return nne_err_set(err, NNE_EINTERNAL, "copy of a node of kind %d",
                     (int)n->op);
}

const char *nne_trace_node_where(const nne_trace_t *t, size_t k, char *buf,
                                 size_t len) {
  snprintf(buf, len, "traces[%zu].nodes[%zu] (id %" PRIu32 ")", t->index, k,
           t->nodes[k].id);
  return buf;
}

void nne__trace_op_arg(nne_op_arg_t *oa, const nne_trace_arg_t *a) {
  oa->kind = a->kind;
  oa->name = a->name;
  oa->tensor = NULL;
  oa->scalar = a->scalar;
  oa->integer = a->integer;
  oa->ints = a->ints;
  oa->n_ints = a->n_ints;
  oa->boolean = a->boolean;
  oa->dtype = a->dtype;
}

int nne__trace_node_err(const nne_trace_t *t, size_t k, nne_err_t *err,
                        int code, const char *fmt, ...) {
  char msg[NNE_ERR_MSG_MAX], where[96];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return nne_err_set(err, code, "%s: %s",
                     nne_trace_node_where(t, k, where, sizeof where), msg);
}
