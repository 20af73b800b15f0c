/* generate.c — see generate.h. */
#include "infer/generate.h"
#include "infer/generate_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fault.h"
#include "base/log.h"
#include "base/vec.h"


static void gen_free(gen_t *g) {
  size_t i, B = (size_t)g->batch.B;
  nne_outbox_free(&g->ob);
  nne_runtime_free(&g->rt);
  if (g->tokens != NULL)
    for (i = 0; i < (size_t)g->o.max_new_tokens * B; i++)
      free(g->tokens[i].text);
  free(g->tokens);
  if (g->alt_text != NULL)
    for (i = 0; i < (size_t)g->o.max_new_tokens * B * g->o.alternatives; i++)
      free(g->alt_text[i]);
  free(g->alt_text);
  free(g->alt_ids);
  free(g->alt_logits);
  free(g->alt_probs);
  for (i = 0; g->rows != NULL && i < B; i++) {
    free(g->rows[i].ids);
    free(g->rows[i].text);
  }
  free(g->rows);
  for (i = 0; i < g->o.n_stop_strings; i++)
    free(g->o.stop_strings[i]);
  free(g->o.stop_strings);
  for (i = 0; i < g->o.n_saves; i++)
    free(g->o.saves[i]);
  free(g->o.saves);
  for (i = 0; i < g->n_save_tensor_names; i++)
    free(g->save_tensor_names[i]);
  free(g->save_tensor_names);
  free(g->save_view);
  free(g->stop_ids);
  for (i = 0; i < g->n_segs; i++)
    if (g->segs[i].sess != NULL) {
      nne_trace_session_free(g->segs[i].sess);
      free(g->segs[i].sess);
    }
  free(g->segs);
  for (i = 0; i < g->n_stacks; i++) {
    size_t k;
    for (k = 0; k < g->stacks[i].n; k++)
      nne_tensor_unref(g->stacks[i].t[k]);
    free(g->stacks[i].t);
  }
  free(g->stacks);
  nne_trace_session_free(&g->sess);
  nne_batch_free(&g->batch);
  free(g);
}

/* Lets go of the backend, the model, the set and the KV budget (loop). */
static void gen_end(gen_t *g) {
  if (g->hold.entry != NULL) {
    nne_infer_backend_free(&g->bk, g->hold.entry);
    g->hold.entry->kv_bytes -= g->kv_held;
  }
  nne_infer_release(&g->hold, g->d);
  g->d->kv_bytes -= g->kv_held;
  g->kv_held = 0;
}

nne_infer_generate_t *nne_infer_generate_new(
    nne_daemon_t *d, nne_call_t *call, nne_outbox_result_fn send_result,
    int (*send_step)(nne_call_t *, nne_infer_generate_t *, size_t,
                     void (*)(nne_call_t *, bool)),
    uint32_t chunk_tag) {
  gen_t *g = calloc(1, sizeof *g);
  if (g == NULL)
    return NULL;
  g->d = d;
  g->call = call;
  g->send_step = send_step;
  atomic_init(&g->n_ready, 0);
  nne_outbox_init(&g->ob, chunk_tag, d->cfg->chunk_bytes, send_result, g);
  nne_trace_session_init(&g->sess, 1, d->cfg->max_trace_nodes);
  return g;
}

nne_trace_session_t *nne_infer_generate_session(nne_infer_generate_t *g) {
  return &g->sess;
}

int nne_infer_generate_hold(nne_infer_generate_t *g, const char *model,
                            const char *edit_set, nne_err_t *err) {
  return nne_infer_hold(&g->hold, g->d, model, edit_set, err);
}

void nne_infer_generate_free(nne_infer_generate_t *g) {
  if (g == NULL)
    return;
  gen_end(g);
  gen_free(g);
}

const nne_gen_token_t *nne_infer_generate_token(const nne_infer_generate_t *g,
                                                size_t step, size_t row) {
  return &g->tokens[step * (size_t)g->batch.B + row];
}

/* ---- prepare (loop) --------------------------------------------------------
 */

static int check_sampling(gen_t *g, const nne_gen_opts_t *o, int64_t vocab,
                          nne_err_t *err) {
  if (!isfinite(o->temperature) || o->temperature < 0 ||
      o->temperature > 100)
    return nne_err_set(err, NNE_EINVAL,
                       "sampling.temperature: %g is not in [0, 100]",
                       (double)o->temperature);
  if (!isfinite(o->top_p) || o->top_p < 0 || o->top_p > 1)
    return nne_err_set(err, NNE_EINVAL,
                       "sampling.top_p: %g is not in [0, 1]",
                       (double)o->top_p);
  if ((int64_t)o->top_k > vocab)
    return nne_err_set(err, NNE_EINVAL,
                       "sampling.top_k: %u is more than the vocabulary "
                       "(%" PRId64 ")",
                       o->top_k, vocab);
  if (!isfinite(o->repetition_penalty) || o->repetition_penalty < 0 ||
      o->repetition_penalty > 10)
    return nne_err_set(err, NNE_EINVAL,
                       "sampling.repetition_penalty: %g is not in [0, 10] "
                       "(0 or 1: off)",
                       (double)o->repetition_penalty);
  g->sample.temperature = o->temperature;
  g->sample.top_k = o->top_k;
  g->sample.top_p = o->top_p;
  g->sample.repetition_penalty = o->repetition_penalty;
  if (o->has_seed) {
    g->seed = o->seed;
  } else {
    struct timespec ts;
    uint64_t x;
    clock_gettime(CLOCK_REALTIME, &ts);
    x = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^
        (uint64_t)(uintptr_t)g;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    g->seed = x ^ (x >> 29);
  }
  return 0;
}

/* Stop ids from `o` (the caller's, borrowed), stop strings from g->o
 * (taken). */
static int check_stops(gen_t *g, const nne_gen_opts_t *o,
                       const nne_model_entry_t *e, nne_err_t *err) {
  size_t i, n_eos = o->ignore_eos ? 0 : e->spec.n_eos;
  if (o->n_stop_ids > NNE_GEN_MAX_STOP_IDS)
    return nne_err_set(err, NNE_ERESOURCE,
                       "stop_token_ids: %zu ids (at most %d)", o->n_stop_ids,
                       NNE_GEN_MAX_STOP_IDS);
  g->stop_ids = calloc(o->n_stop_ids + n_eos + 1, sizeof *g->stop_ids);
  if (g->stop_ids == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  for (i = 0; i < o->n_stop_ids; i++) {
    if (o->stop_ids[i] < 0 || o->stop_ids[i] >= e->vocab_size)
      return nne_err_set(err, NNE_EINVAL,
                         "stop_token_ids[%zu]: %" PRId64
                         " is not in the vocabulary [0, %" PRId64 ")",
                         i, o->stop_ids[i], e->vocab_size);
    g->stop_ids[g->n_stop_ids++] = o->stop_ids[i];
  }
  for (i = 0; i < n_eos; i++)
    g->stop_ids[g->n_stop_ids++] = e->spec.eos[i];
  if (g->o.n_stop_strings > NNE_GEN_MAX_STOP_STRINGS)
    return nne_err_set(err, NNE_ERESOURCE,
                       "stop_strings: %zu strings (at most %d)",
                       g->o.n_stop_strings, NNE_GEN_MAX_STOP_STRINGS);
  if (g->o.n_stop_strings > 0 && e->tokenizer == NULL)
    return nne_err_set(err, NNE_ESTATE,
                       "stop_strings: model '%s' has no tokenizer (looked "
                       "for %s)",
                       e->name, e->tokenizer_file);
  for (i = 0; i < g->o.n_stop_strings; i++) {
    size_t len = strlen(g->o.stop_strings[i]);
    if (len == 0 || len > NNE_GEN_MAX_STOP_LEN)
      return nne_err_set(err, NNE_EINVAL,
                         "stop_strings[%zu]: %zu bytes (1 to %d)", i, len,
                         NNE_GEN_MAX_STOP_LEN);
    if (!nne_pb_utf8_valid(g->o.stop_strings[i]))
      return nne_err_set(err, NNE_EINVAL,
                         "stop_strings[%zu]: not valid UTF-8", i);
    if (len > g->max_stop_len)
      g->max_stop_len = len;
  }
  return 0;
}

/* The cache's size before anything is allocated: key and value per layer,
 * [B, heads, P0 + max_new, head_dim] in the model's dtype. */
static int check_kv(gen_t *g, const nne_model_entry_t *e, nne_err_t *err) {
  const nne_config_t *cfg = g->d->cfg;
  const nne_model_spec_t *sp = &e->spec;
  double bytes = 2.0 * sp->kv_layers * (double)g->batch.B * sp->kv_heads *
                 ((double)g->batch.S + g->o.max_new_tokens) *
                 sp->kv_head_dim * (double)nne_dtype_size(e->dtype);
  if (bytes > (double)cfg->max_kv_bytes)
    return nne_err_set(err, NNE_ERESOURCE,
                       "the KV cache would take %.0f bytes (2 x %u layers x "
                       "batch %" PRId64 " x %u heads x %" PRId64
                       " positions x %u x %zu bytes), over --max-kv-bytes "
                       "%" PRIu64,
                       bytes, sp->kv_layers, g->batch.B, sp->kv_heads,
                       g->batch.S + (int64_t)g->o.max_new_tokens,
                       sp->kv_head_dim, nne_dtype_size(e->dtype),
                       cfg->max_kv_bytes);
  if ((double)g->d->kv_bytes + bytes > (double)cfg->kv_budget_bytes)
    return nne_err_set(err, NNE_ERESOURCE,
                       "the KV cache would take %.0f bytes and running "
                       "generations hold %" PRIu64 " of the %" PRIu64
                       " bytes of --kv-budget-bytes",
                       bytes, g->d->kv_bytes, cfg->kv_budget_bytes);
  g->kv_bytes = (uint64_t)bytes;
  return 0;
}

/* The saves' sites and the backend (the set's hooks plus the saves), on
 * the cached method when steps use the cache. */
static int prepare_hooks(gen_t *g, nne_err_t *err) {
  nne_model_entry_t *e = g->hold.entry;
  nne_trace_t *it = g->sess.n > 0 ? g->sess.traces[0] : NULL;
  size_t i, n = g->o.n_saves, n_it = it != NULL ? it->n_sites : 0;
  nne_names_site_t *rs;
  char field[32];
  int rc = 0;

  if (n == 0 && g->hold.set == NULL && it == NULL)
    return 0;
  if (n > NNE_GEN_MAX_SAVES)
    return nne_err_set(err, NNE_ERESOURCE, "save: %zu sites (at most %d)", n,
                       NNE_GEN_MAX_SAVES);
  if (n > 0 && e->names == NULL)
    return nne_err_set(err, NNE_ESTATE, "save: model '%s' has no names",
                       e->name);
  g->use_backend = true;
  g->save_view = calloc(n ? n : 1, sizeof *g->save_view);
  rs = calloc(n + n_it ? n + n_it : 1, sizeof *rs);
  if (g->save_view == NULL || rs == NULL) {
    free(rs);
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  for (i = 0; rc == 0 && i < n; i++) {
    snprintf(field, sizeof field, "save[%zu]", i);
    rc = nne_names_resolve_site(e->names, field, g->o.saves[i], &rs[i], err);
    g->save_view[i] = rs[i].view;
  }
  /* The intervention's sites after the saves': every step's nodes are
   * bound to this one backend. */
  if (rc == 0 && it != NULL)
    nne_trace_sites(it, rs + n);
  if (rc == 0)
    rc = nne_infer_backend_plan_method(
        &g->bk, e, g->hold.model, g->hold.set, rs, n + n_it,
        g->cached ? e->spec.kv_method : NULL, err);
  free(rs);
  if (rc != 0)
    return rc;
  rc = nne_infer_backend_runtime(&g->bk, g->hold.set, &g->rt, err);
  if (rc != 0)
    return rc;
  for (i = 0; i < n; i++)
    g->rt.capture[nne_infer_backend_site_hook(&g->bk, i)] = true;
  g->rt.cancel = nne_call_cancel_flag(g->call);
  g->rt.budget = g->d->cfg->max_response_bytes;
  g->n_heads = (int)e->spec.n_heads;
  return 0;
}

static int alloc_steps(gen_t *g, nne_err_t *err) {
  size_t B = (size_t)g->batch.B, n = (size_t)g->o.max_new_tokens, i;
  size_t k = g->o.alternatives;
  g->tokens = calloc(n * B, sizeof *g->tokens);
  g->rows = calloc(B, sizeof *g->rows);
  if (g->tokens == NULL || g->rows == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  if (k > 0) {
    g->alt_ids = calloc(n * B * k, sizeof *g->alt_ids);
    g->alt_logits = calloc(n * B * k, sizeof *g->alt_logits);
    g->alt_probs = calloc(n * B * k, sizeof *g->alt_probs);
    g->alt_text = calloc(n * B * k, sizeof *g->alt_text);
    if (!g->alt_ids || !g->alt_logits || !g->alt_probs || !g->alt_text)
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  if (g->use_backend) {
    size_t per = g->o.n_saves + (g->hold.set ? g->hold.set->n_edits : 0);
    if (g->sess.n > 0)
      per += g->sess.traces[0]->n_saves;
    g->save_tensor_names = calloc(n * per + 1, sizeof *g->save_tensor_names);
    if (g->save_tensor_names == NULL)
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  for (i = 0; i < B; i++) {
    nne_gen_row_t *r = &g->rows[i];
    const int64_t *m = g->batch.mask ? g->batch.mask + i * g->batch.S : NULL;
    int64_t j;
    r->ids = calloc(n ? n : 1, sizeof *r->ids);
    if (r->ids == NULL)
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
    r->stop_string = -1;
    for (j = 0; j < g->batch.S; j++)
      r->prompt_tokens += m == NULL || m[j] != 0;
    /* Each row its own generator, seeded alike: a prompt draws the same
     * tokens at any batch position. */
    nne_rng_seed(&r->rng, g->seed);
  }
  return 0;
}

/* A streamed tensor's name is at most 255 bytes: with a step's suffix
 * ("@<last step>") the edit set's and the intervention's save names must
 * still fit (the request's saves are bounded at decode). */
static int check_save_names(gen_t *g, nne_err_t *err) {
  char suffix[16];
  size_t extra, i;
  const nne_edit_set_t *set = g->hold.set;
  const nne_trace_t *t = g->sess.n > 0 ? g->sess.traces[0] : NULL;
  if (g->o.save_sequence)
    return 0; /* no suffix */
  extra = (size_t)snprintf(suffix, sizeof suffix, "@%u",
                           g->o.max_new_tokens - 1);
  for (i = 0; set != NULL && i < set->n_edits; i++)
    if (set->edits[i].op == NNE_EDIT_SAVE &&
        strlen(set->edits[i].name) + extra > 255)
      return nne_err_set(err, NNE_EINVAL,
                         "edit_set %s: edits[%zu]'s save name with a step "
                         "(\"%s%s\") is over 255 bytes",
                         set->id, i, set->edits[i].name, suffix);
  for (i = 0; t != NULL && i < t->n_nodes; i++)
    if (t->nodes[i].op == NNE_TRACE_SAVE &&
        strlen(t->nodes[i].name) + extra > 255)
      return nne_err_set(err, NNE_EINVAL,
                         "intervention.nodes[%zu] (id %u): the save name "
                         "with a step (+ \"%s\") is over 255 bytes",
                         i, t->nodes[i].id, suffix);
  return 0;
}

int nne_infer_generate_prepare(nne_infer_generate_t *g,
                               const nne_batch_group_t *prompts,
                               size_t n_invokes, nne_gen_opts_t *o,
                               nne_err_t *err) {
  nne_model_entry_t *e = g->hold.entry;
  int rc;

  g->o = *o; /* takes the strings */
  o->stop_strings = NULL;
  o->n_stop_strings = 0;
  o->saves = NULL;
  o->n_saves = 0;
  g->o.stop_ids = NULL;
  /* g->o.steps is the caller's: read during prepare only. */
  rc = nne_batch_tokenize(prompts, 1, e, err);
  if (rc == 0)
    rc = nne_batch_check(prompts, 1, "prompts", 1 /* PADDING_LEFT */, e, err);
  if (rc == 0)
    rc = nne_batch_build(&g->batch, prompts, 1, 1, e->pad_token_id, err);
  if (rc != 0)
    return rc;
  if (g->o.max_new_tokens == 0)
    return nne_err_set(err, NNE_EINVAL, "max_new_tokens: must be at least 1");
  if ((uint64_t)g->batch.S + g->o.max_new_tokens > e->max_seq_len)
    return nne_err_set(err, NNE_EINVAL,
                       "max_new_tokens: %u after a prompt of %" PRId64
                       " tokens is past the model's max_seq_len %u (at most "
                       "%" PRId64 ")",
                       g->o.max_new_tokens, g->batch.S, e->max_seq_len,
                       (int64_t)e->max_seq_len - g->batch.S);
  if (g->o.alternatives > NNE_GEN_MAX_ALTERNATIVES ||
      (int64_t)g->o.alternatives > e->vocab_size)
    return nne_err_set(err, NNE_EINVAL,
                       "top_alternatives: %u (at most %d, and the "
                       "vocabulary)",
                       g->o.alternatives, NNE_GEN_MAX_ALTERNATIVES);
  /* Every step's tokens and alternatives are kept until they are sent
   * (and for the result): bounded. */
  if ((uint64_t)g->o.max_new_tokens * (uint64_t)g->batch.B *
          (g->o.alternatives + 1u) >
      NNE_GEN_MAX_STEP_ENTRIES)
    return nne_err_set(err, NNE_ERESOURCE,
                       "max_new_tokens %u x %" PRId64 " rows x (1 + %u "
                       "top_alternatives) is over %d entries a generation "
                       "may keep",
                       g->o.max_new_tokens, g->batch.B, g->o.alternatives,
                       NNE_GEN_MAX_STEP_ENTRIES);
  if ((rc = check_sampling(g, &g->o, e->vocab_size, err)) != 0 ||
      (rc = check_stops(g, o, e, err)) != 0)
    return rc;
  g->cached = e->kv_cache && !g->o.cache_off;
  if (g->o.save_sequence && !g->cached)
    return nne_err_set(err, NNE_EINVAL,
                       "save_layout: SEQUENCE needs the KV cache (%s); a "
                       "recomputed step sees the whole sequence: its last "
                       "step's save has every position",
                       e->kv_cache ? "the request turned it off"
                                   : "the model has none");
  if (g->cached && (rc = check_kv(g, e, err)) != 0)
    return rc;
  if ((rc = check_save_names(g, err)) != 0 ||
      (rc = nne__gen_prepare_intervention(g, n_invokes, err)) != 0 ||
      (rc = prepare_hooks(g, err)) != 0 || (rc = nne__gen_bind_segments(g, err)) != 0)
    return rc;
  return alloc_steps(g, err);
}

/* ---- the job (executor) ----------------------------------------------------
 */

/* One save of one step (takes t's reference, also on failure): into the
 * outbox as "<name>@<step>", or kept for its SAVE_LAYOUT_SEQUENCE tensor. */
static int emit_save(gen_t *g, const char *name, size_t step, nne_tensor_t *t,
                     nne_err_t *err) {
  char buf[300], *nm;
  size_t i;
  if (g->o.save_sequence) {
    nne_gen_stack_t *st;
    for (i = 0; i < g->n_stacks && strcmp(g->stacks[i].name, name) != 0; i++)
      ;
    if (i == g->n_stacks) {
      if (NNE_VEC_GROW(&g->stacks, &g->cap_stacks, g->n_stacks + 1) != 0) {
        nne_tensor_unref(t);
        return nne_err_set(err, NNE_ENOMEM, "out of memory");
      }
      st = &g->stacks[g->n_stacks];
      memset(st, 0, sizeof *st);
      st->t = calloc(g->o.max_new_tokens, sizeof *st->t);
      if (st->t == NULL) {
        nne_tensor_unref(t);
        return nne_err_set(err, NNE_ENOMEM, "out of memory");
      }
      st->name = name;
      st->first_step = (uint32_t)step;
      g->n_stacks++;
    }
    st = &g->stacks[i];
    st->t[st->n++] = t;
    return 0;
  }
  snprintf(buf, sizeof buf, "%s@%zu", name, step);
  if ((nm = strdup(buf)) == NULL) {
    nne_tensor_unref(t);
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  g->save_tensor_names[g->n_save_tensor_names++] = nm;
  return nne_outbox_tensor(&g->ob, nm, t, err);
}

/* SAVE_LAYOUT_SEQUENCE: each save's steps concatenated along dim 1 into
 * the outbox, after the last step. */
static int emit_stacks(gen_t *g, nne_err_t *err) {
  size_t i, k;
  int rc = 0;
  for (i = 0; rc == 0 && i < g->n_stacks; i++) {
    nne_gen_stack_t *st = &g->stacks[i];
    nne_op_arg_t *args = calloc(st->n + 1, sizeof *args);
    nne_tensor_t *out = NULL;
    if (args == NULL)
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
    for (k = 0; k < st->n; k++) {
      args[k].kind = NNE_ARG_TENSOR;
      args[k].tensor = st->t[k];
    }
    args[st->n].kind = NNE_ARG_INT;
    args[st->n].name = "dim";
    args[st->n].integer = 1;
    if (st->n == 1)
      out = nne_tensor_ref(st->t[0]);
    else
      rc = nne_op_call("cat", args, st->n + 1, NULL, 0, &out, err);
    free(args);
    if (rc != 0) {
      nne_err_prefix(err,
                     "save_layout SEQUENCE: '%s' (steps %u to %zu) does not "
                     "concatenate along dim 1",
                     st->name, st->first_step, st->first_step + st->n - 1);
      break;
    }
    rc = nne_outbox_tensor(&g->ob, st->name, out, err);
  }
  return rc;
}

/* The step's saves into the outbox as "<name>@<step>", and the runtime
 * ready to capture again. */
static int step_saves(gen_t *g, size_t step, nne_err_t *err) {
  nne_edit_set_t *set = g->hold.set;
  size_t i;
  int rc = 0;

  for (i = 0; rc == 0 && i < g->o.n_saves; i++) {
    int h = nne_infer_backend_site_hook(&g->bk, i);
    nne_tensor_t *t = g->rt.captured[h];
    const nne_names_view_t *vw = &g->save_view[i];
    if (t == NULL)
      return nne_err_set(err, NNE_ESTATE,
                         "save[%zu] '%s': the site did not run in step %zu",
                         i, g->o.saves[i], step);
    if (vw->parts > 0) {
      nne_tensor_t *part;
      rc = nne_tensor_split_last(t, vw->parts, vw->part,
                                 vw->heads_view ? g->n_heads : 0, &part, err);
      if (rc == 0)
        rc = emit_save(g, g->o.saves[i], step, part, err);
    } else {
      rc = emit_save(g, g->o.saves[i], step, nne_tensor_ref(t), err);
    }
  }
  for (i = 0; rc == 0 && set != NULL && i < set->n_edits; i++) {
    if (set->edits[i].op != NNE_EDIT_SAVE || g->rt.edit_saves[i] == NULL)
      continue;
    rc = emit_save(g, set->edits[i].name, step,
                   nne_tensor_ref(g->rt.edit_saves[i]), err);
  }
  /* Captures are taken once per forward: clear them for the next step. */
  for (i = 0; i < g->rt.n_hooks; i++) {
    nne_tensor_unref(g->rt.captured[i]);
    g->rt.captured[i] = NULL;
  }
  for (i = 0; set != NULL && i < g->rt.n_edits; i++) {
    nne_tensor_unref(g->rt.edit_saves[i]);
    g->rt.edit_saves[i] = NULL;
  }
  return rc;
}

/* The step's alternatives: top-k of each row's logits, each decoded. */
static int step_alternatives(gen_t *g, size_t step, nne_tensor_t *last,
                             nne_err_t *err) {
  size_t B = (size_t)g->batch.B, k = g->o.alternatives, i;
  size_t base = step * B * k;
  nne_tensor_t *ids = NULL, *vals = NULL, *probs = NULL;
  const void *pi, *pv, *pp;
  int rc = nne_tensor_topk(last, (int)k, &ids, &vals, &probs, err);
  if (rc == 0 && (rc = nne_tensor_host_data(ids, &pi, err)) == 0 &&
      (rc = nne_tensor_host_data(vals, &pv, err)) == 0 &&
      (rc = nne_tensor_host_data(probs, &pp, err)) == 0) {
    memcpy(g->alt_ids + base, pi, B * k * sizeof(int64_t));
    memcpy(g->alt_logits + base, pv, B * k * sizeof(float));
    memcpy(g->alt_probs + base, pp, B * k * sizeof(float));
    for (i = 0; i < B * k && g->hold.entry->tokenizer != NULL; i++) {
      int32_t id = (int32_t)g->alt_ids[base + i];
      size_t len;
      nne_err_t ignored;
      if (nne_tokenizer_decode(g->hold.entry->tokenizer, &id, 1, 0,
                               &g->alt_text[base + i], &len, &ignored) != 0)
        g->alt_text[base + i] = NULL; /* an id past the tokenizer's: "" */
    }
  }
  nne_tensor_unref(ids);
  nne_tensor_unref(vals);
  nne_tensor_unref(probs);
  return rc;
}

static bool is_stop_id(const gen_t *g, int64_t id) {
  size_t i;
  for (i = 0; i < g->n_stop_ids; i++)
    if (g->stop_ids[i] == id)
      return true;
  return false;
}

/* Each row's token of the step from its logits (host [B, V] floats). */
static int step_tokens(gen_t *g, size_t step, const float *logits, int64_t V,
                       nne_sample_scratch_t *sc, int64_t *next,
                       nne_err_t *err) {
  size_t B = (size_t)g->batch.B, b;
  const int64_t *prompt = g->batch.ids;
  int64_t *seen = NULL;
  int rc = 0;

  if (g->sample.repetition_penalty > 0 && g->sample.repetition_penalty != 1) {
    seen = malloc(((size_t)g->batch.S + step + 1) * sizeof *seen);
    if (seen == NULL)
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  for (b = 0; rc == 0 && b < B; b++) {
    nne_gen_row_t *r = &g->rows[b];
    nne_gen_token_t *tk = &g->tokens[step * B + b];
    size_t n_seen = 0, searched;
    if (r->finish != NNE_GEN_RUNNING) {
      next[b] = g->hold.entry->pad_token_id; /* fed, never reported */
      continue;
    }
    if (seen != NULL) {
      const int64_t *m = g->batch.mask ? g->batch.mask + b * g->batch.S : NULL;
      int64_t j;
      for (j = 0; j < g->batch.S; j++)
        if (m == NULL || m[j] != 0)
          seen[n_seen++] = prompt[b * (size_t)g->batch.S + (size_t)j];
      memcpy(seen + n_seen, r->ids, r->n * sizeof *seen);
      n_seen += r->n;
    }
    tk->live = true;
    tk->id = nne_sample_next(logits + b * (size_t)V, (size_t)V, &g->sample,
                             seen, n_seen, &r->rng, sc, &tk->logprob);
    next[b] = tk->id;
    r->ids[r->n++] = tk->id;
    searched = r->text_len;
    rc = nne__gen_row_text(g, b, err);
    if (rc != 0)
      break;
    if (g->o.n_stop_strings > 0)
      nne__gen_find_stop(g, b, searched);
    if (r->finish == NNE_GEN_RUNNING && is_stop_id(g, tk->id))
      r->finish = NNE_GEN_STOP_TOKEN;
    if (r->finish == NNE_GEN_RUNNING && r->n == g->o.max_new_tokens)
      r->finish = NNE_GEN_LENGTH;
    {
      size_t lim = nne__gen_emit_limit(g, r);
      tk->text = malloc(lim - r->emitted + 1);
      if (tk->text == NULL) {
        rc = nne_err_set(err, NNE_ENOMEM, "out of memory");
        break;
      }
      if (r->text != NULL)
        memcpy(tk->text, r->text + r->emitted, lim - r->emitted);
      tk->text[lim - r->emitted] = '\0';
      r->emitted = lim;
    }
  }
  free(seen);
  return rc;
}

/* Position ids that follow the mask: a row counts from its first real
 * token; padding gets 1 (Hugging Face's generate). */
static void positions(const int64_t *mask, size_t B, size_t stride,
                      size_t from, size_t to, int64_t *out) {
  size_t b, j;
  for (b = 0; b < B; b++) {
    int64_t c = 0;
    for (j = 0; j < to; j++) {
      c += mask[b * stride + j] != 0;
      if (j >= from)
        out[b * (to - from) + (j - from)] = mask[b * stride + j] ? c - 1 : 1;
    }
  }
}

/* Host [B, len] slice of a [B, stride] array into a new tensor. */
static int slice_tensor(const int64_t *a, size_t B, size_t stride,
                        size_t from, size_t to, nne_tensor_t **out,
                        nne_err_t *err) {
  int64_t shape[2] = {(int64_t)B, (int64_t)(to - from)};
  int64_t *tmp = malloc(B * (to - from) * sizeof *tmp);
  size_t b;
  int rc;
  if (tmp == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  for (b = 0; b < B; b++)
    memcpy(tmp + b * (to - from), a + b * stride + from,
           (to - from) * sizeof *tmp);
  rc = nne_tensor_from_host(NNE_DTYPE_I64, shape, 2, tmp, out, err);
  free(tmp);
  return rc;
}

typedef struct step_io {
  int64_t *seq, *mask, *pos; /* [B, P0 + max_new], [B, ...], scratch */
  nne_tensor_t **past, **present;
  size_t n_kv;
} step_io_t;

/* One forward of step `step` on the sequence so far (cur tokens); *logits
 * gets [B, S, V]. */
static int step_forward(gen_t *g, step_io_t *io, size_t step, size_t cur,
                        nne_hook_fn hook, void *hook_ctx,
                        nne_tensor_t **logits, nne_err_t *err) {
  size_t B = (size_t)g->batch.B;
  size_t stride = (size_t)g->batch.S + g->o.max_new_tokens;
  size_t from = g->cached && step > 0 ? cur - 1 : 0;
  nne_tensor_t *ids = NULL, *mask = NULL, *pos = NULL;
  nne_variant_t *v = g->use_backend ? g->bk.variant : NULL;
  int rc;

  if (NNE_FAULT(NNE_FAULT_FORWARD))
    return nne_err_set(err, NNE_EINTERNAL, "forward pass: injected fault");
  rc = slice_tensor(io->seq, B, stride, from, cur, &ids, err);
  if (rc == 0)
    rc = slice_tensor(io->mask, B, stride, 0, cur, &mask, err);
  if (rc == 0 && g->cached) {
    positions(io->mask, B, stride, from, cur, io->pos);
    rc = slice_tensor(io->pos, B, cur - from, 0, cur - from, &pos, err);
  }
  if (rc == 0 && g->cached) {
    const char *meth = g->hold.entry->spec.kv_method;
    rc = v != NULL
             ? nne_variant_forward_cached(v, ids, mask, pos, io->past,
                                          io->n_kv, hook, hook_ctx, logits,
                                          io->present, err)
             : nne_model_forward_cached(g->hold.model, meth, ids, mask, pos,
                                        io->past, io->n_kv, logits,
                                        io->present, err);
    if (rc == 0) {
      size_t i;
      for (i = 0; i < io->n_kv; i++) {
        nne_tensor_unref(io->past[i]);
        io->past[i] = io->present[i];
        io->present[i] = NULL;
      }
    }
  } else if (rc == 0) {
    rc = v != NULL ? nne_variant_forward(v, ids, mask, hook, hook_ctx,
                                         logits, err)
                   : nne_model_forward(g->hold.model, ids, mask, logits, err);
  }
  nne_tensor_unref(ids);
  nne_tensor_unref(mask);
  nne_tensor_unref(pos);
  return rc;
}

/* An empty cache: 2 x layers tensors [B, heads, 0, head_dim] on the
 * model's device. */
static int empty_cache(gen_t *g, step_io_t *io, nne_err_t *err) {
  const nne_model_spec_t *sp = &g->hold.entry->spec;
  int64_t shape[4] = {g->batch.B, sp->kv_heads, 0, sp->kv_head_dim};
  size_t i;
  int rc = 0;
  io->n_kv = 2u * sp->kv_layers;
  io->past = calloc(io->n_kv, sizeof *io->past);
  io->present = calloc(io->n_kv, sizeof *io->present);
  if (io->past == NULL || io->present == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  for (i = 0; rc == 0 && i < io->n_kv; i++)
    rc = nne_tensor_zeros(nne_model_dtype(g->hold.model), shape, 4,
                          nne_model_device(g->hold.model), &io->past[i], err);
  return rc;
}

static void io_free(step_io_t *io) {
  size_t i;
  for (i = 0; i < io->n_kv; i++) {
    if (io->past != NULL)
      nne_tensor_unref(io->past[i]);
    if (io->present != NULL)
      nne_tensor_unref(io->present[i]);
  }
  free(io->past);
  free(io->present);
  free(io->seq);
  free(io->mask);
  free(io->pos);
}

/* The segment of step `step`. */
static const nne_gen_seg_t *segment_of(const gen_t *g, size_t step) {
  size_t i = g->n_segs;
  while (i > 0 && g->segs[i - 1].start > step)
    i--;
  return i > 0 ? &g->segs[i - 1] : NULL;
}

/* The step's forward, with the intervention's nodes of its segment when it
 * has some: their saves go into the outbox as "<name>@<step>". */
static int step_run(gen_t *g, step_io_t *io, size_t step, size_t cur,
                    nne_tensor_t **logits, nne_err_t *err) {
  const nne_gen_seg_t *seg = segment_of(g, step);
  nne_trace_t *t = seg != NULL ? seg->t : NULL;
  nne_trace_run_opts_t o;
  nne_trace_run_t run;
  uint64_t used0 = g->used;
  size_t k;
  int rc;

  if (t == NULL || t->n_nodes == 0) {
    rc = step_forward(g, io, step, cur, nne_runtime_hook, &g->rt, logits,
                      err);
    if (rc != 0 && g->rt.err.code != 0)
      *err = g->rt.err; /* the hook's reason beats the engine's relay */
    return rc;
  }
  memset(&o, 0, sizeof o);
  memset(&run, 0, sizeof run);
  o.model = g->hold.model;
  o.batch = g->batch.B;
  o.n_heads = g->n_heads;
  o.rt = &g->rt;
  o.cancel = nne_call_cancel_flag(g->call);
  o.budget = g->d->cfg->max_response_bytes;
  o.used = used0;
  o.limit = g->d->cfg->max_response_bytes;
  o.max_value_bytes = g->d->cfg->max_trace_value_bytes;
  rc = nne_trace_run_init(&run, t, &o, err);
  if (rc != 0)
    return rc;
  rc = nne_trace_run_begin(&run, err);
  if (rc == 0) {
    rc = step_forward(g, io, step, cur, nne_trace_hook, &run, logits, err);
    if (rc != 0 && run.err.code != 0)
      *err = run.err;
  }
  if (rc == 0)
    rc = nne_trace_run_end(&run, err);
  g->used += run.used - used0;
  for (k = 0; rc == 0 && k < t->n_nodes; k++) {
    const nne_trace_node_t *n = &t->nodes[k];
    if (n->op != NNE_TRACE_SAVE || t->saved[n->slot] == NULL)
      continue;
    rc = emit_save(g, n->name, step, t->saved[n->slot], err);
    t->saved[n->slot] = NULL; /* emit_save has the reference */
  }
  nne_trace_run_free(&run);
  if (rc != 0)
    nne_infer_generate_field(err);
  return rc;
}

/* A two-token forward through the backend, for the hooks' firing order
 * (the intervention's last check): the cached method with an empty cache
 * when steps use it. */
static int probe_forward(void *ctx, nne_hook_fn fn, void *hook_ctx,
                         nne_err_t *err) {
  gen_t *g = ctx;
  static const int64_t shape[2] = {1, 2};
  int64_t ids[2] = {1 % g->hold.entry->vocab_size, 2 % g->hold.entry->vocab_size};
  int64_t ones[2] = {1, 1}, pos[2] = {0, 1};
  nne_tensor_t *ti = NULL, *tm = NULL, *tp = NULL, *logits = NULL;
  step_io_t io;
  size_t i;
  int rc;

  memset(&io, 0, sizeof io);
  rc = nne_tensor_from_host(NNE_DTYPE_I64, shape, 2, ids, &ti, err);
  if (rc == 0 && !g->cached) {
    rc = nne_variant_forward(g->bk.variant, ti, NULL, fn, hook_ctx, &logits,
                             err);
  } else if (rc == 0) {
    int64_t B = g->batch.B;
    g->batch.B = 1; /* empty_cache sizes by the batch */
    rc = empty_cache(g, &io, err);
    g->batch.B = B;
    if (rc == 0)
      rc = nne_tensor_from_host(NNE_DTYPE_I64, shape, 2, ones, &tm, err);
    if (rc == 0)
      rc = nne_tensor_from_host(NNE_DTYPE_I64, shape, 2, pos, &tp, err);
    if (rc == 0)
      rc = nne_variant_forward_cached(g->bk.variant, ti, tm, tp, io.past,
                                      io.n_kv, fn, hook_ctx, &logits,
                                      io.present, err);
  }
  for (i = 0; i < io.n_kv; i++) {
    nne_tensor_unref(io.past[i]);
    nne_tensor_unref(io.present[i]);
  }
  free(io.past);
  free(io.present);
  nne_tensor_unref(ti);
  nne_tensor_unref(tm);
  nne_tensor_unref(tp);
  nne_tensor_unref(logits);
  return rc;
}

/* No write of any segment depends on a read that fires later. */
static int check_order(gen_t *g, nne_err_t *err) {
  size_t n = g->bk.plan.n_hooks, i;
  int *order = malloc((n ? n : 1) * sizeof *order);
  int rc;
  if (order == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  rc = nne_trace_probe_order_with(probe_forward, g, n, order, err);
  for (i = 0; rc == 0 && i < g->n_segs; i++)
    if (g->segs[i].t != NULL && g->segs[i].t->needs_order) {
      rc = nne_trace_check_order(g->segs[i].t, order, err);
      if (rc != 0 && g->segs[i].t != g->sess.traces[0])
        nne_err_prefix(err, "at step %u", g->segs[i].start);
    }
  free(order);
  if (rc != 0)
    nne_infer_generate_field(err);
  return rc;
}

static int run_steps(gen_t *g, nne_err_t *err) {
  size_t B = (size_t)g->batch.B, P0 = (size_t)g->batch.S;
  size_t stride = P0 + g->o.max_new_tokens, step, b, cur = P0;
  step_io_t io;
  nne_sample_scratch_t sc = {NULL, NULL};
  int64_t *next = NULL, *last_pos = NULL;
  int64_t V = g->hold.entry->vocab_size;
  int rc = 0;

  memset(&io, 0, sizeof io);
  io.seq = calloc(B * stride, sizeof *io.seq);
  io.mask = calloc(B * stride, sizeof *io.mask);
  io.pos = calloc(B * stride, sizeof *io.pos);
  next = calloc(B, sizeof *next);
  last_pos = calloc(B, sizeof *last_pos);
  sc.scores = malloc((size_t)V * sizeof *sc.scores);
  sc.idx = malloc((size_t)V * sizeof *sc.idx);
  if (!io.seq || !io.mask || !io.pos || !next || !last_pos || !sc.scores ||
      !sc.idx) {
    rc = nne_err_set(err, NNE_ENOMEM, "out of memory");
    goto out;
  }
  for (b = 0; b < B; b++) {
    size_t j;
    for (j = 0; j < P0; j++) {
      io.seq[b * stride + j] = g->batch.ids[b * P0 + j];
      io.mask[b * stride + j] = g->batch.mask ? g->batch.mask[b * P0 + j] : 1;
    }
  }
  if (g->cached && (rc = empty_cache(g, &io, err)) != 0)
    goto out;
  for (step = 0; step < g->o.max_new_tokens; step++) {
    uint64_t t0 = nne_now_ns();
    nne_tensor_t *logits = NULL, *last = NULL;
    const void *hp = NULL;
    bool all_done = true;
    if (nne_call_cancelled(g->call)) {
      rc = nne_err_set(err, NNE_ECANCELED, "cancelled at step %zu", step);
      break;
    }
    rc = step_run(g, &io, step, cur, &logits, err);
    if (rc == 0) {
      int64_t S = nne_tensor_shape(logits)[1];
      for (b = 0; b < B; b++)
        last_pos[b] = S - 1;
      rc = nne_tensor_select_positions(logits, last_pos, &last, err);
    }
    if (rc == 0)
      rc = nne_tensor_host_data(last, &hp, err);
    if (rc == 0 && g->o.alternatives > 0)
      rc = step_alternatives(g, step, last, err);
    if (rc == 0)
      rc = step_tokens(g, step, hp, V, &sc, next, err);
    if (rc == 0 && g->use_backend)
      rc = step_saves(g, step, err);
    nne_tensor_unref(logits);
    nne_tensor_unref(last);
    if (rc != 0) {
      nne_err_prefix(err, "step %zu", step);
      break;
    }
    for (b = 0; b < B; b++) {
      io.seq[b * stride + cur] = next[b];
      io.mask[b * stride + cur] = 1;
      all_done = all_done && g->rows[b].finish != NNE_GEN_RUNNING;
    }
    cur++;
    g->steps = step + 1;
    if (step == 0)
      g->prefill_ms = (double)(nne_now_ns() - t0) / 1e6;
    else
      g->decode_ms += (double)(nne_now_ns() - t0) / 1e6;
    /* Publish the step, then ask the loop to send it. */
    atomic_store_explicit(&g->n_ready, step + 1, memory_order_release);
    nne_executor_progress(&g->d->compute, &g->job);
    if (all_done)
      break;
  }
  if (rc == 0 && g->cached)
    for (b = 0; b < io.n_kv; b++)
      g->kv_final_bytes += nne_tensor_nbytes(io.past[b]);
  if (rc == 0 && g->o.save_sequence)
    rc = emit_stacks(g, err);
out:
  io_free(&io);
  free(next);
  free(last_pos);
  free(sc.scores);
  free(sc.idx);
  return rc;
}

static void gen_work(nne_job_t *job) {
  gen_t *g = (gen_t *)((char *)job - offsetof(gen_t, job));

  if (nne_call_cancelled(g->call)) {
    g->rc = nne_err_set(&g->err, NNE_ECANCELED, "cancelled before it ran");
    return;
  }
  if (g->use_backend &&
      (g->rc = nne_infer_backend_ready(&g->bk, g->hold.model, &g->err)) !=
          0) {
    nne_err_prefix(&g->err, "compiling the backend");
    return;
  }
  if (g->needs_order && (g->rc = check_order(g, &g->err)) != 0)
    return;
  g->rc = run_steps(g, &g->err);
  /* The backend's build counts as prefill: it is what step 0 waited on. */
  g->prefill_ms += g->bk.built ? g->bk.build_ms : 0;
  if (g->rc == 0)
    g->rc = nne_outbox_result(&g->ob, 0, &g->err);
}

/* ---- streaming (loop) ------------------------------------------------------
 */

static void pump(gen_t *g);

static void on_step_sent(nne_call_t *call, bool ok) {
  gen_t *g = nne_call_user(call);
  if (!ok || nne_call_cancelled(call))
    return; /* the call's free frees g */
  g->n_sent++;
  pump(g);
}

/* Sends the next ready step; once the job is done and every step is out,
 * the saves and the result (the outbox), or the failure. */
static void pump(gen_t *g) {
  nne_call_t *call = g->call;
  size_t ready;
  if (g->ended || nne_call_sending(call) || nne_call_cancelled(call))
    return;
  ready = atomic_load_explicit(&g->n_ready, memory_order_acquire);
  if (g->n_sent < ready && (g->rc == 0 || !g->job_done)) {
    g->send_step(call, g, g->n_sent, on_step_sent);
    return;
  }
  if (!g->job_done)
    return;
  g->ended = true;
  if (g->rc != 0)
    nne_call_fail_err(call, &g->err);
  else
    nne_outbox_start(&g->ob, call);
}

static void gen_progress(nne_job_t *job) {
  pump((gen_t *)((char *)job - offsetof(gen_t, job)));
}

static void gen_done(nne_job_t *job) {
  gen_t *g = (gen_t *)((char *)job - offsetof(gen_t, job));
  nne_call_t *call = g->call;

  g->queue_ms = (double)(job->t_start_ns - job->t_submit_ns) / 1e6;
  if (g->rc != 0)
    nne_infer_hold_oom(&g->hold, &g->err);
  if (g->use_backend)
    nne_infer_backend_commit(&g->bk, g->hold.entry);
  gen_end(g);
  g->job_done = true;
  if (g->rc != 0 && g->err.code == NNE_ECANCELED)
    nne_log_debug("Generate: stopped after %zu steps: %s", g->steps,
                  g->err.msg);
  pump(g);
  nne_call_unref(call); /* the job's: g may be freed with the call now */
}

static void gen_free_user(void *user) { gen_free(user); }

int nne_infer_generate_submit(nne_infer_generate_t *g, nne_err_t *err) {
  int rc;
  g->job.work = gen_work;
  g->job.done = gen_done;
  g->job.progress = gen_progress;
  nne_call_ref(g->call); /* the job's reference */
  rc = nne_executor_submit(&g->d->compute, &g->job, err);
  if (rc != 0) {
    nne_call_unref(g->call);
    return rc;
  }
  g->kv_held = g->kv_bytes;
  g->d->kv_bytes += g->kv_held;
  g->hold.entry->kv_bytes += g->kv_held;
  /* The call owns g from here: steps stream while the job runs. */
  nne_call_set_user(g->call, g, gen_free_user);
  return 0;
}
