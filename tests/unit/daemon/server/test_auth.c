/* test_auth.c — daemon/server/auth.c: the token file's grammar (roles,
 * comments, blank lines, bounds, errors naming the line and never the
 * token) and the verdict for a call (missing, malformed, unknown, known
 * without the role, known with it; several entries for one token add up
 * their roles). The comparison's constant time is a property of the code,
 * not something a test can time; its results are checked here. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "server/auth.h"
#include "unit_main.h"

#define T_INFER "infer-token-0123456789"
#define T_EDIT "edit-token-0123456789a"
#define T_BOTH "both-token-0123456789a"

static const char *const good =
    "# roles  token\n"
    "\n"
    "infer " T_INFER "\n"
    "  edit\t" T_EDIT "  \r\n"
    "edit,infer " T_BOTH "\n"
    "admin " T_BOTH "\n"; /* the same token twice: roles add up */

static int check(const nne_auth_t *a, unsigned role, const char *authz,
                 nne_err_t *err) {
  return nne_auth_check(a, role, "Edits/Apply", authz,
                        authz ? strlen(authz) : 0, err);
}

START_TEST(test_parse_and_check) {
  nne_auth_t a;
  nne_err_t err;
  nne_auth_init(&a);
  ck_assert_int_eq(nne_auth_parse(&a, good, strlen(good), "tokens", &err), 0);
  ck_assert_uint_eq(a.n, 4);
  /* no role needed: no token needed */
  ck_assert_int_eq(check(&a, NNE_ROLE_NONE, NULL, &err), 0);
  ck_assert_int_eq(check(&a, NNE_ROLE_EDIT, NULL, &err), NNE_EUNAUTH);
  ck_assert_ptr_nonnull(strstr(err.msg, "Edits/Apply needs a bearer token"));
  ck_assert_int_eq(check(&a, NNE_ROLE_EDIT, "Basic " T_EDIT, &err),
                   NNE_EUNAUTH);
  ck_assert_ptr_null(strstr(err.msg, T_EDIT));
  ck_assert_int_eq(
      check(&a, NNE_ROLE_EDIT, "Bearer nope-0123456789abcdef", &err),
      NNE_EUNAUTH);
  ck_assert_ptr_null(strstr(err.msg, "nope"));
  /* a prefix or an extension of a token is not the token */
  ck_assert_int_eq(
      check(&a, NNE_ROLE_INFER, "Bearer infer-token-012345678", &err),
      NNE_EUNAUTH);
  ck_assert_int_eq(check(&a, NNE_ROLE_INFER, "Bearer " T_INFER "x", &err),
                   NNE_EUNAUTH);
  ck_assert_int_eq(check(&a, NNE_ROLE_INFER, "Bearer " T_INFER, &err), 0);
  ck_assert_int_eq(check(&a, NNE_ROLE_INFER, "bearer " T_INFER, &err), 0);
  ck_assert_int_eq(check(&a, NNE_ROLE_EDIT, "Bearer " T_INFER, &err),
                   NNE_EPERM);
  ck_assert_str_eq(err.msg,
                   "Edits/Apply needs the role 'edit'; the token has 'infer'");
  ck_assert_int_eq(check(&a, NNE_ROLE_EDIT, "Bearer " T_EDIT, &err), 0);
  ck_assert_int_eq(check(&a, NNE_ROLE_ADMIN, "Bearer " T_EDIT, &err),
                   NNE_EPERM);
  /* two lines for one token: infer, edit and admin */
  ck_assert_int_eq(check(&a, NNE_ROLE_ADMIN, "Bearer " T_BOTH, &err), 0);
  ck_assert_int_eq(check(&a, NNE_ROLE_INFER, "Bearer " T_BOTH, &err), 0);
  nne_auth_free(&a);
  ck_assert_uint_eq(a.n, 0);
}
END_TEST

START_TEST(test_all_role) {
  static const char text[] = "all " T_INFER "\n";
  nne_auth_t a;
  nne_err_t err;
  char buf[32];
  nne_auth_init(&a);
  ck_assert_int_eq(nne_auth_parse(&a, text, strlen(text), "t", &err), 0);
  ck_assert_uint_eq(a.v[0].roles, NNE_ROLE_ALL);
  nne_auth_roles_name(a.v[0].roles, buf, sizeof buf);
  ck_assert_str_eq(buf, "infer,edit,admin");
  nne_auth_roles_name(0, buf, sizeof buf);
  ck_assert_str_eq(buf, "none");
  nne_auth_free(&a);
}
END_TEST

START_TEST(test_errors_name_the_line_not_the_token) {
  static const struct {
    const char *text, *needle;
  } bad[] = {
      {"infer " T_INFER "\ninfr " T_EDIT "\n", "t:2: 'infr' is not a list"},
      {"infer,\t" T_INFER "\n", "t:1: 'infer,' is not a list"},
      {"infer\n", "t:1: expected 'ROLES TOKEN'"},
      {"infer " T_INFER " extra\n", "t:1: expected 'ROLES TOKEN'"},
      {"# c\n\nadmin short-secret\n", "t:3: a token has 16 to 4096"},
      {"# only comments\n", "t: no tokens"},
  };
  size_t i;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    nne_auth_t a;
    nne_err_t err;
    nne_auth_init(&a);
    ck_assert_int_eq(
        nne_auth_parse(&a, bad[i].text, strlen(bad[i].text), "t", &err),
        NNE_EINVAL);
    ck_assert_msg(strstr(err.msg, bad[i].needle) != NULL, "%zu: %s", i,
                  err.msg);
    ck_assert_ptr_null(strstr(err.msg, T_INFER));
    ck_assert_ptr_null(strstr(err.msg, T_EDIT));
    ck_assert_ptr_null(strstr(err.msg, "short-secret"));
    ck_assert_uint_eq(a.n, 0); /* nothing half-loaded */
  }
}
END_TEST

START_TEST(test_load_missing_file) {
  nne_auth_t a;
  nne_err_t err;
  nne_auth_init(&a);
  ck_assert_int_eq(nne_auth_load(&a, "/nonexistent/tokens", &err), NNE_EIO);
  ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/tokens"));
}
END_TEST

static Suite *auth_suite(void) {
  Suite *s = suite_create("auth");
  TCase *tc = tcase_create("auth");
  tcase_add_test(tc, test_parse_and_check);
  tcase_add_test(tc, test_all_role);
  tcase_add_test(tc, test_errors_name_the_line_not_the_token);
  tcase_add_test(tc, test_load_missing_file);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return nne_test_run_suite(auth_suite());
}
