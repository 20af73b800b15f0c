/* family.c — family maps: parsing the JSON maps (builtin and overrides)
 * into families, and the family set that holds them.
 *
 * Family map format
 * -----------------
 * One JSON object per family: daemon/names/<family>.json, compiled in
 * through names/builtin.h, or any *.json in the override directory (the
 * file name does not matter; "family" does). Unknown keys are errors at
 * every level, so a typo fails at load with the file, the line and the key.
 *
 *   "family"         canonical name, [a-z][a-z0-9_]*: "gpt_neox".
 *   "aliases"        other spellings model.json's "family" may use, compared
 *                    without regard to case: ["neox", "pythia"].
 *   "comment"        free text: a string or an array of strings.
 *   "detect"         {"classes": [...], "structure": [...]}.
 *                    classes: TorchScript class names of the family's root
 *                    module ("GPT2LMHeadModel"). The outermost module of such
 *                    a class (root, child or grandchild) becomes the family
 *                    root, so a wrapper around the HF model still works.
 *                    structure: paths that must exist under the family root,
 *                    {i} standing for layer 0; together with the layer list
 *                    (which must have a child "0") they are the family's
 *                    structural signature.
 *   "modules"        every standard module name of NAMES.md except
 *                    "layers.{i}" (always "layers" + ".{i}") → a path
 *                    template relative to the family root, or
 *                    {"unavailable": "why"} when the family has no such
 *                    module. A per-layer name ("layers.{i}.mlp") needs a
 *                    template that starts with the layer list's path + ".{i}".
 *   "extra_modules"  family-specific names shown and resolved like standard
 *                    ones (Gemma's post-norms); same values as "modules".
 *   "sites"          every standard site → a site string in the grammar of
 *                    names.h. Its MODULE is a standard or extra name, such a
 *                    name followed by a raw sub-path
 *                    ("layers.{i}.self_attn.c_attn"), or a path relative to
 *                    the family root. Or {"site": "...", "view": {"parts": 3,
 *                    "part": 0, "heads": false}, "comment": "..."} for part
 *                    of a fused value, or {"unavailable": "why"}.
 *   "checks"         standard/extra module name → {"input": "BSD",
 *                    "output": "BSD" | "BSV"}: what load-time validation
 *                    expects of input 0 and output element 0.
 *
 * Detection order: a class match whose structure also matches; else the
 * family whose structural signature matches with the most paths (a tie is
 * ambiguous: no family, with a warning); else a class match alone (warned).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jansson.h>

#include "base/vec.h"
#include "names/builtin.h"
#include "names/internal.h"

/* Family map files are a few KiB. */
#define MAP_FILE_MAX (1u << 20)

/* Where a map is being parsed, for messages. */
typedef struct mapctx {
  nne_arena_t *arena;
  const char *file, *text;
  size_t len;
  nne_err_t *err;
} mapctx_t;

static const char *memfind(const char *p, const char *end, const char *needle) {
  size_t nl = strlen(needle);
  for (; p + nl <= end; p++)
    if (memcmp(p, needle, nl) == 0)
      return p;
  return NULL;
}

/* The line of "key" inside the object "section" (best effort: jansson does
 * not keep positions of parsed values); 0 when not found. */
static int key_line(const mapctx_t *c, const char *section, const char *key) {
  const char *end = c->text + c->len, *p = c->text, *q;
  char needle[300];
  int line = 1;
  if (section != NULL) {
    snprintf(needle, sizeof needle, "\"%s\"", section);
    q = memfind(p, end, needle);
    if (q != NULL)
      p = q;
  }
  if (key != NULL) {
    snprintf(needle, sizeof needle, "\"%s\"", key);
    q = memfind(p, end, needle);
    if (q == NULL)
      return 0;
    p = q;
  }
  for (q = c->text; q < p; q++)
    if (*q == '\n')
      line++;
  return line;
}

static int map_err(const mapctx_t *c, const char *section, const char *key,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int map_err(const mapctx_t *c, const char *section, const char *key,
                   const char *fmt, ...) {
  char msg[NNE_ERR_MSG_MAX], where[NNE_ERR_MSG_MAX / 2];
  int line = key_line(c, section, key);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (section != NULL && key != NULL)
    snprintf(where, sizeof where, "%s: \"%s\": ", section, key);
  else if (section != NULL || key != NULL)
    snprintf(where, sizeof where, "\"%s\": ", section ? section : key);
  else
    where[0] = '\0';
  if (line > 0)
    return nne_err_set(c->err, NNE_EINVAL, "%s: line %d: %s%s", c->file, line,
                       where, msg);
  return nne_err_set(c->err, NNE_EINVAL, "%s: %s%s", c->file, where, msg);
}

/* Only the keys in `allowed` (NULL-terminated). */
static int check_keys(const mapctx_t *c, json_t *obj, const char *section,
                      const char *const *allowed) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    size_t i;
    char list[256] = "";
    for (i = 0; allowed[i] != NULL; i++)
      if (strcmp(allowed[i], key) == 0)
        break;
    if (allowed[i] != NULL)
      continue;
    for (i = 0; allowed[i] != NULL; i++) {
      size_t l = strlen(list);
      snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", allowed[i]);
    }
    return map_err(c, section, key, "unknown key (expected %s)", list);
  }
  return 0;
}

static int get_strings(const mapctx_t *c, json_t *v, const char *section,
                       const char *key, bool (*ok)(const char *),
                       const char ***out, size_t *n) {
  size_t i;
  if (v == NULL || json_is_null(v)) {
    *out = NULL;
    *n = 0;
    return 0;
  }
  if (!json_is_array(v))
    return map_err(c, section, key, "must be an array of strings");
  *n = json_array_size(v);
  *out = nne_arena_alloc(c->arena, (*n ? *n : 1) * sizeof **out);
  if (*out == NULL)
    return nne__oom(c->err);
  for (i = 0; i < *n; i++) {
    json_t *s = json_array_get(v, i);
    if (!json_is_string(s) || (ok != NULL && !ok(json_string_value(s))))
      return map_err(c, section, key, "entry %zu is not %s", i,
                     json_is_string(s) ? "well formed" : "a string");
    if (((*out)[i] = nne_arena_strdup(c->arena, json_string_value(s))) == NULL)
      return nne__oom(c->err);
  }
  return 0;
}

static bool ok_alias(const char *s) {
  size_t i;
  if (s[0] == '\0' || strlen(s) > 64)
    return false;
  for (i = 0; s[i] != '\0'; i++)
    if (!nne__is_ident_char(s[i]) && s[i] != '-' && s[i] != '.')
      return false;
  return true;
}

static bool ok_class(const char *s) {
  return s[0] != '\0' && nne__is_path(s, strlen(s), false) && !strchr(s, '.');
}

/* A path template: a dotted path once {i} is replaced by 0. */
static bool ok_template(const char *s) {
  char buf[NAME_MAX_LEN + 1];
  return nne__expand(buf, sizeof buf, s, 0) &&
         nne__is_path(buf, strlen(buf), false);
}

static int parse_comment(const mapctx_t *c, json_t *v, const char *section,
                         const char *key) {
  size_t i;
  if (v == NULL || json_is_string(v))
    return 0;
  if (json_is_array(v)) {
    for (i = 0; i < json_array_size(v); i++)
      if (!json_is_string(json_array_get(v, i)))
        break;
    if (i == json_array_size(v))
      return 0;
  }
  return map_err(c, section, key,
                 "\"comment\" must be a string or an array of strings");
}

/* A "modules" / "extra_modules" value. `layers` is the layer list's path
 * (for checking per-layer templates), NULL while parsing "layers" itself. */
static int parse_mod(const mapctx_t *c, const char *section, const char *key,
                     json_t *v, const char *layers, nne__fam_mod_t *out) {
  static const char *const keys[] = {"unavailable", "comment", NULL};
  bool layered = nne__is_layered(key);
  const char *t;
  int rc;

  if (json_is_object(v)) {
    json_t *r = json_object_get(v, "unavailable");
    if ((rc = check_keys(c, v, section, keys)) != 0 ||
        (rc = parse_comment(c, json_object_get(v, "comment"), section, key)))
      return rc;
    if (!json_is_string(r) || json_string_length(r) == 0)
      return map_err(c, section, key,
                     "expected a path template or {\"unavailable\": \"why\"}");
    out->tmpl = NULL;
    out->reason = nne_arena_strdup(c->arena, json_string_value(r));
    return out->reason != NULL ? 0 : nne__oom(c->err);
  }
  if (!json_is_string(v))
    return map_err(c, section, key,
                   "expected a path template or {\"unavailable\": \"why\"}");
  t = json_string_value(v);
  if (!ok_template(t))
    return map_err(c, section, key,
                   "\"%s\" is not a module path (dotted names, {i} for the "
                   "layer index)",
                   t);
  if (layered && !nne__is_layered(t))
    return map_err(c, section, key,
                   "template \"%s\" has no {i}: a per-layer name needs one", t);
  if (!layered && nne__is_layered(t))
    return map_err(c, section, key,
                   "template \"%s\" has {i} but the name is not per layer", t);
  if (layered && layers != NULL) {
    size_t ll = strlen(layers);
    if (strncmp(t, layers, ll) != 0 || strncmp(t + ll, ".{i}", 4) != 0 ||
        (t[ll + 4] != '\0' && t[ll + 4] != '.'))
      return map_err(c, section, key,
                     "template \"%s\" is not under the layer list \"%s.{i}\"",
                     t, layers);
  }
  out->tmpl = nne_arena_strdup(c->arena, t);
  out->reason = NULL;
  return out->tmpl != NULL ? 0 : nne__oom(c->err);
}

/* A site string from a map: the grammar, with {i} standing for a layer. */
static int check_site_string(const mapctx_t *c, const char *key,
                             const char *s) {
  char buf[NAME_MAX_LEN + 1], why[256];
  nne__site_syn_t syn;
  int r;
  bool layered = nne__is_layered(key);

  if (layered != nne__is_layered(s))
    return map_err(c, "sites", key,
                   layered ? "site \"%s\" has no {i}: a per-layer site needs "
                             "one"
                           : "site \"%s\" has {i} but the site is not per "
                             "layer",
                   s);
  if (!nne__expand(buf, sizeof buf, s, 0))
    return map_err(c, "sites", key, "site is too long");
  r = nne__site_parse(buf, &syn, why, sizeof why);
  if (r == 0)
    return map_err(c, "sites", key,
                   "\"%s\" is not a site (MODULE.input[.N], "
                   "MODULE.output[.N], MODULE:KIND#K[.input.N])",
                   s);
  if (r < 0)
    return map_err(c, "sites", key, "\"%s\" is not a site: %s", s, why);
  if (!nne__is_path(buf, syn.mod_len, true))
    return map_err(c, "sites", key, "\"%s\": '%.*s' is not a module path", s,
                   (int)syn.mod_len, buf);
  return 0;
}

static int parse_site(const mapctx_t *c, const char *key, json_t *v,
                      nne__fam_site_t *out) {
  static const char *const keys[] = {"site", "view", "unavailable", "comment",
                                     NULL};
  static const char *const vkeys[] = {"parts", "part", "heads", NULL};
  json_t *s, *view, *r;
  int rc;

  memset(out, 0, sizeof *out);
  if (json_is_string(v)) {
    s = v;
  } else if (json_is_object(v)) {
    if ((rc = check_keys(c, v, "sites", keys)) != 0 ||
        (rc = parse_comment(c, json_object_get(v, "comment"), "sites", key)))
      return rc;
    s = json_object_get(v, "site");
    r = json_object_get(v, "unavailable");
    view = json_object_get(v, "view");
    if ((s == NULL) == (r == NULL))
      return map_err(c, "sites", key,
                     "give either \"site\" or \"unavailable\"");
    if (r != NULL) {
      if (!json_is_string(r) || json_string_length(r) == 0 || view != NULL)
        return map_err(c, "sites", key,
                       "\"unavailable\" takes a reason (and no view)");
      out->reason = nne_arena_strdup(c->arena, json_string_value(r));
      return out->reason != NULL ? 0 : nne__oom(c->err);
    }
    if (view != NULL) {
      json_t *parts, *part, *heads;
      if (!json_is_object(view))
        return map_err(c, "sites", key, "\"view\" must be an object");
      if ((rc = check_keys(c, view, "sites", vkeys)) != 0)
        return rc;
      parts = json_object_get(view, "parts");
      part = json_object_get(view, "part");
      heads = json_object_get(view, "heads");
      if (!json_is_integer(parts) || json_integer_value(parts) < 2 ||
          json_integer_value(parts) > 64)
        return map_err(c, "sites", key, "view: \"parts\" must be 2..64");
      if (!json_is_integer(part) || json_integer_value(part) < 0 ||
          json_integer_value(part) >= json_integer_value(parts))
        return map_err(c, "sites", key, "view: \"part\" must be 0..parts-1");
      if (heads != NULL && !json_is_boolean(heads))
        return map_err(c, "sites", key, "view: \"heads\" must be a boolean");
      out->view.parts = (int)json_integer_value(parts);
      out->view.part = (int)json_integer_value(part);
      out->view.heads_view = heads != NULL && json_is_true(heads);
    }
  } else {
    return map_err(c, "sites", key,
                   "expected a site string, {\"site\": ..., \"view\": ...} "
                   "or {\"unavailable\": \"why\"}");
  }
  if (!json_is_string(s))
    return map_err(c, "sites", key, "\"site\" must be a string");
  if ((rc = check_site_string(c, key, json_string_value(s))) != 0)
    return rc;
  out->tmpl = nne_arena_strdup(c->arena, json_string_value(s));
  return out->tmpl != NULL ? 0 : nne__oom(c->err);
}

static int parse_shape(const mapctx_t *c, const char *key, json_t *v,
                       nne_names_shape_t *out) {
  *out = NNE_NAMES_SHAPE_NONE;
  if (v == NULL || json_is_null(v))
    return 0;
  if (json_is_string(v) && strcmp(json_string_value(v), "BSD") == 0)
    *out = NNE_NAMES_SHAPE_BSD;
  else if (json_is_string(v) && strcmp(json_string_value(v), "BSV") == 0)
    *out = NNE_NAMES_SHAPE_BSV;
  else
    return map_err(c, "checks", key,
                   "a shape is \"BSD\" ([batch, seq, d_model]) or \"BSV\" "
                   "([batch, seq, vocab])");
  return 0;
}

static int extra_id(const nne__family_t *f, const char *name) {
  size_t i;
  for (i = 0; i < f->n_extras; i++)
    if (strcmp(f->extras[i].name, name) == 0)
      return N_SM + (int)i;
  return -1;
}

const nne__fam_mod_t *nne__fam_mod(const nne__family_t *f, int id) {
  return id < N_SM ? &f->mods[id] : &f->extras[id - N_SM].def;
}

const char *nne__fam_mod_name(const nne__family_t *f, int id) {
  return id < N_SM ? nne__std_modules[id] : f->extras[id - N_SM].name;
}

/* An extra name: dotted identifiers, optionally after "layers.{i}.". */
static bool ok_extra_name(const char *s) {
  if (strncmp(s, "layers.{i}.", 11) == 0)
    s += 11;
  return nne__is_path(s, strlen(s), false);
}

static int cmp_check(const void *a, const void *b) {
  const nne__fam_check_t *x = a, *y = b;
  return (x->id > y->id) - (x->id < y->id);
}

static int family_parse(nne_arena_t *arena, const char *file, const char *text,
                        size_t len, nne__family_t **out, nne_err_t *err) {
  static const char *const top_keys[] = {"family", "aliases", "comment",
                                         "detect", "modules", "extra_modules",
                                         "sites",  "checks",  NULL};
  static const char *const detect_keys[] = {"classes", "structure", NULL};
  static const char *const check_keys_[] = {"input", "output", NULL};
  mapctx_t c = {arena, file, text, len, err};
  json_error_t je;
  json_t *root, *v, *mods, *sites, *val;
  const char *key, *name;
  nne__family_t *f;
  int rc = 0, id;
  size_t i;

  root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (root == NULL)
    return nne_err_set(err, NNE_EINVAL, "%s: line %d column %d: %s", file,
                       je.line, je.column, je.text);
  f = nne_arena_alloc(arena, sizeof *f);
  if (f == NULL) {
    rc = nne__oom(err);
    goto out;
  }
  memset(f, 0, sizeof *f);
  if ((f->file = nne_arena_strdup(arena, file)) == NULL) {
    rc = nne__oom(err);
    goto out;
  }
  if (!json_is_object(root)) {
    rc = map_err(&c, NULL, NULL, "a family map is a JSON object");
    goto out;
  }
  if ((rc = check_keys(&c, root, NULL, top_keys)) != 0 ||
      (rc = parse_comment(&c, json_object_get(root, "comment"), NULL,
                          "comment")) != 0)
    goto out;

  /* family, aliases */
  v = json_object_get(root, "family");
  name = json_is_string(v) ? json_string_value(v) : NULL;
  if (name == NULL || name[0] < 'a' || name[0] > 'z' || strlen(name) > 32 ||
      strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(name)) {
    rc = map_err(&c, NULL, "family",
                 "required: the family's name, [a-z][a-z0-9_]*, at most 32 "
                 "characters");
    goto out;
  }
  if ((f->name = nne_arena_strdup(arena, name)) == NULL) {
    rc = nne__oom(err);
    goto out;
  }
  if ((rc = get_strings(&c, json_object_get(root, "aliases"), NULL, "aliases",
                        ok_alias, &f->aliases, &f->n_aliases)) != 0)
    goto out;

  /* detect */
  v = json_object_get(root, "detect");
  if (!json_is_object(v)) {
    rc = map_err(&c, NULL, "detect",
                 "required: {\"classes\": [...], \"structure\": [...]}");
    goto out;
  }
  if ((rc = check_keys(&c, v, "detect", detect_keys)) != 0 ||
      (rc = get_strings(&c, json_object_get(v, "classes"), "detect", "classes",
                        ok_class, &f->classes, &f->n_classes)) ||
      (rc = get_strings(&c, json_object_get(v, "structure"), "detect",
                        "structure", ok_template, &f->structure,
                        &f->n_structure)))
    goto out;
  if (f->n_structure == 0) {
    rc = map_err(&c, "detect", "structure",
                 "required: at least one path that every model of the "
                 "family has");
    goto out;
  }

  /* modules: "layers" first, since per-layer templates must be under it */
  mods = json_object_get(root, "modules");
  if (!json_is_object(mods)) {
    rc = map_err(&c, NULL, "modules",
                 "required: standard module name → path template");
    goto out;
  }
  v = json_object_get(mods, "layers");
  if (v == NULL) {
    rc = map_err(&c, NULL, "modules",
                 "\"layers\" (the path of the block list) is missing");
    goto out;
  }
  if (!json_is_string(v)) {
    rc = map_err(&c, "modules", "layers",
                 "must be the path of the block list, e.g. \"transformer.h\"");
    goto out;
  }
  if ((rc = parse_mod(&c, "modules", "layers", v, NULL, &f->mods[SM_LAYERS])))
    goto out;
  json_object_foreach(mods, key, val) {
    id = nne__std_module_id(key);
    if (id == SM_LAYERS)
      continue;
    if (id == SM_LAYER) {
      rc = map_err(&c, "modules", key,
                   "is always \"layers\" + \".{i}\": do not give it");
      goto out;
    }
    if (id < 0) {
      rc = map_err(&c, "modules", key,
                   "not a standard module name (embed_tokens, "
                   "embed_positions, layers, layers.{i}.ln_attn, "
                   "layers.{i}.self_attn, layers.{i}.ln_mlp, layers.{i}.mlp, "
                   "ln_final, lm_head); family-specific names go in "
                   "\"extra_modules\"");
      goto out;
    }
    if ((rc = parse_mod(&c, "modules", key, val, f->mods[SM_LAYERS].tmpl,
                        &f->mods[id])) != 0)
      goto out;
  }
  for (id = 0; id < N_SM; id++)
    if (id != SM_LAYER && f->mods[id].tmpl == NULL &&
        f->mods[id].reason == NULL) {
      rc = map_err(&c, NULL, "modules",
                   "\"%s\" is missing (give a path template, or "
                   "{\"unavailable\": \"why\"})",
                   nne__std_modules[id]);
      goto out;
    }
  if ((f->mods[SM_LAYER].tmpl = nne_arena_printf(
           arena, "%s.{i}", f->mods[SM_LAYERS].tmpl)) == NULL) {
    rc = nne__oom(err);
    goto out;
  }

  /* extra_modules */
  v = json_object_get(root, "extra_modules");
  if (v != NULL) {
    if (!json_is_object(v)) {
      rc = map_err(&c, NULL, "extra_modules", "must be an object");
      goto out;
    }
    f->extras =
        nne_arena_alloc(arena, (json_object_size(v) + 1) * sizeof *f->extras);
    if (f->extras == NULL) {
      rc = nne__oom(err);
      goto out;
    }
    json_object_foreach(v, key, val) {
      nne__fam_extra_t *x = &f->extras[f->n_extras];
      if (!ok_extra_name(key) || strlen(key) > 100) {
        rc = map_err(&c, "extra_modules", key,
                     "a name is dotted identifiers, optionally after "
                     "\"layers.{i}.\"");
        goto out;
      }
      if (nne__std_module_id(key) >= 0 || nne__std_site_id(key) >= 0) {
        rc = map_err(&c, "extra_modules", key,
                     "is a standard name: give it under \"%s\"",
                     nne__std_module_id(key) >= 0 ? "modules" : "sites");
        goto out;
      }
      if ((x->name = nne_arena_strdup(arena, key)) == NULL) {
        rc = nne__oom(err);
        goto out;
      }
      if ((rc = parse_mod(&c, "extra_modules", key, val,
                          f->mods[SM_LAYERS].tmpl, &x->def)) != 0)
        goto out;
      f->n_extras++;
    }
  }

  /* sites */
  sites = json_object_get(root, "sites");
  if (!json_is_object(sites)) {
    rc = map_err(&c, NULL, "sites", "required: standard site → site string");
    goto out;
  }
  json_object_foreach(sites, key, val) {
    int sid = nne__std_site_id(key);
    if (sid < 0) {
      rc = map_err(&c, "sites", key,
                   "not a standard site (embed, layers.{i}.resid_pre, ..., "
                   "logits: see NAMES.md)");
      goto out;
    }
    if ((rc = parse_site(&c, key, val, &f->sites[sid])) != 0)
      goto out;
  }
  for (i = 0; i < N_SS; i++)
    if (f->sites[i].tmpl == NULL && f->sites[i].reason == NULL) {
      rc = map_err(&c, NULL, "sites",
                   "\"%s\" is missing (give a site, or {\"unavailable\": "
                   "\"why\"})",
                   nne__std_sites[i].name);
      goto out;
    }

  /* checks */
  v = json_object_get(root, "checks");
  if (v != NULL) {
    if (!json_is_object(v)) {
      rc = map_err(&c, NULL, "checks", "must be an object");
      goto out;
    }
    f->checks =
        nne_arena_alloc(arena, (json_object_size(v) + 1) * sizeof *f->checks);
    if (f->checks == NULL) {
      rc = nne__oom(err);
      goto out;
    }
    json_object_foreach(v, key, val) {
      nne__fam_check_t *ck = &f->checks[f->n_checks];
      id = nne__std_module_id(key);
      if (id < 0)
        id = extra_id(f, key);
      if (id < 0) {
        rc = map_err(&c, "checks", key,
                     "not a standard module name or an extra module");
        goto out;
      }
      if (nne__fam_mod(f, id)->tmpl == NULL) {
        rc = map_err(&c, "checks", key,
                     "is unavailable in this map, so it cannot be checked");
        goto out;
      }
      if (!json_is_object(val)) {
        rc = map_err(&c, "checks", key,
                     "expected {\"input\": shape, \"output\": shape}");
        goto out;
      }
      if ((rc = check_keys(&c, val, "checks", check_keys_)) != 0 ||
          (rc = parse_shape(&c, key, json_object_get(val, "input"),
                            &ck->input0)) != 0 ||
          (rc = parse_shape(&c, key, json_object_get(val, "output"),
                            &ck->output0)) != 0)
        goto out;
      if (ck->input0 == NNE_NAMES_SHAPE_NONE &&
          ck->output0 == NNE_NAMES_SHAPE_NONE) {
        rc = map_err(&c, "checks", key, "checks nothing");
        goto out;
      }
      ck->id = id;
      f->n_checks++;
    }
    if (f->n_checks > 0)
      qsort(f->checks, f->n_checks, sizeof *f->checks, cmp_check);
  }
  *out = f;
out:
  json_decref(root);
  return rc;
}

/* ---- family set --------------------------------------------------------- */

const nne__family_t *nne__family_find(const nne_family_set_t *set,
                                      const char *name, size_t *index) {
  size_t i, k;
  for (i = 0; i < set->n; i++) {
    const nne__family_t *f = set->fams[i];
    if (strcasecmp(f->name, name) == 0)
      goto found;
    for (k = 0; k < f->n_aliases; k++)
      if (strcasecmp(f->aliases[k], name) == 0)
        goto found;
    continue;
  found:
    if (index != NULL)
      *index = i;
    return f;
  }
  return NULL;
}

/* Adds a parsed family. One from the override directory replaces a
 * builtin one of the same name; any other clash is an error. */
static int set_add(nne_family_set_t *set, nne__family_t *f, nne_err_t *err) {
  size_t i;
  for (i = 0; i < set->n; i++) {
    if (strcmp(set->fams[i]->name, f->name) != 0)
      continue;
    if (!f->from_override || set->fams[i]->from_override)
      return nne_err_set(err, NNE_EINVAL,
                         "%s: family \"%s\" is also defined by %s", f->file,
                         f->name, set->fams[i]->file);
    set->fams[i] = f; /* the builtin stays in the arena, unused */
    return 0;
  }
  if (NNE_VEC_GROW(&set->fams, &set->cap, set->n + 1) != 0)
    return nne__oom(err);
  set->fams[set->n++] = f;
  return 0;
}

static int cmp_json_name(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int read_file(const char *path, char **text, size_t *len,
                     nne_err_t *err) {
  FILE *fp = fopen(path, "rb");
  char *buf;
  size_t n;
  if (fp == NULL)
    return nne_err_set(err, NNE_EIO, "%s: %s", path, strerror(errno));
  buf = malloc(MAP_FILE_MAX + 1);
  if (buf == NULL) {
    fclose(fp);
    return nne__oom(err);
  }
  n = fread(buf, 1, MAP_FILE_MAX + 1, fp);
  if (ferror(fp)) {
    fclose(fp);
    free(buf);
    return nne_err_set(err, NNE_EIO, "%s: read error", path);
  }
  fclose(fp);
  if (n > MAP_FILE_MAX) {
    free(buf);
    return nne_err_set(err, NNE_EINVAL, "%s: larger than %u bytes", path,
                       MAP_FILE_MAX);
  }
  *text = buf;
  *len = n;
  return 0;
}

static int load_dir(nne_family_set_t *set, const char *dir, nne_err_t *err) {
  DIR *d = opendir(dir);
  struct dirent *de;
  char **files = NULL, path[PATH_MAX];
  size_t n = 0, cap = 0, i;
  int rc = 0;

  if (d == NULL) {
    if (errno == ENOENT)
      return 0; /* no overrides */
    return nne_err_set(err, NNE_EIO, "family maps %s: %s", dir,
                       strerror(errno));
  }
  while ((de = readdir(d)) != NULL) {
    size_t l = strlen(de->d_name);
    if (l < 6 || de->d_name[0] == '.' ||
        strcmp(de->d_name + l - 5, ".json") != 0)
      continue;
    if (NNE_VEC_GROW(&files, &cap, n + 1) != 0 ||
        (files[n] = strdup(de->d_name)) == NULL) {
      rc = nne__oom(err);
      goto out;
    }
    n++;
  }
  if (n > 0)
    qsort(files, n, sizeof *files, cmp_json_name);
  for (i = 0; i < n && rc == 0; i++) {
    char *text = NULL;
    size_t len = 0;
    nne__family_t *f;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, files[i]) >=
        sizeof path) {
      rc = nne_err_set(err, NNE_EINVAL, "%s/%s: path too long", dir, files[i]);
      break;
    }
    if ((rc = read_file(path, &text, &len, err)) != 0)
      break;
    rc = family_parse(&set->arena, path, text, len, &f, err);
    free(text);
    if (rc == 0) {
      f->from_override = true;
      rc = set_add(set, f, err);
    }
  }
out:
  closedir(d);
  for (i = 0; i < n; i++)
    free(files[i]);
  free(files);
  return rc;
}

static int cmp_family(const void *a, const void *b) {
  return strcmp((*(const nne__family_t *const *)a)->name,
                (*(const nne__family_t *const *)b)->name);
}

int nne_family_set_load(const char *override_dir, nne_family_set_t **out,
                        nne_err_t *err) {
  nne_family_set_t *set = calloc(1, sizeof *set);
  size_t i, k;
  int rc = 0;

  *out = NULL;
  if (set == NULL)
    return nne__oom(err);
  for (i = 0; i < nne_names_builtin_count; i++) {
    nne__family_t *f;
    if ((rc = family_parse(&set->arena, nne_names_builtin[i].name,
                           nne_names_builtin[i].text, nne_names_builtin[i].len,
                           &f, err)) != 0 ||
        (rc = set_add(set, f, err)) != 0)
      goto fail;
  }
  if (override_dir != NULL && override_dir[0] != '\0' &&
      (rc = load_dir(set, override_dir, err)) != 0)
    goto fail;
  /* Every name and alias must pick exactly one family. */
  for (i = 0; i < set->n; i++) {
    const nne__family_t *a = set->fams[i], *b;
    for (k = 0; k < a->n_aliases; k++)
      if ((b = nne__family_find(set, a->aliases[k], NULL)) != a) {
        rc = nne_err_set(err, NNE_EINVAL,
                         "%s: alias \"%s\" of family \"%s\" also names "
                         "family \"%s\" (%s)",
                         a->file, a->aliases[k], a->name, b->name, b->file);
        goto fail;
      }
  }
  if (set->n > 0)
    qsort(set->fams, set->n, sizeof *set->fams, cmp_family);
  *out = set;
  return 0;
fail:
  nne_family_set_free(set);
  return rc;
}

void nne_family_set_free(nne_family_set_t *set) {
  if (set == NULL)
    return;
  nne_arena_free(&set->arena);
  free(set->fams);
  free(set);
}

size_t nne_family_set_count(const nne_family_set_t *set) {
  return set != NULL ? set->n : 0;
}

const char *nne_family_set_name(const nne_family_set_t *set, size_t i) {
  return set != NULL && i < set->n ? set->fams[i]->name : NULL;
}
