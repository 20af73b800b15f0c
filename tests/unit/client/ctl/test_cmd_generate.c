/* test_cmd_generate.c — client/ctl/cmd_generate.c: the command line of
 * `nneditctl generate` into a request (every option, in the library's
 * terms, and an intervention file), and the usage errors of bad values,
 * each naming the option as typed and quoting the value. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "ctl_test.h"
#include "output.h"

/* Parses argv (NULL-ended) as generate's arguments; *err is what was
 * printed on stderr. */
static int gen_parse(ctl_t *c, char **argv, ctl_gen_t **g, const char **err) {
  int argc = 0, rc;
  while (argv[argc] != NULL)
    argc++;
  capture_begin();
  rc = ctl_gen_parse(c, argc, argv, g);
  *err = capture_end();
  return rc;
}

START_TEST(test_all_options) {
  ctl_t c = {.cmd = &ctl_cmd_generate};
  char *argv[] = {"gpt2-script",
                  "--prompt",
                  "The Eiffel Tower",
                  "--ids",
                  "464,3139",
                  "--tokens=7",
                  "-n",
                  "8",
                  "--temperature",
                  "0.7",
                  "--top-k",
                  "40",
                  "--top-p=0.9",
                  "--seed",
                  "18446744073709551615",
                  "--repetition-penalty",
                  "1.2",
                  "--stop",
                  "\n\n",
                  "--stop",
                  ".",
                  "--stop-id",
                  "50256",
                  "--stop-id",
                  "13,198",
                  "--ignore-eos",
                  "--alternatives",
                  "5",
                  "--edit-set",
                  "es-1",
                  "--save",
                  "layers.0.resid_post",
                  "--save",
                  "blocks.1.hook_attn_out",
                  "--no-cache",
                  NULL};
  const nne_client_generate_req_t *r;
  const char *err;
  ctl_gen_t *g;

  ck_assert_int_eq(gen_parse(&c, argv, &g, &err), 0);
  ck_assert_str_eq(err, "");
  r = ctl_gen_req(g);
  ck_assert_str_eq(r->model, "gpt2-script");
  /* Prompts in the order given, text and ids mixed. */
  ck_assert_uint_eq(r->n_prompts, 3);
  ck_assert_str_eq(r->prompts[0].text, "The Eiffel Tower");
  ck_assert_uint_eq(r->prompts[1].n_ids, 2);
  ck_assert(r->prompts[1].ids[1] == 3139);
  ck_assert(r->prompts[2].n_ids == 1 && r->prompts[2].ids[0] == 7);
  ck_assert_uint_eq(r->max_new_tokens, 8);
  ck_assert(r->sampling.temperature == 0.7f && r->sampling.top_k == 40);
  ck_assert(r->sampling.top_p == 0.9f);
  ck_assert(r->sampling.has_seed && r->sampling.seed == UINT64_MAX);
  ck_assert(r->sampling.repetition_penalty == 1.2f);
  ck_assert_uint_eq(r->n_stop_strings, 2);
  ck_assert_str_eq(r->stop_strings[0], "\n\n");
  ck_assert_str_eq(r->stop_strings[1], ".");
  ck_assert_uint_eq(r->n_stop_token_ids, 3);
  ck_assert(r->stop_token_ids[0] == 50256 && r->stop_token_ids[2] == 198);
  ck_assert(r->ignore_eos && r->cache_off);
  ck_assert_uint_eq(r->top_alternatives, 5);
  ck_assert_str_eq(r->edit_set, "es-1");
  ck_assert_uint_eq(r->n_save, 2);
  ck_assert_str_eq(r->save[1], "blocks.1.hook_attn_out");
  ctl_gen_free(g);
}
END_TEST

START_TEST(test_defaults) {
  ctl_t c = {.cmd = &ctl_cmd_generate};
  char *argv[] = {"m", "--prompt", "hi", NULL};
  const nne_client_generate_req_t *r;
  const char *err;
  ctl_gen_t *g;

  ck_assert_int_eq(gen_parse(&c, argv, &g, &err), 0);
  r = ctl_gen_req(g);
  /* Greedy, 16 tokens, the model's EOS, the KV cache, nothing saved. */
  ck_assert_uint_eq(r->max_new_tokens, 16);
  ck_assert(r->sampling.temperature == 0 && !r->sampling.has_seed);
  ck_assert(!r->ignore_eos && !r->cache_off);
  ck_assert_uint_eq(r->n_stop_strings + r->n_stop_token_ids + r->n_save, 0);
  ck_assert_ptr_null(r->edit_set);
  ctl_gen_free(g);
}
END_TEST

/* A bad command line: exit 2, the message (first line of stderr). */
static void assert_usage(char **argv, const char *want) {
  ctl_t c = {.cmd = &ctl_cmd_generate};
  const char *err;
  ctl_gen_t *g = (ctl_gen_t *)1;
  ck_assert_int_eq(gen_parse(&c, argv, &g, &err), CTL_EXIT_USAGE);
  ck_assert_ptr_null(g);
  ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
}

START_TEST(test_bad_values) {
  char *no_model[] = {NULL};
  char *no_prompt[] = {"m", "-n", "4", NULL};
  char *zero[] = {"m", "--prompt", "x", "--max-new-tokens", "0", NULL};
  char *junk[] = {"m", "--prompt", "x", "-n", "8x", NULL};
  char *hot[] = {"m", "--prompt", "x", "--temperature", "101", NULL};
  char *nan[] = {"m", "--prompt", "x", "--temperature", "nan", NULL};
  char *inf[] = {"m", "--prompt", "x", "--temperature", "inf", NULL};
  char *top_p[] = {"m",       "--prompt", "x", "--temperature=1",
                   "--top-p", "1.5",      NULL};
  char *greedy_k[] = {"m", "--prompt", "x", "--top-k", "5", NULL};
  char *seed[] = {"m", "--prompt", "x", "--seed", "-1", NULL};
  char *rep[] = {"m", "--prompt", "x", "--repetition-penalty", "10.5", NULL};
  char *alt[] = {"m", "--prompt", "x", "--alternatives", "101", NULL};
  char *stop_id[] = {"m", "--prompt", "x", "--stop-id", "-3", NULL};
  char *stop_ids[] = {"m", "--prompt", "x", "--stop-id", "1,,2", NULL};
  char *empty_stop[] = {"m", "--prompt", "x", "--stop", "", NULL};
  char long_stop[300];
  char *long_stops[] = {"m", "--prompt", "x", "--stop", long_stop, NULL};
  char *values[] = {"m", "--prompt", "x", "--values", NULL};
  char *unknown[] = {"m", "--prompt", "x", "--top-a", "3", NULL};
  char *two_models[] = {"m", "n", "--prompt", "x", NULL};

  assert_usage(no_model, "nneditctl: missing MODEL\n");
  assert_usage(no_prompt, "nneditctl: at least one --prompt (or --ids row)");
  assert_usage(zero, "nneditctl: --max-new-tokens '0': expected a number "
                     "from 1 to 4294967295\n");
  assert_usage(junk, "nneditctl: -n '8x': expected a number from 1 to");
  assert_usage(hot, "nneditctl: --temperature '101': expected a number from "
                    "0 to 100\n");
  assert_usage(nan, "nneditctl: --temperature 'nan': expected a number");
  assert_usage(inf, "nneditctl: --temperature 'inf': expected a number");
  assert_usage(top_p, "nneditctl: --top-p '1.5': expected a number from 0 "
                      "to 1\n");
  assert_usage(greedy_k, "nneditctl: --top-k and --top-p apply when "
                         "sampling: give a --temperature above 0\n");
  assert_usage(seed, "nneditctl: --seed '-1': expected a number from 0 to "
                     "18446744073709551615\n");
  assert_usage(rep, "nneditctl: --repetition-penalty '10.5': expected a "
                    "number from 0 to 10\n");
  assert_usage(alt, "nneditctl: --alternatives '101': expected a number "
                    "from 0 to 100\n");
  assert_usage(stop_id, "nneditctl: --stop-id '-3': expected token ids");
  assert_usage(stop_ids, "nneditctl: --stop-id '1,,2': expected token ids");
  assert_usage(empty_stop, "nneditctl: --stop needs a value (it is empty)\n");
  memset(long_stop, 'x', 257);
  long_stop[257] = '\0';
  assert_usage(long_stops, "nneditctl: --stop 'xxxx");
  ck_assert_msg(strstr(capture_buf, "longer than 256 bytes") != NULL, "%s",
                capture_buf);
  assert_usage(values, "nneditctl: --values needs at least one --save SITE");
  assert_usage(unknown, "nneditctl: unknown option '--top-a'\n");
  assert_usage(two_models, "nneditctl: unexpected argument 'n'\n");
}
END_TEST

START_TEST(test_bounds) {
  /* 17 stop strings, 65 stop ids: one past the proto's bounds. */
  char *argv[64] = {"m", "--prompt", "x"};
  const char *err;
  ctl_t c = {.cmd = &ctl_cmd_generate};
  ctl_gen_t *g;
  char ids[400];
  size_t n = 3, k, len = 0;
  for (k = 0; k < 17; k++) {
    argv[n++] = "--stop";
    argv[n++] = "s";
  }
  argv[n] = NULL;
  ck_assert_int_eq(gen_parse(&c, argv, &g, &err), CTL_EXIT_USAGE);
  ck_assert_msg(strstr(err, "--stop: at most 16 stop strings") != NULL, "%s",
                err);
  for (k = 0; k < 65; k++)
    len +=
        (size_t)snprintf(ids + len, sizeof ids - len, "%s%zu", k ? "," : "", k);
  argv[3] = "--stop-id";
  argv[4] = ids;
  argv[5] = NULL;
  ck_assert_int_eq(gen_parse(&c, argv, &g, &err), CTL_EXIT_USAGE);
  ck_assert_msg(strstr(err, "more than 64 ids in all") != NULL, "%s", err);
}
END_TEST

/* -f FILE: the intervention from Generate's form of TRACE-JSON; the model,
 * edit set and prompts from the file unless the command line gives them;
 * --save-dir needs no --save then (the file may have save nodes). */
START_TEST(test_file) {
  ctl_t c = {.cmd = &ctl_cmd_generate};
  const char *path =
      put("g.json", "{\"model\": \"gpt2-script\", \"edit_set\": \"es-1\", "
                    "\"prompt\": \"from the file\", \"nodes\": ["
                    " {\"id\": 3, \"read\": {\"site\": \"layers.1.resid_post\"},"
                    " \"steps\": [1, 3]},"
                    " {\"id\": 4, \"save\": {\"value\": 3, \"name\": \"r\"},"
                    " \"steps\": [1, 3]}]}");
  char *from_file[] = {"-f", (char *)path, "--save-dir", g_dir, NULL};
  char *over[] = {"m2", "--ids", "1,2", "--edit-set", "es-2", "-f",
                  (char *)path, NULL};
  const nne_client_generate_req_t *r;
  const char *err;
  ctl_gen_t *g;
  uint32_t start;
  int64_t stop;

  ck_assert_int_eq(gen_parse(&c, from_file, &g, &err), 0);
  r = ctl_gen_req(g);
  ck_assert_str_eq(r->model, "gpt2-script");
  ck_assert_str_eq(r->edit_set, "es-1");
  ck_assert_uint_eq(r->n_prompts, 1);
  ck_assert_str_eq(r->prompts[0].text, "from the file");
  ck_assert_ptr_nonnull(r->intervention);
  ck_assert_uint_eq(nne_client_igraph_size(r->intervention), 2);
  ck_assert_int_eq(nne_client_igraph_get_steps(r->intervention, 4, &start,
                                               &stop),
                   1);
  ck_assert(start == 1 && stop == 3);
  ctl_gen_free(g);

  ck_assert_int_eq(gen_parse(&c, over, &g, &err), 0);
  r = ctl_gen_req(g);
  ck_assert_str_eq(r->model, "m2");
  ck_assert_str_eq(r->edit_set, "es-2");
  ck_assert(r->n_prompts == 1 && r->prompts[0].n_ids == 2);
  ck_assert_ptr_nonnull(r->intervention);
  ctl_gen_free(g);
}
END_TEST

START_TEST(test_file_refused) {
  const char *bare = put("bare.json", "{\"nodes\": []}");
  char *no_model[] = {"--prompt", "x", "-f", (char *)bare, NULL};
  char *no_prompt[] = {"m", "-f", (char *)bare, NULL};
  char *missing[] = {"m", "--prompt", "x", "-f", "/nonexistent/g.json", NULL};
  char *bad_steps[] = {"m", "--prompt", "x", "-f", NULL, NULL};

  assert_usage(no_model, "nneditctl: missing MODEL (an argument, or "
                         "\"model\" in the file)\n");
  assert_usage(no_prompt, "nneditctl: at least one --prompt (or --ids row)");
  assert_usage(missing, "nneditctl: /nonexistent/g.json: ");
  bad_steps[4] = (char *)put(
      "bad.json", "{\"nodes\": [{\"read\": {\"site\": \"a\"}, \"steps\": "
                  "[2, 1]}]}");
  assert_usage(bad_steps, "nneditctl: ");
  ck_assert_msg(strstr(capture_buf, "bad.json: nodes[0].steps: stop 1 is "
                                    "not after start 2") != NULL,
                "%s", capture_buf);
}
END_TEST

static Suite *cmd_generate_suite(void) {
  Suite *s = suite_create("ctl_cmd_generate");
  TCase *tc = tcase_create("args");
  tcase_add_checked_fixture(tc, tmpdir_setup, tmpdir_teardown);
  tcase_add_test(tc, test_all_options);
  tcase_add_test(tc, test_defaults);
  tcase_add_test(tc, test_bad_values);
  tcase_add_test(tc, test_bounds);
  tcase_add_test(tc, test_file);
  tcase_add_test(tc, test_file_refused);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(cmd_generate_suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
