#pragma once
// Batch normalisation (spatial mode: one mean and variance per channel over N, H, W), on F32, BF16
// or F16 activations with F32 parameters and statistics, in NCHW or channels-last (NHWC) order (the
// dims' format). F32 goes through cuDNN: training uses cuDNN's forward and backward, whose running
// variance update uses the unbiased batch variance and whose saved statistics are the batch mean
// and 1/sqrt(var + eps), exactly the Backend contract; inference uses cuDNN's forward plus our
// kernels for the saved statistics and the constant-statistics backward (batchnorm_inference.cuh
// in NCHW, batchnorm_mixed.cuh's inference backward in NHWC). cuDNN's legacy batch-norm calls take
// NHWC-packed data through an NHWC descriptor, the per-channel descriptor derived from it as in
// NCHW. Descriptors are cached per shape and format. BF16 and F16 go to our
// kernels (batchnorm_mixed.cuh), in either format: cuDNN's legacy calls are not documented to take
// BF16, and F16 follows it so that both half dtypes round as the CPU reference does. F32 goes
// there too where the backend asks (GpuOptions::own_f32_batchnorm), and where PyTorch leaves
// cuDNN's batch norm too: x of more elements than a cuDNN call takes (cuDNN counts them in 32-bit
// ints), a training batch of more than 880,801 images, an inference one of more than 65,535.
#include <cudnn.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "batchnorm_args.h"
#include "batchnorm_inference.cuh"
#include "hookrt/backend.h"
#include "memory_pool.h"
#include "workspace.h"

namespace hookrt::cuda {

class CudnnBatchNorm {
 public:
  // The half kernels' scratch comes from `pool`, kept and grown to the largest shape seen.
  // own_f32: F32 goes to our kernels too, not cuDNN's; so does an F32 x of more than
  // max_cudnn_elements.
  CudnnBatchNorm(cudnnHandle_t handle, cudaStream_t stream, DeviceMemoryPool& pool, bool own_f32 = false,
                 int64_t max_cudnn_elements = INT32_MAX);
  ~CudnnBatchNorm();
  CudnnBatchNorm(const CudnnBatchNorm&) = delete;
  CudnnBatchNorm& operator=(const CudnnBatchNorm&) = delete;

  // Throws Error(BadInput) in training when a channel holds a single value, as PyTorch does.
  void forward(const BatchNormForwardArgs& args, const BatchNormDims& dims, const BatchNormOptions& options);
  void backward(const BatchNormBackwardArgs& args, const BatchNormDims& dims, const BatchNormOptions& options);

  // Each op in two parts (Backend::splits_batchnorm), on our kernels in every dtype: the
  // per-channel part leaves F32 coefficients (batchnorm_mixed.cuh's rows of C) for the elementwise
  // part, which the backend may instead run in a probe pass. forward_coefficients ignores args.y,
  // backward_coefficients args.dx.
  void forward_coefficients(const BatchNormForwardArgs& args, const BatchNormDims& dims,
                            const BatchNormOptions& options, float* coefficients);
  // With `relu`: relu(y), or relu(y + residual) where residual is given (batchnorm_mixed.cuh).
  void apply(const void* x, void* y, const float* coefficients, DType activations, const BatchNormDims& dims,
             const void* residual = nullptr, bool relu = false);
  // With relu_forward: through the ReLU that computed the output (batchnorm_mixed.cuh).
  void backward_coefficients(const BatchNormBackwardArgs& args, const BatchNormDims& dims,
                             const BatchNormOptions& options, float* coefficients,
                             const float* relu_forward = nullptr);
  // x null: an inference backward's dx. through_relu: coefficients has backward_coefficients'
  // six rows with relu_forward.
  void dx(const void* dy, const void* x, void* dx, const float* coefficients, DType activations,
          const BatchNormDims& dims, bool through_relu = false);

 private:
  struct Descriptors;
  const Descriptors& descriptors(const BatchNormDims& dims);
  // Whether the whole op runs on batchnorm_mixed.cuh's kernels rather than cuDNN's.
  bool on_our_kernels(DType activations, const BatchNormDims& dims, const BatchNormOptions& options) const;

  cudnnHandle_t handle_;
  cudaStream_t stream_;
  bool own_f32_;
  int64_t max_cudnn_elements_;
  Workspace scratch_;
  std::map<std::tuple<int64_t, int64_t, int64_t, MemoryFormat>, std::unique_ptr<Descriptors>> cache_;
};

}  // namespace hookrt::cuda
