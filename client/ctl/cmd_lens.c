/* cmd_lens.c — `nneditctl lens MODEL --prompt TEXT`: the logit lens. One
 * traced forward reads each layer's residual stream at the last position,
 * puts it through the model's final norm and unembedding (the standard
 * modules ln_final and lm_head, called inside the trace), and saves the
 * top-k of its softmax; the ids come back as text through Detokenize. The
 * table reads down the layers: where the model's answer first appears. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "output.h"
#include "tensors.h"

/* The save names of layer l's top-k ids and probabilities. */
static void lens_names(size_t l, char *ids, char *probs, size_t cap) {
  snprintf(ids, cap, "lens.%zu.id", l);
  snprintf(probs, cap, "lens.%zu.prob", l);
}

/* Per layer: read, last position, final norm, unembed, softmax, top-k. */
static int lens_graph(nne_client_igraph_t *g, size_t layers, uint32_t k) {
  char site[64], ids[32], probs[32];
  size_t l;
  for (l = 0; l < layers; l++) {
    int r, last, n, lg, p;
    snprintf(site, sizeof site, "layers.%zu.resid_post", l);
    lens_names(l, ids, probs, sizeof ids);
    r = nne_client_igraph_read(g, site, NNE_CLIENT_INVOKE_ALL);
    last =
        NNE_CLIENT_IGRAPH_INDEX(g, r, nne_client_idx_all(), nne_client_idx(-1));
    n = NNE_CLIENT_IGRAPH_CALL(g, "module", nne_client_arg_module("ln_final"),
                               nne_client_arg_node(last));
    lg = NNE_CLIENT_IGRAPH_CALL(g, "module", nne_client_arg_module("lm_head"),
                                nne_client_arg_node(n));
    p = NNE_CLIENT_IGRAPH_CALL(
        g, "softmax", nne_client_arg_node(lg),
        nne_client_arg_kw("dim", nne_client_arg_int(-1)));
    nne_client_igraph_save(g,
                           NNE_CLIENT_IGRAPH_CALL(g, "topk",
                                                  nne_client_arg_node(p),
                                                  nne_client_arg_int(k)),
                           probs);
    nne_client_igraph_save(g,
                           NNE_CLIENT_IGRAPH_CALL(g, "topk_indices",
                                                  nne_client_arg_node(p),
                                                  nne_client_arg_int(k)),
                           ids);
  }
  return nne_client_igraph_error(g, NULL);
}

/* What the lens found: ids[(l * rows + r) * k + j] and probs alike; the
 * texts, one per id, when the model has a tokenizer. */
typedef struct lens {
  size_t layers, rows;
  uint32_t k;
  int64_t *ids;
  double *probs;
  nne_client_detokenize_result_t texts; /* n_texts 0: none */
} lens_t;

/* The saves into l: each [rows, k] as the graph made it (INTERNAL if not,
 * since the daemon ran our graph). */
static int lens_take(const ctl_t *c, const nne_client_trace_results_t *res,
                     lens_t *l) {
  char ids[32], probs[32];
  size_t li, m, per = l->rows * l->k;
  for (li = 0; li < l->layers; li++) {
    const nne_client_tensor_t *ti, *tp;
    lens_names(li, ids, probs, sizeof ids);
    ti = nne_client_trace_results_saved(res, ids);
    tp = nne_client_trace_results_saved(res, probs);
    if (ti == NULL || tp == NULL || nne_client_tensor_numel(ti) != per ||
        nne_client_tensor_numel(tp) != per)
      return ctl_fail(c, NNE_CLIENT_INTERNAL,
                      "layer %zu: the lens did not come back as [%zu, %" PRIu32
                      "]",
                      li, l->rows, l->k);
    for (m = 0; m < per; m++) {
      l->ids[li * per + m] = ctl_elem_get(ti, m).i;
      l->probs[li * per + m] = ctl_elem_get(tp, m).d;
    }
  }
  return 0;
}

/* The texts of every id, in one Detokenize; a model without a tokenizer
 * shows ids alone. */
static int lens_texts(ctl_t *c, const char *model, lens_t *l) {
  size_t n = l->layers * l->rows * l->k, m;
  nne_client_token_row_t *rows = calloc(n ? n : 1, sizeof *rows);
  nne_client_err_t err;
  int rc = 0;
  if (rows == NULL)
    return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  for (m = 0; m < n; m++)
    rows[m] = (nne_client_token_row_t){.ids = &l->ids[m], .n_ids = 1};
  if (nne_client_detokenize(c->cli, model, rows, n, false, &l->texts, &err) <
          0 &&
      err.code != NNE_CLIENT_FAILED_PRECONDITION)
    rc = ctl_call_error(c, &err);
  free(rows);
  return rc;
}

static json_t *lens_json(const char *model, const char *edit_set,
                         const lens_t *l) {
  json_t *rows = json_array();
  size_t r, li, j;
  for (r = 0; r < l->rows; r++) {
    json_t *layers = json_array();
    for (li = 0; li < l->layers; li++) {
      json_t *top = json_array();
      for (j = 0; j < l->k; j++) {
        size_t m = (li * l->rows + r) * l->k + j;
        json_array_append_new(
            top,
            json_pack("{s:I, s:o, s:o*}", "token_id", (json_int_t)l->ids[m],
                      "prob", ctl_json_num(l->probs[m]), "text",
                      l->texts.n_texts ? ctl_json_text(l->texts.texts[m].text,
                                                       l->texts.texts[m].len)
                                       : json_null()));
      }
      json_array_append_new(
          layers, json_pack("{s:I, s:o}", "layer", (json_int_t)li, "top", top));
    }
    json_array_append_new(
        rows, json_pack("{s:I, s:o}", "row", (json_int_t)r, "layers", layers));
  }
  return json_pack("{s:s, s:o, s:I, s:I, s:o}", "model", model, "edit_set",
                   edit_set ? json_string(edit_set) : json_null(), "layers",
                   (json_int_t)l->layers, "top_k", (json_int_t)l->k, "rows",
                   rows);
}

/* Per row: a line per layer, its top-k as 'text' prob (or the id). */
static int lens_table(const ctl_t *c, const char *model,
                      const nne_client_token_row_t *in, const lens_t *l) {
  enum { CELL = 120 };
  size_t ncol = (size_t)l->k + 1, r, li, j;
  const char **cells = calloc((l->layers + 1) * ncol, sizeof *cells);
  char *buf = malloc((l->layers + 1) * ncol * CELL), q[96];
  char *align = calloc(ncol + 1, 1); /* the layer right, the tokens left */
  if (cells == NULL || buf == NULL || align == NULL) {
    free(cells);
    free(buf);
    free(align);
    return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  }
  printf("model %s  logit lens: %zu layers, top %" PRIu32 "\n", model,
         l->layers, l->k);
  for (r = 0; r < l->rows; r++) {
    printf("\nrow %zu", r);
    if (in[r].text != NULL)
      printf("  prompt %s",
             ctl_quote_text(in[r].text, strlen(in[r].text), q, sizeof q));
    putchar('\n');
    for (j = 0; j < ncol; j++) {
      char *b = buf + j * CELL;
      if (j == 0)
        snprintf(b, CELL, "LAYER");
      else
        snprintf(b, CELL, "%zu", j);
      cells[j] = b;
    }
    for (li = 0; li < l->layers; li++) {
      char *b = buf + (li + 1) * ncol * CELL;
      snprintf(b, CELL, "%zu", li);
      cells[(li + 1) * ncol] = b;
      for (j = 0; j < l->k; j++) {
        size_t m = (li * l->rows + r) * l->k + j;
        char *cb = buf + ((li + 1) * ncol + j + 1) * CELL;
        if (l->texts.n_texts)
          snprintf(cb, CELL, "%s %.3f",
                   ctl_quote_text(l->texts.texts[m].text, l->texts.texts[m].len,
                                  q, 64),
                   l->probs[m]);
        else
          snprintf(cb, CELL, "%" PRId64 " %.3f", l->ids[m], l->probs[m]);
        cells[(li + 1) * ncol + j + 1] = cb;
      }
    }
    memset(align, 'l', ncol);
    align[0] = 'r';
    ctl_print_columns(cells, l->layers + 1, ncol, align);
  }
  free(cells);
  free(buf);
  free(align);
  return 0;
}

/* The model's layer count (Models/List): the lens reads each layer. */
static int lens_layers(ctl_t *c, const char *model, size_t *layers) {
  nne_client_model_list_t list;
  nne_client_err_t err;
  size_t i;
  *layers = 0;
  if (nne_client_models_list(c->cli, &list, &err) < 0)
    return ctl_call_error(c, &err);
  for (i = 0; i < list.n_models; i++)
    if (strcmp(list.models[i].name, model) == 0)
      *layers = list.models[i].layer_count;
  nne_client_model_list_free(&list);
  if (*layers == 0)
    return ctl_fail(c, NNE_CLIENT_FAILED_PRECONDITION,
                    "model '%s' is not loaded or has no family: the lens "
                    "needs its layers, ln_final and lm_head",
                    model);
  return 0;
}

enum { OPT_TOKENS, OPT_PROMPT, OPT_PAD, OPT_TOP_K, OPT_EDIT_SET };

static int lens_args(ctl_t *c, int argc, char **argv, const char **model,
                     ctl_rows_t *rows, nne_client_trace_req_t *req) {
  ctl_args_t a;
  int k, rc = 0;
  ctl_args_init(&a, c, argc, argv);
  while (rc == 0 && (k = ctl_args_next(&a)) != CTL_ARG_END) {
    switch (k) {
    case CTL_ARG_HELP: ctl_help(c); return CTL_HELP_SHOWN;
    case CTL_ARG_BAD: return CTL_EXIT_USAGE;
    case CTL_ARG_POS:
      rc = *model != NULL
               ? ctl_args_unexpected(&a)
               : ctl_arg_word(&a, "MODEL", NNE_CLIENT_MODEL_NAME_MAX, model);
      break;
    case OPT_TOKENS: rc = ctl_arg_tokens(&a, rows); break;
    case OPT_PROMPT: rc = ctl_arg_prompt(&a, rows); break;
    case OPT_PAD: rc = ctl_arg_padding(&a, &req->padding); break;
    case OPT_TOP_K: rc = ctl_arg_top_k(&a, &req->top_k); break;
    case OPT_EDIT_SET: rc = ctl_arg_edit_set(&a, &req->edit_set); break;
    }
  }
  if (rc != 0)
    return rc;
  if (*model == NULL)
    return ctl_usage(c, "missing MODEL");
  if (rows->n_ids == 0)
    return ctl_usage(c, "at least one --prompt (or --tokens) row is needed");
  if (req->top_k == 0 || req->top_k > 100)
    return ctl_usage(c, "--top-k %" PRIu32 ": expected 1 to 100", req->top_k);
  /* The lens reads the last position: right padding would put a pad
   * token there. */
  if (req->padding == NNE_CLIENT_PAD_RIGHT)
    return ctl_usage(c, "--pad right: the lens reads each row's last "
                        "position; use --pad left");
  return 0;
}

static int run_lens(ctl_t *c, int argc, char **argv) {
  nne_client_trace_req_t req;
  nne_client_trace_results_t res;
  nne_client_invoke_t inv;
  nne_client_trace_t tr;
  nne_client_err_t err;
  nne_client_igraph_t *g = NULL;
  const char *model = NULL;
  ctl_rows_t rows;
  lens_t l;
  int rc;

  memset(&req, 0, sizeof req);
  memset(&res, 0, sizeof res);
  memset(&l, 0, sizeof l);
  req.top_k = 5;
  if ((rc = ctl_rows_init(&rows, c, argc)) != 0)
    return rc;
  rc = lens_args(c, argc, argv, &model, &rows, &req);
  if (rc == 0)
    rc = ctl_connect(c);
  if (rc == 0)
    rc = lens_layers(c, model, &l.layers);
  if (rc == 0) {
    l.rows = rows.n_ids;
    l.k = req.top_k;
    l.ids = calloc(l.layers * l.rows * l.k, sizeof *l.ids);
    l.probs = calloc(l.layers * l.rows * l.k, sizeof *l.probs);
    g = nne_client_igraph_new();
    if (l.ids == NULL || l.probs == NULL || g == NULL ||
        lens_graph(g, l.layers, l.k) != 0)
      rc = ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  }
  if (rc == 0) {
    inv = (nne_client_invoke_t){.rows = rows.ids, .n_rows = rows.n_ids};
    tr = (nne_client_trace_t){
        .name = "lens", .invokes = &inv, .n_invokes = 1, .graph = g};
    req.model = model;
    req.traces = &tr;
    req.n_traces = 1;
    req.top_k = 0; /* the last layer's lens is the model's own answer */
    if (nne_client_trace(c->cli, &req, &res, &err) < 0)
      rc = ctl_call_error(c, &err);
  }
  if (rc == 0)
    rc = lens_take(c, &res, &l);
  if (rc == 0)
    rc = lens_texts(c, model, &l);
  if (rc == 0 && c->output == CTL_OUT_JSON)
    rc = ctl_json_out(c, lens_json(model, req.edit_set, &l));
  else if (rc == 0)
    rc = lens_table(c, model, rows.ids, &l);
  nne_client_detokenize_result_free(&l.texts);
  nne_client_trace_results_free(&res);
  nne_client_igraph_free(g);
  free(l.ids);
  free(l.probs);
  ctl_rows_free(&rows);
  return rc == CTL_HELP_SHOWN ? 0 : rc;
}

static const ctl_opt_t lens_opts[] = {
    [OPT_TOKENS] = CTL_OPT_TOKENS,     [OPT_PROMPT] = CTL_OPT_PROMPT,
    [OPT_PAD] = CTL_OPT_PAD,           [OPT_TOP_K] = CTL_OPT_TOP_K,
    [OPT_EDIT_SET] = CTL_OPT_EDIT_SET, CTL_OPT_END,
};

const ctl_cmd_t ctl_cmd_lens = {"lens", lens_opts, run_lens, false};
