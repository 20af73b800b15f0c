/* log.h — leveled, thread-safe logging to stderr.
 *
 * One line per event: "2026-11-26T17:23:03.123Z nneditd[pid] LEVEL message".
 * Any thread may log; a line is written with one write(2) so lines from
 * different threads never interleave. The level is process-wide.
 */
#ifndef NNE_LOG_H
#define NNE_LOG_H

typedef enum nne_log_level {
  NNE_LOG_DEBUG = 0,
  NNE_LOG_INFO = 1,
  NNE_LOG_WARN = 2,
  NNE_LOG_ERROR = 3,
  NNE_LOG_OFF = 4,
} nne_log_level_t;

void nne_log_set_level(nne_log_level_t level);
nne_log_level_t nne_log_get_level(void);

/* Parses "debug", "info", "warn"/"warning", "error", "off". Returns -1 for an
 * unknown name. */
int nne_log_level_parse(const char *name);

void nne_log(nne_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define nne_log_debug(...) nne_log(NNE_LOG_DEBUG, __VA_ARGS__)
#define nne_log_info(...) nne_log(NNE_LOG_INFO, __VA_ARGS__)
#define nne_log_warn(...) nne_log(NNE_LOG_WARN, __VA_ARGS__)
#define nne_log_error(...) nne_log(NNE_LOG_ERROR, __VA_ARGS__)

#endif /* NNE_LOG_H */
