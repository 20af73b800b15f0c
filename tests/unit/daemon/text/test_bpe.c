/* test_bpe.c — daemon/text/bpe.c through the public API (no pre-tokenizer,
 * so the whole text is one word): merge order, both merge forms,
 * byte_fallback, unk and fuse_unk, ignore_merges, the continuing-subword
 * prefix and end-of-word suffix, and the load-time errors.
 */
#include "text_test.h"
#include "unit_main.h"

#define VOCAB                                                                  \
  "{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"abc\":4,\"bc\":5,\"<unk>\":6,"          \
  "\"<0x78>\":7,\"<0x79>\":8,\"aa\":9}"

static const char *ids_with(const char *model_extra, const char *merges,
                            const char *text) {
  static char json[2048];
  snprintf(json, sizeof json,
           "{\"model\":{\"type\":\"BPE\",\"vocab\":" VOCAB ",\"merges\":%s%s}}",
           merges, model_extra);
  nne_tokenizer_t *t = tt_load(json);
  static char out[256];
  snprintf(out, sizeof out, "%s", tt_ids(t, text, 0));
  nne_tokenizer_free(t);
  return out;
}

START_TEST(test_merge_forms_and_order) {
  ck_assert_str_eq(ids_with("", "[\"a b\",\"ab c\"]", "abc"), "4");
  ck_assert_str_eq(ids_with("", "[[\"a\",\"b\"],[\"ab\",\"c\"]]", "abc"), "4");
  ck_assert_str_eq(ids_with("", "[\"a b\",\"ab c\"]", "cab"), "2 3");
  /* Lower rank first: bc (rank 0) before ab. */
  ck_assert_str_eq(ids_with("", "[\"b c\",\"a b\"]", "abc"), "0 5");
  /* Equal ranks: leftmost first. */
  ck_assert_str_eq(ids_with("", "[\"a a\"]", "aaa"), "9 0");
  ck_assert_str_eq(ids_with("", "[]", ""), "");
  /* A long word (the heap, not quadratic rescans). */
  static char big[200001];
  memset(big, 'a', 200000);
  const char *r = ids_with("", "[\"a a\"]", big);
  ck_assert_int_eq(strncmp(r, "9 9 9 ", 6), 0);
}
END_TEST

START_TEST(test_unknowns) {
  /* byte_fallback: x and y become <0x78> <0x79>. */
  ck_assert_str_eq(ids_with(",\"byte_fallback\":true", "[]", "xya"), "7 8 0");
  /* A character whose bytes are not all there: unk. */
  ck_assert_str_eq(
      ids_with(",\"byte_fallback\":true,\"unk_token\":\"<unk>\"", "[]", "za"),
      "6 0");
  ck_assert_str_eq(ids_with(",\"unk_token\":\"<unk>\"", "[]", "zza"), "6 6 0");
  ck_assert_str_eq(
      ids_with(",\"unk_token\":\"<unk>\",\"fuse_unk\":true", "[]", "zza"),
      "6 0");
  /* With neither, the character is dropped, as in the reference. */
  ck_assert_str_eq(ids_with("", "[]", "zaz"), "0");
}
END_TEST

START_TEST(test_ignore_merges) {
  ck_assert_str_eq(ids_with(",\"ignore_merges\":true", "[\"b c\"]", "abc"),
                   "4");
  ck_assert_str_eq(ids_with(",\"ignore_merges\":false", "[\"b c\"]", "abc"),
                   "0 5");
}
END_TEST

START_TEST(test_prefix_suffix) {
  nne_tokenizer_t *t =
      tt_load("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"##b\":1,\"##"
              "c\":2,\"ab\":3},"
              "\"merges\":[\"a ##b\"],\"continuing_subword_prefix\":\"##\"}}");
  /* a ##b merges into "ab": the prefix of the right side is dropped. */
  ck_assert_str_eq(tt_ids(t, "abc", 0), "3 2");
  nne_tokenizer_free(t);
  t = tt_load(
      "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"c</w>\":2,"
      "\"bc</w>\":3},\"merges\":[\"b "
      "c</w>\"],\"end_of_word_suffix\":\"</w>\"}}");
  ck_assert_str_eq(tt_ids(t, "abc", 0), "0 3");
  nne_tokenizer_free(t);
}
END_TEST

static const char *model_err(const char *model, int *code) {
  static char json[1024];
  snprintf(json, sizeof json, "{\"model\":%s}", model);
  return tt_load_error(json, code);
}

START_TEST(test_errors_name_the_path) {
  int code;
  ck_assert_str_eq(model_err("{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},"
                             "\"merges\":[\"a b\"]}",
                             &code),
                   "model.merges[0]: token \"ab\" is not in the vocabulary");
  ck_assert_int_eq(code, NNE_EINVAL);
  ck_assert_str_eq(
      model_err("{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a zz\"]}",
                &code),
      "model.merges[0]: token \"zz\" is not in the vocabulary");
  ck_assert_str_eq(
      model_err("{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b c\"]}",
                &code),
      "model.merges[0]: \"a b c\" is not two tokens separated by one space");
  ck_assert_str_eq(
      model_err("{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[5]}", &code),
      "model.merges[0]: must be \"a b\" or [\"a\", \"b\"]");
  ck_assert_str_eq(
      model_err("{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[],"
                "\"unk_token\":\"<unk>\"}",
                &code),
      "model.unk_token: \"<unk>\" is not in the vocabulary");
  ck_assert_str_eq(
      model_err("{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[],"
                "\"dropout\":0.1}",
                &code),
      "model.dropout: is not supported (encoding would be random)");
  ck_assert_int_eq(code, NNE_EUNIMPL);
  ck_assert_str_eq(model_err("{\"type\":\"Unigram\",\"vocab\":[]}", &code),
                   "model.type: \"Unigram\" is not supported");
  ck_assert_str_eq(
      model_err("{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}", &code),
      "model.vocab[\"a\"]: must be an id in [0, 16777216)");
  ck_assert_str_eq(
      model_err("{\"type\":\"BPE\",\"vocab\":[],\"merges\":[]}", &code),
      "model.vocab: must be an object");
}
END_TEST

static Suite *bpe_suite(void) {
  Suite *s = suite_create("text/bpe");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_merge_forms_and_order);
  tcase_add_test(tc, test_unknowns);
  tcase_add_test(tc, test_ignore_merges);
  tcase_add_test(tc, test_prefix_suffix);
  tcase_add_test(tc, test_errors_name_the_path);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return nne_test_run_suite(bpe_suite());
}
