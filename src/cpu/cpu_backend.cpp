// CpuBackend — the reference Backend: host memory, the ops of cpu/ops.h and the CPU probe engine.
// Every method checks devices, dtypes and shapes first and throws an Error naming the op, the
// tensor and the shapes involved. Float tensors may be F32 (the contract) or F64 (so tests can run
// whole networks in double for finite differences); all float tensors of one call share a dtype,
// but for the BF16 and F16 ops of backend.h, which run in F32 through cpu::HalfWidening.
// An output that is undefined is allocated when its shape follows from the inputs; outputs whose
// shape does not (dx of conv and pooling, dw of conv) must be passed in allocated.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "backend_checks.h"
#include "cpu/half_widening.h"
#include "cpu/channels_last_staging.h"
#include "cpu/ops.h"
#include "cpu/probes.h"
#include "hookrt/backend.h"

namespace hookrt {
namespace {

// ---- checks ---------------------------------------------------------------------------------------

using checks::require_rank;
using checks::require_shape;
using checks::where;

void require_host(const Tensor& t, const char* op, const char* name) { checks::require_on(t, Device::CPU, op, name); }

void require_float(const Tensor& t, const char* op, const char* name) {
  require_host(t, op, name);
  if (t.dtype() != DType::F32 && t.dtype() != DType::F64)
    throw Error(where(op, name) + " has dtype " + dtype_name(t.dtype()) + "; expected F32 or F64");
}

void require_dtype(const Tensor& t, DType dtype, const char* op, const char* name) {
  checks::require_dtype_on(t, Device::CPU, dtype, op, name);
}

// An output: allocated when undefined, else checked against the expected shape and dtype.
void prepare_output(Tensor& t, const Shape& shape, DType dtype, const char* op, const char* name) {
  if (!t.defined()) {
    t = Tensor::empty(shape, dtype);
    return;
  }
  require_dtype(t, dtype, op, name);
  require_shape(t, shape, op, name);
}

// The output of an elementwise op, which walks its operands in memory order: allocated in the
// layout of `like` (named like_name), else checked to lie in it.
void prepare_elementwise_output(Tensor& t, const Tensor& like, const char* op, const char* name, const char* like_name) {
  if (!t.defined()) {
    t = Tensor::empty(like.shape(), like.dtype(), like.memory_format());
    return;
  }
  require_dtype(t, like.dtype(), op, name);
  require_shape(t, like.shape(), op, name);
  checks::require_same_layout(t, like, op, name, like_name);
}

void require_one_f32(const Tensor& t, const char* op, const char* name) {
  checks::require_one_f32_on(t, Device::CPU, op, name);
}

// BF16 or F16: the ops run in F32 on widened copies (cpu::HalfWidening).
bool is_half(const Tensor& t) { return t.defined() && (t.dtype() == DType::BF16 || t.dtype() == DType::F16); }

// Runs f with a value of the scalar type matching dtype (F32 or F64).
template <class F>
void dispatch_float(DType dtype, F&& f) {
  if (dtype == DType::F64) {
    f(double{});
  } else {
    f(float{});
  }
}

// ---- shape structs from tensors -------------------------------------------------------------------

cpu::ConvShape conv_shape(const Shape& x, const Shape& w, const Conv2dGeometry& g, const char* op) {
  checks::require_conv_geometry(x, w, g, op);
  return cpu::ConvShape{x[0], x[1], x[2], x[3], w[0], w[2], w[3], g.stride, g.padding};
}

Shape conv_output_shape(const cpu::ConvShape& s) { return {s.n, s.k, s.p(), s.q()}; }

cpu::PoolShape pool_shape(const Shape& x, const Pool2dGeometry& g, const char* op) {
  if (g.kernel < 1 || g.stride < 1 || g.padding < 0 || 2 * g.padding > g.kernel)
    throw Error(std::string(op) + ": kernel " + std::to_string(g.kernel) + ", stride " + std::to_string(g.stride) +
                ", padding " + std::to_string(g.padding) + " is invalid (padding must be at most half the kernel)");
  const cpu::PoolShape s{x[0], x[1], x[2], x[3], g.kernel, g.stride, g.padding};
  if (s.h + 2 * s.padding < s.kernel || s.w + 2 * s.padding < s.kernel)
    throw Error(std::string(op) + ": kernel " + std::to_string(g.kernel) + " is larger than the padded input " +
                shape_string(x));
  return s;
}

cpu::BatchNormShape batchnorm_shape(const Tensor& x, const char* op) {
  if (x.ndim() < 2) throw Error(std::string(op) + ": x has shape " + shape_string(x.shape()) + "; expected (N, C, ...)");
  return cpu::BatchNormShape{x.size(0), x.size(1), x.numel() / std::max<int64_t>(x.size(0) * x.size(1), 1)};
}

// Labels as int64 (I32 labels are widened).
Tensor labels_as_i64(const Tensor& labels, int64_t n, const char* op) {
  require_host(labels, op, "labels");
  if (labels.dtype() != DType::I64 && labels.dtype() != DType::I32)
    throw Error(std::string(op) + ": labels have dtype " + dtype_name(labels.dtype()) + "; expected I64 or I32");
  require_shape(labels, Shape{n}, op, "labels");
  return labels.dtype() == DType::I64 ? labels : labels.to(DType::I64);
}

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::CPU; }
  std::string name() const override { return "cpu"; }

  // ---- memory ----
  Tensor empty(const Shape& shape, DType dtype, MemoryFormat format) override { return Tensor::empty(shape, dtype, format); }
  Tensor zeros(const Shape& shape, DType dtype, MemoryFormat format) override { return Tensor::zeros(shape, dtype, format); }

  void copy(const Tensor& src, Tensor& dst) override {
    require_host(src, "copy", "src");
    if (!dst.defined()) {
      dst = src.clone();
      return;
    }
    require_dtype(dst, src.dtype(), "copy", "dst");
    if (dst.numel() != src.numel())
      throw Error("copy: src " + shape_string(src.shape()) + " and dst " + shape_string(dst.shape()) +
                  " differ in element count");
    checks::require_same_layout(dst, src, "copy", "dst", "src");
    if (src.nbytes() && dst.raw_data() != src.raw_data()) std::memmove(dst.raw_data(), src.raw_data(), src.nbytes());
  }
  Tensor to_host(const Tensor& tensor) override {
    require_host(tensor, "to_host", "tensor");
    const Tensor nchw = tensor.contiguous();
    return nchw.raw_data() == tensor.raw_data() ? nchw.clone() : nchw;  // always a tensor of its own
  }
  Tensor from_host(const Tensor& host) override {
    require_host(host, "from_host", "host");
    return host.clone();
  }
  void convert(const Tensor& src, Tensor& dst) override {
    require_host(src, "convert", "src");
    require_host(dst, "convert", "dst");
    if (dst.numel() != src.numel())
      throw Error("convert: src " + shape_string(src.shape()) + " and dst " + shape_string(dst.shape()) +
                  " differ in element count");
    if (!dst.same_layout(src)) require_shape(dst, src.shape(), "convert", "dst");
    // Tensor::to throws naming a conversion between float and integer.
    const Tensor converted = src.to(dst.dtype()).to_memory_format(dst.memory_format());
    if (converted.nbytes()) std::memcpy(dst.raw_data(), converted.raw_data(), converted.nbytes());
  }
  void synchronize() override {}

  // ---- elementwise ----
  void fill(Tensor& tensor, double value) override {
    require_host(tensor, "fill", "tensor");
    fill_in_place(tensor, value);
  }

  void add(const Tensor& a, const Tensor& b, Tensor& out) override {
    if (is_half(a)) {
      cpu::HalfWidening half("add", a.dtype());
      Tensor& out32 = half.out(out, "out");
      add(half.in(a, "a"), half.in(b, "b"), out32);
      return half.finish();
    }
    require_float(a, "add", "a");
    require_dtype(b, a.dtype(), "add", "b");
    require_shape(b, a.shape(), "add", "b");
    checks::require_same_layout(b, a, "add", "b", "a");
    prepare_elementwise_output(out, a, "add", "out", "a");
    dispatch_float(a.dtype(), [&]<class T>(T) { cpu::add(a.data<T>(), b.data<T>(), out.data<T>(), a.numel()); });
  }

  void accumulate(Tensor& dst, const Tensor& src) override {
    if (is_half(dst)) {
      cpu::HalfWidening half("accumulate", dst.dtype());
      accumulate(half.in_out(dst, "dst"), half.in(src, "src"));
      return half.finish();
    }
    require_float(dst, "accumulate", "dst");
    require_dtype(src, dst.dtype(), "accumulate", "src");
    require_shape(src, dst.shape(), "accumulate", "src");
    checks::require_same_layout(src, dst, "accumulate", "src", "dst");
    dispatch_float(dst.dtype(), [&]<class T>(T) { cpu::accumulate(dst.data<T>(), src.data<T>(), dst.numel()); });
  }

  // A half tensor's factor may be F32 or the tensor's dtype: the F32 op converts it.
  void multiply_(Tensor& tensor, const Tensor& factor) override {
    if (is_half(tensor)) {
      cpu::HalfWidening half("multiply_", tensor.dtype());
      Tensor& widened = half.in_out(tensor, "tensor");
      multiply_(widened, is_half(factor) ? half.in(factor, "factor") : factor);
      return half.finish();
    }
    require_float(tensor, "multiply_", "tensor");
    require_float(factor, "multiply_", "factor");
    if (factor.numel() != 1 && factor.shape() != tensor.shape())
      throw Error("multiply_: factor " + shape_string(factor.shape()) + " is neither one element nor the tensor's shape " +
                  shape_string(tensor.shape()));
    if (factor.numel() != 1) checks::require_same_layout(factor, tensor, "multiply_", "factor", "tensor");
    const Tensor f = factor.dtype() == tensor.dtype() ? factor : factor.to(tensor.dtype());
    dispatch_float(tensor.dtype(), [&]<class T>(T) {
      T* t = tensor.data<T>();
      const T* m = f.data<T>();
      const int64_t n = tensor.numel();
      if (f.numel() == 1 && n != 1) {
        for (int64_t i = 0; i < n; ++i) t[i] *= m[0];
      } else {
        for (int64_t i = 0; i < n; ++i) t[i] *= m[i];
      }
    });
  }

  // ---- convolution ----
  void conv2d_forward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) override {
    const char* op = "conv2d_forward";
    if (cpu::ChannelsLastStaging::wanted({&x, &w, &y})) {
      cpu::ChannelsLastStaging nhwc(op);
      Tensor& y0 = nhwc.out(y, "y");
      conv2d_forward(nhwc.in(x, "x"), nhwc.in(w, "w"), y0, g);
      return nhwc.finish();
    }
    if (is_half(x)) {
      cpu::HalfWidening half(op, x.dtype());
      Tensor& y32 = half.out(y, "y");
      conv2d_forward(half.in(x, "x"), half.in(w, "w"), y32, g);
      return half.finish();
    }
    check_conv_operands(x, "x", w, "w", op);
    const cpu::ConvShape s = conv_shape(x.shape(), w.shape(), g, op);
    prepare_output(y, conv_output_shape(s), x.dtype(), op, "y");
    dispatch_float(x.dtype(), [&]<class T>(T) { cpu::conv2d_forward(x.data<T>(), w.data<T>(), y.data<T>(), s); });
  }

  void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g) override {
    const char* op = "conv2d_backward_data";
    if (cpu::ChannelsLastStaging::wanted({&dy, &w, &dx})) {
      cpu::ChannelsLastStaging nhwc(op);
      Tensor& dx0 = nhwc.out(dx, "dx");
      conv2d_backward_data(nhwc.in(dy, "dy"), nhwc.in(w, "w"), dx0, g);
      return nhwc.finish();
    }
    if (is_half(w)) {
      cpu::HalfWidening half(op, w.dtype());
      Tensor& dx32 = half.out(dx, "dx");
      if (!dx.defined()) throw Error(std::string(op) + ": dx must be allocated with the input's shape");
      conv2d_backward_data(half.in(dy, "dy"), half.in(w, "w"), dx32, g);
      return half.finish();
    }
    if (!dx.defined()) throw Error(std::string(op) + ": dx must be allocated with the input's shape");
    check_conv_operands(dx, "dx", w, "w", op);
    require_dtype(dy, w.dtype(), op, "dy");
    const cpu::ConvShape s = conv_shape(dx.shape(), w.shape(), g, op);
    require_shape(dy, conv_output_shape(s), op, "dy");
    dispatch_float(w.dtype(), [&]<class T>(T) { cpu::conv2d_backward_data(dy.data<T>(), w.data<T>(), dx.data<T>(), s); });
  }

  void conv2d_backward_filter(const Tensor& x, const Tensor& dy, Tensor& dw, const Conv2dGeometry& g) override {
    const char* op = "conv2d_backward_filter";
    if (cpu::ChannelsLastStaging::wanted({&x, &dy, &dw})) {
      cpu::ChannelsLastStaging nhwc(op);
      Tensor& dw0 = nhwc.out(dw, "dw");
      conv2d_backward_filter(nhwc.in(x, "x"), nhwc.in(dy, "dy"), dw0, g);
      return nhwc.finish();
    }
    if (is_half(x)) {
      cpu::HalfWidening half(op, x.dtype());
      Tensor& dw32 = half.out(dw, "dw");
      if (!dw.defined()) throw Error(std::string(op) + ": dw must be allocated with the filter's shape");
      conv2d_backward_filter(half.in(x, "x"), half.in(dy, "dy"), dw32, g);
      return half.finish();
    }
    if (!dw.defined()) throw Error(std::string(op) + ": dw must be allocated with the filter's shape");
    check_conv_operands(x, "x", dw, "dw", op);
    require_dtype(dy, x.dtype(), op, "dy");
    const cpu::ConvShape s = conv_shape(x.shape(), dw.shape(), g, op);
    require_shape(dy, conv_output_shape(s), op, "dy");
    dispatch_float(x.dtype(), [&]<class T>(T) { cpu::conv2d_backward_filter(x.data<T>(), dy.data<T>(), dw.data<T>(), s); });
  }

  // ---- batch norm ----
  void batchnorm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                         Tensor& running_var, Tensor& y, Tensor& save_mean, Tensor& save_invstd,
                         const BatchNormOptions& o) override {
    const char* op = "batchnorm_forward";
    if (cpu::ChannelsLastStaging::wanted({&x, &y})) {
      cpu::ChannelsLastStaging nhwc(op);
      Tensor& y0 = nhwc.out(y, "y");
      batchnorm_forward(nhwc.in(x, "x"), weight, bias, running_mean, running_var, y0, save_mean, save_invstd, o);
      return nhwc.finish();
    }
    if (is_half(x)) {  // weight, bias and the statistics stay F32
      cpu::HalfWidening half(op, x.dtype());
      Tensor& y32 = half.out(y, "y");
      batchnorm_forward(half.in(x, "x"), weight, bias, running_mean, running_var, y32, save_mean, save_invstd, o);
      return half.finish();
    }
    const cpu::BatchNormShape s = checked_batchnorm_forward(x, weight, bias, running_mean, running_var, save_mean,
                                                            save_invstd, op);
    prepare_output(y, x.shape(), x.dtype(), op, "y");
    dispatch_float(x.dtype(), [&]<class T>(T) {
      if (o.mode == BatchNormMode::Training) {
        cpu::batchnorm_forward_training(x.data<T>(), weight.data<T>(), bias.data<T>(), running_mean.data<T>(),
                                        running_var.data<T>(), y.data<T>(), save_mean.data<T>(),
                                        save_invstd.data<T>(), s, o.eps, o.momentum);
      } else {
        cpu::batchnorm_forward_inference(x.data<T>(), weight.data<T>(), bias.data<T>(), running_mean.data<T>(),
                                         running_var.data<T>(), y.data<T>(), save_mean.data<T>(),
                                         save_invstd.data<T>(), s, o.eps);
      }
    });
  }

  void batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& save_mean,
                          const Tensor& save_invstd, Tensor& dx, Tensor& dweight, Tensor& dbias,
                          const BatchNormOptions& o) override {
    const char* op = "batchnorm_backward";
    if (cpu::ChannelsLastStaging::wanted({&dy, &x, &dx})) {
      cpu::ChannelsLastStaging nhwc(op);
      Tensor& dx0 = nhwc.out(dx, "dx");
      batchnorm_backward(nhwc.in(dy, "dy"), nhwc.in(x, "x"), weight, save_mean, save_invstd, dx0, dweight, dbias, o);
      return nhwc.finish();
    }
    if (is_half(x)) {  // weight, the saved statistics, dweight and dbias stay F32
      cpu::HalfWidening half(op, x.dtype());
      Tensor& dx32 = half.out(dx, "dx");
      batchnorm_backward(half.in(dy, "dy"), half.in(x, "x"), weight, save_mean, save_invstd, dx32, dweight, dbias, o);
      return half.finish();
    }
    const cpu::BatchNormShape s = checked_batchnorm_backward(dy, x, weight, save_mean, save_invstd, dweight, dbias, op);
    prepare_output(dx, x.shape(), x.dtype(), op, "dx");
    dispatch_float(x.dtype(), [&]<class T>(T) {
      cpu::batchnorm_backward(dy.data<T>(), x.data<T>(), weight.data<T>(), save_mean.data<T>(),
                              save_invstd.data<T>(), dx.data<T>(), dweight.data<T>(), dbias.data<T>(), s, o.mode);
    });
  }

  // ---- batch norm in two parts: the same functions split at the per-channel coefficients ----
  bool splits_batchnorm(DType) const override { return true; }

  void batchnorm_forward_coefficients(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                                      Tensor& running_var, Tensor& save_mean, Tensor& save_invstd,
                                      Tensor& coefficients, const BatchNormOptions& o) override {
    const char* op = "batchnorm_forward_coefficients";
    if (cpu::ChannelsLastStaging::wanted({&x})) {
      const cpu::ChannelsLastStaging nhwc(op);
      return batchnorm_forward_coefficients(nhwc.in(x, "x"), weight, bias, running_mean, running_var, save_mean,
                                            save_invstd, coefficients, o);
    }
    if (is_half(x)) {  // the statistics and the coefficients stay F32
      const cpu::HalfWidening half(op, x.dtype());
      return batchnorm_forward_coefficients(half.in(x, "x"), weight, bias, running_mean, running_var, save_mean,
                                            save_invstd, coefficients, o);
    }
    const cpu::BatchNormShape s = checked_batchnorm_forward(x, weight, bias, running_mean, running_var, save_mean,
                                                            save_invstd, op);
    prepare_output(coefficients, Shape{2, s.c}, x.dtype(), op, "coefficients");
    dispatch_float(x.dtype(), [&]<class T>(T) {
      cpu::batchnorm_forward_coefficients(x.data<T>(), weight.data<T>(), bias.data<T>(), running_mean.data<T>(),
                                          running_var.data<T>(), save_mean.data<T>(), save_invstd.data<T>(),
                                          coefficients.data<T>(), s, o.mode, o.eps, o.momentum);
    });
  }

  void batchnorm_apply(const Tensor& x, const Tensor& coefficients, Tensor& y) override {
    const char* op = "batchnorm_apply";
    if (cpu::ChannelsLastStaging::wanted({&x, &y})) {
      cpu::ChannelsLastStaging nhwc(op);
      Tensor& y0 = nhwc.out(y, "y");
      batchnorm_apply(nhwc.in(x, "x"), coefficients, y0);
      return nhwc.finish();
    }
    if (is_half(x)) {
      cpu::HalfWidening half(op, x.dtype());
      Tensor& y32 = half.out(y, "y");
      batchnorm_apply(half.in(x, "x"), coefficients, y32);
      return half.finish();
    }
    require_float(x, op, "x");
    const cpu::BatchNormShape s = batchnorm_shape(x, op);
    check_coefficients(coefficients, 2, x, op);
    prepare_elementwise_output(y, x, op, "y", "x");
    dispatch_float(x.dtype(), [&]<class T>(T) {
      cpu::batchnorm_apply(x.data<T>(), coefficients.data<T>(), y.data<T>(), s);
    });
  }

  void batchnorm_backward_coefficients(const Tensor& dy, const Tensor& x, const Tensor& weight,
                                       const Tensor& save_mean, const Tensor& save_invstd, Tensor& dweight,
                                       Tensor& dbias, Tensor& coefficients, const BatchNormOptions& o) override {
    const char* op = "batchnorm_backward_coefficients";
    if (cpu::ChannelsLastStaging::wanted({&dy, &x})) {
      const cpu::ChannelsLastStaging nhwc(op);
      return batchnorm_backward_coefficients(nhwc.in(dy, "dy"), nhwc.in(x, "x"), weight, save_mean, save_invstd,
                                             dweight, dbias, coefficients, o);
    }
    if (is_half(x)) {  // dweight, dbias and the coefficients stay F32
      const cpu::HalfWidening half(op, x.dtype());
      return batchnorm_backward_coefficients(half.in(dy, "dy"), half.in(x, "x"), weight, save_mean, save_invstd,
                                             dweight, dbias, coefficients, o);
    }
    const cpu::BatchNormShape s = checked_batchnorm_backward(dy, x, weight, save_mean, save_invstd, dweight, dbias, op);
    prepare_output(coefficients, Shape{4, s.c}, x.dtype(), op, "coefficients");
    dispatch_float(x.dtype(), [&]<class T>(T) {
      cpu::batchnorm_backward_coefficients(dy.data<T>(), x.data<T>(), weight.data<T>(), save_mean.data<T>(),
                                           save_invstd.data<T>(), dweight.data<T>(), dbias.data<T>(),
                                           coefficients.data<T>(), s, o.mode);
    });
  }

  void batchnorm_dx(const Tensor& dy, const Tensor& x, const Tensor& coefficients, Tensor& dx) override {
    const char* op = "batchnorm_dx";
    if (cpu::ChannelsLastStaging::wanted({&dy, &x, &dx})) {
      cpu::ChannelsLastStaging nhwc(op);
      Tensor& dx0 = nhwc.out(dx, "dx");
      batchnorm_dx(nhwc.in(dy, "dy"), x.defined() ? nhwc.in(x, "x") : Tensor(), coefficients, dx0);
      return nhwc.finish();
    }
    if (is_half(dy)) {
      cpu::HalfWidening half(op, dy.dtype());
      Tensor& dx32 = half.out(dx, "dx");
      batchnorm_dx(half.in(dy, "dy"), x.defined() ? half.in(x, "x") : Tensor(), coefficients, dx32);
      return half.finish();
    }
    require_float(dy, op, "dy");
    if (x.defined()) {
      require_dtype(x, dy.dtype(), op, "x");
      require_shape(x, dy.shape(), op, "x");
    }
    const cpu::BatchNormShape s = batchnorm_shape(dy, op);
    check_coefficients(coefficients, 4, dy, op);
    prepare_elementwise_output(dx, dy, op, "dx", "dy");
    dispatch_float(dy.dtype(), [&]<class T>(T) {
      cpu::batchnorm_dx(dy.data<T>(), x.defined() ? x.data<T>() : nullptr, coefficients.data<T>(), dx.data<T>(), s);
    });
  }

  // ---- ReLU ----
  void relu_forward(const Tensor& x, Tensor& y) override {
    if (is_half(x)) {
      cpu::HalfWidening half("relu_forward", x.dtype());
      Tensor& y32 = half.out(y, "y");
      relu_forward(half.in(x, "x"), y32);
      return half.finish();
    }
    require_float(x, "relu_forward", "x");
    prepare_elementwise_output(y, x, "relu_forward", "y", "x");
    dispatch_float(x.dtype(), [&]<class T>(T) { cpu::relu_forward(x.data<T>(), y.data<T>(), x.numel()); });
  }

  void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) override {
    if (is_half(y)) {
      cpu::HalfWidening half("relu_backward", y.dtype());
      Tensor& dx32 = half.out(dx, "dx");
      relu_backward(half.in(y, "y"), half.in(dy, "dy"), dx32);
      return half.finish();
    }
    require_float(y, "relu_backward", "y");
    require_dtype(dy, y.dtype(), "relu_backward", "dy");
    require_shape(dy, y.shape(), "relu_backward", "dy");
    checks::require_same_layout(dy, y, "relu_backward", "dy", "y");
    prepare_elementwise_output(dx, y, "relu_backward", "dx", "y");
    dispatch_float(y.dtype(), [&]<class T>(T) { cpu::relu_backward(y.data<T>(), dy.data<T>(), dx.data<T>(), y.numel()); });
  }

  // ---- pooling ----
  void maxpool2d_forward(const Tensor& x, Tensor& y, Tensor& indices, const Pool2dGeometry& g) override {
    const char* op = "maxpool2d_forward";
    if (cpu::ChannelsLastStaging::wanted({&x, &y, &indices})) {
      cpu::ChannelsLastStaging nhwc(op);
      Tensor& y0 = nhwc.out(y, "y");
      Tensor& indices0 = nhwc.out(indices, "indices");
      maxpool2d_forward(nhwc.in(x, "x"), y0, indices0, g);
      return nhwc.finish();
    }
    if (is_half(x)) {
      cpu::HalfWidening half(op, x.dtype());
      Tensor& y32 = half.out(y, "y");
      maxpool2d_forward(half.in(x, "x"), y32, indices, g);
      return half.finish();
    }
    require_float(x, op, "x");
    require_rank(x, 4, op, "x");
    const cpu::PoolShape s = pool_shape(x.shape(), g, op);
    const Shape out{s.n, s.c, s.p(), s.q()};
    prepare_output(y, out, x.dtype(), op, "y");
    prepare_output(indices, out, DType::I64, op, "indices");
    dispatch_float(x.dtype(), [&]<class T>(T) { cpu::maxpool2d_forward(x.data<T>(), y.data<T>(), indices.data<int64_t>(), s); });
  }

  void maxpool2d_backward(const Tensor& dy, const Tensor& indices, Tensor& dx, const Pool2dGeometry& g) override {
    const char* op = "maxpool2d_backward";
    if (cpu::ChannelsLastStaging::wanted({&dy, &indices, &dx})) {
      cpu::ChannelsLastStaging nhwc(op);
      Tensor& dx0 = nhwc.out(dx, "dx");
      maxpool2d_backward(nhwc.in(dy, "dy"), nhwc.in(indices, "indices"), dx0, g);
      return nhwc.finish();
    }
    if (is_half(dy)) {
      cpu::HalfWidening half(op, dy.dtype());
      Tensor& dx32 = half.out(dx, "dx");
      if (!dx.defined()) throw Error(std::string(op) + ": dx must be allocated with the input's shape");
      maxpool2d_backward(half.in(dy, "dy"), indices, dx32, g);
      return half.finish();
    }
    if (!dx.defined()) throw Error(std::string(op) + ": dx must be allocated with the input's shape");
    require_float(dx, op, "dx");
    require_rank(dx, 4, op, "dx");
    require_dtype(dy, dx.dtype(), op, "dy");
    require_dtype(indices, DType::I64, op, "indices");
    const cpu::PoolShape s = pool_shape(dx.shape(), g, op);
    const Shape out{s.n, s.c, s.p(), s.q()};
    require_shape(dy, out, op, "dy");
    require_shape(indices, out, op, "indices");
    check_pool_indices(indices, s.h * s.w, op);
    dispatch_float(dx.dtype(), [&]<class T>(T) { cpu::maxpool2d_backward(dy.data<T>(), indices.data<int64_t>(), dx.data<T>(), s); });
  }

  void adaptive_avgpool_forward(const Tensor& x, Tensor& y) override {
    if (cpu::ChannelsLastStaging::wanted({&x})) {  // y (N, C, 1, 1) lies the same in both layouts
      cpu::ChannelsLastStaging nhwc("adaptive_avgpool_forward");
      Tensor& y0 = nhwc.out(y, "y");
      adaptive_avgpool_forward(nhwc.in(x, "x"), y0);
      return nhwc.finish();
    }
    if (is_half(x)) {
      cpu::HalfWidening half("adaptive_avgpool_forward", x.dtype());
      Tensor& y32 = half.out(y, "y");
      adaptive_avgpool_forward(half.in(x, "x"), y32);
      return half.finish();
    }
    require_float(x, "adaptive_avgpool_forward", "x");
    require_rank(x, 4, "adaptive_avgpool_forward", "x");
    prepare_output(y, Shape{x.size(0), x.size(1), 1, 1}, x.dtype(), "adaptive_avgpool_forward", "y");
    const int64_t planes = x.size(0) * x.size(1), hw = x.size(2) * x.size(3);
    dispatch_float(x.dtype(), [&]<class T>(T) { cpu::adaptive_avgpool_forward(x.data<T>(), y.data<T>(), planes, hw); });
  }

  void adaptive_avgpool_backward(const Tensor& dy, Tensor& dx) override {
    const char* op = "adaptive_avgpool_backward";
    if (cpu::ChannelsLastStaging::wanted({&dx})) {  // dy (N, C, 1, 1) lies the same in both layouts
      cpu::ChannelsLastStaging nhwc(op);
      Tensor& dx0 = nhwc.out(dx, "dx");
      adaptive_avgpool_backward(nhwc.in(dy, "dy"), dx0);
      return nhwc.finish();
    }
    if (is_half(dy)) {
      cpu::HalfWidening half(op, dy.dtype());
      Tensor& dx32 = half.out(dx, "dx");
      if (!dx.defined()) throw Error(std::string(op) + ": dx must be allocated with the input's shape");
      adaptive_avgpool_backward(half.in(dy, "dy"), dx32);
      return half.finish();
    }
    if (!dx.defined()) throw Error(std::string(op) + ": dx must be allocated with the input's shape");
    require_float(dx, op, "dx");
    require_rank(dx, 4, op, "dx");
    require_dtype(dy, dx.dtype(), op, "dy");
    require_shape(dy, Shape{dx.size(0), dx.size(1), 1, 1}, op, "dy");
    const int64_t planes = dx.size(0) * dx.size(1), hw = dx.size(2) * dx.size(3);
    dispatch_float(dx.dtype(), [&]<class T>(T) { cpu::adaptive_avgpool_backward(dy.data<T>(), dx.data<T>(), planes, hw); });
  }

  // ---- linear: x may be (N, ...) with its trailing dims flattening to the input features ----
  void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) override {
    if (is_half(x)) {  // the bias is added in F32, before the one rounding
      cpu::HalfWidening half("linear_forward", x.dtype());
      Tensor& y32 = half.out(y, "y");
      linear_forward(half.in(x, "x"), half.in(w, "w"), half.in(b, "b"), y32);
      return half.finish();
    }
    const cpu::LinearShape s = linear_shape(x, w, "linear_forward");
    require_dtype(b, x.dtype(), "linear_forward", "b");
    require_shape(b, Shape{s.out}, "linear_forward", "b");
    prepare_output(y, Shape{s.n, s.out}, x.dtype(), "linear_forward", "y");
    dispatch_float(x.dtype(), [&]<class T>(T) { cpu::linear_forward(x.data<T>(), w.data<T>(), b.data<T>(), y.data<T>(), s); });
  }

  void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dx, Tensor& dw, Tensor& db) override {
    const char* op = "linear_backward";
    if (is_half(x)) {
      cpu::HalfWidening half(op, x.dtype());
      Tensor& dx32 = half.out(dx, "dx");  // undefined: not wanted, as in F32
      Tensor& dw32 = half.out(dw, "dw");
      Tensor& db32 = half.out(db, "db");
      linear_backward(half.in(x, "x"), half.in(w, "w"), half.in(dy, "dy"), dx32, dw32, db32);
      return half.finish();
    }
    const cpu::LinearShape s = linear_shape(x, w, op);
    require_dtype(dy, x.dtype(), op, "dy");
    require_shape(dy, Shape{s.n, s.out}, op, "dy");
    if (dx.defined()) prepare_output(dx, x.shape(), x.dtype(), op, "dx");
    prepare_output(dw, w.shape(), x.dtype(), op, "dw");
    prepare_output(db, Shape{s.out}, x.dtype(), op, "db");
    dispatch_float(x.dtype(), [&]<class T>(T) {
      cpu::linear_backward(x.data<T>(), w.data<T>(), dy.data<T>(), dx.defined() ? dx.data<T>() : nullptr,
                           dw.data<T>(), db.data<T>(), s);
    });
  }

  // ---- loss ----
  using Backend::cross_entropy_forward;
  void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& probs, Tensor& loss) override {
    const char* op = "cross_entropy_forward";
    require_float(logits, op, "logits");
    require_rank(logits, 2, op, "logits");
    const Tensor labels64 = labels_as_i64(labels, logits.size(0), op);
    prepare_output(probs, logits.shape(), logits.dtype(), op, "probs");
    prepare_output(loss, Shape{1}, DType::F64, op, "loss");
    double value = 0;
    dispatch_float(logits.dtype(), [&]<class T>(T) {
      value = cpu::cross_entropy_forward(logits.data<T>(), labels64.data<int64_t>(), probs.data<T>(), logits.size(0),
                                         logits.size(1));
    });
    loss.data<double>()[0] = value;
  }

  void cross_entropy_backward(const Tensor& probs, const Tensor& labels, Tensor& dlogits) override {
    const char* op = "cross_entropy_backward";
    require_float(probs, op, "probs");
    require_rank(probs, 2, op, "probs");
    const Tensor labels64 = labels_as_i64(labels, probs.size(0), op);
    prepare_output(dlogits, probs.shape(), probs.dtype(), op, "dlogits");
    dispatch_float(probs.dtype(), [&]<class T>(T) {
      cpu::cross_entropy_backward(probs.data<T>(), labels64.data<int64_t>(), dlogits.data<T>(), probs.size(0),
                                  probs.size(1));
    });
  }

  // ---- optimizer ----
  void sgd_update(Tensor& param, const Tensor& grad, Tensor& momentum_buffer, bool first_step,
                  const SgdOptions& o, const Tensor& skip_if) override {
    const char* op = "sgd_update";
    if (skip_if.defined()) require_one_f32(skip_if, op, "skip_if");
    require_float(param, op, "param");
    require_dtype(grad, param.dtype(), op, "grad");
    require_shape(grad, param.shape(), op, "grad");
    if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
      throw_bad_input("sgd_update: Nesterov momentum requires a momentum and zero dampening");
    const bool use_momentum = o.momentum != 0.0;
    if (use_momentum && first_step && (!momentum_buffer.defined() || momentum_buffer.shape() != param.shape() ||
                                       momentum_buffer.dtype() != param.dtype()))
      momentum_buffer = Tensor::empty(param.shape(), param.dtype());
    if (use_momentum) {
      if (!momentum_buffer.defined()) throw Error("sgd_update: momentum_buffer is undefined after the first step");
      require_dtype(momentum_buffer, param.dtype(), op, "momentum_buffer");
      require_shape(momentum_buffer, param.shape(), op, "momentum_buffer");
    }
    if (skip_if.defined() && skip_if.data<float>()[0] != 0.0f) return;
    dispatch_float(param.dtype(), [&]<class T>(T) {
      cpu::sgd_update(param.data<T>(), grad.data<T>(), use_momentum ? momentum_buffer.data<T>() : nullptr,
                      param.numel(), first_step, o);
    });
  }

  // ---- loss scaling ----
  void unscale_gradient_(Tensor& grad, const Tensor& scale, Tensor& found_inf) override {
    const char* op = "unscale_gradient_";
    require_dtype(grad, DType::F32, op, "grad");
    require_one_f32(scale, op, "scale");
    require_one_f32(found_inf, op, "found_inf");
    if (cpu::unscale_gradient(grad.data<float>(), grad.numel(), scale.data<float>()[0]))
      found_inf.data<float>()[0] = 1.0f;
  }

  void update_loss_scale(Tensor& scale, Tensor& growth_tracker, const Tensor& found_inf,
                         const LossScaleOptions& o) override {
    const char* op = "update_loss_scale";
    require_one_f32(scale, op, "scale");
    require_one_f32(found_inf, op, "found_inf");
    require_dtype(growth_tracker, DType::I32, op, "growth_tracker");
    require_shape(growth_tracker, {1}, op, "growth_tracker");
    cpu::update_loss_scale(scale.data<float>()[0], growth_tracker.data<int32_t>()[0], found_inf.data<float>()[0] != 0.0f,
                           o);
  }

  // ---- probes ----
  ProbeRunEffects run_probes(const ProbeList& probes, Tensor& tensor, ProbeRecord& record,
                             const ProbeRunOptions& options) override {
    // The reference reads an input probed with its op twice: once to probe it, once in the op.
    if (options.probe_input) return run_input_probes_apart(probes, tensor, record, options);
    return cpu::produce_and_run_probes(*this, probes, tensor, record, options);
  }

 private:
  static void fill_in_place(Tensor& tensor, double value) {
    const int64_t n = tensor.numel();
    switch (tensor.dtype()) {
      case DType::F32: std::fill_n(tensor.data<float>(), n, static_cast<float>(value)); break;
      case DType::F64: std::fill_n(tensor.data<double>(), n, value); break;
      case DType::BF16:
        std::fill_n(static_cast<uint16_t*>(tensor.raw_data()), n, float_to_bfloat16(static_cast<float>(value)));
        break;
      case DType::F16:
        std::fill_n(static_cast<uint16_t*>(tensor.raw_data()), n, float_to_half(static_cast<float>(value)));
        break;
      case DType::I64: std::fill_n(tensor.data<int64_t>(), n, static_cast<int64_t>(value)); break;
      case DType::I32: std::fill_n(tensor.data<int32_t>(), n, static_cast<int32_t>(value)); break;
      case DType::U8: std::fill_n(tensor.data<uint8_t>(), n, static_cast<uint8_t>(value)); break;
      default: throw Error("fill: dtype " + dtype_name(tensor.dtype()) + " is not supported");
    }
  }

  static void check_conv_operands(const Tensor& x, const char* x_name, const Tensor& w, const char* w_name,
                                  const char* op) {
    require_float(x, op, x_name);
    require_rank(x, 4, op, x_name);
    require_dtype(w, x.dtype(), op, w_name);
    require_rank(w, 4, op, w_name);
  }

  static void check_channel_vector(const Tensor& t, const char* name, const Tensor& x, const char* op) {
    require_dtype(t, x.dtype(), op, name);
    require_shape(t, Shape{x.size(1)}, op, name);
  }

  // (rows, C) in x's dtype, as the batch norm's coefficients parts leave them.
  static void check_coefficients(const Tensor& t, int64_t rows, const Tensor& x, const char* op) {
    require_dtype(t, x.dtype(), op, "coefficients");
    require_shape(t, Shape{rows, x.size(1)}, op, "coefficients");
  }

  // The checks of a batch norm forward's operands but y, and its statistics outputs prepared.
  static cpu::BatchNormShape checked_batchnorm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                                       const Tensor& running_mean, const Tensor& running_var,
                                                       Tensor& save_mean, Tensor& save_invstd, const char* op) {
    require_float(x, op, "x");
    const cpu::BatchNormShape s = batchnorm_shape(x, op);
    check_channel_vector(weight, "weight", x, op);
    check_channel_vector(bias, "bias", x, op);
    check_channel_vector(running_mean, "running_mean", x, op);
    check_channel_vector(running_var, "running_var", x, op);
    prepare_output(save_mean, Shape{s.c}, x.dtype(), op, "save_mean");
    prepare_output(save_invstd, Shape{s.c}, x.dtype(), op, "save_invstd");
    return s;
  }

  // The same for a backward: all but dx, with dweight and dbias prepared.
  static cpu::BatchNormShape checked_batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight,
                                                        const Tensor& save_mean, const Tensor& save_invstd,
                                                        Tensor& dweight, Tensor& dbias, const char* op) {
    require_float(x, op, "x");
    require_dtype(dy, x.dtype(), op, "dy");
    require_shape(dy, x.shape(), op, "dy");
    const cpu::BatchNormShape s = batchnorm_shape(x, op);
    check_channel_vector(weight, "weight", x, op);
    check_channel_vector(save_mean, "save_mean", x, op);
    check_channel_vector(save_invstd, "save_invstd", x, op);
    prepare_output(dweight, Shape{s.c}, x.dtype(), op, "dweight");
    prepare_output(dbias, Shape{s.c}, x.dtype(), op, "dbias");
    return s;
  }

  static void check_pool_indices(const Tensor& indices, int64_t plane_size, const char* op) {
    const int64_t* index = indices.data<int64_t>();
    for (int64_t i = 0; i < indices.numel(); ++i)
      if (index[i] < 0 || index[i] >= plane_size)
        throw Error(std::string(op) + ": index " + std::to_string(index[i]) + " at position " + std::to_string(i) +
                    " lies outside its plane of " + std::to_string(plane_size) + " elements");
  }

  static cpu::LinearShape linear_shape(const Tensor& x, const Tensor& w, const char* op) {
    require_float(x, op, "x");
    require_dtype(w, x.dtype(), op, "w");
    require_rank(w, 2, op, "w");
    if (x.ndim() < 2) throw Error(std::string(op) + ": x has shape " + shape_string(x.shape()) + "; expected (N, features)");
    if (!x.is_contiguous())  // its trailing dims flatten to the features in NCHW order
      throw Error(std::string(op) + ": x " + shape_string(x.shape()) + " is channels_last; its features must lie in NCHW order");
    const cpu::LinearShape s{x.size(0), w.size(1), w.size(0)};
    if (x.numel() != s.n * s.in)
      throw Error(std::string(op) + ": x " + shape_string(x.shape()) + " does not have the " + std::to_string(s.in) +
                  " input features of w " + shape_string(w.shape()));
    return s;
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace hookrt
