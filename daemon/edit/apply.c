/* apply.c — see apply.h. */
#include "edit/apply.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "edit/compiler.h"
#include "edit/store.h"
#include "infer/backend.h"
#include "infer/hold.h"
#include "base/log.h"

#define PROBES 2

typedef struct probe_rec {
  int fired;
  int ndim;
  int64_t shape[NNE_TENSOR_MAX_DIMS];
  nne_dtype_t dtype;
} probe_rec_t;

typedef struct apply_job {
  nne_job_t job;
  nne_daemon_t *d;
  nne_call_t *call;            /* NULL for a restore */
  nne_apply_done_fn done;
  void *ctx;
  uint8_t *record;             /* the request, to keep (--state-dir) */
  size_t record_len;
  bool recorded;               /* the record is on disk */
  nne_infer_hold_t hold;       /* the model, for the job's life */
  nne_edit_set_t *set;         /* being built; owned until added */
  nne_infer_backend_t bk;      /* the edits' backend */
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

/* The client left (a restore has none to leave). */
static bool gone(const apply_job_t *aj) {
  return aj->call != NULL && nne_call_cancelled(aj->call);
}

/* The set's record, durably, before the set exists: a client that gets the
 * id can count on it after a crash. On the worker: the loop never waits
 * for the disk. */
static void write_record(apply_job_t *aj) {
  nne_edit_record_t rec;
  memset(&rec, 0, sizeof rec);
  snprintf(rec.id, sizeof rec.id, "%s", aj->set->id);
  rec.created_unix_ms = aj->set->created_unix_ms;
  rec.request = aj->record;
  rec.request_len = aj->record_len;
  aj->rc = nne_edit_store_put(&aj->d->store, aj->hold.entry->name, &rec,
                              &aj->err);
  aj->recorded = aj->rc == 0;
}

static void apply_work(nne_job_t *job) {
  apply_job_t *aj = (apply_job_t *)job;
  nne_edit_set_t *set = aj->set;
  nne_model_t *model = aj->hold.model;
  int64_t vocab = aj->hold.entry->vocab_size > 0 ? aj->hold.entry->vocab_size
                                                 : 1;
  size_t n_hooks = aj->bk.plan.n_hooks, i;
  static const int64_t probe_shapes[PROBES][2] = {{1, 2}, {2, 3}};
  int p;

  aj->rc = 0;
  if (gone(aj)) {
    aj->rc = nne_err_set(&aj->err, NNE_ECANCELED, "cancelled before it ran");
    return;
  }
  aj->rc = nne_infer_backend_ready(&aj->bk, model, &aj->err);
  if (aj->rc != 0) {
    nne_err_prefix(&aj->err, "compiling the backend");
    return;
  }
  for (p = 0; p < PROBES && aj->rc == 0; p++) {
    int64_t n = probe_shapes[p][0] * probe_shapes[p][1], k;
    int64_t ids[6];
    nne_tensor_t *t = NULL, *logits = NULL;
    aj->recs[p] = calloc(n_hooks + 1, sizeof *aj->recs[p]);
    if (aj->recs[p] == NULL) {
      aj->rc = nne_err_set(&aj->err, NNE_ENOMEM, "out of memory");
      break;
    }
    for (k = 0; k < n; k++)
      ids[k] = (k * 7 + 1) % vocab;
    aj->rc = nne_tensor_from_host(NNE_DTYPE_I64, probe_shapes[p], 2, ids, &t,
                                  &aj->err);
    if (aj->rc == 0)
      aj->rc = nne_variant_forward(aj->bk.variant, t, NULL, probe_hook,
                                   aj->recs[p], &logits, &aj->err);
    if (aj->rc != 0)
      nne_err_prefix(&aj->err, "probe forward");
    nne_tensor_unref(t);
    nne_tensor_unref(logits);
  }
  for (i = 0; aj->rc == 0 && i < set->n_edits; i++)
    aj->rc = check_edit(aj, i, &set->edits[i]);
  /* Operands live where the model does, in their site's dtype: converted
   * once, here, not in every forward on the set (a float32 steering vector
   * for a bfloat16 model; a copy to the GPU). A value the site's dtype
   * cannot hold fails now, naming the edit. */
  for (i = 0; aj->rc == 0 && i < set->n_edits; i++) {
    nne_edit_t *e = &set->edits[i];
    nne_dtype_t want;
    nne_tensor_t *moved;
    if (e->operand == NULL)
      continue;
    want = aj->recs[0][e->hook].dtype;
    if (want == nne_tensor_dtype(e->operand) &&
        strcmp(nne_model_device(model), "cpu") == 0)
      continue;
    aj->rc = nne_tensor_to(e->operand, nne_model_device(model), want, &moved,
                           &aj->err);
    if (aj->rc == 0) {
      nne_tensor_unref(e->operand);
      e->operand = moved;
    } else {
      nne_err_prefix(&aj->err, "edits[%zu].tensor (%s)", i, e->site_text);
    }
  }
  if (aj->rc == 0 && aj->record != NULL)
    write_record(aj);
}

/* Frees a set that was never added (its model reference included). */
static void set_discard(nne_edit_set_t *set) {
  nne_editor_t tmp;
  if (set == NULL)
    return;
  nne_editor_init(&tmp);
  set->next = NULL;
  tmp.sets = set;
  tmp.count = 1;
  nne_editor_close(&tmp);
}

static void job_free(apply_job_t *aj) {
  int p;
  if (aj->hold.entry != NULL)
    nne_infer_backend_free(&aj->bk, aj->hold.entry);
  nne_infer_release(&aj->hold, aj->d);
  set_discard(aj->set); /* not created: as if the request never came */
  free(aj->record);
  for (p = 0; p < PROBES; p++)
    free(aj->recs[p]);
  free(aj);
}

/* The set is born (loop thread): everything that can fail without a
 * forward is checked here, in the loop turn that pins the backend. */
static int create_set(apply_job_t *aj) {
  nne_daemon_t *d = aj->d;
  nne_edit_set_t *set = aj->set;
  nne_model_entry_t *entry = aj->hold.entry;
  nne_backend_t *b;
  int rc;

  /* Once Unload has accepted the model (state UNLOADING: it waits for this
   * call to release it), no set may be born on it. */
  if (entry->state != NNE_MODEL_LOADED)
    return nne_err_set(&aj->err, NNE_ESTATE,
                       "model '%s' is being unloaded (Models.Unload came "
                       "while this Apply ran); load it again and re-apply",
                       entry->name);
  /* The cache entry is looked up now, not kept from the request: while the
   * job waited, another call's backend may have evicted it, or a Drop of
   * the set that pinned it freed it. commit() finds the entry, or caches
   * this variant again. */
  b = nne_infer_backend_commit(&aj->bk, entry);
  if (b == NULL)
    return nne_err_set(&aj->err, NNE_ERESOURCE,
                       "the backend cache is full of backends that edit sets "
                       "hold (%zu of %zu bytes, %zu pinned); drop edit sets "
                       "or raise --backend-cache-bytes",
                       entry->backends.bytes, entry->backends.capacity_bytes,
                       nne_backend_cache_pinned(&entry->backends));
  /* A client that left (its deadline passed while the job was queued or
   * ran) was told DEADLINE_EXCEEDED or CANCELLED: it must not find a set it
   * never got the id of, holding a slot of --max-edit-sets. The backend
   * stays cached for the retry. */
  if (gone(aj))
    return nne_err_set(&aj->err, NNE_ECANCELED,
                       "the client went away before the edit set was "
                       "created");
  if ((uint32_t)entry->edit_sets >= d->cfg->max_edit_sets)
    return nne_err_set(&aj->err, NNE_ERESOURCE,
                       "model '%s' has %d edit sets (--max-edit-sets %u); "
                       "drop some first",
                       entry->name, entry->edit_sets, d->cfg->max_edit_sets);
  /* The plan moves to the set: its hooks are the set's for good. */
  set->plan = aj->bk.plan;
  aj->bk.own_plan = false;
  rc = nne_edit_set_track(set, &aj->err);
  if (rc != 0)
    return rc;
  set->variant = nne_variant_ref(b->variant);
  set->backend = b;
  set->cache_hit = aj->bk.hit;
  set->compile_ms = aj->bk.built ? aj->bk.build_ms : 0;
  if (nne_editor_find(&d->editor, set->id) != NULL)
    return nne_err_set(&aj->err, NNE_EEXIST, "edit set '%s' exists already",
                       set->id);
  rc = nne_editor_add(&d->editor, set, &aj->err);
  if (rc != 0) {
    set->backend = NULL; /* not pinned: nothing to release */
    return rc;
  }
  nne_log_info("edit set %s on %s: %zu edits, backend %s (%s, %.1f ms)",
               set->id, entry->name, set->n_edits, b->digest,
               set->cache_hit ? "cached" : "compiled", set->compile_ms);
  return 0;
}

static void apply_done(nne_job_t *job) {
  apply_job_t *aj = (apply_job_t *)job;
  nne_call_t *call = aj->call;

  if (aj->rc != 0)
    nne_infer_hold_oom(&aj->hold, &aj->err);
  if (aj->rc == 0)
    aj->rc = create_set(aj);
  else if (aj->hold.entry != NULL)
    nne_infer_backend_commit(&aj->bk, aj->hold.entry); /* what was built */
  if (aj->rc == 0) {
    nne_edit_set_t *set = aj->set;
    aj->set = NULL; /* the editor owns it */
    aj->done(call, aj->ctx, set, NULL);
  } else {
    nne_err_t ignored;
    /* Not created: its record must not bring it back. */
    if (aj->recorded)
      nne_edit_store_remove(&aj->d->store, aj->hold.entry->name, aj->set->id,
                            &ignored);
    aj->done(call, aj->ctx, NULL, &aj->err);
  }
  /* The Apply call's hold on the model ends; a created set keeps its own
   * model reference (and blocks Unload until dropped). */
  job_free(aj);
  if (call != NULL)
    nne_call_unref(call);
}

/* ---- checking and resolving the edits ----------------------------------- */

static int check_op(size_t i, const nne_edit_spec_t *sp, nne_err_t *err) {
  bool has_operand = sp->has_tensor || sp->use_scalar;
  switch (sp->op) {
  case NNE_EDIT_SAVE:
  case NNE_EDIT_ZERO:
    if (has_operand)
      return nne_err_set(err, NNE_EINVAL,
                         "edits[%zu]: %s takes no tensor or scalar", i,
                         nne_edit_op_name(sp->op));
    return 0;
  case NNE_EDIT_REPLACE:
  case NNE_EDIT_ADD:
  case NNE_EDIT_SCALE:
    if (sp->has_tensor && sp->use_scalar)
      return nne_err_set(err, NNE_EINVAL,
                         "edits[%zu]: give a tensor or a scalar, not both", i);
    if (!has_operand)
      return nne_err_set(err, NNE_EINVAL,
                         "edits[%zu]: %s needs a tensor or a scalar", i,
                         nne_edit_op_name(sp->op));
    return 0;
  default:
    return nne_err_set(err, NNE_EINVAL, "edits[%zu].op: unknown op %d", i,
                       sp->op);
  }
}

/* Turns one edit description into an nne_edit_t (site resolved, operand
 * made). */
static int build_edit(nne_model_entry_t *e, size_t i, const nne_edit_spec_t *sp,
                      nne_edit_t *out, uint64_t *tensor_bytes,
                      nne_err_t *err) {
  char field[48];
  size_t k, j;
  int rc;

  if ((rc = check_op(i, sp, err)) != 0)
    return rc;
  snprintf(field, sizeof field, "edits[%zu].site", i);
  if (sp->site[0] == '\0')
    return nne_err_set(err, NNE_EINVAL, "%s: a site is required", field);
  rc = nne_names_resolve_site(e->names, field, sp->site, &out->site, err);
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
                       field, sp->site, out->site.canonical,
                       out->site.view.part, out->site.view.parts);
  out->site_text = strdup(sp->site);
  out->name = strdup(sp->name[0] ? sp->name : sp->site);
  if (out->site_text == NULL || out->name == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  out->op = (nne_edit_op_t)sp->op;
  out->scalar = sp->scalar;
  out->use_scalar = sp->use_scalar;
  if (sp->n_ranges > NNE_EDIT_MAX_RANGES)
    return nne_err_set(err, NNE_EINVAL, "edits[%zu].ranges: at most %d", i,
                       NNE_EDIT_MAX_RANGES);
  for (k = 0; k < sp->n_ranges; k++) {
    for (j = 0; j < k; j++)
      if (sp->ranges[j].dim == sp->ranges[k].dim)
        return nne_err_set(err, NNE_EINVAL,
                           "edits[%zu].ranges[%zu]: dim %d already has a "
                           "range",
                           i, k, sp->ranges[k].dim);
    out->ranges[k] = sp->ranges[k];
  }
  out->n_ranges = sp->n_ranges;
  if (sp->has_tensor) {
    size_t item = nne_dtype_size(sp->dtype), numel = 1;
    if (item == 0)
      return nne_err_set(err, NNE_EINVAL, "edits[%zu].tensor.dtype: %d is not "
                         "a known dtype", i, (int)sp->dtype);
    for (k = 0; k < (size_t)sp->ndim; k++) {
      if (sp->shape[k] < 0 || sp->shape[k] > (1ll << 40))
        return nne_err_set(err, NNE_EINVAL,
                           "edits[%zu].tensor.shape[%zu]: %" PRId64, i, k,
                           sp->shape[k]);
      numel *= (size_t)sp->shape[k];
    }
    if (numel * item != sp->data_len)
      return nne_err_set(err, NNE_EINVAL,
                         "edits[%zu].tensor.data: %zu bytes for %zu %s "
                         "elements (%zu expected)",
                         i, sp->data_len, numel, nne_dtype_name(sp->dtype),
                         numel * item);
    rc = nne_tensor_from_host(sp->dtype, sp->shape, sp->ndim, sp->data,
                              &out->operand, err);
    if (rc != 0) {
      nne_err_prefix(err, "edits[%zu].tensor", i);
      return rc;
    }
    *tensor_bytes += sp->data_len;
  }
  return 0;
}

int nne_apply_start(nne_daemon_t *d, nne_call_t *call, const char *model,
                    const char *label, const nne_edit_spec_t *specs, size_t n,
                    const nne_apply_opts_t *opts, nne_apply_done_fn done,
                    void *ctx, nne_err_t *err) {
  nne_names_site_t *sites = NULL;
  nne_edit_set_t *set;
  apply_job_t *aj;
  nne_model_entry_t *e;
  size_t i;
  int rc;

  aj = calloc(1, sizeof *aj);
  if (aj == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  aj->d = d;
  aj->call = call;
  aj->done = done;
  aj->ctx = ctx;
  if (opts != NULL && opts->id != NULL &&
      nne_editor_find(&d->editor, opts->id) != NULL) {
    free(aj);
    return nne_err_set(err, NNE_EEXIST, "edit set '%s' exists already",
                       opts->id);
  }
  if (opts != NULL && opts->record != NULL && d->store.dir != NULL) {
    aj->record = malloc(opts->record_len ? opts->record_len : 1);
    if (aj->record == NULL) {
      free(aj);
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
    }
    memcpy(aj->record, opts->record, opts->record_len);
    aj->record_len = opts->record_len;
  }
  rc = nne_infer_hold(&aj->hold, d, model, NULL, err);
  if (rc != 0)
    goto fail;
  e = aj->hold.entry;
  if (n == 0) {
    rc = nne_err_set(err, NNE_EINVAL,
                     "edits: an edit set needs at least one edit");
    goto fail;
  }
  if ((uint32_t)e->edit_sets >= d->cfg->max_edit_sets) {
    rc = nne_err_set(err, NNE_ERESOURCE,
                     "model '%s' has %d edit sets (--max-edit-sets %u); drop "
                     "some first",
                     e->name, e->edit_sets, d->cfg->max_edit_sets);
    goto fail;
  }
  set = aj->set = calloc(1, sizeof *set);
  sites = calloc(n, sizeof *sites);
  if (set == NULL || sites == NULL ||
      (set->edits = calloc(n, sizeof *set->edits)) == NULL) {
    rc = nne_err_set(err, NNE_ENOMEM, "out of memory");
    goto fail;
  }
  set->entry = e;
  set->model = nne_model_ref(aj->hold.model); /* for the set's life */
  if (opts != NULL && opts->id != NULL) {
    snprintf(set->id, sizeof set->id, "%s", opts->id);
    set->created_unix_ms = opts->created_unix_ms;
  } else {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    nne_edit_set_new_id(set->id);
    set->created_unix_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
  }
  snprintf(set->label, sizeof set->label, "%s", label);
  for (i = 0; i < n; i++) {
    set->n_edits = i + 1;
    rc = build_edit(e, i, &specs[i], &set->edits[i], &set->tensor_bytes, err);
    if (rc != 0)
      goto fail;
    sites[i] = set->edits[i].site;
  }
  /* The one get-or-build path (infer/backend.h), like Forward's and
   * Trace's: a second Apply of the same structure shares the build. */
  rc = nne_infer_backend_plan(&aj->bk, e, aj->hold.model, NULL, sites, n, err);
  if (rc != 0)
    goto fail;
  for (i = 0; i < n; i++)
    set->edits[i].hook = nne_infer_backend_site_hook(&aj->bk, i);
  free(sites);
  sites = NULL;
  aj->job.work = apply_work;
  aj->job.done = apply_done;
  if (call != NULL)
    nne_call_ref(call);
  rc = nne_executor_submit(&d->compute, &aj->job, err);
  if (rc != 0) {
    if (call != NULL)
      nne_call_unref(call);
    goto fail;
  }
  return 0;
fail:
  free(sites);
  job_free(aj);
  return rc;
}
