#pragma once
// The parts of inference-mode batch norm that cuDNN does not provide, queued on `stream`: the
// saved statistics the Backend contract asks for, and the backward with constant statistics
// (cuDNN's backward differentiates through batch statistics, i.e. training mode only).
#include <cuda_runtime.h>

#include <cstdint>

#include "batchnorm_args.h"

namespace hookrt::cuda {

// save_mean (C) = running_mean; save_invstd (C) = 1 / sqrt(running_var + eps) in double.
void batchnorm_inference_saved_stats(const float* running_mean, const float* running_var, float* save_mean,
                                     float* save_invstd, int64_t channels, double eps, cudaStream_t stream);

// x, dy, dx: (N, C, HW) in NCHW order. With sum_dy = Σ dy and dot = Σ dy (x - mean) per channel
// (in double): dbias = sum_dy, dweight = dot * invstd, dx = dy * (invstd * weight). dx, dweight,
// dbias may each be null. F32 tensors. BF16 and F16 activations, and channels-last F32 ones,
// go to batchnorm_mixed.cuh, whose inference backward computes the same.
void batchnorm_inference_backward(const float* dy, const float* x, const float* weight, const float* save_mean,
                                  const float* save_invstd, float* dx, float* dweight, float* dbias,
                                  const BatchNormDims& dims, cudaStream_t stream);

}  // namespace hookrt::cuda
