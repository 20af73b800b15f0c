/* generate.c — nnedit.v1.Inference/Generate: decode the request (prompts
 * as token rows, stop criteria and save sites as bounded lists), hand it
 * to the inference pipeline (infer/generate.h), encode each GenerateStep
 * and the GenerateResult. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/batch.h"
#include "infer/generate.h"
#include "base/log.h"
#include "nnedit/v1/inference.pb.h"
#include "rpc/rpc.h"

/* ---- a step ----------------------------------------------------------------
 */

typedef struct step_ctx {
  const nne_infer_generate_t *g;
  size_t step;
  size_t *live;            /* rows still generating at this step */
  size_t n_live;
  nne_pb_list_enc_t *alts; /* per live row */
  struct alt_ctx *alt_ctx;
} step_ctx_t;

struct alt_ctx {
  const step_ctx_t *sc;
  size_t row;
};

static bool fill_alt(void *ctx, size_t i, void *msg) {
  const struct alt_ctx *ac = ctx;
  const nne_infer_generate_t *g = ac->sc->g;
  size_t k = g->o.alternatives;
  size_t at = (ac->sc->step * (size_t)g->batch.B + ac->row) * k + i;
  nnedit_v1_TokenScore *ts = msg;
  ts->token_id = g->alt_ids[at];
  ts->logit = g->alt_logits[at];
  ts->prob = g->alt_probs[at];
  if (g->alt_text[at] != NULL)
    NNE_PB_ENC(ts->text, nne_pb_str_enc, g->alt_text[at]);
  return true;
}

static bool fill_token(void *ctx, size_t i, void *msg) {
  step_ctx_t *sc = ctx;
  size_t row = sc->live[i];
  const nne_gen_token_t *tk = nne_infer_generate_token(sc->g, sc->step, row);
  nnedit_v1_GeneratedToken *gt = msg;
  gt->row = (uint32_t)row;
  gt->token_id = tk->id;
  gt->logprob = tk->logprob;
  if (tk->text != NULL && tk->text[0] != '\0')
    NNE_PB_ENC(gt->text, nne_pb_str_enc, tk->text);
  if (sc->alts != NULL)
    NNE_PB_ENC(gt->top, nne_pb_list_enc, &sc->alts[i]);
  return true;
}

static int send_step(nne_call_t *call, nne_infer_generate_t *g, size_t step,
                     void (*on_sent)(nne_call_t *, bool)) {
  nnedit_v1_GenerateResponse resp = nnedit_v1_GenerateResponse_init_zero;
  size_t B = (size_t)g->batch.B, b;
  step_ctx_t sc;
  nne_pb_list_enc_t tokens;
  int rc;

  memset(&sc, 0, sizeof sc);
  sc.g = g;
  sc.step = step;
  sc.live = calloc(B, sizeof *sc.live);
  if (g->o.alternatives > 0) {
    sc.alts = calloc(B, sizeof *sc.alts);
    sc.alt_ctx = calloc(B, sizeof *sc.alt_ctx);
  }
  if (sc.live == NULL ||
      (g->o.alternatives > 0 && (sc.alts == NULL || sc.alt_ctx == NULL))) {
    free(sc.live);
    free(sc.alts);
    free(sc.alt_ctx);
    nne_call_fail(call, NNE_ENOMEM, "out of memory building a step");
    return -1;
  }
  for (b = 0; b < B; b++) {
    if (!nne_infer_generate_token(g, step, b)->live)
      continue;
    if (sc.alts != NULL) {
      sc.alt_ctx[sc.n_live].sc = &sc;
      sc.alt_ctx[sc.n_live].row = b;
      sc.alts[sc.n_live].n = g->o.alternatives;
      sc.alts[sc.n_live].fill = fill_alt;
      sc.alts[sc.n_live].ctx = &sc.alt_ctx[sc.n_live];
      sc.alts[sc.n_live].msg_size = sizeof(nnedit_v1_TokenScore);
    }
    sc.live[sc.n_live++] = b;
  }
  tokens.n = sc.n_live;
  tokens.fill = fill_token;
  tokens.ctx = &sc;
  tokens.msg_size = sizeof(nnedit_v1_GeneratedToken);
  resp.which_msg = nnedit_v1_GenerateResponse_step_tag;
  resp.msg.step.step = (uint32_t)step;
  NNE_PB_ENC(resp.msg.step.tokens, nne_pb_list_enc, &tokens);
  rc = nne_call_send_msg(call, nnedit_v1_GenerateResponse_fields, &resp,
                         on_sent);
  /* Encoding is synchronous. */
  free(sc.live);
  free(sc.alts);
  free(sc.alt_ctx);
  return rc;
}

/* ---- the result ------------------------------------------------------------
 */

typedef struct row_enc {
  nne_pb_i64_enc_t ids;
  char *text; /* the row's text up to its length (NUL at text_len) */
} row_enc_t;

static bool fill_row(void *ctx, size_t i, void *msg) {
  const nne_infer_generate_t *g = ((void **)ctx)[0];
  row_enc_t *re = ((void **)ctx)[1];
  const nne_gen_row_t *r = &g->rows[i];
  nnedit_v1_GeneratedRow *gr = msg;
  re[i].ids.v = r->ids;
  re[i].ids.n = r->n;
  NNE_PB_ENC(gr->ids, nne_pb_i64_enc, &re[i].ids);
  if (re[i].text != NULL)
    NNE_PB_ENC(gr->text, nne_pb_str_enc, re[i].text);
  gr->finish_reason = (nnedit_v1_FinishReason)r->finish;
  if (r->stop_string >= 0)
    snprintf(gr->stop, sizeof gr->stop, "%s",
             g->o.stop_strings[r->stop_string]);
  gr->prompt_tokens = r->prompt_tokens;
  return true;
}

static int send_result(nne_call_t *call, void *ctx, size_t index,
                       void (*on_sent)(nne_call_t *, bool)) {
  nne_infer_generate_t *g = ctx;
  nnedit_v1_GenerateResponse resp = nnedit_v1_GenerateResponse_init_zero;
  nnedit_v1_GenerateResult *r = &resp.msg.result;
  size_t B = (size_t)g->batch.B, b;
  row_enc_t *re = calloc(B, sizeof *re);
  const char **names = calloc(g->ob.n ? g->ob.n : 1, sizeof *names);
  nne_pb_str_list_enc_t saved = {NULL, 0};
  nne_pb_list_enc_t rows;
  void *row_ctx[2] = {g, re};
  int rc;

  (void)index;
  if (re == NULL || names == NULL) {
    free(re);
    free(names);
    nne_call_fail(call, NNE_ENOMEM, "out of memory building the result");
    return -1;
  }
  for (b = 0; b < B; b++) {
    const nne_gen_row_t *gr = &g->rows[b];
    if (gr->text != NULL) {
      re[b].text = strndup(gr->text, gr->text_len);
      if (re[b].text == NULL) {
        rc = -1;
        nne_call_fail(call, NNE_ENOMEM, "out of memory building the result");
        goto out;
      }
    }
  }
  resp.which_msg = nnedit_v1_GenerateResponse_result_tag;
  rows.n = B;
  rows.fill = fill_row;
  rows.ctx = row_ctx;
  rows.msg_size = sizeof(nnedit_v1_GeneratedRow);
  NNE_PB_ENC(r->rows, nne_pb_list_enc, &rows);
  r->has_timing = true;
  r->timing.queue_ms = g->queue_ms;
  r->timing.prefill_ms = g->prefill_ms;
  r->timing.decode_ms = g->decode_ms;
  r->timing.per_token_ms = g->steps > 1 ? g->decode_ms / (double)(g->steps - 1)
                                        : 0;
  r->timing.total_ms =
      (double)(nne_now_ns() - nne_call_start_ns(call)) / 1e6;
  r->steps = (uint32_t)g->steps;
  r->seed = g->seed;
  r->kv_cache = g->cached;
  r->kv_cache_bytes = g->kv_final_bytes;
  saved.n = nne_outbox_names(&g->ob, 0, g->ob.n, names);
  saved.v = names;
  NNE_PB_ENC(r->saved, nne_pb_str_list_enc, &saved);
  rc = nne_call_send_msg(call, nnedit_v1_GenerateResponse_fields, &resp,
                         on_sent);
out:
  for (b = 0; b < B; b++)
    free(re[b].text);
  free(re);
  free(names);
  return rc;
}

/* ---- the handler -----------------------------------------------------------
 */

typedef struct steps_dec {
  nne_gen_steps_t *v;
  size_t n, max;
  bool overflow;
} steps_dec_t;

/* GenerateRequest.steps, one NodeSteps at a time, at most `max`. */
static bool steps_cb(pb_istream_t *s, const pb_field_t *f, void **arg) {
  steps_dec_t *sd = *arg;
  nnedit_v1_NodeSteps m = nnedit_v1_NodeSteps_init_zero;
  nne_gen_steps_t *v;
  (void)f;
  if (sd->n >= sd->max) {
    sd->overflow = true;
    PB_RETURN_ERROR(s, "too many steps entries");
  }
  if (!pb_decode(s, nnedit_v1_NodeSteps_fields, &m))
    return false;
  v = realloc(sd->v, (sd->n + 1) * sizeof *v);
  if (v == NULL)
    PB_RETURN_ERROR(s, "out of memory");
  sd->v = v;
  v[sd->n].node = m.node;
  v[sd->n].start = m.start;
  v[sd->n].has_stop = m.has_stop;
  v[sd->n].stop = m.stop;
  sd->n++;
  return true;
}

/* Everything a GenerateRequest decodes into, with its bounds. */
typedef struct gen_dec {
  nnedit_v1_GenerateRequest in;
  nne_rows_dec_t prompts;
  nne_pb_i64_dec_t stop_ids;
  nne_pb_str_list_dec_t stops, saves;
  steps_dec_t steps;
  nne_rpc_trace_in_t *tin;  /* the intervention, into the given session */
} gen_dec_t;

static int gen_dec_init(gen_dec_t *gd, const nne_config_t *cfg,
                        nne_trace_session_t *sess, nne_err_t *err) {
  memset(gd, 0, sizeof *gd);
  /* Every value takes at least one byte on the wire: the message limit
   * bounds them; the model's limits are checked once it is known. */
  nne_rows_dec_init(&gd->prompts, nnedit_v1_TokenRow_ids_tag, cfg->max_batch,
                    cfg->max_message_bytes);
  gd->stop_ids.max = NNE_GEN_MAX_STOP_IDS;
  gd->stops.max = NNE_GEN_MAX_STOP_STRINGS;
  gd->stops.max_len = NNE_GEN_MAX_STOP_LEN;
  gd->saves.max = NNE_GEN_MAX_SAVES;
  gd->saves.max_len = 240; /* "<site>@<step>" names a streamed tensor */
  gd->steps.max = cfg->max_trace_nodes;
  NNE_PB_DEC(gd->in.prompts, nne_rows_dec_cb, &gd->prompts);
  NNE_PB_DEC(gd->in.stop_token_ids, nne_pb_i64_dec, &gd->stop_ids);
  NNE_PB_DEC(gd->in.stop_strings, nne_pb_str_list_dec, &gd->stops);
  NNE_PB_DEC(gd->in.save, nne_pb_str_list_dec, &gd->saves);
  NNE_PB_DEC(gd->in.steps, steps_cb, &gd->steps);
  gd->tin = nne_rpc_trace_in_new(cfg, sess);
  if (gd->tin == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  NNE_PB_DEC(gd->in.intervention, nne_rpc_trace_in_cb, gd->tin);
  return 0;
}

/* The reason a decode stopped: ours (a bound, the intervention's), else
 * nanopb's `why`. */
static void gen_dec_error(const gen_dec_t *gd, const nne_config_t *cfg,
                          const char *why, nne_err_t *err) {
  if (nne_rpc_trace_in_err(gd->tin) != NULL) {
    *err = *nne_rpc_trace_in_err(gd->tin);
    nne_infer_generate_field(err);
  } else if (gd->steps.overflow)
    nne_err_set(err, NNE_ERESOURCE,
                "steps: more than %zu entries (--max-trace-nodes)",
                gd->steps.max);
  else if (gd->saves.overflow)
    nne_err_set(err, NNE_ERESOURCE,
                "save: more than %zu sites, or a site name longer than %zu",
                gd->saves.max, gd->saves.max_len);
  else if (gd->stops.overflow)
    nne_err_set(err, NNE_ERESOURCE,
                "stop_strings: more than %d strings, or one longer than %d "
                "bytes",
                NNE_GEN_MAX_STOP_STRINGS, NNE_GEN_MAX_STOP_LEN);
  else if (gd->stop_ids.overflow)
    nne_err_set(err, NNE_ERESOURCE, "stop_token_ids: more than %d ids",
                NNE_GEN_MAX_STOP_IDS);
  else if (gd->prompts.text_too_big)
    nne_err_set(err, NNE_ERESOURCE,
                "prompts: a text row over %zu bytes, or texts over the "
                "message limit",
                NNE_ROW_TEXT_MAX);
  else if (gd->prompts.overflow)
    nne_err_set(err, NNE_ERESOURCE, "prompts: more than %u rows (--max-batch)",
                cfg->max_batch);
  else
    nne_err_set(err, NNE_EINVAL, "malformed GenerateRequest: %s", why);
}

/* The checks that need no model. */
static int gen_dec_check(const gen_dec_t *gd, nne_err_t *err) {
  if (gd->in.cache != nnedit_v1_CacheMode_CACHE_MODE_UNSPECIFIED &&
      gd->in.cache != nnedit_v1_CacheMode_CACHE_MODE_OFF)
    return nne_err_set(err, NNE_EINVAL, "cache: unknown CacheMode %d",
                       (int)gd->in.cache);
  if (gd->in.save_layout != nnedit_v1_SaveLayout_SAVE_LAYOUT_UNSPECIFIED &&
      gd->in.save_layout != nnedit_v1_SaveLayout_SAVE_LAYOUT_SEQUENCE)
    return nne_err_set(err, NNE_EINVAL, "save_layout: unknown SaveLayout %d",
                       (int)gd->in.save_layout);
  return 0;
}

static void gen_dec_free(gen_dec_t *gd) {
  nne_rows_free(&gd->prompts);
  free(gd->stop_ids.v);
  nne_pb_str_list_free(&gd->stops);
  nne_pb_str_list_free(&gd->saves);
  free(gd->steps.v);
  nne_rpc_trace_in_free(gd->tin);
  memset(gd, 0, sizeof *gd);
}

int nne_rpc_generate_decode(const nne_config_t *cfg, const uint8_t *buf,
                            size_t len, nne_err_t *err) {
  nne_trace_session_t sess;
  pb_istream_t s = pb_istream_from_buffer(buf, len);
  gen_dec_t gd;
  int rc;

  nne_trace_session_init(&sess, 1, cfg->max_trace_nodes);
  rc = gen_dec_init(&gd, cfg, &sess, err);
  if (rc == 0 && !pb_decode(&s, nnedit_v1_GenerateRequest_fields, &gd.in)) {
    gen_dec_error(&gd, cfg, PB_GET_ERROR(&s), err);
    rc = err->code;
  }
  if (rc == 0)
    rc = gen_dec_check(&gd, err);
  gen_dec_free(&gd);
  nne_trace_session_free(&sess);
  return rc;
}

void nne_rpc_inference_generate(nne_call_t *call, grpc_byte_buffer *req) {
  nne_daemon_t *d = nne_call_app(call);
  const nne_config_t *cfg = d->cfg;
  nne_batch_group_t group = {0};
  nne_infer_generate_t *g = NULL;
  nne_gen_opts_t o;
  size_t n_invokes = 0;
  gen_dec_t gd;
  nne_err_t err;
  char why[256];
  int rc;

  memset(&gd, 0, sizeof gd);
  g = nne_infer_generate_new(d, call, send_result, send_step,
                             nnedit_v1_GenerateResponse_chunk_tag);
  if (g == NULL) {
    nne_err_set(&err, NNE_ENOMEM, "out of memory");
    goto fail;
  }
  if (gen_dec_init(&gd, cfg, nne_infer_generate_session(g), &err) != 0)
    goto fail;
  if (!nne_pb_decode_bb(req, nnedit_v1_GenerateRequest_fields, &gd.in, why,
                        sizeof why)) {
    gen_dec_error(&gd, cfg, why, &err);
    goto fail;
  }
  if (gen_dec_check(&gd, &err) != 0)
    goto fail;
  (void)nne_rpc_trace_in_trace(gd.tin, &n_invokes);
  nne_call_set_model(call, gd.in.model);
  rc = nne_infer_generate_hold(g, gd.in.model, gd.in.edit_set, &err);
  if (rc == 0) {
    const nnedit_v1_GenerateRequest *in = &gd.in;
    memset(&o, 0, sizeof o);
    o.max_new_tokens = in->max_new_tokens;
    o.temperature = in->sampling.temperature;
    o.top_k = in->sampling.top_k;
    o.top_p = in->sampling.top_p;
    o.repetition_penalty = in->sampling.repetition_penalty;
    o.has_seed = in->sampling.has_seed;
    o.seed = in->sampling.seed;
    o.stop_ids = gd.stop_ids.v;
    o.n_stop_ids = gd.stop_ids.n;
    o.stop_strings = gd.stops.v; /* taken by prepare */
    o.n_stop_strings = gd.stops.n;
    gd.stops.v = NULL;
    gd.stops.n = gd.stops.cap = 0;
    o.ignore_eos = in->ignore_eos;
    o.alternatives = in->top_alternatives;
    o.cache_off = in->cache == nnedit_v1_CacheMode_CACHE_MODE_OFF;
    o.saves = gd.saves.v; /* taken by prepare */
    o.n_saves = gd.saves.n;
    gd.saves.v = NULL;
    gd.saves.n = gd.saves.cap = 0;
    o.steps = gd.steps.v;
    o.n_steps = gd.steps.n;
    o.save_sequence = in->save_layout == nnedit_v1_SaveLayout_SAVE_LAYOUT_SEQUENCE;
    group.ids = &gd.prompts;
    group.mask = NULL;
    group.prefix = "";
    group.field = "prompts";
    rc = nne_infer_generate_prepare(g, &group, n_invokes, &o, &err);
  }
  if (rc == 0)
    rc = nne_infer_generate_submit(g, &err);
  if (rc != 0)
    goto fail;
  gen_dec_free(&gd);
  return;
fail:
  gen_dec_free(&gd);
  nne_infer_generate_free(g);
  nne_call_fail_err(call, &err);
}
