// call_module.cc — calling one submodule's forward on its own
// (nne_model_call_module): a trace's "module" function, which runs a module
// of the model on values the trace has (a logit lens: the final norm and
// lm_head on a middle layer's residual). Split from trace_ops.cc, whose
// table of tensor functions it does not use.
#include "engine_internal.h"

#include <c10/core/InferenceMode.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

// ---- calling a submodule -------------------------------------------------

// Output element 0 of a module's result: the tensor itself, or a tuple's or
// list's first element when that is a tensor.
bool first_tensor(const c10::IValue &out, at::Tensor *t) {
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
  if (out.isList()) {
    c10::List<c10::IValue> l = out.toList();
    if (l.size() > 0 && l.get(0).isTensor()) {
      *t = l.get(0).toTensor();
      return true;
    }
  }
  return false;
}

// The parent of the module at `path` ("" is the root, which has none: -1).
int parent_of(const nne_model_t *m, const std::string &path) {
  if (path.empty())
    return -1;
  size_t dot = path.rfind('.');
  auto it = m->by_path.find(dot == std::string::npos ? std::string()
                                                      : path.substr(0, dot));
  return it != m->by_path.end() ? it->second : -1;
}

// The arguments of `module`'s forward that its caller takes from its own
// attributes rather than from the data flow. A traced model whose
// lm_head is tied to the embedding records the tie at the call site: the
// parent passes `self.transformer.wte.weight` into lm_head's forward as an
// argument (torch.jit.trace lifts the shared parameter). Calling such a
// module from a trace must supply those the same way, or a logit lens
// could not call lm_head at all. bound[j] (one per parameter after self)
// is the value the parent's code passes there when it is a chain of
// attributes of the parent's self that ends in a tensor, else None. Only
// the parent's first call of the module's forward is read: a module
// called twice with different attributes is not one a lens calls.
bool bindings_from(nne_model_t *m, torch::jit::Graph &g, int module,
                   int parent, std::vector<c10::IValue> *bound);

void call_site_bindings(nne_model_t *m, int module, size_t n_params,
                        std::vector<c10::IValue> *bound) {
  bound->assign(n_params, c10::IValue());
  int parent = parent_of(m, m->recs[module].path);
  if (parent < 0)
    return;
  // The parent's forward graph as it is, read in place: a traced model's
  // calls are all there. Only when the call is not (a scripted parent that
  // calls the module from a helper method) is its own code, a copy with the
  // helpers inlined, made and read.
  auto fwd = // an optional Method
      m->mods[parent].find_method("forward");
  if (fwd && bindings_from(m, *fwd->graph(), module, parent, bound))
    return;
  std::shared_ptr<torch::jit::Graph> g = nne__own_code(m, parent);
  if (g)
    bindings_from(m, *g, module, parent, bound);
}

// call_site_bindings' reading of one graph of the parent's code: false when
// the graph does not call the module's forward.
bool bindings_from(nne_model_t *m, torch::jit::Graph &g, int module,
                   int parent, std::vector<c10::IValue> *bound) {
  const size_t n_params = bound->size();
  const std::string &path = m->recs[module].path;
  if (g.inputs().empty())
    return false;
  torch::jit::Value *self = g.inputs()[0];
  const std::string &base = m->recs[parent].path;
  for (torch::jit::Node *n : g.nodes()) {
    if (n->kind() != c10::prim::CallMethod || n->inputs().empty() ||
        n->s(c10::attr::name) != "forward")
      continue;
    std::string callee;
    if (!nne__module_path_of(n->input(0), self, base, &callee) ||
        callee != path)
      continue;
    for (size_t j = 0; j < n_params && j + 1 < n->inputs().size(); j++) {
      // The attribute chain from the parent's self, outermost last.
      std::vector<std::string> names;
      torch::jit::Value *v = n->input(j + 1);
      while (v != self && v->node()->kind() == c10::prim::GetAttr) {
        names.push_back(v->node()->s(c10::attr::name));
        v = v->node()->input(0);
      }
      if (v != self || names.empty())
        continue;
      c10::IValue cur = m->mods[parent]._ivalue();
      bool ok = true;
      for (auto it = names.rbegin(); it != names.rend() && ok; ++it) {
        if (!cur.isObject() || !cur.toObjectRef().type()->hasAttribute(*it))
          ok = false;
        else
          cur = cur.toObjectRef().getAttr(*it);
      }
      if (ok && cur.isTensor())
        (*bound)[j] = cur;
    }
    return true;
  }
  return false;
}

} // namespace

extern "C" {

int nne_model_call_module(nne_model_t *m, int module,
                          const nne_tensor_t *const *inputs, size_t n,
                          nne_tensor_t **out, nne_err_t *err) {
  if (m == nullptr || out == nullptr || (n > 0 && inputs == nullptr))
    return nne_err_set(err, NNE_EINVAL, "call module: NULL argument");
  if (module < 0 || static_cast<size_t>(module) >= m->infos.size())
    return nne_err_set(err, NNE_EINVAL,
                       "call module: module %d does not exist (the model has "
                       "%zu modules)",
                       module, m->infos.size());
  const nne_module_info_t &info = m->infos[module];
  char ctx[320];
  // Not nne__module_label: nothing that allocates before the guard.
  std::snprintf(ctx, sizeof ctx, "module '%s'",
                info.path[0] != '\0' ? info.path : "(root)");
  // A libtorch error here is the module refusing its inputs (a dtype, a
  // shape, an argument of another type): the caller's.
  return nne__guard(err, NNE_EINVAL, ctx, [&]() -> int {
    nne__use_device(m->device);
    // The model's module objects and their types are read-only after load;
    // a Method is a fresh (object, function) pair per call, and running one
    // function from several threads is what nne_model_forward does too.
    auto fwd = m->mods[module].find_method("forward"); // an optional Method
    if (!fwd)
      return nne_err_set(err, NNE_EINVAL, "%s (%s) has no forward method",
                         ctx, info.class_name);
    const std::vector<c10::Argument> &params =
        fwd->function().getSchema().arguments();
    const size_t n_params = params.empty() ? 0 : params.size() - 1; // self
    if (n > n_params)
      return nne_err_set(err, NNE_EINVAL,
                         "%s (%s): forward takes %zu argument%s after self, "
                         "got %zu",
                         ctx, info.class_name, n_params,
                         n_params == 1 ? "" : "s", n);
    for (size_t i = 0; i < n; i++)
      if (inputs[i] == nullptr)
        return nne_err_set(err, NNE_EINVAL, "%s: input %zu is NULL", ctx, i);
    // Parameters the caller's code fills from its own attributes (a tied
    // lm_head's weight in a traced model) are filled the same way when the
    // tensors given are exactly the others; otherwise the tensors go to the
    // parameters in order, as a Python call of the module would take them.
    std::vector<c10::IValue> attr_args;
    if (n < n_params) // (reading the parent's code costs a graph copy)
      call_site_bindings(m, module, n_params, &attr_args);
    size_t n_bound = 0;
    for (const c10::IValue &a : attr_args)
      n_bound += a.isTensor() ? 1 : 0;
    const bool use_bound = n_bound > 0 && n + n_bound == n_params;
    std::vector<c10::IValue> stack;
    stack.reserve(n_params);
    size_t next = 0; // the next given tensor
    for (size_t j = 0; j < n_params && (use_bound || next < n); j++) {
      if (use_bound && attr_args[j].isTensor()) {
        stack.push_back(attr_args[j]);
        continue;
      }
      if (next == n)
        break;
      // On the model's device, as nne_model_forward does with input_ids (a
      // const a trace made on the host); a no-op where it already is.
      stack.emplace_back(inputs[next++]->t.to(m->device));
    }
    // The arguments not given: their defaults, and None for an Optional
    // without one, as calling block(x, None) from Python would pass (a
    // decoder block's attention mask). Anything else is missing.
    for (size_t j = stack.size() + 1; j < params.size(); j++) {
      const c10::Argument &p = params[j];
      if (p.default_value().has_value())
        stack.push_back(*p.default_value());
      else if (p.type()->kind() == c10::TypeKind::OptionalType)
        stack.emplace_back();
      else
        return nne_err_set(err, NNE_EINVAL,
                           "%s (%s): forward needs argument '%s' (%s); %zu "
                           "tensor%s given",
                           ctx, info.class_name, p.name().c_str(),
                           p.type()->repr_str().c_str(), n,
                           n == 1 ? "" : "s");
    }
    c10::InferenceMode guard;
    c10::IValue r = (*fwd)(std::move(stack));
    at::Tensor t;
    if (!first_tensor(r, &t))
      return nne_err_set(err, NNE_EINVAL,
                         "%s (%s): forward returned %s; expected a tensor or "
                         "a tuple starting with one",
                         ctx, info.class_name, r.tagKind().c_str());
    return nne__tensor_wrap(std::move(t), out, err, ctx);
  });
}

} // extern "C"
