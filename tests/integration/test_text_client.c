/* test_text_client.c — libnnedit on text against a real nneditd (issue
 * 10): text rows in Forward and Trace invokes and on an edit set,
 * Inference/Tokenize and Detokenize, the tokenizer in Describe, and a
 * model without a tokenizer.
 *
 * The daemon serves a repository made here: "gpt2-script", the fixture
 * with its tokenizer.json (tests/fixtures), and "notok", the same model
 * without one (symlinks to its model.json and model.pt only).
 *
 * What is checked:
 *   - Describe reports the tokenizer (kind, vocabulary size, file), and no
 *     tokenizer for notok;
 *   - Tokenize then Detokenize gives the text back; the pieces of the
 *     tokens that are not special spell the text; --raw drops the
 *     template's tokens and only those;
 *   - a text row is the row of its Tokenize ids: Forward's logits and
 *     top-k are bit-equal, in a batch beside an id row too (padded left);
 *     each top-k token's text is its id detokenized alone;
 *   - a Trace invoke of text saves what the invoke of its ids saves;
 *   - Forward on an edit set with a text row equals the same with ids,
 *     and differs from the pristine model;
 *   - notok answers FAILED_PRECONDITION naming tokenizer.json for a text
 *     row, Tokenize and Detokenize; the library refuses a row with both
 *     text and ids, and a text row to Detokenize, before the wire.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "fixtures.h"
#include "nnedit.h"
#include "client_helpers.h"

#define MODEL "gpt2-script"
#define NOTOK "notok"
#define PROMPT "The Eiffel Tower is in"

static nne_test_daemon_t g_daemon;
static char g_repo[64];

/* ---- helpers ------------------------------------------------------------- */

static nne_client_t *client(void) {
  return nne_tc_ready(g_daemon.addr, 120000, 0);
}

/* The ids the daemon makes of text (with the template unless raw); *n. */
static int64_t *tokenize_ids(nne_client_t *c, const char *text, bool raw,
                             size_t *n) {
  nne_client_tokenize_result_t tok;
  nne_client_err_t err;
  int64_t *ids;
  size_t k;
  ck_assert_msg(nne_client_tokenize(c, MODEL, &text, 1, raw, &tok, &err) == 0,
                "tokenize: %s: %s", nne_client_status_name(err.code),
                err.message);
  ck_assert_uint_eq(tok.n_texts, 1);
  *n = tok.texts[0].n_tokens;
  ck_assert_uint_gt(*n, 0);
  ids = malloc(*n * sizeof *ids);
  for (k = 0; k < *n; k++)
    ids[k] = tok.texts[0].tokens[k].id;
  nne_client_tokenize_result_free(&tok);
  return ids;
}

static void forward_ok(nne_client_t *c, const nne_client_forward_req_t *req,
                       nne_client_forward_result_t *res) {
  nne_client_err_t err;
  int rc = nne_client_forward(c, req, res, &err);
  ck_assert_msg(rc == 0, "forward: %s: %s", nne_client_status_name(err.code),
                err.message);
}

static bool same_tensor(const nne_client_tensor_t *a,
                        const nne_client_tensor_t *b) {
  return a->dtype == b->dtype && a->ndim == b->ndim &&
         memcmp(a->shape, b->shape, a->ndim * sizeof a->shape[0]) == 0 &&
         a->nbytes == b->nbytes && memcmp(a->data, b->data, a->nbytes) == 0;
}

static double max_diff(const nne_client_tensor_t *a,
                       const nne_client_tensor_t *b) {
  const float *x = a->data, *y = b->data;
  double m = 0;
  for (size_t i = 0; i < a->nbytes / 4 && i < b->nbytes / 4; i++)
    if (fabs((double)x[i] - y[i]) > m)
      m = fabs((double)x[i] - y[i]);
  return m;
}

/* ---- the suite's daemon and repository ----------------------------------- */

static void link_to(const char *dir, const char *model, const char *file) {
  char from[600], to[600];
  snprintf(from, sizeof from, "%s/%s/%s", nne_fixtures_dir(), model, file);
  snprintf(to, sizeof to, "%s/%s", dir, file);
  if (symlink(from, to) != 0) {
    perror(to);
    exit(1);
  }
}

static void daemon_setup(void) {
  char dir[300], from[600];
  const char *args[] = {"--model-repo", g_repo, NULL};
  snprintf(g_repo, sizeof g_repo, "/tmp/nnedit-text-XXXXXX");
  if (mkdtemp(g_repo) == NULL) {
    perror("mkdtemp");
    exit(1);
  }
  snprintf(from, sizeof from, "%s/" MODEL, nne_fixtures_dir());
  snprintf(dir, sizeof dir, "%s/" MODEL, g_repo);
  if (symlink(from, dir) != 0) {
    perror(dir);
    exit(1);
  }
  snprintf(dir, sizeof dir, "%s/" NOTOK, g_repo);
  if (mkdir(dir, 0700) != 0) {
    perror(dir);
    exit(1);
  }
  link_to(dir, MODEL, "model.json");
  link_to(dir, MODEL, "model.pt");
  nne_test_daemon_setup(&g_daemon, args);
}

static void daemon_teardown(void) {
  char cmd[128];
  nne_test_daemon_teardown(&g_daemon);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_repo);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", g_repo);
}

/* ---- no daemon needed ---------------------------------------------------- */

START_TEST(test_local_errors) {
  nne_client_t *c;
  nne_client_err_t err;
  nne_client_forward_result_t res;
  nne_client_detokenize_result_t det;
  nne_client_tokenize_result_t tok;
  int64_t ids[] = {1, 2};
  nne_client_token_row_t both = {.ids = ids, .n_ids = 2, .text = "x"};
  nne_client_token_row_t text = {.text = "x"};
  nne_client_forward_req_t req = {.model = "m", .rows = &both, .n_rows = 1};
  const char *texts[] = {"a", NULL};
  nne_client_opts_t o;

  nne_client_opts_init(&o);
  o.address = "127.0.0.1:1"; /* never reached: refused before the wire */
  ck_assert_int_eq(nne_client_connect(&o, &c, &err), 0);
  ck_assert_int_eq(nne_client_forward(c, &req, &res, &err),
                   -NNE_CLIENT_INVALID_ARGUMENT);
  ck_assert_msg(strstr(err.message, "rows[0]: both text and 2 ids") != NULL,
                "%s", err.message);
  ck_assert_int_eq(nne_client_detokenize(c, "m", &text, 1, false, &det, &err),
                   -NNE_CLIENT_INVALID_ARGUMENT);
  ck_assert_msg(strstr(err.message, "rows[0] is a text row") != NULL, "%s",
                err.message);
  ck_assert_int_eq(nne_client_tokenize(c, "m", texts, 2, false, &tok, &err),
                   -NNE_CLIENT_INVALID_ARGUMENT);
  ck_assert_msg(strstr(err.message, "texts[1] is NULL") != NULL, "%s",
                err.message);
  ck_assert_int_eq(nne_client_tokenize(c, NULL, texts, 1, false, &tok, &err),
                   -NNE_CLIENT_INVALID_ARGUMENT);
  ck_assert_int_eq(
      nne_client_tokenize_pairs(c, "m", texts, texts + 1, 1, false, &tok, &err),
      -NNE_CLIENT_INVALID_ARGUMENT);
  ck_assert_msg(strstr(err.message, "pairs[0] is NULL") != NULL, "%s",
                err.message);
  /* Failed calls leave results that free safely. */
  nne_client_forward_result_free(&res);
  nne_client_detokenize_result_free(&det);
  nne_client_tokenize_result_free(&tok);
  nne_client_close(c);
}
END_TEST

/* ---- serving ------------------------------------------------------------- */

START_TEST(test_describe) {
  nne_client_t *c = client();
  nne_client_model_desc_t d;
  nne_client_err_t err;
  const nne_client_tokenizer_info_t *t;
  nne_tc_load(c, MODEL);
  ck_assert_int_eq(nne_client_models_describe(c, MODEL, &d, &err), 0);
  ck_assert(d.model.has_tokenizer);
  t = &d.model.tokenizer;
  ck_assert_str_eq(t->kind, "BPE");
  ck_assert_uint_gt(t->vocab_size, 0);
  ck_assert_msg(strstr(t->file, "tokenizer.json") != NULL, "%s", t->file);
  for (size_t i = 0; i < t->n_special; i++) {
    ck_assert_ptr_nonnull(t->special[i].text);
    ck_assert_uint_eq(strlen(t->special[i].text), t->special[i].text_len);
  }
  nne_client_model_desc_free(&d);
  nne_tc_load(c, NOTOK);
  ck_assert_int_eq(nne_client_models_describe(c, NOTOK, &d, &err), 0);
  ck_assert(!d.model.has_tokenizer);
  nne_client_model_desc_free(&d);
  nne_client_close(c);
}
END_TEST

START_TEST(test_round_trip) {
  nne_client_t *c = client();
  const char *texts[] = {PROMPT, " Paris\n\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80"};
  nne_client_tokenize_result_t tok, raw;
  nne_client_detokenize_result_t det;
  nne_client_token_row_t rows[2];
  nne_client_err_t err;
  int64_t *ids[2];
  size_t i, k;

  nne_tc_load(c, MODEL);
  ck_assert_int_eq(nne_client_tokenize(c, MODEL, texts, 2, false, &tok, &err),
                   0);
  ck_assert_int_eq(nne_client_tokenize(c, MODEL, texts, 2, true, &raw, &err),
                   0);
  ck_assert_uint_eq(tok.n_texts, 2);
  ck_assert_uint_gt(tok.vocab_size, 0);
  for (i = 0; i < 2; i++) {
    const nne_client_tokenized_t *t = &tok.texts[i], *r = &raw.texts[i];
    char spelled[256] = "";
    size_t n_special = 0, len = 0;
    for (k = 0; k < t->n_tokens; k++) {
      ck_assert(t->tokens[k].id >= 0 &&
                t->tokens[k].id < (int64_t)tok.vocab_size);
      n_special += t->tokens[k].special;
      if (!t->tokens[k].special) {
        ck_assert_uint_lt(len + t->tokens[k].piece_len, sizeof spelled);
        memcpy(spelled + len, t->tokens[k].piece, t->tokens[k].piece_len);
        len += t->tokens[k].piece_len;
      }
    }
    spelled[len] = '\0';
    /* The pieces spell an ASCII text. (A character split across byte
     * tokens has no piece of its own: a proto string holds only whole
     * UTF-8, so such a piece comes as U+FFFD; Detokenize joins them.) */
    if (i == 0)
      ck_assert_str_eq(spelled, texts[i]);
    /* raw: the template's (special) tokens only are left out. */
    ck_assert_uint_eq(r->n_tokens + n_special, t->n_tokens);
    ids[i] = malloc(r->n_tokens * sizeof *ids[i]);
    for (k = 0; k < r->n_tokens; k++) {
      ck_assert(!r->tokens[k].special);
      ids[i][k] = r->tokens[k].id;
    }
    rows[i] = (nne_client_token_row_t){.ids = ids[i], .n_ids = r->n_tokens};
  }
  ck_assert_int_eq(nne_client_detokenize(c, MODEL, rows, 2, false, &det, &err),
                   0);
  ck_assert_uint_eq(det.n_texts, 2);
  ck_assert_str_eq(det.texts[0].text, texts[0]);
  ck_assert_str_eq(det.texts[1].text, texts[1]);
  ck_assert_uint_eq(det.texts[1].len, strlen(texts[1]));
  nne_client_detokenize_result_free(&det);
  nne_client_tokenize_result_free(&tok);
  nne_client_tokenize_result_free(&raw);
  free(ids[0]);
  free(ids[1]);
  nne_client_close(c);
}
END_TEST

/* Offsets: each token's bytes of its text, through multibyte characters
 * (a character split across byte-level tokens: each part spans it whole
 * and brings its own bytes); a pair: its tokens' source and type id. */
START_TEST(test_offsets_and_pairs) {
  nne_client_t *c = client();
  const char *texts[] = {"\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80 ok"};
  const char *pairs[] = {"x y"};
  nne_client_tokenize_result_t tok, pr;
  nne_client_err_t err;
  char spelled[64];
  size_t k, len = 0, at = 0;

  nne_tc_load(c, MODEL);
  ck_assert_int_eq(nne_client_tokenize(c, MODEL, texts, 1, true, &tok, &err),
                   0);
  for (k = 0; k < tok.texts[0].n_tokens; k++) {
    const nne_client_token_t *t = &tok.texts[0].tokens[k];
    const char *b = t->bytes_len ? t->bytes : t->piece;
    size_t n = t->bytes_len ? t->bytes_len : t->piece_len;
    ck_assert_int_eq(t->source, NNE_CLIENT_TOKEN_SOURCE_TEXT);
    ck_assert_uint_le(t->end, strlen(texts[0]));
    /* A token starts where the last ended, or shares a split character's
     * span with the parts before it. */
    ck_assert(t->start == at || (t->bytes_len && t->end == at));
    at = t->end;
    ck_assert_uint_lt(len + n, sizeof spelled);
    memcpy(spelled + len, b, n);
    len += n;
  }
  spelled[len] = '\0';
  ck_assert_str_eq(spelled, texts[0]); /* the bytes spell it exactly */
  ck_assert_uint_eq(at, strlen(texts[0]));
  ck_assert_int_eq(
      nne_client_tokenize_pairs(c, MODEL, texts, pairs, 1, true, &pr, &err), 0);
  ck_assert_uint_gt(pr.texts[0].n_tokens, tok.texts[0].n_tokens);
  for (k = 0; k < pr.texts[0].n_tokens; k++) {
    const nne_client_token_t *t = &pr.texts[0].tokens[k];
    bool second = k >= tok.texts[0].n_tokens;
    ck_assert_int_eq(t->source, second ? NNE_CLIENT_TOKEN_SOURCE_PAIR
                                       : NNE_CLIENT_TOKEN_SOURCE_TEXT);
    ck_assert_uint_eq(t->type_id, second); /* no template: 0, then 1 */
  }
  ck_assert_uint_eq(pr.texts[0].tokens[pr.texts[0].n_tokens - 1].end, 3);
  nne_client_tokenize_result_free(&tok);
  nne_client_tokenize_result_free(&pr);
  nne_client_close(c);
}
END_TEST

START_TEST(test_forward_text) {
  nne_client_t *c = client();
  nne_client_forward_result_t a, b;
  nne_client_detokenize_result_t det;
  nne_client_err_t err;
  size_t n, k;
  int64_t *ids;
  nne_client_token_row_t trow = {.text = PROMPT}, irow;
  nne_client_forward_req_t req = {.model = MODEL,
                                  .n_rows = 1,
                                  .top_k = 5,
                                  .logits = NNE_CLIENT_LOGITS_LAST};

  nne_tc_load(c, MODEL);
  ids = tokenize_ids(c, PROMPT, false, &n);
  irow = (nne_client_token_row_t){.ids = ids, .n_ids = n};
  req.rows = &trow;
  forward_ok(c, &req, &a);
  req.rows = &irow;
  forward_ok(c, &req, &b);
  /* The text row is the row of its ids, with the template's tokens. */
  ck_assert_uint_eq(a.seq_len, n);
  ck_assert(same_tensor(&a.logits, &b.logits));
  ck_assert_uint_eq(a.rows[0].n_top, 5);
  for (k = 0; k < 5; k++) {
    nne_client_token_row_t one = {.ids = &a.rows[0].top[k].token_id,
                                  .n_ids = 1};
    ck_assert(a.rows[0].top[k].token_id == b.rows[0].top[k].token_id);
    ck_assert_str_eq(a.rows[0].top[k].text, b.rows[0].top[k].text);
    /* Each token's text is its id decoded alone. */
    ck_assert_int_eq(
        nne_client_detokenize(c, MODEL, &one, 1, false, &det, &err), 0);
    ck_assert_uint_eq(det.texts[0].len, a.rows[0].top[k].text_len);
    ck_assert(memcmp(det.texts[0].text, a.rows[0].top[k].text,
                     det.texts[0].len) == 0);
    nne_client_detokenize_result_free(&det);
  }
  nne_client_forward_result_free(&a);
  nne_client_forward_result_free(&b);
  free(ids);
  nne_client_close(c);
}
END_TEST

/* A text row beside a longer id row, padded left, is what the row of its
 * ids is in that batch. (Not what it is alone: left padding moves the
 * positions of an absolute-position model.) */
START_TEST(test_forward_mixed) {
  nne_client_t *c = client();
  nne_client_forward_result_t mixed, alone;
  size_t n;
  int64_t *ids;
  int64_t long_ids[] = {31, 415, 926, 5,  27, 3,  777, 12, 13, 14, 15, 16,
                        17, 18,  19,  20, 21, 22, 23,  24, 25, 26, 27, 28};
  nne_client_token_row_t rows[2] = {
      {.ids = long_ids, .n_ids = sizeof long_ids / sizeof long_ids[0]},
      {.text = PROMPT}};
  nne_client_forward_req_t req = {.model = MODEL,
                                  .rows = rows,
                                  .n_rows = 2,
                                  .padding = NNE_CLIENT_PAD_LEFT,
                                  .top_k = 3};
  nne_tc_load(c, MODEL);
  forward_ok(c, &req, &mixed);
  ids = tokenize_ids(c, PROMPT, false, &n);
  rows[1] = (nne_client_token_row_t){.ids = ids, .n_ids = n};
  forward_ok(c, &req, &alone);
  free(ids);
  ck_assert_uint_eq(mixed.n_rows, 2);
  for (size_t k = 0; k < 3; k++) {
    ck_assert(mixed.rows[1].top[k].token_id == alone.rows[1].top[k].token_id);
    ck_assert(mixed.rows[1].top[k].logit == alone.rows[1].top[k].logit);
    ck_assert_str_eq(mixed.rows[1].top[k].text, alone.rows[1].top[k].text);
  }
  nne_client_forward_result_free(&mixed);
  nne_client_forward_result_free(&alone);
  nne_client_close(c);
}
END_TEST

/* One trace of two invokes: text, then its ids. Each saves the residual
 * stream of its own rows; the two are equal. */
START_TEST(test_trace_text) {
  nne_client_t *c = client();
  nne_client_igraph_t *g = nne_client_igraph_new();
  nne_client_trace_results_t res;
  nne_client_err_t err;
  size_t n;
  int64_t *ids;
  nne_client_token_row_t trow = {.text = PROMPT}, irow;
  nne_client_invoke_t inv[2];
  nne_client_trace_t tr = {
      .name = "t", .invokes = inv, .n_invokes = 2, .graph = g};
  nne_client_trace_req_t req = {
      .model = MODEL, .traces = &tr, .n_traces = 1, .top_k = 2};
  const nne_client_tensor_t *x, *y;
  int rc;

  nne_tc_load(c, MODEL);
  ids = tokenize_ids(c, PROMPT, false, &n);
  irow = (nne_client_token_row_t){.ids = ids, .n_ids = n};
  inv[0] = (nne_client_invoke_t){.rows = &trow, .n_rows = 1};
  inv[1] = (nne_client_invoke_t){.rows = &irow, .n_rows = 1};
  nne_client_igraph_save(g, nne_client_igraph_read(g, "layers.0.resid_post", 0),
                         "text");
  nne_client_igraph_save(g, nne_client_igraph_read(g, "layers.0.resid_post", 1),
                         "ids");
  rc = nne_client_trace(c, &req, &res, &err);
  ck_assert_msg(rc == 0, "trace: %s: %s", nne_client_status_name(err.code),
                err.message);
  x = nne_client_trace_results_saved(&res, "text");
  y = nne_client_trace_results_saved(&res, "ids");
  ck_assert(x != NULL && y != NULL);
  ck_assert_int_eq(x->shape[1], (int64_t)n);
  /* Rows at different places of one batch may differ in the last bits
   * (the kernels block the batch); the values are the same. */
  ck_assert(x->ndim == y->ndim && x->nbytes == y->nbytes &&
            memcmp(x->shape, y->shape, x->ndim * sizeof x->shape[0]) == 0);
  ck_assert_msg(max_diff(x, y) < 1e-4, "max diff %g", max_diff(x, y));
  ck_assert_uint_eq(res.traces[0].n_rows, 2);
  ck_assert_str_eq(res.traces[0].rows[0].top[0].text,
                   res.traces[0].rows[1].top[0].text);
  nne_client_trace_results_free(&res);
  nne_client_igraph_free(g);
  free(ids);
  nne_client_close(c);
}
END_TEST

START_TEST(test_edit_set_text) {
  nne_client_t *c = client();
  nne_client_edit_t z = {.site = "layers.0.self_attn.pattern",
                         .op = NNE_CLIENT_EDIT_ZERO};
  nne_client_edit_set_info_t es;
  nne_client_forward_result_t a, b, p;
  nne_client_err_t err;
  size_t n;
  int64_t *ids;
  nne_client_token_row_t trow = {.text = PROMPT}, irow;
  nne_client_forward_req_t req = {
      .model = MODEL, .n_rows = 1, .logits = NNE_CLIENT_LOGITS_LAST};

  nne_tc_load(c, MODEL);
  ids = tokenize_ids(c, PROMPT, false, &n);
  irow = (nne_client_token_row_t){.ids = ids, .n_ids = n};
  ck_assert_msg(nne_client_edits_apply(c, MODEL, &z, 1, "text", &es, &err) == 0,
                "apply: %s", err.message);
  req.edit_set = es.id;
  req.rows = &trow;
  forward_ok(c, &req, &a);
  req.rows = &irow;
  forward_ok(c, &req, &b);
  req.edit_set = NULL;
  req.rows = &trow;
  forward_ok(c, &req, &p);
  ck_assert(same_tensor(&a.logits, &b.logits));
  ck_assert(!same_tensor(&a.logits, &p.logits));
  nne_client_forward_result_free(&a);
  nne_client_forward_result_free(&b);
  nne_client_forward_result_free(&p);
  ck_assert_int_eq(nne_client_edits_drop(c, es.id, NULL, NULL, &err), 0);
  free(ids);
  nne_client_close(c);
}
END_TEST

START_TEST(test_no_tokenizer) {
  nne_client_t *c = client();
  nne_client_forward_result_t res;
  nne_client_tokenize_result_t tok;
  nne_client_detokenize_result_t det;
  nne_client_err_t err;
  const char *text = PROMPT;
  int64_t one = 1;
  nne_client_token_row_t trow = {.text = PROMPT},
                         irow = {.ids = &one, .n_ids = 1};
  nne_client_forward_req_t req = {
      .model = NOTOK, .rows = &trow, .n_rows = 1, .top_k = 1};

  nne_tc_load(c, NOTOK);
  ck_assert_int_eq(nne_client_forward(c, &req, &res, &err),
                   -NNE_CLIENT_FAILED_PRECONDITION);
  ck_assert_msg(strstr(err.message, "tokenizer.json") != NULL, "%s",
                err.message);
  ck_assert_int_eq(nne_client_tokenize(c, NOTOK, &text, 1, false, &tok, &err),
                   -NNE_CLIENT_FAILED_PRECONDITION);
  ck_assert_msg(strstr(err.message, "tokenizer.json") != NULL, "%s",
                err.message);
  ck_assert_int_eq(nne_client_detokenize(c, NOTOK, &irow, 1, false, &det, &err),
                   -NNE_CLIENT_FAILED_PRECONDITION);
  /* Id rows still work, and their top-k has no text. */
  req.rows = &irow;
  forward_ok(c, &req, &res);
  ck_assert_str_eq(res.rows[0].top[0].text, "");
  ck_assert_uint_eq(res.rows[0].top[0].text_len, 0);
  nne_client_forward_result_free(&res);
  nne_client_close(c);
}
END_TEST

static Suite *text_suite(void) {
  Suite *s = suite_create("text_client");
  TCase *tc;

  tc = tcase_create("local");
  tcase_add_test(tc, test_local_errors);
  tcase_set_timeout(tc, 30);
  suite_add_tcase(s, tc);

  tc = tcase_create("serving");
  tcase_add_unchecked_fixture(tc, daemon_setup, daemon_teardown);
  tcase_add_test(tc, test_describe);
  tcase_add_test(tc, test_round_trip);
  tcase_add_test(tc, test_offsets_and_pairs);
  tcase_add_test(tc, test_forward_text);
  tcase_add_test(tc, test_forward_mixed);
  tcase_add_test(tc, test_trace_text);
  tcase_add_test(tc, test_edit_set_text);
  tcase_add_test(tc, test_no_tokenizer);
  tcase_set_timeout(tc, 180);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(text_suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
