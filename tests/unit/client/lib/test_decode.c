/* test_decode.c — client/lib/decode.c: the one machinery every reply
 * decode goes through (its arrays grow through daemon/base/vec, tested in
 * tests/unit/daemon/base/test_vec.c). Messages are encoded
 * here with nanopb and decoded back through nne__rep_dec and
 * nne__strlist_dec into items whose strings nne__fix turns into pointers;
 * bounds fail with the status and the message the library reports. */
#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "nnedit/v1/edits.pb.h"
#include "nnedit/v1/models.pb.h"

START_TEST(test_method_name) {
  ck_assert_str_eq(nne__method_name("/nnedit.v1.Models/List"), "Models/List");
  ck_assert_str_eq(nne__method_name("/grpc.health.v1.Health/Check"),
                   "Health/Check");
  ck_assert_str_eq(nne__method_name("/Svc/Do"), "Svc/Do");
}
END_TEST

/* ---- strings, offsets and the layout fix-up ------------------------------ */

typedef struct item {
  const char *a;
  int x;
  const char *b;
  const char *const *list;
  size_t n_list;
} item_t;

static const size_t item_strs[] = {offsetof(item_t, a), offsetof(item_t, b)};
static const nne__list_field_t item_lists[] = {
    {offsetof(item_t, list), offsetof(item_t, n_list)}};
static const nne__layout_t item_layout = {item_strs, 2, item_lists, 1};

START_TEST(test_strs_fix) {
  nne__strs_t block = {0};
  nne__names_t names = {.max = 16};
  nne__dec_t dec = {0};
  nne__strlist_t l = {
      .block = &block, .max = 4, .max_len = 8, .noun = "names", .dec = &dec};
  item_t items[2];

  memset(items, 0, sizeof items);
  /* A block that moves while it grows: strings are offsets until fixed. */
  ck_assert(nne__strs_add(&block, "alpha", &items[0].a));
  ck_assert(nne__strs_add(&block, "", &items[0].b));
  /* Two names of item 0 as nne__strlist_dec gathers them. */
  l.v = calloc(2, sizeof *l.v);
  l.cap = 2;
  ck_assert(nne__strs_add(&block, "x", &l.v[l.n++]));
  ck_assert(nne__strs_add(&block, "yz", &l.v[l.n++]));
  ck_assert(nne__strlist_move(&l, &names, &items[0].list, &items[0].n_list));
  ck_assert_uint_eq(l.n, 0);
  ck_assert(nne__strs_add(&block, "beta", &items[1].a));
  ck_assert(nne__strs_add(&block, "gamma", &items[1].b));
  ck_assert(nne__strlist_move(&l, &names, &items[1].list, &items[1].n_list));
  nne__fix_names(names.v, names.n, block.p);
  nne__fix(items, 2, sizeof *items, &item_layout, block.p, names.v);
  ck_assert_str_eq(items[0].a, "alpha");
  ck_assert_str_eq(items[0].b, "");
  ck_assert_uint_eq(items[0].n_list, 2);
  ck_assert_str_eq(items[0].list[0], "x");
  ck_assert_str_eq(items[0].list[1], "yz");
  ck_assert_str_eq(items[1].a, "beta");
  ck_assert_str_eq(items[1].b, "gamma");
  ck_assert_uint_eq(items[1].n_list, 0);
  ck_assert_ptr_null(items[1].list); /* an empty list is NULL */
  nne__strlist_free(&l);
  free(names.v);
  free(block.p);
}
END_TEST

/* ---- repeated messages --------------------------------------------------- */

static bool fill_set(void *ctx, size_t i, void *msg) {
  nnedit_v1_EditSetInfo *m = msg;
  (void)ctx;
  snprintf(m->id, sizeof m->id, "es-%zu", i);
  m->edit_count = (uint32_t)(10 + i);
  return true;
}

/* A ListEditSetsResponse of n sets, encoded into buf; its length. */
static size_t encode_sets(uint8_t *buf, size_t cap, size_t n) {
  nnedit_v1_ListEditSetsResponse resp =
      nnedit_v1_ListEditSetsResponse_init_zero;
  nne_pb_list_enc_t list = {n, fill_set, NULL, sizeof(nnedit_v1_EditSetInfo)};
  pb_ostream_t os = pb_ostream_from_buffer(buf, cap);
  NNE_PB_ENC(resp.edit_sets, nne_pb_list_enc, &list);
  ck_assert_msg(pb_encode(&os, nnedit_v1_ListEditSetsResponse_fields, &resp),
                "%s", PB_GET_ERROR(&os));
  return os.bytes_written;
}

typedef struct set_item {
  char id[64];
  uint32_t count;
} set_item_t;

static bool take_set(nne__rep_t *r, const void *msg, void *item, size_t i) {
  const nnedit_v1_EditSetInfo *m = msg;
  set_item_t *s = item;
  (void)r;
  (void)i;
  snprintf(s->id, sizeof s->id, "%s", m->id);
  s->count = m->edit_count;
  return true;
}

/* Decodes buf[len] with the sets field through a rep of `max` items. */
static bool decode_sets(const uint8_t *buf, size_t len, size_t max,
                        const char *bound, set_item_t **items, size_t *n,
                        nne__dec_t *dec) {
  nnedit_v1_ListEditSetsResponse resp =
      nnedit_v1_ListEditSetsResponse_init_zero;
  nnedit_v1_EditSetInfo msg;
  nne__rep_t rep = {.items = (void **)items,
                    .n = n,
                    .item_size = sizeof **items,
                    .max = max,
                    .over_code = bound ? NNE_CLIENT_INTERNAL
                                       : NNE_CLIENT_RESOURCE_EXHAUSTED,
                    .what = "edit_sets",
                    .noun = "edit sets",
                    .bound = bound,
                    .fields = nnedit_v1_EditSetInfo_fields,
                    .msg = &msg,
                    .msg_size = sizeof msg,
                    .take = take_set,
                    .dec = dec};
  pb_istream_t is = pb_istream_from_buffer(buf, len);
  *items = NULL;
  *n = 0;
  memset(dec, 0, sizeof *dec);
  NNE_PB_DEC(resp.edit_sets, nne__rep_dec, &rep);
  return pb_decode(&is, nnedit_v1_ListEditSetsResponse_fields, &resp);
}

START_TEST(test_rep) {
  uint8_t buf[4096];
  size_t len = encode_sets(buf, sizeof buf, 3), n;
  set_item_t *items;
  nne__dec_t dec;

  ck_assert(decode_sets(buf, len, 5, NULL, &items, &n, &dec));
  ck_assert_uint_eq(n, 3);
  ck_assert_str_eq(items[2].id, "es-2");
  ck_assert_uint_eq(items[1].count, 11);
  free(items);

  /* Over a client bound: RESOURCE_EXHAUSTED; the items decoded so far are
   * counted, so the result's _free finds them. */
  ck_assert(!decode_sets(buf, len, 2, NULL, &items, &n, &dec));
  ck_assert_int_eq(dec.code, NNE_CLIENT_RESOURCE_EXHAUSTED);
  ck_assert_str_eq(dec.msg, "edit_sets: more than 2 edit sets");
  ck_assert_uint_eq(n, 2);
  free(items);

  /* Over a bound of the request: the protocol broken, INTERNAL. */
  ck_assert(!decode_sets(buf, len, 1, "the request's", &items, &n, &dec));
  ck_assert_int_eq(dec.code, NNE_CLIENT_INTERNAL);
  ck_assert_str_eq(dec.msg, "edit_sets: more edit sets than the request's 1");
  free(items);

  /* A message cut short is nanopb's to report (no callback refused). */
  ck_assert(!decode_sets(buf, len - 2, 5, NULL, &items, &n, &dec));
  ck_assert_int_eq(dec.code, 0);
  free(items);

  /* An element that does not decode is named by its index: here
   * edit_sets[1] has an id of 70 bytes, over its bound of 63. */
  len = 0;
  buf[len++] = 0x0a; /* edit_sets, length-delimited */
  buf[len++] = 2;
  buf[len++] = 0x20; /* edit_count = 1 */
  buf[len++] = 1;
  buf[len++] = 0x0a;
  buf[len++] = 72;
  buf[len++] = 0x0a; /* id, 70 bytes */
  buf[len++] = 70;
  memset(buf + len, 'x', 70);
  len += 70;
  ck_assert(!decode_sets(buf, len, 5, NULL, &items, &n, &dec));
  ck_assert_int_eq(dec.code, NNE_CLIENT_INTERNAL);
  ck_assert_msg(strncmp(dec.msg, "edit_sets[1]: ", 14) == 0, "%s", dec.msg);
  ck_assert_uint_eq(n, 2);
  ck_assert_uint_eq(items[0].count, 1);
  free(items);
}
END_TEST

/* ---- repeated strings ---------------------------------------------------- */

/* A ModelInfo with warnings w[0..n), through nne__strlist_dec and packed. */
static bool decode_warnings(const char *const *w, size_t n, size_t max,
                            size_t max_len, const char *const **out,
                            size_t *n_out, nne__dec_t *dec) {
  nnedit_v1_ModelInfo m = nnedit_v1_ModelInfo_init_zero;
  nne_pb_str_list_enc_t enc = {w, n};
  nne__strs_t block = {0};
  nne__strlist_t l = {.block = &block,
                      .max = max,
                      .max_len = max_len,
                      .noun = "warnings",
                      .dec = dec};
  uint8_t buf[4096];
  pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof buf);
  pb_istream_t is;
  bool ok;

  NNE_PB_ENC(m.warnings, nne_pb_str_list_enc, &enc);
  ck_assert(pb_encode(&os, nnedit_v1_ModelInfo_fields, &m));
  memset(&m, 0, sizeof m);
  memset(dec, 0, sizeof *dec);
  snprintf(l.what, sizeof l.what, "model.warnings");
  NNE_PB_DEC(m.warnings, nne__strlist_dec, &l);
  is = pb_istream_from_buffer(buf, os.bytes_written);
  ok = pb_decode(&is, nnedit_v1_ModelInfo_fields, &m);
  *out = NULL;
  *n_out = 0;
  if (ok)
    ck_assert(nne__strlist_pack(&l, out, n_out));
  nne__strlist_free(&l);
  free(block.p);
  return ok;
}

START_TEST(test_strlist) {
  const char *w[] = {"w1", "w22", ""};
  const char *const *out;
  nne__dec_t dec;
  size_t n;

  ck_assert(decode_warnings(w, 3, 8, 16, &out, &n, &dec));
  ck_assert_uint_eq(n, 3);
  ck_assert_str_eq(out[0], "w1");
  ck_assert_str_eq(out[1], "w22");
  ck_assert_str_eq(out[2], "");
  free((void *)out); /* one allocation: the pointers, then the strings */

  ck_assert(decode_warnings(w, 0, 8, 16, &out, &n, &dec));
  ck_assert(n == 0 && out == NULL);

  ck_assert(!decode_warnings(w, 3, 2, 16, &out, &n, &dec));
  ck_assert_int_eq(dec.code, NNE_CLIENT_RESOURCE_EXHAUSTED);
  ck_assert_str_eq(dec.msg, "model.warnings: more than 2 warnings");

  ck_assert(!decode_warnings(w, 3, 8, 2, &out, &n, &dec));
  ck_assert_int_eq(dec.code, NNE_CLIENT_INTERNAL);
  ck_assert_str_eq(dec.msg, "model.warnings: a string of 3 bytes, over the "
                            "bound of 2");
}
END_TEST

START_TEST(test_dec_str_and_first_reason) {
  static const uint8_t nul[] = {'a', 'b', 0, 'c'}, ok[] = {'h', 'i'};
  nne__dec_t dec = {0};
  pb_istream_t is;
  char buf[8];

  is = pb_istream_from_buffer(ok, sizeof ok);
  ck_assert(nne__dec_str(&is, buf, sizeof buf, &dec, "f"));
  ck_assert_str_eq(buf, "hi");
  is = pb_istream_from_buffer(nul, sizeof nul);
  ck_assert(!nne__dec_str(&is, buf, sizeof buf, &dec, "f"));
  ck_assert_str_eq(dec.msg, "f: a string with a NUL");
  /* The first refusal is the reason; later ones are its consequences. */
  is = pb_istream_from_buffer(ok, sizeof ok);
  ck_assert(!nne__dec_str(&is, buf, 2, &dec, "g"));
  ck_assert_str_eq(dec.msg, "f: a string with a NUL");
  memset(&dec, 0, sizeof dec);
  is = pb_istream_from_buffer(ok, sizeof ok);
  ck_assert(!nne__dec_str(&is, buf, 2, &dec, "g"));
  ck_assert_str_eq(dec.msg, "g: a string of 2 bytes, over the bound of 1");
}
END_TEST

static Suite *decode_suite(void) {
  Suite *s = suite_create("client_decode");
  TCase *tc = tcase_create("decode");
  tcase_add_test(tc, test_method_name);
  tcase_add_test(tc, test_strs_fix);
  tcase_add_test(tc, test_rep);
  tcase_add_test(tc, test_strlist);
  tcase_add_test(tc, test_dec_str_and_first_reason);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(decode_suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
