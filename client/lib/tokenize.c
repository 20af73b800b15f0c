/* tokenize.c — nnedit.v1.Inference/Tokenize and /Detokenize: text to ids
 * and back with a loaded model's tokenizer.
 *
 * Every string of a reply goes to one block, addressed by offset while it
 * grows (decode.c's way). Offset 0 holds "", which stands in for a string
 * the daemon left out; the offsets become pointers once the reply is
 * whole. Tokens, pieces and texts may hold NUL bytes (a byte token decoded
 * alone), so each keeps its length beside it. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define M_TOKENIZE "/nnedit.v1.Inference/Tokenize"
#define M_DETOKENIZE "/nnedit.v1.Inference/Detokenize"

/* Strings of a repeated string field, as offsets into a block with their
 * lengths (the nne_client_text_t pointer member holds the offset). */
typedef struct textvec {
  nne_client_text_t *v;
  size_t n, cap, max, max_len;
  nne__strs_t *block;
  nne__dec_t *dec;
  const char *what;
  int over_code;
} textvec_t;

static bool textvec_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  textvec_t *t = *arg;
  size_t n = s->bytes_left;
  (void)f;
  if (t->n >= t->max)
    return nne__dec_fail(t->dec, t->over_code, "%s: more than %zu strings",
                         t->what, t->max);
  if (nne_vec_grow_max(&t->v, &t->cap, t->n + 1, sizeof *t->v, t->max) != 0)
    return nne__dec_fail(t->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "out of memory");
  if (!nne__strs_read(t->block, s, t->max_len, &t->v[t->n].text, t->dec,
                      t->what))
    return false;
  t->v[t->n].len = n;
  t->n++;
  return true;
}

/* An offset kept in a pointer member, made a pointer into base. */
static const char *at(const char *base, const char *off) {
  return base + (uintptr_t)off;
}

/* A block that starts with "" at offset 0. */
static bool block_init(nne__strs_t *b) {
  const char *slot;
  memset(b, 0, sizeof *b);
  return nne__strs_add(b, "", &slot);
}

/* ---- Tokenize ------------------------------------------------------------ */

typedef struct tok_dec {
  nne__rep_t texts;
  nnedit_v1_TokenizedText msg;
  nne_pb_i64_dec_t ids, special, starts, ends, sources, types;
  textvec_t tokens, pieces, bytes;
  char what[3][48];
  nne__strs_t block;
  nne__dec_t dec;
} tok_dec_t;

static void text_arm(nne__rep_t *r, void *msg, size_t i) {
  tok_dec_t *st = r->ctx;
  nnedit_v1_TokenizedText *m = msg;
  nne_pb_i64_dec_t *ints[] = {&st->ids,    &st->special, &st->starts,
                              &st->ends,   &st->sources, &st->types};
  for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
    ints[k]->n = 0;
    ints[k]->overflow = false;
  }
  st->tokens.n = st->pieces.n = st->bytes.n = 0;
  snprintf(st->what[0], sizeof st->what[0], "texts[%zu].tokens", i);
  snprintf(st->what[1], sizeof st->what[1], "texts[%zu].pieces", i);
  snprintf(st->what[2], sizeof st->what[2], "texts[%zu].piece_bytes", i);
  NNE_PB_DEC(m->ids, nne_pb_i64_dec, &st->ids);
  NNE_PB_DEC(m->special, nne_pb_i64_dec, &st->special);
  NNE_PB_DEC(m->offset_starts, nne_pb_i64_dec, &st->starts);
  NNE_PB_DEC(m->offset_ends, nne_pb_i64_dec, &st->ends);
  NNE_PB_DEC(m->sources, nne_pb_i64_dec, &st->sources);
  NNE_PB_DEC(m->type_ids, nne_pb_i64_dec, &st->types);
  NNE_PB_DEC(m->tokens, textvec_dec, &st->tokens);
  NNE_PB_DEC(m->pieces, textvec_dec, &st->pieces);
  NNE_PB_DEC(m->piece_bytes, textvec_dec, &st->bytes);
}

static bool text_take(nne__rep_t *r, const void *msg, void *item, size_t i) {
  tok_dec_t *st = r->ctx;
  nne_client_tokenized_t *t = item;
  size_t n = st->ids.n, k;
  (void)msg;
  /* The lists are parallel: each as long as the ids, or left out. */
  size_t lens[] = {st->tokens.n, st->pieces.n, st->special.n, st->starts.n,
                   st->ends.n,   st->sources.n, st->types.n,  st->bytes.n};
  for (k = 0; k < sizeof lens / sizeof lens[0]; k++)
    if (lens[k] != 0 && lens[k] != n)
      return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                           "texts[%zu]: %zu ids, %zu tokens, %zu pieces, %zu "
                           "special flags, %zu/%zu offsets, %zu sources, %zu "
                           "type ids, %zu piece bytes (parallel lists)",
                           i, n, st->tokens.n, st->pieces.n, st->special.n,
                           st->starts.n, st->ends.n, st->sources.n,
                           st->types.n, st->bytes.n);
  if (n == 0)
    return true;
  if ((t->tokens = calloc(n, sizeof *t->tokens)) == NULL)
    return nne__dec_fail(&st->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "out of memory");
  t->n_tokens = n;
  for (k = 0; k < n; k++) {
    nne_client_token_t *tk = &t->tokens[k];
    tk->id = st->ids.v[k];
    /* Offsets until the reply is whole (0: ""). */
    if (st->tokens.n != 0) {
      tk->token = st->tokens.v[k].text;
      tk->token_len = st->tokens.v[k].len;
    }
    if (st->pieces.n != 0) {
      tk->piece = st->pieces.v[k].text;
      tk->piece_len = st->pieces.v[k].len;
    }
    if (st->bytes.n != 0) {
      tk->bytes = st->bytes.v[k].text;
      tk->bytes_len = st->bytes.v[k].len;
    }
    tk->special = st->special.n != 0 && st->special.v[k] != 0;
    /* The daemon's values, kept inside their types' ranges. */
    tk->start = st->starts.n ? (uint32_t)st->starts.v[k] : 0;
    tk->end = st->ends.n ? (uint32_t)st->ends.v[k] : 0;
    tk->type_id = st->types.n ? (uint32_t)st->types.v[k] : 0;
    tk->source = st->sources.n && st->sources.v[k] >= 1 && st->sources.v[k] <= 3
                     ? (nne_client_token_source_t)st->sources.v[k]
                     : NNE_CLIENT_TOKEN_SOURCE_UNKNOWN;
  }
  return true;
}

static int tokenize_check(const char *model, const char *const *texts,
                          const char *const *pairs, size_t n_texts,
                          nne_client_err_t *err) {
  size_t i;
  int rc;
  if ((rc = nne__check_name("tokenize", model,
                            NNE__FIELD_SIZE(nnedit_v1_TokenizeRequest, model),
                            err)) < 0)
    return rc;
  if (n_texts > 0 && texts == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "tokenize: texts is NULL with n_texts %zu", n_texts);
  if (n_texts > NNE_CLIENT_MAX_TEXTS)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "tokenize: %zu texts, more than %d", n_texts,
                        NNE_CLIENT_MAX_TEXTS);
  for (i = 0; i < n_texts; i++)
    if (texts[i] == NULL || (pairs != NULL && pairs[i] == NULL))
      return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                          "tokenize: %s[%zu] is NULL",
                          texts[i] == NULL ? "texts" : "pairs", i);
  return 0;
}

int nne_client_tokenize(nne_client_t *cli, const char *model,
                        const char *const *texts, size_t n_texts, bool raw,
                        nne_client_tokenize_result_t *out,
                        nne_client_err_t *err) {
  return nne_client_tokenize_pairs(cli, model, texts, NULL, n_texts, raw, out,
                                   err);
}

int nne_client_tokenize_pairs(nne_client_t *cli, const char *model,
                              const char *const *texts,
                              const char *const *pairs, size_t n_texts,
                              bool raw, nne_client_tokenize_result_t *out,
                              nne_client_err_t *err) {
  nnedit_v1_TokenizeRequest req = nnedit_v1_TokenizeRequest_init_zero;
  nnedit_v1_TokenizeResponse resp = nnedit_v1_TokenizeResponse_init_zero;
  nne_pb_str_list_enc_t list, plist;
  tok_dec_t *st;
  size_t i, k;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || out == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "tokenize: NULL argument");
  if ((rc = tokenize_check(model, texts, pairs, n_texts, err)) < 0)
    return rc;
  if ((st = calloc(1, sizeof *st)) == NULL || !block_init(&st->block)) {
    free(st);
    return nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                        "tokenize: out of memory");
  }
  nne__copy_str(req.model, sizeof req.model, model);
  list = (nne_pb_str_list_enc_t){texts, n_texts};
  NNE_PB_ENC(req.texts, nne_pb_str_list_enc, &list);
  if (pairs != NULL) {
    plist = (nne_pb_str_list_enc_t){pairs, n_texts};
    NNE_PB_ENC(req.pairs, nne_pb_str_list_enc, &plist);
  }
  req.raw = raw;

  st->ids.max = st->special.max = st->starts.max = st->ends.max =
      st->sources.max = st->types.max = NNE_CLIENT_MAX_TEXT_TOKENS;
  st->tokens = (textvec_t){.max = NNE_CLIENT_MAX_TEXT_TOKENS,
                           .max_len = NNE_CLIENT_TOKEN_TEXT_MAX - 1,
                           .block = &st->block,
                           .dec = &st->dec,
                           .what = st->what[0],
                           .over_code = NNE_CLIENT_RESOURCE_EXHAUSTED};
  st->pieces = st->tokens;
  st->pieces.what = st->what[1];
  st->bytes = st->tokens;
  st->bytes.what = st->what[2];
  /* One tokenized text per request text: more is the daemon's error. */
  st->texts = (nne__rep_t){.items = (void **)&out->texts,
                           .n = &out->n_texts,
                           .item_size = sizeof *out->texts,
                           .max = n_texts,
                           .over_code = NNE_CLIENT_INTERNAL,
                           .what = "texts",
                           .noun = "texts",
                           .bound = "the request's",
                           .fields = nnedit_v1_TokenizedText_fields,
                           .msg = &st->msg,
                           .msg_size = sizeof st->msg,
                           .arm = text_arm,
                           .take = text_take,
                           .ctx = st,
                           .dec = &st->dec};
  NNE_PB_DEC(resp.texts, nne__rep_dec, &st->texts);
  rc = nne__unary(cli, M_TOKENIZE, nnedit_v1_TokenizeRequest_fields, &req,
                  nnedit_v1_TokenizeResponse_fields, &resp, &st->dec, err);
  /* nne_pb_i64_dec only flags its bound: say which. */
  if (rc < 0 && (st->ids.overflow || st->special.overflow ||
                 st->starts.overflow || st->ends.overflow ||
                 st->sources.overflow || st->types.overflow))
    rc = nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                      "Inference/Tokenize: a text of more than %u tokens",
                      (unsigned)NNE_CLIENT_MAX_TEXT_TOKENS);
  if (rc == 0 && out->n_texts != n_texts)
    rc = nne__err_set(err, NNE_CLIENT_INTERNAL,
                      "Inference/Tokenize: %zu tokenized texts for %zu texts",
                      out->n_texts, n_texts);
  if (rc == 0) {
    out->vocab_size = resp.vocab_size;
    out->strings = st->block.p;
    st->block.p = NULL;
    for (i = 0; i < out->n_texts; i++)
      for (k = 0; k < out->texts[i].n_tokens; k++) {
        nne_client_token_t *tk = &out->texts[i].tokens[k];
        tk->token = at(out->strings, tk->token);
        tk->piece = at(out->strings, tk->piece);
        tk->bytes = at(out->strings, tk->bytes);
      }
  }
  free(st->ids.v);
  free(st->special.v);
  free(st->starts.v);
  free(st->ends.v);
  free(st->sources.v);
  free(st->types.v);
  free(st->tokens.v);
  free(st->pieces.v);
  free(st->bytes.v);
  free(st->block.p);
  free(st);
  if (rc < 0)
    nne_client_tokenize_result_free(out);
  return rc;
}

void nne_client_tokenize_result_free(nne_client_tokenize_result_t *res) {
  size_t i;
  if (res == NULL)
    return;
  for (i = 0; i < res->n_texts; i++)
    free(res->texts[i].tokens);
  free(res->texts);
  free(res->strings);
  memset(res, 0, sizeof *res);
}

/* ---- Detokenize ---------------------------------------------------------- */

int nne_client_detokenize(nne_client_t *cli, const char *model,
                          const nne_client_token_row_t *rows, size_t n_rows,
                          bool skip_special,
                          nne_client_detokenize_result_t *out,
                          nne_client_err_t *err) {
  nnedit_v1_DetokenizeRequest req = nnedit_v1_DetokenizeRequest_init_zero;
  nnedit_v1_DetokenizeResponse resp = nnedit_v1_DetokenizeResponse_init_zero;
  pb_callback_t no_mask;
  nne__rows_enc_t enc;
  nne__strs_t block;
  textvec_t texts;
  nne__dec_t dec;
  size_t i, max_mask = 0;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || out == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "detokenize: NULL argument");
  if ((rc = nne__check_name("detokenize", model,
                            NNE__FIELD_SIZE(nnedit_v1_DetokenizeRequest, model),
                            err)) < 0 ||
      (rc = nne__rows_check("detokenize: ", rows, n_rows, NULL, 0, &max_mask,
                            err)) < 0)
    return rc;
  for (i = 0; i < n_rows; i++)
    if (rows[i].text != NULL)
      return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                          "detokenize: rows[%zu] is a text row (ids only)", i);
  if (!block_init(&block))
    return nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                        "detokenize: out of memory");
  memset(&enc, 0, sizeof enc);
  memset(&dec, 0, sizeof dec);
  enc.rows = rows;
  nne__copy_str(req.model, sizeof req.model, model);
  nne__rows_enc(&enc, n_rows, 0, &req.rows, &no_mask);
  req.skip_special = skip_special;
  /* One text per row; a text is bounded by the reply it arrives in. */
  texts = (textvec_t){.max = n_rows,
                      .max_len = cli->max_recv_bytes,
                      .block = &block,
                      .dec = &dec,
                      .what = "texts",
                      .over_code = NNE_CLIENT_INTERNAL};
  NNE_PB_DEC(resp.texts, textvec_dec, &texts);
  rc = nne__unary(cli, M_DETOKENIZE, nnedit_v1_DetokenizeRequest_fields, &req,
                  nnedit_v1_DetokenizeResponse_fields, &resp, &dec, err);
  if (rc == 0 && texts.n != n_rows)
    rc = nne__err_set(err, NNE_CLIENT_INTERNAL,
                      "Inference/Detokenize: %zu texts for %zu rows", texts.n,
                      n_rows);
  if (rc == 0) {
    out->strings = block.p;
    out->texts = texts.v;
    out->n_texts = texts.n;
    block.p = NULL;
    texts.v = NULL;
    for (i = 0; i < out->n_texts; i++)
      out->texts[i].text = at(out->strings, out->texts[i].text);
  }
  free(texts.v);
  free(block.p);
  return rc;
}

void nne_client_detokenize_result_free(nne_client_detokenize_result_t *res) {
  if (res == NULL)
    return;
  free(res->texts);
  free(res->strings);
  memset(res, 0, sizeof *res);
}
