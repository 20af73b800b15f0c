/* models.c — nnedit.v1.Models: List, Load, Unload, Describe (Graph is in
 * graph.c). */
#include "internal.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnedit/v1/models.pb.h"

#define M_LIST "/nnedit.v1.Models/List"
#define M_LOAD "/nnedit.v1.Models/Load"
#define M_UNLOAD "/nnedit.v1.Models/Unload"
#define M_DESCRIBE "/nnedit.v1.Models/Describe"

/* The public fixed-size strings mirror the proto's nanopb bounds; if a bound
 * changes, the header must change with it (and these fail to compile). */
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_ModelInfo, name) ==
                   NNE_CLIENT_MODEL_NAME_MAX,
               "ModelInfo.name bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_ModelInfo, device) ==
                   NNE_CLIENT_DEVICE_MAX,
               "ModelInfo.device bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_ModelInfo, family) ==
                   NNE_CLIENT_FAMILY_MAX,
               "ModelInfo.family bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_ModelInfo, error) ==
                   NNE_CLIENT_MODEL_ERROR_MAX,
               "ModelInfo.error bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_ModelInfo, export_kind) ==
                   NNE_CLIENT_EXPORT_KIND_MAX,
               "ModelInfo.export_kind bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_ModelInfo, family_reason) ==
                   NNE_CLIENT_FAMILY_REASON_MAX,
               "ModelInfo.family_reason bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_DescribeModelRequest, module) ==
                   NNE_CLIENT_MODULE_NAME_MAX,
               "DescribeModelRequest.module bound");
_Static_assert((int)nnedit_v1_SiteKind_SITE_KIND_NODE_INPUT ==
                   (int)NNE_CLIENT_SITE_NODE_INPUT,
               "SiteKind numbers");
_Static_assert((int)nnedit_v1_ModelState_MODEL_STATE_AVAILABLE ==
                       (int)NNE_CLIENT_MODEL_AVAILABLE &&
                   (int)nnedit_v1_ModelState_MODEL_STATE_FAILED ==
                       (int)NNE_CLIENT_MODEL_FAILED,
               "ModelState numbers");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_TokenizerInfo, file) ==
                   NNE_CLIENT_TOKENIZER_FILE_MAX,
               "TokenizerInfo.file bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_TokenizerInfo, kind) ==
                   NNE_CLIENT_TOKENIZER_KIND_MAX,
               "TokenizerInfo.kind bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_ListModelsResponse, server_version) ==
                   NNE_CLIENT_VERSION_MAX,
               "ListModelsResponse.server_version bound");

const char *nne_client_model_state_name(int state) {
  switch (state) {
  case NNE_CLIENT_MODEL_AVAILABLE: return "AVAILABLE";
  case NNE_CLIENT_MODEL_LOADING: return "LOADING";
  case NNE_CLIENT_MODEL_LOADED: return "LOADED";
  case NNE_CLIENT_MODEL_UNLOADING: return "UNLOADING";
  case NNE_CLIENT_MODEL_FAILED: return "FAILED";
  default: return "UNSPECIFIED";
  }
}

const char *nne_client_site_kind_name(int kind) {
  switch (kind) {
  case NNE_CLIENT_SITE_INPUT: return "input";
  case NNE_CLIENT_SITE_OUTPUT: return "output";
  case NNE_CLIENT_SITE_NODE: return "node";
  case NNE_CLIENT_SITE_NODE_INPUT: return "node_input";
  default: return "unspecified";
  }
}

/* ---- model info ---------------------------------------------------------- */

/* The warnings of one ModelInfo while it decodes (a repeated string), then
 * packed into the info's one allocation; its tokenizer's special tokens
 * likewise (their texts in a block of their own, as offsets until packed
 * into the info's second allocation). */
typedef struct info_dec {
  nne__strs_t block;
  nne__strlist_t warnings;
  nne__strs_t sp_block;
  nne_client_special_token_t *special;
  size_t n_special;
  nne__rep_t sp_rep;
  nnedit_v1_SpecialToken sp_msg;
  const char *sp_off; /* the special token being decoded: its text */
  size_t sp_len;
  bool sp_has;
  nne_pb_i64_dec_t eos; /* eos_token_ids, at most NNE_CLIENT_MAX_EOS_TOKENS */
} info_dec_t;

/* SpecialToken.text into the block. */
static bool special_text_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  info_dec_t *w = *arg;
  size_t n = s->bytes_left;
  (void)f;
  if (!nne__strs_read(&w->sp_block, s, NNE_CLIENT_TOKEN_TEXT_MAX - 1,
                      &w->sp_off, w->warnings.dec,
                      "model.tokenizer.special.text"))
    return false;
  w->sp_len = n;
  w->sp_has = true;
  return true;
}

static void special_arm(nne__rep_t *r, void *msg, size_t i) {
  info_dec_t *w = r->ctx;
  (void)i;
  w->sp_has = false;
  NNE_PB_DEC(((nnedit_v1_SpecialToken *)msg)->text, special_text_dec, w);
}

static bool special_take(nne__rep_t *r, const void *msg, void *item, size_t i) {
  info_dec_t *w = r->ctx;
  nne_client_special_token_t *sp = item;
  (void)i;
  sp->id = ((const nnedit_v1_SpecialToken *)msg)->id;
  if (!w->sp_has && !nne__strs_add(&w->sp_block, "", &w->sp_off))
    return nne__dec_fail(w->warnings.dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "out of memory");
  sp->text = w->sp_off;
  sp->text_len = w->sp_has ? w->sp_len : 0;
  return true;
}

/* ModelInfo.eos_token_ids, bounded by this client. */
static bool eos_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  info_dec_t *w = *arg;
  void *eos = &w->eos;
  if (nne_pb_i64_dec(s, f, &eos))
    return true;
  if (w->eos.overflow)
    return nne__dec_fail(w->warnings.dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "model.eos_token_ids: more than %d ids",
                         NNE_CLIENT_MAX_EOS_TOKENS);
  return false;
}

static void info_dec_init(info_dec_t *w, nne__dec_t *d) {
  memset(w, 0, sizeof *w);
  w->sp_rep = (nne__rep_t){.items = (void **)&w->special,
                           .n = &w->n_special,
                           .item_size = sizeof *w->special,
                           .max = NNE_CLIENT_MAX_SPECIAL_TOKENS,
                           .over_code = NNE_CLIENT_RESOURCE_EXHAUSTED,
                           .what = "model.tokenizer.special",
                           .noun = "special tokens",
                           .fields = nnedit_v1_SpecialToken_fields,
                           .msg = &w->sp_msg,
                           .msg_size = sizeof w->sp_msg,
                           .arm = special_arm,
                           .take = special_take,
                           .ctx = w,
                           .dec = d};
  w->warnings.block = &w->block;
  w->warnings.max = NNE_CLIENT_MAX_WARNINGS;
  w->warnings.max_len = NNE_CLIENT_WARNING_MAX - 1;
  w->warnings.noun = "warnings";
  w->warnings.dec = d;
  snprintf(w->warnings.what, sizeof w->warnings.what, "model.warnings");
}

/* Hooks m's warnings to w (emptied). */
static void info_dec_arm(info_dec_t *w, nnedit_v1_ModelInfo *m) {
  w->warnings.n = 0;
  w->block.len = 0;
  w->n_special = 0;
  w->sp_block.len = 0;
  NNE_PB_DEC(m->warnings, nne__strlist_dec, &w->warnings);
  /* tokenizer is a plain (optional) submessage: nanopb decodes it in place
   * without resetting its callbacks, so this one holds. */
  NNE_PB_DEC(m->tokenizer.special, nne__rep_dec, &w->sp_rep);
  w->eos.n = 0;
  w->eos.max = NNE_CLIENT_MAX_EOS_TOKENS;
  w->eos.overflow = false;
  NNE_PB_DEC(m->eos_token_ids, eos_dec, w);
}

static void info_dec_free(info_dec_t *w) {
  nne__strlist_free(&w->warnings);
  free(w->block.p);
  w->block.p = NULL;
  free(w->special);
  w->special = NULL;
  w->sp_rep.cap = 0;
  free(w->sp_block.p);
  w->sp_block.p = NULL;
  w->sp_block.cap = 0;
  free(w->eos.v);
  w->eos.v = NULL;
  w->eos.cap = 0;
}

/* The special tokens gathered into one allocation (the array, then their
 * texts) that *o owns; the gathered ones are emptied. */
static bool specials_pack(nne_client_tokenizer_info_t *o, info_dec_t *w) {
  nne_client_special_token_t *v;
  char *strs;
  size_t i;
  if (w->n_special == 0)
    return true;
  v = malloc(w->n_special * sizeof *v + w->sp_block.len);
  if (v == NULL)
    return false;
  strs = (char *)(v + w->n_special);
  memcpy(strs, w->sp_block.p, w->sp_block.len);
  for (i = 0; i < w->n_special; i++) {
    v[i] = w->special[i];
    v[i].text = strs + (uintptr_t)w->special[i].text;
  }
  o->special = v;
  o->n_special = w->n_special;
  w->n_special = 0;
  w->sp_block.len = 0;
  return true;
}

/* *o from m, and the decoded warnings. False only when memory runs out. */
static bool info_take(nne_client_model_info_t *o, const nnedit_v1_ModelInfo *m,
                      info_dec_t *w) {
  /* Same sizes (static asserts above) and nanopb NUL-terminates. */
  memset(o, 0, sizeof *o);
  memcpy(o->name, m->name, sizeof o->name);
  o->state = (nne_client_model_state_t)m->state;
  memcpy(o->device, m->device, sizeof o->device);
  o->dtype = (nne_client_dtype_t)m->dtype;
  memcpy(o->family, m->family, sizeof o->family);
  memcpy(o->error, m->error, sizeof o->error);
  o->param_count = m->param_count;
  o->param_bytes = m->param_bytes;
  o->vocab_size = m->vocab_size;
  o->module_count = m->module_count;
  o->max_batch = m->max_batch;
  o->max_seq_len = m->max_seq_len;
  o->load_ms = m->load_ms;
  o->in_flight = m->in_flight;
  memcpy(o->export_kind, m->export_kind, sizeof o->export_kind);
  memcpy(o->family_reason, m->family_reason, sizeof o->family_reason);
  o->layer_count = m->layer_count;
  o->has_tokenizer = m->has_tokenizer;
  o->kv_cache = m->kv_cache;
  if (w->eos.n > 0)
    memcpy(o->eos_token_ids, w->eos.v, w->eos.n * sizeof *w->eos.v);
  o->n_eos_token_ids = w->eos.n;
  if (m->has_tokenizer) {
    memcpy(o->tokenizer.file, m->tokenizer.file, sizeof o->tokenizer.file);
    memcpy(o->tokenizer.kind, m->tokenizer.kind, sizeof o->tokenizer.kind);
    o->tokenizer.vocab_size = m->tokenizer.vocab_size;
    if (!specials_pack(&o->tokenizer, w))
      return false;
  }
  return nne__strlist_pack(&w->warnings, &o->warnings, &o->n_warnings);
}

void nne_client_model_info_free(nne_client_model_info_t *info) {
  if (info == NULL)
    return;
  free((void *)info->warnings);
  free((void *)info->tokenizer.special);
  memset(info, 0, sizeof *info);
}

/* ---- List ---------------------------------------------------------------- */

typedef struct list_dec {
  nne__rep_t models;
  nnedit_v1_ModelInfo msg;
  info_dec_t info;
  nne__dec_t dec;
} list_dec_t;

static void list_arm(nne__rep_t *r, void *msg, size_t i) {
  list_dec_t *st = r->ctx;
  info_dec_arm(&st->info, msg);
  snprintf(st->info.warnings.what, sizeof st->info.warnings.what,
           "models[%zu].warnings", i);
}

static bool list_take(nne__rep_t *r, const void *msg, void *item, size_t i) {
  list_dec_t *st = r->ctx;
  (void)i;
  if (!info_take(item, msg, &st->info))
    return nne__dec_fail(&st->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "out of memory");
  return true;
}

int nne_client_models_list(nne_client_t *cli, nne_client_model_list_t *out,
                           nne_client_err_t *err) {
  nnedit_v1_ListModelsRequest req = nnedit_v1_ListModelsRequest_init_zero;
  nnedit_v1_ListModelsResponse resp = nnedit_v1_ListModelsResponse_init_zero;
  list_dec_t *st;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || out == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "models_list: NULL argument");
  /* On the heap: a ModelInfo message is a few kB. */
  if ((st = calloc(1, sizeof *st)) == NULL)
    return nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                        "models_list: out of memory");
  info_dec_init(&st->info, &st->dec);
  st->models = (nne__rep_t){.items = (void **)&out->models,
                            .n = &out->n_models,
                            .item_size = sizeof *out->models,
                            .max = NNE_CLIENT_MAX_MODELS,
                            .over_code = NNE_CLIENT_RESOURCE_EXHAUSTED,
                            .what = "models",
                            .noun = "models",
                            .fields = nnedit_v1_ModelInfo_fields,
                            .msg = &st->msg,
                            .msg_size = sizeof st->msg,
                            .arm = list_arm,
                            .take = list_take,
                            .ctx = st,
                            .dec = &st->dec};
  NNE_PB_DEC(resp.models, nne__rep_dec, &st->models);
  rc = nne__unary(cli, M_LIST, nnedit_v1_ListModelsRequest_fields, &req,
                  nnedit_v1_ListModelsResponse_fields, &resp, &st->dec, err);
  info_dec_free(&st->info);
  free(st);
  if (rc < 0) {
    nne_client_model_list_free(out);
    return rc;
  }
  memcpy(out->server_version, resp.server_version, sizeof out->server_version);
  return 0;
}

void nne_client_model_list_free(nne_client_model_list_t *list) {
  size_t i;
  if (list == NULL)
    return;
  for (i = 0; i < list->n_models; i++)
    nne_client_model_info_free(&list->models[i]);
  free(list->models);
  memset(list, 0, sizeof *list);
}

/* ---- Load and Unload ----------------------------------------------------- */

/* A reply holding one ModelInfo (Load's and Unload's): the call, then the
 * model into *out (may be NULL). `required`: a reply without it is
 * INTERNAL (else *out stays zeroed). */
static int info_call(nne_client_t *cli, const char *method,
                     const pb_msgdesc_t *req_desc, const void *req,
                     const pb_msgdesc_t *resp_desc, void *resp,
                     const bool *has_model, nnedit_v1_ModelInfo *m,
                     bool required, nne_client_model_info_t *out,
                     nne_client_err_t *err) {
  info_dec_t w;
  nne__dec_t dec;
  int rc;

  memset(&dec, 0, sizeof dec);
  info_dec_init(&w, &dec);
  info_dec_arm(&w, m);
  rc = nne__unary(cli, method, req_desc, req, resp_desc, resp, &dec, err);
  if (rc == 0 && out != NULL && !*has_model && required)
    rc = nne__err_set(err, NNE_CLIENT_INTERNAL, "%s: reply has no model",
                      nne__method_name(method));
  if (rc == 0 && out != NULL && *has_model && !info_take(out, m, &w)) {
    nne_client_model_info_free(out);
    rc = nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED, "%s: out of memory",
                      nne__method_name(method));
  }
  info_dec_free(&w);
  return rc;
}

int nne_client_models_load(nne_client_t *cli, const char *name,
                           const char *device, nne_client_dtype_t dtype,
                           nne_client_model_info_t *out,
                           nne_client_err_t *err) {
  nnedit_v1_LoadModelRequest req = nnedit_v1_LoadModelRequest_init_zero;
  nnedit_v1_LoadModelResponse resp = nnedit_v1_LoadModelResponse_init_zero;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || out == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "models_load: NULL argument");
  if ((rc = nne__check_name("models_load", name, sizeof req.name, err)) < 0)
    return rc;
  nne__copy_str(req.name, sizeof req.name, name);
  if (!nne__copy_str(req.device, sizeof req.device, device))
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "models_load: device '%.40s' is longer than %zu bytes",
                        device, sizeof req.device - 1);
  if ((int)dtype < 0 || (dtype != 0 && nne_client_dtype_size(dtype) == 0))
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "models_load: unknown dtype %d", (int)dtype);
  req.dtype = (nnedit_v1_DType)dtype;
  return info_call(cli, M_LOAD, nnedit_v1_LoadModelRequest_fields, &req,
                   nnedit_v1_LoadModelResponse_fields, &resp, &resp.has_model,
                   &resp.model, true, out, err);
}

int nne_client_models_unload(nne_client_t *cli, const char *name,
                             nne_client_model_info_t *out,
                             nne_client_err_t *err) {
  nnedit_v1_UnloadModelRequest req = nnedit_v1_UnloadModelRequest_init_zero;
  nnedit_v1_UnloadModelResponse resp = nnedit_v1_UnloadModelResponse_init_zero;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "models_unload: NULL client");
  if ((rc = nne__check_name("models_unload", name, sizeof req.name, err)) < 0)
    return rc;
  nne__copy_str(req.name, sizeof req.name, name);
  /* A reply without the model is tolerated here: *out stays zeroed. */
  return info_call(cli, M_UNLOAD, nnedit_v1_UnloadModelRequest_fields, &req,
                   nnedit_v1_UnloadModelResponse_fields, &resp, &resp.has_model,
                   &resp.model, false, out, err);
}

/* ---- Describe ------------------------------------------------------------ */

static const size_t module_strs[] = {
    offsetof(nne_client_module_t, path),
    offsetof(nne_client_module_t, class_name),
    offsetof(nne_client_module_t, type_name),
};
static const nne__list_field_t module_lists[] = {
    {offsetof(nne_client_module_t, standard_names),
     offsetof(nne_client_module_t, n_standard_names)},
    {offsetof(nne_client_module_t, aliases),
     offsetof(nne_client_module_t, n_aliases)},
};
static const nne__layout_t module_layout = {module_strs, 3, module_lists, 2};

static const size_t site_strs[] = {
    offsetof(nne_client_site_t, name),   offsetof(nne_client_site_t, tl_name),
    offsetof(nne_client_site_t, reason), offsetof(nne_client_site_t, canonical),
    offsetof(nne_client_site_t, module),
};
static const nne__layout_t site_layout = {site_strs, 5, NULL, 0};

/* Every module and site string goes to one block; every module's standard
 * names and aliases to one names array. */
typedef struct desc_dec {
  nne_client_model_desc_t *out;
  bool subtree; /* a module was asked for: modules[0] may be deeper */
  nne__strs_t block;
  nne__names_t names;
  nne__strlist_t std, alias; /* of the module being decoded */
  nne__rep_t modules, sites;
  nnedit_v1_Module mod_msg;
  nnedit_v1_Site site_msg;
  info_dec_t info;
  nne__dec_t dec;
} desc_dec_t;

static void module_arm(nne__rep_t *r, void *msg, size_t i) {
  desc_dec_t *st = r->ctx;
  nnedit_v1_Module *m = msg;
  snprintf(st->std.what, sizeof st->std.what, "modules[%zu].standard_names", i);
  snprintf(st->alias.what, sizeof st->alias.what, "modules[%zu].aliases", i);
  NNE_PB_DEC(m->standard_names, nne__strlist_dec, &st->std);
  NNE_PB_DEC(m->aliases, nne__strlist_dec, &st->alias);
}

static bool module_take(nne__rep_t *r, const void *msg, void *item, size_t i) {
  desc_dec_t *st = r->ctx;
  const nnedit_v1_Module *m = msg;
  const nne_client_module_t *mods = st->out->modules;
  nne_client_module_t *mod = item;
  bool root_ok;

  /* The tree must be usable as given: parents precede their children
   * (pre-order) and depths follow from them. Only the first module is
   * parentless; for a subtree its depth is the daemon's to say. */
  if (m->parent < -1 || (m->parent >= 0 && (size_t)m->parent >= i) ||
      (m->parent == -1) != (i == 0))
    return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                         "modules[%zu] ('%s'): parent %d is not an earlier "
                         "module",
                         i, m->path, (int)m->parent);
  root_ok = m->parent < 0 && (st->subtree || m->depth == 0) &&
            m->depth < NNE_CLIENT_MAX_MODULES;
  if (m->parent < 0 ? !root_ok : m->depth != mods[m->parent].depth + 1)
    return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                         "modules[%zu] ('%s'): depth %u does not follow its "
                         "parent",
                         i, m->path, (unsigned)m->depth);
  if (!nne__strs_add(&st->block, m->path, &mod->path) ||
      !nne__strs_add(&st->block, m->class_name, &mod->class_name) ||
      !nne__strs_add(&st->block, m->type_name, &mod->type_name))
    return nne__dec_fail(&st->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "out of memory");
  if (!nne__strlist_move(&st->std, &st->names, &mod->standard_names,
                         &mod->n_standard_names) ||
      !nne__strlist_move(&st->alias, &st->names, &mod->aliases,
                         &mod->n_aliases))
    return false;
  mod->parent = m->parent;
  mod->depth = m->depth;
  mod->call_index = m->call_index;
  mod->param_count = m->param_count;
  return true;
}

static bool site_take(nne__rep_t *r, const void *msg, void *item, size_t i) {
  desc_dec_t *st = r->ctx;
  const nnedit_v1_Site *m = msg;
  nne_client_site_t *site = item;

  /* A view must be one that can be taken: callers may index with it. */
  if (m->view_parts < 0 ||
      (m->view_parts > 0 &&
       (m->view_part < 0 || m->view_part >= m->view_parts)))
    return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                         "sites[%zu] ('%s'): view part %d of %d", i, m->name,
                         (int)m->view_part, (int)m->view_parts);
  if (!nne__strs_add(&st->block, m->name, &site->name) ||
      !nne__strs_add(&st->block, m->tl_name, &site->tl_name) ||
      !nne__strs_add(&st->block, m->reason, &site->reason) ||
      !nne__strs_add(&st->block, m->canonical, &site->canonical) ||
      !nne__strs_add(&st->block, m->module, &site->module))
    return nne__dec_fail(&st->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "out of memory");
  site->available = m->available;
  site->kind = (nne_client_site_kind_t)m->kind;
  site->index = m->index;
  site->view_parts = m->view_parts;
  site->view_part = m->view_part;
  site->view_heads = m->view_heads;
  return true;
}

static void desc_dec_init(desc_dec_t *st, nne_client_model_desc_t *out) {
  st->out = out;
  /* A name is a module spelling: bounded like a path. */
  st->std =
      (nne__strlist_t){.block = &st->block,
                       .max = NNE_CLIENT_MAX_MODULE_NAMES,
                       .max_len = NNE__FIELD_SIZE(nnedit_v1_Module, path) - 1,
                       .noun = "names",
                       .dec = &st->dec};
  st->alias = st->std;
  /* At most 2 * 64 names per module, 65536 modules. */
  st->names.max =
      (size_t)2 * NNE_CLIENT_MAX_MODULE_NAMES * NNE_CLIENT_MAX_MODULES;
  st->modules = (nne__rep_t){.items = (void **)&out->modules,
                             .n = &out->n_modules,
                             .item_size = sizeof *out->modules,
                             .max = NNE_CLIENT_MAX_MODULES,
                             .over_code = NNE_CLIENT_RESOURCE_EXHAUSTED,
                             .what = "modules",
                             .noun = "modules",
                             .fields = nnedit_v1_Module_fields,
                             .msg = &st->mod_msg,
                             .msg_size = sizeof st->mod_msg,
                             .arm = module_arm,
                             .take = module_take,
                             .ctx = st,
                             .dec = &st->dec};
  st->sites = (nne__rep_t){.items = (void **)&out->sites,
                           .n = &out->n_sites,
                           .item_size = sizeof *out->sites,
                           .max = NNE_CLIENT_MAX_SITES,
                           .over_code = NNE_CLIENT_RESOURCE_EXHAUSTED,
                           .what = "sites",
                           .noun = "sites",
                           .fields = nnedit_v1_Site_fields,
                           .msg = &st->site_msg,
                           .msg_size = sizeof st->site_msg,
                           .take = site_take,
                           .ctx = st,
                           .dec = &st->dec};
  info_dec_init(&st->info, &st->dec);
}

int nne_client_models_describe_module(nne_client_t *cli, const char *name,
                                      const char *module,
                                      nne_client_model_desc_t *out,
                                      nne_client_err_t *err) {
  nnedit_v1_DescribeModelRequest req = nnedit_v1_DescribeModelRequest_init_zero;
  nnedit_v1_DescribeModelResponse resp =
      nnedit_v1_DescribeModelResponse_init_zero;
  desc_dec_t *st;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || out == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "models_describe: NULL argument");
  if ((rc = nne__check_name("models_describe", name, sizeof req.name, err)) < 0)
    return rc;
  nne__copy_str(req.name, sizeof req.name, name);
  if (!nne__copy_str(req.module, sizeof req.module, module))
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "models_describe: module '%.64s...' is longer than "
                        "%zu bytes",
                        module, sizeof req.module - 1);
  if ((st = calloc(1, sizeof *st)) == NULL)
    return nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                        "models_describe: out of memory");
  desc_dec_init(st, out);
  st->subtree = req.module[0] != '\0';
  /* A hostile reply cannot fill the block without limit: every string in
   * it came from a message of at most opts.max_recv_bytes. */
  NNE_PB_DEC(resp.modules, nne__rep_dec, &st->modules);
  NNE_PB_DEC(resp.sites, nne__rep_dec, &st->sites);
  info_dec_arm(&st->info, &resp.model);
  rc = nne__unary(cli, M_DESCRIBE, nnedit_v1_DescribeModelRequest_fields, &req,
                  nnedit_v1_DescribeModelResponse_fields, &resp, &st->dec, err);
  if (rc == 0 && !resp.has_model)
    rc = nne__err_set(err, NNE_CLIENT_INTERNAL,
                      "Models/Describe: reply has no model");
  if (rc == 0 && !info_take(&out->model, &resp.model, &st->info))
    rc = nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                      "Models/Describe: out of memory");
  if (rc == 0) {
    /* The block and the names stop moving here: they become the desc's. */
    out->strings = st->block.p;
    out->names = st->names.v;
    st->block.p = NULL;
    st->names.v = NULL;
    nne__fix_names(out->names, st->names.n, out->strings);
    nne__fix(out->modules, out->n_modules, sizeof *out->modules, &module_layout,
             out->strings, out->names);
    nne__fix(out->sites, out->n_sites, sizeof *out->sites, &site_layout,
             out->strings, out->names);
  }
  info_dec_free(&st->info);
  nne__strlist_free(&st->std);
  nne__strlist_free(&st->alias);
  free(st->names.v);
  free(st->block.p);
  free(st);
  if (rc < 0)
    nne_client_model_desc_free(out);
  return rc;
}

int nne_client_models_describe(nne_client_t *cli, const char *name,
                               nne_client_model_desc_t *out,
                               nne_client_err_t *err) {
  return nne_client_models_describe_module(cli, name, NULL, out, err);
}

void nne_client_model_desc_free(nne_client_model_desc_t *desc) {
  if (desc == NULL)
    return;
  nne_client_model_info_free(&desc->model);
  free(desc->modules);
  free(desc->sites);
  free(desc->names);
  free(desc->strings);
  memset(desc, 0, sizeof *desc);
}
