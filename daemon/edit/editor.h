/* editor.h — edit sets: the seed's Editor as a service.
 *
 * An edit set is a batch of edits on one model, resolved (every site by any
 * spelling → a canonical site on one module instance), planned (the
 * compiler's hook order and structure key), bound to a pinned backend, with
 * an *edit tracker*: for each hook id of the backend, the edits that apply
 * there, in request order. A Forward (later a Trace) on the set runs the
 * backend with a per-request context: when hook k fires, its edits are
 * applied to the value in turn (SAVE takes a copy of the value as it is at
 * that point of the chain).
 *
 * Creation is atomic (rpc_edits.c): an edit set exists only once every edit
 * resolved, the backend compiled and a probe forward confirmed the sites
 * and the fixed dimensions of every range and operand. Nothing is ever
 * half-applied: the pristine forward is never touched and other edit sets
 * never see each other.
 *
 * Loop thread only. Sets are reference counted by the calls running on them
 * (in_flight); Drop unpins the backend at once and frees the set when the
 * last call is done. A set holds, for its whole life, a reference on its
 * model (the engine handle) and a pin on its backend (a reference that
 * survives the cache being cleared), and its model entry counts it
 * (edit_sets): Unload refuses a model with sets and the registry keeps the
 * entry while any exists, so nothing a set points to is freed under it.
 */
#ifndef NNE_EDITOR_H
#define NNE_EDITOR_H

#include <stdbool.h>
#include <stdint.h>

#include "edit/backend_cache.h"
#include "edit/compiler.h"
#include "engine/engine.h"
#include "names/names.h"
#include "registry.h"

#define NNE_EDIT_MAX_RANGES 8

typedef struct nne_edit {
  char *site_text;            /* as the client spelled it */
  nne_names_site_t site;      /* resolved */
  nne_edit_op_t op;
  nne_tensor_t *operand;      /* on the model's device, or NULL */
  double scalar;
  bool use_scalar;
  nne_dim_range_t ranges[NNE_EDIT_MAX_RANGES];
  size_t n_ranges;
  char *name;                 /* SAVE: the streamed tensor's name */
  int hook;                   /* hook id in the backend */
} nne_edit_t;

typedef struct nne_edit_set {
  char id[24];                /* "es-" + 16 hex digits */
  char label[128];
  nne_model_entry_t *entry;
  nne_model_t *model;         /* a reference, held for the set's life */
  nne_edit_t *edits;
  size_t n_edits;
  nne_compile_plan_t plan;
  nne_backend_t *backend;     /* pinned; NULL once dropped */
  nne_variant_t *variant;     /* the backend's variant (a reference) */
  /* The edit tracker, compressed rows: edits of hook k are
   * track[track_start[k] .. track_start[k+1]). */
  size_t *track_start;
  size_t *track;
  int64_t created_unix_ms;
  double compile_ms;
  bool cache_hit;
  uint64_t tensor_bytes;
  int in_flight;
  bool dropped;
  struct nne_edit_set *next;
} nne_edit_set_t;

typedef struct nne_editor {
  nne_edit_set_t *sets;
  size_t count;
} nne_editor_t;

void nne_editor_init(nne_editor_t *ed);
/* Frees every set (shutdown). */
void nne_editor_close(nne_editor_t *ed);

/* The op's name as the proto spells it ("SAVE", "ADD", ...); "?" for a
 * value outside the enum. A static string. */
const char *nne_edit_op_name(int op);

/* Frees the parts of an edit array (operands, strings) and the array. */
void nne_edits_free(nne_edit_t *edits, size_t n);

/* Builds the tracker of a set whose edits have their hook ids. */
int nne_edit_set_track(nne_edit_set_t *set, nne_err_t *err);

/* Adds a complete set (owned by the editor from now on) and pins its
 * backend. NNE_ESTATE when the model is not LOADED (it is unloading):
 * nothing is added and the caller still owns the set. */
int nne_editor_add(nne_editor_t *ed, nne_edit_set_t *set, nne_err_t *err);

/* The live (not dropped) set with that id, or NULL. */
nne_edit_set_t *nne_editor_find(nne_editor_t *ed, const char *id);

/* Drops a set: unpins its backend (freeing it when no other set uses it),
 * unlists it, and frees it now or when its last call ends. Returns the
 * backend bytes released. */
size_t nne_editor_drop(nne_editor_t *ed, nne_edit_set_t *set);

/* Writes the ids of the model's live sets into buf, comma-separated ("es-1,
 * es-2, ... and 3 more" when they do not fit); returns how many there are. */
size_t nne_editor_ids(const nne_editor_t *ed, const nne_model_entry_t *entry,
                      char *buf, size_t cap);

/* Calls running on a set. */
void nne_edit_set_hold(nne_edit_set_t *set);
void nne_edit_set_release(nne_editor_t *ed, nne_edit_set_t *set);

/* A fresh random id ("es-" + 16 hex). */
void nne_edit_set_new_id(char out[24]);

#endif /* NNE_EDITOR_H */
