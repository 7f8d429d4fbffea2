#pragma once
// Convolution forward, backward-data and backward-filter through cuDNN's legacy API, on F32, BF16 or
// F16 tensors (x, w and y of one call share the dtype; half products accumulate in F32, with tensor-core
// math, and each result is rounded once). x, w and y of one call also share a memory format: NCHW
// with a KCRS filter, or NHWC with a KRSC filter (channels-last: the layout cuDNN's tensor-core
// kernels read natively). For each shape (input, filter, stride, padding), dtype and format the
// descriptors are made once, and each direction's
// algorithm is chosen on its first call and cached with its workspace size, in one of two ways:
// - Measured (PyTorch's cudnn.benchmark): cuDNN times every algorithm that fits the workspace
//   limit on the call's own buffers (cudnnFind*AlgorithmEx) and the fastest is kept. That first
//   call waits for the device, as the timing needs; later calls of the shape do not.
// - Heuristic: cuDNN's ranking without trial runs (cudnnGet*Algorithm_v7), the best-ranked one
//   that supports the shape and fits the limit. Measuring falls back to it, saying so once, if
//   it finds nothing usable.
// Either way the algorithm runs with the math cuDNN timed or ranked it with, within the dtype's (for
// F32, TF32 allowed or not), and with `deterministic` only algorithms that give the same bits on
// every run are taken. The shared workspace grows to the largest need, so a shape seen before
// allocates nothing. A batch whose input or output holds more elements than one call takes runs as
// calls over slices of the batch (ConvolutionOptions::max_call_elements).
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "hookrt/backend.h"
#include "memory_pool.h"
#include "workspace.h"

namespace hookrt::cuda {

// x (N,C,H,W), w (K,C,R,S), y (N,K,P,Q) as logical dimensions, all of `dtype` (F32, BF16, F16) and
// laid out in `format` (Contiguous: NCHW, KCRS; ChannelsLast: NHWC, KRSC).
struct ConvDims {
  int n, c, h, w;  // input
  int k, r, s;     // filters
  Conv2dGeometry geometry;
  DType dtype = DType::F32;
  MemoryFormat format = MemoryFormat::Contiguous;
  int p() const { return (h + 2 * geometry.padding - r) / geometry.stride + 1; }
  int q() const { return (w + 2 * geometry.padding - s) / geometry.stride + 1; }
  auto key() const {
    return std::make_tuple(n, c, h, w, k, r, s, geometry.stride, geometry.padding, static_cast<int>(dtype),
                           static_cast<int>(format));
  }
};

enum class ConvAlgorithmChoice { Measured, Heuristic };

struct ConvolutionOptions {
  // F32 convolutions: CUDNN_DEFAULT_MATH (TF32 tensor cores on Ampere and later) or CUDNN_FMA_MATH
  // (full F32). BF16 and F16 ones always run with CUDNN_TENSOR_OP_MATH.
  bool allow_tf32 = true;
  // The most workspace one algorithm may use (PyTorch's cuDNN path caps it by free memory).
  size_t workspace_limit_bytes = size_t{1} << 30;
  ConvAlgorithmChoice algorithms = ConvAlgorithmChoice::Measured;
  // Only algorithms cuDNN reports as CUDNN_DETERMINISTIC (torch.backends.cudnn.deterministic):
  // backward-data and backward-filter have some that add with atomics, in arrival order.
  bool deterministic = false;
  // The most elements x or y of one cuDNN call may hold: cuDNN's legacy API counts them in 32-bit
  // ints. A larger batch runs as calls over slices of it (GpuOptions::max_cudnn_call_elements).
  int64_t max_call_elements = INT32_MAX;
};

class CudnnConvolutions {
 public:
  // `pool` holds the F32 sums of a BF16 or F16 backward-filter over slices of a batch.
  CudnnConvolutions(cudnnHandle_t handle, cudaStream_t stream, DeviceMemoryPool& pool, Workspace& workspace,
                    const ConvolutionOptions& options);
  ~CudnnConvolutions();
  CudnnConvolutions(const CudnnConvolutions&) = delete;
  CudnnConvolutions& operator=(const CudnnConvolutions&) = delete;

  // Device buffers of dims.dtype.
  void forward(const void* x, const void* w, void* y, const ConvDims& dims);          // y = x ⋆ w
  void backward_data(const void* dy, const void* w, void* dx, const ConvDims& dims);  // dx overwritten
  void backward_filter(const void* x, const void* dy, void* dw, const ConvDims& dims);  // dw overwritten

 private:
  struct Plan;
  Plan& plan(const ConvDims& dims);
  // One cuDNN call each, on a batch within max_call_elements.
  void forward_call(const void* x, const void* w, void* y, const ConvDims& dims);
  void backward_data_call(const void* dy, const void* w, void* dx, const ConvDims& dims);
  void backward_filter_call(const void* x, const void* dy, void* dw, const ConvDims& dims, float beta);
  // The shape's plan with its backward-filter algorithm chosen (measuring may overwrite dw).
  Plan& backward_filter_algorithm(const void* x, const void* dy, void* dw, const ConvDims& dims);
  // What reports that measuring gave nothing usable for a call of `direction` on `dims`.
  std::function<void(const std::string&)> note_for(const char* direction, const ConvDims& dims);

  cudnnHandle_t handle_;
  cudaStream_t stream_;
  Workspace& workspace_;
  ConvolutionOptions options_;
  Workspace slice_sums_;
  bool noted_fallback_ = false;
  std::map<decltype(ConvDims{}.key()), std::unique_ptr<Plan>> plans_;
};

}  // namespace hookrt::cuda
