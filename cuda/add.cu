// Residual add and gradient accumulation (see add.cuh).
#include "add.cuh"
#include "launch.cuh"

namespace hookrt::cuda {
namespace {

template <class T>
__global__ void add_kernel(int64_t n, const T* a, const T* b, T* out) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) out[i] = a[i] + b[i];
}

template <class T>
__global__ void accumulate_kernel(int64_t n, T* dst, const T* src) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) dst[i] += src[i];
}

}  // namespace

void add(const float* a, const float* b, float* out, int64_t n, cudaStream_t stream) {
  launch_linear(add_kernel<float>, n, stream, a, b, out);
}

void accumulate(float* dst, const float* src, int64_t n, cudaStream_t stream) {
  launch_linear(accumulate_kernel<float>, n, stream, dst, src);
}

}  // namespace hookrt::cuda
