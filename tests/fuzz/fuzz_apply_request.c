/* fuzz_apply_request.c — Edits.Apply's request from raw bytes: nanopb with
 * the daemon's decode callbacks (the operand tensor's bytes, the edit count
 * and byte limits), then the checks that need no model (UTF-8 of label and
 * names, ranges, operands), exactly as the RPC and a --state-dir restore
 * run them. Small limits make the limit paths reachable. */
#include <stddef.h>
#include <stdint.h>

#define NNE_FUZZ_WITH_CONFIG
#include "fuzz_util.h"
#include "rpc/rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nne_err_t err;
  nne_rpc_edits_decode(fuzz_small_config(), data, size, &err);
  return 0;
}
