/* auth.h — who may call what: bearer tokens with roles, checked at one
 * choke point (the server's new-call path) for every method.
 *
 * The token file (--token-file) is operator-owned, one token per line:
 *
 *   # roles   token
 *   infer       3f9c...            List/Describe/Graph, Forward, Trace
 *   edit,infer  a71d...            + Edits.*
 *   admin       c0de...            Load, Unload, Stats
 *   all         77aa...            everything
 *
 * A method's table entry (call.h) names the role it needs; the health
 * service needs none (probes carry no token). A call without
 * "authorization: Bearer <token>" metadata, or with a token not in the
 * file, is UNAUTHENTICATED; a known token without the role is
 * PERMISSION_DENIED. Tokens are compared in constant time against every
 * entry, and never appear in a message or a log line. SIGHUP reloads the
 * file (nne_auth_load into a fresh table, swapped in only when it parsed).
 *
 * Loop thread only.
 */
#ifndef NNE_AUTH_H
#define NNE_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

/* Roles, as bits. NNE_ROLE_NONE: no token needed. */
enum {
  NNE_ROLE_NONE = 0,
  NNE_ROLE_INFER = 1 << 0,
  NNE_ROLE_EDIT = 1 << 1,
  NNE_ROLE_ADMIN = 1 << 2,
  NNE_ROLE_ALL = NNE_ROLE_INFER | NNE_ROLE_EDIT | NNE_ROLE_ADMIN,
};

#define NNE_AUTH_MAX_TOKENS 4096
#define NNE_AUTH_MAX_TOKEN_LEN 4096
#define NNE_AUTH_MIN_TOKEN_LEN 16 /* shorter ones are guessable */

typedef struct nne_auth_token {
  char *token;
  size_t len;
  unsigned roles;
} nne_auth_token_t;

typedef struct nne_auth {
  nne_auth_token_t *v;
  size_t n, cap;
} nne_auth_t;

void nne_auth_init(nne_auth_t *a);
void nne_auth_free(nne_auth_t *a); /* wipes the tokens' bytes */

/* Parses a token file into a (which must be empty). NNE_EINVAL names the
 * file and line (never the token); NNE_EIO when it cannot be read. On
 * failure a is left empty. */
int nne_auth_load(nne_auth_t *a, const char *path, nne_err_t *err);

/* Parses the text of a token file (exposed for tests); `where` prefixes
 * messages. */
int nne_auth_parse(nne_auth_t *a, const char *text, size_t len,
                   const char *where, nne_err_t *err);

/* The verdict for a call that needs `role` (NNE_ROLE_*), given the value of
 * its "authorization" metadata (NULL when absent). 0, NNE_EUNAUTH or
 * NNE_EPERM with a message for the client. `method` names the method in
 * messages ("Edits/Apply"). */
int nne_auth_check(const nne_auth_t *a, unsigned role, const char *method,
                   const char *authz, size_t authz_len, nne_err_t *err);

/* "infer", "edit,infer", ...: the roles' names into buf. */
void nne_auth_roles_name(unsigned roles, char *buf, size_t cap);

#endif /* NNE_AUTH_H */
