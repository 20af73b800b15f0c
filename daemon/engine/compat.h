/* compat.h — the few spellings that differ between the libtorch versions the
 * engine builds against: Debian's 1.13 and the 2.x (2.0 ... 2.11) inside a
 * PyTorch wheel. C++ only; included from engine_internal.h. engine.h's header
 * comment lists every API difference and how the engine copes with it.
 *
 * Only what one source cannot spell for every version lives here; an API
 * that is the same everywhere is used directly in the .cc files.
 */
#ifndef NNE_ENGINE_COMPAT_H
#define NNE_ENGINE_COMPAT_H

#ifndef __cplusplus
#error "compat.h is C++ only"
#endif

/* No <c10/util/Optional.h>: that header exists only for the deprecated
 * alias below and may go with it. */
#include <ATen/TensorIndexing.h>
#include <torch/version.h>

#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>

/* True when the headers are libtorch major.minor or later. <torch/version.h>
 * has defined TORCH_VERSION_MAJOR/MINOR since 1.10 (it is generated from
 * version.h.in in every wheel and in Debian's package). */
#define NNE_TORCH_AT_LEAST(major, minor)                                       \
  (TORCH_VERSION_MAJOR > (major) ||                                            \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace nne_compat {

/* The optional type libtorch's signatures take. In 1.13 c10::optional is a
 * class of its own (std::optional does not convert to it); later it became
 * an alias of std::optional, the alias has been deprecated since late 2024
 * (hidden under C10_NODEPRECATED) and is to be removed. From 2.4 on the engine
 * names std::optional itself, so that the alias's removal cannot break it. */
#if NNE_TORCH_AT_LEAST(2, 4)
using std::nullopt;
using std::optional;
#else
using c10::nullopt;
using c10::optional;
#endif

/* The integer type of at::indexing::Slice's bounds: int64_t in 1.13,
 * c10::SymInt in 2.x. Read off the class rather than keyed on a version, so
 * that it is right whichever release made the change. */
using slice_int = std::decay_t<decltype(
    std::declval<const at::indexing::Slice &>().start())>;

/* at::indexing::Slice(start, stop, step) from plain integers; an absent
 * bound is Python's None. Each bound is converted to the bound type first:
 * an optional<int64_t> does not convert to 1.13-style c10::optional<SymInt>,
 * and an int64_t would need two user conversions to reach optional<SymInt>. */
inline at::indexing::Slice slice(optional<int64_t> start,
                                 optional<int64_t> stop, int64_t step) {
  auto bound = [](const optional<int64_t> &v) -> optional<slice_int> {
    if (!v)
      return nullopt;
    return slice_int(*v);
  };
  return at::indexing::Slice(bound(start), bound(stop),
                             optional<slice_int>(slice_int(step)));
}

} // namespace nne_compat

#endif /* NNE_ENGINE_COMPAT_H */
