/* test_tokenizer.c — daemon/text/tokenizer.c: added tokens (lstrip, rstrip,
 * single_word, normalized, special as text), post-processors, decode and
 * its special-token skipping, lookups, bad input (invalid UTF-8, unknown
 * ids), load-time errors, and encoding from several threads at once.
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "text_test.h"
#include "unit_main.h"

#define MODEL                                                                  \
  "\"model\":{\"type\":\"BPE\",\"merges\":[],\"vocab\":{\"h\":0,\"i\":1,"      \
  "\" \":2,\"x\":3,\"<\":4,\"s\":5,\">\":6}}"
#define ADDED                                                                  \
  "\"added_tokens\":["                                                         \
  "{\"id\":7,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"      \
  "{\"id\":8,\"content\":\"[L]\",\"special\":true,\"lstrip\":true},"           \
  "{\"id\":9,\"content\":\"[R]\",\"special\":true,\"rstrip\":true},"           \
  "{\"id\":10,\"content\":\"hi\",\"special\":false,\"single_word\":true,"      \
  "\"normalized\":true}]"
#define TEMPLATE                                                               \
  "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":"    \
  "\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"       \
  "{\"SpecialToken\":{\"id\":\"E\",\"type_id\":0}}],\"special_tokens\":{"      \
  "\"<s>\":{\"id\":\"<s>\",\"ids\":[7],\"tokens\":[\"<s>\"]},\"E\":{\"id\":"   \
  "\"E\",\"ids\":[3,3],\"tokens\":[\"x\",\"x\"]}}}"

static const char *FULL =
    "{" MODEL "," ADDED ",\"normalizer\":{\"type\":\"Lowercase\"},"
    "\"post_processor\":{\"type\":\"Sequence\",\"processors\":["
    "{\"type\":\"ByteLevel\"}," TEMPLATE "]}}";

START_TEST(test_added_tokens) {
  nne_tokenizer_t *t = tt_load(FULL);
  ck_assert_str_eq(tt_ids(t, "x<s>x", 0), "3 7 3");
  ck_assert_str_eq(tt_ids(t, "x  [L]x", 0),
                   "3 8 3"); /* lstrip eats the spaces */
  ck_assert_str_eq(tt_ids(t, "x[R]  x", 0), "3 9 3"); /* rstrip too */
  ck_assert_str_eq(tt_ids(t, "hi x", 0), "10 2 3");   /* a single word */
  ck_assert_str_eq(tt_ids(t, "xhi", 0), "3 0 1"); /* not a word of its own */
  ck_assert_str_eq(tt_ids(t, "hi\xCC\x81", 0),
                   "0 1"); /* a mark continues the word */
  /* normalized: matched after Lowercase; <s> (not normalized) is not. */
  ck_assert_str_eq(tt_ids(t, "HI X", 0), "10 2 3");
  ck_assert_str_eq(tt_ids(t, "<S>", 0), "4 5 6");
  /* Special tokens as text; the non-special "hi" still matches. */
  ck_assert_str_eq(tt_ids(t, "<s>hi", NNE_TOK_SPECIAL_AS_TEXT), "4 5 6 10");
  ck_assert_str_eq(tt_ids(t, "", 0), "");
  nne_tokenizer_free(t);
}
END_TEST

START_TEST(test_post_processors) {
  nne_tokenizer_t *t = tt_load(FULL);
  ck_assert_str_eq(tt_ids(t, "h", NNE_TOK_ADD_SPECIAL), "7 0 3 3");
  ck_assert_str_eq(tt_ids(t, "", NNE_TOK_ADD_SPECIAL), "7 3 3");
  ck_assert_str_eq(tt_ids(t, "h", 0), "0");
  nne_tokenizer_free(t);
  t = tt_load("{" MODEL ",\"post_processor\":{\"type\":\"RobertaProcessing\","
              "\"cls\":[\"<\",4],\"sep\":[\">\",6]}}");
  ck_assert_str_eq(tt_ids(t, "hi", NNE_TOK_ADD_SPECIAL), "4 0 1 6");
  nne_tokenizer_free(t);
}
END_TEST

#define TEMPLATE_PAIR                                                          \
  "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":"    \
  "\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"      \
  "\"pair\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":" \
  "{\"id\":\"A\",\"type_id\":0}},{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}," \
  "{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":1}}],\"special_tokens\":{"    \
  "\"<s>\":{\"id\":\"<s>\",\"ids\":[7],\"tokens\":[\"<s>\"]}}}"

/* Offsets (id@start-end/type; "*" the template's tokens, "+" the pair's). */
START_TEST(test_offsets) {
  nne_tokenizer_t *t =
      tt_load("{" MODEL "," ADDED ",\"normalizer\":{\"type\":\"Lowercase\"},"
              "\"post_processor\":" TEMPLATE_PAIR "}");
  /* An added token's span takes the spaces lstrip/rstrip took; the
   * template's token is (0, 0). */
  ck_assert_str_eq(tt_offsets(t, "x  [L]x", NULL, NNE_TOK_ADD_SPECIAL),
                   "7*@0-0/0 3@0-1/0 8@1-6/0 3@6-7/0");
  ck_assert_str_eq(tt_offsets(t, "x[R]  x", NULL, 0),
                   "3@0-1/0 9@1-6/0 3@6-7/0");
  /* A normalized added token ("hi" after Lowercase) spans its input. */
  ck_assert_str_eq(tt_offsets(t, "HI X", NULL, 0),
                   "10@0-2/0 2@2-3/0 3@3-4/0");
  nne_tokenizer_free(t);
  /* Each byte token of a character gets the character's span. */
  t = tt_load("{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,"
              "\"merges\":[],\"vocab\":{\"a\":0,\"<0xE2>\":1,\"<0x82>\":2,"
              "\"<0xAC>\":3}}}");
  ck_assert_str_eq(tt_offsets(t, "a\xE2\x82\xAC"
                                 "a",
                              NULL, 0),
                   "0@0-1/0 1@1-4/0 2@1-4/0 3@1-4/0 0@4-5/0");
  nne_tokenizer_free(t);
}
END_TEST

/* A token's bytes when its decoded piece is lossy. */
START_TEST(test_token_bytes) {
  char buf[16];
  size_t n;
  nne_tokenizer_t *t = tt_load(
      "{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"merges\":[],"
      "\"vocab\":{\"a\":0,\"<0xE2>\":1,\"<0x41>\":2}},\"decoder\":{\"type\":"
      "\"Sequence\",\"decoders\":[{\"type\":\"ByteFallback\"}]}}");
  ck_assert_int_eq(nne_tokenizer_token_bytes(t, 1, buf, sizeof buf, &n), 1);
  ck_assert_uint_eq(n, 1);
  ck_assert_int_eq((unsigned char)buf[0], 0xE2);
  ck_assert_int_eq(nne_tokenizer_token_bytes(t, 2, buf, sizeof buf, &n), 0);
  ck_assert_int_eq(nne_tokenizer_token_bytes(t, 0, buf, sizeof buf, &n), 0);
  ck_assert_int_eq(nne_tokenizer_token_bytes(t, 9, buf, sizeof buf, &n), 0);
  nne_tokenizer_free(t);
  /* Byte-level: "âĢ" is the bytes E2 80, part of a character; "Ġa" is
   * whole (" a"). */
  t = tt_load("{\"model\":{\"type\":\"BPE\",\"merges\":[],\"vocab\":{"
              "\"\xC3\xA2\xC4\xA2\":0,\"\xC4\xA0" "a\":1}},"
              "\"decoder\":{\"type\":\"ByteLevel\"}}");
  ck_assert_int_eq(nne_tokenizer_token_bytes(t, 0, buf, sizeof buf, &n), 1);
  ck_assert_uint_eq(n, 2);
  ck_assert(!memcmp(buf, "\xE2\x80", 2));
  ck_assert_int_eq(nne_tokenizer_token_bytes(t, 0, buf, 1, &n), 0);
  ck_assert_int_eq(nne_tokenizer_token_bytes(t, 1, buf, sizeof buf, &n), 0);
  nne_tokenizer_free(t);
}
END_TEST

/* Pairs: the pair template, type ids, the pair's offsets in its own text. */
START_TEST(test_pairs) {
  nne_tokenizer_t *t =
      tt_load("{" MODEL "," ADDED ",\"post_processor\":" TEMPLATE_PAIR "}");
  ck_assert_str_eq(tt_offsets(t, "hx", "<s>i", NNE_TOK_ADD_SPECIAL),
                   "7*@0-0/0 0@0-1/0 3@1-2/0 7+@0-3/1 1+@3-4/1 7*@0-0/1");
  /* Without special tokens the template still orders and types them. */
  ck_assert_str_eq(tt_offsets(t, "hx", "i", 0), "0@0-1/0 3@1-2/0 1+@0-1/1");
  ck_assert_str_eq(tt_offsets(t, "hx", "", 0), "0@0-1/0 3@1-2/0");
  nne_tokenizer_free(t);
  /* RobertaProcessing: <s> A </s> </s> B </s>, all type 0, offsets
   * trimmed inside spaces (trim_offsets by default). */
  t = tt_load("{" MODEL ",\"post_processor\":{\"type\":\"RobertaProcessing\","
              "\"cls\":[\"<\",4],\"sep\":[\">\",6]}}");
  ck_assert_str_eq(tt_offsets(t, "h x", "i ", NNE_TOK_ADD_SPECIAL),
                   "4*@0-0/0 0@0-1/0 2@2-2/0 3@2-3/0 6*@0-0/0 6*@0-0/0 "
                   "1+@0-1/0 2+@2-2/0 6*@0-0/0");
  nne_tokenizer_free(t);
  /* BertProcessing: [CLS] A [SEP] B [SEP], B's part type 1. */
  t = tt_load("{" MODEL ",\"post_processor\":{\"type\":\"BertProcessing\","
              "\"cls\":[\"<\",4],\"sep\":[\">\",6]}}");
  ck_assert_str_eq(tt_offsets(t, "h", "i", NNE_TOK_ADD_SPECIAL),
                   "4*@0-0/0 0@0-1/0 6*@0-0/0 1+@0-1/1 6*@0-0/1");
  nne_tokenizer_free(t);
  /* A second template wraps what the first made with its single form (as
   * the reference's Sequence does): it needs no pair form of its own. */
  t = tt_load("{" MODEL "," ADDED ",\"post_processor\":{\"type\":\"Sequence\","
              "\"processors\":[" TEMPLATE_PAIR ",{\"type\":\"TemplateProcessing\","
              "\"single\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":2}},"
              "{\"SpecialToken\":{\"id\":\"x\",\"type_id\":3}}],"
              "\"special_tokens\":{\"x\":{\"id\":\"x\",\"ids\":[3]}}}]}}");
  ck_assert_str_eq(tt_offsets(t, "h", "i", NNE_TOK_ADD_SPECIAL),
                   "7*@0-0/2 0@0-1/2 1+@0-1/2 7*@0-0/2 3*@0-0/3");
  nne_tokenizer_free(t);
  /* No post-processor: one after the other, types 0 and 1. */
  t = tt_load("{" MODEL "}");
  ck_assert_str_eq(tt_offsets(t, "h", "i", NNE_TOK_ADD_SPECIAL),
                   "0@0-1/0 1+@0-1/1");
  nne_tokenizer_free(t);
  /* A template without a pair form refuses a pair; bad pair input is named. */
  t = tt_load("{" MODEL ",\"post_processor\":{\"type\":\"TemplateProcessing\","
              "\"single\":[{\"Sequence\":{\"id\":\"A\"}}],"
              "\"special_tokens\":{}}}");
  nne_tokenizer_encoding_t e;
  nne_err_t err;
  ck_assert_int_eq(nne_tokenizer_encode_pair(t, "h", 1, "i", 1, 0, &e, &err),
                   NNE_EUNIMPL);
  ck_assert_str_eq(err.msg,
                   "pair: the tokenizer's post_processor has no pair template");
  ck_assert_ptr_null(e.ids);
  ck_assert_int_eq(nne_tokenizer_encode_pair(t, "h", 1, NULL, 0, 0, &e, &err),
                   0);
  ck_assert_uint_eq(e.n, 1);
  ck_assert_ptr_null(e.offsets); /* not asked for */
  nne_tokenizer_encoding_free(&e);
  nne_tokenizer_free(t);
  /* "pair": [] loads, as in the reference, and a pair then encodes to the
   * template alone: no ids (the reference's answer for the same file). */
  t = tt_load("{" MODEL ",\"post_processor\":{\"type\":\"TemplateProcessing\","
              "\"single\":[{\"Sequence\":{\"id\":\"A\"}}],\"pair\":[],"
              "\"special_tokens\":{}}}");
  ck_assert_str_eq(tt_offsets(t, "h", "i", NNE_TOK_ADD_SPECIAL), "");
  ck_assert_str_eq(tt_ids(t, "h", NNE_TOK_ADD_SPECIAL), "0");
  nne_tokenizer_free(t);
  t = tt_load("{" MODEL "}");
  ck_assert_int_eq(
      nne_tokenizer_encode_pair(t, "h", 1, "\xC3", 1, 0, &e, &err), NNE_EINVAL);
  ck_assert_str_eq(err.msg, "pair: invalid UTF-8 at byte 0 (0xc3)");
  nne_tokenizer_free(t);
}
END_TEST

START_TEST(test_decode_and_lookups) {
  nne_tokenizer_t *t = tt_load(FULL);
  int32_t ids[] = {7, 0, 1, 10};
  char *s;
  size_t n;
  nne_err_t err;
  /* Without a decoder the reference joins tokens with spaces. */
  ck_assert_int_eq(nne_tokenizer_decode(t, ids, 4, 0, &s, &n, &err), 0);
  ck_assert_str_eq(s, "<s> h i hi");
  ck_assert_uint_eq(n, strlen(s));
  free(s);
  ck_assert_int_eq(
      nne_tokenizer_decode(t, ids, 4, NNE_TOK_SKIP_SPECIAL, &s, &n, &err), 0);
  ck_assert_str_eq(s, "h i hi");
  free(s);
  ck_assert_int_eq(nne_tokenizer_decode(t, ids, 0, 0, &s, &n, &err), 0);
  ck_assert_str_eq(s, "");
  free(s);
  ck_assert_uint_eq(nne_tokenizer_vocab_size(t), 11);
  ck_assert_str_eq(nne_tokenizer_id_to_token(t, 7, &n), "<s>");
  ck_assert_str_eq(nne_tokenizer_id_to_token(t, 2, &n), " ");
  ck_assert_ptr_null(nne_tokenizer_id_to_token(t, 11, &n));
  ck_assert_ptr_null(nne_tokenizer_id_to_token(t, -1, &n));
  ck_assert_int_eq(nne_tokenizer_token_to_id(t, "[R]", 3), 9);
  ck_assert_int_eq(nne_tokenizer_token_to_id(t, "x", 1), 3);
  ck_assert_int_eq(nne_tokenizer_token_to_id(t, "zz", 2), -1);
  ck_assert(nne_tokenizer_is_special(t, 7));
  ck_assert(!nne_tokenizer_is_special(t, 10));
  ck_assert(!nne_tokenizer_is_special(t, 0));
  nne_tokenizer_free(t);
}
END_TEST

START_TEST(test_bad_input) {
  nne_tokenizer_t *t = tt_load(FULL);
  nne_err_t err;
  int32_t *ids;
  size_t n;
  char *s;
  ck_assert_int_eq(nne_tokenizer_encode(t, "hi\xFFx", 4, 0, &ids, &n, &err),
                   NNE_EINVAL);
  ck_assert_str_eq(err.msg, "text: invalid UTF-8 at byte 2 (0xff)");
  ck_assert_ptr_null(ids);
  ck_assert_uint_eq(n, 0);
  /* Truncated, surrogate, overlong: all refused, at the first bad byte. */
  ck_assert_int_eq(nne_tokenizer_encode(t, "ab\xE2\x82", 4, 0, &ids, &n, &err),
                   NNE_EINVAL);
  ck_assert_str_eq(err.msg, "text: invalid UTF-8 at byte 2 (0xe2)");
  ck_assert_int_eq(
      nne_tokenizer_encode(t, "\xED\xA0\x80", 3, 0, &ids, &n, &err),
      NNE_EINVAL);
  ck_assert_int_eq(nne_tokenizer_encode(t, "\xC0\xAF", 2, 0, &ids, &n, &err),
                   NNE_EINVAL);
  ck_assert_int_eq(nne_tokenizer_encode(t, "x",
                                        NNE_TOKENIZER_MAX_TEXT_BYTES + 1, 0,
                                        &ids, &n, &err),
                   NNE_ERESOURCE);
  int32_t bad[] = {0, 99};
  ck_assert_int_eq(nne_tokenizer_decode(t, bad, 2, 0, &s, &n, &err),
                   NNE_EOUTOFRANGE);
  ck_assert_str_eq(err.msg,
                   "ids[1]: 99 is not a token of this tokenizer (11 ids)");
  ck_assert_ptr_null(s);
  nne_tokenizer_free(t);
}
END_TEST

START_TEST(test_load_errors) {
  int code;
  const char *m = tt_load_error("{\"model\":", &code);
  ck_assert_int_eq(code, NNE_EINVAL);
  ck_assert_int_eq(strncmp(m, "tokenizer.json: line 1: ", 24), 0);
  ck_assert_str_eq(
      tt_load_error("{" MODEL ",\"truncation\":{\"max_length\":5}}", &code),
      "truncation: is not supported (must be null)");
  ck_assert_int_eq(code, NNE_EUNIMPL);
  ck_assert_str_eq(tt_load_error("{}", &code), "model: missing");
  ck_assert_str_eq(
      tt_load_error("{" MODEL ",\"post_processor\":{\"type\":\"Sequence\","
                    "\"processors\":[{\"type\":\"BertProcessing\"}]}}",
                    &code),
      "post_processor.processors[0].cls: must be [token, id]");
  ck_assert_str_eq(
      tt_load_error("{" MODEL ",\"post_processor\":{\"type\":\"Sequence\","
                    "\"processors\":[{\"type\":\"ByteLevel\"},"
                    "{\"type\":\"Fancy\"}]}}",
                    &code),
      "post_processor.processors[1].type: \"Fancy\" is not supported");
  ck_assert_str_eq(
      tt_load_error("{" MODEL ",\"post_processor\":{\"type\":"
                    "\"TemplateProcessing\",\"single\":[{\"Sequence\":"
                    "{\"id\":\"B\"}}]}}",
                    &code),
      "post_processor.single[0].Sequence: only one sequence \"A\" is "
      "supported in \"single\"");
  ck_assert_str_eq(
      tt_load_error(
          "{" MODEL ",\"added_tokens\":[{\"id\":1,\"content\":\"\"}]}", &code),
      "added_tokens[0].content: must be a non-empty string");
  nne_err_t err;
  nne_tokenizer_t *t;
  ck_assert_int_eq(
      nne_tokenizer_load_file("/nonexistent/tokenizer.json", &t, &err),
      NNE_ENOTFOUND);
  ck_assert_ptr_null(t);
}
END_TEST

START_TEST(test_load_file) {
  char path[] = "/tmp/nne_tok_XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  FILE *f = fdopen(fd, "w");
  fputs(FULL, f);
  fclose(f);
  nne_err_t err;
  nne_tokenizer_t *t;
  ck_assert_int_eq(nne_tokenizer_load_file(path, &t, &err), 0);
  ck_assert_str_eq(tt_ids(t, "x<s>", NNE_TOK_ADD_SPECIAL), "7 3 7 3 3");
  nne_tokenizer_free(t);
  /* A load error names the file before the JSON path. */
  f = fopen(path, "w");
  fputs("{\"model\":{\"type\":\"WordPiece\"}}", f);
  fclose(f);
  ck_assert_int_eq(nne_tokenizer_load_file(path, &t, &err), NNE_EUNIMPL);
  char want[256];
  snprintf(want, sizeof want, "%s: model.type: \"WordPiece\" is not supported",
           path);
  ck_assert_str_eq(err.msg, want);
  unlink(path);
}
END_TEST

/* The daemon encodes from several executor threads with one tokenizer. */
typedef struct job {
  const nne_tokenizer_t *t;
  const char *text;
  const char *want;
  int ok;
} job_t;

static void *encode_many(void *arg) {
  job_t *j = arg;
  j->ok = 1;
  for (int r = 0; r < 50; r++) {
    int32_t *ids;
    size_t n, at = 0;
    char got[8192];
    nne_err_t err;
    if (nne_tokenizer_encode(j->t, j->text, strlen(j->text),
                             NNE_TOK_ADD_SPECIAL, &ids, &n, &err) != 0) {
      j->ok = 0;
      return NULL;
    }
    got[0] = '\0';
    for (size_t i = 0; i < n && at < sizeof got - 16; i++)
      at += (size_t)snprintf(got + at, sizeof got - at, "%s%d", i ? " " : "",
                             ids[i]);
    free(ids);
    if (strcmp(got, j->want) != 0)
      j->ok = 0;
  }
  return NULL;
}

START_TEST(test_threads) {
  nne_tokenizer_t *t =
      tt_load("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"h\":0,\"i\":1,\"hi\":"
              "2,\"\xC4\xA0\":3,"
              "\"\xC4\xA0hi\":4},\"merges\":[\"h i\",\"\xC4\xA0 "
              "hi\"]},\"pre_tokenizer\":{"
              "\"type\":\"ByteLevel\",\"add_prefix_space\":false}}");
  char text[2048] = "";
  for (int i = 0; i < 300; i++)
    strcat(text, i % 7 ? "hi " : "ih  ");
  char want[8192];
  snprintf(want, sizeof want, "%s", tt_ids(t, text, NNE_TOK_ADD_SPECIAL));
  pthread_t th[4];
  job_t jobs[4];
  for (int i = 0; i < 4; i++) {
    jobs[i] = (job_t){t, text, want, 0};
    pthread_create(&th[i], NULL, encode_many, &jobs[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    ck_assert(jobs[i].ok);
  }
  nne_tokenizer_free(t);
}
END_TEST

static Suite *tokenizer_suite(void) {
  Suite *s = suite_create("text/tokenizer");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_added_tokens);
  tcase_add_test(tc, test_post_processors);
  tcase_add_test(tc, test_offsets);
  tcase_add_test(tc, test_token_bytes);
  tcase_add_test(tc, test_pairs);
  tcase_add_test(tc, test_decode_and_lookups);
  tcase_add_test(tc, test_bad_input);
  tcase_add_test(tc, test_load_errors);
  tcase_add_test(tc, test_load_file);
  tcase_add_test(tc, test_threads);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return nne_test_run_suite(tokenizer_suite());
}
