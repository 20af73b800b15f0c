/* fuzz_tokenizer_encode.c — what a client's text meets in daemon/text:
 * the seed corpus's tokenizers (byte-level BPE, Metaspace with byte
 * fallback, a BOS template), loaded once, encode the input as a text and
 * as a pair (split at its first NUL) with and without offsets, and decode
 * ids made from the input's bytes. Invariants checked, not just crashes:
 * the same ids with and without offsets, every offset inside its text and
 * start <= end, a template token at (0, 0). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"

#ifndef NNE_FUZZ_CORPUS
#error "NNE_FUZZ_CORPUS: the seed corpus directory (tests/fuzz/CMakeLists.txt)"
#endif

static const char *const k_files[] = {"bytelevel_300.json", "metaspace.json",
                                      "template_bos_400.json"};
#define N_TOK (sizeof k_files / sizeof k_files[0])
static nne_tokenizer_t *g_tok[N_TOK];

static void load_all(void) {
  static int done;
  size_t i;
  if (done)
    return;
  done = 1;
  for (i = 0; i < N_TOK; i++) {
    char path[512];
    nne_err_t err;
    snprintf(path, sizeof path, "%s/tokenizer_json/%s", NNE_FUZZ_CORPUS,
             k_files[i]);
    if (nne_tokenizer_load_file(path, &g_tok[i], &err) != 0) {
      fprintf(stderr, "fuzz_tokenizer_encode: %s: %s\n", path, err.msg);
      abort();
    }
  }
}

static void check(const nne_tokenizer_t *tok, const char *t, size_t tl,
                  const char *p, size_t pl) {
  nne_tokenizer_encoding_t plain, off;
  nne_err_t err;
  size_t i;
  memset(&plain, 0, sizeof plain);
  memset(&off, 0, sizeof off);
  int a = nne_tokenizer_encode_pair(tok, t, tl, p, pl, NNE_TOK_ADD_SPECIAL,
                                    &plain, &err);
  int b = nne_tokenizer_encode_pair(tok, t, tl, p, pl,
                                    NNE_TOK_ADD_SPECIAL | NNE_TOK_OFFSETS,
                                    &off, &err);
  if ((a == 0) != (b == 0))
    abort(); /* offsets must not change whether it encodes */
  if (a == 0) {
    if (plain.n != off.n ||
        (plain.n > 0 && memcmp(plain.ids, off.ids, plain.n * 4) != 0))
      abort(); /* nor what it encodes to */
    for (i = 0; i < off.n; i++) {
      uint32_t s = off.offsets[2 * i], e = off.offsets[2 * i + 1];
      size_t lim = off.seq[i] == 1 ? pl : tl;
      if (s > e || e > lim)
        abort();
      if (off.seq[i] == NNE_TOK_SEQ_TEMPLATE && (s != 0 || e != 0))
        abort();
    }
  }
  nne_tokenizer_encoding_free(&plain);
  nne_tokenizer_encoding_free(&off);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *t = (const char *)data;
  const char *nul = memchr(data, 0, size);
  size_t tl = nul ? (size_t)(nul - t) : size, i;
  load_all();
  for (i = 0; i < N_TOK; i++) {
    int32_t ids[64];
    size_t n = 0, k, len;
    char *back = NULL;
    nne_err_t err;
    check(g_tok[i], t, size, NULL, 0);
    if (nul != NULL)
      check(g_tok[i], t, tl, nul + 1, size - tl - 1);
    /* Ids from the bytes, in and out of the vocabulary. */
    for (k = 0; k + 1 < size && n < 64; k += 2)
      ids[n++] = (int32_t)(data[k] | data[k + 1] << 8) %
                 (int32_t)(nne_tokenizer_vocab_size(g_tok[i]) + 2);
    if (nne_tokenizer_decode(g_tok[i], ids, n, size & 1 ? NNE_TOK_SKIP_SPECIAL : 0,
                             &back, &len, &err) == 0)
      free(back);
  }
  return 0;
}
