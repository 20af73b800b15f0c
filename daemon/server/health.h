/* health.h — the daemon's health: a status per service, and who watches it.
 *
 * grpc.health.v1 asks about services by name: "" is the whole server, and
 * each service the daemon implements has its own entry. This module keeps
 * those statuses and tells its watchers (the Watch streams of rpc/health.c)
 * when one changes; it knows nothing about gRPC, so the server's drain and,
 * later, model readiness only call nne_health_set.
 *
 *   nne_health_init(&h);
 *   nne_health_set(&h, "", NNE_HEALTH_SERVING, &err);     adds or changes
 *   nne_health_get(&h, "nnedit.v1.Models")                 a status
 *   nne_health_watch(&h, &w) ... nne_health_unwatch(&h, &w)
 *   nne_health_close(&h)       the daemon stops: watchers are told once more
 *   nne_health_free(&h)
 *
 * Loop thread only. Watchers are caller-owned and must be unwatched before
 * they are freed; a watcher's callback may unwatch itself.
 */
#ifndef NNE_HEALTH_H
#define NNE_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

/* The numbers equal grpc.health.v1.HealthCheckResponse.ServingStatus. */
typedef enum nne_health_status {
  NNE_HEALTH_UNKNOWN = 0,
  NNE_HEALTH_SERVING = 1,
  NNE_HEALTH_NOT_SERVING = 2,
  NNE_HEALTH_SERVICE_UNKNOWN = 3,
} nne_health_status_t;

#define NNE_HEALTH_SERVICE_MAX 256 /* bytes of a service name, NUL included */

typedef struct nne_health_watcher nne_health_watcher_t;
struct nne_health_watcher {
  /* Runs after any status changed, and once from nne_health_close. */
  void (*changed)(nne_health_watcher_t *w);
  nne_health_watcher_t *next; /* the health's list (owned by it) */
};

typedef struct nne_health_entry {
  char *service;
  nne_health_status_t status;
} nne_health_entry_t;

typedef struct nne_health {
  nne_health_entry_t *entries;
  size_t n, cap;
  nne_health_watcher_t *watchers;
  bool closing;
} nne_health_t;

void nne_health_init(nne_health_t *h);
/* Frees the entries. Watchers must be gone. */
void nne_health_free(nne_health_t *h);

/* Sets (or adds) a service's status; watchers are told if it changed.
 * NNE_EINVAL for a name of NNE_HEALTH_SERVICE_MAX bytes or more. */
int nne_health_set(nne_health_t *h, const char *service,
                   nne_health_status_t status, nne_err_t *err);
/* Sets every known service's status at once (one notification). */
void nne_health_set_all(nne_health_t *h, nne_health_status_t status);

/* A service's status; NNE_HEALTH_SERVICE_UNKNOWN for a name never set. */
nne_health_status_t nne_health_get(const nne_health_t *h, const char *service);

void nne_health_watch(nne_health_t *h, nne_health_watcher_t *w);
void nne_health_unwatch(nne_health_t *h, nne_health_watcher_t *w);

/* The daemon is stopping: statuses stay readable; every watcher is told
 * once more (its stream sends its last status and ends). */
void nne_health_close(nne_health_t *h);
bool nne_health_closing(const nne_health_t *h);

/* "SERVING", "NOT_SERVING", ... */
const char *nne_health_status_name(nne_health_status_t status);

#endif /* NNE_HEALTH_H */
