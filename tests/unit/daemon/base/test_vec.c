/* test_vec.c — daemon/base/vec.{h,c}: doubling from the minimum capacity,
 * growing straight to a large need, the bound of nne_vec_grow_max, and that
 * a size that overflows fails without touching the array.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/vec.h"
#include "unit_main.h"

typedef struct item {
  int64_t a, b;
} item_t;

START_TEST(test_grow_by_doubling) {
  item_t *v = NULL;
  size_t n = 0, cap = 0, i;
  for (i = 0; i < 1000; i++) {
    ck_assert_int_eq(NNE_VEC_GROW(&v, &cap, n + 1), 0);
    ck_assert_uint_ge(cap, n + 1);
    v[n].a = (int64_t)i;
    v[n].b = -(int64_t)i;
    n++;
  }
  ck_assert_uint_eq(cap, 1024); /* 8, 16, ..., 1024 */
  for (i = 0; i < n; i++)
    ck_assert_int_eq(v[i].a, (int64_t)i);
  free(v);
}
END_TEST

START_TEST(test_no_realloc_within_capacity) {
  int *v = NULL, *before;
  size_t cap = 0;
  ck_assert_int_eq(NNE_VEC_GROW(&v, &cap, 1), 0);
  ck_assert_uint_eq(cap, NNE_VEC_MIN_CAP);
  before = v;
  ck_assert_int_eq(NNE_VEC_GROW(&v, &cap, NNE_VEC_MIN_CAP), 0);
  ck_assert_ptr_eq(v, before);
  ck_assert_int_eq(NNE_VEC_GROW(&v, &cap, 0), 0);
  free(v);
}
END_TEST

START_TEST(test_large_need_at_once) {
  char *v = NULL;
  size_t cap = 0;
  ck_assert_int_eq(nne_vec_grow(&v, &cap, 100000, 1), 0);
  ck_assert_uint_ge(cap, 100000);
  ck_assert_uint_eq(cap, 131072);
  memset(v, 'x', cap);
  free(v);
}
END_TEST

START_TEST(test_bound) {
  int *v = NULL;
  size_t cap = 0;
  ck_assert_int_eq(nne_vec_grow_max(&v, &cap, 5, sizeof *v, 10), 0);
  ck_assert_uint_eq(cap, 8);
  /* Doubling would give 16: the bound caps it. */
  ck_assert_int_eq(nne_vec_grow_max(&v, &cap, 9, sizeof *v, 10), 0);
  ck_assert_uint_eq(cap, 10);
  ck_assert_int_eq(nne_vec_grow_max(&v, &cap, 10, sizeof *v, 10), 0);
  ck_assert_int_eq(nne_vec_grow_max(&v, &cap, 11, sizeof *v, 10),
                   NNE_ERESOURCE);
  ck_assert_uint_eq(cap, 10);
  /* A bound below the minimum capacity. */
  {
    int *w = NULL;
    size_t wcap = 0;
    ck_assert_int_eq(nne_vec_grow_max(&w, &wcap, 1, sizeof *w, 3), 0);
    ck_assert_uint_eq(wcap, 3);
    free(w);
  }
  free(v);
}
END_TEST

START_TEST(test_overflow_leaves_array) {
  int64_t *v = NULL, *before;
  size_t cap = 0;
  ck_assert_int_eq(NNE_VEC_GROW(&v, &cap, 4), 0);
  before = v;
  v[0] = 123;
  ck_assert_int_eq(NNE_VEC_GROW(&v, &cap, SIZE_MAX / 4), NNE_ENOMEM);
  ck_assert_int_eq(NNE_VEC_GROW(&v, &cap, SIZE_MAX), NNE_ENOMEM);
  ck_assert_ptr_eq(v, before);
  ck_assert_uint_eq(cap, NNE_VEC_MIN_CAP);
  ck_assert_int_eq(v[0], 123);
  free(v);
}
END_TEST

START_TEST(test_array_of_pointers) {
  /* T ** where T is itself a pointer type. */
  char **v = NULL;
  size_t n = 0, cap = 0, i;
  static char s[] = "x";
  for (i = 0; i < 20; i++) {
    ck_assert_int_eq(NNE_VEC_GROW(&v, &cap, n + 1), 0);
    v[n++] = s;
  }
  ck_assert_ptr_eq(v[19], s);
  free(v);
}
END_TEST

static Suite *vec_suite(void) {
  Suite *s = suite_create("vec");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_grow_by_doubling);
  tcase_add_test(tc, test_no_realloc_within_capacity);
  tcase_add_test(tc, test_large_need_at_once);
  tcase_add_test(tc, test_bound);
  tcase_add_test(tc, test_overflow_leaves_array);
  tcase_add_test(tc, test_array_of_pointers);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nne_test_run_suite(vec_suite()); }
