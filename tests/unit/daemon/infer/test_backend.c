/* test_backend.c — daemon/infer/backend.{h,c}: the one get-or-build-then-
 * cache path for compiled backends, on the GPT-2 fixture and a hand-made
 * LOADED entry with its own backend cache.
 *
 * It proves single flight: two requests planned for the same new structure
 * before either job runs join one build; made ready from two threads
 * released together, both get the same variant and exactly one of them
 * compiled it; commit caches one entry and counts one build; a request
 * planned after the build finished but before commit joins the finished
 * build and compiles nothing; after commit a plan is a cache hit. A build
 * the engine refuses fails both joiners with the same error, caches
 * nothing, and the next request starts a new build. Commit on a model that
 * is not LOADED caches nothing. With an edit set, the plan puts the set's
 * hooks with the request's sites and the per-request runtime tracks each
 * edit at the hook of its own site, in request order, even when the
 * request's sites renumber the hooks.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edit/compiler.h"
#include "edit/editor.h"
#include "edit/runtime.h"
#include "engine/engine.h"
#include "entry_helpers.h"
#include "infer/backend.h"
#include "unit_main.h"

static nne_model_t *model;
static nne_model_entry_t entry;

static void setup(void) {
  model = nne_th_load_fixture_model("gpt2-script");
  nne_th_entry_init(&entry, "gpt2-script", model, 1u << 30);
}

static void teardown(void) {
  nne_th_entry_close(&entry);
  nne_model_unref(model);
  model = NULL;
}

/* ---- two executors at once ------------------------------------------------
 */

typedef struct ready_arg {
  nne_infer_backend_t *bk;
  pthread_barrier_t *go;
  int rc;
  nne_err_t err;
} ready_arg_t;

static void *ready_thread(void *p) {
  ready_arg_t *a = p;
  pthread_barrier_wait(a->go);
  a->rc = nne_infer_backend_ready(a->bk, model, &a->err);
  return NULL;
}

/* nne_infer_backend_ready on both, from two threads released together. */
static void ready_both(nne_infer_backend_t *b1, nne_infer_backend_t *b2,
                       ready_arg_t out[2]) {
  pthread_barrier_t go;
  pthread_t th[2];
  int i;
  ck_assert_int_eq(pthread_barrier_init(&go, NULL, 2), 0);
  memset(out, 0, 2 * sizeof *out);
  out[0].bk = b1;
  out[1].bk = b2;
  for (i = 0; i < 2; i++) {
    out[i].go = &go;
    ck_assert_int_eq(pthread_create(&th[i], NULL, ready_thread, &out[i]), 0);
  }
  for (i = 0; i < 2; i++)
    ck_assert_int_eq(pthread_join(th[i], NULL), 0);
  pthread_barrier_destroy(&go);
}

static void plan(nne_infer_backend_t *bk, const nne_names_site_t *sites,
                 size_t n) {
  nne_err_t err;
  ck_assert_msg(
      nne_infer_backend_plan(bk, &entry, model, NULL, sites, n, &err) == 0,
      "%s", err.msg);
}

START_TEST(test_single_flight_build) {
  nne_names_site_t s[2];
  nne_infer_backend_t b1, b2, b3, b4;
  ready_arg_t r[2];
  nne_backend_t *c1, *c2, *c3;
  nne_err_t err;

  s[0] = nne_th_site(model, "transformer.h.0.mlp", NNE_NAMES_SITE_OUTPUT, 0);
  s[1] = nne_th_site(model, "transformer.h.1", NNE_NAMES_SITE_INPUT, 0);
  /* Both requests are planned (loop) before either job runs: the second
   * joins the first one's build. The site order does not matter. */
  plan(&b1, s, 2);
  {
    nne_names_site_t rev[2] = {s[1], s[0]};
    plan(&b2, rev, 2);
  }
  ck_assert(!b1.hit && !b2.hit);
  ck_assert_ptr_null(b1.variant);
  ck_assert_ptr_nonnull(b1.build);
  ck_assert_ptr_eq(b2.build, b1.build);
  ck_assert_int_eq(b1.build->refs, 2);
  ck_assert_str_eq(b1.plan.key, b2.plan.key);
  ck_assert_str_eq(b1.digest, b2.digest);
  ck_assert_uint_eq(entry.backends.misses, 2);

  /* Two executor threads at once: one compiles, the other waits for it. */
  ready_both(&b1, &b2, r);
  ck_assert_msg(r[0].rc == 0 && r[1].rc == 0, "%s / %s", r[0].err.msg,
                r[1].err.msg);
  ck_assert_ptr_nonnull(b1.variant);
  ck_assert_ptr_eq(b1.variant, b2.variant);
  ck_assert_int_eq((int)b1.built + (int)b2.built, 1);
  ck_assert(atomic_load(&b1.build->done));

  /* Finished but not yet committed: a third request joins the finished
   * build and gets its variant without compiling. */
  plan(&b3, s, 2);
  ck_assert_ptr_eq(b3.build, b1.build);
  ck_assert_int_eq(nne_infer_backend_ready(&b3, model, &err), 0);
  ck_assert(!b3.built);
  ck_assert_ptr_eq(b3.variant, b1.variant);

  /* Back on the loop: one entry, one build counted, however many commit,
   * and in whatever order (the waiter first here when it is b1). */
  c1 = nne_infer_backend_commit(b1.built ? &b2 : &b1, &entry);
  c2 = nne_infer_backend_commit(b1.built ? &b1 : &b2, &entry);
  c3 = nne_infer_backend_commit(&b3, &entry);
  ck_assert_ptr_nonnull(c1);
  ck_assert_ptr_eq(c2, c1);
  ck_assert_ptr_eq(c3, c1);
  ck_assert_ptr_eq(c1->variant, b1.variant);
  ck_assert_uint_eq(entry.backends.count, 1);
  ck_assert_uint_eq(entry.backends.builds, 1);
  ck_assert_ptr_null(entry.backends.building); /* unlisted */
  ck_assert_str_eq(c1->key, b1.plan.key);

  /* After commit: a hit, no build joined, the cached variant. */
  plan(&b4, s, 2);
  ck_assert(b4.hit);
  ck_assert_ptr_null(b4.build);
  ck_assert_ptr_eq(b4.variant, c1->variant);
  ck_assert_int_eq(nne_infer_backend_ready(&b4, model, &err), 0);
  ck_assert(!b4.built);
  ck_assert_ptr_eq(nne_infer_backend_commit(&b4, &entry), c1);
  ck_assert_uint_eq(entry.backends.builds, 1);
  ck_assert_uint_eq(entry.backends.count, 1);

  nne_infer_backend_free(&b1, &entry);
  nne_infer_backend_free(&b2, &entry);
  nne_infer_backend_free(&b3, &entry);
  nne_infer_backend_free(&b4, &entry);
  ck_assert_ptr_null(b1.build);
  ck_assert_ptr_null(b1.variant);
}
END_TEST

START_TEST(test_failed_build_fails_every_joiner) {
  /* GPT-2's attention has a softmax or two in its own code, not a
   * hundred: the plan is fine, the engine refuses the variant. */
  nne_names_site_t s =
      nne_th_node_site(model, "transformer.h.0.attn", "aten::softmax", 99);
  nne_infer_backend_t b1, b2, b3;
  nne_backend_build_t *failed;
  ready_arg_t r[2];

  plan(&b1, &s, 1);
  plan(&b2, &s, 1);
  ck_assert_ptr_eq(b1.build, b2.build);
  ready_both(&b1, &b2, r);
  ck_assert_int_ne(r[0].rc, 0);
  ck_assert_int_eq(r[0].rc, r[1].rc);
  ck_assert_int_eq(r[0].err.code, r[0].rc);
  ck_assert_str_eq(r[0].err.msg, r[1].err.msg);
  ck_assert_ptr_nonnull(strstr(r[0].err.msg, "softmax"));
  ck_assert_int_eq((int)b1.built + (int)b2.built, 1); /* tried once */
  ck_assert_ptr_null(b1.variant);
  ck_assert_ptr_null(b2.variant);

  /* Nothing cached, nothing counted, and the failed build is no longer
   * findable: the next request tries again with a build of its own. */
  ck_assert_ptr_null(nne_infer_backend_commit(&b1, &entry));
  ck_assert_ptr_null(nne_infer_backend_commit(&b2, &entry));
  ck_assert_uint_eq(entry.backends.count, 0);
  ck_assert_uint_eq(entry.backends.builds, 0);
  ck_assert_ptr_null(entry.backends.building);
  failed = b1.build;
  plan(&b3, &s, 1);
  ck_assert(!b3.hit);
  ck_assert_ptr_nonnull(b3.build);
  ck_assert_ptr_ne(b3.build, failed);
  nne_infer_backend_free(&b1, &entry);
  nne_infer_backend_free(&b2, &entry);
  nne_infer_backend_free(&b3, &entry); /* never ran: released unbuilt */
  ck_assert_ptr_null(entry.backends.building);
}
END_TEST

START_TEST(test_commit_on_a_model_not_loaded_caches_nothing) {
  nne_names_site_t s = nne_th_site(model, "lm_head", NNE_NAMES_SITE_INPUT, 0);
  nne_infer_backend_t bk, again;
  nne_err_t err;

  plan(&bk, &s, 1);
  ck_assert_int_eq(nne_infer_backend_ready(&bk, model, &err), 0);
  ck_assert(bk.built);
  /* Unload accepted the model while the job ran. */
  entry.state = NNE_MODEL_UNLOADING;
  ck_assert_ptr_null(nne_infer_backend_commit(&bk, &entry));
  ck_assert_uint_eq(entry.backends.count, 0);
  ck_assert_ptr_null(nne_backend_cache_get(&entry.backends, bk.plan.key));
  /* The build is over either way: no later request joins it. */
  ck_assert_ptr_null(entry.backends.building);
  /* The request's own variant is still good for its reply. */
  ck_assert_uint_gt(nne_variant_bytes(bk.variant), 0);
  nne_infer_backend_free(&bk, &entry);
  /* Loaded again: the same structure is a miss that builds anew. */
  entry.state = NNE_MODEL_LOADED;
  plan(&again, &s, 1);
  ck_assert(!again.hit);
  ck_assert_ptr_nonnull(again.build);
  nne_infer_backend_free(&again, &entry);
}
END_TEST

START_TEST(test_ready_without_plan) {
  nne_infer_backend_t bk;
  nne_err_t err;
  memset(&bk, 0, sizeof bk);
  ck_assert_int_eq(nne_infer_backend_ready(&bk, model, &err), NNE_EINTERNAL);
}
END_TEST

/* ---- with an edit set ------------------------------------------------------
 */

/* A set as Apply leaves it: edits at sites A (transformer.h.1.output),
 * B (transformer.h.0.mlp.output), A again, planned, tracked, with its own
 * variant. Not added to an editor: the backend path only reads it. */
static nne_edit_set_t *make_set(void) {
  static const nne_edit_op_t ops[3] = {NNE_EDIT_ADD, NNE_EDIT_SCALE,
                                       NNE_EDIT_SAVE};
  nne_edit_set_t *set = calloc(1, sizeof *set);
  nne_names_site_t sites[3];
  nne_err_t err;
  size_t k;

  ck_assert_ptr_nonnull(set);
  snprintf(set->id, sizeof set->id, "es-00000000000000e1");
  set->entry = &entry;
  set->model = nne_model_ref(model);
  sites[0] = nne_th_site(model, "transformer.h.1", NNE_NAMES_SITE_OUTPUT, 0);
  sites[1] =
      nne_th_site(model, "transformer.h.0.mlp", NNE_NAMES_SITE_OUTPUT, 0);
  sites[2] = sites[0];
  set->edits = calloc(3, sizeof *set->edits);
  ck_assert_ptr_nonnull(set->edits);
  set->n_edits = 3;
  for (k = 0; k < 3; k++) {
    set->edits[k].site = sites[k];
    set->edits[k].site_text = strdup(sites[k].canonical);
    set->edits[k].op = ops[k];
    set->edits[k].scalar = 1;
  }
  ck_assert_int_eq(nne_compiler_plan(model, sites, 3, &set->plan, &err), 0);
  ck_assert_uint_eq(set->plan.n_hooks, 2);
  for (k = 0; k < 3; k++)
    set->edits[k].hook = set->plan.item_hook[k];
  ck_assert_int_eq(nne_edit_set_track(set, &err), 0);
  ck_assert_msg(nne_variant_build(model, set->plan.engine_sites,
                                  set->plan.n_hooks, &set->variant, &err) == 0,
                "%s", err.msg);
  return set;
}

static void free_set(nne_edit_set_t *set) {
  nne_editor_t tmp;
  nne_editor_init(&tmp);
  tmp.sets = set;
  tmp.count = 1;
  nne_editor_close(&tmp);
}

/* The edits the runtime applies at hook h, as edit indices. */
static size_t edits_at(const nne_runtime_t *rt, size_t h, size_t *out) {
  size_t k, n = 0;
  for (k = rt->edit_start[h]; k < rt->edit_start[h + 1]; k++)
    out[n++] = rt->edit_idx[k];
  return n;
}

START_TEST(test_runtime_tracks_set_edits_with_request_sites) {
  nne_edit_set_t *set = make_set();
  nne_names_site_t req[2];
  nne_infer_backend_t bk;
  nne_runtime_t rt;
  nne_err_t err;
  size_t k, h, got[4], n, total = 0;
  int hA, hB;

  /* A deeper site than any of the set's (the attention's projection) and
   * a shallower one: the set's hooks are renumbered in the merged plan. */
  req[0] = nne_th_site(model, "transformer.h.0.attn.c_attn",
                       NNE_NAMES_SITE_OUTPUT, 0);
  req[1] = nne_th_site(model, "lm_head", NNE_NAMES_SITE_OUTPUT, 0);
  ck_assert_int_eq(
      nne_infer_backend_plan(&bk, &entry, model, set, req, 2, &err), 0);
  ck_assert(bk.own_plan);
  ck_assert_uint_eq(bk.n_set_hooks, 2);
  ck_assert_uint_eq(bk.plan.n_hooks, 4);
  ck_assert_str_eq(bk.plan.hooks[0].canonical,
                   "transformer.h.0.attn.c_attn.output");
  for (k = 0; k < 2; k++)
    ck_assert_str_eq(
        bk.plan.hooks[nne_infer_backend_site_hook(&bk, k)].canonical,
        req[k].canonical);
  /* Every edit's hook in this plan is its own site's. */
  for (k = 0; k < 3; k++)
    ck_assert_str_eq(
        bk.plan.hooks[nne_infer_backend_edit_hook(&bk, set, k)].canonical,
        set->edits[k].site.canonical);
  hA = nne_infer_backend_edit_hook(&bk, set, 0);
  hB = nne_infer_backend_edit_hook(&bk, set, 1);
  ck_assert_int_ne(hA, set->edits[0].hook); /* really renumbered */

  ck_assert_int_eq(nne_infer_backend_runtime(&bk, set, &rt, &err), 0);
  ck_assert_uint_eq(rt.n_hooks, 4);
  ck_assert_uint_eq(rt.n_edits, 3);
  ck_assert_ptr_eq(rt.edits, set->edits);
  ck_assert_str_eq(rt.edit_set_id, set->id);
  /* A's edits in request order (ADD before SAVE), B's SCALE, nothing at
   * the request's own hooks; nothing is captured yet. */
  n = edits_at(&rt, (size_t)hA, got);
  ck_assert_uint_eq(n, 2);
  ck_assert_uint_eq(got[0], 0);
  ck_assert_uint_eq(got[1], 2);
  n = edits_at(&rt, (size_t)hB, got);
  ck_assert_uint_eq(n, 1);
  ck_assert_uint_eq(got[0], 1);
  for (k = 0; k < 2; k++)
    ck_assert_uint_eq(
        edits_at(&rt, (size_t)nne_infer_backend_site_hook(&bk, k), got), 0);
  for (h = 0; h < rt.n_hooks; h++) {
    total += edits_at(&rt, h, got);
    ck_assert(!rt.capture[h]);
  }
  ck_assert_uint_eq(total, 3);
  nne_runtime_free(&rt);
  nne_infer_backend_free(&bk, &entry);
  free_set(set);
}
END_TEST

START_TEST(test_set_alone_uses_its_own_backend) {
  /* No request sites: the set's plan and (pinned) variant serve, a hit,
   * and the edits stay at the set's own hooks. */
  nne_edit_set_t *set = make_set();
  nne_infer_backend_t bk;
  nne_runtime_t rt;
  nne_err_t err;
  size_t k, got[4];

  ck_assert_int_eq(
      nne_infer_backend_plan(&bk, &entry, model, set, NULL, 0, &err), 0);
  ck_assert(bk.hit);
  ck_assert(!bk.own_plan);
  ck_assert_ptr_null(bk.build);
  ck_assert_ptr_eq(bk.variant, set->variant);
  ck_assert_str_eq(bk.plan.key, set->plan.key);
  ck_assert_int_eq(nne_infer_backend_ready(&bk, model, &err), 0);
  for (k = 0; k < 3; k++)
    ck_assert_int_eq(nne_infer_backend_edit_hook(&bk, set, k),
                     set->edits[k].hook);
  ck_assert_int_eq(nne_infer_backend_runtime(&bk, set, &rt, &err), 0);
  ck_assert_uint_eq(edits_at(&rt, (size_t)set->edits[0].hook, got), 2);
  ck_assert_uint_eq(got[0], 0);
  ck_assert_uint_eq(got[1], 2);
  /* Not the request's to cache: commit leaves the cache alone. */
  ck_assert_ptr_null(nne_infer_backend_commit(&bk, &entry));
  ck_assert_uint_eq(entry.backends.count, 0);
  nne_runtime_free(&rt);
  nne_infer_backend_free(&bk, &entry);
  /* The set's plan was only borrowed. */
  ck_assert_uint_eq(set->plan.n_hooks, 2);
  ck_assert_ptr_nonnull(set->plan.key);
  free_set(set);
}
END_TEST

START_TEST(test_runtime_without_a_set) {
  nne_names_site_t s =
      nne_th_site(model, "transformer.h.1", NNE_NAMES_SITE_OUTPUT, 0);
  nne_infer_backend_t bk;
  nne_runtime_t rt;
  nne_err_t err;

  plan(&bk, &s, 1);
  ck_assert_int_eq(nne_infer_backend_runtime(&bk, NULL, &rt, &err), 0);
  ck_assert_uint_eq(rt.n_hooks, 1);
  ck_assert_uint_eq(rt.n_edits, 0);
  ck_assert_uint_eq(rt.edit_start[1], 0);
  nne_runtime_free(&rt);
  nne_infer_backend_free(&bk, &entry);
}
END_TEST

static Suite *infer_backend_suite(void) {
  Suite *s = suite_create("infer_backend");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_single_flight_build);
  tcase_add_test(tc, test_failed_build_fails_every_joiner);
  tcase_add_test(tc, test_commit_on_a_model_not_loaded_caches_nothing);
  tcase_add_test(tc, test_ready_without_plan);
  tcase_add_test(tc, test_runtime_tracks_set_edits_with_request_sites);
  tcase_add_test(tc, test_set_alone_uses_its_own_backend);
  tcase_add_test(tc, test_runtime_without_a_set);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return nne_test_run_suite(infer_backend_suite());
}
