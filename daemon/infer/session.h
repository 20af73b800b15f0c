/* session.h — a session of traced forward passes (Inference.Trace), run as
 * one job on the inference pipeline.
 *
 * The RPC decodes the request into the session's traces (trace.h: nodes
 * into each nne_trace_t of `sess`, invoke rows into nne_rows_dec_t), then:
 *
 *   loop      nne_infer_session_new()      holds the model and the set
 *             nne_infer_session_add()      one trace with its invokes' rows
 *             nne_infer_session_submit()   every check that needs no
 *                                          forward (rows, names, graphs
 *                                          against the model), each trace's
 *                                          backend planned (traces with one
 *                                          structure share one), the job
 *                                          queued
 *   executor  every trace's backend made ready and its last check done
 *             (the hooks' firing order), then each trace runs: its runtime
 *             (the set's edits), its intervention graph at the sites
 *             (trace.h), one pass (infer/pass.h); its saves, the set's
 *             SAVE edits, its logits and its result go into the outbox
 *   loop      backends cached, model and set let go, the outbox streams
 *             (send_result encodes each TraceResult); or the call fails
 *
 * On failure of new/add/submit the caller frees the session and fails the
 * call with err; after a successful submit the session belongs to the call.
 */
#ifndef NNE_INFER_SESSION_H
#define NNE_INFER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "executor.h"
#include "daemon.h"
#include "infer/backend.h"
#include "infer/batch.h"
#include "infer/hold.h"
#include "infer/outbox.h"
#include "infer/pass.h"
#include "trace/trace.h"

/* One trace of the session. */
typedef struct nne_infer_trace {
  nne_trace_t *t;
  nne_batch_t in;
  int64_t *row0, *rows;     /* per invoke: first row in the batch, count */
  int slot;                 /* its backend in `slots`; -1: pristine model */
  bool reused;              /* the slot was planned for an earlier trace */
  char *logits_name;        /* "<label>/logits" when logits are asked for */
  char **set_save_names;    /* per edit of the set: "<label>/<name>" */
  nne_infer_pass_t pass;    /* top-k and logits, once run */
  bool cache_hit;           /* for its result: the backend was there */
  char backend_key[17];     /* digest of its structure; "" when pristine */
  double compute_ms;
  size_t out_first, out_end; /* its items in the outbox */
} nne_infer_trace_t;

typedef struct nne_infer_session {
  nne_outbox_t ob;          /* first: the call's user data is the session */
  nne_job_t job;
  nne_daemon_t *d;
  nne_call_t *call;         /* a reference while the job runs */
  nne_infer_hold_t hold;
  nne_trace_session_t sess; /* the decoded traces and their arena */
  nne_infer_trace_t *tr;
  size_t n_tr, cap_tr;
  size_t n_set_edits;       /* edits of the set (names kept per trace) */
  nne_infer_backend_t *slots; /* distinct backends of the traces */
  size_t n_slots;
  int padding;
  int top_k;
  nne_logits_mode_t logits_mode;
  int n_heads;
  uint64_t budget, used;    /* response bytes for saves */
  int rc;
  nne_err_t err;
  double queue_ms;
} nne_infer_session_t;

/* A new session for call (not held yet: nne_infer_session_hold). Its
 * outbox streams through send_result(call, ctx, trace index, on_sent).
 * NULL when out of memory. */
nne_infer_session_t *nne_infer_session_new(nne_daemon_t *d, nne_call_t *call,
                                           nne_outbox_result_fn send_result,
                                           void *ctx, uint32_t chunk_tag);

/* Takes the model and the set (infer/hold.h). */
int nne_infer_session_hold(nne_infer_session_t *s, const char *model,
                           const char *edit_set, nne_err_t *err);

/* Options of the whole request (checked by the RPC). */
int nne_infer_session_options(nne_infer_session_t *s, int padding, int top_k,
                              nne_logits_mode_t logits, nne_err_t *err);

/* Adds trace t (of s->sess) with its invokes' rows (groups[k].prefix names
 * them in messages); the rows are checked and padded here. */
int nne_infer_session_add(nne_infer_session_t *s, nne_trace_t *t,
                          const nne_batch_group_t *groups, size_t n_groups,
                          nne_err_t *err);

/* Validates, plans and queues the job (the call gets a reference). */
int nne_infer_session_submit(nne_infer_session_t *s, nne_err_t *err);

/* Frees a session that was not submitted (loop thread). */
void nne_infer_session_free(nne_infer_session_t *s);

#endif /* NNE_INFER_SESSION_H */
