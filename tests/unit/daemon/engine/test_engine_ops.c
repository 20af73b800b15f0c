/* test_engine_ops.c — the tensor functions a trace may call and calling one
 * submodule (daemon/engine/trace_ops.cc: nne_op_check, nne_op_call; call_module.cc:
 * nne_model_call_module).
 *
 *   - every whitelisted function, by position and by keyword, with
 *     broadcasting, negative dims, numbers on either side, dtypes, against
 *     Debian's PyTorch: main() runs a Python script once that draws the
 *     inputs and computes each reference with the same call in Python, as
 *     .npy files in a temporary directory; on one libtorch the float32
 *     results are bit-identical, so they are compared byte for byte;
 *   - indexing (ints, slices with negative bounds and steps, ellipsis,
 *     newaxis, on 3 and 4 dims) against Python's x[...] on the same text;
 *   - every refusal, with its message, from nne_op_check and nne_op_call
 *     alike (check needs no tensor values), and libtorch's own refusals
 *     (shapes that do not multiply, an index out of range) from
 *     nne_op_call as NNE_EINVAL with libtorch's reason after the function;
 *   - on the GPT-2 fixture: ln_f then lm_head on the last block's captured
 *     output equals the model's logits bit for bit (the logit lens on the
 *     last layer), a block called on its captured input gives its captured
 *     output (its Optional attention mask passed as None), the lens on every
 *     layer gives top-k ids, several threads at once agree, and a module
 *     with no forward, a missing or extra input, or an input the module
 *     refuses are NNE_EINVAL.
 */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine_helpers.h"
#include "fixtures.h"
#include "npy.h"

static char g_dir[64]; /* the references' temporary directory */

/* ---- the Python reference ------------------------------------------------
 *
 * Inputs are drawn in Python (saved as in_<name>.npy) and every reference is
 * the PyTorch call a researcher would write. Each C test below names the
 * reference it checks; the two lists are kept side by side by name. */

static const char k_script[] =
    "import os, sys\n"
    "import numpy as np\n"
    "import torch\n"
    "torch.set_num_threads(1)\n"
    "out = sys.argv[1]\n"
    "def save(name, t):\n"
    "    np.save(os.path.join(out, name + '.npy'),\n"
    "            t.detach().contiguous().numpy())\n"
    "g = torch.Generator().manual_seed(1234)\n"
    "x = torch.randn(2, 3, 5, generator=g)\n"
    "y = torch.randn(2, 3, 5, generator=g)\n"
    "b5 = torch.randn(5, generator=g)\n"
    "w = torch.randn(5, 4, generator=g)\n"
    "big = torch.randn(4, 6, 7, 8, generator=g)\n"
    "xi = torch.randint(-5, 6, (2, 3), generator=g)\n"
    "pos = x.abs() + 0.1\n"
    "cond = y > 0\n"
    "for k, v in dict(x=x, y=y, b5=b5, w=w, big=big, xi=xi, pos=pos,\n"
    "                 cond=cond).items():\n"
    "    save('in_' + k, v)\n"
    "C = {}\n"
    "C['add_tt'] = torch.add(x, y)\n"
    "C['add_bcast'] = torch.add(input=x, other=b5)\n"
    "C['add_ts'] = torch.add(x, 2.5)\n"
    "C['add_st'] = torch.add(2.5, x)\n"
    "C['add_alpha'] = torch.add(x, y, alpha=0.5)\n"
    "C['add_int'] = torch.add(xi, 3)\n"
    "C['add_int_float'] = torch.add(xi, 0.5)\n"
    "C['sub_tt'] = torch.sub(x, y)\n"
    "C['sub_st'] = torch.sub(2, x)\n"
    "C['sub_alpha'] = torch.sub(x, b5, alpha=2)\n"
    "C['mul_ts'] = torch.mul(x, -1.5)\n"
    "C['mul_bcast'] = torch.mul(b5, x)\n"
    "C['div_tt'] = torch.div(x, y)\n"
    "C['div_st'] = torch.div(1.0, pos)\n"
    "C['div_int'] = torch.div(xi, 2)\n"
    "C['pow_ts'] = torch.pow(x, 2)\n"
    "C['pow_half'] = torch.pow(pos, 0.5)\n"
    "C['pow_st'] = torch.pow(2.0, x)\n"
    "C['pow_tt'] = torch.pow(pos, y)\n"
    "C['neg'] = torch.neg(x)\n"
    "C['matmul'] = torch.matmul(x, w)\n"
    "C['matmul_vec'] = torch.matmul(x, b5)\n"
    "C['softmax'] = torch.softmax(x, -1)\n"
    "C['softmax_kw'] = torch.softmax(input=x, dim=1)\n"
    "C['softmax_f64'] = torch.softmax(x, 0, dtype=torch.float64)\n"
    "C['log_softmax'] = torch.log_softmax(x, dim=-1)\n"
    "C['mean_all'] = torch.mean(x)\n"
    "C['mean_dims'] = torch.mean(x, dim=[0, 2])\n"
    "C['mean_keep'] = torch.mean(x, -1, True)\n"
    "C['mean_int_dim'] = torch.mean(x, dim=1, keepdim=True)\n"
    "C['sum_all'] = torch.sum(x)\n"
    "C['sum_dim'] = torch.sum(x, (1,))\n"
    "C['sum_int'] = torch.sum(xi, 1)\n"
    "C['sum_dtype'] = torch.sum(xi, dtype=torch.float32)\n"
    "C['max_all'] = torch.max(x)\n"
    "C['max_dim'] = torch.max(x, dim=-1).values\n"
    "C['max_keep'] = torch.max(x, 1, keepdim=True).values\n"
    "C['min_all'] = torch.min(x)\n"
    "C['min_dim'] = torch.min(x, 0).values\n"
    "C['argmax_all'] = torch.argmax(x)\n"
    "C['argmax_dim'] = torch.argmax(x, dim=2)\n"
    "C['argmax_keep'] = torch.argmax(x, 1, True)\n"
    "C['argmin_dim'] = torch.argmin(x, dim=-2)\n"
    "C['norm'] = torch.norm(x)\n"
    "C['norm_p1'] = torch.norm(x, p=1)\n"
    "C['norm_dim'] = torch.norm(x, dim=-1)\n"
    "C['norm_p3'] = torch.norm(x, 3, [0, 2], True)\n"
    "C['norm_inf'] = torch.norm(x, float('inf'), dim=1)\n"
    "C['norm_f64'] = torch.norm(x, 2, dim=1, dtype=torch.float64)\n"
    "C['reshape'] = torch.reshape(x, (6, 5))\n"
    "C['reshape_flat'] = torch.reshape(x, (-1,))\n"
    "C['view'] = x.view(size=(3, -1, 5))\n"
    "C['transpose'] = torch.transpose(x, 0, -1)\n"
    "C['transpose_kw'] = torch.transpose(x, dim0=1, dim1=2)\n"
    "C['permute'] = x.permute(2, 0, 1)\n"
    "C['permute_neg'] = x.permute(dims=[-1, 0, 1])\n"
    "C['cat'] = torch.cat([x, y], dim=1)\n"
    "C['cat3'] = torch.cat([x, y, x])\n"
    "C['cat_pos'] = torch.cat([x, y], -1)\n"
    "C['stack'] = torch.stack([x, y])\n"
    "C['stack_neg'] = torch.stack([x, y], dim=-1)\n"
    "C['zeros_like'] = torch.zeros_like(x)\n"
    "C['ones_like_i64'] = torch.ones_like(x, dtype=torch.int64)\n"
    "C['full_f'] = torch.full((2, 3), 1.5)\n"
    "C['full_i'] = torch.full([4], 7)\n"
    "C['full_b'] = torch.full((2, 2), True)\n"
    "C['full_dt'] = torch.full(size=[2], fill_value=0.1,"
    " dtype=torch.float64)\n"
    "C['topk'] = torch.topk(x, 2).values\n"
    "C['topk_dim'] = torch.topk(x, k=3, dim=1).values\n"
    "C['topk_idx'] = torch.topk(x, 2).indices\n"
    "C['topk_small'] = torch.topk(x, 2, largest=False).indices\n"
    "C['where'] = torch.where(cond, x, y)\n"
    "C['where_ts'] = torch.where(cond, x, 0.0)\n"
    "C['where_st'] = torch.where(cond, 1.0, y)\n"
    "C['where_ss'] = torch.where(cond, 1, 0)\n"
    "C['where_bcast'] = torch.where(cond, x, b5)\n"
    "C['clamp'] = torch.clamp(x, -0.5, 0.5)\n"
    "C['clamp_min'] = torch.clamp(x, min=0.0)\n"
    "C['clamp_max'] = torch.clamp(x, max=0)\n"
    "C['clamp_int'] = torch.clamp(xi, -2, 2)\n"
    "C['exp'] = torch.exp(x)\n"
    "C['log'] = torch.log(pos)\n"
    "C['tanh'] = torch.tanh(x)\n"
    "C['relu'] = torch.relu(x)\n"
    "C['gelu'] = torch.nn.functional.gelu(x)\n"
    "C['to_f16'] = x.to(torch.float16)\n"
    "C['to_f64'] = x.to(dtype=torch.float64)\n"
    "C['to_i64'] = x.to(torch.int64)\n"
    "C['to_bool'] = x.to(torch.bool)\n"
    "C['to_bf16'] = x.to(torch.bfloat16).to(torch.float32)\n"
    "C['lens_chain'] = torch.topk(torch.softmax(torch.matmul(x, w), -1),"
    " 2).indices\n"
    "for k, v in C.items():\n"
    "    save(k, v)\n";

/* Index expressions, the same text in Python (appended to the script as
 * save('idx_<i>', <var>[<expr>])) and parsed here into items. */
static const struct {
  const char *var, *expr;
} k_index[] = {
    {"x", "0, :, -1"},
    {"x", "..., 2:5"},
    {"x", "None"},
    {"x", ":, ::2"},
    {"x", "-1"},
    {"x", "1:100"},
    {"x", ":, 1:-1, 4:0"},
    {"x", "-2:, -1:, -3::2"},
    {"x", ":, None, 1, None, 0:5:2"},
    {"x", "..., None"},
    {"x", "None, ..., 0"},
    {"big", "1, ..., None, -3:, ::3"},
    {"big", "..., 0"},
    {"big", "-1, 2:, :-2, 7"},
    {"big", ":, :, :, :"},
};
#define N_INDEX (sizeof k_index / sizeof k_index[0])

static int rm_dir(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char path[512];
  if (d == NULL)
    return -1;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  return rmdir(dir);
}

/* Runs the script with $NNE_PYTHON (else /usr/bin/python3) into g_dir. */
static int make_references(void) {
  const char *py = getenv("NNE_PYTHON");
  char cmd[512];
  FILE *p;
  size_t i;
  int st;
  if (py == NULL || py[0] == '\0')
    py = "/usr/bin/python3";
  strcpy(g_dir, "/tmp/nne-ops-XXXXXX");
  if (mkdtemp(g_dir) == NULL) {
    perror("mkdtemp");
    return -1;
  }
  snprintf(cmd, sizeof cmd, "'%s' - '%s'", py, g_dir);
  p = popen(cmd, "w");
  if (p == NULL) {
    perror("popen");
    return -1;
  }
  fputs(k_script, p);
  for (i = 0; i < N_INDEX; i++)
    fprintf(p, "save('idx_%zu', %s[%s])\n", i, k_index[i].var,
            k_index[i].expr);
  st = pclose(p);
  if (st != 0) {
    fprintf(stderr, "test_engine_ops: the reference script failed (%d)\n", st);
    return -1;
  }
  return 0;
}

/* ---- building calls --------------------------------------------------- */

static nne_op_arg_t T(const nne_tensor_t *t) {
  nne_op_arg_t a = {0};
  a.kind = NNE_ARG_TENSOR;
  a.tensor = t;
  return a;
}

static nne_op_arg_t S(double v) {
  nne_op_arg_t a = {0};
  a.kind = NNE_ARG_SCALAR;
  a.scalar = v;
  return a;
}

static nne_op_arg_t I(int64_t v) {
  nne_op_arg_t a = {0};
  a.kind = NNE_ARG_INT;
  a.integer = v;
  return a;
}

static nne_op_arg_t Ls(const int64_t *v, size_t n) {
  nne_op_arg_t a = {0};
  a.kind = NNE_ARG_INTS;
  a.ints = v;
  a.n_ints = n;
  return a;
}

static nne_op_arg_t B(int v) {
  nne_op_arg_t a = {0};
  a.kind = NNE_ARG_BOOL;
  a.boolean = v;
  return a;
}

static nne_op_arg_t D(nne_dtype_t dt) {
  nne_op_arg_t a = {0};
  a.kind = NNE_ARG_DTYPE;
  a.dtype = dt;
  return a;
}

/* A keyword argument. */
static nne_op_arg_t K(const char *name, nne_op_arg_t a) {
  a.name = name;
  return a;
}

/* A list of ints that lives to the end of the enclosing block. */
#define L(...)                                                                 \
  Ls((const int64_t[]){__VA_ARGS__},                                           \
     sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t))
/* The argument array and its length. */
#define ARGS(...)                                                              \
  (const nne_op_arg_t[]){__VA_ARGS__},                                         \
      sizeof((const nne_op_arg_t[]){__VA_ARGS__}) / sizeof(nne_op_arg_t)

/* Python index text ("0, :, -1", "..., None", "-3::2") into items. */
static size_t parse_index(const char *expr, nne_index_item_t *items,
                          size_t cap) {
  size_t n = 0;
  const char *p = expr;
  while (*p != '\0') {
    char tok[32];
    size_t len = strcspn(p, ",");
    nne_index_item_t it = {0};
    char *t = tok, *end;
    ck_assert(len < sizeof tok && n < cap);
    memcpy(tok, p, len);
    tok[len] = '\0';
    while (*t == ' ')
      t++;
    for (end = t + strlen(t); end > t && end[-1] == ' ';)
      *--end = '\0';
    if (strcmp(t, "...") == 0) {
      it.kind = NNE_INDEX_ELLIPSIS;
    } else if (strcmp(t, "None") == 0) {
      it.kind = NNE_INDEX_NEWAXIS;
    } else if (strchr(t, ':') != NULL) {
      /* start:stop[:step], each part optional */
      char *parts[3] = {t, NULL, NULL};
      int k = 1;
      char *c;
      for (c = t; *c != '\0' && k < 3; c++)
        if (*c == ':') {
          *c = '\0';
          parts[k++] = c + 1;
        }
      it.kind = NNE_INDEX_SLICE;
      if (parts[0][0] != '\0') {
        it.has_start = 1;
        it.start = strtoll(parts[0], NULL, 10);
      }
      if (parts[1] != NULL && parts[1][0] != '\0') {
        it.has_stop = 1;
        it.stop = strtoll(parts[1], NULL, 10);
      }
      if (parts[2] != NULL && parts[2][0] != '\0')
        it.step = strtoll(parts[2], NULL, 10);
    } else {
      it.kind = NNE_INDEX_INT;
      it.index = strtoll(t, NULL, 10);
    }
    items[n++] = it;
    p += len;
    if (*p == ',')
      p++;
  }
  return n;
}

/* ---- references and comparisons ---------------------------------------- */

static nne_npy_t load_npy(const char *name) {
  char path[256], msg[512];
  nne_npy_t a;
  snprintf(path, sizeof path, "%s/%s.npy", g_dir, name);
  ck_assert_msg(nne_npy_load(path, &a, msg, sizeof msg) == 0, "%s", msg);
  return a;
}

/* An input the script drew, as a tensor (npy dtype numbers are engine.h's). */
static nne_tensor_t *input(const char *name) {
  char full[64];
  nne_npy_t a;
  nne_tensor_t *t;
  snprintf(full, sizeof full, "in_%s", name);
  a = load_npy(full);
  t = nne_th_tensor((nne_dtype_t)a.dtype, a.shape, a.ndim, a.data);
  nne_npy_free(&a);
  return t;
}

/* The inputs every value test uses. */
typedef struct inputs {
  nne_tensor_t *x, *y, *b5, *w, *big, *xi, *pos, *cond;
} inputs_t;

static inputs_t g_in;

static void inputs_load(void) {
  nne_th_one_thread();
  g_in.x = input("x");
  g_in.y = input("y");
  g_in.b5 = input("b5");
  g_in.w = input("w");
  g_in.big = input("big");
  g_in.xi = input("xi");
  g_in.pos = input("pos");
  g_in.cond = input("cond");
}

static void inputs_free(void) {
  nne_tensor_t **all[] = {&g_in.x,   &g_in.y,  &g_in.b5,  &g_in.w,
                          &g_in.big, &g_in.xi, &g_in.pos, &g_in.cond};
  size_t i;
  for (i = 0; i < sizeof all / sizeof all[0]; i++) {
    nne_tensor_unref(*all[i]);
    *all[i] = NULL;
  }
}

/* t equals reference `name` in dtype, shape and every byte. */
static void assert_ref(nne_tensor_t *t, const char *name) {
  nne_npy_t a = load_npy(name);
  int i;
  ck_assert_msg((int)nne_tensor_dtype(t) == a.dtype,
                "%s: dtype %s, Python's %s", name,
                nne_dtype_name(nne_tensor_dtype(t)),
                nne_npy_dtype_name(a.dtype));
  ck_assert_msg(nne_tensor_ndim(t) == a.ndim, "%s: %d dims, Python's %d",
                name, nne_tensor_ndim(t), a.ndim);
  for (i = 0; i < a.ndim; i++)
    ck_assert_msg(nne_tensor_shape(t)[i] == a.shape[i],
                  "%s: dim %d is %lld, Python's %lld", name, i,
                  (long long)nne_tensor_shape(t)[i], (long long)a.shape[i]);
  ck_assert_uint_eq(nne_tensor_nbytes(t), a.nbytes);
  ck_assert_msg(a.nbytes == 0 || memcmp(nne_th_host(t), a.data, a.nbytes) == 0,
                "%s: values differ from Python's", name);
  nne_npy_free(&a);
}

/* Calls fn; nne_op_check must accept the same call without tensor values. */
static nne_tensor_t *call_items(const char *fn, const nne_op_arg_t *args,
                                size_t n, const nne_index_item_t *items,
                                size_t n_items) {
  nne_op_arg_t blind[16];
  nne_tensor_t *out = NULL;
  nne_err_t err = {0};
  size_t i;
  ck_assert(n <= 16);
  for (i = 0; i < n; i++) {
    blind[i] = args[i];
    blind[i].tensor = NULL;
  }
  ck_assert_msg(nne_op_check(fn, blind, n, items, n_items, &err) == 0,
                "check %s: %s", fn, err.msg);
  ck_assert_msg(nne_op_call(fn, args, n, items, n_items, &out, &err) == 0,
                "call %s: %s", fn, err.msg);
  ck_assert_ptr_nonnull(out);
  return out;
}

static nne_tensor_t *call(const char *fn, const nne_op_arg_t *args, size_t n) {
  return call_items(fn, args, n, NULL, 0);
}

/* fn(args) equals Python's reference `ref`. */
static void expect(const char *ref, const char *fn, const nne_op_arg_t *args,
                   size_t n) {
  nne_tensor_t *r = call(fn, args, n);
  assert_ref(r, ref);
  nne_tensor_unref(r);
}

/* ---- values against Python -------------------------------------------- */

START_TEST(test_arithmetic) {
  const inputs_t *in = &g_in;
  expect("add_tt", "add", ARGS(T(in->x), T(in->y)));
  expect("add_bcast", "add", ARGS(K("input", T(in->x)), K("other", T(in->b5))));
  expect("add_ts", "add", ARGS(T(in->x), S(2.5)));
  expect("add_st", "add", ARGS(S(2.5), T(in->x)));
  expect("add_alpha", "add", ARGS(T(in->x), T(in->y), K("alpha", S(0.5))));
  expect("add_int", "add", ARGS(T(in->xi), I(3)));
  expect("add_int_float", "add", ARGS(T(in->xi), S(0.5)));
  expect("sub_tt", "sub", ARGS(T(in->x), T(in->y)));
  expect("sub_st", "sub", ARGS(I(2), T(in->x)));
  expect("sub_alpha", "sub", ARGS(T(in->x), T(in->b5), K("alpha", I(2))));
  expect("mul_ts", "mul", ARGS(T(in->x), S(-1.5)));
  expect("mul_bcast", "mul", ARGS(T(in->b5), T(in->x)));
  expect("div_tt", "div", ARGS(T(in->x), T(in->y)));
  expect("div_st", "div", ARGS(S(1.0), T(in->pos)));
  expect("div_int", "div", ARGS(T(in->xi), I(2)));
  expect("pow_ts", "pow", ARGS(T(in->x), I(2)));
  expect("pow_half", "pow", ARGS(T(in->pos), S(0.5)));
  expect("pow_st", "pow", ARGS(S(2.0), T(in->x)));
  expect("pow_tt", "pow", ARGS(T(in->pos), K("exponent", T(in->y))));
  expect("neg", "neg", ARGS(T(in->x)));
  expect("matmul", "matmul", ARGS(T(in->x), T(in->w)));
  expect("matmul_vec", "matmul", ARGS(T(in->x), K("other", T(in->b5))));
  expect("exp", "exp", ARGS(T(in->x)));
  expect("log", "log", ARGS(T(in->pos)));
  expect("tanh", "tanh", ARGS(T(in->x)));
  expect("relu", "relu", ARGS(T(in->x)));
  expect("gelu", "gelu", ARGS(K("input", T(in->x))));
}
END_TEST

START_TEST(test_reductions) {
  const inputs_t *in = &g_in;
  expect("softmax", "softmax", ARGS(T(in->x), I(-1)));
  expect("softmax_kw", "softmax",
         ARGS(K("input", T(in->x)), K("dim", I(1))));
  expect("softmax_f64", "softmax",
         ARGS(T(in->x), I(0), K("dtype", D(NNE_DTYPE_F64))));
  expect("log_softmax", "log_softmax", ARGS(T(in->x), K("dim", I(-1))));
  expect("mean_all", "mean", ARGS(T(in->x)));
  expect("mean_dims", "mean", ARGS(T(in->x), K("dim", L(0, 2))));
  expect("mean_keep", "mean", ARGS(T(in->x), I(-1), B(1)));
  expect("mean_int_dim", "mean",
         ARGS(T(in->x), K("dim", I(1)), K("keepdim", B(1))));
  expect("sum_all", "sum", ARGS(T(in->x)));
  expect("sum_dim", "sum", ARGS(T(in->x), L(1)));
  expect("sum_int", "sum", ARGS(T(in->xi), I(1)));
  expect("sum_dtype", "sum", ARGS(T(in->xi), K("dtype", D(NNE_DTYPE_F32))));
  expect("max_all", "max", ARGS(T(in->x)));
  expect("max_dim", "max", ARGS(T(in->x), K("dim", I(-1))));
  expect("max_keep", "max", ARGS(T(in->x), I(1), K("keepdim", B(1))));
  expect("min_all", "min", ARGS(T(in->x)));
  expect("min_dim", "min", ARGS(T(in->x), I(0)));
  expect("argmax_all", "argmax", ARGS(T(in->x)));
  expect("argmax_dim", "argmax", ARGS(T(in->x), K("dim", I(2))));
  expect("argmax_keep", "argmax", ARGS(T(in->x), I(1), B(1)));
  expect("argmin_dim", "argmin", ARGS(T(in->x), K("dim", I(-2))));
  expect("norm", "norm", ARGS(T(in->x)));
  expect("norm_p1", "norm", ARGS(T(in->x), K("p", I(1))));
  expect("norm_dim", "norm", ARGS(T(in->x), K("dim", I(-1))));
  expect("norm_p3", "norm", ARGS(T(in->x), I(3), L(0, 2), B(1)));
  expect("norm_inf", "norm", ARGS(T(in->x), S(INFINITY), K("dim", I(1))));
  expect("norm_f64", "norm",
         ARGS(T(in->x), S(2), K("dim", I(1)), K("dtype", D(NNE_DTYPE_F64))));
  expect("topk", "topk", ARGS(T(in->x), I(2)));
  expect("topk_dim", "topk", ARGS(T(in->x), K("k", I(3)), K("dim", I(1))));
  expect("topk_idx", "topk_indices", ARGS(T(in->x), I(2)));
  expect("topk_small", "topk_indices",
         ARGS(T(in->x), I(2), K("largest", B(0))));
}
END_TEST

START_TEST(test_shapes) {
  const inputs_t *in = &g_in;
  expect("reshape", "reshape", ARGS(T(in->x), L(6, 5)));
  expect("reshape_flat", "reshape", ARGS(T(in->x), K("shape", L(-1))));
  expect("view", "view", ARGS(T(in->x), K("size", L(3, -1, 5))));
  expect("transpose", "transpose", ARGS(T(in->x), I(0), I(-1)));
  expect("transpose_kw", "transpose",
         ARGS(T(in->x), K("dim0", I(1)), K("dim1", I(2))));
  expect("permute", "permute", ARGS(T(in->x), L(2, 0, 1)));
  expect("permute_neg", "permute", ARGS(T(in->x), K("dims", L(-1, 0, 1))));
  expect("cat", "cat", ARGS(T(in->x), T(in->y), K("dim", I(1))));
  expect("cat3", "cat", ARGS(T(in->x), T(in->y), T(in->x)));
  expect("cat_pos", "cat", ARGS(T(in->x), T(in->y), I(-1)));
  expect("stack", "stack", ARGS(T(in->x), T(in->y)));
  expect("stack_neg", "stack", ARGS(T(in->x), T(in->y), K("dim", I(-1))));
  expect("zeros_like", "zeros_like", ARGS(T(in->x)));
  expect("ones_like_i64", "ones_like",
         ARGS(T(in->x), K("dtype", D(NNE_DTYPE_I64))));
  expect("full_f", "full", ARGS(L(2, 3), S(1.5)));
  expect("full_i", "full", ARGS(L(4), I(7)));
  expect("full_b", "full", ARGS(L(2, 2), B(1)));
  expect("full_dt", "full",
         ARGS(K("size", L(2)), K("fill_value", S(0.1)),
              K("dtype", D(NNE_DTYPE_F64))));
  expect("where", "where", ARGS(T(in->cond), T(in->x), T(in->y)));
  expect("where_ts", "where", ARGS(T(in->cond), T(in->x), S(0.0)));
  expect("where_st", "where",
         ARGS(K("condition", T(in->cond)), K("input", S(1.0)),
              K("other", T(in->y))));
  expect("where_ss", "where", ARGS(T(in->cond), I(1), I(0)));
  expect("where_bcast", "where", ARGS(T(in->cond), T(in->x), T(in->b5)));
  expect("clamp", "clamp", ARGS(T(in->x), S(-0.5), S(0.5)));
  expect("clamp_min", "clamp", ARGS(T(in->x), K("min", S(0.0))));
  expect("clamp_max", "clamp", ARGS(T(in->x), K("max", I(0))));
  expect("clamp_int", "clamp", ARGS(T(in->xi), I(-2), I(2)));
  expect("to_f16", "to", ARGS(T(in->x), D(NNE_DTYPE_F16)));
  expect("to_f64", "to", ARGS(T(in->x), K("dtype", D(NNE_DTYPE_F64))));
  expect("to_i64", "to", ARGS(T(in->x), D(NNE_DTYPE_I64)));
  expect("to_bool", "to", ARGS(T(in->x), D(NNE_DTYPE_BOOL)));
  {
    /* bfloat16 has no numpy type: compared after a round trip to float32. */
    nne_tensor_t *h = call("to", ARGS(T(in->x), D(NNE_DTYPE_BF16)));
    ck_assert_int_eq(nne_tensor_dtype(h), NNE_DTYPE_BF16);
    expect("to_bf16", "to", ARGS(T(h), D(NNE_DTYPE_F32)));
    nne_tensor_unref(h);
  }
  {
    /* A chain, each result the next call's input: a small logit lens. */
    nne_tensor_t *a = call("matmul", ARGS(T(in->x), T(in->w)));
    nne_tensor_t *b = call("softmax", ARGS(T(a), I(-1)));
    expect("lens_chain", "topk_indices", ARGS(T(b), I(2)));
    nne_tensor_unref(a);
    nne_tensor_unref(b);
  }
}
END_TEST

START_TEST(test_index) {
  size_t i;
  for (i = 0; i < N_INDEX; i++) {
    nne_index_item_t items[16];
    size_t n = parse_index(k_index[i].expr, items, 16);
    nne_tensor_t *x =
        strcmp(k_index[i].var, "big") == 0 ? g_in.big : g_in.x, *r;
    char ref[32];
    r = call_items("index", ARGS(T(x)), items, n);
    snprintf(ref, sizeof ref, "idx_%zu", i);
    printf("  %s[%s] -> %d dims\n", k_index[i].var, k_index[i].expr,
           nne_tensor_ndim(r));
    assert_ref(r, ref);
    nne_tensor_unref(r);
  }
  {
    /* No items: x[()] is x. */
    nne_tensor_t *r = call_items("index", ARGS(T(g_in.x)), NULL, 0);
    ck_assert(nne_th_same(r, g_in.x));
    nne_tensor_unref(r);
  }
  {
    /* step 0 means 1. */
    nne_index_item_t it[2] = {{.kind = NNE_INDEX_ELLIPSIS},
                              {.kind = NNE_INDEX_SLICE,
                               .start = 1,
                               .has_start = 1,
                               .step = 0}};
    nne_index_item_t it1[2] = {{.kind = NNE_INDEX_ELLIPSIS},
                               {.kind = NNE_INDEX_SLICE,
                                .start = 1,
                                .has_start = 1,
                                .step = 1}};
    nne_tensor_t *a = call_items("index", ARGS(T(g_in.x)), it, 2);
    nne_tensor_t *b = call_items("index", ARGS(T(g_in.x)), it1, 2);
    ck_assert(nne_th_same(a, b));
    ck_assert_int_eq(nne_tensor_shape(a)[2], 4);
    nne_tensor_unref(a);
    nne_tensor_unref(b);
  }
}
END_TEST

/* ---- refusals ------------------------------------------------------------ */

/* Both nne_op_check and nne_op_call refuse with the same message, which
 * holds `want`; *out is not written. */
static void refused_items(const char *fn, const nne_op_arg_t *args, size_t n,
                          const nne_index_item_t *items, size_t n_items,
                          const char *want) {
  nne_err_t e1 = {0}, e2 = {0};
  nne_tensor_t *sentinel = (nne_tensor_t *)(uintptr_t)0x5151, *out = sentinel;
  int rc1 = nne_op_check(fn, args, n, items, n_items, &e1);
  int rc2 = nne_op_call(fn, args, n, items, n_items, &out, &e2);
  ck_assert_msg(rc1 == NNE_EINVAL, "check %s: expected NNE_EINVAL ('%s'), "
                "got %d", fn ? fn : "(null)", want, rc1);
  ck_assert_msg(rc2 == NNE_EINVAL, "call %s: expected NNE_EINVAL ('%s'), "
                "got %d", fn ? fn : "(null)", want, rc2);
  ck_assert_ptr_eq(out, sentinel);
  ck_assert_msg(strstr(e1.msg, want) != NULL, "'%s' lacks '%s'", e1.msg,
                want);
  ck_assert_str_eq(e1.msg, e2.msg);
  printf("  refused: %s\n", e1.msg);
}

static void refused(const char *fn, const nne_op_arg_t *args, size_t n,
                    const char *want) {
  refused_items(fn, args, n, NULL, 0, want);
}

/* Passes nne_op_check, fails in libtorch: NNE_EINVAL, the message starts
 * with "<fn>: " and holds `want`. */
static void run_fails_items(const char *fn, const nne_op_arg_t *args, size_t n,
                            const nne_index_item_t *items, size_t n_items,
                            const char *want) {
  nne_err_t err = {0};
  nne_tensor_t *sentinel = (nne_tensor_t *)(uintptr_t)0x5151, *out = sentinel;
  char prefix[64];
  int rc;
  ck_assert_msg(nne_op_check(fn, args, n, items, n_items, &err) == 0,
                "check %s: %s", fn, err.msg);
  rc = nne_op_call(fn, args, n, items, n_items, &out, &err);
  ck_assert_msg(rc == NNE_EINVAL, "%s: expected NNE_EINVAL, got %d: %s", fn,
                rc, err.msg);
  ck_assert_ptr_eq(out, sentinel);
  snprintf(prefix, sizeof prefix, "%s: ", fn);
  ck_assert_msg(strncmp(err.msg, prefix, strlen(prefix)) == 0,
                "'%s' does not start with '%s'", err.msg, prefix);
  ck_assert_msg(strstr(err.msg, want) != NULL, "'%s' lacks '%s'", err.msg,
                want);
  printf("  libtorch refused: %s\n", err.msg);
}

static void run_fails(const char *fn, const nne_op_arg_t *args, size_t n,
                      const char *want) {
  run_fails_items(fn, args, n, NULL, 0, want);
}

START_TEST(test_refusals) {
  const inputs_t *in = &g_in;
  nne_err_t err = {0};
  nne_tensor_t *out = NULL;

  /* The function. */
  refused("frobnicate", ARGS(T(in->x)),
          "frobnicate: not a function a trace may call (add, sub, mul, div, "
          "pow, neg, matmul,");
  refused("frobnicate", ARGS(T(in->x)), "relu, gelu, to)");
  refused("Softmax", ARGS(T(in->x), I(1)), "not a function");
  refused(NULL, ARGS(T(in->x)), "function name is NULL");

  /* Counts. */
  refused("matmul", ARGS(T(in->x), T(in->w), T(in->x)),
          "matmul: takes 2 arguments, got 3");
  refused("softmax", ARGS(T(in->x), I(1), D(NNE_DTYPE_F32), I(1)),
          "softmax: takes 2 to 3 positional arguments, got 4");
  refused("add", ARGS(T(in->x), T(in->y), S(2)),
          "add: takes 2 positional arguments, got 3");
  refused("neg", ARGS(T(in->x), T(in->x)), "neg: takes 1 argument, got 2");
  refused("softmax", ARGS(T(in->x)), "softmax: missing argument 'dim'");
  refused("matmul", ARGS(T(in->x)), "matmul: missing argument 'other'");
  refused("softmax", ARGS(K("dim", I(1))), "softmax: missing argument 'input'");
  refused("neg", NULL, 0, "neg: missing argument 'input'");
  refused("cat", ARGS(K("dim", I(0))), "cat: needs at least one tensor");
  refused("cat", ARGS(T(in->x), T(in->y), I(0), I(1)),
          "cat: takes tensors and then at most 1 more positional argument "
          "(dim), got 2");
  refused("cat", ARGS(T(in->x), I(0), T(in->y)), "cat: takes tensors");

  /* Kinds. */
  refused("softmax", ARGS(T(in->x), L(1)),
          "softmax: argument 'dim' must be an int, got ints");
  refused("softmax", ARGS(T(in->x), K("dim", S(1.0))),
          "softmax: argument 'dim' must be an int, got scalar");
  refused("softmax", ARGS(I(3), I(1)),
          "softmax: argument 'input' must be a tensor, got int");
  refused("reshape", ARGS(T(in->x), I(30)),
          "reshape: argument 'shape' must be a list of ints, got int");
  refused("mean", ARGS(T(in->x), B(1)),
          "mean: argument 'dim' must be an int or a list of ints, got bool");
  refused("add", ARGS(T(in->x), L(1, 2)),
          "add: argument 'other' must be a tensor or a number, got ints");
  refused("clamp", ARGS(T(in->x), K("min", T(in->y))),
          "clamp: argument 'min' must be a number, got tensor");
  refused("max", ARGS(T(in->x), T(in->y)),
          "max: argument 'dim' must be an int, got tensor");
  refused("full", ARGS(L(2), D(NNE_DTYPE_F32)),
          "full: argument 'fill_value' must be a number or a bool, got dtype");
  refused("to", ARGS(T(in->x), S(1)),
          "to: argument 'dtype' must be a dtype, got scalar");
  {
    nne_op_arg_t bad = T(in->x);
    bad.kind = (nne_arg_kind_t)99;
    refused("neg", &bad, 1, "neg: argument 0 has unknown kind 99");
  }

  /* Keywords. */
  refused("softmax", ARGS(T(in->x), K("dims", I(1))),
          "softmax: unknown keyword argument 'dims' (softmax takes input, "
          "dim, dtype)");
  refused("softmax", ARGS(T(in->x), I(1), K("dim", I(1))),
          "softmax: got more than one value for argument 'dim'");
  refused("softmax", ARGS(K("input", T(in->x)), K("input", T(in->x)),
                          K("dim", I(1))),
          "got more than one value for argument 'input'");
  refused("softmax", ARGS(K("input", T(in->x)), I(1)),
          "softmax: positional argument 1 follows a keyword argument");
  refused("cat", ARGS(T(in->x), I(0), K("dim", I(1))),
          "cat: got more than one value for argument 'dim'");
  {
    /* "" is positional (an unset protobuf string). */
    nne_tensor_t *r = call("softmax", ARGS(K("", T(in->x)), K("", I(-1))));
    assert_ref(r, "softmax");
    nne_tensor_unref(r);
  }

  /* Rules of particular functions. */
  refused("add", ARGS(S(1), S(2)),
          "add: one of 'input' and 'other' must be a tensor");
  refused("pow", ARGS(S(1), I(2)),
          "pow: one of 'input' and 'exponent' must be a tensor");
  refused("max", ARGS(T(in->x), K("keepdim", B(1))),
          "max: 'keepdim' needs 'dim'");
  refused("sum", ARGS(T(in->x), K("keepdim", B(1))),
          "sum: 'keepdim' needs 'dim'");
  refused("clamp", ARGS(T(in->x)), "clamp: needs 'min' or 'max'");
  refused("norm", ARGS(T(in->x), K("dtype", D(NNE_DTYPE_F64))),
          "norm: 'dtype' needs a number 'p'");
  refused("sum", ARGS(T(in->x), Ls(NULL, 0)),
          "sum: argument 'dim' is an empty list");
  refused("reshape", ARGS(T(in->x), L(1, 1, 1, 1, 1, 1, 1, 1, 30)),
          "reshape: argument 'shape' has 9 entries (at most 8)");
  refused("reshape", ARGS(T(in->x), Ls(NULL, 2)),
          "reshape: argument 'shape' has 2 ints but no array");

  /* dtypes. */
  refused("to", ARGS(T(in->x), D((nne_dtype_t)42)),
          "to: argument 'dtype': unknown dtype 42");
  refused("to", ARGS(T(in->x), D(NNE_DTYPE_INVALID)),
          "to: argument 'dtype': unknown dtype 0");
  refused("full", ARGS(L(2), S(1), K("dtype", D((nne_dtype_t)-3))),
          "full: argument 'dtype': unknown dtype -3");

  /* Index items. */
  {
    nne_index_item_t it[3];
    size_t n = parse_index("..., 0, ...", it, 3);
    refused_items("index", ARGS(T(in->x)), it, n,
                  "index: item 2: an index can only have a single ellipsis");
    n = parse_index("::-1", it, 3);
    refused_items("index", ARGS(T(in->x)), it, n,
                  "index: item 0: slice step must be positive, got -1");
    n = parse_index("0", it, 3);
    refused_items("softmax", ARGS(T(in->x), I(0)), it, n,
                  "softmax: takes no index items (only 'index' does)");
    it[0].kind = (nne_index_kind_t)77;
    refused_items("index", ARGS(T(in->x)), it, 1,
                  "index: item 0 has unknown kind 77");
    refused_items("index", ARGS(T(in->x)), NULL, 2,
                  "index: 2 items but no array");
  }
  {
    nne_index_item_t it[9];
    size_t n = parse_index("0, 0, 0, 0, 0, 0, 0, 0, 0", it, 9);
    refused_items("index", ARGS(T(in->x)), it, n,
                  "index: 9 ints and slices (a tensor has at most 8 "
                  "dimensions)");
  }

  /* NULL tensors: fine for a check, not for a call. */
  ck_assert_int_eq(nne_op_check("matmul", ARGS(T(NULL), T(NULL)), NULL, 0,
                                &err),
                   0);
  ck_assert_int_eq(nne_op_check("cat", ARGS(T(NULL), T(NULL), I(1)), NULL, 0,
                                &err),
                   0);
  ck_assert_int_eq(
      nne_op_call("matmul", ARGS(T(in->x), T(NULL)), NULL, 0, &out, &err),
      NNE_EINVAL);
  ck_assert_str_eq(err.msg, "matmul: argument 'other' is NULL");
  ck_assert_int_eq(
      nne_op_call("stack", ARGS(T(in->x), T(NULL)), NULL, 0, &out, &err),
      NNE_EINVAL);
  ck_assert_str_eq(err.msg, "stack: tensor 1 is NULL");
  ck_assert_int_eq(nne_op_call("neg", ARGS(T(in->x)), NULL, 0, NULL, &err),
                   NNE_EINVAL);
  ck_assert_ptr_null(out);
  ck_assert_int_eq(nne_op_check("neg", NULL, 1, NULL, 0, &err), NNE_EINVAL);
  ck_assert_str_eq(err.msg, "neg: 1 arguments but no array");
}
END_TEST

START_TEST(test_libtorch_refusals) {
  const inputs_t *in = &g_in;
  nne_tensor_t *m35 = call("reshape", ARGS(T(in->x), L(6, 5)));
  nne_tensor_t *m45 = call("full", ARGS(L(4, 5), S(1)));
  nne_tensor_t *xt = call("transpose", ARGS(T(in->x), I(0), I(2)));
  run_fails("matmul", ARGS(T(m35), T(m45)),
            "mat1 and mat2 shapes cannot be multiplied (6x5 and 4x5)");
  run_fails("matmul", ARGS(T(in->x), T(m45)),
            "mat1 and mat2 shapes cannot be multiplied (6x5 and 4x5)");
  run_fails("add", ARGS(T(in->x), T(m45)),
            "The size of tensor a (3) must match the size of tensor b (4)");
  run_fails("softmax", ARGS(T(in->x), I(3)), "Dimension out of range");
  run_fails("reshape", ARGS(T(in->x), L(7)), "shape '[7]' is invalid");
  run_fails("view", ARGS(T(xt), L(30)), "view size is not compatible");
  run_fails("cat", ARGS(T(in->x), T(m45)), "same number of dimensions");
  run_fails("cat", ARGS(T(in->x), T(xt)), "Sizes of tensors must match");
  run_fails("where", ARGS(T(in->x), T(in->x), T(in->y)), "bool");
  run_fails("mean", ARGS(T(in->xi)), "mean(): could not infer output dtype");
  run_fails("topk", ARGS(T(in->x), I(9)), "out of range");
  run_fails("full", ARGS(L(2, -1), S(0)), "negative dimension");
  run_fails("transpose", ARGS(T(in->x), I(0), I(5)), "Dimension out of range");
  run_fails("permute", ARGS(T(in->x), L(0, 0, 1)), "duplicate dims");
  {
    nne_index_item_t it[3];
    size_t n = parse_index("2", it, 3);
    run_fails_items("index", ARGS(T(in->x)), it, n,
                    "index 2 is out of bounds for dimension 0 with size 2");
    n = parse_index("0, 0, 0, 0", it, 4);
    run_fails_items("index", ARGS(T(in->x)), it, n, "too many indices");
  }
  nne_tensor_unref(m35);
  nne_tensor_unref(m45);
  nne_tensor_unref(xt);
}
END_TEST

/* Results are new handles that live on their own. */
START_TEST(test_ownership) {
  nne_tensor_t *x = input("x"), *r, *v;
  nne_index_item_t it[2];
  size_t n = parse_index("0, 1:3", it, 2);
  r = call_items("index", ARGS(T(x)), it, n);
  v = call("reshape", ARGS(T(x), L(30)));
  ck_assert_ptr_ne(r, x);
  nne_tensor_unref(x); /* views keep their storage alive */
  ck_assert_int_eq(nne_tensor_ndim(r), 2);
  ck_assert_int_eq(nne_tensor_shape(r)[0], 2);
  assert_ref(v, "reshape_flat");
  nne_tensor_unref(r);
  nne_tensor_unref(v);
}
END_TEST

/* ---- nne_model_call_module on GPT-2 ------------------------------------- */

enum { SITE_LAST_OUT, SITE_B0_IN, SITE_B0_OUT, N_SITES };

typedef struct grab {
  nne_tensor_t *v[N_SITES];
} grab_t;

static int grab_hook(void *ctx, int site, nne_tensor_t *value,
                     nne_tensor_t **replace) {
  grab_t *g = ctx;
  nne_err_t err = {0};
  (void)replace;
  if (site < 0 || site >= N_SITES)
    return NNE_EINTERNAL;
  if (g->v[site] == NULL && nne_tensor_clone(value, &g->v[site], &err) != 0)
    return err.code;
  return 0;
}

static nne_tensor_t *call_module(nne_model_t *m, int module,
                                 nne_tensor_t *const *in, size_t n) {
  nne_tensor_t *out = NULL;
  nne_err_t err = {0};
  ck_assert_msg(nne_model_call_module(m, module,
                                      (const nne_tensor_t *const *)in, n,
                                      &out, &err) == 0,
                "call %s: %s", nne_model_module(m, (size_t)module)->path,
                err.msg);
  return out;
}

static void call_module_fails(nne_model_t *m, int module,
                              nne_tensor_t *const *in, size_t n,
                              const char *want) {
  nne_tensor_t *sentinel = (nne_tensor_t *)(uintptr_t)0x5151, *out = sentinel;
  nne_err_t err = {0};
  int rc = nne_model_call_module(m, module, (const nne_tensor_t *const *)in,
                                 n, &out, &err);
  ck_assert_msg(rc == NNE_EINVAL, "expected NNE_EINVAL ('%s'), got %d", want,
                rc);
  ck_assert_ptr_eq(out, sentinel);
  ck_assert_msg(strstr(err.msg, want) != NULL, "'%s' lacks '%s'", err.msg,
                want);
  printf("  refused: %s\n", err.msg);
}

typedef struct gpt2 {
  nne_fixture_t *f;
  nne_model_t *m;
  nne_tensor_t *ids, *logits;
  int ln_f, lm_head, h, n_layers;
  int *blocks;
  grab_t g;
} gpt2_t;

static void gpt2_open(gpt2_t *s) {
  nne_variant_t *v = NULL;
  nne_err_t err = {0};
  nne_tensor_t *vlogits = NULL;
  const nne_module_info_t *hi;
  int k;
  memset(s, 0, sizeof *s);
  s->f = nne_th_fixture("gpt2-script");
  s->m = nne_th_load(s->f->model_path);
  s->ids = nne_th_ids(&s->f->input_ids);
  s->ln_f = nne_th_find(s->m, "transformer.ln_f");
  s->lm_head = nne_th_find(s->m, "lm_head");
  s->h = nne_th_find(s->m, "transformer.h");
  hi = nne_model_module(s->m, (size_t)s->h);
  s->n_layers = hi->n_children;
  ck_assert_int_ge(s->n_layers, 2);
  s->blocks = malloc((size_t)s->n_layers * sizeof *s->blocks);
  ck_assert_ptr_nonnull(s->blocks);
  for (k = 0; k < s->n_layers; k++)
    s->blocks[k] = hi->children[k];
  {
    nne_site_t sites[N_SITES] = {
        [SITE_LAST_OUT] = {s->blocks[s->n_layers - 1], NNE_SITE_OUTPUT, 0,
                           NULL, 0},
        [SITE_B0_IN] = {s->blocks[0], NNE_SITE_INPUT, 0, NULL, 0},
        [SITE_B0_OUT] = {s->blocks[0], NNE_SITE_OUTPUT, 0, NULL, 0},
    };
    ck_assert_msg(nne_variant_build(s->m, sites, N_SITES, &v, &err) == 0,
                  "build: %s", err.msg);
  }
  ck_assert_msg(nne_variant_forward(v, s->ids, NULL, grab_hook, &s->g,
                                    &vlogits, &err) == 0,
                "variant forward: %s", err.msg);
  ck_assert_msg(nne_model_forward(s->m, s->ids, NULL, &s->logits, &err) == 0,
                "forward: %s", err.msg);
  ck_assert_msg(nne_th_same(vlogits, s->logits),
                "the variant's logits differ from forward's");
  for (k = 0; k < N_SITES; k++)
    ck_assert_ptr_nonnull(s->g.v[k]);
  nne_tensor_unref(vlogits);
  nne_variant_unref(v);
}

static void gpt2_close(gpt2_t *s) {
  int k;
  for (k = 0; k < N_SITES; k++)
    nne_tensor_unref(s->g.v[k]);
  nne_tensor_unref(s->ids);
  nne_tensor_unref(s->logits);
  nne_model_unref(s->m);
  nne_fixture_free(s->f);
  free(s->blocks);
}

/* ln_f, then lm_head, on a residual. */
static nne_tensor_t *lens(gpt2_t *s, nne_tensor_t *resid) {
  nne_tensor_t *normed = call_module(s->m, s->ln_f, &resid, 1);
  nne_tensor_t *l = call_module(s->m, s->lm_head, &normed, 1);
  nne_tensor_unref(normed);
  return l;
}

START_TEST(test_logit_lens) {
  gpt2_t s;
  nne_tensor_t *l, *b0;
  int k;
  gpt2_open(&s);

  /* The last layer's residual through ln_f and lm_head is the logits. */
  l = lens(&s, s.g.v[SITE_LAST_OUT]);
  ck_assert_msg(nne_th_same(l, s.logits),
                "ln_f(lm_head(last block)) differs from the logits");
  if (strncmp(s.f->torch_version, nne_engine_torch_version(), 5) == 0) {
    /* and Python's run of the archive on the same input (same libtorch). */
    nne_npy_t ref;
    char msg[512];
    ck_assert_msg(nne_fixture_ref_load(&s.f->logits_jit, &ref, msg,
                                       sizeof msg) == 0,
                  "%s", msg);
    ck_assert_uint_eq(ref.nbytes, nne_tensor_nbytes(l));
    ck_assert_msg(memcmp(ref.data, nne_th_host(l), ref.nbytes) == 0,
                  "the lens differs from Python's logits");
    nne_npy_free(&ref);
  }
  nne_tensor_unref(l);

  /* A block called on its captured input (its Optional attention mask
   * passed as None, as the model's forward passed it) gives its output. */
  b0 = call_module(s.m, s.blocks[0], &s.g.v[SITE_B0_IN], 1);
  ck_assert_msg(nne_th_same(b0, s.g.v[SITE_B0_OUT]),
                "block 0 called alone differs from its output in forward");
  nne_tensor_unref(b0);

  /* The lens at every layer, top 5 ids at each position (issue 5's
   * workflow 5): each layer's block output through ln_f and lm_head. */
  {
    nne_tensor_t *resid = nne_tensor_ref(s.g.v[SITE_B0_IN]);
    for (k = 0; k < s.n_layers; k++) {
      nne_tensor_t *next = call_module(s.m, s.blocks[k], &resid, 1);
      nne_tensor_t *lk = lens(&s, next);
      nne_tensor_t *top = call("topk_indices", ARGS(T(lk), I(5)));
      ck_assert_int_eq(nne_tensor_ndim(top), 3);
      ck_assert_int_eq(nne_tensor_shape(top)[2], 5);
      ck_assert_int_eq(nne_tensor_dtype(top), NNE_DTYPE_I64);
      if (k == s.n_layers - 1) {
        nne_tensor_t *want = call("topk_indices", ARGS(T(s.logits), I(5)));
        ck_assert(nne_th_same(lk, s.logits));
        ck_assert(nne_th_same(top, want));
        nne_tensor_unref(want);
      }
      nne_tensor_unref(top);
      nne_tensor_unref(lk);
      nne_tensor_unref(resid);
      resid = next;
    }
    nne_tensor_unref(resid);
  }
  gpt2_close(&s);
}
END_TEST

START_TEST(test_call_module_refusals) {
  gpt2_t s;
  nne_tensor_t *two[2], *ints, *wrong;
  int64_t shape[3] = {1, 4, 7};
  nne_err_t err = {0};
  nne_tensor_t *out = NULL;
  gpt2_open(&s);
  two[0] = two[1] = s.g.v[SITE_LAST_OUT];

  call_module_fails(s.m, s.h, two, 1,
                    "module 'transformer.h' (ModuleList) has no forward "
                    "method");
  call_module_fails(s.m, s.ln_f, two, 2,
                    "module 'transformer.ln_f' (LayerNorm): forward takes 1 "
                    "argument after self, got 2");
  call_module_fails(s.m, s.ln_f, two, 0,
                    "module 'transformer.ln_f' (LayerNorm): forward needs "
                    "argument 'input' (Tensor); 0 tensors given");
  ints = nne_th_tensor(NNE_DTYPE_I64, shape, 3, NULL);
  call_module_fails(s.m, s.ln_f, &ints, 1, "module 'transformer.ln_f': ");
  wrong = nne_th_tensor(NNE_DTYPE_F32, shape, 3, NULL);
  call_module_fails(s.m, s.ln_f, &wrong, 1, "module 'transformer.ln_f': ");
  call_module_fails(s.m, s.lm_head, &wrong, 1, "module 'lm_head': ");
  call_module_fails(s.m, -1, two, 1, "module -1 does not exist");
  call_module_fails(s.m, (int)nne_model_module_count(s.m), two, 1,
                    "does not exist (the model has");
  ck_assert_int_eq(nne_model_call_module(s.m, s.ln_f, NULL, 1, &out, &err),
                   NNE_EINVAL);
  ck_assert_int_eq(nne_model_call_module(s.m, s.ln_f,
                                         (const nne_tensor_t *const *)two, 1,
                                         NULL, &err),
                   NNE_EINVAL);
  {
    nne_tensor_t *null_in = NULL;
    call_module_fails(s.m, s.ln_f, &null_in, 1, "input 0 is NULL");
  }
  /* The model is fine afterwards. */
  {
    nne_tensor_t *l = lens(&s, s.g.v[SITE_LAST_OUT]);
    ck_assert(nne_th_same(l, s.logits));
    nne_tensor_unref(l);
  }
  nne_tensor_unref(ints);
  nne_tensor_unref(wrong);
  gpt2_close(&s);
}
END_TEST

/* Several threads at once: lenses through call_module and a softmax over
 * them, each equal to the single-threaded result. */
typedef struct lens_job {
  gpt2_t *s;
  nne_tensor_t *want_sm;
  int bad;
} lens_job_t;

static void *lens_thread(void *arg) {
  lens_job_t *j = arg;
  int r;
  for (r = 0; r < 4; r++) {
    nne_tensor_t *in = j->s->g.v[SITE_LAST_OUT], *normed = NULL, *l = NULL,
                 *sm = NULL;
    nne_err_t err = {0};
    nne_op_arg_t a[2] = {{.kind = NNE_ARG_TENSOR}, {.kind = NNE_ARG_INT}};
    if (nne_model_call_module(j->s->m, j->s->ln_f,
                              (const nne_tensor_t *const *)&in, 1, &normed,
                              &err) != 0 ||
        nne_model_call_module(j->s->m, j->s->lm_head,
                              (const nne_tensor_t *const *)&normed, 1, &l,
                              &err) != 0) {
      j->bad++;
      nne_tensor_unref(normed);
      continue;
    }
    a[0].tensor = l;
    a[1].integer = -1;
    if (nne_op_call("softmax", a, 2, NULL, 0, &sm, &err) != 0)
      j->bad++;
    else if (!nne_th_same(l, j->s->logits) || !nne_th_same(sm, j->want_sm))
      j->bad++;
    nne_tensor_unref(sm);
    nne_tensor_unref(l);
    nne_tensor_unref(normed);
  }
  return NULL;
}

START_TEST(test_threads) {
  gpt2_t s;
  enum { N = 4 };
  pthread_t th[N];
  lens_job_t jobs[N];
  nne_tensor_t *want;
  int i;
  gpt2_open(&s);
  want = call("softmax", ARGS(T(s.logits), I(-1)));
  for (i = 0; i < N; i++) {
    jobs[i] = (lens_job_t){&s, want, 0};
    ck_assert_int_eq(pthread_create(&th[i], NULL, lens_thread, &jobs[i]), 0);
  }
  for (i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    ck_assert_msg(jobs[i].bad == 0, "thread %d: %d bad results", i,
                  jobs[i].bad);
  }
  nne_tensor_unref(want);
  gpt2_close(&s);
}
END_TEST

/* nne_op_result_bytes sizes a call on meta tensors: exact for new values,
 * 0 for views of an input, and nothing is allocated to find out (a 16 GiB
 * full() is sized in a unit test). */
static nne_tensor_t *zeros(const int64_t *shape, int ndim) {
  static const float z[4 * 5 * 8] = {0};
  nne_tensor_t *t = NULL;
  nne_err_t err;
  ck_assert_int_eq(nne_tensor_from_host(NNE_DTYPE_F32, shape, ndim, z, &t, &err),
                   0);
  return t;
}

static uint64_t result_bytes(const char *fn, const nne_op_arg_t *args,
                             size_t n, const char *index) {
  nne_index_item_t items[8];
  size_t n_items = index ? parse_index(index, items, 8) : 0;
  uint64_t bytes = 12345;
  nne_err_t err;
  ck_assert_msg(nne_op_result_bytes(fn, args, n, items, n_items, &bytes,
                                    &err) == 0,
                "%s: %s", fn, err.msg);
  return bytes;
}

START_TEST(test_result_bytes) {
  const int64_t s418[] = {4, 1, 8}, s158[] = {1, 5, 8}, s34[] = {3, 4},
                s45[] = {4, 5};
  nne_tensor_t *a = zeros(s418, 3), *b = zeros(s158, 3), *m = zeros(s34, 2),
               *k = zeros(s45, 2);
  nne_err_t err;
  uint64_t bytes;
  /* new values: broadcasting, matmul, a reduction, a dtype change */
  ck_assert_uint_eq(result_bytes("add", ARGS(T(a), T(b)), NULL), 4 * 5 * 8 * 4);
  ck_assert_uint_eq(result_bytes("matmul", ARGS(T(m), T(k)), NULL), 3 * 5 * 4);
  ck_assert_uint_eq(result_bytes("sum", ARGS(T(a), K("dim", L(-1))), NULL),
                    4 * 1 * 4);
  ck_assert_uint_eq(result_bytes("to", ARGS(T(m), D(NNE_DTYPE_F64)), NULL),
                    3 * 4 * 8);
  ck_assert_uint_eq(result_bytes("cat", ARGS(T(m), T(m), K("dim", I(0))), NULL),
                    6 * 4 * 4);
  /* full: from its shape and its fill's dtype, never allocated */
  ck_assert_uint_eq(result_bytes("full", ARGS(L(65536, 65536), S(1.0)), NULL),
                    (uint64_t)65536 * 65536 * 4);
  ck_assert_uint_eq(result_bytes("full", ARGS(L(3), I(7)), NULL), 3 * 8);
  /* views of an input make nothing */
  ck_assert_uint_eq(result_bytes("transpose", ARGS(T(m), I(0), I(1)), NULL), 0);
  ck_assert_uint_eq(result_bytes("index", ARGS(T(a)), "..., 2:4"), 0);
  /* arguments the op refuses: unknown (0), the real call says why */
  ck_assert_uint_eq(result_bytes("matmul", ARGS(T(m), T(m)), NULL), 0);
  /* binding errors are the same as nne_op_check's */
  ck_assert_int_eq(nne_op_result_bytes("softmax", ARGS(T(m)), NULL, 0, &bytes,
                                       &err),
                   NNE_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "dim"));
  nne_tensor_unref(a);
  nne_tensor_unref(b);
  nne_tensor_unref(m);
  nne_tensor_unref(k);
}
END_TEST

/* ---- main ---------------------------------------------------------------- */

static Suite *ops_suite(void) {
  Suite *s = suite_create("engine ops");
  TCase *tv = tcase_create("values");
  TCase *tm = tcase_create("modules");
  tcase_add_checked_fixture(tv, inputs_load, inputs_free);
  tcase_add_test(tv, test_arithmetic);
  tcase_add_test(tv, test_reductions);
  tcase_add_test(tv, test_shapes);
  tcase_add_test(tv, test_index);
  tcase_add_test(tv, test_refusals);
  tcase_add_test(tv, test_libtorch_refusals);
  tcase_add_test(tv, test_ownership);
  tcase_add_test(tv, test_result_bytes);
  tcase_set_timeout(tv, 120);
  suite_add_tcase(s, tv);
  tcase_add_checked_fixture(tm, nne_th_one_thread, NULL);
  tcase_add_test(tm, test_logit_lens);
  tcase_add_test(tm, test_call_module_refusals);
  tcase_add_test(tm, test_threads);
  tcase_set_timeout(tm, 300);
  suite_add_tcase(s, tm);
  return s;
}

int main(void) {
  SRunner *sr;
  int failed;

  if (make_references() != 0) {
    if (g_dir[0] != '\0')
      rm_dir(g_dir);
    return 1;
  }
  printf("test_engine_ops: references in %s; fixtures in %s; libtorch %s\n",
         g_dir, nne_fixtures_dir(), nne_engine_torch_version());
  fflush(stdout);
  sr = srunner_create(ops_suite());
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  rm_dir(g_dir);
  return failed == 0 ? 0 : 1;
}
