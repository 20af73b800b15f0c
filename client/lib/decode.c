/* decode.c — the one way replies become caller-owned result structs
 * (internal.h, block decode.c).
 *
 * A reply's lists arrive as repeated fields, which nanopb hands to a
 * callback one element at a time. Every list of every reply goes through
 * the two callbacks here:
 *   nne__rep_dec      a repeated message: one more item in the caller's
 *                     growable array, bounded, filled by the owner's take;
 *   nne__strlist_dec  a repeated string: one more string in a block.
 * Strings of a reply live in one block per result (freed with it). The
 * block moves as it grows, so while decoding a string is its offset, kept
 * in the very pointer member it will occupy; the owner's layout table says
 * which members those are, and nne__fix makes them pointers at the end.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- refusals ------------------------------------------------------------ */

bool nne__dec_fail(nne__dec_t *d, int code, const char *fmt, ...) {
  va_list ap;
  if (d->code == 0) { /* the first reason is the real one */
    d->code = code;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    va_end(ap);
  }
  return false;
}

int nne__dec_error(const nne__dec_t *d, const char *method, const char *why,
                   nne_client_err_t *err) {
  if (d != NULL && d->code != 0)
    return nne__err_set(err, d->code, "%s: %s", nne__method_name(method),
                        d->msg);
  return nne__err_set(err, NNE_CLIENT_INTERNAL, "%s: undecodable reply: %s",
                      nne__method_name(method), why);
}

int nne__decode_bb(grpc_byte_buffer *bb, const pb_msgdesc_t *fields, void *msg,
                   const nne__dec_t *d, const char *method,
                   nne_client_err_t *err) {
  char why[128] = "";
  if (nne_pb_decode_bb(bb, fields, msg, why, sizeof why))
    return 0;
  return nne__dec_error(d, method, why, err);
}

bool nne__dec_str(pb_istream_t *s, char *buf, size_t cap, nne__dec_t *d,
                  const char *what) {
  size_t n = s->bytes_left;
  if (n >= cap)
    return nne__dec_fail(d, NNE_CLIENT_INTERNAL,
                         "%s: a string of %zu bytes, over the bound of %zu",
                         what, n, cap - 1);
  if (!pb_read(s, (pb_byte_t *)buf, n))
    return nne__dec_fail(d, NNE_CLIENT_INTERNAL, "%s: %s", what,
                         PB_GET_ERROR(s));
  buf[n] = '\0';
  if (strlen(buf) != n)
    return nne__dec_fail(d, NNE_CLIENT_INTERNAL, "%s: a string with a NUL",
                         what);
  return true;
}

/* ---- the string block ---------------------------------------------------- */

/* An offset kept in a pointer member until nne__fix. */
static const char *off_ptr(size_t off) {
  return (const char *)(uintptr_t)off;
}

static size_t ptr_off(const char *p) {
  return (size_t)(uintptr_t)p;
}

/* Room for n more bytes. */
static bool strs_reserve(nne__strs_t *b, size_t n) {
  if (n > SIZE_MAX / 2 - b->len)
    return false;
  return nne_vec_grow_max(&b->p, &b->cap, b->len + n, 1, SIZE_MAX / 2) == 0;
}

bool nne__strs_add(nne__strs_t *b, const char *s, const char **slot) {
  size_t n = strlen(s) + 1;
  if (!strs_reserve(b, n))
    return false;
  memcpy(b->p + b->len, s, n);
  *slot = off_ptr(b->len);
  b->len += n;
  return true;
}

bool nne__strs_read(nne__strs_t *b, pb_istream_t *s, size_t max_len,
                    const char **slot, nne__dec_t *d, const char *what) {
  size_t n = s->bytes_left;
  if (n > max_len)
    return nne__dec_fail(d, NNE_CLIENT_INTERNAL,
                         "%s: a string of %zu bytes, over the bound of %zu",
                         what, n, max_len);
  if (!strs_reserve(b, n + 1))
    return nne__dec_fail(d, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  if (!pb_read(s, (pb_byte_t *)b->p + b->len, n))
    return nne__dec_fail(d, NNE_CLIENT_INTERNAL, "%s: %s", what,
                         PB_GET_ERROR(s));
  b->p[b->len + n] = '\0';
  *slot = off_ptr(b->len);
  b->len += n + 1;
  return true;
}

/* ---- repeated strings ---------------------------------------------------- */

bool nne__strlist_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  nne__strlist_t *l = *arg;
  (void)f;
  if (l->n >= l->max)
    return nne__dec_fail(l->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "%s: more than %zu %s", l->what, l->max, l->noun);
  if (nne_vec_grow_max(&l->v, &l->cap, l->n + 1, sizeof *l->v, l->max) != 0)
    return nne__dec_fail(l->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "out of memory");
  if (!nne__strs_read(l->block, s, l->max_len, &l->v[l->n], l->dec, l->what))
    return false;
  l->n++;
  return true;
}

bool nne__strlist_move(nne__strlist_t *l, nne__names_t *all,
                       const char *const **first, size_t *n) {
  if (l->n > all->max - all->n ||
      nne_vec_grow_max(&all->v, &all->cap, all->n + l->n, sizeof *all->v,
                       all->max) != 0)
    return nne__dec_fail(l->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "%s: more than %zu %s in the reply", l->what, all->max,
                         l->noun);
  if (l->n > 0)
    memcpy(all->v + all->n, l->v, l->n * sizeof *l->v);
  *first = (const char *const *)off_ptr(all->n);
  *n = l->n;
  all->n += l->n;
  l->n = 0;
  return true;
}

bool nne__strlist_pack(nne__strlist_t *l, const char *const **out, size_t *n) {
  const char **v;
  char *strs;
  size_t i;
  *out = NULL;
  *n = 0;
  if (l->n == 0)
    return true;
  v = malloc(l->n * sizeof *v + l->block->len);
  if (v == NULL)
    return false;
  strs = (char *)(v + l->n);
  memcpy(strs, l->block->p, l->block->len);
  for (i = 0; i < l->n; i++)
    v[i] = strs + ptr_off(l->v[i]);
  *out = v;
  *n = l->n;
  l->n = 0;
  l->block->len = 0;
  return true;
}

void nne__strlist_free(nne__strlist_t *l) {
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

/* ---- repeated messages --------------------------------------------------- */

bool nne__rep_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  nne__rep_t *r = *arg;
  size_t i = *r->n;
  void *item;
  (void)f;
  if (i >= r->max) {
    if (r->bound != NULL)
      return nne__dec_fail(r->dec, r->over_code, "%s: more %s than %s %zu",
                           r->what, r->noun, r->bound, r->max);
    return nne__dec_fail(r->dec, r->over_code, "%s: more than %zu %s", r->what,
                         r->max, r->noun);
  }
  if (nne_vec_grow_max(r->items, &r->cap, i + 1, r->item_size, r->max) != 0)
    return nne__dec_fail(r->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "out of memory");
  /* Counted before it is filled: the result's _free must find it. */
  item = (char *)*r->items + i * r->item_size;
  memset(item, 0, r->item_size);
  *r->n = i + 1;
  memset(r->msg, 0, r->msg_size);
  if (r->arm != NULL)
    r->arm(r, r->msg, i);
  if (!pb_decode(s, r->fields, r->msg))
    return nne__dec_fail(r->dec, NNE_CLIENT_INTERNAL, "%s[%zu]: %s", r->what, i,
                         PB_GET_ERROR(s));
  return r->take(r, r->msg, item, i);
}

/* ---- offsets into pointers ----------------------------------------------- */

void nne__fix_names(const char **names, size_t n, const char *base) {
  size_t i;
  for (i = 0; i < n; i++)
    names[i] = base + ptr_off(names[i]);
}

void nne__fix(void *items, size_t n, size_t item_size, const nne__layout_t *l,
              const char *base, const char **names) {
  size_t i, k;
  for (i = 0; i < n; i++) {
    char *item = (char *)items + i * item_size;
    for (k = 0; k < l->n_strs; k++) {
      const char **p = (const char **)(item + l->strs[k]);
      *p = base + ptr_off(*p);
    }
    for (k = 0; k < l->n_lists; k++) {
      const char *const **p = (const char *const **)(item + l->lists[k].list);
      size_t count = *(const size_t *)(item + l->lists[k].count);
      *p = count > 0 ? names + ptr_off((const char *)*p) : NULL;
    }
  }
}
