/* test_check.c — daemon/names/check.c: the load-time check of a model's
 * standard names (nne_validate_names), on the real fixture models (GPT-2,
 * Llama, GPT-NeoX; scripted and traced).
 *
 * Proves, for names built the way the registry builds them (detected
 * family, builtin maps) and then validated:
 *   - every standard module and site that exists in the family is
 *     available, on the module or canonical site the family's map names
 *     (written down independently in names_test.h), those the family lacks
 *     are not, and a correct model gets no warning;
 *   - the attention pattern is the softmax node of the attention's own
 *     code, under its standard and TransformerLens names, and a forward
 *     hooked there sees rows that sum to 1; q/k/v are views of the fused
 *     projection (GPT-2: thirds; NeoX: thirds per head) whose width splits
 *     evenly with n_heads from the fixture's model.json.
 * And the failing side, which is what the check is for: a name that claims
 * the wrong thing is marked unavailable with a reason naming the shapes and
 * becomes a warning, the sites through it go with it, raw paths still
 * resolve, and every other name still holds:
 *   - an override map (a temporary names.d) pointing lm_head at an attention
 *     module ([2, 3, 64], not [batch, seq, vocab]), or layers.{i}.mlp at
 *     the MLP's first projection ([2, 3, 256], not d_model);
 *   - a pattern pointed at the softmax's input (rows do not sum to 1) or at
 *     a softmax that is not there;
 *   - n_heads that does not split NeoX's fused q/k/v per head, or none;
 *   - a family forced onto the wrong model (gemma on Llama); a user rename
 *     that tries to take a standard name, and one made through a standard
 *     name that then fails the check.
 */
#include <check.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_helpers.h"
#include "names/check.h"
#include "names_test.h"
#include "unit_main.h"

static const char *const fixtures[] = {"gpt2-script",  "gpt2-trace",
                                       "llama-script", "llama-trace",
                                       "neox-script",  "neox-trace"};
#define N_FIXTURES (sizeof fixtures / sizeof fixtures[0])

/* ---- a fixture model and its config ---- */

typedef struct cfg {
  char family[32];
  int64_t vocab;
  int d_model, n_layers, n_heads;
} cfg_t;

static void read_cfg(const char *fixture, cfg_t *c) {
  char path[PATH_MAX];
  json_error_t jerr;
  json_t *root, *conf;
  snprintf(path, sizeof path, "%s/%s/model.json", nne_fixtures_dir(), fixture);
  root = json_load_file(path, 0, &jerr);
  ck_assert_msg(root != NULL, "%s: %s", path, jerr.text);
  conf = json_object_get(root, "config");
  ck_assert_ptr_nonnull(conf);
  snprintf(c->family, sizeof c->family, "%s",
           json_string_value(json_object_get(root, "family")));
  c->vocab = json_integer_value(json_object_get(conf, "vocab_size"));
  c->d_model = (int)json_integer_value(json_object_get(conf, "d_model"));
  c->n_layers = (int)json_integer_value(json_object_get(conf, "n_layers"));
  c->n_heads = (int)json_integer_value(json_object_get(conf, "n_heads"));
  ck_assert(c->vocab > 0 && c->d_model > 0 && c->n_layers > 0 &&
            c->n_heads > 0);
  json_decref(root);
}

static nne_model_t *load_model(const char *fixture) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s/model.pt", nne_fixtures_dir(), fixture);
  return nne_th_load(path);
}

/* Names of a loaded model, built as the registry does (daemon/registry.c
 * build_names): the engine's module tree, the set's maps. */
static nne_names_t *names_for(nne_model_t *m, const nne_family_set_t *set,
                              const char *forced,
                              const nne_names_rename_t *renames,
                              size_t n_renames) {
  size_t i, n = nne_model_module_count(m);
  nne_names_module_t *mods = calloc(n, sizeof *mods);
  nne_names_t *nm = NULL;
  nne_err_t err;
  ck_assert_ptr_nonnull(mods);
  for (i = 0; i < n; i++) {
    const nne_module_info_t *mi = nne_model_module(m, i);
    mods[i].path = mi->path;
    mods[i].class_name = mi->class_name;
    mods[i].parent = mi->parent;
  }
  ck_assert_msg(
      nne_names_build(set, forced, mods, n, renames, n_renames, &nm, &err) == 0,
      "build: %s", err.msg);
  free(mods);
  return nm;
}

static void validate(nne_model_t *m, nne_names_t *nm, const cfg_t *c,
                     int n_heads) {
  nne_err_t err;
  memset(&err, 0, sizeof err);
  ck_assert_msg(nne_validate_names(m, nm, c->vocab, n_heads, &err) == 0,
                "validate: %s", err.msg);
}

static const family_case_t *case_of(const char *family) {
  size_t i;
  for (i = 0; i < N_CASES; i++)
    if (strcmp(cases[i].family, family) == 0)
      return &cases[i];
  ck_abort_msg("no family case '%s'", family);
  return NULL;
}

/* ---- what must hold ---- */

static bool listed(const char *const *list, const char *name) {
  for (; list != NULL && *list != NULL; list++)
    if (strcmp(*list, name) == 0)
      return true;
  return false;
}

static char *xexpand(const char *tmpl, int i) {
  return strstr(tmpl, "{i}") != NULL ? expand_i(tmpl, i) : strdup(tmpl);
}

static const nne_names_site_entry_t *entry_of(const nne_names_t *nm,
                                              const char *name) {
  size_t i;
  for (i = 0; i < nne_names_site_count(nm); i++)
    if (strcmp(nne_names_site(nm, i)->name, name) == 0)
      return nne_names_site(nm, i);
  ck_abort_msg("no site entry '%s'", name);
  return NULL;
}

static void dump(const nne_names_t *nm) {
  size_t i;
  dump_warnings(nm);
  for (i = 0; i < nne_names_site_count(nm); i++) {
    const nne_names_site_entry_t *e = nne_names_site(nm, i);
    if (!e->available)
      fprintf(stderr, "  site %s: %s\n", e->name, e->reason);
  }
}

/* Every standard module and site of the family: available on what the
 * family case names, except those in `gone` (expanded names), which must be
 * unavailable with a reason; those the family lacks are unavailable. */
static void assert_holds(nne_model_t *m, const nne_names_t *nm,
                         const family_case_t *fc, int n_layers,
                         const char *const *gone) {
  size_t k, j, pos = 0;
  int i;
  nne_err_t err;

  ck_assert_int_eq(nne_names_layer_count(nm), n_layers);
  for (k = 0; k < N_STD_MODS; k++) {
    bool layered = strstr(std_mod_names[k], "{i}") != NULL;
    for (i = 0; i < (layered ? n_layers : 1); i++) {
      char *name = xexpand(std_mod_names[k], i);
      int got = -7, rc = nne_names_resolve_module(nm, "m", name, &got, &err);
      if (fc->mods[k] == NULL || listed(gone, name)) {
        ck_assert_msg(rc == NNE_ESTATE,
                      "%s: rc %d (module %d), want it "
                      "unavailable",
                      name, rc, got);
      } else {
        char *path = xexpand(fc->mods[k], i);
        int want = nne_model_module_find(m, path);
        ck_assert_msg(want >= 0, "fixture lacks %s", path);
        ck_assert_msg(rc == 0, "%s: %s", name, err.msg);
        ck_assert_msg(got == want, "%s is module %d, want %s (%d)", name, got,
                      path, want);
        ck_assert_msg(has_alias(nm, got, name, true), "%s: no alias %s", path,
                      name);
        free(path);
      }
      free(name);
    }
  }
  /* sites: embed, then each layer's, then logits, in that order */
  ck_assert_uint_eq(nne_names_site_count(nm), 2 + 13 * (size_t)n_layers);
  for (i = -1; i <= n_layers; i++) {
    for (j = 0; j < N_STD_SITES; j++) {
      bool layered = strstr(std_site_names[j], "{i}") != NULL;
      const nne_names_site_entry_t *e;
      char *name;
      if (layered != (i >= 0 && i < n_layers))
        continue;
      if (!layered && ((i < 0) != (j == 0)))
        continue;
      name = xexpand(std_site_names[j], i);
      e = nne_names_site(nm, pos++);
      ck_assert_str_eq(e->name, name);
      if (fc->sites[j] == NULL || listed(gone, name)) {
        ck_assert_msg(!e->available, "site %s is available (%s)", name,
                      e->site.canonical);
        ck_assert_msg(e->reason != NULL && e->reason[0] != '\0',
                      "site %s: no reason", name);
      } else {
        char *canon = xexpand(fc->sites[j], i);
        nne_names_site_t s;
        ck_assert_msg(e->available, "site %s is unavailable: %s", name,
                      e->reason);
        ck_assert_str_eq(e->site.canonical, canon);
        ck_assert_str_eq(e->site.standard, name);
        ck_assert_msg(nne_names_resolve_site(nm, "s", name, &s, &err) == 0,
                      "%s: %s", name, err.msg);
        ck_assert_str_eq(s.canonical, canon);
        if (e->tl_name != NULL) {
          ck_assert_msg(nne_names_resolve_site(nm, "s", e->tl_name, &s, &err) ==
                            0,
                        "%s: %s", e->tl_name, err.msg);
          ck_assert_str_eq(s.canonical, canon);
        }
        free(canon);
      }
      free(name);
    }
  }
  ck_assert_uint_eq(pos, nne_names_site_count(nm));
}

/* The warnings, exactly (in order). */
static void assert_warnings(const nne_names_t *nm, const char *const *want,
                            size_t n) {
  size_t i;
  if (nne_names_warning_count(nm) != n)
    dump(nm);
  ck_assert_uint_eq(nne_names_warning_count(nm), n);
  for (i = 0; i < n; i++)
    ck_assert_str_eq(nne_names_warning(nm, i), want[i]);
}

/* ---- a forward hooked at some sites ---- */

typedef struct seen {
  int fired;
  int ndim;
  int64_t shape[NNE_TENSOR_MAX_DIMS];
  double max_row_err; /* |sum of a row over the last dim - 1| */
} seen_t;

static int record_hook(void *ctx, int site, nne_tensor_t *value,
                       nne_tensor_t **replace) {
  seen_t *s = &((seen_t *)ctx)[site];
  const int64_t *shape = nne_tensor_shape(value);
  const float *p;
  int64_t rows, cols, a, b;
  int d;
  (void)replace;
  if (s->fired++ > 0)
    return 0;
  s->ndim = nne_tensor_ndim(value);
  for (d = 0; d < s->ndim; d++)
    s->shape[d] = shape[d];
  if (nne_tensor_dtype(value) != NNE_DTYPE_F32 || s->ndim < 1)
    return 0;
  p = nne_th_host_f32(value);
  cols = shape[s->ndim - 1];
  rows = cols > 0 ? nne_tensor_numel(value) / cols : 0;
  for (a = 0; a < rows; a++) {
    double sum = 0;
    for (b = 0; b < cols; b++)
      sum += p[a * cols + b];
    if (!(fabs(sum - 1) <= s->max_row_err))
      s->max_row_err = isnan(sum) ? INFINITY : fabs(sum - 1);
  }
  return 0;
}

static void run_sites(nne_model_t *m, const nne_names_site_t *ns, size_t n,
                      seen_t *seen) {
  nne_site_t sites[8];
  nne_variant_t *v = NULL;
  nne_tensor_t *ids, *logits = NULL;
  static const int64_t data[2 * 5] = {1, 5, 9, 13, 17, 2, 4, 6, 8, 10};
  static const int64_t shape[2] = {2, 5};
  nne_err_t err;
  size_t i;

  ck_assert_uint_le(n, 8);
  for (i = 0; i < n; i++) {
    sites[i].module = ns[i].module;
    sites[i].kind = (nne_site_kind_t)ns[i].kind;
    sites[i].index = ns[i].index;
    sites[i].node_kind = ns[i].node_kind;
    sites[i].node_occurrence = ns[i].node_occurrence;
  }
  memset(seen, 0, n * sizeof *seen);
  ck_assert_msg(nne_variant_build(m, sites, n, &v, &err) == 0, "%s", err.msg);
  ids = nne_th_tensor(NNE_DTYPE_I64, shape, 2, data);
  ck_assert_msg(
      nne_variant_forward(v, ids, NULL, record_hook, seen, &logits, &err) == 0,
      "%s", err.msg);
  nne_tensor_unref(logits);
  nne_tensor_unref(ids);
  nne_variant_unref(v);
  for (i = 0; i < n; i++)
    ck_assert_msg(seen[i].fired > 0, "%s did not fire", ns[i].canonical);
}

static nne_names_site_t site_of(const nne_names_t *nm, const char *name) {
  nne_names_site_t s;
  nne_err_t err;
  ck_assert_msg(nne_names_resolve_site(nm, "s", name, &s, &err) == 0, "%s: %s",
                name, err.msg);
  return s;
}

/* ---- the good side: real models, their own maps ---- */

START_TEST(test_fixture_names_hold) {
  const char *fx = fixtures[_i];
  cfg_t c;
  nne_model_t *m;
  nne_names_t *nm;
  const family_case_t *fc;
  nne_names_site_t ns[3];
  seen_t seen[3];
  char name[64], tl[64];
  nne_err_t err;
  int i, last;

  read_cfg(fx, &c);
  fc = case_of(c.family);
  nne_th_one_thread();
  m = load_model(fx);
  load_builtin();
  nm = names_for(m, g_set, NULL, NULL, 0);
  ck_assert_str_eq(nne_names_family(nm), c.family);
  validate(m, nm, &c, c.n_heads);
  assert_warnings(nm, NULL, 0);
  assert_holds(m, nm, fc, c.n_layers, NULL);

  /* The attention pattern: the softmax node of the attention's own code,
   * in every layer, under both spellings. */
  for (i = 0; i < c.n_layers; i++) {
    const nne_names_site_entry_t *e;
    char canon[256];
    snprintf(name, sizeof name, "layers.%d.self_attn.pattern", i);
    snprintf(tl, sizeof tl, "blocks.%d.attn.hook_pattern", i);
    e = entry_of(nm, name);
    ck_assert(e->available);
    ck_assert_str_eq(e->tl_name, tl);
    ck_assert_int_eq(e->site.kind, NNE_NAMES_SITE_NODE);
    ck_assert_str_eq(e->site.node_kind, "aten::softmax");
    ck_assert_int_eq(e->site.node_occurrence, 0);
    ck_assert_int_eq(e->site.index, 0);
    ck_assert_int_eq(e->site.view.parts, 0);
    snprintf(canon, sizeof canon, "%s:aten::softmax#0",
             nne_model_module(m, (size_t)e->site.module)->path);
    ck_assert_str_eq(e->site.canonical, canon);
    snprintf(name, sizeof name, "layers.%d.self_attn", i);
    ck_assert_int_eq(e->site.module, resolve_mod(nm, name, &err));
  }

  /* A forward hooked where the names say: the pattern of the first and
   * last layer is a softmax over keys, [batch, heads, seq, seq]; q's
   * fused value splits evenly. */
  last = c.n_layers - 1;
  ns[0] = site_of(nm, "blocks.0.attn.hook_pattern");
  snprintf(name, sizeof name, "layers.%d.self_attn.pattern", last);
  ns[1] = site_of(nm, name);
  ns[2] = site_of(nm, "layers.0.self_attn.q");
  run_sites(m, ns, 3, seen);
  for (i = 0; i < 2; i++) {
    ck_assert_int_eq(seen[i].ndim, 4);
    ck_assert_int_eq(seen[i].shape[0], 2);
    ck_assert_int_eq(seen[i].shape[1], c.n_heads);
    ck_assert_int_eq(seen[i].shape[2], 5);
    ck_assert_int_eq(seen[i].shape[3], 5);
    ck_assert_msg(seen[i].max_row_err < 1e-4, "%s: rows sum to 1 +- %g",
                  ns[i].canonical, seen[i].max_row_err);
  }

  /* q/k/v: the views the family's projection needs, and they split. */
  for (i = 0; i < c.n_layers; i++) {
    static const char *const qkv[3] = {"q", "k", "v"};
    char fused[256] = "";
    int p;
    for (p = 0; p < 3; p++) {
      const nne_names_site_entry_t *e;
      snprintf(name, sizeof name, "layers.%d.self_attn.%s", i, qkv[p]);
      e = entry_of(nm, name);
      ck_assert_msg(e->available, "%s: %s", name, e->reason);
      if (fc->qkv == QKV_SEPARATE) {
        ck_assert_int_eq(e->site.view.parts, 0);
        continue;
      }
      ck_assert_int_eq(e->site.view.parts, 3);
      ck_assert_int_eq(e->site.view.part, p);
      ck_assert(e->site.view.heads_view == (fc->qkv == QKV_FUSED_HEADS));
      /* one fused value for the three (layer 0's is the one hooked) */
      if (p == 0)
        snprintf(fused, sizeof fused, "%s", e->site.canonical);
      ck_assert_str_eq(e->site.canonical, fused);
      if (i == 0)
        ck_assert_str_eq(e->site.canonical, ns[2].canonical);
    }
  }
  {
    int64_t width = seen[2].shape[seen[2].ndim - 1];
    ck_assert_int_eq(seen[2].ndim, 3);
    if (fc->qkv == QKV_SEPARATE) {
      ck_assert_int_eq(width, c.d_model); /* q_proj: n_heads * head_dim */
      ck_assert_int_eq(width % c.n_heads, 0);
    } else {
      int64_t unit = fc->qkv == QKV_FUSED_HEADS ? 3 * c.n_heads : 3;
      ck_assert_int_eq(width, 3 * c.d_model);
      ck_assert_int_eq(width % unit, 0);
      ck_assert_int_eq((width / 3) % c.n_heads, 0);
    }
  }

  /* Validating again changes nothing. */
  validate(m, nm, &c, c.n_heads);
  assert_warnings(nm, NULL, 0);

  nne_names_free(nm);
  unload();
  nne_model_unref(m);
}
END_TEST

/* ---- the failing side ---- */

typedef struct loaded {
  cfg_t c;
  nne_model_t *m;
  nne_family_set_t *set;
  nne_names_t *nm;
} loaded_t;

/* Loads `fixture` and builds its names with the builtin maps plus a
 * temporary override directory holding `file` = `text` (text NULL: no
 * override); text is freed. */
static void load_with_map(loaded_t *l, const char *fixture, const char *file,
                          char *text, const nne_names_rename_t *renames,
                          size_t n_renames) {
  nne_err_t err;
  read_cfg(fixture, &l->c);
  nne_th_one_thread();
  l->m = load_model(fixture);
  tmp_setup();
  if (text != NULL) {
    write_map(file, text);
    free(text);
  }
  ck_assert_msg(load_tmp(&l->set, &err) == 0, "override maps: %s", err.msg);
  l->nm = names_for(l->m, l->set, NULL, renames, n_renames);
  ck_assert_str_eq(nne_names_family(l->nm), l->c.family);
}

static void loaded_free(loaded_t *l) {
  nne_names_free(l->nm);
  nne_family_set_free(l->set);
  nne_model_unref(l->m);
  tmp_teardown();
}

/* A builtin map's text, from the source tree. */
static char *map_text(const char *file) {
  char path[PATH_MAX];
  size_t len;
  snprintf(path, sizeof path, "%s/daemon/names/%s", src_dir(), file);
  return read_text(path, &len);
}

/* lm_head claimed at an attention module (NeoX, whose unembedding is
 * embed_out): before the check the claim resolves; after it, lm_head and
 * logits (through it) are unavailable with the shapes, one warning says
 * so, the raw paths still resolve, and everything else holds. Scripted and
 * traced. */
START_TEST(test_lm_head_at_attention) {
  const char *fx = _i == 0 ? "neox-script" : "neox-trace";
  static const char *const gone[] = {"lm_head", "logits", NULL};
  static const char *const warn[] = {
      "lm_head is unavailable: output 0 in a test forward is [2, 3, 64], "
      "expected [batch, seq, vocab] = [2, 3, 1000]"};
  loaded_t l;
  nne_err_t err;
  nne_names_site_t s;
  int attn0, m = -7;

  load_with_map(&l, fx, "gpt_neox.json",
                text_edit(map_text("gpt_neox.json"),
                          "\"lm_head\": \"embed_out\"",
                          "\"lm_head\": \"gpt_neox.layers.0.attention\""),
                NULL, 0);
  attn0 = nne_th_find(l.m, "gpt_neox.layers.0.attention");
  /* the claim, before the check */
  ck_assert_int_eq(resolve_mod(l.nm, "lm_head", &err), attn0);
  ck_assert(entry_of(l.nm, "logits")->available);
  ck_assert_str_eq(entry_of(l.nm, "logits")->site.canonical,
                   "gpt_neox.layers.0.attention.output");
  ck_assert_uint_eq(nne_names_warning_count(l.nm), 0);

  validate(l.m, l.nm, &l.c, l.c.n_heads);
  assert_warnings(l.nm, warn, 1);
  ASSERT_ERR(nne_names_resolve_module(l.nm, "module", "lm_head", &m, &err),
             NNE_ESTATE, err,
             "lm_head is unavailable: output 0 in a test forward is [2, 3, "
             "64], expected [batch, seq, vocab] = [2, 3, 1000]");
  ck_assert_str_eq(entry_of(l.nm, "logits")->reason,
                   "lm_head is unavailable: output 0 in a test forward is [2, "
                   "3, 64], expected [batch, seq, vocab] = [2, 3, 1000]");
  ASSERT_ERR(nne_names_resolve_site(l.nm, "s", "logits", &s, &err), NNE_ESTATE,
             err, "expected [batch, seq, vocab]");
  /* the attention keeps its own standard name; it lost the wrong one */
  ck_assert(has_alias(l.nm, attn0, "layers.0.self_attn", true));
  ck_assert(!has_alias(l.nm, attn0, "lm_head", true));
  ck_assert_int_eq(resolve_mod(l.nm, "gpt_neox.layers.0.attention", &err),
                   attn0);
  ck_assert_int_eq(resolve_mod(l.nm, "embed_out", &err),
                   nne_th_find(l.m, "embed_out"));
  ck_assert_int_eq(
      nne_names_resolve_site(l.nm, "s", "embed_out.output", &s, &err), 0);
  assert_holds(l.m, l.nm, case_of("gpt_neox"), l.c.n_layers, gone);
  loaded_free(&l);
}
END_TEST

/* GPT-2's lm_head is spelled like its raw path, and a raw path of the same
 * spelling wins: a map that claims lm_head is the first attention is
 * warned about at build, the check still judges the claim (and finds it
 * wrong), and "lm_head" and logits keep meaning the real unembedding. */
START_TEST(test_lm_head_spelled_like_raw_path) {
  const char *fx = _i == 0 ? "gpt2-script" : "gpt2-trace";
  static const char *const warn[] = {
      "standard name lm_head is also the raw path of another module; the raw "
      "path wins",
      "lm_head is unavailable: output 0 in a test forward is [2, 3, 64], "
      "expected [batch, seq, vocab] = [2, 3, 1000]"};
  loaded_t l;
  nne_err_t err;
  int attn0, head;

  load_with_map(&l, fx, "gpt2.json",
                gpt2_edit("\"lm_head\": \"lm_head\"",
                          "\"lm_head\": \"transformer.h.0.attn\""),
                NULL, 0);
  attn0 = nne_th_find(l.m, "transformer.h.0.attn");
  head = nne_th_find(l.m, "lm_head");
  assert_warnings(l.nm, warn, 1);
  ck_assert(!has_alias(l.nm, attn0, "lm_head", true));
  ck_assert_int_eq(resolve_mod(l.nm, "lm_head", &err), head);
  validate(l.m, l.nm, &l.c, l.c.n_heads);
  assert_warnings(l.nm, warn, 2);
  ck_assert(has_alias(l.nm, attn0, "layers.0.self_attn", true));
  ck_assert_int_eq(resolve_mod(l.nm, "lm_head", &err), head);
  ck_assert(entry_of(l.nm, "logits")->available);
  ck_assert_str_eq(entry_of(l.nm, "logits")->site.canonical, "lm_head.output");
  ck_assert_uint_eq(nne_names_module_alias_count(l.nm, head), 0);
  loaded_free(&l);
}
END_TEST

/* layers.{i}.mlp claimed at the MLP's first projection ([2, 3, 256]): the
 * name is unavailable in both layers with one merged warning, mlp_out goes
 * with it, the MLP's own sites (given by raw path here) and every other
 * name hold. */
START_TEST(test_mlp_at_projection) {
  static const char *const gone[] = {"layers.0.mlp", "layers.1.mlp",
                                     "layers.0.mlp_out", "layers.1.mlp_out",
                                     NULL};
  static const char *const warn[] = {
      "layers.{i}.mlp is unavailable in 2 layers (0..1): output 0 in a test "
      "forward is [2, 3, 256], expected [batch, seq, d_model] = [2, 3, 64]"};
  char *text = gpt2_edit("\"layers.{i}.mlp\": \"transformer.h.{i}.mlp\"",
                         "\"layers.{i}.mlp\": \"transformer.h.{i}.mlp.c_fc\"");
  loaded_t l;
  nne_err_t err;
  int m;

  text = text_edit(text, "\"layers.{i}.mlp.c_fc.output\"",
                   "\"transformer.h.{i}.mlp.c_fc.output\"");
  text = text_edit(text, "\"layers.{i}.mlp.c_proj.input\"",
                   "\"transformer.h.{i}.mlp.c_proj.input\"");
  load_with_map(&l, "gpt2-script", "gpt2.json", text, NULL, 0);
  ck_assert_int_eq(resolve_mod(l.nm, "layers.1.mlp", &err),
                   nne_th_find(l.m, "transformer.h.1.mlp.c_fc"));
  ck_assert_uint_eq(nne_names_warning_count(l.nm), 0);

  validate(l.m, l.nm, &l.c, l.c.n_heads);
  assert_warnings(l.nm, warn, 1);
  ASSERT_ERR(nne_names_resolve_module(l.nm, "module", "layers.1.mlp", &m, &err),
             NNE_ESTATE, err,
             "layers.1.mlp is unavailable: output 0 in a test forward is [2, "
             "3, 256], expected [batch, seq, d_model] = [2, 3, 64]");
  ck_assert_ptr_nonnull(
      strstr(entry_of(l.nm, "layers.0.mlp_out")->reason,
             "layers.0.mlp is unavailable: output 0 in a test forward is "
             "[2, 3, 256]"));
  ck_assert_int_eq(resolve_mod(l.nm, "transformer.h.1.mlp", &err),
                   nne_th_find(l.m, "transformer.h.1.mlp"));
  assert_holds(l.m, l.nm, case_of("gpt2"), l.c.n_layers, gone);
  loaded_free(&l);
}
END_TEST

/* The pattern claimed at the softmax's input (the scores): its rows do not
 * sum to 1, so the pattern is unavailable in every layer with a reason
 * saying so; the scores, a correct claim on the same value, stay
 * available. */
START_TEST(test_pattern_not_a_softmax) {
  static const char *const gone[] = {"layers.0.self_attn.pattern",
                                     "layers.1.self_attn.pattern", NULL};
  loaded_t l;
  nne_err_t err;
  nne_names_site_t s;
  int i;

  load_with_map(&l, "gpt2-script", "gpt2.json",
                gpt2_edit("\"layers.{i}.self_attn.pattern\": "
                          "\"layers.{i}.self_attn:aten::softmax#0\"",
                          "\"layers.{i}.self_attn.pattern\": "
                          "\"layers.{i}.self_attn:aten::softmax#0.input\""),
                NULL, 0);
  validate(l.m, l.nm, &l.c, l.c.n_heads);
  for (i = 0; i < 2; i++) {
    char name[64];
    const nne_names_site_entry_t *e;
    snprintf(name, sizeof name, "layers.%d.self_attn.pattern", i);
    e = entry_of(l.nm, name);
    ck_assert(!e->available);
    ck_assert_msg(strcmp(e->reason, "its rows do not sum to 1: not a "
                                    "softmax over keys") == 0,
                  "%s: %s", name, e->reason);
    ck_assert_msg(has_warning(l.nm, "layers.{i}.self_attn.pattern") &&
                      has_warning(l.nm, "not a softmax over keys"),
                  "no warning for %s", name);
    ASSERT_ERR(nne_names_resolve_site(l.nm, "s", name, &s, &err), NNE_ESTATE,
               err, "not a softmax over keys");
  }
  for (i = 0; i < 2; i++) {
    char name[64];
    const nne_names_site_entry_t *e;
    snprintf(name, sizeof name, "layers.%d.self_attn.scores", i);
    e = entry_of(l.nm, name);
    ck_assert_msg(e->available,
                  "%s (a correct claim on the value the wrong pattern points "
                  "at) was marked unavailable: %s",
                  name, e->reason);
  }
  /* one warning for both layers (the reason names no layer) */
  if (nne_names_warning_count(l.nm) != 1)
    dump(l.nm);
  ck_assert_uint_eq(nne_names_warning_count(l.nm), 1);
  assert_holds(l.m, l.nm, case_of("gpt2"), l.c.n_layers, gone);
  loaded_free(&l);
}
END_TEST

/* The pattern claimed at a softmax that is not there (#1): refused before
 * any forward, with the count of softmax nodes the code has. */
START_TEST(test_pattern_missing_node) {
  static const char *const gone[] = {"layers.0.self_attn.pattern",
                                     "layers.1.self_attn.pattern", NULL};
  static const char *const warn[] = {
      "layers.0.self_attn.pattern is unavailable: transformer.h.0.attn's own "
      "code has 1 aten::softmax node, not #1 (fused attention?)",
      "layers.1.self_attn.pattern is unavailable: transformer.h.1.attn's own "
      "code has 1 aten::softmax node, not #1 (fused attention?)"};
  loaded_t l;

  load_with_map(&l, _i == 0 ? "gpt2-script" : "gpt2-trace", "gpt2.json",
                gpt2_edit("\"layers.{i}.self_attn:aten::softmax#0\"",
                          "\"layers.{i}.self_attn:aten::softmax#1\""),
                NULL, 0);
  validate(l.m, l.nm, &l.c, l.c.n_heads);
  assert_warnings(l.nm, warn, 2);
  assert_holds(l.m, l.nm, case_of("gpt2"), l.c.n_layers, gone);
  loaded_free(&l);
}
END_TEST

/* NeoX's q/k/v are thirds of each head's slice of the fused projection:
 * with n_heads 5 (or 7) the width 192 does not split into 3 parts per head,
 * with none they cannot be split at all; the views are unavailable in every
 * layer (one merged warning per view) and everything else holds. GPT-2's
 * views are not per head: a wrong n_heads leaves them. */
START_TEST(test_heads_do_not_split) {
  const char *fx = _i == 0 ? "neox-script" : "neox-trace";
  static const char *const gone[] = {"layers.0.self_attn.q",
                                     "layers.0.self_attn.k",
                                     "layers.0.self_attn.v",
                                     "layers.1.self_attn.q",
                                     "layers.1.self_attn.k",
                                     "layers.1.self_attn.v",
                                     NULL};
  static const char *const warn5[] = {
      "layers.{i}.self_attn.q is unavailable in 2 layers (0..1): the last "
      "dimension of [2, 3, 192] (192) does not split into 3 parts per head",
      "layers.{i}.self_attn.k is unavailable in 2 layers (0..1): the last "
      "dimension of [2, 3, 192] (192) does not split into 3 parts per head",
      "layers.{i}.self_attn.v is unavailable in 2 layers (0..1): the last "
      "dimension of [2, 3, 192] (192) does not split into 3 parts per head"};
  static const char *const warn0[] = {
      "layers.{i}.self_attn.q is unavailable in 2 layers (0..1): needs "
      "config.n_heads in model.json to split the fused projection per head",
      "layers.{i}.self_attn.k is unavailable in 2 layers (0..1): needs "
      "config.n_heads in model.json to split the fused projection per head",
      "layers.{i}.self_attn.v is unavailable in 2 layers (0..1): needs "
      "config.n_heads in model.json to split the fused projection per head"};
  const family_case_t *fc = case_of("gpt_neox");
  cfg_t c;
  nne_model_t *m;
  nne_names_t *nm;
  nne_names_site_t s;
  nne_err_t err;

  read_cfg(fx, &c);
  ck_assert_int_eq(c.d_model, 64);
  ck_assert_int_eq(c.n_heads, 4); /* 192 % (3 * 4) == 0 */
  nne_th_one_thread();
  m = load_model(fx);
  load_builtin();

  nm = names_for(m, g_set, NULL, NULL, 0);
  validate(m, nm, &c, 5);
  assert_warnings(nm, warn5, 3);
  assert_holds(m, nm, fc, c.n_layers, gone);
  ASSERT_ERR(nne_names_resolve_site(nm, "s", "blocks.1.attn.hook_k", &s, &err),
             NNE_ESTATE, err, "does not split into 3 parts per head");
  /* the fused value itself, by raw path, is still there */
  ck_assert_int_eq(nne_names_resolve_site(
                       nm, "s",
                       "gpt_neox.layers.1.attention.query_key_value.output", &s,
                       &err),
                   0);
  nne_names_free(nm);

  nm = names_for(m, g_set, NULL, NULL, 0);
  validate(m, nm, &c, 7);
  ck_assert_uint_eq(nne_names_warning_count(nm), 3);
  ck_assert(has_warning(nm, "(192) does not split into 3 parts per head"));
  assert_holds(m, nm, fc, c.n_layers, gone);
  nne_names_free(nm);

  nm = names_for(m, g_set, NULL, NULL, 0);
  validate(m, nm, &c, 0);
  assert_warnings(nm, warn0, 3);
  assert_holds(m, nm, fc, c.n_layers, gone);
  nne_names_free(nm);

  nm = names_for(m, g_set, NULL, NULL, 0);
  validate(m, nm, &c, c.n_heads);
  assert_warnings(nm, NULL, 0);
  assert_holds(m, nm, fc, c.n_layers, NULL);
  nne_names_free(nm);
  nne_model_unref(m);

  /* GPT-2: thirds of the whole width, whatever n_heads says */
  read_cfg("gpt2-script", &c);
  m = load_model("gpt2-script");
  nm = names_for(m, g_set, NULL, NULL, 0);
  validate(m, nm, &c, 5);
  assert_warnings(nm, NULL, 0);
  assert_holds(m, nm, case_of("gpt2"), c.n_layers, NULL);
  nne_names_free(nm);
  nne_model_unref(m);
  unload();
}
END_TEST

/* Gemma's map forced onto a Llama model: the names whose modules are not
 * there are unavailable from the build (with its warnings), the check adds
 * no false failure, and the names that do exist hold on the right
 * modules. */
START_TEST(test_forced_wrong_family) {
  const char *fx = _i == 0 ? "llama-script" : "llama-trace";
  cfg_t c;
  nne_model_t *m;
  nne_names_t *nm;
  nne_err_t err;
  size_t nw, i;
  char **before;
  int k;

  read_cfg(fx, &c);
  nne_th_one_thread();
  m = load_model(fx);
  load_builtin();
  nm = names_for(m, g_set, "gemma", NULL, 0);
  ck_assert_str_eq(nne_names_family(nm), "gemma");
  nw = nne_names_warning_count(nm);
  ck_assert_uint_gt(nw, 0);
  before = calloc(nw, sizeof *before);
  for (i = 0; i < nw; i++)
    before[i] = strdup(nne_names_warning(nm, i));
  validate(m, nm, &c, c.n_heads);
  /* the build's warnings, and nothing from the check */
  assert_warnings(nm, (const char *const *)before, nw);
  ck_assert(has_warning(nm, "model.layers.{i}.pre_feedforward_layernorm, "
                            "which is not in this model"));
  for (k = 0; k < c.n_layers; k++) {
    char n1[64], p1[128];
    int mod;
    snprintf(n1, sizeof n1, "layers.%d.ln_mlp", k);
    ck_assert_int_eq(nne_names_resolve_module(nm, "m", n1, &mod, &err),
                     NNE_ESTATE);
    ck_assert_ptr_nonnull(strstr(err.msg, "not in this model"));
    snprintf(n1, sizeof n1, "layers.%d.mlp_out", k);
    ck_assert(!entry_of(nm, n1)->available);
    /* what exists holds */
    snprintf(n1, sizeof n1, "layers.%d.mlp", k);
    snprintf(p1, sizeof p1, "model.layers.%d.mlp", k);
    ck_assert_int_eq(resolve_mod(nm, n1, &err), nne_th_find(m, p1));
    snprintf(n1, sizeof n1, "layers.%d.self_attn", k);
    snprintf(p1, sizeof p1, "model.layers.%d.self_attn", k);
    ck_assert_int_eq(resolve_mod(nm, n1, &err), nne_th_find(m, p1));
    snprintf(n1, sizeof n1, "layers.%d.self_attn.pattern", k);
    ck_assert(entry_of(nm, n1)->available);
    snprintf(n1, sizeof n1, "layers.%d.resid_post", k);
    ck_assert(entry_of(nm, n1)->available);
  }
  ck_assert_int_eq(resolve_mod(nm, "lm_head", &err), nne_th_find(m, "lm_head"));
  ck_assert(entry_of(nm, "logits")->available);
  ck_assert(entry_of(nm, "embed")->available);
  for (i = 0; i < nw; i++)
    free(before[i]);
  free(before);
  nne_names_free(nm);
  unload();
  nne_model_unref(m);
}
END_TEST

/* A user rename cannot take a standard name (the check's names stay the
 * family's), and a user alias of a raw path survives the check. */
START_TEST(test_rename_cannot_claim_standard) {
  static const char *const to_std[] = {"layers.{i}.mlp"};
  static const char *const to_fc[] = {"fc{i}"};
  const nne_names_rename_t r[2] = {{"transformer.h.{i}.mlp.c_fc", to_std, 1},
                                   {"transformer.h.{i}.mlp.c_fc", to_fc, 1}};
  cfg_t c;
  nne_model_t *m;
  nne_names_t *nm;
  nne_err_t err;

  read_cfg("gpt2-script", &c);
  nne_th_one_thread();
  m = load_model("gpt2-script");
  load_builtin();
  nm = names_for(m, g_set, NULL, r, 2);
  ck_assert_uint_eq(nne_names_warning_count(nm), 2);
  ck_assert(has_warning(nm, "names: alias 'layers.0.mlp' for "
                            "'transformer.h.{i}.mlp.c_fc' is already the name "
                            "of transformer.h.0.mlp; ignored"));
  validate(m, nm, &c, c.n_heads);
  ck_assert_uint_eq(nne_names_warning_count(nm), 2);
  assert_holds(m, nm, case_of("gpt2"), c.n_layers, NULL);
  ck_assert_int_eq(resolve_mod(nm, "fc1", &err),
                   nne_th_find(m, "transformer.h.1.mlp.c_fc"));
  nne_names_free(nm);
  unload();
  nne_model_unref(m);
}
END_TEST

/* A user alias made through a standard name ("layers.{i}.mlp": "ffn{i}")
 * carries that name's claim. When the check finds the claim wrong, the
 * alias must not keep resolving to the wrong module as if nothing
 * happened. */
START_TEST(test_rename_through_failed_name) {
  static const char *const to[] = {"ffn{i}"};
  const nne_names_rename_t r = {"layers.{i}.mlp", to, 1};
  char *text = gpt2_edit("\"layers.{i}.mlp\": \"transformer.h.{i}.mlp\"",
                         "\"layers.{i}.mlp\": \"transformer.h.{i}.mlp.c_fc\"");
  loaded_t l;
  nne_err_t err;
  int m = -7, rc;

  text = text_edit(text, "\"layers.{i}.mlp.c_fc.output\"",
                   "\"transformer.h.{i}.mlp.c_fc.output\"");
  text = text_edit(text, "\"layers.{i}.mlp.c_proj.input\"",
                   "\"transformer.h.{i}.mlp.c_proj.input\"");
  load_with_map(&l, "gpt2-script", "gpt2.json", text, &r, 1);
  ck_assert_int_eq(resolve_mod(l.nm, "ffn0", &err),
                   nne_th_find(l.m, "transformer.h.0.mlp.c_fc"));
  validate(l.m, l.nm, &l.c, l.c.n_heads);
  ck_assert(has_warning(l.nm, "layers.{i}.mlp is unavailable"));
  rc = nne_names_resolve_module(l.nm, "module", "ffn0", &m, &err);
  ck_assert_msg(rc == NNE_ESTATE,
                "'ffn0' (the user's alias of layers.0.mlp, which failed the "
                "check) still resolves: rc %d, module %d (%s)",
                rc, m, rc == 0 ? nne_model_module(l.m, (size_t)m)->path : "");
  loaded_free(&l);
}
END_TEST

static Suite *check_suite(void) {
  Suite *s = suite_create("check");
  TCase *tc = tcase_create("check");
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, test_fixture_names_hold, 0, (int)N_FIXTURES);
  tcase_add_loop_test(tc, test_lm_head_at_attention, 0, 2);
  tcase_add_loop_test(tc, test_lm_head_spelled_like_raw_path, 0, 2);
  tcase_add_test(tc, test_mlp_at_projection);
  tcase_add_test(tc, test_pattern_not_a_softmax);
  tcase_add_loop_test(tc, test_pattern_missing_node, 0, 2);
  tcase_add_loop_test(tc, test_heads_do_not_split, 0, 2);
  tcase_add_loop_test(tc, test_forced_wrong_family, 0, 2);
  tcase_add_test(tc, test_rename_cannot_claim_standard);
  tcase_add_test(tc, test_rename_through_failed_name);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return nne_test_run_suite(check_suite());
}
