/* backend.c — see backend.h. */
#include "infer/backend.h"

#include <stdlib.h>
#include <string.h>

#include "base/fault.h"
#include "executor.h" /* nne_now_ns */
#include "base/log.h"

int nne_infer_backend_plan(nne_infer_backend_t *bk, nne_model_entry_t *e,
                           nne_model_t *m, const nne_edit_set_t *set,
                           const nne_names_site_t *sites, size_t n,
                           nne_err_t *err) {
  return nne_infer_backend_plan_method(bk, e, m, set, sites, n, NULL, err);
}

int nne_infer_backend_plan_method(nne_infer_backend_t *bk,
                                  nne_model_entry_t *e, nne_model_t *m,
                                  const nne_edit_set_t *set,
                                  const nne_names_site_t *sites, size_t n,
                                  const char *method, nne_err_t *err) {
  size_t n_set = set != NULL ? set->plan.n_hooks : 0, k;
  nne_names_site_t *all;
  nne_backend_t *b;
  int rc;

  memset(bk, 0, sizeof *bk);
  bk->n_set_hooks = n_set;
  if (method != NULL && strcmp(method, "forward") == 0)
    method = NULL;
  bk->method = method;
  if (n == 0 && set != NULL && method == NULL) {
    /* The edit set's own backend: its plan, its (pinned) variant. */
    bk->plan = set->plan;
    bk->variant = nne_variant_ref(set->variant);
    bk->hit = true;
    nne_backend_key_digest(bk->plan.key, bk->digest);
    return 0;
  }
  all = calloc(n_set + n ? n_set + n : 1, sizeof *all);
  if (all == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  for (k = 0; k < n_set; k++)
    all[k] = set->plan.hooks[k];
  for (k = 0; k < n; k++)
    all[n_set + k] = sites[k];
  rc = nne_compiler_plan(m, all, n_set + n, &bk->plan, err);
  free(all);
  if (rc != 0)
    return rc;
  bk->own_plan = true;
  if (method != NULL) {
    /* A copy of another root method is another backend: its name ends
     * the key. */
    size_t kl = strlen(bk->plan.key), ml = strlen(method);
    char *key = realloc(bk->plan.key, kl + ml + 3);
    if (key == NULL) {
      nne_compiler_plan_free(&bk->plan);
      bk->own_plan = false;
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
    }
    key[kl] = '\n';
    key[kl + 1] = '@';
    memcpy(key + kl + 2, method, ml + 1);
    bk->plan.key = key;
  }
  nne_backend_key_digest(bk->plan.key, bk->digest);
  b = nne_compiler_get_backend(&e->backends, &bk->plan);
  if (b != NULL) {
    /* Only the variant is kept (a reference): the entry may be evicted
     * while the job runs. */
    bk->variant = nne_variant_ref(b->variant);
    bk->hit = true;
    return 0;
  }
  bk->build = nne_backend_build_join(&e->backends, bk->plan.key);
  if (bk->build == NULL) {
    nne_compiler_plan_free(&bk->plan);
    bk->own_plan = false;
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  return 0;
}

int nne_infer_backend_site_hook(const nne_infer_backend_t *bk, size_t i) {
  return bk->plan.item_hook[bk->n_set_hooks + i];
}

int nne_infer_backend_edit_hook(const nne_infer_backend_t *bk,
                                const nne_edit_set_t *set, size_t k) {
  /* The set's hooks come first in the plan, in the set's hook order: edit
   * k's hook in the set is item set->edits[k].hook of this plan. */
  if (!bk->own_plan)
    return set->edits[k].hook;
  return bk->plan.item_hook[set->edits[k].hook];
}

int nne_infer_backend_runtime(const nne_infer_backend_t *bk,
                              const nne_edit_set_t *set, nne_runtime_t *rt,
                              nne_err_t *err) {
  size_t n_edits = set != NULL ? set->n_edits : 0, k;
  int *hooks;
  int rc = nne_runtime_init(rt, bk->plan.n_hooks, n_edits, err);
  if (rc != 0 || set == NULL)
    return rc;
  hooks = calloc(n_edits ? n_edits : 1, sizeof *hooks);
  if (hooks == NULL) {
    nne_runtime_free(rt);
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  for (k = 0; k < n_edits; k++)
    hooks[k] = nne_infer_backend_edit_hook(bk, set, k);
  rc = nne_runtime_track(rt, set->edits, hooks, err);
  free(hooks);
  if (rc != 0)
    nne_runtime_free(rt);
  else
    rt->edit_set_id = set->id;
  return rc;
}

void nne_infer_backend_known_order(nne_infer_backend_t *bk,
                                   nne_model_entry_t *e) {
  nne_backend_t *b;
  size_t n = bk->plan.n_hooks;
  if (bk->order != NULL)
    return;
  for (b = e->backends.entries; b != NULL; b = b->next)
    if (strcmp(b->key, bk->plan.key) == 0)
      break;
  if (b == NULL || b->hook_order == NULL || b->n_hooks != n)
    return;
  /* A copy: the entry may be evicted while the job runs. */
  bk->order = malloc((n ? n : 1) * sizeof *bk->order);
  if (bk->order != NULL)
    memcpy(bk->order, b->hook_order, n * sizeof *bk->order);
}

int nne_infer_backend_ready(nne_infer_backend_t *bk, nne_model_t *m,
                            nne_err_t *err) {
  nne_backend_build_t *b = bk->build;
  int rc;

  if (bk->variant != NULL)
    return 0;
  if (b == NULL)
    return nne_err_set(err, NNE_EINTERNAL, "backend: not planned");
  /* Whoever takes the lock first builds; the others find it done. */
  pthread_mutex_lock(&b->mu);
  if (!atomic_load_explicit(&b->done, memory_order_acquire)) {
    uint64_t t0 = nne_now_ns();
    if (NNE_FAULT(NNE_FAULT_BACKEND_BUILD))
      b->rc = nne_err_set(&b->err, NNE_EINTERNAL,
                          "building the backend: injected fault");
    else
      b->rc = nne_variant_build_method(
          m, bk->method != NULL ? bk->method : "forward",
          bk->plan.engine_sites, bk->plan.n_hooks, &b->variant, &b->err);
    b->build_ms = (double)(nne_now_ns() - t0) / 1e6;
    atomic_store_explicit(&b->done, true, memory_order_release);
    bk->built = true;
    bk->build_ms = b->build_ms;
  }
  rc = b->rc;
  if (rc == 0)
    bk->variant = nne_variant_ref(b->variant);
  else
    *err = b->err;
  pthread_mutex_unlock(&b->mu);
  return rc;
}

nne_backend_t *nne_infer_backend_commit(nne_infer_backend_t *bk,
                                        nne_model_entry_t *e) {
  nne_backend_build_t *b = bk->build;
  nne_backend_t *entry = NULL;
  nne_err_t cerr;

  if (b != NULL && atomic_load_explicit(&b->done, memory_order_acquire)) {
    /* Its result is final: later misses look in the cache (or, failed,
     * start over). */
    nne_backend_build_unlist(&e->backends, b);
    if (bk->built && b->rc == 0)
      e->backends.builds++;
  }
  /* Nothing goes into the cache of a model that is unloading: the unload
   * clears it as soon as this request releases the model. */
  if (e->state != NNE_MODEL_LOADED || !bk->own_plan || bk->variant == NULL)
    return NULL;
  if (nne_backend_cache_put(&e->backends, bk->plan.key, bk->variant,
                            bk->built ? bk->build_ms : 0, &entry,
                            &cerr) != 0) {
    /* A cache full of pinned backends only means this one is not kept. */
    nne_log_debug("backend %s not cached: %s", bk->digest, cerr.msg);
    return NULL;
  }
  if (bk->learnt_order && bk->order != NULL && entry->hook_order == NULL) {
    /* The order depends on the structure only: later traces on this
     * backend skip the probe. */
    entry->hook_order = bk->order;
    entry->n_hooks = bk->plan.n_hooks;
    bk->order = NULL;
  }
  return entry;
}

void nne_infer_backend_free(nne_infer_backend_t *bk, nne_model_entry_t *e) {
  if (bk->build != NULL)
    nne_backend_build_release(&e->backends, bk->build);
  if (bk->own_plan)
    nne_compiler_plan_free(&bk->plan);
  nne_variant_unref(bk->variant);
  free(bk->order);
  memset(bk, 0, sizeof *bk);
}
