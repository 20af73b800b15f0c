/* metrics_http.c — see metrics_http.h. */
#include "server/metrics_http.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "base/log.h"

/* A scrape document larger than this is a bug (or a model count far past
 * any real deployment): better a 500 than an unbounded buffer. */
#define DOC_LIMIT (64u << 20)
#define WAIT_SECONDS 5

struct nne_metrics_http {
  struct MHD_Daemon *mhd;
  uv_loop_t *loop;
  uv_async_t async;            /* HTTP thread → loop: render, please */
  nne_metrics_render_fn render;
  void *app;
  char addr[300];

  /* Shared with the HTTP thread, under mu. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t asked;              /* renders asked for (generation) */
  uint64_t done;               /* the generation `text` answers */
  char *text;                  /* the latest document; NULL if it failed */
  size_t len;
  bool closing;
};

/* The exposition format's own media type; Prometheus checks it. */
static const char *const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
                             const char *body, bool copy_owned,
                             const char *content_type) {
  struct MHD_Response *r;
  enum MHD_Result rc;
  r = MHD_create_response_from_buffer(strlen(body), (void *)body,
                                      copy_owned ? MHD_RESPMEM_MUST_FREE
                                                 : MHD_RESPMEM_PERSISTENT);
  if (r == NULL) {
    if (copy_owned)
      free((void *)body);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  rc = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return rc;
}

/* On the HTTP thread: the loop renders, we wait for it and copy. */
static char *fetch_document(nne_metrics_http_t *h, unsigned *status) {
  struct timespec until;
  uint64_t mine;
  char *copy = NULL;

  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += WAIT_SECONDS;
  pthread_mutex_lock(&h->mu);
  if (h->closing) {
    pthread_mutex_unlock(&h->mu);
    *status = MHD_HTTP_SERVICE_UNAVAILABLE;
    return NULL;
  }
  mine = ++h->asked;
  uv_async_send(&h->async); /* thread-safe; coalesced by libuv */
  while (h->done < mine && !h->closing)
    if (pthread_cond_timedwait(&h->cv, &h->mu, &until) == ETIMEDOUT)
      break;
  if (h->done >= mine && h->text != NULL) {
    copy = malloc(h->len + 1);
    if (copy != NULL)
      memcpy(copy, h->text, h->len + 1);
    *status = copy != NULL ? MHD_HTTP_OK : MHD_HTTP_INTERNAL_SERVER_ERROR;
  } else if (h->done >= mine) {
    *status = MHD_HTTP_INTERNAL_SERVER_ERROR; /* the render failed */
  } else {
    *status = MHD_HTTP_SERVICE_UNAVAILABLE; /* stopping, or the loop is stuck */
  }
  pthread_mutex_unlock(&h->mu);
  return copy;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **req_ctx) {
  nne_metrics_http_t *h = cls;
  unsigned status;
  char *doc;
  (void)version;
  (void)upload;
  (void)upload_size;
  (void)req_ctx;

  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
      strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
    return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                 "only GET and HEAD are served here\n", false, "text/plain");
  if (strcmp(url, "/metrics") != 0)
    return reply(c, MHD_HTTP_NOT_FOUND,
                 "nneditd serves Prometheus metrics at /metrics\n", false,
                 "text/plain");
  doc = fetch_document(h, &status);
  if (doc != NULL)
    return reply(c, status, doc, true, CONTENT_TYPE);
  return reply(c, status,
               status == MHD_HTTP_SERVICE_UNAVAILABLE
                   ? "nneditd is stopping, or busy past 5 s\n"
                   : "nneditd could not render its metrics\n",
               false, "text/plain");
}

/* On the loop thread: one render answers every scrape asked for so far. */
static void on_async(uv_async_t *a) {
  nne_metrics_http_t *h = a->data;
  nne_prom_buf_t b;
  uint64_t target;

  pthread_mutex_lock(&h->mu);
  target = h->asked;
  pthread_mutex_unlock(&h->mu);
  if (target == h->done)
    return;
  nne_prom_buf_init(&b, DOC_LIMIT);
  h->render(h->app, &b);
  if (b.failed)
    nne_log_warn("metrics: the document did not fit in %u bytes or memory",
                 DOC_LIMIT);
  pthread_mutex_lock(&h->mu);
  free(h->text);
  h->text = NULL;
  h->len = 0;
  if (!b.failed) {
    h->text = b.data != NULL ? b.data : strdup("");
    h->len = b.data != NULL ? b.len : 0;
    b.data = NULL;
  }
  h->done = target;
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
  nne_prom_buf_free(&b);
}

/* libmicrohttpd's own messages go to our log; those of a failing start
 * (on the starting thread) are kept for the error message instead. */
static __thread char start_error[200];
static __thread bool starting;

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  char line[200];
  size_t n;
  (void)cls;
  vsnprintf(line, sizeof line, fmt, ap);
  n = strlen(line);
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '.'))
    line[--n] = '\0';
  if (starting) {
    /* "Failed to bind to port 0: Address already in use": the port it
     * names is the unused argument, not ours; keep the reason. */
    const char *why = strrchr(line, ':');
    snprintf(start_error, sizeof start_error, "%s",
             why != NULL && why[1] == ' ' ? why + 2 : line);
    return;
  }
  nne_log_warn("metrics: %s", line);
}

/* "host:port", "[v6]:port", ":port" or "port" (host 127.0.0.1: loopback
 * unless told). */
static int parse_addr(const char *addr, struct sockaddr_storage *ss,
                      bool *v6, nne_err_t *err) {
  char host[256];
  const char *colon, *port_s;
  char *end;
  long port;
  size_t hl;

  if (addr[0] == '[') {
    const char *close = strchr(addr, ']');
    if (close == NULL || close[1] != ':')
      return nne_err_set(err, NNE_EINVAL,
                         "--metrics-listen: '%s' is not [v6 address]:port",
                         addr);
    hl = (size_t)(close - addr - 1);
    if (hl >= sizeof host)
      return nne_err_set(err, NNE_EINVAL, "--metrics-listen: address too long");
    memcpy(host, addr + 1, hl);
    host[hl] = '\0';
    port_s = close + 2;
    *v6 = true;
  } else {
    colon = strrchr(addr, ':');
    if (colon == NULL) {
      snprintf(host, sizeof host, "127.0.0.1");
      port_s = addr;
    } else {
      hl = (size_t)(colon - addr);
      if (hl >= sizeof host)
        return nne_err_set(err, NNE_EINVAL,
                           "--metrics-listen: address too long");
      memcpy(host, addr, hl);
      host[hl] = '\0';
      if (hl == 0)
        snprintf(host, sizeof host, "127.0.0.1");
      else if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
      port_s = colon + 1;
    }
    *v6 = false;
  }
  errno = 0;
  port = strtol(port_s, &end, 10);
  if (*port_s == '\0' || *end != '\0' || errno != 0 || port < 0 ||
      port > 65535)
    return nne_err_set(err, NNE_EINVAL,
                       "--metrics-listen: '%s': the port must be 0..65535",
                       addr);
  memset(ss, 0, sizeof *ss);
  if (*v6 ? uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) != 0
          : uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) != 0)
    return nne_err_set(err, NNE_EINVAL,
                       "--metrics-listen: '%s' is not an IP address and "
                       "port (host:port, [v6]:port or :port)",
                       addr);
  return 0;
}

static void on_close(uv_handle_t *hd) {
  nne_metrics_http_t *h = hd->data;
  pthread_mutex_destroy(&h->mu);
  pthread_cond_destroy(&h->cv);
  free(h->text);
  free(h);
}

int nne_metrics_http_start(nne_metrics_http_t **out, uv_loop_t *loop,
                           const char *addr, nne_metrics_render_fn render,
                           void *app, nne_err_t *err) {
  struct sockaddr_storage ss;
  const union MHD_DaemonInfo *info;
  nne_metrics_http_t *h;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
                   MHD_USE_ERROR_LOG;
  char host[INET6_ADDRSTRLEN];
  bool v6 = false;
  int rc;

  *out = NULL;
  rc = parse_addr(addr, &ss, &v6, err);
  if (rc != 0)
    return rc;
  if (v6)
    flags |= MHD_USE_IPv6;
  h = calloc(1, sizeof *h);
  if (h == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  h->loop = loop;
  h->render = render;
  h->app = app;
  pthread_mutex_init(&h->mu, NULL);
  pthread_cond_init(&h->cv, NULL);
  rc = uv_async_init(loop, &h->async, on_async);
  if (rc != 0) {
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
    return nne_err_set(err, NNE_EINTERNAL, "metrics: %s", uv_strerror(rc));
  }
  h->async.data = h;
  start_error[0] = '\0';
  starting = true;
  /* The logger first: options before it would log the default way. */
  h->mhd = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
      on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)16, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned)10, MHD_OPTION_END);
  starting = false;
  if (h->mhd == NULL) {
    rc = nne_err_set(err, NNE_EUNAVAIL, "--metrics-listen %s: cannot listen%s%s",
                     addr, start_error[0] ? ": " : "",
                     start_error[0] ? start_error : " (address in use?)");
    uv_close((uv_handle_t *)&h->async, on_close);
    return rc;
  }
  info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
  if (v6)
    uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof host);
  else
    uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof host);
  snprintf(h->addr, sizeof h->addr, v6 ? "[%s]:%u" : "%s:%u", host,
           info != NULL ? (unsigned)info->port : 0u);
  *out = h;
  return 0;
}

const char *nne_metrics_http_addr(const nne_metrics_http_t *h) {
  return h->addr;
}

void nne_metrics_http_stop(nne_metrics_http_t *h) {
  if (h == NULL)
    return;
  /* Scrapes waiting for the loop must give up before the HTTP thread is
   * joined: the loop, being here, will not render for them. */
  pthread_mutex_lock(&h->mu);
  h->closing = true;
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
  MHD_stop_daemon(h->mhd);
  h->mhd = NULL;
  uv_close((uv_handle_t *)&h->async, on_close);
}
