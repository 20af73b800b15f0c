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
#include <sys/stat.h>

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
    "  modules MODEL [--module M] [--all] [--sites]\n"
    "                                   module tree of a loaded model\n"
    "  sites MODEL [--module M] [--all] standard sites of a loaded model\n"
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

/* A JSON array of strings. */
static json_t *json_strs(const char *const *v, size_t n) {
  json_t *a = json_array();
  size_t i;
  for (i = 0; i < n; i++)
    json_array_append_new(a, json_string(v[i]));
  return a;
}

static json_t *info_json(const nne_client_model_info_t *m) {
  return json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:I, "
      "s:I, s:o, s:I, s:o}",
      "name", m->name, "state", nne_client_model_state_name(m->state), "device",
      m->device, "dtype", nne_client_dtype_name(m->dtype), "family", m->family,
      "family_reason", m->family_reason, "layer_count",
      (json_int_t)m->layer_count, "export_kind", m->export_kind, "error",
      m->error, "param_count", (json_int_t)m->param_count, "param_bytes",
      (json_int_t)m->param_bytes, "vocab_size", (json_int_t)m->vocab_size,
      "module_count", (json_int_t)m->module_count, "max_batch",
      (json_int_t)m->max_batch, "max_seq_len", (json_int_t)m->max_seq_len,
      "load_ms", json_num(m->load_ms), "in_flight", (json_int_t)m->in_flight,
      "warnings", json_strs(m->warnings, m->n_warnings));
}

/* "gpt2 (class GPT2LMHeadModel)", "gpt2" or "none". */
static void family_text(const nne_client_model_info_t *m, char *buf,
                        size_t cap) {
  if (m->family[0] == '\0')
    snprintf(buf, cap, "none");
  else if (m->family_reason[0] == '\0')
    snprintf(buf, cap, "%s", m->family);
  else
    snprintf(buf, cap, "%s (%s)", m->family, m->family_reason);
}

static void warnings_table(const nne_client_model_info_t *m) {
  size_t i;
  if (m->n_warnings == 0)
    return;
  printf("warnings:\n");
  for (i = 0; i < m->n_warnings; i++)
    printf("  %s\n", m->warnings[i]);
}

static void info_table(const nne_client_model_info_t *m) {
  printf("name:         %s\n", m->name);
  printf("state:        %s\n", nne_client_model_state_name(m->state));
  if (m->state == NNE_CLIENT_MODEL_FAILED || m->error[0] != '\0')
    printf("error:        %s\n", m->error);
  printf("device:       %s\n", m->device);
  printf("dtype:        %s\n", nne_client_dtype_name(m->dtype));
  {
    char fam[200];
    family_text(m, fam, sizeof fam);
    printf("family:       %s\n", fam);
  }
  if (m->layer_count > 0)
    printf("layers:       %" PRIu32 "\n", m->layer_count);
  printf("export:       %s\n", m->export_kind);
  printf("parameters:   %" PRIu64 " (%" PRIu64 " bytes)\n", m->param_count,
         m->param_bytes);
  printf("vocab size:   %" PRId64 "\n", m->vocab_size);
  printf("modules:      %" PRIu32 "\n", m->module_count);
  printf("limits:       batch %" PRIu32 ", sequence %" PRIu32 "\n",
         m->max_batch, m->max_seq_len);
  printf("load time:    %.1f ms\n", m->load_ms);
  printf("in flight:    %" PRIu32 "\n", m->in_flight);
  warnings_table(m);
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
  size_t i, k;
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
      for (k = 0; k < m->n_warnings; k++)
        printf("%*s  warning: %s\n", wn, "", m->warnings[k]);
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
    rc = json_out(json_pack("{s:o}", "model", info_json(&info)));
  else
    info_table(&info);
  nne_client_model_info_free(&info);
  return rc;
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

/* ---- modules and sites --------------------------------------------------- */

/* The tree as `modules` prints it: each module under its standard name when
 * it has one, its raw path in parentheses, then its class; runs of
 * identical numbered siblings (layers.1 .. layers.11, experts, ...) folded
 * into one line unless --all. */

/* The end of module i's subtree in pre-order: the first later module that
 * is not deeper. */
static size_t subtree_end(const nne_client_model_desc_t *d, size_t i) {
  size_t j;
  for (j = i + 1; j < d->n_modules && d->modules[j].depth > d->modules[i].depth;
       j++)
    ;
  return j;
}

/* True when the path's last component is a number ("transformer.h.3"). */
static bool is_numbered(const char *path) {
  const char *last = strrchr(path, '.');
  last = last ? last + 1 : path;
  if (*last == '\0')
    return false;
  for (; *last; last++)
    if (*last < '0' || *last > '9')
      return false;
  return true;
}

/* Two subtrees are alike when they have the same relative paths and the
 * same classes, module for module. */
static bool same_subtree(const nne_client_model_desc_t *d, size_t a,
                         size_t b) {
  size_t ea = subtree_end(d, a), eb = subtree_end(d, b), k;
  size_t la = strlen(d->modules[a].path), lb = strlen(d->modules[b].path);
  if (ea - a != eb - b || strcmp(d->modules[a].class_name,
                                 d->modules[b].class_name) != 0)
    return false;
  for (k = 1; k < ea - a; k++) {
    const nne_client_module_t *x = &d->modules[a + k], *y = &d->modules[b + k];
    if (strlen(x->path) < la || strlen(y->path) < lb ||
        strcmp(x->path + la, y->path + lb) != 0 ||
        strcmp(x->class_name, y->class_name) != 0)
      return false;
  }
  return true;
}

/* The model's root module (not the root of a subtree). */
static bool is_root(const nne_client_module_t *m) {
  return m->parent < 0 && m->path[0] == '\0';
}

/* The name a module is shown by: its first standard name, else its path;
 * the root by its class. */
static const char *module_name(const nne_client_module_t *m) {
  if (m->n_standard_names > 0)
    return m->standard_names[0];
  if (is_root(m))
    return m->class_name;
  return m->path;
}

/* A folded run: modules[first] starts `count` siblings alike to `like`. */
typedef struct fold {
  size_t count;
  size_t last; /* the run's last module */
  size_t like;
} fold_t;

/* Marks, per module, whether it starts a folded run (fold[i].count > 0) or
 * lies inside one (hidden[i]). */
static void tree_fold(const nne_client_model_desc_t *d, fold_t *fold,
                      bool *hidden) {
  size_t p, i;
  for (p = 0; p < d->n_modules; p++) {
    size_t exemplar = SIZE_MAX, run = SIZE_MAX;
    if (hidden[p])
      continue;
    for (i = p + 1; i < d->n_modules; i = subtree_end(d, i)) {
      if (d->modules[i].depth != d->modules[p].depth + 1)
        break; /* past p's subtree */
      if (!is_numbered(d->modules[i].path)) {
        exemplar = run = SIZE_MAX;
        continue;
      }
      if (exemplar != SIZE_MAX && same_subtree(d, exemplar, i)) {
        size_t j, e = subtree_end(d, i);
        if (run == SIZE_MAX) {
          run = i;
          fold[run].like = exemplar;
        }
        fold[run].count++;
        fold[run].last = i;
        for (j = i; j < e; j++)
          hidden[j] = true;
      } else {
        exemplar = i; /* shown in full; later siblings compare to it */
        run = SIZE_MAX;
      }
    }
  }
}

/* The label column: "layers.3.self_attn (transformer.h.3.attn)". */
static void module_label(const nne_client_module_t *m, char *buf, size_t cap) {
  if (is_root(m))
    snprintf(buf, cap, "%s", m->class_name);
  else if (m->n_standard_names > 0 &&
           strcmp(m->standard_names[0], m->path) != 0)
    snprintf(buf, cap, "%s (%s)", m->standard_names[0], m->path);
  else
    snprintf(buf, cap, "%s", m->path);
}

static void print_trimmed(char *line) {
  /* Padding at the end of a line is noise in a terminal. */
  size_t n = strlen(line);
  while (n > 0 && line[n - 1] == ' ')
    line[--n] = '\0';
  puts(line);
}

/* Appends printf output to line[*n..cap), never past the end. */
static void line_add(char *line, size_t cap, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void line_add(char *line, size_t cap, size_t *n, const char *fmt, ...) {
  va_list ap;
  int k;
  if (*n + 1 >= cap)
    return;
  va_start(ap, fmt);
  k = vsnprintf(line + *n, cap - *n, fmt, ap);
  va_end(ap);
  if (k > 0)
    *n = *n + (size_t)k < cap ? *n + (size_t)k : cap - 1;
}

static void tree_table(const nne_client_model_desc_t *d, bool all) {
  fold_t *fold = calloc(d->n_modules ? d->n_modules : 1, sizeof *fold);
  bool *hidden = calloc(d->n_modules ? d->n_modules : 1, sizeof *hidden);
  uint32_t d0 = d->n_modules ? d->modules[0].depth : 0;
  size_t wl = 0, wc = 0, i, k;
  char label[1200], line[4096];

  if (fold == NULL || hidden == NULL) {
    free(fold);
    free(hidden);
    fputs("nneditctl: out of memory\n", stderr);
    return;
  }
  if (!all)
    tree_fold(d, fold, hidden);
  /* Columns aligned on the widest shown line. */
  for (i = 0; i < d->n_modules; i++) {
    const nne_client_module_t *m = &d->modules[i];
    size_t l;
    if (hidden[i])
      continue;
    module_label(m, label, sizeof label);
    l = 2 * (size_t)(m->depth - d0) + strlen(label);
    if (l > wl)
      wl = l;
    if (!is_root(m) && strlen(m->class_name) > wc)
      wc = strlen(m->class_name);
  }
  for (i = 0; i < d->n_modules; i++) {
    const nne_client_module_t *m = &d->modules[i];
    size_t ind = 2 * (size_t)(m->depth - d0), n = 0;
    if (fold[i].count > 0) {
      const nne_client_module_t *l = &d->modules[fold[i].last];
      if (fold[i].count == 1)
        line_add(line, sizeof line, &n, "%*s%s", (int)ind, "", module_name(m));
      else
        line_add(line, sizeof line, &n, "%*s%s .. %s", (int)ind, "",
                 module_name(m), module_name(l));
      line_add(line, sizeof line, &n, "  (%zu more like %s)", fold[i].count,
               module_name(&d->modules[fold[i].like]));
      print_trimmed(line);
    }
    if (hidden[i])
      continue;
    module_label(m, label, sizeof label);
    line_add(line, sizeof line, &n, "%*s%-*s  %-*s  ", (int)ind, "",
             (int)(wl - ind), label, (int)wc, is_root(m) ? "" : m->class_name);
    if (m->call_index >= 0)
      line_add(line, sizeof line, &n, "call %-4d", (int)m->call_index);
    else
      line_add(line, sizeof line, &n, "%-9s", "not called");
    if (m->param_count > 0)
      line_add(line, sizeof line, &n, "  %" PRIu64 " params", m->param_count);
    /* Every other name it answers to: more standard names, user aliases. */
    for (k = 1; k < m->n_standard_names; k++)
      line_add(line, sizeof line, &n, "%s%s", k == 1 ? "  aka " : ", ",
               m->standard_names[k]);
    for (k = 0; k < m->n_aliases; k++)
      line_add(line, sizeof line, &n, "%s%s",
               k == 0 && m->n_standard_names < 2 ? "  aka " : ", ",
               m->aliases[k]);
    print_trimmed(line);
  }
  free(fold);
  free(hidden);
}

/* "gpt2-script: GPT2LMHeadModel, family gpt2 (class GPT2LMHeadModel),
 * 12 layers"; for a subtree, "...; module layers.3 (transformer.h.3)". */
static void model_line(const nne_client_model_desc_t *d, const char *module) {
  char fam[200];
  family_text(&d->model, fam, sizeof fam);
  printf("%s: ", d->model.name);
  if (d->n_modules > 0 && is_root(&d->modules[0]))
    printf("%s, ", d->modules[0].class_name);
  printf("family %s", fam);
  if (d->model.layer_count > 0)
    printf(", %" PRIu32 " layers", d->model.layer_count);
  if (module != NULL && d->n_modules > 0)
    printf("; module %s (%s)", module, d->modules[0].path);
  putchar('\n');
}

static json_t *sites_json(const nne_client_model_desc_t *d) {
  json_t *arr = json_array();
  size_t i;
  for (i = 0; i < d->n_sites; i++) {
    const nne_client_site_t *s = &d->sites[i];
    json_t *view =
        s->view_parts > 0
            ? json_pack("{s:i, s:i, s:b}", "parts", (int)s->view_parts, "part",
                        (int)s->view_part, "heads", (int)s->view_heads)
            : json_null();
    json_array_append_new(
        arr, json_pack("{s:s, s:s, s:b, s:s, s:s, s:s, s:s, s:i, s:o}", "name",
                       s->name, "tl_name", s->tl_name, "available",
                       (int)s->available, "reason", s->reason, "canonical",
                       s->canonical, "module", s->module, "kind",
                       nne_client_site_kind_name(s->kind), "index",
                       (int)s->index, "view", view));
  }
  return arr;
}

/* The per-layer sites of layer K form a group: the run of sites named
 * "layers.K....". Returns K, or -1 for a site outside the layers. */
static long site_layer(const char *name) {
  char *end;
  long k;
  if (strncmp(name, "layers.", 7) != 0 || name[7] < '0' || name[7] > '9')
    return -1;
  k = strtol(name + 7, &end, 10);
  return *end == '.' ? k : -1;
}

/* Copies s into out with every whole occurrence of a token (not followed
 * by a digit, so "layers.1" is not in "layers.12") replaced by "{L}". */
static void templ_str(const char *s, const char *const *tok, size_t ntok,
                      char *out, size_t cap) {
  size_t n = 0, t;
  while (*s && n + 4 < cap) {
    for (t = 0; t < ntok; t++) {
      size_t l = tok[t] ? strlen(tok[t]) : 0;
      if (l > 0 && strncmp(s, tok[t], l) == 0 &&
          (s[l] < '0' || s[l] > '9')) {
        memcpy(out + n, "{L}", 3);
        n += 3;
        s += l;
        break;
      }
    }
    if (t == ntok)
      out[n++] = *s++;
  }
  out[n] = '\0';
}

/* The raw path of layer K (the module named "layers.K"), or NULL when the
 * description does not hold it. */
static const char *layer_path(const nne_client_model_desc_t *d, long k) {
  char want[32];
  size_t i, j;
  snprintf(want, sizeof want, "layers.%ld", k);
  for (i = 0; i < d->n_modules; i++)
    for (j = 0; j < d->modules[i].n_standard_names; j++)
      if (strcmp(d->modules[i].standard_names[j], want) == 0)
        return d->modules[i].path;
  return NULL;
}

/* A site with its layer taken out, for comparing layer groups. */
static void site_templ(const nne_client_model_desc_t *d, size_t i, long k,
                       char *out, size_t cap) {
  const nne_client_site_t *s = &d->sites[i];
  char lname[32], bname[32], a[700], b[700], c[700], r[700];
  const char *tok[3];
  snprintf(lname, sizeof lname, "layers.%ld", k);
  snprintf(bname, sizeof bname, "blocks.%ld", k);
  tok[0] = lname;
  tok[1] = bname;
  tok[2] = layer_path(d, k);
  templ_str(s->name, tok, 3, a, sizeof a);
  templ_str(s->tl_name, tok, 3, b, sizeof b);
  templ_str(s->canonical, tok, 3, c, sizeof c);
  templ_str(s->reason, tok, 3, r, sizeof r);
  snprintf(out, cap, "%s|%s|%d|%s|%s|%d|%d|%d|%d|%d", a, b, (int)s->available,
           c, r, (int)s->kind, (int)s->index, (int)s->view_parts,
           (int)s->view_part, (int)s->view_heads);
}

static size_t site_group_end(const nne_client_model_desc_t *d, size_t i) {
  long k = site_layer(d->sites[i].name);
  size_t j;
  if (k < 0)
    return i + 1;
  for (j = i + 1; j < d->n_sites && site_layer(d->sites[j].name) == k; j++)
    ;
  return j;
}

static bool same_site_group(const nne_client_model_desc_t *d, size_t a,
                            size_t b) {
  size_t ea = site_group_end(d, a), eb = site_group_end(d, b), k;
  long la = site_layer(d->sites[a].name), lb = site_layer(d->sites[b].name);
  char x[3000], y[3000];
  if (la < 0 || lb < 0 || ea - a != eb - b)
    return false;
  for (k = 0; k < ea - a; k++) {
    site_templ(d, a + k, la, x, sizeof x);
    site_templ(d, b + k, lb, y, sizeof y);
    if (strcmp(x, y) != 0)
      return false;
  }
  return true;
}

/* Where a site lives, in words: its raw form, or why it is unavailable. */
static void site_where(const nne_client_site_t *s, char *buf, size_t cap) {
  size_t n = 0;
  if (!s->available) {
    line_add(buf, cap, &n, "unavailable: %s", s->reason[0] ? s->reason : "?");
    return;
  }
  buf[0] = '\0';
  line_add(buf, cap, &n, "%s", s->canonical);
  if (s->view_parts > 0)
    line_add(buf, cap, &n, " [part %d of %d%s]", (int)s->view_part,
             (int)s->view_parts, s->view_heads ? " per head" : "");
  if (s->reason[0])
    line_add(buf, cap, &n, "  (%s)", s->reason);
}

static void sites_table(const nne_client_model_desc_t *d, bool all) {
  size_t wn = 4, wt = 15, i, j;
  char where[1400];
  size_t exemplar = SIZE_MAX;

  if (d->n_sites == 0) {
    printf("no standard sites (%s)\n", d->model.family[0]
                                           ? "none in this module"
                                           : "no family detected");
    return;
  }
  for (i = 0; i < d->n_sites; i++) {
    if (strlen(d->sites[i].name) > wn)
      wn = strlen(d->sites[i].name);
    if (strlen(d->sites[i].tl_name) > wt)
      wt = strlen(d->sites[i].tl_name);
  }
  printf("%-*s  %-*s  %s\n", (int)wn, "SITE", (int)wt, "TRANSFORMERLENS",
         "WHERE");
  for (i = 0; i < d->n_sites;) {
    size_t e = site_group_end(d, i);
    if (!all && site_layer(d->sites[i].name) >= 0 && exemplar != SIZE_MAX &&
        same_site_group(d, exemplar, i)) {
      /* Fold this group and the next ones alike into one line. */
      size_t first = i, last = i, count = 0;
      while (i < d->n_sites && site_layer(d->sites[i].name) >= 0 &&
             same_site_group(d, exemplar, i)) {
        last = i;
        count++;
        i = site_group_end(d, i);
      }
      if (count == 1)
        printf("layers.%ld", site_layer(d->sites[first].name));
      else
        printf("layers.%ld .. layers.%ld", site_layer(d->sites[first].name),
               site_layer(d->sites[last].name));
      printf("  (%zu more like layers.%ld)\n", count,
             site_layer(d->sites[exemplar].name));
      continue;
    }
    if (site_layer(d->sites[i].name) >= 0)
      exemplar = i;
    for (j = i; j < e; j++) {
      const nne_client_site_t *s = &d->sites[j];
      char line[2048];
      site_where(s, where, sizeof where);
      snprintf(line, sizeof line, "%-*s  %-*s  %s", (int)wn, s->name, (int)wt,
               s->tl_name[0] ? s->tl_name : "-", where);
      print_trimmed(line);
    }
    i = e;
  }
}

static json_t *modules_json(const nne_client_model_desc_t *d) {
  json_t *arr = json_array();
  size_t i;
  for (i = 0; i < d->n_modules; i++) {
    const nne_client_module_t *m = &d->modules[i];
    json_array_append_new(
        arr,
        json_pack("{s:s, s:s, s:s, s:i, s:I, s:i, s:I, s:o, s:o}", "path",
                  m->path, "class_name", m->class_name, "type_name",
                  m->type_name, "parent", (int)m->parent, "depth",
                  (json_int_t)m->depth, "call_index", (int)m->call_index,
                  "param_count", (json_int_t)m->param_count, "standard_names",
                  json_strs(m->standard_names, m->n_standard_names), "aliases",
                  json_strs(m->aliases, m->n_aliases)));
  }
  return arr;
}

/* modules MODEL [--module NAME] [--all] [--sites], and sites MODEL
 * [--module NAME] [--all]: one description, two views. */
static int describe_cmd(ctl_t *c, const cmd_t *self, bool sites_cmd, int argc,
                        char **argv) {
  const char *model = NULL, *module = NULL;
  bool all = false, with_sites = sites_cmd;
  nne_client_model_desc_t d;
  nne_client_err_t err;
  int i, r, rc = 0;

  for (i = 0; i < argc; i++) {
    if (is_help(argv[i]))
      return cmd_help(self);
    if ((r = take_opt(argc, argv, &i, "--module", NULL, &module)) != 0) {
      if (r < 0 || *module == '\0')
        return usage_error(self, "--module needs a module name");
      continue;
    }
    if (strcmp(argv[i], "--all") == 0) {
      all = true;
      continue;
    }
    if (!sites_cmd && strcmp(argv[i], "--sites") == 0) {
      with_sites = true;
      continue;
    }
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
  if (nne_client_models_describe_module(c->cli, model, module, &d, &err) < 0)
    return call_error(&err);

  if (c->json && sites_cmd) {
    rc = json_out(json_pack("{s:o, s:o, s:o}", "model", info_json(&d.model),
                            "module", module ? json_string(module) : json_null(),
                            "sites", sites_json(&d)));
  } else if (c->json) {
    rc = json_out(json_pack("{s:o, s:o, s:o, s:o}", "model",
                            info_json(&d.model), "module",
                            module ? json_string(module) : json_null(),
                            "modules", modules_json(&d), "sites",
                            sites_json(&d)));
  } else {
    model_line(&d, module);
    if (!sites_cmd)
      tree_table(&d, all);
    if (with_sites) {
      if (!sites_cmd)
        putchar('\n');
      sites_table(&d, all);
    }
    warnings_table(&d.model);
  }
  nne_client_model_desc_free(&d);
  return rc;
}

static int run_modules(ctl_t *c, const cmd_t *self, int argc, char **argv) {
  return describe_cmd(c, self, false, argc, argv);
}

static int run_sites(ctl_t *c, const cmd_t *self, int argc, char **argv) {
  return describe_cmd(c, self, true, argc, argv);
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

/* ---- saved tensors ------------------------------------------------------- */

/* Tensors with at most this many elements may be printed as values. */
#define VALUES_MAX 4096

static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f,
           man = h & 0x3ff, bits;
  float f;
  if (exp == 0) {
    /* zero or subnormal: man * 2^-24 */
    f = ldexpf((float)man, -24);
    return sign ? -f : f;
  }
  if (exp == 31)
    bits = sign | 0x7f800000u | (man << 13);
  else
    bits = sign | ((exp + 112) << 23) | (man << 13);
  memcpy(&f, &bits, sizeof f);
  return f;
}

/* Element i of t as JSON (null for a float that is not finite). */
static json_t *element_json(const nne_client_tensor_t *t, size_t i) {
  const uint8_t *p = (const uint8_t *)t->data;
  switch (t->dtype) {
  case NNE_CLIENT_DTYPE_FLOAT32: {
    float v;
    memcpy(&v, p + 4 * i, 4);
    return json_num(v);
  }
  case NNE_CLIENT_DTYPE_FLOAT64: {
    double v;
    memcpy(&v, p + 8 * i, 8);
    return json_num(v);
  }
  case NNE_CLIENT_DTYPE_FLOAT16: {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return json_num(half_to_float(h));
  }
  case NNE_CLIENT_DTYPE_BFLOAT16: {
    uint16_t h;
    uint32_t bits;
    float v;
    memcpy(&h, p + 2 * i, 2);
    bits = (uint32_t)h << 16;
    memcpy(&v, &bits, sizeof v);
    return json_num(v);
  }
  case NNE_CLIENT_DTYPE_INT64: {
    int64_t v;
    memcpy(&v, p + 8 * i, 8);
    return json_integer((json_int_t)v);
  }
  case NNE_CLIENT_DTYPE_INT32: {
    int32_t v;
    memcpy(&v, p + 4 * i, 4);
    return json_integer(v);
  }
  case NNE_CLIENT_DTYPE_INT16: {
    int16_t v;
    memcpy(&v, p + 2 * i, 2);
    return json_integer(v);
  }
  case NNE_CLIENT_DTYPE_INT8: return json_integer((int8_t)p[i]);
  case NNE_CLIENT_DTYPE_UINT8: return json_integer(p[i]);
  case NNE_CLIENT_DTYPE_BOOL: return json_boolean(p[i] != 0);
  default: return json_null();
  }
}

/* The values of dims [dim..) starting at element *i, as nested lists. */
static json_t *values_nested(const nne_client_tensor_t *t, size_t dim,
                             size_t *i) {
  json_t *a;
  int64_t k;
  if (dim == t->ndim)
    return element_json(t, (*i)++);
  a = json_array();
  for (k = 0; k < t->shape[dim]; k++)
    json_array_append_new(a, values_nested(t, dim + 1, i));
  return a;
}

/* The tensor's values as nested lists, or null when it has more than
 * VALUES_MAX elements (or its bytes do not match its shape). */
static json_t *values_json(const nne_client_tensor_t *t) {
  uint64_t n = nne_client_tensor_numel(t);
  size_t i = 0;
  if (n > VALUES_MAX || n * nne_client_dtype_size(t->dtype) != t->nbytes)
    return json_null();
  return values_nested(t, 0, &i);
}

static json_t *shape_json(const nne_client_tensor_t *t) {
  json_t *shape = json_array();
  size_t i;
  for (i = 0; i < t->ndim; i++)
    json_array_append_new(shape, json_integer(t->shape[i]));
  return shape;
}

/* The file a saved tensor goes to: DIR/<name>.npy with every character
 * other than [A-Za-z0-9._-] made '_' (so no name leaves DIR), and "~2",
 * "~3", ... when two different names would share a file. files[] holds
 * the files of the saves before `i` (NULL for a repeated name). */
static char *save_file(const char *dir, const nne_client_forward_req_t *req,
                       char *const *files, size_t i) {
  char base[NNE_CLIENT_NAME_MAX + 16], *path;
  size_t n, k, tries;
  const char *p;
  for (n = 0, p = req->save[i]; *p && n < NNE_CLIENT_NAME_MAX; p++)
    base[n++] = ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                 (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' ||
                 *p == '_')
                    ? *p
                    : '_';
  base[n] = '\0';
  if (n == 0 || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
    base[n++] = '_', base[n] = '\0';
  for (tries = 1; tries <= req->n_save + 1; tries++) {
    bool taken = false;
    if (asprintf(&path, tries == 1 ? "%s/%s.npy" : "%s/%s~%zu.npy", dir, base,
                 tries) < 0)
      return NULL;
    for (k = 0; k < i && !taken; k++)
      taken = files[k] != NULL && strcmp(files[k], path) == 0;
    if (!taken)
      return path;
    free(path);
  }
  return NULL;
}

/* Creates DIR if it does not exist (one level, like mkdir). */
static int make_save_dir(const char *dir) {
  struct stat sb;
  if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
    fprintf(stderr, "nneditctl: --save-dir '%s': %s\n", dir, strerror(errno));
    return 1;
  }
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
    fprintf(stderr, "nneditctl: --save-dir '%s': not a directory\n", dir);
    return 1;
  }
  return 0;
}

static json_t *saved_json(const nne_client_forward_result_t *res,
                          char *const *files, bool values) {
  json_t *arr = json_array();
  size_t i;
  for (i = 0; i < res->n_saved; i++) {
    const nne_client_tensor_t *t = &res->saved[i];
    json_t *o = json_pack(
        "{s:s, s:s, s:o, s:I, s:o}", "name", t->name, "dtype",
        nne_client_dtype_name(t->dtype), "shape", shape_json(t), "nbytes",
        (json_int_t)t->nbytes, "file",
        files && files[i] ? json_string(files[i]) : json_null());
    if (values && o != NULL)
      json_object_set_new(o, "values", values_json(t));
    json_array_append_new(arr, o);
  }
  return arr;
}

/* "[2, 7, 64]" */
static void shape_text(const nne_client_tensor_t *t, char *buf, size_t cap) {
  size_t n = 0, k;
  buf[0] = '\0';
  line_add(buf, cap, &n, "[");
  for (k = 0; k < t->ndim; k++)
    line_add(buf, cap, &n, "%s%" PRId64, k ? ", " : "", t->shape[k]);
  line_add(buf, cap, &n, "]");
}

static void saved_table(const nne_client_forward_result_t *res,
                        char *const *files, bool values) {
  size_t i, wn = 0, ws = 0;
  char shape[200], line[1024];
  if (res->n_saved == 0)
    return;
  for (i = 0; i < res->n_saved; i++) {
    shape_text(&res->saved[i], shape, sizeof shape);
    if (strlen(res->saved[i].name) > wn)
      wn = strlen(res->saved[i].name);
    if (strlen(shape) > ws)
      ws = strlen(shape);
  }
  printf("\nsaved:\n");
  for (i = 0; i < res->n_saved; i++) {
    const nne_client_tensor_t *t = &res->saved[i];
    shape_text(t, shape, sizeof shape);
    snprintf(line, sizeof line, "  %-*s  %-8s  %-*s  %s%s", (int)wn, t->name,
             nne_client_dtype_name(t->dtype), (int)ws, shape,
             files != NULL && files[i] != NULL ? "-> " : "",
             files != NULL && files[i] != NULL ? files[i] : "");
    print_trimmed(line);
    if (values) {
      json_t *v = values_json(t);
      if (json_is_null(v)) {
        printf("    (%" PRIu64 " elements: values are shown up to %d)\n",
               nne_client_tensor_numel(t), VALUES_MAX);
      } else {
        char *txt = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY |
                                      JSON_REAL_PRECISION(9));
        printf("    %s\n", txt ? txt : "?");
        free(txt);
      }
      json_decref(v);
    }
  }
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
  const char *model = NULL, *save = NULL, *save_dir = NULL, *val;
  rows_t ids = {0}, masks = {0};
  nne_client_mask_row_t *mask_rows = NULL;
  int32_t **mask32 = NULL;
  const char **sites = NULL;
  char **files = NULL;
  nne_client_forward_req_t req;
  nne_client_forward_result_t res;
  nne_client_err_t err;
  bool logits_set = false, values = false;
  int i, r, rc = 0;
  size_t k, n_sites = 0;

  memset(&req, 0, sizeof req);
  req.top_k = 5;
  /* At most one site per argument: enough room for every --save. */
  sites = calloc((size_t)argc + 1, sizeof *sites);
  if (sites == NULL) {
    rc = usage_error(self, "out of memory");
    goto out;
  }
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
    if ((r = take_opt(argc, argv, &i, "--save", NULL, &val)) != 0) {
      if (r < 0 || *val == '\0') {
        rc = usage_error(self, "--save needs a site name");
        goto out;
      }
      sites[n_sites++] = val;
      continue;
    }
    if ((r = take_opt(argc, argv, &i, "--save-dir", NULL, &save_dir)) != 0) {
      if (r < 0 || *save_dir == '\0') {
        rc = usage_error(self, "--save-dir needs a directory");
        goto out;
      }
      continue;
    }
    if (strcmp(argv[i], "--values") == 0) {
      values = true;
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
  if (save_dir != NULL && n_sites == 0) {
    rc = usage_error(self, "--save-dir needs at least one --save SITE");
    goto out;
  }
  if (values && n_sites == 0) {
    rc = usage_error(self, "--values needs at least one --save SITE");
    goto out;
  }
  for (k = 0; k < n_sites; k++)
    if (strlen(sites[k]) >= NNE_CLIENT_NAME_MAX) {
      rc = usage_error(self, "--save: site '%.40s...' is longer than %d bytes",
                       sites[k], NNE_CLIENT_NAME_MAX - 1);
      goto out;
    }
  req.save = sites;
  req.n_save = n_sites;
  if (save_dir != NULL) {
    files = calloc(n_sites, sizeof *files);
    if (files == NULL) {
      rc = usage_error(self, "out of memory");
      goto out;
    }
    /* Before the call: a directory that cannot be made wastes no forward. */
    if ((rc = make_save_dir(save_dir)) != 0)
      goto out;
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
  for (k = 0; files != NULL && k < res.n_saved; k++) {
    size_t j;
    bool again = false;
    /* The same site asked for twice is one file. */
    for (j = 0; j < k && !again; j++)
      again = strcmp(res.saved[j].name, res.saved[k].name) == 0;
    if (again)
      continue;
    if ((files[k] = save_file(save_dir, &req, files, k)) == NULL) {
      fputs("nneditctl: out of memory\n", stderr);
      rc = 1;
    } else if (nne_client_tensor_write_npy(&res.saved[k], files[k], &err) < 0) {
      rc = call_error(&err);
    }
    if (rc != 0) {
      nne_client_forward_result_free(&res);
      goto out;
    }
  }
  if (files != NULL) /* a repeated site names its first file */
    for (k = 0; k < res.n_saved; k++)
      if (files[k] == NULL) {
        size_t j;
        for (j = 0; j < k; j++)
          if (files[j] != NULL &&
              strcmp(res.saved[j].name, res.saved[k].name) == 0) {
            files[k] = strdup(files[j]);
            break;
          }
      }
  if (c->json) {
    json_t *doc = forward_json(model, &res, res.has_logits ? save : NULL);
    if (doc != NULL)
      json_object_set_new(doc, "saved", saved_json(&res, files, values));
    rc = json_out(doc);
  } else {
    forward_table(model, &res, res.has_logits ? save : NULL);
    saved_table(&res, files, values);
  }
  nne_client_forward_result_free(&res);
out:
  for (k = 0; files != NULL && k < n_sites; k++)
    free(files[k]);
  free(files);
  free(sites);
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
     "usage: nneditctl modules MODEL [--module NAME] [--all] [--sites]\n"
     "\n"
     "Prints the module tree of a loaded model: a line on the model (its\n"
     "class, family and how the family was detected, layer count), then one\n"
     "module a line, indented by depth. A module with a standard name shows\n"
     "it first and its raw path in parentheses:\n"
     "  layers.3.self_attn (transformer.h.3.attn)  GPT2Attention  call 6\n"
     "then its class, the order of its first call in forward, the parameters\n"
     "it holds directly and its other names (aka: user aliases). The root is\n"
     "shown as the model's class. Numbered siblings identical to an earlier\n"
     "one (same relative paths and classes) are folded into one line:\n"
     "  layers.1 .. layers.11  (11 more like layers.0)\n"
     "Warnings of the model (renames that matched nothing, names that\n"
     "failed validation) follow the tree.\n"
     "  --module NAME   only that module's subtree; NAME is any spelling\n"
     "                  (raw path, standard name, user alias)\n"
     "  --all           no folding: every module\n"
     "  --sites         the standard sites table too (see 'sites')\n"
     "JSON: {model: {..., family, family_reason, layer_count, warnings},\n"
     "       module, modules: [{path, class_name, type_name, parent, depth,\n"
     "       call_index, param_count, standard_names, aliases}] in pre-order,\n"
     "       sites: [...as in 'sites']} (never folded)\n",
     run_modules},
    {"sites",
     "usage: nneditctl sites MODEL [--module NAME] [--all]\n"
     "\n"
     "Prints the standard sites of a loaded model (embed, layers.N.resid_pre,\n"
     "layers.N.self_attn.pattern, ..., logits): the standard name, the\n"
     "TransformerLens name, and where it resolved (its raw form) or\n"
     "'unavailable: reason'. Layers whose sites resolve alike are folded\n"
     "into one line unless --all.\n"
     "  --module NAME   only the sites inside that module\n"
     "  --all           every layer\n"
     "JSON: {model: {...}, module, sites: [{name, tl_name, available, reason,\n"
     "       canonical, module, kind, index, view: null | {parts, part,\n"
     "       heads}}]}\n",
     run_sites},
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
     "  --save SITE         bring back the value at SITE (repeat for more):\n"
     "                      raw (transformer.h.0.output), standard\n"
     "                      (layers.0.resid_post), TransformerLens\n"
     "                      (blocks.0.hook_resid_post) or a user alias;\n"
     "                      printed with its dtype and shape\n"
     "  --save-dir DIR      write each saved tensor to DIR/<SITE>.npy (made\n"
     "                      if missing; characters other than A-Z a-z 0-9\n"
     "                      . _ - become _)\n"
     "  --values            print the values of saved tensors of at most\n"
     "                      4096 elements, as nested lists\n"
     "JSON: {model, batch, seq_len, timing: {queue_ms, compute_ms,\n"
     "       total_ms}, rows: [{row, position, top: [{token_id, logit,\n"
     "       prob}]}], logits: null | {name, dtype, shape, nbytes, file},\n"
     "       saved: [{name, dtype, shape, nbytes, file, values (--values;\n"
     "       null over 4096 elements)}]}\n",
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
