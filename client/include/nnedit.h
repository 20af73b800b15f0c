/* nnedit.h — libnnedit, the C client of nneditd.
 *
 * A blocking C API over gRPC: every function returns when its call is over.
 * One client holds one gRPC channel (one HTTP/2 connection, made lazily) and
 * may be used by many threads at once; each call gets its own completion
 * queue, so calls never wait on each other.
 *
 * Life cycle:
 *
 *   nne_client_opts_t opts;
 *   nne_client_opts_init(&opts);            // 127.0.0.1:50051, 60 s per call
 *   opts.address = "127.0.0.1:7000";
 *
 *   nne_client_t *cli;
 *   nne_client_err_t err;
 *   if (nne_client_connect(&opts, &cli, &err) < 0)      // no I/O yet
 *     die("%s: %s", nne_client_status_name(err.code), err.message);
 *   nne_client_wait_ready(cli, 5000, &err);  // optional: connect now
 *
 *   nne_client_model_info_t info;
 *   nne_client_models_load(cli, "gpt2-script", NULL, 0, &info, &err);
 *
 *   int64_t ids[] = {31, 415, 926};
 *   nne_client_token_row_t row = {.ids = ids, .n_ids = 3};
 *   nne_client_forward_req_t req = {.model = "gpt2-script", .rows = &row,
 *                                   .n_rows = 1, .top_k = 5};
 *   nne_client_forward_result_t res;
 *   if (nne_client_forward(cli, &req, &res, &err) == 0) {
 *     ... res.rows[0].top[0].token_id ...
 *   }
 *   nne_client_forward_result_free(&res);   // safe after success or failure
 *
 *   // Text instead of ids: the daemon tokenizes it with the model's
 *   // tokenizer.json; each top-k token comes with its text (" Paris"):
 *   nne_client_token_row_t prompt = {.text = "The Eiffel Tower is in"};
 *   req.rows = &prompt;
 *   if (nne_client_forward(cli, &req, &res, &err) == 0)
 *     ... res.rows[0].top[0].text ...
 *   nne_client_forward_result_free(&res);
 *   req.rows = &row;
 *
 *   // Values inside the model, by any spelling of a site:
 *   const char *save[] = {"layers.0.resid_post", "blocks.0.attn.hook_pattern"};
 *   req.save = save;
 *   req.n_save = 2;
 *   if (nne_client_forward(cli, &req, &res, &err) == 0) {
 *     const nne_client_tensor_t *t =
 *         nne_client_forward_result_saved(&res, "layers.0.resid_post");
 *     ... t->shape, t->data ...
 *   }
 *   nne_client_forward_result_free(&res);
 *
 *   // Generation, token by token: on_step (an nne_client_token_cb) sees
 *   // each step's tokens as they come (see "generation" below):
 *   nne_client_generate_req_t gen = {.model = "gpt2-script",
 *                                    .prompts = &prompt, .n_prompts = 1,
 *                                    .max_new_tokens = 16};
 *   nne_client_generate_result_t out;
 *   if (nne_client_generate(cli, &gen, on_step, ctx, &out, &err) == 0)
 *     ... out.rows[0].text, out.rows[0].finish_reason ...
 *   nne_client_generate_result_free(&out);
 *
 *   // The module tree with standard names; one subtree by any spelling:
 *   nne_client_model_desc_t d;
 *   nne_client_models_describe_module(cli, "gpt2-script", "layers.3.self_attn",
 *                                     &d, &err);
 *   ... d.modules[0].path ("transformer.h.3.attn"), d.sites ...
 *   nne_client_model_desc_free(&d);
 *
 *   // Edits: a batch applied at once, named by an id that Forward runs on
 *   // (see "edits" below); the graph a module runs, hooks included:
 *   nne_client_edit_t z = {.site = "layers.0.self_attn.pattern",
 *                          .op = NNE_CLIENT_EDIT_ZERO};
 *   nne_client_edit_set_info_t es;
 *   nne_client_edits_apply(cli, "gpt2-script", &z, 1, NULL, &es, &err);
 *   req.edit_set = es.id;
 *   nne_client_forward(cli, &req, &res, &err);   // on the edited model
 *   nne_client_forward_result_free(&res);
 *   nne_client_graph_t g;
 *   nne_client_models_graph(cli, "gpt2-script", "layers.0.self_attn", es.id,
 *                           &g, &err);
 *   ... g.nodes[i].op, .selector, .inserted ...
 *   nne_client_graph_free(&g);
 *   nne_client_edits_drop(cli, es.id, NULL, NULL, &err);
 *
 *   // Traced forward passes: an intervention graph of reads, calls, writes
 *   // and saves at sites, run on invokes of rows (see "traces" below):
 *   nne_client_igraph_t *ig = nne_client_igraph_new();
 *   int r = nne_client_igraph_read(ig, "layers.0.resid_post", 0);
 *   nne_client_igraph_save(ig, r, "resid0");
 *   nne_client_invoke_t inv = {.rows = &row, .n_rows = 1};
 *   nne_client_trace_t tr = {.name = "t", .invokes = &inv, .n_invokes = 1,
 *                            .graph = ig};
 *   nne_client_trace_req_t treq = {.model = "gpt2-script", .traces = &tr,
 *                                  .n_traces = 1};
 *   nne_client_trace_results_t tres;
 *   if (nne_client_trace(cli, &treq, &tres, &err) == 0)
 *     ... nne_client_trace_results_saved(&tres, "resid0")->shape ...
 *   nne_client_trace_results_free(&tres);
 *   nne_client_igraph_free(ig);
 *
 *   nne_client_close(cli);
 *
 * Conventions (they hold for every function below unless it says otherwise):
 *
 * - Errors. A fallible function returns 0, or a negative number: minus the
 *   gRPC status code it also writes into err->code (so -5 is NOT_FOUND).
 *   err->message then holds the server's status details verbatim, or a
 *   message of the library's own for errors found locally:
 *     UNAVAILABLE        no connection to the daemon
 *     DEADLINE_EXCEEDED  the call outlived its timeout
 *     INTERNAL           a reply that could not be decoded or broke the
 *                        protocol (a tensor chunk out of order, ...)
 *     RESOURCE_EXHAUSTED a reply over one of this client's limits
 *     INVALID_ARGUMENT   an argument that cannot be put on the wire (NULL,
 *                        a name over its bound). Everything else is left to
 *                        the daemon, whose messages name the bad field.
 *   `err` may be NULL when the caller only wants the return value. On
 *   success err is not touched.
 *
 * - Ownership. Result structs are allocated by the caller (usually on the
 *   stack); the library fills them and allocates whatever they point to.
 *   Each has a matching _free function that releases those allocations and
 *   zeroes the struct; it does not free the struct itself. Results are zeroed
 *   on entry, so calling _free after a failed call is always safe (and does
 *   nothing). Input pointers are borrowed for the duration of the call only.
 *
 * - Bounds. Everything that comes from the server is bounded: message size
 *   (opts.max_recv_bytes), tensor size (opts.max_tensor_bytes), list lengths
 *   (the NNE_CLIENT_MAX_* below, or the request's own sizes) and strings
 *   (the proto's nanopb bounds). A reply over a bound fails the call; a
 *   misbehaving server can neither crash the client nor make it allocate
 *   without limit.
 *
 * - Threads. Any function may be called from any thread, concurrently on one
 *   client, except nne_client_close, which must come after every other call
 *   on that client has returned.
 */
#ifndef NNEDIT_H
#define NNEDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes -------------------------------------------------------- */

/* The gRPC status codes (fixed by the protocol). X(name, value). */
#define NNE_CLIENT_CODE_MAP(X)                                                 \
  X(OK, 0)                                                                     \
  X(CANCELLED, 1)                                                              \
  X(UNKNOWN, 2)                                                                \
  X(INVALID_ARGUMENT, 3)                                                       \
  X(DEADLINE_EXCEEDED, 4)                                                      \
  X(NOT_FOUND, 5)                                                              \
  X(ALREADY_EXISTS, 6)                                                         \
  X(PERMISSION_DENIED, 7)                                                      \
  X(RESOURCE_EXHAUSTED, 8)                                                     \
  X(FAILED_PRECONDITION, 9)                                                    \
  X(ABORTED, 10)                                                               \
  X(OUT_OF_RANGE, 11)                                                          \
  X(UNIMPLEMENTED, 12)                                                         \
  X(INTERNAL, 13)                                                              \
  X(UNAVAILABLE, 14)                                                           \
  X(DATA_LOSS, 15)                                                             \
  X(UNAUTHENTICATED, 16)

typedef enum nne_client_code {
#define NNE_CLIENT__CODE_ENUM(name, val) NNE_CLIENT_##name = (val),
  NNE_CLIENT_CODE_MAP(NNE_CLIENT__CODE_ENUM)
#undef NNE_CLIENT__CODE_ENUM
} nne_client_code_t;

#define NNE_CLIENT_ERR_MAX 1024

/* A gRPC status code (0..16) and a message. Owned by the caller. */
typedef struct nne_client_err {
  int code;
  char message[NNE_CLIENT_ERR_MAX];
} nne_client_err_t;

/* "NOT_FOUND" for 5, ...; "UNKNOWN" for a number outside 0..16. A static
 * string: never NULL, never freed. */
const char *nne_client_status_name(int code);

/* The library's version ("0.1.0"). Static string. */
const char *nne_client_version(void);

/* ---- connecting ---------------------------------------------------------- */

#define NNE_CLIENT_DEFAULT_ADDRESS "127.0.0.1:50051"
#define NNE_CLIENT_DEFAULT_TIMEOUT_MS 60000
#define NNE_CLIENT_DEFAULT_MAX_RECV_BYTES (64u << 20)
#define NNE_CLIENT_DEFAULT_MAX_TENSOR_BYTES ((uint64_t)2 << 30)

typedef struct nne_client_opts {
  /* gRPC target: "host:port", "unix:/path", ... NULL means the default.
   * Copied by nne_client_connect. */
  const char *address;
  /* Deadline of every call, in milliseconds from its start; 0 = none. */
  int64_t timeout_ms;
  /* Largest message the client accepts (GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH);
   * 0 = the default. At most INT32_MAX. Tensors arrive in chunks, so this
   * bounds one chunk, not one tensor. */
  size_t max_recv_bytes;
  /* Largest tensor the client reassembles from chunks; 0 = the default. */
  uint64_t max_tensor_bytes;
  /* Bearer token sent with every call ("authorization: Bearer <token>")
   * when the daemon runs with --token-file; NULL = none. Copied by
   * nne_client_connect; 16..4096 printable characters without spaces. */
  const char *token;
  /* TLS. tls != 0 (or any file below) makes the channel TLS. tls_ca_file:
   * PEM roots that sign the daemon's certificate (NULL: gRPC's default
   * roots, $GRPC_DEFAULT_SSL_ROOTS_FILE_PATH). tls_cert_file/tls_key_file:
   * this client's certificate and key, for a daemon with --tls-client-ca
   * (mTLS). Read by nne_client_connect. */
  int tls;
  const char *tls_ca_file;
  const char *tls_cert_file;
  const char *tls_key_file;
} nne_client_opts_t;

/* Fills opts with the defaults above. */
void nne_client_opts_init(nne_client_opts_t *opts);

/* The client: an opaque handle. */
typedef struct nne_client nne_client_t;

/* Creates a client (*out, freed with nne_client_close). opts may be NULL for
 * all defaults; it is copied and may be freed after the call. No connection
 * is made here: gRPC connects on the first call (or wait_ready). Fails only
 * on bad options (INVALID_ARGUMENT). */
int nne_client_connect(const nne_client_opts_t *opts, nne_client_t **out,
                       nne_client_err_t *err);

/* Closes the channel and frees the client. NULL is a no-op. Every call on
 * this client must have returned. */
void nne_client_close(nne_client_t *cli);

/* Connects now and waits until the channel is ready or timeout_ms passes
 * (UNAVAILABLE, naming the last connectivity state; 0 = no time limit).
 * Useful after starting a daemon: a refused connection is retried (every
 * 0.1 s at first, backing off to 2 s) until the timeout. */
int nne_client_wait_ready(nne_client_t *cli, int64_t timeout_ms,
                          nne_client_err_t *err);

/* Connects now, trying once: 0 when the channel is ready; UNAVAILABLE
 * (naming the address) as soon as the attempt fails (refused, no such
 * host) or when timeout_ms passes first (0 = no time limit) while it is
 * still connecting. Unlike wait_ready nothing is retried, so a tool can
 * tell an unreachable daemon at once, and a call made after success
 * spends its deadline on the call, not on connecting. A channel whose last
 * attempt failed, and that gRPC has not retried yet, fails at once. */
int nne_client_try_connect(nne_client_t *cli, int64_t timeout_ms,
                           nne_client_err_t *err);

/* The address the client was created with. Borrowed: lives with the client. */
const char *nne_client_address(const nne_client_t *cli);

/* Calls a unary method by its full path ("/package.Service/Method") with a
 * request already encoded as protobuf bytes (req[req_len], borrowed). For
 * methods this library does not wrap yet (a newer daemon's) and for protocol
 * tests. On success *resp is allocated by the library (NULL when the reply
 * is empty; at most opts.max_recv_bytes) and freed with nne_client_free. */
int nne_client_call_raw(nne_client_t *cli, const char *method, const void *req,
                        size_t req_len, void **resp, size_t *resp_len,
                        nne_client_err_t *err);

/* Frees memory the library handed out as a bare pointer (call_raw's reply).
 * NULL is a no-op. */
void nne_client_free(void *p);

/* ---- health (grpc.health.v1) --------------------------------------------- */

typedef enum nne_client_health {
  NNE_CLIENT_HEALTH_UNKNOWN = 0,
  NNE_CLIENT_HEALTH_SERVING = 1,
  NNE_CLIENT_HEALTH_NOT_SERVING = 2,
  NNE_CLIENT_HEALTH_SERVICE_UNKNOWN = 3, /* only sent by Watch */
} nne_client_health_t;

/* "SERVING", ...; "UNKNOWN" for other values. Static string. */
const char *nne_client_health_name(int status);

/* Health/Check for `service` ("" or NULL = the whole server; otherwise a
 * full service name such as "nnedit.v1.Inference"). A service the server
 * does not know is the NOT_FOUND status, per the health protocol. */
int nne_client_health_check(nne_client_t *cli, const char *service,
                            nne_client_health_t *out, nne_client_err_t *err);

/* Health/Watch, bounded: stores the statuses the server streams into
 * out[0..max-1] (caller's array) and returns when `max` have arrived, when
 * timeout_ms passes (0 = no time limit: wait for `max`), or when the server
 * ends the stream. *n_out is the number stored, also on failure. Reaching
 * the count or the timeout is success; a server error status is not. */
int nne_client_health_watch(nne_client_t *cli, const char *service,
                            nne_client_health_t *out, size_t max, size_t *n_out,
                            int64_t timeout_ms, nne_client_err_t *err);

/* ---- tensors ------------------------------------------------------------- */

/* Element types; the numbers are the wire enum nnedit.v1.DType. */
typedef enum nne_client_dtype {
  NNE_CLIENT_DTYPE_UNSPECIFIED = 0,
  NNE_CLIENT_DTYPE_FLOAT32 = 1,
  NNE_CLIENT_DTYPE_FLOAT16 = 2,
  NNE_CLIENT_DTYPE_BFLOAT16 = 3,
  NNE_CLIENT_DTYPE_FLOAT64 = 4,
  NNE_CLIENT_DTYPE_INT64 = 5,
  NNE_CLIENT_DTYPE_INT32 = 6,
  NNE_CLIENT_DTYPE_INT16 = 7,
  NNE_CLIENT_DTYPE_INT8 = 8,
  NNE_CLIENT_DTYPE_UINT8 = 9,
  NNE_CLIENT_DTYPE_BOOL = 10,
} nne_client_dtype_t;

/* "float32", "bfloat16", ...; "unspecified" for 0 and unknown values. */
const char *nne_client_dtype_name(int dtype);
/* Bytes per element; 0 for unspecified or unknown values. */
size_t nne_client_dtype_size(int dtype);
/* Parses a dtype name: the names above, and "fp32", "float", "f32", "half",
 * "fp16", "f16", "bf16", "double", "fp64", "f64", "long", "int", "short",
 * "char", "byte". INVALID_ARGUMENT for anything else. */
int nne_client_dtype_parse(const char *name, nne_client_dtype_t *out,
                           nne_client_err_t *err);

#define NNE_CLIENT_MAX_DIMS 8
#define NNE_CLIENT_NAME_MAX 256

/* A tensor received from the server: `nbytes` of little-endian data in C
 * (row-major) order, numel(shape) * dtype_size(dtype) bytes. `data` is
 * allocated by the library (NULL when nbytes is 0) and freed by
 * nne_client_tensor_free, or by the _free function of the result holding it.
 * The data is aligned for any element type. */
typedef struct nne_client_tensor {
  char name[NNE_CLIENT_NAME_MAX];
  nne_client_dtype_t dtype;
  size_t ndim;
  int64_t shape[NNE_CLIENT_MAX_DIMS];
  size_t nbytes;
  void *data;
} nne_client_tensor_t;

/* Frees t->data and zeroes *t. NULL is a no-op. */
void nne_client_tensor_free(nne_client_tensor_t *t);

/* Number of elements (the product of the shape; 1 for ndim 0). */
uint64_t nne_client_tensor_numel(const nne_client_tensor_t *t);

/* Reads a NumPy .npy file (format 1.0, 2.0 or 3.0; C order; a
 * little-endian or one-byte dtype: <f4 <f2 <f8 <i8 <i4 <i2 |i1 |u1 |b1)
 * into *out (caller's struct, zeroed on entry; free with
 * nne_client_tensor_free). Its data may hold at most max_bytes bytes
 * (0 = NNE_CLIENT_DEFAULT_MAX_TENSOR_BYTES; RESOURCE_EXHAUSTED above) and
 * must fill the rest of the file exactly. out->name is left "". Anything
 * else (Fortran order, a big-endian or unknown dtype, a short file) is
 * INVALID_ARGUMENT with a message naming the file and the header field. */
int nne_client_tensor_read_npy(const char *path, uint64_t max_bytes,
                               nne_client_tensor_t *out, nne_client_err_t *err);

/* Writes t as a NumPy .npy file (format 1.0, C order, little-endian descr),
 * replacing `path`. numpy has no bfloat16, so a bfloat16 tensor is written
 * as float32 (exact: every bfloat16 value is a float32 value). On failure
 * no partial file is left behind. The tensor is only read. */
int nne_client_tensor_write_npy(const nne_client_tensor_t *t, const char *path,
                                nne_client_err_t *err);

/* ---- models (nnedit.v1.Models) ------------------------------------------- */

typedef enum nne_client_model_state {
  NNE_CLIENT_MODEL_STATE_UNSPECIFIED = 0,
  NNE_CLIENT_MODEL_AVAILABLE = 1, /* in the repository, not loaded */
  NNE_CLIENT_MODEL_LOADING = 2,
  NNE_CLIENT_MODEL_LOADED = 3,
  NNE_CLIENT_MODEL_UNLOADING = 4,
  NNE_CLIENT_MODEL_FAILED = 5, /* the last load failed; `error` says why */
} nne_client_model_state_t;

/* "AVAILABLE", "LOADED", ...; "UNSPECIFIED" for 0 and unknown values. */
const char *nne_client_model_state_name(int state);

/* Sizes of the strings below, NUL included (the proto's bounds). */
#define NNE_CLIENT_MODEL_NAME_MAX 128
#define NNE_CLIENT_DEVICE_MAX 32
#define NNE_CLIENT_FAMILY_MAX 32
#define NNE_CLIENT_FAMILY_REASON_MAX 128
#define NNE_CLIENT_MODEL_ERROR_MAX 1024
#define NNE_CLIENT_EXPORT_KIND_MAX 16
#define NNE_CLIENT_VERSION_MAX 64

/* Most warnings one model info may carry, and the longest one (bytes, NUL
 * included). The proto leaves both open; these are this client's bounds. */
#define NNE_CLIENT_MAX_WARNINGS 4096
#define NNE_CLIENT_WARNING_MAX 4096

/* Text the daemon sends about single tokens (a top-k token's text, a
 * special token, a vocabulary entry, a piece): at most this many bytes
 * each, and at most NNE_CLIENT_MAX_SPECIAL_TOKENS special tokens per
 * tokenizer. The proto leaves both open; these are this client's bounds
 * (the longest entries of real vocabularies are runs of a few hundred
 * spaces or dashes). The tokenizer's file and kind are the proto's bounds
 * (bytes, NUL included). */
#define NNE_CLIENT_TOKEN_TEXT_MAX 4096
#define NNE_CLIENT_MAX_SPECIAL_TOKENS 65536
#define NNE_CLIENT_TOKENIZER_FILE_MAX 512
#define NNE_CLIENT_TOKENIZER_KIND_MAX 32
/* Most EOS ids one model info carries (the proto leaves it open; models
 * have one to three). */
#define NNE_CLIENT_MAX_EOS_TOKENS 16

/* A token the tokenizer treats as special (BOS, EOS, <|im_start|>, ...).
 * text points into the model info that holds it (text_len bytes, then a
 * NUL; never NULL). */
typedef struct nne_client_special_token {
  int64_t id;
  const char *text;
  size_t text_len;
} nne_client_special_token_t;

/* A model's tokenizer as Describe, List and Load report it. `special` is
 * allocated by the library (with its strings, in one block) and freed with
 * the nne_client_model_info_t that holds it. */
typedef struct nne_client_tokenizer_info {
  /* The tokenizer.json loaded, relative to the model repository
   * ("gpt2-script/tokenizer.json"). */
  char file[NNE_CLIENT_TOKENIZER_FILE_MAX];
  char kind[NNE_CLIENT_TOKENIZER_KIND_MAX]; /* the model type: "BPE" */
  uint32_t vocab_size; /* ids the tokenizer knows, added tokens included */
  const nne_client_special_token_t *special;
  size_t n_special;
} nne_client_tokenizer_info_t;

/* A model as the daemon reports it (models.proto ModelInfo). The warnings
 * are the one allocation it holds (NULL when there are none): free it with
 * nne_client_model_info_free, which model_list_free and model_desc_free call
 * for the infos they hold. */
typedef struct nne_client_model_info {
  char name[NNE_CLIENT_MODEL_NAME_MAX];
  nne_client_model_state_t state;
  char device[NNE_CLIENT_DEVICE_MAX]; /* "cpu", "cuda:0", ... */
  nne_client_dtype_t dtype;
  char family[NNE_CLIENT_FAMILY_MAX];     /* "gpt2", "llama", ... */
  char error[NNE_CLIENT_MODEL_ERROR_MAX]; /* when state is FAILED */
  uint64_t param_count;
  uint64_t param_bytes;
  int64_t vocab_size;
  uint32_t module_count;
  uint32_t max_batch; /* Forward limits on this model */
  uint32_t max_seq_len;
  double load_ms;
  uint32_t in_flight; /* calls holding the model right now */
  char export_kind[NNE_CLIENT_EXPORT_KIND_MAX]; /* "script", "trace" */
  /* How the family was decided: "class GPT2LMHeadModel", "structure",
   * "model.json"; "" when no family map matched. */
  char family_reason[NNE_CLIENT_FAMILY_REASON_MAX];
  uint32_t layer_count; /* layers of the family's layer list; 0: no family */
  /* Things the user should know: user aliases that matched nothing,
   * standard names that failed load-time validation, no family detected.
   * n_warnings strings in one block allocated by the library. */
  const char *const *warnings;
  size_t n_warnings;
  /* The model's tokenizer (<repo>/<model>/tokenizer.json): has_tokenizer
   * false when it has none (text rows, Tokenize and Detokenize then fail
   * with FAILED_PRECONDITION), or when the daemon predates tokenizers. */
  bool has_tokenizer;
  nne_client_tokenizer_info_t tokenizer;
  /* Generation (nne_client_generate): whether steps reuse a key/value cache
   * (the archive has the cached-decoding method model.json names; false:
   * each step recomputes the whole sequence), and the ids that end a row
   * unless ignore_eos (model.json "eos_token_id"; at most
   * NNE_CLIENT_MAX_EOS_TOKENS, else RESOURCE_EXHAUSTED). */
  bool kv_cache;
  int64_t eos_token_ids[NNE_CLIENT_MAX_EOS_TOKENS];
  size_t n_eos_token_ids;
} nne_client_model_info_t;

/* Frees the warnings and the tokenizer's special tokens and zeroes *info.
 * NULL is a no-op. */
void nne_client_model_info_free(nne_client_model_info_t *info);

/* Longest model list / module tree / site list a reply may carry, and the
 * most standard names (and, separately, user aliases) of one module. */
#define NNE_CLIENT_MAX_MODELS 4096
#define NNE_CLIENT_MAX_MODULES 65536
#define NNE_CLIENT_MAX_SITES 65536
#define NNE_CLIENT_MAX_MODULE_NAMES 64
/* Longest module spelling a Describe request may name (bytes, NUL
 * included): DescribeModelRequest.module. */
#define NNE_CLIENT_MODULE_NAME_MAX 512

/* The models of the repository. `models` (n_models entries) is allocated by
 * the library and freed by nne_client_model_list_free. */
typedef struct nne_client_model_list {
  nne_client_model_info_t *models;
  size_t n_models;
  char server_version[NNE_CLIENT_VERSION_MAX]; /* nneditd's version */
} nne_client_model_list_t;

/* Models/List into *out (caller's struct; free with model_list_free). */
int nne_client_models_list(nne_client_t *cli, nne_client_model_list_t *out,
                           nne_client_err_t *err);
void nne_client_model_list_free(nne_client_model_list_t *list);

/* Models/Load: loads `name` (blocking until loaded; a loaded model is
 * returned as is). `device` ("cpu", "cuda:0"; NULL or "" = the model's
 * model.json) and `dtype` (UNSPECIFIED = model.json) override the defaults.
 * *out receives the model's info (caller's struct; free with
 * model_info_free). */
int nne_client_models_load(nne_client_t *cli, const char *name,
                           const char *device, nne_client_dtype_t dtype,
                           nne_client_model_info_t *out, nne_client_err_t *err);

/* Models/Unload. *out (may be NULL) receives the model's info (free with
 * model_info_free). */
int nne_client_models_unload(nne_client_t *cli, const char *name,
                             nne_client_model_info_t *out,
                             nne_client_err_t *err);

/* One module of a model's tree, in pre-order (named_modules() order). The
 * strings and string lists point into the nne_client_model_desc_t that
 * holds the module and live as long as it. The tree is checked on arrival:
 * parent is -1 for modules[0] only and otherwise the index of an earlier
 * module, and depth is the parent's depth + 1, so both can be used as
 * indices and indents safely. modules[0].depth is 0 for the whole model;
 * for a subtree (describe_module) it is whatever the daemon says the
 * subtree root's depth is, so indent by depth - modules[0].depth. */
typedef struct nne_client_module {
  const char *path;       /* dotted raw path; "" for the root */
  const char *class_name; /* "GPT2Attention" */
  const char *type_name;  /* the qualified TorchScript type name */
  int32_t parent;         /* index in modules[]; -1 for modules[0] */
  uint32_t depth;         /* 0 for the root */
  int32_t call_index;     /* order of the first call in forward; -1: never */
  uint64_t param_count;   /* parameters held directly by this module */
  /* Family-independent names of this module ("layers.3.self_attn"), and
   * user aliases from model.json "names" ("blk3.attention"): each resolves
   * to this module wherever a module is accepted. At most
   * NNE_CLIENT_MAX_MODULE_NAMES of each. */
  const char *const *standard_names;
  size_t n_standard_names;
  const char *const *aliases;
  size_t n_aliases;
} nne_client_module_t;

/* Where a standard site lives; the numbers are the wire enum
 * nnedit.v1.SiteKind. */
typedef enum nne_client_site_kind {
  NNE_CLIENT_SITE_KIND_UNSPECIFIED = 0,
  NNE_CLIENT_SITE_INPUT = 1,      /* module input `index` */
  NNE_CLIENT_SITE_OUTPUT = 2,     /* module output element `index` */
  NNE_CLIENT_SITE_NODE = 3,       /* output `index` of a node in the
                                     module's own code */
  NNE_CLIENT_SITE_NODE_INPUT = 4, /* input `index` of that node */
} nne_client_site_kind_t;

/* "input", "output", "node", "node_input"; "unspecified" for 0 and unknown
 * values. Static string. */
const char *nne_client_site_kind_name(int kind);

/* A standard site of the model (NAMES.md): where it resolved, or why not.
 * The strings point into the nne_client_model_desc_t that holds the site
 * and live as long as it; none is NULL ("" when the daemon sent nothing). */
typedef struct nne_client_site {
  const char *name;      /* "layers.3.resid_post" */
  const char *tl_name;   /* "blocks.3.hook_resid_post"; "" if none */
  bool available;
  const char *reason;    /* why not, when !available */
  const char *canonical; /* raw form: "transformer.h.3.output.0",
                            "transformer.h.3.attn:aten::softmax#0" */
  const char *module;    /* raw path of the module it lives in */
  nne_client_site_kind_t kind;
  int32_t index;
  /* A view taken of the value (q/k/v of a fused projection): the last
   * dimension split into view_parts parts (0: no view), part view_part
   * (checked: 0 <= view_part < view_parts), after reshaping it to
   * [heads, -1] when view_heads. */
  int32_t view_parts;
  int32_t view_part;
  bool view_heads;
} nne_client_site_t;

/* A model's info, module tree and standard sites. `modules`, `sites` and
 * the strings they point to are allocated by the library and freed by
 * nne_client_model_desc_free (which frees model's warnings too). */
typedef struct nne_client_model_desc {
  nne_client_model_info_t model;
  nne_client_module_t *modules;
  size_t n_modules;
  char *strings; /* private: one block holding every module and site string */
  /* The standard sites: per layer, all of them; for a subtree, those inside
   * it. Empty for a model without a family. */
  nne_client_site_t *sites;
  size_t n_sites;
  const char **names; /* private: the modules' name lists, back to back */
} nne_client_model_desc_t;

/* Models/Describe of the whole model into *out (caller's struct; free with
 * model_desc_free). Same as describe_module with module NULL. */
int nne_client_models_describe(nne_client_t *cli, const char *name,
                               nne_client_model_desc_t *out,
                               nne_client_err_t *err);

/* Models/Describe of one module's subtree: `module` is any spelling of it
 * (raw path "transformer.h.3.attn", standard name "layers.3.self_attn", a
 * user alias; shorter than NNE_CLIENT_MODULE_NAME_MAX bytes). modules[0] is
 * that module (parent -1), the others its descendants with parents indexing
 * this response; sites are those inside the subtree. NULL or "" describes
 * the whole model. An unknown name is the daemon's NOT_FOUND (its message
 * lists the closest valid names); a layer index out of range its
 * INVALID_ARGUMENT. */
int nne_client_models_describe_module(nne_client_t *cli, const char *name,
                                      const char *module,
                                      nne_client_model_desc_t *out,
                                      nne_client_err_t *err);
void nne_client_model_desc_free(nne_client_model_desc_t *desc);

/* ---- inference (nnedit.v1.Inference) ------------------------------------- */

typedef enum nne_client_padding {
  /* Rows must have equal lengths (or a mask that matches them exactly). */
  NNE_CLIENT_PAD_NONE = 0,
  /* Rows may differ; the daemon pads them and builds the mask. */
  NNE_CLIENT_PAD_LEFT = 1,
  NNE_CLIENT_PAD_RIGHT = 2,
} nne_client_padding_t;

typedef enum nne_client_logits {
  NNE_CLIENT_LOGITS_NONE = 0,
  NNE_CLIENT_LOGITS_LAST = 1, /* [batch, vocab] at each row's last real token */
  NNE_CLIENT_LOGITS_ALL = 2,  /* [batch, seq, vocab] */
} nne_client_logits_t;

/* One row of the batch (borrowed): token ids, or text that the daemon
 * tokenizes with the model's tokenizer and template (BOS where the model
 * wants it). A text row has `text` set and no ids (n_ids 0); a row with
 * both is INVALID_ARGUMENT here. The text must be valid UTF-8 of at most
 * NNE_CLIENT_TEXT_MAX bytes, and its mask is the daemon's (all ones, then
 * padding): a request with text rows takes no mask at all. The daemon
 * checks these (INVALID_ARGUMENT giving the byte offset of invalid UTF-8;
 * RESOURCE_EXHAUSTED for more tokens than the model's max_seq_len), and a
 * model without a tokenizer is its FAILED_PRECONDITION naming the file it
 * looked for. {ids, n} initializers still make id rows (text NULL). */
typedef struct nne_client_token_row {
  const int64_t *ids;
  size_t n_ids;
  const char *text; /* NULL: an id row */
} nne_client_token_row_t;

/* One row of the attention mask (borrowed): 1 = real token, 0 = padding. */
typedef struct nne_client_mask_row {
  const int32_t *values;
  size_t n_values;
} nne_client_mask_row_t;

/* A Forward request. Everything is borrowed for the call. The library sends
 * what it is given: row lengths, mask shape, top_k, the number of saves and
 * sizes are checked by the daemon, whose messages name the field
 * (input_ids[1][4], save[2], ...). */
typedef struct nne_client_forward_req {
  const char *model;
  const nne_client_token_row_t *rows;
  size_t n_rows;
  const nne_client_mask_row_t *mask; /* NULL / n_mask 0: no mask */
  size_t n_mask;
  nne_client_padding_t padding;
  uint32_t top_k; /* 0 = no top-k lists */
  nne_client_logits_t logits;
  /* Sites whose values to bring back (NULL / n_save 0: none): any spelling
   * of a site, raw ("transformer.h.3.output"), standard
   * ("layers.3.resid_post"), TransformerLens ("blocks.3.hook_resid_post"),
   * a node ("layers.3.self_attn:aten::softmax#0"), a user alias +
   * ".output". Each comes back as a tensor named exactly as spelled here,
   * so each must be shorter than NNE_CLIENT_NAME_MAX bytes (a tensor
   * name's bound; checked here). The daemon takes at most 256. */
  const char *const *save;
  size_t n_save;
  /* Run on this edit set (nne_client_edits_apply) instead of the pristine
   * model; NULL or "" = the pristine model. Shorter than
   * NNE_CLIENT_EDIT_SET_ID_MAX bytes (checked here). An id the daemon does
   * not know (never applied, or dropped) is its NOT_FOUND. */
  const char *edit_set;
} nne_client_forward_req_t;

/* The longest text of one text row or Tokenize text (bytes, without the
 * NUL), and the most texts of one Tokenize request (the proto's). */
#define NNE_CLIENT_TEXT_MAX ((size_t)1 << 20)
#define NNE_CLIENT_MAX_TEXTS 1024

typedef struct nne_client_token_score {
  int64_t token_id;
  float logit;
  float prob; /* softmax over the whole vocabulary */
  /* The token decoded alone (" Paris", "\n"): text_len bytes (at most
   * NNE_CLIENT_TOKEN_TEXT_MAX - 1; a byte token may hold a NUL or a part
   * of a UTF-8 sequence), then a NUL. "" when the model has no tokenizer.
   * Points into the row that holds the score; never NULL. */
  const char *text;
  size_t text_len;
} nne_client_token_score_t;

/* The top-k next tokens of one row, best first. */
typedef struct nne_client_row_topk {
  uint32_t position; /* index in the padded sequence of the last real token */
  nne_client_token_score_t *top;
  size_t n_top;
  char *strings; /* private: the scores' texts, freed with the row */
} nne_client_row_topk_t;

typedef struct nne_client_timing {
  double queue_ms;   /* waiting for an executor */
  double compute_ms; /* the forward pass and top-k */
  double total_ms;   /* from request decoded to result ready */
} nne_client_timing_t;

/* A Forward result. `rows` (at most the request's n_rows, each with at most
 * top_k scores), the logits data and the saved tensors are allocated by the
 * library and freed by nne_client_forward_result_free. */
typedef struct nne_client_forward_result {
  uint32_t batch;
  uint32_t seq_len; /* padded length */
  nne_client_row_topk_t *rows;
  size_t n_rows;
  nne_client_timing_t timing;
  bool has_logits; /* the request asked for logits and they arrived */
  nne_client_tensor_t logits;
  /* The saved tensors: one per request save entry, in the request's order,
   * each named as spelled there (the same name twice comes back twice);
   * then, when the request named an edit set, one per SAVE edit of the
   * set, in the order the daemon sends them (the set's), named by the
   * edit's `name` (its site when it has none). So n_saved == req->n_save
   * without an edit set, and n_saved >= req->n_save with one (at most
   * NNE_CLIENT_MAX_EDITS more). */
  nne_client_tensor_t *saved;
  size_t n_saved;
} nne_client_forward_result_t;

/* Inference/Forward into *out (caller's struct; free with
 * forward_result_free). The logits, when asked for, and each saved site
 * arrive as chunked tensors that are reassembled into one buffer each (at
 * most opts.max_tensor_bytes, else RESOURCE_EXHAUSTED). The daemon's
 * result must list the request's saves exactly, in order, and send every
 * one of them (INTERNAL otherwise: a daemon without save support lists
 * none). With an edit set, the set's saves follow: when the result lists
 * their names too, exactly those must arrive; when it does not, every
 * tensor after the listed ones is taken as one of them. */
int nne_client_forward(nne_client_t *cli, const nne_client_forward_req_t *req,
                       nne_client_forward_result_t *out, nne_client_err_t *err);
void nne_client_forward_result_free(nne_client_forward_result_t *res);

/* The first saved tensor of res named `name` (as the request spelled it,
 * or an edit set's SAVE name), or NULL. Borrowed: lives as long as res. */
const nne_client_tensor_t *
nne_client_forward_result_saved(const nne_client_forward_result_t *res,
                                const char *name);

/* ---- the tokenizer (Inference/Tokenize, Inference/Detokenize) ------------ */

/* Text to ids and back with a loaded model's tokenizer, the one text rows
 * go through:
 *
 *   const char *texts[] = {"The Eiffel Tower is in"};
 *   nne_client_tokenize_result_t tok;
 *   if (nne_client_tokenize(cli, "gpt2-script", texts, 1, false, &tok,
 *                           &err) == 0)
 *     ... tok.texts[0].tokens[i].id, .token ("ĠEiffel"), .piece (" Eiffel"),
 *         .start, .end (its bytes in texts[0]: 3, 10)
 *   nne_client_tokenize_result_free(&tok);
 *
 *   // Pairs (question, context): nne_client_tokenize_pairs, the pair
 *   // template's type ids in .type_id, .source saying which text.
 *
 * A model without a tokenizer is the daemon's FAILED_PRECONDITION naming
 * the file it looked for. */

/* Most tokens of one Tokenize text this client accepts: a text of at most
 * NNE_CLIENT_TEXT_MAX bytes has at most one token a byte, plus the
 * template's. */
#define NNE_CLIENT_MAX_TEXT_TOKENS (NNE_CLIENT_TEXT_MAX + 1024)

/* Which text a token came from (TokenizedText.sources). */
typedef enum nne_client_token_source {
  NNE_CLIENT_TOKEN_SOURCE_UNKNOWN = 0, /* a daemon without offsets */
  NNE_CLIENT_TOKEN_SOURCE_TEXT = 1,    /* texts[i] */
  NNE_CLIENT_TOKEN_SOURCE_PAIR = 2,    /* pairs[i] */
  /* The template's (BOS, EOS, a separator): in no text, start = end = 0. */
  NNE_CLIENT_TOKEN_SOURCE_TEMPLATE = 3,
} nne_client_token_source_t;

/* One token of a tokenized text. The strings point into the
 * nne_client_tokenize_result_t that holds the token and live as long as it;
 * none is NULL. Each is *_len bytes (a NUL or a part of a UTF-8
 * sequence may be among them), then a NUL. */
typedef struct nne_client_token {
  int64_t id;
  /* The vocabulary entry as the tokenizer spells it: "Ġworld", "▁the",
   * "<0x0A>". At most NNE_CLIENT_TOKEN_TEXT_MAX - 1 bytes. */
  const char *token;
  size_t token_len;
  /* What it contributes to the text, decoded alone: " world". */
  const char *piece;
  size_t piece_len;
  /* The bytes it stands for when the piece is not all of them (a byte
   * token, a byte-level token inside a UTF-8 character: the piece has
   * U+FFFD there); bytes_len 0 for every other token. */
  const char *bytes;
  size_t bytes_len;
  bool special; /* BOS, EOS, ... */
  /* Where it came from: bytes [start, end) of the UTF-8 text `source`
   * names (as Hugging Face's Rust core counts; its Python bindings give
   * the same spans in characters). A byte token spans its whole
   * character; a template token is 0, 0. */
  uint32_t start, end;
  nne_client_token_source_t source;
  uint32_t type_id; /* the template's: 0, or for a pair's part its own */
} nne_client_token_t;

/* One text, tokenized: its tokens in order. */
typedef struct nne_client_tokenized {
  nne_client_token_t *tokens;
  size_t n_tokens;
} nne_client_tokenized_t;

/* A Tokenize result: texts[i] is the request's texts[i]. Everything it
 * points to is allocated by the library and freed by
 * nne_client_tokenize_result_free. */
typedef struct nne_client_tokenize_result {
  nne_client_tokenized_t *texts;
  size_t n_texts;
  uint32_t vocab_size; /* the tokenizer's, added tokens included */
  char *strings;       /* private: one block holding every string */
} nne_client_tokenize_result_t;

/* Inference/Tokenize of texts[0..n_texts-1] (each borrowed for the call,
 * NUL-terminated, valid UTF-8 of at most NNE_CLIENT_TEXT_MAX bytes; at most
 * NNE_CLIENT_MAX_TEXTS) with `model`'s tokenizer into *out (caller's
 * struct; free with tokenize_result_free). raw: the text's own tokens, no
 * BOS/EOS of the template. Checked here (INVALID_ARGUMENT naming the
 * text): NULL pointers, too many texts; the daemon checks the texts'
 * UTF-8 and lengths. The reply must hold one tokenized text per request
 * text, each with as many spellings, pieces, bytes, special flags, offsets,
 * sources and type ids as ids (or none of a kind: "", false, 0 and
 * NNE_CLIENT_TOKEN_SOURCE_UNKNOWN then); anything else is INTERNAL. */
int nne_client_tokenize(nne_client_t *cli, const char *model,
                        const char *const *texts, size_t n_texts, bool raw,
                        nne_client_tokenize_result_t *out,
                        nne_client_err_t *err);

/* The same with a second text for each: texts[i] and pairs[i] (pairs NULL:
 * none, as nne_client_tokenize; else n_texts of them, each as the texts)
 * make one tokenized text, Hugging Face's encode(text, pair) through the
 * tokenizer's pair template. A tokenizer without a pair template is the
 * daemon's UNIMPLEMENTED. */
int nne_client_tokenize_pairs(nne_client_t *cli, const char *model,
                              const char *const *texts,
                              const char *const *pairs, size_t n_texts,
                              bool raw, nne_client_tokenize_result_t *out,
                              nne_client_err_t *err);
void nne_client_tokenize_result_free(nne_client_tokenize_result_t *res);

/* A text the library hands out: len bytes, then a NUL (a NUL may be among
 * the bytes when ids decode to one). */
typedef struct nne_client_text {
  const char *text;
  size_t len;
} nne_client_text_t;

/* A Detokenize result: texts[i] is the text of the request's rows[i]. Both
 * the array and the strings are allocated by the library and freed by
 * nne_client_detokenize_result_free. */
typedef struct nne_client_detokenize_result {
  nne_client_text_t *texts;
  size_t n_texts;
  char *strings; /* private: one block holding every text */
} nne_client_detokenize_result_t;

/* Inference/Detokenize: each of rows[0..n_rows-1] (id rows; borrowed for
 * the call; a text row is INVALID_ARGUMENT here) back to text with
 * `model`'s tokenizer into *out (caller's struct; free with
 * detokenize_result_free). skip_special: leave special tokens (BOS, EOS,
 * ...) out. An id outside the vocabulary is the daemon's OUT_OF_RANGE
 * naming the row. The reply must hold exactly one text per row
 * (INTERNAL otherwise); each is bounded by the reply's size
 * (opts.max_recv_bytes). */
int nne_client_detokenize(nne_client_t *cli, const char *model,
                          const nne_client_token_row_t *rows, size_t n_rows,
                          bool skip_special,
                          nne_client_detokenize_result_t *out,
                          nne_client_err_t *err);
void nne_client_detokenize_result_free(nne_client_detokenize_result_t *res);

/* ---- generation (Inference/Generate) ------------------------------------- */

/* Prompts to continuations, token by token (nnsight's model.generate):
 *
 *   static int on_step(void *ctx, uint32_t step,
 *                      const nne_client_gen_token_t *tok, size_t n) {
 *     for (size_t i = 0; i < n; i++)      // one per row still generating
 *       fwrite(tok[i].text, 1, tok[i].text_len, stdout);
 *     return 0;                           // non-zero: stop here
 *   }
 *
 *   nne_client_token_row_t p = {.text = "The Eiffel Tower is in"};
 *   nne_client_generate_req_t req = {.model = "gpt2-script", .prompts = &p,
 *                                    .n_prompts = 1, .max_new_tokens = 8};
 *   nne_client_generate_result_t res;
 *   if (nne_client_generate(cli, &req, on_step, NULL, &res, &err) == 0)
 *     ... res.rows[0].text, res.rows[0].finish_reason, res.timing ...
 *   nne_client_generate_result_free(&res);
 *
 * An intervention runs at each step: a graph as a trace's (see "traces"
 * below) whose nodes may run only at some steps (nnsight's tracer.iter):
 *
 *   nne_client_igraph_t *ig = nne_client_igraph_new();
 *   int r = nne_client_igraph_read(ig, "layers.1.resid_post",
 *                                  NNE_CLIENT_INVOKE_ALL);
 *   int s = nne_client_igraph_save(ig, r, "resid");
 *   nne_client_igraph_steps(ig, r, 1, 3);          // tracer.iter[1:3]
 *   nne_client_igraph_steps(ig, s, 1, 3);
 *   req.intervention = ig;
 *   if (nne_client_generate(cli, &req, on_step, NULL, &res, &err) == 0)
 *     ... nne_client_generate_result_saved_at(&res, "resid", 2) ...
 *   nne_client_generate_result_free(&res);
 *   nne_client_igraph_free(ig);
 *
 * The prompts run as one left-padded batch; each step adds one token to
 * every row that has not finished, and the daemon streams it as soon as it
 * exists: the callback sees each step once, in order, while the call is
 * still running. Then come the saved tensors, then the result. The daemon
 * checks the request and names the bad field (INVALID_ARGUMENT
 * "max_new_tokens: ..."); the library only refuses what cannot go on the
 * wire and the bounds below that the proto states. */

/* Bounds of a Generate request (inference.proto): stop ids, stop strings
 * and the bytes of one (without the NUL), alternatives per token, and the
 * longest stop string a result row reports (bytes, NUL included). */
#define NNE_CLIENT_MAX_STOP_TOKENS 64
#define NNE_CLIENT_MAX_STOP_STRINGS 16
#define NNE_CLIENT_STOP_STRING_MAX 256
#define NNE_CLIENT_MAX_ALTERNATIVES 100
#define NNE_CLIENT_STOP_MAX 257

/* How the next token is chosen; all zero: greedy (argmax). */
typedef struct nne_client_sampling {
  float temperature; /* 0 = greedy; else logits / temperature (at most 100) */
  uint32_t top_k;    /* keep the k most likely; 0 = all */
  float top_p;       /* nucleus mass; 0 or 1 = all */
  bool has_seed;     /* false: the daemon draws one (result.seed) */
  uint64_t seed;     /* each row draws from its own generator seeded so */
  float repetition_penalty; /* CTRL's; 0 or 1 = off; at most 10 */
} nne_client_sampling_t;

/* A Generate request. Everything is borrowed for the call. */
typedef struct nne_client_generate_req {
  const char *model;
  /* At most the model's max_batch rows, ids or text (as Forward's rows);
   * rows of different lengths are left-padded by the daemon. */
  const nne_client_token_row_t *prompts;
  size_t n_prompts;
  uint32_t max_new_tokens; /* 1 .. max_seq_len minus the longest prompt */
  nne_client_sampling_t sampling;
  /* A row stops after emitting one of these (at most
   * NNE_CLIENT_MAX_STOP_TOKENS), or the model's EOS unless ignore_eos. */
  const int64_t *stop_token_ids;
  size_t n_stop_token_ids;
  /* A row stops once its new text contains one of these (at most
   * NNE_CLIENT_MAX_STOP_STRINGS, each 1 to NNE_CLIENT_STOP_STRING_MAX bytes
   * of UTF-8); its text ends before it. */
  const char *const *stop_strings;
  size_t n_stop_strings;
  bool ignore_eos;
  /* Alternatives listed with each new token (the model's most likely, at
   * temperature 1): 0 to NNE_CLIENT_MAX_ALTERNATIVES. */
  uint32_t top_alternatives;
  /* Generate on this edit set (its edits apply at every step); NULL or ""
   * = the pristine model. Shorter than NNE_CLIENT_EDIT_SET_ID_MAX. */
  const char *edit_set;
  /* Sites saved at every step (any spelling, as Forward's save): each
   * comes back once per step as a tensor named "<site>@<step>"
   * ("layers.0.resid_post@3"), which must be shorter than
   * NNE_CLIENT_NAME_MAX bytes for the last step (checked here). */
  const char *const *save;
  size_t n_save;
  /* Recompute the whole sequence at every step instead of reusing the
   * model's key/value cache (for comparisons; the model info's kv_cache
   * says whether it has one). */
  bool cache_off;
  /* An intervention graph run at each step (NULL = none), built as a
   * trace's (nne_client_igraph_*; no ref nodes: Generate has no earlier
   * trace). Its reads see the step's values (step 0 the prompts'
   * positions, later steps the new token's), its writes replace them, and
   * read/write invokes must be NNE_CLIENT_INVOKE_ALL (the prompts are the
   * batch). A node runs at the steps nne_client_igraph_steps gave it, or
   * at every step; a node's inputs must run whenever it does (the daemon
   * checks, INVALID_ARGUMENT naming both nodes). Each save node's value
   * comes back once per step it runs at, as "<name>@<step>", which must be
   * shorter than NNE_CLIENT_NAME_MAX bytes for the last step (checked
   * here); save names differ from the `save` sites and the edit set's SAVE
   * names (the daemon checks). The graph is only read: one graph may serve
   * many concurrent calls. */
  const struct nne_client_igraph *intervention; /* nne_client_igraph_t */
} nne_client_generate_req_t;

/* One row's new token at one step, as the callback sees it. text and top
 * are borrowed: they live until the callback returns. */
typedef struct nne_client_gen_token {
  uint32_t row; /* the prompt's index in the request */
  int64_t token_id;
  /* What the token adds to the row's text: text_len bytes, then a NUL;
   * never NULL. A token that ends inside a UTF-8 character adds "" and the
   * character comes with the token that completes it, so the pieces of a
   * row, concatenated, are its text (up to a stop string). */
  const char *text;
  size_t text_len;
  float logprob; /* under the model's distribution (temperature 1) */
  const nne_client_token_score_t *top; /* top_alternatives, best first */
  size_t n_top;
} nne_client_gen_token_t;

/* Called once per step with the step's tokens (n >= 1, one per row still
 * generating, at most one per row). Return 0 to go on; anything else stops
 * the generation: the library cancels the call (the daemon stops at its
 * next step) and nne_client_generate returns -NNE_CLIENT_CANCELLED. It
 * runs on the thread that called nne_client_generate, and must not call
 * nne_client_close on the client. */
typedef int (*nne_client_token_cb)(void *ctx, uint32_t step,
                                   const nne_client_gen_token_t *tokens,
                                   size_t n);

/* Why a row stopped; the numbers are the wire enum nnedit.v1.FinishReason. */
typedef enum nne_client_finish_reason {
  NNE_CLIENT_FINISH_UNSPECIFIED = 0,
  NNE_CLIENT_FINISH_LENGTH = 1,      /* max_new_tokens reached */
  NNE_CLIENT_FINISH_STOP_TOKEN = 2,  /* a stop id or EOS (the last id) */
  NNE_CLIENT_FINISH_STOP_STRING = 3, /* a stop string (row.stop) */
} nne_client_finish_reason_t;

/* "length", "stop_token", "stop_string"; "unspecified" for 0 and unknown
 * values. Static string. */
const char *nne_client_finish_reason_name(int reason);

/* One row's continuation. ids and text are allocated by the library and
 * freed with the result. */
typedef struct nne_client_generated_row {
  int64_t *ids; /* the new tokens (at most max_new_tokens) */
  size_t n_ids;
  char *text; /* their text up to a stop string: text_len bytes, then a
                 NUL; never NULL */
  size_t text_len;
  nne_client_finish_reason_t finish_reason;
  char stop[NNE_CLIENT_STOP_MAX]; /* the stop string that ended it, or "" */
  uint32_t prompt_tokens;
} nne_client_generated_row_t;

/* Where the time went, in milliseconds. */
typedef struct nne_client_generate_timing {
  double queue_ms;     /* waiting for an executor */
  double prefill_ms;   /* step 0 (and the backend, when built) */
  double decode_ms;    /* steps 1..n */
  double per_token_ms; /* decode_ms / (steps - 1) */
  double total_ms;
} nne_client_generate_timing_t;

/* A Generate result: rows[i] is the request's prompts[i]. Everything it
 * points to is allocated by the library and freed by
 * nne_client_generate_result_free. */
typedef struct nne_client_generate_result {
  nne_client_generated_row_t *rows;
  size_t n_rows;
  nne_client_generate_timing_t timing;
  uint32_t steps;          /* steps streamed (the callback's calls) */
  uint64_t seed;           /* the seed used: the request's, or drawn */
  bool kv_cache;           /* steps reused the key/value cache */
  uint64_t kv_cache_bytes; /* its size at the end */
  /* The saved tensors in the order they came, the result's `saved` list
   * (names are unique): "<site>@<step>" for step 0, 1, ... and, within a
   * step, the request's save order; among them, the intervention's save
   * nodes ("<name>@<step>", at the steps each ran) and an edit set's SAVE
   * edits ("<name>@<step>"). */
  nne_client_tensor_t *saved;
  size_t n_saved;
} nne_client_generate_result_t;

/* Inference/Generate into *out (caller's struct; free with
 * generate_result_free), calling cb (may be NULL) with ctx once per step
 * as the steps arrive. Checked here (INVALID_ARGUMENT naming the field,
 * and then cb is never called): NULL pointers, over-long names, more stop
 * ids or stop strings than the proto allows, an empty or over-long stop
 * string, top_alternatives over NNE_CLIENT_MAX_ALTERNATIVES, a saved
 * tensor's name over its bound, an intervention whose building failed
 * (nne_client_igraph_error's message). The stream is checked as it comes
 * (INTERNAL): steps numbered 0, 1, ... below max_new_tokens, each with at
 * most one token per row of the request and at most top_alternatives
 * alternatives per token; tensors only after the steps, each reassembled
 * into one buffer of at most opts.max_tensor_bytes: the request's saves
 * named "<save[i]>@<step>" in order, and among them the intervention's
 * saves ("<save node's name>@<step>", a step streamed) and, with an edit
 * set, its SAVE edits' (any name); then one result with
 * one row per prompt, each with as many ids as tokens streamed for it,
 * `steps` equal to the steps streamed, and `saved` listing exactly the
 * tensors that came. A callback's stop is CANCELLED; a failed call leaves
 * *out empty (the steps already passed to cb stay passed). The whole
 * generation is one call: opts.timeout_ms bounds it (DEADLINE_EXCEEDED). */
int nne_client_generate(nne_client_t *cli, const nne_client_generate_req_t *req,
                        nne_client_token_cb cb, void *ctx,
                        nne_client_generate_result_t *out,
                        nne_client_err_t *err);
void nne_client_generate_result_free(nne_client_generate_result_t *res);

/* The saved tensor of res named `name` ("layers.0.resid_post@3"), or
 * NULL. Borrowed: lives as long as res. */
const nne_client_tensor_t *
nne_client_generate_result_saved(const nne_client_generate_result_t *res,
                                 const char *name);
/* The same for site `site` (as the request spelled it), or an
 * intervention's save node named `site`, at step `step`. */
const nne_client_tensor_t *
nne_client_generate_result_saved_at(const nne_client_generate_result_t *res,
                                    const char *site, uint32_t step);

/* ---- edits (nnedit.v1.Edits) --------------------------------------------- */

/* An edit set is a batch of edits at sites of one model, applied at once
 * and named by an id that Forward (req.edit_set) runs on:
 *
 *   nne_client_dim_range_t head2 = {.dim = -1, .start = 32, .stop = 48};
 *   nne_client_edit_t e[2] = {
 *       {.site = "layers.0.self_attn.pattern", .op = NNE_CLIENT_EDIT_ZERO},
 *       {.site = "layers.3.resid_post", .op = NNE_CLIENT_EDIT_ADD,
 *        .tensor = &steer, .ranges = &head2, .n_ranges = 1},
 *   };
 *   nne_client_edit_set_info_t info;
 *   nne_client_edits_apply(cli, "gpt2-script", e, 2, "my label", &info, &err);
 *   req.edit_set = info.id;                    // then nne_client_forward
 *   nne_client_edits_drop(cli, info.id, NULL, NULL, &err);
 *
 * Apply is atomic: either every edit resolves and the backend compiles, or
 * nothing is created and the daemon's INVALID_ARGUMENT names the edit by
 * position ("edits[2]: ...") and says why. */

/* What an edit does to the value at its site; the numbers are the wire enum
 * nnedit.v1.EditOp. */
typedef enum nne_client_edit_op {
  NNE_CLIENT_EDIT_OP_UNSPECIFIED = 0,
  NNE_CLIENT_EDIT_SAVE = 1,    /* stream the value back (named `name`) */
  NNE_CLIENT_EDIT_REPLACE = 2, /* value := operand (broadcast) */
  NNE_CLIENT_EDIT_ADD = 3,     /* value += operand (steering) */
  NNE_CLIENT_EDIT_SCALE = 4,   /* value *= operand */
  NNE_CLIENT_EDIT_ZERO = 5,    /* value := 0 */
} nne_client_edit_op_t;

/* "save", "replace", "add", "scale", "zero"; "unspecified" for 0 and
 * unknown values. Static string. */
const char *nne_client_edit_op_name(int op);
/* Parses those names (any letter case). INVALID_ARGUMENT for others. */
int nne_client_edit_op_parse(const char *name, nne_client_edit_op_t *out,
                             nne_client_err_t *err);

/* Indices [start, stop) of one dimension of the value. Negative dims and
 * indices count from the end (dim -1 is the last); stop 0 means "to the
 * end", so {dim 1, start -1, stop 0} is the last position. */
typedef struct nne_client_dim_range {
  int32_t dim;
  int64_t start;
  int64_t stop;
} nne_client_dim_range_t;

/* Most ranges one edit may carry (EditOp.ranges' bound), the most edits
 * one set may hold as this client reads it back, and the longest site and
 * save name (bytes, NUL included). */
#define NNE_CLIENT_MAX_RANGES 8
#define NNE_CLIENT_MAX_EDITS 65536
#define NNE_CLIENT_SITE_MAX 256
/* Sizes of the edit set strings below, NUL included (the proto's bounds). */
#define NNE_CLIENT_EDIT_SET_ID_MAX 64
#define NNE_CLIENT_LABEL_MAX 128
#define NNE_CLIENT_BACKEND_KEY_MAX 64

/* One edit of an Apply request. Everything is borrowed for the call. The
 * operand of REPLACE, ADD and SCALE is either `tensor` (broadcastable to the
 * selected region, of the value's dtype) or, with use_scalar, `scalar`;
 * SAVE and ZERO take none. A tensor received from the daemon (a saved
 * value, say) can be passed as is: its name is ignored. Its bytes are read
 * straight from tensor->data while the request is encoded (no copy of
 * ours in between). */
typedef struct nne_client_edit {
  /* Any spelling of a site: "layers.0.self_attn.pattern",
   * "layers.0.self_attn:aten::softmax#0", "transformer.h.3.output",
   * "blocks.3.hook_resid_post", a user alias + ".output". Shorter than
   * NNE_CLIENT_SITE_MAX bytes. */
  const char *site;
  nne_client_edit_op_t op;
  const nne_client_tensor_t *tensor; /* NULL: none */
  bool use_scalar;                   /* the operand is `scalar` */
  double scalar;
  /* At most NNE_CLIENT_MAX_RANGES, at most one per dimension (the daemon
   * checks them against the value's shape). NULL / 0: the whole value. */
  const nne_client_dim_range_t *ranges;
  size_t n_ranges;
  /* SAVE: the name the value streams back under; NULL or "" = the site.
   * Shorter than NNE_CLIENT_NAME_MAX bytes. */
  const char *name;
} nne_client_edit_t;

/* An edit set as the daemon reports it. Plain data: nothing to free. */
typedef struct nne_client_edit_set_info {
  char id[NNE_CLIENT_EDIT_SET_ID_MAX]; /* "es-3f2a..." */
  char model[NNE_CLIENT_MODEL_NAME_MAX];
  char label[NNE_CLIENT_LABEL_MAX]; /* the client's, for listing */
  uint32_t edit_count;
  /* A digest of the edits' structure (sites and kinds, not values): sets
   * with equal keys share one compiled backend. */
  char backend_key[NNE_CLIENT_BACKEND_KEY_MAX];
  uint64_t backend_bytes; /* what the backend holds beyond the weights */
  double compile_ms;      /* 0 when the backend came from the cache */
  bool cache_hit;
  int64_t created_unix_ms;
  uint32_t in_flight;    /* calls running on it now */
  uint64_t tensor_bytes; /* the edits' own tensors */
} nne_client_edit_set_info_t;

/* Edits/Apply: creates an edit set on `model` (loaded) from edits[0..n-1]
 * with an optional `label` (NULL = none; shorter than NNE_CLIENT_LABEL_MAX
 * bytes) and fills *out (caller's struct, zeroed on entry). Checked here,
 * as INVALID_ARGUMENT naming the edit ("edits[2].site: ..."): what cannot
 * be put on the wire (NULL or over-long strings, more than
 * NNE_CLIENT_MAX_RANGES ranges, more than NNE_CLIENT_MAX_EDITS edits) and
 * a tensor whose dtype, shape and nbytes disagree, or that comes with
 * use_scalar. Everything else (sites, ranges against shapes, operand
 * shapes and dtypes, ops and operands that do not go together) is the
 * daemon's to check. */
int nne_client_edits_apply(nne_client_t *cli, const char *model,
                           const nne_client_edit_t *edits, size_t n,
                           const char *label, nne_client_edit_set_info_t *out,
                           nne_client_err_t *err);

/* Most edit sets a List reply may carry. */
#define NNE_CLIENT_MAX_EDIT_SETS 65536

/* The edit sets of one model or of all. `sets` (n_sets entries) is
 * allocated by the library and freed by nne_client_edit_set_list_free. */
typedef struct nne_client_edit_set_list {
  nne_client_edit_set_info_t *sets;
  size_t n_sets;
} nne_client_edit_set_list_t;

/* Edits/List of `model`'s edit sets (NULL or "" = every model's) into *out
 * (caller's struct; free with edit_set_list_free). */
int nne_client_edits_list(nne_client_t *cli, const char *model,
                          nne_client_edit_set_list_t *out,
                          nne_client_err_t *err);
void nne_client_edit_set_list_free(nne_client_edit_set_list_t *list);

/* One edit as the daemon resolved it. The strings point into the
 * nne_client_edit_set_t that holds the edit and live as long as it; none
 * is NULL ("" when the daemon sent nothing). */
typedef struct nne_client_resolved_edit {
  uint32_t index;        /* position in the Apply request (< edit_count) */
  const char *site;      /* as given */
  const char *canonical; /* "transformer.h.0.attn:aten::softmax#0" */
  const char *instance;  /* the module instance it lives in */
  const char *node;      /* node selector ("aten::softmax#0") or "" */
  const char *standard;  /* the standard site name, if it is one */
  nne_client_edit_op_t op;
  /* The operand: a tensor's dtype and shape (dtype UNSPECIFIED: none), or
   * a scalar. */
  nne_client_dtype_t tensor_dtype;
  size_t tensor_ndim;
  int64_t tensor_shape[NNE_CLIENT_MAX_DIMS];
  bool use_scalar;
  double scalar;
  nne_client_dim_range_t ranges[NNE_CLIENT_MAX_RANGES];
  size_t n_ranges;
  uint32_t hook_id; /* the hook in the backend (edit tracker) */
  const char *name; /* SAVE: the tensor's name */
} nne_client_resolved_edit_t;

/* An edit set and its resolved edits. `edits` and the strings they point
 * to are allocated by the library and freed by nne_client_edit_set_free. */
typedef struct nne_client_edit_set {
  nne_client_edit_set_info_t info;
  nne_client_resolved_edit_t *edits; /* at most NNE_CLIENT_MAX_EDITS */
  size_t n_edits;
  char *strings; /* private: one block holding every string */
} nne_client_edit_set_t;

/* Edits/Get of edit set `id` into *out (caller's struct; free with
 * edit_set_free). An unknown id is the daemon's NOT_FOUND. */
int nne_client_edits_get(nne_client_t *cli, const char *id,
                         nne_client_edit_set_t *out, nne_client_err_t *err);
void nne_client_edit_set_free(nne_client_edit_set_t *set);

/* Edits/Drop of edit set `id`: forwards already running on it finish;
 * later ones get NOT_FOUND. *info (may be NULL; plain data) receives the
 * set as it was, *freed_bytes (may be NULL) the backend memory released
 * (0 while another set still shares the backend). Both are zeroed on
 * entry. */
int nne_client_edits_drop(nne_client_t *cli, const char *id,
                          nne_client_edit_set_info_t *info,
                          uint64_t *freed_bytes, nne_client_err_t *err);

/* ---- graph inspection (Models/Graph) ------------------------------------- */

/* What a graph node is; the numbers are the wire enum nnedit.v1.NodeKind. */
typedef enum nne_client_node_kind {
  NNE_CLIENT_NODE_KIND_UNSPECIFIED = 0,
  NNE_CLIENT_NODE_HOOK = 1,      /* a hook an edit inserted */
  NNE_CLIENT_NODE_CALL = 2,      /* a call of a submodule */
  NNE_CLIENT_NODE_OP = 3,        /* a tensor operation (aten::...) */
  NNE_CLIENT_NODE_CONSTANT = 4,  /* prim::Constant */
  NNE_CLIENT_NODE_ATTRIBUTE = 5, /* prim::GetAttr (weights, submodules) */
  NNE_CLIENT_NODE_OTHER = 6,     /* lists, tuples, control flow */
} nne_client_node_kind_t;

/* "hook", "call", "op", "constant", "attribute", "other"; "unspecified"
 * for 0 and unknown values. Static string. */
const char *nne_client_node_kind_name(int kind);

/* Bounds of a Graph reply: nodes, input and output names of one node and
 * of the whole graph, one value name (bytes, NUL included), and the text
 * rendering (bytes). A GPT-2-small block inlined has a few hundred nodes;
 * a million leaves room for the largest models while capping what a reply
 * can make the client allocate. */
#define NNE_CLIENT_MAX_GRAPH_NODES 1000000
#define NNE_CLIENT_MAX_NODE_VALUES 65536
#define NNE_CLIENT_MAX_GRAPH_VALUES (4 * NNE_CLIENT_MAX_GRAPH_NODES)
#define NNE_CLIENT_VALUE_NAME_MAX 1024
#define NNE_CLIENT_MAX_GRAPH_TEXT ((size_t)64 << 20)

/* One node of a module's forward graph, in graph order. Strings and
 * string lists point into the nne_client_graph_t that holds the node and
 * live as long as it; none is NULL. */
typedef struct nne_client_graph_node {
  uint32_t index; /* position in graph order */
  const char *op; /* "aten::softmax", "prim::CallMethod", ... */
  nne_client_node_kind_t kind;
  const char *const *inputs; /* value names ("%x.3") */
  size_t n_inputs;
  const char *const *outputs;
  size_t n_outputs;
  const char *instance; /* the module instance whose code this is */
  /* What an edit would name to reach the node's value:
   * "transformer.h.0.attn:aten::softmax#0". */
  const char *selector;
  const char *source; /* one line of source, when known */
  const char *shape;  /* "[2, 4, 7, 7]" when known */
  bool inserted;      /* put there by an edit */
  uint32_t depth;     /* block nesting (0 = the graph's own block) */
  const char *callee; /* NODE_CALL: the submodule path */
} nne_client_graph_node_t;

/* A module's forward graph. Everything it points to is allocated by the
 * library and freed by nne_client_graph_free. */
typedef struct nne_client_graph {
  char module[NNE_CLIENT_MODULE_NAME_MAX]; /* raw path ("" = the root) */
  nne_client_graph_node_t *nodes;
  size_t n_nodes;
  char *text; /* TorchScript's own rendering, NUL-terminated ("" if none) */
  size_t text_len;
  bool edited;   /* the edit set's backend differs from the pristine code */
  char *strings; /* private: one block holding every node string */
  const char **values; /* private: the nodes' value names, back to back */
} nne_client_graph_t;

/* Models/Graph: the forward graph of `module` (any spelling; NULL or "" =
 * the root) of `model`, as the pristine model runs it, or, with `edit_set`
 * (NULL or "" = none), as that set's backend runs it, hook nodes included.
 * *out is the caller's struct; free with graph_free. A reply over the
 * bounds above is RESOURCE_EXHAUSTED. */
int nne_client_models_graph(nne_client_t *cli, const char *model,
                            const char *module, const char *edit_set,
                            nne_client_graph_t *out, nne_client_err_t *err);
void nne_client_graph_free(nne_client_graph_t *graph);

/* ---- admin (nnedit.v1.Admin) --------------------------------------------- */

/* One model's backend cache. Plain data. */
typedef struct nne_client_cache_stats {
  char model[NNE_CLIENT_MODEL_NAME_MAX];
  uint64_t hits;
  uint64_t misses;
  uint64_t entries;
  uint64_t bytes;          /* held by cached backends */
  uint64_t capacity_bytes; /* the bound (LRU eviction above it) */
  uint64_t evictions;
  double compile_ms_total;
  double compile_ms_last;
  uint32_t pinned; /* backends held by edit sets */
} nne_client_cache_stats_t;

/* The daemon's figures. `caches` (at most NNE_CLIENT_MAX_MODELS) is
 * allocated by the library and freed by nne_client_stats_free. */
typedef struct nne_client_stats {
  nne_client_cache_stats_t *caches;
  size_t n_caches;
  uint32_t queue_depth; /* compute jobs waiting */
  uint32_t queue_capacity;
  uint64_t calls_total;
  uint32_t live_calls;
  uint32_t edit_sets;
} nne_client_stats_t;

/* Admin/Stats into *out (caller's struct; free with stats_free). */
int nne_client_admin_stats(nne_client_t *cli, nne_client_stats_t *out,
                           nne_client_err_t *err);
void nne_client_stats_free(nne_client_stats_t *stats);

/* ---- traces (Inference/Trace) -------------------------------------------- */

/* A trace runs the model once on the rows of its invokes and, along the way,
 * reads, computes on, writes and saves values at sites: nnsight's `trace`
 * as a declarative program, an *intervention graph* whose semantics are in
 * the Trace section of proto/nnedit/v1/inference.proto. A graph is built
 * node by node; each call adds one node and returns its id, which later
 * nodes name as their input:
 *
 *   nne_client_igraph_t *g = nne_client_igraph_new();
 *   int r = nne_client_igraph_read(g, "layers.3.resid_post", 0);   // invoke 0
 *   int m = NNE_CLIENT_IGRAPH_CALL(g, "mul", nne_client_arg_node(r),
 *                                  nne_client_arg_scalar(2.0));
 *   nne_client_igraph_write(g, "layers.3.resid_post", m, 0, NULL, 0);
 *   nne_client_igraph_save(g, r, "resid3");
 *   int last = NNE_CLIENT_IGRAPH_INDEX(g, r, nne_client_idx(0),
 *                                      nne_client_idx_all(),
 *                                      nne_client_idx(-1));   // r[0, :, -1]
 *   nne_client_igraph_save(g, last, "resid3_last");
 *
 *   nne_client_token_row_t row = {.ids = ids, .n_ids = n_ids};
 *   nne_client_invoke_t inv = {.rows = &row, .n_rows = 1};
 *   nne_client_trace_t tr = {.name = "steer", .invokes = &inv,
 *                            .n_invokes = 1, .graph = g};
 *   nne_client_trace_req_t req = {.model = "gpt2-script", .traces = &tr,
 *                                 .n_traces = 1, .top_k = 5};
 *   nne_client_trace_results_t res;
 *   if (nne_client_trace(cli, &req, &res, &err) == 0) {
 *     const nne_client_tensor_t *x = nne_client_trace_results_saved(&res,
 *                                                                   "resid3");
 *     ... x->shape, x->data; res.traces[0].rows[0].top[0].token_id ...
 *   }
 *   nne_client_trace_results_free(&res);
 *   nne_client_igraph_free(g);
 *
 * Several traces in one request are a *session*: they run in order on one
 * executor slot, and a later trace reads what an earlier one saved through
 * nne_client_igraph_ref, with no round trip (activation patching: save the
 * clean run's value in trace 0, write it into the corrupted run in trace 1).
 *
 * Building never fails halfway: a call that cannot add its node (a NULL or
 * over-long string, more arguments than the wire holds, an input that is
 * not a node id) returns a negative status (-NNE_CLIENT_INVALID_ARGUMENT,
 * or -NNE_CLIENT_RESOURCE_EXHAUSTED when memory runs out) and records the
 * first such error in the graph. From then on every call returns that same
 * status and adds nothing, so a graph may be built without checking each
 * call: nne_client_igraph_error reports what went wrong, and
 * nne_client_trace refuses the graph with that message. An id returned by
 * a failed call (negative) passed to a later call is itself such an error.
 *
 * Only what cannot be put on the wire is checked while building. Whether
 * sites resolve, functions exist and take these arguments, the graph is
 * acyclic and each write's value is known when its site runs is the
 * daemon's to check: it answers INVALID_ARGUMENT naming the node id. */

/* The opaque graph builder. Not thread-safe while it is being built; once
 * built it may be used by any number of concurrent nne_client_trace calls
 * (they only read it). */
typedef struct nne_client_igraph nne_client_igraph_t;

/* Bounds of the wire form (inference.options), bytes with the NUL: a
 * function name, a keyword name, a trace name; and counts: arguments and
 * index items of one call, integers of one `ints` argument. Site, module,
 * save and ref names are at most NNE_CLIENT_SITE_MAX / NNE_CLIENT_NAME_MAX
 * bytes, ranges of one write at most NNE_CLIENT_MAX_RANGES. */
#define NNE_CLIENT_FN_MAX 32
#define NNE_CLIENT_ARG_NAME_MAX 32
#define NNE_CLIENT_TRACE_NAME_MAX 64
#define NNE_CLIENT_MAX_ARGS 16
#define NNE_CLIENT_MAX_INDEX_ITEMS 16
#define NNE_CLIENT_MAX_INTS 8
/* The largest node id (ids are returned as int). */
#define NNE_CLIENT_MAX_NODE_ID 0x7fffffff
/* A read or write without an invoke: the whole batch, every invoke's rows.
 * It goes on the wire as an unset `invoke` (the proto's default); any other
 * negative invoke is refused. */
#define NNE_CLIENT_INVOKE_ALL (-1)

/* A new, empty graph (NULL when memory runs out). Free it with
 * nne_client_igraph_free. */
nne_client_igraph_t *nne_client_igraph_new(void);
/* Frees the graph and everything it holds (its copies of constants). NULL
 * is a no-op. */
void nne_client_igraph_free(nne_client_igraph_t *g);

/* 0 when every call so far succeeded; else the first error's -code, with
 * *err (may be NULL) filled: its message names the call and the node
 * ("node 4 (call 'mul'): args[1]: ..."). */
int nne_client_igraph_error(const nne_client_igraph_t *g,
                            nne_client_err_t *err);
/* Number of nodes added. */
size_t nne_client_igraph_size(const nne_client_igraph_t *g);

/* Ids are given out in order: one more than the largest so far (the first
 * node is 1; 0 is never a node). This gives the next node `id` instead
 * (1..NNE_CLIENT_MAX_NODE_ID, not yet used), for a graph transcribed from
 * a file whose ids the daemon's messages should name. A later node may be
 * named as input before it is added; the daemon checks that it exists. */
int nne_client_igraph_next_id(nne_client_igraph_t *g, int id);

/* The value at `site` (any spelling, as in nne_client_edit_t; shorter
 * than NNE_CLIENT_SITE_MAX) for the rows of invoke `invoke` (its index in
 * the trace's invokes), or NNE_CLIENT_INVOKE_ALL for the whole batch.
 * Returns the node's id. The string is copied. */
int nne_client_igraph_read(nne_client_igraph_t *g, const char *site,
                           int invoke);

/* Replaces the value at `site` with node `value`'s value, only in the rows
 * of `invoke` (NNE_CLIENT_INVOKE_ALL: every row) and, with ranges
 * (n_ranges <= NNE_CLIENT_MAX_RANGES; NULL/0 = all of it), only in those
 * index ranges of that part (dim 0 counts the invoke's rows). The value
 * must broadcast to the selected region. Returns the write node's id.
 * ranges is copied. */
int nne_client_igraph_write(nne_client_igraph_t *g, const char *site, int value,
                            int invoke, const nne_client_dim_range_t *ranges,
                            size_t n_ranges);

/* What an argument of a call is. */
typedef enum nne_client_arg_kind {
  NNE_CLIENT_ARG_NODE = 1,   /* another node's value */
  NNE_CLIENT_ARG_SCALAR = 2, /* a double */
  NNE_CLIENT_ARG_INT = 3,    /* an int64 (a dim, k, an index) */
  NNE_CLIENT_ARG_INTS = 4,   /* a list of int64 (dims, a shape) */
  NNE_CLIENT_ARG_BOOL = 5,   /* keepdim, ... */
  NNE_CLIENT_ARG_DTYPE = 6,  /* for "to" */
  NNE_CLIENT_ARG_MODULE = 7, /* for "module": the module to call */
} nne_client_arg_kind_t;

/* One argument of a call, by position or, with `name`, by keyword as in
 * PyTorch ("dim", "keepdim", "k"; shorter than NNE_CLIENT_ARG_NAME_MAX).
 * Make them with the nne_client_arg_* functions below; the pointers are
 * borrowed only until the call that adds the node returns (it copies). */
typedef struct nne_client_arg {
  nne_client_arg_kind_t kind;
  const char *name; /* NULL or "": positional */
  int node;
  double scalar;
  int64_t integer;
  const int64_t *ints; /* n_ints <= NNE_CLIENT_MAX_INTS */
  size_t n_ints;
  bool boolean;
  nne_client_dtype_t dtype;
  const char *module; /* any spelling; shorter than NNE_CLIENT_SITE_MAX */
} nne_client_arg_t;

nne_client_arg_t nne_client_arg_node(int id);
nne_client_arg_t nne_client_arg_scalar(double v);
nne_client_arg_t nne_client_arg_int(int64_t v);
nne_client_arg_t nne_client_arg_ints(const int64_t *v, size_t n);
nne_client_arg_t nne_client_arg_bool(bool v);
nne_client_arg_t nne_client_arg_dtype(nne_client_dtype_t dtype);
nne_client_arg_t nne_client_arg_module(const char *module);
/* `a` as the keyword argument `name` (borrowed like the rest). */
nne_client_arg_t nne_client_arg_kw(const char *name, nne_client_arg_t a);

/* What an item of an index expression is. */
typedef enum nne_client_index_kind {
  NNE_CLIENT_INDEX_INT = 1,      /* x[3], x[-1] */
  NNE_CLIENT_INDEX_SLICE = 2,    /* x[a:b:s], with either end open */
  NNE_CLIENT_INDEX_ELLIPSIS = 3, /* x[...] */
  NNE_CLIENT_INDEX_NEWAXIS = 4,  /* x[None] */
} nne_client_index_kind_t;

/* One item of an index expression, as in Python: x[0, :, -1] is
 * {idx(0), idx_all(), idx(-1)}. A slice's step 0 means 1. */
typedef struct nne_client_index_item {
  nne_client_index_kind_t kind;
  int64_t index;
  int64_t start, stop, step;
  bool has_start, has_stop; /* false: that end is open */
} nne_client_index_item_t;

nne_client_index_item_t nne_client_idx(int64_t i);
/* start:stop (both given). */
nne_client_index_item_t nne_client_idx_slice(int64_t start, int64_t stop);
/* Any slice: an end whose has_ flag is false is open. */
nne_client_index_item_t nne_client_idx_slice_ex(bool has_start, int64_t start,
                                                bool has_stop, int64_t stop,
                                                int64_t step);
nne_client_index_item_t nne_client_idx_all(void); /* : */
nne_client_index_item_t nne_client_idx_ellipsis(void);
nne_client_index_item_t nne_client_idx_newaxis(void);

/* A call of the whitelisted function `fn` ("add", "matmul", "softmax",
 * "mean", "index", "topk", "to", "module", ...: CallNode in the proto has
 * the list; shorter than NNE_CLIENT_FN_MAX) on args[0..n_args-1] (at most
 * NNE_CLIENT_MAX_ARGS) and, for "index", the index items
 * items[0..n_items-1] (at most NNE_CLIENT_MAX_INDEX_ITEMS). Returns the
 * node's id. Everything is copied. */
int nne_client_igraph_call(nne_client_igraph_t *g, const char *fn,
                           const nne_client_arg_t *args, size_t n_args,
                           const nne_client_index_item_t *items,
                           size_t n_items);

/* The same with the arguments (and items) as the macro's arguments:
 *   NNE_CLIENT_IGRAPH_CALL(g, "softmax", nne_client_arg_node(x),
 *                          nne_client_arg_kw("dim", nne_client_arg_int(-1)))
 *   NNE_CLIENT_IGRAPH_INDEX(g, x, nne_client_idx_ellipsis(),
 *                           nne_client_idx_slice(3, 5))    // x[..., 3:5] */
#define NNE_CLIENT_IGRAPH_CALL(g, fn, ...)                                     \
  nne_client_igraph_call((g), (fn), (const nne_client_arg_t[]){__VA_ARGS__},   \
                         sizeof((const nne_client_arg_t[]){__VA_ARGS__}) /     \
                             sizeof(nne_client_arg_t),                         \
                         NULL, 0)
#define NNE_CLIENT_IGRAPH_INDEX(g, node, ...)                                  \
  nne_client_igraph_call(                                                      \
      (g), "index", (const nne_client_arg_t[]){nne_client_arg_node(node)}, 1,  \
      (const nne_client_index_item_t[]){__VA_ARGS__},                          \
      sizeof((const nne_client_index_item_t[]){__VA_ARGS__}) /                 \
          sizeof(nne_client_index_item_t))

/* A constant: a copy of tensor t (its dtype, shape and nbytes must agree;
 * its name is ignored), which the graph owns from now on; or a scalar, a
 * 0-d float32 tensor. Each returns the node's id. */
int nne_client_igraph_const_tensor(nne_client_igraph_t *g,
                                   const nne_client_tensor_t *t);
int nne_client_igraph_const_scalar(nne_client_igraph_t *g, double v);

/* Streams node `value`'s value back under `name` (1 to NNE_CLIENT_NAME_MAX
 * - 1 bytes; unique in the request: later traces of the session refer to
 * it by this name). Returns the save node's id. */
int nne_client_igraph_save(nne_client_igraph_t *g, int value, const char *name);

/* The value an earlier trace of the same request saved as `name`. Returns
 * the node's id. */
int nne_client_igraph_ref(nne_client_igraph_t *g, const char *name);

/* For Generate's intervention (nne_client_generate_req_t.intervention):
 * node `node` (already added) runs only at steps [start, stop), stop
 * NNE_CLIENT_STEPS_END for "from step start on". A node without steps runs
 * at every step (nnsight's .all()). In nnsight's terms:
 *
 *   model.generate(...): ... with tracer.iter[1:3]:   start 1, stop 3
 *                            with tracer.iter[3:]:    start 3, STEPS_END
 *   the n-th .next() (one step, n from 0):            start n, stop n + 1
 *
 * Returns 0; refused (INVALID_ARGUMENT, recorded as the graph's error like
 * any failed call): a node that is not in the graph or has steps already,
 * stop not after start or over UINT32_MAX. Whether start comes before
 * max_new_tokens and every input of a node runs whenever it does is the
 * daemon's to check. The steps go on the wire as GenerateRequest.steps;
 * nne_client_trace refuses a graph that has any (a trace has no steps). */
#define NNE_CLIENT_STEPS_END (-1)
int nne_client_igraph_steps(nne_client_igraph_t *g, int node, uint32_t start,
                            int64_t stop);
/* The steps node `node` was given: 1 with *start and *stop (as given to
 * nne_client_igraph_steps), 0 when it runs at every step (*start 0, *stop
 * NNE_CLIENT_STEPS_END), -NNE_CLIENT_NOT_FOUND when g has no such node. */
int nne_client_igraph_get_steps(const nne_client_igraph_t *g, int node,
                                uint32_t *start, int64_t *stop);

/* One batch group of a trace: its rows are contiguous in the forward's
 * batch, in the order of the invokes. Borrowed for the call. */
typedef struct nne_client_invoke {
  const nne_client_token_row_t *rows;
  size_t n_rows;
  const nne_client_mask_row_t *mask; /* NULL / n_mask 0: no mask */
  size_t n_mask;
} nne_client_invoke_t;

/* One trace of a request. Borrowed for the call. */
typedef struct nne_client_trace {
  /* A label for results ("clean", "patched"); NULL or "" = none. Shorter
   * than NNE_CLIENT_TRACE_NAME_MAX. Its logits stream as "<name>/logits"
   * (an unnamed trace's as "<position>/logits", "0/logits"). */
  const char *name;
  const nne_client_invoke_t *invokes;
  size_t n_invokes;
  /* The intervention graph; NULL = none (a plain forward). One graph may
   * serve many traces and requests, but save names are unique in a
   * request, so a graph with saves serves one trace of a request. */
  const nne_client_igraph_t *graph;
} nne_client_trace_t;

/* A Trace request. Borrowed for the call. */
typedef struct nne_client_trace_req {
  const char *model;
  /* Run on this edit set (its edits apply first); NULL or "" = the
   * pristine model. */
  const char *edit_set;
  const nne_client_trace_t *traces; /* the daemon wants at least one */
  size_t n_traces;
  nne_client_padding_t padding; /* when rows differ in length */
  uint32_t top_k;               /* next-token top-k per row; 0 = none */
  nne_client_logits_t logits;   /* each trace's, as "<name>/logits" */
} nne_client_trace_req_t;

/* What one trace produced. rows, the logits and the saved tensors are
 * allocated by the library and freed with the nne_client_trace_results_t
 * that holds them. */
typedef struct nne_client_trace_result {
  uint32_t trace; /* position in the request */
  char name[NNE_CLIENT_TRACE_NAME_MAX];
  uint32_t batch;
  uint32_t seq_len; /* padded length */
  /* At most the trace's rows, each with at most top_k scores. */
  nne_client_row_topk_t *rows;
  size_t n_rows;
  nne_client_timing_t timing;
  bool cache_hit;                               /* backend from the cache */
  char backend_key[NNE_CLIENT_BACKEND_KEY_MAX]; /* digest of the structure */
  bool has_logits; /* the request asked for logits and they arrived */
  nne_client_tensor_t logits;
  /* The saved tensors, one per save node of the trace, named by the save,
   * in the order the daemon streamed them (its result's `saved` list);
   * with an edit set, its SAVE edits' tensors too (at most
   * NNE_CLIENT_MAX_EDITS more). */
  nne_client_tensor_t *saved;
  size_t n_saved;
} nne_client_trace_result_t;

/* The results of a request: traces[i] is the request's traces[i].
 * Allocated by the library; freed by nne_client_trace_results_free. */
typedef struct nne_client_trace_results {
  nne_client_trace_result_t *traces;
  size_t n_traces;
} nne_client_trace_results_t;

/* Inference/Trace into *out (caller's struct; free with
 * trace_results_free). Checked here, INVALID_ARGUMENT naming the place
 * ("traces[1].invokes[0].rows[2]: ..."): what cannot be put on the wire, a
 * graph with a build error or with steps (nne_client_igraph_steps, which
 * only Generate runs), and a save name used twice in the request
 * (tensors are told apart by name). The daemon checks the rest and names
 * the trace and node. The tensors of each trace arrive (in chunks, each
 * reassembled into one buffer of at most opts.max_tensor_bytes) before its
 * result. Each must be a save of that trace not yet received, its logits,
 * or (with an edit set) one of the set's saves; the result must come after
 * every save of its trace and list exactly the tensors that came, in
 * order (the logits may be left out). Anything else is INTERNAL. A failed
 * call leaves *out empty: the results of earlier traces are not kept. */
int nne_client_trace(nne_client_t *cli, const nne_client_trace_req_t *req,
                     nne_client_trace_results_t *out, nne_client_err_t *err);
void nne_client_trace_results_free(nne_client_trace_results_t *res);

/* The saved tensor named `name` of any trace of res (save names are unique
 * in a request), or NULL. Borrowed: lives as long as res. */
const nne_client_tensor_t *
nne_client_trace_results_saved(const nne_client_trace_results_t *res,
                               const char *name);

#ifdef __cplusplus
}
#endif

#endif /* NNEDIT_H */
