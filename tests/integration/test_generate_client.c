/* test_generate_client.c — libnnedit's nne_client_generate against a real
 * nneditd (issue 12), on the fixture repository's "gpt2-script".
 *
 * What is checked:
 *   - greedy generation of 8 tokens on a prompt: the callback sees steps
 *     0..7 in order, one token of row 0 each, ids in the vocabulary; the
 *     result's row finishes LENGTH (EOS ignored) with those 8 ids, and its
 *     text is the concatenation of the streamed pieces; the first token is
 *     Forward's top-1 on the same prompt; a second run gives the same ids;
 *   - without the KV cache (cache_off) greedy gives the same ids;
 *   - a batch of two prompts of different lengths: each row's ids are the
 *     ids it generates alone (left padding and position ids);
 *   - a save per step: "<site>@<step>" for every step, found by
 *     nne_client_generate_result_saved_at;
 *   - a callback that returns non-zero stops the call (CANCELLED after the
 *     steps it saw), and the daemon serves the next call;
 *   - max_new_tokens 0 is the daemon's INVALID_ARGUMENT naming
 *     max_new_tokens, and the callback is never called;
 *   - an intervention (nne_client_igraph_* with nne_client_igraph_steps):
 *     head 1 of layers.0.self_attn.z zeroed from step 3 on leaves the
 *     first 3 ids of plain greedy and changes a later one; a read + save
 *     of layers.1.resid_post at steps [1, 3) comes back as "resid@1" and
 *     "resid@2", [1, 1, 64] each (with the KV cache a later step is the
 *     new token's position), also among a request's per-step saves; a
 *     node whose input does not run at its steps is the daemon's
 *     INVALID_ARGUMENT naming both nodes.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "nnedit.h"
#include "client_helpers.h"

#define MODEL "gpt2-script"
#define PROMPT "The Eiffel Tower is in"
#define N_NEW 8

static nne_test_daemon_t g_daemon;
static int64_t g_vocab;

/* ---- helpers ------------------------------------------------------------- */

static nne_client_t *client(void) {
  return nne_tc_ready(g_daemon.addr, 120000, 0);
}

/* What the callback saw, row 0 and row 1 apart. */
typedef struct seen {
  size_t calls;
  uint32_t last_step;
  bool in_order;
  int64_t ids[2][64];
  size_t n_ids[2];
  char text[2][4096];
  size_t text_len[2];
  size_t stop_after; /* return non-zero after this many calls (0: never) */
} seen_t;

static int on_step(void *ctx, uint32_t step, const nne_client_gen_token_t *t,
                   size_t n) {
  seen_t *s = ctx;
  size_t i;
  if (step != s->calls)
    s->in_order = false;
  s->calls++;
  s->last_step = step;
  for (i = 0; i < n; i++) {
    uint32_t r = t[i].row;
    ck_assert_uint_lt(r, 2);
    ck_assert_uint_lt(s->n_ids[r], 64);
    s->ids[r][s->n_ids[r]++] = t[i].token_id;
    ck_assert_uint_lt(s->text_len[r] + t[i].text_len, sizeof s->text[r]);
    memcpy(s->text[r] + s->text_len[r], t[i].text, t[i].text_len);
    s->text_len[r] += t[i].text_len;
  }
  return s->stop_after != 0 && s->calls >= s->stop_after;
}

static void seen_reset(seen_t *s, size_t stop_after) {
  memset(s, 0, sizeof *s);
  s->in_order = true;
  s->stop_after = stop_after;
}

static void generate_ok(nne_client_t *c, const nne_client_generate_req_t *req,
                        seen_t *seen, nne_client_generate_result_t *res) {
  nne_client_err_t err;
  int rc;
  seen_reset(seen, 0);
  rc = nne_client_generate(c, req, on_step, seen, res, &err);
  ck_assert_msg(rc == 0, "generate: %s: %s", nne_client_status_name(err.code),
                err.message);
}

static nne_client_token_row_t g_prompt = {.text = PROMPT};

static nne_client_generate_req_t greedy_req(void) {
  return (nne_client_generate_req_t){.model = MODEL,
                                     .prompts = &g_prompt,
                                     .n_prompts = 1,
                                     .max_new_tokens = N_NEW,
                                     .ignore_eos = true};
}

/* ---- the suite's daemon -------------------------------------------------- */

static void daemon_setup(void) {
  nne_client_model_info_t info;
  nne_client_err_t err;
  nne_client_t *c;
  nne_test_daemon_setup(&g_daemon, NULL);
  c = client();
  if (nne_client_models_load(c, MODEL, NULL, 0, &info, &err) != 0) {
    fprintf(stderr, "load %s: %s\n", MODEL, err.message);
    exit(1);
  }
  g_vocab = info.vocab_size;
  nne_client_model_info_free(&info);
  nne_client_close(c);
}

static void daemon_teardown(void) {
  nne_test_daemon_teardown(&g_daemon);
}

/* ---- tests --------------------------------------------------------------- */

START_TEST(test_greedy) {
  nne_client_t *c = client();
  nne_client_generate_req_t req = greedy_req();
  nne_client_generate_result_t res, again;
  nne_client_forward_req_t freq = {
      .model = MODEL, .rows = &g_prompt, .n_rows = 1, .top_k = 1};
  nne_client_forward_result_t fres;
  nne_client_err_t err;
  seen_t seen, seen2;
  const nne_client_generated_row_t *row;
  size_t k;

  generate_ok(c, &req, &seen, &res);
  ck_assert_uint_eq(seen.calls, N_NEW);
  ck_assert(seen.in_order);
  ck_assert_uint_eq(seen.n_ids[0], N_NEW);
  for (k = 0; k < N_NEW; k++)
    ck_assert(seen.ids[0][k] >= 0 && seen.ids[0][k] < g_vocab);
  ck_assert_uint_eq(res.n_rows, 1);
  row = &res.rows[0];
  ck_assert_int_eq(row->finish_reason, NNE_CLIENT_FINISH_LENGTH);
  ck_assert_uint_eq(row->n_ids, N_NEW);
  ck_assert(memcmp(row->ids, seen.ids[0], N_NEW * sizeof row->ids[0]) == 0);
  /* The text is what the pieces add up to. */
  ck_assert_uint_eq(row->text_len, seen.text_len[0]);
  ck_assert(memcmp(row->text, seen.text[0], row->text_len) == 0);
  ck_assert_uint_gt(row->prompt_tokens, 0);
  ck_assert_uint_eq(res.steps, N_NEW);
  ck_assert(res.timing.total_ms > 0);

  /* Step 0 is the prompt's argmax. */
  ck_assert_msg(nne_client_forward(c, &freq, &fres, &err) == 0, "forward: %s",
                err.message);
  ck_assert(fres.rows[0].top[0].token_id == row->ids[0]);
  nne_client_forward_result_free(&fres);

  /* Greedy is deterministic. */
  generate_ok(c, &req, &seen2, &again);
  ck_assert(memcmp(again.rows[0].ids, row->ids, N_NEW * sizeof row->ids[0]) ==
            0);
  nne_client_generate_result_free(&again);
  nne_client_generate_result_free(&res);
  nne_client_close(c);
}
END_TEST

START_TEST(test_no_cache) {
  nne_client_t *c = client();
  nne_client_generate_req_t req = greedy_req();
  nne_client_generate_result_t cached, recomputed;
  seen_t seen;

  generate_ok(c, &req, &seen, &cached);
  req.cache_off = true;
  generate_ok(c, &req, &seen, &recomputed);
  ck_assert(!recomputed.kv_cache);
  ck_assert_uint_eq(recomputed.rows[0].n_ids, cached.rows[0].n_ids);
  ck_assert(memcmp(recomputed.rows[0].ids, cached.rows[0].ids,
                   N_NEW * sizeof cached.rows[0].ids[0]) == 0);
  nne_client_generate_result_free(&cached);
  nne_client_generate_result_free(&recomputed);
  nne_client_close(c);
}
END_TEST

START_TEST(test_batch) {
  nne_client_t *c = client();
  nne_client_token_row_t prompts[2] = {{.text = PROMPT},
                                       {.text = "Hello, my name is"}};
  nne_client_generate_req_t req = greedy_req();
  nne_client_generate_result_t both, alone;
  seen_t seen, seen1;
  size_t r;

  req.prompts = prompts;
  req.n_prompts = 2;
  generate_ok(c, &req, &seen, &both);
  ck_assert_uint_eq(both.n_rows, 2);
  /* Each row, in a batch of different lengths, is the row alone. */
  for (r = 0; r < 2; r++) {
    req.prompts = &prompts[r];
    req.n_prompts = 1;
    generate_ok(c, &req, &seen1, &alone);
    ck_assert_uint_eq(alone.rows[0].n_ids, both.rows[r].n_ids);
    ck_assert_msg(memcmp(alone.rows[0].ids, both.rows[r].ids,
                         alone.rows[0].n_ids * sizeof alone.rows[0].ids[0]) ==
                      0,
                  "row %zu generates other ids in the batch", r);
    ck_assert_uint_eq(seen.n_ids[r], both.rows[r].n_ids);
    nne_client_generate_result_free(&alone);
  }
  nne_client_generate_result_free(&both);
  nne_client_close(c);
}
END_TEST

START_TEST(test_saves) {
  nne_client_t *c = client();
  const char *save[] = {"layers.0.resid_post"};
  nne_client_generate_req_t req = greedy_req();
  nne_client_generate_result_t res;
  seen_t seen;
  uint32_t s;

  req.max_new_tokens = 3;
  req.save = save;
  req.n_save = 1;
  generate_ok(c, &req, &seen, &res);
  ck_assert_uint_eq(res.n_saved, 3);
  for (s = 0; s < 3; s++) {
    const nne_client_tensor_t *t =
        nne_client_generate_result_saved_at(&res, save[0], s);
    ck_assert_msg(t != NULL, "no layers.0.resid_post@%u", s);
    ck_assert_uint_gt(t->nbytes, 0);
  }
  nne_client_generate_result_free(&res);
  nne_client_close(c);
}
END_TEST

START_TEST(test_callback_stops) {
  nne_client_t *c = client();
  nne_client_generate_req_t req = greedy_req();
  nne_client_generate_result_t res;
  nne_client_err_t err;
  seen_t seen;
  int rc;

  seen_reset(&seen, 3);
  rc = nne_client_generate(c, &req, on_step, &seen, &res, &err);
  ck_assert_int_eq(rc, -NNE_CLIENT_CANCELLED);
  ck_assert_uint_eq(seen.calls, 3);
  ck_assert_uint_eq(res.n_rows, 0);
  nne_client_generate_result_free(&res);
  /* The daemon serves the next call. */
  generate_ok(c, &req, &seen, &res);
  ck_assert_uint_eq(res.rows[0].n_ids, N_NEW);
  nne_client_generate_result_free(&res);
  nne_client_close(c);
}
END_TEST

START_TEST(test_bad_max_new_tokens) {
  nne_client_t *c = client();
  nne_client_generate_req_t req = greedy_req();
  nne_client_generate_result_t res;
  nne_client_err_t err;
  seen_t seen;

  seen_reset(&seen, 0);
  req.max_new_tokens = 0;
  ck_assert_int_eq(nne_client_generate(c, &req, on_step, &seen, &res, &err),
                   -NNE_CLIENT_INVALID_ARGUMENT);
  ck_assert_msg(strstr(err.message, "max_new_tokens") != NULL, "%s",
                err.message);
  ck_assert_uint_eq(seen.calls, 0);
  ck_assert_uint_eq(res.n_rows, 0);
  nne_client_close(c);
}
END_TEST

/* nnsight's
 *   with model.generate(PROMPT, max_new_tokens=8):
 *     tracer.iter[3:]: model.layers[0].self_attn.z[..., 16:32] = 0
 * the head's 16 columns of the attention's per-head output, zeroed from
 * step 3 on. */
START_TEST(test_intervention_head_from_step_3) {
  nne_client_t *c = client();
  nne_client_generate_req_t req = greedy_req();
  nne_client_generate_result_t plain, ablated;
  nne_client_igraph_t *ig = nne_client_igraph_new();
  nne_client_dim_range_t head1 = {.dim = -1, .start = 16, .stop = 32};
  seen_t seen;
  size_t k, differ = 0;
  int zero = nne_client_igraph_const_scalar(ig, 0.0);
  int w = nne_client_igraph_write(ig, "layers.0.self_attn.z", zero,
                                  NNE_CLIENT_INVOKE_ALL, &head1, 1);

  ck_assert_int_eq(nne_client_igraph_steps(ig, w, 3, NNE_CLIENT_STEPS_END), 0);
  generate_ok(c, &req, &seen, &plain);
  req.intervention = ig;
  generate_ok(c, &req, &seen, &ablated);
  ck_assert_uint_eq(ablated.rows[0].n_ids, N_NEW);
  ck_assert_uint_eq(ablated.n_saved, 0);
  for (k = 0; k < N_NEW; k++) {
    if (k < 3)
      ck_assert_msg(ablated.rows[0].ids[k] == plain.rows[0].ids[k],
                    "step %zu changed before the write runs", k);
    differ += ablated.rows[0].ids[k] != plain.rows[0].ids[k];
  }
  ck_assert_msg(differ > 0, "zeroing the head from step 3 changed nothing");
  nne_client_generate_result_free(&plain);
  nne_client_generate_result_free(&ablated);
  nne_client_igraph_free(ig);
  nne_client_close(c);
}
END_TEST

/* nnsight's tracer.iter[1:3]: model.layers[1].output.save(). */
START_TEST(test_intervention_saves_at_steps) {
  nne_client_t *c = client();
  const char *save[] = {"layers.0.resid_post"};
  nne_client_generate_req_t req = greedy_req();
  nne_client_generate_result_t res;
  nne_client_igraph_t *ig = nne_client_igraph_new();
  seen_t seen;
  uint32_t s;
  size_t k;
  int r = nne_client_igraph_read(ig, "layers.1.resid_post",
                                 NNE_CLIENT_INVOKE_ALL);
  int sv = nne_client_igraph_save(ig, r, "resid");

  ck_assert_int_eq(nne_client_igraph_steps(ig, r, 1, 3), 0);
  ck_assert_int_eq(nne_client_igraph_steps(ig, sv, 1, 3), 0);
  req.max_new_tokens = 4;
  req.intervention = ig;
  generate_ok(c, &req, &seen, &res);
  ck_assert_uint_eq(res.n_saved, 2);
  ck_assert_str_eq(res.saved[0].name, "resid@1");
  ck_assert_str_eq(res.saved[1].name, "resid@2");
  for (s = 1; s < 3; s++) {
    const nne_client_tensor_t *t =
        nne_client_generate_result_saved_at(&res, "resid", s);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->ndim, 3);
    ck_assert(t->shape[0] == 1 && t->shape[1] == 1 && t->shape[2] == 64);
  }
  nne_client_generate_result_free(&res);

  /* Among the request's saves of every step: both kinds, each by name. */
  req.save = save;
  req.n_save = 1;
  generate_ok(c, &req, &seen, &res);
  ck_assert_uint_eq(res.n_saved, 4 + 2);
  for (s = 0; s < 4; s++)
    ck_assert_ptr_nonnull(
        nne_client_generate_result_saved_at(&res, save[0], s));
  for (k = 0, s = 0; k < res.n_saved; k++)
    s += strncmp(res.saved[k].name, "resid@", 6) == 0;
  ck_assert_uint_eq(s, 2);
  ck_assert_ptr_nonnull(nne_client_generate_result_saved_at(&res, "resid", 1));
  ck_assert_ptr_nonnull(nne_client_generate_result_saved_at(&res, "resid", 2));
  nne_client_generate_result_free(&res);
  nne_client_igraph_free(ig);
  nne_client_close(c);
}
END_TEST

START_TEST(test_intervention_input_not_running) {
  nne_client_t *c = client();
  nne_client_generate_req_t req = greedy_req();
  nne_client_generate_result_t res;
  nne_client_igraph_t *ig = nne_client_igraph_new();
  nne_client_err_t err;
  seen_t seen;
  int r = nne_client_igraph_read(ig, "layers.1.resid_post",
                                 NNE_CLIENT_INVOKE_ALL);
  /* The save runs at every step, its input only from step 2 on. */
  nne_client_igraph_save(ig, r, "resid");
  ck_assert_int_eq(nne_client_igraph_steps(ig, r, 2, NNE_CLIENT_STEPS_END), 0);
  req.intervention = ig;
  seen_reset(&seen, 0);
  ck_assert_int_eq(nne_client_generate(c, &req, on_step, &seen, &res, &err),
                   -NNE_CLIENT_INVALID_ARGUMENT);
  ck_assert_msg(strstr(err.message, "node 2 runs at steps [0, end) but its "
                                    "input, node 1, only at [2, end)") != NULL,
                "%s", err.message);
  ck_assert_uint_eq(seen.calls, 0);
  nne_client_igraph_free(ig);
  nne_client_close(c);
}
END_TEST

static Suite *generate_suite(void) {
  Suite *s = suite_create("generate_client");
  TCase *tc = tcase_create("serving");
  tcase_add_unchecked_fixture(tc, daemon_setup, daemon_teardown);
  tcase_add_test(tc, test_greedy);
  tcase_add_test(tc, test_no_cache);
  tcase_add_test(tc, test_batch);
  tcase_add_test(tc, test_saves);
  tcase_add_test(tc, test_callback_stops);
  tcase_add_test(tc, test_bad_max_new_tokens);
  tcase_add_test(tc, test_intervention_head_from_step_3);
  tcase_add_test(tc, test_intervention_saves_at_steps);
  tcase_add_test(tc, test_intervention_input_not_running);
  tcase_set_timeout(tc, 300);
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
