/* normalize.c — the normalizers: text → text before pre-tokenization.
 *
 * Unicode normalization is utf8proc's; the rest is small. Lowercase follows
 * the reference, which lowercases character by character with Rust's
 * char::to_lowercase: utf8proc's one-to-one table plus the one
 * unconditional one-to-many mapping (İ → i̇), and no final-sigma rule
 * (ΣΑΣ → σασ; tests/text/ found that).
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/internal.h"

enum {
  N_SEQ,
  N_NFC,
  N_NFKC,
  N_NFD,
  N_NFKD,
  N_PREPEND,
  N_REPLACE,
  N_LOWER,
  N_STRIP,
  N_STRIP_ACCENTS
};

struct nne__norm {
  int kind;
  char *str; /* Prepend's text, Replace's content */
  size_t len;
  nne__re_t re;                                          /* Replace */
  bool left, right;                                      /* Strip */
  void **kids; /* nne__norm_t *, a Sequence's members */ /* Sequence */
  size_t nkids;
};

void nne__norm_free(nne__norm_t *n) {
  if (!n)
    return;
  for (size_t i = 0; i < n->nkids; i++)
    nne__norm_free(n->kids[i]);
  free(n->kids);
  free(n->str);
  nne__re_free(&n->re);
  free(n);
}

static char *dup_bytes(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

/* nne__load_fn's form of nne__norm_load, for nne__load_list. */
static int load_kid(json_t *j, void **out, nne__path_t *path, nne_err_t *err) {
  nne__norm_t *k;
  int rc = nne__norm_load(j, &k, path, err);
  *out = k;
  return rc;
}

int nne__norm_load(json_t *j, nne__norm_t **out, nne__path_t *path,
                   nne_err_t *err) {
  const char *type, *s;
  size_t len;
  int rc;
  *out = NULL;
  if ((rc = nne__json_type(j, &type, path, err)) != 0)
    return rc;
  nne__norm_t *n = calloc(1, sizeof *n);
  if (!n)
    return NNE_ENOMEM;
  if (!strcmp(type, "Sequence")) {
    n->kind = N_SEQ;
    if ((rc = nne__load_list(j, "normalizers", load_kid, &n->kids, &n->nkids,
                             path, err)))
      goto fail;
  } else if (!strcmp(type, "NFC")) {
    n->kind = N_NFC;
  } else if (!strcmp(type, "NFKC")) {
    n->kind = N_NFKC;
  } else if (!strcmp(type, "NFD")) {
    n->kind = N_NFD;
  } else if (!strcmp(type, "NFKD")) {
    n->kind = N_NFKD;
  } else if (!strcmp(type, "StripAccents")) {
    n->kind = N_STRIP_ACCENTS;
  } else if (!strcmp(type, "Lowercase")) {
    n->kind = N_LOWER;
  } else if (!strcmp(type, "Prepend")) {
    n->kind = N_PREPEND;
    if ((rc = nne__json_str(j, "prepend", NULL, &s, &len, path, err)) != 0)
      goto fail;
    if (!s) {
      rc = nne_err_set(err, NNE_EINVAL, "%s.prepend: missing", path->s);
      goto fail;
    }
    if (!(n->str = dup_bytes(s, len)))
      goto nomem;
    n->len = len;
  } else if (!strcmp(type, "Replace")) {
    n->kind = N_REPLACE;
    if ((rc = nne__json_str(j, "content", "", &s, &len, path, err)) != 0)
      goto fail;
    if (!(n->str = dup_bytes(s, len)))
      goto nomem;
    n->len = len;
    if ((rc = nne__re_from_json(&n->re, j, "pattern", path, err)) != 0)
      goto fail;
  } else if (!strcmp(type, "Strip")) {
    n->kind = N_STRIP;
    if ((rc = nne__json_bool(j, "strip_left", true, &n->left, path, err)) ||
        (rc = nne__json_bool(j, "strip_right", true, &n->right, path, err)))
      goto fail;
  } else {
    rc = nne__unsupported(path, type, err);
    goto fail;
  }
  *out = n;
  return 0;
nomem:
  rc = nne_err_set(err, NNE_ENOMEM, "%s: out of memory", path->s);
fail:
  nne__norm_free(n);
  return rc;
}

static int lowercase(const char *s, size_t n, nne__sbuf_t *out) {
  for (size_t i = 0; i < n;) {
    size_t adv;
    if ((unsigned char)s[i] < 0x80) {
      char c = s[i];
      if (c >= 'A' && c <= 'Z')
        c = (char)(c + 32);
      if (nne__sbuf_add(out, &c, 1) != 0)
        return NNE_ENOMEM;
      i++;
      continue;
    }
    uint32_t cp = nne__u8dec(s + i, &adv), lc;
    if (cp == 0x130) { /* the one unconditional one-to-many mapping */
      if (nne__sbuf_add(out, "i\xCC\x87", 3) != 0)
        return NNE_ENOMEM;
      i += adv;
      continue;
    }
    lc = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
    if (nne__sbuf_add_cp(out, lc) != 0)
      return NNE_ENOMEM;
    i += adv;
  }
  return 0;
}

static int run1(const nne__norm_t *nm, nne__scratch_t *sc, const char *s,
                size_t n, nne__sbuf_t *out, nne_err_t *err) {
  out->n = 0;
  switch (nm->kind) {
  case N_NFC:
  case N_NFKC:
  case N_NFD:
  case N_NFKD: {
    utf8proc_uint8_t *r = NULL;
    int opt = UTF8PROC_STABLE;
    opt |= nm->kind == N_NFC || nm->kind == N_NFKC ? UTF8PROC_COMPOSE
                                                   : UTF8PROC_DECOMPOSE;
    if (nm->kind == N_NFKC || nm->kind == N_NFKD)
      opt |= UTF8PROC_COMPAT;
    if (n == 0)
      return 0;
    utf8proc_ssize_t k =
        utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &r,
                     (utf8proc_option_t)opt);
    if (k < 0)
      return nne_err_set(err,
                         k == UTF8PROC_ERROR_NOMEM ? NNE_ENOMEM : NNE_EINVAL,
                         "normalizer: %s", utf8proc_errmsg(k));
    int rc = nne__sbuf_add(out, r, (size_t)k);
    free(r);
    return rc;
  }
  case N_STRIP_ACCENTS:
    /* Drops every combining mark, spacing ones (Devanagari's vowel signs)
     * included, as the reference does; meant after NFD. */
    for (size_t i = 0; i < n;) {
      size_t adv;
      uint32_t cp = nne__u8dec(s + i, &adv);
      utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
      if ((c < UTF8PROC_CATEGORY_MN || c > UTF8PROC_CATEGORY_ME) &&
          nne__sbuf_add(out, s + i, adv) != 0)
        return NNE_ENOMEM;
      i += adv;
    }
    return 0;
  case N_PREPEND:
    if (n && nne__sbuf_add(out, nm->str, nm->len) != 0)
      return NNE_ENOMEM;
    return nne__sbuf_add(out, s, n);
  case N_LOWER: return lowercase(s, n, out);
  case N_REPLACE:
    return nne__re_replace(&nm->re, sc->md, s, n, nm->str, nm->len, out, err);
  case N_STRIP: {
    size_t a = 0, b = n, adv;
    while (nm->left && a < b && nne__is_space(nne__u8dec(s + a, &adv)))
      a += adv;
    while (nm->right && b > a) {
      size_t st = b - 1;
      while (st > a && ((unsigned char)s[st] & 0xC0) == 0x80)
        st--;
      if (!nne__is_space(nne__u8dec(s + st, &adv)))
        break;
      b = st;
    }
    return nne__sbuf_add(out, s + a, b - a);
  }
  default: return NNE_EINTERNAL;
  }
}

int nne__norm_run(const nne__norm_t *nm, nne__scratch_t *sc, const char *s,
                  size_t len, nne__sbuf_t *out, nne_err_t *err) {
  if (nm->kind != N_SEQ)
    return run1(nm, sc, s, len, out, err);
  /* A sequence runs its members one after another, through sc->tmp. */
  int rc;
  out->n = 0;
  if ((rc = nne__sbuf_add(out, s, len)) != 0)
    return rc;
  for (size_t i = 0; i < nm->nkids; i++) {
    /* Take tmp for this step; a nested sequence then gets its own. */
    nne__sbuf_t t = sc->tmp;
    sc->tmp = (nne__sbuf_t){0};
    rc = nne__norm_run(nm->kids[i], sc, out->p, out->n, &t, err);
    free(sc->tmp.p);
    if (rc != 0) {
      sc->tmp = t;
      return rc;
    }
    sc->tmp = *out;
    *out = t;
  }
  return 0;
}
