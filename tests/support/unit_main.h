/* unit_main.h — the main() of a unit test, written once:
 *
 *   int main(void) { return nne_test_run_suite(arena_suite()); }
 *
 * Runs every test of the suite (check forks each one, so a crash fails that
 * test, not the run) and gives the process's exit status: EXIT_SUCCESS when
 * none failed. Header only; the suite is freed with its runner.
 */
#ifndef NNE_TEST_UNIT_MAIN_H
#define NNE_TEST_UNIT_MAIN_H

#include <check.h>
#include <stdlib.h>

static inline int nne_test_run_suite(Suite *s) {
  SRunner *sr = srunner_create(s);
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif /* NNE_TEST_UNIT_MAIN_H */
