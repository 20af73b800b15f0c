// ops.cc — small tensor operations the daemon needs on saved values
// (see engine.h). Kept apart from tensor.cc so that the handle's own code
// stays about handles.
#include "engine_internal.h"

extern "C" int nne_tensor_clone(const nne_tensor_t *x, nne_tensor_t **out,
                                nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "clone", [&]() -> int {
    c10::InferenceMode guard;
    return nne__tensor_wrap(x->t.clone(at::MemoryFormat::Contiguous), out, err,
                            "clone");
  });
}

extern "C" int nne_tensor_split_last(const nne_tensor_t *x, int parts, int part,
                                     int heads, nne_tensor_t **out,
                                     nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "split", [&]() -> int {
    c10::InferenceMode guard;
    const at::Tensor &t = x->t;
    if (t.dim() < 1 || parts < 1 || part < 0 || part >= parts || heads < 0)
      return nne_err_set(err, NNE_EINVAL,
                         "split: part %d of %d of a %d-d tensor", part, parts,
                         (int)t.dim());
    int64_t last = t.size(-1);
    at::Tensor v = t;
    if (heads > 0) {
      if (last % heads != 0)
        return nne_err_set(err, NNE_EINVAL,
                           "split: last dimension %lld is not a multiple of "
                           "%d heads",
                           (long long)last, heads);
      std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end() - 1);
      shape.push_back(heads);
      shape.push_back(last / heads);
      v = t.reshape(shape);
      last = last / heads;
    }
    if (last % parts != 0)
      return nne_err_set(err, NNE_EINVAL,
                         "split: last dimension %lld does not split into %d "
                         "parts",
                         (long long)last, parts);
    int64_t w = last / parts;
    return nne__tensor_wrap(
        v.narrow(-1, part * w, w).clone(at::MemoryFormat::Contiguous), out,
        err, "split");
  });
}
