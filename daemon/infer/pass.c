/* pass.c — see pass.h. */
#include "infer/pass.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/fault.h"

static void nne_infer_pass_free_texts(nne_infer_pass_t *p) {
  size_t i;
  for (i = 0; p->tk_text != NULL && i < p->tk_text_n; i++)
    free(p->tk_text[i]);
  free(p->tk_text);
  p->tk_text = NULL;
  p->tk_text_n = 0;
}

/* Each top-k id decoded alone (" Paris"): what a table shows beside it. An
 * id the tokenizer does not know (a model whose vocabulary is wider than
 * its tokenizer's) gets "". */
static int decode_top_k(nne_infer_pass_t *p, nne_err_t *err) {
  size_t i, n = (size_t)p->batch->B * (size_t)p->top_k;
  p->tk_text = calloc(n ? n : 1, sizeof *p->tk_text);
  if (p->tk_text == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  p->tk_text_n = n;
  for (i = 0; i < n; i++) {
    int32_t id = (int32_t)p->tk_ids_p[i];
    size_t len;
    nne_err_t ignored;
    if (p->tk_ids_p[i] < 0 || p->tk_ids_p[i] > INT32_MAX ||
        nne_tokenizer_decode(p->tokenizer, &id, 1, 0, &p->tk_text[i], &len,
                             &ignored) != 0)
      p->tk_text[i] = strdup("");
    if (p->tk_text[i] == NULL)
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  return 0;
}

int nne_infer_pass_run(nne_infer_pass_t *p, nne_err_t *err) {
  const nne_batch_t *b = p->batch;
  int64_t shape[2] = {b->B, b->S};
  nne_tensor_t *ids = NULL, *mask = NULL;
  const void *h;
  int rc;

  if (NNE_FAULT(NNE_FAULT_FORWARD))
    return nne_err_set(err, NNE_EINTERNAL, "forward pass: injected fault");
  rc = nne_tensor_from_host(NNE_DTYPE_I64, shape, 2, b->ids, &ids, err);
  if (rc == 0 && b->mask != NULL)
    rc = nne_tensor_from_host(NNE_DTYPE_I64, shape, 2, b->mask, &mask, err);
  if (rc == 0 && p->variant != NULL)
    rc = nne_variant_forward(p->variant, ids, mask, p->hook, p->hook_ctx,
                             &p->logits, err);
  else if (rc == 0)
    rc = nne_model_forward(p->model, ids, mask, &p->logits, err);
  if (rc == 0 && (p->top_k > 0 || p->logits_mode == NNE_LOGITS_LAST))
    rc = nne_tensor_select_positions(p->logits, b->last_pos, &p->last, err);
  if (rc == 0 && p->top_k > 0) {
    rc = nne_tensor_topk(p->last, p->top_k, &p->tk_ids, &p->tk_vals,
                         &p->tk_probs, err);
    if (rc == 0 && (rc = nne_tensor_host_data(p->tk_ids, &h, err)) == 0)
      p->tk_ids_p = h;
    if (rc == 0 && (rc = nne_tensor_host_data(p->tk_vals, &h, err)) == 0)
      p->tk_vals_p = h;
    if (rc == 0 && (rc = nne_tensor_host_data(p->tk_probs, &h, err)) == 0)
      p->tk_probs_p = h;
    if (rc == 0 && p->tokenizer != NULL)
      rc = decode_top_k(p, err);
  }
  nne_tensor_unref(ids);
  nne_tensor_unref(mask);
  return rc;
}

nne_tensor_t *nne_infer_pass_logits_out(const nne_infer_pass_t *p) {
  switch (p->logits_mode) {
  case NNE_LOGITS_LAST:
    return p->last;
  case NNE_LOGITS_ALL:
    return p->logits;
  case NNE_LOGITS_NONE:
    break;
  }
  return NULL;
}

void nne_infer_pass_free(nne_infer_pass_t *p) {
  nne_tensor_unref(p->logits);
  nne_tensor_unref(p->last);
  nne_tensor_unref(p->tk_ids);
  nne_tensor_unref(p->tk_vals);
  nne_tensor_unref(p->tk_probs);
  p->logits = p->last = p->tk_ids = p->tk_vals = p->tk_probs = NULL;
  p->tk_ids_p = NULL;
  p->tk_vals_p = p->tk_probs_p = NULL;
  nne_infer_pass_free_texts(p);
}
