/* rpc_edits.c — nnedit.v1.Edits: Apply, List, Get, Drop.
 *
 * Apply is atomic. On the loop: decode (each edit's tensor into memory
 * bounded by the message limit), check every field, resolve every site,
 * plan the backend (compiler.h). On the compute executor: build the backend
 * when the cache does not have it, then run two tiny probe forwards through
 * it to learn the shape of the value at every hooked site — which dimensions
 * are fixed (model width, heads) and which follow the input (batch,
 * positions) — and check each edit's ranges and operand against the fixed
 * ones (ranges on input-sized dimensions are checked when a forward runs).
 * Back on the loop: cache and pin the backend and create the set. Any
 * failure replies with the edit's position and reason, and leaves no trace.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "compiler.h"
#include "editor.h"
#include "base/log.h"
#include "nnedit/v1/edits.pb.h"
#include "rpc.h"

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

static bool edit_dec(pb_istream_t *s, const pb_field_t *f, void **arg) {
  edits_dec_t *ed = *arg;
  edit_in_t *ei;
  data_state_t ds;
  (void)f;
  if (ed->n >= ed->max) {
    ed->too_many = true;
    PB_RETURN_ERROR(s, "too many edits");
  }
  if (ed->n == ed->cap) {
    size_t cap = ed->cap ? 2 * ed->cap : 8;
    edit_in_t *nv = realloc(ed->v, cap * sizeof *nv);
    if (nv == NULL)
      PB_RETURN_ERROR(s, "out of memory");
    ed->v = nv;
    ed->cap = cap;
  }
  ei = &ed->v[ed->n];
  memset(ei, 0, sizeof *ei);
  ds.ed = ed;
  ds.ei = ei;
  NNE_PB_DEC(ei->pb.tensor.data, data_dec, &ds);
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

/* ---- the Apply job -------------------------------------------------------- */

#define PROBES 2

typedef struct probe_rec {
  int fired;
  int ndim;
  int64_t shape[NNE_TENSOR_MAX_DIMS];
  nne_dtype_t dtype;
} probe_rec_t;

typedef struct apply_job {
  nne_job_t job;
  nne_server_t *srv;
  nne_call_t *call;
  nne_edit_set_t *set;         /* being built; owned until added */
  bool hit;                    /* the cache had the backend when the request
                                  came (its entry may be gone by the time
                                  the job is done: looked up again then) */
  bool built;
  double build_ms;
  probe_rec_t *recs[PROBES];   /* per hook */
  int rc;
  nne_err_t err;
} apply_job_t;

static int probe_hook(void *ctx, int site, nne_tensor_t *value,
                      nne_tensor_t **replace) {
  probe_rec_t *recs = ctx;
  probe_rec_t *r = &recs[site];
  int i;
  (void)replace;
  if (r->fired++ > 0)
    return 0;
  r->ndim = nne_tensor_ndim(value);
  r->dtype = nne_tensor_dtype(value);
  for (i = 0; i < r->ndim && i < NNE_TENSOR_MAX_DIMS; i++)
    r->shape[i] = nne_tensor_shape(value)[i];
  return 0;
}

/* Checks one edit against the probes: the site ran, ranges name real
 * dimensions, and on the dimensions that do not follow the input the
 * ranges fit and the operand broadcasts. */
static int check_edit(apply_job_t *aj, size_t i, const nne_edit_t *e) {
  const probe_rec_t *a = &aj->recs[0][e->hook], *b = &aj->recs[1][e->hook];
  int64_t shape[NNE_TENSOR_MAX_DIMS];
  nne_dim_range_t fixed[NNE_EDIT_MAX_RANGES];
  size_t k, nf = 0;
  int d, nd = a->ndim;

  if (!a->fired || !b->fired)
    return nne_err_set(&aj->err, NNE_EINVAL,
                       "edits[%zu] (%s): the site did not run in a test "
                       "forward",
                       i, e->site_text);
  if (a->ndim != b->ndim)
    nd = a->ndim < b->ndim ? a->ndim : b->ndim;
  for (d = 0; d < nd; d++)
    shape[d] = a->shape[d];
  for (k = 0; k < e->n_ranges; k++) {
    int dim = e->ranges[k].dim < 0 ? e->ranges[k].dim + nd : e->ranges[k].dim;
    if (dim < 0 || dim >= nd)
      return nne_err_set(&aj->err, NNE_EINVAL,
                         "edits[%zu].ranges[%zu]: dim %d, but the value at "
                         "%s has %d dimensions",
                         i, k, e->ranges[k].dim, e->site_text, nd);
    if (a->shape[dim] == b->shape[dim])
      fixed[nf++] = e->ranges[k];
  }
  /* Dimensions that follow the input take the operand's size when it has
   * one there, so only fixed dimensions can fail here. */
  if (e->operand != NULL) {
    int on = nne_tensor_ndim(e->operand);
    const int64_t *os = nne_tensor_shape(e->operand);
    for (d = 0; d < nd; d++) {
      int od = d - (nd - on);
      if (a->shape[d] != b->shape[d] && od >= 0 && os[od] > 1) {
        bool ranged = false;
        for (k = 0; k < e->n_ranges; k++) {
          int dim = e->ranges[k].dim < 0 ? e->ranges[k].dim + nd
                                         : e->ranges[k].dim;
          ranged |= dim == d;
        }
        if (!ranged)
          shape[d] = os[od];
        else
          shape[d] = os[od] > shape[d] ? os[od] : shape[d];
      }
    }
  }
  if (e->operand != NULL) {
    nne_dtype_t od = nne_tensor_dtype(e->operand), vd = a->dtype;
    bool of = od == NNE_DTYPE_F32 || od == NNE_DTYPE_F64 ||
              od == NNE_DTYPE_F16 || od == NNE_DTYPE_BF16;
    bool vf = vd == NNE_DTYPE_F32 || vd == NNE_DTYPE_F64 ||
              vd == NNE_DTYPE_F16 || vd == NNE_DTYPE_BF16;
    /* Floating operands convert to a floating value's precision; anything
     * else must match exactly. */
    if (od != vd && !(of && vf))
      return nne_err_set(&aj->err, NNE_EINVAL,
                         "edits[%zu].tensor: a %s operand for the %s value at "
                         "%s",
                         i, nne_dtype_name(od), nne_dtype_name(vd),
                         e->site_text);
  }
  if (nne_edit_check(shape, nd, e->op, e->operand, fixed, nf, &aj->err) != 0) {
    nne_err_prefix(&aj->err, "edits[%zu] (%s)", i, e->site_text);
    return aj->err.code;
  }
  if (e->operand == NULL && e->use_scalar &&
      (e->op == NNE_EDIT_REPLACE || e->op == NNE_EDIT_ADD ||
       e->op == NNE_EDIT_SCALE)) {
    /* Whether the value's dtype can hold the scalar (1e300 in float32 cannot)
     * is libtorch's rule: apply the edit once to a one-element value of that
     * dtype, so that a scalar no forward could apply fails here, named,
     * instead of in every forward run on the set. */
    nne_tensor_t *one = NULL, *out = NULL;
    int rc = nne_tensor_from_host(a->dtype, NULL, 0, NULL, &one, &aj->err);
    if (rc == 0)
      rc = nne_tensor_apply_edit(one, e->op, NULL, e->scalar, NULL, 0, &out,
                                 &aj->err);
    nne_tensor_unref(one);
    nne_tensor_unref(out);
    if (rc != 0) {
      nne_err_prefix(&aj->err, "edits[%zu].scalar (%s)", i, e->site_text);
      return rc;
    }
  }
  return 0;
}

static void apply_work(nne_job_t *job) {
  apply_job_t *aj = (apply_job_t *)job;
  nne_edit_set_t *set = aj->set;
  static const int64_t probe_shapes[PROBES][2] = {{1, 2}, {2, 3}};
  int p;
  size_t i;

  aj->rc = 0;
  if (nne_call_cancelled(aj->call)) {
    aj->rc = nne_err_set(&aj->err, NNE_ECANCELED, "cancelled before it ran");
    return;
  }
  if (!aj->hit) {
    uint64_t t0 = nne_now_ns();
    aj->rc = nne_variant_build(set->model, set->plan.engine_sites,
                               set->plan.n_hooks, &set->variant, &aj->err);
    aj->build_ms = (double)(nne_now_ns() - t0) / 1e6;
    if (aj->rc != 0) {
      nne_err_prefix(&aj->err, "compiling the backend");
      return;
    }
    aj->built = true;
  }
  for (p = 0; p < PROBES && aj->rc == 0; p++) {
    int64_t n = probe_shapes[p][0] * probe_shapes[p][1], k;
    int64_t ids[6];
    nne_tensor_t *t = NULL, *logits = NULL;
    aj->recs[p] = calloc(set->plan.n_hooks + 1, sizeof *aj->recs[p]);
    if (aj->recs[p] == NULL) {
      aj->rc = nne_err_set(&aj->err, NNE_ENOMEM, "out of memory");
      break;
    }
    for (k = 0; k < n; k++)
      ids[k] = (k * 7 + 1) % (set->entry->vocab_size > 0
                                  ? set->entry->vocab_size
                                  : 1);
    aj->rc = nne_tensor_from_host(NNE_DTYPE_I64, probe_shapes[p], 2, ids, &t,
                                  &aj->err);
    if (aj->rc == 0)
      aj->rc = nne_variant_forward(set->variant, t, NULL, probe_hook,
                                   aj->recs[p], &logits, &aj->err);
    if (aj->rc != 0)
      nne_err_prefix(&aj->err, "probe forward");
    nne_tensor_unref(t);
    nne_tensor_unref(logits);
  }
  for (i = 0; aj->rc == 0 && i < set->n_edits; i++)
    aj->rc = check_edit(aj, i, &set->edits[i]);
  /* Operands live where the model does: moved once, here. */
  for (i = 0; aj->rc == 0 && i < set->n_edits; i++) {
    nne_edit_t *e = &set->edits[i];
    nne_tensor_t *moved;
    if (e->operand == NULL || strcmp(nne_model_device(set->model), "cpu") == 0)
      continue;
    aj->rc = nne_tensor_to_device(e->operand, nne_model_device(set->model),
                                  &moved, &aj->err);
    if (aj->rc == 0) {
      nne_tensor_unref(e->operand);
      e->operand = moved;
    }
  }
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

static void apply_done(nne_job_t *job) {
  apply_job_t *aj = (apply_job_t *)job;
  nne_server_t *srv = aj->srv;
  nne_edit_set_t *set = aj->set;
  nnedit_v1_ApplyEditsResponse out = nnedit_v1_ApplyEditsResponse_init_zero;
  nne_backend_t *b = NULL;
  nne_model_entry_t *entry = set->entry;
  struct timeval tv;
  int p;

  if (aj->rc == 0) {
    /* The cache entry is looked up now, in the loop turn that pins it, not
     * kept from the request: while the job waited, another call's backend
     * may have evicted it, or a Drop of the set that pinned it freed it.
     * put() finds the entry, or caches the variant this set holds again. */
    aj->rc = nne_backend_cache_put(&set->entry->backends, set->plan.key,
                                   set->variant, aj->built ? aj->build_ms : 0,
                                   &b, &aj->err);
  }
  /* A client that left (its deadline passed while the job was queued or
   * ran) was told DEADLINE_EXCEEDED or CANCELLED: it must not find a set it
   * never got the id of, holding a slot of --max-edit-sets. The backend
   * stays cached for the retry. */
  if (aj->rc == 0 && nne_call_cancelled(aj->call))
    aj->rc = nne_err_set(&aj->err, NNE_ECANCELED,
                         "the client went away before the edit set was "
                         "created");
  if (aj->rc == 0 && set->entry->model == NULL)
    aj->rc = nne_err_set(&aj->err, NNE_ESTATE, "model '%s' was unloaded",
                         set->entry->name);
  if (aj->rc == 0 && (uint32_t)set->entry->edit_sets >= srv->cfg->max_edit_sets)
    aj->rc = nne_err_set(&aj->err, NNE_ERESOURCE,
                         "model '%s' has %d edit sets (--max-edit-sets %u); "
                         "drop some first",
                         set->entry->name, set->entry->edit_sets,
                         srv->cfg->max_edit_sets);
  if (aj->rc == 0) {
    if (aj->hit && b->variant != set->variant) {
      nne_variant_t *v = nne_variant_ref(b->variant);
      nne_variant_unref(set->variant);
      set->variant = v;
    }
    set->backend = b;
    set->cache_hit = aj->hit;
    set->compile_ms = aj->built ? aj->build_ms : 0;
    gettimeofday(&tv, NULL);
    set->created_unix_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    nne_edit_set_new_id(set->id);
    nne_editor_add(&srv->editor, set);
    nne_log_info("edit set %s on %s: %zu edits, backend %s (%s, %.1f ms)",
                 set->id, set->entry->name, set->n_edits, b->digest,
                 aj->hit ? "cached" : "compiled", set->compile_ms);
    out.has_edit_set = true;
    fill_info_pb(&out.edit_set, set);
    nne_call_reply(aj->call, nnedit_v1_ApplyEditsResponse_fields, &out);
    aj->set = NULL; /* the editor owns it */
  } else {
    nne_call_fail_err(aj->call, &aj->err);
  }
  /* The Apply call's hold on the model ends; a created set keeps its own
   * model reference (and blocks Unload until dropped). */
  nne_registry_release(&srv->registry, entry, NULL);
  if (aj->set != NULL) {
    /* Not created: free everything, as if the request never came. */
    nne_editor_t tmp;
    nne_editor_init(&tmp);
    aj->set->next = NULL;
    tmp.sets = aj->set;
    tmp.count = 1;
    nne_editor_close(&tmp);
  }
  for (p = 0; p < PROBES; p++)
    free(aj->recs[p]);
  nne_call_unref(aj->call);
  free(aj);
  nne_server_poke(srv);
}

/* ---- Apply ---------------------------------------------------------------- */

static int check_op(size_t i, const nnedit_v1_Edit *pb, nne_err_t *err) {
  bool has_operand = pb->has_tensor || pb->use_scalar;
  switch (pb->op) {
  case nnedit_v1_EditOp_SAVE:
  case nnedit_v1_EditOp_ZERO:
    if (has_operand)
      return nne_err_set(err, NNE_EINVAL,
                         "edits[%zu]: %s takes no tensor or scalar", i,
                         pb->op == nnedit_v1_EditOp_SAVE ? "SAVE" : "ZERO");
    return 0;
  case nnedit_v1_EditOp_REPLACE:
  case nnedit_v1_EditOp_ADD:
  case nnedit_v1_EditOp_SCALE:
    if (pb->has_tensor && pb->use_scalar)
      return nne_err_set(err, NNE_EINVAL,
                         "edits[%zu]: give a tensor or a scalar, not both", i);
    if (!has_operand)
      return nne_err_set(err, NNE_EINVAL,
                         "edits[%zu]: %s needs a tensor or a scalar "
                         "(use_scalar)",
                         i,
                         pb->op == nnedit_v1_EditOp_REPLACE ? "REPLACE"
                         : pb->op == nnedit_v1_EditOp_ADD   ? "ADD"
                                                            : "SCALE");
    return 0;
  default:
    return nne_err_set(err, NNE_EINVAL, "edits[%zu].op: unknown op %d", i,
                       (int)pb->op);
  }
}

/* Turns one decoded edit into an nne_edit_t (site resolved, operand made). */
static int build_edit(nne_model_entry_t *e, size_t i, edit_in_t *in,
                      nne_edit_t *out, uint64_t *tensor_bytes,
                      nne_err_t *err) {
  const nnedit_v1_Edit *pb = &in->pb;
  char field[48];
  size_t k, j;
  int rc;

  if ((rc = check_op(i, pb, err)) != 0)
    return rc;
  if (!nne_pb_utf8_valid(pb->name))
    /* Get echoes it, and a SAVE edit streams a tensor under it. */
    return nne_err_set(err, NNE_EINVAL, "edits[%zu].name: not valid UTF-8",
                       i);
  snprintf(field, sizeof field, "edits[%zu].site", i);
  if (pb->site[0] == '\0')
    return nne_err_set(err, NNE_EINVAL, "%s: a site is required", field);
  rc = nne_names_resolve_site(e->names, field, pb->site, &out->site, err);
  if (rc == NNE_ENOTFOUND)
    /* Within an edit set an unknown site is a bad edit (the message still
     * lists the closest valid names). */
    err->code = rc = NNE_EINVAL;
  if (rc != 0)
    return rc;
  if (out->site.view.parts > 0)
    return nne_err_set(err, NNE_EINVAL,
                       "%s: '%s' is a view of a fused value (%s, part %d of "
                       "%d); edit the fused value with a range on its last "
                       "dimension instead",
                       field, pb->site, out->site.canonical,
                       out->site.view.part, out->site.view.parts);
  out->site_text = strdup(pb->site);
  out->name = strdup(pb->name[0] ? pb->name : pb->site);
  if (out->site_text == NULL || out->name == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  out->op = (nne_edit_op_t)pb->op;
  out->scalar = pb->scalar;
  out->use_scalar = pb->use_scalar;
  if (pb->ranges_count > NNE_EDIT_MAX_RANGES)
    return nne_err_set(err, NNE_EINVAL, "edits[%zu].ranges: at most %d", i,
                       NNE_EDIT_MAX_RANGES);
  for (k = 0; k < pb->ranges_count; k++) {
    for (j = 0; j < k; j++)
      if (pb->ranges[j].dim == pb->ranges[k].dim)
        return nne_err_set(err, NNE_EINVAL,
                           "edits[%zu].ranges[%zu]: dim %d already has a "
                           "range",
                           i, k, pb->ranges[k].dim);
    out->ranges[k].dim = pb->ranges[k].dim;
    out->ranges[k].start = pb->ranges[k].start;
    out->ranges[k].stop = pb->ranges[k].stop;
  }
  out->n_ranges = pb->ranges_count;
  if (pb->has_tensor) {
    nne_dtype_t dt = (nne_dtype_t)pb->tensor.dtype;
    size_t item = nne_dtype_size(dt), numel = 1;
    if (item == 0)
      return nne_err_set(err, NNE_EINVAL, "edits[%zu].tensor.dtype: %d is not "
                         "a known dtype", i, (int)pb->tensor.dtype);
    for (k = 0; k < pb->tensor.shape_count; k++) {
      if (pb->tensor.shape[k] < 0 || pb->tensor.shape[k] > (1ll << 40))
        return nne_err_set(err, NNE_EINVAL,
                           "edits[%zu].tensor.shape[%zu]: %" PRId64, i, k,
                           pb->tensor.shape[k]);
      numel *= (size_t)pb->tensor.shape[k];
    }
    if (numel * item != in->data_len)
      return nne_err_set(err, NNE_EINVAL,
                         "edits[%zu].tensor.data: %zu bytes for %zu %s "
                         "elements (%zu expected)",
                         i, in->data_len, numel, nne_dtype_name(dt),
                         numel * item);
    rc = nne_tensor_from_host(dt, pb->tensor.shape,
                              (int)pb->tensor.shape_count, in->data,
                              &out->operand, err);
    if (rc != 0) {
      nne_err_prefix(err, "edits[%zu].tensor", i);
      return rc;
    }
    *tensor_bytes += in->data_len;
  }
  return 0;
}

void nne_rpc_edits_apply(nne_server_t *srv, nne_call_t *call,
                         grpc_byte_buffer *req) {
  const nne_config_t *cfg = srv->cfg;
  nnedit_v1_ApplyEditsRequest in = nnedit_v1_ApplyEditsRequest_init_zero;
  edits_dec_t ed;
  nne_model_entry_t *e = NULL;
  nne_model_t *model = NULL;
  nne_edit_set_t *set = NULL;
  apply_job_t *aj = NULL;
  nne_names_site_t *sites = NULL;
  nne_err_t err;
  char why[256];
  size_t i;
  int rc;

  memset(&ed, 0, sizeof ed);
  ed.max = cfg->max_edits;
  ed.bytes_left = cfg->max_message_bytes;
  NNE_PB_DEC(in.edits, edit_dec, &ed);
  if (!nne_pb_decode_bb(req, nnedit_v1_ApplyEditsRequest_fields, &in, why,
                        sizeof why)) {
    if (ed.too_many)
      nne_err_set(&err, NNE_EINVAL, "edits[%u]: more than %u edits in one "
                  "edit set (--max-edits)", cfg->max_edits, cfg->max_edits);
    else if (ed.too_big)
      nne_err_set(&err, NNE_ERESOURCE, "edits: tensors larger than the "
                  "message limit");
    else
      nne_err_set(&err, NNE_EINVAL, "malformed ApplyEditsRequest: %s", why);
    goto fail;
  }
  if (!nne_pb_utf8_valid(in.label)) {
    /* Every List, Get and Drop response would carry it. */
    nne_err_set(&err, NNE_EINVAL, "label: not valid UTF-8");
    goto fail;
  }
  if (nne_registry_lookup(&srv->registry, "model", in.model, &e, &err) != 0 ||
      nne_registry_acquire(&srv->registry, e, &model, &err) != 0) {
    e = NULL;
    goto fail;
  }
  if (ed.n == 0) {
    nne_err_set(&err, NNE_EINVAL, "edits: an edit set needs at least one edit");
    goto fail;
  }
  if ((uint32_t)e->edit_sets >= cfg->max_edit_sets) {
    nne_err_set(&err, NNE_ERESOURCE,
                "model '%s' has %d edit sets (--max-edit-sets %u); drop some "
                "first",
                e->name, e->edit_sets, cfg->max_edit_sets);
    goto fail;
  }
  set = calloc(1, sizeof *set);
  sites = calloc(ed.n, sizeof *sites);
  if (set == NULL || sites == NULL ||
      (set->edits = calloc(ed.n, sizeof *set->edits)) == NULL) {
    nne_err_set(&err, NNE_ENOMEM, "out of memory");
    goto fail;
  }
  set->entry = e;
  set->model = model;
  model = NULL; /* the set holds that reference now */
  snprintf(set->label, sizeof set->label, "%s", in.label);
  for (i = 0; i < ed.n; i++) {
    set->n_edits = i + 1;
    rc = build_edit(e, i, &ed.v[i], &set->edits[i], &set->tensor_bytes, &err);
    if (rc != 0)
      goto fail;
    sites[i] = set->edits[i].site;
  }
  rc = nne_compiler_plan(set->model, sites, ed.n, &set->plan, &err);
  if (rc != 0)
    goto fail;
  for (i = 0; i < ed.n; i++)
    set->edits[i].hook = set->plan.item_hook[i];
  rc = nne_edit_set_track(set, &err);
  if (rc != 0)
    goto fail;
  aj = calloc(1, sizeof *aj);
  if (aj == NULL) {
    nne_err_set(&err, NNE_ENOMEM, "out of memory");
    goto fail;
  }
  aj->job.work = apply_work;
  aj->job.done = apply_done;
  aj->srv = srv;
  aj->call = call;
  aj->set = set;
  {
    /* Only the variant is kept from the entry (a reference): the entry
     * itself may not outlive this loop turn. */
    nne_backend_t *hit = nne_compiler_get_backend(&e->backends, &set->plan);
    aj->hit = hit != NULL;
    if (hit != NULL)
      set->variant = nne_variant_ref(hit->variant);
  }
  nne_call_ref(call);
  if (nne_executor_submit(&srv->compute, &aj->job, &err) != 0) {
    nne_call_unref(call);
    free(aj);
    goto fail;
  }
  free(sites);
  edits_dec_free(&ed);
  return;
fail:
  if (set != NULL) {
    nne_editor_t tmp;
    nne_editor_init(&tmp);
    tmp.sets = set;
    tmp.count = 1;
    nne_editor_close(&tmp); /* frees the set, its edits and its model ref */
  }
  if (e != NULL)
    nne_registry_release(&srv->registry, e, model);
  free(sites);
  edits_dec_free(&ed);
  nne_call_fail_err(call, &err);
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

void nne_rpc_edits_list(nne_server_t *srv, nne_call_t *call,
                        grpc_byte_buffer *req) {
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
      nne_registry_lookup(&srv->registry, "model", in.model, &e, &err) != 0) {
    nne_call_fail_err(call, &err);
    return;
  }
  lc.n = 0;
  lc.sets = calloc(srv->editor.count ? srv->editor.count : 1, sizeof *lc.sets);
  if (lc.sets == NULL) {
    nne_call_fail(call, NNE_ENOMEM, "out of memory");
    return;
  }
  for (s = srv->editor.sets; s != NULL; s = s->next)
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
  const nne_module_info_t *mi = nne_model_module(set->model,
                                                 (size_t)e->site.module);
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
  if (e->operand != NULL) {
    int nd = nne_tensor_ndim(e->operand);
    r->tensor_dtype = (nnedit_v1_DType)nne_tensor_dtype(e->operand);
    r->tensor_shape_count = (pb_size_t)nd;
    for (k = 0; k < (size_t)nd && k < 8; k++)
      r->tensor_shape[k] = nne_tensor_shape(e->operand)[k];
  }
  r->scalar = e->scalar;
  r->use_scalar = e->use_scalar;
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

void nne_rpc_edits_get(nne_server_t *srv, nne_call_t *call,
                       grpc_byte_buffer *req) {
  nnedit_v1_GetEditSetRequest in = nnedit_v1_GetEditSetRequest_init_zero;
  nnedit_v1_GetEditSetResponse out = nnedit_v1_GetEditSetResponse_init_zero;
  nne_pb_list_enc_t list;
  nne_edit_set_t *set;
  nne_err_t err;

  if (!nne_rpc_decode(call, req, nnedit_v1_GetEditSetRequest_fields, &in,
                      NULL))
    return;
  set = nne_editor_find(&srv->editor, in.id);
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

void nne_rpc_edits_drop(nne_server_t *srv, nne_call_t *call,
                        grpc_byte_buffer *req) {
  nnedit_v1_DropEditSetRequest in = nnedit_v1_DropEditSetRequest_init_zero;
  nnedit_v1_DropEditSetResponse out = nnedit_v1_DropEditSetResponse_init_zero;
  nne_edit_set_t *set;
  nne_err_t err;

  if (!nne_rpc_decode(call, req, nnedit_v1_DropEditSetRequest_fields, &in,
                      NULL))
    return;
  set = nne_editor_find(&srv->editor, in.id);
  if (set == NULL) {
    nne_err_set(&err, NNE_ENOTFOUND, "id: no edit set '%s'", in.id);
    nne_call_fail_err(call, &err);
    return;
  }
  out.has_edit_set = true;
  fill_info_pb(&out.edit_set, set);
  nne_log_info("edit set %s on %s dropped", set->id, set->entry->name);
  out.freed_bytes = nne_editor_drop(&srv->editor, set);
  nne_call_reply(call, nnedit_v1_DropEditSetResponse_fields, &out);
}
