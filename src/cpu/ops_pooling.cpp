// Max pooling with indices and global (adaptive 1x1) average pooling, one plane at a time.
#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/ops.h"

namespace hookrt::cpu {
namespace {

constexpr int64_t kParallelElements = 1 << 15;

// The window of output (p, q) clipped to the plane: rows [h0, h1), columns [w0, w1).
struct Window {
  int64_t h0, h1, w0, w1;
};

Window pooling_window(const PoolShape& s, int64_t p, int64_t q) {
  const int64_t h_start = p * s.stride - s.padding, w_start = q * s.stride - s.padding;
  return Window{std::max<int64_t>(h_start, 0), std::min(h_start + s.kernel, s.h),
                std::max<int64_t>(w_start, 0), std::min(w_start + s.kernel, s.w)};
}

}  // namespace

// Mirrors PyTorch's cpu_max_pool (MaxPoolKernel.cpp): start at -inf with the window's first valid
// element as the index, and take a value when it is greater or NaN.
template <class T>
void maxpool2d_forward(const T* x, T* y, int64_t* indices, const PoolShape& s) {
  const int64_t planes = s.n * s.c, P = s.p(), Q = s.q();
#pragma omp parallel for schedule(static) if (planes * s.h * s.w > kParallelElements)
  for (int64_t plane = 0; plane < planes; ++plane) {
    const T* in = x + plane * s.h * s.w;
    T* out = y + plane * P * Q;
    int64_t* out_index = indices + plane * P * Q;
    for (int64_t p = 0; p < P; ++p) {
      for (int64_t q = 0; q < Q; ++q) {
        const Window win = pooling_window(s, p, q);
        int64_t best_index = win.h0 * s.w + win.w0;
        T best = -std::numeric_limits<T>::infinity();
        for (int64_t h = win.h0; h < win.h1; ++h) {
          for (int64_t w = win.w0; w < win.w1; ++w) {
            const T value = in[h * s.w + w];
            if (value > best || std::isnan(value)) {
              best = value;
              best_index = h * s.w + w;
            }
          }
        }
        out[p * Q + q] = best;
        out_index[p * Q + q] = best_index;
      }
    }
  }
}

template <class T>
void maxpool2d_backward(const T* dy, const int64_t* indices, T* dx, const PoolShape& s) {
  const int64_t planes = s.n * s.c, PQ = s.p() * s.q(), HW = s.h * s.w;
#pragma omp parallel for schedule(static) if (planes * HW > kParallelElements)
  for (int64_t plane = 0; plane < planes; ++plane) {
    T* out = dx + plane * HW;
    std::fill(out, out + HW, T(0));
    const T* grad = dy + plane * PQ;
    const int64_t* index = indices + plane * PQ;
    for (int64_t j = 0; j < PQ; ++j) out[index[j]] += grad[j];
  }
}

template <class T>
void adaptive_avgpool_forward(const T* x, T* y, int64_t planes, int64_t hw) {
#pragma omp parallel for schedule(static) if (planes * hw > kParallelElements)
  for (int64_t plane = 0; plane < planes; ++plane) {
    const T* in = x + plane * hw;
    double sum = 0;
    for (int64_t j = 0; j < hw; ++j) sum += in[j];
    y[plane] = static_cast<T>(sum / static_cast<double>(hw));
  }
}

template <class T>
void adaptive_avgpool_backward(const T* dy, T* dx, int64_t planes, int64_t hw) {
#pragma omp parallel for schedule(static) if (planes * hw > kParallelElements)
  for (int64_t plane = 0; plane < planes; ++plane) {
    const T share = static_cast<T>(static_cast<double>(dy[plane]) / static_cast<double>(hw));
    std::fill(dx + plane * hw, dx + (plane + 1) * hw, share);
  }
}

#define HOOKRT_INSTANTIATE_POOLING(T)                                                          \
  template void maxpool2d_forward<T>(const T*, T*, int64_t*, const PoolShape&);                \
  template void maxpool2d_backward<T>(const T*, const int64_t*, T*, const PoolShape&);         \
  template void adaptive_avgpool_forward<T>(const T*, T*, int64_t, int64_t);                   \
  template void adaptive_avgpool_backward<T>(const T*, T*, int64_t, int64_t);
HOOKRT_INSTANTIATE_POOLING(float)
HOOKRT_INSTANTIATE_POOLING(double)
#undef HOOKRT_INSTANTIATE_POOLING

}  // namespace hookrt::cpu
