/* test_engine_graph.c — graph inspection (daemon/engine/graph.cc:
 * nne_graph_get and its accessors) on every fixture.
 *
 *   - pristine: every module's listing is its own code exactly as
 *     nne_model_module_nodes lists it (order, kinds, occurrences, callees,
 *     source lines), with selectors PATH:KIND#K; each attention module has
 *     one aten::softmax, PATH:aten::softmax#0; calls name modules that
 *     exist; the root's listing works;
 *   - through a variant with sites at <attn 0>:aten::softmax#0 and
 *     <block 0>.mlp.output: the attention's listing holds the hook right
 *     after the softmax (inserted, its site number), the MLP's holds its
 *     output hook, both are `edited`; the second attention (not inlined by
 *     the variant: its pristine code, as the variant runs it) and every
 *     other module hold no hook and are not edited; for every module the
 *     nodes the variant did not insert are the pristine listing again (once
 *     per call of the module), and a block whose attention the variant
 *     inlined shows that call as one CALL node with the pristine selector;
 *   - refusals; build times are printed.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine_helpers.h"
#include "fixtures.h"

static char **g_names;
static size_t g_nfix;

static nne_graph_t *graph(nne_model_t *m, int module, nne_variant_t *v) {
  nne_graph_t *g = NULL;
  nne_err_t err = {0};
  ck_assert_msg(nne_graph_get(m, module, v, &g, &err) == 0, "graph %s: %s",
                nne_model_module(m, (size_t)module)->path, err.msg);
  ck_assert_ptr_nonnull(g);
  return g;
}

static int has_forward(nne_model_t *m, int module) {
  const nne_node_info_t *nodes;
  size_t n;
  nne_err_t err = {0};
  return nne_model_module_nodes(m, module, &nodes, &n, &err) == 0;
}

static size_t count_op(const nne_graph_t *g, const char *op) {
  size_t i, c = 0;
  for (i = 0; i < nne_graph_node_count(g); i++)
    c += strcmp(nne_graph_node(g, i)->op, op) == 0;
  return c;
}

static size_t count_hooks(const nne_graph_t *g) {
  size_t i, c = 0;
  for (i = 0; i < nne_graph_node_count(g); i++)
    c += nne_graph_node(g, i)->kind == NNE_GRAPH_HOOK;
  return c;
}

/* What every listed node must satisfy. */
static void check_node(nne_model_t *m, const nne_graph_node_t *n,
                       const char *path, const char *what) {
  size_t k;
  ck_assert_str_eq(n->instance, path);
  ck_assert(n->op != NULL && n->selector != NULL && n->source != NULL &&
            n->shape != NULL && n->callee != NULL);
  ck_assert_int_ge(n->depth, 0);
  for (k = 0; k < n->n_inputs; k++)
    ck_assert_msg(n->inputs[k][0] == '%', "%s: input '%s'", what, n->inputs[k]);
  for (k = 0; k < n->n_outputs; k++)
    ck_assert_msg(n->outputs[k][0] == '%', "%s: output '%s'", what,
                  n->outputs[k]);
  switch (n->kind) {
  case NNE_GRAPH_HOOK:
    ck_assert(strncmp(n->op, "nnedit::hook", 12) == 0);
    ck_assert_int_eq(n->inserted, 1);
    ck_assert_int_ge(n->hook_site, 0);
    break;
  case NNE_GRAPH_CALL:
    ck_assert(strcmp(n->op, "prim::CallMethod") == 0 ||
              strcmp(n->op, "prim::CallFunction") == 0);
    if (strcmp(n->op, "prim::CallMethod") == 0)
      ck_assert_msg(n->callee[0] != '\0' &&
                        nne_model_module_find(m, n->callee) > 0,
                    "%s: callee '%s' is not a submodule", what, n->callee);
    break;
  case NNE_GRAPH_CONSTANT: ck_assert_str_eq(n->op, "prim::Constant"); break;
  case NNE_GRAPH_ATTRIBUTE: ck_assert_str_eq(n->op, "prim::GetAttr"); break;
  case NNE_GRAPH_OP: ck_assert(strncmp(n->op, "prim::", 6) != 0); break;
  case NNE_GRAPH_OTHER: ck_assert(strncmp(n->op, "prim::", 6) == 0); break;
  default: ck_abort_msg("%s: kind %d", what, n->kind);
  }
  if (n->kind != NNE_GRAPH_HOOK)
    ck_assert_int_eq(n->hook_site, -1);
  if (n->inserted)
    ck_assert_str_eq(n->selector, "");
  else
    ck_assert_msg(n->selector[0] != '\0', "%s: %s has no selector", what,
                  n->op);
}

/* The pristine listing of `module` against nne_model_module_nodes. */
static void check_pristine(nne_model_t *m, int module, const nne_graph_t *g) {
  const nne_module_info_t *mi = nne_model_module(m, (size_t)module);
  const nne_node_info_t *nodes;
  size_t n, i;
  nne_err_t err = {0};
  ck_assert_int_eq(nne_model_module_nodes(m, module, &nodes, &n, &err), 0);
  ck_assert_uint_eq(nne_graph_node_count(g), n);
  ck_assert_int_eq(nne_graph_edited(g), 0);
  ck_assert(nne_graph_text(g)[0] != '\0');
  for (i = 0; i < n; i++) {
    const nne_graph_node_t *e = nne_graph_node(g, i);
    char sel[512], what[600];
    snprintf(sel, sizeof sel, "%s:%s#%d", mi->path, nodes[i].kind,
             nodes[i].occurrence);
    snprintf(what, sizeof what, "%s node %zu",
             mi->path[0] ? mi->path : "(root)", i);
    check_node(m, e, mi->path, what);
    ck_assert_str_eq(e->op, nodes[i].kind);
    ck_assert_str_eq(e->selector, sel);
    ck_assert_str_eq(e->callee, nodes[i].callee);
    ck_assert_str_eq(e->source, nodes[i].source);
    ck_assert_uint_eq(e->n_inputs, (size_t)nodes[i].n_inputs);
    ck_assert_uint_eq(e->n_outputs, (size_t)nodes[i].n_outputs);
    ck_assert_int_eq(e->inserted, 0);
  }
  ck_assert_ptr_null(nne_graph_node(g, n));
}

START_TEST(test_graph_pristine) {
  nne_fixture_t *f = nne_th_fixture(g_names[_i]);
  nne_model_t *m = nne_th_load(f->model_path);
  size_t k, listed = 0, nodes = 0, shapes = 0, sources = 0;
  int a, n_att = 0;
  double t0, t_all, t_root;
  nne_graph_t *g;

  t0 = nne_th_now_ms();
  for (k = 0; k < nne_model_module_count(m); k++) {
    size_t i;
    if (!has_forward(m, (int)k)) {
      nne_graph_t *sentinel = (nne_graph_t *)(uintptr_t)0x77, *out = sentinel;
      nne_err_t err = {0};
      ck_assert_int_eq(nne_graph_get(m, (int)k, NULL, &out, &err), NNE_EINVAL);
      ck_assert_ptr_eq(out, sentinel);
      ck_assert_msg(strstr(err.msg, "has no forward") != NULL, "%s", err.msg);
      continue;
    }
    g = graph(m, (int)k, NULL);
    check_pristine(m, (int)k, g);
    for (i = 0; i < nne_graph_node_count(g); i++) {
      shapes += nne_graph_node(g, i)->shape[0] != '\0';
      sources += nne_graph_node(g, i)->source[0] != '\0';
    }
    nodes += nne_graph_node_count(g);
    listed++;
    nne_graph_free(g);
  }
  t_all = nne_th_now_ms() - t0;

  /* Each attention module: one softmax, reached as PATH:aten::softmax#0. */
  for (a = 0; nne_th_nth_of_class(m, "Attention", a) >= 0; a++) {
    int att = nne_th_nth_of_class(m, "Attention", a);
    const char *path = nne_model_module(m, (size_t)att)->path;
    char want[512];
    size_t i, soft = 0;
    g = graph(m, att, NULL);
    snprintf(want, sizeof want, "%s:aten::softmax#0", path);
    for (i = 0; i < nne_graph_node_count(g); i++) {
      const nne_graph_node_t *e = nne_graph_node(g, i);
      if (strcmp(e->op, "aten::softmax") != 0)
        continue;
      soft++;
      ck_assert_str_eq(e->selector, want);
      ck_assert_int_eq(e->kind, NNE_GRAPH_OP);
    }
    ck_assert_uint_eq(soft, 1);
    ck_assert_uint_ge(
        count_op(g, "prim::CallMethod") + count_op(g, "aten::linear"), 1);
    nne_graph_free(g);
    n_att++;
  }
  ck_assert_int_ge(n_att, 2);

  /* The root. */
  t0 = nne_th_now_ms();
  g = graph(m, 0, NULL);
  t_root = nne_th_now_ms() - t0;
  ck_assert_uint_gt(nne_graph_node_count(g), 0);
  ck_assert_str_eq(nne_graph_node(g, 0)->instance, "");
  ck_assert(strncmp(nne_graph_node(g, 0)->selector, ":", 1) == 0);
  ck_assert(strstr(nne_graph_text(g), "graph(") != NULL);
  ck_assert_uint_ge(count_op(g, "prim::CallMethod"), 1);
  nne_graph_free(g);

  printf("%-12s pristine: %zu modules listed (%zu nodes) = "
         "nne_model_module_nodes; %d attention modules with one "
         "PATH:aten::softmax#0; %zu nodes with a source line, %zu with a "
         "shape; graph_get %.2f ms per module on average, root %.2f ms\n",
         f->name, listed, nodes, n_att, sources, shapes, t_all / (double)listed,
         t_root);
  nne_model_unref(m);
  nne_fixture_free(f);
}
END_TEST

/* The entries of a variant listing that the variant did not insert are the
 * pristine listing, once per copy of the module's code. Returns the number
 * of copies. */
static int same_as_pristine(const nne_graph_t *pg, const nne_graph_t *vg,
                            const char *what) {
  size_t i, j = 0, np = nne_graph_node_count(pg);
  int copies = 0;
  ck_assert_uint_gt(np, 0);
  for (i = 0; i < nne_graph_node_count(vg); i++) {
    const nne_graph_node_t *e = nne_graph_node(vg, i), *p;
    if (e->inserted)
      continue;
    p = nne_graph_node(pg, j);
    ck_assert_msg(strcmp(e->op, p->op) == 0 &&
                      strcmp(e->selector, p->selector) == 0,
                  "%s: node %zu is %s (%s), pristine node %zu is %s (%s)", what,
                  i, e->op, e->selector, j, p->op, p->selector);
    ck_assert_str_eq(e->callee, p->callee);
    ck_assert_str_eq(e->source, p->source);
    ck_assert_int_eq(e->kind, p->kind);
    ck_assert_msg(e->depth == p->depth, "%s: %s at depth %d, pristine %d", what,
                  e->selector, e->depth, p->depth);
    ck_assert_uint_eq(e->n_inputs, p->n_inputs);
    ck_assert_uint_eq(e->n_outputs, p->n_outputs);
    if (++j == np) {
      j = 0;
      copies++;
    }
  }
  ck_assert_msg(j == 0, "%s: a partial copy of the pristine code (%zu of %zu)",
                what, j, np);
  return copies;
}

START_TEST(test_graph_variant) {
  nne_fixture_t *f = nne_th_fixture(g_names[_i]);
  nne_model_t *m = nne_th_load(f->model_path), *m2;
  int att0 = nne_th_nth_of_class(m, "Attention", 0);
  int att1 = nne_th_nth_of_class(m, "Attention", 1);
  int blk0 = nne_th_nth_of_class(m, nne_th_block_class(f), 0);
  int mlp0 = nne_th_child(m, blk0, "mlp");
  nne_site_t s[2] = {{att0, NNE_SITE_NODE, 0, "aten::softmax", 0},
                     {mlp0, NNE_SITE_OUTPUT, 0, NULL, 0}};
  nne_variant_t *v = NULL, *v2 = NULL;
  nne_graph_t *g, *pg, *sentinel = (nne_graph_t *)(uintptr_t)0x55, *out;
  nne_err_t err = {0};
  const nne_graph_node_t *hook = NULL, *soft = NULL;
  size_t i, k, modules = 0, hooks_att = 0, hooks_mlp = 0;
  double t0, t_att, t_root, t_all;
  int boundary = 0, multi = 0;

  ck_assert_int_eq(nne_variant_build(m, s, 2, &v, &err), 0);

  /* Attention 0: the hook sits right on the softmax's output. */
  t0 = nne_th_now_ms();
  g = graph(m, att0, v);
  t_att = nne_th_now_ms() - t0;
  ck_assert_int_eq(nne_graph_edited(g), 1);
  for (i = 0; i < nne_graph_node_count(g); i++) {
    const nne_graph_node_t *e = nne_graph_node(g, i);
    if (strcmp(e->op, "aten::softmax") == 0)
      soft = e;
    if (e->kind == NNE_GRAPH_HOOK) {
      ck_assert_ptr_null(hook);
      hook = e;
    }
  }
  ck_assert_ptr_nonnull(soft);
  ck_assert_ptr_nonnull(hook);
  ck_assert_int_eq(hook->inserted, 1);
  ck_assert_int_eq(hook->hook_site, 0);
  ck_assert_uint_eq(hook->n_inputs, 2);
  ck_assert_str_eq(hook->inputs[0], soft->outputs[0]);
  ck_assert(hook > soft);
  ck_assert(strstr(nne_graph_text(g), "nnedit::hook") != NULL);
  ck_assert(strstr(nne_graph_text(g), "# inserted") != NULL);
  nne_graph_free(g);

  /* The MLP: its output hook (site 1), inserted by the variant in the
   * block's code but listed with the MLP whose output it is. */
  g = graph(m, mlp0, v);
  ck_assert_int_eq(nne_graph_edited(g), 1);
  ck_assert_uint_ge(count_hooks(g), 1);
  for (i = 0; i < nne_graph_node_count(g); i++)
    if (nne_graph_node(g, i)->kind == NNE_GRAPH_HOOK)
      ck_assert_int_eq(nne_graph_node(g, i)->hook_site, 1);
  nne_graph_free(g);

  /* Attention 1, not inlined by this variant: its pristine code, no hook. */
  g = graph(m, att1, v);
  pg = graph(m, att1, NULL);
  ck_assert_int_eq(nne_graph_edited(g), 0);
  ck_assert_uint_eq(count_hooks(g), 0);
  ck_assert_int_eq(same_as_pristine(pg, g, "attention 1"), 1);
  ck_assert(nne_graph_text(g)[0] != '\0');
  nne_graph_free(g);
  nne_graph_free(pg);

  /* Block 0 inlined attention 0: one CALL node stands for it. */
  g = graph(m, blk0, v);
  ck_assert_int_eq(nne_graph_edited(g), 0);
  for (i = 0; i < nne_graph_node_count(g); i++) {
    const nne_graph_node_t *e = nne_graph_node(g, i);
    if (e->kind == NNE_GRAPH_CALL &&
        strcmp(e->callee, nne_model_module(m, (size_t)att0)->path) == 0) {
      ck_assert(strstr(e->selector, ":prim::CallMethod#") != NULL);
      ck_assert(strstr(nne_graph_text(g), "inlined in the variant") != NULL);
      boundary++;
    }
  }
  ck_assert_int_ge(boundary, 1);
  nne_graph_free(g);

  /* Every module through the variant. */
  t0 = nne_th_now_ms();
  for (k = 0; k < nne_model_module_count(m); k++) {
    char what[300];
    size_t h;
    int copies;
    if (!has_forward(m, (int)k))
      continue;
    snprintf(what, sizeof what, "%s via the variant",
             nne_model_module(m, k)->path);
    g = graph(m, (int)k, v);
    pg = graph(m, (int)k, NULL);
    for (i = 0; i < nne_graph_node_count(g); i++)
      check_node(m, nne_graph_node(g, i), nne_model_module(m, k)->path, what);
    copies = same_as_pristine(pg, g, what);
    multi += copies > 1;
    h = count_hooks(g);
    ck_assert_int_eq(nne_graph_edited(g), h > 0);
    if ((int)k == att0)
      hooks_att = h;
    else if ((int)k == mlp0)
      hooks_mlp = h;
    else
      ck_assert_msg(h == 0, "%s holds %zu hooks", what, h);
    nne_graph_free(g);
    nne_graph_free(pg);
    modules++;
  }
  t_all = nne_th_now_ms() - t0;
  ck_assert_uint_eq(hooks_att, 1);
  ck_assert_uint_ge(hooks_mlp, 1);

  t0 = nne_th_now_ms();
  g = graph(m, 0, v);
  t_root = nne_th_now_ms() - t0;
  ck_assert_int_eq(nne_graph_edited(g), 0);
  nne_graph_free(g);

  /* Hooks at attention 1's first argument and first output: listed with
   * it, and where its forward returns a tuple, the unpacking and repacking
   * around the hook are marked inserted too. */
  {
    nne_site_t io[2] = {{att1, NNE_SITE_INPUT, 0, NULL, 0},
                        {att1, NNE_SITE_OUTPUT, 0, NULL, 0}};
    nne_variant_t *v3 = NULL;
    int n_in, n_out;
    size_t unpack = 0, pack = 0, hooks = 0;
    ck_assert_int_eq(nne_model_module_arity(m, att1, &n_in, &n_out, &err), 0);
    ck_assert_int_eq(nne_variant_build(m, io, 2, &v3, &err), 0);
    g = graph(m, att1, v3);
    ck_assert_int_eq(nne_graph_edited(g), 1);
    for (i = 0; i < nne_graph_node_count(g); i++) {
      const nne_graph_node_t *e = nne_graph_node(g, i);
      if (!e->inserted)
        continue;
      hooks += e->kind == NNE_GRAPH_HOOK;
      unpack += strcmp(e->op, "prim::TupleUnpack") == 0;
      pack += strcmp(e->op, "prim::TupleConstruct") == 0;
    }
    ck_assert_uint_eq(hooks, 2);
    ck_assert_uint_eq(unpack, n_out > 1 ? 1 : 0);
    ck_assert_uint_eq(pack, n_out > 1 ? 1 : 0);
    /* The input hook comes first, the output's plumbing last. */
    ck_assert_int_eq(nne_graph_node(g, 0)->inserted, 1);
    ck_assert_int_eq(nne_graph_node(g, nne_graph_node_count(g) - 1)->inserted,
                     1);
    pg = graph(m, att1, NULL);
    ck_assert_int_eq(same_as_pristine(pg, g, "attention 1 with io hooks"), 1);
    nne_graph_free(pg);
    nne_graph_free(g);
    /* Its block holds none of that. */
    g = graph(m, nne_model_module(m, (size_t)att1)->parent, v3);
    ck_assert_uint_eq(count_hooks(g), 0);
    ck_assert_int_eq(nne_graph_edited(g), 0);
    nne_graph_free(g);
    nne_variant_unref(v3);
  }

  /* Refusals. */
  out = sentinel;
  ck_assert_int_eq(nne_graph_get(m, -1, NULL, &out, &err), NNE_EINVAL);
  ck_assert_int_eq(nne_graph_get(m, 9999, v, &out, &err), NNE_EINVAL);
  ck_assert_msg(strstr(err.msg, "does not exist") != NULL, "%s", err.msg);
  ck_assert_int_eq(nne_graph_get(NULL, 0, NULL, &out, &err), NNE_EINVAL);
  ck_assert_int_eq(nne_graph_get(m, 0, NULL, NULL, &err), NNE_EINVAL);
  m2 = nne_th_load(f->model_path);
  ck_assert_int_eq(nne_variant_build(m2, s, 2, &v2, &err), 0);
  ck_assert_int_eq(nne_graph_get(m, att0, v2, &out, &err), NNE_EINVAL);
  ck_assert_msg(strstr(err.msg, "another model") != NULL, "%s", err.msg);
  ck_assert_ptr_eq(out, sentinel);
  nne_variant_unref(v2);
  nne_model_unref(m2);

  printf("%-12s variant: %s holds hook 0 after its softmax, %s its output "
         "hook (%zu cop%s of its code), %s and %zu other modules unedited "
         "and otherwise pristine%s; graph_get %.2f ms (attention), %.2f ms "
         "(root), %.2f ms per module on average\n",
         f->name, nne_model_module(m, (size_t)att0)->path,
         nne_model_module(m, (size_t)mlp0)->path, hooks_mlp,
         hooks_mlp == 1 ? "y" : "ies", nne_model_module(m, (size_t)att1)->path,
         modules - 3, multi ? "; modules called twice listed twice" : "", t_att,
         t_root, t_all / (double)modules);
  nne_variant_unref(v);
  nne_model_unref(m);
  nne_fixture_free(f);
}
END_TEST

/* ---- main ---------------------------------------------------------------- */

static Suite *graph_suite(void) {
  Suite *s = suite_create("engine graph");
  TCase *tc = tcase_create("fixtures");
  tcase_add_loop_test(tc, test_graph_pristine, 0, (int)g_nfix);
  tcase_add_loop_test(tc, test_graph_variant, 0, (int)g_nfix);
  tcase_add_checked_fixture(tc, nne_th_one_thread, NULL);
  tcase_set_timeout(tc, 300);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr;
  int failed;
  char msg[512];

  if (nne_fixtures_list(&g_names, &g_nfix, msg, sizeof msg) != 0) {
    fprintf(stderr, "test_engine_graph: %s\n", msg);
    return 1;
  }
  printf("test_engine_graph: %zu fixtures in %s; libtorch %s\n", g_nfix,
         nne_fixtures_dir(), nne_engine_torch_version());
  fflush(stdout);
  sr = srunner_create(graph_suite());
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  nne_fixtures_list_free(g_names, g_nfix);
  return failed == 0 ? 0 : 1;
}
