/* edits_json.h — the reader of EDITS-JSON (client/EDITS-JSON.md), the
 * file of `nneditctl edits apply`, and the JSON vocabulary TRACE-JSON
 * (trace_json.h) shares with it: the parse context, keys, integers,
 * strings, index ranges and tensors.
 *
 * A file that is not valid is refused with a message naming the place
 * ("edits[2].tensor.shape[1]: expected a non-negative integer"); the
 * command reports it as a usage error.
 *
 * Ownership: the structs are the caller's (zeroed by _load, freed by
 * _free). What the edits point to (strings, ranges, tensors) lives in the
 * struct: strings borrowed from the parsed document, tensors owned.
 */
#ifndef NNE_CTL_EDITS_JSON_H
#define NNE_CTL_EDITS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "nnedit.h"

/* ---- the shared vocabulary ----------------------------------------------- */

/* A JSON document being read, and why it was refused. */
typedef struct ctl_json {
  json_t *doc;
  const char *path; /* as given ("-" = stdin) */
  char msg[1400];
} ctl_json_t;

/* Reads path ("-" = stdin; duplicate keys refused). False with j->msg. */
bool ctl_json_load(ctl_json_t *j, const char *path);
void ctl_json_free(ctl_json_t *j);
/* Records why the file is refused; returns false. */
bool ctl_json_fail(ctl_json_t *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Refuses keys of obj not in the NULL-terminated list (a typo must not
 * silently drop part of an edit). `where` names obj ("" for the top). */
bool ctl_json_keys(ctl_json_t *j, const char *where, json_t *obj,
                   const char *const *keys);
/* An integer (false for anything else, reals included). */
bool ctl_json_int64(json_t *v, int64_t *out);
/* A string of 1 to cap - 1 bytes without a NUL. */
bool ctl_json_str(ctl_json_t *j, const char *where, json_t *v, size_t cap,
                  const char **out);
/* The "ranges" of obj and its shorthands "rows", "positions", "last" (a
 * range on dim 0, 1, -1) into out[0..*n) (room for NNE_CLIENT_MAX_RANGES,
 * at most one per dim). */
bool ctl_json_ranges(ctl_json_t *j, const char *where, json_t *obj,
                     nne_client_dim_range_t *out, size_t *n);
/* A tensor {dtype, shape, data} (data: a number or nested arrays; shape
 * from the nesting unless given) or {npy: FILE, dtype} (FILE relative to
 * the JSON file; dtype: convert to it). `where` names the owner of the
 * "tensor" key. *t is owned by the caller (nne_client_tensor_free). */
bool ctl_json_tensor(ctl_json_t *j, const char *where, json_t *obj,
                     nne_client_tensor_t *t);

/* ---- EDITS-JSON ---------------------------------------------------------- */

typedef struct ctl_edits_file {
  ctl_json_t j;
  const char *label; /* NULL when the file has none */
  nne_client_edit_t *edits;
  size_t n;
  nne_client_tensor_t *tensors; /* tensors[i]: edit i's operand */
  nne_client_dim_range_t (*ranges)[NNE_CLIENT_MAX_RANGES];
} ctl_edits_file_t;

/* Reads and checks an edits file. False with ef->j.msg (free ef either
 * way). */
bool ctl_edits_file_load(ctl_edits_file_t *ef, const char *path);
void ctl_edits_file_free(ctl_edits_file_t *ef);

#endif /* NNE_CTL_EDITS_JSON_H */
