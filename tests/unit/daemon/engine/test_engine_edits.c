/* test_engine_edits.c — edits on values (daemon/engine/ops.cc:
 * nne_tensor_apply_edit, nne_edit_check, nne_tensor_to_device).
 *
 *   - every op, with and without index ranges, against a plain C loop over
 *     the host bytes: float32 results are bit-identical;
 *   - negative dims and indices, stop 0, broadcasting (a [D] steering
 *     vector over [B, S, D], a scalar, a [1, 1, D] tensor, one head's slice
 *     of the last dimension), operands cast to the value's dtype;
 *   - every refusal, with the message engine.h promises, and nne_edit_check
 *     agreeing with nne_tensor_apply_edit case by case;
 *   - end to end through variants on every fixture: zeroing
 *     aten::softmax#0 of the first attention module zeroes that pattern
 *     only (the second attention's rows still sum to 1, although scripted
 *     instances share one class graph), and adding a steering vector at a
 *     block's output equals adding it by hand (bit-identical, down to the
 *     logits); an edit on a strided view inside the graph (a permute's or
 *     transpose's output) matches the C loop;
 *   - the cost of an edit on a [1, 128, 768] value is printed.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine_helpers.h"
#include "fixtures.h"

static char **g_names;
static size_t g_nfix;

/* ---- a plain C reference ------------------------------------------------- */

/* A deterministic fill in [-2, 2) with values that are not round numbers. */
static void fill(float *x, size_t n, uint32_t seed) {
  size_t i;
  for (i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    x[i] = (float)((seed >> 8) / 16777216.0 * 4.0 - 2.0);
  }
}

static int64_t numel_of(const int64_t *shape, int ndim) {
  int64_t n = 1;
  int d;
  for (d = 0; d < ndim; d++)
    n *= shape[d];
  return n;
}

/* Resolves ranges the way engine.h defines them (the test's own reading of
 * the contract): lo[d], hi[d] per dimension. */
static void ref_region(const int64_t *shape, int ndim, const nne_dim_range_t *r,
                       size_t n, int64_t *lo, int64_t *hi) {
  int d;
  size_t i;
  for (d = 0; d < ndim; d++) {
    lo[d] = 0;
    hi[d] = shape[d];
  }
  for (i = 0; i < n; i++) {
    int dd = r[i].dim < 0 ? r[i].dim + ndim : r[i].dim;
    int64_t s = r[i].start < 0 ? r[i].start + shape[dd] : r[i].start;
    int64_t e = r[i].stop == 0  ? shape[dd]
                : r[i].stop < 0 ? r[i].stop + shape[dd]
                                : r[i].stop;
    lo[dd] = s;
    hi[dd] = e;
  }
}

/* out = op(value) over the region, element by element. The operand is
 * odata (shape oshape, broadcast to the region) or the scalar s. */
static void ref_edit(const float *v, const int64_t *shape, int ndim,
                     nne_edit_op_t op, const float *odata,
                     const int64_t *oshape, int ondim, float s,
                     const nne_dim_range_t *r, size_t nr, float *out) {
  int64_t lo[NNE_TENSOR_MAX_DIMS], hi[NNE_TENSOR_MAX_DIMS];
  int64_t idx[NNE_TENSOR_MAX_DIMS], n = numel_of(shape, ndim), i;
  ref_region(shape, ndim, r, nr, lo, hi);
  for (i = 0; i < n; i++) {
    int64_t rem = i, oi = 0;
    int d, inside = 1, k;
    float x = v[i], o = s;
    for (d = ndim - 1; d >= 0; d--) {
      idx[d] = rem % shape[d];
      rem /= shape[d];
      inside = inside && idx[d] >= lo[d] && idx[d] < hi[d];
    }
    if (!inside) {
      out[i] = x;
      continue;
    }
    if (odata != NULL) {
      for (k = 0; k < ondim; k++) {
        d = ndim - ondim + k;
        oi = oi * oshape[k] + (oshape[k] == 1 ? 0 : idx[d] - lo[d]);
      }
      o = odata[oi];
    }
    switch (op) {
    case NNE_EDIT_REPLACE: out[i] = o; break;
    case NNE_EDIT_ADD: out[i] = x + o; break;
    case NNE_EDIT_SCALE: out[i] = x * o; break;
    case NNE_EDIT_ZERO: out[i] = 0.0f; break;
    default: out[i] = x; break;
    }
  }
}

static nne_tensor_t *apply(nne_tensor_t *v, nne_edit_op_t op,
                           nne_tensor_t *operand, double scalar,
                           const nne_dim_range_t *r, size_t nr) {
  nne_tensor_t *out = NULL;
  nne_err_t err = {0};
  ck_assert_msg(
      nne_tensor_apply_edit(v, op, operand, scalar, r, nr, &out, &err) == 0,
      "apply_edit: %s", err.msg);
  ck_assert_ptr_nonnull(out);
  return out;
}

/* Applies the edit and compares it with ref_edit, byte for byte. */
static void expect_edit(nne_tensor_t *v, nne_edit_op_t op,
                        nne_tensor_t *operand, double scalar,
                        const nne_dim_range_t *r, size_t nr, const char *what) {
  const int64_t *shape = nne_tensor_shape(v);
  int ndim = nne_tensor_ndim(v);
  size_t n = (size_t)nne_tensor_numel(v), i;
  float *want = malloc(n * sizeof *want), *before = malloc(n * sizeof *before);
  const float *odata = NULL;
  nne_tensor_t *out;
  ck_assert(want != NULL && before != NULL);
  memcpy(before, nne_th_host_f32(v), n * sizeof *before);
  if (operand != NULL) {
    ck_assert_int_eq(nne_tensor_dtype(operand), NNE_DTYPE_F32);
    odata = nne_th_host_f32(operand);
  }
  ref_edit(before, shape, ndim, op, odata,
           operand ? nne_tensor_shape(operand) : NULL,
           operand ? nne_tensor_ndim(operand) : 0, (float)scalar, r, nr, want);
  out = apply(v, op, operand, scalar, r, nr);
  ck_assert_int_eq(nne_tensor_dtype(out), NNE_DTYPE_F32);
  ck_assert_int_eq(nne_tensor_ndim(out), ndim);
  for (i = 0; i < (size_t)ndim; i++)
    ck_assert_int_eq(nne_tensor_shape(out)[i], shape[i]);
  {
    const float *got = nne_th_host_f32(out);
    for (i = 0; i < n; i++)
      ck_assert_msg(memcmp(&got[i], &want[i], sizeof got[i]) == 0,
                    "%s: element %zu is %.9g, expected %.9g", what, i,
                    (double)got[i], (double)want[i]);
  }
  /* Functional: the value is as it was. */
  ck_assert_msg(memcmp(nne_th_host_f32(v), before, n * sizeof *before) == 0,
                "%s: the value was written", what);
  /* Always a new handle; SAVE's shares the value's memory (no copy). */
  ck_assert_ptr_ne(out, v);
  if (op == NNE_EDIT_SAVE)
    ck_assert_ptr_eq(nne_th_host(out), nne_th_host(v));
  else
    ck_assert_ptr_ne(nne_th_host(out), nne_th_host(v));
  nne_tensor_unref(out);
  free(want);
  free(before);
}

static nne_tensor_t *random_f32(const int64_t *shape, int ndim, uint32_t seed) {
  size_t n = (size_t)numel_of(shape, ndim);
  float *d = malloc((n ? n : 1) * sizeof *d);
  nne_tensor_t *t;
  ck_assert_ptr_nonnull(d);
  fill(d, n, seed);
  t = nne_th_f32(shape, ndim, d);
  free(d);
  return t;
}

/* ---- 1: every op, with and without ranges ------------------------------- */

#define N_RANGE_SETS 5
static const nne_dim_range_t k_sets[N_RANGE_SETS][2] = {
    {{0, 0, 0}, {0, 0, 0}},    /* none (n = 0) */
    {{1, 1, 4}, {-1, 2, 0}},   /* positions 1..3, last dim 2..end */
    {{0, -1, 0}, {2, -3, -1}}, /* the last row; last dim 5..6 */
    {{-2, 0, 0}, {0, 0, 0}},   /* all of dim 1 (stop 0 = to the end) */
    {{2, 7, 8}, {0, 0, 1}},    /* one element of the last dim, row 0 */
};
static const size_t k_set_n[N_RANGE_SETS] = {0, 2, 2, 1, 2};

START_TEST(test_ops) {
  static const nne_edit_op_t ops[] = {NNE_EDIT_SAVE, NNE_EDIT_REPLACE,
                                      NNE_EDIT_ADD, NNE_EDIT_SCALE,
                                      NNE_EDIT_ZERO};
  const int64_t shape[3] = {2, 5, 8};
  nne_tensor_t *v = random_f32(shape, 3, 7);
  size_t o, s;
  int cases = 0;
  for (o = 0; o < sizeof ops / sizeof ops[0]; o++) {
    for (s = 0; s < N_RANGE_SETS; s++) {
      const nne_dim_range_t *r = k_sets[s];
      size_t nr = k_set_n[s];
      int64_t lo[3], hi[3], region[3], last[1];
      nne_tensor_t *full, *row;
      char what[128];
      int d;
      ref_region(shape, 3, r, nr, lo, hi);
      for (d = 0; d < 3; d++)
        region[d] = hi[d] - lo[d];
      last[0] = region[2];
      full = random_f32(region, 3, 100 + (uint32_t)s);
      row = random_f32(last, 1, 200 + (uint32_t)s);
      snprintf(what, sizeof what, "op %d, range set %zu, scalar", ops[o], s);
      expect_edit(v, ops[o], NULL, -1.3125, r, nr, what);
      snprintf(what, sizeof what, "op %d, range set %zu, region-shaped", ops[o],
               s);
      expect_edit(v, ops[o], full, 0, r, nr, what);
      snprintf(what, sizeof what, "op %d, range set %zu, [last]", ops[o], s);
      expect_edit(v, ops[o], row, 0, r, nr, what);
      cases += 3;
      nne_tensor_unref(full);
      nne_tensor_unref(row);
    }
  }
  printf("edits: %d op x range x operand cases bit-identical to the C loop\n",
         cases);
  nne_tensor_unref(v);
}
END_TEST

/* ---- 2: broadcasting ------------------------------------------------------
 */

START_TEST(test_broadcast) {
  const int64_t B = 2, S = 4, D = 6, shape[3] = {2, 4, 6};
  const int64_t vec[1] = {6}, one[3] = {1, 1, 6}, col[2] = {4, 1},
                head[1] = {2};
  nne_tensor_t *v = random_f32(shape, 3, 11);
  nne_tensor_t *steer = random_f32(vec, 1, 12),
               *steer3 = random_f32(one, 3, 13);
  nne_tensor_t *percol = random_f32(col, 2, 14), *h = random_f32(head, 1, 15);
  nne_tensor_t *zero_d, *out;
  nne_dim_range_t head1 = {-1, 2, 4}, head2 = {2, 4, 0};
  float s = 0.375f;
  const float *x, *y, *sv;
  int64_t b, p, d;

  /* A steering vector [D] over [B, S, D], written out by hand too. */
  expect_edit(v, NNE_EDIT_ADD, steer, 0, NULL, 0, "[D] steering vector");
  out = apply(v, NNE_EDIT_ADD, steer, 0, NULL, 0);
  x = nne_th_host_f32(v);
  y = nne_th_host_f32(out);
  sv = nne_th_host_f32(steer);
  for (b = 0; b < B; b++)
    for (p = 0; p < S; p++)
      for (d = 0; d < D; d++) {
        float want = x[(b * S + p) * D + d] + sv[d];
        ck_assert(memcmp(&y[(b * S + p) * D + d], &want, sizeof want) == 0);
      }
  nne_tensor_unref(out);

  /* A scalar: the scalar argument and a 0-d tensor give the same bytes. */
  expect_edit(v, NNE_EDIT_ADD, NULL, s, NULL, 0, "scalar");
  zero_d = nne_th_f32(NULL, 0, &s);
  expect_edit(v, NNE_EDIT_ADD, zero_d, 0, NULL, 0, "0-d tensor");
  expect_edit(v, NNE_EDIT_SCALE, zero_d, 0, &head2, 1, "0-d tensor, ranged");
  {
    nne_tensor_t *a = apply(v, NNE_EDIT_ADD, NULL, s, NULL, 0);
    nne_tensor_t *c = apply(v, NNE_EDIT_ADD, zero_d, 0, NULL, 0);
    ck_assert(nne_th_same(a, c));
    nne_tensor_unref(a);
    nne_tensor_unref(c);
  }
  /* [1, 1, D]; [S, 1] (one number per position). */
  expect_edit(v, NNE_EDIT_ADD, steer3, 0, NULL, 0, "[1, 1, D]");
  expect_edit(v, NNE_EDIT_REPLACE, steer3, 0, NULL, 0, "[1, 1, D] replace");
  expect_edit(v, NNE_EDIT_SCALE, percol, 0, NULL, 0, "[S, 1]");
  /* One head's slice of the last dimension (3 heads of 2): replace head 1,
   * zero or scale head 2. */
  expect_edit(v, NNE_EDIT_REPLACE, h, 0, &head1, 1, "head 1 replaced");
  expect_edit(v, NNE_EDIT_ADD, h, 0, &head1, 1, "head 1 steered");
  expect_edit(v, NNE_EDIT_ZERO, NULL, 0, &head2, 1, "head 2 zeroed");
  expect_edit(v, NNE_EDIT_SCALE, NULL, 0.5, &head2, 1, "head 2 halved");
  out = apply(v, NNE_EDIT_ZERO, NULL, 0, &head2, 1);
  y = nne_th_host_f32(out);
  for (b = 0; b < B * S; b++)
    for (d = 0; d < D; d++)
      ck_assert(d < 4 ? y[b * D + d] == x[b * D + d] : y[b * D + d] == 0.0f);
  nne_tensor_unref(out);
  printf("edits: broadcasting [D], scalar, 0-d, [1, 1, D], [S, 1] and one "
         "head's slice: bit-identical\n");
  nne_tensor_unref(v);
  nne_tensor_unref(steer);
  nne_tensor_unref(steer3);
  nne_tensor_unref(percol);
  nne_tensor_unref(h);
  nne_tensor_unref(zero_d);
}
END_TEST

/* ---- 3: dtype casts --------------------------------------------------------
 */

START_TEST(test_dtype_cast) {
  const int64_t shape[2] = {3, 5}, vec[1] = {5}, ishape[1] = {4};
  nne_tensor_t *v = random_f32(shape, 2, 21);
  double od[5] = {0.1, -1e-8, 1.0 / 3.0, 1e10, -2.5000000001};
  nne_tensor_t *o64 = nne_th_tensor(NNE_DTYPE_F64, vec, 1, od), *out;
  nne_dim_range_t rows = {0, 1, 0};
  const float *x, *y;
  int i, k;

  /* float64 operand onto a float32 value: rounded to float32, then added in
   * float32. */
  out = apply(v, NNE_EDIT_ADD, o64, 0, &rows, 1);
  ck_assert_int_eq(nne_tensor_dtype(out), NNE_DTYPE_F32);
  x = nne_th_host_f32(v);
  y = nne_th_host_f32(out);
  for (i = 0; i < 3; i++)
    for (k = 0; k < 5; k++) {
      float want = i >= 1 ? x[i * 5 + k] + (float)od[k] : x[i * 5 + k];
      ck_assert_msg(memcmp(&y[i * 5 + k], &want, sizeof want) == 0,
                    "[%d, %d]: %.9g, expected %.9g", i, k, (double)y[i * 5 + k],
                    (double)want);
    }
  nne_tensor_unref(out);
  /* A double scalar likewise. */
  out = apply(v, NNE_EDIT_SCALE, NULL, 0.1, NULL, 0);
  y = nne_th_host_f32(out);
  for (i = 0; i < 15; i++) {
    float want = x[i] * (float)0.1;
    ck_assert(memcmp(&y[i], &want, sizeof want) == 0);
  }
  nne_tensor_unref(out);
  /* An int64 value stays int64: the operand is converted (truncated). */
  {
    int64_t iv[4] = {10, -3, 7, 0};
    float of[1] = {1.9f};
    int64_t one[1] = {1};
    nne_tensor_t *vi = nne_th_tensor(NNE_DTYPE_I64, ishape, 1, iv);
    nne_tensor_t *f1 = nne_th_f32(one, 1, of);
    const int64_t *r;
    out = apply(vi, NNE_EDIT_ADD, NULL, 2.7, NULL, 0);
    ck_assert_int_eq(nne_tensor_dtype(out), NNE_DTYPE_I64);
    r = nne_th_host(out);
    for (i = 0; i < 4; i++)
      ck_assert_int_eq(r[i], iv[i] + 2);
    nne_tensor_unref(out);
    out = apply(vi, NNE_EDIT_REPLACE, f1, 0, NULL, 0);
    r = nne_th_host(out);
    for (i = 0; i < 4; i++)
      ck_assert_int_eq(r[i], 1);
    nne_tensor_unref(out);
    nne_tensor_unref(vi);
    nne_tensor_unref(f1);
  }
  printf("edits: float64 operand and scalar rounded to float32 first; int64 "
         "value keeps its dtype\n");
  nne_tensor_unref(v);
  nne_tensor_unref(o64);
}
END_TEST

/* ---- 4: refusals, and nne_edit_check agreeing ---------------------------- */

typedef struct bad_case {
  int64_t shape[4];
  int ndim;
  int op;
  int64_t oshape[4]; /* operand shape; ondim < 0: no operand */
  int ondim;
  nne_dim_range_t r[3];
  size_t nr;
  const char *want; /* in the message; NULL: must succeed */
} bad_case_t;

static const bad_case_t k_cases[] = {
    /* engine.h's own examples */
    {{2, 3, 4, 7},
     4,
     NNE_EDIT_ZERO,
     {0},
     -1,
     {{3, 5, 9}},
     1,
     "dim 3 has size 7, range [5, 9)"},
    {{2, 7, 16},
     3,
     NNE_EDIT_ADD,
     {4},
     1,
     {{0}},
     0,
     "operand [4] does not broadcast to region [2, 7, 16]"},
    {{2, 7, 16},
     3,
     NNE_EDIT_ADD,
     {7, 16},
     2,
     {{1, 0, 3}},
     1,
     "operand [7, 16] does not broadcast to region [2, 3, 16]"},
    {{2, 7, 16},
     3,
     NNE_EDIT_REPLACE,
     {1, 2, 7, 16},
     4,
     {{0}},
     0,
     "operand [1, 2, 7, 16] does not broadcast to region [2, 7, 16]"},
    /* negative indices and stop 0 out of range */
    {{2, 7, 16},
     3,
     NNE_EDIT_ZERO,
     {0},
     -1,
     {{1, -9, 0}},
     1,
     "range 0: dim 1 has size 7, range [-9, 0)"},
    {{2, 7, 16},
     3,
     NNE_EDIT_ZERO,
     {0},
     -1,
     {{1, 0, -8}},
     1,
     "dim 1 has size 7, range [0, -8)"},
    {{2, 7, 16},
     3,
     NNE_EDIT_ZERO,
     {0},
     -1,
     {{-1, 16, 0}},
     1,
     "dim 2 has size 16, range [16, 0) = [16, 16) is empty"},
    {{2, 7, 16},
     3,
     NNE_EDIT_ZERO,
     {0},
     -1,
     {{1, 3, 3}},
     1,
     "range [3, 3) is empty"},
    {{2, 7, 16},
     3,
     NNE_EDIT_ZERO,
     {0},
     -1,
     {{1, 5, 2}},
     1,
     "dim 1 has size 7, range [5, 2)"},
    {{2, 7, 16},
     3,
     NNE_EDIT_ZERO,
     {0},
     -1,
     {{1, INT64_MIN, INT64_MAX}},
     1,
     "dim 1 has size 7"},
    /* dims */
    {{2, 7, 16},
     3,
     NNE_EDIT_ZERO,
     {0},
     -1,
     {{3, 0, 1}},
     1,
     "range 0: dim 3 does not exist (the value has 3 dimensions)"},
    {{2, 7, 16},
     3,
     NNE_EDIT_ZERO,
     {0},
     -1,
     {{-4, 0, 1}},
     1,
     "dim -4 does not exist"},
    {{2, 7, 16},
     3,
     NNE_EDIT_ZERO,
     {0},
     -1,
     {{2, 0, 1}, {0, 0, 1}, {-1, 1, 2}},
     3,
     "ranges 0 and 2 are both on dim 2"},
    {{2, 7, 16},
     3,
     NNE_EDIT_ZERO,
     {0},
     -1,
     {{1, 0, 1}, {1, 2, 3}},
     2,
     "ranges 0 and 1 are both on dim 1"},
    /* ops */
    {{2, 7, 16}, 3, 0, {0}, -1, {{0}}, 0, "op 0 is not an edit op"},
    {{2, 7, 16}, 3, 6, {0}, -1, {{0}}, 0, "op 6 is not an edit op"},
    {{2, 7, 16}, 3, -5, {0}, -1, {{0}}, 0, "op -5 is not an edit op"},
    /* fine: broadcasting, stop 0, zero and save ignore an operand */
    {{2, 7, 16}, 3, NNE_EDIT_ADD, {16}, 1, {{-2, -3, 0}}, 1, NULL},
    {{2, 7, 16}, 3, NNE_EDIT_ADD, {1, 3, 1}, 3, {{-2, -3, 0}}, 1, NULL},
    {{2, 7, 16}, 3, NNE_EDIT_SCALE, {2, 1, 1}, 3, {{0}}, 0, NULL},
    {{2, 7, 16}, 3, NNE_EDIT_ZERO, {5}, 1, {{0}}, 0, NULL},
    {{2, 7, 16}, 3, NNE_EDIT_SAVE, {5}, 1, {{2, 0, 1}}, 1, NULL},
    {{2, 7, 16}, 3, NNE_EDIT_REPLACE, {0}, 0, {{0, 1, 2}}, 1, NULL},
    {{5}, 1, NNE_EDIT_REPLACE, {5}, 1, {{0, 0, 0}}, 1, NULL},
};

START_TEST(test_errors) {
  size_t i;
  int refused = 0;
  for (i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
    const bad_case_t *c = &k_cases[i];
    nne_tensor_t *v = nne_th_tensor(NNE_DTYPE_F32, c->shape, c->ndim, NULL);
    nne_tensor_t *operand =
        c->ondim >= 0 ? nne_th_tensor(NNE_DTYPE_F32, c->oshape, c->ondim, NULL)
                      : NULL;
    nne_tensor_t *sentinel = (nne_tensor_t *)(uintptr_t)0x5151, *out = sentinel;
    nne_err_t e1 = {0}, e2 = {0};
    nne_edit_op_t op;
    int rc1, rc2;
    memcpy(&op, &c->op, sizeof op); /* any int, as from the wire */
    rc1 = nne_tensor_apply_edit(v, op, operand, 1.0, c->nr ? c->r : NULL, c->nr,
                                &out, &e1);
    rc2 = nne_edit_check(c->shape, c->ndim, op, operand, c->nr ? c->r : NULL,
                         c->nr, &e2);
    ck_assert_msg(rc1 == rc2, "case %zu: apply %d (%s), check %d (%s)", i, rc1,
                  e1.msg, rc2, e2.msg);
    if (c->want == NULL) {
      ck_assert_msg(rc1 == 0, "case %zu: %s", i, e1.msg);
      ck_assert_ptr_ne(out, sentinel);
      nne_tensor_unref(out);
    } else {
      ck_assert_msg(rc1 == NNE_EINVAL, "case %zu: rc %d", i, rc1);
      ck_assert_ptr_eq(out, sentinel);
      ck_assert_msg(strstr(e1.msg, c->want) != NULL,
                    "case %zu: '%s' lacks '%s'", i, e1.msg, c->want);
      ck_assert_str_eq(e1.msg, e2.msg);
      printf("  refused: %s\n", e1.msg);
      refused++;
    }
    nne_tensor_unref(v);
    nne_tensor_unref(operand);
  }
  /* NULL arguments. */
  {
    int64_t shape[1] = {3};
    nne_tensor_t *v = nne_th_tensor(NNE_DTYPE_F32, shape, 1, NULL), *out = NULL;
    nne_err_t err = {0};
    ck_assert_int_eq(nne_tensor_apply_edit(NULL, NNE_EDIT_ZERO, NULL, 0, NULL,
                                           0, &out, &err),
                     NNE_EINVAL);
    ck_assert_int_eq(
        nne_tensor_apply_edit(v, NNE_EDIT_ZERO, NULL, 0, NULL, 0, NULL, &err),
        NNE_EINVAL);
    ck_assert_int_eq(
        nne_tensor_apply_edit(v, NNE_EDIT_ZERO, NULL, 0, NULL, 2, &out, &err),
        NNE_EINVAL);
    ck_assert_int_eq(
        nne_edit_check(NULL, 2, NNE_EDIT_ZERO, NULL, NULL, 0, &err),
        NNE_EINVAL);
    ck_assert_int_eq(
        nne_edit_check(shape, 9, NNE_EDIT_ZERO, NULL, NULL, 0, &err),
        NNE_EINVAL);
    ck_assert_int_eq(nne_edit_check(NULL, 0, NNE_EDIT_ADD, NULL, NULL, 0, &err),
                     0); /* a scalar value */
    nne_tensor_unref(v);
  }
  /* A scalar operand the value's dtype cannot hold is the caller's error
   * (libtorch throws a plain std::runtime_error for it, not a c10::Error),
   * not an internal one; NaN and inf go into a float value as they are. */
  {
    static const struct {
      nne_dtype_t dt;
      double scalar;
      int rc;
    } k_scalars[] = {
        {NNE_DTYPE_F32, 1e300, NNE_EINVAL}, {NNE_DTYPE_F32, -1e39, NNE_EINVAL},
        {NNE_DTYPE_F16, 1e6, NNE_EINVAL},   {NNE_DTYPE_I64, NAN, NNE_EINVAL},
        {NNE_DTYPE_F32, NAN, 0},            {NNE_DTYPE_F32, -INFINITY, 0},
        {NNE_DTYPE_F32, 3e38, 0},           {NNE_DTYPE_F64, 1e300, 0},
    };
    int64_t shape[1] = {3};
    size_t i;
    for (i = 0; i < sizeof k_scalars / sizeof k_scalars[0]; i++) {
      nne_tensor_t *v = nne_th_tensor(k_scalars[i].dt, shape, 1, NULL);
      nne_tensor_t *out = NULL;
      nne_err_t err = {0};
      int rc = nne_tensor_apply_edit(v, NNE_EDIT_ADD, NULL, k_scalars[i].scalar,
                                     NULL, 0, &out, &err);
      ck_assert_msg(rc == k_scalars[i].rc, "scalar case %zu: rc %d (%s)", i,
                    rc, err.msg);
      if (rc != 0)
        ck_assert_msg(strstr(err.msg, "does not fit") != NULL, "%s", err.msg);
      nne_tensor_unref(out);
      nne_tensor_unref(v);
    }
  }
  printf("edits: %d refusals with their messages; nne_edit_check agrees on "
         "all %zu cases\n",
         refused, sizeof k_cases / sizeof k_cases[0]);
}
END_TEST

/* ---- 5: devices ------------------------------------------------------------
 */

START_TEST(test_to_device) {
  const int64_t shape[3] = {2, 3, 8}, vec[1] = {8};
  nne_tensor_t *v = random_f32(shape, 3, 31), *o = random_f32(vec, 1, 32);
  nne_tensor_t *c = NULL, *sentinel = (nne_tensor_t *)(uintptr_t)0x99,
               *out = sentinel;
  nne_err_t err = {0};
  ck_assert_int_eq(nne_tensor_to_device(v, "cpu", &c, &err), 0);
  ck_assert_ptr_ne(c, v);
  ck_assert(nne_th_same(c, v));
  ck_assert_ptr_ne(nne_th_host(c), nne_th_host(v)); /* a copy */
  nne_tensor_unref(c);
  ck_assert_int_eq(nne_tensor_to_device(v, "gpu", &out, &err), NNE_EINVAL);
  ck_assert_ptr_eq(out, sentinel);
  ck_assert_int_eq(nne_tensor_to_device(v, "cuda:99", &out, &err), NNE_EINVAL);
  ck_assert_int_eq(nne_tensor_to_device(NULL, "cpu", &out, &err), NNE_EINVAL);
  if (nne_engine_cuda_device_count() > 0) {
    /* A value on the GPU, an operand on the host: the operand follows the
     * value, and the result equals the CPU's bit for bit. */
    nne_tensor_t *g = NULL, *gout, *back = NULL, *cpu;
    nne_dim_range_t r = {1, 1, 0};
    ck_assert_int_eq(nne_tensor_to_device(v, "cuda:0", &g, &err), 0);
    gout = apply(g, NNE_EDIT_ADD, o, 0, &r, 1);
    ck_assert_int_eq(nne_tensor_to_device(gout, "cpu", &back, &err), 0);
    cpu = apply(v, NNE_EDIT_ADD, o, 0, &r, 1);
    ck_assert(nne_th_same(back, cpu));
    printf("edits: CUDA value with a host operand equals the CPU result\n");
    nne_tensor_unref(g);
    nne_tensor_unref(gout);
    nne_tensor_unref(back);
    nne_tensor_unref(cpu);
  } else {
    printf("edits: no CUDA device here; the GPU path is not exercised\n");
  }
  nne_tensor_unref(v);
  nne_tensor_unref(o);
}
END_TEST

/* ---- 6: figures ------------------------------------------------------------
 */

static double best_us(nne_tensor_t *v, nne_edit_op_t op, nne_tensor_t *o,
                      double s, const nne_dim_range_t *r, size_t nr,
                      int clone) {
  double best = 1e9;
  int i;
  for (i = 0; i < 300; i++) {
    nne_tensor_t *out = NULL;
    nne_err_t err = {0};
    double t0 = nne_th_now_ms(), t;
    int rc = clone ? nne_tensor_clone(v, &out, &err)
                   : nne_tensor_apply_edit(v, op, o, s, r, nr, &out, &err);
    t = (nne_th_now_ms() - t0) * 1e3;
    ck_assert_msg(rc == 0, "%s", err.msg);
    nne_tensor_unref(out);
    best = t < best ? t : best;
  }
  return best;
}

START_TEST(test_figures) {
  const int64_t shape[3] = {1, 128, 768}, vec[1] = {768}, head[1] = {64};
  nne_tensor_t *v = random_f32(shape, 3, 41), *steer = random_f32(vec, 1, 42),
               *h = random_f32(head, 1, 43);
  nne_dim_range_t pos = {1, 64, 0}, hd = {-1, 128, 192};
  printf(
      "edits: [1, 128, 768] float32 (384 KiB), best of 300, one thread:\n"
      "  clone %.1f us | save %.2f us\n"
      "  whole value:  replace %.1f  add [D] %.1f  scale %.1f  zero %.1f us\n"
      "  positions 64..: replace %.1f  add [D] %.1f  scale %.1f  zero %.1f "
      "us\n"
      "  one head [128, 192): add [64] %.1f  zero %.1f us\n",
      best_us(v, 0, NULL, 0, NULL, 0, 1),
      best_us(v, NNE_EDIT_SAVE, NULL, 0, NULL, 0, 0),
      best_us(v, NNE_EDIT_REPLACE, steer, 0, NULL, 0, 0),
      best_us(v, NNE_EDIT_ADD, steer, 0, NULL, 0, 0),
      best_us(v, NNE_EDIT_SCALE, NULL, 0.5, NULL, 0, 0),
      best_us(v, NNE_EDIT_ZERO, NULL, 0, NULL, 0, 0),
      best_us(v, NNE_EDIT_REPLACE, steer, 0, &pos, 1, 0),
      best_us(v, NNE_EDIT_ADD, steer, 0, &pos, 1, 0),
      best_us(v, NNE_EDIT_SCALE, NULL, 0.5, &pos, 1, 0),
      best_us(v, NNE_EDIT_ZERO, NULL, 0, &pos, 1, 0),
      best_us(v, NNE_EDIT_ADD, h, 0, &hd, 1, 0),
      best_us(v, NNE_EDIT_ZERO, NULL, 0, &hd, 1, 0));
  {
    /* Scale with the value's size: a [1, 1024, 768] value. */
    const int64_t big[3] = {1, 1024, 768};
    nne_tensor_t *vb = random_f32(big, 3, 44);
    printf("  [1, 1024, 768] (3 MiB): clone %.1f  add [D] %.1f  add [D] at "
           "positions 64.. %.1f us\n",
           best_us(vb, 0, NULL, 0, NULL, 0, 1),
           best_us(vb, NNE_EDIT_ADD, steer, 0, NULL, 0, 0),
           best_us(vb, NNE_EDIT_ADD, steer, 0, &pos, 1, 0));
    nne_tensor_unref(vb);
  }
  nne_tensor_unref(v);
  nne_tensor_unref(steer);
  nne_tensor_unref(h);
}
END_TEST

/* ---- 7: end to end through variants -------------------------------------- */

enum { RAW_REPLACE = -1 };

/* Per site: an edit (op 0: none; RAW_REPLACE: store `operand` as the
 * replacement), and the value after the edit at the site's first firing. */
typedef struct edit_spec {
  int op;
  nne_tensor_t *operand;
  double scalar;
  nne_dim_range_t ranges[2];
  size_t n_ranges;
} edit_spec_t;

typedef struct edit_run {
  size_t n;
  edit_spec_t *spec;
  nne_tensor_t **before; /* the value as the hook got it, first firing */
  nne_tensor_t **after;  /* a clone of what went on, first firing */
  int fired, failed;
} edit_run_t;

static void run_init(edit_run_t *r, size_t n) {
  memset(r, 0, sizeof *r);
  r->n = n;
  r->spec = calloc(n, sizeof *r->spec);
  r->before = calloc(n, sizeof *r->before);
  r->after = calloc(n, sizeof *r->after);
  ck_assert(r->spec && r->before && r->after);
}

static void run_clear(edit_run_t *r) {
  size_t i;
  for (i = 0; i < r->n; i++) {
    nne_tensor_unref(r->before[i]);
    nne_tensor_unref(r->after[i]);
    r->before[i] = r->after[i] = NULL;
  }
  r->fired = r->failed = 0;
}

static void run_free(edit_run_t *r) {
  run_clear(r);
  free(r->spec);
  free(r->before);
  free(r->after);
}

static int edit_hook(void *ctx, int site, nne_tensor_t *value,
                     nne_tensor_t **replace) {
  edit_run_t *r = ctx;
  const edit_spec_t *e;
  nne_tensor_t *cur = value;
  nne_err_t err = {0};
  if (site < 0 || (size_t)site >= r->n)
    return NNE_EINTERNAL;
  e = &r->spec[site];
  r->fired++;
  if (r->before[site] == NULL &&
      nne_tensor_clone(value, &r->before[site], &err) != 0)
    r->failed++;
  if (e->op == RAW_REPLACE) {
    cur = nne_tensor_ref(e->operand);
  } else if (e->op != 0) {
    nne_edit_op_t op;
    memcpy(&op, &e->op, sizeof op);
    if (nne_tensor_apply_edit(value, op, e->operand, e->scalar, e->ranges,
                              e->n_ranges, &cur, &err) != 0) {
      fprintf(stderr, "edit at site %d: %s\n", site, err.msg);
      r->failed++;
      return err.code;
    }
  }
  if (r->after[site] == NULL && nne_tensor_clone(cur, &r->after[site], &err))
    r->failed++;
  if (cur != value)
    *replace = cur;
  return 0;
}

static nne_tensor_t *edited_forward(nne_variant_t *v, nne_tensor_t *ids,
                                    edit_run_t *r) {
  nne_tensor_t *out = NULL;
  nne_err_t err = {0};
  run_clear(r);
  ck_assert_msg(nne_variant_forward(v, ids, NULL, edit_hook, r, &out, &err) ==
                    0,
                "forward: %s", err.msg);
  ck_assert_int_eq(r->failed, 0);
  return out;
}

static nne_variant_t *build(nne_model_t *m, const nne_site_t *s, size_t n) {
  nne_variant_t *v = NULL;
  nne_err_t err = {0};
  ck_assert_msg(nne_variant_build(m, s, n, &v, &err) == 0, "build: %s",
                err.msg);
  return v;
}

/* Rows of a [B, H, S, S] pattern: each sums to 1 (within tol), or is all
 * zeros (want_zero). */
static void check_rows(nne_tensor_t *p, int want_zero, const char *what) {
  const float *x = nne_th_host_f32(p);
  int64_t S, rows, r, k;
  ck_assert_int_eq(nne_tensor_ndim(p), 4);
  S = nne_tensor_shape(p)[3];
  rows = nne_tensor_numel(p) / S;
  for (r = 0; r < rows; r++) {
    double sum = 0;
    for (k = 0; k < S; k++) {
      sum += x[r * S + k];
      if (want_zero)
        ck_assert_msg(x[r * S + k] == 0.0f, "%s: row %lld key %lld is %g", what,
                      (long long)r, (long long)k, (double)x[r * S + k]);
    }
    if (!want_zero)
      ck_assert_msg(fabs(sum - 1) <= 1e-5, "%s: row %lld sums to %.9f", what,
                    (long long)r, sum);
  }
}

/* Zeroing aten::softmax#0 of the first attention zeroes that pattern only;
 * the attention's output becomes its output projection of zeros (the same
 * row at every position). */
START_TEST(test_e2e_zero_softmax) {
  nne_fixture_t *f = nne_th_fixture(g_names[_i]);
  nne_model_t *m = nne_th_load(f->model_path);
  nne_tensor_t *ids = nne_th_ids(&f->input_ids), *l_clean, *l_zero;
  int att0 = nne_th_nth_of_class(m, "Attention", 0);
  int att1 = nne_th_nth_of_class(m, "Attention", 1);
  nne_site_t s[4] = {
      {att0, NNE_SITE_NODE, 0, "aten::softmax", 0},
      {att1, NNE_SITE_NODE, 0, "aten::softmax", 0},
      {att0, NNE_SITE_OUTPUT, 0, NULL, 0},
      {att1, NNE_SITE_OUTPUT, 0, NULL, 0},
  };
  nne_variant_t *v;
  edit_run_t clean, zero;
  const float *o;
  int64_t D, rows, r, k;
  double moved = 0;

  ck_assert(att0 >= 0 && att1 > att0);
  v = build(m, s, 4);
  run_init(&clean, 4);
  run_init(&zero, 4);
  zero.spec[0].op = NNE_EDIT_ZERO;
  l_clean = edited_forward(v, ids, &clean);
  l_zero = edited_forward(v, ids, &zero);
  ck_assert_int_eq(zero.fired, 4);

  check_rows(clean.after[0], 0, "clean layer 0 pattern");
  check_rows(zero.after[0], 1, "zeroed layer 0 pattern");
  /* The other instance's pattern is still a distribution (its input moved:
   * layer 0 changed). */
  check_rows(zero.after[1], 0, "layer 1 pattern with layer 0 zeroed");
  /* Layer 0's attention output: changed, and the same row everywhere. */
  ck_assert(!nne_th_same(clean.after[2], zero.after[2]));
  o = nne_th_host_f32(zero.after[2]);
  D = nne_tensor_shape(zero.after[2])[nne_tensor_ndim(zero.after[2]) - 1];
  rows = nne_tensor_numel(zero.after[2]) / D;
  for (r = 1; r < rows; r++)
    for (k = 0; k < D; k++)
      ck_assert_msg(o[r * D + k] == o[k],
                    "attention output with a zero pattern differs between "
                    "rows 0 and %lld",
                    (long long)r);
  {
    const float *a = nne_th_host_f32(l_clean), *b = nne_th_host_f32(l_zero);
    for (k = 0; k < nne_tensor_numel(l_clean); k++)
      moved = fmax(moved, fabs((double)a[k] - b[k]));
  }
  ck_assert(moved > 1e-4);
  printf("%-12s zero %s:aten::softmax#0: that pattern is 0, %s's rows still "
         "sum to 1, layer 0's attention output is one row everywhere; logits "
         "move by %.3g\n",
         f->name, nne_model_module(m, (size_t)att0)->path,
         nne_model_module(m, (size_t)att1)->path, moved);
  run_free(&clean);
  run_free(&zero);
  nne_tensor_unref(l_clean);
  nne_tensor_unref(l_zero);
  nne_variant_unref(v);
  nne_tensor_unref(ids);
  nne_model_unref(m);
  nne_fixture_free(f);
}
END_TEST

/* ADD of a steering vector at block 0's output equals adding it by hand to
 * the captured value, bit for bit, and so do the logits that follow. */
START_TEST(test_e2e_steer) {
  nne_fixture_t *f = nne_th_fixture(g_names[_i]);
  nne_model_t *m = nne_th_load(f->model_path);
  nne_tensor_t *ids = nne_th_ids(&f->input_ids), *l_clean, *l_add, *l_hand;
  int blk0 = nne_th_nth_of_class(m, nne_th_block_class(f), 0);
  int blk1 = nne_th_nth_of_class(m, nne_th_block_class(f), 1);
  nne_site_t s[2] = {{blk0, NNE_SITE_OUTPUT, 0, NULL, 0},
                     {blk1, NNE_SITE_OUTPUT, 0, NULL, 0}};
  nne_variant_t *v = build(m, s, 2);
  edit_run_t clean, add, hand;
  nne_tensor_t *steer, *by_hand, *x;
  int64_t D, n, i, dim1[1];
  float *sum;
  const float *xs, *sv;
  nne_dim_range_t pos = {1, 1, 0}; /* every position but the first */

  run_init(&clean, 2);
  run_init(&add, 2);
  run_init(&hand, 2);
  l_clean = edited_forward(v, ids, &clean);
  x = clean.after[0];
  ck_assert_int_eq(nne_tensor_ndim(x), 3);
  D = nne_tensor_shape(x)[2];
  n = nne_tensor_numel(x);
  dim1[0] = D;
  steer = random_f32(dim1, 1, 51);

  /* By hand: x + v at positions 1.. of every row. */
  sum = malloc((size_t)n * sizeof *sum);
  ck_assert_ptr_nonnull(sum);
  xs = nne_th_host_f32(x);
  sv = nne_th_host_f32(steer);
  for (i = 0; i < n; i++) {
    int64_t p = (i / D) % nne_tensor_shape(x)[1];
    sum[i] = p >= 1 ? xs[i] + sv[i % D] : xs[i];
  }
  by_hand = nne_th_f32(nne_tensor_shape(x), 3, sum);

  add.spec[0].op = NNE_EDIT_ADD;
  add.spec[0].operand = steer;
  add.spec[0].ranges[0] = pos;
  add.spec[0].n_ranges = 1;
  l_add = edited_forward(v, ids, &add);
  ck_assert_msg(nne_th_same(add.after[0], by_hand),
                "ADD at the block's output differs from adding by hand");
  hand.spec[0].op = RAW_REPLACE;
  hand.spec[0].operand = by_hand;
  l_hand = edited_forward(v, ids, &hand);
  ck_assert(nne_th_same(l_add, l_hand));
  ck_assert(nne_th_same(add.after[1], hand.after[1]));
  ck_assert(!nne_th_same(l_add, l_clean));
  printf("%-12s steer %s.output with a [%lld] vector at positions 1..: "
         "bit-identical to adding by hand; block 1 and logits too\n",
         f->name, nne_model_module(m, (size_t)blk0)->path, (long long)D);
  free(sum);
  run_free(&clean);
  run_free(&add);
  run_free(&hand);
  nne_tensor_unref(steer);
  nne_tensor_unref(by_hand);
  nne_tensor_unref(l_clean);
  nne_tensor_unref(l_add);
  nne_tensor_unref(l_hand);
  nne_variant_unref(v);
  nne_tensor_unref(ids);
  nne_model_unref(m);
  nne_fixture_free(f);
}
END_TEST

/* An edit on a value that is a strided view inside the graph (the output of
 * the first aten::permute or aten::transpose of attention 0's own code):
 * one head's range plus a [head_dim] operand, against the C loop on the
 * value's bytes. */
START_TEST(test_e2e_view) {
  nne_fixture_t *f = nne_th_fixture(g_names[_i]);
  nne_model_t *m = nne_th_load(f->model_path);
  nne_tensor_t *ids = nne_th_ids(&f->input_ids), *l, *o, *want;
  int att0 = nne_th_nth_of_class(m, "Attention", 0);
  const nne_node_info_t *nodes;
  size_t n, k;
  nne_err_t err = {0};
  nne_site_t s = {att0, NNE_SITE_NODE, 0, NULL, 0};
  nne_variant_t *v;
  edit_run_t run;
  int64_t last[1];
  const int64_t *shape;
  float *exp_data;
  int nd;

  ck_assert_int_eq(nne_model_module_nodes(m, att0, &nodes, &n, &err), 0);
  for (k = 0; k < n; k++)
    if ((strcmp(nodes[k].kind, "aten::permute") == 0 ||
         strcmp(nodes[k].kind, "aten::transpose") == 0) &&
        (nodes[k].tensor_outputs & 1)) {
      s.node_kind = nodes[k].kind;
      s.node_occurrence = nodes[k].occurrence;
      break;
    }
  ck_assert_ptr_nonnull(s.node_kind);
  v = build(m, &s, 1);
  run_init(&run, 1);
  run.spec[0].ranges[0] = (nne_dim_range_t){1, -1, 0}; /* the last head */
  run.spec[0].n_ranges = 1;
  /* The operand's size is the value's last dimension: a first run finds
   * it, with an edit that does nothing. */
  run.spec[0].op = NNE_EDIT_SAVE;
  l = edited_forward(v, ids, &run);
  nne_tensor_unref(l);
  shape = nne_tensor_shape(run.before[0]);
  nd = nne_tensor_ndim(run.before[0]);
  ck_assert_int_ge(nd, 2);
  last[0] = shape[nd - 1];
  o = random_f32(last, 1, 61);
  run.spec[0].op = NNE_EDIT_ADD;
  run.spec[0].operand = o;
  l = edited_forward(v, ids, &run);
  exp_data = malloc((size_t)nne_tensor_numel(run.before[0]) * sizeof *exp_data);
  ck_assert_ptr_nonnull(exp_data);
  ref_edit(nne_th_host_f32(run.before[0]), nne_tensor_shape(run.before[0]), nd,
           NNE_EDIT_ADD, nne_th_host_f32(o), last, 1, 0, run.spec[0].ranges, 1,
           exp_data);
  want = nne_th_f32(nne_tensor_shape(run.before[0]), nd, exp_data);
  ck_assert_msg(nne_th_same(run.after[0], want),
                "an edit on %s's output differs from the C loop", s.node_kind);
  printf("%-12s edit on a view (%s:%s#%d, %d dims, last head): "
         "bit-identical to the C loop\n",
         f->name, nne_model_module(m, (size_t)att0)->path, s.node_kind,
         s.node_occurrence, nd);
  free(exp_data);
  nne_tensor_unref(want);
  nne_tensor_unref(o);
  nne_tensor_unref(l);
  run_free(&run);
  nne_variant_unref(v);
  nne_tensor_unref(ids);
  nne_model_unref(m);
  nne_fixture_free(f);
}
END_TEST

/* ---- main ---------------------------------------------------------------- */

static Suite *edits_suite(void) {
  Suite *s = suite_create("engine edits");
  TCase *tc = tcase_create("values");
  TCase *te = tcase_create("fixtures");
  tcase_add_test(tc, test_ops);
  tcase_add_test(tc, test_broadcast);
  tcase_add_test(tc, test_dtype_cast);
  tcase_add_test(tc, test_errors);
  tcase_add_test(tc, test_to_device);
  tcase_add_test(tc, test_figures);
  tcase_add_checked_fixture(tc, nne_th_one_thread, NULL);
  tcase_set_timeout(tc, 120);
  suite_add_tcase(s, tc);
  tcase_add_loop_test(te, test_e2e_zero_softmax, 0, (int)g_nfix);
  tcase_add_loop_test(te, test_e2e_steer, 0, (int)g_nfix);
  tcase_add_loop_test(te, test_e2e_view, 0, (int)g_nfix);
  tcase_add_checked_fixture(te, nne_th_one_thread, NULL);
  tcase_set_timeout(te, 120);
  suite_add_tcase(s, te);
  return s;
}

int main(void) {
  SRunner *sr;
  int failed;
  char msg[512];

  if (nne_fixtures_list(&g_names, &g_nfix, msg, sizeof msg) != 0) {
    fprintf(stderr, "test_engine_edits: %s\n", msg);
    return 1;
  }
  printf("test_engine_edits: %zu fixtures in %s; libtorch %s\n", g_nfix,
         nne_fixtures_dir(), nne_engine_torch_version());
  fflush(stdout);
  sr = srunner_create(edits_suite());
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  nne_fixtures_list_free(g_names, g_nfix);
  return failed == 0 ? 0 : 1;
}
