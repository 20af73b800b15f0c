/* test_client.c — libnnedit against a real nneditd on loopback.
 *
 * One daemon serves the "serving" test cases; it is started in an unchecked
 * fixture (in the parent process, before libcheck forks a child per test)
 * and stopped in its teardown, or by an atexit handler if the run dies
 * early. Models are loaded by the tests themselves (Load is idempotent and
 * blocks until loaded), so the parent never touches gRPC. Cases that change
 * the daemon's life (unload, SIGTERM) start a daemon of their own.
 *
 * Numbers are checked against the fixtures' Python references: the logits of
 * the saved archive run in Python (ref/logits_jit.npy) are the same graph on
 * the same libtorch, so the daemon must agree bit for bit on the same batch;
 * a row run alone may differ in the last bits (BLAS blocking) and is checked
 * to 1e-5. Bad inputs are checked for their status code and for naming the
 * field at fault.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fixtures.h"
#include "nnedit.h"
#include "npy.h"
#include "proc.h"

#define VOCAB 1000

static nne_test_daemon_t g_daemon; /* the suite's, in the parent */
static pid_t g_parent;
static nne_test_daemon_t g_own; /* a test's own, in that test's process */
static pid_t g_own_owner;

/* ---- helpers ------------------------------------------------------------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static nne_client_t *client_to(const char *addr, int64_t timeout_ms) {
  nne_client_opts_t o;
  nne_client_t *c = NULL;
  nne_client_err_t err;
  nne_client_opts_init(&o);
  o.address = addr;
  o.timeout_ms = timeout_ms;
  ck_assert_msg(nne_client_connect(&o, &c, &err) == 0, "connect: %s",
                err.message);
  return c;
}

/* A client of the suite's daemon, connected. */
static nne_client_t *client(void) {
  nne_client_err_t err;
  nne_client_t *c = client_to(g_daemon.addr, 60000);
  ck_assert_msg(nne_client_wait_ready(c, 10000, &err) == 0, "wait_ready: %s",
                err.message);
  return c;
}

static void load(nne_client_t *c, const char *name) {
  nne_client_model_info_t info;
  nne_client_err_t err;
  int rc = nne_client_models_load(c, name, NULL, 0, &info, &err);
  ck_assert_msg(rc == 0, "load %s: %s: %s", name,
                nne_client_status_name(err.code), err.message);
  ck_assert_int_eq(info.state, NNE_CLIENT_MODEL_LOADED);
}

static nne_fixture_t *fixture(const char *name) {
  nne_fixture_t *f = NULL;
  char msg[512];
  ck_assert_msg(nne_fixture_load(name, &f, msg, sizeof msg) == 0, "%s", msg);
  return f;
}

/* A reference tensor of a fixture: <dir>/ref/<rel>. */
static void ref_load(const nne_fixture_t *f, const char *rel, nne_npy_t *out) {
  char path[1024], msg[512];
  snprintf(path, sizeof path, "%s/ref/%s", f->dir, rel);
  ck_assert_msg(nne_npy_load(path, out, msg, sizeof msg) == 0,
                "%s (regenerate the fixtures: cmake --build build --target "
                "fixtures)",
                msg);
}

/* Checks a failed call: its return value, code, and that the message names
 * every needle (NULL-terminated). */
static void expect_status_v(int rc, const nne_client_err_t *err, int code,
                            const char *const *needles, const char *what) {
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
/* EXPECT_STATUS(call, &err, CODE, "needle", ..., NULL) */
#define EXPECT_STATUS(rc, err, code, ...)                                      \
  expect_status_v((rc), (err), (code), (const char *const[]){__VA_ARGS__}, #rc)

/* Token rows over a row-major matrix (or over explicit rows). */
typedef struct batch {
  nne_client_token_row_t rows[64];
  nne_client_mask_row_t mask[64];
  int32_t mask_vals[64][64];
  size_t n_rows, n_mask;
} batch_t;

static void batch_from_ids(batch_t *b, const nne_fixture_ids_t *ids) {
  int64_t r;
  memset(b, 0, sizeof *b);
  ck_assert(ids->rows <= 64);
  for (r = 0; r < ids->rows; r++) {
    b->rows[r].ids = ids->data + r * ids->cols;
    b->rows[r].n_ids = (size_t)ids->cols;
  }
  b->n_rows = (size_t)ids->rows;
}

static void batch_mask_from_ids(batch_t *b, const nne_fixture_ids_t *m) {
  int64_t r, c;
  ck_assert(m->rows <= 64 && m->cols <= 64);
  for (r = 0; r < m->rows; r++) {
    for (c = 0; c < m->cols; c++)
      b->mask_vals[r][c] = (int32_t)m->data[r * m->cols + c];
    b->mask[r].values = b->mask_vals[r];
    b->mask[r].n_values = (size_t)m->cols;
  }
  b->n_mask = (size_t)m->rows;
}

static int forward(nne_client_t *c, const char *model, const batch_t *b,
                   nne_client_padding_t pad, uint32_t top_k,
                   nne_client_logits_t logits, nne_client_forward_result_t *res,
                   nne_client_err_t *err) {
  nne_client_forward_req_t req;
  memset(&req, 0, sizeof req);
  req.model = model;
  req.rows = b->rows;
  req.n_rows = b->n_rows;
  req.mask = b->n_mask ? b->mask : NULL;
  req.n_mask = b->n_mask;
  req.padding = pad;
  req.top_k = top_k;
  req.logits = logits;
  return nne_client_forward(c, &req, res, err);
}

static void forward_ok(nne_client_t *c, const char *model, const batch_t *b,
                       nne_client_padding_t pad, uint32_t top_k,
                       nne_client_logits_t logits,
                       nne_client_forward_result_t *res) {
  nne_client_err_t err;
  int rc = forward(c, model, b, pad, top_k, logits, res, &err);
  ck_assert_msg(rc == 0, "forward %s: %s: %s", model,
                nne_client_status_name(err.code), err.message);
}

static void expect_shape(const nne_client_tensor_t *t, size_t ndim, ...) {
  va_list ap;
  size_t i;
  ck_assert_msg(t->ndim == ndim, "tensor '%s' has %zu dims, expected %zu",
                t->name, t->ndim, ndim);
  va_start(ap, ndim);
  for (i = 0; i < ndim; i++) {
    int64_t want = va_arg(ap, int64_t);
    ck_assert_msg(t->shape[i] == want, "tensor '%s' dim %zu is %lld, not %lld",
                  t->name, i, (long long)t->shape[i], (long long)want);
  }
  va_end(ap);
}

/* Bit-equality of float32 data, reporting the first difference. */
static void expect_same_f32(const float *got, const float *want, size_t n,
                            const char *what) {
  size_t i;
  if (memcmp(got, want, n * sizeof *got) == 0)
    return;
  for (i = 0; i < n; i++)
    if (memcmp(&got[i], &want[i], sizeof *got) != 0)
      ck_abort_msg("%s: element %zu is %.9g, reference %.9g", what, i,
                   (double)got[i], (double)want[i]);
}

static void expect_close_f32(const float *got, const float *want, size_t n,
                             double atol, const char *what) {
  size_t i;
  for (i = 0; i < n; i++)
    ck_assert_msg(fabs((double)got[i] - (double)want[i]) <= atol,
                  "%s: element %zu is %.9g, reference %.9g (atol %g)", what, i,
                  (double)got[i], (double)want[i], atol);
}

/* The k best tokens of v[VOCAB] (ties: the lower id first). */
static void topk_ref(const float *v, size_t k, int64_t *ids) {
  size_t i, j;
  for (j = 0; j < k; j++) {
    int64_t best = -1;
    for (i = 0; i < VOCAB; i++) {
      size_t t;
      bool used = false;
      for (t = 0; t < j; t++)
        used |= ids[t] == (int64_t)i;
      if (!used && (best < 0 || v[i] > v[best]))
        best = (int64_t)i;
    }
    ids[j] = best;
  }
}

/* Checks a row's top-k against the reference logits of that position. */
static void expect_topk(const nne_client_row_topk_t *row, const float *v,
                        size_t k, const char *what) {
  int64_t want[16];
  double mx = -INFINITY, sum = 0;
  size_t i;
  ck_assert(k <= 16);
  ck_assert_msg(row->n_top == k, "%s: %zu scores, expected %zu", what,
                row->n_top, k);
  topk_ref(v, k, want);
  for (i = 0; i < VOCAB; i++)
    mx = fmax(mx, (double)v[i]);
  for (i = 0; i < VOCAB; i++)
    sum += exp((double)v[i] - mx);
  for (i = 0; i < k; i++) {
    double p = exp((double)v[want[i]] - mx) / sum;
    ck_assert_msg(row->top[i].token_id == want[i],
                  "%s: rank %zu is token %lld, reference %lld", what, i,
                  (long long)row->top[i].token_id, (long long)want[i]);
    ck_assert_msg(row->top[i].logit == v[want[i]],
                  "%s: rank %zu logit %.9g, reference %.9g", what, i,
                  (double)row->top[i].logit, (double)v[want[i]]);
    ck_assert_msg(fabs(row->top[i].prob - p) <= 1e-5 * p + 1e-8,
                  "%s: rank %zu prob %.9g, softmax %.9g", what, i,
                  (double)row->top[i].prob, p);
  }
}

/* ---- the suite's daemon -------------------------------------------------- */

static void kill_daemon_at_exit(void) {
  /* libcheck's forked children run atexit handlers too: only the parent
   * that started the daemon may stop it. */
  if (getpid() == g_parent && g_daemon.pid > 0)
    nne_test_daemon_stop(&g_daemon);
}

/* A failed assertion ends a forked test with exit() (or longjmps out of it
 * without CK_FORK): the test's own daemon is stopped here then. */
static void stop_own_daemon_at_exit(void) {
  if (getpid() == g_own_owner && g_own.pid > 0)
    nne_test_daemon_stop(&g_own);
}

static void own_daemon_start(void) {
  const char *args[] = {"--model-repo", nne_fixtures_dir(), NULL};
  ck_assert_int_eq(nne_test_daemon_start(&g_own, args), 0);
  g_own_owner = getpid();
}

static void daemon_setup(void) {
  const char *args[] = {"--model-repo", nne_fixtures_dir(), NULL};
  g_parent = getpid();
  if (nne_test_daemon_start(&g_daemon, args) != 0) {
    fprintf(stderr, "test_client: cannot start nneditd (%s)\n",
            nne_test_nneditd());
    exit(1);
  }
  atexit(kill_daemon_at_exit);
}

static void daemon_teardown(void) {
  int code;
  if (g_daemon.pid <= 0)
    return;
  code = nne_test_daemon_stop(&g_daemon);
  g_daemon.pid = 0;
  if (code != 0) {
    fprintf(stderr, "test_client: nneditd exited with %d\n", code);
    exit(1);
  }
}

/* ---- no daemon needed ---------------------------------------------------- */

START_TEST(test_names) {
  nne_client_dtype_t dt;
  nne_client_err_t err;
  ck_assert_str_eq(nne_client_status_name(0), "OK");
  ck_assert_str_eq(nne_client_status_name(5), "NOT_FOUND");
  ck_assert_str_eq(nne_client_status_name(16), "UNAUTHENTICATED");
  ck_assert_str_eq(nne_client_status_name(99), "UNKNOWN");
  ck_assert_str_eq(nne_client_status_name(-1), "UNKNOWN");
  ck_assert_str_eq(nne_client_health_name(1), "SERVING");
  ck_assert_str_eq(nne_client_health_name(3), "SERVICE_UNKNOWN");
  ck_assert_str_eq(nne_client_model_state_name(5), "FAILED");
  ck_assert_str_eq(nne_client_model_state_name(77), "UNSPECIFIED");
  ck_assert_str_eq(nne_client_dtype_name(NNE_CLIENT_DTYPE_BFLOAT16),
                   "bfloat16");
  ck_assert_str_eq(nne_client_dtype_name(42), "unspecified");
  ck_assert_uint_eq(nne_client_dtype_size(NNE_CLIENT_DTYPE_INT64), 8);
  ck_assert_uint_eq(nne_client_dtype_size(0), 0);
  ck_assert_int_eq(nne_client_dtype_parse("bf16", &dt, &err), 0);
  ck_assert_int_eq(dt, NNE_CLIENT_DTYPE_BFLOAT16);
  ck_assert_int_eq(nne_client_dtype_parse("float64", &dt, &err), 0);
  ck_assert_int_eq(dt, NNE_CLIENT_DTYPE_FLOAT64);
  EXPECT_STATUS(nne_client_dtype_parse("float128", &dt, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "dtype", "float128", NULL);
  ck_assert_str_eq(nne_client_version(), NNE_VERSION);
}
END_TEST

START_TEST(test_local_errors) {
  nne_client_opts_t o;
  nne_client_t *c = NULL;
  nne_client_err_t err;
  nne_client_forward_result_t res;
  nne_client_model_desc_t desc;
  nne_client_forward_req_t req;
  nne_client_token_row_t row = {NULL, 3};
  char longname[300];
  double t0;

  nne_client_opts_init(&o);
  o.timeout_ms = -1;
  EXPECT_STATUS(nne_client_connect(&o, &c, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "connect", "timeout", NULL);
  ck_assert_ptr_null(c);
  nne_client_opts_init(&o);
  o.max_recv_bytes = (size_t)1 << 40;
  EXPECT_STATUS(nne_client_connect(&o, &c, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "max_recv_bytes", NULL);
  EXPECT_STATUS(nne_client_connect(NULL, NULL, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, NULL);
  /* err may be NULL: only the return value then. */
  ck_assert_int_eq(nne_client_connect(NULL, NULL, NULL),
                   -NNE_CLIENT_INVALID_ARGUMENT);

  /* Arguments that cannot go on the wire fail before any I/O: a client to a
   * port nobody listens on shows that nothing was sent. */
  c = client_to("127.0.0.1:1", 5000);
  t0 = now_s();
  memset(&req, 0, sizeof req);
  req.rows = &row;
  req.n_rows = 1;
  EXPECT_STATUS(nne_client_forward(c, &req, &res, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "model", NULL);
  req.model = "gpt2-script";
  EXPECT_STATUS(nne_client_forward(c, &req, &res, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "rows[0].ids", NULL);
  row.n_ids = 0;
  req.padding = (nne_client_padding_t)7;
  EXPECT_STATUS(nne_client_forward(c, &req, &res, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "padding", NULL);
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  EXPECT_STATUS(nne_client_models_describe(c, longname, &desc, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "longer than 127", NULL);
  EXPECT_STATUS(nne_client_models_load(c, NULL, NULL, 0, NULL, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, NULL);
  ck_assert_msg(now_s() - t0 < 1.0, "local checks took %.2f s", now_s() - t0);
  /* Results are zeroed on failure: freeing them is safe. */
  ck_assert_ptr_null(res.rows);
  ck_assert_ptr_null(desc.modules);
  nne_client_forward_result_free(&res);
  nne_client_model_desc_free(&desc);
  nne_client_forward_result_free(NULL);
  nne_client_close(c);
  nne_client_close(NULL);
}
END_TEST

START_TEST(test_unavailable) {
  nne_client_t *c = client_to("127.0.0.1:1", 5000);
  nne_client_health_t st;
  nne_client_model_list_t list;
  nne_client_err_t err;
  double t0 = now_s();

  EXPECT_STATUS(nne_client_health_check(c, NULL, &st, &err), &err,
                NNE_CLIENT_UNAVAILABLE, "127.0.0.1:1", NULL);
  EXPECT_STATUS(nne_client_models_list(c, &list, &err), &err,
                NNE_CLIENT_UNAVAILABLE, NULL);
  ck_assert_ptr_null(list.models);
  ck_assert_msg(now_s() - t0 < 4.0, "fail-fast took %.2f s", now_s() - t0);
  t0 = now_s();
  EXPECT_STATUS(nne_client_wait_ready(c, 300, &err), &err,
                NNE_CLIENT_UNAVAILABLE, "127.0.0.1:1", "300 ms", NULL);
  ck_assert_msg(now_s() - t0 < 3.0, "wait_ready took %.2f s", now_s() - t0);
  nne_client_close(c);
}
END_TEST

/* Tensors made here, written, read back with the tests' own npy reader. */
START_TEST(test_write_npy) {
  char dir[] = "/tmp/nnedit-npy-XXXXXX", path[128], msg[256];
  nne_client_tensor_t t;
  nne_client_err_t err;
  nne_npy_t a;
  int64_t i64[6] = {1, -2, 3, -4, 5, 1LL << 40};
  uint16_t bf[3] = {0x3f80, 0xc000, 0x7f80}; /* 1.0, -2.0, +inf */
  float f32 = 2.5f;

  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/t.npy", dir);

  memset(&t, 0, sizeof t);
  t.dtype = NNE_CLIENT_DTYPE_INT64;
  t.ndim = 2;
  t.shape[0] = 2;
  t.shape[1] = 3;
  t.nbytes = sizeof i64;
  t.data = i64;
  ck_assert_int_eq(nne_client_tensor_write_npy(&t, path, &err), 0);
  ck_assert_msg(nne_npy_load(path, &a, msg, sizeof msg) == 0, "%s", msg);
  ck_assert_int_eq(a.dtype, NNE_NPY_I64);
  ck_assert_int_eq(a.ndim, 2);
  ck_assert_int_eq(a.shape[0], 2);
  ck_assert_int_eq(a.shape[1], 3);
  ck_assert_mem_eq(a.data, i64, sizeof i64);
  nne_npy_free(&a);

  /* 1-d: numpy writes "(3,)". bfloat16 is widened to float32. */
  t.dtype = NNE_CLIENT_DTYPE_BFLOAT16;
  t.ndim = 1;
  t.shape[0] = 3;
  t.nbytes = sizeof bf;
  t.data = bf;
  ck_assert_int_eq(nne_client_tensor_write_npy(&t, path, &err), 0);
  ck_assert_msg(nne_npy_load(path, &a, msg, sizeof msg) == 0, "%s", msg);
  ck_assert_int_eq(a.dtype, NNE_NPY_F32);
  ck_assert_int_eq(a.ndim, 1);
  ck_assert_int_eq(a.shape[0], 3);
  ck_assert(((float *)a.data)[0] == 1.0f && ((float *)a.data)[1] == -2.0f &&
            isinf(((float *)a.data)[2]));
  nne_npy_free(&a);

  /* 0-d scalar. */
  t.dtype = NNE_CLIENT_DTYPE_FLOAT32;
  t.ndim = 0;
  t.nbytes = 4;
  t.data = &f32;
  ck_assert_int_eq(nne_client_tensor_write_npy(&t, path, &err), 0);
  ck_assert_msg(nne_npy_load(path, &a, msg, sizeof msg) == 0, "%s", msg);
  ck_assert_int_eq(a.ndim, 0);
  ck_assert(*(float *)a.data == 2.5f);
  nne_npy_free(&a);

  /* Inconsistent tensors are refused; a failed write leaves no file. */
  t.nbytes = 8;
  EXPECT_STATUS(nne_client_tensor_write_npy(&t, path, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "disagree", NULL);
  t.nbytes = 4;
  snprintf(path, sizeof path, "%s/no/such/dir/t.npy", dir);
  ck_assert_int_lt(nne_client_tensor_write_npy(&t, path, &err), 0);
  ck_assert_int_ne(access(path, F_OK), 0);

  snprintf(path, sizeof path, "%s/t.npy", dir);
  unlink(path);
  rmdir(dir);
}
END_TEST

/* ---- serving ------------------------------------------------------------- */

START_TEST(test_health) {
  nne_client_t *c = client();
  const char *services[] = {"", "nnedit.v1.Models", "nnedit.v1.Inference",
                            "grpc.health.v1.Health"};
  nne_client_health_t st, w[4];
  nne_client_err_t err;
  size_t i, n;
  double t0;

  for (i = 0; i < sizeof services / sizeof services[0]; i++) {
    ck_assert_msg(nne_client_health_check(c, services[i], &st, &err) == 0,
                  "%s: %s", services[i], err.message);
    ck_assert_int_eq(st, NNE_CLIENT_HEALTH_SERVING);
  }
  ck_assert_int_eq(nne_client_health_check(c, NULL, &st, &err), 0);
  EXPECT_STATUS(nne_client_health_check(c, "no.such.Service", &st, &err), &err,
                NNE_CLIENT_NOT_FOUND, "no.such.Service", NULL);

  /* Watch: the first status comes at once; the count ends the call. */
  t0 = now_s();
  ck_assert_int_eq(nne_client_health_watch(c, "", w, 1, &n, 10000, &err), 0);
  ck_assert_uint_eq(n, 1);
  ck_assert_int_eq(w[0], NNE_CLIENT_HEALTH_SERVING);
  ck_assert_msg(now_s() - t0 < 5.0, "watch of 1 took %.2f s", now_s() - t0);
  ck_assert_int_eq(nne_client_health_watch(c, "nope", w, 1, &n, 10000, &err),
                   0);
  ck_assert_int_eq(w[0], NNE_CLIENT_HEALTH_SERVICE_UNKNOWN);
  /* ...or the time limit does, when nothing changes. */
  t0 = now_s();
  ck_assert_int_eq(nne_client_health_watch(c, "", w, 4, &n, 300, &err), 0);
  ck_assert_uint_ge(n, 1);
  ck_assert_int_eq(w[0], NNE_CLIENT_HEALTH_SERVING);
  ck_assert_msg(now_s() - t0 < 5.0, "watch with 300 ms took %.2f s",
                now_s() - t0);
  nne_client_close(c);
}
END_TEST

START_TEST(test_list) {
  nne_client_t *c = client();
  nne_client_model_list_t list;
  nne_client_err_t err;
  char **names, msg[512];
  size_t n, i, k;

  ck_assert_msg(nne_fixtures_list(&names, &n, msg, sizeof msg) == 0, "%s", msg);
  ck_assert_uint_gt(n, 0);
  load(c, names[0]);
  ck_assert_msg(nne_client_models_list(c, &list, &err) == 0, "%s", err.message);
  ck_assert_msg(strncmp(list.server_version, "nneditd ", 8) == 0,
                "server_version '%s'", list.server_version);
  for (i = 0; i < n; i++) {
    const nne_client_model_info_t *m = NULL;
    for (k = 0; k < list.n_models; k++)
      if (strcmp(list.models[k].name, names[i]) == 0)
        m = &list.models[k];
    ck_assert_msg(m != NULL, "fixture %s not listed", names[i]);
    if (i == 0) {
      ck_assert_int_eq(m->state, NNE_CLIENT_MODEL_LOADED);
      ck_assert_int_eq(m->vocab_size, VOCAB);
    } else {
      ck_assert(m->state == NNE_CLIENT_MODEL_AVAILABLE ||
                m->state == NNE_CLIENT_MODEL_LOADED);
    }
  }
  nne_client_model_list_free(&list);
  ck_assert_ptr_null(list.models);
  nne_fixtures_list_free(names, n);
  nne_client_close(c);
}
END_TEST

static const char *g_names[] = {"gpt2-script", "gpt2-trace",  "llama-script",
                                "llama-trace", "neox-script", "neox-trace"};
#define N_NAMES ((int)(sizeof g_names / sizeof g_names[0]))

START_TEST(test_load_describe) {
  const char *name = g_names[_i];
  nne_client_t *c = client();
  nne_fixture_t *f = fixture(name);
  nne_client_model_info_t info;
  nne_client_model_desc_t d;
  nne_client_err_t err;
  size_t i, j, k;

  ck_assert_msg(nne_client_models_load(c, name, "",
                                       NNE_CLIENT_DTYPE_UNSPECIFIED, &info,
                                       &err) == 0,
                "%s", err.message);
  ck_assert_str_eq(info.name, name);
  ck_assert_int_eq(info.state, NNE_CLIENT_MODEL_LOADED);
  ck_assert_str_eq(info.device, "cpu");
  ck_assert_int_eq(info.dtype, NNE_CLIENT_DTYPE_FLOAT32);
  ck_assert_str_eq(info.export_kind, f->export_kind);
  ck_assert_int_eq(info.vocab_size, VOCAB);
  ck_assert_uint_eq(info.max_batch, 16);
  ck_assert_uint_gt(info.param_count, 0);
  ck_assert_uint_eq(info.param_bytes, 4 * info.param_count);
  /* Loading a loaded model returns it as is. */
  ck_assert_int_eq(nne_client_models_load(c, name, NULL, 0, &info, &err), 0);
  ck_assert_int_eq(info.state, NNE_CLIENT_MODEL_LOADED);
  nne_client_model_info_free(&info);

  ck_assert_msg(nne_client_models_describe(c, name, &d, &err) == 0, "%s",
                err.message);
  ck_assert_str_eq(d.model.name, name);
  ck_assert_uint_eq(d.n_modules, f->n_modules);
  ck_assert_uint_eq(d.model.module_count, f->n_modules);
  for (i = 0; i < d.n_modules; i++) {
    const nne_client_module_t *m = &d.modules[i];
    const nne_fixture_module_t *r = &f->modules[i];
    ck_assert_str_eq(m->path, r->path);
    ck_assert_msg(strcmp(m->class_name, r->class_name) == 0,
                  "%s: class %s, Python says %s", m->path, m->class_name,
                  r->class_name);
    ck_assert_msg(m->call_index == r->call_index,
                  "%s: call_index %d, Python says %d", m->path,
                  (int)m->call_index, r->call_index);
    ck_assert_msg(m->param_count == r->n_params,
                  "%s: %llu params, Python says %llu", m->path,
                  (unsigned long long)m->param_count,
                  (unsigned long long)r->n_params);
    ck_assert_ptr_nonnull(m->type_name);
    if (i == 0)
      ck_assert_int_eq(m->parent, -1);
    else
      ck_assert_uint_eq(m->depth, d.modules[m->parent].depth + 1);
    /* The children, as the parent links give them, in order. */
    for (j = 0, k = 0; j < d.n_modules; j++) {
      const char *dot;
      if (d.modules[j].parent != (int32_t)i)
        continue;
      ck_assert_msg(k < r->n_children, "%s: more children than Python's",
                    m->path);
      dot = strrchr(d.modules[j].path, '.');
      ck_assert_str_eq(dot ? dot + 1 : d.modules[j].path, r->children[k]);
      k++;
    }
    ck_assert_msg(k == r->n_children, "%s: %zu children, Python says %zu",
                  m->path, k, r->n_children);
  }
  ck_assert_str_eq(d.modules[0].class_name, f->class_name);
  nne_client_model_desc_free(&d);
  ck_assert_ptr_null(d.modules);

  EXPECT_STATUS(nne_client_models_describe(c, "no-such-model", &d, &err), &err,
                NNE_CLIENT_NOT_FOUND, "no-such-model", NULL);
  EXPECT_STATUS(
      nne_client_models_load(c, "no-such-model", NULL, 0, &info, &err), &err,
      NNE_CLIENT_NOT_FOUND, "no-such-model", NULL);
  nne_fixture_free(f);
  nne_client_close(c);
}
END_TEST

/* The reference batch (2 x 7, all logits), the masked batch, the same batch
 * left-padded by the daemon, and the last-position logits: every number
 * bit-equal to the archive run in Python; top-k from those logits. */
START_TEST(test_forward_reference) {
  const char *name = g_names[_i];
  nne_client_t *c = client();
  nne_fixture_t *f = fixture(name);
  nne_client_forward_result_t res;
  nne_npy_t ref, mref;
  batch_t b;
  int64_t r, col;
  size_t i;

  load(c, name);
  ref_load(f, "logits_jit.npy", &ref);
  ref_load(f, "logits_masked_jit.npy", &mref);
  ck_assert_int_eq(ref.ndim, 3);
  ck_assert_int_eq(ref.shape[2], VOCAB);

  /* The reference batch, all positions. */
  batch_from_ids(&b, &f->input_ids);
  forward_ok(c, name, &b, NNE_CLIENT_PAD_NONE, 5, NNE_CLIENT_LOGITS_ALL, &res);
  ck_assert_uint_eq(res.batch, 2);
  ck_assert_uint_eq(res.seq_len, 7);
  ck_assert(res.has_logits);
  ck_assert_str_eq(res.logits.name, "logits");
  ck_assert_int_eq(res.logits.dtype, NNE_CLIENT_DTYPE_FLOAT32);
  expect_shape(&res.logits, 3, (int64_t)2, (int64_t)7, (int64_t)VOCAB);
  ck_assert_uint_eq(res.logits.nbytes, ref.nbytes);
  expect_same_f32(res.logits.data, ref.data, ref.numel, "logits vs logits_jit");
  ck_assert_uint_eq(res.n_rows, 2);
  for (i = 0; i < 2; i++) {
    char what[64];
    snprintf(what, sizeof what, "%s row %zu", name, i);
    ck_assert_uint_eq(res.rows[i].position, 6);
    expect_topk(&res.rows[i], (const float *)ref.data + (i * 7 + 6) * VOCAB, 5,
                what);
  }
  ck_assert(res.timing.total_ms >= res.timing.compute_ms);
  ck_assert(res.timing.compute_ms > 0);
  nne_client_forward_result_free(&res);

  /* Last position only, more candidates. */
  forward_ok(c, name, &b, NNE_CLIENT_PAD_NONE, 10, NNE_CLIENT_LOGITS_LAST,
             &res);
  expect_shape(&res.logits, 2, (int64_t)2, (int64_t)VOCAB);
  for (i = 0; i < 2; i++) {
    const float *want = (const float *)ref.data + (i * 7 + 6) * VOCAB;
    expect_same_f32((const float *)res.logits.data + i * VOCAB, want, VOCAB,
                    "last logits vs logits_jit");
    expect_topk(&res.rows[i], want, 10, "top-10");
  }
  nne_client_forward_result_free(&res);

  /* The masked batch (row 1 left-padded), mask given. */
  batch_from_ids(&b, &f->masked_input_ids);
  batch_mask_from_ids(&b, &f->masked_attention_mask);
  forward_ok(c, name, &b, NNE_CLIENT_PAD_NONE, 3, NNE_CLIENT_LOGITS_ALL, &res);
  ck_assert_uint_eq(res.rows[0].position, 4);
  ck_assert_uint_eq(res.rows[1].position, 4);
  expect_same_f32(res.logits.data, mref.data, mref.numel,
                  "masked logits vs logits_masked_jit");
  nne_client_forward_result_free(&res);

  /* The same rows without their padding, padded on the left by the daemon:
   * the same tensor, bit for bit. */
  batch_from_ids(&b, &f->masked_input_ids);
  for (r = 0; r < f->masked_input_ids.rows; r++) {
    const int64_t *m =
        f->masked_attention_mask.data + r * f->masked_attention_mask.cols;
    for (col = 0; col < f->masked_input_ids.cols && m[col] == 0; col++) {
      b.rows[r].ids++;
      b.rows[r].n_ids--;
    }
  }
  ck_assert_uint_lt(b.rows[1].n_ids, b.rows[0].n_ids);
  forward_ok(c, name, &b, NNE_CLIENT_PAD_LEFT, 3, NNE_CLIENT_LOGITS_ALL, &res);
  ck_assert_uint_eq(res.rows[1].position, 4);
  expect_same_f32(res.logits.data, mref.data, mref.numel,
                  "left-padded logits vs logits_masked_jit");
  expect_topk(&res.rows[1], (const float *)mref.data + (5 + 4) * VOCAB, 3,
              "left-padded row 1");
  nne_client_forward_result_free(&res);

  nne_npy_free(&ref);
  nne_npy_free(&mref);
  nne_fixture_free(f);
  nne_client_close(c);
}
END_TEST

/* One row alone, right padding, and the logits saved as .npy. */
START_TEST(test_forward_single_and_padding) {
  const char *name = "gpt2-script";
  nne_client_t *c = client();
  nne_fixture_t *f = fixture(name);
  nne_client_forward_result_t res, alone;
  nne_client_err_t err;
  nne_npy_t ref, back;
  int64_t long_row[] = {5, 6, 7, 8, 9}, short_row[] = {10, 11};
  char dir[] = "/tmp/nnedit-client-XXXXXX", path[128], msg[256];
  batch_t b;

  load(c, name);
  ref_load(f, "logits_jit.npy", &ref);
  batch_from_ids(&b, &f->input_ids);
  b.n_rows = 1;
  forward_ok(c, name, &b, NNE_CLIENT_PAD_NONE, 5, NNE_CLIENT_LOGITS_ALL, &res);
  expect_shape(&res.logits, 3, (int64_t)1, (int64_t)7, (int64_t)VOCAB);
  /* A different batch size may block the matrix products differently. */
  expect_close_f32(res.logits.data, ref.data, 7 * VOCAB, 1e-5,
                   "single row vs batch reference");

  /* Saved, it reads back as the same tensor. */
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/logits.npy", dir);
  ck_assert_msg(nne_client_tensor_write_npy(&res.logits, path, &err) == 0, "%s",
                err.message);
  ck_assert_msg(nne_npy_load(path, &back, msg, sizeof msg) == 0, "%s", msg);
  ck_assert_int_eq(back.dtype, NNE_NPY_F32);
  ck_assert_int_eq(back.ndim, 3);
  ck_assert_int_eq(back.shape[2], VOCAB);
  ck_assert_uint_eq(back.nbytes, res.logits.nbytes);
  ck_assert_mem_eq(back.data, res.logits.data, back.nbytes);
  nne_npy_free(&back);
  unlink(path);
  rmdir(dir);
  nne_client_forward_result_free(&res);

  /* Right padding: positions are each row's last real token, and the short
   * row's real positions see what they see alone (causal attention). */
  memset(&b, 0, sizeof b);
  b.rows[0] = (nne_client_token_row_t){long_row, 5};
  b.rows[1] = (nne_client_token_row_t){short_row, 2};
  b.n_rows = 2;
  forward_ok(c, name, &b, NNE_CLIENT_PAD_RIGHT, 1, NNE_CLIENT_LOGITS_ALL, &res);
  ck_assert_uint_eq(res.seq_len, 5);
  ck_assert_uint_eq(res.rows[0].position, 4);
  ck_assert_uint_eq(res.rows[1].position, 1);
  expect_shape(&res.logits, 3, (int64_t)2, (int64_t)5, (int64_t)VOCAB);
  b.rows[0] = b.rows[1];
  b.n_rows = 1;
  forward_ok(c, name, &b, NNE_CLIENT_PAD_NONE, 1, NNE_CLIENT_LOGITS_ALL,
             &alone);
  expect_close_f32((const float *)res.logits.data + 5 * VOCAB,
                   alone.logits.data, 2 * VOCAB, 1e-5,
                   "right-padded row vs alone");
  ck_assert_int_eq(res.rows[1].top[0].token_id, alone.rows[0].top[0].token_id);
  nne_client_forward_result_free(&alone);
  nne_client_forward_result_free(&res);

  /* Left padding: every row ends at the last position. */
  b.rows[0] = (nne_client_token_row_t){long_row, 5};
  b.rows[1] = (nne_client_token_row_t){short_row, 2};
  b.n_rows = 2;
  forward_ok(c, name, &b, NNE_CLIENT_PAD_LEFT, 2, NNE_CLIENT_LOGITS_LAST, &res);
  ck_assert_uint_eq(res.rows[0].position, 4);
  ck_assert_uint_eq(res.rows[1].position, 4);
  expect_shape(&res.logits, 2, (int64_t)2, (int64_t)VOCAB);
  ck_assert_uint_eq(res.rows[1].n_top, 2);
  nne_client_forward_result_free(&res);

  /* No logits asked: none sent, none reassembled. */
  forward_ok(c, name, &b, NNE_CLIENT_PAD_LEFT, 0, NNE_CLIENT_LOGITS_NONE, &res);
  ck_assert(!res.has_logits);
  ck_assert_ptr_null(res.logits.data);
  nne_client_forward_result_free(&res);

  nne_npy_free(&ref);
  nne_fixture_free(f);
  nne_client_close(c);
}
END_TEST

/* A 4 MB logits tensor arrives in several chunks; the client's own limits
 * (tensor bytes, message bytes) refuse it cleanly. */
START_TEST(test_forward_chunks_and_limits) {
  const char *name = "neox-trace";
  nne_client_t *c = client(), *small;
  nne_client_forward_result_t res, one;
  nne_client_opts_t o;
  nne_client_err_t err;
  static int64_t ids[16][64];
  batch_t b;
  size_t r, j;

  load(c, name);
  memset(&b, 0, sizeof b);
  for (r = 0; r < 16; r++) {
    for (j = 0; j < 64; j++)
      ids[r][j] = (int64_t)((r * 37 + j) % VOCAB);
    b.rows[r] = (nne_client_token_row_t){ids[r], 64};
  }
  b.n_rows = 16;
  forward_ok(c, name, &b, NNE_CLIENT_PAD_NONE, 1, NNE_CLIENT_LOGITS_ALL, &res);
  expect_shape(&res.logits, 3, (int64_t)16, (int64_t)64, (int64_t)VOCAB);
  ck_assert_uint_eq(res.logits.nbytes, (size_t)16 * 64 * VOCAB * 4);
  b.rows[0] = b.rows[3];
  b.n_rows = 1;
  forward_ok(c, name, &b, NNE_CLIENT_PAD_NONE, 1, NNE_CLIENT_LOGITS_ALL, &one);
  expect_close_f32((const float *)res.logits.data + 3 * 64 * VOCAB,
                   one.logits.data, 64 * VOCAB, 1e-5, "row 3 vs alone");
  nne_client_forward_result_free(&one);
  nne_client_forward_result_free(&res);
  b.rows[0] = (nne_client_token_row_t){ids[0], 64};
  b.n_rows = 16;

  /* Over the client's tensor limit: refused at the first chunk. */
  nne_client_opts_init(&o);
  o.address = g_daemon.addr;
  o.max_tensor_bytes = 1 << 20;
  ck_assert_int_eq(nne_client_connect(&o, &small, &err), 0);
  EXPECT_STATUS(forward(small, name, &b, NNE_CLIENT_PAD_NONE, 1,
                        NNE_CLIENT_LOGITS_ALL, &res, &err),
                &err, NNE_CLIENT_RESOURCE_EXHAUSTED, "'logits'",
                "max_tensor_bytes", NULL);
  ck_assert_ptr_null(res.rows);
  ck_assert_ptr_null(res.logits.data);
  nne_client_close(small);

  /* A chunk over the client's message limit: gRPC refuses the message. */
  o.max_tensor_bytes = 0;
  o.max_recv_bytes = 64 << 10;
  ck_assert_int_eq(nne_client_connect(&o, &small, &err), 0);
  EXPECT_STATUS(forward(small, name, &b, NNE_CLIENT_PAD_NONE, 1,
                        NNE_CLIENT_LOGITS_ALL, &res, &err),
                &err, NNE_CLIENT_RESOURCE_EXHAUSTED, NULL);
  nne_client_close(small);

  /* The daemon is unharmed. */
  b.n_rows = 1;
  forward_ok(c, name, &b, NNE_CLIENT_PAD_NONE, 1, NNE_CLIENT_LOGITS_LAST, &res);
  nne_client_forward_result_free(&res);
  nne_client_close(c);
}
END_TEST

typedef struct bad_case {
  int code;
  const char *needles[4];
  const char *model;
  const char *rows; /* rows separated by ';', ids by ',' ("" = no rows) */
  const char *mask; /* NULL = no mask */
  nne_client_padding_t pad;
  uint32_t top_k;
} bad_case_t;

/* Parses "1,2;3" into rows (static storage, one case at a time). */
static size_t parse_rows(const char *s, int64_t vals[][80], size_t lens[]) {
  size_t n = 0;
  const char *p = s;
  if (*s == '\0')
    return 0;
  for (;;) {
    lens[n] = 0;
    while (*p && *p != ';') {
      char *end;
      if (*p == ',') {
        p++;
        continue;
      }
      vals[n][lens[n]++] = strtoll(p, &end, 10);
      p = end;
    }
    n++;
    if (*p == '\0')
      break;
    p++;
  }
  return n;
}

START_TEST(test_bad_inputs) {
  static const bad_case_t cases[] = {
      {NNE_CLIENT_NOT_FOUND, {"model", "'nope'"}, "nope", "1,2", NULL, 0, 0},
      {NNE_CLIENT_INVALID_ARGUMENT,
       {"input_ids[0][1]", "1000", "vocabulary"},
       NULL,
       "1,1000",
       NULL,
       0,
       0},
      {NNE_CLIENT_INVALID_ARGUMENT,
       {"input_ids[1][2]", "4000"},
       NULL,
       "1,2,3;4,5,4000",
       NULL,
       0,
       0},
      {NNE_CLIENT_INVALID_ARGUMENT,
       {"input_ids[1][0]", "-5"},
       NULL,
       "1;-5",
       NULL,
       0,
       0},
      {NNE_CLIENT_INVALID_ARGUMENT,
       {"input_ids", "empty"},
       NULL,
       "",
       NULL,
       0,
       0},
      {NNE_CLIENT_INVALID_ARGUMENT,
       {"input_ids", "differ", "padding"},
       NULL,
       "1,2;3",
       NULL,
       0,
       0},
      {NNE_CLIENT_INVALID_ARGUMENT,
       {"attention_mask", "1 rows for 2"},
       NULL,
       "1;2",
       "1",
       0,
       0},
      {NNE_CLIENT_INVALID_ARGUMENT,
       {"attention_mask[0]", "2 values for 3"},
       NULL,
       "1,2,3",
       "1,1",
       0,
       0},
      {NNE_CLIENT_INVALID_ARGUMENT,
       {"attention_mask[0][1]", "2"},
       NULL,
       "1,2",
       "1,2",
       0,
       0},
      {NNE_CLIENT_INVALID_ARGUMENT,
       {"top_k", "1000"},
       NULL,
       "1,2,3",
       NULL,
       0,
       1001},
      {NNE_CLIENT_RESOURCE_EXHAUSTED,
       {"17 rows", "max_batch 16"},
       NULL,
       "1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1",
       NULL,
       0,
       0},
  };
  nne_client_t *c = client();
  nne_client_forward_result_t res;
  nne_client_err_t err;
  static int64_t vals[20][80], mvals[20][80];
  static int64_t long_row[65];
  static int32_t m32[20][80];
  size_t lens[20], mlens[20], i, r, k;

  load(c, "gpt2-script");
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const bad_case_t *bc = &cases[i];
    nne_client_token_row_t rows[20];
    nne_client_mask_row_t mask[20];
    nne_client_forward_req_t req;
    size_t n = parse_rows(bc->rows, vals, lens), nm = 0;
    char what[128];
    int rc;

    for (r = 0; r < n; r++)
      rows[r] = (nne_client_token_row_t){vals[r], lens[r]};
    if (bc->mask != NULL) {
      nm = parse_rows(bc->mask, mvals, mlens);
      for (r = 0; r < nm; r++) {
        for (k = 0; k < mlens[r]; k++)
          m32[r][k] = (int32_t)mvals[r][k];
        mask[r] = (nne_client_mask_row_t){m32[r], mlens[r]};
      }
    }
    memset(&req, 0, sizeof req);
    req.model = bc->model ? bc->model : "gpt2-script";
    req.rows = rows;
    req.n_rows = n;
    req.mask = nm ? mask : NULL;
    req.n_mask = nm;
    req.padding = bc->pad;
    req.top_k = bc->top_k;
    snprintf(what, sizeof what, "case %zu (rows '%s', mask '%s', top_k %u)", i,
             bc->rows, bc->mask ? bc->mask : "-", bc->top_k);
    rc = nne_client_forward(c, &req, &res, &err);
    expect_status_v(rc, &err, bc->code, bc->needles, what);
    ck_assert_ptr_null(res.rows);
  }

  /* A row over the model's sequence limit. */
  {
    nne_client_token_row_t row = {long_row, 65};
    nne_client_forward_req_t req;
    for (k = 0; k < 65; k++)
      long_row[k] = 1;
    memset(&req, 0, sizeof req);
    req.model = "gpt2-script";
    req.rows = &row;
    req.n_rows = 1;
    EXPECT_STATUS(nne_client_forward(c, &req, &res, &err), &err,
                  NNE_CLIENT_RESOURCE_EXHAUSTED, "input_ids[0]", "65",
                  "max_seq_len 64", NULL);
  }

  /* The daemon and the model stay healthy. */
  {
    int64_t ok_ids[] = {1, 2, 3};
    nne_client_token_row_t row = {ok_ids, 3};
    nne_client_forward_req_t req;
    memset(&req, 0, sizeof req);
    req.model = "gpt2-script";
    req.rows = &row;
    req.n_rows = 1;
    req.top_k = 1;
    ck_assert_int_eq(nne_client_forward(c, &req, &res, &err), 0);
    ck_assert_uint_eq(res.n_rows, 1);
    nne_client_forward_result_free(&res);
  }
  nne_client_close(c);
}
END_TEST

/* A method the daemon does not have fails at once (no hang until the
 * deadline); a malformed request is refused by name. */
START_TEST(test_unknown_method) {
  nne_client_t *c = client();
  nne_client_err_t err;
  void *resp;
  size_t len;
  double t0 = now_s();
  /* field 2 (input_ids), length-delimited, declares 50 bytes, has 2 */
  static const unsigned char malformed[] = {0x12, 0x32, 0x08, 0x01};

  EXPECT_STATUS(nne_client_call_raw(c, "/nnedit.v2.Models/List", "", 0, &resp,
                                    &len, &err),
                &err, NNE_CLIENT_UNIMPLEMENTED, "/nnedit.v2.Models/List", NULL);
  ck_assert_ptr_null(resp);
  EXPECT_STATUS(nne_client_call_raw(c, "/nnedit.v1.Models/Frobnicate", "", 0,
                                    &resp, &len, &err),
                &err, NNE_CLIENT_UNIMPLEMENTED, NULL);
  ck_assert_msg(now_s() - t0 < 5.0, "UNIMPLEMENTED took %.2f s", now_s() - t0);
  EXPECT_STATUS(nne_client_call_raw(c, "/nnedit.v1.Inference/Forward",
                                    malformed, sizeof malformed, &resp, &len,
                                    &err),
                &err, NNE_CLIENT_INVALID_ARGUMENT, "malformed", NULL);
  EXPECT_STATUS(nne_client_call_raw(c, "no-slash", "", 0, &resp, &len, &err),
                &err, NNE_CLIENT_INVALID_ARGUMENT, NULL);
  /* A known method through the same door. */
  ck_assert_msg(nne_client_call_raw(c, "/nnedit.v1.Models/List", "", 0, &resp,
                                    &len, &err) == 0,
                "%s", err.message);
  ck_assert_uint_gt(len, 0);
  nne_client_free(resp);
  nne_client_close(c);
}
END_TEST

/* Many threads, one client: every result whole and identical. */
typedef struct worker {
  nne_client_t *c;
  const batch_t *b;
  const nne_npy_t *ref;
  int failures;
  char why[NNE_CLIENT_ERR_MAX];
} worker_t;

static void *worker_main(void *arg) {
  worker_t *w = arg;
  int i;
  for (i = 0; i < 8; i++) {
    nne_client_forward_result_t res;
    nne_client_err_t err;
    if (forward(w->c, "gpt2-script", w->b, NNE_CLIENT_PAD_NONE, 3,
                NNE_CLIENT_LOGITS_ALL, &res, &err) != 0) {
      w->failures++;
      snprintf(w->why, sizeof w->why, "%s", err.message);
    } else if (res.logits.nbytes != w->ref->nbytes ||
               memcmp(res.logits.data, w->ref->data, w->ref->nbytes) != 0) {
      w->failures++;
      snprintf(w->why, sizeof w->why, "logits differ");
    }
    nne_client_forward_result_free(&res);
  }
  return NULL;
}

START_TEST(test_threads) {
  nne_client_t *c = client();
  nne_fixture_t *f = fixture("gpt2-script");
  nne_npy_t ref;
  batch_t b;
  pthread_t th[6];
  worker_t w[6];
  int i;

  load(c, "gpt2-script");
  ref_load(f, "logits_jit.npy", &ref);
  batch_from_ids(&b, &f->input_ids);
  for (i = 0; i < 6; i++) {
    w[i] = (worker_t){c, &b, &ref, 0, ""};
    ck_assert_int_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
  }
  for (i = 0; i < 6; i++) {
    pthread_join(th[i], NULL);
    ck_assert_msg(w[i].failures == 0, "thread %d: %d failures (%s)", i,
                  w[i].failures, w[i].why);
  }
  nne_npy_free(&ref);
  nne_fixture_free(f);
  nne_client_close(c);
}
END_TEST

START_TEST(test_deadline) {
  nne_client_t *c = client(), *hasty;
  nne_client_forward_result_t res;
  nne_client_err_t err;
  static int64_t ids[16][64];
  batch_t b;
  size_t r, j;

  load(c, "neox-script");
  memset(&b, 0, sizeof b);
  for (r = 0; r < 16; r++) {
    for (j = 0; j < 64; j++)
      ids[r][j] = (int64_t)((r * 7 + j * 3) % VOCAB);
    b.rows[r] = (nne_client_token_row_t){ids[r], 64};
  }
  b.n_rows = 16;
  /* 1 ms cannot cover a connection and a 16 x 64 forward pass. */
  hasty = client_to(g_daemon.addr, 1);
  EXPECT_STATUS(forward(hasty, "neox-script", &b, NNE_CLIENT_PAD_NONE, 1,
                        NNE_CLIENT_LOGITS_ALL, &res, &err),
                &err, NNE_CLIENT_DEADLINE_EXCEEDED, "timeout 1 ms", NULL);
  nne_client_close(hasty);
  /* The abandoned call leaves the daemon serving. */
  forward_ok(c, "neox-script", &b, NNE_CLIENT_PAD_NONE, 1,
             NNE_CLIENT_LOGITS_LAST, &res);
  nne_client_forward_result_free(&res);
  nne_client_close(c);
}
END_TEST

/* ---- a daemon of the test's own ----------------------------------------- */

START_TEST(test_unload_and_drain) {
  nne_test_daemon_t *d = &g_own;
  nne_client_t *c;
  nne_client_model_info_t info;
  nne_client_forward_result_t res;
  nne_client_health_t st;
  nne_client_err_t err;
  int64_t ids[] = {1, 2, 3};
  batch_t b;
  int code;

  own_daemon_start();
  c = client_to(d->addr, 60000);
  ck_assert_int_eq(nne_client_wait_ready(c, 10000, &err), 0);
  memset(&b, 0, sizeof b);
  b.rows[0] = (nne_client_token_row_t){ids, 3};
  b.n_rows = 1;

  /* Not loaded yet: named, and it says why. */
  EXPECT_STATUS(forward(c, "gpt2-script", &b, 0, 1, 0, &res, &err), &err,
                NNE_CLIENT_FAILED_PRECONDITION, "gpt2-script", "not loaded",
                NULL);
  load(c, "gpt2-script");
  forward_ok(c, "gpt2-script", &b, 0, 1, 0, &res);
  nne_client_forward_result_free(&res);
  ck_assert_int_eq(nne_client_models_unload(c, "gpt2-script", &info, &err), 0);
  ck_assert_int_eq(info.state, NNE_CLIENT_MODEL_AVAILABLE);
  EXPECT_STATUS(forward(c, "gpt2-script", &b, 0, 1, 0, &res, &err), &err,
                NNE_CLIENT_FAILED_PRECONDITION, "not loaded", NULL);
  /* Reload in another dtype: the info says so. */
  ck_assert_msg(nne_client_models_load(c, "gpt2-script", "cpu",
                                       NNE_CLIENT_DTYPE_FLOAT64, &info,
                                       &err) == 0,
                "%s", err.message);
  ck_assert_int_eq(info.dtype, NNE_CLIENT_DTYPE_FLOAT64);
  ck_assert_uint_eq(info.param_bytes, 8 * info.param_count);
  forward_ok(c, "gpt2-script", &b, 0, 1, NNE_CLIENT_LOGITS_ALL, &res);
  ck_assert_int_eq(res.logits.dtype, NNE_CLIENT_DTYPE_FLOAT64);
  ck_assert_uint_eq(res.logits.nbytes, 8 * 3 * VOCAB);
  nne_client_forward_result_free(&res);
  ck_assert_int_eq(nne_client_models_unload(c, "gpt2-script", NULL, &err), 0);

  /* SIGTERM: the daemon drains and exits 0; then nothing answers. */
  nne_test_daemon_signal(d, SIGTERM);
  code = nne_test_daemon_wait(d, 30); /* prints the log unless 0 */
  ck_assert_int_eq(code, 0);
  EXPECT_STATUS(nne_client_health_check(c, NULL, &st, &err), &err,
                NNE_CLIENT_UNAVAILABLE, NULL);
  nne_client_close(c);
}
END_TEST

static Suite *client_suite(void) {
  Suite *s = suite_create("client");
  TCase *tc;

  tc = tcase_create("local");
  tcase_add_test(tc, test_names);
  tcase_add_test(tc, test_local_errors);
  tcase_add_test(tc, test_unavailable);
  tcase_add_test(tc, test_write_npy);
  tcase_set_timeout(tc, 30);
  suite_add_tcase(s, tc);

  tc = tcase_create("serving");
  tcase_add_unchecked_fixture(tc, daemon_setup, daemon_teardown);
  tcase_add_test(tc, test_health);
  tcase_add_test(tc, test_list);
  tcase_add_loop_test(tc, test_load_describe, 0, N_NAMES);
  tcase_add_loop_test(tc, test_forward_reference, 0, N_NAMES);
  tcase_add_test(tc, test_forward_single_and_padding);
  tcase_add_test(tc, test_forward_chunks_and_limits);
  tcase_add_test(tc, test_bad_inputs);
  tcase_add_test(tc, test_unknown_method);
  tcase_add_test(tc, test_threads);
  tcase_add_test(tc, test_deadline);
  tcase_set_timeout(tc, 180);
  suite_add_tcase(s, tc);

  tc = tcase_create("lifecycle");
  tcase_add_test(tc, test_unload_and_drain);
  tcase_set_timeout(tc, 180);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr;
  int failed;

  /* Registered before libcheck forks, so that every test process has it. */
  atexit(stop_own_daemon_at_exit);
  sr = srunner_create(client_suite());
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
