/* forward.c — nnedit.v1.Inference/Forward.
 *
 * On the loop: decode (rows into bounded arrays, save sites as strings),
 * check every field against the model, pad the rows into one [B, S] batch,
 * hold the model and the edit set, plan the backend for the set's hooks plus
 * the saved sites (infer/backend.h). On the compute executor: the backend
 * is made ready (built once per structure), one pass runs (infer/pass.h)
 * with the request's hooks (edit/runtime.h), and the outbox is filled: the
 * result, the logits when asked, the saves, the edit set's SAVE edits.
 * Back on the loop the backend is cached and the outbox streams.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/backend.h"
#include "infer/batch.h"
#include "infer/hold.h"
#include "infer/outbox.h"
#include "infer/pass.h"
#include "log.h"
#include "nnedit/v1/inference.pb.h"
#include "rpc/rpc.h"

#define NNE_TOP_K_MAX 1000

typedef struct fwd_job {
  nne_outbox_t ob;        /* first: the call's user data is the job */
  nne_job_t job;
  nne_daemon_t *d;
  nne_call_t *call;
  nne_infer_hold_t hold;
  nne_batch_t batch;
  int top_k;
  nne_logits_mode_t logits_mode;
  /* Saves: each request entry (as spelled) and the view it asks for. */
  size_t n_saves;
  char **save_names;      /* owned: they name streamed tensors */
  nne_names_view_t *save_view;
  int n_heads;
  bool use_backend;       /* saves or an edit set: hooks are needed */
  nne_infer_backend_t bk;
  nne_runtime_t rt;
  nne_infer_pass_t pass;
  int rc;
  nne_err_t err;
  double queue_ms, compute_ms;
} fwd_job_t;

static void fwd_job_free(fwd_job_t *fj) {
  size_t i;
  nne_outbox_free(&fj->ob);
  nne_infer_pass_free(&fj->pass);
  nne_runtime_free(&fj->rt);
  nne_batch_free(&fj->batch);
  for (i = 0; i < fj->n_saves; i++)
    free(fj->save_names[i]);
  free(fj->save_names);
  free(fj->save_view);
  free(fj);
}

/* Frees the job from the loop: the backend and the hold need the daemon. */
static void fwd_job_end(fwd_job_t *fj) {
  if (fj->hold.entry != NULL)
    nne_infer_backend_free(&fj->bk, fj->hold.entry);
  nne_infer_release(&fj->hold, fj->d);
}

/* ---- the job ---------------------------------------------------------------
 */

/* The outbox after the result: logits, saves, the set's SAVE edits. */
static int fill_outbox(fwd_job_t *fj) {
  nne_edit_set_t *set = fj->hold.set;
  nne_tensor_t *lo = nne_infer_pass_logits_out(&fj->pass);
  size_t i;
  int rc = nne_outbox_result(&fj->ob, 0, &fj->err);

  if (rc == 0 && lo != NULL)
    rc = nne_outbox_tensor(&fj->ob, "logits", nne_tensor_ref(lo), &fj->err);
  for (i = 0; rc == 0 && i < fj->n_saves; i++) {
    nne_tensor_t *t = fj->rt.captured[nne_infer_backend_site_hook(&fj->bk, i)];
    const nne_names_view_t *vw = &fj->save_view[i];
    if (t == NULL)
      return nne_err_set(&fj->err, NNE_ESTATE,
                         "save[%zu] '%s': the site did not run in this "
                         "forward",
                         i, fj->save_names[i]);
    if (vw->parts > 0) {
      nne_tensor_t *part;
      rc = nne_tensor_split_last(t, vw->parts, vw->part,
                                 vw->heads_view ? fj->n_heads : 0, &part,
                                 &fj->err);
      if (rc != 0) {
        nne_err_prefix(&fj->err, "save[%zu] '%s'", i, fj->save_names[i]);
        return rc;
      }
      rc = nne_outbox_tensor(&fj->ob, fj->save_names[i], part, &fj->err);
    } else {
      rc = nne_outbox_tensor(&fj->ob, fj->save_names[i], nne_tensor_ref(t),
                             &fj->err);
    }
  }
  /* Then the edit set's SAVE edits, in edit order. */
  for (i = 0; rc == 0 && set != NULL && i < set->n_edits; i++) {
    const nne_edit_t *ed = &set->edits[i];
    if (ed->op != NNE_EDIT_SAVE)
      continue;
    if (fj->rt.edit_saves[i] == NULL)
      return nne_err_set(&fj->err, NNE_ESTATE,
                         "edit_set %s: edits[%zu] '%s': the site did not "
                         "run in this forward",
                         set->id, i, ed->site_text);
    rc = nne_outbox_tensor(&fj->ob, ed->name,
                           nne_tensor_ref(fj->rt.edit_saves[i]), &fj->err);
  }
  return rc;
}

static void fwd_work(nne_job_t *job) {
  fwd_job_t *fj = (fwd_job_t *)((char *)job - offsetof(fwd_job_t, job));

  if (nne_call_cancelled(fj->call)) {
    /* The client is gone or out of time: don't spend the device on it. */
    fj->rc = nne_err_set(&fj->err, NNE_ECANCELED, "cancelled before it ran");
    return;
  }
  if (fj->use_backend &&
      (fj->rc = nne_infer_backend_ready(&fj->bk, fj->hold.model, &fj->err)) !=
          0) {
    nne_err_prefix(&fj->err, "compiling the backend");
    return;
  }
  fj->pass.batch = &fj->batch;
  fj->pass.model = fj->hold.model;
  fj->pass.variant = fj->use_backend ? fj->bk.variant : NULL;
  fj->pass.hook = nne_runtime_hook;
  fj->pass.hook_ctx = &fj->rt;
  fj->pass.top_k = fj->top_k;
  fj->pass.logits_mode = fj->logits_mode;
  fj->rc = nne_infer_pass_run(&fj->pass, &fj->err);
  if (fj->rc != 0 && fj->rt.err.code != 0)
    fj->err = fj->rt.err; /* our reason beats the engine's relay */
  if (fj->rc == 0)
    fj->rc = fill_outbox(fj);
}

/* ---- the result ------------------------------------------------------------
 */

static int send_result(nne_call_t *call, void *ctx, size_t index,
                       void (*on_sent)(nne_call_t *, bool)) {
  fwd_job_t *fj = ctx;
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

static void fwd_done(nne_job_t *job) {
  fwd_job_t *fj = (fwd_job_t *)((char *)job - offsetof(fwd_job_t, job));
  nne_call_t *call = fj->call;

  fj->queue_ms = (double)(job->t_start_ns - job->t_submit_ns) / 1e6;
  fj->compute_ms = (double)(job->t_end_ns - job->t_start_ns) / 1e6;
  if (fj->use_backend)
    nne_infer_backend_commit(&fj->bk, fj->hold.entry);
  /* The stream needs nothing of the model or the set: their tensors are
   * referenced by the outbox. */
  fwd_job_end(fj);
  if (nne_call_cancelled(call)) {
    nne_log_debug("Forward: client gone after %.1f ms of compute",
                  fj->compute_ms);
  } else if (fj->rc != 0) {
    nne_call_fail_err(call, &fj->err);
  } else {
    /* The call owns the job from here: the stream reads from it. */
    nne_call_set_user(call, fj, (void (*)(void *))fwd_job_free);
    nne_outbox_start(&fj->ob, call);
    nne_call_unref(call); /* the job's reference */
    return;
  }
  nne_call_unref(call);
  fwd_job_free(fj);
}

/* ---- validation -----------------------------------------------------------
 */

static int check_request(const nnedit_v1_ForwardRequest *in,
                         const nne_rows_dec_t *ids, const nne_rows_dec_t *mask,
                         const nne_model_entry_t *e, nne_err_t *err) {
  nne_batch_group_t group;

  if (in->padding < nnedit_v1_Padding_PADDING_NONE ||
      in->padding > nnedit_v1_Padding_PADDING_RIGHT)
    return nne_err_set(err, NNE_EINVAL, "padding: unknown value %d",
                       (int)in->padding);
  if (in->logits < nnedit_v1_LogitsMode_LOGITS_NONE ||
      in->logits > nnedit_v1_LogitsMode_LOGITS_ALL)
    return nne_err_set(err, NNE_EINVAL, "logits: unknown value %d",
                       (int)in->logits);
  if (in->top_k > NNE_TOP_K_MAX)
    return nne_err_set(err, NNE_EINVAL, "top_k: %u is more than %d", in->top_k,
                       NNE_TOP_K_MAX);
  if ((int64_t)in->top_k > e->vocab_size)
    return nne_err_set(err, NNE_EINVAL,
                       "top_k: %u is more than the vocabulary (%" PRId64 ")",
                       in->top_k, e->vocab_size);
  group.ids = ids;
  group.mask = mask;
  group.prefix = "";
  return nne_batch_check(&group, 1, "input_ids", (int)in->padding, e, err);
}

/* Resolves the saves and plans the backend (the edit set's hooks plus the
 * saved sites), then the per-request runtime. */
static int prepare_hooks(fwd_job_t *fj, nne_pb_str_list_dec_t *saves,
                         uint64_t budget, nne_err_t *err) {
  nne_model_entry_t *e = fj->hold.entry;
  size_t i, n = saves->n;
  nne_names_site_t *rs = NULL;
  char field[32];
  int rc = 0;

  if (n == 0 && fj->hold.set == NULL)
    return 0;
  fj->use_backend = true;
  if (n > 0 && e->names == NULL)
    return nne_err_set(err, NNE_ESTATE, "save: model '%s' has no names",
                       e->name);
  fj->save_names = saves->v; /* the job owns the names: they name tensors */
  fj->n_saves = n;
  saves->v = NULL;
  saves->n = saves->cap = 0;
  fj->save_view = calloc(n ? n : 1, sizeof *fj->save_view);
  rs = calloc(n ? n : 1, sizeof *rs);
  if (fj->save_view == NULL || rs == NULL) {
    free(rs);
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  for (i = 0; rc == 0 && i < n; i++) {
    snprintf(field, sizeof field, "save[%zu]", i);
    rc = nne_names_resolve_site(e->names, field, fj->save_names[i], &rs[i],
                                err);
    fj->save_view[i] = rs[i].view;
  }
  if (rc == 0)
    rc = nne_infer_backend_plan(&fj->bk, e, fj->hold.model, fj->hold.set, rs,
                                n, err);
  free(rs);
  if (rc != 0)
    return rc;
  rc = nne_infer_backend_runtime(&fj->bk, fj->hold.set, &fj->rt, err);
  if (rc != 0)
    return rc;
  for (i = 0; i < n; i++)
    fj->rt.capture[nne_infer_backend_site_hook(&fj->bk, i)] = true;
  fj->rt.cancel = nne_call_cancel_flag(fj->call);
  fj->rt.budget = budget;
  fj->n_heads = (int)e->spec.n_heads;
  return 0;
}

void nne_rpc_inference_forward(nne_call_t *call, grpc_byte_buffer *req) {
  nne_daemon_t *d = nne_call_app(call);
  const nne_config_t *cfg = d->cfg;
  nnedit_v1_ForwardRequest in = nnedit_v1_ForwardRequest_init_zero;
  nne_rows_dec_t ids, mask;
  nne_pb_str_list_dec_t saves;
  nne_batch_group_t group;
  fwd_job_t *fj = NULL;
  nne_model_entry_t *e;
  nne_err_t err;
  char why[256];
  uint64_t out_bytes = 0;
  int rc;

  /* Every value takes at least one byte on the wire, so the message limit
   * already bounds these; the per-model limits are checked after decoding,
   * when the model (which may come last on the wire) is known. */
  nne_rows_dec_init(&ids, nnedit_v1_TokenRow_ids_tag, cfg->max_batch,
                    cfg->max_message_bytes);
  nne_rows_dec_init(&mask, nnedit_v1_MaskRow_values_tag, cfg->max_batch,
                    cfg->max_message_bytes);
  memset(&saves, 0, sizeof saves);
  saves.max = 256;
  saves.max_len = 255; /* it names a streamed tensor: TensorChunk.name */
  NNE_PB_DEC(in.input_ids, nne_rows_dec_cb, &ids);
  NNE_PB_DEC(in.attention_mask, nne_rows_dec_cb, &mask);
  NNE_PB_DEC(in.save, nne_pb_str_list_dec, &saves);
  if (!nne_pb_decode_bb(req, nnedit_v1_ForwardRequest_fields, &in, why,
                        sizeof why)) {
    if (saves.overflow)
      nne_err_set(&err, NNE_ERESOURCE,
                  "save: more than %zu sites, or a site name longer than %zu",
                  saves.max, saves.max_len);
    else if (ids.overflow || mask.overflow)
      nne_err_set(&err, NNE_ERESOURCE, "%s: more than %u rows (--max-batch)",
                  ids.overflow ? "input_ids" : "attention_mask",
                  cfg->max_batch);
    else
      nne_err_set(&err, NNE_EINVAL, "malformed ForwardRequest: %s", why);
    goto fail;
  }
  fj = calloc(1, sizeof *fj);
  if (fj == NULL) {
    nne_err_set(&err, NNE_ENOMEM, "out of memory");
    goto fail;
  }
  fj->d = d;
  fj->call = call; /* the runtime polls its cancel flag */
  nne_outbox_init(&fj->ob, nnedit_v1_ForwardResponse_chunk_tag,
                  cfg->chunk_bytes, send_result, fj);
  rc = nne_infer_hold(&fj->hold, d, in.model, in.edit_set, &err);
  e = fj->hold.entry;
  if (rc == 0)
    rc = check_request(&in, &ids, &mask, e, &err);
  if (rc == 0) {
    group.ids = &ids;
    group.mask = &mask;
    group.prefix = "";
    rc = nne_batch_build(&fj->batch, &group, 1, (int)in.padding,
                         e->pad_token_id, &err);
  }
  if (rc == 0) {
    if (in.logits == nnedit_v1_LogitsMode_LOGITS_LAST)
      out_bytes = (uint64_t)fj->batch.B * (uint64_t)e->vocab_size * 4u;
    else if (in.logits == nnedit_v1_LogitsMode_LOGITS_ALL)
      out_bytes = (uint64_t)fj->batch.B * (uint64_t)fj->batch.S *
                  (uint64_t)e->vocab_size * nne_dtype_size(e->dtype);
    if (out_bytes > cfg->max_response_bytes)
      rc = nne_err_set(&err, NNE_ERESOURCE,
                       "logits: %" PRIu64 " bytes exceed the response limit "
                       "of %" PRIu64 " bytes (--max-response-bytes)",
                       out_bytes, cfg->max_response_bytes);
  }
  if (rc == 0)
    rc = prepare_hooks(fj, &saves, cfg->max_response_bytes - out_bytes, &err);
  if (rc != 0)
    goto fail;
  fj->job.work = fwd_work;
  fj->job.done = fwd_done;
  fj->top_k = (int)in.top_k;
  fj->logits_mode = (nne_logits_mode_t)in.logits;
  nne_call_ref(call); /* the job's reference */
  if (nne_executor_submit(&d->compute, &fj->job, &err) != 0) {
    nne_call_unref(call);
    goto fail;
  }
  nne_rows_free(&ids);
  nne_rows_free(&mask);
  nne_pb_str_list_free(&saves);
  return;
fail:
  nne_rows_free(&ids);
  nne_rows_free(&mask);
  nne_pb_str_list_free(&saves);
  if (fj != NULL) {
    fwd_job_end(fj);
    fwd_job_free(fj);
  }
  nne_call_fail_err(call, &err);
}
