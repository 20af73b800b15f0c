/* text.c — nnedit.v1.Inference/Tokenize and /Detokenize: the model's
 * tokenizer (daemon/text) over the wire.
 *
 * Tokenize answers each text (or text pair) with its tokens' offsets,
 * sources and type ids (nne_tokenizer_encode_pair with NNE_TOK_OFFSETS:
 * offsets are what a caller of Tokenize wants beside the ids; text rows of
 * Forward and Trace encode without them), and a token's raw bytes where
 * its decoded piece is lossy.
 *
 * Both answer on the loop thread: a request holds at most 1024 texts (and
 * as many pairs) of at most 1 MiB within the message limit, and the
 * tokenizer encodes ~10-15 MB/s with offsets (bench/README.md), so the
 * largest request costs what one forward pass of a small model does. The
 * model is held for the call, so an Unload waits and the tokenizer cannot
 * go away mid-call.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/vec.h"
#include "infer/batch.h"
#include "infer/hold.h"
#include "nnedit/v1/inference.pb.h"
#include "rpc/rpc.h"

#define MAX_TEXTS 1024

/* ---- decoding the texts (with their lengths: a text may hold U+0000) ---- */

typedef struct texts_dec {
  char **v;
  size_t *len;
  size_t n, cap, cap_len;
  size_t *bytes_left; /* shared by the texts and the pairs */
  bool *overflow;
  const char *over; /* the message when over a bound */
} texts_dec_t;

static bool texts_cb(pb_istream_t *s, const pb_field_t *f, void **arg) {
  texts_dec_t *td = *arg;
  size_t n = s->bytes_left;
  char *p;
  (void)f;
  if (td->n >= MAX_TEXTS || n > NNE_ROW_TEXT_MAX || n > *td->bytes_left) {
    *td->overflow = true;
    PB_RETURN_ERROR(s, td->over);
  }
  if (NNE_VEC_GROW(&td->v, &td->cap, td->n + 1) != 0 ||
      NNE_VEC_GROW(&td->len, &td->cap_len, td->n + 1) != 0 ||
      (p = malloc(n + 1)) == NULL)
    PB_RETURN_ERROR(s, "out of memory");
  if (!pb_read(s, (pb_byte_t *)p, n)) {
    free(p);
    return false;
  }
  p[n] = '\0';
  *td->bytes_left -= n;
  td->v[td->n] = p;
  td->len[td->n++] = n;
  return true;
}

static void texts_free(texts_dec_t *td) {
  size_t i;
  for (i = 0; i < td->n; i++)
    free(td->v[i]);
  free(td->v);
  free(td->len);
}

/* The request's callbacks: texts and pairs within one allowance. */
static void tokenize_dec_init(nnedit_v1_TokenizeRequest *in, texts_dec_t *td,
                              texts_dec_t *pd, size_t *bytes_left,
                              bool *overflow) {
  memset(td, 0, sizeof *td);
  memset(pd, 0, sizeof *pd);
  td->bytes_left = pd->bytes_left = bytes_left;
  td->overflow = pd->overflow = overflow;
  td->over = "too many or too long texts";
  pd->over = "too many or too long pairs";
  NNE_PB_DEC(in->texts, texts_cb, td);
  NNE_PB_DEC(in->pairs, texts_cb, pd);
}

static void detokenize_dec_init(nnedit_v1_DetokenizeRequest *in,
                                nne_rows_dec_t *rows,
                                const nne_config_t *cfg) {
  nne_rows_dec_init(rows, nnedit_v1_TokenRow_ids_tag, MAX_TEXTS,
                    cfg->max_message_bytes);
  NNE_PB_DEC(in->rows, nne_rows_dec_cb, rows);
}

/* ---- Tokenize ------------------------------------------------------------ */

/* One text's answer, built before encoding (the callbacks run twice).
 * raw/raw_len: each token's piece_bytes (NULL, 0 for most). */
typedef struct tok_text {
  int64_t *ids, *starts, *ends, *sources, *types;
  size_t n;
  char **tokens, **pieces, **raw;
  size_t *raw_len;
  bool *special;
} tok_text_t;

typedef struct tok_reply {
  tok_text_t *t;
  size_t n;
} tok_reply_t;

static bool bools_enc(pb_ostream_t *s, const pb_field_t *f, void *const *arg) {
  const tok_text_t *t = *arg;
  size_t i;
  pb_ostream_t sizer = PB_OSTREAM_SIZING;
  for (i = 0; i < t->n; i++)
    pb_encode_varint(&sizer, t->special[i]);
  if (!pb_encode_tag(s, PB_WT_STRING, f->tag) ||
      !pb_encode_varint(s, sizer.bytes_written))
    return false;
  for (i = 0; i < t->n; i++)
    if (!pb_encode_varint(s, t->special[i]))
      return false;
  return true;
}

/* piece_bytes: every token's, empty for most. */
static bool raw_enc(pb_ostream_t *s, const pb_field_t *f, void *const *arg) {
  const tok_text_t *t = *arg;
  for (size_t i = 0; i < t->n; i++)
    if (!pb_encode_tag_for_field(s, f) ||
        !pb_encode_string(s, (const pb_byte_t *)(t->raw[i] ? t->raw[i] : ""),
                          t->raw_len[i]))
      return false;
  return true;
}

typedef struct tok_fill {
  const tok_reply_t *r;
  nne_pb_i64_enc_t ids, starts, ends, sources, types;
  nne_pb_str_list_enc_t tokens, pieces;
} tok_fill_t;

static bool fill_text(void *ctx, size_t i, void *msg) {
  tok_fill_t *tf = ctx;
  const tok_text_t *t = &tf->r->t[i];
  nnedit_v1_TokenizedText *o = msg;
  /* The encoder uses one element at a time: the states can be reused. */
  tf->ids.v = t->ids;
  tf->ids.n = t->n;
  tf->tokens.v = (const char *const *)t->tokens;
  tf->tokens.n = t->n;
  tf->pieces.v = (const char *const *)t->pieces;
  tf->pieces.n = t->n;
  tf->starts = (nne_pb_i64_enc_t){t->starts, t->n};
  tf->ends = (nne_pb_i64_enc_t){t->ends, t->n};
  tf->sources = (nne_pb_i64_enc_t){t->sources, t->n};
  tf->types = (nne_pb_i64_enc_t){t->types, t->n};
  NNE_PB_ENC(o->ids, nne_pb_i64_enc, &tf->ids);
  NNE_PB_ENC(o->tokens, nne_pb_str_list_enc, &tf->tokens);
  NNE_PB_ENC(o->pieces, nne_pb_str_list_enc, &tf->pieces);
  NNE_PB_ENC(o->offset_starts, nne_pb_i64_enc, &tf->starts);
  NNE_PB_ENC(o->offset_ends, nne_pb_i64_enc, &tf->ends);
  NNE_PB_ENC(o->sources, nne_pb_i64_enc, &tf->sources);
  NNE_PB_ENC(o->type_ids, nne_pb_i64_enc, &tf->types);
  if (t->n > 0) {
    NNE_PB_ENC(o->special, bools_enc, t);
    NNE_PB_ENC(o->piece_bytes, raw_enc, t);
  }
  return true;
}

static void tok_reply_free(tok_reply_t *r) {
  size_t i, k;
  for (i = 0; i < r->n; i++) {
    tok_text_t *t = &r->t[i];
    for (k = 0; k < t->n; k++) {
      if (t->tokens != NULL)
        free(t->tokens[k]);
      if (t->pieces != NULL)
        free(t->pieces[k]);
      if (t->raw != NULL)
        free(t->raw[k]);
    }
    free(t->ids);
    free(t->starts);
    free(t->ends);
    free(t->sources);
    free(t->types);
    free(t->tokens);
    free(t->pieces);
    free(t->raw);
    free(t->raw_len);
    free(t->special);
  }
  free(r->t);
}

/* The source of a token from the tokenizer's sequence index. */
static int64_t source_of(uint8_t seq) {
  return seq == 0   ? nnedit_v1_TokenSource_TOKEN_SOURCE_TEXT
         : seq == 1 ? nnedit_v1_TokenSource_TOKEN_SOURCE_PAIR
                    : nnedit_v1_TokenSource_TOKEN_SOURCE_TEMPLATE;
}

/* Token k's spelling, piece and (when its piece is lossy) bytes. */
static int describe_token(const nne_tokenizer_t *tok, tok_text_t *t, size_t k,
                          int32_t id, nne_err_t *err) {
  size_t tl, pl, rl;
  const char *sp = nne_tokenizer_id_to_token(tok, id, &tl);
  t->special[k] = nne_tokenizer_is_special(tok, id) != 0;
  t->tokens[k] = sp != NULL ? strndup(sp, tl) : strdup("");
  if (nne_tokenizer_decode(tok, &id, 1, 0, &t->pieces[k], &pl, err) != 0)
    t->pieces[k] = NULL;
  if (t->tokens[k] == NULL || t->pieces[k] == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  /* The bytes are never more than the spelling. */
  if (sp != NULL && (t->raw[k] = malloc(tl + 1)) == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  if (sp != NULL && nne_tokenizer_token_bytes(tok, id, t->raw[k], tl, &rl))
    t->raw_len[k] = rl;
  return 0;
}

/* ids, token spellings, pieces, special flags, offsets, sources, type ids
 * and piece bytes of one text (pair: its second text, or NULL). */
static int tokenize_one(const nne_tokenizer_t *tok, const char *text,
                        size_t len, const char *pair, size_t pair_len,
                        unsigned flags, size_t index, tok_text_t *t,
                        nne_err_t *err) {
  nne_tokenizer_encoding_t e;
  size_t k, m;
  int rc = nne_tokenizer_encode_pair(tok, text, len, pair, pair_len,
                                     flags | NNE_TOK_OFFSETS, &e, err);
  if (rc != 0) {
    nne_err_prefix(err, "%s[%zu]",
                   strncmp(err->msg, "pair:", 5) == 0 ? "pairs" : "texts",
                   index);
    return rc;
  }
  t->n = e.n;
  m = t->n ? t->n : 1;
  t->ids = calloc(m, sizeof *t->ids);
  t->starts = calloc(m, sizeof *t->starts);
  t->ends = calloc(m, sizeof *t->ends);
  t->sources = calloc(m, sizeof *t->sources);
  t->types = calloc(m, sizeof *t->types);
  t->tokens = calloc(m, sizeof *t->tokens);
  t->pieces = calloc(m, sizeof *t->pieces);
  t->raw = calloc(m, sizeof *t->raw);
  t->raw_len = calloc(m, sizeof *t->raw_len);
  t->special = calloc(m, sizeof *t->special);
  if (t->ids == NULL || t->starts == NULL || t->ends == NULL ||
      t->sources == NULL || t->types == NULL || t->tokens == NULL ||
      t->pieces == NULL || t->raw == NULL || t->raw_len == NULL ||
      t->special == NULL)
    rc = nne_err_set(err, NNE_ENOMEM, "out of memory");
  for (k = 0; rc == 0 && k < t->n; k++) {
    t->ids[k] = e.ids[k];
    t->starts[k] = e.offsets[2 * k];
    t->ends[k] = e.offsets[2 * k + 1];
    t->sources[k] = source_of(e.seq[k]);
    t->types[k] = e.type_ids[k];
    rc = describe_token(tok, t, k, e.ids[k], err);
  }
  nne_tokenizer_encoding_free(&e);
  return rc;
}

/* The model held, and its tokenizer (FAILED_PRECONDITION without one). */
static int hold_tokenizer(nne_infer_hold_t *h, nne_daemon_t *d,
                          const char *model, nne_err_t *err) {
  int rc = nne_infer_hold(h, d, model, NULL, err);
  if (rc == 0 && h->entry->tokenizer == NULL) {
    rc = nne_err_set(err, NNE_ESTATE,
                     "model '%s' has no tokenizer (looked for %s)",
                     h->entry->name, h->entry->tokenizer_file);
    nne_infer_release(h, d);
  }
  return rc;
}

void nne_rpc_inference_tokenize(nne_call_t *call, grpc_byte_buffer *req) {
  nne_daemon_t *d = nne_call_app(call);
  nnedit_v1_TokenizeRequest in = nnedit_v1_TokenizeRequest_init_zero;
  nnedit_v1_TokenizeResponse out = nnedit_v1_TokenizeResponse_init_zero;
  nne_infer_hold_t hold;
  texts_dec_t td, pd;
  size_t bytes_left = d->cfg->max_message_bytes;
  bool overflow = false;
  tok_reply_t r;
  tok_fill_t tf;
  nne_pb_list_enc_t list;
  nne_err_t err;
  size_t i;
  int rc;

  memset(&r, 0, sizeof r);
  memset(&hold, 0, sizeof hold);
  tokenize_dec_init(&in, &td, &pd, &bytes_left, &overflow);
  if (!nne_rpc_decode(call, req, nnedit_v1_TokenizeRequest_fields, &in,
                      &overflow)) {
    texts_free(&td);
    texts_free(&pd);
    return;
  }
  nne_call_set_model(call, in.model);
  rc = hold_tokenizer(&hold, d, in.model, &err);
  if (rc == 0 && pd.n != 0 && pd.n != td.n)
    rc = nne_err_set(&err, NNE_EINVAL,
                     "pairs: %zu for %zu texts (one per text, or none)", pd.n,
                     td.n);
  if (rc == 0 && (r.t = calloc(td.n ? td.n : 1, sizeof *r.t)) == NULL)
    rc = nne_err_set(&err, NNE_ENOMEM, "out of memory");
  for (i = 0; rc == 0 && i < td.n; i++, r.n++)
    rc = tokenize_one(hold.entry->tokenizer, td.v[i], td.len[i],
                      pd.n ? pd.v[i] : NULL, pd.n ? pd.len[i] : 0,
                      in.raw ? 0u : (unsigned)NNE_TOK_ADD_SPECIAL, i, &r.t[i],
                      &err);
  if (rc == 0) {
    out.vocab_size = (uint32_t)nne_tokenizer_vocab_size(hold.entry->tokenizer);
    memset(&tf, 0, sizeof tf);
    tf.r = &r;
    list.n = r.n;
    list.fill = fill_text;
    list.ctx = &tf;
    list.msg_size = sizeof(nnedit_v1_TokenizedText);
    NNE_PB_ENC(out.texts, nne_pb_list_enc, &list);
    nne_call_reply(call, nnedit_v1_TokenizeResponse_fields, &out);
  } else {
    nne_call_fail_err(call, &err);
  }
  nne_infer_release(&hold, d);
  tok_reply_free(&r);
  texts_free(&td);
  texts_free(&pd);
}

/* ---- decoding without a call (the fuzz driver) ---------------------------- */

int nne_rpc_text_decode(const nne_config_t *cfg, bool detokenize,
                        const uint8_t *buf, size_t len, nne_err_t *err) {
  pb_istream_t s = pb_istream_from_buffer(buf, len);
  int rc = 0;
  if (!detokenize) {
    nnedit_v1_TokenizeRequest in = nnedit_v1_TokenizeRequest_init_zero;
    texts_dec_t td, pd;
    size_t bytes_left = cfg->max_message_bytes;
    bool overflow = false;
    tokenize_dec_init(&in, &td, &pd, &bytes_left, &overflow);
    if (!pb_decode(&s, nnedit_v1_TokenizeRequest_fields, &in))
      rc = nne_err_set(err, overflow ? NNE_ERESOURCE : NNE_EINVAL, "%s",
                       PB_GET_ERROR(&s));
    else if (td.n != pd.n && pd.n != 0)
      rc = nne_err_set(err, NNE_EINVAL, "pairs: %zu for %zu texts", pd.n,
                       td.n);
    texts_free(&td);
    texts_free(&pd);
  } else {
    nnedit_v1_DetokenizeRequest in = nnedit_v1_DetokenizeRequest_init_zero;
    nne_rows_dec_t rows;
    detokenize_dec_init(&in, &rows, cfg);
    if (!pb_decode(&s, nnedit_v1_DetokenizeRequest_fields, &in))
      rc = nne_err_set(err, rows.overflow ? NNE_ERESOURCE : NNE_EINVAL, "%s",
                       PB_GET_ERROR(&s));
    nne_rows_free(&rows);
  }
  return rc;
}

/* ---- Detokenize ---------------------------------------------------------- */

void nne_rpc_inference_detokenize(nne_call_t *call, grpc_byte_buffer *req) {
  nne_daemon_t *d = nne_call_app(call);
  nnedit_v1_DetokenizeRequest in = nnedit_v1_DetokenizeRequest_init_zero;
  nnedit_v1_DetokenizeResponse out = nnedit_v1_DetokenizeResponse_init_zero;
  nne_pb_str_list_enc_t texts;
  nne_infer_hold_t hold;
  nne_rows_dec_t rows;
  char **v = NULL;
  nne_err_t err;
  size_t i, off = 0, n_done = 0;
  int rc;

  memset(&hold, 0, sizeof hold);
  detokenize_dec_init(&in, &rows, d->cfg);
  if (!nne_rpc_decode(call, req, nnedit_v1_DetokenizeRequest_fields, &in,
                      &rows.overflow)) {
    nne_rows_free(&rows);
    return;
  }
  nne_call_set_model(call, in.model);
  rc = hold_tokenizer(&hold, d, in.model, &err);
  if (rc == 0 && rows.has_text)
    rc = nne_err_set(&err, NNE_EINVAL, "rows: ids only (text is what "
                     "Detokenize answers)");
  if (rc == 0 && (v = calloc(rows.n ? rows.n : 1, sizeof *v)) == NULL)
    rc = nne_err_set(&err, NNE_ENOMEM, "out of memory");
  for (i = 0; rc == 0 && i < rows.n; i++) {
    size_t k, len = rows.len[i], tl;
    int32_t *ids = calloc(len ? len : 1, sizeof *ids);
    if (ids == NULL) {
      rc = nne_err_set(&err, NNE_ENOMEM, "out of memory");
      break;
    }
    for (k = 0; rc == 0 && k < len; k++) {
      int64_t id = rows.vals.v[off + k];
      if (id < 0 || id > INT32_MAX)
        rc = nne_err_set(&err, NNE_EINVAL, "rows[%zu].ids[%zu]: %" PRId64
                         " is not a token id", i, k, id);
      ids[k] = (int32_t)id;
    }
    if (rc == 0) {
      rc = nne_tokenizer_decode(hold.entry->tokenizer, ids, len,
                                in.skip_special ? NNE_TOK_SKIP_SPECIAL : 0u,
                                &v[i], &tl, &err);
      if (rc != 0)
        nne_err_prefix(&err, "rows[%zu]", i);
      else
        n_done++;
    }
    free(ids);
    off += len;
  }
  if (rc == 0) {
    texts.v = (const char *const *)v;
    texts.n = rows.n;
    NNE_PB_ENC(out.texts, nne_pb_str_list_enc, &texts);
    nne_call_reply(call, nnedit_v1_DetokenizeResponse_fields, &out);
  } else {
    nne_call_fail_err(call, &err);
  }
  for (i = 0; v != NULL && i < n_done; i++)
    free(v[i]);
  free(v);
  nne_infer_release(&hold, d);
  nne_rows_free(&rows);
}
