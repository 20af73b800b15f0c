/* error.h — the daemon's error codes, messages and gRPC status mapping.
 *
 * Every fallible function in the daemon returns an int: 0 on success or a
 * negative NNE_E* code, and fills a caller-supplied nne_err_t with a message
 * that names the bad thing ("input_ids[1][4]: token id 70000 is outside the
 * vocabulary (1000)"). The codes come from one table that also gives the gRPC
 * status each one is reported as, so a handler never chooses a status by hand.
 *
 * This header has no dependencies (no grpc, no libtorch): the engine shim,
 * the daemon and the tests all include it.
 */
#ifndef NNE_ERROR_H
#define NNE_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, gRPC status number, short description)
 * gRPC status numbers are fixed by the protocol (grpc/status.h). */
#define NNE_ERRNO_MAP(X)                                                       \
  X(EINVAL, -1, 3, "invalid argument")          /* INVALID_ARGUMENT */         \
  X(ENOTFOUND, -2, 5, "not found")              /* NOT_FOUND */                \
  X(EEXIST, -3, 6, "already exists")            /* ALREADY_EXISTS */           \
  X(ERESOURCE, -4, 8, "resource exhausted")     /* RESOURCE_EXHAUSTED */       \
  X(ESTATE, -5, 9, "failed precondition")       /* FAILED_PRECONDITION */      \
  X(EUNAVAIL, -6, 14, "unavailable")            /* UNAVAILABLE */              \
  X(ECANCELED, -7, 1, "cancelled")              /* CANCELLED */                \
  X(EDEADLINE, -8, 4, "deadline exceeded")      /* DEADLINE_EXCEEDED */        \
  X(EUNIMPL, -9, 12, "unimplemented")           /* UNIMPLEMENTED */            \
  X(ENOMEM, -10, 8, "out of memory")            /* RESOURCE_EXHAUSTED */       \
  X(EIO, -11, 13, "i/o error")                  /* INTERNAL */                 \
  X(EINTERNAL, -12, 13, "internal error")       /* INTERNAL */                 \
  X(EOUTOFRANGE, -13, 11, "out of range")       /* OUT_OF_RANGE */             \
  X(EUNAUTH, -14, 16, "unauthenticated")        /* UNAUTHENTICATED */          \
  X(EPERM, -15, 7, "permission denied")         /* PERMISSION_DENIED */

enum nne_errno {
  NNE_OK = 0,
#define NNE__ERRNO_ENUM(name, val, status, desc) NNE_##name = (val),
  NNE_ERRNO_MAP(NNE__ERRNO_ENUM)
#undef NNE__ERRNO_ENUM
};

#define NNE_ERR_MSG_MAX 1024

/* A code plus a human message. Callers own it (usually on the stack); a
 * function that fails writes both fields, one that succeeds leaves them. */
typedef struct nne_err {
  int code;
  char msg[NNE_ERR_MSG_MAX];
} nne_err_t;

/* Short fixed description of a code ("invalid argument"); never NULL. */
const char *nne_strerror(int code);

/* The gRPC status number a code is reported as (0 for NNE_OK). */
int nne_err_grpc_status(int code);

/* Fills err (if non-NULL) with code and a printf-style message and returns
 * code, so that `return nne_err_set(err, NNE_EINVAL, "...", ...);` reads well. */
int nne_err_set(nne_err_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to err->msg (for adding context on the way up). */
void nne_err_prefix(nne_err_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif /* NNE_ERROR_H */
