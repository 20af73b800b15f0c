/* mark.c — the load-time check's results: marking standard names and sites
 * unavailable (with the reason), and the merged warnings that say so. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/vec.h"
#include "names/internal.h"

/* Records a warning for `name` (layer `layer` of template `tmpl`, or not
 * per layer when layer < 0), merged with earlier ones of the same template
 * and reason. Best effort: out of memory loses the warning, not the mark. */
static void mark_warning(nne_names_t *nm, const char *name, const char *tmpl,
                         int layer, const char *reason) {
  nne__mark_group_t *g = NULL;
  char layers[256];
  size_t i, cnt = 0;
  const char *w;

  if (layer < 0 || nm->n_layers <= 0) {
    nne__add_warning(nm, "%s is unavailable: %s", name, reason);
    return;
  }
  for (i = 0; i < nm->n_groups; i++)
    if (strcmp(nm->groups[i].tmpl, tmpl) == 0 &&
        strcmp(nm->groups[i].reason, reason) == 0) {
      g = &nm->groups[i];
      break;
    }
  if (g == NULL) {
    if (NNE_VEC_GROW(&nm->groups, &nm->cap_groups, nm->n_groups + 1) != 0)
      return;
    g = &nm->groups[nm->n_groups];
    g->tmpl = nne_arena_strdup(&nm->arena, tmpl);
    g->reason = nne_arena_strdup(&nm->arena, reason);
    g->layers = calloc((size_t)nm->n_layers, 1);
    if (g->tmpl == NULL || g->reason == NULL || g->layers == NULL ||
        nne__add_warning(nm, "%s is unavailable: %s", name, reason) != 0) {
      free(g->layers);
      return;
    }
    g->warning = nm->n_warnings - 1;
    g->layers[layer] = 1;
    nm->n_groups++;
    return;
  }
  g->layers[layer] = 1;
  for (i = 0; i < (size_t)nm->n_layers; i++)
    cnt += g->layers[i];
  nne__format_layers(layers, sizeof layers, g->layers, nm->n_layers);
  w = nne_arena_printf(&nm->arena, "%s is unavailable in %zu layers (%s): %s",
                       g->tmpl, cnt, layers, g->reason);
  if (w != NULL)
    nm->warnings[g->warning] = w; /* the old text stays valid in the arena */
}

/* The template of a per-layer name: its layer component replaced by {i}. */
static const char *name_template(char *buf, size_t cap, const char *name) {
  size_t start, clen;
  long v;
  if (nne__layer_component(name, strlen(name), &start, &clen, &v) != 0 ||
      (size_t)snprintf(buf, cap, "%.*s{i}%s", (int)start, name,
                       name + start + clen) >= cap)
    return name;
  return buf;
}

/* Takes `name` out of module's alias list (the Describe view). */
static void drop_alias(nne_names_t *names, int module, const char *name) {
  uint32_t s = names->alias_start[module], n = names->alias_n[module], k;
  for (k = 0; k < n; k++)
    if (names->aliases[s + k].name == name)
      break;
  if (k < n) {
    memmove(&names->aliases[s + k], &names->aliases[s + k + 1],
            (n - k - 1) * sizeof *names->aliases);
    names->alias_n[module]--;
  }
}

void nne_names_mark_unavailable(nne_names_t *names, const char *standard,
                                const char *reason) {
  char tbuf[NAME_MAX_LEN + 8];
  const char *why;
  size_t len = strlen(standard), i;
  int e;

  if (reason == NULL || reason[0] == '\0')
    reason = "failed validation";
  if (len > NAME_MAX_LEN)
    return;
  e = nne__lookup(&names->std_ht, standard, len);
  if (e >= 0) {
    nne__mname_t *m = &names->names[e];
    int module = m->module;
    if (module < 0)
      return; /* already unavailable */
    if ((why = nne_arena_strdup(&names->arena, reason)) == NULL)
      return;
    m->module = -1;
    m->reason = why;
    /* Not an alias of its module any more. */
    drop_alias(names, module, m->name);
    /* Nor are the user's aliases defined through it: they named what the
     * map claimed, and the claim is wrong. */
    for (i = 0; i < names->n_names; i++) {
      nne__mname_t *u = &names->names[i];
      if (u->kind != NK_USER || u->via != e || u->module < 0)
        continue;
      drop_alias(names, u->module, u->name);
      u->module = -1;
      u->reason = why;
      mark_warning(names, u->name, name_template(tbuf, sizeof tbuf, u->name),
                   u->layer, why);
    }
    /* Sites resolved through it go with it. */
    for (i = 0; i < names->n_sites; i++)
      if (names->site_via[i] == e && names->sites[i].available) {
        const char *r = nne_arena_printf(&names->arena, "%s is unavailable: %s",
                                         m->name, why);
        names->sites[i].available = false;
        names->sites[i].reason = r != NULL ? r : why;
      }
    mark_warning(names, m->name, name_template(tbuf, sizeof tbuf, m->name),
                 m->layer, why);
    return;
  }
  e = nne__lookup(&names->site_ht, standard, len);
  if (e >= 0) {
    nne_names_site_entry_t *se = &names->sites[e];
    if (!se->available)
      return;
    if ((why = nne_arena_strdup(&names->arena, reason)) == NULL)
      return;
    se->available = false;
    se->reason = why;
    if (se->site.view.parts == 0 &&
        nne__lookup(&names->canon_ht, se->site.canonical,
                    strlen(se->site.canonical)) == e)
      nne_map_set(&names->canon_ht, se->site.canonical,
                  strlen(se->site.canonical), -1);
    mark_warning(names, se->name, name_template(tbuf, sizeof tbuf, se->name),
                 names->site_layer[e], why);
  }
}
