/* log.c — see log.h. */
#include "base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = NNE_LOG_INFO;

void nne_log_set_level(nne_log_level_t level) { atomic_store(&log_level, level); }

nne_log_level_t nne_log_get_level(void) { return atomic_load(&log_level); }

int nne_log_level_parse(const char *name) {
  static const struct {
    const char *name;
    nne_log_level_t level;
  } names[] = {{"debug", NNE_LOG_DEBUG}, {"info", NNE_LOG_INFO},
               {"warn", NNE_LOG_WARN},   {"warning", NNE_LOG_WARN},
               {"error", NNE_LOG_ERROR}, {"off", NNE_LOG_OFF}};
  size_t i;
  for (i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcasecmp(name, names[i].name) == 0)
      return (int)names[i].level;
  return -1;
}

void nne_log(nne_log_level_t level, const char *fmt, ...) {
  static const char *const tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  char line[4096];
  struct timeval tv;
  struct tm tm;
  size_t n;
  int k;
  va_list ap;

  if ((int)level < atomic_load(&log_level) || level >= NNE_LOG_OFF)
    return;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
  k = snprintf(line + n, sizeof line - n, ".%03ldZ nneditd[%d] %-5s ",
               (long)(tv.tv_usec / 1000), (int)getpid(), tags[level]);
  if (k > 0)
    n += (size_t)k;
  va_start(ap, fmt);
  k = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
  va_end(ap);
  if (k > 0)
    n = n + (size_t)k < sizeof line - 1 ? n + (size_t)k : sizeof line - 2;
  line[n++] = '\n';
  /* One write per line: lines from concurrent threads stay whole. */
  if (write(STDERR_FILENO, line, n) < 0) {
    /* Nothing sensible to do when stderr is gone. */
  }
}
