/* test_site.c — daemon/names/site.c: the site grammar, every spelling of
 * a site and its canonical form.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names_test.h"
#include "unit_main.h"

START_TEST(test_site_grammar) {
  tree_t t;
  nne_names_t *nm;
  nne_err_t err;
  nne_names_site_t s;
  static const struct {
    const char *in, *canonical, *standard;
    nne_names_site_kind_t kind;
    int index;
  } cases_[] = {
      {"layers.1.mlp.output", "transformer.h.1.mlp.output", "layers.1.mlp_out",
       NNE_NAMES_SITE_OUTPUT, 0},
      {"layers.1.mlp.output.0", "transformer.h.1.mlp.output",
       "layers.1.mlp_out", NNE_NAMES_SITE_OUTPUT, 0},
      {"layers.1.output.1", "transformer.h.1.output.1", "",
       NNE_NAMES_SITE_OUTPUT, 1},
      {"transformer.h.1.input", "transformer.h.1.input", "layers.1.resid_pre",
       NNE_NAMES_SITE_INPUT, 0},
      {"layers.1.input.2", "transformer.h.1.input.2", "", NNE_NAMES_SITE_INPUT,
       2},
      {"layers.1.mlp.c_fc.output", "transformer.h.1.mlp.c_fc.output",
       "layers.1.mlp.pre", NNE_NAMES_SITE_OUTPUT, 0},
      {"layers.1.self_attn:aten::softmax#0",
       "transformer.h.1.attn:aten::softmax#0", "layers.1.self_attn.pattern",
       NNE_NAMES_SITE_NODE, 0},
      {"transformer.h.1.attn:aten::softmax#0.output.0",
       "transformer.h.1.attn:aten::softmax#0", "layers.1.self_attn.pattern",
       NNE_NAMES_SITE_NODE, 0},
      {"layers.1.self_attn:aten::matmul#1.input.1",
       "transformer.h.1.attn:aten::matmul#1.input.1", "",
       NNE_NAMES_SITE_NODE_INPUT, 1},
      {"layers.1.self_attn:prim::CallMethod#2.output.1",
       "transformer.h.1.attn:prim::CallMethod#2.output.1", "",
       NNE_NAMES_SITE_NODE, 1},
      {"output", "output", "", NNE_NAMES_SITE_OUTPUT, 0},
      {"lm_head.output", "lm_head.output", "logits", NNE_NAMES_SITE_OUTPUT, 0},
      {"logits", "lm_head.output", "logits", NNE_NAMES_SITE_OUTPUT, 0},
      {"hook_embed", "transformer.wte.output", "embed", NNE_NAMES_SITE_OUTPUT,
       0},
  };
  size_t k;

  load_builtin();
  tree_build(&t, gpt2_tree, 2, NULL);
  nm = build(&t, NULL, NULL, 0);
  for (k = 0; k < sizeof cases_ / sizeof cases_[0]; k++) {
    int rc = nne_names_resolve_site(nm, "site", cases_[k].in, &s, &err);
    ck_assert_msg(rc == 0, "%s: %s", cases_[k].in, err.msg);
    ck_assert_str_eq(s.canonical, cases_[k].canonical);
    ck_assert_str_eq(s.standard, cases_[k].standard);
    ck_assert_int_eq(s.kind, cases_[k].kind);
    ck_assert_int_eq(s.index, cases_[k].index);
  }
  /* q of a fused c_attn: the standard name carries the view, the raw
   * spelling does not */
  ck_assert_int_eq(nne_names_resolve_site(
                       nm, "s", "transformer.h.0.attn.c_attn.output", &s, &err),
                   0);
  ck_assert_int_eq(s.view.parts, 0);
  ck_assert_str_eq(s.standard, "");
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

static Suite *site_suite(void) {
  Suite *s = suite_create("site");
  TCase *tc = tcase_create("grammar");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_site_grammar);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nne_test_run_suite(site_suite()); }
