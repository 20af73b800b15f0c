/* text_test.h — helpers shared by the unit tests of daemon/text: run one
 * stage (normalizer, pre-tokenizer, decoder) or a whole tokenizer, given as
 * a small JSON string, and give the result as one string to compare:
 * pieces and tokens joined with '|', ids with ' '. Header only; each
 * helper frees what it made and aborts the test on a load error.
 */
#ifndef NNE_TEST_TEXT_TEST_H
#define NNE_TEST_TEXT_TEST_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/internal.h"
#include "text/tokenizer.h"

/* One result buffer per test process (check forks each test). */
static char tt_out[8192];

static inline json_t *tt_json(const char *s) {
  json_error_t je;
  json_t *j = json_loads(s, 0, &je);
  ck_assert_msg(j != NULL, "bad test JSON: %s", je.text);
  return j;
}

static inline void tt_scratch(nne__scratch_t *sc) {
  memset(sc, 0, sizeof *sc);
  sc->md = pcre2_match_data_create(16, NULL);
}

/* The normalizer's output. */
static inline const char *tt_norm(const char *json, const char *text) {
  nne__path_t path = {"normalizer", 10};
  nne_err_t err = {0};
  nne__norm_t *n;
  nne__scratch_t sc;
  json_t *j = tt_json(json);
  ck_assert_msg(nne__norm_load(j, &n, &path, &err) == 0, "%s", err.msg);
  tt_scratch(&sc);
  nne__sbuf_t out = {0};
  nne__align_t al = {0};
  ck_assert_int_eq(
      nne__norm_run(n, &sc, text, strlen(text), NULL, &out, &al, &err), 0);
  snprintf(tt_out, sizeof tt_out, "%.*s", (int)out.n, out.p ? out.p : "");
  free(out.p);
  free(al.v);
  nne__scratch_free(&sc);
  nne__norm_free(n);
  json_decref(j);
  return tt_out;
}

/* The normalizer's output with its alignment: each output character and
 * the input bytes it came from, "c:start-end", joined with ' '. The
 * output must be what the normalizer gives without an alignment. */
static inline const char *tt_norm_align(const char *json, const char *text) {
  nne__path_t path = {"normalizer", 10};
  nne_err_t err = {0};
  nne__norm_t *n;
  nne__scratch_t sc;
  json_t *j = tt_json(json);
  size_t len = strlen(text), at = 0, adv;
  char plain[1024];
  snprintf(plain, sizeof plain, "%s", tt_norm(json, text));
  ck_assert_msg(nne__norm_load(j, &n, &path, &err) == 0, "%s", err.msg);
  tt_scratch(&sc);
  nne__sbuf_t out = {0};
  nne__align_t in = {0}, al = {0};
  ck_assert_int_eq(nne__align_identity(&in, text, len, 0), 0);
  ck_assert_int_eq(nne__norm_run(n, &sc, text, len, in.v, &out, &al, &err), 0);
  ck_assert_uint_eq(al.n, out.n);
  ck_assert_msg(out.n == strlen(plain) && (!out.n || !memcmp(out.p, plain, out.n)),
                "aligned output differs: %.*s vs %s", (int)out.n, out.p, plain);
  tt_out[0] = '\0';
  for (size_t i = 0; i < out.n; i += adv) {
    nne__u8dec(out.p + i, &adv);
    for (size_t k = 1; k < adv; k++) /* a character's bytes align alike */
      ck_assert(al.v[2 * (i + k)] == al.v[2 * i] &&
                al.v[2 * (i + k) + 1] == al.v[2 * i + 1]);
    at += (size_t)snprintf(tt_out + at, sizeof tt_out - at, "%s%.*s:%u-%u",
                           i ? " " : "", (int)adv, out.p + i, al.v[2 * i],
                           al.v[2 * i + 1]);
  }
  free(out.p);
  free(in.v);
  free(al.v);
  nne__scratch_free(&sc);
  nne__norm_free(n);
  json_decref(j);
  return tt_out;
}

/* The pre-tokenizer's pieces, joined with '|'. */
static inline const char *tt_pretok(const char *json, const char *text) {
  nne__path_t path = {"pre_tokenizer", 13};
  nne_err_t err = {0};
  nne__pretok_t *p;
  nne__scratch_t sc;
  nne__bytelevel_t bl;
  json_t *j = tt_json(json);
  nne__bytelevel_init(&bl);
  ck_assert_msg(nne__pretok_load(j, &p, &path, &err) == 0, "%s", err.msg);
  tt_scratch(&sc);
  ck_assert_int_eq(nne__pieces_add(&sc.a, text, strlen(text), true, NULL), 0);
  ck_assert_int_eq(nne__pretok_run(p, &bl, &sc, &err), 0);
  size_t at = 0;
  tt_out[0] = '\0';
  for (size_t i = 0; i < sc.a.n; i++)
    at += (size_t)snprintf(tt_out + at, sizeof tt_out - at, "%s%.*s",
                           i ? "|" : "", (int)sc.a.v[i].len,
                           sc.a.text.p + sc.a.v[i].off);
  nne__scratch_free(&sc);
  nne__pretok_free(p);
  json_decref(j);
  return tt_out;
}

/* The decoder's output for tokens given joined with '|', its list joined
 * with '|' again. */
static inline const char *tt_decode(const char *json, const char *tokens) {
  nne__path_t path = {"decoder", 7};
  nne_err_t err = {0};
  nne__dec_t *d;
  nne__bytelevel_t bl;
  nne__strs_t l = {0};
  json_t *j = tt_json(json);
  nne__bytelevel_init(&bl);
  ck_assert_msg(nne__dec_load(j, &d, &path, &err) == 0, "%s", err.msg);
  for (const char *s = tokens;;) {
    const char *bar = strchr(s, '|');
    size_t n = bar ? (size_t)(bar - s) : strlen(s);
    ck_assert_int_eq(nne__strs_add(&l, s, n), 0);
    if (!bar)
      break;
    s = bar + 1;
  }
  pcre2_match_data *md = pcre2_match_data_create(16, NULL);
  ck_assert_int_eq(nne__dec_run(d, &bl, md, &l, &err), 0);
  size_t at = 0;
  tt_out[0] = '\0';
  for (size_t i = 0; i < l.n; i++)
    at += (size_t)snprintf(tt_out + at, sizeof tt_out - at, "%s%.*s",
                           i ? "|" : "", (int)l.len[i], l.text.p + l.off[i]);
  pcre2_match_data_free(md);
  nne__strs_free(&l);
  nne__dec_free(d);
  json_decref(j);
  return tt_out;
}

static inline nne_tokenizer_t *tt_load(const char *json) {
  nne_err_t err = {0};
  nne_tokenizer_t *t;
  ck_assert_msg(nne_tokenizer_load_json(json, strlen(json), &t, &err) == 0,
                "%s", err.msg);
  return t;
}

/* The load error's message ("" when it loads). */
static inline const char *tt_load_error(const char *json, int *code) {
  nne_err_t err = {0};
  nne_tokenizer_t *t;
  int rc = nne_tokenizer_load_json(json, strlen(json), &t, &err);
  if (code)
    *code = rc;
  if (rc == 0) {
    nne_tokenizer_free(t);
    return "";
  }
  ck_assert_ptr_null(t);
  snprintf(tt_out, sizeof tt_out, "%s", err.msg);
  return tt_out;
}

/* The ids of text, joined with ' '. */
static inline const char *tt_ids(const nne_tokenizer_t *t, const char *text,
                                 unsigned flags) {
  nne_err_t err = {0};
  int32_t *ids;
  size_t n, at = 0;
  ck_assert_msg(
      nne_tokenizer_encode(t, text, strlen(text), flags, &ids, &n, &err) == 0,
      "%s", err.msg);
  tt_out[0] = '\0';
  /* Only the first few thousand ids fit; that is enough to compare. */
  for (size_t i = 0; i < n && at < sizeof tt_out - 16; i++)
    at += (size_t)snprintf(tt_out + at, sizeof tt_out - at, "%s%d",
                           i ? " " : "", ids[i]);
  free(ids);
  return tt_out;
}

/* Each token of text (and pair, when not NULL) with its offsets and
 * type id, "id@start-end/type" ("+" after the id for the pair's tokens,
 * "*" for the template's), joined with ' '. */
static inline const char *tt_offsets(const nne_tokenizer_t *t,
                                     const char *text, const char *pair,
                                     unsigned flags) {
  nne_err_t err = {0};
  nne_tokenizer_encoding_t e;
  size_t at = 0;
  ck_assert_msg(nne_tokenizer_encode_pair(t, text, strlen(text), pair,
                                          pair ? strlen(pair) : 0,
                                          flags | NNE_TOK_OFFSETS, &e,
                                          &err) == 0,
                "%s", err.msg);
  tt_out[0] = '\0';
  for (size_t i = 0; i < e.n && at < sizeof tt_out - 48; i++)
    at += (size_t)snprintf(
        tt_out + at, sizeof tt_out - at, "%s%d%s@%u-%u/%u", i ? " " : "",
        e.ids[i],
        e.seq[i] == 1 ? "+" : e.seq[i] == NNE_TOK_SEQ_TEMPLATE ? "*" : "",
        e.offsets[2 * i], e.offsets[2 * i + 1], e.type_ids[i]);
  nne_tokenizer_encoding_free(&e);
  return tt_out;
}

#endif /* NNE_TEST_TEXT_TEST_H */
