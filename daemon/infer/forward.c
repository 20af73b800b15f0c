/* forward.c — see forward.h. */
#include "infer/forward.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

typedef nne_infer_forward_t fwd_job_t;

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

/* Lets go of the backend, the model and the set (loop thread). */
static void fwd_job_end(fwd_job_t *fj) {
  if (fj->hold.entry != NULL)
    nne_infer_backend_free(&fj->bk, fj->hold.entry);
  nne_infer_release(&fj->hold, fj->d);
}

nne_infer_forward_t *nne_infer_forward_new(nne_daemon_t *d, nne_call_t *call,
                                           nne_outbox_result_fn send_result,
                                           uint32_t chunk_tag) {
  fwd_job_t *fj = calloc(1, sizeof *fj);
  if (fj == NULL)
    return NULL;
  fj->d = d;
  fj->call = call; /* the runtime polls its cancel flag */
  nne_outbox_init(&fj->ob, chunk_tag, d->cfg->chunk_bytes, send_result, fj);
  return fj;
}

int nne_infer_forward_hold(nne_infer_forward_t *f, const char *model,
                           const char *edit_set, nne_err_t *err) {
  return nne_infer_hold(&f->hold, f->d, model, edit_set, err);
}

void nne_infer_forward_free(nne_infer_forward_t *f) {
  if (f == NULL)
    return;
  fwd_job_end(f);
  fwd_job_free(f);
}

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
  fj->pass.tokenizer = fj->hold.entry->tokenizer;
  fj->pass.logits_mode = fj->logits_mode;
  fj->rc = nne_infer_pass_run(&fj->pass, &fj->err);
  if (fj->rc != 0 && fj->rt.err.code != 0)
    fj->err = fj->rt.err; /* our reason beats the engine's relay */
  if (fj->rc == 0)
    fj->rc = fill_outbox(fj);
}

static void fwd_done(nne_job_t *job) {
  fwd_job_t *fj = (fwd_job_t *)((char *)job - offsetof(fwd_job_t, job));
  nne_call_t *call = fj->call;

  fj->queue_ms = (double)(job->t_start_ns - job->t_submit_ns) / 1e6;
  fj->compute_ms = (double)(job->t_end_ns - job->t_start_ns) / 1e6;
  if (fj->rc != 0)
    nne_infer_hold_oom(&fj->hold, &fj->err);
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

/* Resolves the saves and plans the backend (the edit set's hooks plus the
 * saved sites), then the per-request runtime. */
static int prepare_hooks(fwd_job_t *fj, char **saves, size_t n,
                         uint64_t budget, nne_err_t *err) {
  nne_model_entry_t *e = fj->hold.entry;
  size_t i;
  nne_names_site_t *rs = NULL;
  char field[32];
  int rc = 0;

  fj->save_names = saves; /* the job owns the names: they name tensors */
  fj->n_saves = n;
  if (n == 0 && fj->hold.set == NULL)
    return 0;
  fj->use_backend = true;
  if (n > 0 && e->names == NULL)
    return nne_err_set(err, NNE_ESTATE, "save: model '%s' has no names",
                       e->name);
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

int nne_infer_forward_prepare(nne_infer_forward_t *fj,
                              const nne_batch_group_t *rows, int padding,
                              int top_k, nne_logits_mode_t logits,
                              char **saves, size_t n_saves, nne_err_t *err) {
  const nne_config_t *cfg = fj->d->cfg;
  nne_model_entry_t *e = fj->hold.entry;
  uint64_t out_bytes = 0;
  int rc;

  rc = nne_batch_tokenize(rows, 1, e, err);
  if (rc == 0)
    rc = nne_batch_check(rows, 1, "input_ids", padding, e, err);
  if (rc == 0)
    rc = nne_batch_build(&fj->batch, rows, 1, padding, e->pad_token_id, err);
  if (rc != 0) {
    /* The names are the request's either way. */
    fj->save_names = saves;
    fj->n_saves = n_saves;
    return rc;
  }
  if (logits == NNE_LOGITS_LAST)
    out_bytes = (uint64_t)fj->batch.B * (uint64_t)e->vocab_size * 4u;
  else if (logits == NNE_LOGITS_ALL)
    out_bytes = (uint64_t)fj->batch.B * (uint64_t)fj->batch.S *
                (uint64_t)e->vocab_size * nne_dtype_size(e->dtype);
  if (out_bytes > cfg->max_response_bytes) {
    fj->save_names = saves;
    fj->n_saves = n_saves;
    return nne_err_set(err, NNE_ERESOURCE,
                       "logits: %" PRIu64 " bytes exceed the response limit "
                       "of %" PRIu64 " bytes (--max-response-bytes)",
                       out_bytes, cfg->max_response_bytes);
  }
  fj->top_k = top_k;
  fj->logits_mode = logits;
  return prepare_hooks(fj, saves, n_saves, cfg->max_response_bytes - out_bytes,
                       err);
}

int nne_infer_forward_submit(nne_infer_forward_t *fj, nne_err_t *err) {
  int rc;
  fj->job.work = fwd_work;
  fj->job.done = fwd_done;
  nne_call_ref(fj->call); /* the job's reference */
  rc = nne_executor_submit(&fj->d->compute, &fj->job, err);
  if (rc != 0)
    nne_call_unref(fj->call);
  return rc;
}
