/* nne_pb.h — nanopb glue shared by the daemon and libnnedit.
 *
 * The generated structs (nnedit/v1/<name>.pb.h) keep small, bounded fields inline
 * and carry every list and every tensor payload through pb_callback_t. This
 * module holds the callbacks that every message needs, so that handlers only
 * point a callback's `arg` at one of the small state structs below:
 *
 *   decoding   a string into a bounded heap buffer       nne_pb_str_dec
 *              a repeated int32/int64 field (packed or   nne_pb_i64_dec
 *              not) into a bounded growable array
 *              bytes into a caller-owned destination     nne_pb_bytes_dec
 *   encoding   a C string                                nne_pb_str_enc
 *              an int64 array as a packed field          nne_pb_i64_enc
 *              a byte range                              nne_pb_bytes_enc
 *              a list of submessages built on demand     nne_pb_list_enc
 *
 * and the two ends of the gRPC byte buffer: decoding straight from a
 * grpc_byte_buffer's slices (no merge into one copy), and encoding into a
 * new grpc_byte_buffer. It also frames zero-copy chunk messages, whose
 * payload travels as its own slice (nne_pb_frame_chunk).
 *
 * Nothing here allocates unless a function says so; every decode state has a
 * limit that the caller sets, and exceeding it fails the decode and sets the
 * state's `overflow` flag so the caller can report RESOURCE_EXHAUSTED or
 * INVALID_ARGUMENT naming the field.
 */
#ifndef NNE_PB_H
#define NNE_PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/byte_buffer.h>
#include <pb.h>
#include <pb_decode.h>
#include <pb_encode.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- decode states ------------------------------------------------------ */

/* A string decoded into heap memory (NUL-terminated). `max` bounds its
 * length in bytes; 0 means 1 MiB. Free `s` with free(). A repeated string
 * field keeps only the last value. */
typedef struct nne_pb_str_dec {
  char *s;
  size_t len;
  size_t max;
  bool overflow;
} nne_pb_str_dec_t;

/* Strings of a repeated string field, each NUL-terminated on the heap (free
 * with nne_pb_str_list_free). At most `max` strings of at most `max_len`
 * bytes each. */
typedef struct nne_pb_str_list_dec {
  char **v;
  size_t n;
  size_t cap;
  size_t max;
  size_t max_len;
  bool overflow;
} nne_pb_str_list_dec_t;

void nne_pb_str_list_free(nne_pb_str_list_dec_t *st);

/* Integers of a repeated int32/int64/uint32/uint64 field, appended to `v`
 * (heap, grown by doubling, freed with free()). At most `max` values in total
 * (0 means none allowed). Accepts packed and unpacked encodings. */
typedef struct nne_pb_i64_dec {
  int64_t *v;
  size_t n;
  size_t cap;
  size_t max;
  bool overflow;
} nne_pb_i64_dec_t;

/* Bytes copied into a caller-owned destination at dst[off...]; the field
 * must fit in cap - off bytes. `len` is set to the number of bytes the last
 * occurrence carried. */
typedef struct nne_pb_bytes_dec {
  uint8_t *dst;
  size_t cap;
  size_t off;
  size_t len;
  bool overflow;
} nne_pb_bytes_dec_t;

/* One occurrence of a repeated int32/int64 field whose tag was just read
 * with wire type wt: a varint, or a packed run; appended to st. */
bool nne_pb_decode_int_occurrence(pb_istream_t *s, pb_wire_type_t wt,
                                  nne_pb_i64_dec_t *st);

/* Decodes a whole message (the stream's remaining bytes) of which only
 * field `tag`, a repeated int32/int64 field, matters: its values are
 * appended to st, in varint or packed form; any other wire type for it is
 * refused (a callback cannot tell a fixed64 from eight varints). Other
 * fields are skipped. For rows such as TokenRow.ids. */
bool nne_pb_decode_int_list_msg(pb_istream_t *s, uint32_t tag,
                                nne_pb_i64_dec_t *st);

bool nne_pb_str_dec(pb_istream_t *s, const pb_field_t *f, void **arg);
bool nne_pb_str_list_dec(pb_istream_t *s, const pb_field_t *f, void **arg);
bool nne_pb_i64_dec(pb_istream_t *s, const pb_field_t *f, void **arg);
bool nne_pb_bytes_dec(pb_istream_t *s, const pb_field_t *f, void **arg);

/* True when s (NUL-terminated) is valid UTF-8. nanopb (as built here) does
 * not check the string fields it decodes, and proto3 strings must be UTF-8:
 * a client's string that a response echoes back (a label, a save's name)
 * is checked with this, or every strict client (protobuf's own parsers)
 * would fail to read that response. */
bool nne_pb_utf8_valid(const char *s);

/* Point a decode callback at a state. */
#define NNE_PB_DEC(cb, fn, state)                                              \
  do {                                                                         \
    (cb).funcs.decode = (fn);                                                  \
    (cb).arg = (state);                                                        \
  } while (0)

/* ---- encode states ------------------------------------------------------ */

typedef struct nne_pb_i64_enc {
  const int64_t *v;
  size_t n;
} nne_pb_i64_enc_t;

typedef struct nne_pb_bytes_enc {
  const void *p;
  size_t n;
} nne_pb_bytes_enc_t;

/* A repeated submessage field whose elements are built one at a time by
 * fill(ctx, i, msg) into a zeroed struct of the field's message type (which
 * may itself set encode callbacks). fill returns false to abort encoding.
 * msg_size is sizeof that struct: nanopb's field descriptor only knows the
 * size of the callback, not of the message behind it. */
typedef struct nne_pb_list_enc {
  size_t n;
  bool (*fill)(void *ctx, size_t i, void *msg);
  void *ctx;
  size_t msg_size;
} nne_pb_list_enc_t;

/* arg: a `const char *` (NULL encodes nothing). */
bool nne_pb_str_enc(pb_ostream_t *s, const pb_field_t *f, void *const *arg);

/* A repeated string field from an array of C strings. */
typedef struct nne_pb_str_list_enc {
  const char *const *v;
  size_t n;
} nne_pb_str_list_enc_t;

/* arg: nne_pb_str_list_enc_t*. */
bool nne_pb_str_list_enc(pb_ostream_t *s, const pb_field_t *f,
                         void *const *arg);
/* arg: nne_pb_i64_enc_t*; written packed. Works for int32 fields too when
 * the values fit (negative values take the 10-byte form either way). */
bool nne_pb_i64_enc(pb_ostream_t *s, const pb_field_t *f, void *const *arg);
/* arg: nne_pb_bytes_enc_t*. */
bool nne_pb_bytes_enc(pb_ostream_t *s, const pb_field_t *f, void *const *arg);
/* arg: nne_pb_list_enc_t*. The submessage type comes from the field. */
bool nne_pb_list_enc(pb_ostream_t *s, const pb_field_t *f, void *const *arg);

#define NNE_PB_ENC(cb, fn, state)                                              \
  do {                                                                         \
    (cb).funcs.encode = (fn);                                                  \
    (cb).arg = (void *)(state);                                                \
  } while (0)

/* ---- gRPC byte buffers -------------------------------------------------- */

/* Decodes a message straight from a byte buffer's slices. Returns false on
 * a malformed message (or a callback's refusal) and writes nanopb's reason
 * into errbuf. The buffer is not consumed. */
bool nne_pb_decode_bb(grpc_byte_buffer *bb, const pb_msgdesc_t *fields,
                      void *msg, char *errbuf, size_t errlen);

/* Encodes msg into a new byte buffer (*out, owned by the caller: destroy it
 * with grpc_byte_buffer_destroy once sent). Callbacks run twice (size, then
 * data) and must produce the same bytes both times. */
bool nne_pb_encode_bb(const pb_msgdesc_t *fields, const void *msg,
                      grpc_byte_buffer **out, char *errbuf, size_t errlen);

/* ---- zero-copy chunks --------------------------------------------------- */

/* Frames a message whose last field is a large bytes payload that travels as
 * a separate slice. Given the encoded inner message without the payload
 * (inner[inner_len], e.g. a TensorChunk with `data` unset), writes into
 * out[cap]:
 *   [outer_field tag, length of everything below]   (when outer_field != 0)
 *   inner bytes
 *   [data_field tag, data_len]
 * The payload's data_len bytes must follow on the wire. Returns the number of
 * bytes written, or 0 when cap is too small. cap >= inner_len + 32 always
 * suffices. */
size_t nne_pb_frame_chunk(const uint8_t *inner, size_t inner_len,
                          uint32_t data_field, size_t data_len,
                          uint32_t outer_field, uint8_t *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* NNE_PB_H */
