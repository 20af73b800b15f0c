// variant.cc — sites, hooks and variants (see engine.h): copies of forward
// with a hook op at each chosen site, built from the own code of own_code.cc.
//
// How a variant is built (field notes: shared/design/NOTES-torchscript.md):
//   1. Copy root.forward's graph. A method graph is first turned into the
//      module's *own code*: its helper functions (prim::CallFunction) and its
//      own helper methods (prim::CallMethod on self) are inlined; calls of
//      submodules stay calls. nne_model_module_nodes lists the same own code,
//      so "aten::softmax#0" means the same node in both.
//   2. Hooks for node sites go into the own code before anything else
//      changes it; the root's own input/output hooks come next.
//   3. Each submodule call is resolved to its instance path through its
//      prim::GetAttr chain. A call of a module with input/output sites gets
//      hooks around it; a call of a module with node sites, or with sites in
//      modules below it, is replaced by a copy of the callee built the same
//      way (recursively), so that scripted instances sharing one class graph
//      each get their own code. Hooks around a call are inserted before the
//      call is inlined: inlineCallTo destroys the call node and moves its
//      uses, hooks included, onto the inlined values. Every other call stays
//      a call: a variant holds only the code on the way to its sites.
//   4. The code gets the graph passes the profiling executor runs on the
//      model's own forward before its first call (same passes, same
//      operations, same numbers; optimize()), except the inlining, and not
//      as a whole: the own code of a module without node sites is taken
//      ready-optimized from a per-model cache (prepared_code()), the own code
//      of a module with node sites is optimized with its hooks before its
//      callees are inlined into it. The passes (alias analysis of the whole
//      graph, once per pass) were most of the cost of a build when they ran
//      on the whole variant.
//   5. The result is compiled straight into interpreter code
//      (torch::jit::Code), at once, so the first forward runs it at full
//      speed. A call left in it runs the callee's method through the
//      method's own executor: the module's own optimized code, built on the
//      method's first calls in the process and shared from then on by every
//      variant (see compile()). The code runs with the live module as self,
//      so it reads the model's weights; the model's own methods are never
//      edited (an edit after they ran would be ignored).
//
// Graph inspection (graph.cc) reads a variant's code through
// nne__variant_inspect, which runs the build again from the variant's sites
// with the method graphs as they are (no prepared code, no passes: the code
// before optimization) and with two additions: every node carries a tag (a
// Scope of its own, which inlining copies with the node) saying whose code
// it is, and the module being inspected is inlined wherever it is called,
// with markers where its call was. A real build does neither.
//
// The hook op nnedit::hook(Tensor x, int site) only carries a site number.
// What happens at a site is decided per call: nne_variant_forward puts the
// caller's callback in a thread-local context that the op's kernel reads.
#include "engine_internal.h"

#include <c10/core/InferenceMode.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/autocast.h>
#include <torch/csrc/jit/passes/canonicalize_graph_fuser_ops.h>
#include <torch/csrc/jit/passes/clear_undefinedness.h>
#include <torch/csrc/jit/passes/common_subexpression_elimination.h>
#include <torch/csrc/jit/passes/constant_pooling.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/decompose_ops.h>
#include <torch/csrc/jit/passes/inplace_check.h>
#include <torch/csrc/jit/passes/lower_grad_of.h>
#include <torch/csrc/jit/passes/lower_tuples.h>
#include <torch/csrc/jit/passes/peephole.h>
#include <torch/csrc/jit/passes/remove_expands.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/csrc/jit/runtime/instruction.h>
#include <torch/csrc/jit/runtime/interpreter.h>
#include <torch/library.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <unordered_map>
#include <vector>

using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::GraphFunction;
using torch::jit::Node;
using torch::jit::Scope;
using torch::jit::ScopePtr;
using torch::jit::Value;
using torch::jit::WithCurrentScope;
using torch::jit::WithInsertPoint;

namespace {

// One site of a variant, as nne_variant_build checked it.
struct site_rec {
  int module = -1;
  int kind = 0;
  int index = 0;
  std::string node_kind;
  int occurrence = 0;
  std::string name;
  int hooks = 0; // hooks inserted for it
};

} // namespace

struct nne_variant {
  std::atomic<long> refs{1};
  nne_model_t *model = nullptr; // one reference, dropped with the variant
  // The compiled code (see compile()) and the root forward's schema it
  // runs under.
  std::unique_ptr<torch::jit::Code> code;
  std::unique_ptr<c10::FunctionSchema> schema;
  std::string method; // the root method it is a copy of ("forward", ...)
  std::vector<std::string> site_names; // "transformer.h.0.attn:aten::softmax#0"
  // The sites again, for nne__variant_inspect, which rebuilds the variant's
  // code rather than keep a second copy of its graph in every variant.
  std::vector<site_rec> sites;
  double build_ms = 0;
  // Sizes for nne_variant_bytes: nodes of the optimized graph (the code
  // holds one copy of it) and instructions of the code.
  size_t graph_nodes = 0;
  size_t instructions = 0;

  ~nne_variant() {
    code.reset(); // the code before the model whose methods it calls
    nne_model_unref(model);
  }
};

namespace {

// ---- the hook op -----------------------------------------------------------

// One nne_variant_forward call on one thread. The hook kernel finds it
// through tl_run; a nested forward (a hook that runs another variant) saves
// and restores the outer one.
struct run_ctx {
  const nne_variant_t *v = nullptr;
  nne_hook_fn fn = nullptr;
  void *ctx = nullptr;
  int rc = 0;      // set by a hook that stops the forward
  std::string msg; // and why
};

thread_local run_ctx *tl_run = nullptr;

// "float32 [2, 7, 64] on cpu", in engine.h's dtype names.
std::string describe(const at::Tensor &t) {
  if (!t.defined())
    return "an undefined tensor";
  nne_dtype_t dt;
  std::string out = nne__dtype_from_scalar(t.scalar_type(), &dt)
                        ? nne_dtype_name(dt)
                        : c10::toString(t.scalar_type());
  out += " [";
  for (int64_t i = 0; i < t.dim(); i++)
    out += (i ? ", " : "") + std::to_string(t.size(i));
  return out + "] on " + t.device().str();
}

// Records why the forward stops and unwinds out of the interpreter. The
// interpreter rethrows whatever a kernel throws as a plain runtime_error with
// a traceback, so the code and message travel in the context, not in the
// exception.
[[noreturn]] void stop(run_ctx *r, int64_t site, int code,
                       const std::string &what) {
  const std::string &name = r->v->site_names[static_cast<size_t>(site)];
  r->rc = code;
  r->msg = "site " + std::to_string(site) + " (" + name + "): " + what;
  throw std::runtime_error(r->msg);
}

at::Tensor hook_kernel(const at::Tensor &x, int64_t site) {
  run_ctx *r = tl_run;
  if (r == nullptr || r->fn == nullptr || r->v == nullptr || site < 0 ||
      static_cast<size_t>(site) >= r->v->site_names.size())
    return x;
  nne_tensor_t *h = nullptr;
  nne_err_t err;
  if (nne__tensor_wrap(x, &h, &err, "value") != 0)
    stop(r, site, err.code, err.msg);
  nne_tensor_t *rep = nullptr;
  int rc = r->fn(r->ctx, static_cast<int>(site), h, &rep);
  nne_tensor_unref(h);
  nne__tensor_ptr own(rep); // the engine takes the replacement's reference
  if (rc < 0)
    stop(r, site, rc,
         std::string("the hook stopped the forward (") + nne_strerror(rc) +
             ")");
  if (rc > 0)
    stop(r, site, NNE_EINVAL,
         "the hook returned " + std::to_string(rc) +
             "; expected 0 or a negative NNE_E* code");
  if (rep == nullptr)
    return x;
  const at::Tensor &t = rep->t;
  if (!t.defined() || t.sizes() != x.sizes() ||
      t.scalar_type() != x.scalar_type() || t.device() != x.device())
    stop(r, site, NNE_EINVAL,
         "the replacement is " + describe(t) + "; the value is " + describe(x));
  return t;
}

// For a value typed Tensor? (GPT-2's padding mask): fires only when it holds
// a tensor.
nne_compat::optional<at::Tensor>
hook_opt_kernel(const nne_compat::optional<at::Tensor> &x, int64_t site) {
  if (!x.has_value() || !x->defined())
    return x;
  return hook_kernel(*x, site);
}

} // namespace

// CONSERVATIVE alias analysis marks the op as having side effects, so dead
// code elimination and the executor's passes keep it even where its output
// is unused (a hook at an output nobody reads).
TORCH_LIBRARY(nnedit, m) {
  m.def(torch::schema("nnedit::hook(Tensor x, int site) -> Tensor",
                      c10::AliasAnalysisKind::CONSERVATIVE),
        TORCH_FN(hook_kernel));
  m.def(torch::schema("nnedit::hook_opt(Tensor? x, int site) -> Tensor?",
                      c10::AliasAnalysisKind::CONSERVATIVE),
        TORCH_FN(hook_opt_kernel));
}

namespace {

const c10::Symbol k_hook = c10::Symbol::fromQualString("nnedit::hook");
const c10::Symbol k_hook_opt = c10::Symbol::fromQualString("nnedit::hook_opt");

// Nesting of method calls is bounded by the module tree (TorchScript has no
// recursion); the limit only guards against a malformed archive.
constexpr int k_max_depth = 256;

std::string type_str(const c10::TypePtr &t) {
  return t->annotation_str();
}

// ---- sites ---------------------------------------------------------------

std::string site_name(const nne_model_t *m, const site_rec &s) {
  std::string base = nne__module_label(m, s.module);
  switch (s.kind) {
  case NNE_SITE_INPUT: return base + ".input." + std::to_string(s.index);
  case NNE_SITE_OUTPUT: return base + ".output." + std::to_string(s.index);
  case NNE_SITE_NODE:
  case NNE_SITE_NODE_INPUT: {
    std::string n =
        base + ":" + s.node_kind + "#" + std::to_string(s.occurrence);
    if (s.kind == NNE_SITE_NODE_INPUT)
      return n + ".input." + std::to_string(s.index);
    return s.index == 0 ? n : n + ".output." + std::to_string(s.index);
  }
  default: return base;
  }
}

// Checks one site against the model statically; messages name it by
// position.
int check_site(nne_model_t *m, size_t i, site_rec *s, nne_err_t *err) {
  char where[32];
  std::snprintf(where, sizeof where, "site %zu", i);
  if (s->kind < NNE_SITE_INPUT || s->kind > NNE_SITE_NODE_INPUT)
    return nne_err_set(err, NNE_EINVAL,
                       "%s: kind %d is not a site kind (1 input, 2 output, "
                       "3 node, 4 node input)",
                       where, s->kind);
  int rc = nne__check_module(m, s->module, where, err);
  if (rc != 0)
    return rc;
  s->name = site_name(m, *s);
  const char *nm = s->name.c_str();
  const nne_module_info_t &info = m->infos[static_cast<size_t>(s->module)];
  if (info.call_index < 0)
    return nne_err_set(err, NNE_EINVAL,
                       "%s (%s): forward never calls this module", where, nm);
  GraphFunction *fn = nne__forward_of(m, s->module);
  if (fn == nullptr)
    return nne_err_set(err, NNE_EINVAL, "%s (%s): the module has no forward",
                       where, nm);
  if (s->index < 0)
    return nne_err_set(err, NNE_EINVAL, "%s (%s): index %d is negative", where,
                       nm, s->index);
  const c10::FunctionSchema &schema = fn->getSchema();
  if (s->kind == NNE_SITE_INPUT) {
    size_t n_in = schema.arguments().size() - 1;
    if (static_cast<size_t>(s->index) >= n_in)
      return nne_err_set(err, NNE_EINVAL,
                         "%s (%s): forward takes %zu argument%s after self",
                         where, nm, n_in, n_in == 1 ? "" : "s");
    const c10::Argument &a = schema.arguments()[s->index + 1];
    if (!nne__is_hookable_type(a.type()))
      return nne_err_set(err, NNE_EINVAL,
                         "%s (%s): argument '%s' is %s, not a tensor", where,
                         nm, a.name().c_str(), type_str(a.type()).c_str());
    return 0;
  }
  if (s->kind == NNE_SITE_OUTPUT) {
    c10::TypePtr t = schema.returns().empty() ? c10::NoneType::get()
                                              : schema.returns()[0].type();
    if (auto tt = t->cast<c10::TupleType>()) {
      size_t n_out = tt->elements().size();
      if (static_cast<size_t>(s->index) >= n_out)
        return nne_err_set(err, NNE_EINVAL,
                           "%s (%s): forward returns a tuple of %zu", where, nm,
                           n_out);
      t = tt->elements()[s->index];
    } else if (s->index != 0) {
      return nne_err_set(err, NNE_EINVAL,
                         "%s (%s): forward returns one %s, not a tuple", where,
                         nm, type_str(t).c_str());
    }
    if (!nne__is_hookable_type(t))
      return nne_err_set(err, NNE_EINVAL,
                         "%s (%s): output %d is %s, not a tensor", where, nm,
                         s->index, type_str(t).c_str());
    return 0;
  }
  if (s->node_kind.empty())
    return nne_err_set(err, NNE_EINVAL, "%s (%s): node_kind is missing", where,
                       nm);
  if (s->occurrence < 0)
    return nne_err_set(err, NNE_EINVAL, "%s (%s): occurrence %d is negative",
                       where, nm, s->occurrence);
  const nne__node_list *list = nne__module_node_list(m, s->module);
  const nne_node_info_t *hit = nullptr;
  int count = 0;
  for (const nne_node_info_t &ni : list->infos) {
    if (s->node_kind != ni.kind)
      continue;
    if (count == s->occurrence)
      hit = &ni;
    count++;
  }
  if (hit == nullptr)
    return nne_err_set(err, NNE_EINVAL,
                       "%s (%s): the module's own code has %d %s", where, nm,
                       count, s->node_kind.c_str());
  bool out = s->kind == NNE_SITE_NODE;
  int n = out ? hit->n_outputs : hit->n_inputs;
  unsigned bits = out ? hit->tensor_outputs : hit->tensor_inputs;
  if (s->index >= n)
    return nne_err_set(
        err, NNE_EINVAL, "%s (%s): the node has %d %s", where, nm, n,
        out ? (n == 1 ? "output" : "outputs") : (n == 1 ? "input" : "inputs"));
  if (s->index >= 32 || (bits & (1u << s->index)) == 0)
    return nne_err_set(err, NNE_EINVAL, "%s (%s): %s %d is not a tensor", where,
                       nm, out ? "output" : "input", s->index);
  return 0;
}

size_t count_nodes(const Block *b) {
  size_t n = 0;
  for (const Node *node : b->nodes()) {
    n++;
    for (const Block *sub : node->blocks())
      n += count_nodes(sub);
  }
  return n;
}

// The graph passes the executor would run on code before its first call,
// minus the inlining: GraphFunction::optimized_graph's preoptimization
// (1.13's preoptimizeGraph: Inline, PeepholeOptimize, constant propagation
// on immutable types, Autocast, ConstantPooling) without its Inline, then
// the profiling executor's input-independent passes (1.13's
// runProfilingInsensitiveOptimizations, in its order). Code inlined into a
// variant gets the same operations, hence the same numbers, as in the
// model's own forward (GPT-2's addmm is split into mm + add by DecomposeOps
// in both); a call left in a variant runs the callee's method through its
// own executor, which runs the same passes on it.
void optimize(std::shared_ptr<Graph> &g) {
  torch::jit::PeepholeOptimize(g, true);
  torch::jit::ConstantPropagationImmutableTypes(g);
  torch::jit::Autocast(g);
  torch::jit::ConstantPooling(g);
  torch::jit::LowerGradOf(*g);
  torch::jit::ClearUndefinedness(g);
  torch::jit::RemoveExpands(g);
  torch::jit::CanonicalizeOps(g);
  torch::jit::EliminateDeadCode(g);
  torch::jit::DecomposeOps(g);
  torch::jit::ConstantPropagation(g);
  torch::jit::EliminateDeadCode(g);
  torch::jit::EliminateCommonSubexpression(g);
  torch::jit::ConstantPooling(g);
  torch::jit::PeepholeOptimize(g);
  torch::jit::EliminateDeadCode(g);
  torch::jit::LowerSimpleTuples(g);
  torch::jit::CheckInplace(g);
}

// The code of a method ready to be inlined into a variant where the
// module has no node sites: its own code (helpers inlined, submodule calls
// left as calls) after optimize(). Made once per method and kept with the
// model; every build copies it. A variant's code then consists of copies of
// code that has had the passes already, plus hooks, plus the own code of the
// modules with node sites (optimized at build, with their hooks), so the
// variant as a whole needs no pass: the passes cost in proportion to the
// node-site modules' own code, not to what the variant inlines.
std::shared_ptr<Graph> prepared_code(nne_model_t *m, GraphFunction *fn) {
  {
    std::lock_guard<std::mutex> lock(m->prepared_mu);
    auto it = m->prepared.find(fn);
    if (it != m->prepared.end())
      return it->second;
  }
  // Made without the lock: two builds may both make it; the first kept wins.
  std::shared_ptr<Graph> g = nne__own_graph(fn);
  optimize(g);
  std::lock_guard<std::mutex> lock(m->prepared_mu);
  return m->prepared.emplace(fn, std::move(g)).first->second;
}

// ---- building --------------------------------------------------------------

struct builder {
  nne_model_t *m;
  std::vector<site_rec> &sites;
  std::vector<std::vector<int>> io;  // per module: its input/output sites
  std::vector<std::vector<int>> own; // per module: its node sites
  std::vector<char> below;           // per module: a site in a descendant

  // A real build inlines prepared code where it can (see process()); a
  // build for inspection, and the fallback in nne_variant_build, copy every
  // method graph as it is.
  bool prepared = false;

  // Inspection only (nne__variant_inspect): where the tags go, a module
  // whose forward is inlined wherever it is called, and per module the
  // copies of its code made so far. Off (nullptr, -1) for a real build,
  // which then does exactly what it did before inspection existed.
  nne__inspection *insp = nullptr;
  int force = -1;
  std::vector<int> copies;
  int boundaries = 0;
  std::map<std::pair<int, int>, ScopePtr> inserted_scopes;

  builder(nne_model_t *model, std::vector<site_rec> &s)
      : m(model), sites(s), io(model->infos.size()), own(model->infos.size()),
        below(model->infos.size(), 0), copies(model->infos.size(), 0) {
    for (size_t i = 0; i < sites.size(); i++) {
      const site_rec &r = sites[i];
      if (r.kind == NNE_SITE_INPUT || r.kind == NNE_SITE_OUTPUT)
        io[r.module].push_back(static_cast<int>(i));
      else
        own[r.module].push_back(static_cast<int>(i));
      for (int p = m->infos[r.module].parent; p >= 0; p = m->infos[p].parent)
        below[p] = 1;
    }
  }

  // A hook on v, inserted at the graph's insertion point. Its output has
  // the schema's type (Tensor, Tensor?), not v's: a traced value's type
  // records strides that a replacement need not have.
  Value *hook(Graph &g, Value *v, int site) {
    Value *out = g.insert(
        nne__is_tensor_type(v->type()) ? k_hook : k_hook_opt,
        {torch::jit::NamedValue(v),
         torch::jit::NamedValue(c10::IValue(static_cast<int64_t>(site)))});
    sites[site].hooks++;
    return out;
  }

  // Hooks for `ids` in order on v, inserted before `before`; returns the
  // last hook's value (v itself when there is nothing to hook).
  Value *chain(Graph &g, Value *v, const std::vector<int> &ids, Node *before) {
    if (ids.empty())
      return v;
    if (!nne__is_hookable_type(v->type())) {
      // Statically None here (an Optional argument passed as None): the
      // site exists but cannot fire at this call.
      for (int id : ids)
        sites[id].hooks++;
      return v;
    }
    WithInsertPoint guard(before);
    for (int id : ids)
      v = hook(g, v, id);
    return v;
  }

  // The sites among `ids` of `kind` with index `index`.
  std::vector<int> pick(const std::vector<int> &ids, int kind, int index) {
    std::vector<int> out;
    for (int id : ids)
      if (sites[id].kind == kind && sites[id].index == index)
        out.push_back(id);
    return out;
  }

  // Hooks on a value that leaves a module: v, produced before `before`,
  // whose uses from `before` on are replaced by the hooked value (tuples
  // are unpacked, hooked per element and rebuilt). Returns the new value.
  Value *hook_output(Graph &g, Value *v, const std::vector<int> &ids,
                     Node *before) {
    bool any = false;
    for (int id : ids)
      any = any || sites[id].kind == NNE_SITE_OUTPUT;
    if (!any)
      return v;
    if (v->type()->kind() == c10::TypeKind::TupleType) {
      WithInsertPoint guard(before);
      Node *un = g.insertNode(g.createTupleUnpack(v));
      std::vector<Value *> elems(un->outputs().begin(), un->outputs().end());
      for (size_t k = 0; k < elems.size(); k++)
        elems[k] =
            chain(g, elems[k], pick(ids, NNE_SITE_OUTPUT, static_cast<int>(k)),
                  before);
      return g.insertNode(g.createTuple(elems))->output();
    }
    return chain(g, v, pick(ids, NNE_SITE_OUTPUT, 0), before);
  }

  // Hooks around one call of module `mod`: on the arguments, then on the
  // result.
  void wrap_call(Graph &g, Node *call, int mod) {
    const std::vector<int> &ids = io[mod];
    for (size_t i = 1; i < call->inputs().size(); i++) {
      std::vector<int> at = pick(ids, NNE_SITE_INPUT, static_cast<int>(i - 1));
      if (!at.empty())
        call->replaceInput(i, chain(g, call->input(i), at, call));
    }
    Value *out = call->output();
    Node *after = call->next();
    Value *hooked = hook_output(g, out, ids, after);
    if (hooked != out)
      out->replaceAllUsesAfterNodeWith(hooked->node(), hooked);
  }

  // The root's own arguments and result.
  void wrap_root(Graph &g) {
    const std::vector<int> &ids = io[0];
    if (ids.empty())
      return;
    Node *first = g.block()->nodes().front();
    for (size_t i = 1; i < g.inputs().size(); i++) {
      std::vector<int> at = pick(ids, NNE_SITE_INPUT, static_cast<int>(i - 1));
      Value *in = g.inputs()[i];
      Value *hooked = chain(g, in, at, first);
      if (hooked != in)
        in->replaceAllUsesAfterNodeWith(hooked->node(), hooked);
    }
    Node *ret = g.return_node();
    Value *hooked = hook_output(g, ret->input(0), ids, ret);
    ret->replaceInput(0, hooked);
  }

  // Hooks at the node sites of module `mod` in its own code g.
  void hook_nodes(Graph &g, int mod) {
    const std::vector<int> &ids = own[mod];
    if (ids.empty())
      return;
    std::vector<Node *> nodes;
    nne__list_nodes(g.block(), &nodes);
    // Targets first: hooks and their constants are nodes too.
    std::vector<Node *> target(ids.size(), nullptr);
    for (size_t k = 0; k < ids.size(); k++) {
      const site_rec &s = sites[ids[k]];
      int seen = 0;
      for (Node *n : nodes) {
        if (s.node_kind != n->kind().toQualString())
          continue;
        if (seen++ == s.occurrence) {
          target[k] = n;
          break;
        }
      }
      if (target[k] == nullptr) // check_site listed the same own code
        throw std::logic_error("site " + s.name + ": node not found");
    }
    for (size_t k = 0; k < ids.size(); k++) {
      const site_rec &s = sites[ids[k]];
      Node *n = target[k];
      if (s.kind == NNE_SITE_NODE_INPUT) {
        n->replaceInput(s.index, chain(g, n->input(s.index), {ids[k]}, n));
      } else {
        Value *v = n->output(s.index);
        Value *hooked = chain(g, v, {ids[k]}, n->next());
        if (hooked != v)
          v->replaceAllUsesAfterNodeWith(hooked->node(), hooked);
      }
    }
  }

  struct call_rec {
    Node *node;
    int mod;
    std::string method;
  };

  // ---- tags (inspection only) ----

  // A fresh scope carrying tag t. Every node gets its own scope object, so
  // that the address identifies the node's tag after inlineCallTo has
  // cloned the node into its caller (a clone keeps its source's scope).
  ScopePtr tag_scope(const nne__node_tag &t) {
    static const c10::Symbol name = c10::Symbol::scope("nnedit");
    ScopePtr sp = c10::make_intrusive<Scope>(ScopePtr(), name);
    insp->tags.emplace(sp.get(), t);
    insp->scopes.push_back(sp);
    return sp;
  }

  // Tags the nodes of g, module mod's code (copy `copy`), as its own;
  // their index is their position in the own-code list where g is mod's
  // forward (g was made the way nne__own_code makes it).
  void tag_own(Graph &g, int mod, bool is_forward, int copy) {
    std::vector<Node *> nodes;
    nne__list_nodes(g.block(), &nodes);
    const nne__node_list *pristine = is_forward ? nne__module_node_list(m, mod) : nullptr;
    for (size_t i = 0; i < nodes.size(); i++) {
      nne__node_tag t;
      t.role = nne__node_tag::own;
      t.module = mod;
      t.copy = copy;
      t.forward = is_forward;
      // A node that is not the pristine one at that index gets no selector
      // rather than a wrong one.
      if (pristine != nullptr && i < pristine->infos.size() &&
          std::strcmp(pristine->infos[i].kind,
                      nodes[i]->kind().toQualString()) == 0)
        t.own_index = static_cast<int>(i);
      nodes[i]->setScope(tag_scope(t));
    }
  }

  // While alive, nodes created in g are tagged as inserted for site(s) of
  // module mod (copy `copy`). Nothing when not inspecting.
  std::unique_ptr<WithCurrentScope> inserting(Graph &g, int mod, int copy) {
    if (insp == nullptr)
      return nullptr;
    ScopePtr &sp = inserted_scopes[{mod, copy}];
    if (!sp) {
      nne__node_tag t;
      t.role = nne__node_tag::inserted;
      t.module = mod;
      t.copy = copy;
      sp = tag_scope(t);
    }
    return std::make_unique<WithCurrentScope>(g, sp);
  }

  // Marks where the code of a call about to be inlined begins and ends:
  // a marker before the call taking its arguments and one after it taking
  // its result (inlineCallTo moves that use onto the inlined result). The
  // markers exist only in an inspected graph, which never runs.
  void mark_call(Graph &g, Node *call, int mod, int copy, bool is_forward,
                 int callee) {
    static const c10::Symbol k_begin =
        c10::Symbol::fromQualString("nnedit::inlined_call");
    static const c10::Symbol k_end =
        c10::Symbol::fromQualString("nnedit::inlined_return");
    nne__node_tag t;
    t.role = nne__node_tag::call_begin;
    t.module = mod;
    t.copy = copy;
    auto it = insp->tags.find(call->scope().get());
    if (it != insp->tags.end() && it->second.role == nne__node_tag::own)
      t.own_index = it->second.own_index;
    t.callee = callee;
    t.forward = is_forward;
    t.boundary = boundaries++;
    Node *b = g.create(k_begin, call->inputs(), 0);
    b->s_(c10::attr::name, call->s(c10::attr::name));
    b->setScope(tag_scope(t));
    b->insertBefore(call);
    t.role = nne__node_tag::call_end;
    Node *e = g.create(k_end, call->outputs(), 0);
    e->setScope(tag_scope(t));
    e->insertAfter(call);
  }

  // The module calls of node n and of the nodes in its blocks, in code
  // whose `self` is the value self, instance path `base`.
  void collect_calls(Node *n, Value *self, const std::string &base,
                     std::vector<call_rec> *out) {
    // Calls on self were inlined as own code where they could be; one
    // left (not a graph) is not a module call.
    if (n->kind() == c10::prim::CallMethod && !n->inputs().empty() &&
        n->input(0) != self) {
      std::string path;
      if (nne__module_path_of(n->input(0), self, base, &path)) {
        auto it = m->by_path.find(path);
        if (it != m->by_path.end())
          out->push_back({n, it->second, n->s(c10::attr::name)});
      }
    }
    for (Block *sub : n->blocks())
      for (Node *inner : sub->nodes())
        collect_calls(inner, self, base, out);
  }

  // Makes g the code this variant runs for one instance, module `mod`:
  // g is a copy of one of its method graphs as it is (`raw`), or a copy of
  // the method's prepared code (prepared_code(): own code, optimized; only
  // for the root, in a real build where the root has no node sites: callees
  // get theirs through inline_prepared()). `is_forward`: g is mod's forward,
  // so mod's node sites apply. `copy` numbers the copies of mod's code
  // (inspection only).
  void process(std::shared_ptr<Graph> &g, int mod, bool is_forward, int depth,
               int copy, bool raw) {
    if (depth > k_max_depth)
      throw std::runtime_error("module calls nest more than " +
                               std::to_string(k_max_depth) + " deep");
    if (raw)
      nne__inline_helpers(*g);
    if (insp != nullptr)
      tag_own(*g, mod, is_forward, copy);
    {
      auto tagging = inserting(*g, mod, copy);
      if (is_forward && raw)
        hook_nodes(*g, mod);
      if (depth == 0)
        wrap_root(*g);
    }
    // Own code copied as it is gets the passes here, in a real build that
    // uses prepared code, before any callee is inlined into it: then no
    // code is optimized twice, and the variant as a whole needs no pass.
    if (raw && prepared)
      optimize(g);
    std::vector<call_rec> calls;
    for (Node *n : g->block()->nodes())
      collect_calls(n, g->inputs()[0], m->recs[mod].path, &calls);
    handle_calls(*g, calls, mod, is_forward, depth, copy);
  }

  // Inlines the prepared code of `call`'s callee, method `callee` of module
  // `mod`, into g in place of the call (one copy of it, where process()
  // would copy it twice), and processes the submodule calls in it there.
  void inline_prepared(Graph &g, Node *call, GraphFunction *callee, int mod,
                       int depth) {
    if (depth > k_max_depth)
      throw std::runtime_error("module calls nest more than " +
                               std::to_string(k_max_depth) + " deep");
    std::shared_ptr<Graph> code = prepared_code(m, callee);
    // The callee's code lands between these two (hooks on the call's
    // arguments sit before `before`, hooks on its result from `after` on).
    Node *before = call->prev();
    Node *after = call->next();
    Value *self = call->input(0);
    torch::jit::inlineCallTo(call, callee, code.get());
    std::vector<call_rec> calls;
    for (Node *n = before->next(); n != after; n = n->next())
      collect_calls(n, self, m->recs[mod].path, &calls);
    handle_calls(g, calls, mod, false, depth, 0);
  }

  // Hooks around the module calls `calls` found in the code of module
  // `mod` (copy `copy`) in g, and the callees inlined where a site is in or
  // below them. `is_forward`: that code is mod's forward (inspection only).
  void handle_calls(Graph &g, std::vector<call_rec> &calls, int mod,
                    bool is_forward, int depth, int copy) {
    for (call_rec &c : calls) {
      bool fwd = nne__forward_like(c.method);
      int callee_copy = insp != nullptr ? copies[c.mod]++ : 0;
      if (fwd && !io[c.mod].empty()) {
        auto tagging = inserting(g, c.mod, callee_copy);
        wrap_call(g, c.node, c.mod);
      }
      bool node_sites = fwd && !own[c.mod].empty();
      if (!(node_sites || below[c.mod] || (fwd && c.mod == force)))
        continue;
      // The call's receiver type is what this graph runs.
      GraphFunction *callee =
          nne__method_of(c.node->input(0)->type()->cast<c10::ClassType>(), c.method);
      if (callee == nullptr)
        continue; // not a graph: nothing of ours can be inside
      if (prepared && !node_sites) {
        inline_prepared(g, c.node, callee, c.mod, depth + 1);
        continue;
      }
      if (insp != nullptr)
        mark_call(g, c.node, mod, copy, is_forward, c.mod);
      std::shared_ptr<Graph> body = callee->graph()->copy();
      process(body, c.mod, fwd, depth + 1, callee_copy, true);
      torch::jit::inlineCallTo(c.node, callee, body.get());
    }
  }
};

// Optimizes g and compiles it into v's interpreter code, at once: the first
// forward runs at full speed.
//
// The code is built directly (torch::jit::Code), not through a
// GraphFunction: a GraphFunction's executor plans from an inlined copy of
// its graph (GraphFunction::optimized_graph inlines every call), which made
// every variant the whole model again, and the callees' code in it would
// then miss passes their own executors run (their addmm stayed whole: the
// logits moved by ~5e-6). In the code, a call the builder kept (a module
// with no site below it) is a CALL of the callee's method, which the
// interpreter runs with that method's own executor (GraphFunction::call):
// the module's own code, optimized by the profiling executor on the
// method's first two calls in the process and shared from then on by every
// variant (and, for a scripted model, by every instance of the class). A
// variant therefore holds only the code it inlined and does not grow when
// it runs; the callees' executors belong to the model.
void compile(nne_variant_t *v, std::shared_ptr<Graph> g,
             const c10::FunctionSchema &schema, bool optimized) {
  if (!optimized)
    optimize(g);
  v->graph_nodes = count_nodes(g->block());
  // Code copies the graph; g is dropped when this returns.
  v->code = std::make_unique<torch::jit::Code>(g, "__nnedit__.Variant.forward");
  v->schema = std::make_unique<c10::FunctionSchema>(schema);
  v->instructions = v->code->instructions().size();
}

} // namespace

// ---- for graph.cc --------------------------------------------------------

bool nne__is_hook(const Node *n) {
  return n->kind() == k_hook || n->kind() == k_hook_opt;
}

int nne__variant_inspect(nne_model_t *m, const nne_variant_t *v, int module,
                         nne__inspection *out, nne_err_t *err) {
  if (v->model != m)
    return nne_err_set(err, NNE_EINVAL,
                       "the variant was built for another model");
  GraphFunction *root = nne__method_of(m->mods[0].type(), v->method);
  if (root == nullptr)
    return nne_err_set(err, NNE_EINVAL, "the model has no %s",
                       v->method.c_str());
  // The same build as nne_variant_build's, from the same sites (hook
  // counts start again from zero in this copy of them).
  std::vector<site_rec> recs = v->sites;
  for (site_rec &r : recs)
    r.hooks = 0;
  std::shared_ptr<Graph> g = root->graph()->copy();
  builder b(m, recs);
  b.insp = out;
  b.force = module;
  // The way down to the module is inlined too, so that its code is part of
  // the graph wherever forward reaches it.
  for (int p = m->infos[static_cast<size_t>(module)].parent; p >= 0;
       p = m->infos[static_cast<size_t>(p)].parent)
    b.below[static_cast<size_t>(p)] = 1;
  b.copies[0] = 1;
  b.process(g, 0, true, 0, 0, true);
  out->graph = std::move(g);
  return 0;
}

extern "C" {

int nne_variant_build(nne_model_t *m, const nne_site_t *sites, size_t n,
                      nne_variant_t **out, nne_err_t *err) {
  return nne_variant_build_method(m, "forward", sites, n, out, err);
}

int nne_variant_build_method(nne_model_t *m, const char *method,
                             const nne_site_t *sites, size_t n,
                             nne_variant_t **out, nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "variant", [&]() -> int {
    auto t0 = std::chrono::steady_clock::now();
    if (m == nullptr || out == nullptr || (n > 0 && sites == nullptr))
      return nne_err_set(err, NNE_EINVAL, "variant: NULL argument");
    std::vector<site_rec> recs(n);
    for (size_t i = 0; i < n; i++) {
      site_rec &r = recs[i];
      r.module = sites[i].module;
      static_assert(sizeof r.kind == sizeof sites[i].kind,
                    "nne_site_kind_t is int-sized");
      // Read as the int it is: a C caller may pass any number.
      std::memcpy(&r.kind, &sites[i].kind, sizeof r.kind);
      r.index = sites[i].index;
      if (sites[i].node_kind != nullptr)
        r.node_kind = sites[i].node_kind;
      r.occurrence = sites[i].node_occurrence;
      int rc = check_site(m, i, &r, err);
      if (rc != 0)
        return rc;
    }

    if (method == nullptr)
      return nne_err_set(err, NNE_EINVAL, "variant: NULL method");
    GraphFunction *root = nne__method_of(m->mods[0].type(), method);
    if (root == nullptr)
      return nne_err_set(err, NNE_EINVAL, "variant: the model has no %s",
                         method);

    // From prepared code (see prepared_code()). A module call that the
    // passes removed from prepared code (a branch that is never taken)
    // gets no hook there; only the build from the method graphs as they
    // are can tell such a site from one that has no call at all, so a
    // site without a hook is decided by that build, as it was before
    // prepared code existed, and that build is the variant.
    std::shared_ptr<Graph> g;
    bool prepared = true;
    for (int attempt = 0; attempt < 2; attempt++) {
      prepared = attempt == 0;
      for (site_rec &r : recs)
        r.hooks = 0;
      builder b(m, recs);
      b.prepared = prepared;
      bool raw = !prepared || !b.own[0].empty();
      g = raw ? root->graph()->copy() : prepared_code(m, root)->copy();
      b.process(g, 0, true, 0, 0, raw);
      bool all_hooked = true;
      for (const site_rec &r : recs)
        all_hooked = all_hooked && r.hooks > 0;
      if (all_hooked)
        break;
      if (!prepared)
        for (size_t i = 0; i < n; i++)
          if (recs[i].hooks == 0)
            return nne_err_set(err, NNE_EINVAL,
                               "site %zu (%s): no call of the module was "
                               "found in forward's code",
                               i, recs[i].name.c_str());
    }
#if !defined(NDEBUG) || defined(__SANITIZE_ADDRESS__)
    // A check of the builder (a few ms on a large variant): in debug and
    // sanitizer builds only.
    g->lint();
#endif

    std::unique_ptr<nne_variant_t> v(new nne_variant_t);
    compile(v.get(), std::move(g), root->getSchema(), prepared);
    v->method = method;
    v->sites = recs;
    v->site_names.reserve(n);
    for (site_rec &r : recs)
      v->site_names.push_back(std::move(r.name));
    v->model = nne_model_ref(m);
    v->build_ms = std::chrono::duration<double, std::milli>(
                      std::chrono::steady_clock::now() - t0)
                      .count();
    *out = v.release();
    return 0;
  });
}

nne_variant_t *nne_variant_ref(nne_variant_t *v) {
  if (v != nullptr)
    v->refs.fetch_add(1, std::memory_order_relaxed);
  return v;
}

void nne_variant_unref(nne_variant_t *v) {
  if (v == nullptr)
    return;
  if (v->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    try {
      delete v;
    } catch (...) {
    }
  }
}

double nne_variant_build_ms(const nne_variant_t *v) {
  return v->build_ms;
}

size_t nne_variant_bytes(const nne_variant_t *v) {
  // An estimate: libtorch cannot say what a graph or its code allocated.
  // The variant holds its code: one copy of its optimized graph plus the
  // instructions. On the GPT-2-small fixture the heap grew by 0.95-1.03 KB
  // per node of that graph for a build (95-1,569 nodes; bench_edits
  // --cold). It does not grow when the variant runs: the executors of the
  // methods it calls belong to the model.
  return v->graph_nodes * 1000 +
         v->instructions * sizeof(torch::jit::Instruction);
}

} // extern "C"

namespace {

// Runs v's code on `args` (after self) with fn/ctx at its hooks; the
// result is the root method's return value. A hook's own failure beats
// the interpreter's relay of it.
int run_variant(nne_variant_t *v, std::vector<c10::IValue> &args,
                nne_hook_fn fn, void *ctx, c10::IValue *out, nne_err_t *err) {
  run_ctx r;
  r.v = v;
  r.fn = fn;
  r.ctx = ctx;
  struct scope {
    run_ctx *saved;
    explicit scope(run_ctx *now) : saved(tl_run) {
      tl_run = now;
    }
    ~scope() {
      tl_run = saved;
    }
  } in_run(&r);

  torch::jit::Stack stack;
  stack.reserve(args.size() + 1);
  stack.emplace_back(v->model->module._ivalue());
  for (c10::IValue &a : args)
    stack.push_back(std::move(a));
  v->schema->checkAndNormalizeInputs(stack);
  try {
    torch::jit::InterpreterState(*v->code).run(stack);
  } catch (...) {
    if (r.rc != 0)
      return nne_err_set(err, r.rc, "forward: %s", r.msg.c_str());
    throw;
  }
  if (r.rc != 0) // a hook failed and the model caught it (it cannot: no
                 // try in TorchScript; kept for safety)
    return nne_err_set(err, r.rc, "forward: %s", r.msg.c_str());
  *out = std::move(stack.back());
  return 0;
}

} // namespace

extern "C" {

int nne_variant_forward(nne_variant_t *v, const nne_tensor_t *input_ids,
                        const nne_tensor_t *attention_mask, nne_hook_fn fn,
                        void *ctx, nne_tensor_t **logits, nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "forward", [&]() -> int {
    if (v == nullptr || input_ids == nullptr || logits == nullptr)
      return nne_err_set(err, NNE_EINVAL, "forward: NULL argument");
    if (v->method != "forward")
      return nne_err_set(err, NNE_EINVAL,
                         "forward: the variant is a copy of %s",
                         v->method.c_str());
    // Inference mode is thread-local: set it for this call on this thread.
    c10::InferenceMode guard;
    std::vector<c10::IValue> args;
    int rc = nne__forward_args(v->model, input_ids, attention_mask, &args, err);
    if (rc != 0)
      return rc;
    c10::IValue out;
    rc = run_variant(v, args, fn, ctx, &out, err);
    if (rc != 0)
      return rc;
    return nne__forward_logits(out, input_ids, logits, err);
  });
}

int nne_variant_forward_cached(nne_variant_t *v, const nne_tensor_t *input_ids,
                               const nne_tensor_t *attention_mask,
                               const nne_tensor_t *position_ids,
                               nne_tensor_t *const *past, size_t n_past,
                               nne_hook_fn fn, void *ctx,
                               nne_tensor_t **logits, nne_tensor_t **present,
                               nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "cached forward", [&]() -> int {
    if (v == nullptr)
      return nne_err_set(err, NNE_EINVAL, "cached forward: NULL variant");
    if (v->method == "forward")
      return nne_err_set(err, NNE_EINVAL,
                         "cached forward: the variant is a copy of forward");
    c10::InferenceMode guard;
    std::vector<c10::IValue> args;
    int rc = nne__cached_args(v->model, input_ids, attention_mask,
                              position_ids, past, n_past, &args, err);
    if (rc != 0)
      return rc;
    c10::IValue out;
    rc = run_variant(v, args, fn, ctx, &out, err);
    if (rc != 0)
      return rc;
    return nne__cached_outputs(out, input_ids, n_past, logits, present, err);
  });
}

} // extern "C"
