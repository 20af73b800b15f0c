/* generate_text.c — a generating row's text: its new tokens decoded in
 * the context of its prompt's last tokens, the stop strings found in it,
 * and how much of it may be streamed yet. Executor thread (the job's).
 * See generate.h. */
#include <stdlib.h>
#include <string.h>

#include "infer/generate.h"
#include "infer/generate_internal.h"

/* Prompt tokens decoded before a row's new ones, so that a decoder that
 * treats the start of a text specially (Metaspace drops the first space)
 * sees the new tokens in context. */
#define PREFIX_TOKENS 4

/* The text the row's new tokens add, decoded after up to PREFIX_TOKENS of
 * its prompt (special tokens left out). */
int nne__gen_row_text(gen_t *g, size_t b, nne_err_t *err) {
  const nne_tokenizer_t *tok = g->hold.entry->tokenizer;
  nne_gen_row_t *r = &g->rows[b];
  int32_t ids[PREFIX_TOKENS + 1024];
  int32_t *buf = ids;
  size_t np = 0, i, n, blen = 0, flen = 0;
  const int64_t *row = g->batch.ids + b * (size_t)g->batch.S;
  const int64_t *m = g->batch.mask ? g->batch.mask + b * g->batch.S : NULL;
  char *base = NULL, *full = NULL;
  int rc;

  if (tok == NULL)
    return 0;
  n = r->n;
  if (PREFIX_TOKENS + n > sizeof ids / sizeof ids[0]) {
    buf = malloc((PREFIX_TOKENS + n) * sizeof *buf);
    if (buf == NULL)
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  for (i = (size_t)g->batch.S; i-- > 0 && np < PREFIX_TOKENS;) {
    if (m != NULL && m[i] == 0)
      break; /* left padding: nothing real before */
    np++;
  }
  for (i = 0; i < np; i++)
    buf[i] = (int32_t)row[(size_t)g->batch.S - np + i];
  for (i = 0; i < n; i++)
    buf[np + i] = (int32_t)r->ids[i];
  rc = nne_tokenizer_decode(tok, buf, np, NNE_TOK_SKIP_SPECIAL, &base, &blen,
                            err);
  if (rc == 0)
    rc = nne_tokenizer_decode(tok, buf, np + n, NNE_TOK_SKIP_SPECIAL, &full,
                              &flen, err);
  if (rc == 0 && (flen < blen || memcmp(full, base, blen) != 0)) {
    /* The prompt's text changed with the new tokens: the new ones alone. */
    free(full);
    full = NULL;
    rc = nne_tokenizer_decode(tok, buf + np, n, NNE_TOK_SKIP_SPECIAL, &full,
                              &flen, err);
    blen = 0;
  }
  if (rc == 0) {
    memmove(full, full + blen, flen - blen + 1);
    free(r->text);
    r->text = full;
    r->text_len = flen - blen;
    full = NULL;
  }
  free(base);
  free(full);
  if (buf != ids)
    free(buf);
  return rc;
}

/* Ends the row at the first stop string in its text (searching from where
 * one could begin that was not there before). */
void nne__gen_find_stop(gen_t *g, size_t b, size_t searched) {
  nne_gen_row_t *r = &g->rows[b];
  size_t i, from = searched > g->max_stop_len ? searched - g->max_stop_len : 0;
  size_t best = (size_t)-1;
  int which = -1;
  for (i = 0; i < g->o.n_stop_strings; i++) {
    const char *s = g->o.stop_strings[i];
    size_t len = strlen(s), p;
    for (p = from; p + len <= r->text_len && p < best; p++)
      if (memcmp(r->text + p, s, len) == 0) {
        best = p;
        which = (int)i;
        break;
      }
  }
  if (which >= 0) {
    r->finish = NNE_GEN_STOP_STRING;
    r->stop_string = which;
    r->text_len = best;
  }
}

/* How many bytes of the row's text may go out now: all of it once the row
 * is finished; before, not a trailing replacement character (a token that
 * ended inside a UTF-8 character) nor a tail that may begin a stop
 * string. */
size_t nne__gen_emit_limit(const gen_t *g, const nne_gen_row_t *r) {
  size_t lim = r->text_len, i;
  if (r->finish != NNE_GEN_RUNNING)
    return lim;
  while (lim >= 3 && memcmp(r->text + lim - 3, "\xef\xbf\xbd", 3) == 0)
    lim -= 3;
  for (i = 0; i < g->o.n_stop_strings; i++) {
    const char *s = g->o.stop_strings[i];
    size_t len = strlen(s), k;
    for (k = len - 1; k > 0; k--)
      if (k <= lim && memcmp(r->text + lim - k, s, k) == 0) {
        lim -= k;
        break;
      }
  }
  return lim < r->emitted ? r->emitted : lim;
}

