/* backend.h — the one way a request gets its compiled backend: look it up,
 * or build it once, then cache it.
 *
 * Forward (saves), Trace (the sites its graph touches) and Edits.Apply (the
 * edits' sites) all need a variant of the model's forward with hooks at a
 * set of sites (edit/compiler.h). They share this path:
 *
 *   loop      nne_infer_backend_plan()    hooks = the edit set's, then the
 *                                         request's sites; the structure is
 *                                         looked up in the model's backend
 *                                         cache, or the request joins the
 *                                         build of it already in flight, or
 *                                         registers a new one
 *   executor  nne_infer_backend_ready()   the variant: from the cache, or
 *                                         built — once per structure: the
 *                                         first joiner to get here builds,
 *                                         the others wait and share it
 *   loop      nne_infer_backend_commit()  a new variant (and a hook order a
 *                                         Trace learnt) goes into the cache
 *                                         while the model stays LOADED
 *   loop      nne_infer_backend_free()
 *
 * Two requests for the same new backend therefore build it once, whatever
 * the number of executor threads (tests/unit/daemon/infer/test_backend.c).
 * The request must hold the model (registry acquire) from plan to free.
 */
#ifndef NNE_INFER_BACKEND_H
#define NNE_INFER_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "edit/backend_cache.h"
#include "edit/compiler.h"
#include "edit/editor.h"
#include "edit/runtime.h"
#include "engine/engine.h"
#include "base/error.h"
#include "names/names.h"
#include "registry.h"

typedef struct nne_infer_backend {
  nne_compile_plan_t plan;     /* the set's hooks, then the sites' */
  bool own_plan;               /* else it is the edit set's */
  size_t n_set_hooks;          /* hooks of the set at the front of the plan */
  nne_variant_t *variant;      /* a reference, once known */
  bool hit;                    /* the cache (or the set) had it at plan time */
  nne_backend_build_t *build;  /* on a miss: the build joined */
  bool built;                  /* this request's ready() compiled it */
  double build_ms;
  char digest[17];             /* of plan.key, for results */
  int *order;                  /* hook firing order (Trace), or NULL */
  bool learnt_order;           /* probed here: commit keeps it */
  const char *method;          /* root method copied; NULL: forward */
} nne_infer_backend_t;

/* Plans (loop thread): hooks for the edit set's sites (set may be NULL)
 * followed by `n` request sites. With no request sites the set's own plan
 * and variant serve (a hit). m is the held model. On failure bk holds
 * nothing and needs no free. */
int nne_infer_backend_plan(nne_infer_backend_t *bk, nne_model_entry_t *e,
                           nne_model_t *m, const nne_edit_set_t *set,
                           const nne_names_site_t *sites, size_t n,
                           nne_err_t *err);

/* The same for a copy of another root method of the model (`method`,
 * borrowed for bk's life; NULL or "forward": plan): Generate's cached
 * steps. Such a backend is never the edit set's own (a set's variant copies
 * forward) and its cache key names the method. */
int nne_infer_backend_plan_method(nne_infer_backend_t *bk,
                                  nne_model_entry_t *e, nne_model_t *m,
                                  const nne_edit_set_t *set,
                                  const nne_names_site_t *sites, size_t n,
                                  const char *method, nne_err_t *err);

/* The hook of request site i / of the set's edit k, in bk's plan. */
int nne_infer_backend_site_hook(const nne_infer_backend_t *bk, size_t i);
int nne_infer_backend_edit_hook(const nne_infer_backend_t *bk,
                                const nne_edit_set_t *set, size_t k);

/* The per-request hook context for bk's plan (edit/runtime.h): the set's
 * edits (set may be NULL) tracked at their hooks in this plan; nothing is
 * captured yet. Free with nne_runtime_free. Loop or executor thread. */
int nne_infer_backend_runtime(const nne_infer_backend_t *bk,
                              const nne_edit_set_t *set, nne_runtime_t *rt,
                              nne_err_t *err);

/* The cached hook firing order, copied into bk->order when the cache
 * knows it (Trace's last check needs it); loop thread, after plan. */
void nne_infer_backend_known_order(nne_infer_backend_t *bk,
                                   nne_model_entry_t *e);

/* Makes bk->variant ready (executor thread): joins the build, building it
 * if nobody has. A failed build fails every joiner with the same error. */
int nne_infer_backend_ready(nne_infer_backend_t *bk, nne_model_t *m,
                            nne_err_t *err);

/* Loop thread, after the job: caches a built variant and a learnt order
 * while the model is LOADED, and ends the build's findability. Returns the
 * cache entry holding bk's structure, or NULL (not cached: the model is
 * unloading, the build failed or never ran, or the cache is full of pinned
 * backends). */
nne_backend_t *nne_infer_backend_commit(nne_infer_backend_t *bk,
                                        nne_model_entry_t *e);

/* Frees what bk holds (loop thread); e is the entry it was planned on. */
void nne_infer_backend_free(nne_infer_backend_t *bk, nne_model_entry_t *e);

#endif /* NNE_INFER_BACKEND_H */
