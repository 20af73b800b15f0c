/* test_output.c — client/ctl/output.c: token text as tables show it (quoted
 * and escaped so that every byte can be told apart) and as JSON carries it
 * (Unicode only), and the tokenizer line of a model's info. */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "output.h"

/* s[0..n) quoted into a buffer of cap bytes (static: until the next). */
static const char *q(const char *s, size_t n, size_t cap) {
  static char buf[256];
  ck_assert_uint_le(cap, sizeof buf);
  return ctl_quote_text(s, n, buf, cap);
}
#define Q(lit) q((lit), sizeof(lit) - 1, 256)

START_TEST(test_quote_plain) {
  ck_assert_str_eq(Q(" Paris"), "' Paris'");
  ck_assert_str_eq(Q(""), "''");
  ck_assert_str_eq(Q("\n"), "'\\n'");
  ck_assert_str_eq(Q("\t\r"), "'\\t\\r'");
  /* The quote and the backslash are escaped, so the quotes delimit. */
  ck_assert_str_eq(Q("it's"), "'it\\'s'");
  ck_assert_str_eq(Q("a\\b"), "'a\\\\b'");
  /* Printable UTF-8 as it is: accents, CJK, emoji, the byte-level marks. */
  ck_assert_str_eq(Q("\xc3\xa9t\xc3\xa9"), "'\xc3\xa9t\xc3\xa9'");
  ck_assert_str_eq(Q("\xe4\xb8\xad"), "'\xe4\xb8\xad'");
  ck_assert_str_eq(Q("\xf0\x9f\x98\x80"), "'\xf0\x9f\x98\x80'");
  ck_assert_str_eq(Q("\xc4\xa0world"), "'\xc4\xa0world'"); /* Ġworld */
}
END_TEST

START_TEST(test_quote_escapes) {
  /* ASCII controls and NUL (a byte token decoded alone) as \xNN. */
  ck_assert_str_eq(Q("\x00"), "'\\x00'");
  ck_assert_str_eq(Q("a\x1b[0m"), "'a\\x1b[0m'");
  ck_assert_str_eq(Q("\x7f"), "'\\x7f'");
  /* Bytes that are not UTF-8: a lone continuation byte, half of a
   * sequence (a byte-fallback token), an overlong form, a surrogate. */
  ck_assert_str_eq(Q("\x80"), "'\\x80'");
  ck_assert_str_eq(Q("\xe2\x82"), "'\\xe2\\x82'");
  ck_assert_str_eq(Q("\xc0\xaf"), "'\\xc0\\xaf'");
  ck_assert_str_eq(Q("\xed\xa0\x80"), "'\\xed\\xa0\\x80'");
  ck_assert_str_eq(Q("x\xff"
                     "y"),
                   "'x\\xffy'");
  /* What prints as nothing or as a plain blank: \uXXXX. */
  ck_assert_str_eq(Q("\xc2\xa0"), "'\\u00a0'");     /* no-break space */
  ck_assert_str_eq(Q("\xe2\x80\x8b"), "'\\u200b'"); /* zero width */
  ck_assert_str_eq(Q("a\xe2\x80\x8d"
                     "b"),
                   "'a\\u200db'");                          /* joiner */
  ck_assert_str_eq(Q("\xef\xbb\xbf"), "'\\ufeff'");         /* BOM */
  ck_assert_str_eq(Q("\xc2\x85"), "'\\u0085'");             /* C1 NEL */
  ck_assert_str_eq(Q("\xe3\x80\x80"), "'\\u3000'");         /* ideographic sp */
  ck_assert_str_eq(Q("\xf3\xa0\x80\x81"), "'\\U000e0001'"); /* tag */
}
END_TEST

START_TEST(test_quote_bounded) {
  char big[300];
  const char *s;
  memset(big, 'a', sizeof big);
  /* Never past cap: a long text ends in ...' and stays a quoted string. */
  s = q(big, sizeof big, 16);
  ck_assert_uint_le(strlen(s), 15);
  ck_assert_str_eq(s + strlen(s) - 4, "...'");
  ck_assert_int_eq(s[0], '\'');
  /* An escape is never cut in half. */
  memset(big, '\n', sizeof big);
  s = q(big, sizeof big, 16);
  ck_assert_uint_le(strlen(s), 15);
  ck_assert_str_eq(s, "'\\n\\n\\n\\n\\n...'");
  /* Exactly what fits, with no ellipsis. */
  ck_assert_str_eq(q("abcde", 5, 16), "'abcde'");
}
END_TEST

START_TEST(test_json_text) {
  json_t *j;
  /* Valid UTF-8 as it is, a NUL included. */
  j = ctl_json_text(" Paris", 6);
  ck_assert_str_eq(json_string_value(j), " Paris");
  json_decref(j);
  j = ctl_json_text("a\0b", 3);
  ck_assert_uint_eq(json_string_length(j), 3);
  ck_assert(memcmp(json_string_value(j), "a\0b", 3) == 0);
  json_decref(j);
  /* A byte that is not UTF-8 becomes U+FFFD; the rest stays. */
  j = ctl_json_text("x\xe2\x82"
                    "y\xc3\xa9",
                    6);
  ck_assert_ptr_nonnull(j);
  ck_assert_str_eq(json_string_value(j), "x\xef\xbf\xbd\xef\xbf\xbdy\xc3\xa9");
  json_decref(j);
  j = ctl_json_text("", 0);
  ck_assert_str_eq(json_string_value(j), "");
  json_decref(j);
}
END_TEST

START_TEST(test_tokenizer_text) {
  nne_client_special_token_t sp[10];
  nne_client_model_info_t m;
  char buf[1200];
  size_t i;
  memset(&m, 0, sizeof m);
  ctl_tokenizer_text(&m, buf, sizeof buf);
  ck_assert_str_eq(buf, "none");
  m.has_tokenizer = true;
  strcpy(m.tokenizer.file, "/r/gpt2/tokenizer.json");
  strcpy(m.tokenizer.kind, "BPE");
  m.tokenizer.vocab_size = 50257;
  sp[0] = (nne_client_special_token_t){50256, "<|endoftext|>", 13};
  m.tokenizer.special = sp;
  m.tokenizer.n_special = 1;
  ctl_tokenizer_text(&m, buf, sizeof buf);
  ck_assert_str_eq(buf, "BPE, 50257 ids, special: 50256 '<|endoftext|>' "
                        "(/r/gpt2/tokenizer.json)");
  /* Many added tokens: the first eight, and how many there are. */
  for (i = 0; i < 10; i++)
    sp[i] = (nne_client_special_token_t){(int64_t)i, "<s>", 3};
  m.tokenizer.n_special = 10;
  ctl_tokenizer_text(&m, buf, sizeof buf);
  ck_assert_msg(strstr(buf, "7 '<s>', ... (10 in all) (/r/") != NULL, "%s",
                buf);
  ck_assert_ptr_null(strstr(buf, "8 '<s>'"));
}
END_TEST

static Suite *output_suite(void) {
  Suite *s = suite_create("ctl_output");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_quote_plain);
  tcase_add_test(tc, test_quote_escapes);
  tcase_add_test(tc, test_quote_bounded);
  tcase_add_test(tc, test_json_text);
  tcase_add_test(tc, test_tokenizer_text);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(output_suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
