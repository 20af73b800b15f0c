/* build.c — building one model's names: the module tree, the family's
 * standard names and sites expanded over the layers, the checks for
 * load-time validation, then user renames; and the warnings collected on
 * the way. (internal.h says how the result is laid out.) */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/vec.h"
#include "names/internal.h"

/* ---- warnings, spellings, aliases ---------------------------------------- */

int nne__add_warning_str(nne_names_t *nm, const char *w) {
  if (w == NULL ||
      NNE_VEC_GROW(&nm->warnings, &nm->cap_warnings, nm->n_warnings + 1) != 0)
    return -1;
  nm->warnings[nm->n_warnings++] = w;
  return 0;
}

int nne_names_add_warning(nne_names_t *names, const char *fmt, ...) {
  char buf[NNE_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return nne__add_warning(names, "%s", buf) != 0 ? NNE_ENOMEM : 0;
}

int nne__add_name(nne_names_t *nm, const char *name, int module,
                  const char *reason, int layer, int std, int kind) {
  nne__mname_t *e;
  if (NNE_VEC_GROW(&nm->names, &nm->cap_names, nm->n_names + 1) != 0)
    return -1;
  e = &nm->names[nm->n_names];
  e->name = name;
  e->module = module;
  e->reason = reason;
  e->layer = layer;
  e->std = std;
  e->kind = kind;
  e->via = -1;
  return (int)nm->n_names++;
}

int nne__add_alias(nne_names_t *nm, int module, const char *name,
                   bool standard) {
  if (NNE_VEC_GROW(&nm->aliases, &nm->cap_aliases, nm->n_aliases + 1) != 0)
    return -1;
  nm->aliases[nm->n_aliases].module = module;
  nm->aliases[nm->n_aliases].seq = (uint32_t)nm->n_aliases;
  nm->aliases[nm->n_aliases].name = name;
  nm->aliases[nm->n_aliases].standard = standard;
  nm->n_aliases++;
  return 0;
}

void nne__format_layers(char *buf, size_t cap, const unsigned char *set,
                        int n) {
  int i = 0, j;
  size_t o = 0;
  buf[0] = '\0';
  while (i < n) {
    if (!set[i]) {
      i++;
      continue;
    }
    for (j = i; j + 1 < n && set[j + 1]; j++)
      ;
    if (o < cap)
      o += (size_t)snprintf(buf + o, cap - o, "%s%d", o ? ", " : "", i);
    if (j > i && o < cap)
      o += (size_t)snprintf(buf + o, cap - o, "..%d", j);
    i = j + 1;
  }
}

/* Installs a standard/extra name. A raw path of the same spelling wins. */
static int install_std(nne_names_t *nm, const char *name, int module,
                       const char *reason, int layer, int std) {
  int e = nne__add_name(nm, name, module, reason, layer, std, NK_STD), r;
  if (e < 0)
    return -1;
  if (nne_map_put(&nm->std_ht, name, strlen(name), e) < 0)
    return -1;
  r = nne_map_put(&nm->mod_ht, name, strlen(name), e);
  if (r < 0)
    return -1;
  if (r == 1) {
    const nne__mname_t *o =
        &nm->names[nne__lookup(&nm->mod_ht, name, strlen(name))];
    if (o->module != module)
      return nne__add_warning(
          nm,
          "standard name %s is also the raw path of another "
          "module; the raw path wins",
          name);
  }
  return module >= 0 ? nne__add_alias(nm, module, name, true) : 0;
}

/* Expands one standard/extra module name over the layers. */
static int build_std_module(nne_names_t *nm, const nne__family_t *f, int id) {
  const nne__fam_mod_t *d = nne__fam_mod(f, id);
  const char *tmpl_name = nne__fam_mod_name(f, id);
  bool layered = nne__is_layered(tmpl_name);
  int i, n = layered ? nm->n_layers : 1, n_missing = 0;
  unsigned char *miss = NULL;
  char rel[NAME_MAX_LEN + 1], path[2 * NAME_MAX_LEN + 2], nbuf[256];

  if (layered && n > 0 && (miss = calloc((size_t)n, 1)) == NULL)
    return -1;
  for (i = 0; i < n; i++) {
    const char *name, *reason = NULL;
    int module = -1;
    if (!nne__expand(nbuf, sizeof nbuf, tmpl_name, i) ||
        (name = nne_arena_strdup(&nm->arena, nbuf)) == NULL)
      goto fail;
    if (d->tmpl == NULL) {
      reason = d->reason;
    } else if (nne__expand(rel, sizeof rel, d->tmpl, i) &&
               nne__join(path, sizeof path, nm->prefix, rel) &&
               (module = nne__raw_index(nm, path)) >= 0) {
      /* found */
    } else {
      reason = nne_arena_printf(
          &nm->arena, "the %s map says %s, which is not in this model",
          nm->family, path);
      if (reason == NULL)
        goto fail;
      n_missing++;
      if (miss != NULL)
        miss[i] = 1;
    }
    if (install_std(nm, name, module, reason, layered ? i : -1, id) != 0)
      goto fail;
  }
  if (n_missing > 0) {
    char layers[256];
    if (layered) {
      nne__format_layers(layers, sizeof layers, miss, n);
      if (nne__add_warning(nm,
                           "%s: the %s map says %s, which is not in this model "
                           "(layer%s %s)",
                           tmpl_name, nm->family, d->tmpl,
                           n_missing > 1 ? "s" : "", layers) != 0)
        goto fail;
    } else if (nne__add_warning(nm,
                                "%s: the %s map says %s, which is not in this "
                                "model",
                                tmpl_name, nm->family, d->tmpl) != 0) {
      goto fail;
    }
  }
  free(miss);
  return 0;
fail:
  free(miss);
  return -1;
}

static int add_site_entry(nne_names_t *nm, const char *name, const char *tl,
                          int layer) {
  size_t need = nm->n_sites + 1;
  nne_names_site_entry_t *se;
  if (NNE_VEC_GROW(&nm->sites, &nm->cap_sites, need) != 0 ||
      NNE_VEC_GROW(&nm->site_via, &nm->cap_site_via, need) != 0 ||
      NNE_VEC_GROW(&nm->site_layer, &nm->cap_site_layer, need) != 0)
    return -1;
  se = &nm->sites[nm->n_sites];
  memset(se, 0, sizeof *se);
  se->name = name;
  se->tl_name = tl;
  nm->site_via[nm->n_sites] = -1;
  nm->site_layer[nm->n_sites] = layer;
  if (nne_map_put(&nm->site_ht, name, strlen(name), (int32_t)nm->n_sites) !=
          0 ||
      (tl != NULL &&
       nne_map_put(&nm->site_ht, tl, strlen(tl), (int32_t)nm->n_sites) != 0))
    return -1;
  return (int)nm->n_sites++;
}

/* One standard site at one layer (layer -1: not per layer). Returns 0, or
 * 1 when the site is missing from the model for a reason other than an
 * unavailable standard module (to be warned about), or -1. */
static int build_site(nne_names_t *nm, const nne__family_t *f, size_t sid,
                      int layer) {
  const nne__fam_site_t *d = &f->sites[sid];
  char nbuf[256], tbuf[256], sbuf[NAME_MAX_LEN + 1], why[NNE_ERR_MSG_MAX / 2];
  const char *name, *tl = NULL;
  nne_names_site_entry_t *se;
  nne__site_syn_t syn;
  int e, rc, module, via;

  if (!nne__expand(nbuf, sizeof nbuf, nne__std_sites[sid].name, layer) ||
      (name = nne_arena_strdup(&nm->arena, nbuf)) == NULL)
    return -1;
  if (nne__std_sites[sid].tl != NULL &&
      (!nne__expand(tbuf, sizeof tbuf, nne__std_sites[sid].tl, layer) ||
       (tl = nne_arena_strdup(&nm->arena, tbuf)) == NULL))
    return -1;
  if ((e = add_site_entry(nm, name, tl, layer)) < 0)
    return -1;
  se = &nm->sites[e];
  if (d->tmpl == NULL) {
    se->reason = d->reason;
    return 0;
  }
  if (!nne__expand(sbuf, sizeof sbuf, d->tmpl, layer) ||
      nne__site_parse(sbuf, &syn, why, sizeof why) != 1)
    return -1; /* checked when the map was loaded */
  rc = nne__resolve_core(nm, sbuf, syn.mod_len, true, &module, &via, why,
                         sizeof why);
  if (rc == 0 && nne__site_fill(nm, &syn, module, &se->site)) {
    se->available = true;
    se->site.view = d->view;
    snprintf(se->site.standard, sizeof se->site.standard, "%s", name);
    nm->site_via[e] = via;
    if (d->view.parts == 0) {
      const char *canon = nne_arena_strdup(&nm->arena, se->site.canonical);
      if (canon == NULL ||
          nne_map_put(&nm->canon_ht, canon, strlen(canon), e) < 0)
        return -1;
    }
    return 0;
  }
  if (rc == 0)
    se->reason = "the site's canonical form is too long";
  else if (rc == NNE_ESTATE)
    se->reason = nne_arena_strdup(&nm->arena, why);
  else
    se->reason = nne_arena_printf(&nm->arena,
                                  "the %s map says %s, and %.*s is not in this "
                                  "model",
                                  nm->family, sbuf, (int)syn.mod_len, sbuf);
  if (se->reason == NULL)
    return -1;
  return rc == NNE_ESTATE ? 0 : 1;
}

static int build_sites(nne_names_t *nm, const nne__family_t *f) {
  size_t sid, first_layered = N_SS;
  int i, r;
  unsigned char *miss[N_SS];
  int rc = -1;

  memset(miss, 0, sizeof miss);
  for (sid = 0; sid < N_SS; sid++) {
    if (!nne__is_layered(nne__std_sites[sid].name))
      continue;
    if (first_layered == N_SS)
      first_layered = sid;
    if (nm->n_layers > 0 &&
        (miss[sid] = calloc((size_t)nm->n_layers, 1)) == NULL)
      goto out;
  }
  /* embed (the sites before the first per-layer one), then per layer, then
   * logits (the rest) */
  for (sid = 0; sid < first_layered; sid++)
    if ((r = build_site(nm, f, sid, -1)) < 0 ||
        (r > 0 && nne__add_warning(nm, "%s: %s", nne__std_sites[sid].name,
                                   nm->sites[nm->n_sites - 1].reason) != 0))
      goto out;
  for (i = 0; i < nm->n_layers; i++)
    for (sid = first_layered; sid < N_SS; sid++) {
      if (!nne__is_layered(nne__std_sites[sid].name))
        continue;
      if ((r = build_site(nm, f, sid, i)) < 0)
        goto out;
      if (r > 0)
        miss[sid][i] = 1;
    }
  for (sid = first_layered; sid < N_SS; sid++) {
    if (nne__is_layered(nne__std_sites[sid].name))
      continue;
    if ((r = build_site(nm, f, sid, -1)) < 0 ||
        (r > 0 && nne__add_warning(nm, "%s: %s", nne__std_sites[sid].name,
                                   nm->sites[nm->n_sites - 1].reason) != 0))
      goto out;
  }
  for (sid = 0; sid < N_SS; sid++) {
    char layers[256];
    if (miss[sid] == NULL || memchr(miss[sid], 1, (size_t)nm->n_layers) == NULL)
      continue;
    nne__format_layers(layers, sizeof layers, miss[sid], nm->n_layers);
    if (nne__add_warning(nm,
                         "%s: the %s map says %s, which is not in this model "
                         "(layers %s)",
                         nne__std_sites[sid].name, nm->family,
                         f->sites[sid].tmpl, layers) != 0)
      goto out;
  }
  rc = 0;
out:
  for (sid = 0; sid < N_SS; sid++)
    free(miss[sid]);
  return rc;
}

static int add_check(nne_names_t *nm, const nne__family_t *f,
                     const nne__fam_check_t *c, int layer) {
  char nbuf[256];
  const char *tmpl = nne__fam_mod_name(f, c->id);
  int e;
  if (!nne__expand(nbuf, sizeof nbuf, tmpl, layer))
    return -1;
  e = nne__lookup(&nm->std_ht, nbuf, strlen(nbuf));
  if (e < 0 || nm->names[e].module < 0)
    return 0; /* not in this model: already warned */
  if (NNE_VEC_GROW(&nm->checks, &nm->cap_checks, nm->n_checks + 1) != 0)
    return -1;
  nm->checks[nm->n_checks].name = nm->names[e].name;
  nm->checks[nm->n_checks].module = nm->names[e].module;
  nm->checks[nm->n_checks].input0 = c->input0;
  nm->checks[nm->n_checks].output0 = c->output0;
  nm->n_checks++;
  return 0;
}

static int build_checks(nne_names_t *nm, const nne__family_t *f) {
  size_t k;
  int i;
  /* checks are sorted by id: standard before the layers, per layer, then
   * the rest (ln_final, lm_head, extras). */
  for (k = 0; k < f->n_checks; k++)
    if (f->checks[k].id < SM_LAYER && add_check(nm, f, &f->checks[k], -1) != 0)
      return -1;
  for (i = 0; i < nm->n_layers; i++)
    for (k = 0; k < f->n_checks; k++)
      if (nne__is_layered(nne__fam_mod_name(f, f->checks[k].id)) &&
          add_check(nm, f, &f->checks[k], i) != 0)
        return -1;
  for (k = 0; k < f->n_checks; k++)
    if (f->checks[k].id > SM_LAYER &&
        !nne__is_layered(nne__fam_mod_name(f, f->checks[k].id)) &&
        add_check(nm, f, &f->checks[k], -1) != 0)
      return -1;
  return 0;
}

/* ---- build: the whole ---------------------------------------------------- */

static int cmp_alias(const void *a, const void *b) {
  const nne__alias_t *x = a, *y = b;
  if (x->module != y->module)
    return x->module < y->module ? -1 : 1;
  return (x->seq > y->seq) - (x->seq < y->seq);
}

static int finish_aliases(nne_names_t *nm) {
  size_t i;
  nm->alias_start = calloc(nm->n_mods, sizeof *nm->alias_start);
  nm->alias_n = calloc(nm->n_mods, sizeof *nm->alias_n);
  if (nm->alias_start == NULL || nm->alias_n == NULL)
    return -1;
  if (nm->n_aliases > 0) /* qsort's array may not be NULL, even empty */
    qsort(nm->aliases, nm->n_aliases, sizeof *nm->aliases, cmp_alias);
  for (i = nm->n_aliases; i-- > 0;) {
    nm->alias_start[nm->aliases[i].module] = (uint32_t)i;
    nm->alias_n[nm->aliases[i].module]++;
  }
  return 0;
}

/* Copies and checks the tree; installs raw paths. */
static int copy_tree(nne_names_t *nm, const nne_names_module_t *mods, size_t n,
                     nne_err_t *err) {
  size_t i;
  if (n == 0 || n > (size_t)INT_MAX / 4)
    return nne_err_set(err, NNE_EINVAL, "module tree: %zu modules", n);
  nm->mods = calloc(n, sizeof *nm->mods);
  nm->mod_layer = malloc(n * sizeof *nm->mod_layer);
  if (nm->mods == NULL || nm->mod_layer == NULL)
    return nne__oom(err);
  nm->n_mods = n;
  for (i = 0; i < n; i++) {
    const nne_names_module_t *m = &mods[i];
    int e, r;
    if (m->path == NULL || m->class_name == NULL)
      return nne_err_set(err, NNE_EINVAL, "module tree: module %zu has no %s",
                         i, m->path == NULL ? "path" : "class");
    if (i == 0 ? m->parent != -1 || m->path[0] != '\0'
               : m->parent < 0 || (size_t)m->parent >= i)
      return nne_err_set(err, NNE_EINVAL,
                         "module tree: module %zu ('%s') has parent %d (the "
                         "tree must be in pre-order with the root first)",
                         i, m->path, m->parent);
    nm->mods[i].path = nne_arena_strdup(&nm->arena, m->path);
    nm->mods[i].class_name = nne_arena_strdup(&nm->arena, m->class_name);
    nm->mods[i].parent = m->parent;
    nm->mod_layer[i] = -1;
    if (nm->mods[i].path == NULL || nm->mods[i].class_name == NULL ||
        (e = nne__add_name(nm, nm->mods[i].path, (int)i, NULL, -1, -1,
                           NK_RAW)) < 0 ||
        (r = nne_map_put(&nm->mod_ht, nm->mods[i].path,
                         strlen(nm->mods[i].path), e)) < 0)
      return nne__oom(err);
    if (r == 1)
      return nne_err_set(err, NNE_EINVAL, "module tree: duplicate path '%s'",
                         m->path);
  }
  return 0;
}

/* Finds the layer list and counts its blocks (children 0..n-1); sets the
 * layer of every module inside a block. */
static int find_layers(nne_names_t *nm, const nne__family_t *f) {
  char path[2 * NAME_MAX_LEN + 2];
  unsigned char *seen;
  int list, n = 0;
  size_t i;

  if (!nne__join(path, sizeof path, nm->prefix, f->mods[SM_LAYERS].tmpl) ||
      (list = nne__raw_index(nm, path)) < 0)
    return 0;
  if ((nm->layers_path = nm->mods[list].path) == NULL)
    return -1;
  seen = calloc(nm->n_mods + 1, 1);
  if (seen == NULL)
    return -1;
  for (i = 1; i < nm->n_mods; i++) {
    const char *last;
    if (nm->mods[i].parent != list)
      continue;
    last = strrchr(nm->mods[i].path, '.');
    last = last != NULL ? last + 1 : nm->mods[i].path;
    if (last[0] != '\0' && strspn(last, "0123456789") == strlen(last) &&
        strlen(last) < 8 && (size_t)atoi(last) < nm->n_mods)
      seen[atoi(last)] = 1;
  }
  while ((size_t)n < nm->n_mods && seen[n])
    n++;
  free(seen);
  nm->n_layers = n;
  for (i = 1; i < nm->n_mods; i++) {
    int p = nm->mods[i].parent;
    if (p == list) {
      const char *last = strrchr(nm->mods[i].path, '.');
      last = last != NULL ? last + 1 : nm->mods[i].path;
      if (last[0] != '\0' && strspn(last, "0123456789") == strlen(last) &&
          strlen(last) < 8 && atoi(last) < n)
        nm->mod_layer[i] = atoi(last);
    } else {
      nm->mod_layer[i] = nm->mod_layer[p];
    }
  }
  for (i = 0; i < nm->n_names; i++)
    nm->names[i].layer = nm->mod_layer[nm->names[i].module];
  return 0;
}

int nne_names_build(const nne_family_set_t *set, const char *forced_family,
                    const nne_names_module_t *mods, size_t n_mods,
                    const nne_names_rename_t *renames, size_t n_renames,
                    nne_names_t **out, nne_err_t *err) {
  nne_names_t *nm = calloc(1, sizeof *nm);
  const nne__family_t *f = NULL;
  const char *root = "";
  int rc, id;
  size_t k;

  *out = NULL;
  if (nm == NULL)
    return nne__oom(err);
  nm->family = "";
  nm->reason = "";
  nm->prefix = "";
  nm->layers_path = "";
  if ((rc = copy_tree(nm, mods, n_mods, err)) != 0 ||
      (rc = nne__detect(nm, set, forced_family, &f, &root, err)) != 0)
    goto fail;
  if (f != NULL) {
    if ((nm->family = nne_arena_strdup(&nm->arena, f->name)) == NULL ||
        (nm->prefix = nne_arena_strdup(&nm->arena, root)) == NULL ||
        find_layers(nm, f) != 0)
      goto nomem;
    /* (A missing list is warned about with the other missing names.) */
    if (nm->n_layers == 0 && nm->layers_path[0] != '\0' &&
        nne__add_warning(nm,
                         "layers: %s has no block 0: per-layer names are "
                         "unavailable",
                         nm->layers_path) != 0)
      goto nomem;
    for (id = 0; id < N_SM; id++)
      if (build_std_module(nm, f, id) != 0)
        goto nomem;
    for (k = 0; k < f->n_extras; k++)
      if (build_std_module(nm, f, N_SM + (int)k) != 0)
        goto nomem;
    if (build_sites(nm, f) != 0 || build_checks(nm, f) != 0)
      goto nomem;
  } else if (nne__add_warning(
                 nm, "no family map matches this model (by class "
                     "names or module structure): only raw paths "
                     "and aliases from model.json resolve; set "
                     "\"family\" in model.json to use standard names") != 0) {
    goto nomem;
  }
  if (nne__apply_renames(nm, renames, n_renames) != 0 ||
      finish_aliases(nm) != 0)
    goto nomem;
  *out = nm;
  return 0;
nomem:
  rc = nne__oom(err);
fail:
  nne_names_free(nm);
  return rc;
}

void nne_names_free(nne_names_t *nm) {
  size_t i;
  if (nm == NULL)
    return;
  for (i = 0; i < nm->n_groups; i++)
    free(nm->groups[i].layers);
  free(nm->groups);
  free(nm->warnings);
  free(nm->checks);
  free(nm->sites);
  free(nm->site_via);
  free(nm->site_layer);
  nne_map_free(&nm->site_ht);
  nne_map_free(&nm->canon_ht);
  free(nm->alias_start);
  free(nm->alias_n);
  free(nm->aliases);
  nne_map_free(&nm->mod_ht);
  nne_map_free(&nm->std_ht);
  free(nm->names);
  free(nm->mod_layer);
  free(nm->mods);
  nne_arena_free(&nm->arena);
  free(nm);
}
