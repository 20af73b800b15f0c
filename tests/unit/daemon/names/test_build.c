/* test_build.c — daemon/names/build.c: a bad module tree is refused, and
 * an 80-layer model's names build in a few milliseconds and resolve in
 * well under a microsecond.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "names_test.h"
#include "unit_main.h"

START_TEST(test_bad_tree) {
  nne_names_module_t mods[3] = {{"", "Root", -1}, {"a", "A", 0}, {"a", "A", 0}};
  nne_names_t *nm;
  nne_err_t err;
  load_builtin();
  ASSERT_ERR(nne_names_build(g_set, NULL, mods, 3, NULL, 0, &nm, &err),
             NNE_EINVAL, err, "duplicate path 'a'");
  mods[2].path = "b";
  mods[2].parent = 2;
  ASSERT_ERR(nne_names_build(g_set, NULL, mods, 3, NULL, 0, &nm, &err),
             NNE_EINVAL, err, "pre-order");
  ASSERT_ERR(nne_names_build(g_set, NULL, mods, 0, NULL, 0, &nm, &err),
             NNE_EINVAL, err, "0 modules");
  unload();
}
END_TEST

/* ---- speed --------------------------------------------------------------- */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

START_TEST(test_speed_80_layers) {
  tree_t t;
  nne_names_t *nm = NULL;
  nne_err_t err;
  nne_names_site_t s;
  double t0, build_ms, best = 1e9, resolve_us;
  int k, m, rc;
  const char *const to[] = {"attn{i}"};
  nne_names_rename_t r = {"layers.{i}.self_attn", to, 1};
  static const char *const names[] = {
      "layers.57.self_attn",
      "model.layers.57.mlp.down_proj",
      "attn57",
      "layers.57.mlp.gate_proj",
  };
  static const char *const sites[] = {
      "layers.57.self_attn.pattern",
      "blocks.57.hook_resid_post",
      "model.layers.57.mlp.output",
      "layers.57.self_attn:aten::softmax#0.input.0",
  };
  const int n_res = 200000;

  load_builtin();
  tree_build(&t, llama_tree, 80, NULL);
  for (k = 0; k < 20; k++) {
    t0 = now_ms();
    ck_assert_int_eq(
        nne_names_build(g_set, NULL, t.mods, t.n, &r, 1, &nm, &err), 0);
    build_ms = now_ms() - t0;
    if (build_ms < best)
      best = build_ms;
    if (k < 19)
      nne_names_free(nm);
  }
  ck_assert_int_eq(nne_names_layer_count(nm), 80);
  t0 = now_ms();
  for (k = 0; k < n_res; k++) {
    rc = nne_names_resolve_module(nm, "m", names[k & 3], &m, &err);
    rc |= nne_names_resolve_site(nm, "s", sites[k & 3], &s, &err);
    ck_assert(rc == 0);
  }
  resolve_us = (now_ms() - t0) * 1e3 / (2.0 * n_res);
  t0 = now_ms();
  for (k = 0; k < 1000; k++)
    nne_names_resolve_module(nm, "m", "layers.57.mpl", &m, &err);
  fprintf(stderr,
          "names: 80-layer Llama (%zu modules): build %.3f ms (best of 20), "
          "resolve %.3f us (mean of module + site spellings), not-found with "
          "suggestions %.1f us\n",
          t.n, best, resolve_us, (now_ms() - t0));
#if defined(__SANITIZE_ADDRESS__) || !defined(__OPTIMIZE__)
  ck_assert_msg(best < 50, "build took %.3f ms", best);
#else
  ck_assert_msg(best < 5, "build took %.3f ms (budget 5 ms)", best);
#endif
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

static Suite *build_suite(void) {
  Suite *s = suite_create("build");
  TCase *tc = tcase_create("build");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_bad_tree);
  tcase_add_test(tc, test_speed_80_layers);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nne_test_run_suite(build_suite()); }
