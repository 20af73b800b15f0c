/* test_forward.c — client/lib/forward.c: the top-k rows of a result
 * (nne__topk), with each token's text. The bytes are written here by hand,
 * field by field, so that the decoder meets what any daemon may send:
 * texts with a NUL or half a UTF-8 sequence, scores without text, a text
 * over the client's bound. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "lib_test.h"

/* A TokenScore: id, logit, prob and, when text is not NULL, text[0..n). */
static void put_score(buf_t *row, int64_t id, float logit, const char *text,
                      size_t n) {
  buf_t s = {.n = 0};
  put_uint(&s, 1, (uint64_t)id);
  put_float(&s, 2, logit);
  if (text != NULL)
    put_len(&s, 4, text, n);
  put_len(row, 2, s.b, s.n);
}

/* Decodes result (a ForwardResult) into rows through nne__topk. */
static int decode(const buf_t *result, size_t max_rows, size_t max_top,
                  nne_client_row_topk_t **rows, size_t *n_rows,
                  nne__dec_t *dec) {
  nnedit_v1_ForwardResult m = nnedit_v1_ForwardResult_init_zero;
  nne__topk_t *t = calloc(1, sizeof *t);
  pb_istream_t s = pb_istream_from_buffer(result->b, result->n);
  bool ok;
  *rows = NULL;
  *n_rows = 0;
  memset(dec, 0, sizeof *dec);
  nne__topk_init(t, rows, n_rows, max_rows, max_top, dec);
  NNE_PB_DEC(m.rows, nne__rep_dec, &t->rows);
  ok = pb_decode(&s, nnedit_v1_ForwardResult_fields, &m);
  free(t);
  return ok ? 0 : dec->code;
}

START_TEST(test_texts) {
  buf_t row0 = {.n = 0}, row1 = {.n = 0}, res = {.n = 0};
  nne_client_row_topk_t *rows;
  size_t n;
  nne__dec_t dec;

  put_uint(&row0, 1, 4); /* position 4 */
  put_score(&row0, 6342, 9.5f, " Paris", 6);
  put_score(&row0, 198, 7.0f, "\n", 1);
  put_score(&row0, 0, 1.0f, "a\0b", 3);     /* a NUL inside */
  put_score(&row0, 7, 0.5f, NULL, 0);       /* no tokenizer: no text */
  put_score(&row1, 5, 2.0f, "\xe2\x82", 2); /* half a UTF-8 sequence */
  put_len(&res, 3, row0.b, row0.n);
  put_len(&res, 3, row1.b, row1.n);

  ck_assert_int_eq(decode(&res, 2, 4, &rows, &n, &dec), 0);
  ck_assert_uint_eq(n, 2);
  ck_assert_uint_eq(rows[0].position, 4);
  ck_assert_uint_eq(rows[0].n_top, 4);
  ck_assert(rows[0].top[0].token_id == 6342 && rows[0].top[0].logit == 9.5f);
  ck_assert_str_eq(rows[0].top[0].text, " Paris");
  ck_assert_uint_eq(rows[0].top[0].text_len, 6);
  ck_assert_str_eq(rows[0].top[1].text, "\n");
  ck_assert_uint_eq(rows[0].top[2].text_len, 3);
  ck_assert(memcmp(rows[0].top[2].text, "a\0b", 4) == 0);
  ck_assert_str_eq(rows[0].top[3].text, "");
  ck_assert_uint_eq(rows[0].top[3].text_len, 0);
  ck_assert_uint_eq(rows[1].n_top, 1);
  ck_assert_uint_eq(rows[1].top[0].text_len, 2);
  ck_assert(memcmp(rows[1].top[0].text, "\xe2\x82", 3) == 0);
  nne__rows_free(rows, n);
}
END_TEST

START_TEST(test_text_bound) {
  buf_t row = {.n = 0}, res = {.n = 0};
  nne_client_row_topk_t *rows;
  char *big = malloc(NNE_CLIENT_TOKEN_TEXT_MAX);
  size_t n;
  nne__dec_t dec;

  memset(big, 'x', NNE_CLIENT_TOKEN_TEXT_MAX);
  put_score(&row, 1, 0.0f, "ok", 2);
  put_score(&row, 2, 0.0f, big, NNE_CLIENT_TOKEN_TEXT_MAX - 1); /* fits */
  put_len(&res, 3, row.b, row.n);
  ck_assert_int_eq(decode(&res, 1, 2, &rows, &n, &dec), 0);
  ck_assert_uint_eq(rows[0].top[1].text_len, NNE_CLIENT_TOKEN_TEXT_MAX - 1);
  nne__rows_free(rows, n);

  /* One byte more is the daemon's error; what was decoded is freed. */
  row.n = res.n = 0;
  put_score(&row, 1, 0.0f, "ok", 2);
  put_score(&row, 2, 0.0f, big, NNE_CLIENT_TOKEN_TEXT_MAX);
  put_len(&res, 3, row.b, row.n);
  ck_assert_int_eq(decode(&res, 1, 2, &rows, &n, &dec), NNE_CLIENT_INTERNAL);
  ck_assert_msg(strstr(dec.msg, "rows[0].top: a string of 4096 bytes") != NULL,
                "%s", dec.msg);
  nne__rows_free(rows, n);
  free(big);
}
END_TEST

static Suite *forward_suite(void) {
  Suite *s = suite_create("client_forward");
  TCase *tc = tcase_create("topk");
  tcase_add_test(tc, test_texts);
  tcase_add_test(tc, test_text_bound);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(forward_suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
