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
 * Entries are reference counted: the cache holds one reference while the
 * entry is listed, and every pin is a reference too. Clearing the cache (the
 * model unloads, the daemon stops) or evicting unlists the entry and drops
 * the cache's reference; a pinned entry then lives on, unlisted, until its
 * last pin goes. So an edit set's backend pointer is valid for the set's
 * whole life whatever happens to the cache (issue 8: a set created while
 * its model unloaded pointed into a cleared cache and crashed Drop).
 *
 * Loop thread only (the variant handles inside are thread-safe; the table
 * is not). Building runs on an executor: get() reports a miss, the caller
 * builds off the loop and put()s the result.
 */
#ifndef NNE_BACKEND_CACHE_H
#define NNE_BACKEND_CACHE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/prom.h"
#include "engine/engine.h"
#include "base/error.h"

typedef struct nne_backend {
  char *key;              /* canonical sites in hook order, '\n'-joined */
  char digest[17];        /* 64-bit FNV-1a of the key, hex: for display */
  nne_variant_t *variant;
  size_t bytes;
  double compile_ms;
  int pins;               /* edit sets holding it */
  int refs;               /* the cache's (while listed) + one per pin */
  bool listed;            /* in the cache's list (counts in its bytes) */
  /* Each hook's position among first firings in a forward (-1: it did not
   * fire), learnt by a Trace's probe and kept here so that the probe runs
   * once per backend; NULL until then. n_hooks entries (owned). */
  int *hook_order;
  size_t n_hooks;
  uint64_t last_used;
  struct nne_backend *next;
} nne_backend_t;

/* A build of one key in flight. Requests that miss the cache while the same
 * structure is being built join that build instead of starting their own
 * (single flight): on the executor the first to get there builds, the
 * others wait on `mu` and share its result (infer/backend.h). The loop owns
 * the list and the reference count. */
typedef struct nne_backend_build {
  char *key;
  int refs;                 /* loop only: the requests that joined */
  bool listed;              /* still findable by new requests */
  pthread_mutex_t mu;       /* executors: one builds, the others wait */
  atomic_bool done;         /* set (release) once what follows is final */
  int rc;                   /* once done */
  nne_err_t err;            /* once done, when rc != 0 */
  nne_variant_t *variant;   /* once done, when rc == 0 */
  double build_ms;
  struct nne_backend_build *next;
} nne_backend_build_t;

typedef struct nne_backend_cache {
  nne_backend_t *entries;
  nne_backend_build_t *building; /* builds in flight, by key */
  uint64_t builds;               /* backends actually compiled */
  size_t capacity_bytes;
  size_t bytes;
  size_t count;
  uint64_t clock;
  uint64_t hits, misses, evictions;
  double compile_ms_total, compile_ms_last;
  nne_prom_hist_t compile_hist;  /* seconds per compiled backend */
} nne_backend_cache_t;

void nne_backend_cache_init(nne_backend_cache_t *c, size_t capacity_bytes);
/* Unlists every entry and drops the cache's references: unpinned entries
 * are freed now, pinned ones when their last pin goes. */
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

/* Pins b (a reference that keeps it listed until unpinned, and alive even
 * if the cache is cleared). */
void nne_backend_pin(nne_backend_t *b);
/* Unpins and drops the pin's reference: b may be freed, do not use it
 * after. Returns the bytes the cache released when that was the last pin
 * and the entry was removed from the cache (drop = true removes it at once
 * instead of leaving it for LRU reuse), else 0. c must be the cache b was
 * put in (b may have been unlisted since). */
size_t nne_backend_unpin(nne_backend_cache_t *c, nne_backend_t *b, bool drop);

/* The build of key in flight, joined (a reference for the caller), or a new
 * one registered for it; NULL when out of memory. Loop thread. */
nne_backend_build_t *nne_backend_build_join(nne_backend_cache_t *c,
                                            const char *key);
/* Makes the build unfindable (its result went into the cache, or failed):
 * the next miss starts a new one. Loop thread; idempotent. */
void nne_backend_build_unlist(nne_backend_cache_t *c, nne_backend_build_t *b);
/* Drops a reference (loop thread); the last unlists and frees the build. c
 * is the cache it was joined in. */
void nne_backend_build_release(nne_backend_cache_t *c, nne_backend_build_t *b);

/* Entries pinned by at least one edit set. */
size_t nne_backend_cache_pinned(const nne_backend_cache_t *c);

#endif /* NNE_BACKEND_CACHE_H */
