/* generate_internal.h — what generate.c and generate_plan.c share (not
 * for other modules). */
#ifndef NNE_INFER_GENERATE_INTERNAL_H
#define NNE_INFER_GENERATE_INTERNAL_H

#include "infer/generate.h"

typedef nne_infer_generate_t gen_t;

/* The intervention validated and cut into segments of steps (before the
 * backend is planned); then each segment bound to the planned backend. */
int nne__gen_prepare_intervention(gen_t *g, size_t n_invokes, nne_err_t *err);
int nne__gen_bind_segments(gen_t *g, nne_err_t *err);

/* Row b's text (rows[b].text, text_len) from its new ids; the first stop
 * string in it from where one could begin after `searched` bytes (the row
 * then finishes, its text cut before it); the bytes of it that may be
 * streamed now (generate_text.c). */
int nne__gen_row_text(gen_t *g, size_t b, nne_err_t *err);
void nne__gen_find_stop(gen_t *g, size_t b, size_t searched);
size_t nne__gen_emit_limit(const gen_t *g, const nne_gen_row_t *r);

#endif /* NNE_INFER_GENERATE_INTERNAL_H */
