// Backend's non-virtual conveniences (see hookrt/backend.h).
#include "hookrt/backend.h"

#include <string>

#include "hookrt/error.h"

namespace hookrt {

double Backend::cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& probs) {
  Tensor loss;
  cross_entropy_forward(logits, labels, probs, loss);
  return to_host(loss).item(0);
}

Tensor Backend::converted(const Tensor& t, DType dtype, MemoryFormat format) {
  if (t.dtype() == dtype && t.is_contiguous(format)) return t.to_memory_format(format);  // relabelled, not copied
  Tensor out = empty(t.shape(), dtype, format);
  convert(t, out);
  return out;
}

void Backend::run_producing_op(const ProducingOp& op, Tensor& out) {
  switch (op.kind) {
    case ProducingOp::Kind::ReluForward: relu_forward(op.a, out); return;
    case ProducingOp::Kind::ReluBackward: relu_backward(op.a, op.b, out); return;
    case ProducingOp::Kind::AddReluForward:
      add(op.a, op.b, out);
      relu_forward(out, out);
      return;
    case ProducingOp::Kind::BatchNormApply: batchnorm_apply(op.a, op.coefficients, out); return;
    case ProducingOp::Kind::BatchNormDx: batchnorm_dx(op.a, op.b, op.coefficients, out); return;
    case ProducingOp::Kind::BatchNormApplyRelu:
      batchnorm_apply(op.a, op.coefficients, out);
      relu_forward(out, out);
      return;
    case ProducingOp::Kind::BatchNormApplyAddRelu:
      batchnorm_apply(op.a, op.coefficients, out);
      add(out, op.b, out);
      relu_forward(out, out);
      return;
    case ProducingOp::Kind::BatchNormReluDx: {
      const Tensor dy = batchnorm_dy_through_relu(op.a, op.b, coefficient_rows(op.coefficients, 4, 2, "batchnorm_relu_dx"));
      batchnorm_dx(dy, op.b, coefficient_rows(op.coefficients, 0, 4, "batchnorm_relu_dx"), out);
      return;
    }
  }
  throw Error("internal: unknown producing op");
}

// Rows [first, first + count) of a batch norm's (6, C) coefficients, as a tensor sharing its
// storage.
Tensor Backend::coefficient_rows(const Tensor& coefficients, int64_t first, int64_t count, const char* op) {
  if (!coefficients.defined() || coefficients.ndim() != 2 || coefficients.size(0) != 6)
    throw Error(std::string(op) + ": coefficients has shape " +
                (coefficients.defined() ? shape_string(coefficients.shape()) : std::string("(undefined)")) +
                "; expected (6, C): a batch norm's backward rows, then its forward's");
  const int64_t channels = coefficients.size(1);
  return Tensor(coefficients.storage(), Shape{count, channels}, coefficients.dtype(),
                coefficients.byte_offset() + static_cast<size_t>(first * channels) * dtype_size(coefficients.dtype()));
}

// What a ReLU's backward sends a batch norm whose output it computed: relu_dy where
// relu(batchnorm_apply(x)) > 0, that output computed again into the temporary it returns.
Tensor Backend::batchnorm_dy_through_relu(const Tensor& relu_dy, const Tensor& x, const Tensor& forward_coefficients) {
  Tensor dy = empty_like(x);
  batchnorm_apply(x, forward_coefficients, dy);
  relu_forward(dy, dy);
  relu_backward(dy, relu_dy, dy);  // elementwise: each value of y is read before its dx is written
  return dy;
}

void Backend::sgd_update_all(const std::vector<SgdTensors>& tensors, bool first_step, const SgdOptions& o,
                             const Tensor& skip_if) {
  for (const SgdTensors& t : tensors) sgd_update(*t.param, *t.grad, *t.momentum_buffer, first_step, o, skip_if);
}

void Backend::unscale_gradients_(const std::vector<Tensor*>& grads, const Tensor& scale, Tensor& found_inf) {
  for (Tensor* grad : grads) unscale_gradient_(*grad, scale, found_inf);
}

bool Backend::splits_batchnorm(DType) const { return false; }

[[noreturn]] static void no_split_batchnorm(const Backend& backend, const char* op) {
  throw Error(std::string(op) + ": backend " + backend.name() +
              " runs batch norm whole (splits_batchnorm is false for every dtype)");
}

void Backend::batchnorm_forward_coefficients(const Tensor&, const Tensor&, const Tensor&, Tensor&, Tensor&, Tensor&,
                                             Tensor&, Tensor&, const BatchNormOptions&) {
  no_split_batchnorm(*this, "batchnorm_forward_coefficients");
}

void Backend::batchnorm_apply(const Tensor&, const Tensor&, Tensor&) { no_split_batchnorm(*this, "batchnorm_apply"); }

void Backend::batchnorm_backward_coefficients(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                              const Tensor&, Tensor&, Tensor&, Tensor&, const BatchNormOptions&) {
  no_split_batchnorm(*this, "batchnorm_backward_coefficients");
}

void Backend::batchnorm_dx(const Tensor&, const Tensor&, const Tensor&, Tensor&) {
  no_split_batchnorm(*this, "batchnorm_dx");
}

void Backend::batchnorm_relu_backward_coefficients(const Tensor& relu_dy, const Tensor& x,
                                                   const Tensor& forward_coefficients, const Tensor& weight,
                                                   const Tensor& save_mean, const Tensor& save_invstd, Tensor& dweight,
                                                   Tensor& dbias, Tensor& coefficients, const BatchNormOptions& o) {
  const char* op = "batchnorm_relu_backward_coefficients";
  if (!coefficients.defined()) coefficients = empty(Shape{6, weight.numel()}, weight.dtype());
  const Tensor dy = batchnorm_dy_through_relu(relu_dy, x, forward_coefficients);
  Tensor backward_rows = coefficient_rows(coefficients, 0, 4, op);
  batchnorm_backward_coefficients(dy, x, weight, save_mean, save_invstd, dweight, dbias, backward_rows, o);
  Tensor forward_rows = coefficient_rows(coefficients, 4, 2, op);
  copy(forward_coefficients, forward_rows);
}

ProbeRunEffects Backend::run_input_probes_apart(const ProbeList& probes, Tensor& tensor, ProbeRecord& record,
                                               const ProbeRunOptions& options) {
  if (!options.probe_input) return run_probes(probes, tensor, record, options);
  const InputProbeRun& run = *options.probe_input;
  if (!options.produce || run.record == nullptr || run.input < 0 || run.input > 1)
    throw Error("internal: probes on a producing op's input need the op, an input (0 or 1) and a record");
  Tensor input = run.input == 0 ? options.produce->a : options.produce->b;
  if (!input.defined())
    throw Error("internal: probes on input " + std::to_string(run.input) + " of a producing op that has none");
  ProbeRunOptions input_options;
  input_options.channel_axis = run.channel_axis;
  const ProbeRunEffects input_effects = run_probes(run.probes, input, *run.record, input_options);
  ProbeRunOptions rest = options;
  rest.probe_input.reset();
  ProbeRunEffects effects = run_probes(probes, tensor, record, rest);
  effects.input_deferred = input_effects.deferred;
  return effects;
}

std::unique_ptr<StepGraph> Backend::end_step_recording() {
  throw Error("internal: backend " + name() + " records no steps, so there is no recording to end");
}

}  // namespace hookrt
