/* test_family.c — daemon/names/family.c: the builtin family maps (the
 * embedded table is the files, byte for byte), override directories, and
 * the messages of malformed maps (file, line, key).
 */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names/builtin.h"

#include "names_test.h"
#include "unit_main.h"

START_TEST(test_builtin_table) {
  size_t i, k;
  char path[PATH_MAX];

  ck_assert_msg(nne_names_builtin_count >= 8,
                "the builtin name map table has %zu entries: the build did "
                "not embed the maps of daemon/names/",
                nne_names_builtin_count);
  /* Every embedded text is the file in the source tree, byte for byte. */
  for (i = 0; i < nne_names_builtin_count; i++) {
    size_t len;
    char *text;
    snprintf(path, sizeof path, "%s/daemon/names/%s", src_dir(),
             nne_names_builtin[i].name);
    text = read_text(path, &len);
    ck_assert_msg(len == nne_names_builtin[i].len &&
                      memcmp(text, nne_names_builtin[i].text, len) == 0,
                  "embedded %s differs from %s (rebuild)",
                  nne_names_builtin[i].name, path);
    ck_assert_int_eq(nne_names_builtin[i].text[len], '\0');
    free(text);
  }
  load_builtin();
  ck_assert_uint_eq(nne_family_set_count(g_set), 8);
  for (k = 0; k < 8; k++)
    ck_assert_str_eq(nne_family_set_name(g_set, k), all_families[k]);
  ck_assert_ptr_null(nne_family_set_name(g_set, 8));
  unload();
}
END_TEST

/* The source maps as an override directory: the same 8 families. */
START_TEST(test_override_dir_sources) {
  nne_family_set_t *set;
  nne_err_t err;
  char dir[PATH_MAX];
  size_t k;
  tree_t t;
  nne_names_t *nm;

  snprintf(dir, sizeof dir, "%s/daemon/names", src_dir());
  ck_assert_msg(nne_family_set_load(dir, &set, &err) == 0, "%s", err.msg);
  ck_assert_uint_eq(nne_family_set_count(set), 8);
  for (k = 0; k < 8; k++)
    ck_assert_str_eq(nne_family_set_name(set, k), all_families[k]);
  tree_build(&t, neox_tree, 2, NULL);
  ck_assert_msg(nne_names_build(set, NULL, t.mods, t.n, NULL, 0, &nm, &err) ==
                    0,
                "%s", err.msg);
  ck_assert_str_eq(nne_names_family(nm), "gpt_neox");
  nne_names_free(nm);
  tree_free(&t);
  nne_family_set_free(set);
  /* A missing directory is no overrides. */
  ck_assert_int_eq(nne_family_set_load("/nonexistent/nne-names", &set, &err),
                   0);
  ck_assert_uint_eq(nne_family_set_count(set), nne_names_builtin_count);
  nne_family_set_free(set);
}
END_TEST

/* A malformed map fails the whole load naming the file and the line. */
START_TEST(test_map_syntax_error) {
  nne_family_set_t *set = (nne_family_set_t *)1;
  nne_err_t err;
  char *t = gpt2_edit("\"family\": \"gpt2\",", "\"family\": \"gpt2\"");
  char want[64];
  write_map("broken.json", t);
  free(t);
  ASSERT_ERR(load_tmp(&set, &err), NNE_EINVAL, err, "broken.json: line ");
  ck_assert_ptr_null(set);
  /* the line of the next key, where the comma is missing */
  snprintf(want, sizeof want, "broken.json: line %d column",
           gpt2_line("\"aliases\""));
  ck_assert_msg(strstr(err.msg, want) != NULL, "%s lacks %s", err.msg, want);
}
END_TEST

/* from, to, what the message says; on_line: the message gives the line of
 * `from` (the entry's key is on it). */
static const struct {
  const char *from, *to, *needle;
  bool on_line;
} semantic_errors[] = {
    /* an unknown standard name */
    {"\"layers.{i}.mlp\": \"transformer.h.{i}.mlp\"",
     "\"layers.{i}.mpl\": \"transformer.h.{i}.mlp\"",
     "modules: \"layers.{i}.mpl\": not a standard module name", true},
    /* a per-layer template without {i} */
    {"\"layers.{i}.ln_mlp\": \"transformer.h.{i}.ln_2\"",
     "\"layers.{i}.ln_mlp\": \"transformer.h.ln_2\"",
     "modules: \"layers.{i}.ln_mlp\": template \"transformer.h.ln_2\" has no "
     "{i}",
     true},
    /* a template outside the layer list */
    {"\"layers.{i}.ln_mlp\": \"transformer.h.{i}.ln_2\"",
     "\"layers.{i}.ln_mlp\": \"transformer.hh.{i}.ln_2\"",
     "is not under the layer list \"transformer.h.{i}\"", true},
    /* a site string that does not parse */
    {"\"layers.{i}.self_attn:aten::softmax#0\"",
     "\"layers.{i}.self_attn:aten::softmax\"",
     "sites: \"layers.{i}.self_attn.pattern\": \"layers.{i}.self_attn:aten::"
     "softmax\" is not a site: a node selector is MODULE:KIND#K",
     true},
    {"\"layers.{i}.mlp.c_fc.output\"", "\"layers.{i}.mlp.c_fc.outptu\"",
     "sites: \"layers.{i}.mlp.pre\": \"layers.{i}.mlp.c_fc.outptu\" is not a "
     "site",
     true},
    /* an unknown site */
    {"\"layers.{i}.resid_mid\"", "\"layers.{i}.resid_middle\"",
     "sites: \"layers.{i}.resid_middle\": not a standard site", true},
    /* an unknown top-level key */
    {"\"checks\": {", "\"chekcs\": {", "\"chekcs\": unknown key", true},
    /* a view out of range */
    {"\"parts\": 3, \"part\": 2", "\"parts\": 3, \"part\": 3",
     "sites: \"layers.{i}.self_attn.v\": view: \"part\" must be 0..parts-1",
     true},
    /* a missing module */
    {"\"ln_final\": \"transformer.ln_f\",", "", "\"ln_final\" is missing",
     false},
    /* a check of an unknown shape */
    {"\"lm_head\": {\"output\": \"BSV\"}", "\"lm_head\": {\"output\": \"BVS\"}",
     "checks: \"lm_head\": a shape is", true},
    /* a class name that is not one */
    {"\"GPT2LMHeadModel\"", "\"GPT2 LMHeadModel\"",
     "detect: \"classes\": entry 0 is not well formed", true},
    /* no family name */
    {"\"family\": \"gpt2\"", "\"family\": \"GPT2\"", "\"family\": required",
     true},
    /* layers.{i} is derived */
    {"\"layers\": \"transformer.h\",",
     "\"layers\": \"transformer.h\", \"layers.{i}\": \"transformer.h.{i}\",",
     "modules: \"layers.{i}\": is always", true},
};

START_TEST(test_map_semantic_error) {
  nne_family_set_t *set = NULL;
  nne_err_t err;
  char *t = gpt2_edit(semantic_errors[_i].from, semantic_errors[_i].to);
  char want[64];
  write_map("gpt2.json", t);
  free(t);
  ASSERT_ERR(load_tmp(&set, &err), NNE_EINVAL, err, semantic_errors[_i].needle);
  ck_assert_msg(strstr(err.msg, "/gpt2.json: line ") != NULL, "%s", err.msg);
  if (semantic_errors[_i].on_line) {
    snprintf(want, sizeof want,
             "/gpt2.json: line %d: ", gpt2_line(semantic_errors[_i].from));
    ck_assert_msg(strstr(err.msg, want) != NULL, "%s lacks %s", err.msg, want);
  }
  ck_assert_ptr_null(set);
}
END_TEST

/* An override replaces the builtin map of its family (by "family", not by
 * file name); two overrides of one family, or an alias that names another
 * family, fail. */
START_TEST(test_map_override) {
  nne_family_set_t *set;
  nne_err_t err;
  tree_t t;
  nne_names_t *nm;
  int m;
  char *text = gpt2_edit("\"aliases\": [\"gpt-2\"]",
                         "\"aliases\": [\"gpt-2\", \"my-gpt\"]");
  char *text2;

  write_map("zz-local.json", text);
  ck_assert_msg(load_tmp(&set, &err) == 0, "%s", err.msg);
  ck_assert_uint_eq(nne_family_set_count(set), 8);
  tree_build(&t, gpt2_tree, 2, "Custom");
  ck_assert_msg(
      nne_names_build(set, "MY-GPT", t.mods, t.n, NULL, 0, &nm, &err) == 0,
      "%s", err.msg);
  ck_assert_str_eq(nne_names_family(nm), "gpt2");
  ck_assert_int_eq(nne_names_resolve_module(nm, NULL, "ln_final", &m, &err), 0);
  nne_names_free(nm);
  nne_family_set_free(set);
  /* without the override, the alias is unknown */
  load_builtin();
  ASSERT_ERR(nne_names_build(g_set, "my-gpt", t.mods, t.n, NULL, 0, &nm, &err),
             NNE_EINVAL, err,
             "'my-gpt' is not a known family (known: bloom, "
             "gemma, gpt2, gpt_neox, gptj, llama, opt, phi)");
  ck_assert_ptr_null(nm);
  unload();

  /* two overrides of one family */
  write_map("aa-local.json", text);
  ASSERT_ERR(load_tmp(&set, &err), NNE_EINVAL, err,
             "family \"gpt2\" is also defined by");
  /* a new family whose alias is another family's name */
  text2 = gpt2_edit("\"family\": \"gpt2\"", "\"family\": \"gpt2x\"");
  free(text);
  text = text2;
  text2 = NULL;
  {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/aa-local.json", tmpdir);
    remove(path);
  }
  write_map("zz-local.json", text);
  /* gpt2x keeps gpt2's alias "gpt-2" */
  ASSERT_ERR(load_tmp(&set, &err), NNE_EINVAL, err, "alias \"gpt-2\"");
  free(text);
  tree_free(&t);
}
END_TEST

static Suite *family_suite(void) {
  Suite *s = suite_create("family");
  TCase *tc = tcase_create("builtin");
  tcase_add_test(tc, test_builtin_table);
  suite_add_tcase(s, tc);

  tc = tcase_create("maps");
  tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
  tcase_add_test(tc, test_override_dir_sources);
  tcase_add_test(tc, test_map_syntax_error);
  tcase_add_loop_test(
      tc, test_map_semantic_error, 0,
      (int)(sizeof semantic_errors / sizeof semantic_errors[0]));
  tcase_add_test(tc, test_map_override);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nne_test_run_suite(family_suite()); }
