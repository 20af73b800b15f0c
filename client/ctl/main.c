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
#include <time.h>
#include <unistd.h>

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
    "  forward MODEL --tokens 1,2,3 [--tokens ...] [--edit-set ID] [options]\n"
    "  trace MODEL --tokens 1,2,3 [--invoke ...] --save SITE [options]\n"
    "  trace [MODEL] -f TRACE.json      traced forward passes: read, write,\n"
    "                                   compute on and save values at sites\n"
    "  edits apply MODEL -f EDITS.json [--label L]\n"
    "                                   create an edit set; prints its id\n"
    "  edits list [MODEL] | edits get ID | edits drop ID\n"
    "  graph MODEL [MODULE] [--edit-set ID] [--no-color]\n"
    "                                   a module's forward graph, per node\n"
    "  stats                            backend caches, queue, edit sets\n"
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
 * the files of the `i` saves before this one (NULL for a repeated name). */
static char *save_file(const char *dir, const char *name, char *const *files,
                       size_t i) {
  char base[NNE_CLIENT_NAME_MAX + 16], *path;
  size_t n, k, tries;
  const char *p;
  for (n = 0, p = name; *p && n < NNE_CLIENT_NAME_MAX; p++)
    base[n++] = ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                 (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' ||
                 *p == '_')
                    ? *p
                    : '_';
  base[n] = '\0';
  if (n == 0 || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
    base[n++] = '_', base[n] = '\0';
  for (tries = 1; tries <= i + 1; tries++) {
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

static json_t *saved_json(const nne_client_tensor_t *saved, size_t n_saved,
                          char *const *files, bool values) {
  json_t *arr = json_array();
  size_t i;
  for (i = 0; i < n_saved; i++) {
    const nne_client_tensor_t *t = &saved[i];
    json_t *o =
        json_pack("{s:s, s:s, s:o, s:I, s:o}", "name", t->name, "dtype",
                  nne_client_dtype_name(t->dtype), "shape", shape_json(t),
                  "nbytes", (json_int_t)t->nbytes, "file",
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

/* The saved tensors, one a line under "saved:", each line starting with
 * `indent` (values, with --values, one level deeper). */
static void saved_table(const nne_client_tensor_t *saved, size_t n_saved,
                        char *const *files, bool values, const char *indent) {
  size_t i, wn = 0, ws = 0;
  char shape[200], line[1024];
  if (n_saved == 0)
    return;
  for (i = 0; i < n_saved; i++) {
    shape_text(&saved[i], shape, sizeof shape);
    if (strlen(saved[i].name) > wn)
      wn = strlen(saved[i].name);
    if (strlen(shape) > ws)
      ws = strlen(shape);
  }
  printf("\n%ssaved:\n", indent);
  for (i = 0; i < n_saved; i++) {
    const nne_client_tensor_t *t = &saved[i];
    shape_text(t, shape, sizeof shape);
    snprintf(line, sizeof line, "%s  %-*s  %-8s  %-*s  %s%s", indent, (int)wn,
             t->name, nne_client_dtype_name(t->dtype), (int)ws, shape,
             files != NULL && files[i] != NULL ? "-> " : "",
             files != NULL && files[i] != NULL ? files[i] : "");
    print_trimmed(line);
    if (values) {
      json_t *v = values_json(t);
      if (json_is_null(v)) {
        printf("%s    (%" PRIu64 " elements: values are shown up to %d)\n",
               indent, nne_client_tensor_numel(t), VALUES_MAX);
      } else {
        char *txt = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY |
                                      JSON_REAL_PRECISION(9));
        printf("%s    %s\n", indent, txt ? txt : "?");
        free(txt);
      }
      json_decref(v);
    }
  }
}

/* The top-k lists of a result's rows. */
static json_t *rows_json(const nne_client_row_topk_t *rows, size_t n) {
  json_t *arr = json_array();
  size_t i, k;
  for (i = 0; i < n; i++) {
    const nne_client_row_topk_t *r = &rows[i];
    json_t *top = json_array();
    for (k = 0; k < r->n_top; k++)
      json_array_append_new(top, json_pack("{s:I, s:o, s:o}", "token_id",
                                           (json_int_t)r->top[k].token_id,
                                           "logit", json_num(r->top[k].logit),
                                           "prob", json_num(r->top[k].prob)));
    json_array_append_new(arr, json_pack("{s:I, s:I, s:o}", "row",
                                         (json_int_t)i, "position",
                                         (json_int_t)r->position, "top", top));
  }
  return arr;
}

/* {name, dtype, shape, nbytes, file} of a tensor (file: null if none). */
static json_t *tensor_info_json(const nne_client_tensor_t *t,
                                const char *file) {
  return json_pack("{s:s, s:s, s:o, s:I, s:o}", "name", t->name, "dtype",
                   nne_client_dtype_name(t->dtype), "shape", shape_json(t),
                   "nbytes", (json_int_t)t->nbytes, "file",
                   file ? json_string(file) : json_null());
}

static json_t *timing_json(const nne_client_timing_t *t) {
  return json_pack("{s:o, s:o, s:o}", "queue_ms", json_num(t->queue_ms),
                   "compute_ms", json_num(t->compute_ms), "total_ms",
                   json_num(t->total_ms));
}

static json_t *forward_json(const char *model, const char *edit_set,
                            const nne_client_forward_result_t *res,
                            const char *saved) {
  return json_pack(
      "{s:s, s:o, s:I, s:I, s:o, s:o, s:o}", "model", model, "edit_set",
      edit_set ? json_string(edit_set) : json_null(), "batch",
      (json_int_t)res->batch, "seq_len", (json_int_t)res->seq_len, "timing",
      timing_json(&res->timing), "rows", rows_json(res->rows, res->n_rows),
      "logits",
      res->has_logits ? tensor_info_json(&res->logits, saved) : json_null());
}

/* Each row's position and top-k table, lines starting with `indent`. */
static void rows_table(const nne_client_row_topk_t *rows, size_t n,
                       const char *indent) {
  size_t i, k;
  for (i = 0; i < n; i++) {
    const nne_client_row_topk_t *r = &rows[i];
    printf("\n%srow %zu  position %" PRIu32 "\n", indent, i, r->position);
    if (r->n_top == 0)
      continue;
    printf("%s  %4s  %10s  %12s  %10s\n", indent, "RANK", "TOKEN", "LOGIT",
           "PROB");
    for (k = 0; k < r->n_top; k++)
      printf("%s  %4zu  %10" PRId64 "  %12.5f  %10.6f\n", indent, k + 1,
             r->top[k].token_id, r->top[k].logit, r->top[k].prob);
  }
}

static void forward_table(const char *model, const char *edit_set,
                          const nne_client_forward_result_t *res,
                          const char *saved) {
  size_t i;
  printf("model %s", model);
  if (edit_set != NULL)
    printf("  edit set %s", edit_set);
  printf("  batch %" PRIu32 "  seq_len %" PRIu32
         "  (queue %.2f ms, compute %.2f ms, total %.2f ms)\n",
         res->batch, res->seq_len, res->timing.queue_ms, res->timing.compute_ms,
         res->timing.total_ms);
  rows_table(res->rows, res->n_rows, "");
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
  const char *edit_set = NULL;
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
  size_t k, n_sites = 0, n_files = 0;

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
    if ((r = take_opt(argc, argv, &i, "--edit-set", NULL, &edit_set)) != 0) {
      if (r < 0 || *edit_set == '\0') {
        rc = usage_error(self, "--edit-set needs an edit set id");
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
  /* An edit set may bring saves of its own (its SAVE edits). */
  if (save_dir != NULL && n_sites == 0 && edit_set == NULL) {
    rc = usage_error(self, "--save-dir needs at least one --save SITE (or "
                           "an --edit-set with SAVE edits)");
    goto out;
  }
  if (values && n_sites == 0 && edit_set == NULL) {
    rc = usage_error(self, "--values needs at least one --save SITE (or an "
                           "--edit-set with SAVE edits)");
    goto out;
  }
  if (edit_set != NULL && strlen(edit_set) >= NNE_CLIENT_EDIT_SET_ID_MAX) {
    rc = usage_error(self, "--edit-set: '%.40s...' is longer than %d bytes",
                     edit_set, NNE_CLIENT_EDIT_SET_ID_MAX - 1);
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
  req.edit_set = edit_set;
  /* Before the call: a directory that cannot be made wastes no forward. */
  if (save_dir != NULL && (rc = make_save_dir(save_dir)) != 0)
    goto out;
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
  /* One file per saved tensor, the edit set's included: known only now. */
  n_files = res.n_saved;
  if (save_dir != NULL && n_files > 0 &&
      (files = calloc(n_files, sizeof *files)) == NULL) {
    fputs("nneditctl: out of memory\n", stderr);
    rc = 1;
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
    if ((files[k] = save_file(save_dir, res.saved[k].name, files, k)) == NULL) {
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
    json_t *doc =
        forward_json(model, edit_set, &res, res.has_logits ? save : NULL);
    if (doc != NULL)
      json_object_set_new(doc, "saved",
                          saved_json(res.saved, res.n_saved, files, values));
    rc = json_out(doc);
  } else {
    forward_table(model, edit_set, &res, res.has_logits ? save : NULL);
    saved_table(res.saved, res.n_saved, files, values, "");
  }
  nne_client_forward_result_free(&res);
out:
  for (k = 0; files != NULL && k < n_files; k++)
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

/* ---- per-command output option ------------------------------------------- */

/* "-o json" / "--output table" after the command (the newer commands take
 * it there too, as their usage lines show). 1: matched, 0: not this
 * option, -1: a bad or missing value (usage already printed). */
static int take_output(ctl_t *c, const cmd_t *self, int argc, char **argv,
                       int *i) {
  const char *val;
  int r = take_opt(argc, argv, i, "--output", "-o", &val);
  if (r == 0 && strncmp(argv[*i], "-o", 2) == 0 && argv[*i][2] != '\0') {
    val = argv[*i] + 2; /* -ojson */
    r = 1;
  }
  if (r == 0)
    return 0;
  if (r > 0 && strcmp(val, "json") == 0)
    c->json = true;
  else if (r > 0 && strcmp(val, "table") == 0)
    c->json = false;
  else {
    usage_error(self, "-o needs table or json");
    return -1;
  }
  return 1;
}

/* ---- edits: the JSON form of an Apply request -------------------------
 *
 * client/EDITS-JSON.md is the reference; 'nneditctl edits apply --help'
 * holds a summary. The file becomes nne_client_edit_t values that borrow
 * their strings from the parsed document and own their tensors. */

/* float32 -> IEEE half, rounding to nearest even (subnormals, overflow to
 * infinity, NaN kept a NaN). */
static uint16_t float_to_half(float f) {
  uint32_t x, sign, exp, man, h, rem, halfway;
  int e, shift;
  memcpy(&x, &f, sizeof x);
  sign = (x >> 16) & 0x8000u;
  exp = (x >> 23) & 0xffu;
  man = x & 0x7fffffu;
  if (exp == 0xff)
    return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0));
  e = (int)exp - 127 + 15;
  if (e >= 0x1f)
    return (uint16_t)(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10)
      return (uint16_t)sign;
    man |= 0x800000u;
    shift = 14 - e;
    h = man >> shift;
    rem = man & ((1u << shift) - 1);
    halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (h & 1u)))
      h++;
    return (uint16_t)(sign | h);
  }
  h = ((uint32_t)e << 10) | (man >> 13);
  rem = man & 0x1fffu;
  /* A carry out of the mantissa bumps the exponent: right, up to inf. */
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
    h++;
  return (uint16_t)(sign | h);
}

/* float32 -> bfloat16, rounding to nearest even; NaN kept a NaN. */
static uint16_t float_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return (uint16_t)((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}

/* One element to be written: an integer (exact) or a real. */
typedef struct elem {
  bool is_int;
  int64_t i;
  double d;
} elem_t;

/* Writes v as element k of dst (dtype dt). On failure says why in why. */
static bool put_elem(void *dst, size_t k, nne_client_dtype_t dt, elem_t v,
                     const char **why) {
  uint8_t *p = (uint8_t *)dst;
  double d = v.is_int ? (double)v.i : v.d;
  int64_t iv;
  switch (dt) {
  case NNE_CLIENT_DTYPE_FLOAT32: {
    float f = (float)d;
    memcpy(p + 4 * k, &f, 4);
    return true;
  }
  case NNE_CLIENT_DTYPE_FLOAT64: memcpy(p + 8 * k, &d, 8); return true;
  case NNE_CLIENT_DTYPE_FLOAT16: {
    uint16_t h = float_to_half((float)d);
    memcpy(p + 2 * k, &h, 2);
    return true;
  }
  case NNE_CLIENT_DTYPE_BFLOAT16: {
    uint16_t h = float_to_bf16((float)d);
    memcpy(p + 2 * k, &h, 2);
    return true;
  }
  default: break;
  }
  /* Integer and bool dtypes take integral values only, in range. */
  if (v.is_int) {
    iv = v.i;
  } else {
    if (!(d == floor(d)) || d < -9223372036854775808.0 ||
        d >= 9223372036854775808.0) {
      *why = "not an integer";
      return false;
    }
    iv = (int64_t)d;
  }
  switch (dt) {
  case NNE_CLIENT_DTYPE_INT64: memcpy(p + 8 * k, &iv, 8); return true;
  case NNE_CLIENT_DTYPE_INT32:
    if (iv < INT32_MIN || iv > INT32_MAX)
      break;
    {
      int32_t x = (int32_t)iv;
      memcpy(p + 4 * k, &x, 4);
    }
    return true;
  case NNE_CLIENT_DTYPE_INT16:
    if (iv < INT16_MIN || iv > INT16_MAX)
      break;
    {
      int16_t x = (int16_t)iv;
      memcpy(p + 2 * k, &x, 2);
    }
    return true;
  case NNE_CLIENT_DTYPE_INT8:
    if (iv < INT8_MIN || iv > INT8_MAX)
      break;
    p[k] = (uint8_t)(int8_t)iv;
    return true;
  case NNE_CLIENT_DTYPE_UINT8:
    if (iv < 0 || iv > UINT8_MAX)
      break;
    p[k] = (uint8_t)iv;
    return true;
  case NNE_CLIENT_DTYPE_BOOL:
    if (iv != 0 && iv != 1)
      break;
    p[k] = (uint8_t)iv;
    return true;
  default: *why = "unsupported dtype"; return false;
  }
  *why = "out of the dtype's range";
  return false;
}

/* Element k of t. */
static elem_t get_elem(const nne_client_tensor_t *t, size_t k) {
  const uint8_t *p = (const uint8_t *)t->data;
  elem_t v = {true, 0, 0.0};
  switch (t->dtype) {
  case NNE_CLIENT_DTYPE_FLOAT32: {
    float f;
    memcpy(&f, p + 4 * k, 4);
    v.is_int = false;
    v.d = f;
    break;
  }
  case NNE_CLIENT_DTYPE_FLOAT64:
    memcpy(&v.d, p + 8 * k, 8);
    v.is_int = false;
    break;
  case NNE_CLIENT_DTYPE_FLOAT16: {
    uint16_t h;
    memcpy(&h, p + 2 * k, 2);
    v.is_int = false;
    v.d = half_to_float(h);
    break;
  }
  case NNE_CLIENT_DTYPE_BFLOAT16: {
    uint16_t h;
    uint32_t bits;
    float f;
    memcpy(&h, p + 2 * k, 2);
    bits = (uint32_t)h << 16;
    memcpy(&f, &bits, sizeof f);
    v.is_int = false;
    v.d = f;
    break;
  }
  case NNE_CLIENT_DTYPE_INT64: memcpy(&v.i, p + 8 * k, 8); break;
  case NNE_CLIENT_DTYPE_INT32: {
    int32_t x;
    memcpy(&x, p + 4 * k, 4);
    v.i = x;
    break;
  }
  case NNE_CLIENT_DTYPE_INT16: {
    int16_t x;
    memcpy(&x, p + 2 * k, 2);
    v.i = x;
    break;
  }
  case NNE_CLIENT_DTYPE_INT8: v.i = (int8_t)p[k]; break;
  case NNE_CLIENT_DTYPE_UINT8:
  case NNE_CLIENT_DTYPE_BOOL: v.i = p[k]; break;
  default: break;
  }
  return v;
}

typedef struct edits_file {
  json_t *doc;
  const char *path; /* as given ("-" = stdin) */
  const char *label;
  nne_client_edit_t *edits;
  size_t n;
  nne_client_tensor_t *tensors; /* tensors[i]: edit i's operand */
  nne_client_dim_range_t (*ranges)[NNE_CLIENT_MAX_RANGES];
  char msg[1400]; /* why the file was refused */
} edits_file_t;

static bool ef_fail(edits_file_t *ef, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static bool ef_fail(edits_file_t *ef, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ef->msg, sizeof ef->msg, fmt, ap);
  va_end(ap);
  return false;
}

static void edits_file_free(edits_file_t *ef) {
  size_t i;
  for (i = 0; ef->tensors != NULL && i < ef->n; i++)
    nne_client_tensor_free(&ef->tensors[i]);
  free(ef->tensors);
  free(ef->ranges);
  free(ef->edits);
  json_decref(ef->doc);
  memset(ef, 0, sizeof *ef);
}

/* Refuses keys of obj not in the NULL-terminated list (a typo must not
 * silently drop part of an edit). */
static bool check_keys(edits_file_t *ef, const char *path, json_t *obj,
                       const char *const *keys) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    size_t k;
    char list[256];
    size_t n = 0;
    for (k = 0; keys[k] != NULL && strcmp(keys[k], key) != 0; k++)
      ;
    if (keys[k] != NULL)
      continue;
    list[0] = '\0';
    for (k = 0; keys[k] != NULL; k++)
      line_add(list, sizeof list, &n, "%s%s", k ? ", " : "", keys[k]);
    return ef_fail(ef, "%s%sunknown key '%.64s' (known: %s)", path,
                   *path ? ": " : "", key, list);
  }
  (void)v;
  return true;
}

static bool json_int64(json_t *v, int64_t *out) {
  if (!json_is_integer(v))
    return false;
  *out = (int64_t)json_integer_value(v);
  return true;
}

/* A range shorthand: k (that one index; -1 = the last) or [start, stop]
 * or [start] (to the end). */
static bool parse_span(edits_file_t *ef, const char *path, json_t *v,
                       int64_t *start, int64_t *stop) {
  int64_t k;
  if (json_int64(v, &k)) {
    if (k == INT64_MAX)
      return ef_fail(ef, "%s: index %" PRId64 " is too large", path, k);
    *start = k;
    *stop = k + 1; /* -1 gives [-1, 0): stop 0 is "to the end" */
    return true;
  }
  if (json_is_array(v) &&
      (json_array_size(v) == 1 || json_array_size(v) == 2) &&
      json_int64(json_array_get(v, 0), start)) {
    *stop = 0;
    if (json_array_size(v) == 1 || json_int64(json_array_get(v, 1), stop))
      return true;
  }
  return ef_fail(ef,
                 "%s: expected an index or [start, stop] (integers; stop 0 = "
                 "to the end)",
                 path);
}

/* Appends {dim, start, stop} to out[0..*n-1] (at most one per dim). */
static bool add_range(edits_file_t *ef, const char *path,
                      nne_client_dim_range_t *out, size_t *n, int32_t dim,
                      int64_t start, int64_t stop) {
  size_t k;
  for (k = 0; k < *n; k++)
    if (out[k].dim == dim)
      return ef_fail(ef, "%s: dim %d already has a range (one per dimension)",
                     path, (int)dim);
  if (*n == NNE_CLIENT_MAX_RANGES)
    return ef_fail(ef, "%s: more than %d ranges", path, NNE_CLIENT_MAX_RANGES);
  out[(*n)++] = (nne_client_dim_range_t){dim, start, stop};
  return true;
}

/* The "ranges" of obj and its shorthands "rows", "positions", "last" into
 * out[0..*n-1] (room for NNE_CLIENT_MAX_RANGES). epath names obj. Shared by
 * an edit and a trace's write node. */
static bool parse_ranges(edits_file_t *ef, const char *epath, json_t *obj,
                         nne_client_dim_range_t *out, size_t *n) {
  static const struct {
    const char *key;
    int32_t dim;
  } shorthands[] = {{"rows", 0}, {"positions", 1}, {"last", -1}};
  json_t *ranges = json_object_get(obj, "ranges"), *r;
  char path[192];
  size_t k;

  if (ranges != NULL) {
    if (!json_is_array(ranges))
      return ef_fail(ef, "%s.ranges: expected an array of {dim, start, stop}",
                     epath);
    json_array_foreach(ranges, k, r) {
      int64_t dim, start = 0, stop = 0;
      snprintf(path, sizeof path, "%s.ranges[%zu]", epath, k);
      if (json_is_object(r)) {
        static const char *const keys[] = {"dim", "start", "stop", NULL};
        json_t *js = json_object_get(r, "start"),
               *jt = json_object_get(r, "stop");
        if (!check_keys(ef, path, r, keys))
          return false;
        if (!json_int64(json_object_get(r, "dim"), &dim))
          return ef_fail(ef, "%s.dim: expected an integer", path);
        if (js != NULL && !json_int64(js, &start))
          return ef_fail(ef, "%s.start: expected an integer", path);
        if (jt != NULL && !json_int64(jt, &stop))
          return ef_fail(ef, "%s.stop: expected an integer", path);
      } else if (json_is_array(r) && json_array_size(r) >= 2 &&
                 json_array_size(r) <= 3 &&
                 json_int64(json_array_get(r, 0), &dim) &&
                 json_int64(json_array_get(r, 1), &start) &&
                 (json_array_size(r) == 2 ||
                  json_int64(json_array_get(r, 2), &stop))) {
        /* [dim, start, stop] or [dim, start] */
      } else {
        return ef_fail(ef,
                       "%s: expected {\"dim\": D, \"start\": A, \"stop\": B} "
                       "or [D, A, B]",
                       path);
      }
      if (dim < INT32_MIN || dim > INT32_MAX)
        return ef_fail(ef, "%s.dim: %" PRId64 " is out of range", path, dim);
      if (!add_range(ef, path, out, n, (int32_t)dim, start, stop))
        return false;
    }
  }
  for (k = 0; k < sizeof shorthands / sizeof shorthands[0]; k++) {
    json_t *v = json_object_get(obj, shorthands[k].key);
    int64_t start = 0, stop = 0;
    if (v == NULL)
      continue;
    snprintf(path, sizeof path, "%s.%s", epath, shorthands[k].key);
    if (!parse_span(ef, path, v, &start, &stop) ||
        !add_range(ef, path, out, n, shorthands[k].dim, start, stop))
      return false;
  }
  return true;
}

/* Collects the leaves of nested arrays in order (any nesting), at most
 * 8 deep. */
static bool flatten(edits_file_t *ef, const char *path, json_t *v, int depth,
                    json_t ***vals, size_t *n, size_t *cap) {
  size_t k;
  json_t *x;
  if (!json_is_array(v)) {
    if (*n == *cap) {
      size_t ncap = *cap ? *cap * 2 : 64;
      json_t **p = realloc(*vals, ncap * sizeof *p);
      if (p == NULL)
        return ef_fail(ef, "%s: out of memory", path);
      *vals = p;
      *cap = ncap;
    }
    (*vals)[(*n)++] = v;
    return true;
  }
  if (depth >= NNE_CLIENT_MAX_DIMS)
    return ef_fail(ef, "%s: nested more than %d deep", path,
                   NNE_CLIENT_MAX_DIMS);
  json_array_foreach(v, k, x) {
    if (!flatten(ef, path, x, depth + 1, vals, n, cap))
      return false;
  }
  return true;
}

/* The shape nested arrays spell: the length at each level along the first
 * elements, then checked to hold everywhere (rectangular). */
static bool nested_shape(edits_file_t *ef, const char *path, json_t *v,
                         nne_client_tensor_t *t) {
  json_t *x = v;
  t->ndim = 0;
  while (json_is_array(x)) {
    if (t->ndim == NNE_CLIENT_MAX_DIMS)
      return ef_fail(ef, "%s: nested more than %d deep", path,
                     NNE_CLIENT_MAX_DIMS);
    t->shape[t->ndim++] = (int64_t)json_array_size(x);
    x = json_array_size(x) ? json_array_get(x, 0) : NULL;
  }
  return true;
}

static bool check_rect(edits_file_t *ef, const char *path, json_t *v,
                       const nne_client_tensor_t *t, size_t depth) {
  size_t k;
  json_t *x;
  if (depth == t->ndim) {
    if (json_is_array(v))
      return ef_fail(ef, "%s: nested deeper than its first element", path);
    return true;
  }
  if (!json_is_array(v) || (int64_t)json_array_size(v) != t->shape[depth])
    return ef_fail(ef,
                   "%s: ragged nesting (dim %zu has %" PRId64
                   " elements in its first row)",
                   path, depth, t->shape[depth]);
  json_array_foreach(v, k, x) {
    if (!check_rect(ef, path, x, t, depth + 1))
      return false;
  }
  return true;
}

/* t := src converted to dtype dt (src is freed either way). */
static bool tensor_cast(edits_file_t *ef, const char *path,
                        nne_client_tensor_t *src, nne_client_dtype_t dt,
                        nne_client_tensor_t *t) {
  uint64_t n = nne_client_tensor_numel(src), k;
  const char *why = NULL;
  *t = *src;
  t->data = NULL;
  t->dtype = dt;
  t->nbytes = (size_t)n * nne_client_dtype_size(dt);
  if (t->nbytes > 0 && (t->data = malloc(t->nbytes)) == NULL) {
    nne_client_tensor_free(src);
    return ef_fail(ef, "%s: out of memory", path);
  }
  for (k = 0; k < n; k++)
    if (!put_elem(t->data, (size_t)k, dt, get_elem(src, (size_t)k), &why)) {
      nne_client_tensor_free(src);
      return ef_fail(ef, "%s: element %" PRIu64 " as %s: %s", path, k,
                     nne_client_dtype_name(dt), why);
    }
  nne_client_tensor_free(src);
  return true;
}

/* The directory part of a path ("." when it has none). */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL)
    return strdup(".");
  if (slash == path)
    return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

static bool parse_tensor(edits_file_t *ef, const char *epath, json_t *obj,
                         nne_client_tensor_t *t) {
  static const char *const keys[] = {"dtype", "shape", "data", "npy", NULL};
  json_t *jdt = json_object_get(obj, "dtype"),
         *jshape = json_object_get(obj, "shape"),
         *jdata = json_object_get(obj, "data"),
         *jnpy = json_object_get(obj, "npy");
  nne_client_dtype_t dt = NNE_CLIENT_DTYPE_FLOAT32;
  nne_client_err_t err;
  char path[160];
  json_t **vals = NULL;
  size_t n = 0, cap = 0, k;
  uint64_t numel;
  bool ok;

  snprintf(path, sizeof path, "%s.tensor", epath);
  if (!json_is_object(obj))
    return ef_fail(ef, "%s: expected an object {dtype, shape, data} or {npy}",
                   path);
  if (!check_keys(ef, path, obj, keys))
    return false;
  if (jdt != NULL) {
    if (!json_is_string(jdt))
      return ef_fail(ef, "%s.dtype: expected a string", path);
    if (nne_client_dtype_parse(json_string_value(jdt), &dt, &err) < 0)
      return ef_fail(ef, "%s.dtype: %s", path, err.message);
  }
  if ((jdata == NULL) == (jnpy == NULL))
    return ef_fail(ef, "%s: give exactly one of 'data' and 'npy'", path);

  if (jnpy != NULL) {
    nne_client_tensor_t src;
    const char *rel;
    char *file;
    if (!json_is_string(jnpy) || json_string_length(jnpy) == 0)
      return ef_fail(ef, "%s.npy: expected a file name", path);
    if (jshape != NULL)
      return ef_fail(ef, "%s.shape: the .npy file has its own shape", path);
    rel = json_string_value(jnpy);
    if (rel[0] == '/' || strcmp(ef->path, "-") == 0) {
      file = strdup(rel);
    } else {
      /* Relative to the JSON file, so that a file and its tensors move
       * together. */
      char *dir = dir_of(ef->path);
      file = NULL;
      if (dir != NULL && asprintf(&file, "%s/%s", dir, rel) < 0)
        file = NULL;
      free(dir);
    }
    if (file == NULL)
      return ef_fail(ef, "%s.npy: out of memory", path);
    if (nne_client_tensor_read_npy(file, 0, &src, &err) < 0) {
      ef_fail(ef, "%s.npy: %s", path, err.message);
      free(file);
      return false;
    }
    free(file);
    if (jdt == NULL || src.dtype == dt) {
      *t = src;
      return true;
    }
    return tensor_cast(ef, path, &src, dt, t);
  }

  /* Inline data: a number (a 0-dim tensor), or (nested) arrays. */
  memset(t, 0, sizeof *t);
  t->dtype = dt;
  if (jshape != NULL) {
    json_t *d;
    if (!json_is_array(jshape) || json_array_size(jshape) > NNE_CLIENT_MAX_DIMS)
      return ef_fail(ef,
                     "%s.shape: expected an array of at most %d non-negative "
                     "integers",
                     path, NNE_CLIENT_MAX_DIMS);
    json_array_foreach(jshape, k, d) {
      int64_t v;
      if (!json_int64(d, &v) || v < 0)
        return ef_fail(ef, "%s.shape[%zu]: expected a non-negative integer",
                       path, k);
      t->shape[k] = v;
    }
    t->ndim = json_array_size(jshape);
  } else {
    if (!nested_shape(ef, path, jdata, t) || !check_rect(ef, path, jdata, t, 0))
      return false;
  }
  {
    char dpath[170];
    snprintf(dpath, sizeof dpath, "%s.data", path);
    if (!flatten(ef, dpath, jdata, 0, &vals, &n, &cap)) {
      free(vals);
      return false;
    }
  }
  /* No overflow: a product that passes the value count is refused anyway,
   * and 2^40 elements is far more than a JSON file holds. */
  numel = 1;
  for (k = 0; k < t->ndim; k++) {
    if (t->shape[k] > 0 && numel > (1ull << 40) / (uint64_t)t->shape[k]) {
      free(vals);
      return ef_fail(ef, "%s.shape: too many elements", path);
    }
    numel *= (uint64_t)t->shape[k];
  }
  if (numel != n) {
    free(vals);
    return ef_fail(ef, "%s.data: %zu values, shape needs %" PRIu64, path, n,
                   numel);
  }
  t->nbytes = n * nne_client_dtype_size(dt);
  if (t->nbytes > 0 && (t->data = malloc(t->nbytes)) == NULL) {
    free(vals);
    return ef_fail(ef, "%s: out of memory", path);
  }
  ok = true;
  for (k = 0; k < n && ok; k++) {
    elem_t v = {false, 0, 0.0};
    const char *why = "expected a number";
    if (json_is_integer(vals[k])) {
      v.is_int = true;
      v.i = (int64_t)json_integer_value(vals[k]);
    } else if (json_is_real(vals[k])) {
      v.d = json_real_value(vals[k]);
    } else if (json_is_boolean(vals[k])) {
      v.is_int = true;
      v.i = json_is_true(vals[k]);
    } else {
      ok = ef_fail(ef, "%s.data: value %zu: %s", path, k, why);
      break;
    }
    if (!put_elem(t->data, k, dt, v, &why))
      ok = ef_fail(ef, "%s.data: value %zu as %s: %s", path, k,
                   nne_client_dtype_name(dt), why);
  }
  free(vals);
  if (!ok)
    nne_client_tensor_free(t);
  return ok;
}

static bool parse_edit(edits_file_t *ef, size_t i, json_t *obj) {
  static const char *const keys[] = {"site",   "op",   "tensor",    "scalar",
                                     "ranges", "rows", "positions", "last",
                                     "name",   NULL};
  nne_client_edit_t *e = &ef->edits[i];
  json_t *site = json_object_get(obj, "site"), *op = json_object_get(obj, "op"),
         *tensor = json_object_get(obj, "tensor"),
         *scalar = json_object_get(obj, "scalar"),
         *name = json_object_get(obj, "name");
  nne_client_err_t err;
  char path[64];
  bool operand;

  snprintf(path, sizeof path, "edits[%zu]", i);
  if (!json_is_object(obj))
    return ef_fail(ef, "%s: expected an object {site, op, ...}", path);
  if (!check_keys(ef, path, obj, keys))
    return false;
  if (!json_is_string(site) || json_string_length(site) == 0)
    return ef_fail(ef, "%s.site: expected a site name (a string)", path);
  if (json_string_length(site) >= NNE_CLIENT_SITE_MAX)
    return ef_fail(ef, "%s.site: longer than %d bytes", path,
                   NNE_CLIENT_SITE_MAX - 1);
  e->site = json_string_value(site);
  if (!json_is_string(op))
    return ef_fail(ef, "%s.op: expected one of save, replace, add, scale, zero",
                   path);
  if (nne_client_edit_op_parse(json_string_value(op), &e->op, &err) < 0)
    return ef_fail(ef, "%s.op: %s", path, err.message);
  operand = e->op == NNE_CLIENT_EDIT_REPLACE || e->op == NNE_CLIENT_EDIT_ADD ||
            e->op == NNE_CLIENT_EDIT_SCALE;
  if (operand && (tensor == NULL) == (scalar == NULL))
    return ef_fail(ef, "%s: op %s needs exactly one of 'tensor' and 'scalar'",
                   path, nne_client_edit_op_name(e->op));
  if (!operand && (tensor != NULL || scalar != NULL))
    return ef_fail(ef, "%s.%s: op %s takes no operand", path,
                   tensor != NULL ? "tensor" : "scalar",
                   nne_client_edit_op_name(e->op));
  if (scalar != NULL) {
    if (!json_is_number(scalar))
      return ef_fail(ef, "%s.scalar: expected a number", path);
    e->use_scalar = true;
    e->scalar = json_number_value(scalar);
  }
  if (tensor != NULL) {
    if (!parse_tensor(ef, path, tensor, &ef->tensors[i]))
      return false;
    e->tensor = &ef->tensors[i];
  }
  if (name != NULL) {
    if (e->op != NNE_CLIENT_EDIT_SAVE)
      return ef_fail(ef, "%s.name: only a save edit has a name", path);
    if (!json_is_string(name) || json_string_length(name) == 0 ||
        json_string_length(name) >= NNE_CLIENT_NAME_MAX)
      return ef_fail(ef, "%s.name: expected a string of 1 to %d bytes", path,
                     NNE_CLIENT_NAME_MAX - 1);
    e->name = json_string_value(name);
  }
  if (!parse_ranges(ef, path, obj, ef->ranges[i], &e->n_ranges))
    return false;
  e->ranges = e->n_ranges ? ef->ranges[i] : NULL;
  return true;
}

/* Reads and checks an edits file ("-" = stdin). False with ef->msg. */
static bool edits_file_load(edits_file_t *ef, const char *path) {
  static const char *const keys[] = {"label", "edits", NULL};
  json_error_t jerr;
  json_t *label, *edits, *x;
  size_t i;

  memset(ef, 0, sizeof *ef);
  ef->path = path;
  ef->doc = strcmp(path, "-") == 0
                ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr)
                : json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (ef->doc == NULL && jerr.line < 1)
    return ef_fail(ef, "%s", jerr.text); /* cannot be read at all */
  if (ef->doc == NULL)
    return ef_fail(ef, "line %d, column %d: %s", jerr.line, jerr.column,
                   jerr.text);
  if (!json_is_object(ef->doc))
    return ef_fail(ef, "expected an object {\"label\": ..., \"edits\": [...]}");
  if (!check_keys(ef, "", ef->doc, keys))
    return false;
  label = json_object_get(ef->doc, "label");
  if (label != NULL) {
    if (!json_is_string(label) ||
        json_string_length(label) >= NNE_CLIENT_LABEL_MAX)
      return ef_fail(ef, "label: expected a string of at most %d bytes",
                     NNE_CLIENT_LABEL_MAX - 1);
    ef->label = json_string_value(label);
  }
  edits = json_object_get(ef->doc, "edits");
  if (!json_is_array(edits))
    return ef_fail(ef, "edits: expected an array of edits");
  if (json_array_size(edits) == 0)
    return ef_fail(ef, "edits: the array is empty");
  if (json_array_size(edits) > NNE_CLIENT_MAX_EDITS)
    return ef_fail(ef, "edits: %zu edits, more than %d", json_array_size(edits),
                   NNE_CLIENT_MAX_EDITS);
  ef->n = json_array_size(edits);
  ef->edits = calloc(ef->n, sizeof *ef->edits);
  ef->tensors = calloc(ef->n, sizeof *ef->tensors);
  ef->ranges = calloc(ef->n, sizeof *ef->ranges);
  if (ef->edits == NULL || ef->tensors == NULL || ef->ranges == NULL)
    return ef_fail(ef, "out of memory");
  json_array_foreach(edits, i, x) {
    if (!parse_edit(ef, i, x))
      return false;
  }
  return true;
}

/* ---- edits: output ------------------------------------------------------- */

static json_t *set_info_json(const nne_client_edit_set_info_t *s) {
  return json_pack(
      "{s:s, s:s, s:s, s:I, s:s, s:I, s:o, s:b, s:I, s:I, s:I}", "id", s->id,
      "model", s->model, "label", s->label, "edit_count",
      (json_int_t)s->edit_count, "backend_key", s->backend_key, "backend_bytes",
      (json_int_t)s->backend_bytes, "compile_ms", json_num(s->compile_ms),
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
    line_add(buf, cap, &len, "-");
    return;
  }
  for (k = 0; k < n; k++) {
    line_add(buf, cap, &len, "%sd%d[%" PRId64 ":", k ? " " : "", (int)r[k].dim,
             r[k].start);
    if (r[k].stop != 0)
      line_add(buf, cap, &len, "%" PRId64, r[k].stop);
    line_add(buf, cap, &len, "]");
  }
}

/* "float32[64]", "scalar 0.5", "-" */
static void operand_text(const nne_client_resolved_edit_t *r, char *buf,
                         size_t cap) {
  size_t k, len = 0;
  buf[0] = '\0';
  if (r->use_scalar) {
    line_add(buf, cap, &len, "scalar %.9g", r->scalar);
  } else if (r->tensor_dtype != NNE_CLIENT_DTYPE_UNSPECIFIED) {
    line_add(buf, cap, &len, "%s[", nne_client_dtype_name(r->tensor_dtype));
    for (k = 0; k < r->tensor_ndim; k++)
      line_add(buf, cap, &len, "%s%" PRId64, k ? ", " : "", r->tensor_shape[k]);
    line_add(buf, cap, &len, "]");
  } else {
    line_add(buf, cap, &len, "-");
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
    operand = json_pack("{s:o}", "scalar", json_num(r->scalar));
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

/* Prints rows of n columns aligned on their widest cell, trailing blanks
 * trimmed. cells[r * n + k]. align[k] is 'r' for a right-aligned column
 * (numbers); align NULL or any other letter: left. */
static void print_columns(const char *const *cells, size_t rows, size_t n,
                          const char *align) {
  size_t *w = calloc(n ? n : 1, sizeof *w), r, k;
  if (w == NULL)
    return;
  for (r = 0; r < rows; r++)
    for (k = 0; k < n; k++)
      if (strlen(cells[r * n + k]) > w[k])
        w[k] = strlen(cells[r * n + k]);
  for (r = 0; r < rows; r++) {
    char line[4096];
    size_t len = 0;
    line[0] = '\0';
    for (k = 0; k < n; k++) {
      bool right = align != NULL && align[k] == 'r';
      line_add(line, sizeof line, &len, right ? "%s%*s" : "%s%-*s",
               k ? "  " : "", right || k + 1 < n ? (int)w[k] : 0,
               cells[r * n + k]);
    }
    print_trimmed(line);
  }
  free(w);
}

static const cmd_t edits_cmds[];

static int edits_apply(ctl_t *c, const cmd_t *self, int argc, char **argv) {
  const char *model = NULL, *file = NULL, *label = NULL;
  nne_client_edit_set_info_t info;
  nne_client_err_t err;
  edits_file_t ef;
  int i, r, rc;

  for (i = 0; i < argc; i++) {
    if (is_help(argv[i]))
      return cmd_help(self);
    if ((r = take_output(c, self, argc, argv, &i)) != 0) {
      if (r < 0)
        return EXIT_USAGE;
      continue;
    }
    if ((r = take_opt(argc, argv, &i, "--file", "-f", &file)) != 0) {
      if (r < 0 || *file == '\0')
        return usage_error(self, "-f needs a file name ('-' = stdin)");
      continue;
    }
    if ((r = take_opt(argc, argv, &i, "--label", NULL, &label)) != 0) {
      if (r < 0)
        return usage_error(self, "--label needs a value");
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
  if (file == NULL)
    return usage_error(self, "missing -f EDITS.json");
  if (label != NULL && strlen(label) >= NNE_CLIENT_LABEL_MAX)
    return usage_error(self, "--label: longer than %d bytes",
                       NNE_CLIENT_LABEL_MAX - 1);
  if (!edits_file_load(&ef, file)) {
    rc = usage_error(self, "%s: %s", file, ef.msg);
    edits_file_free(&ef);
    return rc;
  }
  if ((rc = connect_ctl(c)) != 0) {
    edits_file_free(&ef);
    return rc;
  }
  rc = nne_client_edits_apply(c->cli, model, ef.edits, ef.n,
                              label != NULL ? label : ef.label, &info, &err);
  edits_file_free(&ef);
  if (rc < 0)
    return call_error(&err);
  if (c->json)
    return json_out(json_pack("{s:o}", "edit_set", set_info_json(&info)));
  /* The id alone, so that ID=$(nneditctl edits apply ...) works. */
  printf("%s\n", info.id);
  return 0;
}

static int edits_list(ctl_t *c, const cmd_t *self, int argc, char **argv) {
  const char *model = NULL;
  nne_client_edit_set_list_t list;
  nne_client_err_t err;
  int i, r, rc;
  size_t k;

  for (i = 0; i < argc; i++) {
    if (is_help(argv[i]))
      return cmd_help(self);
    if ((r = take_output(c, self, argc, argv, &i)) != 0) {
      if (r < 0)
        return EXIT_USAGE;
      continue;
    }
    if (argv[i][0] == '-' && argv[i][1] != '\0')
      return usage_error(self, "unknown option '%s'", argv[i]);
    if (model != NULL)
      return usage_error(self, "unexpected argument '%s'", argv[i]);
    model = argv[i];
  }
  if ((rc = connect_ctl(c)) != 0)
    return rc;
  if (nne_client_edits_list(c->cli, model, &list, &err) < 0)
    return call_error(&err);
  if (c->json) {
    json_t *arr = json_array();
    for (k = 0; k < list.n_sets; k++)
      json_array_append_new(arr, set_info_json(&list.sets[k]));
    rc = json_out(json_pack("{s:o}", "edit_sets", arr));
  } else if (list.n_sets == 0) {
    printf("no edit sets%s%s\n", model ? " on " : "", model ? model : "");
  } else {
    enum { NC = 9 };
    size_t rows = list.n_sets + 1;
    const char **cells = calloc(rows * NC, sizeof *cells);
    char(*num)[5][64] = calloc(list.n_sets, sizeof *num);
    if (cells == NULL || num == NULL) {
      free(cells);
      free(num);
      nne_client_edit_set_list_free(&list);
      fputs("nneditctl: out of memory\n", stderr);
      return 1;
    }
    {
      static const char *const head[NC] = {
          "ID",      "MODEL",         "LABEL",        "EDITS",  "CACHE",
          "COMPILE", "BACKEND_BYTES", "TENSOR_BYTES", "CREATED"};
      memcpy(cells, head, sizeof head);
    }
    for (k = 0; k < list.n_sets; k++) {
      const nne_client_edit_set_info_t *s = &list.sets[k];
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
    print_columns(cells, rows, NC, "lllrlrrrl");
    free(cells);
    free(num);
  }
  nne_client_edit_set_list_free(&list);
  return rc;
}

/* edits get ID and edits drop ID: one argument, the id. */
static int edits_id_arg(ctl_t *c, const cmd_t *self, int argc, char **argv,
                        const char **id) {
  int i, r;
  *id = NULL;
  for (i = 0; i < argc; i++) {
    if (is_help(argv[i])) {
      cmd_help(self);
      return -1;
    }
    if ((r = take_output(c, self, argc, argv, &i)) != 0) {
      if (r < 0)
        return EXIT_USAGE;
      continue;
    }
    if (argv[i][0] == '-' && argv[i][1] != '\0')
      return usage_error(self, "unknown option '%s'", argv[i]);
    if (*id != NULL)
      return usage_error(self, "unexpected argument '%s'", argv[i]);
    *id = argv[i];
  }
  if (*id == NULL)
    return usage_error(self, "missing edit set ID");
  if (strlen(*id) >= NNE_CLIENT_EDIT_SET_ID_MAX)
    return usage_error(self, "ID: longer than %d bytes",
                       NNE_CLIENT_EDIT_SET_ID_MAX - 1);
  return 0;
}

static int edits_get(ctl_t *c, const cmd_t *self, int argc, char **argv) {
  nne_client_edit_set_t set;
  nne_client_err_t err;
  const char *id;
  size_t k;
  int rc;

  if ((rc = edits_id_arg(c, self, argc, argv, &id)) != 0)
    return rc < 0 ? 0 : rc;
  if ((rc = connect_ctl(c)) != 0)
    return rc;
  if (nne_client_edits_get(c->cli, id, &set, &err) < 0)
    return call_error(&err);
  if (c->json) {
    json_t *arr = json_array();
    for (k = 0; k < set.n_edits; k++)
      json_array_append_new(arr, resolved_json(&set.edits[k]));
    rc = json_out(json_pack("{s:o, s:o}", "edit_set", set_info_json(&set.info),
                            "edits", arr));
  } else {
    enum { NC = 9 };
    size_t rows = set.n_edits + 1;
    const char **cells = calloc(rows * NC, sizeof *cells);
    /* index, site, op, operand, ranges, hook */
    char(*txt)[6][600] = calloc(set.n_edits ? set.n_edits : 1, sizeof *txt);
    set_info_table(&set.info);
    putchar('\n');
    if (cells == NULL || txt == NULL) {
      free(cells);
      free(txt);
      nne_client_edit_set_free(&set);
      fputs("nneditctl: out of memory\n", stderr);
      return 1;
    }
    {
      static const char *const head[NC] = {"#",        "SITE",   "CANONICAL",
                                           "INSTANCE", "NODE",   "OP",
                                           "OPERAND",  "RANGES", "HOOK"};
      memcpy(cells, head, sizeof head);
    }
    for (k = 0; k < set.n_edits; k++) {
      const nne_client_resolved_edit_t *e = &set.edits[k];
      const char **row = cells + (k + 1) * NC;
      snprintf(txt[k][0], 600, "%" PRIu32, e->index);
      /* The standard name beside a spelling that is not it. */
      if (e->standard[0] && strcmp(e->standard, e->site) != 0)
        snprintf(txt[k][1], 600, "%s (%s)", e->site, e->standard);
      else
        snprintf(txt[k][1], 600, "%s", e->site);
      if (e->op == NNE_CLIENT_EDIT_SAVE && e->name[0])
        snprintf(txt[k][2], 600, "save as %s", e->name);
      else
        snprintf(txt[k][2], 600, "%s", nne_client_edit_op_name(e->op));
      operand_text(e, txt[k][3], 600);
      ranges_text(e->ranges, e->n_ranges, txt[k][4], 600);
      snprintf(txt[k][5], 600, "%" PRIu32, e->hook_id);
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
    print_columns(cells, rows, NC, NULL);
    free(cells);
    free(txt);
  }
  nne_client_edit_set_free(&set);
  return rc;
}

static int edits_drop(ctl_t *c, const cmd_t *self, int argc, char **argv) {
  nne_client_edit_set_info_t info;
  nne_client_err_t err;
  uint64_t freed;
  const char *id;
  int rc;

  if ((rc = edits_id_arg(c, self, argc, argv, &id)) != 0)
    return rc < 0 ? 0 : rc;
  if ((rc = connect_ctl(c)) != 0)
    return rc;
  if (nne_client_edits_drop(c->cli, id, &info, &freed, &err) < 0)
    return call_error(&err);
  if (c->json)
    return json_out(json_pack("{s:o, s:I}", "edit_set", set_info_json(&info),
                              "freed_bytes", (json_int_t)freed));
  printf("dropped %s (freed %" PRIu64 " bytes)\n", info.id[0] ? info.id : id,
         freed);
  return 0;
}

static int run_edits(ctl_t *c, const cmd_t *self, int argc, char **argv) {
  if (argc == 0)
    return usage_error(self, "missing subcommand (apply, list, get, drop)");
  if (is_help(argv[0]))
    return cmd_help(self);
  if (strcmp(argv[0], "apply") == 0)
    return edits_apply(c, &edits_cmds[0], argc - 1, argv + 1);
  if (strcmp(argv[0], "list") == 0)
    return edits_list(c, &edits_cmds[1], argc - 1, argv + 1);
  if (strcmp(argv[0], "get") == 0)
    return edits_get(c, &edits_cmds[2], argc - 1, argv + 1);
  if (strcmp(argv[0], "drop") == 0)
    return edits_drop(c, &edits_cmds[3], argc - 1, argv + 1);
  return usage_error(self, "unknown subcommand '%s' (apply, list, get, drop)",
                     argv[0]);
}

static const cmd_t edits_cmds[] = {
    {"edits apply",
     "usage: nneditctl edits apply MODEL -f EDITS.json [--label L] [-o json]\n"
     "\n"
     "Creates an edit set on a loaded MODEL from a JSON file ('-' = stdin)\n"
     "and prints its id (with -o json, the whole edit set). Apply is atomic:\n"
     "one bad edit and nothing is created; the daemon's message names it\n"
     "(edits[2]: ...). Run on it with 'forward MODEL ... --edit-set ID'.\n"
     "\n"
     "The file (client/EDITS-JSON.md has the details):\n"
     "  {\"label\": \"optional\",\n"
     "   \"edits\": [\n"
     "     {\"site\": \"layers.0.self_attn.pattern\", \"op\": \"zero\",\n"
     "      \"ranges\": [{\"dim\": 1, \"start\": 3, \"stop\": 4}]},\n"
     "     {\"site\": \"layers.3.resid_post\", \"op\": \"add\",\n"
     "      \"tensor\": {\"dtype\": \"float32\", \"shape\": [64],\n"
     "                 \"data\": [0.1, ...]}},\n"
     "     {\"site\": \"layers.3.resid_post\", \"op\": \"add\",\n"
     "      \"tensor\": {\"npy\": \"steer.npy\"}},\n"
     "     {\"site\": \"layers.1.mlp_out\", \"op\": \"scale\", \"scalar\": "
     "0.5,\n"
     "      \"positions\": -1, \"last\": [128, 192]},\n"
     "     {\"site\": \"layers.2.mlp_out\", \"op\": \"save\", \"name\": "
     "\"mlp2\"}]}\n"
     "  site       any spelling: standard (layers.3.resid_post), raw\n"
     "             (transformer.h.3.output), TransformerLens\n"
     "             (blocks.3.hook_resid_post), node selector\n"
     "             (layers.0.self_attn:aten::softmax#0), alias + .output\n"
     "  op         save | replace | add | scale | zero\n"
     "  tensor     operand of replace/add/scale: {dtype (default float32),\n"
     "             shape (default: from the nesting of data), data (flat or\n"
     "             nested numbers)} or {npy: FILE (relative to the JSON\n"
     "             file), dtype (optional: convert to it)}\n"
     "  scalar     operand of replace/add/scale instead of a tensor\n"
     "  ranges     [{dim, start, stop}] (or [dim, start, stop]): indices\n"
     "             [start, stop) of a dimension; negative dims and indices\n"
     "             count from the end; stop 0 = to the end; one per dim\n"
     "  rows, positions, last\n"
     "             shorthands for a range on dim 0, 1, -1: [start, stop],\n"
     "             [start] (to the end) or one index K (-1 = the last)\n"
     "  name       save: the name its tensor streams back under\n"
     "             (default: the site)\n"
     "  --label L  overrides the file's label\n"
     "A file that is not valid is a usage error (exit 2) whose message\n"
     "names the edit and key (edits[2].tensor.shape: ...); errors from the\n"
     "daemon exit 1.\n"
     "JSON: {edit_set: {id, model, label, edit_count, backend_key,\n"
     "       backend_bytes, compile_ms, cache_hit, created_unix_ms,\n"
     "       in_flight, tensor_bytes}}\n",
     NULL},
    {"edits list",
     "usage: nneditctl edits list [MODEL] [-o json]\n"
     "\n"
     "Lists the edit sets (of MODEL, or of every model): id, model, label,\n"
     "number of edits, whether the backend came from the cache, compile\n"
     "time, backend and tensor bytes, creation time (UTC).\n"
     "JSON: {edit_sets: [{...as in 'edits apply'}]}\n",
     NULL},
    {"edits get",
     "usage: nneditctl edits get ID [-o json]\n"
     "\n"
     "Shows an edit set and, per edit, how the daemon resolved it: its\n"
     "position in the request (#), the site as given (and its standard\n"
     "name), the canonical site, the module instance and graph node it\n"
     "lives in, the op (save as NAME), the operand (dtype[shape] or scalar),\n"
     "the ranges (d1[3:4] = dim 1, indices 3 to 4; d-1[-1:] = the last\n"
     "index of the last dim) and the hook id in the backend.\n"
     "JSON: {edit_set: {...}, edits: [{index, site, canonical, instance,\n"
     "       node, standard, op, operand: null | {dtype, shape} | {scalar},\n"
     "       ranges: [{dim, start, stop}], hook_id, name}]}\n",
     NULL},
    {"edits drop",
     "usage: nneditctl edits drop ID [-o json]\n"
     "\n"
     "Drops an edit set (forwards running on it finish first) and prints\n"
     "the backend memory freed (0 while another set shares the backend).\n"
     "JSON: {edit_set: {...}, freed_bytes}\n",
     NULL},
};

/* ---- trace ---------------------------------------------------------------
 *
 * One request (nne_client_trace_req_t) built either from flags (the simple
 * form: invokes of --tokens rows, each --save SITE a read of the whole batch
 * saved under the site's spelling) or from a JSON file (client/TRACE-JSON.md;
 * 'nneditctl trace --help' has a summary). Everything the request borrows
 * lives in a trace_file_t: the parsed document, the graphs, and the row
 * arrays, which come from one list of allocations freed together. */

typedef struct trace_file {
  edits_file_t ef; /* the parse context: path, document, message */
  const char *model, *edit_set;
  nne_client_padding_t padding;
  uint32_t top_k;
  nne_client_logits_t logits;
  bool has_padding, has_top_k, has_logits;
  nne_client_trace_t *traces;
  nne_client_igraph_t **graphs; /* graphs[i]: traces[i]'s (NULL: none) */
  size_t n_traces;
  void **allocs; /* everything else the request points to */
  size_t n_allocs, cap_allocs;
} trace_file_t;

static void trace_file_free(trace_file_t *tf) {
  size_t i;
  for (i = 0; tf->graphs != NULL && i < tf->n_traces; i++)
    nne_client_igraph_free(tf->graphs[i]);
  free(tf->graphs);
  free(tf->traces);
  for (i = 0; i < tf->n_allocs; i++)
    free(tf->allocs[i]);
  free(tf->allocs);
  edits_file_free(&tf->ef);
  memset(tf, 0, sizeof *tf);
}

/* n zeroed bytes (at least one) that live as long as tf; NULL when memory
 * runs out. */
static void *tf_alloc(trace_file_t *tf, size_t n) {
  void *p;
  if (tf->n_allocs == tf->cap_allocs) {
    size_t cap = tf->cap_allocs ? tf->cap_allocs * 2 : 32;
    void **a = realloc(tf->allocs, cap * sizeof *a);
    if (a == NULL)
      return NULL;
    tf->allocs = a;
    tf->cap_allocs = cap;
  }
  if ((p = calloc(1, n ? n : 1)) != NULL)
    tf->allocs[tf->n_allocs++] = p;
  return p;
}

/* Room for n traces, each with a new (empty) graph. */
static bool tf_traces(trace_file_t *tf, size_t n) {
  size_t i;
  tf->traces = calloc(n ? n : 1, sizeof *tf->traces);
  tf->graphs = calloc(n ? n : 1, sizeof *tf->graphs);
  if (tf->traces == NULL || tf->graphs == NULL)
    return false;
  tf->n_traces = n;
  for (i = 0; i < n; i++) {
    if ((tf->graphs[i] = nne_client_igraph_new()) == NULL)
      return false;
    tf->traces[i].graph = tf->graphs[i];
  }
  return true;
}

static bool parse_padding(const char *s, nne_client_padding_t *out) {
  if (strcmp(s, "none") == 0)
    *out = NNE_CLIENT_PAD_NONE;
  else if (strcmp(s, "left") == 0)
    *out = NNE_CLIENT_PAD_LEFT;
  else if (strcmp(s, "right") == 0)
    *out = NNE_CLIENT_PAD_RIGHT;
  else
    return false;
  return true;
}

static bool parse_logits_mode(const char *s, nne_client_logits_t *out) {
  if (strcmp(s, "none") == 0)
    *out = NNE_CLIENT_LOGITS_NONE;
  else if (strcmp(s, "last") == 0)
    *out = NNE_CLIENT_LOGITS_LAST;
  else if (strcmp(s, "all") == 0)
    *out = NNE_CLIENT_LOGITS_ALL;
  else
    return false;
  return true;
}

/* A string of 1 to cap - 1 bytes. */
static bool json_str_in(edits_file_t *ef, const char *path, json_t *v,
                        size_t cap, const char **out) {
  if (!json_is_string(v) || json_string_length(v) == 0 ||
      json_string_length(v) >= cap)
    return ef_fail(ef, "%s: expected a string of 1 to %zu bytes", path,
                   cap - 1);
  if (strlen(json_string_value(v)) != json_string_length(v))
    return ef_fail(ef, "%s: a string with a NUL", path);
  *out = json_string_value(v);
  return true;
}

/* Rows of integers in [lo, hi]: [[1, 2], [3]], or one flat row [1, 2, 3].
 * *rows[i] points into one allocation of tf (int64 or int32 by `wide`). */
static bool parse_int_rows(trace_file_t *tf, const char *path, json_t *v,
                           int64_t lo, int64_t hi, bool wide, void ***rows,
                           size_t **lens, size_t *n_rows) {
  edits_file_t *ef = &tf->ef;
  size_t r, k, n;
  json_t *row, *x;
  bool flat;

  if (!json_is_array(v) || json_array_size(v) == 0)
    return ef_fail(ef, "%s: expected a non-empty array of rows of integers",
                   path);
  flat = !json_is_array(json_array_get(v, 0));
  n = flat ? 1 : json_array_size(v);
  *rows = tf_alloc(tf, n * sizeof **rows);
  *lens = tf_alloc(tf, n * sizeof **lens);
  if (*rows == NULL || *lens == NULL)
    return ef_fail(ef, "%s: out of memory", path);
  for (r = 0; r < n; r++) {
    char rpath[200];
    row = flat ? v : json_array_get(v, r);
    if (flat)
      snprintf(rpath, sizeof rpath, "%s", path);
    else
      snprintf(rpath, sizeof rpath, "%s[%zu]", path, r);
    if (!json_is_array(row))
      return ef_fail(ef, "%s: expected an array of integers (a row)", rpath);
    (*rows)[r] = tf_alloc(tf, json_array_size(row) * (wide ? 8 : 4));
    if ((*rows)[r] == NULL)
      return ef_fail(ef, "%s: out of memory", rpath);
    json_array_foreach(row, k, x) {
      int64_t val;
      if (!json_int64(x, &val) || val < lo || val > hi)
        return ef_fail(ef, "%s[%zu]: expected %s", rpath, k,
                       wide ? "a token id (an integer)"
                            : "a mask value (an int32: 1 token, 0 padding)");
      if (wide)
        ((int64_t *)(*rows)[r])[k] = val;
      else
        ((int32_t *)(*rows)[r])[k] = (int32_t)val;
    }
    (*lens)[r] = json_array_size(row);
  }
  *n_rows = n;
  return true;
}

static bool parse_invoke(trace_file_t *tf, const char *tpath, size_t i,
                         json_t *obj, nne_client_invoke_t *inv) {
  static const char *const keys[] = {"tokens", "mask", NULL};
  edits_file_t *ef = &tf->ef;
  char path[160], fpath[180];
  json_t *mask = json_object_get(obj, "mask");
  void **rows;
  size_t *lens, n, r;

  snprintf(path, sizeof path, "%s.invokes[%zu]", tpath, i);
  if (!json_is_object(obj))
    return ef_fail(ef, "%s: expected an object {\"tokens\": [[...]]}", path);
  if (!check_keys(ef, path, obj, keys))
    return false;
  snprintf(fpath, sizeof fpath, "%s.tokens", path);
  if (!parse_int_rows(tf, fpath, json_object_get(obj, "tokens"), INT64_MIN,
                      INT64_MAX, true, &rows, &lens, &n))
    return false;
  {
    nne_client_token_row_t *tr = tf_alloc(tf, n * sizeof *tr);
    if (tr == NULL)
      return ef_fail(ef, "%s: out of memory", path);
    for (r = 0; r < n; r++)
      tr[r] = (nne_client_token_row_t){rows[r], lens[r]};
    inv->rows = tr;
    inv->n_rows = n;
  }
  if (mask != NULL) {
    nne_client_mask_row_t *mr;
    snprintf(fpath, sizeof fpath, "%s.mask", path);
    if (!parse_int_rows(tf, fpath, mask, INT32_MIN, INT32_MAX, false, &rows,
                        &lens, &n))
      return false;
    if ((mr = tf_alloc(tf, n * sizeof *mr)) == NULL)
      return ef_fail(ef, "%s: out of memory", path);
    for (r = 0; r < n; r++)
      mr[r] = (nne_client_mask_row_t){rows[r], lens[r]};
    inv->mask = mr;
    inv->n_mask = n;
  }
  return true;
}

/* The ids of one trace's nodes, in file order, and sorted for look-ups. */
typedef struct node_ids {
  int *ids;    /* ids[k]: nodes[k]'s */
  int *sorted; /* the same, ascending */
  size_t n;
} node_ids_t;

static int int_cmp(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

/* A node named as input (an "id" of this trace). */
static bool parse_node_ref(trace_file_t *tf, const char *path, json_t *v,
                           const node_ids_t *ids, int *out) {
  int64_t id;
  int key;
  if (!json_int64(v, &id) || id < 1 || id > NNE_CLIENT_MAX_NODE_ID)
    return ef_fail(&tf->ef, "%s: expected a node id (an integer from 1)", path);
  key = (int)id;
  if (ids->n == 0 ||
      bsearch(&key, ids->sorted, ids->n, sizeof key, int_cmp) == NULL)
    return ef_fail(&tf->ef, "%s: no node %d in this trace", path, key);
  *out = key;
  return true;
}

/* An invoke index: an integer from -1 (the whole batch) below n_invokes,
 * or "all"; default (absent) the whole batch. */
static bool parse_invoke_ref(trace_file_t *tf, const char *path, json_t *v,
                             size_t n_invokes, int *out) {
  int64_t k;
  *out = NNE_CLIENT_INVOKE_ALL;
  if (v == NULL ||
      (json_is_string(v) && strcmp(json_string_value(v), "all") == 0))
    return true;
  if (!json_int64(v, &k) || k < -1 || k >= (int64_t)n_invokes)
    return ef_fail(&tf->ef,
                   "%s: expected an invoke of this trace (0 to %zu) or -1 / "
                   "\"all\" for the whole batch",
                   path, n_invokes - 1);
  *out = (int)k;
  return true;
}

/* One argument: a bare number (integer: int, real: scalar), boolean or list
 * of integers, or an object {kind: value} with an optional "name" (never in
 * kwargs, whose key is the name). */
static bool parse_arg(trace_file_t *tf, const char *path, json_t *v,
                      const node_ids_t *ids, const char *kw,
                      nne_client_arg_t *a) {
  static const char *const kinds[] = {"node", "scalar", "int",    "ints",
                                      "bool", "dtype",  "module", NULL};
  static const char *const keys[] = {"node",  "scalar", "int",  "ints", "bool",
                                     "dtype", "module", "name", NULL};
  edits_file_t *ef = &tf->ef;
  json_t *x = NULL, *name;
  const char *kind = NULL;
  char sub[224];
  size_t k, found = 0;
  int64_t iv;

  memset(a, 0, sizeof *a);
  a->name = kw;
  if (json_is_integer(v)) {
    *a = nne_client_arg_int((int64_t)json_integer_value(v));
    a->name = kw;
    return true;
  }
  if (json_is_real(v)) {
    *a = nne_client_arg_scalar(json_real_value(v));
    a->name = kw;
    return true;
  }
  if (json_is_boolean(v)) {
    *a = nne_client_arg_bool(json_is_true(v));
    a->name = kw;
    return true;
  }
  if (json_is_array(v)) {
    kind = "ints";
    x = v;
  } else if (json_is_object(v)) {
    if (!check_keys(ef, path, v, keys))
      return false;
    for (k = 0; kinds[k] != NULL; k++)
      if (json_object_get(v, kinds[k]) != NULL) {
        kind = kinds[k];
        x = json_object_get(v, kinds[k]);
        found++;
      }
    if (found != 1)
      return ef_fail(ef,
                     "%s: expected exactly one of node, scalar, int, ints, "
                     "bool, dtype, module (found %zu)",
                     path, found);
    if ((name = json_object_get(v, "name")) != NULL) {
      snprintf(sub, sizeof sub, "%s.name", path);
      if (kw != NULL)
        return ef_fail(ef, "%s: a keyword argument is named by its key", sub);
      if (!json_str_in(ef, sub, name, NNE_CLIENT_ARG_NAME_MAX, &a->name))
        return false;
    }
  } else {
    return ef_fail(ef,
                   "%s: expected a number, a boolean, a list of integers or "
                   "an object such as {\"node\": 3}, {\"dtype\": \"float16\"}",
                   path);
  }
  snprintf(sub, sizeof sub, "%s%s%s", path, x == v ? "" : ".",
           x == v ? "" : kind);
  a->kind = 0;
  if (strcmp(kind, "node") == 0) {
    a->kind = NNE_CLIENT_ARG_NODE;
    return parse_node_ref(tf, sub, x, ids, &a->node);
  }
  if (strcmp(kind, "scalar") == 0) {
    if (!json_is_number(x))
      return ef_fail(ef, "%s: expected a number", sub);
    a->kind = NNE_CLIENT_ARG_SCALAR;
    a->scalar = json_number_value(x);
    return true;
  }
  if (strcmp(kind, "int") == 0) {
    if (!json_int64(x, &a->integer))
      return ef_fail(ef, "%s: expected an integer", sub);
    a->kind = NNE_CLIENT_ARG_INT;
    return true;
  }
  if (strcmp(kind, "ints") == 0) {
    int64_t *vals;
    json_t *e;
    if (!json_is_array(x) || json_array_size(x) > NNE_CLIENT_MAX_INTS)
      return ef_fail(ef, "%s: expected a list of at most %d integers", sub,
                     NNE_CLIENT_MAX_INTS);
    if ((vals = tf_alloc(tf, json_array_size(x) * sizeof *vals)) == NULL)
      return ef_fail(ef, "%s: out of memory", sub);
    json_array_foreach(x, k, e) {
      if (!json_int64(e, &iv))
        return ef_fail(ef, "%s[%zu]: expected an integer", sub, k);
      vals[k] = iv;
    }
    a->kind = NNE_CLIENT_ARG_INTS;
    a->ints = vals;
    a->n_ints = json_array_size(x);
    return true;
  }
  if (strcmp(kind, "bool") == 0) {
    if (!json_is_boolean(x))
      return ef_fail(ef, "%s: expected true or false", sub);
    a->kind = NNE_CLIENT_ARG_BOOL;
    a->boolean = json_is_true(x);
    return true;
  }
  if (strcmp(kind, "dtype") == 0) {
    nne_client_err_t err;
    if (!json_is_string(x))
      return ef_fail(ef, "%s: expected a dtype name", sub);
    if (nne_client_dtype_parse(json_string_value(x), &a->dtype, &err) < 0)
      return ef_fail(ef, "%s: %s", sub, err.message);
    a->kind = NNE_CLIENT_ARG_DTYPE;
    return true;
  }
  a->kind = NNE_CLIENT_ARG_MODULE;
  return json_str_in(ef, sub, x, NNE_CLIENT_SITE_MAX, &a->module);
}

/* One end of a slice: an integer, or null (open). */
static bool slice_end(json_t *v, bool *has, int64_t *out) {
  *has = false;
  *out = 0;
  if (v == NULL || json_is_null(v))
    return true;
  *has = true;
  return json_int64(v, out);
}

/* A slice written as in Python: "a:b", ":", "-1:", "::2", "1:7:2". */
static bool slice_text(const char *s, nne_client_index_item_t *it) {
  int64_t v[3] = {0, 0, 0};
  bool has[3] = {false, false, false};
  int part = 0;
  const char *p = s;
  if (strchr(s, ':') == NULL)
    return false;
  for (;;) {
    if (*p != ':' && *p != '\0') {
      char *end;
      errno = 0;
      v[part] = strtoll(p, &end, 10);
      if (errno != 0 || end == p)
        return false;
      has[part] = true;
      p = end;
    }
    if (*p == '\0')
      break;
    if (*p != ':' || part == 2)
      return false;
    part++;
    p++;
  }
  if (has[2] && v[2] == 0)
    return false; /* Python refuses a zero step too */
  *it = nne_client_idx_slice_ex(has[0], v[0], has[1], v[1], has[2] ? v[2] : 0);
  return true;
}

/* One index item: an integer, "..." (or {"ellipsis": true}), null (or
 * {"newaxis": true}), a slice {"slice": [start, stop(, step)]} with nulls
 * for open ends, or a slice as text ("1:3", ":", "-1:", "::2"). */
static bool parse_item(trace_file_t *tf, const char *path, json_t *v,
                       nne_client_index_item_t *it) {
  edits_file_t *ef = &tf->ef;
  int64_t k;
  if (json_int64(v, &k)) {
    *it = nne_client_idx(k);
    return true;
  }
  if (json_is_null(v)) {
    *it = nne_client_idx_newaxis();
    return true;
  }
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    if (strcmp(s, "...") == 0) {
      *it = nne_client_idx_ellipsis();
      return true;
    }
    if (slice_text(s, it))
      return true;
    return ef_fail(ef,
                   "%s: '%.40s' is neither \"...\" nor a slice such as "
                   "\"1:3\", \":\", \"-1:\", \"::2\"",
                   path, s);
  }
  if (json_is_object(v) && json_object_size(v) == 1) {
    json_t *x;
    if ((x = json_object_get(v, "ellipsis")) != NULL && json_is_true(x)) {
      *it = nne_client_idx_ellipsis();
      return true;
    }
    if ((x = json_object_get(v, "newaxis")) != NULL && json_is_true(x)) {
      *it = nne_client_idx_newaxis();
      return true;
    }
    if ((x = json_object_get(v, "slice")) != NULL && json_is_array(x) &&
        json_array_size(x) >= 1 && json_array_size(x) <= 3) {
      bool hs, ht, hp;
      int64_t a, b, c;
      if (slice_end(json_array_get(x, 0), &hs, &a) &&
          slice_end(json_array_get(x, 1), &ht, &b) &&
          slice_end(json_array_get(x, 2), &hp, &c) && !(hp && c == 0)) {
        *it = nne_client_idx_slice_ex(hs, a, ht, b, c);
        return true;
      }
    }
  }
  return ef_fail(ef,
                 "%s: expected an index (integer), \"...\", null (a new "
                 "axis), a slice {\"slice\": [start, stop, step]} (null: "
                 "open; step not 0) or \"start:stop:step\"",
                 path);
}

static bool parse_call(trace_file_t *tf, const char *npath, json_t *obj,
                       const node_ids_t *ids, nne_client_igraph_t *g) {
  static const char *const keys[] = {"fn", "args", "kwargs", "index", NULL};
  edits_file_t *ef = &tf->ef;
  nne_client_arg_t args[NNE_CLIENT_MAX_ARGS];
  nne_client_index_item_t items[NNE_CLIENT_MAX_INDEX_ITEMS];
  json_t *jargs = json_object_get(obj, "args"),
         *jkw = json_object_get(obj, "kwargs"),
         *jidx = json_object_get(obj, "index"), *x;
  char path[200], sub[256];
  const char *fn, *key;
  size_t n = 0, k;

  snprintf(path, sizeof path, "%s.call", npath);
  if (!json_is_object(obj))
    return ef_fail(ef, "%s: expected an object {fn, args, kwargs, index}",
                   path);
  if (!check_keys(ef, path, obj, keys))
    return false;
  snprintf(sub, sizeof sub, "%s.fn", path);
  if (!json_str_in(ef, sub, json_object_get(obj, "fn"), NNE_CLIENT_FN_MAX, &fn))
    return false;
  if (jargs != NULL && !json_is_array(jargs))
    return ef_fail(ef, "%s.args: expected an array of arguments", path);
  if (jkw != NULL && !json_is_object(jkw))
    return ef_fail(ef, "%s.kwargs: expected an object {\"dim\": -1, ...}",
                   path);
  if (json_array_size(jargs) + json_object_size(jkw) > NNE_CLIENT_MAX_ARGS)
    return ef_fail(ef, "%s: %zu arguments, more than %d", path,
                   json_array_size(jargs) + json_object_size(jkw),
                   NNE_CLIENT_MAX_ARGS);
  json_array_foreach(jargs, k, x) {
    snprintf(sub, sizeof sub, "%s.args[%zu]", path, k);
    if (!parse_arg(tf, sub, x, ids, NULL, &args[n++]))
      return false;
  }
  json_object_foreach(jkw, key, x) {
    snprintf(sub, sizeof sub, "%s.kwargs.%.31s", path, key);
    if (strlen(key) == 0 || strlen(key) >= NNE_CLIENT_ARG_NAME_MAX)
      return ef_fail(ef, "%s.kwargs: a keyword of 1 to %d bytes expected", path,
                     NNE_CLIENT_ARG_NAME_MAX - 1);
    if (!parse_arg(tf, sub, x, ids, key, &args[n++]))
      return false;
  }
  if (jidx != NULL && (!json_is_array(jidx) ||
                       json_array_size(jidx) > NNE_CLIENT_MAX_INDEX_ITEMS))
    return ef_fail(ef, "%s.index: expected an array of at most %d items", path,
                   NNE_CLIENT_MAX_INDEX_ITEMS);
  json_array_foreach(jidx, k, x) {
    snprintf(sub, sizeof sub, "%s.index[%zu]", path, k);
    if (!parse_item(tf, sub, x, &items[k]))
      return false;
  }
  if (nne_client_igraph_call(g, fn, args, n, items, json_array_size(jidx)) <
      0) {
    /* What the builder refused that the checks above let through. */
    nne_client_err_t err;
    nne_client_igraph_error(g, &err);
    return ef_fail(ef, "%s: %s", path, err.message);
  }
  return true;
}

static bool parse_node(trace_file_t *tf, const char *tpath, size_t i,
                       json_t *obj, const node_ids_t *ids, size_t n_invokes,
                       nne_client_igraph_t *g) {
  static const char *const ops[] = {"read",     "write", "call",
                                    "constant", "save",  "ref"};
  edits_file_t *ef = &tf->ef;
  char npath[160], path[200], sub[256];
  const char *op = NULL, *str;
  json_t *x = NULL;
  size_t k, found = 0;
  int rc = -1, value, invoke;

  snprintf(npath, sizeof npath, "%s.nodes[%zu]", tpath, i);
  for (k = 0; k < sizeof ops / sizeof ops[0]; k++)
    if (json_object_get(obj, ops[k]) != NULL) {
      op = ops[k];
      x = json_object_get(obj, ops[k]);
      found++;
    }
  if (found != 1)
    return ef_fail(ef,
                   "%s: expected exactly one of read, write, call, constant, "
                   "save, ref (found %zu)",
                   npath, found);
  snprintf(path, sizeof path, "%s.%s", npath, op);
  if (strcmp(op, "call") != 0 && !json_is_object(x))
    return ef_fail(ef, "%s: expected an object", path);
  nne_client_igraph_next_id(g, ids->ids[i]);
  if (strcmp(op, "read") == 0) {
    static const char *const rk[] = {"site", "invoke", NULL};
    snprintf(sub, sizeof sub, "%s.site", path);
    if (!check_keys(ef, path, x, rk) ||
        !json_str_in(ef, sub, json_object_get(x, "site"), NNE_CLIENT_SITE_MAX,
                     &str))
      return false;
    snprintf(sub, sizeof sub, "%s.invoke", path);
    if (!parse_invoke_ref(tf, sub, json_object_get(x, "invoke"), n_invokes,
                          &invoke))
      return false;
    rc = nne_client_igraph_read(g, str, invoke);
  } else if (strcmp(op, "write") == 0) {
    static const char *const wk[] = {"site", "value", "invoke",    "ranges",
                                     "rows", "last",  "positions", NULL};
    nne_client_dim_range_t ranges[NNE_CLIENT_MAX_RANGES];
    size_t n_ranges = 0;
    snprintf(sub, sizeof sub, "%s.site", path);
    if (!check_keys(ef, path, x, wk) ||
        !json_str_in(ef, sub, json_object_get(x, "site"), NNE_CLIENT_SITE_MAX,
                     &str))
      return false;
    snprintf(sub, sizeof sub, "%s.value", path);
    if (!parse_node_ref(tf, sub, json_object_get(x, "value"), ids, &value))
      return false;
    snprintf(sub, sizeof sub, "%s.invoke", path);
    if (!parse_invoke_ref(tf, sub, json_object_get(x, "invoke"), n_invokes,
                          &invoke) ||
        !parse_ranges(ef, path, x, ranges, &n_ranges))
      return false;
    rc = nne_client_igraph_write(g, str, value, invoke, ranges, n_ranges);
  } else if (strcmp(op, "call") == 0) {
    return parse_call(tf, npath, x, ids, g);
  } else if (strcmp(op, "constant") == 0) {
    static const char *const ck[] = {"tensor", "scalar", NULL};
    json_t *t = json_object_get(x, "tensor"), *s = json_object_get(x, "scalar");
    if (!check_keys(ef, path, x, ck))
      return false;
    if ((t == NULL) == (s == NULL))
      return ef_fail(ef, "%s: give exactly one of 'tensor' and 'scalar'", path);
    if (s != NULL) {
      if (!json_is_number(s))
        return ef_fail(ef, "%s.scalar: expected a number", path);
      rc = nne_client_igraph_const_scalar(g, json_number_value(s));
    } else {
      nne_client_tensor_t tensor;
      if (!parse_tensor(ef, path, t, &tensor))
        return false;
      rc = nne_client_igraph_const_tensor(g, &tensor);
      nne_client_tensor_free(&tensor); /* the graph has its own copy */
    }
  } else if (strcmp(op, "save") == 0) {
    static const char *const sk[] = {"value", "name", NULL};
    snprintf(sub, sizeof sub, "%s.value", path);
    if (!check_keys(ef, path, x, sk) ||
        !parse_node_ref(tf, sub, json_object_get(x, "value"), ids, &value))
      return false;
    snprintf(sub, sizeof sub, "%s.name", path);
    if (!json_str_in(ef, sub, json_object_get(x, "name"), NNE_CLIENT_NAME_MAX,
                     &str))
      return false;
    rc = nne_client_igraph_save(g, value, str);
  } else {
    static const char *const fk[] = {"name", NULL};
    snprintf(sub, sizeof sub, "%s.name", path);
    if (!check_keys(ef, path, x, fk) ||
        !json_str_in(ef, sub, json_object_get(x, "name"), NNE_CLIENT_NAME_MAX,
                     &str))
      return false;
    rc = nne_client_igraph_ref(g, str);
  }
  if (rc < 0) {
    /* What the builder refused that the checks above let through. */
    nne_client_err_t err;
    nne_client_igraph_error(g, &err);
    return ef_fail(ef, "%s: %s", path, err.message);
  }
  return true;
}

/* Node ids of a trace's "nodes": given ("id") or one more than the largest
 * before; unique, 1 to 2^31 - 1. */
static bool collect_ids(trace_file_t *tf, const char *tpath, json_t *nodes,
                        node_ids_t *out) {
  static const char *const keys[] = {"id",       "read", "write", "call",
                                     "constant", "save", "ref",   NULL};
  edits_file_t *ef = &tf->ef;
  size_t k, n = json_array_size(nodes);
  int64_t max = 0;
  json_t *x;
  char path[160];

  out->n = n;
  out->ids = tf_alloc(tf, n * sizeof *out->ids);
  out->sorted = tf_alloc(tf, n * sizeof *out->sorted);
  if (out->ids == NULL || out->sorted == NULL)
    return ef_fail(ef, "%s.nodes: out of memory", tpath);
  json_array_foreach(nodes, k, x) {
    json_t *jid;
    int64_t id;
    snprintf(path, sizeof path, "%s.nodes[%zu]", tpath, k);
    if (!json_is_object(x))
      return ef_fail(ef, "%s: expected an object {\"id\": N, \"read\": ...}",
                     path);
    if (!check_keys(ef, path, x, keys))
      return false;
    jid = json_object_get(x, "id");
    if (jid == NULL) {
      id = max + 1;
      if (id > NNE_CLIENT_MAX_NODE_ID)
        return ef_fail(ef, "%s: no id left after %" PRId64, path, max);
    } else if (!json_int64(jid, &id) || id < 1 || id > NNE_CLIENT_MAX_NODE_ID) {
      return ef_fail(ef, "%s.id: expected an integer from 1 to %d", path,
                     NNE_CLIENT_MAX_NODE_ID);
    }
    if (id > max)
      max = id;
    out->ids[k] = (int)id;
  }
  memcpy(out->sorted, out->ids, n * sizeof *out->ids);
  qsort(out->sorted, n, sizeof *out->sorted, int_cmp);
  for (k = 1; k < n; k++)
    if (out->sorted[k] == out->sorted[k - 1]) {
      size_t a, b;
      for (a = 0; out->ids[a] != out->sorted[k]; a++)
        ;
      for (b = a + 1; out->ids[b] != out->sorted[k]; b++)
        ;
      return ef_fail(ef,
                     "%s.nodes[%zu].id: %d is already the id of "
                     "nodes[%zu]",
                     tpath, b, out->sorted[k], a);
    }
  return true;
}

static bool parse_trace(trace_file_t *tf, size_t t, json_t *obj) {
  static const char *const keys[] = {"name", "invokes", "nodes", NULL};
  edits_file_t *ef = &tf->ef;
  nne_client_trace_t *tr = &tf->traces[t];
  nne_client_invoke_t *inv;
  json_t *invokes = json_object_get(obj, "invokes"),
         *nodes = json_object_get(obj, "nodes"), *x;
  node_ids_t ids;
  char path[64], sub[96];
  size_t k;

  snprintf(path, sizeof path, "traces[%zu]", t);
  if (!json_is_object(obj))
    return ef_fail(ef, "%s: expected an object {name, invokes, nodes}", path);
  if (!check_keys(ef, path, obj, keys))
    return false;
  if (json_object_get(obj, "name") != NULL) {
    snprintf(sub, sizeof sub, "%s.name", path);
    if (!json_str_in(ef, sub, json_object_get(obj, "name"),
                     NNE_CLIENT_TRACE_NAME_MAX, &tr->name))
      return false;
  }
  if (!json_is_array(invokes) || json_array_size(invokes) == 0)
    return ef_fail(ef,
                   "%s.invokes: expected a non-empty array of invokes "
                   "{\"tokens\": [[...]]}",
                   path);
  inv = tf_alloc(tf, json_array_size(invokes) * sizeof *inv);
  if (inv == NULL)
    return ef_fail(ef, "%s: out of memory", path);
  json_array_foreach(invokes, k, x) {
    if (!parse_invoke(tf, path, k, x, &inv[k]))
      return false;
  }
  tr->invokes = inv;
  tr->n_invokes = json_array_size(invokes);
  if (nodes == NULL)
    return true;
  if (!json_is_array(nodes))
    return ef_fail(ef, "%s.nodes: expected an array of nodes", path);
  if (!collect_ids(tf, path, nodes, &ids))
    return false;
  json_array_foreach(nodes, k, x) {
    if (!parse_node(tf, path, k, x, &ids, tr->n_invokes, tf->graphs[t]))
      return false;
  }
  return true;
}

/* Save names are unique in a request: checked here so that a file that
 * breaks the rule is a usage error naming both places. */
typedef struct save_ref {
  const char *name;
  size_t trace, node;
} save_ref_t;

static int save_ref_cmp(const void *a, const void *b) {
  const save_ref_t *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  if (c != 0)
    return c;
  if (x->trace != y->trace)
    return x->trace < y->trace ? -1 : 1;
  return (x->node > y->node) - (x->node < y->node);
}

static bool check_save_names(trace_file_t *tf) {
  json_t *traces = json_object_get(tf->ef.doc, "traces"), *tr, *nd;
  save_ref_t *v = NULL;
  size_t n = 0, cap = 0, t, k;
  bool ok = true;
  json_array_foreach(traces, t, tr) {
    json_array_foreach(json_object_get(tr, "nodes"), k, nd) {
      json_t *s = json_object_get(nd, "save");
      if (s == NULL)
        continue;
      if (n == cap) {
        save_ref_t *p;
        cap = cap ? cap * 2 : 64;
        if ((p = realloc(v, cap * sizeof *p)) == NULL) {
          free(v);
          return ef_fail(&tf->ef, "out of memory");
        }
        v = p;
      }
      v[n++] =
          (save_ref_t){json_string_value(json_object_get(s, "name")), t, k};
    }
  }
  if (n > 1)
    qsort(v, n, sizeof *v, save_ref_cmp);
  for (k = 1; k < n && ok; k++)
    if (strcmp(v[k].name, v[k - 1].name) == 0)
      ok = ef_fail(&tf->ef,
                   "traces[%zu].nodes[%zu].save.name: '%.200s' is already "
                   "saved by traces[%zu].nodes[%zu] (save names are unique in "
                   "a request)",
                   v[k].trace, v[k].node, v[k].name, v[k - 1].trace,
                   v[k - 1].node);
  free(v);
  return ok;
}

/* Reads a trace file ("-" = stdin) into tf. False with tf->ef.msg. */
static bool trace_file_load(trace_file_t *tf, const char *path) {
  static const char *const keys[] = {"model",  "edit_set", "padding", "top_k",
                                     "logits", "traces",   NULL};
  edits_file_t *ef = &tf->ef;
  json_error_t jerr;
  json_t *traces, *x;
  size_t t;

  ef->path = path;
  ef->doc = strcmp(path, "-") == 0
                ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr)
                : json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (ef->doc == NULL && jerr.line < 1)
    return ef_fail(ef, "%s", jerr.text);
  if (ef->doc == NULL)
    return ef_fail(ef, "line %d, column %d: %s", jerr.line, jerr.column,
                   jerr.text);
  if (!json_is_object(ef->doc))
    return ef_fail(ef,
                   "expected an object {\"model\": ..., \"traces\": [...]}");
  if (!check_keys(ef, "", ef->doc, keys))
    return false;
  if ((x = json_object_get(ef->doc, "model")) != NULL &&
      !json_str_in(ef, "model", x, NNE_CLIENT_MODEL_NAME_MAX, &tf->model))
    return false;
  if ((x = json_object_get(ef->doc, "edit_set")) != NULL &&
      !json_str_in(ef, "edit_set", x, NNE_CLIENT_EDIT_SET_ID_MAX,
                   &tf->edit_set))
    return false;
  if ((x = json_object_get(ef->doc, "padding")) != NULL) {
    if (!json_is_string(x) ||
        !parse_padding(json_string_value(x), &tf->padding))
      return ef_fail(ef, "padding: expected \"none\", \"left\" or \"right\"");
    tf->has_padding = true;
  }
  if ((x = json_object_get(ef->doc, "logits")) != NULL) {
    if (!json_is_string(x) ||
        !parse_logits_mode(json_string_value(x), &tf->logits))
      return ef_fail(ef, "logits: expected \"none\", \"last\" or \"all\"");
    tf->has_logits = true;
  }
  if ((x = json_object_get(ef->doc, "top_k")) != NULL) {
    int64_t k;
    if (!json_int64(x, &k) || k < 0 || k > UINT32_MAX)
      return ef_fail(ef, "top_k: expected an integer from 0");
    tf->top_k = (uint32_t)k;
    tf->has_top_k = true;
  }
  traces = json_object_get(ef->doc, "traces");
  if (!json_is_array(traces) || json_array_size(traces) == 0)
    return ef_fail(ef, "traces: expected a non-empty array of traces");
  if (!tf_traces(tf, json_array_size(traces)))
    return ef_fail(ef, "out of memory");
  json_array_foreach(traces, t, x) {
    if (!parse_trace(tf, t, x))
      return false;
  }
  return check_save_names(tf);
}

/* ---- trace: output ------------------------------------------------------- */

/* Every tensor of the results, in order: per trace its saves, then its
 * logits. */
typedef struct out_tensor {
  const nne_client_tensor_t *t;
  size_t trace;
} out_tensor_t;

static size_t out_tensors(const nne_client_trace_results_t *res,
                          out_tensor_t *v) {
  size_t t, k, n = 0;
  for (t = 0; t < res->n_traces; t++) {
    for (k = 0; k < res->traces[t].n_saved; k++)
      v[n++] = (out_tensor_t){&res->traces[t].saved[k], t};
    if (res->traces[t].has_logits)
      v[n++] = (out_tensor_t){&res->traces[t].logits, t};
  }
  return n;
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
        timing_json(&r->timing), "rows", rows_json(r->rows, r->n_rows),
        "logits",
        r->has_logits
            ? tensor_info_json(&r->logits, files ? files[k + r->n_saved] : NULL)
            : json_null(),
        "saved",
        saved_json(r->saved, r->n_saved, files ? files + k : NULL, values));
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
  size_t t, k = 0, i;
  printf("model %s", model);
  if (edit_set != NULL)
    printf("  edit set %s", edit_set);
  printf("  %zu trace%s\n", res->n_traces, res->n_traces == 1 ? "" : "s");
  for (t = 0; t < res->n_traces; t++) {
    const nne_client_trace_result_t *r = &res->traces[t];
    printf("\ntrace %zu", t);
    if (r->name[0] != '\0')
      printf(" '%s'", r->name);
    printf("  batch %" PRIu32 "  seq_len %" PRIu32 "  backend %.12s (cache "
           "%s)\n  queue %.2f ms  compute %.2f ms  total %.2f ms\n",
           r->batch, r->seq_len, r->backend_key[0] ? r->backend_key : "-",
           r->cache_hit ? "hit" : "miss", r->timing.queue_ms,
           r->timing.compute_ms, r->timing.total_ms);
    rows_table(r->rows, r->n_rows, "  ");
    saved_table(r->saved, r->n_saved, files ? files + k : NULL, values, "  ");
    if (r->has_logits) {
      const char *f = files ? files[k + r->n_saved] : NULL;
      printf("\n  logits: %s %s [", r->logits.name,
             nne_client_dtype_name(r->logits.dtype));
      for (i = 0; i < r->logits.ndim; i++)
        printf("%s%" PRId64, i ? ", " : "", r->logits.shape[i]);
      printf("] %zu bytes%s%s\n", r->logits.nbytes, f ? " -> " : "",
             f ? f : "");
    }
    k += r->n_saved + r->has_logits;
  }
}

/* ---- trace: the command -------------------------------------------------- */

/* The simple form's current invoke: rows and mask rows of --tokens and
 * --mask since the last --invoke. */
typedef struct flag_invoke {
  rows_t ids, masks;
} flag_invoke_t;

/* Moves the flag invokes into tf's one trace, its graph reading and saving
 * each site. */
static bool simple_trace(trace_file_t *tf, flag_invoke_t *fi, size_t n_fi,
                         const char *name, const char *const *sites,
                         size_t n_sites) {
  nne_client_trace_t *tr;
  nne_client_invoke_t *inv;
  size_t i, k;
  if (!tf_traces(tf, 1))
    return false;
  tr = &tf->traces[0];
  tr->name = name;
  if ((inv = tf_alloc(tf, n_fi * sizeof *inv)) == NULL)
    return false;
  for (i = 0; i < n_fi; i++) {
    nne_client_token_row_t *rows = tf_alloc(tf, fi[i].ids.n * sizeof *rows);
    if (rows == NULL)
      return false;
    memcpy(rows, fi[i].ids.rows, fi[i].ids.n * sizeof *rows);
    inv[i].rows = rows;
    inv[i].n_rows = fi[i].ids.n;
    if (fi[i].masks.n > 0) {
      nne_client_mask_row_t *m = tf_alloc(tf, fi[i].masks.n * sizeof *m);
      if (m == NULL)
        return false;
      for (k = 0; k < fi[i].masks.n; k++) {
        size_t j, n = fi[i].masks.rows[k].n_ids;
        int32_t *v = tf_alloc(tf, n * sizeof *v);
        if (v == NULL)
          return false;
        for (j = 0; j < n; j++)
          v[j] = (int32_t)fi[i].masks.ids[k][j];
        m[k] = (nne_client_mask_row_t){v, n};
      }
      inv[i].mask = m;
      inv[i].n_mask = fi[i].masks.n;
    }
  }
  tr->invokes = inv;
  tr->n_invokes = n_fi;
  for (k = 0; k < n_sites; k++)
    nne_client_igraph_save(
        tf->graphs[0],
        nne_client_igraph_read(tf->graphs[0], sites[k], NNE_CLIENT_INVOKE_ALL),
        sites[k]);
  return nne_client_igraph_error(tf->graphs[0], NULL) == 0;
}

static int run_trace(ctl_t *c, const cmd_t *self, int argc, char **argv) {
  const char *model = NULL, *file = NULL, *save_dir = NULL, *edit_set = NULL,
             *name = NULL, *val;
  const char **sites = NULL;
  flag_invoke_t *fi = NULL;
  size_t n_fi = 0, n_sites = 0, k, n_outs = 0;
  bool values = false, npy = false, simple = false, invoke_open = false;
  nne_client_padding_t padding = NNE_CLIENT_PAD_NONE;
  nne_client_logits_t logits = NNE_CLIENT_LOGITS_NONE;
  bool has_padding = false, has_logits = false, has_top_k = false;
  uint32_t top_k = 5;
  trace_file_t tf;
  nne_client_trace_req_t req;
  nne_client_trace_results_t res;
  nne_client_err_t err;
  out_tensor_t *outs = NULL;
  char **files = NULL;
  int i, r, rc = 0;

  memset(&tf, 0, sizeof tf);
  memset(&res, 0, sizeof res);
  sites = calloc((size_t)argc + 1, sizeof *sites);
  fi = calloc((size_t)argc + 1, sizeof *fi);
  if (sites == NULL || fi == NULL) {
    rc = usage_error(self, "out of memory");
    goto out;
  }
  n_fi = 1; /* the first invoke is implicit */
  for (i = 0; i < argc; i++) {
    int rt, rm;
    if (is_help(argv[i])) {
      rc = cmd_help(self);
      goto out;
    }
    r = take_opt(argc, argv, &i, "--output", "-o", &val);
    if (r == 0 && strncmp(argv[i], "-o", 2) == 0 && argv[i][2] != '\0') {
      val = argv[i] + 2; /* -onpy */
      r = 1;
    }
    if (r != 0) {
      if (r > 0 && strcmp(val, "npy") == 0) {
        npy = true;
        c->json = false;
      } else if (r > 0 &&
                 (strcmp(val, "json") == 0 || strcmp(val, "table") == 0)) {
        npy = false;
        c->json = strcmp(val, "json") == 0;
      } else {
        rc = usage_error(self, "-o needs table, json or npy");
        goto out;
      }
      continue;
    }
    rt = take_opt(argc, argv, &i, "--tokens", NULL, &val);
    rm = rt ? 0 : take_opt(argc, argv, &i, "--mask", NULL, &val);
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
      if (!rows_add(is_mask ? &fi[n_fi - 1].masks : &fi[n_fi - 1].ids, v, n)) {
        free(v);
        rc = usage_error(self, "out of memory");
        goto out;
      }
      simple = true;
      invoke_open = false;
      continue;
    }
    if (strcmp(argv[i], "--invoke") == 0) {
      /* Ends the current invoke and opens the next; a leading one opens
       * the first. */
      if (invoke_open) {
        rc = usage_error(self, "an --invoke without --tokens after it");
        goto out;
      }
      if (fi[n_fi - 1].ids.n > 0 || fi[n_fi - 1].masks.n > 0)
        n_fi++;
      invoke_open = true;
      simple = true;
      continue;
    }
    if ((r = take_opt(argc, argv, &i, "--save", NULL, &val)) != 0) {
      if (r < 0 || *val == '\0') {
        rc = usage_error(self, "--save needs a site name");
        goto out;
      }
      if (strlen(val) >= NNE_CLIENT_NAME_MAX) {
        rc =
            usage_error(self, "--save: site '%.40s...' is longer than %d bytes",
                        val, NNE_CLIENT_NAME_MAX - 1);
        goto out;
      }
      for (k = 0; k < n_sites; k++)
        if (strcmp(sites[k], val) == 0)
          break;
      if (k == n_sites) /* the same site twice is one save */
        sites[n_sites++] = val;
      simple = true;
      continue;
    }
    if ((r = take_opt(argc, argv, &i, "--name", NULL, &name)) != 0) {
      if (r < 0 || *name == '\0' || strlen(name) >= NNE_CLIENT_TRACE_NAME_MAX) {
        rc = usage_error(self, "--name needs a name of 1 to %d bytes",
                         NNE_CLIENT_TRACE_NAME_MAX - 1);
        goto out;
      }
      simple = true;
      continue;
    }
    if ((r = take_opt(argc, argv, &i, "--file", "-f", &file)) != 0) {
      if (r < 0 || *file == '\0') {
        rc = usage_error(self, "-f needs a file name ('-' = stdin)");
        goto out;
      }
      continue;
    }
    if ((r = take_opt(argc, argv, &i, "--save-dir", NULL, &save_dir)) != 0) {
      if (r < 0 || *save_dir == '\0') {
        rc = usage_error(self, "--save-dir needs a directory");
        goto out;
      }
      continue;
    }
    if ((r = take_opt(argc, argv, &i, "--edit-set", NULL, &edit_set)) != 0) {
      if (r < 0 || *edit_set == '\0' ||
          strlen(edit_set) >= NNE_CLIENT_EDIT_SET_ID_MAX) {
        rc = usage_error(self,
                         "--edit-set needs an edit set id of 1 to %d "
                         "bytes",
                         NNE_CLIENT_EDIT_SET_ID_MAX - 1);
        goto out;
      }
      continue;
    }
    if ((r = take_opt(argc, argv, &i, "--top-k", NULL, &val)) != 0) {
      if (r < 0 || !parse_u32(val, &top_k)) {
        rc = usage_error(self, "--top-k needs a number from 0 to %" PRIu32,
                         UINT32_MAX);
        goto out;
      }
      has_top_k = true;
      continue;
    }
    if ((r = take_opt(argc, argv, &i, "--pad", NULL, &val)) != 0) {
      if (r < 0 || !parse_padding(val, &padding)) {
        rc = usage_error(self, "--pad needs left, right or none");
        goto out;
      }
      has_padding = true;
      continue;
    }
    if ((r = take_opt(argc, argv, &i, "--logits", NULL, &val)) != 0) {
      if (r < 0 || !parse_logits_mode(val, &logits)) {
        rc = usage_error(self, "--logits needs none, last or all");
        goto out;
      }
      has_logits = true;
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
  if (invoke_open) {
    rc = usage_error(self, "an --invoke without --tokens after it");
    goto out;
  }
  if (file != NULL && simple) {
    rc = usage_error(self, "-f cannot be combined with --tokens, --mask, "
                           "--invoke, --save or --name (the file has them)");
    goto out;
  }
  if (file == NULL) {
    for (k = 0; k < n_fi; k++)
      if (fi[k].ids.n == 0) {
        rc = usage_error(self, "at least one --tokens row is needed%s",
                         n_fi > 1 ? " in each invoke" : "");
        goto out;
      }
    if (model == NULL) {
      rc = usage_error(self, "missing MODEL");
      goto out;
    }
    if (!simple_trace(&tf, fi, n_fi, name, sites, n_sites)) {
      rc = usage_error(self, "out of memory");
      goto out;
    }
  } else if (!trace_file_load(&tf, file)) {
    rc = usage_error(self, "%s: %s", file, tf.ef.msg);
    goto out;
  }
  /* The command line overrides the file. */
  if (model == NULL)
    model = tf.model;
  if (model == NULL) {
    rc = usage_error(self, "missing MODEL (an argument, or \"model\" in the "
                           "file)");
    goto out;
  }
  if (strlen(model) >= NNE_CLIENT_MODEL_NAME_MAX) {
    rc = usage_error(self, "MODEL: longer than %d bytes",
                     NNE_CLIENT_MODEL_NAME_MAX - 1);
    goto out;
  }
  memset(&req, 0, sizeof req);
  req.model = model;
  req.edit_set = edit_set != NULL ? edit_set : tf.edit_set;
  req.traces = tf.traces;
  req.n_traces = tf.n_traces;
  req.padding = has_padding || !tf.has_padding ? padding : tf.padding;
  req.top_k = has_top_k || !tf.has_top_k ? top_k : tf.top_k;
  req.logits = has_logits || !tf.has_logits ? logits : tf.logits;
  if (npy && save_dir == NULL)
    save_dir = ".";
  /* Before the call: a directory that cannot be made wastes no forward. */
  if (save_dir != NULL && (rc = make_save_dir(save_dir)) != 0)
    goto out;

  if ((rc = connect_ctl(c)) != 0)
    goto out;
  if (nne_client_trace(c->cli, &req, &res, &err) < 0) {
    rc = call_error(&err);
    goto out;
  }
  for (k = 0; k < res.n_traces; k++)
    n_outs += res.traces[k].n_saved + res.traces[k].has_logits;
  outs = calloc(n_outs ? n_outs : 1, sizeof *outs);
  if (outs == NULL) {
    fputs("nneditctl: out of memory\n", stderr);
    rc = 1;
    goto out;
  }
  out_tensors(&res, outs);
  if (save_dir != NULL) {
    /* One file per tensor: names are unique in a request, and save_file
     * keeps two that sanitize alike apart. */
    if ((files = calloc(n_outs ? n_outs : 1, sizeof *files)) == NULL) {
      fputs("nneditctl: out of memory\n", stderr);
      rc = 1;
      goto out;
    }
    for (k = 0; k < n_outs; k++) {
      if ((files[k] = save_file(save_dir, outs[k].t->name, files, k)) == NULL) {
        fputs("nneditctl: out of memory\n", stderr);
        rc = 1;
        goto out;
      }
      if (nne_client_tensor_write_npy(outs[k].t, files[k], &err) < 0) {
        rc = call_error(&err);
        goto out;
      }
    }
  }
  if (c->json)
    rc = json_out(trace_json(model, req.edit_set, &res, files, values));
  else
    trace_table(model, req.edit_set, &res, files, values);
out:
  for (k = 0; files != NULL && k < n_outs; k++)
    free(files[k]);
  free(files);
  free(outs);
  nne_client_trace_results_free(&res);
  trace_file_free(&tf);
  for (k = 0; fi != NULL && k <= (size_t)argc; k++) {
    rows_free(&fi[k].ids);
    rows_free(&fi[k].masks);
  }
  free(fi);
  free(sites);
  return rc;
}

/* ---- graph --------------------------------------------------------------- */

/* Colours by node kind (ANSI SGR), or none. */
typedef struct palette {
  const char *hook, *call, *op, *constant, *other, *reset;
} palette_t;

static const palette_t ansi_palette = {"\033[1;31m", "\033[1;34m", "\033[32m",
                                       "\033[2m",    "\033[35m",   "\033[0m"};
static const palette_t no_palette = {"", "", "", "", "", ""};

static bool node_is_edit(const nne_client_graph_node_t *n) {
  return n->kind == NNE_CLIENT_NODE_HOOK || n->inserted;
}

static const char *node_colour(const palette_t *p,
                               const nne_client_graph_node_t *n) {
  if (node_is_edit(n))
    return p->hook;
  switch (n->kind) {
  case NNE_CLIENT_NODE_CALL: return p->call;
  case NNE_CLIENT_NODE_OP: return p->op;
  case NNE_CLIENT_NODE_CONSTANT:
  case NNE_CLIENT_NODE_ATTRIBUTE: return p->constant;
  default: return p->other;
  }
}

/* "%a, %b = aten::add(%x, %y)", "-> callee" for a call; heap string. */
static char *node_statement(const nne_client_graph_node_t *n) {
  char *buf = NULL;
  size_t len = 0, k;
  FILE *f = open_memstream(&buf, &len);
  if (f == NULL)
    return NULL;
  if (node_is_edit(n))
    fputs("[edit] ", f);
  for (k = 0; k < n->n_outputs; k++)
    fprintf(f, "%s%s", k ? ", " : "", n->outputs[k]);
  if (n->n_outputs > 0)
    fputs(" = ", f);
  fprintf(f, "%s(", n->op[0] ? n->op : "?");
  for (k = 0; k < n->n_inputs; k++)
    fprintf(f, "%s%s", k ? ", " : "", n->inputs[k]);
  fputc(')', f);
  if (n->kind == NNE_CLIENT_NODE_CALL && n->callee[0])
    fprintf(f, " -> %s", n->callee);
  if (fclose(f) != 0) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* Nesting shown as indentation, up to this many levels. */
#define GRAPH_MAX_INDENT 16
/* Widest statement the selector column waits for. */
#define GRAPH_STMT_COL 64

static void graph_legend(const palette_t *p) {
  printf("LEGEND: %s[edit] hook / edited value%s | %ssubmodule call%s | "
         "%stensor op%s | %sconstant / attribute%s | %sother%s\n",
         p->hook, p->reset, p->call, p->reset, p->op, p->reset, p->constant,
         p->reset, p->other, p->reset);
}

static int graph_table(const char *model, const char *module,
                       const char *edit_set, const nne_client_graph_t *g,
                       const palette_t *p) {
  size_t i, ws = 0, wsel = 0, wsh = 0, hooks = 0;
  char **stmts = calloc(g->n_nodes ? g->n_nodes : 1, sizeof *stmts);
  if (stmts == NULL) {
    fputs("nneditctl: out of memory\n", stderr);
    return 1;
  }
  for (i = 0; i < g->n_nodes; i++) {
    const nne_client_graph_node_t *n = &g->nodes[i];
    size_t ind =
        2 * (n->depth < GRAPH_MAX_INDENT ? n->depth : GRAPH_MAX_INDENT);
    if ((stmts[i] = node_statement(n)) == NULL) {
      size_t k;
      for (k = 0; k < i; k++)
        free(stmts[k]);
      free(stmts);
      fputs("nneditctl: out of memory\n", stderr);
      return 1;
    }
    if (ind + strlen(stmts[i]) > ws)
      ws = ind + strlen(stmts[i]);
    if (strlen(n->selector) > wsel)
      wsel = strlen(n->selector);
    if (strlen(n->shape) > wsh)
      wsh = strlen(n->shape);
    hooks += node_is_edit(n);
  }
  if (ws > GRAPH_STMT_COL)
    ws = GRAPH_STMT_COL;

  printf("%s %s", model, g->module[0] ? g->module : "(root)");
  if (module != NULL && strcmp(module, g->module) != 0)
    printf(" (%s)", module);
  if (edit_set != NULL)
    printf(", edit set %s (%s)", edit_set, g->edited ? "edited" : "not edited");
  printf(": %zu nodes", g->n_nodes);
  if (hooks > 0)
    printf(", %zu inserted by edits", hooks);
  putchar('\n');
  graph_legend(p);
  for (i = 0; i < g->n_nodes; i++) {
    const nne_client_graph_node_t *n = &g->nodes[i];
    size_t ind =
        2 * (n->depth < GRAPH_MAX_INDENT ? n->depth : GRAPH_MAX_INDENT);
    size_t used = ind + strlen(stmts[i]);
    char *line = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&line, &len);
    if (f == NULL)
      break;
    /* index, the statement in its kind's colour, then what an edit would
     * name to reach it, the shape and the source line. */
    fprintf(f, "%5" PRIu32 "  %*s%s%s%s", n->index, (int)ind, "",
            node_colour(p, n), stmts[i], node_colour(p, n)[0] ? p->reset : "");
    if (wsel + wsh > 0 || n->source[0]) {
      fprintf(f, "%*s  %-*s", used < ws ? (int)(ws - used) : 0, "", (int)wsel,
              n->selector);
      if (wsh > 0)
        fprintf(f, "  %-*s", (int)wsh, n->shape);
      if (n->source[0])
        fprintf(f, "  # %s", n->source);
    }
    if (fclose(f) == 0 && line != NULL)
      print_trimmed(line);
    free(line);
  }
  for (i = 0; i < g->n_nodes; i++)
    free(stmts[i]);
  free(stmts);
  return 0;
}

static json_t *graph_json(const char *model, const char *edit_set,
                          const nne_client_graph_t *g) {
  json_t *nodes = json_array();
  size_t i;
  for (i = 0; i < g->n_nodes; i++) {
    const nne_client_graph_node_t *n = &g->nodes[i];
    json_array_append_new(
        nodes,
        json_pack("{s:I, s:s, s:s, s:o, s:o, s:s, s:s, s:s, s:s, s:b, s:I, "
                  "s:s}",
                  "index", (json_int_t)n->index, "op", n->op, "kind",
                  nne_client_node_kind_name(n->kind), "inputs",
                  json_strs(n->inputs, n->n_inputs), "outputs",
                  json_strs(n->outputs, n->n_outputs), "instance", n->instance,
                  "selector", n->selector, "source", n->source, "shape",
                  n->shape, "inserted", (int)n->inserted, "depth",
                  (json_int_t)n->depth, "callee", n->callee));
  }
  return json_pack(
      "{s:s, s:s, s:o, s:b, s:o, s:s%}", "model", model, "module", g->module,
      "edit_set", edit_set ? json_string(edit_set) : json_null(), "edited",
      (int)g->edited, "nodes", nodes, "text", g->text, g->text_len);
}

static int run_graph(ctl_t *c, const cmd_t *self, int argc, char **argv) {
  const char *model = NULL, *module = NULL, *edit_set = NULL, *env;
  int colour = -1; /* -1: decide by the terminal */
  bool text = false;
  nne_client_graph_t g;
  nne_client_err_t err;
  int i, r, rc;

  for (i = 0; i < argc; i++) {
    if (is_help(argv[i]))
      return cmd_help(self);
    if ((r = take_output(c, self, argc, argv, &i)) != 0) {
      if (r < 0)
        return EXIT_USAGE;
      continue;
    }
    if ((r = take_opt(argc, argv, &i, "--edit-set", NULL, &edit_set)) != 0) {
      if (r < 0 || *edit_set == '\0')
        return usage_error(self, "--edit-set needs an edit set id");
      continue;
    }
    if (strcmp(argv[i], "--no-color") == 0 ||
        strcmp(argv[i], "--no-colour") == 0) {
      colour = 0;
      continue;
    }
    if (strcmp(argv[i], "--color") == 0 || strcmp(argv[i], "--colour") == 0) {
      colour = 1;
      continue;
    }
    if (strcmp(argv[i], "--text") == 0) {
      text = true;
      continue;
    }
    if (argv[i][0] == '-' && argv[i][1] != '\0')
      return usage_error(self, "unknown option '%s'", argv[i]);
    if (model == NULL)
      model = argv[i];
    else if (module == NULL)
      module = argv[i];
    else
      return usage_error(self, "unexpected argument '%s'", argv[i]);
  }
  if (model == NULL)
    return usage_error(self, "missing MODEL");
  if (module != NULL && strlen(module) >= NNE_CLIENT_MODULE_NAME_MAX)
    return usage_error(self, "MODULE: longer than %d bytes",
                       NNE_CLIENT_MODULE_NAME_MAX - 1);
  if (edit_set != NULL && strlen(edit_set) >= NNE_CLIENT_EDIT_SET_ID_MAX)
    return usage_error(self, "--edit-set: longer than %d bytes",
                       NNE_CLIENT_EDIT_SET_ID_MAX - 1);
  /* Colour only for a terminal, and never when NO_COLOR is set
   * (no-color.org); --color and --no-color decide over both. */
  if (colour < 0) {
    env = getenv("NO_COLOR");
    colour = isatty(STDOUT_FILENO) && (env == NULL || env[0] == '\0');
  }
  if ((rc = connect_ctl(c)) != 0)
    return rc;
  if (nne_client_models_graph(c->cli, model, module, edit_set, &g, &err) < 0)
    return call_error(&err);
  if (c->json)
    rc = json_out(graph_json(model, edit_set, &g));
  else if (text)
    rc = fwrite(g.text, 1, g.text_len, stdout) == g.text_len ? 0 : 1;
  else
    rc = graph_table(model, module, edit_set, &g,
                     colour ? &ansi_palette : &no_palette);
  nne_client_graph_free(&g);
  return rc;
}

/* ---- stats --------------------------------------------------------------- */

static int run_stats(ctl_t *c, const cmd_t *self, int argc, char **argv) {
  nne_client_stats_t st;
  nne_client_err_t err;
  int i, r, rc;
  size_t k;

  for (i = 0; i < argc; i++) {
    if (is_help(argv[i]))
      return cmd_help(self);
    if ((r = take_output(c, self, argc, argv, &i)) != 0) {
      if (r < 0)
        return EXIT_USAGE;
      continue;
    }
    if (argv[i][0] == '-' && argv[i][1] != '\0')
      return usage_error(self, "unknown option '%s'", argv[i]);
    return usage_error(self, "unexpected argument '%s'", argv[i]);
  }
  if ((rc = connect_ctl(c)) != 0)
    return rc;
  if (nne_client_admin_stats(c->cli, &st, &err) < 0)
    return call_error(&err);
  if (c->json) {
    json_t *arr = json_array();
    for (k = 0; k < st.n_caches; k++) {
      const nne_client_cache_stats_t *s = &st.caches[k];
      json_array_append_new(
          arr, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:I}",
                         "model", s->model, "hits", (json_int_t)s->hits,
                         "misses", (json_int_t)s->misses, "entries",
                         (json_int_t)s->entries, "bytes", (json_int_t)s->bytes,
                         "capacity_bytes", (json_int_t)s->capacity_bytes,
                         "evictions", (json_int_t)s->evictions,
                         "compile_ms_total", json_num(s->compile_ms_total),
                         "compile_ms_last", json_num(s->compile_ms_last),
                         "pinned", (json_int_t)s->pinned));
    }
    rc = json_out(json_pack("{s:I, s:I, s:I, s:I, s:I, s:o}", "queue_depth",
                            (json_int_t)st.queue_depth, "queue_capacity",
                            (json_int_t)st.queue_capacity, "calls_total",
                            (json_int_t)st.calls_total, "live_calls",
                            (json_int_t)st.live_calls, "edit_sets",
                            (json_int_t)st.edit_sets, "caches", arr));
  } else {
    enum { NC = 10 };
    const char **cells = calloc((st.n_caches + 1) * NC, sizeof *cells);
    char(*num)[NC - 1][40] = calloc(st.n_caches ? st.n_caches : 1, sizeof *num);
    printf("queue %" PRIu32 " / %" PRIu32 "  calls %" PRIu64 " (%" PRIu32
           " live)  edit sets %" PRIu32 "\n",
           st.queue_depth, st.queue_capacity, st.calls_total, st.live_calls,
           st.edit_sets);
    if (cells == NULL || num == NULL) {
      free(cells);
      free(num);
      nne_client_stats_free(&st);
      fputs("nneditctl: out of memory\n", stderr);
      return 1;
    }
    if (st.n_caches > 0) {
      static const char *const head[NC] = {
          "MODEL",    "HITS",      "MISSES", "ENTRIES",    "BYTES",
          "CAPACITY", "EVICTIONS", "PINNED", "COMPILE_MS", "LAST_MS"};
      putchar('\n');
      memcpy(cells, head, sizeof head);
      for (k = 0; k < st.n_caches; k++) {
        const nne_client_cache_stats_t *s = &st.caches[k];
        const char **row = cells + (k + 1) * NC;
        snprintf(num[k][0], 40, "%" PRIu64, s->hits);
        snprintf(num[k][1], 40, "%" PRIu64, s->misses);
        snprintf(num[k][2], 40, "%" PRIu64, s->entries);
        snprintf(num[k][3], 40, "%" PRIu64, s->bytes);
        snprintf(num[k][4], 40, "%" PRIu64, s->capacity_bytes);
        snprintf(num[k][5], 40, "%" PRIu64, s->evictions);
        snprintf(num[k][6], 40, "%" PRIu32, s->pinned);
        snprintf(num[k][7], 40, "%.2f", s->compile_ms_total);
        snprintf(num[k][8], 40, "%.2f", s->compile_ms_last);
        row[0] = s->model;
        memcpy(row + 1,
               (const char *[]){num[k][0], num[k][1], num[k][2], num[k][3],
                                num[k][4], num[k][5], num[k][6], num[k][7],
                                num[k][8]},
               9 * sizeof *row);
      }
      print_columns(cells, st.n_caches + 1, NC, "lrrrrrrrrr");
    } else {
      printf("no backend caches (no model loaded)\n");
    }
    free(cells);
    free(num);
  }
  nne_client_stats_free(&st);
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
     "  --edit-set ID       run on an edit set ('edits apply') instead of\n"
     "                      the pristine model; its SAVE edits come back\n"
     "                      after the --save sites, named by their name\n"
     "JSON: {model, edit_set, batch, seq_len, timing: {queue_ms, compute_ms,\n"
     "       total_ms}, rows: [{row, position, top: [{token_id, logit,\n"
     "       prob}]}], logits: null | {name, dtype, shape, nbytes, file},\n"
     "       saved: [{name, dtype, shape, nbytes, file, values (--values;\n"
     "       null over 4096 elements)}]}\n",
     run_forward},
    {"trace",
     "usage: nneditctl trace MODEL --tokens 1,2,3 [--tokens ...] [--invoke "
     "--tokens ...]\n"
     "                       --save SITE [--save SITE ...] [options]\n"
     "       nneditctl trace [MODEL] -f TRACE.json [options]\n"
     "\n"
     "Runs traced forward passes (Inference/Trace): the model runs once on\n"
     "the rows of a trace's invokes, reading, computing on, writing and\n"
     "saving values at sites along the way; the saved values come back as\n"
     "tensors, with the top-k next tokens of each row.\n"
     "\n"
     "The simple form saves sites of one trace:\n"
     "  --tokens IDS    one row of token ids (repeat for more rows)\n"
     "  --mask VALUES   one row of the attention mask, 1 = token, 0 = padding\n"
     "  --invoke        start a new invoke (batch group) for the --tokens\n"
     "                  that follow; all invokes run in one forward\n"
     "  --save SITE     read SITE for the whole batch and save it under that\n"
     "                  spelling (repeat): layers.3.resid_post,\n"
     "                  layers.0.self_attn.pattern, transformer.h.0.output, "
     "...\n"
     "  --name NAME     the trace's name (its logits stream as NAME/logits;\n"
     "                  unnamed, as 0/logits)\n"
     "\n"
     "The file form (-f FILE, '-' = stdin) holds whole intervention graphs\n"
     "and sessions of traces (client/TRACE-JSON.md has the details):\n"
     "  {\"model\": \"gpt2-script\", \"padding\": \"left\", \"top_k\": 5,\n"
     "   \"traces\": [{\"name\": \"clean\",\n"
     "     \"invokes\": [{\"tokens\": [[1, 2, 3]], \"mask\": [[1, 1, 1]]}],\n"
     "     \"nodes\": [\n"
     "      {\"id\": 1, \"read\": {\"site\": \"layers.3.resid_post\", "
     "\"invoke\": 0}},\n"
     "      {\"id\": 2, \"call\": {\"fn\": \"mul\", \"args\": [{\"node\": 1}, "
     "2.0]}},\n"
     "      {\"id\": 3, \"write\": {\"site\": \"layers.3.resid_post\", "
     "\"value\": 2}},\n"
     "      {\"id\": 4, \"save\": {\"value\": 1, \"name\": \"resid3\"}},\n"
     "      {\"id\": 5, \"constant\": {\"tensor\": {\"shape\": [64], "
     "\"data\": [...]}}},\n"
     "      {\"id\": 6, \"ref\": {\"name\": \"saved_earlier\"}},\n"
     "      {\"id\": 7, \"call\": {\"fn\": \"index\", \"args\": [{\"node\": "
     "1}],\n"
     "                           \"index\": [0, \":\", -1]}},\n"
     "      {\"id\": 8, \"call\": {\"fn\": \"softmax\", \"args\": [{\"node\": "
     "7}],\n"
     "                           \"kwargs\": {\"dim\": -1}}}]}]}\n"
     "  read      {site, invoke}: the value at site (any spelling) for the\n"
     "            rows of invoke (default, -1 or \"all\": the whole batch)\n"
     "  write     {site, value, invoke, ranges | rows | positions | last}:\n"
     "            replace the value at site (in those index ranges, written\n"
     "            as in 'edits apply') with node value's\n"
     "  call      {fn, args, kwargs, index}: a whitelisted function. An\n"
     "            argument is a number (an integer is an int, a real a\n"
     "            scalar), true/false, [ints], or an object {\"node\" |\n"
     "            \"scalar\" | \"int\" | \"ints\" | \"bool\" | \"dtype\" |\n"
     "            \"module\": V, \"name\": KEYWORD}; index items: an integer,\n"
     "            a slice \":\", \"1:3\", \"-1:\", \"::2\" (or {\"slice\":\n"
     "            [start, stop, step]}, null = open), \"...\", null (new "
     "axis)\n"
     "  constant  {tensor: {dtype, shape, data} or {npy: FILE}} or {scalar}\n"
     "  save      {value, name}: stream node value's value back as name\n"
     "            (names are unique in the file)\n"
     "  ref       {name}: the value an earlier trace of the file saved\n"
     "  id        1 to 2^31-1, unique in its trace (default: one more than\n"
     "            the largest before it)\n"
     "\n"
     "Options of both forms (they override the file's):\n"
     "  --edit-set ID   run on an edit set ('edits apply'); its SAVE edits\n"
     "                  come back with each trace's saves\n"
     "  --top-k K       top-k tokens per row (default 5; 0 = none)\n"
     "  --pad left|right|none  pad rows of different lengths (default none)\n"
     "  --logits none|last|all also fetch each trace's logits (default none)\n"
     "Output:\n"
     "  -o table        (default) per trace: batch, backend (cache hit or\n"
     "                  miss), timing, top-k per row, saved tensors\n"
     "  -o json         one JSON document (below)\n"
     "  -o npy          write every saved tensor (and the logits) to\n"
     "                  --save-dir DIR (default .) as <name>.npy, then print\n"
     "                  the table with the file names; characters other than\n"
     "                  A-Z a-z 0-9 . _ - become _\n"
     "  --save-dir DIR  write the .npy files with any output form\n"
     "  --values        print the values of tensors of at most 4096 elements\n"
     "A file that is not valid is a usage error (exit 2) naming the place\n"
     "(traces[0].nodes[3].call.args[1]: ...); errors from the daemon exit 1.\n"
     "JSON: {model, edit_set, traces: [{trace, name, batch, seq_len,\n"
     "       cache_hit, backend_key, timing: {queue_ms, compute_ms,\n"
     "       total_ms}, rows: [{row, position, top: [{token_id, logit,\n"
     "       prob}]}], logits: null | {name, dtype, shape, nbytes, file},\n"
     "       saved: [{name, dtype, shape, nbytes, file, values (--values;\n"
     "       null over 4096 elements)}]}]}\n",
     run_trace},
    {"edits",
     "usage: nneditctl edits apply|list|get|drop ...\n"
     "\n"
     "  edits apply MODEL -f EDITS.json [--label L]\n"
     "  edits list [MODEL]\n"
     "  edits get ID\n"
     "  edits drop ID\n"
     "Each takes -o json after it too. 'nneditctl edits SUBCOMMAND --help'\n"
     "for details; 'edits apply --help' describes the JSON file.\n",
     run_edits},
    {"graph",
     "usage: nneditctl graph MODEL [MODULE] [--edit-set ID] [--no-color] "
     "[--color] [--text] [-o json]\n"
     "\n"
     "Prints the forward graph of MODULE (any spelling; default the root) as\n"
     "the pristine model runs it, or as edit set ID's backend runs it, one\n"
     "node a line, after a LEGEND line:\n"
     "    12  %attn_weights.3 = aten::softmax(%attn_weights.2, %4, %5)  "
     "SELECTOR  SHAPE  # SOURCE\n"
     "  the node's index in graph order, its statement (outputs = op(inputs),\n"
     "  indented by block nesting; '-> PATH' for a submodule call), the\n"
     "  selector an edit names to reach its value\n"
     "  (transformer.h.0.attn:aten::softmax#0), its shape when known and a\n"
     "  source line when known. Nodes an edit inserted (hooks, edited\n"
     "  values) start with [edit]. On a terminal the statement is coloured\n"
     "  by kind: hooks and edited values red, submodule calls blue, tensor\n"
     "  ops green, constants and attributes dim, other nodes magenta.\n"
     "  --edit-set ID   the graph of that edit set's backend\n"
     "  --no-color      no colour (also: NO_COLOR set, or not a terminal)\n"
     "  --color         colour even when not a terminal\n"
     "  --text          TorchScript's own rendering of the graph instead\n"
     "JSON: {model, module, edit_set, edited, nodes: [{index, op, kind (hook,\n"
     "       call, op, constant, attribute, other), inputs, outputs,\n"
     "       instance, selector, source, shape, inserted, depth, callee}],\n"
     "       text}\n",
     run_graph},
    {"stats",
     "usage: nneditctl stats [-o json]\n"
     "\n"
     "The daemon's figures: the compute queue (waiting / capacity), calls\n"
     "(total, live), edit sets, and per loaded model its backend cache:\n"
     "hits, misses, entries, bytes held and the bound, LRU evictions,\n"
     "backends pinned by edit sets, compile time (total and last, ms).\n"
     "JSON: {queue_depth, queue_capacity, calls_total, live_calls, edit_sets,\n"
     "       caches: [{model, hits, misses, entries, bytes, capacity_bytes,\n"
     "       evictions, compile_ms_total, compile_ms_last, pinned}]}\n",
     run_stats},
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
