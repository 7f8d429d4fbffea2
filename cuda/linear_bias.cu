// Bias broadcast and bias gradient for the linear layer (see linear_bias.cuh).
#include "activation_types.cuh"
#include "launch.cuh"
#include "linear_bias.cuh"

namespace hookrt::cuda {
namespace {

template <class T>
__global__ void broadcast_bias_kernel(int64_t count, const T* b, T* y, int64_t m) {
  HOOKRT_GRID_STRIDE_LOOP(i, count) y[i] = b[i % m];
}

// One thread per column: neighbouring threads read neighbouring addresses of each row.
template <class T>
__global__ void column_sums_kernel(int64_t m, const T* dy, T* db, int64_t n) {
  HOOKRT_GRID_STRIDE_LOOP(j, m) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += load_float(dy, i * m + j);
    store_float(db, j, static_cast<float>(sum));
  }
}

}  // namespace

void broadcast_bias(const void* b, void* y, DType dtype, int64_t n, int64_t m, cudaStream_t stream) {
  with_activation_type(dtype, "linear_forward", [&](auto element) {
    using T = decltype(element);
    launch_linear(broadcast_bias_kernel<T>, n * m, stream, static_cast<const T*>(b), static_cast<T*>(y), m);
  });
}

void column_sums(const void* dy, void* db, DType dtype, int64_t n, int64_t m, cudaStream_t stream) {
  with_activation_type(dtype, "linear_backward", [&](auto element) {
    using T = decltype(element);
    launch_linear(column_sums_kernel<T>, m, stream, static_cast<const T*>(dy), static_cast<T*>(db), n);
  });
}

}  // namespace hookrt::cuda
