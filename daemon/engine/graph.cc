// graph.cc — graph inspection (see engine.h): one module's forward code as
// structured nodes plus a text rendering, as the pristine model runs it or
// as a variant runs it.
//
// Pristine (no variant): the module's own code exactly as
// nne_model_module_nodes numbers it (own_code.cc builds both with
// nne__own_code), so the listing's selectors are the ones an edit uses.
//
// Through a variant: variant.cc rebuilds the code the variant was compiled
// from, with every node tagged by the instance whose code it is
// (nne__variant_inspect), and with the module inlined wherever it is called.
// The listing is the module's portion of that graph in graph order: its own
// nodes (a selector each, from the pristine numbering), the hooks inserted
// for its sites with their site constants and tuple plumbing (inserted = 1),
// and one CALL entry per submodule call, whether the variant keeps the call
// or inlined the callee's code there (the callee's nodes are the callee's,
// not listed). A hook at a module's input or output sits in its caller's
// code but is listed with the module (its site is the module's), so
// `edited` is set for exactly the modules that own a site. A module the
// variant does not inline is shown as it runs: its pristine code, plus the
// hooks at its inputs and outputs if it has some. A module called twice has
// two copies of its code; both are listed, with the same selectors (an edit
// reaches both calls). A module forward never reaches has no code in the
// variant: its pristine listing is returned.
//
// The text of a pristine listing is TorchScript's printing of the own-code
// graph; through a variant it is the listed portion only, printed node by
// node by TorchScript's printer, each inlined call as one CallMethod line
// and each inserted node marked "# inserted".
//
// Shapes come from the graph's types. Archives loaded from disk usually
// carry none (the fixtures' traced archives do not), so `shape` is mostly "".
//
// What is listed is the code before the executor's optimization passes.
// Those passes run on every variant (and on the pristine forward) and would
// rename and renumber nodes (constant pooling, addmm decomposed into mm +
// add, tuples lowered) without changing what the selectors reach.
#include "engine_internal.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>

#include <cstring>
#include <deque>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

struct nne_graph {
  std::vector<nne_graph_node_t> nodes;
  // Storage for the strings and name arrays the nodes point into; deques,
  // so that earlier c_str()s and data()s stay put while the listing grows.
  std::deque<std::string> strings;
  std::deque<std::vector<const char *>> lists;
  std::string text;
  int edited = 0;
};

namespace {

const char *keep(nne_graph_t *g, std::string s) {
  g->strings.push_back(std::move(s));
  return g->strings.back().c_str();
}

const char *const *value_names(nne_graph_t *g, at::ArrayRef<Value *> vs) {
  if (vs.empty())
    return nullptr;
  g->lists.emplace_back();
  std::vector<const char *> &l = g->lists.back();
  l.reserve(vs.size());
  for (Value *v : vs)
    l.push_back(keep(g, "%" + v->debugName()));
  return l.data();
}

nne_graph_node_kind_t classify(const Node *n) {
  const c10::Symbol k = n->kind();
  if (nne__is_hook(n))
    return NNE_GRAPH_HOOK;
  if (k == c10::prim::CallMethod || k == c10::prim::CallFunction)
    return NNE_GRAPH_CALL;
  if (k == c10::prim::Constant)
    return NNE_GRAPH_CONSTANT;
  if (k == c10::prim::GetAttr)
    return NNE_GRAPH_ATTRIBUTE;
  // aten:: and any other operator library (quantized::, a custom op) work
  // on tensors; prim:: is the interpreter's own plumbing (lists, tuples,
  // If, Loop, ...).
  if (k.is_prim())
    return NNE_GRAPH_OTHER;
  return NNE_GRAPH_OP;
}

// "[1, 7, 64]" when the value's type knows every size (a graph traced in
// this process would; scripted graphs and archives loaded from disk
// usually do not), else "".
std::string shape_of(const Value *v) {
  auto tt = v->type()->cast<c10::TensorType>();
  if (!tt)
    return "";
  auto sizes = tt->sizes().concrete_sizes(); // an optional vector
  if (!sizes)
    return "";
  std::string s = "[";
  for (size_t i = 0; i < sizes->size(); i++)
    s += (i ? ", " : "") + std::to_string((*sizes)[i]);
  return s + "]";
}

std::string selector_of(const std::string &path, const nne_node_info_t &info) {
  return path + ":" + info.kind + "#" + std::to_string(info.occurrence);
}

// One listed node. `info` is its entry in the module's own-code list, or
// nullptr (inserted nodes, code of a method other than forward).
void add_node(nne_graph_t *g, Node *n, int depth, const char *instance,
              const std::string &path, const nne_node_info_t *info,
              bool inserted) {
  nne_graph_node_t e;
  std::memset(&e, 0, sizeof e);
  e.op = keep(g, n->kind().toQualString());
  e.kind = classify(n);
  e.n_inputs = n->inputs().size();
  e.n_outputs = n->outputs().size();
  e.inputs = value_names(g, n->inputs());
  e.outputs = value_names(g, n->outputs());
  e.instance = instance;
  e.selector = info != nullptr ? keep(g, selector_of(path, *info)) : "";
  e.source =
      info != nullptr ? keep(g, info->source) : keep(g, nne__source_line(n));
  e.shape = n->outputs().empty() ? "" : keep(g, shape_of(n->output(0)));
  e.inserted = inserted ? 1 : 0;
  e.depth = depth;
  e.callee = info != nullptr && n->kind() == c10::prim::CallMethod
                 ? keep(g, info->callee)
                 : "";
  e.hook_site = -1;
  if (e.kind == NNE_GRAPH_HOOK) {
    g->edited = 1;
    nne_compat::optional<c10::IValue> site =
        n->inputs().size() >= 2 ? torch::jit::toIValue(n->input(1))
                                : nne_compat::nullopt;
    if (site && site->isInt())
      e.hook_site = static_cast<int>(site->toInt());
  }
  g->nodes.push_back(e);
}

// The nodes of a block in graph order (blocks depth first), with their block
// nesting: the order nne_model_module_nodes numbers them in.
void walk(Block *b, int depth, std::vector<std::pair<Node *, int>> *out) {
  for (Node *n : b->nodes()) {
    out->emplace_back(n, depth);
    for (Block *sub : n->blocks())
      walk(sub, depth + 1, out);
  }
}

int check_args(nne_model_t *m, int module, nne_err_t *err) {
  if (module < 0 || static_cast<size_t>(module) >= m->infos.size())
    return nne_err_set(err, NNE_EINVAL,
                       "graph: module %d does not exist (the model has %zu)",
                       module, m->infos.size());
  return 0;
}

std::string label(const nne_model_t *m, int module) {
  const std::string &p = m->recs[static_cast<size_t>(module)].path;
  return p.empty() ? std::string("(root)") : p;
}

// ---- pristine ---------------------------------------------------------------

void list_pristine(nne_model_t *m, int module, nne_graph_t *g) {
  std::shared_ptr<Graph> own = nne__own_code(m, module);
  const nne__node_list *pristine = nne__module_node_list(m, module);
  std::vector<std::pair<Node *, int>> nodes;
  walk(own->block(), 0, &nodes);
  if (nodes.size() != pristine->infos.size())
    throw std::logic_error("own code of " + label(m, module) + " has " +
                           std::to_string(nodes.size()) +
                           " nodes; its node list " +
                           std::to_string(pristine->infos.size()));
  const std::string &path = m->recs[static_cast<size_t>(module)].path;
  const char *instance = keep(g, path);
  g->nodes.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); i++) {
    const nne_node_info_t &info = pristine->infos[i];
    if (std::strcmp(info.kind, nodes[i].first->kind().toQualString()) != 0)
      throw std::logic_error("own code of " + label(m, module) + ": node " +
                             std::to_string(i) + " is " +
                             nodes[i].first->kind().toQualString() +
                             ", its node list says " + info.kind);
    add_node(g, nodes[i].first, nodes[i].second, instance, path, &info, false);
  }
  g->text = own->toString(/*print_source_locations=*/false);
}

// ---- through a variant ------------------------------------------------------

// Module `module`'s portion of an inspected variant graph: survey() finds
// its copies and call markers, visit() lists its nodes and renders them in
// TorchScript's syntax.
struct portion {
  nne_model_t *m;
  int module;
  nne__inspection &insp;
  nne_graph_t *g;
  const nne__node_list *pristine;
  std::string path;
  const char *instance = nullptr;
  // Per copy of the module's code: the absolute block depth of its top
  // level, so that depths are counted from the module's own code.
  std::unordered_map<int, int> base;
  int last_copy = -1;
  int n_copies = 0;        // copies met so far by visit()
  size_t total_copies = 0; // copies in the graph (survey())
  // call_end markers by boundary.
  std::unordered_map<int, Node *> ends;
  std::ostringstream text;

  portion(nne_model_t *model, int mod, nne__inspection &in, nne_graph_t *out)
      : m(model), module(mod), insp(in), g(out),
        pristine(nne__module_node_list(model, mod)),
        path(model->recs[static_cast<size_t>(mod)].path) {}

  const nne__node_tag *tag_of(Node *n) const {
    auto it = insp.tags.find(n->scope().get());
    return it == insp.tags.end() ? nullptr : &it->second;
  }

  static void indent(std::ostream &out, int level) {
    for (int i = 0; i < level; i++)
      out << "  ";
  }

  static std::string typed(at::ArrayRef<Value *> vs) {
    std::string s;
    for (size_t i = 0; i < vs.size(); i++)
      s += (i ? ", %" : "%") + vs[i]->debugName() + " : " +
           vs[i]->type()->repr_str();
    return s;
  }

  static std::string plain(at::ArrayRef<Value *> vs) {
    std::string s;
    for (size_t i = 0; i < vs.size(); i++)
      s += (i ? ", %" : "%") + vs[i]->debugName();
    return s;
  }

  const nne_node_info_t *info_at(int own_index) const {
    if (own_index < 0 ||
        static_cast<size_t>(own_index) >= pristine->infos.size())
      return nullptr;
    return &pristine->infos[static_cast<size_t>(own_index)];
  }

  bool is_mine(const nne__node_tag *t) const {
    // Code of another method of the module (a caller may call one) is not
    // its forward: not listed.
    return t != nullptr && t->module == module && t->forward;
  }

  // Before visit(): the call_end markers, and how many copies there are.
  void survey(Block *b, std::unordered_map<int, int> *copies) {
    for (Node *n : b->nodes()) {
      const nne__node_tag *t = tag_of(n);
      if (is_mine(t)) {
        if (t->role == nne__node_tag::call_end)
          ends[t->boundary] = n;
        (*copies)[t->copy]++;
      }
      for (Block *sub : n->blocks())
        survey(sub, copies);
    }
  }

  // A submodule call whose code the graph holds inline: one CALL entry, its
  // inputs the call's arguments, its outputs the inlined code's results.
  void add_boundary(Node *begin, const nne__node_tag &t, int depth) {
    auto it = ends.find(t.boundary);
    Node *end = it == ends.end() ? nullptr : it->second;
    const nne_node_info_t *info = info_at(t.own_index);
    at::ArrayRef<Value *> results =
        end != nullptr ? end->inputs() : at::ArrayRef<Value *>();
    nne_graph_node_t e;
    std::memset(&e, 0, sizeof e);
    e.op = "prim::CallMethod";
    e.kind = NNE_GRAPH_CALL;
    e.n_inputs = begin->inputs().size();
    e.n_outputs = results.size();
    e.inputs = value_names(g, begin->inputs());
    e.outputs = value_names(g, results);
    e.instance = instance;
    e.selector = info != nullptr ? keep(g, selector_of(path, *info)) : "";
    e.source = info != nullptr ? keep(g, info->source) : "";
    e.shape = results.empty() ? "" : keep(g, shape_of(results[0]));
    e.depth = depth;
    e.callee = keep(g, m->recs[static_cast<size_t>(t.callee)].path);
    e.hook_site = -1;
    g->nodes.push_back(e);

    indent(text, 1 + 2 * depth);
    text << typed(results) << " = prim::CallMethod[name=\""
         << begin->s(c10::attr::name) << "\"](" << plain(begin->inputs())
         << ")  # inlined in the variant: " << label(m, t.callee) << "\n";
  }

  void visit(Block *b, int abs_depth) {
    for (Node *n : b->nodes()) {
      const nne__node_tag *t = tag_of(n);
      bool mine = is_mine(t) && t->role != nne__node_tag::call_end;
      int depth = 0;
      if (mine) {
        auto bi = base.find(t->copy);
        if (bi == base.end())
          bi = base.emplace(t->copy, abs_depth).first;
        depth = abs_depth - bi->second;
        if (t->copy != last_copy) {
          n_copies++;
          if (total_copies > 1)
            text << "  # call " << n_copies << " of " << total_copies
                 << " (forward calls the module " << total_copies
                 << " times)\n";
          last_copy = t->copy;
        }
        if (t->role == nne__node_tag::call_begin) {
          add_boundary(n, *t, depth);
        } else {
          bool inserted = t->role == nne__node_tag::inserted;
          add_node(g, n, depth, instance, path,
                   inserted ? nullptr : info_at(t->own_index), inserted);
          std::ostringstream line;
          n->print(line, static_cast<size_t>(1 + 2 * depth), nullptr,
                   /*print_source_locations=*/false,
                   /*print_attributes=*/true, /*print_scopes=*/false,
                   /*print_body=*/false);
          // Without its body, print() leaves the line open.
          std::string s = line.str();
          while (!s.empty() && s.back() == '\n')
            s.pop_back();
          text << s << (inserted ? "  # inserted\n" : "\n");
        }
      }
      size_t i = 0;
      for (Block *sub : n->blocks()) {
        if (mine) {
          indent(text, 2 + 2 * depth);
          text << "block" << i << "(" << typed(sub->inputs()) << "):\n";
        }
        visit(sub, abs_depth + 1);
        if (mine) {
          indent(text, 3 + 2 * depth);
          text << "-> (" << plain(sub->outputs()) << ")\n";
        }
        i++;
      }
    }
  }
};

// Lists `module` as variant v runs it. False when v's graph holds none of
// the module's code (forward never reaches it); *rc is then 0.
bool list_variant(nne_model_t *m, int module, nne_variant_t *v, nne_graph_t *g,
                  nne_err_t *err, int *rc) {
  nne__inspection insp;
  *rc = nne__variant_inspect(m, v, module, &insp, err);
  if (*rc != 0)
    return true;
  portion p(m, module, insp, g);
  p.instance = keep(g, p.path);
  std::unordered_map<int, int> copies;
  p.survey(insp.graph->block(), &copies);
  p.total_copies = copies.size();
  p.text << "# " << label(m, module)
         << ": its code in the variant's graph (before the executor's "
            "passes; hooks and their plumbing marked \"# inserted\")\n";
  p.visit(insp.graph->block(), 0);
  if (p.n_copies == 0)
    return false;
  g->text = p.text.str();
  return true;
}

} // namespace

extern "C" {

int nne_graph_get(nne_model_t *m, int module, nne_variant_t *variant,
                  nne_graph_t **out, nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "graph", [&]() -> int {
    if (m == nullptr || out == nullptr)
      return nne_err_set(err, NNE_EINVAL, "graph: model or out is NULL");
    int rc = check_args(m, module, err);
    if (rc != 0)
      return rc;
    torch::jit::Function *fwd =
        m->mods[static_cast<size_t>(module)].type()->findMethod("forward");
    if (fwd == nullptr || torch::jit::tryToGraphFunction(*fwd) == nullptr)
      return nne_err_set(
          err, NNE_EINVAL, "graph: %s (%s) has no forward",
          label(m, module).c_str(),
          m->recs[static_cast<size_t>(module)].class_name.c_str());
    std::unique_ptr<nne_graph_t> g(new nne_graph_t);
    bool listed = false;
    if (variant != nullptr) {
      listed = list_variant(m, module, variant, g.get(), err, &rc);
      if (rc != 0) {
        nne_err_prefix(err, "graph");
        return rc;
      }
      if (!listed) {
        // Forward never reaches the module: the variant runs none of its
        // code, and its code is the pristine one.
        g.reset(new nne_graph_t);
      }
    }
    if (!listed)
      list_pristine(m, module, g.get());
    *out = g.release();
    return 0;
  });
}

size_t nne_graph_node_count(const nne_graph_t *g) {
  return g->nodes.size();
}

const nne_graph_node_t *nne_graph_node(const nne_graph_t *g, size_t i) {
  return i < g->nodes.size() ? &g->nodes[i] : nullptr;
}

const char *nne_graph_text(const nne_graph_t *g) {
  return g->text.c_str();
}

int nne_graph_edited(const nne_graph_t *g) {
  return g->edited;
}

void nne_graph_free(nne_graph_t *g) {
  try {
    delete g;
  } catch (...) {
  }
}

} // extern "C"
