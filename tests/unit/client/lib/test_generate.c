/* test_generate.c — client/lib/generate.c: what Inference/Generate refuses
 * before the call, the request it encodes (decoded back here with nanopb),
 * and the stream it decodes, driven through the very handler the call
 * uses (nne__gen_msg, then nne__gen_end). Replies are written here by
 * hand, field by field (lib_test.h), so that the decoder meets
 * what any daemon may send: steps with texts and alternatives, tensor
 * chunks, the result; and every way a stream can break the protocol. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>

#include "internal.h"
#include "lib_test.h"

/* ---- writing messages ---------------------------------------------------- */

/* A GeneratedToken; top: n_top alternatives (ids 100, 101, ..., texts "a0",
 * "a1", ...). text NULL: no text field. */
static void put_token(buf_t *step, uint32_t row, int64_t id, const char *text,
                      size_t text_len, float logprob, size_t n_top) {
  buf_t t = {.n = 0};
  size_t k;
  put_uint(&t, 1, row);
  put_uint(&t, 2, (uint64_t)id);
  if (text != NULL)
    put_len(&t, 3, text, text_len);
  put_float(&t, 4, logprob);
  for (k = 0; k < n_top; k++) {
    buf_t sc = {.n = 0};
    char txt[8];
    snprintf(txt, sizeof txt, "a%zu", k);
    put_uint(&sc, 1, 100 + k);
    put_float(&sc, 2, 5.0f - (float)k);
    put_float(&sc, 3, 0.5f);
    put_str(&sc, 4, txt);
    put_msg(&t, 5, &sc);
  }
  put_msg(step, 2, &t);
}

/* A GenerateResponse holding `inner` as member `field` (1 step, 2 chunk,
 * 3 result). */
static buf_t response(uint32_t field, const buf_t *inner) {
  buf_t r = {.n = 0};
  put_msg(&r, field, inner);
  return r;
}

/* A whole float32 tensor [2] in one chunk. */
static buf_t chunk(const char *name, float a, float b) {
  buf_t c = {.n = 0};
  float v[2] = {a, b};
  put_str(&c, 1, name);
  put_uint(&c, 2, NNE_CLIENT_DTYPE_FLOAT32);
  put_uint(&c, 3, 2); /* shape [2] */
  put_uint(&c, 4, sizeof v);
  put_uint(&c, 5, 0);
  put_len(&c, 6, v, sizeof v);
  put_uint(&c, 7, 1);
  return response(2, &c);
}

/* A GeneratedRow. */
static void put_row(buf_t *res, const int64_t *ids, size_t n, const char *text,
                    int finish, const char *stop, uint32_t prompt_tokens) {
  buf_t r = {.n = 0}, packed = {.n = 0};
  size_t k;
  for (k = 0; k < n; k++)
    put_varint(&packed, (uint64_t)ids[k]);
  if (n > 0)
    put_msg(&r, 1, &packed);
  put_str(&r, 2, text);
  put_uint(&r, 3, (uint64_t)finish);
  if (stop != NULL)
    put_str(&r, 4, stop);
  put_uint(&r, 5, prompt_tokens);
  put_msg(res, 1, &r);
}

/* ---- driving the decoder ------------------------------------------------- */

/* What the callback saw. */
typedef struct seen {
  uint32_t steps[16];
  size_t n_steps;
  size_t n_tokens;
  char text[2][256]; /* per row, the pieces concatenated */
  size_t text_len[2];
  int64_t first_top_id; /* the first alternative of step 0, token 0 */
  char first_top_text[8];
  int stop_at; /* return non-zero at this step (-1: never) */
} seen_t;

static int on_step(void *ctx, uint32_t step, const nne_client_gen_token_t *t,
                   size_t n) {
  seen_t *s = ctx;
  size_t i;
  s->steps[s->n_steps++] = step;
  s->n_tokens += n;
  for (i = 0; i < n; i++) {
    ck_assert_uint_lt(t[i].row, 2);
    ck_assert_ptr_nonnull(t[i].text);
    memcpy(s->text[t[i].row] + s->text_len[t[i].row], t[i].text, t[i].text_len);
    s->text_len[t[i].row] += t[i].text_len;
  }
  if (step == 0 && n > 0 && t[0].n_top > 0) {
    s->first_top_id = t[0].top[0].token_id;
    snprintf(s->first_top_text, sizeof s->first_top_text, "%s",
             t[0].top[0].text);
  }
  return (int)step == s->stop_at;
}

/* Feeds one message to the handler the call uses. */
static int feed(nne__gen_t *g, const buf_t *m, nne_client_err_t *err) {
  grpc_slice sl = grpc_slice_from_copied_buffer((const char *)m->b, m->n);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
  int rc = nne__gen_msg(g, bb, err);
  grpc_slice_unref(sl);
  grpc_byte_buffer_destroy(bb);
  return rc;
}

static const char *const save_sites[] = {"layers.0.resid_post"};
static nne_client_token_row_t two_prompts[2] = {{.text = "The Eiffel Tower"},
                                                {.text = "Hello"}};

static nne_client_generate_req_t base_req(void) {
  return (nne_client_generate_req_t){.model = "gpt2-script",
                                     .prompts = two_prompts,
                                     .n_prompts = 2,
                                     .max_new_tokens = 3,
                                     .top_alternatives = 2,
                                     .save = save_sites,
                                     .n_save = 1};
}

/* Steps 0 and 1 (row 1 finishes at step 0), as a daemon streams them. */
static buf_t step0(void) {
  buf_t s = {.n = 0};
  put_uint(&s, 1, 0);
  put_token(&s, 0, 6342, " Paris", 6, -0.25f, 2);
  put_token(&s, 1, 50256, NULL, 0, -1.5f, 2); /* no text field: "" */
  return response(1, &s);
}

static buf_t step1(void) {
  buf_t s = {.n = 0};
  put_uint(&s, 1, 1);
  put_token(&s, 0, 13, ".", 1, -0.75f, 2);
  return response(1, &s);
}

/* What a result's saved list may say: the two saves of steps 0 and 1. */
static const char *const saved2[] = {"layers.0.resid_post@0",
                                     "layers.0.resid_post@1"};

/* The result of steps 0 and 1 (as `steps` says), listing saved[0..n). */
static buf_t result(uint32_t steps, const char *const *saved, size_t n) {
  buf_t r = {.n = 0}, timing = {.n = 0};
  size_t k;
  int64_t ids0[] = {6342, 13}, ids1[] = {50256};
  put_row(&r, ids0, 2, " Paris.", NNE_CLIENT_FINISH_STOP_STRING, "\n", 5);
  put_row(&r, ids1, 1, "", NNE_CLIENT_FINISH_STOP_TOKEN, NULL, 1);
  put_double(&timing, 1, 0.5);
  put_double(&timing, 2, 12.0);
  put_double(&timing, 3, 4.0);
  put_double(&timing, 4, 4.0);
  put_double(&timing, 5, 17.0);
  put_msg(&r, 2, &timing);
  put_uint(&r, 3, steps);
  put_uint(&r, 4, 1234);
  put_uint(&r, 5, 1);
  put_uint(&r, 6, 4096);
  for (k = 0; k < n; k++)
    put_str(&r, 7, saved[k]);
  return response(3, &r);
}

/* In each test's own (forked) process: gRPC's threads started in the
 * parent would not exist in the child, and LeakSanitizer there would report
 * their state as leaked. */
static void grpc_setup(void) {
  grpc_init();
}

static void grpc_teardown(void) {
  grpc_shutdown_blocking();
}

/* ---- a whole stream ------------------------------------------------------ */

START_TEST(test_stream) {
  nne_client_generate_req_t req = base_req();
  nne_client_generate_result_t res;
  nne_client_err_t err;
  seen_t seen = {.stop_at = -1};
  nne__gen_t *g = nne__gen_new(&req, on_step, &seen, &res, 1 << 20);
  buf_t m;
  const nne_client_tensor_t *t;

  ck_assert_ptr_nonnull(g);
  m = step0();
  ck_assert_int_eq(feed(g, &m, &err), NNE__STREAM_MORE);
  m = step1();
  ck_assert_int_eq(feed(g, &m, &err), NNE__STREAM_MORE);
  m = chunk("layers.0.resid_post@0", 1.0f, 2.0f);
  ck_assert_int_eq(feed(g, &m, &err), NNE__STREAM_MORE);
  m = chunk("layers.0.resid_post@1", 3.0f, 4.0f);
  ck_assert_int_eq(feed(g, &m, &err), NNE__STREAM_MORE);
  m = result(2, saved2, 2);
  ck_assert_int_eq(feed(g, &m, &err), NNE__STREAM_MORE);
  ck_assert_int_eq(nne__gen_end(g, 0, &err), 0);
  nne__gen_free(g);

  /* The callback: two steps in order, each row's pieces. */
  ck_assert_uint_eq(seen.n_steps, 2);
  ck_assert(seen.steps[0] == 0 && seen.steps[1] == 1);
  ck_assert_uint_eq(seen.n_tokens, 3);
  ck_assert_str_eq(seen.text[0], " Paris.");
  ck_assert_uint_eq(seen.text_len[1], 0);
  ck_assert(seen.first_top_id == 100);
  ck_assert_str_eq(seen.first_top_text, "a0");

  /* The result. */
  ck_assert_uint_eq(res.n_rows, 2);
  ck_assert_uint_eq(res.rows[0].n_ids, 2);
  ck_assert(res.rows[0].ids[0] == 6342 && res.rows[0].ids[1] == 13);
  ck_assert_str_eq(res.rows[0].text, " Paris.");
  ck_assert_uint_eq(res.rows[0].text_len, 7);
  /* The pieces add up to the text (no stop string cut it here). */
  ck_assert_str_eq(res.rows[0].text, seen.text[0]);
  ck_assert_int_eq(res.rows[0].finish_reason, NNE_CLIENT_FINISH_STOP_STRING);
  ck_assert_str_eq(res.rows[0].stop, "\n");
  ck_assert_uint_eq(res.rows[0].prompt_tokens, 5);
  ck_assert_str_eq(res.rows[1].text, ""); /* never NULL */
  ck_assert_int_eq(res.rows[1].finish_reason, NNE_CLIENT_FINISH_STOP_TOKEN);
  ck_assert_str_eq(nne_client_finish_reason_name(res.rows[1].finish_reason),
                   "stop_token");
  ck_assert_uint_eq(res.steps, 2);
  ck_assert(res.seed == 1234 && res.kv_cache && res.kv_cache_bytes == 4096);
  ck_assert(res.timing.prefill_ms == 12.0 && res.timing.total_ms == 17.0);
  ck_assert(res.timing.per_token_ms == 4.0);
  ck_assert_uint_eq(res.n_saved, 2);
  t = nne_client_generate_result_saved_at(&res, "layers.0.resid_post", 1);
  ck_assert_ptr_nonnull(t);
  ck_assert_str_eq(t->name, "layers.0.resid_post@1");
  ck_assert(((const float *)t->data)[1] == 4.0f);
  ck_assert_ptr_eq(
      nne_client_generate_result_saved(&res, "layers.0.resid_post@0"),
      &res.saved[0]);
  ck_assert_ptr_null(nne_client_generate_result_saved_at(&res, "x", 0));
  nne_client_generate_result_free(&res);
  ck_assert_uint_eq(res.n_rows, 0);
}
END_TEST

START_TEST(test_callback_stops) {
  nne_client_generate_req_t req = base_req();
  nne_client_generate_result_t res;
  nne_client_err_t err;
  seen_t seen = {.stop_at = 0};
  nne__gen_t *g = nne__gen_new(&req, on_step, &seen, &res, 1 << 20);
  buf_t m = step0();
  /* ENOUGH makes the stream cancel the call; the call says CANCELLED. */
  ck_assert_int_eq(feed(g, &m, &err), NNE__STREAM_ENOUGH);
  ck_assert_int_eq(nne__gen_end(g, 0, &err), -NNE_CLIENT_CANCELLED);
  ck_assert_msg(strstr(err.message, "stopped by the token callback after "
                                    "step 0") != NULL,
                "%s", err.message);
  nne__gen_free(g);
  nne_client_generate_result_free(&res);
}
END_TEST

/* Steps 0 and 1, then four tensors named[i] holding vals[i] (twice), then
 * the result listing them: a whole stream, decoded into *res. */
static void stream_4_saves(const nne_client_generate_req_t *req,
                           const char *const named[4], const float vals[4],
                           nne_client_generate_result_t *res) {
  nne_client_err_t err;
  seen_t seen = {.stop_at = -1};
  nne__gen_t *g = nne__gen_new(req, on_step, &seen, res, 1 << 20);
  buf_t m;
  size_t i;
  ck_assert_ptr_nonnull(g);
  m = step0();
  ck_assert_int_eq(feed(g, &m, &err), NNE__STREAM_MORE);
  m = step1();
  ck_assert_int_eq(feed(g, &m, &err), NNE__STREAM_MORE);
  for (i = 0; i < 4; i++) {
    m = chunk(named[i], vals[i], vals[i]);
    ck_assert_msg(feed(g, &m, &err) == NNE__STREAM_MORE, "%s", err.message);
  }
  m = result(2, named, 4);
  ck_assert_int_eq(feed(g, &m, &err), NNE__STREAM_MORE);
  ck_assert_int_eq(nne__gen_end(g, 0, &err), 0);
  nne__gen_free(g);
  ck_assert_uint_eq(res->n_saved, 4);
}

/* An edit set's saves come among the request's, named by the set; the
 * request's still come in their order. */
START_TEST(test_edit_set_saves) {
  nne_client_generate_req_t req = base_req();
  nne_client_generate_result_t res;
  const char *const listed[] = {"layers.0.resid_post@0", "steer@0",
                                "layers.0.resid_post@1", "steer@1"};
  const float vals[] = {0, 5, 1, 6};

  req.edit_set = "es-1";
  stream_4_saves(&req, listed, vals, &res);
  ck_assert(
      ((const float *)nne_client_generate_result_saved_at(&res, "steer", 1)
           ->data)[0] == 6.0f);
  nne_client_generate_result_free(&res);
}
END_TEST

/* An intervention with a save node "resid" (node 2) at steps [0, 2) and a
 * write (node 4) of a zeroed head from step 1 on: the graph of the tests
 * below. Free with nne_client_igraph_free. */
static nne_client_igraph_t *ivn_graph(void) {
  nne_client_igraph_t *ig = nne_client_igraph_new();
  nne_client_dim_range_t head1 = {.dim = -1, .start = 16, .stop = 32};
  int r = nne_client_igraph_read(ig, "layers.1.resid_post",
                                 NNE_CLIENT_INVOKE_ALL);
  int s = nne_client_igraph_save(ig, r, "resid");
  int z = nne_client_igraph_const_scalar(ig, 0.0);
  int w = nne_client_igraph_write(ig, "layers.0.self_attn.z", z,
                                  NNE_CLIENT_INVOKE_ALL, &head1, 1);
  ck_assert_int_eq(nne_client_igraph_steps(ig, r, 0, 2), 0);
  ck_assert_int_eq(nne_client_igraph_steps(ig, s, 0, 2), 0);
  ck_assert_int_eq(nne_client_igraph_steps(ig, w, 1, NNE_CLIENT_STEPS_END), 0);
  ck_assert_int_eq(nne_client_igraph_error(ig, NULL), 0);
  return ig;
}

/* The intervention's saves come first in each step (as the daemon sends
 * them), then the request's, which keep their order; saved_at finds both
 * kinds by name and step. */
START_TEST(test_intervention_saves) {
  nne_client_generate_req_t req = base_req();
  nne_client_generate_result_t res;
  const char *const listed[] = {"resid@0", "layers.0.resid_post@0", "resid@1",
                                "layers.0.resid_post@1"};
  const float vals[] = {7, 0, 8, 1};
  size_t i;

  req.intervention = ivn_graph();
  stream_4_saves(&req, listed, vals, &res);
  for (i = 0; i < 4; i++)
    ck_assert_str_eq(res.saved[i].name, listed[i]);
  ck_assert(
      ((const float *)nne_client_generate_result_saved_at(&res, "resid", 1)
           ->data)[0] == 8.0f);
  ck_assert(((const float *)nne_client_generate_result_saved_at(
                 &res, "layers.0.resid_post", 1)
                 ->data)[0] == 1.0f);
  ck_assert_ptr_null(nne_client_generate_result_saved_at(&res, "resid", 2));
  nne_client_generate_result_free(&res);
  nne_client_igraph_free((nne_client_igraph_t *)req.intervention);
}
END_TEST

/* ---- broken streams ------------------------------------------------------ */

/* Feeds msgs[0..n) until one fails; returns that one's rc and message
 * (or nne__gen_end's). */
static int run_stream(const nne_client_generate_req_t *req, const buf_t *msgs,
                      size_t n, nne_client_err_t *err) {
  nne_client_generate_result_t res;
  seen_t seen = {.stop_at = -1};
  nne__gen_t *g = nne__gen_new(req, on_step, &seen, &res, 1 << 20);
  size_t i;
  int rc = 0;
  for (i = 0; i < n && rc >= 0; i++)
    rc = feed(g, &msgs[i], err);
  if (rc >= 0)
    rc = nne__gen_end(g, 0, err);
  nne__gen_free(g);
  nne_client_generate_result_free(&res);
  return rc;
}

#define ASSERT_BROKEN(req, msgs, text)                                         \
  do {                                                                         \
    nne_client_err_t e_;                                                       \
    ck_assert_int_eq(                                                          \
        run_stream(&(req), (msgs), sizeof(msgs) / sizeof(buf_t), &e_),         \
        -NNE_CLIENT_INTERNAL);                                                 \
    ck_assert_msg(strstr(e_.message, (text)) != NULL, "%s", e_.message);       \
  } while (0)

START_TEST(test_broken) {
  nne_client_generate_req_t req = base_req();
  buf_t s = {.n = 0};

  {
    buf_t msgs[] = {step1()};
    ASSERT_BROKEN(req, msgs, "step 1 came where step 0 was due");
  }
  {
    put_uint(&s, 1, 0);
    put_token(&s, 0, 1, "a", 1, 0.0f, 0);
    put_token(&s, 0, 2, "b", 1, 0.0f, 0);
    buf_t msgs[] = {response(1, &s)};
    ASSERT_BROKEN(req, msgs, "step 0: two tokens of row 0");
  }
  {
    s.n = 0;
    put_uint(&s, 1, 0);
    put_token(&s, 5, 1, "a", 1, 0.0f, 0);
    buf_t msgs[] = {response(1, &s)};
    ASSERT_BROKEN(req, msgs, "a token of row 5, the request has 2 prompts");
  }
  {
    s.n = 0;
    put_uint(&s, 1, 0);
    put_token(&s, 0, 1, "a", 1, 0.0f, 3); /* top_alternatives is 2 */
    buf_t msgs[] = {response(1, &s)};
    ASSERT_BROKEN(req, msgs, "step: tokens[0].top: more scores than");
  }
  {
    buf_t msgs[] = {step0(), chunk("layers.0.resid_post@1", 0, 0)};
    ASSERT_BROKEN(req, msgs,
                  "tensor 'layers.0.resid_post@1' came where "
                  "'layers.0.resid_post@0' was due");
  }
  {
    buf_t msgs[] = {step0(), chunk("layers.0.resid_post@0", 0, 0), step1()};
    ASSERT_BROKEN(req, msgs, "a step after the saved tensors began");
  }
  {
    buf_t msgs[] = {step0(), step1(), chunk("layers.0.resid_post@0", 0, 0),
                    chunk("layers.0.resid_post@1", 0, 0), result(3, saved2, 2)};
    ASSERT_BROKEN(req, msgs, "the result says 3 steps, 2 were streamed");
  }
  {
    buf_t msgs[] = {step0(), step1(), chunk("layers.0.resid_post@0", 0, 0),
                    result(2, NULL, 0)};
    ASSERT_BROKEN(req, msgs,
                  "tensor 'layers.0.resid_post@1' was asked for and not sent");
  }
  {
    buf_t msgs[] = {step0(), step1(), chunk("layers.0.resid_post@0", 0, 0),
                    chunk("layers.0.resid_post@1", 0, 0), result(2, NULL, 0)};
    ASSERT_BROKEN(req, msgs, "the result lists 0 saved tensors, 2 were sent");
  }
  {
    /* Row 0 streamed one token; the result gives it two ids. */
    buf_t msgs[] = {step0(), chunk("layers.0.resid_post@0", 0, 0),
                    result(1, NULL, 0)};
    ASSERT_BROKEN(req, msgs,
                  "result.rows[0] has 2 ids, 1 tokens of the row were "
                  "streamed");
  }
  {
    buf_t msgs[] = {step0(), step1()};
    ASSERT_BROKEN(req, msgs,
                  "the stream ended after 2 steps without a "
                  "result");
  }
  {
    buf_t msgs[] = {step0(),
                    step1(),
                    chunk("layers.0.resid_post@0", 0, 0),
                    chunk("layers.0.resid_post@1", 0, 0),
                    result(2, saved2, 2),
                    step1()};
    ASSERT_BROKEN(req, msgs, "a message after the result");
  }
  {
    /* Without an edit set, a tensor nobody asked for. */
    buf_t msgs[] = {step0(), chunk("layers.0.resid_post@0", 0, 0),
                    chunk("steer@0", 0, 0)};
    ASSERT_BROKEN(req, msgs,
                  "tensor 'steer@0' after the 1 tensors asked for (1 saves, "
                  "1 steps)");
  }
  {
    /* An intervention's save at a step that was not streamed, with a
     * leading zero, or under a name the graph does not save. */
    nne_client_generate_req_t ri = req;
    nne_client_igraph_t *ig = ivn_graph();
    ri.intervention = ig;
    {
      buf_t msgs[] = {step0(), step1(), chunk("resid@2", 0, 0)};
      ASSERT_BROKEN(ri, msgs,
                    "tensor 'resid@2' came where 'layers.0.resid_post@0' was "
                    "due");
    }
    {
      buf_t msgs[] = {step0(), step1(), chunk("resid@01", 0, 0)};
      ASSERT_BROKEN(ri, msgs, "tensor 'resid@01' came where");
    }
    {
      buf_t msgs[] = {step0(), chunk("resid@0", 0, 0), chunk("resid@0", 0, 0)};
      ASSERT_BROKEN(ri, msgs,
                    "tensor 'resid@0': more than 1 tensors of the "
                    "intervention's 1 saves in 1 steps");
    }
    {
      buf_t msgs[] = {step0(), chunk("other@0", 0, 0)};
      ASSERT_BROKEN(ri, msgs, "tensor 'other@0' came where");
    }
    nne_client_igraph_free(ig);
  }
  {
    /* max_new_tokens 1: step 1 cannot exist. */
    nne_client_generate_req_t r1 = req;
    buf_t msgs[] = {step0(), step1()};
    r1.max_new_tokens = 1;
    ASSERT_BROKEN(r1, msgs, "step 1 of max_new_tokens 1");
  }
}
END_TEST

/* ---- the request --------------------------------------------------------- */

/* TokenRow list element: ids or text, into rows[]. */
typedef struct rows_back {
  nne_pb_i64_dec_t ids[4];
  nne_pb_str_dec_t text[4];
  size_t n;
} rows_back_t;

static bool row_back_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  rows_back_t *rb = *arg;
  nnedit_v1_TokenRow m = nnedit_v1_TokenRow_init_zero;
  (void)f;
  ck_assert_uint_lt(rb->n, 4);
  rb->ids[rb->n].max = 64;
  NNE_PB_DEC(m.ids, nne_pb_i64_dec, &rb->ids[rb->n]);
  NNE_PB_DEC(m.text, nne_pb_str_dec, &rb->text[rb->n]);
  rb->n++;
  return pb_decode(s, nnedit_v1_TokenRow_fields, &m);
}

START_TEST(test_request) {
  int64_t ids[] = {464, 3139};
  int64_t stop_ids[] = {50256, 13};
  const char *stops[] = {"\n\n", "The end"};
  const char *saves[] = {"layers.0.resid_post", "blocks.1.hook_attn_out"};
  nne_client_token_row_t prompts[] = {{.text = "Hello"},
                                      {.ids = ids, .n_ids = 2}};
  nne_client_generate_req_t req = {.model = "gpt2-script",
                                   .prompts = prompts,
                                   .n_prompts = 2,
                                   .max_new_tokens = 8,
                                   .sampling = {.temperature = 0.7f,
                                                .top_k = 40,
                                                .top_p = 0.9f,
                                                .has_seed = true,
                                                .seed = 42,
                                                .repetition_penalty = 1.2f},
                                   .stop_token_ids = stop_ids,
                                   .n_stop_token_ids = 2,
                                   .stop_strings = stops,
                                   .n_stop_strings = 2,
                                   .ignore_eos = true,
                                   .top_alternatives = 5,
                                   .edit_set = "es-1",
                                   .save = saves,
                                   .n_save = 2,
                                   .cache_off = true};
  nnedit_v1_GenerateRequest m, back = nnedit_v1_GenerateRequest_init_zero;
  nne__gen_enc_t enc;
  uint8_t bytes[4096];
  pb_ostream_t os = pb_ostream_from_buffer(bytes, sizeof bytes);
  pb_istream_t is;
  rows_back_t rb;
  nne_pb_i64_dec_t stop_back = {.max = 64};
  nne_pb_str_list_dec_t stops_back = {.max = 16, .max_len = 256};
  nne_pb_str_list_dec_t saves_back = {.max = 16, .max_len = 256};
  nne_client_err_t err;
  size_t k;

  ck_assert_int_eq(nne__gen_check(&req, &err), 0);
  nne__gen_req(&req, &m, &enc);
  ck_assert(pb_encode(&os, nnedit_v1_GenerateRequest_fields, &m));

  memset(&rb, 0, sizeof rb);
  NNE_PB_DEC(back.prompts, row_back_dec, &rb);
  NNE_PB_DEC(back.stop_token_ids, nne_pb_i64_dec, &stop_back);
  NNE_PB_DEC(back.stop_strings, nne_pb_str_list_dec, &stops_back);
  NNE_PB_DEC(back.save, nne_pb_str_list_dec, &saves_back);
  is = pb_istream_from_buffer(bytes, os.bytes_written);
  ck_assert(pb_decode(&is, nnedit_v1_GenerateRequest_fields, &back));

  ck_assert_str_eq(back.model, "gpt2-script");
  ck_assert_uint_eq(rb.n, 2);
  ck_assert_str_eq(rb.text[0].s, "Hello");
  ck_assert_uint_eq(rb.ids[0].n, 0);
  ck_assert_ptr_null(rb.text[1].s);
  ck_assert_uint_eq(rb.ids[1].n, 2);
  ck_assert(rb.ids[1].v[0] == 464 && rb.ids[1].v[1] == 3139);
  ck_assert_uint_eq(back.max_new_tokens, 8);
  ck_assert(back.has_sampling);
  ck_assert(back.sampling.temperature == 0.7f && back.sampling.top_k == 40);
  ck_assert(back.sampling.top_p == 0.9f);
  ck_assert(back.sampling.has_seed && back.sampling.seed == 42);
  ck_assert(back.sampling.repetition_penalty == 1.2f);
  ck_assert_uint_eq(stop_back.n, 2);
  ck_assert(stop_back.v[0] == 50256 && stop_back.v[1] == 13);
  ck_assert_uint_eq(stops_back.n, 2);
  ck_assert_str_eq(stops_back.v[0], "\n\n");
  ck_assert_str_eq(stops_back.v[1], "The end");
  ck_assert(back.ignore_eos);
  ck_assert_uint_eq(back.top_alternatives, 5);
  ck_assert_str_eq(back.edit_set, "es-1");
  ck_assert_uint_eq(saves_back.n, 2);
  ck_assert_str_eq(saves_back.v[1], "blocks.1.hook_attn_out");
  ck_assert_int_eq(back.cache, nnedit_v1_CacheMode_CACHE_MODE_OFF);
  for (k = 0; k < rb.n; k++) {
    free(rb.ids[k].v);
    free(rb.text[k].s);
  }
  free(stop_back.v);
  nne_pb_str_list_free(&stops_back);
  nne_pb_str_list_free(&saves_back);

  /* Greedy: no Sampling message at all, the default cache mode. */
  memset(&req.sampling, 0, sizeof req.sampling);
  req.cache_off = false;
  nne__gen_req(&req, &m, &enc);
  ck_assert(!m.has_sampling);
  ck_assert_int_eq(m.cache, nnedit_v1_CacheMode_CACHE_MODE_UNSPECIFIED);
}
END_TEST

/* Generate's intervention, decoded back: its nodes (id and kind, a
 * write's site and range) and the steps list. */
typedef struct ivn_back {
  int n_traces;
  uint32_t ids[8], ops[8];
  char write_site[NNE_CLIENT_SITE_MAX];
  nnedit_v1_DimRange range;
  size_t n;
  nnedit_v1_NodeSteps steps[8];
  size_t n_steps;
} ivn_back_t;

static bool node_back_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  ivn_back_t *b = *arg;
  nnedit_v1_Node m = nnedit_v1_Node_init_zero;
  (void)f;
  if (!pb_decode(s, nnedit_v1_Node_fields, &m))
    return false;
  ck_assert_uint_lt(b->n, 8);
  b->ids[b->n] = m.id;
  b->ops[b->n] = m.which_op;
  if (m.which_op == nnedit_v1_Node_write_tag) {
    memcpy(b->write_site, m.op.write.site, sizeof b->write_site);
    ck_assert_uint_eq(m.op.write.ranges_count, 1);
    b->range = m.op.write.ranges[0];
    ck_assert(!m.op.write.has_invoke);
  }
  b->n++;
  return true;
}

static bool ivn_back_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  ivn_back_t *b = *arg;
  nnedit_v1_Trace t = nnedit_v1_Trace_init_zero;
  (void)f;
  NNE_PB_DEC(t.nodes, node_back_dec, b);
  b->n_traces++;
  if (!pb_decode(s, nnedit_v1_Trace_fields, &t))
    return false;
  ck_assert_str_eq(t.name, "");
  return true;
}

static bool steps_back_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  ivn_back_t *b = *arg;
  (void)f;
  ck_assert_uint_lt(b->n_steps, 8);
  b->steps[b->n_steps] = (nnedit_v1_NodeSteps)nnedit_v1_NodeSteps_init_zero;
  return pb_decode(s, nnedit_v1_NodeSteps_fields, &b->steps[b->n_steps++]);
}

/* Encodes req and decodes its intervention and steps back into *b. */
static void request_back(const nne_client_generate_req_t *req, ivn_back_t *b) {
  nnedit_v1_GenerateRequest m, back = nnedit_v1_GenerateRequest_init_zero;
  nne__gen_enc_t enc;
  uint8_t bytes[4096];
  pb_ostream_t os = pb_ostream_from_buffer(bytes, sizeof bytes);
  pb_istream_t is;
  nne_client_err_t err;
  memset(b, 0, sizeof *b);
  ck_assert_int_eq(nne__gen_check(req, &err), 0);
  nne__gen_req(req, &m, &enc);
  ck_assert(pb_encode(&os, nnedit_v1_GenerateRequest_fields, &m));
  NNE_PB_DEC(back.intervention, ivn_back_dec, b);
  NNE_PB_DEC(back.steps, steps_back_dec, b);
  is = pb_istream_from_buffer(bytes, os.bytes_written);
  ck_assert(pb_decode(&is, nnedit_v1_GenerateRequest_fields, &back));
}

START_TEST(test_request_intervention) {
  nne_client_generate_req_t req = base_req();
  nne_client_igraph_t *ig = ivn_graph(), *empty = nne_client_igraph_new();
  ivn_back_t b;

  /* No intervention: neither field. */
  request_back(&req, &b);
  ck_assert_int_eq(b.n_traces, 0);
  ck_assert_uint_eq(b.n_steps, 0);

  req.intervention = ig;
  request_back(&req, &b);
  ck_assert_int_eq(b.n_traces, 1);
  ck_assert_uint_eq(b.n, 4);
  ck_assert(b.ids[0] == 1 && b.ids[1] == 2 && b.ids[2] == 3 && b.ids[3] == 4);
  ck_assert_uint_eq(b.ops[0], nnedit_v1_Node_read_tag);
  ck_assert_uint_eq(b.ops[1], nnedit_v1_Node_save_tag);
  ck_assert_uint_eq(b.ops[2], nnedit_v1_Node_constant_tag);
  ck_assert_uint_eq(b.ops[3], nnedit_v1_Node_write_tag);
  ck_assert_str_eq(b.write_site, "layers.0.self_attn.z");
  ck_assert(b.range.dim == -1 && b.range.start == 16 && b.range.stop == 32);
  /* The steps in the order given; "to the end" is an unset stop. */
  ck_assert_uint_eq(b.n_steps, 3);
  ck_assert(b.steps[0].node == 1 && b.steps[0].start == 0);
  ck_assert(b.steps[0].has_stop && b.steps[0].stop == 2);
  ck_assert(b.steps[1].node == 2 && b.steps[1].has_stop);
  ck_assert(b.steps[2].node == 4 && b.steps[2].start == 1);
  ck_assert(!b.steps[2].has_stop);

  /* An empty graph: an empty Trace, no steps. */
  req.intervention = empty;
  request_back(&req, &b);
  ck_assert_int_eq(b.n_traces, 1);
  ck_assert_uint_eq(b.n, 0);
  ck_assert_uint_eq(b.n_steps, 0);
  nne_client_igraph_free(ig);
  nne_client_igraph_free(empty);
}
END_TEST

/* nne_client_igraph_steps refuses what is not a range of an added node,
 * recorded as the graph's error; a trace refuses a graph with steps. */
START_TEST(test_igraph_steps) {
  nne_client_igraph_t *ig = nne_client_igraph_new();
  nne_client_err_t err;
  int r = nne_client_igraph_read(ig, "layers.0.resid_post",
                                 NNE_CLIENT_INVOKE_ALL);
  struct {
    int node;
    uint32_t start;
    int64_t stop;
    const char *text;
  } bad[] = {
      {7, 0, 1, "node 7 (steps): no node 7 in the graph"},
      {0, 0, 1, "node 0 (steps): no node 0 in the graph"},
      {-3, 0, 1, "node -3 (steps): no node -3 in the graph"},
      {1, 3, 3, "node 1 (steps): stop 3 is not after start 3"},
      {1, 0, -2, "node 1 (steps): stop -2 is not after start 0"},
      {1, 0, (int64_t)UINT32_MAX + 1, "stop 4294967296 is not after"},
  };
  size_t k;

  for (k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    nne_client_igraph_t *g2 = nne_client_igraph_new();
    nne_client_igraph_read(g2, "x", NNE_CLIENT_INVOKE_ALL);
    ck_assert_int_eq(
        nne_client_igraph_steps(g2, bad[k].node, bad[k].start, bad[k].stop),
        -NNE_CLIENT_INVALID_ARGUMENT);
    ck_assert_int_eq(nne_client_igraph_error(g2, &err),
                     -NNE_CLIENT_INVALID_ARGUMENT);
    ck_assert_msg(strstr(err.message, bad[k].text) != NULL, "%s",
                  err.message);
    /* The error sticks: later calls add nothing. */
    ck_assert_int_eq(nne_client_igraph_read(g2, "y", NNE_CLIENT_INVOKE_ALL),
                     -NNE_CLIENT_INVALID_ARGUMENT);
    ck_assert_uint_eq(nne_client_igraph_size(g2), 1);
    nne_client_igraph_free(g2);
  }
  ck_assert_int_eq(nne_client_igraph_steps(NULL, 1, 0, 1),
                   -NNE_CLIENT_INVALID_ARGUMENT);
  {
    uint32_t start = 9;
    int64_t stop = 9;
    ck_assert_int_eq(nne_client_igraph_get_steps(ig, r, &start, &stop), 0);
    ck_assert(start == 0 && stop == NNE_CLIENT_STEPS_END);
    ck_assert_int_eq(nne_client_igraph_steps(ig, r, 2, 3), 0);
    ck_assert_int_eq(nne_client_igraph_get_steps(ig, r, &start, &stop), 1);
    ck_assert(start == 2 && stop == 3);
    ck_assert_int_eq(nne_client_igraph_get_steps(ig, 5, &start, &stop),
                     -NNE_CLIENT_NOT_FOUND);
  }
  ck_assert_int_eq(nne_client_igraph_steps(ig, r, 0, NNE_CLIENT_STEPS_END),
                   -NNE_CLIENT_INVALID_ARGUMENT);
  nne_client_igraph_error(ig, &err);
  ck_assert_msg(strstr(err.message, "node 1 (steps): the node has steps "
                                    "already") != NULL,
                "%s", err.message);
  nne_client_igraph_free(ig);

  /* Steps are Generate's: a trace's graph with some is refused before
   * anything goes out (no daemon behind this address). */
  {
    nne_client_opts_t opts;
    nne_client_t *cli;
    nne_client_igraph_t *g3 = nne_client_igraph_new();
    int64_t ids[] = {1, 2};
    nne_client_token_row_t row = {.ids = ids, .n_ids = 2};
    nne_client_invoke_t inv = {.rows = &row, .n_rows = 1};
    nne_client_trace_t tr = {.invokes = &inv, .n_invokes = 1, .graph = g3};
    nne_client_trace_req_t treq = {.model = "m", .traces = &tr,
                                   .n_traces = 1};
    nne_client_trace_results_t tres;
    int x = nne_client_igraph_read(g3, "layers.0.resid_post",
                                   NNE_CLIENT_INVOKE_ALL);
    nne_client_igraph_save(g3, x, "r");
    ck_assert_int_eq(nne_client_igraph_steps(g3, 2, 1, 2), 0);
    nne_client_opts_init(&opts);
    opts.address = "127.0.0.1:1";
    ck_assert_int_eq(nne_client_connect(&opts, &cli, &err), 0);
    ck_assert_int_eq(nne_client_trace(cli, &treq, &tres, &err),
                     -NNE_CLIENT_INVALID_ARGUMENT);
    ck_assert_msg(strstr(err.message, "trace: traces[0].graph: node 2 has "
                                      "steps, which only Generate") != NULL,
                  "%s", err.message);
    nne_client_close(cli);
    nne_client_igraph_free(g3);
  }
}
END_TEST

#define ASSERT_REFUSED(req, text)                                              \
  do {                                                                         \
    nne_client_err_t e_;                                                       \
    ck_assert_int_eq(nne__gen_check(&(req), &e_),                              \
                     -NNE_CLIENT_INVALID_ARGUMENT);                            \
    ck_assert_msg(strstr(e_.message, (text)) != NULL, "%s", e_.message);       \
  } while (0)

START_TEST(test_check) {
  int64_t ids[65] = {0};
  char long_stop[300], long_site[260];
  const char *stops[17] = {"a", "b", "c", "d", "e", "f", "g", "h", "i",
                           "j", "k", "l", "m", "n", "o", "p", "q"};
  const char *bad[1];
  const char *sites[1];
  nne_client_token_row_t both = {.ids = ids, .n_ids = 1, .text = "x"};
  nne_client_generate_req_t req, r;
  nne_client_err_t err;

  req = base_req();
  ck_assert_int_eq(nne__gen_check(&req, &err), 0);

  r = req;
  r.model = NULL;
  ASSERT_REFUSED(r, "generate: model");
  r = req;
  r.prompts = &both;
  r.n_prompts = 1;
  ASSERT_REFUSED(r, "generate: prompts: rows[0]: both text and 1 ids");
  r = req;
  r.stop_token_ids = ids;
  r.n_stop_token_ids = 65;
  ASSERT_REFUSED(r, "stop_token_ids: 65 ids, at most 64");
  r = req;
  r.stop_strings = stops;
  r.n_stop_strings = 17;
  ASSERT_REFUSED(r, "stop_strings: 17 strings, at most 16");
  r = req;
  bad[0] = "";
  r.stop_strings = bad;
  r.n_stop_strings = 1;
  ASSERT_REFUSED(r, "stop_strings[0] is empty (1 to 256 bytes)");
  memset(long_stop, 'x', 257);
  long_stop[257] = '\0';
  bad[0] = long_stop;
  ASSERT_REFUSED(r, "stop_strings[0] is too long");
  bad[0] = "\xff";
  ASSERT_REFUSED(r, "stop_strings[0] is not valid UTF-8");
  r = req;
  r.top_alternatives = 101;
  ASSERT_REFUSED(r, "top_alternatives 101, at most 100");
  r = req;
  r.edit_set = "0123456789012345678901234567890123456789012345678901234567890"
               "123";
  ASSERT_REFUSED(r, "generate: edit_set");
  /* "<site>@<step>" must fit a tensor name at the last step: a site of
   * 253 bytes fits with steps 0..9 ("@9": 255 bytes), not with 0..99. */
  memset(long_site, 's', 253);
  long_site[253] = '\0';
  sites[0] = long_site;
  r = req;
  r.save = sites;
  r.max_new_tokens = 10;
  ck_assert_int_eq(nne__gen_check(&r, &err), 0);
  r.max_new_tokens = 100;
  ASSERT_REFUSED(r, "its tensors are named '<site>@<step>'");
  r = req;
  r.save = NULL;
  ASSERT_REFUSED(r, "save is NULL with n_save 1");
  /* max_new_tokens 0 is the daemon's to refuse (naming the field). */
  r = req;
  r.max_new_tokens = 0;
  ck_assert_int_eq(nne__gen_check(&r, &err), 0);

  /* The intervention: its build error, and its saves' tensor names. */
  {
    nne_client_igraph_t *ig = nne_client_igraph_new();
    int x = nne_client_igraph_read(ig, "layers.0.resid_post",
                                   NNE_CLIENT_INVOKE_ALL);
    nne_client_igraph_save(ig, x, long_site);
    r = req;
    r.intervention = ig;
    r.max_new_tokens = 10;
    ck_assert_int_eq(nne__gen_check(&r, &err), 0);
    r.max_new_tokens = 100;
    ASSERT_REFUSED(r, "generate: intervention: node 2 (save): name "
                      "'ssss");
    ASSERT_REFUSED(r, "its tensors are named '<name>@<step>'");
    nne_client_igraph_steps(ig, 9, 0, 1);
    ASSERT_REFUSED(r, "generate: intervention: node 9 (steps): no node 9");
    nne_client_igraph_free(ig);
  }
}
END_TEST

static Suite *generate_suite(void) {
  Suite *s = suite_create("client_generate");
  TCase *tc = tcase_create("generate");
  tcase_add_checked_fixture(tc, grpc_setup, grpc_teardown);
  tcase_add_test(tc, test_stream);
  tcase_add_test(tc, test_callback_stops);
  tcase_add_test(tc, test_edit_set_saves);
  tcase_add_test(tc, test_intervention_saves);
  tcase_add_test(tc, test_request_intervention);
  tcase_add_test(tc, test_igraph_steps);
  tcase_add_test(tc, test_broken);
  tcase_add_test(tc, test_request);
  tcase_add_test(tc, test_check);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(generate_suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
