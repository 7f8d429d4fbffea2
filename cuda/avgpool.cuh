#pragma once
// Global (adaptive 1x1) average pooling of (N, C, H, W) tensors in NCHW or NHWC order, queued on
// `stream`.
#include <cuda_runtime.h>

#include <cstdint>

#include "hookrt/tensor.h"

namespace hookrt::cuda {

// x (or dx) as the pooling sees it: N·C planes of hw = H·W elements, laid out in `format`.
// y and dy (N, C, 1, 1) lie in both orders: plane n·C + c.
struct GlobalPoolShape {
  int64_t n, c, hw;
  MemoryFormat format;
};

// x, y, dy, dx hold one activation dtype (F32, BF16 or F16). Each result is computed in double, as
// the CPU reference computes the F32 op, rounded to F32 and, for BF16 and F16, from there to nearest even.
// y[plane] = mean of x's plane, summed in double in element order (h·W + w, as the CPU reference,
// whatever the layout).
void adaptive_avgpool_forward(const void* x, void* y, DType dtype, const GlobalPoolShape& shape, cudaStream_t stream);
// dx[plane, j] = dy[plane] / hw, divided in double.
void adaptive_avgpool_backward(const void* dy, void* dx, DType dtype, const GlobalPoolShape& shape,
                               cudaStream_t stream);

}  // namespace hookrt::cuda
