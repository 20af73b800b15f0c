/* cmd_tokenize.c — `nneditctl tokenize MODEL TEXT... [--pair TEXT]...` and
 * `nneditctl detokenize MODEL IDS...`: a loaded model's tokenizer, text to
 * ids (with each token's byte offsets) and back (Inference/Tokenize,
 * Inference/Detokenize). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "output.h"

/* ---- tokenize ------------------------------------------------------------ */

static const char *source_name(nne_client_token_source_t s) {
  switch (s) {
  case NNE_CLIENT_TOKEN_SOURCE_TEXT: return "text";
  case NNE_CLIENT_TOKEN_SOURCE_PAIR: return "pair";
  case NNE_CLIENT_TOKEN_SOURCE_TEMPLATE: return "template";
  default: return "unknown";
  }
}

/* A token's bytes (when its piece is not all of them) as hex, or null. */
static json_t *bytes_hex(const nne_client_token_t *t) {
  char hex[2 * 64 + 1];
  size_t n = t->bytes_len < 64 ? t->bytes_len : 64;
  if (t->bytes_len == 0)
    return json_null();
  for (size_t i = 0; i < n; i++)
    snprintf(hex + 2 * i, 3, "%02x", (unsigned char)t->bytes[i]);
  hex[2 * n] = '\0';
  return json_string(hex);
}

/* One JSON line per token: a stream that tools read a line at a time (a
 * text of 1 MiB has up to a million tokens). */
static int tokenize_json_lines(const ctl_t *c,
                               const nne_client_tokenize_result_t *res) {
  size_t i, k;
  for (i = 0; i < res->n_texts; i++)
    for (k = 0; k < res->texts[i].n_tokens; k++) {
      const nne_client_token_t *t = &res->texts[i].tokens[k];
      json_t *j = json_pack(
          "{s:I, s:I, s:I, s:o*, s:o*, s:o, s:b, s:I, s:I, s:s, s:I}", "text",
          (json_int_t)i, "index", (json_int_t)k, "id", (json_int_t)t->id,
          "token", ctl_json_text(t->token, t->token_len), "piece",
          ctl_json_text(t->piece, t->piece_len), "bytes", bytes_hex(t),
          "special", t->special, "start", (json_int_t)t->start, "end",
          (json_int_t)t->end, "source", source_name(t->source), "type_id",
          (json_int_t)t->type_id);
      int rc = ctl_json_line(c, j);
      if (rc != 0)
        return rc;
    }
  return 0;
}

/* Quoted token and piece cells for one text's table; OFFSETS is the
 * token's bytes in its text ("3-10"; with pairs "pair 0-4"; "-" for the
 * template's tokens), TYPE its type id (with pairs only). */
#define TOK_CELL 200
#define NUM_CELL 24
#define ROW_CELLS (2 * TOK_CELL + 5 * NUM_CELL)
enum {
  TC_INDEX,
  TC_ID,
  TC_TOKEN,
  TC_PIECE,
  TC_OFFSETS,
  TC_SPECIAL,
  TC_TYPE, /* with pairs only: the last column, left out otherwise */
  TC_N
};

static void offsets_cell(const nne_client_token_t *t, bool pairs, char *b) {
  if (t->source == NNE_CLIENT_TOKEN_SOURCE_TEMPLATE ||
      t->source == NNE_CLIENT_TOKEN_SOURCE_UNKNOWN)
    snprintf(b, 2 * NUM_CELL, "-");
  else
    snprintf(b, 2 * NUM_CELL, "%s%" PRIu32 "-%" PRIu32,
             !pairs                                        ? ""
             : t->source == NNE_CLIENT_TOKEN_SOURCE_PAIR ? "pair "
                                                           : "text ",
             t->start, t->end);
}

static int tokenize_table(const ctl_t *c, const char *const *texts,
                          const char *const *pairs,
                          const nne_client_tokenize_result_t *res) {
  char head[160];
  size_t i, k;
  for (i = 0; i < res->n_texts; i++) {
    const nne_client_tokenized_t *tt = &res->texts[i];
    size_t n = tt->n_tokens;
    size_t nc = pairs != NULL ? TC_N : TC_N - 1;
    const char **cells = calloc((n + 1) * TC_N, sizeof *cells);
    char *buf = malloc(n ? n * ROW_CELLS : 1);
    if (cells == NULL || buf == NULL) {
      free(cells);
      free(buf);
      return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (res->n_texts > 1 || pairs != NULL)
      printf("%stext %zu: %s\n", i ? "\n" : "", i,
             ctl_quote_text(texts[i], strlen(texts[i]), head, sizeof head));
    if (pairs != NULL)
      printf("pair: %s\n",
             ctl_quote_text(pairs[i], strlen(pairs[i]), head, sizeof head));
    printf("%zu tokens (vocabulary of %" PRIu32 ")\n", n, res->vocab_size);
    cells[TC_INDEX] = "INDEX";
    cells[TC_ID] = "ID";
    cells[TC_TOKEN] = "TOKEN";
    cells[TC_PIECE] = "PIECE";
    cells[TC_OFFSETS] = "OFFSETS";
    cells[TC_SPECIAL] = "SPECIAL";
    if (pairs != NULL)
      cells[TC_TYPE] = "TYPE";
    for (k = 0; k < n; k++) {
      const nne_client_token_t *t = &tt->tokens[k];
      const char **row = cells + (k + 1) * nc;
      char *b = buf + k * ROW_CELLS, *num = b + 2 * TOK_CELL;
      snprintf(num, NUM_CELL, "%zu", k);
      snprintf(num + NUM_CELL, NUM_CELL, "%" PRId64, t->id);
      offsets_cell(t, pairs != NULL, num + 2 * NUM_CELL);
      snprintf(num + 4 * NUM_CELL, NUM_CELL, "%" PRIu32, t->type_id);
      row[TC_INDEX] = num;
      row[TC_ID] = num + NUM_CELL;
      row[TC_TOKEN] = ctl_quote_text(t->token, t->token_len, b, TOK_CELL);
      row[TC_PIECE] =
          ctl_quote_text(t->piece, t->piece_len, b + TOK_CELL, TOK_CELL);
      row[TC_OFFSETS] = num + 2 * NUM_CELL;
      row[TC_SPECIAL] = t->special ? "yes" : "";
      if (pairs != NULL)
        row[TC_TYPE] = num + 4 * NUM_CELL;
    }
    ctl_print_columns(cells, n + 1, nc, "rrllrlr");
    free(cells);
    free(buf);
  }
  return 0;
}

enum { OPT_RAW, OPT_PAIR };

static int run_tokenize(ctl_t *c, int argc, char **argv) {
  nne_client_tokenize_result_t res;
  nne_client_err_t err;
  const char *model = NULL, **texts, **pairs;
  bool raw = false;
  size_t n = 0, n_pairs = 0;
  ctl_args_t a;
  int k, rc = 0;

  /* At most one text (or pair) per argument. */
  texts = calloc((size_t)argc + 1, sizeof *texts);
  pairs = calloc((size_t)argc + 1, sizeof *pairs);
  if (texts == NULL || pairs == NULL) {
    free(texts);
    free(pairs);
    return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  }
  ctl_args_init(&a, c, argc, argv);
  while (rc == 0 && (k = ctl_args_next(&a)) != CTL_ARG_END) {
    switch (k) {
    case CTL_ARG_HELP:
      free(texts);
      free(pairs);
      return ctl_help(c);
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
    case OPT_PAIR:
      rc = ctl_arg_text(&a, NNE_CLIENT_TEXT_MAX + 1, true, &pairs[n_pairs]);
      n_pairs += rc == 0;
      break;
    }
  }
  if (rc == 0 && model == NULL)
    rc = ctl_usage(c, "missing MODEL");
  else if (rc == 0 && n == 0)
    rc = ctl_usage(c, "missing TEXT (the text to tokenize)");
  else if (rc == 0 && n_pairs != 0 && n_pairs != n)
    rc = ctl_usage(c, "%zu --pair for %zu TEXT (one per TEXT, or none)",
                   n_pairs, n);
  if (rc == 0)
    rc = ctl_connect(c);
  if (rc == 0 && nne_client_tokenize_pairs(c->cli, model, texts,
                                           n_pairs ? pairs : NULL, n, raw,
                                           &res, &err) < 0)
    rc = ctl_call_error(c, &err);
  else if (rc == 0) {
    rc = c->output == CTL_OUT_JSON
             ? tokenize_json_lines(c, &res)
             : tokenize_table(c, texts, n_pairs ? pairs : NULL, &res);
    nne_client_tokenize_result_free(&res);
  }
  free(texts);
  free(pairs);
  return rc;
}

static const ctl_opt_t tokenize_opts[] = {
    [OPT_RAW] = {"--raw", NULL, false},
    [OPT_PAIR] = {"--pair", NULL, true},
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
