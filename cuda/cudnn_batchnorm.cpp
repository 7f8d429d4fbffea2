// CudnnBatchNorm (see cudnn_batchnorm.h).
#include "cudnn_batchnorm.h"

#include <limits>
#include <string>

#include "batchnorm_mixed.cuh"
#include "resources.h"
#include "status.h"

namespace hookrt::cuda {
namespace {

int as_int(int64_t value, const char* what) {
  if (value > std::numeric_limits<int>::max())
    throw Error(std::string("batchnorm: ") + what + " " + std::to_string(value) + " exceeds cuDNN's int dimensions");
  return static_cast<int>(value);
}

BatchNormSettings settings_of(const BatchNormOptions& o) {
  const bool training = o.mode == BatchNormMode::Training;
  return BatchNormSettings{training ? BatchNormStatistics::Batch : BatchNormStatistics::Running, o.eps, o.momentum};
}

// PyTorch refuses a training batch with one value per channel: its variance is not defined.
void check_training_batch(const BatchNormDims& d, const BatchNormOptions& o) {
  const int64_t count = d.n * d.hw;  // values per channel
  if (o.mode == BatchNormMode::Training && count <= 1)
    throw_bad_input("batchnorm (training): expected more than 1 value per channel, got " + std::to_string(count) +
                    " (N=" + std::to_string(d.n) + ", H*W=" + std::to_string(d.hw) + ")");
}

}  // namespace

struct CudnnBatchNorm::Descriptors {
  TensorDescriptor x;         // (N, C, HW, 1) F32 in the dims' format: x, y, dy and dx share it
  TensorDescriptor channels;  // (1, C, 1, 1): weight, bias, statistics
};

CudnnBatchNorm::CudnnBatchNorm(cudnnHandle_t handle, cudaStream_t stream, DeviceMemoryPool& pool, bool own_f32,
                               int64_t max_cudnn_elements)
    : handle_(handle),
      stream_(stream),
      own_f32_(own_f32),
      max_cudnn_elements_(max_cudnn_elements),
      scratch_(pool, "batch norm's scratch") {}

CudnnBatchNorm::~CudnnBatchNorm() = default;

bool CudnnBatchNorm::on_our_kernels(DType activations, const BatchNormDims& d, const BatchNormOptions& o) const {
  if (activations != DType::F32 || own_f32_ || d.n * d.c * d.hw > max_cudnn_elements_) return true;
  // The batch sizes up to which PyTorch takes cuDNN's batch norm (its batch_norm dispatch).
  const int64_t most_images = o.mode == BatchNormMode::Training ? 880801 : 65535;
  return d.n > most_images;
}

const CudnnBatchNorm::Descriptors& CudnnBatchNorm::descriptors(const BatchNormDims& d) {
  const auto key = std::make_tuple(d.n, d.c, d.hw, d.format);
  auto found = cache_.find(key);
  if (found != cache_.end()) return *found->second;
  // Channels-last: (N, C, HW, 1) in NHWC order, strides (HW·C, 1, C, C), which is how x lies.
  TensorDescriptor x = TensorDescriptor::packed(d.format, as_int(d.n, "N"), as_int(d.c, "C"), as_int(d.hw, "H*W"),
                                                1, CUDNN_DATA_FLOAT);
  TensorDescriptor channels = TensorDescriptor::batchnorm_channels(x);
  auto made = std::make_unique<Descriptors>(Descriptors{std::move(x), std::move(channels)});
  return *cache_.emplace(key, std::move(made)).first->second;
}

void CudnnBatchNorm::forward(const BatchNormForwardArgs& a, const BatchNormDims& d, const BatchNormOptions& o) {
  check_training_batch(d, o);
  const int64_t count = d.n * d.hw;
  if (d.c == 0) return;
  if (on_our_kernels(a.activations, d, o)) {  // F32 parameters and statistics, any activations
    void* scratch = scratch_.reserve(batchnorm_mixed_scratch_bytes(d));
    return batchnorm_mixed_forward(a, d, settings_of(o), scratch, stream_);
  }
  const float one = 1.0f, zero = 0.0f;
  if (o.mode == BatchNormMode::Training) {
    const Descriptors& desc = descriptors(d);
    // exponentialAverageFactor is PyTorch's momentum: running = (1 - f) running + f batch.
    HOOKRT_CUDA_CHECK(cudnnBatchNormalizationForwardTraining(
        handle_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, desc.x.get(), a.x, desc.x.get(), a.y, desc.channels.get(),
        a.weight, a.bias, o.momentum, a.running_mean, a.running_var, o.eps, a.save_mean, a.save_invstd));
    return;
  }
  if (count > 0) {  // an empty batch still reports the running statistics, as the CPU reference
    const Descriptors& desc = descriptors(d);
    HOOKRT_CUDA_CHECK(cudnnBatchNormalizationForwardInference(
        handle_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, desc.x.get(), a.x, desc.x.get(), a.y, desc.channels.get(),
        a.weight, a.bias, a.running_mean, a.running_var, o.eps));
  }
  batchnorm_inference_saved_stats(a.running_mean, a.running_var, a.save_mean, a.save_invstd, d.c, o.eps, stream_);
}

void CudnnBatchNorm::backward(const BatchNormBackwardArgs& a, const BatchNormDims& d, const BatchNormOptions& o) {
  const bool inference = o.mode == BatchNormMode::Inference;
  // BF16 and F16, and F32 inference in NHWC: the mixed kernels, whose inference backward is
  // batchnorm_inference_backward's formulas (sums in double, dx = dy·gain) in a coalesced NHWC
  // walk. An empty batch gives zero dweight and dbias, in either mode.
  if (on_our_kernels(a.activations, d, o) || (inference && d.format == MemoryFormat::ChannelsLast)) {
    void* scratch = scratch_.reserve(batchnorm_mixed_scratch_bytes(d));
    return batchnorm_mixed_backward(a, d, settings_of(o), scratch, stream_);
  }
  if (inference) {  // our kernel: an empty batch gives zero dweight and dbias
    batchnorm_inference_backward(static_cast<const float*>(a.dy), static_cast<const float*>(a.x), a.weight,
                                 a.save_mean, a.save_invstd, static_cast<float*>(a.dx), a.dweight, a.dbias, d, stream_);
    return;
  }
  // Training forward refused batches of at most one value per channel, so cuDNN sees real shapes.
  if (d.n * d.c * d.hw == 0) return;
  const Descriptors& desc = descriptors(d);
  const float one = 1.0f, zero = 0.0f;
  // betas of 0: dx, dweight and dbias are overwritten, as the Backend contract says.
  HOOKRT_CUDA_CHECK(cudnnBatchNormalizationBackward(handle_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero,
                                                    desc.x.get(), a.x, desc.x.get(), a.dy, desc.x.get(), a.dx,
                                                    desc.channels.get(), a.weight, a.dweight, a.dbias, o.eps,
                                                    a.save_mean, a.save_invstd));
}

void CudnnBatchNorm::forward_coefficients(const BatchNormForwardArgs& a, const BatchNormDims& d,
                                          const BatchNormOptions& o, float* coefficients) {
  check_training_batch(d, o);
  void* scratch = scratch_.reserve(batchnorm_mixed_scratch_bytes(d));
  batchnorm_mixed_forward_coefficients(a, d, settings_of(o), coefficients, scratch, stream_);
}

void CudnnBatchNorm::apply(const void* x, void* y, const float* coefficients, DType activations,
                           const BatchNormDims& d, const void* residual, bool relu) {
  batchnorm_mixed_apply(x, y, coefficients, activations, d, stream_, residual, relu);
}

void CudnnBatchNorm::backward_coefficients(const BatchNormBackwardArgs& a, const BatchNormDims& d,
                                           const BatchNormOptions& o, float* coefficients,
                                           const float* relu_forward) {
  void* scratch = scratch_.reserve(batchnorm_mixed_scratch_bytes(d));
  batchnorm_mixed_backward_coefficients(a, d, settings_of(o), coefficients, scratch, stream_, relu_forward);
}

void CudnnBatchNorm::dx(const void* dy, const void* x, void* dx, const float* coefficients, DType activations,
                        const BatchNormDims& d, bool through_relu) {
  batchnorm_mixed_dx(dy, x, dx, coefficients, activations, d, stream_, through_relu);
}

}  // namespace hookrt::cuda
