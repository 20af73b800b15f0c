/* chunk.h — one piece of a tensor as a TensorChunk message, zero-copy.
 *
 * Forward and Trace stream saved tensors the same way: each response
 * message carries one TensorChunk (name, dtype, shape, total size, offset,
 * last flag, data) as field `outer_tag` of the RPC's response. The header
 * is encoded with nanopb into a small buffer; the payload is not copied:
 * it travels as a second slice that points into the tensor's host bytes and
 * holds a reference on the tensor until gRPC is done with it (on any of its
 * threads).
 *
 * Any thread: touches only its arguments.
 */
#ifndef NNE_CHUNK_H
#define NNE_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/byte_buffer.h>

#include "engine/engine.h"

/* The message carrying bytes [offset, offset + n) of `t`, whose host bytes
 * (nne_tensor_host_data) are `data`, `total` bytes in all. n may be 0 for
 * an empty tensor (its one chunk). Returns a new byte buffer (the caller
 * owns it: hand it to nne_call_send or destroy it), or NULL when the header
 * cannot be encoded (a name or shape over the proto's bounds). Takes its
 * own reference on `t`; the caller keeps its own. */
grpc_byte_buffer *nne_chunk_make(const char *name, nne_tensor_t *t,
                                 const uint8_t *data, size_t total,
                                 size_t offset, size_t n, uint32_t outer_tag);

/* The next chunk of a tensor being streamed: at most `max_chunk` bytes from
 * *sent on (one empty chunk for an empty tensor), advancing *sent and
 * setting *done once the tensor is out. NULL as nne_chunk_make. */
grpc_byte_buffer *nne_chunk_next(const char *name, nne_tensor_t *t,
                                 const uint8_t *data, size_t total,
                                 size_t max_chunk, uint32_t outer_tag,
                                 size_t *sent, bool *done);

#endif /* NNE_CHUNK_H */
