/* test_trace_json.c — client/ctl/trace_json.c: TRACE-JSON files become the
 * traces of one request (request-wide keys, invokes, graphs built node by
 * node), and malformed files are refused naming the place. */
#include <check.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_test.h"
#include "trace_json.h"

/* The file is refused, naming the place: k-th case of a table. */
static void expect_refused(const char *path, size_t k, const char *needle) {
  ctl_trace_file_t tf;
  bool ok = ctl_trace_file_load(&tf, path);
  ck_assert_msg(!ok, "case %zu was accepted", k);
  ck_assert_msg(strstr(tf.j.msg, needle) != NULL,
                "case %zu: '%s' does not name '%s'", k, tf.j.msg, needle);
  ctl_trace_file_free(&tf);
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

static Suite *trace_json_suite(void) {
  Suite *s = suite_create("ctl_trace_json");
  TCase *tc = tcase_create("trace_json");
  tcase_add_checked_fixture(tc, tmpdir_setup, tmpdir_teardown);
  tcase_add_test(tc, test_every_node_kind);
  tcase_add_test(tc, test_refused);
  tcase_add_test(tc, test_refused_request);
  tcase_add_test(tc, test_simple_form_parts);
  tcase_add_test(tc, test_prompts);
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
