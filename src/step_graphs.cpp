// Step graphs (see step_graphs.h).
#include "step_graphs.h"

#include <algorithm>
#include <variant>

namespace hookrt::detail {
namespace {

constexpr HookWhen kEvents[] = {HookWhen::ForwardPre, HookWhen::Forward, HookWhen::BackwardPre, HookWhen::Backward,
                                HookWhen::Grad};

bool same_sgd(const SgdOptions& a, const SgdOptions& b) {
  return a.lr == b.lr && a.momentum == b.momentum && a.dampening == b.dampening &&
         a.weight_decay == b.weight_decay && a.nesterov == b.nesterov;
}

std::string hook_blocker(const Hook& hook) {
  const auto* probes = std::get_if<ProbeList>(&hook.action);
  if (!probes) return "a host callback is attached (" + when_name(hook.when) + " on '" + hook.selector + "')";
  for (const Probe& probe : *probes)
    if (std::holds_alternative<probes::Capture>(probe))
      return "a capture probe copies its tensor to the host mid-step (" + hook.selector + ")";
  return "";
}

bool may_halt(const Hook& hook) {
  const auto* probes = std::get_if<ProbeList>(&hook.action);
  return probes && std::any_of(probes->begin(), probes->end(), [](const Probe& p) { return probe_may_halt(p); });
}

}  // namespace

bool StepSignature::operator==(const StepSignature& other) const {
  return input_shape == other.input_shape && backward == other.backward && mode == other.mode &&
         input_grad == other.input_grad && optimizer_recorded == other.optimizer_recorded &&
         same_sgd(sgd, other.sgd) && momentum_started == other.momentum_started && hooks == other.hooks;
}

StepSignature step_signature(const Shape& input_shape, bool backward, const ExecutorOptions& options, bool gated,
                             bool momentum_started, const HookRegistry& hooks, int64_t step) {
  StepSignature signature;
  signature.input_shape = input_shape;
  signature.backward = backward;
  signature.mode = options.mode;
  signature.input_grad = backward && options.input_grad;
  bool halts = false;
  for (HookWhen when : kEvents)
    for (const auto& hook : hooks.hooks(when))
      if (hook->options.fires_at(step)) {
        signature.hooks.push_back(hook->id);
        halts = halts || may_halt(*hook);
      }
  signature.optimizer_recorded = backward && options.mode == Mode::Train && !gated && !halts;
  if (signature.optimizer_recorded) {
    signature.sgd = options.sgd;
    signature.momentum_started = momentum_started;
  }
  return signature;
}

std::string graph_blocker(const HookRegistry& hooks, int64_t step, const ExecutorOptions& options) {
  if (!options.replay_graphs) return "graph replay is turned off";
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
