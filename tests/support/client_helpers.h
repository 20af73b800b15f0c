/* client_helpers.h — what the C integration tests (tests/integration/
 * test_*client.c) all do with libnnedit: connect to the test daemon, wait
 * until it serves, load a model, expect a status. Header-only (static
 * inline) so that a test uses what it needs; include <check.h> first:
 * failures are ck_assert()s in the calling test.
 *
 *   nne_client_t *c = nne_tc_ready(g_daemon.addr, 120000, 0);
 *   nne_tc_load(c, "gpt2-script");
 *   NNE_TC_EXPECT_STATUS(nne_client_x(c, ..., &err), &err,
 *                        NNE_CLIENT_INVALID_ARGUMENT, "input_ids", NULL);
 *
 * The client returned is the caller's (nne_client_close).
 */
#ifndef NNE_TEST_CLIENT_HELPERS_H
#define NNE_TEST_CLIENT_HELPERS_H

#include <stdint.h>
#include <string.h>

#include "nnedit.h"

/* Connected to addr (no wait): timeout_ms per call, max_tensor_bytes when
 * not 0. */
static inline nne_client_t *nne_tc_connect(const char *addr,
                                           int64_t timeout_ms,
                                           uint64_t max_tensor_bytes) {
  nne_client_opts_t o;
  nne_client_t *c = NULL;
  nne_client_err_t err;
  nne_client_opts_init(&o);
  o.address = addr;
  o.timeout_ms = timeout_ms;
  if (max_tensor_bytes != 0)
    o.max_tensor_bytes = max_tensor_bytes;
  ck_assert_msg(nne_client_connect(&o, &c, &err) == 0, "connect: %s",
                err.message);
  return c;
}

/* The same, once the daemon answers (10 s at most). */
static inline nne_client_t *nne_tc_ready(const char *addr, int64_t timeout_ms,
                                         uint64_t max_tensor_bytes) {
  nne_client_err_t err;
  nne_client_t *c = nne_tc_connect(addr, timeout_ms, max_tensor_bytes);
  ck_assert_msg(nne_client_wait_ready(c, 10000, &err) == 0, "wait_ready: %s",
                err.message);
  return c;
}

/* Loads `name` (or finds it loaded); it must end LOADED. */
static inline void nne_tc_load(nne_client_t *c, const char *name) {
  nne_client_model_info_t info;
  nne_client_err_t err;
  int rc = nne_client_models_load(c, name, NULL, 0, &info, &err);
  ck_assert_msg(rc == 0, "load %s: %s: %s", name,
                nne_client_status_name(err.code), err.message);
  ck_assert_int_eq(info.state, NNE_CLIENT_MODEL_LOADED);
  nne_client_model_info_free(&info);
}

/* rc must be -code with err->code == code, and the message must contain
 * every needle (a NULL-terminated list). */
static inline void nne_tc_expect_status_v(int rc, const nne_client_err_t *err,
                                          int code,
                                          const char *const *needles,
                                          const char *what) {
  size_t i;
  ck_assert_msg(rc == -code && err->code == code,
                "%s: expected %s, got rc %d, %s: %s", what,
                nne_client_status_name(code), rc,
                nne_client_status_name(err->code), err->message);
  for (i = 0; needles != NULL && needles[i] != NULL; i++)
    ck_assert_msg(strstr(err->message, needles[i]) != NULL,
                  "%s: message '%s' does not name '%s'", what, err->message,
                  needles[i]);
}

/* NNE_TC_EXPECT_STATUS(call, &err, CODE, "needle", ..., NULL) */
#define NNE_TC_EXPECT_STATUS(rc, err, code, ...)                               \
  nne_tc_expect_status_v((rc), (err), (code),                                  \
                         (const char *const[]){__VA_ARGS__}, #rc)

#endif /* NNE_TEST_CLIENT_HELPERS_H */
