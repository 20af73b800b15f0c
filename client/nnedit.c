/* nnedit.c — libnnedit: see include/nnedit.h for the contract.
 *
 * Layout of this file:
 *   tables       status, dtype, state and health names
 *   client       connect / close / wait_ready
 *   rpc          one call on its own pluck completion queue
 *   health       Check, bounded Watch
 *   models       List, Load, Unload, Describe
 *   reassembler  TensorChunk runs -> one tensor (nnedit_internal.h)
 *   forward      Inference/Forward (on the pristine model or an edit set)
 *   edits        Edits/Apply, List, Get, Drop
 *   graph        Models/Graph
 *   admin        Admin/Stats
 *   igraph       intervention graphs: the builder of Trace programs
 *   trace        Inference/Trace (sessions of traced forward passes)
 *   tensors      numel, free, .npy (read and write)
 *
 * Every call creates its own completion queue and plucks only its own tags,
 * so concurrent calls on one client never see each other's events, and the
 * channel (thread-safe in gRPC) is the only shared object.
 */
#include "nnedit.h"
#include "nnedit_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "grpc_health/v1/health.pb.h"
#include "nne_pb.h"
#include "nnedit/v1/admin.pb.h"
#include "nnedit/v1/edits.pb.h"
#include "nnedit/v1/inference.pb.h"
#include "nnedit/v1/models.pb.h"
#include "nnedit/v1/tensor.pb.h"

#ifndef NNE_VERSION
#define NNE_VERSION "0.0.0"
#endif

/* The public fixed-size strings mirror the proto's nanopb bounds; if a bound
 * changes, the header must change with it (and these fail to compile). */
#define FIELD_SIZE(type, field) sizeof(((type *)0)->field)
_Static_assert(FIELD_SIZE(nnedit_v1_ModelInfo, name) ==
                   NNE_CLIENT_MODEL_NAME_MAX,
               "ModelInfo.name bound");
_Static_assert(FIELD_SIZE(nnedit_v1_ModelInfo, device) == NNE_CLIENT_DEVICE_MAX,
               "ModelInfo.device bound");
_Static_assert(FIELD_SIZE(nnedit_v1_ModelInfo, family) == NNE_CLIENT_FAMILY_MAX,
               "ModelInfo.family bound");
_Static_assert(FIELD_SIZE(nnedit_v1_ModelInfo, error) ==
                   NNE_CLIENT_MODEL_ERROR_MAX,
               "ModelInfo.error bound");
_Static_assert(FIELD_SIZE(nnedit_v1_ModelInfo, export_kind) ==
                   NNE_CLIENT_EXPORT_KIND_MAX,
               "ModelInfo.export_kind bound");
_Static_assert(FIELD_SIZE(nnedit_v1_ModelInfo, family_reason) ==
                   NNE_CLIENT_FAMILY_REASON_MAX,
               "ModelInfo.family_reason bound");
_Static_assert(FIELD_SIZE(nnedit_v1_DescribeModelRequest, module) ==
                   NNE_CLIENT_MODULE_NAME_MAX,
               "DescribeModelRequest.module bound");
_Static_assert((int)nnedit_v1_SiteKind_SITE_NODE_INPUT ==
                   (int)NNE_CLIENT_SITE_NODE_INPUT,
               "SiteKind numbers");
_Static_assert(FIELD_SIZE(nnedit_v1_ListModelsResponse, server_version) ==
                   NNE_CLIENT_VERSION_MAX,
               "ListModelsResponse.server_version bound");
_Static_assert(FIELD_SIZE(nnedit_v1_TensorChunk, name) == NNE_CLIENT_NAME_MAX,
               "TensorChunk.name bound");
_Static_assert(FIELD_SIZE(nnedit_v1_TensorChunk, shape) ==
                   NNE_CLIENT_MAX_DIMS * sizeof(int64_t),
               "TensorChunk.shape bound");
_Static_assert(FIELD_SIZE(nnedit_v1_EditSetInfo, id) ==
                   NNE_CLIENT_EDIT_SET_ID_MAX,
               "EditSetInfo.id bound");
_Static_assert(FIELD_SIZE(nnedit_v1_EditSetInfo, model) ==
                   NNE_CLIENT_MODEL_NAME_MAX,
               "EditSetInfo.model bound");
_Static_assert(FIELD_SIZE(nnedit_v1_EditSetInfo, label) == NNE_CLIENT_LABEL_MAX,
               "EditSetInfo.label bound");
_Static_assert(FIELD_SIZE(nnedit_v1_EditSetInfo, backend_key) ==
                   NNE_CLIENT_BACKEND_KEY_MAX,
               "EditSetInfo.backend_key bound");
_Static_assert(FIELD_SIZE(nnedit_v1_ApplyEditsRequest, label) ==
                   NNE_CLIENT_LABEL_MAX,
               "ApplyEditsRequest.label bound");
_Static_assert(FIELD_SIZE(nnedit_v1_ForwardRequest, edit_set) ==
                   NNE_CLIENT_EDIT_SET_ID_MAX,
               "ForwardRequest.edit_set bound");
_Static_assert(FIELD_SIZE(nnedit_v1_Edit, site) == NNE_CLIENT_SITE_MAX,
               "Edit.site bound");
_Static_assert(FIELD_SIZE(nnedit_v1_Edit, name) == NNE_CLIENT_NAME_MAX,
               "Edit.name bound");
_Static_assert(FIELD_SIZE(nnedit_v1_Edit, ranges) ==
                   NNE_CLIENT_MAX_RANGES * sizeof(nnedit_v1_DimRange),
               "Edit.ranges bound");
_Static_assert(FIELD_SIZE(nnedit_v1_ResolvedEdit, ranges) ==
                   NNE_CLIENT_MAX_RANGES * sizeof(nnedit_v1_DimRange),
               "ResolvedEdit.ranges bound");
_Static_assert(FIELD_SIZE(nnedit_v1_ResolvedEdit, tensor_shape) ==
                   NNE_CLIENT_MAX_DIMS * sizeof(int64_t),
               "ResolvedEdit.tensor_shape bound");
_Static_assert(FIELD_SIZE(nnedit_v1_Tensor, shape) ==
                   NNE_CLIENT_MAX_DIMS * sizeof(int64_t),
               "Tensor.shape bound");
_Static_assert(FIELD_SIZE(nnedit_v1_GraphRequest, module) ==
                   NNE_CLIENT_MODULE_NAME_MAX,
               "GraphRequest.module bound");
_Static_assert(FIELD_SIZE(nnedit_v1_GraphResponse, module) ==
                   NNE_CLIENT_MODULE_NAME_MAX,
               "GraphResponse.module bound");
_Static_assert(FIELD_SIZE(nnedit_v1_BackendCacheStats, model) ==
                   NNE_CLIENT_MODEL_NAME_MAX,
               "BackendCacheStats.model bound");
_Static_assert((int)nnedit_v1_EditOp_ZERO == (int)NNE_CLIENT_EDIT_ZERO &&
                   (int)nnedit_v1_EditOp_SAVE == (int)NNE_CLIENT_EDIT_SAVE,
               "EditOp numbers");
_Static_assert((int)nnedit_v1_NodeKind_NODE_OTHER ==
                       (int)NNE_CLIENT_NODE_OTHER &&
                   (int)nnedit_v1_NodeKind_NODE_HOOK ==
                       (int)NNE_CLIENT_NODE_HOOK,
               "NodeKind numbers");
_Static_assert((int)GRPC_STATUS_UNAUTHENTICATED ==
                   (int)NNE_CLIENT_UNAUTHENTICATED,
               "gRPC status numbers");

/* Method paths. */
#define M_HEALTH_CHECK "/grpc.health.v1.Health/Check"
#define M_HEALTH_WATCH "/grpc.health.v1.Health/Watch"
#define M_MODELS_LIST "/nnedit.v1.Models/List"
#define M_MODELS_LOAD "/nnedit.v1.Models/Load"
#define M_MODELS_UNLOAD "/nnedit.v1.Models/Unload"
#define M_MODELS_DESCRIBE "/nnedit.v1.Models/Describe"
#define M_MODELS_GRAPH "/nnedit.v1.Models/Graph"
#define M_FORWARD "/nnedit.v1.Inference/Forward"
#define M_TRACE "/nnedit.v1.Inference/Trace"
#define M_EDITS_APPLY "/nnedit.v1.Edits/Apply"
#define M_EDITS_LIST "/nnedit.v1.Edits/List"
#define M_EDITS_GET "/nnedit.v1.Edits/Get"
#define M_EDITS_DROP "/nnedit.v1.Edits/Drop"
#define M_ADMIN_STATS "/nnedit.v1.Admin/Stats"

/* ---- errors -------------------------------------------------------------- */

static int err_setv(nne_client_err_t *err, int code, const char *fmt,
                    va_list ap) {
  if (err != NULL) {
    err->code = code;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
  }
  return -code;
}

/* Fills err (if any) and returns -code. */
static int err_set(nne_client_err_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int err_set(nne_client_err_t *err, int code, const char *fmt, ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = err_setv(err, code, fmt, ap);
  va_end(ap);
  return rc;
}

/* Copies a NUL-terminated string into a fixed array; false when it does not
 * fit (the array is then left holding an empty string). */
static bool copy_str(char *dst, size_t cap, const char *src) {
  size_t n = src ? strlen(src) : 0;
  if (n >= cap) {
    dst[0] = '\0';
    return false;
  }
  memcpy(dst, src ? src : "", n + 1);
  return true;
}

/* ---- tables -------------------------------------------------------------- */

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

static const struct {
  const char *name;
  size_t size;
} dtypes[] = {
    [NNE_CLIENT_DTYPE_UNSPECIFIED] = {"unspecified", 0},
    [NNE_CLIENT_DTYPE_FLOAT32] = {"float32", 4},
    [NNE_CLIENT_DTYPE_FLOAT16] = {"float16", 2},
    [NNE_CLIENT_DTYPE_BFLOAT16] = {"bfloat16", 2},
    [NNE_CLIENT_DTYPE_FLOAT64] = {"float64", 8},
    [NNE_CLIENT_DTYPE_INT64] = {"int64", 8},
    [NNE_CLIENT_DTYPE_INT32] = {"int32", 4},
    [NNE_CLIENT_DTYPE_INT16] = {"int16", 2},
    [NNE_CLIENT_DTYPE_INT8] = {"int8", 1},
    [NNE_CLIENT_DTYPE_UINT8] = {"uint8", 1},
    [NNE_CLIENT_DTYPE_BOOL] = {"bool", 1},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

const char *nne_client_dtype_name(int dtype) {
  if (dtype <= 0 || dtype >= N_DTYPES)
    return dtypes[0].name;
  return dtypes[dtype].name;
}

size_t nne_client_dtype_size(int dtype) {
  if (dtype <= 0 || dtype >= N_DTYPES)
    return 0;
  return dtypes[dtype].size;
}

int nne_client_dtype_parse(const char *name, nne_client_dtype_t *out,
                           nne_client_err_t *err) {
  static const struct {
    const char *alias;
    nne_client_dtype_t dt;
  } aliases[] = {
      {"fp32", NNE_CLIENT_DTYPE_FLOAT32},  {"f32", NNE_CLIENT_DTYPE_FLOAT32},
      {"float", NNE_CLIENT_DTYPE_FLOAT32}, {"fp16", NNE_CLIENT_DTYPE_FLOAT16},
      {"f16", NNE_CLIENT_DTYPE_FLOAT16},   {"half", NNE_CLIENT_DTYPE_FLOAT16},
      {"bf16", NNE_CLIENT_DTYPE_BFLOAT16}, {"fp64", NNE_CLIENT_DTYPE_FLOAT64},
      {"f64", NNE_CLIENT_DTYPE_FLOAT64},   {"double", NNE_CLIENT_DTYPE_FLOAT64},
      {"long", NNE_CLIENT_DTYPE_INT64},    {"int", NNE_CLIENT_DTYPE_INT32},
      {"short", NNE_CLIENT_DTYPE_INT16},   {"char", NNE_CLIENT_DTYPE_INT8},
      {"byte", NNE_CLIENT_DTYPE_UINT8},
  };
  int i;
  size_t k;

  if (name == NULL || out == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT, "dtype: NULL argument");
  for (i = 1; i < N_DTYPES; i++)
    if (strcmp(name, dtypes[i].name) == 0) {
      *out = (nne_client_dtype_t)i;
      return 0;
    }
  for (k = 0; k < sizeof aliases / sizeof aliases[0]; k++)
    if (strcmp(name, aliases[k].alias) == 0) {
      *out = aliases[k].dt;
      return 0;
    }
  return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                 "unknown dtype '%.64s' (float32, float16, bfloat16, float64, "
                 "int64, int32, int16, int8, uint8, bool)",
                 name);
}

const char *nne_client_model_state_name(int state) {
  switch (state) {
  case NNE_CLIENT_MODEL_AVAILABLE: return "AVAILABLE";
  case NNE_CLIENT_MODEL_LOADING: return "LOADING";
  case NNE_CLIENT_MODEL_LOADED: return "LOADED";
  case NNE_CLIENT_MODEL_UNLOADING: return "UNLOADING";
  case NNE_CLIENT_MODEL_FAILED: return "FAILED";
  default: return "UNSPECIFIED";
  }
}

const char *nne_client_site_kind_name(int kind) {
  switch (kind) {
  case NNE_CLIENT_SITE_INPUT: return "input";
  case NNE_CLIENT_SITE_OUTPUT: return "output";
  case NNE_CLIENT_SITE_NODE: return "node";
  case NNE_CLIENT_SITE_NODE_INPUT: return "node_input";
  default: return "unspecified";
  }
}

const char *nne_client_health_name(int status) {
  switch (status) {
  case NNE_CLIENT_HEALTH_SERVING: return "SERVING";
  case NNE_CLIENT_HEALTH_NOT_SERVING: return "NOT_SERVING";
  case NNE_CLIENT_HEALTH_SERVICE_UNKNOWN: return "SERVICE_UNKNOWN";
  default: return "UNKNOWN";
  }
}

/* ---- client -------------------------------------------------------------- */

struct nne_client {
  grpc_channel *channel;
  char *address;
  int64_t timeout_ms;
  size_t max_recv_bytes;
  uint64_t max_tensor_bytes;
};

void nne_client_opts_init(nne_client_opts_t *opts) {
  if (opts == NULL)
    return;
  memset(opts, 0, sizeof *opts);
  opts->address = NNE_CLIENT_DEFAULT_ADDRESS;
  opts->timeout_ms = NNE_CLIENT_DEFAULT_TIMEOUT_MS;
  opts->max_recv_bytes = NNE_CLIENT_DEFAULT_MAX_RECV_BYTES;
  opts->max_tensor_bytes = NNE_CLIENT_DEFAULT_MAX_TENSOR_BYTES;
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
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT, "connect: out is NULL");
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
  }
  if (o.address[0] == '\0')
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT, "connect: empty address");
  if (o.timeout_ms < 0)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "connect: timeout_ms %" PRId64 " is negative", o.timeout_ms);
  /* The gRPC argument is an int. */
  if (o.max_recv_bytes > INT32_MAX)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "connect: max_recv_bytes %zu is over %d", o.max_recv_bytes,
                   INT32_MAX);
  if (o.max_tensor_bytes > SIZE_MAX / 2)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "connect: max_tensor_bytes %" PRIu64 " is too large",
                   o.max_tensor_bytes);

  cli = calloc(1, sizeof *cli);
  if (cli == NULL || (cli->address = strdup(o.address)) == NULL) {
    free(cli);
    return err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                   "connect: out of memory");
  }
  cli->timeout_ms = o.timeout_ms;
  cli->max_recv_bytes = o.max_recv_bytes;
  cli->max_tensor_bytes = o.max_tensor_bytes;

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

  creds = grpc_insecure_credentials_create();
  cli->channel = grpc_channel_create(cli->address, creds, &chargs);
  grpc_channel_credentials_release(creds);
  if (cli->channel == NULL) {
    free(cli->address);
    free(cli);
    grpc_shutdown_blocking();
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "connect: cannot create a channel to '%.200s'", o.address);
  }
  *out = cli;
  return 0;
}

void nne_client_close(nne_client_t *cli) {
  if (cli == NULL)
    return;
  grpc_channel_destroy(cli->channel);
  free(cli->address);
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

int nne_client_wait_ready(nne_client_t *cli, int64_t timeout_ms,
                          nne_client_err_t *err) {
  grpc_completion_queue *cq;
  grpc_connectivity_state st;
  gpr_timespec deadline;
  int tag;
  int rc = 0;

  if (cli == NULL || timeout_ms < 0)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "wait_ready: NULL client or negative timeout");
  deadline = deadline_in(timeout_ms);
  cq = grpc_completion_queue_create_for_pluck(NULL);
  st = grpc_channel_check_connectivity_state(cli->channel, 1);
  while (st != GRPC_CHANNEL_READY) {
    grpc_event ev;
    if (st == GRPC_CHANNEL_SHUTDOWN) {
      rc = err_set(err, NNE_CLIENT_UNAVAILABLE, "channel to %s is shut down",
                   cli->address);
      break;
    }
    grpc_channel_watch_connectivity_state(cli->channel, st, deadline, cq, &tag);
    ev = grpc_completion_queue_pluck(cq, &tag,
                                     gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (!ev.success) {
      rc = err_set(err, NNE_CLIENT_UNAVAILABLE,
                   "no connection to %s after %" PRId64 " ms (channel %s)",
                   cli->address, timeout_ms, conn_state_name(st));
      break;
    }
    /* try_to_connect: an IDLE channel (after a failure) must be kicked. */
    st = grpc_channel_check_connectivity_state(cli->channel, 1);
  }
  cq_destroy(cq);
  return rc;
}

/* ---- rpc ----------------------------------------------------------------- */

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
    const char *what = r->method + 1; /* "nnedit.v1.Models/Load" */
    if (n >= NNE_CLIENT_ERR_MAX)
      n = NNE_CLIENT_ERR_MAX - 1;
    if (code == NNE_CLIENT_DEADLINE_EXCEEDED)
      rc = err_set(err, code, "%.*s (%s, timeout %" PRId64 " ms)", (int)n,
                   (const char *)GRPC_SLICE_START_PTR(r->details), what,
                   r->cli->timeout_ms);
    else if (code == NNE_CLIENT_UNAVAILABLE)
      rc = err_set(err, code, "%.*s (%s at %s)", (int)n,
                   (const char *)GRPC_SLICE_START_PTR(r->details), what,
                   r->cli->address);
    else if (n == 0)
      rc = err_set(err, code, "%s: %s", what, nne_client_status_name(code));
    else
      /* The server's own words: they name the bad field. */
      rc = err_set(err, code, "%.*s", (int)n,
                   (const char *)GRPC_SLICE_START_PTR(r->details));
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

/* Why a decode failed when a callback of ours refused the bytes. */
typedef struct dec_err {
  int code;
  char msg[512];
} dec_err_t;

static bool dec_fail(dec_err_t *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool dec_fail(dec_err_t *e, int code, const char *fmt, ...) {
  va_list ap;
  if (e->code == 0) { /* the first reason is the real one */
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
  }
  return false;
}

static int encode_req(const char *method, const pb_msgdesc_t *desc,
                      const void *msg, grpc_byte_buffer **bb,
                      nne_client_err_t *err) {
  char why[128] = "";
  if (!nne_pb_encode_bb(desc, msg, bb, why, sizeof why))
    return err_set(err, NNE_CLIENT_INTERNAL, "%s: cannot encode request: %s",
                   method + 1, why);
  return 0;
}

/* A unary call: encode, send, receive one reply, decode it into resp (whose
 * callbacks the caller has set, reporting refusals in *dec). */
static int rpc_unary(nne_client_t *cli, const char *method,
                     const pb_msgdesc_t *req_desc, const void *req,
                     const pb_msgdesc_t *resp_desc, void *resp, dec_err_t *dec,
                     nne_client_err_t *err) {
  rpc_t r;
  grpc_byte_buffer *bb = NULL, *reply = NULL;
  char why[128] = "";
  int rc;

  rc = encode_req(method, req_desc, req, &bb, err);
  if (rc < 0)
    return rc;
  if (rpc_start(&r, cli, method, bb, deadline_in(cli->timeout_ms)))
    rpc_recv(&r, &reply);
  grpc_byte_buffer_destroy(bb);
  rc = rpc_finish(&r, err);
  if (rc == 0) {
    if (reply == NULL)
      rc =
          err_set(err, NNE_CLIENT_INTERNAL, "%s: no reply message", method + 1);
    else if (!nne_pb_decode_bb(reply, resp_desc, resp, why, sizeof why))
      rc = dec && dec->code
               ? err_set(err, dec->code, "%s: %s", method + 1, dec->msg)
               : err_set(err, NNE_CLIENT_INTERNAL, "%s: undecodable reply: %s",
                         method + 1, why);
  }
  if (reply != NULL)
    grpc_byte_buffer_destroy(reply);
  return rc;
}

int nne_client_call_raw(nne_client_t *cli, const char *method, const void *req,
                        size_t req_len, void **resp, size_t *resp_len,
                        nne_client_err_t *err) {
  grpc_slice slice;
  grpc_byte_buffer *bb, *reply = NULL;
  rpc_t r;
  int rc;

  if (resp != NULL)
    *resp = NULL;
  if (resp_len != NULL)
    *resp_len = 0;
  if (cli == NULL || method == NULL || method[0] != '/' || resp == NULL ||
      resp_len == NULL || (req == NULL && req_len > 0))
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "call_raw: NULL argument or a method not of the form "
                   "/package.Service/Method");
  slice = req_len ? grpc_slice_from_copied_buffer(req, req_len)
                  : grpc_empty_slice();
  bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  if (rpc_start(&r, cli, method, bb, deadline_in(cli->timeout_ms)))
    rpc_recv(&r, &reply);
  grpc_byte_buffer_destroy(bb);
  rc = rpc_finish(&r, err);
  if (rc == 0 && reply == NULL)
    rc = err_set(err, NNE_CLIENT_INTERNAL, "%s: no reply message", method + 1);
  if (rc == 0) {
    grpc_byte_buffer_reader rd;
    size_t n;
    if (!grpc_byte_buffer_reader_init(&rd, reply)) {
      rc =
          err_set(err, NNE_CLIENT_INTERNAL, "%s: unreadable reply", method + 1);
    } else {
      grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
      n = GRPC_SLICE_LENGTH(all);
      if (n > 0 && (*resp = malloc(n)) == NULL)
        rc = err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                     "%s: cannot allocate %zu bytes", method + 1, n);
      else if (n > 0) {
        memcpy(*resp, GRPC_SLICE_START_PTR(all), n);
        *resp_len = n;
      }
      grpc_slice_unref(all);
      grpc_byte_buffer_reader_destroy(&rd);
    }
  }
  if (reply != NULL)
    grpc_byte_buffer_destroy(reply);
  return rc;
}

void nne_client_free(void *p) {
  free(p);
}

/* ---- health -------------------------------------------------------------- */

static int health_req(const char *service,
                      grpc_health_v1_HealthCheckRequest *req,
                      nne_client_err_t *err) {
  *req = (grpc_health_v1_HealthCheckRequest)
      grpc_health_v1_HealthCheckRequest_init_zero;
  if (!copy_str(req->service, sizeof req->service, service))
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "health: service name longer than %zu bytes",
                   sizeof req->service - 1);
  return 0;
}

int nne_client_health_check(nne_client_t *cli, const char *service,
                            nne_client_health_t *out, nne_client_err_t *err) {
  grpc_health_v1_HealthCheckRequest req;
  grpc_health_v1_HealthCheckResponse resp =
      grpc_health_v1_HealthCheckResponse_init_zero;
  int rc;

  if (cli == NULL || out == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "health_check: NULL argument");
  *out = NNE_CLIENT_HEALTH_UNKNOWN;
  if ((rc = health_req(service, &req, err)) < 0)
    return rc;
  rc = rpc_unary(cli, M_HEALTH_CHECK, grpc_health_v1_HealthCheckRequest_fields,
                 &req, grpc_health_v1_HealthCheckResponse_fields, &resp, NULL,
                 err);
  if (rc == 0)
    *out = (nne_client_health_t)resp.status;
  return rc;
}

int nne_client_health_watch(nne_client_t *cli, const char *service,
                            nne_client_health_t *out, size_t max, size_t *n_out,
                            int64_t timeout_ms, nne_client_err_t *err) {
  grpc_health_v1_HealthCheckRequest req;
  grpc_byte_buffer *bb = NULL, *msg;
  rpc_t r;
  size_t n = 0;
  int rc, local = 0;
  nne_client_err_t lerr;
  bool cancelled = false;

  if (n_out != NULL)
    *n_out = 0;
  if (cli == NULL || n_out == NULL || (out == NULL && max > 0) ||
      timeout_ms < 0)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "health_watch: NULL argument or negative timeout");
  if (max == 0)
    return 0;
  if ((rc = health_req(service, &req, err)) < 0)
    return rc;
  if ((rc = encode_req(M_HEALTH_WATCH, grpc_health_v1_HealthCheckRequest_fields,
                       &req, &bb, err)) < 0)
    return rc;

  if (rpc_start(&r, cli, M_HEALTH_WATCH, bb, deadline_in(timeout_ms))) {
    while (n < max && rpc_recv(&r, &msg) && msg != NULL) {
      grpc_health_v1_HealthCheckResponse resp =
          grpc_health_v1_HealthCheckResponse_init_zero;
      char why[128] = "";
      bool ok = nne_pb_decode_bb(msg, grpc_health_v1_HealthCheckResponse_fields,
                                 &resp, why, sizeof why);
      grpc_byte_buffer_destroy(msg);
      if (!ok) {
        local = err_set(&lerr, NNE_CLIENT_INTERNAL,
                        "Health/Watch: undecodable reply: %s", why);
        break;
      }
      out[n++] = (nne_client_health_t)resp.status;
    }
    if (n == max || local < 0) {
      rpc_cancel(&r);
      cancelled = true;
    }
  }
  grpc_byte_buffer_destroy(bb);
  rc = rpc_finish(&r, err);
  *n_out = n;
  if (local < 0) {
    if (err != NULL)
      *err = lerr;
    return local;
  }
  /* Our own cancel after `max` statuses, or the time limit: the bounded
   * watch ended as asked. */
  if ((cancelled && rc == -NNE_CLIENT_CANCELLED) ||
      (timeout_ms > 0 && rc == -NNE_CLIENT_DEADLINE_EXCEEDED))
    return 0;
  return rc;
}

/* ---- models -------------------------------------------------------------- */

/* Grows *arr (of elem-sized items, capacity *cap) to hold n + 1 items,
 * doubling up to `max`. False when n is already at max or memory runs out. */
static bool grow(void **arr, size_t *cap, size_t n, size_t max, size_t elem) {
  size_t ncap;
  void *p;
  if (n < *cap)
    return true;
  if (n >= max)
    return false;
  ncap = *cap ? *cap * 2 : 8;
  if (ncap > max)
    ncap = max;
  p = realloc(*arr, ncap * elem);
  if (p == NULL)
    return false;
  *arr = p;
  *cap = ncap;
  return true;
}

/* A block of NUL-terminated strings, appended back to back and addressed by
 * offset while it grows (it moves when it does); pointers are made once it
 * is complete. Bounded by the reply it comes from, itself bounded. */
typedef struct sblock {
  char *p;
  size_t len, cap;
} sblock_t;

/* Makes room for n more bytes. */
static bool sb_reserve(sblock_t *b, size_t n) {
  size_t ncap;
  char *p;
  if (b->len + n <= b->cap)
    return true;
  ncap = b->cap ? b->cap : 4096;
  while (ncap < b->len + n)
    ncap *= 2;
  p = realloc(b->p, ncap);
  if (p == NULL)
    return false;
  b->p = p;
  b->cap = ncap;
  return true;
}

static bool sb_add(sblock_t *b, const char *s, size_t *off) {
  size_t n = strlen(s) + 1;
  if (!sb_reserve(b, n))
    return false;
  memcpy(b->p + b->len, s, n);
  *off = b->len;
  b->len += n;
  return true;
}

/* Reads the string field being decoded (at most max_len bytes) into the
 * block. On failure, says why in e (naming `what`). */
static bool sb_read(sblock_t *b, pb_istream_t *s, size_t max_len, size_t *off,
                    dec_err_t *e, const char *what) {
  size_t n = s->bytes_left;
  if (n > max_len)
    return dec_fail(e, NNE_CLIENT_INTERNAL,
                    "%s: a string of %zu bytes, over the bound of %zu", what, n,
                    max_len);
  if (!sb_reserve(b, n + 1))
    return dec_fail(e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  if (!pb_read(s, (pb_byte_t *)b->p + b->len, n))
    return dec_fail(e, NNE_CLIENT_INTERNAL, "%s: %s", what, PB_GET_ERROR(s));
  b->p[b->len + n] = '\0';
  *off = b->len;
  b->len += n + 1;
  return true;
}

/* The warnings of one ModelInfo while it is decoded (ModelInfo.warnings is
 * a callback field), then packed into the info's one block. */
typedef struct warn_dec {
  sblock_t sb;
  size_t *offs;
  size_t n, cap;
  dec_err_t *e;
} warn_dec_t;

static bool warnings_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  warn_dec_t *w = *arg;
  (void)f;
  if (w->n >= NNE_CLIENT_MAX_WARNINGS)
    return dec_fail(w->e, NNE_CLIENT_RESOURCE_EXHAUSTED,
                    "model has more than %d warnings", NNE_CLIENT_MAX_WARNINGS);
  if (!grow((void **)&w->offs, &w->cap, w->n, NNE_CLIENT_MAX_WARNINGS,
            sizeof *w->offs))
    return dec_fail(w->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  if (!sb_read(&w->sb, s, NNE_CLIENT_WARNING_MAX - 1, &w->offs[w->n], w->e,
               "warnings"))
    return false;
  w->n++;
  return true;
}

/* Zeroes *w and hooks it to m's warnings; refusals are reported in *e. */
static void warn_arm(warn_dec_t *w, nnedit_v1_ModelInfo *m, dec_err_t *e) {
  memset(w, 0, sizeof *w);
  w->e = e;
  NNE_PB_DEC(m->warnings, warnings_dec, w);
}

static void warn_reset(warn_dec_t *w) {
  free(w->sb.p);
  free(w->offs);
  w->sb.p = NULL;
  w->offs = NULL;
  w->n = w->cap = w->sb.len = w->sb.cap = 0;
}

/* Moves the decoded warnings into o as one block: the pointer array, then
 * the strings it points to. */
static bool warn_take(warn_dec_t *w, nne_client_model_info_t *o) {
  const char **v;
  char *strs;
  size_t i;
  if (w->n == 0) {
    warn_reset(w);
    return true;
  }
  v = malloc(w->n * sizeof *v + w->sb.len);
  if (v == NULL) {
    warn_reset(w);
    return false;
  }
  strs = (char *)(v + w->n);
  memcpy(strs, w->sb.p, w->sb.len);
  for (i = 0; i < w->n; i++)
    v[i] = strs + w->offs[i];
  o->warnings = v;
  o->n_warnings = w->n;
  warn_reset(w);
  return true;
}

static void info_from_pb(nne_client_model_info_t *o,
                         const nnedit_v1_ModelInfo *m) {
  /* Same sizes (static asserts above) and nanopb NUL-terminates. */
  memset(o, 0, sizeof *o);
  memcpy(o->name, m->name, sizeof o->name);
  o->state = (nne_client_model_state_t)m->state;
  memcpy(o->device, m->device, sizeof o->device);
  o->dtype = (nne_client_dtype_t)m->dtype;
  memcpy(o->family, m->family, sizeof o->family);
  memcpy(o->error, m->error, sizeof o->error);
  o->param_count = m->param_count;
  o->param_bytes = m->param_bytes;
  o->vocab_size = m->vocab_size;
  o->module_count = m->module_count;
  o->max_batch = m->max_batch;
  o->max_seq_len = m->max_seq_len;
  o->load_ms = m->load_ms;
  o->in_flight = m->in_flight;
  memcpy(o->export_kind, m->export_kind, sizeof o->export_kind);
  memcpy(o->family_reason, m->family_reason, sizeof o->family_reason);
  o->layer_count = m->layer_count;
}

/* info_from_pb plus the decoded warnings (which w gives up either way).
 * False only when memory runs out. */
static bool info_take(nne_client_model_info_t *o, const nnedit_v1_ModelInfo *m,
                      warn_dec_t *w) {
  info_from_pb(o, m);
  return warn_take(w, o);
}

void nne_client_model_info_free(nne_client_model_info_t *info) {
  if (info == NULL)
    return;
  free((void *)info->warnings);
  memset(info, 0, sizeof *info);
}

typedef struct list_dec {
  nne_client_model_list_t *out;
  size_t cap;
  dec_err_t e;
} list_dec_t;

static bool models_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  list_dec_t *st = *arg;
  nnedit_v1_ModelInfo m = nnedit_v1_ModelInfo_init_zero;
  warn_dec_t w;
  (void)f;
  if (st->out->n_models >= NNE_CLIENT_MAX_MODELS)
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED,
                    "reply lists more than %d models", NNE_CLIENT_MAX_MODELS);
  if (!grow((void **)&st->out->models, &st->cap, st->out->n_models,
            NNE_CLIENT_MAX_MODELS, sizeof *st->out->models))
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  warn_arm(&w, &m, &st->e);
  if (!pb_decode(s, nnedit_v1_ModelInfo_fields, &m)) {
    warn_reset(&w);
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL, "models[%zu]: %s",
                    st->out->n_models, PB_GET_ERROR(s));
  }
  /* Counted even when the warnings cannot be kept, so that list_free sees
   * the (zeroed) entry. */
  if (!info_take(&st->out->models[st->out->n_models++], &m, &w))
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  return true;
}

int nne_client_models_list(nne_client_t *cli, nne_client_model_list_t *out,
                           nne_client_err_t *err) {
  nnedit_v1_ListModelsRequest req = nnedit_v1_ListModelsRequest_init_zero;
  nnedit_v1_ListModelsResponse resp = nnedit_v1_ListModelsResponse_init_zero;
  list_dec_t st;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || out == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "models_list: NULL argument");
  memset(&st, 0, sizeof st);
  st.out = out;
  NNE_PB_DEC(resp.models, models_dec, &st);
  rc = rpc_unary(cli, M_MODELS_LIST, nnedit_v1_ListModelsRequest_fields, &req,
                 nnedit_v1_ListModelsResponse_fields, &resp, &st.e, err);
  if (rc < 0) {
    nne_client_model_list_free(out);
    return rc;
  }
  memcpy(out->server_version, resp.server_version, sizeof out->server_version);
  return 0;
}

void nne_client_model_list_free(nne_client_model_list_t *list) {
  size_t i;
  if (list == NULL)
    return;
  for (i = 0; i < list->n_models; i++)
    nne_client_model_info_free(&list->models[i]);
  free(list->models);
  memset(list, 0, sizeof *list);
}

static int check_name(const char *what, const char *name, size_t cap,
                      nne_client_err_t *err) {
  if (name == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT, "%s: name is NULL", what);
  if (strlen(name) >= cap)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "%s: name '%.64s...' is longer than %zu bytes", what, name,
                   cap - 1);
  return 0;
}

/* The end of Load and Unload: the reply's model into *out (may be NULL). */
static int info_reply(const char *method, bool has_model,
                      const nnedit_v1_ModelInfo *m, warn_dec_t *w,
                      nne_client_model_info_t *out, nne_client_err_t *err) {
  if (out == NULL) {
    warn_reset(w);
    return 0;
  }
  if (!has_model) {
    warn_reset(w);
    return err_set(err, NNE_CLIENT_INTERNAL, "%s: reply has no model", method);
  }
  if (!info_take(out, m, w)) {
    nne_client_model_info_free(out);
    return err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED, "%s: out of memory",
                   method);
  }
  return 0;
}

int nne_client_models_load(nne_client_t *cli, const char *name,
                           const char *device, nne_client_dtype_t dtype,
                           nne_client_model_info_t *out,
                           nne_client_err_t *err) {
  nnedit_v1_LoadModelRequest req = nnedit_v1_LoadModelRequest_init_zero;
  nnedit_v1_LoadModelResponse resp = nnedit_v1_LoadModelResponse_init_zero;
  warn_dec_t w;
  dec_err_t e;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || out == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "models_load: NULL argument");
  if ((rc = check_name("models_load", name, sizeof req.name, err)) < 0)
    return rc;
  copy_str(req.name, sizeof req.name, name);
  if (!copy_str(req.device, sizeof req.device, device))
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "models_load: device '%.40s' is longer than %zu bytes",
                   device, sizeof req.device - 1);
  if ((int)dtype < 0 || (int)dtype >= N_DTYPES)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "models_load: unknown dtype %d", (int)dtype);
  req.dtype = (nnedit_v1_DType)dtype;
  memset(&e, 0, sizeof e);
  warn_arm(&w, &resp.model, &e);
  rc = rpc_unary(cli, M_MODELS_LOAD, nnedit_v1_LoadModelRequest_fields, &req,
                 nnedit_v1_LoadModelResponse_fields, &resp, &e, err);
  if (rc < 0) {
    warn_reset(&w);
    return rc;
  }
  return info_reply("Models/Load", resp.has_model, &resp.model, &w, out, err);
}

int nne_client_models_unload(nne_client_t *cli, const char *name,
                             nne_client_model_info_t *out,
                             nne_client_err_t *err) {
  nnedit_v1_UnloadModelRequest req = nnedit_v1_UnloadModelRequest_init_zero;
  nnedit_v1_UnloadModelResponse resp = nnedit_v1_UnloadModelResponse_init_zero;
  warn_dec_t w;
  dec_err_t e;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "models_unload: NULL client");
  if ((rc = check_name("models_unload", name, sizeof req.name, err)) < 0)
    return rc;
  copy_str(req.name, sizeof req.name, name);
  memset(&e, 0, sizeof e);
  warn_arm(&w, &resp.model, &e);
  rc = rpc_unary(cli, M_MODELS_UNLOAD, nnedit_v1_UnloadModelRequest_fields,
                 &req, nnedit_v1_UnloadModelResponse_fields, &resp, &e, err);
  if (rc < 0) {
    warn_reset(&w);
    return rc;
  }
  /* A reply without the model is tolerated here: *out stays zeroed. */
  if (!resp.has_model)
    out = NULL;
  return info_reply("Models/Unload", resp.has_model, &resp.model, &w, out,
                    err);
}

/* Where one module's strings and name lists sit while decoding: offsets
 * into the string block and runs of desc_dec.name_offs. */
typedef struct mod_offs {
  size_t path, class_name, type_name;
  size_t std_first, n_std, alias_first, n_alias;
} mod_offs_t;

typedef struct site_offs {
  size_t name, tl_name, reason, canonical, module;
} site_offs_t;

/* Module and site strings are appended to one growing block and addressed
 * by offset while decoding; pointers are set at the end. */
typedef struct desc_dec {
  nne_client_model_desc_t *out;
  bool subtree; /* a module was asked for: modules[0] may be deeper */
  size_t cap, sites_cap;
  sblock_t sb;
  mod_offs_t *offs;
  size_t offs_cap;
  site_offs_t *soffs;
  size_t soffs_cap;
  size_t *name_offs; /* every module's standard names and aliases */
  size_t n_names, names_cap;
  dec_err_t e;
} desc_dec_t;

/* One module's standard names or aliases while it is decoded: offsets into
 * the block, bounded per list. */
typedef struct mod_names_dec {
  desc_dec_t *st;
  size_t module;
  const char *what; /* "standard_names", "aliases" */
  size_t offs[NNE_CLIENT_MAX_MODULE_NAMES];
  size_t n;
} mod_names_dec_t;

static bool mod_names_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  mod_names_dec_t *d = *arg;
  char what[64];
  (void)f;
  snprintf(what, sizeof what, "modules[%zu].%s", d->module, d->what);
  if (d->n >= NNE_CLIENT_MAX_MODULE_NAMES)
    return dec_fail(&d->st->e, NNE_CLIENT_RESOURCE_EXHAUSTED,
                    "%s: more than %d names", what,
                    NNE_CLIENT_MAX_MODULE_NAMES);
  /* A name is a module spelling: bounded like a path. */
  if (!sb_read(&d->st->sb, s, FIELD_SIZE(nnedit_v1_Module, path) - 1,
               &d->offs[d->n], &d->st->e, what))
    return false;
  d->n++;
  return true;
}

/* Appends a module's decoded name list to name_offs; *first is where it
 * starts. */
static bool names_append(desc_dec_t *st, const mod_names_dec_t *d,
                         size_t *first) {
  size_t k;
  *first = st->n_names;
  for (k = 0; k < d->n; k++) {
    /* At most 2 * 64 names per module, 65536 modules. */
    if (!grow((void **)&st->name_offs, &st->names_cap, st->n_names,
              (size_t)2 * NNE_CLIENT_MAX_MODULE_NAMES * NNE_CLIENT_MAX_MODULES,
              sizeof *st->name_offs))
      return false;
    st->name_offs[st->n_names++] = d->offs[k];
  }
  return true;
}

static bool modules_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  desc_dec_t *st = *arg;
  nnedit_v1_Module m = nnedit_v1_Module_init_zero;
  size_t i = st->out->n_modules;
  nne_client_module_t *mod;
  mod_names_dec_t stdn, alias;
  mod_offs_t *o;
  bool root_ok;
  (void)f;

  if (i >= NNE_CLIENT_MAX_MODULES)
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED,
                    "reply has more than %d modules", NNE_CLIENT_MAX_MODULES);
  if (!grow((void **)&st->out->modules, &st->cap, i, NNE_CLIENT_MAX_MODULES,
            sizeof *st->out->modules))
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  if (!grow((void **)&st->offs, &st->offs_cap, i, NNE_CLIENT_MAX_MODULES,
            sizeof *st->offs))
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  memset(&stdn, 0, sizeof stdn);
  stdn.st = st;
  stdn.module = i;
  stdn.what = "standard_names";
  alias = stdn;
  alias.what = "aliases";
  NNE_PB_DEC(m.standard_names, mod_names_dec, &stdn);
  NNE_PB_DEC(m.aliases, mod_names_dec, &alias);
  if (!pb_decode(s, nnedit_v1_Module_fields, &m))
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL, "modules[%zu]: %s", i,
                    PB_GET_ERROR(s));
  /* The tree must be usable as given: parents precede their children
   * (pre-order) and depths follow from them. Only the first module is
   * parentless; for a subtree its depth is the daemon's to say. */
  if (m.parent < -1 || (m.parent >= 0 && (size_t)m.parent >= i) ||
      (m.parent == -1) != (i == 0))
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "modules[%zu] ('%s'): parent %d is not an earlier module",
                    i, m.path, (int)m.parent);
  root_ok = m.parent < 0 && (st->subtree || m.depth == 0) &&
            m.depth < NNE_CLIENT_MAX_MODULES;
  if (m.parent < 0 ? !root_ok
                   : m.depth != st->out->modules[m.parent].depth + 1)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "modules[%zu] ('%s'): depth %u does not follow its parent",
                    i, m.path, (unsigned)m.depth);
  o = &st->offs[i];
  if (!sb_add(&st->sb, m.path, &o->path) ||
      !sb_add(&st->sb, m.class_name, &o->class_name) ||
      !sb_add(&st->sb, m.type_name, &o->type_name) ||
      !names_append(st, &stdn, &o->std_first) ||
      !names_append(st, &alias, &o->alias_first))
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  o->n_std = stdn.n;
  o->n_alias = alias.n;
  mod = &st->out->modules[i];
  memset(mod, 0, sizeof *mod);
  mod->parent = m.parent;
  mod->depth = m.depth;
  mod->call_index = m.call_index;
  mod->param_count = m.param_count;
  st->out->n_modules = i + 1;
  return true;
}

static bool sites_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  desc_dec_t *st = *arg;
  nnedit_v1_Site m = nnedit_v1_Site_init_zero;
  size_t i = st->out->n_sites;
  nne_client_site_t *site;
  site_offs_t *o;
  (void)f;

  if (i >= NNE_CLIENT_MAX_SITES)
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED,
                    "reply has more than %d sites", NNE_CLIENT_MAX_SITES);
  if (!grow((void **)&st->out->sites, &st->sites_cap, i, NNE_CLIENT_MAX_SITES,
            sizeof *st->out->sites) ||
      !grow((void **)&st->soffs, &st->soffs_cap, i, NNE_CLIENT_MAX_SITES,
            sizeof *st->soffs))
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  if (!pb_decode(s, nnedit_v1_Site_fields, &m))
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL, "sites[%zu]: %s", i,
                    PB_GET_ERROR(s));
  /* A view must be one that can be taken: callers may index with it. */
  if (m.view_parts < 0 ||
      (m.view_parts > 0 && (m.view_part < 0 || m.view_part >= m.view_parts)))
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "sites[%zu] ('%s'): view part %d of %d", i, m.name,
                    (int)m.view_part, (int)m.view_parts);
  o = &st->soffs[i];
  if (!sb_add(&st->sb, m.name, &o->name) ||
      !sb_add(&st->sb, m.tl_name, &o->tl_name) ||
      !sb_add(&st->sb, m.reason, &o->reason) ||
      !sb_add(&st->sb, m.canonical, &o->canonical) ||
      !sb_add(&st->sb, m.module, &o->module))
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  site = &st->out->sites[i];
  memset(site, 0, sizeof *site);
  site->available = m.available;
  site->kind = (nne_client_site_kind_t)m.kind;
  site->index = m.index;
  site->view_parts = m.view_parts;
  site->view_part = m.view_part;
  site->view_heads = m.view_heads;
  st->out->n_sites = i + 1;
  return true;
}

/* Turns the offsets into pointers once the block stops moving. */
static bool desc_finish(desc_dec_t *st) {
  nne_client_model_desc_t *d = st->out;
  const char *b = d->strings;
  size_t i;

  if (st->n_names > 0) {
    d->names = malloc(st->n_names * sizeof *d->names);
    if (d->names == NULL)
      return false;
    for (i = 0; i < st->n_names; i++)
      d->names[i] = b + st->name_offs[i];
  }
  for (i = 0; i < d->n_modules; i++) {
    nne_client_module_t *m = &d->modules[i];
    const mod_offs_t *o = &st->offs[i];
    m->path = b + o->path;
    m->class_name = b + o->class_name;
    m->type_name = b + o->type_name;
    m->standard_names = o->n_std ? d->names + o->std_first : NULL;
    m->n_standard_names = o->n_std;
    m->aliases = o->n_alias ? d->names + o->alias_first : NULL;
    m->n_aliases = o->n_alias;
  }
  for (i = 0; i < d->n_sites; i++) {
    nne_client_site_t *s = &d->sites[i];
    const site_offs_t *o = &st->soffs[i];
    s->name = b + o->name;
    s->tl_name = b + o->tl_name;
    s->reason = b + o->reason;
    s->canonical = b + o->canonical;
    s->module = b + o->module;
  }
  return true;
}

int nne_client_models_describe_module(nne_client_t *cli, const char *name,
                                      const char *module,
                                      nne_client_model_desc_t *out,
                                      nne_client_err_t *err) {
  nnedit_v1_DescribeModelRequest req = nnedit_v1_DescribeModelRequest_init_zero;
  nnedit_v1_DescribeModelResponse resp =
      nnedit_v1_DescribeModelResponse_init_zero;
  desc_dec_t st;
  warn_dec_t w;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || out == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "models_describe: NULL argument");
  if ((rc = check_name("models_describe", name, sizeof req.name, err)) < 0)
    return rc;
  copy_str(req.name, sizeof req.name, name);
  if (!copy_str(req.module, sizeof req.module, module))
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "models_describe: module '%.64s...' is longer than %zu "
                   "bytes",
                   module, sizeof req.module - 1);
  memset(&st, 0, sizeof st);
  st.out = out;
  st.subtree = req.module[0] != '\0';
  /* A hostile reply cannot fill the block without limit: every string in
   * it came from a message of at most opts.max_recv_bytes. */
  NNE_PB_DEC(resp.modules, modules_dec, &st);
  NNE_PB_DEC(resp.sites, sites_dec, &st);
  warn_arm(&w, &resp.model, &st.e);
  rc = rpc_unary(cli, M_MODELS_DESCRIBE, nnedit_v1_DescribeModelRequest_fields,
                 &req, nnedit_v1_DescribeModelResponse_fields, &resp, &st.e,
                 err);
  if (rc == 0 && !resp.has_model)
    rc = err_set(err, NNE_CLIENT_INTERNAL,
                 "Models/Describe: reply has no model");
  if (rc == 0) {
    /* The block stops moving here: it becomes the desc's. */
    out->strings = st.sb.p;
    st.sb.p = NULL;
    if (!info_take(&out->model, &resp.model, &w) || !desc_finish(&st))
      rc = err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                   "Models/Describe: out of memory");
  }
  warn_reset(&w);
  free(st.sb.p);
  free(st.offs);
  free(st.soffs);
  free(st.name_offs);
  if (rc < 0)
    nne_client_model_desc_free(out);
  return rc;
}

int nne_client_models_describe(nne_client_t *cli, const char *name,
                               nne_client_model_desc_t *out,
                               nne_client_err_t *err) {
  return nne_client_models_describe_module(cli, name, NULL, out, err);
}

void nne_client_model_desc_free(nne_client_model_desc_t *desc) {
  if (desc == NULL)
    return;
  nne_client_model_info_free(&desc->model);
  free(desc->modules);
  free(desc->sites);
  free(desc->names);
  free(desc->strings);
  memset(desc, 0, sizeof *desc);
}

/* ---- reassembler --------------------------------------------------------- */

static int asm_fail(nne_client_err_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int asm_fail(nne_client_err_t *err, int code, const char *fmt, ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = err_setv(err, code, fmt, ap);
  va_end(ap);
  return rc;
}

void nne_client__asm_init(nne_client__asm_t *a, uint64_t max_bytes) {
  memset(a, 0, sizeof *a);
  a->max_bytes = max_bytes;
}

bool nne_client__asm_active(const nne_client__asm_t *a) {
  return a->active;
}

uint64_t nne_client__asm_got(const nne_client__asm_t *a) {
  return a->got;
}

void nne_client__asm_reset(nne_client__asm_t *a) {
  uint64_t max = a->max_bytes;
  free(a->t.data);
  free(a->stash);
  nne_client__asm_init(a, max);
}

int nne_client__asm_error(const nne_client__asm_t *a, nne_client_err_t *err) {
  if (a->err.code == 0)
    return 0;
  if (err != NULL)
    *err = a->err;
  return -a->err.code;
}

/* Places the bytes of a chunk's `data` field. A continuation goes straight
 * into the buffer at the bytes received so far (the offset field is checked
 * against that after the decode, so that its position on the wire does not
 * matter; a wrong offset fails the call having only written where the rest
 * of the tensor had yet to go). A first chunk goes straight in once its
 * total_bytes has been seen, else aside into the stash. */
static bool asm_data_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  nne_client__asm_t *a = *arg;
  nnedit_v1_TensorChunk *c = a->msg;
  size_t n = s->bytes_left;
  nne_pb_bytes_dec_t d;

  void *darg = &d;
  bool to_stash = false;

  memset(&d, 0, sizeof d);
  if (a->active) {
    if (n > a->t.nbytes - a->got) {
      asm_fail(&a->err, NNE_CLIENT_INTERNAL,
               "tensor '%s': chunk of %zu bytes at %" PRIu64
               " overruns its %zu bytes",
               a->t.name, n, a->got, a->t.nbytes);
      return false;
    }
    d.dst = a->t.data;
    d.cap = a->t.nbytes;
    d.off = a->got;
  } else if (c->total_bytes > 0) {
    if (c->total_bytes > a->max_bytes) {
      asm_fail(&a->err, NNE_CLIENT_RESOURCE_EXHAUSTED,
               "tensor '%s' has %" PRIu64 " bytes, over this client's limit "
               "of %" PRIu64 " (opts.max_tensor_bytes)",
               c->name, c->total_bytes, a->max_bytes);
      return false;
    }
    if (n > c->total_bytes) {
      asm_fail(&a->err, NNE_CLIENT_INTERNAL,
               "tensor '%s': first chunk has %zu bytes of %" PRIu64, c->name, n,
               c->total_bytes);
      return false;
    }
    if (!a->allocated) {
      free(a->t.data);
      a->t.data = malloc((size_t)c->total_bytes);
      if (a->t.data == NULL) {
        asm_fail(&a->err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                 "tensor '%s': cannot allocate %" PRIu64 " bytes", c->name,
                 c->total_bytes);
        return false;
      }
      a->t.nbytes = (size_t)c->total_bytes;
      a->allocated = true;
    } else if (a->t.nbytes != c->total_bytes) {
      asm_fail(&a->err, NNE_CLIENT_INTERNAL,
               "tensor '%s': total_bytes changed within a chunk", c->name);
      return false;
    }
    d.dst = a->t.data;
    d.cap = a->t.nbytes;
    d.off = 0;
  } else {
    /* Header not seen yet (or an empty tensor, where n must be 0). Bounded
     * by the message, itself bounded by the receive limit. */
    to_stash = true;
    free(a->stash);
    a->stash = NULL;
    a->stash_len = 0;
    if (n > a->max_bytes) {
      asm_fail(&a->err, NNE_CLIENT_RESOURCE_EXHAUSTED,
               "tensor chunk of %zu bytes is over this client's limit", n);
      return false;
    }
    if (n > 0 && (a->stash = malloc(n)) == NULL) {
      asm_fail(&a->err, NNE_CLIENT_RESOURCE_EXHAUSTED,
               "cannot allocate %zu bytes", n);
      return false;
    }
    d.dst = a->stash;
    d.cap = n;
    d.off = 0;
  }
  if (!nne_pb_bytes_dec(s, f, &darg))
    return false;
  /* The field may repeat (protobuf keeps the last occurrence), so these
   * record the last one rather than add up. */
  if (to_stash)
    a->stash_len = d.len;
  else
    a->placed = d.len;
  return true;
}

void nne_client__asm_arm(nne_client__asm_t *a, nnedit_v1_TensorChunk *msg) {
  *msg = (nnedit_v1_TensorChunk)nnedit_v1_TensorChunk_init_zero;
  NNE_PB_DEC(msg->data, asm_data_dec, a);
  a->msg = msg;
  a->placed = 0;
  a->allocated = false;
  free(a->stash);
  a->stash = NULL;
  a->stash_len = 0;
  memset(&a->err, 0, sizeof a->err);
}

/* numel * itemsize without overflow; false on a negative dim or overflow. */
static bool tensor_size(int dtype, const int64_t *shape, size_t ndim,
                        uint64_t *out) {
  uint64_t n = nne_client_dtype_size(dtype);
  size_t i;
  for (i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return false;
    if (shape[i] != 0 && n > UINT64_MAX / (uint64_t)shape[i])
      return false;
    n *= (uint64_t)shape[i];
  }
  *out = n;
  return true;
}

int nne_client__asm_feed(nne_client__asm_t *a, bool *done,
                         nne_client_err_t *err) {
  const nnedit_v1_TensorChunk *c = a->msg;
  uint64_t chunk_len;

  *done = false;
  if (c == NULL)
    return asm_fail(err, NNE_CLIENT_INTERNAL, "reassembler: chunk not armed");
  a->msg = NULL;
  if (a->complete)
    return asm_fail(err, NNE_CLIENT_INTERNAL,
                    "reassembler: completed tensor not taken");

  if (!a->active) {
    /* The first chunk: carries the header. */
    uint64_t size;
    if (c->name[0] == '\0')
      return asm_fail(err, NNE_CLIENT_INTERNAL, "tensor chunk without a name");
    if (c->offset != 0)
      return asm_fail(err, NNE_CLIENT_INTERNAL,
                      "tensor '%s': first chunk seen at offset %" PRIu64
                      " (its start is missing)",
                      c->name, c->offset);
    if (nne_client_dtype_size(c->dtype) == 0)
      return asm_fail(err, NNE_CLIENT_INTERNAL, "tensor '%s': unknown dtype %d",
                      c->name, (int)c->dtype);
    if (!tensor_size(c->dtype, c->shape, c->shape_count, &size))
      return asm_fail(err, NNE_CLIENT_INTERNAL,
                      "tensor '%s': invalid shape (negative or overflowing)",
                      c->name);
    if (size != c->total_bytes || (a->allocated && a->t.nbytes != size))
      return asm_fail(err, NNE_CLIENT_INTERNAL,
                      "tensor '%s': total_bytes %" PRIu64
                      " is not numel * itemsize = %" PRIu64,
                      c->name, c->total_bytes, size);
    if (size > a->max_bytes)
      return asm_fail(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                      "tensor '%s' has %" PRIu64 " bytes, over this client's "
                      "limit of %" PRIu64 " (opts.max_tensor_bytes)",
                      c->name, size, a->max_bytes);
    if (!a->allocated) {
      /* No data placed directly: an empty first chunk, or a stashed one. */
      free(a->t.data);
      a->t.data = NULL;
      a->t.nbytes = (size_t)size;
      if (size > 0 && (a->t.data = malloc((size_t)size)) == NULL)
        return asm_fail(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                        "tensor '%s': cannot allocate %" PRIu64 " bytes",
                        c->name, size);
      if (a->stash_len > size)
        return asm_fail(err, NNE_CLIENT_INTERNAL,
                        "tensor '%s': first chunk has %zu bytes of %" PRIu64,
                        c->name, a->stash_len, size);
      if (a->stash_len > 0)
        memcpy(a->t.data, a->stash, a->stash_len);
      a->placed = a->stash_len;
    }
    free(a->stash);
    a->stash = NULL;
    a->stash_len = 0;
    memcpy(a->t.name, c->name, sizeof a->t.name);
    a->t.dtype = (nne_client_dtype_t)c->dtype;
    a->t.ndim = c->shape_count;
    memset(a->t.shape, 0, sizeof a->t.shape);
    memcpy(a->t.shape, c->shape, c->shape_count * sizeof c->shape[0]);
    a->got = 0;
    a->active = true;
  } else {
    /* A continuation: same tensor, next offset. Header fields, when a
     * server repeats them, must agree. */
    if (strcmp(c->name, a->t.name) != 0)
      return asm_fail(err, NNE_CLIENT_INTERNAL,
                      "chunk of tensor '%s' while tensor '%s' is incomplete "
                      "(%" PRIu64 " of %zu bytes)",
                      c->name, a->t.name, a->got, a->t.nbytes);
    if (c->offset != a->got)
      return asm_fail(err, NNE_CLIENT_INTERNAL,
                      "tensor '%s': chunk at offset %" PRIu64
                      ", expected %" PRIu64,
                      a->t.name, c->offset, a->got);
    if ((c->total_bytes != 0 && c->total_bytes != a->t.nbytes) ||
        (c->dtype != 0 && (int)c->dtype != (int)a->t.dtype))
      return asm_fail(err, NNE_CLIENT_INTERNAL,
                      "tensor '%s': chunk at %" PRIu64
                      " changes dtype or total_bytes",
                      a->t.name, c->offset);
  }
  chunk_len = a->placed;
  a->placed = 0;
  a->allocated = false;
  a->got += chunk_len;
  if (a->got > a->t.nbytes) /* the data callback prevents this */
    return asm_fail(err, NNE_CLIENT_INTERNAL, "tensor '%s': overrun",
                    a->t.name);
  if (c->last != (a->got == a->t.nbytes))
    return asm_fail(err, NNE_CLIENT_INTERNAL,
                    c->last ? "tensor '%s': chunk marked last at %" PRIu64
                              " of %zu bytes"
                            : "tensor '%s': complete at %" PRIu64
                              " of %zu bytes but the chunk is not marked last",
                    a->t.name, a->got, a->t.nbytes);
  if (c->last) {
    a->active = false;
    a->complete = true;
    *done = true;
  }
  return 0;
}

void nne_client__asm_take(nne_client__asm_t *a, nne_client_tensor_t *out) {
  *out = a->t;
  memset(&a->t, 0, sizeof a->t);
  a->complete = false;
  a->active = false;
  a->got = 0;
}

/* ---- forward ------------------------------------------------------------- */

/* ForwardResponse is a oneof of two messages that both hold callback fields.
 * nanopb zeroes a oneof member (callbacks included) when its tag arrives, so
 * the generated descriptor cannot route `rows` or `data` to us. This view of
 * the same wire message makes each member a callback of its own, which then
 * decodes the member with its callbacks set. */
typedef struct nne_client__fwd_frame {
  pb_callback_t result;
  pb_callback_t chunk;
} nne_client__fwd_frame;
#define nne_client__fwd_frame_FIELDLIST(X, a)                                  \
  X(a, CALLBACK, OPTIONAL, MESSAGE, result, 1)                                 \
  X(a, CALLBACK, OPTIONAL, MESSAGE, chunk, 2)
#define nne_client__fwd_frame_CALLBACK pb_default_field_callback
#define nne_client__fwd_frame_DEFAULT NULL
#define nne_client__fwd_frame_result_MSGTYPE nnedit_v1_ForwardResult
#define nne_client__fwd_frame_chunk_MSGTYPE nnedit_v1_TensorChunk
PB_BIND(nne_client__fwd_frame, nne_client__fwd_frame, AUTO)
_Static_assert(nnedit_v1_ForwardResponse_result_tag == 1 &&
                   nnedit_v1_ForwardResponse_chunk_tag == 2,
               "ForwardResponse tags");

/* RowTopK lists of a result (ForwardResult.rows, TraceResult.rows) into
 * *rows / *n_rows: at most max_rows rows (the request's) of at most max_top
 * scores (its top_k). Refusals go to *e. */
typedef struct rows_dec {
  nne_client_row_topk_t **rows;
  size_t *n_rows;
  size_t cap;
  size_t max_rows;
  size_t max_top;
  dec_err_t *e;
} rows_dec_t;

typedef struct top_dec {
  rows_dec_t *st;
  nne_client_row_topk_t *row;
  size_t cap;
  size_t index;
} top_dec_t;

static bool top_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  top_dec_t *t = *arg;
  nnedit_v1_TokenScore m = nnedit_v1_TokenScore_init_zero;
  nne_client_token_score_t *sc;
  size_t max = t->st->max_top;
  (void)f;
  if (t->row->n_top >= max)
    return dec_fail(t->st->e, NNE_CLIENT_INTERNAL,
                    "rows[%zu] has more than top_k = %zu scores", t->index,
                    max);
  if (!grow((void **)&t->row->top, &t->cap, t->row->n_top, max,
            sizeof *t->row->top))
    return dec_fail(t->st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  if (!pb_decode(s, nnedit_v1_TokenScore_fields, &m))
    return dec_fail(t->st->e, NNE_CLIENT_INTERNAL, "rows[%zu].top[%zu]: %s",
                    t->index, t->row->n_top, PB_GET_ERROR(s));
  sc = &t->row->top[t->row->n_top++];
  sc->token_id = m.token_id;
  sc->logit = m.logit;
  sc->prob = m.prob;
  return true;
}

static bool rows_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  rows_dec_t *st = *arg;
  nnedit_v1_RowTopK m = nnedit_v1_RowTopK_init_zero;
  top_dec_t t;
  (void)f;
  if (*st->n_rows >= st->max_rows)
    return dec_fail(st->e, NNE_CLIENT_INTERNAL,
                    "reply has more rows than the request's %zu", st->max_rows);
  if (!grow((void **)st->rows, &st->cap, *st->n_rows, st->max_rows,
            sizeof **st->rows))
    return dec_fail(st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  /* Count the row before decoding into it, so that its scores are freed
   * with the result even if the decode fails halfway. */
  t.st = st;
  t.row = &(*st->rows)[*st->n_rows];
  t.cap = 0;
  t.index = (*st->n_rows)++;
  memset(t.row, 0, sizeof *t.row);
  NNE_PB_DEC(m.top, top_dec, &t);
  if (!pb_decode(s, nnedit_v1_RowTopK_fields, &m))
    return dec_fail(st->e, NNE_CLIENT_INTERNAL, "rows[%zu]: %s", t.index,
                    PB_GET_ERROR(s));
  t.row->position = m.position;
  return true;
}

typedef struct fwd_dec {
  const nne_client_forward_req_t *req;
  nne_client_forward_result_t *out;
  rows_dec_t rows;
  bool have_result;
  char tensor_name[NNE_CLIENT_NAME_MAX]; /* what result.logits_tensor said */
  unsigned frame_fields;                 /* members seen in this frame */
  size_t n_saved_names; /* result.saved entries seen (each checked) */
  /* With an edit set: the names result.saved lists after the request's
   * saves (the set's SAVE edits), at most NNE_CLIENT_MAX_EDITS. */
  char **extra;
  size_t n_extra, extra_cap;
  /* With an edit set whose saves the result does not list: every tensor
   * after the listed ones is one of them, named by its chunks (at most
   * NNE_CLIENT_MAX_EDITS). saved_cap is the room in out->saved. */
  bool open_ended;
  size_t saved_cap;
  /* The tensors that follow the result, in order: the logits (when asked
   * for), then one per save entry. `next` is the one being received. */
  size_t n_tensors, next;
  nne_client__asm_t asm_;
  nne_client_err_t aerr; /* a refusal by the reassembler */
  dec_err_t e;
} fwd_dec_t;

static bool fwd_has_edit_set(const nne_client_forward_req_t *req) {
  return req->edit_set != NULL && req->edit_set[0] != '\0';
}

/* A name result.saved lists after the request's saves: one of the edit
 * set's SAVE edits, whose names the client cannot know in advance. */
static bool saved_extra_dec(fwd_dec_t *st, pb_istream_t *s, size_t i) {
  size_t n = s->bytes_left;
  char *name;
  if (!fwd_has_edit_set(st->req))
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "result lists more saved tensors than the request's %zu "
                    "save entries",
                    st->req->n_save);
  if (st->n_extra >= NNE_CLIENT_MAX_EDITS)
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED,
                    "result lists more than %d saved tensors of the edit set",
                    NNE_CLIENT_MAX_EDITS);
  if (n >= NNE_CLIENT_NAME_MAX)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "result.saved[%zu]: a name of %zu bytes, over a tensor "
                    "name's bound of %d",
                    i, n, NNE_CLIENT_NAME_MAX - 1);
  if (!grow((void **)&st->extra, &st->extra_cap, st->n_extra,
            NNE_CLIENT_MAX_EDITS, sizeof *st->extra) ||
      (name = malloc(n + 1)) == NULL)
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  if (!pb_read(s, (pb_byte_t *)name, n)) {
    free(name);
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL, "result.saved[%zu]: %s", i,
                    PB_GET_ERROR(s));
  }
  name[n] = '\0';
  if (strlen(name) != n || n == 0) {
    free(name);
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "result.saved[%zu]: an empty name or one with a NUL", i);
  }
  st->extra[st->n_extra++] = name;
  st->n_saved_names++;
  return true;
}

/* ForwardResult.saved: must be the request's save list, as spelled (then,
 * with an edit set, the set's SAVE names). */
static bool saved_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  fwd_dec_t *st = *arg;
  char name[NNE_CLIENT_NAME_MAX];
  size_t n = s->bytes_left, i = st->n_saved_names;
  (void)f;
  if (i >= st->req->n_save)
    return saved_extra_dec(st, s, i);
  /* Request names were checked to be shorter than a tensor name: a longer
   * one cannot match. */
  if (n >= sizeof name)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "result.saved[%zu]: a name of %zu bytes, not the "
                    "request's save[%zu] '%s'",
                    i, n, i, st->req->save[i]);
  if (!pb_read(s, (pb_byte_t *)name, n))
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL, "result.saved[%zu]: %s", i,
                    PB_GET_ERROR(s));
  name[n] = '\0';
  if (strlen(name) != n || strcmp(name, st->req->save[i]) != 0)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "result.saved[%zu] is '%s', the request's save[%zu] is "
                    "'%s'",
                    i, name, i, st->req->save[i]);
  st->n_saved_names++;
  return true;
}

static bool fwd_result_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  fwd_dec_t *st = *arg;
  nnedit_v1_ForwardResult m = nnedit_v1_ForwardResult_init_zero;
  (void)f;
  st->frame_fields++;
  if (st->have_result)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "a second ForwardResult in the stream");
  NNE_PB_DEC(m.rows, rows_dec, &st->rows);
  NNE_PB_DEC(m.saved, saved_dec, st);
  if (!pb_decode(s, nnedit_v1_ForwardResult_fields, &m))
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL, "result: %s", PB_GET_ERROR(s));
  if (st->n_saved_names < st->req->n_save)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "result lists %zu saved tensors for %zu save entries%s",
                    st->n_saved_names, st->req->n_save,
                    st->n_saved_names == 0 ? " (a daemon without save support?)"
                                           : "");
  if (st->n_extra > 0) {
    /* Room for the edit set's saves too (the request's were allocated up
     * front); the new entries are zeroed so that free finds nothing in
     * them until they are filled. */
    size_t total = st->req->n_save + st->n_extra;
    nne_client_tensor_t *p = realloc(st->out->saved, total * sizeof *p);
    if (p == NULL)
      return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
    memset(p + st->req->n_save, 0, st->n_extra * sizeof *p);
    st->out->saved = p;
    st->saved_cap = total;
    st->n_tensors += st->n_extra;
  } else if (fwd_has_edit_set(st->req)) {
    /* A daemon may stream the set's saves without listing them (the proto
     * only promises that they follow the request's): take them as they
     * come, named by their chunks. */
    st->open_ended = true;
  }
  st->out->batch = m.batch;
  st->out->seq_len = m.seq_len;
  if (m.has_timing) {
    st->out->timing.queue_ms = m.timing.queue_ms;
    st->out->timing.compute_ms = m.timing.compute_ms;
    st->out->timing.total_ms = m.timing.total_ms;
  }
  memcpy(st->tensor_name, m.logits_tensor, sizeof st->tensor_name);
  st->have_result = true;
  return true;
}

/* The k-th tensor of the stream: the logits when asked for, then the
 * saves. */
static bool fwd_is_logits(const fwd_dec_t *st, size_t k) {
  return st->req->logits != NNE_CLIENT_LOGITS_NONE && k == 0;
}

static const char *fwd_tensor_name(const fwd_dec_t *st, size_t k) {
  size_t j;
  if (fwd_is_logits(st, k))
    return st->tensor_name[0] ? st->tensor_name : "logits";
  j = k - (st->req->logits != NNE_CLIENT_LOGITS_NONE);
  if (j < st->req->n_save)
    return st->req->save[j];
  /* NULL: an unlisted save of the edit set, named by its chunks. */
  return j - st->req->n_save < st->n_extra ? st->extra[j - st->req->n_save]
                                           : NULL;
}

static bool fwd_chunk_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  fwd_dec_t *st = *arg;
  nnedit_v1_TensorChunk c;
  const char *want;
  bool done;
  (void)f;
  st->frame_fields++;
  if (!st->have_result)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "a tensor chunk before the ForwardResult");
  if (st->next >= st->n_tensors && st->open_ended) {
    /* One more of the edit set's unlisted saves: room for it in saved[]
     * (counted by n_saved only once complete, so free never sees a
     * half-made entry). */
    size_t have = st->out->n_saved;
    if (have - st->req->n_save >= NNE_CLIENT_MAX_EDITS)
      return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED,
                      "more than %d saved tensors of the edit set",
                      NNE_CLIENT_MAX_EDITS);
    if (st->saved_cap < st->req->n_save)
      st->saved_cap = st->req->n_save;
    if (!grow((void **)&st->out->saved, &st->saved_cap, have,
              st->req->n_save + NNE_CLIENT_MAX_EDITS, sizeof *st->out->saved))
      return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
    st->n_tensors++;
  }
  if (st->n_tensors == 0)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "a tensor chunk, but no logits were asked for (nor any "
                    "save)");
  if (st->next >= st->n_tensors)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "a tensor chunk after the %zu tensors asked for were "
                    "complete",
                    st->n_tensors);
  nne_client__asm_arm(&st->asm_, &c);
  if (!pb_decode(s, nnedit_v1_TensorChunk_fields, &c)) {
    if (nne_client__asm_error(&st->asm_, &st->aerr) < 0)
      return dec_fail(&st->e, st->aerr.code, "%s", st->aerr.message);
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL, "chunk: %s", PB_GET_ERROR(s));
  }
  /* Tensors come in the order of the result, never interleaved: a chunk
   * names the tensor in progress (an unlisted save of the edit set is
   * named by its first chunk; the reassembler holds the rest to it). */
  want = fwd_tensor_name(st, st->next);
  if (want != NULL && strcmp(c.name, want) != 0)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "a chunk of tensor '%.200s', expected '%.200s'", c.name,
                    want);
  if (nne_client__asm_feed(&st->asm_, &done, &st->aerr) < 0)
    return dec_fail(&st->e, st->aerr.code, "%s", st->aerr.message);
  if (done) {
    if (fwd_is_logits(st, st->next)) {
      nne_client__asm_take(&st->asm_, &st->out->logits);
      st->out->has_logits = true;
    } else {
      /* saved[] has room for every save entry (allocated up front, and
       * grown for the edit set's when the result listed them, or as each
       * unlisted one began). */
      nne_client__asm_take(&st->asm_, &st->out->saved[st->out->n_saved++]);
    }
    st->next++;
  }
  return true;
}

/* Token rows and mask rows as TokenRow / MaskRow lists, built one row at a
 * time (nne_pb_list_enc). */
typedef struct rows_enc {
  const nne_client_token_row_t *rows;
  const nne_client_mask_row_t *mask;
  nne_pb_i64_enc_t cur; /* the row being encoded (one at a time) */
  int64_t *tmp;         /* a mask row widened to int64 */
} rows_enc_t;

static bool fill_ids(void *ctx, size_t i, void *msg) {
  rows_enc_t *e = ctx;
  nnedit_v1_TokenRow *row = msg;
  *row = (nnedit_v1_TokenRow)nnedit_v1_TokenRow_init_zero;
  e->cur.v = e->rows[i].ids;
  e->cur.n = e->rows[i].n_ids;
  NNE_PB_ENC(row->ids, nne_pb_i64_enc, &e->cur);
  return true;
}

static bool fill_mask(void *ctx, size_t i, void *msg) {
  rows_enc_t *e = ctx;
  nnedit_v1_MaskRow *row = msg;
  const nne_client_mask_row_t *src = &e->mask[i];
  size_t k;
  *row = (nnedit_v1_MaskRow)nnedit_v1_MaskRow_init_zero;
  for (k = 0; k < src->n_values; k++)
    e->tmp[k] = src->values[k];
  e->cur.v = e->tmp;
  e->cur.n = src->n_values;
  NNE_PB_ENC(row->values, nne_pb_i64_enc, &e->cur);
  return true;
}

static int forward_check(const nne_client_forward_req_t *req, size_t *max_mask,
                         nne_client_err_t *err) {
  size_t i;
  *max_mask = 0;
  if (req->model == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT, "forward: model is NULL");
  if (strlen(req->model) >= FIELD_SIZE(nnedit_v1_ForwardRequest, model))
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "forward: model name longer than %zu bytes",
                   FIELD_SIZE(nnedit_v1_ForwardRequest, model) - 1);
  if (req->n_rows > 0 && req->rows == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "forward: rows is NULL with n_rows %zu", req->n_rows);
  for (i = 0; i < req->n_rows; i++)
    if (req->rows[i].n_ids > 0 && req->rows[i].ids == NULL)
      return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                     "forward: rows[%zu].ids is NULL", i);
  if (req->n_mask > 0 && req->mask == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "forward: mask is NULL with n_mask %zu", req->n_mask);
  for (i = 0; i < req->n_mask; i++) {
    if (req->mask[i].n_values > 0 && req->mask[i].values == NULL)
      return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                     "forward: mask[%zu].values is NULL", i);
    if (req->mask[i].n_values > *max_mask)
      *max_mask = req->mask[i].n_values;
  }
  if ((int)req->padding < 0 || (int)req->padding > NNE_CLIENT_PAD_RIGHT)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "forward: unknown padding %d", (int)req->padding);
  if ((int)req->logits < 0 || (int)req->logits > NNE_CLIENT_LOGITS_ALL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "forward: unknown logits mode %d", (int)req->logits);
  if (req->n_save > 0 && req->save == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "forward: save is NULL with n_save %zu", req->n_save);
  if (req->edit_set != NULL &&
      strlen(req->edit_set) >= FIELD_SIZE(nnedit_v1_ForwardRequest, edit_set))
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "forward: edit_set '%.64s...' is longer than %zu bytes",
                   req->edit_set,
                   FIELD_SIZE(nnedit_v1_ForwardRequest, edit_set) - 1);
  /* A saved tensor comes back named as spelled: the name must fit a
   * TensorChunk's name, whatever the request field would take. */
  for (i = 0; i < req->n_save; i++) {
    if (req->save[i] == NULL)
      return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                     "forward: save[%zu] is NULL", i);
    if (strlen(req->save[i]) >= NNE_CLIENT_NAME_MAX)
      return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                     "forward: save[%zu] '%.64s...' is longer than %d bytes, "
                     "the longest tensor name",
                     i, req->save[i], NNE_CLIENT_NAME_MAX - 1);
  }
  return 0;
}

int nne_client_forward(nne_client_t *cli, const nne_client_forward_req_t *req,
                       nne_client_forward_result_t *out,
                       nne_client_err_t *err) {
  nnedit_v1_ForwardRequest preq = nnedit_v1_ForwardRequest_init_zero;
  nne_pb_list_enc_t ids_list, mask_list;
  nne_pb_str_list_enc_t save_list;
  rows_enc_t enc;
  fwd_dec_t st;
  grpc_byte_buffer *bb = NULL, *msg;
  rpc_t r;
  size_t max_mask, k;
  nne_client_err_t lerr;
  int rc, local = 0;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || req == NULL || out == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT, "forward: NULL argument");
  if ((rc = forward_check(req, &max_mask, err)) < 0)
    return rc;

  memset(&enc, 0, sizeof enc);
  enc.rows = req->rows;
  enc.mask = req->mask;
  if (max_mask > 0 && (enc.tmp = malloc(max_mask * sizeof *enc.tmp)) == NULL)
    return err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                   "forward: out of memory");
  copy_str(preq.model, sizeof preq.model, req->model);
  ids_list = (nne_pb_list_enc_t){req->n_rows, fill_ids, &enc,
                                 sizeof(nnedit_v1_TokenRow)};
  mask_list = (nne_pb_list_enc_t){req->n_mask, fill_mask, &enc,
                                  sizeof(nnedit_v1_MaskRow)};
  NNE_PB_ENC(preq.input_ids, nne_pb_list_enc, &ids_list);
  NNE_PB_ENC(preq.attention_mask, nne_pb_list_enc, &mask_list);
  save_list.v = req->save;
  save_list.n = req->n_save;
  NNE_PB_ENC(preq.save, nne_pb_str_list_enc, &save_list);
  copy_str(preq.edit_set, sizeof preq.edit_set, req->edit_set);
  preq.padding = (nnedit_v1_Padding)req->padding;
  preq.top_k = req->top_k;
  preq.logits = (nnedit_v1_LogitsMode)req->logits;
  rc = encode_req(M_FORWARD, nnedit_v1_ForwardRequest_fields, &preq, &bb, err);
  free(enc.tmp);
  if (rc < 0)
    return rc;

  /* Room for every saved tensor now, so that a failure halfway leaves
   * nothing that forward_result_free would not find. */
  if (req->n_save > 0 &&
      (out->saved = calloc(req->n_save, sizeof *out->saved)) == NULL) {
    grpc_byte_buffer_destroy(bb);
    return err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                   "forward: out of memory");
  }
  memset(&st, 0, sizeof st);
  st.req = req;
  st.out = out;
  st.rows.rows = &out->rows;
  st.rows.n_rows = &out->n_rows;
  st.rows.max_rows = req->n_rows;
  st.rows.max_top = req->top_k;
  st.rows.e = &st.e;
  st.n_tensors = (req->logits != NNE_CLIENT_LOGITS_NONE) + req->n_save;
  nne_client__asm_init(&st.asm_, cli->max_tensor_bytes);

  if (rpc_start(&r, cli, M_FORWARD, bb, deadline_in(cli->timeout_ms))) {
    while (rpc_recv(&r, &msg) && msg != NULL) {
      nne_client__fwd_frame frame;
      char why[128] = "";
      bool ok;
      memset(&frame, 0, sizeof frame);
      NNE_PB_DEC(frame.result, fwd_result_dec, &st);
      NNE_PB_DEC(frame.chunk, fwd_chunk_dec, &st);
      st.frame_fields = 0;
      ok = nne_pb_decode_bb(msg, &nne_client__fwd_frame_msg, &frame, why,
                            sizeof why);
      grpc_byte_buffer_destroy(msg);
      if (ok && st.frame_fields != 1)
        ok = dec_fail(&st.e, NNE_CLIENT_INTERNAL,
                      "a ForwardResponse with %u members (one expected)",
                      st.frame_fields);
      if (!ok) {
        local =
            st.e.code
                ? err_set(&lerr, st.e.code, "Inference/Forward: %s", st.e.msg)
                : err_set(&lerr, NNE_CLIENT_INTERNAL,
                          "Inference/Forward: undecodable reply: %s", why);
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
    rc = local;
  } else if (rc == 0) {
    /* The server said OK: the stream must have been whole. */
    if (!st.have_result)
      rc = err_set(err, NNE_CLIENT_INTERNAL,
                   "Inference/Forward: the stream ended without a result");
    else if (nne_client__asm_active(&st.asm_))
      rc = err_set(err, NNE_CLIENT_INTERNAL,
                   "Inference/Forward: tensor '%s' cut short at %" PRIu64
                   " of %zu bytes",
                   st.asm_.t.name, nne_client__asm_got(&st.asm_),
                   st.asm_.t.nbytes);
    else if (req->logits != NNE_CLIENT_LOGITS_NONE && !out->has_logits)
      rc = err_set(err, NNE_CLIENT_INTERNAL,
                   "Inference/Forward: logits were asked for and not sent");
    else if (out->n_saved < req->n_save)
      rc = err_set(err, NNE_CLIENT_INTERNAL,
                   "Inference/Forward: save[%zu] '%s' was asked for and not "
                   "sent",
                   out->n_saved, req->save[out->n_saved]);
    else if (out->n_saved < req->n_save + st.n_extra)
      rc = err_set(err, NNE_CLIENT_INTERNAL,
                   "Inference/Forward: the edit set's save '%s' was listed "
                   "and not sent",
                   st.extra[out->n_saved - req->n_save]);
  }
  nne_client__asm_reset(&st.asm_);
  for (k = 0; k < st.n_extra; k++)
    free(st.extra[k]);
  free(st.extra);
  if (rc < 0)
    nne_client_forward_result_free(out);
  return rc;
}

void nne_client_forward_result_free(nne_client_forward_result_t *res) {
  size_t i;
  if (res == NULL)
    return;
  for (i = 0; i < res->n_rows; i++)
    free(res->rows[i].top);
  free(res->rows);
  nne_client_tensor_free(&res->logits);
  for (i = 0; i < res->n_saved; i++)
    nne_client_tensor_free(&res->saved[i]);
  free(res->saved);
  memset(res, 0, sizeof *res);
}

const nne_client_tensor_t *
nne_client_forward_result_saved(const nne_client_forward_result_t *res,
                                const char *name) {
  size_t i;
  if (res == NULL || name == NULL)
    return NULL;
  for (i = 0; i < res->n_saved; i++)
    if (strcmp(res->saved[i].name, name) == 0)
      return &res->saved[i];
  return NULL;
}

/* ---- edits --------------------------------------------------------------- */

const char *nne_client_edit_op_name(int op) {
  switch (op) {
  case NNE_CLIENT_EDIT_SAVE: return "save";
  case NNE_CLIENT_EDIT_REPLACE: return "replace";
  case NNE_CLIENT_EDIT_ADD: return "add";
  case NNE_CLIENT_EDIT_SCALE: return "scale";
  case NNE_CLIENT_EDIT_ZERO: return "zero";
  default: return "unspecified";
  }
}

int nne_client_edit_op_parse(const char *name, nne_client_edit_op_t *out,
                             nne_client_err_t *err) {
  int op;
  if (name == NULL || out == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT, "edit op: NULL argument");
  for (op = NNE_CLIENT_EDIT_SAVE; op <= NNE_CLIENT_EDIT_ZERO; op++)
    if (strcasecmp(name, nne_client_edit_op_name(op)) == 0) {
      *out = (nne_client_edit_op_t)op;
      return 0;
    }
  return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                 "unknown edit op '%.64s' (save, replace, add, scale, zero)",
                 name);
}

static void set_info_from_pb(nne_client_edit_set_info_t *o,
                             const nnedit_v1_EditSetInfo *m) {
  /* Same sizes (static asserts above) and nanopb NUL-terminates. */
  memset(o, 0, sizeof *o);
  memcpy(o->id, m->id, sizeof o->id);
  memcpy(o->model, m->model, sizeof o->model);
  memcpy(o->label, m->label, sizeof o->label);
  o->edit_count = m->edit_count;
  memcpy(o->backend_key, m->backend_key, sizeof o->backend_key);
  o->backend_bytes = m->backend_bytes;
  o->compile_ms = m->compile_ms;
  o->cache_hit = m->cache_hit;
  o->created_unix_ms = m->created_unix_ms;
  o->in_flight = m->in_flight;
  o->tensor_bytes = m->tensor_bytes;
}

/* An optional string argument of at most cap - 1 bytes. */
static int check_opt_str(const char *what, const char *s, size_t cap,
                         nne_client_err_t *err) {
  if (s != NULL && strlen(s) >= cap)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "%s '%.64s...' is longer than %zu bytes", what, s, cap - 1);
  return 0;
}

/* What cannot go on the wire, or is a caller's slip no daemon could mean
 * to accept (a tensor whose bytes disagree with its shape). */
static int apply_check_edit(const nne_client_edit_t *e, size_t i,
                            nne_client_err_t *err) {
  const nne_client_tensor_t *t = e->tensor;
  uint64_t size;
  size_t k;
  char what[64];

  if (e->site == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "edits_apply: edits[%zu].site is NULL", i);
  snprintf(what, sizeof what, "edits_apply: edits[%zu].site", i);
  if (check_opt_str(what, e->site, FIELD_SIZE(nnedit_v1_Edit, site), err) < 0)
    return -NNE_CLIENT_INVALID_ARGUMENT;
  snprintf(what, sizeof what, "edits_apply: edits[%zu].name", i);
  if (check_opt_str(what, e->name, FIELD_SIZE(nnedit_v1_Edit, name), err) < 0)
    return -NNE_CLIENT_INVALID_ARGUMENT;
  if (e->n_ranges > NNE_CLIENT_MAX_RANGES)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "edits_apply: edits[%zu].ranges: %zu ranges, more than %d",
                   i, e->n_ranges, NNE_CLIENT_MAX_RANGES);
  if (e->n_ranges > 0 && e->ranges == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "edits_apply: edits[%zu].ranges is NULL with n_ranges %zu",
                   i, e->n_ranges);
  if (t == NULL)
    return 0;
  if (e->use_scalar)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "edits_apply: edits[%zu]: both a tensor and use_scalar "
                   "(one operand)",
                   i);
  if (nne_client_dtype_size(t->dtype) == 0)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "edits_apply: edits[%zu].tensor: unknown dtype %d", i,
                   (int)t->dtype);
  if (t->ndim > NNE_CLIENT_MAX_DIMS)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "edits_apply: edits[%zu].tensor: %zu dims, more than %d", i,
                   t->ndim, NNE_CLIENT_MAX_DIMS);
  for (k = 0; k < t->ndim; k++)
    if (t->shape[k] < 0)
      return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                     "edits_apply: edits[%zu].tensor.shape[%zu] is %" PRId64, i,
                     k, t->shape[k]);
  if (!tensor_size(t->dtype, t->shape, t->ndim, &size) || size != t->nbytes)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "edits_apply: edits[%zu].tensor: nbytes %zu is not "
                   "numel(shape) * %zu",
                   i, t->nbytes, nne_client_dtype_size(t->dtype));
  if (t->nbytes > 0 && t->data == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "edits_apply: edits[%zu].tensor.data is NULL", i);
  return 0;
}

typedef struct apply_enc {
  const nne_client_edit_t *edits;
  /* The tensor bytes of the edit being encoded: nanopb copies them from the
   * caller's buffer straight into the outgoing message, once per pass. */
  nne_pb_bytes_enc_t data;
} apply_enc_t;

static bool fill_edit(void *ctx, size_t i, void *msg) {
  apply_enc_t *a = ctx;
  const nne_client_edit_t *e = &a->edits[i];
  nnedit_v1_Edit *m = msg; /* zeroed by nne_pb_list_enc */
  size_t k;

  copy_str(m->site, sizeof m->site, e->site);
  m->op = (nnedit_v1_EditOp)e->op;
  if (e->use_scalar) {
    m->use_scalar = true;
    m->scalar = e->scalar;
  } else if (e->tensor != NULL) {
    const nne_client_tensor_t *t = e->tensor;
    m->has_tensor = true;
    m->tensor.dtype = (nnedit_v1_DType)t->dtype;
    m->tensor.shape_count = (pb_size_t)t->ndim;
    memcpy(m->tensor.shape, t->shape, t->ndim * sizeof t->shape[0]);
    a->data.p = t->data;
    a->data.n = t->nbytes;
    if (t->nbytes > 0)
      NNE_PB_ENC(m->tensor.data, nne_pb_bytes_enc, &a->data);
  }
  m->ranges_count = (pb_size_t)e->n_ranges;
  for (k = 0; k < e->n_ranges; k++) {
    m->ranges[k].dim = e->ranges[k].dim;
    m->ranges[k].start = e->ranges[k].start;
    m->ranges[k].stop = e->ranges[k].stop;
  }
  copy_str(m->name, sizeof m->name, e->name);
  return true;
}

int nne_client_edits_apply(nne_client_t *cli, const char *model,
                           const nne_client_edit_t *edits, size_t n,
                           const char *label, nne_client_edit_set_info_t *out,
                           nne_client_err_t *err) {
  nnedit_v1_ApplyEditsRequest req = nnedit_v1_ApplyEditsRequest_init_zero;
  nnedit_v1_ApplyEditsResponse resp = nnedit_v1_ApplyEditsResponse_init_zero;
  nne_pb_list_enc_t list;
  apply_enc_t enc;
  size_t i;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || out == NULL || (edits == NULL && n > 0))
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "edits_apply: NULL argument");
  if ((rc = check_name("edits_apply", model, sizeof req.model, err)) < 0)
    return rc;
  if ((rc = check_opt_str("edits_apply: label", label, sizeof req.label, err)) <
      0)
    return rc;
  if (n > NNE_CLIENT_MAX_EDITS)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "edits_apply: %zu edits, more than %d (a set this client "
                   "could not read back)",
                   n, NNE_CLIENT_MAX_EDITS);
  for (i = 0; i < n; i++)
    if ((rc = apply_check_edit(&edits[i], i, err)) < 0)
      return rc;

  copy_str(req.model, sizeof req.model, model);
  copy_str(req.label, sizeof req.label, label);
  memset(&enc, 0, sizeof enc);
  enc.edits = edits;
  list = (nne_pb_list_enc_t){n, fill_edit, &enc, sizeof(nnedit_v1_Edit)};
  NNE_PB_ENC(req.edits, nne_pb_list_enc, &list);
  rc = rpc_unary(cli, M_EDITS_APPLY, nnedit_v1_ApplyEditsRequest_fields, &req,
                 nnedit_v1_ApplyEditsResponse_fields, &resp, NULL, err);
  if (rc < 0)
    return rc;
  if (!resp.has_edit_set || resp.edit_set.id[0] == '\0')
    return err_set(err, NNE_CLIENT_INTERNAL,
                   "Edits/Apply: reply has no edit set id");
  set_info_from_pb(out, &resp.edit_set);
  return 0;
}

typedef struct sets_dec {
  nne_client_edit_set_list_t *out;
  size_t cap;
  dec_err_t e;
} sets_dec_t;

static bool edit_sets_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  sets_dec_t *st = *arg;
  nnedit_v1_EditSetInfo m = nnedit_v1_EditSetInfo_init_zero;
  (void)f;
  if (st->out->n_sets >= NNE_CLIENT_MAX_EDIT_SETS)
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED,
                    "reply lists more than %d edit sets",
                    NNE_CLIENT_MAX_EDIT_SETS);
  if (!grow((void **)&st->out->sets, &st->cap, st->out->n_sets,
            NNE_CLIENT_MAX_EDIT_SETS, sizeof *st->out->sets))
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  if (!pb_decode(s, nnedit_v1_EditSetInfo_fields, &m))
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL, "edit_sets[%zu]: %s",
                    st->out->n_sets, PB_GET_ERROR(s));
  set_info_from_pb(&st->out->sets[st->out->n_sets++], &m);
  return true;
}

int nne_client_edits_list(nne_client_t *cli, const char *model,
                          nne_client_edit_set_list_t *out,
                          nne_client_err_t *err) {
  nnedit_v1_ListEditSetsRequest req = nnedit_v1_ListEditSetsRequest_init_zero;
  nnedit_v1_ListEditSetsResponse resp =
      nnedit_v1_ListEditSetsResponse_init_zero;
  sets_dec_t st;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || out == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "edits_list: NULL argument");
  if ((rc = check_opt_str("edits_list: model", model, sizeof req.model, err)) <
      0)
    return rc;
  copy_str(req.model, sizeof req.model, model);
  memset(&st, 0, sizeof st);
  st.out = out;
  NNE_PB_DEC(resp.edit_sets, edit_sets_dec, &st);
  rc = rpc_unary(cli, M_EDITS_LIST, nnedit_v1_ListEditSetsRequest_fields, &req,
                 nnedit_v1_ListEditSetsResponse_fields, &resp, &st.e, err);
  if (rc < 0)
    nne_client_edit_set_list_free(out);
  return rc;
}

void nne_client_edit_set_list_free(nne_client_edit_set_list_t *list) {
  if (list == NULL)
    return;
  free(list->sets);
  memset(list, 0, sizeof *list);
}

/* Where one resolved edit's strings sit in the block while decoding. */
typedef struct redit_offs {
  size_t site, canonical, instance, node, standard, name;
} redit_offs_t;

typedef struct get_dec {
  nne_client_edit_set_t *out;
  size_t cap, offs_cap;
  sblock_t sb;
  redit_offs_t *offs;
  dec_err_t e;
} get_dec_t;

static bool resolved_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  get_dec_t *st = *arg;
  nnedit_v1_ResolvedEdit m = nnedit_v1_ResolvedEdit_init_zero;
  size_t i = st->out->n_edits, k;
  nne_client_resolved_edit_t *r;
  redit_offs_t *o;
  (void)f;

  if (i >= NNE_CLIENT_MAX_EDITS)
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED,
                    "reply has more than %d edits", NNE_CLIENT_MAX_EDITS);
  if (!grow((void **)&st->out->edits, &st->cap, i, NNE_CLIENT_MAX_EDITS,
            sizeof *st->out->edits) ||
      !grow((void **)&st->offs, &st->offs_cap, i, NNE_CLIENT_MAX_EDITS,
            sizeof *st->offs))
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  if (!pb_decode(s, nnedit_v1_ResolvedEdit_fields, &m))
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL, "edits[%zu]: %s", i,
                    PB_GET_ERROR(s));
  if (m.tensor_dtype != 0 && nne_client_dtype_size(m.tensor_dtype) == 0)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "edits[%zu] ('%s'): unknown tensor dtype %d", i, m.site,
                    (int)m.tensor_dtype);
  o = &st->offs[i];
  if (!sb_add(&st->sb, m.site, &o->site) ||
      !sb_add(&st->sb, m.canonical, &o->canonical) ||
      !sb_add(&st->sb, m.instance, &o->instance) ||
      !sb_add(&st->sb, m.node, &o->node) ||
      !sb_add(&st->sb, m.standard, &o->standard) ||
      !sb_add(&st->sb, m.name, &o->name))
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  r = &st->out->edits[i];
  memset(r, 0, sizeof *r);
  r->index = m.index;
  r->op = (nne_client_edit_op_t)m.op;
  r->tensor_dtype = (nne_client_dtype_t)m.tensor_dtype;
  /* Both arrays have the proto's bound (static asserts above). */
  r->tensor_ndim = m.tensor_shape_count;
  memcpy(r->tensor_shape, m.tensor_shape,
         m.tensor_shape_count * sizeof m.tensor_shape[0]);
  r->use_scalar = m.use_scalar;
  r->scalar = m.scalar;
  r->n_ranges = m.ranges_count;
  for (k = 0; k < m.ranges_count; k++) {
    r->ranges[k].dim = m.ranges[k].dim;
    r->ranges[k].start = m.ranges[k].start;
    r->ranges[k].stop = m.ranges[k].stop;
  }
  r->hook_id = m.hook_id;
  st->out->n_edits = i + 1;
  return true;
}

int nne_client_edits_get(nne_client_t *cli, const char *id,
                         nne_client_edit_set_t *out, nne_client_err_t *err) {
  nnedit_v1_GetEditSetRequest req = nnedit_v1_GetEditSetRequest_init_zero;
  nnedit_v1_GetEditSetResponse resp = nnedit_v1_GetEditSetResponse_init_zero;
  get_dec_t st;
  size_t i;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || out == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "edits_get: NULL argument");
  if ((rc = check_name("edits_get", id, sizeof req.id, err)) < 0)
    return rc;
  copy_str(req.id, sizeof req.id, id);
  memset(&st, 0, sizeof st);
  st.out = out;
  NNE_PB_DEC(resp.edits, resolved_dec, &st);
  rc = rpc_unary(cli, M_EDITS_GET, nnedit_v1_GetEditSetRequest_fields, &req,
                 nnedit_v1_GetEditSetResponse_fields, &resp, &st.e, err);
  if (rc == 0 && !resp.has_edit_set)
    rc = err_set(err, NNE_CLIENT_INTERNAL, "Edits/Get: reply has no edit set");
  if (rc == 0) {
    set_info_from_pb(&out->info, &resp.edit_set);
    /* Callers may index their own request by it. */
    for (i = 0; i < out->n_edits && rc == 0; i++)
      if (out->edits[i].index >= out->info.edit_count)
        rc = err_set(err, NNE_CLIENT_INTERNAL,
                     "Edits/Get: edits[%zu] has index %" PRIu32
                     " in a set of %" PRIu32 " edits",
                     i, out->edits[i].index, out->info.edit_count);
  }
  if (rc == 0) {
    /* The block stops moving here: it becomes the set's. */
    const char *b;
    out->strings = st.sb.p;
    st.sb.p = NULL;
    b = out->strings;
    for (i = 0; i < out->n_edits; i++) {
      nne_client_resolved_edit_t *r = &out->edits[i];
      const redit_offs_t *o = &st.offs[i];
      r->site = b + o->site;
      r->canonical = b + o->canonical;
      r->instance = b + o->instance;
      r->node = b + o->node;
      r->standard = b + o->standard;
      r->name = b + o->name;
    }
  }
  free(st.sb.p);
  free(st.offs);
  if (rc < 0)
    nne_client_edit_set_free(out);
  return rc;
}

void nne_client_edit_set_free(nne_client_edit_set_t *set) {
  if (set == NULL)
    return;
  free(set->edits);
  free(set->strings);
  memset(set, 0, sizeof *set);
}

int nne_client_edits_drop(nne_client_t *cli, const char *id,
                          nne_client_edit_set_info_t *info,
                          uint64_t *freed_bytes, nne_client_err_t *err) {
  nnedit_v1_DropEditSetRequest req = nnedit_v1_DropEditSetRequest_init_zero;
  nnedit_v1_DropEditSetResponse resp = nnedit_v1_DropEditSetResponse_init_zero;
  int rc;

  if (info != NULL)
    memset(info, 0, sizeof *info);
  if (freed_bytes != NULL)
    *freed_bytes = 0;
  if (cli == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT, "edits_drop: NULL client");
  if ((rc = check_name("edits_drop", id, sizeof req.id, err)) < 0)
    return rc;
  copy_str(req.id, sizeof req.id, id);
  rc = rpc_unary(cli, M_EDITS_DROP, nnedit_v1_DropEditSetRequest_fields, &req,
                 nnedit_v1_DropEditSetResponse_fields, &resp, NULL, err);
  if (rc < 0)
    return rc;
  if (info != NULL && resp.has_edit_set)
    set_info_from_pb(info, &resp.edit_set);
  if (freed_bytes != NULL)
    *freed_bytes = resp.freed_bytes;
  return 0;
}

/* ---- graph --------------------------------------------------------------- */

const char *nne_client_node_kind_name(int kind) {
  switch (kind) {
  case NNE_CLIENT_NODE_HOOK: return "hook";
  case NNE_CLIENT_NODE_CALL: return "call";
  case NNE_CLIENT_NODE_OP: return "op";
  case NNE_CLIENT_NODE_CONSTANT: return "constant";
  case NNE_CLIENT_NODE_ATTRIBUTE: return "attribute";
  case NNE_CLIENT_NODE_OTHER: return "other";
  default: return "unspecified";
  }
}

/* Where one node's strings and value names sit while decoding: offsets
 * into the string block and runs of graph_dec.value_offs. */
typedef struct node_offs {
  size_t op, instance, selector, source, shape, callee;
  size_t in_first, n_in, out_first, n_out;
} node_offs_t;

/* The inputs or the outputs of the node being decoded (the two repeated
 * fields may interleave on the wire, so each is gathered apart and
 * appended to value_offs once the node is whole). */
typedef struct vals_dec {
  struct graph_dec *st;
  const char *what; /* "inputs", "outputs" */
  size_t *offs;
  size_t n, cap;
} vals_dec_t;

typedef struct graph_dec {
  nne_client_graph_t *out;
  size_t cap;
  sblock_t sb;
  node_offs_t *offs;
  size_t offs_cap;
  size_t *value_offs; /* every node's inputs then outputs */
  size_t n_values, values_cap;
  vals_dec_t in, out_vals; /* reused from node to node */
  nne_pb_str_dec_t text;
  dec_err_t e;
} graph_dec_t;

static bool node_vals_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  vals_dec_t *v = *arg;
  graph_dec_t *st = v->st;
  char what[64];
  (void)f;
  snprintf(what, sizeof what, "nodes[%zu].%s", st->out->n_nodes, v->what);
  if (v->n >= NNE_CLIENT_MAX_NODE_VALUES)
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED,
                    "%s: more than %d values", what,
                    NNE_CLIENT_MAX_NODE_VALUES);
  if (!grow((void **)&v->offs, &v->cap, v->n, NNE_CLIENT_MAX_NODE_VALUES,
            sizeof *v->offs))
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  if (!sb_read(&st->sb, s, NNE_CLIENT_VALUE_NAME_MAX - 1, &v->offs[v->n],
               &st->e, what))
    return false;
  v->n++;
  return true;
}

/* Appends a node's gathered values to value_offs; *first is where they
 * start. */
static bool vals_append(graph_dec_t *st, const vals_dec_t *v, size_t *first) {
  size_t k;
  *first = st->n_values;
  if (v->n > NNE_CLIENT_MAX_GRAPH_VALUES - st->n_values)
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED,
                    "reply has more than %d value names in all",
                    NNE_CLIENT_MAX_GRAPH_VALUES);
  for (k = 0; k < v->n; k++) {
    if (!grow((void **)&st->value_offs, &st->values_cap, st->n_values,
              NNE_CLIENT_MAX_GRAPH_VALUES, sizeof *st->value_offs))
      return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
    st->value_offs[st->n_values++] = v->offs[k];
  }
  return true;
}

static bool nodes_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  graph_dec_t *st = *arg;
  nnedit_v1_GraphNode m = nnedit_v1_GraphNode_init_zero;
  size_t i = st->out->n_nodes;
  nne_client_graph_node_t *node;
  node_offs_t *o;
  (void)f;

  if (i >= NNE_CLIENT_MAX_GRAPH_NODES)
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED,
                    "reply has more than %d nodes", NNE_CLIENT_MAX_GRAPH_NODES);
  if (!grow((void **)&st->out->nodes, &st->cap, i, NNE_CLIENT_MAX_GRAPH_NODES,
            sizeof *st->out->nodes) ||
      !grow((void **)&st->offs, &st->offs_cap, i, NNE_CLIENT_MAX_GRAPH_NODES,
            sizeof *st->offs))
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  st->in.n = 0;
  st->out_vals.n = 0;
  NNE_PB_DEC(m.inputs, node_vals_dec, &st->in);
  NNE_PB_DEC(m.outputs, node_vals_dec, &st->out_vals);
  if (!pb_decode(s, nnedit_v1_GraphNode_fields, &m))
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL, "nodes[%zu]: %s", i,
                    PB_GET_ERROR(s));
  o = &st->offs[i];
  if (!vals_append(st, &st->in, &o->in_first) ||
      !vals_append(st, &st->out_vals, &o->out_first))
    return false;
  o->n_in = st->in.n;
  o->n_out = st->out_vals.n;
  if (!sb_add(&st->sb, m.op, &o->op) ||
      !sb_add(&st->sb, m.instance, &o->instance) ||
      !sb_add(&st->sb, m.selector, &o->selector) ||
      !sb_add(&st->sb, m.source, &o->source) ||
      !sb_add(&st->sb, m.shape, &o->shape) ||
      !sb_add(&st->sb, m.callee, &o->callee))
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  node = &st->out->nodes[i];
  memset(node, 0, sizeof *node);
  node->index = m.index;
  node->kind = (nne_client_node_kind_t)m.kind;
  node->inserted = m.inserted;
  node->depth = m.depth;
  st->out->n_nodes = i + 1;
  return true;
}

/* GraphResponse.text through the shared string decoder, with the client's
 * own bound and a RESOURCE_EXHAUSTED that says which. */
static bool graph_text_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  graph_dec_t *st = *arg;
  void *targ = &st->text;
  size_t n = s->bytes_left;
  if (!nne_pb_str_dec(s, f, &targ)) {
    if (st->text.overflow)
      return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED,
                      "text: %zu bytes, over this client's bound of %zu", n,
                      NNE_CLIENT_MAX_GRAPH_TEXT);
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL, "text: %s", PB_GET_ERROR(s));
  }
  return true;
}

/* Turns the offsets into pointers once the block stops moving. */
static bool graph_finish(graph_dec_t *st) {
  nne_client_graph_t *g = st->out;
  const char *b = g->strings;
  size_t i;
  if (st->n_values > 0) {
    g->values = malloc(st->n_values * sizeof *g->values);
    if (g->values == NULL)
      return false;
    for (i = 0; i < st->n_values; i++)
      g->values[i] = b + st->value_offs[i];
  }
  for (i = 0; i < g->n_nodes; i++) {
    nne_client_graph_node_t *n = &g->nodes[i];
    const node_offs_t *o = &st->offs[i];
    n->op = b + o->op;
    n->instance = b + o->instance;
    n->selector = b + o->selector;
    n->source = b + o->source;
    n->shape = b + o->shape;
    n->callee = b + o->callee;
    n->inputs = o->n_in ? g->values + o->in_first : NULL;
    n->n_inputs = o->n_in;
    n->outputs = o->n_out ? g->values + o->out_first : NULL;
    n->n_outputs = o->n_out;
  }
  return true;
}

int nne_client_models_graph(nne_client_t *cli, const char *model,
                            const char *module, const char *edit_set,
                            nne_client_graph_t *out, nne_client_err_t *err) {
  nnedit_v1_GraphRequest req = nnedit_v1_GraphRequest_init_zero;
  nnedit_v1_GraphResponse resp = nnedit_v1_GraphResponse_init_zero;
  graph_dec_t st;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || out == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "models_graph: NULL argument");
  if ((rc = check_name("models_graph", model, sizeof req.model, err)) < 0 ||
      (rc = check_opt_str("models_graph: module", module, sizeof req.module,
                          err)) < 0 ||
      (rc = check_opt_str("models_graph: edit_set", edit_set,
                          sizeof req.edit_set, err)) < 0)
    return rc;
  copy_str(req.model, sizeof req.model, model);
  copy_str(req.module, sizeof req.module, module);
  copy_str(req.edit_set, sizeof req.edit_set, edit_set);
  memset(&st, 0, sizeof st);
  st.out = out;
  st.in.st = st.out_vals.st = &st;
  st.in.what = "inputs";
  st.out_vals.what = "outputs";
  st.text.max = NNE_CLIENT_MAX_GRAPH_TEXT;
  NNE_PB_DEC(resp.nodes, nodes_dec, &st);
  NNE_PB_DEC(resp.text, graph_text_dec, &st);
  rc = rpc_unary(cli, M_MODELS_GRAPH, nnedit_v1_GraphRequest_fields, &req,
                 nnedit_v1_GraphResponse_fields, &resp, &st.e, err);
  if (rc == 0) {
    memcpy(out->module, resp.module, sizeof out->module);
    out->edited = resp.edited;
    /* The text is the decoder's allocation, NUL-terminated; "" when the
     * daemon sent none, so that callers never see NULL. */
    if (st.text.s == NULL && (st.text.s = calloc(1, 1)) == NULL)
      rc = err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                   "Models/Graph: out of memory");
  }
  if (rc == 0) {
    out->text = st.text.s;
    out->text_len = st.text.len;
    st.text.s = NULL;
    out->strings = st.sb.p;
    st.sb.p = NULL;
    if (out->strings == NULL && out->n_nodes > 0)
      rc = err_set(err, NNE_CLIENT_INTERNAL, "Models/Graph: no node strings");
    else if (!graph_finish(&st))
      rc = err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                   "Models/Graph: out of memory");
  }
  free(st.text.s);
  free(st.sb.p);
  free(st.offs);
  free(st.value_offs);
  free(st.in.offs);
  free(st.out_vals.offs);
  if (rc < 0)
    nne_client_graph_free(out);
  return rc;
}

void nne_client_graph_free(nne_client_graph_t *graph) {
  if (graph == NULL)
    return;
  free(graph->nodes);
  free(graph->text);
  free(graph->strings);
  free((void *)graph->values);
  memset(graph, 0, sizeof *graph);
}

/* ---- admin --------------------------------------------------------------- */

typedef struct stats_dec {
  nne_client_stats_t *out;
  size_t cap;
  dec_err_t e;
} stats_dec_t;

static bool caches_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  stats_dec_t *st = *arg;
  nnedit_v1_BackendCacheStats m = nnedit_v1_BackendCacheStats_init_zero;
  nne_client_cache_stats_t *c;
  (void)f;
  if (st->out->n_caches >= NNE_CLIENT_MAX_MODELS)
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED,
                    "reply has more than %d caches", NNE_CLIENT_MAX_MODELS);
  if (!grow((void **)&st->out->caches, &st->cap, st->out->n_caches,
            NNE_CLIENT_MAX_MODELS, sizeof *st->out->caches))
    return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  if (!pb_decode(s, nnedit_v1_BackendCacheStats_fields, &m))
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL, "caches[%zu]: %s",
                    st->out->n_caches, PB_GET_ERROR(s));
  c = &st->out->caches[st->out->n_caches++];
  memset(c, 0, sizeof *c);
  memcpy(c->model, m.model, sizeof c->model);
  c->hits = m.hits;
  c->misses = m.misses;
  c->entries = m.entries;
  c->bytes = m.bytes;
  c->capacity_bytes = m.capacity_bytes;
  c->evictions = m.evictions;
  c->compile_ms_total = m.compile_ms_total;
  c->compile_ms_last = m.compile_ms_last;
  c->pinned = m.pinned;
  return true;
}

int nne_client_admin_stats(nne_client_t *cli, nne_client_stats_t *out,
                           nne_client_err_t *err) {
  nnedit_v1_StatsRequest req = nnedit_v1_StatsRequest_init_zero;
  nnedit_v1_StatsResponse resp = nnedit_v1_StatsResponse_init_zero;
  stats_dec_t st;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || out == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "admin_stats: NULL argument");
  memset(&st, 0, sizeof st);
  st.out = out;
  NNE_PB_DEC(resp.caches, caches_dec, &st);
  rc = rpc_unary(cli, M_ADMIN_STATS, nnedit_v1_StatsRequest_fields, &req,
                 nnedit_v1_StatsResponse_fields, &resp, &st.e, err);
  if (rc < 0) {
    nne_client_stats_free(out);
    return rc;
  }
  out->queue_depth = resp.queue_depth;
  out->queue_capacity = resp.queue_capacity;
  out->calls_total = resp.calls_total;
  out->live_calls = resp.live_calls;
  out->edit_sets = resp.edit_sets;
  return 0;
}

void nne_client_stats_free(nne_client_stats_t *stats) {
  if (stats == NULL)
    return;
  free(stats->caches);
  memset(stats, 0, sizeof *stats);
}

/* ---- intervention graphs ------------------------------------------------- */

/* A graph is an array of nodes in the order they were added, each holding
 * copies of what it was given (strings, ranges, arguments, a constant's
 * bytes), so that the caller's buffers are free the moment a call returns.
 * Encoding (nne_client_trace) turns each into a Node message on the fly. */

typedef enum ig_kind {
  IG_READ = 1,
  IG_WRITE,
  IG_CALL,
  IG_CONST,
  IG_SAVE,
  IG_REF,
} ig_kind_t;

typedef struct ig_arg {
  nne_client_arg_kind_t kind;
  char name[NNE_CLIENT_ARG_NAME_MAX];
  uint32_t node;
  double scalar;
  int64_t integer;
  int64_t ints[NNE_CLIENT_MAX_INTS];
  size_t n_ints;
  bool boolean;
  nne_client_dtype_t dtype;
  char *module; /* heap; NULL unless kind is MODULE */
} ig_arg_t;

typedef struct ig_node {
  uint32_t id;
  ig_kind_t kind;
  char *str;      /* read/write: site; call: fn; save/ref: name (heap) */
  int32_t invoke; /* read, write */
  uint32_t value; /* write, save: the input node */
  nne_client_dim_range_t *ranges; /* write (heap) */
  size_t n_ranges;
  ig_arg_t *args; /* call (heap) */
  size_t n_args;
  nne_client_index_item_t *items; /* call (heap) */
  size_t n_items;
  nne_client_tensor_t tensor; /* const: the graph's own copy */
  bool use_scalar;            /* const: a scalar instead */
  double scalar;
} ig_node_t;

struct nne_client_igraph {
  ig_node_t *nodes;
  size_t n, cap;
  uint32_t max_id;      /* largest id given out */
  uint32_t next_id;     /* nonzero: the id of the next node (igraph_next_id) */
  nne_client_err_t err; /* the first error (code 0: none) */
};

_Static_assert(FIELD_SIZE(nnedit_v1_ReadNode, site) == NNE_CLIENT_SITE_MAX &&
                   FIELD_SIZE(nnedit_v1_WriteNode, site) ==
                       NNE_CLIENT_SITE_MAX &&
                   FIELD_SIZE(nnedit_v1_Arg, value.module) ==
                       NNE_CLIENT_SITE_MAX,
               "ReadNode.site, WriteNode.site, Arg.module bounds");
_Static_assert(FIELD_SIZE(nnedit_v1_SaveNode, name) == NNE_CLIENT_NAME_MAX &&
                   FIELD_SIZE(nnedit_v1_RefNode, name) == NNE_CLIENT_NAME_MAX,
               "SaveNode.name, RefNode.name bounds");
_Static_assert(FIELD_SIZE(nnedit_v1_CallNode, fn) == NNE_CLIENT_FN_MAX &&
                   FIELD_SIZE(nnedit_v1_Arg, name) == NNE_CLIENT_ARG_NAME_MAX,
               "CallNode.fn, Arg.name bounds");
_Static_assert(FIELD_SIZE(nnedit_v1_CallNode, args) ==
                       NNE_CLIENT_MAX_ARGS * sizeof(nnedit_v1_Arg) &&
                   FIELD_SIZE(nnedit_v1_CallNode, index_items) ==
                       NNE_CLIENT_MAX_INDEX_ITEMS *
                           sizeof(nnedit_v1_IndexItem) &&
                   FIELD_SIZE(nnedit_v1_IntList, values) ==
                       NNE_CLIENT_MAX_INTS * sizeof(int64_t),
               "CallNode.args, CallNode.index_items, IntList.values bounds");
_Static_assert(FIELD_SIZE(nnedit_v1_WriteNode, ranges) ==
                   NNE_CLIENT_MAX_RANGES * sizeof(nnedit_v1_DimRange),
               "WriteNode.ranges bound");
_Static_assert(FIELD_SIZE(nnedit_v1_Trace, name) == NNE_CLIENT_TRACE_NAME_MAX &&
                   FIELD_SIZE(nnedit_v1_TraceResult, name) ==
                       NNE_CLIENT_TRACE_NAME_MAX &&
                   FIELD_SIZE(nnedit_v1_TraceResult, backend_key) ==
                       NNE_CLIENT_BACKEND_KEY_MAX,
               "Trace.name, TraceResult.name, TraceResult.backend_key bounds");
_Static_assert(FIELD_SIZE(nnedit_v1_TraceRequest, model) ==
                       NNE_CLIENT_MODEL_NAME_MAX &&
                   FIELD_SIZE(nnedit_v1_TraceRequest, edit_set) ==
                       NNE_CLIENT_EDIT_SET_ID_MAX,
               "TraceRequest.model, TraceRequest.edit_set bounds");
_Static_assert(nnedit_v1_Arg_node_tag == NNE_CLIENT_ARG_NODE &&
                   nnedit_v1_Arg_module_tag == NNE_CLIENT_ARG_MODULE &&
                   nnedit_v1_IndexItem_index_tag == NNE_CLIENT_INDEX_INT &&
                   nnedit_v1_IndexItem_newaxis_tag == NNE_CLIENT_INDEX_NEWAXIS,
               "Arg and IndexItem member tags");

static void ig_node_clear(ig_node_t *n) {
  size_t k;
  free(n->str);
  free(n->ranges);
  for (k = 0; k < n->n_args; k++)
    free(n->args[k].module);
  free(n->args);
  free(n->items);
  nne_client_tensor_free(&n->tensor);
  memset(n, 0, sizeof *n);
}

nne_client_igraph_t *nne_client_igraph_new(void) {
  return calloc(1, sizeof(nne_client_igraph_t));
}

void nne_client_igraph_free(nne_client_igraph_t *g) {
  size_t i;
  if (g == NULL)
    return;
  for (i = 0; i < g->n; i++)
    ig_node_clear(&g->nodes[i]);
  free(g->nodes);
  free(g);
}

int nne_client_igraph_error(const nne_client_igraph_t *g,
                            nne_client_err_t *err) {
  if (g == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT, "igraph: graph is NULL");
  if (g->err.code == 0)
    return 0;
  if (err != NULL)
    *err = g->err;
  return -g->err.code;
}

size_t nne_client_igraph_size(const nne_client_igraph_t *g) {
  return g ? g->n : 0;
}

/* The id the node being added will get. */
static uint32_t ig_id(const nne_client_igraph_t *g) {
  return g->next_id ? g->next_id : g->max_id + 1;
}

/* Records the first error of the graph (the node being added, `what`, and
 * the reason) and returns its -code. */
static int ig_fail(nne_client_igraph_t *g, int code, const char *what,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int ig_fail(nne_client_igraph_t *g, int code, const char *what,
                   const char *fmt, ...) {
  va_list ap;
  size_t n;
  if (g->err.code != 0)
    return -g->err.code;
  g->err.code = code;
  n = (size_t)snprintf(g->err.message, sizeof g->err.message,
                       "node %" PRIu32 " (%s): ", ig_id(g), what);
  if (n < sizeof g->err.message) {
    va_start(ap, fmt);
    vsnprintf(g->err.message + n, sizeof g->err.message - n, fmt, ap);
    va_end(ap);
  }
  return -code;
}

/* A graph that may take one more node: non-NULL, no error so far, an id
 * left and room. Returns 0 or -code. */
static int ig_begin(nne_client_igraph_t *g, const char *what) {
  if (g == NULL)
    return -NNE_CLIENT_INVALID_ARGUMENT;
  if (g->err.code != 0)
    return -g->err.code;
  if (ig_id(g) > NNE_CLIENT_MAX_NODE_ID)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "no node ids left (the largest is %d)",
                   NNE_CLIENT_MAX_NODE_ID);
  if (!grow((void **)&g->nodes, &g->cap, g->n, SIZE_MAX / sizeof *g->nodes,
            sizeof *g->nodes))
    return ig_fail(g, NNE_CLIENT_RESOURCE_EXHAUSTED, what, "out of memory");
  return 0;
}

/* Adds *n (whose allocations the graph now owns) under the next id. */
static int ig_add(nne_client_igraph_t *g, ig_node_t *n) {
  n->id = ig_id(g);
  g->nodes[g->n++] = *n;
  if (n->id > g->max_id)
    g->max_id = n->id;
  g->next_id = 0;
  return (int)n->id;
}

/* A string argument: non-NULL, non-empty, shorter than cap; copied into
 * *out. */
static int ig_str(nne_client_igraph_t *g, const char *what, const char *field,
                  const char *s, size_t cap, char **out) {
  if (s == NULL || s[0] == '\0')
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what, "%s is %s", field,
                   s == NULL ? "NULL" : "empty");
  if (strlen(s) >= cap)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "%s '%.64s...' is longer than %zu bytes", field, s, cap - 1);
  if ((*out = strdup(s)) == NULL)
    return ig_fail(g, NNE_CLIENT_RESOURCE_EXHAUSTED, what, "out of memory");
  return 0;
}

/* A node named as input: an id some call returned. */
static int ig_ref_id(nne_client_igraph_t *g, const char *what,
                     const char *field, int id, uint32_t *out) {
  if (id < 0)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "%s is %d, the status of a failed call, not a node id",
                   field, id);
  if (id == 0)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "%s is 0, never a node id", field);
  *out = (uint32_t)id;
  return 0;
}

static int ig_invoke(nne_client_igraph_t *g, const char *what, int invoke,
                     int32_t *out) {
  if (invoke < NNE_CLIENT_INVOKE_ALL)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "invoke %d (an invoke's index, or -1 for the whole batch)",
                   invoke);
  *out = (int32_t)invoke;
  return 0;
}

int nne_client_igraph_next_id(nne_client_igraph_t *g, int id) {
  size_t i;
  int rc;
  if ((rc = ig_begin(g, "next_id")) < 0)
    return rc;
  if (id <= 0)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, "next_id",
                   "id %d: ids are 1 to %d", id, NNE_CLIENT_MAX_NODE_ID);
  for (i = 0; (uint32_t)id <= g->max_id && i < g->n; i++)
    if (g->nodes[i].id == (uint32_t)id)
      return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, "next_id",
                     "id %d is already in use", id);
  g->next_id = (uint32_t)id;
  return 0;
}

int nne_client_igraph_read(nne_client_igraph_t *g, const char *site,
                           int invoke) {
  ig_node_t n;
  int rc;
  if ((rc = ig_begin(g, "read")) < 0)
    return rc;
  memset(&n, 0, sizeof n);
  n.kind = IG_READ;
  if ((rc = ig_invoke(g, "read", invoke, &n.invoke)) < 0 ||
      (rc = ig_str(g, "read", "site", site, NNE_CLIENT_SITE_MAX, &n.str)) < 0)
    return rc;
  return ig_add(g, &n);
}

int nne_client_igraph_write(nne_client_igraph_t *g, const char *site, int value,
                            int invoke, const nne_client_dim_range_t *ranges,
                            size_t n_ranges) {
  ig_node_t n;
  int rc;
  if ((rc = ig_begin(g, "write")) < 0)
    return rc;
  memset(&n, 0, sizeof n);
  n.kind = IG_WRITE;
  if ((rc = ig_ref_id(g, "write", "value", value, &n.value)) < 0 ||
      (rc = ig_invoke(g, "write", invoke, &n.invoke)) < 0)
    return rc;
  if (n_ranges > NNE_CLIENT_MAX_RANGES)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, "write",
                   "%zu ranges, more than %d", n_ranges, NNE_CLIENT_MAX_RANGES);
  if (n_ranges > 0 && ranges == NULL)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, "write",
                   "ranges is NULL with n_ranges %zu", n_ranges);
  if ((rc = ig_str(g, "write", "site", site, NNE_CLIENT_SITE_MAX, &n.str)) < 0)
    return rc;
  if (n_ranges > 0) {
    n.ranges = malloc(n_ranges * sizeof *n.ranges);
    if (n.ranges == NULL) {
      ig_node_clear(&n);
      return ig_fail(g, NNE_CLIENT_RESOURCE_EXHAUSTED, "write",
                     "out of memory");
    }
    memcpy(n.ranges, ranges, n_ranges * sizeof *n.ranges);
    n.n_ranges = n_ranges;
  }
  return ig_add(g, &n);
}

nne_client_arg_t nne_client_arg_node(int id) {
  nne_client_arg_t a = {.kind = NNE_CLIENT_ARG_NODE, .node = id};
  return a;
}

nne_client_arg_t nne_client_arg_scalar(double v) {
  nne_client_arg_t a = {.kind = NNE_CLIENT_ARG_SCALAR, .scalar = v};
  return a;
}

nne_client_arg_t nne_client_arg_int(int64_t v) {
  nne_client_arg_t a = {.kind = NNE_CLIENT_ARG_INT, .integer = v};
  return a;
}

nne_client_arg_t nne_client_arg_ints(const int64_t *v, size_t n) {
  nne_client_arg_t a = {.kind = NNE_CLIENT_ARG_INTS, .ints = v, .n_ints = n};
  return a;
}

nne_client_arg_t nne_client_arg_bool(bool v) {
  nne_client_arg_t a = {.kind = NNE_CLIENT_ARG_BOOL, .boolean = v};
  return a;
}

nne_client_arg_t nne_client_arg_dtype(nne_client_dtype_t dtype) {
  nne_client_arg_t a = {.kind = NNE_CLIENT_ARG_DTYPE, .dtype = dtype};
  return a;
}

nne_client_arg_t nne_client_arg_module(const char *module) {
  nne_client_arg_t a = {.kind = NNE_CLIENT_ARG_MODULE, .module = module};
  return a;
}

nne_client_arg_t nne_client_arg_kw(const char *name, nne_client_arg_t a) {
  a.name = name;
  return a;
}

nne_client_index_item_t nne_client_idx(int64_t i) {
  nne_client_index_item_t it = {.kind = NNE_CLIENT_INDEX_INT, .index = i};
  return it;
}

nne_client_index_item_t nne_client_idx_slice(int64_t start, int64_t stop) {
  return nne_client_idx_slice_ex(true, start, true, stop, 0);
}

nne_client_index_item_t nne_client_idx_slice_ex(bool has_start, int64_t start,
                                                bool has_stop, int64_t stop,
                                                int64_t step) {
  nne_client_index_item_t it = {.kind = NNE_CLIENT_INDEX_SLICE,
                                .start = has_start ? start : 0,
                                .stop = has_stop ? stop : 0,
                                .step = step,
                                .has_start = has_start,
                                .has_stop = has_stop};
  return it;
}

nne_client_index_item_t nne_client_idx_all(void) {
  return nne_client_idx_slice_ex(false, 0, false, 0, 0);
}

nne_client_index_item_t nne_client_idx_ellipsis(void) {
  nne_client_index_item_t it = {.kind = NNE_CLIENT_INDEX_ELLIPSIS};
  return it;
}

nne_client_index_item_t nne_client_idx_newaxis(void) {
  nne_client_index_item_t it = {.kind = NNE_CLIENT_INDEX_NEWAXIS};
  return it;
}

/* Copies argument a into *o, checking what the wire cannot carry. */
static int ig_arg(nne_client_igraph_t *g, const char *what, size_t k,
                  const nne_client_arg_t *a, ig_arg_t *o) {
  char field[48];
  snprintf(field, sizeof field, "args[%zu]", k);
  o->kind = a->kind;
  if (a->name != NULL && strlen(a->name) >= sizeof o->name)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "%s: keyword '%.40s...' is longer than %zu bytes", field,
                   a->name, sizeof o->name - 1);
  copy_str(o->name, sizeof o->name, a->name);
  switch (a->kind) {
  case NNE_CLIENT_ARG_NODE:
    snprintf(field, sizeof field, "args[%zu].node", k);
    return ig_ref_id(g, what, field, a->node, &o->node);
  case NNE_CLIENT_ARG_SCALAR: o->scalar = a->scalar; return 0;
  case NNE_CLIENT_ARG_INT: o->integer = a->integer; return 0;
  case NNE_CLIENT_ARG_INTS:
    if (a->n_ints > NNE_CLIENT_MAX_INTS)
      return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                     "%s: %zu integers, more than %d", field, a->n_ints,
                     NNE_CLIENT_MAX_INTS);
    if (a->n_ints > 0 && a->ints == NULL)
      return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                     "%s: ints is NULL with n_ints %zu", field, a->n_ints);
    if (a->n_ints > 0)
      memcpy(o->ints, a->ints, a->n_ints * sizeof *o->ints);
    o->n_ints = a->n_ints;
    return 0;
  case NNE_CLIENT_ARG_BOOL: o->boolean = a->boolean; return 0;
  case NNE_CLIENT_ARG_DTYPE:
    if (nne_client_dtype_size(a->dtype) == 0)
      return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                     "%s: unknown dtype %d", field, (int)a->dtype);
    o->dtype = a->dtype;
    return 0;
  case NNE_CLIENT_ARG_MODULE:
    return ig_str(g, what, field, a->module, NNE_CLIENT_SITE_MAX, &o->module);
  default:
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "%s: unknown argument kind %d", field, (int)a->kind);
  }
}

static int ig_item(nne_client_igraph_t *g, const char *what, size_t k,
                   const nne_client_index_item_t *it) {
  if (it->kind < NNE_CLIENT_INDEX_INT || it->kind > NNE_CLIENT_INDEX_NEWAXIS)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "items[%zu]: unknown index item kind %d", k, (int)it->kind);
  return 0;
}

int nne_client_igraph_call(nne_client_igraph_t *g, const char *fn,
                           const nne_client_arg_t *args, size_t n_args,
                           const nne_client_index_item_t *items,
                           size_t n_items) {
  char what[48];
  ig_node_t n;
  size_t k;
  int rc;

  snprintf(what, sizeof what, "call '%.24s'", fn ? fn : "(null)");
  if ((rc = ig_begin(g, what)) < 0)
    return rc;
  if (n_args > NNE_CLIENT_MAX_ARGS)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "%zu arguments, more than %d", n_args, NNE_CLIENT_MAX_ARGS);
  if (n_items > NNE_CLIENT_MAX_INDEX_ITEMS)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "%zu index items, more than %d", n_items,
                   NNE_CLIENT_MAX_INDEX_ITEMS);
  if ((n_args > 0 && args == NULL) || (n_items > 0 && items == NULL))
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, what,
                   "%s is NULL with a count of %zu",
                   n_args > 0 && args == NULL ? "args" : "items",
                   n_args > 0 && args == NULL ? n_args : n_items);
  memset(&n, 0, sizeof n);
  n.kind = IG_CALL;
  if ((rc = ig_str(g, what, "fn", fn, NNE_CLIENT_FN_MAX, &n.str)) < 0)
    return rc;
  if ((n_args > 0 && (n.args = calloc(n_args, sizeof *n.args)) == NULL) ||
      (n_items > 0 && (n.items = malloc(n_items * sizeof *n.items)) == NULL)) {
    ig_node_clear(&n);
    return ig_fail(g, NNE_CLIENT_RESOURCE_EXHAUSTED, what, "out of memory");
  }
  for (k = 0; k < n_args; k++) {
    /* Counted first, so that clearing frees a module copied halfway. */
    n.n_args = k + 1;
    if ((rc = ig_arg(g, what, k, &args[k], &n.args[k])) < 0) {
      ig_node_clear(&n);
      return rc;
    }
  }
  for (k = 0; k < n_items; k++)
    if ((rc = ig_item(g, what, k, &items[k])) < 0) {
      ig_node_clear(&n);
      return rc;
    }
  if (n_items > 0)
    memcpy(n.items, items, n_items * sizeof *n.items);
  n.n_items = n_items;
  return ig_add(g, &n);
}

int nne_client_igraph_const_tensor(nne_client_igraph_t *g,
                                   const nne_client_tensor_t *t) {
  ig_node_t n;
  uint64_t size;
  size_t k;
  int rc;
  if ((rc = ig_begin(g, "constant")) < 0)
    return rc;
  if (t == NULL)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, "constant",
                   "tensor is NULL");
  if (nne_client_dtype_size(t->dtype) == 0)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, "constant",
                   "unknown dtype %d", (int)t->dtype);
  if (t->ndim > NNE_CLIENT_MAX_DIMS)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, "constant",
                   "%zu dims, more than %d", t->ndim, NNE_CLIENT_MAX_DIMS);
  for (k = 0; k < t->ndim; k++)
    if (t->shape[k] < 0)
      return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, "constant",
                     "shape[%zu] is %" PRId64, k, t->shape[k]);
  if (!tensor_size(t->dtype, t->shape, t->ndim, &size) || size != t->nbytes)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, "constant",
                   "nbytes %zu is not numel(shape) * %zu", t->nbytes,
                   nne_client_dtype_size(t->dtype));
  if (t->nbytes > 0 && t->data == NULL)
    return ig_fail(g, NNE_CLIENT_INVALID_ARGUMENT, "constant", "data is NULL");
  memset(&n, 0, sizeof n);
  n.kind = IG_CONST;
  n.tensor.dtype = t->dtype;
  n.tensor.ndim = t->ndim;
  memcpy(n.tensor.shape, t->shape, t->ndim * sizeof t->shape[0]);
  n.tensor.nbytes = t->nbytes;
  if (t->nbytes > 0) {
    if ((n.tensor.data = malloc(t->nbytes)) == NULL)
      return ig_fail(g, NNE_CLIENT_RESOURCE_EXHAUSTED, "constant",
                     "cannot allocate %zu bytes", t->nbytes);
    memcpy(n.tensor.data, t->data, t->nbytes);
  }
  return ig_add(g, &n);
}

int nne_client_igraph_const_scalar(nne_client_igraph_t *g, double v) {
  ig_node_t n;
  int rc;
  if ((rc = ig_begin(g, "constant")) < 0)
    return rc;
  memset(&n, 0, sizeof n);
  n.kind = IG_CONST;
  n.use_scalar = true;
  n.scalar = v;
  return ig_add(g, &n);
}

int nne_client_igraph_save(nne_client_igraph_t *g, int value,
                           const char *name) {
  ig_node_t n;
  int rc;
  if ((rc = ig_begin(g, "save")) < 0)
    return rc;
  memset(&n, 0, sizeof n);
  n.kind = IG_SAVE;
  if ((rc = ig_ref_id(g, "save", "value", value, &n.value)) < 0 ||
      (rc = ig_str(g, "save", "name", name, NNE_CLIENT_NAME_MAX, &n.str)) < 0)
    return rc;
  return ig_add(g, &n);
}

int nne_client_igraph_ref(nne_client_igraph_t *g, const char *name) {
  ig_node_t n;
  int rc;
  if ((rc = ig_begin(g, "ref")) < 0)
    return rc;
  memset(&n, 0, sizeof n);
  n.kind = IG_REF;
  if ((rc = ig_str(g, "ref", "name", name, NNE_CLIENT_NAME_MAX, &n.str)) < 0)
    return rc;
  return ig_add(g, &n);
}

/* ---- trace --------------------------------------------------------------- */

/* A save node of the request, for telling the streamed tensors apart: save
 * names are unique in a request (checked before sending), so a tensor's
 * name says which trace and node it belongs to. Sorted by name. */
typedef struct trace_save {
  const char *name;
  size_t trace;
  uint32_t node;
  bool got;
} trace_save_t;

static int save_cmp(const void *a, const void *b) {
  return strcmp(((const trace_save_t *)a)->name,
                ((const trace_save_t *)b)->name);
}

/* What the tensor in progress is. */
typedef enum trace_tensor_kind {
  TT_NONE = 0,
  TT_SAVE,   /* a save node of the current trace */
  TT_LOGITS, /* the current trace's logits */
  TT_EXTRA,  /* one of the edit set's saves */
} trace_tensor_kind_t;

typedef struct trace_dec {
  const nne_client_trace_req_t *req;
  nne_client_trace_results_t *out;
  trace_save_t *saves; /* every save of the request, sorted by name */
  size_t n_saves;
  size_t *saves_of; /* saves_of[t]: the number of saves of trace t */
  size_t *rows_of;  /* rows_of[t]: the number of rows of trace t */
  /* The trace whose tensors and result come now: the results so far. */
  size_t cur;
  trace_tensor_kind_t kind; /* of the tensor in progress */
  trace_save_t *save;       /* TT_SAVE: its entry */
  size_t saved_cap;         /* room in out->traces[cur].saved */
  size_t n_extra;           /* the edit set's saves of this trace so far */
  /* Result of the current trace, while it is decoded. */
  rows_dec_t rows;
  size_t n_listed;    /* its `saved` entries matched so far */
  bool listed_logits; /* its `saved` list named the logits */
  nne_client__asm_t asm_;
  nne_client_err_t aerr; /* a refusal by the reassembler */
  dec_err_t e;
} trace_dec_t;

static bool trace_has_edit_set(const nne_client_trace_req_t *req) {
  return req->edit_set != NULL && req->edit_set[0] != '\0';
}

static const char *trace_name(const nne_client_trace_req_t *req, size_t t) {
  return req->traces[t].name != NULL ? req->traces[t].name : "";
}

/* Whether `name` is what trace t's logits stream as: "<name>/logits", or
 * for an unnamed trace "<t>/logits" (its position in decimal). */
static bool logits_name_ok(const nne_client_trace_req_t *req, size_t t,
                           const char *name) {
  char want[NNE_CLIENT_TRACE_NAME_MAX + sizeof "/logits"];
  const char *tn = trace_name(req, t);
  if (tn[0] != '\0')
    snprintf(want, sizeof want, "%s/logits", tn);
  else
    snprintf(want, sizeof want, "%zu/logits", t);
  return strcmp(name, want) == 0;
}

static trace_save_t *find_save(const trace_dec_t *st, const char *name) {
  trace_save_t key;
  key.name = name;
  return st->n_saves == 0 ? NULL
                          : bsearch(&key, st->saves, st->n_saves,
                                    sizeof *st->saves, save_cmp);
}

/* TraceResult.saved: the tensors of this trace that came, in the order they
 * came (the logits may be listed too, anywhere). */
static bool trace_saved_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  trace_dec_t *st = *arg;
  nne_client_trace_result_t *r;
  char name[NNE_CLIENT_NAME_MAX];
  size_t n = s->bytes_left, k = st->n_listed;
  (void)f;
  if (st->cur >= st->req->n_traces)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "a result after the %zu traces of the request",
                    st->req->n_traces);
  r = &st->out->traces[st->cur];
  if (n >= sizeof name)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "traces[%zu] result: saved[%zu] is a name of %zu bytes, "
                    "over a tensor name's bound of %zu",
                    st->cur, k + st->listed_logits, n, sizeof name - 1);
  if (!pb_read(s, (pb_byte_t *)name, n))
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL, "traces[%zu] result: %s",
                    st->cur, PB_GET_ERROR(s));
  name[n] = '\0';
  if (r->has_logits && !st->listed_logits &&
      strcmp(name, r->logits.name) == 0) {
    st->listed_logits = true;
    return true;
  }
  if (k >= r->n_saved || strlen(name) != n ||
      strcmp(name, r->saved[k].name) != 0)
    return dec_fail(
        &st->e, NNE_CLIENT_INTERNAL,
        "traces[%zu] result: saved[%zu] is '%.200s', but %s%.200s%s", st->cur,
        k + st->listed_logits, name,
        k < r->n_saved ? "the tensor sent there was '"
                       : "no such tensor was sent",
        k < r->n_saved ? r->saved[k].name : "", k < r->n_saved ? "'" : "");
  st->n_listed++;
  return true;
}

static bool trace_rows_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  trace_dec_t *st = *arg;
  void *rows = &st->rows;
  if (st->cur >= st->req->n_traces)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "a result after the %zu traces of the request",
                    st->req->n_traces);
  return rows_dec(s, f, &rows);
}

/* Checks the result of the current trace (decoded into m, its rows and
 * saved list already taken) and moves on to the next trace. */
static bool trace_result_done(trace_dec_t *st, const nnedit_v1_TraceResult *m) {
  nne_client_trace_result_t *r;
  size_t t = st->cur, i;
  if (t >= st->req->n_traces)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "a result after the %zu traces of the request",
                    st->req->n_traces);
  r = &st->out->traces[t];
  if (m->trace != t)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "the result of traces[%zu] says it is of trace %" PRIu32, t,
                    m->trace);
  if (m->name[0] != '\0' && strcmp(m->name, trace_name(st->req, t)) != 0)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "the result of traces[%zu] ('%s') is named '%s'", t,
                    trace_name(st->req, t), m->name);
  if (nne_client__asm_active(&st->asm_))
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "the result of traces[%zu] came while tensor '%s' was "
                    "incomplete (%" PRIu64 " of %zu bytes)",
                    t, st->asm_.t.name, nne_client__asm_got(&st->asm_),
                    st->asm_.t.nbytes);
  for (i = 0; i < st->n_saves; i++)
    if (st->saves[i].trace == t && !st->saves[i].got)
      return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                      "traces[%zu]: save '%s' (node %" PRIu32
                      ") was not sent before its result",
                      t, st->saves[i].name, st->saves[i].node);
  if (st->req->logits != NNE_CLIENT_LOGITS_NONE && !r->has_logits)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "traces[%zu]: logits were asked for and not sent", t);
  if (st->n_listed != r->n_saved)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "the result of traces[%zu] lists %zu saved tensors, %zu "
                    "were sent",
                    t, st->n_listed, r->n_saved);
  r->trace = m->trace;
  copy_str(r->name, sizeof r->name, trace_name(st->req, t));
  r->batch = m->batch;
  r->seq_len = m->seq_len;
  if (m->has_timing) {
    r->timing.queue_ms = m->timing.queue_ms;
    r->timing.compute_ms = m->timing.compute_ms;
    r->timing.total_ms = m->timing.total_ms;
  }
  r->cache_hit = m->cache_hit;
  memcpy(r->backend_key, m->backend_key, sizeof r->backend_key);
  st->cur++;
  st->saved_cap = 0;
  st->n_extra = 0;
  st->n_listed = 0;
  st->listed_logits = false;
  return true;
}

/* Which tensor a first chunk starts: a save of the current trace not yet
 * received, its logits, or one of the edit set's saves. */
static bool trace_tensor_begin(trace_dec_t *st, const char *name) {
  size_t t = st->cur;
  nne_client_trace_result_t *r = &st->out->traces[t];
  trace_save_t *sv = find_save(st, name);
  if (sv != NULL) {
    if (sv->trace != t)
      return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                      "tensor '%.200s' (a save of traces[%zu]) came among "
                      "those of traces[%zu]",
                      name, sv->trace, t);
    if (sv->got)
      return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                      "tensor '%.200s' was sent twice", name);
    st->kind = TT_SAVE;
    st->save = sv;
    return true;
  }
  if (st->req->logits != NNE_CLIENT_LOGITS_NONE && !r->has_logits &&
      logits_name_ok(st->req, t, name)) {
    st->kind = TT_LOGITS;
    return true;
  }
  if (trace_has_edit_set(st->req)) {
    if (st->n_extra >= NNE_CLIENT_MAX_EDITS)
      return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED,
                      "traces[%zu]: more than %d saved tensors of the edit "
                      "set",
                      t, NNE_CLIENT_MAX_EDITS);
    st->kind = TT_EXTRA;
    return true;
  }
  return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                  "tensor '%.200s' is neither a save of traces[%zu] ('%s') "
                  "nor %s",
                  name, t, trace_name(st->req, t),
                  st->req->logits != NNE_CLIENT_LOGITS_NONE
                      ? "its logits"
                      : "logits (none were asked for)");
}

/* After a chunk was decoded into c: checks it and feeds it on. */
static bool trace_chunk_done(trace_dec_t *st) {
  nne_client_trace_result_t *r;
  size_t t = st->cur;
  bool done;
  if (t >= st->req->n_traces)
    return dec_fail(&st->e, NNE_CLIENT_INTERNAL,
                    "a tensor chunk after the result of the last trace");
  r = &st->out->traces[t];
  if (!nne_client__asm_active(&st->asm_) &&
      !trace_tensor_begin(st, st->asm_.msg->name))
    return false;
  if (nne_client__asm_feed(&st->asm_, &done, &st->aerr) < 0)
    return dec_fail(&st->e, st->aerr.code, "%s", st->aerr.message);
  if (!done)
    return true;
  if (st->kind == TT_LOGITS) {
    nne_client__asm_take(&st->asm_, &r->logits);
    r->has_logits = true;
  } else {
    size_t max = st->saves_of[t] +
                 (trace_has_edit_set(st->req) ? NNE_CLIENT_MAX_EDITS : 0);
    if (!grow((void **)&r->saved, &st->saved_cap, r->n_saved, max,
              sizeof *r->saved))
      return dec_fail(&st->e, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
    nne_client__asm_take(&st->asm_, &r->saved[r->n_saved++]);
    if (st->kind == TT_SAVE)
      st->save->got = true;
    else
      st->n_extra++;
  }
  st->kind = TT_NONE;
  st->save = NULL;
  return true;
}

/* Encoding: the request's traces, each trace's invokes (each a list of
 * rows and of mask rows) and nodes, one element at a time. Each level has
 * its own state, so that a nested list never overwrites its parent's. */
typedef struct trace_enc {
  const nne_client_trace_req_t *req;
  nne_pb_list_enc_t invokes, nodes; /* of the trace being encoded */
  const nne_client_trace_t *trace;  /* that trace */
  nne_pb_list_enc_t ids, mask;      /* of the invoke being encoded */
  rows_enc_t rows;                  /* its rows */
  const nne_client_igraph_t *graph; /* the trace's graph */
  nne_pb_bytes_enc_t data;          /* a constant's bytes */
} trace_enc_t;

static bool fill_invoke(void *ctx, size_t i, void *msg) {
  trace_enc_t *e = ctx;
  const nne_client_invoke_t *inv = &e->trace->invokes[i];
  nnedit_v1_Invoke *m = msg;
  e->rows.rows = inv->rows;
  e->rows.mask = inv->mask;
  e->ids = (nne_pb_list_enc_t){inv->n_rows, fill_ids, &e->rows,
                               sizeof(nnedit_v1_TokenRow)};
  e->mask = (nne_pb_list_enc_t){inv->n_mask, fill_mask, &e->rows,
                                sizeof(nnedit_v1_MaskRow)};
  NNE_PB_ENC(m->input_ids, nne_pb_list_enc, &e->ids);
  NNE_PB_ENC(m->attention_mask, nne_pb_list_enc, &e->mask);
  return true;
}

static void fill_arg(const ig_arg_t *a, nnedit_v1_Arg *m) {
  m->which_value = (pb_size_t)a->kind; /* the tags (static assert above) */
  switch (a->kind) {
  case NNE_CLIENT_ARG_NODE: m->value.node = a->node; break;
  case NNE_CLIENT_ARG_SCALAR: m->value.scalar = a->scalar; break;
  case NNE_CLIENT_ARG_INT: m->value.integer = a->integer; break;
  case NNE_CLIENT_ARG_INTS:
    m->value.ints.values_count = (pb_size_t)a->n_ints;
    memcpy(m->value.ints.values, a->ints, a->n_ints * sizeof a->ints[0]);
    break;
  case NNE_CLIENT_ARG_BOOL: m->value.boolean = a->boolean; break;
  case NNE_CLIENT_ARG_DTYPE: m->value.dtype = (nnedit_v1_DType)a->dtype; break;
  case NNE_CLIENT_ARG_MODULE:
    copy_str(m->value.module, sizeof m->value.module, a->module);
    break;
  }
  memcpy(m->name, a->name, sizeof m->name);
}

static void fill_item(const nne_client_index_item_t *it,
                      nnedit_v1_IndexItem *m) {
  m->which_item = (pb_size_t)it->kind;
  switch (it->kind) {
  case NNE_CLIENT_INDEX_INT: m->item.index = it->index; break;
  case NNE_CLIENT_INDEX_SLICE:
    m->item.slice.start = it->has_start ? it->start : 0;
    m->item.slice.stop = it->has_stop ? it->stop : 0;
    m->item.slice.step = it->step;
    m->item.slice.has_start = it->has_start;
    m->item.slice.has_stop = it->has_stop;
    break;
  case NNE_CLIENT_INDEX_ELLIPSIS: m->item.ellipsis = true; break;
  case NNE_CLIENT_INDEX_NEWAXIS: m->item.newaxis = true; break;
  }
}

static bool fill_node(void *ctx, size_t i, void *msg) {
  trace_enc_t *e = ctx;
  const ig_node_t *n = &e->graph->nodes[i];
  nnedit_v1_Node *m = msg; /* zeroed by nne_pb_list_enc */
  size_t k;

  m->id = n->id;
  switch (n->kind) {
  case IG_READ:
    m->has_read = true;
    copy_str(m->read.site, sizeof m->read.site, n->str);
    m->read.invoke = n->invoke;
    break;
  case IG_WRITE:
    m->has_write = true;
    copy_str(m->write.site, sizeof m->write.site, n->str);
    m->write.value = n->value;
    m->write.invoke = n->invoke;
    m->write.ranges_count = (pb_size_t)n->n_ranges;
    for (k = 0; k < n->n_ranges; k++) {
      m->write.ranges[k].dim = n->ranges[k].dim;
      m->write.ranges[k].start = n->ranges[k].start;
      m->write.ranges[k].stop = n->ranges[k].stop;
    }
    break;
  case IG_CALL:
    m->has_call = true;
    copy_str(m->call.fn, sizeof m->call.fn, n->str);
    m->call.args_count = (pb_size_t)n->n_args;
    for (k = 0; k < n->n_args; k++)
      fill_arg(&n->args[k], &m->call.args[k]);
    m->call.index_items_count = (pb_size_t)n->n_items;
    for (k = 0; k < n->n_items; k++)
      fill_item(&n->items[k], &m->call.index_items[k]);
    break;
  case IG_CONST:
    m->has_constant = true;
    if (n->use_scalar) {
      m->constant.use_scalar = true;
      m->constant.scalar = n->scalar;
    } else {
      m->constant.has_tensor = true;
      m->constant.tensor.dtype = (nnedit_v1_DType)n->tensor.dtype;
      m->constant.tensor.shape_count = (pb_size_t)n->tensor.ndim;
      memcpy(m->constant.tensor.shape, n->tensor.shape,
             n->tensor.ndim * sizeof n->tensor.shape[0]);
      /* Straight from the graph's copy into the outgoing message. */
      e->data.p = n->tensor.data;
      e->data.n = n->tensor.nbytes;
      if (n->tensor.nbytes > 0)
        NNE_PB_ENC(m->constant.tensor.data, nne_pb_bytes_enc, &e->data);
    }
    break;
  case IG_SAVE:
    m->has_save = true;
    m->save.value = n->value;
    copy_str(m->save.name, sizeof m->save.name, n->str);
    break;
  case IG_REF:
    m->has_ref = true;
    copy_str(m->ref.name, sizeof m->ref.name, n->str);
    break;
  }
  return true;
}

static bool fill_trace(void *ctx, size_t i, void *msg) {
  trace_enc_t *e = ctx;
  const nne_client_trace_t *tr = &e->req->traces[i];
  nnedit_v1_Trace *m = msg;
  e->trace = tr;
  e->graph = tr->graph;
  copy_str(m->name, sizeof m->name, tr->name);
  e->invokes = (nne_pb_list_enc_t){tr->n_invokes, fill_invoke, e,
                                   sizeof(nnedit_v1_Invoke)};
  e->nodes = (nne_pb_list_enc_t){tr->graph ? tr->graph->n : 0, fill_node, e,
                                 sizeof(nnedit_v1_Node)};
  NNE_PB_ENC(m->invokes, nne_pb_list_enc, &e->invokes);
  NNE_PB_ENC(m->nodes, nne_pb_list_enc, &e->nodes);
  return true;
}

/* Rows of one invoke or mask list: non-NULL where counted. */
static int check_rows(const char *where, const nne_client_token_row_t *rows,
                      size_t n_rows, const nne_client_mask_row_t *mask,
                      size_t n_mask, size_t *max_mask, nne_client_err_t *err) {
  size_t i;
  if (n_rows > 0 && rows == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "trace: %s.rows is NULL with n_rows %zu", where, n_rows);
  for (i = 0; i < n_rows; i++)
    if (rows[i].n_ids > 0 && rows[i].ids == NULL)
      return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                     "trace: %s.rows[%zu].ids is NULL", where, i);
  if (n_mask > 0 && mask == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "trace: %s.mask is NULL with n_mask %zu", where, n_mask);
  for (i = 0; i < n_mask; i++) {
    if (mask[i].n_values > 0 && mask[i].values == NULL)
      return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                     "trace: %s.mask[%zu].values is NULL", where, i);
    if (mask[i].n_values > *max_mask)
      *max_mask = mask[i].n_values;
  }
  return 0;
}

/* What cannot go on the wire, and the index of the request's saves (sorted;
 * a name used twice is refused). Fills st->saves, saves_of, rows_of. */
static int trace_check(const nne_client_trace_req_t *req, trace_dec_t *st,
                       size_t *max_mask, nne_client_err_t *err) {
  size_t t, i, k, n = 0;
  int rc;
  char where[64];

  *max_mask = 0;
  if ((rc = check_name("trace", req->model, NNE_CLIENT_MODEL_NAME_MAX, err)) <
      0)
    return rc;
  if ((rc = check_opt_str("trace: edit_set", req->edit_set,
                          NNE_CLIENT_EDIT_SET_ID_MAX, err)) < 0)
    return rc;
  if ((int)req->padding < 0 || (int)req->padding > NNE_CLIENT_PAD_RIGHT)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "trace: unknown padding %d", (int)req->padding);
  if ((int)req->logits < 0 || (int)req->logits > NNE_CLIENT_LOGITS_ALL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "trace: unknown logits mode %d", (int)req->logits);
  if (req->n_traces > 0 && req->traces == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "trace: traces is NULL with n_traces %zu", req->n_traces);
  for (t = 0; t < req->n_traces; t++) {
    const nne_client_trace_t *tr = &req->traces[t];
    nne_client_err_t gerr;
    snprintf(where, sizeof where, "trace: traces[%zu].name", t);
    if ((rc = check_opt_str(where, tr->name, NNE_CLIENT_TRACE_NAME_MAX, err)) <
        0)
      return rc;
    if (tr->n_invokes > 0 && tr->invokes == NULL)
      return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                     "trace: traces[%zu].invokes is NULL with n_invokes %zu", t,
                     tr->n_invokes);
    for (i = 0; i < tr->n_invokes; i++) {
      const nne_client_invoke_t *inv = &tr->invokes[i];
      snprintf(where, sizeof where, "traces[%zu].invokes[%zu]", t, i);
      if ((rc = check_rows(where, inv->rows, inv->n_rows, inv->mask,
                           inv->n_mask, max_mask, err)) < 0)
        return rc;
      st->rows_of[t] += inv->n_rows;
    }
    if (tr->graph != NULL && nne_client_igraph_error(tr->graph, &gerr) < 0)
      return err_set(err, gerr.code, "trace: traces[%zu].graph: %s", t,
                     gerr.message);
    for (i = 0; tr->graph != NULL && i < tr->graph->n; i++)
      n += tr->graph->nodes[i].kind == IG_SAVE;
  }
  if (n > 0 && (st->saves = calloc(n, sizeof *st->saves)) == NULL)
    return err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED, "trace: out of memory");
  for (t = 0, k = 0; t < req->n_traces; t++) {
    const nne_client_igraph_t *g = req->traces[t].graph;
    for (i = 0; g != NULL && i < g->n; i++)
      if (g->nodes[i].kind == IG_SAVE) {
        st->saves[k].name = g->nodes[i].str;
        st->saves[k].trace = t;
        st->saves[k].node = g->nodes[i].id;
        st->saves_of[t]++;
        k++;
      }
  }
  st->n_saves = n;
  if (n > 1)
    qsort(st->saves, n, sizeof *st->saves, save_cmp);
  for (k = 1; k < n; k++)
    if (strcmp(st->saves[k].name, st->saves[k - 1].name) == 0) {
      const trace_save_t *a = &st->saves[k - 1], *b = &st->saves[k];
      if (a->trace > b->trace || (a->trace == b->trace && a->node > b->node)) {
        const trace_save_t *x = a;
        a = b;
        b = x;
      }
      return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                     "trace: traces[%zu] node %" PRIu32
                     ": save name '%.200s' is already the name of traces[%zu] "
                     "node %" PRIu32 " (save names are unique in a request)",
                     b->trace, b->node, b->name, a->trace, a->node);
    }
  return 0;
}

int nne_client_trace(nne_client_t *cli, const nne_client_trace_req_t *req,
                     nne_client_trace_results_t *out, nne_client_err_t *err) {
  nnedit_v1_TraceRequest preq = nnedit_v1_TraceRequest_init_zero;
  nne_pb_list_enc_t traces;
  trace_enc_t enc;
  trace_dec_t st;
  grpc_byte_buffer *bb = NULL, *msg;
  rpc_t r;
  size_t max_mask;
  nne_client_err_t lerr;
  int rc, local = 0;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || req == NULL || out == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT, "trace: NULL argument");
  memset(&st, 0, sizeof st);
  memset(&enc, 0, sizeof enc);
  st.req = req;
  st.out = out;
  if (req->n_traces > 0 &&
      ((st.saves_of = calloc(req->n_traces, sizeof *st.saves_of)) == NULL ||
       (st.rows_of = calloc(req->n_traces, sizeof *st.rows_of)) == NULL)) {
    rc = err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED, "trace: out of memory");
    goto done;
  }
  if ((rc = trace_check(req, &st, &max_mask, err)) < 0)
    goto done;

  enc.req = req;
  if (max_mask > 0 &&
      (enc.rows.tmp = malloc(max_mask * sizeof *enc.rows.tmp)) == NULL) {
    rc = err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED, "trace: out of memory");
    goto done;
  }
  copy_str(preq.model, sizeof preq.model, req->model);
  copy_str(preq.edit_set, sizeof preq.edit_set, req->edit_set);
  traces = (nne_pb_list_enc_t){req->n_traces, fill_trace, &enc,
                               sizeof(nnedit_v1_Trace)};
  NNE_PB_ENC(preq.traces, nne_pb_list_enc, &traces);
  preq.padding = (nnedit_v1_Padding)req->padding;
  preq.top_k = req->top_k;
  preq.logits = (nnedit_v1_LogitsMode)req->logits;
  rc = encode_req(M_TRACE, nnedit_v1_TraceRequest_fields, &preq, &bb, err);
  free(enc.rows.tmp);
  if (rc < 0)
    goto done;

  /* One result per trace, zeroed, so that a failure halfway leaves nothing
   * that trace_results_free would not find. */
  if (req->n_traces > 0 &&
      (out->traces = calloc(req->n_traces, sizeof *out->traces)) == NULL) {
    grpc_byte_buffer_destroy(bb);
    rc = err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED, "trace: out of memory");
    goto done;
  }
  out->n_traces = req->n_traces;
  st.rows.e = &st.e;
  st.rows.max_top = req->top_k;
  nne_client__asm_init(&st.asm_, cli->max_tensor_bytes);

  if (rpc_start(&r, cli, M_TRACE, bb, deadline_in(cli->timeout_ms))) {
    while (rpc_recv(&r, &msg) && msg != NULL) {
      nnedit_v1_TraceResponse m;
      char why[128] = "";
      bool ok;
      /* The result's rows go to the trace whose result this would be. */
      memset(&m, 0, sizeof m);
      nne_client__asm_arm(&st.asm_, &m.chunk);
      if (st.cur < req->n_traces) {
        st.rows.rows = &out->traces[st.cur].rows;
        st.rows.n_rows = &out->traces[st.cur].n_rows;
        st.rows.max_rows = st.rows_of[st.cur];
        st.rows.cap = out->traces[st.cur].n_rows;
      }
      NNE_PB_DEC(m.result.rows, trace_rows_dec, &st);
      NNE_PB_DEC(m.result.saved, trace_saved_dec, &st);
      ok = nne_pb_decode_bb(msg, nnedit_v1_TraceResponse_fields, &m, why,
                            sizeof why);
      grpc_byte_buffer_destroy(msg);
      if (!ok && nne_client__asm_error(&st.asm_, &st.aerr) < 0)
        dec_fail(&st.e, st.aerr.code, "%s", st.aerr.message);
      if (ok && m.has_result == m.has_chunk)
        ok = dec_fail(&st.e, NNE_CLIENT_INTERNAL,
                      "a TraceResponse with %s (one of result and chunk "
                      "expected)",
                      m.has_result ? "both a result and a chunk" : "neither");
      if (ok && m.has_chunk)
        ok = trace_chunk_done(&st);
      if (ok && m.has_result)
        ok = trace_result_done(&st, &m.result);
      if (!ok) {
        local = st.e.code
                    ? err_set(&lerr, st.e.code, "Inference/Trace: %s", st.e.msg)
                    : err_set(&lerr, NNE_CLIENT_INTERNAL,
                              "Inference/Trace: undecodable reply: %s", why);
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
    rc = local;
  } else if (rc == 0) {
    /* The server said OK: the stream must have been whole. */
    if (nne_client__asm_active(&st.asm_))
      rc = err_set(
          err, NNE_CLIENT_INTERNAL,
          "Inference/Trace: tensor '%s' cut short at %" PRIu64 " of %zu bytes",
          st.asm_.t.name, nne_client__asm_got(&st.asm_), st.asm_.t.nbytes);
    else if (st.cur < req->n_traces)
      rc = err_set(err, NNE_CLIENT_INTERNAL,
                   "Inference/Trace: the stream ended after %zu of %zu trace "
                   "results",
                   st.cur, req->n_traces);
  }
  nne_client__asm_reset(&st.asm_);
done:
  free(st.saves);
  free(st.saves_of);
  free(st.rows_of);
  if (rc < 0)
    nne_client_trace_results_free(out);
  return rc;
}

void nne_client_trace_results_free(nne_client_trace_results_t *res) {
  size_t t, i;
  if (res == NULL)
    return;
  for (t = 0; t < res->n_traces; t++) {
    nne_client_trace_result_t *r = &res->traces[t];
    for (i = 0; i < r->n_rows; i++)
      free(r->rows[i].top);
    free(r->rows);
    nne_client_tensor_free(&r->logits);
    for (i = 0; i < r->n_saved; i++)
      nne_client_tensor_free(&r->saved[i]);
    free(r->saved);
  }
  free(res->traces);
  memset(res, 0, sizeof *res);
}

const nne_client_tensor_t *
nne_client_trace_results_saved(const nne_client_trace_results_t *res,
                               const char *name) {
  size_t t, i;
  if (res == NULL || name == NULL)
    return NULL;
  for (t = 0; t < res->n_traces; t++)
    for (i = 0; i < res->traces[t].n_saved; i++)
      if (strcmp(res->traces[t].saved[i].name, name) == 0)
        return &res->traces[t].saved[i];
  return NULL;
}

/* ---- tensors ------------------------------------------------------------- */

void nne_client_tensor_free(nne_client_tensor_t *t) {
  if (t == NULL)
    return;
  free(t->data);
  memset(t, 0, sizeof *t);
}

uint64_t nne_client_tensor_numel(const nne_client_tensor_t *t) {
  uint64_t n = 1;
  size_t i;
  if (t == NULL)
    return 0;
  for (i = 0; i < t->ndim && i < NNE_CLIENT_MAX_DIMS; i++)
    n *= t->shape[i] > 0 ? (uint64_t)t->shape[i] : 0;
  return n;
}

static const char *npy_descr(int dtype) {
  switch (dtype) {
  case NNE_CLIENT_DTYPE_FLOAT32:
  case NNE_CLIENT_DTYPE_BFLOAT16: /* widened on write */ return "<f4";
  case NNE_CLIENT_DTYPE_FLOAT16: return "<f2";
  case NNE_CLIENT_DTYPE_FLOAT64: return "<f8";
  case NNE_CLIENT_DTYPE_INT64: return "<i8";
  case NNE_CLIENT_DTYPE_INT32: return "<i4";
  case NNE_CLIENT_DTYPE_INT16: return "<i2";
  case NNE_CLIENT_DTYPE_INT8: return "|i1";
  case NNE_CLIENT_DTYPE_UINT8: return "|u1";
  case NNE_CLIENT_DTYPE_BOOL: return "|b1";
  default: return NULL;
  }
}

/* bfloat16 is the high half of a float32: widen 2-byte little-endian values
 * into 4-byte little-endian ones, a block at a time. */
static bool write_bf16_as_f32(FILE *f, const uint8_t *src, size_t n) {
  uint8_t buf[4096 * 4];
  size_t i, k;
  for (i = 0; i < n; i += k) {
    size_t block = n - i < 4096 ? n - i : 4096;
    for (k = 0; k < block; k++) {
      buf[4 * k + 0] = 0;
      buf[4 * k + 1] = 0;
      buf[4 * k + 2] = src[2 * (i + k) + 0];
      buf[4 * k + 3] = src[2 * (i + k) + 1];
    }
    if (fwrite(buf, 4, block, f) != block)
      return false;
  }
  return true;
}

int nne_client_tensor_write_npy(const nne_client_tensor_t *t, const char *path,
                                nne_client_err_t *err) {
  char hdr[512];
  size_t len, i, total;
  uint64_t size;
  const char *descr;
  FILE *f;
  bool ok;

  if (t == NULL || path == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "write_npy: NULL argument");
  descr = npy_descr(t->dtype);
  if (descr == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "write_npy: tensor '%s' has unknown dtype %d", t->name,
                   (int)t->dtype);
  if (t->ndim > NNE_CLIENT_MAX_DIMS ||
      !tensor_size(t->dtype, t->shape, t->ndim, &size) || size != t->nbytes ||
      (t->nbytes > 0 && t->data == NULL))
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "write_npy: tensor '%s': shape, dtype and nbytes (%zu) "
                   "disagree",
                   t->name, t->nbytes);

  /* The header: magic, version 1.0, little-endian uint16 length, then a
   * Python dict literal padded with spaces and a newline so that the data
   * starts at a multiple of 64 bytes (numpy's own alignment). */
  len = (size_t)snprintf(hdr + 10, sizeof hdr - 10,
                         "{'descr': '%s', 'fortran_order': False, 'shape': (",
                         descr);
  for (i = 0; i < t->ndim; i++)
    len += (size_t)snprintf(hdr + 10 + len, sizeof hdr - 10 - len,
                            "%" PRId64 "%s", t->shape[i],
                            (t->ndim == 1 || i + 1 < t->ndim) ? ", " : "");
  if (t->ndim == 1)
    len -= 1; /* "(5,)" rather than "(5, )" */
  len += (size_t)snprintf(hdr + 10 + len, sizeof hdr - 10 - len, "), }");
  total = 10 + len + 1;
  total = (total + 63) / 64 * 64;
  memset(hdr + 10 + len, ' ', total - 10 - len - 1);
  hdr[total - 1] = '\n';
  memcpy(hdr, "\x93NUMPY\x01\x00", 8);
  hdr[8] = (char)((total - 10) & 0xff);
  hdr[9] = (char)((total - 10) >> 8);

  f = fopen(path, "wb");
  if (f == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT, "write_npy: %s: %s", path,
                   strerror(errno));
  ok = fwrite(hdr, 1, total, f) == total;
  if (ok && t->nbytes > 0) {
    if (t->dtype == NNE_CLIENT_DTYPE_BFLOAT16)
      ok = write_bf16_as_f32(f, t->data, t->nbytes / 2);
    else
      ok = fwrite(t->data, 1, t->nbytes, f) == t->nbytes;
  }
  if (fclose(f) != 0)
    ok = false;
  if (!ok) {
    int e = errno;
    remove(path);
    return err_set(err, NNE_CLIENT_INTERNAL, "write_npy: %s: %s", path,
                   strerror(e));
  }
  return 0;
}

/* The value of key `key` in a .npy header dict ("{'descr': '<f4', ...}"),
 * or NULL: the text right after the key's colon, blanks skipped. */
static const char *npy_key(const char *hdr, const char *key) {
  size_t n = strlen(key);
  const char *p = hdr;
  while ((p = strstr(p, key)) != NULL) {
    const char *q = p + n;
    char quote = p > hdr ? p[-1] : '\0';
    if ((quote == '\'' || quote == '"') && *q == quote) {
      q++;
      while (*q == ' ')
        q++;
      if (*q == ':') {
        q++;
        while (*q == ' ')
          q++;
        return q;
      }
    }
    p += n;
  }
  return NULL;
}

static int npy_dtype(const char *descr, size_t len) {
  static const struct {
    const char *descr;
    nne_client_dtype_t dt;
  } map[] = {
      {"<f4", NNE_CLIENT_DTYPE_FLOAT32}, {"<f2", NNE_CLIENT_DTYPE_FLOAT16},
      {"<f8", NNE_CLIENT_DTYPE_FLOAT64}, {"<i8", NNE_CLIENT_DTYPE_INT64},
      {"<i4", NNE_CLIENT_DTYPE_INT32},   {"<i2", NNE_CLIENT_DTYPE_INT16},
      {"|i1", NNE_CLIENT_DTYPE_INT8},    {"|u1", NNE_CLIENT_DTYPE_UINT8},
      {"|b1", NNE_CLIENT_DTYPE_BOOL},    {"<i1", NNE_CLIENT_DTYPE_INT8},
      {"<u1", NNE_CLIENT_DTYPE_UINT8},   {"<b1", NNE_CLIENT_DTYPE_BOOL},
  };
  size_t k;
  for (k = 0; k < sizeof map / sizeof map[0]; k++)
    if (len == 3 && memcmp(descr, map[k].descr, 3) == 0)
      return map[k].dt;
  return 0;
}

/* Parses the header dict into t's dtype and shape. */
static int npy_header(const char *path, const char *hdr, nne_client_tensor_t *t,
                      nne_client_err_t *err) {
  const char *p, *end;
  char quote;

  if ((p = npy_key(hdr, "descr")) == NULL || (*p != '\'' && *p != '"'))
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "read_npy: %s: header has no 'descr'", path);
  quote = *p++;
  if ((end = strchr(p, quote)) == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "read_npy: %s: header 'descr' is not a string", path);
  t->dtype = (nne_client_dtype_t)npy_dtype(p, (size_t)(end - p));
  if (t->dtype == 0)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "read_npy: %s: header 'descr' '%.*s' is not one of <f4 <f2 "
                   "<f8 <i8 <i4 <i2 |i1 |u1 |b1",
                   path, (int)(end - p < 32 ? end - p : 32), p);
  if ((p = npy_key(hdr, "fortran_order")) == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "read_npy: %s: header has no 'fortran_order'", path);
  if (strncmp(p, "False", 5) != 0)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "read_npy: %s: header 'fortran_order' is not False (only "
                   "C order is read)",
                   path);
  if ((p = npy_key(hdr, "shape")) == NULL || *p != '(')
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                   "read_npy: %s: header has no 'shape' tuple", path);
  p++;
  t->ndim = 0;
  for (;;) {
    char *e;
    long long v;
    while (*p == ' ')
      p++;
    if (*p == ')')
      break;
    if (t->ndim == NNE_CLIENT_MAX_DIMS)
      return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                     "read_npy: %s: header 'shape' has more than %d dims", path,
                     NNE_CLIENT_MAX_DIMS);
    errno = 0;
    v = strtoll(p, &e, 10);
    if (e == p || errno != 0 || v < 0 || *p == '-')
      return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                     "read_npy: %s: header 'shape' element %zu is not a "
                     "non-negative integer",
                     path, t->ndim);
    t->shape[t->ndim++] = (int64_t)v;
    p = e;
    while (*p == ' ' || *p == 'L')
      p++;
    if (*p == ',')
      p++;
    else if (*p != ')')
      return err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                     "read_npy: %s: header 'shape' is not a tuple of "
                     "integers",
                     path);
  }
  return 0;
}

int nne_client_tensor_read_npy(const char *path, uint64_t max_bytes,
                               nne_client_tensor_t *out,
                               nne_client_err_t *err) {
  unsigned char pre[12];
  char *hdr = NULL;
  size_t hlen, pre_len;
  uint64_t size;
  long data_at, file_end;
  FILE *f;
  int rc = 0;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (path == NULL || out == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT, "read_npy: NULL argument");
  if (max_bytes == 0)
    max_bytes = NNE_CLIENT_DEFAULT_MAX_TENSOR_BYTES;
  f = fopen(path, "rb");
  if (f == NULL)
    return err_set(err, NNE_CLIENT_INVALID_ARGUMENT, "read_npy: %s: %s", path,
                   strerror(errno));
  /* Magic, version, then a 2-byte (1.0) or 4-byte (2.0, 3.0) little-endian
   * header length. */
  if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
    rc = err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                 "read_npy: %s: not a .npy file (no \\x93NUMPY magic)", path);
    goto out;
  }
  if (pre[6] == 1) {
    hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    pre_len = 10;
  } else if ((pre[6] == 2 || pre[6] == 3) && fread(pre + 10, 1, 2, f) == 2) {
    hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 |
           (size_t)pre[11] << 24;
    pre_len = 12;
  } else {
    rc = err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                 "read_npy: %s: format version %d.%d is not 1.0, 2.0 or 3.0",
                 path, pre[6], pre[7]);
    goto out;
  }
  /* numpy's own headers stay far below this. */
  if (hlen > (1u << 20)) {
    rc = err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                 "read_npy: %s: header of %zu bytes", path, hlen);
    goto out;
  }
  if ((hdr = malloc(hlen + 1)) == NULL) {
    rc = err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED, "read_npy: out of memory");
    goto out;
  }
  if (fread(hdr, 1, hlen, f) != hlen) {
    rc = err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                 "read_npy: %s: header cut short", path);
    goto out;
  }
  hdr[hlen] = '\0';
  if ((rc = npy_header(path, hdr, out, err)) < 0)
    goto out;
  if (!tensor_size(out->dtype, out->shape, out->ndim, &size)) {
    rc = err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                 "read_npy: %s: header 'shape' overflows", path);
    goto out;
  }
  if (size > max_bytes) {
    rc = err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                 "read_npy: %s: %" PRIu64 " bytes of data, over the limit of "
                 "%" PRIu64,
                 path, size, max_bytes);
    goto out;
  }
  data_at = (long)(pre_len + hlen);
  if (fseek(f, 0, SEEK_END) != 0 || (file_end = ftell(f)) < 0 ||
      fseek(f, data_at, SEEK_SET) != 0) {
    rc = err_set(err, NNE_CLIENT_INVALID_ARGUMENT, "read_npy: %s: %s", path,
                 strerror(errno));
    goto out;
  }
  if ((uint64_t)(file_end - data_at) != size) {
    rc = err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                 "read_npy: %s: %ld bytes of data, the header's dtype and "
                 "shape say %" PRIu64,
                 path, file_end - data_at, size);
    goto out;
  }
  out->nbytes = (size_t)size;
  if (size > 0 && (out->data = malloc((size_t)size)) == NULL) {
    rc = err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                 "read_npy: %s: cannot allocate %" PRIu64 " bytes", path, size);
    goto out;
  }
  if (size > 0 && fread(out->data, 1, (size_t)size, f) != size)
    rc = err_set(err, NNE_CLIENT_INVALID_ARGUMENT, "read_npy: %s: read failed",
                 path);
out:
  free(hdr);
  fclose(f);
  if (rc < 0)
    nne_client_tensor_free(out);
  return rc;
}
