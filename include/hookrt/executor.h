#pragma once
// Executor — runs a Model on a Backend: forward, backward whenever labels are given, the SGD update
// in train mode, and every hook at every module boundary. Probe records go to subscribers in the
// order they fire.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hookrt/backend.h"
#include "hookrt/model.h"
#include "hookrt/records.h"
#include "hookrt/tensor.h"

namespace hookrt {

enum class Mode { Eval, Train };
std::string mode_name(Mode mode);
Mode parse_mode(const std::string& text);  // "eval" | "train"; throws Error(BadInput)

struct ExecutorOptions {
  Mode mode = Mode::Eval;
  SgdOptions sgd;
  bool input_grad = false;  // compute the gradient of the loss w.r.t. the input (saliency)
};

struct StepResult {
  int64_t step = 0;
  std::optional<double> loss;  // with labels
  Tensor logits;               // host (N, num_classes)
  Tensor input_grad;           // host, when options.input_grad and labels
};

using RecordSubscriber = std::function<void(const ProbeRecord&)>;

// This step's parameter gradients, as the optimizer is about to see them (after grad hooks).
class ParameterGradients {
 public:
  virtual ~ParameterGradients() = default;
  // Multiplies a parameter's gradient by factor (per-layer clipping); throws naming an unknown key.
  virtual void scale(const std::string& key, double factor) = 0;
};

// What happens to the optimizer step once backward is done.
enum class UpdateAction { Apply, Skip };

// Decides, after every record of a train step has been delivered and before the optimizer runs,
// whether the step updates the parameters; it may rescale gradients first. A skipped step also
// puts batch norm's running statistics back, so the model is as the step found it. Training
// tools use it for explosion policies (clip, skip, halt).
using UpdateGate = std::function<UpdateAction(int64_t step, ParameterGradients& gradients)>;

class Executor {
 public:
  Executor(Model& model, std::unique_ptr<Backend> backend, ExecutorOptions options = {});
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // One step on input (N,3,H,W) F32, on the host or already on the backend's device, and optional
  // host labels (N) I64/I32. Throws
  // Error(BadInput) naming the mismatch on a wrong shape, channel count or label; Error(Halted)
  // when a nonfinite=halt probe fires (records up to that point are delivered first).
  StepResult step(const Tensor& input, const Tensor& labels = Tensor());

  void subscribe(RecordSubscriber subscriber);
  void set_update_gate(UpdateGate gate) { update_gate_ = std::move(gate); }
  // The learning rate of the next updates (learning-rate schedules).
  void set_learning_rate(double lr) { options_.sgd.lr = lr; }
  // SGD momentum buffers as host tensors keyed by parameter name (empty before the first update
  // with momentum), and their restoration with the step count, so a resumed run continues exactly.
  TensorMap optimizer_state();
  void load_optimizer_state(const TensorMap& momentum, int64_t steps_done);
  // Whether the last step's optimizer update was skipped by the update gate.
  bool last_update_skipped() const { return last_update_skipped_; }
  // Copies parameters, buffers and optimizer state back into the model's host tensors.
  void sync_model();
  int64_t steps_done() const { return step_; }
  Backend& backend() { return *backend_; }
  const ExecutorOptions& options() const { return options_; }

 private:
  void apply_sgd();
  UpdateAction gate_update();
  struct BufferSnapshot {
    TensorMap tensors;                                  // float buffers, on the backend
    std::vector<std::pair<std::string, int64_t>> counters;  // num_batches_tracked, on the host
  };
  void snapshot_buffers();
  void restore_buffers();

  struct State;
  Model& model_;
  std::unique_ptr<Backend> backend_;
  ExecutorOptions options_;
  std::vector<RecordSubscriber> subscribers_;
  UpdateGate update_gate_;
  BufferSnapshot buffers_before_step_;  // batch norm's buffers as the current gated step found them
  bool last_update_skipped_ = false;
  std::unique_ptr<State> state_;
  int64_t step_ = 0;
};

}  // namespace hookrt
