/* call.h — the call contract: the one header the gRPC server and the RPC
 * handlers share (Triton's grpc_handler.h idea).
 *
 * The server (server.h) owns gRPC; a handler owns what one method means.
 * Between them there is only this: a method table entry (path + handler)
 * and an opaque call on which the handler replies.
 *
 *   handler(call, request)          on the loop thread, request borrowed
 *     nne_call_reply / nne_call_fail            unary: the one answer
 *     nne_call_send ... nne_call_finish         server streams, one send in
 *                                               flight (the back-pressure)
 *     nne_call_ref / nne_call_unref             keep the call past the
 *                                               handler (an executor job)
 *
 * Calls are reference counted on the loop thread: the handler's reference
 * (dropped by the server when the handler returns), one per batch in
 * flight, one for gRPC's close-on-server op, and whatever the handler
 * takes. The call is freed with its last reference; its user data is then
 * freed with the function given to nne_call_set_user.
 *
 * Every function here is for the loop thread only, except
 * nne_call_cancelled and the flag of nne_call_cancel_flag, which executor
 * threads poll.
 */
#ifndef NNE_CALL_H
#define NNE_CALL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <grpc/byte_buffer.h>
#include <pb.h>

#include "base/error.h"

typedef struct nne_call nne_call_t;

/* A handler gets the call and its (only) request message, which it borrows:
 * the call frees it. */
typedef void (*nne_handler_fn)(nne_call_t *call, grpc_byte_buffer *request);

typedef struct nne_method {
  const char *path;       /* "/nnedit.v1.Models/List" */
  nne_handler_fn handler;
  /* Served while the daemon drains (the health service: probes must see
   * NOT_SERVING); every other method is then refused with UNAVAILABLE. */
  bool during_drain;
  /* The role a caller's token needs (server/auth.h NNE_ROLE_*); 0: none. */
  unsigned role;
} nne_method_t;

/* The application the server was started with (nne_server_opts_t.app). */
void *nne_call_app(const nne_call_t *call);

/* The method table entry of the call. */
const nne_method_t *nne_call_method(const nne_call_t *call);

void nne_call_ref(nne_call_t *call);
void nne_call_unref(nne_call_t *call);

/* Unary success: sends msg (encoded with fields) and status OK. An encoding
 * failure sends INTERNAL instead. */
void nne_call_reply(nne_call_t *call, const pb_msgdesc_t *fields,
                    const void *msg);

/* Sends a status with a message (an NNE_E* code mapped to its gRPC status,
 * error.h). */
void nne_call_fail(nne_call_t *call, int code, const char *msg);
/* Same, from an nne_err_t. */
void nne_call_fail_err(nne_call_t *call, const nne_err_t *err);

/* Streams one message (ownership of bb passes to the call). on_sent runs on
 * the loop thread when the batch completes; ok is false if the client went
 * away. Only one send may be in flight: NNE_ESTATE otherwise. */
int nne_call_send(nne_call_t *call, grpc_byte_buffer *bb,
                  void (*on_sent)(nne_call_t *call, bool ok));

/* Encodes msg and streams it (nne_call_send). NNE_EINTERNAL if encoding
 * fails (the call is then failed with INTERNAL). */
int nne_call_send_msg(nne_call_t *call, const pb_msgdesc_t *fields,
                      const void *msg,
                      void (*on_sent)(nne_call_t *call, bool ok));

/* Ends a stream with status OK. */
void nne_call_finish(nne_call_t *call);

/* A send is in flight / the final status went out. */
bool nne_call_sending(const nne_call_t *call);
bool nne_call_finished(const nne_call_t *call);

/* True once the client cancelled, the deadline passed, or the server is
 * cancelling calls. Any thread. */
bool nne_call_cancelled(const nne_call_t *call);

/* The flag nne_call_cancelled reads, for code that runs on an executor and
 * must not see the call itself (the runtime's hooks). Valid while a
 * reference on the call is held. */
atomic_int *nne_call_cancel_flag(nne_call_t *call);

/* Milliseconds left until the call's deadline (INT64_MAX when none). */
int64_t nne_call_ms_left(const nne_call_t *call);

/* When the server received the call (monotonic ns, nne_now_ns). */
uint64_t nne_call_start_ns(const nne_call_t *call);

/* The handler's per-call state: freed with user_free (may be NULL) when the
 * call is freed. Replaces what was set before without freeing it. */
void nne_call_set_user(nne_call_t *call, void *user,
                       void (*user_free)(void *user));
void *nne_call_user(const nne_call_t *call);

/* The model the call is about, for the access log line (copied). */
void nne_call_set_model(nne_call_t *call, const char *model);

/* Runs cb once, on the loop thread, if the client goes away (cancel,
 * deadline, transport error) before the call ends. NULL clears it. */
void nne_call_on_cancel(nne_call_t *call, void (*cb)(nne_call_t *call));

#endif /* NNE_CALL_H */
