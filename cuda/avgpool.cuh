#pragma once
// Global (adaptive 1x1) average pooling over planes of hw elements, queued on `stream`.
#include <cuda_runtime.h>

#include <cstdint>

namespace hookrt::cuda {

// y[plane] = mean of x's plane, summed in double in element order (as the CPU reference).
void adaptive_avgpool_forward(const float* x, float* y, int64_t planes, int64_t hw, cudaStream_t stream);
// dx[plane, j] = dy[plane] / hw, divided in double.
void adaptive_avgpool_backward(const float* dy, float* dx, int64_t planes, int64_t hw, cudaStream_t stream);

}  // namespace hookrt::cuda
