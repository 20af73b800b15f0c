/* test_normalize.c — daemon/text/normalize.c: each normalizer, Sequence,
 * the alignment each keeps for offsets, and the load-time errors with their
 * JSON paths.
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

/* A tokenizer whose normalizer is `k` Replace with an empty pattern (each
 * inserts its content at every position). */
static nne_tokenizer_t *replaces(int k) {
  static char json[2048];
  size_t at = (size_t)snprintf(
      json, sizeof json,
      "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
      "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[");
  for (int i = 0; i < k; i++)
    at += (size_t)snprintf(json + at, sizeof json - at,
                           "%s{\"type\":\"Replace\",\"pattern\":{\"String\":"
                           "\"\"},\"content\":\"aaaaaaaa\"}",
                           i ? "," : "");
  snprintf(json + at, sizeof json - at, "]}}");
  return tt_load(json);
}

/* Such a chain would multiply the text without bound: the encode fails
 * with NNE_ERESOURCE naming the normalizer; a modest growth passes. */
START_TEST(test_growth_is_capped) {
  nne_tokenizer_t *t = replaces(8);
  int32_t *ids = NULL;
  size_t n = 0;
  nne_err_t err;
  ck_assert_int_eq(nne_tokenizer_encode(t, "aaaa", 4, 0, &ids, &n, &err),
                   NNE_ERESOURCE);
  ck_assert_msg(strstr(err.msg, "normalizer: 4 bytes of text would grow "
                                "past") != NULL,
                "%s", err.msg);
  ck_assert_ptr_null(ids);
  nne_tokenizer_free(t);
  /* Two of them: 4 bytes become 404, well inside the cap. */
  t = replaces(2);
  ck_assert_int_eq(nne_tokenizer_encode(t, "aaaa", 4, 0, &ids, &n, &err), 0);
  ck_assert_uint_eq(n, 404);
  free(ids);
  nne_tokenizer_free(t);
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

/* Offsets: each normalizer moves the alignment of its text (each output
 * character to the input bytes it came from) as the reference's do. */
START_TEST(test_alignment) {
  /* A composed character takes its first input character's span; a
   * decomposed one gives its span to every part. */
  ck_assert_str_eq(tt_norm_align("{\"type\":\"NFC\"}", "e\xCC\x81"
                                                       "co"),
                   "\xC3\xA9:0-1 c:3-4 o:4-5");
  ck_assert_str_eq(tt_norm_align("{\"type\":\"NFD\"}", "\xC3\xA9t"),
                   "e:0-2 \xCC\x81:0-2 t:2-3");
  ck_assert_str_eq(
      tt_norm_align("{\"type\":\"NFKC\"}", "\xEF\xAC\x81x\xE2\x91\xA0"),
      "f:0-3 i:0-3 x:3-4 1:4-7");
  /* Marks put in canonical order keep the places, not the characters
   * (the reference's transform reads the alignment by position). */
  ck_assert_str_eq(
      tt_norm_align("{\"type\":\"NFKD\"}", "a\xCC\x81\xCC\xA3"),
      "a:0-1 \xCC\xA3:1-3 \xCC\x81:3-5");
  ck_assert_str_eq(
      tt_norm_align("{\"type\":\"NFC\"}", "a\xCC\x81\xCC\xA3"),
      "\xE1\xBA\xA1:0-1 \xCC\x81:3-5");
  /* One character to two: both take its span. */
  ck_assert_str_eq(tt_norm_align("{\"type\":\"Lowercase\"}", "A\xC4\xB0"
                                                             "B"),
                   "a:0-1 i:1-3 \xCC\x87:1-3 b:3-4");
  /* Prepend: as the first character; Replace: as the match's last byte
   * (nothing for an empty replacement); Strip keeps the rest's. */
  ck_assert_str_eq(
      tt_norm_align("{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"}",
                    "hi"),
      "\xE2\x96\x81:0-1 h:0-1 i:1-2");
  ck_assert_str_eq(
      tt_norm_align("{\"type\":\"Replace\",\"pattern\":{\"Regex\":"
                    "\"\\\\s{2,}\"},\"content\":\" \"}",
                    "a   b"),
      "a:0-1  :3-4 b:4-5");
  ck_assert_str_eq(
      tt_norm_align("{\"type\":\"Replace\",\"pattern\":{\"String\":\"xy\"},"
                    "\"content\":\"\"}",
                    "axyb"),
      "a:0-1 b:3-4");
  ck_assert_str_eq(tt_norm_align("{\"type\":\"Strip\"}", "  a b \xE3\x80\x80"),
                   "a:2-3  :3-4 b:4-5");
  ck_assert_str_eq(
      tt_norm_align("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":"
                    "\"NFD\"},{\"type\":\"StripAccents\"}]}",
                    "caf\xC3\xA9!"),
      "c:0-1 a:1-2 f:2-3 e:3-5 !:5-6");
  /* Llama-2's: Prepend then Replace. */
  ck_assert_str_eq(
      tt_norm_align("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":"
                    "\"Prepend\",\"prepend\":\"\xE2\x96\x81\"},{\"type\":"
                    "\"Replace\",\"pattern\":{\"String\":\" \"},"
                    "\"content\":\"\xE2\x96\x81\"}]}",
                    "a b"),
      "\xE2\x96\x81:0-1 a:0-1 \xE2\x96\x81:1-2 b:2-3");
  ck_assert_str_eq(tt_norm_align("{\"type\":\"NFC\"}", ""), "");
}
END_TEST

static Suite *normalize_suite(void) {
  Suite *s = suite_create("text/normalize");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_nfc_nfkc);
  tcase_add_test(tc, test_lowercase);
  tcase_add_test(tc, test_strip_prepend_replace);
  tcase_add_test(tc, test_sequence);
  tcase_add_test(tc, test_growth_is_capped);
  tcase_add_test(tc, test_alignment);
  tcase_add_test(tc, test_errors_name_the_path);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return nne_test_run_suite(normalize_suite());
}
