/* outbox.c — see outbox.h. */
#include "infer/outbox.h"

#include <stdlib.h>
#include <string.h>

#include "base/vec.h"
#include "infer/chunk.h"
#include "nnedit/v1/inference.pb.h"

void nne_outbox_init(nne_outbox_t *ob, uint32_t chunk_tag, size_t chunk_bytes,
                     nne_outbox_result_fn send_result, void *ctx) {
  memset(ob, 0, sizeof *ob);
  ob->chunk_tag = chunk_tag;
  ob->chunk_bytes = chunk_bytes;
  ob->send_result = send_result;
  ob->ctx = ctx;
}

void nne_outbox_free(nne_outbox_t *ob) {
  size_t i;
  for (i = 0; i < ob->n; i++)
    nne_tensor_unref(ob->items[i].t);
  free(ob->items);
  ob->items = NULL;
  ob->n = ob->cap = 0;
}

static int push(nne_outbox_t *ob, const nne_outbox_item_t *it,
                nne_err_t *err) {
  if (NNE_VEC_GROW(&ob->items, &ob->cap, ob->n + 1) != 0)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  ob->items[ob->n++] = *it;
  return 0;
}

int nne_outbox_tensor(nne_outbox_t *ob, const char *name, nne_tensor_t *t,
                      nne_err_t *err) {
  nne_outbox_item_t it;
  const void *p;
  int rc = nne_tensor_host_data(t, &p, err);
  if (rc == 0) {
    memset(&it, 0, sizeof it);
    it.name = name;
    it.t = t;
    it.p = p;
    it.bytes = nne_tensor_nbytes(t);
    rc = push(ob, &it, err);
  }
  if (rc != 0)
    nne_tensor_unref(t);
  return rc;
}

int nne_outbox_result(nne_outbox_t *ob, size_t index, nne_err_t *err) {
  nne_outbox_item_t it;
  memset(&it, 0, sizeof it);
  it.result = true;
  it.index = index;
  return push(ob, &it, err);
}

static void send_next(nne_call_t *call, bool ok) {
  nne_outbox_t *ob = nne_call_user(call);
  nne_outbox_item_t *it;
  grpc_byte_buffer *bb;
  bool done;

  if (!ok || nne_call_cancelled(call))
    return; /* the client went away; the call's free frees the outbox */
  if (ob->next >= ob->n) {
    nne_call_finish(call);
    return;
  }
  it = &ob->items[ob->next];
  if (it->result) {
    ob->next++;
    ob->sent = 0;
    ob->send_result(call, ob->ctx, it->index, send_next);
    return;
  }
  bb = nne_chunk_next(it->name, it->t, it->p, it->bytes, ob->chunk_bytes,
                      ob->chunk_tag, &ob->sent, &done);
  if (bb == NULL) {
    nne_call_fail(call, NNE_EINTERNAL, "cannot encode a tensor chunk header");
    return;
  }
  if (done) {
    ob->next++;
    ob->sent = 0;
  }
  nne_call_send(call, bb, send_next);
}

void nne_outbox_start(nne_outbox_t *ob, nne_call_t *call) {
  ob->next = ob->sent = 0;
  send_next(call, true);
}

size_t nne_outbox_names(const nne_outbox_t *ob, size_t from, size_t to,
                        const char **names) {
  size_t i, n = 0;
  for (i = from; i < to && i < ob->n; i++)
    if (!ob->items[i].result)
      names[n++] = ob->items[i].name;
  return n;
}

/* ---- top-k rows ----------------------------------------------------------- */

struct nne_outbox_row {
  const nne_outbox_rows_t *rows;
  int64_t row;
};

static bool fill_score(void *ctx, size_t i, void *msg) {
  const struct nne_outbox_row *rc = ctx;
  const nne_outbox_rows_t *r = rc->rows;
  nnedit_v1_TokenScore *ts = msg;
  size_t k = (size_t)rc->row * (size_t)r->top_k + i;
  ts->token_id = r->pass->tk_ids_p[k];
  ts->logit = r->pass->tk_vals_p[k];
  ts->prob = r->pass->tk_probs_p[k];
  if (r->pass->tk_text != NULL)
    NNE_PB_ENC(ts->text, nne_pb_str_enc, r->pass->tk_text[k]);
  return true;
}

static bool fill_row(void *ctx, size_t i, void *msg) {
  nne_outbox_rows_t *r = ctx;
  nnedit_v1_RowTopK *row = msg;
  row->position = (uint32_t)r->last_pos[i];
  if (r->top_k > 0)
    NNE_PB_ENC(row->top, nne_pb_list_enc, &r->tops[i]);
  return true;
}

int nne_outbox_rows_init(nne_outbox_rows_t *r, const nne_infer_pass_t *pass,
                         const int64_t *last_pos, int64_t rows, int top_k,
                         nne_err_t *err) {
  int64_t b;
  memset(r, 0, sizeof *r);
  r->pass = pass;
  r->last_pos = last_pos;
  r->top_k = top_k;
  if (top_k > 0) {
    r->tops = calloc((size_t)rows ? (size_t)rows : 1, sizeof *r->tops);
    r->row_ctx = calloc((size_t)rows ? (size_t)rows : 1, sizeof *r->row_ctx);
    if (r->tops == NULL || r->row_ctx == NULL) {
      nne_outbox_rows_free(r);
      return nne_err_set(err, NNE_ENOMEM, "out of memory building the reply");
    }
    for (b = 0; b < rows; b++) {
      r->row_ctx[b].rows = r;
      r->row_ctx[b].row = b;
      r->tops[b].n = (size_t)top_k;
      r->tops[b].fill = fill_score;
      r->tops[b].ctx = &r->row_ctx[b];
      r->tops[b].msg_size = sizeof(nnedit_v1_TokenScore);
    }
  }
  r->list.n = (size_t)rows;
  r->list.fill = fill_row;
  r->list.ctx = r;
  r->list.msg_size = sizeof(nnedit_v1_RowTopK);
  return 0;
}

void nne_outbox_rows_free(nne_outbox_rows_t *r) {
  free(r->tops);
  free(r->row_ctx);
  r->tops = NULL;
  r->row_ctx = NULL;
}
