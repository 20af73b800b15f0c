/* check.h — load-time checks of a model's standard names (nnterp's idea).
 *
 * A family map is a claim about where things live; Hugging Face renames
 * modules between versions and traced archives reorder arguments, so the
 * claim is checked against the loaded model before anyone relies on it:
 * one small forward through a variant with a hook at every standard module
 * boundary and standard site, then
 *   - layer inputs/outputs, attention/MLP outputs, embeddings and the final
 *     norm are [batch, seq, d_model] with one d_model throughout;
 *   - lm_head gives [batch, seq, vocab];
 *   - every standard site is a tensor that exists in the graph (a node site
 *     such as the attention pattern is present in the module's own code) and
 *     an attention pattern sums to 1 over keys;
 *   - q/k/v views split evenly.
 * A name that fails is marked unavailable with the reason (the model still
 * loads with the names that hold) and becomes a warning.
 *
 * Runs on the loader thread (it runs a forward); touches only its
 * arguments.
 */
#ifndef NNE_NAMES_CHECK_H
#define NNE_NAMES_CHECK_H

#include "engine/engine.h"
#include "base/error.h"
#include "names/names.h"

/* vocab: the vocabulary measured at load; n_heads: from model.json (0 if
 * unknown: head views are then unavailable). Fails only when the check
 * itself cannot run (out of memory, the model cannot run at all); bad names
 * are marked, not errors. */
int nne_validate_names(nne_model_t *model, nne_names_t *names, int64_t vocab,
                       int n_heads, nne_err_t *err);

#endif /* NNE_NAMES_CHECK_H */
