#pragma once
// The fully connected layer through cuBLAS: x (N,K), w (M,K), b (M), y (N,M) = x w^T + b. cuBLAS is
// column-major, so each row-major matrix is passed as its transpose (a row-major (R,C) array is a
// column-major (C,R) one) and the products are written for the transposes.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace hookrt::cuda {

struct LinearDims {
  int64_t n, in, out;  // batch, input features K, output features M
};

class CublasLinear {
 public:
  // The handle's math mode (TF32 or not) was set when it was made (CublasHandle::create).
  CublasLinear(cublasHandle_t handle, cudaStream_t stream) : handle_(handle), stream_(stream) {}

  void forward(const float* x, const float* w, const float* b, float* y, const LinearDims& dims);
  // dx (may be null) = dy w; dw = dy^T x; db = column sums of dy. All overwritten.
  void backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db,
                const LinearDims& dims);

 private:
  cublasHandle_t handle_;
  cudaStream_t stream_;
};

}  // namespace hookrt::cuda
