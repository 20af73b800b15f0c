/* test_editor.c — daemon/edit/editor.{h,c}: edit sets as a service, on a
 * hand-made LOADED entry of the GPT-2 fixture with a real backend cache
 * entry (a compiled variant) for the sets to pin.
 *
 * It proves the set life cycle: add pins the backend and counts the set
 * on its model, find sees live sets only, drop unpins at once (freeing the
 * backend when no other set pins it, reporting its bytes) but frees a set
 * that calls still hold only at their last release (ASan would report a use
 * after free, LSan a set never freed); that add refuses a model that is not
 * LOADED with NNE_ESTATE and leaves everything as it was; that
 * nne_editor_ids lists the model's live sets newest first and ends with
 * "and N more" when they do not fit; that the edit tracker keeps request
 * order within a hook; and the id format.
 */
#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edit/backend_cache.h"
#include "edit/compiler.h"
#include "edit/editor.h"
#include "engine/engine.h"
#include "entry_helpers.h"
#include "unit_main.h"

static nne_model_t *model;
static nne_model_entry_t entry;
static nne_backend_t *backend; /* transformer.h.0.output, in entry's cache */
static size_t backend_bytes;

static void setup(void) {
  nne_names_site_t s;
  nne_compile_plan_t p;
  nne_variant_t *v;
  nne_err_t err;

  model = nne_th_load_fixture_model("gpt2-script");
  nne_th_entry_init(&entry, "gpt2-script", model, 1u << 30);
  s = nne_th_site(model, "transformer.h.0", NNE_NAMES_SITE_OUTPUT, 0);
  ck_assert_int_eq(nne_compiler_plan(model, &s, 1, &p, &err), 0);
  ck_assert_msg(nne_variant_build(model, p.engine_sites, p.n_hooks, &v, &err) ==
                    0,
                "%s", err.msg);
  ck_assert_int_eq(
      nne_backend_cache_put(&entry.backends, p.key, v, 1, &backend, &err), 0);
  backend_bytes = nne_variant_bytes(v);
  nne_variant_unref(v);
  nne_compiler_plan_free(&p);
}

static void teardown(void) {
  nne_th_entry_close(&entry);
  nne_model_unref(model);
  model = NULL;
}

/* A complete set as Apply makes one: `n` edits at transformer.h.0.output
 * (its plan's only hook), tracked, holding the model and the backend's
 * variant, pointing at `b` (not pinned yet: add pins). */
static nne_edit_set_t *new_set(const char *id, nne_model_entry_t *e,
                               nne_backend_t *b, size_t n) {
  nne_edit_set_t *set = calloc(1, sizeof *set);
  nne_names_site_t *sites = calloc(n ? n : 1, sizeof *sites);
  nne_err_t err;
  size_t k;

  ck_assert_ptr_nonnull(set);
  ck_assert_ptr_nonnull(sites);
  snprintf(set->id, sizeof set->id, "%s", id);
  set->entry = e;
  set->model = nne_model_ref(model);
  set->edits = calloc(n ? n : 1, sizeof *set->edits);
  ck_assert_ptr_nonnull(set->edits);
  set->n_edits = n;
  for (k = 0; k < n; k++) {
    nne_edit_t *ed = &set->edits[k];
    ed->site_text = strdup("layers.0");
    ed->name = strdup("saved");
    ed->op = NNE_EDIT_SAVE;
    ed->site = nne_th_site(model, "transformer.h.0", NNE_NAMES_SITE_OUTPUT, 0);
    sites[k] = ed->site;
  }
  ck_assert_int_eq(nne_compiler_plan(model, sites, n, &set->plan, &err), 0);
  for (k = 0; k < n; k++)
    set->edits[k].hook = set->plan.item_hook[k];
  ck_assert_int_eq(nne_edit_set_track(set, &err), 0);
  set->variant = nne_variant_ref(b->variant);
  set->backend = b;
  free(sites);
  return set;
}

/* Frees a set the editor never took (what Apply does when add fails). */
static void discard(nne_edit_set_t *set) {
  nne_editor_t tmp;
  nne_editor_init(&tmp);
  set->backend = NULL; /* never pinned */
  set->next = NULL;
  tmp.sets = set;
  tmp.count = 1;
  nne_editor_close(&tmp);
}

START_TEST(test_add_find_drop) {
  nne_editor_t ed;
  nne_edit_set_t *set;

  nne_editor_init(&ed);
  set = new_set("es-0000000000000001", &entry, backend, 2);
  ck_assert_int_eq(nne_editor_add(&ed, set, NULL), 0);
  ck_assert_int_eq(backend->pins, 1);
  ck_assert_int_eq(backend->refs, 2);
  ck_assert_int_eq(entry.edit_sets, 1);
  ck_assert_uint_eq(ed.count, 1);
  ck_assert_ptr_eq(nne_editor_find(&ed, "es-0000000000000001"), set);
  ck_assert_ptr_null(nne_editor_find(&ed, "es-0000000000000002"));
  ck_assert_ptr_null(nne_editor_find(&ed, ""));
  /* No call holds it: drop frees it now; the backend was pinned by it
   * alone, so it leaves the cache and its bytes are reported. */
  ck_assert_uint_eq(nne_editor_drop(&ed, set), backend_bytes);
  ck_assert_uint_eq(ed.count, 0);
  ck_assert_int_eq(entry.edit_sets, 0);
  ck_assert_uint_eq(entry.backends.count, 0);
  ck_assert_uint_eq(entry.backends.bytes, 0);
  ck_assert_ptr_null(nne_editor_find(&ed, "es-0000000000000001"));
  backend = NULL; /* freed with its last pin */
  nne_editor_close(&ed);
}
END_TEST

START_TEST(test_drop_while_held_frees_at_last_release) {
  nne_editor_t ed;
  nne_edit_set_t *set;
  nne_variant_t *running;

  nne_editor_init(&ed);
  set = new_set("es-00000000000000aa", &entry, backend, 1);
  ck_assert_int_eq(nne_editor_add(&ed, set, NULL), 0);
  /* Two calls run on the set; each keeps its own variant reference (as
   * infer/backend.c does), so the backend may go at drop. */
  nne_edit_set_hold(set);
  nne_edit_set_hold(set);
  running = nne_variant_ref(set->variant);
  ck_assert_uint_eq(nne_editor_drop(&ed, set), backend_bytes);
  backend = NULL;
  /* Unlisted and unfindable at once, but alive for its calls. */
  ck_assert_ptr_null(nne_editor_find(&ed, "es-00000000000000aa"));
  ck_assert_uint_eq(ed.count, 0);
  ck_assert_int_eq(entry.edit_sets, 0);
  ck_assert(set->dropped);
  ck_assert_ptr_null(set->backend);
  ck_assert_str_eq(set->id, "es-00000000000000aa");
  ck_assert_uint_eq(set->n_edits, 1);
  ck_assert_str_eq(set->edits[0].site_text, "layers.0");
  ck_assert_uint_eq(set->track_start[1], 1);
  /* A second Drop of the same set (it raced the first) changes nothing. */
  ck_assert_uint_eq(nne_editor_drop(&ed, set), 0);
  ck_assert_int_eq(entry.edit_sets, 0);
  nne_edit_set_release(&ed, set);
  ck_assert_int_eq(set->in_flight, 1);
  ck_assert_str_eq(set->id, "es-00000000000000aa"); /* still there */
  nne_edit_set_release(&ed, set); /* the last call: freed now */
  /* The running forward's variant outlived both backend and set. */
  ck_assert_uint_gt(nne_variant_bytes(running), 0);
  nne_variant_unref(running);
  nne_editor_close(&ed);
}
END_TEST

START_TEST(test_hold_release_without_drop_keeps_the_set) {
  nne_editor_t ed;
  nne_edit_set_t *set;

  nne_editor_init(&ed);
  set = new_set("es-00000000000000bb", &entry, backend, 1);
  ck_assert_int_eq(nne_editor_add(&ed, set, NULL), 0);
  nne_edit_set_hold(set);
  nne_edit_set_release(&ed, set);
  ck_assert_int_eq(set->in_flight, 0);
  ck_assert_ptr_eq(nne_editor_find(&ed, "es-00000000000000bb"), set);
  ck_assert_int_eq(backend->pins, 1);
  /* Shutdown frees live sets and unpins without dropping: the backend
   * stays cached (the cache is cleared on its own). */
  nne_editor_close(&ed);
  ck_assert_uint_eq(ed.count, 0);
  ck_assert_ptr_null(ed.sets);
  ck_assert_int_eq(backend->pins, 0);
  ck_assert(backend->listed);
  ck_assert_uint_eq(entry.backends.count, 1);
}
END_TEST

START_TEST(test_shared_backend_goes_with_the_last_set) {
  nne_editor_t ed;
  nne_edit_set_t *a, *b;

  nne_editor_init(&ed);
  a = new_set("es-000000000000000a", &entry, backend, 1);
  b = new_set("es-000000000000000b", &entry, backend, 3);
  ck_assert_int_eq(nne_editor_add(&ed, a, NULL), 0);
  ck_assert_int_eq(nne_editor_add(&ed, b, NULL), 0);
  ck_assert_int_eq(backend->pins, 2);
  ck_assert_int_eq(entry.edit_sets, 2);
  ck_assert_uint_eq(nne_editor_drop(&ed, a), 0);
  ck_assert(backend->listed);
  ck_assert_int_eq(backend->pins, 1);
  ck_assert_uint_eq(entry.backends.count, 1);
  ck_assert_ptr_eq(nne_editor_find(&ed, "es-000000000000000b"), b);
  ck_assert_uint_eq(nne_editor_drop(&ed, b), backend_bytes);
  ck_assert_uint_eq(entry.backends.count, 0);
  backend = NULL;
  nne_editor_close(&ed);
}
END_TEST

START_TEST(test_add_refuses_a_model_not_loaded) {
  static const nne_model_state_t states[] = {
      NNE_MODEL_AVAILABLE, NNE_MODEL_LOADING, NNE_MODEL_UNLOADING,
      NNE_MODEL_FAILED};
  nne_editor_t ed;
  size_t i;

  nne_editor_init(&ed);
  for (i = 0; i < sizeof states / sizeof states[0]; i++) {
    nne_edit_set_t *set = new_set("es-00000000000000cc", &entry, backend, 1);
    nne_err_t err;
    memset(&err, 0, sizeof err);
    entry.state = states[i];
    ck_assert_int_eq(nne_editor_add(&ed, set, &err), NNE_ESTATE);
    ck_assert_int_eq(err.code, NNE_ESTATE);
    ck_assert_ptr_nonnull(strstr(err.msg, "'gpt2-script'"));
    /* Nothing was added: no pin, no count, not findable. */
    ck_assert_uint_eq(ed.count, 0);
    ck_assert_ptr_null(ed.sets);
    ck_assert_int_eq(entry.edit_sets, 0);
    ck_assert_int_eq(backend->pins, 0);
    ck_assert_int_eq(backend->refs, 1);
    ck_assert_ptr_null(nne_editor_find(&ed, "es-00000000000000cc"));
    discard(set); /* the caller still owns it */
  }
  entry.state = NNE_MODEL_LOADED;
  nne_editor_close(&ed);
}
END_TEST

START_TEST(test_ids_lists_live_sets_of_the_model) {
  nne_model_entry_t other;
  nne_editor_t ed;
  nne_edit_set_t *sets[4], *foreign;
  nne_backend_t *other_backend;
  nne_err_t err;
  char buf[512], want[512];

  /* Another model with its own cache entry of the same structure. */
  nne_th_entry_init(&other, "other", model, 1u << 30);
  ck_assert_int_eq(nne_backend_cache_put(&other.backends, backend->key,
                                         backend->variant, 1, &other_backend,
                                         &err),
                   0);
  nne_editor_init(&ed);
  sets[0] = new_set("es-0000000000000000", &entry, backend, 1);
  sets[1] = new_set("es-1111111111111111", &entry, backend, 1);
  foreign = new_set("es-ffffffffffffffff", &other, other_backend, 1);
  sets[2] = new_set("es-2222222222222222", &entry, backend, 1);
  sets[3] = new_set("es-3333333333333333", &entry, backend, 1);
  ck_assert_int_eq(nne_editor_add(&ed, sets[0], NULL), 0);
  ck_assert_int_eq(nne_editor_add(&ed, sets[1], NULL), 0);
  ck_assert_int_eq(nne_editor_add(&ed, foreign, NULL), 0);
  ck_assert_int_eq(nne_editor_add(&ed, sets[2], NULL), 0);
  ck_assert_int_eq(nne_editor_add(&ed, sets[3], NULL), 0);
  /* Newest first; the other model's set is not listed. */
  ck_assert_uint_eq(nne_editor_ids(&ed, &entry, buf, sizeof buf), 4);
  ck_assert_str_eq(buf, "es-3333333333333333, es-2222222222222222, "
                        "es-1111111111111111, es-0000000000000000");
  ck_assert_uint_eq(nne_editor_ids(&ed, &other, buf, sizeof buf), 1);
  ck_assert_str_eq(buf, "es-ffffffffffffffff");
  /* A dropped set is gone from the list even while a call holds it. */
  nne_edit_set_hold(sets[2]);
  nne_editor_drop(&ed, sets[2]);
  ck_assert_uint_eq(nne_editor_ids(&ed, &entry, buf, sizeof buf), 3);
  ck_assert_str_eq(buf, "es-3333333333333333, es-1111111111111111, "
                        "es-0000000000000000");
  nne_edit_set_release(&ed, sets[2]);
  /* Too small for all: as many as fit, then the count of the rest. */
  ck_assert_uint_eq(nne_editor_ids(&ed, &entry, buf, 80), 3);
  snprintf(want, sizeof want,
           "es-3333333333333333, es-1111111111111111 "
           "and 1 more");
  ck_assert_str_eq(buf, want);
  nne_editor_close(&ed);
  nne_th_entry_close(&other);
}
END_TEST

START_TEST(test_ids_and_n_more_with_many_sets) {
  /* Unload's refusal message uses a 512-byte buffer: with more sets than
   * fit, the ids shown are the newest, comma-separated, and the tail counts
   * exactly the ones left out. */
  enum { N = 40 };
  nne_editor_t ed;
  char buf[512], id[24], *p;
  size_t i, shown = 0, more = 0;
  int consumed = 0;

  nne_editor_init(&ed);
  for (i = 0; i < N; i++) {
    snprintf(id, sizeof id, "es-%016zx", i);
    ck_assert_int_eq(nne_editor_add(&ed, new_set(id, &entry, backend, 1), NULL),
                     0);
  }
  ck_assert_uint_eq(nne_editor_ids(&ed, &entry, buf, sizeof buf), N);
  ck_assert_uint_lt(strlen(buf), sizeof buf);
  for (p = buf; strncmp(p, "es-", 3) == 0; shown++) {
    snprintf(id, sizeof id, "es-%016zx", (size_t)N - 1 - shown);
    ck_assert_msg(strncmp(p, id, 19) == 0, "id %zu: '%.19s', expected %s",
                  shown, p, id);
    p += 19;
    if (strncmp(p, ", ", 2) == 0)
      p += 2;
  }
  ck_assert_uint_gt(shown, 10); /* most of 512 bytes are used */
  ck_assert_uint_lt(shown, N);
  ck_assert_int_eq(sscanf(p, " and %zu more%n", &more, &consumed), 1);
  ck_assert_uint_eq(shown + more, N);
  ck_assert_uint_eq(strlen(p), (size_t)consumed); /* nothing cut off */
  /* Even a buffer too small for one id stays bounded and terminated. */
  ck_assert_uint_eq(nne_editor_ids(&ed, &entry, buf, 8), N);
  ck_assert_uint_lt(strlen(buf), 8);
  ck_assert_uint_eq(nne_editor_ids(&ed, &entry, buf, 0), N);
  nne_editor_close(&ed);
}
END_TEST

START_TEST(test_track_keeps_request_order_within_a_hook) {
  /* Five edits over a three-hook plan, hooks 2, 0, 2, 1, 2: the tracker's
   * rows are hook 0: [1], hook 1: [3], hook 2: [0, 2, 4]. */
  nne_edit_set_t set;
  nne_names_site_t s[3];
  nne_err_t err;
  static const int hooks[5] = {2, 0, 2, 1, 2};
  static const size_t want_start[4] = {0, 1, 2, 5};
  static const size_t want_track[5] = {1, 3, 0, 2, 4};
  nne_edit_t edits[5];
  size_t i;

  memset(&set, 0, sizeof set);
  memset(edits, 0, sizeof edits);
  s[0] = nne_th_site(model, "transformer.h.0", NNE_NAMES_SITE_OUTPUT, 0);
  s[1] = nne_th_site(model, "transformer.h.1", NNE_NAMES_SITE_OUTPUT, 0);
  s[2] = nne_th_site(model, "lm_head", NNE_NAMES_SITE_OUTPUT, 0);
  ck_assert_int_eq(nne_compiler_plan(model, s, 3, &set.plan, &err), 0);
  ck_assert_uint_eq(set.plan.n_hooks, 3);
  for (i = 0; i < 5; i++)
    edits[i].hook = hooks[i];
  set.edits = edits;
  set.n_edits = 5;
  ck_assert_int_eq(nne_edit_set_track(&set, &err), 0);
  for (i = 0; i < 4; i++)
    ck_assert_uint_eq(set.track_start[i], want_start[i]);
  for (i = 0; i < 5; i++)
    ck_assert_uint_eq(set.track[i], want_track[i]);
  free(set.track_start);
  free(set.track);
  nne_compiler_plan_free(&set.plan);
}
END_TEST

START_TEST(test_new_id_format) {
  char a[24], b[24];
  int i;
  nne_edit_set_new_id(a);
  nne_edit_set_new_id(b);
  ck_assert_uint_eq(strlen(a), 19);
  ck_assert(strncmp(a, "es-", 3) == 0);
  for (i = 3; i < 19; i++)
    ck_assert(isxdigit((unsigned char)a[i]) && !isupper((unsigned char)a[i]));
  /* 64 random bits: two in a row are equal with probability 2^-64. */
  ck_assert_str_ne(a, b);
}
END_TEST

static Suite *editor_suite(void) {
  Suite *s = suite_create("editor");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_add_find_drop);
  tcase_add_test(tc, test_drop_while_held_frees_at_last_release);
  tcase_add_test(tc, test_hold_release_without_drop_keeps_the_set);
  tcase_add_test(tc, test_shared_backend_goes_with_the_last_set);
  tcase_add_test(tc, test_add_refuses_a_model_not_loaded);
  tcase_add_test(tc, test_ids_lists_live_sets_of_the_model);
  tcase_add_test(tc, test_ids_and_n_more_with_many_sets);
  tcase_add_test(tc, test_track_keeps_request_order_within_a_hook);
  tcase_add_test(tc, test_new_id_format);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return nne_test_run_suite(editor_suite());
}
