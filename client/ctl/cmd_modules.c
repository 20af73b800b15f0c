/* cmd_modules.c — `nneditctl modules MODEL` and `nneditctl sites MODEL`:
 * one Describe, two views (the module tree, the standard sites). */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "output.h"

/* The tree as `modules` prints it: each module under its standard name when
 * it has one, its raw path in parentheses, then its class; runs of
 * identical numbered siblings (layers.1 .. layers.11, experts, ...) folded
 * into one line unless --all. */

/* The end of module i's subtree in pre-order: the first later module that
 * is not deeper. */
static size_t subtree_end(const nne_client_model_desc_t *d, size_t i) {
  size_t j;
  for (j = i + 1; j < d->n_modules && d->modules[j].depth > d->modules[i].depth;
       j++)
    ;
  return j;
}

/* True when the path's last component is a number ("transformer.h.3"). */
static bool is_numbered(const char *path) {
  const char *last = strrchr(path, '.');
  last = last ? last + 1 : path;
  if (*last == '\0')
    return false;
  for (; *last; last++)
    if (*last < '0' || *last > '9')
      return false;
  return true;
}

/* Two subtrees are alike when they have the same relative paths and the
 * same classes, module for module. */
static bool same_subtree(const nne_client_model_desc_t *d, size_t a, size_t b) {
  size_t ea = subtree_end(d, a), eb = subtree_end(d, b), k;
  size_t la = strlen(d->modules[a].path), lb = strlen(d->modules[b].path);
  if (ea - a != eb - b ||
      strcmp(d->modules[a].class_name, d->modules[b].class_name) != 0)
    return false;
  for (k = 1; k < ea - a; k++) {
    const nne_client_module_t *x = &d->modules[a + k], *y = &d->modules[b + k];
    if (strlen(x->path) < la || strlen(y->path) < lb ||
        strcmp(x->path + la, y->path + lb) != 0 ||
        strcmp(x->class_name, y->class_name) != 0)
      return false;
  }
  return true;
}

/* The model's root module (not the root of a subtree). */
static bool is_root(const nne_client_module_t *m) {
  return m->parent < 0 && m->path[0] == '\0';
}

/* The name a module is shown by: its first standard name, else its path;
 * the root by its class. */
static const char *module_name(const nne_client_module_t *m) {
  if (m->n_standard_names > 0)
    return m->standard_names[0];
  if (is_root(m))
    return m->class_name;
  return m->path;
}

/* A folded run: modules[first] starts `count` siblings alike to `like`. */
typedef struct fold {
  size_t count;
  size_t last; /* the run's last module */
  size_t like;
} fold_t;

/* Marks, per module, whether it starts a folded run (fold[i].count > 0) or
 * lies inside one (hidden[i]). */
static void tree_fold(const nne_client_model_desc_t *d, fold_t *fold,
                      bool *hidden) {
  size_t p, i;
  for (p = 0; p < d->n_modules; p++) {
    size_t exemplar = SIZE_MAX, run = SIZE_MAX;
    if (hidden[p])
      continue;
    for (i = p + 1; i < d->n_modules; i = subtree_end(d, i)) {
      if (d->modules[i].depth != d->modules[p].depth + 1)
        break; /* past p's subtree */
      if (!is_numbered(d->modules[i].path)) {
        exemplar = run = SIZE_MAX;
        continue;
      }
      if (exemplar != SIZE_MAX && same_subtree(d, exemplar, i)) {
        size_t j, e = subtree_end(d, i);
        if (run == SIZE_MAX) {
          run = i;
          fold[run].like = exemplar;
        }
        fold[run].count++;
        fold[run].last = i;
        for (j = i; j < e; j++)
          hidden[j] = true;
      } else {
        exemplar = i; /* shown in full; later siblings compare to it */
        run = SIZE_MAX;
      }
    }
  }
}

/* The label column: "layers.3.self_attn (transformer.h.3.attn)". */
static void module_label(const nne_client_module_t *m, char *buf, size_t cap) {
  if (is_root(m))
    snprintf(buf, cap, "%s", m->class_name);
  else if (m->n_standard_names > 0 &&
           strcmp(m->standard_names[0], m->path) != 0)
    snprintf(buf, cap, "%s (%s)", m->standard_names[0], m->path);
  else
    snprintf(buf, cap, "%s", m->path);
}

static void tree_table(const nne_client_model_desc_t *d, bool all) {
  fold_t *fold = calloc(d->n_modules ? d->n_modules : 1, sizeof *fold);
  bool *hidden = calloc(d->n_modules ? d->n_modules : 1, sizeof *hidden);
  uint32_t d0 = d->n_modules ? d->modules[0].depth : 0;
  size_t wl = 0, wc = 0, i, k;
  char label[1200], line[4096];

  if (fold == NULL || hidden == NULL) {
    free(fold);
    free(hidden);
    fputs("nneditctl: RESOURCE_EXHAUSTED: out of memory\n", stderr);
    return;
  }
  if (!all)
    tree_fold(d, fold, hidden);
  /* Columns aligned on the widest shown line. */
  for (i = 0; i < d->n_modules; i++) {
    const nne_client_module_t *m = &d->modules[i];
    size_t l;
    if (hidden[i])
      continue;
    module_label(m, label, sizeof label);
    l = 2 * (size_t)(m->depth - d0) + strlen(label);
    if (l > wl)
      wl = l;
    if (!is_root(m) && strlen(m->class_name) > wc)
      wc = strlen(m->class_name);
  }
  for (i = 0; i < d->n_modules; i++) {
    const nne_client_module_t *m = &d->modules[i];
    size_t ind = 2 * (size_t)(m->depth - d0), n = 0;
    if (fold[i].count > 0) {
      const nne_client_module_t *l = &d->modules[fold[i].last];
      if (fold[i].count == 1)
        ctl_line_add(line, sizeof line, &n, "%*s%s", (int)ind, "",
                     module_name(m));
      else
        ctl_line_add(line, sizeof line, &n, "%*s%s .. %s", (int)ind, "",
                     module_name(m), module_name(l));
      ctl_line_add(line, sizeof line, &n, "  (%zu more like %s)", fold[i].count,
                   module_name(&d->modules[fold[i].like]));
      ctl_print_trimmed(line);
    }
    if (hidden[i])
      continue;
    module_label(m, label, sizeof label);
    ctl_line_add(line, sizeof line, &n, "%*s%-*s  %-*s  ", (int)ind, "",
                 (int)(wl - ind), label, (int)wc,
                 is_root(m) ? "" : m->class_name);
    if (m->call_index >= 0)
      ctl_line_add(line, sizeof line, &n, "call %-4d", (int)m->call_index);
    else
      ctl_line_add(line, sizeof line, &n, "%-9s", "not called");
    if (m->param_count > 0)
      ctl_line_add(line, sizeof line, &n, "  %" PRIu64 " params",
                   m->param_count);
    /* Every other name it answers to: more standard names, user aliases. */
    for (k = 1; k < m->n_standard_names; k++)
      ctl_line_add(line, sizeof line, &n, "%s%s", k == 1 ? "  aka " : ", ",
                   m->standard_names[k]);
    for (k = 0; k < m->n_aliases; k++)
      ctl_line_add(line, sizeof line, &n, "%s%s",
                   k == 0 && m->n_standard_names < 2 ? "  aka " : ", ",
                   m->aliases[k]);
    ctl_print_trimmed(line);
  }
  free(fold);
  free(hidden);
}

/* "gpt2-script: GPT2LMHeadModel, family gpt2 (class GPT2LMHeadModel),
 * 12 layers"; for a subtree, "...; module layers.3 (transformer.h.3)". */
static void model_line(const nne_client_model_desc_t *d, const char *module) {
  char fam[200];
  ctl_family_text(&d->model, fam, sizeof fam);
  printf("%s: ", d->model.name);
  if (d->n_modules > 0 && is_root(&d->modules[0]))
    printf("%s, ", d->modules[0].class_name);
  printf("family %s", fam);
  if (d->model.layer_count > 0)
    printf(", %" PRIu32 " layers", d->model.layer_count);
  if (module != NULL && d->n_modules > 0)
    printf("; module %s (%s)", module, d->modules[0].path);
  putchar('\n');
}

static json_t *sites_json(const nne_client_model_desc_t *d) {
  json_t *arr = json_array();
  size_t i;
  for (i = 0; i < d->n_sites; i++) {
    const nne_client_site_t *s = &d->sites[i];
    json_t *view =
        s->view_parts > 0
            ? json_pack("{s:i, s:i, s:b}", "parts", (int)s->view_parts, "part",
                        (int)s->view_part, "heads", (int)s->view_heads)
            : json_null();
    json_array_append_new(
        arr, json_pack("{s:s, s:s, s:b, s:s, s:s, s:s, s:s, s:i, s:o}", "name",
                       s->name, "tl_name", s->tl_name, "available",
                       (int)s->available, "reason", s->reason, "canonical",
                       s->canonical, "module", s->module, "kind",
                       nne_client_site_kind_name(s->kind), "index",
                       (int)s->index, "view", view));
  }
  return arr;
}

/* The per-layer sites of layer K form a group: the run of sites named
 * "layers.K....". Returns K, or -1 for a site outside the layers. */
static long site_layer(const char *name) {
  char *end;
  long k;
  if (strncmp(name, "layers.", 7) != 0 || name[7] < '0' || name[7] > '9')
    return -1;
  k = strtol(name + 7, &end, 10);
  return *end == '.' ? k : -1;
}

/* Copies s into out with every whole occurrence of a token (not followed
 * by a digit, so "layers.1" is not in "layers.12") replaced by "{L}". */
static void templ_str(const char *s, const char *const *tok, size_t ntok,
                      char *out, size_t cap) {
  size_t n = 0, t;
  while (*s && n + 4 < cap) {
    for (t = 0; t < ntok; t++) {
      size_t l = tok[t] ? strlen(tok[t]) : 0;
      if (l > 0 && strncmp(s, tok[t], l) == 0 && (s[l] < '0' || s[l] > '9')) {
        memcpy(out + n, "{L}", 3);
        n += 3;
        s += l;
        break;
      }
    }
    if (t == ntok)
      out[n++] = *s++;
  }
  out[n] = '\0';
}

/* The raw path of layer K (the module named "layers.K"), or NULL when the
 * description does not hold it. */
static const char *layer_path(const nne_client_model_desc_t *d, long k) {
  char want[32];
  size_t i, j;
  snprintf(want, sizeof want, "layers.%ld", k);
  for (i = 0; i < d->n_modules; i++)
    for (j = 0; j < d->modules[i].n_standard_names; j++)
      if (strcmp(d->modules[i].standard_names[j], want) == 0)
        return d->modules[i].path;
  return NULL;
}

/* A site with its layer taken out, for comparing layer groups. */
static void site_templ(const nne_client_model_desc_t *d, size_t i, long k,
                       char *out, size_t cap) {
  const nne_client_site_t *s = &d->sites[i];
  char lname[32], bname[32], a[700], b[700], c[700], r[700];
  const char *tok[3];
  snprintf(lname, sizeof lname, "layers.%ld", k);
  snprintf(bname, sizeof bname, "blocks.%ld", k);
  tok[0] = lname;
  tok[1] = bname;
  tok[2] = layer_path(d, k);
  templ_str(s->name, tok, 3, a, sizeof a);
  templ_str(s->tl_name, tok, 3, b, sizeof b);
  templ_str(s->canonical, tok, 3, c, sizeof c);
  templ_str(s->reason, tok, 3, r, sizeof r);
  snprintf(out, cap, "%s|%s|%d|%s|%s|%d|%d|%d|%d|%d", a, b, (int)s->available,
           c, r, (int)s->kind, (int)s->index, (int)s->view_parts,
           (int)s->view_part, (int)s->view_heads);
}

static size_t site_group_end(const nne_client_model_desc_t *d, size_t i) {
  long k = site_layer(d->sites[i].name);
  size_t j;
  if (k < 0)
    return i + 1;
  for (j = i + 1; j < d->n_sites && site_layer(d->sites[j].name) == k; j++)
    ;
  return j;
}

static bool same_site_group(const nne_client_model_desc_t *d, size_t a,
                            size_t b) {
  size_t ea = site_group_end(d, a), eb = site_group_end(d, b), k;
  long la = site_layer(d->sites[a].name), lb = site_layer(d->sites[b].name);
  char x[3000], y[3000];
  if (la < 0 || lb < 0 || ea - a != eb - b)
    return false;
  for (k = 0; k < ea - a; k++) {
    site_templ(d, a + k, la, x, sizeof x);
    site_templ(d, b + k, lb, y, sizeof y);
    if (strcmp(x, y) != 0)
      return false;
  }
  return true;
}

/* Where a site lives, in words: its raw form, or why it is unavailable. */
static void site_where(const nne_client_site_t *s, char *buf, size_t cap) {
  size_t n = 0;
  if (!s->available) {
    ctl_line_add(buf, cap, &n, "unavailable: %s",
                 s->reason[0] ? s->reason : "?");
    return;
  }
  buf[0] = '\0';
  ctl_line_add(buf, cap, &n, "%s", s->canonical);
  if (s->view_parts > 0)
    ctl_line_add(buf, cap, &n, " [part %d of %d%s]", (int)s->view_part,
                 (int)s->view_parts, s->view_heads ? " per head" : "");
  if (s->reason[0])
    ctl_line_add(buf, cap, &n, "  (%s)", s->reason);
}

static void sites_table(const nne_client_model_desc_t *d, bool all) {
  size_t wn = 4, wt = 15, i, j;
  char where[1400];
  size_t exemplar = SIZE_MAX;

  if (d->n_sites == 0) {
    printf("no standard sites (%s)\n",
           d->model.family[0] ? "none in this module" : "no family detected");
    return;
  }
  for (i = 0; i < d->n_sites; i++) {
    if (strlen(d->sites[i].name) > wn)
      wn = strlen(d->sites[i].name);
    if (strlen(d->sites[i].tl_name) > wt)
      wt = strlen(d->sites[i].tl_name);
  }
  printf("%-*s  %-*s  %s\n", (int)wn, "SITE", (int)wt, "TRANSFORMERLENS",
         "WHERE");
  for (i = 0; i < d->n_sites;) {
    size_t e = site_group_end(d, i);
    if (!all && site_layer(d->sites[i].name) >= 0 && exemplar != SIZE_MAX &&
        same_site_group(d, exemplar, i)) {
      /* Fold this group and the next ones alike into one line. */
      size_t first = i, last = i, count = 0;
      while (i < d->n_sites && site_layer(d->sites[i].name) >= 0 &&
             same_site_group(d, exemplar, i)) {
        last = i;
        count++;
        i = site_group_end(d, i);
      }
      if (count == 1)
        printf("layers.%ld", site_layer(d->sites[first].name));
      else
        printf("layers.%ld .. layers.%ld", site_layer(d->sites[first].name),
               site_layer(d->sites[last].name));
      printf("  (%zu more like layers.%ld)\n", count,
             site_layer(d->sites[exemplar].name));
      continue;
    }
    if (site_layer(d->sites[i].name) >= 0)
      exemplar = i;
    for (j = i; j < e; j++) {
      const nne_client_site_t *s = &d->sites[j];
      char line[2048];
      site_where(s, where, sizeof where);
      snprintf(line, sizeof line, "%-*s  %-*s  %s", (int)wn, s->name, (int)wt,
               s->tl_name[0] ? s->tl_name : "-", where);
      ctl_print_trimmed(line);
    }
    i = e;
  }
}

static json_t *modules_json(const nne_client_model_desc_t *d) {
  json_t *arr = json_array();
  size_t i;
  for (i = 0; i < d->n_modules; i++) {
    const nne_client_module_t *m = &d->modules[i];
    json_array_append_new(
        arr,
        json_pack("{s:s, s:s, s:s, s:i, s:I, s:i, s:I, s:o, s:o}", "path",
                  m->path, "class_name", m->class_name, "type_name",
                  m->type_name, "parent", (int)m->parent, "depth",
                  (json_int_t)m->depth, "call_index", (int)m->call_index,
                  "param_count", (json_int_t)m->param_count, "standard_names",
                  ctl_json_strs(m->standard_names, m->n_standard_names),
                  "aliases", ctl_json_strs(m->aliases, m->n_aliases)));
  }
  return arr;
}

enum { OPT_MODULE, OPT_ALL, OPT_SITES };

/* modules MODEL [--module NAME] [--all] [--sites], and sites MODEL
 * [--module NAME] [--all]: one description, two views. */
static int describe_cmd(ctl_t *c, bool sites_cmd, int argc, char **argv) {
  const char *model = NULL, *module = NULL;
  bool all = false, with_sites = sites_cmd;
  nne_client_model_desc_t d;
  nne_client_err_t err;
  ctl_args_t a;
  int k, rc = 0;

  ctl_args_init(&a, c, argc, argv);
  while ((k = ctl_args_next(&a)) != CTL_ARG_END) {
    if (k == CTL_ARG_HELP)
      return ctl_help(c);
    if (k == CTL_ARG_BAD)
      return CTL_EXIT_USAGE;
    if (k == CTL_ARG_POS && model != NULL)
      return ctl_args_unexpected(&a);
    if (k == CTL_ARG_POS)
      rc = ctl_arg_word(&a, "MODEL", NNE_CLIENT_MODEL_NAME_MAX, &model);
    else if (k == OPT_MODULE)
      rc = ctl_arg_text(&a, NNE_CLIENT_MODULE_NAME_MAX, false, &module);
    else if (k == OPT_ALL)
      all = true;
    else if (k == OPT_SITES)
      with_sites = true;
    if (rc != 0)
      return rc;
  }
  if (model == NULL)
    return ctl_usage(c, "missing MODEL");
  if ((rc = ctl_connect(c)) != 0)
    return rc;
  if (nne_client_models_describe_module(c->cli, model, module, &d, &err) < 0)
    return ctl_call_error(c, &err);

  if (c->output == CTL_OUT_JSON) {
    json_t *doc =
        json_pack("{s:o, s:o}", "model", ctl_info_json(&d.model), "module",
                  module ? json_string(module) : json_null());
    if (doc != NULL && !sites_cmd)
      json_object_set_new(doc, "modules", modules_json(&d));
    if (doc != NULL)
      json_object_set_new(doc, "sites", sites_json(&d));
    rc = ctl_json_out(c, doc);
  } else {
    model_line(&d, module);
    if (!sites_cmd)
      tree_table(&d, all);
    if (with_sites) {
      if (!sites_cmd)
        putchar('\n');
      sites_table(&d, all);
    }
    /* The tokenizer after the tree, on a line of its own (its file path
     * is long), where the model's other notes go. */
    if (d.model.has_tokenizer) {
      char tok[1200];
      ctl_tokenizer_text(&d.model, tok, sizeof tok);
      printf("tokenizer: %s\n", tok);
    }
    if (d.model.state == NNE_CLIENT_MODEL_LOADED) {
      char gen[400];
      ctl_generation_text(&d.model, gen, sizeof gen);
      printf("generation: %s\n", gen);
    }
    ctl_warnings_table(&d.model);
  }
  nne_client_model_desc_free(&d);
  return rc;
}

static int run_modules(ctl_t *c, int argc, char **argv) {
  return describe_cmd(c, false, argc, argv);
}

static int run_sites(ctl_t *c, int argc, char **argv) {
  return describe_cmd(c, true, argc, argv);
}

static const ctl_opt_t modules_opts[] = {
    [OPT_MODULE] = {"--module", NULL, true},
    [OPT_ALL] = {"--all", NULL, false},
    [OPT_SITES] = {"--sites", NULL, false},
    CTL_OPT_END,
};
/* The same indices, without --sites (a sites table is what sites prints). */
static const ctl_opt_t sites_opts[] = {
    [OPT_MODULE] = {"--module", NULL, true},
    [OPT_ALL] = {"--all", NULL, false},
    CTL_OPT_END,
};

const ctl_cmd_t ctl_cmd_modules = {"modules", modules_opts, run_modules, false};
const ctl_cmd_t ctl_cmd_sites = {"sites", sites_opts, run_sites, false};
