/* inspect.h — what a loaded model and its edit sets look like, for the
 * Models service: the module tree, a module's subtree, a module's graph
 * (pristine, or as an edit set's backend runs it), an edit's operand.
 *
 * The RPC handlers never call into the engine themselves (rpc/rpc.h): they
 * read these views and encode them. Every function takes a model entry
 * whose model the caller holds (infer/hold.h or registry acquire), and
 * every pointer returned is borrowed from that model or set, valid while
 * it is held. Loop thread.
 */
#ifndef NNE_EDIT_INSPECT_H
#define NNE_EDIT_INSPECT_H

#include <stddef.h>
#include <stdint.h>

#include "edit/editor.h"
#include "engine/engine.h"
#include "base/error.h"
#include "registry.h"

/* Sizes for ModelInfo (zeros when the model is not in memory). */
typedef struct nne_inspect_sizes {
  uint64_t param_count, param_bytes;
  size_t module_count;
} nne_inspect_sizes_t;
void nne_inspect_sizes(const nne_model_entry_t *e, nne_inspect_sizes_t *out);

/* Module i of the model (tree order), or NULL. */
const nne_module_info_t *nne_inspect_module(const nne_model_entry_t *e,
                                            size_t i);

/* A module by any spelling (standard name, alias, raw path; the raw path
 * only when the model has no names): NNE_ENOTFOUND naming `field`. */
int nne_inspect_resolve_module(const nne_model_entry_t *e, const char *field,
                               const char *name, int *module, nne_err_t *err);

/* The subtree of `module`: modules [module, *end) in tree order. */
void nne_inspect_subtree(const nne_model_entry_t *e, int module, size_t *end);

/* One module's graph, as a plain view: nodes point inside `owner`, which
 * nne_inspect_graph_free releases. */
typedef struct nne_inspect_graph {
  nne_graph_t *owner;
  const nne_graph_node_t **nodes;
  size_t n_nodes;
  const char *text;      /* the graph printed */
  const char *path;      /* the module's raw path */
  int edited;            /* the set's backend inserted hooks in it */
} nne_inspect_graph_t;

/* The graph of `module`, pristine (set NULL) or as set's backend runs it. */
int nne_inspect_graph(const nne_model_entry_t *e, int module,
                      const nne_edit_set_t *set, nne_inspect_graph_t *out,
                      nne_err_t *err);
void nne_inspect_graph_free(nne_inspect_graph_t *g);

/* An edit's operand: dtype and shape (ndim 0 and NNE_DTYPE_INVALID when
 * the edit has none). shape has room for NNE_TENSOR_MAX_DIMS. */
void nne_inspect_operand(const nne_edit_t *edit, nne_dtype_t *dtype,
                         int64_t *shape, int *ndim);

#endif /* NNE_EDIT_INSPECT_H */
