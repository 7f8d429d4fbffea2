#include "hookrt/checkpoint.h"

#include <cmath>
#include <cstdio>

#include "hookrt/error.h"
#include "hookrt/io.h"
#include "number_text.h"

namespace hookrt {

namespace {

const std::string kMomentumPrefix = "optimizer.momentum_buffer.";
const std::string kStepsKey = "hookrt.steps_done";
const std::string kSettingPrefix = "hookrt.setting.";
const std::string kScaleKey = "hookrt.grad_scaler.scale";
const std::string kGrowthTrackerKey = "hookrt.grad_scaler.growth_tracker";

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

// The scale round-trips: 17 significant digits name one double, which holds the F32 scale exactly.
std::string scale_text(double scale) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", scale);
  return text;
}

double parse_scale(const std::string& path, const std::string& text) {
  const std::optional<double> value = parse_whole_double(text);
  if (!value || !(*value > 0) || !std::isfinite(*value))
    throw_bad_input(path + ": __metadata__ '" + kScaleKey + "' = '" + text + "' is not a positive loss scale");
  return *value;
}

int64_t parse_count(const std::string& path, const std::string& key, const std::string& text) {
  const std::optional<int64_t> value = parse_whole_int64(text);
  if (!value || *value < 0) throw_bad_input(path + ": __metadata__ '" + key + "' = '" + text + "' is not a count");
  return *value;
}

// Both keys or neither: half a scaler state cannot be resumed.
std::optional<LossScalerState> read_loss_scaler(const std::string& path, const std::map<std::string, std::string>& metadata) {
  auto scale = metadata.find(kScaleKey);
  auto tracker = metadata.find(kGrowthTrackerKey);
  if (scale == metadata.end() && tracker == metadata.end()) return std::nullopt;
  if (scale == metadata.end() || tracker == metadata.end())
    throw_bad_input(path + ": __metadata__ has one of '" + kScaleKey + "' and '" + kGrowthTrackerKey + "' without the other");
  return LossScalerState{parse_scale(path, scale->second), parse_count(path, kGrowthTrackerKey, tracker->second)};
}

}  // namespace

void write_checkpoint(const std::string& path, const Model& model, const TensorMap& momentum, int64_t steps_done,
                      const std::map<std::string, std::string>& settings,
                      const std::optional<LossScalerState>& loss_scaler) {
  TensorMap tensors = model.state_dict();
  for (const auto& [key, buffer] : momentum) tensors.emplace_back(kMomentumPrefix + key, buffer);
  std::map<std::string, std::string> metadata{{"format", "pt"}, {"arch", "resnet18"}, {kStepsKey, std::to_string(steps_done)}};
  for (const auto& [key, value] : settings) metadata[kSettingPrefix + key] = value;
  if (loss_scaler) {
    metadata[kScaleKey] = scale_text(loss_scaler->scale);
    metadata[kGrowthTrackerKey] = std::to_string(loss_scaler->growth_tracker);
  }
  io::write_safetensors(path, tensors, metadata);
}

TrainingCheckpoint read_checkpoint(const std::string& path) {
  std::map<std::string, std::string> metadata;
  const TensorMap tensors = io::read_safetensors(path, &metadata);
  auto steps = metadata.find(kStepsKey);
  if (steps == metadata.end())
    throw_bad_input(path + ": not a hookrt training checkpoint (no __metadata__ '" + kStepsKey +
                    "'); to start from plain weights use --weights");
  TrainingCheckpoint checkpoint;
  checkpoint.steps_done = parse_count(path, kStepsKey, steps->second);
  checkpoint.loss_scaler = read_loss_scaler(path, metadata);
  for (const auto& [key, value] : metadata)
    if (starts_with(key, kSettingPrefix)) checkpoint.settings[key.substr(kSettingPrefix.size())] = value;
  for (const auto& [key, tensor] : tensors) {
    if (starts_with(key, kMomentumPrefix)) checkpoint.momentum.emplace_back(key.substr(kMomentumPrefix.size()), tensor);
    else if (starts_with(key, "optimizer.")) throw_bad_input(path + ": unknown optimizer entry '" + key + "'");
    else checkpoint.weights.emplace_back(key, tensor);
  }
  return checkpoint;
}

TensorMap model_weights_only(const TensorMap& state) {
  TensorMap weights;
  for (const auto& [key, tensor] : state)
    if (!starts_with(key, "optimizer.")) weights.emplace_back(key, tensor);
  return weights;
}

Model resnet18_from_state(const TensorMap& state, const std::string& source) {
  const TensorMap weights = model_weights_only(state);
  int64_t classes = 0;
  for (const auto& [key, tensor] : weights)
    if (key == "fc.weight" && tensor.ndim() == 2) classes = tensor.size(0);
  if (classes < 1) throw_bad_input(source + ": missing key 'fc.weight' (a 2-d tensor) for the class count");
  Model model = Model::resnet18(classes);
  model.load_state_dict(weights, source);
  return model;
}

}  // namespace hookrt
