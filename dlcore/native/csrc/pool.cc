// 2-D float32 max pooling on the CPU through oneDNN, NHWC, as XLA FFI handlers.
//
// The backward handler takes the input again and reruns the forward pass (training mode) into
// scratch to get oneDNN's arg-max workspace: that keeps the workspace, whose size and layout
// are oneDNN's business, out of jax. The forward pass costs far less than the
// select-and-scatter it replaces. Leading dimensions beyond NHWC are a batch of independent
// poolings (jax's vmap_method="broadcast_all").
#include <algorithm>
#include <string>

#include "common.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using Tag = memory::format_tag;

namespace {

using namespace dlcore;

constexpr auto kF32 = memory::data_type::f32;

struct PoolGeometry {
  int64_t n, h, w, c, oh, ow, kh, kw, sh, sw, pt, pb, pl, pr;

  memory::desc src() const { return {{n, c, h, w}, kF32, Tag::nhwc}; }
  memory::desc dst() const { return {{n, c, oh, ow}, kF32, Tag::nhwc}; }
  dnnl::pooling_forward::primitive_desc forward(dnnl::prop_kind prop) const {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return {cpu_engine(), prop,       dnnl::algorithm::pooling_max, src(),       dst(),
            {sh, sw},     {kh, kw},   {0, 0},                       {pt, pl},    {pb, pr},
            attr};
  }
};

struct PoolForward {
  dnnl::pooling_forward prim;
  size_t scratchpad;
};

struct PoolBackward {
  dnnl::pooling_forward forward;
  dnnl::pooling_backward prim;
  memory::desc workspace;
  size_t fwd_scratchpad, bwd_scratchpad, dst_bytes, workspace_bytes;
};

template <typename B>
void leading(const B& buffer, int64_t& batch, int64_t d[4]) {
  auto dims = buffer.dimensions();
  const size_t rank = dims.size();
  batch = 1;
  for (size_t i = 0; i + 4 < rank; ++i) batch *= dims[i];
  for (int i = 0; i < 4; ++i) d[i] = dims[rank - 4 + i];
}

template <typename F>
ffi::Error guarded(F&& body) {
  try {
    use_native_threads();
    body();
    thread_stream().wait();
  } catch (const std::exception& err) {
    return ffi::Error::Internal(std::string("dlcore native max_pool (oneDNN): ") + err.what());
  }
  return ffi::Error::Success();
}

ffi::Error MaxPoolForward(ffi::Buffer<ffi::F32> x, ffi::ResultBuffer<ffi::F32> y, int64_t kh,
                          int64_t kw, int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl,
                          int64_t pr) {
  static PrimitiveCache<PoolForward> cache;
  return guarded([&] {
    int64_t batch, xd[4], yd[4];
    leading(x, batch, xd);
    leading(*y, batch, yd);
    const PoolGeometry q{xd[0], xd[1], xd[2], xd[3], yd[1], yd[2], kh,
                         kw,    sh,    sw,    pt,    pb,    pl,    pr};
    PoolForward& p = cache.get(key_of(q.n, q.h, q.w, q.c, kh, kw, sh, sw, pt, pb, pl, pr), [&] {
      auto pd = q.forward(dnnl::prop_kind::forward_inference);
      return PoolForward{dnnl::pooling_forward(pd), align64(pd.scratchpad_desc().get_size())};
    });
    auto* scratch = static_cast<uint8_t*>(thread_scratch(p.scratchpad));
    const int64_t x_n = q.n * q.h * q.w * q.c, y_n = q.n * q.oh * q.ow * q.c;
    for (int64_t i = 0; i < batch; ++i) {
      p.prim.execute(thread_stream(),
                     {{DNNL_ARG_SRC, memory(q.src(), cpu_engine(), x.typed_data() + i * x_n)},
                      {DNNL_ARG_DST, memory(q.dst(), cpu_engine(), y->typed_data() + i * y_n)},
                      {DNNL_ARG_SCRATCHPAD, bytes_at(scratch, p.scratchpad)}});
    }
  });
}

ffi::Error MaxPoolBackward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dy,
                           ffi::ResultBuffer<ffi::F32> dx, int64_t kh, int64_t kw, int64_t sh,
                           int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  static PrimitiveCache<PoolBackward> cache;
  return guarded([&] {
    int64_t batch, xd[4], yd[4];
    leading(x, batch, xd);
    leading(dy, batch, yd);
    const PoolGeometry q{xd[0], xd[1], xd[2], xd[3], yd[1], yd[2], kh,
                         kw,    sh,    sw,    pt,    pb,    pl,    pr};
    PoolBackward& p = cache.get(key_of(q.n, q.h, q.w, q.c, kh, kw, sh, sw, pt, pb, pl, pr), [&] {
      auto fwd = q.forward(dnnl::prop_kind::forward_training);
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      dnnl::pooling_backward::primitive_desc bwd(
          cpu_engine(), dnnl::algorithm::pooling_max, q.src(), q.dst(), {sh, sw}, {kh, kw},
          {0, 0}, {pt, pl}, {pb, pr}, fwd, attr);
      return PoolBackward{dnnl::pooling_forward(fwd),
                          dnnl::pooling_backward(bwd),
                          fwd.workspace_desc(),
                          align64(fwd.scratchpad_desc().get_size()),
                          align64(bwd.scratchpad_desc().get_size()),
                          align64(q.dst().get_size()),
                          align64(fwd.workspace_desc().get_size())};
    });
    const size_t scratchpad = std::max(p.fwd_scratchpad, p.bwd_scratchpad);
    auto* scratch = static_cast<uint8_t*>(
        thread_scratch(scratchpad + p.dst_bytes + p.workspace_bytes));
    memory pad = bytes_at(scratch, scratchpad);
    memory y(q.dst(), cpu_engine(), scratch + scratchpad);
    memory ws(p.workspace, cpu_engine(), scratch + scratchpad + p.dst_bytes);
    const int64_t x_n = q.n * q.h * q.w * q.c, y_n = q.n * q.oh * q.ow * q.c;
    for (int64_t i = 0; i < batch; ++i) {
      p.forward.execute(thread_stream(),
                        {{DNNL_ARG_SRC, memory(q.src(), cpu_engine(), x.typed_data() + i * x_n)},
                         {DNNL_ARG_DST, y},
                         {DNNL_ARG_WORKSPACE, ws},
                         {DNNL_ARG_SCRATCHPAD, pad}});
      p.prim.execute(
          thread_stream(),
          {{DNNL_ARG_DIFF_DST, memory(q.dst(), cpu_engine(), dy.typed_data() + i * y_n)},
           {DNNL_ARG_DIFF_SRC, memory(q.src(), cpu_engine(), dx->typed_data() + i * x_n)},
           {DNNL_ARG_WORKSPACE, ws},
           {DNNL_ARG_SCRATCHPAD, pad}});
    }
  });
}

}  // namespace

DLCORE_EXPORT XLA_FFI_Error* dlcore_max_pool_fwd(XLA_FFI_CallFrame*);
DLCORE_EXPORT XLA_FFI_Error* dlcore_max_pool_bwd(XLA_FFI_CallFrame*);

#define DLCORE_POOL_ATTRS(binding) \
  binding.Attr<int64_t>("window_h") \
      .Attr<int64_t>("window_w")    \
      .Attr<int64_t>("stride_h")    \
      .Attr<int64_t>("stride_w")    \
      .Attr<int64_t>("pad_top")     \
      .Attr<int64_t>("pad_bottom")  \
      .Attr<int64_t>("pad_left")    \
      .Attr<int64_t>("pad_right")

XLA_FFI_DEFINE_HANDLER_SYMBOL(dlcore_max_pool_fwd, MaxPoolForward,
                              DLCORE_POOL_ATTRS(ffi::Ffi::Bind()
                                                    .Arg<ffi::Buffer<ffi::F32>>()
                                                    .Ret<ffi::Buffer<ffi::F32>>()));

XLA_FFI_DEFINE_HANDLER_SYMBOL(dlcore_max_pool_bwd, MaxPoolBackward,
                              DLCORE_POOL_ATTRS(ffi::Ffi::Bind()
                                                    .Arg<ffi::Buffer<ffi::F32>>()
                                                    .Arg<ffi::Buffer<ffi::F32>>()
                                                    .Ret<ffi::Buffer<ffi::F32>>()));
