/* session.c — a request's traces: the session that owns them (and every
 * byte their graphs hold, in one arena), and the names the request streams
 * back (saves and reserved names), unique across its traces. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/vec.h"
#include "trace/internal.h"

/* Everything a request's graphs hold (strings, argument lists, resolved
 * sites, edge lists, the schedule) comes from the session's arena and goes
 * in one call when the request ends: no per-node frees, no per-node mallocs
 * beyond a block now and then. Blocks are larger than the default: a big
 * graph holds a few hundred KiB. */
#define ARENA_BLOCK (64u << 10)

/* ---- names streamed in the request ------------------------------------- */

int nne__trace_name_find(const nne_trace_session_t *s, const char *name) {
  intptr_t e;
  return nne_map_get(&s->name_map, name, strlen(name), &e) ? (int)e : -1;
}

int nne__trace_name_add(nne_trace_session_t *s, const char *name, size_t trace,
                        int node, const char *what) {
  struct nne_trace_name *e;
  if (NNE_VEC_GROW(&s->names, &s->cap_names, s->n_names + 1) != 0 ||
      nne_map_put(&s->name_map, name, strlen(name), (intptr_t)s->n_names) < 0)
    return NNE_ENOMEM;
  e = &s->names[s->n_names++];
  e->name = name;
  e->trace = trace;
  e->node = node;
  e->what = what;
  return 0;
}

/* ---- session ------------------------------------------------------------- */

void nne_trace_session_init(nne_trace_session_t *s, size_t max_traces,
                            size_t max_nodes) {
  memset(s, 0, sizeof *s);
  nne_arena_init(&s->arena, ARENA_BLOCK);
  nne_map_init(&s->name_map);
  s->max_traces = max_traces;
  s->max_nodes = max_nodes;
}

void nne_trace_session_free(nne_trace_session_t *s) {
  size_t i, k;
  for (i = 0; i < s->n; i++) {
    nne_trace_t *t = s->traces[i];
    for (k = 0; k < t->n_nodes; k++)
      free(t->nodes[k].data);
    for (k = 0; t->saved != NULL && k < t->n_saves; k++)
      nne_tensor_unref(t->saved[k]);
    free(t->nodes);
  }
  nne_arena_free(&s->arena);
  free(s->traces);
  free(s->names);
  nne_map_free(&s->name_map);
  memset(s, 0, sizeof *s);
}

int nne_trace_session_add(nne_trace_session_t *s, const char *name,
                          nne_trace_t **out, nne_err_t *err) {
  nne_trace_t *t;
  if (s->n >= s->max_traces)
    return nne_err_set(err, NNE_ERESOURCE,
                       "traces: more than %zu traces in one request "
                       "(--max-traces)",
                       s->max_traces);
  if (NNE_VEC_GROW(&s->traces, &s->cap, s->n + 1) != 0)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  t = nne_arena_zalloc(&s->arena, sizeof *t);
  if (t == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  t->session = s;
  t->index = s->n;
  nne_trace_set_name(t, name);
  s->traces[s->n++] = t;
  *out = t;
  return 0;
}

void nne_trace_set_name(nne_trace_t *t, const char *name) {
  snprintf(t->name, sizeof t->name, "%s", name != NULL ? name : "");
  if (t->name[0] != '\0')
    snprintf(t->label, sizeof t->label, "%s", t->name);
  else
    snprintf(t->label, sizeof t->label, "%zu", t->index);
}

int nne_trace_session_reserve(nne_trace_session_t *s, const char *name,
                              size_t trace, const char *what, nne_err_t *err) {
  int e = nne__trace_name_find(s, name);
  char *n, *w;
  if (e >= 0)
    return nne_err_set(err, NNE_EINVAL,
                       "traces[%zu]: '%s' would name both %s and %s; give the "
                       "traces distinct names",
                       trace, name, what,
                       s->names[e].what ? s->names[e].what : "a save");
  n = nne_arena_strdup(&s->arena, name);
  w = nne_arena_strdup(&s->arena, what);
  if (n == NULL || w == NULL || nne__trace_name_add(s, n, trace, -1, w) != 0)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  return 0;
}
