/* admin.c — nnedit.v1.Admin/Stats. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "nnedit/v1/admin.pb.h"

#define M_STATS "/nnedit.v1.Admin/Stats"

_Static_assert(NNE__FIELD_SIZE(nnedit_v1_BackendCacheStats, model) ==
                   NNE_CLIENT_MODEL_NAME_MAX,
               "BackendCacheStats.model bound");

static bool cache_take(nne__rep_t *r, const void *msg, void *item, size_t i) {
  const nnedit_v1_BackendCacheStats *m = msg;
  nne_client_cache_stats_t *c = item;
  (void)r;
  (void)i;
  memcpy(c->model, m->model, sizeof c->model);
  c->hits = m->hits;
  c->misses = m->misses;
  c->entries = m->entries;
  c->bytes = m->bytes;
  c->capacity_bytes = m->capacity_bytes;
  c->evictions = m->evictions;
  c->compile_ms_total = m->compile_ms_total;
  c->compile_ms_last = m->compile_ms_last;
  c->pinned = m->pinned;
  return true;
}

int nne_client_admin_stats(nne_client_t *cli, nne_client_stats_t *out,
                           nne_client_err_t *err) {
  nnedit_v1_StatsRequest req = nnedit_v1_StatsRequest_init_zero;
  nnedit_v1_StatsResponse resp = nnedit_v1_StatsResponse_init_zero;
  nnedit_v1_BackendCacheStats msg;
  nne__dec_t dec;
  nne__rep_t caches;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || out == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "admin_stats: NULL argument");
  memset(&dec, 0, sizeof dec);
  caches = (nne__rep_t){.items = (void **)&out->caches,
                        .n = &out->n_caches,
                        .item_size = sizeof *out->caches,
                        .max = NNE_CLIENT_MAX_MODELS,
                        .over_code = NNE_CLIENT_RESOURCE_EXHAUSTED,
                        .what = "caches",
                        .noun = "caches",
                        .fields = nnedit_v1_BackendCacheStats_fields,
                        .msg = &msg,
                        .msg_size = sizeof msg,
                        .take = cache_take,
                        .dec = &dec};
  NNE_PB_DEC(resp.caches, nne__rep_dec, &caches);
  rc = nne__unary(cli, M_STATS, nnedit_v1_StatsRequest_fields, &req,
                  nnedit_v1_StatsResponse_fields, &resp, &dec, err);
  if (rc < 0) {
    nne_client_stats_free(out);
    return rc;
  }
  out->queue_depth = resp.queue_depth;
  out->queue_capacity = resp.queue_capacity;
  out->calls_total = resp.calls_total;
  out->live_calls = resp.live_calls;
  out->edit_sets = resp.edit_sets;
  return 0;
}

void nne_client_stats_free(nne_client_stats_t *stats) {
  if (stats == NULL)
    return;
  free(stats->caches);
  memset(stats, 0, sizeof *stats);
}
