/* rpc.h — the RPC handlers: one per method, and the method table the server
 * is started with.
 *
 * A handler runs on the loop thread with the call and its request message
 * (borrowed). It decodes and checks everything the client sent, then hands
 * the work to daemon/infer or daemon/edit (or answers from the daemon's
 * state at once) and replies — on the spot or from a job's done callback.
 * Every failure is a status whose message names the bad field. The daemon
 * (daemon.h) is nne_call_app(call).
 *
 * One file per service: models.c, forward.c, trace.c, text.c (Tokenize,
 * Detokenize), edits.c, admin.c, health.c; rpc.c holds the table and the
 * decode helper.
 */
#ifndef NNE_RPC_H
#define NNE_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/byte_buffer.h>

#include "daemon.h"
#include "edit/apply.h"
#include "edit/store.h"
#include "nne_pb.h"
#include "server/call.h"
#include "trace/trace.h"

extern const nne_method_t nne_rpc_methods[];
extern const size_t nne_rpc_method_count;

void nne_rpc_models_list(nne_call_t *call, grpc_byte_buffer *req);
void nne_rpc_models_load(nne_call_t *call, grpc_byte_buffer *req);
void nne_rpc_models_unload(nne_call_t *call, grpc_byte_buffer *req);
void nne_rpc_models_describe(nne_call_t *call, grpc_byte_buffer *req);
void nne_rpc_models_graph(nne_call_t *call, grpc_byte_buffer *req);
void nne_rpc_inference_forward(nne_call_t *call, grpc_byte_buffer *req);
void nne_rpc_inference_trace(nne_call_t *call, grpc_byte_buffer *req);
void nne_rpc_inference_tokenize(nne_call_t *call, grpc_byte_buffer *req);
void nne_rpc_inference_generate(nne_call_t *call, grpc_byte_buffer *req);
void nne_rpc_inference_detokenize(nne_call_t *call, grpc_byte_buffer *req);
void nne_rpc_edits_apply(nne_call_t *call, grpc_byte_buffer *req);
void nne_rpc_edits_list(nne_call_t *call, grpc_byte_buffer *req);
void nne_rpc_edits_get(nne_call_t *call, grpc_byte_buffer *req);
void nne_rpc_edits_drop(nne_call_t *call, grpc_byte_buffer *req);
void nne_rpc_admin_stats(nne_call_t *call, grpc_byte_buffer *req);
void nne_rpc_health_check(nne_call_t *call, grpc_byte_buffer *req);
void nne_rpc_health_watch(nne_call_t *call, grpc_byte_buffer *req);

/* Decodes an ApplyEditsRequest as Apply does (limits of cfg, the checks
 * that need no model) and frees it: the fuzz driver's way in. */
int nne_rpc_edits_decode(const nne_config_t *cfg, const uint8_t *buf,
                         size_t len, nne_err_t *err);

/* Decodes a TraceRequest as Trace does (traces, invokes with their rows
 * and texts, graph nodes with their constants, within cfg's limits) and
 * frees it; the checks that need the model are not run. For the fuzz
 * driver. */
/* A Trace message inside another request (Generate's intervention),
 * decoded as TraceRequest.traces are into the next trace of `sess`: point
 * the field's callback at nne_rpc_trace_in_cb with the decoder as arg.
 * nne_rpc_trace_in_err is our reason when the decode stopped (else
 * nanopb's); nne_rpc_trace_in_trace the trace and its invokes' count, or
 * NULL when the field was absent. Loop thread. */
typedef struct nne_rpc_trace_in nne_rpc_trace_in_t;
nne_rpc_trace_in_t *nne_rpc_trace_in_new(const nne_config_t *cfg,
                                         nne_trace_session_t *sess);
bool nne_rpc_trace_in_cb(pb_istream_t *s, const pb_field_t *f, void **arg);
const nne_err_t *nne_rpc_trace_in_err(const nne_rpc_trace_in_t *in);
nne_trace_t *nne_rpc_trace_in_trace(const nne_rpc_trace_in_t *in,
                                    size_t *n_invokes);
void nne_rpc_trace_in_free(nne_rpc_trace_in_t *in);

/* A ForwardRequest's / GenerateRequest's decode and the checks that need
 * no model, as the handlers do them (for the fuzz drivers). */
int nne_rpc_forward_decode(const nne_config_t *cfg, const uint8_t *buf,
                           size_t len, nne_err_t *err);
/* A TokenizeRequest's (detokenize false) or DetokenizeRequest's. */
int nne_rpc_text_decode(const nne_config_t *cfg, bool detokenize,
                        const uint8_t *buf, size_t len, nne_err_t *err);
int nne_rpc_generate_decode(const nne_config_t *cfg, const uint8_t *buf,
                            size_t len, nne_err_t *err);

int nne_rpc_trace_decode(const nne_config_t *cfg, const uint8_t *buf,
                         size_t len, nne_err_t *err);

/* Applies a kept ApplyEditsRequest (edit/store.h) again under its id and
 * creation time, for model (which the record must name); done and ctx as
 * for nne_apply_start, with no call. */
int nne_rpc_edits_restore(nne_daemon_t *d, const char *model,
                          const nne_edit_record_t *rec, nne_apply_done_fn done,
                          void *ctx, nne_err_t *err);

/* Decodes a request into msg; on failure fails the call with
 * INVALID_ARGUMENT (or RESOURCE_EXHAUSTED when a bound was hit) and returns
 * false. `overflow` (may be NULL) is a decode state's flag to consult. */
bool nne_rpc_decode(nne_call_t *call, grpc_byte_buffer *req,
                    const pb_msgdesc_t *fields, void *msg,
                    const bool *overflow);

/* The most top_k alternatives a Forward or Trace may ask for per position. */
#define NNE_TOP_K_MAX 1000

/* Checks the output options Forward and Trace share against the model: the
 * padding and logits enums (unknown values are INVALID_ARGUMENT naming the
 * field) and top_k (at most NNE_TOP_K_MAX and the vocabulary). The rows are
 * checked by the pipeline. */
int nne_rpc_check_options(int padding, int logits, uint32_t top_k,
                          const nne_model_entry_t *e, nne_err_t *err);

#endif /* NNE_RPC_H */
