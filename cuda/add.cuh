#pragma once
// Elementwise sums of device arrays of n elements of one activation dtype (F32, BF16 or F16),
// queued on `stream`: each sum in float, rounded once to the dtype.
#include <cuda_runtime.h>

#include <cstdint>

#include "hookrt/tensor.h"

namespace hookrt::cuda {

void add(const void* a, const void* b, void* out, DType dtype, int64_t n, cudaStream_t stream);  // out = a + b
void accumulate(void* dst, const void* src, DType dtype, int64_t n, cudaStream_t stream);        // dst += src

}  // namespace hookrt::cuda
