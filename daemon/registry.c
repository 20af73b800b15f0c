/* registry.c — see registry.h. */
#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "base/fault.h"
#include "base/log.h"
#include "names/check.h"

/* model.json is a few hundred bytes; anything far larger is a mistake. */
#define NNE_MODEL_JSON_MAX (256u << 10)

/* Every state change goes through here: the daemon's per-model health
 * follows it (on_state). */
static void set_state(nne_registry_t *reg, nne_model_entry_t *e,
                      nne_model_state_t st) {
  e->state = st;
  if (reg->on_state != NULL)
    reg->on_state(reg->on_state_ctx, e);
}

/* ---- names ---------------------------------------------------------------- */

int nne_registry_check_name(const char *field, const char *name,
                            nne_err_t *err) {
  size_t i, n = strlen(name);

  if (n == 0)
    return nne_err_set(err, NNE_EINVAL, "%s: a model name is required", field);
  if (n > NNE_MODEL_NAME_MAX)
    return nne_err_set(err, NNE_EINVAL,
                       "%s: model name is %zu characters (at most %d)", field,
                       n, NNE_MODEL_NAME_MAX);
  if (name[0] == '.')
    return nne_err_set(err, NNE_EINVAL, "%s: model name '%s' starts with '.'",
                       field, name);
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return nne_err_set(err, NNE_EINVAL,
                         "%s: model name has character 0x%02x at %zu (allowed: "
                         "letters, digits, '.', '_', '-')",
                         field, c, i);
  }
  return 0;
}

/* ---- entries -------------------------------------------------------------- */

static void variants_clear(nne_model_entry_t *e);

static nne_model_entry_t *find(nne_registry_t *reg, const char *name) {
  nne_model_entry_t *e;
  for (e = reg->entries; e != NULL; e = e->next)
    if (strcmp(e->name, name) == 0)
      return e;
  return NULL;
}

static nne_model_entry_t *insert(nne_registry_t *reg, const char *name) {
  nne_model_entry_t **pp = &reg->entries, *e;

  while (*pp != NULL && strcmp((*pp)->name, name) < 0)
    pp = &(*pp)->next;
  e = calloc(1, sizeof *e);
  if (e == NULL)
    return NULL;
  /* Names were checked to be at most NNE_MODEL_NAME_MAX long. */
  memcpy(e->name, name, strnlen(name, NNE_MODEL_NAME_MAX));
  e->state = NNE_MODEL_AVAILABLE;
  e->spec.pad_token_id = -1;
  e->next = *pp;
  *pp = e;
  return e;
}

static bool is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int nne_registry_scan(nne_registry_t *reg, nne_err_t *err) {
  DIR *d;
  struct dirent *de;
  nne_model_entry_t **pp, *e;
  char path[PATH_MAX];

  d = opendir(reg->repo);
  if (d == NULL)
    return nne_err_set(err, NNE_EIO, "model repository %s: %s", reg->repo,
                       strerror(errno));
  for (e = reg->entries; e != NULL; e = e->next)
    e->present = false;
  while ((de = readdir(d)) != NULL) {
    if (nne_registry_check_name("name", de->d_name, NULL) != 0)
      continue; /* ".", "..", hidden and oddly named entries are not models */
    /* A directory with either file is a model: one whose model.pt is
     * missing is listed, and its Load says what is missing. */
    if ((size_t)snprintf(path, sizeof path, "%s/%s/model.pt", reg->repo,
                         de->d_name) >= sizeof path)
      continue;
    if (!is_file(path)) {
      snprintf(path, sizeof path, "%s/%s/model.json", reg->repo, de->d_name);
      if (!is_file(path))
        continue;
    }
    e = find(reg, de->d_name);
    if (e == NULL) {
      e = insert(reg, de->d_name);
      if (e == NULL) {
        closedir(d);
        return nne_err_set(err, NNE_ENOMEM, "out of memory");
      }
      if (reg->on_state != NULL)
        reg->on_state(reg->on_state_ctx, e);
    }
    e->present = true;
  }
  closedir(d);
  /* Forget models that vanished, unless they are in use. */
  pp = &reg->entries;
  while ((e = *pp) != NULL) {
    if (!e->present &&
        (e->state == NNE_MODEL_AVAILABLE || e->state == NNE_MODEL_FAILED) &&
        e->in_flight == 0 && e->edit_sets == 0 && e->waiters == NULL) {
      *pp = e->next;
      nne_model_spec_free(&e->spec);
      free(e);
    } else {
      pp = &e->next;
    }
  }
  return 0;
}

int nne_registry_init(nne_registry_t *reg, const char *repo,
                      const char *device_override, uint32_t max_batch,
                      uint32_t max_seq_len, nne_executor_t *loader,
                      nne_err_t *err) {
  char abs[PATH_MAX];
  struct stat st;

  memset(reg, 0, sizeof *reg);
  if (stat(repo, &st) != 0)
    return nne_err_set(err, NNE_EIO, "--model-repo %s: %s", repo,
                       strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return nne_err_set(err, NNE_EINVAL, "--model-repo %s: not a directory",
                       repo);
  if (realpath(repo, abs) == NULL)
    return nne_err_set(err, NNE_EIO, "--model-repo %s: %s", repo,
                       strerror(errno));
  reg->repo = strdup(abs);
  if (reg->repo == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  reg->device_override = device_override;
  reg->max_batch = max_batch;
  reg->max_seq_len = max_seq_len;
  reg->loader = loader;
  if (nne_registry_scan(reg, err) != 0) {
    nne_registry_close(reg);
    return err != NULL ? err->code : NNE_EIO;
  }
  return 0;
}

void nne_registry_close(nne_registry_t *reg) {
  nne_model_entry_t *e = reg->entries;
  while (e != NULL) {
    nne_model_entry_t *next = e->next;
    variants_clear(e);
    nne_model_unref(e->model);
    nne_names_free(e->names);
    nne_tokenizer_free(e->tokenizer);
    nne_model_spec_free(&e->spec);
    while (e->waiters != NULL) {
      nne_registry_waiter_t *w = e->waiters;
      e->waiters = w->next;
      free(w);
    }
    free(e);
    e = next;
  }
  reg->entries = NULL;
  free(reg->repo);
  reg->repo = NULL;
}

static int available_list(nne_registry_t *reg, char *buf, size_t cap) {
  nne_model_entry_t *e;
  size_t n = 0;
  buf[0] = '\0';
  for (e = reg->entries; e != NULL && n + 4 < cap; e = e->next) {
    int k = snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", e->name);
    if (k < 0 || (size_t)k >= cap - n) {
      snprintf(buf + n, cap - n, ", ...");
      break;
    }
    n += (size_t)k;
  }
  return (int)n;
}

int nne_registry_lookup(nne_registry_t *reg, const char *field,
                        const char *name, nne_model_entry_t **out,
                        nne_err_t *err) {
  nne_model_entry_t *e;
  char avail[512];
  int rc;

  rc = nne_registry_check_name(field, name, err);
  if (rc != 0)
    return rc;
  e = find(reg, name);
  if (e == NULL) {
    /* A model may have been dropped into the repository since start. */
    if (nne_registry_scan(reg, NULL) == 0)
      e = find(reg, name);
  }
  if (e == NULL) {
    available_list(reg, avail, sizeof avail);
    return nne_err_set(err, NNE_ENOTFOUND,
                       "%s: model '%s' is not in the model repository "
                       "(available: %s)",
                       field, name, avail[0] ? avail : "none");
  }
  *out = e;
  return 0;
}

/* ---- loading -------------------------------------------------------------- */

typedef struct load_job {
  nne_job_t job;
  nne_registry_t *reg;
  nne_model_entry_t *entry;
  char dir[PATH_MAX];
  char device[32];         /* requested; "" = from model.json or cpu */
  nne_dtype_t dtype;       /* requested; INVALID = from model.json */
  /* results */
  nne_model_spec_t spec;
  nne_model_t *model;
  nne_names_t *names;
  nne_tokenizer_t *tokenizer;
  char tokenizer_file[NNE_MODEL_NAME_MAX + 160]; /* as the entry's */
  int64_t vocab;
  nne_err_t err;
  int rc;
} load_job_t;

static void notify(nne_registry_t *reg, nne_model_entry_t *e,
                   const nne_err_t *err) {
  nne_registry_waiter_t *w = e->waiters;
  e->waiters = NULL;
  while (w != NULL) {
    nne_registry_waiter_t *next = w->next;
    w->cb(w->ctx, e, err);
    free(w);
    w = next;
  }
  (void)reg;
}

static void job_finished(nne_registry_t *reg) {
  if (--reg->busy == 0 && reg->on_idle != NULL)
    reg->on_idle(reg->on_idle_ctx);
}

static int read_file(const char *path, char **out, size_t *len, size_t max,
                     nne_err_t *err) {
  FILE *f = fopen(path, "rb");
  char *buf;
  size_t n;

  if (f == NULL)
    return nne_err_set(err, NNE_EIO, "%s: %s", path, strerror(errno));
  buf = malloc(max + 1);
  if (buf == NULL) {
    fclose(f);
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  n = fread(buf, 1, max + 1, f);
  if (ferror(f)) {
    fclose(f);
    free(buf);
    return nne_err_set(err, NNE_EIO, "%s: read error", path);
  }
  fclose(f);
  if (n > max) {
    free(buf);
    return nne_err_set(err, NNE_EINVAL, "%s: larger than %zu bytes", path, max);
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return 0;
}

/* The model's standard names: family detection (or model.json's family),
 * user renames, then load-time validation of every name against a small
 * forward. Names that fail are marked unavailable, not fatal. */
static int build_names(load_job_t *lj) {
  size_t i, n = nne_model_module_count(lj->model);
  nne_names_module_t *mods = calloc(n ? n : 1, sizeof *mods);
  nne_err_t verr;
  int rc;

  if (mods == NULL)
    return nne_err_set(&lj->err, NNE_ENOMEM, "out of memory");
  for (i = 0; i < n; i++) {
    const nne_module_info_t *mi = nne_model_module(lj->model, i);
    mods[i].path = mi->path;
    mods[i].class_name = mi->class_name;
    mods[i].parent = mi->parent;
  }
  rc = nne_names_build(lj->reg->families, lj->spec.family, mods, n,
                       lj->spec.renames, lj->spec.n_renames, &lj->names,
                       &verr);
  if (rc == NNE_EINVAL && lj->spec.family[0] != '\0') {
    /* A family we have no map for (a custom architecture) must not keep
     * the model from loading: detect instead, and say so. */
    rc = nne_names_build(lj->reg->families, NULL, mods, n, lj->spec.renames,
                         lj->spec.n_renames, &lj->names, &lj->err);
    if (rc == 0)
      nne_names_add_warning(lj->names, "model.json: %s; detected '%s' instead",
                            verr.msg,
                            nne_names_family(lj->names)[0]
                                ? nne_names_family(lj->names)
                                : "no family");
  } else if (rc != 0) {
    lj->err = verr;
  }
  free(mods);
  if (rc != 0) {
    nne_err_prefix(&lj->err, "model.json");
    return rc;
  }
  if (nne_validate_names(lj->model, lj->names, lj->vocab,
                         (int)lj->spec.n_heads, &verr) != 0) {
    /* The model itself ran; only the check could not. Keep the names and
     * say so, to the log and to whoever asks about the model. */
    nne_log_warn("model %s: standard names not validated: %s",
                 lj->entry->name, verr.msg);
    nne_names_add_warning(lj->names, "standard names not validated: %s",
                          verr.msg);
  }
  return 0;
}

/* The tokenizer model.json names, or tokenizer.json when there is one: a
 * file that is there and does not load fails the load (its JSON path in the
 * message); no file is fine (the model takes ids only). */
static int load_tokenizer(load_job_t *lj) {
  const char *file = lj->spec.tokenizer[0] ? lj->spec.tokenizer
                                           : "tokenizer.json";
  char path[PATH_MAX + 160];
  int rc;
  snprintf(path, sizeof path, "%s/%s", lj->dir, file);
  snprintf(lj->tokenizer_file, sizeof lj->tokenizer_file, "%s/%s",
           lj->entry->name, file);
  if (!lj->spec.tokenizer[0] && !is_file(path))
    return 0;
  rc = nne_tokenizer_load_file(path, &lj->tokenizer, &lj->err);
  if (rc != 0)
    nne_err_prefix(&lj->err, "%s", lj->tokenizer_file);
  return rc;
}

/* On the loader thread: read model.json, load the archive, and measure the
 * vocabulary with a one-token forward (which also proves the model runs). */

/* model.json's kv_cache against the archive: the method exists and one
 * cached step on one token with an empty cache returns logits and one
 * cache tensor per layer, key and value, of the declared layout. */
static int check_kv_cache(load_job_t *lj) {
  const nne_model_spec_t *sp = &lj->spec;
  size_t n = 2u * sp->kv_layers, i;
  int64_t shape[4] = {1, sp->kv_heads, 0, sp->kv_head_dim};
  static const int64_t one[2] = {1, 1};
  static const int64_t zero = 0, one_v = 1;
  nne_tensor_t *ids = NULL, *mask = NULL, *pos = NULL, *logits = NULL;
  nne_tensor_t **past = calloc(n, sizeof *past);
  nne_tensor_t **present = calloc(n, sizeof *present);
  int rc = past == NULL || present == NULL
               ? nne_err_set(&lj->err, NNE_ENOMEM, "out of memory")
               : 0;

  if (rc == 0 && !nne_model_has_method(lj->model, sp->kv_method))
    rc = nne_err_set(&lj->err, NNE_EINVAL,
                     "model.json \"kv_cache\": the archive has no method "
                     "'%s'",
                     sp->kv_method);
  if (rc == 0)
    rc = nne_tensor_from_host(NNE_DTYPE_I64, one, 2, &zero, &ids, &lj->err);
  if (rc == 0)
    rc = nne_tensor_from_host(NNE_DTYPE_I64, one, 2, &one_v, &mask, &lj->err);
  if (rc == 0)
    rc = nne_tensor_from_host(NNE_DTYPE_I64, one, 2, &zero, &pos, &lj->err);
  for (i = 0; rc == 0 && i < n; i++)
    rc = nne_tensor_zeros(nne_model_dtype(lj->model), shape, 4,
                          nne_model_device(lj->model), &past[i], &lj->err);
  if (rc == 0)
    rc = nne_model_forward_cached(lj->model, sp->kv_method, ids, mask, pos,
                                  past, n, &logits, present, &lj->err);
  if (rc != 0 && lj->err.msg[0] != '\0' &&
      strncmp(lj->err.msg, "model.json", 10) != 0)
    nne_err_prefix(&lj->err, "model.json \"kv_cache\": a one-token step "
                             "through '%s' failed",
                   sp->kv_method);
  for (i = 0; rc == 0 && i < n; i++) {
    const int64_t *s = nne_tensor_shape(present[i]);
    if (nne_tensor_ndim(present[i]) != 4 || s[1] != sp->kv_heads ||
        s[2] != 1 || s[3] != sp->kv_head_dim)
      rc = nne_err_set(&lj->err, NNE_EINVAL,
                       "model.json \"kv_cache\": present[%zu] of the "
                       "one-token step is not [1, %u, 1, %u] (kv_heads, "
                       "head_dim)",
                       i, sp->kv_heads, sp->kv_head_dim);
  }
  if (rc == 0 && nne_tensor_shape(logits)[2] != lj->vocab)
    rc = nne_err_set(&lj->err, NNE_EINVAL,
                     "model.json \"kv_cache\": '%s' gives %lld logits, "
                     "forward %lld",
                     sp->kv_method, (long long)nne_tensor_shape(logits)[2],
                     (long long)lj->vocab);
  for (i = 0; i < n; i++) {
    if (past != NULL)
      nne_tensor_unref(past[i]);
    if (present != NULL)
      nne_tensor_unref(present[i]);
  }
  free(past);
  free(present);
  nne_tensor_unref(ids);
  nne_tensor_unref(mask);
  nne_tensor_unref(pos);
  nne_tensor_unref(logits);
  return rc;
}

static void load_work(nne_job_t *job) {
  load_job_t *lj = (load_job_t *)job;
  char path[PATH_MAX + 32], where[NNE_MODEL_NAME_MAX + 16];
  char *text = NULL;
  size_t len = 0;
  const char *device;
  nne_dtype_t dtype;
  bool traced_converted;
  nne_tensor_t *ids = NULL, *logits = NULL;
  static const int64_t one[2] = {1, 1};
  static const int64_t zero_id = 0;

  lj->rc = 0;
  snprintf(where, sizeof where, "%s/model.json", lj->entry->name);
  snprintf(path, sizeof path, "%s/model.json", lj->dir);
  if (is_file(path)) {
    lj->rc = read_file(path, &text, &len, NNE_MODEL_JSON_MAX, &lj->err);
    if (lj->rc == 0)
      lj->rc = nne_model_spec_parse(text, len, where, &lj->spec, &lj->err);
    free(text);
    if (lj->rc != 0)
      return;
  } else {
    memset(&lj->spec, 0, sizeof lj->spec);
    lj->spec.pad_token_id = -1;
  }
  /* Precedence: the Load request, then --device, then model.json. */
  device = lj->device[0] ? lj->device
           : lj->reg->device_override ? lj->reg->device_override
           : lj->spec.device[0]       ? lj->spec.device
                                      : "cpu";
  dtype = lj->dtype != NNE_DTYPE_INVALID ? lj->dtype : lj->spec.dtype;
  snprintf(path, sizeof path, "%s/model.pt", lj->dir);
  lj->rc = nne_model_load(path, device, dtype, &lj->model, &lj->err);
  if (lj->rc != 0)
    return;
  /* Traced archives bake dtype and device constants into their graphs: say
   * so when converting one fails below. */
  traced_converted = strcmp(lj->spec.export_kind, "trace") == 0 &&
                     ((dtype != NNE_DTYPE_INVALID && dtype != lj->spec.dtype) ||
                      strcmp(device, lj->spec.device[0] ? lj->spec.device
                                                        : "cpu") != 0);
  lj->rc = nne_tensor_from_host(NNE_DTYPE_I64, one, 2, &zero_id, &ids,
                                &lj->err);
  if (lj->rc == 0)
    lj->rc = nne_model_forward(lj->model, ids, NULL, &logits, &lj->err);
  if (lj->rc == 0) {
    if (nne_tensor_ndim(logits) != 3 || nne_tensor_shape(logits)[0] != 1 ||
        nne_tensor_shape(logits)[1] != 1 || nne_tensor_shape(logits)[2] < 1) {
      const int64_t *s = nne_tensor_shape(logits);
      lj->rc = nne_err_set(
          &lj->err, NNE_EINVAL,
          "forward on one token returned a %d-d tensor (%lld, ...), expected "
          "logits [batch, seq, vocab]",
          nne_tensor_ndim(logits), (long long)(nne_tensor_ndim(logits) ? s[0] : 0));
    } else {
      lj->vocab = nne_tensor_shape(logits)[2];
    }
  } else {
    nne_err_prefix(&lj->err, "test forward on one token failed");
    if (traced_converted) {
      size_t n = strlen(lj->err.msg);
      snprintf(lj->err.msg + n, sizeof lj->err.msg - n,
               " (a traced archive keeps the dtype and device it was traced "
               "with; load it as exported)");
    }
  }
  nne_tensor_unref(ids);
  nne_tensor_unref(logits);
  if (lj->rc == 0 && lj->spec.kv_method[0] != '\0')
    lj->rc = check_kv_cache(lj);
  if (lj->rc == 0 && NNE_FAULT(NNE_FAULT_MODEL_LOAD))
    lj->rc = nne_err_set(&lj->err, NNE_EINTERNAL,
                         "after the archive loaded: injected fault");
  if (lj->rc == 0 && lj->reg->families != NULL)
    lj->rc = build_names(lj);
  if (lj->rc == 0)
    lj->rc = load_tokenizer(lj);
  if (lj->rc != 0) {
    nne_tokenizer_free(lj->tokenizer);
    lj->tokenizer = NULL;
    nne_names_free(lj->names);
    lj->names = NULL;
    nne_model_unref(lj->model);
    lj->model = NULL;
  }
}

static uint32_t min_nonzero(uint32_t cap, uint32_t v) {
  return v != 0 && v < cap ? v : cap;
}

static void load_done(nne_job_t *job) {
  load_job_t *lj = (load_job_t *)job;
  nne_registry_t *reg = lj->reg;
  nne_model_entry_t *e = lj->entry;
  double ms = (double)(job->t_end_ns - job->t_start_ns) / 1e6;

  if (lj->rc == 0) {
    e->model = lj->model;
    nne_model_spec_free(&e->spec);
    e->spec = lj->spec; /* the entry owns it now */
    nne_names_free(e->names);
    e->names = lj->names;
    nne_tokenizer_free(e->tokenizer);
    e->tokenizer = lj->tokenizer;
    snprintf(e->tokenizer_file, sizeof e->tokenizer_file, "%s",
             lj->tokenizer_file);
    snprintf(e->device, sizeof e->device, "%s", nne_model_device(lj->model));
    e->dtype = nne_model_dtype(lj->model);
    e->vocab_size = lj->vocab;
    e->kv_cache = e->spec.kv_method[0] != '\0';
    nne_backend_cache_init(&e->backends, reg->backend_cache_bytes);
    e->max_batch = min_nonzero(reg->max_batch, lj->spec.max_batch);
    e->max_seq_len = min_nonzero(reg->max_seq_len, lj->spec.max_seq_len);
    e->pad_token_id = lj->spec.pad_token_id >= 0 ? lj->spec.pad_token_id : 0;
    e->load_ms = ms;
    e->error[0] = '\0';
    nne_log_info("model %s loaded on %s (%s, vocab %lld, %zu modules) in "
                 "%.1f ms",
                 e->name, e->device, nne_dtype_name(e->dtype),
                 (long long)e->vocab_size, nne_model_module_count(e->model), ms);
    if (e->names != NULL) {
      size_t i, nw = nne_names_warning_count(e->names);
      const char *fam = nne_names_family(e->names);
      nne_log_info("model %s: family %s (%s), %d layers", e->name,
                   fam[0] ? fam : "none", nne_names_family_reason(e->names),
                   nne_names_layer_count(e->names));
      /* A user alias that matches nothing is said, never swallowed. */
      for (i = 0; i < nw; i++)
        nne_log_warn("model %s: %s", e->name, nne_names_warning(e->names, i));
    }
    /* Last: whoever the state change tells (health, restores) sees the
     * entry whole. */
    set_state(reg, e, NNE_MODEL_LOADED);
    notify(reg, e, NULL);
  } else {
    set_state(reg, e, NNE_MODEL_FAILED);
    nne_model_spec_free(&lj->spec);
    snprintf(e->error, sizeof e->error, "%s", lj->err.msg);
    nne_log_error("model %s failed to load: %s", e->name, lj->err.msg);
    notify(reg, e, &lj->err);
  }
  free(lj);
  job_finished(reg);
}

static int add_waiter(nne_model_entry_t *e, nne_registry_cb cb, void *ctx,
                      nne_err_t *err) {
  nne_registry_waiter_t *w, **pp;
  if (cb == NULL)
    return 0;
  w = calloc(1, sizeof *w);
  if (w == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  w->cb = cb;
  w->ctx = ctx;
  for (pp = &e->waiters; *pp != NULL; pp = &(*pp)->next)
    ;
  *pp = w;
  return 0;
}

int nne_registry_load(nne_registry_t *reg, nne_model_entry_t *e,
                      const char *device, nne_dtype_t dtype, nne_registry_cb cb,
                      void *ctx, nne_err_t *err) {
  load_job_t *lj;
  int rc;

  switch (e->state) {
  case NNE_MODEL_LOADED:
    /* Loaded already: fine if it is what was asked for; a reload in
     * another dtype or on another device is not done behind the caller's
     * back (edit sets and running calls hold this copy): say what to do. */
    if ((dtype != NNE_DTYPE_INVALID && dtype != e->dtype) ||
        (device != NULL && device[0] != '\0' && strcmp(device, e->device)))
      return nne_err_set(err, NNE_ESTATE,
                         "model '%s' is loaded as %s on %s; unload it first "
                         "to load it as %s on %s",
                         e->name, nne_dtype_name(e->dtype), e->device,
                         nne_dtype_name(dtype != NNE_DTYPE_INVALID ? dtype
                                                                   : e->dtype),
                         device != NULL && device[0] != '\0' ? device
                                                             : e->device);
    if (cb != NULL)
      cb(ctx, e, NULL);
    return 0;
  case NNE_MODEL_LOADING:
    return add_waiter(e, cb, ctx, err);
  case NNE_MODEL_UNLOADING:
    return nne_err_set(err, NNE_ESTATE,
                       "model '%s' is being unloaded; load it again once "
                       "Unload has returned",
                       e->name);
  case NNE_MODEL_AVAILABLE:
  case NNE_MODEL_FAILED:
    break;
  }
  if (device != NULL && device[0] != '\0' && strlen(device) >= 32)
    return nne_err_set(err, NNE_EINVAL, "device: '%s' is too long", device);
  lj = calloc(1, sizeof *lj);
  if (lj == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  lj->job.work = load_work;
  lj->job.done = load_done;
  lj->reg = reg;
  lj->entry = e;
  snprintf(lj->dir, sizeof lj->dir, "%s/%s", reg->repo, e->name);
  if (device != NULL)
    snprintf(lj->device, sizeof lj->device, "%s", device);
  lj->dtype = dtype;
  rc = add_waiter(e, cb, ctx, err);
  if (rc == 0)
    rc = nne_executor_submit(reg->loader, &lj->job, err);
  if (rc != 0) {
    /* Nothing started: drop the waiter we may have added. */
    if (e->waiters != NULL && cb != NULL) {
      nne_registry_waiter_t **pp = &e->waiters;
      while ((*pp)->next != NULL)
        pp = &(*pp)->next;
      free(*pp);
      *pp = NULL;
    }
    free(lj);
    return rc;
  }
  set_state(reg, e, NNE_MODEL_LOADING);
  reg->busy++;
  nne_log_info("loading model %s", e->name);
  return 0;
}

/* ---- unloading ------------------------------------------------------------ */

typedef struct unload_job {
  nne_job_t job;
  nne_registry_t *reg;
  nne_model_entry_t *entry;
  nne_model_t *model;
} unload_job_t;

/* Freeing a large model returns gigabytes to the allocator: off the loop. */
static void unload_work(nne_job_t *job) {
  unload_job_t *uj = (unload_job_t *)job;
  nne_model_unref(uj->model);
}

static void unload_done(nne_job_t *job) {
  unload_job_t *uj = (unload_job_t *)job;
  nne_model_entry_t *e = uj->entry;
  nne_registry_t *reg = uj->reg;

  set_state(reg, e, NNE_MODEL_AVAILABLE);
  nne_log_info("model %s unloaded", e->name);
  free(uj);
  notify(reg, e, NULL);
  job_finished(reg);
}

static void start_unload(nne_registry_t *reg, nne_model_entry_t *e) {
  unload_job_t *uj = calloc(1, sizeof *uj);
  nne_err_t err;

  /* Unload refuses models with edit sets and the editor creates none on an
   * unloading model; were one to exist anyway, it keeps its own references
   * on the model and its backend, so it stays safe to read and drop. */
  if (e->edit_sets > 0)
    nne_log_error("model %s unloads with %d edit sets (a bug): they keep "
                  "their own references",
                  e->name, e->edit_sets);
  if (uj != NULL) {
    uj->job.work = unload_work;
    uj->job.done = unload_done;
    uj->reg = reg;
    uj->entry = e;
    uj->model = e->model;
    e->model = NULL;
    nne_names_free(e->names);
    e->names = NULL;
    nne_tokenizer_free(e->tokenizer);
    e->tokenizer = NULL;
    variants_clear(e);
    if (nne_executor_submit(reg->loader, &uj->job, &err) == 0) {
      reg->busy++;
      return;
    }
    e->model = uj->model;
    free(uj);
  }
  /* The loader refused (full or stopping): free it here rather than leak. */
  nne_model_unref(e->model);
  e->model = NULL;
  nne_names_free(e->names);
  e->names = NULL;
  nne_tokenizer_free(e->tokenizer);
  e->tokenizer = NULL;
  variants_clear(e);
  set_state(reg, e, NNE_MODEL_AVAILABLE);
  notify(reg, e, NULL);
}

int nne_registry_unload(nne_registry_t *reg, nne_model_entry_t *e,
                        nne_registry_cb cb, void *ctx, nne_err_t *err) {
  int rc;

  switch (e->state) {
  case NNE_MODEL_AVAILABLE:
  case NNE_MODEL_FAILED:
    if (cb != NULL)
      cb(ctx, e, NULL);
    return 0;
  case NNE_MODEL_LOADING:
    return nne_err_set(err, NNE_ESTATE,
                       "model '%s' is loading; unload it once Load has "
                       "returned",
                       e->name);
  case NNE_MODEL_UNLOADING:
    return add_waiter(e, cb, ctx, err);
  case NNE_MODEL_LOADED:
    break;
  }
  if (e->edit_sets > 0)
    return nne_err_set(err, NNE_ESTATE,
                       "model '%s' has %d edit set%s; drop them first "
                       "(Edits.Drop)",
                       e->name, e->edit_sets, e->edit_sets == 1 ? "" : "s");
  rc = add_waiter(e, cb, ctx, err);
  if (rc != 0)
    return rc;
  set_state(reg, e, NNE_MODEL_UNLOADING);
  nne_log_info("unloading model %s (%d calls in flight)", e->name,
               e->in_flight);
  if (e->in_flight == 0)
    start_unload(reg, e);
  return 0;
}

/* ---- backends ------------------------------------------------------------- */

static void variants_clear(nne_model_entry_t *e) {
  nne_backend_cache_clear(&e->backends);
}

/* ---- use by calls --------------------------------------------------------- */

int nne_registry_acquire(nne_registry_t *reg, nne_model_entry_t *e,
                         nne_model_t **model, nne_err_t *err) {
  (void)reg;
  switch (e->state) {
  case NNE_MODEL_LOADED:
    e->in_flight++;
    *model = nne_model_ref(e->model);
    return 0;
  case NNE_MODEL_AVAILABLE:
    return nne_err_set(err, NNE_ESTATE,
                       "model '%s' is not loaded; call Models.Load first",
                       e->name);
  case NNE_MODEL_LOADING:
    return nne_err_set(err, NNE_EUNAVAIL,
                       "model '%s' is still loading; retry when Load returns",
                       e->name);
  case NNE_MODEL_UNLOADING:
    return nne_err_set(err, NNE_ESTATE, "model '%s' is being unloaded",
                       e->name);
  case NNE_MODEL_FAILED:
    return nne_err_set(err, NNE_ESTATE,
                       "model '%s' failed to load (%s); fix it and Load again",
                       e->name, e->error);
  }
  return nne_err_set(err, NNE_EINTERNAL, "model '%s' in unknown state",
                     e->name);
}

void nne_registry_release(nne_registry_t *reg, nne_model_entry_t *e,
                          nne_model_t *model) {
  nne_model_unref(model);
  if (--e->in_flight == 0 && e->state == NNE_MODEL_UNLOADING &&
      e->model != NULL)
    start_unload(reg, e);
}

int nne_registry_check_device(const char *field, const char *device,
                              char *canon, size_t cap, nne_err_t *err) {
  int rc = nne_engine_device_parse(device, canon, cap, err);
  if (rc != 0)
    nne_err_prefix(err, "%s", field);
  return rc;
}

int nne_registry_check_dtype(const char *field, nne_dtype_t dt,
                             nne_err_t *err) {
  const char *name = nne_dtype_name(dt);
  if (dt == NNE_DTYPE_F32 || dt == NNE_DTYPE_F16 || dt == NNE_DTYPE_BF16 ||
      dt == NNE_DTYPE_F64)
    return 0;
  if (nne_dtype_size(dt) == 0)
    return nne_err_set(err, NNE_EINVAL, "%s: %d is not a known dtype", field,
                       (int)dt);
  return nne_err_set(err, NNE_EINVAL,
                     "%s: %s is not a floating type a model can be loaded in "
                     "(float32, float16, bfloat16, float64)",
                     field, name);
}

size_t nne_registry_devices(const nne_registry_t *reg, bool with_cpu,
                            nne_device_memory_t *out, size_t max) {
  const nne_model_entry_t *e;
  size_t n = 0, j;
  nne_err_t err;
  if (with_cpu && max > 0 && nne_engine_device_memory("cpu", &out[0], &err) == 0)
    n = 1;
  for (e = reg->entries; e != NULL && n < max; e = e->next) {
    bool seen = false;
    if (e->model == NULL)
      continue;
    for (j = 0; j < n && !seen; j++)
      seen = strcmp(out[j].device, e->device) == 0;
    if (!seen && nne_engine_device_memory(e->device, &out[n], &err) == 0)
      n++;
  }
  return n;
}
