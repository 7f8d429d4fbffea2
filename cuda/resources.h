#pragma once
// Move-only owners of the CUDA, cuDNN and cuBLAS objects the backend creates. Each creates its
// object in the constructor (throwing Error on failure) and destroys it in the destructor, where a
// failure is logged, never thrown. Moving leaves the source empty; get() hands out the raw handle.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <utility>

#include "hookrt/backend.h"

namespace hookrt::cuda {

// The shared move-only machinery: Traits::destroy(handle) releases a non-null handle.
template <class Handle, class Traits>
class UniqueHandle {
 public:
  UniqueHandle() = default;
  explicit UniqueHandle(Handle handle) : handle_(handle) {}
  UniqueHandle(const UniqueHandle&) = delete;
  UniqueHandle& operator=(const UniqueHandle&) = delete;
  UniqueHandle(UniqueHandle&& other) noexcept : handle_(std::exchange(other.handle_, Handle{})) {}
  UniqueHandle& operator=(UniqueHandle&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, Handle{});
    }
    return *this;
  }
  ~UniqueHandle() { reset(); }

  Handle get() const { return handle_; }
  explicit operator bool() const { return handle_ != Handle{}; }

 private:
  void reset() noexcept {
    if (handle_ != Handle{}) Traits::destroy(handle_);
    handle_ = Handle{};
  }
  Handle handle_{};
};

struct StreamTraits { static void destroy(cudaStream_t handle) noexcept; };
struct EventTraits { static void destroy(cudaEvent_t handle) noexcept; };
struct CudnnTraits { static void destroy(cudnnHandle_t handle) noexcept; };
struct CublasTraits { static void destroy(cublasHandle_t handle) noexcept; };
struct TensorDescriptorTraits { static void destroy(cudnnTensorDescriptor_t handle) noexcept; };
struct FilterDescriptorTraits { static void destroy(cudnnFilterDescriptor_t handle) noexcept; };
struct ConvolutionDescriptorTraits { static void destroy(cudnnConvolutionDescriptor_t handle) noexcept; };
struct PoolingDescriptorTraits { static void destroy(cudnnPoolingDescriptor_t handle) noexcept; };

// A non-blocking stream: it does not synchronise with the legacy default stream.
class CudaStream : public UniqueHandle<cudaStream_t, StreamTraits> {
 public:
  static CudaStream create();
  void synchronize() const;
 private:
  using UniqueHandle::UniqueHandle;
};

// An event without timing (cheapest to record and wait on).
class CudaEvent : public UniqueHandle<cudaEvent_t, EventTraits> {
 public:
  static CudaEvent create();
  void record(cudaStream_t stream) const;
  void synchronize() const;
 private:
  using UniqueHandle::UniqueHandle;
};

// A cuDNN handle whose work goes to `stream`.
class CudnnHandle : public UniqueHandle<cudnnHandle_t, CudnnTraits> {
 public:
  static CudnnHandle create(cudaStream_t stream);
 private:
  using UniqueHandle::UniqueHandle;
};

// A cuBLAS handle whose work goes to `stream`; TF32 tensor-core math when allow_tf32. Reductions
// within a GEMM (split-K) stay in the compute type, F32, even where the output is BF16 or F16, so
// that a half result is rounded once (CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION). It works
// in the caller's `workspace` (cublas_workspace_bytes of it, alive as long as the handle): without
// one, cuBLAS allocates its own, and would do so inside a step being recorded as a CUDA graph.
class CublasHandle : public UniqueHandle<cublasHandle_t, CublasTraits> {
 public:
  static CublasHandle create(cudaStream_t stream, bool allow_tf32, void* workspace, size_t workspace_bytes);
 private:
  using UniqueHandle::UniqueHandle;
};

// The workspace cuBLAS's documentation recommends for `device`: 32 MiB from Hopper on, 4 MiB before.
size_t cublas_workspace_bytes(int device);

// cuDNN's data type for a tensor dtype: F32, BF16 and F16 (hookrt's activations), F64; Error for others.
cudnnDataType_t cudnn_data_type(DType dtype);

// A packed tensor of (n, c, h, w) elements of `type`: NCHW, or in `format`'s order (NHWC for
// ChannelsLast; the dimensions are the logical NCHW ones either way).
class TensorDescriptor : public UniqueHandle<cudnnTensorDescriptor_t, TensorDescriptorTraits> {
 public:
  static TensorDescriptor nchw(int n, int c, int h, int w, cudnnDataType_t type = CUDNN_DATA_FLOAT);
  static TensorDescriptor packed(MemoryFormat format, int n, int c, int h, int w, cudnnDataType_t type);
  // cuDNN's (1, C, 1, 1) per-channel descriptor for batch norm on `x` (spatial mode).
  static TensorDescriptor batchnorm_channels(const TensorDescriptor& x);
 private:
  using UniqueHandle::UniqueHandle;
};

// A filter of (k, c, r, s) elements of `type` in `format`'s order: KCRS, or KRSC for ChannelsLast
// (cuDNN's NHWC filter layout).
class FilterDescriptor : public UniqueHandle<cudnnFilterDescriptor_t, FilterDescriptorTraits> {
 public:
  static FilterDescriptor packed(MemoryFormat format, int k, int c, int r, int s, cudnnDataType_t type);
 private:
  using UniqueHandle::UniqueHandle;
};

// A 2-D cross-correlation (PyTorch's convolution) computed in F32 whatever its operands' type, no
// dilation or groups, with the given math: CUDNN_DEFAULT_MATH (TF32 allowed for F32 operands),
// CUDNN_FMA_MATH (full F32) or CUDNN_TENSOR_OP_MATH (tensor cores, for BF16 and F16 operands).
class ConvolutionDescriptor : public UniqueHandle<cudnnConvolutionDescriptor_t, ConvolutionDescriptorTraits> {
 public:
  static ConvolutionDescriptor create(const Conv2dGeometry& geometry, cudnnMathType_t math);
 private:
  using UniqueHandle::UniqueHandle;
};

// A square 2-D pooling window; NaN propagates as in PyTorch.
class PoolingDescriptor : public UniqueHandle<cudnnPoolingDescriptor_t, PoolingDescriptorTraits> {
 public:
  static PoolingDescriptor create(cudnnPoolingMode_t mode, const Pool2dGeometry& geometry);
 private:
  using UniqueHandle::UniqueHandle;
};

}  // namespace hookrt::cuda
