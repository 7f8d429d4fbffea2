#pragma once
// Max pooling with PyTorch's indices, queued on `stream`. cuDNN's max pooling reports no indices,
// so hookrt has its own kernels: forward one thread per output, backward one thread per input, for
// tensors in NCHW order or, channels-last, NHWC order (x, y, indices, dy and dx of a call in one).
#include <cuda_runtime.h>

#include <cstdint>

#include "hookrt/tensor.h"

namespace hookrt::cuda {

// x (N, C, H, W) pooled by square windows (hookrt::Pool2dGeometry's fields); the output
// (N, C, P, Q) follows.
struct MaxPoolShape {
  int64_t n, c, h, w;
  int kernel, stride, padding;
  int64_t p() const { return (h + 2 * padding - kernel) / stride + 1; }
  int64_t q() const { return (w + 2 * padding - kernel) / stride + 1; }
};

// x, y, dy and dx hold one activation dtype (F32, BF16 or F16); values are compared and summed in float.
// y (N,C,P,Q), indices (N,C,P,Q): flat h*W+w of each window's max within its plane, in either
// layout (PyTorch's channels-last indices are the same). As PyTorch: a value replaces the max when
// it is greater or NaN (ties keep the first in scan order, the last NaN wins); a window of -inf
// reports its first valid element.
void maxpool2d_forward(const void* x, void* y, int64_t* indices, DType dtype, const MaxPoolShape& shape,
                       MemoryFormat format, cudaStream_t stream);
// dx (N,C,H,W) = the sum of dy over the outputs whose index names that input, added in output
// order in float (deterministic: a gather, no atomics) and rounded once, the same sums in either
// layout. Indices must come from maxpool2d_forward with the same shape: an index outside its own
// window is not seen.
void maxpool2d_backward(const void* dy, const int64_t* indices, void* dx, DType dtype, const MaxPoolShape& shape,
                        MemoryFormat format, cudaStream_t stream);

}  // namespace hookrt::cuda
