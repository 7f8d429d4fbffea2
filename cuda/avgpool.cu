// Global average pooling (see avgpool.cuh). ResNet's planes are 7x7, so one thread per plane is
// enough and keeps the summation order of the CPU reference.
#include "avgpool.cuh"
#include "launch.cuh"

namespace hookrt::cuda {
namespace {

template <class T>
__global__ void avgpool_forward_kernel(int64_t planes, const T* x, T* y, int64_t hw) {
  HOOKRT_GRID_STRIDE_LOOP(plane, planes) {
    const T* in = x + plane * hw;
    double sum = 0;
    for (int64_t j = 0; j < hw; ++j) sum += in[j];
    y[plane] = static_cast<T>(sum / static_cast<double>(hw));
  }
}

template <class T>
__global__ void avgpool_backward_kernel(int64_t n, const T* dy, T* dx, int64_t hw) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) dx[i] = static_cast<T>(static_cast<double>(dy[i / hw]) / static_cast<double>(hw));
}

}  // namespace

void adaptive_avgpool_forward(const float* x, float* y, int64_t planes, int64_t hw, cudaStream_t stream) {
  launch_linear(avgpool_forward_kernel<float>, planes, stream, x, y, hw);
}

void adaptive_avgpool_backward(const float* dy, float* dx, int64_t planes, int64_t hw, cudaStream_t stream) {
  launch_linear(avgpool_backward_kernel<float>, planes * hw, stream, dy, dx, hw);
}

}  // namespace hookrt::cuda
