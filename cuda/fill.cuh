#pragma once
// Sets every element of a device array to one value, queued on `stream`.
#include <cuda_runtime.h>

#include <cstdint>

#include "hookrt/tensor.h"

namespace hookrt::cuda {

// data holds n elements of dtype (F32, F64, I64, I32 or U8); value is converted as a C++ cast
// would, like CpuBackend::fill. Throws Error for other dtypes.
void fill(void* data, DType dtype, int64_t n, double value, cudaStream_t stream);

}  // namespace hookrt::cuda
