#pragma once
// CudaStepGraph — a step recorded by stream capture into a CUDA graph, instantiated once and
// launched on the backend's stream for each replay. Stream capture records every kernel, copy and
// memset queued on the stream, and turns the stream-ordered allocations and frees of the step's
// temporaries into the graph's own memory nodes, so a replay allocates nothing either.
//
// What the host did for the recorded probe runs (their tickets, plans and slots in the arena) is
// kept with the graph: before each launch `check_ready` throws if the backend still holds unsealed
// runs (the launch would overwrite their slots); after it, `rearm` makes the recorded runs pending
// again on the backend, so that the step's seal copies and decodes the slots the replay wrote.
#include <cuda_runtime.h>

#include <functional>
#include <memory>

#include "hookrt/backend.h"
#include "resources.h"

namespace hookrt::cuda {

struct GraphTraits { static void destroy(cudaGraph_t handle) noexcept; };
struct GraphExecTraits { static void destroy(cudaGraphExec_t handle) noexcept; };
using Graph = UniqueHandle<cudaGraph_t, GraphTraits>;
using GraphExec = UniqueHandle<cudaGraphExec_t, GraphExecTraits>;

// Starts capturing the work queued on `stream` by this thread. Thread-local mode: the delivery
// thread may go on waiting for earlier steps' results meanwhile.
void begin_capture(cudaStream_t stream);
// Ends the capture begun on `stream` and returns its graph; throws Error naming what invalidated it.
Graph end_capture(cudaStream_t stream);
// Ends a capture after a failure, dropping what it recorded; never throws.
void drop_capture(cudaStream_t stream) noexcept;

class CudaStepGraph final : public StepGraph {
 public:
  CudaStepGraph(const Graph& graph, std::shared_ptr<CudaStream> stream, std::function<void()> check_ready,
                std::function<void()> rearm);
  void replay() override;

 private:
  GraphExec exec_;
  std::shared_ptr<CudaStream> stream_;  // kept: the graph may outlive nothing it launches on
  std::function<void()> check_ready_;
  std::function<void()> rearm_;
};

}  // namespace hookrt::cuda
