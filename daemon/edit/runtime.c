/* runtime.c — see runtime.h. */
#include "edit/runtime.h"

#include <stdlib.h>
#include <string.h>

int nne_runtime_init(nne_runtime_t *rt, size_t n_hooks, size_t n_edits,
                     nne_err_t *err) {
  memset(rt, 0, sizeof *rt);
  rt->n_hooks = n_hooks;
  rt->n_edits = n_edits;
  rt->edit_start = calloc(n_hooks + 1, sizeof *rt->edit_start);
  rt->edit_idx = calloc(n_edits ? n_edits : 1, sizeof *rt->edit_idx);
  rt->capture = calloc(n_hooks ? n_hooks : 1, sizeof *rt->capture);
  rt->captured = calloc(n_hooks ? n_hooks : 1, sizeof *rt->captured);
  rt->edit_saves = calloc(n_edits ? n_edits : 1, sizeof *rt->edit_saves);
  if (!rt->edit_start || !rt->edit_idx || !rt->capture || !rt->captured ||
      !rt->edit_saves) {
    nne_runtime_free(rt);
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  return 0;
}

void nne_runtime_free(nne_runtime_t *rt) {
  size_t i;
  for (i = 0; rt->captured != NULL && i < rt->n_hooks; i++)
    nne_tensor_unref(rt->captured[i]);
  for (i = 0; rt->edit_saves != NULL && i < rt->n_edits; i++)
    nne_tensor_unref(rt->edit_saves[i]);
  free(rt->edit_start);
  free(rt->edit_idx);
  free(rt->capture);
  free(rt->captured);
  free(rt->edit_saves);
  rt->edit_start = rt->edit_idx = NULL;
  rt->capture = NULL;
  rt->captured = rt->edit_saves = NULL;
}

int nne_runtime_track(nne_runtime_t *rt, const nne_edit_t *edits,
                      const int *hook_of_edit, nne_err_t *err) {
  size_t i, *fill = calloc(rt->n_hooks + 1, sizeof *fill);
  if (fill == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  rt->edits = edits;
  memset(rt->edit_start, 0, (rt->n_hooks + 1) * sizeof *rt->edit_start);
  for (i = 0; i < rt->n_edits; i++)
    rt->edit_start[hook_of_edit[i] + 1]++;
  for (i = 0; i < rt->n_hooks; i++)
    rt->edit_start[i + 1] += rt->edit_start[i];
  for (i = 0; i < rt->n_edits; i++) {
    size_t h = (size_t)hook_of_edit[i];
    rt->edit_idx[rt->edit_start[h] + fill[h]++] = i;
  }
  free(fill);
  return 0;
}

/* A copy within the budget. */
static int take_copy(nne_runtime_t *rt, nne_tensor_t *v, nne_tensor_t **slot) {
  rt->used += nne_tensor_nbytes(v);
  if (rt->used > rt->budget)
    return nne_err_set(&rt->err, NNE_ERESOURCE,
                       "save: the saved tensors exceed the response limit of "
                       "%llu bytes (--max-response-bytes)",
                       (unsigned long long)rt->budget);
  return nne_tensor_clone(v, slot, &rt->err);
}

int nne_runtime_hook(void *ctx, int site, nne_tensor_t *value,
                     nne_tensor_t **replace) {
  nne_runtime_t *rt = ctx;
  nne_tensor_t *cur = value; /* borrowed until an edit makes a new one */
  size_t k, h;
  int rc = 0;

  if (rt->cancel != NULL && atomic_load(rt->cancel) != 0)
    return nne_err_set(&rt->err, NNE_ECANCELED,
                       "cancelled during the forward");
  if (site < 0 || (size_t)site >= rt->n_hooks)
    return 0;
  h = (size_t)site;
  for (k = rt->edit_start[h]; k < rt->edit_start[h + 1]; k++) {
    size_t ei = rt->edit_idx[k];
    const nne_edit_t *e = &rt->edits[ei];
    nne_tensor_t *next;
    if (e->op == NNE_EDIT_SAVE) {
      if (rt->edit_saves[ei] == NULL &&
          (rc = take_copy(rt, cur, &rt->edit_saves[ei])) != 0)
        goto fail;
      continue;
    }
    rc = nne_tensor_apply_edit(cur, e->op, e->operand, e->scalar, e->ranges,
                               e->n_ranges, &next, &rt->err);
    if (rc != 0) {
      nne_err_prefix(&rt->err, "edit_set %s: edits[%zu] (%s)",
                     rt->edit_set_id ? rt->edit_set_id : "?", ei,
                     e->site_text);
      goto fail;
    }
    if (cur != value)
      nne_tensor_unref(cur);
    cur = next;
  }
  if (rt->capture[h] && rt->captured[h] == NULL &&
      (rc = take_copy(rt, cur, &rt->captured[h])) != 0)
    goto fail;
  if (cur != value)
    *replace = cur; /* the engine takes this reference */
  return 0;
fail:
  if (cur != value)
    nne_tensor_unref(cur);
  return rc;
}
