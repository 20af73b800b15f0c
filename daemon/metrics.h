/* metrics.h — what nneditd shows Prometheus (--metrics-listen).
 *
 * The figures live where they are made — the server counts calls per method
 * (server.h), each executor its queue wait and run time (executor.h), each
 * model's backend cache its hits, misses, evictions and compile times
 * (edit/backend_cache.h) — and nne_metrics_render reads them all on the
 * loop thread into one scrape document (server/metrics_http.h serves it).
 * Nothing here counts on its own, so a scrape costs nothing between
 * scrapes and can never disagree with Admin.Stats.
 *
 * Names follow Prometheus's conventions (nnedit_ prefix; _total for
 * counters, _seconds and _bytes for units; process_* as the client
 * libraries name them); the list, with labels, is in deploy/README.md
 * ("Metrics").
 */
#ifndef NNE_METRICS_H
#define NNE_METRICS_H

#include "base/prom.h"
#include "daemon.h"

/* Writes every metric of d into out (nne_metrics_render_fn's shape: `app`
 * is the daemon). Loop thread. */
void nne_metrics_render(void *app, nne_prom_buf_t *out);

/* Starts the endpoint when --metrics-listen is set (d->metrics), else does
 * nothing. A bad or busy address is an error naming it. */
int nne_metrics_start(nne_daemon_t *d, nne_err_t *err);

/* Stops it (idempotent); the loop must run once more to free it. */
void nne_metrics_stop(nne_daemon_t *d);

#endif /* NNE_METRICS_H */
