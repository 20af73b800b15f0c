/* tokenizer.h — Hugging Face tokenizer.json, natively: text ↔ token ids.
 *
 * The daemon takes prompts as text; the models want ids. This module reads
 * the tokenizer.json a model ships and reproduces what Hugging Face's
 * `tokenizers` library does with it, id for id (tests/text/ checks that
 * against the library itself):
 *
 *   nne_tokenizer_t *tok;
 *   if (nne_tokenizer_load_file(path, &tok, &err) != 0) ... err.msg names
 *                                            the JSON path of what is wrong
 *   nne_tokenizer_encode(tok, text, len, NNE_TOK_ADD_SPECIAL, &ids, &n, &err);
 *   nne_tokenizer_decode(tok, ids, n, NNE_TOK_SKIP_SPECIAL, &s, &slen, &err);
 *   free(ids); free(s);
 *
 *   // Where each token came from, and a pair of texts (question, context):
 *   nne_tokenizer_encoding_t enc;
 *   nne_tokenizer_encode_pair(tok, q, qlen, c, clen,
 *                             NNE_TOK_ADD_SPECIAL | NNE_TOK_OFFSETS, &enc, &err);
 *   ... enc.ids[i], enc.offsets[2*i], enc.offsets[2*i+1] (bytes of q or c,
 *       as enc.seq[i] says), enc.type_ids[i]
 *   nne_tokenizer_encoding_free(&enc);
 *   nne_tokenizer_free(tok);
 *
 * What is supported (anything else is a load-time NNE_EUNIMPL naming its
 * path, never a silent difference): model BPE (merges as "a b" or
 * ["a","b"], byte_fallback, unk_token/fuse_unk, ignore_merges,
 * continuing_subword_prefix, end_of_word_suffix); normalizers NFC, NFKC,
 * NFD, NFKD, StripAccents, Prepend, Replace, Lowercase, Strip, Sequence;
 * pre-tokenizers ByteLevel, Split, Metaspace, Digits, Punctuation,
 * Whitespace, WhitespaceSplit, Sequence; post-processors TemplateProcessing
 * ("single" and "pair"), ByteLevel (trim_offsets), RobertaProcessing,
 * BertProcessing, Sequence; decoders ByteLevel, Metaspace, ByteFallback,
 * Fuse, Strip, Replace, Sequence; added tokens with lstrip, rstrip,
 * single_word, normalized and special; each token's offsets in the text.
 *
 * Threads: a loaded tokenizer is never written again, so any number of
 * threads may encode, decode and look up with it at once; each call keeps
 * its scratch memory to itself (malloc'd and freed within the call).
 * Errors: 0 or a negative NNE_E* code (base/error.h) with the message in the
 * caller's nne_err_t (which may be NULL).
 */
#ifndef NNE_TEXT_TOKENIZER_H
#define NNE_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nne_tokenizer nne_tokenizer_t;

/* Bounds on what a caller can hand us, so that one request cannot make the
 * daemon allocate without limit: a tokenizer.json (Llama-3's is 9 MB, the
 * largest common ones ~35 MB) and one text to encode. An encode takes up
 * to ~60 bytes of scratch per byte of its longest word (a tokenizer
 * without a pre-tokenizer, as Llama-2's, makes the whole text one word),
 * so at most ~250 MB at this bound (offsets add 8 bytes per byte in each
 * of a few buffers); 4 MiB of text is ~1M tokens, beyond any model's
 * context. */
#define NNE_TOKENIZER_MAX_JSON_BYTES ((size_t)256 << 20)
#define NNE_TOKENIZER_MAX_TEXT_BYTES ((size_t)4 << 20)
#define NNE_TOKENIZER_MAX_DECODE_IDS ((size_t)16 << 20)

/* Encode flags. */
enum {
  /* Apply the post-processor's template (BOS/EOS and the like), as the
   * reference library's add_special_tokens=true. */
  NNE_TOK_ADD_SPECIAL = 1u << 0,
  /* Special tokens written in the text are ordinary text (split and merged
   * like any other), not their ids: for text a user did not mean as
   * control tokens. Added tokens that are not special still match. */
  NNE_TOK_SPECIAL_AS_TEXT = 1u << 1,
  /* Compute each token's offsets (nne_tokenizer_encode_pair): slower, so
   * only when asked. */
  NNE_TOK_OFFSETS = 1u << 2,
};

/* Decode flags. */
enum {
  /* Leave out special tokens (BOS, EOS, ...). */
  NNE_TOK_SKIP_SPECIAL = 1u << 0,
};

/* Parses a tokenizer.json document (len bytes, NUL not needed). On success
 * *out is a new tokenizer the caller owns (nne_tokenizer_free); json is only
 * read during the call. On failure *out is NULL and err says what, with the
 * JSON path ("pre_tokenizer.pretokenizers[1].type: \"UnicodeScripts\" is not
 * supported"): NNE_EINVAL for malformed input, NNE_EUNIMPL for an
 * unsupported construct, NNE_ERESOURCE over NNE_TOKENIZER_MAX_JSON_BYTES,
 * NNE_ENOMEM. */
int nne_tokenizer_load_json(const char *json, size_t len, nne_tokenizer_t **out,
                            nne_err_t *err);

/* The same from a file (path is only read during the call); NNE_ENOTFOUND
 * when it does not exist, NNE_EIO when it cannot be read. */
int nne_tokenizer_load_file(const char *path, nne_tokenizer_t **out,
                            nne_err_t *err);

/* Frees a tokenizer (NULL is fine). No call may be using it. */
void nne_tokenizer_free(nne_tokenizer_t *tok);

/* Encodes len bytes of UTF-8 text (NUL not needed) into token ids. On
 * success *ids is a malloc'd array of *n ids that the caller frees (NULL
 * when *n is 0); text is only read during the call. flags: NNE_TOK_*.
 * Errors: NNE_EINVAL for invalid UTF-8 (the message gives the byte offset),
 * NNE_ERESOURCE over NNE_TOKENIZER_MAX_TEXT_BYTES, NNE_ENOMEM; *ids is then
 * NULL and *n 0. */
int nne_tokenizer_encode(const nne_tokenizer_t *tok, const char *text,
                         size_t len, unsigned flags, int32_t **ids, size_t *n,
                         nne_err_t *err);

/* A token the post-processor's template added (BOS, EOS, a separator):
 * nne_tokenizer_encoding_t.seq's value for it. */
#define NNE_TOK_SEQ_TEMPLATE 255

/* An encoding with everything beside the ids (what the reference's
 * Encoding holds that is not padding or truncation). All arrays are
 * malloc'd, n long, and freed by nne_tokenizer_encoding_free.
 *
 * Offsets are byte offsets into the UTF-8 text the token came from, as in
 * the reference's Rust core ([start, end); its Python and Node bindings
 * convert the same offsets to characters): seq[i] 0 is the text, 1 the
 * pair. They follow the reference exactly: through the normalizers (a
 * token of normalized text gets the span of the input characters it was
 * made from; text a normalizer added, as Prepend's "▁", takes the span of
 * the character it was added before; a composed character the span of its
 * first input character), the pre-tokenizers and the model (each byte
 * token of a character the character's span; a token of an added token
 * with lstrip/rstrip the stripped spaces too), and the post-processor's
 * trim_offsets. Tokens of the template get (0, 0) and seq
 * NNE_TOK_SEQ_TEMPLATE. */
typedef struct nne_tokenizer_encoding {
  int32_t *ids;
  uint32_t *offsets; /* 2n: start, end of each token; NULL without
                        NNE_TOK_OFFSETS */
  uint32_t *type_ids; /* the template's (0 for the text, 1 for the pair
                         without a template) */
  uint8_t *seq;       /* 0, 1 or NNE_TOK_SEQ_TEMPLATE */
  size_t n;
} nne_tokenizer_encoding_t;

/* Encodes a text, or a pair of texts (pair non-NULL: pair_len bytes, the
 * reference's encode(text, pair)) put together by the post-processor's
 * "pair" template, into *out (the caller's struct, filled on success;
 * free it with nne_tokenizer_encoding_free). flags: NNE_TOK_*. The errors
 * are nne_tokenizer_encode's, for either text (the message says "text" or
 * "pair"), and NNE_EUNIMPL for a pair when the tokenizer's template has no
 * pair form; *out is then empty. */
int nne_tokenizer_encode_pair(const nne_tokenizer_t *tok, const char *text,
                              size_t len, const char *pair, size_t pair_len,
                              unsigned flags, nne_tokenizer_encoding_t *out,
                              nne_err_t *err);

/* Frees what an encoding holds and empties it (NULL is fine). */
void nne_tokenizer_encoding_free(nne_tokenizer_encoding_t *enc);

/* Decodes n ids into text. On success *text is a malloc'd NUL-terminated
 * string of *len bytes that the caller frees; ids is only read during the
 * call. Byte sequences that are not UTF-8 come out as U+FFFD, as in the
 * reference. Errors: NNE_EOUTOFRANGE for an id the tokenizer does not have
 * (the message names its index), NNE_ERESOURCE over
 * NNE_TOKENIZER_MAX_DECODE_IDS, NNE_ENOMEM. flags: NNE_TOK_SKIP_SPECIAL. */
int nne_tokenizer_decode(const nne_tokenizer_t *tok, const int32_t *ids,
                         size_t n, unsigned flags, char **text, size_t *len,
                         nne_err_t *err);

/* The bytes a token stands for, when decoding it alone gives text that is
 * not all of them: a byte token of byte_fallback (<0xE2>: the byte 0xE2)
 * or a byte-level token that is part of a UTF-8 character ("âĢ": bytes
 * E2 80), whose decoded piece has U+FFFD instead. Writes them to buf (cap
 * bytes: they are never more than the token's spelling,
 * nne_tokenizer_id_to_token's len) with their number in *len and returns
 * 1; returns 0 (*len 0) when the token's decoded text is exact (not a byte
 * token, or its bytes are whole UTF-8), the id is unknown, or cap is too
 * small. */
int nne_tokenizer_token_bytes(const nne_tokenizer_t *tok, int32_t id,
                              char *buf, size_t cap, size_t *len);

/* The number of ids: one past the largest id of the vocabulary and the
 * added tokens. */
size_t nne_tokenizer_vocab_size(const nne_tokenizer_t *tok);

/* The token string of an id (as in tokenizer.json: "Ġthe", "<s>"), with its
 * byte length in *len (len may be NULL); NULL for an id it does not have.
 * Borrowed: valid while the tokenizer lives. */
const char *nne_tokenizer_id_to_token(const nne_tokenizer_t *tok, int32_t id,
                                      size_t *len);

/* The id of a token string (added tokens first, then the model's
 * vocabulary), or -1. s is only read during the call. */
int32_t nne_tokenizer_token_to_id(const nne_tokenizer_t *tok, const char *s,
                                  size_t len);

/* Whether id is a special added token (BOS, EOS, ...). */
int nne_tokenizer_is_special(const nne_tokenizer_t *tok, int32_t id);

#ifdef __cplusplus
}
#endif

#endif /* NNE_TEXT_TOKENIZER_H */
