/* cmd_tokenize.c — `nneditctl tokenize MODEL TEXT...` and `nneditctl
 * detokenize MODEL IDS...`: a loaded model's tokenizer, text to ids and
 * back (Inference/Tokenize, Inference/Detokenize). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "output.h"

/* ---- tokenize ------------------------------------------------------------ */

/* One JSON line per token: a stream that tools read a line at a time (a
 * text of 1 MiB has up to a million tokens). */
static int tokenize_json_lines(const ctl_t *c,
                               const nne_client_tokenize_result_t *res) {
  size_t i, k;
  for (i = 0; i < res->n_texts; i++)
    for (k = 0; k < res->texts[i].n_tokens; k++) {
      const nne_client_token_t *t = &res->texts[i].tokens[k];
      json_t *j = json_pack(
          "{s:I, s:I, s:I, s:o*, s:o*, s:b}", "text", (json_int_t)i, "index",
          (json_int_t)k, "id", (json_int_t)t->id, "token",
          ctl_json_text(t->token, t->token_len), "piece",
          ctl_json_text(t->piece, t->piece_len), "special", t->special);
      int rc = ctl_json_line(c, j);
      if (rc != 0)
        return rc;
    }
  return 0;
}

/* Quoted token and piece cells for one text's table. */
#define TOK_CELL 200
enum { TC_INDEX, TC_ID, TC_TOKEN, TC_PIECE, TC_SPECIAL, TC_N };

static int tokenize_table(const ctl_t *c, const char *const *texts,
                          const nne_client_tokenize_result_t *res) {
  char head[160];
  size_t i, k;
  for (i = 0; i < res->n_texts; i++) {
    const nne_client_tokenized_t *tt = &res->texts[i];
    size_t n = tt->n_tokens;
    const char **cells = calloc((n + 1) * TC_N, sizeof *cells);
    char *buf = malloc(n ? n * (2 * TOK_CELL + 48) : 1);
    if (cells == NULL || buf == NULL) {
      free(cells);
      free(buf);
      return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (res->n_texts > 1)
      printf("%stext %zu: %s\n", i ? "\n" : "", i,
             ctl_quote_text(texts[i], strlen(texts[i]), head, sizeof head));
    printf("%zu tokens (vocabulary of %" PRIu32 ")\n", n, res->vocab_size);
    cells[TC_INDEX] = "INDEX";
    cells[TC_ID] = "ID";
    cells[TC_TOKEN] = "TOKEN";
    cells[TC_PIECE] = "PIECE";
    cells[TC_SPECIAL] = "SPECIAL";
    for (k = 0; k < n; k++) {
      const nne_client_token_t *t = &tt->tokens[k];
      const char **row = cells + (k + 1) * TC_N;
      char *b = buf + k * (2 * TOK_CELL + 48);
      snprintf(b, 24, "%zu", k);
      snprintf(b + 24, 24, "%" PRId64, t->id);
      row[TC_INDEX] = b;
      row[TC_ID] = b + 24;
      row[TC_TOKEN] = ctl_quote_text(t->token, t->token_len, b + 48, TOK_CELL);
      row[TC_PIECE] =
          ctl_quote_text(t->piece, t->piece_len, b + 48 + TOK_CELL, TOK_CELL);
      row[TC_SPECIAL] = t->special ? "yes" : "";
    }
    ctl_print_columns(cells, n + 1, TC_N, "rrlll");
    free(cells);
    free(buf);
  }
  return 0;
}

enum { OPT_RAW };

static int run_tokenize(ctl_t *c, int argc, char **argv) {
  nne_client_tokenize_result_t res;
  nne_client_err_t err;
  const char *model = NULL, **texts;
  bool raw = false;
  size_t n = 0;
  ctl_args_t a;
  int k, rc = 0;

  /* At most one text per argument. */
  if ((texts = calloc((size_t)argc + 1, sizeof *texts)) == NULL)
    return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  ctl_args_init(&a, c, argc, argv);
  while (rc == 0 && (k = ctl_args_next(&a)) != CTL_ARG_END) {
    switch (k) {
    case CTL_ARG_HELP: free(texts); return ctl_help(c);
    case CTL_ARG_BAD: rc = CTL_EXIT_USAGE; break;
    case CTL_ARG_POS:
      if (model == NULL)
        rc = ctl_arg_word(&a, "MODEL", NNE_CLIENT_MODEL_NAME_MAX, &model);
      else if (strlen(a.arg) > NNE_CLIENT_TEXT_MAX)
        rc = ctl_usage(c, "TEXT %zu is longer than %zu bytes", n,
                       NNE_CLIENT_TEXT_MAX);
      else if (n >= NNE_CLIENT_MAX_TEXTS)
        rc = ctl_usage(c, "more than %d TEXT arguments", NNE_CLIENT_MAX_TEXTS);
      else
        texts[n++] = a.arg;
      break;
    case OPT_RAW: raw = true; break;
    }
  }
  if (rc == 0 && model == NULL)
    rc = ctl_usage(c, "missing MODEL");
  else if (rc == 0 && n == 0)
    rc = ctl_usage(c, "missing TEXT (the text to tokenize)");
  if (rc == 0)
    rc = ctl_connect(c);
  if (rc == 0 &&
      nne_client_tokenize(c->cli, model, texts, n, raw, &res, &err) < 0)
    rc = ctl_call_error(c, &err);
  else if (rc == 0) {
    rc = c->output == CTL_OUT_JSON ? tokenize_json_lines(c, &res)
                                   : tokenize_table(c, texts, &res);
    nne_client_tokenize_result_free(&res);
  }
  free(texts);
  return rc;
}

static const ctl_opt_t tokenize_opts[] = {
    [OPT_RAW] = {"--raw", NULL, false},
    CTL_OPT_END,
};

const ctl_cmd_t ctl_cmd_tokenize = {"tokenize", tokenize_opts, run_tokenize,
                                    false};

/* ---- detokenize ---------------------------------------------------------- */

static json_t *detokenize_json(const char *model,
                               const nne_client_detokenize_result_t *res) {
  json_t *arr = json_array();
  size_t i;
  for (i = 0; i < res->n_texts; i++)
    json_array_append_new(arr,
                          ctl_json_text(res->texts[i].text, res->texts[i].len));
  return json_pack("{s:s, s:o}", "model", model, "texts", arr);
}

enum { OPT_SKIP_SPECIAL };

static int run_detokenize(ctl_t *c, int argc, char **argv) {
  nne_client_detokenize_result_t res;
  nne_client_err_t err;
  ctl_rows_t rows;
  const char *model = NULL;
  bool skip = false;
  ctl_args_t a;
  size_t i;
  int k, rc;

  if ((rc = ctl_rows_init(&rows, c, argc)) != 0)
    return rc;
  ctl_args_init(&a, c, argc, argv);
  while (rc == 0 && (k = ctl_args_next(&a)) != CTL_ARG_END) {
    switch (k) {
    case CTL_ARG_HELP: ctl_rows_free(&rows); return ctl_help(c);
    case CTL_ARG_BAD: rc = CTL_EXIT_USAGE; break;
    case CTL_ARG_POS:
      if (model == NULL) {
        rc = ctl_arg_word(&a, "MODEL", NNE_CLIENT_MODEL_NAME_MAX, &model);
      } else {
        /* An id row typed as a positional: parsed as --tokens would be,
         * and named so in a message. */
        a.typed = "IDS";
        a.val = a.arg;
        rc = ctl_arg_tokens(&a, &rows);
      }
      break;
    case OPT_SKIP_SPECIAL: skip = true; break;
    }
  }
  if (rc == 0 && model == NULL)
    rc = ctl_usage(c, "missing MODEL");
  else if (rc == 0 && rows.n_ids == 0)
    rc = ctl_usage(c, "missing IDS (comma-separated token ids)");
  if (rc == 0)
    rc = ctl_connect(c);
  if (rc == 0 && nne_client_detokenize(c->cli, model, rows.ids, rows.n_ids,
                                       skip, &res, &err) < 0)
    rc = ctl_call_error(c, &err);
  else if (rc == 0) {
    if (c->output == CTL_OUT_JSON) {
      rc = ctl_json_out(c, detokenize_json(model, &res));
    } else {
      /* The text itself, so that it can be piped: one row a line. */
      for (i = 0; i < res.n_texts; i++) {
        fwrite(res.texts[i].text, 1, res.texts[i].len, stdout);
        putchar('\n');
      }
    }
    nne_client_detokenize_result_free(&res);
  }
  ctl_rows_free(&rows);
  return rc;
}

static const ctl_opt_t detokenize_opts[] = {
    [OPT_SKIP_SPECIAL] = {"--skip-special", NULL, false},
    CTL_OPT_END,
};

const ctl_cmd_t ctl_cmd_detokenize = {"detokenize", detokenize_opts,
                                      run_detokenize, false};
