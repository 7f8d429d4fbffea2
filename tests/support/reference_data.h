#pragma once
// ReferenceData — PyTorch's side of the parity test: runs tools/make_reference.py (torchvision's
// resnet18, one hooked step, every hook firing captured) with the Debian interpreter that has
// torch, and loads what it wrote. See tools/README.md for the files and the capture keys.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hookrt/backend.h"
#include "hookrt/executor.h"
#include "hookrt/model.h"
#include "hookrt/probes.h"
#include "hookrt/tensor.h"

namespace hookrt::testing {

// The interpreter with torch and torchvision: $HOOKRT_TORCH_PYTHON when set, else Debian's
// /usr/bin/python3 (python3-torch, python3-torchvision); the `python3` on PATH may be another one
// without them.
std::string torch_python();

struct ReferenceOptions {
  uint64_t seed = 0;
  int64_t batch = 2;
  int64_t size = 64;  // input height and width
  int64_t num_classes = 10;
  Mode mode = Mode::Eval;  // which step to make: train (with one SGD step) or eval
  std::string torch_device = "cpu";  // where PyTorch runs the step: "cpu" or "cuda" (full F32)
  SgdOptions sgd{
      .lr = 0.1, .momentum = 0.9, .dampening = 0.0, .weight_decay = 1e-4, .nesterov = true};
};

// One mode's step as PyTorch ran it.
struct ReferenceStep {
  Mode mode = Mode::Eval;
  // Every tensor of {mode}_captures.safetensors: hook captures, `loss` (F64 [1]), `logits`, and in
  // train mode `after/{state_key}` (the state after the SGD step).
  std::map<std::string, Tensor> tensors;
  std::vector<std::string> capture_keys;           // hook captures only, in PyTorch's firing order
  std::vector<std::string> grad_input_absent_for;  // modules whose backward has no grad_input
  std::map<std::string, StatsResult> stats;        // float64 stats of each capture, by key
  std::map<std::string, Shape> stats_shapes;       // the shape each stats line names, by key
  std::optional<SgdOptions> sgd;                   // train mode: the optimizer settings used
  nlohmann::json meta;                             // {mode}_meta.json as written
};

struct ReferenceData {
  ReferenceOptions options;
  TensorMap weights;  // the state_dict before the step, torchvision's keys and order
  Tensor input;       // F32 (N, 3, H, W)
  Tensor labels;      // I64 (N)
  ReferenceStep step;
  std::string command;  // the command that made it, for failure messages (rerun to inspect)
  double seconds = 0;   // how long the script took
};

// Runs `script` (tools/make_reference.py) into `dir` (which must exist) and loads the result.
// Throws hookrt::Error naming the problem: torch or torchvision missing (with the packages to
// install), the script's failure (with its output), or a file that does not hold what
// tools/README.md says.
ReferenceData make_reference_data(const std::string& script, const std::string& dir,
                                  const ReferenceOptions& options);

}  // namespace hookrt::testing
