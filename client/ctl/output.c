/* output.c — JSON and tables on stdout, errors on stderr (output.h). */
#include "output.h"

#include <errno.h>
#include <stdint.h>
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

int ctl_json_line(const ctl_t *c, json_t *doc) {
  int bad;
  if (doc == NULL)
    return ctl_fail(c, NNE_CLIENT_INTERNAL, "cannot build the JSON output");
  bad = json_dumpf(doc, stdout,
                   JSON_COMPACT | JSON_PRESERVE_ORDER |
                       JSON_REAL_PRECISION(9)) != 0 ||
        fputc('\n', stdout) == EOF;
  json_decref(doc);
  return bad ? ctl_fail(c, NNE_CLIENT_INTERNAL, "cannot write the JSON output")
             : 0;
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

/* One UTF-8 sequence at s[0..n): its code point and length, or 0 when the
 * bytes there are not one (overlong forms and surrogates are not). */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
  size_t len, k;
  uint32_t c;
  if (s[0] < 0x80) {
    *cp = s[0];
    return 1;
  }
  if (s[0] >= 0xc2 && s[0] <= 0xdf)
    len = 2, c = s[0] & 0x1f;
  else if (s[0] >= 0xe0 && s[0] <= 0xef)
    len = 3, c = s[0] & 0x0f;
  else if (s[0] >= 0xf0 && s[0] <= 0xf4)
    len = 4, c = s[0] & 0x07;
  else
    return 0;
  if (len > n)
    return 0;
  for (k = 1; k < len; k++) {
    if ((s[k] & 0xc0) != 0x80)
      return 0;
    c = (c << 6) | (s[k] & 0x3f);
  }
  if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
      (c >= 0xd800 && c <= 0xdfff))
    return 0;
  *cp = c;
  return len;
}

json_t *ctl_json_text(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  json_t *j;
  char *buf;
  size_t i = 0, o = 0, len;
  uint32_t cp;
  /* The common case, valid UTF-8, as it is (NULs included). */
  if ((j = json_stringn(s, n)) != NULL)
    return j;
  /* U+FFFD takes 3 bytes where one byte was. */
  if (n > (SIZE_MAX - 1) / 3 || (buf = malloc(3 * n + 1)) == NULL)
    return NULL;
  while (i < n) {
    if ((len = utf8_next(u + i, n - i, &cp)) == 0) {
      memcpy(buf + o, "\xef\xbf\xbd", 3);
      o += 3;
      i++;
      continue;
    }
    memcpy(buf + o, s + i, len);
    o += len;
    i += len;
  }
  j = json_stringn(buf, o);
  free(buf);
  return j;
}

/* ---- token text ---------------------------------------------------------- */

/* Code points that a terminal shows as nothing, or as a plain blank that
 * hides what it is: they are written as \uXXXX. */
static bool invisible(uint32_t c) {
  return (c >= 0x80 && c <= 0xa0) || c == 0xad || c == 0x034f || c == 0x061c ||
         c == 0x115f || c == 0x1160 || c == 0x1680 || c == 0x180e ||
         (c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) ||
         (c >= 0x205f && c <= 0x206f) || c == 0x3000 || c == 0x3164 ||
         (c >= 0xfe00 && c <= 0xfe0f) || c == 0xfeff || c == 0xffa0 ||
         (c >= 0xfff0 && c <= 0xfffb) || (c >= 0xe0000 && c <= 0xe0fff);
}

char *ctl_quote_text(const char *s, size_t n, char *buf, size_t cap) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, o = 0, len;
  char piece[16];
  uint32_t cp;
  /* Room kept for "...'" and the NUL. */
  size_t room = cap - 5;
  buf[o++] = '\'';
  while (i < n) {
    len = utf8_next(u + i, n - i, &cp);
    if (len == 0) {
      snprintf(piece, sizeof piece, "\\x%02x", u[i]);
      len = 1;
    } else if (cp == '\\' || cp == '\'') {
      snprintf(piece, sizeof piece, "\\%c", (char)cp);
    } else if (cp == '\n' || cp == '\t' || cp == '\r') {
      snprintf(piece, sizeof piece, "\\%c",
               cp == '\n'   ? 'n'
               : cp == '\t' ? 't'
                            : 'r');
    } else if (cp < 0x20 || cp == 0x7f) {
      snprintf(piece, sizeof piece, "\\x%02x", (unsigned)cp);
    } else if (invisible(cp)) {
      snprintf(piece, sizeof piece, cp > 0xffff ? "\\U%08x" : "\\u%04x",
               (unsigned)cp);
    } else {
      memcpy(piece, s + i, len);
      piece[len] = '\0';
    }
    if (o + strlen(piece) > room) {
      memcpy(buf + o, "...'", 5);
      return buf;
    }
    memcpy(buf + o, piece, strlen(piece));
    o += strlen(piece);
    i += len;
  }
  buf[o++] = '\'';
  buf[o] = '\0';
  return buf;
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

/* The columns a cell takes on a terminal, counted as code points (a
 * token's text is UTF-8: 'Ġworld' is 8 columns, 9 bytes). */
static size_t cell_width(const char *s) {
  size_t w = 0;
  for (; *s != '\0'; s++)
    w += ((unsigned char)*s & 0xc0) != 0x80;
  return w;
}

void ctl_print_columns(const char *const *cells, size_t rows, size_t n,
                       const char *align) {
  size_t *w = calloc(n ? n : 1, sizeof *w), r, k;
  if (w == NULL)
    return;
  for (r = 0; r < rows; r++)
    for (k = 0; k < n; k++)
      if (cell_width(cells[r * n + k]) > w[k])
        w[k] = cell_width(cells[r * n + k]);
  for (r = 0; r < rows; r++) {
    char line[4096];
    size_t len = 0;
    line[0] = '\0';
    for (k = 0; k < n; k++) {
      const char *cell = cells[r * n + k];
      bool right = align != NULL && align[k] == 'r';
      int pad = (int)(w[k] - cell_width(cell));
      if (k + 1 == n && !right)
        pad = 0;
      if (right)
        ctl_line_add(line, sizeof line, &len, "%s%*s%s", k ? "  " : "", pad, "",
                     cell);
      else
        ctl_line_add(line, sizeof line, &len, "%s%s%*s", k ? "  " : "", cell,
                     pad, "");
    }
    ctl_print_trimmed(line);
  }
  free(w);
}
