/* server.h — the gRPC server: its threads, its calls, its drain.
 *
 * The server knows gRPC core and nothing of what the methods mean: it is
 * started with a method table (call.h) and an opaque application pointer
 * that every call hands to its handler. It never includes a handler.
 *
 * Threads (ARCHITECTURE.md):
 *   - gRPC's own I/O threads;
 *   - the completion-queue thread, which only blocks in
 *     grpc_completion_queue_next and hands every {tag, ok} to the loop
 *     (gRPC core 1.51 exposes no pollable fd);
 *   - the libuv loop thread, which owns every call and all application
 *     state, and is the only thread that starts gRPC batches;
 *   - the application's executors, which report back to the loop.
 *
 * Shutdown (first SIGINT/SIGTERM, or nne_server_drain) is a drain in two
 * steps, so that every call a client sent ends OK or UNAVAILABLE — never
 * CANCELLED (which tells a client it cancelled the call itself, so retry
 * policies do not retry it) and never unanswered (issue 8):
 *   1. refusing: the application is told (on_drain: health turns
 *      NOT_SERVING); requests stay armed (re-armed as they fire) so that
 *      gRPC matches every arriving call to us at once, and every new call
 *      to a method not marked during_drain is answered UNAVAILABLE
 *      "nneditd is shutting down"; calls in flight go on to their end;
 *   2. once nothing of ours is being served, the application is not busy,
 *      and no new call has arrived for NNE_DRAIN_QUIET_MS (or, idle, after
 *      NNE_DRAIN_REFUSE_MAX_MS), grpc_server_shutdown_and_notify: gRPC stops
 *      listening and sends GOAWAY (clients see UNAVAILABLE for anything
 *      later). Shutting down while calls still arrive is what used to
 *      CANCEL them: gRPC kills a call that found no armed request
 *      ("zombie") or that arrived after the shutdown began. Only a call
 *      sent in the instant after a quiet idle period can still meet that
 *      fate.
 * --drain-timeout, counted from the signal, bounds both steps: then every
 * call still in flight is cancelled. Last the completion queue is shut down
 * and drained, everything is destroyed in the order gRPC requires
 * (NOTES-grpc-core.md), and the application's on_stopped runs (it closes
 * its executors; then the loop has nothing left and uv_run returns).
 */
#ifndef NNE_SERVER_H
#define NNE_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <uv.h>

#include "base/error.h"
#include "base/prom.h"
#include "server/auth.h"
#include "server/call.h"

typedef struct nne_server nne_server_t;
typedef struct nne_tag nne_tag_t;

/* Everything put on the completion queue is an nne_tag_t; its callback runs
 * on the loop thread with gRPC's success flag. */
struct nne_tag {
  void (*fn)(nne_server_t *srv, nne_tag_t *tag, bool ok);
};

typedef struct nne_server_opts {
  const char *listen;          /* "127.0.0.1:50051", "unix:/path", ... */
  size_t max_message_bytes;    /* largest request accepted */
  double drain_timeout_s;
  /* A response message gRPC has not taken after this long (a client that
   * stopped reading: flow control holds the send) ends the call; 0: never. */
  double send_timeout_s;
  const nne_method_t *methods; /* borrowed for the server's life */
  size_t n_methods;
  void *app;                   /* nne_call_app() of every call */
  /* The application has work that a drain must wait for (jobs, loads). */
  bool (*app_busy)(void *app);
  /* Step 1 of a drain began (health turns NOT_SERVING). */
  void (*on_drain)(void *app);
  /* Everything of the server is torn down; the application closes its
   * own loop handles (executors) now. */
  void (*on_stopped)(void *app);
  /* SIGHUP: the application reloads what it reloads (the token file). */
  void (*on_hangup)(void *app);
  /* Bearer tokens checked against every method's role at the one choke
   * point (auth.h); NULL: no authorization. Borrowed; the application may
   * change what it points to (a reload) between calls. */
  const nne_auth_t *auth;
  /* TLS: PEM texts (NUL-terminated, borrowed until start returns); NULL
   * cert: plaintext. With client_ca_pem, clients must present a
   * certificate that CA signed (mTLS). */
  const char *tls_cert_pem, *tls_key_pem, *tls_client_ca_pem;
} nne_server_opts_t;

typedef struct nne_event {
  nne_tag_t *tag;
  bool ok;
} nne_event_t;

/* Counters for Admin.Stats. */
typedef struct nne_server_stats {
  uint64_t calls_total;
  int live_calls;              /* calls created and not yet freed */
} nne_server_stats_t;

/* What the server saw of one method (for /metrics): every call that reached
 * it, refused ones (auth, drain) included. Updated on the loop thread. */
#define NNE_GRPC_CODES 17 /* OK .. UNAUTHENTICATED */
typedef struct nne_server_method_stats {
  uint64_t by_code[NNE_GRPC_CODES]; /* calls ended, by gRPC status code */
  uint64_t bytes_sent;         /* response message bytes handed to gRPC */
  int in_flight;               /* arrived and not yet ended */
  nne_prom_hist_t duration;    /* seconds from arrival to the end */
} nne_server_method_stats_t;

/* Caller-allocated; fields are the server's own. */
struct nne_server {
  nne_server_opts_t opts;
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

  uv_signal_t sigint, sigterm, sighup;
  uv_timer_t drain_timer;
  uv_timer_t quiet_timer;     /* drain step 1 → 2 (see the top comment) */
  uv_timer_t stall_timer;     /* looks for sends stuck past send_timeout_s */
  nne_call_t *sending;        /* calls with a send batch in flight */
  uint64_t stalled_total;     /* calls ended by send_timeout_s */
  nne_tag_t shutdown_tag;
  bool draining;              /* a drain began: new calls are refused */
  bool shutdown_started;      /* grpc_server_shutdown_and_notify was called */
  bool stray_timer_started;   /* step 2's grace for streams we never saw */
  bool shutdown_tag_seen;
  bool cq_shutdown_started;
  bool closed;                /* everything torn down */
  int signals_seen;
  uint64_t drain_start_ns;
  uint64_t last_call_ns;      /* when the last new call arrived */
  uint64_t idle_since_ns;     /* step 1: nothing served since (0: busy) */

  void **method_handles;      /* per entry of the method table */
  /* Per entry of the method table, and one more for unknown methods. */
  nne_server_method_stats_t *method_stats;
  int live_calls;             /* calls created and not yet freed */
  int armed_calls;            /* requests armed and not yet fired */
  int serving_calls;          /* calls handed to handlers, not yet freed */
  uint64_t calls_total;

  int port;                   /* bound port (0 for unix sockets) */
  char bound_addr[300];
  int exit_code;              /* what main returns after the loop */
};

/* Binds, starts the completion-queue thread, arms every method, installs
 * the signal handlers and writes the ready file. On failure nothing is left
 * running and err says why (the caller exits 1). opts is copied; what it
 * points to must outlive the server. */
int nne_server_start(nne_server_t *srv, const nne_server_opts_t *opts,
                     uv_loop_t *loop, nne_err_t *err);

/* Starts a graceful shutdown, as SIGTERM does. exit_code is what the
 * process should exit with (a failed ready file: 1). Loop thread only. */
void nne_server_drain(nne_server_t *srv, const char *why, int exit_code);

/* The application's work (a job, a load) finished: a drain may be able to
 * move on. Loop thread only. */
void nne_server_poke(nne_server_t *srv);

void nne_server_stats(const nne_server_t *srv, nne_server_stats_t *out);

/* Method i's figures (i < opts.n_methods), or with i == opts.n_methods
 * those of calls to methods the server does not serve. Borrowed until the
 * server stops. */
const nne_server_method_stats_t *nne_server_method_stats(
    const nne_server_t *srv, size_t i);

/* "OK", "CANCELLED", ... "UNAUTHENTICATED"; "UNKNOWN" outside the range.
 * A static string. */
const char *nne_grpc_code_name(int code);

/* "host:port" as bound (the port substituted when 0 was asked for). */
const char *nne_server_bound_addr(const nne_server_t *srv);

#endif /* NNE_SERVER_H */
