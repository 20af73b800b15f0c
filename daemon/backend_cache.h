/* backend_cache.h — compiled backends of one model, cached by structure.
 *
 * A backend is a variant of the model's forward (engine.h): a copy of the
 * graph with hooks at a set of sites, sharing the model's weights. What is
 * compiled is only the *structure* — which sites — so every edit set and
 * every Forward/Trace that touches the same sites reuses one backend,
 * whatever tensors or scalars they carry. The key is the list of
 * canonical sites in hook order (compiler.h), a function of the set alone.
 *
 * The cache is bounded by bytes (what the backends hold beyond the weights)
 * and evicts the least recently used entry that nobody pins. Edit sets pin
 * their backend for as long as they exist; a request that only needs a
 * backend for one call holds an engine reference to the variant instead, so
 * an eviction never pulls a backend out from under a running forward.
 *
 * Loop thread only (the variant handles inside are thread-safe; the table
 * is not). Building runs on an executor: get() reports a miss, the caller
 * builds off the loop and put()s the result.
 */
#ifndef NNE_BACKEND_CACHE_H
#define NNE_BACKEND_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "base/error.h"

typedef struct nne_backend {
  char *key;              /* canonical sites in hook order, '\n'-joined */
  char digest[17];        /* 64-bit FNV-1a of the key, hex: for display */
  nne_variant_t *variant;
  size_t bytes;
  double compile_ms;
  int pins;               /* edit sets holding it */
  /* Each hook's position among first firings in a forward (-1: it did not
   * fire), learnt by a Trace's probe and kept here so that the probe runs
   * once per backend; NULL until then. n_hooks entries (owned). */
  int *hook_order;
  size_t n_hooks;
  uint64_t last_used;
  struct nne_backend *next;
} nne_backend_t;

typedef struct nne_backend_cache {
  nne_backend_t *entries;
  size_t capacity_bytes;
  size_t bytes;
  size_t count;
  uint64_t clock;
  uint64_t hits, misses, evictions;
  double compile_ms_total, compile_ms_last;
} nne_backend_cache_t;

void nne_backend_cache_init(nne_backend_cache_t *c, size_t capacity_bytes);
/* Drops every entry (pinned or not): the model is going away. */
void nne_backend_cache_clear(nne_backend_cache_t *c);

/* Hex digest of a key (17 bytes with the NUL). */
void nne_backend_key_digest(const char *key, char out[17]);

/* The entry for key, or NULL (a miss). Counts hits and misses. */
nne_backend_t *nne_backend_cache_get(nne_backend_cache_t *c, const char *key);

/* Adds a freshly built variant (the cache takes its own reference) and
 * returns the entry; if the key is already there (a concurrent build), the
 * existing entry is returned and the new variant is not kept. Evicts
 * unpinned entries, least recently used first, to stay within capacity;
 * fails with NNE_ERESOURCE when pinned entries alone would exceed it
 * (nothing is added then). */
int nne_backend_cache_put(nne_backend_cache_t *c, const char *key,
                          nne_variant_t *v, double compile_ms,
                          nne_backend_t **out, nne_err_t *err);

void nne_backend_pin(nne_backend_t *b);
/* Unpins; returns the bytes freed when that was the last pin and the entry
 * was removed (drop = true removes it at once instead of leaving it for LRU
 * reuse), else 0. */
size_t nne_backend_unpin(nne_backend_cache_t *c, nne_backend_t *b, bool drop);

/* Entries pinned by at least one edit set. */
size_t nne_backend_cache_pinned(const nne_backend_cache_t *c);

#endif /* NNE_BACKEND_CACHE_H */
