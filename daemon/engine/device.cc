// device.cc — what the shim does about devices beyond naming them: a stream
// of its own for every executor thread, waiting for that stream, handing
// memory from one thread's stream to another's, reading the devices' memory
// figures, and recognising an allocator's out-of-memory message.
//
// Only c10's device-generic interfaces are used (VirtualGuardImpl, Stream),
// so this compiles against a CPU-only libtorch (Debian's) and does nothing
// there; with a CUDA libtorch the same calls reach the CUDA implementation.
// The caching allocator's figures need c10_cuda's header and are compiled
// only when CMake found it (NNE_WITH_CUDA).
#include "engine_internal.h"

#include <c10/core/Stream.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#if NNE_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

// An executor thread's streams: attach() enables them; a device gets its
// stream when the thread first computes there (nne__use_device), so that a
// daemon serving on cuda:0 never creates contexts or streams on the other
// GPUs of the machine.
constexpr int k_max_devices = 64;

struct thread_streams {
  bool enabled = false;  // an executor thread (nne_engine_thread_attach)
  uint64_t used = 0;     // bit i: this thread has its stream on cuda:i
};

thread_local thread_streams t_streams;

// "N bytes" for a size the way a person reads it: "1.50 GiB".
std::string human_bytes(double b) {
  static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024.0 && u < 4) {
    b /= 1024.0;
    u++;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%.0f bytes", b);
  else
    std::snprintf(buf, sizeof buf, "%.2f %s", b, units[u]);
  return buf;
}

// Reads "MemAvailable:  123 kB" from /proc/meminfo; 0 when unknown.
uint64_t mem_available() {
  FILE *f = std::fopen("/proc/meminfo", "re");
  if (f == nullptr)
    return 0;
  char line[256];
  uint64_t kb = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, "MemAvailable:", 13) == 0) {
      kb = std::strtoull(line + 13, nullptr, 10);
      break;
    }
  }
  std::fclose(f);
  return kb * 1024;
}

} // namespace

bool nne__says_out_of_memory(std::string_view s) {
  static const char k_oom[] = "out of memory";
  const size_t n = sizeof k_oom - 1;
  for (size_t i = 0; i + n <= s.size(); i++) {
    size_t k = 0;
    while (k < n && std::tolower(static_cast<unsigned char>(s[i + k])) ==
                        static_cast<unsigned char>(k_oom[k]))
      k++;
    if (k == n)
      return true;
  }
  return s.find("can't allocate memory") != std::string_view::npos;
}

void nne__use_device(const c10::Device &dev) {
  if (!dev.is_cuda() || !t_streams.enabled)
    return;
  int i = dev.has_index() ? dev.index() : 0;
  if (i < 0 || i >= k_max_devices || (t_streams.used & (uint64_t{1} << i)))
    return;
  // A stream from libtorch's pool, made current for this thread only (the
  // current stream is thread-local): one executor thread's kernels and
  // copies queue behind each other, never behind another thread's. Pool
  // streams do not synchronise with the legacy default stream either.
  c10::impl::VirtualGuardImpl impl(dev.type());
  impl.exchangeStream(impl.getStreamFromGlobalPool(dev));
  t_streams.used |= uint64_t{1} << i;
}

void nne__stream_sync(const c10::Device &dev) {
  if (!dev.is_cuda())
    return;
  c10::impl::VirtualGuardImpl impl(dev.type());
  impl.getStream(dev).synchronize();
}

void nne__tensor_release_on_stream(const at::Tensor &t) {
  // The caching allocator gives a freed block back to the stream that
  // allocated it, at once (a block allocated on this thread's stream is
  // left alone: recording is then a no-op). A tensor made by one executor thread (a session's
  // saved value, an edit's operand) may be read by kernels another thread
  // queued on its own stream that have not run yet: marking the block as in
  // use on the releasing thread's stream makes the allocator wait for those
  // kernels before it hands the memory out again.
  //
  // Only an executor thread's stream can have such kernels queued: any
  // other thread (the loop) gets tensors only after their executor thread
  // waited for its streams (nne_engine_thread_sync at the end of each job),
  // and while a job uses a tensor it holds a handle, so its last release
  // happens on that job's thread.
  if (!t_streams.enabled || !t.defined() || !t.is_cuda() || !t.has_storage())
    return;
  c10::impl::VirtualGuardImpl impl(t.device().type());
  impl.recordDataPtrOnStream(t.storage().data_ptr(),
                             impl.getStream(t.device()));
}

extern "C" {

int nne_engine_thread_attach(nne_err_t *err) {
  (void)err;
  t_streams.enabled = true;
  return 0;
}

int nne_engine_thread_sync(nne_err_t *err) {
  return nne__guard(err, NNE_EINTERNAL, "engine thread sync", [&]() -> int {
    for (int i = 0; i < k_max_devices; i++)
      if (t_streams.used & (uint64_t{1} << i))
        nne__stream_sync(c10::Device(c10::DeviceType::CUDA,
                                     static_cast<c10::DeviceIndex>(i)));
    return 0;
  });
}

int nne_engine_device_memory(const char *device, nne_device_memory_t *out,
                             nne_err_t *err) {
  return nne__guard(err, NNE_EINVAL, "device memory", [&]() -> int {
    if (out == nullptr)
      return nne_err_set(err, NNE_EINVAL, "device memory: out is NULL");
    std::string canon;
    at::Device dev(at::kCPU);
    int rc = nne__device_parse(device, &canon, &dev, err);
    if (rc != 0)
      return rc;
    std::memset(out, 0, sizeof *out);
    std::snprintf(out->device, sizeof out->device, "%s", canon.c_str());
    if (dev.is_cpu()) {
      long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
      if (pages > 0 && size > 0)
        out->total_bytes =
            static_cast<uint64_t>(pages) * static_cast<uint64_t>(size);
      out->free_bytes = mem_available();
      return 0;
    }
#if NNE_WITH_CUDA
    const auto idx = static_cast<c10::DeviceIndex>(dev.index());
    // The allocator has figures only once CUDA was initialised (its first
    // allocation); before, asking throws "did you call init?".
    if (c10::cuda::CUDACachingAllocator::get() != nullptr &&
        c10::cuda::CUDACachingAllocator::get()->initialized()) {
      // Index 0 of each statistic is the aggregate over pool kinds in every
      // libtorch since 1.x (StatType::AGGREGATE), wherever the enum lives.
      const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(idx);
      out->allocated_bytes =
          static_cast<uint64_t>(stats.allocated_bytes[0].current);
      out->reserved_bytes =
          static_cast<uint64_t>(stats.reserved_bytes[0].current);
      out->peak_allocated_bytes =
          static_cast<uint64_t>(stats.allocated_bytes[0].peak);
      out->allocator_stats = 1;
    }
    // cudaMemGetInfo needs a context on the device: only where one exists
    // already (a GPU no model uses keeps its memory).
    if (c10::cuda::hasPrimaryContext(idx)) {
      c10::cuda::CUDAGuard guard(idx);
      size_t free_b = 0, total_b = 0;
      if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
        out->free_bytes = free_b;
        out->total_bytes = total_b;
      } else {
        (void)cudaGetLastError(); // not sticky: leave no error for libtorch
      }
    }
#endif
    return 0;
  });
}

int nne_engine_oom_bytes(const char *msg, uint64_t *bytes) {
  if (msg == nullptr)
    return 0;
  uint64_t b = 0;
  // CPU: "DefaultCPUAllocator: can't allocate memory: you tried to allocate
  // 1610612736 bytes." (an exact count).
  const char *p = std::strstr(msg, "you tried to allocate ");
  if (p != nullptr) {
    p += std::strlen("you tried to allocate ");
    char *end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(p, &end, 10);
    if (end != p && errno == 0)
      b = v;
  } else if ((p = std::strstr(msg, "Tried to allocate ")) != nullptr) {
    // CUDA: "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; ...)"
    // or "... Tried to allocate 20.00 MiB. GPU 0 has a total capacity ...":
    // a rounded figure with a binary unit.
    p += std::strlen("Tried to allocate ");
    char *end = nullptr;
    double v = std::strtod(p, &end);
    if (end != p && std::isfinite(v) && v >= 0) {
      while (*end == ' ')
        end++;
      static const struct {
        const char *unit;
        double scale;
      } units[] = {{"TiB", 1099511627776.0},
                   {"GiB", 1073741824.0},
                   {"MiB", 1048576.0},
                   {"KiB", 1024.0},
                   {"bytes", 1.0},
                   {"B", 1.0}};
      for (const auto &u : units) {
        if (std::strncmp(end, u.unit, std::strlen(u.unit)) == 0) {
          double x = v * u.scale;
          b = x >= 1.8e19 ? UINT64_MAX : static_cast<uint64_t>(x);
          break;
        }
      }
    }
  } else if (!nne__says_out_of_memory(msg)) {
    return 0;
  }
  if (bytes != nullptr)
    *bytes = b;
  return 1;
}

} // extern "C"

std::string nne__oom_message(std::string_view body) {
  std::string s(body);
  uint64_t b = 0;
  nne_engine_oom_bytes(s.c_str(), &b);
  // CPU messages open with the enforce location ("[enforce fail at
  // alloc_cpu.cpp:75] err == 0. "): noise for the caller.
  if (s.compare(0, 14, "[enforce fail ") == 0) {
    size_t dot = s.find(". ");
    if (dot != std::string::npos)
      s.erase(0, dot + 2);
  }
  // The CUDA allocator adds a paragraph of tuning advice
  // (PYTORCH_CUDA_ALLOC_CONF, memory_summary) that is not for a client.
  size_t cut = s.find(" If reserved");
  if (cut == std::string::npos)
    cut = s.find(" See documentation for Memory Management");
  if (cut != std::string::npos)
    s.erase(cut);
  if (s.size() > 400)
    s.resize(400);
  if (b == 0)
    return "out of memory: " + s;
  return "out of memory: tried to allocate " + std::to_string(b) + " bytes (" +
         human_bytes(static_cast<double>(b)) + "): " + s;
}
