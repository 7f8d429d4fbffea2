#pragma once
// The fully connected layer through cuBLAS: x (N,K), w (M,K), b (M), y (N,M) = x w^T + b. cuBLAS is
// column-major, so each row-major matrix is passed as its transpose (a row-major (R,C) array is a
// column-major (C,R) one) and the products are written for the transposes. Every tensor of a call
// has one dtype, F32, BF16 or F16: half products accumulate in F32 (CUBLAS_COMPUTE_32F, with
// reductions kept in F32: see CublasHandle) and each result is rounded to the half dtype once.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "hookrt/tensor.h"

namespace hookrt::cuda {

struct LinearDims {
  int64_t n, in, out;  // batch, input features K, output features M
};

class CublasLinear {
 public:
  // The handle's math mode (TF32 or not) was set when it was made (CublasHandle::create).
  CublasLinear(cublasHandle_t handle, cudaStream_t stream) : handle_(handle), stream_(stream) {}

  // y = b broadcast, then y += x w^T (beta = 1): the bias is added in F32 before the one rounding.
  void forward(const void* x, const void* w, const void* b, void* y, DType dtype, const LinearDims& dims);
  // dx (may be null) = dy w; dw = dy^T x; db = column sums of dy. All overwritten.
  void backward(const void* x, const void* w, const void* dy, void* dx, void* dw, void* db, DType dtype,
                const LinearDims& dims);

 private:
  // C (m,n) = A' (m,k) · B' (k,n) + beta C, column-major, A' and B' being A and B as op_a and op_b
  // say: cublasSgemm for F32, cublasGemmEx with F32 accumulation for BF16 and F16.
  void gemm(cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k, const void* a, int lda,
            const void* b, int ldb, float beta, void* c, int ldc, DType dtype);

  cublasHandle_t handle_;
  cudaStream_t stream_;
};

}  // namespace hookrt::cuda
