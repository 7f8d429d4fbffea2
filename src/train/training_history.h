#pragma once
// TrainingHistory — what the report draws: each step's gradient norm per layer (the localizer's
// norm of its grad_output), each layer's last activation statistics (from the forward records as
// they arrive), the loss and learning rate per step, markers and policy events.
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
  void observe(const ProbeRecord& record);  // forward outputs: activation statistics
  // Closes the step's column of the heatmap, after the localizer finished the step.
  void end_step(int64_t step, double loss, double lr, const ExplosionLocalizer& localizer);
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
  Layer& layer(const std::string& name);
  bool is_leaf(const std::string& module) const;

  const Model& model_;
  std::vector<std::string> order_;  // layers in backward order of first appearance
  std::map<std::string, Layer> layers_;
  std::map<std::string, Activation> activations_;  // last forward output of each leaf call
  std::vector<int64_t> steps_;
  std::vector<double> loss_, lr_;
  std::vector<report::Marker> markers_;
  std::vector<report::Event> events_;
};

}  // namespace hookrt::detail
