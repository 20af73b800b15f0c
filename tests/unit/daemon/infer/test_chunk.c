/* test_chunk.c — daemon/infer/chunk.{h,c}: a tensor cut into TensorChunk
 * messages, zero-copy.
 *
 * Each byte buffer nne_chunk_make / nne_chunk_next produce is read back the
 * way a client reads it: flattened and decoded with nanopb as a
 * ForwardResponse whose `chunk` member is set. The tests prove that every
 * chunk carries the tensor's name, dtype, shape and total size, that
 * offsets advance by max_chunk with a short final chunk when the size is
 * not a multiple, that only the final chunk is `last`, that the payload is
 * exactly the tensor's bytes (and stays valid after the caller drops its
 * tensor reference: the chunk holds its own), that an empty tensor is one
 * empty chunk, and that a name over TensorChunk.name's bound is refused.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>

#include <pb_decode.h>

#include "engine/engine.h"
#include "infer/chunk.h"
#include "nne_pb.h"
#include "nnedit/v1/inference.pb.h"
#include "nnedit/v1/tensor.pb.h"
#include "unit_main.h"

#define CHUNK_TAG nnedit_v1_ForwardResponse_chunk_tag

/* A decoded chunk: the header fields and a copy of the payload. */
typedef struct got_chunk {
  nnedit_v1_TensorChunk hdr;
  uint8_t data[4096];
  size_t data_len;
} got_chunk_t;

static uint8_t *flatten(grpc_byte_buffer *bb, size_t *n) {
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

/* Decodes bb as a ForwardResponse carrying a chunk (outer_tag != 0) or as a
 * bare TensorChunk (outer_tag == 0); the whole buffer must be consumed. */
static void decode_chunk(grpc_byte_buffer *bb, uint32_t outer_tag,
                         got_chunk_t *out) {
  size_t n;
  uint8_t *wire = flatten(bb, &n);
  nne_pb_bytes_dec_t st;
  pb_istream_t is = pb_istream_from_buffer(wire, n);

  memset(out, 0, sizeof *out);
  memset(&st, 0, sizeof st);
  st.dst = out->data;
  st.cap = sizeof out->data;
  if (outer_tag != 0) {
    /* The chunk sits in a oneof: select it first so that its data callback
     * is armed, and decode without re-initialising. */
    nnedit_v1_ForwardResponse resp;
    memset(&resp, 0, sizeof resp);
    resp.which_msg = nnedit_v1_ForwardResponse_chunk_tag;
    NNE_PB_DEC(resp.msg.chunk.data, nne_pb_bytes_dec, &st);
    ck_assert_msg(pb_decode_ex(&is, nnedit_v1_ForwardResponse_fields, &resp,
                               PB_DECODE_NOINIT),
                  "%s", PB_GET_ERROR(&is));
    ck_assert_uint_eq(resp.which_msg, nnedit_v1_ForwardResponse_chunk_tag);
    out->hdr = resp.msg.chunk;
  } else {
    NNE_PB_DEC(out->hdr.data, nne_pb_bytes_dec, &st);
    ck_assert_msg(pb_decode_ex(&is, nnedit_v1_TensorChunk_fields, &out->hdr,
                               PB_DECODE_NOINIT),
                  "%s", PB_GET_ERROR(&is));
  }
  ck_assert_uint_eq(is.bytes_left, 0);
  ck_assert(!st.overflow);
  out->data_len = st.len;
  free(wire);
}

static nne_tensor_t *f32_tensor(const int64_t *shape, int ndim, size_t numel) {
  float *v = malloc((numel ? numel : 1) * sizeof *v);
  nne_tensor_t *t = NULL;
  nne_err_t err;
  size_t i;
  ck_assert_ptr_nonnull(v);
  for (i = 0; i < numel; i++)
    v[i] = (float)i * 0.5f - 3.0f;
  ck_assert_msg(nne_tensor_from_host(NNE_DTYPE_F32, shape, ndim, v, &t, &err) ==
                    0,
                "%s", err.msg);
  free(v);
  return t;
}

static const uint8_t *host(nne_tensor_t *t) {
  const void *p;
  nne_err_t err;
  ck_assert_msg(nne_tensor_host_data(t, &p, &err) == 0, "%s", err.msg);
  return p;
}

static void grpc_setup(void) {
  grpc_init();
}
static void grpc_teardown(void) {
  grpc_shutdown();
}

/* Streams t in chunks of max_chunk and checks every chunk; returns how many
 * there were. */
static size_t stream_and_check(nne_tensor_t *t, size_t max_chunk) {
  const uint8_t *data = host(t);
  size_t total = nne_tensor_nbytes(t), sent = 0, count = 0;
  uint8_t *seen = malloc(total ? total : 1);
  bool done = false;
  int i;

  ck_assert_ptr_nonnull(seen);
  while (!done) {
    got_chunk_t c;
    size_t before = sent, want;
    grpc_byte_buffer *bb = nne_chunk_next("layers.0.out", t, data, total,
                                          max_chunk, CHUNK_TAG, &sent, &done);
    ck_assert_ptr_nonnull(bb);
    ck_assert_uint_lt(count, total / max_chunk + 2); /* it must end */
    want = total - before < max_chunk ? total - before : max_chunk;
    ck_assert_uint_eq(sent, before + want);
    decode_chunk(bb, CHUNK_TAG, &c);
    grpc_byte_buffer_destroy(bb);

    ck_assert_str_eq(c.hdr.name, "layers.0.out");
    ck_assert_int_eq(c.hdr.dtype, nnedit_v1_DType_DTYPE_FLOAT32);
    ck_assert_int_eq(c.hdr.shape_count, nne_tensor_ndim(t));
    for (i = 0; i < nne_tensor_ndim(t); i++)
      ck_assert_int_eq(c.hdr.shape[i], nne_tensor_shape(t)[i]);
    ck_assert_uint_eq(c.hdr.total_bytes, total);
    ck_assert_uint_eq(c.hdr.offset, before);
    ck_assert_uint_eq(c.data_len, want);
    ck_assert(c.hdr.last == done);
    ck_assert(done == (sent == total));
    memcpy(seen + before, c.data, c.data_len);
    count++;
  }
  ck_assert(memcmp(seen, data, total) == 0);
  free(seen);
  return count;
}

START_TEST(test_chunks_cover_the_tensor) {
  int64_t shape[2] = {3, 5}; /* 60 bytes */
  nne_tensor_t *t = f32_tensor(shape, 2, 15);
  ck_assert_uint_eq(nne_tensor_nbytes(t), 60);
  /* 16 + 16 + 16 + 12: the last chunk is short. */
  ck_assert_uint_eq(stream_and_check(t, 16), 4);
  /* Sizes that divide exactly give no trailing empty chunk. */
  ck_assert_uint_eq(stream_and_check(t, 20), 3);
  ck_assert_uint_eq(stream_and_check(t, 60), 1);
  ck_assert_uint_eq(stream_and_check(t, 1 << 20), 1);
  ck_assert_uint_eq(stream_and_check(t, 59), 2);
  ck_assert_uint_eq(stream_and_check(t, 1), 60);
  nne_tensor_unref(t);
}
END_TEST

START_TEST(test_larger_tensor_many_chunks) {
  int64_t shape[3] = {2, 7, 33}; /* 1848 bytes */
  nne_tensor_t *t = f32_tensor(shape, 3, 2 * 7 * 33);
  ck_assert_uint_eq(stream_and_check(t, 500), 4);
  ck_assert_uint_eq(stream_and_check(t, 1000), 2);
  nne_tensor_unref(t);
}
END_TEST

START_TEST(test_empty_tensor_is_one_empty_chunk) {
  int64_t shape[2] = {0, 4};
  nne_tensor_t *t = f32_tensor(shape, 2, 0);
  const uint8_t *data = host(t);
  size_t sent = 0;
  bool done = false;
  grpc_byte_buffer *bb;
  got_chunk_t c;

  ck_assert_uint_eq(nne_tensor_nbytes(t), 0);
  bb = nne_chunk_next("empty", t, data, 0, 16, CHUNK_TAG, &sent, &done);
  ck_assert_ptr_nonnull(bb);
  ck_assert(done);
  ck_assert_uint_eq(sent, 0);
  decode_chunk(bb, CHUNK_TAG, &c);
  grpc_byte_buffer_destroy(bb);
  ck_assert_str_eq(c.hdr.name, "empty");
  ck_assert_int_eq(c.hdr.shape_count, 2);
  ck_assert_int_eq(c.hdr.shape[0], 0);
  ck_assert_int_eq(c.hdr.shape[1], 4);
  ck_assert_uint_eq(c.hdr.total_bytes, 0);
  ck_assert_uint_eq(c.hdr.offset, 0);
  ck_assert(c.hdr.last);
  ck_assert_uint_eq(c.data_len, 0);
  nne_tensor_unref(t);
}
END_TEST

START_TEST(test_scalar_and_other_dtypes) {
  /* A 0-d tensor has no shape entries; an int64 tensor says INT64. */
  int64_t vals[3] = {-1, 0, 1ll << 40}, shape1[1] = {3};
  float one = 2.5f;
  nne_tensor_t *s = NULL, *i64 = NULL;
  nne_err_t err;
  grpc_byte_buffer *bb;
  got_chunk_t c;

  ck_assert_int_eq(nne_tensor_from_host(NNE_DTYPE_F32, NULL, 0, &one, &s, &err),
                   0);
  bb = nne_chunk_make("s", s, host(s), 4, 0, 4, CHUNK_TAG);
  ck_assert_ptr_nonnull(bb);
  decode_chunk(bb, CHUNK_TAG, &c);
  grpc_byte_buffer_destroy(bb);
  ck_assert_int_eq(c.hdr.shape_count, 0);
  ck_assert_uint_eq(c.data_len, 4);
  ck_assert(memcmp(c.data, &one, 4) == 0);
  ck_assert(c.hdr.last);

  ck_assert_int_eq(
      nne_tensor_from_host(NNE_DTYPE_I64, shape1, 1, vals, &i64, &err), 0);
  bb = nne_chunk_make("ids", i64, host(i64), 24, 0, 24, CHUNK_TAG);
  ck_assert_ptr_nonnull(bb);
  decode_chunk(bb, CHUNK_TAG, &c);
  grpc_byte_buffer_destroy(bb);
  ck_assert_int_eq(c.hdr.dtype, nnedit_v1_DType_DTYPE_INT64);
  ck_assert_int_eq(c.hdr.shape[0], 3);
  ck_assert(memcmp(c.data, vals, 24) == 0);
  nne_tensor_unref(s);
  nne_tensor_unref(i64);
}
END_TEST

START_TEST(test_make_middle_piece_and_no_outer_field) {
  /* A middle piece: not last, at its offset; with outer_tag 0 the bytes
   * are a bare TensorChunk. */
  int64_t shape[1] = {10};
  nne_tensor_t *t = f32_tensor(shape, 1, 10);
  const uint8_t *data = host(t);
  grpc_byte_buffer *bb = nne_chunk_make("x", t, data, 40, 8, 12, 0);
  got_chunk_t c;
  ck_assert_ptr_nonnull(bb);
  decode_chunk(bb, 0, &c);
  grpc_byte_buffer_destroy(bb);
  ck_assert_str_eq(c.hdr.name, "x");
  ck_assert_uint_eq(c.hdr.offset, 8);
  ck_assert_uint_eq(c.hdr.total_bytes, 40);
  ck_assert(!c.hdr.last);
  ck_assert_uint_eq(c.data_len, 12);
  ck_assert(memcmp(c.data, data + 8, 12) == 0);
  nne_tensor_unref(t);
}
END_TEST

START_TEST(test_payload_outlives_the_callers_reference) {
  /* The payload slice points into the tensor's host bytes and holds its
   * own reference: with the caller's reference gone the bytes must still
   * be there (under ASan a freed tensor here is a use after free). */
  int64_t shape[2] = {4, 8};
  nne_tensor_t *t = f32_tensor(shape, 2, 32);
  const uint8_t *data = host(t);
  uint8_t copy[128];
  grpc_byte_buffer *bb;
  got_chunk_t c;

  memcpy(copy, data, sizeof copy);
  bb = nne_chunk_make("kept", t, data, 128, 0, 128, CHUNK_TAG);
  ck_assert_ptr_nonnull(bb);
  nne_tensor_unref(t);
  decode_chunk(bb, CHUNK_TAG, &c);
  ck_assert_uint_eq(c.data_len, 128);
  ck_assert(memcmp(c.data, copy, 128) == 0);
  grpc_byte_buffer_destroy(bb); /* drops the last reference */
}
END_TEST

START_TEST(test_name_bounds) {
  /* TensorChunk.name holds 255 bytes: that name goes through whole; a
   * longer one cannot be encoded and must be refused (NULL), as chunk.h
   * says, not cut: a truncated name would reach the client as another
   * tensor's name. (chunk.c used to cut it with snprintf; today's callers
   * bound their names first, so only this test reached it.) */
  int64_t shape[1] = {2};
  nne_tensor_t *t = f32_tensor(shape, 1, 2);
  const uint8_t *data = host(t);
  char name[400];
  grpc_byte_buffer *bb;
  got_chunk_t c;
  size_t sent = 0;
  bool done = false;

  memset(name, 'a', sizeof name);
  name[255] = '\0';
  bb = nne_chunk_make(name, t, data, 8, 0, 8, CHUNK_TAG);
  ck_assert_ptr_nonnull(bb);
  decode_chunk(bb, CHUNK_TAG, &c);
  grpc_byte_buffer_destroy(bb);
  ck_assert_str_eq(c.hdr.name, name);

  name[255] = 'b';
  name[300] = '\0';
  bb = nne_chunk_make(name, t, data, 8, 0, 8, CHUNK_TAG);
  if (bb != NULL) {
    decode_chunk(bb, CHUNK_TAG, &c);
    grpc_byte_buffer_destroy(bb);
    ck_abort_msg("a %zu-byte name was encoded as the %zu-byte '...%s'",
                 strlen(name), strlen(c.hdr.name),
                 c.hdr.name + strlen(c.hdr.name) - 5);
  }
  /* nne_chunk_next neither advances nor finishes on a refused chunk. */
  ck_assert_ptr_null(
      nne_chunk_next(name, t, data, 8, 4, CHUNK_TAG, &sent, &done));
  ck_assert_uint_eq(sent, 0);
  ck_assert(!done);
  nne_tensor_unref(t);
}
END_TEST

static Suite *chunk_suite(void) {
  Suite *s = suite_create("chunk");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, grpc_setup, grpc_teardown);
  tcase_add_test(tc, test_chunks_cover_the_tensor);
  tcase_add_test(tc, test_larger_tensor_many_chunks);
  tcase_add_test(tc, test_empty_tensor_is_one_empty_chunk);
  tcase_add_test(tc, test_scalar_and_other_dtypes);
  tcase_add_test(tc, test_make_middle_piece_and_no_outer_field);
  tcase_add_test(tc, test_payload_outlives_the_callers_reference);
  tcase_add_test(tc, test_name_bounds);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return nne_test_run_suite(chunk_suite());
}
