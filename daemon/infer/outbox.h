/* outbox.h — what an inference reply streams, in order: result messages
 * and tensors (as TensorChunk messages), one message in flight at a time.
 *
 * The job fills the outbox on its executor (tensors get their host bytes
 * there, so the loop only hands out slices of them); back on the loop
 * nne_outbox_start streams it and finishes the call:
 *
 *   Forward:  result, logits, saves...
 *   Trace:    per trace: its saves, its edit set's saves, its logits, its
 *             result
 *
 * A result item is encoded by the RPC (send_result) when its turn comes;
 * tensors are cut into chunks of at most chunk_bytes (infer/chunk.h), sent
 * zero-copy. A client that goes away stops the stream; the call's free
 * frees the job and its outbox.
 *
 * Convention: the call's user data (nne_call_set_user) begins with the
 * nne_outbox_t, as a job begins with its nne_job_t.
 */
#ifndef NNE_INFER_OUTBOX_H
#define NNE_INFER_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "base/error.h"
#include "infer/pass.h"
#include "nne_pb.h"
#include "server/call.h"

typedef struct nne_outbox_item {
  bool result;          /* a result message, else a tensor */
  size_t index;         /* result: which (a trace's index; 0 for Forward) */
  const char *name;     /* tensor: its name (borrowed from the job) */
  nne_tensor_t *t;      /* tensor: a reference */
  const uint8_t *p;     /* its host bytes */
  size_t bytes;
} nne_outbox_item_t;

/* Sends result `index` (nne_call_send_msg with on_sent passed through).
 * Returns 0, or non-zero after failing the call. */
typedef int (*nne_outbox_result_fn)(nne_call_t *call, void *ctx, size_t index,
                                    void (*on_sent)(nne_call_t *call,
                                                    bool ok));

typedef struct nne_outbox {
  nne_outbox_item_t *items;
  size_t n, cap;
  size_t next;          /* the item being sent */
  size_t sent;          /* bytes of it sent */
  uint32_t chunk_tag;   /* the response's TensorChunk field number */
  size_t chunk_bytes;
  nne_outbox_result_fn send_result;
  void *ctx;
} nne_outbox_t;

void nne_outbox_init(nne_outbox_t *ob, uint32_t chunk_tag, size_t chunk_bytes,
                     nne_outbox_result_fn send_result, void *ctx);
void nne_outbox_free(nne_outbox_t *ob);

/* Queues tensor t under name (takes the reference, also on failure) and
 * makes its host bytes: executor thread. */
int nne_outbox_tensor(nne_outbox_t *ob, const char *name, nne_tensor_t *t,
                      nne_err_t *err);
/* Queues result `index`. */
int nne_outbox_result(nne_outbox_t *ob, size_t index, nne_err_t *err);

/* Streams every item, then ends the call with OK (loop thread). */
void nne_outbox_start(nne_outbox_t *ob, nne_call_t *call);

/* Names of the tensors among items [from, to) into names (room for
 * to - from), in order; returns how many. */
size_t nne_outbox_names(const nne_outbox_t *ob, size_t from, size_t to,
                        const char **names);

/* ---- top-k rows in a result ---------------------------------------------
 * A repeated RowTopK field (ForwardResult.rows, TraceResult.rows) from a
 * pass's top-k and each row's last position: nne_outbox_rows_init, then
 * NNE_PB_ENC(field, nne_pb_list_enc, &rows.list); encode; free. */
typedef struct nne_outbox_rows {
  nne_pb_list_enc_t list;
  nne_pb_list_enc_t *tops;  /* per row */
  struct nne_outbox_row *row_ctx;
  const nne_infer_pass_t *pass;
  const int64_t *last_pos;
  int top_k;
} nne_outbox_rows_t;

int nne_outbox_rows_init(nne_outbox_rows_t *r, const nne_infer_pass_t *pass,
                         const int64_t *last_pos, int64_t rows, int top_k,
                         nne_err_t *err);
void nne_outbox_rows_free(nne_outbox_rows_t *r);

#endif /* NNE_INFER_OUTBOX_H */
