/* tensor.c — dtypes, tensors handed over by callers, and the reassembler of
 * TensorChunk runs (internal.h, block tensor.c). */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(NNE__FIELD_SIZE(nnedit_v1_TensorChunk, name) ==
                   NNE_CLIENT_NAME_MAX,
               "TensorChunk.name bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_TensorChunk, shape) ==
                   NNE_CLIENT_MAX_DIMS * sizeof(int64_t),
               "TensorChunk.shape bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_Tensor, shape) ==
                   NNE_CLIENT_MAX_DIMS * sizeof(int64_t),
               "Tensor.shape bound");
/* Dtypes go on the wire as their numbers. */
_Static_assert((int)nnedit_v1_DType_DTYPE_FLOAT32 ==
                       (int)NNE_CLIENT_DTYPE_FLOAT32 &&
                   (int)nnedit_v1_DType_DTYPE_BOOL ==
                       (int)NNE_CLIENT_DTYPE_BOOL,
               "DType numbers");

/* ---- dtypes -------------------------------------------------------------- */

static const struct {
  const char *name;
  size_t size;
} dtypes[] = {
    [NNE_CLIENT_DTYPE_UNSPECIFIED] = {"unspecified", 0},
    [NNE_CLIENT_DTYPE_FLOAT32] = {"float32", 4},
    [NNE_CLIENT_DTYPE_FLOAT16] = {"float16", 2},
    [NNE_CLIENT_DTYPE_BFLOAT16] = {"bfloat16", 2},
    [NNE_CLIENT_DTYPE_FLOAT64] = {"float64", 8},
    [NNE_CLIENT_DTYPE_INT64] = {"int64", 8},
    [NNE_CLIENT_DTYPE_INT32] = {"int32", 4},
    [NNE_CLIENT_DTYPE_INT16] = {"int16", 2},
    [NNE_CLIENT_DTYPE_INT8] = {"int8", 1},
    [NNE_CLIENT_DTYPE_UINT8] = {"uint8", 1},
    [NNE_CLIENT_DTYPE_BOOL] = {"bool", 1},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

const char *nne_client_dtype_name(int dtype) {
  if (dtype <= 0 || dtype >= N_DTYPES)
    return dtypes[0].name;
  return dtypes[dtype].name;
}

size_t nne_client_dtype_size(int dtype) {
  if (dtype <= 0 || dtype >= N_DTYPES)
    return 0;
  return dtypes[dtype].size;
}

int nne_client_dtype_parse(const char *name, nne_client_dtype_t *out,
                           nne_client_err_t *err) {
  static const struct {
    const char *alias;
    nne_client_dtype_t dt;
  } aliases[] = {
      {"fp32", NNE_CLIENT_DTYPE_FLOAT32},  {"f32", NNE_CLIENT_DTYPE_FLOAT32},
      {"float", NNE_CLIENT_DTYPE_FLOAT32}, {"fp16", NNE_CLIENT_DTYPE_FLOAT16},
      {"f16", NNE_CLIENT_DTYPE_FLOAT16},   {"half", NNE_CLIENT_DTYPE_FLOAT16},
      {"bf16", NNE_CLIENT_DTYPE_BFLOAT16}, {"fp64", NNE_CLIENT_DTYPE_FLOAT64},
      {"f64", NNE_CLIENT_DTYPE_FLOAT64},   {"double", NNE_CLIENT_DTYPE_FLOAT64},
      {"long", NNE_CLIENT_DTYPE_INT64},    {"int", NNE_CLIENT_DTYPE_INT32},
      {"short", NNE_CLIENT_DTYPE_INT16},   {"char", NNE_CLIENT_DTYPE_INT8},
      {"byte", NNE_CLIENT_DTYPE_UINT8},
  };
  int i;
  size_t k;

  if (name == NULL || out == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "dtype: NULL argument");
  for (i = 1; i < N_DTYPES; i++)
    if (strcmp(name, dtypes[i].name) == 0) {
      *out = (nne_client_dtype_t)i;
      return 0;
    }
  for (k = 0; k < sizeof aliases / sizeof aliases[0]; k++)
    if (strcmp(name, aliases[k].alias) == 0) {
      *out = aliases[k].dt;
      return 0;
    }
  return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                      "unknown dtype '%.64s' (float32, float16, bfloat16, "
                      "float64, int64, int32, int16, int8, uint8, bool)",
                      name);
}

/* ---- tensors ------------------------------------------------------------- */

void nne_client_tensor_free(nne_client_tensor_t *t) {
  if (t == NULL)
    return;
  free(t->data);
  memset(t, 0, sizeof *t);
}

void nne__tensors_free(nne_client_tensor_t *v, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    nne_client_tensor_free(&v[i]);
  free(v);
}

const nne_client_tensor_t *nne__tensor_find(const nne_client_tensor_t *v,
                                            size_t n, const char *name) {
  size_t i;
  if (name == NULL)
    return NULL;
  for (i = 0; i < n; i++)
    if (strcmp(v[i].name, name) == 0)
      return &v[i];
  return NULL;
}

bool nne__saved_listed(nne__dec_t *d, const char *what, const char *name,
                       const nne_client_tensor_t *v, size_t n, size_t k) {
  if (k < n && strcmp(name, v[k].name) == 0)
    return true;
  return nne__dec_fail(
      d, NNE_CLIENT_INTERNAL, "%s is '%.200s', but %s%.200s%s", what, name,
      k < n ? "the tensor sent there was '" : "no such tensor was sent",
      k < n ? v[k].name : "", k < n ? "'" : "");
}

uint64_t nne_client_tensor_numel(const nne_client_tensor_t *t) {
  uint64_t n = 1;
  size_t i;
  if (t == NULL)
    return 0;
  for (i = 0; i < t->ndim && i < NNE_CLIENT_MAX_DIMS; i++)
    n *= t->shape[i] > 0 ? (uint64_t)t->shape[i] : 0;
  return n;
}

bool nne__tensor_size(int dtype, const int64_t *shape, size_t ndim,
                      uint64_t *out) {
  uint64_t n = nne_client_dtype_size(dtype);
  size_t i;
  for (i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return false;
    if (shape[i] != 0 && n > UINT64_MAX / (uint64_t)shape[i])
      return false;
    n *= (uint64_t)shape[i];
  }
  *out = n;
  return true;
}

bool nne__tensor_check(const nne_client_tensor_t *t, char *why, size_t cap) {
  uint64_t size;
  size_t k;
  if (nne_client_dtype_size(t->dtype) == 0) {
    snprintf(why, cap, "unknown dtype %d", (int)t->dtype);
    return false;
  }
  if (t->ndim > NNE_CLIENT_MAX_DIMS) {
    snprintf(why, cap, "%zu dims, more than %d", t->ndim, NNE_CLIENT_MAX_DIMS);
    return false;
  }
  for (k = 0; k < t->ndim; k++)
    if (t->shape[k] < 0) {
      snprintf(why, cap, "shape[%zu] is %" PRId64, k, t->shape[k]);
      return false;
    }
  if (!nne__tensor_size(t->dtype, t->shape, t->ndim, &size) ||
      size != t->nbytes) {
    snprintf(why, cap, "nbytes %zu is not numel(shape) * %zu", t->nbytes,
             nne_client_dtype_size(t->dtype));
    return false;
  }
  if (t->nbytes > 0 && t->data == NULL) {
    snprintf(why, cap, "data is NULL");
    return false;
  }
  return true;
}

/* ---- the reassembler ----------------------------------------------------- */

void nne__asm_init(nne__asm_t *a, uint64_t max_bytes) {
  memset(a, 0, sizeof *a);
  a->max_bytes = max_bytes;
}

void nne__asm_reset(nne__asm_t *a) {
  uint64_t max = a->max_bytes;
  free(a->t.data);
  free(a->stash);
  nne__asm_init(a, max);
}

void nne__asm_refused(const nne__asm_t *a, nne__dec_t *d) {
  if (a->err.code != 0)
    nne__dec_fail(d, a->err.code, "%s", a->err.message);
}

/* Where the data callback puts the bytes of the chunk being decoded. */
typedef struct dest {
  uint8_t *dst;
  size_t cap, off;
  bool to_stash;
} dest_t;

/* A first chunk whose total_bytes came before its data: the tensor's buffer,
 * allocated now, once. */
static bool first_dest(nne__asm_t *a, const nnedit_v1_TensorChunk *c, size_t n,
                       dest_t *d) {
  if (c->total_bytes > a->max_bytes) {
    nne__err_set(&a->err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                 "tensor '%s' has %" PRIu64 " bytes, over this client's limit "
                 "of %" PRIu64 " (opts.max_tensor_bytes)",
                 c->name, c->total_bytes, a->max_bytes);
    return false;
  }
  if (n > c->total_bytes) {
    nne__err_set(&a->err, NNE_CLIENT_INTERNAL,
                 "tensor '%s': first chunk has %zu bytes of %" PRIu64, c->name,
                 n, c->total_bytes);
    return false;
  }
  if (!a->allocated) {
    free(a->t.data);
    a->t.data = malloc((size_t)c->total_bytes);
    if (a->t.data == NULL) {
      nne__err_set(&a->err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                   "tensor '%s': cannot allocate %" PRIu64 " bytes", c->name,
                   c->total_bytes);
      return false;
    }
    a->t.nbytes = (size_t)c->total_bytes;
    a->allocated = true;
  } else if (a->t.nbytes != c->total_bytes) {
    nne__err_set(&a->err, NNE_CLIENT_INTERNAL,
                 "tensor '%s': total_bytes changed within a chunk", c->name);
    return false;
  }
  d->dst = a->t.data;
  d->cap = a->t.nbytes;
  d->off = 0;
  return true;
}

/* Places the bytes of a chunk's `data` field. A continuation goes straight
 * into the buffer at the bytes received so far (the offset field is checked
 * against that after the decode, so that its position on the wire does not
 * matter; a wrong offset fails the call having only written where the rest
 * of the tensor had yet to go). A first chunk goes straight in once its
 * total_bytes has been seen, else aside into the stash. */
static bool asm_data_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  nne__asm_t *a = *arg;
  nnedit_v1_TensorChunk *c = a->msg;
  size_t n = s->bytes_left;
  nne_pb_bytes_dec_t b;
  void *barg = &b;
  dest_t d = {NULL, 0, 0, false};

  if (a->active) {
    if (n > a->t.nbytes - a->got) {
      nne__err_set(&a->err, NNE_CLIENT_INTERNAL,
                   "tensor '%s': chunk of %zu bytes at %" PRIu64
                   " overruns its %zu bytes",
                   a->t.name, n, a->got, a->t.nbytes);
      return false;
    }
    d.dst = a->t.data;
    d.cap = a->t.nbytes;
    d.off = a->got;
  } else if (c->total_bytes > 0) {
    if (!first_dest(a, c, n, &d))
      return false;
  } else {
    /* Header not seen yet (or an empty tensor, where n must be 0). Bounded
     * by the message, itself bounded by the receive limit. */
    d.to_stash = true;
    free(a->stash);
    a->stash = NULL;
    a->stash_len = 0;
    if (n > a->max_bytes) {
      nne__err_set(&a->err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                   "tensor chunk of %zu bytes is over this client's limit", n);
      return false;
    }
    if (n > 0 && (a->stash = malloc(n)) == NULL) {
      nne__err_set(&a->err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                   "cannot allocate %zu bytes", n);
      return false;
    }
    d.dst = a->stash;
    d.cap = n;
  }
  memset(&b, 0, sizeof b);
  b.dst = d.dst;
  b.cap = d.cap;
  b.off = d.off;
  if (!nne_pb_bytes_dec(s, f, &barg))
    return false;
  /* The field may repeat (protobuf keeps the last occurrence), so these
   * record the last one rather than add up. */
  if (d.to_stash)
    a->stash_len = b.len;
  else
    a->placed = b.len;
  return true;
}

void nne__asm_arm(nne__asm_t *a, nnedit_v1_TensorChunk *msg) {
  *msg = (nnedit_v1_TensorChunk)nnedit_v1_TensorChunk_init_zero;
  NNE_PB_DEC(msg->data, asm_data_dec, a);
  a->msg = msg;
  a->placed = 0;
  a->allocated = false;
  free(a->stash);
  a->stash = NULL;
  a->stash_len = 0;
  memset(&a->err, 0, sizeof a->err);
}

/* The first chunk of a tensor: its header, and the data it placed or
 * stashed. */
static bool feed_first(nne__asm_t *a, const nnedit_v1_TensorChunk *c,
                       nne__dec_t *d) {
  uint64_t size;
  if (c->name[0] == '\0')
    return nne__dec_fail(d, NNE_CLIENT_INTERNAL, "tensor chunk without a name");
  if (c->offset != 0)
    return nne__dec_fail(d, NNE_CLIENT_INTERNAL,
                         "tensor '%s': first chunk seen at offset %" PRIu64
                         " (its start is missing)",
                         c->name, c->offset);
  if (nne_client_dtype_size(c->dtype) == 0)
    return nne__dec_fail(d, NNE_CLIENT_INTERNAL,
                         "tensor '%s': unknown dtype %d", c->name,
                         (int)c->dtype);
  if (!nne__tensor_size(c->dtype, c->shape, c->shape_count, &size))
    return nne__dec_fail(d, NNE_CLIENT_INTERNAL,
                         "tensor '%s': invalid shape (negative or "
                         "overflowing)",
                         c->name);
  if (size != c->total_bytes || (a->allocated && a->t.nbytes != size))
    return nne__dec_fail(d, NNE_CLIENT_INTERNAL,
                         "tensor '%s': total_bytes %" PRIu64
                         " is not numel * itemsize = %" PRIu64,
                         c->name, c->total_bytes, size);
  if (size > a->max_bytes)
    return nne__dec_fail(d, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "tensor '%s' has %" PRIu64 " bytes, over this "
                         "client's limit of %" PRIu64
                         " (opts.max_tensor_bytes)",
                         c->name, size, a->max_bytes);
  if (!a->allocated) {
    /* No data placed directly: an empty first chunk, or a stashed one. */
    free(a->t.data);
    a->t.data = NULL;
    a->t.nbytes = (size_t)size;
    if (size > 0 && (a->t.data = malloc((size_t)size)) == NULL)
      return nne__dec_fail(d, NNE_CLIENT_RESOURCE_EXHAUSTED,
                           "tensor '%s': cannot allocate %" PRIu64 " bytes",
                           c->name, size);
    if (a->stash_len > size)
      return nne__dec_fail(d, NNE_CLIENT_INTERNAL,
                           "tensor '%s': first chunk has %zu bytes of %" PRIu64,
                           c->name, a->stash_len, size);
    if (a->stash_len > 0)
      memcpy(a->t.data, a->stash, a->stash_len);
    a->placed = a->stash_len;
  }
  free(a->stash);
  a->stash = NULL;
  a->stash_len = 0;
  memcpy(a->t.name, c->name, sizeof a->t.name);
  a->t.dtype = (nne_client_dtype_t)c->dtype;
  a->t.ndim = c->shape_count;
  memset(a->t.shape, 0, sizeof a->t.shape);
  memcpy(a->t.shape, c->shape, c->shape_count * sizeof c->shape[0]);
  a->got = 0;
  a->active = true;
  return true;
}

bool nne__asm_feed(nne__asm_t *a, bool *done, nne__dec_t *d) {
  const nnedit_v1_TensorChunk *c = a->msg;

  *done = false;
  if (c == NULL)
    return nne__dec_fail(d, NNE_CLIENT_INTERNAL,
                         "reassembler: chunk not armed");
  a->msg = NULL;
  if (a->complete)
    return nne__dec_fail(d, NNE_CLIENT_INTERNAL,
                         "reassembler: completed tensor not taken");
  if (!a->active) {
    if (!feed_first(a, c, d))
      return false;
  } else {
    /* A continuation: same tensor, next offset. Header fields, when a
     * server repeats them, must agree. */
    if (strcmp(c->name, a->t.name) != 0)
      return nne__dec_fail(d, NNE_CLIENT_INTERNAL,
                           "chunk of tensor '%s' while tensor '%s' is "
                           "incomplete (%" PRIu64 " of %zu bytes)",
                           c->name, a->t.name, a->got, a->t.nbytes);
    if (c->offset != a->got)
      return nne__dec_fail(d, NNE_CLIENT_INTERNAL,
                           "tensor '%s': chunk at offset %" PRIu64
                           ", expected %" PRIu64,
                           a->t.name, c->offset, a->got);
    if ((c->total_bytes != 0 && c->total_bytes != a->t.nbytes) ||
        (c->dtype != 0 && (int)c->dtype != (int)a->t.dtype))
      return nne__dec_fail(d, NNE_CLIENT_INTERNAL,
                           "tensor '%s': chunk at %" PRIu64
                           " changes dtype or total_bytes",
                           a->t.name, c->offset);
  }
  a->got += a->placed;
  a->placed = 0;
  a->allocated = false;
  if (a->got > a->t.nbytes) /* the data callback prevents this */
    return nne__dec_fail(d, NNE_CLIENT_INTERNAL, "tensor '%s': overrun",
                         a->t.name);
  if (c->last != (a->got == a->t.nbytes))
    return nne__dec_fail(d, NNE_CLIENT_INTERNAL,
                         c->last ? "tensor '%s': chunk marked last at %" PRIu64
                                   " of %zu bytes"
                                 : "tensor '%s': complete at %" PRIu64
                                   " of %zu bytes but the chunk is not "
                                   "marked last",
                         a->t.name, a->got, a->t.nbytes);
  if (c->last) {
    a->active = false;
    a->complete = true;
    *done = true;
  }
  return true;
}

void nne__asm_take(nne__asm_t *a, nne_client_tensor_t *out) {
  *out = a->t;
  memset(&a->t, 0, sizeof a->t);
  a->complete = false;
  a->active = false;
  a->got = 0;
}

int nne__asm_end(const nne__asm_t *a, const char *method,
                 nne_client_err_t *err) {
  if (!a->active)
    return 0;
  return nne__err_set(err, NNE_CLIENT_INTERNAL,
                      "%s: tensor '%s' cut short at %" PRIu64 " of %zu bytes",
                      nne__method_name(method), a->t.name, a->got, a->t.nbytes);
}
