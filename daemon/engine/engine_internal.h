/* engine_internal.h — what the shim's .cc files share; never included from C.
 *
 * The handles behind engine.h's opaque types, the mapping between
 * nne_dtype_t and at::ScalarType, and nne__guard(), the one place where C++
 * exceptions are turned into NNE_E* codes. Every extern "C" function that can
 * throw runs its body inside nne__guard, so that no exception reaches a C
 * caller; the accessors that cannot throw read plain fields.
 */
#ifndef NNE_ENGINE_INTERNAL_H
#define NNE_ENGINE_INTERNAL_H

#ifndef __cplusplus
#error "engine_internal.h is C++ only"
#endif

#include <torch/script.h>

#include "compat.h"

#include <atomic>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine.h"

/* A tensor handle. Shape and dtype are copied out of `t` when the handle is
 * made, so that the C accessors need no libtorch call and cannot throw. */
struct nne_tensor {
  std::atomic<long> refs{1};
  at::Tensor t;
  nne_dtype_t dtype = NNE_DTYPE_INVALID;
  int ndim = 0;
  int64_t shape[NNE_TENSOR_MAX_DIMS] = {0};
  int64_t numel = 0;

  /* The host copy made by nne_tensor_host_data(). `host_ptr` is published
   * (release) only after `host` holds the bytes, so a reader that sees it
   * non-NULL can use it without taking the mutex. */
  std::mutex host_mu;
  at::Tensor host;
  std::atomic<const void *> host_ptr{nullptr};
};

/* A C caller may pass any int as an nne_dtype_t (the RPC layer forwards the
 * wire's number). In C++ an enum holding a value outside its enumerators'
 * range is undefined behaviour, so the public functions read such a
 * parameter's bytes as the int it is and work on that. */
inline int nne__dtype_int(const nne_dtype_t &dt) noexcept {
  int v;
  static_assert(sizeof v == sizeof dt, "nne_dtype_t is int-sized");
  std::memcpy(&v, &dt, sizeof v);
  return v;
}

/* The same for any other enum parameter (nne_edit_op_t, ...). */
template <typename E> inline int nne__enum_int(const E &e) noexcept {
  static_assert(sizeof(int) == sizeof(E), "the enum is int-sized");
  int v;
  std::memcpy(&v, &e, sizeof v);
  return v;
}

/* nne_dtype_t <-> at::ScalarType. Both return false when there is no
 * counterpart (complex and quantized types; unknown numbers). */
bool nne__dtype_from_scalar(at::ScalarType st, nne_dtype_t *out);
bool nne__scalar_from_dtype(int dt, at::ScalarType *out);

/* The own-code nodes of one module (nne_model_module_nodes): the infos and
 * the strings they point into, built once and never changed afterwards. */
struct nne__node_list {
  std::vector<nne_node_info_t> infos;
  std::deque<std::string> strings; /* a deque: c_str()s stay put on growth */
};

/* A loaded model. Everything but the node cache is written by
 * nne_model_load and read-only afterwards, so it may be read from any thread
 * without a lock. */
struct nne_model {
  /* What forward takes after input_ids. */
  enum class mask_kind { none, required, optional };

  /* Storage for the strings and arrays that nne_module_info_t points into.
   * Filled completely before `infos` is built, and never resized afterwards. */
  struct module_rec {
    std::string path, name, class_name, type_name;
    std::vector<int> children;
  };

  std::atomic<long> refs{1};
  torch::jit::Module module;
  at::Device device{at::kCPU};
  std::string device_name;
  nne_dtype_t dtype = NNE_DTYPE_F32;
  mask_kind mask = mask_kind::none;
  uint64_t param_count = 0;
  uint64_t param_bytes = 0;
  uint64_t resident_bytes = 0; /* parameters and buffers, storages once */
  std::vector<module_rec> recs;
  std::vector<nne_module_info_t> infos;
  std::vector<torch::jit::Module> mods; /* the module of each infos[i] */
  std::unordered_map<std::string, int> by_path;

  /* nne_model_module_nodes' cache, one slot per module, filled on demand. */
  std::mutex nodes_mu;
  std::vector<std::unique_ptr<nne__node_list>> nodes;

  /* variant.cc's cache of method code prepared for inlining into variants
   * (own code, optimized; see prepared_code()), one graph per method of the
   * model's classes, filled on demand, never changed once made. */
  std::mutex prepared_mu;
  std::unordered_map<const torch::jit::Function *,
                     std::shared_ptr<torch::jit::Graph>>
      prepared;
};

/* The instance path of a module value inside a method graph: its chain of
 * prim::GetAttr nodes followed back to `self` (the graph's first input, whose
 * path is `base`). False when the value comes from anywhere else (a list, a
 * branch's output, an argument other than self). */
bool nne__module_path_of(torch::jit::Value *v, torch::jit::Value *self,
                         const std::string &base, std::string *out);

/* ---- own code (own_code.cc), for variants and graph inspection --------
 *
 * variant.cc builds the variants from a module's own code; graph.cc lists
 * it. Both number a module's own-code nodes the same way, so that a
 * selector ("PATH:KIND#K") means the same node everywhere. */

/* The own code of `module`: a copy of its forward graph with helper
 * functions and self's helper methods inlined, submodule calls left as
 * calls. nullptr when the module has no forward graph (a ModuleList). */
std::shared_ptr<torch::jit::Graph> nne__own_code(const nne_model_t *m,
                                                 int module);
/* The same for any method graph (fn's graph copied, helpers inlined). */
std::shared_ptr<torch::jit::Graph>
nne__own_graph(torch::jit::GraphFunction *fn);
/* Inlines g's helper functions and self's helper methods, round after round
 * until none is left (throws past a bound on nesting). */
void nne__inline_helpers(torch::jit::Graph &g);
/* Every node of block b and its sub-blocks, in order, appended to out. */
void nne__list_nodes(torch::jit::Block *b,
                     std::vector<torch::jit::Node *> *out);
/* A class's method as a defined graph function, or nullptr. */
torch::jit::GraphFunction *nne__method_of(const c10::ClassTypePtr &cls,
                                          const std::string &name);
/* Module `module`'s forward (nne__method_of), or nullptr. */
torch::jit::GraphFunction *nne__forward_of(const nne_model_t *m, int module);

/* nne_model_module_nodes' cached list for `module` (built on first use);
 * the caller has checked that the module exists and has a forward. Lives
 * with the model. */
const nne__node_list *nne__module_node_list(nne_model_t *m, int module);

/* The line of source a node came from, trimmed; "" when there is none. */
std::string nne__source_line(const torch::jit::Node *n);

/* NNE_EINVAL "<what>: module N does not exist" unless module is an index of
 * m's module tree. */
int nne__check_module(const nne_model_t *m, int module, const char *what,
                      nne_err_t *err);
/* A module's path, or "(root)". */
std::string nne__module_label(const nne_model_t *m, int module);

/* Tensor, and Tensor or Tensor? (what a site may sit on: a hook on a
 * Tensor? fires only when it holds a tensor). */
bool nne__is_tensor_type(const c10::TypePtr &t);
bool nne__is_hookable_type(const c10::TypePtr &t);

/* Where a node of a rebuilt variant graph comes from (nne__variant_inspect).
 * Each tagged node carries its own torch::jit::Scope, which libtorch copies
 * with the node when a callee's code is inlined into its caller; the tag is
 * found through the scope's address. */
struct nne__node_tag {
  enum role_t {
    own,        /* a node of the module's own code */
    inserted,   /* a hook, its site constant, tuple plumbing around hooks */
    call_begin, /* marker before an inlined submodule call's code */
    call_end,   /* marker after it; its inputs are the call's results */
  };
  role_t role = own;
  /* own: the module whose code it is; inserted: the module whose site the
   * hook serves (a hook on a module's input or output sits in its caller's
   * code but belongs to the module); call_*: the caller. */
  int module = -1;
  int copy = 0;        /* which copy of that module's code (a module called
                          twice is inlined twice) */
  int own_index = -1;  /* own, call_*: the node's index in the module's own
                          code; -1 in code of a method other than forward */
  int callee = -1;     /* call_*: the module whose code was inlined */
  bool forward = true; /* own, call_*: in a copy of the module's forward
                          (not of another method of it) */
  int boundary = -1;   /* call_*: pairs a call_begin with its call_end */
};

/* A variant's code rebuilt for reading. */
struct nne__inspection {
  std::shared_ptr<torch::jit::Graph> graph;
  std::unordered_map<const torch::jit::Scope *, nne__node_tag> tags;
  /* Every tag's scope, kept alive so that no address is reused while
   * `tags` is looked up. */
  std::vector<c10::intrusive_ptr<torch::jit::Scope>> scopes;
};

/* Rebuilds the code variant v was compiled from (before the executor's
 * optimization passes: the graph nne_variant_build made, hooks included),
 * with every node tagged, and with `module`'s forward inlined wherever it is
 * called even where v keeps it a call (its code is then what v runs: the
 * pristine code, plus hooks at its inputs and outputs). Fails with
 * NNE_EINVAL when v was built for a model other than m. */
int nne__variant_inspect(nne_model_t *m, const nne_variant_t *v, int module,
                         nne__inspection *out, nne_err_t *err);

/* True for the hook ops (nnedit::hook, nnedit::hook_opt). */
bool nne__is_hook(const torch::jit::Node *n);

/* What nne_model_forward and nne_variant_forward share: checks input_ids and
 * the mask against the model and builds forward's arguments after self
 * (input_ids on the model's device, the mask as int64, an all-ones mask or
 * None as the signature wants). */
int nne__forward_args(const nne_model_t *m, const nne_tensor_t *input_ids,
                      const nne_tensor_t *attention_mask,
                      std::vector<c10::IValue> *args, nne_err_t *err);

/* Checks forward's result and wraps its logits (see nne_model_forward). */
int nne__forward_logits(const c10::IValue &out, const nne_tensor_t *input_ids,
                        nne_tensor_t **logits, nne_err_t *err);

/* What nne_model_forward_cached and nne_variant_forward_cached share:
 * checks the step's inputs (mask [B, P+S], positions [B, S], past tensors
 * [B, heads, P, head_dim]) and builds the method's arguments after self. */
int nne__cached_args(const nne_model_t *m, const nne_tensor_t *input_ids,
                     const nne_tensor_t *attention_mask,
                     const nne_tensor_t *position_ids,
                     nne_tensor_t *const *past, size_t n_past,
                     std::vector<c10::IValue> *args, nne_err_t *err);

/* Checks a cached method's result (logits [B, S, V], n_past tensors) and
 * wraps it; nothing is written on failure. */
int nne__cached_outputs(const c10::IValue &out, const nne_tensor_t *input_ids,
                        size_t n_past, nne_tensor_t **logits,
                        nne_tensor_t **present, nne_err_t *err);

/* "forward" and the "forwardN" methods torch.jit.trace_module makes for a
 * submodule called from a second traced method: a module's forward for
 * sites and hooks. */
inline bool nne__forward_like(const std::string &name) {
  if (name.compare(0, 7, "forward") != 0)
    return false;
  for (size_t i = 7; i < name.size(); i++)
    if (name[i] < '0' || name[i] > '9')
      return false;
  return true;
}

/* Owns one reference; for building several handles where a later failure
 * must release the earlier ones. */
struct nne__tensor_unref_fn {
  void operator()(nne_tensor_t *t) const noexcept {
    nne_tensor_unref(t);
  }
};
using nne__tensor_ptr = std::unique_ptr<nne_tensor_t, nne__tensor_unref_fn>;

/* Wraps `t` in a new handle (one reference). Fails with NNE_EINVAL when the
 * tensor's dtype or rank cannot be described by engine.h. */
int nne__tensor_wrap(at::Tensor t, nne_tensor_t **out, nne_err_t *err,
                     const char *what);

/* Checks a device string (see nne_engine_device_parse) and gives its
 * canonical name and the at::Device. */
int nne__device_parse(const char *device, std::string *canon, at::Device *dev,
                      nne_err_t *err);

/* Reports a libtorch failure: shortens the message (the TorchScript
 * interpreter puts a serialized-code traceback before the actual error) and
 * fills err with `code`, or NNE_ENOMEM when the message is an allocator's
 * "out of memory". Returns the code. */
int nne__err_libtorch(nne_err_t *err, int code, const char *ctx,
                      const char *what) noexcept;

/* True when `what` is an error the TorchScript interpreter rethrew while
 * running a model. It rethrows everything (c10::Error, a model's `raise`)
 * as a plain std::runtime_error carrying the traceback, so the type alone
 * cannot tell a model's failure from a bug of ours. */
bool nne__is_interpreter_error(const char *what) noexcept;

/* device.cc. Before computing on `dev`: on an executor thread
 * (nne_engine_thread_attach), gives the thread its own stream there the
 * first time. Nothing for the CPU. */
void nne__use_device(const c10::Device &dev);
/* Waits for everything queued on the calling thread's current stream of
 * `dev` (nothing for the CPU). */
void nne__stream_sync(const c10::Device &dev);
/* Before the last handle on a device tensor goes: tells the allocator that
 * the calling thread's stream may still read its memory. */
void nne__tensor_release_on_stream(const at::Tensor &t);
/* Whether a libtorch message reports a failed allocation, in any of the
 * allocators' wordings: "CUDA out of memory.", "Out of memory. Tried to
 * allocate" (the device-generic allocator of later 2.x), "can't allocate
 * memory" (the CPU's), "CUDA error: out of memory" (cuBLAS and friends). */
bool nne__says_out_of_memory(std::string_view s);
/* The one-line message for an allocator's out-of-memory error `body`:
 * "out of memory: tried to allocate N bytes (1.50 GiB): <libtorch's words,
 * without the tuning advice>". */
std::string nne__oom_message(std::string_view body);

/* Runs f() (which returns 0 or a negative NNE_E* code) and turns any exception
 * into a code and a message prefixed by `ctx`. A libtorch error becomes
 * `torch_code`: what it means depends on the call (a corrupt archive during
 * load, an input the model rejects during forward). Any other exception is
 * NNE_EINTERNAL. */
template <typename F>
int nne__guard(nne_err_t *err, int torch_code, const char *ctx,
               F &&f) noexcept {
  try {
    return f();
  } catch (const c10::OutOfMemoryError &e) {
    return nne__err_libtorch(err, NNE_ENOMEM, ctx, e.what_without_backtrace());
  } catch (const c10::Error &e) {
    return nne__err_libtorch(err, torch_code, ctx, e.what_without_backtrace());
  } catch (const std::bad_alloc &) {
    return nne_err_set(err, NNE_ENOMEM, "%s: out of memory", ctx);
  } catch (const std::exception &e) {
    if (nne__is_interpreter_error(e.what()))
      return nne__err_libtorch(err, torch_code, ctx, e.what());
    return nne_err_set(err, NNE_EINTERNAL, "%s: %s", ctx, e.what());
  } catch (...) {
    return nne_err_set(err, NNE_EINTERNAL, "%s: unknown C++ exception", ctx);
  }
}

#endif /* NNE_ENGINE_INTERNAL_H */
