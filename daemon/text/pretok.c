/* pretok.c — the pre-tokenizers: a normalized text → the words that the
 * model encodes one by one.
 *
 * Every pre-tokenizer is "find the delimiters, then keep or merge them by a
 * behaviour": the delimiters are regex matches (Split, ByteLevel,
 * Whitespace) or single characters (Digits, Punctuation, WhitespaceSplit,
 * Metaspace); find() lists them with the text between as spans, behave()
 * applies one of the reference's five behaviours, emit() keeps the
 * non-empty spans as new pieces. ByteLevel and Metaspace also rewrite the
 * text (bytes → printable characters; ' ' → '▁').
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "base/vec.h"
#include "text/internal.h"

enum {
  P_SEQ,
  P_BYTELEVEL,
  P_SPLIT,
  P_METASPACE,
  P_DIGITS,
  P_PUNCT,
  P_WHITESPACE,
  P_WSPLIT
};
enum { B_REMOVED, B_ISOLATED, B_MPREV, B_MNEXT, B_CONTIGUOUS };
enum { PREPEND_ALWAYS, PREPEND_NEVER, PREPEND_FIRST };

/* The pattern the reference's ByteLevel splits with (GPT-2's). */
static const char GPT2_RE[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
    "\\s+(?!\\S)|\\s+";
/* The reference's Whitespace pre-tokenizer: words and runs of symbols. */
static const char WS_RE[] = "\\w+|[^\\w\\s]+";

struct nne__pretok {
  int kind;
  int behavior;
  bool invert, add_prefix_space, use_regex, individual, split;
  int prepend;
  uint32_t repl; /* Metaspace's replacement character */
  char repl_u8[4];
  size_t repl_len;
  nne__re_t re;
  void **kids; /* nne__pretok_t *, a Sequence's members */
  size_t nkids;
};

void nne__bytelevel_init(nne__bytelevel_t *bl) {
  /* GPT-2's alphabet: printable Latin-1 bytes stand for themselves; the
   * others (controls, space, DEL, NBSP, soft hyphen, ...) take the code
   * points from U+0100 on, in byte order. */
  uint32_t next = 256;
  for (int i = 0; i < 324; i++)
    bl->dec[i] = -1;
  for (int b = 0; b < 256; b++) {
    bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) ||
                     (b >= 0xAE && b <= 0xFF);
    uint32_t cp = printable ? (uint32_t)b : next++;
    bl->enclen[b] = (uint8_t)nne__u8enc(cp, bl->enc[b]);
    bl->dec[cp] = (int16_t)b;
  }
}

void nne__pretok_free(nne__pretok_t *p) {
  if (!p)
    return;
  for (size_t i = 0; i < p->nkids; i++)
    nne__pretok_free(p->kids[i]);
  free(p->kids);
  nne__re_free(&p->re);
  free(p);
}

static int load_behavior(json_t *j, int dflt, int *out, nne__path_t *path,
                         nne_err_t *err) {
  static const char *const names[] = {"Removed", "Isolated",
                                      "MergedWithPrevious", "MergedWithNext",
                                      "Contiguous"};
  const char *s;
  int rc = nne__json_str(j, "behavior", NULL, &s, NULL, path, err);
  if (rc)
    return rc;
  if (!s) {
    *out = dflt;
    return 0;
  }
  for (int i = 0; i < 5; i++)
    if (!strcmp(s, names[i])) {
      *out = i;
      return 0;
    }
  return nne_err_set(err, NNE_EUNIMPL, "%s.behavior: \"%s\" is not supported",
                     path->s, s);
}

static int compile_const(nne__re_t *re, const char *pat, nne__path_t *path,
                         nne_err_t *err) {
  return nne__re_compile(re, pat, strlen(pat), false, path, err);
}

/* nne__load_fn's form of nne__pretok_load, for nne__load_list. */
static int load_kid(json_t *j, void **out, nne__path_t *path, nne_err_t *err) {
  nne__pretok_t *k;
  int rc = nne__pretok_load(j, &k, path, err);
  *out = k;
  return rc;
}

int nne__pretok_load(json_t *j, nne__pretok_t **out, nne__path_t *path,
                     nne_err_t *err) {
  const char *type, *s;
  size_t len;
  int rc;
  *out = NULL;
  if ((rc = nne__json_type(j, &type, path, err)) != 0)
    return rc;
  nne__pretok_t *p = calloc(1, sizeof *p);
  if (!p)
    return NNE_ENOMEM;
  if (!strcmp(type, "Sequence")) {
    p->kind = P_SEQ;
    if ((rc = nne__load_list(j, "pretokenizers", load_kid, &p->kids, &p->nkids,
                             path, err)))
      goto fail;
  } else if (!strcmp(type, "ByteLevel")) {
    p->kind = P_BYTELEVEL;
    if ((rc = nne__json_bool(j, "add_prefix_space", true, &p->add_prefix_space,
                             path, err)) ||
        (rc = nne__json_bool(j, "use_regex", true, &p->use_regex, path, err)))
      goto fail;
    if (p->use_regex && (rc = compile_const(&p->re, GPT2_RE, path, err)))
      goto fail;
  } else if (!strcmp(type, "Split")) {
    p->kind = P_SPLIT;
    if ((rc = load_behavior(j, -1, &p->behavior, path, err)) ||
        (rc = nne__json_bool(j, "invert", false, &p->invert, path, err)) ||
        (rc = nne__re_from_json(&p->re, j, "pattern", path, err)))
      goto fail;
    if (p->behavior < 0) {
      rc = nne_err_set(err, NNE_EINVAL, "%s.behavior: missing", path->s);
      goto fail;
    }
  } else if (!strcmp(type, "Metaspace")) {
    p->kind = P_METASPACE;
    bool aps;
    if ((rc = nne__json_str(j, "replacement", "\xE2\x96\x81", &s, &len, path,
                            err)))
      goto fail;
    size_t adv;
    if (len == 0 || len > 4 || (p->repl = nne__u8dec(s, &adv), adv != len)) {
      rc = nne_err_set(err, NNE_EINVAL, "%s.replacement: must be one character",
                       path->s);
      goto fail;
    }
    memcpy(p->repl_u8, s, len);
    p->repl_len = len;
    if ((rc = nne__json_bool(j, "split", true, &p->split, path, err)) ||
        (rc = nne__json_str(j, "prepend_scheme", NULL, &s, NULL, path, err)))
      goto fail;
    if (!s) { /* the older form */
      if ((rc = nne__json_bool(j, "add_prefix_space", true, &aps, path, err)))
        goto fail;
      p->prepend = aps ? PREPEND_ALWAYS : PREPEND_NEVER;
    } else if (!strcmp(s, "always"))
      p->prepend = PREPEND_ALWAYS;
    else if (!strcmp(s, "never"))
      p->prepend = PREPEND_NEVER;
    else if (!strcmp(s, "first"))
      p->prepend = PREPEND_FIRST;
    else {
      rc =
          nne_err_set(err, NNE_EUNIMPL,
                      "%s.prepend_scheme: \"%s\" is not supported", path->s, s);
      goto fail;
    }
  } else if (!strcmp(type, "Digits")) {
    p->kind = P_DIGITS;
    if ((rc = nne__json_bool(j, "individual_digits", false, &p->individual,
                             path, err)))
      goto fail;
  } else if (!strcmp(type, "Punctuation")) {
    p->kind = P_PUNCT;
    if ((rc = load_behavior(j, B_ISOLATED, &p->behavior, path, err)))
      goto fail;
  } else if (!strcmp(type, "Whitespace")) {
    p->kind = P_WHITESPACE;
    if ((rc = compile_const(&p->re, WS_RE, path, err)))
      goto fail;
  } else if (!strcmp(type, "WhitespaceSplit")) {
    p->kind = P_WSPLIT;
  } else {
    rc = nne__unsupported(path, type, err);
    goto fail;
  }
  *out = p;
  return 0;
fail:
  nne__pretok_free(p);
  return rc;
}

/* ---- finding delimiters ------------------------------------------------ */

static int span_add(nne__scratch_t *sc, size_t s, size_t e, bool match) {
  if (sc->nspans == sc->capspans &&
      NNE_VEC_GROW(&sc->spans, &sc->capspans, sc->nspans + 1) != 0)
    return NNE_ENOMEM;
  sc->spans[sc->nspans++] = (nne__span_t){s, e, match};
  return 0;
}

/* Lists s[0..n) as alternating spans of text and regex matches. An empty
 * match is skipped over by one character, as Oniguruma's iterator does. */
static int find_re(const nne__re_t *re, nne__scratch_t *sc, const char *s,
                   size_t n, nne_err_t *err) {
  size_t prev = 0, from = 0, ms, me;
  int rc;
  sc->nspans = 0;
  while (from <= n &&
         (rc = nne__re_find(re, sc->md, s, n, from, &ms, &me, err)) == 1) {
    if (prev != ms && span_add(sc, prev, ms, false))
      return NNE_ENOMEM;
    if (span_add(sc, ms, me, true))
      return NNE_ENOMEM;
    prev = me;
    from = me > ms ? me : ms + (ms < n ? nne__u8len((unsigned char)s[ms]) : 1);
  }
  if (rc < 0)
    return rc;
  if (prev != n && span_add(sc, prev, n, false))
    return NNE_ENOMEM;
  return 0;
}

static bool is_punct(uint32_t cp) {
  if (cp < 0x80)
    return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) ||
           (cp >= 0x5B && cp <= 0x60) || (cp >= 0x7B && cp <= 0x7E);
  utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

static bool is_numeric(uint32_t cp) {
  utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
  return c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO;
}

/* The same with each character for which pred holds as a match. */
static int find_chars(const nne__pretok_t *p, nne__scratch_t *sc, const char *s,
                      size_t n) {
  size_t prev = 0;
  sc->nspans = 0;
  for (size_t i = 0; i < n;) {
    size_t adv;
    uint32_t cp = nne__u8dec(s + i, &adv);
    bool hit;
    switch (p->kind) {
    case P_DIGITS: /* Rust's char::is_numeric: any Number category */
      hit = cp < 0x80 ? cp >= '0' && cp <= '9' : is_numeric(cp);
      break;
    case P_PUNCT: hit = is_punct(cp); break;
    case P_WSPLIT: hit = nne__is_space(cp); break;
    default: hit = cp == p->repl; break; /* Metaspace */
    }
    if (hit) {
      if (prev != i && span_add(sc, prev, i, false))
        return NNE_ENOMEM;
      if (span_add(sc, i, i + adv, true))
        return NNE_ENOMEM;
      prev = i + adv;
    }
    i += adv;
  }
  if (prev != n && span_add(sc, prev, n, false))
    return NNE_ENOMEM;
  return 0;
}

/* Applies a behaviour to the spans in place; returns how many are left. */
static size_t behave(nne__span_t *v, size_t n, int beh) {
  size_t w = 0;
  bool prev = false;
  switch (beh) {
  case B_REMOVED:
    for (size_t r = 0; r < n; r++)
      if (!v[r].match)
        v[w++] = v[r];
    return w;
  case B_ISOLATED: return n;
  case B_MPREV: /* a delimiter joins the text before it */
    for (size_t r = 0; r < n; r++) {
      bool m = v[r].match;
      if (m && !prev && w > 0)
        v[w - 1].e = v[r].e;
      else
        v[w++] = v[r];
      prev = m;
    }
    return w;
  case B_MNEXT: {   /* a delimiter joins the text after it: the mirror image */
    size_t top = n; /* the result grows down from the end */
    for (size_t r = n; r-- > 0;) {
      bool m = v[r].match;
      if (m && !prev && top < n)
        v[top].s = v[r].s;
      else
        v[--top] = v[r];
      prev = m;
    }
    memmove(v, v + top, (n - top) * sizeof *v);
    return n - top;
  }
  default: /* B_CONTIGUOUS: runs of delimiters become one */
    for (size_t r = 0; r < n; r++) {
      bool m = v[r].match;
      if (m == prev && w > 0)
        v[w - 1].e = v[r].e;
      else
        v[w++] = v[r];
      prev = m;
    }
    return w;
  }
}

/* Appends s[0..n) to out as a piece, mapped through the byte-level alphabet
 * when bl is given; al (n pairs) is its alignment, NULL when offsets are
 * not wanted (each byte's characters take its byte's). */
static int emit(nne__pieces_t *out, const char *s, size_t n, bool origin,
                const nne__bytelevel_t *bl, const uint32_t *al) {
  if (n == 0)
    return 0;
  if (!bl)
    return nne__pieces_add(out, s, n, origin, al);
  size_t start = out->text.n;
  for (size_t i = 0; i < n; i++) {
    unsigned char b = (unsigned char)s[i];
    if (nne__sbuf_add(&out->text, bl->enc[b], bl->enclen[b]) != 0 ||
        (al && nne__align_add(&out->al, al[2 * i], al[2 * i + 1],
                              bl->enclen[b]) != 0))
      return NNE_ENOMEM;
  }
  return nne__pieces_close(out, start, origin);
}

/* Emits the spans of s left after the behaviour. */
static int emit_spans(nne__scratch_t *sc, nne__pieces_t *out, const char *s,
                      const uint32_t *al, bool origin, int beh, bool invert,
                      const nne__bytelevel_t *bl) {
  if (invert)
    for (size_t i = 0; i < sc->nspans; i++)
      sc->spans[i].match = !sc->spans[i].match;
  size_t k = behave(sc->spans, sc->nspans, beh);
  for (size_t i = 0; i < k; i++) {
    nne__span_t sp = sc->spans[i];
    int rc = emit(out, s + sp.s, sp.e - sp.s, origin && sp.s == 0, bl,
                  al ? al + 2 * sp.s : NULL);
    if (rc)
      return rc;
  }
  return 0;
}

/* sc->tmp (and sc->tmpal) emptied for a rewritten piece. */
static void tmp_reset(nne__scratch_t *sc) {
  sc->tmp.n = 0;
  sc->tmpal.n = 0;
}

/* Appends s[0..n) to sc->tmp, aligned as al (when offsets are wanted). */
static int tmp_add(nne__scratch_t *sc, const char *s, size_t n,
                   const uint32_t *al) {
  if (nne__sbuf_add(&sc->tmp, s, n) != 0 ||
      (al && nne__align_copy(&sc->tmpal, al, n) != 0))
    return NNE_ENOMEM;
  return 0;
}

/* Appends s[0..n) to sc->tmp, every byte aligned as the pair at a. */
static int tmp_add_as(nne__scratch_t *sc, const char *s, size_t n,
                      const uint32_t *a) {
  if (nne__sbuf_add(&sc->tmp, s, n) != 0 ||
      (a && nne__align_add(&sc->tmpal, a[0], a[1], n) != 0))
    return NNE_ENOMEM;
  return 0;
}

static int run_piece(const nne__pretok_t *p, const nne__bytelevel_t *bl,
                     nne__scratch_t *sc, const char *s, size_t n,
                     const uint32_t *al, bool origin, nne__pieces_t *out,
                     nne_err_t *err) {
  int rc;
  switch (p->kind) {
  case P_BYTELEVEL: {
    const char *t = s;
    const uint32_t *ta = al;
    size_t tn = n;
    if (p->add_prefix_space && s[0] != ' ') {
      /* The space is aligned as the first character, as the reference's
       * prepend does. */
      tmp_reset(sc);
      if (tmp_add_as(sc, " ", 1, al) || tmp_add(sc, s, n, al))
        return NNE_ENOMEM;
      t = sc->tmp.p;
      ta = al ? sc->tmpal.v : NULL;
      tn = sc->tmp.n;
    }
    if (!p->use_regex)
      return emit(out, t, tn, origin, bl, ta);
    if ((rc = find_re(&p->re, sc, t, tn, err)))
      return rc;
    return emit_spans(sc, out, t, ta, origin, B_ISOLATED, false, bl);
  }
  case P_SPLIT:
  case P_WHITESPACE:
    if ((rc = find_re(&p->re, sc, s, n, err)))
      return rc;
    if (p->kind == P_WHITESPACE)
      return emit_spans(sc, out, s, al, origin, B_REMOVED, true, NULL);
    return emit_spans(sc, out, s, al, origin, p->behavior, p->invert, NULL);
  case P_DIGITS:
    if ((rc = find_chars(p, sc, s, n)))
      return rc;
    return emit_spans(sc, out, s, al, origin,
                      p->individual ? B_ISOLATED : B_CONTIGUOUS, false, NULL);
  case P_PUNCT:
    if ((rc = find_chars(p, sc, s, n)))
      return rc;
    return emit_spans(sc, out, s, al, origin, p->behavior, false, NULL);
  case P_WSPLIT:
    if ((rc = find_chars(p, sc, s, n)))
      return rc;
    return emit_spans(sc, out, s, al, origin, B_REMOVED, false, NULL);
  case P_METASPACE: {
    /* ' ' → the replacement (aligned as the space), then the prefix
     * (aligned as the first character), then the split before each
     * replacement character. */
    tmp_reset(sc);
    bool starts =
        n >= 1 && (s[0] == ' ' ||
                   (n >= p->repl_len && !memcmp(s, p->repl_u8, p->repl_len)));
    if (!starts && (p->prepend == PREPEND_ALWAYS ||
                    (p->prepend == PREPEND_FIRST && origin)))
      if (tmp_add_as(sc, p->repl_u8, p->repl_len, al))
        return NNE_ENOMEM;
    size_t run = 0;
    for (size_t i = 0; i < n; i++)
      if (s[i] == ' ') {
        if (tmp_add(sc, s + run, i - run, al ? al + 2 * run : NULL) ||
            tmp_add_as(sc, p->repl_u8, p->repl_len, al ? al + 2 * i : NULL))
          return NNE_ENOMEM;
        run = i + 1;
      }
    if (tmp_add(sc, s + run, n - run, al ? al + 2 * run : NULL))
      return NNE_ENOMEM;
    const uint32_t *ta = al ? sc->tmpal.v : NULL;
    if (!p->split)
      return emit(out, sc->tmp.p, sc->tmp.n, origin, NULL, ta);
    if ((rc = find_chars(p, sc, sc->tmp.p, sc->tmp.n)))
      return rc;
    return emit_spans(sc, out, sc->tmp.p, ta, origin, B_MNEXT, false, NULL);
  }
  default: return NNE_EINTERNAL;
  }
}

int nne__pretok_run(const nne__pretok_t *p, const nne__bytelevel_t *bl,
                    nne__scratch_t *sc, nne_err_t *err) {
  int rc;
  if (p->kind == P_SEQ) {
    for (size_t i = 0; i < p->nkids; i++)
      if ((rc = nne__pretok_run(p->kids[i], bl, sc, err)))
        return rc;
    return 0;
  }
  nne__pieces_clear(&sc->b);
  for (size_t i = 0; i < sc->a.n; i++) {
    nne__piece_t pc = sc->a.v[i];
    rc = run_piece(p, bl, sc,
                   sc->a.text.p != NULL ? sc->a.text.p + pc.off : "", pc.len,
                   sc->offsets ? sc->a.al.v + 2 * pc.off : NULL, pc.origin,
                   &sc->b, err);
    if (rc)
      return rc;
  }
  nne__pieces_t t = sc->a;
  sc->a = sc->b;
  sc->b = t;
  return 0;
}
