/* names/builtin.h — the family name maps compiled into the daemon.
 *
 * The build embeds every daemon/names/<family>.json (cmake/embed_files.cmake)
 * as NUL-terminated text; family.c parses them at start. The table ends with a
 * {NULL, NULL, 0} entry and has nne_names_builtin_count real entries. */
#ifndef NNE_NAMES_BUILTIN_H
#define NNE_NAMES_BUILTIN_H

#include <stddef.h>

typedef struct nne_names_builtin_file {
  const char *name; /* "gpt2.json" */
  const char *text;
  size_t len;
} nne_names_builtin_file_t;

extern const nne_names_builtin_file_t nne_names_builtin[];
extern const size_t nne_names_builtin_count;

#endif /* NNE_NAMES_BUILTIN_H */
