/* fuzz_other_requests.c — the requests of the RPCs without a driver of
 * their own, from raw bytes; the first byte picks the message:
 * Tokenize's and Detokenize's through the daemon's decode callbacks (texts
 * and pairs within one allowance, id rows; nne_rpc_text_decode), and the
 * fixed nanopb structs (Models' List/Load/Unload/Describe/Graph, Edits'
 * List/Get/Drop, Admin's Stats, health's Check) with their bounded strings.
 * The handlers' other checks need the daemon's state (a registry, edit
 * sets): the structure-aware gRPC fuzz test reaches those. */
#include <stddef.h>
#include <stdint.h>

#include <pb_decode.h>

#define NNE_FUZZ_WITH_CONFIG
#include "fuzz_util.h"
#include "grpc_health/v1/health.pb.h"
#include "nnedit/v1/admin.pb.h"
#include "nnedit/v1/edits.pb.h"
#include "nnedit/v1/models.pb.h"
#include "rpc/rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const pb_msgdesc_t *const fixed[] = {
      nnedit_v1_ListModelsRequest_fields,   nnedit_v1_LoadModelRequest_fields,
      nnedit_v1_UnloadModelRequest_fields,  nnedit_v1_DescribeModelRequest_fields,
      nnedit_v1_GraphRequest_fields,        nnedit_v1_ListEditSetsRequest_fields,
      nnedit_v1_GetEditSetRequest_fields,   nnedit_v1_DropEditSetRequest_fields,
      nnedit_v1_StatsRequest_fields,        grpc_health_v1_HealthCheckRequest_fields,
  };
  union {
    nnedit_v1_LoadModelRequest load;
    nnedit_v1_DescribeModelRequest describe;
    nnedit_v1_GraphRequest graph;
    nnedit_v1_GetEditSetRequest get;
    nnedit_v1_DropEditSetRequest drop;
    grpc_health_v1_HealthCheckRequest health;
    char bytes[16384];
  } msg;
  nne_err_t err;
  unsigned which;
  pb_istream_t s;

  if (size == 0)
    return 0;
  which = data[0] % (2 + sizeof fixed / sizeof fixed[0]);
  if (which < 2) {
    nne_rpc_text_decode(fuzz_small_config(), which == 1, data + 1, size - 1,
                        &err);
    return 0;
  }
  s = pb_istream_from_buffer(data + 1, size - 1);
  pb_decode(&s, fixed[which - 2], &msg);
  return 0;
}
