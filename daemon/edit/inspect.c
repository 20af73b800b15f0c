/* inspect.c — see inspect.h. */
#include "edit/inspect.h"

#include <stdlib.h>
#include <string.h>

void nne_inspect_sizes(const nne_model_entry_t *e, nne_inspect_sizes_t *out) {
  memset(out, 0, sizeof *out);
  if (e->model == NULL)
    return;
  out->param_count = nne_model_param_count(e->model);
  out->param_bytes = nne_model_param_bytes(e->model);
  out->module_count = nne_model_module_count(e->model);
}

const nne_module_info_t *nne_inspect_module(const nne_model_entry_t *e,
                                            size_t i) {
  return e->model != NULL ? nne_model_module(e->model, i) : NULL;
}

int nne_inspect_resolve_module(const nne_model_entry_t *e, const char *field,
                               const char *name, int *module, nne_err_t *err) {
  if (e->names != NULL)
    return nne_names_resolve_module(e->names, field, name, module, err);
  *module = nne_model_module_find(e->model, name);
  if (*module < 0)
    return nne_err_set(err, NNE_ENOTFOUND, "%s: no module '%s'", field, name);
  return 0;
}

void nne_inspect_subtree(const nne_model_entry_t *e, int module, size_t *end) {
  /* Pre-order: a module's subtree is the run after it of deeper modules. */
  size_t n = nne_model_module_count(e->model), k;
  int depth0 = nne_model_module(e->model, (size_t)module)->depth;
  for (k = (size_t)module + 1;
       k < n && nne_model_module(e->model, k)->depth > depth0; k++)
    ;
  *end = k;
}

int nne_inspect_graph(const nne_model_entry_t *e, int module,
                      const nne_edit_set_t *set, nne_inspect_graph_t *out,
                      nne_err_t *err) {
  size_t i;
  int rc;

  memset(out, 0, sizeof *out);
  /* Listing a graph walks a few hundred nodes: cheap enough for the loop. */
  rc = nne_graph_get(e->model, module, set != NULL ? set->variant : NULL,
                     &out->owner, err);
  if (rc != 0)
    return rc;
  out->n_nodes = nne_graph_node_count(out->owner);
  out->nodes = calloc(out->n_nodes ? out->n_nodes : 1, sizeof *out->nodes);
  if (out->nodes == NULL) {
    nne_inspect_graph_free(out);
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  for (i = 0; i < out->n_nodes; i++)
    out->nodes[i] = nne_graph_node(out->owner, i);
  out->text = nne_graph_text(out->owner);
  out->path = nne_model_module(e->model, (size_t)module)->path;
  out->edited = nne_graph_edited(out->owner);
  return 0;
}

void nne_inspect_graph_free(nne_inspect_graph_t *g) {
  free(g->nodes);
  nne_graph_free(g->owner);
  memset(g, 0, sizeof *g);
}

void nne_inspect_operand(const nne_edit_t *edit, nne_dtype_t *dtype,
                         int64_t *shape, int *ndim) {
  int k;
  *ndim = 0;
  *dtype = NNE_DTYPE_INVALID;
  if (edit->operand == NULL)
    return;
  *dtype = nne_tensor_dtype(edit->operand);
  *ndim = nne_tensor_ndim(edit->operand);
  for (k = 0; k < *ndim && k < NNE_TENSOR_MAX_DIMS; k++)
    shape[k] = nne_tensor_shape(edit->operand)[k];
}
