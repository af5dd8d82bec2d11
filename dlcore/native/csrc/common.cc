// Process-wide oneDNN state and the plain C entry points the Python loader calls.
#include "common.h"

#include <omp.h>

#include <cstdio>
#include <vector>

namespace dlcore {

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& thread_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

void* thread_scratch(size_t bytes) {
  thread_local std::vector<uint8_t> buffer;
  if (buffer.size() < bytes) buffer.resize(bytes);
  return buffer.data();
}

static int g_native_threads = 0;  // set once by dlcore_native_set_threads before any call

void use_native_threads() {
  thread_local int applied = 0;
  if (g_native_threads > 0 && applied != g_native_threads) {
    omp_set_num_threads(g_native_threads);
    applied = g_native_threads;
  }
}

dnnl::memory bytes_at(void* base, size_t bytes) {
  const dnnl::memory::desc md({static_cast<dnnl::memory::dim>(bytes)}, dnnl::memory::data_type::u8,
                              dnnl::memory::format_tag::a);
  return dnnl::memory(md, cpu_engine(), base);
}

}  // namespace dlcore

// OpenMP threads oneDNN may use. XLA's own pool is idle while an FFI call runs on the CPU
// (the call blocks its thread), so the two pools take turns rather than oversubscribing.
DLCORE_EXPORT void dlcore_native_set_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
  dlcore::g_native_threads = threads;
}

DLCORE_EXPORT const char* dlcore_native_onednn_version() {
  static char text[64];
  const dnnl_version_t* v = dnnl_version();
  std::snprintf(text, sizeof(text), "%d.%d.%d+%s", v->major, v->minor, v->patch, v->hash);
  return text;
}
