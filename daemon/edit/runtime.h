/* runtime.h — what happens at a backend's hooks during one forward.
 *
 * A backend only numbers its hooks; a request brings the per-request
 * context that gives them meaning: for each hook id, the edits to apply
 * (from an edit set's tracker) and whether the request saves the value.
 * The context is handed to nne_variant_forward; its hook function runs on
 * the executor's thread as each site fires:
 *
 *   value ── edit 1 ── edit 2 ── ... ──► (saved copy) ──► back into the graph
 *
 * SAVE edits copy the value as it is at their place in the chain; the
 * request's own saves copy the value after all edits of that hook. Copies
 * are taken once per forward (a module called twice saves its first value)
 * and count against the response budget. A client that goes away stops the
 * forward at the next hook.
 */
#ifndef NNE_RUNTIME_H
#define NNE_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "edit/editor.h"
#include "engine/engine.h"
#include "base/error.h"

typedef struct nne_runtime {
  size_t n_hooks;
  /* Edits per hook, compressed rows over `edits` (borrowed, e.g. an edit
   * set's): edits[edit_idx[edit_start[h] .. edit_start[h+1])]. */
  const nne_edit_t *edits;
  size_t n_edits;
  size_t *edit_start;         /* n_hooks + 1 */
  size_t *edit_idx;
  const char *edit_set_id;    /* for messages */
  bool *capture;              /* per hook: the request saves it */
  nne_tensor_t **captured;    /* per hook: the saved copy */
  nne_tensor_t **edit_saves;  /* per edit: a SAVE edit's copy */
  const atomic_int *cancel;   /* non-zero: stop */
  uint64_t budget, used;      /* bytes of copies allowed / taken */
  nne_err_t err;              /* why a hook stopped the forward */
} nne_runtime_t;

/* Allocates the per-hook and per-edit arrays (zeroed). */
int nne_runtime_init(nne_runtime_t *rt, size_t n_hooks, size_t n_edits,
                     nne_err_t *err);
void nne_runtime_free(nne_runtime_t *rt);

/* Fills edit_start/edit_idx from the hook ids in `hook_of_edit` (one per
 * edit, request order kept within a hook). */
int nne_runtime_track(nne_runtime_t *rt, const nne_edit_t *edits,
                      const int *hook_of_edit, nne_err_t *err);

/* The nne_hook_fn to pass with the runtime as ctx. */
int nne_runtime_hook(void *ctx, int site, nne_tensor_t *value,
                     nne_tensor_t **replace);

#endif /* NNE_RUNTIME_H */
