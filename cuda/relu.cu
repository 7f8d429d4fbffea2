// ReLU forward and backward (see relu.cuh), 16 bytes per access where the operands' alignment
// allows (vector_access.cuh).
#include "activation_types.cuh"
#include "launch.cuh"
#include "relu.cuh"
#include "relu_math.cuh"
#include "vector_access.cuh"

namespace hookrt::cuda {
namespace {

template <class T>
__global__ void relu_forward_kernel(int64_t items, VectorSplit split, const T* x, T* y) {
  const auto relu = [](float v) { return relu_value(v); };
  map_elements(items, split, relu, y, x);
}

template <class T>
__global__ void add_relu_forward_kernel(int64_t items, VectorSplit split, const T* a, const T* b,
                                        T* y) {
  const auto relu_of_sum = [](float u, float v) { return relu_value(u + v); };
  map_elements(items, split, relu_of_sum, y, a, b);
}

template <class T>
__global__ void relu_backward_kernel(int64_t items, VectorSplit split, const T* y, const T* dy,
                                     T* dx) {
  const auto grad = [](float v, float g) { return relu_grad(v, g); };
  map_elements(items, split, grad, dx, y, dy);
}

}  // namespace

void relu_forward(const void* x, void* y, DType dtype, int64_t n, cudaStream_t stream) {
  with_activation_type(dtype, "relu_forward", [&](auto element) {
    using T = decltype(element);
    const auto* in = static_cast<const T*>(x);
    auto* out = static_cast<T*>(y);
    const VectorSplit split = split_for_vectors(n, in, out);
    launch_linear(relu_forward_kernel<T>, split.items(), stream, split, in, out);
  });
}

void add_relu_forward(const void* a, const void* b, void* y, DType dtype, int64_t n,
                      cudaStream_t stream) {
  with_activation_type(dtype, "add_relu_forward", [&](auto element) {
    using T = decltype(element);
    const auto* in_a = static_cast<const T*>(a);
    const auto* in_b = static_cast<const T*>(b);
    auto* out = static_cast<T*>(y);
    const VectorSplit split = split_for_vectors(n, in_a, in_b, out);
    launch_linear(add_relu_forward_kernel<T>, split.items(), stream, split, in_a, in_b, out);
  });
}

void relu_backward(const void* y, const void* dy, void* dx, DType dtype, int64_t n,
                   cudaStream_t stream) {
  with_activation_type(dtype, "relu_backward", [&](auto element) {
    using T = decltype(element);
    const auto* in_y = static_cast<const T*>(y);
    const auto* in_dy = static_cast<const T*>(dy);
    auto* out = static_cast<T*>(dx);
    const VectorSplit split = split_for_vectors(n, in_y, in_dy, out);
    launch_linear(relu_backward_kernel<T>, split.items(), stream, split, in_y, in_dy, out);
  });
}

}  // namespace hookrt::cuda
