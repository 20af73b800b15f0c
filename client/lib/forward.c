/* forward.c — nnedit.v1.Inference/Forward, on the pristine model or an
 * edit set; and what Trace shares with it (internal.h, block forward.c):
 * token rows on the wire, top-k rows off it. */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define M_FORWARD "/nnedit.v1.Inference/Forward"

_Static_assert(NNE__FIELD_SIZE(nnedit_v1_ForwardRequest, edit_set) ==
                   NNE_CLIENT_EDIT_SET_ID_MAX,
               "ForwardRequest.edit_set bound");

/* ---- token rows ---------------------------------------------------------- */

static bool fill_ids(void *ctx, size_t i, void *msg) {
  nne__rows_enc_t *e = ctx;
  nnedit_v1_TokenRow *row = msg;
  *row = (nnedit_v1_TokenRow)nnedit_v1_TokenRow_init_zero;
  /* A text row goes as text alone: the daemon tokenizes it. */
  if (e->rows[i].text != NULL) {
    NNE_PB_ENC(row->text, nne_pb_str_enc, e->rows[i].text);
    return true;
  }
  e->cur.v = e->rows[i].ids;
  e->cur.n = e->rows[i].n_ids;
  NNE_PB_ENC(row->ids, nne_pb_i64_enc, &e->cur);
  return true;
}

static bool fill_mask(void *ctx, size_t i, void *msg) {
  nne__rows_enc_t *e = ctx;
  nnedit_v1_MaskRow *row = msg;
  const nne_client_mask_row_t *src = &e->mask[i];
  size_t k;
  *row = (nnedit_v1_MaskRow)nnedit_v1_MaskRow_init_zero;
  for (k = 0; k < src->n_values; k++)
    e->tmp[k] = src->values[k];
  e->cur.v = e->tmp;
  e->cur.n = src->n_values;
  NNE_PB_ENC(row->values, nne_pb_i64_enc, &e->cur);
  return true;
}

void nne__rows_enc(nne__rows_enc_t *e, size_t n_rows, size_t n_mask,
                   pb_callback_t *ids, pb_callback_t *mask) {
  e->ids_list =
      (nne_pb_list_enc_t){n_rows, fill_ids, e, sizeof(nnedit_v1_TokenRow)};
  e->mask_list =
      (nne_pb_list_enc_t){n_mask, fill_mask, e, sizeof(nnedit_v1_MaskRow)};
  NNE_PB_ENC(*ids, nne_pb_list_enc, &e->ids_list);
  NNE_PB_ENC(*mask, nne_pb_list_enc, &e->mask_list);
}

int nne__rows_check(const char *where, const nne_client_token_row_t *rows,
                    size_t n_rows, const nne_client_mask_row_t *mask,
                    size_t n_mask, size_t *max_mask, nne_client_err_t *err) {
  size_t i;
  if (n_rows > 0 && rows == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "%srows is NULL with n_rows %zu", where, n_rows);
  for (i = 0; i < n_rows; i++) {
    if (rows[i].n_ids > 0 && rows[i].ids == NULL)
      return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                          "%srows[%zu].ids is NULL", where, i);
    /* The wire has one of the two per row (TokenRow): both would be an
     * ambiguity the daemon could only guess at. */
    if (rows[i].text != NULL && rows[i].n_ids > 0)
      return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                          "%srows[%zu]: both text and %zu ids (one or the "
                          "other)",
                          where, i, rows[i].n_ids);
  }
  if (n_mask > 0 && mask == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "%smask is NULL with n_mask %zu", where, n_mask);
  for (i = 0; i < n_mask; i++) {
    if (mask[i].n_values > 0 && mask[i].values == NULL)
      return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                          "%smask[%zu].values is NULL", where, i);
    if (mask[i].n_values > *max_mask)
      *max_mask = mask[i].n_values;
  }
  return 0;
}

/* ---- top-k rows ---------------------------------------------------------- */

void nne__topk_row_begin(nne__topk_t *t, nne_client_row_topk_t *row,
                         const char *what, pb_callback_t *top) {
  t->top.items = (void **)&row->top;
  t->top.n = &row->n_top;
  t->top.cap = 0;
  /* The row's texts gather in a block of their own, which the row owns
   * from its first text on (so free finds it whatever fails later). */
  t->row = row;
  t->texts = (nne__strs_t){NULL, 0, 0};
  snprintf(t->top_what, sizeof t->top_what, "%s", what);
  NNE_PB_DEC(*top, nne__rep_dec, &t->top);
}

void nne__topk_row_end(nne__topk_t *t, nne_client_row_topk_t *row) {
  size_t k;
  /* The block stops moving with the row's last score: offsets become
   * pointers (every score put a text there, "" when it had none). */
  for (k = 0; k < row->n_top; k++) {
    uintptr_t off = (uintptr_t)row->top[k].text;
    row->top[k].text = row->strings != NULL ? row->strings + off : "";
  }
  t->row = NULL;
}

static void row_arm(nne__rep_t *r, void *msg, size_t i) {
  char what[32];
  snprintf(what, sizeof what, "rows[%zu].top", i);
  nne__topk_row_begin(r->ctx, (nne_client_row_topk_t *)*r->items + i, what,
                      &((nnedit_v1_RowTopK *)msg)->top);
}

static bool row_take(nne__rep_t *r, const void *msg, void *item, size_t i) {
  nne_client_row_topk_t *row = item;
  (void)i;
  row->position = ((const nnedit_v1_RowTopK *)msg)->position;
  nne__topk_row_end(r->ctx, row);
  return true;
}

/* TokenScore.text: the token decoded alone, into the row's block. */
static bool score_text_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  nne__topk_t *t = *arg;
  size_t n = s->bytes_left;
  (void)f;
  if (!nne__strs_read(&t->texts, s, NNE_CLIENT_TOKEN_TEXT_MAX - 1, &t->text_off,
                      t->top.dec, t->top_what))
    return false;
  t->row->strings = t->texts.p;
  t->text_len = n;
  t->has_text = true;
  return true;
}

static void score_arm(nne__rep_t *r, void *msg, size_t i) {
  nne__topk_t *t = r->ctx;
  (void)i;
  t->has_text = false;
  NNE_PB_DEC(((nnedit_v1_TokenScore *)msg)->text, score_text_dec, t);
}

static bool score_take(nne__rep_t *r, const void *msg, void *item, size_t i) {
  nne__topk_t *t = r->ctx;
  const nnedit_v1_TokenScore *m = msg;
  nne_client_token_score_t *sc = item;
  (void)i;
  sc->token_id = m->token_id;
  sc->logit = m->logit;
  sc->prob = m->prob;
  /* An offset until row_take; a score without text gets an empty string
   * of its own, so that every text points into the block. */
  if (!t->has_text && !nne__strs_add(&t->texts, "", &t->text_off))
    return nne__dec_fail(t->top.dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "out of memory");
  t->row->strings = t->texts.p;
  sc->text = t->text_off;
  sc->text_len = t->has_text ? t->text_len : 0;
  return true;
}

void nne__topk_init(nne__topk_t *t, nne_client_row_topk_t **rows,
                    size_t *n_rows, size_t max_rows, size_t max_top,
                    nne__dec_t *dec) {
  memset(t, 0, sizeof *t);
  /* Both bounds are the request's: a daemon sending more broke the
   * protocol (INTERNAL), not a limit of this client. */
  t->rows = (nne__rep_t){.items = (void **)rows,
                         .n = n_rows,
                         .cap = *n_rows,
                         .item_size = sizeof **rows,
                         .max = max_rows,
                         .over_code = NNE_CLIENT_INTERNAL,
                         .what = "rows",
                         .noun = "rows",
                         .bound = "the request's",
                         .fields = nnedit_v1_RowTopK_fields,
                         .msg = &t->row_msg,
                         .msg_size = sizeof t->row_msg,
                         .arm = row_arm,
                         .take = row_take,
                         .ctx = t,
                         .dec = dec};
  t->top = (nne__rep_t){.item_size = sizeof(nne_client_token_score_t),
                        .max = max_top,
                        .over_code = NNE_CLIENT_INTERNAL,
                        .what = t->top_what,
                        .noun = "scores",
                        .bound = "top_k =",
                        .fields = nnedit_v1_TokenScore_fields,
                        .msg = &t->score_msg,
                        .msg_size = sizeof t->score_msg,
                        .arm = score_arm,
                        .take = score_take,
                        .ctx = t,
                        .dec = dec};
}

void nne__rows_clear(nne_client_row_topk_t *rows, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    free(rows[i].top);
    free(rows[i].strings);
    memset(&rows[i], 0, sizeof rows[i]);
  }
}

void nne__rows_free(nne_client_row_topk_t *rows, size_t n) {
  nne__rows_clear(rows, n);
  free(rows);
}

/* ---- Forward ------------------------------------------------------------- */

/* ForwardResponse.msg is a oneof of two messages that both hold callback
 * fields, which nanopb zeroes when a member's tag arrives: its message
 * callback (cb_msg, inference.options) runs just after that and points the
 * member's `rows`, `saved` or chunk `data` at us. */
_Static_assert((int)nnedit_v1_Padding_PADDING_RIGHT ==
                       (int)NNE_CLIENT_PAD_RIGHT &&
                   (int)nnedit_v1_LogitsMode_LOGITS_MODE_ALL ==
                       (int)NNE_CLIENT_LOGITS_ALL,
               "Padding and LogitsMode numbers");

typedef struct fwd_dec {
  const nne_client_forward_req_t *req;
  nne_client_forward_result_t *out;
  nne__topk_t topk;
  bool have_result;
  char tensor_name[NNE_CLIENT_NAME_MAX]; /* what result.logits_tensor said */
  unsigned frame_fields;                 /* members seen in this message */
  size_t n_saved_names; /* result.saved entries seen (each checked) */
  /* With an edit set: the names result.saved lists after the request's
   * saves (the set's SAVE edits), at most NNE_CLIENT_MAX_EDITS. */
  char **extra;
  size_t n_extra, extra_cap;
  /* With an edit set whose saves the result does not list: every tensor
   * after the listed ones is one of them, named by its chunks (at most
   * NNE_CLIENT_MAX_EDITS). saved_cap is the room in out->saved. */
  bool open_ended;
  size_t saved_cap;
  /* The tensors that follow the result, in order: the logits (when asked
   * for), then one per save entry. `next` is the one being received. */
  size_t n_tensors, next;
  nne__asm_t asm_;
  nne__dec_t dec;
} fwd_dec_t;

static bool fwd_has_edit_set(const nne_client_forward_req_t *req) {
  return req->edit_set != NULL && req->edit_set[0] != '\0';
}

/* ForwardResult.saved: the request's save list, as spelled (then, with an
 * edit set, the set's SAVE names, which the client cannot know in
 * advance). */
static bool saved_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  fwd_dec_t *st = *arg;
  const nne_client_forward_req_t *req = st->req;
  char name[NNE_CLIENT_NAME_MAX], what[48];
  size_t i = st->n_saved_names;
  (void)f;
  snprintf(what, sizeof what, "result.saved[%zu]", i);
  if (i >= req->n_save && !fwd_has_edit_set(req))
    return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                         "result lists more saved tensors than the request's "
                         "%zu save entries",
                         req->n_save);
  if (i >= req->n_save && st->n_extra >= NNE_CLIENT_MAX_EDITS)
    return nne__dec_fail(&st->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "result lists more than %d saved tensors of the "
                         "edit set",
                         NNE_CLIENT_MAX_EDITS);
  /* Request names were checked to be shorter than a tensor name: a longer
   * one cannot match. */
  if (!nne__dec_str(s, name, sizeof name, &st->dec, what))
    return false;
  if (i < req->n_save) {
    if (strcmp(name, req->save[i]) != 0)
      return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                           "result.saved[%zu] is '%s', the request's "
                           "save[%zu] is '%s'",
                           i, name, i, req->save[i]);
  } else {
    if (name[0] == '\0')
      return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL, "%s: an empty name",
                           what);
    if (nne_vec_grow_max(&st->extra, &st->extra_cap, st->n_extra + 1,
                         sizeof *st->extra, NNE_CLIENT_MAX_EDITS) != 0 ||
        (st->extra[st->n_extra] = strdup(name)) == NULL)
      return nne__dec_fail(&st->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                           "out of memory");
    st->n_extra++;
  }
  st->n_saved_names++;
  return true;
}

/* The result, decoded (its rows and saved list already taken). */
static bool fwd_result_done(fwd_dec_t *st, const nnedit_v1_ForwardResult *m) {
  const nne_client_forward_req_t *req = st->req;
  if (st->n_saved_names < req->n_save)
    return nne__dec_fail(
        &st->dec, NNE_CLIENT_INTERNAL,
        "result lists %zu saved tensors for %zu save "
        "entries%s",
        st->n_saved_names, req->n_save,
        st->n_saved_names == 0 ? " (a daemon without save support?)" : "");
  if (st->n_extra > 0) {
    /* Room for the edit set's saves too (the request's were allocated up
     * front); the new entries are zeroed so that free finds nothing in
     * them until they are filled. */
    size_t total = req->n_save + st->n_extra;
    st->saved_cap = req->n_save;
    if (nne_vec_grow_max(&st->out->saved, &st->saved_cap, total,
                         sizeof *st->out->saved, total) != 0)
      return nne__dec_fail(&st->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                           "out of memory");
    memset(st->out->saved + req->n_save, 0,
           st->n_extra * sizeof *st->out->saved);
    st->n_tensors += st->n_extra;
  } else if (fwd_has_edit_set(req)) {
    /* A daemon may stream the set's saves without listing them (the proto
     * only promises that they follow the request's): take them as they
     * come, named by their chunks. */
    st->open_ended = true;
  }
  st->out->batch = m->batch;
  st->out->seq_len = m->seq_len;
  if (m->has_timing) {
    st->out->timing.queue_ms = m->timing.queue_ms;
    st->out->timing.compute_ms = m->timing.compute_ms;
    st->out->timing.total_ms = m->timing.total_ms;
  }
  memcpy(st->tensor_name, m->logits_tensor, sizeof st->tensor_name);
  st->have_result = true;
  return true;
}

/* The k-th tensor of the stream: the logits when asked for, then the
 * saves. */
static bool fwd_is_logits(const fwd_dec_t *st, size_t k) {
  return st->req->logits != NNE_CLIENT_LOGITS_NONE && k == 0;
}

static const char *fwd_tensor_name(const fwd_dec_t *st, size_t k) {
  size_t j;
  if (fwd_is_logits(st, k))
    return st->tensor_name[0] ? st->tensor_name : "logits";
  j = k - (st->req->logits != NNE_CLIENT_LOGITS_NONE);
  if (j < st->req->n_save)
    return st->req->save[j];
  /* NULL: an unlisted save of the edit set, named by its chunks. */
  return j - st->req->n_save < st->n_extra ? st->extra[j - st->req->n_save]
                                           : NULL;
}

/* Room for one more of the edit set's unlisted saves in saved[] (counted by
 * n_saved only once complete, so free never sees a half-made entry). */
static bool fwd_open_one(fwd_dec_t *st) {
  size_t have = st->out->n_saved, n_save = st->req->n_save;
  if (have - n_save >= NNE_CLIENT_MAX_EDITS)
    return nne__dec_fail(&st->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "more than %d saved tensors of the edit set",
                         NNE_CLIENT_MAX_EDITS);
  if (st->saved_cap < n_save)
    st->saved_cap = n_save;
  if (nne_vec_grow_max(&st->out->saved, &st->saved_cap, have + 1,
                       sizeof *st->out->saved,
                       n_save + NNE_CLIENT_MAX_EDITS) != 0)
    return nne__dec_fail(&st->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "out of memory");
  st->n_tensors++;
  return true;
}

/* Before a chunk is decoded into *c: it may come now; its bytes go to the
 * reassembler. */
static bool fwd_chunk_begin(fwd_dec_t *st, nnedit_v1_TensorChunk *c) {
  if (!st->have_result)
    return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                         "a tensor chunk before the ForwardResult");
  if (st->next >= st->n_tensors && st->open_ended && !fwd_open_one(st))
    return false;
  if (st->n_tensors == 0)
    return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                         "a tensor chunk, but no logits were asked for (nor "
                         "any save)");
  if (st->next >= st->n_tensors)
    return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                         "a tensor chunk after the %zu tensors asked for were "
                         "complete",
                         st->n_tensors);
  nne__asm_arm(&st->asm_, c);
  return true;
}

/* A chunk, decoded: checked and fed to the reassembler. */
static bool fwd_chunk_done(fwd_dec_t *st, const nnedit_v1_TensorChunk *c) {
  const char *want;
  bool done;
  /* Tensors come in the order of the result, never interleaved: a chunk
   * names the tensor in progress (an unlisted save of the edit set is
   * named by its first chunk; the reassembler holds the rest to it). */
  want = fwd_tensor_name(st, st->next);
  if (want != NULL && strcmp(c->name, want) != 0)
    return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                         "a chunk of tensor '%.200s', expected '%.200s'",
                         c->name, want);
  if (!nne__asm_feed(&st->asm_, &done, &st->dec))
    return false;
  if (done) {
    if (fwd_is_logits(st, st->next)) {
      nne__asm_take(&st->asm_, &st->out->logits);
      st->out->has_logits = true;
    } else {
      /* saved[] has room for every save entry (allocated up front, and
       * grown for the edit set's when the result listed them, or as each
       * unlisted one began). */
      nne__asm_take(&st->asm_, &st->out->saved[st->out->n_saved++]);
    }
    st->next++;
  }
  return true;
}

/* ForwardResponse.msg: just before a member is decoded (zeroed by nanopb),
 * point its callbacks at us. */
static bool fwd_member_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  fwd_dec_t *st = *arg;
  (void)s;
  st->frame_fields++;
  if (f->tag == nnedit_v1_ForwardResponse_chunk_tag)
    return fwd_chunk_begin(st, f->pData);
  if (st->have_result)
    return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                         "a second ForwardResult in the stream");
  NNE_PB_DEC(((nnedit_v1_ForwardResult *)f->pData)->rows, nne__rep_dec,
             &st->topk.rows);
  NNE_PB_DEC(((nnedit_v1_ForwardResult *)f->pData)->saved, saved_dec, st);
  return true;
}

static int fwd_msg(void *ctx, grpc_byte_buffer *msg, nne_client_err_t *err) {
  fwd_dec_t *st = ctx;
  nnedit_v1_ForwardResponse m;
  char why[128] = "";
  bool ok;
  memset(&m, 0, sizeof m);
  NNE_PB_DEC(m.cb_msg, fwd_member_dec, st);
  st->frame_fields = 0;
  if (!nne_pb_decode_bb(msg, nnedit_v1_ForwardResponse_fields, &m, why,
                        sizeof why)) {
    /* The reassembler's refusal, if it refused, is the reason. */
    nne__asm_refused(&st->asm_, &st->dec);
    return nne__dec_error(&st->dec, M_FORWARD, why, err);
  }
  if (st->frame_fields != 1)
    return nne__err_set(err, NNE_CLIENT_INTERNAL,
                        "Inference/Forward: a ForwardResponse with %u members "
                        "(one expected)",
                        st->frame_fields);
  ok = m.which_msg == nnedit_v1_ForwardResponse_chunk_tag
           ? fwd_chunk_done(st, &m.msg.chunk)
           : fwd_result_done(st, &m.msg.result);
  return ok ? 0 : nne__dec_error(&st->dec, M_FORWARD, "", err);
}

static int forward_check(const nne_client_forward_req_t *req, size_t *max_mask,
                         nne_client_err_t *err) {
  size_t i;
  int rc;
  *max_mask = 0;
  if (req->model == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "forward: model is NULL");
  if (strlen(req->model) >= NNE__FIELD_SIZE(nnedit_v1_ForwardRequest, model))
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "forward: model name longer than %zu bytes",
                        NNE__FIELD_SIZE(nnedit_v1_ForwardRequest, model) - 1);
  if ((rc = nne__rows_check("forward: ", req->rows, req->n_rows, req->mask,
                            req->n_mask, max_mask, err)) < 0)
    return rc;
  if ((int)req->padding < 0 || (int)req->padding > NNE_CLIENT_PAD_RIGHT)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "forward: unknown padding %d", (int)req->padding);
  if ((int)req->logits < 0 || (int)req->logits > NNE_CLIENT_LOGITS_ALL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "forward: unknown logits mode %d", (int)req->logits);
  if (req->n_save > 0 && req->save == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "forward: save is NULL with n_save %zu", req->n_save);
  if ((rc = nne__check_opt_str(
           "forward: edit_set", req->edit_set,
           NNE__FIELD_SIZE(nnedit_v1_ForwardRequest, edit_set), err)) < 0)
    return rc;
  /* A saved tensor comes back named as spelled: the name must fit a
   * TensorChunk's name, whatever the request field would take. */
  for (i = 0; i < req->n_save; i++) {
    if (req->save[i] == NULL)
      return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                          "forward: save[%zu] is NULL", i);
    if (strlen(req->save[i]) >= NNE_CLIENT_NAME_MAX)
      return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                          "forward: save[%zu] '%.64s...' is longer than %d "
                          "bytes, the longest tensor name",
                          i, req->save[i], NNE_CLIENT_NAME_MAX - 1);
  }
  return 0;
}

/* After a stream the server ended with OK: it must have been whole. */
static int fwd_complete(const fwd_dec_t *st, nne_client_err_t *err) {
  const nne_client_forward_req_t *req = st->req;
  const nne_client_forward_result_t *out = st->out;
  int rc;
  if (!st->have_result)
    return nne__err_set(err, NNE_CLIENT_INTERNAL,
                        "Inference/Forward: the stream ended without a "
                        "result");
  if ((rc = nne__asm_end(&st->asm_, M_FORWARD, err)) < 0)
    return rc;
  if (req->logits != NNE_CLIENT_LOGITS_NONE && !out->has_logits)
    return nne__err_set(err, NNE_CLIENT_INTERNAL,
                        "Inference/Forward: logits were asked for and not "
                        "sent");
  if (out->n_saved < req->n_save)
    return nne__err_set(err, NNE_CLIENT_INTERNAL,
                        "Inference/Forward: save[%zu] '%s' was asked for and "
                        "not sent",
                        out->n_saved, req->save[out->n_saved]);
  if (out->n_saved < req->n_save + st->n_extra)
    return nne__err_set(err, NNE_CLIENT_INTERNAL,
                        "Inference/Forward: the edit set's save '%s' was "
                        "listed and not sent",
                        st->extra[out->n_saved - req->n_save]);
  return 0;
}

int nne_client_forward(nne_client_t *cli, const nne_client_forward_req_t *req,
                       nne_client_forward_result_t *out,
                       nne_client_err_t *err) {
  nnedit_v1_ForwardRequest preq = nnedit_v1_ForwardRequest_init_zero;
  nne_pb_str_list_enc_t save_list;
  nne__rows_enc_t enc;
  fwd_dec_t *st;
  size_t max_mask, k;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || req == NULL || out == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "forward: NULL argument");
  if ((rc = forward_check(req, &max_mask, err)) < 0)
    return rc;

  memset(&enc, 0, sizeof enc);
  enc.rows = req->rows;
  enc.mask = req->mask;
  st = calloc(1, sizeof *st);
  /* Room for every saved tensor now, so that a failure halfway leaves
   * nothing that forward_result_free would not find. */
  if (st == NULL ||
      (max_mask > 0 &&
       (enc.tmp = malloc(max_mask * sizeof *enc.tmp)) == NULL) ||
      (req->n_save > 0 &&
       (out->saved = calloc(req->n_save, sizeof *out->saved)) == NULL)) {
    free(st);
    free(enc.tmp);
    nne_client_forward_result_free(out);
    return nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                        "forward: out of memory");
  }
  nne__copy_str(preq.model, sizeof preq.model, req->model);
  nne__rows_enc(&enc, req->n_rows, req->n_mask, &preq.input_ids,
                &preq.attention_mask);
  save_list.v = req->save;
  save_list.n = req->n_save;
  NNE_PB_ENC(preq.save, nne_pb_str_list_enc, &save_list);
  nne__copy_str(preq.edit_set, sizeof preq.edit_set, req->edit_set);
  preq.padding = (nnedit_v1_Padding)req->padding;
  preq.top_k = req->top_k;
  preq.logits = (nnedit_v1_LogitsMode)req->logits;

  st->req = req;
  st->out = out;
  nne__topk_init(&st->topk, &out->rows, &out->n_rows, req->n_rows, req->top_k,
                 &st->dec);
  st->n_tensors = (req->logits != NNE_CLIENT_LOGITS_NONE) + req->n_save;
  nne__asm_init(&st->asm_, cli->max_tensor_bytes);
  rc = nne__stream(cli, M_FORWARD, nnedit_v1_ForwardRequest_fields, &preq,
                   cli->timeout_ms, fwd_msg, st, err);
  if (rc == 0)
    rc = fwd_complete(st, err);
  free(enc.tmp);
  nne__asm_reset(&st->asm_);
  for (k = 0; k < st->n_extra; k++)
    free(st->extra[k]);
  free(st->extra);
  free(st);
  if (rc < 0)
    nne_client_forward_result_free(out);
  return rc;
}

void nne_client_forward_result_free(nne_client_forward_result_t *res) {
  if (res == NULL)
    return;
  nne__rows_free(res->rows, res->n_rows);
  nne_client_tensor_free(&res->logits);
  nne__tensors_free(res->saved, res->n_saved);
  memset(res, 0, sizeof *res);
}

const nne_client_tensor_t *
nne_client_forward_result_saved(const nne_client_forward_result_t *res,
                                const char *name) {
  return res == NULL ? NULL : nne__tensor_find(res->saved, res->n_saved, name);
}
