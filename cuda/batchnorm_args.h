#pragma once
// What one batch-norm call works on, as CudnnBatchNorm and our batch-norm kernels take it: the
// dimensions, the device pointers of a forward and of a backward, and the options.
#include <cstdint>

#include "hookrt/tensor.h"

namespace hookrt::cuda {

// x (N, C, HW): HW is the product of the dims after the channels (1 for (N, C) features). The
// activations lie in `format`'s order: NCHW, value (i, c, j) at (i * C + c) * HW + j, or
// ChannelsLast (NHWC), at (i * HW + j) * C + c; the per-channel tensors are 1-D either way.
struct BatchNormDims {
  int64_t n, c, hw;
  MemoryFormat format = MemoryFormat::Contiguous;
};

// A forward: x and y (N,C,HW, in the dims' format) of `activations` (F32, BF16 or F16); the rest
// (C) F32 whatever it is.
struct BatchNormForwardArgs {
  const void* x;
  const float* weight;
  const float* bias;
  float* running_mean;
  float* running_var;
  void* y;
  float* save_mean;
  float* save_invstd;
  DType activations;
};

// A backward: dy, x and dx (N,C,HW, in the dims' format) of `activations` (F32, BF16 or F16);
// the rest (C) F32.
struct BatchNormBackwardArgs {
  const void* dy;
  const void* x;
  const float* weight;
  const float* save_mean;
  const float* save_invstd;
  void* dx;
  float* dweight;
  float* dbias;
  DType activations;
};

// BatchNormOptions (backend.h) as kernels take it. Statistics: the batch's (training) or the
// running ones (inference).
enum class BatchNormStatistics { Batch, Running };
struct BatchNormSettings {
  BatchNormStatistics statistics;
  double eps;
  double momentum;  // training: running = (1 - momentum) * running + momentum * batch
};

}  // namespace hookrt::cuda
