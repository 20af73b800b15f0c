/* prom.c — see prom.h. */
#include "base/prom.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double nne_prom_seconds_buckets[] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5,   1,      2.5,   5,    10,    30,   60};
const size_t nne_prom_seconds_n =
    sizeof nne_prom_seconds_buckets / sizeof nne_prom_seconds_buckets[0];

void nne_prom_buf_init(nne_prom_buf_t *b, size_t limit) {
  memset(b, 0, sizeof *b);
  b->limit = limit;
}

void nne_prom_buf_free(nne_prom_buf_t *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

static bool reserve(nne_prom_buf_t *b, size_t more) {
  size_t need, cap;
  char *p;
  if (b->failed)
    return false;
  if (more > b->limit || b->len > b->limit - more) {
    b->failed = true;
    return false;
  }
  need = b->len + more + 1;
  if (need <= b->cap)
    return true;
  cap = b->cap ? b->cap : 4096;
  while (cap < need)
    cap *= 2;
  p = realloc(b->data, cap);
  if (p == NULL) {
    b->failed = true;
    return false;
  }
  b->data = p;
  b->cap = cap;
  return true;
}

static void put(nne_prom_buf_t *b, const char *s, size_t n) {
  if (!reserve(b, n))
    return;
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

static void puts_(nne_prom_buf_t *b, const char *s) { put(b, s, strlen(s)); }

static void printf_(nne_prom_buf_t *b, const char *fmt, ...) {
  char tmp[128];
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof tmp) {
    b->failed = true;
    return;
  }
  put(b, tmp, (size_t)n);
}

/* A label value or HELP text: the format escapes backslash and newline in
 * both, and the double quote in label values. */
static void escaped(nne_prom_buf_t *b, const char *s, bool quote) {
  const char *run = s;
  for (; *s; s++) {
    const char *esc = NULL;
    if (*s == '\\')
      esc = "\\\\";
    else if (*s == '\n')
      esc = "\\n";
    else if (*s == '"' && quote)
      esc = "\\\"";
    if (esc != NULL) {
      put(b, run, (size_t)(s - run));
      puts_(b, esc);
      run = s + 1;
    }
  }
  put(b, run, (size_t)(s - run));
}

static void value(nne_prom_buf_t *b, double v) {
  if (isnan(v))
    puts_(b, "NaN");
  else if (isinf(v))
    puts_(b, v > 0 ? "+Inf" : "-Inf");
  else if (v == floor(v) && fabs(v) < 9007199254740992.0)
    printf_(b, "%.0f", v); /* counters read as integers */
  else
    printf_(b, "%.15g", v); /* what a double holds for sure, no noise */
}

void nne_prom_family(nne_prom_buf_t *b, const char *name, const char *type,
                     const char *help) {
  puts_(b, "# HELP ");
  puts_(b, name);
  puts_(b, " ");
  escaped(b, help, false);
  puts_(b, "\n# TYPE ");
  puts_(b, name);
  puts_(b, " ");
  puts_(b, type);
  puts_(b, "\n");
}

/* name{k="v",...,extra_k="extra_v"} */
static void series(nne_prom_buf_t *b, const char *name, const char *suffix,
                   const char *const *labels, const char *extra_k,
                   const char *extra_v) {
  bool first = true;
  size_t i;
  puts_(b, name);
  puts_(b, suffix);
  if ((labels == NULL || labels[0] == NULL) && extra_k == NULL)
    return;
  puts_(b, "{");
  for (i = 0; labels != NULL && labels[i] != NULL && labels[i + 1] != NULL;
       i += 2) {
    if (!first)
      puts_(b, ",");
    first = false;
    puts_(b, labels[i]);
    puts_(b, "=\"");
    escaped(b, labels[i + 1], true);
    puts_(b, "\"");
  }
  if (extra_k != NULL) {
    if (!first)
      puts_(b, ",");
    puts_(b, extra_k);
    puts_(b, "=\"");
    puts_(b, extra_v);
    puts_(b, "\"");
  }
  puts_(b, "}");
}

void nne_prom_sample(nne_prom_buf_t *b, const char *name,
                     const char *const *labels, double v) {
  series(b, name, "", labels, NULL, NULL);
  puts_(b, " ");
  value(b, v);
  puts_(b, "\n");
}

void nne_prom_hist_init(nne_prom_hist_t *h, const double *bounds,
                        size_t n_bounds) {
  memset(h, 0, sizeof *h);
  h->bounds = bounds;
  h->n_bounds = n_bounds < NNE_PROM_MAX_BUCKETS ? n_bounds
                                                : NNE_PROM_MAX_BUCKETS;
}

void nne_prom_hist_observe(nne_prom_hist_t *h, double v) {
  size_t i = 0;
  while (i < h->n_bounds && !(v <= h->bounds[i]))
    i++;
  h->counts[i]++;
  h->count++;
  h->sum += v;
}

void nne_prom_hist_write(nne_prom_buf_t *b, const char *name,
                         const char *const *labels, const nne_prom_hist_t *h) {
  uint64_t cum = 0;
  char le[32];
  size_t i;
  for (i = 0; i <= h->n_bounds; i++) {
    cum += h->counts[i];
    if (i < h->n_bounds)
      snprintf(le, sizeof le, "%g", h->bounds[i]);
    else
      snprintf(le, sizeof le, "+Inf");
    series(b, name, "_bucket", labels, "le", le);
    puts_(b, " ");
    value(b, (double)cum);
    puts_(b, "\n");
  }
  series(b, name, "_sum", labels, NULL, NULL);
  puts_(b, " ");
  value(b, h->sum);
  puts_(b, "\n");
  series(b, name, "_count", labels, NULL, NULL);
  puts_(b, " ");
  value(b, (double)h->count);
  puts_(b, "\n");
}
