// The CPU probe engine: dispatches each probe of a hook, in the order written, to its function in
// probe_stats.cpp (observing) or probe_changes.cpp (changing).
#include "cpu/probes.h"

#include <algorithm>
#include <type_traits>
#include <variant>

#include "cpu/probe_values.h"
#include "hookrt/error.h"

namespace hookrt::cpu {

void check_clamp_bounds(const ProbeList& probes, DType dtype) {
  for (const Probe& probe : probes)
    if (const auto* clamp = std::get_if<probes::Clamp>(&probe)) {
      clamp_bound(clamp->lo, dtype);
      clamp_bound(clamp->hi, dtype);
    }
}

ChannelLayout channel_layout(const Shape& shape, int channel_axis, MemoryFormat format) {
  const int rank = static_cast<int>(shape.size());
  if (rank == 0) return ChannelLayout{};
  int axis = channel_axis < 0 ? channel_axis + rank : channel_axis;
  axis = std::clamp(axis, 0, rank - 1);
  ChannelLayout layout;
  if (format == MemoryFormat::ChannelsLast && rank == 4 && axis != 0) {
    if (axis != 1)
      throw Error("channel_layout: axis " + std::to_string(channel_axis) + " of a channels_last tensor " +
                  shape_string(shape) + " is not one run of rows; only axes 0 and 1 are");
    return ChannelLayout{shape[0] * shape[2] * shape[3], shape[1], 1};
  }
  for (int d = 0; d < axis; ++d) layout.outer *= shape[d];
  layout.channels = shape[axis];
  for (int d = axis + 1; d < rank; ++d) layout.inner *= shape[d];
  return layout;
}

namespace {

// One probe applied to the tensor; observing probes add to record, changing ones to effects.
struct ProbeStep {
  Tensor& tensor;
  ProbeRecord& record;
  const ProbeRunOptions& options;
  ProbeRunEffects& effects;

  void operator()(const probes::Stats&) { record.results.push_back(compute_stats(tensor)); }
  void operator()(const probes::Zeros&) {
    record.results.push_back(compute_zeros(tensor, options.channel_axis));
  }
  void operator()(const probes::NonFinite& probe) {
    const NonFiniteResult counts = count_nonfinite(tensor);
    const bool found = counts.nan + counts.posinf + counts.neginf > 0;
    // The executor stops the run only after it has delivered this record.
    if (found && probe.policy == probes::NonFinitePolicy::Halt) effects.halt = true;
    record.results.push_back(counts);
  }
  void operator()(const probes::Hist& probe) {
    record.results.push_back(compute_hist(tensor, probe));
  }
  void operator()(const probes::Channels&) {
    record.results.push_back(compute_channels(tensor, options.channel_axis));
  }
  void operator()(const probes::Clamp& probe) {
    Tensor mask;
    record.results.push_back(
        apply_clamp(tensor, probe, options.want_grad_transforms ? &mask : nullptr));
    if (options.want_grad_transforms)
      effects.grad_transforms.push_back(GradTransform{GradTransform::Kind::Mask, mask});
    effects.changed = true;
  }
  void operator()(const probes::ClipNorm& probe) {
    const ClipNormResult result = apply_clipnorm(tensor, probe);
    record.results.push_back(result);
    if (options.want_grad_transforms) {
      Tensor scale = Tensor::full({1}, result.scale, DType::F32);
      effects.grad_transforms.push_back(GradTransform{GradTransform::Kind::Scale, scale});
    }
    effects.changed = true;
  }
  void operator()(const probes::Capture&) {
    check_probe_tensor(tensor, "capture");
    record.results.push_back(CaptureResult{tensor.contiguous().clone()});  // captures are NCHW, as files and hooks
  }
};

}  // namespace

ProbeRunEffects run_probes(const ProbeList& probes, Tensor& tensor, ProbeRecord& record,
                           const ProbeRunOptions& options) {
  ProbeRunEffects effects;
  if (probes.empty()) return effects;
  // fail before any probe has run
  check_probe_tensor(tensor, probe_name(probes.front()).c_str());
  check_clamp_bounds(probes, tensor.dtype());
  ProbeStep step{tensor, record, options, effects};
  for (const Probe& probe : probes) std::visit(step, probe);
  return effects;
}

ProbeRunEffects produce_and_run_probes(Backend& backend, const ProbeList& probes, Tensor& tensor,
                                       ProbeRecord& record, const ProbeRunOptions& options) {
  if (options.produce) backend.run_producing_op(*options.produce, tensor);
  return run_probes(probes, tensor, record, options);
}

}  // namespace hookrt::cpu
