/* compiler.h — from a set of sites to the backend that hooks them.
 *
 * The seed's vocabulary, kept recognisable:
 *   group_by_hierarchy  groups the sites an edit set (or a request) touches
 *                       by module instance and orders the groups deepest
 *                       first, by true module depth in the tree (not by
 *                       string order): a module's edited code must exist
 *                       before its parent is compiled around it.
 *   plan                the backend's hook list in that order, each input
 *                       site's hook id, and the structure key (the
 *                       canonical sites in hook order) under which the
 *                       backend is cached.
 *   get_backend         the cached backend for the key, or a build job.
 *   edit tracker        which hook id belongs to which instance, site and
 *                       edits (editor.h keeps one per edit set; a request
 *                       builds its own for its saves).
 *
 * Hook numbering depends only on the *set* of sites, never on the order in
 * which a request listed them, so every holder of a key agrees on what hook
 * id k means.
 */
#ifndef NNE_COMPILER_H
#define NNE_COMPILER_H

#include <stddef.h>

#include "edit/backend_cache.h"
#include "engine/engine.h"
#include "base/error.h"
#include "names/names.h"

/* One group: the sites of one module instance. */
typedef struct nne_edit_group {
  int instance;        /* module index */
  int depth;           /* its depth in the module tree */
  size_t n;
  size_t *items;       /* indices into the sites given to group_by_hierarchy */
} nne_edit_group_t;

/* Groups sites by instance, deepest instance first (ties: tree order).
 * *groups is one allocation (free with free()); items point inside it. */
int nne_compiler_group_by_hierarchy(const nne_model_t *m,
                                    const nne_names_site_t *sites, size_t n,
                                    nne_edit_group_t **groups,
                                    size_t *n_groups, nne_err_t *err);

typedef struct nne_compile_plan {
  size_t n_hooks;
  nne_names_site_t *hooks;   /* hook id -> site (unique canonical sites) */
  nne_site_t *engine_sites;  /* hook id -> the engine's form (points into hooks) */
  int *item_hook;            /* input site i -> hook id */
  size_t n_items;
  char *key;                 /* canonical sites in hook order, '\n'-joined */
} nne_compile_plan_t;

/* Plans the backend for n sites (duplicates allowed: they share a hook). */
int nne_compiler_plan(const nne_model_t *m, const nne_names_site_t *sites,
                      size_t n, nne_compile_plan_t *plan, nne_err_t *err);
void nne_compiler_plan_free(nne_compile_plan_t *plan);

/* The cached backend for the plan (counted as a hit), or NULL: then the
 * caller builds nne_variant_build(model, plan->engine_sites, plan->n_hooks)
 * off the loop and nne_backend_cache_put()s it. */
nne_backend_t *nne_compiler_get_backend(nne_backend_cache_t *cache,
                                        const nne_compile_plan_t *plan);

#endif /* NNE_COMPILER_H */
