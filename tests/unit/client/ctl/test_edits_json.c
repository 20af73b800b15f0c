/* test_edits_json.c — client/ctl/edits_json.c: EDITS-JSON files become
 * nne_client_edit_t values with exactly the bytes, ranges and operands the
 * file says (dtype conversions included, through tensors.c), and every
 * malformed file is refused with a message naming the place. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_test.h"
#include "edits_json.h"
#include "tensors.h"

static uint16_t u16(const nne_client_tensor_t *t, size_t k) {
  uint16_t v;
  memcpy(&v, (const uint8_t *)t->data + 2 * k, 2);
  return v;
}

START_TEST(test_valid_file) {
  nne_client_tensor_t npy = {
      .dtype = NNE_CLIENT_DTYPE_FLOAT32, .ndim = 1, .shape = {2}, .nbytes = 8};
  float vals[2] = {1.0f, 3.0f};
  nne_client_err_t err;
  ctl_edits_file_t ef;
  const nne_client_edit_t *e;
  char npath[128];

  npy.data = vals;
  snprintf(npath, sizeof npath, "%s/t.npy", g_dir);
  ck_assert_int_eq(nne_client_tensor_write_npy(&npy, npath, &err), 0);
  ck_assert_msg(
      ctl_edits_file_load(
          &ef, put("e.json",
                   "{\"label\": \"L\", \"edits\": ["
                   "{\"site\": \"layers.0.self_attn.pattern\", \"op\": "
                   "\"zero\", \"ranges\": [{\"dim\": 1, \"start\": 3, "
                   "\"stop\": 4}], \"last\": -1},"
                   "{\"site\": \"s2\", \"op\": \"add\", \"tensor\": "
                   "{\"dtype\": \"float16\", \"data\": [[1.0, 0.5], [-2, "
                   "65504]]}},"
                   "{\"site\": \"s3\", \"op\": \"scale\", \"scalar\": 0.5, "
                   "\"positions\": [2]},"
                   "{\"site\": \"s4\", \"op\": \"replace\", \"tensor\": "
                   "{\"npy\": \"t.npy\", \"dtype\": \"bf16\"}},"
                   "{\"site\": \"s5\", \"op\": \"SAVE\", \"name\": "
                   "\"mine\"}]}")),
      "%s", ef.j.msg);
  ck_assert_str_eq(ef.label, "L");
  ck_assert_uint_eq(ef.n, 5);

  e = &ef.edits[0];
  ck_assert_str_eq(e->site, "layers.0.self_attn.pattern");
  ck_assert_int_eq(e->op, NNE_CLIENT_EDIT_ZERO);
  ck_assert_ptr_null(e->tensor);
  ck_assert_uint_eq(e->n_ranges, 2);
  ck_assert(e->ranges[0].dim == 1 && e->ranges[0].start == 3 &&
            e->ranges[0].stop == 4);
  /* "last": -1 is the last index of the last dim: [-1, 0). */
  ck_assert(e->ranges[1].dim == -1 && e->ranges[1].start == -1 &&
            e->ranges[1].stop == 0);

  e = &ef.edits[1];
  ck_assert_int_eq(e->op, NNE_CLIENT_EDIT_ADD);
  ck_assert_ptr_nonnull(e->tensor);
  ck_assert_int_eq(e->tensor->dtype, NNE_CLIENT_DTYPE_FLOAT16);
  ck_assert(e->tensor->ndim == 2 && e->tensor->shape[0] == 2 &&
            e->tensor->shape[1] == 2 && e->tensor->nbytes == 8);
  ck_assert_uint_eq(u16(e->tensor, 0), 0x3c00); /* 1.0 */
  ck_assert_uint_eq(u16(e->tensor, 1), 0x3800); /* 0.5 */
  ck_assert_uint_eq(u16(e->tensor, 2), 0xc000); /* -2 */
  ck_assert_uint_eq(u16(e->tensor, 3), 0x7bff); /* 65504, the largest */

  e = &ef.edits[2];
  ck_assert(e->use_scalar && e->scalar == 0.5 && e->tensor == NULL);
  ck_assert(e->n_ranges == 1 && e->ranges[0].dim == 1 &&
            e->ranges[0].start == 2 && e->ranges[0].stop == 0);

  /* The .npy file, next to the JSON file, converted to bfloat16. */
  e = &ef.edits[3];
  ck_assert_int_eq(e->tensor->dtype, NNE_CLIENT_DTYPE_BFLOAT16);
  ck_assert(e->tensor->ndim == 1 && e->tensor->shape[0] == 2);
  ck_assert_uint_eq(u16(e->tensor, 0), 0x3f80);
  ck_assert_uint_eq(u16(e->tensor, 1), 0x4040);

  e = &ef.edits[4];
  ck_assert_int_eq(e->op, NNE_CLIENT_EDIT_SAVE);
  ck_assert_str_eq(e->name, "mine");
  ck_assert_uint_eq(e->n_ranges, 0);
  ck_assert_ptr_null(e->ranges);
  ctl_edits_file_free(&ef);
}
END_TEST

/* Each file is refused with a message containing the needle. */
START_TEST(test_refused) {
  static const struct {
    const char *json, *needle;
  } cases[] = {
      {"{\"edits\": [", "line 1"},
      {"[1]", "expected an object"},
      {"{\"edits\": [], \"edits\": []}", "duplicate"},
      {"{\"edits\": []}", "edits: the array is empty"},
      {"{\"edits\": [{\"site\": \"a\", \"op\": \"add\", \"tensor\": "
       "{\"dtype\": \"int8\", \"data\": [1, 300]}}]}",
       "edits[0].tensor.data: value 1 as int8: out of the dtype's range"},
      {"{\"edits\": [{\"site\": \"a\", \"op\": \"add\", \"tensor\": "
       "{\"dtype\": \"uint8\", \"data\": [-1]}}]}",
       "value 0 as uint8: out of the dtype's range"},
      {"{\"edits\": [{\"site\": \"a\", \"op\": \"add\", \"tensor\": "
       "{\"dtype\": \"bool\", \"data\": [true, 2]}}]}",
       "value 1 as bool: out of the dtype's range"},
      {"{\"edits\": [{\"site\": \"a\", \"op\": \"add\", \"tensor\": "
       "{\"data\": [[[[[[[[[1]]]]]]]]]}}]}",
       "nested more than 8 deep"},
      {"{\"edits\": [{\"site\": \"a\", \"op\": \"add\", \"tensor\": "
       "{\"data\": [[1], 2]}}]}",
       "edits[0].tensor: ragged nesting"},
      {"{\"edits\": [{\"site\": \"a\", \"op\": \"add\", \"tensor\": "
       "{\"shape\": [1048576, 1048576, 2], \"data\": [1]}}]}",
       "edits[0].tensor.shape: too many elements"},
      {"{\"edits\": [{\"site\": \"a\", \"op\": \"zero\", \"rows\": [1, 2], "
       "\"ranges\": [[0, 1]]}]}",
       "edits[0].rows: dim 0 already has a range"},
      {"{\"edits\": [{\"site\": \"a\", \"op\": \"zero\", \"ranges\": "
       "[[4294967296, 0, 1]]}]}",
       "edits[0].ranges[0].dim: 4294967296 is out of range"},
      {"{\"edits\": [{\"site\": \"a\", \"op\": \"zero\", \"last\": "
       "9223372036854775807}]}",
       "edits[0].last: index 9223372036854775807 is too large"},
      {"{\"edits\": [{\"site\": \"a\", \"op\": \"zero\", \"ranges\": {}}]}",
       "edits[0].ranges: expected an array"},
      {"{\"edits\": [{\"site\": \"a\", \"op\": \"add\", \"tensor\": "
       "{\"npy\": \"missing.npy\"}}]}",
       "edits[0].tensor.npy: read_npy: "},
      {"{\"edits\": [{\"site\": \"a\", \"op\": \"save\", \"name\": \"\"}]}",
       "edits[0].name: expected a string of 1 to 255 bytes"},
      {"{\"edits\": [{\"site\": \"a\", \"op\": \"mul\"}]}",
       "edits[0].op: unknown edit op 'mul'"},
  };
  size_t k;
  for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    ctl_edits_file_t ef;
    bool ok = ctl_edits_file_load(&ef, put("bad.json", cases[k].json));
    ck_assert_msg(!ok, "case %zu was accepted", k);
    ck_assert_msg(strstr(ef.j.msg, cases[k].needle) != NULL,
                  "case %zu: '%s' does not name '%s'", k, ef.j.msg,
                  cases[k].needle);
    ctl_edits_file_free(&ef);
  }
}
END_TEST

/* The shared vocabulary on its own: unknown keys list the known ones. */
START_TEST(test_vocabulary) {
  static const char *const keys[] = {"a", "b", NULL};
  ctl_json_t j;
  json_error_t jerr;
  json_t *obj = json_loads("{\"a\": 1, \"c\": 2}", 0, &jerr);
  const char *s;
  memset(&j, 0, sizeof j);
  ck_assert(!ctl_json_keys(&j, "x", obj, keys));
  ck_assert_str_eq(j.msg, "x: unknown key 'c' (known: a, b)");
  ck_assert(!ctl_json_str(&j, "y", json_object_get(obj, "a"), 8, &s));
  ck_assert_str_eq(j.msg, "y: expected a string of 1 to 7 bytes");
  json_decref(obj);
}
END_TEST

/* float16 and bfloat16 round to nearest even, both ways exact where they
 * can be. */
START_TEST(test_conversions) {
  float f;
  ck_assert_uint_eq(ctl_float_to_half(1.0f), 0x3c00);
  ck_assert_uint_eq(ctl_float_to_half(65520.0f), 0x7c00); /* to infinity */
  ck_assert_uint_eq(ctl_float_to_half(-0.0f), 0x8000);
  ck_assert_uint_eq(ctl_float_to_half(ldexpf(1.0f, -24)), 0x0001);
  ck_assert_uint_eq(ctl_float_to_half(ldexpf(1.0f, -26)), 0x0000);
  /* 1 + 2^-11 is halfway between 1 and 1 + 2^-10: to the even, 1. */
  ck_assert_uint_eq(ctl_float_to_half(1.0f + ldexpf(1.0f, -11)), 0x3c00);
  ck_assert_uint_eq(ctl_float_to_half(1.0f + 3 * ldexpf(1.0f, -11)), 0x3c02);
  ck_assert_uint_eq(ctl_float_to_half(NAN) & 0x7c00, 0x7c00);
  ck_assert_uint_ne(ctl_float_to_half(NAN) & 0x03ff, 0);
  ck_assert(ctl_half_to_float(0x0001) == ldexpf(1.0f, -24));
  ck_assert(ctl_half_to_float(0x7bff) == 65504.0f);
  ck_assert(isinf(ctl_half_to_float(0xfc00)) && ctl_half_to_float(0xfc00) < 0);
  ck_assert_uint_eq(ctl_float_to_bf16(1.0f), 0x3f80);
  ck_assert_uint_eq(ctl_float_to_bf16(1.0f + ldexpf(1.0f, -8)), 0x3f80);
  ck_assert_uint_eq(ctl_float_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)), 0x3f82);
  f = ctl_bf16_to_float(0x4040);
  ck_assert(f == 3.0f);
  ck_assert(isnan(ctl_bf16_to_float(ctl_float_to_bf16(NAN))));
}
END_TEST

static Suite *edits_json_suite(void) {
  Suite *s = suite_create("ctl_edits_json");
  TCase *tc = tcase_create("edits_json");
  tcase_add_checked_fixture(tc, tmpdir_setup, tmpdir_teardown);
  tcase_add_test(tc, test_valid_file);
  tcase_add_test(tc, test_refused);
  tcase_add_test(tc, test_vocabulary);
  tcase_add_test(tc, test_conversions);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(edits_json_suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
