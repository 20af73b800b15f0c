/* rpc.h — the RPC handlers, one per method of the method table (server.c).
 *
 * A handler runs on the loop thread with the call and its request message
 * (borrowed). It validates everything the client sent, then either replies
 * at once or hands work to an executor and replies from the job's done
 * callback. Every failure is a status whose message names the bad field.
 */
#ifndef NNE_RPC_H
#define NNE_RPC_H

#include <grpc/byte_buffer.h>

#include "nne_pb.h"

#include "server/server.h"

void nne_rpc_models_list(nne_server_t *srv, nne_call_t *call,
                         grpc_byte_buffer *req);
void nne_rpc_models_load(nne_server_t *srv, nne_call_t *call,
                         grpc_byte_buffer *req);
void nne_rpc_models_unload(nne_server_t *srv, nne_call_t *call,
                           grpc_byte_buffer *req);
void nne_rpc_models_describe(nne_server_t *srv, nne_call_t *call,
                             grpc_byte_buffer *req);
void nne_rpc_inference_forward(nne_server_t *srv, nne_call_t *call,
                               grpc_byte_buffer *req);
void nne_rpc_inference_trace(nne_server_t *srv, nne_call_t *call,
                             grpc_byte_buffer *req);
void nne_rpc_models_graph(nne_server_t *srv, nne_call_t *call,
                          grpc_byte_buffer *req);
void nne_rpc_edits_apply(nne_server_t *srv, nne_call_t *call,
                         grpc_byte_buffer *req);
void nne_rpc_edits_list(nne_server_t *srv, nne_call_t *call,
                        grpc_byte_buffer *req);
void nne_rpc_edits_get(nne_server_t *srv, nne_call_t *call,
                       grpc_byte_buffer *req);
void nne_rpc_edits_drop(nne_server_t *srv, nne_call_t *call,
                        grpc_byte_buffer *req);
void nne_rpc_admin_stats(nne_server_t *srv, nne_call_t *call,
                         grpc_byte_buffer *req);
void nne_rpc_health_check(nne_server_t *srv, nne_call_t *call,
                          grpc_byte_buffer *req);
void nne_rpc_health_watch(nne_server_t *srv, nne_call_t *call,
                          grpc_byte_buffer *req);

/* The server's health changed: tell every Watch stream. */
void nne_rpc_health_changed(nne_server_t *srv);
/* Shutdown: send each Watch stream its last status and end it. */
void nne_rpc_health_close_watchers(nne_server_t *srv);

/* Decodes a request into msg; on failure fails the call with
 * INVALID_ARGUMENT (or RESOURCE_EXHAUSTED when a bound was hit) and returns
 * false. `overflow` (may be NULL) is a decode state's flag to consult. */
bool nne_rpc_decode(nne_call_t *call, grpc_byte_buffer *req,
                    const pb_msgdesc_t *fields, void *msg,
                    const bool *overflow);

#endif /* NNE_RPC_H */
