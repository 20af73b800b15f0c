/* config.c — see config.h. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fault.h"
#include "base/log.h"

void nne_config_defaults(nne_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->listen = "127.0.0.1:50051"; /* never a public interface by default */
  cfg->model_repo = "./models";
  cfg->threads = 0;
  cfg->workers = 1;   /* one forward at a time per device; ops go parallel */
  cfg->max_queue = 64;
  cfg->log_level = "info";
  cfg->log_format = "text";
  cfg->max_message_bytes = 64u << 20;
  cfg->chunk_bytes = 1u << 20;            /* well under gRPC's 4 MiB default */
  cfg->max_response_bytes = 1ull << 30;
  cfg->max_kv_bytes = 4ull << 30;
  cfg->kv_budget_bytes = 16ull << 30;
  cfg->max_batch = 1024;
  cfg->max_seq_len = 32768;
  cfg->drain_timeout_s = 30.0;
  /* Long enough for a slow link to take a chunk (1 MiB), short enough that
   * a client that stopped reading frees its tensors within a minute. */
  cfg->send_timeout_s = 60.0;
  cfg->backend_cache_bytes = 512u << 20;
  cfg->max_edit_sets = 64;
  cfg->max_edits = 1024;
  cfg->max_traces = 16;
  cfg->max_trace_nodes = 4096;
  /* A call of a trace is sized on meta tensors before it runs: one short
   * request must not be able to allocate the machine away. 2 GiB holds a
   * logit lens over [8, 1024, 50257] float32 logits. */
  cfg->max_trace_value_bytes = 2ull << 30;
}

void nne_config_usage(void *stream, const char *argv0) {
  fprintf((FILE *)stream,
          "usage: %s [options]\n"
          "\n"
          "nneditd serves TorchScript models for interpretability work over gRPC.\n"
          "\n"
          "  --listen ADDR          address to serve on (default 127.0.0.1:50051;\n"
          "                         port 0 picks a free port; unix:/path works)\n"
          "  --model-repo DIR       model repository: DIR/<name>/model.pt + model.json\n"
          "                         (default ./models)\n"
          "  --load NAME            load this model at start (repeatable)\n"
          "  --device DEV           device for every model (cpu, cuda, cuda:N);\n"
          "                         overrides model.json, a Load request overrides it\n"
          "  --threads N            threads per CPU operation (default: all cores)\n"
          "  --workers N            forward passes run at once (default 1)\n"
          "  --max-queue N          queued forward passes before RESOURCE_EXHAUSTED\n"
          "                         (default 64)\n"
          "  --max-message-bytes N  largest request message (default 64 MiB)\n"
          "  --max-response-bytes N largest tensor one call streams back (default 1 GiB)\n"
          "  --max-kv-bytes N       largest KV cache of one Generate (default 4 GiB)\n"
          "  --kv-budget-bytes N    KV caches of all running Generates (default 16 GiB)\n"
          "  --chunk-bytes N        tensor bytes per streamed message (default 1 MiB)\n"
          "  --max-batch N          hard cap on rows per request (default 1024)\n"
          "  --max-seq-len N        hard cap on tokens per row (default 32768)\n"
          "  --drain-timeout SEC    grace for in-flight calls on SIGTERM (default 30)\n"
          "  --send-timeout SEC     end a call whose client has not taken a response\n"
          "                         message for SEC (stopped reading); 0: never\n"
          "                         (default 60)\n"
          "  --backend-cache-bytes N  compiled backends kept per model (default 512 MiB)\n"
          "  --max-edit-sets N      edit sets per model (default 64)\n"
          "  --max-edits N          edits per edit set (default 1024)\n"
          "  --max-traces N         traces in one Trace request (default 16)\n"
          "  --max-trace-nodes N    intervention graph nodes per trace (default 4096)\n"
          "  --max-trace-value-bytes N  largest value one call of a trace may make; 0: no limit, no\n"
          "                         sizing (default 2 GiB)\n"
          "  --ready-file PATH      write \"host:port\" here once ready (serving, and\n"
          "                         every --load model loaded)\n"
          "  --allow-failed-loads   keep serving when a --load model fails to load\n"
          "                         (default: exit 1, so a supervisor sees it)\n"
          "  --token-file PATH      require bearer tokens: one 'ROLES TOKEN' per line,\n"
          "                         roles infer, edit, admin, all (SIGHUP reloads it)\n"
          "  --tls-cert PEM --tls-key PEM  serve TLS with this certificate chain and key\n"
          "  --tls-client-ca PEM    mTLS: clients must present a certificate it signed\n"
          "  --insecure             allow a non-loopback --listen without TLS and tokens\n"
          "                         (refused by default)\n"
          "  --state-dir DIR        keep edit sets in DIR (written before Apply answers)\n"
          "                         and restore them, same ids, when their model loads\n"
          "  --metrics-listen ADDR  serve Prometheus metrics at http://ADDR/metrics\n"
          "                         (host:port, or :port for 127.0.0.1; off unless\n"
          "                         set)\n"
          "  --log-level LEVEL      debug, info, warn, error, off (default info)\n"
          "  --log-format F         text (default) or json: one object per line, and a\n"
          "                         line per call (method, model, request_id, peer,\n"
          "                         duration_ms, code) for log shippers\n"
          "  --version              print the version and exit\n"
          "  --help                 print this help and exit\n"
          "\n"
          "SIGINT/SIGTERM stop accepting calls, let in-flight calls finish, and exit 0;\n"
          "a second signal exits at once.\n"
          "\n"
          "Health (grpc.health.v1): \"\" is liveness (SERVING while the process serves);\n"
          "\"nnedit.ready\" is readiness (SERVING once every --load model is loaded);\n"
          "\"model/NAME\" is SERVING while that model is loaded.\n",
          argv0);
}

/* Parses an unsigned decimal in [lo, hi] with an optional K/M/G suffix
 * (powers of 1024) when `sizes` is set. */
static int parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi,
                     int sizes, uint64_t *out, nne_err_t *err) {
  char *end;
  unsigned long long v;
  uint64_t mult = 1;

  errno = 0;
  if (s[0] == '-' || s[0] == '\0')
    goto bad;
  v = strtoull(s, &end, 10);
  if (errno != 0 || end == s)
    goto bad;
  if (sizes && *end != '\0') {
    switch (*end) {
    case 'k': case 'K': mult = 1ull << 10; break;
    case 'm': case 'M': mult = 1ull << 20; break;
    case 'g': case 'G': mult = 1ull << 30; break;
    default: goto bad;
    }
    end++;
    /* K, Ki, KB and KiB all mean 1024 here. */
    if (*end == 'i')
      end++;
    if (*end == 'B')
      end++;
  }
  if (*end != '\0')
    goto bad;
  if (v > hi / mult)
    goto range;
  v *= mult;
  if (v < lo || v > hi)
    goto range;
  *out = v;
  return 0;
bad:
  return nne_err_set(err, NNE_EINVAL, "%s: '%s' is not a number", opt, s);
range:
  return nne_err_set(err, NNE_EINVAL, "%s: %s is outside [%llu, %llu]", opt, s,
                     (unsigned long long)lo, (unsigned long long)hi);
}

enum {
  OPT_LISTEN = 256, OPT_REPO, OPT_LOAD, OPT_DEVICE, OPT_THREADS, OPT_WORKERS,
  OPT_MAX_QUEUE, OPT_LOG_LEVEL, OPT_READY, OPT_MAX_MSG, OPT_MAX_RESP,
  OPT_MAX_KV,
  OPT_KV_BUDGET,
  OPT_CHUNK, OPT_MAX_BATCH, OPT_MAX_SEQ, OPT_DRAIN, OPT_VERSION, OPT_HELP,
  OPT_CACHE_BYTES, OPT_MAX_EDIT_SETS, OPT_MAX_EDITS, OPT_MAX_TRACES,
  OPT_MAX_TRACE_NODES,
  OPT_MAX_TRACE_VALUE, OPT_ALLOW_FAILED_LOADS, OPT_TOKEN_FILE, OPT_TLS_CERT,
  OPT_TLS_KEY, OPT_TLS_CLIENT_CA, OPT_INSECURE, OPT_LOG_FORMAT,
  OPT_METRICS_LISTEN, OPT_STATE_DIR, OPT_SEND_TIMEOUT,
};

int nne_config_parse(nne_config_t *cfg, int argc, char **argv, nne_err_t *err) {
  static const struct option opts[] = {
      {"listen", required_argument, NULL, OPT_LISTEN},
      {"model-repo", required_argument, NULL, OPT_REPO},
      {"load", required_argument, NULL, OPT_LOAD},
      {"device", required_argument, NULL, OPT_DEVICE},
      {"threads", required_argument, NULL, OPT_THREADS},
      {"workers", required_argument, NULL, OPT_WORKERS},
      {"max-queue", required_argument, NULL, OPT_MAX_QUEUE},
      {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
      {"ready-file", required_argument, NULL, OPT_READY},
      {"max-message-bytes", required_argument, NULL, OPT_MAX_MSG},
      {"max-response-bytes", required_argument, NULL, OPT_MAX_RESP},
      {"max-kv-bytes", required_argument, NULL, OPT_MAX_KV},
      {"kv-budget-bytes", required_argument, NULL, OPT_KV_BUDGET},
      {"chunk-bytes", required_argument, NULL, OPT_CHUNK},
      {"max-batch", required_argument, NULL, OPT_MAX_BATCH},
      {"max-seq-len", required_argument, NULL, OPT_MAX_SEQ},
      {"drain-timeout", required_argument, NULL, OPT_DRAIN},
      {"send-timeout", required_argument, NULL, OPT_SEND_TIMEOUT},
      {"backend-cache-bytes", required_argument, NULL, OPT_CACHE_BYTES},
      {"max-edit-sets", required_argument, NULL, OPT_MAX_EDIT_SETS},
      {"max-edits", required_argument, NULL, OPT_MAX_EDITS},
      {"max-traces", required_argument, NULL, OPT_MAX_TRACES},
      {"max-trace-nodes", required_argument, NULL, OPT_MAX_TRACE_NODES},
      {"max-trace-value-bytes", required_argument, NULL, OPT_MAX_TRACE_VALUE},
      {"allow-failed-loads", no_argument, NULL, OPT_ALLOW_FAILED_LOADS},
      {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
      {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
      {"tls-key", required_argument, NULL, OPT_TLS_KEY},
      {"tls-client-ca", required_argument, NULL, OPT_TLS_CLIENT_CA},
      {"insecure", no_argument, NULL, OPT_INSECURE},
      {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
      {"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
      {"state-dir", required_argument, NULL, OPT_STATE_DIR},
      {"version", no_argument, NULL, OPT_VERSION},
      {"help", no_argument, NULL, OPT_HELP},
      {NULL, 0, NULL, 0},
  };
  uint64_t v;
  int c, rc;

/* Numbers: parse first, assign only what was accepted. */
#define NNE__NUM(flag, lo, hi, sizes, field, type)                             \
  if ((rc = parse_u64(flag, optarg, lo, hi, sizes, &v, err)) != 0)            \
    return rc;                                                                 \
  cfg->field = (type)v;                                                        \
  break
/* Strings: an empty value is a mistake, not a request for the default. */
#define NNE__STR(flag, field)                                                  \
  if (optarg[0] == '\0')                                                       \
    return nne_err_set(err, NNE_EINVAL, "%s: empty value", flag);              \
  cfg->field = optarg;                                                         \
  break

  optind = 0; /* 0, not 1: also resets getopt's place inside "-abc" */
  opterr = 0; /* we report errors ourselves, with the option's name */
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    switch (c) {
    case OPT_LISTEN: NNE__STR("--listen", listen);
    case OPT_REPO: NNE__STR("--model-repo", model_repo);
    case OPT_DEVICE: NNE__STR("--device", device);
    case OPT_READY: NNE__STR("--ready-file", ready_file);
    case OPT_TOKEN_FILE: NNE__STR("--token-file", token_file);
    case OPT_TLS_CERT: NNE__STR("--tls-cert", tls_cert);
    case OPT_TLS_KEY: NNE__STR("--tls-key", tls_key);
    case OPT_TLS_CLIENT_CA: NNE__STR("--tls-client-ca", tls_client_ca);
    case OPT_METRICS_LISTEN: NNE__STR("--metrics-listen", metrics_listen);
    case OPT_STATE_DIR: NNE__STR("--state-dir", state_dir);
    case OPT_INSECURE:
      cfg->insecure = 1;
      break;
    case OPT_LOG_FORMAT:
      if (nne_log_format_parse(optarg) < 0)
        return nne_err_set(err, NNE_EINVAL,
                           "--log-format: '%s' is not text or json", optarg);
      cfg->log_format = optarg;
      break;
    case OPT_ALLOW_FAILED_LOADS:
      cfg->allow_failed_loads = 1;
      break;
    case OPT_LOAD:
      if (cfg->n_loads == NNE_CONFIG_MAX_LOADS)
        return nne_err_set(err, NNE_EINVAL, "--load: at most %d models",
                           NNE_CONFIG_MAX_LOADS);
      if (optarg[0] == '\0')
        return nne_err_set(err, NNE_EINVAL, "--load: empty value");
      cfg->loads[cfg->n_loads++] = optarg;
      break;
    case OPT_THREADS: NNE__NUM("--threads", 0, 1024, 0, threads, int);
    case OPT_WORKERS: NNE__NUM("--workers", 1, 256, 0, workers, int);
    case OPT_MAX_QUEUE:
      NNE__NUM("--max-queue", 1, 1u << 20, 0, max_queue, int);
    case OPT_LOG_LEVEL:
      if (nne_log_level_parse(optarg) < 0)
        return nne_err_set(err, NNE_EINVAL,
                           "--log-level: '%s' is not debug, info, warn, "
                           "error or off", optarg);
      cfg->log_level = optarg;
      break;
    case OPT_MAX_MSG:
      /* gRPC takes an int for this limit. */
      NNE__NUM("--max-message-bytes", 1024, (1u << 31) - 1, 1,
               max_message_bytes, size_t);
    case OPT_MAX_RESP:
      NNE__NUM("--max-response-bytes", 1, 1ull << 40, 1, max_response_bytes,
               uint64_t);
    case OPT_MAX_KV:
      NNE__NUM("--max-kv-bytes", 4096, 1ull << 44, 1, max_kv_bytes,
               uint64_t);
    case OPT_KV_BUDGET:
      NNE__NUM("--kv-budget-bytes", 4096, 1ull << 46, 1, kv_budget_bytes,
               uint64_t);
    case OPT_CHUNK:
      NNE__NUM("--chunk-bytes", 1024, 3u << 20, 1, chunk_bytes, size_t);
    case OPT_MAX_BATCH:
      NNE__NUM("--max-batch", 1, 1u << 16, 0, max_batch, uint32_t);
    case OPT_MAX_SEQ:
      NNE__NUM("--max-seq-len", 1, 1u << 20, 0, max_seq_len, uint32_t);
    case OPT_DRAIN:
      NNE__NUM("--drain-timeout", 0, 3600, 0, drain_timeout_s, double);
    case OPT_SEND_TIMEOUT:
      NNE__NUM("--send-timeout", 0, 86400, 0, send_timeout_s, double);
    case OPT_CACHE_BYTES:
      NNE__NUM("--backend-cache-bytes", 1u << 20, 1ull << 40, 1,
               backend_cache_bytes, size_t);
    case OPT_MAX_EDIT_SETS:
      NNE__NUM("--max-edit-sets", 1, 1u << 16, 0, max_edit_sets, uint32_t);
    case OPT_MAX_EDITS:
      NNE__NUM("--max-edits", 1, 1u << 16, 0, max_edits, uint32_t);
    case OPT_MAX_TRACES:
      NNE__NUM("--max-traces", 1, 1024, 0, max_traces, uint32_t);
    case OPT_MAX_TRACE_NODES:
      NNE__NUM("--max-trace-nodes", 1, 1u << 20, 0, max_trace_nodes,
               uint32_t);
    case OPT_MAX_TRACE_VALUE:
      NNE__NUM("--max-trace-value-bytes", 0, 1ull << 40, 1,
               max_trace_value_bytes, uint64_t);
    case OPT_VERSION:
      printf("nneditd %s\n", NNE_VERSION);
      if (NNE_FAULT_COMPILED)
        printf("test build: fault injection compiled in (NNE_FAULTS)\n");
      return 1;
    case 'h':
    case OPT_HELP:
      nne_config_usage(stdout, argv[0]);
      return 1;
    case ':':
      /* optopt names a short option; a long one is the last argv seen. */
      if (optopt != 0 && optopt < 256)
        return nne_err_set(err, NNE_EINVAL, "-%c needs a value", optopt);
      return nne_err_set(err, NNE_EINVAL, "%s needs a value", argv[optind - 1]);
    default:
      if (optopt != 0 && optopt < 256)
        return nne_err_set(err, NNE_EINVAL, "unknown option '-%c'", optopt);
      return nne_err_set(err, NNE_EINVAL, "unknown option '%s'",
                         argv[optind - 1]);
    }
  }
#undef NNE__NUM
#undef NNE__STR
  if (optind < argc)
    return nne_err_set(err, NNE_EINVAL, "unexpected argument '%s'",
                       argv[optind]);
  if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL))
    return nne_err_set(err, NNE_EINVAL,
                       "--tls-cert and --tls-key go together");
  if (cfg->tls_client_ca != NULL && cfg->tls_cert == NULL)
    return nne_err_set(err, NNE_EINVAL,
                       "--tls-client-ca needs --tls-cert and --tls-key");
  /* Safe by default: beyond this host, only TLS with tokens, unless the
   * operator says otherwise on purpose. */
  if (!nne_config_loopback(cfg->listen) && !cfg->insecure &&
      (cfg->tls_cert == NULL || cfg->token_file == NULL))
    return nne_err_set(err, NNE_EINVAL,
                       "--listen %s is reachable from other hosts: give "
                       "--tls-cert/--tls-key and --token-file, or --insecure "
                       "to serve it %s on purpose",
                       cfg->listen,
                       cfg->tls_cert == NULL ? "in the clear"
                                             : "without tokens");
  return 0;
}

int nne_config_loopback(const char *listen) {
  const char *host = listen, *end;
  size_t n;
  if (strncmp(listen, "unix:", 5) == 0 ||
      strncmp(listen, "unix-abstract:", 14) == 0)
    return 1;
  if (strncmp(host, "ipv4:", 5) == 0 || strncmp(host, "ipv6:", 5) == 0)
    host += 5;
  if (host[0] == '[') {
    end = strchr(host, ']');
    if (end == NULL)
      return 0;
    host++;
    n = (size_t)(end - host);
    return n == 3 && strncmp(host, "::1", 3) == 0;
  }
  end = strrchr(host, ':');
  n = end != NULL ? (size_t)(end - host) : strlen(host);
  if (n == 9 && strncmp(host, "localhost", 9) == 0)
    return 1;
  /* 127.0.0.0/8 */
  return n >= 4 && strncmp(host, "127.", 4) == 0 &&
         strspn(host, "0123456789.") >= n;
}
