// Bias broadcast and bias gradient for the linear layer (see linear_bias.cuh).
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
    for (int64_t i = 0; i < n; ++i) sum += dy[i * m + j];
    db[j] = static_cast<T>(sum);
  }
}

}  // namespace

void broadcast_bias(const float* b, float* y, int64_t n, int64_t m, cudaStream_t stream) {
  launch_linear(broadcast_bias_kernel<float>, n * m, stream, b, y, m);
}

void column_sums(const float* dy, float* db, int64_t n, int64_t m, cudaStream_t stream) {
  launch_linear(column_sums_kernel<float>, m, stream, dy, db, n);
}

}  // namespace hookrt::cuda
