/* health.c — grpc.health.v1.Health: Check, and a bounded Watch. */
#include "internal.h"

#include <string.h>

#include "grpc_health/v1/health.pb.h"

#define M_CHECK "/grpc.health.v1.Health/Check"
#define M_WATCH "/grpc.health.v1.Health/Watch"

const char *nne_client_health_name(int status) {
  switch (status) {
  case NNE_CLIENT_HEALTH_SERVING: return "SERVING";
  case NNE_CLIENT_HEALTH_NOT_SERVING: return "NOT_SERVING";
  case NNE_CLIENT_HEALTH_SERVICE_UNKNOWN: return "SERVICE_UNKNOWN";
  default: return "UNKNOWN";
  }
}

static int health_req(const char *service,
                      grpc_health_v1_HealthCheckRequest *req,
                      nne_client_err_t *err) {
  *req = (grpc_health_v1_HealthCheckRequest)
      grpc_health_v1_HealthCheckRequest_init_zero;
  if (!nne__copy_str(req->service, sizeof req->service, service))
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "health: service name longer than %zu bytes",
                        sizeof req->service - 1);
  return 0;
}

int nne_client_health_check(nne_client_t *cli, const char *service,
                            nne_client_health_t *out, nne_client_err_t *err) {
  grpc_health_v1_HealthCheckRequest req;
  grpc_health_v1_HealthCheckResponse resp =
      grpc_health_v1_HealthCheckResponse_init_zero;
  int rc;

  if (cli == NULL || out == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "health_check: NULL argument");
  *out = NNE_CLIENT_HEALTH_UNKNOWN;
  if ((rc = health_req(service, &req, err)) < 0)
    return rc;
  rc = nne__unary(cli, M_CHECK, grpc_health_v1_HealthCheckRequest_fields, &req,
                  grpc_health_v1_HealthCheckResponse_fields, &resp, NULL, err);
  if (rc == 0)
    *out = (nne_client_health_t)resp.status;
  return rc;
}

/* The statuses a Watch streams, into the caller's array. */
typedef struct watch {
  nne_client_health_t *out;
  size_t n, max;
} watch_t;

static int watch_msg(void *ctx, grpc_byte_buffer *msg, nne_client_err_t *err) {
  watch_t *w = ctx;
  grpc_health_v1_HealthCheckResponse resp =
      grpc_health_v1_HealthCheckResponse_init_zero;
  int rc = nne__decode_bb(msg, grpc_health_v1_HealthCheckResponse_fields, &resp,
                          NULL, M_WATCH, err);
  if (rc < 0)
    return rc;
  w->out[w->n++] = (nne_client_health_t)resp.status;
  return w->n == w->max ? NNE__STREAM_ENOUGH : NNE__STREAM_MORE;
}

int nne_client_health_watch(nne_client_t *cli, const char *service,
                            nne_client_health_t *out, size_t max, size_t *n_out,
                            int64_t timeout_ms, nne_client_err_t *err) {
  grpc_health_v1_HealthCheckRequest req;
  watch_t w = {out, 0, max};
  int rc;

  if (n_out != NULL)
    *n_out = 0;
  if (cli == NULL || n_out == NULL || (out == NULL && max > 0) ||
      timeout_ms < 0)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "health_watch: NULL argument or negative timeout");
  if (max == 0)
    return 0;
  if ((rc = health_req(service, &req, err)) < 0)
    return rc;
  rc = nne__stream(cli, M_WATCH, grpc_health_v1_HealthCheckRequest_fields, &req,
                   timeout_ms, watch_msg, &w, err);
  *n_out = w.n;
  /* The time limit: the bounded watch ended as asked. */
  if (timeout_ms > 0 && rc == -NNE_CLIENT_DEADLINE_EXCEEDED)
    return 0;
  return rc;
}
