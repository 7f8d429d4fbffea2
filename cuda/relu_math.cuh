#pragma once
// ReLU's element rules, shared by the ReLU kernels (relu.cu) and the probe pass that writes a ReLU
// output or gradient in its epilogue (probe_chunks.cuh), so both give the same bits.
#include <cuda_runtime.h>

#include <cmath>

namespace hookrt::cuda {

// torch.relu: clamp_min keeps NaN; every other value not above 0 becomes +0.
template <class T>
__device__ __forceinline__ T relu_value(T x) {
  return (x > T(0) || isnan(x)) ? x : T(0);
}

// threshold_backward on the result: 0 where y <= 0, else dy (a NaN y passes dy).
template <class T>
__device__ __forceinline__ T relu_grad(T y, T dy) {
  return y <= T(0) ? T(0) : dy;
}

}  // namespace hookrt::cuda
