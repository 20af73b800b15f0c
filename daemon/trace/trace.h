/* trace/trace.h — intervention graphs: their internal form, validation,
 * schedule and execution.
 *
 * A trace runs the model once and, along the way, reads, computes on,
 * writes and saves values at sites (proto/nnedit/v1/inference.proto, the
 * Trace section, is the contract). Its program is a small dataflow graph of
 * nodes with client-chosen ids:
 *
 *   read(site, invoke)              the value at a site (first firing), for
 *                                   one invoke's rows or the whole batch
 *   write(site, value, invoke, ranges)  replaces (part of) a site's value
 *   call(fn, args, index items)     a whitelisted tensor function
 *                                   (engine.h), or fn "module": a submodule's
 *                                   forward
 *   const(tensor | scalar)
 *   save(value, name)               streamed back under `name`
 *   ref(name)                       a value an earlier trace of the same
 *                                   request saved
 *
 * Life cycle (one request = a session of traces, run in order):
 *
 *   nne_trace_session_init()            limits
 *   nne_trace_session_add() → trace     per trace; nne_trace_add_*() per node
 *                                       (everything is copied into the
 *                                       session's arena)
 *   nne_trace_session_reserve()         names the request streams besides
 *                                       saves ("0/logits"), so saves cannot
 *                                       take them
 *   nne_trace_validate()                per trace, in order: ids, references,
 *                                       cycles, sites, invokes, calls, save
 *                                       and ref names; computes the schedule
 *   nne_trace_sites() + compiler plan   the sites the trace hooks
 *   nne_trace_bind()                    hook ids from the plan: reads and
 *                                       writes indexed by hook
 *   nne_trace_check_order()             with each hook's first-firing
 *                                       position (nne_trace_probe_order, or
 *                                       the backend cache's copy): no write
 *                                       may depend on a read that runs later
 *   nne_trace_run_init()                per forward, on the executor
 *     nne_trace_run_begin()             constants, refs, and what needs only
 *                                       them
 *     nne_variant_forward(..., nne_trace_hook, run)
 *     nne_trace_run_end()               what is left; every save taken and
 *                                       every write applied, or an error
 *   nne_trace_run_free()
 *   nne_trace_session_free()            saved tensors go with it
 *
 * Execution is event-driven, not a scan: each node counts its inputs not yet
 * known; when a hook fires (first time in the forward) its reads are taken
 * (after any edit set's edits at that hook), every node whose count reaches
 * zero is computed (a queue, so each node once, in dependency order), then
 * the hook's writes are applied in request order. Each value counts the
 * consumers that still need it and is released when the last one is done,
 * so memory stays flat whatever the graph's size. A value that aliases the
 * model's activations (a read, or a view of one) and outlives its hook is
 * cloned, because the forward may later write that memory in place; saves
 * are clones (or fresh tensors) for the same reason.
 *
 * Messages name the node as "traces[T].nodes[K] (id N)". Validation errors
 * are NNE_EINVAL; a too-large graph is NNE_ERESOURCE naming the limit; a
 * call that fails at run time is NNE_EINVAL naming the node and libtorch's
 * reason.
 *
 * Threads: building and validation on one thread (the loop); a run on one
 * thread (an executor). A session is used by one request at a time.
 */
#ifndef NNE_TRACE_H
#define NNE_TRACE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/error.h"
#include "base/map.h"
#include "engine/engine.h"
#include "base/error.h"
#include "edit/runtime.h"
#include "names/names.h"

#define NNE_TRACE_MAX_ARGS 16
#define NNE_TRACE_MAX_ITEMS 16
#define NNE_TRACE_MAX_RANGES 8

typedef enum nne_trace_op {
  NNE_TRACE_READ = 1,
  NNE_TRACE_WRITE = 2,
  NNE_TRACE_CALL = 3,
  NNE_TRACE_CONST = 4,
  NNE_TRACE_SAVE = 5,
  NNE_TRACE_REF = 6,
} nne_trace_op_t;

/* An argument of a call as the client gives it. `module` non-NULL: the
 * module argument of fn "module" (any spelling); else `kind` says which
 * field holds the value, NNE_ARG_TENSOR meaning the value of node `node`
 * (an id). */
typedef struct nne_trace_arg {
  nne_arg_kind_t kind;
  uint32_t node;
  const char *name;      /* keyword, or NULL / "" for positional */
  double scalar;
  int64_t integer;
  const int64_t *ints;
  size_t n_ints;
  int boolean;
  nne_dtype_t dtype;
  const char *module;
} nne_trace_arg_t;

/* A node in the session's arena. Fields by op; the rest stay zero. */
typedef struct nne_trace_node {
  uint32_t id;
  nne_trace_op_t op;
  /* READ, WRITE */
  const char *site_text;     /* as spelled */
  nne_names_site_t *site;    /* resolved by validation */
  int invoke;                /* NNE_TRACE_ALL_INVOKES: the whole batch */
  int hook;                  /* from nne_trace_bind, else -1 */
  /* WRITE, SAVE: the node whose value is written / saved */
  uint32_t value_id;
  /* WRITE */
  nne_dim_range_t *ranges;
  size_t n_ranges;
  /* CALL */
  const char *fn;
  nne_trace_arg_t *args;
  size_t n_args;
  nne_index_item_t *items;
  size_t n_items;
  int module;                /* fn "module": resolved module index */
  /* CONST: bytes (owned by the session) or a scalar */
  nne_dtype_t dtype;
  int64_t *shape;
  int ndim;
  void *data;
  size_t nbytes;
  bool use_scalar;
  double scalar;
  /* SAVE, REF */
  const char *name;
  /* REF: the save it reads (validation) */
  size_t ref_trace;
  size_t ref_slot;
  /* SAVE: its slot in the trace's `saved` */
  size_t slot;
  /* The graph (validation): value inputs as node indices (one per edge,
   * duplicates kept), consumers likewise. */
  int *in;
  size_t n_in;
  int *out;
  size_t n_out;
  bool aliases;              /* may share memory with an activation */
} nne_trace_node_t;

typedef struct nne_trace_session nne_trace_session_t;

typedef struct nne_trace {
  nne_trace_session_t *session;
  size_t index;              /* position in the request */
  char label[64];            /* name, or the index in decimal */
  char name[64];             /* as given */
  nne_trace_node_t *nodes;
  size_t n_nodes, cap_nodes;
  size_t n_invokes;          /* set before validation */
  bool validated;
  /* Validation results */
  int *topo;                 /* node indices in dependency order */
  size_t n_sites;            /* read + write nodes */
  bool needs_order;          /* some write depends on a read */
  size_t n_saves;
  nne_tensor_t **saved;      /* per save slot: what the run took */
  /* nne_trace_bind: reads and writes by hook, compressed rows over node
   * indices (request order within a hook). */
  size_t n_hooks;
  size_t *read_start, *read_idx;   /* n_hooks + 1, reads */
  size_t *write_start, *write_idx; /* n_hooks + 1, writes */
} nne_trace_t;

struct nne_trace_session {
  nne_trace_t **traces;
  size_t n, cap;
  size_t max_traces;         /* --max-traces */
  size_t max_nodes;          /* --max-trace-nodes, per trace */
  nne_arena_t arena;         /* everything the graphs hold */
  /* Names streamed in this request: saves and reserved names, with a map
   * from each name to its index in `names`. */
  struct nne_trace_name {
    const char *name;
    size_t trace;
    int node;                /* node index of the save, or -1: reserved */
    const char *what;        /* reserved: what it names ("logits") */
  } *names;
  size_t n_names, cap_names;
  nne_map_t name_map;
};

void nne_trace_session_init(nne_trace_session_t *s, size_t max_traces,
                            size_t max_nodes);
/* Frees every trace, node, constant and saved tensor. */
void nne_trace_session_free(nne_trace_session_t *s);

/* A new, empty trace at the end of the session (name may be NULL / "").
 * NNE_ERESOURCE past max_traces ("traces: more than 16 traces in one request
 * (--max-traces)"). The trace is owned by the session. */
int nne_trace_session_add(nne_trace_session_t *s, const char *name,
                          nne_trace_t **out, nne_err_t *err);

/* Sets the trace's name (after decoding, when the name came last on the
 * wire) and with it its label: the name, or its index when the name is
 * empty. */
void nne_trace_set_name(nne_trace_t *t, const char *name);

/* Reserves a streamed name that is not a save (trace `trace`'s logits, an
 * edit set's SAVE edit), `what` describing it for messages ("the logits of
 * traces[0]"); a save with that name then fails validation. NNE_EINVAL when
 * two reserved names clash. */
int nne_trace_session_reserve(nne_trace_session_t *s, const char *name,
                              size_t trace, const char *what, nne_err_t *err);

/* ---- building (copies everything; NNE_ERESOURCE past max_nodes) --------- */

/* The invoke of a read or write that names none (the wire's unset
 * `invoke`): every row of the batch. Any other invoke is a position in the
 * trace's invokes, checked by validation. */
#define NNE_TRACE_ALL_INVOKES (-1)

int nne_trace_add_read(nne_trace_t *t, uint32_t id, const char *site,
                       int invoke, nne_err_t *err);
int nne_trace_add_write(nne_trace_t *t, uint32_t id, const char *site,
                        uint32_t value, int invoke,
                        const nne_dim_range_t *ranges, size_t n_ranges,
                        nne_err_t *err);
int nne_trace_add_call(nne_trace_t *t, uint32_t id, const char *fn,
                       const nne_trace_arg_t *args, size_t n_args,
                       const nne_index_item_t *items, size_t n_items,
                       nne_err_t *err);
/* A tensor constant: `data` (nbytes, little-endian, C order) is taken over
 * (malloc'd by the caller; freed with the session, also on failure); its
 * size is checked against dtype and shape by validation. */
int nne_trace_add_const(nne_trace_t *t, uint32_t id, nne_dtype_t dt,
                        const int64_t *shape, int ndim, void *data,
                        size_t nbytes, nne_err_t *err);
/* A scalar constant: a 0-d float32 tensor. */
int nne_trace_add_scalar(nne_trace_t *t, uint32_t id, double v,
                         nne_err_t *err);
int nne_trace_add_save(nne_trace_t *t, uint32_t id, uint32_t value,
                       const char *name, nne_err_t *err);
int nne_trace_add_ref(nne_trace_t *t, uint32_t id, const char *name,
                      nne_err_t *err);

/* A copy of node n (of any trace, any session) at the end of t, as it was
 * built (what validation worked out is not copied). */
int nne_trace_copy_node(nne_trace_t *t, const nne_trace_node_t *n,
                        nne_err_t *err);

/* "traces[T].nodes[K] (id N)" into buf. */
const char *nne_trace_node_where(const nne_trace_t *t, size_t k, char *buf,
                                 size_t len);

/* ---- validation ----------------------------------------------------------- */

typedef struct nne_trace_env {
  const nne_names_t *names;  /* site and module spellings */
  nne_model_t *model;        /* fn "module": the module's arity; may be NULL */
} nne_trace_env_t;

/* Checks trace t (t->n_invokes set) against the earlier traces of its
 * session and fills in the schedule: node ids unique; every reference names
 * a node of the trace that has a value; no cycle; every site resolves;
 * invokes in range; calls fit their function (nne_op_check); save names
 * unique in the request; refs name a save of an earlier trace. Validate the
 * traces of a session in order. */
int nne_trace_validate(nne_trace_t *t, const nne_trace_env_t *env,
                       nne_err_t *err);

/* The sites of the trace's read and write nodes, in node order (n_sites of
 * them), for the compiler's plan. */
void nne_trace_sites(const nne_trace_t *t, nne_names_site_t *out);

/* Binds the trace to a plan of n_hooks hooks: item_hook[i] is the hook of
 * nne_trace_sites()' i-th site. n_hooks may be 0 with no sites. */
int nne_trace_bind(nne_trace_t *t, size_t n_hooks, const int *item_hook,
                   nne_err_t *err);

/* Checks that no write depends on a read at a site that fires later in the
 * forward. order[h] is hook h's position among first firings (-1: it did
 * not fire in the probe; such pairs are left to run time). */
int nne_trace_check_order(const nne_trace_t *t, const int *order,
                          nne_err_t *err);

/* Runs one small forward ([1, 2] tokens) through v and writes each hook's
 * position among first firings into order[0 .. n_hooks), -1 for a hook that
 * did not fire. */
int nne_trace_probe_order(nne_variant_t *v, size_t n_hooks, int64_t vocab,
                          int *order, nne_err_t *err);

/* The same with another forward: fwd runs a small forward through the
 * variant with fn/hook_ctx at its hooks (Generate's cached method). */
typedef int (*nne_trace_forward_fn)(void *ctx, nne_hook_fn fn, void *hook_ctx,
                                    nne_err_t *err);
int nne_trace_probe_order_with(nne_trace_forward_fn fwd, void *fwd_ctx,
                               size_t n_hooks, int *order, nne_err_t *err);

/* ---- execution ------------------------------------------------------------ */

typedef struct nne_trace_run_opts {
  nne_model_t *model;        /* fn "module"; constants go to its device */
  const int64_t *invoke_row0;  /* per invoke: first row in the batch */
  const int64_t *invoke_rows;  /* per invoke: rows */
  int64_t batch;             /* rows in all */
  int n_heads;               /* for head views of fused sites (model.json) */
  nne_runtime_t *rt;         /* an edit set's edits, applied first; or NULL */
  const atomic_int *cancel;  /* non-zero: stop at the next hook */
  uint64_t budget;           /* bytes the saves may take in all */
  uint64_t used;             /* bytes earlier saves already took */
  uint64_t limit;            /* the configured limit, for messages (0: the
                                budget) */
  uint64_t max_value_bytes;  /* largest value one call may make (0: any) */
} nne_trace_run_opts_t;

typedef struct nne_trace_run {
  nne_trace_t *t;
  nne_trace_run_opts_t o;
  uint64_t used;             /* o.used + bytes this run's saves took */
  nne_tensor_t **val;        /* per node: its value while someone needs it */
  int *pending;              /* per node: inputs not yet known */
  int *left;                 /* per node: consumers not yet done */
  unsigned char *state;      /* per node: RS_* (run.c) */
  unsigned char *fired;      /* per hook */
  int *queue;                /* nodes in the order they became known */
  size_t qh, qt;
  bool in_forward;
  nne_err_t err;             /* why a hook stopped the forward */
} nne_trace_run_t;

int nne_trace_run_init(nne_trace_run_t *r, nne_trace_t *t,
                       const nne_trace_run_opts_t *o, nne_err_t *err);
/* Before the forward: constants, refs and what depends on them alone. */
int nne_trace_run_begin(nne_trace_run_t *r, nne_err_t *err);
/* The nne_hook_fn to run the forward with (ctx: the run). On failure the
 * reason is in r->err. */
int nne_trace_hook(void *ctx, int site, nne_tensor_t *value,
                   nne_tensor_t **replace);
/* After the forward: every save taken (into t->saved) and every write
 * applied, or an error naming the node and the site that did not run. */
int nne_trace_run_end(nne_trace_run_t *r, nne_err_t *err);
void nne_trace_run_free(nne_trace_run_t *r);

#endif /* NNE_TRACE_H */
