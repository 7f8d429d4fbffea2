#pragma once
// The bias parts of the linear layer, around cuBLAS's GEMMs, queued on `stream`.
#include <cuda_runtime.h>

#include <cstdint>

namespace hookrt::cuda {

// y (N,M)[i, j] = b (M)[j]: the GEMM then adds x w^T with beta = 1.
void broadcast_bias(const float* b, float* y, int64_t n, int64_t m, cudaStream_t stream);
// db (M)[j] = sum over i of dy (N,M)[i, j], in double in row order (as the CPU reference).
void column_sums(const float* dy, float* db, int64_t n, int64_t m, cudaStream_t stream);

}  // namespace hookrt::cuda
