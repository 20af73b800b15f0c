/* rpc_admin.c — nnedit.v1.Admin/Stats: cache, queue and memory figures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnedit/v1/admin.pb.h"
#include "rpc/rpc.h"

typedef struct stats_ctx {
  nne_model_entry_t **entries;
  size_t n;
  /* Devices: "cpu", then each other device a loaded model is on. */
  nne_device_memory_t *devs;
  size_t n_devs;
} stats_ctx_t;

static bool fill_cache(void *ctx, size_t i, void *msg) {
  stats_ctx_t *sc = ctx;
  nnedit_v1_BackendCacheStats *o = msg;
  const nne_model_entry_t *e = sc->entries[i];
  const nne_backend_cache_t *c = &e->backends;
  snprintf(o->model, sizeof o->model, "%s", e->name);
  o->hits = c->hits;
  o->misses = c->misses;
  o->entries = c->count;
  o->bytes = c->bytes;
  o->capacity_bytes = c->capacity_bytes;
  o->evictions = c->evictions;
  o->compile_ms_total = c->compile_ms_total;
  o->compile_ms_last = c->compile_ms_last;
  o->pinned = (uint32_t)nne_backend_cache_pinned(c);
  return true;
}

static bool fill_memory(void *ctx, size_t i, void *msg) {
  stats_ctx_t *sc = ctx;
  nnedit_v1_ModelMemory *o = msg;
  const nne_model_entry_t *e = sc->entries[i];
  snprintf(o->model, sizeof o->model, "%s", e->name);
  snprintf(o->device, sizeof o->device, "%s", e->device);
  o->weights_bytes = e->model != NULL ? nne_model_resident_bytes(e->model) : 0;
  o->kv_cache_bytes = e->kv_bytes;
  o->backend_bytes = e->backends.bytes;
  return true;
}

static bool fill_device(void *ctx, size_t i, void *msg) {
  stats_ctx_t *sc = ctx;
  nnedit_v1_DeviceMemory *o = msg;
  const nne_device_memory_t *m = &sc->devs[i];
  size_t k;
  snprintf(o->device, sizeof o->device, "%s", m->device);
  o->total_bytes = m->total_bytes;
  o->free_bytes = m->free_bytes;
  o->allocated_bytes = m->allocated_bytes;
  o->reserved_bytes = m->reserved_bytes;
  o->peak_allocated_bytes = m->peak_allocated_bytes;
  o->allocator_stats = m->allocator_stats != 0;
  for (k = 0; k < sc->n; k++) {
    const nne_model_entry_t *e = sc->entries[k];
    if (e->model != NULL && strcmp(e->device, m->device) == 0) {
      o->models_bytes += nne_model_resident_bytes(e->model);
      o->models++;
    }
  }
  return true;
}

void nne_rpc_admin_stats(nne_call_t *call, grpc_byte_buffer *req) {
  nne_daemon_t *d = nne_call_app(call);
  nnedit_v1_StatsRequest in = nnedit_v1_StatsRequest_init_zero;
  nnedit_v1_StatsResponse out = nnedit_v1_StatsResponse_init_zero;
  nne_pb_list_enc_t list, mem_list, dev_list;
  stats_ctx_t sc;
  nne_model_entry_t *e;
  size_t n = 0;

  if (!nne_rpc_decode(call, req, nnedit_v1_StatsRequest_fields, &in, NULL))
    return;
  for (e = d->registry.entries; e != NULL; e = e->next)
    n++;
  sc.entries = calloc(n ? n : 1, sizeof *sc.entries);
  sc.devs = calloc(n + 1, sizeof *sc.devs);
  sc.n = sc.n_devs = 0;
  if (sc.entries == NULL || sc.devs == NULL) {
    free(sc.entries);
    free(sc.devs);
    nne_call_fail(call, NNE_ENOMEM, "out of memory");
    return;
  }
  /* Models that are (or were) loaded have a cache worth reporting. */
  for (e = d->registry.entries; e != NULL; e = e->next)
    if (e->state == NNE_MODEL_LOADED || e->state == NNE_MODEL_UNLOADING)
      sc.entries[sc.n++] = e;
  list.n = sc.n;
  list.fill = fill_cache;
  list.ctx = &sc;
  list.msg_size = sizeof(nnedit_v1_BackendCacheStats);
  NNE_PB_ENC(out.caches, nne_pb_list_enc, &list);
  mem_list = list;
  mem_list.fill = fill_memory;
  mem_list.msg_size = sizeof(nnedit_v1_ModelMemory);
  NNE_PB_ENC(out.memory, nne_pb_list_enc, &mem_list);
  sc.n_devs = nne_registry_devices(&d->registry, true, sc.devs, n + 1);
  dev_list = list;
  dev_list.n = sc.n_devs;
  dev_list.fill = fill_device;
  dev_list.msg_size = sizeof(nnedit_v1_DeviceMemory);
  NNE_PB_ENC(out.devices, nne_pb_list_enc, &dev_list);
  out.queue_depth = (uint32_t)nne_executor_queued(&d->compute);
  out.queue_capacity = (uint32_t)d->cfg->max_queue;
  if (d->server != NULL) {
    nne_server_stats_t st;
    nne_server_stats(d->server, &st);
    out.calls_total = st.calls_total;
    out.live_calls = (uint32_t)st.live_calls;
  }
  out.edit_sets = (uint32_t)d->editor.count;
  nne_call_reply(call, nnedit_v1_StatsResponse_fields, &out);
  free(sc.entries);
  free(sc.devs);
}
