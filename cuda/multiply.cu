// In-place scalar and elementwise products (see multiply.cuh).
#include "launch.cuh"
#include "multiply.cuh"

namespace hookrt::cuda {
namespace {

template <class T>
__global__ void multiply_by_scalar_kernel(int64_t n, T* t, const T* factor) {
  const T scale = *factor;
  HOOKRT_GRID_STRIDE_LOOP(i, n) t[i] *= scale;
}

template <class T>
__global__ void multiply_elementwise_kernel(int64_t n, T* t, const T* factor) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) t[i] *= factor[i];
}

}  // namespace

void multiply_by_scalar(float* t, const float* factor, int64_t n, cudaStream_t stream) {
  launch_linear(multiply_by_scalar_kernel<float>, n, stream, t, factor);
}

void multiply_elementwise(float* t, const float* factor, int64_t n, cudaStream_t stream) {
  launch_linear(multiply_elementwise_kernel<float>, n, stream, t, factor);
}

}  // namespace hookrt::cuda
