/* test_backend_cache.c — daemon/edit/backend_cache.{h,c}: compiled backends
 * of one model, cached by structure, with real variants of the GPT-2
 * fixture (their byte sizes are what the cache accounts).
 *
 * It proves that the cache is an LRU by bytes (a get() makes an entry
 * recent, so the least recently *used* entry goes, not the oldest put),
 * that eviction never takes a pinned entry and a put that only pinned
 * entries could make room for is refused with nothing added, that a put of
 * a key already there returns the existing entry and keeps its variant,
 * that pins are references (an entry pinned when the cache is cleared stays
 * whole until its last unpin; with drop=false an unpinned entry stays for
 * reuse, with drop=true it leaves at once), and that in-flight builds are
 * joined by key until unlisted, then a new one starts, and are freed with
 * their last release. Under ASan every "stays valid" here is checked for
 * real, and every free for leaks.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edit/backend_cache.h"
#include "edit/compiler.h"
#include "engine/engine.h"
#include "entry_helpers.h"
#include "unit_main.h"

static nne_model_t *model;

/* Three structures and their plans: one hook each. */
static const char *const paths[3] = {"transformer.h.0", "transformer.h.1",
                                     "lm_head"};
static nne_compile_plan_t plans[3];
static size_t sizes[3];

static nne_variant_t *build(int i) {
  nne_variant_t *v = NULL;
  nne_err_t err;
  ck_assert_msg(nne_variant_build(model, plans[i].engine_sites,
                                  plans[i].n_hooks, &v, &err) == 0,
                "%s", err.msg);
  return v;
}

static void setup(void) {
  int i;
  nne_err_t err;
  model = nne_th_load_fixture_model("gpt2-script");
  for (i = 0; i < 3; i++) {
    nne_names_site_t s = nne_th_site(model, paths[i], NNE_NAMES_SITE_OUTPUT, 0);
    nne_variant_t *v;
    ck_assert_int_eq(nne_compiler_plan(model, &s, 1, &plans[i], &err), 0);
    v = build(i);
    sizes[i] = nne_variant_bytes(v);
    ck_assert_uint_gt(sizes[i], 0);
    nne_variant_unref(v);
  }
}

static void teardown(void) {
  int i;
  for (i = 0; i < 3; i++)
    nne_compiler_plan_free(&plans[i]);
  nne_model_unref(model);
  model = NULL;
}

/* Puts a fresh variant of structure i; the cache keeps its own reference. */
static nne_backend_t *put(nne_backend_cache_t *c, int i) {
  nne_variant_t *v = build(i);
  nne_backend_t *b = NULL;
  nne_err_t err;
  ck_assert_msg(nne_backend_cache_put(c, plans[i].key, v, 1.0, &b, &err) == 0,
                "%s", err.msg);
  nne_variant_unref(v);
  ck_assert_ptr_nonnull(b);
  return b;
}

START_TEST(test_lru_by_use_not_by_age) {
  /* Room for any two entries but not three. */
  size_t cap = sizes[0] + sizes[1] + sizes[2] - 1;
  nne_backend_cache_t c;
  nne_backend_t *b0, *b1, *b2;

  nne_backend_cache_init(&c, cap);
  b0 = put(&c, 0);
  b1 = put(&c, 1);
  ck_assert_uint_eq(c.count, 2);
  ck_assert_uint_eq(c.bytes, sizes[0] + sizes[1]);
  /* b0 was put first, but is used now: b1 is the least recently used. */
  ck_assert_ptr_eq(nne_backend_cache_get(&c, plans[0].key), b0);
  b2 = put(&c, 2);
  ck_assert_uint_eq(c.evictions, 1);
  ck_assert_uint_eq(c.count, 2);
  ck_assert_uint_eq(c.bytes, sizes[0] + sizes[2]);
  ck_assert_ptr_eq(nne_backend_cache_get(&c, plans[0].key), b0);
  ck_assert_ptr_eq(nne_backend_cache_get(&c, plans[2].key), b2);
  ck_assert_ptr_null(nne_backend_cache_get(&c, plans[1].key));
  (void)b1; /* freed by the eviction */
  ck_assert_uint_eq(c.hits, 3);
  ck_assert_uint_eq(c.misses, 1);
  /* The gets above used b0 before b2: b0 is now the least recently used
   * and goes next. */
  b1 = put(&c, 1);
  ck_assert_uint_eq(c.evictions, 2);
  ck_assert_ptr_null(nne_backend_cache_get(&c, plans[0].key));
  ck_assert_ptr_eq(nne_backend_cache_get(&c, plans[2].key), b2);
  ck_assert_ptr_eq(nne_backend_cache_get(&c, plans[1].key), b1);
  ck_assert_uint_le(c.bytes, c.capacity_bytes);
  nne_backend_cache_clear(&c);
  ck_assert_uint_eq(c.count, 0);
  ck_assert_uint_eq(c.bytes, 0);
}
END_TEST

START_TEST(test_put_existing_key_returns_the_entry) {
  nne_backend_cache_t c;
  nne_backend_t *b, *again = NULL;
  nne_variant_t *first, *second;
  nne_err_t err;

  nne_backend_cache_init(&c, 1u << 30);
  b = put(&c, 0);
  first = b->variant;
  ck_assert_str_eq(b->key, plans[0].key);
  ck_assert_uint_eq(b->refs, 1); /* the cache's */
  ck_assert_int_eq(b->pins, 0);
  ck_assert(b->listed);
  /* A concurrent build of the same structure: the existing entry wins and
   * the new variant is not kept (the caller's reference is its only one,
   * so dropping it frees it: LSan checks). */
  second = build(0);
  ck_assert_int_eq(
      nne_backend_cache_put(&c, plans[0].key, second, 5.0, &again, &err), 0);
  nne_variant_unref(second);
  ck_assert_ptr_eq(again, b);
  ck_assert_ptr_eq(b->variant, first);
  ck_assert_uint_eq(c.count, 1);
  ck_assert_uint_eq(c.bytes, sizes[0]);
  ck_assert_double_eq(c.compile_ms_total, 1.0);
  nne_backend_cache_clear(&c);
}
END_TEST

START_TEST(test_pinned_entries_are_never_evicted) {
  size_t cap = sizes[0] + sizes[1] + sizes[2] - 1;
  nne_backend_cache_t c;
  nne_backend_t *b0, *b1, *out = NULL;
  nne_variant_t *v;
  nne_err_t err;

  nne_backend_cache_init(&c, cap);
  b0 = put(&c, 0);
  b1 = put(&c, 1);
  nne_backend_pin(b0);
  nne_backend_pin(b1);
  ck_assert_uint_eq(nne_backend_cache_pinned(&c), 2);
  /* Full of pinned entries: refused, nothing added, nothing evicted. */
  v = build(2);
  ck_assert_int_eq(nne_backend_cache_put(&c, plans[2].key, v, 1, &out, &err),
                   NNE_ERESOURCE);
  ck_assert_ptr_nonnull(strstr(err.msg, "--backend-cache-bytes"));
  ck_assert_ptr_null(out);
  ck_assert_uint_eq(c.count, 2);
  ck_assert_uint_eq(c.evictions, 0);
  ck_assert_uint_eq(c.bytes, sizes[0] + sizes[1]);
  ck_assert_ptr_null(nne_backend_cache_get(&c, plans[2].key));
  /* Unpinned without drop, b0 stays listed (for reuse) ... */
  ck_assert_uint_eq(nne_backend_unpin(&c, b0, false), 0);
  ck_assert(b0->listed);
  ck_assert_ptr_eq(nne_backend_cache_get(&c, plans[0].key), b0);
  /* ... and is the one evicted, though the pinned b1 is older in use. */
  ck_assert_ptr_eq(nne_backend_cache_get(&c, plans[1].key), b1);
  ck_assert_int_eq(nne_backend_cache_put(&c, plans[2].key, v, 1, &out, &err),
                   0);
  nne_variant_unref(v);
  ck_assert_uint_eq(c.evictions, 1);
  ck_assert_ptr_null(nne_backend_cache_get(&c, plans[0].key));
  ck_assert_ptr_eq(nne_backend_cache_get(&c, plans[1].key), b1);
  ck_assert_ptr_eq(nne_backend_cache_get(&c, plans[2].key), out);
  ck_assert_uint_eq(nne_backend_unpin(&c, b1, false), 0);
  nne_backend_cache_clear(&c);
}
END_TEST

START_TEST(test_larger_than_the_cache) {
  /* A backend larger than the whole cache is refused even when the cache
   * could be emptied for it: evicting everything would not make it fit. */
  nne_backend_cache_t c;
  nne_backend_t *b1, *out = NULL;
  nne_names_site_t all[3];
  nne_compile_plan_t big;
  nne_variant_t *v;
  nne_err_t err;
  int i;

  for (i = 0; i < 3; i++)
    all[i] = nne_th_site(model, paths[i], NNE_NAMES_SITE_OUTPUT, 0);
  ck_assert_int_eq(nne_compiler_plan(model, all, 3, &big, &err), 0);
  ck_assert_msg(
      nne_variant_build(model, big.engine_sites, big.n_hooks, &v, &err) == 0,
      "%s", err.msg);
  /* Precondition: three hooks hold more than one. */
  ck_assert_uint_gt(nne_variant_bytes(v), sizes[1]);
  nne_backend_cache_init(&c, sizes[1]);
  b1 = put(&c, 1); /* exactly the capacity: fits */
  ck_assert_uint_eq(c.bytes, c.capacity_bytes);
  ck_assert_int_eq(nne_backend_cache_put(&c, big.key, v, 1, &out, &err),
                   NNE_ERESOURCE);
  ck_assert_ptr_null(out);
  ck_assert_uint_eq(c.evictions, 0);
  ck_assert_ptr_eq(nne_backend_cache_get(&c, plans[1].key), b1);
  nne_backend_cache_clear(&c);
  /* A zero-byte cache holds nothing at all. */
  nne_backend_cache_init(&c, 0);
  ck_assert_int_eq(nne_backend_cache_put(&c, big.key, v, 1, &out, &err),
                   NNE_ERESOURCE);
  ck_assert_uint_eq(c.count, 0);
  nne_backend_cache_clear(&c);
  nne_variant_unref(v);
  nne_compiler_plan_free(&big);
}
END_TEST

START_TEST(test_unpin_drop_and_shared_pins) {
  nne_backend_cache_t c;
  nne_backend_t *b;

  nne_backend_cache_init(&c, 1u << 30);
  b = put(&c, 1);
  nne_backend_pin(b); /* two edit sets share it */
  nne_backend_pin(b);
  ck_assert_int_eq(b->pins, 2);
  ck_assert_int_eq(b->refs, 3);
  /* The first set's Drop: the other still pins it, nothing is released. */
  ck_assert_uint_eq(nne_backend_unpin(&c, b, true), 0);
  ck_assert(b->listed);
  ck_assert_uint_eq(c.count, 1);
  /* The last: removed at once, its bytes reported. */
  ck_assert_uint_eq(nne_backend_unpin(&c, b, true), sizes[1]);
  ck_assert_uint_eq(c.count, 0);
  ck_assert_uint_eq(c.bytes, 0);
  ck_assert_ptr_null(nne_backend_cache_get(&c, plans[1].key));
  nne_backend_cache_clear(&c);
}
END_TEST

START_TEST(test_clear_keeps_pinned_entries_alive) {
  nne_backend_cache_t c;
  nne_backend_t *pinned, *loose, *fresh;
  nne_variant_t *v;
  char key[256];

  nne_backend_cache_init(&c, 1u << 30);
  pinned = put(&c, 0);
  loose = put(&c, 1);
  (void)loose;
  nne_backend_pin(pinned);
  v = nne_variant_ref(pinned->variant);
  snprintf(key, sizeof key, "%s", pinned->key);
  /* The model unloads: the cache lets go of everything. The unpinned entry
   * is freed; the pinned one lives on, unlisted, for its holder. */
  nne_backend_cache_clear(&c);
  ck_assert_uint_eq(c.count, 0);
  ck_assert_uint_eq(c.bytes, 0);
  ck_assert_ptr_null(c.entries);
  ck_assert_uint_eq(nne_backend_cache_pinned(&c), 0);
  ck_assert(!pinned->listed);
  ck_assert_int_eq(pinned->refs, 1); /* the pin's */
  ck_assert_str_eq(pinned->key, key);
  ck_assert_ptr_eq(pinned->variant, v);
  /* The cache works on, and the same key is a new entry. */
  fresh = put(&c, 0);
  ck_assert_ptr_ne(fresh, pinned);
  ck_assert_uint_eq(c.count, 1);
  /* Unpinning the old one touches neither the list nor the bytes. */
  ck_assert_uint_eq(nne_backend_unpin(&c, pinned, true), 0);
  ck_assert_uint_eq(c.count, 1);
  ck_assert_uint_eq(c.bytes, sizes[0]);
  ck_assert_ptr_eq(nne_backend_cache_get(&c, key), fresh);
  /* Our own variant reference outlived the entry that held it. */
  ck_assert_uint_gt(nne_variant_bytes(v), 0);
  nne_variant_unref(v);
  nne_backend_cache_clear(&c);
}
END_TEST

START_TEST(test_builds_join_unlist_release) {
  nne_backend_cache_t c;
  nne_backend_build_t *a, *a2, *b, *a3;

  nne_backend_cache_init(&c, 1u << 30);
  a = nne_backend_build_join(&c, plans[0].key);
  ck_assert_ptr_nonnull(a);
  ck_assert_int_eq(a->refs, 1);
  ck_assert(a->listed);
  ck_assert(!atomic_load(&a->done));
  ck_assert_str_eq(a->key, plans[0].key);
  /* Same key: the same build, one more joiner. Another key: its own. */
  a2 = nne_backend_build_join(&c, plans[0].key);
  ck_assert_ptr_eq(a2, a);
  ck_assert_int_eq(a->refs, 2);
  b = nne_backend_build_join(&c, plans[1].key);
  ck_assert_ptr_ne(b, a);
  ck_assert_int_eq(b->refs, 1);
  /* Its result went into the cache: the next miss starts a new build,
   * while the joiners keep theirs. Unlisting twice is harmless. */
  nne_backend_build_unlist(&c, a);
  nne_backend_build_unlist(&c, a);
  ck_assert(!a->listed);
  a3 = nne_backend_build_join(&c, plans[0].key);
  ck_assert_ptr_ne(a3, a);
  ck_assert_int_eq(a3->refs, 1);
  ck_assert_int_eq(a->refs, 2);
  ck_assert_str_eq(a->key, plans[0].key);
  /* Releases: the last one frees (an unlisted build, here). */
  nne_backend_build_release(&c, a);
  ck_assert_int_eq(a->refs, 1);
  nne_backend_build_release(&c, a);
  /* A listed build's last release unlists it too: joining its key again
   * is a new build, and the list holds only what is left. */
  nne_backend_build_release(&c, a3);
  ck_assert_ptr_eq(c.building, b);
  ck_assert_ptr_null(b->next);
  nne_backend_build_release(&c, NULL); /* ignored */
  /* Clearing the cache only unlists builds: their joiners still hold them. */
  nne_backend_cache_clear(&c);
  ck_assert_ptr_null(c.building);
  ck_assert(!b->listed);
  ck_assert_int_eq(b->refs, 1);
  ck_assert_str_eq(b->key, plans[1].key);
  nne_backend_build_release(&c, b);
}
END_TEST

START_TEST(test_build_releases_its_variant) {
  /* A finished build holds a reference on its variant until its last
   * joiner lets go; the cache took its own when the result was put. */
  nne_backend_cache_t c;
  nne_backend_build_t *bd;
  nne_backend_t *e = NULL;
  nne_err_t err;

  nne_backend_cache_init(&c, 1u << 30);
  bd = nne_backend_build_join(&c, plans[2].key);
  bd->variant = build(2);
  bd->rc = 0;
  atomic_store(&bd->done, true);
  ck_assert_int_eq(nne_backend_cache_put(&c, bd->key, bd->variant, 1, &e, &err),
                   0);
  nne_backend_build_unlist(&c, bd);
  nne_backend_build_release(&c, bd); /* drops the build's reference */
  ck_assert_uint_gt(nne_variant_bytes(e->variant), 0);
  ck_assert_ptr_eq(nne_backend_cache_get(&c, plans[2].key), e);
  nne_backend_cache_clear(&c);
}
END_TEST

START_TEST(test_digest) {
  char a[17], b[17], c[17];
  nne_backend_key_digest(plans[0].key, a);
  nne_backend_key_digest(plans[0].key, b);
  nne_backend_key_digest(plans[1].key, c);
  ck_assert_str_eq(a, b);
  ck_assert_str_ne(a, c);
  ck_assert_uint_eq(strlen(a), 16);
  ck_assert_uint_eq(strspn(a, "0123456789abcdef"), 16);
}
END_TEST

START_TEST(test_digest_is_fnv1a) {
  /* The header promises 64-bit FNV-1a, so a client can recompute a
   * backend's digest from its key. Published vectors: "" is the offset
   * basis 14695981039346656037, "a" is 0xaf63dc4c8601ec8c. (An earlier
   * digest started from 1469598103934665603, the basis with a digit lost,
   * and matched neither.) */
  char d[17];
  nne_backend_key_digest("", d);
  ck_assert_str_eq(d, "cbf29ce484222325");
  nne_backend_key_digest("a", d);
  ck_assert_str_eq(d, "af63dc4c8601ec8c");
}
END_TEST

static Suite *backend_cache_suite(void) {
  Suite *s = suite_create("backend_cache");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_lru_by_use_not_by_age);
  tcase_add_test(tc, test_put_existing_key_returns_the_entry);
  tcase_add_test(tc, test_pinned_entries_are_never_evicted);
  tcase_add_test(tc, test_larger_than_the_cache);
  tcase_add_test(tc, test_unpin_drop_and_shared_pins);
  tcase_add_test(tc, test_clear_keeps_pinned_entries_alive);
  tcase_add_test(tc, test_builds_join_unlist_release);
  tcase_add_test(tc, test_build_releases_its_variant);
  tcase_add_test(tc, test_digest);
  tcase_add_test(tc, test_digest_is_fnv1a);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return nne_test_run_suite(backend_cache_suite());
}
