// ReLU and the elementwise sums (the residual add, gradient accumulation).
#include <cmath>

#include "cpu/ops.h"

namespace hookrt::cpu {

namespace {
constexpr int64_t kParallelElements = 1 << 16;
}

// torch.relu is clamp_min(x, 0): NaN stays NaN.
template <class T>
void relu_forward(const T* x, T* y, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelElements)
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] > T(0) || std::isnan(x[i])) ? x[i] : T(0);
}

template <class T>
void relu_backward(const T* y, const T* dy, T* dx, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelElements)
  for (int64_t i = 0; i < n; ++i) dx[i] = y[i] <= T(0) ? T(0) : dy[i];
}

template <class T>
void add(const T* a, const T* b, T* out, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelElements)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

template <class T>
void accumulate(T* dst, const T* src, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelElements)
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

#define HOOKRT_INSTANTIATE_ELEMENTWISE(T)                         \
  template void relu_forward<T>(const T*, T*, int64_t);           \
  template void relu_backward<T>(const T*, const T*, T*, int64_t); \
  template void add<T>(const T*, const T*, T*, int64_t);          \
  template void accumulate<T>(T*, const T*, int64_t);
HOOKRT_INSTANTIATE_ELEMENTWISE(float)
HOOKRT_INSTANTIATE_ELEMENTWISE(double)
#undef HOOKRT_INSTANTIATE_ELEMENTWISE

}  // namespace hookrt::cpu
