/* test_mark.c — daemon/names/mark.c: marking standard names and sites
 * unavailable after the load-time check, what goes with them, and the
 * merged warnings.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names_test.h"
#include "unit_main.h"

START_TEST(test_mark_unavailable) {
  tree_t t;
  nne_names_t *nm;
  nne_err_t err;
  nne_names_site_t s;
  int m, mlp1 = -1;
  size_t i, nw;

  load_builtin();
  tree_build(&t, gpt2_tree, 4, NULL);
  nm = build(&t, NULL, NULL, 0);
  nw = nne_names_warning_count(nm);
  ck_assert_uint_eq(nw, 0);

  /* a site, in several layers: one warning */
  nne_names_mark_unavailable(nm, "layers.1.self_attn.pattern",
                             "the module's own code has no aten::softmax");
  nne_names_mark_unavailable(nm, "blocks.2.attn.hook_pattern",
                             "the module's own code has no aten::softmax");
  nne_names_mark_unavailable(nm, "layers.3.self_attn.pattern",
                             "the module's own code has no aten::softmax");
  ASSERT_ERR(
      nne_names_resolve_site(nm, "s", "layers.2.self_attn.pattern", &s, &err),
      NNE_ESTATE, err, "no aten::softmax");
  ck_assert_int_eq(
      nne_names_resolve_site(nm, "s", "layers.0.self_attn.pattern", &s, &err),
      0);
  ck_assert_uint_eq(nne_names_warning_count(nm), 1);
  ck_assert_str_eq(nne_names_warning(nm, 0),
                   "layers.{i}.self_attn.pattern is unavailable in 3 layers "
                   "(1..3): the module's own code has no aten::softmax");
  /* the raw spelling still works, without a standard name */
  ck_assert_int_eq(
      nne_names_resolve_site(nm, "s", "transformer.h.2.attn:aten::softmax#0",
                             &s, &err),
      0);
  ck_assert_str_eq(s.standard, "");
  for (i = 0; i < nne_names_site_count(nm); i++) {
    const nne_names_site_entry_t *e = nne_names_site(nm, i);
    if (strcmp(e->name, "layers.2.self_attn.pattern") == 0)
      ck_assert(!e->available && strstr(e->reason, "aten::softmax"));
  }

  /* a standard module: its name goes, its raw path stays, the sites that
   * are its boundaries go with it */
  nne_names_mark_unavailable(nm, "layers.1.mlp", "output 0 is [2, 5]");
  ASSERT_ERR(nne_names_resolve_module(nm, "module", "layers.1.mlp", &m, &err),
             NNE_ESTATE, err,
             "layers.1.mlp is unavailable: output 0 is [2, 5]");
  mlp1 = resolve_mod(nm, "transformer.h.1.mlp", &err);
  ck_assert_int_eq(mlp1, tree_find(&t, "transformer.h.1.mlp"));
  ck_assert_uint_eq(nne_names_module_alias_count(nm, mlp1), 0);
  ASSERT_ERR(nne_names_resolve_site(nm, "s", "layers.1.mlp_out", &s, &err),
             NNE_ESTATE, err, "layers.1.mlp is unavailable");
  ck_assert_int_eq(
      nne_names_resolve_site(nm, "s", "layers.1.mlp.pre", &s, &err), 0);
  ck_assert_int_eq(
      nne_names_resolve_site(nm, "s", "layers.2.mlp_out", &s, &err), 0);
  ck_assert(has_warning(nm, "layers.1.mlp is unavailable: output 0 is [2, 5]"));
  nw = nne_names_warning_count(nm);
  /* again, and unknown names: nothing */
  nne_names_mark_unavailable(nm, "layers.1.mlp", "again");
  nne_names_mark_unavailable(nm, "layers.1.nothing", "x");
  nne_names_mark_unavailable(nm, "transformer.h.1.mlp", "a raw path");
  ck_assert_uint_eq(nne_names_warning_count(nm), nw);
  ck_assert_int_eq(resolve_mod(nm, "transformer.h.1.mlp", &err), mlp1);
  /* lm_head: a standard name spelled like its raw path */
  nne_names_mark_unavailable(nm, "lm_head",
                             "output is not [batch, seq, vocab]");
  ASSERT_ERR(nne_names_resolve_site(nm, "s", "logits", &s, &err), NNE_ESTATE,
             err, "lm_head is unavailable");
  ck_assert_int_eq(resolve_mod(nm, "lm_head", &err), tree_find(&t, "lm_head"));
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

static Suite *mark_suite(void) {
  Suite *s = suite_create("mark");
  TCase *tc = tcase_create("mark");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_mark_unavailable);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nne_test_run_suite(mark_suite()); }
