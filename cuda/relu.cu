// ReLU forward and backward (see relu.cuh).
#include "activation_types.cuh"
#include "launch.cuh"
#include "relu.cuh"
#include "relu_math.cuh"

namespace hookrt::cuda {
namespace {

template <class T>
__global__ void relu_forward_kernel(int64_t n, const T* x, T* y) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) store_float(y, i, relu_value(load_float(x, i)));
}

template <class T>
__global__ void add_relu_forward_kernel(int64_t n, const T* a, const T* b, T* y) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) store_float(y, i, relu_value(load_float(a, i) + load_float(b, i)));
}

template <class T>
__global__ void relu_backward_kernel(int64_t n, const T* y, const T* dy, T* dx) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) store_float(dx, i, relu_grad(load_float(y, i), load_float(dy, i)));
}

}  // namespace

void relu_forward(const void* x, void* y, DType dtype, int64_t n, cudaStream_t stream) {
  with_activation_type(dtype, "relu_forward", [&](auto element) {
    using T = decltype(element);
    launch_linear(relu_forward_kernel<T>, n, stream, static_cast<const T*>(x), static_cast<T*>(y));
  });
}

void add_relu_forward(const void* a, const void* b, void* y, DType dtype, int64_t n, cudaStream_t stream) {
  with_activation_type(dtype, "add_relu_forward", [&](auto element) {
    using T = decltype(element);
    launch_linear(add_relu_forward_kernel<T>, n, stream, static_cast<const T*>(a), static_cast<const T*>(b),
                  static_cast<T*>(y));
  });
}

void relu_backward(const void* y, const void* dy, void* dx, DType dtype, int64_t n, cudaStream_t stream) {
  with_activation_type(dtype, "relu_backward", [&](auto element) {
    using T = decltype(element);
    launch_linear(relu_backward_kernel<T>, n, stream, static_cast<const T*>(y), static_cast<const T*>(dy),
                  static_cast<T*>(dx));
  });
}

}  // namespace hookrt::cuda
