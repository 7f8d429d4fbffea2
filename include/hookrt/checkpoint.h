#pragma once
// Training checkpoints — one safetensors file a resumed run continues from exactly: the model's
// state_dict under torchvision's keys (so the file also loads as plain weights, in hookrt and in
// PyTorch with strict=False), the SGD momentum buffers under `optimizer.momentum_buffer.<param>`,
// and the step count, the loss scaler's state (fp16 training) and the run settings as
// `__metadata__` strings.
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "hookrt/executor.h"
#include "hookrt/model.h"

namespace hookrt {

struct TrainingCheckpoint {
  TensorMap weights;   // state_dict keys
  TensorMap momentum;  // parameter key -> momentum buffer (empty without momentum)
  int64_t steps_done = 0;
  std::optional<LossScalerState> loss_scaler;  // GradScaler's scale and growth tracker, where scaled
  std::map<std::string, std::string> settings;  // what the run was started with ("lr", "seed", ...)
};

// Writes atomically (a reader never sees half a checkpoint).
void write_checkpoint(const std::string& path, const Model& model, const TensorMap& momentum, int64_t steps_done,
                      const std::map<std::string, std::string>& settings,
                      const std::optional<LossScalerState>& loss_scaler = std::nullopt);
// Throws Error(BadInput) naming the file and key on anything malformed.
TrainingCheckpoint read_checkpoint(const std::string& path);
// The weights of a checkpoint or of a plain weights file (optimizer entries dropped).
TensorMap model_weights_only(const TensorMap& state);
// resnet18 with the class count of `state`'s fc.weight, loaded from it; `source` names the file.
Model resnet18_from_state(const TensorMap& state, const std::string& source);

}  // namespace hookrt
