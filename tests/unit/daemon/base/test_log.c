/* test_log.c — daemon/base/log.{h,c}: level names, the level filter, the line
 * format, and that one event is one whole line even from many threads.
 *
 * stderr is redirected (dup2 onto STDERR_FILENO) into a temporary file for
 * the duration of each capture, then restored.
 */
#include <check.h>
#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "unit_main.h"

/* ---- capturing stderr ----------------------------------------------------- */

typedef struct capture {
  int saved;
  int fd;
  char path[64];
} capture_t;

static void capture_begin(capture_t *c) {
  snprintf(c->path, sizeof c->path, "/tmp/nne_test_log_XXXXXX");
  c->fd = mkstemp(c->path);
  ck_assert_int_ge(c->fd, 0);
  unlink(c->path);
  fflush(stderr);
  c->saved = dup(STDERR_FILENO);
  ck_assert_int_ge(c->saved, 0);
  ck_assert_int_ge(dup2(c->fd, STDERR_FILENO), 0);
}

/* Restores stderr and returns what was written (malloc'd, NUL-terminated). */
static char *capture_end(capture_t *c, size_t *len_out) {
  off_t end;
  char *buf;
  ssize_t k;
  size_t got = 0;

  ck_assert_int_ge(dup2(c->saved, STDERR_FILENO), 0);
  close(c->saved);
  end = lseek(c->fd, 0, SEEK_END);
  ck_assert_int_ge(end, 0);
  buf = malloc((size_t)end + 1);
  ck_assert_ptr_nonnull(buf);
  while (got < (size_t)end) {
    k = pread(c->fd, buf + got, (size_t)end - got, (off_t)got);
    ck_assert_int_gt(k, 0);
    got += (size_t)k;
  }
  buf[got] = '\0';
  close(c->fd);
  if (len_out)
    *len_out = got;
  return buf;
}

static size_t count_lines(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    if (*s == '\n')
      n++;
  return n;
}

/* Checks "YYYY-MM-DDTHH:MM:SS.mmmZ nneditd[pid] LEVEL message" for one line
 * (without its '\n') and returns a pointer to the message. */
static const char *check_line(const char *line, size_t len, const char *tag) {
  static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ ";
  char head[64];
  size_t i;
  const char *p;
  int k;

  ck_assert_uint_gt(len, sizeof shape);
  for (i = 0; i < sizeof shape - 1; i++) {
    if (shape[i] == 'd')
      ck_assert_msg(isdigit((unsigned char)line[i]), "line '%.*s': col %zu",
                    (int)len, line, i);
    else
      ck_assert_msg(line[i] == shape[i], "line '%.*s': col %zu", (int)len,
                    line, i);
  }
  k = snprintf(head, sizeof head, "nneditd[%d] %-5s ", (int)getpid(), tag);
  ck_assert_int_gt(k, 0);
  p = line + sizeof shape - 1;
  ck_assert_msg(strncmp(p, head, (size_t)k) == 0, "line '%.*s' lacks '%s'",
                (int)len, line, head);
  return p + k;
}

static void setup(void) { nne_log_set_level(NNE_LOG_INFO); }

/* ---- tests ---------------------------------------------------------------- */

START_TEST(test_level_parse) {
  ck_assert_int_eq(nne_log_level_parse("debug"), NNE_LOG_DEBUG);
  ck_assert_int_eq(nne_log_level_parse("DEBUG"), NNE_LOG_DEBUG);
  ck_assert_int_eq(nne_log_level_parse("info"), NNE_LOG_INFO);
  ck_assert_int_eq(nne_log_level_parse("Info"), NNE_LOG_INFO);
  ck_assert_int_eq(nne_log_level_parse("warn"), NNE_LOG_WARN);
  ck_assert_int_eq(nne_log_level_parse("warning"), NNE_LOG_WARN);
  ck_assert_int_eq(nne_log_level_parse("WaRnInG"), NNE_LOG_WARN);
  ck_assert_int_eq(nne_log_level_parse("error"), NNE_LOG_ERROR);
  ck_assert_int_eq(nne_log_level_parse("ERROR"), NNE_LOG_ERROR);
  ck_assert_int_eq(nne_log_level_parse("off"), NNE_LOG_OFF);
  ck_assert_int_eq(nne_log_level_parse("OFF"), NNE_LOG_OFF);

  ck_assert_int_eq(nne_log_level_parse(""), -1);
  ck_assert_int_eq(nne_log_level_parse("verbose"), -1);
  ck_assert_int_eq(nne_log_level_parse("inf"), -1);
  ck_assert_int_eq(nne_log_level_parse("debugx"), -1);
  ck_assert_int_eq(nne_log_level_parse(" info"), -1);
  ck_assert_int_eq(nne_log_level_parse("2"), -1);
}
END_TEST

START_TEST(test_set_get_level) {
  ck_assert_int_eq(nne_log_get_level(), NNE_LOG_INFO); /* setup */
  nne_log_set_level(NNE_LOG_ERROR);
  ck_assert_int_eq(nne_log_get_level(), NNE_LOG_ERROR);
  nne_log_set_level(NNE_LOG_DEBUG);
  ck_assert_int_eq(nne_log_get_level(), NNE_LOG_DEBUG);
}
END_TEST

START_TEST(test_filter_below_level) {
  capture_t c;
  char *out, *nl;
  size_t len;
  const char *msg;

  nne_log_set_level(NNE_LOG_WARN);
  capture_begin(&c);
  nne_log_debug("hidden-debug %d", 1);
  nne_log_info("hidden-info %d", 2);
  nne_log_warn("shown-warn %d", 3);
  nne_log_error("shown-error %s", "four");
  out = capture_end(&c, &len);

  ck_assert_msg(strstr(out, "hidden") == NULL, "below-level line written: %s",
                out);
  ck_assert_uint_eq(count_lines(out), 2);
  ck_assert_int_eq(out[len - 1], '\n');
  nl = strchr(out, '\n');
  msg = check_line(out, (size_t)(nl - out), "WARN");
  ck_assert(strncmp(msg, "shown-warn 3\n", 13) == 0);
  msg = check_line(nl + 1, strlen(nl + 1) - 1, "ERROR");
  ck_assert_str_eq(msg, "shown-error four\n");
  free(out);
}
END_TEST

START_TEST(test_debug_level_writes_all) {
  capture_t c;
  char *out;
  nne_log_set_level(NNE_LOG_DEBUG);
  capture_begin(&c);
  nne_log_debug("d");
  nne_log_info("i");
  nne_log_warn("w");
  nne_log_error("e");
  out = capture_end(&c, NULL);
  ck_assert_uint_eq(count_lines(out), 4);
  ck_assert_ptr_nonnull(strstr(out, " DEBUG d\n"));
  ck_assert_ptr_nonnull(strstr(out, " INFO  i\n"));
  ck_assert_ptr_nonnull(strstr(out, " WARN  w\n"));
  ck_assert_ptr_nonnull(strstr(out, " ERROR e\n"));
  free(out);
}
END_TEST

START_TEST(test_off_writes_nothing) {
  capture_t c;
  size_t len;
  char *out;
  nne_log_set_level(NNE_LOG_OFF);
  capture_begin(&c);
  nne_log_error("nope");
  nne_log_warn("nope");
  /* Logging "at" OFF is not a level of its own: nothing is written. */
  nne_log(NNE_LOG_OFF, "nope");
  out = capture_end(&c, &len);
  ck_assert_uint_eq(len, 0);
  free(out);

  /* At INFO, an event with level OFF is still not written. */
  nne_log_set_level(NNE_LOG_INFO);
  capture_begin(&c);
  nne_log(NNE_LOG_OFF, "nope");
  out = capture_end(&c, &len);
  ck_assert_uint_eq(len, 0);
  free(out);
}
END_TEST

START_TEST(test_json_lines_escape_what_they_carry) {
  /* A quote, a backslash, a newline, a control byte and bytes that are not
   * UTF-8 (a lone 0xff, a cut 3-byte sequence) in the message and in a
   * field: one line, valid JSON, the bad bytes as U+FFFD; numbers bare;
   * text format unchanged after. */
  static const char bad[] = "q\"b\\n\nc\x01 \xff \xe2\x82 \xc3\xa9";
  nne_log_field_t f[2] = {{"model", bad, 0}, {"duration_ms", NULL, 1.5}};
  capture_t c;
  char *out;
  size_t len;
  capture_begin(&c);
  nne_log_set_format(NNE_LOG_JSON);
  nne_log_fields(NNE_LOG_ERROR, f, 2, "m %s", bad);
  nne_log_set_format(NNE_LOG_TEXT);
  nne_log_error("plain");
  out = capture_end(&c, &len);
  ck_assert_uint_eq(count_lines(out), 2);
  ck_assert_ptr_nonnull(strstr(
      out, "\"message\":\"m q\\\"b\\\\n\\nc\\u0001 \\ufffd "
           "\\ufffd\\ufffd \xc3\xa9\""));
  ck_assert_ptr_nonnull(strstr(
      out, "\"model\":\"q\\\"b\\\\n\\nc\\u0001 \\ufffd "
           "\\ufffd\\ufffd \xc3\xa9\",\"duration_ms\":1.5}\n"));
  ck_assert_ptr_nonnull(strstr(out, "\"level\":\"error\""));
  ck_assert_ptr_nonnull(strstr(out, " ERROR plain\n"));
  free(out);
}
END_TEST

START_TEST(test_long_message_is_one_bounded_line) {
  capture_t c;
  char *big, *out;
  size_t len;
  big = malloc(10001);
  ck_assert_ptr_nonnull(big);
  memset(big, 'q', 10000);
  big[10000] = '\0';
  capture_begin(&c);
  nne_log_error("%s", big);
  nne_log_error("after");
  out = capture_end(&c, &len);
  ck_assert_uint_eq(count_lines(out), 2);
  {
    char *nl = strchr(out, '\n');
    size_t first = (size_t)(nl - out) + 1;
    ck_assert_uint_le(first, 4096);
    ck_assert_uint_gt(first, 4000); /* truncated, not dropped */
    ck_assert_ptr_nonnull(strstr(nl + 1, " ERROR after\n"));
  }
  free(out);
  free(big);
}
END_TEST

#define N_THREADS 4
#define N_PER_THREAD 300

static void *log_thread(void *arg) {
  int t = (int)(intptr_t)arg, i;
  for (i = 0; i < N_PER_THREAD; i++)
    nne_log_info("thread %d line %d %s", t, i,
                 "padding-padding-padding-padding-padding-padding");
  return NULL;
}

START_TEST(test_threads_lines_stay_whole) {
  capture_t c;
  pthread_t th[N_THREADS];
  char *out, *line, *save = NULL;
  int seen[N_THREADS] = {0};
  int i;
  size_t n = 0;

  capture_begin(&c);
  for (i = 0; i < N_THREADS; i++)
    ck_assert_int_eq(
        pthread_create(&th[i], NULL, log_thread, (void *)(intptr_t)i), 0);
  for (i = 0; i < N_THREADS; i++)
    pthread_join(th[i], NULL);
  out = capture_end(&c, NULL);

  for (line = strtok_r(out, "\n", &save); line != NULL;
       line = strtok_r(NULL, "\n", &save)) {
    int t, k;
    char pad[64];
    const char *msg = check_line(line, strlen(line), "INFO");
    ck_assert_msg(sscanf(msg, "thread %d line %d %63s", &t, &k, pad) == 3,
                  "mangled line '%s'", line);
    ck_assert_int_ge(t, 0);
    ck_assert_int_lt(t, N_THREADS);
    /* Each thread's lines arrive in its own order. */
    ck_assert_int_eq(k, seen[t]);
    seen[t]++;
    ck_assert_str_eq(pad, "padding-padding-padding-padding-padding-padding");
    n++;
  }
  ck_assert_uint_eq(n, N_THREADS * N_PER_THREAD);
  free(out);
}
END_TEST

static Suite *log_suite(void) {
  Suite *s = suite_create("log");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, test_level_parse);
  tcase_add_test(tc, test_set_get_level);
  tcase_add_test(tc, test_filter_below_level);
  tcase_add_test(tc, test_debug_level_writes_all);
  tcase_add_test(tc, test_off_writes_nothing);
  tcase_add_test(tc, test_long_message_is_one_bounded_line);
  tcase_add_test(tc, test_json_lines_escape_what_they_carry);
  tcase_add_test(tc, test_threads_lines_stay_whole);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nne_test_run_suite(log_suite()); }
