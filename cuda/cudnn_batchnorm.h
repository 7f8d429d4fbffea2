#pragma once
// Batch normalisation through cuDNN (spatial mode: one mean and variance per channel over N, H, W).
// Training uses cuDNN's forward and backward, whose running variance update uses the unbiased
// batch variance and whose saved statistics are the batch mean and 1/sqrt(var + eps), exactly the
// Backend contract. Inference uses cuDNN's forward plus our kernels for the saved statistics and
// the constant-statistics backward (batchnorm_inference.cuh). Descriptors are cached per shape.
#include <cudnn.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "batchnorm_inference.cuh"
#include "hookrt/backend.h"

namespace hookrt::cuda {

// Device pointers of one batch-norm forward: x, y (N,C,HW); the rest (C).
struct BatchNormForwardArgs {
  const float* x;
  const float* weight;
  const float* bias;
  float* running_mean;
  float* running_var;
  float* y;
  float* save_mean;
  float* save_invstd;
};

// Device pointers of one batch-norm backward: dy, x, dx (N,C,HW); the rest (C).
struct BatchNormBackwardArgs {
  const float* dy;
  const float* x;
  const float* weight;
  const float* save_mean;
  const float* save_invstd;
  float* dx;
  float* dweight;
  float* dbias;
};

class CudnnBatchNorm {
 public:
  CudnnBatchNorm(cudnnHandle_t handle, cudaStream_t stream);
  ~CudnnBatchNorm();
  CudnnBatchNorm(const CudnnBatchNorm&) = delete;
  CudnnBatchNorm& operator=(const CudnnBatchNorm&) = delete;

  // Throws Error(BadInput) in training when a channel holds a single value, as PyTorch does.
  void forward(const BatchNormForwardArgs& args, const BatchNormDims& dims, const BatchNormOptions& options);
  void backward(const BatchNormBackwardArgs& args, const BatchNormDims& dims, const BatchNormOptions& options);

 private:
  struct Descriptors;
  const Descriptors& descriptors(const BatchNormDims& dims);

  cudnnHandle_t handle_;
  cudaStream_t stream_;
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::unique_ptr<Descriptors>> cache_;
};

}  // namespace hookrt::cuda
