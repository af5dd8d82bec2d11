// LSTM and GRU sequences (one layer, left to right, float32) on oneDNN's fused RNN
// primitives, exposed to XLA as FFI handlers: a training forward that keeps oneDNN's
// workspace (an opaque uint8 buffer XLA stores between the passes; attribute "training" = 1,
// else an inference forward with an empty workspace) and the backward pass that consumes it.
// Kinds (attribute "kind"): 0 = LSTM (gates i, f, g, o), 1 = GRU with the reset gate before
// the candidate's matmul (u, r, c), 2 = GRU with the reset gate after it (oneDNN's "linear
// before reset"; its fourth bias block is the candidate's recurrent bias).
//
// Layouts (what dlcore's cells already hold, so no transposes on the Python side):
//   x [T, N, I] (tnc), h0/c0 [N, H], W [I, G*H] and U [H, G*H] (ldigo with L = D = 1),
//   b [Gb*H] (ldgo), y [T, N, H].
// The primitives pick their own weight layouts (format_tag::any); the user's ldigo weights
// are reordered in, the weight gradients reordered out. Everything oneDNN needs per shape is
// built once and cached (primitive creation JIT-compiles kernels).
#include <algorithm>
#include <cstring>

#include "common.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

namespace dlcore {
namespace {

enum Kind : int64_t { kLstm = 0, kGru = 1, kLbrGru = 2 };

int gates(int64_t kind) { return kind == kLstm ? 4 : 3; }
int bias_gates(int64_t kind) { return kind == kGru ? 3 : 4; }

// Everything built once per (kind, T, N, I, H).
struct RnnPlan {
  memory::desc x, state, w_user, u_user, bias, y, ws;
  memory::desc w_fwd, u_fwd, w_inf, u_inf, w_bwd, u_bwd, dw_bwd, du_bwd;
  dnnl::primitive fwd, inf, bwd;  // training forward, inference forward, backward
  size_t scratchpad_bytes = 0;  // the largest of every primitive's and reorder's
  dnnl::reorder w_to_fwd, u_to_fwd, w_to_inf, u_to_inf, w_to_bwd, u_to_bwd, dw_to_user, du_to_user;
};

// Every primitive takes its scratchpad from the caller (scratchpad_mode::user). oneDNN's own
// ("library") scratchpad is thread-local storage sized when the primitive is CREATED, but XLA
// runs the handler on whichever pool thread is free: executing on another thread than the
// creating one reads a scratchpad that is missing or too small (a crash, seen in tests).
dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::reorder reorder_if(const memory::desc& from, const memory::desc& to, size_t* scratch) {
  if (from == to) return dnnl::reorder();
  dnnl::reorder::primitive_desc pd(cpu_engine(), from, cpu_engine(), to, user_scratchpad());
  *scratch = std::max(*scratch, pd.scratchpad_desc().get_size());
  return dnnl::reorder(pd);
}

RnnPlan make_plan(int64_t kind, int64_t T, int64_t N, int64_t I, int64_t H) {
  auto& eng = cpu_engine();
  const int G = gates(kind);
  const auto dir = dnnl::rnn_direction::unidirectional_left2right;
  const auto fwd_prop = dnnl::prop_kind::forward_training;
  const auto inf_prop = dnnl::prop_kind::forward_inference;
  const auto bwd_prop = dnnl::prop_kind::backward;
  RnnPlan p;
  p.x = memory::desc({T, N, I}, dt::f32, tag::tnc);
  p.state = memory::desc({1, 1, N, H}, dt::f32, tag::ldnc);
  p.w_user = memory::desc({1, 1, I, G, H}, dt::f32, tag::ldigo);
  p.u_user = memory::desc({1, 1, H, G, H}, dt::f32, tag::ldigo);
  p.bias = memory::desc({1, 1, bias_gates(kind), H}, dt::f32, tag::ldgo);
  p.y = memory::desc({T, N, H}, dt::f32, tag::tnc);
  const memory::desc w_any({1, 1, I, G, H}, dt::f32, tag::any);
  const memory::desc u_any({1, 1, H, G, H}, dt::f32, tag::any);
  const auto& s = p.state;
  const auto attr = user_scratchpad();

  auto finish = [&](const auto& ipd, const auto& fpd, const auto& bpd) {
    p.w_inf = ipd.weights_layer_desc();
    p.u_inf = ipd.weights_iter_desc();
    p.w_fwd = fpd.weights_layer_desc();
    p.u_fwd = fpd.weights_iter_desc();
    p.ws = fpd.workspace_desc();
    p.w_bwd = bpd.weights_layer_desc();
    p.u_bwd = bpd.weights_iter_desc();
    p.dw_bwd = bpd.diff_weights_layer_desc();
    p.du_bwd = bpd.diff_weights_iter_desc();
    p.scratchpad_bytes = std::max({ipd.scratchpad_desc().get_size(),
                                   fpd.scratchpad_desc().get_size(),
                                   bpd.scratchpad_desc().get_size()});
    p.inf = dnnl::primitive(ipd);
    p.fwd = dnnl::primitive(fpd);
    p.bwd = dnnl::primitive(bpd);
  };
  if (kind == kLstm) {
    auto forward = [&](dnnl::prop_kind prop) {
      return dnnl::lstm_forward::primitive_desc(eng, prop, dir, p.x, s, s, w_any, u_any, p.bias,
                                                p.y, s, s, attr);
    };
    auto fpd = forward(fwd_prop);
    dnnl::lstm_backward::primitive_desc bpd(eng, bwd_prop, dir, p.x, s, s, w_any, u_any, p.bias,
                                            p.y, s, s, p.x, s, s, w_any, u_any, p.bias, p.y, s,
                                            s, fpd, attr);
    finish(forward(inf_prop), fpd, bpd);
  } else if (kind == kGru) {
    auto forward = [&](dnnl::prop_kind prop) {
      return dnnl::gru_forward::primitive_desc(eng, prop, dir, p.x, s, w_any, u_any, p.bias, p.y,
                                               s, attr);
    };
    auto fpd = forward(fwd_prop);
    dnnl::gru_backward::primitive_desc bpd(eng, bwd_prop, dir, p.x, s, w_any, u_any, p.bias, p.y,
                                           s, p.x, s, w_any, u_any, p.bias, p.y, s, fpd, attr);
    finish(forward(inf_prop), fpd, bpd);
  } else {
    auto forward = [&](dnnl::prop_kind prop) {
      return dnnl::lbr_gru_forward::primitive_desc(eng, prop, dir, p.x, s, w_any, u_any, p.bias,
                                                   p.y, s, attr);
    };
    auto fpd = forward(fwd_prop);
    dnnl::lbr_gru_backward::primitive_desc bpd(eng, bwd_prop, dir, p.x, s, w_any, u_any, p.bias,
                                               p.y, s, p.x, s, w_any, u_any, p.bias, p.y, s,
                                               fpd, attr);
    finish(forward(inf_prop), fpd, bpd);
  }
  size_t* pad = &p.scratchpad_bytes;
  p.w_to_fwd = reorder_if(p.w_user, p.w_fwd, pad);
  p.u_to_fwd = reorder_if(p.u_user, p.u_fwd, pad);
  p.w_to_inf = reorder_if(p.w_user, p.w_inf, pad);
  p.u_to_inf = reorder_if(p.u_user, p.u_inf, pad);
  p.w_to_bwd = reorder_if(p.w_user, p.w_bwd, pad);
  p.u_to_bwd = reorder_if(p.u_user, p.u_bwd, pad);
  p.dw_to_user = reorder_if(p.dw_bwd, p.w_user, pad);
  p.du_to_user = reorder_if(p.du_bwd, p.u_user, pad);
  return p;
}

RnnPlan& plan_for(int64_t kind, int64_t T, int64_t N, int64_t I, int64_t H) {
  static PrimitiveCache<RnnPlan> cache;
  return cache.get(key_of(kind, T, N, I, H), [&] { return make_plan(kind, T, N, I, H); });
}


// Runs a reorder with the shared scratchpad (the region after the weight copies).
void run_reorder(const dnnl::reorder& r, memory from, memory to, const memory& pad,
                 dnnl::stream& strm) {
  r.execute(strm, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}, {DNNL_ARG_SCRATCHPAD, pad}});
}

// Weights in the primitive's layout: the user's buffer itself when the layouts agree,
// otherwise a reordered copy in the per-thread scratch area starting at *offset.
memory weights_for(const dnnl::reorder& to, memory user, const memory::desc& want,
                   uint8_t* scratch, size_t* offset, const memory& pad, dnnl::stream& strm) {
  if (!to) return user;
  memory out(want, cpu_engine(), scratch + *offset);
  *offset += align64(want.get_size());
  run_reorder(to, user, out, pad, strm);
  return out;
}

// The scratchpad memory: the last plan.scratchpad_bytes of this thread's scratch area.
memory scratchpad(const RnnPlan& p, uint8_t* scratch, size_t offset) {
  return bytes_at(scratch + offset, p.scratchpad_bytes);
}

memory diff_weights_for(const dnnl::reorder& to_user, memory user,
                        const memory::desc& have, uint8_t* scratch, size_t* offset) {
  memory out = to_user ? memory(have, cpu_engine(), scratch + *offset) : user;
  if (to_user) *offset += align64(have.get_size());
  // oneDNN's RNN backward accumulates into the weight and bias gradients: start from zero.
  std::memset(out.get_data_handle(), 0, have.get_size());
  return out;
}

bool check_kind(int64_t kind) { return kind == kLstm || kind == kGru || kind == kLbrGru; }

ffi::Error RnnForward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
                      ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> u, ffi::Buffer<ffi::F32> b,
                      ffi::ResultBuffer<ffi::F32> y, ffi::ResultBuffer<ffi::F32> h_last,
                      ffi::ResultBuffer<ffi::F32> c_last, ffi::ResultBuffer<ffi::U8> ws,
                      int64_t kind, int64_t training) {
  if (!check_kind(kind)) return ffi::Error::InvalidArgument("rnn: unknown kind");
  auto xd = x.dimensions();
  auto hd = h0.dimensions();
  if (xd.size() != 3 || hd.size() != 2) return ffi::Error::InvalidArgument("rnn: bad ranks");
  const int64_t T = xd[0], N = xd[1], I = xd[2], H = hd[1];
  use_native_threads();
  try {
    RnnPlan& p = plan_for(kind, T, N, I, H);
    if (ws->size_bytes() != (training ? p.ws.get_size() : 0))
      return ffi::Error::InvalidArgument("rnn: workspace size mismatch");
    auto& eng = cpu_engine();
    auto& strm = thread_stream();
    // Without a gradient to come (evaluation, generation) the inference primitive skips
    // writing the gates to a workspace.
    const memory::desc& w_want = training ? p.w_fwd : p.w_inf;
    const memory::desc& u_want = training ? p.u_fwd : p.u_inf;
    memory w_user(p.w_user, eng, w.untyped_data());
    memory u_user(p.u_user, eng, u.untyped_data());
    const size_t weights = align64(w_want.get_size()) + align64(u_want.get_size());
    auto* scratch = static_cast<uint8_t*>(thread_scratch(weights + p.scratchpad_bytes));
    memory pad = scratchpad(p, scratch, weights);
    size_t offset = 0;
    memory w_m = weights_for(training ? p.w_to_fwd : p.w_to_inf, w_user, w_want, scratch,
                             &offset, pad, strm);
    memory u_m = weights_for(training ? p.u_to_fwd : p.u_to_inf, u_user, u_want, scratch,
                             &offset, pad, strm);
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC_LAYER, memory(p.x, eng, x.untyped_data())},
        {DNNL_ARG_SRC_ITER, memory(p.state, eng, h0.untyped_data())},
        {DNNL_ARG_WEIGHTS_LAYER, w_m},
        {DNNL_ARG_WEIGHTS_ITER, u_m},
        {DNNL_ARG_BIAS, memory(p.bias, eng, b.untyped_data())},
        {DNNL_ARG_DST_LAYER, memory(p.y, eng, y->untyped_data())},
        {DNNL_ARG_DST_ITER, memory(p.state, eng, h_last->untyped_data())},
        {DNNL_ARG_SCRATCHPAD, pad},
    };
    if (training) args.emplace(DNNL_ARG_WORKSPACE, memory(p.ws, eng, ws->untyped_data()));
    if (kind == kLstm) {
      args.emplace(DNNL_ARG_SRC_ITER_C, memory(p.state, eng, c0.untyped_data()));
      args.emplace(DNNL_ARG_DST_ITER_C, memory(p.state, eng, c_last->untyped_data()));
    }
    (training ? p.fwd : p.inf).execute(strm, args);
    strm.wait();
  } catch (const dnnl::error& err) {
    return ffi::Error::Internal(std::string("rnn forward: ") + err.what());
  }
  return ffi::Error::Success();
}

ffi::Error RnnBackward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> h0,
                       ffi::Buffer<ffi::F32> c0, ffi::Buffer<ffi::F32> w,
                       ffi::Buffer<ffi::F32> u, ffi::Buffer<ffi::F32> b,
                       ffi::Buffer<ffi::F32> y, ffi::Buffer<ffi::F32> h_last,
                       ffi::Buffer<ffi::F32> c_last, ffi::Buffer<ffi::U8> ws,
                       ffi::Buffer<ffi::F32> dy, ffi::Buffer<ffi::F32> dh_last,
                       ffi::Buffer<ffi::F32> dc_last, ffi::ResultBuffer<ffi::F32> dx,
                       ffi::ResultBuffer<ffi::F32> dh0, ffi::ResultBuffer<ffi::F32> dc0,
                       ffi::ResultBuffer<ffi::F32> dw, ffi::ResultBuffer<ffi::F32> du,
                       ffi::ResultBuffer<ffi::F32> db, int64_t kind) {
  if (!check_kind(kind)) return ffi::Error::InvalidArgument("rnn: unknown kind");
  auto xd = x.dimensions();
  auto hd = h0.dimensions();
  if (xd.size() != 3 || hd.size() != 2) return ffi::Error::InvalidArgument("rnn: bad ranks");
  const int64_t T = xd[0], N = xd[1], I = xd[2], H = hd[1];
  use_native_threads();
  try {
    RnnPlan& p = plan_for(kind, T, N, I, H);
    if (ws.size_bytes() != p.ws.get_size())
      return ffi::Error::InvalidArgument("rnn: workspace size mismatch");
    auto& eng = cpu_engine();
    auto& strm = thread_stream();
    const size_t weights = align64(p.w_bwd.get_size()) + align64(p.u_bwd.get_size()) +
                           align64(p.dw_bwd.get_size()) + align64(p.du_bwd.get_size());
    auto* scratch = static_cast<uint8_t*>(thread_scratch(weights + p.scratchpad_bytes));
    memory pad = scratchpad(p, scratch, weights);
    size_t offset = 0;
    memory w_user(p.w_user, eng, w.untyped_data());
    memory u_user(p.u_user, eng, u.untyped_data());
    memory dw_user(p.w_user, eng, dw->untyped_data());
    memory du_user(p.u_user, eng, du->untyped_data());
    memory w_m = weights_for(p.w_to_bwd, w_user, p.w_bwd, scratch, &offset, pad, strm);
    memory u_m = weights_for(p.u_to_bwd, u_user, p.u_bwd, scratch, &offset, pad, strm);
    memory dw_m = diff_weights_for(p.dw_to_user, dw_user, p.dw_bwd, scratch, &offset);
    memory du_m = diff_weights_for(p.du_to_user, du_user, p.du_bwd, scratch, &offset);
    std::memset(db->untyped_data(), 0, db->size_bytes());
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC_LAYER, memory(p.x, eng, x.untyped_data())},
        {DNNL_ARG_SRC_ITER, memory(p.state, eng, h0.untyped_data())},
        {DNNL_ARG_WEIGHTS_LAYER, w_m},
        {DNNL_ARG_WEIGHTS_ITER, u_m},
        {DNNL_ARG_BIAS, memory(p.bias, eng, b.untyped_data())},
        {DNNL_ARG_DST_LAYER, memory(p.y, eng, y.untyped_data())},
        {DNNL_ARG_DST_ITER, memory(p.state, eng, h_last.untyped_data())},
        {DNNL_ARG_WORKSPACE, memory(p.ws, eng, ws.untyped_data())},
        {DNNL_ARG_DIFF_DST_LAYER, memory(p.y, eng, dy.untyped_data())},
        {DNNL_ARG_DIFF_DST_ITER, memory(p.state, eng, dh_last.untyped_data())},
        {DNNL_ARG_DIFF_SRC_LAYER, memory(p.x, eng, dx->untyped_data())},
        {DNNL_ARG_DIFF_SRC_ITER, memory(p.state, eng, dh0->untyped_data())},
        {DNNL_ARG_DIFF_WEIGHTS_LAYER, dw_m},
        {DNNL_ARG_DIFF_WEIGHTS_ITER, du_m},
        {DNNL_ARG_DIFF_BIAS, memory(p.bias, eng, db->untyped_data())},
        {DNNL_ARG_SCRATCHPAD, pad},
    };
    if (kind == kLstm) {
      args.emplace(DNNL_ARG_SRC_ITER_C, memory(p.state, eng, c0.untyped_data()));
      args.emplace(DNNL_ARG_DST_ITER_C, memory(p.state, eng, c_last.untyped_data()));
      args.emplace(DNNL_ARG_DIFF_DST_ITER_C, memory(p.state, eng, dc_last.untyped_data()));
      args.emplace(DNNL_ARG_DIFF_SRC_ITER_C, memory(p.state, eng, dc0->untyped_data()));
    }
    p.bwd.execute(strm, args);
    if (p.dw_to_user) run_reorder(p.dw_to_user, dw_m, dw_user, pad, strm);
    if (p.du_to_user) run_reorder(p.du_to_user, du_m, du_user, pad, strm);
    strm.wait();
  } catch (const dnnl::error& err) {
    return ffi::Error::Internal(std::string("rnn backward: ") + err.what());
  }
  return ffi::Error::Success();
}

}  // namespace
}  // namespace dlcore

// The handlers are looked up by name from Python (ctypes), so they must be visible although
// the library is built with -fvisibility=hidden.
extern "C" __attribute__((visibility("default"))) XLA_FFI_Error* dlcore_rnn_forward(
    XLA_FFI_CallFrame* call_frame);
extern "C" __attribute__((visibility("default"))) XLA_FFI_Error* dlcore_rnn_backward(
    XLA_FFI_CallFrame* call_frame);

XLA_FFI_DEFINE_HANDLER_SYMBOL(dlcore_rnn_forward, dlcore::RnnForward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // x [T, N, I]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // h0 [N, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // c0 [N, H] (LSTM) or [0]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W [I, G*H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // U [H, G*H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // b [Gb*H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // y [T, N, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // h_T [N, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // c_T [N, H] or [0]
                                  .Ret<ffi::Buffer<ffi::U8>>()   // workspace ([0]: inference)
                                  .Attr<int64_t>("kind")
                                  .Attr<int64_t>("training"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(dlcore_rnn_backward, dlcore::RnnBackward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // x
                                  .Arg<ffi::Buffer<ffi::F32>>()  // h0
                                  .Arg<ffi::Buffer<ffi::F32>>()  // c0
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W
                                  .Arg<ffi::Buffer<ffi::F32>>()  // U
                                  .Arg<ffi::Buffer<ffi::F32>>()  // b
                                  .Arg<ffi::Buffer<ffi::F32>>()  // y
                                  .Arg<ffi::Buffer<ffi::F32>>()  // h_T
                                  .Arg<ffi::Buffer<ffi::F32>>()  // c_T
                                  .Arg<ffi::Buffer<ffi::U8>>()   // workspace
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dy
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dh_T
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dc_T
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dx
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dh0
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dc0
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dW
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dU
                                  .Ret<ffi::Buffer<ffi::F32>>()  // db
                                  .Attr<int64_t>("kind"));

// Bytes of oneDNN's training workspace for this shape (Python sizes the uint8 output with
// it); builds and caches the primitives as a side effect. -1 if oneDNN rejects the shape.
DLCORE_EXPORT int64_t dlcore_rnn_workspace_bytes(int64_t kind, int64_t T, int64_t N, int64_t I,
                                                 int64_t H) {
  if (!dlcore::check_kind(kind)) return -1;
  try {
    return static_cast<int64_t>(dlcore::plan_for(kind, T, N, I, H).ws.get_size());
  } catch (const dnnl::error&) {
    return -1;
  }
}
