/* cmd_generate.c — `nneditctl generate MODEL --prompt TEXT ...`: prompts to
 * continuations, printed as the tokens arrive (ctl.h, block
 * cmd_generate.c); with -f FILE, an intervention run at each step (the
 * Generate form of TRACE-JSON, trace_json.h).
 *
 * How the tokens are shown depends on the output form:
 *   -o json            a JSON line per token as it comes, then the result
 *   --alternatives K   a line per token as it comes, with its alternatives
 *   one prompt         the text itself, flushed token by token
 *   several prompts    each row's text once the generation is over (rows
 *                      of one batch finish at different steps, and
 *                      interleaved pieces of several texts read as noise)
 * then, except with -o json, a summary line and the saved tensors.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "output.h"
#include "tensors.h"
#include "trace_json.h"

#define GEN_DEFAULT_MAX_NEW_TOKENS 16

/* ---- the command line ---------------------------------------------------- */

struct ctl_gen {
  nne_client_generate_req_t req;
  ctl_rows_t rows;
  const char **stops, **sites; /* room for one per argument */
  int64_t stop_ids[NNE_CLIENT_MAX_STOP_TOKENS];
  const char *save_dir;
  bool values;
  const char *file; /* -f: the intervention (TRACE-JSON's Generate form) */
  ctl_trace_file_t tf;
};

enum {
  OPT_PROMPT,
  OPT_IDS,
  OPT_TOKENS,
  OPT_MAX_NEW_TOKENS,
  OPT_TEMPERATURE,
  OPT_TOP_K,
  OPT_TOP_P,
  OPT_SEED,
  OPT_REPETITION_PENALTY,
  OPT_STOP,
  OPT_STOP_ID,
  OPT_IGNORE_EOS,
  OPT_ALTERNATIVES,
  OPT_EDIT_SET,
  OPT_SAVE,
  OPT_SAVE_DIR,
  OPT_VALUES,
  OPT_NO_CACHE,
  OPT_FILE,
};

/* --stop STR: 1 to NNE_CLIENT_STOP_STRING_MAX bytes, at most
 * NNE_CLIENT_MAX_STOP_STRINGS of them. */
static int arg_stop(ctl_args_t *a, nne_client_generate_req_t *req,
                    const char **stops) {
  const char *s;
  int rc;
  if ((rc = ctl_arg_text(a, NNE_CLIENT_STOP_STRING_MAX + 1, false, &s)) != 0)
    return rc;
  if (req->n_stop_strings == NNE_CLIENT_MAX_STOP_STRINGS)
    return ctl_usage(a->c, "%s: at most %d stop strings", a->typed,
                     NNE_CLIENT_MAX_STOP_STRINGS);
  stops[req->n_stop_strings++] = s;
  return 0;
}

/* One option of generate (k, the index in gen_opts) into g. */
static int gen_opt(ctl_args_t *a, int k, ctl_gen_t *g) {
  nne_client_generate_req_t *req = &g->req;
  nne_client_sampling_t *sp = &req->sampling;
  switch (k) {
  case OPT_PROMPT: return ctl_arg_prompt(a, &g->rows);
  case OPT_IDS:
  case OPT_TOKENS: return ctl_arg_tokens(a, &g->rows);
  case OPT_MAX_NEW_TOKENS:
    return ctl_arg_count(a, 1, UINT32_MAX, &req->max_new_tokens);
  case OPT_TEMPERATURE: return ctl_arg_number(a, 0, 100, &sp->temperature);
  case OPT_TOP_K: return ctl_arg_top_k(a, &sp->top_k);
  case OPT_TOP_P: return ctl_arg_number(a, 0, 1, &sp->top_p);
  case OPT_SEED: sp->has_seed = true; return ctl_arg_u64(a, &sp->seed);
  case OPT_REPETITION_PENALTY:
    return ctl_arg_number(a, 0, 10, &sp->repetition_penalty);
  case OPT_STOP: return arg_stop(a, req, g->stops);
  case OPT_STOP_ID:
    return ctl_arg_ids(a, g->stop_ids, &req->n_stop_token_ids,
                       NNE_CLIENT_MAX_STOP_TOKENS);
  case OPT_IGNORE_EOS: req->ignore_eos = true; return 0;
  case OPT_ALTERNATIVES:
    return ctl_arg_count(a, 0, NNE_CLIENT_MAX_ALTERNATIVES,
                         &req->top_alternatives);
  case OPT_EDIT_SET: return ctl_arg_edit_set(a, &req->edit_set);
  case OPT_SAVE: return ctl_arg_site(a, &g->sites[req->n_save++]);
  case OPT_SAVE_DIR: return ctl_arg_path(a, &g->save_dir);
  case OPT_VALUES: g->values = true; return 0;
  case OPT_NO_CACHE: req->cache_off = true; return 0;
  case OPT_FILE: return ctl_arg_path(a, &g->file);
  default: return ctl_fail(a->c, NNE_CLIENT_INTERNAL, "option %d", k);
  }
}

/* -f FILE: the intervention, and what the command line leaves to the file
 * (the model, the edit set, the prompts). */
static int gen_file(ctl_t *c, ctl_gen_t *g) {
  nne_client_generate_req_t *req = &g->req;
  const nne_client_trace_t *tr;
  if (!ctl_trace_file_load_generate(&g->tf, g->file))
    return ctl_usage(c, "%s: %s", g->file, g->tf.j.msg);
  tr = &g->tf.traces[0];
  /* No nodes: no intervention at all. */
  if (nne_client_igraph_size(tr->graph) > 0)
    req->intervention = tr->graph;
  if (req->model == NULL)
    req->model = g->tf.model;
  if (req->edit_set == NULL)
    req->edit_set = g->tf.edit_set;
  if (g->rows.n_ids == 0 && tr->n_invokes == 1) {
    req->prompts = tr->invokes[0].rows;
    req->n_prompts = tr->invokes[0].n_rows;
  }
  return 0;
}

/* What the options say together. */
static int gen_check(ctl_t *c, ctl_gen_t *g) {
  nne_client_generate_req_t *req = &g->req;
  int rc;
  /* The command line's prompts, unless only the file has some. */
  req->prompts = g->rows.ids;
  req->n_prompts = g->rows.n_ids;
  if (g->file != NULL && (rc = gen_file(c, g)) != 0)
    return rc;
  if (req->model == NULL)
    return ctl_usage(c, g->file != NULL ? "missing MODEL (an argument, or "
                                          "\"model\" in the file)"
                                        : "missing MODEL");
  if (req->n_prompts == 0)
    return ctl_usage(c, "at least one --prompt (or --ids row) is needed");
  /* Sampling settings without a temperature would be ignored by greedy
   * choice: said here rather than silently. */
  if (req->sampling.temperature == 0 &&
      (req->sampling.top_k != 0 || req->sampling.top_p != 0))
    return ctl_usage(c, "--top-k and --top-p apply when sampling: give a "
                        "--temperature above 0");
  if (g->save_dir != NULL && req->n_save == 0 && req->edit_set == NULL &&
      g->file == NULL)
    return ctl_usage(c, "--save-dir needs at least one --save SITE (or an "
                        "--edit-set with SAVE edits, or -f with save nodes)");
  if (g->values && req->n_save == 0 && req->edit_set == NULL &&
      g->file == NULL)
    return ctl_usage(c, "--values needs at least one --save SITE (or an "
                        "--edit-set with SAVE edits, or -f with save nodes)");
  req->stop_strings = g->stops;
  req->stop_token_ids = g->stop_ids;
  req->save = g->sites;
  return 0;
}

int ctl_gen_parse(ctl_t *c, int argc, char **argv, ctl_gen_t **out) {
  ctl_gen_t *g;
  ctl_args_t a;
  int k, rc = 0;

  *out = NULL;
  if ((g = calloc(1, sizeof *g)) == NULL)
    return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  g->req.max_new_tokens = GEN_DEFAULT_MAX_NEW_TOKENS;
  /* At most one row, stop string or site per argument: room for all. */
  if ((rc = ctl_rows_init(&g->rows, c, argc)) != 0) {
    free(g);
    return rc;
  }
  g->stops = calloc((size_t)argc + 1, sizeof *g->stops);
  g->sites = calloc((size_t)argc + 1, sizeof *g->sites);
  if (g->stops == NULL || g->sites == NULL) {
    ctl_gen_free(g);
    return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  }
  ctl_args_init(&a, c, argc, argv);
  while (rc == 0 && (k = ctl_args_next(&a)) != CTL_ARG_END) {
    if (k == CTL_ARG_HELP) {
      ctl_help(c);
      rc = CTL_HELP_SHOWN;
    } else if (k == CTL_ARG_BAD)
      rc = CTL_EXIT_USAGE;
    else if (k == CTL_ARG_POS)
      rc = g->req.model != NULL
               ? ctl_args_unexpected(&a)
               : ctl_arg_word(&a, "MODEL", NNE_CLIENT_MODEL_NAME_MAX,
                              &g->req.model);
    else
      rc = gen_opt(&a, k, g);
  }
  if (rc == 0)
    rc = gen_check(c, g);
  if (rc != 0) {
    ctl_gen_free(g);
    return rc;
  }
  *out = g;
  return 0;
}

const nne_client_generate_req_t *ctl_gen_req(const ctl_gen_t *g) {
  return &g->req;
}

void ctl_gen_free(ctl_gen_t *g) {
  if (g == NULL)
    return;
  ctl_rows_free(&g->rows);
  ctl_trace_file_free(&g->tf);
  free(g->stops);
  free(g->sites);
  free(g);
}

/* ---- tokens as they arrive ----------------------------------------------- */

typedef enum gen_mode {
  GEN_JSON,   /* a JSON line per token */
  GEN_TOKENS, /* a line per token, with its alternatives */
  GEN_STREAM, /* one prompt: its text, piece by piece */
  GEN_ROWS,   /* several prompts: each row's text at the end */
} gen_mode_t;

typedef struct gen_out {
  ctl_t *c;
  gen_mode_t mode;
  bool open_line; /* GEN_STREAM: text written that ended without '\n' */
  int rc;         /* the first failure to write (it stops the generation) */
} gen_out_t;

static json_t *token_json(uint32_t step, const nne_client_gen_token_t *t) {
  return json_pack("{s:I, s:I, s:I, s:o*, s:o, s:o}", "step", (json_int_t)step,
                   "row", (json_int_t)t->row, "id", (json_int_t)t->token_id,
                   "text", ctl_json_text(t->text, t->text_len), "logprob",
                   ctl_json_num(t->logprob), "top",
                   ctl_scores_json(t->top, t->n_top));
}

/* "step 3  row 0     13  '.'  logprob -0.7500  | '.' 0.47, ',' 0.21". */
static void token_line(uint32_t step, const nne_client_gen_token_t *t) {
  char q[160];
  size_t k;
  printf("step %4" PRIu32 "  row %3" PRIu32 "  %8" PRId64 "  %-16s  logprob "
         "%8.4f",
         step, t->row, t->token_id,
         ctl_quote_text(t->text, t->text_len, q, sizeof q), t->logprob);
  for (k = 0; k < t->n_top; k++)
    printf("%s%s %.4f", k ? ", " : "  | ",
           ctl_quote_text(t->top[k].text, t->top[k].text_len, q, sizeof q),
           t->top[k].prob);
  putchar('\n');
}

static int on_step(void *ctx, uint32_t step, const nne_client_gen_token_t *t,
                   size_t n) {
  gen_out_t *o = ctx;
  size_t i;
  for (i = 0; i < n && o->rc == 0; i++) {
    if (o->mode == GEN_JSON)
      o->rc = ctl_json_line(o->c, token_json(step, &t[i]));
    else if (o->mode == GEN_TOKENS)
      token_line(step, &t[i]);
    else if (o->mode == GEN_STREAM && t[i].text_len > 0) {
      fwrite(t[i].text, 1, t[i].text_len, stdout);
      o->open_line = t[i].text[t[i].text_len - 1] != '\n';
    }
  }
  /* Whoever reads the output sees each step as soon as it exists. */
  if (o->mode != GEN_ROWS && fflush(stdout) == EOF && o->rc == 0)
    o->rc = ctl_fail(o->c, NNE_CLIENT_INTERNAL, "cannot write the output");
  return o->rc != 0;
}

/* ---- the result ---------------------------------------------------------- */

static json_t *result_json(const ctl_gen_t *g,
                           const nne_client_generate_result_t *res,
                           char *const *files) {
  const nne_client_generate_timing_t *t = &res->timing;
  json_t *rows = json_array();
  char seed[24];
  size_t i, k;
  for (i = 0; i < res->n_rows; i++) {
    const nne_client_generated_row_t *r = &res->rows[i];
    json_t *ids = json_array();
    for (k = 0; k < r->n_ids; k++)
      json_array_append_new(ids, json_integer((json_int_t)r->ids[k]));
    json_array_append_new(
        rows, json_pack("{s:I, s:o, s:o*, s:s, s:o*, s:I}", "row",
                        (json_int_t)i, "ids", ids, "text",
                        ctl_json_text(r->text, r->text_len), "finish_reason",
                        nne_client_finish_reason_name(r->finish_reason), "stop",
                        ctl_json_text(r->stop, strlen(r->stop)),
                        "prompt_tokens", (json_int_t)r->prompt_tokens));
  }
  /* A drawn seed may exceed JSON's exact integers: a decimal string. */
  snprintf(seed, sizeof seed, "%" PRIu64, res->seed);
  return json_pack(
      "{s:s, s:o, s:o, s:I, s:s, s:b, s:I, s:{s:o, s:o, s:o, s:o, s:o}, "
      "s:o}",
      "model", g->req.model, "edit_set",
      g->req.edit_set ? json_string(g->req.edit_set) : json_null(), "rows",
      rows, "steps", (json_int_t)res->steps, "seed", seed, "kv_cache",
      res->kv_cache, "kv_cache_bytes", (json_int_t)res->kv_cache_bytes,
      "timing", "queue_ms", ctl_json_num(t->queue_ms), "prefill_ms",
      ctl_json_num(t->prefill_ms), "decode_ms", ctl_json_num(t->decode_ms),
      "per_token_ms", ctl_json_num(t->per_token_ms), "total_ms",
      ctl_json_num(t->total_ms), "saved",
      ctl_saved_json(res->saved, res->n_saved, files, g->values));
}

/* "length, 8 tokens" / "stop_string '\n', 3 tokens". */
static void finish_text(const nne_client_generated_row_t *r, char *buf,
                        size_t cap) {
  char q[64];
  size_t n = 0;
  buf[0] = '\0';
  ctl_line_add(buf, cap, &n, "%s",
               nne_client_finish_reason_name(r->finish_reason));
  if (r->stop[0] != '\0')
    ctl_line_add(buf, cap, &n, " %s",
                 ctl_quote_text(r->stop, strlen(r->stop), q, sizeof q));
  ctl_line_add(buf, cap, &n, ", %zu token%s", r->n_ids,
               r->n_ids == 1 ? "" : "s");
}

/* The line under the text: how each row ended and how fast it went. */
static void summary_line(const nne_client_generate_result_t *res) {
  const nne_client_generate_timing_t *t = &res->timing;
  char fin[128];
  size_t i, tokens = 0;
  printf("--");
  for (i = 0; i < res->n_rows; i++) {
    finish_text(&res->rows[i], fin, sizeof fin);
    if (res->n_rows == 1)
      printf(" %s", fin);
    else
      printf("%s row %zu: %s", i ? ";" : "", i, fin);
    tokens += res->rows[i].n_ids;
  }
  printf(" | %" PRIu32 " steps, prefill %.1f ms, %.2f ms/token", res->steps,
         t->prefill_ms, t->per_token_ms);
  /* End to end: every new token of every row over the whole call. */
  if (t->total_ms > 0)
    printf(", %.1f tokens/s", (double)tokens * 1000.0 / t->total_ms);
  if (res->kv_cache)
    printf(" | kv cache %" PRIu64 " bytes", res->kv_cache_bytes);
  else
    printf(" | no kv cache");
  printf(" | seed %" PRIu64 "\n", res->seed);
}

static void result_table(const gen_out_t *o, const ctl_gen_t *g,
                         const nne_client_generate_result_t *res,
                         char *const *files) {
  char q[200];
  size_t i;
  if (o->mode == GEN_STREAM && o->open_line)
    putchar('\n');
  for (i = 0; o->mode == GEN_ROWS && i < res->n_rows; i++) {
    const char *prompt = g->req.prompts[i].text;
    printf("row %zu", i);
    if (prompt != NULL)
      printf("  prompt %s",
             ctl_quote_text(prompt, strlen(prompt), q, sizeof q));
    printf(":\n");
    fwrite(res->rows[i].text, 1, res->rows[i].text_len, stdout);
    if (res->rows[i].text_len == 0 ||
        res->rows[i].text[res->rows[i].text_len - 1] != '\n')
      putchar('\n');
  }
  for (i = 0; o->mode == GEN_TOKENS && i < res->n_rows; i++)
    printf(
        "row %zu: %s\n", i,
        ctl_quote_text(res->rows[i].text, res->rows[i].text_len, q, sizeof q));
  summary_line(res);
  ctl_saved_table(res->saved, res->n_saved, files, g->values, "");
}

/* ---- the command --------------------------------------------------------- */

static int run_generate(ctl_t *c, int argc, char **argv) {
  nne_client_generate_result_t res;
  nne_client_err_t err;
  char **files = NULL;
  gen_out_t o;
  ctl_gen_t *g;
  int rc;

  memset(&res, 0, sizeof res);
  if ((rc = ctl_gen_parse(c, argc, argv, &g)) != 0)
    return rc == CTL_HELP_SHOWN ? 0 : rc;
  memset(&o, 0, sizeof o);
  o.c = c;
  o.mode = c->output == CTL_OUT_JSON     ? GEN_JSON
           : g->req.top_alternatives > 0 ? GEN_TOKENS
           : g->req.n_prompts == 1       ? GEN_STREAM
                                         : GEN_ROWS;
  /* Before the call: a directory that cannot be made wastes no
   * generation. */
  if (g->save_dir != NULL)
    rc = ctl_dir_make(c, "--save-dir", g->save_dir);
  if (rc == 0)
    rc = ctl_connect(c);
  if (rc == 0 &&
      nne_client_generate(c->cli, &g->req, on_step, &o, &res, &err) < 0) {
    /* The text streamed so far ends its line before the error. */
    if (o.open_line)
      putchar('\n');
    fflush(stdout);
    rc = o.rc != 0 ? o.rc : ctl_call_error(c, &err);
  }
  if (rc == 0 && g->save_dir != NULL)
    rc = ctl_npy_write_saved(c, g->save_dir, res.saved, res.n_saved, &files);
  if (rc == 0 && o.mode == GEN_JSON)
    rc = ctl_json_line(c, result_json(g, &res, files));
  else if (rc == 0)
    result_table(&o, g, &res, files);
  ctl_files_free(files, res.n_saved);
  nne_client_generate_result_free(&res);
  ctl_gen_free(g);
  return rc;
}

static const ctl_opt_t gen_opts[] = {
    [OPT_PROMPT] = CTL_OPT_PROMPT,
    [OPT_IDS] = {"--ids", NULL, true},
    [OPT_TOKENS] = CTL_OPT_TOKENS,
    [OPT_MAX_NEW_TOKENS] = {"--max-new-tokens", "-n", true},
    [OPT_TEMPERATURE] = {"--temperature", NULL, true},
    [OPT_TOP_K] = CTL_OPT_TOP_K,
    [OPT_TOP_P] = {"--top-p", NULL, true},
    [OPT_SEED] = {"--seed", NULL, true},
    [OPT_REPETITION_PENALTY] = {"--repetition-penalty", NULL, true},
    [OPT_STOP] = {"--stop", NULL, true},
    [OPT_STOP_ID] = {"--stop-id", NULL, true},
    [OPT_IGNORE_EOS] = {"--ignore-eos", NULL, false},
    [OPT_ALTERNATIVES] = {"--alternatives", NULL, true},
    [OPT_EDIT_SET] = CTL_OPT_EDIT_SET,
    [OPT_SAVE] = CTL_OPT_SAVE,
    [OPT_SAVE_DIR] = CTL_OPT_SAVE_DIR,
    [OPT_VALUES] = CTL_OPT_VALUES,
    [OPT_NO_CACHE] = {"--no-cache", NULL, false},
    [OPT_FILE] = CTL_OPT_FILE,
    CTL_OPT_END,
};

const ctl_cmd_t ctl_cmd_generate = {"generate", gen_opts, run_generate, false};
