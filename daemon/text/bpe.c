/* bpe.c — the BPE model: a word → ids by applying merges in rank order.
 *
 * A word starts as one symbol per character (or its <0xXX> bytes, or the
 * unknown token) and repeatedly merges the adjacent pair of lowest rank,
 * leftmost first among equal ranks, until no pair has a merge. The pairs
 * wait in a binary heap; an entry whose symbols have changed since it was
 * pushed is recognised when popped and dropped, so each merge costs
 * O(log n) and a 100 KB word with no spaces stays fast.
 *
 * The vocabulary and merge map are built at load and only read afterwards
 * (base/map lookups only read), so threads share them; the symbols and the
 * heap of a call live in its scratch.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/vec.h"
#include "text/internal.h"

/* No real vocabulary comes close; a bound keeps a hostile file from making
 * us allocate id tables of gigabytes. */
#define MAX_IDS (1u << 24)

void nne__bpe_free(nne__bpe_t *b) {
  free(b->strs);
  free(b->str_off);
  free(b->str_len);
  nne_map_free(&b->vocab);
  free(b->merge_keys);
  nne_map_free(&b->merges);
  free(b->prefix);
  free(b->suffix);
  memset(b, 0, sizeof *b);
}

int32_t nne__bpe_lookup(const nne__bpe_t *b, const char *s, size_t n) {
  intptr_t v;
  return nne_map_get(&b->vocab, s, n, &v) ? (int32_t)v : -1;
}

static int opt_str(json_t *j, const char *key, char **out, size_t *len,
                   nne__path_t *path, nne_err_t *err) {
  const char *s;
  int rc = nne__json_str(j, key, NULL, &s, len, path, err);
  if (rc || !s || !*len)
    return rc; /* null and "" both mean none */
  if (!(*out = malloc(*len + 1)))
    return NNE_ENOMEM;
  memcpy(*out, s, *len + 1);
  return 0;
}

static int load_vocab(json_t *vocab, nne__bpe_t *b, nne__path_t *path,
                      nne_err_t *err) {
  const char *key;
  json_t *v;
  size_t total = 0;
  uint64_t maxid = 0;
  if (!json_is_object(vocab))
    return nne_err_set(err, NNE_EINVAL, "%s.vocab: must be an object", path->s);
  json_object_foreach(vocab, key, v) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) >= (json_int_t)MAX_IDS)
      return nne_err_set(err, NNE_EINVAL,
                         "%s.vocab[\"%.60s\"]: must be an id in [0, %u)",
                         path->s, key, MAX_IDS);
    if ((uint64_t)json_integer_value(v) + 1 > maxid)
      maxid = (uint64_t)json_integer_value(v) + 1;
    total += strlen(key) + 1;
  }
  b->nids = (size_t)maxid;
  b->strs = malloc(total + 1);
  b->str_off = malloc((b->nids + 1) * sizeof *b->str_off);
  b->str_len = calloc(b->nids + 1, sizeof *b->str_len);
  if (!b->strs || !b->str_off || !b->str_len)
    return NNE_ENOMEM;
  for (size_t i = 0; i < b->nids; i++)
    b->str_off[i] = SIZE_MAX;
  size_t at = 0;
  /* Keys must not move once the map borrows them: strs is allocated once,
   * at its full size, above. */
  json_object_foreach(vocab, key, v) {
    size_t len = strlen(key), id = (size_t)json_integer_value(v);
    memcpy(b->strs + at, key, len + 1);
    b->str_off[id] = at;
    b->str_len[id] = (uint32_t)len;
    int rc = nne_map_put(&b->vocab, b->strs + at, len, (intptr_t)id);
    if (rc < 0)
      return rc;
    if (rc == 1)
      nne_map_set(&b->vocab, b->strs + at, len, (intptr_t)id);
    at += len + 1;
  }
  return 0;
}

static int merge_part(json_t *m, size_t i, const char **a, size_t *alen,
                      const char **c, size_t *clen, nne__path_t *path,
                      nne_err_t *err) {
  if (json_is_string(m)) {
    const char *s = json_string_value(m), *sp = strchr(s, ' ');
    if (!sp || strchr(sp + 1, ' '))
      return nne_err_set(err, NNE_EINVAL,
                         "%s.merges[%zu]: \"%.60s\" is not two tokens "
                         "separated by one space",
                         path->s, i, s);
    *a = s;
    *alen = (size_t)(sp - s);
    *c = sp + 1;
    *clen = json_string_length(m) - *alen - 1;
    return 0;
  }
  if (json_is_array(m) && json_array_size(m) == 2 &&
      json_is_string(json_array_get(m, 0)) &&
      json_is_string(json_array_get(m, 1))) {
    *a = json_string_value(json_array_get(m, 0));
    *alen = json_string_length(json_array_get(m, 0));
    *c = json_string_value(json_array_get(m, 1));
    *clen = json_string_length(json_array_get(m, 1));
    return 0;
  }
  return nne_err_set(err, NNE_EINVAL,
                     "%s.merges[%zu]: must be \"a b\" or [\"a\", \"b\"]",
                     path->s, i);
}

static int load_merges(json_t *merges, nne__bpe_t *b, nne__path_t *path,
                       nne_err_t *err) {
  nne__sbuf_t cat = {0};
  int rc = 0;
  if (!merges || json_is_null(merges))
    return 0;
  if (!json_is_array(merges))
    return nne_err_set(err, NNE_EINVAL, "%s.merges: must be an array", path->s);
  size_t nm = json_array_size(merges);
  if (nm >= UINT32_MAX / 2)
    return nne_err_set(err, NNE_ERESOURCE, "%s.merges: too many", path->s);
  if (!(b->merge_keys = malloc((nm + 1) * 2 * sizeof *b->merge_keys)))
    return NNE_ENOMEM;
  for (size_t i = 0; i < nm; i++) {
    const char *a = NULL, *c = NULL;
    size_t alen = 0, clen = 0;
    if ((rc = merge_part(json_array_get(merges, i), i, &a, &alen, &c, &clen,
                         path, err)))
      break;
    int32_t ia = nne__bpe_lookup(b, a, alen), ic = nne__bpe_lookup(b, c, clen);
    /* The merged token is a + c without c's continuing-subword prefix, as
     * the reference builds it. */
    size_t cut = b->prefix_len <= clen ? b->prefix_len : clen;
    cat.n = 0;
    if (nne__sbuf_add(&cat, a, alen) ||
        nne__sbuf_add(&cat, c + cut, clen - cut)) {
      rc = NNE_ENOMEM;
      break;
    }
    int32_t inew = nne__bpe_lookup(b, cat.p ? cat.p : "", cat.n);
    if (ia < 0 || ic < 0 || inew < 0) {
      const char *what = ia < 0 ? a : ic < 0 ? c : cat.p;
      int wl = (int)(ia < 0 ? alen : ic < 0 ? clen : cat.n);
      rc =
          nne_err_set(err, NNE_EINVAL,
                      "%s.merges[%zu]: token \"%.*s\" is not in the vocabulary",
                      path->s, i, wl > 60 ? 60 : wl, what);
      break;
    }
    uint32_t *k = b->merge_keys + 2 * i;
    k[0] = (uint32_t)ia;
    k[1] = (uint32_t)ic;
    intptr_t val = (intptr_t)(((uint64_t)i << 32) | (uint32_t)inew);
    /* A pair listed twice keeps its last rank, as in the reference (whose
     * map insertions overwrite). */
    rc = nne_map_put(&b->merges, k, 2 * sizeof *k, val);
    if (rc < 0)
      break;
    if (rc == 1)
      nne_map_set(&b->merges, k, 2 * sizeof *k, val);
    rc = 0;
  }
  free(cat.p);
  return rc;
}

int nne__bpe_load(json_t *j, nne__bpe_t *b, nne__path_t *path, nne_err_t *err) {
  const char *type, *unk;
  size_t unklen;
  int rc;
  memset(b, 0, sizeof *b);
  b->unk_id = -1;
  for (int i = 0; i < 256; i++)
    b->byte_ids[i] = -1;
  if (!json_is_object(j))
    return nne_err_set(err, NNE_EINVAL, "%s: must be an object", path->s);
  if ((rc = nne__json_str(j, "type", "BPE", &type, NULL, path, err)))
    return rc;
  if (strcmp(type, "BPE") != 0)
    return nne__unsupported(path, type, err);
  json_t *d = json_object_get(j, "dropout");
  if (d && !json_is_null(d))
    return nne_err_set(
        err, NNE_EUNIMPL,
        "%s.dropout: is not supported (encoding would be random)", path->s);
  if ((rc = nne__json_bool(j, "fuse_unk", false, &b->fuse_unk, path, err)) ||
      (rc = nne__json_bool(j, "byte_fallback", false, &b->byte_fallback, path,
                           err)) ||
      (rc = nne__json_bool(j, "ignore_merges", false, &b->ignore_merges, path,
                           err)) ||
      (rc = opt_str(j, "continuing_subword_prefix", &b->prefix, &b->prefix_len,
                    path, err)) ||
      (rc = opt_str(j, "end_of_word_suffix", &b->suffix, &b->suffix_len, path,
                    err)) ||
      (rc = load_vocab(json_object_get(j, "vocab"), b, path, err)) ||
      (rc = load_merges(json_object_get(j, "merges"), b, path, err)))
    return rc == NNE_ENOMEM ? nne_err_set(err, rc, "%s: out of memory", path->s)
                            : rc;
  if ((rc = nne__json_str(j, "unk_token", NULL, &unk, &unklen, path, err)))
    return rc;
  if (unk) {
    b->unk_id = nne__bpe_lookup(b, unk, unklen);
    if (b->unk_id < 0)
      return nne_err_set(err, NNE_EINVAL,
                         "%s.unk_token: \"%.60s\" is not in the vocabulary",
                         path->s, unk);
  }
  if (b->byte_fallback)
    for (int i = 0; i < 256; i++) {
      char name[8];
      snprintf(name, sizeof name, "<0x%02X>", i);
      b->byte_ids[i] = nne__bpe_lookup(b, name, 6);
    }
  return 0;
}

/* ---- one word ---------------------------------------------------------- */

/* A symbol of the word; bytes: how many bytes of the word it covers (one
 * per byte token, however long the character: the reference's count,
 * which its offsets add up). */
static int sym_add(nne__scratch_t *sc, size_t *nsym, uint32_t id,
                   size_t bytes) {
  size_t n = *nsym;
  if (n == sc->capsym) {
    size_t cap = sc->capsym, c2 = cap, c3 = cap, c4 = cap, c5 = cap;
    if (NNE_VEC_GROW(&sc->sym_id, &cap, n + 1) ||
        NNE_VEC_GROW(&sc->sym_prev, &c2, n + 1) ||
        NNE_VEC_GROW(&sc->sym_next, &c3, n + 1) ||
        NNE_VEC_GROW(&sc->sym_len, &c4, n + 1) ||
        NNE_VEC_GROW(&sc->sym_bytes, &c5, n + 1))
      return NNE_ENOMEM;
    /* All five grew from the same capacity by the same rule. */
    sc->capsym = cap;
  }
  sc->sym_id[n] = id;
  sc->sym_len[n] = 1;
  sc->sym_bytes[n] = (uint32_t)bytes;
  *nsym = n + 1;
  return 0;
}

static bool merge_of(const nne__bpe_t *b, uint32_t l, uint32_t r,
                     uint32_t *rank, uint32_t *new_id) {
  uint32_t key[2] = {l, r};
  intptr_t v;
  if (!nne_map_get(&b->merges, key, sizeof key, &v))
    return false;
  *rank = (uint32_t)((uint64_t)v >> 32);
  *new_id = (uint32_t)v;
  return true;
}

static bool heap_less(nne__heapent_t a, nne__heapent_t b) {
  return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

static int heap_push(nne__scratch_t *sc, uint32_t rank, uint32_t pos,
                     uint32_t new_id) {
  if (sc->nheap == sc->capheap &&
      NNE_VEC_GROW(&sc->heap, &sc->capheap, sc->nheap + 1))
    return NNE_ENOMEM;
  nne__heapent_t e = {rank, pos, new_id};
  size_t i = sc->nheap++;
  while (i > 0) {
    size_t up = (i - 1) / 2;
    if (!heap_less(e, sc->heap[up]))
      break;
    sc->heap[i] = sc->heap[up];
    i = up;
  }
  sc->heap[i] = e;
  return 0;
}

static nne__heapent_t heap_pop(nne__scratch_t *sc) {
  nne__heapent_t top = sc->heap[0], last = sc->heap[--sc->nheap];
  size_t i = 0, n = sc->nheap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && heap_less(sc->heap[c + 1], sc->heap[c]))
      c++;
    if (!heap_less(sc->heap[c], last))
      break;
    sc->heap[i] = sc->heap[c];
    i = c;
  }
  if (n)
    sc->heap[i] = last;
  return top;
}

static int push_pair(const nne__bpe_t *b, nne__scratch_t *sc, int32_t pos) {
  uint32_t rank, new_id;
  int32_t nx = sc->sym_next[pos];
  if (nx < 0)
    return 0;
  if (!merge_of(b, sc->sym_id[pos], sc->sym_id[nx], &rank, &new_id))
    return 0;
  return heap_push(sc, rank, (uint32_t)pos, new_id);
}

/* The initial symbols: each character (with the prefix when not first and
 * the suffix when last), else its <0xXX> bytes, else the unknown token
 * (consecutive unknowns fused into one when fuse_unk). */
static int initial_symbols(const nne__bpe_t *b, nne__scratch_t *sc,
                           const char *w, size_t n, size_t *nsym) {
  int32_t unk = -1; /* a pending unknown token, not yet a symbol */
  size_t unk_bytes = 0;
  *nsym = 0;
  for (size_t i = 0; i < n;) {
    size_t cl = nne__u8len((unsigned char)w[i]);
    if (cl > n - i)
      cl = n - i;
    const char *s = w + i;
    size_t sl = cl;
    bool first = i == 0, last = i + cl == n;
    if ((!first && b->prefix) || (last && b->suffix)) {
      nne__sbuf_t *t = &sc->tmp;
      t->n = 0;
      if ((!first && nne__sbuf_add(t, b->prefix, b->prefix_len)) ||
          nne__sbuf_add(t, s, cl) ||
          (last && nne__sbuf_add(t, b->suffix, b->suffix_len)))
        return NNE_ENOMEM;
      s = t->p;
      sl = t->n;
    }
    i += cl;
    int32_t id = nne__bpe_lookup(b, s, sl);
    if (id >= 0) {
      if (unk >= 0 && sym_add(sc, nsym, (uint32_t)unk, unk_bytes))
        return NNE_ENOMEM;
      unk = -1;
      if (sym_add(sc, nsym, (uint32_t)id, cl))
        return NNE_ENOMEM;
      continue;
    }
    if (b->byte_fallback) {
      size_t k = 0;
      while (k < sl && b->byte_ids[(unsigned char)s[k]] >= 0)
        k++;
      if (k == sl) {
        for (k = 0; k < sl; k++)
          if (sym_add(sc, nsym, (uint32_t)b->byte_ids[(unsigned char)s[k]], 1))
            return NNE_ENOMEM;
        continue;
      }
    }
    if (b->unk_id >= 0) {
      if (unk >= 0 && b->fuse_unk) {
        unk_bytes += cl;
        continue;
      }
      if (unk >= 0 && sym_add(sc, nsym, (uint32_t)unk, unk_bytes))
        return NNE_ENOMEM;
      unk = b->unk_id;
      unk_bytes = cl;
    }
    /* With no unknown token the character is dropped, as in the reference
     * (and the offsets of the symbols after it move back by its bytes). */
  }
  if (unk >= 0 && sym_add(sc, nsym, (uint32_t)unk, unk_bytes))
    return NNE_ENOMEM;
  return 0;
}

/* Adds a symbol's id; with al, its offsets: the bytes [at, at + len) of
 * the word mapped to the input (outside the word, as the reference, the
 * word's own offsets). */
static int add_sym(nne__scratch_t *sc, int32_t id, const uint32_t *al,
                   size_t n, size_t at, size_t len) {
  uint32_t s = (uint32_t)at, e = (uint32_t)(at + len);
  if (al && len > 0 && at + len <= n)
    nne__align_span(al, at, at + len, &s, &e);
  return nne__tok_add(sc, id, s, e);
}

int nne__bpe_word(const nne__bpe_t *b, nne__scratch_t *sc, const char *w,
                  size_t n, const uint32_t *al, nne_err_t *err) {
  size_t nsym, at = 0;
  int rc;
  (void)err;
  if (b->ignore_merges) {
    int32_t id = nne__bpe_lookup(b, w, n);
    if (id >= 0)
      return add_sym(sc, id, al, n, 0, n);
  }
  if ((rc = initial_symbols(b, sc, w, n, &nsym)))
    return rc;
  if (nsym > INT32_MAX)
    return NNE_ERESOURCE;
  sc->nheap = 0;
  for (size_t i = 0; i < nsym; i++) {
    sc->sym_prev[i] = (int32_t)i - 1;
    sc->sym_next[i] = i + 1 < nsym ? (int32_t)i + 1 : -1;
  }
  for (size_t i = 0; i + 1 < nsym; i++)
    if ((rc = push_pair(b, sc, (int32_t)i)))
      return rc;
  while (sc->nheap) {
    nne__heapent_t top = heap_pop(sc);
    int32_t pos = (int32_t)top.pos, nx = sc->sym_next[pos];
    uint32_t rank, new_id;
    /* Stale entries: the left symbol was merged away, or the pair is no
     * longer the one this entry was pushed for. */
    if (sc->sym_len[pos] == 0 || nx < 0)
      continue;
    if (!merge_of(b, sc->sym_id[pos], sc->sym_id[nx], &rank, &new_id) ||
        new_id != top.new_id)
      continue;
    sc->sym_id[pos] = new_id;
    sc->sym_len[nx] = 0;
    sc->sym_bytes[pos] += sc->sym_bytes[nx];
    sc->sym_next[pos] = sc->sym_next[nx];
    if (sc->sym_next[nx] >= 0)
      sc->sym_prev[sc->sym_next[nx]] = pos;
    if (sc->sym_prev[pos] >= 0 && (rc = push_pair(b, sc, sc->sym_prev[pos])))
      return rc;
    if ((rc = push_pair(b, sc, pos)))
      return rc;
  }
  if (!sc->offsets) { /* the plain encode: ids only */
    for (int32_t i = nsym ? 0 : -1; i >= 0; i = sc->sym_next[i])
      if ((rc = nne__ids_add(sc, (int32_t)sc->sym_id[i])))
        return rc;
    return 0;
  }
  for (int32_t i = nsym ? 0 : -1; i >= 0; i = sc->sym_next[i]) {
    if ((rc = add_sym(sc, (int32_t)sc->sym_id[i], al, n, at,
                      sc->sym_bytes[i])))
      return rc;
    at += sc->sym_bytes[i];
  }
  return 0;
}
