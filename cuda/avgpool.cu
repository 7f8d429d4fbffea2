// Global average pooling (see avgpool.cuh). ResNet's planes are 7x7, so one thread per plane is
// enough and keeps the summation order of the CPU reference.
#include "activation_types.cuh"
#include "avgpool.cuh"
#include "launch.cuh"

namespace hookrt::cuda {
namespace {

template <class T>
__global__ void avgpool_forward_kernel(int64_t planes, const T* x, T* y, int64_t hw) {
  HOOKRT_GRID_STRIDE_LOOP(plane, planes) {
    const T* in = x + plane * hw;
    double sum = 0;
    for (int64_t j = 0; j < hw; ++j) sum += load_float(in, j);
    store_float(y, plane, static_cast<float>(sum / static_cast<double>(hw)));
  }
}

template <class T>
__global__ void avgpool_backward_kernel(int64_t n, const T* dy, T* dx, int64_t hw) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) {
    store_float(dx, i, static_cast<float>(static_cast<double>(load_float(dy, i / hw)) / static_cast<double>(hw)));
  }
}

}  // namespace

void adaptive_avgpool_forward(const void* x, void* y, DType dtype, int64_t planes, int64_t hw, cudaStream_t stream) {
  with_activation_type(dtype, "adaptive_avgpool_forward", [&](auto element) {
    using T = decltype(element);
    launch_linear(avgpool_forward_kernel<T>, planes, stream, static_cast<const T*>(x), static_cast<T*>(y), hw);
  });
}

void adaptive_avgpool_backward(const void* dy, void* dx, DType dtype, int64_t planes, int64_t hw,
                               cudaStream_t stream) {
  with_activation_type(dtype, "adaptive_avgpool_backward", [&](auto element) {
    using T = decltype(element);
    launch_linear(avgpool_backward_kernel<T>, planes * hw, stream, static_cast<const T*>(dy), static_cast<T*>(dx), hw);
  });
}

}  // namespace hookrt::cuda
