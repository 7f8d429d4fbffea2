#pragma once
// launch_linear: runs an elementwise kernel over n elements on a stream, keeping grid arithmetic
// out of call sites. The kernel's first parameter is the element count and it covers its share
// with a grid-stride loop, so any n fits the grid. Returns at once when n is 0 and checks the
// launch with cudaGetLastError.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "status.h"

namespace hookrt::cuda {

constexpr int kLinearBlock = 256;
// Enough blocks to fill any current GPU several times; a grid-stride loop covers the rest.
constexpr int64_t kMaxLinearBlocks = 65536;

inline unsigned linear_blocks(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>((n + kLinearBlock - 1) / kLinearBlock, kMaxLinearBlocks));
}

template <class Kernel, class... Args>
void launch_linear(Kernel kernel, int64_t n, cudaStream_t stream, Args... args) {
  if (n <= 0) return;
  kernel<<<linear_blocks(n), kLinearBlock, 0, stream>>>(n, args...);
  HOOKRT_CUDA_CHECK(cudaGetLastError());
}

// The grid-stride loop every linear kernel uses: for (i : grid_stride(n)).
#define HOOKRT_GRID_STRIDE_LOOP(i, n)                                                      \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

}  // namespace hookrt::cuda
