// Global average pooling (see avgpool.cuh). ResNet's planes are 7x7, so one thread per plane is
// enough and keeps the summation order of the CPU reference. In NHWC order adjacent threads take
// adjacent channels, so each step of their loops reads consecutive elements (coalesced).
#include "activation_types.cuh"
#include "avgpool.cuh"
#include "launch.cuh"

namespace hookrt::cuda {
namespace {

// The kernel-side copy of GlobalPoolShape.
struct PoolPlanes {
  int64_t c, hw;
  bool channels_last;
};

template <class T>
__global__ void avgpool_forward_kernel(int64_t planes, const T* x, T* y, PoolPlanes d) {
  HOOKRT_GRID_STRIDE_LOOP(plane, planes) {
    // Element j of the plane lies at first + j·step.
    const int64_t first = d.channels_last ? plane / d.c * d.hw * d.c + plane % d.c : plane * d.hw;
    const int64_t step = d.channels_last ? d.c : 1;
    double sum = 0;
    for (int64_t j = 0; j < d.hw; ++j) sum += load_float(x, first + j * step);
    store_float(y, plane, static_cast<float>(sum / static_cast<double>(d.hw)));
  }
}

template <class T>
__global__ void avgpool_backward_kernel(int64_t n, const T* dy, T* dx, PoolPlanes d) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) {
    const int64_t plane = d.channels_last ? i / (d.hw * d.c) * d.c + i % d.c : i / d.hw;
    store_float(dx, i, static_cast<float>(static_cast<double>(load_float(dy, plane)) / static_cast<double>(d.hw)));
  }
}

PoolPlanes pool_planes(const GlobalPoolShape& s) {
  return PoolPlanes{s.c, s.hw, s.format == MemoryFormat::ChannelsLast};
}

}  // namespace

void adaptive_avgpool_forward(const void* x, void* y, DType dtype, const GlobalPoolShape& s, cudaStream_t stream) {
  with_activation_type(dtype, "adaptive_avgpool_forward", [&](auto element) {
    using T = decltype(element);
    launch_linear(avgpool_forward_kernel<T>, s.n * s.c, stream, static_cast<const T*>(x), static_cast<T*>(y),
                  pool_planes(s));
  });
}

void adaptive_avgpool_backward(const void* dy, void* dx, DType dtype, const GlobalPoolShape& s,
                               cudaStream_t stream) {
  with_activation_type(dtype, "adaptive_avgpool_backward", [&](auto element) {
    using T = decltype(element);
    launch_linear(avgpool_backward_kernel<T>, s.n * s.c * s.hw, stream, static_cast<const T*>(dy),
                  static_cast<T*>(dx), pool_planes(s));
  });
}

}  // namespace hookrt::cuda
