/* test_normalize.c — daemon/text/normalize.c: each normalizer, Sequence,
 * and the load-time errors with their JSON paths.
 */
#include "text_test.h"
#include "unit_main.h"

START_TEST(test_nfc_nfkc) {
  /* e + combining acute → é; NFKC also folds compatibility forms. */
  ck_assert_str_eq(tt_norm("{\"type\":\"NFC\"}", "e\xCC\x81"
                                                 "cole"),
                   "\xC3\xA9"
                   "cole");
  ck_assert_str_eq(tt_norm("{\"type\":\"NFC\"}", "\xEF\xAC\x81"),
                   "\xEF\xAC\x81");
  ck_assert_str_eq(
      tt_norm("{\"type\":\"NFKC\"}", "\xEF\xAC\x81 \xE2\x91\xA0 \xEF\xBC\xA1"),
      "fi 1 A");
  ck_assert_str_eq(tt_norm("{\"type\":\"NFKC\"}", ""), "");
  ck_assert_str_eq(tt_norm("{\"type\":\"NFD\"}", "\xC3\xA9"), "e\xCC\x81");
  ck_assert_str_eq(tt_norm("{\"type\":\"NFKD\"}", "\xEF\xAC\x81\xC3\xA9"),
                   "fie\xCC\x81");
  /* StripAccents drops every mark, spacing ones (Devanagari ि) too. */
  ck_assert_str_eq(
      tt_norm("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFD\"},"
              "{\"type\":\"StripAccents\"}]}",
              "caf\xC3\xA9 \xE0\xA4\xB9\xE0\xA4\xBF"),
      "cafe \xE0\xA4\xB9");
}
END_TEST

START_TEST(test_lowercase) {
  ck_assert_str_eq(
      tt_norm("{\"type\":\"Lowercase\"}", "HeLLo \xD0\x9F\xD0\xA0"),
      "hello \xD0\xBF\xD1\x80");
  /* İ → i + combining dot (one-to-many), Σ → σ everywhere (no final form,
   * as the reference). */
  ck_assert_str_eq(tt_norm("{\"type\":\"Lowercase\"}", "\xC4\xB0"),
                   "i\xCC\x87");
  ck_assert_str_eq(
      tt_norm("{\"type\":\"Lowercase\"}", "\xCE\xA3\xCE\x91\xCE\xA3"),
      "\xCF\x83\xCE\xB1\xCF\x83");
}
END_TEST

START_TEST(test_strip_prepend_replace) {
  ck_assert_str_eq(
      tt_norm("{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true}",
              " \t\xE3\x80\x80 a b \n"),
      "a b");
  ck_assert_str_eq(
      tt_norm("{\"type\":\"Strip\",\"strip_left\":false,\"strip_right\":true}",
              "  a  "),
      "  a");
  ck_assert_str_eq(
      tt_norm("{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"}", "a"),
      "\xE2\x96\x81"
      "a");
  /* Nothing is prepended to an empty text. */
  ck_assert_str_eq(tt_norm("{\"type\":\"Prepend\",\"prepend\":\"x\"}", ""), "");
  ck_assert_str_eq(
      tt_norm("{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},"
              "\"content\":\"\xE2\x96\x81\"}",
              "a b  c"),
      "a\xE2\x96\x81"
      "b\xE2\x96\x81\xE2\x96\x81"
      "c");
  /* A String pattern is literal, a Regex one is not. */
  ck_assert_str_eq(
      tt_norm("{\"type\":\"Replace\",\"pattern\":{\"String\":\".\"},"
              "\"content\":\"!\"}",
              "a.b"),
      "a!b");
  ck_assert_str_eq(
      tt_norm("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\s+\"},"
              "\"content\":\" \"}",
              "a \t\n b\xC2\x85"
              "c"),
      "a b c");
}
END_TEST

START_TEST(test_sequence) {
  ck_assert_str_eq(
      tt_norm(
          "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},"
          "{\"type\":\"Lowercase\"},{\"type\":\"Sequence\",\"normalizers\":["
          "{\"type\":\"Strip\"},{\"type\":\"Prepend\",\"prepend\":\"_\"}]}]}",
          "  \xEF\xBC\xA1"
          "BC  "),
      "_abc");
  ck_assert_str_eq(tt_norm("{\"type\":\"Sequence\",\"normalizers\":[]}", "x"),
                   "x");
}
END_TEST

static const char *load_err(const char *norm, int *code) {
  static char json[1024];
  snprintf(json, sizeof json,
           "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
           "\"normalizer\":%s}",
           norm);
  return tt_load_error(json, code);
}

START_TEST(test_errors_name_the_path) {
  int code;
  ck_assert_str_eq(
      load_err("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},"
               "{\"type\":\"BertNormalizer\"}]}",
               &code),
      "normalizer.normalizers[1].type: \"BertNormalizer\" is not supported");
  ck_assert_int_eq(code, NNE_EUNIMPL);
  ck_assert_str_eq(
      load_err("{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"\"}",
               &code),
      "normalizer.type: \"Precompiled\" is not supported");
  ck_assert_str_eq(load_err("{\"type\":\"Prepend\"}", &code),
                   "normalizer.prepend: missing");
  ck_assert_int_eq(code, NNE_EINVAL);
  ck_assert_str_eq(load_err("{\"type\":\"Strip\",\"strip_left\":1}", &code),
                   "normalizer.strip_left: must be true or false");
  ck_assert_str_eq(
      load_err("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"(\"},"
               "\"content\":\"\"}",
               &code),
      "normalizer.pattern.Regex: regex not supported: missing closing "
      "parenthesis (at 1)");
  ck_assert_str_eq(
      load_err("{\"type\":\"Replace\",\"pattern\":\"x\"}", &code),
      "normalizer.pattern: must be {\"String\": ...} or {\"Regex\": ...}");
  ck_assert_str_eq(load_err("{\"type\":\"Sequence\"}", &code),
                   "normalizer.normalizers: must be an array");
  ck_assert_str_eq(load_err("{\"kind\":\"NFC\"}", &code),
                   "normalizer.type: missing or not a string");
}
END_TEST

static Suite *normalize_suite(void) {
  Suite *s = suite_create("text/normalize");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_nfc_nfkc);
  tcase_add_test(tc, test_lowercase);
  tcase_add_test(tc, test_strip_prepend_replace);
  tcase_add_test(tc, test_sequence);
  tcase_add_test(tc, test_errors_name_the_path);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return nne_test_run_suite(normalize_suite());
}
