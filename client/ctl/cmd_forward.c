/* cmd_forward.c — `nneditctl forward MODEL --tokens ...`: one forward pass,
 * and the parts of its result trace prints too (ctl.h, block
 * cmd_forward.c). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "output.h"
#include "tensors.h"

/* ---- result parts -------------------------------------------------------- */

json_t *ctl_scores_json(const nne_client_token_score_t *top, size_t n) {
  json_t *arr = json_array();
  size_t k;
  for (k = 0; k < n; k++)
    json_array_append_new(
        arr,
        json_pack("{s:I, s:o, s:o, s:o*}", "token_id",
                  (json_int_t)top[k].token_id, "logit",
                  ctl_json_num(top[k].logit), "prob", ctl_json_num(top[k].prob),
                  "text", ctl_json_text(top[k].text, top[k].text_len)));
  return arr;
}

json_t *ctl_rows_json(const nne_client_row_topk_t *rows, size_t n) {
  json_t *arr = json_array();
  size_t i;
  for (i = 0; i < n; i++)
    json_array_append_new(
        arr, json_pack("{s:I, s:I, s:o}", "row", (json_int_t)i, "position",
                       (json_int_t)rows[i].position, "top",
                       ctl_scores_json(rows[i].top, rows[i].n_top)));
  return arr;
}

void ctl_rows_table(const nne_client_row_topk_t *rows, size_t n,
                    const char *indent, const nne_client_token_row_t *in) {
  char text[160];
  size_t i, k;
  for (i = 0; i < n; i++) {
    const nne_client_row_topk_t *r = &rows[i];
    printf("\n%srow %zu  position %" PRIu32, indent, i, r->position);
    if (in != NULL && in[i].text != NULL)
      printf("  prompt %s",
             ctl_quote_text(in[i].text, strlen(in[i].text), text, sizeof text));
    putchar('\n');
    if (r->n_top == 0)
      continue;
    /* The text last: it has no width to align on. */
    printf("%s  %4s  %10s  %12s  %10s  %s\n", indent, "RANK", "TOKEN", "LOGIT",
           "PROB", "TEXT");
    for (k = 0; k < r->n_top; k++)
      printf("%s  %4zu  %10" PRId64 "  %12.5f  %10.6f  %s\n", indent, k + 1,
             r->top[k].token_id, r->top[k].logit, r->top[k].prob,
             ctl_quote_text(r->top[k].text, r->top[k].text_len, text,
                            sizeof text));
  }
}

json_t *ctl_timing_json(const nne_client_timing_t *t) {
  return json_pack("{s:o, s:o, s:o}", "queue_ms", ctl_json_num(t->queue_ms),
                   "compute_ms", ctl_json_num(t->compute_ms), "total_ms",
                   ctl_json_num(t->total_ms));
}

/* ---- output -------------------------------------------------------------- */

/* What one forward printed: the request's names and where files went. */
typedef struct fwd_out {
  const char *model, *edit_set;
  const nne_client_token_row_t *in; /* the request's rows */
  const char *logits_file;          /* NULL: not saved */
  char **files; /* files[i]: saved[i]'s (NULL: none written) */
  bool values;
} fwd_out_t;

static json_t *forward_json(const fwd_out_t *o,
                            const nne_client_forward_result_t *res) {
  return json_pack(
      "{s:s, s:o, s:I, s:I, s:o, s:o, s:o, s:o}", "model", o->model, "edit_set",
      o->edit_set ? json_string(o->edit_set) : json_null(), "batch",
      (json_int_t)res->batch, "seq_len", (json_int_t)res->seq_len, "timing",
      ctl_timing_json(&res->timing), "rows",
      ctl_rows_json(res->rows, res->n_rows), "logits",
      res->has_logits ? ctl_tensor_json(&res->logits, o->logits_file)
                      : json_null(),
      "saved", ctl_saved_json(res->saved, res->n_saved, o->files, o->values));
}

static void forward_table(const fwd_out_t *o,
                          const nne_client_forward_result_t *res) {
  char shape[200];
  printf("model %s", o->model);
  if (o->edit_set != NULL)
    printf("  edit set %s", o->edit_set);
  printf("  batch %" PRIu32 "  seq_len %" PRIu32
         "  (queue %.2f ms, compute %.2f ms, total %.2f ms)\n",
         res->batch, res->seq_len, res->timing.queue_ms, res->timing.compute_ms,
         res->timing.total_ms);
  ctl_rows_table(res->rows, res->n_rows, "", o->in);
  if (res->has_logits) {
    ctl_shape_text(&res->logits, shape, sizeof shape);
    printf("\nlogits: %s %s %zu bytes",
           nne_client_dtype_name(res->logits.dtype), shape, res->logits.nbytes);
    if (o->logits_file != NULL)
      printf(", saved to %s\n", o->logits_file);
    else
      printf(" (not saved; use --save-logits FILE.npy)\n");
  }
  ctl_saved_table(res->saved, res->n_saved, o->files, o->values, "");
}

/* Writes what was asked for: the logits to one file, the saved tensors to
 * a directory. */
static int forward_files(ctl_t *c, const char *save_dir, fwd_out_t *o,
                         const nne_client_forward_result_t *res) {
  nne_client_err_t err;
  if (o->logits_file != NULL && res->has_logits &&
      nne_client_tensor_write_npy(&res->logits, o->logits_file, &err) < 0)
    return ctl_call_error(c, &err);
  if (!res->has_logits)
    o->logits_file = NULL;
  if (save_dir == NULL || res->n_saved == 0)
    return 0;
  /* One file per saved tensor, the edit set's included: known only now. */
  return ctl_npy_write_saved(c, save_dir, res->saved, res->n_saved, &o->files);
}

/* ---- the command --------------------------------------------------------- */

enum {
  OPT_TOKENS,
  OPT_PROMPT,
  OPT_MASK,
  OPT_PAD,
  OPT_TOP_K,
  OPT_LOGITS,
  OPT_SAVE_LOGITS,
  OPT_SAVE,
  OPT_SAVE_DIR,
  OPT_EDIT_SET,
  OPT_VALUES,
};

/* The request from the command line: 0, the exit code, or CTL_HELP_SHOWN. */
static int forward_args(ctl_t *c, int argc, char **argv,
                        nne_client_forward_req_t *req, ctl_rows_t *rows,
                        const char **sites, fwd_out_t *o,
                        const char **save_dir) {
  bool logits_set = false;
  ctl_args_t a;
  int k, rc = 0;

  ctl_args_init(&a, c, argc, argv);
  while (rc == 0 && (k = ctl_args_next(&a)) != CTL_ARG_END) {
    switch (k) {
    case CTL_ARG_HELP: ctl_help(c); return CTL_HELP_SHOWN;
    case CTL_ARG_BAD: return CTL_EXIT_USAGE;
    case CTL_ARG_POS:
      rc = req->model != NULL
               ? ctl_args_unexpected(&a)
               : ctl_arg_word(&a, "MODEL", NNE_CLIENT_MODEL_NAME_MAX,
                              &req->model);
      break;
    case OPT_TOKENS: rc = ctl_arg_tokens(&a, rows); break;
    case OPT_PROMPT: rc = ctl_arg_prompt(&a, rows); break;
    case OPT_MASK: rc = ctl_arg_mask(&a, rows); break;
    case OPT_PAD: rc = ctl_arg_padding(&a, &req->padding); break;
    case OPT_TOP_K: rc = ctl_arg_top_k(&a, &req->top_k); break;
    case OPT_LOGITS:
      rc = ctl_arg_logits(&a, &req->logits);
      logits_set = true;
      break;
    case OPT_SAVE_LOGITS: rc = ctl_arg_path(&a, &o->logits_file); break;
    case OPT_SAVE: rc = ctl_arg_site(&a, &sites[req->n_save++]); break;
    case OPT_SAVE_DIR: rc = ctl_arg_path(&a, save_dir); break;
    case OPT_EDIT_SET: rc = ctl_arg_edit_set(&a, &req->edit_set); break;
    case OPT_VALUES: o->values = true; break;
    }
  }
  if (rc != 0)
    return rc;
  if (req->model == NULL)
    return ctl_usage(c, "missing MODEL");
  if (rows->n_ids == 0)
    return ctl_usage(c, "at least one --tokens row (or --prompt) is needed");
  if (o->logits_file != NULL && logits_set &&
      req->logits == NNE_CLIENT_LOGITS_NONE)
    return ctl_usage(c, "--save-logits needs --logits last or all");
  if (o->logits_file != NULL && !logits_set)
    req->logits = NNE_CLIENT_LOGITS_ALL;
  /* An edit set may bring saves of its own (its SAVE edits). */
  if (*save_dir != NULL && req->n_save == 0 && req->edit_set == NULL)
    return ctl_usage(c, "--save-dir needs at least one --save SITE (or an "
                        "--edit-set with SAVE edits)");
  if (o->values && req->n_save == 0 && req->edit_set == NULL)
    return ctl_usage(c, "--values needs at least one --save SITE (or an "
                        "--edit-set with SAVE edits)");
  req->save = sites;
  req->rows = rows->ids;
  req->n_rows = rows->n_ids;
  req->mask = rows->mask;
  req->n_mask = rows->n_mask;
  o->model = req->model;
  o->in = req->rows;
  o->edit_set = req->edit_set;
  return 0;
}

static int run_forward(ctl_t *c, int argc, char **argv) {
  nne_client_forward_req_t req;
  nne_client_forward_result_t res;
  nne_client_err_t err;
  ctl_rows_t rows;
  const char **sites, *save_dir = NULL;
  fwd_out_t o;
  int rc;

  memset(&req, 0, sizeof req);
  memset(&res, 0, sizeof res);
  memset(&o, 0, sizeof o);
  req.top_k = 5;
  /* At most one site or row per argument: room for all of them. */
  if ((rc = ctl_rows_init(&rows, c, argc)) != 0)
    return rc;
  if ((sites = calloc((size_t)argc + 1, sizeof *sites)) == NULL) {
    ctl_rows_free(&rows);
    return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  }
  rc = forward_args(c, argc, argv, &req, &rows, sites, &o, &save_dir);
  if (rc == CTL_HELP_SHOWN) {
    free(sites);
    ctl_rows_free(&rows);
    return 0;
  }
  /* Before the call: a directory that cannot be made wastes no forward. */
  if (rc == 0 && save_dir != NULL)
    rc = ctl_dir_make(c, "--save-dir", save_dir);
  if (rc == 0)
    rc = ctl_connect(c);
  if (rc == 0 && nne_client_forward(c->cli, &req, &res, &err) < 0)
    rc = ctl_call_error(c, &err);
  else if (rc == 0)
    rc = forward_files(c, save_dir, &o, &res);
  if (rc == 0 && c->output == CTL_OUT_JSON)
    rc = ctl_json_out(c, forward_json(&o, &res));
  else if (rc == 0)
    forward_table(&o, &res);
  ctl_files_free(o.files, res.n_saved);
  nne_client_forward_result_free(&res);
  free(sites);
  ctl_rows_free(&rows);
  return rc;
}

static const ctl_opt_t forward_opts[] = {
    [OPT_TOKENS] = CTL_OPT_TOKENS,
    [OPT_PROMPT] = CTL_OPT_PROMPT,
    [OPT_MASK] = CTL_OPT_MASK,
    [OPT_PAD] = CTL_OPT_PAD,
    [OPT_TOP_K] = CTL_OPT_TOP_K,
    [OPT_LOGITS] = CTL_OPT_LOGITS,
    [OPT_SAVE_LOGITS] = {"--save-logits", NULL, true},
    [OPT_SAVE] = CTL_OPT_SAVE,
    [OPT_SAVE_DIR] = CTL_OPT_SAVE_DIR,
    [OPT_EDIT_SET] = CTL_OPT_EDIT_SET,
    [OPT_VALUES] = CTL_OPT_VALUES,
    CTL_OPT_END,
};

const ctl_cmd_t ctl_cmd_forward = {"forward", forward_opts, run_forward, false};
