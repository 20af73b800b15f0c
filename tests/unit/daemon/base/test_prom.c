/* test_prom.c — daemon/base/prom.{h,c}: the exposition text byte for byte
 * (HELP/TYPE, labels with escaping, integer and fractional values, NaN and
 * infinities), cumulative histogram buckets with +Inf == count, values on a
 * bound going into that bound's bucket, and the document limit.
 */
#include <check.h>
#include <math.h>
#include <string.h>

#include "base/prom.h"
#include "unit_main.h"

START_TEST(test_family_and_samples) {
  nne_prom_buf_t b;
  nne_prom_buf_init(&b, 1 << 20);
  nne_prom_family(&b, "x_total", "counter", "Things\\done\nhere.");
  nne_prom_sample(&b, "x_total", NULL, 3);
  nne_prom_sample(&b, "x_total",
                  (const char *[]){"model", "a\"b\\c\nd", "code", "OK", NULL},
                  1e15);
  nne_prom_sample(&b, "x_total", (const char *[]){NULL}, 0.25);
  nne_prom_sample(&b, "x_total", NULL, NAN);
  nne_prom_sample(&b, "x_total", NULL, -INFINITY);
  ck_assert(!b.failed);
  ck_assert_str_eq(b.data,
                   "# HELP x_total Things\\\\done\\nhere.\n"
                   "# TYPE x_total counter\n"
                   "x_total 3\n"
                   "x_total{model=\"a\\\"b\\\\c\\nd\",code=\"OK\"} "
                   "1000000000000000\n"
                   "x_total 0.25\n"
                   "x_total NaN\n"
                   "x_total -Inf\n");
  ck_assert_uint_eq(b.len, strlen(b.data));
  nne_prom_buf_free(&b);
}
END_TEST

START_TEST(test_histogram) {
  static const double bounds[] = {0.1, 1, 10};
  nne_prom_hist_t h;
  nne_prom_buf_t b;
  nne_prom_hist_init(&h, bounds, 3);
  nne_prom_hist_observe(&h, 0.05);
  nne_prom_hist_observe(&h, 0.1); /* on a bound: that bound's bucket */
  nne_prom_hist_observe(&h, 5);
  nne_prom_hist_observe(&h, 50);
  nne_prom_buf_init(&b, 1 << 20);
  nne_prom_hist_write(&b, "lat_seconds", (const char *[]){"m", "F", NULL},
                      &h);
  ck_assert_str_eq(b.data, "lat_seconds_bucket{m=\"F\",le=\"0.1\"} 2\n"
                           "lat_seconds_bucket{m=\"F\",le=\"1\"} 2\n"
                           "lat_seconds_bucket{m=\"F\",le=\"10\"} 3\n"
                           "lat_seconds_bucket{m=\"F\",le=\"+Inf\"} 4\n"
                           "lat_seconds_sum{m=\"F\"} 55.15\n"
                           "lat_seconds_count{m=\"F\"} 4\n");
  nne_prom_buf_free(&b);
  /* No labels: le alone. */
  nne_prom_buf_init(&b, 1 << 20);
  nne_prom_hist_write(&b, "h", NULL, &h);
  ck_assert_ptr_nonnull(strstr(b.data, "h_bucket{le=\"+Inf\"} 4\n"));
  nne_prom_buf_free(&b);
}
END_TEST

START_TEST(test_bucket_cap) {
  static double many[40];
  nne_prom_hist_t h;
  int i;
  for (i = 0; i < 40; i++)
    many[i] = i + 1;
  nne_prom_hist_init(&h, many, 40);
  ck_assert_uint_eq(h.n_bounds, NNE_PROM_MAX_BUCKETS);
  nne_prom_hist_observe(&h, 1000);
  ck_assert_uint_eq(h.counts[NNE_PROM_MAX_BUCKETS], 1);
}
END_TEST

START_TEST(test_limit) {
  nne_prom_buf_t b;
  int i;
  nne_prom_buf_init(&b, 100);
  for (i = 0; i < 20; i++)
    nne_prom_sample(&b, "some_metric_name", NULL, i);
  ck_assert(b.failed);
  ck_assert_uint_le(b.len, 100);
  nne_prom_buf_free(&b);
}
END_TEST

static Suite *prom_suite(void) {
  Suite *s = suite_create("prom");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_family_and_samples);
  tcase_add_test(tc, test_histogram);
  tcase_add_test(tc, test_bucket_cap);
  tcase_add_test(tc, test_limit);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nne_test_run_suite(prom_suite()); }
