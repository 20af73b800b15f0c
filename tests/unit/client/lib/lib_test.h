/* lib_test.h — what the unit tests of client/lib/ share: protobuf messages
 * written by hand, field by field, so that a decoder meets what any daemon
 * may send (fields in any order, missing, repeated, over a bound). Header
 * only: each test is one executable.
 *
 *   buf_t m = {.n = 0};
 *   put_uint(&m, 1, 42);          // field 1, varint
 *   put_str(&m, 2, "text");       // field 2, length-delimited
 *   put_msg(&outer, 3, &m);       // m as field 3 of outer
 */
#ifndef NNE_TEST_LIB_TEST_H
#define NNE_TEST_LIB_TEST_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A growing protobuf message. */
typedef struct buf {
  uint8_t b[8192];
  size_t n;
} buf_t;

static inline void put_varint(buf_t *o, uint64_t v) {
  do {
    o->b[o->n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v != 0);
}

static inline void put_uint(buf_t *o, uint32_t field, uint64_t v) {
  put_varint(o, (uint64_t)field << 3 | 0);
  put_varint(o, v);
}

static inline void put_len(buf_t *o, uint32_t field, const void *p, size_t n) {
  put_varint(o, (uint64_t)field << 3 | 2);
  put_varint(o, n);
  memcpy(o->b + o->n, p, n);
  o->n += n;
}

static inline void put_msg(buf_t *o, uint32_t field, const buf_t *m) {
  put_len(o, field, m->b, m->n);
}

static inline void put_str(buf_t *o, uint32_t field, const char *s) {
  put_len(o, field, s, strlen(s));
}

static inline void put_float(buf_t *o, uint32_t field, float v) {
  put_varint(o, (uint64_t)field << 3 | 5);
  memcpy(o->b + o->n, &v, 4);
  o->n += 4;
}

static inline void put_double(buf_t *o, uint32_t field, double v) {
  put_varint(o, (uint64_t)field << 3 | 1);
  memcpy(o->b + o->n, &v, 8);
  o->n += 8;
}

#endif /* NNE_TEST_LIB_TEST_H */
