/* names.c — see names.h.
 *
 * Family map format
 * -----------------
 * One JSON object per family: daemon/names/<family>.json, compiled in
 * through names_builtin.h, or any *.json in the override directory (the
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
 *
 * One model's names
 * -----------------
 * Everything is expanded once at build time into flat arrays in one arena,
 * with open-addressing hash tables from every spelling to its entry: raw
 * paths, standard names (with their layer index), user aliases, standard
 * sites and their TransformerLens names. Resolution on the request path is
 * one or a few hash lookups; nothing is allocated and nothing is written,
 * so resolving from several threads at once is safe. Building and
 * nne_names_mark_unavailable() must finish before the names are shared.
 *
 * Raw paths always win: a standard name or alias that equals another
 * module's raw path is not installed (with a warning), and marking a
 * standard name unavailable never stops its module's raw path resolving.
 * It does take along the standard sites that are that module's own
 * boundaries (layers.3.mlp → layers.3.mlp_out), but not those on its
 * sub-modules (layers.3.mlp.pre is mlp.c_fc's output and checked on its own).
 *
 * Canonical site forms leave out a zero index and spell any other:
 * MODULE.output, MODULE.input.2, MODULE:KIND#K, MODULE:KIND#K.output.1,
 * MODULE:KIND#K.input (input 0 of the node).
 */
#include "names.h"

#include <ctype.h>
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

#include "names_builtin.h"

/* Longest name a request may spell; longer is surely a mistake. */
#define NAME_MAX_LEN 512
/* Family map files are a few KiB. */
#define MAP_FILE_MAX (1u << 20)
/* Suggestions listed with a "not found". */
#define N_SUGGEST 5
/* Detection looks for the family root this deep (root = 0). */
#define DETECT_DEPTH 2

/* ---- arena ------------------------------------------------------------- */

/* Everything a family set or a model's names own lives in one arena, freed
 * in one call. */
typedef struct chunk {
  struct chunk *next;
  size_t used, cap;
  _Alignas(16) char data[];
} chunk_t;

typedef struct arena {
  chunk_t *head;
} arena_t;

static void *arena_alloc(arena_t *a, size_t n) {
  void *p;
  n = (n + 15) & ~(size_t)15;
  if (a->head == NULL || a->head->cap - a->head->used < n) {
    size_t cap = n > 16384 ? n : 16384;
    chunk_t *c = malloc(sizeof *c + cap);
    if (c == NULL)
      return NULL;
    c->used = 0;
    c->cap = cap;
    c->next = a->head;
    a->head = c;
  }
  p = a->head->data + a->head->used;
  a->head->used += n;
  return p;
}

static void arena_free(arena_t *a) {
  chunk_t *c = a->head, *next;
  for (; c != NULL; c = next) {
    next = c->next;
    free(c);
  }
  a->head = NULL;
}

static char *arena_strndup(arena_t *a, const char *s, size_t n) {
  char *p = arena_alloc(a, n + 1);
  if (p != NULL) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

static char *arena_strdup(arena_t *a, const char *s) {
  return arena_strndup(a, s, strlen(s));
}

static char *arena_printf(arena_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static char *arena_printf(arena_t *a, const char *fmt, ...) {
  va_list ap;
  int n;
  char *p;
  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return NULL;
  p = arena_alloc(a, (size_t)n + 1);
  if (p == NULL)
    return NULL;
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return p;
}

/* Grows a malloc'd array to hold `need` elements; NULL on failure (the old
 * array is then untouched). */
static void *grow(void *arr, size_t *cap, size_t need, size_t elem) {
  size_t ncap;
  void *p;
  if (need <= *cap)
    return arr;
  ncap = *cap ? *cap * 2 : 16;
  while (ncap < need)
    ncap *= 2;
  p = realloc(arr, ncap * elem);
  if (p != NULL)
    *cap = ncap;
  return p;
}

/* ---- hash table: string → int ------------------------------------------ */

typedef struct hslot {
  const char *key; /* NULL: empty; borrowed (arena) */
  uint32_t len, hash;
  int32_t val;
} hslot_t;

typedef struct htab {
  hslot_t *slots;
  size_t cap, n; /* cap: a power of two */
} htab_t;

static uint32_t hash_str(const char *s, size_t len) {
  uint32_t h = 2166136261u;
  size_t i;
  for (i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= 16777619u;
  }
  return h;
}

static int ht_get(const htab_t *t, const char *key, size_t len) {
  uint32_t h;
  size_t i, mask;
  if (t->cap == 0)
    return -1;
  h = hash_str(key, len);
  mask = t->cap - 1;
  for (i = h & mask; t->slots[i].key != NULL; i = (i + 1) & mask)
    if (t->slots[i].hash == h && t->slots[i].len == len &&
        memcmp(t->slots[i].key, key, len) == 0)
      return t->slots[i].val;
  return -1;
}

static int ht_rehash(htab_t *t, size_t ncap) {
  hslot_t *ns = calloc(ncap, sizeof *ns);
  size_t i, j;
  if (ns == NULL)
    return -1;
  for (i = 0; i < t->cap; i++) {
    if (t->slots[i].key == NULL)
      continue;
    for (j = t->slots[i].hash & (ncap - 1); ns[j].key != NULL;
         j = (j + 1) & (ncap - 1))
      ;
    ns[j] = t->slots[i];
  }
  free(t->slots);
  t->slots = ns;
  t->cap = ncap;
  return 0;
}

/* 0: inserted; 1: the key was there (nothing changed); -1: out of memory.
 * The key must outlive the table. */
static int ht_put(htab_t *t, const char *key, int32_t val) {
  size_t len = strlen(key), i, mask;
  uint32_t h = hash_str(key, len);
  if ((t->n + 1) * 2 > t->cap && ht_rehash(t, t->cap ? t->cap * 2 : 64) != 0)
    return -1;
  mask = t->cap - 1;
  for (i = h & mask; t->slots[i].key != NULL; i = (i + 1) & mask)
    if (t->slots[i].hash == h && t->slots[i].len == len &&
        memcmp(t->slots[i].key, key, len) == 0)
      return 1;
  t->slots[i].key = key;
  t->slots[i].len = (uint32_t)len;
  t->slots[i].hash = h;
  t->slots[i].val = val;
  t->n++;
  return 0;
}

/* Replaces the value of an existing key (no-op when absent). */
static void ht_set(htab_t *t, const char *key, int32_t val) {
  size_t len = strlen(key), i, mask;
  uint32_t h = hash_str(key, len);
  if (t->cap == 0)
    return;
  mask = t->cap - 1;
  for (i = h & mask; t->slots[i].key != NULL; i = (i + 1) & mask)
    if (t->slots[i].hash == h && t->slots[i].len == len &&
        memcmp(t->slots[i].key, key, len) == 0) {
      t->slots[i].val = val;
      return;
    }
}

/* ---- the standard names ------------------------------------------------- */

enum {
  SM_EMBED_TOKENS,
  SM_EMBED_POSITIONS,
  SM_LAYERS,
  SM_LAYER,
  SM_LN_ATTN,
  SM_SELF_ATTN,
  SM_LN_MLP,
  SM_MLP,
  SM_LN_FINAL,
  SM_LM_HEAD,
  N_SM
};

/* In forward order; the order of aliases, checks and listings. */
static const char *const std_modules[N_SM] = {
    "embed_tokens",      "embed_positions",    "layers",
    "layers.{i}",        "layers.{i}.ln_attn", "layers.{i}.self_attn",
    "layers.{i}.ln_mlp", "layers.{i}.mlp",     "ln_final",
    "lm_head",
};

/* Standard sites with their TransformerLens spellings, in forward order:
 * the order nne_names_site() lists them in (per layer in between). */
static const struct {
  const char *name, *tl;
} std_sites[] = {
    {"embed", "hook_embed"},
    {"layers.{i}.resid_pre", "blocks.{i}.hook_resid_pre"},
    {"layers.{i}.self_attn.q", "blocks.{i}.attn.hook_q"},
    {"layers.{i}.self_attn.k", "blocks.{i}.attn.hook_k"},
    {"layers.{i}.self_attn.v", "blocks.{i}.attn.hook_v"},
    {"layers.{i}.self_attn.scores", "blocks.{i}.attn.hook_attn_scores"},
    {"layers.{i}.self_attn.pattern", "blocks.{i}.attn.hook_pattern"},
    {"layers.{i}.self_attn.z", "blocks.{i}.attn.hook_z"},
    {"layers.{i}.attn_out", "blocks.{i}.hook_attn_out"},
    {"layers.{i}.resid_mid", "blocks.{i}.hook_resid_mid"},
    {"layers.{i}.mlp.pre", "blocks.{i}.mlp.hook_pre"},
    {"layers.{i}.mlp.post", "blocks.{i}.mlp.hook_post"},
    {"layers.{i}.mlp_out", "blocks.{i}.hook_mlp_out"},
    {"layers.{i}.resid_post", "blocks.{i}.hook_resid_post"},
    {"logits", NULL},
};
#define N_SS (sizeof std_sites / sizeof std_sites[0])

static bool is_layered(const char *tmpl) {
  return strstr(tmpl, "{i}") != NULL;
}

static int std_module_id(const char *name) {
  int i;
  for (i = 0; i < N_SM; i++)
    if (strcmp(std_modules[i], name) == 0)
      return i;
  return -1;
}

static int std_site_id(const char *name) {
  size_t i;
  for (i = 0; i < N_SS; i++)
    if (strcmp(std_sites[i].name, name) == 0)
      return (int)i;
  return -1;
}

/* Writes tmpl with every {i} replaced by i into buf; false if it does not
 * fit. */
static bool expand(char *buf, size_t cap, const char *tmpl, int i) {
  size_t o = 0;
  char num[16];
  int nl = snprintf(num, sizeof num, "%d", i);
  while (*tmpl != '\0') {
    if (strncmp(tmpl, "{i}", 3) == 0) {
      if (o + (size_t)nl >= cap)
        return false;
      memcpy(buf + o, num, (size_t)nl);
      o += (size_t)nl;
      tmpl += 3;
    } else {
      if (o + 1 >= cap)
        return false;
      buf[o++] = *tmpl++;
    }
  }
  buf[o] = '\0';
  return true;
}

/* prefix + "." + rel (or just one of them) into buf; false if too long. */
static bool join(char *buf, size_t cap, const char *prefix, const char *rel) {
  int n;
  if (prefix[0] == '\0')
    n = snprintf(buf, cap, "%s", rel);
  else if (rel[0] == '\0')
    n = snprintf(buf, cap, "%s", prefix);
  else
    n = snprintf(buf, cap, "%s.%s", prefix, rel);
  return n >= 0 && (size_t)n < cap;
}

static bool is_ident_char(int c) {
  return isalnum((unsigned char)c) || c == '_';
}

/* A dotted path of [A-Za-z0-9_]+ components; "" (the root) when allow_empty. */
static bool is_path(const char *s, size_t n, bool allow_empty) {
  size_t i, comp = 0;
  if (n == 0)
    return allow_empty;
  for (i = 0; i < n; i++) {
    if (s[i] == '.') {
      if (comp == 0)
        return false;
      comp = 0;
    } else if (is_ident_char(s[i])) {
      comp++;
    } else {
      return false;
    }
  }
  return comp > 0;
}

/* ---- site grammar ------------------------------------------------------- */

typedef struct site_syn {
  size_t mod_len; /* the module spelling is name[0..mod_len) */
  nne_names_site_kind_t kind;
  int index;
  char node_kind[64];
  int node_occurrence;
  const char *suffix; /* what follows the module spelling */
} site_syn_t;

/* Reads 1..max_digits decimal digits at *p; -1 when there are none or too
 * many. */
static int read_num(const char **p, int max_digits) {
  int v = 0, n = 0;
  while (isdigit((unsigned char)**p)) {
    if (++n > max_digits)
      return -1;
    v = v * 10 + (**p - '0');
    (*p)++;
  }
  return n == 0 ? -1 : v;
}

static bool is_node_kind(const char *s, size_t n) {
  size_t i;
  const char *sep;
  if (n == 0 || n >= sizeof(((site_syn_t *)0)->node_kind))
    return false;
  for (i = 0; i < n; i++)
    if (!is_ident_char(s[i]) && s[i] != ':' && s[i] != '.')
      return false;
  sep = strstr(s, "::");
  return sep != NULL && sep > s && (size_t)(sep - s) + 2 < n && s[n - 1] != ':';
}

/* Parses the site grammar of names.h. 1: parsed into *o; 0: not shaped
 * like a site (no :KIND#K, no trailing .input/.output[.N]); -1: malformed,
 * with the reason in why. */
static int site_parse(const char *s, site_syn_t *o, char *why, size_t why_len) {
  const char *colon = strchr(s, ':'), *p, *last, *prev;
  int v;

  memset(o, 0, sizeof *o);
  if (colon != NULL) {
    const char *hash = strchr(colon + 1, '#');
    o->mod_len = (size_t)(colon - s);
    o->suffix = colon;
    if (hash == NULL) {
      snprintf(why, why_len,
               "a node selector is MODULE:KIND#K (e.g. "
               "layers.0.self_attn:aten::softmax#0)");
      return -1;
    }
    if (!is_node_kind(colon + 1, (size_t)(hash - colon - 1))) {
      snprintf(why, why_len, "'%.*s' is not a node kind like aten::softmax",
               (int)(hash - colon - 1), colon + 1);
      return -1;
    }
    memcpy(o->node_kind, colon + 1, (size_t)(hash - colon - 1));
    o->node_kind[hash - colon - 1] = '\0';
    p = hash + 1;
    if ((o->node_occurrence = read_num(&p, 6)) < 0) {
      snprintf(why, why_len, "expected a node number K after '#'");
      return -1;
    }
    o->kind = NNE_NAMES_SITE_NODE;
    if (*p == '\0')
      return 1;
    if (strncmp(p, ".input", 6) == 0) {
      o->kind = NNE_NAMES_SITE_NODE_INPUT;
      p += 6;
    } else if (strncmp(p, ".output", 7) == 0) {
      p += 7;
    } else {
      snprintf(why, why_len,
               "expected .input[.N] or .output[.N] after the node selector, "
               "not '%s'",
               p);
      return -1;
    }
    if (*p == '.') {
      p++;
      if ((v = read_num(&p, 4)) < 0) {
        snprintf(why, why_len, "expected an index after '.%s.'",
                 o->kind == NNE_NAMES_SITE_NODE ? "output" : "input");
        return -1;
      }
      o->index = v;
    }
    if (*p != '\0') {
      snprintf(why, why_len, "unexpected '%s' at the end", p);
      return -1;
    }
    return 1;
  }

  /* MODULE.input[.N] / MODULE.output[.N] */
  last = strrchr(s, '.');
  last = last == NULL ? s : last + 1;
  if (*last != '\0' && strspn(last, "0123456789") == strlen(last)) {
    if (last == s)
      return 0;
    prev = last - 1; /* the '.' before the number */
    while (prev > s && prev[-1] != '.')
      prev--;
    if ((size_t)(last - 1 - prev) == 5 && strncmp(prev, "input", 5) == 0)
      o->kind = NNE_NAMES_SITE_INPUT;
    else if ((size_t)(last - 1 - prev) == 6 && strncmp(prev, "output", 6) == 0)
      o->kind = NNE_NAMES_SITE_OUTPUT;
    else
      return 0;
    if (strlen(last) > 4) {
      snprintf(why, why_len, "index %s is too large", last);
      return -1;
    }
    o->index = atoi(last);
  } else if (strcmp(last, "input") == 0) {
    o->kind = NNE_NAMES_SITE_INPUT;
    prev = last;
  } else if (strcmp(last, "output") == 0) {
    o->kind = NNE_NAMES_SITE_OUTPUT;
    prev = last;
  } else {
    return 0;
  }
  o->mod_len = prev == s ? 0 : (size_t)(prev - 1 - s);
  o->suffix = s + o->mod_len;
  return 1;
}

/* The canonical raw form of a site; false when it does not fit. */
static bool site_format(char *buf, size_t cap, const char *path,
                        nne_names_site_kind_t kind, int index,
                        const char *node_kind, int occ) {
  int n;
  const char *dot = path[0] != '\0' ? "." : "";
  char idx[16] = "";
  if (index != 0)
    snprintf(idx, sizeof idx, ".%d", index);
  switch (kind) {
  case NNE_NAMES_SITE_INPUT:
    n = snprintf(buf, cap, "%s%sinput%s", path, dot, idx);
    break;
  case NNE_NAMES_SITE_OUTPUT:
    n = snprintf(buf, cap, "%s%soutput%s", path, dot, idx);
    break;
  case NNE_NAMES_SITE_NODE:
    n = snprintf(buf, cap, "%s:%s#%d%s%s", path, node_kind, occ,
                 index != 0 ? ".output" : "", idx);
    break;
  case NNE_NAMES_SITE_NODE_INPUT:
    n = snprintf(buf, cap, "%s:%s#%d.input%s", path, node_kind, occ, idx);
    break;
  default: return false;
  }
  return n >= 0 && (size_t)n < cap;
}

/* ---- family maps -------------------------------------------------------- */

/* A module definition: a path template, or the reason there is none. */
typedef struct fam_mod {
  const char *tmpl;   /* relative to the family root; NULL: unavailable */
  const char *reason; /* when tmpl is NULL */
} fam_mod_t;

typedef struct fam_extra {
  const char *name; /* "layers.{i}.ln_post_attn" */
  fam_mod_t def;
} fam_extra_t;

typedef struct fam_site {
  const char *tmpl; /* site string; NULL: unavailable */
  const char *reason;
  nne_names_view_t view;
} fam_site_t;

typedef struct fam_check {
  int id; /* < N_SM: standard module; else N_SM + extra index */
  nne_names_shape_t input0, output0;
} fam_check_t;

typedef struct family {
  const char *name, *file;
  const char **aliases, **classes, **structure;
  size_t n_aliases, n_classes, n_structure;
  fam_mod_t mods[N_SM]; /* mods[SM_LAYER] is derived from mods[SM_LAYERS] */
  fam_extra_t *extras;
  size_t n_extras;
  fam_site_t sites[N_SS];
  fam_check_t *checks;
  size_t n_checks;
  bool from_override; /* read from the override directory */
} family_t;

struct nne_family_set {
  arena_t arena;
  family_t **fams; /* sorted by name */
  size_t n, cap;
};

/* Where a map is being parsed, for messages. */
typedef struct mapctx {
  arena_t *arena;
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

static int oom(nne_err_t *err) {
  return nne_err_set(err, NNE_ENOMEM, "out of memory");
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
  *out = arena_alloc(c->arena, (*n ? *n : 1) * sizeof **out);
  if (*out == NULL)
    return oom(c->err);
  for (i = 0; i < *n; i++) {
    json_t *s = json_array_get(v, i);
    if (!json_is_string(s) || (ok != NULL && !ok(json_string_value(s))))
      return map_err(c, section, key, "entry %zu is not %s", i,
                     json_is_string(s) ? "well formed" : "a string");
    if (((*out)[i] = arena_strdup(c->arena, json_string_value(s))) == NULL)
      return oom(c->err);
  }
  return 0;
}

static bool ok_alias(const char *s) {
  size_t i;
  if (s[0] == '\0' || strlen(s) > 64)
    return false;
  for (i = 0; s[i] != '\0'; i++)
    if (!is_ident_char(s[i]) && s[i] != '-' && s[i] != '.')
      return false;
  return true;
}

static bool ok_class(const char *s) {
  return s[0] != '\0' && is_path(s, strlen(s), false) && !strchr(s, '.');
}

/* A path template: a dotted path once {i} is replaced by 0. */
static bool ok_template(const char *s) {
  char buf[NAME_MAX_LEN + 1];
  return expand(buf, sizeof buf, s, 0) && is_path(buf, strlen(buf), false);
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
                     json_t *v, const char *layers, fam_mod_t *out) {
  static const char *const keys[] = {"unavailable", "comment", NULL};
  bool layered = is_layered(key);
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
    out->reason = arena_strdup(c->arena, json_string_value(r));
    return out->reason != NULL ? 0 : oom(c->err);
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
  if (layered && !is_layered(t))
    return map_err(c, section, key,
                   "template \"%s\" has no {i}: a per-layer name needs one", t);
  if (!layered && is_layered(t))
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
  out->tmpl = arena_strdup(c->arena, t);
  out->reason = NULL;
  return out->tmpl != NULL ? 0 : oom(c->err);
}

/* A site string from a map: the grammar, with {i} standing for a layer. */
static int check_site_string(const mapctx_t *c, const char *key,
                             const char *s) {
  char buf[NAME_MAX_LEN + 1], why[256];
  site_syn_t syn;
  int r;
  bool layered = is_layered(key);

  if (layered != is_layered(s))
    return map_err(c, "sites", key,
                   layered ? "site \"%s\" has no {i}: a per-layer site needs "
                             "one"
                           : "site \"%s\" has {i} but the site is not per "
                             "layer",
                   s);
  if (!expand(buf, sizeof buf, s, 0))
    return map_err(c, "sites", key, "site is too long");
  r = site_parse(buf, &syn, why, sizeof why);
  if (r == 0)
    return map_err(c, "sites", key,
                   "\"%s\" is not a site (MODULE.input[.N], "
                   "MODULE.output[.N], MODULE:KIND#K[.input.N])",
                   s);
  if (r < 0)
    return map_err(c, "sites", key, "\"%s\" is not a site: %s", s, why);
  if (!is_path(buf, syn.mod_len, true))
    return map_err(c, "sites", key, "\"%s\": '%.*s' is not a module path", s,
                   (int)syn.mod_len, buf);
  return 0;
}

static int parse_site(const mapctx_t *c, const char *key, json_t *v,
                      fam_site_t *out) {
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
      out->reason = arena_strdup(c->arena, json_string_value(r));
      return out->reason != NULL ? 0 : oom(c->err);
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
  out->tmpl = arena_strdup(c->arena, json_string_value(s));
  return out->tmpl != NULL ? 0 : oom(c->err);
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

static int extra_id(const family_t *f, const char *name) {
  size_t i;
  for (i = 0; i < f->n_extras; i++)
    if (strcmp(f->extras[i].name, name) == 0)
      return N_SM + (int)i;
  return -1;
}

static const fam_mod_t *fam_mod(const family_t *f, int id) {
  return id < N_SM ? &f->mods[id] : &f->extras[id - N_SM].def;
}

static const char *fam_mod_name(const family_t *f, int id) {
  return id < N_SM ? std_modules[id] : f->extras[id - N_SM].name;
}

/* An extra name: dotted identifiers, optionally after "layers.{i}.". */
static bool ok_extra_name(const char *s) {
  if (strncmp(s, "layers.{i}.", 11) == 0)
    s += 11;
  return is_path(s, strlen(s), false);
}

static int cmp_check(const void *a, const void *b) {
  const fam_check_t *x = a, *y = b;
  return (x->id > y->id) - (x->id < y->id);
}

static int family_parse(arena_t *arena, const char *file, const char *text,
                        size_t len, family_t **out, nne_err_t *err) {
  static const char *const top_keys[] = {"family", "aliases", "comment",
                                         "detect", "modules", "extra_modules",
                                         "sites",  "checks",  NULL};
  static const char *const detect_keys[] = {"classes", "structure", NULL};
  static const char *const check_keys_[] = {"input", "output", NULL};
  mapctx_t c = {arena, file, text, len, err};
  json_error_t je;
  json_t *root, *v, *mods, *sites, *val;
  const char *key, *name;
  family_t *f;
  int rc = 0, id;
  size_t i;

  root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (root == NULL)
    return nne_err_set(err, NNE_EINVAL, "%s: line %d column %d: %s", file,
                       je.line, je.column, je.text);
  f = arena_alloc(arena, sizeof *f);
  if (f == NULL) {
    rc = oom(err);
    goto out;
  }
  memset(f, 0, sizeof *f);
  if ((f->file = arena_strdup(arena, file)) == NULL) {
    rc = oom(err);
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
  if ((f->name = arena_strdup(arena, name)) == NULL) {
    rc = oom(err);
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
    id = std_module_id(key);
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
                   std_modules[id]);
      goto out;
    }
  if ((f->mods[SM_LAYER].tmpl =
           arena_printf(arena, "%s.{i}", f->mods[SM_LAYERS].tmpl)) == NULL) {
    rc = oom(err);
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
        arena_alloc(arena, (json_object_size(v) + 1) * sizeof *f->extras);
    if (f->extras == NULL) {
      rc = oom(err);
      goto out;
    }
    json_object_foreach(v, key, val) {
      fam_extra_t *x = &f->extras[f->n_extras];
      if (!ok_extra_name(key) || strlen(key) > 100) {
        rc = map_err(&c, "extra_modules", key,
                     "a name is dotted identifiers, optionally after "
                     "\"layers.{i}.\"");
        goto out;
      }
      if (std_module_id(key) >= 0 || std_site_id(key) >= 0) {
        rc = map_err(&c, "extra_modules", key,
                     "is a standard name: give it under \"%s\"",
                     std_module_id(key) >= 0 ? "modules" : "sites");
        goto out;
      }
      if ((x->name = arena_strdup(arena, key)) == NULL) {
        rc = oom(err);
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
    int sid = std_site_id(key);
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
                   std_sites[i].name);
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
        arena_alloc(arena, (json_object_size(v) + 1) * sizeof *f->checks);
    if (f->checks == NULL) {
      rc = oom(err);
      goto out;
    }
    json_object_foreach(v, key, val) {
      fam_check_t *ck = &f->checks[f->n_checks];
      id = std_module_id(key);
      if (id < 0)
        id = extra_id(f, key);
      if (id < 0) {
        rc = map_err(&c, "checks", key,
                     "not a standard module name or an extra module");
        goto out;
      }
      if (fam_mod(f, id)->tmpl == NULL) {
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

static const family_t *set_find(const nne_family_set_t *set, const char *name,
                                size_t *index) {
  size_t i, k;
  for (i = 0; i < set->n; i++) {
    const family_t *f = set->fams[i];
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
static int set_add(nne_family_set_t *set, family_t *f, nne_err_t *err) {
  size_t i;
  void *p;
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
  p = grow(set->fams, &set->cap, set->n + 1, sizeof *set->fams);
  if (p == NULL)
    return oom(err);
  set->fams = p;
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
    return oom(err);
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
    void *p;
    if (l < 6 || de->d_name[0] == '.' ||
        strcmp(de->d_name + l - 5, ".json") != 0)
      continue;
    p = grow(files, &cap, n + 1, sizeof *files);
    if (p == NULL || (((char **)p)[n] = strdup(de->d_name)) == NULL) {
      files = p != NULL ? p : files;
      rc = oom(err);
      goto out;
    }
    files = p;
    n++;
  }
  if (n > 0)
    qsort(files, n, sizeof *files, cmp_json_name);
  for (i = 0; i < n && rc == 0; i++) {
    char *text = NULL;
    size_t len = 0;
    family_t *f;
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
  return strcmp((*(const family_t *const *)a)->name,
                (*(const family_t *const *)b)->name);
}

int nne_family_set_load(const char *override_dir, nne_family_set_t **out,
                        nne_err_t *err) {
  nne_family_set_t *set = calloc(1, sizeof *set);
  size_t i, k;
  int rc = 0;

  *out = NULL;
  if (set == NULL)
    return oom(err);
  for (i = 0; i < nne_names_builtin_count; i++) {
    family_t *f;
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
    const family_t *a = set->fams[i], *b;
    for (k = 0; k < a->n_aliases; k++)
      if ((b = set_find(set, a->aliases[k], NULL)) != a) {
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
  arena_free(&set->arena);
  free(set->fams);
  free(set);
}

size_t nne_family_set_count(const nne_family_set_t *set) {
  return set != NULL ? set->n : 0;
}

const char *nne_family_set_name(const nne_family_set_t *set, size_t i) {
  return set != NULL && i < set->n ? set->fams[i]->name : NULL;
}

/* ---- one model's names: data -------------------------------------------- */

enum { NK_RAW, NK_STD, NK_USER };

/* One spelling of a module. */
typedef struct mname {
  const char *name;
  const char *reason; /* why unavailable, when module < 0 */
  int module;         /* -1: unavailable */
  int layer;          /* -1: not in a layer */
  int std;            /* standard/extra id (NK_STD), else -1 */
  int kind;           /* NK_* */
} mname_t;

typedef struct alias {
  int module;
  uint32_t seq;
  const char *name;
  bool standard;
} alias_t;

/* Warnings from nne_names_mark_unavailable, one per (template, reason), so
 * that a site that fails in all 80 layers is one line. */
typedef struct mark_group {
  const char *tmpl, *reason;
  unsigned char *layers; /* n_layers flags */
  size_t warning;        /* index in warnings */
} mark_group_t;

struct nne_names {
  arena_t arena;
  nne_names_module_t *mods;
  size_t n_mods;
  int *mod_layer; /* layer index of each module, -1 outside the layers */

  const char *family, *reason, *prefix, *layers_path;
  int n_layers;

  mname_t *names;
  size_t n_names, cap_names;
  htab_t mod_ht; /* every module spelling → names[] */
  htab_t std_ht; /* standard/extra names → names[] (even when a raw path
                    shadows them in mod_ht) */

  alias_t *aliases;
  size_t n_aliases, cap_aliases;
  uint32_t *alias_start, *alias_n; /* per module, after sorting */

  nne_names_site_entry_t *sites;
  int *site_via;   /* names[] index of the standard module it goes through */
  int *site_layer; /* layer of each site, -1 for embed/logits */
  size_t n_sites, cap_sites;
  htab_t site_ht;  /* standard and TL site names → sites[] */
  htab_t canon_ht; /* canonical form (no view) → sites[] */

  nne_names_check_t *checks;
  size_t n_checks, cap_checks;

  const char **warnings;
  size_t n_warnings, cap_warnings;
  mark_group_t *groups;
  size_t n_groups, cap_groups;
};

static int add_warning_str(nne_names_t *nm, const char *w) {
  void *p;
  if (w == NULL)
    return -1;
  p = grow(nm->warnings, &nm->cap_warnings, nm->n_warnings + 1,
           sizeof *nm->warnings);
  if (p == NULL)
    return -1;
  nm->warnings = p;
  nm->warnings[nm->n_warnings++] = w;
  return 0;
}

#define add_warning(nm, ...)                                                   \
  add_warning_str((nm), arena_printf(&(nm)->arena, __VA_ARGS__))

int nne_names_add_warning(nne_names_t *names, const char *fmt, ...) {
  char buf[NNE_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return add_warning(names, "%s", buf) != 0 ? NNE_ENOMEM : 0;
}

static int add_name(nne_names_t *nm, const char *name, int module,
                    const char *reason, int layer, int std, int kind) {
  void *p = grow(nm->names, &nm->cap_names, nm->n_names + 1, sizeof *nm->names);
  mname_t *e;
  if (p == NULL)
    return -1;
  nm->names = p;
  e = &nm->names[nm->n_names];
  e->name = name;
  e->module = module;
  e->reason = reason;
  e->layer = layer;
  e->std = std;
  e->kind = kind;
  return (int)nm->n_names++;
}

static int add_alias(nne_names_t *nm, int module, const char *name,
                     bool standard) {
  void *p = grow(nm->aliases, &nm->cap_aliases, nm->n_aliases + 1,
                 sizeof *nm->aliases);
  if (p == NULL)
    return -1;
  nm->aliases = p;
  nm->aliases[nm->n_aliases].module = module;
  nm->aliases[nm->n_aliases].seq = (uint32_t)nm->n_aliases;
  nm->aliases[nm->n_aliases].name = name;
  nm->aliases[nm->n_aliases].standard = standard;
  nm->n_aliases++;
  return 0;
}

/* Formats a set of layers as "0..3, 7, 9..11". */
static void format_layers(char *buf, size_t cap, const unsigned char *set,
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

/* ---- resolution core ---------------------------------------------------- */

/* Resolves a module spelling of len bytes. 0 with *module (and *via: the
 * names[] index of the standard/extra name it went through, or -1);
 * NNE_ESTATE with the reason in why; NNE_ENOTFOUND. In a family map
 * (map_ctx) a spelling may also be a path relative to the family root. */
static int resolve_core(const nne_names_t *nm, const char *s, size_t len,
                        bool map_ctx, int *module, int *via, char *why,
                        size_t why_len) {
  char buf[2 * NAME_MAX_LEN + 2];
  int e, p, s_std;
  size_t cut;

  *via = -1;
  if (len > NAME_MAX_LEN)
    return NNE_ENOTFOUND;
  e = ht_get(&nm->mod_ht, s, len);
  if (e >= 0) {
    const mname_t *m = &nm->names[e];
    if (m->module < 0) {
      snprintf(why, why_len, "%.*s is unavailable: %s", (int)len, s, m->reason);
      return NNE_ESTATE;
    }
    *module = m->module;
    s_std = ht_get(&nm->std_ht, s, len);
    *via = s_std >= 0 && nm->names[s_std].module == m->module ? s_std : -1;
    return 0;
  }
  if (map_ctx && nm->prefix[0] != '\0') {
    int n = snprintf(buf, sizeof buf, "%s.%.*s", nm->prefix, (int)len, s);
    if (n > 0 && (size_t)n < sizeof buf &&
        (e = ht_get(&nm->mod_ht, buf, (size_t)n)) >= 0 &&
        nm->names[e].kind == NK_RAW) {
      *module = nm->names[e].module;
      return 0;
    }
  }
  /* A standard name or alias followed by a raw sub-path:
   * layers.3.mlp.c_fc → transformer.h.3.mlp.c_fc. The longest prefix that
   * is a name decides. */
  for (cut = len; cut > 0; cut--) {
    const mname_t *m;
    const char *path;
    int n;
    if (s[cut - 1] != '.' || cut == 1)
      continue;
    p = ht_get(&nm->mod_ht, s, cut - 1);
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
    e = ht_get(&nm->mod_ht, buf, (size_t)n);
    if (e < 0 || nm->names[e].kind != NK_RAW)
      return NNE_ENOTFOUND;
    /* *via stays -1: a sub-module's value does not depend on whether the
     * standard name above it passed validation. */
    *module = nm->names[e].module;
    return 0;
  }
  return NNE_ENOTFOUND;
}

/* Fills *out from parsed syntax and a resolved module; false when the
 * canonical form does not fit. */
static bool site_fill(const nne_names_t *nm, const site_syn_t *syn, int module,
                      nne_names_site_t *out) {
  memset(out, 0, sizeof *out);
  out->module = module;
  out->kind = syn->kind;
  out->index = syn->index;
  memcpy(out->node_kind, syn->node_kind, sizeof out->node_kind);
  out->node_occurrence = syn->node_occurrence;
  return site_format(out->canonical, sizeof out->canonical,
                     nm->mods[module].path, syn->kind, syn->index,
                     syn->node_kind, syn->node_occurrence);
}

/* The index of the first all-digit component of s (and its value, capped),
 * or -1. */
static int layer_component(const char *s, size_t len, size_t *start,
                           size_t *clen, long *value) {
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
      layer_component(s, len, &start, &clen, &v) != 0 || v < nm->n_layers)
    return false;
  memcpy(buf, s, start);
  buf[start] = '0';
  memcpy(buf + start + 1, s + start + clen, len - start - clen);
  buf[len - clen + 1] = '\0';
  if (site) {
    e = ht_get(&nm->site_ht, buf, strlen(buf));
    return e >= 0 && nm->site_layer[e] == 0;
  }
  e = resolve_core(nm, buf, strlen(buf), false, &module, &via, why, sizeof why);
  if (e == 0)
    return nm->mod_layer[module] == 0;
  if (e == NNE_ESTATE) {
    e = ht_get(&nm->mod_ht, buf, strlen(buf));
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

typedef struct suggest {
  const char *query;
  size_t qlen;
  int layer;        /* candidates in this layer or in none */
  bool with_suffix; /* the query includes the suffix offered with names */
  size_t n;
  struct {
    size_t dist;
    char text[NAME_MAX_LEN + 16];
  } best[N_SUGGEST];
} suggest_t;

static void suggest_init(suggest_t *sg, const nne_names_t *nm, const char *q,
                         size_t qlen) {
  size_t start, clen;
  long v;
  sg->query = q;
  sg->qlen = qlen;
  sg->n = 0;
  sg->layer = 0;
  sg->with_suffix = true;
  if (layer_component(q, qlen, &start, &clen, &v) == 0 && v < nm->n_layers)
    sg->layer = (int)v;
}

static void suggest_offer(suggest_t *sg, int layer, const char *cand,
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

static void offer_modules(suggest_t *sg, const nne_names_t *nm,
                          const char *suffix) {
  size_t i;
  for (i = 0; i < nm->n_names; i++)
    /* The root's path is "": never a useful suggestion. */
    if (nm->names[i].module >= 0 && nm->names[i].name[0] != '\0')
      suggest_offer(sg, nm->names[i].layer, nm->names[i].name, suffix);
}

static void offer_sites(suggest_t *sg, const nne_names_t *nm) {
  size_t i;
  for (i = 0; i < nm->n_sites; i++) {
    if (!nm->sites[i].available)
      continue;
    suggest_offer(sg, nm->site_layer[i], nm->sites[i].name, "");
    if (nm->sites[i].tl_name != NULL)
      suggest_offer(sg, nm->site_layer[i], nm->sites[i].tl_name, "");
  }
}

/* "; closest: a, b, c" (or "" when there is nothing to offer). */
static void suggest_format(const suggest_t *sg, char *buf, size_t cap) {
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

/* ---- public resolution -------------------------------------------------- */

int nne_names_resolve_module(const nne_names_t *names, const char *field,
                             const char *name, int *module, nne_err_t *err) {
  char why[NNE_ERR_MSG_MAX / 2], sug[NNE_ERR_MSG_MAX / 2];
  suggest_t sg;
  size_t len = strlen(name);
  int rc, via;

  if (len > NAME_MAX_LEN)
    return nne_err_set(err, NNE_EINVAL,
                       "%s%sname is %zu characters (at most %d)", fieldp(field),
                       fieldsep(field), len, NAME_MAX_LEN);
  rc = resolve_core(names, name, len, false, module, &via, why, sizeof why);
  if (rc == 0)
    return 0;
  if (rc == NNE_ESTATE)
    return nne_err_set(err, NNE_ESTATE, "%s%s%s", fieldp(field),
                       fieldsep(field), why);
  if (out_of_range(names, name, len, false))
    return range_error(names, err, field, name, len);
  if (names->family[0] == '\0' && looks_standard(name))
    return nne_err_set(err, NNE_ESTATE,
                       "%s%s'%s' is a standard name, but no family map "
                       "matched this model (set \"family\" in model.json)",
                       fieldp(field), fieldsep(field), name);
  suggest_init(&sg, names, name, len);
  offer_modules(&sg, names, "");
  suggest_format(&sg, sug, sizeof sug);
  return nne_err_set(err, NNE_ENOTFOUND, "%s%sunknown module '%s'%s",
                     fieldp(field), fieldsep(field), name, sug);
}

int nne_names_resolve_site(const nne_names_t *names, const char *field,
                           const char *name, nne_names_site_t *out,
                           nne_err_t *err) {
  char why[NNE_ERR_MSG_MAX / 2], sug[NNE_ERR_MSG_MAX / 2];
  size_t len = strlen(name), cut;
  suggest_t sg;
  site_syn_t syn;
  int e, rc, module, via;

  if (len > NAME_MAX_LEN)
    return nne_err_set(err, NNE_EINVAL,
                       "%s%sname is %zu characters (at most %d)", fieldp(field),
                       fieldsep(field), len, NAME_MAX_LEN);
  e = ht_get(&names->site_ht, name, len);
  if (e >= 0) {
    const nne_names_site_entry_t *se = &names->sites[e];
    if (!se->available)
      return nne_err_set(err, NNE_ESTATE, "%s%s%s is unavailable: %s",
                         fieldp(field), fieldsep(field), se->name, se->reason);
    *out = se->site;
    return 0;
  }
  rc = site_parse(name, &syn, why, sizeof why);
  if (rc < 0) {
    suggest_init(&sg, names, name, len);
    offer_sites(&sg, names);
    suggest_format(&sg, sug, sizeof sug);
    return nne_err_set(err, NNE_EINVAL, "%s%smalformed site '%s': %s%s",
                       fieldp(field), fieldsep(field), name, why, sug);
  }
  if (rc == 1) {
    rc = resolve_core(names, name, syn.mod_len, false, &module, &via, why,
                      sizeof why);
    if (rc == NNE_ESTATE)
      return nne_err_set(err, NNE_ESTATE, "%s%ssite '%s': %s", fieldp(field),
                         fieldsep(field), name, why);
    if (rc != 0) {
      if (out_of_range(names, name, syn.mod_len, false))
        return range_error(names, err, field, name, len);
      if (names->family[0] == '\0' && looks_standard(name))
        return nne_err_set(err, NNE_ESTATE,
                           "%s%s'%s' uses a standard name, but no family map "
                           "matched this model (set \"family\" in model.json)",
                           fieldp(field), fieldsep(field), name);
      suggest_init(&sg, names, name, syn.mod_len);
      sg.with_suffix = false; /* compare module spellings only */
      offer_modules(&sg, names, syn.suffix);
      suggest_format(&sg, sug, sizeof sug);
      return nne_err_set(
          err, NNE_ENOTFOUND, "%s%ssite '%s': unknown module '%.*s'%s",
          fieldp(field), fieldsep(field), name, (int)syn.mod_len, name, sug);
    }
    if (!site_fill(names, &syn, module, out))
      return nne_err_set(err, NNE_EINVAL, "%s%ssite '%s': too long",
                         fieldp(field), fieldsep(field), name);
    e = ht_get(&names->canon_ht, out->canonical, strlen(out->canonical));
    if (e >= 0 && names->sites[e].available)
      snprintf(out->standard, sizeof out->standard, "%s", names->sites[e].name);
    return 0;
  }

  /* Not shaped like a site. */
  if (out_of_range(names, name, len, true))
    return range_error(names, err, field, name, len);
  rc = resolve_core(names, name, len, false, &module, &via, why, sizeof why);
  if (rc == 0 || rc == NNE_ESTATE)
    return nne_err_set(err, NNE_EINVAL,
                       "%s%s'%s' is a module, not a site: say %s.output (or "
                       ".input, .output.N, .input.N, :KIND#K)",
                       fieldp(field), fieldsep(field), name, name);
  if (out_of_range(names, name, len, false))
    return range_error(names, err, field, name, len);
  if (names->family[0] == '\0' && looks_standard(name))
    return nne_err_set(err, NNE_ESTATE,
                       "%s%s'%s' is a standard name, but no family map "
                       "matched this model (set \"family\" in model.json)",
                       fieldp(field), fieldsep(field), name);
  suggest_init(&sg, names, name, len);
  offer_sites(&sg, names);
  offer_modules(&sg, names, ".output");
  suggest_format(&sg, sug, sizeof sug);
  /* A module followed by something that is not a site suffix: most often a
   * misspelt standard site (layers.0.resid_pots), so it is an unknown name
   * (NOT_FOUND, as every unknown name) and the message says both readings. */
  for (cut = len; cut > 1; cut--)
    if (name[cut - 1] == '.')
      break;
  if (cut > 1 && resolve_core(names, name, cut - 1, false, &module, &via, why,
                              sizeof why) == 0)
    return nne_err_set(err, NNE_ENOTFOUND,
                       "%s%sunknown site '%s': not a standard site, and after "
                       "module '%.*s' a site needs .input, .output, .input.N, "
                       ".output.N or :KIND#K%s",
                       fieldp(field), fieldsep(field), name, (int)(cut - 1),
                       name, sug);
  return nne_err_set(err, NNE_ENOTFOUND, "%s%sunknown site '%s'%s",
                     fieldp(field), fieldsep(field), name, sug);
}

/* ---- build -------------------------------------------------------------- */

static int raw_index(const nne_names_t *nm, const char *path) {
  int e = ht_get(&nm->mod_ht, path, strlen(path));
  return e >= 0 && nm->names[e].kind == NK_RAW ? nm->names[e].module : -1;
}

/* Does the family's structural signature hold at the module `root`?
 * (`missing` gets the first path that does not exist.) */
static bool structure_ok(const nne_names_t *nm, const family_t *f,
                         const char *root, char *missing, size_t cap) {
  char rel[NAME_MAX_LEN + 1], path[2 * NAME_MAX_LEN + 2];
  size_t i;
  for (i = 0; i <= f->n_structure; i++) {
    const char *t =
        i < f->n_structure ? f->structure[i] : f->mods[SM_LAYER].tmpl;
    if (!expand(rel, sizeof rel, t, 0) || !join(path, sizeof path, root, rel) ||
        raw_index(nm, path) < 0) {
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
static int detect(nne_names_t *nm, const nne_family_set_t *set,
                  const char *forced, const family_t **fam, const char **root,
                  nne_err_t *err) {
  const family_t *class_fam = NULL;
  int class_mod = -1;
  size_t i, k, m;
  char missing[2 * NAME_MAX_LEN + 2];

  *fam = NULL;
  *root = "";
  if (forced != NULL && forced[0] != '\0') {
    const family_t *f = set != NULL ? set_find(set, forced, NULL) : NULL;
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
    nm->reason = class_mod == 0 ? arena_printf(&nm->arena, "class %s",
                                               nm->mods[class_mod].class_name)
                                : arena_printf(&nm->arena, "class %s at %s",
                                               nm->mods[class_mod].class_name,
                                               nm->mods[class_mod].path);
    return nm->reason != NULL ? 0 : oom(err);
  }

  /* 2. The structure, outermost root first; the most specific signature
   * wins, a tie is ambiguous. */
  for (m = 0; m < nm->n_mods; m++) {
    const family_t *best = NULL, *tie = NULL;
    size_t best_score = 0;
    if (module_depth(nm, (int)m) > DETECT_DEPTH)
      continue;
    for (i = 0; i < set->n; i++) {
      const family_t *f = set->fams[i];
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
      add_warning(nm,
                  "the module structure%s%s matches the family maps %s and %s "
                  "equally; set \"family\" in model.json",
                  m ? " at " : "", nm->mods[m].path, best->name, tie->name);
      break;
    }
    if (best != NULL) {
      *fam = best;
      *root = nm->mods[m].path;
      nm->reason = m == 0 ? "structure"
                          : arena_printf(&nm->arena, "structure at %s",
                                         nm->mods[m].path);
      if (class_fam != NULL)
        add_warning(nm,
                    "class %s suggests the family %s, but the structure "
                    "matches %s (no %s)",
                    nm->mods[class_mod].class_name, class_fam->name, best->name,
                    missing);
      return nm->reason != NULL ? 0 : oom(err);
    }
  }

  /* 3. A class alone. */
  if (class_fam != NULL) {
    *fam = class_fam;
    *root = nm->mods[class_mod].path;
    nm->reason =
        arena_printf(&nm->arena, "class %s", nm->mods[class_mod].class_name);
    add_warning(nm,
                "class %s is of the family %s, but the module structure "
                "does not match its map (no %s): the names that are missing "
                "are unavailable",
                nm->mods[class_mod].class_name, class_fam->name, missing);
    return nm->reason != NULL ? 0 : oom(err);
  }
  return 0;
}

/* Installs a standard/extra name. A raw path of the same spelling wins. */
static int install_std(nne_names_t *nm, const char *name, int module,
                       const char *reason, int layer, int std) {
  int e = add_name(nm, name, module, reason, layer, std, NK_STD), r;
  if (e < 0)
    return -1;
  if (ht_put(&nm->std_ht, name, e) < 0)
    return -1;
  r = ht_put(&nm->mod_ht, name, e);
  if (r < 0)
    return -1;
  if (r == 1) {
    const mname_t *o = &nm->names[ht_get(&nm->mod_ht, name, strlen(name))];
    if (o->module != module)
      return add_warning(nm,
                         "standard name %s is also the raw path of another "
                         "module; the raw path wins",
                         name);
  }
  return module >= 0 ? add_alias(nm, module, name, true) : 0;
}

/* Expands one standard/extra module name over the layers. */
static int build_std_module(nne_names_t *nm, const family_t *f, int id) {
  const fam_mod_t *d = fam_mod(f, id);
  const char *tmpl_name = fam_mod_name(f, id);
  bool layered = is_layered(tmpl_name);
  int i, n = layered ? nm->n_layers : 1, n_missing = 0;
  unsigned char *miss = NULL;
  char rel[NAME_MAX_LEN + 1], path[2 * NAME_MAX_LEN + 2], nbuf[256];

  if (layered && n > 0 && (miss = calloc((size_t)n, 1)) == NULL)
    return -1;
  for (i = 0; i < n; i++) {
    const char *name, *reason = NULL;
    int module = -1;
    if (!expand(nbuf, sizeof nbuf, tmpl_name, i) ||
        (name = arena_strdup(&nm->arena, nbuf)) == NULL)
      goto fail;
    if (d->tmpl == NULL) {
      reason = d->reason;
    } else if (expand(rel, sizeof rel, d->tmpl, i) &&
               join(path, sizeof path, nm->prefix, rel) &&
               (module = raw_index(nm, path)) >= 0) {
      /* found */
    } else {
      reason = arena_printf(&nm->arena,
                            "the %s map says %s, which is not in this model",
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
      format_layers(layers, sizeof layers, miss, n);
      if (add_warning(nm,
                      "%s: the %s map says %s, which is not in this model "
                      "(layer%s %s)",
                      tmpl_name, nm->family, d->tmpl, n_missing > 1 ? "s" : "",
                      layers) != 0)
        goto fail;
    } else if (add_warning(nm,
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
  void *p;
  size_t cap = nm->cap_sites;
  nne_names_site_entry_t *se;
  if (nm->n_sites + 1 > cap) {
    p = grow(nm->sites, &cap, nm->n_sites + 1, sizeof *nm->sites);
    if (p == NULL)
      return -1;
    nm->sites = p;
    p = realloc(nm->site_via, cap * sizeof *nm->site_via);
    if (p == NULL)
      return -1;
    nm->site_via = p;
    p = realloc(nm->site_layer, cap * sizeof *nm->site_layer);
    if (p == NULL)
      return -1;
    nm->site_layer = p;
    nm->cap_sites = cap;
  }
  se = &nm->sites[nm->n_sites];
  memset(se, 0, sizeof *se);
  se->name = name;
  se->tl_name = tl;
  nm->site_via[nm->n_sites] = -1;
  nm->site_layer[nm->n_sites] = layer;
  if (ht_put(&nm->site_ht, name, (int32_t)nm->n_sites) != 0 ||
      (tl != NULL && ht_put(&nm->site_ht, tl, (int32_t)nm->n_sites) != 0))
    return -1;
  return (int)nm->n_sites++;
}

/* One standard site at one layer (layer -1: not per layer). Returns 0, or
 * 1 when the site is missing from the model for a reason other than an
 * unavailable standard module (to be warned about), or -1. */
static int build_site(nne_names_t *nm, const family_t *f, size_t sid,
                      int layer) {
  const fam_site_t *d = &f->sites[sid];
  char nbuf[256], tbuf[256], sbuf[NAME_MAX_LEN + 1], why[NNE_ERR_MSG_MAX / 2];
  const char *name, *tl = NULL;
  nne_names_site_entry_t *se;
  site_syn_t syn;
  int e, rc, module, via;

  if (!expand(nbuf, sizeof nbuf, std_sites[sid].name, layer) ||
      (name = arena_strdup(&nm->arena, nbuf)) == NULL)
    return -1;
  if (std_sites[sid].tl != NULL &&
      (!expand(tbuf, sizeof tbuf, std_sites[sid].tl, layer) ||
       (tl = arena_strdup(&nm->arena, tbuf)) == NULL))
    return -1;
  if ((e = add_site_entry(nm, name, tl, layer)) < 0)
    return -1;
  se = &nm->sites[e];
  if (d->tmpl == NULL) {
    se->reason = d->reason;
    return 0;
  }
  if (!expand(sbuf, sizeof sbuf, d->tmpl, layer) ||
      site_parse(sbuf, &syn, why, sizeof why) != 1)
    return -1; /* checked when the map was loaded */
  rc =
      resolve_core(nm, sbuf, syn.mod_len, true, &module, &via, why, sizeof why);
  if (rc == 0 && site_fill(nm, &syn, module, &se->site)) {
    se->available = true;
    se->site.view = d->view;
    snprintf(se->site.standard, sizeof se->site.standard, "%s", name);
    nm->site_via[e] = via;
    if (d->view.parts == 0) {
      const char *canon = arena_strdup(&nm->arena, se->site.canonical);
      if (canon == NULL || ht_put(&nm->canon_ht, canon, e) < 0)
        return -1;
    }
    return 0;
  }
  if (rc == 0)
    se->reason = "the site's canonical form is too long";
  else if (rc == NNE_ESTATE)
    se->reason = arena_strdup(&nm->arena, why);
  else
    se->reason = arena_printf(&nm->arena,
                              "the %s map says %s, and %.*s is not in this "
                              "model",
                              nm->family, sbuf, (int)syn.mod_len, sbuf);
  if (se->reason == NULL)
    return -1;
  return rc == NNE_ESTATE ? 0 : 1;
}

static int build_sites(nne_names_t *nm, const family_t *f) {
  size_t sid, first_layered = N_SS;
  int i, r;
  unsigned char *miss[N_SS];
  int rc = -1;

  memset(miss, 0, sizeof miss);
  for (sid = 0; sid < N_SS; sid++) {
    if (!is_layered(std_sites[sid].name))
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
        (r > 0 && add_warning(nm, "%s: %s", std_sites[sid].name,
                              nm->sites[nm->n_sites - 1].reason) != 0))
      goto out;
  for (i = 0; i < nm->n_layers; i++)
    for (sid = first_layered; sid < N_SS; sid++) {
      if (!is_layered(std_sites[sid].name))
        continue;
      if ((r = build_site(nm, f, sid, i)) < 0)
        goto out;
      if (r > 0)
        miss[sid][i] = 1;
    }
  for (sid = first_layered; sid < N_SS; sid++) {
    if (is_layered(std_sites[sid].name))
      continue;
    if ((r = build_site(nm, f, sid, -1)) < 0 ||
        (r > 0 && add_warning(nm, "%s: %s", std_sites[sid].name,
                              nm->sites[nm->n_sites - 1].reason) != 0))
      goto out;
  }
  for (sid = 0; sid < N_SS; sid++) {
    char layers[256];
    if (miss[sid] == NULL || memchr(miss[sid], 1, (size_t)nm->n_layers) == NULL)
      continue;
    format_layers(layers, sizeof layers, miss[sid], nm->n_layers);
    if (add_warning(nm,
                    "%s: the %s map says %s, which is not in this model "
                    "(layers %s)",
                    std_sites[sid].name, nm->family, f->sites[sid].tmpl,
                    layers) != 0)
      goto out;
  }
  rc = 0;
out:
  for (sid = 0; sid < N_SS; sid++)
    free(miss[sid]);
  return rc;
}

static int add_check(nne_names_t *nm, const family_t *f, const fam_check_t *c,
                     int layer) {
  char nbuf[256];
  const char *tmpl = fam_mod_name(f, c->id);
  int e;
  void *p;
  if (!expand(nbuf, sizeof nbuf, tmpl, layer))
    return -1;
  e = ht_get(&nm->std_ht, nbuf, strlen(nbuf));
  if (e < 0 || nm->names[e].module < 0)
    return 0; /* not in this model: already warned */
  p = grow(nm->checks, &nm->cap_checks, nm->n_checks + 1, sizeof *nm->checks);
  if (p == NULL)
    return -1;
  nm->checks = p;
  nm->checks[nm->n_checks].name = nm->names[e].name;
  nm->checks[nm->n_checks].module = nm->names[e].module;
  nm->checks[nm->n_checks].input0 = c->input0;
  nm->checks[nm->n_checks].output0 = c->output0;
  nm->n_checks++;
  return 0;
}

static int build_checks(nne_names_t *nm, const family_t *f) {
  size_t k;
  int i;
  /* checks are sorted by id: standard before the layers, per layer, then
   * the rest (ln_final, lm_head, extras). */
  for (k = 0; k < f->n_checks; k++)
    if (f->checks[k].id < SM_LAYER && add_check(nm, f, &f->checks[k], -1) != 0)
      return -1;
  for (i = 0; i < nm->n_layers; i++)
    for (k = 0; k < f->n_checks; k++)
      if (is_layered(fam_mod_name(f, f->checks[k].id)) &&
          add_check(nm, f, &f->checks[k], i) != 0)
        return -1;
  for (k = 0; k < f->n_checks; k++)
    if (f->checks[k].id > SM_LAYER &&
        !is_layered(fam_mod_name(f, f->checks[k].id)) &&
        add_check(nm, f, &f->checks[k], -1) != 0)
      return -1;
  return 0;
}

/* ---- user renames ------------------------------------------------------- */

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
    if (!is_ident_char(s[i]) && s[i] != '.' && s[i] != '-')
      return false;
  last = strrchr(s, '.');
  last = last ? last + 1 : s;
  return strcmp(last, "input") != 0 && strcmp(last, "output") != 0;
}

static int rename_to(nne_names_t *nm, const nne_names_rename_t *r, int module,
                     long iv) {
  size_t k;
  char buf[300];
  for (k = 0; k < r->n_to; k++) {
    const char *to = r->to[k], *alias;
    int e;
    if (to == NULL)
      continue;
    if (is_layered(to) && iv < 0) {
      if (add_warning(nm,
                      "names: alias '%s' for '%s' uses {i}, but '%s' "
                      "does not",
                      to, r->from, r->from) != 0)
        return -1;
      continue;
    }
    if (!expand(buf, sizeof buf, to, (int)iv) || !ok_user_alias(buf)) {
      if (add_warning(nm,
                      "names: alias '%s' for '%s' is not a valid name "
                      "(letters, digits, '_', '-' and '.', not ending "
                      "in .input or .output)",
                      to, r->from) != 0)
        return -1;
      continue;
    }
    e = ht_get(&nm->mod_ht, buf, strlen(buf));
    if (e >= 0) {
      if (nm->names[e].module == module)
        continue;
      if (add_warning(nm,
                      "names: alias '%s' for '%s' is already the name of "
                      "%s; ignored",
                      buf, r->from,
                      nm->names[e].module >= 0
                          ? nm->mods[nm->names[e].module].path
                          : nm->names[e].name) != 0)
        return -1;
      continue;
    }
    if ((alias = arena_strdup(&nm->arena, buf)) == NULL)
      return -1;
    e = add_name(nm, alias, module, NULL, nm->mod_layer[module], -1, NK_USER);
    if (e < 0 || ht_put(&nm->mod_ht, alias, e) < 0 ||
        add_alias(nm, module, alias, false) != 0)
      return -1;
  }
  return 0;
}

static int apply_renames(nne_names_t *nm, const nne_names_rename_t *renames,
                         size_t n) {
  size_t i, k, n_before;
  char why[256], sug[NNE_ERR_MSG_MAX / 2];
  for (i = 0; i < n; i++) {
    const nne_names_rename_t *r = &renames[i];
    size_t matched = 0;
    if (r->from == NULL || r->from[0] == '\0') {
      if (add_warning(nm, "names: an entry with an empty name") != 0)
        return -1;
      continue;
    }
    if (is_layered(r->from)) {
      /* Every module whose raw path or standard name matches; a module
       * matched through both counts once (rename_to skips duplicates). */
      n_before = nm->n_names;
      for (k = 0; k < n_before; k++) {
        long iv;
        const mname_t *m = &nm->names[k];
        if (m->kind == NK_USER || m->module < 0 ||
            !pattern_match(r->from, m->name, &iv))
          continue;
        matched++;
        if (rename_to(nm, r, m->module, iv) != 0)
          return -1;
      }
    } else {
      int module, via;
      if (resolve_core(nm, r->from, strlen(r->from), false, &module, &via, why,
                       sizeof why) == 0) {
        matched++;
        if (rename_to(nm, r, module, -1) != 0)
          return -1;
      }
    }
    if (matched == 0) {
      char q[NAME_MAX_LEN + 1];
      suggest_t sg;
      if (!expand(q, sizeof q, r->from, 0))
        snprintf(q, sizeof q, "%.*s", NAME_MAX_LEN, r->from);
      suggest_init(&sg, nm, q, strlen(q));
      offer_modules(&sg, nm, "");
      suggest_format(&sg, sug, sizeof sug);
      if (add_warning(nm,
                      "names: '%s' matches no module, so its alias%s "
                      "'%s'%s %s not defined%s",
                      r->from, r->n_to > 1 ? "es" : "",
                      r->n_to > 0 && r->to[0] ? r->to[0] : "",
                      r->n_to > 1 ? ", ..." : "", r->n_to > 1 ? "are" : "is",
                      sug) != 0)
        return -1;
    }
  }
  return 0;
}

/* ---- build: the whole ---------------------------------------------------- */

static int cmp_alias(const void *a, const void *b) {
  const alias_t *x = a, *y = b;
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
    return oom(err);
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
    nm->mods[i].path = arena_strdup(&nm->arena, m->path);
    nm->mods[i].class_name = arena_strdup(&nm->arena, m->class_name);
    nm->mods[i].parent = m->parent;
    nm->mod_layer[i] = -1;
    if (nm->mods[i].path == NULL || nm->mods[i].class_name == NULL ||
        (e = add_name(nm, nm->mods[i].path, (int)i, NULL, -1, -1, NK_RAW)) <
            0 ||
        (r = ht_put(&nm->mod_ht, nm->mods[i].path, e)) < 0)
      return oom(err);
    if (r == 1)
      return nne_err_set(err, NNE_EINVAL, "module tree: duplicate path '%s'",
                         m->path);
  }
  return 0;
}

/* Finds the layer list and counts its blocks (children 0..n-1); sets the
 * layer of every module inside a block. */
static int find_layers(nne_names_t *nm, const family_t *f) {
  char path[2 * NAME_MAX_LEN + 2];
  unsigned char *seen;
  int list, n = 0;
  size_t i;

  if (!join(path, sizeof path, nm->prefix, f->mods[SM_LAYERS].tmpl) ||
      (list = raw_index(nm, path)) < 0)
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
  const family_t *f = NULL;
  const char *root = "";
  int rc, id;
  size_t k;

  *out = NULL;
  if (nm == NULL)
    return oom(err);
  nm->family = "";
  nm->reason = "";
  nm->prefix = "";
  nm->layers_path = "";
  if ((rc = copy_tree(nm, mods, n_mods, err)) != 0 ||
      (rc = detect(nm, set, forced_family, &f, &root, err)) != 0)
    goto fail;
  if (f != NULL) {
    if ((nm->family = arena_strdup(&nm->arena, f->name)) == NULL ||
        (nm->prefix = arena_strdup(&nm->arena, root)) == NULL ||
        find_layers(nm, f) != 0)
      goto nomem;
    /* (A missing list is warned about with the other missing names.) */
    if (nm->n_layers == 0 && nm->layers_path[0] != '\0' &&
        add_warning(nm,
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
  } else if (add_warning(
                 nm, "no family map matches this model (by class "
                     "names or module structure): only raw paths "
                     "and aliases from model.json resolve; set "
                     "\"family\" in model.json to use standard names") != 0) {
    goto nomem;
  }
  if (apply_renames(nm, renames, n_renames) != 0 || finish_aliases(nm) != 0)
    goto nomem;
  *out = nm;
  return 0;
nomem:
  rc = oom(err);
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
  free(nm->site_ht.slots);
  free(nm->canon_ht.slots);
  free(nm->alias_start);
  free(nm->alias_n);
  free(nm->aliases);
  free(nm->mod_ht.slots);
  free(nm->std_ht.slots);
  free(nm->names);
  free(nm->mod_layer);
  free(nm->mods);
  arena_free(&nm->arena);
  free(nm);
}

/* ---- accessors ---------------------------------------------------------- */

const char *nne_names_family(const nne_names_t *names) {
  return names->family;
}

const char *nne_names_family_reason(const nne_names_t *names) {
  return names->reason;
}

int nne_names_layer_count(const nne_names_t *names) {
  return names->n_layers;
}

size_t nne_names_warning_count(const nne_names_t *names) {
  return names->n_warnings;
}

const char *nne_names_warning(const nne_names_t *names, size_t i) {
  return i < names->n_warnings ? names->warnings[i] : NULL;
}

size_t nne_names_module_alias_count(const nne_names_t *names, int module) {
  if (module < 0 || (size_t)module >= names->n_mods)
    return 0;
  return names->alias_n[module];
}

const char *nne_names_module_alias(const nne_names_t *names, int module,
                                   size_t k) {
  if (k >= nne_names_module_alias_count(names, module))
    return NULL;
  return names->aliases[names->alias_start[module] + k].name;
}

bool nne_names_module_alias_is_standard(const nne_names_t *names, int module,
                                        size_t k) {
  if (k >= nne_names_module_alias_count(names, module))
    return false;
  return names->aliases[names->alias_start[module] + k].standard;
}

size_t nne_names_site_count(const nne_names_t *names) {
  return names->n_sites;
}

const nne_names_site_entry_t *nne_names_site(const nne_names_t *names,
                                             size_t i) {
  return i < names->n_sites ? &names->sites[i] : NULL;
}

size_t nne_names_check_count(const nne_names_t *names) {
  return names->n_checks;
}

const nne_names_check_t *nne_names_check(const nne_names_t *names, size_t i) {
  return i < names->n_checks ? &names->checks[i] : NULL;
}

/* ---- validation results -------------------------------------------------- */

/* Records a warning for `name` (layer `layer` of template `tmpl`, or not
 * per layer when layer < 0), merged with earlier ones of the same template
 * and reason. Best effort: out of memory loses the warning, not the mark. */
static void mark_warning(nne_names_t *nm, const char *name, const char *tmpl,
                         int layer, const char *reason) {
  mark_group_t *g = NULL;
  char layers[256];
  size_t i, cnt = 0;
  const char *w;
  void *p;

  if (layer < 0 || nm->n_layers <= 0) {
    add_warning(nm, "%s is unavailable: %s", name, reason);
    return;
  }
  for (i = 0; i < nm->n_groups; i++)
    if (strcmp(nm->groups[i].tmpl, tmpl) == 0 &&
        strcmp(nm->groups[i].reason, reason) == 0) {
      g = &nm->groups[i];
      break;
    }
  if (g == NULL) {
    p = grow(nm->groups, &nm->cap_groups, nm->n_groups + 1, sizeof *nm->groups);
    if (p == NULL)
      return;
    nm->groups = p;
    g = &nm->groups[nm->n_groups];
    g->tmpl = arena_strdup(&nm->arena, tmpl);
    g->reason = arena_strdup(&nm->arena, reason);
    g->layers = calloc((size_t)nm->n_layers, 1);
    if (g->tmpl == NULL || g->reason == NULL || g->layers == NULL ||
        add_warning(nm, "%s is unavailable: %s", name, reason) != 0) {
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
  format_layers(layers, sizeof layers, g->layers, nm->n_layers);
  w = arena_printf(&nm->arena, "%s is unavailable in %zu layers (%s): %s",
                   g->tmpl, cnt, layers, g->reason);
  if (w != NULL)
    nm->warnings[g->warning] = w; /* the old text stays valid in the arena */
}

/* The template of a per-layer name: its layer component replaced by {i}. */
static const char *name_template(char *buf, size_t cap, const char *name) {
  size_t start, clen;
  long v;
  if (layer_component(name, strlen(name), &start, &clen, &v) != 0 ||
      (size_t)snprintf(buf, cap, "%.*s{i}%s", (int)start, name,
                       name + start + clen) >= cap)
    return name;
  return buf;
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
  e = ht_get(&names->std_ht, standard, len);
  if (e >= 0) {
    mname_t *m = &names->names[e];
    int module = m->module;
    if (module < 0)
      return; /* already unavailable */
    if ((why = arena_strdup(&names->arena, reason)) == NULL)
      return;
    m->module = -1;
    m->reason = why;
    /* Not an alias of its module any more. */
    {
      uint32_t s = names->alias_start[module], n = names->alias_n[module], k;
      for (k = 0; k < n; k++)
        if (names->aliases[s + k].name == m->name)
          break;
      if (k < n) {
        memmove(&names->aliases[s + k], &names->aliases[s + k + 1],
                (n - k - 1) * sizeof *names->aliases);
        names->alias_n[module]--;
      }
    }
    /* Sites resolved through it go with it. */
    for (i = 0; i < names->n_sites; i++)
      if (names->site_via[i] == e && names->sites[i].available) {
        const char *r =
            arena_printf(&names->arena, "%s is unavailable: %s", m->name, why);
        names->sites[i].available = false;
        names->sites[i].reason = r != NULL ? r : why;
      }
    mark_warning(names, m->name, name_template(tbuf, sizeof tbuf, m->name),
                 m->layer, why);
    return;
  }
  e = ht_get(&names->site_ht, standard, len);
  if (e >= 0) {
    nne_names_site_entry_t *se = &names->sites[e];
    if (!se->available)
      return;
    if ((why = arena_strdup(&names->arena, reason)) == NULL)
      return;
    se->available = false;
    se->reason = why;
    if (se->site.view.parts == 0 && ht_get(&names->canon_ht, se->site.canonical,
                                           strlen(se->site.canonical)) == e)
      ht_set(&names->canon_ht, se->site.canonical, -1);
    mark_warning(names, se->name, name_template(tbuf, sizeof tbuf, se->name),
                 names->site_layer[e], why);
  }
}
