#pragma once
// Elementwise sums of F32 device arrays of n elements, queued on `stream`.
#include <cuda_runtime.h>

#include <cstdint>

namespace hookrt::cuda {

void add(const float* a, const float* b, float* out, int64_t n, cudaStream_t stream);  // out = a + b
void accumulate(float* dst, const float* src, int64_t n, cudaStream_t stream);         // dst += src

}  // namespace hookrt::cuda
