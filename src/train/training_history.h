#pragma once
// TrainingHistory — what the report draws, gathered from the probe records as they arrive: each
// step's gradient norm per layer (its grad_output; +inf when it held NaN/Inf), each layer's last
// activation statistics, the loss and learning rate per step, markers and policy events.
#include <map>
#include <string>
#include <vector>

#include "hookrt/explosion.h"
#include "hookrt/model.h"
#include "hookrt/records.h"
#include "hookrt/report.h"

namespace hookrt::detail {

class TrainingHistory {
 public:
  explicit TrainingHistory(const Model& model) : model_(model) {}
  void observe(const ProbeRecord& record);
  // Closes the step's column of the heatmap.
  void end_step(int64_t step, double loss, double lr);
  void add_flags(const StepVerdict& verdict);
  void add_event(int64_t step, const std::string& kind, const std::string& text);
  report::ReportData report(const ExplosionLocalizer& localizer) const;
  int64_t steps() const { return static_cast<int64_t>(steps_.size()); }

 private:
  struct Activation {
    double mean = 0, std = 0, zero_fraction = 0;
    int64_t dead_channels = -1, channels = -1;
    bool seen = false;
  };
  struct Layer {
    std::string kind;
    std::vector<double> grad_norm;  // per closed step
  };
  Layer& layer(const std::string& name, const std::string& module);
  bool is_leaf(const std::string& module) const;

  const Model& model_;
  std::vector<std::string> order_;  // layers in backward order of first appearance
  std::map<std::string, Layer> layers_;
  std::map<std::string, Activation> activations_;  // last forward output of each leaf call
  std::map<std::string, double> this_step_;  // grad_output norms of the open step
  std::vector<int64_t> steps_;
  std::vector<double> loss_, lr_;
  std::vector<report::Marker> markers_;
  std::vector<report::Event> events_;
};

}  // namespace hookrt::detail
