#pragma once
// ReLU and its backward on device arrays of n elements of one activation dtype (F32, BF16 or
// F16), queued on `stream`. Half values are compared and added in float and rounded once when stored,
// which gives the bits of the F32 op on the widened values, rounded.
#include <cuda_runtime.h>

#include <cstdint>

#include "hookrt/tensor.h"

namespace hookrt::cuda {

// y = x where x > 0 or x is NaN, else 0 (torch.relu: clamp_min keeps NaN).
void relu_forward(const void* x, void* y, DType dtype, int64_t n, cudaStream_t stream);
// dx = 0 where y <= 0, else dy (threshold_backward on the result; NaN y passes dy).
void relu_backward(const void* y, const void* dy, void* dx, DType dtype, int64_t n, cudaStream_t stream);
// y = relu(a + b): a residual add and the ReLU after it, the sum never written. For a half dtype the sum is
// rounded after the ReLU, which gives the same bits as rounding it before (rounding keeps signs,
// and ReLU sends every value not above 0 to +0).
void add_relu_forward(const void* a, const void* b, void* y, DType dtype, int64_t n, cudaStream_t stream);

}  // namespace hookrt::cuda
