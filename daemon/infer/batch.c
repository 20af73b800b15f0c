/* batch.c — see batch.h. */
#include "infer/batch.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/vec.h"
#include "nnedit/v1/inference.pb.h"

void nne_rows_dec_init(nne_rows_dec_t *rd, uint32_t value_tag,
                       size_t max_rows, size_t max_values) {
  memset(rd, 0, sizeof *rd);
  rd->value_tag = value_tag;
  rd->max_rows = max_rows;
  rd->vals.max = max_values;
}

bool nne_rows_dec_cb(pb_istream_t *s, const pb_field_t *f, void **arg) {
  nne_rows_dec_t *rd = *arg;
  size_t before = rd->vals.n;
  bool ok;

  (void)f;
  if (rd->n >= rd->max_rows) {
    rd->overflow = true;
    PB_RETURN_ERROR(s, "too many rows");
  }
  if (NNE_VEC_GROW(&rd->len, &rd->cap, rd->n + 1) != 0)
    PB_RETURN_ERROR(s, "out of memory");
  /* TokenRow and MaskRow each hold one repeated integer field; their values
   * go to the shared, bounded list. */
  ok = nne_pb_decode_int_list_msg(s, rd->value_tag, &rd->vals);
  if (!ok)
    return false;
  rd->len[rd->n++] = (uint32_t)(rd->vals.n - before);
  return true;
}

void nne_rows_free(nne_rows_dec_t *rd) {
  free(rd->vals.v);
  free(rd->len);
  rd->vals.v = NULL;
  rd->vals.n = rd->vals.cap = 0;
  rd->len = NULL;
  rd->n = rd->cap = 0;
}

/* One group's mask against its rows. */
static int check_mask(const nne_batch_group_t *g, nne_err_t *err) {
  const nne_rows_dec_t *ids = g->ids, *mask = g->mask;
  size_t r, c, off;

  if (mask == NULL || mask->n == 0)
    return 0;
  if (mask->n != ids->n)
    return nne_err_set(err, NNE_EINVAL,
                       "%sattention_mask: %zu rows for %zu input_ids rows",
                       g->prefix, mask->n, ids->n);
  for (r = 0, off = 0; r < mask->n; r++) {
    bool any = false;
    if (mask->len[r] != ids->len[r])
      return nne_err_set(err, NNE_EINVAL,
                         "%sattention_mask[%zu]: %u values for %u tokens",
                         g->prefix, r, mask->len[r], ids->len[r]);
    for (c = 0; c < mask->len[r]; c++, off++) {
      int64_t v = mask->vals.v[off];
      if (v != 0 && v != 1)
        return nne_err_set(err, NNE_EINVAL,
                           "%sattention_mask[%zu][%zu]: value %" PRId64
                           " is not 0 or 1",
                           g->prefix, r, c, v);
      any |= v == 1;
    }
    if (!any)
      return nne_err_set(err, NNE_EINVAL,
                         "%sattention_mask[%zu]: every position is padding",
                         g->prefix, r);
  }
  return 0;
}

int nne_batch_check(const nne_batch_group_t *groups, size_t n_groups,
                    const char *what, int padding,
                    const nne_model_entry_t *e, nne_err_t *err) {
  size_t g, r, c, off, total = 0, row;
  uint32_t maxlen = 0, minlen = UINT32_MAX;
  size_t r_min = 0, r_max = 0;
  int rc;

  for (g = 0; g < n_groups; g++)
    total += groups[g].ids->n;
  if (total == 0)
    return nne_err_set(err, NNE_EINVAL, "%s: the batch is empty", what);
  if (total > e->max_batch)
    return nne_err_set(err, NNE_ERESOURCE,
                       "%s: %zu rows exceed the model's max_batch %u", what,
                       total, e->max_batch);
  for (g = 0, row = 0; g < n_groups; g++) {
    const nne_rows_dec_t *ids = groups[g].ids;
    for (r = 0; r < ids->n; r++, row++) {
      if (ids->len[r] == 0)
        return nne_err_set(err, NNE_EINVAL, "%sinput_ids[%zu]: the row is "
                           "empty", groups[g].prefix, r);
      if (ids->len[r] > e->max_seq_len)
        return nne_err_set(err, NNE_ERESOURCE,
                           "%sinput_ids[%zu]: %u tokens exceed the model's "
                           "max_seq_len %u",
                           groups[g].prefix, r, ids->len[r], e->max_seq_len);
      if (ids->len[r] > maxlen) {
        maxlen = ids->len[r];
        r_max = row;
      }
      if (ids->len[r] < minlen) {
        minlen = ids->len[r];
        r_min = row;
      }
    }
  }
  for (g = 0; g < n_groups; g++) {
    const nne_rows_dec_t *ids = groups[g].ids;
    for (r = 0, off = 0; r < ids->n; r++)
      for (c = 0; c < ids->len[r]; c++, off++) {
        int64_t t = ids->vals.v[off];
        if (t < 0 || t >= e->vocab_size)
          return nne_err_set(err, NNE_EINVAL,
                             "%sinput_ids[%zu][%zu]: token id %" PRId64
                             " is outside the vocabulary [0, %" PRId64 ")",
                             groups[g].prefix, r, c, t, e->vocab_size);
      }
  }
  for (g = 0; g < n_groups; g++)
    if ((rc = check_mask(&groups[g], err)) != 0)
      return rc;
  if (maxlen != minlen && padding == nnedit_v1_Padding_PADDING_UNSPECIFIED)
    return nne_err_set(err, NNE_EINVAL,
                       "%s: rows differ in length (row %zu has %u "
                       "tokens, row %zu has %u); set padding to PADDING_LEFT "
                       "or PADDING_RIGHT",
                       what, r_min, minlen, r_max, maxlen);
  return 0;
}

int nne_batch_build(nne_batch_t *b, const nne_batch_group_t *groups,
                    size_t n_groups, int padding, int64_t pad_id,
                    nne_err_t *err) {
  size_t g, r, c;
  int64_t S = 0, B = 0, row = 0, first_len = -1;
  bool ragged = false, need_mask = false;

  memset(b, 0, sizeof *b);
  for (g = 0; g < n_groups; g++) {
    const nne_rows_dec_t *ids = groups[g].ids;
    for (r = 0; r < ids->n; r++) {
      if ((int64_t)ids->len[r] > S)
        S = ids->len[r];
      if (first_len < 0)
        first_len = ids->len[r];
      else if ((int64_t)ids->len[r] != first_len)
        ragged = true;
    }
    B += (int64_t)ids->n;
    if (groups[g].mask != NULL && groups[g].mask->n > 0)
      need_mask = true;
  }
  need_mask |= ragged;
  b->B = B;
  b->S = S;
  b->ids = malloc((size_t)(B * S) * sizeof *b->ids);
  b->last_pos = malloc((size_t)B * sizeof *b->last_pos);
  b->mask = need_mask ? calloc((size_t)(B * S), sizeof *b->mask) : NULL;
  if (b->ids == NULL || b->last_pos == NULL || (need_mask && !b->mask)) {
    nne_batch_free(b);
    return nne_err_set(err, NNE_ENOMEM, "out of memory for %" PRId64 "x%" PRId64
                       " inputs", B, S);
  }
  for (g = 0; g < n_groups; g++) {
    const nne_rows_dec_t *ids = groups[g].ids;
    const nne_rows_dec_t *mask = groups[g].mask;
    bool has_mask = mask != NULL && mask->n > 0;
    size_t off = 0;
    for (r = 0; r < ids->n; r++, row++) {
      int64_t len = ids->len[r];
      int64_t start = padding == nnedit_v1_Padding_PADDING_LEFT ? S - len : 0;
      int64_t *irow = b->ids + row * S, *mrow;
      int64_t last = -1;
      for (c = 0; c < (size_t)S; c++)
        irow[c] = pad_id;
      memcpy(irow + start, ids->vals.v + off, (size_t)len * sizeof *irow);
      if (need_mask) {
        mrow = b->mask + row * S;
        for (c = 0; c < (size_t)len; c++)
          mrow[start + (int64_t)c] = has_mask ? mask->vals.v[off + c] : 1;
        for (c = 0; c < (size_t)S; c++)
          if (mrow[c] == 1)
            last = (int64_t)c;
      } else {
        last = S - 1;
      }
      b->last_pos[row] = last;
      off += (size_t)len;
    }
  }
  return 0;
}

void nne_batch_free(nne_batch_t *b) {
  free(b->ids);
  free(b->mask);
  free(b->last_pos);
  b->ids = b->mask = b->last_pos = NULL;
}
