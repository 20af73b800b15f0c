/* compiler.c — see compiler.h. */
#include "compiler.h"

#include <stdlib.h>
#include <string.h>

typedef struct gkey {
  int instance;
  int depth;
} gkey_t;

/* Deepest instance first; equal depths in tree (pre-order) order. */
static int cmp_group(const void *a, const void *b) {
  const gkey_t *x = a, *y = b;
  if (x->depth != y->depth)
    return y->depth - x->depth;
  return x->instance - y->instance;
}

int nne_compiler_group_by_hierarchy(const nne_model_t *m,
                                    const nne_names_site_t *sites, size_t n,
                                    nne_edit_group_t **groups,
                                    size_t *n_groups, nne_err_t *err) {
  gkey_t *keys;
  size_t i, k, ng = 0, *counts, *fill;
  nne_edit_group_t *g;
  size_t *items;

  *groups = NULL;
  *n_groups = 0;
  keys = calloc(n ? n : 1, sizeof *keys);
  if (keys == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  for (i = 0; i < n; i++) {
    const nne_module_info_t *mi = nne_model_module(m, (size_t)sites[i].module);
    if (mi == NULL) {
      free(keys);
      return nne_err_set(err, NNE_EINVAL, "site %zu: no module %d", i,
                         sites[i].module);
    }
    for (k = 0; k < ng; k++)
      if (keys[k].instance == sites[i].module)
        break;
    if (k == ng) {
      keys[ng].instance = sites[i].module;
      keys[ng].depth = mi->depth;
      ng++;
    }
  }
  qsort(keys, ng, sizeof *keys, cmp_group);
  /* One allocation: the groups, then every group's item list. */
  g = calloc(1, (ng ? ng : 1) * sizeof *g + (n ? n : 1) * sizeof *items +
                    2 * (ng ? ng : 1) * sizeof(size_t));
  if (g == NULL) {
    free(keys);
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  items = (size_t *)(g + (ng ? ng : 1));
  counts = items + (n ? n : 1);
  fill = counts + (ng ? ng : 1);
  for (i = 0; i < n; i++)
    for (k = 0; k < ng; k++)
      if (keys[k].instance == sites[i].module) {
        counts[k]++;
        break;
      }
  for (k = 0, i = 0; k < ng; k++) {
    g[k].instance = keys[k].instance;
    g[k].depth = keys[k].depth;
    g[k].items = items + i;
    i += counts[k];
  }
  for (i = 0; i < n; i++)
    for (k = 0; k < ng; k++)
      if (g[k].instance == sites[i].module) {
        g[k].items[fill[k]++] = i;
        g[k].n++;
        break;
      }
  free(keys);
  *groups = g;
  *n_groups = ng;
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int nne_compiler_plan(const nne_model_t *m, const nne_names_site_t *sites,
                      size_t n, nne_compile_plan_t *plan, nne_err_t *err) {
  nne_edit_group_t *groups = NULL;
  size_t ng = 0, g, j, i, keylen = 1, nk;
  const char **sorted = NULL;
  int rc;

  memset(plan, 0, sizeof *plan);
  rc = nne_compiler_group_by_hierarchy(m, sites, n, &groups, &ng, err);
  if (rc != 0)
    return rc;
  plan->n_items = n;
  plan->hooks = calloc(n ? n : 1, sizeof *plan->hooks);
  plan->engine_sites = calloc(n ? n : 1, sizeof *plan->engine_sites);
  plan->item_hook = calloc(n ? n : 1, sizeof *plan->item_hook);
  sorted = calloc(n ? n : 1, sizeof *sorted);
  if (!plan->hooks || !plan->engine_sites || !plan->item_hook || !sorted) {
    rc = nne_err_set(err, NNE_ENOMEM, "out of memory");
    goto out;
  }
  /* Hooks: groups deepest first; within a group by canonical form, so that
   * the numbering depends on the set alone. */
  for (g = 0; g < ng; g++) {
    size_t first = plan->n_hooks;
    for (j = 0; j < groups[g].n; j++) {
      const nne_names_site_t *s = &sites[groups[g].items[j]];
      size_t h;
      for (h = first; h < plan->n_hooks; h++)
        if (strcmp(plan->hooks[h].canonical, s->canonical) == 0)
          break;
      if (h == plan->n_hooks)
        plan->hooks[plan->n_hooks++] = *s;
    }
    /* insertion sort of this group's hooks by canonical form */
    for (i = first + 1; i < plan->n_hooks; i++)
      for (j = i; j > first && strcmp(plan->hooks[j - 1].canonical,
                                      plan->hooks[j].canonical) > 0;
           j--) {
        nne_names_site_t t = plan->hooks[j];
        plan->hooks[j] = plan->hooks[j - 1];
        plan->hooks[j - 1] = t;
      }
  }
  for (i = 0; i < plan->n_hooks; i++) {
    nne_site_t *e = &plan->engine_sites[i];
    e->module = plan->hooks[i].module;
    e->kind = (nne_site_kind_t)plan->hooks[i].kind;
    e->index = plan->hooks[i].index;
    e->node_kind = plan->hooks[i].node_kind;
    e->node_occurrence = plan->hooks[i].node_occurrence;
    sorted[i] = plan->hooks[i].canonical;
    keylen += strlen(plan->hooks[i].canonical) + 1;
  }
  for (i = 0; i < n; i++)
    for (j = 0; j < plan->n_hooks; j++)
      if (strcmp(plan->hooks[j].canonical, sites[i].canonical) == 0) {
        plan->item_hook[i] = (int)j;
        break;
      }
  /* The key: the sorted set (hook order is derived from it). */
  nk = plan->n_hooks;
  qsort(sorted, nk, sizeof *sorted, cmp_str);
  plan->key = malloc(keylen);
  if (plan->key == NULL) {
    rc = nne_err_set(err, NNE_ENOMEM, "out of memory");
    goto out;
  }
  plan->key[0] = '\0';
  {
    char *p = plan->key;
    for (i = 0; i < nk; i++) {
      size_t l = strlen(sorted[i]);
      memcpy(p, sorted[i], l);
      p[l] = '\n';
      p += l + 1;
    }
    *p = '\0';
  }
out:
  free(groups);
  free(sorted);
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
