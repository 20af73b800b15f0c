/* conn.c — the client and its calls: connecting, one call on its own
 * completion queue (unary or server-streaming), and the mapping from a
 * gRPC status to nne_client_err_t.
 *
 * Every call creates its own completion queue and plucks only its own tags,
 * so concurrent calls on one client never see each other's events, and the
 * channel (thread-safe in gRPC) is the only shared object.
 */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#ifndef NNE_VERSION
#define NNE_VERSION "0.0.0"
#endif

_Static_assert((int)GRPC_STATUS_UNAUTHENTICATED ==
                   (int)NNE_CLIENT_UNAUTHENTICATED,
               "gRPC status numbers");

const char *nne_client_status_name(int code) {
  switch (code) {
#define NNE_CLIENT__CODE_NAME(name, val)                                       \
  case val: return #name;
    NNE_CLIENT_CODE_MAP(NNE_CLIENT__CODE_NAME)
#undef NNE_CLIENT__CODE_NAME
  default: return "UNKNOWN";
  }
}

const char *nne_client_version(void) {
  return NNE_VERSION;
}

const char *nne__method_name(const char *method) {
  const char *slash = strrchr(method, '/'), *p;
  if (slash == NULL || slash == method)
    return method;
  /* Back from the slash to the dot that ends the package. */
  for (p = slash; p > method && p[-1] != '.' && p[-1] != '/'; p--)
    ;
  return p;
}

/* ---- connecting ---------------------------------------------------------- */

void nne_client_opts_init(nne_client_opts_t *opts) {
  if (opts == NULL)
    return;
  memset(opts, 0, sizeof *opts);
  opts->address = NNE_CLIENT_DEFAULT_ADDRESS;
  opts->timeout_ms = NNE_CLIENT_DEFAULT_TIMEOUT_MS;
  opts->max_recv_bytes = NNE_CLIENT_DEFAULT_MAX_RECV_BYTES;
  opts->max_tensor_bytes = NNE_CLIENT_DEFAULT_MAX_TENSOR_BYTES;
}

/* A PEM file's text into *out (malloc'd, NUL-terminated); NULL path: NULL. */
static int read_pem(const char *what, const char *path, char **out,
                    nne_client_err_t *err) {
  FILE *f;
  size_t n;
  char *buf;

  *out = NULL;
  if (path == NULL)
    return 0;
  if ((f = fopen(path, "rb")) == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "connect: %s %.200s: %s", what, path, strerror(errno));
  buf = malloc((1u << 20) + 1);
  if (buf == NULL) {
    fclose(f);
    return nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                        "connect: out of memory");
  }
  n = fread(buf, 1, 1u << 20, f);
  if (ferror(f) || !feof(f) || n == 0) {
    fclose(f);
    free(buf);
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "connect: %s %.200s: empty, unreadable or over 1 MiB",
                        what, path);
  }
  fclose(f);
  buf[n] = '\0';
  if (strstr(buf, "-----BEGIN ") == NULL) {
    free(buf);
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "connect: %s %.200s: not a PEM file", what, path);
  }
  *out = buf;
  return 0;
}

/* The channel's credentials: TLS when asked for, else plaintext. */
static grpc_channel_credentials *make_creds(const nne_client_opts_t *o,
                                            nne_client_err_t *err, int *rc) {
  char *ca = NULL, *cert = NULL, *key = NULL;
  grpc_ssl_pem_key_cert_pair pair;
  grpc_channel_credentials *creds;

  *rc = 0;
  if (!o->tls && o->tls_ca_file == NULL && o->tls_cert_file == NULL &&
      o->tls_key_file == NULL)
    return grpc_insecure_credentials_create();
  if ((o->tls_cert_file == NULL) != (o->tls_key_file == NULL)) {
    *rc = nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                       "connect: a client certificate and its key go "
                       "together");
    return NULL;
  }
  if ((*rc = read_pem("CA", o->tls_ca_file, &ca, err)) != 0 ||
      (*rc = read_pem("certificate", o->tls_cert_file, &cert, err)) != 0 ||
      (*rc = read_pem("key", o->tls_key_file, &key, err)) != 0) {
    free(ca);
    free(cert);
    return NULL;
  }
  pair.private_key = key;
  pair.cert_chain = cert;
  creds = grpc_ssl_credentials_create(ca, cert != NULL ? &pair : NULL, NULL,
                                      NULL);
  free(ca);
  free(cert);
  if (key != NULL)
    memset(key, 0, strlen(key));
  free(key);
  if (creds == NULL)
    *rc = nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                       "connect: gRPC refused the TLS settings");
  return creds;
}

int nne_client_connect(const nne_client_opts_t *opts, nne_client_t **out,
                       nne_client_err_t *err) {
  nne_client_opts_t o;
  nne_client_t *cli;
  grpc_channel_credentials *creds;
  grpc_arg args[4];
  grpc_channel_args chargs;
  char agent[64];

  if (out == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "connect: out is NULL");
  *out = NULL;
  nne_client_opts_init(&o);
  if (opts != NULL) {
    if (opts->address != NULL)
      o.address = opts->address;
    o.timeout_ms = opts->timeout_ms;
    if (opts->max_recv_bytes != 0)
      o.max_recv_bytes = opts->max_recv_bytes;
    if (opts->max_tensor_bytes != 0)
      o.max_tensor_bytes = opts->max_tensor_bytes;
    o.token = opts->token;
    o.tls = opts->tls;
    o.tls_ca_file = opts->tls_ca_file;
    o.tls_cert_file = opts->tls_cert_file;
    o.tls_key_file = opts->tls_key_file;
  }
  if (o.token != NULL) {
    size_t i, n = strlen(o.token);
    if (n < 16 || n > 4096)
      return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                          "connect: a token has 16 to 4096 characters (this "
                          "one has %zu)",
                          n);
    for (i = 0; i < n; i++)
      if (o.token[i] <= ' ' || o.token[i] > '~')
        /* Never echo the token: say where, not what. */
        return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                            "connect: the token has a space or a "
                            "non-printable character at %zu",
                            i);
  }
  if (o.address[0] == '\0')
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "connect: empty address");
  if (o.timeout_ms < 0)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "connect: timeout_ms %" PRId64 " is negative",
                        o.timeout_ms);
  /* The gRPC argument is an int. */
  if (o.max_recv_bytes > INT32_MAX)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "connect: max_recv_bytes %zu is over %d",
                        o.max_recv_bytes, INT32_MAX);
  if (o.max_tensor_bytes > SIZE_MAX / 2)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "connect: max_tensor_bytes %" PRIu64 " is too large",
                        o.max_tensor_bytes);

  cli = calloc(1, sizeof *cli);
  if (cli == NULL || (cli->address = strdup(o.address)) == NULL) {
    free(cli);
    return nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                        "connect: out of memory");
  }
  cli->timeout_ms = o.timeout_ms;
  cli->max_recv_bytes = o.max_recv_bytes;
  cli->max_tensor_bytes = o.max_tensor_bytes;
  if (o.token != NULL) {
    size_t n = strlen(o.token) + sizeof "Bearer ";
    if ((cli->authz = malloc(n)) == NULL) {
      free(cli->address);
      free(cli);
      return nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                          "connect: out of memory");
    }
    snprintf(cli->authz, n, "Bearer %s", o.token);
  }

  grpc_init();
  snprintf(agent, sizeof agent, "nnedit-c/%s", NNE_VERSION);
  memset(args, 0, sizeof args);
  /* Set on purpose: gRPC's default (4 MiB) is below a logits chunk plus its
   * header on a big vocabulary, and the limit is part of our bounds. */
  args[0].type = GRPC_ARG_INTEGER;
  args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[0].value.integer = (int)cli->max_recv_bytes;
  args[1].type = GRPC_ARG_STRING;
  args[1].key = (char *)GRPC_ARG_PRIMARY_USER_AGENT_STRING;
  args[1].value.string = agent;
  /* The daemon is usually on this host and often just (re)started: retry a
   * refused connection quickly instead of backing off to gRPC's 120 s. */
  args[2].type = GRPC_ARG_INTEGER;
  args[2].key = (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
  args[2].value.integer = 100;
  args[3].type = GRPC_ARG_INTEGER;
  args[3].key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
  args[3].value.integer = 2000;
  chargs.num_args = sizeof args / sizeof args[0];
  chargs.args = args;

  {
    int rc;
    creds = make_creds(&o, err, &rc);
    if (creds == NULL) {
      free(cli->authz);
      free(cli->address);
      free(cli);
      grpc_shutdown_blocking();
      return rc;
    }
  }
  cli->channel = grpc_channel_create(cli->address, creds, &chargs);
  grpc_channel_credentials_release(creds);
  if (cli->channel == NULL) {
    free(cli->authz);
    free(cli->address);
    free(cli);
    grpc_shutdown_blocking();
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "connect: cannot create a channel to '%.200s'",
                        o.address);
  }
  *out = cli;
  return 0;
}

void nne_client_close(nne_client_t *cli) {
  if (cli == NULL)
    return;
  grpc_channel_destroy(cli->channel);
  free(cli->address);
  if (cli->authz != NULL) {
    memset(cli->authz, 0, strlen(cli->authz));
    free(cli->authz);
  }
  free(cli);
  /* Blocking, so that a program that closes its last client has no gRPC
   * threads left behind (leak checkers, fork). */
  grpc_shutdown_blocking();
}

const char *nne_client_address(const nne_client_t *cli) {
  return cli ? cli->address : NULL;
}

static gpr_timespec deadline_in(int64_t ms) {
  if (ms <= 0)
    return gpr_inf_future(GPR_CLOCK_MONOTONIC);
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                      gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* Destroys a pluck queue whose tags have all been plucked. */
static void cq_destroy(grpc_completion_queue *cq) {
  grpc_event ev;
  grpc_completion_queue_shutdown(cq);
  do
    ev = grpc_completion_queue_pluck(cq, NULL,
                                     gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  while (ev.type != GRPC_QUEUE_SHUTDOWN);
  grpc_completion_queue_destroy(cq);
}

static const char *conn_state_name(grpc_connectivity_state s) {
  switch (s) {
  case GRPC_CHANNEL_IDLE: return "IDLE";
  case GRPC_CHANNEL_CONNECTING: return "CONNECTING";
  case GRPC_CHANNEL_READY: return "READY";
  case GRPC_CHANNEL_TRANSIENT_FAILURE: return "TRANSIENT_FAILURE";
  case GRPC_CHANNEL_SHUTDOWN: return "SHUTDOWN";
  }
  return "?";
}

/* Connects and waits for READY, for at most timeout_ms (0: no limit). A
 * failed attempt is retried by gRPC (with its backoff) unless `once`, when
 * it ends the wait. */
static int await_ready(nne_client_t *cli, int64_t timeout_ms, bool once,
                       const char *what, nne_client_err_t *err) {
  grpc_completion_queue *cq;
  grpc_connectivity_state st;
  gpr_timespec deadline;
  bool tried = false;
  int tag;
  int rc = 0;

  if (cli == NULL || timeout_ms < 0)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "%s: NULL client or negative timeout", what);
  deadline = deadline_in(timeout_ms);
  cq = grpc_completion_queue_create_for_pluck(NULL);
  st = grpc_channel_check_connectivity_state(cli->channel, 1);
  while (st != GRPC_CHANNEL_READY) {
    grpc_event ev;
    if (st == GRPC_CHANNEL_SHUTDOWN) {
      rc = nne__err_set(err, NNE_CLIENT_UNAVAILABLE,
                        "channel to %s is shut down", cli->address);
      break;
    }
    /* Once: a failed attempt ends the wait, whether the channel reports it
     * as TRANSIENT_FAILURE or (some gRPC versions, after a refusal) falls
     * back to IDLE once it has tried. */
    if (once && (st == GRPC_CHANNEL_TRANSIENT_FAILURE ||
                 (tried && st == GRPC_CHANNEL_IDLE))) {
      rc = nne__err_set(err, NNE_CLIENT_UNAVAILABLE,
                        "cannot connect to %s (the connection attempt "
                        "failed: refused, or no such host)",
                        cli->address);
      break;
    }
    tried = tried || st == GRPC_CHANNEL_CONNECTING;
    grpc_channel_watch_connectivity_state(cli->channel, st, deadline, cq, &tag);
    ev = grpc_completion_queue_pluck(cq, &tag,
                                     gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (!ev.success) {
      rc = nne__err_set(err, NNE_CLIENT_UNAVAILABLE,
                        "no connection to %s after %" PRId64 " ms (channel %s)",
                        cli->address, timeout_ms, conn_state_name(st));
      break;
    }
    /* try_to_connect: an IDLE channel (after a failure) must be kicked. */
    st = grpc_channel_check_connectivity_state(cli->channel, !once);
  }
  cq_destroy(cq);
  return rc;
}

int nne_client_wait_ready(nne_client_t *cli, int64_t timeout_ms,
                          nne_client_err_t *err) {
  return await_ready(cli, timeout_ms, false, "wait_ready", err);
}

int nne_client_try_connect(nne_client_t *cli, int64_t timeout_ms,
                           nne_client_err_t *err) {
  return await_ready(cli, timeout_ms, true, "try_connect", err);
}

/* ---- one call ------------------------------------------------------------ */

/* One call. The status op is started first, in its own batch, because it
 * completes only when the call is over, whatever happened: every path out of
 * a call (success, server error, local abort, deadline) ends by plucking it.
 * Other batches are started one at a time and plucked before the next. */
typedef struct rpc {
  nne_client_t *cli;
  const char *method;
  grpc_completion_queue *cq;
  grpc_call *call;
  grpc_metadata_array md_initial;
  grpc_metadata_array md_trailing;
  grpc_status_code status;
  grpc_slice details;
  const char *error_string;
  grpc_byte_buffer *recv;
  bool status_started;
  grpc_metadata md_auth;    /* the bearer token, when the client has one */
  char tag_ops, tag_status; /* their addresses are the tags */
} rpc_t;

static bool rpc_batch(rpc_t *r, const grpc_op *ops, size_t n) {
  grpc_event ev;
  if (grpc_call_start_batch(r->call, ops, n, &r->tag_ops, NULL) !=
      GRPC_CALL_OK) {
    /* Only a bug of ours gets here (two ops of a kind in flight). */
    grpc_call_cancel_with_status(r->call, GRPC_STATUS_INTERNAL,
                                 "libnnedit: batch refused", NULL);
    return false;
  }
  ev = grpc_completion_queue_pluck(r->cq, &r->tag_ops,
                                   gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  return ev.type == GRPC_OP_COMPLETE && ev.success;
}

/* Starts a call with one request message. Returns false when the call
 * failed already (then rpc_finish reports why). */
static bool rpc_start(rpc_t *r, nne_client_t *cli, const char *method,
                      grpc_byte_buffer *req, gpr_timespec deadline) {
  grpc_op ops[4];
  grpc_slice m;

  memset(r, 0, sizeof *r);
  r->cli = cli;
  r->method = method;
  r->details = grpc_empty_slice();
  grpc_metadata_array_init(&r->md_initial);
  grpc_metadata_array_init(&r->md_trailing);
  r->cq = grpc_completion_queue_create_for_pluck(NULL);
  /* gRPC needs the method only during create_call, but it would keep a
   * static slice by reference: copy, since raw calls pass the caller's. */
  m = grpc_slice_from_copied_string(method);
  r->call =
      grpc_channel_create_call(cli->channel, NULL, GRPC_PROPAGATE_DEFAULTS,
                               r->cq, m, NULL, deadline, NULL);
  grpc_slice_unref(m);

  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[0].data.recv_status_on_client.trailing_metadata = &r->md_trailing;
  ops[0].data.recv_status_on_client.status = &r->status;
  ops[0].data.recv_status_on_client.status_details = &r->details;
  ops[0].data.recv_status_on_client.error_string = &r->error_string;
  if (grpc_call_start_batch(r->call, ops, 1, &r->tag_status, NULL) !=
      GRPC_CALL_OK) {
    r->status = GRPC_STATUS_INTERNAL;
    return false;
  }
  r->status_started = true;

  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  if (cli->authz != NULL) {
    /* Static for gRPC's purposes: it only reads them during this batch,
     * and the call lives inside it. */
    r->md_auth.key = grpc_slice_from_static_string("authorization");
    r->md_auth.value = grpc_slice_from_static_string(cli->authz);
    ops[0].data.send_initial_metadata.count = 1;
    ops[0].data.send_initial_metadata.metadata = &r->md_auth;
  }
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = req;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &r->md_initial;
  return rpc_batch(r, ops, 4);
}

/* Receives the next message: true with *out set (the caller destroys it),
 * true with *out NULL at the end of the stream, false when the call failed. */
static bool rpc_recv(rpc_t *r, grpc_byte_buffer **out) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &r->recv;
  *out = NULL;
  if (!rpc_batch(r, &op, 1))
    return false;
  *out = r->recv;
  r->recv = NULL;
  return true;
}

/* Ends the call early (a bad reply, enough messages): the server sees a
 * cancellation. rpc_finish must still follow. */
static void rpc_cancel(rpc_t *r) {
  grpc_call_cancel_with_status(r->call, GRPC_STATUS_CANCELLED,
                               "cancelled by libnnedit", NULL);
}

/* Waits for the call's status, releases everything, and returns 0 for OK or
 * -code with err filled from the status. */
static int rpc_finish(rpc_t *r, nne_client_err_t *err) {
  int rc = 0;
  grpc_status_code st = r->status;

  if (r->status_started) {
    grpc_completion_queue_pluck(r->cq, &r->tag_status,
                                gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    st = r->status;
  }
  if (st != GRPC_STATUS_OK) {
    int code = ((int)st >= 0 && (int)st <= 16) ? (int)st : NNE_CLIENT_UNKNOWN;
    size_t n = GRPC_SLICE_LENGTH(r->details);
    const char *what = nne__method_name(r->method);
    const char *details = (const char *)GRPC_SLICE_START_PTR(r->details);
    if (n >= NNE_CLIENT_ERR_MAX)
      n = NNE_CLIENT_ERR_MAX - 1;
    if (code == NNE_CLIENT_DEADLINE_EXCEEDED)
      rc = nne__err_set(err, code, "%.*s (%s, timeout %" PRId64 " ms)", (int)n,
                        details, what, r->cli->timeout_ms);
    else if (code == NNE_CLIENT_UNAVAILABLE)
      rc = nne__err_set(err, code, "%.*s (%s at %s)", (int)n, details, what,
                        r->cli->address);
    else if (n == 0)
      rc =
          nne__err_set(err, code, "%s: %s", what, nne_client_status_name(code));
    else
      /* The server's own words: they name the bad field. */
      rc = nne__err_set(err, code, "%.*s", (int)n, details);
  }
  if (r->recv != NULL)
    grpc_byte_buffer_destroy(r->recv);
  grpc_call_unref(r->call);
  grpc_metadata_array_destroy(&r->md_initial);
  grpc_metadata_array_destroy(&r->md_trailing);
  grpc_slice_unref(r->details);
  gpr_free((void *)r->error_string);
  cq_destroy(r->cq);
  return rc;
}

static int encode_req(const char *method, const pb_msgdesc_t *desc,
                      const void *msg, grpc_byte_buffer **bb,
                      nne_client_err_t *err) {
  char why[128] = "";
  if (!nne_pb_encode_bb(desc, msg, bb, why, sizeof why))
    return nne__err_set(err, NNE_CLIENT_INTERNAL,
                        "%s: cannot encode request: %s",
                        nne__method_name(method), why);
  return 0;
}

/* Sends req (a byte buffer the call borrows) and receives the one reply
 * into *reply (NULL when none came; the caller destroys it). */
static int call_once(nne_client_t *cli, const char *method,
                     grpc_byte_buffer *req, grpc_byte_buffer **reply,
                     nne_client_err_t *err) {
  rpc_t r;
  int rc;
  *reply = NULL;
  if (rpc_start(&r, cli, method, req, deadline_in(cli->timeout_ms)))
    rpc_recv(&r, reply);
  rc = rpc_finish(&r, err);
  if (rc == 0 && *reply == NULL)
    rc = nne__err_set(err, NNE_CLIENT_INTERNAL, "%s: no reply message",
                      nne__method_name(method));
  return rc;
}

int nne__unary(nne_client_t *cli, const char *method,
               const pb_msgdesc_t *req_desc, const void *req,
               const pb_msgdesc_t *resp_desc, void *resp, nne__dec_t *dec,
               nne_client_err_t *err) {
  grpc_byte_buffer *bb = NULL, *reply = NULL;
  int rc;

  if ((rc = encode_req(method, req_desc, req, &bb, err)) < 0)
    return rc;
  rc = call_once(cli, method, bb, &reply, err);
  grpc_byte_buffer_destroy(bb);
  if (rc == 0)
    rc = nne__decode_bb(reply, resp_desc, resp, dec, method, err);
  if (reply != NULL)
    grpc_byte_buffer_destroy(reply);
  return rc;
}

int nne__stream(nne_client_t *cli, const char *method,
                const pb_msgdesc_t *req_desc, const void *req,
                int64_t timeout_ms, nne__msg_fn on_msg, void *ctx,
                nne_client_err_t *err) {
  grpc_byte_buffer *bb = NULL, *msg;
  nne_client_err_t lerr;
  rpc_t r;
  int rc, local = 0;

  if ((rc = encode_req(method, req_desc, req, &bb, err)) < 0)
    return rc;
  if (rpc_start(&r, cli, method, bb, deadline_in(timeout_ms))) {
    while (rpc_recv(&r, &msg) && msg != NULL) {
      local = on_msg(ctx, msg, &lerr);
      grpc_byte_buffer_destroy(msg);
      if (local != NNE__STREAM_MORE) {
        rpc_cancel(&r);
        break;
      }
    }
  }
  grpc_byte_buffer_destroy(bb);
  rc = rpc_finish(&r, err);
  if (local < 0) {
    if (err != NULL)
      *err = lerr;
    return local;
  }
  /* Our own cancel: the stream ended as asked. */
  if (local == NNE__STREAM_ENOUGH && rc == -NNE_CLIENT_CANCELLED)
    return 0;
  return rc;
}

int nne_client_call_raw(nne_client_t *cli, const char *method, const void *req,
                        size_t req_len, void **resp, size_t *resp_len,
                        nne_client_err_t *err) {
  grpc_slice slice;
  grpc_byte_buffer *bb, *reply = NULL;
  grpc_byte_buffer_reader rd;
  int rc;

  if (resp != NULL)
    *resp = NULL;
  if (resp_len != NULL)
    *resp_len = 0;
  if (cli == NULL || method == NULL || method[0] != '/' || resp == NULL ||
      resp_len == NULL || (req == NULL && req_len > 0))
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "call_raw: NULL argument or a method not of the form "
                        "/package.Service/Method");
  slice = req_len ? grpc_slice_from_copied_buffer(req, req_len)
                  : grpc_empty_slice();
  bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  rc = call_once(cli, method, bb, &reply, err);
  grpc_byte_buffer_destroy(bb);
  if (rc == 0 && !grpc_byte_buffer_reader_init(&rd, reply)) {
    rc = nne__err_set(err, NNE_CLIENT_INTERNAL, "%s: unreadable reply",
                      nne__method_name(method));
  } else if (rc == 0) {
    grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
    size_t n = GRPC_SLICE_LENGTH(all);
    if (n > 0 && (*resp = malloc(n)) == NULL)
      rc = nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                        "%s: cannot allocate %zu bytes",
                        nne__method_name(method), n);
    else if (n > 0) {
      memcpy(*resp, GRPC_SLICE_START_PTR(all), n);
      *resp_len = n;
    }
    grpc_slice_unref(all);
    grpc_byte_buffer_reader_destroy(&rd);
  }
  if (reply != NULL)
    grpc_byte_buffer_destroy(reply);
  return rc;
}

void nne_client_free(void *p) {
  free(p);
}
