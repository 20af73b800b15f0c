/* test_trace_json.c — client/ctl/trace_json.c: TRACE-JSON files become the
 * traces of one request (request-wide keys, invokes, graphs built node by
 * node), Generate's form one intervention whose nodes run at steps, and
 * malformed files are refused naming the place. */
#include <check.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_test.h"
#include "trace_json.h"

typedef bool (*loader_t)(ctl_trace_file_t *tf, const char *path);

/* The file is refused by `load` (a trace file's or Generate's), naming the
 * place: k-th case of a table. */
static void expect_refused_by(loader_t load, const char *path, size_t k,
                              const char *needle) {
  ctl_trace_file_t tf;
  bool ok = load(&tf, path);
  ck_assert_msg(!ok, "case %zu was accepted", k);
  ck_assert_msg(strstr(tf.j.msg, needle) != NULL,
                "case %zu: '%s' does not name '%s'", k, tf.j.msg, needle);
  ctl_trace_file_free(&tf);
}

static void expect_refused(const char *path, size_t k, const char *needle) {
  expect_refused_by(ctl_trace_file_load, path, k, needle);
}

START_TEST(test_every_node_kind) {
  ctl_trace_file_t tf;
  const nne_client_invoke_t *inv;
  ck_assert_msg(
      ctl_trace_file_load(
          &tf,
          put("t.json",
              "{\"model\": \"gpt2-script\", \"edit_set\": \"es-1\", "
              "\"padding\": \"left\", \"top_k\": 3, \"logits\": \"last\", "
              "\"traces\": ["
              " {\"name\": \"clean\", \"invokes\": ["
              "   {\"tokens\": [[1, 2, 3], [4, 5]], \"mask\": [[1, 1, 1], "
              "[0, 1, 1]]},"
              "   {\"tokens\": [7, 8]}],"
              "  \"nodes\": ["
              "   {\"id\": 1, \"read\": {\"site\": \"layers.0.resid_post\", "
              "\"invoke\": 0}},"
              "   {\"call\": {\"fn\": \"mul\", \"args\": [{\"node\": 1}, 2.0, "
              "3, true, [1, 2], {\"dtype\": \"float16\"}, {\"module\": "
              "\"layers.0.mlp\"}], \"kwargs\": {\"dim\": -1}}},"
              "   {\"id\": 5, \"call\": {\"fn\": \"index\", \"args\": "
              "[{\"node\": 2}], \"index\": [0, \":\", \"1:3\", \"::2\", "
              "\"...\", null, {\"slice\": [null, 4, 2]}]}},"
              "   {\"id\": 6, \"write\": {\"site\": \"layers.0.resid_post\", "
              "\"value\": 2, \"invoke\": \"all\", \"last\": -1}},"
              "   {\"id\": 7, \"constant\": {\"scalar\": 0.5}},"
              "   {\"id\": 8, \"constant\": {\"tensor\": {\"shape\": [2], "
              "\"data\": [1, 2]}}},"
              "   {\"id\": 9, \"save\": {\"value\": 1, \"name\": "
              "\"resid0\"}}]},"
              " {\"invokes\": [{\"tokens\": [[9]]}], \"nodes\": ["
              "   {\"ref\": {\"name\": \"resid0\"}},"
              "   {\"save\": {\"value\": 1, \"name\": \"again\"}}]}]}")),
      "%s", tf.j.msg);
  ck_assert_str_eq(tf.model, "gpt2-script");
  ck_assert_str_eq(tf.edit_set, "es-1");
  ck_assert(tf.has_padding && tf.padding == NNE_CLIENT_PAD_LEFT);
  ck_assert(tf.has_top_k && tf.top_k == 3);
  ck_assert(tf.has_logits && tf.logits == NNE_CLIENT_LOGITS_LAST);
  ck_assert_uint_eq(tf.n_traces, 2);
  ck_assert_str_eq(tf.traces[0].name, "clean");
  ck_assert_ptr_null(tf.traces[1].name);
  ck_assert_uint_eq(tf.traces[0].n_invokes, 2);
  inv = tf.traces[0].invokes;
  ck_assert(inv[0].n_rows == 2 && inv[0].rows[0].n_ids == 3 &&
            inv[0].rows[1].n_ids == 2 && inv[0].rows[1].ids[1] == 5);
  ck_assert(inv[0].n_mask == 2 && inv[0].mask[1].values[0] == 0);
  /* One flat row is a row. */
  ck_assert(inv[1].n_rows == 1 && inv[1].rows[0].n_ids == 2 &&
            inv[1].rows[0].ids[0] == 7 && inv[1].n_mask == 0);
  ck_assert_uint_eq(nne_client_igraph_size(tf.graphs[0]), 7);
  ck_assert_uint_eq(nne_client_igraph_size(tf.graphs[1]), 2);
  ck_assert_int_eq(nne_client_igraph_error(tf.graphs[0], NULL), 0);
  ck_assert_int_eq(nne_client_igraph_error(tf.graphs[1], NULL), 0);
  ck_assert_ptr_eq(tf.traces[1].graph, tf.graphs[1]);
  ctl_trace_file_free(&tf);
}
END_TEST

/* A trace file with nodes `nodes` (one trace, one invoke of one row). */
static const char *one_trace(const char *nodes) {
  static char text[4096];
  snprintf(text, sizeof text,
           "{\"model\": \"m\", \"traces\": [{\"invokes\": [{\"tokens\": "
           "[[1]]}], \"nodes\": [%s]}]}",
           nodes);
  return put("t.json", text);
}

START_TEST(test_refused) {
  static const struct {
    const char *nodes, *needle;
  } cases[] = {
      {"{\"id\": 1, \"read\": {\"site\": \"a\"}}, {\"id\": 1, \"read\": "
       "{\"site\": \"b\"}}",
       "traces[0].nodes[1].id: 1 is already the id of nodes[0]"},
      {"{\"save\": {\"value\": 9, \"name\": \"x\"}}",
       "traces[0].nodes[0].save.value: no node 9 in this trace"},
      {"{\"read\": {\"site\": \"a\", \"invoke\": 3}}",
       "traces[0].nodes[0].read.invoke: expected an invoke of this trace "
       "(0 to 0)"},
      {"{\"read\": {\"site\": \"a\"}, \"save\": {\"value\": 1, \"name\": "
       "\"x\"}}",
       "traces[0].nodes[0]: expected exactly one of read, write, call"},
      {"{\"read\": {\"site\": \"a\"}}, {\"call\": {\"fn\": \"index\", "
       "\"args\": [{\"node\": 1}], \"index\": [\"1:2:0\"]}}",
       "traces[0].nodes[1].call.index[0]: '1:2:0' is neither"},
      {"{\"read\": {\"site\": \"a\"}}, {\"call\": {\"fn\": \"sum\", "
       "\"args\": [{\"node\": 1}], \"kwargs\": {\"dim\": {\"int\": 1, "
       "\"name\": \"x\"}}}}",
       "a keyword argument is named by its key"},
      {"{\"read\": {\"site\": \"a\"}}, {\"call\": {\"fn\": \"add\", "
       "\"args\": [{\"node\": 1, \"int\": 2}]}}",
       "traces[0].nodes[1].call.args[0]: expected exactly one of node, "
       "scalar"},
      {"{\"read\": {\"site\": \"a\"}}, {\"call\": {\"fn\": \"cat\", "
       "\"args\": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]}}",
       "17 arguments, more than 16"},
      {"{\"read\": {\"site\": \"a\", \"ranges\": []}}",
       "traces[0].nodes[0].read: unknown key 'ranges'"},
      {"{\"write\": {\"site\": \"a\", \"value\": 2}}",
       "traces[0].nodes[0].write.value: no node 2 in this trace"},
      {"{\"constant\": {\"scalar\": 1, \"tensor\": {\"data\": 1}}}",
       "traces[0].nodes[0].constant: give exactly one of 'tensor' and "
       "'scalar'"},
  };
  size_t k;
  for (k = 0; k < sizeof cases / sizeof cases[0]; k++)
    expect_refused(one_trace(cases[k].nodes), k, cases[k].needle);
}
END_TEST

START_TEST(test_refused_request) {
  static const struct {
    const char *json, *needle;
  } cases[] = {
      {"{\"traces\": [], \"padding\": \"PADDING_LEFT\"}",
       "padding: expected \"none\", \"left\" or \"right\""},
      {"{\"traces\": [], \"top_k\": -1}", "top_k: expected an integer"},
      {"{\"traces\": [], \"logits\": 2}", "logits: expected \"none\""},
      {"{\"traces\": []}", "traces: expected a non-empty array"},
      {"{\"trace\": []}", "unknown key 'trace'"},
      {"{\"traces\": [{\"invokes\": []}]}",
       "traces[0].invokes: expected a non-empty array"},
      {"{\"traces\": [{\"invokes\": [{\"tokens\": [[1, \"x\"]]}]}]}",
       "traces[0].invokes[0].tokens[0][1]: expected a token id"},
      {"{\"traces\": [{\"invokes\": [{\"tokens\": [[1]], \"mask\": "
       "[[3000000000]]}]}]}",
       "traces[0].invokes[0].mask[0][0]: expected a mask value"},
      /* Prompts: one kind of rows per invoke, texts only, no mask. */
      {"{\"traces\": [{\"invokes\": [{}]}]}",
       "traces[0].invokes[0]: expected exactly one of \"tokens\", "
       "\"prompt\" or \"prompts\""},
      {"{\"traces\": [{\"invokes\": [{\"tokens\": [[1]], \"prompt\": "
       "\"a\"}]}]}",
       "traces[0].invokes[0]: expected exactly one of"},
      {"{\"traces\": [{\"invokes\": [{\"prompts\": []}]}]}",
       "traces[0].invokes[0].prompts: expected a non-empty array of texts"},
      {"{\"traces\": [{\"invokes\": [{\"prompts\": [\"a\", 5]}]}]}",
       "traces[0].invokes[0].prompts[1]: expected a text"},
      {"{\"traces\": [{\"invokes\": [{\"prompt\": \"\"}]}]}",
       "traces[0].invokes[0].prompt: expected a text (a non-empty string)"},
      {"{\"traces\": [{\"invokes\": [{\"prompt\": \"a\\u0000b\"}]}]}",
       "\\u0000 is not allowed"}, /* the parser's own refusal */
      {"{\"traces\": [{\"invokes\": [{\"prompt\": \"a\", \"mask\": "
       "[[1]]}]}]}",
       "traces[0].invokes[0].mask: prompt rows take no mask"},
      /* Save names are unique in the request, across its traces. */
      {"{\"traces\": [{\"invokes\": [{\"tokens\": [[1]]}], \"nodes\": "
       "[{\"read\": {\"site\": \"a\"}}, {\"save\": {\"value\": 1, \"name\": "
       "\"x\"}}]}, {\"invokes\": [{\"tokens\": [[1]]}], \"nodes\": "
       "[{\"read\": {\"site\": \"a\"}}, {\"save\": {\"value\": 1, \"name\": "
       "\"x\"}}]}]}",
       "traces[1].nodes[1].save.name: 'x' is already saved by "
       "traces[0].nodes[1]"},
  };
  size_t k;
  for (k = 0; k < sizeof cases / sizeof cases[0]; k++)
    expect_refused(put("t.json", cases[k].json), k, cases[k].needle);
}
END_TEST

/* Invokes of prompts: text rows, borrowed from the document. */
START_TEST(test_prompts) {
  ctl_trace_file_t tf;
  const nne_client_invoke_t *inv;
  ck_assert_msg(
      ctl_trace_file_load(
          &tf,
          put("t.json", "{\"traces\": [{\"invokes\": ["
                        " {\"prompt\": \"The Eiffel Tower is in\"},"
                        " {\"prompts\": [\" Paris\\n\", \"\\u00e9t\\u00e9\"]},"
                        " {\"tokens\": [1, 2]}]}]}")),
      "%s", tf.j.msg);
  inv = tf.traces[0].invokes;
  ck_assert_uint_eq(tf.traces[0].n_invokes, 3);
  ck_assert_uint_eq(inv[0].n_rows, 1);
  ck_assert_str_eq(inv[0].rows[0].text, "The Eiffel Tower is in");
  ck_assert(inv[0].rows[0].ids == NULL && inv[0].rows[0].n_ids == 0);
  ck_assert_uint_eq(inv[1].n_rows, 2);
  ck_assert_str_eq(inv[1].rows[0].text, " Paris\n");
  ck_assert_str_eq(inv[1].rows[1].text, "\xc3\xa9t\xc3\xa9");
  ck_assert_uint_eq(inv[1].n_mask, 0);
  ck_assert_ptr_null(inv[2].rows[0].text);
  ck_assert_uint_eq(inv[2].rows[0].n_ids, 2);
  ctl_trace_file_free(&tf);
}
END_TEST

/* What the simple form builds on: traces with empty graphs, and zeroed
 * memory aligned for anything, freed with the file. */
START_TEST(test_simple_form_parts) {
  ctl_trace_file_t tf;
  int64_t *a;
  double *b;
  memset(&tf, 0, sizeof tf);
  ck_assert(ctl_trace_file_traces(&tf, 2));
  ck_assert_uint_eq(tf.n_traces, 2);
  ck_assert_uint_eq(nne_client_igraph_size(tf.graphs[1]), 0);
  a = ctl_trace_file_alloc(&tf, 3 * sizeof *a);
  b = ctl_trace_file_alloc(&tf, 0);
  ck_assert(a != NULL && b != NULL);
  ck_assert(a[0] == 0 && a[2] == 0);
  ck_assert_uint_eq((uintptr_t)a % alignof(max_align_t), 0);
  ck_assert_uint_eq((uintptr_t)b % alignof(max_align_t), 0);
  ctl_trace_file_free(&tf);
  ck_assert_ptr_null(tf.traces);
}
END_TEST

/* The steps node `id` of g runs at: start, and stop (-1: to the end), or
 * "all" as start -1. */
static void assert_steps(const nne_client_igraph_t *g, int id, int64_t start,
                         int64_t stop) {
  uint32_t a;
  int64_t b;
  int rc = nne_client_igraph_get_steps(g, id, &a, &b);
  ck_assert_int_ge(rc, 0);
  if (start < 0) {
    ck_assert_msg(rc == 0, "node %d has steps", id);
    return;
  }
  ck_assert_msg(rc == 1, "node %d has no steps", id);
  ck_assert_msg(a == start && b == stop, "node %d: [%u, %lld)", id, a,
                (long long)b);
}

/* Generate's form: the model, the edit set, prompts as one invoke of rows,
 * and the nodes with their steps in every spelling. */
START_TEST(test_generate_form) {
  ctl_trace_file_t tf;
  const nne_client_igraph_t *g;
  ck_assert_msg(
      ctl_trace_file_load_generate(
          &tf,
          put("g.json",
              "{\"model\": \"gpt2-script\", \"edit_set\": \"es-1\", "
              "\"prompts\": [\"a\", \"b\"], \"nodes\": ["
              " {\"id\": 1, \"constant\": {\"scalar\": 0}},"
              " {\"id\": 2, \"write\": {\"site\": \"layers.0.self_attn.z\", "
              "\"value\": 1, \"last\": [16, 32]}, \"steps\": {\"start\": 3}},"
              " {\"id\": 3, \"read\": {\"site\": \"layers.1.resid_post\", "
              "\"invoke\": -1}, \"steps\": [1, 3]},"
              " {\"id\": 4, \"save\": {\"value\": 3, \"name\": \"r\"}, "
              "\"steps\": {\"start\": 1, \"stop\": 3}},"
              " {\"id\": 5, \"call\": {\"fn\": \"mul\", \"args\": [{\"node\": "
              "3}, 2.0]}, \"steps\": 2},"
              " {\"id\": 6, \"read\": {\"site\": \"x\"}, \"steps\": [4, null]},"
              " {\"id\": 7, \"read\": {\"site\": \"y\"}, \"steps\": [5]},"
              " {\"id\": 8, \"read\": {\"site\": \"z\"}, \"steps\": \"all\"}]}")),
      "%s", tf.j.msg);
  ck_assert(tf.generate);
  ck_assert_str_eq(tf.model, "gpt2-script");
  ck_assert_str_eq(tf.edit_set, "es-1");
  ck_assert_uint_eq(tf.n_traces, 1);
  ck_assert_uint_eq(tf.traces[0].n_invokes, 1);
  ck_assert_uint_eq(tf.traces[0].invokes[0].n_rows, 2);
  ck_assert_str_eq(tf.traces[0].invokes[0].rows[1].text, "b");
  g = tf.traces[0].graph;
  ck_assert_uint_eq(nne_client_igraph_size(g), 8);
  ck_assert_int_eq(nne_client_igraph_error(g, NULL), 0);
  assert_steps(g, 1, -1, 0);
  assert_steps(g, 2, 3, NNE_CLIENT_STEPS_END);
  assert_steps(g, 3, 1, 3);
  assert_steps(g, 4, 1, 3);
  assert_steps(g, 5, 2, 3); /* step 2 alone: the 2nd .next() */
  assert_steps(g, 6, 4, NNE_CLIENT_STEPS_END);
  assert_steps(g, 7, 5, NNE_CLIENT_STEPS_END);
  assert_steps(g, 8, -1, 0);
  ctl_trace_file_free(&tf);

  /* Without prompts or a model: the command line gives them. */
  ck_assert_msg(ctl_trace_file_load_generate(
                    &tf, put("g.json", "{\"nodes\": []}")),
                "%s", tf.j.msg);
  ck_assert_ptr_null(tf.model);
  ck_assert_uint_eq(tf.traces[0].n_invokes, 0);
  ck_assert_uint_eq(nne_client_igraph_size(tf.traces[0].graph), 0);
  ctl_trace_file_free(&tf);
}
END_TEST

START_TEST(test_generate_refused) {
  static const struct {
    const char *json, *needle;
  } cases[] = {
      {"{\"model\": \"m\"}", "nodes: expected an array of nodes (the "
                             "intervention)"},
      {"{\"nodes\": {}}", "nodes: expected an array of nodes"},
      {"{\"nodes\": [], \"traces\": []}", "unknown key 'traces'"},
      {"{\"nodes\": [], \"padding\": \"left\"}", "unknown key 'padding'"},
      {"{\"nodes\": [], \"tokens\": [1], \"mask\": [1]}",
       "unknown key 'mask'"},
      {"{\"nodes\": [], \"tokens\": [1], \"prompt\": \"a\"}",
       "expected exactly one of \"tokens\", \"prompt\" or \"prompts\""},
      {"{\"nodes\": [], \"prompts\": []}",
       "prompts: expected a non-empty array of texts"},
      {"{\"nodes\": [{\"read\": {\"site\": \"a\", \"invoke\": 0}}]}",
       "nodes[0].read.invoke: expected -1 or \"all\": Generate's prompts "
       "are the batch"},
      {"{\"nodes\": [{\"id\": 2, \"read\": {\"site\": \"a\"}}, {\"id\": 2, "
       "\"read\": {\"site\": \"b\"}}]}",
       "nodes[1].id: 2 is already the id of nodes[0]"},
      {"{\"nodes\": [{\"save\": {\"value\": 4, \"name\": \"x\"}}]}",
       "nodes[0].save.value: no node 4 in this trace"},
      {"{\"nodes\": [{\"read\": {\"site\": \"a\"}, \"steps\": [3, 3]}]}",
       "nodes[0].steps: stop 3 is not after start 3"},
      {"{\"nodes\": [{\"read\": {\"site\": \"a\"}, \"steps\": -1}]}",
       "nodes[0].steps: expected \"all\", a step k, [start, stop]"},
      {"{\"nodes\": [{\"read\": {\"site\": \"a\"}, \"steps\": [null, 3]}]}",
       "nodes[0].steps: expected \"all\""},
      {"{\"nodes\": [{\"read\": {\"site\": \"a\"}, \"steps\": [1, 2, 3]}]}",
       "nodes[0].steps: expected \"all\""},
      {"{\"nodes\": [{\"read\": {\"site\": \"a\"}, \"steps\": \"every\"}]}",
       "nodes[0].steps: expected \"all\""},
      {"{\"nodes\": [{\"read\": {\"site\": \"a\"}, \"steps\": {\"stop\": "
       "3}}]}",
       "nodes[0].steps: expected \"all\""},
      {"{\"nodes\": [{\"read\": {\"site\": \"a\"}, \"steps\": {\"start\": 1, "
       "\"end\": 3}}]}",
       "nodes[0].steps: unknown key 'end' (known: start, stop)"},
      {"{\"nodes\": [{\"read\": {\"site\": \"a\"}, \"steps\": [1, "
       "4294967296]}]}",
       "nodes[0].steps: stop 4294967296 is not after start 1"},
  };
  size_t k;
  for (k = 0; k < sizeof cases / sizeof cases[0]; k++)
    expect_refused_by(ctl_trace_file_load_generate,
                      put("g.json", cases[k].json), k, cases[k].needle);
  /* A trace is one forward: steps are Generate's alone. */
  expect_refused(one_trace("{\"read\": {\"site\": \"a\"}, \"steps\": 1}"), 0,
                 "traces[0].nodes[0].steps: only Generate's intervention "
                 "runs nodes at steps");
}
END_TEST

static Suite *trace_json_suite(void) {
  Suite *s = suite_create("ctl_trace_json");
  TCase *tc = tcase_create("trace_json");
  tcase_add_checked_fixture(tc, tmpdir_setup, tmpdir_teardown);
  tcase_add_test(tc, test_every_node_kind);
  tcase_add_test(tc, test_refused);
  tcase_add_test(tc, test_refused_request);
  tcase_add_test(tc, test_simple_form_parts);
  tcase_add_test(tc, test_prompts);
  tcase_add_test(tc, test_generate_form);
  tcase_add_test(tc, test_generate_refused);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(trace_json_suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
