/* standard.c — the standard names of NAMES.md and the helpers that expand
 * their templates ({i} for a layer) and check module paths.
 *
 * The tables are the one list of standard module names and standard sites
 * (with their TransformerLens spellings): family maps are checked against
 * them, and a model's names are built and listed in their order. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "names/internal.h"

const char *const nne__std_modules[N_SM] = {
    "embed_tokens",      "embed_positions",    "layers",
    "layers.{i}",        "layers.{i}.ln_attn", "layers.{i}.self_attn",
    "layers.{i}.ln_mlp", "layers.{i}.mlp",     "ln_final",
    "lm_head",
};

const nne__std_site_t nne__std_sites[] = {
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
_Static_assert(sizeof nne__std_sites / sizeof nne__std_sites[0] == N_SS,
               "N_SS counts the standard sites");

bool nne__is_layered(const char *tmpl) {
  return strstr(tmpl, "{i}") != NULL;
}

int nne__std_module_id(const char *name) {
  int i;
  for (i = 0; i < N_SM; i++)
    if (strcmp(nne__std_modules[i], name) == 0)
      return i;
  return -1;
}

int nne__std_site_id(const char *name) {
  size_t i;
  for (i = 0; i < N_SS; i++)
    if (strcmp(nne__std_sites[i].name, name) == 0)
      return (int)i;
  return -1;
}

/* Writes tmpl with every {i} replaced by i into buf; false if it does not
 * fit. */
bool nne__expand(char *buf, size_t cap, const char *tmpl, int i) {
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
bool nne__join(char *buf, size_t cap, const char *prefix, const char *rel) {
  int n;
  if (prefix[0] == '\0')
    n = snprintf(buf, cap, "%s", rel);
  else if (rel[0] == '\0')
    n = snprintf(buf, cap, "%s", prefix);
  else
    n = snprintf(buf, cap, "%s.%s", prefix, rel);
  return n >= 0 && (size_t)n < cap;
}

bool nne__is_ident_char(int c) {
  return isalnum((unsigned char)c) || c == '_';
}

/* A dotted path of [A-Za-z0-9_]+ components; "" (the root) when allow_empty. */
bool nne__is_path(const char *s, size_t n, bool allow_empty) {
  size_t i, comp = 0;
  if (n == 0)
    return allow_empty;
  for (i = 0; i < n; i++) {
    if (s[i] == '.') {
      if (comp == 0)
        return false;
      comp = 0;
    } else if (nne__is_ident_char(s[i])) {
      comp++;
    } else {
      return false;
    }
  }
  return comp > 0;
}
