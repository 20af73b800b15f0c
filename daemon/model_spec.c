/* model_spec.c — model.json read into an nne_model_spec_t (registry.h):
 * every field optional, each bad one named with the file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "registry.h"

/* ---- model.json ----------------------------------------------------------- */

static int spec_str(json_t *root, const char *key, char *dst, size_t cap,
                    const char *where, nne_err_t *err) {
  json_t *v = json_object_get(root, key);
  if (v == NULL || json_is_null(v))
    return 0;
  if (!json_is_string(v))
    return nne_err_set(err, NNE_EINVAL, "%s: \"%s\" must be a string", where,
                       key);
  if (json_string_length(v) >= cap)
    return nne_err_set(err, NNE_EINVAL, "%s: \"%s\" is longer than %zu", where,
                       key, cap - 1);
  memcpy(dst, json_string_value(v), json_string_length(v) + 1);
  return 0;
}

static int spec_u32(json_t *obj, const char *key, uint32_t *dst,
                    const char *where, nne_err_t *err) {
  json_t *v = json_object_get(obj, key);
  if (v == NULL || json_is_null(v))
    return 0;
  if (!json_is_integer(v) || json_integer_value(v) < 1 ||
      json_integer_value(v) > (json_int_t)UINT32_MAX)
    return nne_err_set(err, NNE_EINVAL,
                       "%s: \"%s\" must be a positive integer", where, key);
  *dst = (uint32_t)json_integer_value(v);
  return 0;
}

/* "names": {"from": "alias" | ["alias", ...], ...}. Bounded: a model.json
 * is operator-written, but a runaway file must not eat the daemon. */
#define NNE_MAX_RENAMES 4096
#define NNE_MAX_RENAME_TARGETS 16
#define NNE_MAX_NAME_LEN 256

static int spec_renames(json_t *obj, const char *where, nne_model_spec_t *spec,
                        nne_err_t *err) {
  const char *key;
  json_t *val;
  size_t n, i = 0;

  if (!json_is_object(obj))
    return nne_err_set(err, NNE_EINVAL,
                       "%s: \"names\" must map names to an alias or a list "
                       "of aliases",
                       where);
  n = json_object_size(obj);
  if (n > NNE_MAX_RENAMES)
    return nne_err_set(err, NNE_EINVAL, "%s: \"names\" has %zu entries (at "
                       "most %d)", where, n, NNE_MAX_RENAMES);
  spec->renames = calloc(n ? n : 1, sizeof *spec->renames);
  if (spec->renames == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  json_object_foreach(obj, key, val) {
    nne_names_rename_t *r = &spec->renames[i];
    size_t k, m = json_is_array(val) ? json_array_size(val) : 1;
    char **to;

    if (strlen(key) == 0 || strlen(key) > NNE_MAX_NAME_LEN)
      return nne_err_set(err, NNE_EINVAL, "%s: \"names\": key '%.64s' must "
                         "have 1..%d characters", where, key, NNE_MAX_NAME_LEN);
    if (!json_is_string(val) && !json_is_array(val))
      return nne_err_set(err, NNE_EINVAL, "%s: \"names\".\"%s\": expected an "
                         "alias or a list of aliases", where, key);
    if (m == 0 || m > NNE_MAX_RENAME_TARGETS)
      return nne_err_set(err, NNE_EINVAL, "%s: \"names\".\"%s\": 1..%d aliases "
                         "expected", where, key, NNE_MAX_RENAME_TARGETS);
    to = calloc(m, sizeof *to);
    r->from = strdup(key);
    r->to = (const char *const *)to;
    spec->n_renames = ++i;
    if (to == NULL || r->from == NULL)
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
    for (k = 0; k < m; k++) {
      json_t *t = json_is_array(val) ? json_array_get(val, k) : val;
      if (!json_is_string(t) || json_string_length(t) == 0 ||
          json_string_length(t) > NNE_MAX_NAME_LEN)
        return nne_err_set(err, NNE_EINVAL, "%s: \"names\".\"%s\": alias %zu "
                           "must be a string of 1..%d characters", where, key,
                           k, NNE_MAX_NAME_LEN);
      to[k] = strdup(json_string_value(t));
      r->n_to = k + 1;
      if (to[k] == NULL)
        return nne_err_set(err, NNE_ENOMEM, "out of memory");
    }
  }
  return 0;
}

/* "kv_cache": {"method": NAME, "layers": L, "kv_heads": H, "head_dim": D},
 * all required, the numbers positive. */
static int spec_kv_cache(json_t *v, const char *where, nne_model_spec_t *spec,
                         nne_err_t *err) {
  int rc;
  if (!json_is_object(v))
    return nne_err_set(err, NNE_EINVAL, "%s: \"kv_cache\" must be an object",
                       where);
  if ((rc = spec_str(v, "method", spec->kv_method, sizeof spec->kv_method,
                     where, err)) != 0 ||
      (rc = spec_u32(v, "layers", &spec->kv_layers, where, err)) != 0 ||
      (rc = spec_u32(v, "kv_heads", &spec->kv_heads, where, err)) != 0 ||
      (rc = spec_u32(v, "head_dim", &spec->kv_head_dim, where, err)) != 0)
    return rc;
  if (spec->kv_method[0] == '\0' || spec->kv_layers == 0 ||
      spec->kv_heads == 0 || spec->kv_head_dim == 0 ||
      spec->kv_layers > 4096 || spec->kv_heads > 4096 ||
      spec->kv_head_dim > 65536)
    return nne_err_set(err, NNE_EINVAL,
                       "%s: \"kv_cache\" needs \"method\" and positive "
                       "\"layers\" (at most 4096), \"kv_heads\" (at most "
                       "4096) and \"head_dim\" (at most 65536)",
                       where);
  return 0;
}

/* "eos_token_id": a non-negative id, or a list of at most
 * NNE_MODEL_MAX_EOS of them (Hugging Face configs use both). */
static int spec_eos(json_t *v, const char *where, nne_model_spec_t *spec,
                    nne_err_t *err) {
  size_t i, n = json_is_array(v) ? json_array_size(v) : 1;
  if (n > NNE_MODEL_MAX_EOS)
    return nne_err_set(err, NNE_EINVAL,
                       "%s: \"eos_token_id\" lists %zu ids (at most %d)",
                       where, n, NNE_MODEL_MAX_EOS);
  for (i = 0; i < n; i++) {
    json_t *x = json_is_array(v) ? json_array_get(v, i) : v;
    if (!json_is_integer(x) || json_integer_value(x) < 0)
      return nne_err_set(err, NNE_EINVAL,
                         "%s: \"eos_token_id\" must be a non-negative "
                         "integer or a list of them",
                         where);
    spec->eos[i] = json_integer_value(x);
  }
  spec->n_eos = n;
  return 0;
}

int nne_model_spec_parse(const char *text, size_t len, const char *where,
                         nne_model_spec_t *spec, nne_err_t *err) {
  json_error_t jerr;
  json_t *root, *limits, *v;
  char dtype[32] = "";
  int rc = 0;

  memset(spec, 0, sizeof *spec);
  spec->pad_token_id = -1;
  root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (root == NULL)
    return nne_err_set(err, NNE_EINVAL, "%s: line %d column %d: %s", where,
                       jerr.line, jerr.column, jerr.text);
  if (!json_is_object(root)) {
    rc = nne_err_set(err, NNE_EINVAL, "%s: must hold a JSON object", where);
    goto out;
  }
  if ((rc = spec_str(root, "family", spec->family, sizeof spec->family, where,
                     err)) != 0 ||
      (rc = spec_str(root, "export", spec->export_kind,
                     sizeof spec->export_kind, where, err)) != 0 ||
      (rc = spec_str(root, "device", spec->device, sizeof spec->device, where,
                     err)) != 0 ||
      (rc = spec_str(root, "dtype", dtype, sizeof dtype, where, err)) != 0 ||
      (rc = spec_str(root, "tokenizer", spec->tokenizer,
                     sizeof spec->tokenizer, where, err)) != 0)
    goto out;
  if (strchr(spec->tokenizer, '/') != NULL ||
      strcmp(spec->tokenizer, "..") == 0 || strcmp(spec->tokenizer, ".") == 0) {
    rc = nne_err_set(err, NNE_EINVAL,
                     "%s: \"tokenizer\": '%s' must name a file in the "
                     "model's folder",
                     where, spec->tokenizer);
    goto out;
  }
  if (dtype[0] != '\0') {
    spec->dtype = nne_dtype_parse(dtype);
    if (spec->dtype == NNE_DTYPE_INVALID) {
      rc = nne_err_set(err, NNE_EINVAL, "%s: \"dtype\": unknown dtype '%s'",
                       where, dtype);
      goto out;
    }
    if (spec->dtype != NNE_DTYPE_F32 && spec->dtype != NNE_DTYPE_F16 &&
        spec->dtype != NNE_DTYPE_BF16 && spec->dtype != NNE_DTYPE_F64) {
      rc = nne_err_set(err, NNE_EINVAL,
                       "%s: \"dtype\": '%s' is not a floating type a model "
                       "can run in (float32, float16, bfloat16, float64)",
                       where, dtype);
      goto out;
    }
  }
  limits = json_object_get(root, "limits");
  if (limits != NULL && !json_is_null(limits)) {
    if (!json_is_object(limits)) {
      rc = nne_err_set(err, NNE_EINVAL, "%s: \"limits\" must be an object",
                       where);
      goto out;
    }
    if ((rc = spec_u32(limits, "max_batch", &spec->max_batch, where, err)) ||
        (rc = spec_u32(limits, "max_seq_len", &spec->max_seq_len, where, err)))
      goto out;
  }
  v = json_object_get(root, "config");
  if (v != NULL && !json_is_null(v)) {
    if (!json_is_object(v)) {
      rc = nne_err_set(err, NNE_EINVAL, "%s: \"config\" must be an object",
                       where);
      goto out;
    }
    if ((rc = spec_u32(v, "n_heads", &spec->n_heads, where, err)) != 0)
      goto out;
  }
  v = json_object_get(root, "names");
  if (v != NULL && !json_is_null(v) &&
      (rc = spec_renames(v, where, spec, err)) != 0)
    goto out;
  v = json_object_get(root, "pad_token_id");
  if (v != NULL && !json_is_null(v)) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
      rc = nne_err_set(err, NNE_EINVAL,
                       "%s: \"pad_token_id\" must be a non-negative integer",
                       where);
      goto out;
    }
    spec->pad_token_id = json_integer_value(v);
  }
  v = json_object_get(root, "kv_cache");
  if (v != NULL && !json_is_null(v) &&
      (rc = spec_kv_cache(v, where, spec, err)) != 0)
    goto out;
  v = json_object_get(root, "eos_token_id");
  if (v != NULL && !json_is_null(v) &&
      (rc = spec_eos(v, where, spec, err)) != 0)
    goto out;
out:
  json_decref(root);
  if (rc != 0)
    nne_model_spec_free(spec);
  return rc;
}

void nne_model_spec_free(nne_model_spec_t *spec) {
  size_t i, k;
  for (i = 0; i < spec->n_renames; i++) {
    free((char *)spec->renames[i].from);
    for (k = 0; k < spec->renames[i].n_to; k++)
      free((char *)spec->renames[i].to[k]);
    free((char **)spec->renames[i].to);
  }
  free(spec->renames);
  spec->renames = NULL;
  spec->n_renames = 0;
}

