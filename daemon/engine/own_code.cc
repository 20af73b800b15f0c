// own_code.cc — a module's own code (see engine.h, "graph inspection"):
// its forward graph with helper functions and self's helper methods
// inlined and submodule calls left as calls, the numbered list of its nodes
// (nne_model_module_nodes), its arity. variant.cc builds variants from the
// same own code and graph.cc lists it, so that a node selector
// ("PATH:KIND#K") means the same node in all three. Split from variant.cc,
// which keeps the building and running of variants.
#include "engine_internal.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::GraphFunction;
using torch::jit::Node;
using torch::jit::Value;

namespace {

// Rounds of helper inlining: a helper that calls a helper that calls ...
constexpr int k_max_helper_rounds = 64;

bool is_optional_tensor(const c10::TypePtr &t) {
  return t->kind() == c10::TypeKind::OptionalType &&
         nne__is_tensor_type(t->castRaw<c10::OptionalType>()->getElementType());
}

// The graph function a helper call (prim::CallFunction) or a method call on
// self calls, or nullptr when it is not one we inline.
GraphFunction *helper_callee(Node *n, Value *self) {
  if (n->kind() == c10::prim::CallFunction) {
    if (n->inputs().empty())
      return nullptr;
    auto ft = n->input(0)->type()->cast<c10::FunctionType>();
    if (!ft || ft->function() == nullptr)
      return nullptr;
    return torch::jit::tryToGraphFunction(*ft->function());
  }
  if (n->kind() == c10::prim::CallMethod && self != nullptr &&
      !n->inputs().empty() && n->input(0) == self) {
    auto cls = self->type()->cast<c10::ClassType>();
    if (!cls)
      return nullptr;
    torch::jit::Function *f = cls->findMethod(n->s(c10::attr::name));
    return f == nullptr ? nullptr : torch::jit::tryToGraphFunction(*f);
  }
  return nullptr;
}

void collect_helpers(Block *b, Value *self, std::vector<Node *> *out) {
  for (Node *n : b->nodes()) {
    if (helper_callee(n, self) != nullptr)
      out->push_back(n);
    for (Block *sub : n->blocks())
      collect_helpers(sub, self, out);
  }
}

unsigned tensor_bits(at::ArrayRef<Value *> vs) {
  unsigned bits = 0;
  for (size_t i = 0; i < vs.size() && i < 32; i++)
    if (nne__is_hookable_type(vs[i]->type()))
      bits |= 1u << i;
  return bits;
}

std::unique_ptr<nne__node_list> make_node_list(const nne_model_t *m,
                                               int module) {
  GraphFunction *fn = nne__forward_of(m, module);
  std::shared_ptr<Graph> g = nne__own_graph(fn);
  std::vector<Node *> nodes;
  nne__list_nodes(g->block(), &nodes);
  auto list = std::make_unique<nne__node_list>();
  std::unordered_map<std::string, int> seen;
  const std::string &base = m->recs[static_cast<size_t>(module)].path;
  Value *self = g->inputs()[0];
  list->infos.resize(nodes.size());
  for (size_t i = 0; i < nodes.size(); i++) {
    Node *n = nodes[i];
    nne_node_info_t &info = list->infos[i];
    list->strings.emplace_back(n->kind().toQualString());
    info.kind = list->strings.back().c_str();
    info.occurrence = seen[list->strings.back()]++;
    info.n_inputs = static_cast<int>(n->inputs().size());
    info.n_outputs = static_cast<int>(n->outputs().size());
    info.tensor_inputs = tensor_bits(n->inputs());
    info.tensor_outputs = tensor_bits(n->outputs());
    std::string callee;
    if (n->kind() == c10::prim::CallMethod && !n->inputs().empty() &&
        !nne__module_path_of(n->input(0), self, base, &callee))
      callee.clear();
    list->strings.push_back(std::move(callee));
    info.callee = list->strings.back().c_str();
    list->strings.push_back(nne__source_line(n));
    info.source = list->strings.back().c_str();
  }
  return list;
}

} // namespace

bool nne__is_tensor_type(const c10::TypePtr &t) {
  return t->kind() == c10::TypeKind::TensorType;
}

// A site may sit on a Tensor or a Tensor? (whose hook fires only when the
// value holds a tensor).
bool nne__is_hookable_type(const c10::TypePtr &t) {
  return nne__is_tensor_type(t) || is_optional_tensor(t);
}

// Turns a method graph into the module's own code: helper functions and
// self's helper methods inlined, round after round until none is left.
void nne__inline_helpers(Graph &g) {
  Value *self = g.inputs().empty() ? nullptr : g.inputs()[0];
  for (int round = 0; round < k_max_helper_rounds; round++) {
    std::vector<Node *> calls;
    collect_helpers(g.block(), self, &calls);
    if (calls.empty())
      return;
    for (Node *n : calls) {
      GraphFunction *callee = helper_callee(n, self);
      callee->ensure_defined();
      Node *fn_const = nullptr;
      if (n->kind() == c10::prim::CallFunction) {
        // The callee's graph does not take the function value itself.
        fn_const = n->input(0)->node();
        n->removeInput(0);
      }
      torch::jit::inlineCallTo(n, callee, callee->graph().get());
      if (fn_const != nullptr && fn_const->kind() == c10::prim::Constant &&
          !fn_const->output()->hasUses())
        fn_const->destroy();
    }
  }
  throw std::runtime_error("helper functions nest more than " +
                           std::to_string(k_max_helper_rounds) + " deep");
}

void nne__list_nodes(Block *b, std::vector<Node *> *out) {
  for (Node *n : b->nodes()) {
    out->push_back(n);
    for (Block *sub : n->blocks())
      nne__list_nodes(sub, out);
  }
}

GraphFunction *nne__method_of(const c10::ClassTypePtr &cls,
                         const std::string &name) {
  if (!cls)
    return nullptr;
  torch::jit::Function *f = cls->findMethod(name);
  GraphFunction *gf =
      f == nullptr ? nullptr : torch::jit::tryToGraphFunction(*f);
  if (gf != nullptr)
    gf->ensure_defined();
  return gf;
}

GraphFunction *nne__forward_of(const nne_model_t *m, int module) {
  return nne__method_of(m->mods[static_cast<size_t>(module)].type(), "forward");
}

// A copy of a method's graph as own code.
std::shared_ptr<Graph> nne__own_graph(GraphFunction *fn) {
  std::shared_ptr<Graph> g = fn->graph()->copy();
  nne__inline_helpers(*g);
  return g;
}

// The line of source a node came from (the model's Python where the archive
// kept it), trimmed; "" when there is none.
std::string nne__source_line(const Node *n) {
  try {
    torch::jit::SourceRange r = n->sourceRange();
    if (auto orig = r.findSourceRangeThatGenerated())
      r = *orig;
    if (!r.source())
      return "";
    const auto &src = r.source();
    std::string line = src->get_line(src->lineno_for_offset(r.start())).str();
    size_t a = line.find_first_not_of(" \t");
    size_t b = line.find_last_not_of(" \t\r\n");
    if (a == std::string::npos)
      return "";
    line = line.substr(a, b - a + 1);
    if (line.size() > 200)
      line = line.substr(0, 200) + "...";
    return line;
  } catch (...) {
    return ""; // a source we cannot read is no reason to fail
  }
}

// The cached node list of a module (built on first use). The caller has
// checked the index and that the module has a forward.
const nne__node_list *nne__module_node_list(nne_model_t *m, int module) {
  std::lock_guard<std::mutex> lock(m->nodes_mu);
  auto &slot = m->nodes[static_cast<size_t>(module)];
  if (!slot)
    slot = make_node_list(m, module);
  return slot.get();
}

int nne__check_module(const nne_model_t *m, int module, const char *what,
                 nne_err_t *err) {
  if (module < 0 || static_cast<size_t>(module) >= m->infos.size())
    return nne_err_set(err, NNE_EINVAL,
                       "%s: module %d does not exist (the model has %zu)", what,
                       module, m->infos.size());
  return 0;
}

std::string nne__module_label(const nne_model_t *m, int module) {
  const std::string &p = m->recs[static_cast<size_t>(module)].path;
  return p.empty() ? std::string("(root)") : p;
}

std::shared_ptr<Graph> nne__own_code(const nne_model_t *m, int module) {
  GraphFunction *fn = nne__forward_of(m, module);
  return fn == nullptr ? nullptr : nne__own_graph(fn);
}

extern "C" {

int nne_model_module_nodes(nne_model_t *m, int module,
                           const nne_node_info_t **nodes, size_t *n,
                           nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "module nodes", [&]() -> int {
    if (m == nullptr || nodes == nullptr || n == nullptr)
      return nne_err_set(err, NNE_EINVAL, "module nodes: NULL argument");
    int rc = nne__check_module(m, module, "module nodes", err);
    if (rc != 0)
      return rc;
    if (nne__forward_of(m, module) == nullptr)
      return nne_err_set(
          err, NNE_EINVAL, "module nodes: %s (%s) has no forward",
          nne__module_label(m, module).c_str(), m->recs[module].class_name.c_str());
    const nne__node_list *list = nne__module_node_list(m, module);
    *nodes = list->infos.empty() ? nullptr : list->infos.data();
    *n = list->infos.size();
    return 0;
  });
}

int nne_model_module_arity(nne_model_t *m, int module, int *n_inputs,
                           int *n_outputs, nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "module arity", [&]() -> int {
    if (m == nullptr || n_inputs == nullptr || n_outputs == nullptr)
      return nne_err_set(err, NNE_EINVAL, "module arity: NULL argument");
    int rc = nne__check_module(m, module, "module arity", err);
    if (rc != 0)
      return rc;
    GraphFunction *fn = nne__forward_of(m, module);
    if (fn == nullptr) {
      *n_inputs = -1;
      *n_outputs = -1;
      return 0;
    }
    const c10::FunctionSchema &schema = fn->getSchema();
    int in = static_cast<int>(schema.arguments().size()) - 1;
    int out = -1;
    if (schema.returns().size() == 1) {
      auto tt = schema.returns()[0].type()->cast<c10::TupleType>();
      out = tt ? static_cast<int>(tt->elements().size()) : 1;
    }
    *n_inputs = in;
    *n_outputs = out;
    return 0;
  });
}

} // extern "C"
