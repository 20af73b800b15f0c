/* fuzz_apply_request.c — Edits.Apply's request from raw bytes: nanopb with
 * the daemon's decode callbacks (the operand tensor's bytes, the edit count
 * and byte limits), then the checks that need no model (UTF-8 of label and
 * names, ranges, operands), exactly as the RPC and a --state-dir restore
 * run them. Small limits make the limit paths reachable. */
#include <stddef.h>
#include <stdint.h>

#include "base/log.h"
#include "config.h"
#include "rpc/rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static nne_config_t cfg;
  static int init;
  nne_err_t err;
  if (!init) {
    nne_config_defaults(&cfg);
    cfg.max_edits = 16;
    cfg.max_message_bytes = 4096;
    nne_log_set_level(NNE_LOG_OFF);
    init = 1;
  }
  nne_rpc_edits_decode(&cfg, data, size, &err);
  return 0;
}
