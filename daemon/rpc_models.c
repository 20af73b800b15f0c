/* rpc_models.c — nnedit.v1.Models: List, Load, Unload, Describe. */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "nnedit/v1/models.pb.h"
#include "rpc.h"

/* Fills the wire form of a model's state. */
static void fill_info(nnedit_v1_ModelInfo *mi, const nne_model_entry_t *e) {
  memset(mi, 0, sizeof *mi);
  snprintf(mi->name, sizeof mi->name, "%s", e->name);
  mi->state = (nnedit_v1_ModelState)e->state;
  snprintf(mi->family, sizeof mi->family, "%s", e->spec.family);
  snprintf(mi->export_kind, sizeof mi->export_kind, "%s", e->spec.export_kind);
  if (e->state == NNE_MODEL_FAILED)
    snprintf(mi->error, sizeof mi->error, "%s", e->error);
  mi->in_flight = (uint32_t)e->in_flight;
  if (e->model != NULL) {
    snprintf(mi->device, sizeof mi->device, "%s", e->device);
    mi->dtype = (nnedit_v1_DType)e->dtype;
    mi->param_count = nne_model_param_count(e->model);
    mi->param_bytes = nne_model_param_bytes(e->model);
    mi->vocab_size = e->vocab_size;
    mi->module_count = (uint32_t)nne_model_module_count(e->model);
    mi->max_batch = e->max_batch;
    mi->max_seq_len = e->max_seq_len;
    mi->load_ms = e->load_ms;
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

void nne_rpc_models_list(nne_server_t *srv, nne_call_t *call,
                         grpc_byte_buffer *req) {
  nnedit_v1_ListModelsRequest in = nnedit_v1_ListModelsRequest_init_zero;
  nnedit_v1_ListModelsResponse out = nnedit_v1_ListModelsResponse_init_zero;
  nne_model_entry_t *e, *arr[4096];
  list_ctx_t lc = {arr, 0};
  nne_pb_list_enc_t list;
  nne_err_t err;

  if (!nne_rpc_decode(call, req, nnedit_v1_ListModelsRequest_fields, &in, NULL))
    return;
  if (nne_registry_scan(&srv->registry, &err) != 0)
    nne_log_warn("%s", err.msg); /* keep serving what we know */
  for (e = srv->registry.entries; e != NULL && lc.n < 4096; e = e->next)
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

void nne_rpc_models_load(nne_server_t *srv, nne_call_t *call,
                         grpc_byte_buffer *req) {
  nnedit_v1_LoadModelRequest in = nnedit_v1_LoadModelRequest_init_zero;
  nne_model_entry_t *e;
  nne_err_t err;
  char canon[32] = "";
  nne_dtype_t dt = NNE_DTYPE_INVALID;

  if (!nne_rpc_decode(call, req, nnedit_v1_LoadModelRequest_fields, &in, NULL))
    return;
  if (nne_registry_lookup(&srv->registry, "name", in.name, &e, &err) != 0)
    goto fail;
  if (in.device[0] != '\0' &&
      nne_engine_device_parse(in.device, canon, sizeof canon, &err) != 0) {
    nne_err_prefix(&err, "device");
    goto fail;
  }
  if (in.dtype != nnedit_v1_DType_DTYPE_UNSPECIFIED) {
    dt = (nne_dtype_t)in.dtype;
    if (dt != NNE_DTYPE_F32 && dt != NNE_DTYPE_F16 && dt != NNE_DTYPE_BF16 &&
        dt != NNE_DTYPE_F64) {
      nne_err_set(&err, NNE_EINVAL,
                  "dtype: %d is not a floating type a model can be loaded "
                  "in (FLOAT32, FLOAT16, BFLOAT16, FLOAT64)",
                  (int)in.dtype);
      goto fail;
    }
  }
  nne_call_ref(call); /* until on_loaded */
  if (nne_registry_load(&srv->registry, e, canon, dt, on_loaded, call, &err) !=
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
  nne_server_t *srv = call->srv;
  nnedit_v1_UnloadModelResponse out = nnedit_v1_UnloadModelResponse_init_zero;

  if (err != NULL) {
    nne_call_fail_err(call, err);
  } else {
    out.has_model = true;
    fill_info(&out.model, e);
    nne_call_reply(call, nnedit_v1_UnloadModelResponse_fields, &out);
  }
  nne_call_unref(call);
  nne_server_poke(srv);
}

void nne_rpc_models_unload(nne_server_t *srv, nne_call_t *call,
                           grpc_byte_buffer *req) {
  nnedit_v1_UnloadModelRequest in = nnedit_v1_UnloadModelRequest_init_zero;
  nne_model_entry_t *e;
  nne_err_t err;

  if (!nne_rpc_decode(call, req, nnedit_v1_UnloadModelRequest_fields, &in,
                      NULL))
    return;
  if (nne_registry_lookup(&srv->registry, "name", in.name, &e, &err) != 0) {
    nne_call_fail_err(call, &err);
    return;
  }
  nne_call_ref(call);
  if (nne_registry_unload(&srv->registry, e, on_unloaded, call, &err) != 0) {
    nne_call_unref(call);
    nne_call_fail_err(call, &err);
  }
}

/* ---- Describe ------------------------------------------------------------- */

typedef struct describe_ctx {
  const nne_model_t *model;
} describe_ctx_t;

static bool fill_module(void *ctx, size_t i, void *msg) {
  describe_ctx_t *dc = ctx;
  nnedit_v1_Module *m = msg;
  const nne_module_info_t *mi = nne_model_module(dc->model, i);

  if (mi == NULL || strlen(mi->path) >= sizeof m->path)
    return false;
  memcpy(m->path, mi->path, strlen(mi->path) + 1);
  snprintf(m->class_name, sizeof m->class_name, "%s", mi->class_name);
  snprintf(m->type_name, sizeof m->type_name, "%s", mi->type_name);
  m->parent = mi->parent;
  m->depth = (uint32_t)mi->depth;
  m->call_index = mi->call_index;
  m->param_count = mi->param_count;
  return true;
}

void nne_rpc_models_describe(nne_server_t *srv, nne_call_t *call,
                             grpc_byte_buffer *req) {
  nnedit_v1_DescribeModelRequest in = nnedit_v1_DescribeModelRequest_init_zero;
  nnedit_v1_DescribeModelResponse out = nnedit_v1_DescribeModelResponse_init_zero;
  nne_model_entry_t *e;
  nne_model_t *model;
  describe_ctx_t dc;
  nne_pb_list_enc_t list;
  nne_err_t err;

  if (!nne_rpc_decode(call, req, nnedit_v1_DescribeModelRequest_fields, &in,
                      NULL))
    return;
  if (nne_registry_lookup(&srv->registry, "name", in.name, &e, &err) != 0 ||
      nne_registry_acquire(&srv->registry, e, &model, &err) != 0) {
    nne_call_fail_err(call, &err);
    return;
  }
  out.has_model = true;
  fill_info(&out.model, e);
  dc.model = model;
  list.n = nne_model_module_count(model);
  list.fill = fill_module;
  list.ctx = &dc;
  list.msg_size = sizeof(nnedit_v1_Module);
  NNE_PB_ENC(out.modules, nne_pb_list_enc, &list);
  nne_call_reply(call, nnedit_v1_DescribeModelResponse_fields, &out);
  nne_registry_release(&srv->registry, e, model);
}
