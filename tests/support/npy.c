/* npy.c — see npy.h. The header is a Python dict literal, e.g.
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 7, 1000), }
 * parsed here by a small scanner that accepts exactly that grammar. */
#include "npy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  const char *descr;
  int dtype;
  size_t itemsize;
  const char *name;
} npy_types[] = {
    {"<f4", NNE_NPY_F32, 4, "float32"}, {"<f2", NNE_NPY_F16, 2, "float16"},
    {"<f8", NNE_NPY_F64, 8, "float64"}, {"<i8", NNE_NPY_I64, 8, "int64"},
    {"<i4", NNE_NPY_I32, 4, "int32"},   {"<i2", NNE_NPY_I16, 2, "int16"},
    {"|i1", NNE_NPY_I8, 1, "int8"},     {"|u1", NNE_NPY_U8, 1, "uint8"},
    {"|b1", NNE_NPY_BOOL, 1, "bool"},
};

const char *nne_npy_dtype_name(int dtype) {
  size_t i;
  if (dtype == NNE_NPY_BF16)
    return "bfloat16";
  for (i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
    if (npy_types[i].dtype == dtype)
      return npy_types[i].name;
  return "invalid";
}

static int fail(char *msg, size_t msg_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *msg, size_t msg_len, const char *fmt, ...) {
  va_list ap;
  if (msg != NULL && msg_len > 0) {
    va_start(ap, fmt);
    vsnprintf(msg, msg_len, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* ---- header scanner ------------------------------------------------------ */

typedef struct scan {
  const char *p, *end;
} scan_t;

static void skip_ws(scan_t *s) {
  while (s->p < s->end &&
         (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

static int eat(scan_t *s, char c) {
  skip_ws(s);
  if (s->p < s->end && *s->p == c) {
    s->p++;
    return 1;
  }
  return 0;
}

/* A quoted string (no escapes: numpy never writes any here) into buf. */
static int read_str(scan_t *s, char *buf, size_t len) {
  char q;
  size_t n = 0;
  skip_ws(s);
  if (s->p >= s->end || (*s->p != '\'' && *s->p != '"'))
    return -1;
  q = *s->p++;
  while (s->p < s->end && *s->p != q) {
    if (n + 1 >= len)
      return -1;
    buf[n++] = *s->p++;
  }
  if (s->p >= s->end)
    return -1;
  s->p++;
  buf[n] = '\0';
  return 0;
}

static int read_word(scan_t *s, const char *w) {
  size_t n = strlen(w);
  skip_ws(s);
  if ((size_t)(s->end - s->p) >= n && memcmp(s->p, w, n) == 0) {
    s->p += n;
    return 1;
  }
  return 0;
}

/* (d0, d1, ...) with an optional trailing comma; () is a scalar. */
static int read_shape(scan_t *s, int64_t *shape, int *ndim, char *msg,
                      size_t msg_len) {
  int n = 0;
  if (!eat(s, '('))
    return fail(msg, msg_len, "shape: expected a tuple");
  for (;;) {
    int64_t v = 0;
    int digits = 0;
    if (eat(s, ')'))
      break;
    skip_ws(s);
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
      if (v > (INT64_MAX - 9) / 10)
        return fail(msg, msg_len, "shape: dimension too large");
      v = v * 10 + (*s->p++ - '0');
      digits++;
    }
    if (digits == 0)
      return fail(msg, msg_len, "shape: expected a non-negative integer");
    if (n == NNE_NPY_MAX_DIMS)
      return fail(msg, msg_len, "shape: more than %d dimensions",
                  NNE_NPY_MAX_DIMS);
    shape[n++] = v;
    if (eat(s, ')'))
      break;
    if (!eat(s, ','))
      return fail(msg, msg_len, "shape: expected ',' or ')'");
  }
  *ndim = n;
  return 0;
}

static int parse_header(const char *h, size_t len, nne_npy_t *a, char *msg,
                        size_t msg_len) {
  scan_t s = {h, h + len};
  int have_descr = 0, have_order = 0, have_shape = 0;
  char key[32], descr[32];

  if (!eat(&s, '{'))
    return fail(msg, msg_len, "header: expected a dict");
  for (;;) {
    if (eat(&s, '}'))
      break;
    if (read_str(&s, key, sizeof key) != 0 || !eat(&s, ':'))
      return fail(msg, msg_len, "header: expected 'key': value");
    if (strcmp(key, "descr") == 0) {
      size_t i;
      skip_ws(&s);
      if (s.p < s.end && *s.p == '[')
        return fail(msg, msg_len,
                    "descr: structured dtypes are not "
                    "supported");
      if (read_str(&s, descr, sizeof descr) != 0)
        return fail(msg, msg_len, "descr: expected a string");
      /* numpy writes '|' for one-byte types; '<' is the same thing. */
      if (descr[0] == '<' && descr[1] != '\0' &&
          (strcmp(descr + 1, "i1") == 0 || strcmp(descr + 1, "u1") == 0 ||
           strcmp(descr + 1, "b1") == 0))
        descr[0] = '|';
      if (descr[0] == '>')
        return fail(msg, msg_len,
                    "descr '%s': big-endian data is not "
                    "supported",
                    descr);
      for (i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++) {
        if (strcmp(descr, npy_types[i].descr) == 0) {
          a->dtype = npy_types[i].dtype;
          a->itemsize = npy_types[i].itemsize;
          break;
        }
      }
      if (i == sizeof npy_types / sizeof npy_types[0])
        return fail(msg, msg_len, "descr '%s': unsupported dtype", descr);
      have_descr = 1;
    } else if (strcmp(key, "fortran_order") == 0) {
      if (read_word(&s, "True"))
        return fail(msg, msg_len,
                    "fortran_order: Fortran order is not "
                    "supported (save a C-contiguous array)");
      if (!read_word(&s, "False"))
        return fail(msg, msg_len, "fortran_order: expected True or False");
      have_order = 1;
    } else if (strcmp(key, "shape") == 0) {
      if (read_shape(&s, a->shape, &a->ndim, msg, msg_len) != 0)
        return -1;
      have_shape = 1;
    } else {
      return fail(msg, msg_len, "header: unknown key '%s'", key);
    }
    if (eat(&s, '}'))
      break;
    if (!eat(&s, ','))
      return fail(msg, msg_len, "header: expected ',' or '}'");
  }
  if (!have_descr || !have_order || !have_shape)
    return fail(msg, msg_len, "header: missing '%s'",
                !have_descr ? "descr"
                            : (!have_order ? "fortran_order" : "shape"));
  return 0;
}

/* ---- public -------------------------------------------------------------- */

int nne_npy_parse(const void *buf, size_t len, nne_npy_t *out, char *msg,
                  size_t msg_len) {
  static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  const unsigned char *b = buf;
  nne_npy_t a;
  size_t hlen, pre, numel = 1, nbytes;
  int i;

  memset(&a, 0, sizeof a);
  if (buf == NULL || len < 10 || memcmp(b, magic, sizeof magic) != 0)
    return fail(msg, msg_len, "not a .npy file (bad magic)");
  switch (b[6]) {
  case 1:
    hlen = (size_t)b[8] | (size_t)b[9] << 8;
    pre = 10;
    break;
  case 2:
  case 3:
    if (len < 12)
      return fail(msg, msg_len, "truncated header");
    hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 |
           (size_t)b[11] << 24;
    pre = 12;
    break;
  default:
    return fail(msg, msg_len, "format version %d.%d is not supported", b[6],
                b[7]);
  }
  if (hlen > len - pre)
    return fail(msg, msg_len,
                "truncated header (%zu bytes announced, %zu "
                "present)",
                hlen, len - pre);
  if (parse_header((const char *)b + pre, hlen, &a, msg, msg_len) != 0)
    return -1;

  for (i = 0; i < a.ndim; i++) {
    if (a.shape[i] != 0 && numel > SIZE_MAX / (size_t)a.shape[i])
      return fail(msg, msg_len, "shape: too many elements");
    numel *= (size_t)a.shape[i];
  }
  if (numel > SIZE_MAX / a.itemsize)
    return fail(msg, msg_len, "shape: too many bytes");
  nbytes = numel * a.itemsize;
  if (len - pre - hlen != nbytes)
    return fail(msg, msg_len, "data is %zu bytes; shape and dtype need %zu",
                len - pre - hlen, nbytes);
  a.numel = numel;
  a.nbytes = nbytes;
  if (nbytes > 0) {
    a.data = malloc(nbytes);
    if (a.data == NULL)
      return fail(msg, msg_len, "out of memory (%zu bytes)", nbytes);
    memcpy(a.data, b + pre + hlen, nbytes);
  }
  *out = a;
  return 0;
}

int nne_npy_load(const char *path, nne_npy_t *out, char *msg, size_t msg_len) {
  FILE *f;
  long size;
  void *buf;
  int rc;

  f = fopen(path, "rb");
  if (f == NULL)
    return fail(msg, msg_len, "%s: %s", path, strerror(errno));
  if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
      fseek(f, 0, SEEK_SET) != 0) {
    int e = errno;
    fclose(f);
    return fail(msg, msg_len, "%s: %s", path, strerror(e));
  }
  buf = malloc(size > 0 ? (size_t)size : 1);
  if (buf == NULL) {
    fclose(f);
    return fail(msg, msg_len, "%s: out of memory", path);
  }
  if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
    int e = ferror(f) ? errno : 0;
    free(buf);
    fclose(f);
    return fail(msg, msg_len, "%s: %s", path,
                e ? strerror(e) : "file shrank while reading");
  }
  fclose(f);
  rc = nne_npy_parse(buf, (size_t)size, out, msg, msg_len);
  free(buf);
  if (rc != 0 && msg != NULL && msg_len > 0) {
    /* Put the file name in front of the parser's message. */
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", msg);
    snprintf(msg, msg_len, "%s: %s", path, tmp);
  }
  return rc;
}

void nne_npy_free(nne_npy_t *a) {
  if (a == NULL)
    return;
  free(a->data);
  memset(a, 0, sizeof *a);
}
