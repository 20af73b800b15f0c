/* compiler.c — see compiler.h. */
#include "edit/compiler.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The order of group_by_hierarchy, packed into one 64-bit integer per
 * site so that ordering n sites is a sort of integers, without a call per
 * comparison: a request may touch every module output (163 sites on GPT-2
 * small), the plan is made per request on the loop thread, and a cache hit
 * should cost microseconds. Ascending order of the packed key is: deepest
 * instance first, then tree (pre-order) order, then the caller's order.
 *   bits 48..63  k_depth_max - depth
 *   bits 24..47  instance (module index)
 *   bits  0..23  item (index in the caller's sites)                       */
#define K_FIELD_MAX ((1u << 24) - 1)
#define K_DEPTH_MAX 0xFFFFu

static uint64_t key_pack(int depth, int instance, size_t item) {
  return ((uint64_t)(K_DEPTH_MAX - (unsigned)depth) << 48) |
         ((uint64_t)(unsigned)instance << 24) | (uint64_t)item;
}
static int key_instance(uint64_t k) {
  return (int)((k >> 24) & K_FIELD_MAX);
}
static int key_depth(uint64_t k) {
  return (int)(K_DEPTH_MAX - (k >> 48));
}
static size_t key_item(uint64_t k) {
  return (size_t)(k & K_FIELD_MAX);
}

/* In-place heapsort: O(n log n) whatever the input, no allocation. */
static void sift_down(uint64_t *a, size_t root, size_t n) {
  for (;;) {
    size_t c = 2 * root + 1;
    uint64_t t;
    if (c >= n)
      return;
    if (c + 1 < n && a[c + 1] > a[c])
      c++;
    if (a[root] >= a[c])
      return;
    t = a[root];
    a[root] = a[c];
    a[c] = t;
    root = c;
  }
}

static void sort_keys(uint64_t *a, size_t n) {
  size_t i;
  uint64_t t;
  for (i = n / 2; i-- > 0;)
    sift_down(a, i, n);
  for (i = n; i-- > 1;) {
    t = a[0];
    a[0] = a[i];
    a[i] = t;
    sift_down(a, 0, i);
  }
}

/* The sites' keys, sorted; NNE_EINVAL for a module that does not exist,
 * NNE_ERESOURCE past what a key can hold (far beyond any request limit). */
static int sorted_keys(const nne_model_t *m, const nne_names_site_t *sites,
                       size_t n, uint64_t **out, nne_err_t *err) {
  uint64_t *keys;
  size_t i;
  *out = NULL;
  if (n > K_FIELD_MAX)
    return nne_err_set(err, NNE_ERESOURCE, "%zu sites: at most %u", n,
                       K_FIELD_MAX);
  keys = malloc((n ? n : 1) * sizeof *keys);
  if (keys == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  for (i = 0; i < n; i++) {
    const nne_module_info_t *mi = nne_model_module(m, (size_t)sites[i].module);
    if (mi == NULL) {
      free(keys);
      return nne_err_set(err, NNE_EINVAL, "site %zu: no module %d", i,
                         sites[i].module);
    }
    if (sites[i].module > (int)K_FIELD_MAX || mi->depth < 0 ||
        mi->depth > (int)K_DEPTH_MAX) {
      free(keys);
      return nne_err_set(err, NNE_ERESOURCE,
                         "site %zu: module %d at depth %d is beyond the "
                         "compiler's bounds",
                         i, sites[i].module, mi->depth);
    }
    keys[i] = key_pack(mi->depth, sites[i].module, i);
  }
  sort_keys(keys, n);
  *out = keys;
  return 0;
}

int nne_compiler_group_by_hierarchy(const nne_model_t *m,
                                    const nne_names_site_t *sites, size_t n,
                                    nne_edit_group_t **groups, size_t *n_groups,
                                    nne_err_t *err) {
  uint64_t *keys;
  size_t i, ng = 0;
  nne_edit_group_t *g;
  size_t *items;
  int rc;

  *groups = NULL;
  *n_groups = 0;
  rc = sorted_keys(m, sites, n, &keys, err);
  if (rc != 0)
    return rc;
  for (i = 0; i < n; i++)
    if (i == 0 || key_instance(keys[i]) != key_instance(keys[i - 1]))
      ng++;
  /* One allocation: the groups, then every group's item list. */
  g = calloc(1, (ng ? ng : 1) * sizeof *g + (n ? n : 1) * sizeof *items);
  if (g == NULL) {
    free(keys);
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  items = (size_t *)(g + (ng ? ng : 1));
  ng = 0;
  for (i = 0; i < n; i++) {
    if (i == 0 || key_instance(keys[i]) != key_instance(keys[i - 1])) {
      g[ng].instance = key_instance(keys[i]);
      g[ng].depth = key_depth(keys[i]);
      g[ng].items = items + i;
      ng++;
    }
    items[i] = key_item(keys[i]);
    g[ng - 1].n++;
  }
  free(keys);
  *groups = g;
  *n_groups = ng;
  return 0;
}

int nne_compiler_plan(const nne_model_t *m, const nne_names_site_t *sites,
                      size_t n, nne_compile_plan_t *plan, nne_err_t *err) {
  uint64_t *keys = NULL;
  size_t i, j, run, keylen = 1, nk;
  int rc;

  memset(plan, 0, sizeof *plan);
  rc = sorted_keys(m, sites, n, &keys, err);
  if (rc != 0)
    return rc;
  plan->n_items = n;
  /* Not zeroed: every hook kept is assigned whole below, and zeroing n
   * sites of ~750 bytes would be most of a 163-site plan's time. */
  plan->hooks = malloc((n ? n : 1) * sizeof *plan->hooks);
  plan->engine_sites = calloc(n ? n : 1, sizeof *plan->engine_sites);
  plan->item_hook = calloc(n ? n : 1, sizeof *plan->item_hook);
  if (!plan->hooks || !plan->engine_sites || !plan->item_hook) {
    rc = nne_err_set(err, NNE_ENOMEM, "out of memory");
    goto out;
  }
  /* Hooks: the groups of group_by_hierarchy (deepest first), within a
   * group by canonical form, so that the numbering depends on the set
   * alone; equal canonical sites (duplicates) are adjacent and share one
   * hook. */
  for (run = 0; run < n; run = i) {
    /* This instance's sites (a handful): insertion sort by canonical form,
     * then the caller's order, which keys[] already has. */
    for (i = run + 1; i < n && key_instance(keys[i]) == key_instance(keys[run]);
         i++)
      for (j = i; j > run && strcmp(sites[key_item(keys[j - 1])].canonical,
                                    sites[key_item(keys[j])].canonical) > 0;
           j--) {
        uint64_t t = keys[j];
        keys[j] = keys[j - 1];
        keys[j - 1] = t;
      }
  }
  for (i = 0; i < n; i++) {
    const nne_names_site_t *s = &sites[key_item(keys[i])];
    if (i == 0 || key_instance(keys[i]) != key_instance(keys[i - 1]) ||
        strcmp(s->canonical, sites[key_item(keys[i - 1])].canonical) != 0)
      plan->hooks[plan->n_hooks++] = *s;
    plan->item_hook[key_item(keys[i])] = (int)(plan->n_hooks - 1);
  }
  for (i = 0; i < plan->n_hooks; i++) {
    nne_site_t *e = &plan->engine_sites[i];
    e->module = plan->hooks[i].module;
    e->kind = (nne_site_kind_t)plan->hooks[i].kind;
    e->index = plan->hooks[i].index;
    e->node_kind = plan->hooks[i].node_kind;
    e->node_occurrence = plan->hooks[i].node_occurrence;
    keylen += strlen(plan->hooks[i].canonical) + 1;
  }
  /* The key: the canonical sites in hook order, which is a function of the
   * set alone (a second sort, by string, would cost more than the rest of
   * the plan at a hundred sites). */
  nk = plan->n_hooks;
  plan->key = malloc(keylen);
  if (plan->key == NULL) {
    rc = nne_err_set(err, NNE_ENOMEM, "out of memory");
    goto out;
  }
  plan->key[0] = '\0';
  {
    char *p = plan->key;
    for (i = 0; i < nk; i++) {
      size_t l = strlen(plan->hooks[i].canonical);
      memcpy(p, plan->hooks[i].canonical, l);
      p[l] = '\n';
      p += l + 1;
    }
    *p = '\0';
  }
out:
  free(keys);
  if (rc != 0)
    nne_compiler_plan_free(plan);
  return rc;
}

void nne_compiler_plan_free(nne_compile_plan_t *plan) {
  free(plan->hooks);
  free(plan->engine_sites);
  free(plan->item_hook);
  free(plan->key);
  memset(plan, 0, sizeof *plan);
}

nne_backend_t *nne_compiler_get_backend(nne_backend_cache_t *cache,
                                        const nne_compile_plan_t *plan) {
  return nne_backend_cache_get(cache, plan->key);
}
