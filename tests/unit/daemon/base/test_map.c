/* test_map.c — daemon/base/map.{h,c}: the hash (FNV-1a's published
 * vectors), put/get/set, keys as (pointer, length) — prefixes and binary
 * keys —, growth through many rehashes, and that the map borrows its keys.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/map.h"
#include "unit_main.h"

START_TEST(test_hash_is_fnv1a_64) {
  /* The published FNV-1a 64-bit test vectors. */
  ck_assert_uint_eq(nne_hash_bytes("", 0), 0xcbf29ce484222325ull);
  ck_assert_uint_eq(nne_hash_bytes("a", 1), 0xaf63dc4c8601ec8cull);
  ck_assert_uint_eq(nne_hash_bytes("foobar", 6), 0x85944171f73967e8ull);
  /* Only the given bytes count. */
  ck_assert_uint_eq(nne_hash_bytes("foobarbaz", 6), 0x85944171f73967e8ull);
}
END_TEST

START_TEST(test_empty_map) {
  nne_map_t m = NNE_MAP_INIT;
  intptr_t v = 7;
  ck_assert(!nne_map_get(&m, "x", 1, &v));
  ck_assert_int_eq(v, 7);
  ck_assert(!nne_map_set(&m, "x", 1, 3));
  ck_assert_uint_eq(nne_map_count(&m), 0);
  nne_map_free(&m);
  nne_map_free(&m);
}
END_TEST

START_TEST(test_put_get_set) {
  nne_map_t m;
  intptr_t v;
  nne_map_init(&m);
  ck_assert_int_eq(nne_map_put(&m, "transformer.h.0", 15, 1), 0);
  ck_assert_int_eq(nne_map_put(&m, "layers.0", 8, 2), 0);
  ck_assert_int_eq(nne_map_put(&m, "", 0, 3), 0); /* the root path */
  /* Present: unchanged. */
  ck_assert_int_eq(nne_map_put(&m, "layers.0", 8, 99), 1);
  ck_assert(nne_map_get(&m, "layers.0", 8, &v));
  ck_assert_int_eq(v, 2);
  ck_assert(nne_map_get(&m, "", 0, &v));
  ck_assert_int_eq(v, 3);
  ck_assert(nne_map_get(&m, "layers.0", 8, NULL));
  ck_assert(nne_map_set(&m, "layers.0", 8, -1));
  ck_assert(nne_map_get(&m, "layers.0", 8, &v));
  ck_assert_int_eq(v, -1);
  ck_assert(!nne_map_get(&m, "layers.1", 8, &v));
  ck_assert_uint_eq(nne_map_count(&m), 3);
  nne_map_free(&m);
  ck_assert_uint_eq(nne_map_count(&m), 0);
}
END_TEST

START_TEST(test_prefix_lookup_without_copy) {
  nne_map_t m = NNE_MAP_INIT;
  const char *query = "layers.3.mlp.c_fc";
  intptr_t v;
  ck_assert_int_eq(nne_map_put(&m, "layers.3.mlp", 12, 42), 0);
  /* The first 12 bytes of a longer string. */
  ck_assert(nne_map_get(&m, query, 12, &v));
  ck_assert_int_eq(v, 42);
  ck_assert(!nne_map_get(&m, query, 11, &v));
  ck_assert(!nne_map_get(&m, query, strlen(query), &v));
  nne_map_free(&m);
}
END_TEST

START_TEST(test_binary_keys) {
  /* Node ids as keys: the map reads the bytes where they live. */
  uint32_t ids[64];
  nne_map_t m = NNE_MAP_INIT;
  intptr_t v;
  size_t i;
  for (i = 0; i < 64; i++) {
    ids[i] = (uint32_t)(i * 1000003u);
    ck_assert_int_eq(nne_map_put(&m, &ids[i], sizeof ids[i], (intptr_t)i), 0);
  }
  for (i = 0; i < 64; i++) {
    uint32_t q = (uint32_t)(i * 1000003u); /* another copy of the bytes */
    ck_assert(nne_map_get(&m, &q, sizeof q, &v));
    ck_assert_int_eq(v, (intptr_t)i);
  }
  {
    uint32_t q = 5;
    ck_assert(!nne_map_get(&m, &q, sizeof q, &v));
  }
  nne_map_free(&m);
}
END_TEST

START_TEST(test_many_keys_through_rehashes) {
  enum { N = 20000 };
  char(*keys)[24] = malloc(N * sizeof *keys);
  nne_map_t m = NNE_MAP_INIT;
  intptr_t v;
  size_t i;
  ck_assert_ptr_nonnull(keys);
  for (i = 0; i < N; i++) {
    snprintf(keys[i], sizeof keys[i], "blocks.%zu.hook", i);
    ck_assert_int_eq(nne_map_put(&m, keys[i], strlen(keys[i]), (intptr_t)i),
                     0);
  }
  ck_assert_uint_eq(nne_map_count(&m), N);
  /* At most half full. */
  ck_assert_uint_ge(m.cap, 2 * (size_t)N);
  for (i = 0; i < N; i++) {
    char q[24];
    snprintf(q, sizeof q, "blocks.%zu.hook", i);
    ck_assert(nne_map_get(&m, q, strlen(q), &v));
    ck_assert_int_eq(v, (intptr_t)i);
    ck_assert_int_eq(nne_map_put(&m, q, strlen(q), 0), 1);
  }
  nne_map_free(&m);
  free(keys);
}
END_TEST

START_TEST(test_pointer_values) {
  static int a, b;
  nne_map_t m = NNE_MAP_INIT;
  intptr_t v;
  nne_map_put(&m, "a", 1, (intptr_t)&a);
  nne_map_put(&m, "b", 1, (intptr_t)&b);
  ck_assert(nne_map_get(&m, "b", 1, &v));
  ck_assert_ptr_eq((int *)v, &b);
  nne_map_free(&m);
}
END_TEST

static Suite *map_suite(void) {
  Suite *s = suite_create("map");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_hash_is_fnv1a_64);
  tcase_add_test(tc, test_empty_map);
  tcase_add_test(tc, test_put_get_set);
  tcase_add_test(tc, test_prefix_lookup_without_copy);
  tcase_add_test(tc, test_binary_keys);
  tcase_add_test(tc, test_many_keys_through_rehashes);
  tcase_add_test(tc, test_pointer_values);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nne_test_run_suite(map_suite()); }
