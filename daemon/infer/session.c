/* session.c — see session.h. */
#include "infer/session.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/vec.h"

nne_infer_session_t *nne_infer_session_new(nne_daemon_t *d, nne_call_t *call,
                                           nne_outbox_result_fn send_result,
                                           void *ctx, uint32_t chunk_tag) {
  nne_infer_session_t *s = calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  s->d = d;
  s->call = call;
  nne_trace_session_init(&s->sess, d->cfg->max_traces, d->cfg->max_trace_nodes);
  nne_outbox_init(&s->ob, chunk_tag, d->cfg->chunk_bytes, send_result, ctx);
  return s;
}

int nne_infer_session_hold(nne_infer_session_t *s, const char *model,
                           const char *edit_set, nne_err_t *err) {
  int rc = nne_infer_hold(&s->hold, s->d, model, edit_set, err);
  if (rc == 0)
    s->n_heads = (int)s->hold.entry->spec.n_heads;
  return rc;
}

int nne_infer_session_options(nne_infer_session_t *s, int padding, int top_k,
                              nne_logits_mode_t logits, nne_err_t *err) {
  (void)err;
  s->padding = padding;
  s->top_k = top_k;
  s->logits_mode = logits;
  return 0;
}

/* Frees what the job made; the backends and the hold need the loop. */
static void session_free(nne_infer_session_t *s) {
  size_t i, k;
  for (i = 0; i < s->n_tr; i++) {
    nne_infer_trace_t *tr = &s->tr[i];
    nne_batch_free(&tr->in);
    free(tr->row0);
    free(tr->rows);
    free(tr->logits_name);
    for (k = 0; tr->set_save_names != NULL && k < s->n_set_edits; k++)
      free(tr->set_save_names[k]);
    free(tr->set_save_names);
    nne_infer_pass_free(&tr->pass);
  }
  free(s->tr);
  nne_outbox_free(&s->ob);
  nne_trace_session_free(&s->sess);
  free(s);
}

/* Lets go of the backends, the model and the set (loop thread). */
static void session_release(nne_infer_session_t *s) {
  size_t i;
  for (i = 0; i < s->n_slots; i++)
    nne_infer_backend_free(&s->slots[i], s->hold.entry);
  free(s->slots);
  s->slots = NULL;
  s->n_slots = 0;
  /* The set's save names were copied per trace: the stream needs nothing
   * of the set. */
  nne_infer_release(&s->hold, s->d);
}

void nne_infer_session_free(nne_infer_session_t *s) {
  if (s == NULL)
    return;
  session_release(s);
  session_free(s);
}

/* ---- building the session on the loop --------------------------------------
 */

int nne_infer_session_add(nne_infer_session_t *s, nne_trace_t *t,
                          const nne_batch_group_t *groups, size_t n,
                          nne_err_t *err) {
  nne_infer_trace_t *tr;
  char what[48];
  size_t k;
  int64_t row = 0;
  int rc;

  if (n == 0)
    return nne_err_set(err, NNE_EINVAL,
                       "traces[%zu].invokes: a trace needs at least one "
                       "invoke",
                       t->index);
  for (k = 0; k < n; k++)
    if (groups[k].ids->n == 0)
      return nne_err_set(err, NNE_EINVAL,
                         "traces[%zu].invokes[%zu].input_ids: the invoke has "
                         "no rows",
                         t->index, k);
  if (NNE_VEC_GROW(&s->tr, &s->cap_tr, s->n_tr + 1) != 0)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  tr = &s->tr[s->n_tr++];
  memset(tr, 0, sizeof *tr);
  tr->t = t;
  tr->slot = -1;
  tr->row0 = calloc(n, sizeof *tr->row0);
  tr->rows = calloc(n, sizeof *tr->rows);
  if (tr->row0 == NULL || tr->rows == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  for (k = 0; k < n; k++) {
    tr->row0[k] = row;
    tr->rows[k] = (int64_t)groups[k].ids->n;
    row += tr->rows[k];
  }
  snprintf(what, sizeof what, "traces[%zu].invokes", t->index);
  rc = nne_batch_tokenize(groups, n, s->hold.entry, err);
  if (rc == 0)
    rc = nne_batch_check(groups, n, what, s->padding, s->hold.entry, err);
  if (rc == 0)
    rc = nne_batch_build(&tr->in, groups, n, s->padding,
                         s->hold.entry->pad_token_id, err);
  t->n_invokes = n;
  return rc;
}

/* The backend of trace i: the edit set's hooks plus the trace's sites,
 * shared with an earlier trace of the session when the structure is the
 * same. No sites and no set: the pristine model. */
static int plan_backend(nne_infer_session_t *s, size_t i, nne_err_t *err) {
  nne_infer_trace_t *tr = &s->tr[i];
  nne_trace_t *t = tr->t;
  nne_edit_set_t *set = s->hold.set;
  nne_names_site_t *sites = NULL;
  nne_infer_backend_t bk;
  size_t n = t->n_sites, k;
  int *hooks = NULL;
  int rc;

  tr->slot = -1;
  if (n == 0 && set == NULL)
    return 0;
  if (n > 0) {
    sites = calloc(n, sizeof *sites);
    if (sites == NULL)
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
    nne_trace_sites(t, sites);
  }
  rc = nne_infer_backend_plan(&bk, s->hold.entry, s->hold.model, set, sites, n,
                              err);
  free(sites);
  if (rc != 0)
    return rc;
  if (n > 0) {
    hooks = calloc(n, sizeof *hooks);
    if (hooks == NULL) {
      nne_infer_backend_free(&bk, s->hold.entry);
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
    }
    for (k = 0; k < n; k++)
      hooks[k] = nne_infer_backend_site_hook(&bk, k);
  }
  rc = nne_trace_bind(t, bk.plan.n_hooks, hooks, err);
  free(hooks);
  for (k = 0; k < s->n_slots; k++)
    if (strcmp(s->slots[k].plan.key, bk.plan.key) == 0)
      break;
  if (k < s->n_slots) {
    /* Same structure as an earlier trace: same hook numbering. */
    nne_infer_backend_free(&bk, s->hold.entry);
    tr->slot = (int)k;
    tr->reused = true;
    return rc;
  }
  s->slots[s->n_slots] = bk;
  tr->slot = (int)s->n_slots++;
  if (rc == 0 && n > 0)
    nne_infer_backend_known_order(&s->slots[tr->slot], s->hold.entry);
  return rc;
}

/* Names the session streams besides saves, reserved before any save is
 * validated: each trace's logits and the edit set's SAVE edits. */
static int reserve_names(nne_infer_session_t *s, nne_err_t *err) {
  nne_edit_set_t *set = s->hold.set;
  char what[128];
  size_t i, k;
  int rc;
  for (i = 0; i < s->n_tr; i++) {
    nne_infer_trace_t *tr = &s->tr[i];
    const char *label = tr->t->label;
    size_t len = strlen(label);
    if (s->logits_mode != NNE_LOGITS_NONE) {
      tr->logits_name = malloc(len + sizeof "/logits");
      if (tr->logits_name == NULL)
        return nne_err_set(err, NNE_ENOMEM, "out of memory");
      snprintf(tr->logits_name, len + sizeof "/logits", "%s/logits", label);
      snprintf(what, sizeof what, "the logits of traces[%zu]", i);
      if ((rc = nne_trace_session_reserve(&s->sess, tr->logits_name, i, what,
                                          err)) != 0)
        return rc;
    }
    if (set == NULL)
      continue;
    s->n_set_edits = set->n_edits;
    tr->set_save_names =
        calloc(set->n_edits ? set->n_edits : 1, sizeof *tr->set_save_names);
    if (tr->set_save_names == NULL)
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
    for (k = 0; k < set->n_edits; k++) {
      const nne_edit_t *ed = &set->edits[k];
      size_t nl;
      if (ed->op != NNE_EDIT_SAVE)
        continue;
      nl = len + 1 + strlen(ed->name) + 1;
      if (nl > 256)
        return nne_err_set(err, NNE_EINVAL,
                           "traces[%zu]: '%s/%s' (the edit set's save) is "
                           "longer than 255 characters",
                           i, label, ed->name);
      tr->set_save_names[k] = malloc(nl);
      if (tr->set_save_names[k] == NULL)
        return nne_err_set(err, NNE_ENOMEM, "out of memory");
      snprintf(tr->set_save_names[k], nl, "%s/%s", label, ed->name);
      snprintf(what, sizeof what, "edit_set edits[%zu] of traces[%zu]", k, i);
      if ((rc = nne_trace_session_reserve(&s->sess, tr->set_save_names[k], i,
                                          what, err)) != 0)
        return rc;
    }
  }
  return 0;
}

static void session_work(nne_job_t *job);
static void session_done(nne_job_t *job);

int nne_infer_session_submit(nne_infer_session_t *s, nne_err_t *err) {
  const nne_config_t *cfg = s->d->cfg;
  nne_model_entry_t *e = s->hold.entry;
  nne_trace_env_t env;
  uint64_t out_bytes = 0;
  size_t i;
  int rc;

  if (s->n_tr == 0)
    return nne_err_set(err, NNE_EINVAL,
                       "traces: a request needs at least one trace");
  for (i = 0; i < s->n_tr; i++) {
    if (s->logits_mode == NNE_LOGITS_LAST)
      out_bytes += (uint64_t)s->tr[i].in.B * (uint64_t)e->vocab_size * 4u;
    else if (s->logits_mode == NNE_LOGITS_ALL)
      out_bytes += (uint64_t)s->tr[i].in.B * (uint64_t)s->tr[i].in.S *
                   (uint64_t)e->vocab_size * nne_dtype_size(e->dtype);
  }
  if (out_bytes > cfg->max_response_bytes)
    return nne_err_set(err, NNE_ERESOURCE,
                       "logits: %" PRIu64 " bytes exceed the response limit "
                       "of %" PRIu64 " bytes (--max-response-bytes)",
                       out_bytes, cfg->max_response_bytes);
  s->budget = cfg->max_response_bytes - out_bytes;
  if ((rc = reserve_names(s, err)) != 0)
    return rc;
  s->slots = calloc(s->n_tr, sizeof *s->slots);
  if (s->slots == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  env.names = e->names;
  env.model = s->hold.model;
  for (i = 0; i < s->n_tr; i++) {
    if ((rc = nne_trace_validate(s->tr[i].t, &env, err)) != 0)
      return rc;
    if ((rc = plan_backend(s, i, err)) != 0)
      return rc;
  }
  s->job.work = session_work;
  s->job.done = session_done;
  nne_call_ref(s->call); /* the job's reference */
  rc = nne_executor_submit(&s->d->compute, &s->job, err);
  if (rc != 0)
    nne_call_unref(s->call);
  return rc;
}

/* ---- the job ---------------------------------------------------------------
 */

/* Trace i's backend, ready before any trace runs: built when the cache did
 * not have it, and the last check, which needs the hooks' firing order (a
 * probe forward, once per backend), done. */
static int prepare_trace(nne_infer_session_t *s, size_t i) {
  nne_infer_trace_t *tr = &s->tr[i];
  nne_trace_t *t = tr->t;
  nne_infer_backend_t *bk = tr->slot >= 0 ? &s->slots[tr->slot] : NULL;
  size_t n_hooks;
  int rc;

  if (nne_call_cancelled(s->call))
    return nne_err_set(&s->err, NNE_ECANCELED, "cancelled before it ran");
  if (bk == NULL)
    return 0;
  rc = nne_infer_backend_ready(bk, s->hold.model, &s->err);
  if (rc != 0) {
    size_t k;
    char where[96];
    /* The engine names the site it could not hook (a node selector that
     * is not in the module's code): name the node too. */
    for (k = 0; k < t->n_nodes; k++)
      if (t->nodes[k].site != NULL &&
          strstr(s->err.msg, t->nodes[k].site->canonical) != NULL)
        break;
    if (k < t->n_nodes)
      nne_err_prefix(&s->err, "%s: %s: compiling the backend",
                     nne_trace_node_where(t, k, where, sizeof where),
                     t->nodes[k].site_text);
    else
      nne_err_prefix(&s->err, "traces[%zu]: compiling the backend", i);
    return rc;
  }
  if (!t->needs_order)
    return 0;
  n_hooks = bk->plan.n_hooks;
  if (bk->order == NULL) {
    bk->order = malloc((n_hooks ? n_hooks : 1) * sizeof *bk->order);
    if (bk->order == NULL)
      return nne_err_set(&s->err, NNE_ENOMEM, "out of memory");
    rc = nne_trace_probe_order(bk->variant, n_hooks,
                               s->hold.entry->vocab_size, bk->order, &s->err);
    if (rc != 0) {
      free(bk->order);
      bk->order = NULL;
      return rc;
    }
    bk->learnt_order = true;
  }
  return nne_trace_check_order(t, bk->order, &s->err);
}

/* Queues what streams for trace i: its saves in node order, the edit set's
 * SAVE edits, its logits; then its result. */
static int fill_outbox(nne_infer_session_t *s, size_t i, nne_runtime_t *rt) {
  nne_infer_trace_t *tr = &s->tr[i];
  nne_trace_t *t = tr->t;
  nne_edit_set_t *set = s->hold.set;
  nne_tensor_t *lo = nne_infer_pass_logits_out(&tr->pass);
  size_t k;
  int rc = 0;

  tr->out_first = s->ob.n;
  for (k = 0; rc == 0 && k < t->n_nodes; k++) {
    const nne_trace_node_t *nd = &t->nodes[k];
    if (nd->op == NNE_TRACE_SAVE)
      rc = nne_outbox_tensor(&s->ob, nd->name,
                             nne_tensor_ref(t->saved[nd->slot]), &s->err);
  }
  for (k = 0; rc == 0 && rt != NULL && k < set->n_edits; k++) {
    const nne_edit_t *ed = &set->edits[k];
    if (ed->op != NNE_EDIT_SAVE)
      continue;
    if (rt->edit_saves[k] == NULL)
      return nne_err_set(&s->err, NNE_ESTATE,
                         "traces[%zu]: edit_set %s: edits[%zu] '%s': the "
                         "site did not run in this forward",
                         i, set->id, k, ed->site_text);
    rc = nne_outbox_tensor(&s->ob, tr->set_save_names[k],
                           nne_tensor_ref(rt->edit_saves[k]), &s->err);
  }
  if (rc == 0 && lo != NULL)
    rc = nne_outbox_tensor(&s->ob, tr->logits_name, nne_tensor_ref(lo),
                           &s->err);
  tr->out_end = s->ob.n;
  if (rc == 0)
    rc = nne_outbox_result(&s->ob, i, &s->err);
  return rc;
}

/* Runs trace i of the session (prepare_trace() done). */
static int run_trace(nne_infer_session_t *s, size_t i) {
  const nne_config_t *cfg = s->d->cfg;
  nne_infer_trace_t *tr = &s->tr[i];
  nne_trace_t *t = tr->t;
  nne_infer_backend_t *bk = tr->slot >= 0 ? &s->slots[tr->slot] : NULL;
  atomic_int *cancel = nne_call_cancel_flag(s->call);
  nne_trace_run_t run;
  nne_runtime_t rt;
  bool have_run = false, have_rt = false;
  uint64_t used0 = s->used;
  int rc = 0;

  memset(&run, 0, sizeof run);
  memset(&rt, 0, sizeof rt);
  if (nne_call_cancelled(s->call))
    return nne_err_set(&s->err, NNE_ECANCELED, "cancelled before it ran");
  if (s->hold.set != NULL && bk != NULL) {
    rc = nne_infer_backend_runtime(bk, s->hold.set, &rt, &s->err);
    have_rt = rc == 0;
    rt.cancel = cancel;
    rt.budget = s->budget;
    rt.used = used0;
  }
  if (rc == 0 && t->n_nodes > 0) {
    nne_trace_run_opts_t o;
    memset(&o, 0, sizeof o);
    o.model = s->hold.model;
    o.invoke_row0 = tr->row0;
    o.invoke_rows = tr->rows;
    o.batch = tr->in.B;
    o.n_heads = s->n_heads;
    o.rt = have_rt ? &rt : NULL;
    o.cancel = cancel;
    o.budget = s->budget;
    o.used = used0;
    o.limit = cfg->max_response_bytes;
    o.max_value_bytes = cfg->max_trace_value_bytes;
    rc = nne_trace_run_init(&run, t, &o, &s->err);
    have_run = rc == 0;
    if (rc == 0)
      rc = nne_trace_run_begin(&run, &s->err);
  }
  if (rc == 0) {
    tr->pass.batch = &tr->in;
    tr->pass.model = s->hold.model;
    tr->pass.variant = bk != NULL ? bk->variant : NULL;
    tr->pass.hook = have_run ? nne_trace_hook : nne_runtime_hook;
    tr->pass.hook_ctx = have_run ? (void *)&run : (void *)&rt;
    tr->pass.top_k = s->top_k;
    tr->pass.tokenizer = s->hold.entry->tokenizer;
    tr->pass.logits_mode = s->logits_mode;
    rc = nne_infer_pass_run(&tr->pass, &s->err);
    if (rc != 0 && have_run && run.err.code != 0)
      s->err = run.err; /* our reason beats the engine's relay */
    else if (rc != 0 && !have_run && rt.err.code != 0)
      s->err = rt.err;
  }
  if (rc == 0 && have_run)
    rc = nne_trace_run_end(&run, &s->err);
  /* Both count from what earlier traces took. */
  if (have_run)
    s->used += run.used - used0;
  if (have_rt)
    s->used += rt.used - used0;
  if (rc == 0 && s->used > s->budget)
    rc = nne_err_set(&s->err, NNE_ERESOURCE,
                     "traces[%zu]: the saved tensors exceed the response "
                     "limit of %llu bytes (--max-response-bytes)",
                     i, (unsigned long long)cfg->max_response_bytes);
  if (rc == 0)
    rc = fill_outbox(s, i, have_rt ? &rt : NULL);
  if (have_run)
    nne_trace_run_free(&run);
  if (have_rt)
    nne_runtime_free(&rt);
  return rc;
}

static void session_work(nne_job_t *job) {
  nne_infer_session_t *s =
      (nne_infer_session_t *)((char *)job - offsetof(nne_infer_session_t, job));
  size_t i;
  /* Every check first, so that a bad trace late in a session costs no
   * forward of the traces before it. */
  for (i = 0; i < s->n_tr; i++) {
    uint64_t t0 = nne_now_ns();
    s->rc = prepare_trace(s, i);
    s->tr[i].compute_ms = (double)(nne_now_ns() - t0) / 1e6;
    if (s->rc != 0)
      return;
  }
  for (i = 0; i < s->n_tr; i++) {
    uint64_t t0 = nne_now_ns();
    s->rc = run_trace(s, i);
    s->tr[i].compute_ms += (double)(nne_now_ns() - t0) / 1e6;
    if (s->rc != 0)
      return;
  }
}

static void session_done(nne_job_t *job) {
  nne_infer_session_t *s =
      (nne_infer_session_t *)((char *)job - offsetof(nne_infer_session_t, job));
  nne_call_t *call = s->call;
  size_t i;

  s->queue_ms = (double)(job->t_start_ns - job->t_submit_ns) / 1e6;
  if (s->rc != 0)
    nne_infer_hold_oom(&s->hold, &s->err);
  for (i = 0; i < s->n_slots; i++)
    nne_infer_backend_commit(&s->slots[i], s->hold.entry);
  for (i = 0; i < s->n_tr; i++) {
    nne_infer_trace_t *tr = &s->tr[i];
    if (tr->slot < 0)
      continue;
    tr->cache_hit = s->slots[tr->slot].hit || tr->reused;
    memcpy(tr->backend_key, s->slots[tr->slot].digest,
           sizeof tr->backend_key);
  }
  session_release(s);
  if (nne_call_cancelled(call)) {
    nne_log_debug("Trace: client gone after %.1f ms of compute",
                  (double)(job->t_end_ns - job->t_start_ns) / 1e6);
  } else if (s->rc != 0) {
    nne_call_fail_err(call, &s->err);
  } else {
    /* The call owns the session from here: the stream reads from it. */
    nne_call_set_user(call, s, (void (*)(void *))session_free);
    nne_outbox_start(&s->ob, call);
    nne_call_unref(call); /* the job's reference */
    return;
  }
  nne_call_unref(call);
  session_free(s);
}
