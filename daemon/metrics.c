/* metrics.c — see metrics.h. */
#include "metrics.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "server/metrics_http.h"

/* ---- the process ----------------------------------------------------------
 * The names the Prometheus client libraries use for these, so dashboards
 * made for any process work. */

static double process_start_s;

static void process_metrics(nne_prom_buf_t *b) {
  long page = sysconf(_SC_PAGESIZE);
  unsigned long vm_pages = 0, rss_pages = 0;
  struct rusage ru;
  FILE *f = fopen("/proc/self/statm", "r");

  if (f != NULL) {
    if (fscanf(f, "%lu %lu", &vm_pages, &rss_pages) != 2)
      vm_pages = rss_pages = 0;
    fclose(f);
  }
  nne_prom_family(b, "process_resident_memory_bytes", "gauge",
                  "Resident memory size in bytes.");
  nne_prom_sample(b, "process_resident_memory_bytes", NULL,
                  (double)rss_pages * (double)page);
  nne_prom_family(b, "process_virtual_memory_bytes", "gauge",
                  "Virtual memory size in bytes.");
  nne_prom_sample(b, "process_virtual_memory_bytes", NULL,
                  (double)vm_pages * (double)page);
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    nne_prom_family(b, "process_cpu_seconds_total", "counter",
                    "Total user and system CPU time spent in seconds.");
    nne_prom_sample(b, "process_cpu_seconds_total", NULL,
                    (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                        (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) /
                            1e6);
  }
  nne_prom_family(b, "process_start_time_seconds", "gauge",
                  "Start time of the process since unix epoch in seconds.");
  nne_prom_sample(b, "process_start_time_seconds", NULL, process_start_s);
}

/* ---- calls, per method ----------------------------------------------------
 * "/nnedit.v1.Inference/Forward" is service "nnedit.v1.Inference", method
 * "Forward": the labels gRPC's own Prometheus interceptors use. */

typedef struct method_labels {
  char service[96];
  char method[64];
} method_labels_t;

static void split_path(const char *path, method_labels_t *ml) {
  const char *slash = path[0] == '/' ? strchr(path + 1, '/') : NULL;
  if (slash == NULL) {
    snprintf(ml->service, sizeof ml->service, "unknown");
    snprintf(ml->method, sizeof ml->method, "unknown");
    return;
  }
  snprintf(ml->service, sizeof ml->service, "%.*s", (int)(slash - path - 1),
           path + 1);
  snprintf(ml->method, sizeof ml->method, "%s", slash + 1);
}

/* Method i of the table (i == n: the unknown ones) and its labels. */
static const nne_server_method_stats_t *
method_at(const nne_server_t *srv, size_t i, method_labels_t *ml) {
  split_path(i < srv->opts.n_methods ? srv->opts.methods[i].path : "", ml);
  return nne_server_method_stats(srv, i);
}

static void call_metrics(nne_prom_buf_t *b, const nne_server_t *srv) {
  const nne_server_method_stats_t *ms;
  size_t n = srv->opts.n_methods, i;
  method_labels_t ml;
  int code;

  nne_prom_family(b, "nnedit_requests_total", "counter",
                  "gRPC calls that ended, by method and status code (refused "
                  "ones included).");
  for (i = 0; i <= n; i++)
    for (code = 0; (ms = method_at(srv, i, &ml)) != NULL &&
                   code < NNE_GRPC_CODES;
         code++)
      if (ms->by_code[code] != 0 || code == 0) /* OK always shows */
        nne_prom_sample(b, "nnedit_requests_total",
                        (const char *[]){"service", ml.service, "method",
                                         ml.method, "code",
                                         nne_grpc_code_name(code), NULL},
                        (double)ms->by_code[code]);
  nne_prom_family(b, "nnedit_requests_in_flight", "gauge",
                  "gRPC calls that arrived and have not ended.");
  for (i = 0; i <= n; i++)
    if ((ms = method_at(srv, i, &ml)) != NULL)
      nne_prom_sample(b, "nnedit_requests_in_flight",
                      (const char *[]){"service", ml.service, "method",
                                       ml.method, NULL},
                      ms->in_flight);
  nne_prom_family(b, "nnedit_request_duration_seconds", "histogram",
                  "Seconds from a call's arrival to its end.");
  for (i = 0; i <= n; i++)
    if ((ms = method_at(srv, i, &ml)) != NULL)
      nne_prom_hist_write(b, "nnedit_request_duration_seconds",
                          (const char *[]){"service", ml.service, "method",
                                           ml.method, NULL},
                          &ms->duration);
  nne_prom_family(b, "nnedit_response_bytes_total", "counter",
                  "Response message bytes sent (tensors streamed included).");
  for (i = 0; i <= n; i++)
    if ((ms = method_at(srv, i, &ml)) != NULL)
      nne_prom_sample(b, "nnedit_response_bytes_total",
                      (const char *[]){"service", ml.service, "method",
                                       ml.method, NULL},
                      (double)ms->bytes_sent);
}

/* Trace sessions are the Trace calls in progress (a session lives exactly
 * as long as its call). */
static int trace_sessions(const nne_server_t *srv) {
  size_t i;
  for (i = 0; i < srv->opts.n_methods; i++)
    if (strcmp(srv->opts.methods[i].path, "/nnedit.v1.Inference/Trace") == 0)
      return nne_server_method_stats(srv, i)->in_flight;
  return 0;
}

/* ---- executors -------------------------------------------------------------
 */

static void executor_metrics(nne_prom_buf_t *b, nne_executor_t *const *ex,
                             size_t n) {
  size_t i;
  nne_prom_family(b, "nnedit_queue_depth", "gauge",
                  "Jobs waiting for a worker (forward passes and backend "
                  "builds on 'compute', loads on 'loader').");
  for (i = 0; i < n; i++)
    nne_prom_sample(b, "nnedit_queue_depth",
                    (const char *[]){"executor", ex[i]->name, NULL},
                    nne_executor_queued(ex[i]));
  nne_prom_family(b, "nnedit_queue_capacity", "gauge",
                  "Jobs a queue holds before calls get RESOURCE_EXHAUSTED.");
  for (i = 0; i < n; i++)
    nne_prom_sample(b, "nnedit_queue_capacity",
                    (const char *[]){"executor", ex[i]->name, NULL},
                    ex[i]->max_queue);
  nne_prom_family(b, "nnedit_queue_wait_seconds", "histogram",
                  "Seconds a job waited in the queue before a worker took "
                  "it.");
  for (i = 0; i < n; i++)
    nne_prom_hist_write(b, "nnedit_queue_wait_seconds",
                        (const char *[]){"executor", ex[i]->name, NULL},
                        &ex[i]->wait_hist);
  nne_prom_family(b, "nnedit_compute_seconds", "histogram",
                  "Seconds a job ran on a worker (a forward pass, a backend "
                  "build, a load).");
  for (i = 0; i < n; i++)
    nne_prom_hist_write(b, "nnedit_compute_seconds",
                        (const char *[]){"executor", ex[i]->name, NULL},
                        &ex[i]->run_hist);
}

/* ---- models and their caches ---------------------------------------------- */

static const char *state_label(nne_model_state_t s) {
  switch (s) {
  case NNE_MODEL_AVAILABLE: return "available";
  case NNE_MODEL_LOADING: return "loading";
  case NNE_MODEL_LOADED: return "loaded";
  case NNE_MODEL_UNLOADING: return "unloading";
  case NNE_MODEL_FAILED: return "failed";
  }
  return "unknown";
}

static bool has_cache(const nne_model_entry_t *e) {
  return e->state == NNE_MODEL_LOADED || e->state == NNE_MODEL_UNLOADING;
}

/* The figures kept per loaded model, one family each. */
typedef enum figure {
  FIG_IN_FLIGHT, FIG_EDIT_SETS, FIG_HITS, FIG_MISSES, FIG_EVICTIONS,
  FIG_BYTES, FIG_CAPACITY, FIG_ENTRIES
} figure_t;

static const struct {
  figure_t figure;
  const char *name, *type, *help;
} per_model[] = {
    {FIG_IN_FLIGHT, "nnedit_model_requests_in_flight", "gauge",
     "Calls holding the model."},
    {FIG_EDIT_SETS, "nnedit_edit_sets", "gauge",
     "Edit sets of the model (each pins a compiled backend)."},
    {FIG_HITS, "nnedit_backend_cache_hits_total", "counter",
     "Backend lookups that found a compiled backend."},
    {FIG_MISSES, "nnedit_backend_cache_misses_total", "counter",
     "Backend lookups that had to compile one."},
    {FIG_EVICTIONS, "nnedit_backend_cache_evictions_total", "counter",
     "Compiled backends evicted to stay under the cache's capacity."},
    {FIG_BYTES, "nnedit_backend_cache_bytes", "gauge",
     "Bytes the cached backends hold beyond the shared weights."},
    {FIG_CAPACITY, "nnedit_backend_cache_capacity_bytes", "gauge",
     "The cache's capacity (--backend-cache-bytes)."},
    {FIG_ENTRIES, "nnedit_backend_cache_entries", "gauge",
     "Compiled backends in the cache."},
};

static double figure(const nne_model_entry_t *e, figure_t f) {
  const nne_backend_cache_t *c = &e->backends;
  switch (f) {
  case FIG_IN_FLIGHT: return e->in_flight;
  case FIG_EDIT_SETS: return e->edit_sets;
  case FIG_HITS: return (double)c->hits;
  case FIG_MISSES: return (double)c->misses;
  case FIG_EVICTIONS: return (double)c->evictions;
  case FIG_BYTES: return (double)c->bytes;
  case FIG_CAPACITY: return (double)c->capacity_bytes;
  case FIG_ENTRIES: return (double)c->count;
  }
  return 0;
}

/* Memory of every device a loaded model is on (each once): the CUDA
 * caching allocator's figures where the build has them, the driver's free
 * and total everywhere. */
static void device_metrics(nne_prom_buf_t *b, const nne_registry_t *reg) {
  static const char *const kinds[] = {"total", "free", "allocated",
                                      "reserved", "peak_allocated"};
  enum { MAX_DEVS = 16 };
  nne_device_memory_t devs[MAX_DEVS];
  size_t n = nne_registry_devices(reg, false, devs, MAX_DEVS), j, k;

  nne_prom_family(b, "nnedit_device_memory_bytes", "gauge",
                  "Memory of a device that holds models: total, free (the "
                  "driver's; cpu: MemAvailable) and, on CUDA, the caching "
                  "allocator's allocated, reserved and peak_allocated.");
  for (j = 0; j < n; j++) {
    const uint64_t v[] = {devs[j].total_bytes, devs[j].free_bytes,
                          devs[j].allocated_bytes, devs[j].reserved_bytes,
                          devs[j].peak_allocated_bytes};
    /* The last three are the CUDA caching allocator's, when known. */
    size_t kinds_n = devs[j].allocator_stats ? 5 : 2;
    for (k = 0; k < kinds_n; k++)
      nne_prom_sample(b, "nnedit_device_memory_bytes",
                      (const char *[]){"device", devs[j].device, "kind",
                                       kinds[k], NULL},
                      (double)v[k]);
  }
}

static void model_metrics(nne_prom_buf_t *b, const nne_registry_t *reg) {
  static const nne_model_state_t states[] = {
      NNE_MODEL_AVAILABLE, NNE_MODEL_LOADING, NNE_MODEL_LOADED,
      NNE_MODEL_UNLOADING, NNE_MODEL_FAILED};
  const nne_model_entry_t *e;
  size_t k;

  nne_prom_family(b, "nnedit_models", "gauge",
                  "Models of the repository, by state.");
  for (k = 0; k < sizeof states / sizeof states[0]; k++) {
    int n = 0;
    for (e = reg->entries; e != NULL; e = e->next)
      n += e->state == states[k];
    nne_prom_sample(b, "nnedit_models",
                    (const char *[]){"state", state_label(states[k]), NULL}, n);
  }
  nne_prom_family(b, "nnedit_model_parameter_bytes", "gauge",
                  "Bytes of a loaded model's parameters and buffers, on its "
                  "device.");
  for (e = reg->entries; e != NULL; e = e->next)
    if (has_cache(e))
      nne_prom_sample(b, "nnedit_model_parameter_bytes",
                      (const char *[]){"model", e->name, "device", e->device,
                                       NULL},
                      e->model != NULL
                          ? (double)nne_model_resident_bytes(e->model)
                          : 0);
  nne_prom_family(b, "nnedit_model_kv_cache_bytes", "gauge",
                  "Bytes of the KV caches of a model's running Generates.");
  for (e = reg->entries; e != NULL; e = e->next)
    if (has_cache(e))
      nne_prom_sample(b, "nnedit_model_kv_cache_bytes",
                      (const char *[]){"model", e->name, "device", e->device,
                                       NULL},
                      (double)e->kv_bytes);
  for (k = 0; k < sizeof per_model / sizeof per_model[0]; k++) {
    nne_prom_family(b, per_model[k].name, per_model[k].type,
                    per_model[k].help);
    for (e = reg->entries; e != NULL; e = e->next)
      if (has_cache(e))
        nne_prom_sample(b, per_model[k].name,
                        (const char *[]){"model", e->name, NULL},
                        figure(e, per_model[k].figure));
  }
  nne_prom_family(b, "nnedit_backend_compile_seconds", "histogram",
                  "Seconds compiling one backend (an edited copy of the "
                  "model's graphs).");
  for (e = reg->entries; e != NULL; e = e->next)
    if (has_cache(e))
      nne_prom_hist_write(b, "nnedit_backend_compile_seconds",
                          (const char *[]){"model", e->name, NULL},
                          &e->backends.compile_hist);
}

void nne_metrics_render(void *app, nne_prom_buf_t *b) {
  nne_daemon_t *d = app;
  nne_executor_t *ex[2];

  ex[0] = &d->compute;
  ex[1] = &d->loader;
  nne_prom_family(b, "nnedit_build_info", "gauge",
                  "nneditd's version and the libtorch it runs on (always 1).");
  nne_prom_sample(b, "nnedit_build_info",
                  (const char *[]){"version", NNE_VERSION, "libtorch",
                                   nne_engine_torch_version(), NULL},
                  1);
  nne_prom_family(b, "nnedit_ready", "gauge",
                  "1 once every --load model is loaded (health "
                  "'nnedit.ready' SERVING).");
  nne_prom_sample(b, "nnedit_ready", NULL, d->ready && !d->draining);
  nne_prom_family(b, "nnedit_draining", "gauge",
                  "1 once a drain (SIGTERM) began.");
  nne_prom_sample(b, "nnedit_draining", NULL, d->draining);
  nne_prom_family(b, "nnedit_cuda_devices", "gauge",
                  "CUDA devices the engine sees.");
  nne_prom_sample(b, "nnedit_cuda_devices", NULL,
                  nne_engine_cuda_device_count());
  process_metrics(b);
  if (d->server != NULL) {
    call_metrics(b, d->server);
    nne_prom_family(b, "nnedit_trace_sessions", "gauge",
                    "Trace sessions (Trace calls) in progress.");
    nne_prom_sample(b, "nnedit_trace_sessions", NULL,
                    trace_sessions(d->server));
  }
  if (d->open) {
    executor_metrics(b, ex, 2);
    model_metrics(b, &d->registry);
    device_metrics(b, &d->registry);
  }
}

int nne_metrics_start(nne_daemon_t *d, nne_err_t *err) {
  struct timespec now;
  int rc;

  clock_gettime(CLOCK_REALTIME, &now);
  process_start_s = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
  if (d->cfg->metrics_listen == NULL)
    return 0;
  rc = nne_metrics_http_start(&d->metrics, d->loop, d->cfg->metrics_listen,
                              nne_metrics_render, d, err);
  if (rc == 0)
    nne_log_info("metrics at http://%s/metrics",
                 nne_metrics_http_addr(d->metrics));
  return rc;
}

void nne_metrics_stop(nne_daemon_t *d) {
  nne_metrics_http_stop(d->metrics);
  d->metrics = NULL;
}
