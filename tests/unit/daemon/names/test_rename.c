/* test_rename.c — daemon/names/rename.c: model.json's "names" (aliases by
 * raw path or standard name, {i} per layer) and the warnings of those that
 * match nothing or clash.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names_test.h"
#include "unit_main.h"

START_TEST(test_renames) {
  tree_t t;
  nne_names_t *nm;
  nne_err_t err;
  nne_names_site_t s;
  int m, attn1;
  const char *const to_exact[] = {"first_attn"};
  const char *const to_pat[] = {"attn{i}", "a{i}"};
  const char *const to_raw[] = {"ff{i}"};
  const char *const to_bad[] = {"x{i}"};
  const char *const to_clash[] = {"ln_final"};
  const char *const to_noi[] = {"head{i}"};
  const char *const to_invalid[] = {"bad name", "unembed.output", "unembed"};
  nne_names_rename_t r[] = {
      {"transformer.h.0.attn", to_exact, 1},
      {"layers.{i}.self_attn", to_pat, 2},
      {"transformer.h.{i}.mlp", to_raw, 1},
      {"transformer.h.{i}.atn", to_bad, 1},
      {"lm_head", to_clash, 1},
      {"lm_head", to_noi, 1},
      {"lm_head", to_invalid, 3},
  };

  load_builtin();
  tree_build(&t, gpt2_tree, 3, NULL);
  nm = build(&t, NULL, r, sizeof r / sizeof r[0]);
  attn1 = tree_find(&t, "transformer.h.1.attn");
  ck_assert_int_eq(resolve_mod(nm, "first_attn", &err),
                   tree_find(&t, "transformer.h.0.attn"));
  ck_assert_int_eq(resolve_mod(nm, "attn1", &err), attn1);
  ck_assert_int_eq(resolve_mod(nm, "a1", &err), attn1);
  ck_assert_int_eq(resolve_mod(nm, "layers.1.self_attn", &err), attn1);
  ck_assert_int_eq(resolve_mod(nm, "ff2", &err),
                   tree_find(&t, "transformer.h.2.mlp"));
  ck_assert_int_eq(resolve_mod(nm, "unembed", &err), tree_find(&t, "lm_head"));
  /* an alias followed by a raw sub-path */
  ck_assert_int_eq(resolve_mod(nm, "attn1.c_attn", &err),
                   tree_find(&t, "transformer.h.1.attn.c_attn"));
  ck_assert_int_eq(
      nne_names_resolve_site(nm, "s", "a2:aten::softmax#0", &s, &err), 0);
  ck_assert_str_eq(s.canonical, "transformer.h.2.attn:aten::softmax#0");
  ck_assert_str_eq(s.standard, "layers.2.self_attn.pattern");
  /* aliases of a module: standard first */
  ck_assert_uint_eq(nne_names_module_alias_count(nm, attn1), 3);
  ck_assert_str_eq(nne_names_module_alias(nm, attn1, 0), "layers.1.self_attn");
  ck_assert(nne_names_module_alias_is_standard(nm, attn1, 0));
  ck_assert_str_eq(nne_names_module_alias(nm, attn1, 1), "attn1");
  ck_assert(!nne_names_module_alias_is_standard(nm, attn1, 1));
  ck_assert_str_eq(nne_names_module_alias(nm, attn1, 2), "a1");
  ck_assert_ptr_null(nne_names_module_alias(nm, attn1, 3));
  ck_assert_uint_eq(nne_names_module_alias_count(nm, -1), 0);
  /* warnings name the entries */
  ck_assert(
      has_warning(nm, "names: 'transformer.h.{i}.atn' matches no module"));
  ck_assert(has_warning(nm, "transformer.h.0.attn")); /* the suggestion */
  ck_assert(has_warning(nm, "alias 'ln_final' for 'lm_head' is already the "
                            "name of transformer.ln_f"));
  ck_assert(has_warning(nm, "alias 'head{i}' for 'lm_head' uses {i}"));
  ck_assert(
      has_warning(nm, "alias 'bad name' for 'lm_head' is not a valid name"));
  ck_assert(has_warning(
      nm, "alias 'unembed.output' for 'lm_head' is not a valid name"));
  ck_assert_uint_eq(nne_names_warning_count(nm), 5);
  ck_assert_int_eq(nne_names_resolve_module(nm, "m", "x0", &m, &err),
                   NNE_ENOTFOUND);
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

static Suite *rename_suite(void) {
  Suite *s = suite_create("rename");
  TCase *tc = tcase_create("renames");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_renames);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nne_test_run_suite(rename_suite()); }
