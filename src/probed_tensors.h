#pragma once
// ProbedTensors — the recent probe runs of a step whose results still describe their tensors.
// A module's output is often its last child's (a block's is its last ReLU's, a Sequential's its
// last block's, the model's its fc's), and in backward a module's grad_output is often the
// grad_input of the module after it: the same tensor, fired on again with the same probes. Such
// a firing takes the earlier run's results instead of reading the tensor again.
//
// That is sound because a step writes each tensor once, when it makes it, except in three places,
// which forget what they may have changed: a gradient accumulated in place (Tape) and a changing
// probe forget their tensor's storage, a host callback (it may write any tensor it is given)
// everything. Entries keep their storage alive, so a remembered address cannot come back as a new
// tensor; but a tensor that only this memory still holds can never fire again, so such entries go
// at the next firing (a step's gradients are freed as backward goes on, not kept for this).
// Repeats fire close together, but a block's gradients fire between a block's grad_output and
// its Sequential's: a few dozen entries cover a ResNet's.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "hookrt/probes.h"
#include "hookrt/tensor.h"

namespace hookrt::detail {

// What an earlier run left: its results, or the ticket of a deferring backend's run, whose
// results are attached to its record when the step's records are collected.
struct EarlierProbeRun {
  std::vector<ProbeResult> results;
  std::optional<uint64_t> ticket;
};

class ProbedTensors {
 public:
  // Whether a run of `probes` may stand in for a later one: it neither changes the tensor, nor
  // captures it (each capture is a copy of its own), nor may stop the step (nonfinite=halt).
  static bool reusable(const ProbeList& probes);

  // The remembered run of the same probes on the same tensor (storage, offset, shape, dtype)
  // with the same channel axis, if any.
  const EarlierProbeRun* find(const Tensor& tensor, const ProbeList& probes, int channel_axis);
  void remember(const Tensor& tensor, const ProbeList& probes, int channel_axis, EarlierProbeRun run);
  void forget() { entries_.clear(); }
  // Forgets every run on `written`'s storage (any view of it), which is about to change.
  void forget(const Tensor& written);

 private:
  void drop_dead_tensors();

  static constexpr size_t kKept = 32;
  struct Entry {
    std::shared_ptr<Storage> storage;
    size_t byte_offset = 0;
    Shape shape;
    DType dtype{};
    ProbeList probes;
    int channel_axis = 0;
    EarlierProbeRun run;
  };
  std::deque<Entry> entries_;  // newest last
};

}  // namespace hookrt::detail
