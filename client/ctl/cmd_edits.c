/* cmd_edits.c — `nneditctl edits apply|list|get|drop`: edit sets, from an
 * EDITS-JSON file (edits_json.h) to what the daemon made of it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "edits_json.h"
#include "output.h"

/* ---- output -------------------------------------------------------------- */

static json_t *set_info_json(const nne_client_edit_set_info_t *s) {
  return json_pack(
      "{s:s, s:s, s:s, s:I, s:s, s:I, s:o, s:b, s:I, s:I, s:I}", "id", s->id,
      "model", s->model, "label", s->label, "edit_count",
      (json_int_t)s->edit_count, "backend_key", s->backend_key, "backend_bytes",
      (json_int_t)s->backend_bytes, "compile_ms", ctl_json_num(s->compile_ms),
      "cache_hit", (int)s->cache_hit, "created_unix_ms",
      (json_int_t)s->created_unix_ms, "in_flight", (json_int_t)s->in_flight,
      "tensor_bytes", (json_int_t)s->tensor_bytes);
}

/* "2024-05-01 12:00:03" (UTC), or "-" for 0. */
static void time_text(int64_t unix_ms, char *buf, size_t cap) {
  time_t t = (time_t)(unix_ms / 1000);
  struct tm tm;
  if (unix_ms <= 0 || gmtime_r(&t, &tm) == NULL ||
      strftime(buf, cap, "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
    snprintf(buf, cap, "-");
}

static void set_info_table(const nne_client_edit_set_info_t *s) {
  char when[64];
  time_text(s->created_unix_ms, when, sizeof when);
  printf("id:            %s\n", s->id);
  printf("model:         %s\n", s->model);
  printf("label:         %s\n", s->label[0] ? s->label : "-");
  printf("edits:         %" PRIu32 "\n", s->edit_count);
  printf("backend:       %s%s\n", s->backend_key[0] ? s->backend_key : "-",
         s->cache_hit ? " (cache hit)" : "");
  printf("backend bytes: %" PRIu64 "\n", s->backend_bytes);
  printf("tensor bytes:  %" PRIu64 "\n", s->tensor_bytes);
  printf("compile:       %.2f ms\n", s->compile_ms);
  printf("created:       %s\n", when);
  printf("in flight:     %" PRIu32 "\n", s->in_flight);
}

/* "d1[3:4] d-1[128:192]"; stop 0 prints as an open end ("d1[-1:]"). */
static void ranges_text(const nne_client_dim_range_t *r, size_t n, char *buf,
                        size_t cap) {
  size_t k, len = 0;
  buf[0] = '\0';
  if (n == 0) {
    ctl_line_add(buf, cap, &len, "-");
    return;
  }
  for (k = 0; k < n; k++) {
    ctl_line_add(buf, cap, &len, "%sd%d[%" PRId64 ":", k ? " " : "",
                 (int)r[k].dim, r[k].start);
    if (r[k].stop != 0)
      ctl_line_add(buf, cap, &len, "%" PRId64, r[k].stop);
    ctl_line_add(buf, cap, &len, "]");
  }
}

/* "float32[64]", "scalar 0.5", "-" */
static void operand_text(const nne_client_resolved_edit_t *r, char *buf,
                         size_t cap) {
  size_t k, len = 0;
  buf[0] = '\0';
  if (r->use_scalar) {
    ctl_line_add(buf, cap, &len, "scalar %.9g", r->scalar);
  } else if (r->tensor_dtype != NNE_CLIENT_DTYPE_UNSPECIFIED) {
    ctl_line_add(buf, cap, &len, "%s[", nne_client_dtype_name(r->tensor_dtype));
    for (k = 0; k < r->tensor_ndim; k++)
      ctl_line_add(buf, cap, &len, "%s%" PRId64, k ? ", " : "",
                   r->tensor_shape[k]);
    ctl_line_add(buf, cap, &len, "]");
  } else {
    ctl_line_add(buf, cap, &len, "-");
  }
}

static json_t *ranges_json(const nne_client_dim_range_t *r, size_t n) {
  json_t *a = json_array();
  size_t k;
  for (k = 0; k < n; k++)
    json_array_append_new(a, json_pack("{s:i, s:I, s:I}", "dim", (int)r[k].dim,
                                       "start", (json_int_t)r[k].start, "stop",
                                       (json_int_t)r[k].stop));
  return a;
}

static json_t *resolved_json(const nne_client_resolved_edit_t *r) {
  json_t *shape = json_array(), *operand;
  size_t k;
  for (k = 0; k < r->tensor_ndim; k++)
    json_array_append_new(shape, json_integer(r->tensor_shape[k]));
  if (r->use_scalar) {
    json_decref(shape);
    operand = json_pack("{s:o}", "scalar", ctl_json_num(r->scalar));
  } else if (r->tensor_dtype != NNE_CLIENT_DTYPE_UNSPECIFIED) {
    operand = json_pack("{s:s, s:o}", "dtype",
                        nne_client_dtype_name(r->tensor_dtype), "shape", shape);
  } else {
    json_decref(shape);
    operand = json_null();
  }
  return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:I, s:s}",
                   "index", (json_int_t)r->index, "site", r->site, "canonical",
                   r->canonical, "instance", r->instance, "node", r->node,
                   "standard", r->standard, "op",
                   nne_client_edit_op_name(r->op), "operand", operand, "ranges",
                   ranges_json(r->ranges, r->n_ranges), "hook_id",
                   (json_int_t)r->hook_id, "name", r->name);
}

/* The edit sets of a list, one a row. */
static int sets_table(const ctl_t *c, const nne_client_edit_set_list_t *list) {
  enum { NC = 9 };
  static const char *const head[NC] = {
      "ID",      "MODEL",         "LABEL",        "EDITS",  "CACHE",
      "COMPILE", "BACKEND_BYTES", "TENSOR_BYTES", "CREATED"};
  size_t rows = list->n_sets + 1, k;
  const char **cells = calloc(rows * NC, sizeof *cells);
  char(*num)[5][64] = calloc(list->n_sets, sizeof *num);
  if (cells == NULL || num == NULL) {
    free(cells);
    free(num);
    return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  }
  memcpy(cells, head, sizeof head);
  for (k = 0; k < list->n_sets; k++) {
    const nne_client_edit_set_info_t *s = &list->sets[k];
    const char **row = cells + (k + 1) * NC;
    snprintf(num[k][0], 64, "%" PRIu32, s->edit_count);
    snprintf(num[k][1], 64, "%.2f ms", s->compile_ms);
    snprintf(num[k][2], 64, "%" PRIu64, s->backend_bytes);
    snprintf(num[k][3], 64, "%" PRIu64, s->tensor_bytes);
    time_text(s->created_unix_ms, num[k][4], 64);
    row[0] = s->id;
    row[1] = s->model;
    row[2] = s->label[0] ? s->label : "-";
    row[3] = num[k][0];
    row[4] = s->cache_hit ? "hit" : "miss";
    row[5] = num[k][1];
    row[6] = num[k][2];
    row[7] = num[k][3];
    row[8] = num[k][4];
  }
  ctl_print_columns(cells, rows, NC, "lllrlrrrl");
  free(cells);
  free(num);
  return 0;
}

/* An edit set and its resolved edits, one a row. */
static int set_table(const ctl_t *c, const nne_client_edit_set_t *set) {
  enum { NC = 9, TXT = 600 };
  static const char *const head[NC] = {"#",        "SITE",   "CANONICAL",
                                       "INSTANCE", "NODE",   "OP",
                                       "OPERAND",  "RANGES", "HOOK"};
  size_t rows = set->n_edits + 1, k;
  const char **cells = calloc(rows * NC, sizeof *cells);
  /* index, site, op, operand, ranges, hook */
  char(*txt)[6][TXT] = calloc(set->n_edits ? set->n_edits : 1, sizeof *txt);
  set_info_table(&set->info);
  putchar('\n');
  if (cells == NULL || txt == NULL) {
    free(cells);
    free(txt);
    return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  }
  memcpy(cells, head, sizeof head);
  for (k = 0; k < set->n_edits; k++) {
    const nne_client_resolved_edit_t *e = &set->edits[k];
    const char **row = cells + (k + 1) * NC;
    snprintf(txt[k][0], TXT, "%" PRIu32, e->index);
    /* The standard name beside a spelling that is not it. */
    if (e->standard[0] && strcmp(e->standard, e->site) != 0)
      snprintf(txt[k][1], TXT, "%s (%s)", e->site, e->standard);
    else
      snprintf(txt[k][1], TXT, "%s", e->site);
    if (e->op == NNE_CLIENT_EDIT_SAVE && e->name[0])
      snprintf(txt[k][2], TXT, "save as %s", e->name);
    else
      snprintf(txt[k][2], TXT, "%s", nne_client_edit_op_name(e->op));
    operand_text(e, txt[k][3], TXT);
    ranges_text(e->ranges, e->n_ranges, txt[k][4], TXT);
    snprintf(txt[k][5], TXT, "%" PRIu32, e->hook_id);
    row[0] = txt[k][0];
    row[1] = txt[k][1];
    row[2] = e->canonical[0] ? e->canonical : "-";
    row[3] = e->instance[0] ? e->instance : "(root)";
    row[4] = e->node[0] ? e->node : "-";
    row[5] = txt[k][2];
    row[6] = txt[k][3];
    row[7] = txt[k][4];
    row[8] = txt[k][5];
  }
  ctl_print_columns(cells, rows, NC, NULL);
  free(cells);
  free(txt);
  return 0;
}

/* ---- the commands -------------------------------------------------------- */

enum { OPT_FILE, OPT_LABEL };

static int run_apply(ctl_t *c, int argc, char **argv) {
  const char *model = NULL, *file = NULL, *label = NULL;
  nne_client_edit_set_info_t info;
  nne_client_err_t err;
  ctl_edits_file_t ef;
  ctl_args_t a;
  int k, rc = 0;

  ctl_args_init(&a, c, argc, argv);
  while (rc == 0 && (k = ctl_args_next(&a)) != CTL_ARG_END) {
    if (k == CTL_ARG_HELP)
      return ctl_help(c);
    if (k == CTL_ARG_BAD)
      return CTL_EXIT_USAGE;
    if (k == CTL_ARG_POS)
      rc = model != NULL
               ? ctl_args_unexpected(&a)
               : ctl_arg_word(&a, "MODEL", NNE_CLIENT_MODEL_NAME_MAX, &model);
    else if (k == OPT_FILE)
      rc = ctl_arg_path(&a, &file);
    else if (k == OPT_LABEL)
      rc = ctl_arg_text(&a, NNE_CLIENT_LABEL_MAX, true, &label);
  }
  if (rc != 0)
    return rc;
  if (model == NULL)
    return ctl_usage(c, "missing MODEL");
  if (file == NULL)
    return ctl_usage(c, "missing -f EDITS.json");
  if (!ctl_edits_file_load(&ef, file)) {
    rc = ctl_usage(c, "%s: %s", file, ef.j.msg);
    ctl_edits_file_free(&ef);
    return rc;
  }
  if ((rc = ctl_connect(c)) == 0 &&
      nne_client_edits_apply(c->cli, model, ef.edits, ef.n,
                             label != NULL ? label : ef.label, &info, &err) < 0)
    rc = ctl_call_error(c, &err);
  ctl_edits_file_free(&ef);
  if (rc != 0)
    return rc;
  if (c->output == CTL_OUT_JSON)
    return ctl_json_out(c,
                        json_pack("{s:o}", "edit_set", set_info_json(&info)));
  /* The id alone, so that ID=$(nneditctl edits apply ...) works. */
  printf("%s\n", info.id);
  return 0;
}

static int run_list(ctl_t *c, int argc, char **argv) {
  const char *model;
  nne_client_edit_set_list_t list;
  nne_client_err_t err;
  json_t *arr;
  size_t k;
  int rc;

  if ((rc = ctl_args_one(c, argc, argv, "MODEL", NNE_CLIENT_MODEL_NAME_MAX,
                         false, &model)) != 0 ||
      (rc = ctl_connect(c)) != 0)
    return rc == CTL_HELP_SHOWN ? 0 : rc;
  if (nne_client_edits_list(c->cli, model, &list, &err) < 0)
    return ctl_call_error(c, &err);
  if (c->output == CTL_OUT_JSON) {
    arr = json_array();
    for (k = 0; k < list.n_sets; k++)
      json_array_append_new(arr, set_info_json(&list.sets[k]));
    rc = ctl_json_out(c, json_pack("{s:o}", "edit_sets", arr));
  } else if (list.n_sets == 0) {
    printf("no edit sets%s%s\n", model ? " on " : "", model ? model : "");
  } else {
    rc = sets_table(c, &list);
  }
  nne_client_edit_set_list_free(&list);
  return rc;
}

static int run_get(ctl_t *c, int argc, char **argv) {
  nne_client_edit_set_t set;
  nne_client_err_t err;
  const char *id;
  json_t *arr;
  size_t k;
  int rc;

  if ((rc = ctl_args_one(c, argc, argv, "ID", NNE_CLIENT_EDIT_SET_ID_MAX, true,
                         &id)) != 0 ||
      (rc = ctl_connect(c)) != 0)
    return rc == CTL_HELP_SHOWN ? 0 : rc;
  if (nne_client_edits_get(c->cli, id, &set, &err) < 0)
    return ctl_call_error(c, &err);
  if (c->output == CTL_OUT_JSON) {
    arr = json_array();
    for (k = 0; k < set.n_edits; k++)
      json_array_append_new(arr, resolved_json(&set.edits[k]));
    rc = ctl_json_out(c, json_pack("{s:o, s:o}", "edit_set",
                                   set_info_json(&set.info), "edits", arr));
  } else {
    rc = set_table(c, &set);
  }
  nne_client_edit_set_free(&set);
  return rc;
}

static int run_drop(ctl_t *c, int argc, char **argv) {
  nne_client_edit_set_info_t info;
  nne_client_err_t err;
  uint64_t freed;
  const char *id;
  int rc;

  if ((rc = ctl_args_one(c, argc, argv, "ID", NNE_CLIENT_EDIT_SET_ID_MAX, true,
                         &id)) != 0 ||
      (rc = ctl_connect(c)) != 0)
    return rc == CTL_HELP_SHOWN ? 0 : rc;
  if (nne_client_edits_drop(c->cli, id, &info, &freed, &err) < 0)
    return ctl_call_error(c, &err);
  if (c->output == CTL_OUT_JSON)
    return ctl_json_out(c, json_pack("{s:o, s:I}", "edit_set",
                                     set_info_json(&info), "freed_bytes",
                                     (json_int_t)freed));
  printf("dropped %s (freed %" PRIu64 " bytes)\n", info.id[0] ? info.id : id,
         freed);
  return 0;
}

static const ctl_opt_t apply_opts[] = {
    [OPT_FILE] = CTL_OPT_FILE,
    [OPT_LABEL] = {"--label", NULL, true},
    CTL_OPT_END,
};
static const ctl_opt_t no_opts[] = {CTL_OPT_END};

const ctl_cmd_t ctl_cmd_edits_apply = {"edits apply", apply_opts, run_apply,
                                       false};
const ctl_cmd_t ctl_cmd_edits_list = {"edits list", no_opts, run_list, false};
const ctl_cmd_t ctl_cmd_edits_get = {"edits get", no_opts, run_get, false};
const ctl_cmd_t ctl_cmd_edits_drop = {"edits drop", no_opts, run_drop, false};
