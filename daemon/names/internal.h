/* names/internal.h — what the files of daemon/names/ share (nne__ names).
 *
 * Nothing outside daemon/names/ includes this header: the module's contract
 * is names.h. Declarations come in blocks named after the file that defines
 * them (libuv's src/unix/internal.h).
 *
 * One model's names
 * -----------------
 * Everything is expanded once at build time into flat arrays in one arena,
 * with hash maps (base/map.h) from every spelling to its entry: raw paths,
 * standard names (with their layer index), user aliases, standard sites and
 * their TransformerLens names. Resolution on the request path is one or a
 * few lookups; nothing is allocated and nothing is written, so resolving
 * from several threads at once is safe. Building and
 * nne_names_mark_unavailable() must finish before the names are shared.
 *
 * Raw paths always win: a standard name or alias that equals another
 * module's raw path is not installed (with a warning), and marking a
 * standard name unavailable never stops its module's raw path resolving.
 * It does take along the standard sites that are that module's own
 * boundaries (layers.3.mlp → layers.3.mlp_out), but not those on its
 * sub-modules (layers.3.mlp.pre is mlp.c_fc's output and checked on its own).
 */
#ifndef NNE_NAMES_INTERNAL_H
#define NNE_NAMES_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/error.h"
#include "base/map.h"
#include "names/names.h"

/* Longest name a request may spell; longer is surely a mistake. */
#define NAME_MAX_LEN 512
/* Suggestions listed with a "not found". */
#define N_SUGGEST 5

static inline int nne__oom(nne_err_t *err) {
  return nne_err_set(err, NNE_ENOMEM, "out of memory");
}

/* The value stored for len bytes at key in m (an index), or -1 when the key
 * is not there. */
static inline int nne__lookup(const nne_map_t *m, const char *key, size_t len) {
  intptr_t v;
  return nne_map_get(m, key, len, &v) ? (int)v : -1;
}

/* ---- standard.c: the standard names -------------------------------------- */

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
extern const char *const nne__std_modules[N_SM];

/* A standard site with its TransformerLens spelling (NULL: none). */
typedef struct nne__std_site {
  const char *name, *tl;
} nne__std_site_t;

#define N_SS 15
/* In forward order: the order nne_names_site() lists them in (per layer in
 * between). */
extern const nne__std_site_t nne__std_sites[N_SS];

bool nne__is_layered(const char *tmpl);
int nne__std_module_id(const char *name);
int nne__std_site_id(const char *name);
bool nne__expand(char *buf, size_t cap, const char *tmpl, int i);
bool nne__join(char *buf, size_t cap, const char *prefix, const char *rel);
bool nne__is_ident_char(int c);
bool nne__is_path(const char *s, size_t n, bool allow_empty);

/* ---- site.c: the site grammar -------------------------------------------- */

typedef struct nne__site_syn {
  size_t mod_len; /* the module spelling is name[0..mod_len) */
  nne_names_site_kind_t kind;
  int index;
  char node_kind[64];
  int node_occurrence;
  const char *suffix; /* what follows the module spelling */
} nne__site_syn_t;

int nne__site_parse(const char *s, nne__site_syn_t *o, char *why,
                    size_t why_len);
bool nne__site_format(char *buf, size_t cap, const char *path,
                      nne_names_site_kind_t kind, int index,
                      const char *node_kind, int occ);

/* ---- family.c: family maps and the family set ---------------------------- */

/* A module definition: a path template, or the reason there is none. */
typedef struct nne__fam_mod {
  const char *tmpl;   /* relative to the family root; NULL: unavailable */
  const char *reason; /* when tmpl is NULL */
} nne__fam_mod_t;

typedef struct nne__fam_extra {
  const char *name; /* "layers.{i}.ln_post_attn" */
  nne__fam_mod_t def;
} nne__fam_extra_t;

typedef struct nne__fam_site {
  const char *tmpl; /* site string; NULL: unavailable */
  const char *reason;
  nne_names_view_t view;
} nne__fam_site_t;

typedef struct nne__fam_check {
  int id; /* < N_SM: standard module; else N_SM + extra index */
  nne_names_shape_t input0, output0;
} nne__fam_check_t;

typedef struct nne__family {
  const char *name, *file;
  const char **aliases, **classes, **structure;
  size_t n_aliases, n_classes, n_structure;
  /* mods[SM_LAYER] is derived from mods[SM_LAYERS] */
  nne__fam_mod_t mods[N_SM];
  nne__fam_extra_t *extras;
  size_t n_extras;
  nne__fam_site_t sites[N_SS];
  nne__fam_check_t *checks;
  size_t n_checks;
  bool from_override; /* read from the override directory */
} nne__family_t;

struct nne_family_set {
  nne_arena_t arena;
  nne__family_t **fams; /* sorted by name */
  size_t n, cap;
};

/* The family of a name or alias (case-insensitive), with its index in
 * set->fams when index is not NULL; NULL when none. */
const nne__family_t *nne__family_find(const nne_family_set_t *set,
                                      const char *name, size_t *index);
/* The definition and the name of standard (id < N_SM) or extra module id. */
const nne__fam_mod_t *nne__fam_mod(const nne__family_t *f, int id);
const char *nne__fam_mod_name(const nne__family_t *f, int id);

/* ---- build.c: one model's names ------------------------------------------ */

enum { NK_RAW, NK_STD, NK_USER };

/* One spelling of a module. */
typedef struct nne__mname {
  const char *name;
  const char *reason; /* why unavailable, when module < 0 */
  int module;         /* -1: unavailable */
  int layer;          /* -1: not in a layer */
  int std;            /* standard/extra id (NK_STD), else -1 */
  int kind;           /* NK_* */
  int via;            /* NK_USER: the standard name it was defined through
                         (index in names), else -1: when the load-time check
                         finds that name wrong, the alias goes with it */
} nne__mname_t;

typedef struct nne__alias {
  int module;
  uint32_t seq;
  const char *name;
  bool standard;
} nne__alias_t;

/* Warnings from nne_names_mark_unavailable, one per (template, reason), so
 * that a site that fails in all 80 layers is one line. */
typedef struct nne__mark_group {
  const char *tmpl, *reason;
  unsigned char *layers; /* n_layers flags */
  size_t warning;        /* index in warnings */
} nne__mark_group_t;

struct nne_names {
  nne_arena_t arena;
  nne_names_module_t *mods;
  size_t n_mods;
  int *mod_layer; /* layer index of each module, -1 outside the layers */

  const char *family, *reason, *prefix, *layers_path;
  int n_layers;

  nne__mname_t *names;
  size_t n_names, cap_names;
  nne_map_t mod_ht; /* every module spelling → names[] */
  nne_map_t std_ht; /* standard/extra names → names[] (even when a raw path
                       shadows them in mod_ht) */

  nne__alias_t *aliases;
  size_t n_aliases, cap_aliases;
  uint32_t *alias_start, *alias_n; /* per module, after sorting */

  nne_names_site_entry_t *sites;
  int *site_via;   /* names[] index of the standard module it goes through */
  int *site_layer; /* layer of each site, -1 for embed/logits */
  size_t n_sites, cap_sites, cap_site_via, cap_site_layer;
  nne_map_t site_ht;  /* standard and TL site names → sites[] */
  nne_map_t canon_ht; /* canonical form (no view) → sites[] */

  nne_names_check_t *checks;
  size_t n_checks, cap_checks;

  const char **warnings;
  size_t n_warnings, cap_warnings;
  nne__mark_group_t *groups;
  size_t n_groups, cap_groups;
};

/* Adds a warning (a string in the names' arena; NULL counts as out of
 * memory). 0 or -1. */
int nne__add_warning_str(nne_names_t *nm, const char *w);
#define nne__add_warning(nm, ...)                                              \
  nne__add_warning_str((nm), nne_arena_printf(&(nm)->arena, __VA_ARGS__))
/* Adds a spelling of a module (name borrowed from the arena); its index in
 * names[], or -1. */
int nne__add_name(nne_names_t *nm, const char *name, int module,
                  const char *reason, int layer, int std, int kind);
/* Lists name among module's aliases (standard first, then user). 0 or -1. */
int nne__add_alias(nne_names_t *nm, int module, const char *name,
                   bool standard);
/* Formats a set of layers as "0..3, 7, 9..11". */
void nne__format_layers(char *buf, size_t cap, const unsigned char *set, int n);

/* ---- detect.c: which family a model is ----------------------------------- */

/* The module whose raw path is `path`, or -1. */
int nne__raw_index(const nne_names_t *nm, const char *path);
/* Picks the family (*fam, NULL: none) and its root (*root, a module path),
 * forced or detected; warnings go to nm. */
int nne__detect(nne_names_t *nm, const nne_family_set_t *set,
                const char *forced, const nne__family_t **fam,
                const char **root, nne_err_t *err);

/* ---- resolve.c: resolution and suggestions ------------------------------- */

/* Resolves a module spelling of len bytes. 0 with *module (and *via: the
 * names[] index of the standard/extra name it went through, or -1);
 * NNE_ESTATE with the reason in why; NNE_ENOTFOUND. In a family map
 * (map_ctx) a spelling may also be a path relative to the family root. */
int nne__resolve_core(const nne_names_t *nm, const char *s, size_t len,
                      bool map_ctx, int *module, int *via, char *why,
                      size_t why_len);
/* Fills *out from parsed syntax and a resolved module; false when the
 * canonical form does not fit. */
bool nne__site_fill(const nne_names_t *nm, const nne__site_syn_t *syn,
                    int module, nne_names_site_t *out);
/* The index of the first all-digit component of s (and its value, capped),
 * or -1. */
int nne__layer_component(const char *s, size_t len, size_t *start, size_t *clen,
                         long *value);

/* The closest names to a query, for "not found" messages. */
typedef struct nne__suggest {
  const char *query;
  size_t qlen;
  int layer;        /* candidates in this layer or in none */
  bool with_suffix; /* the query includes the suffix offered with names */
  size_t n;
  struct {
    size_t dist;
    char text[NAME_MAX_LEN + 16];
  } best[N_SUGGEST];
} nne__suggest_t;

void nne__suggest_init(nne__suggest_t *sg, const nne_names_t *nm, const char *q,
                       size_t qlen);
/* Offers every available module spelling (with suffix appended). */
void nne__offer_modules(nne__suggest_t *sg, const nne_names_t *nm,
                        const char *suffix);
/* "; closest: a, b, c" (or "" when there is nothing to offer). */
void nne__suggest_format(const nne__suggest_t *sg, char *buf, size_t cap);

/* ---- rename.c: user renames from model.json ------------------------------ */

/* Adds the aliases of model.json's "names"; what matches nothing is a
 * warning. 0, or -1 when out of memory. */
int nne__apply_renames(nne_names_t *nm, const nne_names_rename_t *renames,
                       size_t n);

#endif /* NNE_NAMES_INTERNAL_H */
