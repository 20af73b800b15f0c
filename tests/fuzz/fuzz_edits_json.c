/* fuzz_edits_json.c — EDITS-JSON (client/EDITS-JSON.md), the file of
 * `nneditctl edits apply -f`. */
#include <stddef.h>
#include <stdint.h>

#include "edits_json.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ctl_edits_file_t ef;
  ctl_edits_file_load(&ef, fuzz_input_file("edits.json", data, size, NULL));
  ctl_edits_file_free(&ef);
  return 0;
}
