/* fuzz_model_json.c — model.json, as the registry reads it at each load
 * (nne_model_spec_parse: families, dtypes, limits, user renames). */
#include <stddef.h>
#include <stdint.h>

#include "base/log.h"
#include "registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nne_model_spec_t spec;
  nne_err_t err;
  nne_log_set_level(NNE_LOG_OFF);
  if (nne_model_spec_parse((const char *)data, size, "model.json", &spec,
                           &err) == 0)
    nne_model_spec_free(&spec);
  return 0;
}
