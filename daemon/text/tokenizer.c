/* tokenizer.c — loading tokenizer.json, added tokens, post-processing, and
 * the encode/decode pipeline (tokenizer.h; the stages are in the other
 * files of this folder, internal.h lists them).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "base/vec.h"
#include "text/internal.h"

typedef struct added {
  const char *content; /* in the tokenizer's added_strs */
  size_t len;
  int32_t id;
  bool special, lstrip, rstrip, single_word, normalized;
} added_t;

/* Added tokens of one kind (matched on the raw or on the normalized text),
 * indexed by first byte, longest first: the first candidate that matches
 * at a position is the leftmost-longest match the reference's
 * Aho-Corasick automaton reports. */
typedef struct added_index {
  uint32_t *order; /* indices into added */
  uint32_t start[257];
} added_index_t;

struct nne_tokenizer {
  nne__bpe_t bpe;
  nne__norm_t *norm;
  nne__pretok_t *pretok;
  nne__dec_t *dec;
  nne__bytelevel_t bl;
  added_t *added;
  size_t nadded;
  char *added_strs;
  nne_map_t added_by_content; /* content → index in added */
  int32_t *added_by_id;       /* id → index in added, or -1 */
  size_t nids;                /* one past the largest id of all */
  added_index_t raw, normd;
  nne__post_t *post; /* NULL: none */
};

/* ---- pieces, ids ------------------------------------------------------- */

int nne__pieces_close(nne__pieces_t *ps, size_t start, bool origin) {
  if (ps->n == ps->cap && NNE_VEC_GROW(&ps->v, &ps->cap, ps->n + 1) != 0)
    return NNE_ENOMEM;
  ps->v[ps->n++] = (nne__piece_t){start, ps->text.n - start, origin};
  return 0;
}

int nne__pieces_add(nne__pieces_t *ps, const char *s, size_t n, bool origin,
                    const uint32_t *al) {
  size_t off = ps->text.n;
  if (nne__sbuf_add(&ps->text, s, n) != 0 ||
      (al && nne__align_copy(&ps->al, al, n) != 0))
    return NNE_ENOMEM;
  return nne__pieces_close(ps, off, origin);
}

void nne__pieces_clear(nne__pieces_t *ps) {
  ps->n = 0;
  ps->text.n = 0;
  ps->al.n = 0;
}

void nne__pieces_free(nne__pieces_t *ps) {
  free(ps->text.p);
  free(ps->al.v);
  free(ps->v);
  memset(ps, 0, sizeof *ps);
}

int nne__ids_add(nne__scratch_t *sc, int32_t id) {
  if (sc->nids == sc->capids &&
      NNE_VEC_GROW(&sc->ids, &sc->capids, sc->nids + 1) != 0)
    return NNE_ENOMEM;
  sc->ids[sc->nids++] = id;
  return 0;
}

int nne__tok_add(nne__scratch_t *sc, int32_t id, uint32_t start,
                 uint32_t end) {
  if (sc->offsets) {
    if (2 * (sc->nids + 1) > sc->capoffs &&
        NNE_VEC_GROW(&sc->offs, &sc->capoffs, 2 * (sc->nids + 1)) != 0)
      return NNE_ENOMEM;
    sc->offs[2 * sc->nids] = start;
    sc->offs[2 * sc->nids + 1] = end;
  }
  return nne__ids_add(sc, id);
}

void nne__scratch_free(nne__scratch_t *sc) {
  pcre2_match_data_free(sc->md);
  nne__pieces_free(&sc->a);
  nne__pieces_free(&sc->b);
  free(sc->spans);
  free(sc->norm.p);
  free(sc->tmp.p);
  free(sc->seg.p);
  free(sc->sym_id);
  free(sc->sym_prev);
  free(sc->sym_next);
  free(sc->sym_len);
  free(sc->sym_bytes);
  free(sc->heap);
  free(sc->ids);
  free(sc->offs);
  free(sc->tmpal.v);
  free(sc->segal.v);
}

/* The API functions work with their own nne_err_t and copy it out on
 * failure, so that a code returned from deep inside (NNE_ENOMEM from a
 * buffer) still reaches the caller with a message, and a caller's err is
 * left alone on success. */
static int finish(int rc, nne_err_t *mine, nne_err_t *err, const char *what) {
  if (rc == 0)
    return 0;
  if (mine->code == 0)
    nne_err_set(mine, rc, "%s: %s", what, nne_strerror(rc));
  if (err)
    *err = *mine;
  return rc;
}

/* ---- loading ----------------------------------------------------------- */

void nne_tokenizer_free(nne_tokenizer_t *t) {
  if (!t)
    return;
  nne__bpe_free(&t->bpe);
  nne__norm_free(t->norm);
  nne__pretok_free(t->pretok);
  nne__dec_free(t->dec);
  free(t->added);
  free(t->added_strs);
  nne_map_free(&t->added_by_content);
  free(t->added_by_id);
  free(t->raw.order);
  free(t->normd.order);
  nne__post_free(t->post);
  free(t);
}

static int load_added(nne_tokenizer_t *t, json_t *arr, nne__path_t *path,
                      nne_err_t *err) {
  size_t total = 0, n;
  int rc;
  if (!arr || json_is_null(arr))
    return 0;
  if (!json_is_array(arr))
    return nne_err_set(err, NNE_EINVAL, "added_tokens: must be an array");
  n = json_array_size(arr);
  for (size_t i = 0; i < n; i++) {
    json_t *c = json_object_get(json_array_get(arr, i), "content");
    if (!json_is_string(c) || json_string_length(c) == 0)
      return nne_err_set(
          err, NNE_EINVAL,
          "added_tokens[%zu].content: must be a non-empty string", i);
    total += json_string_length(c) + 1;
  }
  t->added = calloc(n + 1, sizeof *t->added);
  t->added_strs = malloc(total + 1);
  if (!t->added || !t->added_strs)
    return NNE_ENOMEM;
  size_t at = 0;
  int32_t vsize = (int32_t)nne_map_count(&t->bpe.vocab), maxid = -1;
  bool any = false;
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_array_get(arr, i), *id = json_object_get(o, "id");
    json_t *c = json_object_get(o, "content");
    added_t *a = &t->added[i];
    size_t mark = nne__path_push(path, "added_tokens[%zu]", i);
    if (!json_is_integer(id) || json_integer_value(id) < 0 ||
        json_integer_value(id) >= (1 << 24))
      return nne_err_set(err, NNE_EINVAL, "%s.id: must be an id", path->s);
    a->len = json_string_length(c);
    memcpy(t->added_strs + at, json_string_value(c), a->len + 1);
    a->content = t->added_strs + at;
    at += a->len + 1;
    /* The id is not the file's "id" but the one the reference gives when
     * it adds the token on load: the id the content already has (an added
     * token's, then the vocabulary's), else the next free one after the
     * vocabulary. The two agree in any file the library wrote itself. */
    intptr_t prev;
    int32_t known = nne_map_get(&t->added_by_content, a->content, a->len, &prev)
                        ? t->added[prev].id
                        : nne__bpe_lookup(&t->bpe, a->content, a->len);
    if (known >= 0)
      a->id = known;
    else if (!any || (maxid >= vsize || vsize == 0))
      a->id = any ? maxid + 1 : vsize;
    else
      a->id = vsize;
    if (!any || a->id > maxid)
      maxid = a->id;
    any = true;
    if ((rc = nne__json_bool(o, "special", false, &a->special, path, err)) ||
        (rc = nne__json_bool(o, "lstrip", false, &a->lstrip, path, err)) ||
        (rc = nne__json_bool(o, "rstrip", false, &a->rstrip, path, err)) ||
        (rc = nne__json_bool(o, "single_word", false, &a->single_word, path,
                             err)) ||
        /* The reference's default: special tokens match the raw text. */
        (rc = nne__json_bool(o, "normalized", !a->special, &a->normalized, path,
                             err)))
      return rc;
    nne__path_pop(path, mark);
    rc = nne_map_put(&t->added_by_content, a->content, a->len, (intptr_t)i);
    if (rc < 0)
      return rc;
    if (rc == 1)
      nne_map_set(&t->added_by_content, a->content, a->len, (intptr_t)i);
    t->nadded++;
  }
  return 0;
}

/* What the index sorts by, copied out so that the comparison needs no
 * context (qsort has none, and a static one would race between two
 * threads loading tokenizers). */
typedef struct sort_key {
  unsigned char first;
  size_t len;
  uint32_t idx;
} sort_key_t;

static int by_byte_then_longest(const void *x, const void *y) {
  const sort_key_t *a = x, *b = y;
  if (a->first != b->first)
    return a->first < b->first ? -1 : 1;
  if (a->len != b->len)
    return a->len > b->len ? -1 : 1;
  return a->idx < b->idx ? -1 : 1;
}

static int build_index(nne_tokenizer_t *t, added_index_t *ix, bool normalized) {
  size_t k = 0;
  sort_key_t *keys = malloc((t->nadded + 1) * sizeof *keys);
  if (!keys || !(ix->order = malloc((t->nadded + 1) * sizeof *ix->order))) {
    free(keys);
    return NNE_ENOMEM;
  }
  for (size_t i = 0; i < t->nadded; i++)
    if (t->added[i].normalized == normalized)
      keys[k++] = (sort_key_t){(unsigned char)t->added[i].content[0],
                               t->added[i].len, (uint32_t)i};
  qsort(keys, k, sizeof *keys, by_byte_then_longest);
  size_t j = 0;
  for (int b = 0; b < 256; b++) {
    ix->start[b] = (uint32_t)j;
    while (j < k && keys[j].first == b)
      ix->order[j] = keys[j].idx, j++;
  }
  ix->start[256] = (uint32_t)k;
  free(keys);
  return 0;
}

/* Loads one optional stage (null or absent: none). */
#define LOAD_STAGE(key, fn, dst)                                               \
  do {                                                                         \
    json_t *v_ = json_object_get(root, key);                                   \
    if (v_ && !json_is_null(v_)) {                                             \
      nne__path_pop(&path, 0);                                                 \
      nne__path_push(&path, "%s", key);                                        \
      if ((rc = fn(v_, dst, &path, err)))                                      \
        goto fail;                                                             \
    }                                                                          \
  } while (0)

static int check_ids(nne_tokenizer_t *t, nne_err_t *err) {
  size_t nids = t->bpe.nids;
  for (size_t i = 0; i < t->nadded; i++)
    if ((size_t)t->added[i].id + 1 > nids)
      nids = (size_t)t->added[i].id + 1;
  t->nids = nids;
  if (!(t->added_by_id = malloc((nids + 1) * sizeof *t->added_by_id)))
    return NNE_ENOMEM;
  for (size_t i = 0; i < nids; i++)
    t->added_by_id[i] = -1;
  for (size_t i = 0; i < t->nadded; i++)
    t->added_by_id[t->added[i].id] = (int32_t)i;
  return nne__post_check(t->post, nids, err);
}

static int load_json(const char *json, size_t len, nne_tokenizer_t **out,
                     nne_err_t *err) {
  json_error_t jerr;
  nne__path_t path = {{0}, 0};
  int rc = 0;
  *out = NULL;
  if (len > NNE_TOKENIZER_MAX_JSON_BYTES)
    return nne_err_set(err, NNE_ERESOURCE,
                       "tokenizer.json: %zu bytes is over the limit of %zu",
                       len, NNE_TOKENIZER_MAX_JSON_BYTES);
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return nne_err_set(err, NNE_EINVAL, "tokenizer.json: line %d: %s",
                       jerr.line, jerr.text);
  nne_tokenizer_t *t = calloc(1, sizeof *t);
  if (!t) {
    json_decref(root);
    return nne_err_set(err, NNE_ENOMEM, "tokenizer: out of memory");
  }
  nne__bytelevel_init(&t->bl);
  if (!json_is_object(root)) {
    rc = nne_err_set(err, NNE_EINVAL, "tokenizer.json: must be an object");
    goto fail;
  }
  /* Truncation and padding change the ids; the daemon bounds lengths
   * itself, so a file that asks for either is refused, not ignored. */
  static const char *const refused[] = {"truncation", "padding"};
  for (int i = 0; i < 2; i++) {
    json_t *v = json_object_get(root, refused[i]);
    if (v && !json_is_null(v)) {
      rc = nne_err_set(err, NNE_EUNIMPL, "%s: is not supported (must be null)",
                       refused[i]);
      goto fail;
    }
  }
  json_t *model = json_object_get(root, "model");
  if (!model) {
    rc = nne_err_set(err, NNE_EINVAL, "model: missing");
    goto fail;
  }
  nne__path_push(&path, "model");
  if ((rc = nne__bpe_load(model, &t->bpe, &path, err)))
    goto fail;
  nne__path_pop(&path, 0);
  if ((rc = load_added(t, json_object_get(root, "added_tokens"), &path, err)))
    goto fail;
  LOAD_STAGE("normalizer", nne__norm_load, &t->norm);
  LOAD_STAGE("pre_tokenizer", nne__pretok_load, &t->pretok);
  LOAD_STAGE("decoder", nne__dec_load, &t->dec);
  LOAD_STAGE("post_processor", nne__post_load, &t->post);
  if ((rc = build_index(t, &t->raw, false)) ||
      (rc = build_index(t, &t->normd, true)) || (rc = check_ids(t, err)))
    goto fail;
  json_decref(root);
  *out = t;
  return 0;
fail:
  json_decref(root);
  nne_tokenizer_free(t);
  return rc;
}

int nne_tokenizer_load_json(const char *json, size_t len, nne_tokenizer_t **out,
                            nne_err_t *err) {
  nne_err_t e = {0};
  return finish(load_json(json, len, out, &e), &e, err, "tokenizer.json");
}

int nne_tokenizer_load_file(const char *path, nne_tokenizer_t **out,
                            nne_err_t *err) {
  struct stat st;
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f)
    return nne_err_set(err, errno == ENOENT ? NNE_ENOTFOUND : NNE_EIO, "%s: %s",
                       path, strerror(errno));
  if (fstat(fileno(f), &st) != 0 || st.st_size < 0) {
    fclose(f);
    return nne_err_set(err, NNE_EIO, "%s: cannot stat", path);
  }
  if ((size_t)st.st_size > NNE_TOKENIZER_MAX_JSON_BYTES) {
    fclose(f);
    return nne_err_set(err, NNE_ERESOURCE, "%s: %lld bytes is over the limit",
                       path, (long long)st.st_size);
  }
  size_t n = (size_t)st.st_size;
  char *buf = malloc(n + 1);
  if (!buf) {
    fclose(f);
    return nne_err_set(err, NNE_ENOMEM, "%s: out of memory", path);
  }
  size_t got = fread(buf, 1, n, f);
  fclose(f);
  if (got != n) {
    free(buf);
    return nne_err_set(err, NNE_EIO, "%s: short read", path);
  }
  int rc = nne_tokenizer_load_json(buf, n, out, err);
  free(buf);
  if (rc && err)
    nne_err_prefix(err, "%s", path);
  return rc;
}

/* ---- encoding ---------------------------------------------------------- */

/* single_word's notion of a word character: the reference's matches a
 * regex \w (Oniguruma's: letters, marks, decimal digits, connector
 * punctuation, ZWJ/ZWNJ; tests/text/ shows marks count), approximated from
 * the general category. */
static bool is_word_char(uint32_t cp) {
  if (cp == 0x200C || cp == 0x200D)
    return true;
  utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
  return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_ME) ||
         c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL ||
         c == UTF8PROC_CATEGORY_PC;
}

static size_t prev_char(const char *s, size_t i) {
  size_t st = i - 1;
  while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80)
    st--;
  return st;
}

/* The leftmost-longest added token of ix at or after from: 1 with the
 * index into added and its extent, 0 for none. */
static int find_added(const nne_tokenizer_t *t, const added_index_t *ix,
                      const char *s, size_t n, size_t from, size_t *which,
                      size_t *ms) {
  if (ix->start[256] == 0)
    return 0;
  for (size_t i = from; i < n; i++) {
    unsigned char b = (unsigned char)s[i];
    for (uint32_t k = ix->start[b]; k < ix->start[b + 1]; k++) {
      const added_t *a = &t->added[ix->order[k]];
      if (a->len <= n - i && !memcmp(s + i, a->content, a->len)) {
        *which = ix->order[k];
        *ms = i;
        return 1;
      }
    }
  }
  return 0;
}

/* A stretch of text between added tokens; al: its alignment (n pairs),
 * NULL for the raw input (or when offsets are not wanted). */
typedef int (*region_fn)(const nne_tokenizer_t *t, nne__scratch_t *sc,
                         const char *s, size_t n, const uint32_t *al,
                         bool origin, unsigned flags, nne_err_t *err);

/* Adds an added token's id over s[start, stop), with its offsets: its
 * bytes' alignment, or for raw text (al NULL) its place in the input. */
static int add_added(nne__scratch_t *sc, int32_t id, const char *s,
                     const uint32_t *al, size_t start, size_t stop) {
  uint32_t os = 0, oe = 0;
  if (sc->offsets && al)
    nne__align_span(al, start, stop, &os, &oe);
  else if (sc->offsets) {
    os = (uint32_t)(s + start - sc->input);
    oe = (uint32_t)(s + stop - sc->input);
  }
  return nne__tok_add(sc, id, os, oe);
}

/* Splits s at the added tokens of ix (with their lstrip/rstrip/single_word
 * rules), adds their ids, and hands the text between to fn. */
static int split_added(const nne_tokenizer_t *t, nne__scratch_t *sc,
                       const added_index_t *ix, const char *s, size_t n,
                       const uint32_t *al, bool origin, unsigned flags,
                       region_fn fn, nne_err_t *err) {
  size_t done = 0, from = 0, which, ms;
  int rc;
  while (find_added(t, ix, s, n, from, &which, &ms)) {
    const added_t *a = &t->added[which];
    size_t start = ms, stop = ms + a->len, adv;
    from = stop;
    if ((flags & NNE_TOK_SPECIAL_AS_TEXT) && a->special)
      continue;
    if (a->single_word) {
      bool left_ok = start == 0 ||
                     !is_word_char(nne__u8dec(s + prev_char(s, start), &adv));
      bool right_ok = stop == n || !is_word_char(nne__u8dec(s + stop, &adv));
      if (!left_ok || !right_ok)
        continue;
    }
    if (a->lstrip) {
      size_t k = start;
      while (k > 0) {
        size_t p = prev_char(s, k);
        if (!nne__is_space(nne__u8dec(s + p, &adv)))
          break;
        k = p;
      }
      start = k > done ? k : done;
    }
    if (a->rstrip)
      while (stop < n && nne__is_space(nne__u8dec(s + stop, &adv)))
        stop += adv;
    if (done < start &&
        (rc = fn(t, sc, s + done, start - done, al ? al + 2 * done : NULL,
                 origin && done == 0, flags, err)))
      return rc;
    if ((rc = add_added(sc, a->id, s, al, start, stop)))
      return rc;
    done = stop;
    from = stop > from ? stop : from;
  }
  if (done < n)
    return fn(t, sc, s + done, n - done, al ? al + 2 * done : NULL,
              origin && done == 0, flags, err);
  return 0;
}

/* Text with no added tokens left: pre-tokenize, then BPE each word. */
static int encode_words(const nne_tokenizer_t *t, nne__scratch_t *sc,
                        const char *s, size_t n, const uint32_t *al,
                        bool origin, unsigned flags, nne_err_t *err) {
  int rc;
  (void)flags;
  nne__pieces_clear(&sc->a);
  if ((rc = nne__pieces_add(&sc->a, s, n, origin, al)))
    return rc;
  if (t->pretok && (rc = nne__pretok_run(t->pretok, &t->bl, sc, err)))
    return rc;
  for (size_t i = 0; i < sc->a.n; i++) {
    nne__piece_t p = sc->a.v[i];
    const char *w = sc->a.text.p != NULL ? sc->a.text.p + p.off : "";
    if ((rc = nne__bpe_word(&t->bpe, sc, w, p.len,
                            sc->offsets ? sc->a.al.v + 2 * p.off : NULL, err)))
      return rc;
  }
  return 0;
}

/* Text between raw added tokens: normalize, then split at the normalized
 * added tokens. With offsets, the text starts aligned to itself in the
 * input, and the normalizer carries the alignment along. */
static int encode_region(const nne_tokenizer_t *t, nne__scratch_t *sc,
                         const char *s, size_t n, const uint32_t *al,
                         bool origin, unsigned flags, nne_err_t *err) {
  int rc;
  (void)al; /* raw text: aligned to itself */
  if (sc->offsets) {
    sc->segal.n = 0;
    if ((rc = nne__align_identity(&sc->segal, s, n,
                                  (uint32_t)(s - sc->input))))
      return rc;
  }
  if (t->norm) {
    /* The identity alignment moves to tmpal's place for the run. */
    nne__align_t in = sc->segal;
    sc->segal = (nne__align_t){0};
    sc->norm_limit = NNE__NORM_GROWTH * n + NNE__NORM_SLACK;
    rc = nne__norm_run(t->norm, sc, s, n, sc->offsets ? in.v : NULL,
                       &sc->seg, &sc->segal, err);
    free(in.v);
    if (rc == NNE_ERESOURCE)
      return nne_err_set(err, NNE_ERESOURCE,
                         "normalizer: %zu bytes of text would grow past %zu "
                         "(%d times, plus %d)",
                         n, sc->norm_limit, NNE__NORM_GROWTH,
                         NNE__NORM_SLACK);
    if (rc)
      return rc;
    s = sc->seg.p;
    n = sc->seg.n;
    if (n == 0)
      return 0;
  }
  return split_added(t, sc, &t->normd, s, n,
                     sc->offsets ? sc->segal.v : NULL, origin, flags,
                     encode_words, err);
}

/* One text's tokens, appended to sc's ids (and offsets). */
static int encode_text(const nne_tokenizer_t *t, nne__scratch_t *sc,
                       const char *what, const char *text, size_t len,
                       unsigned flags, nne_err_t *err) {
  if (len > NNE_TOKENIZER_MAX_TEXT_BYTES)
    return nne_err_set(err, NNE_ERESOURCE,
                       "%s: %zu bytes is over the limit of %zu", what, len,
                       NNE_TOKENIZER_MAX_TEXT_BYTES);
  size_t bad = nne__u8check(text, len);
  if (bad != len)
    return nne_err_set(err, NNE_EINVAL, "%s: invalid UTF-8 at byte %zu (0x%02x)",
                       what, bad, (unsigned char)text[bad]);
  sc->input = text;
  return split_added(t, sc, &t->raw, text, len, NULL, true, flags,
                     encode_region, err);
}

/* Encodes text (and pair, when not NULL) into e: the tokens of each, then
 * the post-processor. e->offsets/track say what to keep beside the ids. */
static int encode(const nne_tokenizer_t *t, const char *text, size_t len,
                  const char *pair, size_t pair_len, unsigned flags,
                  nne__enc_t *e, nne_err_t *err) {
  nne__scratch_t sc;
  int rc = 0;
  size_t na;
  memset(&sc, 0, sizeof sc);
  sc.offsets = e->offsets;
  if (pair && !nne__post_has_pair(t->post))
    return nne_err_set(err, NNE_EUNIMPL,
                       "pair: the tokenizer's post_processor has no pair "
                       "template");
  /* Room for the most captures any of our patterns has; PCRE2 only fills
   * what fits, and we read the whole match alone. */
  if (!(sc.md = pcre2_match_data_create(16, NULL))) {
    rc = NNE_ENOMEM;
    goto out;
  }
  if ((rc = encode_text(t, &sc, "text", text, len, flags, err)))
    goto out;
  na = sc.nids;
  if (pair && (rc = encode_text(t, &sc, "pair", pair, pair_len, flags, err)))
    goto out;
  /* The ids (and offsets) move to e; type ids 0 and 1, as the reference
   * gives the two sequences before a template sets its own. */
  e->ids = sc.ids;
  e->offs = sc.offs;
  e->n = e->cap = sc.nids;
  sc.ids = NULL;
  sc.offs = NULL;
  e->split = na;
  e->two = pair != NULL;
  if (e->track) {
    size_t k = e->n ? e->n : 1;
    if (!(e->types = malloc(k * sizeof *e->types)) || !(e->seq = malloc(k))) {
      rc = NNE_ENOMEM;
      goto out;
    }
    for (size_t i = 0; i < e->n; i++) {
      e->types[i] = i >= na;
      e->seq[i] = i >= na;
    }
  }
  const char *texts[2] = {text, pair};
  size_t lens[2] = {len, pair_len};
  rc = nne__post_run(t->post, t, e, flags, texts, lens);
out:
  nne__scratch_free(&sc);
  return rc;
}

int nne_tokenizer_encode(const nne_tokenizer_t *t, const char *text, size_t len,
                         unsigned flags, int32_t **ids, size_t *n,
                         nne_err_t *err) {
  nne_err_t e = {0};
  nne__enc_t enc = {0};
  int rc = encode(t, text, len, NULL, 0, flags & ~(unsigned)NNE_TOK_OFFSETS,
                  &enc, &e);
  *ids = NULL;
  *n = 0;
  if (rc == 0 && enc.n > 0) {
    *ids = enc.ids;
    *n = enc.n;
    enc.ids = NULL;
  }
  nne__enc_free(&enc);
  return finish(rc, &e, err, "encode");
}

int nne_tokenizer_encode_pair(const nne_tokenizer_t *t, const char *text,
                              size_t len, const char *pair, size_t pair_len,
                              unsigned flags, nne_tokenizer_encoding_t *out,
                              nne_err_t *err) {
  nne_err_t e = {0};
  nne__enc_t enc = {0};
  memset(out, 0, sizeof *out);
  enc.offsets = (flags & NNE_TOK_OFFSETS) != 0;
  enc.track = true;
  int rc = encode(t, text, len, pair, pair_len, flags, &enc, &e);
  if (rc == 0 && enc.n > 0) {
    out->ids = enc.ids;
    out->offsets = enc.offs;
    out->type_ids = enc.types;
    out->seq = enc.seq;
    out->n = enc.n;
    memset(&enc, 0, sizeof enc);
  }
  nne__enc_free(&enc);
  return finish(rc, &e, err, "encode");
}

void nne_tokenizer_encoding_free(nne_tokenizer_encoding_t *enc) {
  if (!enc)
    return;
  free(enc->ids);
  free(enc->offsets);
  free(enc->type_ids);
  free(enc->seq);
  memset(enc, 0, sizeof *enc);
}

/* ---- decoding and lookups ---------------------------------------------- */

const char *nne_tokenizer_id_to_token(const nne_tokenizer_t *t, int32_t id,
                                      size_t *len) {
  if (id < 0 || (size_t)id >= t->nids)
    return NULL;
  if (t->added_by_id[id] >= 0) {
    const added_t *a = &t->added[t->added_by_id[id]];
    if (len)
      *len = a->len;
    return a->content;
  }
  if ((size_t)id >= t->bpe.nids || t->bpe.str_off[id] == SIZE_MAX)
    return NULL;
  if (len)
    *len = t->bpe.str_len[id];
  return t->bpe.strs + t->bpe.str_off[id];
}

int32_t nne_tokenizer_token_to_id(const nne_tokenizer_t *t, const char *s,
                                  size_t len) {
  intptr_t v;
  if (nne_map_get(&t->added_by_content, s, len, &v))
    return t->added[v].id;
  return nne__bpe_lookup(&t->bpe, s, len);
}

static bool content_is_special(const nne_tokenizer_t *t, const char *s,
                               size_t len) {
  intptr_t v;
  return nne_map_get(&t->added_by_content, s, len, &v) && t->added[v].special;
}

int nne_tokenizer_is_special(const nne_tokenizer_t *t, int32_t id) {
  size_t len;
  const char *s = nne_tokenizer_id_to_token(t, id, &len);
  return s && content_is_special(t, s, len);
}

int nne_tokenizer_token_bytes(const nne_tokenizer_t *t, int32_t id,
                              char *buf, size_t cap, size_t *len) {
  bool bytelevel = false, fallback = false;
  size_t sl, n = 0;
  const char *s = nne_tokenizer_id_to_token(t, id, &sl);
  *len = 0;
  if (!s || !t->dec || t->added_by_id[id] >= 0)
    return 0;
  nne__dec_bytes(t->dec, &bytelevel, &fallback);
  if (fallback && t->bpe.byte_fallback) {
    for (int b = 0; b < 256; b++)
      if (t->bpe.byte_ids[b] == id) {
        if (cap < 1 || b < 0x80) /* ASCII decodes exactly */
          return 0;
        buf[0] = (char)b;
        *len = 1;
        return 1;
      }
  }
  if (!bytelevel)
    return 0;
  /* Each character of the byte-level alphabet is one byte. */
  for (size_t k = 0, adv; k < sl; k += adv) {
    uint32_t cp = nne__u8dec(s + k, &adv);
    if (cp >= 324 || t->bl.dec[cp] < 0)
      return 0; /* not a byte-level token */
    if (n < cap)
      buf[n] = (char)t->bl.dec[cp];
    n++;
  }
  if (n > cap)
    return 0;
  *len = n;
  return nne__u8check(buf, n) != n;
}

size_t nne_tokenizer_vocab_size(const nne_tokenizer_t *t) {
  return t->nids;
}

static int decode(const nne_tokenizer_t *t, const int32_t *ids, size_t n,
                  unsigned flags, char **text, size_t *len, nne_err_t *err) {
  nne__strs_t l = {0};
  pcre2_match_data *md = NULL;
  nne__sbuf_t out = {0};
  int rc = 0;
  *text = NULL;
  *len = 0;
  if (n > NNE_TOKENIZER_MAX_DECODE_IDS)
    return nne_err_set(err, NNE_ERESOURCE, "ids: %zu is over the limit of %zu",
                       n, NNE_TOKENIZER_MAX_DECODE_IDS);
  for (size_t i = 0; i < n; i++) {
    size_t sl;
    const char *s = nne_tokenizer_id_to_token(t, ids[i], &sl);
    if (!s) {
      rc =
          nne_err_set(err, NNE_EOUTOFRANGE,
                      "ids[%zu]: %d is not a token of this tokenizer (%zu ids)",
                      i, ids[i], t->nids);
      goto out;
    }
    if ((flags & NNE_TOK_SKIP_SPECIAL) && content_is_special(t, s, sl))
      continue;
    if ((rc = nne__strs_add(&l, s, sl)))
      goto out;
  }
  if (t->dec) {
    if (!(md = pcre2_match_data_create(16, NULL))) {
      rc = NNE_ENOMEM;
      goto out;
    }
    if ((rc = nne__dec_run(t->dec, &t->bl, md, &l, err)))
      goto out;
  }
  /* Without a decoder the reference joins the tokens with spaces. */
  for (size_t i = 0; i < l.n; i++)
    if ((!t->dec && i > 0 && nne__sbuf_add(&out, " ", 1)) ||
        nne__sbuf_add(&out, nne__strs_at(&l, i), l.len[i])) {
      rc = NNE_ENOMEM;
      goto out;
    }
  if (nne__sbuf_add(&out, "", 0) || (!out.p && !(out.p = malloc(1)))) {
    rc = NNE_ENOMEM;
    goto out;
  }
  out.p[out.n] = '\0';
  *text = out.p;
  *len = out.n;
  out.p = NULL;
out:
  free(out.p);
  nne__strs_free(&l);
  pcre2_match_data_free(md);
  return rc;
}

int nne_tokenizer_decode(const nne_tokenizer_t *t, const int32_t *ids, size_t n,
                         unsigned flags, char **text, size_t *len,
                         nne_err_t *err) {
  nne_err_t e = {0};
  return finish(decode(t, ids, n, flags, text, len, &e), &e, err, "decode");
}
