/* graph.c — nnedit.v1.Models/Graph: one module's forward graph, pristine
 * or as an edit set's backend runs it. */
#include "internal.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnedit/v1/models.pb.h"

#define M_GRAPH "/nnedit.v1.Models/Graph"

_Static_assert(NNE__FIELD_SIZE(nnedit_v1_GraphRequest, module) ==
                   NNE_CLIENT_MODULE_NAME_MAX,
               "GraphRequest.module bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_GraphResponse, module) ==
                   NNE_CLIENT_MODULE_NAME_MAX,
               "GraphResponse.module bound");
_Static_assert((int)nnedit_v1_NodeKind_NODE_KIND_OTHER ==
                       (int)NNE_CLIENT_NODE_OTHER &&
                   (int)nnedit_v1_NodeKind_NODE_KIND_HOOK ==
                       (int)NNE_CLIENT_NODE_HOOK,
               "NodeKind numbers");

const char *nne_client_node_kind_name(int kind) {
  switch (kind) {
  case NNE_CLIENT_NODE_HOOK: return "hook";
  case NNE_CLIENT_NODE_CALL: return "call";
  case NNE_CLIENT_NODE_OP: return "op";
  case NNE_CLIENT_NODE_CONSTANT: return "constant";
  case NNE_CLIENT_NODE_ATTRIBUTE: return "attribute";
  case NNE_CLIENT_NODE_OTHER: return "other";
  default: return "unspecified";
  }
}

static const size_t node_strs[] = {
    offsetof(nne_client_graph_node_t, op),
    offsetof(nne_client_graph_node_t, instance),
    offsetof(nne_client_graph_node_t, selector),
    offsetof(nne_client_graph_node_t, source),
    offsetof(nne_client_graph_node_t, shape),
    offsetof(nne_client_graph_node_t, callee),
};
static const nne__list_field_t node_lists[] = {
    {offsetof(nne_client_graph_node_t, inputs),
     offsetof(nne_client_graph_node_t, n_inputs)},
    {offsetof(nne_client_graph_node_t, outputs),
     offsetof(nne_client_graph_node_t, n_outputs)},
};
static const nne__layout_t node_layout = {node_strs, 6, node_lists, 2};

/* Every node string goes to one block, every node's value names to one
 * array. */
typedef struct graph_dec {
  nne__strs_t block;
  nne__names_t values;
  nne__strlist_t in, out; /* of the node being decoded */
  nne__rep_t nodes;
  nnedit_v1_GraphNode msg;
  nne_pb_str_dec_t text;
  nne__dec_t dec;
} graph_dec_t;

static void node_arm(nne__rep_t *r, void *msg, size_t i) {
  graph_dec_t *st = r->ctx;
  nnedit_v1_GraphNode *m = msg;
  snprintf(st->in.what, sizeof st->in.what, "nodes[%zu].inputs", i);
  snprintf(st->out.what, sizeof st->out.what, "nodes[%zu].outputs", i);
  NNE_PB_DEC(m->inputs, nne__strlist_dec, &st->in);
  NNE_PB_DEC(m->outputs, nne__strlist_dec, &st->out);
}

static bool node_take(nne__rep_t *r, const void *msg, void *item, size_t i) {
  graph_dec_t *st = r->ctx;
  const nnedit_v1_GraphNode *m = msg;
  nne_client_graph_node_t *node = item;
  (void)i;
  if (!nne__strlist_move(&st->in, &st->values, &node->inputs,
                         &node->n_inputs) ||
      !nne__strlist_move(&st->out, &st->values, &node->outputs,
                         &node->n_outputs))
    return false;
  if (!nne__strs_add(&st->block, m->op, &node->op) ||
      !nne__strs_add(&st->block, m->instance, &node->instance) ||
      !nne__strs_add(&st->block, m->selector, &node->selector) ||
      !nne__strs_add(&st->block, m->source, &node->source) ||
      !nne__strs_add(&st->block, m->shape, &node->shape) ||
      !nne__strs_add(&st->block, m->callee, &node->callee))
    return nne__dec_fail(&st->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "out of memory");
  node->index = m->index;
  node->kind = (nne_client_node_kind_t)m->kind;
  node->inserted = m->inserted;
  node->depth = m->depth;
  return true;
}

/* GraphResponse.text through the shared string decoder, with the client's
 * own bound and a RESOURCE_EXHAUSTED that says which. */
static bool graph_text_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  graph_dec_t *st = *arg;
  void *targ = &st->text;
  size_t n = s->bytes_left;
  if (!nne_pb_str_dec(s, f, &targ)) {
    if (st->text.overflow)
      return nne__dec_fail(&st->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                           "text: %zu bytes, over this client's bound of %zu",
                           n, NNE_CLIENT_MAX_GRAPH_TEXT);
    return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL, "text: %s",
                         PB_GET_ERROR(s));
  }
  return true;
}

static void graph_dec_init(graph_dec_t *st, nne_client_graph_t *out) {
  st->in = (nne__strlist_t){.block = &st->block,
                            .max = NNE_CLIENT_MAX_NODE_VALUES,
                            .max_len = NNE_CLIENT_VALUE_NAME_MAX - 1,
                            .noun = "values",
                            .dec = &st->dec};
  st->out = st->in;
  st->values.max = NNE_CLIENT_MAX_GRAPH_VALUES;
  st->nodes = (nne__rep_t){.items = (void **)&out->nodes,
                           .n = &out->n_nodes,
                           .item_size = sizeof *out->nodes,
                           .max = NNE_CLIENT_MAX_GRAPH_NODES,
                           .over_code = NNE_CLIENT_RESOURCE_EXHAUSTED,
                           .what = "nodes",
                           .noun = "nodes",
                           .fields = nnedit_v1_GraphNode_fields,
                           .msg = &st->msg,
                           .msg_size = sizeof st->msg,
                           .arm = node_arm,
                           .take = node_take,
                           .ctx = st,
                           .dec = &st->dec};
  st->text.max = NNE_CLIENT_MAX_GRAPH_TEXT;
}

int nne_client_models_graph(nne_client_t *cli, const char *model,
                            const char *module, const char *edit_set,
                            nne_client_graph_t *out, nne_client_err_t *err) {
  nnedit_v1_GraphRequest req = nnedit_v1_GraphRequest_init_zero;
  nnedit_v1_GraphResponse resp = nnedit_v1_GraphResponse_init_zero;
  graph_dec_t *st;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || out == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "models_graph: NULL argument");
  if ((rc = nne__check_name("models_graph", model, sizeof req.model, err)) <
          0 ||
      (rc = nne__check_opt_str("models_graph: module", module,
                               sizeof req.module, err)) < 0 ||
      (rc = nne__check_opt_str("models_graph: edit_set", edit_set,
                               sizeof req.edit_set, err)) < 0)
    return rc;
  nne__copy_str(req.model, sizeof req.model, model);
  nne__copy_str(req.module, sizeof req.module, module);
  nne__copy_str(req.edit_set, sizeof req.edit_set, edit_set);
  if ((st = calloc(1, sizeof *st)) == NULL)
    return nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                        "models_graph: out of memory");
  graph_dec_init(st, out);
  NNE_PB_DEC(resp.nodes, nne__rep_dec, &st->nodes);
  NNE_PB_DEC(resp.text, graph_text_dec, st);
  rc = nne__unary(cli, M_GRAPH, nnedit_v1_GraphRequest_fields, &req,
                  nnedit_v1_GraphResponse_fields, &resp, &st->dec, err);
  /* The text is the decoder's allocation, NUL-terminated; "" when the
   * daemon sent none, so that callers never see NULL. */
  if (rc == 0 && st->text.s == NULL && (st->text.s = calloc(1, 1)) == NULL)
    rc = nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                      "Models/Graph: out of memory");
  if (rc == 0) {
    memcpy(out->module, resp.module, sizeof out->module);
    out->edited = resp.edited;
    out->text = st->text.s;
    out->text_len = st->text.len;
    st->text.s = NULL;
    /* The block and the values stop moving here: they become the graph's. */
    out->strings = st->block.p;
    out->values = st->values.v;
    st->block.p = NULL;
    st->values.v = NULL;
    nne__fix_names(out->values, st->values.n, out->strings);
    nne__fix(out->nodes, out->n_nodes, sizeof *out->nodes, &node_layout,
             out->strings, out->values);
  }
  free(st->text.s);
  nne__strlist_free(&st->in);
  nne__strlist_free(&st->out);
  free(st->values.v);
  free(st->block.p);
  free(st);
  if (rc < 0)
    nne_client_graph_free(out);
  return rc;
}

void nne_client_graph_free(nne_client_graph_t *graph) {
  if (graph == NULL)
    return;
  free(graph->nodes);
  free(graph->text);
  free(graph->strings);
  free((void *)graph->values);
  memset(graph, 0, sizeof *graph);
}
