/* igraph.c — the intervention graph builder (nnedit.h, "traces"), and its
 * view for trace.c and generate.c (internal.h, block igraph.c): the save
 * nodes, the nodes as Node messages and their steps as NodeSteps.
 *
 * A graph is an array of nodes in the order they were added, each holding
 * copies of what it was given (strings, ranges, arguments, a constant's
 * bytes), so that the caller's buffers are free the moment a call returns,
 * and beside it the steps given to some of them (Generate's), in the order
 * given. Encoding (nne_client_trace, nne_client_generate) turns each into
 * a message on the fly; NNE_CLIENT_INVOKE_ALL becomes an unset `invoke`
 * (every invoke), NNE_CLIENT_STEPS_END an unset `stop`. */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum ig_kind {
  IG_READ = 1,
  IG_WRITE,
  IG_CALL,
  IG_CONST,
  IG_SAVE,
  IG_REF,
} ig_kind_t;

typedef struct ig_arg {
  nne_client_arg_kind_t kind;
  char name[NNE_CLIENT_ARG_NAME_MAX];
  uint32_t node;
  double scalar;
  int64_t integer;
  int64_t ints[NNE_CLIENT_MAX_INTS];
  size_t n_ints;
  bool boolean;
  nne_client_dtype_t dtype;
  char *module; /* heap; NULL unless kind is MODULE */
} ig_arg_t;

typedef struct ig_node {
  uint32_t id;
  ig_kind_t kind;
  char *str;      /* read/write: site; call: fn; save/ref: name (heap) */
  int32_t invoke; /* read, write: NNE_CLIENT_INVOKE_ALL or a position */
  uint32_t value; /* write, save: the input node */
  nne_client_dim_range_t *ranges; /* write (heap) */
  size_t n_ranges;
  ig_arg_t *args; /* call (heap) */
  size_t n_args;
  nne_client_index_item_t *items; /* call (heap) */
  size_t n_items;
  nne_client_tensor_t tensor; /* const: the graph's own copy */
  bool use_scalar;            /* const: a scalar instead */
  double scalar;
} ig_node_t;

/* The steps a node runs at in Generate: [start, stop), or from start on
 * (!has_stop). */
typedef struct ig_steps {
  uint32_t node, start, stop;
  bool has_stop;
} ig_steps_t;

struct nne_client_igraph {
  ig_node_t *nodes;
  size_t n, cap;
  ig_steps_t *steps;
  size_t n_steps, steps_cap;
  uint32_t max_id;      /* largest id given out */
  uint32_t next_id;     /* nonzero: the id of the next node (igraph_next_id) */
  nne_client_err_t err; /* the first error (code 0: none) */
};

_Static_assert(
    NNE__FIELD_SIZE(nnedit_v1_ReadNode, site) == NNE_CLIENT_SITE_MAX &&
        NNE__FIELD_SIZE(nnedit_v1_WriteNode, site) == NNE_CLIENT_SITE_MAX &&
        NNE__FIELD_SIZE(nnedit_v1_Arg, value.module) == NNE_CLIENT_SITE_MAX,
    "ReadNode.site, WriteNode.site, Arg.module bounds");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_SaveNode, name) ==
                       NNE_CLIENT_NAME_MAX &&
                   NNE__FIELD_SIZE(nnedit_v1_RefNode, name) ==
                       NNE_CLIENT_NAME_MAX,
               "SaveNode.name, RefNode.name bounds");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_CallNode, fn) == NNE_CLIENT_FN_MAX &&
                   NNE__FIELD_SIZE(nnedit_v1_Arg, name) ==
                       NNE_CLIENT_ARG_NAME_MAX,
               "CallNode.fn, Arg.name bounds");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_CallNode, args) ==
                       NNE_CLIENT_MAX_ARGS * sizeof(nnedit_v1_Arg) &&
                   NNE__FIELD_SIZE(nnedit_v1_CallNode, index_items) ==
                       NNE_CLIENT_MAX_INDEX_ITEMS *
                           sizeof(nnedit_v1_IndexItem) &&
                   NNE__FIELD_SIZE(nnedit_v1_IntList, values) ==
                       NNE_CLIENT_MAX_INTS * sizeof(int64_t),
               "CallNode.args, CallNode.index_items, IntList.values bounds");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_WriteNode, ranges) ==
                   NNE_CLIENT_MAX_RANGES * sizeof(nnedit_v1_DimRange),
               "WriteNode.ranges bound");
_Static_assert(nnedit_v1_Arg_node_tag == NNE_CLIENT_ARG_NODE &&
                   nnedit_v1_Arg_module_tag == NNE_CLIENT_ARG_MODULE &&
                   nnedit_v1_IndexItem_index_tag == NNE_CLIENT_INDEX_INT &&
                   nnedit_v1_IndexItem_newaxis_tag == NNE_CLIENT_INDEX_NEWAXIS,
               "Arg and IndexItem member tags");

static void ig_node_clear(ig_node_t *n) {
  size_t k;
  free(n->str);
  free(n->ranges);
  for (k = 0; k < n->n_args; k++)
    free(n->args[k].module);
  free(n->args);
  free(n->items);
  nne_client_tensor_free(&n->tensor);
  memset(n, 0, sizeof *n);
}

nne_client_igraph_t *nne_client_igraph_new(void) {
  return calloc(1, sizeof(nne_client_igraph_t));
}

void nne_client_igraph_free(nne_client_igraph_t *g) {
  size_t i;
  if (g == NULL)
    return;
  for (i = 0; i < g->n; i++)
    ig_node_clear(&g->nodes[i]);
  free(g->nodes);
  free(g->steps);
  free(g);
}

int nne_client_igraph_error(const nne_client_igraph_t *g,
                            nne_client_err_t *err) {
  if (g == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "igraph: graph is NULL");
  if (g->err.code == 0)
    return 0;
  if (err != NULL)
    *err = g->err;
  return -g->err.code;
}

size_t nne_client_igraph_size(const nne_client_igraph_t *g) {
  return g ? g->n : 0;
}

/* The id the node being added will get. */
static uint32_t ig_id(const nne_client_igraph_t *g) {
  return g->next_id ? g->next_id : g->max_id + 1;
}

/* Records the first error of the graph (node `id`, `what` was done to it,
 * and the reason) and returns its -code. */
static int ig_failv(nne_client_igraph_t *g, int code, long long id,
                    const char *what, const char *fmt, va_list ap) {
  size_t n;
  if (g->err.code != 0)
    return -g->err.code;
  g->err.code = code;
  n = (size_t)snprintf(g->err.message, sizeof g->err.message,
                       "node %lld (%s): ", id, what);
  if (n < sizeof g->err.message)
    vsnprintf(g->err.message + n, sizeof g->err.message - n, fmt, ap);
  return -code;
}

/* The same for the node being added. */
static int ig_fail(nne_client_igraph_t *g, int code, const char *what,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int ig_fail(nne_client_igraph_t *g, int code, const char *what,
                   const char *fmt, ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = ig_failv(g, code, ig_id(g), what, fmt, ap);
  va_end(ap);
  return rc;
}

/* A graph that may take one more node: non-NULL, no error so far, an id
 * left and room. Returns 0 or -code. */
static int ig_begin(nne_client_igraph_t *g, const char *what) {
  if (g == NULL)
    return -NNE_CLIENT_INVALID_ARGUMENT;
  if (g->err.code != 0)
    return -g->err.code;
  if (ig_id(g) > NNE_CLIENT_MAX_NODE_ID)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "no node ids left (the largest is %d)",
                   NNE_CLIENT_MAX_NODE_ID);
  if (NNE_VEC_GROW(&g->nodes, &g->cap, g->n + 1) != 0)
    return ig_fail(g, NNE_CLIENT_RESOURCE_EXHAUSTED, what, "out of memory");
  return 0;
}

/* Adds *n (whose allocations the graph now owns) under the next id. */
static int ig_add(nne_client_igraph_t *g, ig_node_t *n) {
  n->id = ig_id(g);
  g->nodes[g->n++] = *n;
  if (n->id > g->max_id)
    g->max_id = n->id;
  g->next_id = 0;
  return (int)n->id;
}

/* A string argument: non-NULL, non-empty, shorter than cap; copied into
 * *out. */
static int ig_str(nne_client_igraph_t *g, const char *what, const char *field,
                  const char *s, size_t cap, char **out) {
  if (s == NULL || s[0] == '\0')
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what, "%s is %s", field,
                   s == NULL ? "NULL" : "empty");
  if (strlen(s) >= cap)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "%s '%.64s...' is longer than %zu bytes", field, s, cap - 1);
  if ((*out = strdup(s)) == NULL)
    return ig_fail(g, NNE_CLIENT_RESOURCE_EXHAUSTED, what, "out of memory");
  return 0;
}

/* A node named as input: an id some call returned. */
static int ig_ref_id(nne_client_igraph_t *g, const char *what,
                     const char *field, int id, uint32_t *out) {
  if (id < 0)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "%s is %d, the status of a failed call, not a node id",
                   field, id);
  if (id == 0)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "%s is 0, never a node id", field);
  *out = (uint32_t)id;
  return 0;
}

static int ig_invoke(nne_client_igraph_t *g, const char *what, int invoke,
                     int32_t *out) {
  if (invoke < 0 && invoke != NNE_CLIENT_INVOKE_ALL)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "invoke %d (an invoke's index, or NNE_CLIENT_INVOKE_ALL "
                   "for the whole batch)",
                   invoke);
  *out = (int32_t)invoke;
  return 0;
}

int nne_client_igraph_next_id(nne_client_igraph_t *g, int id) {
  size_t i;
  int rc;
  if ((rc = ig_begin(g, "next_id")) < 0)
    return rc;
  if (id <= 0)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, "next_id",
                   "id %d: ids are 1 to %d", id, NNE_CLIENT_MAX_NODE_ID);
  for (i = 0; (uint32_t)id <= g->max_id && i < g->n; i++)
    if (g->nodes[i].id == (uint32_t)id)
      return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, "next_id",
                     "id %d is already in use", id);
  g->next_id = (uint32_t)id;
  return 0;
}

int nne_client_igraph_read(nne_client_igraph_t *g, const char *site,
                           int invoke) {
  ig_node_t n;
  int rc;
  if ((rc = ig_begin(g, "read")) < 0)
    return rc;
  memset(&n, 0, sizeof n);
  n.kind = IG_READ;
  if ((rc = ig_invoke(g, "read", invoke, &n.invoke)) < 0 ||
      (rc = ig_str(g, "read", "site", site, NNE_CLIENT_SITE_MAX, &n.str)) < 0)
    return rc;
  return ig_add(g, &n);
}

int nne_client_igraph_write(nne_client_igraph_t *g, const char *site, int value,
                            int invoke, const nne_client_dim_range_t *ranges,
                            size_t n_ranges) {
  ig_node_t n;
  int rc;
  if ((rc = ig_begin(g, "write")) < 0)
    return rc;
  memset(&n, 0, sizeof n);
  n.kind = IG_WRITE;
  if ((rc = ig_ref_id(g, "write", "value", value, &n.value)) < 0 ||
      (rc = ig_invoke(g, "write", invoke, &n.invoke)) < 0)
    return rc;
  if (n_ranges > NNE_CLIENT_MAX_RANGES)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, "write",
                   "%zu ranges, more than %d", n_ranges, NNE_CLIENT_MAX_RANGES);
  if (n_ranges > 0 && ranges == NULL)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, "write",
                   "ranges is NULL with n_ranges %zu", n_ranges);
  if ((rc = ig_str(g, "write", "site", site, NNE_CLIENT_SITE_MAX, &n.str)) < 0)
    return rc;
  if (n_ranges > 0) {
    n.ranges = malloc(n_ranges * sizeof *n.ranges);
    if (n.ranges == NULL) {
      ig_node_clear(&n);
      return ig_fail(g, NNE_CLIENT_RESOURCE_EXHAUSTED, "write",
                     "out of memory");
    }
    memcpy(n.ranges, ranges, n_ranges * sizeof *n.ranges);
    n.n_ranges = n_ranges;
  }
  return ig_add(g, &n);
}

nne_client_arg_t nne_client_arg_node(int id) {
  nne_client_arg_t a = {.kind = NNE_CLIENT_ARG_NODE, .node = id};
  return a;
}

nne_client_arg_t nne_client_arg_scalar(double v) {
  nne_client_arg_t a = {.kind = NNE_CLIENT_ARG_SCALAR, .scalar = v};
  return a;
}

nne_client_arg_t nne_client_arg_int(int64_t v) {
  nne_client_arg_t a = {.kind = NNE_CLIENT_ARG_INT, .integer = v};
  return a;
}

nne_client_arg_t nne_client_arg_ints(const int64_t *v, size_t n) {
  nne_client_arg_t a = {.kind = NNE_CLIENT_ARG_INTS, .ints = v, .n_ints = n};
  return a;
}

nne_client_arg_t nne_client_arg_bool(bool v) {
  nne_client_arg_t a = {.kind = NNE_CLIENT_ARG_BOOL, .boolean = v};
  return a;
}

nne_client_arg_t nne_client_arg_dtype(nne_client_dtype_t dtype) {
  nne_client_arg_t a = {.kind = NNE_CLIENT_ARG_DTYPE, .dtype = dtype};
  return a;
}

nne_client_arg_t nne_client_arg_module(const char *module) {
  nne_client_arg_t a = {.kind = NNE_CLIENT_ARG_MODULE, .module = module};
  return a;
}

nne_client_arg_t nne_client_arg_kw(const char *name, nne_client_arg_t a) {
  a.name = name;
  return a;
}

nne_client_index_item_t nne_client_idx(int64_t i) {
  nne_client_index_item_t it = {.kind = NNE_CLIENT_INDEX_INT, .index = i};
  return it;
}

nne_client_index_item_t nne_client_idx_slice(int64_t start, int64_t stop) {
  return nne_client_idx_slice_ex(true, start, true, stop, 0);
}

nne_client_index_item_t nne_client_idx_slice_ex(bool has_start, int64_t start,
                                                bool has_stop, int64_t stop,
                                                int64_t step) {
  nne_client_index_item_t it = {.kind = NNE_CLIENT_INDEX_SLICE,
                                .start = has_start ? start : 0,
                                .stop = has_stop ? stop : 0,
                                .step = step,
                                .has_start = has_start,
                                .has_stop = has_stop};
  return it;
}

nne_client_index_item_t nne_client_idx_all(void) {
  return nne_client_idx_slice_ex(false, 0, false, 0, 0);
}

nne_client_index_item_t nne_client_idx_ellipsis(void) {
  nne_client_index_item_t it = {.kind = NNE_CLIENT_INDEX_ELLIPSIS};
  return it;
}

nne_client_index_item_t nne_client_idx_newaxis(void) {
  nne_client_index_item_t it = {.kind = NNE_CLIENT_INDEX_NEWAXIS};
  return it;
}

/* Copies argument a into *o, checking what the wire cannot carry. */
static int ig_arg(nne_client_igraph_t *g, const char *what, size_t k,
                  const nne_client_arg_t *a, ig_arg_t *o) {
  char field[48];
  snprintf(field, sizeof field, "args[%zu]", k);
  o->kind = a->kind;
  if (a->name != NULL && strlen(a->name) >= sizeof o->name)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "%s: keyword '%.40s...' is longer than %zu bytes", field,
                   a->name, sizeof o->name - 1);
  nne__copy_str(o->name, sizeof o->name, a->name);
  switch (a->kind) {
  case NNE_CLIENT_ARG_NODE:
    snprintf(field, sizeof field, "args[%zu].node", k);
    return ig_ref_id(g, what, field, a->node, &o->node);
  case NNE_CLIENT_ARG_SCALAR: o->scalar = a->scalar; return 0;
  case NNE_CLIENT_ARG_INT: o->integer = a->integer; return 0;
  case NNE_CLIENT_ARG_INTS:
    if (a->n_ints > NNE_CLIENT_MAX_INTS)
      return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                     "%s: %zu integers, more than %d", field, a->n_ints,
                     NNE_CLIENT_MAX_INTS);
    if (a->n_ints > 0 && a->ints == NULL)
      return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                     "%s: ints is NULL with n_ints %zu", field, a->n_ints);
    if (a->n_ints > 0)
      memcpy(o->ints, a->ints, a->n_ints * sizeof *o->ints);
    o->n_ints = a->n_ints;
    return 0;
  case NNE_CLIENT_ARG_BOOL: o->boolean = a->boolean; return 0;
  case NNE_CLIENT_ARG_DTYPE:
    if (nne_client_dtype_size(a->dtype) == 0)
      return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                     "%s: unknown dtype %d", field, (int)a->dtype);
    o->dtype = a->dtype;
    return 0;
  case NNE_CLIENT_ARG_MODULE:
    return ig_str(g, what, field, a->module, NNE_CLIENT_SITE_MAX, &o->module);
  default:
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "%s: unknown argument kind %d", field, (int)a->kind);
  }
}

static int ig_item(nne_client_igraph_t *g, const char *what, size_t k,
                   const nne_client_index_item_t *it) {
  if (it->kind < NNE_CLIENT_INDEX_INT || it->kind > NNE_CLIENT_INDEX_NEWAXIS)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "items[%zu]: unknown index item kind %d", k, (int)it->kind);
  return 0;
}

int nne_client_igraph_call(nne_client_igraph_t *g, const char *fn,
                           const nne_client_arg_t *args, size_t n_args,
                           const nne_client_index_item_t *items,
                           size_t n_items) {
  char what[48];
  ig_node_t n;
  size_t k;
  int rc;

  snprintf(what, sizeof what, "call '%.24s'", fn ? fn : "(null)");
  if ((rc = ig_begin(g, what)) < 0)
    return rc;
  if (n_args > NNE_CLIENT_MAX_ARGS)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "%zu arguments, more than %d", n_args, NNE_CLIENT_MAX_ARGS);
  if (n_items > NNE_CLIENT_MAX_INDEX_ITEMS)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "%zu index items, more than %d", n_items,
                   NNE_CLIENT_MAX_INDEX_ITEMS);
  if ((n_args > 0 && args == NULL) || (n_items > 0 && items == NULL))
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "%s is NULL with a count of %zu",
                   n_args > 0 && args == NULL ? "args" : "items",
                   n_args > 0 && args == NULL ? n_args : n_items);
  memset(&n, 0, sizeof n);
  n.kind = IG_CALL;
  if ((rc = ig_str(g, what, "fn", fn, NNE_CLIENT_FN_MAX, &n.str)) < 0)
    return rc;
  if ((n_args > 0 && (n.args = calloc(n_args, sizeof *n.args)) == NULL) ||
      (n_items > 0 && (n.items = malloc(n_items * sizeof *n.items)) == NULL)) {
    ig_node_clear(&n);
    return ig_fail(g, NNE_CLIENT_RESOURCE_EXHAUSTED, what, "out of memory");
  }
  for (k = 0; k < n_args; k++) {
    /* Counted first, so that clearing frees a module copied halfway. */
    n.n_args = k + 1;
    if ((rc = ig_arg(g, what, k, &args[k], &n.args[k])) < 0) {
      ig_node_clear(&n);
      return rc;
    }
  }
  for (k = 0; k < n_items; k++)
    if ((rc = ig_item(g, what, k, &items[k])) < 0) {
      ig_node_clear(&n);
      return rc;
    }
  if (n_items > 0)
    memcpy(n.items, items, n_items * sizeof *n.items);
  n.n_items = n_items;
  return ig_add(g, &n);
}

int nne_client_igraph_const_tensor(nne_client_igraph_t *g,
                                   const nne_client_tensor_t *t) {
  ig_node_t n;
  char why[128];
  int rc;
  if ((rc = ig_begin(g, "constant")) < 0)
    return rc;
  if (t == NULL)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, "constant",
                   "tensor is NULL");
  if (!nne__tensor_check(t, why, sizeof why))
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, "constant", "%s", why);
  memset(&n, 0, sizeof n);
  n.kind = IG_CONST;
  n.tensor.dtype = t->dtype;
  n.tensor.ndim = t->ndim;
  memcpy(n.tensor.shape, t->shape, t->ndim * sizeof t->shape[0]);
  n.tensor.nbytes = t->nbytes;
  if (t->nbytes > 0) {
    if ((n.tensor.data = malloc(t->nbytes)) == NULL)
      return ig_fail(g, NNE_CLIENT_RESOURCE_EXHAUSTED, "constant",
                     "cannot allocate %zu bytes", t->nbytes);
    memcpy(n.tensor.data, t->data, t->nbytes);
  }
  return ig_add(g, &n);
}

int nne_client_igraph_const_scalar(nne_client_igraph_t *g, double v) {
  ig_node_t n;
  int rc;
  if ((rc = ig_begin(g, "constant")) < 0)
    return rc;
  memset(&n, 0, sizeof n);
  n.kind = IG_CONST;
  n.use_scalar = true;
  n.scalar = v;
  return ig_add(g, &n);
}

int nne_client_igraph_save(nne_client_igraph_t *g, int value,
                           const char *name) {
  ig_node_t n;
  int rc;
  if ((rc = ig_begin(g, "save")) < 0)
    return rc;
  memset(&n, 0, sizeof n);
  n.kind = IG_SAVE;
  if ((rc = ig_ref_id(g, "save", "value", value, &n.value)) < 0 ||
      (rc = ig_str(g, "save", "name", name, NNE_CLIENT_NAME_MAX, &n.str)) < 0)
    return rc;
  return ig_add(g, &n);
}

int nne_client_igraph_ref(nne_client_igraph_t *g, const char *name) {
  ig_node_t n;
  int rc;
  if ((rc = ig_begin(g, "ref")) < 0)
    return rc;
  memset(&n, 0, sizeof n);
  n.kind = IG_REF;
  if ((rc = ig_str(g, "ref", "name", name, NNE_CLIENT_NAME_MAX, &n.str)) < 0)
    return rc;
  return ig_add(g, &n);
}

/* Steps of node `node` refused: the graph's error, naming that node. */
static int ig_steps_fail(nne_client_igraph_t *g, int node, const char *fmt,
                         ...) __attribute__((format(printf, 3, 4)));
static int ig_steps_fail(nne_client_igraph_t *g, int node, const char *fmt,
                         ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = ig_failv(g, NNE_CLIENT_INVALID_ARGUMENT, node, "steps", fmt, ap);
  va_end(ap);
  return rc;
}

/* Whether node `node` is in g. */
static bool ig_has(const nne_client_igraph_t *g, int node) {
  size_t i;
  for (i = 0; node > 0 && i < g->n; i++)
    if (g->nodes[i].id == (uint32_t)node)
      return true;
  return false;
}

/* Node `node`'s steps, or NULL. */
static const ig_steps_t *ig_steps_of(const nne_client_igraph_t *g, int node) {
  size_t i;
  for (i = 0; node > 0 && i < g->n_steps; i++)
    if (g->steps[i].node == (uint32_t)node)
      return &g->steps[i];
  return NULL;
}

int nne_client_igraph_get_steps(const nne_client_igraph_t *g, int node,
                                uint32_t *start, int64_t *stop) {
  const ig_steps_t *st;
  if (g == NULL || !ig_has(g, node))
    return -NNE_CLIENT_NOT_FOUND;
  st = ig_steps_of(g, node);
  *start = st != NULL ? st->start : 0;
  *stop = st != NULL && st->has_stop ? (int64_t)st->stop : NNE_CLIENT_STEPS_END;
  return st != NULL;
}

int nne_client_igraph_steps(nne_client_igraph_t *g, int node, uint32_t start,
                            int64_t stop) {
  if (g == NULL)
    return -NNE_CLIENT_INVALID_ARGUMENT;
  if (g->err.code != 0)
    return -g->err.code;
  if (!ig_has(g, node))
    return ig_steps_fail(g, node, "no node %d in the graph", node);
  if (ig_steps_of(g, node) != NULL)
    return ig_steps_fail(g, node, "the node has steps already");
  if (stop != NNE_CLIENT_STEPS_END &&
      (stop <= (int64_t)start || stop > UINT32_MAX))
    return ig_steps_fail(g, node,
                         "stop %" PRId64 " is not after start %" PRIu32
                         " (or over 2^32 - 1; NNE_CLIENT_STEPS_END: to the "
                         "end)",
                         stop, start);
  if (NNE_VEC_GROW(&g->steps, &g->steps_cap, g->n_steps + 1) != 0)
    return ig_fail(g, NNE_CLIENT_RESOURCE_EXHAUSTED, "steps", "out of memory");
  g->steps[g->n_steps++] =
      (ig_steps_t){(uint32_t)node, start,
                   stop == NNE_CLIENT_STEPS_END ? 0 : (uint32_t)stop,
                   stop != NNE_CLIENT_STEPS_END};
  return 0;
}

/* ---- the view for trace.c and generate.c --------------------------------- */

bool nne__igraph_next_save(const nne_client_igraph_t *g, size_t *pos,
                           const char **name, uint32_t *id) {
  for (; g != NULL && *pos < g->n; (*pos)++)
    if (g->nodes[*pos].kind == IG_SAVE) {
      *name = g->nodes[*pos].str;
      *id = g->nodes[*pos].id;
      (*pos)++;
      return true;
    }
  return false;
}

static void fill_arg(const ig_arg_t *a, nnedit_v1_Arg *m) {
  m->which_value = (pb_size_t)a->kind; /* the tags (static assert above) */
  switch (a->kind) {
  case NNE_CLIENT_ARG_NODE: m->value.node = a->node; break;
  case NNE_CLIENT_ARG_SCALAR: m->value.scalar = a->scalar; break;
  case NNE_CLIENT_ARG_INT: m->value.integer = a->integer; break;
  case NNE_CLIENT_ARG_INTS:
    m->value.ints.values_count = (pb_size_t)a->n_ints;
    memcpy(m->value.ints.values, a->ints, a->n_ints * sizeof a->ints[0]);
    break;
  case NNE_CLIENT_ARG_BOOL: m->value.boolean = a->boolean; break;
  case NNE_CLIENT_ARG_DTYPE: m->value.dtype = (nnedit_v1_DType)a->dtype; break;
  case NNE_CLIENT_ARG_MODULE:
    nne__copy_str(m->value.module, sizeof m->value.module, a->module);
    break;
  }
  memcpy(m->name, a->name, sizeof m->name);
}

static void fill_item(const nne_client_index_item_t *it,
                      nnedit_v1_IndexItem *m) {
  m->which_item = (pb_size_t)it->kind;
  switch (it->kind) {
  case NNE_CLIENT_INDEX_INT: m->item.index = it->index; break;
  case NNE_CLIENT_INDEX_SLICE:
    m->item.slice.has_start = it->has_start;
    m->item.slice.start = it->has_start ? it->start : 0;
    m->item.slice.has_stop = it->has_stop;
    m->item.slice.stop = it->has_stop ? it->stop : 0;
    m->item.slice.step = it->step;
    break;
  case NNE_CLIENT_INDEX_ELLIPSIS: m->item.ellipsis = true; break;
  case NNE_CLIENT_INDEX_NEWAXIS: m->item.newaxis = true; break;
  }
}

static bool fill_node(void *ctx, size_t i, void *msg) {
  nne__igraph_enc_t *e = ctx;
  const ig_node_t *n = &e->g->nodes[i];
  nnedit_v1_Node *m = msg; /* zeroed by nne_pb_list_enc */
  size_t k;

  m->id = n->id;
  switch (n->kind) {
  case IG_READ: {
    nnedit_v1_ReadNode *r = &m->op.read;
    m->which_op = nnedit_v1_Node_read_tag;
    nne__copy_str(r->site, sizeof r->site, n->str);
    r->has_invoke = n->invoke != NNE_CLIENT_INVOKE_ALL;
    r->invoke = r->has_invoke ? n->invoke : 0;
    break;
  }
  case IG_WRITE: {
    nnedit_v1_WriteNode *w = &m->op.write;
    m->which_op = nnedit_v1_Node_write_tag;
    nne__copy_str(w->site, sizeof w->site, n->str);
    w->value = n->value;
    w->has_invoke = n->invoke != NNE_CLIENT_INVOKE_ALL;
    w->invoke = w->has_invoke ? n->invoke : 0;
    w->ranges_count = (pb_size_t)n->n_ranges;
    for (k = 0; k < n->n_ranges; k++) {
      w->ranges[k].dim = n->ranges[k].dim;
      w->ranges[k].start = n->ranges[k].start;
      w->ranges[k].stop = n->ranges[k].stop;
    }
    break;
  }
  case IG_CALL: {
    nnedit_v1_CallNode *c = &m->op.call;
    m->which_op = nnedit_v1_Node_call_tag;
    nne__copy_str(c->fn, sizeof c->fn, n->str);
    c->args_count = (pb_size_t)n->n_args;
    for (k = 0; k < n->n_args; k++)
      fill_arg(&n->args[k], &c->args[k]);
    c->index_items_count = (pb_size_t)n->n_items;
    for (k = 0; k < n->n_items; k++)
      fill_item(&n->items[k], &c->index_items[k]);
    break;
  }
  case IG_CONST: {
    nnedit_v1_ConstNode *c = &m->op.constant;
    m->which_op = nnedit_v1_Node_constant_tag;
    if (n->use_scalar) {
      c->which_value = nnedit_v1_ConstNode_scalar_tag;
      c->value.scalar = n->scalar;
    } else {
      nnedit_v1_Tensor *t = &c->value.tensor;
      c->which_value = nnedit_v1_ConstNode_tensor_tag;
      t->dtype = (nnedit_v1_DType)n->tensor.dtype;
      t->shape_count = (pb_size_t)n->tensor.ndim;
      memcpy(t->shape, n->tensor.shape,
             n->tensor.ndim * sizeof n->tensor.shape[0]);
      /* Straight from the graph's copy into the outgoing message. */
      e->data.p = n->tensor.data;
      e->data.n = n->tensor.nbytes;
      if (n->tensor.nbytes > 0)
        NNE_PB_ENC(t->data, nne_pb_bytes_enc, &e->data);
    }
    break;
  }
  case IG_SAVE:
    m->which_op = nnedit_v1_Node_save_tag;
    m->op.save.value = n->value;
    nne__copy_str(m->op.save.name, sizeof m->op.save.name, n->str);
    break;
  case IG_REF:
    m->which_op = nnedit_v1_Node_ref_tag;
    nne__copy_str(m->op.ref.name, sizeof m->op.ref.name, n->str);
    break;
  }
  return true;
}

void nne__igraph_enc(nne__igraph_enc_t *e, const nne_client_igraph_t *g,
                     pb_callback_t *nodes) {
  e->g = g;
  e->list =
      (nne_pb_list_enc_t){g ? g->n : 0, fill_node, e, sizeof(nnedit_v1_Node)};
  NNE_PB_ENC(*nodes, nne_pb_list_enc, &e->list);
}

bool nne__igraph_first_steps(const nne_client_igraph_t *g, uint32_t *node) {
  if (g == NULL || g->n_steps == 0)
    return false;
  *node = g->steps[0].node;
  return true;
}

static bool fill_steps(void *ctx, size_t i, void *msg) {
  const ig_steps_t *st = &((const nne__igraph_enc_t *)ctx)->g->steps[i];
  nnedit_v1_NodeSteps *m = msg; /* zeroed by nne_pb_list_enc */
  m->node = st->node;
  m->start = st->start;
  m->has_stop = st->has_stop;
  m->stop = st->stop;
  return true;
}

void nne__igraph_steps_enc(nne__igraph_enc_t *e, const nne_client_igraph_t *g,
                           pb_callback_t *steps) {
  e->g = g;
  e->steps = (nne_pb_list_enc_t){g ? g->n_steps : 0, fill_steps, e,
                                 sizeof(nnedit_v1_NodeSteps)};
  NNE_PB_ENC(*steps, nne_pb_list_enc, &e->steps);
}
