#pragma once
// In-place products of an F32 device array of n elements, queued on `stream`: the gradient
// transforms of changing probes (a clamp's 0/1 mask, a clipnorm's scale).
#include <cuda_runtime.h>

#include <cstdint>

namespace hookrt::cuda {

// t[i] *= factor[0] (factor is one device element, so the scale never visits the host).
void multiply_by_scalar(float* t, const float* factor, int64_t n, cudaStream_t stream);
// t[i] *= factor[i]
void multiply_elementwise(float* t, const float* factor, int64_t n, cudaStream_t stream);

}  // namespace hookrt::cuda
