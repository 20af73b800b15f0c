/* rpc_health.c — grpc.health.v1.Health: Check and Watch.
 *
 * The whole server ("") and each service it implements report the server's
 * health: SERVING while it accepts work, NOT_SERVING once it drains. Watch
 * streams get the current status at once and every change after it; an
 * unknown service gets SERVICE_UNKNOWN on Watch (and stays open, as the
 * protocol says) and NOT_FOUND on Check. */
#include <string.h>

#include "grpc_health/v1/health.pb.h"
#include "base/log.h"
#include "rpc.h"

static const char *const services[] = {
    "",
    "nnedit.v1.Models",
    "nnedit.v1.Inference",
    "nnedit.v1.Edits",
    "nnedit.v1.Admin",
    "grpc.health.v1.Health",
};

static bool known_service(const char *name) {
  size_t i;
  for (i = 0; i < sizeof services / sizeof services[0]; i++)
    if (strcmp(name, services[i]) == 0)
      return true;
  return false;
}

void nne_rpc_health_check(nne_server_t *srv, nne_call_t *call,
                          grpc_byte_buffer *req) {
  grpc_health_v1_HealthCheckRequest in = grpc_health_v1_HealthCheckRequest_init_zero;
  grpc_health_v1_HealthCheckResponse out = grpc_health_v1_HealthCheckResponse_init_zero;
  nne_err_t err;

  if (!nne_rpc_decode(call, req, grpc_health_v1_HealthCheckRequest_fields, &in,
                      NULL))
    return;
  if (!known_service(in.service)) {
    nne_err_set(&err, NNE_ENOTFOUND, "service: unknown service '%s'",
                in.service);
    nne_call_fail_err(call, &err);
    return;
  }
  out.status = srv->health == NNE_HEALTH_SERVING
                   ? grpc_health_v1_HealthCheckResponse_ServingStatus_SERVING
                   : grpc_health_v1_HealthCheckResponse_ServingStatus_NOT_SERVING;
  nne_call_reply(call, grpc_health_v1_HealthCheckResponse_fields, &out);
}

/* ---- Watch ---------------------------------------------------------------- */

static void watch_pump(nne_call_t *call);

static void watch_remove(nne_server_t *srv, nne_call_t *call) {
  nne_call_t **pp;
  for (pp = &srv->watchers; *pp != NULL; pp = &(*pp)->watch_next) {
    if (*pp == call) {
      *pp = call->watch_next;
      call->watch_next = NULL;
      nne_call_unref(call); /* the list's reference */
      return;
    }
  }
}

static void watch_sent(nne_call_t *call, bool ok) {
  if (!ok) {
    watch_remove(call->srv, call);
    return;
  }
  watch_pump(call);
}

static int wanted(nne_server_t *srv, nne_call_t *call) {
  if (!known_service(call->watch_service))
    return grpc_health_v1_HealthCheckResponse_ServingStatus_SERVICE_UNKNOWN;
  return srv->health == NNE_HEALTH_SERVING
             ? grpc_health_v1_HealthCheckResponse_ServingStatus_SERVING
             : grpc_health_v1_HealthCheckResponse_ServingStatus_NOT_SERVING;
}

/* Sends what the watcher has not seen yet; one send in flight at a time. */
static void watch_pump(nne_call_t *call) {
  nne_server_t *srv = call->srv;
  grpc_health_v1_HealthCheckResponse out = grpc_health_v1_HealthCheckResponse_init_zero;
  int want;

  if (call->sending || call->finished)
    return;
  want = wanted(srv, call);
  if (want != call->watch_status) {
    out.status = (grpc_health_v1_HealthCheckResponse_ServingStatus)want;
    call->watch_status = want;
    if (nne_call_send_msg(call, grpc_health_v1_HealthCheckResponse_fields,
                          &out, watch_sent) != 0)
      watch_remove(srv, call);
    return;
  }
  if (srv->draining) {
    /* The last status went out; end the stream so shutdown can finish. */
    nne_call_finish(call);
    watch_remove(srv, call);
  }
}

static void watch_cancelled(nne_call_t *call) { watch_remove(call->srv, call); }

void nne_rpc_health_watch(nne_server_t *srv, nne_call_t *call,
                          grpc_byte_buffer *req) {
  grpc_health_v1_HealthCheckRequest in = grpc_health_v1_HealthCheckRequest_init_zero;

  if (!nne_rpc_decode(call, req, grpc_health_v1_HealthCheckRequest_fields, &in,
                      NULL))
    return;
  memcpy(call->watch_service, in.service, sizeof call->watch_service - 1);
  call->watch_service[sizeof call->watch_service - 1] = '\0';
  call->watch_status = -1;
  call->on_cancel = watch_cancelled;
  nne_call_ref(call); /* held by the watcher list */
  call->watch_next = srv->watchers;
  srv->watchers = call;
  watch_pump(call);
}

void nne_rpc_health_changed(nne_server_t *srv) {
  nne_call_t *c, *next;
  for (c = srv->watchers; c != NULL; c = next) {
    next = c->watch_next;
    watch_pump(c);
  }
}

void nne_rpc_health_close_watchers(nne_server_t *srv) {
  nne_rpc_health_changed(srv);
}
