// ReLU forward and backward (see relu.cuh).
#include "launch.cuh"
#include "relu.cuh"
#include "relu_math.cuh"

namespace hookrt::cuda {
namespace {

template <class T>
__global__ void relu_forward_kernel(int64_t n, const T* x, T* y) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) y[i] = relu_value(x[i]);
}

template <class T>
__global__ void add_relu_forward_kernel(int64_t n, const T* a, const T* b, T* y) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) y[i] = relu_value(a[i] + b[i]);
}

template <class T>
__global__ void relu_backward_kernel(int64_t n, const T* y, const T* dy, T* dx) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) dx[i] = relu_grad(y[i], dy[i]);
}

}  // namespace

void relu_forward(const float* x, float* y, int64_t n, cudaStream_t stream) {
  launch_linear(relu_forward_kernel<float>, n, stream, x, y);
}

void add_relu_forward(const float* a, const float* b, float* y, int64_t n, cudaStream_t stream) {
  launch_linear(add_relu_forward_kernel<float>, n, stream, a, b, y);
}

void relu_backward(const float* y, const float* dy, float* dx, int64_t n, cudaStream_t stream) {
  launch_linear(relu_backward_kernel<float>, n, stream, y, dy, dx);
}

}  // namespace hookrt::cuda
