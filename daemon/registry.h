/* registry.h — the model repository and the models loaded from it.
 *
 * The repository is an operator-owned directory: <repo>/<name>/model.pt (a
 * TorchScript archive: code, hence trusted) and <repo>/<name>/model.json
 * (device, dtype, family, limits); a directory holding either file is a
 * model. Clients name models; they never pass a
 * path. Names are checked against a strict alphabet before they touch the
 * file system, so "../x" is simply an unknown model.
 *
 * The registry lives on the loop thread. Loading and unloading run on the
 * loader executor (reading files and building a libtorch module takes from
 * milliseconds to minutes); their completion callbacks run on the loop.
 * Calls that use a model hold it with nne_registry_acquire/release, so an
 * Unload waits for in-flight calls and never frees a model under them.
 */
#ifndef NNE_REGISTRY_H
#define NNE_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include <limits.h>

#include "engine/engine.h"
#include "base/error.h"
#include "executor.h"
#include "edit/backend_cache.h"
#include "names/names.h"
#include "text/tokenizer.h"

#define NNE_MODEL_NAME_MAX 127

/* The numbers equal the wire enum nnedit.v1.ModelState. */
typedef enum nne_model_state {
  NNE_MODEL_AVAILABLE = 1,
  NNE_MODEL_LOADING = 2,
  NNE_MODEL_LOADED = 3,
  NNE_MODEL_UNLOADING = 4,
  NNE_MODEL_FAILED = 5,
} nne_model_state_t;

#define NNE_MODEL_MAX_EOS 8

/* What model.json says (every field optional). */
typedef struct nne_model_spec {
  char family[32];
  char export_kind[16];
  char device[32];
  nne_dtype_t dtype;       /* NNE_DTYPE_INVALID: keep the archive's */
  uint32_t max_batch;      /* 0: the daemon's cap */
  uint32_t max_seq_len;    /* 0: the daemon's cap */
  int64_t pad_token_id;    /* -1: none given (0 is used for padding) */
  uint32_t n_heads;        /* config.n_heads; 0: not given */
  char tokenizer[128];     /* "tokenizer": a file in the model's folder;
                              "": tokenizer.json when there is one */
  /* "kv_cache": the cached-decoding method and the cache's layout
   * (README "The model repository"); kv_method "" when not given. */
  char kv_method[64];
  uint32_t kv_layers, kv_heads, kv_head_dim;
  /* "eos_token_id": an id or a list of ids (at most NNE_MODEL_MAX_EOS). */
  int64_t eos[8];
  size_t n_eos;
  /* "names": user renames, {"from": "alias" | ["alias", ...]} (owned: free
   * with nne_model_spec_free). */
  nne_names_rename_t *renames;
  size_t n_renames;
} nne_model_spec_t;

/* Frees what nne_model_spec_parse allocated; the spec is zeroed. */
void nne_model_spec_free(nne_model_spec_t *spec);

typedef struct nne_model_entry nne_model_entry_t;

/* Called on the loop thread when a load or unload finished; err is NULL on
 * success. */
typedef void (*nne_registry_cb)(void *ctx, nne_model_entry_t *entry,
                                const nne_err_t *err);

typedef struct nne_registry_waiter {
  nne_registry_cb cb;
  void *ctx;
  struct nne_registry_waiter *next;
} nne_registry_waiter_t;

struct nne_model_entry {
  char name[NNE_MODEL_NAME_MAX + 1];
  nne_model_state_t state;
  nne_model_spec_t spec;   /* as read at the last load */
  nne_model_t *model;      /* engine handle while LOADED / UNLOADING */
  char device[32];         /* where it actually lives */
  nne_dtype_t dtype;
  int64_t vocab_size;
  uint32_t max_batch;      /* effective limits */
  uint32_t max_seq_len;
  int64_t pad_token_id;    /* effective: spec's or 0 */
  /* Generate reuses a KV cache: model.json's kv_cache names a method the
   * archive has (checked at load). */
  bool kv_cache;
  nne_names_t *names;      /* standard names and aliases while LOADED */
  /* The model's tokenizer while LOADED, or NULL; tokenizer_file is where it
   * came from (or, without one, where it was looked for). */
  nne_tokenizer_t *tokenizer;
  char tokenizer_file[NNE_MODEL_NAME_MAX + 160]; /* "<model>/tokenizer.json",
                              relative to the repository: what clients see */
  /* Compiled backends (hooked copies of forward) by structure. */
  nne_backend_cache_t backends;
  int edit_sets;           /* edit sets of this model (they pin backends) */
  double load_ms;
  char error[NNE_ERR_MSG_MAX]; /* why the last load failed */
  int in_flight;           /* calls holding the model */
  uint64_t kv_bytes;       /* KV caches of its running Generates */
  bool present;            /* seen in the repository at the last scan */
  nne_registry_waiter_t *waiters; /* for the load/unload in progress */
  nne_model_entry_t *next;
};

typedef struct nne_registry {
  char *repo;              /* absolute path of the repository */
  const char *device_override; /* --device, or NULL */
  uint32_t max_batch, max_seq_len; /* the daemon's hard caps */
  nne_executor_t *loader;
  const nne_family_set_t *families; /* family name maps (borrowed) */
  size_t backend_cache_bytes;  /* per model (--backend-cache-bytes) */
  nne_model_entry_t *entries; /* sorted by name */
  int busy;                /* load/unload jobs not yet completed */
  void (*on_idle)(void *ctx); /* called when busy drops to 0 */
  void *on_idle_ctx;
  /* Called (loop thread) after a model's state changed, and once for each
   * model a scan finds; the daemon keeps per-model health with it. */
  void (*on_state)(void *ctx, const nne_model_entry_t *entry);
  void *on_state_ctx;
} nne_registry_t;

/* Opens the repository (which must be a readable directory) and scans it.
 * The registry copies repo; device_override must outlive it. */
int nne_registry_init(nne_registry_t *reg, const char *repo,
                      const char *device_override, uint32_t max_batch,
                      uint32_t max_seq_len, nne_executor_t *loader,
                      nne_err_t *err);

/* Unreferences every loaded model and frees the entries. Call when no job
 * is in flight. */
void nne_registry_close(nne_registry_t *reg);

/* Re-reads the repository directory: new model directories appear as
 * AVAILABLE, vanished ones that are not loaded disappear. */
int nne_registry_scan(nne_registry_t *reg, nne_err_t *err);

/* Checks a client-supplied name: 1..127 characters of [A-Za-z0-9._-], not
 * starting with '.'. NNE_EINVAL names the field (`field`, e.g. "name"). */
int nne_registry_check_name(const char *field, const char *name,
                            nne_err_t *err);

/* Finds a model by name (rescanning once if it is not known yet).
 * NNE_EINVAL for a malformed name, NNE_ENOTFOUND naming it otherwise. */
int nne_registry_lookup(nne_registry_t *reg, const char *field,
                        const char *name, nne_model_entry_t **out,
                        nne_err_t *err);

/* Loads the model, or joins the load in progress. device/dtype override
 * model.json and --device when non-empty / valid. cb runs on the loop
 * thread when the model is LOADED or the load FAILED; if the model already
 * is LOADED as asked, cb runs synchronously before this returns; LOADED in
 * another dtype or on another device is NNE_ESTATE saying so (unload
 * first). Returns an error (and never calls cb) when the load cannot
 * start. */
int nne_registry_load(nne_registry_t *reg, nne_model_entry_t *entry,
                      const char *device, nne_dtype_t dtype, nne_registry_cb cb,
                      void *ctx, nne_err_t *err);

/* Unloads: refuses new work at once, frees the model when the last call
 * holding it releases it, then runs cb. A model that is not loaded is
 * already unloaded (cb runs synchronously). */
int nne_registry_unload(nne_registry_t *reg, nne_model_entry_t *entry,
                        nne_registry_cb cb, void *ctx, nne_err_t *err);

/* Takes a model for a call: NNE_ESTATE (with a message saying what to do)
 * unless it is LOADED. On success the caller holds the entry and an engine
 * reference (*model) until nne_registry_release. */
int nne_registry_acquire(nne_registry_t *reg, nne_model_entry_t *entry,
                         nne_model_t **model, nne_err_t *err);
/* The memory figures of every device a loaded model is on, each once, after
 * "cpu" when with_cpu; at most max of them into out. A device whose figures
 * cannot be read is left out (they are advisory). Returns how many. */
size_t nne_registry_devices(const nne_registry_t *reg, bool with_cpu,
                            nne_device_memory_t *out, size_t max);

void nne_registry_release(nne_registry_t *reg, nne_model_entry_t *entry,
                          nne_model_t *model);

/* A device a client asked for, checked and made canonical ("cuda" →
 * "cuda:0") into canon; messages start with `field`. */
int nne_registry_check_device(const char *field, const char *device,
                              char *canon, size_t cap, nne_err_t *err);

/* A dtype a model can be loaded in: float32, float16, bfloat16, float64.
 * The message names the dtype ("dtype: int64 is not a floating type..."). */
int nne_registry_check_dtype(const char *field, nne_dtype_t dt,
                             nne_err_t *err);

/* Parses a model.json text (exposed for unit tests). `where` prefixes
 * messages ("gpt2/model.json"). */
int nne_model_spec_parse(const char *text, size_t len, const char *where,
                         nne_model_spec_t *spec, nne_err_t *err);

#endif /* NNE_REGISTRY_H */
