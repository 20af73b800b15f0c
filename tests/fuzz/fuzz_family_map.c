/* fuzz_family_map.c — a family name map in <repo>/names.d/ (NAME.json files there
 * override or extend the builtin maps, and an alias must pick one family):
 * the input is that file, loaded beside the builtin maps. */
#include <stddef.h>
#include <stdint.h>

#include "base/log.h"
#include "fuzz_util.h"
#include "names/names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nne_family_set_t *set = NULL;
  const char *dir;
  nne_err_t err;
  nne_log_set_level(NNE_LOG_OFF);
  fuzz_input_file("fuzzed.json", data, size, &dir);
  if (nne_family_set_load(dir, &set, &err) == 0)
    nne_family_set_free(set);
  return 0;
}
