// tensor.cc — tensor handles: wrapping, host bytes, and the two small
// post-processing ops the daemon needs on logits (pick a position, top-k).
#include "engine_internal.h"

#include <c10/core/InferenceMode.h>

#include <cstring>
#include <limits>

int nne__tensor_wrap(at::Tensor t, nne_tensor_t **out, nne_err_t *err,
                     const char *what) {
  nne_dtype_t dt;
  if (!nne__dtype_from_scalar(t.scalar_type(), &dt))
    return nne_err_set(err, NNE_EINVAL, "%s: dtype %s is not supported", what,
                       c10::toString(t.scalar_type()));
  if (t.dim() > NNE_TENSOR_MAX_DIMS)
    return nne_err_set(err, NNE_EINVAL, "%s: %d dimensions (at most %d)", what,
                       static_cast<int>(t.dim()), NNE_TENSOR_MAX_DIMS);
  nne_tensor_t *h = new nne_tensor_t;
  h->dtype = dt;
  h->ndim = static_cast<int>(t.dim());
  for (int i = 0; i < h->ndim; i++)
    h->shape[i] = t.size(i);
  h->numel = t.numel();
  h->t = std::move(t);
  *out = h;
  return 0;
}

// Device-to-host copies up to this size go through page-locked memory.
constexpr int64_t k_pinned_max = int64_t{64} << 20;

extern "C" {

int nne_tensor_from_host(nne_dtype_t dt, const int64_t *shape, int ndim,
                         const void *data, nne_tensor_t **out, nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "tensor", [&]() -> int {
    at::ScalarType st;
    if (!nne__scalar_from_dtype(nne__dtype_int(dt), &st))
      return nne_err_set(err, NNE_EINVAL, "tensor: invalid dtype %d",
                         nne__dtype_int(dt));
    if (ndim < 0 || ndim > NNE_TENSOR_MAX_DIMS)
      return nne_err_set(err, NNE_EINVAL,
                         "tensor: %d dimensions (0 to %d allowed)", ndim,
                         NNE_TENSOR_MAX_DIMS);
    if (ndim > 0 && shape == nullptr)
      return nne_err_set(err, NNE_EINVAL, "tensor: shape is missing");
    if (out == nullptr)
      return nne_err_set(err, NNE_EINVAL, "tensor: out is NULL");
    // Check sizes before libtorch sees them: a product that overflows would
    // otherwise become a small allocation and a large memcpy.
    size_t itemsize = nne_dtype_size(dt);
    size_t nbytes = itemsize;
    std::vector<int64_t> sizes(ndim);
    for (int i = 0; i < ndim; i++) {
      if (shape[i] < 0)
        return nne_err_set(err, NNE_EINVAL,
                           "tensor: shape[%d] = %lld is "
                           "negative",
                           i, static_cast<long long>(shape[i]));
      sizes[i] = shape[i];
      if (shape[i] != 0 && nbytes > std::numeric_limits<size_t>::max() /
                                        static_cast<uint64_t>(shape[i]))
        return nne_err_set(err, NNE_EINVAL,
                           "tensor: shape is too large for memory");
      nbytes *= static_cast<size_t>(shape[i]);
    }
    at::Tensor t;
    if (data == nullptr) {
      t = at::zeros(sizes, at::TensorOptions().dtype(st));
    } else {
      t = at::empty(sizes, at::TensorOptions().dtype(st));
      if (nbytes > 0)
        std::memcpy(t.data_ptr(), data, nbytes);
    }
    nne_tensor_t *h = nullptr;
    int rc = nne__tensor_wrap(std::move(t), &h, err, "tensor");
    if (rc == 0)
      *out = h;
    return rc;
  });
}

nne_tensor_t *nne_tensor_ref(nne_tensor_t *t) {
  if (t != nullptr)
    t->refs.fetch_add(1, std::memory_order_relaxed);
  return t;
}

void nne_tensor_unref(nne_tensor_t *t) {
  if (t == nullptr)
    return;
  // acq_rel: the thread that frees must see every write made by the threads
  // that dropped their references before it.
  // Every release, not only the last: the thread that drops the last
  // reference may not be the one whose kernels still read the memory.
  try {
    nne__tensor_release_on_stream(t->t);
  } catch (...) {
    // Only a broken CUDA context makes this throw; release all the same.
  }
  if (t->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    try {
      delete t;
    } catch (...) {
      // at::Tensor's destructor does not throw; this keeps C callers safe
      // if a custom allocator's free ever does.
    }
  }
}

nne_dtype_t nne_tensor_dtype(const nne_tensor_t *t) {
  return t->dtype;
}

int nne_tensor_ndim(const nne_tensor_t *t) {
  return t->ndim;
}

const int64_t *nne_tensor_shape(const nne_tensor_t *t) {
  return t->shape;
}

int64_t nne_tensor_numel(const nne_tensor_t *t) {
  return t->numel;
}

size_t nne_tensor_nbytes(const nne_tensor_t *t) {
  return static_cast<size_t>(t->numel) * nne_dtype_size(t->dtype);
}

int nne_tensor_host_data(nne_tensor_t *t, const void **data, nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "tensor host data", [&]() -> int {
    if (t == nullptr || data == nullptr)
      return nne_err_set(err, NNE_EINVAL, "tensor host data: NULL argument");
    const void *p = t->host_ptr.load(std::memory_order_acquire);
    if (p == nullptr) {
      std::lock_guard<std::mutex> lock(t->host_mu);
      p = t->host_ptr.load(std::memory_order_relaxed);
      if (p == nullptr) {
        // A CPU tensor that is already contiguous is used as it is (no copy):
        // nothing in the engine writes to a tensor after handing it out.
        at::Tensor h;
        if (t->t.device().is_cpu()) {
          h = t->t.contiguous();
        } else if (t->t.numel() * t->t.element_size() > k_pinned_max) {
          // libtorch's caching host allocator keeps page-locked blocks (at a
          // power of two) for good: a multi-GB logits copy would pin that
          // much host memory for the life of the process. Large copies go
          // through pageable memory (synchronous on this thread's stream).
          h = t->t.contiguous().to(at::kCPU);
        } else {
          // From a device: into page-locked memory (libtorch's caching host
          // allocator reuses it), as an asynchronous copy on this thread's
          // stream, then a wait for that stream alone. A pageable copy
          // would stage through a driver buffer; a device-wide wait would
          // hold this request behind every other thread's kernels.
          at::Tensor src = t->t.contiguous();
          h = at::empty(src.sizes(), src.options()
                                         .device(at::kCPU)
                                         .pinned_memory(true));
          h.copy_(src, /*non_blocking=*/true);
          nne__stream_sync(src.device());
        }
        p = h.data_ptr();
        // An empty tensor may have no storage at all; callers still get a
        // valid (never dereferenced) pointer.
        static const char empty_byte = 0;
        if (p == nullptr)
          p = &empty_byte;
        t->host = std::move(h);
        t->host_ptr.store(p, std::memory_order_release);
      }
    }
    *data = p;
    return 0;
  });
}

int nne_tensor_select_positions(const nne_tensor_t *x, const int64_t *pos,
                                nne_tensor_t **out, nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "select positions", [&]() -> int {
    if (x == nullptr || pos == nullptr || out == nullptr)
      return nne_err_set(err, NNE_EINVAL, "select positions: NULL argument");
    if (x->ndim != 3)
      return nne_err_set(err, NNE_EINVAL,
                         "select positions: expected a [B, S, V] tensor, got "
                         "%d dimensions",
                         x->ndim);
    int64_t B = x->shape[0], S = x->shape[1];
    for (int64_t b = 0; b < B; b++)
      if (pos[b] < 0 || pos[b] >= S)
        return nne_err_set(err, NNE_EINVAL,
                           "select positions: pos[%lld] = %lld is outside "
                           "[0, %lld)",
                           static_cast<long long>(b),
                           static_cast<long long>(pos[b]),
                           static_cast<long long>(S));
    c10::InferenceMode guard;
    nne__use_device(x->t.device());
    // Row b of the result is row b*S + pos[b] of x seen as [B*S, V].
    at::Tensor flat = at::empty({B}, at::TensorOptions().dtype(at::kLong));
    int64_t *f = flat.data_ptr<int64_t>();
    for (int64_t b = 0; b < B; b++)
      f[b] = b * S + pos[b];
    at::Tensor sel = x->t.reshape({B * S, x->shape[2]})
                         .index_select(0, flat.to(x->t.device()))
                         .to(at::kCPU, at::kFloat)
                         .contiguous();
    nne_tensor_t *h = nullptr;
    int rc = nne__tensor_wrap(std::move(sel), &h, err, "select positions");
    if (rc == 0)
      *out = h;
    return rc;
  });
}

int nne_tensor_topk(const nne_tensor_t *x, int k, nne_tensor_t **ids,
                    nne_tensor_t **values, nne_tensor_t **probs,
                    nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "topk", [&]() -> int {
    if (x == nullptr || ids == nullptr || values == nullptr || probs == nullptr)
      return nne_err_set(err, NNE_EINVAL, "topk: NULL argument");
    if (x->ndim != 2)
      return nne_err_set(err, NNE_EINVAL,
                         "topk: expected a [B, V] tensor, got %d dimensions",
                         x->ndim);
    int64_t V = x->shape[1];
    if (k < 1 || k > V)
      return nne_err_set(err, NNE_EINVAL, "topk: k = %d is outside [1, %lld]",
                         k, static_cast<long long>(V));
    c10::InferenceMode guard;
    nne__use_device(x->t.device());
    at::Tensor xf = x->t.to(at::kFloat);
    auto top = at::topk(xf, k, /*dim=*/-1, /*largest=*/true, /*sorted=*/true);
    at::Tensor val = std::get<0>(top);
    at::Tensor idx = std::get<1>(top);
    at::Tensor prob = at::softmax(xf, -1).gather(-1, idx);
    // Each handle is owned until all three exist, so that a failure in the
    // middle releases the ones already made.
    nne_tensor_t *raw[3] = {nullptr, nullptr, nullptr};
    nne__tensor_ptr own[3];
    at::Tensor parts[3] = {idx, val, prob};
    for (int i = 0; i < 3; i++) {
      int rc = nne__tensor_wrap(parts[i].to(at::kCPU).contiguous(), &raw[i],
                                err, "topk");
      if (rc != 0)
        return rc;
      own[i].reset(raw[i]);
    }
    *ids = own[0].release();
    *values = own[1].release();
    *probs = own[2].release();
    return 0;
  });
}

} // extern "C"
