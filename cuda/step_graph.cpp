// CudaStepGraph and stream capture (see step_graph.h).
#include "step_graph.h"

#include <string>

#include "status.h"

namespace hookrt::cuda {

void GraphTraits::destroy(cudaGraph_t handle) noexcept { HOOKRT_CUDA_LOG(cudaGraphDestroy(handle)); }

// A graph still running when its executable is destroyed finishes first (the driver frees it then).
void GraphExecTraits::destroy(cudaGraphExec_t handle) noexcept { HOOKRT_CUDA_LOG(cudaGraphExecDestroy(handle)); }

void begin_capture(cudaStream_t stream) {
  HOOKRT_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
}

Graph end_capture(cudaStream_t stream) {
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
  Graph owned(graph);
  if (ended != cudaSuccess) {
    (void)cudaGetLastError();  // capture errors are not sticky; clear the last-error slot
    throw Error(std::string("cudaStreamEndCapture: the step could not be recorded as a CUDA graph: ") +
                cudaGetErrorName(ended) + " (" + cudaGetErrorString(ended) + ")");
  }
  return owned;
}

void drop_capture(cudaStream_t stream) noexcept {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &status) != cudaSuccess || status == cudaStreamCaptureStatusNone) {
    (void)cudaGetLastError();
    return;
  }
  cudaGraph_t graph = nullptr;
  (void)cudaStreamEndCapture(stream, &graph);
  Graph dropped(graph);
  (void)cudaGetLastError();
}

CudaStepGraph::CudaStepGraph(const Graph& graph, std::shared_ptr<CudaStream> stream,
                             std::function<void()> check_ready, std::function<void()> rearm)
    : stream_(std::move(stream)), check_ready_(std::move(check_ready)), rearm_(std::move(rearm)) {
  cudaGraphExec_t exec = nullptr;
  HOOKRT_CUDA_CHECK(cudaGraphInstantiate(&exec, graph.get(), 0));
  exec_ = GraphExec(exec);
}

void CudaStepGraph::replay() {
  check_ready_();
  HOOKRT_CUDA_CHECK(cudaGraphLaunch(exec_.get(), stream_->get()));
  rearm_();
}

}  // namespace hookrt::cuda
