#include "hookrt/executor.h"

#include <algorithm>
#include <iostream>

#include "loss_scaler.h"
#include "number_text.h"
#include "record_delivery.h"
#include "step_graphs.h"
#include "step_runner.h"

namespace hookrt {

std::string mode_name(Mode mode) { return mode == Mode::Train ? "train" : "eval"; }

std::string step_path_name(StepPath path) {
  switch (path) {
    case StepPath::Eager: return "eager";
    case StepPath::Recorded: return "recorded";
    case StepPath::Replayed: return "replayed";
  }
  return "unknown";
}

Mode parse_mode(const std::string& text) {
  if (text == "train") return Mode::Train;
  if (text == "eval") return Mode::Eval;
  throw_bad_input("unknown mode '" + text + "' (expected eval or train)");
}

std::string precision_name(Precision precision) {
  switch (precision) {
    case Precision::F32: return "fp32";
    case Precision::BF16: return "bf16";
    case Precision::F16: return "fp16";
  }
  return "unknown";
}

Precision parse_precision(const std::string& text) {
  if (text == "fp32") return Precision::F32;
  if (text == "bf16") return Precision::BF16;
  if (text == "fp16") return Precision::F16;
  throw_bad_input("unknown precision '" + text + "' (expected fp32, bf16 or fp16)");
}

DType activation_dtype(Precision precision) {
  switch (precision) {
    case Precision::BF16: return DType::BF16;
    case Precision::F16: return DType::F16;
    case Precision::F32: break;
  }
  return DType::F32;
}

// Tensor cores read half precision fastest in NHWC, whichever half it is.
MemoryFormat default_memory_format(Device device, Precision precision) {
  return device == Device::CUDA && precision != Precision::F32 ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
}

LossScalingOptions default_loss_scaling(Precision precision) {
  LossScalingOptions options;
  options.kind = precision == Precision::F16 ? LossScaling::Dynamic : LossScaling::Off;
  return options;
}

LossScalingOptions parse_loss_scaling(const std::string& text) {
  LossScalingOptions options;
  if (text == "off") {
    options.kind = LossScaling::Off;
    return options;
  }
  if (text == "dynamic") return options;
  const std::optional<double> scale = parse_whole_double(text);
  if (!scale || !detail::usable_loss_scale(*scale))
    throw_bad_input("unknown loss scaling '" + text +
                    "' (expected off, dynamic or a positive number F32 holds, 1.2e-38 to 3.4e38)");
  options.kind = LossScaling::Static;
  options.scaler.init_scale = *scale;
  return options;
}

std::string loss_scaling_name(const LossScalingOptions& options) {
  switch (options.kind) {
    case LossScaling::Off: return "off";
    case LossScaling::Dynamic: return "dynamic";
    case LossScaling::Static: break;
  }
  return "static " + number_text(options.scaler.init_scale);
}

namespace detail {
MemoryFormat step_memory_format(const ExecutorOptions& options, Device device) {
  return options.memory_format.value_or(default_memory_format(device, options.precision));
}
}  // namespace detail

struct Executor::State : detail::DeviceState {};

static bool lives_on_device(const Tensor& t) { return t.dtype() == DType::F32; }

Executor::Executor(Model& model, std::unique_ptr<Backend> backend, ExecutorOptions options)
    : model_(model), backend_(std::move(backend)), options_(options), state_(std::make_unique<State>()) {
  HOOKRT_CHECK(backend_ != nullptr, "Executor needs a backend");
  // Float parameters and buffers live on the backend (the CPU backend shares the model's tensors);
  // num_batches_tracked stays a host counter in the model.
  for (const std::string& key : model_.state_keys()) {
    const Tensor& t = model_.tensor(key);
    if (!lives_on_device(t)) continue;
    state_->tensors[key] = backend_->device() == Device::CPU ? t : backend_->from_host(t);
  }
  // Loss scaling guards an optimizer's update; an eval step's backward (gradient hooks) runs unscaled.
  const LossScalingOptions scaling = options_.loss_scaling.value_or(default_loss_scaling(options_.precision));
  if (options_.mode == Mode::Train && scaling.kind != LossScaling::Off)
    state_->loss_scaler = std::make_unique<detail::LossScaler>(*backend_, scaling);
}

std::optional<LossScalerState> Executor::loss_scaler_state() {
  if (!state_->loss_scaler) return std::nullopt;
  return state_->loss_scaler->state();
}

void Executor::load_loss_scaler_state(const LossScalerState& state) {
  if (!state_->loss_scaler) throw_bad_input("loss scaler state: this run scales no loss (--loss-scale off)");
  state_->loss_scaler->load_state(state);
}

// The delivery thread finishes first: its last records may still wait on the backend's device.
Executor::~Executor() { delivery_.reset(); }

void Executor::subscribe(RecordSubscriber subscriber) {
  flush_records();  // the thread reads the subscribers while it delivers
  subscribers_.push_back(std::move(subscriber));
}

void Executor::flush_records() {
  if (delivery_) delivery_->wait();
}

void Executor::deliver_to_subscribers(const ProbeRecord& record) {
  for (const auto& subscriber : subscribers_) subscriber(record);
}

// Records delivered on the stepping thread come after every record handed over before them.
void Executor::deliver_now(const ProbeRecord& record) {
  flush_records();
  deliver_to_subscribers(record);
}

void Executor::hand_over(detail::HandedOverStep step) {
  if (step.records.empty()) return;
  if (!delivery_)
    delivery_ = std::make_unique<detail::RecordDelivery>(
        [this](const ProbeRecord& record) { deliver_to_subscribers(record); });
  delivery_->hand_over(std::move(step));
}

void Executor::sync_model() {
  flush_records();
  backend_->synchronize();
  if (backend_->device() == Device::CPU) return;
  for (auto& [key, t] : state_->tensors) {
    Tensor host = backend_->to_host(t);
    model_.tensor(key) = host;
  }
}

static void check_input(const Tensor& input) {
  if (!input.defined()) throw_bad_input("input: no tensor given");
  if (input.dtype() != DType::F32 || input.ndim() != 4 || input.size(1) != 3)
    throw_bad_input("input: expected a float32 (N, 3, H, W) batch, got " + dtype_name(input.dtype()) + " " +
                    shape_string(input.shape()));
  if (input.size(0) < 1 || input.size(2) < 1 || input.size(3) < 1)
    throw_bad_input("input: empty batch " + shape_string(input.shape()));
}

static Tensor checked_labels(const Tensor& labels, int64_t batch, int64_t num_classes) {
  if (labels.dtype() != DType::I64 && labels.dtype() != DType::I32)
    throw_bad_input("labels: expected int64 or int32, got " + dtype_name(labels.dtype()));
  if (labels.ndim() != 1 || labels.size(0) != batch)
    throw_bad_input("labels: expected shape [" + std::to_string(batch) + "] to match the batch, got " +
                    shape_string(labels.shape()));
  Tensor as_i64 = labels.to(DType::I64);
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t label = as_i64.data<int64_t>()[i];
    if (label < 0 || label >= num_classes)
      throw_bad_input("labels[" + std::to_string(i) + "] = " + std::to_string(label) + " is out of range [0, " +
                      std::to_string(num_classes) + ")");
  }
  return as_i64;
}

// Autocast runs the loss on F32 logits: BF16 and F16 logits are cast up (their gradient back
// down); F32 and F64 logits are used as they are.
static Tensor loss_logits(Backend& backend, const Tensor& logits) {
  const bool half = logits.dtype() == DType::BF16 || logits.dtype() == DType::F16;
  return half ? backend.converted(logits, DType::F32) : logits;
}

// Loss and backward: the labels stay where they are given (host or device, checked); the loss
// stays on the device until the step ends, so backward is queued behind the forward without
// waiting for it.
// Under loss scaling the loss's gradient is scaled in F32, before the cast to the logits' dtype
// (as backward of scaler.scale(loss) reaches autocast's F32 loss first).
static void loss_and_backward(detail::StepRunner& runner, Backend& backend, int logits_id, const Tensor& labels,
                              Tensor& loss, detail::LossScaler* scaler) {
  const Tensor logits = runner.tape().value(logits_id).data;
  const Tensor loss_input = loss_logits(backend, logits);
  Tensor probs = backend.empty(logits.shape(), loss_input.dtype());
  backend.cross_entropy_forward(loss_input, labels, probs, loss);
  Tensor dlogits = backend.empty(logits.shape(), loss_input.dtype());
  backend.cross_entropy_backward(probs, labels, dlogits);
  if (scaler) {
    scaler->begin_step();
    scaler->scale_loss_gradient(dlogits);
  }
  runner.tape().accumulate_grad(logits_id, backend.converted(dlogits, logits.dtype()));
  runner.tape().run_backward();
  if (scaler) runner.unscale_deferred_gradients();  // before anything reads the parameters' gradients
}

StepResult Executor::step(const Tensor& input, const Tensor& labels) {
  check_input(input);
  momentum_started_before_step_ = state_->momentum_initialised;
  const bool backward = labels.defined();
  Tensor host_labels = backward ? checked_labels(labels, input.size(0), model_.num_classes()) : Tensor();
  const bool gated = backward && options_.mode == Mode::Train && update_gate_;
  why_eager_ = graphs_off_.empty() ? detail::graph_blocker(model_.hooks(), step_, options_) : graphs_off_;
  if (!why_eager_.empty()) {
    drop_recorded_step();
    return eager_step(input, host_labels, gated);
  }
  detail::StepSignature signature = detail::step_signature(input.shape(), backward, options_, gated,
                                                           state_->momentum_initialised, model_.hooks(), step_);
  if (recorded_ && recorded_->signature == signature)
    return replay_step(input, host_labels, gated, StepPath::Replayed);
  recorded_.reset();
  if (warmed_up_ && *warmed_up_ == signature)
    if (std::optional<StepResult> result = record_step(signature, input, host_labels, gated))
      return std::move(*result);
  if (why_eager_.empty()) why_eager_ = "the first step of its kind runs op by op (buffers sized, algorithms chosen)";
  StepResult result = eager_step(input, host_labels, gated);
  warmed_up_ = std::make_unique<detail::StepSignature>(std::move(signature));
  return result;
}

// After a recording or a replay failed: every later step runs op by op, said once on stderr.
void Executor::turn_graphs_off(const std::string& why) {
  graphs_off_ = why_eager_ = why;
  std::cerr << "hookrt: steps run op by op from now on: " << why << "\n";
}

// An eager step moves the backend's buffers (they grow to fit it), which a recorded step uses.
void Executor::drop_recorded_step() {
  recorded_.reset();
  warmed_up_.reset();
}

StepResult Executor::eager_step(const Tensor& input, const Tensor& host_labels, bool gated) {
  const bool backward = host_labels.defined();
  const bool input_grad = backward && options_.input_grad;
  auto sink = [this](const ProbeRecord& record) { deliver_now(record); };
  if (gated) snapshot_buffers();
  detail::StepRunner runner(model_, *backend_, *state_, options_, step_, backward, sink);
  // A batch already on the backend's device (a data loader's, a benchmark's) is used in place.
  const Tensor device_input = input.device() == backend_->device() ? input : backend_->from_host(input);
  StepResult result;
  result.step = step_;
  Tensor logits, loss;
  try {
    const int logits_id = runner.forward(device_input, input_grad);
    logits = runner.tape().value(logits_id).data;
    if (backward) {
      loss_and_backward(runner, *backend_, logits_id, host_labels, loss, state_->loss_scaler.get());
      if (input_grad) result.input_grad = backend_->to_host(runner.tape().written_grad(0));
    }
    // Before the optimizer: a deferred nonfinite=halt must stop the step before it updates
    // anything, and a gate decides on this step's records. Otherwise the records need not hold
    // the step up.
    if (options_.deliver_in_background && !gated && !runner.may_halt())
      hand_over(runner.hand_over_records());
    else
      runner.flush_records();
  } catch (...) {
    runner.flush_records_noexcept();  // nothing recorded before the failure is lost
    throw;
  }
  last_update_skipped_ = false;
  if (backward && options_.mode == Mode::Train) update_through_gate();
  state_->grads.clear();  // an eval step's too: nothing reads them after the step
  result.logits = backend_->to_host(loss_logits(*backend_, logits));
  if (loss.defined()) result.loss = backend_->to_host(loss).item(0);
  if (backward && state_->loss_scaler) settle_loss_scaling(result);
  ++step_;
  return result;
}

// The host counters (num_batches_tracked) by key.
static std::vector<std::pair<std::string, int64_t>> host_counters(Model& model) {
  std::vector<std::pair<std::string, int64_t>> counters;
  for (const std::string& key : model.state_keys())
    if (model.tensor(key).dtype() == DType::I64) counters.emplace_back(key, model.tensor(key).data<int64_t>()[0]);
  return counters;
}

static void set_host_counters(Model& model, const std::vector<std::pair<std::string, int64_t>>& counters) {
  for (const auto& [key, value] : counters) model.tensor(key).data<int64_t>()[0] = value;
}

// The graph's own input, labels and outputs are made before recording: tensors made while
// recording belong to the recording and are gone when it ends.
std::optional<StepResult> Executor::record_step(detail::StepSignature signature, const Tensor& input,
                                                const Tensor& host_labels, bool gated) {
  auto recorded = std::make_unique<detail::RecordedStep>();
  recorded->signature = std::move(signature);
  recorded->input = backend_->empty(input.shape());
  recorded->logits = backend_->empty({input.size(0), model_.num_classes()});
  if (host_labels.defined()) {
    recorded->labels = backend_->empty(host_labels.shape(), DType::I64);
    recorded->loss = backend_->empty({1}, DType::F64);
  }
  if (recorded->signature.input_grad) recorded->input_grad = backend_->empty(input.shape());
  const bool updates = host_labels.defined() && options_.mode == Mode::Train;
  if (updates && !recorded->signature.optimizer_recorded)
    for (const std::string& key : model_.parameter_names())
      recorded->grads[key] = backend_->empty(state_->tensors.at(key).shape());
  const auto counters = host_counters(model_);
  // Freed before recording: a tensor made outside the recording must not be freed inside it.
  state_->grads.clear();
  // The recording runs the step's host code: what it moves on the host is put back if it fails
  // (the counters, and whether momentum has started, which recording the update set).
  auto drop_recording = [&] {
    state_->grads.clear();  // made while recording: freed before the recording is dropped
    backend_->abandon_step_recording();
    set_host_counters(model_, counters);
    state_->momentum_initialised = momentum_started_before_step_;
  };
  try {
    if (!backend_->begin_step_recording()) {
      graphs_off_ = why_eager_ = "the " + backend_->name() + " backend does not record steps";
      return std::nullopt;
    }
    record_work(*recorded);
    recorded->graph = backend_->end_step_recording();
  } catch (const Error& error) {
    drop_recording();
    turn_graphs_off(std::string("recording a step as a graph failed: ") + error.what());
    return std::nullopt;
  } catch (...) {
    drop_recording();
    throw;
  }
  // Recording ran the step's host code once; each replay, the first included, does it again.
  for (size_t i = 0; i < counters.size(); ++i) {
    const auto& [key, before] = counters[i];
    const int64_t moved = model_.tensor(key).data<int64_t>()[0] - before;
    if (moved != 0) recorded->counter_steps.emplace_back(key, moved);
  }
  set_host_counters(model_, counters);
  recorded_ = std::move(recorded);
  return replay_step(input, host_labels, gated, StepPath::Recorded);
}

// Every tensor the step makes lives in the scope below, so that it is freed while recording.
void Executor::record_work(detail::RecordedStep& recorded) {
  const bool backward = recorded.labels.defined();
  auto collect = [&recorded](const ProbeRecord& record) {
    detail::QueuedRecord delivered;
    delivered.record = record;
    recorded.records.push_back(std::move(delivered));
  };
  {
    detail::StepRunner runner(model_, *backend_, *state_, options_, step_, backward, collect);
    const int logits_id = runner.forward(recorded.input, recorded.input_grad.defined());
    if (backward) loss_and_backward(runner, *backend_, logits_id, recorded.labels, recorded.loss, state_->loss_scaler.get());
    backend_->convert(runner.tape().value(logits_id).data, recorded.logits);
    if (recorded.input_grad.defined()) backend_->copy(runner.tape().written_grad(0), recorded.input_grad);
    recorded.may_halt = runner.may_halt();
    for (detail::QueuedRecord& queued : runner.take_queued_records()) recorded.records.push_back(std::move(queued));
  }
  if (backward && options_.mode == Mode::Train) {
    if (recorded.signature.optimizer_recorded) {
      apply_sgd();
      if (state_->loss_scaler) state_->loss_scaler->update();
    }
    for (auto& [key, grad] : recorded.grads) backend_->copy(state_->grads.at(key), grad);
  }
  state_->grads.clear();  // made while recording (an eval step's too): freed before it ends
}

// Where the optimizer was left out of the recording, the replay's records are delivered first (a
// halt stops the step there), then the gate and the update run on the replay's gradients.
StepResult Executor::replay_step(const Tensor& input, const Tensor& host_labels, bool gated, StepPath path) {
  detail::RecordedStep& recorded = *recorded_;
  const bool update_after = !recorded.grads.empty();
  if (gated) snapshot_buffers();  // before the replay moves batch norm's running statistics
  backend_->copy(input, recorded.input);
  if (host_labels.defined()) backend_->copy(host_labels, recorded.labels);
  try {
    recorded.graph->replay();
  } catch (const Error& error) {  // nothing of the step ran: it runs op by op instead
    drop_recorded_step();
    state_->momentum_initialised = momentum_started_before_step_;  // (a recording's update set it)
    turn_graphs_off(std::string("replaying a recorded step failed: ") + error.what());
    return eager_step(input, host_labels, gated);
  }
  for (const auto& [key, moved] : recorded.counter_steps) model_.tensor(key).data<int64_t>()[0] += moved;
  detail::HandedOverStep records{step_, detail::records_of_replay(recorded, step_),
                                 backend_->seal_deferred_probe_results()};
  if (options_.deliver_in_background && !update_after && !recorded.may_halt) {
    hand_over(std::move(records));
  } else {
    flush_records();
    detail::deliver_step(records, [this](const ProbeRecord& record) { deliver_to_subscribers(record); });
  }
  last_update_skipped_ = false;
  if (update_after) {
    state_->grads = recorded.grads;  // shared: the gate scales them in place, the next replay overwrites them
    update_through_gate();
  }
  StepResult result;
  result.step = step_;
  result.path = path;
  result.logits = backend_->to_host(recorded.logits);
  if (recorded.loss.defined()) result.loss = backend_->to_host(recorded.loss).item(0);
  if (recorded.input_grad.defined()) result.input_grad = backend_->to_host(recorded.input_grad);
  if (recorded.labels.defined() && state_->loss_scaler) settle_loss_scaling(result);
  ++step_;
  return result;
}

// The gate (if any) decides; a skipped update puts batch norm's buffers back.
void Executor::update_through_gate() {
  if (gate_update() == UpdateAction::Apply) {
    apply_sgd();
  } else {
    restore_buffers();
    last_update_skipped_ = true;
  }
  if (state_->loss_scaler) state_->loss_scaler->update();  // GradScaler.update runs either way
  state_->grads.clear();
}

void Executor::apply_sgd() {
  const SgdOptions& o = options_.sgd;
  const bool first = !state_->momentum_initialised;
  // Under loss scaling, an overflowed step's update is skipped on the device (GradScaler.step).
  const Tensor skip_if = state_->loss_scaler ? state_->loss_scaler->found_inf() : Tensor();
  std::vector<SgdTensors> tensors;
  for (const std::string& key : model_.parameter_names()) {
    auto grad = state_->grads.find(key);
    if (grad == state_->grads.end()) throw Error("internal: no gradient for '" + key + "' after backward");
    Tensor& buffer = state_->momentum[key];
    if (o.momentum != 0.0 && !buffer.defined()) buffer = backend_->empty(grad->second.shape());
    tensors.push_back(SgdTensors{&state_->tensors.at(key), &grad->second, &buffer});
  }
  backend_->sgd_update_all(tensors, first, o, skip_if);  // one launch where the backend can
  state_->momentum_initialised = true;  // settle_loss_scaling takes it back after an overflow
}

void Executor::settle_loss_scaling(StepResult& result) {
  detail::LossScaler& scaler = *state_->loss_scaler;
  result.loss_scale = scaler.scale_of_last_step();
  result.overflowed = scaler.read_found_inf();
  scaler.read_scale();
  if (result.overflowed) {
    state_->momentum_initialised = momentum_started_before_step_;
    last_update_skipped_ = true;
  }
  // The input's gradient went back through the scaled backward: returned unscaled, as a saliency
  // map means it (the scale is a power of two unless set otherwise, so this is exact).
  if (result.input_grad.defined()) {
    const auto inv_scale = static_cast<float>(1.0 / *result.loss_scale);
    float* values = result.input_grad.data<float>();
    for (int64_t i = 0; i < result.input_grad.numel(); ++i) values[i] *= inv_scale;
  }
}

namespace {
class DeviceGradients final : public ParameterGradients {
 public:
  DeviceGradients(Backend& backend, std::map<std::string, Tensor>& grads, detail::LossScaler* scaler)
      : backend_(backend), grads_(grads), scaler_(scaler) {}
  bool overflowed() override { return scaler_ && scaler_->read_found_inf(); }
  void scale(const std::string& key, double factor) override {
    auto grad = grads_.find(key);
    if (grad == grads_.end()) throw_bad_input("scale: no gradient for parameter '" + key + "' in this step");
    Tensor host_factor = Tensor::full({1}, factor);
    Tensor device_factor = backend_.device() == Device::CPU ? host_factor : backend_.from_host(host_factor);
    backend_.multiply_(grad->second, device_factor);
  }

 private:
  Backend& backend_;
  std::map<std::string, Tensor>& grads_;
  detail::LossScaler* scaler_;
};
}  // namespace

// A skipped update leaves the model as the step found it: batch norm's running statistics and
// batch counters, which the forward has already moved (possibly to Inf or NaN), are put back.
// The copies live across steps: a steady-state gated step allocates nothing for them.
void Executor::snapshot_buffers() {
  BufferSnapshot& saved = buffers_before_step_;
  if (saved.tensors.empty() && saved.counters.empty())
    for (const Module& module : model_.modules())
      for (const std::string& key : module.buffers) {
        if (auto on_backend = state_->tensors.find(key); on_backend != state_->tensors.end())
          saved.tensors.emplace_back(key, backend_->empty(on_backend->second.shape()));
        else
          saved.counters.emplace_back(key, 0);  // num_batches_tracked, a host counter
      }
  for (auto& [key, copy] : saved.tensors) backend_->copy(state_->tensors.at(key), copy);
  for (auto& [key, count] : saved.counters) count = model_.tensor(key).data<int64_t>()[0];
}

void Executor::restore_buffers() {
  for (const auto& [key, saved] : buffers_before_step_.tensors) backend_->copy(saved, state_->tensors.at(key));
  for (const auto& [key, count] : buffers_before_step_.counters) model_.tensor(key).data<int64_t>()[0] = count;
}

UpdateAction Executor::gate_update() {
  if (!update_gate_) return UpdateAction::Apply;
  DeviceGradients gradients(*backend_, state_->grads, state_->loss_scaler.get());
  return update_gate_(step_, gradients);
}

TensorMap Executor::optimizer_state() {
  TensorMap momentum;
  if (!state_->momentum_initialised) return momentum;
  for (const std::string& key : model_.parameter_names()) {
    auto buffer = state_->momentum.find(key);
    if (buffer == state_->momentum.end() || !buffer->second.defined()) continue;
    momentum.emplace_back(key, backend_->to_host(buffer->second));
  }
  return momentum;
}

void Executor::load_optimizer_state(const TensorMap& momentum, int64_t steps_done) {
  if (steps_done < 0) throw_bad_input("optimizer state: negative step count " + std::to_string(steps_done));
  std::map<std::string, Tensor> buffers;
  for (const auto& [key, host] : momentum) {
    const auto& names = model_.parameter_names();
    auto param = state_->tensors.find(key);
    if (std::find(names.begin(), names.end(), key) == names.end() || param == state_->tensors.end())
      throw_bad_input("optimizer state: momentum buffer for unknown parameter '" + key + "'");
    if (host.dtype() != DType::F32 || host.shape() != param->second.shape())
      throw_bad_input("optimizer state: momentum buffer '" + key + "' is " + dtype_name(host.dtype()) + " " +
                      shape_string(host.shape()) + ", expected F32 " + shape_string(param->second.shape()));
    buffers[key] = backend_->device() == Device::CPU ? host.clone() : backend_->from_host(host);
  }
  drop_recorded_step();  // it updates the buffers replaced here
  state_->momentum = std::move(buffers);
  // Buffers present mean the momentum started; with momentum 0 there are none, and torch's first
  // step differs from later ones only through the buffers, so a resumed run needs nothing else.
  state_->momentum_initialised = !state_->momentum.empty();
  step_ = steps_done;
}

}  // namespace hookrt
