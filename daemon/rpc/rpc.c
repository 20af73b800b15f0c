/* rpc.c — helpers shared by the RPC handlers (see rpc.h). */
#include <stdio.h>

#include "rpc/rpc.h"

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
