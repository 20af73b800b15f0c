/* npy.h — reads NumPy .npy files (the fixtures' reference tensors).
 *
 * Formats 1.0, 2.0 and 3.0; little-endian or single-byte dtypes; C order
 * only. That is what numpy.save writes for the arrays the fixture generator
 * saves; anything else is refused with a message, never guessed at.
 *
 *   nne_npy_t a;
 *   char msg[256];
 *   if (nne_npy_load(path, &a, msg, sizeof msg) != 0) fail(msg);
 *   ... a.dtype, a.ndim, a.shape, a.data ...
 *   nne_npy_free(&a);
 *
 * This file is test support: it depends on nothing of the daemon's, so client
 * tests can link it too. Its dtype numbers equal engine.h's nne_dtype_t (and
 * the wire enum nnedit.v1.DType); test_engine holds them equal.
 */
#ifndef NNE_TEST_NPY_H
#define NNE_TEST_NPY_H

#include <stddef.h>
#include <stdint.h>

#define NNE_NPY_MAX_DIMS 8

enum nne_npy_dtype {
  NNE_NPY_INVALID = 0,
  NNE_NPY_F32 = 1,  /* <f4 */
  NNE_NPY_F16 = 2,  /* <f2 */
  NNE_NPY_BF16 = 3, /* (numpy has none; never returned) */
  NNE_NPY_F64 = 4,  /* <f8 */
  NNE_NPY_I64 = 5,  /* <i8 */
  NNE_NPY_I32 = 6,  /* <i4 */
  NNE_NPY_I16 = 7,  /* <i2 */
  NNE_NPY_I8 = 8,   /* |i1 */
  NNE_NPY_U8 = 9,   /* |u1 */
  NNE_NPY_BOOL = 10 /* |b1 */
};

typedef struct nne_npy {
  int dtype;       /* enum nne_npy_dtype */
  size_t itemsize; /* bytes per element */
  int ndim;        /* 0 for a scalar */
  int64_t shape[NNE_NPY_MAX_DIMS];
  size_t numel;  /* product of shape (1 for a scalar) */
  size_t nbytes; /* numel * itemsize */
  void *data;    /* malloc'd, C order, little-endian; NULL when nbytes == 0 */
} nne_npy_t;

/* Reads the file at `path` into *out (which the caller then frees with
 * nne_npy_free). Returns 0, or -1 with a message naming the file and the
 * problem in msg[msg_len]; *out is untouched on failure. */
int nne_npy_load(const char *path, nne_npy_t *out, char *msg, size_t msg_len);

/* The same for a file's bytes already in memory (buf[len]); the data is
 * copied. Messages name the header field at fault. */
int nne_npy_parse(const void *buf, size_t len, nne_npy_t *out, char *msg,
                  size_t msg_len);

/* Frees a->data and zeroes *a. NULL is ignored. */
void nne_npy_free(nne_npy_t *a);

/* "float32", "int64", ... for an nne_npy_dtype; "invalid" otherwise. */
const char *nne_npy_dtype_name(int dtype);

#endif /* NNE_TEST_NPY_H */
