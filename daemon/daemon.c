/* daemon.c — see daemon.h. */
#include "daemon.h"

#include <stdio.h>
#include <string.h>

#include "engine/engine.h"
#include "base/log.h"

const char *const nne_daemon_services[] = {
    "nnedit.v1.Models", "nnedit.v1.Inference", "nnedit.v1.Edits",
    "nnedit.v1.Admin",  "grpc.health.v1.Health", NULL,
};

/* A job or a load finished: a drain may move on. */
static void poke(void *ctx) {
  nne_daemon_t *d = ctx;
  if (d->server != NULL)
    nne_server_poke(d->server);
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
  for (i = 0; rc == 0 && nne_daemon_services[i] != NULL; i++)
    rc = nne_health_set(&d->health, nne_daemon_services[i],
                        NNE_HEALTH_NOT_SERVING, err);
  if (rc != 0)
    goto fail_health;
  rc = nne_executor_init(&d->loader, loop, "loader", 1, 64, err);
  if (rc != 0)
    goto fail_health;
  rc = nne_executor_init(&d->compute, loop, "compute", cfg->workers,
                         cfg->max_queue, err);
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
  for (i = 0; i < (size_t)cfg->n_loads; i++) {
    nne_model_entry_t *e;
    rc = nne_registry_lookup(&d->registry, "--load", cfg->loads[i], &e, err);
    if (rc != 0)
      goto fail_registry;
  }
  d->open = true;
  return 0;

fail_registry:
  nne_registry_close(&d->registry);
fail_families:
  nne_family_set_free(d->families);
  d->families = NULL;
fail_compute:
  nne_executor_close(&d->compute);
fail_loader:
  nne_executor_close(&d->loader);
fail_health:
  nne_health_free(&d->health);
  return rc;
}

static bool app_busy(void *app) {
  nne_daemon_t *d = app;
  return d->registry.busy > 0 || nne_executor_pending(&d->compute) > 0;
}

static void on_drain(void *app) {
  nne_daemon_t *d = app;
  nne_health_set_all(&d->health, NNE_HEALTH_NOT_SERVING);
  nne_log_info("health: NOT_SERVING");
  nne_health_close(&d->health); /* Watch streams send it and end */
}

static void on_stopped(void *app) { nne_daemon_close(app); }

void nne_daemon_server_opts(nne_daemon_t *d, const nne_method_t *methods,
                            size_t n_methods, nne_server_opts_t *opts) {
  memset(opts, 0, sizeof *opts);
  opts->listen = d->cfg->listen;
  opts->max_message_bytes = d->cfg->max_message_bytes;
  opts->drain_timeout_s = d->cfg->drain_timeout_s;
  opts->ready_file = d->cfg->ready_file;
  opts->methods = methods;
  opts->n_methods = n_methods;
  opts->app = d;
  opts->app_busy = app_busy;
  opts->on_drain = on_drain;
  opts->on_stopped = on_stopped;
}

static void on_startup_load(void *ctx, nne_model_entry_t *e,
                            const nne_err_t *err) {
  (void)ctx;
  if (err != NULL)
    nne_log_error("--load %s: %s", e->name, err->msg);
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
                          on_startup_load, NULL, &lerr) != 0)
      nne_log_error("--load %s: %s", d->cfg->loads[i], lerr.msg);
  }
  if (!d->server->draining) {
    nne_health_set_all(&d->health, NNE_HEALTH_SERVING);
    nne_log_info("health: SERVING (model repository %s, libtorch %s)",
                 d->registry.repo, nne_engine_torch_version());
  }
}

void nne_daemon_close(nne_daemon_t *d) {
  if (!d->open)
    return;
  d->open = false;
  nne_executor_close(&d->compute);
  nne_executor_close(&d->loader);
  nne_editor_close(&d->editor);
  nne_registry_close(&d->registry);
  nne_family_set_free(d->families);
  d->families = NULL;
  nne_health_free(&d->health);
  d->server = NULL;
}
