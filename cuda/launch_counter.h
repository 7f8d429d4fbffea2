#pragma once
// LaunchCounter: counts the GPU work items (kernels, memcpys, memsets) that this process queues
// between start() and stop(), with CUPTI's Activity API. `hookrt bench` reports a step's count
// beside its time, because the number of work items per step, not only the time, is what fusing
// probes and replaying CUDA graphs are meant to bring down. A kernel inside a replayed CUDA graph
// still counts as one kernel: the count is of work the device runs, not of host API calls.
// CUPTI's activity buffers belong to the whole process, so one counter counts at a time. In a
// build without CUPTI (HOOKRT_WITH_CUPTI=0), start() throws an Error that says so.
#include "cuda_entry.h"

namespace hookrt::cuda {

class LaunchCounter {
 public:
  LaunchCounter() = default;
  ~LaunchCounter();  // stops a count still running (work that threw); failures are logged, not thrown
  LaunchCounter(const LaunchCounter&) = delete;
  LaunchCounter& operator=(const LaunchCounter&) = delete;

  // Waits for the current device to finish what is already queued (it is not counted), then
  // records every kernel, memcpy and memset queued after it, from any thread. Throws Error naming
  // the CUPTI or CUDA call that failed, or saying that another counter is counting.
  void start();
  // Waits for the current device, stops recording and returns what was queued since start().
  // Throws Error naming a failed call, or when CUPTI lost records (the counts would be short).
  LaunchCounts stop();
  bool counting() const { return counting_; }

 private:
  bool counting_ = false;
};

}  // namespace hookrt::cuda
