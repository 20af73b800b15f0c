/* restore.c — see restore.h. */
#include "restore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "rpc/rpc.h"

struct nne_restore_queue {
  char model[NNE_MODEL_NAME_MAX + 1];
  struct nne_restore_queue *next;
};

static void pump(nne_daemon_t *d);

/* A record that does not apply now (the model changed, --max-edit-sets was
 * lowered) stays on disk for a later load. */
static void not_restored(const nne_daemon_t *d, const nne_edit_record_t *rec,
                         const nne_err_t *err) {
  nne_log_warn("edit set %s on %s not restored: %s (its record stays for a "
               "later load)",
               rec->id, d->restore_model, err->msg);
}

static void restored(nne_call_t *call, void *ctx, const nne_edit_set_t *set,
                     const nne_err_t *err) {
  nne_daemon_t *d = ctx;
  const nne_edit_record_t *rec = &d->restore_recs[d->restore_next - 1];
  (void)call;
  d->restore_running = false;
  if (set != NULL)
    nne_log_info("edit set %s on %s restored (%zu edits)", set->id,
                 d->restore_model, set->n_edits);
  else
    not_restored(d, rec, err);
  pump(d);
}

static void drop_records(nne_daemon_t *d) {
  nne_edit_records_free(d->restore_recs, d->restore_n);
  d->restore_recs = NULL;
  d->restore_n = d->restore_next = 0;
}

/* Starts the next record's Apply, taking the next model when one is done;
 * tells readiness once nothing is left. */
static void pump(nne_daemon_t *d) {
  nne_err_t err;

  while (!d->restore_running && !d->draining) {
    if (d->restore_next < d->restore_n) {
      const nne_edit_record_t *rec = &d->restore_recs[d->restore_next++];
      if (nne_rpc_edits_restore(d, d->restore_model, rec, restored, d,
                                &err) == 0)
        d->restore_running = true;
      else
        not_restored(d, rec, &err);
      continue;
    }
    drop_records(d);
    if (d->restore_q == NULL)
      break;
    {
      struct nne_restore_queue *q = d->restore_q;
      d->restore_q = q->next;
      snprintf(d->restore_model, sizeof d->restore_model, "%s", q->model);
      free(q);
    }
    if (nne_edit_store_load(&d->store, d->restore_model, &d->restore_recs,
                            &d->restore_n, &err) != 0)
      nne_log_warn("%s", err.msg);
    else if (d->restore_n > 0)
      nne_log_info("restoring %zu edit set%s of %s", d->restore_n,
                   d->restore_n == 1 ? "" : "s", d->restore_model);
  }
  if (!nne_restore_busy(d))
    nne_daemon_readiness(d);
}

void nne_restore_model(nne_daemon_t *d, const char *model) {
  struct nne_restore_queue *q, **tail;
  if (d->store.dir == NULL)
    return;
  q = calloc(1, sizeof *q);
  if (q == NULL) {
    nne_log_error("out of memory: edit sets of %s not restored", model);
    return;
  }
  snprintf(q->model, sizeof q->model, "%s", model);
  for (tail = &d->restore_q; *tail != NULL; tail = &(*tail)->next)
    ;
  *tail = q;
  pump(d);
}

bool nne_restore_busy(const nne_daemon_t *d) {
  return d->restore_running || d->restore_q != NULL ||
         d->restore_next < d->restore_n;
}

void nne_restore_clear(nne_daemon_t *d) {
  while (d->restore_q != NULL) {
    struct nne_restore_queue *q = d->restore_q;
    d->restore_q = q->next;
    free(q);
  }
  /* The record in flight is read by its done callback: keep the array
   * until then (restored() runs pump, which frees it). */
  if (!d->restore_running)
    drop_records(d);
  else
    d->restore_n = d->restore_next;
}
