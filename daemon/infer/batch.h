/* batch.h — token rows off the wire into one padded [B, S] batch.
 *
 * Forward and Trace take their inputs the same way: repeated TokenRow (and
 * optionally MaskRow) fields, decoded through callbacks into bounded
 * arrays, checked against the model (vocabulary, max_batch, max_seq_len,
 * mask values), then laid out as one [B, S] int64 batch with padding on the
 * side the request asks for and each row's last real position.
 *
 * A batch is made of one or more *groups* of rows: Forward has one (its
 * input_ids), a trace has one per invoke, and the groups' rows are
 * concatenated in order. Messages name rows inside their group with the
 * group's prefix ("" for Forward: "input_ids[3]: ..."; a trace's invoke:
 * "traces[0].invokes[1].input_ids[3]: ...") and the batch as a whole by
 * `what` ("input_ids: the batch is empty").
 *
 *   nne_rows_dec_t ids, mask;       nne_rows_dec_init() each, point the
 *                                   request's callbacks at nne_rows_dec_cb
 *   ... decode ...
 *   nne_batch_check()               every failure names the row
 *   nne_batch_build() → nne_batch_t the padded arrays (nne_batch_free)
 *   nne_rows_free()
 *
 * Loop thread or any thread: touches only its arguments.
 */
#ifndef NNE_BATCH_H
#define NNE_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "nne_pb.h"
#include "registry.h"

/* Rows of a repeated TokenRow / MaskRow field, flattened: values of all rows
 * in `vals`, and each row's length in `len`. */
typedef struct nne_rows_dec {
  nne_pb_i64_dec_t vals;
  uint32_t *len;
  size_t n, cap, max_rows;
  bool overflow;      /* more than max_rows rows */
  uint32_t value_tag; /* TokenRow.ids or MaskRow.values */
  /* TokenRow.text: row i's text (malloc'd, NUL-terminated) or NULL; texts
   * take at most text_bytes_left bytes in all, each NNE_ROW_TEXT_MAX. */
  char **text;
  size_t *text_len;   /* bytes of text[i] (it may hold U+0000) */
  size_t text_cap, text_len_cap;
  size_t text_bytes_left;
  bool text_too_big;
  bool has_text;      /* some row is text */
} nne_rows_dec_t;

/* The most bytes of one text row. */
#define NNE_ROW_TEXT_MAX ((size_t)1 << 20)

/* Zeroes rd and sets its limits: at most max_rows rows and max_values
 * values in all. */
void nne_rows_dec_init(nne_rows_dec_t *rd, uint32_t value_tag,
                       size_t max_rows, size_t max_values);

/* nanopb decode callback for a repeated TokenRow / MaskRow field; arg is an
 * nne_rows_dec_t. */
bool nne_rows_dec_cb(pb_istream_t *s, const pb_field_t *f, void **arg);

/* Frees what decoding allocated (rd stays reusable after init). */
void nne_rows_free(nne_rows_dec_t *rd);

/* One group of rows: its ids, its mask (n == 0: none given), and the prefix
 * of its field names in messages. */
typedef struct nne_batch_group {
  nne_rows_dec_t *ids;
  const nne_rows_dec_t *mask;
  const char *prefix;
  const char *field;  /* the rows' field in messages; NULL: "input_ids" */
} nne_batch_group_t;

/* Turns the groups' text rows into ids with the model's tokenizer and
 * template (BOS where the model wants it), in place; groups without text
 * are left alone. A model without a tokenizer is NNE_ESTATE naming the file
 * looked for; a row with both ids and text, or a text row in a group that
 * has a mask, NNE_EINVAL; invalid UTF-8 NNE_EINVAL with its byte offset.
 * Call before nne_batch_check, which then checks the tokens like any. */
int nne_batch_tokenize(const nne_batch_group_t *groups, size_t n_groups,
                       const nne_model_entry_t *e, nne_err_t *err);

/* Checks the groups against the model, in this order: the batch is not
 * empty (NNE_EINVAL) and within max_batch (NNE_ERESOURCE), each row is
 * non-empty and within max_seq_len (NNE_ERESOURCE), token ids are in the
 * vocabulary, each
 * group's mask fits its rows (count, lengths, 0/1, not all padding), and
 * with no padding (PADDING_UNSPECIFIED) all rows have one length. padding
 * is the wire's value (checked by the caller). */
int nne_batch_check(const nne_batch_group_t *groups, size_t n_groups,
                    const char *what, int padding,
                    const nne_model_entry_t *e, nne_err_t *err);

/* The padded batch. */
typedef struct nne_batch {
  int64_t B, S;
  int64_t *ids;      /* [B, S] */
  int64_t *mask;     /* [B, S], or NULL when no row is padded and no group
                        gave a mask */
  int64_t *last_pos; /* [B]: each row's last real position */
} nne_batch_t;

/* Lays the checked groups' rows out in [B, S] with padding on the asked
 * side (pad_id in the padded places). A group without a mask gets ones on
 * its real tokens when a mask is needed. */
int nne_batch_build(nne_batch_t *b, const nne_batch_group_t *groups,
                    size_t n_groups, int padding, int64_t pad_id,
                    nne_err_t *err);
void nne_batch_free(nne_batch_t *b);

#endif /* NNE_BATCH_H */
