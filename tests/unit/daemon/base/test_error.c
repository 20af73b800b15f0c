/* test_error.c — daemon/base/error.{h,c}: the code table, its gRPC mapping,
 * and the message helpers (formatting, prefixing, truncation at
 * NNE_ERR_MSG_MAX).
 *
 * The expected gRPC statuses come from grpc/status.h, not from a copy of
 * error.h's table, so a wrong number in the table fails here.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/status.h>

#include "base/error.h"
#include "unit_main.h"

/* The documented mapping, stated with grpc's own names. */
static const struct {
  int code;
  grpc_status_code status;
  const char *desc;
} expected[] = {
    {NNE_EINVAL, GRPC_STATUS_INVALID_ARGUMENT, "invalid argument"},
    {NNE_ENOTFOUND, GRPC_STATUS_NOT_FOUND, "not found"},
    {NNE_EEXIST, GRPC_STATUS_ALREADY_EXISTS, "already exists"},
    {NNE_ERESOURCE, GRPC_STATUS_RESOURCE_EXHAUSTED, "resource exhausted"},
    {NNE_ESTATE, GRPC_STATUS_FAILED_PRECONDITION, "failed precondition"},
    {NNE_EUNAVAIL, GRPC_STATUS_UNAVAILABLE, "unavailable"},
    {NNE_ECANCELED, GRPC_STATUS_CANCELLED, "cancelled"},
    {NNE_EDEADLINE, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded"},
    {NNE_EUNIMPL, GRPC_STATUS_UNIMPLEMENTED, "unimplemented"},
    {NNE_ENOMEM, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory"},
    {NNE_EIO, GRPC_STATUS_INTERNAL, "i/o error"},
    {NNE_EINTERNAL, GRPC_STATUS_INTERNAL, "internal error"},
    {NNE_EOUTOFRANGE, GRPC_STATUS_OUT_OF_RANGE, "out of range"},
    {NNE_EUNAUTH, GRPC_STATUS_UNAUTHENTICATED, "unauthenticated"},
    {NNE_EPERM, GRPC_STATUS_PERMISSION_DENIED, "permission denied"},
};
#define N_EXPECTED (sizeof expected / sizeof expected[0])

/* Every code the X-macro table defines. */
#define AS_VALUE(name, val, status, desc) NNE_##name,
static const int table_codes[] = {NNE_ERRNO_MAP(AS_VALUE)};
#undef AS_VALUE
#define N_TABLE (sizeof table_codes / sizeof table_codes[0])

START_TEST(test_every_code_maps_to_documented_status) {
  size_t i;
  for (i = 0; i < N_EXPECTED; i++)
    ck_assert_msg(nne_err_grpc_status(expected[i].code) ==
                      (int)expected[i].status,
                  "code %d (%s) maps to status %d, expected %d",
                  expected[i].code, expected[i].desc,
                  nne_err_grpc_status(expected[i].code),
                  (int)expected[i].status);
  ck_assert_int_eq(nne_err_grpc_status(NNE_OK), GRPC_STATUS_OK);
}
END_TEST

START_TEST(test_table_is_exactly_the_documented_codes) {
  size_t i, j;
  /* Every code in the table is in the documented list and vice versa, and
   * the codes are distinct and negative (0 is success). */
  ck_assert_uint_eq(N_TABLE, N_EXPECTED);
  for (i = 0; i < N_TABLE; i++) {
    int found = 0;
    ck_assert_int_lt(table_codes[i], 0);
    for (j = 0; j < N_TABLE; j++)
      if (j != i)
        ck_assert_int_ne(table_codes[i], table_codes[j]);
    for (j = 0; j < N_EXPECTED; j++)
      if (expected[j].code == table_codes[i])
        found = 1;
    ck_assert_msg(found, "code %d is not documented", table_codes[i]);
  }
}
END_TEST

START_TEST(test_unknown_codes_are_unknown_status) {
  static const int odd[] = {1, 7, -16, -100, -2147483647 - 1, 2147483647};
  size_t i;
  for (i = 0; i < sizeof odd / sizeof odd[0]; i++)
    ck_assert_int_eq(nne_err_grpc_status(odd[i]), GRPC_STATUS_UNKNOWN);
}
END_TEST

START_TEST(test_strerror_never_null) {
  int code;
  size_t i;
  for (code = -64; code <= 64; code++) {
    const char *s = nne_strerror(code);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_gt(strlen(s), 0);
  }
  ck_assert_ptr_nonnull(nne_strerror(-2147483647 - 1));
  ck_assert_ptr_nonnull(nne_strerror(2147483647));
  ck_assert_str_eq(nne_strerror(NNE_OK), "ok");
  ck_assert_str_eq(nne_strerror(-999), "unknown error");
  for (i = 0; i < N_EXPECTED; i++)
    ck_assert_str_eq(nne_strerror(expected[i].code), expected[i].desc);
}
END_TEST

START_TEST(test_err_set_formats_and_returns_code) {
  nne_err_t err;
  int rc;

  memset(&err, 0x5a, sizeof err);
  rc = nne_err_set(&err, NNE_ENOTFOUND, "model '%s' has %d layers", "gpt2", 12);
  ck_assert_int_eq(rc, NNE_ENOTFOUND);
  ck_assert_int_eq(err.code, NNE_ENOTFOUND);
  ck_assert_str_eq(err.msg, "model 'gpt2' has 12 layers");

  /* A NULL err is allowed: only the code comes back. */
  ck_assert_int_eq(nne_err_set(NULL, NNE_EIO, "x %d", 1), NNE_EIO);

  /* A later set replaces the earlier message entirely. */
  nne_err_set(&err, NNE_EINVAL, "%s", "short");
  ck_assert_str_eq(err.msg, "short");
  ck_assert_int_eq(err.code, NNE_EINVAL);
}
END_TEST

/* An nne_err_t with guard bytes on both sides, to catch writes out of it. */
typedef struct guarded {
  unsigned char before[64];
  nne_err_t err;
  unsigned char after[64];
} guarded_t;

static void guard_init(guarded_t *g) {
  memset(g, 0xa5, sizeof *g);
}

static void guard_check(const guarded_t *g) {
  size_t i;
  for (i = 0; i < sizeof g->before; i++)
    ck_assert_msg(g->before[i] == 0xa5, "byte %zu before the error clobbered",
                  i);
  for (i = 0; i < sizeof g->after; i++)
    ck_assert_msg(g->after[i] == 0xa5, "byte %zu after the error clobbered",
                  i);
}

START_TEST(test_err_set_truncates_long_message) {
  guarded_t g;
  char *big = malloc(3000);
  ck_assert_ptr_nonnull(big);
  memset(big, 'x', 2999);
  big[2999] = '\0';
  guard_init(&g);
  ck_assert_int_eq(nne_err_set(&g.err, NNE_EINVAL, "%s", big), NNE_EINVAL);
  ck_assert_uint_eq(strlen(g.err.msg), NNE_ERR_MSG_MAX - 1);
  ck_assert_int_eq(g.err.msg[NNE_ERR_MSG_MAX - 1], '\0');
  guard_check(&g);
  free(big);
}
END_TEST

START_TEST(test_err_prefix_prepends) {
  nne_err_t err;
  nne_err_set(&err, NNE_EINVAL, "token id 70000 is outside the vocabulary");
  nne_err_prefix(&err, "input_ids[%d][%d]", 1, 4);
  ck_assert_str_eq(err.msg,
                   "input_ids[1][4]: token id 70000 is outside the vocabulary");
  ck_assert_int_eq(err.code, NNE_EINVAL); /* the code is left alone */
  nne_err_prefix(&err, "Forward");
  ck_assert_str_eq(err.msg, "Forward: input_ids[1][4]: token id 70000 is "
                            "outside the vocabulary");

  /* An empty message gets just the prefix. */
  nne_err_set(&err, NNE_EIO, "%s", "");
  nne_err_prefix(&err, "ctx");
  ck_assert_str_eq(err.msg, "ctx: ");

  /* NULL is ignored. */
  nne_err_prefix(NULL, "nothing %d", 1);
}
END_TEST

START_TEST(test_err_prefix_truncates_2000_char_message) {
  guarded_t g;
  char *big = malloc(2001);
  size_t i, len;
  ck_assert_ptr_nonnull(big);
  for (i = 0; i < 2000; i++)
    big[i] = (char)('a' + i % 26);
  big[2000] = '\0';

  guard_init(&g);
  nne_err_set(&g.err, NNE_EINVAL, "%s", big);
  nne_err_prefix(&g.err, "model '%s'", "gpt2");
  len = strnlen(g.err.msg, sizeof g.err.msg);
  ck_assert_msg(len < sizeof g.err.msg, "message is not NUL-terminated");
  ck_assert_uint_eq(len, NNE_ERR_MSG_MAX - 1);
  ck_assert(strncmp(g.err.msg, "model 'gpt2': ", 14) == 0);
  /* What follows the prefix is the head of the old message. */
  ck_assert(memcmp(g.err.msg + 14, big, len - 14) == 0);
  guard_check(&g);

  /* Prefixing again, many times, never overflows. */
  for (i = 0; i < 50; i++)
    nne_err_prefix(&g.err, "level %zu", i);
  ck_assert_uint_eq(strnlen(g.err.msg, sizeof g.err.msg), NNE_ERR_MSG_MAX - 1);
  ck_assert(strncmp(g.err.msg, "level 49: level 48: ", 20) == 0);
  guard_check(&g);
  free(big);
}
END_TEST

START_TEST(test_err_prefix_long_prefix_is_bounded) {
  guarded_t g;
  char *p = malloc(2001);
  size_t len;
  ck_assert_ptr_nonnull(p);
  memset(p, 'P', 2000);
  p[2000] = '\0';

  guard_init(&g);
  nne_err_set(&g.err, NNE_EIO, "tail");
  nne_err_prefix(&g.err, "%s", p);
  len = strnlen(g.err.msg, sizeof g.err.msg);
  ck_assert_uint_lt(len, sizeof g.err.msg);
  /* The prefix is cut but the separator and the old message survive. */
  ck_assert_msg(len >= 6 && strcmp(g.err.msg + len - 6, ": tail") == 0,
                "got '%s'", g.err.msg + (len > 40 ? len - 40 : 0));
  ck_assert_int_eq(g.err.msg[0], 'P');
  guard_check(&g);

  /* A full-length message and a long prefix together. */
  memset(g.err.msg, 'm', sizeof g.err.msg - 1);
  g.err.msg[sizeof g.err.msg - 1] = '\0';
  nne_err_prefix(&g.err, "%s", p);
  len = strnlen(g.err.msg, sizeof g.err.msg);
  ck_assert_uint_eq(len, NNE_ERR_MSG_MAX - 1);
  ck_assert_int_eq(g.err.msg[len - 1], 'm');
  guard_check(&g);
  free(p);
}
END_TEST

START_TEST(test_err_prefix_unterminated_message_is_safe) {
  /* A buffer whose message lost its NUL (should never happen, but the
   * prefix code bounds its read with strnlen): result stays in bounds. */
  guarded_t g;
  guard_init(&g);
  memset(g.err.msg, 'z', sizeof g.err.msg);
  nne_err_prefix(&g.err, "p");
  ck_assert_uint_eq(strnlen(g.err.msg, sizeof g.err.msg), NNE_ERR_MSG_MAX - 1);
  ck_assert(strncmp(g.err.msg, "p: zzz", 6) == 0);
  guard_check(&g);
}
END_TEST

static Suite *error_suite(void) {
  Suite *s = suite_create("error");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_every_code_maps_to_documented_status);
  tcase_add_test(tc, test_table_is_exactly_the_documented_codes);
  tcase_add_test(tc, test_unknown_codes_are_unknown_status);
  tcase_add_test(tc, test_strerror_never_null);
  tcase_add_test(tc, test_err_set_formats_and_returns_code);
  tcase_add_test(tc, test_err_set_truncates_long_message);
  tcase_add_test(tc, test_err_prefix_prepends);
  tcase_add_test(tc, test_err_prefix_truncates_2000_char_message);
  tcase_add_test(tc, test_err_prefix_long_prefix_is_bounded);
  tcase_add_test(tc, test_err_prefix_unterminated_message_is_safe);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nne_test_run_suite(error_suite()); }
