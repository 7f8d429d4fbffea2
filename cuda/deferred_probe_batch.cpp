// CudaProbeBatch (see deferred_probe_batch.h).
#include "deferred_probe_batch.h"

#include <span>

namespace hookrt::cuda {

std::vector<DeferredProbeResults> CudaProbeBatch::finish() {
  const double* host = landing_->wait();
  std::vector<DeferredProbeResults> finished;
  finished.reserve(runs_.size());
  for (PendingProbeRun& run : runs_) {
    if (!run.launched) {
      finished.push_back(DeferredProbeResults{run.ticket, {}, false});
      continue;
    }
    const std::span<const double> slot(host + run.slot_offset, static_cast<size_t>(run.plan->slot_size));
    DecodedProbes decoded = decode_probe_slot(*run.plan, slot, run.captures);
    finished.push_back(DeferredProbeResults{run.ticket, std::move(decoded.results), decoded.halt});
  }
  runs_.clear();
  landing_.reset();  // the host buffer goes back to the arena for a later step
  return finished;
}

}  // namespace hookrt::cuda
