/* edits_json.c — EDITS-JSON and the JSON vocabulary TRACE-JSON shares
 * (edits_json.h). */
#include "edits_json.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"
#include "tensors.h"

/* ---- the parse context --------------------------------------------------- */

bool ctl_json_fail(ctl_json_t *j, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(j->msg, sizeof j->msg, fmt, ap);
  va_end(ap);
  return false;
}

bool ctl_json_load(ctl_json_t *j, const char *path) {
  json_error_t jerr;
  memset(j, 0, sizeof *j);
  j->path = path;
  j->doc = strcmp(path, "-") == 0
               ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr)
               : json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (j->doc == NULL && jerr.line < 1)
    return ctl_json_fail(j, "%s", jerr.text); /* cannot be read at all */
  if (j->doc == NULL)
    return ctl_json_fail(j, "line %d, column %d: %s", jerr.line, jerr.column,
                         jerr.text);
  return true;
}

void ctl_json_free(ctl_json_t *j) {
  json_decref(j->doc);
  j->doc = NULL;
}

bool ctl_json_keys(ctl_json_t *j, const char *where, json_t *obj,
                   const char *const *keys) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    size_t k, n = 0;
    char list[256];
    for (k = 0; keys[k] != NULL && strcmp(keys[k], key) != 0; k++)
      ;
    if (keys[k] != NULL)
      continue;
    list[0] = '\0';
    for (k = 0; keys[k] != NULL; k++)
      ctl_line_add(list, sizeof list, &n, "%s%s", k ? ", " : "", keys[k]);
    return ctl_json_fail(j, "%s%sunknown key '%.64s' (known: %s)", where,
                         *where ? ": " : "", key, list);
  }
  (void)v;
  return true;
}

bool ctl_json_int64(json_t *v, int64_t *out) {
  if (!json_is_integer(v))
    return false;
  *out = (int64_t)json_integer_value(v);
  return true;
}

bool ctl_json_str(ctl_json_t *j, const char *where, json_t *v, size_t cap,
                  const char **out) {
  if (!json_is_string(v) || json_string_length(v) == 0 ||
      json_string_length(v) >= cap)
    return ctl_json_fail(j, "%s: expected a string of 1 to %zu bytes", where,
                         cap - 1);
  if (strlen(json_string_value(v)) != json_string_length(v))
    return ctl_json_fail(j, "%s: a string with a NUL", where);
  *out = json_string_value(v);
  return true;
}

/* ---- ranges -------------------------------------------------------------- */

/* A range shorthand: k (that one index; -1 = the last) or [start, stop]
 * or [start] (to the end). */
static bool parse_span(ctl_json_t *j, const char *where, json_t *v,
                       int64_t *start, int64_t *stop) {
  int64_t k;
  if (ctl_json_int64(v, &k)) {
    if (k == INT64_MAX)
      return ctl_json_fail(j, "%s: index %" PRId64 " is too large", where, k);
    *start = k;
    *stop = k + 1; /* -1 gives [-1, 0): stop 0 is "to the end" */
    return true;
  }
  if (json_is_array(v) &&
      (json_array_size(v) == 1 || json_array_size(v) == 2) &&
      ctl_json_int64(json_array_get(v, 0), start)) {
    *stop = 0;
    if (json_array_size(v) == 1 || ctl_json_int64(json_array_get(v, 1), stop))
      return true;
  }
  return ctl_json_fail(j,
                       "%s: expected an index or [start, stop] (integers; "
                       "stop 0 = to the end)",
                       where);
}

/* Appends {dim, start, stop} to out[0..*n) (at most one per dim). */
static bool add_range(ctl_json_t *j, const char *where,
                      nne_client_dim_range_t *out, size_t *n, int32_t dim,
                      int64_t start, int64_t stop) {
  size_t k;
  for (k = 0; k < *n; k++)
    if (out[k].dim == dim)
      return ctl_json_fail(j,
                           "%s: dim %d already has a range (one per "
                           "dimension)",
                           where, (int)dim);
  if (*n == NNE_CLIENT_MAX_RANGES)
    return ctl_json_fail(j, "%s: more than %d ranges", where,
                         NNE_CLIENT_MAX_RANGES);
  out[(*n)++] = (nne_client_dim_range_t){dim, start, stop};
  return true;
}

/* One entry of "ranges": {"dim": D, "start": A, "stop": B} or [D, A(, B)]. */
static bool parse_range(ctl_json_t *j, const char *where, json_t *r,
                        int64_t *dim, int64_t *start, int64_t *stop) {
  static const char *const keys[] = {"dim", "start", "stop", NULL};
  *start = *stop = 0;
  if (json_is_object(r)) {
    json_t *js = json_object_get(r, "start"), *jt = json_object_get(r, "stop");
    if (!ctl_json_keys(j, where, r, keys))
      return false;
    if (!ctl_json_int64(json_object_get(r, "dim"), dim))
      return ctl_json_fail(j, "%s.dim: expected an integer", where);
    if (js != NULL && !ctl_json_int64(js, start))
      return ctl_json_fail(j, "%s.start: expected an integer", where);
    if (jt != NULL && !ctl_json_int64(jt, stop))
      return ctl_json_fail(j, "%s.stop: expected an integer", where);
    return true;
  }
  if (json_is_array(r) && json_array_size(r) >= 2 && json_array_size(r) <= 3 &&
      ctl_json_int64(json_array_get(r, 0), dim) &&
      ctl_json_int64(json_array_get(r, 1), start) &&
      (json_array_size(r) == 2 || ctl_json_int64(json_array_get(r, 2), stop)))
    return true;
  return ctl_json_fail(j,
                       "%s: expected {\"dim\": D, \"start\": A, \"stop\": B} "
                       "or [D, A, B]",
                       where);
}

bool ctl_json_ranges(ctl_json_t *j, const char *where, json_t *obj,
                     nne_client_dim_range_t *out, size_t *n) {
  static const struct {
    const char *key;
    int32_t dim;
  } shorthands[] = {{"rows", 0}, {"positions", 1}, {"last", -1}};
  json_t *ranges = json_object_get(obj, "ranges"), *r;
  char path[192];
  size_t k;

  if (ranges != NULL && !json_is_array(ranges))
    return ctl_json_fail(j,
                         "%s.ranges: expected an array of {dim, start, "
                         "stop}",
                         where);
  json_array_foreach(ranges, k, r) {
    int64_t dim = 0, start, stop;
    snprintf(path, sizeof path, "%s.ranges[%zu]", where, k);
    if (!parse_range(j, path, r, &dim, &start, &stop))
      return false;
    if (dim < INT32_MIN || dim > INT32_MAX)
      return ctl_json_fail(j, "%s.dim: %" PRId64 " is out of range", path, dim);
    if (!add_range(j, path, out, n, (int32_t)dim, start, stop))
      return false;
  }
  for (k = 0; k < sizeof shorthands / sizeof shorthands[0]; k++) {
    json_t *v = json_object_get(obj, shorthands[k].key);
    int64_t start = 0, stop = 0;
    if (v == NULL)
      continue;
    snprintf(path, sizeof path, "%s.%s", where, shorthands[k].key);
    if (!parse_span(j, path, v, &start, &stop) ||
        !add_range(j, path, out, n, shorthands[k].dim, start, stop))
      return false;
  }
  return true;
}

/* ---- tensors ------------------------------------------------------------- */

/* The leaves of nested arrays (any nesting, at most 8 deep): counted first
 * (vals NULL), then collected into vals[0..*n) in order. */
static bool leaves(ctl_json_t *j, const char *where, json_t *v, int depth,
                   json_t **vals, size_t *n) {
  size_t k;
  json_t *x;
  if (!json_is_array(v)) {
    if (vals != NULL)
      vals[*n] = v;
    (*n)++;
    return true;
  }
  if (depth >= NNE_CLIENT_MAX_DIMS)
    return ctl_json_fail(j, "%s: nested more than %d deep", where,
                         NNE_CLIENT_MAX_DIMS);
  json_array_foreach(v, k, x) {
    if (!leaves(j, where, x, depth + 1, vals, n))
      return false;
  }
  return true;
}

/* The shape nested arrays spell: the length at each level along the first
 * elements, then checked to hold everywhere (rectangular). */
static bool nested_shape(ctl_json_t *j, const char *where, json_t *v,
                         nne_client_tensor_t *t) {
  json_t *x = v;
  t->ndim = 0;
  while (json_is_array(x)) {
    if (t->ndim == NNE_CLIENT_MAX_DIMS)
      return ctl_json_fail(j, "%s: nested more than %d deep", where,
                           NNE_CLIENT_MAX_DIMS);
    t->shape[t->ndim++] = (int64_t)json_array_size(x);
    x = json_array_size(x) ? json_array_get(x, 0) : NULL;
  }
  return true;
}

static bool check_rect(ctl_json_t *j, const char *where, json_t *v,
                       const nne_client_tensor_t *t, size_t depth) {
  size_t k;
  json_t *x;
  if (depth == t->ndim) {
    if (json_is_array(v))
      return ctl_json_fail(j, "%s: nested deeper than its first element",
                           where);
    return true;
  }
  if (!json_is_array(v) || (int64_t)json_array_size(v) != t->shape[depth])
    return ctl_json_fail(j,
                         "%s: ragged nesting (dim %zu has %" PRId64
                         " elements in its first row)",
                         where, depth, t->shape[depth]);
  json_array_foreach(v, k, x) {
    if (!check_rect(j, where, x, t, depth + 1))
      return false;
  }
  return true;
}

/* t := src converted to dtype dt (src is freed either way). */
static bool tensor_cast(ctl_json_t *j, const char *where,
                        nne_client_tensor_t *src, nne_client_dtype_t dt,
                        nne_client_tensor_t *t) {
  uint64_t n = nne_client_tensor_numel(src), k;
  const char *why = NULL;
  *t = *src;
  t->data = NULL;
  t->dtype = dt;
  t->nbytes = (size_t)n * nne_client_dtype_size(dt);
  if (t->nbytes > 0 && (t->data = malloc(t->nbytes)) == NULL) {
    nne_client_tensor_free(src);
    return ctl_json_fail(j, "%s: out of memory", where);
  }
  for (k = 0; k < n; k++)
    if (!ctl_elem_put(t->data, (size_t)k, dt, ctl_elem_get(src, (size_t)k),
                      &why)) {
      nne_client_tensor_free(src);
      nne_client_tensor_free(t);
      return ctl_json_fail(j, "%s: element %" PRIu64 " as %s: %s", where, k,
                           nne_client_dtype_name(dt), why);
    }
  nne_client_tensor_free(src);
  return true;
}

/* The directory part of a path ("." when it has none). */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL)
    return strdup(".");
  if (slash == path)
    return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

/* {npy: FILE, dtype}: the file, relative to the JSON file so that a file
 * and its tensors move together. */
static bool tensor_npy(ctl_json_t *j, const char *where, json_t *jnpy,
                       json_t *jdt, nne_client_dtype_t dt,
                       nne_client_tensor_t *t) {
  nne_client_tensor_t src;
  nne_client_err_t err;
  const char *rel;
  char *file = NULL, *dir;
  bool ok;
  if (!json_is_string(jnpy) || json_string_length(jnpy) == 0)
    return ctl_json_fail(j, "%s.npy: expected a file name", where);
  rel = json_string_value(jnpy);
  if (rel[0] == '/' || strcmp(j->path, "-") == 0) {
    file = strdup(rel);
  } else if ((dir = dir_of(j->path)) != NULL) {
    if (asprintf(&file, "%s/%s", dir, rel) < 0)
      file = NULL;
    free(dir);
  }
  if (file == NULL)
    return ctl_json_fail(j, "%s.npy: out of memory", where);
  ok = nne_client_tensor_read_npy(file, 0, &src, &err) == 0;
  free(file);
  if (!ok)
    return ctl_json_fail(j, "%s.npy: %s", where, err.message);
  if (jdt == NULL || src.dtype == dt) {
    *t = src;
    return true;
  }
  return tensor_cast(j, where, &src, dt, t);
}

/* The number of elements of a shape, bounded far beyond what a JSON file
 * holds (a product past the value count is refused anyway). */
static bool shape_numel(const nne_client_tensor_t *t, uint64_t *numel) {
  size_t k;
  *numel = 1;
  for (k = 0; k < t->ndim; k++) {
    if (t->shape[k] > 0 && *numel > (1ull << 40) / (uint64_t)t->shape[k])
      return false;
    *numel *= (uint64_t)t->shape[k];
  }
  return true;
}

/* One value of "data" as an element. */
static bool data_elem(json_t *x, ctl_elem_t *v) {
  *v = (ctl_elem_t){false, 0, 0.0};
  if (json_is_integer(x))
    *v = (ctl_elem_t){true, (int64_t)json_integer_value(x), 0.0};
  else if (json_is_real(x))
    v->d = json_real_value(x);
  else if (json_is_boolean(x))
    *v = (ctl_elem_t){true, json_is_true(x), 0.0};
  else
    return false;
  return true;
}

/* {dtype, shape, data}: a number (a 0-dim tensor), or (nested) arrays. */
static bool tensor_inline(ctl_json_t *j, const char *where, json_t *jshape,
                          json_t *jdata, nne_client_dtype_t dt,
                          nne_client_tensor_t *t) {
  json_t **vals, *d;
  char dpath[200];
  size_t n = 0, k;
  uint64_t numel;
  bool ok = true;

  memset(t, 0, sizeof *t);
  t->dtype = dt;
  if (jshape != NULL) {
    if (!json_is_array(jshape) || json_array_size(jshape) > NNE_CLIENT_MAX_DIMS)
      return ctl_json_fail(j,
                           "%s.shape: expected an array of at most %d "
                           "non-negative integers",
                           where, NNE_CLIENT_MAX_DIMS);
    json_array_foreach(jshape, k, d) {
      if (!ctl_json_int64(d, &t->shape[k]) || t->shape[k] < 0)
        return ctl_json_fail(j,
                             "%s.shape[%zu]: expected a non-negative "
                             "integer",
                             where, k);
    }
    t->ndim = json_array_size(jshape);
  } else if (!nested_shape(j, where, jdata, t) ||
             !check_rect(j, where, jdata, t, 0)) {
    return false;
  }
  snprintf(dpath, sizeof dpath, "%s.data", where);
  if (!leaves(j, dpath, jdata, 0, NULL, &n))
    return false;
  if (!shape_numel(t, &numel))
    return ctl_json_fail(j, "%s.shape: too many elements", where);
  if (numel != n)
    return ctl_json_fail(j, "%s: %zu values, shape needs %" PRIu64, dpath, n,
                         numel);
  if ((vals = malloc((n ? n : 1) * sizeof *vals)) == NULL)
    return ctl_json_fail(j, "%s: out of memory", where);
  n = 0;
  leaves(j, dpath, jdata, 0, vals, &n);
  t->nbytes = n * nne_client_dtype_size(dt);
  if (t->nbytes > 0 && (t->data = malloc(t->nbytes)) == NULL)
    ok = ctl_json_fail(j, "%s: out of memory", where);
  for (k = 0; k < n && ok; k++) {
    ctl_elem_t v;
    const char *why = "expected a number";
    if (!data_elem(vals[k], &v))
      ok = ctl_json_fail(j, "%s: value %zu: %s", dpath, k, why);
    else if (!ctl_elem_put(t->data, k, dt, v, &why))
      ok = ctl_json_fail(j, "%s: value %zu as %s: %s", dpath, k,
                         nne_client_dtype_name(dt), why);
  }
  free(vals);
  if (!ok)
    nne_client_tensor_free(t);
  return ok;
}

bool ctl_json_tensor(ctl_json_t *j, const char *where, json_t *obj,
                     nne_client_tensor_t *t) {
  static const char *const keys[] = {"dtype", "shape", "data", "npy", NULL};
  json_t *jdt = json_object_get(obj, "dtype"),
         *jshape = json_object_get(obj, "shape"),
         *jdata = json_object_get(obj, "data"),
         *jnpy = json_object_get(obj, "npy");
  nne_client_dtype_t dt = NNE_CLIENT_DTYPE_FLOAT32;
  nne_client_err_t err;
  char path[160];

  memset(t, 0, sizeof *t);
  snprintf(path, sizeof path, "%s.tensor", where);
  if (!json_is_object(obj))
    return ctl_json_fail(j,
                         "%s: expected an object {dtype, shape, data} or "
                         "{npy}",
                         path);
  if (!ctl_json_keys(j, path, obj, keys))
    return false;
  if (jdt != NULL) {
    if (!json_is_string(jdt))
      return ctl_json_fail(j, "%s.dtype: expected a string", path);
    if (nne_client_dtype_parse(json_string_value(jdt), &dt, &err) < 0)
      return ctl_json_fail(j, "%s.dtype: %s", path, err.message);
  }
  if ((jdata == NULL) == (jnpy == NULL))
    return ctl_json_fail(j, "%s: give exactly one of 'data' and 'npy'", path);
  if (jnpy != NULL && jshape != NULL)
    return ctl_json_fail(j, "%s.shape: the .npy file has its own shape", path);
  if (jnpy != NULL)
    return tensor_npy(j, path, jnpy, jdt, dt, t);
  return tensor_inline(j, path, jshape, jdata, dt, t);
}

/* ---- EDITS-JSON ---------------------------------------------------------- */

void ctl_edits_file_free(ctl_edits_file_t *ef) {
  size_t i;
  for (i = 0; ef->tensors != NULL && i < ef->n; i++)
    nne_client_tensor_free(&ef->tensors[i]);
  free(ef->tensors);
  free(ef->ranges);
  free(ef->edits);
  ctl_json_free(&ef->j);
  memset(ef, 0, sizeof *ef);
}

/* The operand of edit i: a tensor or a scalar, exactly when its op takes
 * one. */
static bool parse_operand(ctl_edits_file_t *ef, size_t i, const char *where,
                          json_t *obj) {
  nne_client_edit_t *e = &ef->edits[i];
  json_t *tensor = json_object_get(obj, "tensor"),
         *scalar = json_object_get(obj, "scalar");
  bool operand = e->op == NNE_CLIENT_EDIT_REPLACE ||
                 e->op == NNE_CLIENT_EDIT_ADD || e->op == NNE_CLIENT_EDIT_SCALE;
  if (operand && (tensor == NULL) == (scalar == NULL))
    return ctl_json_fail(&ef->j,
                         "%s: op %s needs exactly one of 'tensor' and "
                         "'scalar'",
                         where, nne_client_edit_op_name(e->op));
  if (!operand && (tensor != NULL || scalar != NULL))
    return ctl_json_fail(&ef->j, "%s.%s: op %s takes no operand", where,
                         tensor != NULL ? "tensor" : "scalar",
                         nne_client_edit_op_name(e->op));
  if (scalar != NULL) {
    if (!json_is_number(scalar))
      return ctl_json_fail(&ef->j, "%s.scalar: expected a number", where);
    e->use_scalar = true;
    e->scalar = json_number_value(scalar);
  }
  if (tensor != NULL) {
    if (!ctl_json_tensor(&ef->j, where, tensor, &ef->tensors[i]))
      return false;
    e->tensor = &ef->tensors[i];
  }
  return true;
}

static bool parse_edit(ctl_edits_file_t *ef, size_t i, json_t *obj) {
  static const char *const keys[] = {"site",   "op",   "tensor",    "scalar",
                                     "ranges", "rows", "positions", "last",
                                     "name",   NULL};
  ctl_json_t *j = &ef->j;
  nne_client_edit_t *e = &ef->edits[i];
  json_t *site = json_object_get(obj, "site"), *op = json_object_get(obj, "op"),
         *name = json_object_get(obj, "name");
  nne_client_err_t err;
  char path[64];

  snprintf(path, sizeof path, "edits[%zu]", i);
  if (!json_is_object(obj))
    return ctl_json_fail(j, "%s: expected an object {site, op, ...}", path);
  if (!ctl_json_keys(j, path, obj, keys))
    return false;
  if (!json_is_string(site) || json_string_length(site) == 0)
    return ctl_json_fail(j, "%s.site: expected a site name (a string)", path);
  if (json_string_length(site) >= NNE_CLIENT_SITE_MAX)
    return ctl_json_fail(j, "%s.site: longer than %d bytes", path,
                         NNE_CLIENT_SITE_MAX - 1);
  e->site = json_string_value(site);
  if (!json_is_string(op))
    return ctl_json_fail(j,
                         "%s.op: expected one of save, replace, add, scale, "
                         "zero",
                         path);
  if (nne_client_edit_op_parse(json_string_value(op), &e->op, &err) < 0)
    return ctl_json_fail(j, "%s.op: %s", path, err.message);
  if (!parse_operand(ef, i, path, obj))
    return false;
  if (name != NULL) {
    if (e->op != NNE_CLIENT_EDIT_SAVE)
      return ctl_json_fail(j, "%s.name: only a save edit has a name", path);
    if (!json_is_string(name) || json_string_length(name) == 0 ||
        json_string_length(name) >= NNE_CLIENT_NAME_MAX)
      return ctl_json_fail(j, "%s.name: expected a string of 1 to %d bytes",
                           path, NNE_CLIENT_NAME_MAX - 1);
    e->name = json_string_value(name);
  }
  if (!ctl_json_ranges(j, path, obj, ef->ranges[i], &e->n_ranges))
    return false;
  e->ranges = e->n_ranges ? ef->ranges[i] : NULL;
  return true;
}

bool ctl_edits_file_load(ctl_edits_file_t *ef, const char *path) {
  static const char *const keys[] = {"label", "edits", NULL};
  ctl_json_t *j = &ef->j;
  json_t *label, *edits, *x;
  size_t i;

  memset(ef, 0, sizeof *ef);
  if (!ctl_json_load(j, path))
    return false;
  if (!json_is_object(j->doc))
    return ctl_json_fail(j, "expected an object {\"label\": ..., \"edits\": "
                            "[...]}");
  if (!ctl_json_keys(j, "", j->doc, keys))
    return false;
  label = json_object_get(j->doc, "label");
  if (label != NULL) {
    if (!json_is_string(label) ||
        json_string_length(label) >= NNE_CLIENT_LABEL_MAX)
      return ctl_json_fail(j, "label: expected a string of at most %d bytes",
                           NNE_CLIENT_LABEL_MAX - 1);
    ef->label = json_string_value(label);
  }
  edits = json_object_get(j->doc, "edits");
  if (!json_is_array(edits))
    return ctl_json_fail(j, "edits: expected an array of edits");
  if (json_array_size(edits) == 0)
    return ctl_json_fail(j, "edits: the array is empty");
  if (json_array_size(edits) > NNE_CLIENT_MAX_EDITS)
    return ctl_json_fail(j, "edits: %zu edits, more than %d",
                         json_array_size(edits), NNE_CLIENT_MAX_EDITS);
  ef->n = json_array_size(edits);
  ef->edits = calloc(ef->n, sizeof *ef->edits);
  ef->tensors = calloc(ef->n, sizeof *ef->tensors);
  ef->ranges = calloc(ef->n, sizeof *ef->ranges);
  if (ef->edits == NULL || ef->tensors == NULL || ef->ranges == NULL)
    return ctl_json_fail(j, "out of memory");
  json_array_foreach(edits, i, x) {
    if (!parse_edit(ef, i, x))
      return false;
  }
  return true;
}
