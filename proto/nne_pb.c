/* nne_pb.c — see nne_pb.h. */
#include "nne_pb.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>

#include "base/vec.h"

#define NNE_PB_STR_DEFAULT_MAX (1u << 20)
/* Room for any generated message struct that a list element may be. */
#define NNE_PB_MSG_SCRATCH 16384

/* ---- decode callbacks --------------------------------------------------- */

bool nne_pb_utf8_valid(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p != 0) {
    uint32_t cp, min;
    size_t n, i;
    if (*p < 0x80) {
      p++;
      continue;
    }
    if ((*p & 0xE0) == 0xC0) {
      n = 1;
      cp = *p & 0x1Fu;
      min = 0x80;
    } else if ((*p & 0xF0) == 0xE0) {
      n = 2;
      cp = *p & 0x0Fu;
      min = 0x800;
    } else if ((*p & 0xF8) == 0xF0) {
      n = 3;
      cp = *p & 0x07u;
      min = 0x10000;
    } else {
      return false;
    }
    /* A continuation byte is 10xxxxxx; the terminating NUL is not one, so
     * a sequence cut short stops here without reading past it. */
    for (i = 1; i <= n; i++) {
      if ((p[i] & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    /* Overlong forms, UTF-16 surrogates and values past U+10FFFF are not
     * UTF-8 either. */
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    p += n + 1;
  }
  return true;
}

bool nne_pb_str_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  nne_pb_str_dec_t *st = *arg;
  size_t max = st->max ? st->max : NNE_PB_STR_DEFAULT_MAX;
  size_t n = s->bytes_left;
  char *p;

  (void)f;
  if (n > max) {
    st->overflow = true;
    PB_RETURN_ERROR(s, "string too long");
  }
  p = malloc(n + 1);
  if (p == NULL)
    PB_RETURN_ERROR(s, "out of memory");
  if (!pb_read(s, (pb_byte_t *)p, n)) {
    free(p);
    return false;
  }
  p[n] = '\0';
  free(st->s);
  st->s = p;
  st->len = n;
  return true;
}

bool nne_pb_str_list_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  nne_pb_str_list_dec_t *st = *arg;
  size_t n = s->bytes_left;
  char *p;

  (void)f;
  if (st->n >= st->max || n > st->max_len) {
    st->overflow = true;
    PB_RETURN_ERROR(s, st->n >= st->max ? "too many strings"
                                        : "string too long");
  }
  if (NNE_VEC_GROW(&st->v, &st->cap, st->n + 1) != 0)
    PB_RETURN_ERROR(s, "out of memory");
  p = malloc(n + 1);
  if (p == NULL)
    PB_RETURN_ERROR(s, "out of memory");
  if (!pb_read(s, (pb_byte_t *)p, n)) {
    free(p);
    return false;
  }
  p[n] = '\0';
  st->v[st->n++] = p;
  return true;
}

void nne_pb_str_list_free(nne_pb_str_list_dec_t *st) {
  size_t i;
  for (i = 0; i < st->n; i++)
    free(st->v[i]);
  free(st->v);
  st->v = NULL;
  st->n = st->cap = 0;
}

static bool i64_push(pb_istream_t *s, nne_pb_i64_dec_t *st, int64_t v) {
  if (st->n >= st->max) {
    st->overflow = true;
    PB_RETURN_ERROR(s, "too many values");
  }
  /* Never more room than st->max values, whatever doubling would give. */
  if (nne_vec_grow_max(&st->v, &st->cap, st->n + 1, sizeof *st->v,
                       st->max) != 0)
    PB_RETURN_ERROR(s, "out of memory");
  st->v[st->n++] = v;
  return true;
}

/* nanopb calls a callback once per unpacked element (with the stream
 * positioned at the varint) and once per packed run (with a substream of the
 * whole run). Both arrive here; a packed run is read until it is empty. */
bool nne_pb_i64_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  nne_pb_i64_dec_t *st = *arg;
  uint64_t v;

  (void)f;
  while (s->bytes_left > 0) {
    if (!pb_decode_varint(s, &v))
      return false;
    if (!i64_push(s, st, (int64_t)v))
      return false;
  }
  return true;
}

bool nne_pb_decode_int_occurrence(pb_istream_t *s, pb_wire_type_t wt,
                                  nne_pb_i64_dec_t *st) {
  uint64_t v;
  if (wt == PB_WT_VARINT)
    return pb_decode_varint(s, &v) && i64_push(s, st, (int64_t)v);
  if (wt == PB_WT_STRING) {
    pb_istream_t sub;
    if (!pb_make_string_substream(s, &sub))
      return false;
    while (sub.bytes_left > 0)
      if (!pb_decode_varint(&sub, &v) || !i64_push(&sub, st, (int64_t)v)) {
#ifndef PB_NO_ERRMSG
        s->errmsg = sub.errmsg;
#endif
        pb_close_string_substream(s, &sub);
        return false;
      }
    return pb_close_string_substream(s, &sub);
  }
  PB_RETURN_ERROR(s, "integer list field with a fixed-width wire type");
}

bool nne_pb_decode_int_list_msg(pb_istream_t *s, uint32_t tag,
                                nne_pb_i64_dec_t *st) {
  while (s->bytes_left > 0) {
    pb_wire_type_t wt;
    uint32_t t;
    bool eof;

    if (!pb_decode_tag(s, &wt, &t, &eof))
      return eof; /* eof here means a clean end of the message */
    if (t != tag) {
      if (!pb_skip_field(s, wt))
        return false;
      continue;
    }
    if (!nne_pb_decode_int_occurrence(s, wt, st))
      return false;
  }
  return true;
}

bool nne_pb_bytes_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  nne_pb_bytes_dec_t *st = *arg;
  size_t n = s->bytes_left;

  (void)f;
  if (st->off > st->cap || n > st->cap - st->off) {
    st->overflow = true;
    PB_RETURN_ERROR(s, "bytes field larger than its destination");
  }
  if (!pb_read(s, st->dst + st->off, n))
    return false;
  st->len = n;
  return true;
}

/* ---- encode callbacks --------------------------------------------------- */

bool nne_pb_str_enc(pb_ostream_t *s, const pb_field_t *f, void *const *arg) {
  const char *str = *arg;
  if (str == NULL)
    return true;
  return pb_encode_tag_for_field(s, f) &&
         pb_encode_string(s, (const pb_byte_t *)str, strlen(str));
}

bool nne_pb_str_list_enc(pb_ostream_t *s, const pb_field_t *f,
                         void *const *arg) {
  const nne_pb_str_list_enc_t *st = *arg;
  size_t i;
  if (st == NULL)
    return true;
  for (i = 0; i < st->n; i++)
    if (!pb_encode_tag_for_field(s, f) ||
        !pb_encode_string(s, (const pb_byte_t *)st->v[i], strlen(st->v[i])))
      return false;
  return true;
}

bool nne_pb_i64_enc(pb_ostream_t *s, const pb_field_t *f, void *const *arg) {
  const nne_pb_i64_enc_t *st = *arg;
  pb_ostream_t sizer = PB_OSTREAM_SIZING;
  size_t i;

  if (st == NULL || st->n == 0)
    return true;
  for (i = 0; i < st->n; i++)
    if (!pb_encode_varint(&sizer, (uint64_t)st->v[i]))
      return false;
  if (!pb_encode_tag(s, PB_WT_STRING, f->tag) ||
      !pb_encode_varint(s, sizer.bytes_written))
    return false;
  for (i = 0; i < st->n; i++)
    if (!pb_encode_varint(s, (uint64_t)st->v[i]))
      return false;
  return true;
}

bool nne_pb_bytes_enc(pb_ostream_t *s, const pb_field_t *f, void *const *arg) {
  const nne_pb_bytes_enc_t *st = *arg;
  if (st == NULL)
    return true;
  return pb_encode_tag_for_field(s, f) &&
         pb_encode_string(s, (const pb_byte_t *)st->p, st->n);
}

bool nne_pb_list_enc(pb_ostream_t *s, const pb_field_t *f, void *const *arg) {
  const nne_pb_list_enc_t *st = *arg;
  size_t i;

  if (st == NULL || st->n == 0)
    return true;
  if (f->submsg_desc == NULL || st->msg_size == 0 ||
      st->msg_size > NNE_PB_MSG_SCRATCH)
    PB_RETURN_ERROR(s, "list field is not a submessage that fits");
  {
    /* One element at a time on this stack frame: lists nest (a row's list of
     * tokens inside a list of rows), so the scratch cannot be shared. */
    max_align_t scratch[(NNE_PB_MSG_SCRATCH + sizeof(max_align_t) - 1) /
                        sizeof(max_align_t)];
    for (i = 0; i < st->n; i++) {
      memset(scratch, 0, st->msg_size);
      if (!st->fill(st->ctx, i, scratch))
        PB_RETURN_ERROR(s, "list element could not be built");
      if (!pb_encode_tag_for_field(s, f) ||
          !pb_encode_submessage(s, f->submsg_desc, scratch))
        return false;
    }
  }
  return true;
}

/* ---- byte buffers ------------------------------------------------------- */

/* Reads across the slices of a byte buffer without merging them. */
typedef struct bb_in {
  grpc_byte_buffer_reader reader;
  grpc_slice cur;
  size_t pos;
  bool have;
} bb_in_t;

static bool bb_read(pb_istream_t *s, pb_byte_t *buf, size_t count) {
  bb_in_t *in = s->state;
  while (count > 0) {
    size_t avail, take;
    if (!in->have || in->pos == GRPC_SLICE_LENGTH(in->cur)) {
      if (in->have)
        grpc_slice_unref(in->cur);
      in->have = false;
      if (!grpc_byte_buffer_reader_next(&in->reader, &in->cur))
        return false;
      in->have = true;
      in->pos = 0;
      continue;
    }
    avail = GRPC_SLICE_LENGTH(in->cur) - in->pos;
    take = avail < count ? avail : count;
    if (buf != NULL) {
      memcpy(buf, GRPC_SLICE_START_PTR(in->cur) + in->pos, take);
      buf += take;
    }
    in->pos += take;
    count -= take;
  }
  return true;
}

bool nne_pb_decode_bb(grpc_byte_buffer *bb, const pb_msgdesc_t *fields,
                      void *msg, char *errbuf, size_t errlen) {
  bb_in_t in;
  pb_istream_t s;
  bool ok;

  memset(&in, 0, sizeof in);
  if (bb == NULL) {
    /* An absent message decodes as the empty message. */
    s = pb_istream_from_buffer(NULL, 0);
    ok = pb_decode(&s, fields, msg);
  } else {
    if (!grpc_byte_buffer_reader_init(&in.reader, bb)) {
      if (errbuf && errlen)
        snprintf(errbuf, errlen, "cannot read message (compression?)");
      return false;
    }
    s.callback = bb_read;
    s.state = &in;
    s.bytes_left = grpc_byte_buffer_length(bb);
#ifndef PB_NO_ERRMSG
    s.errmsg = NULL;
#endif
    ok = pb_decode(&s, fields, msg);
    if (in.have)
      grpc_slice_unref(in.cur);
    grpc_byte_buffer_reader_destroy(&in.reader);
  }
  if (!ok && errbuf && errlen)
    snprintf(errbuf, errlen, "%s", PB_GET_ERROR(&s));
  return ok;
}

bool nne_pb_encode_bb(const pb_msgdesc_t *fields, const void *msg,
                      grpc_byte_buffer **out, char *errbuf, size_t errlen) {
  size_t size;
  grpc_slice slice;
  pb_ostream_t os;

  if (!pb_get_encoded_size(&size, fields, msg)) {
    if (errbuf && errlen)
      snprintf(errbuf, errlen, "cannot size message");
    return false;
  }
  slice = grpc_slice_malloc(size);
  os = pb_ostream_from_buffer(GRPC_SLICE_START_PTR(slice), size);
  if (!pb_encode(&os, fields, msg) || os.bytes_written != size) {
    if (errbuf && errlen)
      snprintf(errbuf, errlen, "%s", PB_GET_ERROR(&os));
    grpc_slice_unref(slice);
    return false;
  }
  *out = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  return true;
}

/* ---- chunk framing ------------------------------------------------------ */

static size_t put_varint(uint8_t *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}

static size_t varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

size_t nne_pb_frame_chunk(const uint8_t *inner, size_t inner_len,
                          uint32_t data_field, size_t data_len,
                          uint32_t outer_field, uint8_t *out, size_t cap) {
  uint64_t data_tag = ((uint64_t)data_field << 3) | PB_WT_STRING;
  uint64_t outer_tag = ((uint64_t)outer_field << 3) | PB_WT_STRING;
  size_t body = inner_len + varint_len(data_tag) + varint_len(data_len) +
                data_len;
  size_t need = inner_len + varint_len(data_tag) + varint_len(data_len);
  size_t n = 0;

  if (outer_field != 0)
    need += varint_len(outer_tag) + varint_len(body);
  if (need > cap)
    return 0;
  if (outer_field != 0) {
    n += put_varint(out + n, outer_tag);
    n += put_varint(out + n, body);
  }
  memcpy(out + n, inner, inner_len);
  n += inner_len;
  n += put_varint(out + n, data_tag);
  n += put_varint(out + n, data_len);
  return n;
}
