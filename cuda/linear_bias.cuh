#pragma once
// The bias parts of the linear layer, around cuBLAS's GEMMs, queued on `stream`. b, y, dy and db
// hold one activation dtype (F32, BF16 or F16).
#include <cuda_runtime.h>

#include <cstdint>

#include "hookrt/tensor.h"

namespace hookrt::cuda {

// y (N,M)[i, j] = b (M)[j], a copy: the GEMM then adds x w^T with beta = 1, in F32, and rounds once.
void broadcast_bias(const void* b, void* y, DType dtype, int64_t n, int64_t m, cudaStream_t stream);
// db (M)[j] = sum over i of dy (N,M)[i, j], in double in row order (as the CPU reference), rounded
// to F32 and, for BF16 and F16, from there to nearest even.
void column_sums(const void* dy, void* db, DType dtype, int64_t n, int64_t m, cudaStream_t stream);

}  // namespace hookrt::cuda
