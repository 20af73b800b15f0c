/* test_outbox.c — daemon/infer/outbox.{h,c}: what an inference reply
 * streams, the parts that need no live gRPC call.
 *
 * It proves that items queue in order (results and tensors interleaved,
 * past the first growth of the array), that a queued tensor takes the
 * caller's reference and has its host bytes made at once (the pointer and
 * size the stream will send), that nne_outbox_names lists the tensors of an
 * item range in order and skips results, and that a RowTopK list built by
 * nne_outbox_rows_init encodes with nanopb into a ForwardResult whose rows,
 * read back by a decoder, carry each row's last position and its top-k
 * (ids, logits, probabilities) in order — or positions alone when top_k is
 * 0. Streaming (nne_outbox_start) needs a gRPC call: the integration tests
 * cover it.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "engine/engine.h"
#include "infer/outbox.h"
#include "infer/pass.h"
#include "nne_pb.h"
#include "nnedit/v1/inference.pb.h"
#include "unit_main.h"

static nne_tensor_t *f32(int64_t rows, int64_t cols, float first) {
  int64_t shape[2] = {rows, cols};
  float *v = malloc((size_t)(rows * cols) * sizeof *v);
  nne_tensor_t *t = NULL;
  nne_err_t err;
  int64_t i;
  ck_assert_ptr_nonnull(v);
  for (i = 0; i < rows * cols; i++)
    v[i] = first + (float)i;
  ck_assert_msg(nne_tensor_from_host(NNE_DTYPE_F32, shape, 2, v, &t, &err) == 0,
                "%s", err.msg);
  free(v);
  return t;
}

START_TEST(test_items_queue_in_order) {
  nne_outbox_t ob;
  nne_err_t err;
  nne_tensor_t *a = f32(2, 3, 0), *b = f32(1, 4, 100);
  const void *hp;

  nne_outbox_init(&ob, nnedit_v1_ForwardResponse_chunk_tag, 1024, NULL, NULL);
  ck_assert_uint_eq(ob.chunk_tag, nnedit_v1_ForwardResponse_chunk_tag);
  ck_assert_uint_eq(ob.chunk_bytes, 1024);
  ck_assert_uint_eq(ob.n, 0);
  /* Forward's order: result, logits, saves. */
  ck_assert_int_eq(nne_outbox_result(&ob, 0, &err), 0);
  ck_assert_int_eq(nne_outbox_tensor(&ob, "logits", nne_tensor_ref(a), &err),
                   0);
  ck_assert_int_eq(nne_outbox_tensor(&ob, "layers.0", nne_tensor_ref(b), &err),
                   0);
  ck_assert_uint_eq(ob.n, 3);
  ck_assert(ob.items[0].result);
  ck_assert_uint_eq(ob.items[0].index, 0);
  ck_assert_ptr_null(ob.items[0].t);
  ck_assert(!ob.items[1].result);
  ck_assert_str_eq(ob.items[1].name, "logits");
  ck_assert_ptr_eq(ob.items[1].t, a);
  ck_assert_uint_eq(ob.items[1].bytes, 24);
  ck_assert_uint_eq(ob.items[2].bytes, 16);
  /* Host bytes are made when queued (on the executor), and they are the
   * tensor's own: the loop only slices them. */
  ck_assert_ptr_nonnull(ob.items[1].p);
  ck_assert_int_eq(nne_tensor_host_data(b, &hp, &err), 0);
  ck_assert_ptr_eq(ob.items[2].p, hp);
  ck_assert(((const float *)ob.items[2].p)[3] == 103.0f);
  /* Nothing is being sent yet. */
  ck_assert_uint_eq(ob.next, 0);
  ck_assert_uint_eq(ob.sent, 0);
  /* The outbox held its own references: ours can go first. */
  nne_tensor_unref(a);
  nne_tensor_unref(b);
  ck_assert(((const float *)ob.items[1].p)[5] == 5.0f);
  nne_outbox_free(&ob);
  ck_assert_ptr_null(ob.items);
  ck_assert_uint_eq(ob.n, 0);
  nne_outbox_free(&ob); /* twice is harmless */
}
END_TEST

START_TEST(test_many_items_and_names) {
  /* A trace: per trace its saves then its result, past the initial
   * capacity; names of a range list its tensors only, in order. */
  enum { TRACES = 12, SAVES = 3 };
  static char names[TRACES][SAVES][16];
  const char *got[TRACES * (SAVES + 1)];
  nne_outbox_t ob;
  nne_err_t err;
  size_t t, s, n;

  nne_outbox_init(&ob, 2, 64, NULL, NULL);
  for (t = 0; t < TRACES; t++) {
    for (s = 0; s < SAVES; s++) {
      snprintf(names[t][s], sizeof names[t][s], "t%zu.s%zu", t, s);
      /* The only reference: the outbox frees it (LSan checks). */
      ck_assert_int_eq(nne_outbox_tensor(&ob, names[t][s],
                                         f32(1, 2, (float)(t * 10 + s)), &err),
                       0);
    }
    ck_assert_int_eq(nne_outbox_result(&ob, t, &err), 0);
  }
  ck_assert_uint_eq(ob.n, TRACES * (SAVES + 1));
  for (t = 0; t < TRACES; t++) {
    nne_outbox_item_t *r = &ob.items[t * (SAVES + 1) + SAVES];
    ck_assert(r->result);
    ck_assert_uint_eq(r->index, t);
    ck_assert_str_eq(ob.items[t * (SAVES + 1)].name, names[t][0]);
    ck_assert(((const float *)ob.items[t * (SAVES + 1) + 2].p)[1] ==
              (float)(t * 10 + 2) + 1.0f);
  }
  /* All of them. */
  n = nne_outbox_names(&ob, 0, ob.n, got);
  ck_assert_uint_eq(n, TRACES * SAVES);
  for (t = 0; t < TRACES; t++)
    for (s = 0; s < SAVES; s++)
      ck_assert_str_eq(got[t * SAVES + s], names[t][s]);
  /* Trace 5's items: its three saves, not its result. */
  n = nne_outbox_names(&ob, 5 * (SAVES + 1), 6 * (SAVES + 1), got);
  ck_assert_uint_eq(n, SAVES);
  ck_assert_str_eq(got[0], "t5.s0");
  ck_assert_str_eq(got[2], "t5.s2");
  /* A range starting at a result, one reaching past the end, an empty
   * one. */
  n = nne_outbox_names(&ob, SAVES, SAVES + 2, got);
  ck_assert_uint_eq(n, 1);
  ck_assert_str_eq(got[0], "t1.s0");
  n = nne_outbox_names(&ob, ob.n - 2, ob.n + 10, got);
  ck_assert_uint_eq(n, 1);
  ck_assert_str_eq(got[0], "t11.s2");
  ck_assert_uint_eq(nne_outbox_names(&ob, 7, 7, got), 0);
  nne_outbox_free(&ob);
}
END_TEST

/* ---- top-k rows ------------------------------------------------------------
 */

typedef struct dec_score {
  int64_t id;
  float logit, prob;
} dec_score_t;

typedef struct dec_row {
  uint32_t position;
  size_t n_top;
  dec_score_t top[8];
} dec_row_t;

typedef struct dec_rows {
  dec_row_t rows[8];
  size_t n;
} dec_rows_t;

static bool dec_score(pb_istream_t *s, const pb_field_t *f, void **arg) {
  dec_row_t *row = *arg;
  nnedit_v1_TokenScore ts = nnedit_v1_TokenScore_init_zero;
  (void)f;
  if (row->n_top >= 8 || !pb_decode(s, nnedit_v1_TokenScore_fields, &ts))
    return false;
  row->top[row->n_top].id = ts.token_id;
  row->top[row->n_top].logit = ts.logit;
  row->top[row->n_top].prob = ts.prob;
  row->n_top++;
  return true;
}

static bool dec_row(pb_istream_t *s, const pb_field_t *f, void **arg) {
  dec_rows_t *rows = *arg;
  nnedit_v1_RowTopK r = nnedit_v1_RowTopK_init_zero;
  dec_row_t *out;
  (void)f;
  if (rows->n >= 8)
    return false;
  out = &rows->rows[rows->n];
  memset(out, 0, sizeof *out);
  NNE_PB_DEC(r.top, dec_score, out);
  if (!pb_decode(s, nnedit_v1_RowTopK_fields, &r))
    return false;
  out->position = r.position;
  rows->n++;
  return true;
}

/* Encodes a ForwardResult with the rows list, then decodes it back. */
static void roundtrip(nne_outbox_rows_t *rows, uint32_t batch, dec_rows_t *out,
                      uint32_t *batch_out) {
  nnedit_v1_ForwardResult res = nnedit_v1_ForwardResult_init_zero;
  nnedit_v1_ForwardResult back = nnedit_v1_ForwardResult_init_zero;
  uint8_t buf[4096];
  pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof buf);
  pb_istream_t is;

  res.batch = batch;
  res.seq_len = 9;
  NNE_PB_ENC(res.rows, nne_pb_list_enc, &rows->list);
  ck_assert_msg(pb_encode(&os, nnedit_v1_ForwardResult_fields, &res), "%s",
                PB_GET_ERROR(&os));
  memset(out, 0, sizeof *out);
  NNE_PB_DEC(back.rows, dec_row, out);
  is = pb_istream_from_buffer(buf, os.bytes_written);
  ck_assert_msg(pb_decode(&is, nnedit_v1_ForwardResult_fields, &back), "%s",
                PB_GET_ERROR(&is));
  ck_assert_uint_eq(back.seq_len, 9);
  *batch_out = back.batch;
}

START_TEST(test_rows_encode_positions_and_topk) {
  /* A pass's top-k for three rows, k = 2, made by hand (the host views are
   * all the rows read). */
  static const int64_t ids[6] = {7, 3, 999, 0, 42, 41};
  static const float vals[6] = {5.5f, 4.25f, -1.0f, -2.0f, 0.5f, 0.25f};
  static const float probs[6] = {0.6f, 0.3f, 0.7f, 0.2f, 0.4f, 0.35f};
  static const int64_t last_pos[3] = {8, 3, 0};
  nne_infer_pass_t pass;
  nne_outbox_rows_t rows;
  nne_err_t err;
  dec_rows_t got;
  uint32_t batch;
  size_t r, k;

  memset(&pass, 0, sizeof pass);
  pass.top_k = 2;
  pass.tk_ids_p = ids;
  pass.tk_vals_p = vals;
  pass.tk_probs_p = probs;
  ck_assert_int_eq(nne_outbox_rows_init(&rows, &pass, last_pos, 3, 2, &err), 0);
  roundtrip(&rows, 3, &got, &batch);
  ck_assert_uint_eq(batch, 3);
  ck_assert_uint_eq(got.n, 3);
  for (r = 0; r < 3; r++) {
    ck_assert_uint_eq(got.rows[r].position, (uint32_t)last_pos[r]);
    ck_assert_uint_eq(got.rows[r].n_top, 2);
    for (k = 0; k < 2; k++) {
      ck_assert_int_eq(got.rows[r].top[k].id, ids[r * 2 + k]);
      ck_assert(got.rows[r].top[k].logit == vals[r * 2 + k]);
      ck_assert(got.rows[r].top[k].prob == probs[r * 2 + k]);
    }
  }
  nne_outbox_rows_free(&rows);
  ck_assert_ptr_null(rows.tops);
  nne_outbox_rows_free(&rows); /* twice is harmless */
}
END_TEST

START_TEST(test_rows_without_topk) {
  /* top_k 0: each row still says where its last token is, with no list
   * (and the pass's top-k views are never read: they are NULL here). */
  static const int64_t last_pos[2] = {4, 1};
  nne_infer_pass_t pass;
  nne_outbox_rows_t rows;
  nne_err_t err;
  dec_rows_t got;
  uint32_t batch;

  memset(&pass, 0, sizeof pass);
  ck_assert_int_eq(nne_outbox_rows_init(&rows, &pass, last_pos, 2, 0, &err), 0);
  ck_assert_ptr_null(rows.tops);
  roundtrip(&rows, 2, &got, &batch);
  ck_assert_uint_eq(got.n, 2);
  ck_assert_uint_eq(got.rows[0].position, 4);
  ck_assert_uint_eq(got.rows[1].position, 1);
  ck_assert_uint_eq(got.rows[0].n_top, 0);
  ck_assert_uint_eq(got.rows[1].n_top, 0);
  nne_outbox_rows_free(&rows);
}
END_TEST

START_TEST(test_rows_from_a_real_topk) {
  /* The views as a pass leaves them: engine top-k of a [2, 5] tensor. */
  static const float x[10] = {0.1f, 3.0f, -1.0f, 2.0f, 0.0f,
                              9.0f, 8.0f, 7.0f,  6.0f, 5.0f};
  static const int64_t last_pos[2] = {2, 2};
  int64_t shape[2] = {2, 5};
  nne_tensor_t *t = NULL;
  nne_infer_pass_t pass;
  nne_outbox_rows_t rows;
  nne_err_t err;
  dec_rows_t got;
  uint32_t batch;
  const void *h;

  memset(&pass, 0, sizeof pass);
  ck_assert_int_eq(nne_tensor_from_host(NNE_DTYPE_F32, shape, 2, x, &t, &err),
                   0);
  ck_assert_int_eq(
      nne_tensor_topk(t, 3, &pass.tk_ids, &pass.tk_vals, &pass.tk_probs, &err),
      0);
  ck_assert_int_eq(nne_tensor_host_data(pass.tk_ids, &h, &err), 0);
  pass.tk_ids_p = h;
  ck_assert_int_eq(nne_tensor_host_data(pass.tk_vals, &h, &err), 0);
  pass.tk_vals_p = h;
  ck_assert_int_eq(nne_tensor_host_data(pass.tk_probs, &h, &err), 0);
  pass.tk_probs_p = h;
  pass.top_k = 3;
  ck_assert_int_eq(nne_outbox_rows_init(&rows, &pass, last_pos, 2, 3, &err), 0);
  roundtrip(&rows, 2, &got, &batch);
  ck_assert_uint_eq(got.rows[0].n_top, 3);
  ck_assert_int_eq(got.rows[0].top[0].id, 1);
  ck_assert_int_eq(got.rows[0].top[1].id, 3);
  ck_assert_int_eq(got.rows[0].top[2].id, 0);
  ck_assert(got.rows[0].top[0].logit == 3.0f);
  ck_assert_int_eq(got.rows[1].top[0].id, 0);
  ck_assert_int_eq(got.rows[1].top[2].id, 2);
  ck_assert(got.rows[1].top[0].prob > got.rows[1].top[1].prob);
  nne_outbox_rows_free(&rows);
  nne_infer_pass_free(&pass);
  nne_tensor_unref(t);
}
END_TEST

START_TEST(test_no_rows) {
  nne_infer_pass_t pass;
  nne_outbox_rows_t rows;
  nne_err_t err;
  dec_rows_t got;
  uint32_t batch;
  memset(&pass, 0, sizeof pass);
  ck_assert_int_eq(nne_outbox_rows_init(&rows, &pass, NULL, 0, 5, &err), 0);
  roundtrip(&rows, 0, &got, &batch);
  ck_assert_uint_eq(got.n, 0);
  nne_outbox_rows_free(&rows);
}
END_TEST

static Suite *outbox_suite(void) {
  Suite *s = suite_create("outbox");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_items_queue_in_order);
  tcase_add_test(tc, test_many_items_and_names);
  tcase_add_test(tc, test_rows_encode_positions_and_topk);
  tcase_add_test(tc, test_rows_without_topk);
  tcase_add_test(tc, test_rows_from_a_real_topk);
  tcase_add_test(tc, test_no_rows);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return nne_test_run_suite(outbox_suite());
}
