/* cmd_trace.c — `nneditctl trace`: traced forward passes, from flags (one
 * trace saving sites) or from a TRACE-JSON file (trace_json.h). Both forms
 * fill one ctl_trace_file_t, so they make their request the same way. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "output.h"
#include "tensors.h"
#include "trace_json.h"

/* ---- output -------------------------------------------------------------- */

/* Every tensor of the results, in the order they are printed and written:
 * per trace its saves, then its logits. */
static const nne_client_tensor_t **
out_tensors(const nne_client_trace_results_t *res, size_t *n) {
  const nne_client_tensor_t **v;
  size_t t, k;
  *n = 0;
  for (t = 0; t < res->n_traces; t++)
    *n += res->traces[t].n_saved + res->traces[t].has_logits;
  if ((v = calloc(*n ? *n : 1, sizeof *v)) == NULL)
    return NULL;
  *n = 0;
  for (t = 0; t < res->n_traces; t++) {
    for (k = 0; k < res->traces[t].n_saved; k++)
      v[(*n)++] = &res->traces[t].saved[k];
    if (res->traces[t].has_logits)
      v[(*n)++] = &res->traces[t].logits;
  }
  return v;
}

static json_t *trace_json(const char *model, const char *edit_set,
                          const nne_client_trace_results_t *res,
                          char *const *files, bool values) {
  json_t *arr = json_array();
  size_t t, k = 0;
  for (t = 0; t < res->n_traces; t++) {
    const nne_client_trace_result_t *r = &res->traces[t];
    json_t *o = json_pack(
        "{s:I, s:o, s:I, s:I, s:b, s:s, s:o, s:o, s:o, s:o}", "trace",
        (json_int_t)r->trace, "name",
        r->name[0] ? json_string(r->name) : json_null(), "batch",
        (json_int_t)r->batch, "seq_len", (json_int_t)r->seq_len, "cache_hit",
        (int)r->cache_hit, "backend_key", r->backend_key, "timing",
        ctl_timing_json(&r->timing), "rows", ctl_rows_json(r->rows, r->n_rows),
        "logits",
        r->has_logits
            ? ctl_tensor_json(&r->logits, files ? files[k + r->n_saved] : NULL)
            : json_null(),
        "saved",
        ctl_saved_json(r->saved, r->n_saved, files ? files + k : NULL, values));
    json_array_append_new(arr, o);
    k += r->n_saved + r->has_logits;
  }
  return json_pack("{s:s, s:o, s:o}", "model", model, "edit_set",
                   edit_set ? json_string(edit_set) : json_null(), "traces",
                   arr);
}

static void trace_table(const char *model, const char *edit_set,
                        const nne_client_trace_results_t *res,
                        char *const *files, bool values) {
  char shape[200];
  size_t t, k = 0;
  printf("model %s", model);
  if (edit_set != NULL)
    printf("  edit set %s", edit_set);
  printf("  %zu trace%s\n", res->n_traces, res->n_traces == 1 ? "" : "s");
  for (t = 0; t < res->n_traces; t++) {
    const nne_client_trace_result_t *r = &res->traces[t];
    const char *f = files && r->has_logits ? files[k + r->n_saved] : NULL;
    printf("\ntrace %zu", t);
    if (r->name[0] != '\0')
      printf(" '%s'", r->name);
    printf("  batch %" PRIu32 "  seq_len %" PRIu32 "  backend %.12s (cache "
           "%s)\n  queue %.2f ms  compute %.2f ms  total %.2f ms\n",
           r->batch, r->seq_len, r->backend_key[0] ? r->backend_key : "-",
           r->cache_hit ? "hit" : "miss", r->timing.queue_ms,
           r->timing.compute_ms, r->timing.total_ms);
    ctl_rows_table(r->rows, r->n_rows, "  ", NULL);
    ctl_saved_table(r->saved, r->n_saved, files ? files + k : NULL, values,
                    "  ");
    if (r->has_logits) {
      ctl_shape_text(&r->logits, shape, sizeof shape);
      printf("\n  logits: %s %s %s %zu bytes%s%s\n", r->logits.name,
             nne_client_dtype_name(r->logits.dtype), shape, r->logits.nbytes,
             f ? " -> " : "", f ? f : "");
    }
    k += r->n_saved + r->has_logits;
  }
}

/* ---- the simple form ----------------------------------------------------- */

/* The flags of the simple form: rows (all invokes' in one ctl_rows_t;
 * invoke i starts at ids_at[i] and mask_at[i]), sites, the trace's name. */
typedef struct simple {
  ctl_rows_t rows;
  size_t *ids_at, *mask_at;
  size_t n_invokes;
  bool invoke_open; /* an --invoke with no --tokens after it yet */
  const char **sites;
  size_t n_sites;
  const char *name;
  bool used; /* any of these flags was given */
} simple_t;

/* --invoke: ends the current invoke and opens the next (a leading one opens
 * the first). */
static int simple_invoke(const ctl_t *c, simple_t *s) {
  size_t cur = s->n_invokes - 1;
  if (s->invoke_open)
    return ctl_usage(c, "an --invoke without --tokens (or --prompt) after it");
  if (s->rows.n_ids > s->ids_at[cur] || s->rows.n_mask > s->mask_at[cur]) {
    s->ids_at[s->n_invokes] = s->rows.n_ids;
    s->mask_at[s->n_invokes] = s->rows.n_mask;
    s->n_invokes++;
  }
  s->invoke_open = true;
  s->used = true;
  return 0;
}

/* --save SITE: the same site twice is one save. */
static void simple_site(simple_t *s, const char *site) {
  size_t k;
  for (k = 0; k < s->n_sites && strcmp(s->sites[k], site) != 0; k++)
    ;
  if (k == s->n_sites)
    s->sites[s->n_sites++] = site;
  s->used = true;
}

/* The flags as one trace in tf: its invokes, and a graph that reads each
 * site for the whole batch and saves it under the site's spelling. */
static int simple_trace(const ctl_t *c, simple_t *s, ctl_trace_file_t *tf) {
  nne_client_invoke_t *inv;
  nne_client_igraph_t *g;
  size_t i, k;
  if (s->invoke_open)
    return ctl_usage(c, "an --invoke without --tokens (or --prompt) after it");
  s->ids_at[s->n_invokes] = s->rows.n_ids;
  s->mask_at[s->n_invokes] = s->rows.n_mask;
  for (i = 0; i < s->n_invokes; i++)
    if (s->ids_at[i + 1] == s->ids_at[i])
      return ctl_usage(c, "at least one --tokens row (or --prompt) is needed%s",
                       s->n_invokes > 1 ? " in each invoke" : "");
  if (!ctl_trace_file_traces(tf, 1) ||
      (inv = ctl_trace_file_alloc(tf, s->n_invokes * sizeof *inv)) == NULL)
    return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  for (i = 0; i < s->n_invokes; i++) {
    inv[i].rows = s->rows.ids + s->ids_at[i];
    inv[i].n_rows = s->ids_at[i + 1] - s->ids_at[i];
    inv[i].mask = s->rows.mask + s->mask_at[i];
    inv[i].n_mask = s->mask_at[i + 1] - s->mask_at[i];
  }
  tf->traces[0].name = s->name;
  tf->traces[0].invokes = inv;
  tf->traces[0].n_invokes = s->n_invokes;
  g = tf->graphs[0];
  for (k = 0; k < s->n_sites; k++)
    nne_client_igraph_save(
        g, nne_client_igraph_read(g, s->sites[k], NNE_CLIENT_INVOKE_ALL),
        s->sites[k]);
  if (nne_client_igraph_error(g, NULL) != 0)
    return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  return 0;
}

static int simple_init(const ctl_t *c, simple_t *s, int argc) {
  int rc;
  memset(s, 0, sizeof *s);
  if ((rc = ctl_rows_init(&s->rows, c, argc)) != 0)
    return rc;
  s->n_invokes = 1; /* the first invoke is implicit */
  s->ids_at = calloc((size_t)argc + 2, sizeof *s->ids_at);
  s->mask_at = calloc((size_t)argc + 2, sizeof *s->mask_at);
  s->sites = calloc((size_t)argc + 1, sizeof *s->sites);
  if (s->ids_at == NULL || s->mask_at == NULL || s->sites == NULL)
    return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  return 0;
}

static void simple_free(simple_t *s) {
  ctl_rows_free(&s->rows);
  free(s->ids_at);
  free(s->mask_at);
  free(s->sites);
}

/* ---- the command --------------------------------------------------------- */

enum {
  OPT_TOKENS,
  OPT_PROMPT,
  OPT_MASK,
  OPT_INVOKE,
  OPT_SAVE,
  OPT_NAME,
  OPT_FILE,
  OPT_SAVE_DIR,
  OPT_EDIT_SET,
  OPT_TOP_K,
  OPT_PAD,
  OPT_LOGITS,
  OPT_VALUES,
};

/* What the command line says beside the simple form's flags; the options
 * given override the file's. */
typedef struct trace_opts {
  const char *model, *file, *save_dir, *edit_set;
  nne_client_padding_t padding;
  nne_client_logits_t logits;
  uint32_t top_k;
  bool has_padding, has_logits, has_top_k, values;
} trace_opts_t;

/* 0, the exit code, or CTL_HELP_SHOWN. */
static int trace_args(ctl_t *c, int argc, char **argv, simple_t *s,
                      trace_opts_t *o) {
  ctl_args_t a;
  int k, rc = 0;
  ctl_args_init(&a, c, argc, argv);
  while (rc == 0 && (k = ctl_args_next(&a)) != CTL_ARG_END) {
    switch (k) {
    case CTL_ARG_HELP: ctl_help(c); return CTL_HELP_SHOWN;
    case CTL_ARG_BAD: return CTL_EXIT_USAGE;
    case CTL_ARG_POS:
      rc =
          o->model != NULL
              ? ctl_args_unexpected(&a)
              : ctl_arg_word(&a, "MODEL", NNE_CLIENT_MODEL_NAME_MAX, &o->model);
      break;
    case OPT_TOKENS:
    case OPT_PROMPT:
    case OPT_MASK:
      rc = k == OPT_TOKENS   ? ctl_arg_tokens(&a, &s->rows)
           : k == OPT_PROMPT ? ctl_arg_prompt(&a, &s->rows)
                             : ctl_arg_mask(&a, &s->rows);
      s->used = true;
      s->invoke_open = false;
      break;
    case OPT_INVOKE: rc = simple_invoke(c, s); break;
    case OPT_SAVE: {
      const char *site;
      if ((rc = ctl_arg_site(&a, &site)) == 0)
        simple_site(s, site);
      break;
    }
    case OPT_NAME:
      rc = ctl_arg_text(&a, NNE_CLIENT_TRACE_NAME_MAX, false, &s->name);
      s->used = true;
      break;
    case OPT_FILE: rc = ctl_arg_path(&a, &o->file); break;
    case OPT_SAVE_DIR: rc = ctl_arg_path(&a, &o->save_dir); break;
    case OPT_EDIT_SET: rc = ctl_arg_edit_set(&a, &o->edit_set); break;
    case OPT_TOP_K:
      rc = ctl_arg_top_k(&a, &o->top_k);
      o->has_top_k = true;
      break;
    case OPT_PAD:
      rc = ctl_arg_padding(&a, &o->padding);
      o->has_padding = true;
      break;
    case OPT_LOGITS:
      rc = ctl_arg_logits(&a, &o->logits);
      o->has_logits = true;
      break;
    case OPT_VALUES: o->values = true; break;
    }
  }
  return rc;
}

/* The request: the file's or the flags' traces, the command line's
 * options over the file's. */
static int trace_request(ctl_t *c, simple_t *s, trace_opts_t *o,
                         ctl_trace_file_t *tf, nne_client_trace_req_t *req) {
  int rc;
  if (o->file != NULL && s->used)
    return ctl_usage(c,
                     "-f cannot be combined with --tokens, --prompt, --mask, "
                     "--invoke, --save or --name (the file has them)");
  if (o->file == NULL) {
    if ((rc = simple_trace(c, s, tf)) != 0)
      return rc;
    if (o->model == NULL)
      return ctl_usage(c, "missing MODEL");
  } else if (!ctl_trace_file_load(tf, o->file)) {
    return ctl_usage(c, "%s: %s", o->file, tf->j.msg);
  }
  if (o->model == NULL)
    o->model = tf->model;
  if (o->model == NULL)
    return ctl_usage(c, "missing MODEL (an argument, or \"model\" in the "
                        "file)");
  memset(req, 0, sizeof *req);
  req->model = o->model;
  req->edit_set = o->edit_set != NULL ? o->edit_set : tf->edit_set;
  req->traces = tf->traces;
  req->n_traces = tf->n_traces;
  req->padding = o->has_padding || !tf->has_padding ? o->padding : tf->padding;
  req->top_k = o->has_top_k || !tf->has_top_k ? o->top_k : tf->top_k;
  req->logits = o->has_logits || !tf->has_logits ? o->logits : tf->logits;
  if (c->output == CTL_OUT_NPY && o->save_dir == NULL)
    o->save_dir = ".";
  /* Before the call: a directory that cannot be made wastes no forward. */
  if (o->save_dir != NULL)
    return ctl_dir_make(c, "--save-dir", o->save_dir);
  return 0;
}

static int run_trace(ctl_t *c, int argc, char **argv) {
  nne_client_trace_req_t req;
  nne_client_trace_results_t res;
  nne_client_err_t err;
  const nne_client_tensor_t **outs = NULL;
  ctl_trace_file_t tf;
  trace_opts_t o;
  simple_t s;
  char **files = NULL;
  size_t n_outs = 0;
  int rc;

  memset(&tf, 0, sizeof tf);
  memset(&res, 0, sizeof res);
  memset(&o, 0, sizeof o);
  o.top_k = 5;
  if ((rc = simple_init(c, &s, argc)) == 0 &&
      (rc = trace_args(c, argc, argv, &s, &o)) == 0 &&
      (rc = trace_request(c, &s, &o, &tf, &req)) == 0 &&
      (rc = ctl_connect(c)) == 0 &&
      nne_client_trace(c->cli, &req, &res, &err) < 0)
    rc = ctl_call_error(c, &err);
  if (rc == 0 && (outs = out_tensors(&res, &n_outs)) == NULL)
    rc = ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  /* One file per tensor: names are unique in a request, and two that are
   * made safe alike get apart. */
  if (rc == 0 && o.save_dir != NULL)
    rc = ctl_npy_write(c, o.save_dir, outs, n_outs, &files);
  if (rc == 0 && c->output == CTL_OUT_JSON)
    rc = ctl_json_out(c,
                      trace_json(o.model, req.edit_set, &res, files, o.values));
  else if (rc == 0)
    trace_table(o.model, req.edit_set, &res, files, o.values);
  ctl_files_free(files, n_outs);
  free(outs);
  nne_client_trace_results_free(&res);
  ctl_trace_file_free(&tf);
  simple_free(&s);
  return rc == CTL_HELP_SHOWN ? 0 : rc;
}

static const ctl_opt_t trace_opts[] = {
    [OPT_TOKENS] = CTL_OPT_TOKENS,     [OPT_PROMPT] = CTL_OPT_PROMPT,
    [OPT_MASK] = CTL_OPT_MASK,         [OPT_INVOKE] = {"--invoke", NULL, false},
    [OPT_SAVE] = CTL_OPT_SAVE,         [OPT_NAME] = {"--name", NULL, true},
    [OPT_FILE] = CTL_OPT_FILE,         [OPT_SAVE_DIR] = CTL_OPT_SAVE_DIR,
    [OPT_EDIT_SET] = CTL_OPT_EDIT_SET, [OPT_TOP_K] = CTL_OPT_TOP_K,
    [OPT_PAD] = CTL_OPT_PAD,           [OPT_LOGITS] = CTL_OPT_LOGITS,
    [OPT_VALUES] = CTL_OPT_VALUES,     CTL_OPT_END,
};

const ctl_cmd_t ctl_cmd_trace = {"trace", trace_opts, run_trace, true};
