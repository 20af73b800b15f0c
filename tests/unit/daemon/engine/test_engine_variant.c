/* test_engine_variant.c — sites, hooks and variants of the libtorch shim
 * (daemon/engine/variant.cc) against the fixture models and their Python
 * references.
 *
 * For every fixture (gpt2/llama/neox, scripted and traced):
 *   - a variant with a hook at every module output element and at every
 *     module input Python recorded captures values equal to the eager
 *     forward hooks' (bit-identical where Python's own archive-vs-eager
 *     check was exact), and its logits equal nne_model_forward's bit for bit;
 *   - replacing values works (by itself: nothing changes; zeros at an MLP's
 *     output: the same as zeros at the input of the op that consumes it);
 *   - node sites inside the attention's own code give the attention pattern
 *     (aten::softmax's output) and the scores (its input), once per instance;
 *   - bad sites, bad replacements and a hook that cancels fail cleanly;
 *   - three threads share one variant with their own hooks;
 *   - build and run times, hook overhead and memory are printed.
 *
 * Traced archives have other submodule signatures than the eager model
 * (arguments in order of first use, pruned outputs): the manifest's
 * trace_signature maps them back to the eager positions the references use.
 */
#include <check.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/vec.h"
#include "engine/engine.h"
#include "fixtures.h"
#include "npy.h"

/* Where Python's archive-vs-eager check was not exact (GPT-2: ~1.4e-6),
 * captured values and logits must agree this closely. */
#define TOL 1e-5

static char **g_names; /* fixture names */
static size_t g_nfix;
static char g_fixture_err[512];

/* ---- helpers ------------------------------------------------------------- */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static nne_fixture_t *fixture(int i) {
  nne_fixture_t *f = NULL;
  char msg[512];
  ck_assert_msg(nne_fixture_load(g_names[i], &f, msg, sizeof msg) == 0, "%s",
                msg);
  return f;
}

static nne_model_t *load(const char *path) {
  nne_model_t *m = NULL;
  nne_err_t err = {0};
  ck_assert_msg(nne_model_load(path, "cpu", NNE_DTYPE_INVALID, &m, &err) == 0,
                "load %s: %s", path, err.msg);
  return m;
}

static nne_tensor_t *ids_tensor(const nne_fixture_ids_t *ids) {
  int64_t shape[2] = {ids->rows, ids->cols};
  nne_tensor_t *t = NULL;
  nne_err_t err = {0};
  ck_assert_msg(
      nne_tensor_from_host(NNE_DTYPE_I64, shape, 2, ids->data, &t, &err) == 0,
      "%s", err.msg);
  return t;
}

/* int64 [rows, cols] filled with `fill`, or with a token pattern when
 * fill < 0. */
static nne_tensor_t *int_matrix(int64_t rows, int64_t cols, int64_t fill) {
  int64_t shape[2] = {rows, cols};
  int64_t *d = malloc((size_t)(rows * cols) * sizeof *d);
  nne_tensor_t *t = NULL;
  nne_err_t err = {0};
  int64_t i;
  ck_assert_ptr_nonnull(d);
  for (i = 0; i < rows * cols; i++)
    d[i] = fill >= 0 ? fill : (i * 131 + 17) % 997 + 1;
  ck_assert_msg(nne_tensor_from_host(NNE_DTYPE_I64, shape, 2, d, &t, &err) == 0,
                "%s", err.msg);
  free(d);
  return t;
}

static nne_tensor_t *ones_like(const nne_fixture_ids_t *ids) {
  return int_matrix(ids->rows, ids->cols, 1);
}

static nne_tensor_t *forward(nne_model_t *m, nne_tensor_t *ids,
                             nne_tensor_t *mask) {
  nne_tensor_t *out = NULL;
  nne_err_t err = {0};
  ck_assert_msg(nne_model_forward(m, ids, mask, &out, &err) == 0, "forward: %s",
                err.msg);
  return out;
}

static const void *host(nne_tensor_t *t) {
  const void *p = NULL;
  nne_err_t err = {0};
  ck_assert_msg(nne_tensor_host_data(t, &p, &err) == 0, "%s", err.msg);
  return p;
}

static const float *host_f32(nne_tensor_t *t) {
  ck_assert_int_eq(nne_tensor_dtype(t), NNE_DTYPE_F32);
  return host(t);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
  double d = 0;
  size_t i;
  for (i = 0; i < n; i++) {
    double x = fabs((double)a[i] - (double)b[i]);
    if (x > d || x != x)
      d = x;
  }
  return d;
}

static double tensor_diff(nne_tensor_t *a, nne_tensor_t *b) {
  int i;
  ck_assert_int_eq(nne_tensor_ndim(a), nne_tensor_ndim(b));
  for (i = 0; i < nne_tensor_ndim(a); i++)
    ck_assert_int_eq(nne_tensor_shape(a)[i], nne_tensor_shape(b)[i]);
  return max_abs_diff(host_f32(a), host_f32(b), (size_t)nne_tensor_numel(a));
}

/* "1.13.0" and "1.13.0a0" are the same major.minor. */
static int same_minor_version(const char *a, const char *b) {
  int dots = 0;
  for (; *a != '\0' && *a == *b; a++, b++)
    if (*a == '.' && ++dots == 2)
      return 1;
  return 0;
}

/* Bit-identity is expected where Python's own archive-vs-eager check was
 * exact and the torch that made the references is ours. */
static int expect_exact(const nne_fixture_t *f) {
  return f->jit_vs_eager_max_abs_diff == 0 &&
         same_minor_version(nne_engine_torch_version(), f->torch_version);
}

static int is_trace(const nne_fixture_t *f) {
  return strcmp(f->export_kind, "trace") == 0;
}

static int find_module(nne_model_t *m, const char *path) {
  int i = nne_model_module_find(m, path);
  ck_assert_msg(i >= 0, "module '%s' not found", path);
  return i;
}

/* The index of the k-th module (in tree order) whose class name contains
 * `cls`, or -1. */
static int nth_of_class(nne_model_t *m, const char *cls, int k) {
  size_t i;
  for (i = 0; i < nne_model_module_count(m); i++)
    if (strstr(nne_model_module(m, i)->class_name, cls) != NULL && k-- == 0)
      return (int)i;
  return -1;
}

static int child(nne_model_t *m, int parent, const char *name) {
  const nne_module_info_t *p = nne_model_module(m, (size_t)parent);
  int k;
  for (k = 0; k < p->n_children; k++)
    if (strcmp(nne_model_module(m, (size_t)p->children[k])->name, name) == 0)
      return p->children[k];
  ck_abort_msg("%s has no child '%s'", p->path, name);
  return -1;
}

/* Family-specific module names (NAMES.md). */
static const char *block_class(const nne_fixture_t *f) {
  if (strcmp(f->family, "gpt2") == 0)
    return "GPT2Block";
  if (strcmp(f->family, "llama") == 0)
    return "LlamaDecoderLayer";
  return "GPTNeoXLayer";
}

static const char *embed_path(const nne_fixture_t *f) {
  if (strcmp(f->family, "gpt2") == 0)
    return "transformer.wte";
  if (strcmp(f->family, "llama") == 0)
    return "model.embed_tokens";
  return "gpt_neox.embed_in";
}

/* ---- sites --------------------------------------------------------------- */

typedef struct site_list {
  nne_site_t *v;
  size_t n, cap;
} site_list_t;

static int add_site(site_list_t *l, int module, nne_site_kind_t kind, int index,
                    const char *node_kind, int occurrence) {
  ck_assert_int_eq(NNE_VEC_GROW(&l->v, &l->cap, l->n + 1), 0);
  l->v[l->n] = (nne_site_t){module, kind, index, node_kind, occurrence};
  return (int)l->n++;
}

static int find_site(const site_list_t *l, int module, nne_site_kind_t kind,
                     int index) {
  size_t i;
  for (i = 0; i < l->n; i++)
    if (l->v[i].module == module && l->v[i].kind == kind &&
        l->v[i].index == index && l->v[i].node_kind == NULL)
      return (int)i;
  return -1;
}

static nne_variant_t *build(nne_model_t *m, const site_list_t *l) {
  nne_variant_t *v = NULL;
  nne_err_t err = {0};
  ck_assert_msg(nne_variant_build(m, l->v, l->n, &v, &err) == 0, "build: %s",
                err.msg);
  return v;
}

/* Builds and expects NNE_EINVAL with `word` in the message. */
static void build_fails(nne_model_t *m, const nne_site_t *s, size_t n,
                        const char *word, const char *word2) {
  nne_variant_t *sentinel = (nne_variant_t *)(uintptr_t)0x5151, *v = sentinel;
  nne_err_t err = {0};
  int rc = nne_variant_build(m, s, n, &v, &err);
  ck_assert_msg(rc == NNE_EINVAL, "expected NNE_EINVAL (want '%s'), got %d",
                word, rc);
  ck_assert_ptr_eq(v, sentinel);
  ck_assert_msg(strstr(err.msg, word) != NULL, "'%s' lacks '%s'", err.msg,
                word);
  if (word2 != NULL)
    ck_assert_msg(strstr(err.msg, word2) != NULL, "'%s' lacks '%s'", err.msg,
                  word2);
  printf("  refused: %s\n", err.msg);
}

/* The traced position of eager input/output `index` of a module (its
 * trace_signature), or `index` itself for a scripted export; -1 when the
 * trace pruned it. kind: NNE_FIXTURE_SIG_INPUT or _OUTPUT. */
static int traced_pos(const nne_fixture_t *f, const nne_fixture_module_t *fm,
                      int want_kind, int eager_index, int in_outputs) {
  const nne_fixture_sig_t *s = in_outputs ? fm->sig_outputs : fm->sig_inputs;
  size_t n = in_outputs ? fm->n_sig_outputs : fm->n_sig_inputs, j;
  if (!is_trace(f))
    return eager_index;
  ck_assert_msg(fm->has_trace_signature, "%s: no trace_signature", fm->path);
  for (j = 0; j < n; j++)
    if ((int)s[j].kind == want_kind && s[j].index == eager_index)
      return (int)j;
  return -1;
}

/* ---- hooks --------------------------------------------------------------- */

enum action {
  ACT_NONE,
  ACT_SAME,
  ACT_ZERO,
  ACT_BAD_SHAPE,
  ACT_BAD_DTYPE,
  ACT_CANCEL
};

/* Per site: what the hook does, the first value it saw, how often it
 * fired. One per forward call (and per thread). */
typedef struct capture {
  size_t n;
  int *action;
  int *count;
  nne_tensor_t **first;
} capture_t;

static void capture_init(capture_t *c, size_t n) {
  c->n = n;
  c->action = calloc(n + 1, sizeof *c->action);
  c->count = calloc(n + 1, sizeof *c->count);
  c->first = calloc(n + 1, sizeof *c->first);
  ck_assert(c->action && c->count && c->first);
}

static void capture_reset(capture_t *c) {
  size_t i;
  for (i = 0; i < c->n; i++) {
    nne_tensor_unref(c->first[i]);
    c->first[i] = NULL;
    c->count[i] = 0;
  }
}

static void capture_free(capture_t *c) {
  capture_reset(c);
  free(c->action);
  free(c->count);
  free(c->first);
}

static nne_tensor_t *zeros(nne_dtype_t dt, const int64_t *shape, int ndim) {
  nne_tensor_t *t = NULL;
  nne_err_t err = {0};
  if (nne_tensor_from_host(dt, shape, ndim, NULL, &t, &err) != 0)
    return NULL;
  return t;
}

static int capture_hook(void *ctx, int site, nne_tensor_t *value,
                        nne_tensor_t **replace) {
  capture_t *c = ctx;
  int64_t shape[NNE_TENSOR_MAX_DIMS];
  int nd = nne_tensor_ndim(value);
  if (site < 0 || (size_t)site >= c->n)
    return NNE_EINTERNAL;
  if (c->count[site]++ == 0)
    c->first[site] = nne_tensor_ref(value);
  memcpy(shape, nne_tensor_shape(value), (size_t)nd * sizeof *shape);
  switch (c->action[site]) {
  case ACT_SAME: *replace = nne_tensor_ref(value); break;
  case ACT_ZERO: *replace = zeros(nne_tensor_dtype(value), shape, nd); break;
  case ACT_BAD_SHAPE:
    shape[nd - 1] += 1;
    *replace = zeros(nne_tensor_dtype(value), shape, nd);
    break;
  case ACT_BAD_DTYPE: *replace = zeros(NNE_DTYPE_I64, shape, nd); break;
  case ACT_CANCEL: return NNE_ECANCELED;
  default: break;
  }
  return 0;
}

static nne_tensor_t *vforward(nne_variant_t *v, nne_tensor_t *ids,
                              nne_tensor_t *mask, capture_t *c) {
  nne_tensor_t *out = NULL;
  nne_err_t err = {0};
  int rc =
      nne_variant_forward(v, ids, mask, c ? capture_hook : NULL, c, &out, &err);
  ck_assert_msg(rc == 0, "variant forward: %s", err.msg);
  return out;
}

/* Compares a captured value with a reference .npy. Returns the max abs
 * difference (0 for equal integer tensors). */
static double compare_ref(nne_tensor_t *t, const nne_fixture_ref_t *r,
                          const char *what) {
  nne_npy_t a;
  char msg[512];
  double d = 0;
  int i;
  ck_assert_msg(nne_fixture_ref_load(r, &a, msg, sizeof msg) == 0, "%s", msg);
  ck_assert_msg(nne_tensor_ndim(t) == a.ndim, "%s: %d dims, reference %d", what,
                nne_tensor_ndim(t), a.ndim);
  for (i = 0; i < a.ndim; i++)
    ck_assert_msg(nne_tensor_shape(t)[i] == a.shape[i],
                  "%s: dim %d is %lld, reference %lld", what, i,
                  (long long)nne_tensor_shape(t)[i], (long long)a.shape[i]);
  if (a.dtype == NNE_NPY_F32) {
    ck_assert_msg(nne_tensor_dtype(t) == NNE_DTYPE_F32, "%s: dtype %s", what,
                  nne_dtype_name(nne_tensor_dtype(t)));
    d = max_abs_diff(host(t), a.data, a.numel);
  } else {
    ck_assert_msg(
        a.dtype == NNE_NPY_I64 && nne_tensor_dtype(t) == NNE_DTYPE_I64,
        "%s: dtype %s, reference %s", what, nne_dtype_name(nne_tensor_dtype(t)),
        nne_npy_dtype_name(a.dtype));
    ck_assert_msg(memcmp(host(t), a.data, a.nbytes) == 0,
                  "%s: int64 values differ", what);
  }
  nne_npy_free(&a);
  return d;
}

/* ---- 1: every module input and output against Python -------------------- */

/* Sites at every output element of every called module and at every input
 * Python recorded (mapped through trace_signature). */
static void all_io_sites(nne_model_t *m, const nne_fixture_t *f, site_list_t *l,
                         int with_inputs) {
  size_t k, r;
  nne_err_t err = {0};
  for (k = 0; k < nne_model_module_count(m); k++) {
    const nne_module_info_t *mi = nne_model_module(m, k);
    int ni, no, o;
    if (mi->call_index < 0)
      continue;
    ck_assert_msg(nne_model_module_arity(m, (int)k, &ni, &no, &err) == 0, "%s",
                  err.msg);
    ck_assert_msg(ni >= 0 && no >= 1, "%s: arity %d, %d", mi->path, ni, no);
    for (o = 0; o < no; o++)
      add_site(l, (int)k, NNE_SITE_OUTPUT, o, NULL, 0);
  }
  for (r = 0; with_inputs && r < f->n_io; r++) {
    const nne_fixture_io_t *io = &f->io[r];
    int k2 = find_module(m, io->path), j;
    if (strcmp(io->kind, "input") != 0)
      continue;
    j = traced_pos(f, &f->modules[k2], NNE_FIXTURE_SIG_INPUT, io->index, 0);
    if (j >= 0 && find_site(l, k2, NNE_SITE_INPUT, j) < 0)
      add_site(l, k2, NNE_SITE_INPUT, j, NULL, 0);
  }
}

START_TEST(test_variant_io) {
  nne_fixture_t *f = fixture(_i);
  nne_model_t *m = load(f->model_path);
  nne_tensor_t *ids = ids_tensor(&f->input_ids),
               *ones = ones_like(&f->input_ids);
  nne_tensor_t *base, *l0, *l1, *l2;
  site_list_t sl = {0};
  capture_t c;
  nne_variant_t *v, *v0;
  int exact = expect_exact(f), pruned = 0, compared = 0;
  double worst = 0;
  size_t r, s;

  /* The references were captured with an all-ones mask. */
  base = forward(m, ids, ones);
  all_io_sites(m, f, &sl, 1);
  v = build(m, &sl);
  capture_init(&c, sl.n);
  l1 = vforward(v, ids, ones, &c);

  /* Each site fired once: every module is called once per forward (NeoX
   * calls its MLP in one of two branches; both calls carry the hooks). */
  for (s = 0; s < sl.n; s++)
    ck_assert_msg(c.count[s] == 1, "site %zu (%s %d.%d) fired %d times", s,
                  nne_model_module(m, (size_t)sl.v[s].module)->path,
                  sl.v[s].kind, sl.v[s].index, c.count[s]);

  for (r = 0; r < f->n_io; r++) {
    const nne_fixture_io_t *io = &f->io[r];
    int k = find_module(m, io->path);
    const nne_fixture_module_t *fm = &f->modules[k];
    int out = strcmp(io->kind, "output") == 0, j, site;
    char what[300];
    double d;
    if (out) {
      j = traced_pos(f, fm, NNE_FIXTURE_SIG_OUTPUT, io->index, 1);
      site = j < 0 ? -1 : find_site(&sl, k, NNE_SITE_OUTPUT, j);
    } else {
      j = traced_pos(f, fm, NNE_FIXTURE_SIG_INPUT, io->index, 0);
      site = j < 0 ? -1 : find_site(&sl, k, NNE_SITE_INPUT, j);
    }
    if (j < 0) {
      /* Only a trace prunes (attention weights, a rotary module's unused
       * hidden-states argument). */
      ck_assert_msg(is_trace(f), "%s %s %d missing", io->path, io->kind,
                    io->index);
      pruned++;
      continue;
    }
    ck_assert_msg(site >= 0, "%s %s %d: no site", io->path, io->kind,
                  io->index);
    snprintf(what, sizeof what, "%s %s.%s.%d (site %d)", f->name,
             io->path[0] ? io->path : "(root)", io->kind, io->index, site);
    ck_assert_ptr_nonnull(c.first[site]);
    d = compare_ref(c.first[site], &io->ref, what);
    if (exact)
      ck_assert_msg(d == 0, "%s: expected bit-identical, max abs diff %g", what,
                    d);
    else
      ck_assert_msg(d <= TOL, "%s: max abs diff %g > %g", what, d, TOL);
    worst = d > worst ? d : worst;
    compared++;
  }
  /* Traced outputs that are an eager *input* (LlamaRMSNorm returns its
   * input as a second output): the value must be that input. */
  for (s = 0; is_trace(f) && s < nne_model_module_count(m); s++) {
    const nne_fixture_module_t *fm = &f->modules[s];
    size_t j;
    for (j = 0; fm->has_trace_signature && j < fm->n_sig_outputs; j++) {
      int site = find_site(&sl, (int)s, NNE_SITE_OUTPUT, (int)j);
      if (fm->sig_outputs[j].kind != NNE_FIXTURE_SIG_INPUT || site < 0)
        continue;
      for (r = 0; r < f->n_io; r++) {
        const nne_fixture_io_t *io = &f->io[r];
        if (strcmp(io->path, fm->path) == 0 && strcmp(io->kind, "input") == 0 &&
            io->index == fm->sig_outputs[j].index) {
          double d = compare_ref(c.first[site], &io->ref, fm->path);
          ck_assert_msg(exact ? d == 0 : d <= TOL, "%s output %zu: %g",
                        fm->path, j, d);
          compared++;
        }
      }
    }
  }

  /* Logits: the variant's with hooks that do nothing, without hooks, and
   * through a variant with no sites, all bit-identical to the model's. */
  ck_assert_msg(tensor_diff(l1, base) == 0, "logits with hooks differ by %g",
                tensor_diff(l1, base));
  l2 = vforward(v, ids, ones, NULL);
  ck_assert(tensor_diff(l2, base) == 0);
  {
    nne_err_t err = {0};
    ck_assert_int_eq(nne_variant_build(m, NULL, 0, &v0, &err), 0);
  }
  l0 = vforward(v0, ids, ones, NULL);
  ck_assert(tensor_diff(l0, base) == 0);
  /* The root's output site holds the logits. */
  ck_assert(tensor_diff(c.first[find_site(&sl, 0, NNE_SITE_OUTPUT, 0)], base) ==
            0);
  printf("%-12s io: %zu sites, %d references compared, %d pruned by the "
         "trace; max|C - eager| %g (%s); logits through the variant: "
         "bit-identical to nne_model_forward\n",
         f->name, sl.n, compared, pruned, worst,
         worst == 0 ? "bit-identical" : "bounded");

  /* The left-padded batch through the variant: the model's result. */
  {
    nne_tensor_t *mi = ids_tensor(&f->masked_input_ids);
    nne_tensor_t *mm = ids_tensor(&f->masked_attention_mask);
    nne_tensor_t *a = forward(m, mi, mm), *b;
    capture_reset(&c);
    b = vforward(v, mi, mm, &c);
    ck_assert(tensor_diff(a, b) == 0);
    nne_tensor_unref(a);
    nne_tensor_unref(b);
    nne_tensor_unref(mi);
    nne_tensor_unref(mm);
  }

  capture_free(&c);
  nne_tensor_unref(l0);
  nne_tensor_unref(l1);
  nne_tensor_unref(l2);
  nne_tensor_unref(base);
  nne_variant_unref(v0);
  nne_variant_unref(v);
  free(sl.v);
  nne_tensor_unref(ids);
  nne_tensor_unref(ones);
  nne_model_unref(m);
  nne_fixture_free(f);
}
END_TEST

/* ---- 2: replacing values --------------------------------------------------
 */

/* Sites that zero the MLP output of block 0 by another route: at the input
 * of the node that consumes it in the block's own code (the residual add for
 * GPT-2 and Llama; NeoX's post-MLP dropout call, in both branches). */
static void consumer_sites(nne_model_t *m, const nne_fixture_t *f, int blk,
                           site_list_t *l) {
  const nne_node_info_t *nodes;
  size_t n, k;
  nne_err_t err = {0};
  char want[256];
  ck_assert_msg(nne_model_module_nodes(m, blk, &nodes, &n, &err) == 0, "%s",
                err.msg);
  if (strcmp(f->family, "gpt_neox") != 0) {
    /* hidden_states = residual + <mlp output>: the second aten::add. */
    add_site(l, blk, NNE_SITE_NODE_INPUT, 1, "aten::add", 1);
    return;
  }
  snprintf(want, sizeof want, "%s.post_mlp_dropout",
           nne_model_module(m, (size_t)blk)->path);
  for (k = 0; k < n; k++)
    if (strcmp(nodes[k].kind, "prim::CallMethod") == 0 &&
        strcmp(nodes[k].callee, want) == 0)
      add_site(l, blk, NNE_SITE_NODE_INPUT, 1, "prim::CallMethod",
               nodes[k].occurrence);
}

START_TEST(test_variant_replace) {
  nne_fixture_t *f = fixture(_i);
  nne_model_t *m = load(f->model_path);
  nne_tensor_t *ids = ids_tensor(&f->input_ids),
               *ones = ones_like(&f->input_ids);
  nne_tensor_t *base = forward(m, ids, ones), *a, *b, *z1, *z2;
  int blk0 = nth_of_class(m, block_class(f), 0);
  int blk1 = nth_of_class(m, block_class(f), 1);
  int mlp0 = child(m, blk0, "mlp"), emb = find_module(m, embed_path(f));
  site_list_t s1 = {0}, s2 = {0}, s3 = {0};
  capture_t c1, c2, c3;
  nne_variant_t *v1, *v2, *v3;
  size_t k;
  double d_logits, d_l1;

  ck_assert(blk0 >= 0 && blk1 > blk0);

  /* Each block's output replaced by itself: nothing changes. */
  add_site(&s1, blk0, NNE_SITE_OUTPUT, 0, NULL, 0);
  add_site(&s1, blk1, NNE_SITE_OUTPUT, 0, NULL, 0);
  v1 = build(m, &s1);
  capture_init(&c1, s1.n);
  c1.action[0] = c1.action[1] = ACT_SAME;
  a = vforward(v1, ids, ones, &c1);
  ck_assert_msg(tensor_diff(a, base) == 0, "self-replacement changed logits");
  nne_tensor_unref(a);

  /* Zeros at block 0's MLP output: block 1's output and the logits change,
   * the embedding does not. */
  add_site(&s2, mlp0, NNE_SITE_OUTPUT, 0, NULL, 0); /* 0: zeroed */
  add_site(&s2, blk1, NNE_SITE_OUTPUT, 0, NULL, 0); /* 1 */
  add_site(&s2, emb, NNE_SITE_OUTPUT, 0, NULL, 0);  /* 2 */
  v2 = build(m, &s2);
  capture_init(&c2, s2.n);
  a = vforward(v2, ids, ones, &c2); /* clean */
  ck_assert(tensor_diff(a, base) == 0);
  capture_init(&c3, s2.n);
  c3.action[0] = ACT_ZERO;
  z1 = vforward(v2, ids, ones, &c3);
  d_logits = tensor_diff(z1, base);
  d_l1 = tensor_diff(c3.first[1], c2.first[1]);
  ck_assert_msg(d_logits > 1e-3, "zeroing the MLP left logits (%g)", d_logits);
  ck_assert_msg(d_l1 > 1e-3, "zeroing the MLP left layer 1 (%g)", d_l1);
  ck_assert(tensor_diff(c3.first[2], c2.first[2]) == 0);
  capture_free(&c2);
  capture_free(&c3);

  /* The same effect by another route: zeros at the consumer's input. */
  consumer_sites(m, f, blk0, &s3);
  ck_assert_uint_ge(s3.n, 1);
  {
    size_t nz = s3.n;
    add_site(&s3, blk1, NNE_SITE_OUTPUT, 0, NULL, 0);
    v3 = build(m, &s3);
    capture_init(&c3, s3.n);
    for (k = 0; k < nz; k++)
      c3.action[k] = ACT_ZERO;
    z2 = vforward(v3, ids, ones, &c3);
    for (k = 0, b = NULL; k < nz; k++)
      b = b ? b : c3.first[k];
    ck_assert_ptr_nonnull(b); /* one of the consumers ran */
    ck_assert_msg(tensor_diff(z1, z2) == 0,
                  "zeroing the MLP output and its consumer's input differ "
                  "by %g",
                  tensor_diff(z1, z2));
    capture_free(&c3);
  }
  printf("%-12s replace: self bit-identical; MLP 0 zeroed: logits move by "
         "%.3g, layer 1 by %.3g, embedding unchanged; equals zeroing the "
         "consumer's input\n",
         f->name, d_logits, d_l1);

  capture_free(&c1);
  nne_tensor_unref(a);
  nne_tensor_unref(z1);
  nne_tensor_unref(z2);
  nne_tensor_unref(base);
  nne_variant_unref(v1);
  nne_variant_unref(v2);
  nne_variant_unref(v3);
  free(s1.v);
  free(s2.v);
  free(s3.v);
  nne_tensor_unref(ids);
  nne_tensor_unref(ones);
  nne_model_unref(m);
  nne_fixture_free(f);
}
END_TEST

/* ---- 3: node sites: the attention pattern ---------------------------------
 */

/* The reference attention weights of attention module `path`: eager output
 * element 1. */
static const nne_fixture_ref_t *pattern_ref(const nne_fixture_t *f,
                                            const char *path) {
  size_t r;
  for (r = 0; r < f->n_io; r++)
    if (strcmp(f->io[r].path, path) == 0 &&
        strcmp(f->io[r].kind, "output") == 0 && f->io[r].index == 1)
      return &f->io[r].ref;
  ck_abort_msg("%s: no reference for output 1", path);
  return NULL;
}

static void check_pattern(nne_tensor_t *p, nne_tensor_t *scores, int64_t B,
                          int64_t S, const char *what) {
  const float *x, *sc;
  int64_t H, row, q, k;
  ck_assert_int_eq(nne_tensor_ndim(p), 4);
  ck_assert_int_eq(nne_tensor_shape(p)[0], B);
  ck_assert_int_eq(nne_tensor_shape(p)[2], S);
  ck_assert_int_eq(nne_tensor_shape(p)[3], S);
  H = nne_tensor_shape(p)[1];
  ck_assert_int_ge(H, 1);
  ck_assert_int_eq(nne_tensor_ndim(scores), 4);
  for (k = 0; k < 4; k++)
    ck_assert_int_eq(nne_tensor_shape(scores)[k], nne_tensor_shape(p)[k]);
  x = host_f32(p);
  sc = host_f32(scores);
  for (row = 0; row < B * H * S; row++) {
    const float *pr = x + row * S, *sr = sc + row * S;
    double sum = 0, mx = -INFINITY, z = 0;
    q = row % S;
    for (k = 0; k < S; k++) {
      sum += pr[k];
      if (k > q)
        ck_assert_msg(pr[k] < 1e-6,
                      "%s: row %lld attends to future key "
                      "%lld (%g)",
                      what, (long long)row, (long long)k, (double)pr[k]);
      mx = sr[k] > mx ? sr[k] : mx;
    }
    ck_assert_msg(fabs(sum - 1) <= 1e-5, "%s: row %lld sums to %.9f", what,
                  (long long)row, sum);
    /* softmax(scores) = pattern */
    for (k = 0; k < S; k++)
      z += exp((double)sr[k] - mx);
    for (k = 0; k < S; k++)
      ck_assert_msg(fabs(exp((double)sr[k] - mx) / z - pr[k]) <= 1e-6,
                    "%s: softmax(scores) differs from the pattern at row "
                    "%lld key %lld",
                    what, (long long)row, (long long)k);
  }
}

START_TEST(test_variant_softmax) {
  nne_fixture_t *f = fixture(_i);
  nne_model_t *m = load(f->model_path);
  nne_tensor_t *ids = ids_tensor(&f->input_ids),
               *ones = ones_like(&f->input_ids);
  nne_tensor_t *l;
  site_list_t sl = {0};
  capture_t c;
  nne_variant_t *v;
  int att[16], na = 0, a, exact = expect_exact(f);
  int64_t B = f->input_ids.rows, S = f->input_ids.cols;
  double worst = 0;
  nne_err_t err = {0};

  for (a = 0; (att[na] = nth_of_class(m, "Attention", a)) >= 0 && na < 15; a++)
    na++;
  ck_assert_int_ge(na, 2);
  for (a = 0; a < na; a++) {
    const nne_node_info_t *nodes, *again;
    size_t n, n2, k;
    int soft = 0;
    ck_assert_int_eq(nne_model_module_nodes(m, att[a], &nodes, &n, &err), 0);
    for (k = 0; k < n; k++)
      if (strcmp(nodes[k].kind, "aten::softmax") == 0) {
        ck_assert_int_eq(nodes[k].occurrence, soft);
        ck_assert_uint_eq(nodes[k].tensor_outputs & 1, 1);
        ck_assert_uint_eq(nodes[k].tensor_inputs & 1, 1);
        soft++;
      }
    ck_assert_int_eq(soft, 1); /* one softmax in the attention's own code */
    /* Cached: the same array again. */
    ck_assert_int_eq(nne_model_module_nodes(m, att[a], &again, &n2, &err), 0);
    ck_assert_ptr_eq(again, nodes);
    ck_assert_uint_eq(n2, n);
    add_site(&sl, att[a], NNE_SITE_NODE, 0, "aten::softmax", 0);
    add_site(&sl, att[a], NNE_SITE_NODE_INPUT, 0, "aten::softmax", 0);
  }
  v = build(m, &sl);
  capture_init(&c, sl.n);
  l = vforward(v, ids, ones, &c);
  nne_tensor_unref(l);
  for (a = 0; a < na; a++) {
    const char *path = nne_model_module(m, (size_t)att[a])->path;
    double d;
    ck_assert_msg(c.count[2 * a] == 1 && c.count[2 * a + 1] == 1,
                  "%s: softmax sites fired %d and %d times", path,
                  c.count[2 * a], c.count[2 * a + 1]);
    check_pattern(c.first[2 * a], c.first[2 * a + 1], B, S, path);
    /* The eager attention weights of this very instance. */
    d = compare_ref(c.first[2 * a], pattern_ref(f, path), path);
    ck_assert_msg(exact ? d == 0 : d <= TOL, "%s: pattern differs by %g", path,
                  d);
    worst = d > worst ? d : worst;
  }
  /* Two forwards: two calls per site. */
  l = vforward(v, ids, ones, &c);
  nne_tensor_unref(l);
  for (a = 0; a < 2 * na; a++)
    ck_assert_int_eq(c.count[a], 2);
  capture_free(&c);
  nne_variant_unref(v);

  /* One instance only: scripted instances share one class graph, yet the
   * site fires for that instance alone, with its values. */
  for (a = 0; a < na; a++) {
    site_list_t one = {0};
    const char *path = nne_model_module(m, (size_t)att[a])->path;
    add_site(&one, att[a], NNE_SITE_NODE, 0, "aten::softmax", 0);
    v = build(m, &one);
    capture_init(&c, 1);
    l = vforward(v, ids, ones, &c);
    ck_assert_msg(c.count[0] == 1, "%s alone fired %d times", path, c.count[0]);
    ck_assert(compare_ref(c.first[0], pattern_ref(f, path), path) <=
              (exact ? 0 : TOL));
    capture_free(&c);
    nne_tensor_unref(l);
    nne_variant_unref(v);
    free(one.v);
  }
  printf("%-12s softmax: %d attention modules, pattern = eager weights "
         "(max diff %g), rows sum to 1, causal, softmax(scores) = pattern, "
         "once per instance\n",
         f->name, na, worst);
  free(sl.v);
  nne_tensor_unref(ids);
  nne_tensor_unref(ones);
  nne_model_unref(m);
  nne_fixture_free(f);
}
END_TEST

/* ---- 4: errors ------------------------------------------------------------
 */

START_TEST(test_variant_errors) {
  nne_fixture_t *f = fixture(_i);
  nne_model_t *m = load(f->model_path);
  nne_tensor_t *ids = ids_tensor(&f->input_ids),
               *ones = ones_like(&f->input_ids);
  nne_tensor_t *base = forward(m, ids, ones), *l;
  nne_tensor_t *sentinel = (nne_tensor_t *)(uintptr_t)0x7777, *out;
  int blk0 = nth_of_class(m, block_class(f), 0);
  int att0 = nth_of_class(m, "Attention", 0);
  int mlp0 = child(m, blk0, "mlp"), list = -1, ni, no;
  nne_site_t ok = {blk0, NNE_SITE_OUTPUT, 0, NULL, 0};
  nne_site_t s[3] = {ok, ok, ok};
  const nne_node_info_t *nodes;
  size_t n, k;
  nne_err_t err = {0};
  char word[300];
  site_list_t sl = {0};
  capture_t c;
  nne_variant_t *v;

  for (k = 0; k < nne_model_module_count(m); k++)
    if (nne_model_module(m, k)->call_index < 0)
      list = (int)k; /* the ModuleList of blocks */
  ck_assert_int_ge(list, 0);
  printf("%-12s errors:\n", f->name);

  /* Positions: the bad site is number 2. */
  s[2].module = 9999;
  build_fails(m, s, 3, "site 2", "does not exist");
  s[2].module = -1;
  build_fails(m, s, 3, "site 2", "does not exist");
  s[2] = (nne_site_t){list, NNE_SITE_OUTPUT, 0, NULL, 0};
  build_fails(m, s, 3, "site 2", "never calls");
  ck_assert_int_eq(nne_model_module_arity(m, list, &ni, &no, &err), 0);
  ck_assert_int_eq(ni, -1);
  ck_assert_int_eq(no, -1);
  ck_assert_int_eq(nne_model_module_nodes(m, list, &nodes, &n, &err),
                   NNE_EINVAL);
  ck_assert_int_eq(nne_model_module_nodes(m, 9999, &nodes, &n, &err),
                   NNE_EINVAL);

  /* An input past the arguments. */
  ck_assert_int_eq(nne_model_module_arity(m, blk0, &ni, &no, &err), 0);
  s[2] = (nne_site_t){blk0, NNE_SITE_INPUT, ni, NULL, 0};
  snprintf(word, sizeof word, "takes %d argument", ni);
  build_fails(m, s, 3, "site 2", word);
  s[2].index = -1;
  build_fails(m, s, 3, "site 2", "negative");

  /* The attention's weights: a tensor in scripted archives, pruned by the
   * trace (arity says so). */
  ck_assert_int_eq(nne_model_module_arity(m, att0, &ni, &no, &err), 0);
  printf("  %s arity: %d inputs, %d outputs\n",
         nne_model_module(m, (size_t)att0)->path, ni, no);
  s[2] = (nne_site_t){att0, NNE_SITE_OUTPUT, 1, NULL, 0};
  if (is_trace(f)) {
    ck_assert_int_eq(no, 1);
    build_fails(m, s, 3, "site 2", "not a tuple");
  } else {
    /* (attn_output, attn_weights, present_key, present_value) */
    ck_assert_int_eq(no, 4);
    ck_assert_int_eq(nne_variant_build(m, s, 3, &v, &err), 0);
    nne_variant_unref(v);
    s[2].index = 4;
    build_fails(m, s, 3, "site 2", "tuple of 4");
  }

  /* Node sites that are not there or not tensors. */
  s[2] = (nne_site_t){att0, NNE_SITE_NODE, 0, "aten::no_such_op", 0};
  build_fails(m, s, 3, "site 2", "has 0 aten::no_such_op");
  s[2] = (nne_site_t){att0, NNE_SITE_NODE, 0, "aten::softmax", 3};
  build_fails(m, s, 3, "aten::softmax#3", "has 1 aten::softmax");
  s[2] = (nne_site_t){att0, NNE_SITE_NODE, 1, "aten::softmax", 0};
  build_fails(m, s, 3, "site 2", "has 1 output");
  s[2] = (nne_site_t){att0, NNE_SITE_NODE_INPUT, 7, "aten::softmax", 0};
  build_fails(m, s, 3, "site 2", "inputs");
  s[2] = (nne_site_t){att0, NNE_SITE_NODE, 0, NULL, 0};
  build_fails(m, s, 3, "site 2", "node_kind");
  ck_assert_int_eq(nne_model_module_nodes(m, att0, &nodes, &n, &err), 0);
  for (k = 0; k < n; k++)
    if (nodes[k].n_outputs > 0 && (nodes[k].tensor_outputs & 1) == 0)
      break;
  ck_assert_uint_lt(k, n);
  s[2] =
      (nne_site_t){att0, NNE_SITE_NODE, 0, nodes[k].kind, nodes[k].occurrence};
  build_fails(m, s, 3, "site 2", "not a tensor");
  s[2] = (nne_site_t){att0, (nne_site_kind_t)9, 0, NULL, 0};
  build_fails(m, s, 3, "site 2", "kind 9");

  /* A replacement of the wrong shape or dtype fails the forward with the
   * site's name; the model and the variant work afterwards. */
  add_site(&sl, mlp0, NNE_SITE_OUTPUT, 0, NULL, 0);
  add_site(&sl, blk0, NNE_SITE_OUTPUT, 0, NULL, 0);
  v = build(m, &sl);
  capture_init(&c, sl.n);
  c.action[1] = ACT_BAD_SHAPE;
  out = sentinel;
  ck_assert_int_eq(
      nne_variant_forward(v, ids, ones, capture_hook, &c, &out, &err),
      NNE_EINVAL);
  ck_assert_ptr_eq(out, sentinel);
  snprintf(word, sizeof word, "site 1 (%s.output.0)",
           nne_model_module(m, (size_t)blk0)->path);
  ck_assert_msg(strstr(err.msg, word) != NULL, "'%s' lacks '%s'", err.msg,
                word);
  ck_assert_msg(strstr(err.msg, "replacement") != NULL, "%s", err.msg);
  printf("  wrong shape: %s\n", err.msg);
  capture_reset(&c);
  c.action[1] = ACT_BAD_DTYPE;
  ck_assert_int_eq(
      nne_variant_forward(v, ids, ones, capture_hook, &c, &out, &err),
      NNE_EINVAL);
  ck_assert_msg(strstr(err.msg, "int64") != NULL, "%s", err.msg);
  printf("  wrong dtype: %s\n", err.msg);
  l = vforward(v, ids, ones, NULL);
  ck_assert(tensor_diff(l, base) == 0);
  nne_tensor_unref(l);
  l = forward(m, ids, ones);
  ck_assert(tensor_diff(l, base) == 0);
  nne_tensor_unref(l);

  /* A hook that cancels stops the forward: later sites never fire. */
  capture_reset(&c);
  c.action[1] = ACT_NONE;
  c.action[0] = ACT_CANCEL;
  ck_assert_int_eq(
      nne_variant_forward(v, ids, ones, capture_hook, &c, &out, &err),
      NNE_ECANCELED);
  ck_assert_ptr_eq(out, sentinel);
  ck_assert_int_eq(c.count[0], 1);
  ck_assert_int_eq(c.count[1], 0);
  ck_assert_msg(strstr(err.msg, "site 0 (") != NULL, "%s", err.msg);
  printf("  cancelled: %s\n", err.msg);
  capture_reset(&c);
  c.action[0] = ACT_NONE;
  l = vforward(v, ids, ones, &c);
  ck_assert(tensor_diff(l, base) == 0);
  ck_assert_int_eq(c.count[1], 1);
  nne_tensor_unref(l);

  /* NULL arguments. */
  ck_assert_int_eq(nne_variant_build(m, NULL, 1, &v, &err), NNE_EINVAL);
  ck_assert_int_eq(nne_variant_forward(v, NULL, NULL, NULL, NULL, &out, &err),
                   NNE_EINVAL);

  capture_free(&c);
  nne_variant_unref(v);
  free(sl.v);
  nne_tensor_unref(base);
  nne_tensor_unref(ids);
  nne_tensor_unref(ones);
  nne_model_unref(m);
  nne_fixture_free(f);
}
END_TEST

/* ---- 5: threads ------------------------------------------------------------
 */

#define VT_THREADS 3
#define VT_ROUNDS 4

struct vt_arg {
  nne_variant_t *v;
  nne_tensor_t *ids, *mask;
  size_t n_sites;
  nne_tensor_t *const *expect; /* per site: the first value, single-threaded */
  nne_tensor_t *expect_logits;
  int mismatches, failures;
};

static int same_bytes(nne_tensor_t *a, nne_tensor_t *b) {
  const void *pa, *pb;
  nne_err_t err = {0};
  if (a == NULL || b == NULL)
    return a == b;
  if (nne_tensor_nbytes(a) != nne_tensor_nbytes(b) ||
      nne_tensor_host_data(a, &pa, &err) != 0 ||
      nne_tensor_host_data(b, &pb, &err) != 0)
    return 0;
  return memcmp(pa, pb, nne_tensor_nbytes(a)) == 0;
}

static void *vt_thread(void *p) {
  struct vt_arg *a = p;
  int r;
  size_t s;
  for (r = 0; r < VT_ROUNDS; r++) {
    capture_t c;
    nne_tensor_t *l = NULL;
    nne_err_t err = {0};
    capture_init(&c, a->n_sites);
    if (nne_variant_forward(a->v, a->ids, a->mask, capture_hook, &c, &l,
                            &err) != 0) {
      a->failures++;
    } else {
      a->mismatches += !same_bytes(l, a->expect_logits);
      for (s = 0; s < a->n_sites; s++)
        a->mismatches +=
            c.count[s] != 1 || !same_bytes(c.first[s], a->expect[s]);
    }
    nne_tensor_unref(l);
    capture_free(&c);
  }
  return NULL;
}

START_TEST(test_variant_threads) {
  nne_fixture_t *f = fixture(_i);
  nne_model_t *m = load(f->model_path);
  site_list_t sl = {0};
  nne_variant_t *v;
  capture_t ref[VT_THREADS];
  struct vt_arg arg[VT_THREADS];
  pthread_t th[VT_THREADS];
  nne_tensor_t *ids[VT_THREADS], *mask[VT_THREADS], *logits[VT_THREADS];
  int i, a;

  /* Three inputs of different shapes, one with padding. */
  ids[0] = ids_tensor(&f->input_ids);
  mask[0] = ones_like(&f->input_ids);
  ids[1] = ids_tensor(&f->masked_input_ids);
  mask[1] = ids_tensor(&f->masked_attention_mask);
  ids[2] = int_matrix(3, 9, -1);
  mask[2] = int_matrix(3, 9, 1);
  all_io_sites(m, f, &sl, 0);
  for (a = 0; nth_of_class(m, "Attention", a) >= 0; a++)
    add_site(&sl, nth_of_class(m, "Attention", a), NNE_SITE_NODE, 0,
             "aten::softmax", 0);
  v = build(m, &sl);
  for (i = 0; i < VT_THREADS; i++) {
    capture_init(&ref[i], sl.n);
    logits[i] = vforward(v, ids[i], mask[i], &ref[i]);
  }
  for (i = 0; i < VT_THREADS; i++) {
    arg[i] = (struct vt_arg){v,         ids[i], mask[i], sl.n, ref[i].first,
                             logits[i], 0,      0};
    ck_assert_int_eq(pthread_create(&th[i], NULL, vt_thread, &arg[i]), 0);
  }
  for (i = 0; i < VT_THREADS; i++) {
    pthread_join(th[i], NULL);
    ck_assert_int_eq(arg[i].failures, 0);
    ck_assert_msg(arg[i].mismatches == 0, "thread %d: %d mismatches", i,
                  arg[i].mismatches);
  }
  printf("%-12s threads: %d threads x %d forwards of one variant (%zu "
         "sites), each with its own hooks: all captures bit-identical\n",
         f->name, VT_THREADS, VT_ROUNDS, sl.n);
  for (i = 0; i < VT_THREADS; i++) {
    capture_free(&ref[i]);
    nne_tensor_unref(logits[i]);
    nne_tensor_unref(ids[i]);
    nne_tensor_unref(mask[i]);
  }
  nne_variant_unref(v);
  free(sl.v);
  nne_model_unref(m);
  nne_fixture_free(f);
}
END_TEST

/* ---- 6: figures ------------------------------------------------------------
 */

static int noop_hook(void *ctx, int site, nne_tensor_t *value,
                     nne_tensor_t **replace) {
  (void)site;
  (void)value;
  (void)replace;
  ++*(long *)ctx;
  return 0;
}

START_TEST(test_variant_figures) {
  nne_fixture_t *f = fixture(_i);
  nne_model_t *m = load(f->model_path);
  nne_tensor_t *ids = ids_tensor(&f->input_ids),
               *ones = ones_like(&f->input_ids);
  site_list_t all = {0}, one = {0};
  nne_variant_t *va, *vo;
  nne_err_t err = {0};
  double t0, t_first, t_second, best_v = 1e9, best_p = 1e9, t_one;
  long calls = 0;
  size_t heap0, heap1, k;
  char heap[32];
  int r;
  nne_tensor_t *l;

  /* Warm the model and libtorch's one-time state first. */
  for (r = 0; r < 3; r++)
    nne_tensor_unref(forward(m, ids, ones));
  for (k = 0; k < nne_model_module_count(m); k++)
    if (nne_model_module(m, k)->call_index >= 0)
      add_site(&all, (int)k, NNE_SITE_OUTPUT, 0, NULL, 0);
  add_site(&one, nth_of_class(m, "Attention", 0), NNE_SITE_NODE, 0,
           "aten::softmax", 0);

  heap0 = mallinfo2().uordblks;
  va = build(m, &all);
  t0 = now_ms();
  ck_assert_int_eq(
      nne_variant_forward(va, ids, ones, noop_hook, &calls, &l, &err), 0);
  t_first = now_ms() - t0;
  nne_tensor_unref(l);
  heap1 = mallinfo2().uordblks;
  t0 = now_ms();
  ck_assert_int_eq(
      nne_variant_forward(va, ids, ones, noop_hook, &calls, &l, &err), 0);
  t_second = now_ms() - t0;
  nne_tensor_unref(l);
  /* Steady state, interleaved so that both see the same machine. */
  for (r = 0; r < 30; r++) {
    double tv, tp;
    t0 = now_ms();
    ck_assert_int_eq(
        nne_variant_forward(va, ids, ones, noop_hook, &calls, &l, &err), 0);
    tv = now_ms() - t0;
    nne_tensor_unref(l);
    t0 = now_ms();
    l = forward(m, ids, ones);
    tp = now_ms() - t0;
    nne_tensor_unref(l);
    best_v = tv < best_v ? tv : best_v;
    best_p = tp < best_p ? tp : best_p;
  }
  ck_assert_int_eq(calls, 32 * (long)all.n);
  vo = build(m, &one);
  t0 = now_ms();
  l = vforward(vo, ids, ones, NULL);
  t_one = now_ms() - t0;
  nne_tensor_unref(l);
  /* The heap figure needs glibc's malloc (ASan's mallinfo2 says 0). */
  if (heap1 > heap0)
    snprintf(heap, sizeof heap, "%zu", heap1 - heap0);
  else
    snprintf(heap, sizeof heap, "n/a");
  printf("%-12s figures: build %.1f ms (%zu module outputs), %.1f ms (one "
         "softmax site); forward through it: first %.2f ms, second %.2f ms, "
         "steady %.3f ms vs pristine %.3f ms (x%.3f with %zu no-op hooks); "
         "single-site first forward %.2f ms; bytes %zu (estimate) / %s "
         "(heap growth over build + first run), one-site %zu\n",
         f->name, nne_variant_build_ms(va), all.n, nne_variant_build_ms(vo),
         t_first, t_second, best_v, best_p, best_v / best_p, all.n, t_one,
         nne_variant_bytes(va), heap, nne_variant_bytes(vo));
  ck_assert(nne_variant_build_ms(va) > 0);
  ck_assert(nne_variant_bytes(va) > nne_variant_bytes(vo));
  /* Refcounts: a variant keeps its model alive. */
  ck_assert_ptr_eq(nne_variant_ref(vo), vo);
  nne_variant_unref(vo);
  nne_model_unref(m);
  l = vforward(vo, ids, ones, NULL);
  nne_tensor_unref(l);
  nne_variant_unref(vo);
  nne_variant_unref(va);
  nne_variant_unref(NULL);
  free(all.v);
  free(one.v);
  nne_tensor_unref(ids);
  nne_tensor_unref(ones);
  nne_fixture_free(f);
}
END_TEST

/* ---- main ------------------------------------------------------------------
 */

/* Runs in each forked test process: the references were computed with one
 * intra-op thread (see test_engine.c). */
static void one_thread(void) {
  nne_engine_opts_t opts = {.intra_op_threads = 1};
  nne_err_t err = {0};
  ck_assert_msg(nne_engine_init(&opts, &err) == 0, "%s", err.msg);
}

static Suite *variant_suite(void) {
  Suite *s = suite_create("engine variants");
  TCase *tc = tcase_create("fixtures");
  tcase_add_loop_test(tc, test_variant_io, 0, (int)g_nfix);
  tcase_add_loop_test(tc, test_variant_replace, 0, (int)g_nfix);
  tcase_add_loop_test(tc, test_variant_softmax, 0, (int)g_nfix);
  tcase_add_loop_test(tc, test_variant_errors, 0, (int)g_nfix);
  tcase_add_loop_test(tc, test_variant_threads, 0, (int)g_nfix);
  tcase_add_loop_test(tc, test_variant_figures, 0, (int)g_nfix);
  tcase_add_checked_fixture(tc, one_thread, NULL);
  tcase_set_timeout(tc, 120);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr;
  int failed;

  if (nne_fixtures_list(&g_names, &g_nfix, g_fixture_err,
                        sizeof g_fixture_err) != 0) {
    fprintf(stderr, "test_engine_variant: %s\n", g_fixture_err);
    return 1;
  }
  printf("test_engine_variant: %zu fixtures in %s; libtorch %s\n", g_nfix,
         nne_fixtures_dir(), nne_engine_torch_version());
  fflush(stdout);
  sr = srunner_create(variant_suite());
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  nne_fixtures_list_free(g_names, g_nfix);
  return failed == 0 ? 0 : 1;
}
