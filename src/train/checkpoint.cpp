#include "hookrt/checkpoint.h"

#include "hookrt/error.h"
#include "hookrt/io.h"

namespace hookrt {

namespace {

const std::string kMomentumPrefix = "optimizer.momentum_buffer.";
const std::string kStepsKey = "hookrt.steps_done";
const std::string kSettingPrefix = "hookrt.setting.";

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

int64_t parse_steps(const std::string& path, const std::string& text) {
  size_t used = 0;
  long long value = -1;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || value < 0)
    throw_bad_input(path + ": __metadata__ '" + kStepsKey + "' = '" + text + "' is not a step count");
  return value;
}

}  // namespace

void write_checkpoint(const std::string& path, const Model& model, const TensorMap& momentum, int64_t steps_done,
                      const std::map<std::string, std::string>& settings) {
  TensorMap tensors = model.state_dict();
  for (const auto& [key, buffer] : momentum) tensors.emplace_back(kMomentumPrefix + key, buffer);
  std::map<std::string, std::string> metadata{{"format", "pt"}, {"arch", "resnet18"}, {kStepsKey, std::to_string(steps_done)}};
  for (const auto& [key, value] : settings) metadata[kSettingPrefix + key] = value;
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
  checkpoint.steps_done = parse_steps(path, steps->second);
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
