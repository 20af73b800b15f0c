/* test_build.c — daemon/names/build.c: a bad module tree is refused, and
 * an 80-layer model's names build, repeatedly, and resolve every spelling.
 * (How fast is bench/bench_edits.c's business, section E: a time budget
 * here failed on loaded machines.)
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- a large model -------------------------------------------------------- */

START_TEST(test_80_layers) {
  tree_t t;
  nne_names_t *nm = NULL;
  nne_err_t err;
  nne_names_site_t s;
  int k, m;
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

  load_builtin();
  tree_build(&t, llama_tree, 80, NULL);
  /* Built again and again from the same tree: nothing carries over. */
  for (k = 0; k < 5; k++) {
    ck_assert_int_eq(
        nne_names_build(g_set, NULL, t.mods, t.n, &r, 1, &nm, &err), 0);
    ck_assert_int_eq(nne_names_layer_count(nm), 80);
    if (k < 4)
      nne_names_free(nm);
  }
  for (k = 0; k < 4; k++) {
    ck_assert_msg(nne_names_resolve_module(nm, "m", names[k], &m, &err) == 0,
                  "%s: %s", names[k], err.msg);
    ck_assert_msg(nne_names_resolve_site(nm, "s", sites[k], &s, &err) == 0,
                  "%s: %s", sites[k], err.msg);
  }
  ck_assert_int_ne(nne_names_resolve_module(nm, "m", "layers.57.mpl", &m, &err),
                   0);
  ck_assert_ptr_nonnull(strstr(err.msg, "layers.57.mlp"));
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
  tcase_add_test(tc, test_80_layers);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nne_test_run_suite(build_suite()); }
