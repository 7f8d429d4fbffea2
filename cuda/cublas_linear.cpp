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

void CublasLinear::gemm(cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k, const void* a, int lda,
                        const void* b, int ldb, float beta, void* c, int ldc, DType dtype) {
  const float one = 1.0f;
  if (dtype == DType::F32) {
    HOOKRT_CUDA_CHECK(cublasSgemm(handle_, op_a, op_b, m, n, k, &one, static_cast<const float*>(a), lda,
                                  static_cast<const float*>(b), ldb, &beta, static_cast<float*>(c), ldc));
    return;
  }
  if (dtype != DType::BF16 && dtype != DType::F16) throw Error("internal: linear has no GEMM for dtype " + dtype_name(dtype));
  // Half operands and result, F32 accumulation: autocast's linear.
  const cudaDataType_t type = dtype == DType::BF16 ? CUDA_R_16BF : CUDA_R_16F;
  HOOKRT_CUDA_CHECK(cublasGemmEx(handle_, op_a, op_b, m, n, k, &one, a, type, lda, b, type, ldb, &beta, c, type, ldc,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void CublasLinear::forward(const void* x, const void* w, const void* b, void* y, DType dtype, const LinearDims& d) {
  if (d.n == 0 || d.out == 0) return;
  const int n = as_int(d.n, "batch"), k = as_int(d.in, "input features"), m = as_int(d.out, "output features");
  broadcast_bias(b, y, dtype, d.n, d.out, stream_);
  if (k == 0) return;  // y = b (cuBLAS takes no empty inner dimension with these leading ones)
  // Column-major: y^T (M,N) = w^T (M,K) · x^T (K,N) + y^T, where w^T is op(T) of w's (K,M) view.
  gemm(CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, w, k, x, k, 1.0f, y, m, dtype);
}

void CublasLinear::backward(const void* x, const void* w, const void* dy, void* dx, void* dw, void* db, DType dtype,
                            const LinearDims& d) {
  const int n = as_int(d.n, "batch"), k = as_int(d.in, "input features"), m = as_int(d.out, "output features");
  if (dx != nullptr && n > 0 && k > 0 && m == 0) {  // no outputs: nothing flows back
    HOOKRT_CUDA_CHECK(cudaMemsetAsync(dx, 0, static_cast<size_t>(d.n * d.in) * dtype_size(dtype), stream_));
  } else if (dx != nullptr && n > 0 && k > 0) {
    // dx (N,K) = dy (N,M) · w (M,K); column-major: dx^T (K,N) = w^T (K,M) · dy^T (M,N).
    gemm(CUBLAS_OP_N, CUBLAS_OP_N, k, n, m, w, k, dy, m, 0.0f, dx, k, dtype);
  }
  if (m > 0 && k > 0 && n == 0) {  // an empty batch: dw is zero, as PyTorch writes it, not a GEMM over nothing
    HOOKRT_CUDA_CHECK(cudaMemsetAsync(dw, 0, static_cast<size_t>(d.out * d.in) * dtype_size(dtype), stream_));
  } else if (m > 0 && k > 0) {
    // dw (M,K) = dy^T (M,N) · x (N,K); column-major: dw^T (K,M) = x^T (K,N) · dy (N,M).
    gemm(CUBLAS_OP_N, CUBLAS_OP_T, k, m, n, x, k, dy, m, 0.0f, dw, k, dtype);
  }
  column_sums(dy, db, dtype, d.n, d.out, stream_);
}

}  // namespace hookrt::cuda
