/* log.h — leveled, thread-safe logging to stderr.
 *
 * One line per event, in one of two formats (process-wide, like the level):
 *   text  "2026-11-26T17:23:03.123Z nneditd[pid] LEVEL message k=v ..."
 *   json  {"time":"2026-11-26T17:23:03.123Z","level":"info","pid":12,
 *          "message":"...", "k":"v", ...}     for log shippers
 * Any thread may log; a line is written with one write(2) so lines from
 * different threads never interleave. Strings are escaped for JSON (control
 * characters, quotes, bytes that are not UTF-8).
 */
#ifndef NNE_LOG_H
#define NNE_LOG_H

#include <stddef.h>

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

typedef enum nne_log_format {
  NNE_LOG_TEXT = 0,
  NNE_LOG_JSON = 1,
} nne_log_format_t;

void nne_log_set_format(nne_log_format_t format);
nne_log_format_t nne_log_get_format(void);
/* "text" or "json"; -1 for anything else. */
int nne_log_format_parse(const char *name);

void nne_log(nne_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A structured field of a log line. A NULL str makes it a number. */
typedef struct nne_log_field {
  const char *key;
  const char *str;
  double num;
} nne_log_field_t;

/* nne_log with fields after the message (text: ` key=value`, values with a
 * space quoted; json: members of the object). */
void nne_log_fields(nne_log_level_t level, const nne_log_field_t *fields,
                    size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define nne_log_debug(...) nne_log(NNE_LOG_DEBUG, __VA_ARGS__)
#define nne_log_info(...) nne_log(NNE_LOG_INFO, __VA_ARGS__)
#define nne_log_warn(...) nne_log(NNE_LOG_WARN, __VA_ARGS__)
#define nne_log_error(...) nne_log(NNE_LOG_ERROR, __VA_ARGS__)

#endif /* NNE_LOG_H */
