/* server.c — the gRPC server's life: start, accept calls, drain, tear down.
 * See server.h for the threads and the shutdown order. */
#include "server/server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include "executor.h" /* nne_now_ns */
#include "base/log.h"
#include "base/vec.h"
#include "server/internal.h"

/* Requests kept armed per method, so that a burst of new calls does not wait
 * for the loop to re-arm one at a time. */
#define NNE_ARMED_PER_METHOD 4

/* Drain step 1 lasts while calls of ours are still being served, then until
 * no call has arrived for this long (a client on loopback or a LAN sends
 * within a few ms of the last answer it got)... */
#define NNE_DRAIN_QUIET_MS 50
/* ...or, once idle, this long at most, so that clients that keep retrying
 * cannot hold the daemon in step 1 (what they send later gets GOAWAY). */
#define NNE_DRAIN_REFUSE_MAX_MS 1000
/* After every call of ours has ended, how long gRPC may still hold streams
 * that never reached us before they are cancelled so the process can exit
 * (a client without a deadline would otherwise hold it to --drain-timeout). */
#define NNE_DRAIN_STRAY_MS 200

#define GENERIC_METHOD (-1)

static void maybe_finish_shutdown(nne_server_t *srv);
static void arm(nne_server_t *srv, int method_index);

/* ---- completion-queue thread ---------------------------------------------- */

static void *cq_main(void *arg) {
  nne_server_t *srv = arg;

  for (;;) {
    grpc_event ev = grpc_completion_queue_next(
        srv->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    pthread_mutex_lock(&srv->ev_mu);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) {
      srv->cq_thread_exited = true;
      pthread_mutex_unlock(&srv->ev_mu);
      uv_async_send(&srv->cq_async);
      return NULL;
    }
    if (ev.type == GRPC_OP_COMPLETE) {
      if (NNE_VEC_GROW(&srv->events, &srv->cap_events, srv->n_events + 1) !=
          0) {
        /* Losing an event would leak a call forever; nothing sane is left
         * to do. */
        nne_log_error("out of memory in the completion-queue thread");
        abort();
      }
      srv->events[srv->n_events].tag = ev.tag;
      srv->events[srv->n_events].ok = ev.success != 0;
      srv->n_events++;
    }
    pthread_mutex_unlock(&srv->ev_mu);
    /* Coalesces: the loop drains every queued event per callback. */
    uv_async_send(&srv->cq_async);
  }
}

static void on_cq_events(uv_async_t *h) {
  nne_server_t *srv = h->data;
  nne_event_t *batch;
  size_t n, i, cap;
  bool exited;

  pthread_mutex_lock(&srv->ev_mu);
  batch = srv->events;
  n = srv->n_events;
  cap = srv->cap_events;
  srv->events = NULL;
  srv->n_events = srv->cap_events = 0;
  exited = srv->cq_thread_exited;
  pthread_mutex_unlock(&srv->ev_mu);
  (void)cap;
  for (i = 0; i < n; i++)
    batch[i].tag->fn(srv, batch[i].tag, batch[i].ok);
  free(batch);
  if (exited)
    maybe_finish_shutdown(srv);
}

/* ---- calls ---------------------------------------------------------------- */

const char *nne_grpc_code_name(int code) {
  static const char *const names[] = {
      "OK",           "CANCELLED",          "UNKNOWN",
      "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION", "ABORTED",     "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",           "UNAVAILABLE",
      "DATA_LOSS",     "UNAUTHENTICATED"};
  return code >= 0 && code < (int)(sizeof names / sizeof names[0])
             ? names[code]
             : "UNKNOWN";
}

static nne_server_method_stats_t *stats_of(nne_call_t *call) {
  nne_server_t *srv = call->srv;
  if (srv->method_stats == NULL)
    return NULL;
  return &srv->method_stats[call->method_index == GENERIC_METHOD
                                ? srv->opts.n_methods
                                : (size_t)call->method_index];
}

void nne__server_count_sent(nne_call_t *call, size_t bytes) {
  nne_server_method_stats_t *ms = stats_of(call);
  if (ms != NULL)
    ms->bytes_sent += bytes;
}

/* ---- sends that do not move --------------------------------------------
 * gRPC's flow control holds a message until the client reads; a client
 * that stopped reading would hold its call's tensors (up to
 * --max-response-bytes) for as long as it lives. Every send batch in flight
 * is on a list; a 1 s timer ends the calls whose send is older than
 * send_timeout_s. The outbox has one message in flight per call, so the
 * memory a stalled call holds is what it already had, never more. */

void nne__server_send_started(nne_call_t *call) {
  nne_server_t *srv = call->srv;
  call->send_start_ns = nne_now_ns();
  call->send_prev = NULL;
  call->send_next = srv->sending;
  if (srv->sending != NULL)
    srv->sending->send_prev = call;
  srv->sending = call;
  call->on_send_list = true;
}

void nne__server_send_done(nne_call_t *call) {
  nne_server_t *srv = call->srv;
  if (!call->on_send_list)
    return;
  if (call->send_prev != NULL)
    call->send_prev->send_next = call->send_next;
  else
    srv->sending = call->send_next;
  if (call->send_next != NULL)
    call->send_next->send_prev = call->send_prev;
  call->send_prev = call->send_next = NULL;
  call->on_send_list = false;
}

static void on_stall_check(uv_timer_t *t) {
  nne_server_t *srv = t->data;
  uint64_t now = nne_now_ns(),
           limit = (uint64_t)(srv->opts.send_timeout_s * 1e9);
  nne_call_t *call;

  for (call = srv->sending; call != NULL; call = call->send_next) {
    if (now - call->send_start_ns < limit || nne_call_cancelled(call))
      continue;
    nne_log_warn("%s (request %s): the client read nothing for %.0f s "
                 "(--send-timeout); call ended",
                 call->method ? call->method->path : "?", call->request_id,
                 srv->opts.send_timeout_s);
    srv->stalled_total++;
    /* Its jobs stop (they poll the flag); the send completes not ok and
     * takes the call off the list. */
    atomic_store(&call->cancel, 1);
    grpc_call_cancel_with_status(call->call, GRPC_STATUS_DEADLINE_EXCEEDED,
                                 "the client read nothing within nneditd's "
                                 "--send-timeout",
                                 NULL);
  }
}

/* The status the call ended with: the one sent, or CANCELLED when the
 * client left first. */
static int end_code(nne_call_t *call) {
  if (call->finished)
    return call->status_code;
  return nne_call_cancelled(call) ? GRPC_STATUS_CANCELLED : GRPC_STATUS_UNKNOWN;
}

/* The call's end for /metrics: when its status goes out (call.c), so a
 * client that has its answer and then scrapes sees it counted; or, for a
 * call that never sent one (the client left), when it is freed. Once. */
void nne__server_count_end(nne_call_t *call) {
  nne_server_method_stats_t *ms = stats_of(call);
  int code;

  if (call->counted || call->t_start_ns == 0 || ms == NULL)
    return;
  call->counted = true;
  code = end_code(call);
  ms->in_flight--;
  ms->by_code[code >= 0 && code < NNE_GRPC_CODES ? code
                                                 : GRPC_STATUS_UNKNOWN]++;
  nne_prom_hist_observe(&ms->duration,
                        (double)(nne_now_ns() - call->t_start_ns) / 1e9);
}

/* One line per call that reached us, when it is over: what log shippers
 * index (--log-format json logs it at info; text, at debug). */
static void access_log(nne_call_t *call) {
  nne_log_level_t level =
      nne_log_get_format() == NNE_LOG_JSON ? NNE_LOG_INFO : NNE_LOG_DEBUG;
  nne_log_field_t f[6];
  char *peer;
  int code;

  if (call->t_start_ns == 0 || level < nne_log_get_level())
    return;
  code = end_code(call);
  peer = grpc_call_get_peer(call->call);
  f[0] = (nne_log_field_t){"method",
                           call->method != NULL ? call->method->path : "?", 0};
  f[1] = (nne_log_field_t){"model", call->model, 0};
  f[2] = (nne_log_field_t){"request_id", call->request_id, 0};
  f[3] = (nne_log_field_t){"peer", peer != NULL ? peer : "", 0};
  f[4] = (nne_log_field_t){"duration_ms", NULL,
                           (double)(nne_now_ns() - call->t_start_ns) / 1e6};
  f[5] = (nne_log_field_t){"code", nne_grpc_code_name(code), 0};
  nne_log_fields(level, f, 6, "call");
  gpr_free(peer);
}

/* x-request-id when the client sent a sane one (printable, bounded), else
 * ours: r<serial>. */
static void set_request_id(nne_server_t *srv, nne_call_t *call) {
  size_t i, k;
  for (i = 0; i < call->md.count; i++)
    if (grpc_slice_str_cmp(call->md.metadata[i].key, "x-request-id") == 0) {
      const char *v = (const char *)GRPC_SLICE_START_PTR(call->md.metadata[i].value);
      size_t n = GRPC_SLICE_LENGTH(call->md.metadata[i].value);
      if (n == 0 || n >= sizeof call->request_id)
        break;
      for (k = 0; k < n; k++)
        if (v[k] <= ' ' || v[k] > '~')
          break;
      if (k < n)
        break;
      memcpy(call->request_id, v, n);
      call->request_id[n] = '\0';
      return;
    }
  snprintf(call->request_id, sizeof call->request_id, "r%llu",
           (unsigned long long)srv->calls_total);
}

void nne__server_call_free(nne_call_t *call) {
  nne_server_t *srv = call->srv;

  nne__server_send_done(call);
  if (call->call != NULL) {
    nne__server_count_end(call);
    access_log(call);
  }
  if (call->user_free != NULL)
    call->user_free(call->user);
  if (call->call != NULL)
    grpc_call_unref(call->call);
  grpc_metadata_array_destroy(&call->md);
  if (call->method_index == GENERIC_METHOD)
    grpc_call_details_destroy(&call->details);
  if (call->payload != NULL)
    grpc_byte_buffer_destroy(call->payload);
  if (call->send_bb != NULL)
    grpc_byte_buffer_destroy(call->send_bb);
  grpc_slice_unref(call->status_details);
  if (call->serving)
    srv->serving_calls--;
  free(call);
  srv->live_calls--;
  maybe_finish_shutdown(srv);
}

static void on_close(nne_server_t *srv, nne_tag_t *tag, bool ok) {
  nne_call_t *call = (nne_call_t *)((char *)tag - offsetof(nne_call_t, close_tag));
  (void)srv;
  (void)ok;
  call->closed = true;
  if (call->cancelled_flag) {
    void (*cb)(nne_call_t *) = call->on_cancel;
    atomic_store(&call->cancel, 1);
    call->on_cancel = NULL;
    if (cb != NULL)
      cb(call);
  }
  nne_call_unref(call);
}

static void start_call(nne_server_t *srv, nne_call_t *call) {
  grpc_op op;
  grpc_call_error e;

  /* Close-on-server first: its `cancelled` flag is how we learn that the
   * client went away or the deadline passed. */
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &call->cancelled_flag;
  call->close_tag.fn = on_close;
  nne_call_ref(call);
  e = grpc_call_start_batch(call->call, &op, 1, &call->close_tag, NULL);
  if (e != GRPC_CALL_OK) {
    nne_log_error("cannot watch call for close: %d", (int)e);
    call->closed = true;
    atomic_store(&call->cancel, 1);
    nne_call_unref(call);
  }
  (void)srv;
}

/* The one choke point of authorization: every method's role (its table
 * entry) against the call's bearer token (server/auth.h). 0 to go on. */
static int authorize(nne_server_t *srv, nne_call_t *call, nne_err_t *err) {
  const nne_method_t *m = call->method;
  const char *authz = NULL, *name;
  size_t len = 0, i;

  if (srv->opts.auth == NULL || m->role == 0)
    return 0;
  for (i = 0; i < call->md.count; i++)
    if (grpc_slice_str_cmp(call->md.metadata[i].key, "authorization") == 0) {
      authz = (const char *)GRPC_SLICE_START_PTR(call->md.metadata[i].value);
      len = GRPC_SLICE_LENGTH(call->md.metadata[i].value);
      break;
    }
  /* "Edits/Apply" from "/nnedit.v1.Edits/Apply". */
  name = strrchr(m->path, '.');
  name = name != NULL ? name + 1 : m->path;
  return nne_auth_check(srv->opts.auth, m->role, name, authz, len, err);
}

static void on_new_call(nne_server_t *srv, nne_tag_t *tag, bool ok) {
  nne_call_t *call = (nne_call_t *)((char *)tag - offsetof(nne_call_t, arm_tag));
  int mi = call->method_index;

  srv->armed_calls--;
  if (!ok) {
    /* The server is shutting down and cancelled the armed request. */
    nne_call_unref(call);
    return;
  }
  /* Re-armed during drain step 1 too: a call that finds no armed request
   * waits inside gRPC, and the shutdown would kill it as CANCELLED. */
  if (!srv->shutdown_started)
    arm(srv, mi);
  srv->calls_total++;
  call->t_start_ns = nne_now_ns();
  if (stats_of(call) != NULL)
    stats_of(call)->in_flight++;
  set_request_id(srv, call);
  srv->last_call_ns = call->t_start_ns;
  start_call(srv, call);
  if (mi != GENERIC_METHOD &&
      (!srv->draining || srv->opts.methods[mi].during_drain)) {
    call->serving = true;
    srv->serving_calls++;
  }
  if (srv->draining && mi != GENERIC_METHOD &&
      !srv->opts.methods[mi].during_drain) {
    /* UNAVAILABLE is what clients retry against another replica. Health
     * still answers (NOT_SERVING) so that probes see the drain. */
    nne_call_fail(call, NNE_EUNAVAIL,
                  "nneditd is shutting down (draining); retry on another "
                  "replica or once it is back");
  } else if (mi == GENERIC_METHOD) {
    char *m = grpc_slice_to_c_string(call->details.method);
    nne_err_t err;
    nne_log_debug("unknown method %s", m);
    nne_err_set(&err, NNE_EUNIMPL,
                "method %s is not served by nneditd %s (it serves "
                "nnedit.v1 and grpc.health.v1)",
                m, NNE_VERSION);
    gpr_free(m);
    nne_call_fail_err(call, &err);
  } else {
    nne_err_t err;
    if (authorize(srv, call, &err) != 0)
      nne_call_fail_err(call, &err); /* the message holds no token */
    else
      srv->opts.methods[mi].handler(call, call->payload);
  }
  nne_call_unref(call); /* the handler's reference */
}

static void arm(nne_server_t *srv, int mi) {
  nne_call_t *call = calloc(1, sizeof *call);
  grpc_call_error e;

  if (call == NULL) {
    nne_log_error("out of memory arming a call");
    return;
  }
  call->srv = srv;
  call->method_index = mi;
  call->method = mi == GENERIC_METHOD ? NULL : &srv->opts.methods[mi];
  call->refs = 1;
  call->status_details = grpc_empty_slice();
  atomic_init(&call->cancel, 0);
  call->arm_tag.fn = on_new_call;
  grpc_metadata_array_init(&call->md);
  srv->live_calls++;
  if (mi == GENERIC_METHOD) {
    grpc_call_details_init(&call->details);
    e = grpc_server_request_call(srv->server, &call->call, &call->details,
                                 &call->md, srv->cq, srv->cq, &call->arm_tag);
  } else {
    e = grpc_server_request_registered_call(
        srv->server, srv->method_handles[mi], &call->call, &call->deadline,
        &call->md, &call->payload, srv->cq, srv->cq, &call->arm_tag);
  }
  if (e != GRPC_CALL_OK) {
    nne_log_error("cannot arm a call for %s: %d",
                  mi == GENERIC_METHOD ? "unknown methods"
                                       : srv->opts.methods[mi].path,
                  (int)e);
    call->call = NULL;
    nne_call_unref(call);
    return;
  }
  srv->armed_calls++;
}

/* ---- shutdown ------------------------------------------------------------- */

static void on_shutdown_tag(nne_server_t *srv, nne_tag_t *tag, bool ok) {
  (void)tag;
  (void)ok;
  srv->shutdown_tag_seen = true;
  nne_log_debug("gRPC server shut down (%d calls still live)", srv->live_calls);
  maybe_finish_shutdown(srv);
}

static void start_shutdown(nne_server_t *srv);

static void on_drain_timeout(uv_timer_t *t) {
  nne_server_t *srv = t->data;
  if (!srv->shutdown_started)
    start_shutdown(srv);
  if (srv->serving_calls > 0)
    nne_log_warn("drain timeout: cancelling %d calls still in flight",
                 srv->serving_calls);
  else
    nne_log_debug("drain: cancelling streams that never reached nneditd");
  grpc_server_cancel_all_calls(srv->server);
}

/* Drain step 2: stop listening, GOAWAY, fail the armed requests. */
static void start_shutdown(nne_server_t *srv) {
  srv->shutdown_started = true;
  uv_timer_stop(&srv->quiet_timer);
  srv->shutdown_tag.fn = on_shutdown_tag;
  grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);
  maybe_finish_shutdown(srv);
}

/* Step 1 → 2 once nothing of ours is being served and calls have stopped
 * arriving (server.h). */
static bool app_busy(nne_server_t *srv) {
  return srv->opts.app_busy != NULL && srv->opts.app_busy(srv->opts.app);
}

static void on_quiet_tick(uv_timer_t *t) {
  nne_server_t *srv = t->data;
  uint64_t now = nne_now_ns(), since;

  if (srv->serving_calls > 0 || app_busy(srv)) {
    srv->idle_since_ns = 0;
    return;
  }
  if (srv->idle_since_ns == 0)
    srv->idle_since_ns = now;
  since = srv->last_call_ns > srv->idle_since_ns ? srv->last_call_ns
                                                  : srv->idle_since_ns;
  if (now - since >= (uint64_t)NNE_DRAIN_QUIET_MS * 1000000u ||
      now - srv->idle_since_ns >=
          (uint64_t)NNE_DRAIN_REFUSE_MAX_MS * 1000000u)
    start_shutdown(srv);
}

static void close_cb_noop(uv_handle_t *h) { (void)h; }

/* Runs whenever something that shutdown waits for may have finished. The
 * order below is the one gRPC core needs (NOTES-grpc-core.md). */
static void maybe_finish_shutdown(nne_server_t *srv) {
  bool exited;

  if (!srv->shutdown_started || srv->closed)
    return;
  if (!srv->cq_shutdown_started) {
    if (!srv->shutdown_tag_seen && !srv->stray_timer_started &&
        srv->live_calls == srv->armed_calls && !app_busy(srv)) {
      /* Every call of ours has ended, yet gRPC still holds a stream (one
       * that arrived as the shutdown began and never reached us): do not
       * let it hold the process until --drain-timeout. The quiet timer,
       * idle in step 2, is reused for that grace. */
      srv->stray_timer_started = true;
      uv_timer_start(&srv->quiet_timer, on_drain_timeout, NNE_DRAIN_STRAY_MS,
                     0);
    }
    if (!srv->shutdown_tag_seen || srv->live_calls > 0 || app_busy(srv))
      return;
    srv->cq_shutdown_started = true;
    grpc_completion_queue_shutdown(srv->cq);
    return; /* the cq thread reports GRPC_QUEUE_SHUTDOWN through cq_async */
  }
  pthread_mutex_lock(&srv->ev_mu);
  exited = srv->cq_thread_exited && srv->n_events == 0;
  pthread_mutex_unlock(&srv->ev_mu);
  if (!exited)
    return;
  srv->closed = true;
  pthread_join(srv->cq_thread, NULL);
  srv->cq_thread_started = false;
  grpc_server_destroy(srv->server);
  srv->server = NULL;
  grpc_completion_queue_destroy(srv->cq);
  srv->cq = NULL;
  uv_timer_stop(&srv->drain_timer);
  uv_close((uv_handle_t *)&srv->drain_timer, close_cb_noop);
  uv_timer_stop(&srv->quiet_timer);
  uv_close((uv_handle_t *)&srv->quiet_timer, close_cb_noop);
  uv_timer_stop(&srv->stall_timer);
  uv_close((uv_handle_t *)&srv->stall_timer, close_cb_noop);
  uv_close((uv_handle_t *)&srv->sigint, close_cb_noop);
  uv_close((uv_handle_t *)&srv->sigterm, close_cb_noop);
  uv_close((uv_handle_t *)&srv->sighup, close_cb_noop);
  uv_close((uv_handle_t *)&srv->cq_async, close_cb_noop);
  free(srv->method_handles);
  srv->method_handles = NULL;
  nne_log_info("stopped after %llu calls",
               (unsigned long long)srv->calls_total);
  if (srv->opts.on_stopped != NULL)
    srv->opts.on_stopped(srv->opts.app);
  /* After on_stopped: the application reads these until it closes. */
  free(srv->method_stats);
  srv->method_stats = NULL;
}

void nne_server_poke(nne_server_t *srv) { maybe_finish_shutdown(srv); }

const char *nne_server_bound_addr(const nne_server_t *srv) {
  return srv->bound_addr;
}

void nne_server_stats(const nne_server_t *srv, nne_server_stats_t *out) {
  out->calls_total = srv->calls_total;
  out->live_calls = srv->live_calls - srv->armed_calls;
}

const nne_server_method_stats_t *nne_server_method_stats(
    const nne_server_t *srv, size_t i) {
  if (srv->method_stats == NULL || i > srv->opts.n_methods)
    return NULL;
  return &srv->method_stats[i];
}

void nne_server_drain(nne_server_t *srv, const char *why, int exit_code) {
  if (srv->draining)
    return;
  srv->draining = true;
  srv->exit_code = exit_code;
  srv->drain_start_ns = nne_now_ns();
  nne_log_info("%s: draining %d live calls (grace %.0f s)", why,
               srv->live_calls - srv->armed_calls, srv->opts.drain_timeout_s);
  if (srv->opts.on_drain != NULL)
    srv->opts.on_drain(srv->opts.app);
  /* Step 1: refuse new calls ourselves while calls in flight finish and
   * until new ones stop coming (server.h); --drain-timeout bounds it all. */
  uv_timer_start(&srv->quiet_timer, on_quiet_tick, 10, 10);
  uv_timer_start(&srv->drain_timer, on_drain_timeout,
                 (uint64_t)(srv->opts.drain_timeout_s * 1000.0), 0);
}

static void on_hangup(uv_signal_t *h, int signum) {
  nne_server_t *srv = h->data;
  (void)signum;
  if (srv->opts.on_hangup != NULL)
    srv->opts.on_hangup(srv->opts.app);
}

static void on_signal(uv_signal_t *h, int signum) {
  nne_server_t *srv = h->data;
  if (++srv->signals_seen > 1) {
    /* The operator insists: leave now, without cleanup. */
    static const char msg[] = "nneditd: second signal, exiting at once\n";
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
    }
    _exit(128 + signum);
  }
  nne_server_drain(srv, signum == SIGINT ? "SIGINT" : "SIGTERM", 0);
}

/* ---- start ---------------------------------------------------------------- */

/* "host:0" with the bound port substituted, for logs and the ready file. */
static void format_bound(nne_server_t *srv, const char *listen) {
  const char *colon = strrchr(listen, ':');
  if (strncmp(listen, "unix:", 5) == 0 || colon == NULL || srv->port <= 0) {
    snprintf(srv->bound_addr, sizeof srv->bound_addr, "%s", listen);
    return;
  }
  snprintf(srv->bound_addr, sizeof srv->bound_addr, "%.*s:%d",
           (int)(colon - listen), listen, srv->port);
}

int nne_server_start(nne_server_t *srv, const nne_server_opts_t *opts,
                     uv_loop_t *loop, nne_err_t *err) {
  grpc_arg args[3];
  grpc_channel_args chargs;
  grpc_server_credentials *creds;
  size_t i;
  int rc;

  memset(srv, 0, sizeof *srv);
  srv->opts = *opts;
  srv->loop = loop;
  pthread_mutex_init(&srv->ev_mu, NULL);

  grpc_init();
  args[0].type = GRPC_ARG_INTEGER;
  args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[0].value.integer = (int)opts->max_message_bytes;
  /* Responses are chunked well below this; it only guards mistakes. */
  args[1].type = GRPC_ARG_INTEGER;
  args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
  args[1].value.integer = 64 << 20;
  /* gRPC sets SO_REUSEPORT by default: a second daemon on a port in use
   * would "serve" too and take half the calls. */
  args[2].type = GRPC_ARG_INTEGER;
  args[2].key = GRPC_ARG_ALLOW_REUSEPORT;
  args[2].value.integer = 0;
  chargs.num_args = 3;
  chargs.args = args;
  srv->server = grpc_server_create(&chargs, NULL);
  srv->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(srv->server, srv->cq, NULL);
  srv->method_handles =
      calloc(opts->n_methods ? opts->n_methods : 1, sizeof *srv->method_handles);
  if (srv->method_handles == NULL) {
    rc = nne_err_set(err, NNE_ENOMEM, "out of memory");
    goto fail_grpc;
  }
  srv->method_stats =
      calloc(opts->n_methods + 1, sizeof *srv->method_stats);
  if (srv->method_stats == NULL) {
    rc = nne_err_set(err, NNE_ENOMEM, "out of memory");
    goto fail_grpc;
  }
  for (i = 0; i <= opts->n_methods; i++)
    nne_prom_hist_init(&srv->method_stats[i].duration,
                       nne_prom_seconds_buckets, nne_prom_seconds_n);
  for (i = 0; i < opts->n_methods; i++) {
    srv->method_handles[i] = grpc_server_register_method(
        srv->server, opts->methods[i].path, NULL,
        GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    if (srv->method_handles[i] == NULL) {
      rc = nne_err_set(err, NNE_EINTERNAL, "cannot register %s",
                       opts->methods[i].path);
      goto fail_grpc;
    }
  }
  if (opts->tls_cert_pem != NULL) {
    grpc_ssl_pem_key_cert_pair pair;
    pair.private_key = opts->tls_key_pem;
    pair.cert_chain = opts->tls_cert_pem;
    creds = grpc_ssl_server_credentials_create_ex(
        opts->tls_client_ca_pem, &pair, 1,
        opts->tls_client_ca_pem != NULL
            ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
            : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        NULL);
    if (creds == NULL) {
      rc = nne_err_set(err, NNE_EINVAL, "--tls-cert/--tls-key: gRPC refused "
                       "the certificate or key");
      goto fail_grpc;
    }
  } else {
    creds = grpc_insecure_server_credentials_create();
  }
  srv->port = grpc_server_add_http2_port(srv->server, opts->listen, creds);
  grpc_server_credentials_release(creds);
  if (srv->port == 0) {
    const char *colon = strrchr(opts->listen, ':');
    if (strncmp(opts->listen, "unix:", 5) != 0 && colon != NULL)
      rc = nne_err_set(err, NNE_EUNAVAIL,
                       "--listen %s: cannot bind port %s (another process "
                       "holds it, or the address is not valid)",
                       opts->listen, colon + 1);
    else
      rc = nne_err_set(err, NNE_EUNAVAIL,
                       "--listen %s: cannot bind (in use, or not a valid "
                       "address)",
                       opts->listen);
    goto fail_grpc;
  }
  format_bound(srv, opts->listen);
  grpc_server_start(srv->server);

  rc = uv_async_init(loop, &srv->cq_async, on_cq_events);
  if (rc != 0) {
    rc = nne_err_set(err, NNE_EINTERNAL, "uv_async_init: %s", uv_strerror(rc));
    goto fail_started;
  }
  srv->cq_async.data = srv;
  if (pthread_create(&srv->cq_thread, NULL, cq_main, srv) != 0) {
    uv_close((uv_handle_t *)&srv->cq_async, close_cb_noop);
    rc = nne_err_set(err, NNE_EINTERNAL, "cannot start the cq thread");
    goto fail_started;
  }
  srv->cq_thread_started = true;

  for (i = 0; i < opts->n_methods; i++) {
    int k;
    for (k = 0; k < NNE_ARMED_PER_METHOD; k++)
      arm(srv, (int)i);
  }
  /* Unknown methods get UNIMPLEMENTED instead of hanging until the
   * client's deadline. */
  arm(srv, GENERIC_METHOD);
  arm(srv, GENERIC_METHOD);

  uv_timer_init(loop, &srv->drain_timer);
  srv->drain_timer.data = srv;
  uv_timer_init(loop, &srv->quiet_timer);
  srv->quiet_timer.data = srv;
  uv_timer_init(loop, &srv->stall_timer);
  srv->stall_timer.data = srv;
  if (opts->send_timeout_s > 0)
    uv_timer_start(&srv->stall_timer, on_stall_check, 1000, 1000);
  uv_signal_init(loop, &srv->sigint);
  uv_signal_init(loop, &srv->sigterm);
  srv->sigint.data = srv->sigterm.data = srv;
  uv_signal_start(&srv->sigint, on_signal, SIGINT);
  uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
  uv_signal_init(loop, &srv->sighup);
  srv->sighup.data = srv;
  uv_signal_start(&srv->sighup, on_hangup, SIGHUP);

  nne_log_info("nneditd %s serving on %s", NNE_VERSION, srv->bound_addr);
  return 0;

fail_started:
  grpc_server_shutdown_and_notify(srv->server, srv->cq, NULL);
  grpc_server_cancel_all_calls(srv->server);
fail_grpc:
  if (srv->server != NULL) {
    grpc_completion_queue_shutdown(srv->cq);
    while (grpc_completion_queue_next(srv->cq,
                                      gpr_inf_future(GPR_CLOCK_MONOTONIC),
                                      NULL)
               .type != GRPC_QUEUE_SHUTDOWN)
      ;
    grpc_server_destroy(srv->server);
    grpc_completion_queue_destroy(srv->cq);
  }
  free(srv->method_handles);
  free(srv->method_stats);
  srv->method_stats = NULL;
  grpc_shutdown_blocking();
  return rc;
}
