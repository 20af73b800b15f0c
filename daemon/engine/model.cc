// model.cc — loading a TorchScript archive, reading its module tree and the
// static order of module calls, and running forward.
#include "engine_internal.h"

#include <c10/core/InferenceMode.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace {

using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

std::string join_path(const std::string &base, const std::string &name) {
  return base.empty() ? name : base + "." + name;
}

// "__torch__.hfmodels.___torch_mangle_7.GPT2Attention" -> "GPT2Attention".
// TorchScript mangles a second class of the same name by inserting a
// "___torch_mangle_N" atom; the class's own name is the last other atom.
std::string class_name_of(const std::string &qualified) {
  static const char k_mangle[] = "___torch_mangle_";
  std::string last;
  size_t start = 0;
  while (start <= qualified.size()) {
    size_t dot = qualified.find('.', start);
    if (dot == std::string::npos)
      dot = qualified.size();
    std::string atom = qualified.substr(start, dot - start);
    if (!atom.empty() && atom.rfind(k_mangle, 0) != 0)
      last = atom;
    start = dot + 1;
  }
  return last;
}

bool is_tensor_type(const c10::TypePtr &t) {
  return t->kind() == c10::TypeKind::TensorType;
}

bool is_optional_tensor_type(const c10::TypePtr &t) {
  if (t->kind() != c10::TypeKind::OptionalType)
    return false;
  return is_tensor_type(t->castRaw<c10::OptionalType>()->getElementType());
}

// Reads forward's schema: (self, Tensor input_ids[, Tensor attention_mask |
// Tensor? attention_mask][, anything with a default ...]).
int read_signature(nne_model_t *m, const char *path, nne_err_t *err) {
  torch::jit::Function *fwd = m->module.type()->findMethod("forward");
  if (fwd == nullptr)
    return nne_err_set(err, NNE_EINVAL, "model '%s': has no forward method",
                       path);
  const c10::FunctionSchema &schema = fwd->getSchema();
  const std::vector<c10::Argument> &args = schema.arguments();
  std::ostringstream shown;
  shown << schema;
  bool ok = args.size() >= 2 && is_tensor_type(args[1].type());
  nne_model::mask_kind mask = nne_model::mask_kind::none;
  size_t first_defaulted = 2;
  if (ok && args.size() >= 3) {
    if (is_tensor_type(args[2].type())) {
      mask = nne_model::mask_kind::required;
      first_defaulted = 3;
    } else if (is_optional_tensor_type(args[2].type())) {
      mask = nne_model::mask_kind::optional;
      first_defaulted = 3;
    }
  }
  // Anything after what we pass must have a default, or the call fails.
  for (size_t i = first_defaulted; ok && i < args.size(); i++)
    ok = args[i].default_value().has_value();
  if (!ok)
    return nne_err_set(err, NNE_EINVAL,
                       "model '%s': forward is %s; expected forward(self, "
                       "Tensor input_ids[, Tensor? attention_mask])",
                       path, shown.str().c_str());
  m->mask = mask;
  return 0;
}

// Converts floating parameters and buffers to `st`, leaving integer and bool
// tensors (token tables, causal masks) as they are. jit::Module::to(dtype)
// would convert those too.
void convert_floating(torch::jit::Module &module, at::ScalarType st) {
  auto convert = [st](const at::Tensor &t) {
    if (t.is_floating_point() && t.scalar_type() != st)
      t.set_data(t.to(st));
  };
  for (const at::Tensor &t : module.parameters(/*recurse=*/true))
    convert(t);
  for (const at::Tensor &t : module.buffers(/*recurse=*/true))
    convert(t);
}

// The order in which forward first calls each module, read statically from
// the graphs (see read_call_order).
struct call_walker {
  const std::unordered_map<std::string, int> &by_path;
  const std::vector<torch::jit::Module> &mods;
  std::vector<int> &call_index;
  int next = 1;

  // TorchScript has no recursion, so the nesting of method calls is bounded
  // by the module tree; the limit only guards against a malformed archive.
  static constexpr int k_max_depth = 256;

  void walk_graph(Graph &g, const std::string &base, int depth) {
    if (depth > k_max_depth || g.inputs().empty())
      return;
    walk_block(g.block(), g.inputs()[0], base, depth);
  }

  void walk_block(Block *b, Value *self, const std::string &base, int depth) {
    for (Node *n : b->nodes()) {
      if (n->kind() == c10::prim::CallMethod)
        visit_call(n, self, base, depth);
      // Both branches of an If and the body of a Loop: a static walk cannot
      // know which branch runs, and a loop's first iteration decides the
      // first call.
      for (Block *sub : n->blocks())
        walk_block(sub, self, base, depth);
    }
  }

  void visit_call(Node *n, Value *self, const std::string &base, int depth) {
    std::string path;
    if (n->inputs().empty() ||
        !nne__module_path_of(n->input(0), self, base, &path))
      return;
    auto it = by_path.find(path);
    if (it == by_path.end())
      return; // not a module of the tree (a class object, say)
    const std::string method = n->s(c10::attr::name);
    // Only a call of forward is a module call (what Python's forward
    // pre-hooks see); another method of a module, or a helper method of the
    // same module, is walked into for the calls it makes.
    if (method == "forward" && call_index[it->second] < 0)
      call_index[it->second] = next++;
    torch::jit::Function *fn = mods[it->second].type()->findMethod(method);
    if (fn == nullptr || !fn->isGraphFunction())
      return;
    walk_graph(*torch::jit::toGraphFunction(*fn).graph(), path, depth + 1);
  }
};

// Call order without running the model: walk root.forward's graph in node
// order; each prim::CallMethod's receiver is resolved to an instance path
// through its GetAttr chain, numbered on its first forward call, and its
// method graph is walked in turn with that path as the new base.
// prim::CallFunction is skipped: a free function cannot reach a module.
std::vector<int> read_call_order(const nne_model_t *m,
                                 const std::vector<torch::jit::Module> &mods) {
  std::vector<int> call_index(mods.size(), -1);
  call_index[0] = 0;
  call_walker w{m->by_path, mods, call_index};
  torch::jit::Function *fwd = m->module.type()->findMethod("forward");
  if (fwd != nullptr && fwd->isGraphFunction())
    w.walk_graph(*torch::jit::toGraphFunction(*fwd).graph(), "", 0);
  return call_index;
}

void read_tree(nne_model_t *m) {
  std::vector<torch::jit::Module> mods;
  for (const torch::jit::NameModule &nm : m->module.named_modules()) {
    nne_model::module_rec r;
    r.path = nm.name;
    size_t dot = r.path.rfind('.');
    r.name = dot == std::string::npos ? r.path : r.path.substr(dot + 1);
    auto qn = nm.value.type()->name();
    r.type_name = qn ? qn->qualifiedName() : std::string();
    r.class_name = class_name_of(r.type_name);
    // A module reachable under two names is listed once, under the first,
    // as Python's named_modules() does.
    if (m->by_path.count(r.path) != 0)
      continue;
    m->by_path.emplace(r.path, static_cast<int>(m->recs.size()));
    m->recs.push_back(std::move(r));
    mods.push_back(nm.value);
  }

  std::vector<int> parent(m->recs.size(), -1);
  for (size_t i = 1; i < m->recs.size(); i++) {
    const std::string &p = m->recs[i].path;
    size_t dot = p.rfind('.');
    auto it = m->by_path.find(dot == std::string::npos ? std::string()
                                                       : p.substr(0, dot));
    if (it != m->by_path.end()) {
      parent[i] = it->second;
      // Pre-order lists children in registration order.
      m->recs[it->second].children.push_back(static_cast<int>(i));
    }
  }

  std::vector<int> call_index = read_call_order(m, mods);
  m->mods = std::move(mods);
  m->nodes.resize(m->recs.size());

  m->infos.resize(m->recs.size());
  for (size_t i = 0; i < m->recs.size(); i++) {
    const nne_model::module_rec &r = m->recs[i];
    nne_module_info_t &info = m->infos[i];
    info.path = r.path.c_str();
    info.name = r.name.c_str();
    info.class_name = r.class_name.c_str();
    info.type_name = r.type_name.c_str();
    info.parent = parent[i];
    info.depth = parent[i] < 0 ? 0 : m->infos[parent[i]].depth + 1;
    info.n_children = static_cast<int>(r.children.size());
    info.children = r.children.empty() ? nullptr : r.children.data();
    info.call_index = call_index[i];
    uint64_t n = 0;
    for (const at::Tensor &t : m->mods[i].parameters(/*recurse=*/false))
      n += static_cast<uint64_t>(t.numel());
    info.param_count = n;
  }
}

// Totals over distinct tensors: a tied weight (GPT-2's lm_head and wte) is
// one tensor held by two modules and counts once.
// What the weights hold on the device: every storage behind a parameter or
// a buffer once (views and tied weights share one).
void read_resident(nne_model_t *m) {
  std::unordered_set<const void *> seen;
  auto add = [&](const at::Tensor &t) {
    if (!t.defined() || !t.has_storage())
      return;
    const c10::Storage &st = t.storage();
    if (seen.insert(st.unsafeGetStorageImpl()).second)
      m->resident_bytes += static_cast<uint64_t>(st.nbytes());
  };
  for (const at::Tensor &t : m->module.parameters(/*recurse=*/true))
    add(t);
  for (const at::Tensor &t : m->module.buffers(/*recurse=*/true))
    add(t);
}

void read_params(nne_model_t *m) {
  std::unordered_set<const void *> seen;
  bool have_dtype = false;
  for (const at::Tensor &t : m->module.parameters(/*recurse=*/true)) {
    if (!seen.insert(t.unsafeGetTensorImpl()).second)
      continue;
    m->param_count += static_cast<uint64_t>(t.numel());
    m->param_bytes += static_cast<uint64_t>(t.numel()) * t.element_size();
    nne_dtype_t dt;
    if (!have_dtype && t.is_floating_point() &&
        nne__dtype_from_scalar(t.scalar_type(), &dt)) {
      m->dtype = dt;
      have_dtype = true;
    }
  }
}

// Checks the file before libtorch opens it, so that a missing file is an
// I/O error with errno's words rather than a zip reader's complaint.
int check_file(const char *path, nne_err_t *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return nne_err_set(err, NNE_EIO, "model '%s': %s", path,
                       std::strerror(errno));
  struct stat st;
  int rc = fstat(fd, &st);
  int saved = errno;
  close(fd);
  if (rc != 0)
    return nne_err_set(err, NNE_EIO, "model '%s': %s", path,
                       std::strerror(saved));
  if (!S_ISREG(st.st_mode))
    return nne_err_set(err, NNE_EIO, "model '%s': %s", path,
                       S_ISDIR(st.st_mode) ? std::strerror(EISDIR)
                                           : "not a regular file");
  return 0;
}

int check_ids_and_mask(const nne_tensor_t *ids, const nne_tensor_t *mask,
                       nne_err_t *err) {
  if (ids->ndim != 2)
    return nne_err_set(err, NNE_EINVAL,
                       "input_ids: expected 2 dimensions [batch, seq], got %d",
                       ids->ndim);
  if (ids->dtype != NNE_DTYPE_I64)
    return nne_err_set(err, NNE_EINVAL, "input_ids: expected int64, got %s",
                       nne_dtype_name(ids->dtype));
  if (ids->shape[0] == 0 || ids->shape[1] == 0)
    return nne_err_set(err, NNE_EINVAL,
                       "input_ids: shape [%lld, %lld] is "
                       "empty",
                       static_cast<long long>(ids->shape[0]),
                       static_cast<long long>(ids->shape[1]));
  if (mask == nullptr)
    return 0;
  if (mask->ndim != 2 || mask->shape[0] != ids->shape[0] ||
      mask->shape[1] != ids->shape[1]) {
    std::string s;
    for (int i = 0; i < mask->ndim; i++)
      s += (i ? ", " : "") + std::to_string(mask->shape[i]);
    return nne_err_set(err, NNE_EINVAL,
                       "attention_mask: shape [%s] differs from input_ids' "
                       "[%lld, %lld]",
                       s.c_str(), static_cast<long long>(ids->shape[0]),
                       static_cast<long long>(ids->shape[1]));
  }
  switch (mask->dtype) {
  case NNE_DTYPE_I64:
  case NNE_DTYPE_I32:
  case NNE_DTYPE_I16:
  case NNE_DTYPE_I8:
  case NNE_DTYPE_U8:
  case NNE_DTYPE_BOOL: return 0;
  default:
    return nne_err_set(err, NNE_EINVAL,
                       "attention_mask: expected an integer or bool dtype, "
                       "got %s",
                       nne_dtype_name(mask->dtype));
  }
}

// logits from forward's result: a tensor, a tuple's first element, or a
// dict's "logits".
bool output_logits(const c10::IValue &out, at::Tensor *t) {
  if (out.isTensor()) {
    *t = out.toTensor();
    return true;
  }
  if (out.isTuple()) {
    const auto &elems = out.toTupleRef().elements();
    if (!elems.empty() && elems[0].isTensor()) {
      *t = elems[0].toTensor();
      return true;
    }
    return false;
  }
  if (out.isGenericDict()) {
    for (const auto &kv : out.toGenericDict()) {
      if (kv.key().isString() && kv.key().toStringRef() == "logits" &&
          kv.value().isTensor()) {
        *t = kv.value().toTensor();
        return true;
      }
    }
  }
  return false;
}

} // namespace

bool nne__module_path_of(Value *v, Value *self, const std::string &base,
                         std::string *out) {
  std::vector<std::string> names;
  while (v != self) {
    Node *n = v->node();
    if (n->kind() != c10::prim::GetAttr)
      return false;
    names.push_back(n->s(c10::attr::name));
    v = n->input(0);
  }
  std::string p = base;
  for (auto it = names.rbegin(); it != names.rend(); ++it)
    p = join_path(p, *it);
  *out = std::move(p);
  return true;
}

int nne__forward_args(const nne_model_t *m, const nne_tensor_t *input_ids,
                      const nne_tensor_t *attention_mask,
                      std::vector<c10::IValue> *args, nne_err_t *err) {
  int rc = check_ids_and_mask(input_ids, attention_mask, err);
  if (rc != 0) {
    nne_err_prefix(err, "forward");
    return rc;
  }
  if (attention_mask != nullptr && m->mask == nne_model::mask_kind::none)
    return nne_err_set(err, NNE_EINVAL,
                       "forward: attention_mask: this model's forward "
                       "takes input_ids only");
  nne__use_device(m->device);
  at::Tensor ids = input_ids->t.to(m->device);
  args->reserve(2);
  args->emplace_back(ids);
  if (attention_mask != nullptr)
    args->emplace_back(attention_mask->t.to(m->device, at::kLong));
  else if (m->mask == nne_model::mask_kind::required)
    args->emplace_back(at::ones_like(ids));
  else if (m->mask == nne_model::mask_kind::optional)
    args->emplace_back(c10::IValue());
  return 0;
}

int nne__forward_logits(const c10::IValue &out, const nne_tensor_t *input_ids,
                        nne_tensor_t **logits, nne_err_t *err) {
  at::Tensor t;
  if (!output_logits(out, &t))
    return nne_err_set(err, NNE_EINVAL,
                       "forward: the model returned %s; expected a tensor, "
                       "a tuple starting with one, or a dict with "
                       "\"logits\"",
                       out.tagKind().c_str());
  if (t.dim() != 3 || t.size(0) != input_ids->shape[0] ||
      t.size(1) != input_ids->shape[1]) {
    std::ostringstream s;
    s << t.sizes();
    return nne_err_set(err, NNE_EINVAL,
                       "forward: the model returned logits of shape %s; "
                       "expected [%lld, %lld, vocab]",
                       s.str().c_str(),
                       static_cast<long long>(input_ids->shape[0]),
                       static_cast<long long>(input_ids->shape[1]));
  }
  nne_tensor_t *h = nullptr;
  int rc = nne__tensor_wrap(std::move(t), &h, err, "forward: logits");
  if (rc == 0)
    *logits = h;
  return rc;
}

namespace {

std::string shape_str(const at::Tensor &t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

} // namespace

int nne__cached_args(const nne_model_t *m, const nne_tensor_t *input_ids,
                     const nne_tensor_t *attention_mask,
                     const nne_tensor_t *position_ids,
                     nne_tensor_t *const *past, size_t n_past,
                     std::vector<c10::IValue> *args, nne_err_t *err) {
  nne__use_device(m->device);
  if (input_ids == nullptr || attention_mask == nullptr ||
      position_ids == nullptr || (n_past > 0 && past == nullptr))
    return nne_err_set(err, NNE_EINVAL, "cached forward: NULL argument");
  int rc = check_ids_and_mask(input_ids, nullptr, err);
  if (rc != 0) {
    nne_err_prefix(err, "cached forward");
    return rc;
  }
  const int64_t B = input_ids->shape[0], S = input_ids->shape[1];
  if (attention_mask->ndim != 2 || attention_mask->shape[0] != B ||
      attention_mask->shape[1] < S)
    return nne_err_set(err, NNE_EINVAL,
                       "cached forward: attention_mask must be [%lld, P + "
                       "%lld]",
                       static_cast<long long>(B), static_cast<long long>(S));
  if (position_ids->ndim != 2 || position_ids->shape[0] != B ||
      position_ids->shape[1] != S)
    return nne_err_set(err, NNE_EINVAL,
                       "cached forward: position_ids must be [%lld, %lld]",
                       static_cast<long long>(B), static_cast<long long>(S));
  const int64_t P = attention_mask->shape[1] - S;
  c10::List<at::Tensor> list;
  list.reserve(n_past);
  for (size_t i = 0; i < n_past; i++) {
    const nne_tensor_t *t = past[i];
    if (t == nullptr || t->ndim != 4 || t->shape[0] != B ||
        t->shape[2] != P)
      return nne_err_set(err, NNE_EINVAL,
                         "cached forward: past[%zu] must be [%lld, heads, "
                         "%lld, head_dim]",
                         i, static_cast<long long>(B),
                         static_cast<long long>(P));
    list.push_back(t->t.device() == m->device ? t->t : t->t.to(m->device));
  }
  args->reserve(4);
  args->emplace_back(input_ids->t.to(m->device));
  args->emplace_back(attention_mask->t.to(m->device, at::kLong));
  args->emplace_back(position_ids->t.to(m->device, at::kLong));
  args->emplace_back(std::move(list));
  return 0;
}

int nne__cached_outputs(const c10::IValue &out, const nne_tensor_t *input_ids,
                        size_t n_past, nne_tensor_t **logits,
                        nne_tensor_t **present, nne_err_t *err) {
  if (!out.isTuple() || out.toTupleRef().elements().size() != 2 ||
      !out.toTupleRef().elements()[0].isTensor() ||
      !out.toTupleRef().elements()[1].isTensorList())
    return nne_err_set(err, NNE_EINVAL,
                       "cached forward: the model returned %s; expected "
                       "(logits, List[Tensor])",
                       out.tagKind().c_str());
  const auto &elems = out.toTupleRef().elements();
  at::Tensor lo = elems[0].toTensor();
  c10::List<at::Tensor> pres = elems[1].toTensorList();
  if (lo.dim() != 3 || lo.size(0) != input_ids->shape[0] ||
      lo.size(1) != input_ids->shape[1])
    return nne_err_set(err, NNE_EINVAL,
                       "cached forward: logits of shape %s; expected "
                       "[%lld, %lld, vocab]",
                       shape_str(lo).c_str(),
                       static_cast<long long>(input_ids->shape[0]),
                       static_cast<long long>(input_ids->shape[1]));
  if (pres.size() != n_past)
    return nne_err_set(err, NNE_EINVAL,
                       "cached forward: the model returned %zu cache "
                       "tensors for %zu",
                       pres.size(), n_past);
  // All handles first, so that a failure leaves nothing written.
  std::vector<nne__tensor_ptr> made;
  made.reserve(n_past + 1);
  nne_tensor_t *h = nullptr;
  int rc = nne__tensor_wrap(std::move(lo), &h, err, "cached forward: logits");
  if (rc != 0)
    return rc;
  made.emplace_back(h);
  for (size_t i = 0; i < n_past; i++) {
    rc = nne__tensor_wrap(pres.get(i), &h, err, "cached forward: present");
    if (rc != 0)
      return rc;
    made.emplace_back(h);
  }
  *logits = made[0].release();
  for (size_t i = 0; i < n_past; i++)
    present[i] = made[i + 1].release();
  return 0;
}

extern "C" {

int nne_model_load(const char *path, const char *device, nne_dtype_t dt,
                   nne_model_t **out, nne_err_t *err) {
  if (path == nullptr || out == nullptr)
    return nne_err_set(err, NNE_EINVAL, "model: path or out is NULL");
  char ctx[320];
  std::snprintf(ctx, sizeof ctx, "model '%s'", path);
  // A libtorch error while loading means the archive is not one we can use:
  // a corrupt zip, a missing record, code that does not compile.
  return nne__guard(err, NNE_EINVAL, ctx, [&]() -> int {
    std::unique_ptr<nne_model_t> m(new nne_model_t);
    int rc = nne__device_parse(device, &m->device_name, &m->device, err);
    if (rc != 0)
      return rc;
    at::ScalarType st = at::kFloat;
    const int dti = nne__dtype_int(dt);
    const bool convert = dti != NNE_DTYPE_INVALID;
    if (convert) {
      if (!nne__scalar_from_dtype(dti, &st))
        return nne_err_set(err, NNE_EINVAL, "%s: invalid dtype %d", ctx, dti);
      if (!at::isFloatingType(st))
        return nne_err_set(err, NNE_EINVAL,
                           "%s: dtype %s: a model can only be converted to a "
                           "floating dtype",
                           ctx, nne_dtype_name(dt));
    }
    rc = check_file(path, err);
    if (rc != 0)
      return rc;

    nne__use_device(m->device); // the weights' copies: the loader's stream
    try {
      m->module = torch::jit::load(path, m->device);
    } catch (const std::bad_alloc &) {
      throw;
    } catch (const c10::Error &) {
      throw;
    } catch (const std::exception &e) {
      // Whatever the reader or unpickler throws is about the archive.
      return nne_err_set(err, NNE_EINVAL, "%s: %s", ctx, e.what());
    }
    if (convert)
      convert_floating(m->module, st);
    m->module.eval();

    rc = read_signature(m.get(), path, err);
    if (rc != 0)
      return rc;
    read_tree(m.get());
    read_params(m.get());
    read_resident(m.get());
    if (convert)
      nne__dtype_from_scalar(st, &m->dtype);
    *out = m.release();
    return 0;
  });
}

nne_model_t *nne_model_ref(nne_model_t *m) {
  if (m != nullptr)
    m->refs.fetch_add(1, std::memory_order_relaxed);
  return m;
}

void nne_model_unref(nne_model_t *m) {
  if (m == nullptr)
    return;
  if (m->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    try {
      delete m; // the module, its weights and its compiled plans
    } catch (...) {
    }
  }
}

const char *nne_model_device(const nne_model_t *m) {
  return m->device_name.c_str();
}

nne_dtype_t nne_model_dtype(const nne_model_t *m) {
  return m->dtype;
}

uint64_t nne_model_param_count(const nne_model_t *m) {
  return m->param_count;
}

uint64_t nne_model_param_bytes(const nne_model_t *m) {
  return m->param_bytes;
}

uint64_t nne_model_resident_bytes(const nne_model_t *m) {
  return m->resident_bytes;
}

size_t nne_model_module_count(const nne_model_t *m) {
  return m->infos.size();
}

const nne_module_info_t *nne_model_module(const nne_model_t *m, size_t i) {
  return i < m->infos.size() ? &m->infos[i] : nullptr;
}

int nne_model_module_find(const nne_model_t *m, const char *path) {
  if (path == nullptr)
    return -1;
  try {
    auto it = m->by_path.find(path);
    return it == m->by_path.end() ? -1 : it->second;
  } catch (...) {
    return -1; // building the key string ran out of memory
  }
}

int nne_model_forward_arity(const nne_model_t *m) {
  return m->mask == nne_model::mask_kind::none ? 1 : 2;
}

int nne_model_forward(nne_model_t *m, const nne_tensor_t *input_ids,
                      const nne_tensor_t *attention_mask, nne_tensor_t **logits,
                      nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "forward", [&]() -> int {
    if (m == nullptr || input_ids == nullptr || logits == nullptr)
      return nne_err_set(err, NNE_EINVAL, "forward: NULL argument");
    // Inference mode is thread-local: set it for this call on this thread.
    c10::InferenceMode guard;
    std::vector<c10::IValue> args;
    int rc = nne__forward_args(m, input_ids, attention_mask, &args, err);
    if (rc != 0)
      return rc;
    c10::IValue out = m->module.forward(std::move(args));
    return nne__forward_logits(out, input_ids, logits, err);
  });
}

int nne_model_has_method(const nne_model_t *m, const char *method) {
  if (m == nullptr || method == nullptr)
    return 0;
  try {
    return m->module.find_method(method).has_value() ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

int nne_model_forward_cached(nne_model_t *m, const char *method,
                             const nne_tensor_t *input_ids,
                             const nne_tensor_t *attention_mask,
                             const nne_tensor_t *position_ids,
                             nne_tensor_t *const *past, size_t n_past,
                             nne_tensor_t **logits, nne_tensor_t **present,
                             nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "cached forward", [&]() -> int {
    if (m == nullptr || method == nullptr || logits == nullptr ||
        (n_past > 0 && present == nullptr))
      return nne_err_set(err, NNE_EINVAL, "cached forward: NULL argument");
    auto meth = m->module.find_method(method);
    if (!meth)
      return nne_err_set(err, NNE_EINVAL, "cached forward: no method %s",
                         method);
    c10::InferenceMode guard;
    std::vector<c10::IValue> args;
    int rc = nne__cached_args(m, input_ids, attention_mask, position_ids,
                              past, n_past, &args, err);
    if (rc != 0)
      return rc;
    c10::IValue out = (*meth)(std::move(args));
    return nne__cached_outputs(out, input_ids, n_past, logits, present, err);
  });
}

} // extern "C"
