/* ctl_test.h — what the unit tests of client/ctl/ share. Header-only:
 * each test is one executable.
 *
 * What a piece of nneditctl writes to stderr (its error messages are part
 * of the contract):
 *
 *   capture_begin();
 *   rc = ctl_arg_padding(&a, &pad);
 *   const char *err = capture_end();   // static buffer, until the next
 *
 * Files to read, in a directory made for each test (a checked fixture):
 *
 *   tcase_add_checked_fixture(tc, tmpdir_setup, tmpdir_teardown);
 *   const char *path = put("e.json", "{...}");   // g_dir/e.json
 */
#ifndef NNE_TEST_CTL_TEST_H
#define NNE_TEST_CTL_TEST_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static FILE *capture_file;
static int capture_saved = -1;
static char capture_buf[8192];

static inline void capture_begin(void) {
  fflush(stderr);
  capture_file = tmpfile();
  capture_saved = dup(STDERR_FILENO);
  dup2(fileno(capture_file), STDERR_FILENO);
}

static inline const char *capture_end(void) {
  size_t n;
  fflush(stderr);
  dup2(capture_saved, STDERR_FILENO);
  close(capture_saved);
  rewind(capture_file);
  n = fread(capture_buf, 1, sizeof capture_buf - 1, capture_file);
  capture_buf[n] = '\0';
  fclose(capture_file);
  return capture_buf;
}

static char g_dir[64];

static inline void tmpdir_setup(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/nnedit-ctl-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static inline void tmpdir_teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  ck_assert_int_eq(system(cmd), 0);
}

/* Writes text to g_dir/name; returns the path (static buffer). */
static inline const char *put(const char *name, const char *text) {
  static char path[256];
  FILE *f;
  snprintf(path, sizeof path, "%s/%s", g_dir, name);
  f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
  return path;
}

#endif /* NNE_TEST_CTL_TEST_H */
