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
  rd->text_bytes_left = max_values; /* the message limit, as for values */
}

/* TokenRow.text into a fresh buffer (the row's), within the bounds. */
/* The name of a group's row field in messages. */
static const char *row_field(const nne_batch_group_t *g) {
  return g->field != NULL ? g->field : "input_ids";
}

static bool decode_text(pb_istream_t *s, nne_rows_dec_t *rd, size_t row) {
  pb_istream_t sub;
  char *t;
  if (!pb_make_string_substream(s, &sub))
    return false;
  if (sub.bytes_left > NNE_ROW_TEXT_MAX ||
      sub.bytes_left > rd->text_bytes_left) {
    rd->text_too_big = true;
    pb_close_string_substream(s, &sub);
    PB_RETURN_ERROR(s, "text too long");
  }
  t = malloc(sub.bytes_left + 1);
  if (t == NULL) {
    pb_close_string_substream(s, &sub);
    PB_RETURN_ERROR(s, "out of memory");
  }
  t[sub.bytes_left] = '\0';
  rd->text_len[row] = sub.bytes_left;
  rd->text_bytes_left -= sub.bytes_left;
  if (!pb_read(&sub, (pb_byte_t *)t, sub.bytes_left)) {
    free(t);
    pb_close_string_substream(s, &sub);
    return false;
  }
  free(rd->text[row]); /* a repeated occurrence: the last one wins */
  rd->text[row] = t;
  rd->has_text = true;
  return pb_close_string_substream(s, &sub);
}

bool nne_rows_dec_cb(pb_istream_t *s, const pb_field_t *f, void **arg) {
  nne_rows_dec_t *rd = *arg;
  size_t before = rd->vals.n, row = rd->n;
  bool text_field = rd->value_tag == nnedit_v1_TokenRow_ids_tag;

  (void)f;
  if (rd->n >= rd->max_rows) {
    rd->overflow = true;
    PB_RETURN_ERROR(s, "too many rows");
  }
  if (NNE_VEC_GROW(&rd->len, &rd->cap, rd->n + 1) != 0 ||
      (text_field &&
       (NNE_VEC_GROW(&rd->text, &rd->text_cap, rd->n + 1) != 0 ||
        NNE_VEC_GROW(&rd->text_len, &rd->text_len_cap, rd->n + 1) != 0)))
    PB_RETURN_ERROR(s, "out of memory");
  if (text_field) {
    rd->text[row] = NULL;
    rd->text_len[row] = 0;
  }
  /* TokenRow and MaskRow each hold one repeated integer field, whose
   * values go to the shared, bounded list; a TokenRow may hold text. */
  while (s->bytes_left > 0) {
    pb_wire_type_t wt;
    uint32_t t;
    bool eof;
    bool ok;
    if (!pb_decode_tag(s, &wt, &t, &eof)) {
      if (eof)
        break;
      ok = false;
    } else if (t == rd->value_tag) {
      ok = nne_pb_decode_int_occurrence(s, wt, &rd->vals);
    } else if (text_field && t == nnedit_v1_TokenRow_text_tag &&
               wt == PB_WT_STRING) {
      ok = decode_text(s, rd, row);
    } else {
      ok = pb_skip_field(s, wt);
    }
    if (!ok) {
      /* The row is not counted, so nne_rows_free would not see its text. */
      if (text_field) {
        free(rd->text[row]);
        rd->text[row] = NULL;
      }
      return false;
    }
  }
  rd->len[rd->n++] = (uint32_t)(rd->vals.n - before);
  return true;
}

void nne_rows_free(nne_rows_dec_t *rd) {
  size_t i;
  for (i = 0; rd->text != NULL && i < rd->n; i++)
    free(rd->text[i]);
  free(rd->text);
  free(rd->text_len);
  rd->text_len = NULL;
  rd->text_len_cap = 0;
  free(rd->vals.v);
  free(rd->len);
  rd->text = NULL;
  rd->text_cap = 0;
  rd->has_text = false;
  rd->vals.v = NULL;
  rd->vals.n = rd->vals.cap = 0;
  rd->len = NULL;
  rd->n = rd->cap = 0;
}

/* One group's text rows into ids: a new flattened list replaces the old. */
static int tokenize_group(const nne_batch_group_t *g,
                          const nne_model_entry_t *e, nne_err_t *err) {
  nne_rows_dec_t *rd = g->ids;
  int64_t *v = NULL;
  size_t i, off = 0, n = 0, cap = 0;
  int rc = 0;

  if (g->mask != NULL && g->mask->n > 0)
    return nne_err_set(err, NNE_EINVAL,
                       "%sattention_mask: not with text rows (a text row's "
                       "mask is all ones; send ids to mask them yourself)",
                       g->prefix);
  for (i = 0; i < rd->n && rc == 0; i++) {
    size_t len = rd->len[i], k;
    if (rd->text[i] == NULL) {
      if (NNE_VEC_GROW(&v, &cap, n + len) != 0)
        rc = nne_err_set(err, NNE_ENOMEM, "out of memory");
      for (k = 0; rc == 0 && k < len; k++)
        v[n++] = rd->vals.v[off + k];
    } else if (len > 0) {
      rc = nne_err_set(err, NNE_EINVAL,
                       "%s%s[%zu]: ids and text both given (one or "
                       "the other)",
                       g->prefix, row_field(g), i);
    } else {
      int32_t *ids = NULL;
      size_t m = 0;
      rc = nne_tokenizer_encode(e->tokenizer, rd->text[i], rd->text_len[i],
                                NNE_TOK_ADD_SPECIAL, &ids,
                                &m, err);
      if (rc != 0)
        nne_err_prefix(err, "%s%s[%zu].text", g->prefix, row_field(g), i);
      else if (m > rd->vals.max || n + m > rd->vals.max)
        rc = nne_err_set(err, NNE_ERESOURCE,
                         "%s%s[%zu].text: %zu tokens, more than the "
                         "request may hold",
                         g->prefix, row_field(g), i, m);
      else if (NNE_VEC_GROW(&v, &cap, n + m) != 0)
        rc = nne_err_set(err, NNE_ENOMEM, "out of memory");
      for (k = 0; rc == 0 && k < m; k++)
        v[n++] = ids[k];
      free(ids);
      if (rc == 0)
        rd->len[i] = (uint32_t)m;
    }
    off += len;
  }
  if (rc != 0) {
    free(v);
    return rc;
  }
  free(rd->vals.v);
  rd->vals.v = v;
  rd->vals.n = n;
  rd->vals.cap = cap;
  return 0;
}

int nne_batch_tokenize(const nne_batch_group_t *groups, size_t n_groups,
                       const nne_model_entry_t *e, nne_err_t *err) {
  size_t g;
  int rc;
  for (g = 0; g < n_groups; g++) {
    if (!groups[g].ids->has_text)
      continue;
    if (e->tokenizer == NULL)
      return nne_err_set(err, NNE_ESTATE,
                         "%s%s: text rows, but model '%s' has no "
                         "tokenizer (looked for %s); send token ids",
                         groups[g].prefix, row_field(&groups[g]), e->name, e->tokenizer_file);
    if ((rc = tokenize_group(&groups[g], e, err)) != 0)
      return rc;
  }
  return 0;
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
        return nne_err_set(err, NNE_EINVAL, "%s%s[%zu]: the row is "
                           "empty", groups[g].prefix, row_field(&groups[g]), r);
      if (ids->len[r] > e->max_seq_len)
        return nne_err_set(err, NNE_ERESOURCE,
                           "%s%s[%zu]: %u tokens exceed the model's "
                           "max_seq_len %u",
                           groups[g].prefix, row_field(&groups[g]), r, ids->len[r], e->max_seq_len);
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
                             "%s%s[%zu][%zu]: token id %" PRId64
                             " is outside the vocabulary [0, %" PRId64 ")",
                             groups[g].prefix, row_field(&groups[g]), r, c, t, e->vocab_size);
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
