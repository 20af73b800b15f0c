/* prom.h — Prometheus's text exposition format (0.0.4) into a growing
 * buffer, and fixed-bucket histograms.
 *
 * A scrape is one text document: for each metric family a "# HELP" and a
 * "# TYPE" line, then its samples ("name{label="value",...} value"). The
 * writer keeps that order by construction: nne_prom_family starts a family,
 * the sample and histogram calls that follow belong to it.
 *
 *   nne_prom_buf_t b;
 *   nne_prom_buf_init(&b, 1 << 20);
 *   nne_prom_family(&b, "nnedit_requests_total", "counter", "Calls ...");
 *   nne_prom_sample(&b, "nnedit_requests_total",
 *                   (const char *[]){"method", m, "code", "OK", NULL}, n);
 *   if (b.failed) ... ; use b.data/b.len; nne_prom_buf_free(&b);
 *
 * Label values are escaped as the format wants (backslash, double quote,
 * newline); names are the caller's constants and are not checked. Values are
 * printed so that integers up to 2^53 stay exact; NaN and infinities are
 * spelled as the format spells them.
 *
 * No locking: a histogram is updated and written by one thread (the daemon's
 * loop thread), or under the caller's lock.
 */
#ifndef NNE_PROM_H
#define NNE_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Caller-allocated; data is malloc'd by the writer and freed by
 * nne_prom_buf_free. */
typedef struct nne_prom_buf {
  char *data;     /* NUL-terminated text; NULL until something is written */
  size_t len;
  size_t cap;
  size_t limit;   /* the most bytes the document may take */
  bool failed;    /* out of memory or over the limit: the text is cut short
                     and must not be served */
} nne_prom_buf_t;

void nne_prom_buf_init(nne_prom_buf_t *b, size_t limit);
void nne_prom_buf_free(nne_prom_buf_t *b);

/* "# HELP name help" and "# TYPE name type" (type: counter, gauge,
 * histogram). */
void nne_prom_family(nne_prom_buf_t *b, const char *name, const char *type,
                     const char *help);

/* One sample. labels: NULL, or alternating names and values ending in NULL
 * (borrowed for the call). */
void nne_prom_sample(nne_prom_buf_t *b, const char *name,
                     const char *const *labels, double value);

/* The most finite bucket bounds a histogram may have. */
#define NNE_PROM_MAX_BUCKETS 20

/* Counts per bucket (not cumulative: the writer sums them), the +Inf one
 * last. The bounds are the caller's static array, ascending. */
typedef struct nne_prom_hist {
  const double *bounds;
  size_t n_bounds;
  uint64_t counts[NNE_PROM_MAX_BUCKETS + 1];
  uint64_t count;
  double sum;
} nne_prom_hist_t;

/* Latency buckets in seconds, 1 ms to 60 s: what a forward pass, a compile
 * or a call may take here. */
extern const double nne_prom_seconds_buckets[];
extern const size_t nne_prom_seconds_n;

/* n_bounds is capped at NNE_PROM_MAX_BUCKETS. */
void nne_prom_hist_init(nne_prom_hist_t *h, const double *bounds,
                        size_t n_bounds);
void nne_prom_hist_observe(nne_prom_hist_t *h, double value);

/* name_bucket{labels...,le="..."} for every bound and +Inf (cumulative),
 * name_sum and name_count. Call after nne_prom_family(b, name, "histogram",
 * ...). */
void nne_prom_hist_write(nne_prom_buf_t *b, const char *name,
                         const char *const *labels, const nne_prom_hist_t *h);

#endif /* NNE_PROM_H */
