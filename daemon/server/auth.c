/* auth.c — see auth.h. */
#include "server/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/vec.h"

void nne_auth_init(nne_auth_t *a) {
  memset(a, 0, sizeof *a);
}

void nne_auth_free(nne_auth_t *a) {
  size_t i;
  for (i = 0; i < a->n; i++) {
    /* volatile: the wipe must not be optimised away before free. */
    volatile char *p = a->v[i].token;
    size_t k;
    for (k = 0; k < a->v[i].len; k++)
      p[k] = 0;
    free(a->v[i].token);
  }
  free(a->v);
  memset(a, 0, sizeof *a);
}

static const struct {
  const char *name;
  unsigned bits;
} role_names[] = {
    {"infer", NNE_ROLE_INFER},
    {"edit", NNE_ROLE_EDIT},
    {"admin", NNE_ROLE_ADMIN},
    {"all", NNE_ROLE_ALL},
};

void nne_auth_roles_name(unsigned roles, char *buf, size_t cap) {
  size_t i, o = 0;
  if (cap == 0)
    return;
  buf[0] = '\0';
  for (i = 0; i < 3; i++)
    if (roles & role_names[i].bits)
      o += (size_t)snprintf(buf + o, o < cap ? cap - o : 0, "%s%s",
                            o ? "," : "", role_names[i].name);
  if (o == 0)
    snprintf(buf, cap, "none");
}

/* "edit,infer" → bits; 0 when a name is unknown. */
static unsigned parse_roles(const char *s, size_t n) {
  unsigned bits = 0;
  while (n > 0) {
    size_t len = 0, i;
    bool found = false;
    while (len < n && s[len] != ',')
      len++;
    for (i = 0; i < sizeof role_names / sizeof role_names[0]; i++)
      if (strlen(role_names[i].name) == len &&
          memcmp(role_names[i].name, s, len) == 0) {
        bits |= role_names[i].bits;
        found = true;
      }
    if (!found)
      return 0;
    s += len;
    n -= len;
    if (n > 0) { /* the comma */
      s++;
      n--;
      if (n == 0)
        return 0;
    }
  }
  return bits;
}

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

int nne_auth_parse(nne_auth_t *a, const char *text, size_t len,
                   const char *where, nne_err_t *err) {
  size_t pos = 0;
  int line = 0;

  while (pos < len) {
    const char *l = text + pos, *end = memchr(l, '\n', len - pos);
    size_t n = end != NULL ? (size_t)(end - l) : len - pos, i = 0, r0, rn, t0,
           tn;
    unsigned roles;
    pos += n + (end != NULL);
    line++;
    while (i < n && is_space(l[i]))
      i++;
    if (i == n || l[i] == '#')
      continue;
    r0 = i;
    while (i < n && !is_space(l[i]))
      i++;
    rn = i - r0;
    while (i < n && is_space(l[i]))
      i++;
    t0 = i;
    while (i < n && !is_space(l[i]))
      i++;
    tn = i - t0;
    while (i < n && is_space(l[i]))
      i++;
    if (tn == 0 || i != n) {
      nne_auth_free(a);
      return nne_err_set(err, NNE_EINVAL,
                         "%s:%d: expected 'ROLES TOKEN' (roles: infer, edit, "
                         "admin, all, comma-separated)",
                         where, line);
    }
    if ((roles = parse_roles(l + r0, rn)) == 0) {
      nne_auth_free(a);
      return nne_err_set(err, NNE_EINVAL,
                         "%s:%d: '%.*s' is not a list of roles (infer, edit, "
                         "admin, all)",
                         where, line, (int)(rn > 64 ? 64 : rn), l + r0);
    }
    if (tn < NNE_AUTH_MIN_TOKEN_LEN || tn > NNE_AUTH_MAX_TOKEN_LEN) {
      nne_auth_free(a);
      return nne_err_set(err, NNE_EINVAL,
                         "%s:%d: a token has %d to %d characters (this one "
                         "has %zu)",
                         where, line, NNE_AUTH_MIN_TOKEN_LEN,
                         NNE_AUTH_MAX_TOKEN_LEN, tn);
    }
    if (a->n >= NNE_AUTH_MAX_TOKENS) {
      nne_auth_free(a);
      return nne_err_set(err, NNE_EINVAL, "%s:%d: more than %d tokens", where,
                         line, NNE_AUTH_MAX_TOKENS);
    }
    if (NNE_VEC_GROW(&a->v, &a->cap, a->n + 1) != 0 ||
        (a->v[a->n].token = malloc(tn + 1)) == NULL) {
      nne_auth_free(a);
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
    }
    memcpy(a->v[a->n].token, l + t0, tn);
    a->v[a->n].token[tn] = '\0';
    a->v[a->n].len = tn;
    a->v[a->n].roles = roles;
    a->n++;
  }
  if (a->n == 0)
    return nne_err_set(err, NNE_EINVAL,
                       "%s: no tokens (every call would be "
                       "refused)",
                       where);
  return 0;
}

int nne_auth_load(nne_auth_t *a, const char *path, nne_err_t *err) {
  FILE *f = fopen(path, "rb");
  char *text;
  long size;
  int rc;

  if (f == NULL)
    return nne_err_set(err, NNE_EIO, "--token-file %s: %s", path,
                       strerror(errno));
  if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
      fseek(f, 0, SEEK_SET) != 0 || size > (1l << 24)) {
    fclose(f);
    return nne_err_set(err, NNE_EIO,
                       "--token-file %s: unreadable or over "
                       "16 MiB",
                       path);
  }
  text = malloc((size_t)size + 1);
  if (text == NULL) {
    fclose(f);
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  if (fread(text, 1, (size_t)size, f) != (size_t)size) {
    free(text);
    fclose(f);
    return nne_err_set(err, NNE_EIO, "--token-file %s: read error", path);
  }
  fclose(f);
  rc = nne_auth_parse(a, text, (size_t)size, path, err);
  memset(text, 0, (size_t)size);
  free(text);
  return rc;
}

/* Equal, in time that depends on the lengths only. */
static bool same(const char *a, size_t la, const char *b, size_t lb) {
  unsigned char diff = (unsigned char)(la != lb);
  size_t i, n = la > lb ? la : lb;
  for (i = 0; i < n; i++)
    diff |= (unsigned char)((i < la ? (unsigned char)a[i] : 0) ^
                            (i < lb ? (unsigned char)b[i] : 0));
  return diff == 0;
}

int nne_auth_check(const nne_auth_t *a, unsigned role, const char *method,
                   const char *authz, size_t authz_len, nne_err_t *err) {
  static const char bearer[] = "Bearer ";
  const char *tok;
  size_t tn, i;
  unsigned roles = 0;
  bool known = false;
  char need[32], have[32];

  if (role == NNE_ROLE_NONE)
    return 0;
  if (authz == NULL)
    return nne_err_set(err, NNE_EUNAUTH,
                       "%s needs a bearer token: send the metadata "
                       "'authorization: Bearer <token>'",
                       method);
  if (authz_len < sizeof bearer - 1 ||
      strncasecmp(authz, bearer, sizeof bearer - 1) != 0)
    return nne_err_set(err, NNE_EUNAUTH,
                       "authorization: expected 'Bearer <token>'");
  tok = authz + sizeof bearer - 1;
  tn = authz_len - (sizeof bearer - 1);
  /* Every entry is compared, whatever matched: the time says nothing about
   * which token (or how much of one) was right. */
  for (i = 0; i < a->n; i++)
    if (same(tok, tn, a->v[i].token, a->v[i].len)) {
      known = true;
      roles |= a->v[i].roles;
    }
  if (!known)
    return nne_err_set(err, NNE_EUNAUTH,
                       "authorization: the token is not "
                       "valid");
  if ((roles & role) == 0) {
    nne_auth_roles_name(role, need, sizeof need);
    nne_auth_roles_name(roles, have, sizeof have);
    return nne_err_set(err, NNE_EPERM,
                       "%s needs the role '%s'; the token has '%s'", method,
                       need, have);
  }
  return 0;
}
