/* test_runtime.c — daemon/edit/runtime.{h,c}: what happens at a backend's
 * hooks during one forward, driven by calling nne_runtime_hook directly on
 * hand-made tensors (no model, no variant).
 *
 * It proves that a hook's edits apply in request order (ADD then SCALE and
 * SCALE then ADD give different values, each the expected one), that the
 * value handed in is never written, that a SAVE edit copies the value as it
 * is at its place in the chain while the request's capture copies it after
 * all edits, that copies are taken once per forward, that hooks without
 * edits or out of range leave the value alone, that the response budget
 * stops the forward with RESOURCE_EXHAUSTED naming the limit, that a set
 * cancel flag stops it before anything is applied, and that a failing edit
 * is named by edit set, position and site.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edit/editor.h"
#include "edit/runtime.h"
#include "engine/engine.h"
#include "unit_main.h"

static const float base[6] = {1, 2, 3, 4, 5, 6};

static nne_tensor_t *value(void) {
  int64_t shape[2] = {2, 3};
  nne_tensor_t *t = NULL;
  nne_err_t err;
  ck_assert_msg(nne_tensor_from_host(NNE_DTYPE_F32, shape, 2, base, &t, &err) ==
                    0,
                "%s", err.msg);
  return t;
}

static const float *f32(nne_tensor_t *t) {
  const void *p;
  nne_err_t err;
  ck_assert_ptr_nonnull(t);
  ck_assert_int_eq(nne_tensor_dtype(t), NNE_DTYPE_F32);
  ck_assert_msg(nne_tensor_host_data(t, &p, &err) == 0, "%s", err.msg);
  return p;
}

static void expect_values(nne_tensor_t *t, const float *want, size_t n) {
  const float *p = f32(t);
  size_t i;
  ck_assert_uint_eq((size_t)nne_tensor_numel(t), n);
  for (i = 0; i < n; i++)
    ck_assert_msg(p[i] == want[i], "element %zu: %g, expected %g", i,
                  (double)p[i], (double)want[i]);
}

static nne_edit_t scalar_edit(nne_edit_op_t op, double s, const char *site) {
  nne_edit_t e;
  memset(&e, 0, sizeof e);
  e.op = op;
  e.scalar = s;
  e.use_scalar = op != NNE_EDIT_SAVE && op != NNE_EDIT_ZERO;
  e.site_text = (char *)site;
  return e;
}

/* A runtime over `edits` (all at the hooks given) with `n_hooks` hooks. */
static void runtime(nne_runtime_t *rt, size_t n_hooks, const nne_edit_t *edits,
                    size_t n, const int *hooks) {
  nne_err_t err;
  ck_assert_int_eq(nne_runtime_init(rt, n_hooks, n, &err), 0);
  ck_assert_int_eq(nne_runtime_track(rt, edits, hooks, &err), 0);
  rt->budget = 1u << 20;
  rt->edit_set_id = "es-test";
}

/* Runs hook `site` on a fresh value; returns the replacement (or NULL) and
 * checks that the value handed in kept its numbers. */
static nne_tensor_t *fire(nne_runtime_t *rt, int site, int want_rc) {
  nne_tensor_t *v = value(), *rep = NULL;
  ck_assert_int_eq(nne_runtime_hook(rt, site, v, &rep), want_rc);
  expect_values(v, base, 6);
  nne_tensor_unref(v);
  return rep;
}

START_TEST(test_edits_apply_in_request_order) {
  nne_edit_t add_scale[2], scale_add[2];
  static const int hooks[2] = {0, 0};
  static const float want_as[6] = {4, 6, 8, 10, 12, 14}; /* (v + 1) * 2 */
  static const float want_sa[6] = {3, 5, 7, 9, 11, 13};  /* v * 2 + 1 */
  nne_runtime_t rt;
  nne_tensor_t *r;

  add_scale[0] = scalar_edit(NNE_EDIT_ADD, 1, "a");
  add_scale[1] = scalar_edit(NNE_EDIT_SCALE, 2, "a");
  scale_add[0] = add_scale[1];
  scale_add[1] = add_scale[0];

  runtime(&rt, 1, add_scale, 2, hooks);
  r = fire(&rt, 0, 0);
  expect_values(r, want_as, 6);
  nne_tensor_unref(r);
  nne_runtime_free(&rt);

  runtime(&rt, 1, scale_add, 2, hooks);
  r = fire(&rt, 0, 0);
  expect_values(r, want_sa, 6);
  nne_tensor_unref(r);
  nne_runtime_free(&rt);
}
END_TEST

START_TEST(test_track_keeps_request_order_within_a_hook) {
  nne_edit_t e[5];
  static const int hooks[5] = {2, 0, 2, 1, 2};
  static const size_t want_start[4] = {0, 1, 2, 5};
  static const size_t want_idx[5] = {1, 3, 0, 2, 4};
  nne_runtime_t rt;
  size_t i;
  for (i = 0; i < 5; i++)
    e[i] = scalar_edit(NNE_EDIT_ADD, (double)i, "x");
  runtime(&rt, 3, e, 5, hooks);
  for (i = 0; i < 4; i++)
    ck_assert_uint_eq(rt.edit_start[i], want_start[i]);
  for (i = 0; i < 5; i++)
    ck_assert_uint_eq(rt.edit_idx[i], want_idx[i]);
  nne_runtime_free(&rt);
  nne_runtime_free(&rt); /* freeing twice is harmless */
}
END_TEST

START_TEST(test_edits_only_at_their_hook) {
  nne_edit_t e[1];
  static const int hooks[1] = {1};
  static const float want[6] = {11, 12, 13, 14, 15, 16};
  nne_runtime_t rt;
  nne_tensor_t *r;

  e[0] = scalar_edit(NNE_EDIT_ADD, 10, "x");
  runtime(&rt, 3, e, 1, hooks);
  /* Other hooks, and sites the runtime does not know, leave the value. */
  ck_assert_ptr_null(fire(&rt, 0, 0));
  ck_assert_ptr_null(fire(&rt, 2, 0));
  ck_assert_ptr_null(fire(&rt, 3, 0));
  ck_assert_ptr_null(fire(&rt, -1, 0));
  r = fire(&rt, 1, 0);
  expect_values(r, want, 6);
  nne_tensor_unref(r);
  ck_assert_uint_eq(rt.used, 0); /* no copies were asked for */
  nne_runtime_free(&rt);
}
END_TEST

START_TEST(test_ranges_reach_the_edit) {
  nne_edit_t e[1];
  static const int hooks[1] = {0};
  static const float want[6] = {0, 2, 3, 0, 5, 6};
  nne_runtime_t rt;
  nne_tensor_t *r;

  e[0] = scalar_edit(NNE_EDIT_ZERO, 0, "x");
  e[0].ranges[0].dim = -1;
  e[0].ranges[0].start = 0;
  e[0].ranges[0].stop = 1;
  e[0].n_ranges = 1;
  runtime(&rt, 1, e, 1, hooks);
  r = fire(&rt, 0, 0);
  expect_values(r, want, 6);
  nne_tensor_unref(r);
  nne_runtime_free(&rt);
}
END_TEST

START_TEST(test_save_edits_copy_their_place_in_the_chain) {
  /* ADD 1, SAVE, SCALE 2, SAVE: the first SAVE sees v + 1, the second and
   * the request's capture (after all edits) see (v + 1) * 2. */
  nne_edit_t e[4];
  static const int hooks[4] = {0, 0, 0, 0};
  static const float plus1[6] = {2, 3, 4, 5, 6, 7};
  static const float times2[6] = {4, 6, 8, 10, 12, 14};
  nne_runtime_t rt;
  nne_tensor_t *r;

  e[0] = scalar_edit(NNE_EDIT_ADD, 1, "x");
  e[1] = scalar_edit(NNE_EDIT_SAVE, 0, "x");
  e[2] = scalar_edit(NNE_EDIT_SCALE, 2, "x");
  e[3] = scalar_edit(NNE_EDIT_SAVE, 0, "x");
  runtime(&rt, 1, e, 4, hooks);
  rt.capture[0] = true;
  r = fire(&rt, 0, 0);
  expect_values(r, times2, 6);
  ck_assert_ptr_null(rt.edit_saves[0]);
  ck_assert_ptr_null(rt.edit_saves[2]);
  expect_values(rt.edit_saves[1], plus1, 6);
  expect_values(rt.edit_saves[3], times2, 6);
  expect_values(rt.captured[0], times2, 6);
  /* Copies, not the tensor that goes back into the graph. */
  ck_assert_ptr_ne(rt.captured[0], r);
  ck_assert_ptr_ne(rt.edit_saves[3], r);
  ck_assert_uint_eq(rt.used, 3 * 24);
  nne_tensor_unref(r);
  /* The saved values do not depend on the replacement staying alive. */
  expect_values(rt.captured[0], times2, 6);
  nne_runtime_free(&rt);
}
END_TEST

START_TEST(test_save_only_keeps_the_value_and_copies_it) {
  nne_edit_t e[1];
  static const int hooks[1] = {0};
  nne_runtime_t rt;

  e[0] = scalar_edit(NNE_EDIT_SAVE, 0, "x");
  runtime(&rt, 1, e, 1, hooks);
  rt.capture[0] = true;
  /* Nothing edited: no replacement; both copies outlive the value (fire()
   * frees it). */
  ck_assert_ptr_null(fire(&rt, 0, 0));
  expect_values(rt.edit_saves[0], base, 6);
  expect_values(rt.captured[0], base, 6);
  nne_runtime_free(&rt);
}
END_TEST

START_TEST(test_copies_once_per_forward) {
  /* A module called twice fires its hook twice: the first value is the one
   * saved, and the second firing takes nothing from the budget. */
  nne_edit_t e[1];
  static const int hooks[1] = {0};
  static const float other[6] = {9, 9, 9, 9, 9, 9};
  int64_t shape[2] = {2, 3};
  nne_runtime_t rt;
  nne_tensor_t *v2 = NULL, *rep = NULL;
  nne_err_t err;

  e[0] = scalar_edit(NNE_EDIT_SAVE, 0, "x");
  runtime(&rt, 1, e, 1, hooks);
  rt.capture[0] = true;
  ck_assert_ptr_null(fire(&rt, 0, 0));
  ck_assert_uint_eq(rt.used, 48);
  ck_assert_int_eq(
      nne_tensor_from_host(NNE_DTYPE_F32, shape, 2, other, &v2, &err), 0);
  ck_assert_int_eq(nne_runtime_hook(&rt, 0, v2, &rep), 0);
  ck_assert_ptr_null(rep);
  expect_values(rt.edit_saves[0], base, 6);
  expect_values(rt.captured[0], base, 6);
  ck_assert_uint_eq(rt.used, 48);
  nne_tensor_unref(v2);
  nne_runtime_free(&rt);
}
END_TEST

START_TEST(test_budget_stops_the_forward) {
  nne_edit_t e[2];
  static const int hooks[2] = {0, 0};
  nne_runtime_t rt;

  /* ADD, SAVE (24 bytes) and a capture (24 bytes): 48 fits exactly ... */
  e[0] = scalar_edit(NNE_EDIT_ADD, 1, "x");
  e[1] = scalar_edit(NNE_EDIT_SAVE, 0, "x");
  runtime(&rt, 1, e, 2, hooks);
  rt.capture[0] = true;
  rt.budget = 48;
  nne_tensor_unref(fire(&rt, 0, 0));
  ck_assert_ptr_nonnull(rt.captured[0]);
  nne_runtime_free(&rt);

  /* ... 40 does not: the capture is refused and nothing replaces the value
   * (the edited copy is released: LSan would see it otherwise). */
  runtime(&rt, 1, e, 2, hooks);
  rt.capture[0] = true;
  rt.budget = 40;
  ck_assert_ptr_null(fire(&rt, 0, NNE_ERESOURCE));
  ck_assert_int_eq(rt.err.code, NNE_ERESOURCE);
  ck_assert_msg(strstr(rt.err.msg, "40 bytes") != NULL &&
                    strstr(rt.err.msg, "--max-response-bytes") != NULL,
                "%s", rt.err.msg);
  ck_assert_ptr_nonnull(rt.edit_saves[1]); /* within the budget */
  ck_assert_ptr_null(rt.captured[0]);
  nne_runtime_free(&rt);

  /* A zero budget refuses the first copy, a SAVE edit's too. */
  runtime(&rt, 1, e, 2, hooks);
  rt.budget = 0;
  ck_assert_ptr_null(fire(&rt, 0, NNE_ERESOURCE));
  ck_assert_ptr_null(rt.edit_saves[1]);
  nne_runtime_free(&rt);
}
END_TEST

START_TEST(test_cancel_flag_stops_the_forward) {
  nne_edit_t e[2];
  static const int hooks[2] = {0, 0};
  atomic_int flag = 0;
  nne_runtime_t rt;

  e[0] = scalar_edit(NNE_EDIT_ADD, 1, "x");
  e[1] = scalar_edit(NNE_EDIT_SAVE, 0, "x");
  runtime(&rt, 1, e, 2, hooks);
  rt.capture[0] = true;
  rt.cancel = &flag;
  atomic_store(&flag, 1);
  ck_assert_ptr_null(fire(&rt, 0, NNE_ECANCELED));
  ck_assert_int_eq(rt.err.code, NNE_ECANCELED);
  ck_assert_str_eq(rt.err.msg, "cancelled during the forward");
  ck_assert_ptr_null(rt.edit_saves[1]);
  ck_assert_ptr_null(rt.captured[0]);
  ck_assert_uint_eq(rt.used, 0);
  /* Any hook stops, also one with nothing to do. */
  ck_assert_ptr_null(fire(&rt, 5, NNE_ECANCELED));
  /* Cleared (never in practice, but the flag is what is read): it runs. */
  atomic_store(&flag, 0);
  nne_tensor_unref(fire(&rt, 0, 0));
  ck_assert_ptr_nonnull(rt.captured[0]);
  nne_runtime_free(&rt);
}
END_TEST

START_TEST(test_failing_edit_is_named) {
  /* An operand that does not broadcast: the engine's reason, prefixed with
   * the edit set, the edit's position in the set and its site as written. */
  nne_edit_t e[2];
  static const int hooks[2] = {0, 0};
  static const float four[4] = {1, 1, 1, 1};
  int64_t shape[1] = {4};
  nne_runtime_t rt;
  nne_tensor_t *op = NULL;
  nne_err_t err;
  const char *want = "edit_set es-test: edits[1] (layers.0.mlp): ";

  ck_assert_int_eq(
      nne_tensor_from_host(NNE_DTYPE_F32, shape, 1, four, &op, &err), 0);
  e[0] = scalar_edit(NNE_EDIT_SCALE, 3, "layers.0");
  e[1] = scalar_edit(NNE_EDIT_ADD, 0, "layers.0.mlp");
  e[1].operand = op;
  e[1].use_scalar = false;
  runtime(&rt, 1, e, 2, hooks);
  rt.capture[0] = true;
  ck_assert_ptr_null(fire(&rt, 0, NNE_EINVAL));
  ck_assert_msg(strncmp(rt.err.msg, want, strlen(want)) == 0, "%s", rt.err.msg);
  ck_assert_ptr_nonnull(strstr(rt.err.msg, "broadcast"));
  ck_assert_ptr_null(rt.captured[0]);
  nne_runtime_free(&rt);
  nne_tensor_unref(op);
}
END_TEST

START_TEST(test_tensor_operand_applies) {
  /* A row vector operand broadcasts over the rows: v * [1, 0, -1]. */
  nne_edit_t e[1];
  static const int hooks[1] = {0};
  static const float w[3] = {1, 0, -1};
  static const float want[6] = {1, 0, -3, 4, 0, -6};
  int64_t shape[1] = {3};
  nne_runtime_t rt;
  nne_tensor_t *op = NULL, *r;
  nne_err_t err;

  ck_assert_int_eq(nne_tensor_from_host(NNE_DTYPE_F32, shape, 1, w, &op, &err),
                   0);
  e[0] = scalar_edit(NNE_EDIT_SCALE, 0, "x");
  e[0].operand = op;
  e[0].use_scalar = false;
  runtime(&rt, 1, e, 1, hooks);
  r = fire(&rt, 0, 0);
  expect_values(r, want, 6);
  nne_tensor_unref(r);
  nne_runtime_free(&rt);
  nne_tensor_unref(op);
}
END_TEST

static Suite *runtime_suite(void) {
  Suite *s = suite_create("runtime");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_edits_apply_in_request_order);
  tcase_add_test(tc, test_track_keeps_request_order_within_a_hook);
  tcase_add_test(tc, test_edits_only_at_their_hook);
  tcase_add_test(tc, test_ranges_reach_the_edit);
  tcase_add_test(tc, test_save_edits_copy_their_place_in_the_chain);
  tcase_add_test(tc, test_save_only_keeps_the_value_and_copies_it);
  tcase_add_test(tc, test_copies_once_per_forward);
  tcase_add_test(tc, test_budget_stops_the_forward);
  tcase_add_test(tc, test_cancel_flag_stops_the_forward);
  tcase_add_test(tc, test_failing_edit_is_named);
  tcase_add_test(tc, test_tensor_operand_applies);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return nne_test_run_suite(runtime_suite());
}
