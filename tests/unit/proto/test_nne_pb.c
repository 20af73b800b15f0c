/* test_nne_pb.c — proto/nne_pb.{h,c}: the nanopb callbacks and the gRPC byte
 * buffer ends.
 *
 * Every decode goes through nne_pb_decode_bb on real grpc byte buffers whose
 * bytes are spread over several slices (one byte each, uneven pieces with an
 * empty slice, seven-byte pieces), which is what the slice-walking reader is
 * for. Encodings are cross-checked with plain nanopb, and some inputs are
 * encoded by hand (unpacked repeated ints, malformed messages). The last test
 * checks that Debian's prebuilt nanopb runtime agrees with the headers we
 * compile against about pb_size_t and the field iterator.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>

#include <pb_common.h>

#include "nne_pb.h"
#include "nnedit/v1/inference.pb.h"
#include "nnedit/v1/models.pb.h"
#include "nnedit/v1/tensor.pb.h"

/* ---- byte buffers ------------------------------------------------------------ */

enum { SPLIT_ONE, SPLIT_BYTES, SPLIT_UNEVEN, SPLIT_SEVEN, SPLIT_MODES };

/* A refcounted slice holding a copy of p[n]. grpc_slice_buffer_add merges
 * small inlined slices into their neighbour; refcounted ones (even empty)
 * stay separate, so the buffer really has the cuts asked for. */
static grpc_slice own_slice(const uint8_t *p, size_t n) {
  void *copy = malloc(n ? n : 1);
  ck_assert_ptr_nonnull(copy);
  if (n)
    memcpy(copy, p, n);
  return grpc_slice_new(copy, n, free);
}

/* A raw byte buffer holding p[n], cut into slices by `mode`. */
static grpc_byte_buffer *bb_split(const uint8_t *p, size_t n, int mode) {
  grpc_slice *sl = malloc((n + 8) * sizeof *sl);
  grpc_byte_buffer *bb;
  size_t k = 0, pos, i;

  ck_assert_ptr_nonnull(sl);
  switch (mode) {
  case SPLIT_ONE:
    sl[k++] = own_slice(p, n);
    break;
  case SPLIT_BYTES:
    for (pos = 0; pos < n; pos++)
      sl[k++] = own_slice(p + pos, 1);
    break;
  case SPLIT_UNEVEN: {
    size_t a = n / 3, b = n > 2 ? 2 * n / 3 + 1 : n;
    sl[k++] = own_slice(p, a);
    sl[k++] = own_slice(p, 0); /* an empty slice in the middle */
    sl[k++] = own_slice(p + a, b - a);
    sl[k++] = own_slice(p + b, n - b);
    break;
  }
  case SPLIT_SEVEN:
    for (pos = 0; pos < n; pos += 7)
      sl[k++] = own_slice(p + pos, n - pos < 7 ? n - pos : 7);
    break;
  }
  bb = grpc_raw_byte_buffer_create(sl, k);
  ck_assert_ptr_nonnull(bb);
  /* Really several slices (the reader must walk them). */
  ck_assert_uint_eq(bb->data.raw.slice_buffer.count, k);
  ck_assert_uint_eq(grpc_byte_buffer_length(bb), n);
  for (i = 0; i < k; i++)
    grpc_slice_unref(sl[i]);
  free(sl);
  return bb;
}

/* The bytes of a byte buffer, malloc'd. */
static uint8_t *bb_flatten(grpc_byte_buffer *bb, size_t *n) {
  grpc_byte_buffer_reader r;
  grpc_slice all;
  uint8_t *out;
  ck_assert(grpc_byte_buffer_reader_init(&r, bb));
  all = grpc_byte_buffer_reader_readall(&r);
  *n = GRPC_SLICE_LENGTH(all);
  out = malloc(*n + 1);
  ck_assert_ptr_nonnull(out);
  memcpy(out, GRPC_SLICE_START_PTR(all), *n);
  grpc_slice_unref(all);
  grpc_byte_buffer_reader_destroy(&r);
  return out;
}

/* Decodes p[n] split by mode through nne_pb_decode_bb. */
static bool decode_split(const uint8_t *p, size_t n, int mode,
                         const pb_msgdesc_t *fields, void *msg, char *errbuf,
                         size_t errlen) {
  grpc_byte_buffer *bb = bb_split(p, n, mode);
  bool ok = nne_pb_decode_bb(bb, fields, msg, errbuf, errlen);
  grpc_byte_buffer_destroy(bb);
  return ok;
}

/* ---- hand encoding ----------------------------------------------------------- */

typedef struct wbuf {
  uint8_t b[4096];
  size_t n;
} wbuf_t;

static void w_varint(wbuf_t *w, uint64_t v) {
  while (v >= 0x80) {
    w->b[w->n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  w->b[w->n++] = (uint8_t)v;
}

static void w_tag(wbuf_t *w, uint32_t field, uint32_t wt) {
  w_varint(w, ((uint64_t)field << 3) | wt);
}

static void w_bytes(wbuf_t *w, uint32_t field, const void *p, size_t n) {
  w_tag(w, field, 2);
  w_varint(w, n);
  memcpy(w->b + w->n, p, n);
  w->n += n;
}

static void w_sub(wbuf_t *w, uint32_t field, const wbuf_t *sub) {
  w_bytes(w, field, sub->b, sub->n);
}

/* ---- ForwardRequest decoding state ----------------------------------------------- */

#define MAX_ROWS 8

typedef struct rows_dec {
  nne_pb_i64_dec_t rows[MAX_ROWS];
  size_t n_rows;
  size_t max_per_row;
} rows_dec_t;

static void rows_free(rows_dec_t *rd) {
  size_t i;
  for (i = 0; i < MAX_ROWS; i++)
    free(rd->rows[i].v);
  memset(rd, 0, sizeof *rd);
}

/* Decodes one TokenRow (ids) or MaskRow (values) the way the daemon does:
 * nne_pb_decode_int_list_msg, which also checks the field's wire type. */
static bool dec_row(pb_istream_t *s, const pb_field_t *f, void **arg,
                    const pb_msgdesc_t *row_fields) {
  rows_dec_t *rd = *arg;
  nne_pb_i64_dec_t *st;
  (void)f;
  if (rd->n_rows == MAX_ROWS)
    PB_RETURN_ERROR(s, "too many rows");
  st = &rd->rows[rd->n_rows++];
  st->max = rd->max_per_row;
  return nne_pb_decode_int_list_msg(s,
                                    row_fields == nnedit_v1_TokenRow_fields
                                        ? nnedit_v1_TokenRow_ids_tag
                                        : nnedit_v1_MaskRow_values_tag,
                                    st);
}

static bool dec_token_row(pb_istream_t *s, const pb_field_t *f, void **arg) {
  return dec_row(s, f, arg, nnedit_v1_TokenRow_fields);
}

static bool dec_mask_row(pb_istream_t *s, const pb_field_t *f, void **arg) {
  return dec_row(s, f, arg, nnedit_v1_MaskRow_fields);
}

static void req_prepare(nnedit_v1_ForwardRequest *req, rows_dec_t *ids,
                        rows_dec_t *mask, size_t max_per_row) {
  memset(req, 0, sizeof *req);
  memset(ids, 0, sizeof *ids);
  memset(mask, 0, sizeof *mask);
  ids->max_per_row = max_per_row;
  mask->max_per_row = max_per_row;
  NNE_PB_DEC(req->input_ids, dec_token_row, ids);
  NNE_PB_DEC(req->attention_mask, dec_mask_row, mask);
}

static void expect_row(const nne_pb_i64_dec_t *st, const int64_t *want,
                       size_t n) {
  size_t i;
  ck_assert_uint_eq(st->n, n);
  ck_assert(!st->overflow);
  for (i = 0; i < n; i++)
    ck_assert_msg(st->v[i] == want[i], "value %zu: %lld, want %lld", i,
                  (long long)st->v[i], (long long)want[i]);
}

/* ---- ForwardRequest encoding ------------------------------------------------------ */

typedef struct rows_enc {
  const int64_t *const *rows;
  const size_t *lens;
  nne_pb_i64_enc_t enc[MAX_ROWS];
  int mask; /* fill MaskRow instead of TokenRow */
} rows_enc_t;

static bool fill_row(void *ctx, size_t i, void *msg) {
  rows_enc_t *re = ctx;
  re->enc[i].v = re->rows[i];
  re->enc[i].n = re->lens[i];
  if (re->mask)
    NNE_PB_ENC(((nnedit_v1_MaskRow *)msg)->values, nne_pb_i64_enc, &re->enc[i]);
  else
    NNE_PB_ENC(((nnedit_v1_TokenRow *)msg)->ids, nne_pb_i64_enc, &re->enc[i]);
  return true;
}

static void grpc_setup(void) { grpc_init(); }
static void grpc_teardown(void) { grpc_shutdown(); }

/* ---- tests: ForwardRequest --------------------------------------------------------- */

static const int64_t row0[] = {1, 2, 3};
static const int64_t row2[] = {INT64_MAX, -1, 0, 300, -300, INT64_MIN, 127,
                               128, 16383, 16384, 1000, 999};
static const int64_t mrow0[] = {1, 1, 1};
static const int64_t mrow2[] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0};

START_TEST(test_forward_request_round_trip) {
  const int64_t *rows[] = {row0, NULL, row2};
  const size_t lens[] = {3, 0, 12};
  const int64_t *mrows[] = {mrow0, NULL, mrow2};
  nne_pb_list_enc_t ids_list, mask_list;
  rows_enc_t ids_enc = {rows, lens, {{0}}, 0}, mask_enc = {mrows, lens, {{0}}, 1};
  nnedit_v1_ForwardRequest req = nnedit_v1_ForwardRequest_init_zero;
  grpc_byte_buffer *bb = NULL;
  uint8_t *bytes, plain[1024];
  size_t n;
  pb_ostream_t os;
  char errbuf[128];
  int mode;

  snprintf(req.model, sizeof req.model, "gpt2-script");
  req.padding = nnedit_v1_Padding_PADDING_LEFT;
  req.top_k = 5;
  req.logits = nnedit_v1_LogitsMode_LOGITS_MODE_ALL;
  ids_list = (nne_pb_list_enc_t){.n = 3, .fill = fill_row, .ctx = &ids_enc,
                                .msg_size = sizeof(nnedit_v1_TokenRow)};
  mask_list = (nne_pb_list_enc_t){.n = 3, .fill = fill_row, .ctx = &mask_enc,
                                 .msg_size = sizeof(nnedit_v1_MaskRow)};
  NNE_PB_ENC(req.input_ids, nne_pb_list_enc, &ids_list);
  NNE_PB_ENC(req.attention_mask, nne_pb_list_enc, &mask_list);

  ck_assert_msg(nne_pb_encode_bb(nnedit_v1_ForwardRequest_fields, &req, &bb,
                                 errbuf, sizeof errbuf),
                "encode: %s", errbuf);
  bytes = bb_flatten(bb, &n);
  grpc_byte_buffer_destroy(bb);

  /* Same bytes as plain nanopb into a flat buffer. */
  os = pb_ostream_from_buffer(plain, sizeof plain);
  ck_assert(pb_encode(&os, nnedit_v1_ForwardRequest_fields, &req));
  ck_assert_uint_eq(os.bytes_written, n);
  ck_assert(memcmp(plain, bytes, n) == 0);

  for (mode = 0; mode < SPLIT_MODES; mode++) {
    nnedit_v1_ForwardRequest out;
    rows_dec_t ids, mask;
    req_prepare(&out, &ids, &mask, 64);
    ck_assert_msg(decode_split(bytes, n, mode, nnedit_v1_ForwardRequest_fields,
                               &out, errbuf, sizeof errbuf),
                  "mode %d: %s", mode, errbuf);
    ck_assert_str_eq(out.model, "gpt2-script");
    ck_assert_int_eq(out.padding, nnedit_v1_Padding_PADDING_LEFT);
    ck_assert_uint_eq(out.top_k, 5);
    ck_assert_int_eq(out.logits, nnedit_v1_LogitsMode_LOGITS_MODE_ALL);
    ck_assert_uint_eq(ids.n_rows, 3);
    expect_row(&ids.rows[0], row0, 3);
    expect_row(&ids.rows[1], NULL, 0); /* an empty row is still a row */
    expect_row(&ids.rows[2], row2, 12);
    ck_assert_uint_eq(mask.n_rows, 3);
    expect_row(&mask.rows[0], mrow0, 3);
    expect_row(&mask.rows[2], mrow2, 12);
    rows_free(&ids);
    rows_free(&mask);
  }
  free(bytes);
}
END_TEST

START_TEST(test_forward_request_unpacked_and_out_of_order) {
  /* Hand-encoded: top_k before model, rows with unpacked ids, a row mixing
   * a packed run and unpacked values (valid protobuf: they concatenate). */
  wbuf_t msg = {{0}, 0}, r0 = {{0}, 0}, r1 = {{0}, 0}, packed = {{0}, 0};
  static const int64_t want0[] = {1, 300, -5, INT64_MIN};
  static const int64_t want1[] = {5, 6, 7, 8, 9};
  int mode;
  char errbuf[128];

  w_tag(&msg, 5, 0); /* top_k = 3 */
  w_varint(&msg, 3);

  w_tag(&r0, 1, 0);
  w_varint(&r0, 1);
  w_tag(&r0, 1, 0);
  w_varint(&r0, 300);
  w_tag(&r0, 1, 0);
  w_varint(&r0, (uint64_t)(int64_t)-5);
  w_tag(&r0, 1, 0);
  w_varint(&r0, (uint64_t)INT64_MIN);
  w_sub(&msg, 2, &r0);

  w_varint(&packed, 5);
  w_varint(&packed, 6);
  w_bytes(&r1, 1, packed.b, packed.n);
  w_tag(&r1, 1, 0);
  w_varint(&r1, 7);
  packed.n = 0;
  w_varint(&packed, 8);
  w_varint(&packed, 9);
  w_bytes(&r1, 1, packed.b, packed.n);
  w_sub(&msg, 2, &r1);

  w_bytes(&msg, 1, "m1", 2); /* model last */

  for (mode = 0; mode < SPLIT_MODES; mode++) {
    nnedit_v1_ForwardRequest out;
    rows_dec_t ids, mask;
    req_prepare(&out, &ids, &mask, 16);
    ck_assert_msg(decode_split(msg.b, msg.n, mode,
                               nnedit_v1_ForwardRequest_fields, &out, errbuf,
                               sizeof errbuf),
                  "mode %d: %s", mode, errbuf);
    ck_assert_str_eq(out.model, "m1");
    ck_assert_uint_eq(out.top_k, 3);
    ck_assert_uint_eq(ids.n_rows, 2);
    expect_row(&ids.rows[0], want0, 4);
    expect_row(&ids.rows[1], want1, 5);
    ck_assert_uint_eq(mask.n_rows, 0);
    rows_free(&ids);
    rows_free(&mask);
  }
}
END_TEST

START_TEST(test_i64_many_values_grow) {
  /* Enough values to make the array grow several times. */
  int64_t vals[1000];
  wbuf_t *msg = calloc(1, sizeof *msg), *row = calloc(1, sizeof *row),
         *run = calloc(1, sizeof *run);
  size_t i;
  char errbuf[128];
  ck_assert(msg && row && run);
  for (i = 0; i < 1000; i++) {
    vals[i] = (int64_t)(i * 7919) - 3000;
    w_varint(run, (uint64_t)vals[i]);
  }
  ck_assert_uint_lt(run->n, sizeof run->b - 8);
  w_bytes(row, 1, run->b, run->n);
  ck_assert_uint_lt(row->n, sizeof msg->b - 8);
  w_sub(msg, 2, row);
  {
    nnedit_v1_ForwardRequest out;
    rows_dec_t ids, mask;
    int mode;
    for (mode = 0; mode < SPLIT_MODES; mode++) {
      req_prepare(&out, &ids, &mask, 1000);
      ck_assert_msg(decode_split(msg->b, msg->n, mode,
                                 nnedit_v1_ForwardRequest_fields, &out, errbuf,
                                 sizeof errbuf),
                    "%s", errbuf);
      expect_row(&ids.rows[0], vals, 1000);
      ck_assert_uint_le(ids.rows[0].cap, 1000); /* never beyond the limit */
      rows_free(&ids);
      rows_free(&mask);
    }
  }
  free(msg);
  free(row);
  free(run);
}
END_TEST

/* Builds a ForwardRequest with one row of `n` ids, packed or not. */
static void one_row(wbuf_t *msg, size_t n, int packed_form) {
  wbuf_t row = {{0}, 0}, run = {{0}, 0};
  size_t i;
  memset(msg, 0, sizeof *msg);
  for (i = 0; i < n; i++) {
    if (packed_form) {
      w_varint(&run, i + 1);
    } else {
      w_tag(&row, 1, 0);
      w_varint(&row, i + 1);
    }
  }
  if (packed_form && n > 0)
    w_bytes(&row, 1, run.b, run.n);
  w_sub(msg, 2, &row);
}

START_TEST(test_i64_limit_sets_overflow) {
  wbuf_t msg;
  char errbuf[128];
  int packed_form, mode;

  for (packed_form = 0; packed_form < 2; packed_form++) {
    for (mode = 0; mode < SPLIT_MODES; mode++) {
      nnedit_v1_ForwardRequest out;
      rows_dec_t ids, mask;

      /* At the limit: fine. */
      one_row(&msg, 3, packed_form);
      req_prepare(&out, &ids, &mask, 3);
      ck_assert(decode_split(msg.b, msg.n, mode,
                             nnedit_v1_ForwardRequest_fields, &out, NULL, 0));
      ck_assert_uint_eq(ids.rows[0].n, 3);
      ck_assert(!ids.rows[0].overflow);
      rows_free(&ids);
      rows_free(&mask);

      /* One over: the decode fails and says why through the flag. */
      one_row(&msg, 4, packed_form);
      req_prepare(&out, &ids, &mask, 3);
      errbuf[0] = '\0';
      ck_assert(!decode_split(msg.b, msg.n, mode,
                              nnedit_v1_ForwardRequest_fields, &out, errbuf,
                              sizeof errbuf));
      ck_assert_msg(ids.rows[0].overflow, "packed=%d mode=%d", packed_form,
                    mode);
      ck_assert_uint_le(ids.rows[0].n, 3);
      ck_assert_uint_gt(strlen(errbuf), 0);
      rows_free(&ids);
      rows_free(&mask);

      /* max 0: no value at all, but an empty row is fine. */
      one_row(&msg, 1, packed_form);
      req_prepare(&out, &ids, &mask, 0);
      ck_assert(!decode_split(msg.b, msg.n, mode,
                              nnedit_v1_ForwardRequest_fields, &out, NULL, 0));
      ck_assert(ids.rows[0].overflow);
      rows_free(&ids);
      rows_free(&mask);
      one_row(&msg, 0, packed_form);
      req_prepare(&out, &ids, &mask, 0);
      ck_assert(decode_split(msg.b, msg.n, mode,
                             nnedit_v1_ForwardRequest_fields, &out, NULL, 0));
      ck_assert_uint_eq(ids.n_rows, 1);
      ck_assert_uint_eq(ids.rows[0].n, 0);
      rows_free(&ids);
      rows_free(&mask);
    }
  }
}
END_TEST

/* ---- strings and bytes (through Tensor.data, a callback bytes field) -------------- */

static wbuf_t tensor_with_data(const void *p, size_t n, int times) {
  wbuf_t w = {{0}, 0};
  int i;
  w_tag(&w, 1, 0); /* dtype FLOAT32 */
  w_varint(&w, 1);
  for (i = 0; i < times; i++)
    w_bytes(&w, 3, p, n);
  return w;
}

START_TEST(test_str_dec_limits) {
  wbuf_t w;
  int mode;
  for (mode = 0; mode < SPLIT_MODES; mode++) {
    nnedit_v1_Tensor t;
    nne_pb_str_dec_t st;

    w = tensor_with_data("hello", 5, 1);
    memset(&t, 0, sizeof t);
    memset(&st, 0, sizeof st);
    st.max = 5;
    NNE_PB_DEC(t.data, nne_pb_str_dec, &st);
    ck_assert(decode_split(w.b, w.n, mode, nnedit_v1_Tensor_fields, &t, NULL,
                           0));
    ck_assert_str_eq(st.s, "hello");
    ck_assert_uint_eq(st.len, 5);
    ck_assert(!st.overflow);
    free(st.s);

    memset(&t, 0, sizeof t);
    memset(&st, 0, sizeof st);
    st.max = 4;
    NNE_PB_DEC(t.data, nne_pb_str_dec, &st);
    ck_assert(!decode_split(w.b, w.n, mode, nnedit_v1_Tensor_fields, &t, NULL,
                            0));
    ck_assert(st.overflow);
    ck_assert_ptr_null(st.s);

    /* Repeated occurrences: the last one is kept (the first is freed). */
    {
      wbuf_t two = {{0}, 0};
      w_bytes(&two, 3, "first", 5);
      w_bytes(&two, 3, "2nd\0x", 5); /* an embedded NUL is kept */
      memset(&t, 0, sizeof t);
      memset(&st, 0, sizeof st);
      st.max = 16;
      NNE_PB_DEC(t.data, nne_pb_str_dec, &st);
      ck_assert(decode_split(two.b, two.n, mode, nnedit_v1_Tensor_fields, &t,
                             NULL, 0));
      ck_assert_uint_eq(st.len, 5);
      ck_assert(memcmp(st.s, "2nd\0x", 6) == 0);
      free(st.s);
    }
  }
}
END_TEST

START_TEST(test_str_dec_default_max) {
  /* max 0 means 1 MiB: exactly 1 MiB passes, one byte more does not. */
  size_t big = (size_t)1 << 20;
  uint8_t *msg = malloc(big + 16);
  size_t n;
  int extra;
  ck_assert_ptr_nonnull(msg);
  for (extra = 0; extra < 2; extra++) {
    nnedit_v1_Tensor t;
    nne_pb_str_dec_t st;
    size_t len = big + (size_t)extra;
    wbuf_t head = {{0}, 0};
    w_tag(&head, 3, 2);
    w_varint(&head, len);
    memcpy(msg, head.b, head.n);
    memset(msg + head.n, 'z', len);
    n = head.n + len;
    memset(&t, 0, sizeof t);
    memset(&st, 0, sizeof st);
    NNE_PB_DEC(t.data, nne_pb_str_dec, &st);
    if (extra == 0) {
      ck_assert(decode_split(msg, n, SPLIT_UNEVEN, nnedit_v1_Tensor_fields, &t,
                             NULL, 0));
      ck_assert_uint_eq(st.len, big);
      ck_assert_int_eq(st.s[big - 1], 'z');
      ck_assert_int_eq(st.s[big], '\0');
      free(st.s);
    } else {
      ck_assert(!decode_split(msg, n, SPLIT_UNEVEN, nnedit_v1_Tensor_fields,
                              &t, NULL, 0));
      ck_assert(st.overflow);
    }
  }
  free(msg);
}
END_TEST

START_TEST(test_bytes_dec_offset_and_overflow) {
  static const uint8_t payload[13] = {1, 2, 3, 4, 5, 6, 7, 8,
                                      9, 10, 11, 12, 13};
  uint8_t dst[16];
  int mode;
  size_t i;

  for (mode = 0; mode < SPLIT_MODES; mode++) {
    nnedit_v1_Tensor t;
    nne_pb_bytes_dec_t st;
    wbuf_t w;

    /* 8 bytes at offset 4 of 16: placed there, nothing else touched. */
    w = tensor_with_data(payload, 8, 1);
    memset(dst, 0xee, sizeof dst);
    memset(&t, 0, sizeof t);
    st = (nne_pb_bytes_dec_t){dst, sizeof dst, 4, 0, false};
    NNE_PB_DEC(t.data, nne_pb_bytes_dec, &st);
    ck_assert(decode_split(w.b, w.n, mode, nnedit_v1_Tensor_fields, &t, NULL,
                           0));
    ck_assert_uint_eq(st.len, 8);
    ck_assert(!st.overflow);
    for (i = 0; i < 4; i++)
      ck_assert_uint_eq(dst[i], 0xee);
    ck_assert(memcmp(dst + 4, payload, 8) == 0);
    for (i = 12; i < 16; i++)
      ck_assert_uint_eq(dst[i], 0xee);
    ck_assert_int_eq(t.dtype, nnedit_v1_DType_DTYPE_FLOAT32);

    /* Exactly the room left (12). */
    w = tensor_with_data(payload, 12, 1);
    memset(dst, 0xee, sizeof dst);
    st = (nne_pb_bytes_dec_t){dst, sizeof dst, 4, 0, false};
    memset(&t, 0, sizeof t);
    NNE_PB_DEC(t.data, nne_pb_bytes_dec, &st);
    ck_assert(decode_split(w.b, w.n, mode, nnedit_v1_Tensor_fields, &t, NULL,
                           0));
    ck_assert_uint_eq(st.len, 12);
    ck_assert(memcmp(dst + 4, payload, 12) == 0);

    /* One more: refused before anything is written. */
    w = tensor_with_data(payload, 13, 1);
    memset(dst, 0xee, sizeof dst);
    st = (nne_pb_bytes_dec_t){dst, sizeof dst, 4, 0, false};
    memset(&t, 0, sizeof t);
    NNE_PB_DEC(t.data, nne_pb_bytes_dec, &st);
    ck_assert(!decode_split(w.b, w.n, mode, nnedit_v1_Tensor_fields, &t, NULL,
                            0));
    ck_assert(st.overflow);
    for (i = 0; i < sizeof dst; i++)
      ck_assert_uint_eq(dst[i], 0xee);

    /* An offset past the end overflows even for an empty field. */
    w = tensor_with_data(payload, 0, 1);
    st = (nne_pb_bytes_dec_t){dst, sizeof dst, 17, 0, false};
    memset(&t, 0, sizeof t);
    NNE_PB_DEC(t.data, nne_pb_bytes_dec, &st);
    ck_assert(!decode_split(w.b, w.n, mode, nnedit_v1_Tensor_fields, &t, NULL,
                            0));
    ck_assert(st.overflow);
    /* ...while an empty field at offset == cap fits. */
    st = (nne_pb_bytes_dec_t){dst, sizeof dst, 16, 99, false};
    memset(&t, 0, sizeof t);
    NNE_PB_DEC(t.data, nne_pb_bytes_dec, &st);
    ck_assert(decode_split(w.b, w.n, mode, nnedit_v1_Tensor_fields, &t, NULL,
                           0));
    ck_assert_uint_eq(st.len, 0);
  }
}
END_TEST

START_TEST(test_tensor_round_trip_bytes_enc) {
  float data[6] = {0.5f, -1.0f, 2.25f, 3e10f, -0.0f, 1e-20f};
  float back[6];
  nnedit_v1_Tensor t = nnedit_v1_Tensor_init_zero;
  nne_pb_bytes_enc_t be = {data, sizeof data};
  grpc_byte_buffer *bb;
  uint8_t *bytes;
  size_t n;
  int mode;
  char errbuf[128];

  t.dtype = nnedit_v1_DType_DTYPE_FLOAT32;
  t.shape_count = 2;
  t.shape[0] = 2;
  t.shape[1] = 3;
  NNE_PB_ENC(t.data, nne_pb_bytes_enc, &be);
  ck_assert_msg(nne_pb_encode_bb(nnedit_v1_Tensor_fields, &t, &bb, errbuf,
                                 sizeof errbuf),
                "%s", errbuf);
  bytes = bb_flatten(bb, &n);
  grpc_byte_buffer_destroy(bb);
  for (mode = 0; mode < SPLIT_MODES; mode++) {
    nnedit_v1_Tensor out;
    nne_pb_bytes_dec_t st = {(uint8_t *)back, sizeof back, 0, 0, false};
    memset(&out, 0, sizeof out);
    memset(back, 0, sizeof back);
    NNE_PB_DEC(out.data, nne_pb_bytes_dec, &st);
    ck_assert(decode_split(bytes, n, mode, nnedit_v1_Tensor_fields, &out,
                           errbuf, sizeof errbuf));
    ck_assert_int_eq(out.dtype, nnedit_v1_DType_DTYPE_FLOAT32);
    ck_assert_uint_eq(out.shape_count, 2);
    ck_assert_int_eq(out.shape[0], 2);
    ck_assert_int_eq(out.shape[1], 3);
    ck_assert_uint_eq(st.len, sizeof data);
    ck_assert(memcmp(back, data, sizeof data) == 0);
  }
  free(bytes);
}
END_TEST

/* ---- ForwardResult: a list of rows, each with a nested list ------------------------ */

#define N_RESULT_ROWS 3

typedef struct result_enc {
  uint32_t positions[N_RESULT_ROWS];
  size_t k[N_RESULT_ROWS];
  nne_pb_list_enc_t tops[N_RESULT_ROWS];
  size_t row_of_top[N_RESULT_ROWS]; /* ctx for each row's TokenScore list */
} result_enc_t;


static bool fill_score(void *ctx, size_t i, void *msg) {
  size_t row = *(const size_t *)ctx;
  nnedit_v1_TokenScore *ts = msg;
  ts->token_id = (int64_t)(row * 100 + i);
  ts->logit = (float)row - (float)i * 0.5f;
  ts->prob = 1.0f / (float)(i + 2);
  return true;
}

static bool fill_result_row(void *ctx, size_t i, void *msg) {
  result_enc_t *re = ctx;
  nnedit_v1_RowTopK *row = msg;
  row->position = re->positions[i];
  if (re->k[i] > 0) {
    re->row_of_top[i] = i;
    re->tops[i] = (nne_pb_list_enc_t){.n = re->k[i],
                                      .fill = fill_score,
                                      .ctx = &re->row_of_top[i],
                                      .msg_size = sizeof(nnedit_v1_TokenScore)};
    NNE_PB_ENC(row->top, nne_pb_list_enc, &re->tops[i]);
  }
  return true;
}

/* Decoding side. */
typedef struct scores_dec {
  nnedit_v1_TokenScore v[16];
  size_t n;
} scores_dec_t;

typedef struct result_dec {
  uint32_t positions[8];
  scores_dec_t scores[8];
  size_t n;
} result_dec_t;

static bool dec_score(pb_istream_t *s, const pb_field_t *f, void **arg) {
  scores_dec_t *sd = *arg;
  (void)f;
  if (sd->n == 16)
    PB_RETURN_ERROR(s, "too many scores");
  return pb_decode(s, nnedit_v1_TokenScore_fields, &sd->v[sd->n++]);
}

static bool dec_result_row(pb_istream_t *s, const pb_field_t *f, void **arg) {
  result_dec_t *rd = *arg;
  nnedit_v1_RowTopK row = nnedit_v1_RowTopK_init_zero;
  (void)f;
  if (rd->n == 8)
    PB_RETURN_ERROR(s, "too many rows");
  NNE_PB_DEC(row.top, dec_score, &rd->scores[rd->n]);
  if (!pb_decode(s, nnedit_v1_RowTopK_fields, &row))
    return false;
  rd->positions[rd->n++] = row.position;
  return true;
}

START_TEST(test_forward_result_nested_lists) {
  result_enc_t re = {{7, 0, 12}, {4, 0, 2}, {{0}}, {0}};
  nne_pb_list_enc_t rows = {.n = N_RESULT_ROWS,
                           .fill = fill_result_row,
                           .ctx = &re,
                           .msg_size = sizeof(nnedit_v1_RowTopK)};
  nnedit_v1_ForwardResult r = nnedit_v1_ForwardResult_init_zero;
  grpc_byte_buffer *bb;
  uint8_t *bytes;
  size_t n, i, j;
  char errbuf[128];
  int mode;

  r.batch = 3;
  r.seq_len = 13;
  NNE_PB_ENC(r.rows, nne_pb_list_enc, &rows);
  r.has_timing = true;
  r.timing.queue_ms = 0.25;
  r.timing.compute_ms = 12.5;
  r.timing.total_ms = 13.0;
  snprintf(r.logits_tensor, sizeof r.logits_tensor, "logits");
  ck_assert_msg(nne_pb_encode_bb(nnedit_v1_ForwardResult_fields, &r, &bb,
                                 errbuf, sizeof errbuf),
                "%s", errbuf);
  bytes = bb_flatten(bb, &n);
  grpc_byte_buffer_destroy(bb);

  for (mode = 0; mode < SPLIT_MODES; mode++) {
    nnedit_v1_ForwardResult out;
    result_dec_t rd;
    memset(&out, 0, sizeof out);
    memset(&rd, 0, sizeof rd);
    NNE_PB_DEC(out.rows, dec_result_row, &rd);
    ck_assert_msg(decode_split(bytes, n, mode, nnedit_v1_ForwardResult_fields,
                               &out, errbuf, sizeof errbuf),
                  "mode %d: %s", mode, errbuf);
    ck_assert_uint_eq(out.batch, 3);
    ck_assert_uint_eq(out.seq_len, 13);
    ck_assert(out.has_timing);
    ck_assert(out.timing.compute_ms == 12.5);
    ck_assert_str_eq(out.logits_tensor, "logits");
    ck_assert_uint_eq(rd.n, N_RESULT_ROWS);
    for (i = 0; i < N_RESULT_ROWS; i++) {
      ck_assert_uint_eq(rd.positions[i], re.positions[i]);
      ck_assert_uint_eq(rd.scores[i].n, re.k[i]);
      for (j = 0; j < re.k[i]; j++) {
        const nnedit_v1_TokenScore *ts = &rd.scores[i].v[j];
        ck_assert_int_eq(ts->token_id, (int64_t)(i * 100 + j));
        ck_assert(ts->logit == (float)i - (float)j * 0.5f);
        ck_assert(ts->prob == 1.0f / (float)(j + 2));
      }
    }
  }
  free(bytes);
}
END_TEST

static bool fill_refuse(void *ctx, size_t i, void *msg) {
  (void)ctx;
  (void)msg;
  return i < 1; /* the second element cannot be built */
}

START_TEST(test_list_fill_refusal_fails_encode) {
  nne_pb_list_enc_t rows = {.n = 3,
                           .fill = fill_refuse,
                           .ctx = NULL,
                           .msg_size = sizeof(nnedit_v1_RowTopK)};
  nnedit_v1_ForwardResult r = nnedit_v1_ForwardResult_init_zero;
  grpc_byte_buffer *bb = NULL;
  char errbuf[128] = "";
  NNE_PB_ENC(r.rows, nne_pb_list_enc, &rows);
  ck_assert(!nne_pb_encode_bb(nnedit_v1_ForwardResult_fields, &r, &bb, errbuf,
                              sizeof errbuf));
  ck_assert_ptr_null(bb);
  ck_assert_uint_gt(strlen(errbuf), 0);
}
END_TEST

static bool fill_nothing(void *ctx, size_t i, void *msg) {
  (void)ctx;
  (void)i;
  (void)msg;
  return true;
}

START_TEST(test_list_msg_size_checked) {
  /* msg_size is what the scratch element is cleared to: a missing one, or
   * one larger than the scratch, refuses to encode (and never writes past
   * the scratch, which ASan would see). */
  static const size_t bad[] = {0, (size_t)1 << 20};
  size_t i;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    nne_pb_list_enc_t rows = {.n = 2,
                              .fill = fill_nothing,
                              .ctx = NULL,
                              .msg_size = bad[i]};
    nnedit_v1_ForwardResult r = nnedit_v1_ForwardResult_init_zero;
    grpc_byte_buffer *bb = NULL;
    char errbuf[128] = "";
    NNE_PB_ENC(r.rows, nne_pb_list_enc, &rows);
    ck_assert_msg(!nne_pb_encode_bb(nnedit_v1_ForwardResult_fields, &r, &bb,
                                    errbuf, sizeof errbuf),
                  "msg_size %zu accepted", bad[i]);
    ck_assert_ptr_null(bb);
  }
  /* An empty list encodes nothing, whatever msg_size says. */
  {
    nne_pb_list_enc_t rows = {.n = 0, .fill = fill_nothing, .ctx = NULL,
                              .msg_size = 0};
    nnedit_v1_ForwardResult r = nnedit_v1_ForwardResult_init_zero;
    uint8_t buf[64];
    pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof buf);
    r.batch = 1;
    NNE_PB_ENC(r.rows, nne_pb_list_enc, &rows);
    ck_assert(pb_encode(&os, nnedit_v1_ForwardResult_fields, &r));
    ck_assert_uint_eq(os.bytes_written, 2); /* just batch = 1 */
  }
}
END_TEST

/* nne_pb.h: "fill(ctx, i, msg) into a zeroed struct of the field's message
 * type". Element i must not see what element i-1 left behind. */
typedef struct zero_check {
  size_t dirty_elems;
  size_t first_dirty_byte;
  size_t size;
} zero_check_t;

static void check_zero(zero_check_t *zc, const void *msg) {
  const unsigned char *p = msg;
  size_t i;
  for (i = 0; i < zc->size; i++)
    if (p[i] != 0) {
      if (zc->dirty_elems++ == 0)
        zc->first_dirty_byte = i;
      return;
    }
}

static zero_check_t zc_models;

static bool fill_model_info(void *ctx, size_t i, void *msg) {
  nnedit_v1_ModelInfo *mi = msg;
  (void)ctx;
  check_zero(&zc_models, msg);
  /* Relies on the zeroed struct: only what is known is set. */
  snprintf(mi->name, sizeof mi->name, "m%zu", i);
  mi->state = nnedit_v1_ModelState_MODEL_STATE_AVAILABLE;
  if (i == 0) {
    mi->state = nnedit_v1_ModelState_MODEL_STATE_LOADED;
    snprintf(mi->device, sizeof mi->device, "cuda:0");
    mi->vocab_size = 50257;
    mi->max_batch = 16;
  }
  return true;
}

typedef struct infos_dec {
  nnedit_v1_ModelInfo v[4];
  size_t n;
} infos_dec_t;

static bool dec_model_info(pb_istream_t *s, const pb_field_t *f, void **arg) {
  infos_dec_t *d = *arg;
  (void)f;
  if (d->n == 4)
    PB_RETURN_ERROR(s, "too many models");
  return pb_decode(s, nnedit_v1_ModelInfo_fields, &d->v[d->n++]);
}

START_TEST(test_list_elements_start_zeroed) {
  nne_pb_list_enc_t list = {.n = 3,
                           .fill = fill_model_info,
                           .ctx = NULL,
                           .msg_size = sizeof(nnedit_v1_ModelInfo)};
  nnedit_v1_ListModelsResponse resp = nnedit_v1_ListModelsResponse_init_zero;
  nnedit_v1_ListModelsResponse out;
  infos_dec_t *d = calloc(1, sizeof *d);
  grpc_byte_buffer *bb;
  char errbuf[128];

  ck_assert_ptr_nonnull(d);
  memset(&zc_models, 0, sizeof zc_models);
  zc_models.size = sizeof(nnedit_v1_ModelInfo);
  NNE_PB_ENC(resp.models, nne_pb_list_enc, &list);
  snprintf(resp.server_version, sizeof resp.server_version, "nneditd test");
  /* With elements not zeroed, fields that fill() leaves alone hold stack
   * garbage: an unterminated string fails the encode outright. */
  ck_assert_msg(nne_pb_encode_bb(nnedit_v1_ListModelsResponse_fields, &resp,
                                 &bb, errbuf, sizeof errbuf),
                "encode failed (%s): list elements handed to fill() are not "
                "zeroed (%zu of 3 dirty, first non-zero byte at %zu of %zu)",
                errbuf, zc_models.dirty_elems, zc_models.first_dirty_byte,
                zc_models.size);
  memset(&out, 0, sizeof out);
  NNE_PB_DEC(out.models, dec_model_info, d);
  ck_assert(nne_pb_decode_bb(bb, nnedit_v1_ListModelsResponse_fields, &out,
                             errbuf, sizeof errbuf));
  grpc_byte_buffer_destroy(bb);
  ck_assert_uint_eq(d->n, 3);
  ck_assert_str_eq(d->v[0].device, "cuda:0");
  ck_assert_str_eq(d->v[1].name, "m1");
  ck_assert_str_eq(out.server_version, "nneditd test");
  /* The second and third models were never given a device or vocabulary. */
  ck_assert_msg(d->v[1].device[0] == '\0' && d->v[1].vocab_size == 0 &&
                    d->v[2].max_batch == 0,
                "model m1 went out with m0's fields (device '%s', vocab %lld): "
                "list elements are not zeroed between fills",
                d->v[1].device, (long long)d->v[1].vocab_size);
  ck_assert_msg(zc_models.dirty_elems == 0,
                "%zu list element(s) handed to fill() not zeroed (first "
                "non-zero byte at offset %zu of %zu)",
                zc_models.dirty_elems, zc_models.first_dirty_byte,
                zc_models.size);
  free(d);
}
END_TEST

/* ---- zero-copy chunk framing ------------------------------------------------------- */

/* Encodes a TensorChunk header (data unset) into buf; returns its length. */
static size_t chunk_header(uint8_t *buf, size_t cap, size_t total) {
  nnedit_v1_TensorChunk c = nnedit_v1_TensorChunk_init_zero;
  pb_ostream_t os = pb_ostream_from_buffer(buf, cap);
  snprintf(c.name, sizeof c.name, "logits");
  c.dtype = nnedit_v1_DType_DTYPE_FLOAT32;
  c.shape_count = 3;
  c.shape[0] = 2;
  c.shape[1] = 5;
  c.shape[2] = (int64_t)(total / 40);
  c.total_bytes = total;
  c.offset = 0;
  c.last = true;
  ck_assert(pb_encode(&os, nnedit_v1_TensorChunk_fields, &c));
  return os.bytes_written;
}

static void check_chunk_fields(const nnedit_v1_TensorChunk *c, size_t total) {
  ck_assert_str_eq(c->name, "logits");
  ck_assert_int_eq(c->dtype, nnedit_v1_DType_DTYPE_FLOAT32);
  ck_assert_uint_eq(c->shape_count, 3);
  ck_assert_int_eq(c->shape[0], 2);
  ck_assert_int_eq(c->shape[1], 5);
  ck_assert_int_eq(c->shape[2], (int64_t)(total / 40));
  ck_assert_uint_eq(c->total_bytes, total);
  ck_assert_uint_eq(c->offset, 0);
  ck_assert(c->last);
}

START_TEST(test_frame_chunk_decodes_as_forward_response) {
  static const size_t sizes[] = {0, 5, 127, 128, 40000, 200000};
  size_t si;

  for (si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
    size_t total = sizes[si], inner_len, frame_len, i;
    uint8_t inner[512], frame[512 + 32];
    uint8_t *payload = malloc(total + 1), *wire, *got = malloc(total + 1);
    nnedit_v1_ForwardResponse resp;
    nne_pb_bytes_dec_t st = {got, total, 0, 0, false};
    pb_istream_t is;
    char errbuf[128];

    ck_assert(payload && got);
    for (i = 0; i < total; i++)
      payload[i] = (uint8_t)(i * 31 + 7);
    inner_len = chunk_header(inner, sizeof inner, total);
    frame_len = nne_pb_frame_chunk(inner, inner_len,
                                   nnedit_v1_TensorChunk_data_tag, total,
                                   nnedit_v1_ForwardResponse_chunk_tag, frame,
                                   inner_len + 32);
    ck_assert_uint_gt(frame_len, inner_len);
    ck_assert_uint_le(frame_len, inner_len + 32);

    /* The frame followed by the payload, as it goes on the wire. */
    wire = malloc(frame_len + total);
    ck_assert_ptr_nonnull(wire);
    memcpy(wire, frame, frame_len);
    memcpy(wire + frame_len, payload, total);

    /* nanopb decodes it as ForwardResponse{chunk}. The chunk sits in a
     * oneof, so its data callback is armed by selecting the member first
     * and decoding without re-initialising. */
    memset(&resp, 0, sizeof resp);
    resp.which_msg = nnedit_v1_ForwardResponse_chunk_tag;
    NNE_PB_DEC(resp.msg.chunk.data, nne_pb_bytes_dec, &st);
    is = pb_istream_from_buffer(wire, frame_len + total);
    ck_assert_msg(pb_decode_ex(&is, nnedit_v1_ForwardResponse_fields, &resp,
                               PB_DECODE_NOINIT),
                  "size %zu: %s", total, PB_GET_ERROR(&is));
    ck_assert_uint_eq(is.bytes_left, 0);
    ck_assert_uint_eq(resp.which_msg, nnedit_v1_ForwardResponse_chunk_tag);
    check_chunk_fields(&resp.msg.chunk, total);
    ck_assert_uint_eq(st.len, total);
    ck_assert(!st.overflow);
    ck_assert(memcmp(got, payload, total) == 0);

    /* The same bytes as two slices (frame, payload: the zero-copy send)
     * through the byte-buffer reader: lengths agree and fields decode. */
    {
      grpc_slice sl[2];
      grpc_byte_buffer *bb;
      sl[0] = own_slice(frame, frame_len);
      sl[1] = own_slice(payload, total);
      bb = grpc_raw_byte_buffer_create(sl, 2);
      ck_assert_uint_eq(bb->data.raw.slice_buffer.count, 2);
      grpc_slice_unref(sl[0]);
      grpc_slice_unref(sl[1]);
      memset(&resp, 0, sizeof resp);
      ck_assert_msg(nne_pb_decode_bb(bb, nnedit_v1_ForwardResponse_fields,
                                     &resp, errbuf, sizeof errbuf),
                    "size %zu: %s", total, errbuf);
      grpc_byte_buffer_destroy(bb);
      ck_assert_uint_eq(resp.which_msg, nnedit_v1_ForwardResponse_chunk_tag);
      check_chunk_fields(&resp.msg.chunk, total);
    }
    /* And split every which way. */
    if (frame_len + total <= 4096) {
      int mode;
      for (mode = 0; mode < SPLIT_MODES; mode++) {
        memset(&resp, 0, sizeof resp);
        ck_assert(decode_split(wire, frame_len + total, mode,
                               nnedit_v1_ForwardResponse_fields, &resp, errbuf,
                               sizeof errbuf));
        check_chunk_fields(&resp.msg.chunk, total);
      }
    }
    free(wire);
    free(payload);
    free(got);
  }
}
END_TEST

START_TEST(test_frame_chunk_without_outer) {
  uint8_t inner[512], frame[600], wire[1024], got[300];
  uint8_t payload[300];
  size_t inner_len, frame_len, i;
  nnedit_v1_TensorChunk c;
  nne_pb_bytes_dec_t st = {got, sizeof got, 0, 0, false};
  pb_istream_t is;

  for (i = 0; i < sizeof payload; i++)
    payload[i] = (uint8_t)(255 - i);
  inner_len = chunk_header(inner, sizeof inner, sizeof payload);
  frame_len = nne_pb_frame_chunk(inner, inner_len,
                                 nnedit_v1_TensorChunk_data_tag,
                                 sizeof payload, 0, frame, sizeof frame);
  /* inner + tag (1 byte) + length 300 (2 bytes) */
  ck_assert_uint_eq(frame_len, inner_len + 3);
  ck_assert(memcmp(frame, inner, inner_len) == 0);
  memcpy(wire, frame, frame_len);
  memcpy(wire + frame_len, payload, sizeof payload);
  memset(&c, 0, sizeof c);
  NNE_PB_DEC(c.data, nne_pb_bytes_dec, &st);
  is = pb_istream_from_buffer(wire, frame_len + sizeof payload);
  ck_assert_msg(pb_decode(&is, nnedit_v1_TensorChunk_fields, &c), "%s",
                PB_GET_ERROR(&is));
  check_chunk_fields(&c, sizeof payload);
  ck_assert_uint_eq(st.len, sizeof payload);
  ck_assert(memcmp(got, payload, sizeof payload) == 0);
}
END_TEST

START_TEST(test_frame_chunk_capacity) {
  uint8_t inner[512], frame[600];
  size_t inner_len = chunk_header(inner, sizeof inner, 1u << 20);
  size_t need = nne_pb_frame_chunk(inner, inner_len, 6, 1u << 20, 2, frame,
                                   sizeof frame);
  ck_assert_uint_gt(need, 0);
  /* One byte short: nothing written, 0 returned. */
  memset(frame, 0xcc, sizeof frame);
  ck_assert_uint_eq(
      nne_pb_frame_chunk(inner, inner_len, 6, 1u << 20, 2, frame, need - 1), 0);
  ck_assert_uint_eq(frame[0], 0xcc);
  ck_assert_uint_eq(
      nne_pb_frame_chunk(inner, inner_len, 6, 1u << 20, 2, frame, need), need);
  /* inner_len + 32 suffices even for a huge payload. */
  ck_assert_uint_gt(nne_pb_frame_chunk(inner, inner_len, 6, (size_t)1 << 40, 2,
                                       frame, inner_len + 32),
                    0);
  /* An empty inner message frames to just the tags and lengths. */
  ck_assert_uint_eq(nne_pb_frame_chunk(inner, 0, 6, 0, 2, frame, 32), 4);
  ck_assert_uint_eq(frame[0], 0x12); /* field 2, length-delimited */
  ck_assert_uint_eq(frame[1], 2);    /* body: tag + length of the data */
  ck_assert_uint_eq(frame[2], 0x32); /* field 6, length-delimited */
  ck_assert_uint_eq(frame[3], 0);
}
END_TEST

/* ---- malformed input ----------------------------------------------------------------- */

static void expect_malformed(const uint8_t *p, size_t n, const char *what) {
  int mode;
  for (mode = 0; mode < SPLIT_MODES; mode++) {
    nnedit_v1_ForwardRequest out;
    rows_dec_t ids, mask;
    char errbuf[128] = "";
    req_prepare(&out, &ids, &mask, 64);
    ck_assert_msg(!decode_split(p, n, mode, nnedit_v1_ForwardRequest_fields,
                                &out, errbuf, sizeof errbuf),
                  "%s: decoded (mode %d)", what, mode);
    ck_assert_msg(strlen(errbuf) > 0, "%s: no reason given", what);
    rows_free(&ids);
    rows_free(&mask);
    /* errbuf is optional. */
    req_prepare(&out, &ids, &mask, 64);
    ck_assert(!decode_split(p, n, mode, nnedit_v1_ForwardRequest_fields, &out,
                            NULL, 0));
    rows_free(&ids);
    rows_free(&mask);
  }
}

START_TEST(test_malformed_messages) {
  static const uint8_t trunc_varint[] = {0x28, 0x80};  /* top_k: unfinished */
  static const uint8_t trunc_tag[] = {0x80};           /* tag: unfinished */
  static const uint8_t model_as_varint[] = {0x08, 0x05};
  static const uint8_t topk_as_bytes[] = {0x2a, 0x01, 0x00};
  static const uint8_t short_string[] = {0x0a, 0x10, 'a', 'b'};
  static const uint8_t long_varint[] = {0x28, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  static const uint8_t bad_wire_type[] = {0x2f, 0x00}; /* type 7 */
  /* A row whose packed run ends in the middle of a varint. */
  static const uint8_t trunc_in_row[] = {0x12, 0x04, 0x0a, 0x02, 0x01, 0x80};
  uint8_t long_model[300];
  size_t n = 0;

  expect_malformed(trunc_varint, sizeof trunc_varint, "truncated varint");
  expect_malformed(trunc_tag, sizeof trunc_tag, "truncated tag");
  expect_malformed(model_as_varint, sizeof model_as_varint,
                   "string as varint");
  expect_malformed(topk_as_bytes, sizeof topk_as_bytes, "varint as bytes");
  expect_malformed(short_string, sizeof short_string, "length past the end");
  expect_malformed(long_varint, sizeof long_varint, "11-byte varint");
  expect_malformed(bad_wire_type, sizeof bad_wire_type, "wire type 7");
  expect_malformed(trunc_in_row, sizeof trunc_in_row, "truncated row");
  /* model holds at most 127 characters. */
  long_model[n++] = 0x0a;
  long_model[n++] = 0x80 | (200 & 0x7f);
  long_model[n++] = 200 >> 7;
  memset(long_model + n, 'x', 200);
  n += 200;
  expect_malformed(long_model, n, "model too long");
}
END_TEST

START_TEST(test_utf8_valid) {
  static const char *const good[] = {
      "", "layers.0.resid_post", "\xc3\xa9t\xc3\xa9", /* U+00E9 */
      "\xe2\x82\xac",                                   /* U+20AC */
      "\xf0\x9f\x98\x80",                               /* U+1F600 */
      "\xf4\x8f\xbf\xbf",                               /* U+10FFFF */
      "\xed\x9f\xbf",                                   /* U+D7FF */
  };
  static const char *const bad[] = {
      "a\xff",             /* not a lead byte */
      "\x80",              /* a lone continuation byte */
      "\xc3",              /* cut short by the end */
      "\xe2\x82",          /* cut short by the end */
      "\xe2\x82x",         /* cut short by an ASCII byte */
      "\xc0\x80",          /* overlong NUL */
      "\xe0\x80\xaf",      /* overlong '/' */
      "\xed\xa0\x80",      /* UTF-16 surrogate U+D800 */
      "\xf4\x90\x80\x80",  /* past U+10FFFF */
      "\xf8\x88\x80\x80\x80", /* five-byte form */
  };
  size_t i;
  for (i = 0; i < sizeof good / sizeof good[0]; i++)
    ck_assert_msg(nne_pb_utf8_valid(good[i]), "good[%zu] refused", i);
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(!nne_pb_utf8_valid(bad[i]), "bad[%zu] accepted", i);
}
END_TEST

START_TEST(test_ids_with_fixed_wire_types_refused) {
  /* TokenRow.ids is int64: only varint (unpacked) and length-delimited
   * (packed) encodings are valid. A fixed64 or fixed32 value must not be
   * read as a run of varints (8 bytes 01..08 would become 8 token ids). */
  static const uint8_t fixed64_row[] = {0x12, 0x09, 0x09, 1, 2, 3, 4,
                                        5,    6,    7,    8};
  static const uint8_t fixed32_row[] = {0x12, 0x05, 0x0d, 1, 2, 3, 4};
  int mode;
  for (mode = 0; mode < SPLIT_MODES; mode++) {
    nnedit_v1_ForwardRequest out;
    rows_dec_t ids, mask;
    bool ok;
    size_t got;
    long long first;

    req_prepare(&out, &ids, &mask, 64);
    ok = decode_split(fixed64_row, sizeof fixed64_row, mode,
                      nnedit_v1_ForwardRequest_fields, &out, NULL, 0);
    got = ids.rows[0].n;
    first = got ? (long long)ids.rows[0].v[0] : 0;
    rows_free(&ids);
    rows_free(&mask);
    ck_assert_msg(!ok, "ids sent as fixed64 decoded into %zu ids (first %lld)",
                  got, first);

    req_prepare(&out, &ids, &mask, 64);
    ok = decode_split(fixed32_row, sizeof fixed32_row, mode,
                      nnedit_v1_ForwardRequest_fields, &out, NULL, 0);
    got = ids.rows[0].n;
    rows_free(&ids);
    rows_free(&mask);
    ck_assert_msg(!ok, "ids sent as fixed32 decoded into %zu ids", got);
  }
}
END_TEST

START_TEST(test_absent_message_is_empty) {
  nnedit_v1_ForwardRequest out;
  rows_dec_t ids, mask;
  char errbuf[64];
  req_prepare(&out, &ids, &mask, 4);
  snprintf(out.model, sizeof out.model, "stale");
  ck_assert(nne_pb_decode_bb(NULL, nnedit_v1_ForwardRequest_fields, &out,
                             errbuf, sizeof errbuf));
  ck_assert_str_eq(out.model, "");
  ck_assert_uint_eq(ids.n_rows, 0);
  /* A zero-length buffer, too. */
  ck_assert(decode_split((const uint8_t *)"", 0, SPLIT_UNEVEN,
                         nnedit_v1_ForwardRequest_fields, &out, errbuf,
                         sizeof errbuf));
}
END_TEST

/* ---- the prebuilt nanopb runtime agrees with our headers --------------------------- */

START_TEST(test_nanopb_runtime_abi) {
  nnedit_v1_TensorChunk msg;
  pb_field_iter_t it;
  static const struct {
    pb_size_t tag;
    size_t offset;
    size_t data_size;
    pb_size_t array_size;
  } want[] = {
      {1, offsetof(nnedit_v1_TensorChunk, name), 256, 1},
      {2, offsetof(nnedit_v1_TensorChunk, dtype), sizeof(nnedit_v1_DType), 1},
      {3, offsetof(nnedit_v1_TensorChunk, shape), sizeof(int64_t), 8},
      {4, offsetof(nnedit_v1_TensorChunk, total_bytes), sizeof(uint64_t), 1},
      {5, offsetof(nnedit_v1_TensorChunk, offset), sizeof(uint64_t), 1},
      {6, offsetof(nnedit_v1_TensorChunk, data), sizeof(pb_callback_t), 1},
      {7, offsetof(nnedit_v1_TensorChunk, last), sizeof(bool), 1},
  };
  size_t i = 0;

  memset(&msg, 0, sizeof msg);
  ck_assert(pb_field_iter_begin(&it, nnedit_v1_TensorChunk_fields, &msg));
  do {
    ck_assert_msg(i < 7, "more than 7 fields");
    ck_assert_msg(it.tag == want[i].tag, "field %zu: tag %u, want %u", i,
                  (unsigned)it.tag, (unsigned)want[i].tag);
    ck_assert_msg((char *)it.pData - (char *)&msg == (ptrdiff_t)want[i].offset,
                  "tag %u: data at %td, want %zu", (unsigned)want[i].tag,
                  (char *)it.pData - (char *)&msg, want[i].offset);
    ck_assert_msg(it.data_size == want[i].data_size,
                  "tag %u: data_size %u, want %zu", (unsigned)want[i].tag,
                  (unsigned)it.data_size, want[i].data_size);
    ck_assert_msg(it.array_size == want[i].array_size,
                  "tag %u: array_size %u, want %u", (unsigned)want[i].tag,
                  (unsigned)it.array_size, (unsigned)want[i].array_size);
    ck_assert_ptr_eq(it.descriptor, nnedit_v1_TensorChunk_fields);
    ck_assert_ptr_eq(it.message, &msg);
    if (want[i].tag == 3)
      ck_assert_ptr_eq(it.pSize, &msg.shape_count);
    i++;
  } while (pb_field_iter_next(&it));
  ck_assert_uint_eq(i, 7);
  ck_assert_uint_eq(it.index, 0); /* next() wrapped to the first field */

  /* find() lands on the right member too. */
  ck_assert(pb_field_iter_find(&it, 6));
  ck_assert_ptr_eq(it.pData, &msg.data);
  ck_assert(pb_field_iter_find(&it, 3));
  ck_assert_ptr_eq(it.pData, msg.shape);
  ck_assert(!pb_field_iter_find(&it, 8));

  /* The oneof in ForwardResponse: both members share which_msg. */
  {
    nnedit_v1_ForwardResponse r;
    ck_assert(pb_field_iter_begin(&it, nnedit_v1_ForwardResponse_fields, &r));
    ck_assert_uint_eq(it.tag, 1);
    ck_assert_ptr_eq(it.pSize, &r.which_msg);
    ck_assert_ptr_eq(it.pData, &r.msg.result);
    ck_assert(pb_field_iter_next(&it));
    ck_assert_uint_eq(it.tag, 2);
    ck_assert_ptr_eq(it.pSize, &r.which_msg);
    ck_assert_ptr_eq(it.pData, &r.msg.chunk);
    ck_assert_uint_eq(it.data_size, sizeof r.msg.chunk);
    ck_assert(it.submsg_desc == nnedit_v1_TensorChunk_fields);
  }
}
END_TEST

static Suite *nne_pb_suite(void) {
  Suite *s = suite_create("nne_pb");
  TCase *tc;

  tc = tcase_create("byte_buffers");
  tcase_add_checked_fixture(tc, grpc_setup, grpc_teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_forward_request_round_trip);
  tcase_add_test(tc, test_forward_request_unpacked_and_out_of_order);
  tcase_add_test(tc, test_i64_many_values_grow);
  tcase_add_test(tc, test_i64_limit_sets_overflow);
  tcase_add_test(tc, test_str_dec_limits);
  tcase_add_test(tc, test_str_dec_default_max);
  tcase_add_test(tc, test_bytes_dec_offset_and_overflow);
  tcase_add_test(tc, test_tensor_round_trip_bytes_enc);
  tcase_add_test(tc, test_forward_result_nested_lists);
  tcase_add_test(tc, test_list_fill_refusal_fails_encode);
  tcase_add_test(tc, test_list_msg_size_checked);
  tcase_add_test(tc, test_list_elements_start_zeroed);
  tcase_add_test(tc, test_frame_chunk_decodes_as_forward_response);
  tcase_add_test(tc, test_malformed_messages);
  tcase_add_test(tc, test_ids_with_fixed_wire_types_refused);
  tcase_add_test(tc, test_utf8_valid);
  tcase_add_test(tc, test_absent_message_is_empty);
  suite_add_tcase(s, tc);

  tc = tcase_create("framing");
  tcase_add_test(tc, test_frame_chunk_without_outer);
  tcase_add_test(tc, test_frame_chunk_capacity);
  tcase_add_test(tc, test_nanopb_runtime_abi);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(nne_pb_suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
