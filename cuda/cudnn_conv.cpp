// CudnnConvolutions (see cudnn_conv.h).
#include "cudnn_conv.h"

#include <string>

#include "resources.h"
#include "status.h"

namespace hookrt::cuda {
namespace {

std::string describe(const ConvDims& d) {
  return "input [" + std::to_string(d.n) + ", " + std::to_string(d.c) + ", " + std::to_string(d.h) + ", " +
         std::to_string(d.w) + "], filter [" + std::to_string(d.k) + ", " + std::to_string(d.c) + ", " +
         std::to_string(d.r) + ", " + std::to_string(d.s) + "], stride " + std::to_string(d.geometry.stride) +
         ", padding " + std::to_string(d.geometry.padding);
}

constexpr int kCandidates = 16;  // more than cuDNN has algorithms of any one kind

// An algorithm and the workspace it needs.
template <class Algo>
struct Chosen {
  Algo algo;
  size_t bytes;
};

// The best-ranked heuristic result that cuDNN says runs and whose workspace (asked of cuDNN for
// that algorithm: workspace_of(algo)) fits in `limit`; Error naming the shape and limit if none.
template <class Perf, class WorkspaceOf>
auto first_fitting(const Perf (&results)[kCandidates], int returned, WorkspaceOf workspace_of, size_t limit,
                   const char* direction, const ConvDims& d) {
  for (int i = 0; i < returned; ++i) {
    if (results[i].status != CUDNN_STATUS_SUCCESS) continue;
    const size_t bytes = workspace_of(results[i].algo);
    if (bytes <= limit) return Chosen<decltype(results[i].algo)>{results[i].algo, bytes};
  }
  throw Error(std::string("cuDNN offers no ") + direction + " convolution algorithm for " + describe(d) +
              " within the workspace limit of " + std::to_string(limit) + " bytes");
}

}  // namespace

struct CudnnConvolutions::Plan {
  TensorDescriptor x, y;
  FilterDescriptor w;
  ConvolutionDescriptor conv;
  cudnnConvolutionFwdAlgo_t forward{};
  cudnnConvolutionBwdDataAlgo_t backward_data{};
  cudnnConvolutionBwdFilterAlgo_t backward_filter{};
  size_t forward_bytes = 0, backward_data_bytes = 0, backward_filter_bytes = 0;
};

CudnnConvolutions::CudnnConvolutions(cudnnHandle_t handle, Workspace& workspace, const ConvolutionOptions& options)
    : handle_(handle), workspace_(workspace), allow_tf32_(options.allow_tf32),
      workspace_limit_(options.workspace_limit_bytes) {}

CudnnConvolutions::~CudnnConvolutions() = default;

const CudnnConvolutions::Plan& CudnnConvolutions::plan(const ConvDims& d) {
  auto found = plans_.find(d.key());
  if (found != plans_.end()) return *found->second;
  auto made = std::make_unique<Plan>(Plan{TensorDescriptor::nchw(d.n, d.c, d.h, d.w),
                                          TensorDescriptor::nchw(d.n, d.k, d.p(), d.q()),
                                          FilterDescriptor::kcrs(d.k, d.c, d.r, d.s),
                                          ConvolutionDescriptor::create(d.geometry, allow_tf32_)});
  choose_forward(*made, d);
  choose_backward_data(*made, d);
  choose_backward_filter(*made, d);
  return *plans_.emplace(d.key(), std::move(made)).first->second;
}

void CudnnConvolutions::choose_forward(Plan& p, const ConvDims& d) const {
  cudnnConvolutionFwdAlgoPerf_t results[kCandidates];
  int returned = 0;
  HOOKRT_CUDA_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle_, p.x.get(), p.w.get(), p.conv.get(), p.y.get(),
                                                           kCandidates, &returned, results));
  const auto workspace_of = [&](cudnnConvolutionFwdAlgo_t algo) {
    size_t bytes = 0;
    HOOKRT_CUDA_CHECK(
        cudnnGetConvolutionForwardWorkspaceSize(handle_, p.x.get(), p.w.get(), p.conv.get(), p.y.get(), algo, &bytes));
    return bytes;
  };
  const auto chosen = first_fitting(results, returned, workspace_of, workspace_limit_, "forward", d);
  p.forward = chosen.algo;
  p.forward_bytes = chosen.bytes;
}

void CudnnConvolutions::choose_backward_data(Plan& p, const ConvDims& d) const {
  cudnnConvolutionBwdDataAlgoPerf_t results[kCandidates];
  int returned = 0;
  HOOKRT_CUDA_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle_, p.w.get(), p.y.get(), p.conv.get(),
                                                                p.x.get(), kCandidates, &returned, results));
  const auto workspace_of = [&](cudnnConvolutionBwdDataAlgo_t algo) {
    size_t bytes = 0;
    HOOKRT_CUDA_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(handle_, p.w.get(), p.y.get(), p.conv.get(),
                                                                   p.x.get(), algo, &bytes));
    return bytes;
  };
  const auto chosen = first_fitting(results, returned, workspace_of, workspace_limit_, "backward-data", d);
  p.backward_data = chosen.algo;
  p.backward_data_bytes = chosen.bytes;
}

void CudnnConvolutions::choose_backward_filter(Plan& p, const ConvDims& d) const {
  cudnnConvolutionBwdFilterAlgoPerf_t results[kCandidates];
  int returned = 0;
  HOOKRT_CUDA_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle_, p.x.get(), p.y.get(), p.conv.get(),
                                                                  p.w.get(), kCandidates, &returned, results));
  const auto workspace_of = [&](cudnnConvolutionBwdFilterAlgo_t algo) {
    size_t bytes = 0;
    HOOKRT_CUDA_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(handle_, p.x.get(), p.y.get(), p.conv.get(),
                                                                     p.w.get(), algo, &bytes));
    return bytes;
  };
  const auto chosen = first_fitting(results, returned, workspace_of, workspace_limit_, "backward-filter", d);
  p.backward_filter = chosen.algo;
  p.backward_filter_bytes = chosen.bytes;
}

void CudnnConvolutions::forward(const float* x, const float* w, float* y, const ConvDims& d) {
  const Plan& p = plan(d);
  void* scratch = workspace_.reserve(p.forward_bytes);
  const float one = 1.0f, zero = 0.0f;
  HOOKRT_CUDA_CHECK(cudnnConvolutionForward(handle_, &one, p.x.get(), x, p.w.get(), w, p.conv.get(), p.forward,
                                            scratch, p.forward_bytes, &zero, p.y.get(), y));
}

void CudnnConvolutions::backward_data(const float* dy, const float* w, float* dx, const ConvDims& d) {
  const Plan& p = plan(d);
  void* scratch = workspace_.reserve(p.backward_data_bytes);
  const float one = 1.0f, zero = 0.0f;
  HOOKRT_CUDA_CHECK(cudnnConvolutionBackwardData(handle_, &one, p.w.get(), w, p.y.get(), dy, p.conv.get(),
                                                 p.backward_data, scratch, p.backward_data_bytes, &zero, p.x.get(),
                                                 dx));
}

void CudnnConvolutions::backward_filter(const float* x, const float* dy, float* dw, const ConvDims& d) {
  const Plan& p = plan(d);
  void* scratch = workspace_.reserve(p.backward_filter_bytes);
  const float one = 1.0f, zero = 0.0f;
  HOOKRT_CUDA_CHECK(cudnnConvolutionBackwardFilter(handle_, &one, p.x.get(), x, p.y.get(), dy, p.conv.get(),
                                                   p.backward_filter, scratch, p.backward_filter_bytes, &zero,
                                                   p.w.get(), dw));
}

}  // namespace hookrt::cuda
