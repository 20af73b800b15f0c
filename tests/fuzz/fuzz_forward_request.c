/* fuzz_forward_request.c — Inference.Forward's request from raw bytes:
 * nanopb with the daemon's decode callbacks (id and text rows, mask rows,
 * save sites) within small limits, so that every limit path is reachable
 * (nne_rpc_forward_decode; the checks that need the model are left out). */
#include <stddef.h>
#include <stdint.h>

#define NNE_FUZZ_WITH_CONFIG
#include "fuzz_util.h"
#include "rpc/rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nne_err_t err;
  nne_rpc_forward_decode(fuzz_small_config(), data, size, &err);
  return 0;
}
