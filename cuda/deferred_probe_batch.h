#pragma once
// The GPU's DeferredProbeBatch: the probe runs one step queued, their arena slots on their way to
// pinned host memory (a ProbeArena::Landing), and the host tensors their captures landed in.
// finish() waits for the arena's copy and decodes each slot (probe_plan.h) into the results that
// the CPU backend would have given; it touches no backend state, so any thread may call it.
#include <memory>
#include <vector>

#include "hookrt/backend.h"
#include "probe_arena.h"
#include "probe_plan.h"

namespace hookrt::cuda {

// One queued probe run: its plan, where its slot lies in the arena's host copy, and the host
// tensors its captures land in.
struct PendingProbeRun {
  uint64_t ticket = 0;
  std::shared_ptr<const ProbePlan> plan;
  int64_t slot_offset = 0;
  std::vector<Tensor> captures;
  // false: its kernel never ran (a batched run whose launch failed, CudaBackend::launch_batched_probes),
  // so its slot holds nothing of it: it finishes with no results, and its record is not delivered.
  bool launched = true;
};

class CudaProbeBatch final : public DeferredProbeBatch {
 public:
  CudaProbeBatch(std::unique_ptr<ProbeArena::Landing> landing, std::vector<PendingProbeRun> runs)
      : landing_(std::move(landing)), runs_(std::move(runs)) {}
  std::vector<DeferredProbeResults> finish() override;

 private:
  std::unique_ptr<ProbeArena::Landing> landing_;
  std::vector<PendingProbeRun> runs_;
};

}  // namespace hookrt::cuda
