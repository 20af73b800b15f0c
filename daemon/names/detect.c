/* detect.c — which family a model is, from its module tree.
 *
 * Detection order: a class match whose structure also matches; else the
 * family whose structural signature matches with the most paths (a tie is
 * ambiguous: no family, with a warning); else a class match alone (warned).
 * A forced family (model.json) skips detection but still looks for its
 * root. */
#include <stdio.h>
#include <string.h>

#include "names/internal.h"

/* Detection looks for the family root this deep (root = 0). */
#define DETECT_DEPTH 2

int nne__raw_index(const nne_names_t *nm, const char *path) {
  int e = nne__lookup(&nm->mod_ht, path, strlen(path));
  return e >= 0 && nm->names[e].kind == NK_RAW ? nm->names[e].module : -1;
}

/* Does the family's structural signature hold at the module `root`?
 * (`missing` gets the first path that does not exist.) */
static bool structure_ok(const nne_names_t *nm, const nne__family_t *f,
                         const char *root, char *missing, size_t cap) {
  char rel[NAME_MAX_LEN + 1], path[2 * NAME_MAX_LEN + 2];
  size_t i;
  for (i = 0; i <= f->n_structure; i++) {
    const char *t =
        i < f->n_structure ? f->structure[i] : f->mods[SM_LAYER].tmpl;
    if (!nne__expand(rel, sizeof rel, t, 0) ||
        !nne__join(path, sizeof path, root, rel) ||
        nne__raw_index(nm, path) < 0) {
      if (missing != NULL)
        snprintf(missing, cap, "%s", path);
      return false;
    }
  }
  return true;
}

static int module_depth(const nne_names_t *nm, int i) {
  int d = 0;
  while (nm->mods[i].parent >= 0 && d <= DETECT_DEPTH) {
    i = nm->mods[i].parent;
    d++;
  }
  return d;
}

/* Picks the family and its root. */
int nne__detect(nne_names_t *nm, const nne_family_set_t *set,
                const char *forced, const nne__family_t **fam,
                const char **root, nne_err_t *err) {
  const nne__family_t *class_fam = NULL;
  int class_mod = -1;
  size_t i, k, m;
  char missing[2 * NAME_MAX_LEN + 2];

  *fam = NULL;
  *root = "";
  if (forced != NULL && forced[0] != '\0') {
    const nne__family_t *f =
        set != NULL ? nne__family_find(set, forced, NULL) : NULL;
    if (f == NULL) {
      char list[512] = "";
      size_t o = 0;
      for (i = 0; set != NULL && i < set->n && o < sizeof list; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "",
                              set->fams[i]->name);
      return nne_err_set(err, NNE_EINVAL,
                         "\"family\": '%s' is not a known family (known: %s)",
                         forced, list[0] ? list : "none");
    }
    *fam = f;
    nm->reason = "model.json";
    /* Its root: a module of one of its classes, else where its structure
     * holds, else the archive's root. */
    for (m = 0; m < nm->n_mods; m++) {
      if (module_depth(nm, (int)m) > DETECT_DEPTH)
        continue;
      for (k = 0; k < f->n_classes; k++)
        if (strcmp(nm->mods[m].class_name, f->classes[k]) == 0) {
          *root = nm->mods[m].path;
          return 0;
        }
    }
    for (m = 0; m < nm->n_mods; m++)
      if (module_depth(nm, (int)m) <= DETECT_DEPTH &&
          structure_ok(nm, f, nm->mods[m].path, NULL, 0)) {
        *root = nm->mods[m].path;
        return 0;
      }
    return 0;
  }
  if (set == NULL)
    return 0;

  /* 1. A class of a family, within DETECT_DEPTH of the root. */
  for (m = 0; m < nm->n_mods && class_fam == NULL; m++) {
    if (module_depth(nm, (int)m) > DETECT_DEPTH)
      continue;
    for (i = 0; i < set->n && class_fam == NULL; i++)
      for (k = 0; k < set->fams[i]->n_classes; k++)
        if (strcmp(nm->mods[m].class_name, set->fams[i]->classes[k]) == 0) {
          class_fam = set->fams[i];
          class_mod = (int)m;
          break;
        }
  }
  if (class_fam != NULL && structure_ok(nm, class_fam, nm->mods[class_mod].path,
                                        missing, sizeof missing)) {
    *fam = class_fam;
    *root = nm->mods[class_mod].path;
    nm->reason = class_mod == 0
                     ? nne_arena_printf(&nm->arena, "class %s",
                                        nm->mods[class_mod].class_name)
                     : nne_arena_printf(&nm->arena, "class %s at %s",
                                        nm->mods[class_mod].class_name,
                                        nm->mods[class_mod].path);
    return nm->reason != NULL ? 0 : nne__oom(err);
  }

  /* 2. The structure, outermost root first; the most specific signature
   * wins, a tie is ambiguous. */
  for (m = 0; m < nm->n_mods; m++) {
    const nne__family_t *best = NULL, *tie = NULL;
    size_t best_score = 0;
    if (module_depth(nm, (int)m) > DETECT_DEPTH)
      continue;
    for (i = 0; i < set->n; i++) {
      const nne__family_t *f = set->fams[i];
      if (!structure_ok(nm, f, nm->mods[m].path, NULL, 0))
        continue;
      if (best == NULL || f->n_structure > best_score) {
        best = f;
        tie = NULL;
        best_score = f->n_structure;
      } else if (f->n_structure == best_score) {
        tie = f;
      }
    }
    if (best != NULL && tie != NULL) {
      nne__add_warning(
          nm,
          "the module structure%s%s matches the family maps %s and %s "
          "equally; set \"family\" in model.json",
          m ? " at " : "", nm->mods[m].path, best->name, tie->name);
      break;
    }
    if (best != NULL) {
      *fam = best;
      *root = nm->mods[m].path;
      nm->reason = m == 0 ? "structure"
                          : nne_arena_printf(&nm->arena, "structure at %s",
                                             nm->mods[m].path);
      if (class_fam != NULL)
        nne__add_warning(nm,
                         "class %s suggests the family %s, but the structure "
                         "matches %s (no %s)",
                         nm->mods[class_mod].class_name, class_fam->name,
                         best->name, missing);
      return nm->reason != NULL ? 0 : nne__oom(err);
    }
  }

  /* 3. A class alone. */
  if (class_fam != NULL) {
    *fam = class_fam;
    *root = nm->mods[class_mod].path;
    nm->reason = nne_arena_printf(&nm->arena, "class %s",
                                  nm->mods[class_mod].class_name);
    nne__add_warning(
        nm,
        "class %s is of the family %s, but the module structure "
        "does not match its map (no %s): the names that are missing "
        "are unavailable",
        nm->mods[class_mod].class_name, class_fam->name, missing);
    return nm->reason != NULL ? 0 : nne__oom(err);
  }
  return 0;
}
