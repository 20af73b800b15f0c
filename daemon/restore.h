/* restore.h — edit sets brought back when their model loads (--state-dir).
 *
 * Each time a model becomes LOADED, its kept records (edit/store.h) are
 * read and applied again, one at a time (a restart with many sets must not
 * overflow the compute queue that clients' calls share), under the ids and
 * creation times they had. Readiness ("nnedit.ready", --ready-file) waits
 * until every restore has finished, so a client told "ready" finds its
 * sets. A record that no longer applies (the model changed, --max-edit-sets
 * was lowered) is reported and left on disk for a later load; a damaged one
 * is reported and renamed by the store.
 *
 * Loop thread only.
 */
#ifndef NNE_RESTORE_H
#define NNE_RESTORE_H

#include <stdbool.h>

#include "daemon.h"

/* Queues the restore of model's sets (no-op without --state-dir). */
void nne_restore_model(nne_daemon_t *d, const char *model);

/* True while restores are queued or running. */
bool nne_restore_busy(const nne_daemon_t *d);

/* Forgets what is queued (shutdown); the set being applied finishes. */
void nne_restore_clear(nne_daemon_t *d);

#endif /* NNE_RESTORE_H */
