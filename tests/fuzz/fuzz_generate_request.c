/* fuzz_generate_request.c — Inference.Generate's request from raw bytes:
 * nanopb with the daemon's decode callbacks (prompts with id and text rows,
 * stop ids and strings, saves, the intervention's nodes and constants into
 * a trace session, step ranges) and the checks that need no model, within
 * small limits so that every limit path is reachable. */
#include <stddef.h>
#include <stdint.h>

#define NNE_FUZZ_WITH_CONFIG
#include "fuzz_util.h"
#include "rpc/rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nne_err_t err;
  nne_rpc_generate_decode(fuzz_small_config(), data, size, &err);
  return 0;
}
