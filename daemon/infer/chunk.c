/* chunk.c — see chunk.h. */
#include "infer/chunk.h"

#include <stdio.h>
#include <string.h>

#include <grpc/slice.h>

#include "nne_pb.h"
#include "nnedit/v1/tensor.pb.h"

static void tensor_slice_free(void *p) {
  nne_tensor_unref(p);
}

grpc_byte_buffer *nne_chunk_make(const char *name, nne_tensor_t *t,
                                 const uint8_t *data, size_t total,
                                 size_t offset, size_t n, uint32_t outer_tag) {
  nnedit_v1_TensorChunk hdr = nnedit_v1_TensorChunk_init_zero;
  /* The header without data: name and shape are bounded by the options. */
  uint8_t inner[1024], framed[1100];
  pb_ostream_t os;
  size_t framed_len;
  grpc_slice slices[2];
  grpc_byte_buffer *bb;
  int i, nd;

  /* A name cut to fit would reach the client as another tensor's. */
  if (strlen(name) >= sizeof hdr.name)
    return NULL;
  memcpy(hdr.name, name, strlen(name) + 1);
  hdr.dtype = (nnedit_v1_DType)nne_tensor_dtype(t);
  nd = nne_tensor_ndim(t);
  if (nd < 0 || (size_t)nd > sizeof hdr.shape / sizeof hdr.shape[0])
    return NULL;
  hdr.shape_count = (pb_size_t)nd;
  for (i = 0; i < nd; i++)
    hdr.shape[i] = nne_tensor_shape(t)[i];
  hdr.total_bytes = total;
  hdr.offset = offset;
  hdr.last = offset + n == total;
  os = pb_ostream_from_buffer(inner, sizeof inner);
  if (!pb_encode(&os, nnedit_v1_TensorChunk_fields, &hdr))
    return NULL;
  framed_len = nne_pb_frame_chunk(inner, os.bytes_written,
                                  nnedit_v1_TensorChunk_data_tag, n, outer_tag,
                                  framed, sizeof framed);
  if (framed_len == 0)
    return NULL;
  slices[0] = grpc_slice_from_copied_buffer((const char *)framed, framed_len);
  slices[1] = n > 0 ? grpc_slice_new_with_user_data((void *)(data + offset), n,
                                                    tensor_slice_free,
                                                    nne_tensor_ref(t))
                    : grpc_empty_slice();
  bb = grpc_raw_byte_buffer_create(slices, 2);
  grpc_slice_unref(slices[0]);
  grpc_slice_unref(slices[1]);
  return bb;
}

grpc_byte_buffer *nne_chunk_next(const char *name, nne_tensor_t *t,
                                 const uint8_t *data, size_t total,
                                 size_t max_chunk, uint32_t outer_tag,
                                 size_t *sent, bool *done) {
  size_t n = total - *sent;
  grpc_byte_buffer *bb;
  if (n > max_chunk)
    n = max_chunk;
  bb = nne_chunk_make(name, t, data, total, *sent, n, outer_tag);
  if (bb == NULL)
    return NULL;
  *sent += n;
  *done = *sent == total;
  return bb;
}
