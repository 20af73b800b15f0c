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

#include "base/vec.h"
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

/* ---- alignment: the reference's NormalizedString::transform ------------ */

/* One character of a normalizer's output with its "change", as the
 * reference's transform reads it: 0 replaces the next input character,
 * 1 is new (aligned as the input byte before it), -k replaces the next
 * input character and removes k more. */
typedef struct nchar {
  uint32_t cp;
  int32_t change;
  uint8_t ccc;
} nchar_t;

typedef struct nchars {
  nchar_t *v;
  size_t n, cap;
} nchars_t;

static int nchars_add(nchars_t *l, uint32_t cp, int32_t change, uint8_t ccc) {
  if (l->n == l->cap && NNE_VEC_GROW(&l->v, &l->cap, l->n + 1) != 0)
    return NNE_ENOMEM;
  l->v[l->n++] = (nchar_t){cp, change, ccc};
  return 0;
}

/* Writes the characters of v to out and their alignments, read off al (the
 * alignment of s) by the reference's rule, to alout. */
static int transform(const char *s, size_t n, const uint32_t *al,
                     const nchars_t *v, nne__sbuf_t *out, nne__align_t *alout) {
  size_t cur = 0;
  for (size_t i = 0; i < v->n; i++) {
    const nchar_t *c = &v->v[i];
    char u[4];
    size_t k = nne__u8enc(c->cp, u);
    const uint32_t *a;
    if (c->change > 0) {
      a = cur > 0 ? al + 2 * (cur - 1) : al;
    } else {
      a = al + 2 * (cur < n ? cur : n - 1);
      for (int32_t j = 0; j <= -c->change && cur < n; j++)
        cur += nne__u8len((unsigned char)s[cur]);
    }
    if (nne__sbuf_add(out, u, k) != 0 || nne__align_add(alout, a[0], a[1], k))
      return NNE_ENOMEM;
  }
  return 0;
}

static uint8_t ccc_of(uint32_t cp) {
  return (uint8_t)utf8proc_get_property((utf8proc_int32_t)cp)->combining_class;
}

/* The canonical composite of a and b, or 0. */
static uint32_t compose2(uint32_t a, uint32_t b) {
  utf8proc_int32_t buf[2] = {(utf8proc_int32_t)a, (utf8proc_int32_t)b};
  utf8proc_ssize_t k =
      utf8proc_normalize_utf32(buf, 2, (utf8proc_option_t)UTF8PROC_COMPOSE);
  return k == 1 ? (uint32_t)buf[0] : 0;
}

/* s decomposed (canonical or compatible) and put in canonical order, with
 * the changes the reference's normalization crate gives: a character's
 * first code point replaces it, the others are new, and the reordering
 * sorts each run of marks by combining class, changes and all. */
static int decompose(const char *s, size_t n, bool compat, nchars_t *out) {
  utf8proc_int32_t d[32];
  int opt = UTF8PROC_DECOMPOSE | (compat ? UTF8PROC_COMPAT : 0);
  for (size_t i = 0; i < n;) {
    size_t adv;
    uint32_t cp = nne__u8dec(s + i, &adv);
    utf8proc_ssize_t k = utf8proc_decompose_char(
        (utf8proc_int32_t)cp, d, 32, (utf8proc_option_t)opt, NULL);
    if (k < 0 || k > 32)
      return NNE_EINVAL;
    for (utf8proc_ssize_t j = 0; j < k; j++)
      if (nchars_add(out, (uint32_t)d[j], j > 0, ccc_of((uint32_t)d[j])))
        return NNE_ENOMEM;
    i += adv;
  }
  /* Stable insertion sort of each run of non-starters. */
  for (size_t i = 1; i < out->n; i++) {
    nchar_t c = out->v[i];
    size_t j = i;
    if (c.ccc == 0)
      continue;
    while (j > 0 && out->v[j - 1].ccc > c.ccc)
      out->v[j] = out->v[j - 1], j--;
    out->v[j] = c;
  }
  return 0;
}

/* Canonical composition of d into out, as the crate's Recompositions: a
 * composite takes its starter's change plus the mark's, minus one. */
static int recompose(const nchars_t *d, nchars_t *out) {
  nchars_t held = {0};
  nchar_t k = {0, 0, 0};
  bool have_k = false, have_last = false;
  uint8_t last = 0;
  int rc = 0;
#define EMIT(c) (rc = nchars_add(out, (c).cp, (c).change, (c).ccc))
  for (size_t i = 0; i < d->n && rc == 0; i++) {
    nchar_t c = d->v[i];
    uint32_t r;
    if (!have_k) {
      if (c.ccc != 0)
        EMIT(c);
      else
        k = c, have_k = true;
      continue;
    }
    if (have_last && last >= c.ccc) { /* blocked from the starter */
      if (c.ccc == 0) {
        EMIT(k);
        for (size_t j = 0; j < held.n && rc == 0; j++)
          EMIT(held.v[j]);
        held.n = 0;
        k = c;
        have_last = false;
        continue;
      }
    } else if ((r = compose2(k.cp, c.cp)) != 0) {
      k = (nchar_t){r, k.change + c.change - 1, ccc_of(r)};
      continue;
    } else if (!have_last && c.ccc == 0) {
      EMIT(k);
      k = c;
      continue;
    }
    if (rc == 0 && nchars_add(&held, c.cp, c.change, c.ccc) != 0)
      rc = NNE_ENOMEM;
    last = c.ccc;
    have_last = true;
  }
  if (rc == 0 && have_k)
    EMIT(k);
  for (size_t j = 0; j < held.n && rc == 0; j++)
    EMIT(held.v[j]);
#undef EMIT
  free(held.v);
  return rc;
}

static int unicode_aligned(int kind, const char *s, size_t n,
                           const uint32_t *al, nne__sbuf_t *out,
                           nne__align_t *alout, nne_err_t *err) {
  nchars_t d = {0}, c = {0};
  bool compose = kind == N_NFC || kind == N_NFKC;
  int rc = decompose(s, n, kind == N_NFKC || kind == N_NFKD, &d);
  if (rc == 0 && compose)
    rc = recompose(&d, &c);
  if (rc == 0)
    rc = transform(s, n, al, compose ? &c : &d, out, alout);
  free(d.v);
  free(c.v);
  if (rc == NNE_EINVAL)
    return nne_err_set(err, rc, "normalizer: cannot decompose");
  return rc;
}

/* ---- running ------------------------------------------------------------ */

/* Appends s[i..i+k) to out, and to alout the alignment of s[i] k times
 * (every byte of an output character is aligned alike). */
static int add_as(nne__sbuf_t *out, const char *p, size_t k,
                  const uint32_t *al, size_t i, nne__align_t *alout) {
  if (nne__sbuf_add(out, p, k) != 0)
    return NNE_ENOMEM;
  return al ? nne__align_add(alout, al[2 * i], al[2 * i + 1], k) : 0;
}

static int lowercase(const char *s, size_t n, const uint32_t *al,
                     nne__sbuf_t *out, nne__align_t *alout) {
  for (size_t i = 0; i < n;) {
    size_t adv;
    char u[4];
    if ((unsigned char)s[i] < 0x80) {
      char c = s[i];
      if (c >= 'A' && c <= 'Z')
        c = (char)(c + 32);
      if (add_as(out, &c, 1, al, i, alout) != 0)
        return NNE_ENOMEM;
      i++;
      continue;
    }
    uint32_t cp = nne__u8dec(s + i, &adv), lc;
    if (cp == 0x130) { /* the one unconditional one-to-many mapping */
      if (add_as(out, "i\xCC\x87", 3, al, i, alout) != 0)
        return NNE_ENOMEM;
      i += adv;
      continue;
    }
    lc = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
    if (add_as(out, u, nne__u8enc(lc, u), al, i, alout) != 0)
      return NNE_ENOMEM;
    i += adv;
  }
  return 0;
}

static int run1(const nne__norm_t *nm, nne__scratch_t *sc, const char *s,
                size_t n, const uint32_t *al, nne__sbuf_t *out,
                nne__align_t *alout, nne_err_t *err) {
  out->n = 0;
  if (al)
    alout->n = 0;
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
    if (al) /* slower, character by character, for the alignment */
      return unicode_aligned(nm->kind, s, n, al, out, alout, err);
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
          add_as(out, s + i, adv, al, i, alout) != 0)
        return NNE_ENOMEM;
      i += adv;
    }
    return 0;
  case N_PREPEND:
    /* The prepended text is aligned as the first character. */
    if (n && add_as(out, nm->str, nm->len, al, 0, alout) != 0)
      return NNE_ENOMEM;
    if (nne__sbuf_add(out, s, n) != 0 || (al && nne__align_copy(alout, al, n)))
      return NNE_ENOMEM;
    return 0;
  case N_LOWER: return lowercase(s, n, al, out, alout);
  case N_REPLACE:
    return nne__re_replace(&nm->re, sc->md, s, n, nm->str, nm->len, out, al,
                           alout, err);
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
    if (nne__sbuf_add(out, s + a, b - a) != 0 ||
        (al && nne__align_copy(alout, al + 2 * a, b - a)))
      return NNE_ENOMEM;
    return 0;
  }
  default: return NNE_EINTERNAL;
  }
}

int nne__norm_run(const nne__norm_t *nm, nne__scratch_t *sc, const char *s,
                  size_t len, const uint32_t *al, nne__sbuf_t *out,
                  nne__align_t *alout, nne_err_t *err) {
  int rc;
  /* A normalizer may only grow the text so much (a chain of Replace with
   * an empty pattern multiplies it): every output is capped. */
  out->limit = sc->norm_limit;
  out->over = false;
  if (nm->kind != N_SEQ) {
    rc = run1(nm, sc, s, len, al, out, alout, err);
    return rc != 0 && out->over ? NNE_ERESOURCE : rc;
  }
  /* A sequence runs its members one after another, through sc->tmp (and
   * sc->tmpal). */
  out->n = 0;
  if ((rc = nne__sbuf_add(out, s, len)) != 0)
    return rc;
  if (al) {
    alout->n = 0;
    if ((rc = nne__align_copy(alout, al, len)) != 0)
      return rc;
  }
  for (size_t i = 0; i < nm->nkids; i++) {
    /* Take tmp for this step; a nested sequence then gets its own. */
    nne__sbuf_t t = sc->tmp;
    nne__align_t ta = sc->tmpal;
    sc->tmp = (nne__sbuf_t){0};
    sc->tmpal = (nne__align_t){0};
    rc = nne__norm_run(nm->kids[i], sc, out->p, out->n, al ? alout->v : NULL,
                       &t, &ta, err);
    free(sc->tmp.p);
    free(sc->tmpal.v);
    if (rc != 0) {
      sc->tmp = t;
      sc->tmpal = ta;
      return rc;
    }
    sc->tmp = *out;
    sc->tmpal = *alout;
    *out = t;
    *alout = ta;
  }
  return 0;
}
