#include "support/recording_backend.h"

#include <algorithm>
#include <utility>
#include <variant>

#include "hookrt/error.h"

namespace hookrt::testing {

// The CPU backend that runs every op, eager or replayed, and the probe results replays produce.
// Graphs share it with the backend, so a graph stays usable whichever of the two is freed first.
struct RecordingCpuBackend::Shared {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  std::vector<DeferredProbeResults> pending;  // replayed probe runs, not yet sealed
  int replays = 0;
};

// A recording: the ops in the order they were queued, run again by each replay.
class RecordingCpuBackend::Graph final : public StepGraph {
 public:
  Graph(std::shared_ptr<Shared> shared, std::vector<Op> ops, int fail_at_replay)
      : shared_(std::move(shared)), ops_(std::move(ops)), fail_at_replay_(fail_at_replay) {}
  void replay() override {
    if (shared_->replays + 1 == fail_at_replay_)
      throw Error("recording-cpu: replay " + std::to_string(fail_at_replay_) + " fails, as asked");
    ++shared_->replays;
    for (const Op& op : ops_) op(*shared_);
  }

 private:
  std::shared_ptr<Shared> shared_;
  std::vector<Op> ops_;
  int fail_at_replay_;
};

namespace {

// Sealed results are already on the host: finishing only hands them over.
class ReadyBatch final : public DeferredProbeBatch {
 public:
  explicit ReadyBatch(std::vector<DeferredProbeResults> results) : results_(std::move(results)) {}
  std::vector<DeferredProbeResults> finish() override { return std::move(results_); }

 private:
  std::vector<DeferredProbeResults> results_;
};

// Output sizes of a window sliding over `size` positions, as the CPU ops compute them.
int64_t window_count(int64_t size, int64_t window, int stride, int padding) {
  return (size + 2 * padding - window) / stride + 1;
}

void require_rank4(const Tensor& t, const char* op, const char* name) {
  if (t.ndim() != 4)
    throw Error(std::string("recording-cpu: ") + op + ": " + name + " has shape " +
                shape_string(t.shape()) + "; expected rank 4");
}

}  // namespace

RecordingCpuBackend::RecordingCpuBackend(RecordingOptions options)
    : options_(options), shared_(std::make_shared<Shared>()) {}

RecordingCpuBackend::~RecordingCpuBackend() = default;

Backend& RecordingCpuBackend::cpu() { return *shared_->cpu; }

int RecordingCpuBackend::replays() const { return shared_->replays; }

void RecordingCpuBackend::eager() { ++eager_ops_; }

void RecordingCpuBackend::record(const char* op, Op run) {
  const int position = static_cast<int>(ops_.size()) + 1;
  if (position == options_.fail_at_recorded_op)
    throw Error(std::string("recording-cpu: ") + op +
                " could not be recorded (injected failure at recorded op " +
                std::to_string(position) + ")");
  ops_.push_back(std::move(run));
  ++ops_recorded_;
}

void RecordingCpuBackend::refuse_while_recording(const char* op) const {
  if (recording_)
    throw Error(std::string("recording-cpu: ") + op +
                " cannot be recorded: it waits for the device, and a step is being recorded");
}

void RecordingCpuBackend::allocate_if_undefined(Tensor& t, const Shape& shape, DType dtype) {
  if (!t.defined()) t = cpu().empty(shape, dtype);
}

// ---- memory
// ---------------------------------------------------------------------------------------

Tensor RecordingCpuBackend::empty(const Shape& shape, DType dtype, MemoryFormat format) {
  return cpu().empty(shape, dtype, format);
}

// Allocated for real either way; a recording must clear it again on every replay.
Tensor RecordingCpuBackend::zeros(const Shape& shape, DType dtype, MemoryFormat format) {
  Tensor t = cpu().zeros(shape, dtype, format);
  if (recording_) record("zeros", [t](Shared& s) mutable { s.cpu->fill(t, 0.0); });
  return t;
}

void RecordingCpuBackend::copy(const Tensor& src, Tensor& dst) {
  if (!recording_) return cpu().copy(src, dst);
  allocate_if_undefined(dst, src.shape(), src.dtype());
  record("copy", [src, dst](Shared& s) mutable { s.cpu->copy(src, dst); });
}

void RecordingCpuBackend::convert(const Tensor& src, Tensor& dst) {
  if (!recording_) return cpu().convert(src, dst);
  record("convert", [src, dst](Shared& s) mutable { s.cpu->convert(src, dst); });
}

Tensor RecordingCpuBackend::to_host(const Tensor& tensor) {
  refuse_while_recording("to_host");
  return cpu().to_host(tensor);
}

Tensor RecordingCpuBackend::from_host(const Tensor& host) {
  refuse_while_recording("from_host");
  return cpu().from_host(host);
}

void RecordingCpuBackend::synchronize() {
  refuse_while_recording("synchronize");
  cpu().synchronize();
}

// ---- elementwise
// ----------------------------------------------------------------------------------

void RecordingCpuBackend::fill(Tensor& tensor, double value) {
  if (!recording_) {
    eager();
    return cpu().fill(tensor, value);
  }
  record("fill", [tensor, value](Shared& s) mutable { s.cpu->fill(tensor, value); });
}

void RecordingCpuBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  if (!recording_) {
    eager();
    return cpu().add(a, b, out);
  }
  allocate_if_undefined(out, a.shape(), a.dtype());
  record("add", [a, b, out](Shared& s) mutable { s.cpu->add(a, b, out); });
}

void RecordingCpuBackend::accumulate(Tensor& dst, const Tensor& src) {
  if (!recording_) {
    eager();
    return cpu().accumulate(dst, src);
  }
  record("accumulate", [dst, src](Shared& s) mutable { s.cpu->accumulate(dst, src); });
}

void RecordingCpuBackend::multiply_(Tensor& tensor, const Tensor& factor) {
  if (!recording_) {
    eager();
    return cpu().multiply_(tensor, factor);
  }
  record("multiply_", [tensor, factor](Shared& s) mutable { s.cpu->multiply_(tensor, factor); });
}

// ---- convolution
// ----------------------------------------------------------------------------------

void RecordingCpuBackend::conv2d_forward(const Tensor& x, const Tensor& w, Tensor& y,
                                         const Conv2dGeometry& g) {
  if (!recording_) {
    eager();
    return cpu().conv2d_forward(x, w, y, g);
  }
  if (!y.defined()) {
    require_rank4(x, "conv2d_forward", "x");
    require_rank4(w, "conv2d_forward", "w");
    y = cpu().empty({x.size(0), w.size(0), window_count(x.size(2), w.size(2), g.stride, g.padding),
                     window_count(x.size(3), w.size(3), g.stride, g.padding)},
                    x.dtype());
  }
  record("conv2d_forward", [x, w, y, g](Shared& s) mutable { s.cpu->conv2d_forward(x, w, y, g); });
}

// dx and dw must come allocated (the CPU backend's rule): an undefined one fails at replay as it
// would have failed eagerly.
void RecordingCpuBackend::conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx,
                                               const Conv2dGeometry& g) {
  if (!recording_) {
    eager();
    return cpu().conv2d_backward_data(dy, w, dx, g);
  }
  record("conv2d_backward_data",
         [dy, w, dx, g](Shared& s) mutable { s.cpu->conv2d_backward_data(dy, w, dx, g); });
}

void RecordingCpuBackend::conv2d_backward_filter(const Tensor& x, const Tensor& dy, Tensor& dw,
                                                 const Conv2dGeometry& g) {
  if (!recording_) {
    eager();
    return cpu().conv2d_backward_filter(x, dy, dw, g);
  }
  record("conv2d_backward_filter",
         [x, dy, dw, g](Shared& s) mutable { s.cpu->conv2d_backward_filter(x, dy, dw, g); });
}

// ---- batch norm
// -----------------------------------------------------------------------------------

void RecordingCpuBackend::batchnorm_forward(const Tensor& x, const Tensor& weight,
                                            const Tensor& bias, Tensor& running_mean,
                                            Tensor& running_var, Tensor& y, Tensor& save_mean,
                                            Tensor& save_invstd, const BatchNormOptions& o) {
  if (!recording_) {
    eager();
    return cpu().batchnorm_forward(x, weight, bias, running_mean, running_var, y, save_mean,
                                   save_invstd, o);
  }
  allocate_if_undefined(y, x.shape(), x.dtype());
  allocate_if_undefined(save_mean, weight.shape(), x.dtype());
  allocate_if_undefined(save_invstd, weight.shape(), x.dtype());
  record("batchnorm_forward", [=](Shared& s) mutable {
    s.cpu->batchnorm_forward(x, weight, bias, running_mean, running_var, y, save_mean, save_invstd,
                             o);
  });
}

void RecordingCpuBackend::batchnorm_backward(const Tensor& dy, const Tensor& x,
                                             const Tensor& weight, const Tensor& save_mean,
                                             const Tensor& save_invstd, Tensor& dx, Tensor& dweight,
                                             Tensor& dbias, const BatchNormOptions& o) {
  if (!recording_) {
    eager();
    return cpu().batchnorm_backward(dy, x, weight, save_mean, save_invstd, dx, dweight, dbias, o);
  }
  allocate_if_undefined(dx, x.shape(), x.dtype());
  allocate_if_undefined(dweight, weight.shape(), x.dtype());
  allocate_if_undefined(dbias, weight.shape(), x.dtype());
  record("batchnorm_backward", [=](Shared& s) mutable {
    s.cpu->batchnorm_backward(dy, x, weight, save_mean, save_invstd, dx, dweight, dbias, o);
  });
}

// Batch norms in two parts, as the CPU backend splits them.
bool RecordingCpuBackend::splits_batchnorm(DType) const { return true; }  // the CPU backend splits every dtype

void RecordingCpuBackend::batchnorm_forward_coefficients(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                                         Tensor& running_mean, Tensor& running_var, Tensor& save_mean,
                                                         Tensor& save_invstd, Tensor& coefficients,
                                                         const BatchNormOptions& o) {
  if (!recording_) {
    eager();
    return cpu().batchnorm_forward_coefficients(x, weight, bias, running_mean, running_var, save_mean, save_invstd,
                                                coefficients, o);
  }
  allocate_if_undefined(save_mean, weight.shape(), weight.dtype());
  allocate_if_undefined(save_invstd, weight.shape(), weight.dtype());
  allocate_if_undefined(coefficients, {2, x.size(1)}, weight.dtype());
  record("batchnorm_forward_coefficients", [=](Shared& s) mutable {
    s.cpu->batchnorm_forward_coefficients(x, weight, bias, running_mean, running_var, save_mean, save_invstd,
                                          coefficients, o);
  });
}

void RecordingCpuBackend::batchnorm_apply(const Tensor& x, const Tensor& coefficients, Tensor& y) {
  if (!recording_) {
    eager();
    return cpu().batchnorm_apply(x, coefficients, y);
  }
  allocate_if_undefined(y, x.shape(), x.dtype());
  record("batchnorm_apply", [=](Shared& s) mutable { s.cpu->batchnorm_apply(x, coefficients, y); });
}

void RecordingCpuBackend::batchnorm_backward_coefficients(const Tensor& dy, const Tensor& x, const Tensor& weight,
                                                          const Tensor& save_mean, const Tensor& save_invstd,
                                                          Tensor& dweight, Tensor& dbias, Tensor& coefficients,
                                                          const BatchNormOptions& o) {
  if (!recording_) {
    eager();
    return cpu().batchnorm_backward_coefficients(dy, x, weight, save_mean, save_invstd, dweight, dbias, coefficients,
                                                 o);
  }
  allocate_if_undefined(dweight, weight.shape(), weight.dtype());
  allocate_if_undefined(dbias, weight.shape(), weight.dtype());
  allocate_if_undefined(coefficients, {4, x.size(1)}, weight.dtype());
  record("batchnorm_backward_coefficients", [=](Shared& s) mutable {
    s.cpu->batchnorm_backward_coefficients(dy, x, weight, save_mean, save_invstd, dweight, dbias, coefficients, o);
  });
}

void RecordingCpuBackend::batchnorm_dx(const Tensor& dy, const Tensor& x, const Tensor& coefficients, Tensor& dx) {
  if (!recording_) {
    eager();
    return cpu().batchnorm_dx(dy, x, coefficients, dx);
  }
  allocate_if_undefined(dx, dy.shape(), dy.dtype());
  record("batchnorm_dx", [=](Shared& s) mutable { s.cpu->batchnorm_dx(dy, x, coefficients, dx); });
}

// ---- ReLU and pooling
// -----------------------------------------------------------------------------

void RecordingCpuBackend::relu_forward(const Tensor& x, Tensor& y) {
  if (!recording_) {
    eager();
    return cpu().relu_forward(x, y);
  }
  allocate_if_undefined(y, x.shape(), x.dtype());
  record("relu_forward", [x, y](Shared& s) mutable { s.cpu->relu_forward(x, y); });
}

void RecordingCpuBackend::relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  if (!recording_) {
    eager();
    return cpu().relu_backward(y, dy, dx);
  }
  allocate_if_undefined(dx, y.shape(), y.dtype());
  record("relu_backward", [y, dy, dx](Shared& s) mutable { s.cpu->relu_backward(y, dy, dx); });
}

void RecordingCpuBackend::maxpool2d_forward(const Tensor& x, Tensor& y, Tensor& indices,
                                            const Pool2dGeometry& g) {
  if (!recording_) {
    eager();
    return cpu().maxpool2d_forward(x, y, indices, g);
  }
  if (!y.defined() || !indices.defined()) {
    require_rank4(x, "maxpool2d_forward", "x");
    const Shape out{x.size(0), x.size(1), window_count(x.size(2), g.kernel, g.stride, g.padding),
                    window_count(x.size(3), g.kernel, g.stride, g.padding)};
    allocate_if_undefined(y, out, x.dtype());
    allocate_if_undefined(indices, out, DType::I64);
  }
  record("maxpool2d_forward",
         [x, y, indices, g](Shared& s) mutable { s.cpu->maxpool2d_forward(x, y, indices, g); });
}

void RecordingCpuBackend::maxpool2d_backward(const Tensor& dy, const Tensor& indices, Tensor& dx,
                                             const Pool2dGeometry& g) {
  if (!recording_) {
    eager();
    return cpu().maxpool2d_backward(dy, indices, dx, g);
  }
  record("maxpool2d_backward", [dy, indices, dx, g](Shared& s) mutable {
    s.cpu->maxpool2d_backward(dy, indices, dx, g);
  });
}

void RecordingCpuBackend::adaptive_avgpool_forward(const Tensor& x, Tensor& y) {
  if (!recording_) {
    eager();
    return cpu().adaptive_avgpool_forward(x, y);
  }
  if (!y.defined()) {
    require_rank4(x, "adaptive_avgpool_forward", "x");
    y = cpu().empty({x.size(0), x.size(1), 1, 1}, x.dtype());
  }
  record("adaptive_avgpool_forward",
         [x, y](Shared& s) mutable { s.cpu->adaptive_avgpool_forward(x, y); });
}

void RecordingCpuBackend::adaptive_avgpool_backward(const Tensor& dy, Tensor& dx) {
  if (!recording_) {
    eager();
    return cpu().adaptive_avgpool_backward(dy, dx);
  }
  record("adaptive_avgpool_backward",
         [dy, dx](Shared& s) mutable { s.cpu->adaptive_avgpool_backward(dy, dx); });
}

// ---- linear, loss, optimizer
// ----------------------------------------------------------------------

void RecordingCpuBackend::linear_forward(const Tensor& x, const Tensor& w, const Tensor& b,
                                         Tensor& y) {
  if (!recording_) {
    eager();
    return cpu().linear_forward(x, w, b, y);
  }
  if (!y.defined()) y = cpu().empty({x.size(0), w.size(0)}, x.dtype());
  record("linear_forward", [x, w, b, y](Shared& s) mutable { s.cpu->linear_forward(x, w, b, y); });
}

// dx stays undefined when it is (not needed), as the CPU backend leaves it.
void RecordingCpuBackend::linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy,
                                          Tensor& dx, Tensor& dw, Tensor& db) {
  if (!recording_) {
    eager();
    return cpu().linear_backward(x, w, dy, dx, dw, db);
  }
  allocate_if_undefined(dw, w.shape(), x.dtype());
  allocate_if_undefined(db, {w.size(0)}, x.dtype());
  record("linear_backward",
         [=](Shared& s) mutable { s.cpu->linear_backward(x, w, dy, dx, dw, db); });
}

void RecordingCpuBackend::cross_entropy_forward(const Tensor& logits, const Tensor& labels,
                                                Tensor& probs, Tensor& loss) {
  if (!recording_) {
    eager();
    return cpu().cross_entropy_forward(logits, labels, probs, loss);
  }
  allocate_if_undefined(probs, logits.shape(), logits.dtype());
  allocate_if_undefined(loss, {1}, DType::F64);
  record("cross_entropy_forward", [logits, labels, probs, loss](Shared& s) mutable {
    s.cpu->cross_entropy_forward(logits, labels, probs, loss);
  });
}

void RecordingCpuBackend::cross_entropy_backward(const Tensor& probs, const Tensor& labels,
                                                 Tensor& dlogits) {
  if (!recording_) {
    eager();
    return cpu().cross_entropy_backward(probs, labels, dlogits);
  }
  allocate_if_undefined(dlogits, probs.shape(), probs.dtype());
  record("cross_entropy_backward", [probs, labels, dlogits](Shared& s) mutable {
    s.cpu->cross_entropy_backward(probs, labels, dlogits);
  });
}

// The first step with momentum makes the buffer (as the CPU backend would) before it is recorded:
// the replayed update must write into a buffer the caller holds.
void RecordingCpuBackend::sgd_update(Tensor& param, const Tensor& grad, Tensor& momentum_buffer,
                                     bool first_step, const SgdOptions& o, const Tensor& skip_if) {
  if (!recording_) {
    eager();
    return cpu().sgd_update(param, grad, momentum_buffer, first_step, o, skip_if);
  }
  const bool fits = momentum_buffer.defined() && momentum_buffer.shape() == param.shape() &&
                    momentum_buffer.dtype() == param.dtype();
  if (o.momentum != 0.0 && first_step && !fits)
    momentum_buffer = cpu().empty(param.shape(), param.dtype());
  record("sgd_update", [param, grad, momentum_buffer, first_step, o, skip_if](Shared& s) mutable {
    s.cpu->sgd_update(param, grad, momentum_buffer, first_step, o, skip_if);
  });
}

// The loss scaler's ops read their flag and scale when replayed, as the GPU's kernels do.
void RecordingCpuBackend::unscale_gradient_(Tensor& grad, const Tensor& scale, Tensor& found_inf) {
  if (!recording_) {
    eager();
    return cpu().unscale_gradient_(grad, scale, found_inf);
  }
  record("unscale_gradient_",
         [grad, scale, found_inf](Shared& s) mutable { s.cpu->unscale_gradient_(grad, scale, found_inf); });
}

void RecordingCpuBackend::update_loss_scale(Tensor& scale, Tensor& growth_tracker, const Tensor& found_inf,
                                            const LossScaleOptions& o) {
  if (!recording_) {
    eager();
    return cpu().update_loss_scale(scale, growth_tracker, found_inf, o);
  }
  record("update_loss_scale", [scale, growth_tracker, found_inf, o](Shared& s) mutable {
    s.cpu->update_loss_scale(scale, growth_tracker, found_inf, o);
  });
}

// ---- probes
// ---------------------------------------------------------------------------------------

// While recording: the effects' factors are allocated now and filled by each replay, and the run's
// results come later under a ticket, as the GPU's do.
ProbeRunEffects RecordingCpuBackend::run_probes(const ProbeList& probes, Tensor& tensor,
                                                ProbeRecord& record,
                                                const ProbeRunOptions& options) {
  // An input's probes are a run of their own, recorded as any other.
  if (options.probe_input) return run_input_probes_apart(probes, tensor, record, options);
  if (!recording_) {
    eager();
    return cpu().run_probes(probes, tensor, record, options);
  }
  ProbeRunEffects effects;
  if (probes.empty()) {  // the run only writes its tensor
    if (options.produce) run_producing_op(*options.produce, tensor);
    return effects;
  }
  std::vector<Tensor> factors;
  for (const Probe& probe : probes) {
    if (!probe_changes_tensor(probe)) continue;
    effects.changed = true;
    if (!options.want_grad_transforms) continue;
    const bool clamp = std::holds_alternative<probes::Clamp>(probe);
    Tensor factor = cpu().empty(clamp ? tensor.shape() : Shape{1}, DType::F32);
    factors.push_back(factor);
    effects.grad_transforms.push_back(
        GradTransform{clamp ? GradTransform::Kind::Mask : GradTransform::Kind::Scale, factor});
  }
  const uint64_t ticket = next_ticket_;
  this->record("run_probes", [probes, tensor, options, ticket, factors](Shared& s) mutable {
    ProbeRecord scratch;
    ProbeRunEffects ran = s.cpu->run_probes(probes, tensor, scratch, options);
    if (ran.grad_transforms.size() != factors.size())
      throw Error(
          "recording-cpu: a replayed probe run made " + std::to_string(ran.grad_transforms.size()) +
          " gradient transforms where its recording allocated " + std::to_string(factors.size()));
    for (size_t i = 0; i < factors.size(); ++i)
      s.cpu->copy(ran.grad_transforms[i].factor, factors[i]);
    s.pending.push_back(DeferredProbeResults{ticket, std::move(scratch.results), ran.halt});
  });
  ++next_ticket_;
  effects.deferred = ticket;
  return effects;
}

std::unique_ptr<DeferredProbeBatch> RecordingCpuBackend::seal_deferred_probe_results() {
  if (shared_->pending.empty()) return nullptr;
  std::vector<DeferredProbeResults> results = std::move(shared_->pending);
  shared_->pending.clear();
  std::stable_sort(results.begin(), results.end(),
                   [](const DeferredProbeResults& a, const DeferredProbeResults& b) {
                     return a.ticket < b.ticket;
                   });
  return std::make_unique<ReadyBatch>(std::move(results));
}

// ---- recording
// ------------------------------------------------------------------------------------

bool RecordingCpuBackend::begin_step_recording() {
  ++begin_calls_;
  if (options_.refuse_recording) return false;
  if (recording_)
    throw Error("recording-cpu: begin_step_recording while a step is already being recorded");
  recording_ = true;
  ops_.clear();
  ++recordings_begun_;
  return true;
}

std::unique_ptr<StepGraph> RecordingCpuBackend::end_step_recording() {
  if (!recording_) throw Error("recording-cpu: end_step_recording without a recording begun");
  if (options_.fail_at_end)  // still recording: the executor abandons it
    throw Error("recording-cpu: the recording could not be ended (injected failure at its end)");
  recording_ = false;
  ++recordings_ended_;
  return std::make_unique<Graph>(shared_, std::exchange(ops_, {}), options_.fail_at_replay);
}

// The recording's probe runs live in its ops: they go with them.
void RecordingCpuBackend::abandon_step_recording() noexcept {
  recording_ = false;
  ops_.clear();
}

}  // namespace hookrt::testing
