/* regex.c — PCRE2 (JIT) for the patterns of tokenizer.json.
 *
 * The reference library compiles its patterns with Oniguruma (Ruby syntax,
 * Unicode). PCRE2 with PCRE2_UTF|PCRE2_UCP reads the same syntax, but three
 * shorthands mean other sets, so the pattern is rewritten before compiling:
 *   \s  Oniguruma: White_Space; PCRE2 adds U+180E and leaves out U+0085
 *       (found by tests/text/) — so \s becomes White_Space spelled out;
 *   \w  Oniguruma: Unicode's (UTS #18) Alphabetic, Mark, Decimal_Number,
 *       Connector_Punctuation, Join_Control; PCRE2 10.42: Letter, Number
 *       and '_' — so \w becomes those five spelled out;
 *   \p{Han} Oniguruma: the Script property; PCRE2 (10.40 on): Script
 *       Extensions, which puts the shared 〜 and ・ in Han too — so a script
 *       name becomes \p{sc:Han};
 *   ^ $ Ruby syntax: at every line; PCRE2_MULTILINE does that.
 * (\S and \W are rewritten as the negated sets.) tests/text/ checks the
 * result against the reference on every script we generate.
 *
 * A compiled pcre2_code is read-only, so threads share it; each call brings
 * its own pcre2_match_data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/internal.h"

/* Unicode White_Space, spelled out: PCRE2's \s also takes U+180E. */
static const char S_IN[] =
    "\\t-\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}"
    "\\x{202f}\\x{205f}\\x{3000}";
static const char W_IN[] =
    "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}";

/* Whether name is a script (Han, Greek, Latn...): PCRE2 compiles
 * \p{sc:name} only then. */
static bool is_script(const char *name, size_t n) {
  char pat[80];
  int ecode;
  PCRE2_SIZE eoff;
  if (n == 0 || n > 60 || memchr(name, ':', n) || name[0] == '^')
    return false;
  int k = snprintf(pat, sizeof pat, "\\p{sc:%.*s}", (int)n, name);
  pcre2_code *c = pcre2_compile((PCRE2_SPTR)pat, (size_t)k,
                                PCRE2_UTF | PCRE2_UCP, &ecode, &eoff, NULL);
  pcre2_code_free(c);
  return c != NULL;
}

/* Rewrites pat into out; NNE_EUNIMPL for \S or \W inside a class, which
 * has no rewrite as a class member. */
static int rewrite(const char *pat, size_t len, nne__sbuf_t *out,
                   nne__path_t *path, nne_err_t *err) {
  int cls = 0; /* inside [...]: class members, not atoms */
  for (size_t i = 0; i < len; i++) {
    char c = pat[i];
    if (c == '\\' && i + 1 < len) {
      char d = pat[i + 1];
      const char *rep = NULL;
      char buf[160];
      if ((d == 'p' || d == 'P') && i + 2 < len && pat[i + 2] == '{') {
        const char *end = memchr(pat + i + 3, '}', len - i - 3);
        if (end && is_script(pat + i + 3, (size_t)(end - pat - i - 3))) {
          size_t n = (size_t)(end - pat - i - 3);
          snprintf(buf, sizeof buf, "\\%c{sc:%.*s}", d, (int)n, pat + i + 3);
          if (nne__sbuf_add(out, buf, strlen(buf)) != 0)
            return NNE_ENOMEM;
          i = (size_t)(end - pat);
          continue;
        }
      }
      if (d == 's' || d == 'w') {
        const char *set = d == 's' ? S_IN : W_IN;
        if (cls)
          rep = set;
        else {
          snprintf(buf, sizeof buf, "[%s]", set);
          rep = buf;
        }
      } else if (d == 'S' || d == 'W') {
        if (cls)
          return nne_err_set(err, NNE_EUNIMPL,
                             "%s: \\%c inside a character class is not "
                             "supported",
                             path->s, d);
        snprintf(buf, sizeof buf, "[^%s]", d == 'S' ? S_IN : W_IN);
        rep = buf;
      }
      if (rep) {
        if (nne__sbuf_add(out, rep, strlen(rep)) != 0)
          return NNE_ENOMEM;
      } else if (nne__sbuf_add(out, pat + i, 2) != 0)
        return NNE_ENOMEM;
      i++;
      continue;
    }
    if (c == '[' && !cls) {
      cls = 1;
      if (nne__sbuf_add(out, pat + i, 1) != 0)
        return NNE_ENOMEM;
      /* A ']' (after an optional '^') right at the start is a member. */
      if (i + 1 < len && pat[i + 1] == '^') {
        if (nne__sbuf_add(out, "^", 1) != 0)
          return NNE_ENOMEM;
        i++;
      }
      if (i + 1 < len && pat[i + 1] == ']') {
        if (nne__sbuf_add(out, "]", 1) != 0)
          return NNE_ENOMEM;
        i++;
      }
      continue;
    }
    if (c == '[' && cls && i + 1 < len && pat[i + 1] == ':') {
      /* POSIX class [:alpha:] inside a class: copy through its ':]'. */
      const char *end = strstr(pat + i, ":]");
      size_t k =
          end && (size_t)(end - pat) < len ? (size_t)(end - pat) + 2 - i : 1;
      if (nne__sbuf_add(out, pat + i, k) != 0)
        return NNE_ENOMEM;
      i += k - 1;
      continue;
    }
    if (c == ']' && cls)
      cls = 0;
    if (nne__sbuf_add(out, pat + i, 1) != 0)
      return NNE_ENOMEM;
  }
  return 0;
}

int nne__re_compile(nne__re_t *re, const char *pat, size_t len, bool literal,
                    nne__path_t *path, nne_err_t *err) {
  nne__sbuf_t buf = {0};
  uint32_t opts = PCRE2_UTF | PCRE2_NO_UTF_CHECK;
  const char *src = pat;
  size_t srclen = len;
  int rc;
  re->code = NULL;
  if (literal) {
    opts |= PCRE2_LITERAL; /* which refuses PCRE2_UCP, and needs none */
  } else {
    opts |= PCRE2_UCP | PCRE2_MULTILINE;
    if ((rc = rewrite(pat, len, &buf, path, err)) != 0) {
      free(buf.p);
      return rc;
    }
    src = buf.p ? buf.p : "";
    srclen = buf.n;
  }
  /* The pattern came out of JSON, so it is valid UTF-8 (jansson checks). */
  int ecode;
  PCRE2_SIZE eoff;
  re->code = pcre2_compile((PCRE2_SPTR)src, srclen, opts, &ecode, &eoff, NULL);
  free(buf.p);
  if (!re->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(ecode, msg, sizeof msg);
    return nne_err_set(err, NNE_EUNIMPL, "%s: regex not supported: %s (at %zu)",
                       path->s, (const char *)msg, (size_t)eoff);
  }
  /* JIT makes the pre-tokenizer regexes several times faster; when it is
   * not available (an unusual build) the interpreter gives the same
   * matches, so a failure here is not an error. */
  (void)pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);
  return 0;
}

void nne__re_free(nne__re_t *re) {
  pcre2_code_free(re->code);
  re->code = NULL;
}

int nne__re_find(const nne__re_t *re, pcre2_match_data *md, const char *s,
                 size_t n, size_t from, size_t *ms, size_t *me,
                 nne_err_t *err) {
  /* The subject is valid UTF-8 (checked once, at the API), so PCRE2 need
   * not check it again on every call. */
  int rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, md,
                       NULL);
  if (rc == PCRE2_ERROR_NOMATCH)
    return 0;
  if (rc < 0) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    return nne_err_set(err, NNE_ERESOURCE, "regex match failed: %s",
                       (const char *)msg);
  }
  PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
  *ms = ov[0];
  *me = ov[1];
  return 1;
}

int nne__re_from_json(nne__re_t *re, json_t *o, const char *key,
                      nne__path_t *path, nne_err_t *err) {
  json_t *p = json_object_get(o, key);
  size_t mark = nne__path_push(path, ".%s", key);
  int rc;
  json_t *v;
  if (!json_is_object(p))
    rc = nne_err_set(err, NNE_EINVAL,
                     "%s: must be {\"String\": ...} or {\"Regex\": ...}",
                     path->s);
  else if (json_is_string(v = json_object_get(p, "String"))) {
    nne__path_push(path, ".String");
    rc = nne__re_compile(re, json_string_value(v), json_string_length(v), true,
                         path, err);
  } else if (json_is_string(v = json_object_get(p, "Regex"))) {
    nne__path_push(path, ".Regex");
    rc = nne__re_compile(re, json_string_value(v), json_string_length(v), false,
                         path, err);
  } else
    rc = nne_err_set(err, NNE_EINVAL,
                     "%s: must be {\"String\": ...} or {\"Regex\": ...}",
                     path->s);
  nne__path_pop(path, mark);
  return rc;
}

/* The alignment of s[from..to) to alout, when there is one. */
static int keep_align(const uint32_t *al, size_t from, size_t to,
                      nne__align_t *alout) {
  return al ? nne__align_copy(alout, al + 2 * from, to - from) : 0;
}

int nne__re_replace(const nne__re_t *re, pcre2_match_data *md, const char *s,
                    size_t n, const char *with, size_t wlen, nne__sbuf_t *out,
                    const uint32_t *al, nne__align_t *alout, nne_err_t *err) {
  size_t from = 0, ms, me;
  int rc = 0;
  while (from <= n &&
         (rc = nne__re_find(re, md, s, n, from, &ms, &me, err)) == 1) {
    if (nne__sbuf_add(out, s + from, ms - from) != 0 ||
        keep_align(al, from, ms, alout) != 0 ||
        nne__sbuf_add(out, with, wlen) != 0)
      return NNE_ENOMEM;
    /* The replacement is "inserted" after the match's last byte: it takes
     * that byte's alignment (the reference gives (0, 0) at the start). */
    if (al && wlen &&
        (me > 0 ? nne__align_add(alout, al[2 * (me - 1)], al[2 * me - 1], wlen)
                : nne__align_add(alout, al[0], al[0], wlen)))
      return NNE_ENOMEM;
    if (me == ms) { /* an empty match: keep one character and step over it */
      if (ms == n) {
        from = n + 1;
        break;
      }
      size_t k = nne__u8len((unsigned char)s[ms]);
      if (nne__sbuf_add(out, s + ms, k) != 0 ||
          keep_align(al, ms, ms + k, alout) != 0)
        return NNE_ENOMEM;
      me = ms + k;
    }
    from = me;
  }
  if (rc < 0)
    return rc;
  if (from < n && (nne__sbuf_add(out, s + from, n - from) != 0 ||
                   keep_align(al, from, n, alout) != 0))
    return NNE_ENOMEM;
  return 0;
}
