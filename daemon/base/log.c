/* log.c — see log.h. */
#include "base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
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

static atomic_int log_format = NNE_LOG_TEXT;

void nne_log_set_format(nne_log_format_t format) {
  atomic_store(&log_format, format);
}

nne_log_format_t nne_log_get_format(void) {
  return (nne_log_format_t)atomic_load(&log_format);
}

int nne_log_format_parse(const char *name) {
  if (strcasecmp(name, "text") == 0)
    return NNE_LOG_TEXT;
  if (strcasecmp(name, "json") == 0)
    return NNE_LOG_JSON;
  return -1;
}

/* A bounded line: appends are cut at the end, never overrun. */
typedef struct line {
  char buf[4096]; /* the bound of one line, newline included */
  size_t n;
} line_t;

static void put(line_t *l, const char *s, size_t n) {
  size_t room = sizeof l->buf - 2 - l->n; /* keep room for "\n" */
  if (n > room)
    n = room;
  memcpy(l->buf + l->n, s, n);
  l->n += n;
}

static void puts_(line_t *l, const char *s) { put(l, s, strlen(s)); }

/* Length of a valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  size_t len, i;
  if (s[0] < 0x80)
    return 1;
  if ((s[0] & 0xe0) == 0xc0 && s[0] >= 0xc2)
    len = 2;
  else if ((s[0] & 0xf0) == 0xe0)
    len = 3;
  else if ((s[0] & 0xf8) == 0xf0 && s[0] <= 0xf4)
    len = 4;
  else
    return 0;
  if (len > n)
    return 0;
  for (i = 1; i < len; i++)
    if ((s[i] & 0xc0) != 0x80)
      return 0;
  return len;
}

/* s as a JSON string (with the quotes). */
static void put_json_str(line_t *l, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s), i = 0;
  char esc[8];
  puts_(l, "\"");
  while (i < n) {
    size_t k;
    if (p[i] == '"' || p[i] == '\\') {
      esc[0] = '\\';
      esc[1] = (char)p[i];
      put(l, esc, 2);
      i++;
    } else if (p[i] == '\n' || p[i] == '\t' || p[i] == '\r') {
      esc[0] = '\\';
      esc[1] = p[i] == '\n' ? 'n' : p[i] == '\t' ? 't' : 'r';
      put(l, esc, 2);
      i++;
    } else if (p[i] < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", p[i]);
      puts_(l, esc);
      i++;
    } else if ((k = utf8_len(p + i, n - i)) == 0) {
      puts_(l, "\\ufffd"); /* not UTF-8: the replacement character */
      i++;
    } else {
      put(l, (const char *)p + i, k);
      i += k;
    }
  }
  puts_(l, "\"");
}

static void vlog(nne_log_level_t level, const nne_log_field_t *fields,
                 size_t n_fields, const char *fmt, va_list ap) {
  static const char *const tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  static const char *const names[] = {"debug", "info", "warn", "error"};
  char msg[4096], when[40], num[64];
  line_t l;
  struct timeval tv;
  struct tm tm;
  size_t i, k;
  bool json = atomic_load(&log_format) == NNE_LOG_JSON;

  if ((int)level < atomic_load(&log_level) || level >= NNE_LOG_OFF)
    return;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  k = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(when + k, sizeof when - k, ".%03ldZ", (long)(tv.tv_usec / 1000));
  vsnprintf(msg, sizeof msg, fmt, ap);
  l.n = 0;
  if (json) {
    puts_(&l, "{\"time\":\"");
    puts_(&l, when);
    puts_(&l, "\",\"level\":\"");
    puts_(&l, names[level]);
    snprintf(num, sizeof num, "\",\"pid\":%d,\"message\":", (int)getpid());
    puts_(&l, num);
    put_json_str(&l, msg);
  } else {
    snprintf(num, sizeof num, " nneditd[%d] %-5s ", (int)getpid(),
             tags[level]);
    puts_(&l, when);
    puts_(&l, num);
    puts_(&l, msg);
  }
  for (i = 0; i < n_fields; i++) {
    const nne_log_field_t *f = &fields[i];
    if (f->str != NULL && !json && f->str[0] == '\0')
      continue;
    if (f->str == NULL)
      snprintf(num, sizeof num, "%.6g", f->num);
    if (json) {
      puts_(&l, ",");
      put_json_str(&l, f->key);
      puts_(&l, ":");
      if (f->str != NULL)
        put_json_str(&l, f->str);
      else
        puts_(&l, num);
    } else {
      puts_(&l, " ");
      puts_(&l, f->key);
      puts_(&l, "=");
      if (f->str != NULL && strpbrk(f->str, " \t\"") != NULL)
        put_json_str(&l, f->str);
      else
        puts_(&l, f->str != NULL ? f->str : num);
    }
  }
  if (json)
    put(&l, "}", 1);
  l.buf[l.n++] = '\n';
  /* One write per line: lines from concurrent threads stay whole. */
  if (write(STDERR_FILENO, l.buf, l.n) < 0) {
    /* Nothing sensible to do when stderr is gone. */
  }
}

void nne_log(nne_log_level_t level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vlog(level, NULL, 0, fmt, ap);
  va_end(ap);
}

void nne_log_fields(nne_log_level_t level, const nne_log_field_t *fields,
                    size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vlog(level, fields, n, fmt, ap);
  va_end(ap);
}
