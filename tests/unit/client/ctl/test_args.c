/* test_args.c — client/ctl/args.c: the plain value parsers, the walk over
 * a command's arguments, and the messages of the option parsers (the
 * option as typed, the value quoted; one JSON line with -o json). */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "ctl_test.h"
#include "output.h"

/* ---- plain parsers ------------------------------------------------------- */

START_TEST(test_int_list) {
  int64_t *v;
  size_t n;
  ck_assert(ctl_parse_int_list("1,2,3", 0, 10, &v, &n));
  ck_assert_uint_eq(n, 3);
  ck_assert(v[0] == 1 && v[1] == 2 && v[2] == 3);
  free(v);
  ck_assert(ctl_parse_int_list("-5,7", -5, 7, &v, &n));
  ck_assert(n == 2 && v[0] == -5 && v[1] == 7);
  free(v);
  ck_assert(ctl_parse_int_list("", 0, 1, &v, &n)); /* the empty row */
  ck_assert_uint_eq(n, 0);
  free(v);
  ck_assert(
      ctl_parse_int_list("9223372036854775807", INT64_MIN, INT64_MAX, &v, &n));
  ck_assert(n == 1 && v[0] == INT64_MAX);
  free(v);
  /* Refused: empty elements, blanks, junk, a trailing comma, out of range
   * (also of int64), and nothing is left to free. */
  ck_assert(!ctl_parse_int_list("1,,2", 0, 9, &v, &n));
  ck_assert(!ctl_parse_int_list(" 1", 0, 9, &v, &n));
  ck_assert(!ctl_parse_int_list("1,x", 0, 9, &v, &n));
  ck_assert(!ctl_parse_int_list("1,", 0, 9, &v, &n));
  ck_assert(!ctl_parse_int_list(",1", 0, 9, &v, &n));
  ck_assert(!ctl_parse_int_list("1 ,2", 0, 9, &v, &n));
  ck_assert(!ctl_parse_int_list("10", 0, 9, &v, &n));
  ck_assert(!ctl_parse_int_list("-1", 0, 9, &v, &n));
  ck_assert(!ctl_parse_int_list("99999999999999999999", INT64_MIN, INT64_MAX,
                                &v, &n));
  ck_assert_ptr_null(v);
}
END_TEST

START_TEST(test_u32_and_seconds) {
  uint32_t u;
  int64_t ms;
  ck_assert(ctl_parse_u32("0", &u) && u == 0);
  ck_assert(ctl_parse_u32("4294967295", &u) && u == UINT32_MAX);
  ck_assert(!ctl_parse_u32("4294967296", &u));
  ck_assert(!ctl_parse_u32("-1", &u));
  ck_assert(!ctl_parse_u32("+1", &u));
  ck_assert(!ctl_parse_u32(" 1", &u));
  ck_assert(!ctl_parse_u32("1x", &u));
  ck_assert(!ctl_parse_u32("", &u));

  ck_assert(ctl_parse_seconds("0", &ms) && ms == 0);
  ck_assert(ctl_parse_seconds("1.5", &ms) && ms == 1500);
  ck_assert(ctl_parse_seconds("60", &ms) && ms == 60000);
  /* A positive limit never rounds to 0, which means "none". */
  ck_assert(ctl_parse_seconds("0.0001", &ms) && ms == 1);
  ck_assert(!ctl_parse_seconds("abc", &ms));
  ck_assert(!ctl_parse_seconds("-1", &ms));
  ck_assert(!ctl_parse_seconds("1e10", &ms));
  ck_assert(!ctl_parse_seconds("nan", &ms));
  ck_assert(!ctl_parse_seconds("1s", &ms));
}
END_TEST

START_TEST(test_u64_and_number) {
  uint64_t u;
  double d;
  ck_assert(ctl_parse_u64("0", &u) && u == 0);
  ck_assert(ctl_parse_u64("18446744073709551615", &u) && u == UINT64_MAX);
  ck_assert(!ctl_parse_u64("18446744073709551616", &u));
  ck_assert(!ctl_parse_u64("-1", &u));
  ck_assert(!ctl_parse_u64(" 1", &u));
  ck_assert(!ctl_parse_u64("1x", &u));

  ck_assert(ctl_parse_number("0.7", 0, 100, &d) && d == 0.7);
  ck_assert(ctl_parse_number("1e1", 0, 100, &d) && d == 10.0);
  ck_assert(ctl_parse_number("100", 0, 100, &d) && d == 100.0);
  ck_assert(ctl_parse_number(".5", 0, 1, &d) && d == 0.5);
  /* Bounds are inclusive; no blanks, names of non-numbers or hex. */
  ck_assert(!ctl_parse_number("100.001", 0, 100, &d));
  ck_assert(!ctl_parse_number("-0.1", 0, 1, &d));
  ck_assert(!ctl_parse_number("nan", 0, 1, &d));
  ck_assert(!ctl_parse_number("inf", 0, 1e9, &d));
  ck_assert(!ctl_parse_number("0x1", 0, 9, &d));
  ck_assert(!ctl_parse_number(" 1", 0, 9, &d));
  ck_assert(!ctl_parse_number("1 ", 0, 9, &d));
  ck_assert(!ctl_parse_number("", 0, 9, &d));
}
END_TEST

START_TEST(test_words) {
  nne_client_padding_t p;
  nne_client_logits_t l;
  ctl_output_t o;
  ck_assert(ctl_parse_padding("left", &p) && p == NNE_CLIENT_PAD_LEFT);
  ck_assert(ctl_parse_padding("none", &p) && p == NNE_CLIENT_PAD_NONE);
  ck_assert(!ctl_parse_padding("LEFT", &p));
  ck_assert(!ctl_parse_padding("PADDING_LEFT", &p));
  ck_assert_str_eq(ctl_padding_name(NNE_CLIENT_PAD_RIGHT), "right");
  ck_assert(ctl_parse_logits("all", &l) && l == NNE_CLIENT_LOGITS_ALL);
  ck_assert(!ctl_parse_logits("some", &l));
  ck_assert_str_eq(ctl_logits_name(NNE_CLIENT_LOGITS_LAST), "last");
  ck_assert(ctl_parse_output("npy", &o) && o == CTL_OUT_NPY);
  ck_assert(ctl_parse_output("json", &o) && o == CTL_OUT_JSON);
  ck_assert(!ctl_parse_output("yaml", &o));
}
END_TEST

/* ---- walking a command's arguments --------------------------------------- */

enum { O_PAD, O_FILE, O_VALUES, O_TOKENS, O_MASK, O_DTYPE, O_PROMPT };
static const ctl_opt_t opts[] = {
    [O_PAD] = {"--pad", NULL, true},
    [O_FILE] = {"--file", "-f", true},
    [O_VALUES] = {"--values", NULL, false},
    [O_TOKENS] = {"--tokens", NULL, true},
    [O_MASK] = {"--mask", NULL, true},
    [O_DTYPE] = {"--dtype", NULL, true},
    [O_PROMPT] = {"--prompt", NULL, true},
    {NULL, NULL, false},
};
static const ctl_cmd_t cmd = {"forward", opts, NULL, false};

START_TEST(test_opt_match) {
  const char *v;
  ck_assert_int_eq(ctl_opt_match(opts, "--pad", &v), O_PAD);
  ck_assert_ptr_null(v);
  ck_assert_int_eq(ctl_opt_match(opts, "--pad=left", &v), O_PAD);
  ck_assert_str_eq(v, "left");
  ck_assert_int_eq(ctl_opt_match(opts, "-f", &v), O_FILE);
  ck_assert_int_eq(ctl_opt_match(opts, "-fx.json", &v), O_FILE);
  ck_assert_str_eq(v, "x.json");
  ck_assert_int_eq(ctl_opt_match(opts, "--file=", &v), O_FILE);
  ck_assert_str_eq(v, "");
  /* No prefixes, no value for a flag, nothing that is not an option. */
  ck_assert_int_eq(ctl_opt_match(opts, "--padding", &v), -1);
  ck_assert_int_eq(ctl_opt_match(opts, "--pa", &v), -1);
  ck_assert_int_eq(ctl_opt_match(opts, "--values=1", &v), -1);
  ck_assert_int_eq(ctl_opt_match(opts, "pad", &v), -1);
  ck_assert_int_eq(ctl_opt_match(opts, "-", &v), -1);
  ck_assert_int_eq(ctl_opt_match(NULL, "--pad", &v), -1);
}
END_TEST

START_TEST(test_walk) {
  char *argv[] = {"m",        "--pad", "left", "--tokens=1,2",   "-fa.json",
                  "--values", "-",     "--",   "--not-an-option"};
  ctl_t c = {.cmd = &cmd};
  ctl_args_t a;
  ctl_args_init(&a, &c, 9, argv);
  ck_assert_int_eq(ctl_args_next(&a), CTL_ARG_POS);
  ck_assert_str_eq(a.arg, "m");
  ck_assert_int_eq(ctl_args_next(&a), O_PAD);
  ck_assert_str_eq(a.typed, "--pad");
  ck_assert_str_eq(a.val, "left");
  ck_assert_int_eq(ctl_args_next(&a), O_TOKENS);
  ck_assert_str_eq(a.typed, "--tokens");
  ck_assert_str_eq(a.val, "1,2");
  ck_assert_int_eq(ctl_args_next(&a), O_FILE);
  ck_assert_str_eq(a.typed, "-f");
  ck_assert_str_eq(a.val, "a.json");
  ck_assert_int_eq(ctl_args_next(&a), O_VALUES);
  ck_assert_ptr_null(a.val);
  ck_assert_int_eq(ctl_args_next(&a), CTL_ARG_POS); /* "-" is a word */
  ck_assert_str_eq(a.arg, "-");
  ck_assert_int_eq(ctl_args_next(&a), CTL_ARG_POS); /* after "--" */
  ck_assert_str_eq(a.arg, "--not-an-option");
  ck_assert_int_eq(ctl_args_next(&a), CTL_ARG_END);
}
END_TEST

START_TEST(test_walk_errors) {
  char *unknown[] = {"--bogus"}, *missing[] = {"--pad"}, *help[] = {"-h"};
  ctl_t c = {.cmd = &cmd};
  ctl_args_t a;
  const char *err;

  ctl_args_init(&a, &c, 1, unknown);
  capture_begin();
  ck_assert_int_eq(ctl_args_next(&a), CTL_ARG_BAD);
  err = capture_end();
  ck_assert_msg(strstr(err, "nneditctl: unknown option '--bogus'\n") == err,
                "%s", err);
  ck_assert_msg(strstr(err, "usage: nneditctl forward MODEL") != NULL, "%s",
                err);
  ck_assert_msg(strstr(err, "Try 'nneditctl forward --help'.") != NULL, "%s",
                err);

  ctl_args_init(&a, &c, 1, missing);
  capture_begin();
  ck_assert_int_eq(ctl_args_next(&a), CTL_ARG_BAD);
  err = capture_end();
  ck_assert_msg(strstr(err, "--pad needs a value") != NULL, "%s", err);

  ctl_args_init(&a, &c, 1, help);
  ck_assert_int_eq(ctl_args_next(&a), CTL_ARG_HELP);
}
END_TEST

/* ---- option values and their messages ------------------------------------ */

/* Parses argv[0..1] (an option and its value) with fn, one of the option
 * parsers; returns its result, and in *err what it printed. */
static int parse(ctl_t *c, char **argv, int (*fn)(ctl_args_t *),
                 const char **err) {
  ctl_args_t a;
  int rc;
  ctl_args_init(&a, c, 2, argv);
  ck_assert_int_ge(ctl_args_next(&a), 0);
  capture_begin();
  rc = fn(&a);
  *err = capture_end();
  return rc;
}
#define PARSE(c, argv, fn) parse((c), (argv), (fn), &err)

static nne_client_padding_t g_pad;
static nne_client_dtype_t g_dtype;
static ctl_rows_t g_rows;
static int pad(ctl_args_t *a) {
  return ctl_arg_padding(a, &g_pad);
}
static int dtype(ctl_args_t *a) {
  return ctl_arg_dtype(a, &g_dtype);
}
static int tokens(ctl_args_t *a) {
  return ctl_arg_tokens(a, &g_rows);
}
static int mask(ctl_args_t *a) {
  return ctl_arg_mask(a, &g_rows);
}
static int prompt(ctl_args_t *a) {
  return ctl_arg_prompt(a, &g_rows);
}

START_TEST(test_values) {
  ctl_t c = {.cmd = &cmd};
  const char *err;
  char *good_pad[] = {"--pad", "right"}, *bad_pad[] = {"--pad=up", "x"};
  char *bad_dtype[] = {"--dtype", "float128"}, *bf[] = {"--dtype", "bf16"};
  char *tok[] = {"--tokens", "5,6,7"}, *bad_tok[] = {"--tokens", "1,x"};
  char *m[] = {"--mask", "1,0"}, *bad_m[] = {"--mask", "1,3000000000"};

  ck_assert_int_eq(PARSE(&c, good_pad, pad), 0);
  ck_assert_int_eq(g_pad, NNE_CLIENT_PAD_RIGHT);
  ck_assert_str_eq(err, "");
  /* Named as typed (--pad, though written --pad=up), the value quoted, the
   * choices in the user's words. */
  ck_assert_int_eq(PARSE(&c, bad_pad, pad), CTL_EXIT_USAGE);
  ck_assert_msg(strstr(err, "nneditctl: --pad 'up': expected none, left or "
                            "right\n") == err,
                "%s", err);
  ck_assert_int_eq(PARSE(&c, bad_dtype, dtype), CTL_EXIT_USAGE);
  ck_assert_msg(strstr(err, "--dtype 'float128': unknown dtype") != NULL, "%s",
                err);
  ck_assert_int_eq(PARSE(&c, bf, dtype), 0);
  ck_assert_int_eq(g_dtype, NNE_CLIENT_DTYPE_BFLOAT16);

  ck_assert_int_eq(ctl_rows_init(&g_rows, &c, 4), 0);
  ck_assert_int_eq(PARSE(&c, tok, tokens), 0);
  ck_assert_int_eq(PARSE(&c, m, mask), 0);
  ck_assert_uint_eq(g_rows.n_ids, 1);
  ck_assert_uint_eq(g_rows.ids[0].n_ids, 3);
  ck_assert(g_rows.ids[0].ids[2] == 7);
  ck_assert_uint_eq(g_rows.n_mask, 1);
  ck_assert(g_rows.mask[0].n_values == 2 && g_rows.mask[0].values[0] == 1);
  ck_assert_int_eq(PARSE(&c, bad_tok, tokens), CTL_EXIT_USAGE);
  ck_assert_msg(strstr(err, "--tokens '1,x': expected a comma-separated") !=
                    NULL,
                "%s", err);
  ck_assert_int_eq(PARSE(&c, bad_m, mask), CTL_EXIT_USAGE);
  ck_assert_msg(strstr(err, "int32") != NULL, "%s", err);
  ck_assert_uint_eq(g_rows.n_ids, 1);
  ctl_rows_free(&g_rows);
}
END_TEST

/* --prompt: a text row among the id rows, in the order given; its text is
 * argv's (nothing to free), and an empty one is refused where typed. */
START_TEST(test_prompt) {
  ctl_t c = {.cmd = &cmd};
  const char *err;
  char *tok[] = {"--tokens", "5,6"}, *p[] = {"--prompt", " Paris\n"};
  char *empty[] = {"--prompt", ""}, *eq[] = {"--prompt=a, b", "x"};

  ck_assert_int_eq(ctl_rows_init(&g_rows, &c, 4), 0);
  ck_assert_int_eq(PARSE(&c, tok, tokens), 0);
  ck_assert_int_eq(PARSE(&c, p, prompt), 0);
  ck_assert_str_eq(err, "");
  ck_assert_int_eq(PARSE(&c, eq, prompt), 0);
  ck_assert_uint_eq(g_rows.n_ids, 3);
  ck_assert_ptr_null(g_rows.ids[0].text);
  ck_assert_uint_eq(g_rows.ids[0].n_ids, 2);
  ck_assert_ptr_eq(g_rows.ids[1].text, p[1]);
  ck_assert_ptr_null(g_rows.ids[1].ids);
  ck_assert_uint_eq(g_rows.ids[1].n_ids, 0);
  /* Commas are text, not separators. */
  ck_assert_str_eq(g_rows.ids[2].text, "a, b");
  ck_assert_int_eq(PARSE(&c, empty, prompt), CTL_EXIT_USAGE);
  ck_assert_msg(strstr(err, "nneditctl: --prompt '': expected text") == err,
                "%s", err);
  ck_assert_uint_eq(g_rows.n_ids, 3);
  ctl_rows_free(&g_rows);
}
END_TEST

/* With -o json, an error is one JSON object on one line. */
START_TEST(test_json_errors) {
  ctl_t c = {.cmd = &cmd, .output = CTL_OUT_JSON};
  char *bad_pad[] = {"--pad", "up"};
  nne_client_err_t e = {NNE_CLIENT_UNAVAILABLE, "cannot connect to x:1"};
  json_error_t jerr;
  const char *err;
  json_t *o;

  ck_assert_int_eq(PARSE(&c, bad_pad, pad), CTL_EXIT_USAGE);
  ck_assert_msg(strchr(err, '\n') == err + strlen(err) - 1, "%s", err);
  o = json_loads(err, 0, &jerr);
  ck_assert_msg(o != NULL, "%s: %s", err, jerr.text);
  ck_assert_str_eq(json_string_value(json_object_get(o, "code")), "USAGE");
  ck_assert_str_eq(json_string_value(json_object_get(o, "message")),
                   "--pad 'up': expected none, left or right");
  ck_assert_msg(strncmp(json_string_value(json_object_get(o, "usage")),
                        "nneditctl forward MODEL", 23) == 0,
                "%s", err);
  json_decref(o);

  /* A failed call: its status name; UNAVAILABLE is exit 3, others 1. */
  capture_begin();
  ck_assert_int_eq(ctl_call_error(&c, &e), CTL_EXIT_UNREACHABLE);
  err = capture_end();
  o = json_loads(err, 0, &jerr);
  ck_assert_msg(o != NULL, "%s: %s", err, jerr.text);
  ck_assert_str_eq(json_string_value(json_object_get(o, "code")),
                   "UNAVAILABLE");
  ck_assert_str_eq(json_string_value(json_object_get(o, "message")),
                   "cannot connect to x:1");
  ck_assert_ptr_null(json_object_get(o, "usage"));
  json_decref(o);
  ck_assert_int_eq(ctl_exit_code(NNE_CLIENT_NOT_FOUND), CTL_EXIT_ERROR);
  ck_assert_int_eq(ctl_exit_code(NNE_CLIENT_DEADLINE_EXCEEDED), CTL_EXIT_ERROR);

  /* In table mode: "nneditctl: STATUS: message". */
  c.output = CTL_OUT_TABLE;
  capture_begin();
  ck_assert_int_eq(ctl_fail(&c, NNE_CLIENT_NOT_FOUND, "no model '%s'", "m"),
                   CTL_EXIT_ERROR);
  err = capture_end();
  ck_assert_str_eq(err, "nneditctl: NOT_FOUND: no model 'm'\n");
}
END_TEST

static Suite *args_suite(void) {
  Suite *s = suite_create("ctl_args");
  TCase *tc = tcase_create("args");
  tcase_add_test(tc, test_int_list);
  tcase_add_test(tc, test_u32_and_seconds);
  tcase_add_test(tc, test_u64_and_number);
  tcase_add_test(tc, test_words);
  tcase_add_test(tc, test_opt_match);
  tcase_add_test(tc, test_walk);
  tcase_add_test(tc, test_walk_errors);
  tcase_add_test(tc, test_values);
  tcase_add_test(tc, test_prompt);
  tcase_add_test(tc, test_json_errors);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(args_suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
