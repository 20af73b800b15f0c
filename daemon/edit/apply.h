/* apply.h — Edits.Apply: turning a batch of edit descriptions into an edit
 * set, atomically.
 *
 * The RPC decodes each edit into a plain nne_edit_spec_t (no protobuf
 * here) and calls nne_apply_start. On the loop: every edit is checked and
 * resolved (its site by any spelling, its operand made a tensor), the
 * backend planned through the inference pipeline's one get-or-build path
 * (infer/backend.h). On the compute executor: the backend is made ready
 * (built once per structure), then two tiny probe forwards through it learn
 * the shape of the value at every hooked site — which dimensions are fixed
 * (model width, heads) and which follow the input (batch, positions) — and
 * each edit's ranges and operand are checked against the fixed ones (ranges
 * on input-sized dimensions are checked when a forward runs); operands move
 * to the model's device. Back on the loop: the backend is cached and
 * pinned, and the set is created — unless the model began unloading, the
 * client left, or the model has --max-edit-sets sets already.
 *
 * Any failure names the edit by position (`edits[2].ranges[0]: dim 3 has
 * size 7, range [5, 9)`) and leaves nothing behind. If nne_apply_start
 * fails, `done` is never called.
 */
#ifndef NNE_EDIT_APPLY_H
#define NNE_EDIT_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon.h"
#include "edit/editor.h"
#include "engine/engine.h"
#include "base/error.h"
#include "server/call.h"

/* One edit as the client described it (borrowed by nne_apply_start for the
 * duration of the call). The op values equal nnedit.v1.EditOp's. */
typedef struct nne_edit_spec {
  const char *site;          /* any spelling */
  int op;                    /* nne_edit_op_t; checked */
  /* The operand (Edit.operand, a oneof: at most one of the two). */
  bool has_tensor;
  nne_dtype_t dtype;         /* the tensor operand: wire dtype number */
  const int64_t *shape;
  int ndim;
  const void *data;          /* numel * itemsize bytes, little-endian */
  size_t data_len;
  bool use_scalar;           /* the operand is `scalar` */
  double scalar;
  const nne_dim_range_t *ranges;
  size_t n_ranges;
  const char *name;          /* SAVE: the streamed tensor's name ("" = site) */
} nne_edit_spec_t;

/* Runs on the loop when the Apply is over: set is the new set (owned by
 * the editor) on success; on failure set is NULL and err says why. The
 * callback replies on the call (NULL for a restore); the call reference
 * Apply took is dropped after it returns. */
typedef void (*nne_apply_done_fn)(nne_call_t *call, void *ctx,
                                  const nne_edit_set_t *set,
                                  const nne_err_t *err);

/* What an Apply keeps or restores (edit/store.h), beyond the edits. */
typedef struct nne_apply_opts {
  /* A client's Apply with --state-dir: the request's bytes, written as the
   * set's record before the set is created (borrowed for the call). */
  const uint8_t *record;
  size_t record_len;
  /* A restore: the id and creation time the set had (record is NULL: the
   * file is there already). */
  const char *id;
  int64_t created_unix_ms;
} nne_apply_opts_t;

/* Checks and resolves the edits, plans the backend and queues the job.
 * call (NULL for a restore) gets a reference for the job's life; opts may
 * be NULL. A restore whose id is taken fails with NNE_EEXIST. */
int nne_apply_start(nne_daemon_t *d, nne_call_t *call, const char *model,
                    const char *label, const nne_edit_spec_t *specs, size_t n,
                    const nne_apply_opts_t *opts, nne_apply_done_fn done,
                    void *ctx, nne_err_t *err);

#endif /* NNE_EDIT_APPLY_H */
