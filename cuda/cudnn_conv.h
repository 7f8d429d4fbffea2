#pragma once
// Convolution forward, backward-data and backward-filter through cuDNN's legacy API. For each
// shape (input, filter, stride, padding) the descriptors and the three algorithms are chosen once
// and cached with their workspace sizes: cuDNN's heuristics rank the algorithms
// (cudnnGet*Algorithm_v7, no trial runs) and the best-ranked one that supports the shape and
// whose workspace fits the limit is taken. The shared workspace grows to the largest need, so a
// shape seen before allocates nothing.
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "hookrt/backend.h"
#include "workspace.h"

namespace hookrt::cuda {

// x (N,C,H,W), w (K,C,R,S), y (N,K,P,Q).
struct ConvDims {
  int n, c, h, w;  // input
  int k, r, s;     // filters
  Conv2dGeometry geometry;
  int p() const { return (h + 2 * geometry.padding - r) / geometry.stride + 1; }
  int q() const { return (w + 2 * geometry.padding - s) / geometry.stride + 1; }
  auto key() const { return std::make_tuple(n, c, h, w, k, r, s, geometry.stride, geometry.padding); }
};

struct ConvolutionOptions {
  // CUDNN_DEFAULT_MATH (TF32 tensor cores on Ampere and later) or CUDNN_FMA_MATH (full F32).
  bool allow_tf32 = true;
  // The most workspace one algorithm may use (PyTorch's cuDNN path caps it by free memory).
  size_t workspace_limit_bytes = size_t{1} << 30;
};

class CudnnConvolutions {
 public:
  CudnnConvolutions(cudnnHandle_t handle, Workspace& workspace, const ConvolutionOptions& options);
  ~CudnnConvolutions();
  CudnnConvolutions(const CudnnConvolutions&) = delete;
  CudnnConvolutions& operator=(const CudnnConvolutions&) = delete;

  void forward(const float* x, const float* w, float* y, const ConvDims& dims);          // y = x ⋆ w
  void backward_data(const float* dy, const float* w, float* dx, const ConvDims& dims);  // dx overwritten
  void backward_filter(const float* x, const float* dy, float* dw, const ConvDims& dims);  // dw overwritten

 private:
  struct Plan;
  const Plan& plan(const ConvDims& dims);
  void choose_forward(Plan& plan, const ConvDims& dims) const;
  void choose_backward_data(Plan& plan, const ConvDims& dims) const;
  void choose_backward_filter(Plan& plan, const ConvDims& dims) const;

  cudnnHandle_t handle_;
  Workspace& workspace_;
  bool allow_tf32_;
  size_t workspace_limit_;
  std::map<decltype(ConvDims{}.key()), std::unique_ptr<Plan>> plans_;
};

}  // namespace hookrt::cuda
