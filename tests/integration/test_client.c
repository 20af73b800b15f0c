/* test_client.c — libnnedit against a real nneditd on loopback.
 *
 * One daemon serves the "serving" test cases; it is started in an unchecked
 * fixture (tests/support/daemon.h). Models are loaded by the tests
 * themselves (Load is idempotent and blocks until loaded), so the parent
 * never touches gRPC. Cases that change the daemon's life (unload,
 * SIGTERM) start a daemon of their own.
 *
 * Numbers are checked against the fixtures' Python references: the logits of
 * the saved archive run in Python (ref/logits_jit.npy) are the same graph on
 * the same libtorch, so the daemon must agree bit for bit on the same batch;
 * a row run alone may differ in the last bits (BLAS blocking) and is checked
 * to 1e-5. Bad inputs are checked for their status code and for naming the
 * field at fault.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fixtures.h"
#include "nnedit.h"
#include "npy.h"
#include "daemon.h"
#include "client_helpers.h"

#define VOCAB 1000

static nne_test_daemon_t g_daemon; /* the suite's, in the parent */
static nne_test_daemon_t g_own;    /* a test's own, in that test's process */

/* ---- helpers ------------------------------------------------------------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A client of the suite's daemon, connected. */
static nne_client_t *client(void) {
  return nne_tc_ready(g_daemon.addr, 60000, 0);
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

#define EXPECT_STATUS NNE_TC_EXPECT_STATUS

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

static void own_daemon_start(void) {
  ck_assert_int_eq(nne_test_daemon_start(&g_own, NULL), 0);
}

static void daemon_setup(void) {
  nne_test_daemon_setup(&g_daemon, NULL);
}

static void daemon_teardown(void) {
  nne_test_daemon_teardown(&g_daemon);
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
  nne_client_token_row_t row = {.ids = NULL, .n_ids = 3};
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
  c = nne_tc_connect("127.0.0.1:1", 5000, 0);
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
  {
    /* A module name over DescribeModelRequest.module's bound; save names
     * that cannot come back as a tensor's name. */
    static char longmod[NNE_CLIENT_MODULE_NAME_MAX + 8];
    const char *saves[2] = {"layers.0.resid_post", NULL};
    memset(longmod, 'm', sizeof longmod - 1);
    req.padding = NNE_CLIENT_PAD_NONE;
    EXPECT_STATUS(nne_client_models_describe_module(c, "gpt2-script", longmod,
                                                    &desc, &err),
                  &err, NNE_CLIENT_INVALID_ARGUMENT, "module",
                  "longer than 511", NULL);
    req.save = NULL;
    req.n_save = 1;
    EXPECT_STATUS(nne_client_forward(c, &req, &res, &err), &err,
                  NNE_CLIENT_INVALID_ARGUMENT, "save is NULL", NULL);
    req.save = saves;
    req.n_save = 2;
    EXPECT_STATUS(nne_client_forward(c, &req, &res, &err), &err,
                  NNE_CLIENT_INVALID_ARGUMENT, "save[1] is NULL", NULL);
    saves[1] = longname;
    EXPECT_STATUS(nne_client_forward(c, &req, &res, &err), &err,
                  NNE_CLIENT_INVALID_ARGUMENT, "save[1]", "longer than 255",
                  NULL);
    ck_assert_ptr_null(res.saved);
    ck_assert_uint_eq(res.n_saved, 0);
    req.save = NULL;
    req.n_save = 0;
  }
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
  nne_client_t *c = nne_tc_connect("127.0.0.1:1", 5000, 0);
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
  /* try_connect gives up at the first refusal, whatever its time limit. */
  t0 = now_s();
  EXPECT_STATUS(nne_client_try_connect(c, 20000, &err), &err,
                NNE_CLIENT_UNAVAILABLE, "127.0.0.1:1", NULL);
  ck_assert_msg(now_s() - t0 < 5.0, "try_connect took %.2f s", now_s() - t0);
  EXPECT_STATUS(nne_client_try_connect(NULL, 0, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, NULL);
  EXPECT_STATUS(nne_client_try_connect(c, -1, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, NULL);
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
  nne_client_t *c = nne_tc_connect(g_daemon.addr, 60000, 0);
  const char *services[] = {"", "nnedit.v1.Models", "nnedit.v1.Inference",
                            "grpc.health.v1.Health"};
  nne_client_health_t st, w[4];
  nne_client_err_t err;
  size_t i, n;
  double t0;

  /* A daemon that serves: the one attempt connects; a second call finds
   * the channel ready. */
  ck_assert_msg(nne_client_try_connect(c, 10000, &err) == 0, "try_connect: %s",
                err.message);
  ck_assert_int_eq(nne_client_try_connect(c, 0, &err), 0);
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
  nne_tc_load(c, names[0]);
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
  nne_client_model_info_free(&info);
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

  nne_tc_load(c, name);
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

  nne_tc_load(c, name);
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
  b.rows[0] = (nne_client_token_row_t){.ids = long_row, .n_ids = 5};
  b.rows[1] = (nne_client_token_row_t){.ids = short_row, .n_ids = 2};
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
  b.rows[0] = (nne_client_token_row_t){.ids = long_row, .n_ids = 5};
  b.rows[1] = (nne_client_token_row_t){.ids = short_row, .n_ids = 2};
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

  nne_tc_load(c, name);
  memset(&b, 0, sizeof b);
  for (r = 0; r < 16; r++) {
    for (j = 0; j < 64; j++)
      ids[r][j] = (int64_t)((r * 37 + j) % VOCAB);
    b.rows[r] = (nne_client_token_row_t){.ids = ids[r], .n_ids = 64};
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
  b.rows[0] = (nne_client_token_row_t){.ids = ids[0], .n_ids = 64};
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

  nne_tc_load(c, "gpt2-script");
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const bad_case_t *bc = &cases[i];
    nne_client_token_row_t rows[20];
    nne_client_mask_row_t mask[20];
    nne_client_forward_req_t req;
    size_t n = parse_rows(bc->rows, vals, lens), nm = 0;
    char what[128];
    int rc;

    for (r = 0; r < n; r++)
      rows[r] = (nne_client_token_row_t){.ids = vals[r], .n_ids = lens[r]};
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
    nne_tc_expect_status_v(rc, &err, bc->code, bc->needles, what);
    ck_assert_ptr_null(res.rows);
  }

  /* A row over the model's sequence limit. */
  {
    nne_client_token_row_t row = {.ids = long_row, .n_ids = 65};
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
    nne_client_token_row_t row = {.ids = ok_ids, .n_ids = 3};
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

  nne_tc_load(c, "gpt2-script");
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

  nne_tc_load(c, "neox-script");
  memset(&b, 0, sizeof b);
  for (r = 0; r < 16; r++) {
    for (j = 0; j < 64; j++)
      ids[r][j] = (int64_t)((r * 7 + j * 3) % VOCAB);
    b.rows[r] = (nne_client_token_row_t){.ids = ids[r], .n_ids = 64};
  }
  b.n_rows = 16;
  /* 1 ms cannot cover a connection and a 16 x 64 forward pass. */
  hasty = nne_tc_connect(g_daemon.addr, 1, 0);
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

/* ---- standard names (a daemon on a repository of the test's own) -------- */

/* The names cases run against a daemon whose repository is made here: each
 * fixture's archive (a symlink) with a model.json that has no "family", so
 * the family must be detected from the archive, plus "gpt2-names", the
 * GPT-2 archive with user renames (one of which matches nothing). */

static nne_test_daemon_t g_names_daemon;
static pid_t g_names_parent;
static char g_names_repo[256];

#define NAMES_MODEL "gpt2-names"
static const char *g_names_renames =
    "{\"transformer.h.{i}.attn\": \"blk{i}.attention\","
    " \"transformer.h.{i}\": \"block{i}\","
    " \"transformer.h.{i}.nonexistent\": \"ghost{i}\"}";

/* Where each family keeps the standard modules (NAMES.md), with {i} for a
 * layer index. */
typedef struct std_row {
  const char *std, *raw;
} std_row_t;

typedef struct family_map {
  const char *family;
  const char *layer_list; /* raw path of the layer list */
  std_row_t rows[12];
} family_map_t;

static const family_map_t g_family_maps[] = {
    {"gpt2",
     "transformer.h",
     {{"embed_tokens", "transformer.wte"},
      {"embed_positions", "transformer.wpe"},
      {"layers", "transformer.h"},
      {"layers.{i}", "transformer.h.{i}"},
      {"layers.{i}.self_attn", "transformer.h.{i}.attn"},
      {"layers.{i}.mlp", "transformer.h.{i}.mlp"},
      {"layers.{i}.ln_attn", "transformer.h.{i}.ln_1"},
      {"layers.{i}.ln_mlp", "transformer.h.{i}.ln_2"},
      {"ln_final", "transformer.ln_f"},
      {"lm_head", "lm_head"},
      {NULL, NULL}}},
    {"llama",
     "model.layers",
     {{"embed_tokens", "model.embed_tokens"},
      {"layers", "model.layers"},
      {"layers.{i}", "model.layers.{i}"},
      {"layers.{i}.self_attn", "model.layers.{i}.self_attn"},
      {"layers.{i}.mlp", "model.layers.{i}.mlp"},
      {"layers.{i}.ln_attn", "model.layers.{i}.input_layernorm"},
      {"layers.{i}.ln_mlp", "model.layers.{i}.post_attention_layernorm"},
      {"ln_final", "model.norm"},
      {"lm_head", "lm_head"},
      {NULL, NULL}}},
    {"gpt_neox",
     "gpt_neox.layers",
     {{"embed_tokens", "gpt_neox.embed_in"},
      {"layers", "gpt_neox.layers"},
      {"layers.{i}", "gpt_neox.layers.{i}"},
      {"layers.{i}.self_attn", "gpt_neox.layers.{i}.attention"},
      {"layers.{i}.mlp", "gpt_neox.layers.{i}.mlp"},
      {"layers.{i}.ln_attn", "gpt_neox.layers.{i}.input_layernorm"},
      {"layers.{i}.ln_mlp", "gpt_neox.layers.{i}.post_attention_layernorm"},
      {"ln_final", "gpt_neox.final_layer_norm"},
      {"lm_head", "embed_out"},
      {NULL, NULL}}},
};

static const family_map_t *family_map(const char *family) {
  size_t i;
  for (i = 0; i < sizeof g_family_maps / sizeof g_family_maps[0]; i++)
    if (strcmp(g_family_maps[i].family, family) == 0)
      return &g_family_maps[i];
  ck_abort_msg("no family map for '%s' in the test", family);
  return NULL;
}

/* pattern with "{i}" replaced by i. */
static void expand(const char *pattern, int i, char *out, size_t cap) {
  const char *p = strstr(pattern, "{i}");
  if (p == NULL)
    snprintf(out, cap, "%s", pattern);
  else
    snprintf(out, cap, "%.*s%d%s", (int)(p - pattern), pattern, i, p + 3);
}

static void names_write_model(const char *fixture_name, const char *as,
                              const char *renames) {
  char src[1024], dir[512], path[640];
  json_error_t jerr;
  json_t *root;

  snprintf(dir, sizeof dir, "%s/%s", g_names_repo, as);
  if (mkdir(dir, 0700) != 0) {
    perror(dir);
    exit(1);
  }
  snprintf(src, sizeof src, "%s/%s/model.pt", nne_fixtures_dir(), fixture_name);
  snprintf(path, sizeof path, "%s/model.pt", dir);
  if (symlink(src, path) != 0) {
    perror(path);
    exit(1);
  }
  snprintf(src, sizeof src, "%s/%s/model.json", nne_fixtures_dir(),
           fixture_name);
  root = json_load_file(src, 0, &jerr);
  if (root == NULL) {
    fprintf(stderr, "test_client: %s: %s\n", src, jerr.text);
    exit(1);
  }
  /* No "family": the daemon must find it in the archive. */
  json_object_del(root, "family");
  if (renames != NULL)
    json_object_set_new(root, "names", json_loads(renames, 0, &jerr));
  snprintf(path, sizeof path, "%s/model.json", dir);
  if (json_dump_file(root, path, JSON_INDENT(1)) != 0) {
    fprintf(stderr, "test_client: cannot write %s\n", path);
    exit(1);
  }
  json_decref(root);
}

static void names_repo_remove(void) {
  static const char *const files[] = {"model.pt", "model.json"};
  char path[640];
  size_t i, k;
  if (g_names_repo[0] == '\0')
    return;
  for (i = 0; i <= (size_t)N_NAMES; i++) {
    const char *n = i < (size_t)N_NAMES ? g_names[i] : NAMES_MODEL;
    for (k = 0; k < 2; k++) {
      snprintf(path, sizeof path, "%s/%s/%s", g_names_repo, n, files[k]);
      unlink(path);
    }
    snprintf(path, sizeof path, "%s/%s", g_names_repo, n);
    rmdir(path);
  }
  rmdir(g_names_repo);
  g_names_repo[0] = '\0';
}

/* The repository outlives a run that dies early by no more than its
 * daemon (stopped first). */
static void names_at_exit(void) {
  if (getpid() != g_names_parent)
    return;
  nne_test_daemon_stop(&g_names_daemon);
  names_repo_remove();
}

static void names_setup(void) {
  const char *args[] = {"--model-repo", g_names_repo, NULL};
  int i;
  snprintf(g_names_repo, sizeof g_names_repo, "/tmp/nnedit-names-XXXXXX");
  if (mkdtemp(g_names_repo) == NULL) {
    perror("mkdtemp");
    exit(1);
  }
  g_names_parent = getpid();
  atexit(names_at_exit);
  for (i = 0; i < N_NAMES; i++)
    names_write_model(g_names[i], g_names[i], NULL);
  names_write_model("gpt2-script", NAMES_MODEL, g_names_renames);
  nne_test_daemon_setup(&g_names_daemon, args);
}

static void names_teardown(void) {
  nne_test_daemon_teardown(&g_names_daemon);
  names_repo_remove();
}

static nne_client_t *names_client(void) {
  nne_client_err_t err;
  nne_client_t *c = nne_tc_connect(g_names_daemon.addr, 60000, 0);
  ck_assert_msg(nne_client_wait_ready(c, 10000, &err) == 0, "wait_ready: %s",
                err.message);
  return c;
}

static bool has_str(const char *const *v, size_t n, const char *s) {
  size_t i;
  for (i = 0; i < n; i++)
    if (strcmp(v[i], s) == 0)
      return true;
  return false;
}

/* Some warning mentions `needle`. */
static bool warned(const nne_client_model_info_t *m, const char *needle) {
  size_t i;
  for (i = 0; i < m->n_warnings; i++)
    if (strstr(m->warnings[i], needle) != NULL)
      return true;
  return false;
}

static const nne_client_module_t *desc_module(const nne_client_model_desc_t *d,
                                              const char *path) {
  size_t i;
  for (i = 0; i < d->n_modules; i++)
    if (strcmp(d->modules[i].path, path) == 0)
      return &d->modules[i];
  return NULL;
}

static const nne_client_site_t *desc_site(const nne_client_model_desc_t *d,
                                          const char *name) {
  size_t i;
  for (i = 0; i < d->n_sites; i++)
    if (strcmp(d->sites[i].name, name) == 0)
      return &d->sites[i];
  return NULL;
}

static void describe_ok(nne_client_t *c, const char *model, const char *module,
                        nne_client_model_desc_t *d) {
  nne_client_err_t err;
  int rc = nne_client_models_describe_module(c, model, module, d, &err);
  ck_assert_msg(rc == 0, "describe %s module '%s': %s: %s", model,
                module ? module : "", nne_client_status_name(err.code),
                err.message);
}

/* Two descriptions hold the same modules (names included) and sites. */
static void expect_same_desc(const nne_client_model_desc_t *a,
                             const nne_client_model_desc_t *b,
                             const char *what) {
  size_t i, k;
  ck_assert_msg(a->n_modules == b->n_modules, "%s: %zu vs %zu modules", what,
                a->n_modules, b->n_modules);
  for (i = 0; i < a->n_modules; i++) {
    const nne_client_module_t *x = &a->modules[i], *y = &b->modules[i];
    ck_assert_msg(strcmp(x->path, y->path) == 0 &&
                      strcmp(x->class_name, y->class_name) == 0 &&
                      x->parent == y->parent && x->depth == y->depth &&
                      x->n_standard_names == y->n_standard_names &&
                      x->n_aliases == y->n_aliases,
                  "%s: modules[%zu] '%s' vs '%s'", what, i, x->path, y->path);
    for (k = 0; k < x->n_standard_names; k++)
      ck_assert_str_eq(x->standard_names[k], y->standard_names[k]);
    for (k = 0; k < x->n_aliases; k++)
      ck_assert_str_eq(x->aliases[k], y->aliases[k]);
  }
  ck_assert_msg(a->n_sites == b->n_sites, "%s: %zu vs %zu sites", what,
                a->n_sites, b->n_sites);
  for (i = 0; i < a->n_sites; i++) {
    const nne_client_site_t *x = &a->sites[i], *y = &b->sites[i];
    ck_assert_msg(strcmp(x->name, y->name) == 0 &&
                      strcmp(x->canonical, y->canonical) == 0 &&
                      x->available == y->available,
                  "%s: sites[%zu] '%s' vs '%s'", what, i, x->name, y->name);
  }
}

/* The family is detected from the archive (model.json has none), every
 * standard module of NAMES.md is on the right module, the per-layer sites
 * are there, and a subtree is the same whichever spelling names it. */
START_TEST(test_names_family) {
  const char *name = g_names[_i];
  nne_client_t *c = names_client();
  nne_fixture_t *f = fixture(name);
  const family_map_t *fm = family_map(f->family);
  nne_client_model_info_t info;
  nne_client_model_desc_t d, by_std, by_raw;
  nne_client_err_t err;
  const nne_client_site_t *site;
  char std[128], raw[512];
  size_t i, r, n_layers = 0;
  int layer;

  ck_assert_msg(nne_client_models_load(c, name, NULL, 0, &info, &err) == 0,
                "load %s: %s", name, err.message);
  for (i = 0; i < info.n_warnings; i++)
    fprintf(stderr, "%s: warning: %s\n", name, info.warnings[i]);
  ck_assert_msg(strcmp(info.family, f->family) == 0,
                "%s: family '%s' (%s), expected '%s'", name, info.family,
                info.family_reason, f->family);
  ck_assert_msg(info.family_reason[0] != '\0' &&
                    strcmp(info.family_reason, "model.json") != 0,
                "%s: family reason '%s' (model.json has no family)", name,
                info.family_reason);
  /* The layer count is that of the layer list's numbered children. */
  for (i = 0; i < f->n_modules; i++) {
    size_t l = strlen(fm->layer_list);
    const char *p = f->modules[i].path;
    if (strncmp(p, fm->layer_list, l) == 0 && p[l] == '.' &&
        strchr(p + l + 1, '.') == NULL)
      n_layers++;
  }
  ck_assert_uint_gt(n_layers, 0);
  ck_assert_uint_eq(info.layer_count, n_layers);
  nne_client_model_info_free(&info);

  describe_ok(c, name, NULL, &d);
  ck_assert_str_eq(d.model.family, f->family);
  ck_assert_uint_eq(d.n_modules, f->n_modules);
  for (r = 0; fm->rows[r].std != NULL; r++) {
    bool per_layer = strstr(fm->rows[r].std, "{i}") != NULL;
    for (layer = 0; layer < (per_layer ? (int)n_layers : 1); layer++) {
      const nne_client_module_t *m;
      expand(fm->rows[r].std, layer, std, sizeof std);
      expand(fm->rows[r].raw, layer, raw, sizeof raw);
      m = desc_module(&d, raw);
      ck_assert_msg(m != NULL, "%s: no module '%s'", name, raw);
      ck_assert_msg(has_str(m->standard_names, m->n_standard_names, std),
                    "%s: module '%s' lacks the standard name '%s' (has %zu)",
                    name, raw, std, m->n_standard_names);
    }
  }
  /* The raw paths are never replaced. */
  ck_assert_ptr_nonnull(desc_module(&d, fm->layer_list));

  /* Sites: the residual stream of each layer, TransformerLens names. */
  site = desc_site(&d, "embed");
  ck_assert_msg(site != NULL && strcmp(site->tl_name, "hook_embed") == 0,
                "%s: no site 'embed' (hook_embed)", name);
  for (layer = 0; layer < (int)n_layers; layer++) {
    char tl[128], lraw[512];
    snprintf(std, sizeof std, "layers.%d.resid_post", layer);
    snprintf(tl, sizeof tl, "blocks.%d.hook_resid_post", layer);
    snprintf(lraw, sizeof lraw, "%s.%d", fm->layer_list, layer);
    site = desc_site(&d, std);
    ck_assert_msg(site != NULL, "%s: no site '%s'", name, std);
    ck_assert_str_eq(site->tl_name, tl);
    ck_assert_msg(site->available, "%s: %s unavailable: %s", name, std,
                  site->reason);
    ck_assert_str_eq(site->module, lraw);
    ck_assert_int_eq(site->kind, NNE_CLIENT_SITE_OUTPUT);
    ck_assert_msg(strncmp(site->canonical, lraw, strlen(lraw)) == 0,
                  "%s: %s resolved to '%s', not in %s", name, std,
                  site->canonical, lraw);
  }

  /* A subtree, by standard name and by raw path: the same description. */
  for (r = 0; strcmp(fm->rows[r].std, "layers.{i}.self_attn") != 0; r++)
    ;
  expand(fm->rows[r].raw, 1, raw, sizeof raw);
  describe_ok(c, name, "layers.1.self_attn", &by_std);
  describe_ok(c, name, raw, &by_raw);
  ck_assert_uint_gt(by_std.n_modules, 0);
  ck_assert_str_eq(by_std.modules[0].path, raw);
  ck_assert_int_eq(by_std.modules[0].parent, -1);
  ck_assert_msg(has_str(by_std.modules[0].standard_names,
                        by_std.modules[0].n_standard_names,
                        "layers.1.self_attn"),
                "%s: subtree root lacks its standard name", name);
  expect_same_desc(&by_std, &by_raw, "layers.1.self_attn vs raw");
  nne_client_model_desc_free(&by_std);
  nne_client_model_desc_free(&by_raw);
  nne_client_model_desc_free(&d);
  nne_fixture_free(f);
  nne_client_close(c);
}
END_TEST

/* User renames: aliases on the modules, the same subtree by standard name,
 * raw path and alias; a rename that matches nothing is a warning. */
START_TEST(test_names_aliases) {
  nne_client_t *c = names_client();
  nne_fixture_t *f = fixture("gpt2-script");
  nne_client_model_info_t info;
  nne_client_model_desc_t d, s1, s2, s3;
  nne_client_err_t err;
  const nne_client_module_t *m;
  size_t i, n_sub = 0;

  ck_assert_msg(
      nne_client_models_load(c, NAMES_MODEL, NULL, 0, &info, &err) == 0,
      "load: %s", err.message);
  ck_assert_str_eq(info.family, "gpt2");
  ck_assert_msg(strcmp(info.family_reason, "model.json") != 0,
                "family reason '%s'", info.family_reason);
  ck_assert_msg(warned(&info, "nonexistent"),
                "Load: no warning about the rename that matches nothing "
                "(%zu warnings)",
                info.n_warnings);
  nne_client_model_info_free(&info);

  describe_ok(c, NAMES_MODEL, NULL, &d);
  ck_assert_msg(warned(&d.model, "nonexistent"),
                "Describe: no warning about the rename that matches nothing");
  m = desc_module(&d, "transformer.h.0.attn");
  ck_assert_ptr_nonnull(m);
  ck_assert(has_str(m->standard_names, m->n_standard_names,
                    "layers.0.self_attn"));
  ck_assert_msg(has_str(m->aliases, m->n_aliases, "blk0.attention"),
                "transformer.h.0.attn: no alias blk0.attention (%zu aliases)",
                m->n_aliases);
  ck_assert(!has_str(m->aliases, m->n_aliases, "layers.0.self_attn"));
  m = desc_module(&d, "transformer.h.1");
  ck_assert_ptr_nonnull(m);
  ck_assert(has_str(m->aliases, m->n_aliases, "block1"));
  ck_assert(has_str(m->standard_names, m->n_standard_names, "layers.1"));
  nne_client_model_desc_free(&d);

  describe_ok(c, NAMES_MODEL, "layers.1.self_attn", &s1);
  describe_ok(c, NAMES_MODEL, "transformer.h.1.attn", &s2);
  describe_ok(c, NAMES_MODEL, "blk1.attention", &s3);
  for (i = 0; i < f->n_modules; i++)
    if (strncmp(f->modules[i].path, "transformer.h.1.attn", 20) == 0)
      n_sub++;
  ck_assert_uint_eq(s1.n_modules, n_sub);
  ck_assert_str_eq(s1.modules[0].path, "transformer.h.1.attn");
  ck_assert_str_eq(s1.modules[0].class_name, "GPT2Attention");
  ck_assert_int_eq(s1.modules[0].parent, -1);
  for (i = 1; i < s1.n_modules; i++) {
    ck_assert_int_ge(s1.modules[i].parent, 0);
    ck_assert_msg(strncmp(s1.modules[i].path, "transformer.h.1.attn.", 21) ==
                      0,
                  "subtree holds '%s'", s1.modules[i].path);
  }
  ck_assert_msg(desc_site(&s1, "layers.1.attn_out") != NULL,
                "subtree sites lack layers.1.attn_out (%zu sites)",
                s1.n_sites);
  ck_assert_msg(desc_site(&s1, "layers.0.attn_out") == NULL &&
                    desc_site(&s1, "layers.1.resid_post") == NULL,
                "subtree sites hold sites outside it");
  for (i = 0; i < s1.n_sites; i++)
    ck_assert_msg(!s1.sites[i].available ||
                      strncmp(s1.sites[i].module, "transformer.h.1.attn", 20) ==
                          0,
                  "subtree site %s lives in '%s'", s1.sites[i].name,
                  s1.sites[i].module);
  expect_same_desc(&s1, &s2, "standard name vs raw path");
  expect_same_desc(&s1, &s3, "standard name vs user alias");
  nne_client_model_desc_free(&s1);
  nne_client_model_desc_free(&s2);
  nne_client_model_desc_free(&s3);
  nne_fixture_free(f);
  nne_client_close(c);
}
END_TEST

/* `n` appears in s as a number of its own ("2", not in "12" or "2.5"). */
static bool has_number(const char *s, long n) {
  const char *p;
  for (p = s; *p; p++) {
    char *end;
    long v;
    if (*p < '0' || *p > '9' || (p > s && p[-1] >= '0' && p[-1] <= '9') ||
        (p > s && p[-1] == '.'))
      continue;
    v = strtol(p, &end, 10);
    if (v == n && !(*end == '.' && end[1] >= '0' && end[1] <= '9'))
      return true;
  }
  return false;
}

START_TEST(test_names_errors) {
  nne_client_t *c = names_client();
  nne_client_model_desc_t d;
  nne_client_forward_result_t res;
  nne_client_forward_req_t req;
  nne_client_err_t err;
  int64_t ids[] = {1, 2, 3};
  nne_client_token_row_t row = {.ids = ids, .n_ids = 3};
  const char *bad_site[] = {"layers.0.resid_pots"};
  const char *bad_module[] = {"transformer.h.0.atn.output"};
  const char *far_site[] = {"layers.99.resid_post"};
  int rc;

  nne_tc_load(c, NAMES_MODEL);
  /* Unknown: NOT_FOUND with the closest valid names. */
  EXPECT_STATUS(nne_client_models_describe_module(c, NAMES_MODEL,
                                                  "layers.0.self_atn", &d,
                                                  &err),
                &err, NNE_CLIENT_NOT_FOUND, "layers.0.self_atn",
                "layers.0.self_attn", NULL);
  ck_assert_ptr_null(d.modules);
  EXPECT_STATUS(nne_client_models_describe_module(c, NAMES_MODEL,
                                                  "transformer.h.0.atn", &d,
                                                  &err),
                &err, NNE_CLIENT_NOT_FOUND, "transformer.h.0.atn", NULL);
  /* A layer out of range: INVALID_ARGUMENT naming the layer count. */
  rc = nne_client_models_describe_module(c, NAMES_MODEL, "layers.99.mlp", &d,
                                         &err);
  EXPECT_STATUS(rc, &err, NNE_CLIENT_INVALID_ARGUMENT, "layers.99", NULL);
  ck_assert_msg(has_number(err.message, 2),
                "'%s' does not name the layer count 2", err.message);

  memset(&req, 0, sizeof req);
  req.model = NAMES_MODEL;
  req.rows = &row;
  req.n_rows = 1;
  req.top_k = 1;
  req.save = bad_module;
  req.n_save = 1;
  EXPECT_STATUS(nne_client_forward(c, &req, &res, &err), &err,
                NNE_CLIENT_NOT_FOUND, "transformer.h.0.atn",
                "transformer.h.0.attn", NULL);
  ck_assert_ptr_null(res.saved);
  req.save = far_site;
  rc = nne_client_forward(c, &req, &res, &err);
  EXPECT_STATUS(rc, &err, NNE_CLIENT_INVALID_ARGUMENT, "layers.99", NULL);
  ck_assert_msg(has_number(err.message, 2),
                "'%s' does not name the layer count 2", err.message);
  /* The model still serves. */
  req.n_save = 0;
  ck_assert_int_eq(nne_client_forward(c, &req, &res, &err), 0);
  nne_client_forward_result_free(&res);
  /* A misspelt standard site is an unknown name too (issue 3: NOT_FOUND
   * with the closest valid names), not a malformed one. */
  req.save = bad_site;
  req.n_save = 1;
  EXPECT_STATUS(nne_client_forward(c, &req, &res, &err), &err,
                NNE_CLIENT_NOT_FOUND, "layers.0.resid_pots",
                "layers.0.resid_post", NULL);
  nne_client_close(c);
}
END_TEST

/* Largest |a - b| over n floats. */
static double max_abs_diff(const float *a, const float *b, size_t n) {
  double m = 0;
  size_t i;
  for (i = 0; i < n; i++)
    m = fmax(m, fabs((double)a[i] - (double)b[i]));
  return m;
}

/* A captured module input/output of the fixture's Python run. */
static void io_ref(const nne_fixture_t *f, const char *path, const char *kind,
                   int index, nne_npy_t *out) {
  size_t i;
  char msg[512];
  for (i = 0; i < f->n_io; i++)
    if (strcmp(f->io[i].path, path) == 0 && strcmp(f->io[i].kind, kind) == 0 &&
        f->io[i].index == index) {
      ck_assert_msg(nne_fixture_ref_load(&f->io[i].ref, out, msg, sizeof msg) ==
                        0,
                    "%s", msg);
      return;
    }
  ck_abort_msg("%s: no reference %s.%s.%d", f->name, path, kind, index);
}

/* Saved tensor `k` has the reference's shape and values: bit-identical or
 * within 1e-5 (the difference is printed either way). */
static void expect_like_ref(const char *model, const nne_client_tensor_t *t,
                            const nne_npy_t *ref, const char *what) {
  int d;
  double diff;
  ck_assert_int_eq(t->dtype, NNE_CLIENT_DTYPE_FLOAT32);
  ck_assert_msg(t->ndim == (size_t)ref->ndim, "%s '%s': %zu dims, ref %d",
                model, t->name, t->ndim, ref->ndim);
  for (d = 0; d < ref->ndim; d++)
    ck_assert_msg(t->shape[d] == ref->shape[d], "%s '%s': dim %d is %lld, ref %lld",
                  model, t->name, d, (long long)t->shape[d],
                  (long long)ref->shape[d]);
  ck_assert_uint_eq(t->nbytes, ref->nbytes);
  diff = max_abs_diff(t->data, ref->data, ref->numel);
  fprintf(stderr, "%s: saved '%s' vs reference %s: %s (max |diff| %.3g)\n",
          model, t->name, what,
          memcmp(t->data, ref->data, ref->nbytes) == 0 ? "bit-identical"
                                                       : "differs",
          diff);
  ck_assert_msg(diff <= 1e-5, "%s '%s' vs %s: max |diff| %.3g > 1e-5", model,
                t->name, what, diff);
}

static void expect_same_tensor(const nne_client_tensor_t *a,
                               const nne_client_tensor_t *b) {
  size_t d;
  ck_assert_msg(a->dtype == b->dtype && a->ndim == b->ndim &&
                    a->nbytes == b->nbytes,
                "'%s' and '%s' differ in dtype or shape", a->name, b->name);
  for (d = 0; d < a->ndim; d++)
    ck_assert_int_eq(a->shape[d], b->shape[d]);
  ck_assert_msg(memcmp(a->data, b->data, a->nbytes) == 0,
                "'%s' and '%s' are not bit-identical", a->name, b->name);
}

static void forward_saves(nne_client_t *c, const char *model,
                          const nne_fixture_t *f, const char *const *saves,
                          size_t n, nne_client_forward_result_t *res) {
  nne_client_forward_req_t req;
  nne_client_err_t err;
  batch_t b;
  size_t i;
  int rc;

  batch_from_ids(&b, &f->input_ids);
  memset(&req, 0, sizeof req);
  req.model = model;
  req.rows = b.rows;
  req.n_rows = b.n_rows;
  req.top_k = 1;
  req.logits = NNE_CLIENT_LOGITS_ALL;
  req.save = saves;
  req.n_save = n;
  rc = nne_client_forward(c, &req, res, &err);
  ck_assert_msg(rc == 0, "forward %s with saves: %s: %s", model,
                nne_client_status_name(err.code), err.message);
  ck_assert(res->has_logits);
  ck_assert_uint_eq(res->n_saved, n);
  for (i = 0; i < n; i++) {
    size_t first = 0;
    ck_assert_str_eq(res->saved[i].name, saves[i]);
    /* Looked up by name: the first tensor of that name. */
    while (strcmp(saves[first], saves[i]) != 0)
      first++;
    ck_assert_ptr_eq(nne_client_forward_result_saved(res, saves[i]),
                     &res->saved[first]);
  }
}

/* The residual stream after layer 0 under three spellings: bit-identical,
 * and the module output Python captured. Saving leaves the logits alone. */
START_TEST(test_names_save) {
  const char *name = g_names[_i];
  nne_client_t *c = names_client();
  nne_fixture_t *f = fixture(name);
  const family_map_t *fm = family_map(f->family);
  nne_client_forward_result_t res;
  nne_npy_t ref, logits_ref;
  char raw[600], layer0[512];
  const char *saves[3];
  double diff;

  nne_tc_load(c, name);
  snprintf(layer0, sizeof layer0, "%s.0", fm->layer_list);
  snprintf(raw, sizeof raw, "%s.output", layer0);
  saves[0] = raw;
  saves[1] = "layers.0.resid_post";
  saves[2] = "blocks.0.hook_resid_post";
  forward_saves(c, name, f, saves, 3, &res);
  expect_same_tensor(&res.saved[0], &res.saved[1]);
  expect_same_tensor(&res.saved[0], &res.saved[2]);
  io_ref(f, layer0, "output", 0, &ref);
  expect_like_ref(name, &res.saved[1], &ref, "module output");
  ref_load(f, "logits_jit.npy", &logits_ref);
  diff = max_abs_diff(res.logits.data, logits_ref.data, logits_ref.numel);
  fprintf(stderr, "%s: logits of a forward with saves vs logits_jit: max "
                  "|diff| %.3g\n",
          name, diff);
  ck_assert_msg(diff <= 1e-5, "%s: saving changed the logits by %.3g", name,
                diff);
  nne_npy_free(&logits_ref);
  nne_npy_free(&ref);
  nne_client_forward_result_free(&res);
  ck_assert_ptr_null(res.saved);
  nne_fixture_free(f);
  nne_client_close(c);
}
END_TEST

/* With user aliases: the block output and the attention output under every
 * spelling, the attention pattern (rows sum to 1), a name saved twice. */
START_TEST(test_names_save_alias) {
  nne_client_t *c = names_client();
  nne_fixture_t *f = fixture("gpt2-script");
  nne_client_forward_result_t res;
  nne_npy_t ref;
  const nne_client_tensor_t *pat;
  static const char *const saves[] = {
      "transformer.h.0.output",      "layers.0.resid_post",
      "blocks.0.hook_resid_post",    "block0.output",
      "transformer.h.0.attn.output", "layers.0.attn_out",
      "blocks.0.hook_attn_out",      "blk0.attention.output",
      "layers.0.self_attn.pattern",  "layers.0.resid_post",
  };
  size_t i, n = sizeof saves / sizeof saves[0], rows;
  const float *p;

  nne_tc_load(c, NAMES_MODEL);
  forward_saves(c, NAMES_MODEL, f, saves, n, &res);
  for (i = 1; i < 4; i++)
    expect_same_tensor(&res.saved[0], &res.saved[i]);
  expect_same_tensor(&res.saved[0], &res.saved[9]);
  for (i = 5; i < 8; i++)
    expect_same_tensor(&res.saved[4], &res.saved[i]);
  io_ref(f, "transformer.h.0", "output", 0, &ref);
  expect_like_ref(NAMES_MODEL, &res.saved[3], &ref, "transformer.h.0 output");
  nne_npy_free(&ref);
  io_ref(f, "transformer.h.0.attn", "output", 0, &ref);
  expect_like_ref(NAMES_MODEL, &res.saved[7], &ref,
                  "transformer.h.0.attn output");
  nne_npy_free(&ref);

  /* The pattern: [batch, heads, query, key], each row a distribution. */
  pat = nne_client_forward_result_saved(&res, "layers.0.self_attn.pattern");
  ck_assert_ptr_eq(pat, &res.saved[8]);
  expect_shape(pat, 4, (int64_t)2, (int64_t)4, (int64_t)7, (int64_t)7);
  rows = (size_t)(2 * 4 * 7);
  p = pat->data;
  for (i = 0; i < rows; i++) {
    double sum = 0;
    size_t k;
    for (k = 0; k < 7; k++)
      sum += p[i * 7 + k];
    ck_assert_msg(fabs(sum - 1.0) <= 1e-5, "pattern row %zu sums to %.9g", i,
                  sum);
  }
  /* GPT2Attention returns its softmax weights as output 1. */
  io_ref(f, "transformer.h.0.attn", "output", 1, &ref);
  expect_like_ref(NAMES_MODEL, pat, &ref, "attention weights (attn output 1)");
  nne_npy_free(&ref);
  ck_assert_ptr_null(nne_client_forward_result_saved(&res, "nope"));
  nne_client_forward_result_free(&res);
  nne_fixture_free(f);
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
  c = nne_tc_connect(d->addr, 60000, 0);
  ck_assert_int_eq(nne_client_wait_ready(c, 10000, &err), 0);
  memset(&b, 0, sizeof b);
  b.rows[0] = (nne_client_token_row_t){.ids = ids, .n_ids = 3};
  b.n_rows = 1;

  /* Not loaded yet: named, and it says why. */
  EXPECT_STATUS(forward(c, "gpt2-script", &b, 0, 1, 0, &res, &err), &err,
                NNE_CLIENT_FAILED_PRECONDITION, "gpt2-script", "not loaded",
                NULL);
  nne_tc_load(c, "gpt2-script");
  forward_ok(c, "gpt2-script", &b, 0, 1, 0, &res);
  nne_client_forward_result_free(&res);
  ck_assert_int_eq(nne_client_models_unload(c, "gpt2-script", &info, &err), 0);
  ck_assert_int_eq(info.state, NNE_CLIENT_MODEL_AVAILABLE);
  nne_client_model_info_free(&info);
  EXPECT_STATUS(forward(c, "gpt2-script", &b, 0, 1, 0, &res, &err), &err,
                NNE_CLIENT_FAILED_PRECONDITION, "not loaded", NULL);
  /* Reload in another dtype: the info says so. */
  ck_assert_msg(nne_client_models_load(c, "gpt2-script", "cpu",
                                       NNE_CLIENT_DTYPE_FLOAT64, &info,
                                       &err) == 0,
                "%s", err.message);
  ck_assert_int_eq(info.dtype, NNE_CLIENT_DTYPE_FLOAT64);
  ck_assert_uint_eq(info.param_bytes, 8 * info.param_count);
  nne_client_model_info_free(&info);
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

  tc = tcase_create("names");
  tcase_add_unchecked_fixture(tc, names_setup, names_teardown);
  tcase_add_loop_test(tc, test_names_family, 0, N_NAMES);
  tcase_add_test(tc, test_names_aliases);
  tcase_add_test(tc, test_names_errors);
  tcase_add_loop_test(tc, test_names_save, 0, N_NAMES);
  tcase_add_test(tc, test_names_save_alias);
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

  sr = srunner_create(client_suite());
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
