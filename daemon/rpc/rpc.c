/* rpc.c — the method table and the helpers shared by the handlers (rpc.h). */
#include <inttypes.h>
#include <stdio.h>

#include "nnedit/v1/inference.pb.h"
#include "rpc/rpc.h"
#include "server/auth.h"

/* The one authorization table too (server/auth.h): each method's role. */
const nne_method_t nne_rpc_methods[] = {
    {"/nnedit.v1.Models/List", nne_rpc_models_list, false, NNE_ROLE_INFER},
    {"/nnedit.v1.Models/Load", nne_rpc_models_load, false, NNE_ROLE_ADMIN},
    {"/nnedit.v1.Models/Unload", nne_rpc_models_unload, false, NNE_ROLE_ADMIN},
    {"/nnedit.v1.Models/Describe", nne_rpc_models_describe, false,
     NNE_ROLE_INFER},
    {"/nnedit.v1.Models/Graph", nne_rpc_models_graph, false, NNE_ROLE_INFER},
    {"/nnedit.v1.Inference/Forward", nne_rpc_inference_forward, false,
     NNE_ROLE_INFER},
    {"/nnedit.v1.Inference/Trace", nne_rpc_inference_trace, false,
     NNE_ROLE_INFER},
    {"/nnedit.v1.Inference/Tokenize", nne_rpc_inference_tokenize, false,
     NNE_ROLE_INFER},
    {"/nnedit.v1.Inference/Detokenize", nne_rpc_inference_detokenize, false,
     NNE_ROLE_INFER},
    {"/nnedit.v1.Inference/Generate", nne_rpc_inference_generate, false,
     NNE_ROLE_INFER},
    {"/nnedit.v1.Edits/Apply", nne_rpc_edits_apply, false, NNE_ROLE_EDIT},
    {"/nnedit.v1.Edits/List", nne_rpc_edits_list, false, NNE_ROLE_EDIT},
    {"/nnedit.v1.Edits/Get", nne_rpc_edits_get, false, NNE_ROLE_EDIT},
    {"/nnedit.v1.Edits/Drop", nne_rpc_edits_drop, false, NNE_ROLE_EDIT},
    {"/nnedit.v1.Admin/Stats", nne_rpc_admin_stats, false, NNE_ROLE_ADMIN},
    /* Probes must see the drain (NOT_SERVING), not a refusal. */
    {"/grpc.health.v1.Health/Check", nne_rpc_health_check, true, NNE_ROLE_NONE},
    {"/grpc.health.v1.Health/Watch", nne_rpc_health_watch, true, NNE_ROLE_NONE},
};
const size_t nne_rpc_method_count =
    sizeof nne_rpc_methods / sizeof nne_rpc_methods[0];

bool nne_rpc_decode(nne_call_t *call, grpc_byte_buffer *req,
                    const pb_msgdesc_t *fields, void *msg,
                    const bool *overflow) {
  char why[256];
  nne_err_t err;

  if (nne_pb_decode_bb(req, fields, msg, why, sizeof why))
    return true;
  if (overflow != NULL && *overflow)
    nne_err_set(&err, NNE_ERESOURCE, "request exceeds a limit: %s", why);
  else
    nne_err_set(&err, NNE_EINVAL, "malformed request message: %s", why);
  nne_call_fail_err(call, &err);
  return false;
}

int nne_rpc_check_options(int padding, int logits, uint32_t top_k,
                          const nne_model_entry_t *e, nne_err_t *err) {
  if (padding < nnedit_v1_Padding_PADDING_UNSPECIFIED ||
      padding > nnedit_v1_Padding_PADDING_RIGHT)
    return nne_err_set(err, NNE_EINVAL, "padding: unknown value %d", padding);
  if (logits < nnedit_v1_LogitsMode_LOGITS_MODE_UNSPECIFIED ||
      logits > nnedit_v1_LogitsMode_LOGITS_MODE_ALL)
    return nne_err_set(err, NNE_EINVAL, "logits: unknown value %d", logits);
  if (top_k > NNE_TOP_K_MAX)
    return nne_err_set(err, NNE_EINVAL, "top_k: %" PRIu32 " is more than %d",
                       top_k, NNE_TOP_K_MAX);
  if ((int64_t)top_k > e->vocab_size)
    return nne_err_set(err, NNE_EINVAL,
                       "top_k: %" PRIu32 " is more than the vocabulary (%" PRId64
                       ")",
                       top_k, e->vocab_size);
  return 0;
}
