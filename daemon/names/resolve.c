/* resolve.c — any spelling of a module or a site to what it names, and
 * the closest valid names when it names nothing.
 *
 * Runs on the request path: lookups in the maps built by build.c, no
 * allocation, no writes, so any number of threads may resolve at once. */
#include <stdio.h>
#include <string.h>

#include "names/internal.h"

/* ---- resolution core ---------------------------------------------------- */

int nne__resolve_core(const nne_names_t *nm, const char *s, size_t len,
                      bool map_ctx, int *module, int *via, char *why,
                      size_t why_len) {
  char buf[2 * NAME_MAX_LEN + 2];
  int e, p, s_std;
  size_t cut;

  *via = -1;
  if (len > NAME_MAX_LEN)
    return NNE_ENOTFOUND;
  e = nne__lookup(&nm->mod_ht, s, len);
  if (e >= 0) {
    const nne__mname_t *m = &nm->names[e];
    if (m->module < 0) {
      snprintf(why, why_len, "%.*s is unavailable: %s", (int)len, s, m->reason);
      return NNE_ESTATE;
    }
    *module = m->module;
    s_std = nne__lookup(&nm->std_ht, s, len);
    *via = s_std >= 0 && nm->names[s_std].module == m->module ? s_std : -1;
    return 0;
  }
  if (map_ctx && nm->prefix[0] != '\0') {
    int n = snprintf(buf, sizeof buf, "%s.%.*s", nm->prefix, (int)len, s);
    if (n > 0 && (size_t)n < sizeof buf &&
        (e = nne__lookup(&nm->mod_ht, buf, (size_t)n)) >= 0 &&
        nm->names[e].kind == NK_RAW) {
      *module = nm->names[e].module;
      return 0;
    }
  }
  /* A standard name or alias followed by a raw sub-path:
   * layers.3.mlp.c_fc → transformer.h.3.mlp.c_fc. The longest prefix that
   * is a name decides. */
  for (cut = len; cut > 0; cut--) {
    const nne__mname_t *m;
    const char *path;
    int n;
    if (s[cut - 1] != '.' || cut == 1)
      continue;
    p = nne__lookup(&nm->mod_ht, s, cut - 1);
    if (p < 0)
      continue;
    m = &nm->names[p];
    if (m->kind == NK_RAW)
      return NNE_ENOTFOUND; /* raw + rest was the whole name */
    if (m->module < 0) {
      snprintf(why, why_len, "%s is unavailable: %s", m->name, m->reason);
      return NNE_ESTATE;
    }
    path = nm->mods[m->module].path;
    n = path[0] != '\0'
            ? snprintf(buf, sizeof buf, "%s.%.*s", path, (int)(len - cut),
                       s + cut)
            : snprintf(buf, sizeof buf, "%.*s", (int)(len - cut), s + cut);
    if (n < 0 || (size_t)n >= sizeof buf)
      return NNE_ENOTFOUND;
    e = nne__lookup(&nm->mod_ht, buf, (size_t)n);
    if (e < 0 || nm->names[e].kind != NK_RAW)
      return NNE_ENOTFOUND;
    /* *via stays -1: a sub-module's value does not depend on whether the
     * standard name above it passed validation. */
    *module = nm->names[e].module;
    return 0;
  }
  return NNE_ENOTFOUND;
}

bool nne__site_fill(const nne_names_t *nm, const nne__site_syn_t *syn,
                    int module, nne_names_site_t *out) {
  memset(out, 0, sizeof *out);
  out->module = module;
  out->kind = syn->kind;
  out->index = syn->index;
  memcpy(out->node_kind, syn->node_kind, sizeof out->node_kind);
  out->node_occurrence = syn->node_occurrence;
  return nne__site_format(out->canonical, sizeof out->canonical,
                          nm->mods[module].path, syn->kind, syn->index,
                          syn->node_kind, syn->node_occurrence);
}

int nne__layer_component(const char *s, size_t len, size_t *start, size_t *clen,
                         long *value) {
  size_t i = 0;
  while (i < len) {
    size_t j = i;
    while (j < len && s[j] != '.')
      j++;
    if (j > i && strspn(s + i, "0123456789") >= j - i) {
      long v = 0;
      size_t k;
      for (k = i; k < j; k++)
        v = v > 100000000L ? v : v * 10 + (s[k] - '0');
      *start = i;
      *clen = j - i;
      *value = v;
      return 0;
    }
    i = j + 1;
  }
  return -1;
}

/* Does `s` name something that exists at layer 0 but asks for a layer past
 * the end? Then that is the error to report. */
static bool out_of_range(const nne_names_t *nm, const char *s, size_t len,
                         bool site) {
  size_t start, clen;
  long v;
  char buf[NAME_MAX_LEN + 2];
  int module, via, e;
  char why[8];

  if (nm->n_layers <= 0 || len > NAME_MAX_LEN ||
      nne__layer_component(s, len, &start, &clen, &v) != 0 || v < nm->n_layers)
    return false;
  memcpy(buf, s, start);
  buf[start] = '0';
  memcpy(buf + start + 1, s + start + clen, len - start - clen);
  buf[len - clen + 1] = '\0';
  if (site) {
    e = nne__lookup(&nm->site_ht, buf, strlen(buf));
    return e >= 0 && nm->site_layer[e] == 0;
  }
  e = nne__resolve_core(nm, buf, strlen(buf), false, &module, &via, why,
                        sizeof why);
  if (e == 0)
    return nm->mod_layer[module] == 0;
  if (e == NNE_ESTATE) {
    e = nne__lookup(&nm->mod_ht, buf, strlen(buf));
    return e >= 0 && nm->names[e].layer == 0;
  }
  return false;
}

static int range_error(const nne_names_t *nm, nne_err_t *err, const char *field,
                       const char *s, size_t len) {
  return nne_err_set(
      err, NNE_EINVAL, "%s%s%.*s: the model has %d layer%s (0..%d)",
      field ? field : "", field && field[0] ? ": " : "", (int)len, s,
      nm->n_layers, nm->n_layers == 1 ? "" : "s", nm->n_layers - 1);
}

/* ---- suggestions -------------------------------------------------------- */

static size_t edit_distance(const char *a, size_t la, const char *b,
                            size_t lb) {
  size_t row[NAME_MAX_LEN + 2], i, j;
  if (lb > NAME_MAX_LEN)
    lb = NAME_MAX_LEN;
  if (la > NAME_MAX_LEN)
    la = NAME_MAX_LEN;
  for (j = 0; j <= lb; j++)
    row[j] = j;
  for (i = 1; i <= la; i++) {
    size_t diag = row[0], tmp;
    row[0] = i;
    for (j = 1; j <= lb; j++) {
      size_t best = diag + (a[i - 1] != b[j - 1]);
      tmp = row[j];
      if (row[j] + 1 < best)
        best = row[j] + 1;
      if (row[j - 1] + 1 < best)
        best = row[j - 1] + 1;
      row[j] = best;
      diag = tmp;
    }
  }
  return row[lb];
}

void nne__suggest_init(nne__suggest_t *sg, const nne_names_t *nm, const char *q,
                       size_t qlen) {
  size_t start, clen;
  long v;
  sg->query = q;
  sg->qlen = qlen;
  sg->n = 0;
  sg->layer = 0;
  sg->with_suffix = true;
  if (nne__layer_component(q, qlen, &start, &clen, &v) == 0 && v < nm->n_layers)
    sg->layer = (int)v;
}

static void suggest_offer(nne__suggest_t *sg, int layer, const char *cand,
                          const char *suffix) {
  char buf[NAME_MAX_LEN + 16];
  size_t d, i, l;
  if (layer >= 0 && layer != sg->layer)
    return;
  l = (size_t)snprintf(buf, sizeof buf, "%s%s", cand, suffix);
  if (l >= sizeof buf)
    return;
  d = sg->with_suffix ? edit_distance(sg->query, sg->qlen, buf, l)
                      : edit_distance(sg->query, sg->qlen, cand, strlen(cand));
  for (i = 0; i < sg->n; i++)
    if (strcmp(sg->best[i].text, buf) == 0)
      return;
  if (sg->n == N_SUGGEST && d >= sg->best[N_SUGGEST - 1].dist)
    return;
  i = sg->n < N_SUGGEST ? sg->n++ : N_SUGGEST - 1;
  while (i > 0 && sg->best[i - 1].dist > d) {
    sg->best[i] = sg->best[i - 1];
    i--;
  }
  sg->best[i].dist = d;
  memcpy(sg->best[i].text, buf, l + 1);
}

void nne__offer_modules(nne__suggest_t *sg, const nne_names_t *nm,
                        const char *suffix) {
  size_t i;
  for (i = 0; i < nm->n_names; i++)
    /* The root's path is "": never a useful suggestion. */
    if (nm->names[i].module >= 0 && nm->names[i].name[0] != '\0')
      suggest_offer(sg, nm->names[i].layer, nm->names[i].name, suffix);
}

static void offer_sites(nne__suggest_t *sg, const nne_names_t *nm) {
  size_t i;
  for (i = 0; i < nm->n_sites; i++) {
    if (!nm->sites[i].available)
      continue;
    suggest_offer(sg, nm->site_layer[i], nm->sites[i].name, "");
    if (nm->sites[i].tl_name != NULL)
      suggest_offer(sg, nm->site_layer[i], nm->sites[i].tl_name, "");
  }
}

void nne__suggest_format(const nne__suggest_t *sg, char *buf, size_t cap) {
  size_t i, o;
  buf[0] = '\0';
  if (sg->n == 0)
    return;
  o = (size_t)snprintf(buf, cap, "; closest: ");
  for (i = 0; i < sg->n && o < cap; i++)
    o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "",
                          sg->best[i].text);
}

/* Does the name look like a standard name or TL site? (For the message
 * when a model has no family.) */
static bool looks_standard(const char *s) {
  static const char *const first[] = {
      "embed_tokens", "embed_positions", "layers",     "ln_final", "lm_head",
      "embed",        "logits",          "hook_embed", "blocks",   NULL};
  size_t i, l = strcspn(s, ".:");
  for (i = 0; first[i] != NULL; i++)
    if (strlen(first[i]) == l && strncmp(first[i], s, l) == 0)
      return true;
  return false;
}

static const char *fieldp(const char *field) {
  return field != NULL ? field : "";
}
static const char *fieldsep(const char *field) {
  return field != NULL && field[0] != '\0' ? ": " : "";
}

/* A standard name asked of a model that no family map matched. */
static int no_family(nne_err_t *err, const char *field, const char *name,
                     const char *verb) {
  return nne_err_set(err, NNE_ESTATE,
                     "%s%s'%s' %s a standard name, but no family map matched "
                     "this model (set \"family\" in model.json)",
                     fieldp(field), fieldsep(field), name, verb);
}

/* ---- public resolution -------------------------------------------------- */

int nne_names_resolve_module(const nne_names_t *names, const char *field,
                             const char *name, int *module, nne_err_t *err) {
  char why[NNE_ERR_MSG_MAX / 2], sug[NNE_ERR_MSG_MAX / 2];
  nne__suggest_t sg;
  size_t len = strlen(name);
  int rc, via;

  if (len > NAME_MAX_LEN)
    return nne_err_set(err, NNE_EINVAL,
                       "%s%sname is %zu characters (at most %d)", fieldp(field),
                       fieldsep(field), len, NAME_MAX_LEN);
  rc =
      nne__resolve_core(names, name, len, false, module, &via, why, sizeof why);
  if (rc == 0)
    return 0;
  if (rc == NNE_ESTATE)
    return nne_err_set(err, NNE_ESTATE, "%s%s%s", fieldp(field),
                       fieldsep(field), why);
  if (out_of_range(names, name, len, false))
    return range_error(names, err, field, name, len);
  if (names->family[0] == '\0' && looks_standard(name))
    return no_family(err, field, name, "is");
  nne__suggest_init(&sg, names, name, len);
  nne__offer_modules(&sg, names, "");
  nne__suggest_format(&sg, sug, sizeof sug);
  return nne_err_set(err, NNE_ENOTFOUND, "%s%sunknown module '%s'%s",
                     fieldp(field), fieldsep(field), name, sug);
}

int nne_names_resolve_site(const nne_names_t *names, const char *field,
                           const char *name, nne_names_site_t *out,
                           nne_err_t *err) {
  char why[NNE_ERR_MSG_MAX / 2], sug[NNE_ERR_MSG_MAX / 2];
  size_t len = strlen(name), cut;
  nne__suggest_t sg;
  nne__site_syn_t syn;
  int e, rc, module, via;

  if (len > NAME_MAX_LEN)
    return nne_err_set(err, NNE_EINVAL,
                       "%s%sname is %zu characters (at most %d)", fieldp(field),
                       fieldsep(field), len, NAME_MAX_LEN);
  e = nne__lookup(&names->site_ht, name, len);
  if (e >= 0) {
    const nne_names_site_entry_t *se = &names->sites[e];
    if (!se->available)
      return nne_err_set(err, NNE_ESTATE, "%s%s%s is unavailable: %s",
                         fieldp(field), fieldsep(field), se->name, se->reason);
    *out = se->site;
    return 0;
  }
  rc = nne__site_parse(name, &syn, why, sizeof why);
  if (rc < 0) {
    nne__suggest_init(&sg, names, name, len);
    offer_sites(&sg, names);
    nne__suggest_format(&sg, sug, sizeof sug);
    return nne_err_set(err, NNE_EINVAL, "%s%smalformed site '%s': %s%s",
                       fieldp(field), fieldsep(field), name, why, sug);
  }
  if (rc == 1) {
    rc = nne__resolve_core(names, name, syn.mod_len, false, &module, &via, why,
                           sizeof why);
    if (rc == NNE_ESTATE)
      return nne_err_set(err, NNE_ESTATE, "%s%ssite '%s': %s", fieldp(field),
                         fieldsep(field), name, why);
    if (rc != 0) {
      if (out_of_range(names, name, syn.mod_len, false))
        return range_error(names, err, field, name, len);
      if (names->family[0] == '\0' && looks_standard(name))
        return no_family(err, field, name, "uses");
      nne__suggest_init(&sg, names, name, syn.mod_len);
      sg.with_suffix = false; /* compare module spellings only */
      nne__offer_modules(&sg, names, syn.suffix);
      nne__suggest_format(&sg, sug, sizeof sug);
      return nne_err_set(
          err, NNE_ENOTFOUND, "%s%ssite '%s': unknown module '%.*s'%s",
          fieldp(field), fieldsep(field), name, (int)syn.mod_len, name, sug);
    }
    if (!nne__site_fill(names, &syn, module, out))
      return nne_err_set(err, NNE_EINVAL, "%s%ssite '%s': too long",
                         fieldp(field), fieldsep(field), name);
    e = nne__lookup(&names->canon_ht, out->canonical, strlen(out->canonical));
    if (e >= 0 && names->sites[e].available)
      snprintf(out->standard, sizeof out->standard, "%s", names->sites[e].name);
    return 0;
  }

  /* Not shaped like a site. */
  if (out_of_range(names, name, len, true))
    return range_error(names, err, field, name, len);
  rc = nne__resolve_core(names, name, len, false, &module, &via, why,
                         sizeof why);
  if (rc == 0 || rc == NNE_ESTATE)
    return nne_err_set(err, NNE_EINVAL,
                       "%s%s'%s' is a module, not a site: say %s.output (or "
                       ".input, .output.N, .input.N, :KIND#K)",
                       fieldp(field), fieldsep(field), name, name);
  if (out_of_range(names, name, len, false))
    return range_error(names, err, field, name, len);
  if (names->family[0] == '\0' && looks_standard(name))
    return no_family(err, field, name, "is");
  nne__suggest_init(&sg, names, name, len);
  offer_sites(&sg, names);
  nne__offer_modules(&sg, names, ".output");
  nne__suggest_format(&sg, sug, sizeof sug);
  /* A module followed by something that is not a site suffix: most often a
   * misspelt standard site (layers.0.resid_pots), so it is an unknown name
   * (NOT_FOUND, as every unknown name) and the message says both readings. */
  for (cut = len; cut > 1; cut--)
    if (name[cut - 1] == '.')
      break;
  if (cut > 1 && nne__resolve_core(names, name, cut - 1, false, &module, &via,
                                   why, sizeof why) == 0)
    return nne_err_set(err, NNE_ENOTFOUND,
                       "%s%sunknown site '%s': not a standard site, and after "
                       "module '%.*s' a site needs .input, .output, .input.N, "
                       ".output.N or :KIND#K%s",
                       fieldp(field), fieldsep(field), name, (int)(cut - 1),
                       name, sug);
  return nne_err_set(err, NNE_ENOTFOUND, "%s%sunknown site '%s'%s",
                     fieldp(field), fieldsep(field), name, sug);
}
