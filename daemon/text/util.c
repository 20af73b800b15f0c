/* util.c — byte buffers, UTF-8 and the JSON field readers of daemon/text/. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/vec.h"
#include "text/internal.h"

int nne__sbuf_add(nne__sbuf_t *b, const void *s, size_t n) {
  if (n == 0)
    return 0;
  if (b->limit != 0 && b->n + n > b->limit) {
    b->over = true;
    return NNE_ERESOURCE;
  }
  if (b->n + n + 1 > b->cap) {
    /* Keep one byte spare so that a finished buffer can be NUL-terminated. */
    if (nne_vec_grow(&b->p, &b->cap, b->n + n + 1, 1) != 0)
      return NNE_ENOMEM;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  return 0;
}

int nne__sbuf_add_cp(nne__sbuf_t *b, uint32_t cp) {
  char u[4];
  return nne__sbuf_add(b, u, nne__u8enc(cp, u));
}

uint32_t nne__u8dec(const char *s, size_t *adv) {
  const unsigned char *u = (const unsigned char *)s;
  if (u[0] < 0x80) {
    *adv = 1;
    return u[0];
  }
  if (u[0] < 0xE0) {
    *adv = 2;
    return ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
  }
  if (u[0] < 0xF0) {
    *adv = 3;
    return ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) |
           (u[2] & 0x3F);
  }
  *adv = 4;
  return ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
         ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
}

size_t nne__u8enc(uint32_t cp, char *out) {
  unsigned char *o = (unsigned char *)out;
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xC0 | (cp >> 6));
    o[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xE0 | (cp >> 12));
    o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (unsigned char)(0xF0 | (cp >> 18));
  o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}

/* How many bytes of s[0..n) form a prefix of a valid UTF-8 sequence, and
 * whether that prefix is the whole sequence (*complete). The second byte's
 * range depends on the first (no overlongs, no surrogates, nothing past
 * U+10FFFF): the table of Unicode's "well-formed byte sequences". */
static size_t u8_prefix(const unsigned char *s, size_t n, bool *complete) {
  unsigned char c = s[0];
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  *complete = false;
  if (c < 0x80) {
    *complete = true;
    return 1;
  }
  if (c >= 0xC2 && c <= 0xDF)
    need = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0)
      lo = 0xA0;
    if (c == 0xED)
      hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0)
      lo = 0x90;
    if (c == 0xF4)
      hi = 0x8F;
  } else
    return 0; /* not a lead byte at all */
  size_t i = 1;
  if (i < n && s[i] >= lo && s[i] <= hi) {
    for (i = 2; i < need && i < n && s[i] >= 0x80 && s[i] <= 0xBF; i++) {
    }
  }
  *complete = i == need;
  return i;
}

size_t nne__u8check(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    if (u[i] < 0x80) { /* the common case, without the call */
      i++;
      continue;
    }
    bool complete;
    size_t k = u8_prefix(u + i, n - i, &complete);
    if (!complete)
      return i;
    i += k;
  }
  return n;
}

int nne__sbuf_add_lossy(nne__sbuf_t *b, const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, run = 0; /* run: start of the valid bytes not yet copied */
  while (i < n) {
    bool complete;
    size_t k = u8_prefix(u + i, n - i, &complete);
    if (complete) {
      i += k;
      continue;
    }
    if (nne__sbuf_add(b, s + run, i - run) != 0 ||
        nne__sbuf_add(b, "\xEF\xBF\xBD", 3) != 0)
      return NNE_ENOMEM;
    i += k ? k : 1; /* the maximal subpart, or the one stray byte */
    run = i;
  }
  /* An empty token may come with s == NULL: no pointer arithmetic on it. */
  return nne__sbuf_add(b, s != NULL ? s + run : "", n - run);
}

bool nne__is_space(uint32_t cp) {
  if (cp <= 0x20)
    return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
  if (cp < 0x85)
    return false;
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

size_t nne__path_push(nne__path_t *p, const char *fmt, ...) {
  size_t mark = p->n;
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(p->s + p->n, sizeof p->s - p->n, fmt, ap);
  va_end(ap);
  if (k > 0)
    p->n += (size_t)k < sizeof p->s - p->n ? (size_t)k : sizeof p->s - p->n - 1;
  return mark;
}

/* "pre_tokenizer.type" reads better than ".type" at the root. */
static const char *dot(const nne__path_t *p) {
  return p->n ? "." : "";
}

int nne__json_bool(json_t *o, const char *key, bool dflt, bool *out,
                   nne__path_t *path, nne_err_t *err) {
  json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) {
    *out = dflt;
    return 0;
  }
  if (!json_is_boolean(v))
    return nne_err_set(err, NNE_EINVAL, "%s%s%s: must be true or false",
                       path->s, dot(path), key);
  *out = json_is_true(v);
  return 0;
}

int nne__json_str(json_t *o, const char *key, const char *dflt,
                  const char **out, size_t *len, nne__path_t *path,
                  nne_err_t *err) {
  json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) {
    *out = dflt;
    if (len)
      *len = dflt ? strlen(dflt) : 0;
    return 0;
  }
  if (!json_is_string(v))
    return nne_err_set(err, NNE_EINVAL, "%s%s%s: must be a string", path->s,
                       dot(path), key);
  *out = json_string_value(v);
  if (len)
    *len = json_string_length(v);
  return 0;
}

int nne__json_type(json_t *o, const char **type, nne__path_t *path,
                   nne_err_t *err) {
  if (!json_is_object(o))
    return nne_err_set(err, NNE_EINVAL, "%s: must be an object or null",
                       path->s);
  json_t *t = json_object_get(o, "type");
  if (!json_is_string(t))
    return nne_err_set(err, NNE_EINVAL, "%s%stype: missing or not a string",
                       path->s, dot(path));
  *type = json_string_value(t);
  return 0;
}

int nne__unsupported(nne__path_t *path, const char *what, nne_err_t *err) {
  return nne_err_set(err, NNE_EUNIMPL, "%s%stype: \"%s\" is not supported",
                     path->s, dot(path), what);
}

int nne__load_list(json_t *o, const char *key, nne__load_fn load, void ***kids,
                   size_t *n, nne__path_t *path, nne_err_t *err) {
  json_t *arr = json_object_get(o, key);
  *n = 0;
  if (!json_is_array(arr))
    return nne_err_set(err, NNE_EINVAL, "%s.%s: must be an array", path->s,
                       key);
  if (!(*kids = calloc(json_array_size(arr) + 1, sizeof **kids)))
    return nne_err_set(err, NNE_ENOMEM, "%s: out of memory", path->s);
  for (size_t i = 0; i < json_array_size(arr); i++) {
    size_t mark = nne__path_push(path, ".%s[%zu]", key, i);
    int rc = load(json_array_get(arr, i), &(*kids)[*n], path, err);
    if (rc != 0)
      return rc;
    nne__path_pop(path, mark);
    (*n)++;
  }
  return 0;
}

/* ---- alignments ---------------------------------------------------------- */

static int align_room(nne__align_t *a, size_t count) {
  size_t want = 2 * (a->n + count), cap = a->cap;
  if (want <= cap)
    return 0;
  if (nne_vec_grow(&a->v, &cap, want, sizeof *a->v) != 0)
    return NNE_ENOMEM;
  a->cap = cap;
  return 0;
}

int nne__align_add(nne__align_t *a, uint32_t s, uint32_t e, size_t count) {
  if (align_room(a, count) != 0)
    return NNE_ENOMEM;
  for (size_t i = 0; i < count; i++) {
    a->v[2 * (a->n + i)] = s;
    a->v[2 * (a->n + i) + 1] = e;
  }
  a->n += count;
  return 0;
}

int nne__align_copy(nne__align_t *a, const uint32_t *src, size_t count) {
  if (count == 0)
    return 0;
  if (align_room(a, count) != 0)
    return NNE_ENOMEM;
  memcpy(a->v + 2 * a->n, src, 2 * count * sizeof *src);
  a->n += count;
  return 0;
}

int nne__align_identity(nne__align_t *a, const char *s, size_t n,
                        uint32_t base) {
  for (size_t i = 0; i < n;) {
    size_t k = nne__u8len((unsigned char)s[i]);
    if (nne__align_add(a, base + (uint32_t)i, base + (uint32_t)(i + k), k))
      return NNE_ENOMEM;
    i += k;
  }
  return 0;
}

void nne__align_span(const uint32_t *al, size_t from, size_t to,
                     uint32_t *start, uint32_t *end) {
  /* The reference's expand_alignments: least start, greatest end (a
   * normalizer that reorders marks can make the pairs go back). */
  uint32_t s = al[2 * from], e = al[2 * from + 1];
  for (size_t i = from + 1; i < to; i++) {
    if (al[2 * i] < s)
      s = al[2 * i];
    if (al[2 * i + 1] > e)
      e = al[2 * i + 1];
  }
  *start = s;
  *end = e;
}
