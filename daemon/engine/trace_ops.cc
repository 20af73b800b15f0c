// trace_ops.cc — the tensor functions a trace's call nodes may use
// (nne_op_check, nne_op_call, nne_op_result_bytes). See engine.h, "tensor
// functions for traces"; call_module.cc calls a submodule on its own.
//
// One table, k_ops, describes every function: its parameters in PyTorch's
// order under PyTorch's names, the kind each accepts, which are required and
// which are keyword-only. A call is bound to the table the way Python binds
// one (positionals in order, then keywords by name), and its kinds are
// checked against it, before any tensor is looked at; nne_op_check stops
// there, so a trace can be validated without values. nne_op_call then hands
// the bound arguments to the function's ATen implementation. Each
// implementation goes through the same ATen overload that PyTorch's Python
// binding picks for the same call, so that on one libtorch the results are
// bit-identical to what a researcher's Python computes.
#include "engine_internal.h"

#include <ATen/ScalarOps.h>
#include <ATen/TensorIndexing.h>
#include <c10/core/InferenceMode.h>

#include <cstdio>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

namespace {

// ---- the signature table ----------------------------------------------

// What a parameter accepts.
enum class pk : unsigned char {
  tensor,           // TENSOR
  tensor_or_number, // TENSOR, SCALAR or INT (add's operands, where's values)
  number,           // SCALAR or INT (an INT stays an integer Scalar)
  fill,             // SCALAR, INT or BOOL (full's fill value)
  int_,             // INT
  ints,             // INTS: a shape or a permutation (may be empty)
  dims,             // INTS (non-empty) or one INT: dims to reduce over
  bool_,            // BOOL
  dtype,            // DTYPE
};

const char *accepts_str(pk k) {
  switch (k) {
  case pk::tensor: return "a tensor";
  case pk::tensor_or_number: return "a tensor or a number";
  case pk::number: return "a number";
  case pk::fill: return "a number or a bool";
  case pk::int_: return "an int";
  case pk::ints: return "a list of ints";
  case pk::dims: return "an int or a list of ints";
  case pk::bool_: return "a bool";
  case pk::dtype: return "a dtype";
  }
  return "?";
}

bool accepts(pk k, int kind) {
  switch (k) {
  case pk::tensor: return kind == NNE_ARG_TENSOR;
  case pk::tensor_or_number:
    return kind == NNE_ARG_TENSOR || kind == NNE_ARG_SCALAR ||
           kind == NNE_ARG_INT;
  case pk::number: return kind == NNE_ARG_SCALAR || kind == NNE_ARG_INT;
  case pk::fill:
    return kind == NNE_ARG_SCALAR || kind == NNE_ARG_INT ||
           kind == NNE_ARG_BOOL;
  case pk::int_: return kind == NNE_ARG_INT;
  case pk::ints: return kind == NNE_ARG_INTS;
  case pk::dims: return kind == NNE_ARG_INTS || kind == NNE_ARG_INT;
  case pk::bool_: return kind == NNE_ARG_BOOL;
  case pk::dtype: return kind == NNE_ARG_DTYPE;
  }
  return false;
}

// The name of an argument's kind, as in "got ints"; nullptr for a number
// that is not an nne_arg_kind_t.
const char *kind_str(int kind) {
  switch (kind) {
  case NNE_ARG_TENSOR: return "tensor";
  case NNE_ARG_SCALAR: return "scalar";
  case NNE_ARG_INT: return "int";
  case NNE_ARG_INTS: return "ints";
  case NNE_ARG_BOOL: return "bool";
  case NNE_ARG_DTYPE: return "dtype";
  default: return nullptr;
  }
}

struct param {
  const char *name; // nullptr ends the list
  pk kind;
  bool required;
  bool kw_only; // after PyTorch's `*`: by keyword only
};

constexpr int k_max_params = 5;

struct bound;
using impl_fn = at::Tensor (*)(const bound &b);

// What a function needs checked beyond kinds and counts; each is a rule
// PyTorch's Python binding (or the op itself) enforces, checked here before
// any tensor is needed.
enum rule : unsigned {
  r_none = 0,
  r_one_tensor = 1u << 0,    // params 0 and 1: not both numbers
  r_keepdim_dim = 1u << 1,   // 'keepdim' only together with 'dim'
  r_min_or_max = 1u << 2,    // clamp: at least one bound
  r_fro_no_dtype = 1u << 3,  // norm: 'dtype' only with a numeric 'p'
};

struct op_def {
  const char *name;
  // cat, stack: the leading positional tensors are the list; the params
  // follow them.
  bool variadic;
  param params[k_max_params + 1];
  impl_fn impl;
  unsigned rules;
};

// The bound arguments of one call: for each parameter, the argument that
// fills it or nullptr.
struct bound {
  const op_def *op = nullptr;
  const nne_op_arg_t *arg[k_max_params] = {};
  std::vector<const nne_op_arg_t *> tensors; // variadic
  const nne_index_item_t *items = nullptr;
  size_t n_items = 0;
};

// ---- helpers for the implementations --------------------------------------

const at::Tensor &tensor_of(const nne_op_arg_t *a) {
  return a->tensor->t;
}

c10::Scalar scalar_of(const nne_op_arg_t *a) {
  switch (a->kind) {
  case NNE_ARG_INT: return c10::Scalar(a->integer);
  case NNE_ARG_BOOL: return c10::Scalar(a->boolean != 0);
  default: return c10::Scalar(a->scalar);
  }
}

nne_compat::optional<c10::Scalar> opt_scalar(const nne_op_arg_t *a) {
  if (a == nullptr)
    return nne_compat::nullopt;
  return scalar_of(a);
}

// A TENSOR argument as it is; a number the way PyTorch's Python binding
// passes a number where an op takes a Tensor: a 0-dim CPU "wrapped number"
// (double or int64) that type promotion treats like a Python scalar.
at::Tensor operand(const nne_op_arg_t *a) {
  if (a->kind == NNE_ARG_TENSOR)
    return tensor_of(a);
  return at::native::wrapped_scalar_tensor(scalar_of(a));
}

// INTS as an array; one INT (a dims parameter) as a one-element array that
// points at the argument's own field.
at::IntArrayRef ints_of(const nne_op_arg_t *a) {
  if (a->kind == NNE_ARG_INT)
    return at::IntArrayRef(&a->integer, 1);
  return at::IntArrayRef(a->ints, a->n_ints);
}

at::ScalarType dtype_of(const nne_op_arg_t *a) {
  at::ScalarType st = at::kFloat;
  // Checked when the call was bound: an unknown number never gets here.
  nne__scalar_from_dtype(nne__dtype_int(a->dtype), &st);
  return st;
}

nne_compat::optional<at::ScalarType> opt_dtype(const nne_op_arg_t *a) {
  if (a == nullptr)
    return nne_compat::nullopt;
  return dtype_of(a);
}

bool opt_bool(const nne_op_arg_t *a, bool dflt) {
  return a == nullptr ? dflt : a->boolean != 0;
}

int64_t opt_int(const nne_op_arg_t *a, int64_t dflt) {
  return a == nullptr ? dflt : a->integer;
}

at::TensorOptions dtype_options(const nne_op_arg_t *a) {
  at::TensorOptions o;
  if (a != nullptr)
    o = o.dtype(dtype_of(a));
  return o;
}

// ---- the implementations ------------------------------------------------
//
// b.arg[i] is parameter i of the function's row in k_ops.

at::Tensor op_add(const bound &b) {
  c10::Scalar alpha = b.arg[2] ? scalar_of(b.arg[2]) : c10::Scalar(1);
  return at::add(operand(b.arg[0]), operand(b.arg[1]), alpha);
}

at::Tensor op_sub(const bound &b) {
  c10::Scalar alpha = b.arg[2] ? scalar_of(b.arg[2]) : c10::Scalar(1);
  return at::sub(operand(b.arg[0]), operand(b.arg[1]), alpha);
}

at::Tensor op_mul(const bound &b) {
  return at::mul(operand(b.arg[0]), operand(b.arg[1]));
}

// True division, as torch.div(a, b) (also for a number over a tensor: not
// Python's `2 / x`, which PyTorch computes as x.reciprocal() * 2).
at::Tensor op_div(const bound &b) {
  return at::div(operand(b.arg[0]), operand(b.arg[1]));
}

// pow has Scalar overloads of its own (x ** 2 is squared, not exp'd), which
// torch.pow picks for a number on either side.
at::Tensor op_pow(const bound &b) {
  const nne_op_arg_t *x = b.arg[0], *e = b.arg[1];
  if (x->kind != NNE_ARG_TENSOR)
    return at::pow(scalar_of(x), tensor_of(e));
  if (e->kind != NNE_ARG_TENSOR)
    return at::pow(tensor_of(x), scalar_of(e));
  return at::pow(tensor_of(x), tensor_of(e));
}

at::Tensor op_neg(const bound &b) {
  return at::neg(tensor_of(b.arg[0]));
}

at::Tensor op_matmul(const bound &b) {
  return at::matmul(tensor_of(b.arg[0]), tensor_of(b.arg[1]));
}

at::Tensor op_softmax(const bound &b) {
  return at::softmax(tensor_of(b.arg[0]), b.arg[1]->integer,
                     opt_dtype(b.arg[2]));
}

at::Tensor op_log_softmax(const bound &b) {
  return at::log_softmax(tensor_of(b.arg[0]), b.arg[1]->integer,
                         opt_dtype(b.arg[2]));
}

at::Tensor op_mean(const bound &b) {
  const at::Tensor &x = tensor_of(b.arg[0]);
  if (b.arg[1] == nullptr)
    return at::mean(x, opt_dtype(b.arg[3]));
  return at::mean(x, ints_of(b.arg[1]), opt_bool(b.arg[2], false),
                  opt_dtype(b.arg[3]));
}

at::Tensor op_sum(const bound &b) {
  const at::Tensor &x = tensor_of(b.arg[0]);
  if (b.arg[1] == nullptr)
    return at::sum(x, opt_dtype(b.arg[3]));
  return at::sum(x, ints_of(b.arg[1]), opt_bool(b.arg[2], false),
                 opt_dtype(b.arg[3]));
}

at::Tensor op_max(const bound &b) {
  const at::Tensor &x = tensor_of(b.arg[0]);
  if (b.arg[1] == nullptr)
    return at::max(x);
  return std::get<0>(
      at::max(x, b.arg[1]->integer, opt_bool(b.arg[2], false)));
}

at::Tensor op_min(const bound &b) {
  const at::Tensor &x = tensor_of(b.arg[0]);
  if (b.arg[1] == nullptr)
    return at::min(x);
  return std::get<0>(
      at::min(x, b.arg[1]->integer, opt_bool(b.arg[2], false)));
}

nne_compat::optional<int64_t> opt_dim(const nne_op_arg_t *a) {
  if (a == nullptr)
    return nne_compat::nullopt;
  return a->integer;
}

at::Tensor op_argmax(const bound &b) {
  return at::argmax(tensor_of(b.arg[0]), opt_dim(b.arg[1]),
                    opt_bool(b.arg[2], false));
}

at::Tensor op_argmin(const bound &b) {
  return at::argmin(tensor_of(b.arg[0]), opt_dim(b.arg[1]),
                    opt_bool(b.arg[2], false));
}

// torch.norm as the torch/functional.py of the libtorch's own release
// computes it, so that the result is Python's, bit for bit.
at::Tensor op_norm(const bound &b) {
  const at::Tensor &x = tensor_of(b.arg[0]);
  const bool keepdim = opt_bool(b.arg[3], false);
#if NNE_TORCH_AT_LEAST(2, 0)
  // 2.x: a strided tensor on the CPU, CUDA or meta goes to
  // linalg.vector_norm: the 2-norm without p (p="fro", which takes at most
  // two dims there: more go to matrix_norm, which refuses them), the
  // p-norm with a number p; over the given dims, or the whole tensor
  // flattened without dims.
  at::OptionalIntArrayRef dims;
  if (b.arg[2] != nullptr)
    dims = at::OptionalIntArrayRef(ints_of(b.arg[2]));
  TORCH_CHECK(b.arg[1] != nullptr || !dims.has_value() || dims->size() <= 2,
              "norm: p='fro' takes at most 2 dims, got ", dims->size());
  const c10::Scalar p =
      b.arg[1] != nullptr ? scalar_of(b.arg[1]) : c10::Scalar(2.0);
  return at::linalg_vector_norm(x, p, dims, keepdim, opt_dtype(b.arg[4]));
#else
  // 1.13: without p (p="fro") the Frobenius norm over the given dims (all
  // of them without dims); with a number p, the vector p-norm over the
  // given dims or all.
  std::vector<int64_t> all;
  at::IntArrayRef dims;
  if (b.arg[2] != nullptr) {
    dims = ints_of(b.arg[2]);
  } else if (b.arg[1] != nullptr) {
    for (int64_t d = 0; d < x.dim(); d++)
      all.push_back(d);
    dims = all;
  }
  if (b.arg[1] == nullptr)
    return at::frobenius_norm(x, dims, keepdim);
  nne_compat::optional<c10::Scalar> p = scalar_of(b.arg[1]);
  if (b.arg[4] != nullptr)
    return at::norm(x, p, dims, keepdim, dtype_of(b.arg[4]));
  return at::norm(x, p, dims, keepdim);
#endif
}

// x[items] as Python's indexing computes it (the same at::indexing code).
at::Tensor op_index(const bound &b) {
  namespace ix = at::indexing;
  // x[()]: Python gives an alias of x; Tensor::index refuses an empty list.
  if (b.n_items == 0)
    return at::alias(tensor_of(b.arg[0]));
  std::vector<ix::TensorIndex> idx;
  idx.reserve(b.n_items);
  for (size_t i = 0; i < b.n_items; i++) {
    const nne_index_item_t &it = b.items[i];
    switch (nne__enum_int(it.kind)) {
    case NNE_INDEX_INT: idx.emplace_back(it.index); break;
    case NNE_INDEX_SLICE:
      idx.emplace_back(nne_compat::slice(
          it.has_start ? nne_compat::optional<int64_t>(it.start)
                       : nne_compat::nullopt,
          it.has_stop ? nne_compat::optional<int64_t>(it.stop)
                      : nne_compat::nullopt,
          it.step == 0 ? 1 : it.step));
      break;
    case NNE_INDEX_ELLIPSIS: idx.emplace_back(ix::Ellipsis); break;
    default: idx.emplace_back(ix::None); break;
    }
  }
  return tensor_of(b.arg[0]).index(idx);
}

at::Tensor op_reshape(const bound &b) {
  return at::reshape(tensor_of(b.arg[0]), ints_of(b.arg[1]));
}

at::Tensor op_view(const bound &b) {
  return tensor_of(b.arg[0]).view(ints_of(b.arg[1]));
}

at::Tensor op_transpose(const bound &b) {
  return at::transpose(tensor_of(b.arg[0]), b.arg[1]->integer,
                       b.arg[2]->integer);
}

at::Tensor op_permute(const bound &b) {
  return tensor_of(b.arg[0]).permute(ints_of(b.arg[1]));
}

std::vector<at::Tensor> tensor_list(const bound &b) {
  std::vector<at::Tensor> v;
  v.reserve(b.tensors.size());
  for (const nne_op_arg_t *a : b.tensors)
    v.push_back(tensor_of(a));
  return v;
}

at::Tensor op_cat(const bound &b) {
  return at::cat(tensor_list(b), opt_int(b.arg[0], 0));
}

at::Tensor op_stack(const bound &b) {
  return at::stack(tensor_list(b), opt_int(b.arg[0], 0));
}

at::Tensor op_zeros_like(const bound &b) {
  return at::zeros_like(tensor_of(b.arg[0]), dtype_options(b.arg[1]));
}

at::Tensor op_ones_like(const bound &b) {
  return at::ones_like(tensor_of(b.arg[0]), dtype_options(b.arg[1]));
}

// Without a dtype, at::full infers one from the fill value as torch.full
// does: int64 for an int, bool for a bool, the default (float32) otherwise.
// The result is on the CPU.
at::Tensor op_full(const bound &b) {
  return at::full(ints_of(b.arg[0]), scalar_of(b.arg[1]),
                  dtype_options(b.arg[2]));
}

at::Tensor op_topk(const bound &b) {
  return std::get<0>(at::topk(tensor_of(b.arg[0]), b.arg[1]->integer,
                              opt_int(b.arg[2], -1), opt_bool(b.arg[3], true),
                              /*sorted=*/true));
}

at::Tensor op_topk_indices(const bound &b) {
  return std::get<1>(at::topk(tensor_of(b.arg[0]), b.arg[1]->integer,
                              opt_int(b.arg[2], -1), opt_bool(b.arg[3], true),
                              /*sorted=*/true));
}

at::Tensor op_where(const bound &b) {
  const at::Tensor &c = tensor_of(b.arg[0]);
  const nne_op_arg_t *x = b.arg[1], *y = b.arg[2];
  const bool xt = x->kind == NNE_ARG_TENSOR, yt = y->kind == NNE_ARG_TENSOR;
  if (xt && yt)
    return at::where(c, tensor_of(x), tensor_of(y));
  if (xt)
    return at::where(c, tensor_of(x), scalar_of(y));
  if (yt)
    return at::where(c, scalar_of(x), tensor_of(y));
  return at::where(c, scalar_of(x), scalar_of(y));
}

at::Tensor op_clamp(const bound &b) {
  return at::clamp(tensor_of(b.arg[0]), opt_scalar(b.arg[1]),
                   opt_scalar(b.arg[2]));
}

at::Tensor op_exp(const bound &b) {
  return at::exp(tensor_of(b.arg[0]));
}

at::Tensor op_log(const bound &b) {
  return at::log(tensor_of(b.arg[0]));
}

at::Tensor op_tanh(const bound &b) {
  return at::tanh(tensor_of(b.arg[0]));
}

at::Tensor op_relu(const bound &b) {
  return at::relu(tensor_of(b.arg[0]));
}

at::Tensor op_gelu(const bound &b) {
  return at::gelu(tensor_of(b.arg[0]));
}

at::Tensor op_to(const bound &b) {
  return tensor_of(b.arg[0]).to(dtype_of(b.arg[1]));
}

// ---- the table -----------------------------------------------------------

// Shorthands for the rows: required, optional, keyword-only optional.
constexpr param req(const char *n, pk k) {
  return {n, k, true, false};
}
constexpr param opt(const char *n, pk k) {
  return {n, k, false, false};
}
constexpr param kwo(const char *n, pk k) {
  return {n, k, false, true};
}

const param k_input = req("input", pk::tensor);
const param k_end = {nullptr, pk::tensor, false, false};

// The whitelist, in the order engine.h lists it (the order of the "not a
// function a trace may call" message). Names and parameter names are
// PyTorch's, so that a keyword means what it means in Python.
const op_def k_ops[] = {
    {"add", false,
     {req("input", pk::tensor_or_number), req("other", pk::tensor_or_number),
      kwo("alpha", pk::number), k_end},
     op_add, r_one_tensor},
    {"sub", false,
     {req("input", pk::tensor_or_number), req("other", pk::tensor_or_number),
      kwo("alpha", pk::number), k_end},
     op_sub, r_one_tensor},
    {"mul", false,
     {req("input", pk::tensor_or_number), req("other", pk::tensor_or_number),
      k_end},
     op_mul, r_one_tensor},
    {"div", false,
     {req("input", pk::tensor_or_number), req("other", pk::tensor_or_number),
      k_end},
     op_div, r_one_tensor},
    {"pow", false,
     {req("input", pk::tensor_or_number),
      req("exponent", pk::tensor_or_number), k_end},
     op_pow, r_one_tensor},
    {"neg", false, {k_input, k_end}, op_neg, r_none},
    {"matmul", false, {k_input, req("other", pk::tensor), k_end}, op_matmul,
     r_none},
    {"softmax", false,
     {k_input, req("dim", pk::int_), opt("dtype", pk::dtype), k_end},
     op_softmax, r_none},
    {"log_softmax", false,
     {k_input, req("dim", pk::int_), opt("dtype", pk::dtype), k_end},
     op_log_softmax, r_none},
    {"mean", false,
     {k_input, opt("dim", pk::dims), opt("keepdim", pk::bool_),
      kwo("dtype", pk::dtype), k_end},
     op_mean, r_keepdim_dim},
    {"sum", false,
     {k_input, opt("dim", pk::dims), opt("keepdim", pk::bool_),
      kwo("dtype", pk::dtype), k_end},
     op_sum, r_keepdim_dim},
    {"max", false,
     {k_input, opt("dim", pk::int_), opt("keepdim", pk::bool_), k_end},
     op_max, r_keepdim_dim},
    {"min", false,
     {k_input, opt("dim", pk::int_), opt("keepdim", pk::bool_), k_end},
     op_min, r_keepdim_dim},
    {"argmax", false,
     {k_input, opt("dim", pk::int_), opt("keepdim", pk::bool_), k_end},
     op_argmax, r_none},
    {"argmin", false,
     {k_input, opt("dim", pk::int_), opt("keepdim", pk::bool_), k_end},
     op_argmin, r_none},
    {"norm", false,
     {k_input, opt("p", pk::number), opt("dim", pk::dims),
      opt("keepdim", pk::bool_), kwo("dtype", pk::dtype), k_end},
     op_norm, r_fro_no_dtype},
    {"index", false, {k_input, k_end}, op_index, r_none},
    {"reshape", false, {k_input, req("shape", pk::ints), k_end}, op_reshape,
     r_none},
    {"view", false, {k_input, req("size", pk::ints), k_end}, op_view, r_none},
    {"transpose", false,
     {k_input, req("dim0", pk::int_), req("dim1", pk::int_), k_end},
     op_transpose, r_none},
    {"permute", false, {k_input, req("dims", pk::ints), k_end}, op_permute,
     r_none},
    {"cat", true, {opt("dim", pk::int_), k_end}, op_cat, r_none},
    {"stack", true, {opt("dim", pk::int_), k_end}, op_stack, r_none},
    {"zeros_like", false, {k_input, kwo("dtype", pk::dtype), k_end},
     op_zeros_like, r_none},
    {"ones_like", false, {k_input, kwo("dtype", pk::dtype), k_end},
     op_ones_like, r_none},
    {"full", false,
     {req("size", pk::ints), req("fill_value", pk::fill),
      kwo("dtype", pk::dtype), k_end},
     op_full, r_none},
    {"topk", false,
     {k_input, req("k", pk::int_), opt("dim", pk::int_),
      opt("largest", pk::bool_), k_end},
     op_topk, r_none},
    {"topk_indices", false,
     {k_input, req("k", pk::int_), opt("dim", pk::int_),
      opt("largest", pk::bool_), k_end},
     op_topk_indices, r_none},
    {"where", false,
     {req("condition", pk::tensor), req("input", pk::tensor_or_number),
      req("other", pk::tensor_or_number), k_end},
     op_where, r_none},
    {"clamp", false,
     {k_input, opt("min", pk::number), opt("max", pk::number), k_end},
     op_clamp, r_min_or_max},
    {"exp", false, {k_input, k_end}, op_exp, r_none},
    {"log", false, {k_input, k_end}, op_log, r_none},
    {"tanh", false, {k_input, k_end}, op_tanh, r_none},
    {"relu", false, {k_input, k_end}, op_relu, r_none},
    {"gelu", false, {k_input, k_end}, op_gelu, r_none},
    {"to", false, {k_input, req("dtype", pk::dtype), k_end}, op_to, r_none},
};

const op_def *find_op(const char *fn) {
  for (const op_def &op : k_ops)
    if (std::strcmp(op.name, fn) == 0)
      return &op;
  return nullptr;
}

// "add, sub, mul, ..." for the unknown-function message.
std::string op_names() {
  std::string s;
  for (const op_def &op : k_ops) {
    if (!s.empty())
      s += ", ";
    s += op.name;
  }
  return s;
}

int n_params(const op_def &op) {
  int n = 0;
  while (n < k_max_params && op.params[n].name != nullptr)
    n++;
  return n;
}

// "input, dim, dtype" for the unknown-keyword message.
std::string param_names(const op_def &op) {
  std::string s;
  for (int i = 0; i < n_params(op); i++)
    s += (i ? ", " : "") + std::string(op.params[i].name);
  return s;
}

// ---- binding and checking ---------------------------------------------------

// A name given for an argument: NULL and "" mean positional (a protobuf
// string field that was never set reads as "").
bool is_keyword(const nne_op_arg_t &a) {
  return a.name != nullptr && a.name[0] != '\0';
}

int count_error(const op_def &op, size_t given, nne_err_t *err) {
  const int np = n_params(op);
  int n_pos = 0, n_req = 0;
  bool kw = false;
  for (int i = 0; i < np; i++) {
    if (op.params[i].kw_only)
      kw = true;
    else
      n_pos++;
    if (op.params[i].required)
      n_req++;
  }
  if (op.variadic)
    return nne_err_set(err, NNE_EINVAL,
                       "%s: takes tensors and then at most %d more positional "
                       "argument%s (%s), got %zu",
                       op.name, n_pos, n_pos == 1 ? "" : "s",
                       param_names(op).c_str(), given);
  if (n_req == n_pos)
    return nne_err_set(err, NNE_EINVAL, "%s: takes %d %sargument%s, got %zu",
                       op.name, n_pos, kw ? "positional " : "",
                       n_pos == 1 ? "" : "s", given);
  return nne_err_set(err, NNE_EINVAL,
                     "%s: takes %d to %d positional arguments, got %zu",
                     op.name, n_req, n_pos, given);
}

int check_ints(const op_def &op, const param &p, const nne_op_arg_t &a,
               nne_err_t *err) {
  if (a.kind != NNE_ARG_INTS)
    return 0;
  if (a.n_ints > 0 && a.ints == nullptr)
    return nne_err_set(err, NNE_EINVAL,
                       "%s: argument '%s' has %zu ints but no array", op.name,
                       p.name, a.n_ints);
  // Shapes, permutations and dim lists all describe at most as many
  // dimensions as a tensor handle can have; this also bounds what a client
  // can make full() allocate in rank (not in size).
  if (a.n_ints > NNE_TENSOR_MAX_DIMS)
    return nne_err_set(err, NNE_EINVAL,
                       "%s: argument '%s' has %zu entries (at most %d)",
                       op.name, p.name, a.n_ints, NNE_TENSOR_MAX_DIMS);
  if (p.kind == pk::dims && a.n_ints == 0)
    return nne_err_set(err, NNE_EINVAL,
                       "%s: argument '%s' is an empty list (leave it out to "
                       "reduce over all dimensions)",
                       op.name, p.name);
  return 0;
}

int check_items(const op_def &op, const nne_index_item_t *items,
                size_t n_items, nne_err_t *err) {
  if (n_items == 0)
    return 0;
  if (std::strcmp(op.name, "index") != 0)
    return nne_err_set(err, NNE_EINVAL,
                       "%s: takes no index items (only 'index' does)",
                       op.name);
  if (items == nullptr)
    return nne_err_set(err, NNE_EINVAL, "index: %zu items but no array",
                       n_items);
  size_t n_ellipsis = 0, n_dims = 0, n_new = 0;
  for (size_t i = 0; i < n_items; i++) {
    const nne_index_item_t &it = items[i];
    switch (nne__enum_int(it.kind)) {
    case NNE_INDEX_INT: n_dims++; break;
    case NNE_INDEX_SLICE:
      n_dims++;
      if (it.step < 0)
        return nne_err_set(err, NNE_EINVAL,
                           "index: item %zu: slice step must be positive, "
                           "got %lld",
                           i, static_cast<long long>(it.step));
      break;
    case NNE_INDEX_ELLIPSIS:
      if (++n_ellipsis > 1)
        return nne_err_set(err, NNE_EINVAL,
                           "index: item %zu: an index can only have a single "
                           "ellipsis",
                           i);
      break;
    case NNE_INDEX_NEWAXIS: n_new++; break;
    default:
      return nne_err_set(err, NNE_EINVAL,
                         "index: item %zu has unknown kind %d", i,
                         nne__enum_int(it.kind));
    }
  }
  if (n_dims > NNE_TENSOR_MAX_DIMS)
    return nne_err_set(err, NNE_EINVAL,
                       "index: %zu ints and slices (a tensor has at most %d "
                       "dimensions)",
                       n_dims, NNE_TENSOR_MAX_DIMS);
  if (n_new > NNE_TENSOR_MAX_DIMS)
    return nne_err_set(err, NNE_EINVAL,
                       "index: %zu new axes (a tensor has at most %d "
                       "dimensions)",
                       n_new, NNE_TENSOR_MAX_DIMS);
  return 0;
}

// Binds args to fn's parameters and checks everything that needs no tensor
// value. With `need_tensors`, every tensor argument must be non-NULL too.
int bind(const char *fn, const nne_op_arg_t *args, size_t n,
         const nne_index_item_t *items, size_t n_items, bool need_tensors,
         bound *b, nne_err_t *err) {
  if (fn == nullptr)
    return nne_err_set(err, NNE_EINVAL, "call: the function name is NULL");
  const op_def *op = find_op(fn);
  if (op == nullptr)
    return nne_err_set(err, NNE_EINVAL,
                       "%.64s: not a function a trace may call (%s)", fn,
                       op_names().c_str());
  if (n > 0 && args == nullptr)
    return nne_err_set(err, NNE_EINVAL, "%s: %zu arguments but no array",
                       op->name, n);
  b->op = op;
  const int np = n_params(*op);

  // Positionals first, as in Python; a variadic function's leading tensors
  // are its list.
  size_t n_pos = 0, n_list = 0;
  bool seen_kw = false;
  for (size_t i = 0; i < n; i++) {
    if (kind_str(nne__enum_int(args[i].kind)) == nullptr)
      return nne_err_set(err, NNE_EINVAL,
                         "%s: argument %zu has unknown kind %d", op->name, i,
                         nne__enum_int(args[i].kind));
    if (is_keyword(args[i])) {
      seen_kw = true;
      continue;
    }
    if (seen_kw)
      return nne_err_set(err, NNE_EINVAL,
                         "%s: positional argument %zu follows a keyword "
                         "argument",
                         op->name, i);
    if (op->variadic && n_pos == 0 && args[i].kind == NNE_ARG_TENSOR)
      n_list++;
    else
      n_pos++;
  }
  int max_pos = 0;
  while (max_pos < np && !op->params[max_pos].kw_only)
    max_pos++;
  if (n_pos > static_cast<size_t>(max_pos))
    return count_error(*op, op->variadic ? n_pos : n_pos + n_list, err);
  if (op->variadic && n_list == 0)
    return nne_err_set(err, NNE_EINVAL,
                       "%s: needs at least one tensor (given first, by "
                       "position)",
                       op->name);

  size_t next = 0;
  for (size_t i = 0; i < n; i++) {
    const nne_op_arg_t &a = args[i];
    int p = -1;
    if (!is_keyword(a)) {
      if (b->tensors.size() < n_list) {
        b->tensors.push_back(&a);
        continue;
      }
      p = static_cast<int>(next++);
    } else {
      for (int j = 0; j < np && p < 0; j++)
        if (std::strcmp(op->params[j].name, a.name) == 0)
          p = j;
      if (p < 0)
        return nne_err_set(err, NNE_EINVAL,
                           "%s: unknown keyword argument '%.64s' (%s takes "
                           "%s)",
                           op->name, a.name, op->name,
                           param_names(*op).c_str());
      if (b->arg[p] != nullptr)
        return nne_err_set(err, NNE_EINVAL,
                           "%s: got more than one value for argument '%s'",
                           op->name, op->params[p].name);
    }
    const param &pp = op->params[p];
    const int kind = nne__enum_int(a.kind);
    if (!accepts(pp.kind, kind))
      return nne_err_set(err, NNE_EINVAL,
                         "%s: argument '%s' must be %s, got %s", op->name,
                         pp.name, accepts_str(pp.kind), kind_str(kind));
    int rc = check_ints(*op, pp, a, err);
    if (rc != 0)
      return rc;
    if (kind == NNE_ARG_DTYPE) {
      at::ScalarType st;
      if (!nne__scalar_from_dtype(nne__dtype_int(a.dtype), &st))
        return nne_err_set(err, NNE_EINVAL,
                           "%s: argument '%s': unknown dtype %d", op->name,
                           pp.name, nne__dtype_int(a.dtype));
    }
    if (need_tensors && kind == NNE_ARG_TENSOR && a.tensor == nullptr)
      return nne_err_set(err, NNE_EINVAL, "%s: argument '%s' is NULL",
                         op->name, pp.name);
    b->arg[p] = &a;
  }
  for (size_t i = 0; need_tensors && i < b->tensors.size(); i++)
    if (b->tensors[i]->tensor == nullptr)
      return nne_err_set(err, NNE_EINVAL, "%s: tensor %zu is NULL", op->name,
                         i);

  for (int j = 0; j < np; j++)
    if (op->params[j].required && b->arg[j] == nullptr)
      return nne_err_set(err, NNE_EINVAL, "%s: missing argument '%s'",
                         op->name, op->params[j].name);

  if ((op->rules & r_one_tensor) && b->arg[0]->kind != NNE_ARG_TENSOR &&
      b->arg[1]->kind != NNE_ARG_TENSOR)
    return nne_err_set(err, NNE_EINVAL,
                       "%s: one of '%s' and '%s' must be a tensor", op->name,
                       op->params[0].name, op->params[1].name);
  if ((op->rules & r_keepdim_dim) && b->arg[2] != nullptr &&
      b->arg[1] == nullptr)
    return nne_err_set(err, NNE_EINVAL, "%s: 'keepdim' needs 'dim'",
                       op->name);
  if ((op->rules & r_min_or_max) && b->arg[1] == nullptr &&
      b->arg[2] == nullptr)
    return nne_err_set(err, NNE_EINVAL, "%s: needs 'min' or 'max' (or both)",
                       op->name);
  if ((op->rules & r_fro_no_dtype) && b->arg[4] != nullptr &&
      b->arg[1] == nullptr)
    return nne_err_set(err, NNE_EINVAL,
                       "%s: 'dtype' needs a number 'p' (the default, the "
                       "Frobenius norm, takes no dtype)",
                       op->name);

  int rc = check_items(*op, items, n_items, err);
  if (rc != 0)
    return rc;
  b->items = items;
  b->n_items = n_items;
  return 0;
}

} // namespace

extern "C" {

int nne_op_check(const char *fn, const nne_op_arg_t *args, size_t n,
                 const nne_index_item_t *items, size_t n_items,
                 nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, fn != nullptr ? fn : "call", [&]() {
    bound b;
    return bind(fn, args, n, items, n_items, /*need_tensors=*/false, &b, err);
  });
}

int nne_op_call(const char *fn, const nne_op_arg_t *args, size_t n,
                const nne_index_item_t *items, size_t n_items,
                nne_tensor_t **out, nne_err_t *err) {
  // A libtorch failure is the caller's: shapes that do not fit, a dtype an
  // op does not take, an index out of range.
  return nne__guard(err, NNE_EINVAL, fn != nullptr ? fn : "call", [&]() {
    if (out == nullptr)
      return nne_err_set(err, NNE_EINVAL, "%.64s: out is NULL",
                         fn != nullptr ? fn : "call");
    bound b;
    int rc = bind(fn, args, n, items, n_items, /*need_tensors=*/true, &b, err);
    if (rc != 0)
      return rc;
    // Inference mode is thread-local: set for this call on this thread.
    c10::InferenceMode guard;
    // A trace may call functions before its forward runs: they must go to
    // this thread's own stream too, or nothing orders them with the forward.
    for (size_t i = 0; i < n; i++) {
      if (args[i].kind == NNE_ARG_TENSOR && args[i].tensor != nullptr) {
        nne__use_device(args[i].tensor->t.device());
        break;
      }
    }
    at::Tensor r;
    try {
      r = b.op->impl(b);
    } catch (const std::bad_alloc &) {
      throw;
    } catch (const c10::Error &) {
      throw;
    } catch (const std::exception &e) {
      // Some ATen checks throw a plain std::runtime_error rather than a
      // c10::Error (1.13's reshape: "shape '[7]' is invalid for input of
      // size 30"). Whatever the op itself throws is about its arguments.
      return nne__err_libtorch(err, NNE_EINVAL, b.op->name, e.what());
    }
    return nne__tensor_wrap(std::move(r), out, err, b.op->name);
  });
}

int nne_op_result_bytes(const char *fn, const nne_op_arg_t *args, size_t n,
                        const nne_index_item_t *items, size_t n_items,
                        uint64_t *bytes, nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, fn != nullptr ? fn : "call", [&]() {
    if (bytes == nullptr)
      return nne_err_set(err, NNE_EINVAL, "%.64s: bytes is NULL",
                         fn != nullptr ? fn : "call");
    *bytes = 0;
    bound b;
    int rc = bind(fn, args, n, items, n_items, /*need_tensors=*/true, &b, err);
    if (rc != 0)
      return rc;
    // The same call on meta tensors: shapes, dtypes and strides without
    // storage, so the result's size is known before anything is allocated
    // (a 100-byte request can ask for full([65536, 65536])). The inputs
    // keep their strides, so a view comes out as a view.
    std::deque<nne_tensor> metas;
    std::vector<nne_op_arg_t> margs(args, args + n);
    for (nne_op_arg_t &a : margs)
      if (a.kind == NNE_ARG_TENSOR && a.tensor != nullptr) {
        metas.emplace_back();
        const at::Tensor &t = a.tensor->t;
        metas.back().t = at::empty_strided(t.sizes(), t.strides(),
                                           t.options().device(at::kMeta));
        a.tensor = &metas.back();
      }
    bound mb;
    rc = bind(fn, margs.data(), n, items, n_items, true, &mb, err);
    if (rc != 0)
      return rc;
    at::Tensor r;
    try {
      c10::InferenceMode guard;
      if (mb.op->impl == op_full) // makes its value from nothing: on meta
        r = at::full(ints_of(mb.arg[0]), scalar_of(mb.arg[1]),
                     dtype_options(mb.arg[2]).device(at::kMeta));
      else
        r = mb.op->impl(mb);
    } catch (const std::bad_alloc &) {
      throw;
    } catch (const std::exception &) {
      // No meta kernel for this op in this libtorch, or arguments the op
      // refuses: the real call says which. Unknown size: 0.
      return 0;
    }
    // A view of an input allocates nothing.
    for (const nne_tensor &mt : metas)
      if (r.is_alias_of(mt.t))
        return 0;
    *bytes = static_cast<uint64_t>(r.numel()) *
             static_cast<uint64_t>(r.element_size());
    return 0;
  });
}

} // extern "C"
