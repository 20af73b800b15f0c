/* tensors.h — tensors in and out of nneditctl, once for every command:
 * element conversions (float16 and bfloat16 included), values as nested
 * JSON lists, the "saved" part of a result as a table or JSON, and .npy
 * files in a directory under names made safe.
 *
 * Ownership: the tensors are only read (or, for ctl_elem_put, written at
 * the element given); file name arrays are the caller's (ctl_files_free).
 */
#ifndef NNE_CTL_TENSORS_H
#define NNE_CTL_TENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ctl.h"

/* Tensors with at most this many elements may be printed as values. */
#define CTL_VALUES_MAX 4096

/* ---- elements ------------------------------------------------------------ */

float ctl_half_to_float(uint16_t h);
float ctl_bf16_to_float(uint16_t h);
/* Rounding to nearest even; overflow to infinity; NaN stays NaN. */
uint16_t ctl_float_to_half(float f);
uint16_t ctl_float_to_bf16(float f);

/* One element: an integer (exact) or a real. */
typedef struct ctl_elem {
  bool is_int;
  int64_t i;
  double d;
} ctl_elem_t;

/* Element k of t (integers and bool as integers, floats as reals). */
ctl_elem_t ctl_elem_get(const nne_client_tensor_t *t, size_t k);
/* Writes v as element k of dst, of dtype dt. Floats take any value
 * (rounded); integer and bool dtypes only integral values in their range.
 * False with the reason in *why. */
bool ctl_elem_put(void *dst, size_t k, nne_client_dtype_t dt, ctl_elem_t v,
                  const char **why);

/* ---- printing ------------------------------------------------------------ */

/* The values as nested lists, or null when t has more than CTL_VALUES_MAX
 * elements (or its bytes do not match its shape). */
json_t *ctl_values_json(const nne_client_tensor_t *t);
/* {name, dtype, shape, nbytes, file} (file: null if NULL). */
json_t *ctl_tensor_json(const nne_client_tensor_t *t, const char *file);
/* "[2, 7, 64]" */
void ctl_shape_text(const nne_client_tensor_t *t, char *buf, size_t cap);

/* The saved tensors of a result: JSON objects (ctl_tensor_json, plus
 * "values" when `values`), or a table under "saved:" whose lines start
 * with `indent`. files[i] (files may be NULL) is where saved[i] went. */
json_t *ctl_saved_json(const nne_client_tensor_t *saved, size_t n,
                       char *const *files, bool values);
void ctl_saved_table(const nne_client_tensor_t *saved, size_t n,
                     char *const *files, bool values, const char *indent);

/* ---- .npy files ---------------------------------------------------------- */

/* Makes DIR if it does not exist (one level, like mkdir) and checks it is a
 * directory: 0, or the exit code after the error naming `flag` ("--save-dir
 * 'DIR': ..."). Called before the call, so that a bad directory wastes no
 * forward pass. */
int ctl_dir_make(const ctl_t *c, const char *flag, const char *dir);

/* Writes ts[0..n) to DIR/<name>.npy: characters other than [A-Za-z0-9._-]
 * become '_' (no name leaves DIR), two different names that become one
 * file get "~2", "~3", ..., and the same name twice is one file. *files
 * receives the n file names (allocated; ctl_files_free). Returns 0 or the
 * exit code after the error. */
int ctl_npy_write(const ctl_t *c, const char *dir,
                  const nne_client_tensor_t *const *ts, size_t n,
                  char ***files);
/* The same for a result's array of saved tensors (nothing for n 0). */
int ctl_npy_write_saved(const ctl_t *c, const char *dir,
                        const nne_client_tensor_t *saved, size_t n,
                        char ***files);
void ctl_files_free(char **files, size_t n);

#endif /* NNE_CTL_TENSORS_H */
