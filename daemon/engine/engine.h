/* engine.h — the C face of the libtorch shim (the only C++ in nnedit).
 *
 * Life cycle:
 *   nne_engine_init()                       once per process, before anything else
 *   nne_model_load()   → nne_model_t*       a TorchScript archive on a device/dtype
 *   nne_model_module*()                     the module tree (borrowed, lives with the model)
 *   nne_tensor_from_host() → nne_tensor_t*  inputs
 *   nne_model_forward()    → nne_tensor_t*  logits
 *   nne_tensor_host_data()                  contiguous little-endian host bytes
 *   nne_tensor_unref(), nne_model_unref()   release
 *
 * Models and tensors are opaque, reference-counted handles. Counts are atomic:
 * a handle may be ref'd and unref'd from any thread (gRPC frees zero-copy
 * slices on its own threads). A function that returns a new handle through an
 * out-parameter gives the caller one reference.
 *
 * Every function catches every C++ exception and reports it as a negative
 * NNE_E* code (error.h) plus a message in the caller's nne_err_t; no
 * exception ever crosses into C. On failure no out-parameter is written.
 *
 * Threads: any function may be called from any thread. nne_model_forward may
 * run concurrently on one model from several threads. Each call sets
 * inference mode for its own thread. On CUDA, a thread that called
 * nne_engine_thread_attach computes on streams of its own; every other
 * thread on libtorch's current stream.
 *
 * libtorch versions: the engine builds against Debian's libtorch 1.13 and,
 * with the same source, the one inside a PyTorch 2.x wheel (2.0 ... 2.11, CPU
 * or CUDA; cmake -DNNE_TORCH_PYTHON=<python>). The libtorch APIs it uses
 * that changed between versions, and how the engine copes (compat.h holds
 * the shims, keyed on <torch/version.h>):
 *   - c10::optional / c10::nullopt: a class of its own in 1.13; an alias of
 *     std::optional since late 2023, deprecated (C10_NODEPRECATED hides it)
 *     since Dec 2024, to be removed. The engine says nne_compat::optional /
 *     nne_compat::nullopt (std:: from 2.4 on, c10:: before) or `auto`.
 *   - at::indexing::Slice: bounds c10::optional<int64_t> in 1.13,
 *     std::optional<c10::SymInt> in 2.x. nne_compat::slice() converts
 *     each bound to the type Slice::start() returns.
 *   - torch.norm (nne_op_call "norm"): 1.13's Python computes it with
 *     at::frobenius_norm / at::norm; 2.x's with at::linalg_vector_norm
 *     (at::frobenius_norm is kept there only for old TorchScript). The
 *     engine calls what the libtorch's own Python calls (#if in
 *     trace_ops.cc), so its result stays Python's, bit for bit.
 *   - C++ standard: C++17 for 1.13 ... 2.11; headers from 2.12 on are
 *     reported to need C++20. CMakeLists.txt sets the engine's standard
 *     from find_package(Torch)'s Torch_VERSION.
 *   - _GLIBCXX_USE_CXX11_ABI: in TORCH_CXX_FLAGS for Debian's (1) and older
 *     wheels (0); newer wheels' packages may not state it. CMakeLists.txt
 *     applies TORCH_CXX_FLAGS to the engine and, when they lack the ABI,
 *     takes it from the wheel's torch._C._GLIBCXX_USE_CXX11_ABI.
 *   - The device path (device.cc) uses only c10's device-generic interfaces,
 *     the same from 1.13 through 2.x as read: c10::impl::VirtualGuardImpl
 *     (getStream, getStreamFromGlobalPool, exchangeStream,
 *     recordDataPtrOnStream), c10::Stream::synchronize. The CUDA caching
 *     allocator's figures (NNE_WITH_CUDA, only against a CUDA libtorch):
 *     c10::cuda::CUDACachingAllocator::getDeviceStats takes an int up to
 *     2.2 and a c10::DeviceIndex after (the engine passes a DeviceIndex);
 *     its DeviceStats type moved to c10::CachingDeviceAllocator in later
 *     2.x (the engine says `auto` and reads index 0 of each statistic, the
 *     aggregate in every version). -DNNE_CUDA_STATS=OFF builds without
 *     them should a libtorch's CUDA headers refuse.
 * Unchanged between them, as read (the engine uses these as they are):
 * ivalue::Tuple::elements() (a TupleElements already in 1.13),
 * Source::get_line() / SourceRange::findSourceRangeThatGenerated(),
 * Node::print(), inlineCallTo(Node*, GraphFunction*, Graph*),
 * FunctionSchema::checkAndNormalizeInputs (a template in 2.x, called the
 * same way), at::native::wrapped_scalar_tensor.
 * Only the 1.13 build is compiled and tested here: every 2.x point above
 * was checked by reading 2.x sources, not by compiling (the 2.x norm code
 * was compiled against 1.13's headers, which have the same functions).
 */
#ifndef NNE_ENGINE_H
#define NNE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "../base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element types. The numbers equal the wire enum nnedit.v1.DType so that the
 * RPC layer can pass them through (a unit test holds them equal). A value
 * that came off the wire may be any int: every function taking a dtype
 * reads it as an int and rejects unknown values with NNE_EINVAL rather than
 * trusting the enum. */
typedef enum nne_dtype {
  NNE_DTYPE_INVALID = 0,
  NNE_DTYPE_F32 = 1,
  NNE_DTYPE_F16 = 2,
  NNE_DTYPE_BF16 = 3,
  NNE_DTYPE_F64 = 4,
  NNE_DTYPE_I64 = 5,
  NNE_DTYPE_I32 = 6,
  NNE_DTYPE_I16 = 7,
  NNE_DTYPE_I8 = 8,
  NNE_DTYPE_U8 = 9,
  NNE_DTYPE_BOOL = 10,
} nne_dtype_t;

#define NNE_TENSOR_MAX_DIMS 8

/* Bytes per element; 0 for NNE_DTYPE_INVALID. */
size_t nne_dtype_size(nne_dtype_t dt);
/* "float32", "bfloat16", ...; "invalid" for unknown values. Static string. */
const char *nne_dtype_name(nne_dtype_t dt);
/* Parses the names above (also "fp32", "float", "half", "fp16", "bf16").
 * Returns NNE_DTYPE_INVALID when the name is unknown. */
nne_dtype_t nne_dtype_parse(const char *name);

/* ---- engine ------------------------------------------------------------ */

typedef struct nne_engine_opts {
  int intra_op_threads; /* threads per CPU op; 0 = leave libtorch's default */
} nne_engine_opts_t;

/* Process-wide setup (thread counts). Safe to call more than once; the last
 * call's thread count wins. */
int nne_engine_init(const nne_engine_opts_t *opts, nne_err_t *err);

/* The libtorch version this process runs, e.g. "1.13.1". Static string. */
const char *nne_engine_torch_version(void);

/* Number of CUDA devices usable by this libtorch (0 for a CPU-only build). */
int nne_engine_cuda_device_count(void);

/* Checks a device string: "cpu", "cuda" (= "cuda:0") or "cuda:N" with N an
 * existing device. Writes the canonical form ("cpu", "cuda:0") into
 * canon[canon_len]. NNE_EINVAL names the problem. */
int nne_engine_device_parse(const char *device, char *canon, size_t canon_len,
                            nne_err_t *err);

/* ---- devices ----------------------------------------------------------- */

/* Makes the calling thread an executor thread: on each CUDA device it
 * computes on, it gets a stream of its own (from libtorch's pool, current
 * for that thread only, taken the first time it uses the device), so that
 * one thread's kernels and copies never queue behind another's. Other
 * threads use libtorch's current (default) stream. Nothing happens without
 * CUDA. Idempotent; executor threads call it first. */
int nne_engine_thread_attach(nne_err_t *err);

/* Waits until everything the calling thread queued on its own CUDA streams
 * has run (nothing without CUDA). Executor threads call it after each job, so
 * that every tensor a job hands back or lets go is complete before another
 * thread reads or frees it. */
int nne_engine_thread_sync(nne_err_t *err);

/* A device's memory now. allocated/reserved/peak are the CUDA caching
 * allocator's figures (allocator_stats = 1; only in a build against a CUDA
 * libtorch); on "cpu" total is the physical memory and free the kernel's
 * MemAvailable. */
typedef struct nne_device_memory {
  char device[24];               /* canonical: "cpu", "cuda:0" */
  uint64_t total_bytes;
  uint64_t free_bytes;
  uint64_t allocated_bytes;      /* held by live tensors */
  uint64_t reserved_bytes;       /* held by the allocator (allocated included) */
  uint64_t peak_allocated_bytes; /* the most allocated at once since start */
  int allocator_stats;           /* 1 when the three above are known */
} nne_device_memory_t;
int nne_engine_device_memory(const char *device, nne_device_memory_t *out,
                             nne_err_t *err);

/* 1 when `msg` is an allocator's out-of-memory message (libtorch's CPU or
 * CUDA allocator), with the size of the allocation that failed in *bytes
 * (0 when the message has none; CUDA's is rounded: "2.00 GiB"); 0
 * otherwise. Errors the engine returns for such failures are NNE_ENOMEM
 * with "out of memory: tried to allocate N bytes (...)" in the message. */
int nne_engine_oom_bytes(const char *msg, uint64_t *bytes);

/* ---- tensors ----------------------------------------------------------- */

typedef struct nne_tensor nne_tensor_t;

/* A new CPU tensor of the given dtype and shape holding a copy of `data`
 * (numel * itemsize bytes, little-endian, C order). data == NULL gives
 * zeros. ndim may be 0 (a scalar). */
int nne_tensor_from_host(nne_dtype_t dt, const int64_t *shape, int ndim,
                         const void *data, nne_tensor_t **out, nne_err_t *err);

/* A new tensor of zeros made directly on `device` ("cpu", "cuda:0"): an
 * empty KV cache ([B, H, 0, D]) needs no host copy. */
int nne_tensor_zeros(nne_dtype_t dt, const int64_t *shape, int ndim,
                     const char *device, nne_tensor_t **out, nne_err_t *err);

/* Adds a reference and returns t. */
nne_tensor_t *nne_tensor_ref(nne_tensor_t *t);
/* Drops a reference; frees the tensor (its device memory too) at zero.
 * NULL is ignored. */
void nne_tensor_unref(nne_tensor_t *t);

nne_dtype_t nne_tensor_dtype(const nne_tensor_t *t);
int nne_tensor_ndim(const nne_tensor_t *t);
/* Borrowed array of ndim sizes, valid while a reference is held. */
const int64_t *nne_tensor_shape(const nne_tensor_t *t);
int64_t nne_tensor_numel(const nne_tensor_t *t);
/* numel * itemsize. */
size_t nne_tensor_nbytes(const nne_tensor_t *t);

/* Contiguous host bytes of the tensor (little-endian, C order). The first
 * call may copy from the device or make a contiguous copy; the bytes then
 * live inside the handle and stay valid, unchanged, while a reference is
 * held. Later calls return the same pointer. Thread-safe. */
int nne_tensor_host_data(nne_tensor_t *t, const void **data, nne_err_t *err);

/* Rows of a [B, S, V] tensor at one position per row: out[b] = x[b, pos[b]].
 * Result is [B, V] float32 on the host. pos has B entries in [0, S). */
int nne_tensor_select_positions(const nne_tensor_t *x, const int64_t *pos,
                                nne_tensor_t **out, nne_err_t *err);

/* Top-k over the last dimension of a [B, V] tensor, computed in float32:
 * ids [B, k] int64, values [B, k] float32 (the logits), probs [B, k] float32
 * (softmax over all V). Sorted by descending value. 1 <= k <= V. */
int nne_tensor_topk(const nne_tensor_t *x, int k, nne_tensor_t **ids,
                    nne_tensor_t **values, nne_tensor_t **probs,
                    nne_err_t *err);

/* A copy of x with its own memory, on x's device (a saved value must not
 * change when the forward later writes to the tensor in place). */
int nne_tensor_clone(const nne_tensor_t *x, nne_tensor_t **out,
                     nne_err_t *err);

/* Part `part` of `parts` equal parts of x's last dimension; with `heads`
 * > 0, the last dimension is first viewed as [heads, -1] and each head's
 * slice is split (a per-head interleaved fused projection, GPT-NeoX's
 * query_key_value). The result is a contiguous copy: [..., D/parts] or
 * [..., heads, D/(heads*parts)]. NNE_EINVAL when the sizes do not divide. */
int nne_tensor_split_last(const nne_tensor_t *x, int parts, int part,
                          int heads, nne_tensor_t **out, nne_err_t *err);

/* ---- models ------------------------------------------------------------ */

typedef struct nne_model nne_model_t;

/* One module of a model's tree. Strings and arrays are owned by the model and
 * valid while a reference to it is held. */
typedef struct nne_module_info {
  const char *path;       /* dotted path; "" for the root */
  const char *name;       /* last path component; "" for the root */
  const char *class_name; /* "GPT2Attention": the type's unqualified name,
                             TorchScript mangling removed */
  const char *type_name;  /* qualified TorchScript type name */
  int parent;             /* index of the parent; -1 for the root */
  int depth;              /* 0 for the root */
  int n_children;
  const int *children;    /* n_children indices, in registration order */
  int call_index;         /* order of first call in forward; -1 if never */
  uint64_t param_count;   /* parameters held directly (not by children) */
} nne_module_info_t;

/* Loads a TorchScript archive and moves it to `device` ("cpu", "cuda:N") and
 * floating dtype `dt` (NNE_DTYPE_INVALID keeps the archive's). Puts it in
 * eval mode and reads its module tree and call order. Fails with NNE_EIO for
 * a missing or unreadable file, NNE_EINVAL for a corrupt archive, a bad
 * device or dtype, or a model without a usable forward. */
int nne_model_load(const char *path, const char *device, nne_dtype_t dt,
                   nne_model_t **out, nne_err_t *err);

nne_model_t *nne_model_ref(nne_model_t *m);
void nne_model_unref(nne_model_t *m); /* NULL is ignored */

/* Canonical device string ("cpu", "cuda:0"); owned by the model. */
const char *nne_model_device(const nne_model_t *m);
nne_dtype_t nne_model_dtype(const nne_model_t *m);
uint64_t nne_model_param_count(const nne_model_t *m);
uint64_t nne_model_param_bytes(const nne_model_t *m);
/* Bytes the model's parameters and buffers hold on its device, each storage
 * counted once (tied weights share one): what loading it cost there. */
uint64_t nne_model_resident_bytes(const nne_model_t *m);

/* The module tree in pre-order (the order of named_modules(): index 0 is the
 * root, children in registration order). */
size_t nne_model_module_count(const nne_model_t *m);
const nne_module_info_t *nne_model_module(const nne_model_t *m, size_t i);
/* Index of the module with that exact path, or -1. */
int nne_model_module_find(const nne_model_t *m, const char *path);

/* Number of tensor arguments forward takes after self (1 = input_ids only,
 * 2 = input_ids and attention_mask, which may be declared Optional). */
int nne_model_forward_arity(const nne_model_t *m);

/* Runs forward on input_ids [B, S] int64 (host or device) with an optional
 * attention_mask [B, S] (any integer dtype; 1 = token, 0 = padding). When
 * the model requires a mask and none is given, an all-ones mask is passed.
 * The model's output may be a tensor, a tuple whose first element is the
 * logits, or a dict with "logits". *logits gets [B, S, V] on the model's
 * device in the model's dtype. */
int nne_model_forward(nne_model_t *m, const nne_tensor_t *input_ids,
                      const nne_tensor_t *attention_mask, nne_tensor_t **logits,
                      nne_err_t *err);

/* ---- cached decoding --------------------------------------------------------
 *
 * Generation's archive contract (README "The model repository"): a root
 * method (model.json names it, "forward_cached")
 *   (input_ids [B, S], attention_mask [B, P+S], position_ids [B, S],
 *    past: List[Tensor] of n tensors [B, heads, P, head_dim])
 *     -> (logits [B, S, V], present: List[Tensor] of n tensors, P+S long)
 * The first step passes P = 0 (empty tensors). */

/* 1 when the model has a method of that name, else 0. */
int nne_model_has_method(const nne_model_t *m, const char *method);

/* One step through `method` of the pristine model. *logits gets [B, S, V]
 * and present[0..n_past) n_past new references (on the model's device, in
 * its dtype); nothing is written on failure. The past tensors are only
 * read (the caller keeps its references). */
int nne_model_forward_cached(nne_model_t *m, const char *method,
                             const nne_tensor_t *input_ids,
                             const nne_tensor_t *attention_mask,
                             const nne_tensor_t *position_ids,
                             nne_tensor_t *const *past, size_t n_past,
                             nne_tensor_t **logits, nne_tensor_t **present,
                             nne_err_t *err);

/* ---- sites, hooks and variants ---------------------------------------------
 *
 * A site is a place in a forward where a value can be read or replaced: a
 * module's input or output, or a value of a node inside a module's own
 * forward code. A *variant* is a copy of the model's forward graph in which
 * every module on the way to a site is inlined (per instance: scripted
 * instances that share one graph are told apart by the GetAttr chain that
 * reaches them) and a hook op sits at each site. Modules with no site below
 * them stay calls of their original code. The model's own forward is never
 * touched and every variant reads the model's weights: nothing is copied.
 *
 * Only the site numbers are compiled in; what happens at a site is decided
 * at run time by the hook callback, so one variant serves every request that
 * touches the same sites.
 */

typedef enum nne_site_kind {
  NNE_SITE_INPUT = 1,      /* argument `index` of the module's forward (after self) */
  NNE_SITE_OUTPUT = 2,     /* output element `index` (0 for a plain tensor) */
  NNE_SITE_NODE = 3,       /* output `index` of a node of the module's own code */
  NNE_SITE_NODE_INPUT = 4, /* input `index` of that node */
} nne_site_kind_t;

typedef struct nne_site {
  int module;            /* index in the module tree */
  nne_site_kind_t kind;
  int index;
  const char *node_kind; /* NODE*: e.g. "aten::softmax" */
  int node_occurrence;   /* NODE*: 0 = the first node of that kind */
} nne_site_t;

/* One node of a module's own forward code: its graph, with helper functions
 * (prim::CallFunction) inlined and submodule calls (prim::CallMethod) left
 * as calls, in graph order (blocks of If/Loop included, depth first). */
typedef struct nne_node_info {
  const char *kind;      /* "aten::softmax", "prim::CallMethod", ... */
  int occurrence;        /* index among the nodes of the same kind */
  int n_inputs;
  int n_outputs;
  unsigned tensor_outputs; /* bit i set: output i is a Tensor (i < 32) */
  unsigned tensor_inputs;  /* bit i set: input i is a Tensor (i < 32) */
  const char *callee;    /* prim::CallMethod: the submodule path; else "" */
  const char *source;    /* one line of source it came from, or "" */
} nne_node_info_t;

/* The own-code nodes of module `module`, computed once and kept with the
 * model (borrowed, valid while a reference is held). Thread-safe. Fails with
 * NNE_EINVAL when the module has no forward. */
int nne_model_module_nodes(nne_model_t *m, int module,
                           const nne_node_info_t **nodes, size_t *n,
                           nne_err_t *err);

/* Number of tensor-or-not arguments of module's forward after self, and the
 * number of output elements (1 for a plain tensor, the tuple size for a
 * tuple); -1 when unknown. */
int nne_model_module_arity(nne_model_t *m, int module, int *n_inputs,
                           int *n_outputs, nne_err_t *err);

typedef struct nne_variant nne_variant_t;

/* Builds a variant with a hook at each of the n sites; the hook of sites[i]
 * reports site number i. Fails with NNE_EINVAL naming the site by position
 * ("site 3 (transformer.h.0.attn:aten::softmax#2): the module's own code
 * has 1 aten::softmax") for a module that does not exist or that forward
 * never calls, an index past the arguments or outputs, a value that is not
 * a tensor, or a node that is not there. n == 0 is allowed (a copy of the
 * forward with no hooks). */
int nne_variant_build(nne_model_t *m, const nne_site_t *sites, size_t n,
                      nne_variant_t **out, nne_err_t *err);

/* The same for another root method of the model (the cached-decoding
 * method): its calls of submodules' forward (or of the forwardN methods a
 * traced archive has for them) get the hooks. nne_variant_build is this
 * with "forward". */
int nne_variant_build_method(nne_model_t *m, const char *method,
                             const nne_site_t *sites, size_t n,
                             nne_variant_t **out, nne_err_t *err);

nne_variant_t *nne_variant_ref(nne_variant_t *v);
void nne_variant_unref(nne_variant_t *v); /* NULL is ignored */

/* Milliseconds the build took; bytes the variant holds beyond the model
 * (graph and executor state; grows after the first runs). */
double nne_variant_build_ms(const nne_variant_t *v);
size_t nne_variant_bytes(const nne_variant_t *v);

/* Called on the forward's thread each time a site fires (a module called
 * twice fires twice). `value` is borrowed for the duration of the call:
 * nne_tensor_ref it to keep it. To replace the value, store a new tensor in
 * *replace (the engine takes that reference); it must have the value's
 * shape, dtype and device, or the forward fails with NNE_EINVAL naming the
 * site. Return 0 to go on, or a negative NNE_E* code to stop the forward
 * (it then returns that code: cancellation, a failed write). */
typedef int (*nne_hook_fn)(void *ctx, int site, nne_tensor_t *value,
                           nne_tensor_t **replace);

/* nne_model_forward through a variant, with fn (may be NULL: hooks do
 * nothing) called at its sites. Several threads may run one variant at
 * once, each with its own fn/ctx. */
int nne_variant_forward(nne_variant_t *v, const nne_tensor_t *input_ids,
                        const nne_tensor_t *attention_mask, nne_hook_fn fn,
                        void *ctx, nne_tensor_t **logits, nne_err_t *err);

/* nne_model_forward_cached through a variant built for the cached method
 * (nne_variant_build_method), with fn called at its sites. NNE_EINVAL for
 * a variant of forward (and nne_variant_forward refuses one of another
 * method). */
int nne_variant_forward_cached(nne_variant_t *v, const nne_tensor_t *input_ids,
                               const nne_tensor_t *attention_mask,
                               const nne_tensor_t *position_ids,
                               nne_tensor_t *const *past, size_t n_past,
                               nne_hook_fn fn, void *ctx,
                               nne_tensor_t **logits, nne_tensor_t **present,
                               nne_err_t *err);

/* ---- edits on values -----------------------------------------------------
 *
 * What an edit does to the value at its site, applied by the daemon's hook
 * callback. Functional: the result is a new tensor (the hook's replacement);
 * the value itself is never written (it may be shared with the graph). */

typedef enum nne_edit_op {
  NNE_EDIT_SAVE = 1,    /* no change (the caller keeps a clone) */
  NNE_EDIT_REPLACE = 2, /* region := operand */
  NNE_EDIT_ADD = 3,     /* region += operand */
  NNE_EDIT_SCALE = 4,   /* region *= operand */
  NNE_EDIT_ZERO = 5,    /* region := 0 */
} nne_edit_op_t;

/* [start, stop) of dimension `dim`; negative dim and indices count from the
 * end; stop == 0 means to the end. */
typedef struct nne_dim_range {
  int dim;
  int64_t start;
  int64_t stop;
} nne_dim_range_t;

/* Applies op to the region of `value` selected by the ranges (all of it with
 * none) and returns the edited copy in *out. The operand is a tensor
 * (broadcastable to the region; moved to value's device and cast to its
 * dtype) or, when operand is NULL, `scalar`. NNE_EINVAL names the problem:
 * a range outside the value's shape ("dim 3 has size 7, range [5, 9)"), an
 * operand that does not broadcast ("[4] does not broadcast to region
 * [2, 7, 16]"), two ranges on one dimension. Thread-safe. */
int nne_tensor_apply_edit(const nne_tensor_t *value, nne_edit_op_t op,
                          const nne_tensor_t *operand, double scalar,
                          const nne_dim_range_t *ranges, size_t n_ranges,
                          nne_tensor_t **out, nne_err_t *err);

/* Checks, without a value, what nne_tensor_apply_edit would check once the
 * value's shape is known: used at Apply time with the shape seen at the site
 * in a probe run. */
int nne_edit_check(const int64_t *value_shape, int ndim, nne_edit_op_t op,
                   const nne_tensor_t *operand, const nne_dim_range_t *ranges,
                   size_t n_ranges, nne_err_t *err);

/* A copy of x on `device` ("cpu", "cuda:0"), e.g. an edit's operand moved
 * once to the model's device. */
int nne_tensor_to_device(const nne_tensor_t *x, const char *device,
                         nne_tensor_t **out, nne_err_t *err);

/* A copy of x on `device` in dtype `dt` (an edit's operand made ready for
 * its site once, at apply, rather than converted in every forward).
 * Narrowing a floating tensor (float32 to bfloat16 or float16) must not
 * turn a finite value infinite: NNE_EINVAL says how many would, and the
 * dtype's largest finite value. */
int nne_tensor_to(const nne_tensor_t *x, const char *device, nne_dtype_t dt,
                  nne_tensor_t **out, nne_err_t *err);

/* ---- graph inspection ------------------------------------------------------
 *
 * One module's forward graph as the pristine model runs it (variant NULL:
 * the module's own code, helper functions inlined, submodule calls as
 * calls) or as a variant runs it (the instance's inlined code, hooks
 * included). */

typedef enum nne_graph_node_kind {
  NNE_GRAPH_HOOK = 1,      /* nnedit::hook inserted by a variant */
  NNE_GRAPH_CALL = 2,      /* a submodule call, or an inlined call's boundary */
  NNE_GRAPH_OP = 3,        /* aten:: and other tensor operations */
  NNE_GRAPH_CONSTANT = 4,  /* prim::Constant */
  NNE_GRAPH_ATTRIBUTE = 5, /* prim::GetAttr */
  NNE_GRAPH_OTHER = 6,     /* lists, tuples, control flow, ... */
} nne_graph_node_kind_t;

typedef struct nne_graph_node {
  const char *op;          /* "aten::softmax" */
  nne_graph_node_kind_t kind;
  size_t n_inputs, n_outputs;
  const char *const *inputs;  /* value names, "%x.3" */
  const char *const *outputs;
  const char *instance;    /* module path whose code this node is */
  const char *selector;    /* "transformer.h.0.attn:aten::softmax#0", or "" */
  const char *source;      /* one line of source, or "" */
  const char *shape;       /* of output 0 when the graph knows it, or "" */
  int inserted;            /* a hook (or its plumbing) added by the variant */
  int depth;               /* block nesting */
  const char *callee;      /* NNE_GRAPH_CALL: the submodule path, or "" */
  int hook_site;           /* NNE_GRAPH_HOOK: the site number, else -1 */
} nne_graph_node_t;

typedef struct nne_graph nne_graph_t;

/* Builds the listing. module is a module index; variant may be NULL. The
 * result is owned by the caller (nne_graph_free); strings live inside it. */
int nne_graph_get(nne_model_t *m, int module, nne_variant_t *variant,
                  nne_graph_t **out, nne_err_t *err);
size_t nne_graph_node_count(const nne_graph_t *g);
const nne_graph_node_t *nne_graph_node(const nne_graph_t *g, size_t i);
/* TorchScript's own text of the graph shown. */
const char *nne_graph_text(const nne_graph_t *g);
/* True when a variant's code for this module differs from the pristine one
 * (it holds hooks). */
int nne_graph_edited(const nne_graph_t *g);
void nne_graph_free(nne_graph_t *g);

/* ---- tensor functions for traces ------------------------------------------
 *
 * The whitelist a trace's call nodes may use, dispatched to libtorch's own
 * operators (no TorchScript), with arguments by position and keyword as in
 * PyTorch:
 *   add sub mul div pow (a, b; tensors or scalars), neg, matmul (a, b),
 *   softmax log_softmax (x, dim), mean sum (x, dim=ints?, keepdim=bool?),
 *   max min (x, dim=int?, keepdim?: values), argmax argmin (x, dim?, keepdim?),
 *   norm (x, p=scalar?, dim=ints?, keepdim?), index (x; items),
 *   reshape view (x, ints), transpose (x, int, int), permute (x, ints),
 *   cat stack (tensors..., dim=int), zeros_like ones_like (x),
 *   full (ints, scalar, dtype?), topk topk_indices (x, k=int, dim=int?),
 *   where (cond, a, b), clamp (x, min=scalar?, max=scalar?),
 *   exp log tanh relu gelu (x), to (x, dtype).
 * The result is always one tensor. */

typedef enum nne_arg_kind {
  NNE_ARG_TENSOR = 1,
  NNE_ARG_SCALAR = 2, /* double */
  NNE_ARG_INT = 3,
  NNE_ARG_INTS = 4,   /* a list of int64 (dims, shapes) */
  NNE_ARG_BOOL = 5,
  NNE_ARG_DTYPE = 6,
} nne_arg_kind_t;

typedef struct nne_op_arg {
  nne_arg_kind_t kind;
  const char *name;            /* keyword, or NULL for positional */
  const nne_tensor_t *tensor;  /* TENSOR (NULL when only checking) */
  double scalar;
  int64_t integer;
  const int64_t *ints;
  size_t n_ints;
  int boolean;
  nne_dtype_t dtype;
} nne_op_arg_t;

typedef enum nne_index_kind {
  NNE_INDEX_INT = 1,
  NNE_INDEX_SLICE = 2,
  NNE_INDEX_ELLIPSIS = 3,
  NNE_INDEX_NEWAXIS = 4,
} nne_index_kind_t;

typedef struct nne_index_item {
  nne_index_kind_t kind;
  int64_t index;               /* INT */
  int64_t start, stop, step;   /* SLICE: step 0 means 1 */
  int has_start, has_stop;
} nne_index_item_t;

/* Checks a call before anything runs: the function is on the whitelist and
 * the arguments' kinds, count and keywords fit it (tensor values may be
 * NULL). NNE_EINVAL says what is wrong ("softmax: missing argument 'dim'",
 * "frobnicate: not a function a trace may call (add, sub, ...)"). */
int nne_op_check(const char *fn, const nne_op_arg_t *args, size_t n,
                 const nne_index_item_t *items, size_t n_items,
                 nne_err_t *err);

/* Runs it. Shape and dtype mismatches are NNE_EINVAL with libtorch's reason
 * ("matmul: mat1 and mat2 shapes cannot be multiplied (7x64 and 32x1000)").
 * Thread-safe; runs in inference mode. */
int nne_op_call(const char *fn, const nne_op_arg_t *args, size_t n,
                const nne_index_item_t *items, size_t n_items,
                nne_tensor_t **out, nne_err_t *err);

/* The bytes the call's result would take, found by running it on meta
 * tensors (shapes without storage) before anything is allocated: 0 for a
 * view of an input, and 0 when it cannot tell (an op without a meta kernel
 * in this libtorch; arguments the op refuses, which nne_op_call reports).
 * Binding errors as nne_op_check. Thread-safe. */
int nne_op_result_bytes(const char *fn, const nne_op_arg_t *args, size_t n,
                        const nne_index_item_t *items, size_t n_items,
                        uint64_t *bytes, nne_err_t *err);

/* Calls one submodule's forward on tensor inputs (e.g. a logit lens:
 * ln_final, then lm_head, on a layer's residual). Returns output element 0
 * (the whole output when it is a tensor). A parameter that the parent's
 * code fills from its own attributes (the tied embedding weight a traced
 * model passes to lm_head) is filled the same way when `inputs` are exactly
 * the other parameters. NNE_EINVAL for a module that forward never calls
 * with tensors alone, or inputs it refuses. */
int nne_model_call_module(nne_model_t *m, int module,
                          const nne_tensor_t *const *inputs, size_t n,
                          nne_tensor_t **out, nne_err_t *err);

#ifdef __cplusplus
}
#endif

#endif /* NNE_ENGINE_H */
