/* test_decoder.c — daemon/text/decoder.c: each decoder on token lists (given
 * and shown joined with '|'), Sequence, UTF-8 repair as the reference does
 * it (util.c's lossy conversion), and the load-time errors.
 */
#include "text_test.h"
#include "unit_main.h"

#define U "\xE2\x96\x81"
#define FFFD "\xEF\xBF\xBD"

START_TEST(test_bytelevel) {
  ck_assert_str_eq(
      tt_decode("{\"type\":\"ByteLevel\"}", "Hello|\xC4\xA0world|\xC4\x8A"),
      "Hello world\n");
  /* Bytes split across tokens join before the UTF-8 conversion. */
  ck_assert_str_eq(tt_decode("{\"type\":\"ByteLevel\"}", "\xC3\x83|\xC2\xA9"),
                   "\xC3\xA9");
  /* A token outside the alphabet (an added token) is its own bytes. */
  ck_assert_str_eq(tt_decode("{\"type\":\"ByteLevel\"}", "a|<\xE2\x80\xA2>"),
                   "a<\xE2\x80\xA2>");
  /* Invalid UTF-8: each maximal invalid subsequence becomes one U+FFFD
   * (0xE2 0x82 is the start of €; 0xFF is never valid). */
  ck_assert_str_eq(
      tt_decode("{\"type\":\"ByteLevel\"}", "\xC3\xA2\xC4\xA4|\xC3\xBF|a"),
      FFFD FFFD "a");
}
END_TEST

START_TEST(test_bytefallback_fuse) {
  ck_assert_str_eq(
      tt_decode("{\"type\":\"ByteFallback\"}", "a|<0xC3>|<0xA9>|b"),
      "a|\xC3\xA9|b");
  /* A run that is not UTF-8 gives one U+FFFD per byte token. */
  ck_assert_str_eq(tt_decode("{\"type\":\"ByteFallback\"}", "<0xE2>|<0x82>|x"),
                   FFFD "|" FFFD "|x");
  ck_assert_str_eq(tt_decode("{\"type\":\"ByteFallback\"}", "<0x4g>|<0x41>"),
                   "<0x4g>|A");
  ck_assert_str_eq(tt_decode("{\"type\":\"Fuse\"}", "a|b|c"), "abc");
}
END_TEST

START_TEST(test_metaspace_strip_replace) {
  const char *m = "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\","
                  "\"prepend_scheme\":\"always\",\"split\":true}";
  /* The first token loses its replacement characters; the others get
   * spaces. */
  ck_assert_str_eq(tt_decode(m, U "Hey|" U "friend|!"), "Hey| friend|!");
  ck_assert_str_eq(
      tt_decode("{\"type\":\"Metaspace\",\"prepend_scheme\":\"never\"}",
                U "a|" U "b"),
      " a| b");
  ck_assert_str_eq(
      tt_decode("{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}",
                "  a | b"),
      " a |b");
  ck_assert_str_eq(
      tt_decode("{\"type\":\"Strip\",\"content\":\"x\",\"start\":0,\"stop\":2}",
                "axxx|x"),
      "ax|");
  ck_assert_str_eq(
      tt_decode("{\"type\":\"Replace\",\"pattern\":{\"String\":\"" U "\"},"
                "\"content\":\" \"}",
                U "a" U "|b"),
      " a |b");
}
END_TEST

START_TEST(test_sequence_llama2) {
  /* Llama-2's decoder. */
  ck_assert_str_eq(
      tt_decode(
          "{\"type\":\"Sequence\",\"decoders\":["
          "{\"type\":\"Replace\",\"pattern\":{\"String\":\"" U
          "\"},\"content\":\" \"},"
          "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},"
          "{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]}",
          U "Hello|" U "w|<0xC3>|<0xB6>|rld"),
      "Hello w\xC3\xB6rld");
}
END_TEST

static const char *load_err(const char *dec, int *code) {
  static char json[1024];
  snprintf(json, sizeof json,
           "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
           "\"decoder\":%s}",
           dec);
  return tt_load_error(json, code);
}

START_TEST(test_errors_name_the_path) {
  int code;
  ck_assert_str_eq(
      load_err("{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Fuse\"},"
               "{\"type\":\"WordPiece\"}]}",
               &code),
      "decoder.decoders[1].type: \"WordPiece\" is not supported");
  ck_assert_int_eq(code, NNE_EUNIMPL);
  ck_assert_str_eq(
      load_err("{\"type\":\"Strip\",\"content\":\" \",\"start\":-1}", &code),
      "decoder.start: must be a count");
  ck_assert_str_eq(load_err("{\"type\":\"Strip\",\"content\":\"\"}", &code),
                   "decoder.content: must be one character");
  ck_assert_str_eq(load_err("[1]", &code),
                   "decoder: must be an object or null");
}
END_TEST

static Suite *decode_suite(void) {
  Suite *s = suite_create("text/decode");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_bytelevel);
  tcase_add_test(tc, test_bytefallback_fuse);
  tcase_add_test(tc, test_metaspace_strip_replace);
  tcase_add_test(tc, test_sequence_llama2);
  tcase_add_test(tc, test_errors_name_the_path);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return nne_test_run_suite(decode_suite());
}
