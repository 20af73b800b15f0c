/* fault.c — see fault.h. Nothing here exists in a release build. */
#include "base/fault.h"

#ifdef NNE_FAULT_INJECTION

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[NNE_FAULT__COUNT] = {
    "forward", "backend_build", "send", "model_load"};

typedef struct rule {
  uint64_t nth;   /* 0: never */
  bool onward;    /* N+ */
} rule_t;

static rule_t rules[NNE_FAULT__COUNT];
static atomic_uint_fast64_t calls[NNE_FAULT__COUNT];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static char parse_error[160];

static void parse(void) {
  const char *s = getenv("NNE_FAULTS");
  char buf[512], *save = NULL, *tok;
  if (s == NULL || s[0] == '\0')
    return;
  if (strlen(s) >= sizeof buf) {
    snprintf(parse_error, sizeof parse_error, "NNE_FAULTS: too long");
    return;
  }
  strcpy(buf, s);
  for (tok = strtok_r(buf, ",", &save); tok != NULL;
       tok = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(tok, '='), *end;
    unsigned long long n;
    int p;
    if (eq == NULL) {
      snprintf(parse_error, sizeof parse_error,
               "NNE_FAULTS: '%s' is not point=N", tok);
      return;
    }
    *eq = '\0';
    for (p = 0; p < NNE_FAULT__COUNT; p++)
      if (strcmp(tok, names[p]) == 0)
        break;
    n = strtoull(eq + 1, &end, 10);
    if (p == NNE_FAULT__COUNT || n == 0 ||
        (*end != '\0' && strcmp(end, "+") != 0)) {
      snprintf(parse_error, sizeof parse_error,
               "NNE_FAULTS: '%s=%s': points are forward, backend_build, "
               "send, model_load; N counts from 1, N+ means N and later",
               tok, eq + 1);
      return;
    }
    rules[p].nth = n;
    rules[p].onward = *end == '+';
  }
}

bool nne_fault_hit(nne_fault_point_t p) {
  uint64_t k;
  pthread_once(&once, parse);
  if ((unsigned)p >= NNE_FAULT__COUNT || rules[p].nth == 0 ||
      parse_error[0] != '\0')
    return false;
  k = atomic_fetch_add(&calls[p], 1) + 1;
  return rules[p].onward ? k >= rules[p].nth : k == rules[p].nth;
}

int nne_fault_describe(char *buf, size_t len) {
  size_t n = 0;
  int p;
  pthread_once(&once, parse);
  if (len > 0)
    buf[0] = '\0';
  if (parse_error[0] != '\0') {
    snprintf(buf, len, "%s", parse_error);
    return -1;
  }
  for (p = 0; p < NNE_FAULT__COUNT && n < len; p++)
    if (rules[p].nth != 0)
      n += (size_t)snprintf(buf + n, len - n, "%s%s call %llu%s",
                            n ? ", " : "", names[p],
                            (unsigned long long)rules[p].nth,
                            rules[p].onward ? " and later" : "");
  return 0;
}

#else
/* ISO C wants a translation unit to declare something. */
typedef int nne__fault_disabled;
#endif
