// Creation and destruction of the RAII owners in resources.h.
#include "resources.h"

#include "host_waits.h"
#include "status.h"

namespace hookrt::cuda {

void StreamTraits::destroy(cudaStream_t handle) noexcept { HOOKRT_CUDA_LOG(cudaStreamDestroy(handle)); }
void EventTraits::destroy(cudaEvent_t handle) noexcept { HOOKRT_CUDA_LOG(cudaEventDestroy(handle)); }
void CudnnTraits::destroy(cudnnHandle_t handle) noexcept { HOOKRT_CUDA_LOG(cudnnDestroy(handle)); }
void CublasTraits::destroy(cublasHandle_t handle) noexcept { HOOKRT_CUDA_LOG(cublasDestroy(handle)); }
void TensorDescriptorTraits::destroy(cudnnTensorDescriptor_t handle) noexcept {
  HOOKRT_CUDA_LOG(cudnnDestroyTensorDescriptor(handle));
}
void FilterDescriptorTraits::destroy(cudnnFilterDescriptor_t handle) noexcept {
  HOOKRT_CUDA_LOG(cudnnDestroyFilterDescriptor(handle));
}
void ConvolutionDescriptorTraits::destroy(cudnnConvolutionDescriptor_t handle) noexcept {
  HOOKRT_CUDA_LOG(cudnnDestroyConvolutionDescriptor(handle));
}
void PoolingDescriptorTraits::destroy(cudnnPoolingDescriptor_t handle) noexcept {
  HOOKRT_CUDA_LOG(cudnnDestroyPoolingDescriptor(handle));
}

CudaStream CudaStream::create() {
  cudaStream_t stream = nullptr;
  HOOKRT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  return CudaStream(stream);
}

void CudaStream::synchronize() const {
  count_host_wait();
  HOOKRT_CUDA_CHECK(cudaStreamSynchronize(get()));
}

CudaEvent CudaEvent::create() {
  cudaEvent_t event = nullptr;
  HOOKRT_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  return CudaEvent(event);
}

void CudaEvent::record(cudaStream_t stream) const { HOOKRT_CUDA_CHECK(cudaEventRecord(get(), stream)); }
void CudaEvent::synchronize() const {
  count_host_wait();
  HOOKRT_CUDA_CHECK(cudaEventSynchronize(get()));
}

CudnnHandle CudnnHandle::create(cudaStream_t stream) {
  cudnnHandle_t raw = nullptr;
  HOOKRT_CUDA_CHECK(cudnnCreate(&raw));
  CudnnHandle handle(raw);  // owns it before the next call can throw
  HOOKRT_CUDA_CHECK(cudnnSetStream(raw, stream));
  return handle;
}

CublasHandle CublasHandle::create(cudaStream_t stream, bool allow_tf32, void* workspace, size_t workspace_bytes) {
  cublasHandle_t raw = nullptr;
  HOOKRT_CUDA_CHECK(cublasCreate(&raw));
  CublasHandle handle(raw);
  HOOKRT_CUDA_CHECK(cublasSetStream(raw, stream));
  // After cublasSetStream, which puts the handle back on cuBLAS's own workspace pool.
  HOOKRT_CUDA_CHECK(cublasSetWorkspace(raw, workspace, workspace_bytes));
  const int math = (allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH) |
                   CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
  HOOKRT_CUDA_CHECK(cublasSetMathMode(raw, static_cast<cublasMath_t>(math)));
  return handle;
}

size_t cublas_workspace_bytes(int device) {
  int major = 0;
  HOOKRT_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  return (major >= 9 ? size_t{32} : size_t{4}) << 20;
}

cudnnDataType_t cudnn_data_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return CUDNN_DATA_FLOAT;
    case DType::BF16: return CUDNN_DATA_BFLOAT16;
    case DType::F16: return CUDNN_DATA_HALF;
    case DType::F64: return CUDNN_DATA_DOUBLE;
    default: break;
  }
  throw Error("internal: cuDNN has no data type for dtype " + dtype_name(dtype));
}

namespace {

// cuDNN's name for a memory format: its filters take the same one (NHWC: KRSC).
cudnnTensorFormat_t cudnn_format(MemoryFormat format) {
  return format == MemoryFormat::ChannelsLast ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
}

}  // namespace

TensorDescriptor TensorDescriptor::nchw(int n, int c, int h, int w, cudnnDataType_t type) {
  return packed(MemoryFormat::Contiguous, n, c, h, w, type);
}

TensorDescriptor TensorDescriptor::packed(MemoryFormat format, int n, int c, int h, int w, cudnnDataType_t type) {
  cudnnTensorDescriptor_t raw = nullptr;
  HOOKRT_CUDA_CHECK(cudnnCreateTensorDescriptor(&raw));
  TensorDescriptor descriptor(raw);
  HOOKRT_CUDA_CHECK(cudnnSetTensor4dDescriptor(raw, cudnn_format(format), type, n, c, h, w));
  return descriptor;
}

TensorDescriptor TensorDescriptor::batchnorm_channels(const TensorDescriptor& x) {
  cudnnTensorDescriptor_t raw = nullptr;
  HOOKRT_CUDA_CHECK(cudnnCreateTensorDescriptor(&raw));
  TensorDescriptor descriptor(raw);
  HOOKRT_CUDA_CHECK(cudnnDeriveBNTensorDescriptor(raw, x.get(), CUDNN_BATCHNORM_SPATIAL));
  return descriptor;
}

// The dimensions stay (k, c, r, s) in either format: cuDNN reads the order from the format.
FilterDescriptor FilterDescriptor::packed(MemoryFormat format, int k, int c, int r, int s, cudnnDataType_t type) {
  cudnnFilterDescriptor_t raw = nullptr;
  HOOKRT_CUDA_CHECK(cudnnCreateFilterDescriptor(&raw));
  FilterDescriptor descriptor(raw);
  HOOKRT_CUDA_CHECK(cudnnSetFilter4dDescriptor(raw, type, cudnn_format(format), k, c, r, s));
  return descriptor;
}

ConvolutionDescriptor ConvolutionDescriptor::create(const Conv2dGeometry& g, cudnnMathType_t math) {
  cudnnConvolutionDescriptor_t raw = nullptr;
  HOOKRT_CUDA_CHECK(cudnnCreateConvolutionDescriptor(&raw));
  ConvolutionDescriptor descriptor(raw);
  // The compute type is F32 for BF16 and F16 operands too (cuDNN's "pseudo" BF16 and half
  // configurations: half in and out, products accumulated in F32).
  HOOKRT_CUDA_CHECK(cudnnSetConvolution2dDescriptor(raw, g.padding, g.padding, g.stride, g.stride, 1, 1,
                                                    CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  HOOKRT_CUDA_CHECK(cudnnSetConvolutionMathType(raw, math));
  return descriptor;
}

PoolingDescriptor PoolingDescriptor::create(cudnnPoolingMode_t mode, const Pool2dGeometry& g) {
  cudnnPoolingDescriptor_t raw = nullptr;
  HOOKRT_CUDA_CHECK(cudnnCreatePoolingDescriptor(&raw));
  PoolingDescriptor descriptor(raw);
  HOOKRT_CUDA_CHECK(cudnnSetPooling2dDescriptor(raw, mode, CUDNN_PROPAGATE_NAN, g.kernel, g.kernel, g.padding,
                                                g.padding, g.stride, g.stride));
  return descriptor;
}

}  // namespace hookrt::cuda
