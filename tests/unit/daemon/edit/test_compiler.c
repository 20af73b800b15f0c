/* Unit tests for daemon/compiler.c and daemon/backend_cache.c: grouping by
 * true module depth, hook numbering that depends only on the site set,
 * structure keys, and the byte-bounded LRU cache with pins. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edit/backend_cache.h"
#include "edit/compiler.h"
#include "engine/engine.h"
#include "fixtures.h"

static nne_model_t *model;

static void setup(void) {
  char path[1024];
  nne_err_t err;
  snprintf(path, sizeof path, "%s/gpt2-script/model.pt", nne_fixtures_dir());
  ck_assert_msg(nne_model_load(path, "cpu", NNE_DTYPE_INVALID, &model, &err) ==
                    0,
                "%s (generate fixtures first)", err.msg);
}

static void teardown(void) {
  nne_model_unref(model);
  model = NULL;
}

static nne_names_site_t site(const char *path, nne_names_site_kind_t kind,
                             int index) {
  nne_names_site_t s;
  memset(&s, 0, sizeof s);
  s.module = nne_model_module_find(model, path);
  ck_assert_msg(s.module >= 0, "no module %s", path);
  s.kind = kind;
  s.index = index;
  snprintf(s.canonical, sizeof s.canonical, "%s.%s%s", path,
           kind == NNE_NAMES_SITE_INPUT ? "input" : "output",
           index ? ".1" : "");
  return s;
}

START_TEST(test_group_deepest_first) {
  /* Given shallow first, string order misleading ("transformer.h.0" sorts
   * before "transformer.h.0.attn.c_attn"), depth must win. */
  nne_names_site_t s[4];
  nne_edit_group_t *g;
  size_t ng, i;
  nne_err_t err;
  s[0] = site("transformer.h.0", NNE_NAMES_SITE_OUTPUT, 0);
  s[1] = site("transformer.h.0.attn.c_attn", NNE_NAMES_SITE_OUTPUT, 0);
  s[2] = site("transformer.h.0.attn", NNE_NAMES_SITE_OUTPUT, 0);
  s[3] = site("transformer.h.0", NNE_NAMES_SITE_INPUT, 0);
  ck_assert_int_eq(nne_compiler_group_by_hierarchy(model, s, 4, &g, &ng, &err),
                   0);
  ck_assert_uint_eq(ng, 3);
  ck_assert_int_eq(g[0].instance, s[1].module);
  ck_assert_int_eq(g[1].instance, s[2].module);
  ck_assert_int_eq(g[2].instance, s[0].module);
  for (i = 0; i + 1 < ng; i++)
    ck_assert_int_gt(g[i].depth, g[i + 1].depth);
  ck_assert_uint_eq(g[2].n, 2); /* input and output of transformer.h.0 */
  ck_assert_uint_eq(g[2].items[0], 0);
  ck_assert_uint_eq(g[2].items[1], 3);
  free(g);
}
END_TEST

START_TEST(test_plan_depends_on_the_set_only) {
  nne_names_site_t a[3], b[4];
  nne_compile_plan_t pa, pb;
  nne_err_t err;
  size_t i;
  a[0] = site("transformer.h.1", NNE_NAMES_SITE_OUTPUT, 0);
  a[1] = site("lm_head", NNE_NAMES_SITE_OUTPUT, 0);
  a[2] = site("transformer.h.1.mlp", NNE_NAMES_SITE_OUTPUT, 0);
  /* the same set, another order, one duplicate */
  b[0] = a[2];
  b[1] = a[1];
  b[2] = a[0];
  b[3] = a[2];
  ck_assert_int_eq(nne_compiler_plan(model, a, 3, &pa, &err), 0);
  ck_assert_int_eq(nne_compiler_plan(model, b, 4, &pb, &err), 0);
  ck_assert_str_eq(pa.key, pb.key);
  ck_assert_uint_eq(pa.n_hooks, 3);
  ck_assert_uint_eq(pb.n_hooks, 3);
  for (i = 0; i < pa.n_hooks; i++) {
    ck_assert_str_eq(pa.hooks[i].canonical, pb.hooks[i].canonical);
    ck_assert_int_eq(pa.engine_sites[i].module, pa.hooks[i].module);
  }
  /* deepest first: the MLP (depth 4) before h.1 (3) and lm_head (1) */
  ck_assert_str_eq(pa.hooks[0].canonical, "transformer.h.1.mlp.output");
  ck_assert_str_eq(pa.hooks[2].canonical, "lm_head.output");
  /* items map to the hook of their site; duplicates share one */
  ck_assert_int_eq(pb.item_hook[0], pb.item_hook[3]);
  for (i = 0; i < 4; i++)
    ck_assert_str_eq(pb.hooks[pb.item_hook[i]].canonical, b[i].canonical);
  /* the key is the set in hook order, newline-terminated */
  ck_assert_str_eq(pa.key, "transformer.h.1.mlp.output\n"
                           "transformer.h.1.output\nlm_head.output\n");
  nne_compiler_plan_free(&pa);
  nne_compiler_plan_free(&pb);
}
END_TEST

static nne_variant_t *build(const nne_compile_plan_t *p) {
  nne_variant_t *v;
  nne_err_t err;
  ck_assert_msg(nne_variant_build(model, p->engine_sites, p->n_hooks, &v,
                                  &err) == 0,
                "%s", err.msg);
  return v;
}

/* Every module's input and output (and each output twice), shuffled three
 * ways: the groups are strictly deepest first then in tree order, each
 * group's items keep the caller's order, every site is in exactly one
 * group, and the plan (hooks, key) is the same for every shuffle. */
START_TEST(test_many_sites_any_order) {
  size_t nmod = nne_model_module_count(model), n = 3 * nmod, i, k, r;
  nne_names_site_t *s = calloc(n, sizeof *s), *t = calloc(n, sizeof *t);
  char *key0 = NULL;
  unsigned seed = 12345;
  nne_err_t err;
  ck_assert_ptr_nonnull(s);
  ck_assert_ptr_nonnull(t);
  for (i = 0; i < nmod; i++) {
    const char *path = nne_model_module(model, i)->path;
    s[3 * i] = site(path, NNE_NAMES_SITE_INPUT, 0);
    s[3 * i + 1] = site(path, NNE_NAMES_SITE_OUTPUT, 0);
    s[3 * i + 2] = s[3 * i + 1];
  }
  for (r = 0; r < 3; r++) {
    nne_edit_group_t *g;
    nne_compile_plan_t p;
    size_t ng, seen = 0;
    memcpy(t, s, n * sizeof *t);
    for (i = n; r > 0 && i > 1; i--) { /* Fisher-Yates, fixed seed */
      nne_names_site_t x;
      seed = seed * 1103515245u + 12345u;
      k = (seed >> 8) % i;
      x = t[i - 1];
      t[i - 1] = t[k];
      t[k] = x;
    }
    ck_assert_int_eq(nne_compiler_group_by_hierarchy(model, t, n, &g, &ng,
                                                     &err),
                     0);
    ck_assert_uint_eq(ng, nmod);
    for (i = 0; i < ng; i++) {
      if (i > 0)
        ck_assert(g[i - 1].depth > g[i].depth ||
                  (g[i - 1].depth == g[i].depth &&
                   g[i - 1].instance < g[i].instance));
      ck_assert_uint_eq(g[i].n, 3);
      for (k = 0; k < g[i].n; k++) {
        ck_assert_int_eq(t[g[i].items[k]].module, g[i].instance);
        if (k > 0)
          ck_assert_uint_lt(g[i].items[k - 1], g[i].items[k]);
      }
      seen += g[i].n;
    }
    ck_assert_uint_eq(seen, n);
    free(g);
    ck_assert_int_eq(nne_compiler_plan(model, t, n, &p, &err), 0);
    ck_assert_uint_eq(p.n_hooks, 2 * nmod);
    for (i = 0; i < n; i++)
      ck_assert_str_eq(p.hooks[p.item_hook[i]].canonical, t[i].canonical);
    if (key0 == NULL)
      key0 = strdup(p.key);
    else
      ck_assert_str_eq(p.key, key0);
    nne_compiler_plan_free(&p);
  }
  free(key0);
  free(s);
  free(t);
}
END_TEST

START_TEST(test_cache_hits_pins_and_eviction) {
  nne_names_site_t s[3];
  nne_compile_plan_t p[3];
  nne_backend_cache_t c;
  nne_backend_t *b[3], *again;
  nne_variant_t *v;
  nne_err_t err;
  size_t one, freed;
  int i;

  s[0] = site("transformer.h.0", NNE_NAMES_SITE_OUTPUT, 0);
  s[1] = site("transformer.h.1", NNE_NAMES_SITE_OUTPUT, 0);
  s[2] = site("lm_head", NNE_NAMES_SITE_OUTPUT, 0);
  size_t sz[3], mx, mn;
  for (i = 0; i < 3; i++) {
    ck_assert_int_eq(nne_compiler_plan(model, &s[i], 1, &p[i], &err), 0);
    v = build(&p[i]);
    sz[i] = nne_variant_bytes(v);
    ck_assert_uint_gt(sz[i], 0);
    nne_variant_unref(v);
  }
  /* Room for p0 and the larger of p1, p2 but not all three: the third put
   * must evict, and with everything pinned a new one cannot fit. */
  mx = sz[1] > sz[2] ? sz[1] : sz[2];
  mn = sz[1] < sz[2] ? sz[1] : sz[2];
  nne_backend_cache_init(&c, sz[0] + mx + mn / 2);
  v = build(&p[0]);
  one = nne_variant_bytes(v);
  ck_assert_uint_eq(one, sz[0]);
  ck_assert_ptr_null(nne_compiler_get_backend(&c, &p[0]));
  ck_assert_int_eq(nne_backend_cache_put(&c, p[0].key, v, 1.5, &b[0], &err), 0);
  nne_variant_unref(v);
  ck_assert_ptr_eq(nne_compiler_get_backend(&c, &p[0]), b[0]);
  ck_assert_uint_eq(c.hits, 1);
  ck_assert_uint_eq(c.misses, 1);
  /* putting the same key again keeps the first entry */
  v = build(&p[0]);
  ck_assert_int_eq(nne_backend_cache_put(&c, p[0].key, v, 9, &again, &err), 0);
  ck_assert_ptr_eq(again, b[0]);
  ck_assert_uint_eq(c.count, 1);
  nne_variant_unref(v);

  nne_backend_pin(b[0]);
  for (i = 1; i < 3; i++) {
    v = build(&p[i]);
    ck_assert_int_eq(nne_backend_cache_put(&c, p[i].key, v, 1, &b[i], &err),
                     0);
    nne_variant_unref(v);
  }
  /* the third put evicted the unpinned LRU entry (p[1]), never the pinned */
  ck_assert_uint_eq(c.evictions, 1);
  ck_assert_ptr_nonnull(nne_backend_cache_get(&c, p[0].key));
  ck_assert_ptr_null(nne_backend_cache_get(&c, p[1].key));
  ck_assert_ptr_nonnull(nne_backend_cache_get(&c, p[2].key));
  ck_assert_uint_le(c.bytes, c.capacity_bytes);

  /* everything pinned and full: a new backend is refused, not an OOM */
  nne_backend_pin(b[2]);
  v = build(&p[1]);
  ck_assert_int_eq(nne_backend_cache_put(&c, p[1].key, v, 1, &b[1], &err),
                   NNE_ERESOURCE);
  ck_assert_ptr_nonnull(strstr(err.msg, "pinned"));
  nne_variant_unref(v);

  /* unpin with drop frees it and reports the bytes */
  freed = nne_backend_unpin(&c, b[2], true);
  ck_assert_uint_gt(freed, 0);
  ck_assert_ptr_null(nne_backend_cache_get(&c, p[2].key));
  /* two pins: the first unpin frees nothing */
  nne_backend_pin(b[0]);
  ck_assert_uint_eq(nne_backend_unpin(&c, b[0], true), 0);
  ck_assert_uint_gt(nne_backend_unpin(&c, b[0], true), 0);
  ck_assert_uint_eq(c.count, 0);
  ck_assert_uint_eq(c.bytes, 0);
  nne_backend_cache_clear(&c);
  for (i = 0; i < 3; i++)
    nne_compiler_plan_free(&p[i]);
}
END_TEST

START_TEST(test_pinned_backend_outlives_a_cleared_cache) {
  /* Issue 8: the model unloads (the cache is cleared) while an edit set
   * still pins a backend. The set's pointer must stay valid (readable, and
   * unpinnable once) and the cache must account for nothing. Under ASan a
   * freed entry here is a heap-use-after-free. */
  nne_names_site_t s = site("transformer.h.1", NNE_NAMES_SITE_OUTPUT, 0);
  nne_compile_plan_t p;
  nne_backend_cache_t c;
  nne_backend_t *b, *other;
  nne_variant_t *v;
  nne_err_t err;
  char digest[17];

  ck_assert_int_eq(nne_compiler_plan(model, &s, 1, &p, &err), 0);
  nne_backend_cache_init(&c, 1u << 30);
  v = build(&p);
  ck_assert_int_eq(nne_backend_cache_put(&c, p.key, v, 1, &b, &err), 0);
  nne_variant_unref(v);
  nne_backend_pin(b);
  nne_backend_pin(b); /* two sets share it */
  memcpy(digest, b->digest, sizeof digest);
  nne_backend_cache_clear(&c);
  ck_assert_uint_eq(c.count, 0);
  ck_assert_uint_eq(c.bytes, 0);
  ck_assert_ptr_null(nne_backend_cache_get(&c, p.key));
  /* Still whole for its holders. */
  ck_assert_str_eq(b->digest, digest);
  ck_assert_ptr_nonnull(b->variant);
  ck_assert(!b->listed);
  /* Unlisted: unpinning releases no cache bytes and touches no list. */
  ck_assert_uint_eq(nne_backend_unpin(&c, b, true), 0);
  ck_assert_str_eq(b->key, p.key);
  ck_assert_uint_eq(nne_backend_unpin(&c, b, true), 0);
  /* The cache works on: the same key is a fresh entry. */
  v = build(&p);
  ck_assert_int_eq(nne_backend_cache_put(&c, p.key, v, 1, &other, &err), 0);
  nne_variant_unref(v);
  ck_assert(other->listed);
  ck_assert_uint_eq(c.count, 1);
  nne_backend_cache_clear(&c);
  nne_compiler_plan_free(&p);
}
END_TEST

START_TEST(test_digest_is_stable) {
  char a[17], b[17], c[17];
  nne_backend_key_digest("x.output\n", a);
  nne_backend_key_digest("x.output\n", b);
  nne_backend_key_digest("y.output\n", c);
  ck_assert_str_eq(a, b);
  ck_assert_str_ne(a, c);
  ck_assert_uint_eq(strlen(a), 16);
}
END_TEST

int main(void) {
  Suite *s = suite_create("compiler");
  TCase *tc = tcase_create("core");
  SRunner *sr;
  int failed;
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_group_deepest_first);
  tcase_add_test(tc, test_plan_depends_on_the_set_only);
  tcase_add_test(tc, test_many_sites_any_order);
  tcase_add_test(tc, test_cache_hits_pins_and_eviction);
  tcase_add_test(tc, test_pinned_backend_outlives_a_cleared_cache);
  tcase_add_test(tc, test_digest_is_stable);
  suite_add_tcase(s, tc);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
