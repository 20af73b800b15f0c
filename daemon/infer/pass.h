/* pass.h — one forward pass, from padded token ids to what a reply needs.
 *
 * Forward, each trace of a Trace session and (next) each Generate step run
 * the same pass on an executor thread:
 *
 *   ids, mask (host [B, S])  →  forward through the backend's variant with
 *   the request's hook function (or the pristine model)  →  logits
 *   →  each row's last real position  →  top-k (ids, logits, probs)
 *   →  host bytes of what will be streamed
 *
 * so that the loop only hands out pointers into host memory. Executor
 * thread; touches only its arguments.
 */
#ifndef NNE_INFER_PASS_H
#define NNE_INFER_PASS_H

#include <stdint.h>

#include "engine/engine.h"
#include "base/error.h"
#include "infer/batch.h"

/* Which logits a reply streams (the numbers equal nnedit.v1.LogitsMode). */
typedef enum nne_logits_mode {
  NNE_LOGITS_NONE = 0,
  NNE_LOGITS_LAST = 1, /* [B, V]: each row's last real position */
  NNE_LOGITS_ALL = 2,  /* [B, S, V] */
} nne_logits_mode_t;

typedef struct nne_infer_pass {
  /* in */
  const nne_batch_t *batch;
  nne_model_t *model;     /* the pristine forward when variant is NULL */
  nne_variant_t *variant;
  nne_hook_fn hook;       /* with the variant: the request's hooks */
  void *hook_ctx;
  int top_k;              /* 0: none */
  nne_logits_mode_t logits_mode;
  /* The model's tokenizer (borrowed for the run), or NULL: with it, each
   * top-k token is decoded alone into tk_text while the pass holds the
   * model, so the stream needs no tokenizer later. */
  const nne_tokenizer_t *tokenizer;
  /* out (references; nne_infer_pass_free) */
  nne_tensor_t *logits;   /* [B, S, V] */
  nne_tensor_t *last;     /* [B, V], when top-k or LOGITS_LAST asked */
  nne_tensor_t *tk_ids, *tk_vals, *tk_probs; /* [B, k] */
  const int64_t *tk_ids_p; /* host views of the three */
  const float *tk_vals_p, *tk_probs_p;
  char **tk_text;          /* [B * k] malloc'd strings, or NULL */
  size_t tk_text_n;
} nne_infer_pass_t;

/* Runs the pass. On failure the engine's message is in err (a hook that
 * stopped the forward puts its own reason there first: see the caller). */
int nne_infer_pass_run(nne_infer_pass_t *p, nne_err_t *err);

/* The logits tensor to stream for the mode (borrowed), or NULL. */
nne_tensor_t *nne_infer_pass_logits_out(const nne_infer_pass_t *p);

void nne_infer_pass_free(nne_infer_pass_t *p);

#endif /* NNE_INFER_PASS_H */
