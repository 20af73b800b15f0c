/* test_detect.c — daemon/names/detect.c through nne_names_build: every
 * family detected by class, by structure, forced by model.json and wrapped
 * in an outer module, with all its standard names and sites checked;
 * ties, no family, a class without its structure, and the trees of the
 * repository's fixtures (build/fixtures, when generated).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"

#include "names_test.h"
#include "unit_main.h"

/* ---- per family ---------------------------------------------------------- */

static void check_family_names(const family_case_t *fc, const tree_t *t,
                               const nne_names_t *nm) {
  int i, k, m;
  nne_err_t err;
  char name[256], tl[256];

  ck_assert_int_eq(nne_names_layer_count(nm), N_LAYERS);
  /* standard modules */
  for (k = 0; k < N_STD_MODS; k++) {
    int n = strstr(std_mod_names[k], "{i}") ? N_LAYERS : 1;
    for (i = 0; i < n; i++) {
      char *nmx = expand_i(std_mod_names[k], i);
      m = -7;
      int rc = nne_names_resolve_module(nm, "module", nmx, &m, &err);
      if (fc->mods[k] == NULL) {
        ck_assert_msg(rc == NNE_ESTATE, "%s %s: rc %d (%s), expected ESTATE",
                      fc->family, nmx, rc, rc ? err.msg : "resolved");
        ck_assert_msg(strstr(err.msg, nmx) != NULL, "%s", err.msg);
      } else {
        char *want = expand_i(fc->mods[k], i);
        ck_assert_msg(rc == 0, "%s %s: %s", fc->family, nmx, err.msg);
        ck_assert_msg(m == tree_find(t, want), "%s %s → %s, expected %s",
                      fc->family, nmx, m >= 0 ? t->paths[m] : "?", want);
        ck_assert_msg(has_alias(nm, m, nmx, true), "%s: %s not an alias of %s",
                      fc->family, nmx, want);
        /* the raw path resolves to the same module */
        ck_assert_int_eq(resolve_mod(nm, want, &err), m);
        free(want);
      }
      free(nmx);
    }
  }
  if (fc->extra_name != NULL) {
    for (i = 0; i < N_LAYERS; i++) {
      char *nmx = expand_i(fc->extra_name, i),
           *want = expand_i(fc->extra_path, i);
      m = resolve_mod(nm, nmx, &err);
      ck_assert_msg(m == tree_find(t, want), "%s %s: %s", fc->family, nmx,
                    m < 0 ? err.msg : t->paths[m]);
      ck_assert(has_alias(nm, m, nmx, true));
      free(nmx);
      free(want);
    }
  }

  /* standard sites, through both spellings */
  for (k = 0; k < N_STD_SITES; k++) {
    int n = strstr(std_site_names[k], "{i}") ? N_LAYERS : 1;
    for (i = 0; i < n; i++) {
      nne_names_site_t s, s2;
      int rc;
      {
        char *x = expand_i(std_site_names[k], i);
        snprintf(name, sizeof name, "%s", x);
        free(x);
      }
      memset(&s, 0x5a, sizeof s);
      rc = nne_names_resolve_site(nm, "site", name, &s, &err);
      if (fc->sites[k] == NULL) {
        ck_assert_msg(rc == NNE_ESTATE, "%s %s: rc %d, expected ESTATE",
                      fc->family, name, rc);
        continue;
      }
      ck_assert_msg(rc == 0, "%s %s: %s", fc->family, name, err.msg);
      {
        char *want = expand_i(fc->sites[k], i);
        ck_assert_msg(strcmp(s.canonical, want) == 0, "%s %s → %s, expected %s",
                      fc->family, name, s.canonical, want);
        free(want);
      }
      ck_assert_str_eq(s.standard, name);
      ck_assert_int_ge(s.module, 0);
      /* q/k/v views */
      if (k >= 2 && k <= 4 && fc->qkv != QKV_SEPARATE) {
        ck_assert_int_eq(s.view.parts, 3);
        ck_assert_int_eq(s.view.part, k - 2);
        ck_assert(s.view.heads_view == (fc->qkv == QKV_FUSED_HEADS));
      } else {
        ck_assert_int_eq(s.view.parts, 0);
      }
      /* node sites */
      if (strstr(fc->sites[k], ":aten::softmax#0") != NULL) {
        ck_assert_str_eq(s.node_kind, "aten::softmax");
        ck_assert_int_eq(s.node_occurrence, 0);
        ck_assert_int_eq(s.kind, k == 5 ? NNE_NAMES_SITE_NODE_INPUT
                                        : NNE_NAMES_SITE_NODE);
      }
      /* the canonical form resolves to the same place */
      rc = nne_names_resolve_site(nm, "site", s.canonical, &s2, &err);
      ck_assert_msg(rc == 0, "%s: %s", s.canonical, err.msg);
      ck_assert_int_eq(s2.module, s.module);
      ck_assert_int_eq(s2.kind, s.kind);
      ck_assert_int_eq(s2.index, s.index);
      ck_assert_str_eq(s2.canonical, s.canonical);
      if (s.view.parts == 0)
        ck_assert_str_eq(s2.standard, name);
      /* TransformerLens */
      if (tl_site_names[k] != NULL) {
        char *x = expand_i(tl_site_names[k], i);
        snprintf(tl, sizeof tl, "%s", x);
        free(x);
        rc = nne_names_resolve_site(nm, "site", tl, &s2, &err);
        ck_assert_msg(rc == 0, "%s %s: %s", fc->family, tl, err.msg);
        ck_assert_msg(memcmp(&s, &s2, sizeof s) == 0 ||
                          (s.module == s2.module && s.kind == s2.kind &&
                           s.index == s2.index &&
                           strcmp(s.canonical, s2.canonical) == 0 &&
                           strcmp(s.standard, s2.standard) == 0 &&
                           s.view.parts == s2.view.parts &&
                           s.view.part == s2.view.part &&
                           s.view.heads_view == s2.view.heads_view),
                      "%s and %s differ", name, tl);
      }
    }
  }

  /* the listing: embed, per layer, logits */
  ck_assert_uint_eq(nne_names_site_count(nm), 2 + 13 * N_LAYERS);
  ck_assert_str_eq(nne_names_site(nm, 0)->name, "embed");
  ck_assert_str_eq(nne_names_site(nm, 0)->tl_name, "hook_embed");
  ck_assert_str_eq(nne_names_site(nm, 1)->name, "layers.0.resid_pre");
  ck_assert_str_eq(nne_names_site(nm, 14)->name, "layers.1.resid_pre");
  ck_assert_str_eq(nne_names_site(nm, 1 + 13 * N_LAYERS)->name, "logits");
  ck_assert_ptr_null(nne_names_site(nm, 1 + 13 * N_LAYERS)->tl_name);
  for (k = 0; k < (int)nne_names_site_count(nm); k++) {
    const nne_names_site_entry_t *e = nne_names_site(nm, (size_t)k);
    if (!e->available)
      ck_assert_msg(e->reason != NULL && e->reason[0] != '\0', "%s", e->name);
  }

  /* checks: layers BSD in and out, lm_head BSV */
  {
    size_t c;
    bool saw_layer = false, saw_head = false;
    for (c = 0; c < nne_names_check_count(nm); c++) {
      const nne_names_check_t *ck = nne_names_check(nm, c);
      if (strcmp(ck->name, "layers.2") == 0) {
        saw_layer = true;
        ck_assert_int_eq(ck->input0, NNE_NAMES_SHAPE_BSD);
        ck_assert_int_eq(ck->output0, NNE_NAMES_SHAPE_BSD);
        {
          char *want = expand_i(fc->mods[3], 2);
          ck_assert_int_eq(ck->module, tree_find(t, want));
          free(want);
        }
      }
      if (strcmp(ck->name, "lm_head") == 0) {
        saw_head = true;
        ck_assert_int_eq(ck->output0, NNE_NAMES_SHAPE_BSV);
        ck_assert_int_eq(ck->module, tree_find(t, fc->mods[9]));
      }
      ck_assert_msg(strcmp(ck->name, "layers.0.mlp") != 0 || fc->mods[7],
                    "%s: a check for an unavailable module", fc->family);
    }
    ck_assert(saw_layer && saw_head);
    /* embed_tokens, 3 per layer (+ mlp), ln_final, lm_head */
    ck_assert_uint_eq(nne_names_check_count(nm),
                      3 + (size_t)N_LAYERS * (fc->mods[7] ? 3 : 2));
  }

  /* layer range */
  {
    int rc =
        nne_names_resolve_module(nm, "module", "layers.3.self_attn", &m, &err);
    ASSERT_ERR(rc, NNE_EINVAL, err,
               "layers.3.self_attn: the model has 3 layers (0..2)");
    rc = nne_names_resolve_site(nm, "site", "layers.7.resid_post",
                                (nne_names_site_t[1]){{0}}, &err);
    ASSERT_ERR(rc, NNE_EINVAL, err, "the model has 3 layers (0..2)");
    rc = nne_names_resolve_site(nm, "site", "blocks.3.hook_resid_pre",
                                (nne_names_site_t[1]){{0}}, &err);
    ASSERT_ERR(rc, NNE_EINVAL, err, "the model has 3 layers (0..2)");
    rc = nne_names_resolve_site(nm, "site", "layers.40.self_attn.output",
                                (nne_names_site_t[1]){{0}}, &err);
    ASSERT_ERR(rc, NNE_EINVAL, err, "the model has 3 layers (0..2)");
    /* the raw spelling too */
    {
      char *raw = expand_i(fc->mods[3], 12);
      rc = nne_names_resolve_module(nm, "module", raw, &m, &err);
      ASSERT_ERR(rc, NNE_EINVAL, err, "the model has 3 layers (0..2)");
      free(raw);
    }
  }
}

START_TEST(test_family_by_class) {
  const family_case_t *fc = &cases[_i];
  tree_t t;
  nne_names_t *nm;
  char reason[128];

  load_builtin();
  tree_build(&t, fc->tree, N_LAYERS, NULL);
  nm = build(&t, NULL, NULL, 0);
  ck_assert_str_eq(nne_names_family(nm), fc->family);
  snprintf(reason, sizeof reason, "class %s", t.classes[0]);
  ck_assert_str_eq(nne_names_family_reason(nm), reason);
  if (nne_names_warning_count(nm) != 0)
    dump_warnings(nm);
  ck_assert_uint_eq(nne_names_warning_count(nm), 0);
  check_family_names(fc, &t, nm);
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

START_TEST(test_family_by_structure) {
  const family_case_t *fc = &cases[_i];
  tree_t t;
  nne_names_t *nm;

  load_builtin();
  tree_build(&t, fc->tree, N_LAYERS, "ExportedModel");
  nm = build(&t, NULL, NULL, 0);
  ck_assert_msg(strcmp(nne_names_family(nm), fc->family) == 0,
                "structure of %s detected as '%s'", fc->family,
                nne_names_family(nm));
  ck_assert_str_eq(nne_names_family_reason(nm), "structure");
  check_family_names(fc, &t, nm);
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

START_TEST(test_family_forced) {
  const family_case_t *fc = &cases[_i];
  tree_t t;
  nne_names_t *nm;

  load_builtin();
  tree_build(&t, fc->tree, N_LAYERS, "ExportedModel");
  nm = build(&t, fc->alias, NULL, 0);
  ck_assert_str_eq(nne_names_family(nm), fc->family);
  ck_assert_str_eq(nne_names_family_reason(nm), "model.json");
  check_family_names(fc, &t, nm);
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

/* A family's tree wrapped in another module: the outer module is not part
 * of the family's paths. */
START_TEST(test_family_wrapped) {
  const family_case_t *fc = &cases[_i];
  tmod_t spec[64];
  char paths[64][160];
  size_t k;
  tree_t t;
  nne_names_t *nm;
  nne_err_t err;
  char *want;

  spec[0].path = "";
  spec[0].cls = "Wrapper";
  for (k = 0; fc->tree[k].path != NULL; k++) {
    snprintf(paths[k], sizeof paths[k], "%s%s%s", "inner",
             fc->tree[k].path[0] ? "." : "", fc->tree[k].path);
    spec[k + 1].path = paths[k];
    spec[k + 1].cls = fc->tree[k].cls;
  }
  spec[k + 1].path = NULL;
  load_builtin();
  tree_build(&t, spec, N_LAYERS, NULL);
  nm = build(&t, NULL, NULL, 0);
  ck_assert_str_eq(nne_names_family(nm), fc->family);
  ck_assert(strstr(nne_names_family_reason(nm), "at inner") != NULL);
  want = expand_i(fc->mods[5], 1);
  snprintf(paths[0], sizeof paths[0], "inner.%s", want);
  ck_assert_int_eq(resolve_mod(nm, "layers.1.self_attn", &err),
                   tree_find(&t, paths[0]));
  free(want);
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

/* The Llama map covers Mistral and Qwen2/3 by class; Gemma 1 has the Llama
 * layout. */
START_TEST(test_llama_classes) {
  static const char *const classes[] = {"MistralForCausalLM",
                                        "Qwen2ForCausalLM", "Qwen3ForCausalLM",
                                        "GemmaForCausalLM"};
  size_t k;
  load_builtin();
  for (k = 0; k < 4; k++) {
    tree_t t;
    nne_names_t *nm;
    tree_build(&t, llama_tree, 2, classes[k]);
    nm = build(&t, NULL, NULL, 0);
    ck_assert_str_eq(nne_names_family(nm), "llama");
    ck_assert_uint_eq(nne_names_warning_count(nm), 0);
    nne_names_free(nm);
    tree_free(&t);
  }
  unload();
}
END_TEST

/* Two families with the same structural signature: no guess. */
START_TEST(test_detection_tie) {
  nne_family_set_t *set;
  nne_err_t err;
  tree_t t;
  nne_names_t *nm;
  char *text =
      text_edit(gpt2_edit("\"family\": \"gpt2\"", "\"family\": \"twin\""),
                "\"aliases\": [\"gpt-2\"]", "\"aliases\": []");
  write_map("twin.json", text);
  ck_assert_msg(load_tmp(&set, &err) == 0, "%s", err.msg);
  ck_assert_uint_eq(nne_family_set_count(set), 9);
  tree_build(&t, gpt2_tree, 2, "Custom");
  ck_assert_int_eq(nne_names_build(set, NULL, t.mods, t.n, NULL, 0, &nm, &err),
                   0);
  ck_assert_str_eq(nne_names_family(nm), "");
  ck_assert(has_warning(nm, "equally"));
  nne_names_free(nm);
  /* the class still decides */
  tree_free(&t);
  tree_build(&t, gpt2_tree, 2, NULL);
  ck_assert_int_eq(nne_names_build(set, NULL, t.mods, t.n, NULL, 0, &nm, &err),
                   0);
  ck_assert_str_eq(nne_names_family(nm), "gpt2");
  nne_names_free(nm);
  tree_free(&t);
  nne_family_set_free(set);
  free(text);
}
END_TEST

/* No family: raw paths and user aliases only. */
START_TEST(test_no_family) {
  static const tmod_t odd[] = {{"", "MyNet"},
                               {"enc", "Encoder"},
                               {"enc.blocks", "ModuleList"},
                               {"enc.blocks.{i}", "Block"},
                               {"enc.blocks.{i}.ff", "Linear"},
                               {"head", "Linear"},
                               {NULL, NULL}};
  tree_t t;
  nne_names_t *nm;
  nne_err_t err;
  nne_names_site_t s;
  int m;
  const char *const to[] = {"ffn{i}"};
  nne_names_rename_t r = {"enc.blocks.{i}.ff", to, 1};

  load_builtin();
  tree_build(&t, odd, 2, NULL);
  nm = build(&t, NULL, &r, 1);
  ck_assert_str_eq(nne_names_family(nm), "");
  ck_assert_int_eq(nne_names_layer_count(nm), 0);
  ck_assert_uint_eq(nne_names_site_count(nm), 0);
  ck_assert_uint_eq(nne_names_check_count(nm), 0);
  ck_assert(has_warning(nm, "no family map matches this model"));
  ck_assert_int_eq(resolve_mod(nm, "enc.blocks.1.ff", &err),
                   tree_find(&t, "enc.blocks.1.ff"));
  ck_assert_int_eq(resolve_mod(nm, "ffn1", &err),
                   tree_find(&t, "enc.blocks.1.ff"));
  ck_assert_int_eq(nne_names_resolve_site(nm, "s", "ffn0.output", &s, &err), 0);
  ck_assert_str_eq(s.canonical, "enc.blocks.0.ff.output");
  ASSERT_ERR(nne_names_resolve_module(nm, "module", "layers.0.mlp", &m, &err),
             NNE_ESTATE, err, "no family map matched");
  ASSERT_ERR(
      nne_names_resolve_site(nm, "site", "blocks.0.hook_resid_pre", &s, &err),
      NNE_ESTATE, err, "no family map matched");
  nne_names_free(nm);
  /* the same tree forced to a family it is not: names unavailable, warned */
  nm = build(&t, "llama", NULL, 0);
  ck_assert_str_eq(nne_names_family(nm), "llama");
  ck_assert(has_warning(nm, "layers: the llama map says model.layers"));
  ASSERT_ERR(nne_names_resolve_module(nm, "module", "lm_head", &m, &err),
             NNE_ESTATE, err, "which is not in this model");
  nne_names_free(nm);
  tree_free(&t);
  /* an unknown forced family */
  tree_build(&t, gpt2_tree, 1, NULL);
  ASSERT_ERR(nne_names_build(g_set, "gpt5", t.mods, t.n, NULL, 0, &nm, &err),
             NNE_EINVAL, err,
             "'gpt5' is not a known family (known: bloom, gemma, gpt2");
  tree_free(&t);
  unload();
}
END_TEST

/* A class of one family with the structure of none: the class decides,
 * with a warning, and the missing names are unavailable. */
START_TEST(test_class_without_structure) {
  static const tmod_t odd[] = {{"", "GPT2LMHeadModel"},
                               {"transformer", "GPT2Model"},
                               {"transformer.wte", "Embedding"},
                               {"transformer.blocks", "ModuleList"},
                               {"transformer.blocks.{i}", "GPT2Block"},
                               {"lm_head", "Linear"},
                               {NULL, NULL}};
  tree_t t;
  nne_names_t *nm;
  nne_err_t err;

  load_builtin();
  tree_build(&t, odd, 2, NULL);
  nm = build(&t, NULL, NULL, 0);
  ck_assert_str_eq(nne_names_family(nm), "gpt2");
  ck_assert(has_warning(nm, "class GPT2LMHeadModel is of the family gpt2, but "
                            "the module structure does not match"));
  ck_assert_int_eq(resolve_mod(nm, "lm_head", &err), tree_find(&t, "lm_head"));
  ck_assert_int_eq(nne_names_layer_count(nm), 0);
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

/* ---- the repository's fixtures ------------------------------------------- */

START_TEST(test_fixtures) {
  char **list = NULL, msg[512];
  size_t n = 0, i, k;

  if (nne_fixtures_list(&list, &n, msg, sizeof msg) != 0 || n == 0) {
    fprintf(stderr, "test_fixtures: no fixtures (%s); nothing checked\n", msg);
    return;
  }
  load_builtin();
  for (i = 0; i < n; i++) {
    nne_fixture_t *f;
    nne_names_module_t *mods;
    nne_names_t *nm;
    nne_err_t err;
    int forced;

    if (nne_fixture_load(list[i], &f, msg, sizeof msg) != 0) {
      ck_abort_msg("%s: %s", list[i], msg);
    }
    if (strcmp(f->class_name, "GPT2LMHeadModel") != 0 &&
        strcmp(f->class_name, "LlamaForCausalLM") != 0 &&
        strcmp(f->class_name, "GPTNeoXForCausalLM") != 0) {
      nne_fixture_free(f);
      continue; /* a benchmark model or a future family */
    }
    mods = calloc(f->n_modules, sizeof *mods);
    for (k = 0; k < f->n_modules; k++) {
      const char *path = f->modules[k].path, *dot = strrchr(path, '.');
      size_t pl = dot ? (size_t)(dot - path) : 0, j;
      mods[k].path = path;
      mods[k].class_name = f->modules[k].class_name;
      mods[k].parent = -1;
      for (j = 0; k > 0 && j < k; j++)
        if (strlen(f->modules[j].path) == pl &&
            strncmp(f->modules[j].path, path, pl) == 0)
          mods[k].parent = (int)j;
    }
    for (forced = 0; forced < 2; forced++) {
      size_t c, unavailable = 0;
      int m;
      ck_assert_msg(nne_names_build(g_set, forced ? f->family : NULL, mods,
                                    f->n_modules, NULL, 0, &nm, &err) == 0,
                    "%s: %s", f->name, err.msg);
      ck_assert_msg(strcmp(nne_names_family(nm), f->family) == 0,
                    "%s: detected '%s', model.json says '%s'", f->name,
                    nne_names_family(nm), f->family);
      if (nne_names_warning_count(nm) != 0)
        dump_warnings(nm);
      ck_assert_uint_eq(nne_names_warning_count(nm), 0);
      ck_assert_int_gt(nne_names_layer_count(nm), 0);
      for (c = 0; c < N_STD_MODS; c++) {
        int l, nl = strstr(std_mod_names[c], "{i}") ? nne_names_layer_count(nm)
                                                    : 1;
        for (l = 0; l < nl; l++) {
          char *x = expand_i(std_mod_names[c], l);
          int rc = nne_names_resolve_module(nm, "m", x, &m, &err);
          if (rc != 0) {
            ck_assert_msg(strcmp(x, "embed_positions") == 0 && rc == NNE_ESTATE,
                          "%s: %s: %s", f->name, x, err.msg);
            unavailable++;
          }
          free(x);
        }
      }
      ck_assert_uint_eq(unavailable, strcmp(f->family, "gpt2") == 0 ? 0 : 1);
      for (c = 0; c < nne_names_site_count(nm); c++) {
        const nne_names_site_entry_t *e = nne_names_site(nm, c);
        ck_assert_msg(e->available || strstr(e->name, "resid_mid"),
                      "%s: %s: %s", f->name, e->name, e->reason);
      }
      nne_names_free(nm);
    }
    free(mods);
    nne_fixture_free(f);
  }
  nne_fixtures_list_free(list, n);
  unload();
}
END_TEST

static Suite *detect_suite(void) {
  Suite *s = suite_create("detect");
  TCase *tc = tcase_create("families");
  tcase_add_loop_test(tc, test_family_by_class, 0, (int)N_CASES);
  tcase_add_loop_test(tc, test_family_by_structure, 0, (int)N_CASES);
  tcase_add_loop_test(tc, test_family_forced, 0, (int)N_CASES);
  tcase_add_loop_test(tc, test_family_wrapped, 0, (int)N_CASES);
  tcase_add_test(tc, test_llama_classes);
  tcase_add_test(tc, test_fixtures);
  suite_add_tcase(s, tc);

  tc = tcase_create("ambiguous");
  tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_detection_tie);
  tcase_add_test(tc, test_no_family);
  tcase_add_test(tc, test_class_without_structure);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nne_test_run_suite(detect_suite()); }
