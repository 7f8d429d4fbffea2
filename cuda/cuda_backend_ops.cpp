// CudaBackend's layer ops, loss and optimizer: check the arguments as the CPU backend does, then
// queue the work on the backend's stream. Activations and their gradients are F32, BF16 or F16,
// one dtype per call (backend.h), whose operands are checked against the one the CPU backend takes the
// call's dtype from, so that both name the same operand; parameters of batch norm, the loss and
// the optimizer are F32. The 4-D operands of one op share a memory format (backend.h), the
// outputs it allocates take it, and each op runs its NCHW or its NHWC kernels.
#include <limits>
#include <string>
#include <vector>

#include "avgpool.cuh"
#include "backend_checks.h"
#include "cross_entropy.cuh"
#include "cuda_backend.h"
#include "loss_scale.cuh"
#include "maxpool.cuh"
#include "relu.cuh"
#include "sgd.cuh"
#include "tensor_checks.h"

namespace hookrt::cuda {
namespace {

void require_one_f32(const Tensor& t, const char* op, const char* name) {
  checks::require_one_f32_on(t, Device::CUDA, op, name);
}

int as_int(int64_t value, const char* op) {
  if (value > std::numeric_limits<int>::max())
    throw Error(std::string(op) + ": dimension " + std::to_string(value) + " exceeds cuDNN's int dimensions");
  return static_cast<int>(value);
}

// x and w of rank 4, with the dtype of `like` (F32, BF16 or F16), one of them: the operand whose dtype
// the CPU backend takes for the call's (x; for backward data, w), so that both name the same one.
void check_conv_operands(const Tensor& x, const char* x_name, const Tensor& w, const char* w_name, const Tensor& like,
                         const char* like_name, const char* op) {
  require_activation(like, op, like_name);
  if (&x != &like) require_same_dtype(x, like, op, x_name, like_name);
  require_rank(x, 4, op, x_name);
  if (&w != &like) require_same_dtype(w, like, op, w_name, like_name);
  require_rank(w, 4, op, w_name);
}

// NCHW until the caller has checked the operands' layout (shared_layout).
ConvDims conv_dims(const Shape& x, const Shape& w, const Conv2dGeometry& g, DType dtype, const char* op) {
  checks::require_conv_geometry(x, w, g, op);
  const ConvDims d{as_int(x[0], op), as_int(x[1], op), as_int(x[2], op), as_int(x[3], op),
                   as_int(w[0], op), as_int(w[2], op), as_int(w[3], op), g, dtype};
  return d;
}

Shape conv_output_shape(const ConvDims& d) { return {d.n, d.k, d.p(), d.q()}; }

MaxPoolShape pool_shape(const Shape& x, const Pool2dGeometry& g, const char* op) {
  if (g.kernel < 1 || g.stride < 1 || g.padding < 0 || 2 * g.padding > g.kernel)
    throw Error(std::string(op) + ": kernel " + std::to_string(g.kernel) + ", stride " + std::to_string(g.stride) +
                ", padding " + std::to_string(g.padding) + " is invalid (padding must be at most half the kernel)");
  const MaxPoolShape s{x[0], x[1], x[2], x[3], g.kernel, g.stride, g.padding};
  if (s.h + 2 * g.padding < g.kernel || s.w + 2 * g.padding < g.kernel)
    throw Error(std::string(op) + ": kernel " + std::to_string(g.kernel) + " is larger than the padded input " +
                shape_string(x));
  return s;
}

// A 4-D x (or dx) as global pooling walks it; one channel or one pixel per plane lies in both
// orders and takes the NCHW kernel.
GlobalPoolShape global_pool_shape(const Tensor& x) {
  const MemoryFormat format = x.is_contiguous() ? MemoryFormat::Contiguous : MemoryFormat::ChannelsLast;
  return GlobalPoolShape{x.size(0), x.size(1), x.size(2) * x.size(3), format};
}

// x (N, C, ...) as the batch-norm kernels walk it: channels-last where x lies only in that order
// (one channel or one pixel per plane lies in both and takes the NCHW walk).
BatchNormDims batchnorm_dims(const Tensor& x, const char* op) {
  if (x.ndim() < 2) throw Error(std::string(op) + ": x has shape " + shape_string(x.shape()) + "; expected (N, C, ...)");
  const int64_t planes = x.size(0) * x.size(1);
  const MemoryFormat format = x.is_contiguous() ? MemoryFormat::Contiguous : MemoryFormat::ChannelsLast;
  return BatchNormDims{x.size(0), x.size(1), planes > 0 ? x.numel() / planes : 1, format};
}

void check_channel_vector(const Tensor& t, const char* name, const Tensor& x, const char* op) {
  require_f32(t, op, name);
  require_shape(t, Shape{x.size(1)}, op, name);
}

LinearDims linear_dims(const Tensor& x, const Tensor& w, const char* op) {
  require_activation(x, op, "x");
  require_same_dtype(w, x, op, "w", "x");
  require_rank(w, 2, op, "w");
  if (x.ndim() < 2) throw Error(std::string(op) + ": x has shape " + shape_string(x.shape()) + "; expected (N, features)");
  // Its trailing dims flatten to the features in NCHW order ((N, C, 1, 1), as pooling leaves it,
  // lies in both orders). In the CPU backend's words.
  if (!x.is_contiguous())
    throw Error(std::string(op) + ": x " + shape_string(x.shape()) +
                " is channels_last; its features must lie in NCHW order");
  const LinearDims d{x.size(0), w.size(1), w.size(0)};
  if (x.numel() != d.n * d.in)
    throw Error(std::string(op) + ": x " + shape_string(x.shape()) + " does not have the " + std::to_string(d.in) +
                " input features of w " + shape_string(w.shape()));
  return d;
}

}  // namespace

// ---- convolution ----------------------------------------------------------------------------------

void CudaBackend::conv2d_forward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) {
  const char* op = "conv2d_forward";
  check_conv_operands(x, "x", w, "w", x, "x", op);
  ConvDims d = conv_dims(x.shape(), w.shape(), g, x.dtype(), op);
  d.format = shared_layout({{x, "x"}, {w, "w"}, {y, "y"}}, op);
  prepare_output(y, conv_output_shape(d), x.dtype(), op, "y", d.format);
  launch_batched_probes_before_writing({&y});
  if (y.numel() > 0) convolutions_.forward(x.raw_data(), w.raw_data(), y.raw_data(), d);
}

void CudaBackend::conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g) {
  const char* op = "conv2d_backward_data";
  require_allocated(dx, op, "dx", "the input's shape");
  check_conv_operands(dx, "dx", w, "w", w, "w", op);
  require_same_dtype(dy, w, op, "dy", "w");
  ConvDims d = conv_dims(dx.shape(), w.shape(), g, w.dtype(), op);
  require_shape(dy, conv_output_shape(d), op, "dy");
  d.format = shared_layout({{dy, "dy"}, {w, "w"}, {dx, "dx"}}, op);
  launch_batched_probes_before_writing({&dx});
  if (dx.numel() > 0) convolutions_.backward_data(dy.raw_data(), w.raw_data(), dx.raw_data(), d);
}

void CudaBackend::conv2d_backward_filter(const Tensor& x, const Tensor& dy, Tensor& dw, const Conv2dGeometry& g) {
  const char* op = "conv2d_backward_filter";
  require_allocated(dw, op, "dw", "the filter's shape");
  check_conv_operands(x, "x", dw, "dw", x, "x", op);
  require_same_dtype(dy, x, op, "dy", "x");
  ConvDims d = conv_dims(x.shape(), dw.shape(), g, x.dtype(), op);
  require_shape(dy, conv_output_shape(d), op, "dy");
  d.format = shared_layout({{x, "x"}, {dy, "dy"}, {dw, "dw"}}, op);
  launch_batched_probes_before_writing({&dw});
  if (dw.numel() > 0) convolutions_.backward_filter(x.raw_data(), dy.raw_data(), dw.raw_data(), d);
}

// ---- batch norm -----------------------------------------------------------------------------------

BatchNormDims CudaBackend::checked_batchnorm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                                     const Tensor& running_mean, const Tensor& running_var,
                                                     Tensor& save_mean, Tensor& save_invstd, const char* op) {
  require_activation(x, op, "x");
  const BatchNormDims d = batchnorm_dims(x, op);
  check_channel_vector(weight, "weight", x, op);
  check_channel_vector(bias, "bias", x, op);
  check_channel_vector(running_mean, "running_mean", x, op);
  check_channel_vector(running_var, "running_var", x, op);
  prepare_output(save_mean, Shape{d.c}, DType::F32, op, "save_mean");
  prepare_output(save_invstd, Shape{d.c}, DType::F32, op, "save_invstd");
  return d;
}

BatchNormDims CudaBackend::checked_batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight,
                                                      const Tensor& save_mean, const Tensor& save_invstd,
                                                      Tensor& dweight, Tensor& dbias, const char* op) {
  require_activation(x, op, "x");
  require_same_dtype(dy, x, op, "dy", "x");
  require_shape(dy, x.shape(), op, "dy");
  require_same_layout(dy, x, op, "dy", "x");
  const BatchNormDims d = batchnorm_dims(x, op);
  check_channel_vector(weight, "weight", x, op);
  check_channel_vector(save_mean, "save_mean", x, op);
  check_channel_vector(save_invstd, "save_invstd", x, op);
  prepare_output(dweight, Shape{d.c}, DType::F32, op, "dweight");
  prepare_output(dbias, Shape{d.c}, DType::F32, op, "dbias");
  return d;
}

void CudaBackend::batchnorm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                                    Tensor& running_var, Tensor& y, Tensor& save_mean, Tensor& save_invstd,
                                    const BatchNormOptions& o) {
  const char* op = "batchnorm_forward";
  const BatchNormDims d =
      checked_batchnorm_forward(x, weight, bias, running_mean, running_var, save_mean, save_invstd, op);
  prepare_output(y, x.shape(), x.dtype(), op, "y", x.memory_format());
  require_same_layout(y, x, op, "y", "x");
  launch_batched_probes_before_writing({&y, &save_mean, &save_invstd, &running_mean, &running_var});
  batchnorm_.forward(BatchNormForwardArgs{x.raw_data(), weight.data<float>(), bias.data<float>(),
                                          running_mean.data<float>(), running_var.data<float>(), y.raw_data(),
                                          save_mean.data<float>(), save_invstd.data<float>(), x.dtype()},
                     d, o);
}

void CudaBackend::batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& save_mean,
                                     const Tensor& save_invstd, Tensor& dx, Tensor& dweight, Tensor& dbias,
                                     const BatchNormOptions& o) {
  const char* op = "batchnorm_backward";
  const BatchNormDims d = checked_batchnorm_backward(dy, x, weight, save_mean, save_invstd, dweight, dbias, op);
  prepare_output(dx, x.shape(), x.dtype(), op, "dx", x.memory_format());
  require_same_layout(dx, x, op, "dx", "x");
  launch_batched_probes_before_writing({&dx, &dweight, &dbias});
  batchnorm_.backward(BatchNormBackwardArgs{dy.raw_data(), x.raw_data(), weight.data<float>(),
                                            save_mean.data<float>(), save_invstd.data<float>(), dx.raw_data(),
                                            dweight.data<float>(), dbias.data<float>(), x.dtype()},
                      d, o);
}

// ---- batch norm in two parts ----------------------------------------------------------------------

namespace {

// The coefficients of a batch norm's two parts: F32, `rows` rows of x's channels.
void check_coefficients(const Tensor& coefficients, int64_t rows, const Tensor& x, const char* op) {
  require_f32(coefficients, op, "coefficients");
  require_shape(coefficients, Shape{rows, x.size(1)}, op, "coefficients");
}

}  // namespace

bool CudaBackend::splits_batchnorm(DType dtype) const {
  return dtype == DType::BF16 || dtype == DType::F16 || (dtype == DType::F32 && options_.own_f32_batchnorm);
}

void CudaBackend::batchnorm_forward_coefficients(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                                 Tensor& running_mean, Tensor& running_var, Tensor& save_mean,
                                                 Tensor& save_invstd, Tensor& coefficients, const BatchNormOptions& o) {
  const char* op = "batchnorm_forward_coefficients";
  const BatchNormDims d =
      checked_batchnorm_forward(x, weight, bias, running_mean, running_var, save_mean, save_invstd, op);
  prepare_output(coefficients, Shape{2, d.c}, DType::F32, op, "coefficients");
  launch_batched_probes_before_writing({&save_mean, &save_invstd, &running_mean, &running_var, &coefficients});
  batchnorm_.forward_coefficients(BatchNormForwardArgs{x.raw_data(), weight.data<float>(), bias.data<float>(),
                                                       running_mean.data<float>(), running_var.data<float>(), nullptr,
                                                       save_mean.data<float>(), save_invstd.data<float>(), x.dtype()},
                                  d, o, coefficients.data<float>());
}

void CudaBackend::batchnorm_apply(const Tensor& x, const Tensor& coefficients, Tensor& y) {
  apply_batchnorm("batchnorm_apply", x, coefficients, nullptr, false, y);
}

void CudaBackend::batchnorm_apply_relu(const ProducingOp& op, Tensor& y) {
  if (op.kind == ProducingOp::Kind::BatchNormApplyRelu)
    return apply_batchnorm("batchnorm_apply_relu", op.a, op.coefficients, nullptr, true, y);
  apply_batchnorm("batchnorm_apply_add_relu", op.a, op.coefficients, &op.b, true, y);
}

void CudaBackend::apply_batchnorm(const char* op, const Tensor& x, const Tensor& coefficients, const Tensor* residual,
                                  bool relu, Tensor& y) {
  require_activation(x, op, "x");
  const BatchNormDims d = batchnorm_dims(x, op);
  check_coefficients(coefficients, 2, x, op);
  if (residual) {
    require_same_dtype(*residual, x, op, "b", "x");
    require_shape(*residual, x.shape(), op, "b");
    require_same_layout(*residual, x, op, "b", "x");
  }
  prepare_output(y, x.shape(), x.dtype(), op, "y", x.memory_format());
  require_same_layout(y, x, op, "y", "x");
  launch_batched_probes_before_writing({&y});
  batchnorm_.apply(x.raw_data(), y.raw_data(), coefficients.data<float>(), x.dtype(), d,
                   residual ? residual->raw_data() : nullptr, relu);
}

void CudaBackend::batchnorm_backward_coefficients(const Tensor& dy, const Tensor& x, const Tensor& weight,
                                                  const Tensor& save_mean, const Tensor& save_invstd, Tensor& dweight,
                                                  Tensor& dbias, Tensor& coefficients, const BatchNormOptions& o) {
  const char* op = "batchnorm_backward_coefficients";
  const BatchNormDims d = checked_batchnorm_backward(dy, x, weight, save_mean, save_invstd, dweight, dbias, op);
  prepare_output(coefficients, Shape{4, d.c}, DType::F32, op, "coefficients");
  launch_batched_probes_before_writing({&dweight, &dbias, &coefficients});
  batchnorm_.backward_coefficients(BatchNormBackwardArgs{dy.raw_data(), x.raw_data(), weight.data<float>(),
                                                         save_mean.data<float>(), save_invstd.data<float>(), nullptr,
                                                         dweight.data<float>(), dbias.data<float>(), x.dtype()},
                                   d, o, coefficients.data<float>());
}

void CudaBackend::batchnorm_dx(const Tensor& dy, const Tensor& x, const Tensor& coefficients, Tensor& dx) {
  batchnorm_dx_of("batchnorm_dx", dy, x, coefficients, false, dx);
}

void CudaBackend::batchnorm_relu_backward_coefficients(const Tensor& relu_dy, const Tensor& x,
                                                       const Tensor& forward_coefficients, const Tensor& weight,
                                                       const Tensor& save_mean, const Tensor& save_invstd,
                                                       Tensor& dweight, Tensor& dbias, Tensor& coefficients,
                                                       const BatchNormOptions& o) {
  const char* op = "batchnorm_relu_backward_coefficients";
  const BatchNormDims d =
      checked_batchnorm_backward(relu_dy, x, weight, save_mean, save_invstd, dweight, dbias, op);
  check_coefficients(forward_coefficients, 2, x, op);
  prepare_output(coefficients, Shape{6, d.c}, DType::F32, op, "coefficients");
  launch_batched_probes_before_writing({&dweight, &dbias, &coefficients});
  batchnorm_.backward_coefficients(BatchNormBackwardArgs{relu_dy.raw_data(), x.raw_data(), weight.data<float>(),
                                                         save_mean.data<float>(), save_invstd.data<float>(), nullptr,
                                                         dweight.data<float>(), dbias.data<float>(), x.dtype()},
                                   d, o, coefficients.data<float>(), forward_coefficients.data<float>());
}

void CudaBackend::batchnorm_dx_of(const char* op, const Tensor& dy, const Tensor& x, const Tensor& coefficients,
                                  bool through_relu, Tensor& dx) {
  require_activation(dy, op, "dy");
  if (through_relu && !x.defined()) throw Error(std::string(op) + ": x is not defined");
  if (x.defined()) {
    require_same_dtype(x, dy, op, "x", "dy");
    require_shape(x, dy.shape(), op, "x");
    require_same_layout(x, dy, op, "x", "dy");
  }
  const BatchNormDims d = batchnorm_dims(dy, op);
  check_coefficients(coefficients, through_relu ? 6 : 4, dy, op);
  prepare_output(dx, dy.shape(), dy.dtype(), op, "dx", dy.memory_format());
  require_same_layout(dx, dy, op, "dx", "dy");
  launch_batched_probes_before_writing({&dx});
  batchnorm_.dx(dy.raw_data(), x.defined() ? x.raw_data() : nullptr, dx.raw_data(), coefficients.data<float>(),
                dy.dtype(), d, through_relu);
}

// ---- ReLU -----------------------------------------------------------------------------------------

void CudaBackend::relu_forward(const Tensor& x, Tensor& y) {
  require_activation(x, "relu_forward", "x");
  prepare_output(y, x.shape(), x.dtype(), "relu_forward", "y", x.memory_format());
  require_same_layout(y, x, "relu_forward", "y", "x");
  cuda::relu_forward(x.raw_data(), y.raw_data(), x.dtype(), x.numel(), stream());
}

void CudaBackend::relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  require_activation(y, "relu_backward", "y");
  require_same_dtype(dy, y, "relu_backward", "dy", "y");
  require_shape(dy, y.shape(), "relu_backward", "dy");
  require_same_layout(dy, y, "relu_backward", "dy", "y");
  prepare_output(dx, y.shape(), y.dtype(), "relu_backward", "dx", y.memory_format());
  require_same_layout(dx, y, "relu_backward", "dx", "y");
  cuda::relu_backward(y.raw_data(), dy.raw_data(), dx.raw_data(), y.dtype(), y.numel(), stream());
}

// ---- pooling --------------------------------------------------------------------------------------

void CudaBackend::maxpool2d_forward(const Tensor& x, Tensor& y, Tensor& indices, const Pool2dGeometry& g) {
  const char* op = "maxpool2d_forward";
  require_activation(x, op, "x");
  require_rank(x, 4, op, "x");
  const MaxPoolShape s = pool_shape(x.shape(), g, op);
  const Shape out{s.n, s.c, s.p(), s.q()};
  const MemoryFormat format = shared_layout({{x, "x"}, {y, "y"}, {indices, "indices"}}, op);
  prepare_output(y, out, x.dtype(), op, "y", format);
  prepare_output(indices, out, DType::I64, op, "indices", format);
  cuda::maxpool2d_forward(x.raw_data(), y.raw_data(), indices.data<int64_t>(), x.dtype(), s, format, stream());
}

// Unlike the CPU backend, indices are not range-checked (that would need a device-to-host sync):
// the gather ignores an index outside its window instead of writing out of bounds.
void CudaBackend::maxpool2d_backward(const Tensor& dy, const Tensor& indices, Tensor& dx, const Pool2dGeometry& g) {
  const char* op = "maxpool2d_backward";
  require_allocated(dx, op, "dx", "the input's shape");
  require_activation(dy, op, "dy");
  require_same_dtype(dx, dy, op, "dx", "dy");
  require_rank(dx, 4, op, "dx");
  require_dtype(indices, DType::I64, op, "indices");
  const MaxPoolShape s = pool_shape(dx.shape(), g, op);
  const Shape out{s.n, s.c, s.p(), s.q()};
  require_shape(dy, out, op, "dy");
  require_shape(indices, out, op, "indices");
  const MemoryFormat format = shared_layout({{dy, "dy"}, {indices, "indices"}, {dx, "dx"}}, op);
  cuda::maxpool2d_backward(dy.raw_data(), indices.data<int64_t>(), dx.raw_data(), dy.dtype(), s, format, stream());
}

void CudaBackend::adaptive_avgpool_forward(const Tensor& x, Tensor& y) {
  const char* op = "adaptive_avgpool_forward";
  require_activation(x, op, "x");
  require_rank(x, 4, op, "x");
  // y (N, C, 1, 1) lies in both orders: x alone decides which kernel reads it.
  prepare_output(y, Shape{x.size(0), x.size(1), 1, 1}, x.dtype(), op, "y", x.memory_format());
  cuda::adaptive_avgpool_forward(x.raw_data(), y.raw_data(), x.dtype(), global_pool_shape(x), stream());
}

void CudaBackend::adaptive_avgpool_backward(const Tensor& dy, Tensor& dx) {
  const char* op = "adaptive_avgpool_backward";
  require_allocated(dx, op, "dx", "the input's shape");
  require_activation(dy, op, "dy");
  require_same_dtype(dx, dy, op, "dx", "dy");
  require_rank(dx, 4, op, "dx");
  require_shape(dy, Shape{dx.size(0), dx.size(1), 1, 1}, op, "dy");
  cuda::adaptive_avgpool_backward(dy.raw_data(), dx.raw_data(), dy.dtype(), global_pool_shape(dx), stream());
}

// ---- linear: x may be (N, ...) with its trailing dims flattening to the input features ----------

void CudaBackend::linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) {
  const char* op = "linear_forward";
  const LinearDims d = linear_dims(x, w, op);
  require_same_dtype(b, x, op, "b", "x");
  require_shape(b, Shape{d.out}, op, "b");
  prepare_output(y, Shape{d.n, d.out}, x.dtype(), op, "y");
  launch_batched_probes_before_writing({&y});
  linear_.forward(x.raw_data(), w.raw_data(), b.raw_data(), y.raw_data(), x.dtype(), d);
}

void CudaBackend::linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dx, Tensor& dw,
                                  Tensor& db) {
  const char* op = "linear_backward";
  const LinearDims d = linear_dims(x, w, op);
  require_same_dtype(dy, x, op, "dy", "x");
  require_shape(dy, Shape{d.n, d.out}, op, "dy");
  if (dx.defined()) prepare_output(dx, x.shape(), x.dtype(), op, "dx");
  prepare_output(dw, w.shape(), x.dtype(), op, "dw");
  prepare_output(db, Shape{d.out}, x.dtype(), op, "db");
  launch_batched_probes_before_writing({&dx, &dw, &db});
  linear_.backward(x.raw_data(), w.raw_data(), dy.raw_data(), dx.defined() ? dx.raw_data() : nullptr, dw.raw_data(),
                   db.raw_data(), x.dtype(), d);
}

// ---- loss -----------------------------------------------------------------------------------------

Tensor CudaBackend::checked_device_labels(const Tensor& labels, int64_t n, int64_t classes, const char* op) {
  if (!labels.defined()) throw Error(std::string(op) + ": labels is undefined");
  if (labels.dtype() != DType::I64 && labels.dtype() != DType::I32)
    throw Error(std::string(op) + ": labels have dtype " + dtype_name(labels.dtype()) + "; expected I64 or I32");
  require_shape(labels, Shape{n}, op, "labels");
  // A recorded step's labels are the executor's device copy of host labels it checked before
  // each replay; reading them back would need the host mid-step.
  if (recording_ && labels.device() == Device::CUDA && labels.dtype() == DType::I64) return labels;
  // N labels are a few hundred bytes: checking them on the host gives the CPU backend's error naming
  // the first bad sample. Host labels (the executor's) are read in place; device labels cost one
  // small copy and a wait.
  Tensor host = labels.device() == Device::CPU ? labels : to_host(labels);
  if (host.dtype() != DType::I64) host = host.to(DType::I64);
  const int64_t* value = host.data<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    if (value[i] < 0 || value[i] >= classes)
      throw_bad_input("cross_entropy: label " + std::to_string(value[i]) + " of sample " + std::to_string(i) +
                      " is out of range [0, " + std::to_string(classes) + ")");
  return labels.device() == Device::CUDA && labels.dtype() == DType::I64 ? labels : from_host(host);
}

void CudaBackend::cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& probs, Tensor& loss) {
  const char* op = "cross_entropy_forward";
  require_f32(logits, op, "logits");
  require_rank(logits, 2, op, "logits");
  const int64_t n = logits.size(0), m = logits.size(1);
  const Tensor device_labels = checked_device_labels(labels, n, m, op);
  prepare_output(probs, logits.shape(), DType::F32, op, "probs");
  prepare_output(loss, Shape{1}, DType::F64, op, "loss");
  if (n == 0) {
    fill(loss, 0.0);
    return;
  }
  Tensor row_losses = empty(Shape{n}, DType::F64);
  cuda::cross_entropy_forward(logits.data<float>(), device_labels.data<int64_t>(), probs.data<float>(),
                              row_losses.data<double>(), loss.data<double>(), n, m, stream());
}

void CudaBackend::cross_entropy_backward(const Tensor& probs, const Tensor& labels, Tensor& dlogits) {
  const char* op = "cross_entropy_backward";
  require_f32(probs, op, "probs");
  require_rank(probs, 2, op, "probs");
  const Tensor device_labels = checked_device_labels(labels, probs.size(0), probs.size(1), op);
  prepare_output(dlogits, probs.shape(), DType::F32, op, "dlogits");
  cuda::cross_entropy_backward(probs.data<float>(), device_labels.data<int64_t>(), dlogits.data<float>(),
                               probs.size(0), probs.size(1), stream());
}

// ---- optimizer ------------------------------------------------------------------------------------

cuda::SgdTensorPointers CudaBackend::checked_sgd_tensors(Tensor& param, const Tensor& grad, Tensor& momentum_buffer,
                                                         bool first_step, const SgdOptions& o) {
  const char* op = "sgd_update";
  require_f32(param, op, "param");
  require_f32(grad, op, "grad");
  require_shape(grad, param.shape(), op, "grad");
  require_same_layout(grad, param, op, "grad", "param");  // walked together in memory order
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
    throw_bad_input("sgd_update: Nesterov momentum requires a momentum and zero dampening");
  const bool use_momentum = o.momentum != 0.0;
  if (use_momentum && first_step &&
      (!momentum_buffer.defined() || momentum_buffer.shape() != param.shape() ||
       momentum_buffer.dtype() != param.dtype() || momentum_buffer.device() != Device::CUDA ||
       !momentum_buffer.same_layout(param)))
    momentum_buffer = empty(param.shape(), DType::F32, param.memory_format());
  if (use_momentum) {
    if (!momentum_buffer.defined()) throw Error("sgd_update: momentum_buffer is undefined after the first step");
    require_f32(momentum_buffer, op, "momentum_buffer");
    require_shape(momentum_buffer, param.shape(), op, "momentum_buffer");
    require_same_layout(momentum_buffer, param, op, "momentum_buffer", "param");
  }
  return cuda::SgdTensorPointers{param.data<float>(), grad.data<float>(),
                                 use_momentum ? momentum_buffer.data<float>() : nullptr, param.numel()};
}

void CudaBackend::sgd_update(Tensor& param, const Tensor& grad, Tensor& momentum_buffer, bool first_step,
                             const SgdOptions& o, const Tensor& skip_if) {
  if (skip_if.defined()) require_one_f32(skip_if, "sgd_update", "skip_if");
  const cuda::SgdTensorPointers p = checked_sgd_tensors(param, grad, momentum_buffer, first_step, o);
  const SgdHyperParameters hyper{o.lr, o.momentum, o.dampening, o.weight_decay, o.nesterov};
  cuda::sgd_update(p.param, p.grad, p.momentum_buffer, p.n, first_step, hyper,
                   skip_if.defined() ? skip_if.data<float>() : nullptr, stream());
}

void CudaBackend::sgd_update_all(const std::vector<SgdTensors>& tensors, bool first_step, const SgdOptions& o,
                                 const Tensor& skip_if) {
  if (skip_if.defined()) require_one_f32(skip_if, "sgd_update", "skip_if");
  std::vector<cuda::SgdTensorPointers> pointers;
  pointers.reserve(tensors.size());
  for (const SgdTensors& t : tensors)
    pointers.push_back(checked_sgd_tensors(*t.param, *t.grad, *t.momentum_buffer, first_step, o));
  const SgdHyperParameters hyper{o.lr, o.momentum, o.dampening, o.weight_decay, o.nesterov};
  cuda::sgd_update_list(pointers.data(), static_cast<int>(pointers.size()), first_step, hyper,
                        skip_if.defined() ? skip_if.data<float>() : nullptr, stream());
}

// ---- loss scaling ---------------------------------------------------------------------------------

void CudaBackend::unscale_gradient_(Tensor& grad, const Tensor& scale, Tensor& found_inf) {
  const char* op = "unscale_gradient_";
  require_f32(grad, op, "grad");
  require_one_f32(scale, op, "scale");
  require_one_f32(found_inf, op, "found_inf");
  cuda::unscale_gradient(grad.data<float>(), grad.numel(), scale.data<float>(), found_inf.data<float>(), stream());
}

void CudaBackend::unscale_gradients_(const std::vector<Tensor*>& grads, const Tensor& scale, Tensor& found_inf) {
  const char* op = "unscale_gradients_";
  require_one_f32(scale, op, "scale");
  require_one_f32(found_inf, op, "found_inf");
  std::vector<cuda::UnscaleTensor> tensors;
  tensors.reserve(grads.size());
  for (Tensor* grad : grads) {
    require_f32(*grad, op, "grad");
    tensors.push_back({grad->data<float>(), grad->numel()});
  }
  cuda::unscale_gradients(tensors.data(), static_cast<int>(tensors.size()), scale.data<float>(),
                          found_inf.data<float>(), stream());
}

void CudaBackend::update_loss_scale(Tensor& scale, Tensor& growth_tracker, const Tensor& found_inf,
                                    const LossScaleOptions& o) {
  const char* op = "update_loss_scale";
  require_one_f32(scale, op, "scale");
  require_one_f32(found_inf, op, "found_inf");
  require_dtype(growth_tracker, DType::I32, op, "growth_tracker");
  require_shape(growth_tracker, {1}, op, "growth_tracker");
  if (o.growth_interval < 1 || o.growth_interval > std::numeric_limits<int32_t>::max())
    throw_bad_input("update_loss_scale: growth interval " + std::to_string(o.growth_interval) + " is outside [1, 2^31)");
  cuda::update_loss_scale(scale.data<float>(), growth_tracker.data<int32_t>(), found_inf.data<float>(),
                          static_cast<float>(o.growth_factor), static_cast<float>(o.backoff_factor),
                          static_cast<int32_t>(o.growth_interval), stream());
}

}  // namespace hookrt::cuda
