// engine.cc — process-wide pieces of the shim: dtypes, devices, threads and
// the translation of libtorch errors. Tensors are in tensor.cc, models in
// model.cc.
#include "engine_internal.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <cstring>
#include <string>
#include <string_view>

namespace {

struct dtype_row {
  nne_dtype_t dt;
  at::ScalarType st;
  size_t size;
  const char *name;
};

// One row per nne_dtype_t; the order is irrelevant, the lookups are linear
// over ten entries.
const dtype_row k_dtypes[] = {
    {NNE_DTYPE_F32, at::kFloat, 4, "float32"},
    {NNE_DTYPE_F16, at::kHalf, 2, "float16"},
    {NNE_DTYPE_BF16, at::kBFloat16, 2, "bfloat16"},
    {NNE_DTYPE_F64, at::kDouble, 8, "float64"},
    {NNE_DTYPE_I64, at::kLong, 8, "int64"},
    {NNE_DTYPE_I32, at::kInt, 4, "int32"},
    {NNE_DTYPE_I16, at::kShort, 2, "int16"},
    {NNE_DTYPE_I8, at::kChar, 1, "int8"},
    {NNE_DTYPE_U8, at::kByte, 1, "uint8"},
    {NNE_DTYPE_BOOL, at::kBool, 1, "bool"},
};

const dtype_row *dtype_find(int dt) {
  for (const dtype_row &r : k_dtypes)
    if (static_cast<int>(r.dt) == dt)
      return &r;
  return nullptr;
}

} // namespace

bool nne__dtype_from_scalar(at::ScalarType st, nne_dtype_t *out) {
  for (const dtype_row &r : k_dtypes) {
    if (r.st == st) {
      *out = r.dt;
      return true;
    }
  }
  return false;
}

bool nne__scalar_from_dtype(int dt, at::ScalarType *out) {
  const dtype_row *r = dtype_find(dt);
  if (r == nullptr)
    return false;
  *out = r->st;
  return true;
}

namespace {

const char k_interpreter_marker[] =
    "The following operation failed in the TorchScript interpreter";

// An error raised while the TorchScript interpreter runs a model reads
//   The following operation failed in the TorchScript interpreter.
//   Traceback of TorchScript, serialized code (most recent call last):
//     File "code/__torch__/...", line 12, in forward
//     ...
//   RuntimeError: index out of range in self
// Only the last paragraph tells the caller what was wrong; the traceback is
// for the model's author and can be kilobytes long (and a traced model's
// "original code" part has unindented lines of Python). Returns where that
// paragraph starts: the last line that begins in column 0 (the serialized
// traceback's lines are indented). Call it on a message whose tails
// (message_end) are cut: libtorch's CUDA advice is unindented too.
size_t error_start(const char *msg, size_t len) {
  if (std::strstr(msg, k_interpreter_marker) == nullptr)
    return 0;
  for (size_t i = len; i > 1; i--) {
    if (msg[i - 2] == '\n' && msg[i - 1] != ' ' && msg[i - 1] != '\n')
      return i - 1;
  }
  return 0;
}

// Where the error proper ends: libtorch appends advice for CUDA errors and,
// with TORCH_SHOW_CPP_STACKTRACES=1, a C++ stack; neither is for a client.
size_t message_end(const char *msg, size_t start, size_t len) {
  static const char *const tails[] = {"\nCUDA kernel errors might be",
                                      "\nException raised from "};
  std::string_view body(msg + start, len - start);
  for (const char *t : tails) {
    size_t at = body.find(t);
    if (at != std::string_view::npos)
      len = start + at;
  }
  while (len > start && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
    len--;
  return len;
}

} // namespace

bool nne__is_interpreter_error(const char *what) noexcept {
  return what != nullptr && std::strstr(what, k_interpreter_marker) != nullptr;
}

int nne__err_libtorch(nne_err_t *err, int code, const char *ctx,
                      const char *what) noexcept {
  if (what == nullptr)
    what = "(no message)";
  size_t len = std::strlen(what);
  while (len > 0 && (what[len - 1] == '\n' || what[len - 1] == ' '))
    len--; // no trailing blank lines in a one-line status message
  len = message_end(what, 0, len);
  size_t start = error_start(what, len);
  // libtorch has no out-of-memory type that survives the interpreter; its
  // allocators' messages do.
  std::string_view body(what + start, len - start);
  if (code == NNE_ENOMEM || nne__says_out_of_memory(body)) {
    // The daemon adds the model and its device; the bytes come from here.
    try {
      std::string m = nne__oom_message(body);
      return nne_err_set(err, NNE_ENOMEM, "%s: %s", ctx, m.c_str());
    } catch (...) {
      return nne_err_set(err, NNE_ENOMEM, "%s: out of memory", ctx);
    }
  }
  return nne_err_set(err, code, "%s: %.*s", ctx, static_cast<int>(len - start),
                     what + start);
}

extern "C" {

size_t nne_dtype_size(nne_dtype_t dt) {
  const dtype_row *r = dtype_find(nne__dtype_int(dt));
  return r == nullptr ? 0 : r->size;
}

const char *nne_dtype_name(nne_dtype_t dt) {
  const dtype_row *r = dtype_find(nne__dtype_int(dt));
  return r == nullptr ? "invalid" : r->name;
}

nne_dtype_t nne_dtype_parse(const char *name) {
  static const struct {
    const char *alias;
    nne_dtype_t dt;
  } aliases[] = {
      {"fp32", NNE_DTYPE_F32},  {"float", NNE_DTYPE_F32},
      {"half", NNE_DTYPE_F16},  {"fp16", NNE_DTYPE_F16},
      {"bf16", NNE_DTYPE_BF16},
  };
  if (name == nullptr)
    return NNE_DTYPE_INVALID;
  for (const dtype_row &r : k_dtypes)
    if (std::strcmp(name, r.name) == 0)
      return r.dt;
  for (const auto &a : aliases)
    if (std::strcmp(name, a.alias) == 0)
      return a.dt;
  return NNE_DTYPE_INVALID;
}

int nne_engine_init(const nne_engine_opts_t *opts, nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "engine init", [&]() -> int {
    int n = opts != nullptr ? opts->intra_op_threads : 0;
    if (n < 0)
      return nne_err_set(err, NNE_EINVAL,
                         "intra_op_threads: %d is negative (0 keeps "
                         "libtorch's default)",
                         n);
    if (n == 0)
      return 0;
    // With OpenMP, a thread picks the count up the first time it runs a
    // parallel op, so a later call changes threads that have not computed
    // yet; the daemon calls this once, before its executors start.
    at::set_num_threads(n);

    // The inter-op pool (used only by models that fork) takes its size once,
    // before it is first used; after that libtorch throws. Size it like the
    // intra-op pool on the first call and leave it alone afterwards, so that
    // calling init again is harmless.
    static std::atomic<bool> interop_tried{false};
    if (!interop_tried.exchange(true)) {
      try {
        at::set_num_interop_threads(n);
      } catch (const c10::Error &) {
        // Too late: something already used the pool. Its default size is
        // not worth failing start-up for.
      }
    }
    return 0;
  });
}

const char *nne_engine_torch_version(void) {
  // The version of the headers the shim was built with; libtorch has no
  // runtime query in C++. Debian's 1.13.1 packages say "1.13.0" here.
  return TORCH_VERSION;
}

int nne_engine_cuda_device_count(void) {
  try {
    return static_cast<int>(torch::cuda::device_count());
  } catch (...) {
    // A broken driver makes the CUDA hooks throw; for us that is no GPU.
    return 0;
  }
}

} // extern "C"

// Shared by nne_engine_device_parse and nne_model_load.
int nne__device_parse(const char *device, std::string *canon, at::Device *dev,
                      nne_err_t *err) {
  if (device == nullptr)
    return nne_err_set(err, NNE_EINVAL, "device: missing");
  if (std::strcmp(device, "cpu") == 0) {
    *canon = "cpu";
    *dev = at::Device(at::kCPU);
    return 0;
  }
  long index = 0;
  if (std::strcmp(device, "cuda") != 0) {
    const char *p = device;
    if (std::strncmp(p, "cuda:", 5) != 0)
      return nne_err_set(err, NNE_EINVAL,
                         "device '%s': expected \"cpu\", \"cuda\" or "
                         "\"cuda:N\"",
                         device);
    p += 5;
    // Digits only: no sign, no spaces, at most four of them.
    size_t nd = std::strspn(p, "0123456789");
    if (nd == 0 || p[nd] != '\0' || nd > 4)
      return nne_err_set(err, NNE_EINVAL,
                         "device '%s': expected \"cuda:N\" with N a device "
                         "number",
                         device);
    index = std::strtol(p, nullptr, 10);
  }
  int count = nne_engine_cuda_device_count();
  if (count == 0)
    return nne_err_set(err, NNE_EINVAL,
                       "device '%s': CUDA is not available in this build or "
                       "on this machine",
                       device);
  if (index >= count)
    return nne_err_set(err, NNE_EINVAL,
                       "device '%s': this machine has %d CUDA device%s "
                       "(cuda:0..cuda:%d)",
                       device, count, count == 1 ? "" : "s", count - 1);
  *canon = "cuda:" + std::to_string(index);
  *dev = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
  return 0;
}

extern "C" int nne_engine_device_parse(const char *device, char *canon,
                                       size_t canon_len, nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "device", [&]() -> int {
    std::string c;
    at::Device dev(at::kCPU);
    int rc = nne__device_parse(device, &c, &dev, err);
    if (rc != 0)
      return rc;
    if (canon == nullptr || canon_len <= c.size())
      return nne_err_set(err, NNE_EINVAL,
                         "device '%s': the buffer for its canonical name "
                         "needs %zu bytes",
                         device, c.size() + 1);
    std::memcpy(canon, c.c_str(), c.size() + 1);
    return 0;
  });
}
