/* hold.h — what an inference request holds while it runs: its model, and
 * the edit set it runs on.
 *
 * Forward and Trace take both on the loop before anything is planned and
 * keep them until their job is done: the model cannot unload under them
 * (Unload waits for the registry's in-flight count) and the edit set
 * cannot be freed (Drop defers the free to its last holder). Every failure
 * names the field: "model: ...", "edit_set: no edit set 'es-...'".
 *
 * Loop thread only.
 */
#ifndef NNE_INFER_HOLD_H
#define NNE_INFER_HOLD_H

#include "daemon.h"
#include "edit/editor.h"
#include "engine/engine.h"
#include "base/error.h"
#include "registry.h"

typedef struct nne_infer_hold {
  nne_model_entry_t *entry;  /* NULL when nothing is held */
  nne_model_t *model;        /* an engine reference */
  nne_edit_set_t *set;       /* held (in_flight), or NULL */
} nne_infer_hold_t;

/* Takes the model named `model` (it must be LOADED) and, when edit_set is
 * not empty, that edit set (it must edit this model). On failure nothing
 * is held. */
int nne_infer_hold(nne_infer_hold_t *h, nne_daemon_t *d, const char *model,
                   const char *edit_set, nne_err_t *err);
/* The same, naming the model's field `model_field` in messages ("name" in
 * Models.Describe). */
int nne_infer_hold_field(nne_infer_hold_t *h, nne_daemon_t *d,
                         const char *model_field, const char *model,
                         const char *edit_set, nne_err_t *err);

/* Takes the edit set too (h holds its model): it must edit that model.
 * Nothing more is held on failure. */
int nne_infer_hold_set(nne_infer_hold_t *h, nne_daemon_t *d,
                       const char *edit_set, nne_err_t *err);

/* Lets go of the set now (the rest of the call needs nothing of it). */
void nne_infer_hold_drop_set(nne_infer_hold_t *h, nne_daemon_t *d);

/* An out-of-memory error (NNE_ENOMEM) gets the model and its device in
 * front: "model 'gpt2' on cuda:0: ...: out of memory: tried to allocate N
 * bytes". Other errors are left as they are. */
void nne_infer_hold_oom(const nne_infer_hold_t *h, nne_err_t *err);

/* Lets go of everything; idempotent. */
void nne_infer_release(nne_infer_hold_t *h, nne_daemon_t *d);

#endif /* NNE_INFER_HOLD_H */
