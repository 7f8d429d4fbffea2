#include "train/training_history.h"

#include <cmath>
#include <limits>

namespace hookrt::detail {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string layer_name(const ProbeRecord& r) { return r.call > 0 ? r.module + "#" + std::to_string(r.call) : r.module; }

// "layer1.0.relu#1" -> "layer1.0.relu".
std::string module_of(const std::string& layer) { return layer.substr(0, layer.find('#')); }

template <class T>
const T* result_of(const ProbeRecord& r) {
  for (const ProbeResult& result : r.results)
    if (const T* found = std::get_if<T>(&result)) return found;
  return nullptr;
}

}  // namespace

bool TrainingHistory::is_leaf(const std::string& module) const {
  return model_.has_module(module) && model_.module(module).children.empty();
}

TrainingHistory::Layer& TrainingHistory::layer(const std::string& name) {
  auto [it, added] = layers_.try_emplace(name);
  if (added) {
    order_.push_back(name);
    it->second.kind = kind_name(model_.module(module_of(name)).kind);
    it->second.grad_norm.assign(steps_.size(), kNaN);  // not observed before it appeared
  }
  return it->second;
}

void TrainingHistory::observe(const ProbeRecord& r) {
  if (r.when != HookWhen::Forward || r.tensor != "output" || !is_leaf(r.module)) return;
  Activation& a = activations_[layer_name(r)];
  if (const auto* stats = result_of<StatsResult>(r)) {
    a.mean = stats->mean.value_or(kNaN);
    a.std = stats->std.value_or(kNaN);
    a.seen = true;
  }
  if (const auto* zeros = result_of<ZerosResult>(r)) {
    a.zero_fraction = zeros->zero_fraction;
    a.dead_channels = zeros->dead_channels;
    a.channels = zeros->channels;
  }
}

void TrainingHistory::end_step(int64_t step, double loss, double lr, const ExplosionLocalizer& localizer) {
  // The step's column is the localizer's norm of each leaf's grad_output (+inf when it held NaN or
  // Inf); its series come in backward order of first appearance. Containers repeat their
  // children's tensors, so they get no row.
  std::map<std::string, double> norms;
  for (const LayerGradientSummary& s : localizer.summaries())
    if (s.tensor == "grad_output" && is_leaf(module_of(s.layer))) {
      layer(s.layer);  // a new row is padded with "not observed" for the steps before it
      norms[s.layer] = s.step_norm;
    }
  steps_.push_back(step);
  loss_.push_back(loss);
  lr_.push_back(lr);
  for (auto& [name, row] : layers_) row.grad_norm.push_back(norms.contains(name) ? norms.at(name) : kNaN);
}

void TrainingHistory::add_flags(const StepVerdict& verdict) {
  for (const LayerFlag& flag : verdict.flags)
    markers_.push_back({flag.step, flag.layer, flag_reason_name(flag.reason),
                        flag.tensor + " norm " + std::to_string(flag.norm) +
                            (flag.median ? " vs running median " + std::to_string(*flag.median) : std::string())});
}

void TrainingHistory::add_event(int64_t step, const std::string& kind, const std::string& text) {
  events_.push_back({step, kind, text});
}

report::ReportData TrainingHistory::report(const ExplosionLocalizer& localizer) const {
  report::ReportData data;
  data.steps = steps_;
  data.loss = loss_;
  data.lr = lr_;
  data.markers = markers_;
  data.events = events_;
  std::map<std::string, LayerGradientSummary> summaries;
  for (const LayerGradientSummary& s : localizer.summaries())
    if (s.tensor == "grad_output") summaries[s.layer] = s;
  for (const std::string& name : order_) {
    const Layer& layer = layers_.at(name);
    report::LayerRow row;
    row.layer = name;
    row.kind = layer.kind;
    row.grad_norm = layer.grad_norm;
    if (auto found = activations_.find(name); found != activations_.end()) {
      const Activation& a = found->second;
      if (a.seen) {
        row.act_mean = a.mean;
        row.act_std = a.std;
      }
      row.zero_fraction = a.channels >= 0 ? a.zero_fraction : kNaN;
      row.dead_channels = a.dead_channels;
      row.channels = a.channels;
    }
    if (auto s = summaries.find(name); s != summaries.end()) {
      row.grad_last = s->second.last;
      row.grad_median = s->second.median;
      row.grad_max = s->second.max;
      row.mean_ratio = s->second.mean_ratio;
      row.flags = s->second.flags;
      row.nonfinite_steps = s->second.nonfinite_steps;
    }
    data.layers.push_back(std::move(row));
  }
  return data;
}

}  // namespace hookrt::detail
