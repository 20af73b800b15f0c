/* generate.c — nnedit.v1.Inference/Generate: prompts to continuations,
 * token by token (internal.h, block generate.c).
 *
 * The stream is steps, then saved tensors, then one result. A step's
 * tokens decode into arrays the call keeps from step to step (their texts
 * in one block, their alternatives through forward.c's top-k rows), are
 * handed to the caller's callback as soon as the step is whole, and are
 * emptied for the next. Tensors go through the reassembler (tensor.c),
 * as Trace's do; the result's rows through decode.c's repeated messages.
 * An intervention graph goes out through igraph.c's encoders, as a Trace
 * of nodes and a list of their steps.
 * The whole stream is held to the protocol: anything out of order, over
 * the request's bounds or not adding up is INTERNAL naming what.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define M_GENERATE "/nnedit.v1.Inference/Generate"

_Static_assert(NNE__FIELD_SIZE(nnedit_v1_GenerateRequest, model) ==
                       NNE_CLIENT_MODEL_NAME_MAX &&
                   NNE__FIELD_SIZE(nnedit_v1_GenerateRequest, edit_set) ==
                       NNE_CLIENT_EDIT_SET_ID_MAX &&
                   NNE__FIELD_SIZE(nnedit_v1_GeneratedRow, stop) ==
                       NNE_CLIENT_STOP_MAX,
               "GenerateRequest.model, .edit_set, GeneratedRow.stop bounds");
_Static_assert((int)nnedit_v1_FinishReason_FINISH_REASON_STOP_STRING ==
                       (int)NNE_CLIENT_FINISH_STOP_STRING &&
                   (int)nnedit_v1_CacheMode_CACHE_MODE_OFF == 1,
               "FinishReason and CacheMode numbers");

const char *nne_client_finish_reason_name(int reason) {
  switch (reason) {
  case NNE_CLIENT_FINISH_LENGTH: return "length";
  case NNE_CLIENT_FINISH_STOP_TOKEN: return "stop_token";
  case NNE_CLIENT_FINISH_STOP_STRING: return "stop_string";
  default: return "unspecified";
  }
}

/* ---- checking and encoding ----------------------------------------------- */

/* Decimal digits of v (1 for 0). */
static size_t digits(uint32_t v) {
  size_t n = 1;
  while (v >= 10) {
    v /= 10;
    n++;
  }
  return n;
}

/* The intervention: built without error, and its saves' tensors
 * ("<name>@<step>", `at` bytes after the name at the last step) named
 * within bounds. */
static int ivn_check(const nne_client_igraph_t *ig, size_t at,
                     nne_client_err_t *err) {
  nne_client_err_t gerr;
  const char *name;
  uint32_t id;
  size_t pos = 0;
  if (nne_client_igraph_error(ig, &gerr) < 0)
    return nne__err_set(err, gerr.code, "generate: intervention: %s",
                        gerr.message);
  while (nne__igraph_next_save(ig, &pos, &name, &id))
    if (strlen(name) + at >= NNE_CLIENT_NAME_MAX)
      return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                          "generate: intervention: node %" PRIu32
                          " (save): name '%.64s...' is too long: its "
                          "tensors are named '<name>@<step>', at most %d "
                          "bytes",
                          id, name, NNE_CLIENT_NAME_MAX - 1);
  return 0;
}

int nne__gen_check(const nne_client_generate_req_t *req,
                   nne_client_err_t *err) {
  size_t i, max_mask = 0, at;
  int rc;
  if ((rc = nne__check_name("generate: model", req->model,
                            NNE_CLIENT_MODEL_NAME_MAX, err)) < 0 ||
      (rc = nne__check_opt_str("generate: edit_set", req->edit_set,
                               NNE_CLIENT_EDIT_SET_ID_MAX, err)) < 0 ||
      (rc = nne__rows_check("generate: prompts: ", req->prompts, req->n_prompts,
                            NULL, 0, &max_mask, err)) < 0)
    return rc;
  if (req->n_stop_token_ids > 0 && req->stop_token_ids == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "generate: stop_token_ids is NULL with "
                        "n_stop_token_ids %zu",
                        req->n_stop_token_ids);
  if (req->n_stop_token_ids > NNE_CLIENT_MAX_STOP_TOKENS)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "generate: stop_token_ids: %zu ids, at most %d",
                        req->n_stop_token_ids, NNE_CLIENT_MAX_STOP_TOKENS);
  if (req->n_stop_strings > 0 && req->stop_strings == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "generate: stop_strings is NULL with n_stop_strings "
                        "%zu",
                        req->n_stop_strings);
  if (req->n_stop_strings > NNE_CLIENT_MAX_STOP_STRINGS)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "generate: stop_strings: %zu strings, at most %d",
                        req->n_stop_strings, NNE_CLIENT_MAX_STOP_STRINGS);
  for (i = 0; i < req->n_stop_strings; i++) {
    const char *s = req->stop_strings[i];
    size_t n = s != NULL ? strlen(s) : 0;
    const char *bad = s == NULL ? "NULL" : "empty";
    if (n > NNE_CLIENT_STOP_STRING_MAX)
      bad = "too long";
    if (n == 0 || n > NNE_CLIENT_STOP_STRING_MAX)
      return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                          "generate: stop_strings[%zu] is %s (1 to %d bytes)",
                          i, bad, NNE_CLIENT_STOP_STRING_MAX);
    if (!nne_pb_utf8_valid(s))
      return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                          "generate: stop_strings[%zu] is not valid UTF-8", i);
  }
  if (req->top_alternatives > NNE_CLIENT_MAX_ALTERNATIVES)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "generate: top_alternatives %" PRIu32 ", at most %d",
                        req->top_alternatives, NNE_CLIENT_MAX_ALTERNATIVES);
  if (req->n_save > 0 && req->save == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "generate: save is NULL with n_save %zu", req->n_save);
  /* Each save comes back once per step as "<site>@<step>", a tensor name:
   * the last step's must fit. */
  at = 1 + digits(req->max_new_tokens > 0 ? req->max_new_tokens - 1 : 0);
  for (i = 0; i < req->n_save; i++) {
    if (req->save[i] == NULL || req->save[i][0] == '\0')
      return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                          "generate: save[%zu] is %s", i,
                          req->save[i] == NULL ? "NULL" : "empty");
    if (strlen(req->save[i]) + at >= NNE_CLIENT_NAME_MAX)
      return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                          "generate: save[%zu] '%.64s...' is too long: its "
                          "tensors are named '<site>@<step>', at most %d "
                          "bytes",
                          i, req->save[i], NNE_CLIENT_NAME_MAX - 1);
  }
  return req->intervention != NULL ? ivn_check(req->intervention, at, err) : 0;
}

/* GenerateRequest.intervention, the one element of a list: a Trace of the
 * graph's nodes (no name, no invokes). */
static bool fill_ivn(void *ctx, size_t i, void *msg) {
  nne__gen_enc_t *enc = ctx;
  nnedit_v1_Trace *t = msg; /* zeroed by nne_pb_list_enc */
  (void)i;
  nne__igraph_enc(&enc->ivn_nodes, enc->ivn_graph, &t->nodes);
  return true;
}

void nne__gen_req(const nne_client_generate_req_t *req,
                  nnedit_v1_GenerateRequest *m, nne__gen_enc_t *enc) {
  const nne_client_sampling_t *sp = &req->sampling;
  *m = (nnedit_v1_GenerateRequest)nnedit_v1_GenerateRequest_init_zero;
  memset(enc, 0, sizeof *enc);
  nne__copy_str(m->model, sizeof m->model, req->model);
  enc->rows.rows = req->prompts;
  nne__rows_enc(&enc->rows, req->n_prompts, 0, &m->prompts, &enc->no_mask);
  m->max_new_tokens = req->max_new_tokens;
  /* All unset is greedy: the message then goes without it. */
  m->has_sampling = sp->temperature != 0 || sp->top_k != 0 || sp->top_p != 0 ||
                    sp->has_seed || sp->repetition_penalty != 0;
  m->sampling.temperature = sp->temperature;
  m->sampling.top_k = sp->top_k;
  m->sampling.top_p = sp->top_p;
  m->sampling.has_seed = sp->has_seed;
  m->sampling.seed = sp->seed;
  m->sampling.repetition_penalty = sp->repetition_penalty;
  enc->stop_ids =
      (nne_pb_i64_enc_t){req->stop_token_ids, req->n_stop_token_ids};
  if (req->n_stop_token_ids > 0)
    NNE_PB_ENC(m->stop_token_ids, nne_pb_i64_enc, &enc->stop_ids);
  enc->stop_strings =
      (nne_pb_str_list_enc_t){req->stop_strings, req->n_stop_strings};
  NNE_PB_ENC(m->stop_strings, nne_pb_str_list_enc, &enc->stop_strings);
  m->ignore_eos = req->ignore_eos;
  m->top_alternatives = req->top_alternatives;
  nne__copy_str(m->edit_set, sizeof m->edit_set, req->edit_set);
  enc->save = (nne_pb_str_list_enc_t){req->save, req->n_save};
  NNE_PB_ENC(m->save, nne_pb_str_list_enc, &enc->save);
  m->cache = req->cache_off ? nnedit_v1_CacheMode_CACHE_MODE_OFF
                            : nnedit_v1_CacheMode_CACHE_MODE_UNSPECIFIED;
  if (req->intervention != NULL) {
    /* A submessage field written as a list of one: the same bytes. */
    enc->ivn_graph = req->intervention;
    enc->ivn = (nne_pb_list_enc_t){1, fill_ivn, enc, sizeof(nnedit_v1_Trace)};
    NNE_PB_ENC(m->intervention, nne_pb_list_enc, &enc->ivn);
    nne__igraph_steps_enc(&enc->ivn_nodes, req->intervention, &m->steps);
  }
}

/* ---- the stream ---------------------------------------------------------- */

/* Whose a saved tensor is. */
typedef enum gen_tensor_kind {
  GT_REQ,   /* the request's save sites, in their order */
  GT_IVN,   /* a save node of the intervention */
  GT_EXTRA, /* one of the edit set's SAVE edits */
} gen_tensor_kind_t;

struct nne__gen {
  const nne_client_generate_req_t *req;
  nne_client_generate_result_t *out;
  nne_client_token_cb cb;
  void *ctx;
  bool has_edit_set;
  unsigned members;   /* bit per GenerateResponse member in this message */
  bool have_result;   /* nothing may follow it */
  bool stopped;       /* the callback said stop */
  uint32_t n_steps;   /* steps streamed so far */
  size_t *row_tokens; /* row_tokens[r]: tokens of row r so far */
  uint32_t *row_seen; /* row_seen[r]: 1 + the step of r's last token */
  /* The step being decoded: its tokens, their texts (offsets into
   * `texts` until the step is whole) and alternatives (tops[i] holds
   * tokens[i]'s; one per prompt, kept from step to step). */
  nne__rep_t tok_rep;
  nnedit_v1_GeneratedToken tok_msg;
  nne_client_gen_token_t *toks;
  size_t n_toks;
  nne_client_row_topk_t *tops;
  size_t n_tops;
  nne__topk_t topk;
  nne__strs_t texts;
  const char *text_off;
  size_t text_len;
  bool has_text;
  /* Tensors: the request's saves come "<save[k % n]>@<k / n>" in order;
   * the intervention's ("<save node's name>@<step>") and an edit set's
   * anywhere among them. */
  nne__asm_t asm_;
  gen_tensor_kind_t kind; /* of the tensor in progress */
  size_t n_req_tensors, n_ivn, n_extra, saved_cap;
  const char **ivn_saves; /* the intervention's save names */
  size_t n_ivn_saves;
  /* The result: rows, their ids and texts, and the saved list. */
  nne__rep_t row_rep;
  nnedit_v1_GeneratedRow row_msg;
  nne_client_generated_row_t *row; /* the row being decoded */
  nne_pb_i64_dec_t ids;
  size_t n_listed;
  nne__dec_t dec;
};

/* GeneratedToken.text: into the step's block. */
static bool tok_text_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  nne__gen_t *g = *arg;
  size_t n = s->bytes_left;
  (void)f;
  if (!nne__strs_read(&g->texts, s, NNE_CLIENT_TOKEN_TEXT_MAX - 1, &g->text_off,
                      &g->dec, "step: a token's text"))
    return false;
  g->text_len = n;
  g->has_text = true;
  return true;
}

static void tok_arm(nne__rep_t *r, void *msg, size_t i) {
  nne__gen_t *g = r->ctx;
  nnedit_v1_GeneratedToken *m = msg;
  char what[32];
  g->has_text = false;
  NNE_PB_DEC(m->text, tok_text_dec, g);
  snprintf(what, sizeof what, "step: tokens[%zu].top", i);
  nne__topk_row_begin(&g->topk, &g->tops[i], what, &m->top);
}

static bool tok_take(nne__rep_t *r, const void *msg, void *item, size_t i) {
  nne__gen_t *g = r->ctx;
  const nnedit_v1_GeneratedToken *m = msg;
  nne_client_gen_token_t *t = item;
  nne__topk_row_end(&g->topk, &g->tops[i]);
  if (m->row >= g->req->n_prompts)
    return nne__dec_fail(&g->dec, NNE_CLIENT_INTERNAL,
                         "step %" PRIu32 ": a token of row %" PRIu32
                         ", the request has %zu prompts",
                         g->n_steps, m->row, g->req->n_prompts);
  if (g->row_seen[m->row] == g->n_steps + 1)
    return nne__dec_fail(&g->dec, NNE_CLIENT_INTERNAL,
                         "step %" PRIu32 ": two tokens of row %" PRIu32,
                         g->n_steps, m->row);
  g->row_seen[m->row] = g->n_steps + 1;
  /* A token without text gets an empty string of its own, so that every
   * text is an offset into the block. */
  if (!g->has_text && !nne__strs_add(&g->texts, "", &g->text_off))
    return nne__dec_fail(&g->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "out of memory");
  t->row = m->row;
  t->token_id = m->token_id;
  t->text = g->text_off;
  t->text_len = g->has_text ? g->text_len : 0;
  t->logprob = m->logprob;
  t->top = g->tops[i].top;
  t->n_top = g->tops[i].n_top;
  return true;
}

/* A step, decoded: checked, counted and handed to the callback (which may
 * stop the generation: g->stopped). */
static bool step_done(nne__gen_t *g, const nnedit_v1_GenerateStep *m) {
  size_t k;
  if (m->step != g->n_steps)
    return nne__dec_fail(&g->dec, NNE_CLIENT_INTERNAL,
                         "step %" PRIu32 " came where step %" PRIu32 " was due",
                         m->step, g->n_steps);
  if (m->step >= g->req->max_new_tokens)
    return nne__dec_fail(&g->dec, NNE_CLIENT_INTERNAL,
                         "step %" PRIu32 " of max_new_tokens %" PRIu32, m->step,
                         g->req->max_new_tokens);
  if (g->n_toks == 0)
    return nne__dec_fail(&g->dec, NNE_CLIENT_INTERNAL,
                         "step %" PRIu32 " has no tokens", m->step);
  for (k = 0; k < g->n_toks; k++) {
    g->toks[k].text = g->texts.p + (uintptr_t)g->toks[k].text;
    g->row_tokens[g->toks[k].row]++;
  }
  g->n_steps++;
  if (g->cb != NULL && g->cb(g->ctx, m->step, g->toks, g->n_toks) != 0)
    g->stopped = true;
  nne__rows_clear(g->tops, g->n_toks);
  g->n_toks = 0;
  g->texts.len = 0;
  return true;
}

/* The name the k-th tensor of the request's saves has. */
static void req_tensor_name(const nne__gen_t *g, size_t k, char *buf,
                            size_t cap) {
  size_t n = g->req->n_save;
  snprintf(buf, cap, "%s@%zu", g->req->save[k % n], k / n);
}

/* Whether `name` is "<an intervention save's name>@<a streamed step>". */
static bool is_ivn_tensor(const nne__gen_t *g, const char *name) {
  const char *at = strrchr(name, '@'), *p;
  size_t k, len;
  uint64_t step = 0;
  if (at == NULL || at[1] == '\0' || (at[1] == '0' && at[2] != '\0'))
    return false;
  for (p = at + 1; *p != '\0'; p++) {
    if (*p < '0' || *p > '9' || step >= g->n_steps)
      return false;
    step = step * 10 + (uint64_t)(*p - '0');
  }
  if (step >= g->n_steps)
    return false;
  len = (size_t)(at - name);
  for (k = 0; k < g->n_ivn_saves; k++)
    if (strlen(g->ivn_saves[k]) == len &&
        memcmp(g->ivn_saves[k], name, len) == 0)
      return true;
  return false;
}

/* A first chunk: which tensor it starts. */
static bool tensor_begin(nne__gen_t *g, const char *name) {
  char want[NNE_CLIENT_NAME_MAX + 16] = "";
  size_t n_req = g->req->n_save * g->n_steps;
  if (g->n_req_tensors < n_req) {
    req_tensor_name(g, g->n_req_tensors, want, sizeof want);
    if (strcmp(name, want) == 0) {
      g->kind = GT_REQ;
      return true;
    }
  }
  if (is_ivn_tensor(g, name)) {
    /* Once per save node and step at most (names are unique). */
    if (g->n_ivn >= g->n_ivn_saves * g->n_steps)
      return nne__dec_fail(&g->dec, NNE_CLIENT_INTERNAL,
                           "tensor '%.200s': more than %zu tensors of the "
                           "intervention's %zu saves in %" PRIu32 " steps",
                           name, g->n_ivn_saves * g->n_steps, g->n_ivn_saves,
                           g->n_steps);
    g->kind = GT_IVN;
    return true;
  }
  if (g->has_edit_set) {
    /* One of the set's SAVE edits, once per step at most. */
    if (g->n_extra >= (size_t)NNE_CLIENT_MAX_EDITS * g->n_steps)
      return nne__dec_fail(&g->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                           "more than %d saved tensors of the edit set per "
                           "step",
                           NNE_CLIENT_MAX_EDITS);
    g->kind = GT_EXTRA;
    return true;
  }
  if (want[0] != '\0')
    return nne__dec_fail(&g->dec, NNE_CLIENT_INTERNAL,
                         "tensor '%.200s' came where '%.200s' was due", name,
                         want);
  return nne__dec_fail(&g->dec, NNE_CLIENT_INTERNAL,
                       "tensor '%.200s' after the %zu tensors asked for "
                       "(%zu saves, %" PRIu32 " steps)",
                       name, n_req, g->req->n_save, g->n_steps);
}

static bool chunk_done(nne__gen_t *g) {
  nne_client_generate_result_t *out = g->out;
  size_t max;
  bool done;
  if (!g->asm_.active && !tensor_begin(g, g->asm_.msg->name))
    return false;
  if (!nne__asm_feed(&g->asm_, &done, &g->dec))
    return false;
  if (!done)
    return true;
  max = (g->req->n_save + g->n_ivn_saves) * g->n_steps +
        (g->has_edit_set ? (size_t)NNE_CLIENT_MAX_EDITS * g->n_steps : 0);
  if (nne_vec_grow_max(&out->saved, &g->saved_cap, out->n_saved + 1,
                       sizeof *out->saved, max) != 0)
    return nne__dec_fail(&g->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "out of memory");
  nne__asm_take(&g->asm_, &out->saved[out->n_saved++]);
  if (g->kind == GT_REQ)
    g->n_req_tensors++;
  else if (g->kind == GT_IVN)
    g->n_ivn++;
  else
    g->n_extra++;
  return true;
}

/* GeneratedRow.ids, at most max_new_tokens of them. */
static bool row_ids_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  nne__gen_t *g = *arg;
  void *ids = &g->ids;
  if (nne_pb_i64_dec(s, f, &ids))
    return true;
  if (g->ids.overflow)
    return nne__dec_fail(&g->dec, NNE_CLIENT_INTERNAL,
                         "result.rows[%zu].ids: more than max_new_tokens "
                         "(%" PRIu32 ") ids",
                         (size_t)(g->row - g->out->rows),
                         g->req->max_new_tokens);
  return false;
}

/* GeneratedRow.text, bounded by the message it comes in. */
static bool row_text_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  nne__gen_t *g = *arg;
  size_t n = s->bytes_left;
  char *p = malloc(n + 1);
  (void)f;
  if (p == NULL)
    return nne__dec_fail(&g->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "out of memory");
  if (!pb_read(s, (pb_byte_t *)p, n)) {
    free(p);
    return nne__dec_fail(&g->dec, NNE_CLIENT_INTERNAL, "result.rows: %s",
                         PB_GET_ERROR(s));
  }
  p[n] = '\0';
  free(g->row->text); /* a repeated occurrence: the last one counts */
  g->row->text = p;
  g->row->text_len = n;
  return true;
}

static void row_arm(nne__rep_t *r, void *msg, size_t i) {
  nne__gen_t *g = r->ctx;
  nnedit_v1_GeneratedRow *m = msg;
  g->row = (nne_client_generated_row_t *)*r->items + i;
  g->ids.n = 0;
  g->ids.overflow = false;
  NNE_PB_DEC(m->ids, row_ids_dec, g);
  NNE_PB_DEC(m->text, row_text_dec, g);
}

static bool row_take(nne__rep_t *r, const void *msg, void *item, size_t i) {
  nne__gen_t *g = r->ctx;
  const nnedit_v1_GeneratedRow *m = msg;
  nne_client_generated_row_t *row = item;
  if (g->ids.n != g->row_tokens[i])
    return nne__dec_fail(&g->dec, NNE_CLIENT_INTERNAL,
                         "result.rows[%zu] has %zu ids, %zu tokens of the row "
                         "were streamed",
                         i, g->ids.n, g->row_tokens[i]);
  if (row->text == NULL && (row->text = calloc(1, 1)) == NULL)
    return nne__dec_fail(&g->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "out of memory");
  /* The ids move to the row; the decoder starts a new array. */
  row->ids = g->ids.v;
  row->n_ids = g->ids.n;
  g->ids.v = NULL;
  g->ids.cap = g->ids.n = 0;
  row->finish_reason = (nne_client_finish_reason_t)m->finish_reason;
  memcpy(row->stop, m->stop, sizeof row->stop);
  row->prompt_tokens = m->prompt_tokens;
  return true;
}

/* GenerateResult.saved: exactly the tensors that came, in order. */
static bool saved_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  nne__gen_t *g = *arg;
  const nne_client_generate_result_t *out = g->out;
  char name[NNE_CLIENT_NAME_MAX], what[48];
  size_t k = g->n_listed;
  (void)f;
  snprintf(what, sizeof what, "result.saved[%zu]", k);
  if (!nne__dec_str(s, name, sizeof name, &g->dec, what))
    return false;
  if (!nne__saved_listed(&g->dec, what, name, out->saved, out->n_saved, k))
    return false;
  g->n_listed++;
  return true;
}

static bool result_done(nne__gen_t *g, const nnedit_v1_GenerateResult *m) {
  nne_client_generate_result_t *out = g->out;
  size_t n_req = g->req->n_save * g->n_steps;
  char want[NNE_CLIENT_NAME_MAX + 16];
  if (g->asm_.active)
    return nne__dec_fail(&g->dec, NNE_CLIENT_INTERNAL,
                         "the result came while tensor '%s' was incomplete "
                         "(%" PRIu64 " of %zu bytes)",
                         g->asm_.t.name, g->asm_.got, g->asm_.t.nbytes);
  if (m->steps != g->n_steps)
    return nne__dec_fail(&g->dec, NNE_CLIENT_INTERNAL,
                         "the result says %" PRIu32 " steps, %" PRIu32
                         " were streamed",
                         m->steps, g->n_steps);
  if (out->n_rows != g->req->n_prompts)
    return nne__dec_fail(&g->dec, NNE_CLIENT_INTERNAL,
                         "the result has %zu rows for %zu prompts", out->n_rows,
                         g->req->n_prompts);
  if (g->n_req_tensors < n_req) {
    req_tensor_name(g, g->n_req_tensors, want, sizeof want);
    return nne__dec_fail(&g->dec, NNE_CLIENT_INTERNAL,
                         "tensor '%.200s' was asked for and not sent", want);
  }
  if (g->n_listed != out->n_saved)
    return nne__dec_fail(&g->dec, NNE_CLIENT_INTERNAL,
                         "the result lists %zu saved tensors, %zu were sent",
                         g->n_listed, out->n_saved);
  if (m->has_timing) {
    out->timing.queue_ms = m->timing.queue_ms;
    out->timing.prefill_ms = m->timing.prefill_ms;
    out->timing.decode_ms = m->timing.decode_ms;
    out->timing.per_token_ms = m->timing.per_token_ms;
    out->timing.total_ms = m->timing.total_ms;
  }
  out->steps = m->steps;
  out->seed = m->seed;
  out->kv_cache = m->kv_cache;
  out->kv_cache_bytes = m->kv_cache_bytes;
  g->have_result = true;
  return true;
}

/* GenerateResponse.msg: just before a member is decoded (nanopb has zeroed
 * it, callbacks included), point its lists or bytes at us. */
static bool member_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  nne__gen_t *g = *arg;
  (void)s;
  if (g->members != 0)
    return nne__dec_fail(&g->dec, NNE_CLIENT_INTERNAL,
                         "a GenerateResponse with two members");
  g->members |= 1u << f->tag;
  if (g->have_result)
    return nne__dec_fail(&g->dec, NNE_CLIENT_INTERNAL,
                         "a message after the result");
  switch (f->tag) {
  case nnedit_v1_GenerateResponse_step_tag:
    if (g->out->n_saved > 0 || g->asm_.active)
      return nne__dec_fail(&g->dec, NNE_CLIENT_INTERNAL,
                           "a step after the saved tensors began");
    g->n_toks = 0;
    g->texts.len = 0;
    NNE_PB_DEC(((nnedit_v1_GenerateStep *)f->pData)->tokens, nne__rep_dec,
               &g->tok_rep);
    return true;
  case nnedit_v1_GenerateResponse_chunk_tag:
    nne__asm_arm(&g->asm_, f->pData);
    return true;
  default:
    NNE_PB_DEC(((nnedit_v1_GenerateResult *)f->pData)->rows, nne__rep_dec,
               &g->row_rep);
    NNE_PB_DEC(((nnedit_v1_GenerateResult *)f->pData)->saved, saved_dec, g);
    return true;
  }
}

int nne__gen_msg(void *ctx, grpc_byte_buffer *msg, nne_client_err_t *err) {
  nne__gen_t *g = ctx;
  nnedit_v1_GenerateResponse m;
  char why[128] = "";
  bool ok;

  memset(&m, 0, sizeof m);
  NNE_PB_DEC(m.cb_msg, member_dec, g);
  g->members = 0;
  if (!nne_pb_decode_bb(msg, nnedit_v1_GenerateResponse_fields, &m, why,
                        sizeof why)) {
    /* The reassembler's refusal, if it refused, is the reason. */
    nne__asm_refused(&g->asm_, &g->dec);
    return nne__dec_error(&g->dec, M_GENERATE, why, err);
  }
  if (g->members == 0)
    return nne__err_set(err, NNE_CLIENT_INTERNAL,
                        "Inference/Generate: a GenerateResponse with no "
                        "member");
  if (m.which_msg == nnedit_v1_GenerateResponse_step_tag)
    ok = step_done(g, &m.msg.step);
  else if (m.which_msg == nnedit_v1_GenerateResponse_chunk_tag)
    ok = chunk_done(g);
  else
    ok = result_done(g, &m.msg.result);
  if (!ok)
    return nne__dec_error(&g->dec, M_GENERATE, "", err);
  return g->stopped ? NNE__STREAM_ENOUGH : NNE__STREAM_MORE;
}

/* The intervention's save names (borrowed from the graph, which outlives
 * the call), for telling its tensors apart. False when memory runs out. */
static bool ivn_saves_index(nne__gen_t *g, const nne_client_igraph_t *ig) {
  const char *name;
  uint32_t id;
  size_t pos = 0, n = 0;
  while (nne__igraph_next_save(ig, &pos, &name, &id))
    n++;
  if (n == 0)
    return true;
  if ((g->ivn_saves = calloc(n, sizeof *g->ivn_saves)) == NULL)
    return false;
  for (pos = 0; nne__igraph_next_save(ig, &pos, &name, &id);)
    g->ivn_saves[g->n_ivn_saves++] = name;
  return true;
}

nne__gen_t *nne__gen_new(const nne_client_generate_req_t *req,
                         nne_client_token_cb cb, void *ctx,
                         nne_client_generate_result_t *out,
                         uint64_t max_tensor_bytes) {
  nne__gen_t *g = calloc(1, sizeof *g);
  size_t n = req->n_prompts > 0 ? req->n_prompts : 1;
  memset(out, 0, sizeof *out);
  if (g == NULL)
    return NULL;
  /* Per row, allocated once: at most one token a row a step. */
  g->row_tokens = calloc(n, sizeof *g->row_tokens);
  g->row_seen = calloc(n, sizeof *g->row_seen);
  g->tops = calloc(n, sizeof *g->tops);
  g->n_tops = n;
  if (g->row_tokens == NULL || g->row_seen == NULL || g->tops == NULL ||
      !ivn_saves_index(g, req->intervention)) {
    nne__gen_free(g);
    return NULL;
  }
  g->req = req;
  g->out = out;
  g->cb = cb;
  g->ctx = ctx;
  g->has_edit_set = req->edit_set != NULL && req->edit_set[0] != '\0';
  /* Only the scores' half of the top-k decoder serves here (its rows'
   * list is never hooked). */
  nne__topk_init(&g->topk, &g->tops, &g->n_tops, 0, req->top_alternatives,
                 &g->dec);
  /* Both bounds are the request's: a daemon sending more broke the
   * protocol (INTERNAL), not a limit of this client. */
  g->tok_rep = (nne__rep_t){.items = (void **)&g->toks,
                            .n = &g->n_toks,
                            .item_size = sizeof *g->toks,
                            .max = req->n_prompts,
                            .over_code = NNE_CLIENT_INTERNAL,
                            .what = "step",
                            .noun = "tokens",
                            .bound = "the request's prompts:",
                            .fields = nnedit_v1_GeneratedToken_fields,
                            .msg = &g->tok_msg,
                            .msg_size = sizeof g->tok_msg,
                            .arm = tok_arm,
                            .take = tok_take,
                            .ctx = g,
                            .dec = &g->dec};
  g->row_rep = (nne__rep_t){.items = (void **)&out->rows,
                            .n = &out->n_rows,
                            .item_size = sizeof *out->rows,
                            .max = req->n_prompts,
                            .over_code = NNE_CLIENT_INTERNAL,
                            .what = "result.rows",
                            .noun = "rows",
                            .bound = "the request's prompts:",
                            .fields = nnedit_v1_GeneratedRow_fields,
                            .msg = &g->row_msg,
                            .msg_size = sizeof g->row_msg,
                            .arm = row_arm,
                            .take = row_take,
                            .ctx = g,
                            .dec = &g->dec};
  g->ids.max = req->max_new_tokens;
  nne__asm_init(&g->asm_, max_tensor_bytes);
  return g;
}

int nne__gen_end(nne__gen_t *g, int rc, nne_client_err_t *err) {
  if (rc < 0)
    return rc;
  if (g->stopped)
    return nne__err_set(err, NNE_CLIENT_CANCELLED,
                        "generate: stopped by the token callback after step "
                        "%" PRIu32,
                        g->n_steps - 1);
  if ((rc = nne__asm_end(&g->asm_, M_GENERATE, err)) < 0)
    return rc;
  if (!g->have_result)
    return nne__err_set(err, NNE_CLIENT_INTERNAL,
                        "Inference/Generate: the stream ended after %" PRIu32
                        " steps without a result",
                        g->n_steps);
  return 0;
}

void nne__gen_free(nne__gen_t *g) {
  if (g == NULL)
    return;
  if (g->tops != NULL)
    nne__rows_free(g->tops, g->n_tops);
  free(g->toks);
  free(g->texts.p);
  free(g->row_tokens);
  free(g->row_seen);
  free(g->ivn_saves);
  free(g->ids.v);
  nne__asm_reset(&g->asm_);
  free(g);
}

/* ---- the call ------------------------------------------------------------ */

int nne_client_generate(nne_client_t *cli, const nne_client_generate_req_t *req,
                        nne_client_token_cb cb, void *ctx,
                        nne_client_generate_result_t *out,
                        nne_client_err_t *err) {
  nnedit_v1_GenerateRequest m;
  nne__gen_enc_t enc;
  nne__gen_t *g;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || req == NULL || out == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "generate: NULL argument");
  if ((rc = nne__gen_check(req, err)) < 0)
    return rc;
  if ((g = nne__gen_new(req, cb, ctx, out, cli->max_tensor_bytes)) == NULL)
    return nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                        "generate: out of memory");
  nne__gen_req(req, &m, &enc);
  rc = nne__stream(cli, M_GENERATE, nnedit_v1_GenerateRequest_fields, &m,
                   cli->timeout_ms, nne__gen_msg, g, err);
  rc = nne__gen_end(g, rc, err);
  nne__gen_free(g);
  if (rc < 0)
    nne_client_generate_result_free(out);
  return rc;
}

void nne_client_generate_result_free(nne_client_generate_result_t *res) {
  size_t i;
  if (res == NULL)
    return;
  for (i = 0; i < res->n_rows; i++) {
    free(res->rows[i].ids);
    free(res->rows[i].text);
  }
  free(res->rows);
  nne__tensors_free(res->saved, res->n_saved);
  memset(res, 0, sizeof *res);
}

const nne_client_tensor_t *
nne_client_generate_result_saved(const nne_client_generate_result_t *res,
                                 const char *name) {
  return res == NULL ? NULL : nne__tensor_find(res->saved, res->n_saved, name);
}

const nne_client_tensor_t *
nne_client_generate_result_saved_at(const nne_client_generate_result_t *res,
                                    const char *site, uint32_t step) {
  char name[NNE_CLIENT_NAME_MAX + 16];
  if (site == NULL)
    return NULL;
  snprintf(name, sizeof name, "%s@%" PRIu32, site, step);
  return nne_client_generate_result_saved(res, name);
}
