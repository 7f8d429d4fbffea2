// Residual add and gradient accumulation (see add.cuh), 16 bytes per access where the operands'
// alignment allows (vector_access.cuh).
#include "activation_types.cuh"
#include "add.cuh"
#include "launch.cuh"
#include "vector_access.cuh"

namespace hookrt::cuda {
namespace {

template <class T>
__global__ void add_kernel(int64_t items, VectorSplit split, const T* a, const T* b, T* out) {
  const auto sum = [](float u, float v) { return u + v; };
  map_elements(items, split, sum, out, a, b);
}

template <class T>
__global__ void accumulate_kernel(int64_t items, VectorSplit split, T* dst, const T* src) {
  const auto sum = [](float d, float s) { return d + s; };
  map_elements(items, split, sum, dst, dst, src);
}

}  // namespace

void add(const void* a, const void* b, void* out, DType dtype, int64_t n, cudaStream_t stream) {
  with_activation_type(dtype, "add", [&](auto element) {
    using T = decltype(element);
    const auto* in_a = static_cast<const T*>(a);
    const auto* in_b = static_cast<const T*>(b);
    auto* sum = static_cast<T*>(out);
    const VectorSplit split = split_for_vectors(n, in_a, in_b, sum);
    launch_linear(add_kernel<T>, split.items(), stream, split, in_a, in_b, sum);
  });
}

void accumulate(void* dst, const void* src, DType dtype, int64_t n, cudaStream_t stream) {
  with_activation_type(dtype, "accumulate", [&](auto element) {
    using T = decltype(element);
    auto* sum = static_cast<T*>(dst);
    const auto* in = static_cast<const T*>(src);
    const VectorSplit split = split_for_vectors(n, sum, in);
    launch_linear(accumulate_kernel<T>, split.items(), stream, split, sum, in);
  });
}

}  // namespace hookrt::cuda
