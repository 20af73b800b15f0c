/* sample.c — see sample.h. */
#include "infer/sample.h"

#include <math.h>
#include <stdlib.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void nne_rng_seed(nne_rng_t *r, uint64_t seed) {
  int i;
  for (i = 0; i < 4; i++)
    r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t nne_rng_next(nne_rng_t *r) {
  uint64_t *s = r->s;
  uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return out;
}

double nne_rng_uniform(nne_rng_t *r) {
  return (double)(nne_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* log-sum-exp of x[0..n), in double. */
static double logsumexp(const float *x, size_t n) {
  double m = -INFINITY, s = 0;
  size_t i;
  for (i = 0; i < n; i++)
    if (x[i] > m)
      m = x[i];
  if (!isfinite(m))
    return m;
  for (i = 0; i < n; i++)
    s += exp((double)x[i] - m);
  return m + log(s);
}

static size_t argmax(const float *x, size_t n) {
  size_t i, best = 0;
  for (i = 1; i < n; i++)
    if (x[i] > x[best])
      best = i;
  return best;
}

/* Sorts idx[0..n) by descending score (ties: lower id first). */
static _Thread_local const float *g_sort_scores; /* qsort has no context */
static int by_score_desc(const void *a, const void *b) {
  int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
  float x = g_sort_scores[i], y = g_sort_scores[j];
  if (x != y)
    return x > y ? -1 : 1;
  return i < j ? -1 : i > j;
}

/* Keeps the k best of idx[0..n) at its front, sorted: a min-heap of k over
 * one pass (k is small next to V). Returns k. */
static void heap_down(int32_t *h, size_t n, size_t i, const float *sc) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    /* "worse" = lower score, or equal score and higher id. */
#define WORSE(a, b) (sc[a] < sc[b] || (sc[a] == sc[b] && (a) > (b)))
    if (l < n && WORSE(h[l], h[m]))
      m = l;
    if (r < n && WORSE(h[r], h[m]))
      m = r;
    if (m == i)
      return;
    int32_t t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

static size_t keep_top_k(int32_t *idx, size_t n, size_t k, const float *sc) {
  size_t i;
  if (k >= n)
    k = n;
  /* idx[0..k) becomes a heap of the first k; each later one that beats
   * the heap's worst replaces it. */
  for (i = k / 2; i-- > 0;)
    heap_down(idx, k, i, sc);
  for (i = k; i < n; i++) {
    int32_t c = idx[i];
    if (WORSE(idx[0], c)) {
      idx[0] = c;
      heap_down(idx, k, 0, sc);
    }
  }
#undef WORSE
  g_sort_scores = sc;
  qsort(idx, k, sizeof *idx, by_score_desc);
  return k;
}

int64_t nne_sample_next(const float *logits, size_t V,
                        const nne_sample_opts_t *o, const int64_t *seen,
                        size_t n_seen, nne_rng_t *rng,
                        nne_sample_scratch_t *sc, float *logprob) {
  float *x = sc->scores;
  int32_t *idx = sc->idx;
  size_t i, n, pick;
  double lse = logsumexp(logits, V), maxv, total, u, acc;

  for (i = 0; i < V; i++)
    x[i] = logits[i];
  if (o->repetition_penalty > 0 && o->repetition_penalty != 1) {
    float p = o->repetition_penalty;
    for (i = 0; i < n_seen; i++) {
      int64_t id = seen[i];
      if (id < 0 || (size_t)id >= V || x[id] != logits[id])
        continue; /* once per token (a 0 logit is unchanged either way) */
      x[id] = x[id] > 0 ? x[id] / p : x[id] * p;
    }
  }
  if (o->temperature <= 0) {
    pick = argmax(x, V);
    goto out;
  }
  for (i = 0; i < V; i++) {
    x[i] /= o->temperature;
    idx[i] = (int32_t)i;
  }
  n = V;
  if (o->top_k > 0 && o->top_k < V)
    n = keep_top_k(idx, V, o->top_k, x);
  else if (o->top_p > 0 && o->top_p < 1) {
    g_sort_scores = x;
    qsort(idx, V, sizeof *idx, by_score_desc);
  }
  /* Probabilities over the kept tokens (idx[0..n), best first once
   * sorted). */
  maxv = -INFINITY;
  for (i = 0; i < n; i++)
    if (x[idx[i]] > maxv)
      maxv = x[idx[i]];
  total = 0;
  for (i = 0; i < n; i++)
    total += exp((double)x[idx[i]] - maxv);
  if (o->top_p > 0 && o->top_p < 1) {
    /* The smallest best-first prefix whose mass reaches top_p (at least
     * one token). */
    double need = o->top_p * total, mass = 0;
    size_t keep = 0;
    while (keep < n) {
      mass += exp((double)x[idx[keep]] - maxv);
      keep++;
      if (mass >= need)
        break;
    }
    n = keep;
    total = mass;
  }
  u = nne_rng_uniform(rng) * total;
  acc = 0;
  pick = (size_t)idx[n - 1];
  for (i = 0; i < n; i++) {
    acc += exp((double)x[idx[i]] - maxv);
    if (u < acc) {
      pick = (size_t)idx[i];
      break;
    }
  }
out:
  *logprob = (float)((double)logits[pick] - lse);
  return (int64_t)pick;
}
