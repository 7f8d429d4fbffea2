// Residual add and gradient accumulation (see add.cuh).
#include "activation_types.cuh"
#include "add.cuh"
#include "launch.cuh"

namespace hookrt::cuda {
namespace {

template <class T>
__global__ void add_kernel(int64_t n, const T* a, const T* b, T* out) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) store_float(out, i, load_float(a, i) + load_float(b, i));
}

template <class T>
__global__ void accumulate_kernel(int64_t n, T* dst, const T* src) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) store_float(dst, i, load_float(dst, i) + load_float(src, i));
}

}  // namespace

void add(const void* a, const void* b, void* out, DType dtype, int64_t n, cudaStream_t stream) {
  with_activation_type(dtype, "add", [&](auto element) {
    using T = decltype(element);
    launch_linear(add_kernel<T>, n, stream, static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out));
  });
}

void accumulate(void* dst, const void* src, DType dtype, int64_t n, cudaStream_t stream) {
  with_activation_type(dtype, "accumulate", [&](auto element) {
    using T = decltype(element);
    launch_linear(accumulate_kernel<T>, n, stream, static_cast<T*>(dst), static_cast<const T*>(src));
  });
}

}  // namespace hookrt::cuda
