/* tensors.c — element conversions, values, saved tensors and .npy files
 * (tensors.h). */
#include "tensors.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "output.h"

/* ---- elements ------------------------------------------------------------ */

float ctl_half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f,
           man = h & 0x3ff, bits;
  float f;
  if (exp == 0) {
    /* zero or subnormal: man * 2^-24 */
    f = ldexpf((float)man, -24);
    return sign ? -f : f;
  }
  if (exp == 31)
    bits = sign | 0x7f800000u | (man << 13);
  else
    bits = sign | ((exp + 112) << 23) | (man << 13);
  memcpy(&f, &bits, sizeof f);
  return f;
}

float ctl_bf16_to_float(uint16_t h) {
  /* bfloat16 is the high half of a float32. */
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

uint16_t ctl_float_to_half(float f) {
  uint32_t x, sign, exp, man, h, rem, halfway;
  int e, shift;
  memcpy(&x, &f, sizeof x);
  sign = (x >> 16) & 0x8000u;
  exp = (x >> 23) & 0xffu;
  man = x & 0x7fffffu;
  if (exp == 0xff)
    return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0));
  e = (int)exp - 127 + 15;
  if (e >= 0x1f)
    return (uint16_t)(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10)
      return (uint16_t)sign;
    man |= 0x800000u;
    shift = 14 - e;
    h = man >> shift;
    rem = man & ((1u << shift) - 1);
    halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (h & 1u)))
      h++;
    return (uint16_t)(sign | h);
  }
  h = ((uint32_t)e << 10) | (man >> 13);
  rem = man & 0x1fffu;
  /* A carry out of the mantissa bumps the exponent: right, up to inf. */
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
    h++;
  return (uint16_t)(sign | h);
}

uint16_t ctl_float_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return (uint16_t)((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}

ctl_elem_t ctl_elem_get(const nne_client_tensor_t *t, size_t k) {
  const uint8_t *p = (const uint8_t *)t->data;
  ctl_elem_t v = {true, 0, 0.0};
  switch (t->dtype) {
  case NNE_CLIENT_DTYPE_FLOAT32: {
    float f;
    memcpy(&f, p + 4 * k, 4);
    v = (ctl_elem_t){false, 0, f};
    break;
  }
  case NNE_CLIENT_DTYPE_FLOAT64:
    memcpy(&v.d, p + 8 * k, 8);
    v.is_int = false;
    break;
  case NNE_CLIENT_DTYPE_FLOAT16:
  case NNE_CLIENT_DTYPE_BFLOAT16: {
    uint16_t h;
    memcpy(&h, p + 2 * k, 2);
    v = (ctl_elem_t){false, 0,
                     t->dtype == NNE_CLIENT_DTYPE_FLOAT16
                         ? ctl_half_to_float(h)
                         : ctl_bf16_to_float(h)};
    break;
  }
  case NNE_CLIENT_DTYPE_INT64: memcpy(&v.i, p + 8 * k, 8); break;
  case NNE_CLIENT_DTYPE_INT32: {
    int32_t x;
    memcpy(&x, p + 4 * k, 4);
    v.i = x;
    break;
  }
  case NNE_CLIENT_DTYPE_INT16: {
    int16_t x;
    memcpy(&x, p + 2 * k, 2);
    v.i = x;
    break;
  }
  case NNE_CLIENT_DTYPE_INT8: v.i = (int8_t)p[k]; break;
  case NNE_CLIENT_DTYPE_UINT8:
  case NNE_CLIENT_DTYPE_BOOL: v.i = p[k]; break;
  default: break;
  }
  return v;
}

/* An integral value of v, for the integer dtypes. */
static bool elem_int(ctl_elem_t v, int64_t *out) {
  if (v.is_int) {
    *out = v.i;
    return true;
  }
  if (!(v.d == floor(v.d)) || v.d < -9223372036854775808.0 ||
      v.d >= 9223372036854775808.0)
    return false;
  *out = (int64_t)v.d;
  return true;
}

bool ctl_elem_put(void *dst, size_t k, nne_client_dtype_t dt, ctl_elem_t v,
                  const char **why) {
  uint8_t *p = (uint8_t *)dst;
  double d = v.is_int ? (double)v.i : v.d;
  int64_t iv;
  uint16_t h;
  switch (dt) {
  case NNE_CLIENT_DTYPE_FLOAT32: {
    float f = (float)d;
    memcpy(p + 4 * k, &f, 4);
    return true;
  }
  case NNE_CLIENT_DTYPE_FLOAT64: memcpy(p + 8 * k, &d, 8); return true;
  case NNE_CLIENT_DTYPE_FLOAT16:
  case NNE_CLIENT_DTYPE_BFLOAT16:
    h = dt == NNE_CLIENT_DTYPE_FLOAT16 ? ctl_float_to_half((float)d)
                                       : ctl_float_to_bf16((float)d);
    memcpy(p + 2 * k, &h, 2);
    return true;
  default: break;
  }
  /* Integer and bool dtypes take integral values only, in range. */
  if (!elem_int(v, &iv)) {
    *why = "not an integer";
    return false;
  }
  switch (dt) {
  case NNE_CLIENT_DTYPE_INT64: memcpy(p + 8 * k, &iv, 8); return true;
  case NNE_CLIENT_DTYPE_INT32:
    if (iv < INT32_MIN || iv > INT32_MAX)
      break;
    {
      int32_t x = (int32_t)iv;
      memcpy(p + 4 * k, &x, 4);
    }
    return true;
  case NNE_CLIENT_DTYPE_INT16:
    if (iv < INT16_MIN || iv > INT16_MAX)
      break;
    {
      int16_t x = (int16_t)iv;
      memcpy(p + 2 * k, &x, 2);
    }
    return true;
  case NNE_CLIENT_DTYPE_INT8:
    if (iv < INT8_MIN || iv > INT8_MAX)
      break;
    p[k] = (uint8_t)(int8_t)iv;
    return true;
  case NNE_CLIENT_DTYPE_UINT8:
    if (iv < 0 || iv > UINT8_MAX)
      break;
    p[k] = (uint8_t)iv;
    return true;
  case NNE_CLIENT_DTYPE_BOOL:
    if (iv != 0 && iv != 1)
      break;
    p[k] = (uint8_t)iv;
    return true;
  default: *why = "unsupported dtype"; return false;
  }
  *why = "out of the dtype's range";
  return false;
}

/* ---- printing ------------------------------------------------------------ */

/* Element i as JSON (null for a float that is not finite). */
static json_t *element_json(const nne_client_tensor_t *t, size_t i) {
  ctl_elem_t v = ctl_elem_get(t, i);
  if (t->dtype == NNE_CLIENT_DTYPE_BOOL)
    return json_boolean(v.i != 0);
  if (nne_client_dtype_size(t->dtype) == 0)
    return json_null();
  return v.is_int ? json_integer((json_int_t)v.i) : ctl_json_num(v.d);
}

/* The values of dims [dim..) starting at element *i, as nested lists. */
static json_t *values_nested(const nne_client_tensor_t *t, size_t dim,
                             size_t *i) {
  json_t *a;
  int64_t k;
  if (dim == t->ndim)
    return element_json(t, (*i)++);
  a = json_array();
  for (k = 0; k < t->shape[dim]; k++)
    json_array_append_new(a, values_nested(t, dim + 1, i));
  return a;
}

json_t *ctl_values_json(const nne_client_tensor_t *t) {
  uint64_t n = nne_client_tensor_numel(t);
  size_t i = 0;
  if (n > CTL_VALUES_MAX || n * nne_client_dtype_size(t->dtype) != t->nbytes)
    return json_null();
  return values_nested(t, 0, &i);
}

json_t *ctl_tensor_json(const nne_client_tensor_t *t, const char *file) {
  json_t *shape = json_array();
  size_t i;
  for (i = 0; i < t->ndim; i++)
    json_array_append_new(shape, json_integer(t->shape[i]));
  return json_pack("{s:s, s:s, s:o, s:I, s:o}", "name", t->name, "dtype",
                   nne_client_dtype_name(t->dtype), "shape", shape, "nbytes",
                   (json_int_t)t->nbytes, "file",
                   file ? json_string(file) : json_null());
}

void ctl_shape_text(const nne_client_tensor_t *t, char *buf, size_t cap) {
  size_t n = 0, k;
  buf[0] = '\0';
  ctl_line_add(buf, cap, &n, "[");
  for (k = 0; k < t->ndim; k++)
    ctl_line_add(buf, cap, &n, "%s%" PRId64, k ? ", " : "", t->shape[k]);
  ctl_line_add(buf, cap, &n, "]");
}

json_t *ctl_saved_json(const nne_client_tensor_t *saved, size_t n,
                       char *const *files, bool values) {
  json_t *arr = json_array();
  size_t i;
  for (i = 0; i < n; i++) {
    json_t *o = ctl_tensor_json(&saved[i], files ? files[i] : NULL);
    if (values && o != NULL)
      json_object_set_new(o, "values", ctl_values_json(&saved[i]));
    json_array_append_new(arr, o);
  }
  return arr;
}

void ctl_saved_table(const nne_client_tensor_t *saved, size_t n,
                     char *const *files, bool values, const char *indent) {
  size_t i, wn = 0, ws = 0;
  char shape[200], line[1024];
  if (n == 0)
    return;
  for (i = 0; i < n; i++) {
    ctl_shape_text(&saved[i], shape, sizeof shape);
    if (strlen(saved[i].name) > wn)
      wn = strlen(saved[i].name);
    if (strlen(shape) > ws)
      ws = strlen(shape);
  }
  printf("\n%ssaved:\n", indent);
  for (i = 0; i < n; i++) {
    const nne_client_tensor_t *t = &saved[i];
    const char *file = files != NULL ? files[i] : NULL;
    ctl_shape_text(t, shape, sizeof shape);
    snprintf(line, sizeof line, "%s  %-*s  %-8s  %-*s  %s%s", indent, (int)wn,
             t->name, nne_client_dtype_name(t->dtype), (int)ws, shape,
             file ? "-> " : "", file ? file : "");
    ctl_print_trimmed(line);
    if (values) {
      json_t *v = ctl_values_json(t);
      if (json_is_null(v)) {
        printf("%s    (%" PRIu64 " elements: values are shown up to %d)\n",
               indent, nne_client_tensor_numel(t), CTL_VALUES_MAX);
      } else {
        char *txt = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY |
                                      JSON_REAL_PRECISION(9));
        printf("%s    %s\n", indent, txt ? txt : "?");
        free(txt);
      }
      json_decref(v);
    }
  }
}

/* ---- .npy files ---------------------------------------------------------- */

int ctl_dir_make(const ctl_t *c, const char *flag, const char *dir) {
  struct stat sb;
  if (mkdir(dir, 0777) != 0 && errno != EEXIST)
    return ctl_fail(c, NNE_CLIENT_INVALID_ARGUMENT, "%s '%s': %s", flag, dir,
                    strerror(errno));
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return ctl_fail(c, NNE_CLIENT_INVALID_ARGUMENT, "%s '%s': not a directory",
                    flag, dir);
  return 0;
}

/* DIR/<name>.npy with the name made safe, or with "~N" when an earlier file
 * of files[0..i) has that name already; NULL when memory runs out. */
static char *npy_file(const char *dir, const char *name, char *const *files,
                      size_t i) {
  char base[NNE_CLIENT_NAME_MAX + 16], *path;
  size_t n, k, tries;
  const char *p;
  for (n = 0, p = name; *p && n < NNE_CLIENT_NAME_MAX; p++)
    base[n++] =
        ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
         (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_')
            ? *p
            : '_';
  base[n] = '\0';
  if (n == 0 || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
    base[n++] = '_', base[n] = '\0';
  for (tries = 1; tries <= i + 1; tries++) {
    bool taken = false;
    if (asprintf(&path, tries == 1 ? "%s/%s.npy" : "%s/%s~%zu.npy", dir, base,
                 tries) < 0)
      return NULL;
    for (k = 0; k < i && !taken; k++)
      taken = strcmp(files[k], path) == 0;
    if (!taken)
      return path;
    free(path);
  }
  return NULL;
}

int ctl_npy_write(const ctl_t *c, const char *dir,
                  const nne_client_tensor_t *const *ts, size_t n,
                  char ***files) {
  nne_client_err_t err;
  char **f;
  size_t k, j;

  *files = NULL;
  if ((f = calloc(n ? n : 1, sizeof *f)) == NULL)
    return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  for (k = 0; k < n; k++) {
    /* The same name asked for twice is one file. */
    for (j = 0; j < k && strcmp(ts[j]->name, ts[k]->name) != 0; j++)
      ;
    f[k] = j < k ? strdup(f[j]) : npy_file(dir, ts[k]->name, f, k);
    if (f[k] == NULL) {
      ctl_files_free(f, k);
      return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (j == k && nne_client_tensor_write_npy(ts[k], f[k], &err) < 0) {
      ctl_files_free(f, k + 1);
      return ctl_call_error(c, &err);
    }
  }
  *files = f;
  return 0;
}

int ctl_npy_write_saved(const ctl_t *c, const char *dir,
                        const nne_client_tensor_t *saved, size_t n,
                        char ***files) {
  const nne_client_tensor_t **ts;
  size_t k;
  int rc;
  *files = NULL;
  if (n == 0)
    return 0;
  if ((ts = calloc(n, sizeof *ts)) == NULL)
    return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  for (k = 0; k < n; k++)
    ts[k] = &saved[k];
  rc = ctl_npy_write(c, dir, ts, n, files);
  free(ts);
  return rc;
}

void ctl_files_free(char **files, size_t n) {
  size_t k;
  for (k = 0; files != NULL && k < n; k++)
    free(files[k]);
  free(files);
}
