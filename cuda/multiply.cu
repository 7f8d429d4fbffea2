// In-place scalar and elementwise products (see multiply.cuh), 16 bytes per access where the
// operands' alignment allows (vector_access.cuh).
#include "activation_types.cuh"
#include "launch.cuh"
#include "multiply.cuh"
#include "vector_access.cuh"

namespace hookrt::cuda {
namespace {

template <class T, class F>
__global__ void multiply_by_scalar_kernel(int64_t items, VectorSplit split, T* t, const F* factor) {
  const float scale = load_float(factor, 0);
  const auto scaled = [scale](float v) { return v * scale; };
  map_elements(items, split, scaled, t, t);
}

// An F32 factor of a BF16 or F16 tensor is read 32 bytes per vector (two loads of 16), the tensor 16.
template <class T, class F>
__global__ void multiply_elementwise_kernel(int64_t items, VectorSplit split, T* t,
                                            const F* factor) {
  const auto product = [](float v, float f) { return v * f; };
  map_elements(items, split, product, t, t, factor);
}

// Calls fn with values of the tensor's and the factor's device element types.
template <class Fn>
void with_element_types(DType dtype, DType factor_dtype, Fn fn) {
  with_activation_type(dtype, "multiply_", [&](auto element) {
    with_activation_type(factor_dtype, "multiply_'s factor",
                         [&](auto factor) { fn(element, factor); });
  });
}

}  // namespace

void multiply_by_scalar(void* t, DType dtype, const void* factor, DType factor_dtype, int64_t n,
                        cudaStream_t stream) {
  with_element_types(dtype, factor_dtype, [&](auto element, auto factor_element) {
    using T = decltype(element);
    using F = decltype(factor_element);
    auto* tensor = static_cast<T*>(t);
    const VectorSplit split = split_for_vectors(n, tensor);  // the one factor element is read alone
    launch_linear(multiply_by_scalar_kernel<T, F>, split.items(), stream, split, tensor,
                  static_cast<const F*>(factor));
  });
}

void multiply_elementwise(void* t, DType dtype, const void* factor, DType factor_dtype, int64_t n,
                          cudaStream_t stream) {
  with_element_types(dtype, factor_dtype, [&](auto element, auto factor_element) {
    using T = decltype(element);
    using F = decltype(factor_element);
    auto* tensor = static_cast<T*>(t);
    const auto* factors = static_cast<const F*>(factor);
    const VectorSplit split = split_for_vectors(n, tensor, factors);
    launch_linear(multiply_elementwise_kernel<T, F>, split.items(), stream, split, tensor, factors);
  });
}

}  // namespace hookrt::cuda
