// The fully connected layer, y = x w^T + b, through GEMM; the bias gradient sums in double.
#include <algorithm>

#include "cpu/ops.h"
#include "cpu/ops_gemm.h"

namespace hookrt::cpu {

using detail::gemm;
using detail::GemmArgs;
using detail::Transpose;

template <class T>
void linear_forward(const T* x, const T* w, const T* b, T* y, const LinearShape& s) {
  for (int64_t i = 0; i < s.n; ++i) std::copy(b, b + s.out, y + i * s.out);
  // y (N, M) = x (N, K) * w^T (K, M) + y
  gemm(GemmArgs{.trans_b = Transpose::Yes, .m = s.n, .n = s.out, .k = s.in, .lda = s.in, .ldb = s.in,
                .ldc = s.out, .beta = 1.0},
       x, w, y);
}

template <class T>
void linear_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, const LinearShape& s) {
  if (dx)  // dx (N, K) = dy (N, M) * w (M, K)
    gemm(GemmArgs{.m = s.n, .n = s.in, .k = s.out, .lda = s.out, .ldb = s.in, .ldc = s.in}, dy, w, dx);
  // dw (M, K) = dy^T (M, N) * x (N, K)
  if (s.n == 0) std::fill(dw, dw + s.out * s.in, T(0));
  gemm(GemmArgs{.trans_a = Transpose::Yes, .m = s.out, .n = s.in, .k = s.n, .lda = s.out, .ldb = s.in,
                .ldc = s.in},
       dy, x, dw);
  for (int64_t j = 0; j < s.out; ++j) {
    double sum = 0;
    for (int64_t i = 0; i < s.n; ++i) sum += dy[i * s.out + j];
    db[j] = static_cast<T>(sum);
  }
}

#define HOOKRT_INSTANTIATE_LINEAR(T)                                                      \
  template void linear_forward<T>(const T*, const T*, const T*, T*, const LinearShape&);  \
  template void linear_backward<T>(const T*, const T*, const T*, T*, T*, T*, const LinearShape&);
HOOKRT_INSTANTIATE_LINEAR(float)
HOOKRT_INSTANTIATE_LINEAR(double)
#undef HOOKRT_INSTANTIATE_LINEAR

}  // namespace hookrt::cpu
