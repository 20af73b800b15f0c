/* config.h — nneditd's command-line configuration.
 *
 * One struct with every setting and its safe default (loopback listen
 * address, bounded queues and message sizes), filled from argv by
 * nne_config_parse. The struct is plain data owned by the caller; the strings
 * it points to are argv's or static.
 */
#ifndef NNE_CONFIG_H
#define NNE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define NNE_CONFIG_MAX_LOADS 64

typedef struct nne_config {
  const char *listen;      /* "127.0.0.1:50051": loopback unless told */
  const char *model_repo;  /* directory of <name>/model.pt + model.json */
  const char *loads[NNE_CONFIG_MAX_LOADS]; /* models to load at start */
  int n_loads;
  const char *device;      /* overrides model.json's device when set */
  int threads;             /* intra-op threads per CPU op; 0 = all cores */
  int workers;             /* compute executor threads */
  int max_queue;           /* queued compute jobs before RESOURCE_EXHAUSTED */
  const char *log_level;
  const char *log_format;  /* "text" (default) or "json" */
  const char *ready_file;  /* written with "host:port\n" once ready: bound,
                              and every --load model LOADED */
  int allow_failed_loads;  /* a failed --load does not stop the daemon */
  const char *token_file;  /* bearer tokens and roles; NULL: no auth */
  const char *tls_cert;    /* PEM certificate chain; with tls_key: TLS */
  const char *tls_key;     /* PEM private key */
  const char *tls_client_ca; /* PEM CA: clients must present a cert (mTLS) */
  int insecure;            /* a non-loopback --listen without TLS + tokens,
                              on purpose */
  const char *metrics_listen; /* /metrics over HTTP here; NULL: off */
  const char *state_dir;   /* edit sets kept here across restarts; NULL: off */
  size_t max_message_bytes;  /* largest request message accepted */
  size_t chunk_bytes;        /* tensor payload per streamed message */
  uint64_t max_response_bytes; /* largest tensor one call may stream back */
  uint64_t max_kv_bytes;       /* one Generate's KV cache (--max-kv-bytes) */
  uint64_t kv_budget_bytes;    /* all Generates' caches at once */
  uint32_t max_batch;        /* hard caps; model.json limits can only lower */
  uint32_t max_seq_len;
  double drain_timeout_s;    /* grace for in-flight calls on SIGTERM */
  double send_timeout_s;     /* a response message not taken in this long
                                ends the call; 0: never */
  size_t backend_cache_bytes; /* compiled backends kept per model */
  uint32_t max_edit_sets;    /* per model */
  uint32_t max_edits;        /* per edit set */
  uint32_t max_traces;       /* traces in one Trace request (a session) */
  uint32_t max_trace_nodes;  /* intervention graph nodes per trace */
  uint64_t max_trace_value_bytes; /* largest value one trace call may make */
} nne_config_t;

/* Fills cfg with the defaults. */
void nne_config_defaults(nne_config_t *cfg);

/* Parses argv into cfg (which should hold the defaults). Returns 0, 1 when
 * --help or --version printed what was asked and the program should exit 0,
 * or NNE_EINVAL with the reason in err (the caller prints usage, exit 2). */
int nne_config_parse(nne_config_t *cfg, int argc, char **argv, nne_err_t *err);

/* True for a --listen address only this host can reach (127.0.0.0/8,
 * ::1, localhost, unix:). */
int nne_config_loopback(const char *listen);

/* Writes the --help text to the stream (a FILE *). */
void nne_config_usage(void *stream, const char *argv0);

#endif /* NNE_CONFIG_H */
