/* trace/internal.h — what the files of daemon/trace/ share (nne__trace_
 * names). Nothing outside daemon/trace/ includes it: the contract is
 * trace.h. Declarations come in blocks named after the file that defines
 * them. */
#ifndef NNE_TRACE_INTERNAL_H
#define NNE_TRACE_INTERNAL_H

#include <stddef.h>

#include "base/arena.h"
#include "base/error.h"
#include "base/map.h"
#include "trace/trace.h"

static inline int nne__trace_oom(nne_err_t *err) {
  return nne_err_set(err, NNE_ENOMEM, "out of memory");
}

/* ---- graph.c ------------------------------------------------------------- */

/* An error about node k: "traces[T].nodes[K] (id N): ..."; returns code. */
int nne__trace_node_err(const nne_trace_t *t, size_t k, nne_err_t *err,
                        int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* A call argument as the engine takes it (nne_op_check, nne_op_call), from
 * the client's; its tensor (for a node value) is left NULL for the caller. */
void nne__trace_op_arg(nne_op_arg_t *oa, const nne_trace_arg_t *a);

/* ---- session.c: the names streamed in the request ------------------------ */

/* The index in s->names of a save or reserved name, or -1. */
int nne__trace_name_find(const nne_trace_session_t *s, const char *name);
/* Adds a name that is not there yet (the string must live as long as the
 * session: its arena); node is the save's node index, or -1 for a reserved
 * name described by `what`. 0 or NNE_ENOMEM. */
int nne__trace_name_add(nne_trace_session_t *s, const char *name, size_t trace,
                        int node, const char *what);

#endif /* NNE_TRACE_INTERNAL_H */
