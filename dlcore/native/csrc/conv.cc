// 2-D float32 convolution on the CPU through oneDNN: forward (+ bias), backward-data and
// backward-weights (+ bias gradient), as XLA FFI handlers.
//
// Layouts are dlcore's: src/dst NHWC, weights [KH, KW, C/G, F] with output channel
// f = g F/G + j (oneDNN's hwio, or hwigo over dims {G, F/G, C/G, KH, KW}). Padding is
// explicit and may be asymmetric; dilation is dlcore's d (oneDNN counts d - 1). Leading
// dimensions beyond the four of each operand are a batch P of independent convolutions (what
// jax's vmap_method="broadcast_all" passes); each runs with the same cached primitive.
#include <cstdlib>
#include <string>
#include <unordered_map>

#include "common.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using Tag = memory::format_tag;

namespace {

using namespace dlcore;

constexpr auto kF32 = memory::data_type::f32;

// Which operands the primitives may lay out as they prefer (format_tag::any, reordered
// around the call) instead of NHWC/HWIO: DLCORE_NATIVE_CONV_LAYOUT = plain (none), weights
// (the kernel only: the default) or any (all). Read once; figures in dlcore/native/conv.py.
int layout_mode() {
  static const int mode = [] {
    const char* env = std::getenv("DLCORE_NATIVE_CONV_LAYOUT");
    const std::string value = env == nullptr ? "weights" : env;
    return value == "plain" ? 0 : value == "any" ? 2 : 1;
  }();
  return mode;
}
Tag act_tag() { return layout_mode() == 2 ? Tag::any : Tag::nhwc; }
bool plain_weights() { return layout_mode() == 0; }

struct Geometry {
  int64_t n, h, w, c, kh, kw, f, oh, ow, g;
  int64_t sh, sw, dh, dw, pt, pb, pl, pr;

  memory::desc src(Tag tag) const { return {{n, c, h, w}, kF32, tag}; }
  memory::desc dst(Tag tag) const { return {{n, f, oh, ow}, kF32, tag}; }
  memory::desc weights(bool plain) const {
    if (g == 1) return {{f, c, kh, kw}, kF32, plain ? Tag::hwio : Tag::any};
    return {{g, f / g, c / g, kh, kw}, kF32, plain ? Tag::hwigo : Tag::any};
  }
  memory::desc bias() const { return {{f}, kF32, Tag::a}; }
  memory::dims strides() const { return {sh, sw}; }
  memory::dims dilates() const { return {dh - 1, dw - 1}; }
  memory::dims pad_l() const { return {pt, pl}; }
  memory::dims pad_r() const { return {pb, pr}; }
  std::string key(int kind) const {
    return key_of(kind, n, h, w, c, kh, kw, f, oh, ow, g, sh, sw, dh, dw, pt, pb, pl, pr);
  }
};

// One operand: the caller's NHWC/HWIO descriptor, the primitive's, and the reorder between.
struct Port {
  memory::desc user, inner;
  bool same = true;
  dnnl::reorder reorder;
  size_t offset = 0;  // where its reordered copy lives in the scratch buffer

  void init(const memory::desc& user_md, const memory::desc& inner_md, bool into, size_t& bytes) {
    user = user_md;
    inner = inner_md;
    same = user_md == inner_md;
    if (same) return;
    reorder = into ? dnnl::reorder(memory(user, cpu_engine()), memory(inner, cpu_engine()))
                   : dnnl::reorder(memory(inner, cpu_engine()), memory(user, cpu_engine()));
    offset = bytes;
    bytes += align64(inner.get_size());
  }
  // The memory the primitive reads or writes; an input is reordered into scratch first.
  memory bind(void* data, uint8_t* scratch, bool input) const {
    memory outer(user, cpu_engine(), data);
    if (same) return outer;
    memory inside(inner, cpu_engine(), scratch + offset);
    if (input) reorder.execute(thread_stream(), outer, inside);
    return inside;
  }
  void finish(memory inside, void* data) const {
    if (same) return;
    memory outer(user, cpu_engine(), data);
    reorder.execute(thread_stream(), inside, outer);
  }
};

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::convolution_forward::primitive_desc forward_pd(const Geometry& q, bool bias) {
  const Tag act = act_tag();
  const auto w = q.weights(plain_weights());
  const auto algo = dnnl::algorithm::convolution_direct;
  const auto prop = dnnl::prop_kind::forward_training;
  if (bias)
    return {cpu_engine(), prop, algo, q.src(act), w, q.bias(), q.dst(act), q.strides(),
            q.dilates(), q.pad_l(), q.pad_r(), user_scratchpad()};
  return {cpu_engine(), prop, algo, q.src(act), w, q.dst(act), q.strides(), q.dilates(),
          q.pad_l(), q.pad_r(), user_scratchpad()};
}

struct Forward {
  dnnl::convolution_forward prim;
  Port src, weights, dst;
  size_t scratchpad = 0, bytes = 0;
};

struct BackwardData {
  dnnl::convolution_backward_data prim;
  Port diff_dst, weights, diff_src;
  size_t scratchpad = 0, bytes = 0;
};

struct BackwardWeights {
  dnnl::convolution_backward_weights prim;
  Port src, diff_dst, diff_weights;
  size_t scratchpad = 0, bytes = 0;
};

Forward make_forward(const Geometry& q, bool bias) {
  Forward out;
  auto pd = forward_pd(q, bias);
  out.prim = dnnl::convolution_forward(pd);
  out.scratchpad = align64(pd.scratchpad_desc().get_size());
  out.bytes = out.scratchpad;
  out.src.init(q.src(Tag::nhwc), pd.src_desc(), true, out.bytes);
  out.weights.init(q.weights(true), pd.weights_desc(), true, out.bytes);
  out.dst.init(q.dst(Tag::nhwc), pd.dst_desc(), false, out.bytes);
  return out;
}

BackwardData make_backward_data(const Geometry& q) {
  const Tag act = act_tag();
  auto hint = forward_pd(q, false);
  dnnl::convolution_backward_data::primitive_desc pd(
      cpu_engine(), dnnl::algorithm::convolution_direct, q.src(act), q.weights(plain_weights()),
      q.dst(act), q.strides(), q.dilates(), q.pad_l(), q.pad_r(), hint, user_scratchpad());
  BackwardData out;
  out.prim = dnnl::convolution_backward_data(pd);
  out.scratchpad = align64(pd.scratchpad_desc().get_size());
  out.bytes = out.scratchpad;
  out.diff_dst.init(q.dst(Tag::nhwc), pd.diff_dst_desc(), true, out.bytes);
  out.weights.init(q.weights(true), pd.weights_desc(), true, out.bytes);
  out.diff_src.init(q.src(Tag::nhwc), pd.diff_src_desc(), false, out.bytes);
  return out;
}

BackwardWeights make_backward_weights(const Geometry& q) {
  const Tag act = act_tag();
  auto hint = forward_pd(q, true);
  dnnl::convolution_backward_weights::primitive_desc pd(
      cpu_engine(), dnnl::algorithm::convolution_direct, q.src(act), q.weights(plain_weights()),
      q.bias(), q.dst(act), q.strides(), q.dilates(), q.pad_l(), q.pad_r(), hint,
      user_scratchpad());
  BackwardWeights out;
  out.prim = dnnl::convolution_backward_weights(pd);
  out.scratchpad = align64(pd.scratchpad_desc().get_size());
  out.bytes = out.scratchpad;
  out.src.init(q.src(Tag::nhwc), pd.src_desc(), true, out.bytes);
  out.diff_dst.init(q.dst(Tag::nhwc), pd.diff_dst_desc(), true, out.bytes);
  out.diff_weights.init(q.weights(true), pd.diff_weights_desc(), false, out.bytes);
  return out;
}

// The last four dimensions of an operand, and the product of the ones before (the batch P).
struct Dims4 {
  int64_t batch = 1, d[4];
};

template <typename B>
Dims4 dims4(const B& buffer) {
  Dims4 out;
  auto dims = buffer.dimensions();
  const size_t rank = dims.size();
  for (size_t i = 0; i + 4 < rank; ++i) out.batch *= dims[i];
  for (int i = 0; i < 4; ++i) out.d[i] = rank >= 4 ? dims[rank - 4 + i] : 0;
  return out;
}

Geometry geometry(const Dims4& x, const Dims4& w, const Dims4& y, int64_t sh, int64_t sw,
                  int64_t pt, int64_t pb, int64_t pl, int64_t pr, int64_t dh, int64_t dw,
                  int64_t groups) {
  return {x.d[0], x.d[1], x.d[2], x.d[3], w.d[0], w.d[1], w.d[3], y.d[1], y.d[2], groups,
          sh,     sw,     dh,     dw,     pt,     pb,     pl,     pr};
}

template <typename F>
ffi::Error guarded(F&& body) {
  try {
    use_native_threads();
    body();
    thread_stream().wait();
  } catch (const dnnl::error& err) {
    return ffi::Error::Internal(std::string("dlcore native conv (oneDNN): ") + err.what());
  } catch (const std::exception& err) {
    return ffi::Error::Internal(std::string("dlcore native conv: ") + err.what());
  }
  return ffi::Error::Success();
}

ffi::Error ConvForward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> b,
                       ffi::ResultBuffer<ffi::F32> y, int64_t sh, int64_t sw, int64_t pt,
                       int64_t pb, int64_t pl, int64_t pr, int64_t dh, int64_t dw,
                       int64_t groups, int64_t has_bias) {
  static PrimitiveCache<Forward> cache;
  return guarded([&] {
    const Dims4 xd = dims4(x), wd = dims4(w), yd = dims4(*y);
    const Geometry q = geometry(xd, wd, yd, sh, sw, pt, pb, pl, pr, dh, dw, groups);
    const bool bias = has_bias != 0;
    Forward& p = cache.get(q.key(bias), [&] { return make_forward(q, bias); });
    auto* scratch = static_cast<uint8_t*>(thread_scratch(p.bytes));
    const int64_t x_n = q.n * q.h * q.w * q.c, w_n = q.kh * q.kw * (q.c / q.g) * q.f;
    const int64_t y_n = q.n * q.oh * q.ow * q.f;
    for (int64_t i = 0; i < xd.batch; ++i) {
      memory src = p.src.bind(x.typed_data() + i * x_n, scratch, true);
      memory wts = p.weights.bind(w.typed_data() + i * w_n, scratch, true);
      float* out = y->typed_data() + i * y_n;
      memory dst = p.dst.bind(out, scratch, false);
      std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src},
                                              {DNNL_ARG_WEIGHTS, wts},
                                              {DNNL_ARG_DST, dst},
                                              {DNNL_ARG_SCRATCHPAD, bytes_at(scratch, p.scratchpad)}};
      if (bias) args[DNNL_ARG_BIAS] = memory(q.bias(), cpu_engine(), b.typed_data() + i * q.f);
      p.prim.execute(thread_stream(), args);
      p.dst.finish(dst, out);
    }
  });
}

ffi::Error ConvBackwardData(ffi::Buffer<ffi::F32> dy, ffi::Buffer<ffi::F32> w,
                            ffi::ResultBuffer<ffi::F32> dx, int64_t sh, int64_t sw, int64_t pt,
                            int64_t pb, int64_t pl, int64_t pr, int64_t dh, int64_t dw,
                            int64_t groups) {
  static PrimitiveCache<BackwardData> cache;
  return guarded([&] {
    const Dims4 xd = dims4(*dx), wd = dims4(w), yd = dims4(dy);
    const Geometry q = geometry(xd, wd, yd, sh, sw, pt, pb, pl, pr, dh, dw, groups);
    BackwardData& p = cache.get(q.key(2), [&] { return make_backward_data(q); });
    auto* scratch = static_cast<uint8_t*>(thread_scratch(p.bytes));
    const int64_t x_n = q.n * q.h * q.w * q.c, w_n = q.kh * q.kw * (q.c / q.g) * q.f;
    const int64_t y_n = q.n * q.oh * q.ow * q.f;
    for (int64_t i = 0; i < xd.batch; ++i) {
      memory ddst = p.diff_dst.bind(dy.typed_data() + i * y_n, scratch, true);
      memory wts = p.weights.bind(w.typed_data() + i * w_n, scratch, true);
      float* out = dx->typed_data() + i * x_n;
      memory dsrc = p.diff_src.bind(out, scratch, false);
      p.prim.execute(thread_stream(),
                     {{DNNL_ARG_DIFF_DST, ddst},
                      {DNNL_ARG_WEIGHTS, wts},
                      {DNNL_ARG_DIFF_SRC, dsrc},
                      {DNNL_ARG_SCRATCHPAD,
                       bytes_at(scratch, p.scratchpad)}});
      p.diff_src.finish(dsrc, out);
    }
  });
}

ffi::Error ConvBackwardWeights(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dy,
                               ffi::ResultBuffer<ffi::F32> dw, ffi::ResultBuffer<ffi::F32> db,
                               int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl,
                               int64_t pr, int64_t dh, int64_t dw_, int64_t groups) {
  static PrimitiveCache<BackwardWeights> cache;
  return guarded([&] {
    const Dims4 xd = dims4(x), wd = dims4(*dw), yd = dims4(dy);
    const Geometry q = geometry(xd, wd, yd, sh, sw, pt, pb, pl, pr, dh, dw_, groups);
    BackwardWeights& p = cache.get(q.key(3), [&] { return make_backward_weights(q); });
    auto* scratch = static_cast<uint8_t*>(thread_scratch(p.bytes));
    const int64_t x_n = q.n * q.h * q.w * q.c, w_n = q.kh * q.kw * (q.c / q.g) * q.f;
    const int64_t y_n = q.n * q.oh * q.ow * q.f;
    for (int64_t i = 0; i < xd.batch; ++i) {
      memory src = p.src.bind(x.typed_data() + i * x_n, scratch, true);
      memory ddst = p.diff_dst.bind(dy.typed_data() + i * y_n, scratch, true);
      float* out = dw->typed_data() + i * w_n;
      memory dwts = p.diff_weights.bind(out, scratch, false);
      p.prim.execute(thread_stream(),
                     {{DNNL_ARG_SRC, src},
                      {DNNL_ARG_DIFF_DST, ddst},
                      {DNNL_ARG_DIFF_WEIGHTS, dwts},
                      {DNNL_ARG_DIFF_BIAS,
                       memory(q.bias(), cpu_engine(), db->typed_data() + i * q.f)},
                      {DNNL_ARG_SCRATCHPAD,
                       bytes_at(scratch, p.scratchpad)}});
      p.diff_weights.finish(dwts, out);
    }
  });
}

}  // namespace

// The handlers' symbols must survive -fvisibility=hidden: declare them exported first.
DLCORE_EXPORT XLA_FFI_Error* dlcore_conv_fwd(XLA_FFI_CallFrame*);
DLCORE_EXPORT XLA_FFI_Error* dlcore_conv_bwd_data(XLA_FFI_CallFrame*);
DLCORE_EXPORT XLA_FFI_Error* dlcore_conv_bwd_weights(XLA_FFI_CallFrame*);

#define DLCORE_CONV_ATTRS(binding)                                                        \
  binding.Attr<int64_t>("stride_h")                                                       \
      .Attr<int64_t>("stride_w")                                                          \
      .Attr<int64_t>("pad_top")                                                           \
      .Attr<int64_t>("pad_bottom")                                                        \
      .Attr<int64_t>("pad_left")                                                          \
      .Attr<int64_t>("pad_right")                                                         \
      .Attr<int64_t>("dilation_h")                                                        \
      .Attr<int64_t>("dilation_w")                                                        \
      .Attr<int64_t>("groups")

XLA_FFI_DEFINE_HANDLER_SYMBOL(dlcore_conv_fwd, ConvForward,
                              DLCORE_CONV_ATTRS(ffi::Ffi::Bind()
                                                    .Arg<ffi::Buffer<ffi::F32>>()
                                                    .Arg<ffi::Buffer<ffi::F32>>()
                                                    .Arg<ffi::Buffer<ffi::F32>>()
                                                    .Ret<ffi::Buffer<ffi::F32>>())
                                  .Attr<int64_t>("has_bias"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(dlcore_conv_bwd_data, ConvBackwardData,
                              DLCORE_CONV_ATTRS(ffi::Ffi::Bind()
                                                    .Arg<ffi::Buffer<ffi::F32>>()
                                                    .Arg<ffi::Buffer<ffi::F32>>()
                                                    .Ret<ffi::Buffer<ffi::F32>>()));

XLA_FFI_DEFINE_HANDLER_SYMBOL(dlcore_conv_bwd_weights, ConvBackwardWeights,
                              DLCORE_CONV_ATTRS(ffi::Ffi::Bind()
                                                    .Arg<ffi::Buffer<ffi::F32>>()
                                                    .Arg<ffi::Buffer<ffi::F32>>()
                                                    .Ret<ffi::Buffer<ffi::F32>>()
                                                    .Ret<ffi::Buffer<ffi::F32>>()));
