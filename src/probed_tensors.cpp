// ProbedTensors (see probed_tensors.h).
#include "probed_tensors.h"

#include <algorithm>

namespace hookrt::detail {

bool ProbedTensors::reusable(const ProbeList& probes) {
  return std::none_of(probes.begin(), probes.end(), [](const Probe& probe) {
    return probe_changes_tensor(probe) || probe_may_halt(probe) || std::holds_alternative<probes::Capture>(probe);
  });
}

void ProbedTensors::drop_dead_tensors() {
  std::erase_if(entries_, [](const Entry& entry) { return entry.storage.use_count() == 1; });
}

const EarlierProbeRun* ProbedTensors::find(const Tensor& tensor, const ProbeList& probes, int channel_axis) {
  drop_dead_tensors();
  if (!tensor.defined()) return nullptr;
  for (auto entry = entries_.rbegin(); entry != entries_.rend(); ++entry)
    if (entry->storage == tensor.storage() && entry->byte_offset == tensor.byte_offset() &&
        entry->shape == tensor.shape() && entry->dtype == tensor.dtype() && entry->channel_axis == channel_axis &&
        entry->probes == probes)
      return &entry->run;
  return nullptr;
}

void ProbedTensors::forget(const Tensor& written) {
  if (!written.storage()) return;
  std::erase_if(entries_, [&](const Entry& entry) { return entry.storage == written.storage(); });
}

void ProbedTensors::remember(const Tensor& tensor, const ProbeList& probes, int channel_axis, EarlierProbeRun run) {
  if (!tensor.defined() || !tensor.storage()) return;
  drop_dead_tensors();
  if (entries_.size() == kKept) entries_.pop_front();
  entries_.push_back(Entry{tensor.storage(), tensor.byte_offset(), tensor.shape(), tensor.dtype(), probes, channel_axis,
                           std::move(run)});
}

}  // namespace hookrt::detail
