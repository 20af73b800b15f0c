/* test_trace.c — intervention graphs (daemon/trace/), on the GPT-2 fixture
 * (tests/fixtures, gpt2-script) with its real standard names.
 *
 *   - validation, one bad graph per class, each failure INVALID_ARGUMENT
 *     naming "traces[T].nodes[K] (id N)" and the reason: duplicate id,
 *     dangling reference, a reference to a node without a value, a cycle,
 *     an unknown site (with suggestions), a bad invoke index, call arguments
 *     the whitelist refuses (nne_op_check), a save name used twice in a
 *     session or taken by a trace's logits, refs to nothing or to a later
 *     trace, exactly the node limit;
 *   - write order with a real backend: a probe forward gives the hooks'
 *     firing order and a write that depends on a later read is refused,
 *     naming both nodes, while a read at the same or an earlier site is
 *     fine;
 *   - the scheduler driven by hand on a small graph: what is computed when
 *     a hook fires, values released at their last use, activation views
 *     cloned when they outlive their hook, a second firing ignored, writes
 *     applied to the invoke's rows only;
 *   - a whole trace through a variant: saves equal the values computed by
 *     hand, a write changes what later sites see, and a ref in a second
 *     trace reads the first trace's save.
 */
#include <check.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edit/compiler.h"
#include "engine/engine.h"
#include "engine_helpers.h"
#include "fixtures.h"
#include "names/names.h"
#include "trace/trace.h"

static nne_model_t *g_model;
static nne_family_set_t *g_families;
static nne_names_t *g_names;

static nne_trace_env_t env(void) {
  nne_trace_env_t e;
  e.names = g_names;
  e.model = g_model;
  return e;
}

/* A session with one trace of n_invokes invokes. */
static nne_trace_t *new_trace(nne_trace_session_t *s, size_t n_invokes) {
  nne_trace_t *t = NULL;
  nne_err_t err;
  ck_assert_msg(nne_trace_session_add(s, NULL, &t, &err) == 0, "%s", err.msg);
  t->n_invokes = n_invokes;
  return t;
}

static nne_err_t g_err;
#define E (&g_err)

static void add_read(nne_trace_t *t, uint32_t id, const char *site,
                     int invoke) {
  ck_assert_msg(nne_trace_add_read(t, id, site, invoke, E) == 0, "%s",
                g_err.msg);
}

static void add_save(nne_trace_t *t, uint32_t id, uint32_t value,
                     const char *name) {
  ck_assert_msg(nne_trace_add_save(t, id, value, name, E) == 0, "%s",
                g_err.msg);
}

static void add_write(nne_trace_t *t, uint32_t id, const char *site,
                      uint32_t value, int invoke) {
  ck_assert_msg(nne_trace_add_write(t, id, site, value, invoke, NULL, 0, E) ==
                    0,
                "%s", g_err.msg);
}

static nne_trace_arg_t node_arg(uint32_t id) {
  nne_trace_arg_t a;
  memset(&a, 0, sizeof a);
  a.kind = NNE_ARG_TENSOR;
  a.node = id;
  return a;
}

static void add_call2(nne_trace_t *t, uint32_t id, const char *fn, uint32_t a,
                      uint32_t b) {
  nne_trace_arg_t args[2] = {node_arg(a), node_arg(b)};
  ck_assert_msg(nne_trace_add_call(t, id, fn, args, 2, NULL, 0, E) == 0, "%s",
                g_err.msg);
}

static void add_call1(nne_trace_t *t, uint32_t id, const char *fn,
                      uint32_t a) {
  nne_trace_arg_t args[1] = {node_arg(a)};
  ck_assert_msg(nne_trace_add_call(t, id, fn, args, 1, NULL, 0, E) == 0, "%s",
                g_err.msg);
}

/* Validation fails with INVALID_ARGUMENT and a message holding every
 * fragment. */
static void expect_invalid(nne_trace_t *t, const char *a, const char *b,
                           const char *c) {
  nne_trace_env_t en = env();
  nne_err_t err;
  memset(&err, 0, sizeof err);
  ck_assert_int_eq(nne_trace_validate(t, &en, &err), NNE_EINVAL);
  printf("  refused: %s\n", err.msg);
  ck_assert_msg(strstr(err.msg, a) != NULL, "'%s' not in: %s", a, err.msg);
  if (b != NULL)
    ck_assert_msg(strstr(err.msg, b) != NULL, "'%s' not in: %s", b, err.msg);
  if (c != NULL)
    ck_assert_msg(strstr(err.msg, c) != NULL, "'%s' not in: %s", c, err.msg);
}

static void validate_ok(nne_trace_t *t) {
  nne_trace_env_t en = env();
  nne_err_t err;
  memset(&err, 0, sizeof err);
  ck_assert_msg(nne_trace_validate(t, &en, &err) == 0, "%s", err.msg);
}

/* ---- validation ------------------------------------------------------------ */

START_TEST(test_duplicate_id) {
  nne_trace_session_t s;
  nne_trace_t *t;
  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 1);
  add_read(t, 1, "layers.0.resid_post", NNE_TRACE_ALL_INVOKES);
  add_read(t, 2, "layers.1.resid_post", NNE_TRACE_ALL_INVOKES);
  add_save(t, 1, 2, "x");
  expect_invalid(t, "traces[0].nodes[2] (id 1)", "also the id of nodes[0]",
                 NULL);
  nne_trace_session_free(&s);
}
END_TEST

START_TEST(test_dangling_reference) {
  nne_trace_session_t s;
  nne_trace_t *t;
  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 1);
  add_read(t, 1, "layers.0.resid_post", NNE_TRACE_ALL_INVOKES);
  add_call2(t, 2, "add", 1, 9);
  expect_invalid(t, "traces[0].nodes[1] (id 2)", "call.args[1]",
                 "node 9, which is not in this trace");
  nne_trace_session_free(&s);

  /* A save or a write has no value to refer to. */
  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 1);
  add_read(t, 1, "layers.0.resid_post", NNE_TRACE_ALL_INVOKES);
  add_save(t, 2, 1, "x");
  add_save(t, 3, 2, "y");
  expect_invalid(t, "traces[0].nodes[2] (id 3)", "save.value",
                 "node 2, a save, which has no value");
  nne_trace_session_free(&s);
}
END_TEST

START_TEST(test_cycle) {
  nne_trace_session_t s;
  nne_trace_t *t;
  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 1);
  add_read(t, 1, "layers.0.resid_post", NNE_TRACE_ALL_INVOKES);
  add_call2(t, 2, "add", 1, 4);
  add_call1(t, 3, "exp", 2);
  add_call1(t, 4, "tanh", 3);
  add_save(t, 5, 4, "x");
  /* 4 feeds 2 (add), 2 feeds 3 (exp), 3 feeds 4 (tanh) */
  expect_invalid(t, "the graph has a cycle", "3 -> 4 -> 2 -> 3", NULL);
  nne_trace_session_free(&s);

  /* A node that feeds itself. */
  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 1);
  add_call1(t, 7, "neg", 7);
  expect_invalid(t, "traces[0].nodes[0] (id 7)", "cycle", "7 -> 7");
  nne_trace_session_free(&s);
}
END_TEST

START_TEST(test_cycle_message) {
  nne_trace_session_t s;
  nne_trace_t *t;
  nne_trace_env_t en = env();
  nne_err_t err;
  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 1);
  add_call1(t, 2, "exp", 3);
  add_call1(t, 3, "tanh", 4);
  add_call1(t, 4, "neg", 2);
  ck_assert_int_eq(nne_trace_validate(t, &en, &err), NNE_EINVAL);
  printf("  refused: %s\n", err.msg);
  /* data flows 4 -> 3 -> 2 -> 4 (2 is exp of 3's value, ...), from the
   * node the message names */
  ck_assert_str_eq(err.msg, "traces[0].nodes[2] (id 4): the graph has a "
                            "cycle (node ids, each feeding the next): "
                            "4 -> 3 -> 2 -> 4");
  nne_trace_session_free(&s);
}
END_TEST

START_TEST(test_unknown_site) {
  nne_trace_session_t s;
  nne_trace_t *t;
  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 1);
  add_read(t, 5, "layers.0.resid_psot", NNE_TRACE_ALL_INVOKES);
  expect_invalid(t, "traces[0].nodes[0] (id 5)", "read.site",
                 "layers.0.resid_post");
  nne_trace_session_free(&s);

  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 1);
  /* The model has 2 layers. */
  add_read(t, 5, "layers.7.resid_post", NNE_TRACE_ALL_INVOKES);
  expect_invalid(t, "traces[0].nodes[0] (id 5)", "layers.7", NULL);
  nne_trace_session_free(&s);
}
END_TEST

START_TEST(test_bad_invoke) {
  nne_trace_session_t s;
  nne_trace_t *t;
  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 2);
  add_read(t, 1, "layers.0.resid_post", 1);
  add_read(t, 2, "layers.0.resid_post", 2);
  expect_invalid(t, "traces[0].nodes[1] (id 2)", "read.invoke 2",
                 "2 invokes");
  nne_trace_session_free(&s);

  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 1);
  add_read(t, 1, "layers.0.resid_post", NNE_TRACE_ALL_INVOKES);
  add_write(t, 2, "layers.0.resid_post", 1, -2);
  expect_invalid(t, "traces[0].nodes[1] (id 2)", "write.invoke -2", NULL);
  nne_trace_session_free(&s);
}
END_TEST

START_TEST(test_bad_call_args) {
  nne_trace_session_t s;
  nne_trace_t *t;
  nne_trace_arg_t a[2];
  int64_t dims[1] = {-1};

  /* softmax without its dim */
  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 1);
  add_read(t, 1, "layers.0.self_attn.pattern", NNE_TRACE_ALL_INVOKES);
  add_call1(t, 2, "softmax", 1);
  expect_invalid(t, "traces[0].nodes[1] (id 2)", "softmax", "dim");
  nne_trace_session_free(&s);

  /* a function off the whitelist */
  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 1);
  add_read(t, 1, "layers.0.resid_post", NNE_TRACE_ALL_INVOKES);
  add_call1(t, 2, "frobnicate", 1);
  expect_invalid(t, "traces[0].nodes[1] (id 2)", "frobnicate", NULL);
  nne_trace_session_free(&s);

  /* a list where an int belongs */
  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 1);
  add_read(t, 1, "layers.0.resid_post", NNE_TRACE_ALL_INVOKES);
  a[0] = node_arg(1);
  memset(&a[1], 0, sizeof a[1]);
  a[1].kind = NNE_ARG_INTS;
  a[1].ints = dims;
  a[1].n_ints = 1;
  a[1].name = "dim";
  ck_assert_int_eq(nne_trace_add_call(t, 2, "softmax", a, 2, NULL, 0, E), 0);
  expect_invalid(t, "traces[0].nodes[1] (id 2)", "softmax", "dim");
  nne_trace_session_free(&s);

  /* fn "module" with a module that does not exist */
  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 1);
  add_read(t, 1, "layers.1.resid_post", NNE_TRACE_ALL_INVOKES);
  memset(&a[0], 0, sizeof a[0]);
  a[0].module = "ln_finale";
  a[1] = node_arg(1);
  ck_assert_int_eq(nne_trace_add_call(t, 2, "module", a, 2, NULL, 0, E), 0);
  expect_invalid(t, "traces[0].nodes[1] (id 2)", "ln_finale", NULL);
  nne_trace_session_free(&s);

  /* and one that does: the graph validates */
  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 1);
  add_read(t, 1, "layers.1.resid_post", NNE_TRACE_ALL_INVOKES);
  a[0].module = "ln_final";
  ck_assert_int_eq(nne_trace_add_call(t, 2, "module", a, 2, NULL, 0, E), 0);
  add_save(t, 3, 2, "normed");
  validate_ok(t);
  ck_assert_int_ge(t->nodes[1].module, 0);
  nne_trace_session_free(&s);
}
END_TEST

START_TEST(test_save_name_clash) {
  nne_trace_session_t s;
  nne_trace_t *t0, *t1;
  nne_trace_session_init(&s, 16, 4096);
  t0 = new_trace(&s, 1);
  t1 = new_trace(&s, 1);
  add_read(t0, 1, "layers.0.resid_post", NNE_TRACE_ALL_INVOKES);
  add_save(t0, 2, 1, "resid");
  add_read(t1, 1, "layers.1.resid_post", NNE_TRACE_ALL_INVOKES);
  add_save(t1, 2, 1, "resid");
  validate_ok(t0);
  expect_invalid(t1, "traces[1].nodes[1] (id 2)", "'resid'",
                 "traces[0].nodes[1] (id 2)");
  nne_trace_session_free(&s);

  /* within one trace */
  nne_trace_session_init(&s, 16, 4096);
  t0 = new_trace(&s, 1);
  add_read(t0, 1, "layers.0.resid_post", NNE_TRACE_ALL_INVOKES);
  add_save(t0, 2, 1, "a");
  add_save(t0, 3, 1, "a");
  expect_invalid(t0, "traces[0].nodes[2] (id 3)", "'a'", "nodes[1]");
  nne_trace_session_free(&s);

  /* a name the request streams anyway (a trace's logits) */
  nne_trace_session_init(&s, 16, 4096);
  t0 = new_trace(&s, 1);
  ck_assert_int_eq(
      nne_trace_session_reserve(&s, "0/logits", 0, "the logits of traces[0]",
                                E),
      0);
  add_read(t0, 1, "layers.0.resid_post", NNE_TRACE_ALL_INVOKES);
  add_save(t0, 2, 1, "0/logits");
  expect_invalid(t0, "traces[0].nodes[1] (id 2)", "the logits of traces[0]",
                 NULL);
  nne_trace_session_free(&s);
}
END_TEST

START_TEST(test_ref_to_later_trace) {
  nne_trace_session_t s;
  nne_trace_t *t0, *t1;
  nne_trace_session_init(&s, 16, 4096);
  t0 = new_trace(&s, 1);
  t1 = new_trace(&s, 1);
  ck_assert_int_eq(nne_trace_add_ref(t0, 1, "later", E), 0);
  add_save(t0, 2, 1, "copy");
  add_read(t1, 1, "layers.0.resid_post", NNE_TRACE_ALL_INVOKES);
  add_save(t1, 2, 1, "later");
  expect_invalid(t0, "traces[0].nodes[0] (id 1)", "ref 'later'",
                 "no earlier trace");
  nne_trace_session_free(&s);

  /* its own save is not "earlier" either */
  nne_trace_session_init(&s, 16, 4096);
  t0 = new_trace(&s, 1);
  add_read(t0, 1, "layers.0.resid_post", NNE_TRACE_ALL_INVOKES);
  add_save(t0, 2, 1, "mine");
  ck_assert_int_eq(nne_trace_add_ref(t0, 3, "mine", E), 0);
  expect_invalid(t0, "traces[0].nodes[2] (id 3)", "saved by this trace",
                 NULL);
  nne_trace_session_free(&s);

  /* an earlier trace's save is fine */
  nne_trace_session_init(&s, 16, 4096);
  t0 = new_trace(&s, 1);
  t1 = new_trace(&s, 1);
  add_read(t0, 1, "layers.0.resid_post", NNE_TRACE_ALL_INVOKES);
  add_save(t0, 2, 1, "clean");
  ck_assert_int_eq(nne_trace_add_ref(t1, 1, "clean", E), 0);
  add_write(t1, 2, "layers.0.resid_post", 1, NNE_TRACE_ALL_INVOKES);
  validate_ok(t0);
  validate_ok(t1);
  ck_assert_uint_eq(t1->nodes[0].ref_trace, 0);
  nne_trace_session_free(&s);
}
END_TEST

START_TEST(test_exactly_one_op_and_limits) {
  nne_trace_session_t s;
  nne_trace_t *t;
  nne_err_t err;
  uint32_t k;
  /* the node limit */
  nne_trace_session_init(&s, 2, 8);
  t = new_trace(&s, 1);
  for (k = 0; k < 8; k++)
    ck_assert_int_eq(nne_trace_add_scalar(t, k, 1.0, &err), 0);
  ck_assert_int_eq(nne_trace_add_scalar(t, 8, 1.0, &err), NNE_ERESOURCE);
  ck_assert_ptr_nonnull(strstr(err.msg, "--max-trace-nodes"));
  /* the trace limit */
  new_trace(&s, 1);
  ck_assert_int_eq(nne_trace_session_add(&s, NULL, &t, &err), NNE_ERESOURCE);
  ck_assert_ptr_nonnull(strstr(err.msg, "--max-traces"));
  nne_trace_session_free(&s);

  /* a constant whose bytes do not fit its shape */
  nne_trace_session_init(&s, 2, 8);
  t = new_trace(&s, 1);
  {
    int64_t shape[2] = {2, 3};
    void *data = calloc(1, 20);
    ck_assert_int_eq(
        nne_trace_add_const(t, 4, NNE_DTYPE_F32, shape, 2, data, 20, &err), 0);
  }
  expect_invalid(t, "traces[0].nodes[0] (id 4)", "20 bytes", "24 expected");
  nne_trace_session_free(&s);
}
END_TEST

/* ---- write order, with a real backend ------------------------------------- */

/* Plans and builds the backend of a validated trace, binds it, and fills
 * order[] with a probe. */
static nne_variant_t *backend(nne_trace_t *t, nne_compile_plan_t *plan,
                              int **order) {
  nne_names_site_t *rs = calloc(t->n_sites ? t->n_sites : 1, sizeof *rs);
  nne_variant_t *v = NULL;
  nne_err_t err;
  nne_trace_sites(t, rs);
  ck_assert_msg(nne_compiler_plan(g_model, rs, t->n_sites, plan, &err) == 0,
                "%s", err.msg);
  free(rs);
  ck_assert_msg(nne_trace_bind(t, plan->n_hooks, plan->item_hook, &err) == 0,
                "%s", err.msg);
  ck_assert_msg(nne_variant_build(g_model, plan->engine_sites, plan->n_hooks,
                                  &v, &err) == 0,
                "%s", err.msg);
  *order = calloc(plan->n_hooks, sizeof **order);
  ck_assert_msg(nne_trace_probe_order(v, plan->n_hooks, 1000, *order, &err) ==
                    0,
                "%s", err.msg);
  return v;
}

START_TEST(test_write_after_later_read) {
  nne_trace_session_t s;
  nne_trace_t *t;
  nne_compile_plan_t plan;
  nne_variant_t *v;
  nne_err_t err;
  int *order;
  size_t h;

  /* layer 1's output patched into layer 0's output: too late. */
  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 1);
  add_read(t, 1, "layers.1.resid_post", NNE_TRACE_ALL_INVOKES);
  add_call1(t, 2, "neg", 1);
  add_write(t, 3, "layers.0.resid_post", 2, NNE_TRACE_ALL_INVOKES);
  validate_ok(t);
  ck_assert(t->needs_order);
  v = backend(t, &plan, &order);
  for (h = 0; h < plan.n_hooks; h++)
    ck_assert_int_ge(order[h], 0);
  /* deepest-first numbering is not forward order: the probe tells */
  ck_assert_int_lt(order[t->nodes[2].hook], order[t->nodes[0].hook]);
  ck_assert_int_eq(nne_trace_check_order(t, order, &err), NNE_EINVAL);
  printf("  refused: %s\n", err.msg);
  ck_assert_str_eq(err.msg,
                   "traces[0].nodes[2] (id 3): node 3 writes "
                   "layers.0.resid_post but depends on read node 1 of "
                   "layers.1.resid_post, which runs later in the forward");
  free(order);
  nne_variant_unref(v);
  nne_compiler_plan_free(&plan);
  nne_trace_session_free(&s);

  /* The other way round, and a read of the written site itself: fine. */
  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 1);
  add_read(t, 1, "layers.0.resid_post", NNE_TRACE_ALL_INVOKES);
  add_read(t, 2, "layers.1.resid_post", NNE_TRACE_ALL_INVOKES);
  add_call2(t, 3, "add", 1, 2);
  add_write(t, 4, "layers.1.resid_post", 3, NNE_TRACE_ALL_INVOKES);
  add_read(t, 5, "layers.0.self_attn.pattern", NNE_TRACE_ALL_INVOKES);
  add_write(t, 6, "layers.0.resid_post", 1, NNE_TRACE_ALL_INVOKES);
  validate_ok(t);
  v = backend(t, &plan, &order);
  ck_assert_msg(nne_trace_check_order(t, order, &err) == 0, "%s", err.msg);
  free(order);
  nne_variant_unref(v);
  nne_compiler_plan_free(&plan);
  nne_trace_session_free(&s);
}
END_TEST

/* ---- the scheduler, by hand ------------------------------------------------ */

static nne_tensor_t *filled(int64_t b, int64_t s_, int64_t d, float base) {
  int64_t shape[3] = {b, s_, d}, i, n = b * s_ * d;
  float *x = malloc((size_t)n * sizeof *x);
  nne_tensor_t *t;
  for (i = 0; i < n; i++)
    x[i] = base + (float)i;
  t = nne_th_f32(shape, 3, x);
  free(x);
  return t;
}

START_TEST(test_scheduler_by_hand) {
  nne_trace_session_t s;
  nne_trace_t *t;
  nne_trace_run_t run;
  nne_trace_run_opts_t o;
  nne_err_t err;
  int64_t row0[2] = {0, 1}, rows[2] = {1, 2};
  int item_hook[4] = {0, 1, 1, 1};
  nne_tensor_t *a, *b, *rep = NULL;
  const float *p;
  int64_t i;

  /* Hook 0 is layer 0's output, hook 1 layer 1's (by hand: no forward).
   *   1 read h0, invoke 0          (1 row)
   *   2 read h1, invoke 1          (2 rows)
   *   3 sub(2, 1)                  needs both: computed at hook 1
   *   4 save 3 "delta"
   *   5 const 10
   *   6 mul(1, 5)                  computed at hook 0
   *   7 write h1 := 6, invoke 1    layer 1's rows 1..2 get 10 * layer 0's row 0
   *   8 read h1, whole batch       before the write: sees the original
   *   9 save 8 "h1" */
  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 2);
  add_read(t, 1, "layers.0.resid_post", 0);
  add_read(t, 2, "layers.1.resid_post", 1);
  add_call2(t, 3, "sub", 2, 1);
  add_save(t, 4, 3, "delta");
  ck_assert_int_eq(nne_trace_add_scalar(t, 5, 10.0, &err), 0);
  add_call2(t, 6, "mul", 1, 5);
  add_write(t, 7, "layers.1.resid_post", 6, 1);
  add_read(t, 8, "layers.1.resid_post", NNE_TRACE_ALL_INVOKES);
  add_save(t, 9, 8, "h1");
  validate_ok(t);
  ck_assert(t->nodes[0].aliases);
  ck_assert(!t->nodes[4].aliases);
  ck_assert_uint_eq(t->n_sites, 4);
  ck_assert_int_eq(nne_trace_bind(t, 2, item_hook, &err), 0);
  ck_assert_uint_eq(t->read_start[1] - t->read_start[0], 1);
  ck_assert_uint_eq(t->read_start[2] - t->read_start[1], 2);
  ck_assert_uint_eq(t->write_start[2] - t->write_start[1], 1);

  memset(&o, 0, sizeof o);
  o.model = g_model;
  o.invoke_row0 = row0;
  o.invoke_rows = rows;
  o.batch = 3;
  o.budget = 1u << 20;
  ck_assert_int_eq(nne_trace_run_init(&run, t, &o, &err), 0);
  ck_assert_int_eq(nne_trace_run_begin(&run, &err), 0);
  /* the constant is known before the forward, nothing else */
  ck_assert_ptr_nonnull(run.val[4]);
  ck_assert_ptr_null(run.val[0]);

  a = filled(3, 2, 4, 0.0f);
  ck_assert_int_eq(nne_trace_hook(&run, 0, a, &rep), 0);
  ck_assert_ptr_null(rep); /* no write at hook 0 */
  /* node 1 is still needed (by 3 at hook 1): kept as a copy of row 0, not
   * as a view of the activation; 6 = 10 * it is computed; the constant's
   * only consumer is done, so it is gone. */
  ck_assert_ptr_nonnull(run.val[0]);
  ck_assert_int_eq(nne_tensor_shape(run.val[0])[0], 1);
  ck_assert_ptr_nonnull(run.val[5]);
  ck_assert_ptr_null(run.val[4]);
  ck_assert_ptr_null(run.val[2]);
  /* a second firing of hook 0 changes nothing */
  ck_assert_int_eq(nne_trace_hook(&run, 0, a, &rep), 0);
  ck_assert_ptr_null(rep);

  b = filled(3, 2, 4, 100.0f);
  ck_assert_int_eq(nne_trace_hook(&run, 1, b, &rep), 0);
  ck_assert_ptr_nonnull(rep); /* the write */
  /* everything consumed: no value is held any more */
  for (i = 0; i < (int64_t)t->n_nodes; i++)
    ck_assert_msg(run.val[i] == NULL, "node %" PRId64 " still held", i);
  ck_assert_int_eq(nne_trace_run_end(&run, &err), 0);

  /* delta = b[1:3] - a[0:1] = 100 + 8 (rows apart) */
  p = nne_th_host_f32(t->saved[0]);
  ck_assert_int_eq(nne_tensor_shape(t->saved[0])[0], 2);
  for (i = 0; i < 16; i++)
    ck_assert_float_eq(p[i], 100.0f + 8.0f + (float)i - (float)(i % 8));
  /* h1 was read before the write: the original b */
  ck_assert(nne_th_same(t->saved[1], b));
  /* the write: row 0 untouched, rows 1..2 = 10 * a[0] */
  p = nne_th_host_f32(rep);
  for (i = 0; i < 8; i++)
    ck_assert_float_eq(p[i], 100.0f + (float)i);
  for (i = 8; i < 24; i++)
    ck_assert_float_eq(p[i], 10.0f * (float)(i % 8));
  nne_trace_run_free(&run);
  nne_tensor_unref(rep);
  nne_tensor_unref(a);
  nne_tensor_unref(b);
  nne_trace_session_free(&s);
}
END_TEST

START_TEST(test_run_time_failures) {
  nne_trace_session_t s;
  nne_trace_t *t;
  nne_trace_run_t run;
  nne_trace_run_opts_t o;
  nne_err_t err;
  int64_t row0[1] = {0}, rows[1] = {2};
  int item_hook[2] = {0, 1};
  nne_tensor_t *a, *rep = NULL;

  /* matmul of [2, 2, 4] by itself: a shape error at hook 0, naming the node
   * and libtorch's reason; and a save whose site never runs. */
  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 1);
  add_read(t, 1, "layers.0.resid_post", NNE_TRACE_ALL_INVOKES);
  add_call2(t, 2, "matmul", 1, 1);
  add_save(t, 3, 2, "mm");
  validate_ok(t);
  ck_assert_int_eq(nne_trace_bind(t, 1, item_hook, &err), 0);
  memset(&o, 0, sizeof o);
  o.model = g_model;
  o.invoke_row0 = row0;
  o.invoke_rows = rows;
  o.batch = 2;
  o.budget = 1u << 20;
  ck_assert_int_eq(nne_trace_run_init(&run, t, &o, &err), 0);
  ck_assert_int_eq(nne_trace_run_begin(&run, &err), 0);
  a = filled(2, 2, 4, 0.0f);
  ck_assert_int_eq(nne_trace_hook(&run, 0, a, &rep), NNE_EINVAL);
  printf("  failed: %s\n", run.err.msg);
  ck_assert_ptr_nonnull(strstr(run.err.msg, "traces[0].nodes[1] (id 2)"));
  ck_assert_ptr_nonnull(strstr(run.err.msg, "matmul"));
  nne_trace_run_free(&run);
  nne_trace_session_free(&s);

  nne_trace_session_init(&s, 16, 4096);
  t = new_trace(&s, 1);
  add_read(t, 1, "layers.0.resid_post", NNE_TRACE_ALL_INVOKES);
  add_read(t, 2, "layers.1.resid_post", NNE_TRACE_ALL_INVOKES);
  add_call2(t, 3, "add", 1, 2);
  add_save(t, 4, 3, "sum");
  validate_ok(t);
  ck_assert_int_eq(nne_trace_bind(t, 2, item_hook, &err), 0);
  ck_assert_int_eq(nne_trace_run_init(&run, t, &o, &err), 0);
  ck_assert_int_eq(nne_trace_run_begin(&run, &err), 0);
  ck_assert_int_eq(nne_trace_hook(&run, 0, a, &rep), 0);
  /* hook 1 never fires */
  ck_assert_int_eq(nne_trace_run_end(&run, &err), NNE_EINVAL);
  printf("  failed: %s\n", err.msg);
  ck_assert_ptr_nonnull(strstr(err.msg, "traces[0].nodes[3] (id 4)"));
  ck_assert_ptr_nonnull(
      strstr(err.msg, "read node 2 of layers.1.resid_post"));
  nne_trace_run_free(&run);
  nne_tensor_unref(a);
  nne_trace_session_free(&s);
}
END_TEST

/* ---- a whole session through a variant ------------------------------------- */

static double max_diff(nne_tensor_t *a, nne_tensor_t *b) {
  const float *x = nne_th_host_f32(a), *y = nne_th_host_f32(b);
  int64_t i, n = nne_tensor_numel(a);
  double m = 0;
  ck_assert_int_eq(n, nne_tensor_numel(b));
  for (i = 0; i < n; i++)
    if (fabs((double)x[i] - y[i]) > m)
      m = fabs((double)x[i] - y[i]);
  return m;
}

static int run_one(nne_trace_t *t, nne_tensor_t *ids, nne_tensor_t **logits) {
  nne_compile_plan_t plan;
  nne_variant_t *v;
  nne_trace_run_t run;
  nne_trace_run_opts_t o;
  nne_err_t err;
  int64_t row0[1] = {0}, rows[1];
  int *order;
  int rc;

  rows[0] = nne_tensor_shape(ids)[0];
  v = backend(t, &plan, &order);
  ck_assert_msg(nne_trace_check_order(t, order, &err) == 0, "%s", err.msg);
  memset(&o, 0, sizeof o);
  o.model = g_model;
  o.invoke_row0 = row0;
  o.invoke_rows = rows;
  o.batch = rows[0];
  o.budget = 1u << 30;
  ck_assert_int_eq(nne_trace_run_init(&run, t, &o, &err), 0);
  ck_assert_int_eq(nne_trace_run_begin(&run, &err), 0);
  rc = nne_variant_forward(v, ids, NULL, nne_trace_hook, &run, logits, &err);
  ck_assert_msg(rc == 0, "%s / %s", err.msg, run.err.msg);
  ck_assert_msg(nne_trace_run_end(&run, &err) == 0, "%s", err.msg);
  nne_trace_run_free(&run);
  free(order);
  nne_variant_unref(v);
  nne_compiler_plan_free(&plan);
  return 0;
}

START_TEST(test_session_through_a_variant) {
  nne_trace_session_t s;
  nne_trace_t *t0, *t1;
  nne_tensor_t *ids, *pristine = NULL, *l0 = NULL, *l1 = NULL;
  int64_t shape[2] = {2, 5}, tok[10] = {1, 5, 9, 13, 17, 2, 6, 10, 14, 18};
  nne_err_t err;
  const float *d, *x0, *x1;
  int64_t i, n;

  nne_th_one_thread();
  ids = nne_th_tensor(NNE_DTYPE_I64, shape, 2, tok);
  ck_assert_int_eq(nne_model_forward(g_model, ids, NULL, &pristine, &err), 0);
  /* trace 0: save both residuals and their difference */
  nne_trace_session_init(&s, 16, 4096);
  t0 = new_trace(&s, 1);
  add_read(t0, 1, "layers.0.resid_post", NNE_TRACE_ALL_INVOKES);
  add_read(t0, 2, "layers.1.resid_post", NNE_TRACE_ALL_INVOKES);
  add_call2(t0, 3, "sub", 2, 1);
  add_save(t0, 4, 3, "delta");
  add_save(t0, 5, 1, "r0");
  add_save(t0, 6, 2, "r1");
  /* trace 1: layer 0's output from trace 0 written into layer 1's output:
   * the logits then equal lm_head(ln_f(r0)). */
  t1 = new_trace(&s, 1);
  ck_assert_int_eq(nne_trace_add_ref(t1, 1, "r0", E), 0);
  add_write(t1, 2, "layers.1.resid_post", 1, NNE_TRACE_ALL_INVOKES);
  validate_ok(t0);
  validate_ok(t1);
  run_one(t0, ids, &l0);
  d = nne_th_host_f32(t0->saved[0]);
  x0 = nne_th_host_f32(t0->saved[1]);
  x1 = nne_th_host_f32(t0->saved[2]);
  n = nne_tensor_numel(t0->saved[0]);
  ck_assert_int_eq(n, 2 * 5 * 64);
  for (i = 0; i < n; i++)
    ck_assert_float_eq(d[i], x1[i] - x0[i]);
  /* no write: the logits are the pristine ones */
  ck_assert(nne_th_same(l0, pristine));
  run_one(t1, ids, &l1);
  ck_assert(!nne_th_same(l1, pristine));
  {
    /* the reference: layer 1 skipped, by calling the last modules by hand */
    int ln = nne_model_module_find(g_model, "transformer.ln_f");
    int head = nne_model_module_find(g_model, "lm_head");
    nne_tensor_t *y = NULL, *z = NULL;
    const nne_tensor_t *in[1];
    ck_assert_int_ge(ln, 0);
    in[0] = t0->saved[1];
    ck_assert_int_eq(nne_model_call_module(g_model, ln, in, 1, &y, &err), 0);
    in[0] = y;
    ck_assert_int_eq(nne_model_call_module(g_model, head, in, 1, &z, &err), 0);
    ck_assert_double_le(max_diff(l1, z), 1e-5);
    nne_tensor_unref(y);
    nne_tensor_unref(z);
  }
  nne_tensor_unref(l0);
  nne_tensor_unref(l1);
  nne_tensor_unref(pristine);
  nne_tensor_unref(ids);
  nne_trace_session_free(&s);
}
END_TEST

/* ---- main ------------------------------------------------------------------ */

static Suite *trace_suite(void) {
  Suite *s = suite_create("trace");
  TCase *tv = tcase_create("validation");
  TCase *tr = tcase_create("run");
  tcase_add_test(tv, test_duplicate_id);
  tcase_add_test(tv, test_dangling_reference);
  tcase_add_test(tv, test_cycle);
  tcase_add_test(tv, test_cycle_message);
  tcase_add_test(tv, test_unknown_site);
  tcase_add_test(tv, test_bad_invoke);
  tcase_add_test(tv, test_bad_call_args);
  tcase_add_test(tv, test_save_name_clash);
  tcase_add_test(tv, test_ref_to_later_trace);
  tcase_add_test(tv, test_exactly_one_op_and_limits);
  tcase_set_timeout(tv, 60);
  suite_add_tcase(s, tv);
  tcase_add_test(tr, test_write_after_later_read);
  tcase_add_test(tr, test_scheduler_by_hand);
  tcase_add_test(tr, test_run_time_failures);
  tcase_add_test(tr, test_session_through_a_variant);
  tcase_set_timeout(tr, 120);
  suite_add_tcase(s, tr);
  return s;
}

/* The model and its names, once, before the tests fork (CPU only). */
static int load_fixture(void) {
  char path[1024];
  nne_names_module_t *mods;
  nne_err_t err;
  size_t i, n;

  snprintf(path, sizeof path, "%s/gpt2-script/model.pt", nne_fixtures_dir());
  if (nne_model_load(path, "cpu", NNE_DTYPE_INVALID, &g_model, &err) != 0) {
    fprintf(stderr, "test_trace: %s (generate the fixtures first)\n", err.msg);
    return -1;
  }
  if (nne_family_set_load(NULL, &g_families, &err) != 0) {
    fprintf(stderr, "test_trace: %s\n", err.msg);
    return -1;
  }
  n = nne_model_module_count(g_model);
  mods = calloc(n, sizeof *mods);
  for (i = 0; i < n; i++) {
    const nne_module_info_t *mi = nne_model_module(g_model, i);
    mods[i].path = mi->path;
    mods[i].class_name = mi->class_name;
    mods[i].parent = mi->parent;
  }
  if (nne_names_build(g_families, "gpt2", mods, n, NULL, 0, &g_names, &err) !=
      0) {
    fprintf(stderr, "test_trace: names: %s\n", err.msg);
    free(mods);
    return -1;
  }
  free(mods);
  return 0;
}

int main(void) {
  SRunner *sr;
  int failed;

  if (load_fixture() != 0)
    return 1;
  printf("test_trace: gpt2-script from %s; libtorch %s\n", nne_fixtures_dir(),
         nne_engine_torch_version());
  fflush(stdout);
  sr = srunner_create(trace_suite());
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  nne_names_free(g_names);
  nne_family_set_free(g_families);
  nne_model_unref(g_model);
  return failed == 0 ? 0 : 1;
}
