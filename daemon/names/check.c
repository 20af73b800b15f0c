/* check.c — see check.h. */
#include "names/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/vec.h"

#define PROBE_B 2
#define PROBE_S 3

/* What one hooked site is for: a module check (input 0 or output 0) or a
 * standard site entry. Several roles may share one site. */
typedef struct role {
  int site;          /* index into the variant's sites */
  int check;         /* index of the module check, or -1 */
  bool input;        /* the check's input (else output) */
  int entry;         /* index of the site entry, or -1 */
} role_t;

typedef struct rec {
  int fired;
  int ndim;
  int64_t shape[NNE_TENSOR_MAX_DIMS];
  bool want_sums;    /* an attention pattern: check rows sum to 1 */
  bool sums_checked;
  double max_sum_err;
} rec_t;

typedef struct probe {
  nne_site_t *sites;
  int *ok;           /* per site: 1 usable, 0 refused by a static check
                        (already marked), -1 refused by the builder */
  rec_t *recs;
  size_t n_sites, cap_sites;
  role_t *roles;
  size_t n_roles, cap_roles;
  const nne_names_t *names;
  nne_model_t *model;
} probe_t;

/* A standard attention pattern site ("layers.3.self_attn.pattern"). */
static bool is_pattern(const char *name) {
  size_t l = strlen(name);
  return l >= 8 && strcmp(name + l - 8, ".pattern") == 0;
}

static int hook(void *ctx, int site, nne_tensor_t *value,
                nne_tensor_t **replace) {
  probe_t *p = ctx;
  rec_t *r = &p->recs[site];
  const int64_t *shape = nne_tensor_shape(value);
  int i;

  (void)replace;
  if (r->fired++ > 0)
    return 0;
  r->ndim = nne_tensor_ndim(value);
  for (i = 0; i < r->ndim && i < NNE_TENSOR_MAX_DIMS; i++)
    r->shape[i] = shape[i];
  if (r->want_sums && r->ndim >= 1 && shape[r->ndim - 1] > 0 &&
      (nne_tensor_dtype(value) == NNE_DTYPE_F32 ||
       nne_tensor_dtype(value) == NNE_DTYPE_F64)) {
    const void *data;
    int64_t rows, cols = shape[r->ndim - 1], a, b;
    if (nne_tensor_host_data(value, &data, NULL) != 0)
      return 0;
    rows = nne_tensor_numel(value) / cols;
    for (a = 0; a < rows; a++) {
      double sum = 0, e;
      for (b = 0; b < cols; b++)
        sum += nne_tensor_dtype(value) == NNE_DTYPE_F32
                   ? (double)((const float *)data)[a * cols + b]
                   : ((const double *)data)[a * cols + b];
      e = fabs(sum - 1.0);
      if (!(e <= r->max_sum_err)) /* NaN counts as a failure too */
        r->max_sum_err = isnan(e) ? INFINITY : e;
    }
    r->sums_checked = true;
  }
  return 0;
}

static bool same_site(const nne_site_t *a, const nne_site_t *b) {
  if (a->module != b->module || a->kind != b->kind || a->index != b->index)
    return false;
  if (a->kind == NNE_SITE_NODE || a->kind == NNE_SITE_NODE_INPUT)
    return a->node_occurrence == b->node_occurrence &&
           strcmp(a->node_kind, b->node_kind) == 0;
  return true;
}

/* Adds a site (or finds the same one) and a role for it. */
static int add_role(probe_t *p, const nne_site_t *s, int check, bool input,
                    int entry) {
  size_t i;
  for (i = 0; i < p->n_sites; i++)
    if (same_site(&p->sites[i], s))
      break;
  if (i == p->n_sites) {
    if (NNE_VEC_GROW(&p->sites, &p->cap_sites, p->n_sites + 1) != 0)
      return NNE_ENOMEM;
    p->sites[p->n_sites++] = *s;
  }
  if (NNE_VEC_GROW(&p->roles, &p->cap_roles, p->n_roles + 1) != 0)
    return NNE_ENOMEM;
  p->roles[p->n_roles].site = (int)i;
  p->roles[p->n_roles].check = check;
  p->roles[p->n_roles].input = input;
  p->roles[p->n_roles].entry = entry;
  p->n_roles++;
  return 0;
}

/* Cheap static checks that would otherwise fail the whole variant build.
 * Returns NULL when the site can be hooked, else the reason. */
static const char *precheck(nne_model_t *m, const nne_site_t *s, char *buf,
                            size_t cap) {
  const nne_module_info_t *mi = nne_model_module(m, (size_t)s->module);
  int n_in = -1, n_out = -1;

  if (mi == NULL)
    return "no such module";
  if (mi->call_index < 0) {
    snprintf(buf, cap, "forward never calls %s",
             mi->path[0] ? mi->path : "(root)");
    return buf;
  }
  if (s->kind == NNE_SITE_INPUT || s->kind == NNE_SITE_OUTPUT) {
    if (nne_model_module_arity(m, s->module, &n_in, &n_out, NULL) != 0)
      return NULL; /* unknown: let the build decide */
    if (s->kind == NNE_SITE_INPUT && n_in >= 0 && s->index >= n_in) {
      snprintf(buf, cap, "%s's forward takes %d argument%s", mi->path, n_in,
               n_in == 1 ? "" : "s");
      return buf;
    }
    if (s->kind == NNE_SITE_OUTPUT && n_out >= 0 && s->index >= n_out) {
      snprintf(buf, cap, "%s's forward returns %d value%s", mi->path, n_out,
               n_out == 1 ? "" : "s");
      return buf;
    }
    return NULL;
  } else {
    const nne_node_info_t *nodes;
    size_t n, i;
    int count = 0;
    if (nne_model_module_nodes(m, s->module, &nodes, &n, NULL) != 0)
      return NULL;
    for (i = 0; i < n; i++) {
      if (strcmp(nodes[i].kind, s->node_kind) != 0)
        continue;
      count++;
      if (nodes[i].occurrence != s->node_occurrence)
        continue;
      if (s->kind == NNE_SITE_NODE
              ? (s->index >= nodes[i].n_outputs || s->index >= 32 ||
                 !(nodes[i].tensor_outputs & (1u << s->index)))
              : (s->index >= nodes[i].n_inputs || s->index >= 32 ||
                 !(nodes[i].tensor_inputs & (1u << s->index)))) {
        snprintf(buf, cap, "%s#%d in %s has no tensor %s %d", s->node_kind,
                 s->node_occurrence, mi->path,
                 s->kind == NNE_SITE_NODE ? "output" : "input", s->index);
        return buf;
      }
      return NULL;
    }
    snprintf(buf, cap,
             "%s's own code has %d %s node%s, not #%d (fused attention?)",
             mi->path, count, s->node_kind, count == 1 ? "" : "s",
             s->node_occurrence);
    return buf;
  }
}

/* Builds a variant from the sites marked ok; when the builder refuses the
 * set, finds the refused sites by halving and marks them. */
static int try_build(probe_t *p, size_t *idx, size_t n, char *why,
                     size_t whylen) {
  nne_site_t *sub;
  nne_variant_t *v = NULL;
  nne_err_t err;
  size_t i;
  int rc;

  if (n == 0)
    return 0;
  sub = malloc(n * sizeof *sub);
  if (sub == NULL)
    return NNE_ENOMEM;
  for (i = 0; i < n; i++)
    sub[i] = p->sites[idx[i]];
  rc = nne_variant_build(p->model, sub, n, &v, &err);
  free(sub);
  nne_variant_unref(v);
  if (rc == 0)
    return 0;
  if (n == 1) {
    p->ok[idx[0]] = -1;
    snprintf(why, whylen, "%s", err.msg);
    return 0;
  }
  rc = try_build(p, idx, n / 2, why, whylen);
  if (rc == 0)
    rc = try_build(p, idx + n / 2, n - n / 2, why, whylen);
  return rc;
}

static void shape_str(const rec_t *r, char *buf, size_t cap) {
  size_t n = 0;
  int i;
  n += (size_t)snprintf(buf, cap, "[");
  for (i = 0; i < r->ndim && n < cap; i++)
    n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "",
                          (long long)r->shape[i]);
  if (n < cap)
    snprintf(buf + n, cap - n, "]");
}

static bool is_bs(const rec_t *r) {
  return r->ndim == 3 && r->shape[0] == PROBE_B && r->shape[1] == PROBE_S;
}

/* The model width: the last dimension most [B, S, x] module values share. */
static int64_t infer_d_model(const probe_t *p, const nne_names_t *names) {
  int64_t best = -1;
  int best_n = 0;
  size_t i, j;
  for (i = 0; i < p->n_roles; i++) {
    const role_t *ri = &p->roles[i];
    const rec_t *r = &p->recs[ri->site];
    int n = 0;
    if (ri->check < 0 || !r->fired || !is_bs(r) ||
        (ri->input ? nne_names_check(names, (size_t)ri->check)->input0
                   : nne_names_check(names, (size_t)ri->check)->output0) !=
            NNE_NAMES_SHAPE_BSD)
      continue;
    for (j = 0; j < p->n_roles; j++) {
      const rec_t *q = &p->recs[p->roles[j].site];
      if (p->roles[j].check >= 0 && q->fired && is_bs(q) &&
          q->shape[2] == r->shape[2])
        n++;
    }
    if (n > best_n) {
      best_n = n;
      best = r->shape[2];
    }
  }
  return best;
}

int nne_validate_names(nne_model_t *model, nne_names_t *names, int64_t vocab,
                       int n_heads, nne_err_t *err) {
  probe_t p;
  size_t i, n_checks = nne_names_check_count(names);
  size_t n_entries = nne_names_site_count(names);
  size_t *idx = NULL, n_idx = 0;
  nne_variant_t *v = NULL;
  nne_tensor_t *ids = NULL, *logits = NULL;
  int64_t ids_data[PROBE_B * PROBE_S], shape[2] = {PROBE_B, PROBE_S}, d_model;
  char why[NNE_ERR_MSG_MAX], reason[NNE_ERR_MSG_MAX + 128], s1[128];
  int rc = 0;

  memset(&p, 0, sizeof p);
  p.names = names;
  p.model = model;

  /* 1. Sites for the module checks and the standard sites. */
  for (i = 0; i < n_checks && rc == 0; i++) {
    const nne_names_check_t *c = nne_names_check(names, i);
    nne_site_t s = {c->module, NNE_SITE_INPUT, 0, NULL, 0};
    if (c->input0 != NNE_NAMES_SHAPE_NONE)
      rc = add_role(&p, &s, (int)i, true, -1);
    s.kind = NNE_SITE_OUTPUT;
    if (rc == 0 && c->output0 != NNE_NAMES_SHAPE_NONE)
      rc = add_role(&p, &s, (int)i, false, -1);
  }
  for (i = 0; i < n_entries && rc == 0; i++) {
    const nne_names_site_entry_t *e = nne_names_site(names, i);
    nne_site_t s;
    if (!e->available)
      continue;
    s.module = e->site.module;
    s.kind = (nne_site_kind_t)e->site.kind;
    s.index = e->site.index;
    s.node_kind = e->site.node_kind;
    s.node_occurrence = e->site.node_occurrence;
    rc = add_role(&p, &s, -1, false, (int)i);
  }
  if (rc != 0)
    goto oom;
  p.ok = malloc((p.n_sites ? p.n_sites : 1) * sizeof *p.ok);
  p.recs = calloc(p.n_sites ? p.n_sites : 1, sizeof *p.recs);
  idx = malloc((p.n_sites ? p.n_sites : 1) * sizeof *idx);
  if (p.ok == NULL || p.recs == NULL || idx == NULL)
    goto oom;

  /* 2. Static checks; then the builder's word on the rest. */
  for (i = 0; i < p.n_sites; i++) {
    const char *bad = precheck(model, &p.sites[i], why, sizeof why);
    p.ok[i] = bad == NULL ? 1 : 0;
    if (bad != NULL) {
      size_t r;
      for (r = 0; r < p.n_roles; r++) {
        const role_t *ro = &p.roles[r];
        if (ro->site != (int)i)
          continue;
        nne_names_mark_unavailable(
            names,
            ro->check >= 0 ? nne_names_check(names, (size_t)ro->check)->name
                           : nne_names_site(names, (size_t)ro->entry)->name,
            bad);
      }
    }
  }
  why[0] = '\0';
  for (i = 0; i < p.n_sites; i++)
    if (p.ok[i] == 1)
      idx[n_idx++] = i;
  /* One build for the usual case where every site is fine. */
  {
    nne_site_t *all = malloc((n_idx ? n_idx : 1) * sizeof *all);
    nne_err_t berr;
    if (all == NULL)
      goto oom;
    for (i = 0; i < n_idx; i++)
      all[i] = p.sites[idx[i]];
    rc = nne_variant_build(model, all, n_idx, &v, &berr);
    free(all);
    if (rc != 0) {
      nne_log_debug("validation variant refused (%s); finding the culprits",
                    berr.msg);
      rc = try_build(&p, idx, n_idx, why, sizeof why);
      if (rc != 0)
        goto oom;
      n_idx = 0;
      for (i = 0; i < p.n_sites; i++)
        if (p.ok[i] == 1)
          idx[n_idx++] = i;
      all = malloc((n_idx ? n_idx : 1) * sizeof *all);
      if (all == NULL)
        goto oom;
      for (i = 0; i < n_idx; i++)
        all[i] = p.sites[idx[i]];
      rc = nne_variant_build(model, all, n_idx, &v, err);
      free(all);
      if (rc != 0)
        goto out;
    }
  }

  /* 3. One small forward. Site numbers in the variant are positions in
   * idx; map them back through a remapped record array. */
  {
    rec_t *vrecs = calloc(n_idx ? n_idx : 1, sizeof *vrecs);
    probe_t vp = p;
    if (vrecs == NULL)
      goto oom;
    for (i = 0; i < n_idx; i++) {
      size_t r;
      for (r = 0; r < p.n_roles; r++)
        if (p.roles[r].site == (int)idx[i] && p.roles[r].entry >= 0) {
          const char *nm = nne_names_site(names, (size_t)p.roles[r].entry)->name;
          if (is_pattern(nm))
            vrecs[i].want_sums = true;
        }
    }
    vp.recs = vrecs;
    for (i = 0; i < PROBE_B * PROBE_S; i++)
      ids_data[i] = (int64_t)((i * 7 + 1) % (size_t)(vocab > 0 ? vocab : 1));
    rc = nne_tensor_from_host(NNE_DTYPE_I64, shape, 2, ids_data, &ids, err);
    if (rc == 0)
      rc = nne_variant_forward(v, ids, NULL, hook, &vp, &logits, err);
    for (i = 0; i < n_idx; i++)
      p.recs[idx[i]] = vrecs[i];
    free(vrecs);
    if (rc != 0) {
      nne_err_prefix(err, "name validation forward");
      goto out;
    }
  }

  /* 4. Judge each role. */
  d_model = infer_d_model(&p, names);
  for (i = 0; i < p.n_roles; i++) {
    const role_t *ro = &p.roles[i];
    const rec_t *r = &p.recs[ro->site];
    const char *name;
    nne_names_shape_t want = NNE_NAMES_SHAPE_NONE;

    if (p.ok[ro->site] != 1) {
      if (p.ok[ro->site] == -1) {
        name = ro->check >= 0 ? nne_names_check(names, (size_t)ro->check)->name
                              : nne_names_site(names, (size_t)ro->entry)->name;
        nne_names_mark_unavailable(names, name, why[0] ? why : "cannot hook");
      }
      continue; /* refused by a static check: already marked */
    }
    if (ro->check >= 0) {
      const nne_names_check_t *c = nne_names_check(names, (size_t)ro->check);
      name = c->name;
      want = ro->input ? c->input0 : c->output0;
    } else {
      name = nne_names_site(names, (size_t)ro->entry)->name;
    }
    if (r->fired <= 0) {
      nne_names_mark_unavailable(names, name,
                                 "did not run in a test forward");
      continue;
    }
    shape_str(r, s1, sizeof s1);
    if (want == NNE_NAMES_SHAPE_BSD &&
        (!is_bs(r) || (d_model > 0 && r->shape[2] != d_model))) {
      snprintf(reason, sizeof reason,
               "%s %s is %s, expected [batch, seq, d_model] = [%d, %d, %lld]",
               ro->input ? "input 0" : "output 0", "in a test forward", s1,
               PROBE_B, PROBE_S, (long long)d_model);
      nne_names_mark_unavailable(names, name, reason);
      continue;
    }
    if (want == NNE_NAMES_SHAPE_BSV &&
        (!is_bs(r) || r->shape[2] != vocab)) {
      snprintf(reason, sizeof reason,
               "output 0 in a test forward is %s, expected [batch, seq, vocab]"
               " = [%d, %d, %lld]",
               s1, PROBE_B, PROBE_S, (long long)vocab);
      nne_names_mark_unavailable(names, name, reason);
      continue;
    }
    if (ro->entry >= 0) {
      const nne_names_site_entry_t *e =
          nne_names_site(names, (size_t)ro->entry);
      const nne_names_view_t *vw = &e->site.view;
      /* Only a pattern must be a softmax: another name on the same value
       * (the scores, when a wrong map points the pattern at the softmax's
       * input) is not judged by it. The reason names no layer, so one
       * warning covers every layer that fails. */
      if (r->want_sums && r->sums_checked && is_pattern(e->name) &&
          !(r->max_sum_err <= 1e-3)) {
        snprintf(reason, sizeof reason,
                 "its rows do not sum to 1: not a softmax over keys");
        nne_names_mark_unavailable(names, name, reason);
        continue;
      }
      if (vw->parts > 0) {
        int64_t last = r->ndim > 0 ? r->shape[r->ndim - 1] : 0;
        int64_t unit = vw->heads_view ? (int64_t)n_heads * vw->parts
                                      : (int64_t)vw->parts;
        if (vw->heads_view && n_heads <= 0) {
          nne_names_mark_unavailable(names, name,
                                     "needs config.n_heads in model.json to "
                                     "split the fused projection per head");
          continue;
        }
        if (unit <= 0 || last % unit != 0) {
          snprintf(reason, sizeof reason,
                   "the last dimension of %s (%lld) does not split into %d "
                   "parts%s",
                   s1, (long long)last, vw->parts,
                   vw->heads_view ? " per head" : "");
          nne_names_mark_unavailable(names, name, reason);
          continue;
        }
      }
    }
  }
  rc = 0;
  goto out;
oom:
  rc = nne_err_set(err, NNE_ENOMEM, "out of memory validating names");
out:
  nne_tensor_unref(ids);
  nne_tensor_unref(logits);
  nne_variant_unref(v);
  free(idx);
  free(p.sites);
  free(p.ok);
  free(p.recs);
  free(p.roles);
  return rc;
}
