/* call.c — replying on a call: unary replies, stream sends, statuses; the
 * call's accessors. Its life (creation, close, free) is in server.c; the
 * contract in call.h. */
#include <stdio.h>
#include <string.h>

#include <grpc/support/time.h>

#include "base/fault.h"
#include "base/log.h"
#include "nne_pb.h"
#include "server/internal.h"

void nne_call_ref(nne_call_t *call) { call->refs++; }

void nne_call_unref(nne_call_t *call) {
  if (--call->refs == 0)
    nne__server_call_free(call);
}

void *nne_call_app(const nne_call_t *call) { return call->srv->opts.app; }

const nne_method_t *nne_call_method(const nne_call_t *call) {
  return call->method;
}

bool nne_call_sending(const nne_call_t *call) { return call->sending; }

bool nne_call_finished(const nne_call_t *call) { return call->finished; }

atomic_int *nne_call_cancel_flag(nne_call_t *call) { return &call->cancel; }

uint64_t nne_call_start_ns(const nne_call_t *call) { return call->t_start_ns; }

void nne_call_set_user(nne_call_t *call, void *user,
                       void (*user_free)(void *user)) {
  call->user = user;
  call->user_free = user_free;
}

void *nne_call_user(const nne_call_t *call) { return call->user; }

void nne_call_set_model(nne_call_t *call, const char *model) {
  snprintf(call->model, sizeof call->model, "%s", model);
}

void nne_call_on_cancel(nne_call_t *call, void (*cb)(nne_call_t *call)) {
  call->on_cancel = cb;
}

static void on_batch(nne_server_t *srv, nne_tag_t *tag, bool ok) {
  nne_call_t *call = (nne_call_t *)((char *)tag - offsetof(nne_call_t, send_tag));
  void (*cb)(nne_call_t *, bool) = call->on_sent;

  (void)srv;
  nne__server_send_done(call);
  call->sending = false;
  call->on_sent = NULL;
  if (call->send_bb != NULL) {
    grpc_byte_buffer_destroy(call->send_bb);
    call->send_bb = NULL;
  }
  if (!ok)
    atomic_store(&call->cancel, 1);
  if (cb != NULL)
    cb(call, ok);
  nne_call_unref(call); /* the batch's reference */
}

/* Starts a batch of up to three ops: initial metadata (first time only), a
 * message, a status. */
static int start_batch(nne_call_t *call, grpc_byte_buffer *bb, bool status,
                       grpc_status_code code,
                       void (*on_sent)(nne_call_t *, bool)) {
  grpc_op ops[3];
  size_t n = 0;
  grpc_call_error e;

  if (call->sending || call->finished) {
    nne_log_error("call %s: a batch is already in flight",
                  call->method ? call->method->path : "(unknown)");
    if (bb != NULL)
      grpc_byte_buffer_destroy(bb);
    return NNE_ESTATE;
  }
  memset(ops, 0, sizeof ops);
  if (!call->md_sent) {
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].data.send_initial_metadata.count = 0;
    n++;
    call->md_sent = true;
  }
  if (bb != NULL) {
    nne__server_count_sent(call, grpc_byte_buffer_length(bb));
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = bb;
    n++;
  }
  if (status) {
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.trailing_metadata_count = 0;
    ops[n].data.send_status_from_server.status = code;
    call->status_code = (int)code;
    ops[n].data.send_status_from_server.status_details =
        code == GRPC_STATUS_OK ? NULL : &call->status_details;
    n++;
    call->finished = true;
    nne__server_count_end(call);
  }
  call->send_bb = bb;
  call->sending = true;
  call->on_sent = on_sent;
  call->send_tag.fn = on_batch;
  nne_call_ref(call);
  e = bb != NULL && NNE_FAULT(NNE_FAULT_SEND)
          ? GRPC_CALL_ERROR
          : grpc_call_start_batch(call->call, ops, n, &call->send_tag, NULL);
  if (e != GRPC_CALL_OK) {
    nne_log_error("%s: grpc_call_start_batch: %d",
                  call->method ? call->method->path : "(unknown)", (int)e);
    call->sending = false;
    call->on_sent = NULL;
    call->send_bb = NULL;
    if (bb != NULL)
      grpc_byte_buffer_destroy(bb);
    /* The call ends here, whoever asked for the send: the client must not
     * wait for its deadline, and the call's jobs stop (they poll cancel).
     * Later sends on it are refused by the check above. */
    atomic_store(&call->cancel, 1);
    call->finished = true;
    call->status_code = GRPC_STATUS_INTERNAL;
    nne__server_count_end(call);
    grpc_call_cancel_with_status(call->call, GRPC_STATUS_INTERNAL,
                                 "nneditd could not send a response message",
                                 NULL);
    nne_call_unref(call);
    return NNE_EINTERNAL;
  }
  nne__server_send_started(call);
  return 0;
}

void nne_call_fail(nne_call_t *call, int code, const char *msg) {
  int status = nne_err_grpc_status(code);
  if (status == 0)
    status = GRPC_STATUS_UNKNOWN;
  grpc_slice_unref(call->status_details);
  call->status_details = grpc_slice_from_copied_string(msg);
  nne_log_debug("%s -> %d: %s", call->method ? call->method->path : "?",
                status, msg);
  start_batch(call, NULL, true, (grpc_status_code)status, NULL);
}

void nne_call_fail_err(nne_call_t *call, const nne_err_t *err) {
  nne_call_fail(call, err->code, err->msg);
}

void nne_call_reply(nne_call_t *call, const pb_msgdesc_t *fields,
                    const void *msg) {
  grpc_byte_buffer *bb;
  char why[256];

  if (!nne_pb_encode_bb(fields, msg, &bb, why, sizeof why)) {
    char m[300];
    snprintf(m, sizeof m, "cannot encode the reply: %s", why);
    nne_call_fail(call, NNE_EINTERNAL, m);
    return;
  }
  start_batch(call, bb, true, GRPC_STATUS_OK, NULL);
}

int nne_call_send(nne_call_t *call, grpc_byte_buffer *bb,
                  void (*on_sent)(nne_call_t *call, bool ok)) {
  return start_batch(call, bb, false, GRPC_STATUS_OK, on_sent);
}

int nne_call_send_msg(nne_call_t *call, const pb_msgdesc_t *fields,
                      const void *msg,
                      void (*on_sent)(nne_call_t *call, bool ok)) {
  grpc_byte_buffer *bb;
  char why[256];

  if (!nne_pb_encode_bb(fields, msg, &bb, why, sizeof why)) {
    char m[300];
    snprintf(m, sizeof m, "cannot encode a stream message: %s", why);
    nne_call_fail(call, NNE_EINTERNAL, m);
    return NNE_EINTERNAL;
  }
  return nne_call_send(call, bb, on_sent);
}

void nne_call_finish(nne_call_t *call) {
  start_batch(call, NULL, true, GRPC_STATUS_OK, NULL);
}

bool nne_call_cancelled(const nne_call_t *call) {
  return atomic_load(&((nne_call_t *)call)->cancel) != 0;
}

int64_t nne_call_ms_left(const nne_call_t *call) {
  gpr_timespec now, left;
  if (call->deadline.clock_type == GPR_TIMESPAN || call->deadline.tv_sec == 0 ||
      gpr_time_cmp(call->deadline, gpr_inf_future(call->deadline.clock_type)) ==
          0)
    return INT64_MAX;
  now = gpr_now(call->deadline.clock_type);
  left = gpr_time_sub(call->deadline, now);
  return (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
}
