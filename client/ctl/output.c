/* output.c — JSON and tables on stdout, errors on stderr (output.h). */
#include "output.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "help.h"

/* ---- errors -------------------------------------------------------------- */

int ctl_exit_code(int code) {
  return code == NNE_CLIENT_UNAVAILABLE ? CTL_EXIT_UNREACHABLE : CTL_EXIT_ERROR;
}

/* One error object on one line of stderr: {"code": ..., "message": ...}
 * and, for a usage error, "usage". */
static void json_error(const char *code, const char *message,
                       const char *usage) {
  json_t *o = json_pack("{s:s, s:s}", "code", code, "message", message);
  if (o != NULL && usage != NULL)
    json_object_set_new(o, "usage", json_string(usage));
  if (o == NULL || json_dumpf(o, stderr, JSON_PRESERVE_ORDER) != 0)
    fprintf(stderr, "{\"code\": \"%s\"}", code);
  fputc('\n', stderr);
  json_decref(o);
}

int ctl_usage(const ctl_t *c, const char *fmt, ...) {
  const char *cmd = c != NULL && c->cmd != NULL ? c->cmd->name : NULL;
  char msg[1600], usage[1024];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ctl_help_synopsis(cmd, usage, sizeof usage);
  if (c != NULL && c->output == CTL_OUT_JSON) {
    json_error("USAGE", msg, usage);
    return CTL_EXIT_USAGE;
  }
  fprintf(stderr, "nneditctl: %s\n", msg);
  ctl_help_usage(stderr, cmd);
  if (cmd != NULL)
    fprintf(stderr, "Try 'nneditctl %s --help'.\n", cmd);
  else
    fputs("Try 'nneditctl --help'.\n", stderr);
  return CTL_EXIT_USAGE;
}

int ctl_fail(const ctl_t *c, int code, const char *fmt, ...) {
  char msg[NNE_CLIENT_ERR_MAX + 256];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (c != NULL && c->output == CTL_OUT_JSON)
    json_error(nne_client_status_name(code), msg, NULL);
  else
    fprintf(stderr, "nneditctl: %s: %s\n", nne_client_status_name(code), msg);
  return ctl_exit_code(code);
}

int ctl_call_error(const ctl_t *c, const nne_client_err_t *err) {
  return ctl_fail(c, err->code, "%s", err->message);
}

/* The bearer token: --token-file's first line, else $NNEDIT_TOKEN, else
 * none. Into buf (cap bytes); 0, or an exit code after the message. */
static int read_token(const ctl_t *c, char *buf, size_t cap, bool *have) {
  const char *env = getenv("NNEDIT_TOKEN");
  *have = false;
  if (c->token_file != NULL) {
    FILE *f = fopen(c->token_file, "r");
    size_t n;
    if (f == NULL)
      return ctl_fail(c, NNE_CLIENT_INVALID_ARGUMENT, "--token-file %s: %s",
                      c->token_file, strerror(errno));
    if (fgets(buf, (int)cap, f) == NULL)
      buf[0] = '\0';
    fclose(f);
    n = strcspn(buf, "\r\n");
    buf[n] = '\0';
    if (n == 0)
      return ctl_fail(c, NNE_CLIENT_INVALID_ARGUMENT,
                      "--token-file %s: the first line holds no token",
                      c->token_file);
    *have = true;
  } else if (env != NULL && env[0] != '\0') {
    if (strlen(env) >= cap)
      return ctl_fail(c, NNE_CLIENT_INVALID_ARGUMENT,
                      "$NNEDIT_TOKEN: longer than %zu characters", cap - 1);
    memcpy(buf, env, strlen(env) + 1);
    *have = true;
  }
  return 0;
}

int ctl_connect(ctl_t *c) {
  nne_client_opts_t opts;
  nne_client_err_t err;
  char token[4100];
  bool have;
  int rc;

  if ((rc = read_token(c, token, sizeof token, &have)) != 0)
    return rc;
  nne_client_opts_init(&opts);
  opts.address = c->addr;
  opts.timeout_ms = c->timeout_ms;
  opts.token = have ? token : NULL;
  opts.tls = c->tls;
  opts.tls_ca_file = c->tls_ca;
  opts.tls_cert_file = c->tls_cert;
  opts.tls_key_file = c->tls_key;
  rc = nne_client_connect(&opts, &c->cli, &err);
  memset(token, 0, sizeof token); /* the client keeps its own copy */
  if (rc < 0 || nne_client_try_connect(c->cli, c->connect_timeout_ms, &err) < 0)
    return ctl_call_error(c, &err);
  return 0;
}

int ctl_help(const ctl_t *c) {
  ctl_help_print(c->cmd != NULL ? c->cmd->name : NULL);
  return 0;
}

/* ---- JSON ---------------------------------------------------------------- */

int ctl_json_out(const ctl_t *c, json_t *doc) {
  int rc = 0;
  if (doc == NULL)
    return ctl_fail(c, NNE_CLIENT_INTERNAL, "cannot build the JSON output");
  /* 9 significant digits round-trip every float32 (logits, probs) and keep
   * timings readable. */
  if (json_dumpf(doc, stdout,
                 JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                     JSON_REAL_PRECISION(9)) != 0 ||
      fputc('\n', stdout) == EOF)
    rc = CTL_EXIT_ERROR;
  json_decref(doc);
  return rc;
}

json_t *ctl_json_num(double v) {
  return isfinite(v) ? json_real(v) : json_null();
}

json_t *ctl_json_strs(const char *const *v, size_t n) {
  json_t *a = json_array();
  size_t i;
  for (i = 0; i < n; i++)
    json_array_append_new(a, json_string(v[i]));
  return a;
}

/* ---- tables -------------------------------------------------------------- */

void ctl_line_add(char *line, size_t cap, size_t *n, const char *fmt, ...) {
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

void ctl_print_trimmed(char *line) {
  size_t n = strlen(line);
  while (n > 0 && line[n - 1] == ' ')
    line[--n] = '\0';
  puts(line);
}

void ctl_print_columns(const char *const *cells, size_t rows, size_t n,
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
      ctl_line_add(line, sizeof line, &len, right ? "%s%*s" : "%s%-*s",
                   k ? "  " : "", right || k + 1 < n ? (int)w[k] : 0,
                   cells[r * n + k]);
    }
    ctl_print_trimmed(line);
  }
  free(w);
}
