/* forward.c — nnedit.v1.Inference/Forward: decode the request (rows into
 * bounded arrays, save sites as strings), check its options, hand it to the
 * inference pipeline (infer/forward.h), encode the ForwardResult. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/batch.h"
#include "infer/forward.h"
#include "base/log.h"
#include "nnedit/v1/inference.pb.h"
#include "rpc/rpc.h"


/* ---- the result ------------------------------------------------------------
 */

static int send_result(nne_call_t *call, void *ctx, size_t index,
                       void (*on_sent)(nne_call_t *, bool)) {
  nne_infer_forward_t *fj = ctx;
  nnedit_v1_ForwardResponse resp = nnedit_v1_ForwardResponse_init_zero;
  nnedit_v1_ForwardResult *r = &resp.msg.result;
  nne_pb_str_list_enc_t saved = {NULL, 0};
  nne_outbox_rows_t rows;
  const char **names;
  nne_err_t err;
  int rc;

  (void)index;
  resp.which_msg = nnedit_v1_ForwardResponse_result_tag;
  r->batch = (uint32_t)fj->batch.B;
  r->seq_len = (uint32_t)fj->batch.S;
  if (nne_outbox_rows_init(&rows, &fj->pass, fj->batch.last_pos, fj->batch.B,
                           fj->top_k, &err) != 0) {
    nne_call_fail_err(call, &err);
    return -1;
  }
  NNE_PB_ENC(r->rows, nne_pb_list_enc, &rows.list);
  r->has_timing = true;
  r->timing.queue_ms = fj->queue_ms;
  r->timing.compute_ms = fj->compute_ms;
  r->timing.total_ms = (double)(nne_now_ns() - nne_call_start_ns(call)) / 1e6;
  if (fj->logits_mode != NNE_LOGITS_NONE)
    snprintf(r->logits_tensor, sizeof r->logits_tensor, "logits");
  /* Every tensor that follows the logits: the request's saves, then the
   * edit set's SAVE edits. */
  names = calloc(fj->ob.n ? fj->ob.n : 1, sizeof *names);
  if (names == NULL) {
    nne_outbox_rows_free(&rows);
    nne_call_fail(call, NNE_ENOMEM, "out of memory building the reply");
    return -1;
  }
  saved.n = nne_outbox_names(&fj->ob, fj->logits_mode != NNE_LOGITS_NONE ? 2 : 1,
                             fj->ob.n, names);
  saved.v = names;
  NNE_PB_ENC(r->saved, nne_pb_str_list_enc, &saved);
  rc = nne_call_send_msg(call, nnedit_v1_ForwardResponse_fields, &resp,
                         on_sent);
  /* Encoding is synchronous: the contexts are no longer used. */
  nne_outbox_rows_free(&rows);
  free(names);
  return rc;
}

/* ---- the handler -----------------------------------------------------------
 */

/* Everything a ForwardRequest decodes into, with its bounds. */
typedef struct fwd_dec {
  nnedit_v1_ForwardRequest in;
  nne_rows_dec_t ids, mask;
  nne_pb_str_list_dec_t saves;
} fwd_dec_t;

static void fwd_dec_init(fwd_dec_t *fd, const nne_config_t *cfg) {
  memset(fd, 0, sizeof *fd);
  /* Every value takes at least one byte on the wire, so the message limit
   * already bounds these; the per-model limits are checked after decoding,
   * when the model (which may come last on the wire) is known. */
  nne_rows_dec_init(&fd->ids, nnedit_v1_TokenRow_ids_tag, cfg->max_batch,
                    cfg->max_message_bytes);
  nne_rows_dec_init(&fd->mask, nnedit_v1_MaskRow_values_tag, cfg->max_batch,
                    cfg->max_message_bytes);
  fd->saves.max = 256;
  fd->saves.max_len = 255; /* it names a streamed tensor: TensorChunk.name */
  NNE_PB_DEC(fd->in.input_ids, nne_rows_dec_cb, &fd->ids);
  NNE_PB_DEC(fd->in.attention_mask, nne_rows_dec_cb, &fd->mask);
  NNE_PB_DEC(fd->in.save, nne_pb_str_list_dec, &fd->saves);
}

/* Why a decode stopped: a bound of ours, else nanopb's `why`. */
static void fwd_dec_error(const fwd_dec_t *fd, const nne_config_t *cfg,
                          const char *why, nne_err_t *err) {
  if (fd->saves.overflow)
    nne_err_set(err, NNE_ERESOURCE,
                "save: more than %zu sites, or a site name longer than %zu",
                fd->saves.max, fd->saves.max_len);
  else if (fd->ids.text_too_big)
    nne_err_set(err, NNE_ERESOURCE,
                "input_ids: a text row over %zu bytes, or texts over the "
                "message limit",
                NNE_ROW_TEXT_MAX);
  else if (fd->ids.overflow || fd->mask.overflow)
    nne_err_set(err, NNE_ERESOURCE, "%s: more than %u rows (--max-batch)",
                fd->ids.overflow ? "input_ids" : "attention_mask",
                cfg->max_batch);
  else
    nne_err_set(err, NNE_EINVAL, "malformed ForwardRequest: %s", why);
}

static void fwd_dec_free(fwd_dec_t *fd) {
  nne_rows_free(&fd->ids);
  nne_rows_free(&fd->mask);
  nne_pb_str_list_free(&fd->saves);
}

int nne_rpc_forward_decode(const nne_config_t *cfg, const uint8_t *buf,
                           size_t len, nne_err_t *err) {
  pb_istream_t s = pb_istream_from_buffer(buf, len);
  fwd_dec_t fd;
  int rc = 0;
  fwd_dec_init(&fd, cfg);
  if (!pb_decode(&s, nnedit_v1_ForwardRequest_fields, &fd.in)) {
    fwd_dec_error(&fd, cfg, PB_GET_ERROR(&s), err);
    rc = err->code;
  }
  fwd_dec_free(&fd);
  return rc;
}

void nne_rpc_inference_forward(nne_call_t *call, grpc_byte_buffer *req) {
  nne_daemon_t *d = nne_call_app(call);
  const nne_config_t *cfg = d->cfg;
  fwd_dec_t fd;
  nne_batch_group_t group = {0};
  nne_infer_forward_t *f = NULL;
  nne_err_t err;
  char why[256];
  int rc;

  fwd_dec_init(&fd, cfg);
  if (!nne_pb_decode_bb(req, nnedit_v1_ForwardRequest_fields, &fd.in, why,
                        sizeof why)) {
    fwd_dec_error(&fd, cfg, why, &err);
    goto fail;
  }
  f = nne_infer_forward_new(d, call, send_result,
                            nnedit_v1_ForwardResponse_chunk_tag);
  if (f == NULL) {
    nne_err_set(&err, NNE_ENOMEM, "out of memory");
    goto fail;
  }
  nne_call_set_model(call, fd.in.model);
  rc = nne_infer_forward_hold(f, fd.in.model, fd.in.edit_set, &err);
  if (rc == 0)
    rc = nne_rpc_check_options(fd.in.padding, fd.in.logits, fd.in.top_k,
                               f->hold.entry, &err);
  if (rc == 0) {
    group.ids = &fd.ids;
    group.mask = &fd.mask;
    group.prefix = "";
    /* The save names go to the request (they name its tensors). */
    rc = nne_infer_forward_prepare(f, &group, (int)fd.in.padding,
                                   (int)fd.in.top_k,
                                   (nne_logits_mode_t)fd.in.logits,
                                   fd.saves.v, fd.saves.n, &err);
    fd.saves.v = NULL;
    fd.saves.n = fd.saves.cap = 0;
  }
  if (rc == 0)
    rc = nne_infer_forward_submit(f, &err);
  if (rc != 0)
    goto fail;
  fwd_dec_free(&fd);
  return;
fail:
  fwd_dec_free(&fd);
  nne_infer_forward_free(f);
  nne_call_fail_err(call, &err);
}
