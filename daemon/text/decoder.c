/* decoder.c — the decoders: token strings → text.
 *
 * As in the reference, a decoder maps a list of strings to a list of
 * strings (ByteLevel and Fuse to a single one), a Sequence chains them, and
 * the caller joins the final list. Each step writes a new list and the two
 * lists swap.
 */
#include <stdlib.h>
#include <string.h>

#include "base/vec.h"
#include "text/internal.h"

enum {
  D_SEQ,
  D_BYTELEVEL,
  D_METASPACE,
  D_BYTEFALLBACK,
  D_FUSE,
  D_STRIP,
  D_REPLACE
};

struct nne__dec {
  int kind;
  uint32_t ch;  /* Metaspace's replacement, Strip's content */
  bool prepend; /* Metaspace: the first token's replacements are dropped */
  size_t start, stop;
  nne__re_t re;
  char *with;
  size_t wlen;
  void **kids; /* nne__dec_t *, a Sequence's members */
  size_t nkids;
};

void nne__dec_free(nne__dec_t *d) {
  if (!d)
    return;
  for (size_t i = 0; i < d->nkids; i++)
    nne__dec_free(d->kids[i]);
  free(d->kids);
  nne__re_free(&d->re);
  free(d->with);
  free(d);
}

int nne__strs_add(nne__strs_t *l, const char *s, size_t n) {
  if (l->n == l->cap) {
    size_t c2 = l->cap;
    if (NNE_VEC_GROW(&l->off, &c2, l->n + 1) ||
        NNE_VEC_GROW(&l->len, &l->cap, l->n + 1))
      return NNE_ENOMEM;
  }
  l->off[l->n] = l->text.n;
  l->len[l->n] = n;
  if (nne__sbuf_add(&l->text, s, n))
    return NNE_ENOMEM;
  l->n++;
  return 0;
}

void nne__strs_free(nne__strs_t *l) {
  free(l->text.p);
  free(l->off);
  free(l->len);
  memset(l, 0, sizeof *l);
}

static int one_char(json_t *j, const char *key, const char *dflt, uint32_t *cp,
                    nne__path_t *path, nne_err_t *err) {
  const char *s;
  size_t len, adv = 0;
  int rc = nne__json_str(j, key, dflt, &s, &len, path, err);
  if (rc)
    return rc;
  if (!s || !len || (*cp = nne__u8dec(s, &adv), adv != len))
    return nne_err_set(err, NNE_EINVAL, "%s.%s: must be one character", path->s,
                       key);
  return 0;
}

static int size_field(json_t *j, const char *key, size_t *out,
                      nne__path_t *path, nne_err_t *err) {
  json_t *v = json_object_get(j, key);
  if (!v || json_is_null(v)) {
    *out = 0;
    return 0;
  }
  if (!json_is_integer(v) || json_integer_value(v) < 0)
    return nne_err_set(err, NNE_EINVAL, "%s.%s: must be a count", path->s, key);
  *out = (size_t)json_integer_value(v);
  return 0;
}

/* nne__load_fn's form of nne__dec_load, for nne__load_list. */
static int load_kid(json_t *j, void **out, nne__path_t *path, nne_err_t *err) {
  nne__dec_t *k;
  int rc = nne__dec_load(j, &k, path, err);
  *out = k;
  return rc;
}

int nne__dec_load(json_t *j, nne__dec_t **out, nne__path_t *path,
                  nne_err_t *err) {
  const char *type, *s;
  size_t len;
  int rc;
  *out = NULL;
  if ((rc = nne__json_type(j, &type, path, err)) != 0)
    return rc;
  nne__dec_t *d = calloc(1, sizeof *d);
  if (!d)
    return NNE_ENOMEM;
  if (!strcmp(type, "Sequence")) {
    d->kind = D_SEQ;
    if ((rc = nne__load_list(j, "decoders", load_kid, &d->kids, &d->nkids, path,
                             err)))
      goto fail;
  } else if (!strcmp(type, "ByteLevel")) {
    d->kind = D_BYTELEVEL;
  } else if (!strcmp(type, "ByteFallback")) {
    d->kind = D_BYTEFALLBACK;
  } else if (!strcmp(type, "Fuse")) {
    d->kind = D_FUSE;
  } else if (!strcmp(type, "Metaspace")) {
    d->kind = D_METASPACE;
    if ((rc = one_char(j, "replacement", "\xE2\x96\x81", &d->ch, path, err)) ||
        (rc = nne__json_str(j, "prepend_scheme", NULL, &s, NULL, path, err)))
      goto fail;
    if (s)
      d->prepend = strcmp(s, "never") != 0;
    else if ((rc = nne__json_bool(j, "add_prefix_space", true, &d->prepend,
                                  path, err)))
      goto fail;
  } else if (!strcmp(type, "Strip")) {
    d->kind = D_STRIP;
    if ((rc = one_char(j, "content", " ", &d->ch, path, err)) ||
        (rc = size_field(j, "start", &d->start, path, err)) ||
        (rc = size_field(j, "stop", &d->stop, path, err)))
      goto fail;
  } else if (!strcmp(type, "Replace")) {
    d->kind = D_REPLACE;
    if ((rc = nne__json_str(j, "content", "", &s, &len, path, err)))
      goto fail;
    if (!(d->with = malloc(len + 1)))
      goto nomem;
    memcpy(d->with, s, len + 1);
    d->wlen = len;
    if ((rc = nne__re_from_json(&d->re, j, "pattern", path, err)))
      goto fail;
  } else {
    rc = nne__unsupported(path, type, err);
    goto fail;
  }
  *out = d;
  return 0;
nomem:
  rc = nne_err_set(err, NNE_ENOMEM, "%s: out of memory", path->s);
fail:
  nne__dec_free(d);
  return rc;
}

/* "<0xAB>" → 0xAB; -1 for anything else. */
static int byte_token(const char *s, size_t n) {
  if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
    return -1;
  int v = 0;
  for (int i = 3; i < 5; i++) {
    char c = s[i];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0)
      return -1;
    v = v * 16 + d;
  }
  return v;
}

static int run1(const nne__dec_t *d, const nne__bytelevel_t *bl,
                pcre2_match_data *md, const nne__strs_t *in, nne__strs_t *out,
                nne_err_t *err) {
  int rc;
  nne__sbuf_t acc = {0};
  switch (d->kind) {
  case D_BYTELEVEL:
    /* All tokens' bytes, then one lossy UTF-8 conversion; a token with a
     * character outside the alphabet (an added token) counts as its own
     * UTF-8 bytes. */
    for (size_t i = 0; i < in->n; i++) {
      const char *s = nne__strs_at(in, i);
      size_t n = in->len[i], mark = acc.n;
      for (size_t k = 0; k < n;) {
        size_t adv;
        uint32_t cp = nne__u8dec(s + k, &adv);
        if (cp >= 324 || bl->dec[cp] < 0) {
          acc.n = mark;
          if (nne__sbuf_add(&acc, s, n))
            goto nomem;
          break;
        }
        char b = (char)bl->dec[cp];
        if (nne__sbuf_add(&acc, &b, 1))
          goto nomem;
        k += adv;
      }
    }
    out->text.n = 0;
    {
      nne__sbuf_t t = {0};
      if (nne__sbuf_add_lossy(&t, acc.p, acc.n)) {
        free(t.p);
        goto nomem;
      }
      rc = nne__strs_add(out, t.p, t.n);
      free(t.p);
    }
    free(acc.p);
    return rc;
  case D_FUSE:
    if (nne__strs_add(out, in->text.p, in->text.n))
      return NNE_ENOMEM;
    return 0;
  case D_BYTEFALLBACK:
    for (size_t i = 0; i <= in->n; i++) {
      int b = i < in->n ? byte_token(nne__strs_at(in, i), in->len[i]) : -1;
      if (b >= 0) {
        char c = (char)b;
        if (nne__sbuf_add(&acc, &c, 1))
          goto nomem;
        continue;
      }
      if (acc.n) {
        /* A run of byte tokens: its text when it is UTF-8, else one
         * U+FFFD per byte, as the reference does. */
        if (nne__u8check(acc.p, acc.n) == acc.n) {
          if (nne__strs_add(out, acc.p, acc.n))
            goto nomem;
        } else
          for (size_t k = 0; k < acc.n; k++)
            if (nne__strs_add(out, "\xEF\xBF\xBD", 3))
              goto nomem;
        acc.n = 0;
      }
      if (i < in->n && nne__strs_add(out, nne__strs_at(in, i), in->len[i]))
        goto nomem;
    }
    free(acc.p);
    return 0;
  case D_METASPACE:
  case D_STRIP:
  case D_REPLACE:
    for (size_t i = 0; i < in->n; i++) {
      const char *s = nne__strs_at(in, i);
      size_t n = in->len[i];
      acc.n = 0;
      if (d->kind == D_REPLACE) {
        /* Capped as a normalizer's output (an empty pattern matches at
         * every position). */
        acc.limit = NNE__NORM_GROWTH * n + NNE__NORM_SLACK;
        if ((rc = nne__re_replace(&d->re, md, s, n, d->with, d->wlen, &acc, NULL, NULL,
                                  err))) {
          bool over = acc.over;
          free(acc.p);
          if (over)
            return nne_err_set(err, NNE_ERESOURCE,
                               "decoder Replace: a token of %zu bytes would "
                               "grow past %zu",
                               n, (size_t)(NNE__NORM_GROWTH * n +
                                           NNE__NORM_SLACK));
          return rc;
        }
        acc.limit = 0;
      } else if (d->kind == D_METASPACE) {
        for (size_t k = 0; k < n;) {
          size_t adv;
          uint32_t cp = nne__u8dec(s + k, &adv);
          if (cp != d->ch) {
            if (nne__sbuf_add(&acc, s + k, adv))
              goto nomem;
          } else if (!(i == 0 && d->prepend) && nne__sbuf_add(&acc, " ", 1))
            goto nomem;
          k += adv;
        }
      } else { /* Strip: up to start leading and stop trailing content chars */
        size_t a = 0, e = n, adv;
        for (size_t k = 0; k < d->start && a < e; k++) {
          if (nne__u8dec(s + a, &adv) != d->ch)
            break;
          a += adv;
        }
        for (size_t k = 0; k < d->stop && e > a; k++) {
          size_t st = e - 1;
          while (st > a && ((unsigned char)s[st] & 0xC0) == 0x80)
            st--;
          if (nne__u8dec(s + st, &adv) != d->ch)
            break;
          e = st;
        }
        if (nne__sbuf_add(&acc, s + a, e - a))
          goto nomem;
      }
      if (nne__strs_add(out, acc.p ? acc.p : "", acc.n))
        goto nomem;
    }
    free(acc.p);
    return 0;
  default: return NNE_EINTERNAL;
  }
nomem:
  free(acc.p);
  return nne_err_set(err, NNE_ENOMEM, "decode: out of memory");
}

int nne__dec_run(const nne__dec_t *d, const nne__bytelevel_t *bl,
                 pcre2_match_data *md, nne__strs_t *l, nne_err_t *err) {
  int rc;
  if (d->kind == D_SEQ) {
    for (size_t i = 0; i < d->nkids; i++)
      if ((rc = nne__dec_run(d->kids[i], bl, md, l, err)))
        return rc;
    return 0;
  }
  nne__strs_t out = {0};
  if ((rc = run1(d, bl, md, l, &out, err))) {
    nne__strs_free(&out);
    return rc;
  }
  nne__strs_free(l);
  *l = out;
  return 0;
}

void nne__dec_bytes(const nne__dec_t *d, bool *bytelevel, bool *fallback) {
  if (d->kind == D_SEQ) {
    for (size_t i = 0; i < d->nkids; i++)
      nne__dec_bytes(d->kids[i], bytelevel, fallback);
    return;
  }
  *bytelevel = *bytelevel || d->kind == D_BYTELEVEL;
  *fallback = *fallback || d->kind == D_BYTEFALLBACK;
}
