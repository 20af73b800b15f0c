/* internal.h — what server.c and call.c share and nobody else sees: the
 * call's fields. Handlers use the functions of call.h. */
#ifndef NNE_SERVER_INTERNAL_H
#define NNE_SERVER_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "server/call.h"
#include "server/server.h"

struct nne_call {
  nne_server_t *srv;
  const nne_method_t *method; /* NULL for an unknown method */
  int method_index;           /* index in the table; -1: unknown method */
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_call_details details;  /* only filled for unknown methods */
  grpc_byte_buffer *payload;  /* the request, for registered methods */
  nne_tag_t arm_tag;          /* the new-call request */
  nne_tag_t close_tag;        /* RECV_CLOSE_ON_SERVER */
  nne_tag_t send_tag;         /* the send batch in flight */
  int cancelled_flag;         /* written by gRPC for close-on-server */
  atomic_int cancel;          /* 1 once the client is gone; jobs poll it */
  int refs;
  bool closed;                /* close-on-server completed */
  bool md_sent;               /* initial metadata went out */
  bool sending;               /* a send batch is in flight */
  bool finished;              /* the status batch was started */
  bool serving;               /* handed to its handler (not refused) */
  grpc_byte_buffer *send_bb;  /* the message in flight, freed on completion */
  grpc_slice status_details;
  void (*on_sent)(nne_call_t *call, bool ok);
  void (*on_cancel)(nne_call_t *call); /* runs once if the client goes */
  void *user;                 /* the handler's per-call state */
  void (*user_free)(void *user);
  uint64_t t_start_ns;
  /* For the access log line (server.c): */
  int status_code;            /* the gRPC status sent, once finished */
  char request_id[64];        /* x-request-id, or one of ours */
  char model[128];            /* nne_call_set_model */
  bool counted;               /* in the method's figures (/metrics) */
  /* On the server's list of sends in flight (send_timeout_s). */
  nne_call_t *send_prev, *send_next;
  bool on_send_list;
  uint64_t send_start_ns;
};

/* server.c: frees a call whose last reference went (call.c's unref) and
 * lets a drain move on. */
void nne__server_call_free(nne_call_t *call);

/* server.c: a response message of `bytes` went to gRPC (for /metrics). */
void nne__server_count_sent(nne_call_t *call, size_t bytes);

/* server.c: a send batch started / completed (the stall watch). */
void nne__server_send_started(nne_call_t *call);
void nne__server_send_done(nne_call_t *call);

/* server.c: the call ended (its status went out, or it is being freed);
 * counts it for /metrics once. */
void nne__server_count_end(nne_call_t *call);

#endif /* NNE_SERVER_INTERNAL_H */
