/* server.h — the gRPC server, its threads, and the life of one call.
 *
 * Threads (ARCHITECTURE.md):
 *   - gRPC's own I/O threads;
 *   - the completion-queue thread, which only blocks in
 *     grpc_completion_queue_next and hands every {tag, ok} to the loop
 *     (gRPC core 1.51 exposes no pollable fd);
 *   - the libuv loop thread, which owns every call, the model registry and
 *     all other state, and is the only thread that starts gRPC batches;
 *   - executors (executor.h), which run model work and report back to the
 *     loop.
 *
 * A call (nne_call_t) is created when gRPC hands us a new RPC, lives on the
 * loop thread, and is reference counted: the handler's reference, one per
 * batch in flight, one for the close-on-server op, one per executor job that
 * points at it. It is freed (and the live-call count drops) when the last
 * reference goes. Handlers reply with nne_call_reply / nne_call_fail (unary)
 * or nne_call_send + nne_call_finish (streams); at most one send batch may
 * be in flight per call, which is also the back-pressure for streams.
 *
 * Shutdown (first SIGINT/SIGTERM): health turns NOT_SERVING, the server
 * stops accepting calls, in-flight calls finish (or are cancelled after
 * --drain-timeout), then the completion queue is shut down and drained and
 * everything is destroyed in the order gRPC requires (NOTES-grpc-core.md).
 */
#ifndef NNE_SERVER_H
#define NNE_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <pb.h>
#include <uv.h>

#include "config.h"
#include "editor.h"
#include "base/error.h"
#include "executor.h"
#include "registry.h"

typedef struct nne_server nne_server_t;
typedef struct nne_call nne_call_t;
typedef struct nne_tag nne_tag_t;

/* Everything put on the completion queue is an nne_tag_t; its callback runs
 * on the loop thread with gRPC's success flag. */
struct nne_tag {
  void (*fn)(nne_server_t *srv, nne_tag_t *tag, bool ok);
};

/* A handler gets the call and its (only) request message, which it borrows:
 * the call frees it. */
typedef void (*nne_handler_fn)(nne_server_t *srv, nne_call_t *call,
                               grpc_byte_buffer *request);

typedef struct nne_method {
  const char *path; /* "/nnedit.v1.Models/List" */
  nne_handler_fn handler;
} nne_method_t;

enum { NNE_HEALTH_SERVING = 1, NNE_HEALTH_NOT_SERVING = 2 };

struct nne_call {
  nne_server_t *srv;
  const nne_method_t *method; /* NULL for an unknown method */
  int method_index;
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
  grpc_byte_buffer *send_bb;  /* the message in flight, freed on completion */
  grpc_slice status_details;
  void (*on_sent)(nne_call_t *call, bool ok);
  void (*on_cancel)(nne_call_t *call); /* runs once if the client goes */
  void *user;                 /* the handler's per-call state */
  void (*user_free)(void *user);
  uint64_t t_start_ns;
  nne_call_t *watch_next;     /* in srv->watchers (health Watch) */
  int watch_status;           /* what the watcher was last sent */
  int watch_want;             /* what it should see next */
  char watch_service[257];
};

typedef struct nne_event {
  nne_tag_t *tag;
  bool ok;
} nne_event_t;

struct nne_server {
  const nne_config_t *cfg;
  uv_loop_t *loop;
  grpc_server *server;
  grpc_completion_queue *cq;
  pthread_t cq_thread;
  bool cq_thread_started;
  uv_async_t cq_async;
  pthread_mutex_t ev_mu;
  nne_event_t *events;        /* handed from the cq thread to the loop */
  size_t n_events, cap_events;
  bool cq_thread_exited;      /* set under ev_mu when next() said SHUTDOWN */

  uv_signal_t sigint, sigterm;
  uv_timer_t drain_timer;
  nne_tag_t shutdown_tag;
  bool draining;
  bool shutdown_tag_seen;
  bool cq_shutdown_started;
  bool closed;                /* everything torn down */
  int signals_seen;

  void **method_handles;      /* per entry of the method table */
  int live_calls;             /* calls created and not yet freed */
  int armed_calls;            /* requests armed and not yet fired */
  uint64_t calls_total;

  nne_family_set_t *families; /* family name maps: builtin + repo's names.d/ */
  nne_registry_t registry;
  nne_editor_t editor;        /* edit sets of every model */
  nne_executor_t compute;     /* forward passes */
  nne_executor_t loader;      /* model loads and unloads */

  int health;                 /* NNE_HEALTH_* of the whole server */
  nne_call_t *watchers;       /* health Watch streams */

  int port;                   /* bound port (0 for unix sockets) */
  char bound_addr[300];
  int exit_code;
};

/* Sets the server up on the loop and starts serving: registry scan,
 * executors, gRPC server, completion-queue thread, signal handlers, ready
 * file, --load models. On failure everything already started is torn down
 * and err says why (the caller exits 1). */
int nne_server_start(nne_server_t *srv, const nne_config_t *cfg,
                     uv_loop_t *loop, nne_err_t *err);

/* Starts a graceful shutdown, as SIGTERM does. Loop thread only. */
void nne_server_drain(nne_server_t *srv, const char *why);

/* Changes the server's health and tells every Watch stream. */
void nne_server_set_health(nne_server_t *srv, int status);

/* Called by the registry when model work (load/unload) finished and the
 * server may now be able to finish a drain. */
void nne_server_poke(nne_server_t *srv);

/* ---- calls (loop thread only) --------------------------------------------- */

void nne_call_ref(nne_call_t *call);
void nne_call_unref(nne_call_t *call);

/* Unary success: sends msg (encoded with fields) and status OK. */
void nne_call_reply(nne_call_t *call, const pb_msgdesc_t *fields,
                    const void *msg);

/* Sends a status with a message (NNE_E* code mapped to the gRPC status). */
void nne_call_fail(nne_call_t *call, int code, const char *msg);
/* Same, from an nne_err_t. */
void nne_call_fail_err(nne_call_t *call, const nne_err_t *err);

/* Streams one message (ownership of bb passes to the call). on_sent runs on
 * the loop thread when the batch completes; ok is false if the client went
 * away. Only one send may be in flight: returns NNE_ESTATE otherwise. */
int nne_call_send(nne_call_t *call, grpc_byte_buffer *bb,
                  void (*on_sent)(nne_call_t *call, bool ok));

/* Encodes msg and streams it (nne_call_send). NNE_EINTERNAL if encoding
 * fails (the call is then failed with INTERNAL). */
int nne_call_send_msg(nne_call_t *call, const pb_msgdesc_t *fields,
                      const void *msg,
                      void (*on_sent)(nne_call_t *call, bool ok));

/* Ends a stream with status OK. */
void nne_call_finish(nne_call_t *call);

/* True once the client cancelled, the deadline passed, or the server is
 * cancelling calls. */
bool nne_call_cancelled(const nne_call_t *call);

/* Milliseconds left until the call's deadline (INT64_MAX when none). */
int64_t nne_call_ms_left(const nne_call_t *call);

#endif /* NNE_SERVER_H */
