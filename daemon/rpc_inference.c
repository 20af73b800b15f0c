/* rpc_inference.c — nnedit.v1.Inference/Forward.
 *
 * The request is decoded and checked on the loop thread (rows, lengths,
 * vocabulary, mask, limits), padded into [B, S] arrays, and handed to the
 * compute executor. The job runs the forward, picks each row's last real
 * position, computes top-k, and prepares the logits' host bytes. Back on the
 * loop, the reply streams: one ForwardResponse{result}, then, when asked, the
 * "logits" tensor in TensorChunk messages whose payload is sent zero-copy
 * from the tensor's memory (the slice holds a tensor reference), one message
 * in flight at a time.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/slice.h>

#include "batch.h"
#include "chunk.h"
#include "base/log.h"
#include "nnedit/v1/inference.pb.h"
#include "rpc.h"
#include "runtime.h"

#define NNE_TOP_K_MAX 1000

/* ---- the job --------------------------------------------------------------
 */

typedef struct fwd_job {
  nne_job_t job;
  nne_server_t *srv;
  nne_call_t *call;
  nne_model_entry_t *entry;
  nne_model_t *model;
  /* inputs, [B, S] padded */
  int64_t B, S;
  int64_t *ids;
  int64_t *mask;     /* NULL when no row is padded and no mask was given */
  int64_t *last_pos; /* B: each row's last real position */
  int top_k;
  int logits_mode;
  /* results */
  int rc;
  nne_err_t err;
  nne_tensor_t *tk_ids, *tk_vals, *tk_probs;
  const int64_t *tk_ids_p;
  const float *tk_vals_p, *tk_probs_p;
  /* Saves: each request entry (as spelled) and the hook it reads. */
  size_t n_saves;
  char **save_names; /* owned */
  int *save_hook;    /* hook id per save */
  nne_names_view_t *save_view;
  int n_heads;
  /* The edit set it runs on (held: in_flight), or NULL. */
  nne_edit_set_t *set;
  int *set_edit_hook; /* per edit of the set: its hook in `plan` */
  /* The backend: planned from the set's sites and the saves. */
  nne_compile_plan_t plan;
  bool own_plan;          /* plan is ours (else it is the set's) */
  nne_variant_t *variant; /* from the cache or the set, or built here */
  bool variant_built;     /* built by the job: the loop caches it */
  double build_ms;
  bool use_variant;
  nne_runtime_t rt; /* the per-request hook context */
  uint64_t budget;  /* response bytes left for saves */
  /* The tensors to stream, in order: logits (if asked), then the saves. */
  size_t n_outs;
  struct fwd_out {
    const char *name; /* borrowed: "logits" or a save name */
    nne_tensor_t *t;
    const uint8_t *p;
    size_t bytes;
  } * outs;
  size_t out_i, sent;
  /* encoding state for the result message */
  nne_pb_list_enc_t *row_tops;
  double queue_ms, compute_ms;
} fwd_job_t;

static void fwd_job_free(fwd_job_t *fj) {
  size_t i;
  free(fj->ids);
  free(fj->mask);
  free(fj->last_pos);
  free(fj->row_tops);
  nne_tensor_unref(fj->tk_ids);
  nne_tensor_unref(fj->tk_vals);
  nne_tensor_unref(fj->tk_probs);
  for (i = 0; i < fj->n_outs; i++)
    nne_tensor_unref(fj->outs[i].t);
  free(fj->outs);
  for (i = 0; i < fj->n_saves; i++)
    free(fj->save_names[i]);
  free(fj->save_names);
  free(fj->save_hook);
  free(fj->save_view);
  free(fj->set_edit_hook);
  if (fj->own_plan)
    nne_compiler_plan_free(&fj->plan);
  nne_runtime_free(&fj->rt);
  nne_variant_unref(fj->variant);
  free(fj);
}

static int add_out(fwd_job_t *fj, const char *name, nne_tensor_t *t) {
  const void *p;
  int rc = nne_tensor_host_data(t, &p, &fj->err);
  if (rc != 0) {
    nne_tensor_unref(t);
    return rc;
  }
  fj->outs[fj->n_outs].name = name;
  fj->outs[fj->n_outs].t = t;
  fj->outs[fj->n_outs].p = p;
  fj->outs[fj->n_outs].bytes = nne_tensor_nbytes(t);
  fj->n_outs++;
  return 0;
}

static void fwd_work(nne_job_t *job) {
  fwd_job_t *fj = (fwd_job_t *)job;
  nne_tensor_t *ids = NULL, *mask = NULL, *logits = NULL, *last = NULL;
  int64_t shape[2] = {fj->B, fj->S};
  const void *p;
  size_t i;

  if (nne_call_cancelled(fj->call)) {
    /* The client is gone or out of time: don't spend the device on it. */
    fj->rc = nne_err_set(&fj->err, NNE_ECANCELED, "cancelled before it ran");
    return;
  }
  fj->rc =
      nne_tensor_from_host(NNE_DTYPE_I64, shape, 2, fj->ids, &ids, &fj->err);
  if (fj->rc == 0 && fj->mask != NULL)
    fj->rc = nne_tensor_from_host(NNE_DTYPE_I64, shape, 2, fj->mask, &mask,
                                  &fj->err);
  if (fj->rc == 0 && fj->use_variant && fj->variant == NULL) {
    uint64_t t0 = nne_now_ns();
    fj->rc = nne_variant_build(fj->model, fj->plan.engine_sites,
                               fj->plan.n_hooks, &fj->variant, &fj->err);
    fj->build_ms = (double)(nne_now_ns() - t0) / 1e6;
    fj->variant_built = fj->rc == 0;
  }
  if (fj->rc == 0 && fj->use_variant) {
    fj->rc = nne_variant_forward(fj->variant, ids, mask, nne_runtime_hook,
                                 &fj->rt, &logits, &fj->err);
    if (fj->rc != 0 && fj->rt.err.code != 0)
      fj->err = fj->rt.err; /* our reason beats the engine's relay */
  } else if (fj->rc == 0) {
    fj->rc = nne_model_forward(fj->model, ids, mask, &logits, &fj->err);
  }
  if (fj->rc == 0 &&
      (fj->top_k > 0 || fj->logits_mode == nnedit_v1_LogitsMode_LOGITS_LAST))
    fj->rc = nne_tensor_select_positions(logits, fj->last_pos, &last, &fj->err);
  if (fj->rc == 0 && fj->top_k > 0) {
    fj->rc = nne_tensor_topk(last, fj->top_k, &fj->tk_ids, &fj->tk_vals,
                             &fj->tk_probs, &fj->err);
    if (fj->rc == 0)
      fj->rc = nne_tensor_host_data(fj->tk_ids, &p, &fj->err);
    if (fj->rc == 0) {
      fj->tk_ids_p = p;
      fj->rc = nne_tensor_host_data(fj->tk_vals, &p, &fj->err);
    }
    if (fj->rc == 0) {
      fj->tk_vals_p = p;
      fj->rc = nne_tensor_host_data(fj->tk_probs, &p, &fj->err);
    }
    if (fj->rc == 0)
      fj->tk_probs_p = p;
  }
  /* Host bytes now, on the executor, so the loop only hands out slices. */
  if (fj->rc == 0 && fj->logits_mode != nnedit_v1_LogitsMode_LOGITS_NONE)
    fj->rc = add_out(
        fj, "logits",
        nne_tensor_ref(fj->logits_mode == nnedit_v1_LogitsMode_LOGITS_LAST
                           ? last
                           : logits));
  for (i = 0; fj->rc == 0 && i < fj->n_saves; i++) {
    nne_tensor_t *t = fj->rt.captured[fj->save_hook[i]];
    const nne_names_view_t *vw = &fj->save_view[i];
    if (t == NULL) {
      fj->rc = nne_err_set(&fj->err, NNE_ESTATE,
                           "save[%zu] '%s': the site did not run in this "
                           "forward",
                           i, fj->save_names[i]);
      break;
    }
    if (vw->parts > 0) {
      nne_tensor_t *part;
      fj->rc = nne_tensor_split_last(t, vw->parts, vw->part,
                                     vw->heads_view ? fj->n_heads : 0, &part,
                                     &fj->err);
      if (fj->rc != 0) {
        nne_err_prefix(&fj->err, "save[%zu] '%s'", i, fj->save_names[i]);
        break;
      }
      fj->rc = add_out(fj, fj->save_names[i], part);
    } else {
      fj->rc = add_out(fj, fj->save_names[i], nne_tensor_ref(t));
    }
  }
  /* Then the edit set's SAVE edits, in edit order. */
  for (i = 0; fj->rc == 0 && fj->set != NULL && i < fj->set->n_edits; i++) {
    const nne_edit_t *ed = &fj->set->edits[i];
    if (ed->op != NNE_EDIT_SAVE)
      continue;
    if (fj->rt.edit_saves[i] == NULL) {
      fj->rc = nne_err_set(&fj->err, NNE_ESTATE,
                           "edit_set %s: edits[%zu] '%s': the site did not "
                           "run in this forward",
                           fj->set->id, i, ed->site_text);
      break;
    }
    fj->rc = add_out(fj, ed->name, nne_tensor_ref(fj->rt.edit_saves[i]));
  }
  nne_tensor_unref(ids);
  nne_tensor_unref(mask);
  nne_tensor_unref(logits);
  nne_tensor_unref(last);
}

/* ---- streaming the reply --------------------------------------------------
 */

typedef struct row_ctx {
  fwd_job_t *fj;
  int64_t row;
} row_ctx_t;

static bool fill_score(void *ctx, size_t i, void *msg) {
  row_ctx_t *rc = ctx;
  fwd_job_t *fj = rc->fj;
  nnedit_v1_TokenScore *ts = msg;
  size_t k = (size_t)rc->row * (size_t)fj->top_k + i;
  ts->token_id = fj->tk_ids_p[k];
  ts->logit = fj->tk_vals_p[k];
  ts->prob = fj->tk_probs_p[k];
  return true;
}

static bool fill_row(void *ctx, size_t i, void *msg) {
  fwd_job_t *fj = ctx;
  nnedit_v1_RowTopK *row = msg;
  row->position = (uint32_t)fj->last_pos[i];
  if (fj->top_k > 0)
    NNE_PB_ENC(row->top, nne_pb_list_enc, &fj->row_tops[i]);
  return true;
}

static void send_next_chunk(nne_call_t *call, bool ok);

static void chunk_sent(nne_call_t *call, bool ok) {
  send_next_chunk(call, ok);
}

static void send_next_chunk(nne_call_t *call, bool ok) {
  fwd_job_t *fj = call->user;
  grpc_byte_buffer *bb;
  struct fwd_out *o;
  bool done;

  if (!ok || nne_call_cancelled(call))
    return; /* the client went away; the call's free releases the job */
  if (fj->out_i >= fj->n_outs) {
    nne_call_finish(call);
    return;
  }
  o = &fj->outs[fj->out_i];
  bb = nne_chunk_next(o->name, o->t, o->p, o->bytes,
                      call->srv->cfg->chunk_bytes,
                      nnedit_v1_ForwardResponse_chunk_tag, &fj->sent, &done);
  if (bb == NULL) {
    nne_call_fail(call, NNE_EINTERNAL, "cannot encode a tensor chunk header");
    return;
  }
  if (done) {
    fj->out_i++;
    fj->sent = 0;
  }
  nne_call_send(call, bb, chunk_sent);
}

static void send_result(nne_call_t *call, fwd_job_t *fj) {
  nnedit_v1_ForwardResponse resp = nnedit_v1_ForwardResponse_init_zero;
  nnedit_v1_ForwardResult *r = &resp.msg.result;
  nne_pb_list_enc_t rows;
  nne_pb_str_list_enc_t saved = {NULL, 0};
  const char **saved_names = NULL;
  row_ctx_t *rcs = NULL;
  int64_t b;

  resp.which_msg = nnedit_v1_ForwardResponse_result_tag;
  r->batch = (uint32_t)fj->B;
  r->seq_len = (uint32_t)fj->S;
  if (fj->top_k > 0) {
    rcs = calloc((size_t)fj->B, sizeof *rcs);
    fj->row_tops = calloc((size_t)fj->B, sizeof *fj->row_tops);
    if (rcs == NULL || fj->row_tops == NULL) {
      free(rcs);
      nne_call_fail(call, NNE_ENOMEM, "out of memory building the reply");
      return;
    }
    for (b = 0; b < fj->B; b++) {
      rcs[b].fj = fj;
      rcs[b].row = b;
      fj->row_tops[b].n = (size_t)fj->top_k;
      fj->row_tops[b].fill = fill_score;
      fj->row_tops[b].ctx = &rcs[b];
      fj->row_tops[b].msg_size = sizeof(nnedit_v1_TokenScore);
    }
  }
  rows.n = (size_t)fj->B;
  rows.fill = fill_row;
  rows.ctx = fj;
  rows.msg_size = sizeof(nnedit_v1_RowTopK);
  NNE_PB_ENC(r->rows, nne_pb_list_enc, &rows);
  r->has_timing = true;
  r->timing.queue_ms = fj->queue_ms;
  r->timing.compute_ms = fj->compute_ms;
  r->timing.total_ms = (double)(nne_now_ns() - call->t_start_ns) / 1e6;
  if (fj->logits_mode != nnedit_v1_LogitsMode_LOGITS_NONE)
    snprintf(r->logits_tensor, sizeof r->logits_tensor, "logits");
  /* Every tensor that follows the logits: the request's saves, then the
   * edit set's SAVE edits. */
  saved_names = calloc(fj->n_outs ? fj->n_outs : 1, sizeof *saved_names);
  if (saved_names == NULL) {
    free(rcs);
    nne_call_fail(call, NNE_ENOMEM, "out of memory building the reply");
    return;
  }
  for (b = fj->logits_mode != nnedit_v1_LogitsMode_LOGITS_NONE ? 1 : 0;
       b < (int64_t)fj->n_outs; b++)
    saved_names[saved.n++] = fj->outs[b].name;
  saved.v = saved_names;
  NNE_PB_ENC(r->saved, nne_pb_str_list_enc, &saved);
  nne_call_send_msg(call, nnedit_v1_ForwardResponse_fields, &resp,
                    send_next_chunk);
  free(rcs); /* encoding is synchronous: the contexts are no longer used */
  free(saved_names);
}

static void fwd_done(nne_job_t *job) {
  fwd_job_t *fj = (fwd_job_t *)job;
  nne_call_t *call = fj->call;

  fj->queue_ms = (double)(job->t_start_ns - job->t_submit_ns) / 1e6;
  fj->compute_ms = (double)(job->t_end_ns - job->t_start_ns) / 1e6;
  if (fj->variant_built && fj->entry->model != NULL) {
    nne_backend_t *b;
    nne_err_t cerr;
    /* Cached for the next request with the same structure; a full cache of
     * pinned backends only means this one is not kept. */
    if (nne_backend_cache_put(&fj->entry->backends, fj->plan.key, fj->variant,
                              fj->build_ms, &b, &cerr) != 0)
      nne_log_debug("backend not cached: %s", cerr.msg);
  }
  if (fj->set != NULL) {
    nne_edit_set_release(&fj->srv->editor, fj->set);
    fj->set = NULL;
  }
  nne_registry_release(&fj->srv->registry, fj->entry, fj->model);
  fj->model = NULL;
  nne_server_poke(fj->srv);
  if (nne_call_cancelled(call)) {
    nne_log_debug("Forward: client gone after %.1f ms of compute",
                  fj->compute_ms);
  } else if (fj->rc != 0) {
    nne_call_fail_err(call, &fj->err);
  } else {
    /* The call owns the job from here: the stream reads from it. */
    call->user = fj;
    call->user_free = (void (*)(void *))fwd_job_free;
    send_result(call, fj);
    nne_call_unref(call); /* the job's reference */
    return;
  }
  nne_call_unref(call);
  fwd_job_free(fj);
}

/* ---- validation -----------------------------------------------------------
 */

static int check_request(nne_server_t *srv, const nnedit_v1_ForwardRequest *in,
                         const nne_rows_dec_t *ids, const nne_rows_dec_t *mask,
                         const nne_model_entry_t *e, nne_err_t *err) {
  nne_batch_group_t group;

  (void)srv;
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

/* Resolves the saves and the edit set into one plan: the edit set's hooks
 * plus the saved sites. With only an edit set, its own plan and backend
 * serve; otherwise the combined structure is looked up in the model's
 * backend cache (or built by the job). Then the per-request runtime. */
static int prepare_hooks(fwd_job_t *fj, nne_model_entry_t *e,
                         nne_pb_str_list_dec_t *saves, nne_err_t *err) {
  size_t i, j, n = saves->n, n_set = fj->set ? fj->set->plan.n_hooks : 0;
  size_t n_edits = fj->set ? fj->set->n_edits : 0;
  nne_names_site_t *rs = NULL;
  char field[32];
  int rc = 0;

  if (n == 0 && fj->set == NULL)
    return 0;
  fj->use_variant = true;
  if (n > 0 && e->names == NULL)
    return nne_err_set(err, NNE_ESTATE, "save: model '%s' has no names",
                       e->name);
  fj->save_names = saves->v; /* the job owns the names: they name tensors */
  fj->n_saves = n;
  saves->v = NULL;
  saves->n = saves->cap = 0;
  fj->save_hook = calloc(n ? n : 1, sizeof *fj->save_hook);
  fj->save_view = calloc(n ? n : 1, sizeof *fj->save_view);
  fj->set_edit_hook = calloc(n_edits ? n_edits : 1, sizeof *fj->set_edit_hook);
  rs = calloc(n_set + n ? n_set + n : 1, sizeof *rs);
  if (!fj->save_hook || !fj->save_view || !fj->set_edit_hook || !rs) {
    free(rs);
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  for (i = 0; i < n_set; i++)
    rs[i] = fj->set->plan.hooks[i];
  for (i = 0; i < n; i++) {
    snprintf(field, sizeof field, "save[%zu]", i);
    rc = nne_names_resolve_site(e->names, field, fj->save_names[i],
                                &rs[n_set + i], err);
    if (rc != 0) {
      free(rs);
      return rc;
    }
    fj->save_view[i] = rs[n_set + i].view;
  }
  if (n == 0) {
    /* The edit set's own backend: its plan, its variant. */
    fj->plan = fj->set->plan;
    fj->own_plan = false;
    fj->variant = nne_variant_ref(fj->set->variant);
    for (i = 0; i < n_edits; i++)
      fj->set_edit_hook[i] = fj->set->edits[i].hook;
  } else {
    nne_backend_t *b;
    rc = nne_compiler_plan(fj->model, rs, n_set + n, &fj->plan, err);
    if (rc != 0) {
      free(rs);
      return rc;
    }
    fj->own_plan = true;
    for (i = 0; i < n; i++)
      fj->save_hook[i] = fj->plan.item_hook[n_set + i];
    for (i = 0; i < n_edits; i++)
      fj->set_edit_hook[i] = fj->plan.item_hook[fj->set->edits[i].hook];
    b = nne_compiler_get_backend(&e->backends, &fj->plan);
    if (b != NULL)
      fj->variant = nne_variant_ref(b->variant);
  }
  free(rs);
  rc = nne_runtime_init(&fj->rt, fj->plan.n_hooks, n_edits, err);
  if (rc != 0)
    return rc;
  if (fj->set != NULL) {
    rc = nne_runtime_track(&fj->rt, fj->set->edits, fj->set_edit_hook, err);
    if (rc != 0)
      return rc;
    fj->rt.edit_set_id = fj->set->id;
  }
  for (j = 0; j < n; j++)
    fj->rt.capture[fj->save_hook[j]] = true;
  fj->rt.cancel = &fj->call->cancel;
  fj->n_heads = (int)e->spec.n_heads;
  return 0;
}

/* Lays the rows out in [B, S] with padding on the asked side and computes
 * each row's last real position (batch.h). */
static int build_inputs(fwd_job_t *fj, const nnedit_v1_ForwardRequest *in,
                        const nne_rows_dec_t *ids, const nne_rows_dec_t *mask,
                        int64_t pad_id, nne_err_t *err) {
  nne_batch_group_t group;
  nne_batch_t b;
  int rc;

  group.ids = ids;
  group.mask = mask;
  group.prefix = "";
  rc = nne_batch_build(&b, &group, 1, (int)in->padding, pad_id, err);
  if (rc != 0)
    return rc;
  fj->B = b.B;
  fj->S = b.S;
  fj->ids = b.ids;
  fj->mask = b.mask;
  fj->last_pos = b.last_pos;
  return 0;
}

void nne_rpc_inference_forward(nne_server_t *srv, nne_call_t *call,
                               grpc_byte_buffer *req) {
  const nne_config_t *cfg = srv->cfg;
  nnedit_v1_ForwardRequest in = nnedit_v1_ForwardRequest_init_zero;
  nne_rows_dec_t ids, mask;
  nne_pb_str_list_dec_t saves;
  nne_model_entry_t *e;
  fwd_job_t *fj = NULL;
  nne_err_t err;
  char why[256];
  uint64_t out_bytes;
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
  if (nne_registry_lookup(&srv->registry, "model", in.model, &e, &err) != 0)
    goto fail;
  fj = calloc(1, sizeof *fj);
  if (fj == NULL) {
    nne_err_set(&err, NNE_ENOMEM, "out of memory");
    goto fail;
  }
  if (nne_registry_acquire(&srv->registry, e, &fj->model, &err) != 0)
    goto fail;
  fj->entry = e;
  rc = check_request(srv, &in, &ids, &mask, e, &err);
  if (rc == 0)
    rc = build_inputs(fj, &in, &ids, &mask, e->pad_token_id, &err);
  if (rc == 0) {
    out_bytes = 0;
    if (in.logits == nnedit_v1_LogitsMode_LOGITS_LAST)
      out_bytes = (uint64_t)fj->B * (uint64_t)e->vocab_size * 4u;
    else if (in.logits == nnedit_v1_LogitsMode_LOGITS_ALL)
      out_bytes = (uint64_t)fj->B * (uint64_t)fj->S * (uint64_t)e->vocab_size *
                  nne_dtype_size(e->dtype);
    if (out_bytes > cfg->max_response_bytes)
      rc = nne_err_set(&err, NNE_ERESOURCE,
                       "logits: %" PRIu64 " bytes exceed the response limit "
                       "of %" PRIu64 " bytes (--max-response-bytes)",
                       out_bytes, cfg->max_response_bytes);
    else
      fj->budget = cfg->max_response_bytes - out_bytes;
  }
  if (rc == 0 && in.edit_set[0] != '\0') {
    fj->set = nne_editor_find(&srv->editor, in.edit_set);
    if (fj->set == NULL)
      rc = nne_err_set(&err, NNE_ENOTFOUND, "edit_set: no edit set '%s'",
                       in.edit_set);
    else if (fj->set->entry != e)
      rc = nne_err_set(&err, NNE_EINVAL,
                       "edit_set: '%s' edits model '%s', not '%s'", in.edit_set,
                       fj->set->entry->name, e->name);
    if (rc != 0)
      fj->set = NULL;
    else
      nne_edit_set_hold(fj->set);
  }
  if (rc == 0) {
    fj->call = call; /* the runtime polls its cancel flag */
    rc = prepare_hooks(fj, e, &saves, &err);
    fj->rt.budget = fj->budget;
  }
  if (rc == 0) {
    fj->outs = calloc(fj->n_saves + 1 + (fj->set ? fj->set->n_edits : 0),
                      sizeof *fj->outs);
    if (fj->outs == NULL)
      rc = nne_err_set(&err, NNE_ENOMEM, "out of memory");
  }
  if (rc != 0) {
    if (fj->set != NULL) {
      nne_edit_set_release(&srv->editor, fj->set);
      fj->set = NULL;
    }
    nne_registry_release(&srv->registry, e, fj->model);
    fj->model = NULL;
    goto fail;
  }
  fj->job.work = fwd_work;
  fj->job.done = fwd_done;
  fj->srv = srv;
  fj->call = call;
  fj->top_k = (int)in.top_k;
  fj->logits_mode = (int)in.logits;
  nne_call_ref(call); /* the job's reference */
  if (nne_executor_submit(&srv->compute, &fj->job, &err) != 0) {
    nne_call_unref(call);
    if (fj->set != NULL) {
      nne_edit_set_release(&srv->editor, fj->set);
      fj->set = NULL;
    }
    nne_registry_release(&srv->registry, e, fj->model);
    fj->model = NULL;
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
  if (fj != NULL)
    fwd_job_free(fj);
  nne_call_fail_err(call, &err);
}
