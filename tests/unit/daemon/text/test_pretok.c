/* test_pretok.c — daemon/text/pretok.c: each pre-tokenizer, the five split
 * behaviours, the byte-level alphabet, Oniguruma's \s and \w through the
 * regex rewrite (regex.c), and the load-time errors with their JSON paths.
 */
#include "text_test.h"
#include "unit_main.h"

#define BL(aps, re)                                                            \
  "{\"type\":\"ByteLevel\",\"add_prefix_space\":" aps ",\"use_regex\":" re "}"

START_TEST(test_bytelevel) {
  ck_assert_str_eq(tt_pretok(BL("true", "true"), "Hello world"),
                   "\xC4\xA0Hello|\xC4\xA0world");
  ck_assert_str_eq(tt_pretok(BL("false", "true"), "Hello world"),
                   "Hello|\xC4\xA0world");
  /* GPT-2's regex: contractions, a space before a word, and \s+(?!\S)
   * leaving the last space to the next word. */
  ck_assert_str_eq(tt_pretok(BL("false", "true"), "I'm  fine"),
                   "I|'m|\xC4\xA0|\xC4\xA0"
                   "fine");
  ck_assert_str_eq(tt_pretok(BL("false", "false"), "a b\n"), "a\xC4\xA0"
                                                             "b\xC4\x8A");
  /* Bytes, not characters: é is two symbols. */
  ck_assert_str_eq(tt_pretok(BL("false", "false"), "\xC3\xA9"),
                   "\xC3\x83\xC2\xA9");
}
END_TEST

START_TEST(test_bytelevel_alphabet) {
  nne__bytelevel_t bl;
  nne__bytelevel_init(&bl);
  /* Printable bytes stand for themselves; the others take U+0100 on. */
  ck_assert_int_eq(bl.dec['!'], '!');
  ck_assert_int_eq(bl.dec[0x100], 0);
  ck_assert_int_eq(bl.dec[0x120], ' ');
  ck_assert_int_eq(bl.dec[0x143], 0xAD);
  int seen[256] = {0};
  for (int cp = 0; cp < 324; cp++)
    if (bl.dec[cp] >= 0)
      seen[bl.dec[cp]]++;
  for (int b = 0; b < 256; b++)
    ck_assert_int_eq(seen[b], 1);
}
END_TEST

#define SPLIT(beh)                                                             \
  "{\"type\":\"Split\",\"pattern\":{\"String\":\"-\"},\"behavior\":\"" beh     \
  "\",\"invert\":false}"

START_TEST(test_split_behaviors) {
  ck_assert_str_eq(tt_pretok(SPLIT("Removed"), "a-b--c"), "a|b|c");
  ck_assert_str_eq(tt_pretok(SPLIT("Isolated"), "a-b--c"), "a|-|b|-|-|c");
  ck_assert_str_eq(tt_pretok(SPLIT("MergedWithPrevious"), "a-b--c"),
                   "a-|b-|-|c");
  ck_assert_str_eq(tt_pretok(SPLIT("MergedWithNext"), "a-b--c"), "a|-b|-|-c");
  ck_assert_str_eq(tt_pretok(SPLIT("Contiguous"), "a-b--c"), "a|-|b|--|c");
  ck_assert_str_eq(tt_pretok(SPLIT("Isolated"), "-"), "-");
  /* invert: the matches are what is kept. */
  ck_assert_str_eq(
      tt_pretok("{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\d+\"},"
                "\"behavior\":\"Removed\",\"invert\":true}",
                "ab12cd345"),
      "12|345");
}
END_TEST

START_TEST(test_regex_means_oniguruma) {
  const char *ws = "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\s+\"},"
                   "\"behavior\":\"Removed\",\"invert\":false}";
  /* U+180E is not White_Space (PCRE2's \s says it is); U+0085 is (PCRE2's
   * \s says it is not). */
  ck_assert_str_eq(tt_pretok(ws, "a\xE1\xA0\x8E b\xC2\x85"
                                 "c"),
                   "a\xE1\xA0\x8E|b|c");
  /* A script is the Script property: ・ (Common) is not Han. */
  ck_assert_str_eq(
      tt_pretok("{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\p{Han}+\"},"
                "\"behavior\":\"Isolated\",\"invert\":false}",
                "\xE6\x9D\xB1\xE4\xBA\xAC\xE3\x83\xBBx"),
      "\xE6\x9D\xB1\xE4\xBA\xAC|\xE3\x83\xBBx");
  /* Llama-3's pattern: case-insensitive contractions, digits by three. */
  ck_assert_str_eq(tt_pretok("{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(?i:"
                             "'s|'t)|\\\\p{N}{1,3}|"
                             "[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+\"},"
                             "\"behavior\":\"Isolated\","
                             "\"invert\":false}",
                             "IT'S 12345"),
                   "IT|'S| |123|45");
}
END_TEST

#define META(scheme, split)                                                    \
  "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_"        \
  "scheme\":\"" scheme "\",\"split\":" split "}"
#define U "\xE2\x96\x81"

START_TEST(test_metaspace) {
  ck_assert_str_eq(tt_pretok(META("always", "true"), "Hey friend  x"),
                   U "Hey|" U "friend|" U "|" U "x");
  ck_assert_str_eq(tt_pretok(META("never", "false"), "a b"), "a" U "b");
  ck_assert_str_eq(tt_pretok(META("always", "false"), " a"), U "a");
  /* "first": only the piece at the start of the input. */
  ck_assert_str_eq(
      tt_pretok("{\"type\":\"Sequence\",\"pretokenizers\":["
                "{\"type\":\"Split\",\"pattern\":{\"String\":\"|\"},"
                "\"behavior\":\"Removed\",\"invert\":false}," META(
                    "first", "false") "]}",
                "a|b"),
      U "a|b");
  /* The older form. */
  ck_assert_str_eq(tt_pretok("{\"type\":\"Metaspace\",\"replacement\":\"_\","
                             "\"add_prefix_space\":false}",
                             "a b"),
                   "a|_b");
}
END_TEST

START_TEST(test_digits_punctuation_whitespace) {
  ck_assert_str_eq(
      tt_pretok("{\"type\":\"Digits\",\"individual_digits\":false}", "a123b45"),
      "a|123|b|45");
  ck_assert_str_eq(
      tt_pretok("{\"type\":\"Digits\",\"individual_digits\":true}", "a123"),
      "a|1|2|3");
  /* Any Unicode number counts (Arabic-Indic ٣٤). */
  ck_assert_str_eq(tt_pretok("{\"type\":\"Digits\"}", "x\xD9\xA3\xD9\xA4"),
                   "x|\xD9\xA3\xD9\xA4");
  ck_assert_str_eq(tt_pretok("{\"type\":\"Punctuation\"}", "Hi, you!!"),
                   "Hi|,| you|!|!");
  ck_assert_str_eq(
      tt_pretok("{\"type\":\"Punctuation\",\"behavior\":\"Removed\"}",
                "1$2\xC2\xBF"
                "3"),
      "1|2|3");
  ck_assert_str_eq(
      tt_pretok("{\"type\":\"Whitespace\"}", "Hello, world! 123_x"),
      "Hello|,|world|!|123_x");
  ck_assert_str_eq(tt_pretok("{\"type\":\"WhitespaceSplit\"}", " a\tb\xC2\xA0"
                                                               "c "),
                   "a|b|c");
  ck_assert_str_eq(
      tt_pretok("{\"type\":\"Sequence\",\"pretokenizers\":["
                "{\"type\":\"WhitespaceSplit\"},{\"type\":\"Digits\"}]}",
                "ab12 c"),
      "ab|12|c");
}
END_TEST

static const char *load_err(const char *pre, int *code) {
  static char json[1024];
  snprintf(json, sizeof json,
           "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
           "\"pre_tokenizer\":%s}",
           pre);
  return tt_load_error(json, code);
}

START_TEST(test_errors_name_the_path) {
  int code;
  ck_assert_str_eq(
      load_err(
          "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\"},"
          "{\"type\":\"UnicodeScripts\"}]}",
          &code),
      "pre_tokenizer.pretokenizers[1].type: \"UnicodeScripts\" is not "
      "supported");
  ck_assert_int_eq(code, NNE_EUNIMPL);
  ck_assert_str_eq(
      load_err("{\"type\":\"Split\",\"pattern\":{\"String\":\"x\"}}", &code),
      "pre_tokenizer.behavior: missing");
  ck_assert_str_eq(
      load_err("{\"type\":\"Split\",\"pattern\":{\"String\":\"x\"},"
               "\"behavior\":\"Sideways\"}",
               &code),
      "pre_tokenizer.behavior: \"Sideways\" is not supported");
  ck_assert_str_eq(
      load_err("{\"type\":\"Metaspace\",\"replacement\":\"ab\"}", &code),
      "pre_tokenizer.replacement: must be one character");
  ck_assert_str_eq(
      load_err("{\"type\":\"Metaspace\",\"prepend_scheme\":\"sometimes\"}",
               &code),
      "pre_tokenizer.prepend_scheme: \"sometimes\" is not supported");
  ck_assert_str_eq(
      load_err("{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[^\\\\S]\"},"
               "\"behavior\":\"Removed\"}",
               &code),
      "pre_tokenizer.pattern.Regex: \\S inside a character class is not "
      "supported");
  ck_assert_str_eq(
      load_err("{\"type\":\"ByteLevel\",\"use_regex\":\"yes\"}", &code),
      "pre_tokenizer.use_regex: must be true or false");
}
END_TEST

static Suite *pretok_suite(void) {
  Suite *s = suite_create("text/pretok");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_bytelevel);
  tcase_add_test(tc, test_bytelevel_alphabet);
  tcase_add_test(tc, test_split_behaviors);
  tcase_add_test(tc, test_regex_means_oniguruma);
  tcase_add_test(tc, test_metaspace);
  tcase_add_test(tc, test_digits_punctuation_whitespace);
  tcase_add_test(tc, test_errors_name_the_path);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return nne_test_run_suite(pretok_suite());
}
