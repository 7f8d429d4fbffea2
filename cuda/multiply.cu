// In-place scalar and elementwise products (see multiply.cuh).
#include "activation_types.cuh"
#include "launch.cuh"
#include "multiply.cuh"

namespace hookrt::cuda {
namespace {

template <class T, class F>
__global__ void multiply_by_scalar_kernel(int64_t n, T* t, const F* factor) {
  const float scale = load_float(factor, 0);
  HOOKRT_GRID_STRIDE_LOOP(i, n) store_float(t, i, load_float(t, i) * scale);
}

template <class T, class F>
__global__ void multiply_elementwise_kernel(int64_t n, T* t, const F* factor) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) store_float(t, i, load_float(t, i) * load_float(factor, i));
}

// Calls fn with values of the tensor's and the factor's device element types.
template <class Fn>
void with_element_types(DType dtype, DType factor_dtype, Fn fn) {
  with_activation_type(dtype, "multiply_", [&](auto element) {
    with_activation_type(factor_dtype, "multiply_'s factor", [&](auto factor) { fn(element, factor); });
  });
}

}  // namespace

void multiply_by_scalar(void* t, DType dtype, const void* factor, DType factor_dtype, int64_t n,
                        cudaStream_t stream) {
  with_element_types(dtype, factor_dtype, [&](auto element, auto factor_element) {
    using T = decltype(element);
    using F = decltype(factor_element);
    launch_linear(multiply_by_scalar_kernel<T, F>, n, stream, static_cast<T*>(t), static_cast<const F*>(factor));
  });
}

void multiply_elementwise(void* t, DType dtype, const void* factor, DType factor_dtype, int64_t n,
                          cudaStream_t stream) {
  with_element_types(dtype, factor_dtype, [&](auto element, auto factor_element) {
    using T = decltype(element);
    using F = decltype(factor_element);
    launch_linear(multiply_elementwise_kernel<T, F>, n, stream, static_cast<T*>(t), static_cast<const F*>(factor));
  });
}

}  // namespace hookrt::cuda
