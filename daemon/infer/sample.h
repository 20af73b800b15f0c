/* sample.h — choosing the next token from one row's logits (Generate).
 *
 * Hugging Face's order of logits processors: repetition penalty (CTRL's:
 * a seen token's positive logit is divided by the penalty, a negative one
 * multiplied), then temperature, top-k, top-p; temperature 0 is greedy
 * (the first of equal maxima, as torch.argmax). The draw uses the row's
 * own generator (xoshiro256**, seeded through splitmix64), so a row's
 * tokens depend only on its logits and its seed: not on other rows, the
 * thread or the device.
 *
 * Pure C on host floats; any thread; touches only its arguments.
 */
#ifndef NNE_INFER_SAMPLE_H
#define NNE_INFER_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct nne_sample_opts {
  float temperature;        /* 0: greedy */
  uint32_t top_k;           /* 0: all */
  float top_p;              /* 0 or >= 1: all */
  float repetition_penalty; /* 0 or 1: off */
} nne_sample_opts_t;

typedef struct nne_rng {
  uint64_t s[4];
} nne_rng_t;

void nne_rng_seed(nne_rng_t *r, uint64_t seed);
uint64_t nne_rng_next(nne_rng_t *r);
/* Uniform in [0, 1), 53 bits. */
double nne_rng_uniform(nne_rng_t *r);

/* Scratch for nne_sample_next, for a vocabulary of V (caller-owned:
 * V floats and V ints). */
typedef struct nne_sample_scratch {
  float *scores;
  int32_t *idx;
} nne_sample_scratch_t;

/* The next token of a row from its V logits; `seen` (n_seen ids, any
 * order, repeats allowed) are the row's tokens so far (for the penalty).
 * *logprob gets the token's log-probability under the unprocessed logits
 * (temperature 1). Returns the id (0 <= id < V). */
int64_t nne_sample_next(const float *logits, size_t V,
                        const nne_sample_opts_t *o, const int64_t *seen,
                        size_t n_seen, nne_rng_t *rng,
                        nne_sample_scratch_t *sc, float *logprob);

#endif /* NNE_INFER_SAMPLE_H */
