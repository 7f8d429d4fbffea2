#pragma once
// In-place products of a device array of n elements of an activation dtype (F32, BF16 or F16), queued
// on `stream`: the gradient transforms of changing probes (a clamp's 0/1 mask, a clipnorm's
// scale). The factor is F32 or the array's dtype; each product is taken in float and rounded once.
#include <cuda_runtime.h>

#include <cstdint>

#include "hookrt/tensor.h"

namespace hookrt::cuda {

// t[i] *= factor[0] (factor is one device element, so the scale never visits the host).
void multiply_by_scalar(void* t, DType dtype, const void* factor, DType factor_dtype, int64_t n,
                        cudaStream_t stream);
// t[i] *= factor[i]
void multiply_elementwise(void* t, DType dtype, const void* factor, DType factor_dtype, int64_t n,
                          cudaStream_t stream);

}  // namespace hookrt::cuda
