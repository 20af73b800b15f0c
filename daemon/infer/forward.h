/* forward.h — a Forward request on the inference pipeline: one pass over a
 * padded batch, with saves at sites and optionally on an edit set.
 *
 *   loop      nne_infer_forward_new()       for the call; results through
 *                                           send_result
 *             nne_infer_forward_hold()      the model and the edit set
 *             nne_infer_forward_prepare()   rows checked and padded, saves
 *                                           resolved, the backend planned
 *                                           (the set's hooks + the saves)
 *             nne_infer_forward_submit()
 *   executor  backend ready (built once per structure), the pass with the
 *             request's hooks, the outbox: result, logits, saves (views of
 *             fused values split here), the set's SAVE edits
 *   loop      backend cached, model and set let go, the outbox streams
 *
 * On failure before submit the caller frees it and fails the call; after
 * submit it belongs to the call.
 */
#ifndef NNE_INFER_FORWARD_H
#define NNE_INFER_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "executor.h"
#include "daemon.h"
#include "edit/runtime.h"
#include "infer/backend.h"
#include "infer/batch.h"
#include "infer/hold.h"
#include "infer/outbox.h"
#include "infer/pass.h"

typedef struct nne_infer_forward {
  nne_outbox_t ob;        /* first: the call's user data is the request */
  nne_job_t job;
  nne_daemon_t *d;
  nne_call_t *call;       /* a reference while the job runs */
  nne_infer_hold_t hold;
  nne_batch_t batch;
  int top_k;
  nne_logits_mode_t logits_mode;
  size_t n_saves;
  char **save_names;      /* owned: they name streamed tensors */
  nne_names_view_t *save_view;
  int n_heads;
  bool use_backend;       /* saves or an edit set: hooks are needed */
  nne_infer_backend_t bk;
  nne_runtime_t rt;
  nne_infer_pass_t pass;
  int rc;
  nne_err_t err;
  double queue_ms, compute_ms;
} nne_infer_forward_t;

/* NULL when out of memory. The outbox's first item is the result
 * (send_result with index 0), then the logits, then the saves. */
nne_infer_forward_t *nne_infer_forward_new(nne_daemon_t *d, nne_call_t *call,
                                           nne_outbox_result_fn send_result,
                                           uint32_t chunk_tag);

int nne_infer_forward_hold(nne_infer_forward_t *f, const char *model,
                           const char *edit_set, nne_err_t *err);

/* Rows (checked against the model, padded), options, and the saves: the
 * names are taken from `saves` (its array becomes the request's). */
int nne_infer_forward_prepare(nne_infer_forward_t *f,
                              const nne_batch_group_t *rows, int padding,
                              int top_k, nne_logits_mode_t logits,
                              char **saves, size_t n_saves, nne_err_t *err);

int nne_infer_forward_submit(nne_infer_forward_t *f, nne_err_t *err);

/* Frees a request that was not submitted (loop thread). */
void nne_infer_forward_free(nne_infer_forward_t *f);

#endif /* NNE_INFER_FORWARD_H */
