#pragma once
// ReLU and its backward on F32 device arrays of n elements, queued on `stream`.
#include <cuda_runtime.h>

#include <cstdint>

namespace hookrt::cuda {

// y = x where x > 0 or x is NaN, else 0 (torch.relu: clamp_min keeps NaN).
void relu_forward(const float* x, float* y, int64_t n, cudaStream_t stream);
// dx = 0 where y <= 0, else dy (threshold_backward on the result; NaN y passes dy).
void relu_backward(const float* y, const float* dy, float* dx, int64_t n, cudaStream_t stream);
// y = relu(a + b): a residual add and the ReLU after it, the sum never written.
void add_relu_forward(const float* a, const float* b, float* y, int64_t n, cudaStream_t stream);

}  // namespace hookrt::cuda
