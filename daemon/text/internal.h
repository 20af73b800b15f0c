/* internal.h — what the files of daemon/text/ share (nne__ names), in
 * blocks named after the file that defines them.
 *
 * An encode runs text through stages, each of which is a tagged tree read
 * from tokenizer.json at load time and never written again:
 *   added tokens (tokenizer.c) → normalizer (normalize.c) → pre-tokenizer
 *   (pretok.c) → BPE model (bpe.c) → post-processor (tokenizer.c);
 * a decode maps ids to token strings and runs the decoder (decoder.c).
 * Everything a call writes lives in its nne__scratch_t.
 */
#ifndef NNE_TEXT_INTERNAL_H
#define NNE_TEXT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>

#include "base/error.h"
#include "base/map.h"
#include "text/tokenizer.h"

/* ---- util.c: bytes, UTF-8, JSON helpers -------------------------------- */

/* How far normalizers may grow a text: NFKC's widest expansion is 18 code
 * points for one (U+FDFA), about 11 times its bytes; Prepend and Replace
 * add a few bytes per match. Past this a tokenizer.json is hostile or
 * broken, and the encode fails with NNE_ERESOURCE rather than allocate
 * without bound. */
#define NNE__NORM_GROWTH 64
#define NNE__NORM_SLACK 65536

/* A growing byte buffer (malloc'd; the owner frees p). */
typedef struct nne__sbuf {
  char *p;
  size_t n, cap;
  size_t limit; /* most bytes it may hold (0: any): a normalizer's output */
  bool over;    /* an add was refused for the limit (NNE_ERESOURCE) */
} nne__sbuf_t;

int nne__sbuf_add(nne__sbuf_t *b, const void *s, size_t n);
int nne__sbuf_add_cp(nne__sbuf_t *b, uint32_t cp);

/* Length of the UTF-8 sequence starting at s[0] (valid input only). */
static inline size_t nne__u8len(unsigned char c) {
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}
/* Decodes one code point of valid UTF-8 at s; *adv gets its length. */
uint32_t nne__u8dec(const char *s, size_t *adv);
/* Writes cp as UTF-8 to out (4 bytes room); returns its length. */
size_t nne__u8enc(uint32_t cp, char *out);
/* Offset of the first byte that is not valid UTF-8, or n when all are. */
size_t nne__u8check(const char *s, size_t n);
/* Appends s with every maximal invalid subsequence replaced by U+FFFD, as
 * Rust's String::from_utf8_lossy (what the reference does). */
int nne__sbuf_add_lossy(nne__sbuf_t *b, const char *s, size_t n);
/* Unicode White_Space (Rust's char::is_whitespace, onig's \s). */
bool nne__is_space(uint32_t cp);

/* Alignments (offsets, NNE_TOK_OFFSETS): for each byte of a text on its way
 * through the pipeline, the [start, end) bytes of the input text it came
 * from, as the reference's NormalizedString keeps them. Every byte of one
 * character has the same pair (the span of the input character or
 * characters that made it), so a token's span is the least start and the
 * greatest end over its bytes (nne__align_span). v holds 2n values. */
typedef struct nne__align {
  uint32_t *v;
  size_t n, cap;
} nne__align_t;
/* Appends count bytes aligned to [s, e). */
int nne__align_add(nne__align_t *a, uint32_t s, uint32_t e, size_t count);
/* Appends the count pairs at src (2 * count values). */
int nne__align_copy(nne__align_t *a, const uint32_t *src, size_t count);
/* Appends s[0..n)'s own alignment: each character to its bytes, shifted by
 * base (a text before any normalizer). */
int nne__align_identity(nne__align_t *a, const char *s, size_t n,
                        uint32_t base);
/* The input span of bytes [from, to) of an aligned text (from < to). */
void nne__align_span(const uint32_t *al, size_t from, size_t to,
                     uint32_t *start, uint32_t *end);

/* JSON path: a buffer the loaders extend and cut back as they descend. */
typedef struct nne__path {
  char s[512];
  size_t n;
} nne__path_t;
size_t nne__path_push(nne__path_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void nne__path_pop(nne__path_t *p, size_t mark) {
  p->n = mark;
  p->s[mark] = '\0';
}

/* Field readers: a missing or null field gives the default; a field of the
 * wrong type is NNE_EINVAL naming path.key. */
int nne__json_bool(json_t *o, const char *key, bool dflt, bool *out,
                   nne__path_t *path, nne_err_t *err);
int nne__json_str(json_t *o, const char *key, const char *dflt,
                  const char **out, size_t *len, nne__path_t *path,
                  nne_err_t *err);
int nne__json_type(json_t *o, const char **type, nne__path_t *path,
                   nne_err_t *err);
int nne__unsupported(nne__path_t *path, const char *what, nne_err_t *err);
/* A Sequence's members: loads each element of the array o[key] with load
 * into *kids (calloc'd; *n counts those loaded, which the caller frees
 * even on failure). */
typedef int (*nne__load_fn)(json_t *j, void **out, nne__path_t *path,
                            nne_err_t *err);
int nne__load_list(json_t *o, const char *key, nne__load_fn load, void ***kids,
                   size_t *n, nne__path_t *path, nne_err_t *err);

/* ---- regex.c: PCRE2 with the reference's (Oniguruma's) meanings -------- */

typedef struct nne__re {
  pcre2_code *code;
} nne__re_t;

/* Compiles a pattern: literal (a Split/Replace "String") or a regex
 * ("Regex") rewritten so that \s and \w mean what they mean in Oniguruma. */
int nne__re_compile(nne__re_t *re, const char *pat, size_t len, bool literal,
                    nne__path_t *path, nne_err_t *err);
void nne__re_free(nne__re_t *re);
/* The next match in s[from..n): 1 with [*ms, *me), 0 for none, <0 error. */
int nne__re_find(const nne__re_t *re, pcre2_match_data *md, const char *s,
                 size_t n, size_t from, size_t *ms, size_t *me, nne_err_t *err);
/* Appends s with every match replaced by with[0..wlen) to out; with al (n
 * pairs), out's alignment to alout: the replacement takes the alignment of
 * the match's last byte (of the byte before an empty match), as in the
 * reference. */
int nne__re_replace(const nne__re_t *re, pcre2_match_data *md, const char *s,
                    size_t n, const char *with, size_t wlen, nne__sbuf_t *out,
                    const uint32_t *al, nne__align_t *alout, nne_err_t *err);
/* A pattern from a {"String": s} or {"Regex": r} object at o[key]. */
int nne__re_from_json(nne__re_t *re, json_t *o, const char *key,
                      nne__path_t *path, nne_err_t *err);

/* ---- scratch: a call's own memory (tokenizer.c) ------------------------ */

/* A piece of text on its way through the pipeline: bytes in a shared
 * buffer (with their alignment beside them when offsets are wanted), and
 * whether it starts at byte 0 of the input (Metaspace's prepend_scheme
 * "first" asks). */
typedef struct nne__piece {
  size_t off, len;
  bool origin;
} nne__piece_t;

typedef struct nne__pieces {
  nne__sbuf_t text;
  nne__align_t al; /* text.n pairs when offsets are wanted, else empty */
  nne__piece_t *v;
  size_t n, cap;
} nne__pieces_t;

/* Adds s[0..n) as a piece; al (n pairs) is its alignment, NULL when
 * offsets are not wanted. */
int nne__pieces_add(nne__pieces_t *ps, const char *s, size_t n, bool origin,
                    const uint32_t *al);
/* Records the bytes appended to ps->text since text offset start (and to
 * ps->al with them) as one piece. */
int nne__pieces_close(nne__pieces_t *ps, size_t start, bool origin);
void nne__pieces_clear(nne__pieces_t *ps);
void nne__pieces_free(nne__pieces_t *ps);

typedef struct nne__span {
  size_t s, e;
  bool match;
} nne__span_t;

typedef struct nne__heapent {
  uint32_t rank, pos, new_id;
} nne__heapent_t;

typedef struct nne__scratch {
  pcre2_match_data *md;
  nne__pieces_t a, b; /* pre-tokenizer input and output, swapped */
  nne__span_t *spans;
  size_t nspans, capspans;
  nne__sbuf_t norm, tmp, seg;
  size_t norm_limit; /* bytes a normalizer's output may reach (0: any) */
  /* Offsets wanted: the alignments of tmp and seg, and the input text the
   * offsets count in (the text or the pair being encoded). */
  bool offsets;
  nne__align_t tmpal, segal;
  const char *input;
  /* BPE word state */
  uint32_t *sym_id;
  int32_t *sym_prev, *sym_next;
  uint32_t *sym_len;
  uint32_t *sym_bytes; /* the bytes of the word each symbol covers */
  size_t capsym;
  nne__heapent_t *heap;
  size_t nheap, capheap;
  /* output ids, and their [start, end) offsets when offsets are wanted */
  int32_t *ids;
  uint32_t *offs; /* 2 per id */
  size_t nids, capids, capoffs;
} nne__scratch_t;

int nne__ids_add(nne__scratch_t *sc, int32_t id);
/* Adds an id and, when offsets are wanted, its span [start, end). */
int nne__tok_add(nne__scratch_t *sc, int32_t id, uint32_t start,
                 uint32_t end);
/* Frees what a scratch holds (not the struct, usually on the stack). */
void nne__scratch_free(nne__scratch_t *sc);

/* ---- normalize.c ------------------------------------------------------- */

typedef struct nne__norm nne__norm_t;
int nne__norm_load(json_t *j, nne__norm_t **out, nne__path_t *path,
                   nne_err_t *err);
void nne__norm_free(nne__norm_t *n);
/* Normalizes s[0..len) into out (emptied first). With al (len pairs, the
 * alignment of s) the alignment of out goes to alout (emptied first), as
 * the reference's normalizers move theirs; al NULL: no alignment. */
int nne__norm_run(const nne__norm_t *n, nne__scratch_t *sc, const char *s,
                  size_t len, const uint32_t *al, nne__sbuf_t *out,
                  nne__align_t *alout, nne_err_t *err);

/* ---- pretok.c ---------------------------------------------------------- */

/* The GPT-2 byte-level alphabet: each byte is a printable code point. */
typedef struct nne__bytelevel {
  char enc[256][2]; /* UTF-8 of each byte's code point */
  uint8_t enclen[256];
  int16_t dec[324]; /* code point (< 324) → byte, -1 when none */
} nne__bytelevel_t;
void nne__bytelevel_init(nne__bytelevel_t *bl);

typedef struct nne__pretok nne__pretok_t;
int nne__pretok_load(json_t *j, nne__pretok_t **out, nne__path_t *path,
                     nne_err_t *err);
void nne__pretok_free(nne__pretok_t *p);
/* Splits the pieces in sc->a into new pieces, left in sc->a. */
int nne__pretok_run(const nne__pretok_t *p, const nne__bytelevel_t *bl,
                    nne__scratch_t *sc, nne_err_t *err);

/* ---- bpe.c ------------------------------------------------------------- */

typedef struct nne__bpe {
  char *strs;            /* every token's bytes, back to back */
  size_t *str_off;       /* id → offset in strs, SIZE_MAX for none */
  uint32_t *str_len;     /* id → length */
  size_t nids;           /* one past the largest id */
  nne_map_t vocab;       /* token bytes → id (keys in strs) */
  uint32_t *merge_keys;  /* pairs (a, b) back to back, the merge map's keys */
  nne_map_t merges;      /* (a, b) → rank << 32 | new id */
  char *prefix, *suffix; /* continuing_subword_prefix, end_of_word_suffix */
  size_t prefix_len, suffix_len;
  int32_t unk_id; /* -1: none */
  bool fuse_unk, byte_fallback, ignore_merges;
  int32_t byte_ids[256]; /* <0xXX> ids when byte_fallback, else -1 */
} nne__bpe_t;

int nne__bpe_load(json_t *j, nne__bpe_t *b, nne__path_t *path, nne_err_t *err);
void nne__bpe_free(nne__bpe_t *b);
/* Appends the ids of one pre-tokenized word to sc->ids; with al (n pairs,
 * the word's alignment) their offsets too. */
int nne__bpe_word(const nne__bpe_t *b, nne__scratch_t *sc, const char *w,
                  size_t n, const uint32_t *al, nne_err_t *err);
int32_t nne__bpe_lookup(const nne__bpe_t *b, const char *s, size_t n);

/* ---- post.c: post-processors -------------------------------------------- */

typedef struct nne__post nne__post_t;
int nne__post_load(json_t *j, nne__post_t **out, nne__path_t *path,
                   nne_err_t *err);
void nne__post_free(nne__post_t *p);
/* NNE_EINVAL naming the first special id of p that is not below nids. */
int nne__post_check(const nne__post_t *p, size_t nids, nne_err_t *err);
/* Whether p can put two sequences together (its first template has a pair
 * form); true for NULL or no template (one after the other). */
bool nne__post_has_pair(const nne__post_t *p);

/* An encoding on its way through the post-processor: parallel arrays of
 * ids, offsets (2 per id, when offsets), type ids and sequence indices
 * (when track). Two sequences until a template merges them: the second
 * starts at split. */
typedef struct nne__enc {
  int32_t *ids;
  uint32_t *offs, *types;
  uint8_t *seq;
  size_t n, cap, split;
  bool offsets, track, two;
} nne__enc_t;
void nne__enc_free(nne__enc_t *e);
/* Runs p (NULL: nothing) over e; texts/lens are the sequences' inputs
 * (for trimming offsets). flags: NNE_TOK_ADD_SPECIAL. */
int nne__post_run(const nne__post_t *p, const nne_tokenizer_t *t,
                  nne__enc_t *e, unsigned flags, const char *const texts[2],
                  const size_t lens[2]);

/* ---- decoder.c ---------------------------------------------------------- */

typedef struct nne__dec nne__dec_t;
int nne__dec_load(json_t *j, nne__dec_t **out, nne__path_t *path,
                  nne_err_t *err);
void nne__dec_free(nne__dec_t *d);

/* A list of strings: the decoders' currency. */
typedef struct nne__strs {
  nne__sbuf_t text;
  size_t *off, *len;
  size_t n, cap;
} nne__strs_t;
int nne__strs_add(nne__strs_t *l, const char *s, size_t n);
void nne__strs_free(nne__strs_t *l);

/* String i of l. All of l's strings may be empty, and then its buffer was
 * never allocated: no arithmetic on a NULL pointer. */
static inline const char *nne__strs_at(const nne__strs_t *l, size_t i) {
  return l->text.p != NULL ? l->text.p + l->off[i] : "";
}

/* Whether d (or a member of its Sequence) is a ByteLevel or a ByteFallback
 * decoder: each found sets its flag. */
void nne__dec_bytes(const nne__dec_t *d, bool *bytelevel, bool *fallback);

/* Runs the decoder over the token strings in *l (replaced by its result). */
int nne__dec_run(const nne__dec_t *d, const nne__bytelevel_t *bl,
                 pcre2_match_data *md, nne__strs_t *l, nne_err_t *err);

#endif /* NNE_TEXT_INTERNAL_H */
