/* rename.c — user renames: model.json's "names" adds aliases to modules
 * (by raw path or standard name, {i} for every layer); a rename that
 * matches nothing is a warning with suggestions, never an error. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "names/internal.h"

/* Matches s against a pattern where {i} stands for a decimal number (the
 * same number at every {i}). */
static bool pattern_match(const char *p, const char *s, long *iv) {
  long v = -1;
  while (*p != '\0') {
    if (strncmp(p, "{i}", 3) == 0) {
      long x = 0;
      const char *st = s;
      while (isdigit((unsigned char)*s)) {
        x = x * 10 + (*s - '0');
        if (x > 10000000L)
          return false;
        s++;
      }
      if (s == st || (s - st > 1 && *st == '0') || (v >= 0 && v != x))
        return false;
      v = x;
      p += 3;
    } else if (*p++ != *s++) {
      return false;
    }
  }
  if (*s != '\0')
    return false;
  *iv = v;
  return true;
}

static bool ok_user_alias(const char *s) {
  const char *last;
  size_t i, n = strlen(s);
  if (n == 0 || n > 256 || s[0] == '.' || s[n - 1] == '.' || strstr(s, ".."))
    return false;
  for (i = 0; i < n; i++)
    if (!nne__is_ident_char(s[i]) && s[i] != '.' && s[i] != '-')
      return false;
  last = strrchr(s, '.');
  last = last ? last + 1 : s;
  return strcmp(last, "input") != 0 && strcmp(last, "output") != 0;
}

/* The aliases of r for module; via: the standard name r->from matched (an
 * index in nm->names), or -1 when it matched a raw path. */
static int rename_to(nne_names_t *nm, const nne_names_rename_t *r, int module,
                     long iv, int via) {
  size_t k;
  char buf[300];
  for (k = 0; k < r->n_to; k++) {
    const char *to = r->to[k], *alias;
    int e;
    if (to == NULL)
      continue;
    if (nne__is_layered(to) && iv < 0) {
      if (nne__add_warning(nm,
                           "names: alias '%s' for '%s' uses {i}, but '%s' "
                           "does not",
                           to, r->from, r->from) != 0)
        return -1;
      continue;
    }
    if (!nne__expand(buf, sizeof buf, to, (int)iv) || !ok_user_alias(buf)) {
      if (nne__add_warning(nm,
                           "names: alias '%s' for '%s' is not a valid name "
                           "(letters, digits, '_', '-' and '.', not ending "
                           "in .input or .output)",
                           to, r->from) != 0)
        return -1;
      continue;
    }
    e = nne__lookup(&nm->mod_ht, buf, strlen(buf));
    if (e >= 0) {
      if (nm->names[e].module == module)
        continue;
      if (nne__add_warning(nm,
                           "names: alias '%s' for '%s' is already the name of "
                           "%s; ignored",
                           buf, r->from,
                           nm->names[e].module >= 0
                               ? nm->mods[nm->names[e].module].path
                               : nm->names[e].name) != 0)
        return -1;
      continue;
    }
    if ((alias = nne_arena_strdup(&nm->arena, buf)) == NULL)
      return -1;
    e = nne__add_name(nm, alias, module, NULL, nm->mod_layer[module], -1,
                      NK_USER);
    if (e >= 0)
      nm->names[e].via = via;
    if (e < 0 || nne_map_put(&nm->mod_ht, alias, strlen(alias), e) < 0 ||
        nne__add_alias(nm, module, alias, false) != 0)
      return -1;
  }
  return 0;
}

int nne__apply_renames(nne_names_t *nm, const nne_names_rename_t *renames,
                       size_t n) {
  size_t i, k, n_before;
  char why[256], sug[NNE_ERR_MSG_MAX / 2];
  for (i = 0; i < n; i++) {
    const nne_names_rename_t *r = &renames[i];
    size_t matched = 0;
    if (r->from == NULL || r->from[0] == '\0') {
      if (nne__add_warning(nm, "names: an entry with an empty name") != 0)
        return -1;
      continue;
    }
    if (nne__is_layered(r->from)) {
      /* Every module whose raw path or standard name matches; a module
       * matched through both counts once (rename_to skips duplicates). */
      n_before = nm->n_names;
      for (k = 0; k < n_before; k++) {
        long iv;
        const nne__mname_t *m = &nm->names[k];
        if (m->kind == NK_USER || m->module < 0 ||
            !pattern_match(r->from, m->name, &iv))
          continue;
        matched++;
        if (rename_to(nm, r, m->module, iv,
                      m->kind == NK_STD ? (int)k : -1) != 0)
          return -1;
      }
    } else {
      int module, via;
      if (nne__resolve_core(nm, r->from, strlen(r->from), false, &module, &via,
                            why, sizeof why) == 0) {
        matched++;
        if (rename_to(nm, r, module, -1,
                      via >= 0 && nm->names[via].kind == NK_STD ? via : -1) !=
            0)
          return -1;
      }
    }
    if (matched == 0) {
      char q[NAME_MAX_LEN + 1];
      nne__suggest_t sg;
      if (!nne__expand(q, sizeof q, r->from, 0))
        snprintf(q, sizeof q, "%.*s", NAME_MAX_LEN, r->from);
      nne__suggest_init(&sg, nm, q, strlen(q));
      nne__offer_modules(&sg, nm, "");
      nne__suggest_format(&sg, sug, sizeof sug);
      if (nne__add_warning(nm,
                           "names: '%s' matches no module, so its alias%s "
                           "'%s'%s %s not defined%s",
                           r->from, r->n_to > 1 ? "es" : "",
                           r->n_to > 0 && r->to[0] ? r->to[0] : "",
                           r->n_to > 1 ? ", ..." : "",
                           r->n_to > 1 ? "are" : "is", sug) != 0)
        return -1;
    }
  }
  return 0;
}
