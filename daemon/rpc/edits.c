/* edits.c — nnedit.v1.Edits: Apply, List, Get, Drop.
 *
 * Apply decodes each edit (its tensor into memory bounded by the message
 * limit: the operand is a oneof, so a message callback run just before the
 * tensor member is decoded points its bytes there) into a plain
 * description and hands the batch to edit/apply.h,
 * which checks, compiles, probes and creates the set atomically; this file
 * encodes the reply. List, Get and Drop answer from the editor's sets.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>

#include "edit/apply.h"
#include "edit/editor.h"
#include "edit/inspect.h"
#include "edit/store.h"
#include "base/log.h"
#include "base/vec.h"
#include "nnedit/v1/edits.pb.h"
#include "rpc/rpc.h"

/* ---- decoding ------------------------------------------------------------- */

typedef struct edit_in {
  nnedit_v1_Edit pb;
  uint8_t *data; /* the tensor's bytes (heap) */
  size_t data_len;
} edit_in_t;

typedef struct edits_dec {
  edit_in_t *v;
  size_t n, cap, max;
  size_t bytes_left;   /* tensor bytes still allowed in this request */
  bool too_many, too_big;
} edits_dec_t;

typedef struct data_state {
  edits_dec_t *ed;
  edit_in_t *ei;
} data_state_t;

/* Tensor.data into a fresh buffer, within the request's byte allowance. */
static bool data_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  data_state_t *ds = *arg;
  size_t n = s->bytes_left;
  uint8_t *p;
  (void)f;
  if (n > ds->ed->bytes_left) {
    ds->ed->too_big = true;
    PB_RETURN_ERROR(s, "edit tensors exceed the request's limit");
  }
  p = malloc(n ? n : 1);
  if (p == NULL)
    PB_RETURN_ERROR(s, "out of memory");
  if (!pb_read(s, p, n)) {
    free(p);
    return false;
  }
  free(ds->ei->data);
  ds->ei->data = p;
  ds->ei->data_len = n;
  ds->ed->bytes_left -= n;
  return true;
}

/* Edit.operand: just before its tensor member is decoded (nanopb has
 * zeroed the member), its bytes go to data_dec. */
static bool operand_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  (void)s;
  if (f->tag == nnedit_v1_Edit_tensor_tag)
    NNE_PB_DEC(((nnedit_v1_Tensor *)f->pData)->data, data_dec, *arg);
  return true;
}

static bool edit_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  edits_dec_t *ed = *arg;
  edit_in_t *ei;
  data_state_t ds;
  (void)f;
  if (ed->n >= ed->max) {
    ed->too_many = true;
    PB_RETURN_ERROR(s, "too many edits");
  }
  if (NNE_VEC_GROW(&ed->v, &ed->cap, ed->n + 1) != 0)
    PB_RETURN_ERROR(s, "out of memory");
  ei = &ed->v[ed->n];
  memset(ei, 0, sizeof *ei);
  ds.ed = ed;
  ds.ei = ei;
  NNE_PB_DEC(ei->pb.cb_operand, operand_dec, &ds);
  ed->n++; /* counted now so that a failure below still frees its data */
  return pb_decode(s, nnedit_v1_Edit_fields, &ei->pb);
}

static void edits_dec_free(edits_dec_t *ed) {
  size_t i;
  for (i = 0; i < ed->n; i++)
    free(ed->v[i].data);
  free(ed->v);
  memset(ed, 0, sizeof *ed);
}

static bool fill_info_pb(nnedit_v1_EditSetInfo *o, const nne_edit_set_t *s) {
  snprintf(o->id, sizeof o->id, "%s", s->id);
  snprintf(o->model, sizeof o->model, "%s", s->entry->name);
  snprintf(o->label, sizeof o->label, "%s", s->label);
  o->edit_count = (uint32_t)s->n_edits;
  if (s->backend != NULL) {
    snprintf(o->backend_key, sizeof o->backend_key, "%s", s->backend->digest);
    o->backend_bytes = s->backend->bytes;
  }
  o->compile_ms = s->compile_ms;
  o->cache_hit = s->cache_hit;
  o->created_unix_ms = s->created_unix_ms;
  o->in_flight = (uint32_t)s->in_flight;
  o->tensor_bytes = s->tensor_bytes;
  return true;
}

/* ---- Apply ---------------------------------------------------------------- */

static void apply_replied(nne_call_t *call, void *ctx,
                          const nne_edit_set_t *set, const nne_err_t *err) {
  nnedit_v1_ApplyEditsResponse out = nnedit_v1_ApplyEditsResponse_init_zero;
  (void)ctx;
  if (set == NULL) {
    nne_call_fail_err(call, err);
    return;
  }
  out.has_edit_set = true;
  fill_info_pb(&out.edit_set, set);
  nne_call_reply(call, nnedit_v1_ApplyEditsResponse_fields, &out);
}

/* An ApplyEditsRequest decoded into the plain descriptions apply.h takes;
 * the specs borrow from it. */
typedef struct apply_req {
  nnedit_v1_ApplyEditsRequest in;
  edits_dec_t ed;
  nne_edit_spec_t *specs;
  nne_dim_range_t (*ranges)[NNE_EDIT_MAX_RANGES];
} apply_req_t;

static void apply_req_free(apply_req_t *r) {
  free(r->specs);
  free(r->ranges);
  edits_dec_free(&r->ed);
}

/* From the call's byte buffer, or (buf != NULL) from a kept record. */
static int apply_req_decode(apply_req_t *r, const nne_config_t *cfg,
                            grpc_byte_buffer *bb, const uint8_t *buf,
                            size_t len, nne_err_t *err) {
  char why[256] = "";
  size_t i, k;
  bool ok;

  memset(r, 0, sizeof *r);
  r->ed.max = cfg->max_edits;
  r->ed.bytes_left = cfg->max_message_bytes;
  NNE_PB_DEC(r->in.edits, edit_dec, &r->ed);
  if (buf != NULL) {
    pb_istream_t s = pb_istream_from_buffer(buf, len);
    ok = pb_decode(&s, nnedit_v1_ApplyEditsRequest_fields, &r->in);
    if (!ok)
      snprintf(why, sizeof why, "%s", PB_GET_ERROR(&s));
  } else {
    ok = nne_pb_decode_bb(bb, nnedit_v1_ApplyEditsRequest_fields, &r->in, why,
                          sizeof why);
  }
  if (!ok) {
    if (r->ed.too_many)
      return nne_err_set(err, NNE_EINVAL, "edits[%u]: more than %u edits in "
                         "one edit set (--max-edits)", cfg->max_edits,
                         cfg->max_edits);
    if (r->ed.too_big)
      return nne_err_set(err, NNE_ERESOURCE, "edits: tensors larger than the "
                         "message limit");
    return nne_err_set(err, NNE_EINVAL, "malformed ApplyEditsRequest: %s",
                       why);
  }
  if (!nne_pb_utf8_valid(r->in.label))
    /* Every List, Get and Drop response would carry it. */
    return nne_err_set(err, NNE_EINVAL, "label: not valid UTF-8");
  r->specs = calloc(r->ed.n ? r->ed.n : 1, sizeof *r->specs);
  r->ranges = calloc(r->ed.n ? r->ed.n : 1, sizeof *r->ranges);
  if (r->specs == NULL || r->ranges == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  for (i = 0; i < r->ed.n; i++) {
    const nnedit_v1_Edit *pb = &r->ed.v[i].pb;
    nne_edit_spec_t *sp = &r->specs[i];
    if (!nne_pb_utf8_valid(pb->name))
      /* Get echoes it, and a SAVE edit streams a tensor under it. */
      return nne_err_set(err, NNE_EINVAL, "edits[%zu].name: not valid UTF-8",
                         i);
    sp->site = pb->site;
    sp->op = (int)pb->op;
    sp->has_tensor = pb->which_operand == nnedit_v1_Edit_tensor_tag;
    sp->use_scalar = pb->which_operand == nnedit_v1_Edit_scalar_tag;
    if (sp->has_tensor) {
      sp->dtype = (nne_dtype_t)pb->operand.tensor.dtype;
      sp->shape = pb->operand.tensor.shape;
      sp->ndim = (int)pb->operand.tensor.shape_count;
      sp->data = r->ed.v[i].data;
      sp->data_len = r->ed.v[i].data_len;
    }
    if (sp->use_scalar)
      sp->scalar = pb->operand.scalar;
    for (k = 0; k < pb->ranges_count && k < NNE_EDIT_MAX_RANGES; k++) {
      r->ranges[i][k].dim = pb->ranges[k].dim;
      r->ranges[i][k].start = pb->ranges[k].start;
      r->ranges[i][k].stop = pb->ranges[k].stop;
    }
    sp->ranges = r->ranges[i];
    sp->n_ranges = pb->ranges_count;
    sp->name = pb->name;
  }
  return 0;
}

/* The request's bytes in one piece, for its record (--state-dir). */
static uint8_t *flatten(grpc_byte_buffer *bb, size_t *len) {
  grpc_byte_buffer_reader rd;
  grpc_slice sl;
  uint8_t *p;
  *len = 0;
  if (bb == NULL || !grpc_byte_buffer_reader_init(&rd, bb))
    return NULL;
  sl = grpc_byte_buffer_reader_readall(&rd);
  grpc_byte_buffer_reader_destroy(&rd);
  *len = GRPC_SLICE_LENGTH(sl);
  p = malloc(*len ? *len : 1);
  if (p != NULL)
    memcpy(p, GRPC_SLICE_START_PTR(sl), *len);
  grpc_slice_unref(sl);
  return p;
}

void nne_rpc_edits_apply(nne_call_t *call, grpc_byte_buffer *req) {
  nne_daemon_t *d = nne_call_app(call);
  nne_apply_opts_t opts;
  apply_req_t r;
  nne_err_t err;
  uint8_t *bytes = NULL;
  int rc;

  memset(&opts, 0, sizeof opts);
  rc = apply_req_decode(&r, d->cfg, req, NULL, 0, &err);
  if (rc == 0 && d->store.dir != NULL) {
    opts.record = bytes = flatten(req, &opts.record_len);
    if (bytes == NULL)
      rc = nne_err_set(&err, NNE_EINVAL, "edits: an empty request");
  }
  if (rc == 0) {
    nne_call_set_model(call, r.in.model);
    rc = nne_apply_start(d, call, r.in.model, r.in.label, r.specs, r.ed.n,
                         &opts, apply_replied, NULL, &err);
  }
  free(bytes);
  apply_req_free(&r);
  if (rc != 0)
    nne_call_fail_err(call, &err);
}

int nne_rpc_edits_decode(const nne_config_t *cfg, const uint8_t *buf,
                         size_t len, nne_err_t *err) {
  apply_req_t r;
  int rc = apply_req_decode(&r, cfg, NULL, buf, len, err);
  apply_req_free(&r);
  return rc;
}

int nne_rpc_edits_restore(nne_daemon_t *d, const char *model,
                          const nne_edit_record_t *rec, nne_apply_done_fn done,
                          void *ctx, nne_err_t *err) {
  nne_apply_opts_t opts;
  apply_req_t r;
  int rc;

  memset(&opts, 0, sizeof opts);
  opts.id = rec->id;
  opts.created_unix_ms = rec->created_unix_ms;
  rc = apply_req_decode(&r, d->cfg, NULL, rec->request, rec->request_len, err);
  if (rc == 0 && strcmp(r.in.model, model) != 0)
    rc = nne_err_set(err, NNE_EINVAL, "the record is for model '%s'",
                     r.in.model);
  if (rc == 0)
    rc = nne_apply_start(d, NULL, model, r.in.label, r.specs, r.ed.n, &opts,
                         done, ctx, err);
  apply_req_free(&r);
  return rc;
}

/* ---- List / Get / Drop ---------------------------------------------------- */

typedef struct list_ctx {
  nne_edit_set_t **sets;
  size_t n;
} list_ctx_t;

static bool fill_set(void *ctx, size_t i, void *msg) {
  list_ctx_t *lc = ctx;
  return fill_info_pb(msg, lc->sets[i]);
}

void nne_rpc_edits_list(nne_call_t *call, grpc_byte_buffer *req) {
  nne_daemon_t *d = nne_call_app(call);
  nnedit_v1_ListEditSetsRequest in = nnedit_v1_ListEditSetsRequest_init_zero;
  nnedit_v1_ListEditSetsResponse out = nnedit_v1_ListEditSetsResponse_init_zero;
  nne_pb_list_enc_t list;
  list_ctx_t lc;
  nne_edit_set_t *s;
  nne_model_entry_t *e = NULL;
  nne_err_t err;

  if (!nne_rpc_decode(call, req, nnedit_v1_ListEditSetsRequest_fields, &in,
                      NULL))
    return;
  if (in.model[0] != '\0' &&
      nne_registry_lookup(&d->registry, "model", in.model, &e, &err) != 0) {
    nne_call_fail_err(call, &err);
    return;
  }
  lc.n = 0;
  lc.sets = calloc(d->editor.count ? d->editor.count : 1, sizeof *lc.sets);
  if (lc.sets == NULL) {
    nne_call_fail(call, NNE_ENOMEM, "out of memory");
    return;
  }
  for (s = d->editor.sets; s != NULL; s = s->next)
    if (e == NULL || s->entry == e)
      lc.sets[lc.n++] = s;
  list.n = lc.n;
  list.fill = fill_set;
  list.ctx = &lc;
  list.msg_size = sizeof(nnedit_v1_EditSetInfo);
  NNE_PB_ENC(out.edit_sets, nne_pb_list_enc, &list);
  nne_call_reply(call, nnedit_v1_ListEditSetsResponse_fields, &out);
  free(lc.sets);
}

static bool fill_resolved(void *ctx, size_t i, void *msg) {
  const nne_edit_set_t *set = ctx;
  const nne_edit_t *e = &set->edits[i];
  nnedit_v1_ResolvedEdit *r = msg;
  const nne_module_info_t *mi = nne_inspect_module(set->entry,
                                                   (size_t)e->site.module);
  nne_dtype_t dt;
  int64_t shape[NNE_TENSOR_MAX_DIMS];
  int nd;
  size_t k;

  r->index = (uint32_t)i;
  snprintf(r->site, sizeof r->site, "%s", e->site_text);
  snprintf(r->canonical, sizeof r->canonical, "%s", e->site.canonical);
  snprintf(r->instance, sizeof r->instance, "%s", mi ? mi->path : "");
  if (e->site.kind == NNE_NAMES_SITE_NODE ||
      e->site.kind == NNE_NAMES_SITE_NODE_INPUT)
    snprintf(r->node, sizeof r->node, "%s#%d", e->site.node_kind,
             e->site.node_occurrence);
  snprintf(r->standard, sizeof r->standard, "%s", e->site.standard);
  r->op = (nnedit_v1_EditOp)e->op;
  nne_inspect_operand(e, &dt, shape, &nd);
  if (nd > 0 || dt != NNE_DTYPE_INVALID) {
    r->tensor_dtype = (nnedit_v1_DType)dt;
    r->tensor_shape_count = (pb_size_t)nd;
    for (k = 0; k < (size_t)nd && k < 8; k++)
      r->tensor_shape[k] = shape[k];
  }
  r->has_scalar = e->use_scalar;
  r->scalar = e->use_scalar ? e->scalar : 0;
  r->ranges_count = (pb_size_t)e->n_ranges;
  for (k = 0; k < e->n_ranges; k++) {
    r->ranges[k].dim = e->ranges[k].dim;
    r->ranges[k].start = e->ranges[k].start;
    r->ranges[k].stop = e->ranges[k].stop;
  }
  r->hook_id = (uint32_t)e->hook;
  snprintf(r->name, sizeof r->name, "%s", e->op == NNE_EDIT_SAVE ? e->name : "");
  return true;
}

void nne_rpc_edits_get(nne_call_t *call, grpc_byte_buffer *req) {
  nne_daemon_t *d = nne_call_app(call);
  nnedit_v1_GetEditSetRequest in = nnedit_v1_GetEditSetRequest_init_zero;
  nnedit_v1_GetEditSetResponse out = nnedit_v1_GetEditSetResponse_init_zero;
  nne_pb_list_enc_t list;
  nne_edit_set_t *set;
  nne_err_t err;

  if (!nne_rpc_decode(call, req, nnedit_v1_GetEditSetRequest_fields, &in,
                      NULL))
    return;
  set = nne_editor_find(&d->editor, in.id);
  if (set == NULL) {
    nne_err_set(&err, NNE_ENOTFOUND, "id: no edit set '%s'", in.id);
    nne_call_fail_err(call, &err);
    return;
  }
  out.has_edit_set = true;
  fill_info_pb(&out.edit_set, set);
  list.n = set->n_edits;
  list.fill = fill_resolved;
  list.ctx = set;
  list.msg_size = sizeof(nnedit_v1_ResolvedEdit);
  NNE_PB_ENC(out.edits, nne_pb_list_enc, &list);
  nne_call_reply(call, nnedit_v1_GetEditSetResponse_fields, &out);
}

void nne_rpc_edits_drop(nne_call_t *call, grpc_byte_buffer *req) {
  nne_daemon_t *d = nne_call_app(call);
  nnedit_v1_DropEditSetRequest in = nnedit_v1_DropEditSetRequest_init_zero;
  nnedit_v1_DropEditSetResponse out = nnedit_v1_DropEditSetResponse_init_zero;
  nne_edit_set_t *set;
  nne_err_t err;

  if (!nne_rpc_decode(call, req, nnedit_v1_DropEditSetRequest_fields, &in,
                      NULL))
    return;
  set = nne_editor_find(&d->editor, in.id);
  if (set == NULL) {
    nne_err_set(&err, NNE_ENOTFOUND, "id: no edit set '%s'", in.id);
    nne_call_fail_err(call, &err);
    return;
  }
  out.has_edit_set = true;
  fill_info_pb(&out.edit_set, set);
  nne_log_info("edit set %s on %s dropped", set->id, set->entry->name);
  /* Its record goes first: a crash after the reply must not bring the set
   * back. A record that cannot be removed is logged, not fatal: the set is
   * gone either way for this run. */
  if (d->store.dir != NULL &&
      nne_edit_store_remove(&d->store, set->entry->name, set->id, &err) != 0)
    nne_log_warn("edit set %s: %s", set->id, err.msg);
  out.freed_bytes = nne_editor_drop(&d->editor, set);
  nne_call_reply(call, nnedit_v1_DropEditSetResponse_fields, &out);
}
