/* args.c — a command's arguments and the parsers of option values (see
 * args.h). */
#include "args.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"

/* ---- walking the arguments ----------------------------------------------- */

int ctl_opt_match(const ctl_opt_t *opts, const char *arg,
                  const char **inline_val) {
  int k;
  *inline_val = NULL;
  if (opts == NULL || arg[0] != '-' || arg[1] == '\0')
    return -1;
  for (k = 0; opts[k].name != NULL; k++) {
    const ctl_opt_t *o = &opts[k];
    size_t n = strlen(o->name);
    if (strcmp(arg, o->name) == 0 ||
        (o->alias != NULL && strcmp(arg, o->alias) == 0))
      return k;
    if (o->value && strncmp(arg, o->name, n) == 0 && arg[n] == '=') {
      *inline_val = arg + n + 1;
      return k;
    }
    /* -ojson, -fFILE: a one-letter alias with its value attached. */
    if (o->value && o->alias != NULL && o->alias[2] == '\0' &&
        strncmp(arg, o->alias, 2) == 0 && arg[1] != '-') {
      *inline_val = arg + 2;
      return k;
    }
  }
  return -1;
}

void ctl_args_init(ctl_args_t *a, ctl_t *c, int argc, char **argv) {
  memset(a, 0, sizeof *a);
  a->c = c;
  a->argc = argc;
  a->argv = argv;
}

int ctl_args_next(ctl_args_t *a) {
  const ctl_opt_t *opts = a->c->cmd != NULL ? a->c->cmd->opts : NULL;
  const char *arg, *val;
  int k;

  a->typed = a->val = a->arg = NULL;
  if (a->i >= a->argc)
    return CTL_ARG_END;
  arg = a->argv[a->i++];
  if (!a->only_pos && strcmp(arg, "--") == 0) {
    a->only_pos = true;
    return ctl_args_next(a);
  }
  if (a->only_pos || arg[0] != '-' || arg[1] == '\0') {
    a->arg = arg;
    return CTL_ARG_POS;
  }
  if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
    return CTL_ARG_HELP;
  if ((k = ctl_opt_match(opts, arg, &val)) < 0) {
    ctl_usage(a->c, "unknown option '%s'", arg);
    return CTL_ARG_BAD;
  }
  /* The option as typed: the argument without a value written into it
   * ("--pad=up" is --pad, "-ojson" is -o). */
  if (val == NULL)
    snprintf(a->typed_buf, sizeof a->typed_buf, "%s", arg);
  else if (arg[1] == '-')
    snprintf(a->typed_buf, sizeof a->typed_buf, "%.*s", (int)(val - 1 - arg),
             arg);
  else
    snprintf(a->typed_buf, sizeof a->typed_buf, "%.2s", arg);
  a->typed = a->typed_buf;
  if (!opts[k].value) {
    if (val != NULL) {
      ctl_usage(a->c, "%s takes no value", a->typed);
      return CTL_ARG_BAD;
    }
    return k;
  }
  if (val == NULL) {
    if (a->i >= a->argc) {
      ctl_usage(a->c, "%s needs a value", a->typed);
      return CTL_ARG_BAD;
    }
    val = a->argv[a->i++];
  }
  a->val = val;
  return k;
}

int ctl_args_unexpected(const ctl_args_t *a) {
  return ctl_usage(a->c, "unexpected argument '%s'", a->arg);
}

int ctl_args_one(ctl_t *c, int argc, char **argv, const char *what, size_t cap,
                 bool required, const char **word) {
  ctl_args_t a;
  int k, rc = 0;
  *word = NULL;
  ctl_args_init(&a, c, argc, argv);
  while (rc == 0 && (k = ctl_args_next(&a)) != CTL_ARG_END) {
    if (k == CTL_ARG_HELP) {
      ctl_help(c);
      return CTL_HELP_SHOWN;
    }
    if (k != CTL_ARG_POS)
      return CTL_EXIT_USAGE; /* reported */
    rc = *word != NULL || what == NULL ? ctl_args_unexpected(&a)
                                       : ctl_arg_word(&a, what, cap, word);
  }
  if (rc == 0 && required && *word == NULL)
    rc = ctl_usage(c, "missing %s", what);
  return rc;
}

/* ---- plain parsers ------------------------------------------------------- */

bool ctl_parse_int_list(const char *s, int64_t lo, int64_t hi, int64_t **out,
                        size_t *n) {
  size_t cap = 1, k = 0;
  const char *p;
  int64_t *v;

  *out = NULL;
  *n = 0;
  for (p = s; *p; p++)
    cap += *p == ',';
  if ((v = malloc(cap * sizeof *v)) == NULL)
    return false;
  for (p = s; *s != '\0';) {
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
  *out = v;
  *n = k;
  return true;
bad:
  free(v);
  return false;
}

bool ctl_parse_u64(const char *s, uint64_t *out) {
  char *end;
  unsigned long long x;
  if (*s < '0' || *s > '9')
    return false;
  errno = 0;
  x = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0')
    return false;
  *out = (uint64_t)x;
  return true;
}

bool ctl_parse_u32(const char *s, uint32_t *out) {
  uint64_t x;
  if (!ctl_parse_u64(s, &x) || x > UINT32_MAX)
    return false;
  *out = (uint32_t)x;
  return true;
}

bool ctl_parse_number(const char *s, double lo, double hi, double *out) {
  char *end;
  double x;
  /* strtod takes blanks, "inf", "nan" and hex: only a plain number here. */
  if (!((*s >= '0' && *s <= '9') || *s == '.' || *s == '-' || *s == '+'))
    return false;
  errno = 0;
  x = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !(x >= lo) || !(x <= hi) ||
      strpbrk(s, "xXnN") != NULL)
    return false;
  *out = x;
  return true;
}

bool ctl_parse_seconds(const char *s, int64_t *ms) {
  char *end;
  double x;
  errno = 0;
  x = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !(x >= 0) || x > 1e9)
    return false;
  *ms = (int64_t)(x * 1000.0 + 0.5);
  if (x > 0 && *ms == 0)
    *ms = 1; /* a tiny limit is not "none" */
  return true;
}

/* A mode's words, by value. */
typedef struct word {
  const char *word;
  int value;
} word_t;

static const word_t padding_words[] = {{"none", NNE_CLIENT_PAD_NONE},
                                       {"left", NNE_CLIENT_PAD_LEFT},
                                       {"right", NNE_CLIENT_PAD_RIGHT},
                                       {NULL, 0}};
static const word_t logits_words[] = {{"none", NNE_CLIENT_LOGITS_NONE},
                                      {"last", NNE_CLIENT_LOGITS_LAST},
                                      {"all", NNE_CLIENT_LOGITS_ALL},
                                      {NULL, 0}};
static const word_t output_words[] = {{"table", CTL_OUT_TABLE},
                                      {"json", CTL_OUT_JSON},
                                      {"npy", CTL_OUT_NPY},
                                      {NULL, 0}};

static bool word_parse(const word_t *w, const char *s, int *out) {
  for (; w->word != NULL; w++)
    if (strcmp(s, w->word) == 0) {
      *out = w->value;
      return true;
    }
  return false;
}

static const char *word_name(const word_t *w, int value) {
  for (; w->word != NULL; w++)
    if (w->value == value)
      return w->word;
  return "?";
}

bool ctl_parse_padding(const char *s, nne_client_padding_t *out) {
  int v;
  if (!word_parse(padding_words, s, &v))
    return false;
  *out = (nne_client_padding_t)v;
  return true;
}

bool ctl_parse_logits(const char *s, nne_client_logits_t *out) {
  int v;
  if (!word_parse(logits_words, s, &v))
    return false;
  *out = (nne_client_logits_t)v;
  return true;
}

bool ctl_parse_output(const char *s, ctl_output_t *out) {
  int v;
  if (!word_parse(output_words, s, &v))
    return false;
  *out = (ctl_output_t)v;
  return true;
}

const char *ctl_padding_name(nne_client_padding_t p) {
  return word_name(padding_words, (int)p);
}

const char *ctl_logits_name(nne_client_logits_t l) {
  return word_name(logits_words, (int)l);
}

/* ---- option values ------------------------------------------------------- */

/* "--pad 'up': <why>": every message about a value starts so. */
static int bad_value(const ctl_args_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int bad_value(const ctl_args_t *a, const char *fmt, ...) {
  char why[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  return ctl_usage(a->c, "%s '%s': %s", a->typed, a->val, why);
}

int ctl_rows_init(ctl_rows_t *r, const ctl_t *c, int argc) {
  memset(r, 0, sizeof *r);
  r->cap = argc > 0 ? (size_t)argc : 1;
  r->ids = calloc(r->cap, sizeof *r->ids);
  r->mask = calloc(r->cap, sizeof *r->mask);
  if (r->ids == NULL || r->mask == NULL) {
    ctl_rows_free(r);
    return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  }
  return 0;
}

void ctl_rows_free(ctl_rows_t *r) {
  size_t i;
  for (i = 0; r->ids != NULL && i < r->n_ids; i++)
    free((void *)r->ids[i].ids);
  for (i = 0; r->mask != NULL && i < r->n_mask; i++)
    free((void *)r->mask[i].values);
  free(r->ids);
  free(r->mask);
  memset(r, 0, sizeof *r);
}

int ctl_arg_tokens(ctl_args_t *a, ctl_rows_t *r) {
  int64_t *v;
  size_t n;
  if (!ctl_parse_int_list(a->val, INT64_MIN, INT64_MAX, &v, &n))
    return bad_value(a, "expected a comma-separated list of token ids "
                        "(integers)");
  if (r->n_ids == r->cap) { /* more rows than arguments: a bug of ours */
    free(v);
    return ctl_fail(a->c, NNE_CLIENT_INTERNAL, "too many rows");
  }
  r->ids[r->n_ids++] = (nne_client_token_row_t){.ids = v, .n_ids = n};
  return 0;
}

int ctl_arg_prompt(ctl_args_t *a, ctl_rows_t *r) {
  /* An empty text would go on the wire as no text at all, an empty id row:
   * refused here, where the user typed it. */
  if (a->val[0] == '\0')
    return bad_value(a, "expected text (a prompt to tokenize)");
  if (strlen(a->val) > NNE_CLIENT_TEXT_MAX)
    return bad_value(a, "longer than %zu bytes", NNE_CLIENT_TEXT_MAX);
  if (r->n_ids == r->cap) /* more rows than arguments: a bug of ours */
    return ctl_fail(a->c, NNE_CLIENT_INTERNAL, "too many rows");
  r->ids[r->n_ids++] = (nne_client_token_row_t){.text = a->val};
  return 0;
}

int ctl_arg_mask(ctl_args_t *a, ctl_rows_t *r) {
  int64_t *v;
  int32_t *m;
  size_t n, k;
  if (!ctl_parse_int_list(a->val, INT32_MIN, INT32_MAX, &v, &n))
    return bad_value(a, "expected a comma-separated list of mask values "
                        "(int32: 1 token, 0 padding)");
  m = malloc(n ? n * sizeof *m : 1);
  if (m == NULL || r->n_mask == r->cap) {
    free(v);
    free(m);
    return ctl_fail(a->c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  }
  for (k = 0; k < n; k++)
    m[k] = (int32_t)v[k]; /* range-checked by the parser */
  free(v);
  r->mask[r->n_mask++] = (nne_client_mask_row_t){m, n};
  return 0;
}

int ctl_arg_padding(ctl_args_t *a, nne_client_padding_t *out) {
  if (!ctl_parse_padding(a->val, out))
    return bad_value(a, "expected none, left or right");
  return 0;
}

int ctl_arg_top_k(ctl_args_t *a, uint32_t *out) {
  if (!ctl_parse_u32(a->val, out))
    return bad_value(a, "expected a number from 0 to %" PRIu32, UINT32_MAX);
  return 0;
}

int ctl_arg_logits(ctl_args_t *a, nne_client_logits_t *out) {
  if (!ctl_parse_logits(a->val, out))
    return bad_value(a, "expected none, last or all");
  return 0;
}

int ctl_arg_dtype(ctl_args_t *a, nne_client_dtype_t *out) {
  nne_client_err_t err;
  if (nne_client_dtype_parse(a->val, out, &err) < 0)
    return bad_value(a, "%s", err.message);
  return 0;
}

int ctl_arg_seconds(ctl_args_t *a, int64_t *ms) {
  if (!ctl_parse_seconds(a->val, ms))
    return bad_value(a, "expected a number of seconds (0 = no limit)");
  return 0;
}

int ctl_arg_count(ctl_args_t *a, uint32_t lo, uint32_t hi, uint32_t *out) {
  uint32_t v;
  if (!ctl_parse_u32(a->val, &v) || v < lo || v > hi)
    return bad_value(a, "expected a number from %" PRIu32 " to %" PRIu32, lo,
                     hi);
  *out = v;
  return 0;
}

int ctl_arg_number(ctl_args_t *a, double lo, double hi, float *out) {
  double v;
  if (!ctl_parse_number(a->val, lo, hi, &v))
    return bad_value(a, "expected a number from %g to %g", lo, hi);
  *out = (float)v;
  return 0;
}

int ctl_arg_u64(ctl_args_t *a, uint64_t *out) {
  if (!ctl_parse_u64(a->val, out))
    return bad_value(a, "expected a number from 0 to %" PRIu64, UINT64_MAX);
  return 0;
}

int ctl_arg_ids(ctl_args_t *a, int64_t *ids, size_t *n, size_t cap) {
  int64_t *v;
  size_t k, m;
  if (!ctl_parse_int_list(a->val, 0, INT64_MAX, &v, &m) || m == 0) {
    free(v);
    return bad_value(a, "expected token ids (integers from 0), "
                        "comma-separated");
  }
  if (m > cap - *n) {
    free(v);
    return bad_value(a, "more than %zu ids in all", cap);
  }
  for (k = 0; k < m; k++)
    ids[(*n)++] = v[k];
  free(v);
  return 0;
}

int ctl_arg_text(ctl_args_t *a, size_t cap, bool empty_ok, const char **out) {
  size_t n = strlen(a->val);
  if (n == 0 && !empty_ok)
    return ctl_usage(a->c, "%s needs a value (it is empty)", a->typed);
  if (n >= cap)
    return ctl_usage(a->c, "%s '%.40s...': longer than %zu bytes", a->typed,
                     a->val, cap - 1);
  *out = a->val;
  return 0;
}

int ctl_arg_site(ctl_args_t *a, const char **out) {
  return ctl_arg_text(a, NNE_CLIENT_NAME_MAX, false, out);
}

int ctl_arg_path(ctl_args_t *a, const char **out) {
  return ctl_arg_text(a, SIZE_MAX, false, out);
}

int ctl_arg_edit_set(ctl_args_t *a, const char **out) {
  return ctl_arg_text(a, NNE_CLIENT_EDIT_SET_ID_MAX, false, out);
}

int ctl_arg_word(ctl_args_t *a, const char *what, size_t cap,
                 const char **out) {
  size_t n = strlen(a->arg);
  if (n == 0)
    return ctl_usage(a->c, "%s is empty", what);
  if (n >= cap)
    return ctl_usage(a->c, "%s '%.40s...': longer than %zu bytes", what, a->arg,
                     cap - 1);
  *out = a->arg;
  return 0;
}
