/* daemon.h — the application: everything nneditd is, apart from gRPC.
 *
 * main.c builds one nne_daemon_t from the configuration, starts the server
 * (server/server.h) with the RPC method table (rpc/rpc.h) and the daemon as
 * the calls' application, and runs the loop:
 *
 *   nne_daemon_init(&d, &cfg, loop, &err)    executors, family maps, the
 *                                            model registry, edit sets,
 *                                            health; --load names checked
 *   nne_server_start(&srv, &opts, ...)       opts from nne_daemon_server_opts
 *   nne_daemon_start(&d)                     --load models; liveness SERVING
 *
 * Health (server/health.h), the Kubernetes way:
 *   ""                 liveness: SERVING while the process serves
 *   "nnedit.ready"     readiness: SERVING once every --load model is LOADED
 *                      (a failed one excused only with --allow-failed-loads);
 *                      --ready-file is written then, not when bound
 *   "model/NAME"       SERVING while model NAME is LOADED
 *   "nnedit.v1.Models", ... each service: as liveness
 * A --load that fails stops the daemon (exit 1) unless
 * --allow-failed-loads.
 *   uv_run(loop)                             until a drain has finished
 *
 * The server calls back into the daemon through the opts: app_busy (jobs or
 * loads a drain must wait for), on_drain (health turns NOT_SERVING, Watch
 * streams end), on_stopped (nne_daemon_close: executors stop, models and
 * edit sets are freed). Handlers reach the daemon with nne_call_app(call).
 *
 * Loop thread only, but for what executors run.
 */
#ifndef NNE_DAEMON_H
#define NNE_DAEMON_H

#include <stdbool.h>

#include <uv.h>

#include "executor.h"
#include "config.h"
#include "edit/editor.h"
#include "edit/store.h"
#include "base/error.h"
#include "names/names.h"
#include "registry.h"
#include "server/auth.h"
#include "server/health.h"
#include "server/server.h"

typedef struct nne_daemon {
  const nne_config_t *cfg;    /* borrowed for the daemon's life */
  uv_loop_t *loop;
  nne_family_set_t *families; /* family name maps: builtin + repo names.d/ */
  nne_registry_t registry;
  nne_editor_t editor;        /* edit sets of every model */
  nne_executor_t compute;     /* forward passes, backend builds */
  nne_executor_t loader;      /* model loads and unloads */
  uint64_t kv_bytes;          /* KV caches of running Generates (loop) */
  nne_health_t health;        /* "" and each service; Watch streams */
  nne_auth_t auth;            /* --token-file's tokens (empty: no auth) */
  char *tls_cert, *tls_key, *tls_client_ca; /* PEM texts, or NULL */
  nne_server_t *server;       /* the server serving it (for pokes, stats) */
  struct nne_metrics_http *metrics; /* --metrics-listen's endpoint, or NULL */
  nne_edit_store_t store;     /* --state-dir's edit sets (dir NULL: off) */
  struct nne_restore_queue *restore_q; /* models whose sets wait (restore.h) */
  nne_edit_record_t *restore_recs; /* the model being restored: its records */
  size_t restore_n, restore_next;
  char restore_model[NNE_MODEL_NAME_MAX + 1];
  bool restore_running;       /* an Apply of a record is in flight */
  bool open;                  /* init succeeded and close has not run */
  bool ready;                 /* readiness reached (the ready file written) */
  bool draining;
} nne_daemon_t;

/* Builds the application; on failure nothing is left open (the caller
 * exits 1) and err says why (a malformed family map names its file and
 * line; an unknown --load model is NOT_FOUND). */
int nne_daemon_init(nne_daemon_t *d, const nne_config_t *cfg, uv_loop_t *loop,
                    nne_err_t *err);

/* Server options that call back into d; the caller fills in nothing else.
 * methods/n_methods: the RPC table. */
void nne_daemon_server_opts(nne_daemon_t *d, const nne_method_t *methods,
                            size_t n_methods, nne_server_opts_t *opts);

/* Once the server serves: starts the --load models and turns health
 * SERVING. */
void nne_daemon_start(nne_daemon_t *d, nne_server_t *srv);

/* Frees everything; the executors' loop handles close with the next loop
 * turn. Idempotent. */
void nne_daemon_close(nne_daemon_t *d);

/* Re-evaluates readiness ("nnedit.ready", --ready-file): every --load
 * model loaded and no restore pending. */
void nne_daemon_readiness(nne_daemon_t *d);

/* The services the daemon answers health checks for (besides "", the
 * readiness service and the per-model ones). */
extern const char *const nne_daemon_services[];

#define NNE_HEALTH_READY "nnedit.ready"
#define NNE_HEALTH_MODEL_PREFIX "model/"

#endif /* NNE_DAEMON_H */
