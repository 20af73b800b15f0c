/* capture.h — what a piece of nneditctl writes to stderr, for the unit
 * tests of client/ctl/ (its error messages are part of the contract).
 * Header-only: each test is one executable.
 *
 *   capture_begin();
 *   rc = ctl_arg_padding(&a, &pad);
 *   const char *err = capture_end();   // static buffer, until the next
 */
#ifndef NNE_TEST_CAPTURE_H
#define NNE_TEST_CAPTURE_H

#include <stdio.h>
#include <unistd.h>

static FILE *capture_file;
static int capture_saved = -1;
static char capture_buf[8192];

static void capture_begin(void) {
  fflush(stderr);
  capture_file = tmpfile();
  capture_saved = dup(STDERR_FILENO);
  dup2(fileno(capture_file), STDERR_FILENO);
}

static const char *capture_end(void) {
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

#endif /* NNE_TEST_CAPTURE_H */
