/* health.c — grpc.health.v1.Health: Check and Watch, over the daemon's
 * health state (server/health.h).
 *
 * The whole server ("") and each service it implements report SERVING
 * while the daemon accepts work and NOT_SERVING once it drains. Watch
 * streams get the current status at once and every change after it; an
 * unknown service gets SERVICE_UNKNOWN on Watch (and stays open, as the
 * protocol says) and NOT_FOUND on Check. When the daemon stops, each Watch
 * stream sends its last status and ends. */
#include <stdlib.h>
#include <string.h>

#include "grpc_health/v1/health.pb.h"
#include "base/log.h"
#include "rpc/rpc.h"

void nne_rpc_health_check(nne_call_t *call, grpc_byte_buffer *req) {
  nne_daemon_t *d = nne_call_app(call);
  grpc_health_v1_HealthCheckRequest in = grpc_health_v1_HealthCheckRequest_init_zero;
  grpc_health_v1_HealthCheckResponse out = grpc_health_v1_HealthCheckResponse_init_zero;
  nne_health_status_t st;
  nne_err_t err;

  if (!nne_rpc_decode(call, req, grpc_health_v1_HealthCheckRequest_fields, &in,
                      NULL))
    return;
  st = nne_health_get(&d->health, in.service);
  if (st == NNE_HEALTH_SERVICE_UNKNOWN) {
    nne_err_set(&err, NNE_ENOTFOUND, "service: unknown service '%s'",
                in.service);
    nne_call_fail_err(call, &err);
    return;
  }
  out.status = (grpc_health_v1_HealthCheckResponse_ServingStatus)st;
  nne_call_reply(call, grpc_health_v1_HealthCheckResponse_fields, &out);
}

/* ---- Watch ---------------------------------------------------------------- */

/* One Watch stream: the call's user data. */
typedef struct watch {
  nne_health_watcher_t w;  /* first: the health hands it back */
  nne_call_t *call;        /* a reference while watching */
  nne_daemon_t *d;
  int sent;                /* the status last sent; -1: none yet */
  char service[NNE_HEALTH_SERVICE_MAX];
} watch_t;

/* Stops watching and drops the watch's call reference (last: it may free
 * the call and the watch with it). */
static void watch_end(watch_t *wt) {
  nne_call_t *call = wt->call;
  if (call == NULL)
    return;
  nne_health_unwatch(&wt->d->health, &wt->w);
  wt->call = NULL;
  nne_call_unref(call);
}

static void watch_pump(watch_t *wt);

static void watch_sent(nne_call_t *call, bool ok) {
  watch_t *wt = nne_call_user(call);
  if (!ok) {
    watch_end(wt);
    return;
  }
  watch_pump(wt);
}

/* Sends what the watcher has not seen yet; one send in flight at a time. */
static void watch_pump(watch_t *wt) {
  grpc_health_v1_HealthCheckResponse out = grpc_health_v1_HealthCheckResponse_init_zero;
  nne_call_t *call = wt->call;
  int want;

  if (call == NULL || nne_call_sending(call) || nne_call_finished(call))
    return;
  want = (int)nne_health_get(&wt->d->health, wt->service);
  if (want != wt->sent) {
    out.status = (grpc_health_v1_HealthCheckResponse_ServingStatus)want;
    wt->sent = want;
    if (nne_call_send_msg(call, grpc_health_v1_HealthCheckResponse_fields,
                          &out, watch_sent) != 0)
      watch_end(wt);
    return;
  }
  if (nne_health_closing(&wt->d->health)) {
    /* The last status went out; end the stream so shutdown can finish. */
    nne_call_finish(call);
    watch_end(wt);
  }
}

static void watch_changed(nne_health_watcher_t *w) {
  watch_pump((watch_t *)w);
}

static void watch_cancelled(nne_call_t *call) {
  watch_end(nne_call_user(call));
}

void nne_rpc_health_watch(nne_call_t *call, grpc_byte_buffer *req) {
  nne_daemon_t *d = nne_call_app(call);
  grpc_health_v1_HealthCheckRequest in = grpc_health_v1_HealthCheckRequest_init_zero;
  watch_t *wt;

  if (!nne_rpc_decode(call, req, grpc_health_v1_HealthCheckRequest_fields, &in,
                      NULL))
    return;
  wt = calloc(1, sizeof *wt);
  if (wt == NULL) {
    nne_call_fail(call, NNE_ENOMEM, "out of memory");
    return;
  }
  memcpy(wt->service, in.service, sizeof wt->service - 1);
  wt->service[sizeof wt->service - 1] = '\0';
  wt->sent = -1;
  wt->d = d;
  wt->w.changed = watch_changed;
  wt->call = call;
  nne_call_ref(call); /* held while watching */
  nne_call_set_user(call, wt, free);
  nne_call_on_cancel(call, watch_cancelled);
  nne_health_watch(&d->health, &wt->w);
  watch_pump(wt);
}
