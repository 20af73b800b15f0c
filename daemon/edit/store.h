/* store.h — edit sets on disk (--state-dir), so they survive a restart.
 *
 * An edit set is kept as the ApplyEditsRequest that made it (model, label,
 * edits with their operands: everything Apply needs to make it again, and
 * nothing derived that a new build of nneditd might derive differently),
 * with the id and creation time it was given:
 *
 *   DIR/sets/<model>/<id>.es
 *     "nnedit-edit-set 1 <id> <created_unix_ms> <bytes> <fnv1a-64 hex>\n"
 *     <bytes> bytes of the ApplyEditsRequest message
 *
 * Model names are directory names of the model repository already, so they
 * are safe path components. A record is written durably before Apply
 * answers (a temporary file, fsync, rename, fsync of the directory): a
 * set whose id a client got survives a crash. Drop unlinks it. When a
 * model loads, its records are read back and applied again under the same
 * ids; a damaged record (bad header, checksum, size) is reported, renamed
 * to <id>.es.bad for the operator, and skipped — never fatal.
 *
 * nne_edit_store_put and _remove touch only the file system and the store's
 * immutable path: any thread may call them (Apply writes from its worker,
 * so the loop never waits for fsync).
 */
#ifndef NNE_EDIT_STORE_H
#define NNE_EDIT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* Caller-allocated. */
typedef struct nne_edit_store {
  char *dir; /* DIR/sets, malloc'd; NULL when closed */
} nne_edit_store_t;

/* One record; request is malloc'd (owned by the record). */
typedef struct nne_edit_record {
  char id[24];
  int64_t created_unix_ms;
  uint8_t *request;
  size_t request_len;
} nne_edit_record_t;

/* The largest record read back (a request is bounded by
 * --max-message-bytes, which cannot exceed this). */
#define NNE_EDIT_RECORD_MAX ((size_t)2 << 30)

/* Makes DIR/sets (and DIR) if missing and checks it can be written. err
 * names the directory and the reason. */
int nne_edit_store_open(nne_edit_store_t *st, const char *dir, nne_err_t *err);
void nne_edit_store_close(nne_edit_store_t *st);

/* Writes rec for model durably (see above); replaces a record of the same
 * id. NNE_EINTERNAL naming the file when the disk says no. */
int nne_edit_store_put(const nne_edit_store_t *st, const char *model,
                       const nne_edit_record_t *rec, nne_err_t *err);

/* Removes the record (absent is fine). */
int nne_edit_store_remove(const nne_edit_store_t *st, const char *model,
                          const char *id, nne_err_t *err);

/* Every sound record of model, oldest first, in a malloc'd array (*out,
 * *n; free with nne_edit_records_free). Damaged ones are logged, renamed
 * and left out. Fails only when the directory cannot be read. */
int nne_edit_store_load(const nne_edit_store_t *st, const char *model,
                        nne_edit_record_t **out, size_t *n, nne_err_t *err);
void nne_edit_records_free(nne_edit_record_t *recs, size_t n);

/* "es-" and 16 lowercase hex digits: what nne_edit_set_new_id makes. */
int nne_edit_set_id_valid(const char *id);

#endif /* NNE_EDIT_STORE_H */
