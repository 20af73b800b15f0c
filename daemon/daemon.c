/* daemon.c — see daemon.h. */
#include "daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "base/log.h"
#include "metrics.h"
#include "restore.h"

const char *const nne_daemon_services[] = {
    "nnedit.v1.Models", "nnedit.v1.Inference", "nnedit.v1.Edits",
    "nnedit.v1.Admin",  "grpc.health.v1.Health", NULL,
};

static void update_readiness(nne_daemon_t *d);

/* "model/NAME" follows the model's state. */
static void on_model_state(void *ctx, const nne_model_entry_t *e) {
  nne_daemon_t *d = ctx;
  char service[NNE_HEALTH_SERVICE_MAX];
  nne_err_t err;
  snprintf(service, sizeof service, NNE_HEALTH_MODEL_PREFIX "%s", e->name);
  if (nne_health_set(&d->health, service,
                     e->state == NNE_MODEL_LOADED && !d->draining
                         ? NNE_HEALTH_SERVING
                         : NNE_HEALTH_NOT_SERVING,
                     &err) != 0)
    nne_log_warn("health of %s: %s", e->name, err.msg);
  if (e->state == NNE_MODEL_LOADED && !d->draining)
    nne_restore_model(d, e->name);
  update_readiness(d);
}

/* A job or a load finished: a drain may move on. */
/* Each executor thread works on its own CUDA streams and waits for them at
 * the end of every job, so that nothing a job leaves behind (results, freed
 * tensors) is still being computed when the loop or another thread touches
 * it. Nothing happens on a machine without CUDA. */
static void engine_thread_start(void *ctx) {
  nne_err_t err;
  (void)ctx;
  if (nne_engine_thread_attach(&err) != 0)
    nne_log_warn("executor thread: %s (it uses the default stream)", err.msg);
}

static void engine_after_work(void *ctx) {
  nne_err_t err;
  (void)ctx;
  if (nne_engine_thread_sync(&err) != 0)
    nne_log_error("executor thread: %s", err.msg);
}

static const nne_executor_hooks_t engine_hooks = {engine_thread_start,
                                                  engine_after_work, NULL};

static void poke(void *ctx) {
  nne_daemon_t *d = ctx;
  if (d->server != NULL)
    nne_server_poke(d->server);
}

/* A PEM file's text (NUL-terminated, malloc'd), bounded: certificates and
 * keys are kilobytes. */
static int read_pem(const char *flag, const char *path, char **out,
                    nne_err_t *err) {
  FILE *f;
  char *buf;
  size_t n;

  *out = NULL;
  if (path == NULL)
    return 0;
  f = fopen(path, "rb");
  if (f == NULL)
    return nne_err_set(err, NNE_EIO, "%s %s: %s", flag, path,
                       strerror(errno));
  buf = malloc((1u << 20) + 1);
  if (buf == NULL) {
    fclose(f);
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  n = fread(buf, 1, 1u << 20, f);
  if (ferror(f) || !feof(f) || n == 0) {
    fclose(f);
    free(buf);
    return nne_err_set(err, NNE_EIO, "%s %s: empty, unreadable or over 1 MiB",
                       flag, path);
  }
  fclose(f);
  buf[n] = '\0';
  if (strstr(buf, "-----BEGIN ") == NULL) {
    free(buf);
    return nne_err_set(err, NNE_EINVAL, "%s %s: not a PEM file", flag, path);
  }
  *out = buf;
  return 0;
}

static void free_pems(nne_daemon_t *d) {
  if (d->tls_key != NULL)
    memset(d->tls_key, 0, strlen(d->tls_key)); /* a private key */
  free(d->tls_cert);
  free(d->tls_key);
  free(d->tls_client_ca);
  d->tls_cert = d->tls_key = d->tls_client_ca = NULL;
}

int nne_daemon_init(nne_daemon_t *d, const nne_config_t *cfg, uv_loop_t *loop,
                    nne_err_t *err) {
  char dir[4096];
  size_t i;
  int rc;

  memset(d, 0, sizeof *d);
  d->cfg = cfg;
  d->loop = loop;
  nne_health_init(&d->health);
  rc = nne_health_set(&d->health, "", NNE_HEALTH_NOT_SERVING, err);
  if (rc == 0)
    rc = nne_health_set(&d->health, NNE_HEALTH_READY, NNE_HEALTH_NOT_SERVING,
                        err);
  for (i = 0; rc == 0 && nne_daemon_services[i] != NULL; i++)
    rc = nne_health_set(&d->health, nne_daemon_services[i],
                        NNE_HEALTH_NOT_SERVING, err);
  if (rc != 0)
    goto fail_health;
  nne_auth_init(&d->auth);
  if (cfg->token_file != NULL &&
      (rc = nne_auth_load(&d->auth, cfg->token_file, err)) != 0)
    goto fail_health;
  if ((rc = read_pem("--tls-cert", cfg->tls_cert, &d->tls_cert, err)) != 0 ||
      (rc = read_pem("--tls-key", cfg->tls_key, &d->tls_key, err)) != 0 ||
      (rc = read_pem("--tls-client-ca", cfg->tls_client_ca, &d->tls_client_ca,
                     err)) != 0)
    goto fail_health;
  if (!nne_config_loopback(cfg->listen) &&
      (cfg->tls_cert == NULL || cfg->token_file == NULL))
    nne_log_warn("--listen %s is reachable from other hosts %s (--insecure)",
                 cfg->listen,
                 cfg->tls_cert == NULL ? "in the clear" : "without tokens");
  rc = nne_executor_init_hooks(&d->loader, loop, "loader", 1, 64,
                               &engine_hooks, err);
  if (rc != 0)
    goto fail_health;
  rc = nne_executor_init_hooks(&d->compute, loop, "compute", cfg->workers,
                               cfg->max_queue, &engine_hooks, err);
  if (rc != 0)
    goto fail_loader;
  d->loader.after_done = d->compute.after_done = poke;
  d->loader.after_done_ctx = d->compute.after_done_ctx = d;
  /* Family maps: the builtin ones, overridden or extended by
   * <repo>/names.d/<family>.json. A malformed map stops the start with the
   * file and line. */
  snprintf(dir, sizeof dir, "%s/names.d", cfg->model_repo);
  rc = nne_family_set_load(dir, &d->families, err);
  if (rc != 0)
    goto fail_compute;
  rc = nne_registry_init(&d->registry, cfg->model_repo, cfg->device,
                         cfg->max_batch, cfg->max_seq_len, &d->loader, err);
  if (rc != 0)
    goto fail_families;
  d->registry.families = d->families;
  d->registry.backend_cache_bytes = cfg->backend_cache_bytes;
  d->registry.on_idle = poke;
  d->registry.on_idle_ctx = d;
  nne_editor_init(&d->editor);
  if (cfg->state_dir != NULL &&
      (rc = nne_edit_store_open(&d->store, cfg->state_dir, err)) != 0)
    goto fail_registry;
  {
    /* The models the first scan found; later ones are reported as found. */
    nne_model_entry_t *e;
    for (e = d->registry.entries; e != NULL; e = e->next)
      on_model_state(d, e);
    d->registry.on_state = on_model_state;
    d->registry.on_state_ctx = d;
  }
  for (i = 0; i < (size_t)cfg->n_loads; i++) {
    nne_model_entry_t *e;
    rc = nne_registry_lookup(&d->registry, "--load", cfg->loads[i], &e, err);
    if (rc != 0)
      goto fail_registry;
  }
  d->open = true;
  return 0;

fail_registry:
  nne_edit_store_close(&d->store);
  nne_registry_close(&d->registry);
fail_families:
  nne_family_set_free(d->families);
  d->families = NULL;
fail_compute:
  nne_executor_close(&d->compute);
fail_loader:
  nne_executor_close(&d->loader);
fail_health:
  free_pems(d);
  nne_auth_free(&d->auth);
  nne_health_free(&d->health);
  return rc;
}

static bool app_busy(void *app) {
  nne_daemon_t *d = app;
  return d->registry.busy > 0 || nne_executor_pending(&d->compute) > 0;
}

static void on_drain(void *app) {
  nne_daemon_t *d = app;
  d->draining = true;
  nne_restore_clear(d); /* the sets stay on disk for the next start */
  nne_health_set_all(&d->health, NNE_HEALTH_NOT_SERVING);
  nne_log_info("health: NOT_SERVING");
  nne_health_close(&d->health); /* Watch streams send it and end */
}

static void on_stopped(void *app) { nne_daemon_close(app); }

/* SIGHUP: the token file again; the old tokens stay if it does not parse
 * (a typo must not lock everyone out, or let everyone in). */
static void on_hangup(void *app) {
  nne_daemon_t *d = app;
  nne_auth_t fresh;
  nne_err_t err;
  if (d->cfg->token_file == NULL)
    return;
  nne_auth_init(&fresh);
  if (nne_auth_load(&fresh, d->cfg->token_file, &err) != 0) {
    nne_log_error("SIGHUP: %s; keeping the %zu tokens loaded before",
                  err.msg, d->auth.n);
    return;
  }
  nne_auth_free(&d->auth);
  d->auth = fresh;
  nne_log_info("SIGHUP: %s reloaded (%zu tokens)", d->cfg->token_file,
               d->auth.n);
}

void nne_daemon_server_opts(nne_daemon_t *d, const nne_method_t *methods,
                            size_t n_methods, nne_server_opts_t *opts) {
  memset(opts, 0, sizeof *opts);
  opts->listen = d->cfg->listen;
  opts->max_message_bytes = d->cfg->max_message_bytes;
  opts->drain_timeout_s = d->cfg->drain_timeout_s;
  opts->send_timeout_s = d->cfg->send_timeout_s;
  opts->methods = methods;
  opts->n_methods = n_methods;
  opts->app = d;
  opts->app_busy = app_busy;
  opts->on_drain = on_drain;
  opts->on_stopped = on_stopped;
  opts->on_hangup = on_hangup;
  opts->auth = d->cfg->token_file != NULL ? &d->auth : NULL;
  opts->tls_cert_pem = d->tls_cert;
  opts->tls_key_pem = d->tls_key;
  opts->tls_client_ca_pem = d->tls_client_ca;
}

static int write_ready_file(const char *path, const char *addr,
                            nne_err_t *err) {
  char tmp[4096];
  FILE *f;

  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >=
      sizeof tmp)
    return nne_err_set(err, NNE_EINVAL, "--ready-file: path too long");
  f = fopen(tmp, "w");
  if (f == NULL)
    return nne_err_set(err, NNE_EIO, "--ready-file %s: %s", tmp,
                       strerror(errno));
  fprintf(f, "%s\n", addr);
  /* Renamed into place: whoever waits never reads half a line. */
  if (fclose(f) != 0 || rename(tmp, path) != 0) {
    unlink(tmp);
    return nne_err_set(err, NNE_EIO, "--ready-file %s: %s", path,
                       strerror(errno));
  }
  return 0;
}

/* Readiness: serving, and every --load model LOADED (FAILED counts as done
 * only with --allow-failed-loads). Reached once: the ready file is written
 * then. A --load model unloaded later makes it NOT_SERVING again. */
static void update_readiness(nne_daemon_t *d) {
  bool ready = d->server != NULL && !d->draining;
  nne_err_t err;
  int i;

  if (nne_restore_busy(d))
    ready = false; /* clients told "ready" must find their sets */
  for (i = 0; ready && i < d->cfg->n_loads; i++) {
    nne_model_entry_t *e;
    if (nne_registry_lookup(&d->registry, "--load", d->cfg->loads[i], &e,
                            &err) != 0)
      ready = false;
    else if (e->state != NNE_MODEL_LOADED &&
             !(e->state == NNE_MODEL_FAILED && d->cfg->allow_failed_loads))
      ready = false;
  }
  nne_health_set(&d->health, NNE_HEALTH_READY,
                 ready ? NNE_HEALTH_SERVING : NNE_HEALTH_NOT_SERVING, &err);
  if (!ready || d->ready)
    return;
  d->ready = true;
  nne_log_info("ready: %d model%s loaded", d->cfg->n_loads,
               d->cfg->n_loads == 1 ? "" : "s");
  if (d->cfg->ready_file != NULL &&
      write_ready_file(d->cfg->ready_file, nne_server_bound_addr(d->server),
                       &err) != 0) {
    /* Serving without telling the one who waits would hang them. */
    nne_log_error("%s", err.msg);
    nne_server_drain(d->server, "ready file", 1);
  }
}

void nne_daemon_readiness(nne_daemon_t *d) { update_readiness(d); }

static void on_startup_load(void *ctx, nne_model_entry_t *e,
                            const nne_err_t *err) {
  nne_daemon_t *d = ctx;
  if (err == NULL)
    return;
  nne_log_error("--load %s: %s", e->name, err->msg);
  if (!d->cfg->allow_failed_loads && d->server != NULL) {
    /* A supervisor must see it (exit 1), not a daemon that never gets
     * ready; --allow-failed-loads serves the others instead. */
    nne_server_drain(d->server, "--load failed", 1);
  }
}

void nne_daemon_start(nne_daemon_t *d, nne_server_t *srv) {
  int i;

  d->server = srv;
  for (i = 0; i < d->cfg->n_loads; i++) {
    nne_model_entry_t *e;
    nne_err_t lerr;
    if (nne_registry_lookup(&d->registry, "--load", d->cfg->loads[i], &e,
                            &lerr) == 0 &&
        nne_registry_load(&d->registry, e, NULL, NNE_DTYPE_INVALID,
                          on_startup_load, d, &lerr) != 0) {
      nne_log_error("--load %s: %s", d->cfg->loads[i], lerr.msg);
      if (!d->cfg->allow_failed_loads)
        nne_server_drain(d->server, "--load failed", 1);
    }
  }
  if (!d->draining) {
    size_t k;
    nne_err_t err;
    nne_health_set(&d->health, "", NNE_HEALTH_SERVING, &err);
    for (k = 0; nne_daemon_services[k] != NULL; k++)
      nne_health_set(&d->health, nne_daemon_services[k], NNE_HEALTH_SERVING,
                     &err);
    nne_log_info("live (model repository %s, libtorch %s)", d->registry.repo,
                 nne_engine_torch_version());
  }
  update_readiness(d);
}

void nne_daemon_close(nne_daemon_t *d) {
  if (!d->open)
    return;
  d->open = false;
  nne_metrics_stop(d);
  nne_restore_clear(d);
  nne_edit_store_close(&d->store);
  nne_executor_close(&d->compute);
  nne_executor_close(&d->loader);
  nne_editor_close(&d->editor);
  nne_registry_close(&d->registry);
  nne_family_set_free(d->families);
  d->families = NULL;
  nne_health_free(&d->health);
  nne_auth_free(&d->auth);
  free_pems(d);
  d->server = NULL;
}
