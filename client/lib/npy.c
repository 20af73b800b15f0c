/* npy.c — tensors to and from NumPy .npy files (nnedit.h,
 * nne_client_tensor_write_npy and nne_client_tensor_read_npy). */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *npy_descr(int dtype) {
  switch (dtype) {
  case NNE_CLIENT_DTYPE_FLOAT32:
  case NNE_CLIENT_DTYPE_BFLOAT16: /* widened on write */ return "<f4";
  case NNE_CLIENT_DTYPE_FLOAT16: return "<f2";
  case NNE_CLIENT_DTYPE_FLOAT64: return "<f8";
  case NNE_CLIENT_DTYPE_INT64: return "<i8";
  case NNE_CLIENT_DTYPE_INT32: return "<i4";
  case NNE_CLIENT_DTYPE_INT16: return "<i2";
  case NNE_CLIENT_DTYPE_INT8: return "|i1";
  case NNE_CLIENT_DTYPE_UINT8: return "|u1";
  case NNE_CLIENT_DTYPE_BOOL: return "|b1";
  default: return NULL;
  }
}

/* bfloat16 is the high half of a float32: widen 2-byte little-endian values
 * into 4-byte little-endian ones, a block at a time. */
static bool write_bf16_as_f32(FILE *f, const uint8_t *src, size_t n) {
  uint8_t buf[4096 * 4];
  size_t i, k;
  for (i = 0; i < n; i += k) {
    size_t block = n - i < 4096 ? n - i : 4096;
    for (k = 0; k < block; k++) {
      buf[4 * k + 0] = 0;
      buf[4 * k + 1] = 0;
      buf[4 * k + 2] = src[2 * (i + k) + 0];
      buf[4 * k + 3] = src[2 * (i + k) + 1];
    }
    if (fwrite(buf, 4, block, f) != block)
      return false;
  }
  return true;
}

int nne_client_tensor_write_npy(const nne_client_tensor_t *t, const char *path,
                                nne_client_err_t *err) {
  char hdr[512];
  size_t len, i, total;
  uint64_t size;
  const char *descr;
  FILE *f;
  bool ok;

  if (t == NULL || path == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "write_npy: NULL argument");
  descr = npy_descr(t->dtype);
  if (descr == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "write_npy: tensor '%s' has unknown dtype %d", t->name,
                        (int)t->dtype);
  if (t->ndim > NNE_CLIENT_MAX_DIMS ||
      !nne__tensor_size(t->dtype, t->shape, t->ndim, &size) ||
      size != t->nbytes || (t->nbytes > 0 && t->data == NULL))
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "write_npy: tensor '%s': shape, dtype and nbytes (%zu) "
                        "disagree",
                        t->name, t->nbytes);

  /* The header: magic, version 1.0, little-endian uint16 length, then a
   * Python dict literal padded with spaces and a newline so that the data
   * starts at a multiple of 64 bytes (numpy's own alignment). */
  len = (size_t)snprintf(hdr + 10, sizeof hdr - 10,
                         "{'descr': '%s', 'fortran_order': False, 'shape': (",
                         descr);
  for (i = 0; i < t->ndim; i++)
    len += (size_t)snprintf(hdr + 10 + len, sizeof hdr - 10 - len,
                            "%" PRId64 "%s", t->shape[i],
                            (t->ndim == 1 || i + 1 < t->ndim) ? ", " : "");
  if (t->ndim == 1)
    len -= 1; /* "(5,)" rather than "(5, )" */
  len += (size_t)snprintf(hdr + 10 + len, sizeof hdr - 10 - len, "), }");
  total = 10 + len + 1;
  total = (total + 63) / 64 * 64;
  memset(hdr + 10 + len, ' ', total - 10 - len - 1);
  hdr[total - 1] = '\n';
  memcpy(hdr, "\x93NUMPY\x01\x00", 8);
  hdr[8] = (char)((total - 10) & 0xff);
  hdr[9] = (char)((total - 10) >> 8);

  f = fopen(path, "wb");
  if (f == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT, "write_npy: %s: %s",
                        path, strerror(errno));
  ok = fwrite(hdr, 1, total, f) == total;
  if (ok && t->nbytes > 0) {
    if (t->dtype == NNE_CLIENT_DTYPE_BFLOAT16)
      ok = write_bf16_as_f32(f, t->data, t->nbytes / 2);
    else
      ok = fwrite(t->data, 1, t->nbytes, f) == t->nbytes;
  }
  if (fclose(f) != 0)
    ok = false;
  if (!ok) {
    int e = errno;
    remove(path);
    return nne__err_set(err, NNE_CLIENT_INTERNAL, "write_npy: %s: %s", path,
                        strerror(e));
  }
  return 0;
}

/* The value of key `key` in a .npy header dict ("{'descr': '<f4', ...}"),
 * or NULL: the text right after the key's colon, blanks skipped. */
static const char *npy_key(const char *hdr, const char *key) {
  size_t n = strlen(key);
  const char *p = hdr;
  while ((p = strstr(p, key)) != NULL) {
    const char *q = p + n;
    char quote = p > hdr ? p[-1] : '\0';
    if ((quote == '\'' || quote == '"') && *q == quote) {
      q++;
      while (*q == ' ')
        q++;
      if (*q == ':') {
        q++;
        while (*q == ' ')
          q++;
        return q;
      }
    }
    p += n;
  }
  return NULL;
}

static int npy_dtype(const char *descr, size_t len) {
  static const struct {
    const char *descr;
    nne_client_dtype_t dt;
  } map[] = {
      {"<f4", NNE_CLIENT_DTYPE_FLOAT32}, {"<f2", NNE_CLIENT_DTYPE_FLOAT16},
      {"<f8", NNE_CLIENT_DTYPE_FLOAT64}, {"<i8", NNE_CLIENT_DTYPE_INT64},
      {"<i4", NNE_CLIENT_DTYPE_INT32},   {"<i2", NNE_CLIENT_DTYPE_INT16},
      {"|i1", NNE_CLIENT_DTYPE_INT8},    {"|u1", NNE_CLIENT_DTYPE_UINT8},
      {"|b1", NNE_CLIENT_DTYPE_BOOL},    {"<i1", NNE_CLIENT_DTYPE_INT8},
      {"<u1", NNE_CLIENT_DTYPE_UINT8},   {"<b1", NNE_CLIENT_DTYPE_BOOL},
  };
  size_t k;
  for (k = 0; k < sizeof map / sizeof map[0]; k++)
    if (len == 3 && memcmp(descr, map[k].descr, 3) == 0)
      return map[k].dt;
  return 0;
}

/* Parses the header dict into t's dtype and shape. */
static int npy_header(const char *path, const char *hdr, nne_client_tensor_t *t,
                      nne_client_err_t *err) {
  const char *p, *end;
  char quote;

  if ((p = npy_key(hdr, "descr")) == NULL || (*p != '\'' && *p != '"'))
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "read_npy: %s: header has no 'descr'", path);
  quote = *p++;
  if ((end = strchr(p, quote)) == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "read_npy: %s: header 'descr' is not a string", path);
  t->dtype = (nne_client_dtype_t)npy_dtype(p, (size_t)(end - p));
  if (t->dtype == 0)
    return nne__err_set(
        err, NNE_CLIENT_INVALID_ARGUMENT,
        "read_npy: %s: header 'descr' '%.*s' is not one of <f4 <f2 "
        "<f8 <i8 <i4 <i2 |i1 |u1 |b1",
        path, (int)(end - p < 32 ? end - p : 32), p);
  if ((p = npy_key(hdr, "fortran_order")) == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "read_npy: %s: header has no 'fortran_order'", path);
  if (strncmp(p, "False", 5) != 0)
    return nne__err_set(
        err, NNE_CLIENT_INVALID_ARGUMENT,
        "read_npy: %s: header 'fortran_order' is not False (only "
        "C order is read)",
        path);
  if ((p = npy_key(hdr, "shape")) == NULL || *p != '(')
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "read_npy: %s: header has no 'shape' tuple", path);
  p++;
  t->ndim = 0;
  for (;;) {
    char *e;
    long long v;
    while (*p == ' ')
      p++;
    if (*p == ')')
      break;
    if (t->ndim == NNE_CLIENT_MAX_DIMS)
      return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                          "read_npy: %s: header 'shape' has more than %d dims",
                          path, NNE_CLIENT_MAX_DIMS);
    errno = 0;
    v = strtoll(p, &e, 10);
    if (e == p || errno != 0 || v < 0 || *p == '-')
      return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                          "read_npy: %s: header 'shape' element %zu is not a "
                          "non-negative integer",
                          path, t->ndim);
    t->shape[t->ndim++] = (int64_t)v;
    p = e;
    while (*p == ' ' || *p == 'L')
      p++;
    if (*p == ',')
      p++;
    else if (*p != ')')
      return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                          "read_npy: %s: header 'shape' is not a tuple of "
                          "integers",
                          path);
  }
  return 0;
}

int nne_client_tensor_read_npy(const char *path, uint64_t max_bytes,
                               nne_client_tensor_t *out,
                               nne_client_err_t *err) {
  unsigned char pre[12];
  char *hdr = NULL;
  size_t hlen, pre_len;
  uint64_t size;
  long data_at, file_end;
  FILE *f;
  int rc = 0;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (path == NULL || out == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "read_npy: NULL argument");
  if (max_bytes == 0)
    max_bytes = NNE_CLIENT_DEFAULT_MAX_TENSOR_BYTES;
  f = fopen(path, "rb");
  if (f == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT, "read_npy: %s: %s",
                        path, strerror(errno));
  /* Magic, version, then a 2-byte (1.0) or 4-byte (2.0, 3.0) little-endian
   * header length. */
  if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
    rc = nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                      "read_npy: %s: not a .npy file (no \\x93NUMPY magic)",
                      path);
    goto out;
  }
  if (pre[6] == 1) {
    hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    pre_len = 10;
  } else if ((pre[6] == 2 || pre[6] == 3) && fread(pre + 10, 1, 2, f) == 2) {
    hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 |
           (size_t)pre[11] << 24;
    pre_len = 12;
  } else {
    rc = nne__err_set(
        err, NNE_CLIENT_INVALID_ARGUMENT,
        "read_npy: %s: format version %d.%d is not 1.0, 2.0 or 3.0", path,
        pre[6], pre[7]);
    goto out;
  }
  /* numpy's own headers stay far below this. */
  if (hlen > (1u << 20)) {
    rc = nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                      "read_npy: %s: header of %zu bytes", path, hlen);
    goto out;
  }
  if ((hdr = malloc(hlen + 1)) == NULL) {
    rc = nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                      "read_npy: out of memory");
    goto out;
  }
  if (fread(hdr, 1, hlen, f) != hlen) {
    rc = nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                      "read_npy: %s: header cut short", path);
    goto out;
  }
  hdr[hlen] = '\0';
  if ((rc = npy_header(path, hdr, out, err)) < 0)
    goto out;
  if (!nne__tensor_size(out->dtype, out->shape, out->ndim, &size)) {
    rc = nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                      "read_npy: %s: header 'shape' overflows", path);
    goto out;
  }
  if (size > max_bytes) {
    rc = nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                      "read_npy: %s: %" PRIu64
                      " bytes of data, over the limit of "
                      "%" PRIu64,
                      path, size, max_bytes);
    goto out;
  }
  data_at = (long)(pre_len + hlen);
  if (fseek(f, 0, SEEK_END) != 0 || (file_end = ftell(f)) < 0 ||
      fseek(f, data_at, SEEK_SET) != 0) {
    rc = nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT, "read_npy: %s: %s",
                      path, strerror(errno));
    goto out;
  }
  if ((uint64_t)(file_end - data_at) != size) {
    rc = nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                      "read_npy: %s: %ld bytes of data, the header's dtype and "
                      "shape say %" PRIu64,
                      path, file_end - data_at, size);
    goto out;
  }
  out->nbytes = (size_t)size;
  if (size > 0 && (out->data = malloc((size_t)size)) == NULL) {
    rc = nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                      "read_npy: %s: cannot allocate %" PRIu64 " bytes", path,
                      size);
    goto out;
  }
  if (size > 0 && fread(out->data, 1, (size_t)size, f) != size)
    rc = nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                      "read_npy: %s: read failed", path);
out:
  free(hdr);
  fclose(f);
  if (rc < 0)
    nne_client_tensor_free(out);
  return rc;
}
