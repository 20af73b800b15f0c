// ops.cc — small tensor operations the daemon needs on saved values and the
// edits it applies at sites (see engine.h). Kept apart from tensor.cc so
// that the handle's own code stays about handles.
#include "engine_internal.h"

#include <c10/core/InferenceMode.h>

#include <cstdio>
#include <stdexcept>
#include <string>

extern "C" int nne_tensor_clone(const nne_tensor_t *x, nne_tensor_t **out,
                                nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "clone", [&]() -> int {
    c10::InferenceMode guard;
    nne__use_device(x->t.device());
    return nne__tensor_wrap(x->t.clone(at::MemoryFormat::Contiguous), out, err,
                            "clone");
  });
}

extern "C" int nne_tensor_split_last(const nne_tensor_t *x, int parts, int part,
                                     int heads, nne_tensor_t **out,
                                     nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "split", [&]() -> int {
    c10::InferenceMode guard;
    nne__use_device(x->t.device());
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

// ---- edits on values --------------------------------------------------
//
// An edit is applied inside a forward, once per firing of its site, so the
// checks below run on plain arrays before libtorch is touched, and the work
// reads the value once and writes the result once: one out-of-place op on
// the whole value, or (ranges) copies of the part outside the region plus
// one out-of-place op into the result's region. The value itself is never
// written: it may be an input of later nodes or alias a weight.

namespace {

// "[2, 7, 16]".
std::string shape_str(const int64_t *shape, int ndim) {
  std::string s = "[";
  for (int i = 0; i < ndim; i++)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int check_op(int op, nne_err_t *err) {
  if (op < NNE_EDIT_SAVE || op > NNE_EDIT_ZERO)
    return nne_err_set(err, NNE_EINVAL,
                       "op %d is not an edit op (1 save, 2 replace, 3 add, "
                       "4 scale, 5 zero)",
                       op);
  return 0;
}

// One dimension's [start, start + len) after resolving negative indices and
// stop == 0; len == size and start == 0 for a dimension without a range.
struct dim_sel {
  int64_t start = 0;
  int64_t len = 0;
  int range = -1; // the range that selected it, or -1
};

// Reads index `i` of a dimension of `size`: negative counts from the end.
// Returns -1 for anything left of 0, so that an index near INT64_MIN cannot
// overflow.
int64_t resolve_index(int64_t i, int64_t size) {
  if (i >= 0)
    return i;
  return i >= -size ? i + size : -1;
}

// Resolves the ranges against a value's shape; sel gets ndim entries.
int resolve_ranges(const int64_t *shape, int ndim,
                   const nne_dim_range_t *ranges, size_t n, dim_sel *sel,
                   nne_err_t *err) {
  for (int d = 0; d < ndim; d++) {
    sel[d].start = 0;
    sel[d].len = shape[d];
    sel[d].range = -1;
  }
  if (n > 0 && ranges == nullptr)
    return nne_err_set(err, NNE_EINVAL, "%zu ranges but no array", n);
  for (size_t i = 0; i < n; i++) {
    const nne_dim_range_t &r = ranges[i];
    int d = r.dim < 0 ? r.dim + ndim : r.dim;
    if (r.dim < -ndim || d >= ndim)
      return nne_err_set(err, NNE_EINVAL,
                         "range %zu: dim %d does not exist (the value has %d "
                         "dimension%s)",
                         i, r.dim, ndim, ndim == 1 ? "" : "s");
    if (sel[d].range >= 0)
      return nne_err_set(err, NNE_EINVAL,
                         "ranges %d and %zu are both on dim %d", sel[d].range,
                         i, d);
    const int64_t size = shape[d];
    int64_t start = resolve_index(r.start, size);
    int64_t stop = r.stop == 0 ? size : resolve_index(r.stop, size);
    if (start < 0 || stop < 0 || stop > size || start >= stop) {
      // The range as given, then as resolved when that differs.
      char resolved[64] = "";
      if (r.start < 0 || r.stop <= 0)
        std::snprintf(resolved, sizeof resolved, " = [%lld, %lld)",
                      static_cast<long long>(start),
                      static_cast<long long>(stop));
      bool empty = start >= 0 && stop >= 0 && stop <= size && start >= stop;
      return nne_err_set(
          err, NNE_EINVAL,
          "range %zu: dim %d has size %lld, range [%lld, "
          "%lld)%s%s",
          i, d, static_cast<long long>(size), static_cast<long long>(r.start),
          static_cast<long long>(r.stop), start < 0 || stop < 0 ? "" : resolved,
          empty ? " is empty" : "");
    }
    sel[d].start = start;
    sel[d].len = stop - start;
    sel[d].range = static_cast<int>(i);
  }
  return 0;
}

// NumPy's broadcast_to rule: aligned from the right, each operand dimension
// is 1 or the region's; the operand has no more dimensions than the region.
int check_broadcast(const nne_tensor_t *operand, const dim_sel *sel, int ndim,
                    nne_err_t *err) {
  bool ok = operand->ndim <= ndim;
  for (int k = 1; ok && k <= operand->ndim; k++) {
    int64_t o = operand->shape[operand->ndim - k];
    ok = o == 1 || o == sel[ndim - k].len;
  }
  if (ok)
    return 0;
  int64_t region[NNE_TENSOR_MAX_DIMS];
  for (int d = 0; d < ndim; d++)
    region[d] = sel[d].len;
  return nne_err_set(err, NNE_EINVAL,
                     "operand %s does not broadcast to region %s",
                     shape_str(operand->shape, operand->ndim).c_str(),
                     shape_str(region, ndim).c_str());
}

// Everything nne_edit_check and nne_tensor_apply_edit check.
int check_edit(const int64_t *shape, int ndim, int op,
               const nne_tensor_t *operand, const nne_dim_range_t *ranges,
               size_t n_ranges, dim_sel *sel, nne_err_t *err) {
  int rc = check_op(op, err);
  if (rc != 0)
    return rc;
  if (ndim < 0 || ndim > NNE_TENSOR_MAX_DIMS)
    return nne_err_set(err, NNE_EINVAL,
                       "the value has %d dimensions (0 to %d allowed)", ndim,
                       NNE_TENSOR_MAX_DIMS);
  if (ndim > 0 && shape == nullptr)
    return nne_err_set(err, NNE_EINVAL, "the value's shape is missing");
  for (int d = 0; d < ndim; d++)
    if (shape[d] < 0)
      return nne_err_set(err, NNE_EINVAL, "the value's dim %d is %lld", d,
                         static_cast<long long>(shape[d]));
  rc = resolve_ranges(shape, ndim, ranges, n_ranges, sel, err);
  if (rc != 0)
    return rc;
  // SAVE and ZERO take no operand; one given is ignored, not checked.
  bool uses_operand =
      op == NNE_EDIT_REPLACE || op == NNE_EDIT_ADD || op == NNE_EDIT_SCALE;
  if (uses_operand && operand != nullptr)
    return check_broadcast(operand, sel, ndim, err);
  return 0;
}

} // namespace

extern "C" int nne_edit_check(const int64_t *value_shape, int ndim,
                              nne_edit_op_t op, const nne_tensor_t *operand,
                              const nne_dim_range_t *ranges, size_t n_ranges,
                              nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "edit", [&]() -> int {
    dim_sel sel[NNE_TENSOR_MAX_DIMS];
    return check_edit(value_shape, ndim, nne__enum_int(op), operand, ranges,
                      n_ranges, sel, err);
  });
}

extern "C" int nne_tensor_apply_edit(const nne_tensor_t *value,
                                     nne_edit_op_t op,
                                     const nne_tensor_t *operand, double scalar,
                                     const nne_dim_range_t *ranges,
                                     size_t n_ranges, nne_tensor_t **out,
                                     nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "edit", [&]() -> int {
    if (value == nullptr || out == nullptr)
      return nne_err_set(err, NNE_EINVAL, "edit: value or out is NULL");
    const int opi = nne__enum_int(op);
    dim_sel sel[NNE_TENSOR_MAX_DIMS];
    int rc = check_edit(value->shape, value->ndim, opi, operand, ranges,
                        n_ranges, sel, err);
    if (rc != 0)
      return rc;
    if (opi == NNE_EDIT_SAVE) {
      // No change: a new handle on the value's own memory, not a clone (a
      // caller that keeps the value past the hook clones it: later nodes
      // may write to it in place). A new handle rather than the value's
      // with one more reference, so that *out is never `value` and a hook
      // can treat every result alike (replace with it, or drop it).
      return nne__tensor_wrap(value->t, out, err, "edit");
    }
    // Hooks run in inference mode, but a caller outside a forward may not.
    c10::InferenceMode guard;
    const at::Tensor &v = value->t;
    nne__use_device(v.device());
    // The operand in the value's dtype on its device, so that the op is
    // computed in the value's dtype (a float64 operand onto a float32 value
    // is rounded to float32 first) and never changes the result's dtype.
    at::Tensor x;
    if (opi != NNE_EDIT_ZERO) {
      if (operand != nullptr) {
        x = operand->t.to(v.device(), v.scalar_type());
      } else {
        // A scalar the value's dtype cannot hold (1e300 for a float32
        // value, NaN for an int64 one) makes libtorch's conversion throw a
        // plain std::runtime_error, which the guard would report as our own
        // failure (INTERNAL); it is the edit's operand that is wrong.
        try {
          x = at::scalar_tensor(c10::Scalar(scalar), v.options());
        } catch (const std::runtime_error &) {
          return nne_err_set(err, NNE_EINVAL,
                             "edit: the scalar %g does not fit the value's "
                             "dtype %s",
                             scalar, nne_dtype_name(value->dtype));
        }
      }
    }
    bool whole = true;
    for (int d = 0; d < value->ndim; d++)
      whole = whole && sel[d].start == 0 && sel[d].len == value->shape[d];
    at::Tensor r;
    if (whole) {
      // One out-of-place op: reads the value once, writes the result once.
      switch (opi) {
      case NNE_EDIT_REPLACE:
        r = at::empty_like(v);
        r.copy_(x);
        break;
      case NNE_EDIT_ADD: r = at::add(v, x); break;
      case NNE_EDIT_SCALE: r = at::mul(v, x); break;
      default: r = at::zeros_like(v); break;
      }
    } else {
      // One pass too: a fresh tensor whose part outside the region is
      // copied from the value (at most two slabs per ranged dimension) and
      // whose region is computed from the value's region. A clone followed
      // by an in-place op on the region would read and write the region
      // twice (~1.9x the cost of the whole-value op on a 3 MiB value).
      r = at::empty(v.sizes(), v.options());
      at::Tensor src = v, dst = r;
      for (int d = 0; d < value->ndim; d++) {
        if (sel[d].range < 0)
          continue;
        const int64_t size = value->shape[d], a = sel[d].start,
                      b = sel[d].start + sel[d].len;
        if (a > 0)
          dst.narrow(d, 0, a).copy_(src.narrow(d, 0, a));
        if (b < size)
          dst.narrow(d, b, size - b).copy_(src.narrow(d, b, size - b));
        src = src.narrow(d, a, sel[d].len);
        dst = dst.narrow(d, a, sel[d].len);
      }
      switch (opi) {
      case NNE_EDIT_REPLACE: dst.copy_(x); break;
      case NNE_EDIT_ADD: at::add_out(dst, src, x); break;
      case NNE_EDIT_SCALE: at::mul_out(dst, src, x); break;
      default: dst.zero_(); break;
      }
    }
    return nne__tensor_wrap(std::move(r), out, err, "edit");
  });
}

extern "C" int nne_tensor_zeros(nne_dtype_t dt, const int64_t *shape,
                                int ndim, const char *device,
                                nne_tensor_t **out, nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "zeros", [&]() -> int {
    at::ScalarType st;
    if (!nne__scalar_from_dtype(nne__dtype_int(dt), &st))
      return nne_err_set(err, NNE_EINVAL, "zeros: invalid dtype %d",
                         nne__dtype_int(dt));
    if (ndim < 0 || ndim > NNE_TENSOR_MAX_DIMS || (ndim > 0 && shape == nullptr))
      return nne_err_set(err, NNE_EINVAL, "zeros: %d dimensions", ndim);
    if (out == nullptr)
      return nne_err_set(err, NNE_EINVAL, "zeros: out is NULL");
    for (int i = 0; i < ndim; i++)
      if (shape[i] < 0)
        return nne_err_set(err, NNE_EINVAL, "zeros: shape[%d] is negative", i);
    std::string canon;
    at::Device dev(at::kCPU);
    int rc = nne__device_parse(device, &canon, &dev, err);
    if (rc != 0)
      return rc;
    c10::InferenceMode guard;
    nne__use_device(dev);
    std::vector<int64_t> sizes(shape, shape + ndim);
    return nne__tensor_wrap(
        at::zeros(sizes, at::TensorOptions().dtype(st).device(dev)), out, err,
        "zeros");
  });
}

extern "C" int nne_tensor_to(const nne_tensor_t *x, const char *device,
                             nne_dtype_t dt, nne_tensor_t **out,
                             nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "convert", [&]() -> int {
    if (x == nullptr || out == nullptr)
      return nne_err_set(err, NNE_EINVAL, "convert: x or out is NULL");
    std::string canon;
    at::Device dev(at::kCPU);
    int rc = nne__device_parse(device, &canon, &dev, err);
    if (rc != 0)
      return rc;
    at::ScalarType st;
    if (!nne__scalar_from_dtype(nne__dtype_int(dt), &st))
      return nne_err_set(err, NNE_EINVAL, "convert: invalid dtype %d",
                         nne__dtype_int(dt));
    c10::InferenceMode guard;
    nne__use_device(dev);
    at::Tensor y = x->t.to(dev, st, /*non_blocking=*/false, /*copy=*/true);
    const at::Tensor &src = x->t;
    if (src.is_floating_point() && at::isFloatingType(st) &&
        static_cast<int64_t>(c10::elementSize(st)) < src.element_size()) {
      // Counted where the copy is (its device), compared as booleans so
      // that nothing is converted twice.
      int64_t n = at::logical_and(at::isinf(y),
                                  at::isfinite(src).to(y.device()))
                      .sum()
                      .item<int64_t>();
      if (n > 0) {
        double big = st == at::kHalf ? 65504.0
                     : st == at::kBFloat16 ? 3.3895313892515355e38
                                           : 3.4028234663852886e38;
        return nne_err_set(err, NNE_EINVAL,
                           "%lld of %lld values are beyond %s's range "
                           "(largest finite %g)",
                           static_cast<long long>(n),
                           static_cast<long long>(src.numel()),
                           nne_dtype_name(dt), big);
      }
    }
    return nne__tensor_wrap(std::move(y), out, err, "convert");
  });
}

extern "C" int nne_tensor_to_device(const nne_tensor_t *x, const char *device,
                                    nne_tensor_t **out, nne_err_t *err) {
  if (x == nullptr || out == nullptr)
    return nne_err_set(err, NNE_EINVAL, "to device: x or out is NULL");
  // A copy even when x is already there, as documented (nne_tensor_to
  // always copies).
  return nne_tensor_to(x, device, x->dtype, out, err);
}
