/* site.c — the site grammar of names.h: parsing a site spelling into its
 * module part and suffix, and writing a site's canonical form.
 *
 * Canonical site forms leave out a zero index and spell any other:
 * MODULE.output, MODULE.input.2, MODULE:KIND#K, MODULE:KIND#K.output.1,
 * MODULE:KIND#K.input (input 0 of the node). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names/internal.h"

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
  if (n == 0 || n >= sizeof(((nne__site_syn_t *)0)->node_kind))
    return false;
  for (i = 0; i < n; i++)
    if (!nne__is_ident_char(s[i]) && s[i] != ':' && s[i] != '.')
      return false;
  sep = strstr(s, "::");
  return sep != NULL && sep > s && (size_t)(sep - s) + 2 < n && s[n - 1] != ':';
}

/* Parses the site grammar of names.h. 1: parsed into *o; 0: not shaped
 * like a site (no :KIND#K, no trailing .input/.output[.N]); -1: malformed,
 * with the reason in why. */
int nne__site_parse(const char *s, nne__site_syn_t *o, char *why,
                    size_t why_len) {
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
bool nne__site_format(char *buf, size_t cap, const char *path,
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
