/* fuzz_trace_json.c — TRACE-JSON (client/TRACE-JSON.md), the file of
 * `nneditctl trace -f`: invokes, intervention graphs, saves. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_util.h"
#include "trace_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ctl_trace_file_t tf;
  ctl_trace_file_load(&tf, fuzz_input_file("trace.json", data, size, NULL));
  ctl_trace_file_free(&tf);
  return 0;
}
