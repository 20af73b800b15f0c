/* names.h — standard names: family name maps, aliases, sites.
 *
 * Researchers move between model families; every family names the same
 * parts differently (transformer.h.3.attn, model.layers.3.self_attn,
 * gpt_neox.layers.3.attention). A *family map* (a JSON file per family,
 * shipped with the daemon and overridable from the model repository) maps
 * the standard module names and standard sites of ../shared/design/NAMES.md
 * onto one family's module paths. Names are aliases, never replacements:
 * the raw path, the standard name and user aliases all resolve to the same
 * module.
 *
 * Life cycle:
 *   nne_family_set_load()        builtin maps (+ a directory of overrides)
 *   nne_names_build()            one model: detect the family from its
 *                                module tree (class names + structure) or
 *                                take a forced family, expand {i} over its
 *                                layers, apply user renames → warnings
 *   nne_names_resolve_module()   any spelling → module index
 *   nne_names_resolve_site()     any spelling of a site → nne_names_site_t
 *   nne_names_mark_unavailable() load-time validation results
 *   nne_names_free(), nne_family_set_free()
 *
 * Threads: building (nne_names_build, nne_names_mark_unavailable) must end
 * before the names are shared; after that every function only reads and may
 * be called from any thread at once.
 *
 * Canonical site forms leave a zero index out and spell any other:
 * "X.input", "X.output", "X.output.1", "X:aten::softmax#0",
 * "X:aten::softmax#0.input", "X:KIND#0.output.1". Raw paths always resolve
 * (even when a standard name for the same module is unavailable); "" is the
 * root module, so a caller that uses "" for "unset" checks before resolving.
 *
 * This module knows nothing of libtorch or gRPC: it works on a plain module
 * tree (paths, classes, parents), so unit tests can feed it synthetic trees
 * written down from the Hugging Face layouts.
 *
 * Site grammar (documented for users in README.md):
 *   MODULE.input            argument 0 of MODULE's forward (after self)
 *   MODULE.input.N          argument N
 *   MODULE.output           the output, or element 0 of a tuple output
 *   MODULE.output.N         element N of a tuple output
 *   MODULE:KIND#K           output 0 of the K-th (0-based) node of KIND in
 *                           MODULE's own forward code, in graph order
 *                           (e.g. layers.0.self_attn:aten::softmax#0);
 *                           helper functions count as own code, submodule
 *                           calls do not
 *   MODULE:KIND#K.input.N   input N of that node
 *   a standard site         embed, layers.3.resid_post, layers.3.self_attn.pattern, ...
 *   a TransformerLens name  hook_embed, blocks.3.hook_resid_post,
 *                           blocks.3.attn.hook_pattern, ...
 * MODULE is any module spelling (raw path, standard name, user alias).
 */
#ifndef NNE_NAMES_H
#define NNE_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* ---- family maps ------------------------------------------------------- */

typedef struct nne_family_set nne_family_set_t;

/* Parses every builtin family map, then every *.json in override_dir (may
 * be NULL or missing); an override with the same family name replaces the
 * builtin. A malformed file fails the whole load with NNE_EINVAL naming the
 * file and line ("gpt2.json: line 12: ..."). */
int nne_family_set_load(const char *override_dir, nne_family_set_t **out,
                        nne_err_t *err);
void nne_family_set_free(nne_family_set_t *set);

/* Number of families and their canonical names ("gpt2", "llama", ...). */
size_t nne_family_set_count(const nne_family_set_t *set);
const char *nne_family_set_name(const nne_family_set_t *set, size_t i);

/* ---- one model's names -------------------------------------------------- */

/* The module tree as the engine reports it, pre-order, index 0 = root. */
typedef struct nne_names_module {
  const char *path;       /* "" for the root */
  const char *class_name; /* unqualified, unmangled: "GPT2Attention" */
  int parent;             /* -1 for the root */
} nne_names_module_t;

/* A user rename entry from model.json ("names": {"from": "to" | ["to", ...]}).
 * `from` is a raw path, a standard name, or either with {i} standing for a
 * layer index; each `to` is an alias that may use {i} too. */
typedef struct nne_names_rename {
  const char *from;
  const char *const *to;
  size_t n_to;
} nne_names_rename_t;

typedef struct nne_names nne_names_t;

/* Builds the names of one model. forced_family (NULL or "") skips
 * detection; an unknown forced family is NNE_EINVAL listing the known ones.
 * When no family matches, the model still gets raw paths and user aliases
 * and family() is "" (with a warning). Renames that match nothing become
 * warnings, never errors. The tree is copied. */
int nne_names_build(const nne_family_set_t *set, const char *forced_family,
                    const nne_names_module_t *mods, size_t n_mods,
                    const nne_names_rename_t *renames, size_t n_renames,
                    nne_names_t **out, nne_err_t *err);
void nne_names_free(nne_names_t *names);

/* The detected (or forced) family, "" when none; and how it was decided
 * ("class GPT2LMHeadModel", "structure", "model.json"). */
const char *nne_names_family(const nne_names_t *names);
const char *nne_names_family_reason(const nne_names_t *names);
/* Number of layers ({i} ranges over 0..n-1); 0 without a family. */
int nne_names_layer_count(const nne_names_t *names);

/* Warnings for the user (unmatched renames, undetected family, names that
 * failed validation). Borrowed strings, valid until nne_names_free. */
size_t nne_names_warning_count(const nne_names_t *names);
const char *nne_names_warning(const nne_names_t *names, size_t i);

/* Adds a warning of the caller's (printf-style), e.g. from load-time
 * validation or model.json. NNE_ENOMEM when it cannot be stored. */
int nne_names_add_warning(nne_names_t *names, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Standard names and user aliases of module i (not its raw path), in a
 * stable order: standard names first. Borrowed. */
size_t nne_names_module_alias_count(const nne_names_t *names, int module);
const char *nne_names_module_alias(const nne_names_t *names, int module,
                                   size_t k);
/* True when the alias is a standard name or a family's extra name (false: a
 * user alias). */
bool nne_names_module_alias_is_standard(const nne_names_t *names, int module,
                                        size_t k);

/* Resolves any spelling of a module to its index. `field` names the request
 * field in messages. Unknown → NNE_ENOTFOUND listing up to 5 closest valid
 * names; layer index out of range ("layers.40.mlp") → NNE_EINVAL naming the
 * model's layer count; a standard name that failed validation →
 * NNE_ESTATE with the reason. */
int nne_names_resolve_module(const nne_names_t *names, const char *field,
                             const char *name, int *module, nne_err_t *err);

typedef enum nne_names_site_kind {
  NNE_NAMES_SITE_INPUT = 1,      /* module input `index` */
  NNE_NAMES_SITE_OUTPUT = 2,     /* module output element `index` */
  NNE_NAMES_SITE_NODE = 3,       /* output `index` of a node in own code */
  NNE_NAMES_SITE_NODE_INPUT = 4, /* input `index` of that node */
} nne_names_site_kind_t;

/* A view taken of the value at the site before it is read or written, for
 * standard sites that are part of a fused value (q/k/v of a fused qkv
 * projection): reshape the last dim into [heads, -1] when `heads_view`, then
 * take part `part` of `parts` equal parts of the last dim. parts == 0: no
 * view. */
typedef struct nne_names_view {
  int parts;
  int part;
  bool heads_view;
} nne_names_view_t;

typedef struct nne_names_site {
  int module;                 /* index in the tree */
  nne_names_site_kind_t kind;
  int index;
  char node_kind[64];         /* NODE*: "aten::softmax" */
  int node_occurrence;        /* NODE*: K in KIND#K */
  nne_names_view_t view;
  char canonical[256];        /* raw form: "transformer.h.0.attn:aten::softmax#0" */
  char standard[128];         /* the standard site name, "" if none */
} nne_names_site_t;

/* Resolves any spelling of a site. Errors as nne_names_resolve_module, plus
 * NNE_EINVAL for a malformed site ("layers.0.mlp.outptu": suggestions). */
int nne_names_resolve_site(const nne_names_t *names, const char *field,
                           const char *name, nne_names_site_t *out,
                           nne_err_t *err);

/* The standard sites the family map defines for this model, expanded per
 * layer, in a stable order (embed, then per layer, then logits). Each comes
 * with its resolution or the reason it is unavailable. Borrowed. */
typedef struct nne_names_site_entry {
  const char *name;           /* "layers.3.resid_post" */
  const char *tl_name;        /* "blocks.3.hook_resid_post", or NULL */
  bool available;
  const char *reason;         /* why not, when !available */
  nne_names_site_t site;      /* when available */
} nne_names_site_entry_t;

size_t nne_names_site_count(const nne_names_t *names);
const nne_names_site_entry_t *nne_names_site(const nne_names_t *names,
                                             size_t i);

/* What load-time validation should check: for each standard module name,
 * the expected shape of its input 0 / output element 0, in terms of the
 * model's batch B, sequence S, width D and vocabulary V. */
typedef enum nne_names_shape {
  NNE_NAMES_SHAPE_NONE = 0,
  NNE_NAMES_SHAPE_BSD = 1, /* [batch, seq, d_model] */
  NNE_NAMES_SHAPE_BSV = 2, /* [batch, seq, vocab] */
} nne_names_shape_t;

typedef struct nne_names_check {
  const char *name;        /* standard module name, "layers.3" */
  int module;
  nne_names_shape_t input0;  /* expected shape of input 0 (or NONE) */
  nne_names_shape_t output0; /* expected shape of output element 0 */
} nne_names_check_t;

size_t nne_names_check_count(const nne_names_t *names);
const nne_names_check_t *nne_names_check(const nne_names_t *names, size_t i);

/* Marks a standard module name or standard site (standard or
 * TransformerLens spelling) unavailable: it stays listed with the reason,
 * resolving it fails with NNE_ESTATE, and the sites that are that module's
 * own boundaries go with it. Adds a warning, merged per template and reason
 * ("... in 3 layers (1..3)"). Unknown names are ignored. */
void nne_names_mark_unavailable(nne_names_t *names, const char *standard,
                                const char *reason);

#endif /* NNE_NAMES_H */
