// Shared pieces of dlcore's native kernels: one oneDNN CPU engine and stream per process,
// a thread-safe cache of primitives keyed by their shapes and options, and the export macro.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

#define DLCORE_EXPORT extern "C" __attribute__((visibility("default")))

namespace dlcore {

// The process-wide CPU engine (oneDNN engines are cheap to share and thread-safe).
dnnl::engine& cpu_engine();

// One stream per calling thread: XLA may run independent FFI calls on different threads.
dnnl::stream& thread_stream();

// Builds a primitive (and whatever it needs) once per key; later calls return the cached
// value. Creating oneDNN primitives JIT-compiles code, far too slow to repeat every step.
template <typename V>
class PrimitiveCache {
 public:
  V& get(const std::string& key, const std::function<V()>& make) {
    std::lock_guard<std::mutex> guard(mutex_);
    auto it = cache_.find(key);
    if (it == cache_.end()) it = cache_.emplace(key, std::make_unique<V>(make())).first;
    return *it->second;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::unique_ptr<V>> cache_;
};

// Joins integers into a cache key: key_of(1, 2, 3) == "1,2,3,".
inline void key_append(std::string&) {}
template <typename T, typename... Rest>
void key_append(std::string& out, T first, Rest... rest) {
  out += std::to_string(first);
  out += ',';
  key_append(out, rest...);
}
template <typename... Args>
std::string key_of(Args... args) {
  std::string out;
  key_append(out, args...);
  return out;
}

// Scratch bytes for a primitive, reused per thread and grown on demand.
void* thread_scratch(size_t bytes);

// Room for ``bytes`` in whole 64-byte lines, never zero (a scratchpad a primitive does not
// need still gets a valid memory), so buffers carved from one scratch block stay aligned.
inline size_t align64(size_t bytes) { return (bytes + 64) / 64 * 64; }

// A oneDNN u8 memory over ``bytes`` raw bytes at ``base`` (scratchpads, workspaces).
dnnl::memory bytes_at(void* base, size_t bytes);

// Applies DLCORE_NATIVE_THREADS to the calling thread: omp_set_num_threads only sets the
// caller's OpenMP ICV, and XLA runs FFI handlers on its own pool threads. Call per handler.
void use_native_threads();

}  // namespace dlcore
