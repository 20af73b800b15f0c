/* validate.c — checking a trace's graph and computing its schedule: ids,
 * references, cycles, sites, invokes, calls, constants, save and ref names
 * (nne_trace_validate); then the hooks it binds to and the order of its
 * reads and writes in the forward. */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace/internal.h"

static const char *op_name(nne_trace_op_t op) {
  switch (op) {
  case NNE_TRACE_READ: return "read";
  case NNE_TRACE_WRITE: return "write";
  case NNE_TRACE_CALL: return "call";
  case NNE_TRACE_CONST: return "constant";
  case NNE_TRACE_SAVE: return "save";
  case NNE_TRACE_REF: return "ref";
  }
  return "?";
}

static bool has_value(nne_trace_op_t op) {
  return op == NNE_TRACE_READ || op == NNE_TRACE_CALL ||
         op == NNE_TRACE_CONST || op == NNE_TRACE_REF;
}

/* Functions whose result may share memory with an input. */
static bool fn_may_alias(const char *fn) {
  static const char *const views[] = {
      "index", "reshape", "view", "transpose", "permute", "to", "module"};
  size_t i;
  for (i = 0; i < sizeof views / sizeof views[0]; i++)
    if (strcmp(fn, views[i]) == 0)
      return true;
  return false;
}

/* Node ids → indices: a map keyed by the bytes of each node's id, where
 * they live in t->nodes (which does not move while the trace is checked). */
static int id_find(const nne_map_t *m, uint32_t id) {
  intptr_t k;
  return nne_map_get(m, &id, sizeof id, &k) ? (int)k : -1;
}

/* Resolves a reference to a node with a value; adds the edge. */
static int add_edge(nne_trace_t *t, const nne_map_t *m, size_t k, uint32_t ref,
                    const char *field, size_t *n_in, nne_err_t *err) {
  int j = id_find(m, ref);
  if (j < 0)
    return nne__trace_node_err(t, k, err, NNE_EINVAL,
                               "%s refers to node %" PRIu32
                               ", which is not in this "
                               "trace",
                               field, ref);
  if (!has_value(t->nodes[j].op))
    return nne__trace_node_err(t, k, err, NNE_EINVAL,
                               "%s refers to node %" PRIu32
                               ", a %s, which has no value",
                               field, ref, op_name(t->nodes[j].op));
  t->nodes[k].in[(*n_in)++] = j;
  return 0;
}

static int resolve_site(nne_trace_t *t, size_t k, const nne_trace_env_t *env,
                        const char *field, nne_err_t *err) {
  nne_trace_node_t *n = &t->nodes[k];
  char where[96], f[160];
  int rc;

  if (n->site_text[0] == '\0')
    return nne__trace_node_err(t, k, err, NNE_EINVAL, "%s: a site is required",
                               field);
  if (env->names == NULL)
    return nne__trace_node_err(t, k, err, NNE_ESTATE,
                               "%s: the model has no names", field);
  n->site = nne_arena_zalloc(&t->session->arena, sizeof *n->site);
  if (n->site == NULL)
    return nne__trace_oom(err);
  snprintf(f, sizeof f, "%s: %s",
           nne_trace_node_where(t, k, where, sizeof where), field);
  rc = nne_names_resolve_site(env->names, f, n->site_text, n->site, err);
  if (rc == NNE_ENOTFOUND)
    /* In a trace an unknown site is a bad node (the message still lists
     * the closest valid names). */
    err->code = rc = NNE_EINVAL;
  return rc;
}

static int check_invoke(const nne_trace_t *t, size_t k, const char *field,
                        nne_err_t *err) {
  int inv = t->nodes[k].invoke;
  if (inv != NNE_TRACE_ALL_INVOKES && (inv < 0 || inv >= (int)t->n_invokes))
    return nne__trace_node_err(
        t, k, err, NNE_EINVAL,
        "%s.invoke %d, but the trace has %zu invoke%s (0..%zu; unset for "
        "the whole batch)",
        field, inv, t->n_invokes, t->n_invokes == 1 ? "" : "s",
        t->n_invokes ? t->n_invokes - 1 : 0);
  return 0;
}

static int check_call(nne_trace_t *t, size_t k, const nne_trace_env_t *env,
                      const nne_map_t *m, nne_err_t *err) {
  nne_trace_node_t *n = &t->nodes[k];
  nne_op_arg_t oa[NNE_TRACE_MAX_ARGS];
  char field[48];
  size_t i, n_oa = 0, n_mod = 0;
  int rc;

  if (n->fn[0] == '\0')
    return nne__trace_node_err(t, k, err, NNE_EINVAL,
                               "call.fn: a function is required");
  if (n->n_args > NNE_TRACE_MAX_ARGS)
    return nne__trace_node_err(t, k, err, NNE_EINVAL, "call.args: at most %d",
                               NNE_TRACE_MAX_ARGS);
  if (n->n_items > NNE_TRACE_MAX_ITEMS)
    return nne__trace_node_err(t, k, err, NNE_EINVAL,
                               "call.index_items: at most %d",
                               NNE_TRACE_MAX_ITEMS);
  for (i = 0; i < n->n_args; i++) {
    const nne_trace_arg_t *a = &n->args[i];
    snprintf(field, sizeof field, "call.args[%zu]", i);
    if (a->module != NULL) {
      if (strcmp(n->fn, "module") != 0)
        return nne__trace_node_err(
            t, k, err, NNE_EINVAL,
            "%s: a module argument is only for fn \"module\"", field);
      n_mod++;
      continue;
    }
    if (a->kind == NNE_ARG_TENSOR &&
        (rc = add_edge(t, m, k, a->node, field, &n->n_in, err)) != 0)
      return rc;
    nne__trace_op_arg(&oa[n_oa], a);
    n_oa++;
  }
  if (strcmp(n->fn, "module") == 0) {
    const char *mod = NULL;
    int n_inputs = -1, n_outputs = -1;
    for (i = 0; i < n->n_args; i++) {
      if (n->args[i].module != NULL) {
        mod = n->args[i].module;
        snprintf(field, sizeof field, "call.args[%zu].module", i);
      } else if (n->args[i].kind != NNE_ARG_TENSOR) {
        return nne__trace_node_err(
            t, k, err, NNE_EINVAL,
            "call.args[%zu]: fn \"module\" takes a module and "
            "node values only",
            i);
      }
    }
    if (n_mod != 1)
      return nne__trace_node_err(
          t, k, err, NNE_EINVAL,
          "fn \"module\" takes exactly one module argument (%zu "
          "given)",
          n_mod);
    if (n->n_items > 0)
      return nne__trace_node_err(t, k, err, NNE_EINVAL,
                                 "call.index_items: only for fn \"index\"");
    if (env->names == NULL)
      return nne__trace_node_err(t, k, err, NNE_ESTATE,
                                 "%s: the model has no names", field);
    {
      char where[96], f[160];
      snprintf(f, sizeof f, "%s: %s",
               nne_trace_node_where(t, k, where, sizeof where), field);
      rc = nne_names_resolve_module(env->names, f, mod, &n->module, err);
      if (rc == NNE_ENOTFOUND)
        err->code = rc = NNE_EINVAL;
      if (rc != 0)
        return rc;
    }
    if (env->model != NULL) {
      nne_err_t aerr;
      if (nne_model_module_arity(env->model, n->module, &n_inputs, &n_outputs,
                                 &aerr) != 0)
        return nne__trace_node_err(t, k, err, NNE_EINVAL, "module '%s': %s",
                                   mod, aerr.msg);
      if (n_inputs >= 0 && (int)n->n_in > n_inputs)
        return nne__trace_node_err(
            t, k, err, NNE_EINVAL, "module '%s' takes %d input%s, %zu given",
            mod, n_inputs, n_inputs == 1 ? "" : "s", n->n_in);
    }
    if (n->n_in == 0)
      return nne__trace_node_err(
          t, k, err, NNE_EINVAL,
          "module '%s': give at least one node value as input", mod);
    return 0;
  }
  rc = nne_op_check(n->fn, oa, n_oa, n->items, n->n_items, err);
  if (rc != 0) {
    char msg[NNE_ERR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", err->msg);
    return nne__trace_node_err(t, k, err, rc, "%s", msg);
  }
  return 0;
}

static int check_const(const nne_trace_t *t, size_t k, nne_err_t *err) {
  const nne_trace_node_t *n = &t->nodes[k];
  size_t item, numel = 1;
  int d;
  if (n->use_scalar) {
    /* The scalar becomes a 0-d float32 tensor: a finite double beyond
     * float32's range has no float32 value (converting it is undefined
     * behaviour in C). NaN and the infinities convert as they are. */
    if (isfinite(n->scalar) && fabs(n->scalar) > FLT_MAX)
      return nne__trace_node_err(
          t, k, err, NNE_EINVAL,
          "constant.scalar: %g is outside float32's range", n->scalar);
    return 0;
  }
  item = nne_dtype_size(n->dtype);
  if (item == 0)
    return nne__trace_node_err(t, k, err, NNE_EINVAL,
                               "constant.tensor.dtype: %d is not a known dtype",
                               (int)n->dtype);
  if (n->ndim < 0 || n->ndim > NNE_TENSOR_MAX_DIMS)
    return nne__trace_node_err(
        t, k, err, NNE_EINVAL,
        "constant.tensor.shape: %d dimensions (at most %d)", n->ndim,
        NNE_TENSOR_MAX_DIMS);
  for (d = 0; d < n->ndim; d++) {
    if (n->shape[d] < 0 || n->shape[d] > (1ll << 40))
      return nne__trace_node_err(t, k, err, NNE_EINVAL,
                                 "constant.tensor.shape[%d]: %" PRId64, d,
                                 n->shape[d]);
    numel *= (size_t)n->shape[d];
    if (numel > ((size_t)1 << 40))
      return nne__trace_node_err(t, k, err, NNE_EINVAL,
                                 "constant.tensor.shape: too many elements");
  }
  if (numel * item != n->nbytes)
    return nne__trace_node_err(
        t, k, err, NNE_EINVAL,
        "constant.tensor.data: %zu bytes for %zu %s elements (%zu "
        "expected)",
        n->nbytes, numel, nne_dtype_name(n->dtype), numel * item);
  return 0;
}

/* Reports a cycle among the nodes that Kahn's algorithm left over: from any
 * of them, following inputs that are left over too must come back. */
static int cycle_err(nne_trace_t *t, const int *pending, nne_err_t *err) {
  size_t n = t->n_nodes, k, start = 0, len = 0;
  int *seen = calloc(n, sizeof *seen), *path = calloc(n, sizeof *path);
  char msg[NNE_ERR_MSG_MAX] = "";
  int cur, rc;
  if (seen == NULL || path == NULL) {
    free(seen);
    free(path);
    return nne__trace_oom(err);
  }
  for (k = 0; k < n; k++)
    if (pending[k] > 0)
      break;
  cur = (int)k;
  if (k == n) { /* cannot happen: the caller saw nodes left over */
    free(seen);
    free(path);
    return nne_err_set(err, NNE_EINTERNAL, "cycle check: no node left");
  }
  while (!seen[cur]) {
    size_t i;
    seen[cur] = (int)++len;
    path[len - 1] = cur;
    for (i = 0; i < t->nodes[cur].n_in; i++)
      if (pending[t->nodes[cur].in[i]] > 0)
        break;
    cur = t->nodes[cur].in[i];
  }
  /* path[seen[cur]-1 ..] is the cycle, each node fed by the next: print it
   * in data-flow order. */
  start = (size_t)seen[cur] - 1;
  {
    size_t i, off = 0;
    for (i = len; i > start && off < sizeof msg - 32; i--)
      off += (size_t)snprintf(msg + off, sizeof msg - off, "%" PRIu32 " -> ",
                              t->nodes[path[i - 1]].id);
    snprintf(msg + off, sizeof msg - off, "%" PRIu32,
             t->nodes[path[len - 1]].id);
  }
  rc = nne__trace_node_err(
      t, (size_t)path[len - 1], err, NNE_EINVAL,
      "the graph has a cycle (node ids, each feeding the next): %s", msg);
  free(seen);
  free(path);
  return rc;
}

int nne_trace_validate(nne_trace_t *t, const nne_trace_env_t *env,
                       nne_err_t *err) {
  nne_trace_session_t *s = t->session;
  size_t n = t->n_nodes, k, i, qh = 0, qt = 0;
  nne_map_t m = NNE_MAP_INIT;
  int *pending = NULL, rc = 0;
  size_t *n_out = NULL;
  bool *reads = NULL;

  pending = malloc((n ? n : 1) * sizeof *pending);
  n_out = calloc(n ? n : 1, sizeof *n_out);
  reads = calloc(n ? n : 1, sizeof *reads);
  t->topo = nne_arena_zalloc(&s->arena, (n ? n : 1) * sizeof *t->topo);
  if (pending == NULL || n_out == NULL || reads == NULL || t->topo == NULL) {
    rc = nne__trace_oom(err);
    goto out;
  }

  /* Ids: unique within the trace. */
  for (k = 0; k < n; k++) {
    int j = id_find(&m, t->nodes[k].id);
    if (j >= 0) {
      rc = nne__trace_node_err(t, k, err, NNE_EINVAL,
                               "id %" PRIu32 " is also the id of nodes[%d]",
                               t->nodes[k].id, j);
      goto out;
    }
    if (nne_map_put(&m, &t->nodes[k].id, sizeof t->nodes[k].id, (intptr_t)k) <
        0) {
      rc = nne__trace_oom(err);
      goto out;
    }
  }

  /* Each node on its own: fields, references, sites, calls, names. */
  for (k = 0; k < n; k++) {
    nne_trace_node_t *nd = &t->nodes[k];
    size_t max_in = nd->op == NNE_TRACE_CALL ? nd->n_args
                    : nd->op == NNE_TRACE_WRITE || nd->op == NNE_TRACE_SAVE ? 1
                                                                            : 0;
    nd->n_in = 0;
    nd->n_out = 0;
    if (max_in > 0 && (nd->in = nne_arena_zalloc(
                           &s->arena, max_in * sizeof *nd->in)) == NULL) {
      rc = nne__trace_oom(err);
      goto out;
    }
    switch (nd->op) {
    case NNE_TRACE_READ:
      if ((rc = resolve_site(t, k, env, "read.site", err)) != 0 ||
          (rc = check_invoke(t, k, "read", err)) != 0)
        goto out;
      t->n_sites++;
      break;
    case NNE_TRACE_WRITE:
      if ((rc = resolve_site(t, k, env, "write.site", err)) != 0)
        goto out;
      if (nd->site->view.parts > 0) {
        rc = nne__trace_node_err(
            t, k, err, NNE_EINVAL,
            "write.site: '%s' is a view of a fused value (%s, part "
            "%d of %d); write the fused value with a range on its "
            "last dimension instead",
            nd->site_text, nd->site->canonical, nd->site->view.part,
            nd->site->view.parts);
        goto out;
      }
      if ((rc = check_invoke(t, k, "write", err)) != 0 ||
          (rc = add_edge(t, &m, k, nd->value_id, "write.value", &nd->n_in,
                         err)) != 0)
        goto out;
      if (nd->n_ranges > NNE_TRACE_MAX_RANGES) {
        rc = nne__trace_node_err(t, k, err, NNE_EINVAL,
                                 "write.ranges: at most %d",
                                 NNE_TRACE_MAX_RANGES);
        goto out;
      }
      for (i = 0; i < nd->n_ranges; i++) {
        size_t j;
        for (j = 0; j < i; j++)
          if (nd->ranges[j].dim == nd->ranges[i].dim) {
            rc = nne__trace_node_err(
                t, k, err, NNE_EINVAL,
                "write.ranges[%zu]: dim %d already has a range", i,
                nd->ranges[i].dim);
            goto out;
          }
      }
      t->n_sites++;
      break;
    case NNE_TRACE_CALL:
      if ((rc = check_call(t, k, env, &m, err)) != 0)
        goto out;
      break;
    case NNE_TRACE_CONST:
      if ((rc = check_const(t, k, err)) != 0)
        goto out;
      break;
    case NNE_TRACE_SAVE: {
      int e;
      if ((rc = add_edge(t, &m, k, nd->value_id, "save.value", &nd->n_in,
                         err)) != 0)
        goto out;
      if (nd->name[0] == '\0') {
        rc = nne__trace_node_err(t, k, err, NNE_EINVAL,
                                 "save.name: a name is required");
        goto out;
      }
      if (strlen(nd->name) > 255) {
        rc = nne__trace_node_err(t, k, err, NNE_EINVAL,
                                 "save.name: at most 255 characters");
        goto out;
      }
      e = nne__trace_name_find(s, nd->name);
      if (e >= 0) {
        const struct nne_trace_name *o = &s->names[e];
        if (o->node < 0)
          rc = nne__trace_node_err(t, k, err, NNE_EINVAL,
                                   "save name '%s' is already the name of %s",
                                   nd->name, o->what);
        else
          rc = nne__trace_node_err(t, k, err, NNE_EINVAL,
                                   "save name '%s' is already used by "
                                   "traces[%zu].nodes[%d] (id %" PRIu32 ")",
                                   nd->name, o->trace, o->node,
                                   s->traces[o->trace]->nodes[o->node].id);
        goto out;
      }
      if (nne__trace_name_add(s, nd->name, t->index, (int)k, NULL) != 0) {
        rc = nne__trace_oom(err);
        goto out;
      }
      nd->slot = t->n_saves++;
      break;
    }
    case NNE_TRACE_REF: {
      int e = nd->name[0] ? nne__trace_name_find(s, nd->name) : -1;
      if (nd->name[0] == '\0') {
        rc = nne__trace_node_err(t, k, err, NNE_EINVAL,
                                 "ref.name: a name is required");
        goto out;
      }
      if (e < 0 || s->names[e].node < 0) {
        rc = nne__trace_node_err(
            t, k, err, NNE_EINVAL,
            "ref '%s': no earlier trace of this request saves a "
            "value of that name",
            nd->name);
        goto out;
      }
      if (s->names[e].trace >= t->index) {
        /* Only this trace can have added it (later ones are validated
         * later). */
        rc = nne__trace_node_err(
            t, k, err, NNE_EINVAL,
            "ref '%s': saved by this trace (nodes[%d]); a ref reads "
            "only what an earlier trace of the request saved",
            nd->name, s->names[e].node);
        goto out;
      }
      nd->ref_trace = s->names[e].trace;
      nd->ref_slot = s->traces[nd->ref_trace]->nodes[s->names[e].node].slot;
      break;
    }
    default:
      rc = nne__trace_node_err(t, k, err, NNE_EINVAL, "unknown op %d",
                               (int)nd->op);
      goto out;
    }
  }
  /* Consumers. */
  for (k = 0; k < n; k++)
    for (i = 0; i < t->nodes[k].n_in; i++)
      n_out[t->nodes[k].in[i]]++;
  for (k = 0; k < n; k++)
    if (n_out[k] > 0 && (t->nodes[k].out = nne_arena_zalloc(
                             &s->arena, n_out[k] * sizeof(int))) == NULL) {
      rc = nne__trace_oom(err);
      goto out;
    }
  for (k = 0; k < n; k++)
    for (i = 0; i < t->nodes[k].n_in; i++) {
      nne_trace_node_t *src = &t->nodes[t->nodes[k].in[i]];
      src->out[src->n_out++] = (int)k;
    }

  /* Dependency order (Kahn); what is left is on or behind a cycle. */
  for (k = 0; k < n; k++) {
    pending[k] = (int)t->nodes[k].n_in;
    if (pending[k] == 0)
      t->topo[qt++] = (int)k;
  }
  while (qh < qt) {
    nne_trace_node_t *nd = &t->nodes[t->topo[qh++]];
    for (i = 0; i < nd->n_out; i++)
      if (--pending[nd->out[i]] == 0)
        t->topo[qt++] = nd->out[i];
  }
  if (qt < n) {
    rc = cycle_err(t, pending, err);
    goto out;
  }

  /* What may alias an activation, and which writes depend on reads. */
  for (i = 0; i < n; i++) {
    nne_trace_node_t *nd = &t->nodes[t->topo[i]];
    size_t j;
    bool any_alias = false, any_read = nd->op == NNE_TRACE_READ;
    for (j = 0; j < nd->n_in; j++) {
      any_alias |= t->nodes[nd->in[j]].aliases;
      any_read |= reads[nd->in[j]];
    }
    reads[t->topo[i]] = any_read;
    nd->aliases =
        nd->op == NNE_TRACE_READ ||
        (nd->op == NNE_TRACE_CALL && any_alias && fn_may_alias(nd->fn));
    if (nd->op == NNE_TRACE_WRITE && any_read)
      t->needs_order = true;
  }
  if (t->n_saves > 0 &&
      (t->saved = nne_arena_zalloc(&s->arena, t->n_saves * sizeof *t->saved)) ==
          NULL) {
    rc = nne__trace_oom(err);
    goto out;
  }
  t->validated = true;
out:
  nne_map_free(&m);
  free(pending);
  free(n_out);
  free(reads);
  return rc;
}

void nne_trace_sites(const nne_trace_t *t, nne_names_site_t *out) {
  size_t k, i = 0;
  for (k = 0; k < t->n_nodes; k++)
    if (t->nodes[k].op == NNE_TRACE_READ || t->nodes[k].op == NNE_TRACE_WRITE)
      out[i++] = *t->nodes[k].site;
}

int nne_trace_bind(nne_trace_t *t, size_t n_hooks, const int *item_hook,
                   nne_err_t *err) {
  nne_trace_session_t *s = t->session;
  size_t k, i = 0, nr = 0, nw = 0, *rf, *wf;

  t->n_hooks = n_hooks;
  t->read_start = nne_arena_zalloc(&s->arena, (n_hooks + 1) * sizeof(size_t));
  t->write_start = nne_arena_zalloc(&s->arena, (n_hooks + 1) * sizeof(size_t));
  rf = nne_arena_zalloc(&s->arena, (n_hooks + 1) * sizeof(size_t));
  wf = nne_arena_zalloc(&s->arena, (n_hooks + 1) * sizeof(size_t));
  if (!t->read_start || !t->write_start || !rf || !wf)
    return nne__trace_oom(err);
  for (k = 0; k < t->n_nodes; k++) {
    nne_trace_node_t *nd = &t->nodes[k];
    if (nd->op != NNE_TRACE_READ && nd->op != NNE_TRACE_WRITE)
      continue;
    nd->hook = item_hook[i++];
    if (nd->hook < 0 || (size_t)nd->hook >= n_hooks)
      return nne_err_set(err, NNE_EINTERNAL, "node %" PRIu32 ": hook %d of %zu",
                         nd->id, nd->hook, n_hooks);
    if (nd->op == NNE_TRACE_READ) {
      t->read_start[nd->hook + 1]++;
      nr++;
    } else {
      t->write_start[nd->hook + 1]++;
      nw++;
    }
  }
  for (k = 0; k < n_hooks; k++) {
    t->read_start[k + 1] += t->read_start[k];
    t->write_start[k + 1] += t->write_start[k];
  }
  t->read_idx = nne_arena_zalloc(&s->arena, (nr ? nr : 1) * sizeof(size_t));
  t->write_idx = nne_arena_zalloc(&s->arena, (nw ? nw : 1) * sizeof(size_t));
  if (!t->read_idx || !t->write_idx)
    return nne__trace_oom(err);
  /* Request order within a hook: several writes to one site apply in the
   * order the client listed them. */
  for (k = 0; k < t->n_nodes; k++) {
    const nne_trace_node_t *nd = &t->nodes[k];
    size_t h = (size_t)nd->hook;
    if (nd->op == NNE_TRACE_READ)
      t->read_idx[t->read_start[h] + rf[h]++] = k;
    else if (nd->op == NNE_TRACE_WRITE)
      t->write_idx[t->write_start[h] + wf[h]++] = k;
  }
  return 0;
}

int nne_trace_check_order(const nne_trace_t *t, const int *order,
                          nne_err_t *err) {
  size_t n = t->n_nodes, i, j;
  int *stage = malloc((n ? n : 1) * sizeof *stage);
  int *src = malloc((n ? n : 1) * sizeof *src);
  int rc = 0;

  if (stage == NULL || src == NULL) {
    free(stage);
    free(src);
    return nne__trace_oom(err);
  }
  /* stage: the latest first-firing position among the reads a value needs
   * (-1: none, it is known before the forward); src: that read. Reads
   * whose site did not fire in the probe count as -1: run time decides. */
  for (i = 0; i < n; i++) {
    int k = t->topo[i];
    const nne_trace_node_t *nd = &t->nodes[k];
    stage[k] = -1;
    src[k] = -1;
    if (nd->op == NNE_TRACE_READ) {
      stage[k] = order[nd->hook];
      src[k] = k;
      continue;
    }
    for (j = 0; j < nd->n_in; j++)
      if (stage[nd->in[j]] > stage[k]) {
        stage[k] = stage[nd->in[j]];
        src[k] = src[nd->in[j]];
      }
    if (nd->op == NNE_TRACE_WRITE && order[nd->hook] >= 0 &&
        stage[k] > order[nd->hook]) {
      const nne_trace_node_t *r = &t->nodes[src[k]];
      rc = nne__trace_node_err(
          t, (size_t)k, err, NNE_EINVAL,
          "node %" PRIu32 " writes %s but depends on read node "
          "%" PRIu32 " of %s, which runs later in the forward",
          nd->id, nd->site_text, r->id, r->site_text);
      break;
    }
  }
  free(stage);
  free(src);
  return rc;
}

typedef struct probe {
  int *order;
  size_t n;
  int next;
} probe_t;

static int probe_hook(void *ctx, int site, nne_tensor_t *value,
                      nne_tensor_t **replace) {
  probe_t *p = ctx;
  (void)value;
  (void)replace;
  if (site >= 0 && (size_t)site < p->n && p->order[site] < 0)
    p->order[site] = p->next++;
  return 0;
}

int nne_trace_probe_order_with(nne_trace_forward_fn fwd, void *fwd_ctx,
                               size_t n_hooks, int *order, nne_err_t *err) {
  probe_t p;
  size_t i;
  int rc;
  for (i = 0; i < n_hooks; i++)
    order[i] = -1;
  p.order = order;
  p.n = n_hooks;
  p.next = 0;
  rc = fwd(fwd_ctx, probe_hook, &p, err);
  if (rc != 0)
    nne_err_prefix(err, "probe forward");
  return rc;
}

typedef struct plain_probe {
  nne_variant_t *v;
  int64_t vocab;
} plain_probe_t;

/* Two tokens through forward. */
static int plain_forward(void *ctx, nne_hook_fn fn, void *hook_ctx,
                         nne_err_t *err) {
  plain_probe_t *pp = ctx;
  static const int64_t shape[2] = {1, 2};
  int64_t ids[2] = {1, 2};
  nne_tensor_t *t = NULL, *logits = NULL;
  int rc;
  if (pp->vocab > 0) {
    ids[0] %= pp->vocab;
    ids[1] %= pp->vocab;
  }
  rc = nne_tensor_from_host(NNE_DTYPE_I64, shape, 2, ids, &t, err);
  if (rc == 0)
    rc = nne_variant_forward(pp->v, t, NULL, fn, hook_ctx, &logits, err);
  nne_tensor_unref(t);
  nne_tensor_unref(logits);
  return rc;
}

int nne_trace_probe_order(nne_variant_t *v, size_t n_hooks, int64_t vocab,
                          int *order, nne_err_t *err) {
  plain_probe_t pp = {v, vocab};
  return nne_trace_probe_order_with(plain_forward, &pp, n_hooks, order, err);
}
