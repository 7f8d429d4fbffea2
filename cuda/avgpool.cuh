#pragma once
// Global (adaptive 1x1) average pooling over planes of hw elements, queued on `stream`.
#include <cuda_runtime.h>

#include <cstdint>

#include "hookrt/tensor.h"

namespace hookrt::cuda {

// x, y, dy, dx hold one activation dtype (F32 or BF16). Each result is computed in double, as the CPU
// reference computes the F32 op, rounded to F32 and, for BF16, from there to nearest even.
// y[plane] = mean of x's plane, summed in double in element order (as the CPU reference).
void adaptive_avgpool_forward(const void* x, void* y, DType dtype, int64_t planes, int64_t hw, cudaStream_t stream);
// dx[plane, j] = dy[plane] / hw, divided in double.
void adaptive_avgpool_backward(const void* dy, void* dx, DType dtype, int64_t planes, int64_t hw,
                               cudaStream_t stream);

}  // namespace hookrt::cuda
