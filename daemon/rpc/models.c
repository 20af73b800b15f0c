/* models.c — nnedit.v1.Models: List, Load, Unload, Describe, Graph. What a
 * model looks like comes from edit/inspect.h; loads and unloads are the
 * registry's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "nnedit/v1/models.pb.h"
#include "rpc/rpc.h"
#include "edit/editor.h"
#include "edit/inspect.h"
#include "infer/hold.h"

/* ModelInfo.warnings straight from the model's names. */
static bool enc_warnings(pb_ostream_t *s, const pb_field_t *f,
                         void *const *arg) {
  const nne_names_t *names = *arg;
  size_t i, n = names != NULL ? nne_names_warning_count(names) : 0;
  for (i = 0; i < n; i++) {
    const char *w = nne_names_warning(names, i);
    if (!pb_encode_tag_for_field(s, f) ||
        !pb_encode_string(s, (const pb_byte_t *)w, strlen(w)))
      return false;
  }
  return true;
}

/* A token's spelling (not NUL-terminated in the tokenizer). */
typedef struct span {
  const char *p;
  size_t n;
} span_t;

static bool enc_span(pb_ostream_t *s, const pb_field_t *f, void *const *arg) {
  const span_t *sp = *arg;
  return pb_encode_tag_for_field(s, f) &&
         pb_encode_string(s, (const pb_byte_t *)sp->p, sp->n);
}

/* TokenizerInfo.special: every special token, by id. */
static bool enc_specials(pb_ostream_t *s, const pb_field_t *f,
                         void *const *arg) {
  const nne_tokenizer_t *tok = *arg;
  size_t id, n = nne_tokenizer_vocab_size(tok);
  for (id = 0; id < n; id++) {
    nnedit_v1_SpecialToken st = nnedit_v1_SpecialToken_init_zero;
    span_t sp;
    if (!nne_tokenizer_is_special(tok, (int32_t)id))
      continue;
    sp.p = nne_tokenizer_id_to_token(tok, (int32_t)id, &sp.n);
    if (sp.p == NULL)
      continue;
    st.id = (int64_t)id;
    NNE_PB_ENC(st.text, enc_span, &sp);
    if (!pb_encode_tag_for_field(s, f) ||
        !pb_encode_submessage(s, nnedit_v1_SpecialToken_fields, &st))
      return false;
  }
  return true;
}

/* ModelInfo.eos_token_ids from the entry's spec (arg: the entry). */
static bool enc_eos(pb_ostream_t *s, const pb_field_t *f, void *const *arg) {
  const nne_model_entry_t *e = *arg;
  nne_pb_i64_enc_t ids = {e->spec.eos, e->spec.n_eos};
  void *state = &ids;
  return nne_pb_i64_enc(s, f, &state);
}

/* Fills the wire form of a model's state. */
static void fill_info(nnedit_v1_ModelInfo *mi, const nne_model_entry_t *e) {
  memset(mi, 0, sizeof *mi);
  snprintf(mi->name, sizeof mi->name, "%s", e->name);
  mi->state = (nnedit_v1_ModelState)e->state;
  if (e->names != NULL && nne_names_family(e->names)[0] != '\0') {
    snprintf(mi->family, sizeof mi->family, "%s", nne_names_family(e->names));
    snprintf(mi->family_reason, sizeof mi->family_reason, "%s",
             nne_names_family_reason(e->names));
    mi->layer_count = (uint32_t)nne_names_layer_count(e->names);
  } else {
    snprintf(mi->family, sizeof mi->family, "%s", e->spec.family);
  }
  if (e->names != NULL)
    NNE_PB_ENC(mi->warnings, enc_warnings, e->names);
  snprintf(mi->export_kind, sizeof mi->export_kind, "%s", e->spec.export_kind);
  if (e->state == NNE_MODEL_FAILED)
    snprintf(mi->error, sizeof mi->error, "%s", e->error);
  mi->in_flight = (uint32_t)e->in_flight;
  if (e->model != NULL) {
    nne_inspect_sizes_t sz;
    nne_inspect_sizes(e, &sz);
    snprintf(mi->device, sizeof mi->device, "%s", e->device);
    mi->dtype = (nnedit_v1_DType)e->dtype;
    mi->param_count = sz.param_count;
    mi->param_bytes = sz.param_bytes;
    mi->vocab_size = e->vocab_size;
    mi->module_count = (uint32_t)sz.module_count;
    mi->max_batch = e->max_batch;
    mi->max_seq_len = e->max_seq_len;
    mi->load_ms = e->load_ms;
    mi->kv_cache = e->kv_cache;
    mi->device_bytes = nne_model_resident_bytes(e->model);
    mi->kv_cache_bytes = e->kv_bytes;
    if (e->spec.n_eos > 0)
      NNE_PB_ENC(mi->eos_token_ids, enc_eos, e);
  }
  if (e->tokenizer != NULL) {
    mi->has_tokenizer = true;
    snprintf(mi->tokenizer.file, sizeof mi->tokenizer.file, "%s",
             e->tokenizer_file);
    snprintf(mi->tokenizer.kind, sizeof mi->tokenizer.kind, "BPE");
    mi->tokenizer.vocab_size = (uint32_t)nne_tokenizer_vocab_size(e->tokenizer);
    NNE_PB_ENC(mi->tokenizer.special, enc_specials, e->tokenizer);
  }
}

/* ---- List ----------------------------------------------------------------- */

typedef struct list_ctx {
  nne_model_entry_t **entries;
  size_t n;
} list_ctx_t;

static bool fill_list_item(void *ctx, size_t i, void *msg) {
  list_ctx_t *lc = ctx;
  fill_info(msg, lc->entries[i]);
  return true;
}

void nne_rpc_models_list(nne_call_t *call, grpc_byte_buffer *req) {
  nne_daemon_t *d = nne_call_app(call);
  nnedit_v1_ListModelsRequest in = nnedit_v1_ListModelsRequest_init_zero;
  nnedit_v1_ListModelsResponse out = nnedit_v1_ListModelsResponse_init_zero;
  nne_model_entry_t *e, *arr[4096];
  list_ctx_t lc = {arr, 0};
  nne_pb_list_enc_t list;
  nne_err_t err;

  if (!nne_rpc_decode(call, req, nnedit_v1_ListModelsRequest_fields, &in, NULL))
    return;
  if (nne_registry_scan(&d->registry, &err) != 0)
    nne_log_warn("%s", err.msg); /* keep serving what we know */
  for (e = d->registry.entries; e != NULL && lc.n < 4096; e = e->next)
    arr[lc.n++] = e;
  list.n = lc.n;
  list.fill = fill_list_item;
  list.ctx = &lc;
  list.msg_size = sizeof(nnedit_v1_ModelInfo);
  NNE_PB_ENC(out.models, nne_pb_list_enc, &list);
  snprintf(out.server_version, sizeof out.server_version, "nneditd %s",
           NNE_VERSION);
  nne_call_reply(call, nnedit_v1_ListModelsResponse_fields, &out);
}

/* ---- Load / Unload -------------------------------------------------------- */

static void on_loaded(void *ctx, nne_model_entry_t *e, const nne_err_t *err) {
  nne_call_t *call = ctx;
  nnedit_v1_LoadModelResponse out = nnedit_v1_LoadModelResponse_init_zero;

  if (err != NULL) {
    nne_err_t e2 = *err;
    /* A bad archive is the operator's to fix: the call itself was valid. */
    if (e2.code == NNE_EINVAL || e2.code == NNE_EIO)
      e2.code = NNE_ESTATE;
    nne_err_prefix(&e2, "model '%s' failed to load", e->name);
    nne_call_fail_err(call, &e2);
  } else {
    out.has_model = true;
    fill_info(&out.model, e);
    nne_call_reply(call, nnedit_v1_LoadModelResponse_fields, &out);
  }
  nne_call_unref(call);
}

void nne_rpc_models_load(nne_call_t *call, grpc_byte_buffer *req) {
  nne_daemon_t *d = nne_call_app(call);
  nnedit_v1_LoadModelRequest in = nnedit_v1_LoadModelRequest_init_zero;
  nne_model_entry_t *e;
  nne_err_t err;
  char canon[32] = "";
  nne_dtype_t dt = NNE_DTYPE_INVALID;

  if (!nne_rpc_decode(call, req, nnedit_v1_LoadModelRequest_fields, &in, NULL))
    return;
  nne_call_set_model(call, in.name);
  if (nne_registry_lookup(&d->registry, "name", in.name, &e, &err) != 0)
    goto fail;
  if (in.device[0] != '\0' &&
      nne_registry_check_device("device", in.device, canon, sizeof canon,
                                &err) != 0)
    goto fail;
  if (in.dtype != nnedit_v1_DType_DTYPE_UNSPECIFIED) {
    dt = (nne_dtype_t)in.dtype;
    if (nne_registry_check_dtype("dtype", dt, &err) != 0)
      goto fail;
  }
  nne_call_ref(call); /* until on_loaded */
  if (nne_registry_load(&d->registry, e, canon, dt, on_loaded, call, &err) !=
      0) {
    nne_call_unref(call);
    goto fail;
  }
  return;
fail:
  nne_call_fail_err(call, &err);
}

static void on_unloaded(void *ctx, nne_model_entry_t *e, const nne_err_t *err) {
  nne_call_t *call = ctx;
  nnedit_v1_UnloadModelResponse out = nnedit_v1_UnloadModelResponse_init_zero;

  if (err != NULL) {
    nne_call_fail_err(call, err);
  } else {
    out.has_model = true;
    fill_info(&out.model, e);
    nne_call_reply(call, nnedit_v1_UnloadModelResponse_fields, &out);
  }
  nne_call_unref(call);
}

void nne_rpc_models_unload(nne_call_t *call, grpc_byte_buffer *req) {
  nne_daemon_t *d = nne_call_app(call);
  nnedit_v1_UnloadModelRequest in = nnedit_v1_UnloadModelRequest_init_zero;
  nne_model_entry_t *e;
  nne_err_t err;

  if (!nne_rpc_decode(call, req, nnedit_v1_UnloadModelRequest_fields, &in,
                      NULL))
    return;
  nne_call_set_model(call, in.name);
  if (nne_registry_lookup(&d->registry, "name", in.name, &e, &err) != 0) {
    nne_call_fail_err(call, &err);
    return;
  }
  if (e->state == NNE_MODEL_LOADED && e->edit_sets > 0) {
    /* The sets pin compiled backends and hold the model: the client says
     * which to drop (the registry refuses too, without the ids). */
    char ids[512];
    size_t n = nne_editor_ids(&d->editor, e, ids, sizeof ids);
    nne_err_set(&err, NNE_ESTATE,
                "model '%s' has %zu edit set%s (%s); drop %s first "
                "(Edits.Drop)",
                e->name, n, n == 1 ? "" : "s", ids, n == 1 ? "it" : "them");
    nne_call_fail_err(call, &err);
    return;
  }
  nne_call_ref(call);
  if (nne_registry_unload(&d->registry, e, on_unloaded, call, &err) != 0) {
    nne_call_unref(call);
    nne_call_fail_err(call, &err);
  }
}

/* ---- Describe ------------------------------------------------------------- */

/* Aliases of one module: standard names or user aliases. */
typedef struct alias_arg {
  const nne_names_t *names;
  int module;
  bool standard;
} alias_arg_t;

static bool enc_aliases(pb_ostream_t *s, const pb_field_t *f,
                        void *const *arg) {
  const alias_arg_t *a = *arg;
  size_t k, n;
  if (a->names == NULL)
    return true;
  n = nne_names_module_alias_count(a->names, a->module);
  for (k = 0; k < n; k++) {
    const char *name = nne_names_module_alias(a->names, a->module, k);
    if (nne_names_module_alias_is_standard(a->names, a->module, k) !=
        a->standard)
      continue;
    if (!pb_encode_tag_for_field(s, f) ||
        !pb_encode_string(s, (const pb_byte_t *)name, strlen(name)))
      return false;
  }
  return true;
}

/* Module.edits: the edits of an edit set on one instance. */
typedef struct edits_arg {
  const nne_edit_set_t *set;
  int module;
} edits_arg_t;

static bool enc_edits(pb_ostream_t *s, const pb_field_t *f,
                      void *const *arg) {
  const edits_arg_t *a = *arg;
  char line[800];
  size_t i;
  if (a->set == NULL)
    return true;
  for (i = 0; i < a->set->n_edits; i++) {
    const nne_edit_t *e = &a->set->edits[i];
    int n;
    if (e->site.module != a->module)
      continue;
    n = snprintf(line, sizeof line, "edits[%zu] %s %s", i, nne_edit_op_name(e->op),
                 e->site.canonical);
    if (n < 0)
      return false;
    if (!pb_encode_tag_for_field(s, f) ||
        !pb_encode_string(s, (const pb_byte_t *)line, strlen(line)))
      return false;
  }
  return true;
}

typedef struct describe_ctx {
  const nne_model_entry_t *entry;
  const nne_names_t *names;
  const nne_edit_set_t *set;
  edits_arg_t edits_arg;
  int first;             /* index of the subtree's root in the model */
  alias_arg_t std_arg, alias_arg; /* reused per element: encoded in turn */
  size_t *sites;         /* site entries to send */
} describe_ctx_t;

static bool fill_module(void *ctx, size_t i, void *msg) {
  describe_ctx_t *dc = ctx;
  nnedit_v1_Module *m = msg;
  int idx = dc->first + (int)i;
  const nne_module_info_t *mi = nne_inspect_module(dc->entry, (size_t)idx);

  if (mi == NULL || strlen(mi->path) >= sizeof m->path)
    return false;
  memcpy(m->path, mi->path, strlen(mi->path) + 1);
  snprintf(m->class_name, sizeof m->class_name, "%s", mi->class_name);
  snprintf(m->type_name, sizeof m->type_name, "%s", mi->type_name);
  /* Parents are positions in this response; the subtree's root has none. */
  m->parent = i == 0 ? -1 : mi->parent - dc->first;
  m->depth = (uint32_t)mi->depth;
  m->call_index = mi->call_index;
  m->param_count = mi->param_count;
  dc->std_arg = (alias_arg_t){dc->names, idx, true};
  dc->alias_arg = (alias_arg_t){dc->names, idx, false};
  NNE_PB_ENC(m->standard_names, enc_aliases, &dc->std_arg);
  NNE_PB_ENC(m->aliases, enc_aliases, &dc->alias_arg);
  dc->edits_arg = (edits_arg_t){dc->set, idx};
  NNE_PB_ENC(m->edits, enc_edits, &dc->edits_arg);
  return true;
}

static bool fill_site(void *ctx, size_t i, void *msg) {
  describe_ctx_t *dc = ctx;
  nnedit_v1_Site *w = msg;
  const nne_names_site_entry_t *e = nne_names_site(dc->names, dc->sites[i]);
  const nne_module_info_t *mi;

  snprintf(w->name, sizeof w->name, "%s", e->name);
  snprintf(w->tl_name, sizeof w->tl_name, "%s", e->tl_name ? e->tl_name : "");
  w->available = e->available;
  if (!e->available) {
    snprintf(w->reason, sizeof w->reason, "%s", e->reason ? e->reason : "");
    return true;
  }
  mi = nne_inspect_module(dc->entry, (size_t)e->site.module);
  snprintf(w->canonical, sizeof w->canonical, "%s", e->site.canonical);
  snprintf(w->module, sizeof w->module, "%s", mi != NULL ? mi->path : "");
  w->kind = (nnedit_v1_SiteKind)e->site.kind;
  w->index = e->site.index;
  w->view_parts = e->site.view.parts;
  w->view_part = e->site.view.part;
  w->view_heads = e->site.view.heads_view;
  return true;
}

void nne_rpc_models_describe(nne_call_t *call, grpc_byte_buffer *req) {
  nne_daemon_t *d = nne_call_app(call);
  nnedit_v1_DescribeModelRequest in = nnedit_v1_DescribeModelRequest_init_zero;
  nnedit_v1_DescribeModelResponse out = nnedit_v1_DescribeModelResponse_init_zero;
  nne_infer_hold_t h;
  nne_model_entry_t *e;
  describe_ctx_t dc;
  nne_pb_list_enc_t list, sites;
  nne_err_t err;
  size_t end, i, n_sites = 0;
  int first = 0;
  const char *root;

  if (!nne_rpc_decode(call, req, nnedit_v1_DescribeModelRequest_fields, &in,
                      NULL))
    return;
  nne_call_set_model(call, in.name);
  if (nne_infer_hold_field(&h, d, "name", in.name, NULL, &err) != 0) {
    nne_call_fail_err(call, &err);
    return;
  }
  e = h.entry;
  if (in.module[0] != '\0' &&
      nne_inspect_resolve_module(e, "module", in.module, &first, &err) != 0)
    goto fail;
  memset(&dc, 0, sizeof dc);
  if (in.edit_set[0] != '\0' &&
      nne_infer_hold_set(&h, d, in.edit_set, &err) != 0)
    goto fail;
  nne_inspect_subtree(e, first, &end);
  root = nne_inspect_module(e, (size_t)first)->path;
  dc.entry = e;
  dc.names = e->names;
  dc.set = h.set;
  dc.first = first;
  if (e->names != NULL) {
    size_t n = nne_names_site_count(e->names), rl = strlen(root);
    dc.sites = malloc((n ? n : 1) * sizeof *dc.sites);
    if (dc.sites == NULL) {
      nne_err_set(&err, NNE_ENOMEM, "out of memory");
      goto fail;
    }
    for (i = 0; i < n; i++) {
      const nne_names_site_entry_t *se = nne_names_site(e->names, i);
      const char *mp;
      if (first == 0) {
        dc.sites[n_sites++] = i;
        continue;
      }
      if (!se->available)
        continue; /* no module to place it under */
      mp = nne_inspect_module(e, (size_t)se->site.module)->path;
      if (strncmp(mp, root, rl) == 0 && (mp[rl] == '\0' || mp[rl] == '.'))
        dc.sites[n_sites++] = i;
    }
  }
  out.has_model = true;
  fill_info(&out.model, e);
  list.n = end - (size_t)first;
  list.fill = fill_module;
  list.ctx = &dc;
  list.msg_size = sizeof(nnedit_v1_Module);
  NNE_PB_ENC(out.modules, nne_pb_list_enc, &list);
  sites.n = n_sites;
  sites.fill = fill_site;
  sites.ctx = &dc;
  sites.msg_size = sizeof(nnedit_v1_Site);
  NNE_PB_ENC(out.sites, nne_pb_list_enc, &sites);
  nne_call_reply(call, nnedit_v1_DescribeModelResponse_fields, &out);
  free(dc.sites);
  nne_infer_release(&h, d);
  return;
fail:
  nne_infer_release(&h, d);
  nne_call_fail_err(call, &err);
}

/* ---- Graph ---------------------------------------------------------------- */

typedef struct graph_ctx {
  const nne_inspect_graph_t *g;
  nne_pb_str_list_enc_t ins, outs; /* reused per node: encoded in turn */
} graph_ctx_t;

static bool fill_node(void *ctx, size_t i, void *msg) {
  graph_ctx_t *gc = ctx;
  nnedit_v1_GraphNode *o = msg;
  const nne_graph_node_t *n = gc->g->nodes[i];
  o->index = (uint32_t)i;
  snprintf(o->op, sizeof o->op, "%s", n->op);
  o->kind = (nnedit_v1_NodeKind)n->kind;
  gc->ins.v = n->inputs;
  gc->ins.n = n->n_inputs;
  gc->outs.v = n->outputs;
  gc->outs.n = n->n_outputs;
  NNE_PB_ENC(o->inputs, nne_pb_str_list_enc, &gc->ins);
  NNE_PB_ENC(o->outputs, nne_pb_str_list_enc, &gc->outs);
  snprintf(o->instance, sizeof o->instance, "%s", n->instance);
  snprintf(o->selector, sizeof o->selector, "%s", n->selector);
  snprintf(o->source, sizeof o->source, "%s", n->source);
  snprintf(o->shape, sizeof o->shape, "%s", n->shape);
  o->inserted = n->inserted != 0;
  o->depth = (uint32_t)n->depth;
  snprintf(o->callee, sizeof o->callee, "%s", n->callee);
  return true;
}

void nne_rpc_models_graph(nne_call_t *call, grpc_byte_buffer *req) {
  nne_daemon_t *d = nne_call_app(call);
  nnedit_v1_GraphRequest in = nnedit_v1_GraphRequest_init_zero;
  nnedit_v1_GraphResponse out = nnedit_v1_GraphResponse_init_zero;
  nne_infer_hold_t h;
  nne_inspect_graph_t g;
  graph_ctx_t gc;
  nne_pb_list_enc_t list;
  nne_err_t err;
  int module = 0;

  if (!nne_rpc_decode(call, req, nnedit_v1_GraphRequest_fields, &in, NULL))
    return;
  nne_call_set_model(call, in.model);
  if (nne_infer_hold(&h, d, in.model, NULL, &err) != 0) {
    nne_call_fail_err(call, &err);
    return;
  }
  if (in.module[0] != '\0' &&
      nne_inspect_resolve_module(h.entry, "module", in.module, &module,
                                 &err) != 0)
    goto fail;
  if (in.edit_set[0] != '\0' &&
      nne_infer_hold_set(&h, d, in.edit_set, &err) != 0)
    goto fail;
  if (nne_inspect_graph(h.entry, module, h.set, &g, &err) != 0) {
    nne_err_prefix(&err, "module");
    goto fail;
  }
  snprintf(out.module, sizeof out.module, "%s", g.path);
  out.edited = g.edited != 0;
  memset(&gc, 0, sizeof gc);
  gc.g = &g;
  list.n = g.n_nodes;
  list.fill = fill_node;
  list.ctx = &gc;
  list.msg_size = sizeof(nnedit_v1_GraphNode);
  NNE_PB_ENC(out.nodes, nne_pb_list_enc, &list);
  NNE_PB_ENC(out.text, nne_pb_str_enc, g.text);
  nne_call_reply(call, nnedit_v1_GraphResponse_fields, &out);
  nne_inspect_graph_free(&g);
  nne_infer_release(&h, d);
  return;
fail:
  nne_infer_release(&h, d);
  nne_call_fail_err(call, &err);
}
