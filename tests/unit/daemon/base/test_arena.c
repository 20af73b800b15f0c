/* test_arena.c — daemon/base/arena.{h,c}: alignment, zeroing, the string
 * helpers, big one-off allocations that do not waste the current block, and
 * that one free gives everything back (ASan's leak check says so).
 */
#include <check.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "unit_main.h"

START_TEST(test_zero_arena_is_empty_and_usable) {
  nne_arena_t a = NNE_ARENA_INIT;
  char *p = nne_arena_alloc(&a, 10);
  ck_assert_ptr_nonnull(p);
  memset(p, 'x', 10);
  nne_arena_free(&a);
  ck_assert_ptr_null(a.head);
  /* Usable again after the free. */
  ck_assert_ptr_nonnull(nne_arena_alloc(&a, 10));
  nne_arena_free(&a);
  nne_arena_free(&a); /* freeing an empty arena is fine */
}
END_TEST

START_TEST(test_alignment_and_distinct_pointers) {
  nne_arena_t a;
  void *prev = NULL;
  size_t i;
  nne_arena_init(&a, 256);
  for (i = 0; i < 200; i++) {
    void *p = nne_arena_alloc(&a, i % 37);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % alignof(max_align_t), 0);
    ck_assert_ptr_ne(p, prev); /* even for n == 0 */
    prev = p;
  }
  nne_arena_free(&a);
}
END_TEST

START_TEST(test_zalloc_zeroes_reused_space) {
  nne_arena_t a;
  unsigned char *p;
  size_t i;
  nne_arena_init(&a, 1024);
  p = nne_arena_alloc(&a, 100);
  memset(p, 0xff, 100);
  p = nne_arena_zalloc(&a, 300);
  ck_assert_ptr_nonnull(p);
  for (i = 0; i < 300; i++)
    ck_assert_uint_eq(p[i], 0);
  nne_arena_free(&a);
}
END_TEST

START_TEST(test_big_one_off_keeps_current_block) {
  nne_arena_t a;
  char *small1, *big, *small2;
  nne_arena_init(&a, 1024);
  small1 = nne_arena_alloc(&a, 16);
  big = nne_arena_alloc(&a, 100000);
  small2 = nne_arena_alloc(&a, 16);
  ck_assert_ptr_nonnull(big);
  memset(big, 1, 100000);
  /* The small allocations come from the same block, one after the other:
   * the big one went into a block of its own behind it. */
  ck_assert_ptr_eq(small2, small1 + 16);
  nne_arena_free(&a);
}
END_TEST

START_TEST(test_strings) {
  nne_arena_t a = NNE_ARENA_INIT;
  char *s;
  const char raw[5] = {'a', 'b', 'c', 'd', 'e'}; /* not terminated */

  s = nne_arena_strdup(&a, "hello");
  ck_assert_str_eq(s, "hello");
  s = nne_arena_strdup(&a, NULL);
  ck_assert_str_eq(s, "");
  s = nne_arena_strndup(&a, raw, 3);
  ck_assert_str_eq(s, "abc");
  s = nne_arena_strndup(&a, raw, 0);
  ck_assert_str_eq(s, "");
  s = nne_arena_printf(&a, "layers.%d.%s", 12, "mlp");
  ck_assert_str_eq(s, "layers.12.mlp");
  /* Longer than a whole block. */
  {
    char *big = malloc(50001);
    memset(big, 'q', 50000);
    big[50000] = '\0';
    s = nne_arena_printf(&a, "%s!", big);
    ck_assert_uint_eq(strlen(s), 50001);
    ck_assert_int_eq(s[50000], '!');
    free(big);
  }
  nne_arena_free(&a);
}
END_TEST

START_TEST(test_memdup) {
  nne_arena_t a = NNE_ARENA_INIT;
  int64_t v[4] = {1, -2, 3, INT64_MAX}, *c;
  c = nne_arena_memdup(&a, v, sizeof v);
  ck_assert_ptr_nonnull(c);
  ck_assert_ptr_ne(c, v);
  ck_assert(memcmp(c, v, sizeof v) == 0);
  ck_assert_ptr_nonnull(nne_arena_memdup(&a, NULL, 0));
  nne_arena_free(&a);
}
END_TEST

START_TEST(test_overflowing_sizes_fail_cleanly) {
  nne_arena_t a = NNE_ARENA_INIT;
  ck_assert_ptr_null(nne_arena_alloc(&a, SIZE_MAX));
  ck_assert_ptr_null(nne_arena_alloc(&a, SIZE_MAX - 8));
  ck_assert_ptr_null(nne_arena_strndup(&a, "x", SIZE_MAX));
  /* Still usable. */
  ck_assert_ptr_nonnull(nne_arena_strdup(&a, "ok"));
  nne_arena_free(&a);
}
END_TEST

START_TEST(test_many_blocks_freed_in_one_call) {
  nne_arena_t a;
  size_t i;
  nne_arena_init(&a, 64);
  for (i = 0; i < 10000; i++)
    ck_assert_ptr_nonnull(nne_arena_printf(&a, "name.%zu", i));
  nne_arena_free(&a); /* the leak checker sees nothing left */
  ck_assert_ptr_null(a.head);
  ck_assert_uint_eq(a.block_size, 64);
}
END_TEST

static Suite *arena_suite(void) {
  Suite *s = suite_create("arena");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_zero_arena_is_empty_and_usable);
  tcase_add_test(tc, test_alignment_and_distinct_pointers);
  tcase_add_test(tc, test_zalloc_zeroes_reused_space);
  tcase_add_test(tc, test_big_one_off_keeps_current_block);
  tcase_add_test(tc, test_strings);
  tcase_add_test(tc, test_memdup);
  tcase_add_test(tc, test_overflowing_sizes_fail_cleanly);
  tcase_add_test(tc, test_many_blocks_freed_in_one_call);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nne_test_run_suite(arena_suite()); }
