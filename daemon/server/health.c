/* health.c — see health.h. */
#include "server/health.h"

#include <stdlib.h>
#include <string.h>

#include "base/vec.h"

void nne_health_init(nne_health_t *h) { memset(h, 0, sizeof *h); }

void nne_health_free(nne_health_t *h) {
  size_t i;
  for (i = 0; i < h->n; i++)
    free(h->entries[i].service);
  free(h->entries);
  memset(h, 0, sizeof *h);
}

static nne_health_entry_t *find(const nne_health_t *h, const char *service) {
  size_t i;
  for (i = 0; i < h->n; i++)
    if (strcmp(h->entries[i].service, service) == 0)
      return &h->entries[i];
  return NULL;
}

/* Each watcher once; one may unwatch itself (the next is read first). */
static void notify(nne_health_t *h) {
  nne_health_watcher_t *w = h->watchers, *next;
  while (w != NULL) {
    next = w->next;
    w->changed(w);
    w = next;
  }
}

int nne_health_set(nne_health_t *h, const char *service,
                   nne_health_status_t status, nne_err_t *err) {
  nne_health_entry_t *e = find(h, service);
  if (strlen(service) >= NNE_HEALTH_SERVICE_MAX)
    return nne_err_set(err, NNE_EINVAL, "health service name of %zu bytes "
                       "(at most %d)", strlen(service),
                       NNE_HEALTH_SERVICE_MAX - 1);
  if (e == NULL) {
    if (NNE_VEC_GROW(&h->entries, &h->cap, h->n + 1) != 0)
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
    e = &h->entries[h->n];
    if ((e->service = strdup(service)) == NULL)
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
    e->status = NNE_HEALTH_UNKNOWN;
    h->n++;
  }
  if (e->status == status)
    return 0;
  e->status = status;
  notify(h);
  return 0;
}

void nne_health_set_all(nne_health_t *h, nne_health_status_t status) {
  size_t i;
  bool changed = false;
  for (i = 0; i < h->n; i++) {
    changed |= h->entries[i].status != status;
    h->entries[i].status = status;
  }
  if (changed)
    notify(h);
}

nne_health_status_t nne_health_get(const nne_health_t *h,
                                   const char *service) {
  const nne_health_entry_t *e = find(h, service);
  return e != NULL ? e->status : NNE_HEALTH_SERVICE_UNKNOWN;
}

void nne_health_watch(nne_health_t *h, nne_health_watcher_t *w) {
  w->next = h->watchers;
  h->watchers = w;
}

void nne_health_unwatch(nne_health_t *h, nne_health_watcher_t *w) {
  nne_health_watcher_t **pp;
  for (pp = &h->watchers; *pp != NULL; pp = &(*pp)->next)
    if (*pp == w) {
      *pp = w->next;
      w->next = NULL;
      return;
    }
}

void nne_health_close(nne_health_t *h) {
  h->closing = true;
  notify(h);
}

bool nne_health_closing(const nne_health_t *h) { return h->closing; }

const char *nne_health_status_name(nne_health_status_t status) {
  switch (status) {
  case NNE_HEALTH_SERVING:
    return "SERVING";
  case NNE_HEALTH_NOT_SERVING:
    return "NOT_SERVING";
  case NNE_HEALTH_SERVICE_UNKNOWN:
    return "SERVICE_UNKNOWN";
  case NNE_HEALTH_UNKNOWN:
    break;
  }
  return "UNKNOWN";
}
