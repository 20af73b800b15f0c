/* test_resolve.c — daemon/names/resolve.c: unknown names and what is
 * suggested for them, layer ranges, and names the family map says are
 * unavailable.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names_test.h"
#include "unit_main.h"

START_TEST(test_unknown_names_suggest) {
  tree_t t;
  nne_names_t *nm;
  nne_err_t err;
  nne_names_site_t s;
  int m, rc;

  load_builtin();
  tree_build(&t, gpt2_tree, 12, NULL);
  nm = build(&t, NULL, NULL, 0);

  rc = nne_names_resolve_module(nm, "modules[0]", "layers.5.mpl", &m, &err);
  ASSERT_ERR(
      rc, NNE_ENOTFOUND, err,
      "modules[0]: unknown module 'layers.5.mpl'; closest: layers.5.mlp");
  /* the same layer only */
  ck_assert_msg(strstr(err.msg, "layers.0.") == NULL, "%s", err.msg);
  rc = nne_names_resolve_module(nm, "module", "transformer.h.3.atn", &m, &err);
  ASSERT_ERR(rc, NNE_ENOTFOUND, err, "closest: transformer.h.3.attn");
  rc = nne_names_resolve_module(nm, "module", "ln_finl", &m, &err);
  ASSERT_ERR(rc, NNE_ENOTFOUND, err, "closest: ln_final");
  /* at most 5 */
  {
    const char *p = strstr(err.msg, "closest: ");
    int commas = 0;
    for (; p && *p; p++)
      commas += *p == ',';
    ck_assert_int_le(commas, 4);
  }
  /* range */
  rc = nne_names_resolve_module(nm, "module", "layers.40.mlp", &m, &err);
  ASSERT_ERR(rc, NNE_EINVAL, err,
             "module: layers.40.mlp: the model has 12 layers (0..11)");

  /* sites */
  rc = nne_names_resolve_site(nm, "site", "layers.0.mlp.outptu", &s, &err);
  ASSERT_ERR(rc, NNE_ENOTFOUND, err, "unknown site 'layers.0.mlp.outptu'");
  ck_assert_msg(strstr(err.msg, "layers.0.mlp.output") != NULL, "%s", err.msg);
  rc = nne_names_resolve_site(nm, "site", "layers.2.self_attn:softmax#0", &s,
                              &err);
  ASSERT_ERR(rc, NNE_EINVAL, err, "'softmax' is not a node kind");
  rc = nne_names_resolve_site(nm, "site", "layers.2.self_attn:aten::softmax",
                              &s, &err);
  ASSERT_ERR(rc, NNE_EINVAL, err, "MODULE:KIND#K");
  rc = nne_names_resolve_site(nm, "site", "layers.2.self_attn:aten::softmax#x",
                              &s, &err);
  ASSERT_ERR(rc, NNE_EINVAL, err, "node number");
  rc = nne_names_resolve_site(
      nm, "site", "layers.2.self_attn:aten::softmax#0.inptu", &s, &err);
  ASSERT_ERR(rc, NNE_EINVAL, err, "expected .input[.N] or .output[.N]");
  rc = nne_names_resolve_site(nm, "site", "layers.2.mlp", &s, &err);
  ASSERT_ERR(rc, NNE_EINVAL, err,
             "'layers.2.mlp' is a module, not a site: say layers.2.mlp.output");
  rc = nne_names_resolve_site(nm, "site", "layers.2.self_attn.qq", &s, &err);
  ASSERT_ERR(rc, NNE_ENOTFOUND, err, "layers.2.self_attn.q");
  rc = nne_names_resolve_site(nm, "site", "layers.2.mpl.output", &s, &err);
  ASSERT_ERR(rc, NNE_ENOTFOUND, err,
             "site 'layers.2.mpl.output': unknown module 'layers.2.mpl'; "
             "closest: layers.2.mlp.output");
  rc =
      nne_names_resolve_site(nm, "site", "blocks.2.attn.hook_patern", &s, &err);
  ASSERT_ERR(rc, NNE_ENOTFOUND, err, "blocks.2.attn.hook_pattern");
  rc = nne_names_resolve_site(nm, "site", "resid_post", &s, &err);
  ck_assert_int_eq(rc, NNE_ENOTFOUND);
  rc =
      nne_names_resolve_site(nm, "site", "layers.0.mlp.output.99999", &s, &err);
  ASSERT_ERR(rc, NNE_EINVAL, err, "too large");
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

START_TEST(test_unavailable) {
  tree_t t;
  nne_names_t *nm;
  nne_err_t err;
  nne_names_site_t s;
  int m, rc;

  load_builtin();
  /* OPT: no MLP module; its MLP sites live on the layer's fc1/fc2 */
  tree_build(&t, opt_tree, 2, NULL);
  nm = build(&t, NULL, NULL, 0);
  rc = nne_names_resolve_module(nm, "module", "layers.1.mlp", &m, &err);
  ASSERT_ERR(rc, NNE_ESTATE, err,
             "layers.1.mlp is unavailable: OPT has no MLP module");
  rc = nne_names_resolve_module(nm, "module", "layers.1.mlp.fc1", &m, &err);
  ASSERT_ERR(rc, NNE_ESTATE, err, "layers.1.mlp is unavailable");
  ck_assert_int_eq(resolve_mod(nm, "layers.1.fc1", &err),
                   tree_find(&t, "model.decoder.layers.1.fc1"));
  ck_assert_int_eq(
      nne_names_resolve_site(nm, "s", "layers.1.mlp_out", &s, &err), 0);
  ck_assert_str_eq(s.canonical, "model.decoder.layers.1.fc2.output");
  rc = nne_names_resolve_site(nm, "s", "layers.1.mlp.output", &s, &err);
  ASSERT_ERR(rc, NNE_ESTATE, err, "no MLP module");
  ck_assert_uint_eq(nne_names_warning_count(nm), 0);
  nne_names_free(nm);
  tree_free(&t);

  /* NeoX: parallel residual */
  tree_build(&t, neox_tree, 2, NULL);
  nm = build(&t, NULL, NULL, 0);
  rc = nne_names_resolve_site(nm, "s", "blocks.1.hook_resid_mid", &s, &err);
  ASSERT_ERR(rc, NNE_ESTATE, err,
             "layers.1.resid_mid is unavailable: parallel residual");
  nne_names_free(nm);
  tree_free(&t);

  /* a map path missing from the model (an HF rename): unavailable with the
   * reason, one warning for all layers, not an error */
  {
    static tmod_t renamed[64];
    size_t k, o = 0;
    for (k = 0; gpt2_tree[k].path != NULL; k++)
      if (strcmp(gpt2_tree[k].path, "transformer.h.{i}.ln_2") != 0)
        renamed[o++] = gpt2_tree[k];
    renamed[o].path = NULL;
    tree_build(&t, renamed, 4, NULL);
  }
  nm = build(&t, NULL, NULL, 0);
  ck_assert_str_eq(nne_names_family(nm), "gpt2");
  rc = nne_names_resolve_module(nm, "module", "layers.2.ln_mlp", &m, &err);
  ASSERT_ERR(
      rc, NNE_ESTATE, err,
      "the gpt2 map says transformer.h.2.ln_2, which is not in this model");
  rc = nne_names_resolve_site(nm, "s", "layers.2.resid_mid", &s, &err);
  ASSERT_ERR(rc, NNE_ESTATE, err, "layers.2.ln_mlp is unavailable");
  ck_assert(has_warning(nm, "layers.{i}.ln_mlp: the gpt2 map says "
                            "transformer.h.{i}.ln_2, which is not in this "
                            "model (layers 0..3)"));
  ck_assert_uint_eq(nne_names_warning_count(nm), 1);
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

static Suite *resolve_suite(void) {
  Suite *s = suite_create("resolve");
  TCase *tc = tcase_create("resolve");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_unknown_names_suggest);
  tcase_add_test(tc, test_unavailable);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nne_test_run_suite(resolve_suite()); }
