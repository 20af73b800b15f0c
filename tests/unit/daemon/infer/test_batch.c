/* test_batch.c — daemon/infer/batch.{h,c}: token rows off the wire into one
 * padded [B, S] batch.
 *
 * Rows are encoded with nanopb exactly as a client sends them (repeated
 * TokenRow / MaskRow submessages of a ForwardRequest, ids packed or not)
 * and decoded through nne_rows_dec_cb, so the flattened values and row
 * lengths are what a real request yields. Every nne_batch_check failure is
 * provoked on its own and must come back with its code and a message that
 * names the row or field, with the group's prefix when the batch has
 * several groups (a trace's invokes). nne_batch_build must lay rows out
 * left- or right-padded with the pad id, give each row's last real
 * position, and make a mask only when one is needed.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "infer/batch.h"
#include "nne_pb.h"
#include "nnedit/v1/inference.pb.h"
#include "registry.h"
#include "unit_main.h"

#define PAD_NONE nnedit_v1_Padding_PADDING_UNSPECIFIED
#define PAD_LEFT nnedit_v1_Padding_PADDING_LEFT
#define PAD_RIGHT nnedit_v1_Padding_PADDING_RIGHT

/* ---- encoding rows the way a client does ------------------------------- */

/* Rows of a repeated TokenRow / MaskRow field, given as -1-terminated
 * lists. TokenRow and MaskRow each have one repeated integer field 1, so
 * one encoder serves both (desc says which). */
typedef struct rows_src {
  const int64_t *const *rows;
  size_t n;
  const pb_msgdesc_t *desc;
  bool unpacked; /* one varint per value (proto2 style), not packed */
} rows_src_t;

static size_t row_len(const int64_t *r) {
  size_t n = 0;
  while (r[n] != -1)
    n++;
  return n;
}

static bool enc_unpacked(pb_ostream_t *s, const pb_field_t *f,
                         void *const *arg) {
  const nne_pb_i64_enc_t *st = *arg;
  size_t i;
  for (i = 0; i < st->n; i++)
    if (!pb_encode_tag(s, PB_WT_VARINT, f->tag) ||
        !pb_encode_varint(s, (uint64_t)st->v[i]))
      return false;
  return true;
}

static bool enc_rows(pb_ostream_t *s, const pb_field_t *f, void *const *arg) {
  const rows_src_t *src = *arg;
  size_t i;
  for (i = 0; i < src->n; i++) {
    /* TokenRow (ids, text) and MaskRow (values) begin with their integer
     * list's callback; room for TokenRow's text callback, left unset. */
    pb_callback_t row[2];
    nne_pb_i64_enc_t vals = {src->rows[i], row_len(src->rows[i])};
    memset(row, 0, sizeof row);
    NNE_PB_ENC(row[0], src->unpacked ? enc_unpacked : nne_pb_i64_enc, &vals);
    if (!pb_encode_tag_for_field(s, f) ||
        !pb_encode_submessage(s, src->desc, row))
      return false;
  }
  return true;
}

/* A ForwardRequest carrying the rows, encoded, then decoded into ids and
 * mask (already initialised by the caller). Returns pb_decode's verdict. */
static bool wire_roundtrip(const rows_src_t *ids_src,
                           const rows_src_t *mask_src, nne_rows_dec_t *ids,
                           nne_rows_dec_t *mask) {
  nnedit_v1_ForwardRequest out = nnedit_v1_ForwardRequest_init_zero;
  nnedit_v1_ForwardRequest in = nnedit_v1_ForwardRequest_init_zero;
  static uint8_t buf[1 << 16];
  pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof buf);
  pb_istream_t is;

  snprintf(out.model, sizeof out.model, "gpt2");
  if (ids_src != NULL)
    NNE_PB_ENC(out.input_ids, enc_rows, ids_src);
  if (mask_src != NULL)
    NNE_PB_ENC(out.attention_mask, enc_rows, mask_src);
  ck_assert_msg(pb_encode(&os, nnedit_v1_ForwardRequest_fields, &out), "%s",
                PB_GET_ERROR(&os));
  NNE_PB_DEC(in.input_ids, nne_rows_dec_cb, ids);
  if (mask != NULL)
    NNE_PB_DEC(in.attention_mask, nne_rows_dec_cb, mask);
  is = pb_istream_from_buffer(buf, os.bytes_written);
  return pb_decode(&is, nnedit_v1_ForwardRequest_fields, &in);
}

static const rows_src_t *tok(const int64_t *const *rows, size_t n) {
  static rows_src_t src[8];
  static int next;
  rows_src_t *s = &src[next++ % 8];
  s->rows = rows;
  s->n = n;
  s->desc = nnedit_v1_TokenRow_fields;
  s->unpacked = false;
  return s;
}

static const rows_src_t *msk(const int64_t *const *rows, size_t n) {
  rows_src_t *s = (rows_src_t *)tok(rows, n);
  s->desc = nnedit_v1_MaskRow_fields;
  return s;
}

static void dec_init(nne_rows_dec_t *ids, nne_rows_dec_t *mask) {
  nne_rows_dec_init(ids, nnedit_v1_TokenRow_ids_tag, 64, 4096);
  if (mask != NULL)
    nne_rows_dec_init(mask, nnedit_v1_MaskRow_values_tag, 64, 4096);
}

/* Decodes ids (and mask, may be NULL) and fails the test if decoding does. */
static void decode(const int64_t *const *ids_rows, size_t n_ids,
                   const int64_t *const *mask_rows, size_t n_mask,
                   nne_rows_dec_t *ids, nne_rows_dec_t *mask) {
  dec_init(ids, mask);
  ck_assert(wire_roundtrip(tok(ids_rows, n_ids),
                           mask_rows ? msk(mask_rows, n_mask) : NULL, ids,
                           mask));
}

/* The model the rows are checked against: the fixture GPT-2's vocabulary,
 * with small limits so that they are easy to reach. */
static nne_model_entry_t entry;

static void setup(void) {
  memset(&entry, 0, sizeof entry);
  snprintf(entry.name, sizeof entry.name, "gpt2");
  entry.state = NNE_MODEL_LOADED;
  entry.vocab_size = 1000;
  entry.max_batch = 4;
  entry.max_seq_len = 8;
  entry.pad_token_id = 7;
}

static nne_batch_group_t group(nne_rows_dec_t *ids,
                               const nne_rows_dec_t *mask, const char *prefix) {
  nne_batch_group_t g = {0};
  g.ids = ids;
  g.mask = mask;
  g.prefix = prefix;
  return g;
}

/* ---- decoding ------------------------------------------------------------ */

START_TEST(test_decode_flattens_rows) {
  static const int64_t r0[] = {5, 300, 999, -1}, r1[] = {0, -1},
                       r2[] = {1, 2, 3, 4, 5, -1};
  const int64_t *rows[] = {r0, r1, r2};
  static const int64_t m0[] = {1, 1, 0, -1};
  const int64_t *mrows[] = {m0};
  nne_rows_dec_t ids, mask;
  static const int64_t flat[] = {5, 300, 999, 0, 1, 2, 3, 4, 5};
  size_t i;

  decode(rows, 3, mrows, 1, &ids, &mask);
  ck_assert_uint_eq(ids.n, 3);
  ck_assert_uint_eq(ids.len[0], 3);
  ck_assert_uint_eq(ids.len[1], 1);
  ck_assert_uint_eq(ids.len[2], 5);
  ck_assert_uint_eq(ids.vals.n, 9);
  for (i = 0; i < 9; i++)
    ck_assert_int_eq(ids.vals.v[i], flat[i]);
  ck_assert_uint_eq(mask.n, 1);
  ck_assert_uint_eq(mask.len[0], 3);
  ck_assert_int_eq(mask.vals.v[2], 0);
  ck_assert(!ids.overflow && !mask.overflow);
  nne_rows_free(&ids);
  nne_rows_free(&mask);
  /* Freed state is reusable as after init (and freeing twice is harmless). */
  ck_assert_ptr_null(ids.len);
  ck_assert_uint_eq(ids.n, 0);
  nne_rows_free(&ids);
}
END_TEST

START_TEST(test_decode_unpacked_and_empty_rows) {
  /* proto3 writers pack repeated ints, but a parser must accept both; an
   * empty TokenRow is still a row (of length 0), which check refuses. */
  static const int64_t r0[] = {11, 12, -1}, r1[] = {-1}, r2[] = {13, -1};
  const int64_t *rows[] = {r0, r1, r2};
  rows_src_t src = {rows, 3, nnedit_v1_TokenRow_fields, true};
  nne_rows_dec_t ids;
  nne_batch_group_t g = {0};
  nne_err_t err;

  nne_rows_dec_init(&ids, nnedit_v1_TokenRow_ids_tag, 64, 4096);
  ck_assert(wire_roundtrip(&src, NULL, &ids, NULL));
  ck_assert_uint_eq(ids.n, 3);
  ck_assert_uint_eq(ids.len[0], 2);
  ck_assert_uint_eq(ids.len[1], 0);
  ck_assert_uint_eq(ids.len[2], 1);
  ck_assert_int_eq(ids.vals.v[2], 13);
  g = group(&ids, NULL, "");
  ck_assert_int_eq(nne_batch_check(&g, 1, "input_ids", PAD_LEFT, &entry, &err),
                   NNE_EINVAL);
  ck_assert_str_eq(err.msg, "input_ids[1]: the row is empty");
  nne_rows_free(&ids);
}
END_TEST

START_TEST(test_decode_limits) {
  static const int64_t r[] = {1, 2, 3, -1};
  const int64_t *rows[] = {r, r, r};
  nne_rows_dec_t ids;

  /* Two rows allowed: the third fails the decode and says why. */
  nne_rows_dec_init(&ids, nnedit_v1_TokenRow_ids_tag, 2, 4096);
  ck_assert(!wire_roundtrip(tok(rows, 3), NULL, &ids, NULL));
  ck_assert(ids.overflow);
  ck_assert(!ids.vals.overflow);
  nne_rows_free(&ids);
  /* Eight values allowed in all: the third row's values overflow. */
  nne_rows_dec_init(&ids, nnedit_v1_TokenRow_ids_tag, 64, 8);
  ck_assert(!wire_roundtrip(tok(rows, 3), NULL, &ids, NULL));
  ck_assert(!ids.overflow);
  ck_assert(ids.vals.overflow);
  nne_rows_free(&ids);
  /* Exactly at both limits decodes. */
  nne_rows_dec_init(&ids, nnedit_v1_TokenRow_ids_tag, 3, 9);
  ck_assert(wire_roundtrip(tok(rows, 3), NULL, &ids, NULL));
  ck_assert_uint_eq(ids.n, 3);
  nne_rows_free(&ids);
}
END_TEST

/* ---- checks ----------------------------------------------------------------
 */

/* One group, prefix "", what "input_ids": the code and the exact message. */
static void expect_check(const int64_t *const *rows, size_t n,
                         const int64_t *const *mrows, size_t nm, int padding,
                         int code, const char *msg) {
  nne_rows_dec_t ids, mask;
  nne_batch_group_t g = {0};
  nne_err_t err;
  decode(rows, n, mrows, nm, &ids, &mask);
  g = group(&ids, &mask, "");
  memset(&err, 0, sizeof err);
  ck_assert_int_eq(nne_batch_check(&g, 1, "input_ids", padding, &entry, &err),
                   code);
  if (code != 0) {
    ck_assert_int_eq(err.code, code);
    ck_assert_str_eq(err.msg, msg);
  }
  nne_rows_free(&ids);
  nne_rows_free(&mask);
}

START_TEST(test_check_each_failure) {
  static const int64_t a[] = {1, 2, 3, -1}, b[] = {4, 5, -1},
                       nine[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, -1},
                       eight[] = {1, 2, 3, 4, 5, 6, 7, 8, -1},
                       oov[] = {1, 1000, -1}, neg[] = {1, 2, -5, -1};
  static const int64_t m_ok[] = {1, 1, 1, -1}, m_short[] = {1, 1, -1},
                       m_two[] = {1, 2, 1, -1}, m_neg[] = {0, 1, -2, -1},
                       m_pad[] = {0, 0, -1}, m_ab[] = {0, 1, 1, -1};
  const int64_t *none[] = {NULL};
  const int64_t *five[] = {a, a, a, a, a};
  const int64_t *four[] = {a, a, a, a};
  const int64_t *r_long[] = {a, nine};
  const int64_t *r_max[] = {a, eight};
  const int64_t *r_oov[] = {a, oov};
  const int64_t *r_neg[] = {neg};
  const int64_t *r_ab[] = {a, b};
  const int64_t *m1[] = {m_ok};
  const int64_t *m_len[] = {m_ok, m_ok};
  const int64_t *m_val[] = {m_ok, m_two};
  const int64_t *m_negv[] = {m_neg, m_pad};
  const int64_t *m_all[] = {m_ok, m_pad};
  const int64_t *m_fine[] = {m_ab, m_short};

  expect_check(none, 0, NULL, 0, PAD_NONE, NNE_EINVAL,
               "input_ids: the batch is empty");
  expect_check(five, 5, NULL, 0, PAD_NONE, NNE_ERESOURCE,
               "input_ids: 5 rows exceed the model's max_batch 4");
  expect_check(four, 4, NULL, 0, PAD_NONE, 0, NULL); /* exactly max_batch */
  expect_check(r_long, 2, NULL, 0, PAD_LEFT, NNE_ERESOURCE,
               "input_ids[1]: 9 tokens exceed the model's max_seq_len 8");
  expect_check(r_max, 2, NULL, 0, PAD_LEFT, 0, NULL); /* exactly max_seq_len */
  expect_check(r_oov, 2, NULL, 0, PAD_LEFT, NNE_EINVAL,
               "input_ids[1][1]: token id 1000 is outside the vocabulary "
               "[0, 1000)");
  expect_check(r_neg, 1, NULL, 0, PAD_NONE, NNE_EINVAL,
               "input_ids[0][2]: token id -5 is outside the vocabulary "
               "[0, 1000)");
  expect_check(r_ab, 2, m1, 1, PAD_LEFT, NNE_EINVAL,
               "attention_mask: 1 rows for 2 input_ids rows");
  expect_check(r_ab, 2, m_len, 2, PAD_LEFT, NNE_EINVAL,
               "attention_mask[1]: 3 values for 2 tokens");
  expect_check(four, 2, m_val, 2, PAD_NONE, NNE_EINVAL,
               "attention_mask[1][1]: value 2 is not 0 or 1");
  /* A negative int32 travels as a ten-byte varint and must still be seen
   * as negative. */
  expect_check(four, 2, m_negv, 2, PAD_NONE, NNE_EINVAL,
               "attention_mask[0][2]: value -2 is not 0 or 1");
  expect_check(r_ab, 2, m_all, 2, PAD_LEFT, NNE_EINVAL,
               "attention_mask[1]: every position is padding");
  expect_check(r_ab, 2, m_fine, 2, PAD_LEFT, 0, NULL);
  expect_check(r_ab, 2, NULL, 0, PAD_NONE, NNE_EINVAL,
               "input_ids: rows differ in length (row 1 has 2 tokens, row "
               "0 has 3); set padding to PADDING_LEFT or PADDING_RIGHT");
  expect_check(r_ab, 2, NULL, 0, PAD_RIGHT, 0, NULL);
}
END_TEST

START_TEST(test_check_order) {
  /* Several things wrong at once: the documented order decides which one
   * is reported (limits before tokens before masks before raggedness). */
  static const int64_t oov[] = {5000, -1},
                       nine[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, -1};
  static const int64_t m_bad[] = {3, -1};
  const int64_t *rows[] = {oov, nine};
  const int64_t *mrows[] = {m_bad};
  expect_check(rows, 2, mrows, 1, PAD_NONE, NNE_ERESOURCE,
               "input_ids[1]: 9 tokens exceed the model's max_seq_len 8");
  rows[1] = oov;
  expect_check(rows, 2, mrows, 1, PAD_NONE, NNE_EINVAL,
               "input_ids[0][0]: token id 5000 is outside the vocabulary "
               "[0, 1000)");
}
END_TEST

START_TEST(test_check_names_rows_within_their_group) {
  /* A trace: two invokes of two rows each. Rows are counted inside their
   * group and the message carries the group's prefix; the batch limit is
   * on all groups together. */
  static const int64_t a[] = {1, 2, 3, -1}, oov[] = {1, 2, 4000, -1},
                       m_bad[] = {1, 0, 5, -1}, m_ok[] = {1, 1, 1, -1},
                       m_pad[] = {0, 0, 0, -1};
  const int64_t *g0_rows[] = {a, a}, *g1_rows[] = {a, oov};
  const int64_t *g1_mask[] = {m_ok, m_bad};
  const int64_t *g1_padmask[] = {m_pad, m_ok};
  nne_rows_dec_t ids[3], mask[3];
  nne_batch_group_t g[3] = {{0}};
  nne_err_t err;
  int i;

  decode(g0_rows, 2, NULL, 0, &ids[0], &mask[0]);
  decode(g1_rows, 2, NULL, 0, &ids[1], &mask[1]);
  g[0] = group(&ids[0], &mask[0], "traces[0].invokes[0].");
  g[1] = group(&ids[1], &mask[1], "traces[0].invokes[1].");
  ck_assert_int_eq(nne_batch_check(g, 2, "traces[0]", PAD_NONE, &entry, &err),
                   NNE_EINVAL);
  ck_assert_str_eq(err.msg, "traces[0].invokes[1].input_ids[1][2]: token id "
                            "4000 is outside the vocabulary [0, 1000)");
  nne_rows_free(&ids[1]);
  nne_rows_free(&mask[1]);

  g1_rows[1] = a;
  decode(g1_rows, 2, g1_mask, 2, &ids[1], &mask[1]);
  ck_assert_int_eq(nne_batch_check(g, 2, "traces[0]", PAD_NONE, &entry, &err),
                   NNE_EINVAL);
  ck_assert_str_eq(err.msg, "traces[0].invokes[1].attention_mask[1][2]: "
                            "value 5 is not 0 or 1");
  nne_rows_free(&ids[1]);
  nne_rows_free(&mask[1]);

  decode(g1_rows, 2, g1_padmask, 2, &ids[1], &mask[1]);
  ck_assert_int_eq(nne_batch_check(g, 2, "traces[0]", PAD_NONE, &entry, &err),
                   NNE_EINVAL);
  ck_assert_str_eq(err.msg, "traces[0].invokes[1].attention_mask[0]: every "
                            "position is padding");

  /* 2 + 2 + 1 rows: over max_batch 4 only together; named by `what`. */
  decode(g0_rows, 1, NULL, 0, &ids[2], &mask[2]);
  g[2] = group(&ids[2], &mask[2], "traces[0].invokes[2].");
  ck_assert_int_eq(nne_batch_check(g, 3, "traces[0]", PAD_NONE, &entry, &err),
                   NNE_ERESOURCE);
  ck_assert_str_eq(err.msg, "traces[0]: 5 rows exceed the model's max_batch 4");
  nne_rows_free(&ids[2]);
  nne_rows_free(&mask[2]);

  /* Ragged rows across groups without padding: the batch as a whole is
   * at fault, named by `what`. Unlike every other message, this one
   * numbers rows across the batch, not within their group: "row 2" is
   * traces[0].invokes[2].input_ids[0] (invokes 1 and 2 are checked). */
  {
    static const int64_t two[] = {8, 9, -1};
    const int64_t *short_rows[] = {two};
    nne_rows_free(&ids[1]);
    nne_rows_free(&mask[1]);
    decode(g1_rows, 2, NULL, 0, &ids[1], &mask[1]);
    decode(short_rows, 1, NULL, 0, &ids[2], &mask[2]);
  }
  ck_assert_int_eq(nne_batch_check(g, 3, "traces[0]", PAD_NONE, &entry, &err),
                   NNE_ERESOURCE); /* 5 rows: the limit still comes first */
  ck_assert_int_eq(
      nne_batch_check(&g[1], 2, "traces[0]", PAD_NONE, &entry, &err),
      NNE_EINVAL);
  ck_assert_str_eq(err.msg, "traces[0]: rows differ in length (row 2 has 2 "
                            "tokens, row 0 has 3); set padding to "
                            "PADDING_LEFT or PADDING_RIGHT");
  ck_assert_int_eq(
      nne_batch_check(&g[1], 2, "traces[0]", PAD_LEFT, &entry, &err), 0);
  for (i = 0; i < 3; i++) {
    nne_rows_free(&ids[i]);
    nne_rows_free(&mask[i]);
  }
}
END_TEST

/* ---- building
 * ---------------------------------------------------------------- */

START_TEST(test_build_left_padding) {
  static const int64_t r0[] = {10, 11, 12, 13, -1}, r1[] = {20, 21, -1},
                       r2[] = {30, -1};
  const int64_t *rows[] = {r0, r1, r2};
  static const int64_t want_ids[] = {10, 11, 12, 13, /* row 0 */
                                     7,  7,  20, 21, /* row 1 */
                                     7,  7,  7,  30};
  static const int64_t want_mask[] = {1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1};
  nne_rows_dec_t ids, mask;
  nne_batch_group_t g = {0};
  nne_batch_t b;
  nne_err_t err;
  int i;

  decode(rows, 3, NULL, 0, &ids, &mask);
  g = group(&ids, &mask, "");
  ck_assert_int_eq(nne_batch_check(&g, 1, "input_ids", PAD_LEFT, &entry, &err),
                   0);
  ck_assert_int_eq(
      nne_batch_build(&b, &g, 1, PAD_LEFT, entry.pad_token_id, &err), 0);
  ck_assert_int_eq(b.B, 3);
  ck_assert_int_eq(b.S, 4);
  ck_assert_ptr_nonnull(b.mask); /* ragged rows need one */
  for (i = 0; i < 12; i++) {
    ck_assert_int_eq(b.ids[i], want_ids[i]);
    ck_assert_int_eq(b.mask[i], want_mask[i]);
  }
  /* Left padding: every row's last real token is at the end. */
  for (i = 0; i < 3; i++)
    ck_assert_int_eq(b.last_pos[i], 3);
  nne_batch_free(&b);
  ck_assert_ptr_null(b.ids);
  ck_assert_ptr_null(b.mask);
  ck_assert_ptr_null(b.last_pos);
  nne_batch_free(&b); /* twice is harmless */
  nne_rows_free(&ids);
  nne_rows_free(&mask);
}
END_TEST

START_TEST(test_build_right_padding) {
  static const int64_t r0[] = {20, 21, -1}, r1[] = {10, 11, 12, 13, -1},
                       r2[] = {30, -1};
  const int64_t *rows[] = {r0, r1, r2};
  static const int64_t want_ids[] = {20, 21, 7,  7,  /* row 0 */
                                     10, 11, 12, 13, /* row 1 */
                                     30, 7,  7,  7};
  static const int64_t want_mask[] = {1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0};
  static const int64_t want_last[] = {1, 3, 0};
  nne_rows_dec_t ids, mask;
  nne_batch_group_t g = {0};
  nne_batch_t b;
  nne_err_t err;
  int i;

  decode(rows, 3, NULL, 0, &ids, &mask);
  g = group(&ids, &mask, "");
  ck_assert_int_eq(nne_batch_build(&b, &g, 1, PAD_RIGHT, 7, &err), 0);
  ck_assert_int_eq(b.B, 3);
  ck_assert_int_eq(b.S, 4);
  ck_assert_ptr_nonnull(b.mask);
  for (i = 0; i < 12; i++) {
    ck_assert_int_eq(b.ids[i], want_ids[i]);
    ck_assert_int_eq(b.mask[i], want_mask[i]);
  }
  for (i = 0; i < 3; i++)
    ck_assert_int_eq(b.last_pos[i], want_last[i]);
  nne_batch_free(&b);
  nne_rows_free(&ids);
  nne_rows_free(&mask);
}
END_TEST

START_TEST(test_build_mask_only_when_needed) {
  static const int64_t r0[] = {1, 2, 3, -1}, r1[] = {4, 5, 6, -1};
  static const int64_t m0[] = {1, 1, 1, -1}, m1[] = {0, 1, 1, -1};
  const int64_t *rows[] = {r0, r1};
  const int64_t *mrows[] = {m0, m1};
  nne_rows_dec_t ids, mask;
  nne_batch_group_t g = {0};
  nne_batch_t b;
  nne_err_t err;
  int pad, i;

  /* Equal rows and no mask: the model's forward gets none, whatever the
   * padding side; every row's last position is the end. */
  decode(rows, 2, NULL, 0, &ids, &mask);
  g = group(&ids, &mask, "");
  for (pad = PAD_NONE; pad <= PAD_RIGHT; pad++) {
    ck_assert_int_eq(nne_batch_build(&b, &g, 1, pad, 7, &err), 0);
    ck_assert_ptr_null(b.mask);
    ck_assert_int_eq(b.S, 3);
    for (i = 0; i < 6; i++)
      ck_assert_int_eq(b.ids[i], i + 1);
    ck_assert_int_eq(b.last_pos[0], 2);
    ck_assert_int_eq(b.last_pos[1], 2);
    nne_batch_free(&b);
  }
  nne_rows_free(&ids);
  nne_rows_free(&mask);

  /* Equal rows with the client's own mask: it is kept as given, and a row's
   * last position is its last 1. */
  decode(rows, 2, mrows, 2, &ids, &mask);
  g = group(&ids, &mask, "");
  ck_assert_int_eq(nne_batch_check(&g, 1, "input_ids", PAD_NONE, &entry, &err),
                   0);
  ck_assert_int_eq(nne_batch_build(&b, &g, 1, PAD_NONE, 7, &err), 0);
  ck_assert_ptr_nonnull(b.mask);
  ck_assert_int_eq(b.mask[0], 1);
  ck_assert_int_eq(b.mask[3], 0);
  ck_assert_int_eq(b.mask[4], 1);
  ck_assert_int_eq(b.last_pos[0], 2);
  ck_assert_int_eq(b.last_pos[1], 2);
  nne_batch_free(&b);
  nne_rows_free(&ids);
  nne_rows_free(&mask);
}
END_TEST

START_TEST(test_build_groups_concatenate) {
  /* A trace's invokes: rows in group order; one group's mask is kept, the
   * group without one gets ones on its real tokens. */
  static const int64_t a[] = {1, 2, -1}, b3[] = {3, 4, 5, -1}, c[] = {6, -1};
  static const int64_t ma[] = {0, 1, -1};
  const int64_t *g0_rows[] = {a}, *g0_mask[] = {ma};
  const int64_t *g1_rows[] = {b3, c};
  static const int64_t want_ids[] = {7, 1, 2, 3, 4, 5, 7, 7, 6};
  static const int64_t want_mask[] = {0, 0, 1, 1, 1, 1, 0, 0, 1};
  nne_rows_dec_t ids[2], mask[2];
  nne_batch_group_t g[2];
  nne_batch_t b;
  nne_err_t err;
  int i;

  decode(g0_rows, 1, g0_mask, 1, &ids[0], &mask[0]);
  decode(g1_rows, 2, NULL, 0, &ids[1], &mask[1]);
  g[0] = group(&ids[0], &mask[0], "traces[0].invokes[0].");
  g[1] = group(&ids[1], &mask[1], "traces[0].invokes[1].");
  ck_assert_int_eq(nne_batch_check(g, 2, "traces[0]", PAD_LEFT, &entry, &err),
                   0);
  ck_assert_int_eq(nne_batch_build(&b, g, 2, PAD_LEFT, 7, &err), 0);
  ck_assert_int_eq(b.B, 3);
  ck_assert_int_eq(b.S, 3);
  for (i = 0; i < 9; i++) {
    ck_assert_int_eq(b.ids[i], want_ids[i]);
    ck_assert_int_eq(b.mask[i], want_mask[i]);
  }
  for (i = 0; i < 3; i++)
    ck_assert_int_eq(b.last_pos[i], 2);
  nne_batch_free(&b);
  for (i = 0; i < 2; i++) {
    nne_rows_free(&ids[i]);
    nne_rows_free(&mask[i]);
  }
}
END_TEST

static Suite *batch_suite(void) {
  Suite *s = suite_create("batch");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, test_decode_flattens_rows);
  tcase_add_test(tc, test_decode_unpacked_and_empty_rows);
  tcase_add_test(tc, test_decode_limits);
  tcase_add_test(tc, test_check_each_failure);
  tcase_add_test(tc, test_check_order);
  tcase_add_test(tc, test_check_names_rows_within_their_group);
  tcase_add_test(tc, test_build_left_padding);
  tcase_add_test(tc, test_build_right_padding);
  tcase_add_test(tc, test_build_mask_only_when_needed);
  tcase_add_test(tc, test_build_groups_concatenate);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return nne_test_run_suite(batch_suite());
}
