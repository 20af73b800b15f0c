/* fuzz_tokenizer_json.c — a model's tokenizer.json (daemon/text): loading
 * (normalizers, pre-tokenizers with their regexes, the BPE model, added
 * tokens, templates, decoders) and, when it loads, an encode and a decode
 * through whatever it built. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char text[] = "The Eiffel Tower is in Paris.\n  héllo 🙂 123";
  nne_tokenizer_t *tok = NULL;
  int32_t *ids = NULL;
  char *back = NULL;
  size_t n = 0, len = 0;
  nne_err_t err;

  if (nne_tokenizer_load_json((const char *)data, size, &tok, &err) != 0)
    return 0;
  if (nne_tokenizer_encode(tok, text, sizeof text - 1, NNE_TOK_ADD_SPECIAL,
                           &ids, &n, &err) == 0 &&
      nne_tokenizer_decode(tok, ids, n, 0, &back, &len, &err) == 0)
    free(back);
  free(ids);
  nne_tokenizer_free(tok);
  return 0;
}
