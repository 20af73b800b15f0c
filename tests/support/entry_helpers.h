/* entry_helpers.h — a model entry made by hand around a fixture model, for
 * unit tests of the modules that take an nne_model_entry_t (daemon/infer/,
 * daemon/edit/) without a registry, an executor or a loop.
 *
 * Those modules read only a few of the entry's fields (state, limits, the
 * backend cache, the edit-set count), so a test fills exactly those and
 * keeps the engine handle itself:
 *
 *   nne_model_t *m = nne_th_load_fixture_model("gpt2-script");
 *   nne_model_entry_t e;
 *   nne_th_entry_init(&e, "gpt2-script", m, 1u << 30);
 *   nne_names_site_t s =
 *       nne_th_site(m, "transformer.h.0", NNE_NAMES_SITE_OUTPUT, 0);
 *   ...
 *   nne_th_entry_close(&e);   clears the backend cache
 *   nne_model_unref(m);
 *
 * Header-only (static inline); include <check.h> first: failures are
 * ck_assert()s in the calling test.
 */
#ifndef NNE_TEST_ENTRY_HELPERS_H
#define NNE_TEST_ENTRY_HELPERS_H

#include <stdio.h>
#include <string.h>

#include "edit/backend_cache.h"
#include "engine/engine.h"
#include "fixtures.h"
#include "names/names.h"
#include "registry.h"

/* <repo>/<name>/model.pt on the CPU, in the archive's dtype. */
static inline nne_model_t *nne_th_load_fixture_model(const char *name) {
  char path[1024];
  nne_model_t *m = NULL;
  nne_err_t err = {0};
  snprintf(path, sizeof path, "%s/%s/model.pt", nne_fixtures_dir(), name);
  ck_assert_msg(nne_model_load(path, "cpu", NNE_DTYPE_INVALID, &m, &err) == 0,
                "load %s: %s (generate the fixtures first: build the "
                "project)",
                path, err.msg);
  return m;
}

/* A LOADED entry holding `m` (borrowed: the caller keeps its reference) with
 * an empty backend cache of `cache_bytes`. The limits are those of the tiny
 * fixture models (model.json: vocabulary 1000, max_batch 16, max_seq_len
 * 64, pad token 0); a test that needs others sets them after. */
static inline void nne_th_entry_init(nne_model_entry_t *e, const char *name,
                                     nne_model_t *m, size_t cache_bytes) {
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", name);
  e->state = NNE_MODEL_LOADED;
  e->model = m;
  snprintf(e->device, sizeof e->device, "cpu");
  e->dtype = m != NULL ? nne_model_dtype(m) : NNE_DTYPE_F32;
  e->vocab_size = 1000;
  e->max_batch = 16;
  e->max_seq_len = 64;
  e->pad_token_id = 0;
  nne_backend_cache_init(&e->backends, cache_bytes);
}

static inline void nne_th_entry_close(nne_model_entry_t *e) {
  nne_backend_cache_clear(&e->backends);
}

/* A module site (input or output `index`) by raw path, in the canonical
 * form names.h gives it ("X.input", "X.output", "X.output.1"). */
static inline nne_names_site_t nne_th_site(nne_model_t *m, const char *path,
                                           nne_names_site_kind_t kind,
                                           int index) {
  nne_names_site_t s;
  memset(&s, 0, sizeof s);
  s.module = nne_model_module_find(m, path);
  ck_assert_msg(s.module >= 0, "no module '%s'", path);
  s.kind = kind;
  s.index = index;
  if (index == 0)
    snprintf(s.canonical, sizeof s.canonical, "%s.%s", path,
             kind == NNE_NAMES_SITE_INPUT ? "input" : "output");
  else
    snprintf(s.canonical, sizeof s.canonical, "%s.%s.%d", path,
             kind == NNE_NAMES_SITE_INPUT ? "input" : "output", index);
  return s;
}

/* Output 0 of the `occurrence`-th node of `node_kind` in the module's own
 * code ("X:aten::softmax#0"). Nothing checks here that the node exists:
 * building a variant does. */
static inline nne_names_site_t nne_th_node_site(nne_model_t *m,
                                                const char *path,
                                                const char *node_kind,
                                                int occurrence) {
  nne_names_site_t s;
  memset(&s, 0, sizeof s);
  s.module = nne_model_module_find(m, path);
  ck_assert_msg(s.module >= 0, "no module '%s'", path);
  s.kind = NNE_NAMES_SITE_NODE;
  s.index = 0;
  snprintf(s.node_kind, sizeof s.node_kind, "%s", node_kind);
  s.node_occurrence = occurrence;
  snprintf(s.canonical, sizeof s.canonical, "%s:%s#%d", path, node_kind,
           occurrence);
  return s;
}

#endif /* NNE_TEST_ENTRY_HELPERS_H */
