#pragma once
// Conversion between float dtypes on the device, queued on `stream`: Backend::convert.
#include <cuda_runtime.h>

#include <cstdint>

#include "hookrt/tensor.h"

namespace hookrt::cuda {

// dst (n elements of dst_dtype) = src (n elements of src_dtype), for F32, BF16 and F16 (two
// different ones). Each value widens to F32 exactly and rounds to nearest even, a NaN keeping the
// bits the host's Tensor::to gives it, so the result is Tensor::to's bit for bit. Throws Error
// naming both dtypes for any other pair.
void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n,
             cudaStream_t stream);

}  // namespace hookrt::cuda
