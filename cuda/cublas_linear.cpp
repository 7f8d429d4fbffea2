// CublasLinear (see cublas_linear.h).
#include "cublas_linear.h"

#include <limits>
#include <string>

#include "hookrt/error.h"
#include "linear_bias.cuh"
#include "status.h"

namespace hookrt::cuda {
namespace {

int as_int(int64_t value, const char* what) {
  if (value > std::numeric_limits<int>::max())
    throw Error(std::string("linear: ") + what + " " + std::to_string(value) + " exceeds cuBLAS's int dimensions");
  return static_cast<int>(value);
}

}  // namespace

void CublasLinear::forward(const float* x, const float* w, const float* b, float* y, const LinearDims& d) {
  if (d.n == 0 || d.out == 0) return;
  const int n = as_int(d.n, "batch"), k = as_int(d.in, "input features"), m = as_int(d.out, "output features");
  broadcast_bias(b, y, d.n, d.out, stream_);
  // Column-major: y^T (M,N) = w^T (M,K) · x^T (K,N) + y^T, where w^T is op(T) of w's (K,M) view.
  const float one = 1.0f;
  HOOKRT_CUDA_CHECK(cublasSgemm(handle_, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, w, k, x, k, &one, y, m));
}

void CublasLinear::backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db,
                            const LinearDims& d) {
  const int n = as_int(d.n, "batch"), k = as_int(d.in, "input features"), m = as_int(d.out, "output features");
  const float one = 1.0f, zero = 0.0f;
  if (dx != nullptr && n > 0 && k > 0) {
    // dx (N,K) = dy (N,M) · w (M,K); column-major: dx^T (K,N) = w^T (K,M) · dy^T (M,N).
    HOOKRT_CUDA_CHECK(cublasSgemm(handle_, CUBLAS_OP_N, CUBLAS_OP_N, k, n, m, &one, w, k, dy, m, &zero, dx, k));
  }
  if (m > 0 && k > 0) {
    // dw (M,K) = dy^T (M,N) · x (N,K); column-major: dw^T (K,M) = x^T (K,N) · dy (N,M).
    HOOKRT_CUDA_CHECK(cublasSgemm(handle_, CUBLAS_OP_N, CUBLAS_OP_T, k, m, n, &one, x, k, dy, m, &zero, dw, k));
  }
  column_sums(dy, db, d.n, d.out, stream_);
}

}  // namespace hookrt::cuda
