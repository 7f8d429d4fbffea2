// Step graphs (see step_graphs.h).
#include "step_graphs.h"

#include <variant>

namespace hookrt::detail {
namespace {

constexpr HookWhen kEvents[] = {HookWhen::ForwardPre, HookWhen::Forward, HookWhen::BackwardPre, HookWhen::Backward,
                                HookWhen::Grad};

bool same_sgd(const SgdOptions& a, const SgdOptions& b) {
  return a.lr == b.lr && a.momentum == b.momentum && a.dampening == b.dampening &&
         a.weight_decay == b.weight_decay && a.nesterov == b.nesterov;
}

// Why this probe needs the host mid-step; empty when it does not.
std::string probe_blocker(const Probe& probe) {
  if (std::holds_alternative<probes::Capture>(probe)) return "a capture probe copies its tensor to the host mid-step";
  if (probe_may_halt(probe)) return "a nonfinite=halt probe must be able to stop the step before the optimizer";
  return "";
}

std::string hook_blocker(const Hook& hook) {
  const auto* probes = std::get_if<ProbeList>(&hook.action);
  if (!probes) return "a host callback is attached (" + when_name(hook.when) + " on '" + hook.selector + "')";
  for (const Probe& probe : *probes)
    if (std::string why = probe_blocker(probe); !why.empty()) return why + " (" + hook.selector + ")";
  return "";
}

}  // namespace

bool StepSignature::operator==(const StepSignature& other) const {
  return input_shape == other.input_shape && backward == other.backward && mode == other.mode &&
         same_sgd(sgd, other.sgd) && momentum_started == other.momentum_started && hooks == other.hooks;
}

StepSignature step_signature(const Shape& input_shape, bool backward, const ExecutorOptions& options,
                             bool momentum_started, const HookRegistry& hooks, int64_t step) {
  StepSignature signature{input_shape, backward, options.mode, options.sgd, momentum_started, {}};
  for (HookWhen when : kEvents)
    for (const auto& hook : hooks.hooks(when))
      if (hook->options.fires_at(step)) signature.hooks.push_back(hook->id);
  return signature;
}

std::string graph_blocker(const HookRegistry& hooks, int64_t step, const ExecutorOptions& options, bool gated) {
  if (!options.replay_graphs) return "graph replay is turned off";
  if (gated) return "an update gate reads each step's records before the optimizer";
  if (options.input_grad) return "the input's gradient is copied to the host";
  for (HookWhen when : kEvents)
    for (const auto& hook : hooks.hooks(when))
      if (hook->options.fires_at(step))
        if (std::string why = hook_blocker(*hook); !why.empty()) return why;
  return "";
}

std::deque<QueuedRecord> records_of_replay(const RecordedStep& recorded, int64_t step) {
  std::deque<QueuedRecord> records = recorded.records;
  for (QueuedRecord& queued : records) queued.record.step = step;
  return records;
}

}  // namespace hookrt::detail
