/* fuzz_trace_request.c — Inference.Trace's request from raw bytes: nanopb
 * with the daemon's decode callbacks (traces, invokes with id and text
 * rows, the graph's nodes, constants' tensor bytes) into a trace session,
 * within small limits so that every limit path is reachable. */
#include <stddef.h>
#include <stdint.h>

#define NNE_FUZZ_WITH_CONFIG
#include "fuzz_util.h"
#include "rpc/rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nne_err_t err;
  nne_rpc_trace_decode(fuzz_small_config(), data, size, &err);
  return 0;
}
