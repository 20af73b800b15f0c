/* generate_plan.c — Generate's intervention before anything runs: the
 * request's graph validated as a whole, each node's steps checked (its
 * inputs run whenever it does), the steps cut into segments with the nodes
 * that run there (each a validated trace of its own), and every segment
 * bound to the generation's one backend. Loop thread. See generate.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/generate.h"
#include "infer/generate_internal.h"

/* Error messages of the intervention name it as the request does. */
void nne_infer_generate_field(nne_err_t *err) {
  static const char from[] = "traces[0]", to[] = "intervention";
  char buf[NNE_ERR_MSG_MAX];
  const char *p = err->msg, *q;
  size_t n = 0;
  while ((q = strstr(p, from)) != NULL && n < sizeof buf - 1) {
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%.*s%s", (int)(q - p), p,
                          to);
    p = q + sizeof from - 1;
  }
  if (p == err->msg || n >= sizeof buf - 1)
    return;
  snprintf(buf + n, sizeof buf - n, "%s", p);
  snprintf(err->msg, sizeof err->msg, "%s", buf);
}

/* Node k's steps: [start, stop), stop UINT32_MAX for "to the end". */
typedef struct span {
  uint32_t start, stop;
} span_t;

static void span_str(span_t s, char *buf, size_t len) {
  if (s.stop == UINT32_MAX)
    snprintf(buf, len, "[%u, end)", s.start);
  else
    snprintf(buf, len, "[%u, %u)", s.start, s.stop);
}

/* Each node's steps from the request's entries (checked), and every node's
 * inputs running whenever it runs. */
static int node_spans(gen_t *g, const nne_trace_t *t, span_t *sp,
                      nne_err_t *err) {
  const nne_gen_opts_t *o = &g->o;
  size_t i, k, j;
  bool *given = calloc(t->n_nodes ? t->n_nodes : 1, sizeof *given);
  int rc = 0;
  if (given == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  for (k = 0; k < t->n_nodes; k++) {
    sp[k].start = 0;
    sp[k].stop = UINT32_MAX;
  }
  for (i = 0; rc == 0 && i < o->n_steps; i++) {
    const nne_gen_steps_t *st = &o->steps[i];
    for (k = 0; k < t->n_nodes && t->nodes[k].id != st->node; k++)
      ;
    if (k == t->n_nodes)
      rc = nne_err_set(err, NNE_EINVAL,
                       "steps[%zu]: node %u is not a node of the "
                       "intervention",
                       i, st->node);
    else if (given[k])
      rc = nne_err_set(err, NNE_EINVAL,
                       "steps[%zu]: node %u has steps already", i, st->node);
    else if (st->has_stop && st->stop <= st->start)
      rc = nne_err_set(err, NNE_EINVAL,
                       "steps[%zu]: stop %u is not after start %u", i,
                       st->stop, st->start);
    else if (st->start >= o->max_new_tokens)
      rc = nne_err_set(err, NNE_EINVAL,
                       "steps[%zu]: start %u is not before max_new_tokens "
                       "%u (the node would never run)",
                       i, st->start, o->max_new_tokens);
    if (rc != 0)
      break;
    given[k] = true;
    sp[k].start = st->start;
    sp[k].stop = st->has_stop ? st->stop : UINT32_MAX;
  }
  free(given);
  for (k = 0; rc == 0 && k < t->n_nodes; k++)
    for (j = 0; j < t->nodes[k].n_in; j++) {
      span_t a = sp[k], b = sp[t->nodes[k].in[j]];
      char sa[48], sb[48];
      if (b.start <= a.start && b.stop >= a.stop)
        continue;
      span_str(a, sa, sizeof sa);
      span_str(b, sb, sizeof sb);
      rc = nne_err_set(err, NNE_EINVAL,
                       "steps: intervention node %u runs at steps %s but "
                       "its input, node %u, only at %s",
                       t->nodes[k].id, sa, t->nodes[t->nodes[k].in[j]].id,
                       sb);
      break;
    }
  return rc;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* One segment's trace: the nodes that run from `start` (all of them: the
 * request's trace; none: NULL; else a copy in a session of its own,
 * validated like the request's). */
static int make_segment(gen_t *g, nne_trace_t *t, const span_t *sp,
                        uint32_t start, nne_gen_seg_t *seg,
                        const nne_trace_env_t *env, nne_err_t *err) {
  size_t k, n = 0;
  int rc = 0;
  seg->start = start;
  for (k = 0; k < t->n_nodes; k++)
    n += sp[k].start <= start && start < sp[k].stop;
  if (n == 0)
    return 0;
  if (n == t->n_nodes) {
    seg->t = t;
    return 0;
  }
  seg->sess = malloc(sizeof *seg->sess);
  if (seg->sess == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  nne_trace_session_init(seg->sess, 1, g->d->cfg->max_trace_nodes);
  rc = nne_trace_session_add(seg->sess, t->name, &seg->t, err);
  for (k = 0; rc == 0 && k < t->n_nodes; k++)
    if (sp[k].start <= start && start < sp[k].stop)
      rc = nne_trace_copy_node(seg->t, &t->nodes[k], err);
  if (rc == 0) {
    seg->t->n_invokes = 0;
    rc = nne_trace_validate(seg->t, env, err);
    if (rc != 0)
      nne_err_prefix(err, "at step %u", start);
  }
  return rc;
}

/* The intervention (loop, before the backend is planned): validated as a
 * whole, then split into segments of steps, each validated. */
int nne__gen_prepare_intervention(gen_t *g, size_t n_invokes, nne_err_t *err) {
  nne_trace_t *t = g->sess.n > 0 ? g->sess.traces[0] : NULL;
  nne_trace_env_t env;
  span_t *sp = NULL;
  uint32_t *bp = NULL;
  size_t k, n_bp = 0, i;
  int rc = 0;

  if (t == NULL) {
    if (g->o.n_steps > 0)
      return nne_err_set(err, NNE_EINVAL,
                         "steps: given without an intervention");
    return 0;
  }
  if (n_invokes > 0)
    return nne_err_set(err, NNE_EINVAL,
                       "intervention.invokes: Generate's prompts are the "
                       "batch; leave invokes empty");
  for (k = 0; k < t->n_nodes; k++)
    if (t->nodes[k].op == NNE_TRACE_REF)
      return nne_err_set(err, NNE_EINVAL,
                         "intervention.nodes[%zu] (id %u): ref reads a "
                         "value of an earlier trace of a Trace session; "
                         "Generate has none",
                         k, t->nodes[k].id);
  env.names = g->hold.entry->names;
  env.model = g->hold.model;
  if (env.names == NULL)
    return nne_err_set(err, NNE_ESTATE, "intervention: model '%s' has no "
                                        "names",
                       g->hold.entry->name);
  t->n_invokes = 0;
  rc = nne_trace_validate(t, &env, err);
  for (k = 0; rc == 0 && k < t->n_nodes; k++) {
    const nne_trace_node_t *n = &t->nodes[k];
    const nne_edit_set_t *set = g->hold.set;
    if (n->op != NNE_TRACE_SAVE)
      continue;
    for (i = 0; rc == 0 && i < g->o.n_saves; i++)
      if (strcmp(n->name, g->o.saves[i]) == 0)
        rc = nne_err_set(err, NNE_EINVAL,
                         "intervention.nodes[%zu] (id %u): save '%s' is "
                         "also save[%zu]",
                         k, n->id, n->name, i);
    for (i = 0; rc == 0 && set != NULL && i < set->n_edits; i++)
      if (set->edits[i].op == NNE_EDIT_SAVE &&
          strcmp(n->name, set->edits[i].name) == 0)
        rc = nne_err_set(err, NNE_EINVAL,
                         "intervention.nodes[%zu] (id %u): save '%s' is "
                         "also the edit set's edits[%zu]",
                         k, n->id, n->name, i);
  }
  sp = calloc(t->n_nodes ? t->n_nodes : 1, sizeof *sp);
  bp = calloc(2 * t->n_nodes + 1, sizeof *bp);
  if (rc == 0 && (sp == NULL || bp == NULL))
    rc = nne_err_set(err, NNE_ENOMEM, "out of memory");
  if (rc == 0)
    rc = node_spans(g, t, sp, err);
  if (rc == 0) {
    /* Segment starts: 0 and every start and stop before the end. */
    bp[n_bp++] = 0;
    for (k = 0; k < t->n_nodes; k++) {
      bp[n_bp++] = sp[k].start;
      if (sp[k].stop < g->o.max_new_tokens)
        bp[n_bp++] = sp[k].stop;
    }
    qsort(bp, n_bp, sizeof *bp, cmp_u32);
    for (i = 0, k = 0; i < n_bp; i++)
      if (k == 0 || bp[i] != bp[k - 1])
        bp[k++] = bp[i];
    n_bp = k;
    g->segs = calloc(n_bp, sizeof *g->segs);
    if (g->segs == NULL)
      rc = nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  for (i = 0; rc == 0 && i < n_bp; i++) {
    rc = make_segment(g, t, sp, bp[i], &g->segs[i], &env, err);
    g->n_segs = i + 1;
  }
  free(sp);
  free(bp);
  if (rc != 0)
    nne_infer_generate_field(err);
  return rc;
}

/* Binds every segment's trace to the backend: its sites are some of the
 * request's trace's, which follow the saves in the plan. */
int nne__gen_bind_segments(gen_t *g, nne_err_t *err) {
  nne_trace_t *t = g->sess.n > 0 ? g->sess.traces[0] : NULL;
  size_t i, k, n_sites;
  int *hooks = NULL, *orig = NULL;
  int rc = 0;
  if (t == NULL)
    return 0;
  /* orig[node index] = the node's place among the request trace's sites. */
  orig = calloc(t->n_nodes ? t->n_nodes : 1, sizeof *orig);
  hooks = calloc(t->n_sites ? t->n_sites : 1, sizeof *hooks);
  if (orig == NULL || hooks == NULL) {
    rc = nne_err_set(err, NNE_ENOMEM, "out of memory");
    goto out;
  }
  for (k = 0, n_sites = 0; k < t->n_nodes; k++)
    if (t->nodes[k].op == NNE_TRACE_READ || t->nodes[k].op == NNE_TRACE_WRITE)
      orig[k] = (int)n_sites++;
  for (i = 0; rc == 0 && i < g->n_segs; i++) {
    nne_trace_t *st = g->segs[i].t;
    size_t j = 0, m = 0;
    if (st == NULL)
      continue;
    /* The segment's nodes are the request's in order: match them by id. */
    for (k = 0; k < st->n_nodes; k++) {
      const nne_trace_node_t *sn = &st->nodes[k];
      if (sn->op != NNE_TRACE_READ && sn->op != NNE_TRACE_WRITE)
        continue;
      while (t->nodes[j].id != sn->id)
        j++;
      hooks[m++] = nne_infer_backend_site_hook(&g->bk, g->o.n_saves +
                                                           (size_t)orig[j]);
    }
    rc = nne_trace_bind(st, g->bk.plan.n_hooks, hooks, err);
    g->needs_order = g->needs_order || st->needs_order;
  }
out:
  free(orig);
  free(hooks);
  return rc;
}

