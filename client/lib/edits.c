/* edits.c — nnedit.v1.Edits: Apply, List, Get, Drop. */
#include "internal.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nnedit/v1/edits.pb.h"

#define M_APPLY "/nnedit.v1.Edits/Apply"
#define M_LIST "/nnedit.v1.Edits/List"
#define M_GET "/nnedit.v1.Edits/Get"
#define M_DROP "/nnedit.v1.Edits/Drop"

_Static_assert(NNE__FIELD_SIZE(nnedit_v1_EditSetInfo, id) ==
                   NNE_CLIENT_EDIT_SET_ID_MAX,
               "EditSetInfo.id bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_EditSetInfo, model) ==
                   NNE_CLIENT_MODEL_NAME_MAX,
               "EditSetInfo.model bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_EditSetInfo, label) ==
                   NNE_CLIENT_LABEL_MAX,
               "EditSetInfo.label bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_EditSetInfo, backend_key) ==
                   NNE_CLIENT_BACKEND_KEY_MAX,
               "EditSetInfo.backend_key bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_ApplyEditsRequest, label) ==
                   NNE_CLIENT_LABEL_MAX,
               "ApplyEditsRequest.label bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_Edit, site) == NNE_CLIENT_SITE_MAX,
               "Edit.site bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_Edit, name) == NNE_CLIENT_NAME_MAX,
               "Edit.name bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_Edit, ranges) ==
                   NNE_CLIENT_MAX_RANGES * sizeof(nnedit_v1_DimRange),
               "Edit.ranges bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_ResolvedEdit, ranges) ==
                   NNE_CLIENT_MAX_RANGES * sizeof(nnedit_v1_DimRange),
               "ResolvedEdit.ranges bound");
_Static_assert(NNE__FIELD_SIZE(nnedit_v1_ResolvedEdit, tensor_shape) ==
                   NNE_CLIENT_MAX_DIMS * sizeof(int64_t),
               "ResolvedEdit.tensor_shape bound");
_Static_assert((int)nnedit_v1_EditOp_EDIT_OP_ZERO ==
                       (int)NNE_CLIENT_EDIT_ZERO &&
                   (int)nnedit_v1_EditOp_EDIT_OP_SAVE ==
                       (int)NNE_CLIENT_EDIT_SAVE,
               "EditOp numbers");

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
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "edit op: NULL argument");
  for (op = NNE_CLIENT_EDIT_SAVE; op <= NNE_CLIENT_EDIT_ZERO; op++)
    if (strcasecmp(name, nne_client_edit_op_name(op)) == 0) {
      *out = (nne_client_edit_op_t)op;
      return 0;
    }
  return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                      "unknown edit op '%.64s' (save, replace, add, scale, "
                      "zero)",
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

/* ---- Apply --------------------------------------------------------------- */

/* What cannot go on the wire, or is a caller's slip no daemon could mean
 * to accept (a tensor whose bytes disagree with its shape). */
static int apply_check_edit(const nne_client_edit_t *e, size_t i,
                            nne_client_err_t *err) {
  char what[64], why[128];

  if (e->site == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "edits_apply: edits[%zu].site is NULL", i);
  snprintf(what, sizeof what, "edits_apply: edits[%zu].site", i);
  if (nne__check_opt_str(what, e->site, NNE__FIELD_SIZE(nnedit_v1_Edit, site),
                         err) < 0)
    return -NNE_CLIENT_INVALID_ARGUMENT;
  snprintf(what, sizeof what, "edits_apply: edits[%zu].name", i);
  if (nne__check_opt_str(what, e->name, NNE__FIELD_SIZE(nnedit_v1_Edit, name),
                         err) < 0)
    return -NNE_CLIENT_INVALID_ARGUMENT;
  if (e->n_ranges > NNE_CLIENT_MAX_RANGES)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "edits_apply: edits[%zu].ranges: %zu ranges, more "
                        "than %d",
                        i, e->n_ranges, NNE_CLIENT_MAX_RANGES);
  if (e->n_ranges > 0 && e->ranges == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "edits_apply: edits[%zu].ranges is NULL with "
                        "n_ranges %zu",
                        i, e->n_ranges);
  if (e->tensor == NULL)
    return 0;
  if (e->use_scalar)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "edits_apply: edits[%zu]: both a tensor and "
                        "use_scalar (one operand)",
                        i);
  if (!nne__tensor_check(e->tensor, why, sizeof why))
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "edits_apply: edits[%zu].tensor: %s", i, why);
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

  nne__copy_str(m->site, sizeof m->site, e->site);
  m->op = (nnedit_v1_EditOp)e->op;
  if (e->use_scalar) {
    m->which_operand = nnedit_v1_Edit_scalar_tag;
    m->operand.scalar = e->scalar;
  } else if (e->tensor != NULL) {
    const nne_client_tensor_t *t = e->tensor;
    m->which_operand = nnedit_v1_Edit_tensor_tag;
    m->operand.tensor.dtype = (nnedit_v1_DType)t->dtype;
    m->operand.tensor.shape_count = (pb_size_t)t->ndim;
    memcpy(m->operand.tensor.shape, t->shape, t->ndim * sizeof t->shape[0]);
    a->data.p = t->data;
    a->data.n = t->nbytes;
    if (t->nbytes > 0)
      NNE_PB_ENC(m->operand.tensor.data, nne_pb_bytes_enc, &a->data);
  }
  m->ranges_count = (pb_size_t)e->n_ranges;
  for (k = 0; k < e->n_ranges; k++) {
    m->ranges[k].dim = e->ranges[k].dim;
    m->ranges[k].start = e->ranges[k].start;
    m->ranges[k].stop = e->ranges[k].stop;
  }
  nne__copy_str(m->name, sizeof m->name, e->name);
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
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "edits_apply: NULL argument");
  if ((rc = nne__check_name("edits_apply", model, sizeof req.model, err)) < 0)
    return rc;
  if ((rc = nne__check_opt_str("edits_apply: label", label, sizeof req.label,
                               err)) < 0)
    return rc;
  if (n > NNE_CLIENT_MAX_EDITS)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "edits_apply: %zu edits, more than %d (a set this "
                        "client could not read back)",
                        n, NNE_CLIENT_MAX_EDITS);
  for (i = 0; i < n; i++)
    if ((rc = apply_check_edit(&edits[i], i, err)) < 0)
      return rc;

  nne__copy_str(req.model, sizeof req.model, model);
  nne__copy_str(req.label, sizeof req.label, label);
  memset(&enc, 0, sizeof enc);
  enc.edits = edits;
  list = (nne_pb_list_enc_t){n, fill_edit, &enc, sizeof(nnedit_v1_Edit)};
  NNE_PB_ENC(req.edits, nne_pb_list_enc, &list);
  rc = nne__unary(cli, M_APPLY, nnedit_v1_ApplyEditsRequest_fields, &req,
                  nnedit_v1_ApplyEditsResponse_fields, &resp, NULL, err);
  if (rc < 0)
    return rc;
  if (!resp.has_edit_set || resp.edit_set.id[0] == '\0')
    return nne__err_set(err, NNE_CLIENT_INTERNAL,
                        "Edits/Apply: reply has no edit set id");
  set_info_from_pb(out, &resp.edit_set);
  return 0;
}

/* ---- List ---------------------------------------------------------------- */

static bool set_take(nne__rep_t *r, const void *msg, void *item, size_t i) {
  (void)r;
  (void)i;
  set_info_from_pb(item, msg);
  return true;
}

int nne_client_edits_list(nne_client_t *cli, const char *model,
                          nne_client_edit_set_list_t *out,
                          nne_client_err_t *err) {
  nnedit_v1_ListEditSetsRequest req = nnedit_v1_ListEditSetsRequest_init_zero;
  nnedit_v1_ListEditSetsResponse resp =
      nnedit_v1_ListEditSetsResponse_init_zero;
  nnedit_v1_EditSetInfo msg;
  nne__dec_t dec;
  nne__rep_t sets;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || out == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "edits_list: NULL argument");
  if ((rc = nne__check_opt_str("edits_list: model", model, sizeof req.model,
                               err)) < 0)
    return rc;
  nne__copy_str(req.model, sizeof req.model, model);
  memset(&dec, 0, sizeof dec);
  sets = (nne__rep_t){.items = (void **)&out->sets,
                      .n = &out->n_sets,
                      .item_size = sizeof *out->sets,
                      .max = NNE_CLIENT_MAX_EDIT_SETS,
                      .over_code = NNE_CLIENT_RESOURCE_EXHAUSTED,
                      .what = "edit_sets",
                      .noun = "edit sets",
                      .fields = nnedit_v1_EditSetInfo_fields,
                      .msg = &msg,
                      .msg_size = sizeof msg,
                      .take = set_take,
                      .dec = &dec};
  NNE_PB_DEC(resp.edit_sets, nne__rep_dec, &sets);
  rc = nne__unary(cli, M_LIST, nnedit_v1_ListEditSetsRequest_fields, &req,
                  nnedit_v1_ListEditSetsResponse_fields, &resp, &dec, err);
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

/* ---- Get ----------------------------------------------------------------- */

static const size_t resolved_strs[] = {
    offsetof(nne_client_resolved_edit_t, site),
    offsetof(nne_client_resolved_edit_t, canonical),
    offsetof(nne_client_resolved_edit_t, instance),
    offsetof(nne_client_resolved_edit_t, node),
    offsetof(nne_client_resolved_edit_t, standard),
    offsetof(nne_client_resolved_edit_t, name),
};
static const nne__layout_t resolved_layout = {resolved_strs, 6, NULL, 0};

typedef struct get_dec {
  nne__strs_t block;
  nne__rep_t edits;
  nnedit_v1_ResolvedEdit msg;
  nne__dec_t dec;
} get_dec_t;

static bool resolved_take(nne__rep_t *r, const void *msg, void *item,
                          size_t i) {
  get_dec_t *st = r->ctx;
  const nnedit_v1_ResolvedEdit *m = msg;
  nne_client_resolved_edit_t *e = item;
  size_t k;

  if (m->tensor_dtype != 0 && nne_client_dtype_size(m->tensor_dtype) == 0)
    return nne__dec_fail(&st->dec, NNE_CLIENT_INTERNAL,
                         "edits[%zu] ('%s'): unknown tensor dtype %d", i,
                         m->site, (int)m->tensor_dtype);
  if (!nne__strs_add(&st->block, m->site, &e->site) ||
      !nne__strs_add(&st->block, m->canonical, &e->canonical) ||
      !nne__strs_add(&st->block, m->instance, &e->instance) ||
      !nne__strs_add(&st->block, m->node, &e->node) ||
      !nne__strs_add(&st->block, m->standard, &e->standard) ||
      !nne__strs_add(&st->block, m->name, &e->name))
    return nne__dec_fail(&st->dec, NNE_CLIENT_RESOURCE_EXHAUSTED,
                         "out of memory");
  e->index = m->index;
  e->op = (nne_client_edit_op_t)m->op;
  e->tensor_dtype = (nne_client_dtype_t)m->tensor_dtype;
  /* Both arrays have the proto's bound (static asserts above). */
  e->tensor_ndim = m->tensor_shape_count;
  memcpy(e->tensor_shape, m->tensor_shape,
         m->tensor_shape_count * sizeof m->tensor_shape[0]);
  e->use_scalar = m->has_scalar;
  e->scalar = m->has_scalar ? m->scalar : 0;
  e->n_ranges = m->ranges_count;
  for (k = 0; k < m->ranges_count; k++) {
    e->ranges[k].dim = m->ranges[k].dim;
    e->ranges[k].start = m->ranges[k].start;
    e->ranges[k].stop = m->ranges[k].stop;
  }
  e->hook_id = m->hook_id;
  return true;
}

int nne_client_edits_get(nne_client_t *cli, const char *id,
                         nne_client_edit_set_t *out, nne_client_err_t *err) {
  nnedit_v1_GetEditSetRequest req = nnedit_v1_GetEditSetRequest_init_zero;
  nnedit_v1_GetEditSetResponse resp = nnedit_v1_GetEditSetResponse_init_zero;
  get_dec_t *st;
  size_t i;
  int rc;

  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (cli == NULL || out == NULL)
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "edits_get: NULL argument");
  if ((rc = nne__check_name("edits_get", id, sizeof req.id, err)) < 0)
    return rc;
  nne__copy_str(req.id, sizeof req.id, id);
  if ((st = calloc(1, sizeof *st)) == NULL)
    return nne__err_set(err, NNE_CLIENT_RESOURCE_EXHAUSTED,
                        "edits_get: out of memory");
  st->edits = (nne__rep_t){.items = (void **)&out->edits,
                           .n = &out->n_edits,
                           .item_size = sizeof *out->edits,
                           .max = NNE_CLIENT_MAX_EDITS,
                           .over_code = NNE_CLIENT_RESOURCE_EXHAUSTED,
                           .what = "edits",
                           .noun = "edits",
                           .fields = nnedit_v1_ResolvedEdit_fields,
                           .msg = &st->msg,
                           .msg_size = sizeof st->msg,
                           .take = resolved_take,
                           .ctx = st,
                           .dec = &st->dec};
  NNE_PB_DEC(resp.edits, nne__rep_dec, &st->edits);
  rc = nne__unary(cli, M_GET, nnedit_v1_GetEditSetRequest_fields, &req,
                  nnedit_v1_GetEditSetResponse_fields, &resp, &st->dec, err);
  if (rc == 0 && !resp.has_edit_set)
    rc = nne__err_set(err, NNE_CLIENT_INTERNAL,
                      "Edits/Get: reply has no edit set");
  if (rc == 0) {
    set_info_from_pb(&out->info, &resp.edit_set);
    /* Callers may index their own request by it. */
    for (i = 0; i < out->n_edits && rc == 0; i++)
      if (out->edits[i].index >= out->info.edit_count)
        rc = nne__err_set(err, NNE_CLIENT_INTERNAL,
                          "Edits/Get: edits[%zu] has index %" PRIu32
                          " in a set of %" PRIu32 " edits",
                          i, out->edits[i].index, out->info.edit_count);
  }
  if (rc == 0) {
    /* The block stops moving here: it becomes the set's. */
    out->strings = st->block.p;
    st->block.p = NULL;
    nne__fix(out->edits, out->n_edits, sizeof *out->edits, &resolved_layout,
             out->strings, NULL);
  }
  free(st->block.p);
  free(st);
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

/* ---- Drop ---------------------------------------------------------------- */

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
    return nne__err_set(err, NNE_CLIENT_INVALID_ARGUMENT,
                        "edits_drop: NULL client");
  if ((rc = nne__check_name("edits_drop", id, sizeof req.id, err)) < 0)
    return rc;
  nne__copy_str(req.id, sizeof req.id, id);
  rc = nne__unary(cli, M_DROP, nnedit_v1_DropEditSetRequest_fields, &req,
                  nnedit_v1_DropEditSetResponse_fields, &resp, NULL, err);
  if (rc < 0)
    return rc;
  if (info != NULL && resp.has_edit_set)
    set_info_from_pb(info, &resp.edit_set);
  if (freed_bytes != NULL)
    *freed_bytes = resp.freed_bytes;
  return 0;
}
