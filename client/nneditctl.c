/* nneditctl — the admin command line of nneditd, over libnnedit.
 *
 *   nneditctl [--addr A] [--timeout SEC] [-o table|json] COMMAND [ARGS]
 *
 * Output is a human table by default, or one JSON document (-o json) whose
 * field names are stable: scripts may rely on them. Exit status: 0 success,
 * 1 an error from the call (printed as "nneditctl: STATUS: message" on
 * stderr; `health` also exits 1 when the answer is not SERVING), 2 a usage
 * error (bad flag, missing argument, unparsable number), with a usage line.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "nnedit.h"

#define EXIT_USAGE 2

typedef struct ctl {
  const char *addr;
  int64_t timeout_ms;
  bool json;
  nne_client_t *cli;
} ctl_t;

/* A command: its name, usage text (first line = synopsis) and runner. */
typedef struct cmd {
  const char *name;
  const char *usage;
  int (*run)(ctl_t *c, const struct cmd *self, int argc, char **argv);
} cmd_t;

static const char *global_usage =
    "usage: nneditctl [--addr ADDR] [--timeout SEC] [-o table|json] COMMAND "
    "[ARGS]\n"
    "\n"
    "commands:\n"
    "  health [SERVICE]                 is the server (or SERVICE) serving?\n"
    "  models list                      models in the repository\n"
    "  models load NAME [--device D] [--dtype T]\n"
    "  models unload NAME\n"
    "  modules MODEL                    module tree of a loaded model\n"
    "  forward MODEL --tokens 1,2,3 [--tokens ...] [options]\n"
    "\n"
    "options:\n"
    "  --addr ADDR      daemon address (default: $NNEDIT_ADDR, "
    "else " NNE_CLIENT_DEFAULT_ADDRESS ")\n"
    "  --timeout SEC    deadline of each call in seconds, 0 = none "
    "(default 60)\n"
    "  -o, --output F   table (default) or json\n"
    "  -h, --help       this help; 'nneditctl COMMAND --help' for a command\n"
    "  --version        print the version\n"
    "\n"
    "exit status: 0 ok, 1 error (or not SERVING), 2 usage error\n";

/* ---- messages ------------------------------------------------------------ */

/* A usage error: the reason, then the command's synopsis. Returns 2. */
static int usage_error(const cmd_t *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int usage_error(const cmd_t *cmd, const char *fmt, ...) {
  va_list ap;
  fputs("nneditctl: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  if (cmd != NULL) {
    const char *nl = strchr(cmd->usage, '\n');
    fprintf(stderr, "%.*s\n",
            nl ? (int)(nl - cmd->usage) : (int)strlen(cmd->usage), cmd->usage);
    fprintf(stderr, "Try 'nneditctl %s --help'.\n", cmd->name);
  } else {
    fputs("usage: nneditctl [--addr ADDR] [--timeout SEC] [-o table|json] "
          "COMMAND [ARGS]\nTry 'nneditctl --help'.\n",
          stderr);
  }
  return EXIT_USAGE;
}

/* A failed call. Returns 1. */
static int call_error(const nne_client_err_t *err) {
  fprintf(stderr, "nneditctl: %s: %s\n", nne_client_status_name(err->code),
          err->message);
  return 1;
}

/* Prints one JSON document (and frees it). Returns 0, or 1 when it could
 * not be built or written. */
static int json_out(json_t *doc) {
  int rc = 0;
  if (doc == NULL) {
    fputs("nneditctl: INTERNAL: cannot build the JSON output\n", stderr);
    return 1;
  }
  /* 9 significant digits round-trip every float32 (logits, probs) and keep
   * timings readable. */
  if (json_dumpf(doc, stdout,
                 JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                     JSON_REAL_PRECISION(9)) != 0 ||
      fputc('\n', stdout) == EOF)
    rc = 1;
  json_decref(doc);
  return rc;
}

/* A JSON number for a float that may be inf or nan (JSON has neither). */
static json_t *json_num(double v) {
  return isfinite(v) ? json_real(v) : json_null();
}

/* ---- argument parsing ---------------------------------------------------- */

/* Matches argv[*i] against a flag taking a value ("--flag V" or
 * "--flag=V"). Returns 1 and sets *val (advancing *i past V) on a match,
 * 0 when argv[*i] is another argument, -1 when the value is missing. */
static int take_opt(int argc, char **argv, int *i, const char *flag,
                    const char *alias, const char **val) {
  const char *a = argv[*i];
  size_t n = strlen(flag);
  if (strncmp(a, flag, n) == 0 && a[n] == '=') {
    *val = a + n + 1;
    return 1;
  }
  if (strcmp(a, flag) != 0 && (alias == NULL || strcmp(a, alias) != 0))
    return 0;
  if (*i + 1 >= argc)
    return -1;
  *val = argv[++*i];
  return 1;
}

static bool is_help(const char *a) {
  return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

static int cmd_help(const cmd_t *cmd) {
  fputs(cmd->usage, stdout);
  return 0;
}

/* Parses a comma-separated list of integers ("1,2,3"; "" = empty list)
 * within [lo, hi]. Returns false on anything else. *out is malloc'ed. */
static bool parse_int_list(const char *s, int64_t lo, int64_t hi, int64_t **out,
                           size_t *n) {
  size_t cap = 1, k = 0;
  const char *p;
  int64_t *v;

  *out = NULL;
  *n = 0;
  for (p = s; *p; p++)
    cap += *p == ',';
  v = malloc(cap * sizeof *v);
  if (v == NULL)
    return false;
  if (*s != '\0') {
    p = s;
    for (;;) {
      char *end;
      long long x;
      errno = 0;
      if (*p == '\0' || *p == ',' || *p == ' ')
        goto bad; /* empty element, or leading space */
      x = strtoll(p, &end, 10);
      if (errno != 0 || end == p || x < lo || x > hi)
        goto bad;
      v[k++] = (int64_t)x;
      if (*end == '\0')
        break;
      if (*end != ',')
        goto bad;
      p = end + 1;
    }
  }
  *out = v;
  *n = k;
  return true;
bad:
  free(v);
  return false;
}

static bool parse_u32(const char *s, uint32_t *out) {
  char *end;
  unsigned long long x;
  if (*s == '\0' || *s == '-' || *s == ' ')
    return false;
  errno = 0;
  x = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || x > UINT32_MAX)
    return false;
  *out = (uint32_t)x;
  return true;
}

/* ---- connecting ---------------------------------------------------------- */

static int connect_ctl(ctl_t *c) {
  nne_client_opts_t opts;
  nne_client_err_t err;
  nne_client_opts_init(&opts);
  opts.address = c->addr;
  opts.timeout_ms = c->timeout_ms;
  if (nne_client_connect(&opts, &c->cli, &err) < 0)
    return call_error(&err);
  return 0;
}

/* ---- model info ---------------------------------------------------------- */

static json_t *info_json(const nne_client_model_info_t *m) {
  return json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, "
      "s:o, s:I}",
      "name", m->name, "state", nne_client_model_state_name(m->state), "device",
      m->device, "dtype", nne_client_dtype_name(m->dtype), "family", m->family,
      "export_kind", m->export_kind, "error", m->error, "param_count",
      (json_int_t)m->param_count, "param_bytes", (json_int_t)m->param_bytes,
      "vocab_size", (json_int_t)m->vocab_size, "module_count",
      (json_int_t)m->module_count, "max_batch", (json_int_t)m->max_batch,
      "max_seq_len", (json_int_t)m->max_seq_len, "load_ms",
      json_num(m->load_ms), "in_flight", (json_int_t)m->in_flight);
}

static void info_table(const nne_client_model_info_t *m) {
  printf("name:         %s\n", m->name);
  printf("state:        %s\n", nne_client_model_state_name(m->state));
  if (m->state == NNE_CLIENT_MODEL_FAILED || m->error[0] != '\0')
    printf("error:        %s\n", m->error);
  printf("device:       %s\n", m->device);
  printf("dtype:        %s\n", nne_client_dtype_name(m->dtype));
  printf("family:       %s\n", m->family);
  printf("export:       %s\n", m->export_kind);
  printf("parameters:   %" PRIu64 " (%" PRIu64 " bytes)\n", m->param_count,
         m->param_bytes);
  printf("vocab size:   %" PRId64 "\n", m->vocab_size);
  printf("modules:      %" PRIu32 "\n", m->module_count);
  printf("limits:       batch %" PRIu32 ", sequence %" PRIu32 "\n",
         m->max_batch, m->max_seq_len);
  printf("load time:    %.1f ms\n", m->load_ms);
  printf("in flight:    %" PRIu32 "\n", m->in_flight);
}

/* ---- health -------------------------------------------------------------- */

static int run_health(ctl_t *c, const cmd_t *self, int argc, char **argv) {
  const char *service = NULL;
  nne_client_health_t st;
  nne_client_err_t err;
  int i, rc;

  for (i = 0; i < argc; i++) {
    if (is_help(argv[i]))
      return cmd_help(self);
    if (argv[i][0] == '-' && argv[i][1] != '\0')
      return usage_error(self, "unknown option '%s'", argv[i]);
    if (service != NULL)
      return usage_error(self, "unexpected argument '%s'", argv[i]);
    service = argv[i];
  }
  if ((rc = connect_ctl(c)) != 0)
    return rc;
  if (nne_client_health_check(c->cli, service, &st, &err) < 0)
    return call_error(&err);
  if (c->json)
    rc = json_out(json_pack("{s:s, s:s}", "service", service ? service : "",
                            "status", nne_client_health_name(st)));
  else
    printf("%s\n", nne_client_health_name(st));
  if (rc == 0 && st != NNE_CLIENT_HEALTH_SERVING)
    rc = 1;
  return rc;
}

/* ---- models -------------------------------------------------------------- */

static int models_list(ctl_t *c) {
  nne_client_model_list_t list;
  nne_client_err_t err;
  size_t i;
  int rc = 0;

  if ((rc = connect_ctl(c)) != 0)
    return rc;
  if (nne_client_models_list(c->cli, &list, &err) < 0)
    return call_error(&err);
  if (c->json) {
    json_t *arr = json_array();
    for (i = 0; i < list.n_models; i++)
      json_array_append_new(arr, info_json(&list.models[i]));
    rc = json_out(json_pack("{s:s, s:o}", "server_version", list.server_version,
                            "models", arr));
  } else {
    int wn = 4, wd = 6, wf = 6;
    for (i = 0; i < list.n_models; i++) {
      const nne_client_model_info_t *m = &list.models[i];
      if ((int)strlen(m->name) > wn)
        wn = (int)strlen(m->name);
      if ((int)strlen(m->device) > wd)
        wd = (int)strlen(m->device);
      if ((int)strlen(m->family) > wf)
        wf = (int)strlen(m->family);
    }
    printf("%-*s  %-9s  %-*s  %-8s  %-*s  %12s  %6s\n", wn, "NAME", "STATE", wd,
           "DEVICE", "DTYPE", wf, "FAMILY", "PARAMS", "VOCAB");
    for (i = 0; i < list.n_models; i++) {
      const nne_client_model_info_t *m = &list.models[i];
      char params[24] = "-", vocab[24] = "-";
      /* Sizes are known once a model is loaded: "-" says "not yet". */
      if (m->param_count > 0)
        snprintf(params, sizeof params, "%" PRIu64, m->param_count);
      if (m->vocab_size > 0)
        snprintf(vocab, sizeof vocab, "%" PRId64, m->vocab_size);
      printf("%-*s  %-9s  %-*s  %-8s  %-*s  %12s  %6s\n", wn, m->name,
             nne_client_model_state_name(m->state), wd,
             m->device[0] ? m->device : "-",
             m->dtype ? nne_client_dtype_name(m->dtype) : "-", wf,
             m->family[0] ? m->family : "-", params, vocab);
      if (m->error[0] != '\0')
        printf("%*s  error: %s\n", wn, "", m->error);
    }
    if (list.server_version[0] != '\0')
      printf("(server: %s)\n", list.server_version);
  }
  nne_client_model_list_free(&list);
  return rc;
}

static int models_load_unload(ctl_t *c, const cmd_t *self, bool load, int argc,
                              char **argv) {
  const char *name = NULL, *device = NULL, *dtype_s = NULL;
  nne_client_dtype_t dtype = NNE_CLIENT_DTYPE_UNSPECIFIED;
  nne_client_model_info_t info;
  nne_client_err_t err;
  int i, rc, r;

  for (i = 0; i < argc; i++) {
    if (is_help(argv[i]))
      return cmd_help(self);
    if (load &&
        (r = take_opt(argc, argv, &i, "--device", NULL, &device)) != 0) {
      if (r < 0)
        return usage_error(self, "--device needs a value");
      continue;
    }
    if (load &&
        (r = take_opt(argc, argv, &i, "--dtype", NULL, &dtype_s)) != 0) {
      if (r < 0)
        return usage_error(self, "--dtype needs a value");
      continue;
    }
    if (argv[i][0] == '-' && argv[i][1] != '\0')
      return usage_error(self, "unknown option '%s'", argv[i]);
    if (name != NULL)
      return usage_error(self, "unexpected argument '%s'", argv[i]);
    name = argv[i];
  }
  if (name == NULL)
    return usage_error(self, "missing model NAME");
  if (dtype_s != NULL && nne_client_dtype_parse(dtype_s, &dtype, &err) < 0)
    return usage_error(self, "%s", err.message);
  if ((rc = connect_ctl(c)) != 0)
    return rc;
  if (load)
    rc = nne_client_models_load(c->cli, name, device, dtype, &info, &err);
  else
    rc = nne_client_models_unload(c->cli, name, &info, &err);
  if (rc < 0)
    return call_error(&err);
  if (c->json)
    return json_out(json_pack("{s:o}", "model", info_json(&info)));
  info_table(&info);
  return 0;
}

static const cmd_t models_cmds[];

static int run_models(ctl_t *c, const cmd_t *self, int argc, char **argv) {
  if (argc == 0)
    return usage_error(self, "missing subcommand (list, load, unload)");
  if (is_help(argv[0]))
    return cmd_help(self);
  if (strcmp(argv[0], "list") == 0) {
    int i;
    for (i = 1; i < argc; i++) {
      if (is_help(argv[i]))
        return cmd_help(&models_cmds[0]);
      return usage_error(&models_cmds[0], "unexpected argument '%s'", argv[i]);
    }
    return models_list(c);
  }
  if (strcmp(argv[0], "load") == 0)
    return models_load_unload(c, &models_cmds[1], true, argc - 1, argv + 1);
  if (strcmp(argv[0], "unload") == 0)
    return models_load_unload(c, &models_cmds[2], false, argc - 1, argv + 1);
  return usage_error(self, "unknown subcommand '%s' (list, load, unload)",
                     argv[0]);
}

static const cmd_t models_cmds[] = {
    {"models list",
     "usage: nneditctl models list\n"
     "\n"
     "Lists the models of the daemon's repository with their state.\n"
     "JSON: {server_version, models: [{name, state, device, dtype, family,\n"
     "       export_kind, error, param_count, param_bytes, vocab_size,\n"
     "       module_count, max_batch, max_seq_len, load_ms, in_flight}]}\n",
     NULL},
    {"models load",
     "usage: nneditctl models load NAME [--device D] [--dtype T]\n"
     "\n"
     "Loads NAME from the repository (waits until loaded; a loaded model is\n"
     "returned as is).\n"
     "  --device D   cpu, cuda:0, ... (default: the model's model.json)\n"
     "  --dtype T    float32, float16, bfloat16, ... (default: model.json)\n"
     "JSON: {model: {...}} (the fields of 'models list')\n",
     NULL},
    {"models unload",
     "usage: nneditctl models unload NAME\n"
     "\n"
     "Unloads NAME (in-flight calls finish first).\n"
     "JSON: {model: {...}}\n",
     NULL},
};

/* ---- modules ------------------------------------------------------------- */

static int run_modules(ctl_t *c, const cmd_t *self, int argc, char **argv) {
  const char *model = NULL;
  nne_client_model_desc_t d;
  nne_client_err_t err;
  size_t i;
  int rc = 0;

  for (i = 0; i < (size_t)argc; i++) {
    if (is_help(argv[i]))
      return cmd_help(self);
    if (argv[i][0] == '-' && argv[i][1] != '\0')
      return usage_error(self, "unknown option '%s'", argv[i]);
    if (model != NULL)
      return usage_error(self, "unexpected argument '%s'", argv[i]);
    model = argv[i];
  }
  if (model == NULL)
    return usage_error(self, "missing MODEL");
  if ((rc = connect_ctl(c)) != 0)
    return rc;
  if (nne_client_models_describe(c->cli, model, &d, &err) < 0)
    return call_error(&err);

  if (c->json) {
    json_t *arr = json_array();
    for (i = 0; i < d.n_modules; i++) {
      const nne_client_module_t *m = &d.modules[i];
      json_array_append_new(
          arr, json_pack("{s:s, s:s, s:s, s:i, s:I, s:i, s:I}", "path", m->path,
                         "class_name", m->class_name, "type_name", m->type_name,
                         "parent", (int)m->parent, "depth",
                         (json_int_t)m->depth, "call_index", (int)m->call_index,
                         "param_count", (json_int_t)m->param_count));
    }
    rc = json_out(
        json_pack("{s:o, s:o}", "model", info_json(&d.model), "modules", arr));
  } else {
    /* The tree, one module a line, indented two spaces per level; the root
     * is shown as the model's class. Columns are aligned on the widest. */
    size_t wp = 0, wc = 0;
    for (i = 0; i < d.n_modules; i++) {
      const nne_client_module_t *m = &d.modules[i];
      size_t lp = 2 * (size_t)m->depth +
                  strlen(m->depth == 0 ? m->class_name : m->path);
      size_t lc = m->depth == 0 ? 0 : strlen(m->class_name);
      if (lp > wp)
        wp = lp;
      if (lc > wc)
        wc = lc;
    }
    for (i = 0; i < d.n_modules; i++) {
      const nne_client_module_t *m = &d.modules[i];
      const char *label = m->depth == 0 ? m->class_name : m->path;
      int pad = (int)(wp - 2 * (size_t)m->depth);
      char line[2048];
      int n =
          snprintf(line, sizeof line, "%*s%-*s  %-*s  ", (int)(2 * m->depth),
                   "", pad, label, (int)wc, m->depth == 0 ? "" : m->class_name);
      if (n < 0 || (size_t)n >= sizeof line)
        n = (int)sizeof line - 1;
      if (m->call_index >= 0)
        n += snprintf(line + n, sizeof line - (size_t)n, "call %-4d",
                      (int)m->call_index);
      else
        n += snprintf(line + n, sizeof line - (size_t)n, "%-9s", "not called");
      if (n < (int)sizeof line && m->param_count > 0)
        snprintf(line + n, sizeof line - (size_t)n, "  %" PRIu64 " params",
                 m->param_count);
      /* Padding at the end of a line is noise in a terminal. */
      n = (int)strlen(line);
      while (n > 0 && line[n - 1] == ' ')
        line[--n] = '\0';
      puts(line);
    }
  }
  nne_client_model_desc_free(&d);
  return rc;
}

/* ---- forward ------------------------------------------------------------- */

typedef struct rows {
  int64_t **ids;
  nne_client_token_row_t *rows;
  size_t n;
} rows_t;

static void rows_free(rows_t *r) {
  size_t i;
  for (i = 0; i < r->n; i++)
    free(r->ids[i]);
  free(r->ids);
  free(r->rows);
  memset(r, 0, sizeof *r);
}

static bool rows_add(rows_t *r, int64_t *ids, size_t n) {
  int64_t **ni = realloc(r->ids, (r->n + 1) * sizeof *ni);
  nne_client_token_row_t *nr;
  if (ni == NULL)
    return false;
  r->ids = ni;
  nr = realloc(r->rows, (r->n + 1) * sizeof *nr);
  if (nr == NULL)
    return false;
  r->rows = nr;
  r->ids[r->n] = ids;
  r->rows[r->n].ids = ids;
  r->rows[r->n].n_ids = n;
  r->n++;
  return true;
}

static json_t *forward_json(const char *model,
                            const nne_client_forward_result_t *res,
                            const char *saved) {
  json_t *rows = json_array(), *logits;
  size_t i, k;
  for (i = 0; i < res->n_rows; i++) {
    const nne_client_row_topk_t *r = &res->rows[i];
    json_t *top = json_array();
    for (k = 0; k < r->n_top; k++)
      json_array_append_new(top, json_pack("{s:I, s:o, s:o}", "token_id",
                                           (json_int_t)r->top[k].token_id,
                                           "logit", json_num(r->top[k].logit),
                                           "prob", json_num(r->top[k].prob)));
    json_array_append_new(rows, json_pack("{s:I, s:I, s:o}", "row",
                                          (json_int_t)i, "position",
                                          (json_int_t)r->position, "top", top));
  }
  if (res->has_logits) {
    json_t *shape = json_array();
    for (i = 0; i < res->logits.ndim; i++)
      json_array_append_new(shape, json_integer(res->logits.shape[i]));
    logits = json_pack("{s:s, s:s, s:o, s:I, s:o}", "name", res->logits.name,
                       "dtype", nne_client_dtype_name(res->logits.dtype),
                       "shape", shape, "nbytes", (json_int_t)res->logits.nbytes,
                       "file", saved ? json_string(saved) : json_null());
  } else {
    logits = json_null();
  }
  return json_pack(
      "{s:s, s:I, s:I, s:{s:o, s:o, s:o}, s:o, s:o}", "model", model, "batch",
      (json_int_t)res->batch, "seq_len", (json_int_t)res->seq_len, "timing",
      "queue_ms", json_num(res->timing.queue_ms), "compute_ms",
      json_num(res->timing.compute_ms), "total_ms",
      json_num(res->timing.total_ms), "rows", rows, "logits", logits);
}

static void forward_table(const char *model,
                          const nne_client_forward_result_t *res,
                          const char *saved) {
  size_t i, k;
  printf("model %s  batch %" PRIu32 "  seq_len %" PRIu32
         "  (queue %.2f ms, compute %.2f ms, total %.2f ms)\n",
         model, res->batch, res->seq_len, res->timing.queue_ms,
         res->timing.compute_ms, res->timing.total_ms);
  for (i = 0; i < res->n_rows; i++) {
    const nne_client_row_topk_t *r = &res->rows[i];
    printf("\nrow %zu  position %" PRIu32 "\n", i, r->position);
    if (r->n_top == 0)
      continue;
    printf("  %4s  %10s  %12s  %10s\n", "RANK", "TOKEN", "LOGIT", "PROB");
    for (k = 0; k < r->n_top; k++)
      printf("  %4zu  %10" PRId64 "  %12.5f  %10.6f\n", k + 1,
             r->top[k].token_id, r->top[k].logit, r->top[k].prob);
  }
  if (res->has_logits) {
    printf("\nlogits: %s [", nne_client_dtype_name(res->logits.dtype));
    for (i = 0; i < res->logits.ndim; i++)
      printf("%s%" PRId64, i ? ", " : "", res->logits.shape[i]);
    printf("] %zu bytes", res->logits.nbytes);
    if (saved)
      printf(", saved to %s\n", saved);
    else
      printf(" (not saved; use --save-logits FILE.npy)\n");
  }
}

static int run_forward(ctl_t *c, const cmd_t *self, int argc, char **argv) {
  const char *model = NULL, *save = NULL, *val;
  rows_t ids = {0}, masks = {0};
  nne_client_mask_row_t *mask_rows = NULL;
  int32_t **mask32 = NULL;
  nne_client_forward_req_t req;
  nne_client_forward_result_t res;
  nne_client_err_t err;
  bool logits_set = false;
  int i, r, rc = 0;
  size_t k;

  memset(&req, 0, sizeof req);
  req.top_k = 5;
  for (i = 0; i < argc; i++) {
    if (is_help(argv[i])) {
      rc = cmd_help(self);
      goto out;
    }
    int rt = take_opt(argc, argv, &i, "--tokens", NULL, &val);
    int rm = rt ? 0 : take_opt(argc, argv, &i, "--mask", NULL, &val);
    if (rt != 0 || rm != 0) {
      bool is_mask = rm != 0;
      int64_t *v;
      size_t n;
      if (rt < 0 || rm < 0) {
        rc = usage_error(self, "%s needs a value", argv[i]);
        goto out;
      }
      if (!parse_int_list(val, is_mask ? INT32_MIN : INT64_MIN,
                          is_mask ? INT32_MAX : INT64_MAX, &v, &n)) {
        rc = usage_error(self,
                         "%s: '%s' is not a comma-separated list of "
                         "integers",
                         is_mask ? "--mask" : "--tokens", val);
        goto out;
      }
      if (!rows_add(is_mask ? &masks : &ids, v, n)) {
        free(v);
        rc = usage_error(self, "out of memory");
        goto out;
      }
      continue;
    }
    if ((r = take_opt(argc, argv, &i, "--pad", NULL, &val)) != 0) {
      if (r < 0) {
        rc = usage_error(self, "--pad needs a value");
        goto out;
      }
      if (strcmp(val, "left") == 0)
        req.padding = NNE_CLIENT_PAD_LEFT;
      else if (strcmp(val, "right") == 0)
        req.padding = NNE_CLIENT_PAD_RIGHT;
      else if (strcmp(val, "none") == 0)
        req.padding = NNE_CLIENT_PAD_NONE;
      else {
        rc = usage_error(self, "--pad: '%s' is not left, right or none", val);
        goto out;
      }
      continue;
    }
    if ((r = take_opt(argc, argv, &i, "--top-k", NULL, &val)) != 0) {
      if (r < 0 || !parse_u32(val, &req.top_k)) {
        rc = usage_error(self, "--top-k needs a number from 0 to %" PRIu32,
                         UINT32_MAX);
        goto out;
      }
      continue;
    }
    if ((r = take_opt(argc, argv, &i, "--logits", NULL, &val)) != 0) {
      if (r < 0) {
        rc = usage_error(self, "--logits needs a value");
        goto out;
      }
      if (strcmp(val, "none") == 0)
        req.logits = NNE_CLIENT_LOGITS_NONE;
      else if (strcmp(val, "last") == 0)
        req.logits = NNE_CLIENT_LOGITS_LAST;
      else if (strcmp(val, "all") == 0)
        req.logits = NNE_CLIENT_LOGITS_ALL;
      else {
        rc = usage_error(self, "--logits: '%s' is not none, last or all", val);
        goto out;
      }
      logits_set = true;
      continue;
    }
    if ((r = take_opt(argc, argv, &i, "--save-logits", NULL, &save)) != 0) {
      if (r < 0) {
        rc = usage_error(self, "--save-logits needs a file name");
        goto out;
      }
      continue;
    }
    if (argv[i][0] == '-' && argv[i][1] != '\0') {
      rc = usage_error(self, "unknown option '%s'", argv[i]);
      goto out;
    }
    if (model != NULL) {
      rc = usage_error(self, "unexpected argument '%s'", argv[i]);
      goto out;
    }
    model = argv[i];
  }
  if (model == NULL) {
    rc = usage_error(self, "missing MODEL");
    goto out;
  }
  if (ids.n == 0) {
    rc = usage_error(self, "at least one --tokens row is needed");
    goto out;
  }
  if (save != NULL) {
    if (logits_set && req.logits == NNE_CLIENT_LOGITS_NONE) {
      rc = usage_error(self, "--save-logits needs --logits last or all");
      goto out;
    }
    if (!logits_set)
      req.logits = NNE_CLIENT_LOGITS_ALL;
  }
  if (masks.n > 0) {
    /* Mask values were range-checked to int32 when parsed. */
    mask_rows = calloc(masks.n, sizeof *mask_rows);
    mask32 = calloc(masks.n, sizeof *mask32);
    if (mask_rows == NULL || mask32 == NULL) {
      rc = usage_error(self, "out of memory");
      goto out;
    }
    for (k = 0; k < masks.n; k++) {
      size_t j, n = masks.rows[k].n_ids;
      if (n > 0 && (mask32[k] = malloc(n * sizeof **mask32)) == NULL) {
        rc = usage_error(self, "out of memory");
        goto out;
      }
      for (j = 0; j < n; j++)
        mask32[k][j] = (int32_t)masks.ids[k][j];
      mask_rows[k].values = mask32[k];
      mask_rows[k].n_values = n;
    }
  }
  req.model = model;
  req.rows = ids.rows;
  req.n_rows = ids.n;
  req.mask = mask_rows;
  req.n_mask = masks.n;

  if ((rc = connect_ctl(c)) != 0)
    goto out;
  if (nne_client_forward(c->cli, &req, &res, &err) < 0) {
    rc = call_error(&err);
    goto out;
  }
  if (save != NULL && res.has_logits &&
      nne_client_tensor_write_npy(&res.logits, save, &err) < 0) {
    rc = call_error(&err);
    nne_client_forward_result_free(&res);
    goto out;
  }
  if (c->json)
    rc = json_out(forward_json(model, &res, res.has_logits ? save : NULL));
  else
    forward_table(model, &res, res.has_logits ? save : NULL);
  nne_client_forward_result_free(&res);
out:
  if (mask32 != NULL)
    for (k = 0; k < masks.n; k++)
      free(mask32[k]);
  free(mask32);
  rows_free(&ids);
  rows_free(&masks);
  free(mask_rows);
  return rc;
}

/* ---- main ---------------------------------------------------------------- */

static const cmd_t commands[] = {
    {"health",
     "usage: nneditctl health [SERVICE]\n"
     "\n"
     "Asks the standard gRPC health service whether the server (or SERVICE,\n"
     "e.g. nnedit.v1.Inference) is serving. Prints SERVING, NOT_SERVING, ...\n"
     "and exits 0 only for SERVING. An unknown service is NOT_FOUND.\n"
     "JSON: {service, status}\n",
     run_health},
    {"models",
     "usage: nneditctl models list|load|unload ...\n"
     "\n"
     "  models list\n"
     "  models load NAME [--device D] [--dtype T]\n"
     "  models unload NAME\n"
     "'nneditctl models SUBCOMMAND --help' for details.\n",
     run_models},
    {"modules",
     "usage: nneditctl modules MODEL\n"
     "\n"
     "Prints the module tree of a loaded model: one module a line, indented\n"
     "by depth, with its class, the order of its first call in forward and\n"
     "the parameters it holds directly. The root is shown as the model's\n"
     "class.\n"
     "JSON: {model: {...}, modules: [{path, class_name, type_name, parent,\n"
     "       depth, call_index, param_count}]} in pre-order\n",
     run_modules},
    {"forward",
     "usage: nneditctl forward MODEL --tokens 1,2,3 [--tokens 4,5,6 ...] "
     "[options]\n"
     "\n"
     "Runs one forward pass on a batch of token id rows and prints the top-k\n"
     "next tokens of each row.\n"
     "  --tokens IDS        one row of token ids (repeat for a batch)\n"
     "  --mask VALUES       one row of the attention mask, 1 = token,\n"
     "                      0 = padding (repeat; one per --tokens row)\n"
     "  --pad left|right|none  pad rows of different lengths (default none)\n"
     "  --top-k K           top-k tokens per row (default 5; 0 = none)\n"
     "  --logits none|last|all  also fetch the logits (default none)\n"
     "  --save-logits FILE  save the logits as .npy (implies --logits all)\n"
     "JSON: {model, batch, seq_len, timing: {queue_ms, compute_ms,\n"
     "       total_ms}, rows: [{row, position, top: [{token_id, logit,\n"
     "       prob}]}], logits: null | {name, dtype, shape, nbytes, file}}\n",
     run_forward},
};

int main(int argc, char **argv) {
  ctl_t c;
  const char *val, *env;
  int i, r, rc;
  size_t k;

  memset(&c, 0, sizeof c);
  env = getenv("NNEDIT_ADDR");
  c.addr = env && *env ? env : NNE_CLIENT_DEFAULT_ADDRESS;
  c.timeout_ms = NNE_CLIENT_DEFAULT_TIMEOUT_MS;

  /* Global options come before the command. */
  for (i = 1; i < argc && argv[i][0] == '-'; i++) {
    if (is_help(argv[i])) {
      fputs(global_usage, stdout);
      return 0;
    }
    if (strcmp(argv[i], "--version") == 0) {
      printf("nneditctl %s\n", nne_client_version());
      return 0;
    }
    if ((r = take_opt(argc, argv, &i, "--addr", NULL, &val)) != 0) {
      if (r < 0 || *val == '\0')
        return usage_error(NULL, "--addr needs an address");
      c.addr = val;
      continue;
    }
    if ((r = take_opt(argc, argv, &i, "--timeout", NULL, &val)) != 0) {
      char *end;
      double s;
      if (r < 0)
        return usage_error(NULL, "--timeout needs a number of seconds");
      errno = 0;
      s = strtod(val, &end);
      if (errno != 0 || end == val || *end != '\0' || !(s >= 0) || s > 1e9)
        return usage_error(NULL, "--timeout: '%s' is not a number of seconds",
                           val);
      c.timeout_ms = (int64_t)(s * 1000.0 + 0.5);
      if (s > 0 && c.timeout_ms == 0)
        c.timeout_ms = 1; /* a tiny timeout is not "none" */
      continue;
    }
    if ((r = take_opt(argc, argv, &i, "--output", "-o", &val)) != 0) {
      if (r < 0)
        return usage_error(NULL, "-o needs table or json");
      if (strcmp(val, "json") == 0)
        c.json = true;
      else if (strcmp(val, "table") == 0)
        c.json = false;
      else
        return usage_error(NULL, "-o: '%s' is not table or json", val);
      continue;
    }
    if (strncmp(argv[i], "-o", 2) == 0 && argv[i][2] != '\0') {
      val = argv[i] + 2; /* -ojson */
      if (strcmp(val, "json") == 0)
        c.json = true;
      else if (strcmp(val, "table") == 0)
        c.json = false;
      else
        return usage_error(NULL, "-o: '%s' is not table or json", val);
      continue;
    }
    return usage_error(NULL, "unknown option '%s'", argv[i]);
  }
  if (i >= argc)
    return usage_error(NULL, "missing COMMAND");

  for (k = 0; k < sizeof commands / sizeof commands[0]; k++)
    if (strcmp(argv[i], commands[k].name) == 0) {
      rc = commands[k].run(&c, &commands[k], argc - i - 1, argv + i + 1);
      nne_client_close(c.cli);
      if (fflush(stdout) != 0 && rc == 0)
        rc = 1;
      return rc;
    }
  return usage_error(NULL, "unknown command '%s'", argv[i]);
}
