/* trace.c — see trace.h. */
#include "trace.h"

#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the session's arena ---------------------------------------------------
 *
 * Everything a request's graphs hold (strings, argument lists, resolved
 * sites, edge lists, the schedule) comes from one bump allocator and goes in
 * one call when the request ends: no per-node frees, no per-node mallocs
 * beyond a block now and then. */

#define ARENA_BLOCK (64u << 10)

struct nne_trace_arena_blk {
  nne_trace_arena_blk_t *next;
  size_t used, cap;
  max_align_t data[];
};

static void *arena_alloc(nne_trace_session_t *s, size_t n) {
  nne_trace_arena_blk_t *b = s->arena;
  void *p;
  n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
  if (n == 0)
    n = sizeof(max_align_t);
  if (b == NULL || b->cap - b->used < n) {
    size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
    nne_trace_arena_blk_t *nb = malloc(sizeof *nb + cap);
    if (nb == NULL)
      return NULL;
    nb->used = 0;
    nb->cap = cap;
    if (b != NULL && cap > ARENA_BLOCK) {
      /* A big one-off: keep filling the current block afterwards. */
      nb->next = b->next;
      b->next = nb;
    } else {
      nb->next = b;
      s->arena = nb;
    }
    b = nb;
  }
  p = (char *)b->data + b->used;
  b->used += n;
  memset(p, 0, n);
  return p;
}

static char *arena_strdup(nne_trace_session_t *s, const char *str) {
  size_t n = strlen(str != NULL ? str : "");
  char *p = arena_alloc(s, n + 1);
  if (p != NULL && n > 0)
    memcpy(p, str, n);
  return p;
}

/* ---- names streamed in the request ------------------------------------- */

static uint64_t str_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}

static int name_find(const nne_trace_session_t *s, const char *name) {
  size_t mask, i;
  if (s->name_ht_cap == 0)
    return -1;
  mask = s->name_ht_cap - 1;
  for (i = str_hash(name) & mask;; i = (i + 1) & mask) {
    int e = s->name_ht[i];
    if (e < 0)
      return -1;
    if (strcmp(s->names[e].name, name) == 0)
      return e;
  }
}

static int name_rehash(nne_trace_session_t *s, size_t cap) {
  int *ht = malloc(cap * sizeof *ht);
  size_t i, mask = cap - 1;
  if (ht == NULL)
    return NNE_ENOMEM;
  for (i = 0; i < cap; i++)
    ht[i] = -1;
  for (i = 0; i < s->n_names; i++) {
    size_t j = str_hash(s->names[i].name) & mask;
    while (ht[j] >= 0)
      j = (j + 1) & mask;
    ht[j] = (int)i;
  }
  free(s->name_ht);
  s->name_ht = ht;
  s->name_ht_cap = cap;
  return 0;
}

/* Adds a name (the string must live as long as the session). */
static int name_add(nne_trace_session_t *s, const char *name, size_t trace,
                    int node, const char *what) {
  size_t j, mask;
  if (s->n_names == s->cap_names) {
    size_t cap = s->cap_names ? 2 * s->cap_names : 16;
    struct nne_trace_name *nv = realloc(s->names, cap * sizeof *nv);
    if (nv == NULL)
      return NNE_ENOMEM;
    s->names = nv;
    s->cap_names = cap;
  }
  if (2 * (s->n_names + 1) > s->name_ht_cap &&
      name_rehash(s, s->name_ht_cap ? 2 * s->name_ht_cap : 32) != 0)
    return NNE_ENOMEM;
  s->names[s->n_names].name = name;
  s->names[s->n_names].trace = trace;
  s->names[s->n_names].node = node;
  s->names[s->n_names].what = what;
  mask = s->name_ht_cap - 1;
  j = str_hash(name) & mask;
  while (s->name_ht[j] >= 0)
    j = (j + 1) & mask;
  s->name_ht[j] = (int)s->n_names++;
  return 0;
}

/* ---- session -------------------------------------------------------------- */

void nne_trace_session_init(nne_trace_session_t *s, size_t max_traces,
                            size_t max_nodes) {
  memset(s, 0, sizeof *s);
  s->max_traces = max_traces;
  s->max_nodes = max_nodes;
}

void nne_trace_session_free(nne_trace_session_t *s) {
  size_t i, k;
  for (i = 0; i < s->n; i++) {
    nne_trace_t *t = s->traces[i];
    for (k = 0; k < t->n_nodes; k++)
      free(t->nodes[k].data);
    for (k = 0; t->saved != NULL && k < t->n_saves; k++)
      nne_tensor_unref(t->saved[k]);
    free(t->nodes);
  }
  while (s->arena != NULL) {
    nne_trace_arena_blk_t *next = s->arena->next;
    free(s->arena);
    s->arena = next;
  }
  free(s->traces);
  free(s->names);
  free(s->name_ht);
  memset(s, 0, sizeof *s);
}

int nne_trace_session_add(nne_trace_session_t *s, const char *name,
                          nne_trace_t **out, nne_err_t *err) {
  nne_trace_t *t;
  if (s->n >= s->max_traces)
    return nne_err_set(err, NNE_ERESOURCE,
                       "traces: more than %zu traces in one request "
                       "(--max-traces)",
                       s->max_traces);
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 4;
    nne_trace_t **nv = realloc(s->traces, cap * sizeof *nv);
    if (nv == NULL)
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
    s->traces = nv;
    s->cap = cap;
  }
  t = arena_alloc(s, sizeof *t);
  if (t == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  t->session = s;
  t->index = s->n;
  nne_trace_set_name(t, name);
  s->traces[s->n++] = t;
  *out = t;
  return 0;
}

void nne_trace_set_name(nne_trace_t *t, const char *name) {
  snprintf(t->name, sizeof t->name, "%s", name != NULL ? name : "");
  if (t->name[0] != '\0')
    snprintf(t->label, sizeof t->label, "%s", t->name);
  else
    snprintf(t->label, sizeof t->label, "%zu", t->index);
}

int nne_trace_session_reserve(nne_trace_session_t *s, const char *name,
                              size_t trace, const char *what, nne_err_t *err) {
  int e = name_find(s, name);
  char *n, *w;
  if (e >= 0)
    return nne_err_set(err, NNE_EINVAL,
                       "traces[%zu]: '%s' would name both %s and %s; give the "
                       "traces distinct names",
                       trace, name, what,
                       s->names[e].what ? s->names[e].what : "a save");
  n = arena_strdup(s, name);
  w = arena_strdup(s, what);
  if (n == NULL || w == NULL || name_add(s, n, trace, -1, w) != 0)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  return 0;
}

/* ---- building ------------------------------------------------------------- */

static int new_node(nne_trace_t *t, uint32_t id, nne_trace_op_t op,
                    nne_trace_node_t **out, nne_err_t *err) {
  nne_trace_node_t *n;
  if (t->n_nodes >= t->session->max_nodes)
    return nne_err_set(err, NNE_ERESOURCE,
                       "traces[%zu].nodes: more than %zu nodes "
                       "(--max-trace-nodes)",
                       t->index, t->session->max_nodes);
  if (t->n_nodes == t->cap_nodes) {
    size_t cap = t->cap_nodes ? 2 * t->cap_nodes : 16;
    nne_trace_node_t *nv;
    if (cap > t->session->max_nodes)
      cap = t->session->max_nodes;
    nv = realloc(t->nodes, cap * sizeof *nv);
    if (nv == NULL)
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
    t->nodes = nv;
    t->cap_nodes = cap;
  }
  n = &t->nodes[t->n_nodes++];
  memset(n, 0, sizeof *n);
  n->id = id;
  n->op = op;
  n->invoke = -1;
  n->hook = -1;
  n->module = -1;
  *out = n;
  return 0;
}

static int oom(nne_err_t *err) {
  return nne_err_set(err, NNE_ENOMEM, "out of memory");
}

int nne_trace_add_read(nne_trace_t *t, uint32_t id, const char *site,
                       int invoke, nne_err_t *err) {
  nne_trace_node_t *n;
  int rc = new_node(t, id, NNE_TRACE_READ, &n, err);
  if (rc != 0)
    return rc;
  n->invoke = invoke;
  if ((n->site_text = arena_strdup(t->session, site)) == NULL)
    return oom(err);
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
  if ((n->site_text = arena_strdup(t->session, site)) == NULL)
    return oom(err);
  if (n_ranges > 0) {
    n->ranges = arena_alloc(t->session, n_ranges * sizeof *n->ranges);
    if (n->ranges == NULL)
      return oom(err);
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
  if ((n->fn = arena_strdup(s, fn)) == NULL)
    return oom(err);
  if (n_args > 0) {
    n->args = arena_alloc(s, n_args * sizeof *n->args);
    if (n->args == NULL)
      return oom(err);
    for (i = 0; i < n_args; i++) {
      nne_trace_arg_t *a = &n->args[i];
      *a = args[i];
      a->name = args[i].name != NULL && args[i].name[0] != '\0'
                    ? arena_strdup(s, args[i].name)
                    : NULL;
      a->module = args[i].module != NULL ? arena_strdup(s, args[i].module)
                                         : NULL;
      if (args[i].n_ints > 0) {
        int64_t *v = arena_alloc(s, args[i].n_ints * sizeof *v);
        if (v == NULL)
          return oom(err);
        memcpy(v, args[i].ints, args[i].n_ints * sizeof *v);
        a->ints = v;
      } else {
        a->ints = NULL;
      }
      if ((args[i].name != NULL && args[i].name[0] != '\0' && !a->name) ||
          (args[i].module != NULL && a->module == NULL))
        return oom(err);
    }
  }
  n->n_args = n_args;
  if (n_items > 0) {
    n->items = arena_alloc(s, n_items * sizeof *n->items);
    if (n->items == NULL)
      return oom(err);
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
    n->shape = arena_alloc(t->session, (size_t)ndim * sizeof *n->shape);
    if (n->shape == NULL)
      return oom(err);
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
  if ((n->name = arena_strdup(t->session, name)) == NULL)
    return oom(err);
  return 0;
}

int nne_trace_add_ref(nne_trace_t *t, uint32_t id, const char *name,
                      nne_err_t *err) {
  nne_trace_node_t *n;
  int rc = new_node(t, id, NNE_TRACE_REF, &n, err);
  if (rc != 0)
    return rc;
  if ((n->name = arena_strdup(t->session, name)) == NULL)
    return oom(err);
  return 0;
}

const char *nne_trace_node_where(const nne_trace_t *t, size_t k, char *buf,
                                 size_t len) {
  snprintf(buf, len, "traces[%zu].nodes[%zu] (id %" PRIu32 ")", t->index, k,
           t->nodes[k].id);
  return buf;
}

/* ---- validation ----------------------------------------------------------- */

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
  static const char *const views[] = {"index",   "reshape", "view",
                                      "transpose", "permute", "to",
                                      "module"};
  size_t i;
  for (i = 0; i < sizeof views / sizeof views[0]; i++)
    if (strcmp(fn, views[i]) == 0)
      return true;
  return false;
}

/* An error about node k: "traces[T].nodes[K] (id N): ...". */
static int node_err(const nne_trace_t *t, size_t k, nne_err_t *err, int code,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int node_err(const nne_trace_t *t, size_t k, nne_err_t *err, int code,
                    const char *fmt, ...) {
  char msg[NNE_ERR_MSG_MAX], where[96];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return nne_err_set(err, code, "%s: %s",
                     nne_trace_node_where(t, k, where, sizeof where), msg);
}

/* Node ids → indices: open addressing over the trace's nodes. */
typedef struct id_map {
  int *slot;
  size_t cap;
} id_map_t;

static size_t id_hash(uint32_t id, size_t mask) {
  return (size_t)((id * 2654435761u) ^ (id >> 16)) & mask;
}

static int id_find(const nne_trace_t *t, const id_map_t *m, uint32_t id) {
  size_t mask = m->cap - 1, i;
  for (i = id_hash(id, mask);; i = (i + 1) & mask) {
    int k = m->slot[i];
    if (k < 0 || t->nodes[k].id == id)
      return k;
  }
}

/* Resolves a reference to a node with a value; adds the edge. */
static int add_edge(nne_trace_t *t, const id_map_t *m, size_t k,
                    uint32_t ref, const char *field, size_t *n_in,
                    nne_err_t *err) {
  int j = id_find(t, m, ref);
  if (j < 0)
    return node_err(t, k, err, NNE_EINVAL,
                    "%s refers to node %" PRIu32 ", which is not in this "
                    "trace",
                    field, ref);
  if (!has_value(t->nodes[j].op))
    return node_err(t, k, err, NNE_EINVAL,
                    "%s refers to node %" PRIu32 ", a %s, which has no value",
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
    return node_err(t, k, err, NNE_EINVAL, "%s: a site is required", field);
  if (env->names == NULL)
    return node_err(t, k, err, NNE_ESTATE, "%s: the model has no names",
                    field);
  n->site = arena_alloc(t->session, sizeof *n->site);
  if (n->site == NULL)
    return oom(err);
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
  if (inv < -1 || inv >= (int)t->n_invokes)
    return node_err(t, k, err, NNE_EINVAL,
                    "%s.invoke %d, but the trace has %zu invoke%s (0..%zu, or "
                    "-1 for the whole batch)",
                    field, inv, t->n_invokes, t->n_invokes == 1 ? "" : "s",
                    t->n_invokes ? t->n_invokes - 1 : 0);
  return 0;
}

static int check_call(nne_trace_t *t, size_t k, const nne_trace_env_t *env,
                      const id_map_t *m, nne_err_t *err) {
  nne_trace_node_t *n = &t->nodes[k];
  nne_op_arg_t oa[NNE_TRACE_MAX_ARGS];
  char field[48];
  size_t i, n_oa = 0, n_mod = 0;
  int rc;

  if (n->fn[0] == '\0')
    return node_err(t, k, err, NNE_EINVAL, "call.fn: a function is required");
  if (n->n_args > NNE_TRACE_MAX_ARGS)
    return node_err(t, k, err, NNE_EINVAL, "call.args: at most %d",
                    NNE_TRACE_MAX_ARGS);
  if (n->n_items > NNE_TRACE_MAX_ITEMS)
    return node_err(t, k, err, NNE_EINVAL, "call.index_items: at most %d",
                    NNE_TRACE_MAX_ITEMS);
  for (i = 0; i < n->n_args; i++) {
    const nne_trace_arg_t *a = &n->args[i];
    snprintf(field, sizeof field, "call.args[%zu]", i);
    if (a->module != NULL) {
      if (strcmp(n->fn, "module") != 0)
        return node_err(t, k, err, NNE_EINVAL,
                        "%s: a module argument is only for fn \"module\"",
                        field);
      n_mod++;
      continue;
    }
    if (a->kind == NNE_ARG_TENSOR &&
        (rc = add_edge(t, m, k, a->node, field, &n->n_in, err)) != 0)
      return rc;
    oa[n_oa].kind = a->kind;
    oa[n_oa].name = a->name;
    oa[n_oa].tensor = NULL;
    oa[n_oa].scalar = a->scalar;
    oa[n_oa].integer = a->integer;
    oa[n_oa].ints = a->ints;
    oa[n_oa].n_ints = a->n_ints;
    oa[n_oa].boolean = a->boolean;
    oa[n_oa].dtype = a->dtype;
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
        return node_err(t, k, err, NNE_EINVAL,
                        "call.args[%zu]: fn \"module\" takes a module and "
                        "node values only",
                        i);
      }
    }
    if (n_mod != 1)
      return node_err(t, k, err, NNE_EINVAL,
                      "fn \"module\" takes exactly one module argument (%zu "
                      "given)",
                      n_mod);
    if (n->n_items > 0)
      return node_err(t, k, err, NNE_EINVAL,
                      "call.index_items: only for fn \"index\"");
    if (env->names == NULL)
      return node_err(t, k, err, NNE_ESTATE, "%s: the model has no names",
                      field);
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
        return node_err(t, k, err, NNE_EINVAL, "module '%s': %s", mod,
                        aerr.msg);
      if (n_inputs >= 0 && (int)n->n_in > n_inputs)
        return node_err(t, k, err, NNE_EINVAL,
                        "module '%s' takes %d input%s, %zu given", mod,
                        n_inputs, n_inputs == 1 ? "" : "s", n->n_in);
    }
    if (n->n_in == 0)
      return node_err(t, k, err, NNE_EINVAL,
                      "module '%s': give at least one node value as input",
                      mod);
    return 0;
  }
  rc = nne_op_check(n->fn, oa, n_oa, n->items, n->n_items, err);
  if (rc != 0) {
    char msg[NNE_ERR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", err->msg);
    return node_err(t, k, err, rc, "%s", msg);
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
      return node_err(t, k, err, NNE_EINVAL,
                      "constant.scalar: %g is outside float32's range",
                      n->scalar);
    return 0;
  }
  item = nne_dtype_size(n->dtype);
  if (item == 0)
    return node_err(t, k, err, NNE_EINVAL,
                    "constant.tensor.dtype: %d is not a known dtype",
                    (int)n->dtype);
  if (n->ndim < 0 || n->ndim > NNE_TENSOR_MAX_DIMS)
    return node_err(t, k, err, NNE_EINVAL,
                    "constant.tensor.shape: %d dimensions (at most %d)",
                    n->ndim, NNE_TENSOR_MAX_DIMS);
  for (d = 0; d < n->ndim; d++) {
    if (n->shape[d] < 0 || n->shape[d] > (1ll << 40))
      return node_err(t, k, err, NNE_EINVAL,
                      "constant.tensor.shape[%d]: %" PRId64, d, n->shape[d]);
    numel *= (size_t)n->shape[d];
    if (numel > ((size_t)1 << 40))
      return node_err(t, k, err, NNE_EINVAL,
                      "constant.tensor.shape: too many elements");
  }
  if (numel * item != n->nbytes)
    return node_err(t, k, err, NNE_EINVAL,
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
    return oom(err);
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
  rc = node_err(t, (size_t)path[len - 1], err, NNE_EINVAL,
                "the graph has a cycle (node ids, each feeding the next): %s",
                msg);
  free(seen);
  free(path);
  return rc;
}

int nne_trace_validate(nne_trace_t *t, const nne_trace_env_t *env,
                       nne_err_t *err) {
  nne_trace_session_t *s = t->session;
  size_t n = t->n_nodes, k, i, cap = 16, qh = 0, qt = 0;
  id_map_t m = {NULL, 0};
  int *pending = NULL, rc = 0;
  size_t *n_out = NULL;
  bool *reads = NULL;

  while (cap < 2 * n)
    cap *= 2;
  m.slot = malloc(cap * sizeof *m.slot);
  pending = malloc((n ? n : 1) * sizeof *pending);
  n_out = calloc(n ? n : 1, sizeof *n_out);
  reads = calloc(n ? n : 1, sizeof *reads);
  t->topo = arena_alloc(s, (n ? n : 1) * sizeof *t->topo);
  if (m.slot == NULL || pending == NULL || n_out == NULL || reads == NULL ||
      t->topo == NULL) {
    rc = oom(err);
    goto out;
  }
  m.cap = cap;
  for (i = 0; i < cap; i++)
    m.slot[i] = -1;

  /* Ids: unique within the trace. */
  for (k = 0; k < n; k++) {
    size_t mask = cap - 1, j;
    for (j = id_hash(t->nodes[k].id, mask); m.slot[j] >= 0;
         j = (j + 1) & mask)
      if (t->nodes[m.slot[j]].id == t->nodes[k].id) {
        rc = node_err(t, k, err, NNE_EINVAL,
                      "id %" PRIu32 " is also the id of nodes[%d]",
                      t->nodes[k].id, m.slot[j]);
        goto out;
      }
    m.slot[j] = (int)k;
  }

  /* Each node on its own: fields, references, sites, calls, names. */
  for (k = 0; k < n; k++) {
    nne_trace_node_t *nd = &t->nodes[k];
    size_t max_in = nd->op == NNE_TRACE_CALL ? nd->n_args
                    : nd->op == NNE_TRACE_WRITE || nd->op == NNE_TRACE_SAVE
                        ? 1
                        : 0;
    nd->n_in = 0;
    nd->n_out = 0;
    if (max_in > 0 && (nd->in = arena_alloc(s, max_in * sizeof *nd->in)) ==
                          NULL) {
      rc = oom(err);
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
        rc = node_err(t, k, err, NNE_EINVAL,
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
        rc = node_err(t, k, err, NNE_EINVAL, "write.ranges: at most %d",
                      NNE_TRACE_MAX_RANGES);
        goto out;
      }
      for (i = 0; i < nd->n_ranges; i++) {
        size_t j;
        for (j = 0; j < i; j++)
          if (nd->ranges[j].dim == nd->ranges[i].dim) {
            rc = node_err(t, k, err, NNE_EINVAL,
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
        rc = node_err(t, k, err, NNE_EINVAL, "save.name: a name is required");
        goto out;
      }
      if (strlen(nd->name) > 255) {
        rc = node_err(t, k, err, NNE_EINVAL,
                      "save.name: at most 255 characters");
        goto out;
      }
      e = name_find(s, nd->name);
      if (e >= 0) {
        const struct nne_trace_name *o = &s->names[e];
        if (o->node < 0)
          rc = node_err(t, k, err, NNE_EINVAL,
                        "save name '%s' is already the name of %s", nd->name,
                        o->what);
        else
          rc = node_err(t, k, err, NNE_EINVAL,
                        "save name '%s' is already used by "
                        "traces[%zu].nodes[%d] (id %" PRIu32 ")",
                        nd->name, o->trace, o->node,
                        s->traces[o->trace]->nodes[o->node].id);
        goto out;
      }
      if (name_add(s, nd->name, t->index, (int)k, NULL) != 0) {
        rc = oom(err);
        goto out;
      }
      nd->slot = t->n_saves++;
      break;
    }
    case NNE_TRACE_REF: {
      int e = nd->name[0] ? name_find(s, nd->name) : -1;
      if (nd->name[0] == '\0') {
        rc = node_err(t, k, err, NNE_EINVAL, "ref.name: a name is required");
        goto out;
      }
      if (e < 0 || s->names[e].node < 0) {
        rc = node_err(t, k, err, NNE_EINVAL,
                      "ref '%s': no earlier trace of this request saves a "
                      "value of that name",
                      nd->name);
        goto out;
      }
      if (s->names[e].trace >= t->index) {
        /* Only this trace can have added it (later ones are validated
         * later). */
        rc = node_err(t, k, err, NNE_EINVAL,
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
      rc = node_err(t, k, err, NNE_EINVAL, "unknown op %d", (int)nd->op);
      goto out;
    }
  }
  /* Consumers. */
  for (k = 0; k < n; k++)
    for (i = 0; i < t->nodes[k].n_in; i++)
      n_out[t->nodes[k].in[i]]++;
  for (k = 0; k < n; k++)
    if (n_out[k] > 0 &&
        (t->nodes[k].out = arena_alloc(s, n_out[k] * sizeof(int))) == NULL) {
      rc = oom(err);
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
    nd->aliases = nd->op == NNE_TRACE_READ ||
                  (nd->op == NNE_TRACE_CALL && any_alias &&
                   fn_may_alias(nd->fn));
    if (nd->op == NNE_TRACE_WRITE && any_read)
      t->needs_order = true;
  }
  if (t->n_saves > 0 &&
      (t->saved = arena_alloc(s, t->n_saves * sizeof *t->saved)) == NULL) {
    rc = oom(err);
    goto out;
  }
  t->validated = true;
out:
  free(m.slot);
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
  t->read_start = arena_alloc(s, (n_hooks + 1) * sizeof(size_t));
  t->write_start = arena_alloc(s, (n_hooks + 1) * sizeof(size_t));
  rf = arena_alloc(s, (n_hooks + 1) * sizeof(size_t));
  wf = arena_alloc(s, (n_hooks + 1) * sizeof(size_t));
  if (!t->read_start || !t->write_start || !rf || !wf)
    return oom(err);
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
  t->read_idx = arena_alloc(s, (nr ? nr : 1) * sizeof(size_t));
  t->write_idx = arena_alloc(s, (nw ? nw : 1) * sizeof(size_t));
  if (!t->read_idx || !t->write_idx)
    return oom(err);
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
    return oom(err);
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
      rc = node_err(t, (size_t)k, err, NNE_EINVAL,
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

int nne_trace_probe_order(nne_variant_t *v, size_t n_hooks, int64_t vocab,
                          int *order, nne_err_t *err) {
  static const int64_t shape[2] = {1, 2};
  int64_t ids[2] = {1, 2};
  nne_tensor_t *t = NULL, *logits = NULL;
  probe_t p;
  size_t i;
  int rc;

  for (i = 0; i < n_hooks; i++)
    order[i] = -1;
  if (vocab > 0) {
    ids[0] %= vocab;
    ids[1] %= vocab;
  }
  p.order = order;
  p.n = n_hooks;
  p.next = 0;
  rc = nne_tensor_from_host(NNE_DTYPE_I64, shape, 2, ids, &t, err);
  if (rc == 0)
    rc = nne_variant_forward(v, t, NULL, probe_hook, &p, &logits, err);
  if (rc != 0)
    nne_err_prefix(err, "probe forward");
  nne_tensor_unref(t);
  nne_tensor_unref(logits);
  return rc;
}

/* ---- execution ------------------------------------------------------------ */

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
    return oom(err);
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

#define run_err(r, k, code, ...) node_err((r)->t, (k), &(r)->err, (code), __VA_ARGS__)

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
  static const char *const elementwise[] = {"add", "sub", "mul", "div",
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
  return first == NULL ||
         (uint64_t)nne_tensor_numel(first) > limit / 8;
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
    oa[n_oa].kind = a->kind;
    oa[n_oa].name = a->name;
    oa[n_oa].tensor = NULL;
    oa[n_oa].scalar = a->scalar;
    oa[n_oa].integer = a->integer;
    oa[n_oa].ints = a->ints;
    oa[n_oa].n_ints = a->n_ints;
    oa[n_oa].boolean = a->boolean;
    oa[n_oa].dtype = a->dtype;
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
    return node_err(t, (size_t)k, &r->err, NNE_ERESOURCE,
                    "save '%s': the saved tensors exceed the response limit "
                    "of %llu bytes (--max-response-bytes)",
                    nd->name,
                    (unsigned long long)(r->o.limit ? r->o.limit
                                                    : r->o.budget));
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
    rc = nne_tensor_from_host(nd->dtype, nd->shape, nd->ndim, nd->data, &x,
                              &e);
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
    default:
      break;
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

  if (invoke < 0 || r->o.invoke_rows[invoke] == r->o.batch) {
    *out = nne_tensor_ref(x);
    return 0;
  }
  if (nne_tensor_ndim(x) < 1 || nne_tensor_shape(x)[0] != r->o.batch) 
    return run_err(r, k, NNE_EINVAL, "%s %s: the value's dim 0 is not the batch (%" PRId64
             " rows), so invoke %d cannot select rows; use invoke -1",
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
    return run_err(r, k, NNE_EINVAL, "write to %s: its value (node %" PRIu32 ") is not known yet when "
             "the site runs",
             nd->site_text, r->t->nodes[v].id);
  if (inv >= 0 && r->o.invoke_rows[inv] != r->o.batch) {
    int nd0 = nne_tensor_ndim(*cur);
    int64_t row0 = r->o.invoke_row0[inv], rows = r->o.invoke_rows[inv];
    int64_t s0 = 0, e0 = rows;
    if (nd0 < 1 || nne_tensor_shape(*cur)[0] != r->o.batch) 
      return run_err(r, k, NNE_EINVAL, "write %s: the value's dim 0 is not the batch (%" PRId64
               " rows), so invoke %d cannot select rows; use invoke -1",
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
        return run_err(r, k, NNE_EINVAL, "write.ranges[%zu]: rows [%" PRId64 ", %" PRId64
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
      snprintf(m, sizeof m, "write to %s: the site did not run in this "
               "forward", nd->site_text);
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
