/* test_edits_client.c — libnnedit's edit calls against a real nneditd:
 * Edits/Apply, List, Get, Drop, Models/Graph, Admin/Stats and Forward on an
 * edit set.
 *
 * One daemon serves every "serving" case; it is started in an unchecked
 * fixture (tests/support/daemon.h). Each test loads the model itself (Load
 * is idempotent) and drops the edit sets it made.
 *
 * What is checked on the gpt2-script fixture (2 layers, d_model 64, 4
 * heads, the reference batch of 2 rows of 7 tokens):
 *   - ZERO of layers.0.self_attn.pattern changes the logits; the pristine
 *     model is untouched (bit-equal to the archive run in Python);
 *   - a SAVE edit streams back under its name and equals a save of the
 *     same site in the same forward; a save-only set changes nothing;
 *   - operands arrive exactly: ADD of zeros and SCALE by 1 change nothing,
 *     REPLACE with the value the pristine model computed changes nothing,
 *     an ADD restricted to the last position changes only that position;
 *   - Get resolves canonical site, instance, node and hook ids;
 *   - Apply is atomic: one bad edit (unknown site, range outside the
 *     value, operand of the wrong shape) is INVALID_ARGUMENT naming
 *     edits[i], and List is unchanged;
 *   - Graph shows the softmax with its selector, and the hook of an edit
 *     set as inserted, never in the pristine graph;
 *   - two sets of one structure share a backend: a cache hit in the
 *     second Apply and in Admin/Stats, with their own values;
 *   - Drop, then NOT_FOUND for Forward, Get and Drop;
 *   - two edit sets used from two threads at once give their own results.
 * The "local" case needs no daemon: argument checks and .npy reading.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixtures.h"
#include "nnedit.h"
#include "npy.h"
#include "daemon.h"
#include "client_helpers.h"

#define MODEL "gpt2-script"
#define VOCAB 1000
#define D_MODEL 64

static nne_test_daemon_t g_daemon;

/* ---- helpers ------------------------------------------------------------- */

static nne_client_t *client(void) {
  return nne_tc_ready(g_daemon.addr, 120000, 0);
}

#define EXPECT_STATUS NNE_TC_EXPECT_STATUS

/* The fixture's reference batch: 2 rows of 7 tokens. */
typedef struct batch {
  nne_fixture_t *f;
  nne_client_token_row_t rows[8];
  size_t n_rows;
  int64_t seq;
} batch_t;

static void batch_init(batch_t *b) {
  char msg[512];
  int64_t r;
  memset(b, 0, sizeof *b);
  ck_assert_msg(nne_fixture_load(MODEL, &b->f, msg, sizeof msg) == 0, "%s",
                msg);
  ck_assert(b->f->input_ids.rows <= 8);
  for (r = 0; r < b->f->input_ids.rows; r++) {
    b->rows[r].ids = b->f->input_ids.data + r * b->f->input_ids.cols;
    b->rows[r].n_ids = (size_t)b->f->input_ids.cols;
  }
  b->n_rows = (size_t)b->f->input_ids.rows;
  b->seq = b->f->input_ids.cols;
}

static void batch_free(batch_t *b) {
  nne_fixture_free(b->f);
}

/* Forward of the batch, all logits, on `edit_set` (NULL: pristine). */
static int fwd(nne_client_t *c, const batch_t *b, const char *edit_set,
               const char *const *save, size_t n_save,
               nne_client_forward_result_t *res, nne_client_err_t *err) {
  nne_client_forward_req_t req;
  memset(&req, 0, sizeof req);
  req.model = MODEL;
  req.rows = b->rows;
  req.n_rows = b->n_rows;
  req.top_k = 1;
  req.logits = NNE_CLIENT_LOGITS_ALL;
  req.save = save;
  req.n_save = n_save;
  req.edit_set = edit_set;
  return nne_client_forward(c, &req, res, err);
}

static void fwd_ok(nne_client_t *c, const batch_t *b, const char *edit_set,
                   const char *const *save, size_t n_save,
                   nne_client_forward_result_t *res) {
  nne_client_err_t err;
  int rc = fwd(c, b, edit_set, save, n_save, res, &err);
  ck_assert_msg(rc == 0, "forward on %s: %s: %s",
                edit_set ? edit_set : "the pristine model",
                nne_client_status_name(err.code), err.message);
  ck_assert(res->has_logits);
  ck_assert_int_eq(res->logits.dtype, NNE_CLIENT_DTYPE_FLOAT32);
}

static void apply_ok(nne_client_t *c, const nne_client_edit_t *e, size_t n,
                     const char *label, nne_client_edit_set_info_t *info) {
  nne_client_err_t err;
  int rc = nne_client_edits_apply(c, MODEL, e, n, label, info, &err);
  ck_assert_msg(rc == 0, "apply: %s: %s", nne_client_status_name(err.code),
                err.message);
  ck_assert_msg(info->id[0] != '\0', "apply: no id");
  ck_assert_str_eq(info->model, MODEL);
  ck_assert_uint_eq(info->edit_count, n);
}

static void drop_ok(nne_client_t *c, const char *id) {
  nne_client_edit_set_info_t info;
  nne_client_err_t err;
  uint64_t freed = 0;
  int rc = nne_client_edits_drop(c, id, &info, &freed, &err);
  ck_assert_msg(rc == 0, "drop %s: %s: %s", id,
                nne_client_status_name(err.code), err.message);
  ck_assert_str_eq(info.id, id);
}

static size_t count_sets(nne_client_t *c, const char *model) {
  nne_client_edit_set_list_t l;
  nne_client_err_t err;
  size_t n;
  ck_assert_msg(nne_client_edits_list(c, model, &l, &err) == 0, "list: %s",
                err.message);
  n = l.n_sets;
  nne_client_edit_set_list_free(&l);
  return n;
}

static bool list_has(nne_client_t *c, const char *model, const char *id) {
  nne_client_edit_set_list_t l;
  nne_client_err_t err;
  size_t i;
  bool found = false;
  ck_assert_msg(nne_client_edits_list(c, model, &l, &err) == 0, "list: %s",
                err.message);
  for (i = 0; i < l.n_sets; i++)
    found |= strcmp(l.sets[i].id, id) == 0;
  nne_client_edit_set_list_free(&l);
  return found;
}

static bool same_tensor(const nne_client_tensor_t *a,
                        const nne_client_tensor_t *b) {
  return a->dtype == b->dtype && a->ndim == b->ndim &&
         memcmp(a->shape, b->shape, a->ndim * sizeof a->shape[0]) == 0 &&
         a->nbytes == b->nbytes && memcmp(a->data, b->data, a->nbytes) == 0;
}

static double max_abs_diff(const nne_client_tensor_t *a,
                           const nne_client_tensor_t *b) {
  const float *x = a->data, *y = b->data;
  size_t i, n = a->nbytes / 4;
  double m = 0;
  for (i = 0; i < n && i < b->nbytes / 4; i++)
    m = fmax(m, fabs((double)x[i] - (double)y[i]));
  return m;
}

static void expect_same(const nne_client_tensor_t *a,
                        const nne_client_tensor_t *b, const char *what) {
  ck_assert_msg(same_tensor(a, b), "%s: tensors differ (max |diff| %.3g)", what,
                max_abs_diff(a, b));
}

/* Logits [batch, seq, VOCAB]: are positions [p0, p1) of every row equal? */
static bool positions_equal(const nne_client_tensor_t *a,
                            const nne_client_tensor_t *b, int64_t p0,
                            int64_t p1) {
  const float *x = a->data, *y = b->data;
  int64_t r, p;
  for (r = 0; r < a->shape[0]; r++)
    for (p = p0; p < p1; p++) {
      size_t off = (size_t)((r * a->shape[1] + p) * VOCAB);
      if (memcmp(x + off, y + off, VOCAB * sizeof *x) != 0)
        return false;
    }
  return true;
}

/* ---- the suite's daemon -------------------------------------------------- */

static void daemon_setup(void) {
  nne_test_daemon_setup(&g_daemon, NULL);
}

static void daemon_teardown(void) {
  nne_test_daemon_teardown(&g_daemon);
}

/* ---- no daemon needed ---------------------------------------------------- */

START_TEST(test_names) {
  nne_client_edit_op_t op;
  nne_client_err_t err;
  ck_assert_str_eq(nne_client_edit_op_name(NNE_CLIENT_EDIT_SAVE), "save");
  ck_assert_str_eq(nne_client_edit_op_name(NNE_CLIENT_EDIT_ZERO), "zero");
  ck_assert_str_eq(nne_client_edit_op_name(0), "unspecified");
  ck_assert_str_eq(nne_client_edit_op_name(99), "unspecified");
  ck_assert_int_eq(nne_client_edit_op_parse("Replace", &op, &err), 0);
  ck_assert_int_eq(op, NNE_CLIENT_EDIT_REPLACE);
  ck_assert_int_eq(nne_client_edit_op_parse("SCALE", &op, &err), 0);
  ck_assert_int_eq(op, NNE_CLIENT_EDIT_SCALE);
  EXPECT_STATUS(nne_client_edit_op_parse("mul", &op, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "'mul'", NULL);
  ck_assert_str_eq(nne_client_node_kind_name(NNE_CLIENT_NODE_HOOK), "hook");
  ck_assert_str_eq(nne_client_node_kind_name(NNE_CLIENT_NODE_ATTRIBUTE),
                   "attribute");
  ck_assert_str_eq(nne_client_node_kind_name(42), "unspecified");
}
END_TEST

/* Everything here is refused before any I/O: the client points nowhere. */
START_TEST(test_local_errors) {
  nne_client_t *c = nne_tc_connect("127.0.0.1:1", 120000, 0);
  nne_client_err_t err;
  nne_client_edit_set_info_t info;
  nne_client_edit_set_t set;
  nne_client_edit_set_list_t list;
  nne_client_graph_t g;
  nne_client_stats_t st;
  nne_client_forward_result_t res;
  nne_client_forward_req_t req;
  nne_client_dim_range_t ranges[9];
  nne_client_tensor_t t;
  nne_client_edit_t e[2];
  char longname[700];
  float data[4] = {1, 2, 3, 4};
  int64_t ids[2] = {1, 2};
  nne_client_token_row_t row = {.ids = ids, .n_ids = 2};
  uint64_t freed = 7;

  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  memset(ranges, 0, sizeof ranges);
  memset(&t, 0, sizeof t);
  t.dtype = NNE_CLIENT_DTYPE_FLOAT32;
  t.ndim = 1;
  t.shape[0] = 4;
  t.nbytes = sizeof data;
  t.data = data;
  memset(e, 0, sizeof e);
  e[0].site = "layers.0.resid_post";
  e[0].op = NNE_CLIENT_EDIT_ZERO;
  e[1] = e[0];

  memset(&info, 0xff, sizeof info);
  EXPECT_STATUS(nne_client_edits_apply(c, NULL, e, 2, NULL, &info, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "name is NULL", NULL);
  ck_assert_str_eq(info.id, ""); /* zeroed on entry */
  EXPECT_STATUS(nne_client_edits_apply(c, longname, e, 2, NULL, &info, &err),
                &err, NNE_CLIENT_INVALID_ARGUMENT, "longer than 127", NULL);
  EXPECT_STATUS(nne_client_edits_apply(c, MODEL, NULL, 2, NULL, &info, &err),
                &err, NNE_CLIENT_INVALID_ARGUMENT, "NULL", NULL);
  EXPECT_STATUS(nne_client_edits_apply(c, MODEL, e, 2, longname, &info, &err),
                &err, NNE_CLIENT_INVALID_ARGUMENT, "label", NULL);
  EXPECT_STATUS(nne_client_edits_apply(c, MODEL, e,
                                       (size_t)NNE_CLIENT_MAX_EDITS + 1, NULL,
                                       &info, &err),
                &err, NNE_CLIENT_INVALID_ARGUMENT, "more than 65536", NULL);
  e[1].site = NULL;
  EXPECT_STATUS(nne_client_edits_apply(c, MODEL, e, 2, NULL, &info, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "edits[1].site is NULL", NULL);
  e[1].site = longname;
  EXPECT_STATUS(nne_client_edits_apply(c, MODEL, e, 2, NULL, &info, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "edits[1].site", "255", NULL);
  e[1].site = "layers.0.resid_post";
  e[1].name = longname;
  EXPECT_STATUS(nne_client_edits_apply(c, MODEL, e, 2, NULL, &info, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "edits[1].name", NULL);
  e[1].name = NULL;
  e[1].ranges = ranges;
  e[1].n_ranges = 9;
  EXPECT_STATUS(nne_client_edits_apply(c, MODEL, e, 2, NULL, &info, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "edits[1].ranges", "more than 8",
                NULL);
  e[1].ranges = NULL;
  e[1].n_ranges = 1;
  EXPECT_STATUS(nne_client_edits_apply(c, MODEL, e, 2, NULL, &info, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "edits[1].ranges is NULL", NULL);
  e[1].n_ranges = 0;
  e[1].op = NNE_CLIENT_EDIT_ADD;
  e[1].tensor = &t;
  e[1].use_scalar = true;
  EXPECT_STATUS(nne_client_edits_apply(c, MODEL, e, 2, NULL, &info, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "edits[1]: both a tensor", NULL);
  e[1].use_scalar = false;
  t.nbytes = 12;
  EXPECT_STATUS(nne_client_edits_apply(c, MODEL, e, 2, NULL, &info, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "edits[1].tensor: nbytes 12",
                NULL);
  t.nbytes = sizeof data;
  t.dtype = 0;
  EXPECT_STATUS(nne_client_edits_apply(c, MODEL, e, 2, NULL, &info, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "edits[1].tensor: unknown dtype",
                NULL);
  t.dtype = NNE_CLIENT_DTYPE_FLOAT32;
  t.ndim = 9;
  EXPECT_STATUS(nne_client_edits_apply(c, MODEL, e, 2, NULL, &info, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "edits[1].tensor: 9 dims", NULL);
  t.ndim = 1;
  t.shape[0] = -4;
  EXPECT_STATUS(nne_client_edits_apply(c, MODEL, e, 2, NULL, &info, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "edits[1].tensor: shape[0]", NULL);
  t.shape[0] = 4;
  t.data = NULL;
  EXPECT_STATUS(nne_client_edits_apply(c, MODEL, e, 2, NULL, &info, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "edits[1].tensor: data is NULL",
                NULL);
  t.data = data;
  /* Well-formed: refused only by the missing daemon. */
  EXPECT_STATUS(nne_client_edits_apply(c, MODEL, e, 2, NULL, &info, &err), &err,
                NNE_CLIENT_UNAVAILABLE, NULL);

  memset(&list, 0xff, sizeof list);
  EXPECT_STATUS(nne_client_edits_list(c, longname, &list, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "model", NULL);
  ck_assert_ptr_null(list.sets);
  nne_client_edit_set_list_free(&list);
  memset(&set, 0xff, sizeof set);
  EXPECT_STATUS(nne_client_edits_get(c, NULL, &set, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "edits_get", NULL);
  ck_assert_ptr_null(set.edits);
  ck_assert_ptr_null(set.strings);
  nne_client_edit_set_free(&set);
  EXPECT_STATUS(nne_client_edits_get(c, longname, &set, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "longer than 63", NULL);
  EXPECT_STATUS(nne_client_edits_drop(c, longname, &info, &freed, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "longer than 63", NULL);
  ck_assert_uint_eq(freed, 0);
  EXPECT_STATUS(nne_client_edits_drop(c, NULL, NULL, NULL, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, NULL);

  memset(&g, 0xff, sizeof g);
  EXPECT_STATUS(nne_client_models_graph(c, NULL, NULL, NULL, &g, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "models_graph", NULL);
  ck_assert_ptr_null(g.nodes);
  ck_assert_ptr_null(g.text);
  nne_client_graph_free(&g);
  EXPECT_STATUS(nne_client_models_graph(c, MODEL, longname, NULL, &g, &err),
                &err, NNE_CLIENT_INVALID_ARGUMENT, "module", NULL);
  EXPECT_STATUS(nne_client_models_graph(c, MODEL, NULL, longname, &g, &err),
                &err, NNE_CLIENT_INVALID_ARGUMENT, "edit_set", NULL);
  EXPECT_STATUS(nne_client_admin_stats(c, NULL, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, NULL);
  memset(&st, 0xff, sizeof st);
  EXPECT_STATUS(nne_client_admin_stats(NULL, &st, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, NULL);
  ck_assert_ptr_null(st.caches);
  nne_client_stats_free(&st);

  memset(&req, 0, sizeof req);
  req.model = MODEL;
  req.rows = &row;
  req.n_rows = 1;
  req.edit_set = longname;
  EXPECT_STATUS(nne_client_forward(c, &req, &res, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "edit_set", "longer than 63",
                NULL);
  nne_client_forward_result_free(&res);
  nne_client_close(c);
}
END_TEST

/* Writes a .npy file by hand: magic, version, header, then data. */
static void write_raw_npy(const char *path, int version, const char *dict,
                          const void *data, size_t n, size_t extra) {
  FILE *f = fopen(path, "wb");
  size_t pre = version == 1 ? 10 : 12, hl = strlen(dict) + 1, total;
  unsigned char hdr[16];
  total = (pre + hl + 63) / 64 * 64;
  ck_assert_ptr_nonnull(f);
  memcpy(hdr, "\x93NUMPY", 6);
  hdr[6] = (unsigned char)version;
  hdr[7] = 0;
  hl = total - pre;
  hdr[8] = (unsigned char)(hl & 0xff);
  hdr[9] = (unsigned char)(hl >> 8);
  hdr[10] = hdr[11] = 0;
  fwrite(hdr, 1, pre, f);
  fputs(dict, f);
  for (size_t k = strlen(dict) + 1; k < hl; k++)
    fputc(' ', f);
  fputc('\n', f);
  if (n > 0)
    fwrite(data, 1, n, f);
  for (size_t k = 0; k < extra; k++)
    fputc(0, f);
  fclose(f);
}

START_TEST(test_read_npy) {
  char dir[] = "/tmp/nnedit-npy-XXXXXX", path[256];
  nne_client_tensor_t t, back;
  nne_client_err_t err;
  float f[6] = {0.5f, -1, 2, 3.25f, 1e-20f, 7};
  int64_t i64[3] = {-1, 0, (int64_t)1 << 40};
  uint16_t bf[2] = {0x3f80, 0xc000}; /* 1.0, -2.0 */

  ck_assert_ptr_nonnull(mkdtemp(dir));
  /* Round trip through write_npy: float32 [2, 3]. */
  memset(&t, 0, sizeof t);
  t.dtype = NNE_CLIENT_DTYPE_FLOAT32;
  t.ndim = 2;
  t.shape[0] = 2;
  t.shape[1] = 3;
  t.nbytes = sizeof f;
  t.data = f;
  snprintf(path, sizeof path, "%s/f.npy", dir);
  ck_assert_int_eq(nne_client_tensor_write_npy(&t, path, &err), 0);
  ck_assert_msg(nne_client_tensor_read_npy(path, 0, &back, &err) == 0, "%s",
                err.message);
  ck_assert_str_eq(back.name, "");
  ck_assert(same_tensor(&t, &back));
  nne_client_tensor_free(&back);
  /* The data bound. */
  EXPECT_STATUS(nne_client_tensor_read_npy(path, 23, &back, &err), &err,
                NNE_CLIENT_RESOURCE_EXHAUSTED, "24 bytes", NULL);
  ck_assert_ptr_null(back.data);
  ck_assert_int_eq(nne_client_tensor_read_npy(path, 24, &back, &err), 0);
  nne_client_tensor_free(&back);
  /* int64 [3], a 1-D shape "(3,)". */
  t.dtype = NNE_CLIENT_DTYPE_INT64;
  t.ndim = 1;
  t.shape[0] = 3;
  t.nbytes = sizeof i64;
  t.data = i64;
  ck_assert_int_eq(nne_client_tensor_write_npy(&t, path, &err), 0);
  ck_assert_int_eq(nne_client_tensor_read_npy(path, 0, &back, &err), 0);
  ck_assert(same_tensor(&t, &back));
  nne_client_tensor_free(&back);
  /* bfloat16 is written as float32 and read back as such, exactly. */
  t.dtype = NNE_CLIENT_DTYPE_BFLOAT16;
  t.shape[0] = 2;
  t.nbytes = sizeof bf;
  t.data = bf;
  ck_assert_int_eq(nne_client_tensor_write_npy(&t, path, &err), 0);
  ck_assert_int_eq(nne_client_tensor_read_npy(path, 0, &back, &err), 0);
  ck_assert_int_eq(back.dtype, NNE_CLIENT_DTYPE_FLOAT32);
  ck_assert(((float *)back.data)[0] == 1.0f &&
            ((float *)back.data)[1] == -2.0f);
  nne_client_tensor_free(&back);
  /* A 0-dim tensor, format 2.0. */
  write_raw_npy(path, 2,
                "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
                "\0\0\0\0\0\0\xf0\x3f", 8, 0);
  ck_assert_msg(nne_client_tensor_read_npy(path, 0, &back, &err) == 0, "%s",
                err.message);
  ck_assert_uint_eq(back.ndim, 0);
  ck_assert(back.dtype == NNE_CLIENT_DTYPE_FLOAT64 &&
            *(double *)back.data == 1.0);
  nne_client_tensor_free(&back);

  /* Refusals, each naming the file and the header field. */
  write_raw_npy(path, 1,
                "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f,
                sizeof f, 0);
  EXPECT_STATUS(nne_client_tensor_read_npy(path, 0, &back, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, path, "fortran_order", NULL);
  write_raw_npy(path, 1,
                "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }", f,
                sizeof f, 0);
  EXPECT_STATUS(nne_client_tensor_read_npy(path, 0, &back, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "'>f4'", NULL);
  write_raw_npy(path, 1,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (7,), }", f,
                sizeof f, 0);
  EXPECT_STATUS(nne_client_tensor_read_npy(path, 0, &back, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "24 bytes of data", "say 28",
                NULL);
  write_raw_npy(path, 1,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", f,
                sizeof f, 3);
  EXPECT_STATUS(nne_client_tensor_read_npy(path, 0, &back, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "27 bytes of data", NULL);
  write_raw_npy(path, 1,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-6,), }", f,
                sizeof f, 0);
  EXPECT_STATUS(nne_client_tensor_read_npy(path, 0, &back, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "'shape'", NULL);
  write_raw_npy(path, 1, "{'fortran_order': False, 'shape': (6,), }", f,
                sizeof f, 0);
  EXPECT_STATUS(nne_client_tensor_read_npy(path, 0, &back, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "no 'descr'", NULL);
  write_raw_npy(path, 4, "{}", NULL, 0, 0);
  EXPECT_STATUS(nne_client_tensor_read_npy(path, 0, &back, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "version 4.0", NULL);
  snprintf(path, sizeof path, "%s/none.npy", dir);
  EXPECT_STATUS(nne_client_tensor_read_npy(path, 0, &back, &err), &err,
                NNE_CLIENT_INVALID_ARGUMENT, "none.npy", NULL);
  ck_assert_ptr_null(back.data);
  snprintf(path, sizeof path, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(path), 0);
}
END_TEST

/* ---- serving ------------------------------------------------------------- */

/* ZERO of the attention pattern of layer 0, plus a SAVE edit: resolved,
 * run, compared with the pristine model, listed, dropped. */
START_TEST(test_zero_pattern) {
  nne_client_t *c = client();
  nne_client_edit_t e[2];
  nne_client_edit_set_info_t info;
  nne_client_edit_set_t set;
  nne_client_forward_result_t pristine, edited;
  nne_client_err_t err;
  nne_npy_t ref;
  const char *save[] = {"layers.0.mlp_out"};
  char msg[512], path[1024];
  uint64_t freed = 0;
  batch_t b;
  size_t i;

  nne_tc_load(c, MODEL);
  batch_init(&b);
  memset(e, 0, sizeof e);
  e[0].site = "layers.0.self_attn.pattern";
  e[0].op = NNE_CLIENT_EDIT_ZERO;
  e[1].site = "layers.0.mlp_out";
  e[1].op = NNE_CLIENT_EDIT_SAVE;
  e[1].name = "mlp0";
  apply_ok(c, e, 2, "zero layer 0 pattern", &info);
  ck_assert_str_eq(info.label, "zero layer 0 pattern");
  ck_assert(list_has(c, MODEL, info.id));
  ck_assert(list_has(c, NULL, info.id));
  ck_assert(list_has(c, "", info.id));

  /* Get: what each edit resolved to. */
  ck_assert_msg(nne_client_edits_get(c, info.id, &set, &err) == 0, "get: %s",
                err.message);
  ck_assert_str_eq(set.info.id, info.id);
  ck_assert_uint_eq(set.info.edit_count, 2);
  ck_assert_uint_eq(set.n_edits, 2);
  for (i = 0; i < 2; i++) {
    const nne_client_resolved_edit_t *r = &set.edits[i];
    ck_assert_uint_eq(r->index, i);
    ck_assert_str_eq(r->site, e[i].site);
    ck_assert_int_eq(r->op, e[i].op);
    ck_assert_ptr_nonnull(r->canonical);
    ck_assert_ptr_nonnull(r->node);
    ck_assert_ptr_nonnull(r->standard);
    ck_assert_uint_eq(r->n_ranges, 0);
    ck_assert(!r->use_scalar && r->tensor_dtype == 0);
  }
  ck_assert_str_eq(set.edits[0].instance, "transformer.h.0.attn");
  ck_assert_msg(strncmp(set.edits[0].canonical,
                        "transformer.h.0.attn:aten::softmax#", 35) == 0,
                "canonical '%s'", set.edits[0].canonical);
  ck_assert_msg(strncmp(set.edits[0].node, "aten::softmax#", 14) == 0,
                "node '%s'", set.edits[0].node);
  ck_assert_str_eq(set.edits[0].standard, "layers.0.self_attn.pattern");
  ck_assert_msg(strncmp(set.edits[1].instance, "transformer.h.0", 15) == 0,
                "instance '%s'", set.edits[1].instance);
  ck_assert_str_eq(set.edits[1].name, "mlp0");
  ck_assert_msg(set.edits[0].hook_id != set.edits[1].hook_id,
                "two edits share hook id %u", set.edits[0].hook_id);
  nne_client_edit_set_free(&set);

  /* The pristine model: the archive's logits, bit for bit. */
  snprintf(path, sizeof path, "%s/ref/logits_jit.npy", b.f->dir);
  ck_assert_msg(nne_npy_load(path, &ref, msg, sizeof msg) == 0, "%s", msg);
  fwd_ok(c, &b, NULL, save, 1, &pristine);
  ck_assert_uint_eq(pristine.n_saved, 1);
  ck_assert_uint_eq(pristine.logits.nbytes, ref.nbytes);
  ck_assert_msg(memcmp(pristine.logits.data, ref.data, ref.nbytes) == 0,
                "pristine logits differ from logits_jit");

  /* The edit set: other logits; the SAVE edit after the request's save,
   * under its name, equal to it. */
  fwd_ok(c, &b, info.id, save, 1, &edited);
  ck_assert_uint_eq(edited.n_saved, 2);
  ck_assert_str_eq(edited.saved[0].name, "layers.0.mlp_out");
  ck_assert_str_eq(edited.saved[1].name, "mlp0");
  ck_assert_ptr_eq(nne_client_forward_result_saved(&edited, "mlp0"),
                   &edited.saved[1]);
  ck_assert_int_eq(edited.saved[1].ndim, 3);
  ck_assert_int_eq(edited.saved[1].shape[2], D_MODEL);
  expect_same(&edited.saved[1], &edited.saved[0], "SAVE edit vs save");
  ck_assert_msg(!same_tensor(&edited.logits, &pristine.logits),
                "ZERO of layers.0.self_attn.pattern left the logits unchanged");
  ck_assert_msg(!same_tensor(&edited.saved[0], &pristine.saved[0]),
                "ZERO of the pattern left layers.0.mlp_out unchanged");
  nne_client_forward_result_free(&edited);
  nne_client_forward_result_free(&pristine);

  /* The pristine model is not touched by runs on the set. */
  fwd_ok(c, &b, NULL, NULL, 0, &pristine);
  ck_assert_msg(memcmp(pristine.logits.data, ref.data, ref.nbytes) == 0,
                "pristine logits changed after a run on an edit set");
  nne_client_forward_result_free(&pristine);

  /* Drop: gone for Forward, Get, Drop and List. */
  {
    nne_client_edit_set_info_t dropped;
    ck_assert_msg(nne_client_edits_drop(c, info.id, &dropped, &freed, &err) ==
                      0,
                  "drop: %s", err.message);
    ck_assert_str_eq(dropped.id, info.id);
    ck_assert_uint_eq(dropped.edit_count, 2);
  }
  EXPECT_STATUS(fwd(c, &b, info.id, NULL, 0, &edited, &err), &err,
                NNE_CLIENT_NOT_FOUND, info.id, NULL);
  ck_assert_ptr_null(edited.logits.data);
  EXPECT_STATUS(nne_client_edits_get(c, info.id, &set, &err), &err,
                NNE_CLIENT_NOT_FOUND, info.id, NULL);
  EXPECT_STATUS(nne_client_edits_drop(c, info.id, NULL, NULL, &err), &err,
                NNE_CLIENT_NOT_FOUND, NULL);
  ck_assert(!list_has(c, MODEL, info.id));
  nne_npy_free(&ref);
  batch_free(&b);
  nne_client_close(c);
}
END_TEST

/* A set of SAVE edits only changes nothing, and its values equal Forward's
 * own saves of the same sites. */
START_TEST(test_save_only) {
  nne_client_t *c = client();
  nne_client_edit_t e[2];
  nne_client_edit_set_info_t info;
  nne_client_forward_result_t pristine, edited;
  const char *save[] = {"layers.1.resid_post", "layers.0.self_attn.pattern"};
  batch_t b;

  nne_tc_load(c, MODEL);
  batch_init(&b);
  memset(e, 0, sizeof e);
  e[0].site = "layers.1.resid_post"; /* no name: named by its site */
  e[0].op = NNE_CLIENT_EDIT_SAVE;
  e[1].site = "blocks.0.attn.hook_pattern";
  e[1].op = NNE_CLIENT_EDIT_SAVE;
  e[1].name = "pattern0";
  apply_ok(c, e, 2, NULL, &info);
  ck_assert_str_eq(info.label, "");

  fwd_ok(c, &b, NULL, save, 2, &pristine);
  fwd_ok(c, &b, info.id, NULL, 0, &edited);
  ck_assert_uint_eq(edited.n_saved, 2);
  ck_assert_str_eq(edited.saved[0].name, "layers.1.resid_post");
  ck_assert_str_eq(edited.saved[1].name, "pattern0");
  expect_same(&edited.logits, &pristine.logits, "logits of a save-only set");
  expect_same(&edited.saved[0], &pristine.saved[0],
              "SAVE edit vs Forward save of layers.1.resid_post");
  expect_same(&edited.saved[1], &pristine.saved[1],
              "SAVE edit vs Forward save of the pattern");
  nne_client_forward_result_free(&edited);
  nne_client_forward_result_free(&pristine);
  drop_ok(c, info.id);
  batch_free(&b);
  nne_client_close(c);
}
END_TEST

/* Operands travel exactly: no-op values leave the logits bit-equal, the
 * value the pristine model computed can be put back, and a range limits
 * an edit to the positions it names. */
START_TEST(test_operands) {
  nne_client_t *c = client();
  nne_client_edit_t e;
  nne_client_edit_set_info_t info;
  nne_client_forward_result_t pristine, edited;
  nne_client_tensor_t t;
  nne_client_dim_range_t last = {1, -1, 0};
  const char *save[] = {"layers.0.resid_post"};
  float vec[D_MODEL];
  batch_t b;
  size_t i;

  nne_tc_load(c, MODEL);
  batch_init(&b);
  fwd_ok(c, &b, NULL, save, 1, &pristine);
  memset(&t, 0, sizeof t);
  t.dtype = NNE_CLIENT_DTYPE_FLOAT32;
  t.ndim = 1;
  t.shape[0] = D_MODEL;
  t.nbytes = sizeof vec;
  t.data = vec;

  /* ADD zeros: nothing changes. */
  memset(vec, 0, sizeof vec);
  memset(&e, 0, sizeof e);
  e.site = "layers.1.resid_post";
  e.op = NNE_CLIENT_EDIT_ADD;
  e.tensor = &t;
  apply_ok(c, &e, 1, "add zeros", &info);
  ck_assert_uint_eq(info.tensor_bytes, sizeof vec);
  fwd_ok(c, &b, info.id, NULL, 0, &edited);
  expect_same(&edited.logits, &pristine.logits, "ADD of zeros");
  nne_client_forward_result_free(&edited);
  drop_ok(c, info.id);

  /* SCALE by 1: nothing changes. */
  memset(&e, 0, sizeof e);
  e.site = "layers.0.attn_out";
  e.op = NNE_CLIENT_EDIT_SCALE;
  e.use_scalar = true;
  e.scalar = 1.0;
  apply_ok(c, &e, 1, NULL, &info);
  fwd_ok(c, &b, info.id, NULL, 0, &edited);
  expect_same(&edited.logits, &pristine.logits, "SCALE by 1");
  nne_client_forward_result_free(&edited);
  drop_ok(c, info.id);

  /* REPLACE with the value the pristine model computed there (a tensor
   * received from the daemon, passed back as is): nothing changes. */
  memset(&e, 0, sizeof e);
  e.site = "layers.0.resid_post";
  e.op = NNE_CLIENT_EDIT_REPLACE;
  e.tensor = &pristine.saved[0];
  apply_ok(c, &e, 1, "patch", &info);
  fwd_ok(c, &b, info.id, NULL, 0, &edited);
  expect_same(&edited.logits, &pristine.logits, "REPLACE with the same value");
  nne_client_forward_result_free(&edited);
  drop_ok(c, info.id);

  /* ADD a vector at the last position only: earlier positions (causal)
   * keep their logits, the last one changes. */
  for (i = 0; i < D_MODEL; i++)
    vec[i] = 0.5f + (float)i / D_MODEL;
  memset(&e, 0, sizeof e);
  e.site = "layers.1.resid_post";
  e.op = NNE_CLIENT_EDIT_ADD;
  e.tensor = &t;
  e.ranges = &last;
  e.n_ranges = 1;
  apply_ok(c, &e, 1, "steer the last position", &info);
  fwd_ok(c, &b, info.id, NULL, 0, &edited);
  ck_assert_msg(positions_equal(&edited.logits, &pristine.logits, 0, b.seq - 1),
                "an edit of the last position changed earlier positions");
  ck_assert_msg(
      !positions_equal(&edited.logits, &pristine.logits, b.seq - 1, b.seq),
      "an ADD at the last position left it unchanged");
  nne_client_forward_result_free(&edited);
  drop_ok(c, info.id);

  nne_client_forward_result_free(&pristine);
  batch_free(&b);
  nne_client_close(c);
}
END_TEST

/* Apply is atomic: a good edit followed by a bad one creates nothing, and
 * the status names the bad one by position. */
START_TEST(test_apply_atomic) {
  nne_client_t *c = client();
  nne_client_edit_t e[2];
  nne_client_edit_set_info_t info;
  nne_client_err_t err;
  nne_client_dim_range_t far = {1, 50, 60}; /* pattern is [2, 4, 7, 7] */
  nne_client_tensor_t t;
  float vec[D_MODEL - 1] = {0};
  size_t before, k;
  int rc;

  nne_tc_load(c, MODEL);
  before = count_sets(c, MODEL);
  memset(&t, 0, sizeof t);
  t.dtype = NNE_CLIENT_DTYPE_FLOAT32;
  t.ndim = 1;
  t.shape[0] = D_MODEL - 1;
  t.nbytes = sizeof vec;
  t.data = vec;
  for (k = 0; k < 3; k++) {
    memset(e, 0, sizeof e);
    e[0].site = "layers.1.resid_post";
    e[0].op = NNE_CLIENT_EDIT_SCALE;
    e[0].use_scalar = true;
    e[0].scalar = 2;
    if (k == 0) { /* an unknown site */
      e[1].site = "layers.0.no_such_site";
      e[1].op = NNE_CLIENT_EDIT_ZERO;
    } else if (k == 1) { /* a range outside the value */
      e[1].site = "layers.0.self_attn.pattern";
      e[1].op = NNE_CLIENT_EDIT_ZERO;
      e[1].ranges = &far;
      e[1].n_ranges = 1;
    } else { /* an operand of the wrong shape */
      e[1].site = "layers.1.resid_post";
      e[1].op = NNE_CLIENT_EDIT_ADD;
      e[1].tensor = &t;
    }
    memset(&info, 0xff, sizeof info);
    rc = nne_client_edits_apply(c, MODEL, e, 2, "bad", &info, &err);
    /* Within Apply every bad edit is INVALID_ARGUMENT naming it (an
     * unknown site still lists the closest valid names). */
    EXPECT_STATUS(rc, &err, NNE_CLIENT_INVALID_ARGUMENT, "edits[1]", NULL);
    ck_assert_str_eq(info.id, "");
    ck_assert_msg(count_sets(c, MODEL) == before,
                  "a refused Apply (case %zu) left an edit set behind", k);
  }
  /* An unknown model. */
  EXPECT_STATUS(
      nne_client_edits_apply(c, "no-such-model", e, 1, NULL, &info, &err), &err,
      NNE_CLIENT_NOT_FOUND, "no-such-model", NULL);
  ck_assert_uint_eq(count_sets(c, MODEL), before);
  nne_client_close(c);
}
END_TEST

static const nne_client_graph_node_t *find_node(const nne_client_graph_t *g,
                                                const char *op) {
  size_t i;
  for (i = 0; i < g->n_nodes; i++)
    if (strcmp(g->nodes[i].op, op) == 0)
      return &g->nodes[i];
  return NULL;
}

static size_t count_inserted(const nne_client_graph_t *g) {
  size_t i, n = 0;
  for (i = 0; i < g->n_nodes; i++)
    n += g->nodes[i].inserted || g->nodes[i].kind == NNE_CLIENT_NODE_HOOK;
  return n;
}

START_TEST(test_graph) {
  nne_client_t *c = client();
  nne_client_graph_t g;
  nne_client_err_t err;
  nne_client_edit_t e;
  nne_client_edit_set_info_t info;
  const nne_client_graph_node_t *sm;
  size_t i, k;

  nne_tc_load(c, MODEL);
  ck_assert_msg(nne_client_models_graph(c, MODEL, "layers.0.self_attn", NULL,
                                        &g, &err) == 0,
                "graph: %s: %s", nne_client_status_name(err.code), err.message);
  ck_assert_str_eq(g.module, "transformer.h.0.attn");
  ck_assert(!g.edited);
  ck_assert_uint_gt(g.n_nodes, 0);
  ck_assert_uint_eq(count_inserted(&g), 0);
  ck_assert_ptr_nonnull(g.text);
  ck_assert_uint_gt(g.text_len, 0);
  ck_assert_uint_eq(strlen(g.text), g.text_len);
  for (i = 0; i < g.n_nodes; i++) {
    const nne_client_graph_node_t *n = &g.nodes[i];
    ck_assert(n->op && n->instance && n->selector && n->source && n->shape &&
              n->callee);
    for (k = 0; k < n->n_inputs; k++)
      ck_assert_ptr_nonnull(n->inputs[k]);
    for (k = 0; k < n->n_outputs; k++)
      ck_assert_ptr_nonnull(n->outputs[k]);
  }
  sm = find_node(&g, "aten::softmax");
  ck_assert_msg(sm != NULL, "no aten::softmax in layers.0.self_attn");
  ck_assert_int_eq(sm->kind, NNE_CLIENT_NODE_OP);
  ck_assert_msg(
      strncmp(sm->selector, "transformer.h.0.attn:aten::softmax#", 35) == 0,
      "softmax selector '%s'", sm->selector);
  ck_assert_uint_ge(sm->n_outputs, 1);
  nne_client_graph_free(&g);
  ck_assert_ptr_null(g.nodes);

  memset(&e, 0, sizeof e);
  e.site = "layers.0.self_attn.pattern";
  e.op = NNE_CLIENT_EDIT_ZERO;
  apply_ok(c, &e, 1, NULL, &info);
  ck_assert_msg(nne_client_models_graph(c, MODEL, "transformer.h.0.attn",
                                        info.id, &g, &err) == 0,
                "graph of an edit set: %s", err.message);
  ck_assert(g.edited);
  ck_assert_msg(count_inserted(&g) >= 1, "no inserted node in %zu nodes",
                g.n_nodes);
  nne_client_graph_free(&g);
  /* Another layer of the same set is not edited. */
  ck_assert_int_eq(nne_client_models_graph(c, MODEL, "layers.1.self_attn",
                                           info.id, &g, &err),
                   0);
  ck_assert_uint_eq(count_inserted(&g), 0);
  nne_client_graph_free(&g);
  EXPECT_STATUS(
      nne_client_models_graph(c, MODEL, "layers.0.self_atn", NULL, &g, &err),
      &err, NNE_CLIENT_NOT_FOUND, NULL);
  EXPECT_STATUS(nne_client_models_graph(c, MODEL, "layers.0.self_attn",
                                        "es-no-such-set", &g, &err),
                &err, NNE_CLIENT_NOT_FOUND, "es-no-such-set", NULL);
  drop_ok(c, info.id);
  nne_client_close(c);
}
END_TEST

static uint64_t cache_hits(nne_client_t *c, nne_client_stats_t *out) {
  nne_client_err_t err;
  uint64_t hits = 0;
  size_t i;
  ck_assert_msg(nne_client_admin_stats(c, out, &err) == 0, "stats: %s",
                err.message);
  for (i = 0; i < out->n_caches; i++)
    if (strcmp(out->caches[i].model, MODEL) == 0)
      hits = out->caches[i].hits;
  return hits;
}

/* Two sets of one structure, different values: one backend (a cache hit
 * the second time, in Apply and in Stats), each with its own values. */
START_TEST(test_cache_stats) {
  nne_client_t *c = client();
  nne_client_edit_t e;
  nne_client_edit_set_info_t a, b2;
  nne_client_forward_result_t ra, rb, rp;
  nne_client_stats_t st;
  uint64_t hits0, hits1;
  uint32_t sets1;
  batch_t b;
  size_t i;

  nne_tc_load(c, MODEL);
  batch_init(&b);
  hits0 = cache_hits(c, &st);
  nne_client_stats_free(&st);
  memset(&e, 0, sizeof e);
  e.site = "layers.1.mlp_out";
  e.op = NNE_CLIENT_EDIT_SCALE;
  e.use_scalar = true;
  e.scalar = 0.5;
  apply_ok(c, &e, 1, "half", &a);
  e.scalar = 2.0;
  apply_ok(c, &e, 1, "double", &b2);
  ck_assert_str_ne(a.id, b2.id);
  ck_assert_msg(b2.cache_hit,
                "a set of the same structure was not a cache hit");
  ck_assert_str_eq(a.backend_key, b2.backend_key);
  ck_assert(b2.compile_ms == 0);
  hits1 = cache_hits(c, &st);
  ck_assert_msg(hits1 >= hits0 + 1, "cache hits %llu -> %llu",
                (unsigned long long)hits0, (unsigned long long)hits1);
  ck_assert_uint_ge(st.edit_sets, 2);
  sets1 = st.edit_sets;
  for (i = 0; i < st.n_caches; i++)
    if (strcmp(st.caches[i].model, MODEL) == 0) {
      ck_assert_uint_ge(st.caches[i].entries, 1);
      ck_assert_uint_ge(st.caches[i].misses, 1);
      ck_assert_uint_ge(st.caches[i].pinned, 1);
      ck_assert(st.caches[i].compile_ms_total >= st.caches[i].compile_ms_last);
    }
  ck_assert(st.queue_capacity >= st.queue_depth);
  nne_client_stats_free(&st);

  fwd_ok(c, &b, NULL, NULL, 0, &rp);
  fwd_ok(c, &b, a.id, NULL, 0, &ra);
  fwd_ok(c, &b, b2.id, NULL, 0, &rb);
  ck_assert_msg(!same_tensor(&ra.logits, &rb.logits),
                "two sets sharing a backend gave the same logits");
  ck_assert(!same_tensor(&ra.logits, &rp.logits));
  ck_assert(!same_tensor(&rb.logits, &rp.logits));
  nne_client_forward_result_free(&ra);
  nne_client_forward_result_free(&rb);
  nne_client_forward_result_free(&rp);
  drop_ok(c, a.id);
  drop_ok(c, b2.id);
  cache_hits(c, &st);
  ck_assert_uint_le(st.edit_sets, sets1 - 2);
  nne_client_stats_free(&st);
  batch_free(&b);
  nne_client_close(c);
}
END_TEST

/* Two edit sets at once from two threads: each run equals its set's
 * reference, never the other's. */
typedef struct worker {
  const char *id;
  const batch_t *b;
  const nne_client_tensor_t *want;
  nne_client_t *c;
  int runs, bad;
  char msg[256];
} worker_t;

static void *worker_main(void *arg) {
  worker_t *w = arg;
  int i;
  for (i = 0; i < w->runs; i++) {
    nne_client_forward_result_t r;
    nne_client_err_t err;
    if (fwd(w->c, w->b, w->id, NULL, 0, &r, &err) != 0) {
      snprintf(w->msg, sizeof w->msg, "%.200s", err.message);
      w->bad++;
    } else if (!same_tensor(&r.logits, w->want)) {
      snprintf(w->msg, sizeof w->msg, "run %d differs from its reference", i);
      w->bad++;
    }
    nne_client_forward_result_free(&r);
  }
  return NULL;
}

START_TEST(test_concurrent_sets) {
  nne_client_t *c = client();
  nne_client_edit_t e0, e1;
  nne_client_edit_set_info_t s0, s1;
  nne_client_forward_result_t r0, r1;
  worker_t w[2];
  pthread_t th[2];
  batch_t b;
  int k;

  nne_tc_load(c, MODEL);
  batch_init(&b);
  memset(&e0, 0, sizeof e0);
  e0.site = "layers.0.self_attn.pattern";
  e0.op = NNE_CLIENT_EDIT_ZERO;
  memset(&e1, 0, sizeof e1);
  e1.site = "layers.1.mlp_out";
  e1.op = NNE_CLIENT_EDIT_SCALE;
  e1.use_scalar = true;
  e1.scalar = -1.0;
  apply_ok(c, &e0, 1, NULL, &s0);
  apply_ok(c, &e1, 1, NULL, &s1);
  fwd_ok(c, &b, s0.id, NULL, 0, &r0);
  fwd_ok(c, &b, s1.id, NULL, 0, &r1);
  ck_assert(!same_tensor(&r0.logits, &r1.logits));
  memset(w, 0, sizeof w);
  for (k = 0; k < 2; k++) {
    w[k].id = k ? s1.id : s0.id;
    w[k].want = k ? &r1.logits : &r0.logits;
    w[k].b = &b;
    w[k].c = c; /* one client, many threads */
    w[k].runs = 8;
    ck_assert_int_eq(pthread_create(&th[k], NULL, worker_main, &w[k]), 0);
  }
  for (k = 0; k < 2; k++) {
    pthread_join(th[k], NULL);
    ck_assert_msg(w[k].bad == 0, "thread %d: %d bad runs: %s", k, w[k].bad,
                  w[k].msg);
  }
  nne_client_forward_result_free(&r0);
  nne_client_forward_result_free(&r1);
  drop_ok(c, s0.id);
  drop_ok(c, s1.id);
  batch_free(&b);
  nne_client_close(c);
}
END_TEST

static Suite *edits_suite(void) {
  Suite *s = suite_create("edits_client");
  TCase *tc;

  tc = tcase_create("local");
  tcase_add_test(tc, test_names);
  tcase_add_test(tc, test_local_errors);
  tcase_add_test(tc, test_read_npy);
  tcase_set_timeout(tc, 30);
  suite_add_tcase(s, tc);

  tc = tcase_create("serving");
  tcase_add_unchecked_fixture(tc, daemon_setup, daemon_teardown);
  tcase_add_test(tc, test_zero_pattern);
  tcase_add_test(tc, test_save_only);
  tcase_add_test(tc, test_operands);
  tcase_add_test(tc, test_apply_atomic);
  tcase_add_test(tc, test_graph);
  tcase_add_test(tc, test_cache_stats);
  tcase_add_test(tc, test_concurrent_sets);
  tcase_set_timeout(tc, 180);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(edits_suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
