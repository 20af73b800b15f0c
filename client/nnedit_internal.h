/* nnedit_internal.h — pieces of libnnedit shared between its source files,
 * never installed. Names carry the nne_client__ prefix so that the shared
 * library exports nothing outside nne_client_*.
 *
 * The tensor reassembler (nne_client__asm_*) turns a run of TensorChunk
 * messages into one nne_client_tensor_t. Any RPC whose stream carries
 * tensors uses it the same way, once per TensorChunk it meets:
 *
 *   nne_client__asm_t a;
 *   nne_client__asm_init(&a, cli_max_tensor_bytes);
 *   for each TensorChunk in the stream:
 *     nnedit_v1_TensorChunk msg;
 *     nne_client__asm_arm(&a, &msg);         // zeroes msg, hooks `data`
 *     pb_decode(..., nnedit_v1_TensorChunk_fields, &msg) (on failure:
 *         nne_client__asm_error(&a, err) says whether the reassembler
 *         refused the bytes and why)
 *     nne_client__asm_feed(&a, &done, err);  // checks the chunk, advances
 *     if (done) nne_client__asm_take(&a, &tensor);  // caller owns it now
 *   at the end of the stream: nne_client__asm_active(&a) means a tensor
 *   was cut short;
 *   nne_client__asm_reset(&a);                // frees anything not taken
 *
 * The `data` bytes are decoded straight into the tensor's buffer at the
 * chunk's offset (one copy, from the gRPC slices to the destination). The
 * buffer is allocated once, at the first chunk, from its total_bytes, which
 * must equal numel(shape) * itemsize(dtype) and stay under the limit. Only
 * when a first chunk puts `data` before `total_bytes` on the wire (legal
 * protobuf, though no encoder we know does it) are its bytes held aside and
 * copied once the header is known.
 *
 * Checks, each failing with INTERNAL (RESOURCE_EXHAUSTED for the size limit)
 * and a message naming the tensor: a known dtype, 0 <= dims, at most 8 dims,
 * no overflow in the size, offsets contiguous from 0, chunks of one tensor
 * under one name and never interleaved with another's, `last` set exactly on
 * the chunk that completes the tensor.
 */
#ifndef NNEDIT_INTERNAL_H
#define NNEDIT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "nnedit.h"
#include "nnedit/v1/tensor.pb.h"

typedef struct nne_client__asm {
  uint64_t max_bytes;
  nne_client_tensor_t t; /* the tensor being assembled (owns t.data) */
  uint64_t got;          /* bytes of t received so far */
  bool active;           /* t is started and not complete */
  bool complete;         /* t is complete and not yet taken */
  /* State of the chunk being decoded (between arm and feed). */
  nnedit_v1_TensorChunk *msg;
  uint64_t placed; /* bytes the data callback put into t.data at `got` */
  bool allocated;  /* the data callback allocated t.data for a first chunk */
  uint8_t *stash;  /* data of a first chunk whose header came after it */
  size_t stash_len;
  nne_client_err_t err; /* why the data callback refused (code 0: it did not) */
} nne_client__asm_t;

void nne_client__asm_init(nne_client__asm_t *a, uint64_t max_bytes);
/* Zeroes *msg and points its data callback at the reassembler. msg must stay
 * alive until nne_client__asm_feed. */
void nne_client__asm_arm(nne_client__asm_t *a, nnedit_v1_TensorChunk *msg);
/* After a failed decode of an armed chunk: fills err and returns -code when
 * the data callback refused the chunk, else returns 0. */
int nne_client__asm_error(const nne_client__asm_t *a, nne_client_err_t *err);
/* Checks the decoded chunk and advances; *done is set when it completed a
 * tensor, which nne_client__asm_take then hands over. */
int nne_client__asm_feed(nne_client__asm_t *a, bool *done,
                         nne_client_err_t *err);
/* Moves the completed tensor into *out (the caller frees it with
 * nne_client_tensor_free) and makes the reassembler ready for the next. */
void nne_client__asm_take(nne_client__asm_t *a, nne_client_tensor_t *out);
/* True while a tensor is started and not complete. */
bool nne_client__asm_active(const nne_client__asm_t *a);
/* Bytes received / expected of the tensor in progress (for messages). */
uint64_t nne_client__asm_got(const nne_client__asm_t *a);
/* Frees everything held and returns to the state after init. */
void nne_client__asm_reset(nne_client__asm_t *a);

#endif /* NNEDIT_INTERNAL_H */
