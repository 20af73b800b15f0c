/* metrics_http.h — /metrics over HTTP/1.1 for Prometheus, by libmicrohttpd.
 *
 * libmicrohttpd parses HTTP and runs its own thread (one, polling: a scrape
 * every few seconds needs no more); the daemon's state belongs to the loop
 * thread, so a scrape does not read it from there. Instead the HTTP thread
 * asks the loop (uv_async) to render the document, waits for it (5 s at
 * most, then 503), and sends a copy. Scrapes that arrive while a render is
 * pending share it.
 *
 *   GET|HEAD /metrics   200, text/plain; version=0.0.4 (the exposition
 *                       format, base/prom.h)
 *   other paths         404;  other methods 405 (Allow: GET, HEAD)
 *   while stopping      503
 *
 * Bounded: at most 16 connections at once, 10 s idle timeout per
 * connection, requests with a body are refused (405 before the body is
 * read).
 *
 * Loop thread only, but for what the HTTP thread does inside.
 */
#ifndef NNE_METRICS_HTTP_H
#define NNE_METRICS_HTTP_H

#include <uv.h>

#include "base/error.h"
#include "base/prom.h"

typedef struct nne_metrics_http nne_metrics_http_t;

/* Writes the document into out (initialised by the caller, who frees it);
 * runs on the loop thread. */
typedef void (*nne_metrics_render_fn)(void *app, nne_prom_buf_t *out);

/* Listens on addr ("host:port", "[v6]:port"; port 0 picks a free one) and
 * serves until nne_metrics_http_stop. On success *out is the endpoint, owned
 * by the caller until stop. On failure nothing is left open and err names
 * the address and why (NNE_EINVAL for a malformed one, NNE_EUNAVAIL when it
 * cannot be bound, e.g. in use). */
int nne_metrics_http_start(nne_metrics_http_t **out, uv_loop_t *loop,
                           const char *addr, nne_metrics_render_fn render,
                           void *app, nne_err_t *err);

/* The bound "host:port" (the port substituted when 0 was asked for);
 * borrowed until stop. */
const char *nne_metrics_http_addr(const nne_metrics_http_t *h);

/* Stops listening, answers scrapes still waiting 503, joins the HTTP
 * thread and frees h once its loop handle has closed (the loop must run
 * once more). NULL is a no-op. */
void nne_metrics_http_stop(nne_metrics_http_t *h);

#endif /* NNE_METRICS_HTTP_H */
