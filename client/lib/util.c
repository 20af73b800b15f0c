/* util.c — errors and bounded strings (internal.h). */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int nne__err_setv(nne_client_err_t *err, int code, const char *fmt,
                  va_list ap) {
  if (err != NULL) {
    err->code = code;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
  }
  return -code;
}

int nne__err_set(nne_client_err_t *err, int code, const char *fmt, ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = nne__err_setv(err, code, fmt, ap);
  va_end(ap);
  return rc;
}

bool nne__copy_str(char *dst, size_t cap, const char *src) {
  size_t n = src ? strlen(src) : 0;
  if (n >= cap) {
    dst[0] = '\0';
    return false;
  }
  memcpy(dst, src ? src : "", n + 1);
  return true;
}

int nne__check_name(const char *what, const char *name, size_t cap,
                    nne_client_err_t *err) {
  if (name == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT, "%s: name is NULL",
                        what);
  if (strlen(name) >= cap)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "%s: name '%.64s...' is longer than %zu bytes", what,
                        name, cap - 1);
  return 0;
}

int nne__check_opt_str(const char *what, const char *s, size_t cap,
                       nne_client_err_t *err) {
  if (s != NULL && strlen(s) >= cap)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "%s '%.64s...' is longer than %zu bytes", what, s,
                        cap - 1);
  return 0;
}
