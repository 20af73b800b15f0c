/* test_pass.c — daemon/infer/pass.{h,c}: one forward pass from a padded
 * batch to what a reply needs, on the GPT-2 fixture against the references
 * its generator recorded in Python.
 *
 * Batches are made the way requests make them (token rows laid out by
 * nne_batch_build). It proves that the pass's logits equal the reference
 * logits for an unpadded batch and for the fixture's left-padded batch
 * (whose ids and mask nne_batch_build must reproduce exactly), that
 * LOGITS_LAST gives [B, V] taken at each row's last real position (also
 * with right padding, where rows end at different places), that the top-k
 * ids, logits and probabilities agree with those rows (sorted, the logits
 * the rows hold, probabilities a softmax over the whole vocabulary), that a
 * variant without hooks gives the pristine logits, and that with neither
 * top-k nor LOGITS_LAST nothing more than the logits is made.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine_helpers.h"
#include "fixtures.h"
#include "infer/batch.h"
#include "infer/pass.h"
#include "nnedit/v1/inference.pb.h"
#include "npy.h"
#include "unit_main.h"

/* The references were made with one intra-op thread (engine_helpers.h);
 * GPT-2's archive is within ~1.4e-6 of its eager model already in Python. */
#define TOL 1e-5

static nne_fixture_t *fx;
static nne_model_t *model;

static void setup(void) {
  nne_th_one_thread();
  fx = nne_th_fixture("gpt2-script");
  model = nne_th_load(fx->model_path);
}

static void teardown(void) {
  nne_model_unref(model);
  nne_fixture_free(fx);
  model = NULL;
  fx = NULL;
}

static void load_ref(const nne_fixture_ref_t *r, nne_npy_t *a) {
  char msg[512];
  ck_assert_msg(nne_fixture_ref_load(r, a, msg, sizeof msg) == 0, "%s", msg);
  ck_assert_int_eq(a->dtype, NNE_NPY_F32);
}

/* Rows as decoding leaves them: values flattened, lengths per row. */
typedef struct rows {
  nne_rows_dec_t dec;
  int64_t vals[256];
  uint32_t len[16];
} rows_t;

static void rows_add(rows_t *r, const int64_t *v, size_t n) {
  memcpy(r->vals + r->dec.vals.n, v, n * sizeof *v);
  r->dec.vals.n += n;
  r->len[r->dec.n++] = (uint32_t)n;
}

static void rows_init(rows_t *r) {
  memset(r, 0, sizeof *r);
  r->dec.vals.v = r->vals;
  r->dec.len = r->len;
}

/* Lays the rows out with nne_batch_build (pad token 0, as model.json). */
static void make_batch(nne_batch_t *b, rows_t *r, int padding) {
  nne_batch_group_t g = {&r->dec, NULL, "", NULL};
  nne_err_t err;
  ck_assert_msg(nne_batch_build(b, &g, 1, padding, 0, &err) == 0, "%s",
                err.msg);
}

static void run(nne_infer_pass_t *p, const nne_batch_t *b, int top_k,
                nne_logits_mode_t mode) {
  nne_err_t err;
  memset(p, 0, sizeof *p);
  p->batch = b;
  p->model = model;
  p->top_k = top_k;
  p->logits_mode = mode;
  ck_assert_msg(nne_infer_pass_run(p, &err) == 0, "%s", err.msg);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
  double d = 0;
  size_t i;
  for (i = 0; i < n; i++) {
    double x = fabs((double)a[i] - (double)b[i]);
    if (x > d || x != x)
      d = x;
  }
  return d;
}

static void check_shape(nne_tensor_t *t, int ndim, const int64_t *shape) {
  int i;
  ck_assert_ptr_nonnull(t);
  ck_assert_int_eq(nne_tensor_ndim(t), ndim);
  for (i = 0; i < ndim; i++)
    ck_assert_int_eq(nne_tensor_shape(t)[i], shape[i]);
}

/* Top-k of each row of last [B, V] is what the pass reports: ids sorted by
 * descending logit, the logits the row holds, a softmax over all of V. */
static void check_topk(const nne_infer_pass_t *p, int64_t B, int64_t V, int k) {
  const float *last = nne_th_host_f32(p->last);
  int64_t b, v;
  int j;
  int64_t shape[2] = {B, k};

  check_shape(p->tk_ids, 2, shape);
  check_shape(p->tk_vals, 2, shape);
  check_shape(p->tk_probs, 2, shape);
  ck_assert_ptr_nonnull(p->tk_ids_p);
  ck_assert_ptr_nonnull(p->tk_vals_p);
  ck_assert_ptr_nonnull(p->tk_probs_p);
  for (b = 0; b < B; b++) {
    const float *row = last + b * V;
    double mx = -INFINITY, z = 0;
    for (v = 0; v < V; v++)
      mx = row[v] > mx ? row[v] : mx;
    for (v = 0; v < V; v++)
      z += exp((double)row[v] - mx);
    for (j = 0; j < k; j++) {
      int64_t id = p->tk_ids_p[b * k + j];
      float val = p->tk_vals_p[b * k + j];
      int64_t above = 0;
      ck_assert(id >= 0 && id < V);
      ck_assert_msg(val == row[id], "row %lld top %d: logit %g, row has %g",
                    (long long)b, j, (double)val, (double)row[id]);
      if (j > 0)
        ck_assert(val <= p->tk_vals_p[b * k + j - 1]);
      /* Exactly j logits are larger (no ties in random weights). */
      for (v = 0; v < V; v++)
        above += row[v] > val;
      ck_assert_int_eq(above, j);
      ck_assert_double_eq_tol(p->tk_probs_p[b * k + j],
                              exp((double)val - mx) / z, 1e-6);
    }
  }
}

START_TEST(test_logits_equal_the_reference) {
  nne_npy_t ref;
  rows_t r;
  nne_batch_t b;
  nne_infer_pass_t p;
  int64_t i, shape[3];

  load_ref(&fx->logits, &ref);
  rows_init(&r);
  for (i = 0; i < fx->input_ids.rows; i++)
    rows_add(&r, fx->input_ids.data + i * fx->input_ids.cols,
             (size_t)fx->input_ids.cols);
  make_batch(&b, &r, nnedit_v1_Padding_PADDING_UNSPECIFIED);
  ck_assert_ptr_null(b.mask); /* equal rows: the model gets no mask */
  run(&p, &b, 5, NNE_LOGITS_ALL);
  shape[0] = ref.shape[0];
  shape[1] = ref.shape[1];
  shape[2] = ref.shape[2];
  check_shape(p.logits, 3, shape);
  ck_assert_double_le(
      max_abs_diff(nne_th_host_f32(p.logits), ref.data, ref.numel), TOL);
  /* LOGITS_ALL streams the [B, S, V] logits themselves. */
  ck_assert_ptr_eq(nne_infer_pass_logits_out(&p), p.logits);
  /* Top-k was asked: the last positions were selected for it. */
  shape[1] = shape[2];
  check_shape(p.last, 2, shape);
  check_topk(&p, ref.shape[0], ref.shape[2], 5);
  nne_infer_pass_free(&p);
  ck_assert_ptr_null(p.logits);
  ck_assert_ptr_null(p.tk_ids_p);
  nne_infer_pass_free(&p); /* twice is harmless */
  nne_batch_free(&b);
  nne_npy_free(&ref);
}
END_TEST

START_TEST(test_left_padded_rows_and_logits_last) {
  /* The fixture's masked batch is two rows, the second left-padded with
   * the pad token: given as ragged rows, nne_batch_build must produce
   * exactly its ids and mask, and the pass its reference logits. */
  const nne_fixture_ids_t *ids = &fx->masked_input_ids,
                          *mask = &fx->masked_attention_mask;
  int64_t B = ids->rows, S = ids->cols, V, bi, s, shape[2];
  nne_npy_t ref;
  rows_t r;
  nne_batch_t b;
  nne_infer_pass_t p;
  const float *last, *lg;

  load_ref(&fx->masked_logits, &ref);
  V = ref.shape[2];
  rows_init(&r);
  for (bi = 0; bi < B; bi++) {
    int64_t first = 0;
    while (first < S && mask->data[bi * S + first] == 0)
      first++;
    rows_add(&r, ids->data + bi * S + first, (size_t)(S - first));
  }
  ck_assert_uint_ne(r.len[0], r.len[1]); /* the fixture is really ragged */
  make_batch(&b, &r, nnedit_v1_Padding_PADDING_LEFT);
  ck_assert_int_eq(b.B, B);
  ck_assert_int_eq(b.S, S);
  ck_assert_ptr_nonnull(b.mask);
  for (s = 0; s < B * S; s++) {
    ck_assert_int_eq(b.ids[s], ids->data[s]);
    ck_assert_int_eq(b.mask[s], mask->data[s]);
  }
  run(&p, &b, 7, NNE_LOGITS_LAST);
  lg = nne_th_host_f32(p.logits);
  ck_assert_double_le(max_abs_diff(lg, ref.data, ref.numel), TOL);
  /* LOGITS_LAST streams [B, V]: each row at its last real position (the
   * end, with left padding), bit for bit the logits there. */
  shape[0] = B;
  shape[1] = V;
  check_shape(p.last, 2, shape);
  ck_assert_ptr_eq(nne_infer_pass_logits_out(&p), p.last);
  last = nne_th_host_f32(p.last);
  for (bi = 0; bi < B; bi++) {
    ck_assert_int_eq(b.last_pos[bi], S - 1);
    ck_assert(memcmp(last + bi * V, lg + (bi * S + S - 1) * V,
                     (size_t)V * sizeof *last) == 0);
  }
  check_topk(&p, B, V, 7);
  nne_infer_pass_free(&p);
  nne_batch_free(&b);
  nne_npy_free(&ref);
}
END_TEST

START_TEST(test_right_padding_selects_each_rows_end) {
  /* Right padding: rows end at different positions. The model is causal,
   * so a row's logits up to its end do not depend on what follows: the
   * selected row equals the last logits of that row run alone. */
  static const int64_t r0[] = {31, 415, 926, 5, 27}, r1[] = {123, 45, 6};
  rows_t r, alone;
  nne_batch_t b, b1;
  nne_infer_pass_t p, p1;
  const float *last, *last1, *lg;
  int64_t V;

  rows_init(&r);
  rows_add(&r, r0, 5);
  rows_add(&r, r1, 3);
  make_batch(&b, &r, nnedit_v1_Padding_PADDING_RIGHT);
  ck_assert_int_eq(b.last_pos[0], 4);
  ck_assert_int_eq(b.last_pos[1], 2);
  run(&p, &b, 3, NNE_LOGITS_LAST);
  V = nne_tensor_shape(p.logits)[2];
  ck_assert_int_eq(V, 1000);
  last = nne_th_host_f32(p.last);
  lg = nne_th_host_f32(p.logits);
  ck_assert(memcmp(last, lg + (0 * 5 + 4) * V, (size_t)V * 4) == 0);
  ck_assert(memcmp(last + V, lg + (1 * 5 + 2) * V, (size_t)V * 4) == 0);

  rows_init(&alone);
  rows_add(&alone, r1, 3);
  make_batch(&b1, &alone, nnedit_v1_Padding_PADDING_UNSPECIFIED);
  run(&p1, &b1, 3, NNE_LOGITS_LAST);
  last1 = nne_th_host_f32(p1.last);
  ck_assert_double_le(max_abs_diff(last + V, last1, (size_t)V), TOL);
  /* And so does its top-k. */
  ck_assert_int_eq(p.tk_ids_p[3], p1.tk_ids_p[0]);
  ck_assert_int_eq(p.tk_ids_p[4], p1.tk_ids_p[1]);
  check_topk(&p, 2, V, 3);
  nne_infer_pass_free(&p);
  nne_infer_pass_free(&p1);
  nne_batch_free(&b);
  nne_batch_free(&b1);
}
END_TEST

START_TEST(test_variant_without_hooks_is_pristine) {
  nne_npy_t ref;
  nne_variant_t *v = NULL;
  nne_err_t err;
  rows_t r;
  nne_batch_t b;
  nne_infer_pass_t p;
  int64_t i;

  load_ref(&fx->logits, &ref);
  ck_assert_msg(nne_variant_build(model, NULL, 0, &v, &err) == 0, "%s",
                err.msg);
  rows_init(&r);
  for (i = 0; i < fx->input_ids.rows; i++)
    rows_add(&r, fx->input_ids.data + i * fx->input_ids.cols,
             (size_t)fx->input_ids.cols);
  make_batch(&b, &r, nnedit_v1_Padding_PADDING_UNSPECIFIED);
  memset(&p, 0, sizeof p);
  p.batch = &b;
  p.model = model;
  p.variant = v;
  ck_assert_msg(nne_infer_pass_run(&p, &err) == 0, "%s", err.msg);
  ck_assert_double_le(
      max_abs_diff(nne_th_host_f32(p.logits), ref.data, ref.numel), TOL);
  nne_infer_pass_free(&p);
  nne_variant_unref(v);
  nne_batch_free(&b);
  nne_npy_free(&ref);
}
END_TEST

START_TEST(test_nothing_more_than_asked) {
  static const int64_t r0[] = {1, 2, 3};
  rows_t r;
  nne_batch_t b;
  nne_infer_pass_t p;

  rows_init(&r);
  rows_add(&r, r0, 3);
  make_batch(&b, &r, nnedit_v1_Padding_PADDING_UNSPECIFIED);
  run(&p, &b, 0, NNE_LOGITS_NONE);
  ck_assert_ptr_nonnull(p.logits);
  ck_assert_ptr_null(p.last);
  ck_assert_ptr_null(p.tk_ids);
  ck_assert_ptr_null(p.tk_ids_p);
  ck_assert_ptr_null(nne_infer_pass_logits_out(&p));
  nne_infer_pass_free(&p);
  /* LOGITS_LAST alone selects the rows without a top-k. */
  run(&p, &b, 0, NNE_LOGITS_LAST);
  ck_assert_ptr_nonnull(p.last);
  ck_assert_ptr_null(p.tk_ids);
  nne_infer_pass_free(&p);
  nne_batch_free(&b);
}
END_TEST

START_TEST(test_engine_failure_is_reported) {
  /* A token id past the embedding (batch_check would refuse it; the pass
   * itself must still fail cleanly, not crash): the engine's message. */
  static const int64_t bad[] = {1, 5000};
  rows_t r;
  nne_batch_t b;
  nne_infer_pass_t p;
  nne_err_t err;

  rows_init(&r);
  rows_add(&r, bad, 2);
  make_batch(&b, &r, nnedit_v1_Padding_PADDING_UNSPECIFIED);
  memset(&p, 0, sizeof p);
  memset(&err, 0, sizeof err);
  p.batch = &b;
  p.model = model;
  p.top_k = 3;
  ck_assert_int_ne(nne_infer_pass_run(&p, &err), 0);
  ck_assert_int_ne(err.code, 0);
  ck_assert_uint_gt(strlen(err.msg), 0);
  ck_assert_ptr_null(p.tk_ids_p);
  nne_infer_pass_free(&p);
  nne_batch_free(&b);
}
END_TEST

static Suite *pass_suite(void) {
  Suite *s = suite_create("pass");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_logits_equal_the_reference);
  tcase_add_test(tc, test_left_padded_rows_and_logits_last);
  tcase_add_test(tc, test_right_padding_selects_each_rows_end);
  tcase_add_test(tc, test_variant_without_hooks_is_pristine);
  tcase_add_test(tc, test_nothing_more_than_asked);
  tcase_add_test(tc, test_engine_failure_is_reported);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return nne_test_run_suite(pass_suite());
}
