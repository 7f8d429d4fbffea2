#pragma once
// Executor — runs a Model on a Backend: forward, backward whenever labels are given, the SGD update
// in train mode, and every hook at every module boundary. Probe records go to subscribers in the
// order they fire. On a backend that defers probe results (the GPU's), a step's records are
// delivered by the executor's delivery thread while the next step runs, unless something must see
// them before the optimizer (a nonfinite=halt probe, an update gate); flush_records() waits for
// them. Subscribers are then called on that thread, one record at a time, never concurrently.
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
namespace detail {
class RecordDelivery;
class StepRunner;
struct HandedOverStep;
struct RecordedStep;
struct StepSignature;
}

enum class Mode { Eval, Train };
std::string mode_name(Mode mode);
Mode parse_mode(const std::string& text);  // "eval" | "train"; throws Error(BadInput)

// The arithmetic of a step. BF16 is torch.autocast(dtype=torch.bfloat16) around the model and
// the loss: convolutions and the linear layer take BF16 casts of their inputs and of the F32
// weights (cast once per step), and every op after them keeps BF16 (batch norm with its F32
// parameters and statistics, ReLU, pooling, the residual add); the loss casts the logits back to
// F32. Gradients flow back in the dtype of what they are the gradient of, so parameter gradients,
// the optimizer and batch norm's buffers stay F32 (no loss scaling: BF16 has F32's range). F16 is
// the same with torch.float16, whose range ends at 65504 and whose smallest normal is 2^-14: a
// training step then scales its loss (ExecutorOptions::loss_scaling, GradScaler's recipe).
enum class Precision { F32, BF16, F16 };
std::string precision_name(Precision precision);            // "fp32" | "bf16" | "fp16"
Precision parse_precision(const std::string& text);         // throws Error(BadInput)

// Channels-last for BF16 on CUDA, where cuDNN's tensor-core convolutions read NHWC without
// transposing (PyTorch's recipe: autocast with a channels_last model); NCHW otherwise.
MemoryFormat default_memory_format(Device device, Precision precision);
// The activations' dtype under a precision: F32, BF16 or F16.
DType activation_dtype(Precision precision);

// Loss scaling of a training step, torch.amp.GradScaler's: Dynamic with LossScaleOptions'
// defaults (init 2^16, x2 after 2000 good steps, x0.5 and the update skipped after an overflow),
// Static keeps init_scale (an overflowed step is still skipped), Off runs unscaled. Unset: Dynamic
// for Precision::F16, Off otherwise (BF16 and F32 need none).
enum class LossScaling { Off, Dynamic, Static };
struct LossScalingOptions {
  LossScaling kind = LossScaling::Dynamic;
  LossScaleOptions scaler;  // Static ignores growth and backoff
};
LossScalingOptions default_loss_scaling(Precision precision);
// "off" | "dynamic" | a positive number (a static scale); throws Error(BadInput).
LossScalingOptions parse_loss_scaling(const std::string& text);
std::string loss_scaling_name(const LossScalingOptions& options);  // "off" | "dynamic" | "static 1024"
// A loss scaler's state between steps (GradScaler.state_dict's scale and _growth_tracker).
struct LossScalerState {
  double scale = 0;
  int64_t growth_tracker = 0;
};

struct ExecutorOptions {
  Mode mode = Mode::Eval;
  Precision precision = Precision::F32;
  // The layout of the 4-D activations, their gradients and the convolutions' weights inside a
  // step, as model.to(memory_format=...) and the input's format in PyTorch. Parameters, their
  // gradients and everything a hook, a capture or a file sees stay NCHW. Unset: the device's best
  // for the precision (default_memory_format).
  std::optional<MemoryFormat> memory_format;
  // How a training step scales its loss; unset: default_loss_scaling(precision).
  std::optional<LossScalingOptions> loss_scaling;
  SgdOptions sgd;
  bool input_grad = false;  // compute the gradient of the loss w.r.t. the input (saliency)
  // Deferred records go to the delivery thread when nothing in the step needs them first; off:
  // every step returns with its records delivered, on the calling thread.
  bool deliver_in_background = true;
  // Replays each step as one recorded graph (CUDA graphs) where the backend can record and no
  // hook needs the host mid-step: no host callback, no capture probe (see step_graphs.h); off:
  // every step is queued op by op.
  bool replay_graphs = true;
  // Hands a ReLU's output (forward) and its input's gradient (backward), and a split batch norm's
  // output and dx (Backend::splits_batchnorm), to the probe run of the first hook that fires on
  // them, unwritten, so a backend can write and probe each in one pass (ProbeRunOptions::produce),
  // and a tensor that such a pass reads next, watched by observing probes alone (a batch norm's
  // output, a gradient into a ReLU's backward, a convolution's output into a split batch norm), to
  // that pass (ProbeRunOptions::probe_input); off: the ops write their tensors and the probes read
  // every tensor on their own.
  bool probes_in_epilogues = true;
};

// How a step was run: op by op, recorded into a graph (and then run by replaying it once), or by
// replaying the graph recorded on an earlier step of the same shape, options and hooks.
enum class StepPath { Eager, Recorded, Replayed };
std::string step_path_name(StepPath path);  // "eager" | "recorded" | "replayed"

struct StepResult {
  int64_t step = 0;
  std::optional<double> loss;  // with labels
  Tensor logits;               // host (N, num_classes) F32 (BF16 logits widened, which is exact)
  Tensor input_grad;           // host, when options.input_grad and labels
  StepPath path = StepPath::Eager;
  // Under loss scaling: the scale this step's backward ran with, and whether its gradients held
  // a NaN or an Inf, so that the scaler skipped its update (GradScaler's found_inf). Input
  // gradients and backward hooks see scaled gradients, as in PyTorch; parameter gradients are
  // unscaled before grad hooks see them (where GradScaler.unscale_ puts them before clipping).
  std::optional<double> loss_scale;
  bool overflowed = false;
};

using RecordSubscriber = std::function<void(const ProbeRecord&)>;

// This step's parameter gradients, as the optimizer is about to see them (after grad hooks).
class ParameterGradients {
 public:
  virtual ~ParameterGradients() = default;
  // Multiplies a parameter's gradient by factor (per-layer clipping); throws naming an unknown key.
  virtual void scale(const std::string& key, double factor) = 0;
  // Under loss scaling: whether the scaler found a NaN or an Inf in these (scaled) gradients, so
  // that it skips the update whatever the gate decides. False without loss scaling.
  virtual bool overflowed() = 0;
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

  // Adds a subscriber for the records of later steps (after the earlier steps' are delivered).
  void subscribe(RecordSubscriber subscriber);
  // Returns once every record of the steps so far has reached the subscribers; rethrows, once,
  // what a subscriber threw on the delivery thread.
  void flush_records();
  void set_update_gate(UpdateGate gate) { update_gate_ = std::move(gate); }
  // The learning rate of the next updates (learning-rate schedules).
  void set_learning_rate(double lr) { options_.sgd.lr = lr; }
  // SGD momentum buffers as host tensors keyed by parameter name (empty before the first update
  // with momentum), and their restoration with the step count, so a resumed run continues exactly.
  TensorMap optimizer_state();
  void load_optimizer_state(const TensorMap& momentum, int64_t steps_done);
  // The loss scaler's state for the next step (a host wait), none without loss scaling; and its
  // restoration on resume. Throws Error(BadInput) on a state the scaler cannot hold.
  std::optional<LossScalerState> loss_scaler_state();
  void load_loss_scaler_state(const LossScalerState& state);
  // Why the last step ran op by op rather than by replaying a graph (empty when it was recorded
  // or replayed): a warm-up of a new kind of step, the backend, a hook or option that needs the
  // host mid-step, or a recording that failed (graphs are then off for this executor).
  const std::string& why_last_step_eager() const { return why_eager_; }
  // Whether the last step's optimizer update was skipped, by the update gate or by the loss
  // scaler after an overflow.
  bool last_update_skipped() const { return last_update_skipped_; }
  // Delivers every record so far, then copies parameters, buffers and optimizer state back into
  // the model's host tensors.
  void sync_model();
  int64_t steps_done() const { return step_; }
  Backend& backend() { return *backend_; }
  const Backend& backend() const { return *backend_; }
  const ExecutorOptions& options() const { return options_; }

 private:
  void deliver_now(const ProbeRecord& record);
  void deliver_to_subscribers(const ProbeRecord& record);
  void hand_over(detail::HandedOverStep step);
  StepResult eager_step(const Tensor& input, const Tensor& labels, bool gated);
  // Records this step as a graph and runs it by replaying it; nothing when it could not be
  // recorded (the step is then still to run, and graphs are off from now on).
  std::optional<StepResult> record_step(detail::StepSignature signature, const Tensor& input, const Tensor& labels,
                                       bool gated);
  void record_work(detail::RecordedStep& recorded);
  StepResult replay_step(const Tensor& input, const Tensor& labels, bool gated, StepPath path);
  void drop_recorded_step();
  void turn_graphs_off(const std::string& why);
  void update_through_gate();
  void apply_sgd();
  // After a training step under loss scaling: reads whether it overflowed and what scale it ran
  // with into `result` (a host wait, where the step already waits for its loss).
  void settle_loss_scaling(StepResult& result);
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
  bool momentum_started_before_step_ = false;  // an overflowed step leaves the momentum unstarted
  std::unique_ptr<State> state_;
  // The step recorded as a graph, and the signature of the eager step before (its warm-up).
  // Declared after backend_: a recording may use the backend's buffers, so it goes first.
  std::unique_ptr<detail::RecordedStep> recorded_;
  std::unique_ptr<detail::StepSignature> warmed_up_;
  std::string graphs_off_;  // why recording or replaying failed, once one has
  std::string why_eager_;
  std::unique_ptr<detail::RecordDelivery> delivery_;  // started by the first step handed over
  int64_t step_ = 0;
};

}  // namespace hookrt
