/* fuzz_util.h — what the drivers share: the input as a file, for the
 * readers that take a path (as an operator's or a user's file reaches
 * them). One file per process, rewritten for each input. */
#ifndef NNE_FUZZ_UTIL_H
#define NNE_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Writes data into dir/name (dir made once per process under /tmp) and
 * returns the path (static storage). Aborts if the disk says no: a driver
 * that cannot write its input would report nothing. */
static inline const char *fuzz_input_file(const char *name, const uint8_t *data,
                                          size_t size, const char **dir_out) {
  static char dir[64], path[128];
  FILE *f;
  if (dir[0] == '\0') {
    snprintf(dir, sizeof dir, "/tmp/nne-fuzz-XXXXXX");
    if (mkdtemp(dir) == NULL)
      abort();
  }
  snprintf(path, sizeof path, "%s/%s", dir, name);
  f = fopen(path, "wb");
  if (f == NULL || fwrite(data, 1, size, f) != size)
    abort();
  fclose(f);
  if (dir_out != NULL)
    *dir_out = dir;
  return path;
}

#ifdef NNE_FUZZ_WITH_CONFIG
#include "base/log.h"
#include "config.h"

/* The daemon's defaults with small limits, so that the limit paths of the
 * request decoders are reachable; logging off. Made once per process. */
static inline const nne_config_t *fuzz_small_config(void) {
  static nne_config_t cfg;
  static int init;
  if (!init) {
    nne_config_defaults(&cfg);
    cfg.max_edits = 16;
    cfg.max_traces = 4;
    cfg.max_trace_nodes = 32;
    cfg.max_batch = 8;
    cfg.max_message_bytes = 8192;
    nne_log_set_level(NNE_LOG_OFF);
    init = 1;
  }
  return &cfg;
}
#endif

#endif /* NNE_FUZZ_UTIL_H */
