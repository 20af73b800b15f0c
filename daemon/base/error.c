/* error.c — see error.h.
 *
 * Compiled into libnne_engine.so (which exports it to the daemon), not into
 * nne_base: one copy per process. The engine has no daemon/ include root, so
 * the header is named from this folder. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *nne_strerror(int code) {
  switch (code) {
  case NNE_OK:
    return "ok";
#define NNE__ERRNO_DESC(name, val, status, desc)                               \
  case NNE_##name:                                                             \
    return desc;
    NNE_ERRNO_MAP(NNE__ERRNO_DESC)
#undef NNE__ERRNO_DESC
  }
  return "unknown error";
}

int nne_err_grpc_status(int code) {
  switch (code) {
  case NNE_OK:
    return 0;
#define NNE__ERRNO_STATUS(name, val, status, desc)                             \
  case NNE_##name:                                                             \
    return status;
    NNE_ERRNO_MAP(NNE__ERRNO_STATUS)
#undef NNE__ERRNO_STATUS
  }
  return 2; /* UNKNOWN */
}

int nne_err_set(nne_err_t *err, int code, const char *fmt, ...) {
  if (err != NULL) {
    va_list ap;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

void nne_err_prefix(nne_err_t *err, const char *fmt, ...) {
  char prefix[256];
  size_t plen, olen;
  int k;
  va_list ap;

  if (err == NULL)
    return;
  va_start(ap, fmt);
  k = vsnprintf(prefix, sizeof prefix - 2, fmt, ap);
  va_end(ap);
  if (k < 0)
    return;
  plen = strlen(prefix);
  prefix[plen++] = ':';
  prefix[plen++] = ' ';
  /* Shift the old message right (truncating its tail) and put the prefix in
   * front of it. */
  olen = strnlen(err->msg, sizeof err->msg - 1);
  if (olen > sizeof err->msg - 1 - plen)
    olen = sizeof err->msg - 1 - plen;
  memmove(err->msg + plen, err->msg, olen);
  memcpy(err->msg, prefix, plen);
  err->msg[plen + olen] = '\0';
}
