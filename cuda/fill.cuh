#pragma once
// Sets every element of a device array to one value, queued on `stream`.
#include <cuda_runtime.h>

#include <cstdint>

#include "hookrt/tensor.h"

namespace hookrt::cuda {

// data holds n elements of dtype; value is converted as a C++ cast would, or, for BF16 and F16,
// cast to float and rounded to nearest even by the host's conversion: like CpuBackend::fill.
void fill(void* data, DType dtype, int64_t n, double value, cudaStream_t stream);

}  // namespace hookrt::cuda
