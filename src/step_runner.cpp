#include "step_runner.h"

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace hookrt::detail {

StepRunner::StepRunner(Model& model, Backend& backend, DeviceState& state, const ExecutorOptions& options,
                       int64_t step, bool backward, RecordSink sink)
    : model_(model),
      backend_(backend),
      state_(state),
      options_(options),
      memory_format_(step_memory_format(options, backend.device())),
      tape_(backend, backward),
      hooks_(backend, model.hooks(), std::move(sink), step) {
  tape_.on_write_in_place([this](const Tensor& grad) { hooks_.tensor_written(grad); });
}

int StepRunner::forward(const Tensor& input, bool input_requires_grad) {
  const int x = tape_.add_value(input, input_requires_grad);
  return run_module(model_.module(""), x);
}

// A tensor is handed over unwritten only to a probe run that comes first: then the backend may
// write and probe it in one pass. A hook that may change a forward output works on a copy of it,
// so there the output is written first.
bool StepRunner::epilogue_probes(HookWhen when, const std::string& module) const {
  if (!options_.probes_in_epilogues || !hooks_.probes_first(when, module)) return false;
  return when != HookWhen::Forward || !hooks_.may_change(when, module);
}

// A batch norm runs in two parts where the backend says they cost no more than the whole: its
// output and its dx are then written by producing ops, which probe runs may take (probes in their
// epilogues, and on the convolution output the apply reads), and which the ReLU after it may
// take with its own (the output then never written).
bool StepRunner::splits_batchnorm(DType activations) const { return backend_.splits_batchnorm(activations); }

// A convolution's output is read next by the batch norm after it, where that one splits: its
// forward hooks may then wait for the batch norm's elementwise pass (park_forward).
bool StepRunner::batchnorm_reads_conv_output(const Module& conv, const Module& next, int x) const {
  return options_.probes_in_epilogues && conv.kind == ModuleKind::Conv2d && next.kind == ModuleKind::BatchNorm2d &&
         splits_batchnorm(compute_dtype(tape_.value(x).data.dtype()));
}

// ---- module calls and hooks ----

int StepRunner::run_module(const Module& module, int x, ReadByOp read_by_op) {
  const HookSite site{module.path, module.kind, calls_[module.path]++, ""};
  std::set<uint64_t> called;
  try {
    x = forward_pre_hooks(site, x);
    const bool backward_hooked = tape_.enabled() && (hooks_.any(HookWhen::Backward, module.path) ||
                                                     hooks_.any(HookWhen::BackwardPre, module.path));
    const bool wrap = backward_hooked && value(x).requires_grad;
    auto saved_grad_output = std::make_shared<Tensor>();
    const int x_in = wrap ? wrap_input(site, x, saved_grad_output, read_by_op.grad_input) : x;
    int y = body(module, x_in, read_by_op);
    y = forward_hooks(site, x_in, y, called, read_by_op.output);
    if (!backward_hooked) return y;
    // Output wrapper: complete grad_output -> backward_pre hooks -> (no-grad input: backward hooks now).
    const int y_out = tape_.add_value(value(y).data, value(y).requires_grad);
    tape_.record([this, site, y, y_out, saved_grad_output, input_has_grad = wrap] {
      Tensor grad_output = take_grad(y_out);
      if (!grad_output.defined()) return;
      if (hooks_.may_change(HookWhen::BackwardPre, site.module) ||
          (!input_has_grad && hooks_.may_change(HookWhen::Backward, site.module)))
        grad_output = tape_.own_grad(std::move(grad_output));
      hooks_.fire(HookWhen::BackwardPre, site, site.module, grad_output, "grad_output", nullptr);
      if (input_has_grad) {
        *saved_grad_output = grad_output;  // shared: the body only reads it
      } else {
        // As PyTorch: with no input needing grad, backward hooks fire at once with grad_input None.
        Tensor no_grad_input;
        hooks_.fire_backward(site, no_grad_input, grad_output);
      }
      tape_.accumulate_grad(y, std::move(grad_output));
    });
    return y_out;
  } catch (...) {
    unwritten_output_.reset();
    unwritten_sum_.reset();
    unwritten_batchnorm_.reset();
    hooks_.fire_always_call(site, value(x).data, called);
    throw;
  }
}

int StepRunner::wrap_input(const HookSite& site, int x, std::shared_ptr<Tensor> saved_grad_output,
                           bool grad_read_by_op) {
  const int x_in = tape_.add_value(value(x).data, true);
  grad_read_by_op = grad_read_by_op && options_.probes_in_epilogues;
  // Recorded before the body, so it runs after the body's backward: grad_input is complete.
  tape_.record([this, site, x, x_in, saved_grad_output, grad_read_by_op] {
    UnwrittenGrad grad_input = tape_.take_unwritten_grad(x_in);
    if (!grad_input.grad.defined()) return;
    Tensor grad_output = std::move(*saved_grad_output);
    *saved_grad_output = Tensor();
    if (hooks_.may_change(HookWhen::Backward, site.module)) {  // hooks that may write what they get
      grad_input.grad = tape_.own_grad(std::move(grad_input.grad));
      grad_output = tape_.own_grad(std::move(grad_output));
    }
    if (grad_output.defined())
      hooks_.fire_backward(site, grad_input.grad, grad_output, std::move(grad_input.producer), grad_read_by_op);
    else if (grad_input.producer)
      hooks_.write(*grad_input.producer, grad_input.grad);
    tape_.accumulate_grad(x, std::move(grad_input.grad));
  });
  return x_in;
}

int StepRunner::forward_pre_hooks(const HookSite& site, int x) {
  if (!hooks_.any(HookWhen::ForwardPre, site.module)) return x;
  write_unwritten_sum();        // the hooks see the input
  write_unwritten_batchnorm();  // (a ReLU's: a batch norm's output)
  hooks_.run_parked();          // which may be the parked tensor
  auto fire = [&](Tensor& t, std::vector<GradTransform>* transforms) {
    hooks_.fire(HookWhen::ForwardPre, site, site.module, t, "input", transforms);
  };
  if (!hooks_.may_change(HookWhen::ForwardPre, site.module)) {
    Tensor t = value(x).data;
    fire(t, nullptr);
    return x;
  }
  return through_changing_hooks(x, fire);
}

// An output that a producing op reads next need not be read for its probes before: they may run
// in that op's read of it (park_forward), so that a probed batch norm output costs no read of
// its own.
int StepRunner::forward_hooks(const HookSite& site, int x, int y, std::set<uint64_t>& called,
                              bool output_read_by_op) {
  std::optional<ProducingOp> produce = std::exchange(unwritten_output_, std::nullopt);
  const bool hooked = hooks_.any(HookWhen::Forward, site.module);
  const bool changing = hooked && hooks_.may_change(HookWhen::Forward, site.module);
  if (produce && (!hooked || changing)) {  // not what epilogue_probes allowed: write it now
    hooks_.write(*produce, value(y).data);
    produce.reset();
  }
  if (!hooked) return y;
  if (output_read_by_op && !produce && options_.probes_in_epilogues && hooks_.can_park(HookWhen::Forward, site.module)) {
    hooks_.park_forward(site, value(y).data, called);
    return y;
  }
  const Tensor input = value(x).data;
  if (!changing) {
    Tensor t = value(y).data;
    hooks_.fire_forward(site, input, t, nullptr, called, std::move(produce));
    return y;
  }
  return through_changing_hooks(y, [&](Tensor& t, std::vector<GradTransform>* transforms) {
    hooks_.fire_forward(site, input, t, transforms, called);
  });
}

// Hooks that may change a tensor act on a copy (a PyTorch hook returning a new tensor); backward
// sends the gradient through the probes' transforms (clamp's mask, clipnorm's scale) in reverse.
template <class Fire>
int StepRunner::through_changing_hooks(int x, Fire fire) {
  Tensor copy = backend_.empty_like(value(x).data);
  backend_.copy(value(x).data, copy);
  const bool needs_grad = value(x).requires_grad;
  std::vector<GradTransform> transforms;
  fire(copy, needs_grad ? &transforms : nullptr);
  const int y = tape_.add_value(copy, needs_grad);
  tape_.record([this, x, y, transforms = std::move(transforms)] {
    Tensor g = take_grad(y);
    if (!g.defined()) return;
    if (!transforms.empty()) {
      // g may be shared with a saved grad_output: transform a copy.
      Tensor transformed = backend_.empty_like(g);
      backend_.copy(g, transformed);
      for (auto it = transforms.rbegin(); it != transforms.rend(); ++it) backend_.multiply_(transformed, it->factor);
      g = transformed;
    }
    tape_.accumulate_grad(x, std::move(g));
  });
  return y;
}

// A gradient computed in autocast's dtype or the step's memory format reaches the F32 NCHW
// parameter through the cast's backward. Grad hooks see it unscaled, where GradScaler.unscale_
// leaves it for PyTorch's gradient clipping and inspection, so that their statistics and clipnorm
// mean what they mean in an unscaled run.
//
// A gradient no grad hook sees is unscaled with the others once backward ends (one launch on the
// GPU, not one per parameter): nothing reads it before then.
void StepRunner::parameter_grad(const std::string& key, Tensor grad) {
  const Tensor& p = param(key);
  grad = backend_.converted(grad, p.dtype(), p.memory_format());
  if (state_.loss_scaler) {
    if (hooks_.any(HookWhen::Grad, key))
      state_.loss_scaler->unscale(grad);
    else
      unscale_later_.push_back(grad);
  }
  const std::string& owner = model_.owner_of(key);
  const HookSite site{owner, model_.module(owner).kind, 0, key};
  hooks_.fire(HookWhen::Grad, site, key, grad, "grad", nullptr);
  state_.grads[key] = std::move(grad);
}

void StepRunner::unscale_deferred_gradients() {
  if (unscale_later_.empty()) return;
  std::vector<Tensor*> grads;
  grads.reserve(unscale_later_.size());
  for (Tensor& grad : unscale_later_) grads.push_back(&grad);
  state_.loss_scaler->unscale_all(grads);
  unscale_later_.clear();
}

int StepRunner::cast(int x, DType dtype, MemoryFormat format) {
  const Tensor input = value(x).data;
  if (input.dtype() == dtype && input.is_contiguous(format)) return x;
  const int out = tape_.add_value(backend_.converted(input, dtype, format), value(x).requires_grad);
  tape_.record([this, x, out, from = input.dtype(), from_format = input.memory_format()] {
    Tensor dy = take_grad(out);
    if (dy.defined()) tape_.accumulate_grad(x, backend_.converted(dy, from, from_format));
  });
  return out;
}

Tensor StepRunner::autocast_param(const std::string& key) {
  const Tensor& p = param(key);
  const DType dtype = compute_dtype(p.dtype());
  const MemoryFormat format = compute_format(p);
  if (p.dtype() == dtype && p.is_contiguous(format)) return p;
  Tensor& cast = param_casts_[key];
  if (!cast.defined()) cast = backend_.converted(p, dtype, format);
  return cast;
}

// ---- module bodies, as torchvision's forward() ----

// The op that writes a ReLU's output from its input: relu(input), or from what the input was to be
// made of where it was left unwritten for this ReLU (a residual sum, a batch norm's output, or
// both: a block's bn2 and its residual add), which it then no longer is.
StepRunner::ReluOp StepRunner::relu_op(const Tensor& input) {
  const auto is = [](const Tensor& a, const Tensor& b) {
    return a.defined() && a.storage() == b.storage() && a.byte_offset() == b.byte_offset();
  };
  const auto unwritten_batchnorm = [&](const Tensor& t) -> std::optional<UnwrittenBatchNorm> {
    if (!unwritten_batchnorm_ || !is(unwritten_batchnorm_->y, t)) return std::nullopt;
    return std::exchange(unwritten_batchnorm_, std::nullopt);
  };
  if (unwritten_sum_ && is(unwritten_sum_->sum, input)) {
    const UnwrittenSum sum = *std::exchange(unwritten_sum_, std::nullopt);
    if (const std::optional<UnwrittenBatchNorm> bn = unwritten_batchnorm(sum.a))
      return {ProducingOp{ProducingOp::Kind::BatchNormApplyAddRelu, bn->x, sum.b, bn->coefficients}};
    return {ProducingOp{ProducingOp::Kind::AddReluForward, sum.a, sum.b, Tensor()}};
  }
  if (const std::optional<UnwrittenBatchNorm> bn = unwritten_batchnorm(input))
    return {ProducingOp{ProducingOp::Kind::BatchNormApplyRelu, bn->x, Tensor(), bn->coefficients},
            bn->takes_relu_backward};
  return {ProducingOp{ProducingOp::Kind::ReluForward, input, Tensor(), Tensor()}};
}

void StepRunner::write_unwritten_batchnorm() {
  if (!unwritten_batchnorm_) return;
  UnwrittenBatchNorm bn = *std::exchange(unwritten_batchnorm_, std::nullopt);
  hooks_.write(ProducingOp{ProducingOp::Kind::BatchNormApply, bn.x, Tensor(), bn.coefficients}, bn.y);
}

int StepRunner::body(const Module& module, int x, const ReadByOp& read_by_op) {
  switch (module.kind) {
    case ModuleKind::ResNet: return resnet(module, x);
    case ModuleKind::Sequential: return sequential(module, x);
    case ModuleKind::BasicBlock: return basic_block(module, x);
    case ModuleKind::Conv2d: return conv2d(module, x);
    case ModuleKind::BatchNorm2d: return batchnorm2d(module, x, read_by_op.relu);
    case ModuleKind::ReLU: return relu(module, x);
    case ModuleKind::MaxPool2d: return maxpool2d(module, x);
    case ModuleKind::AdaptiveAvgPool2d: return adaptive_avgpool2d(x);
    case ModuleKind::Linear: return linear(module, x);
  }
  throw Error("internal: module '" + module.path + "' has an unknown kind");
}

int StepRunner::resnet(const Module& module, int x) {
  const std::vector<std::string>& children = module.children;
  for (size_t i = 0; i < children.size(); ++i) {
    if (children[i] == "fc") x = flatten(x);  // torch.flatten(x, 1) between avgpool and fc
    // The stem: bn1's output goes to the ReLU, and the ReLU's backward reads maxpool's grad_input.
    ReadByOp read_by_op;
    const Module& child = model_.module(children[i]);
    if (i + 1 < children.size()) {
      const Module& next = model_.module(children[i + 1]);
      read_by_op.output = next.kind == ModuleKind::ReLU || batchnorm_reads_conv_output(child, next, x);
      if (next.kind == ModuleKind::ReLU) read_by_op.relu = &next;
    }
    read_by_op.grad_input = i > 0 && model_.module(children[i - 1]).kind == ModuleKind::ReLU;
    x = run_module(child, x, read_by_op);
  }
  return x;
}

int StepRunner::sequential(const Module& module, int x) {
  const std::vector<std::string>& children = module.children;
  for (size_t i = 0; i < children.size(); ++i) {
    const Module& child = model_.module(children[i]);
    ReadByOp read_by_op;  // a downsample's convolution, read by its batch norm
    read_by_op.output = i + 1 < children.size() && batchnorm_reads_conv_output(child, model_.module(children[i + 1]), x);
    x = run_module(child, x, read_by_op);
  }
  return x;
}

int StepRunner::basic_block(const Module& module, int x) {
  const std::string& p = module.path;
  const Module& conv1 = model_.module(p + ".conv1");
  const Module& conv2 = model_.module(p + ".conv2");
  const Module& bn1 = model_.module(p + ".bn1");
  const Module& bn2 = model_.module(p + ".bn2");
  const Module& relu = model_.module(p + ".relu");  // called twice
  int out = run_module(conv1, x, {.output = batchnorm_reads_conv_output(conv1, bn1, x)});
  out = run_module(bn1, out, {.output = true, .relu = &relu});
  out = run_module(relu, out);
  // conv2's grad_input is read by the ReLU's backward.
  out = run_module(conv2, out, {.output = batchnorm_reads_conv_output(conv2, bn2, out), .grad_input = true});
  out = run_module(bn2, out, {.output = true, .relu = &relu});  // through the residual add
  const int identity = model_.has_module(p + ".downsample") ? run_module(model_.module(p + ".downsample"), x) : x;
  out = add(out, identity, !hooks_.reads_forward_input(relu.path));
  const int y = run_module(relu, out);
  write_unwritten_sum();        // a no-op (the ReLU took the sum), so that no path leaves it unwritten
  write_unwritten_batchnorm();  // a no-op likewise (the ReLU computed bn2's output)
  hooks_.run_parked();          // a no-op likewise (the ReLU read bn2's output)
  return y;
}

void StepRunner::write_unwritten_sum() {
  if (!unwritten_sum_) return;
  write_unwritten_batchnorm();  // the add, not the ReLU, reads bn2's output
  hooks_.run_parked();  // likewise: its probes run on their own
  UnwrittenSum s = std::move(*unwritten_sum_);
  unwritten_sum_.reset();
  backend_.add(s.a, s.b, s.sum);
}

static int64_t conv_out_size(int64_t in, int kernel, int stride, int padding) {
  return (in + 2 * padding - kernel) / stride + 1;
}

int StepRunner::conv2d(const Module& module, int x) {
  x = autocast(x);
  const Tensor input = value(x).data;
  if (input.ndim() != 4 || input.size(1) != module.in)
    throw_bad_input("'" + module.path + "' expects (N, " + std::to_string(module.in) + ", H, W) input, got " +
                    shape_string(input.shape()));
  const int64_t p = conv_out_size(input.size(2), module.kernel, module.stride, module.padding);
  const int64_t q = conv_out_size(input.size(3), module.kernel, module.stride, module.padding);
  if (p < 1 || q < 1)
    throw_bad_input("input " + shape_string(input.shape()) + " is too small for '" + module.path + "'");
  const std::string key = module.path + ".weight";
  const Tensor w = autocast_param(key);
  const Conv2dGeometry g{module.stride, module.padding};
  Tensor y = output_like({input.size(0), module.out, p, q}, input.dtype(), input.memory_format());
  backend_.conv2d_forward(input, w, y, g);
  const int out = tape_.add_value(y, true);
  const bool input_grad = value(x).requires_grad;
  tape_.record([this, x, out, input, w, g, key, input_grad] {
    Tensor dy = take_grad(out);
    if (!dy.defined()) return;
    if (input_grad) {
      Tensor dx = output_like(input.shape(), input.dtype(), input.memory_format());
      backend_.conv2d_backward_data(dy, w, dx, g);
      tape_.accumulate_grad(x, std::move(dx));
    }
    Tensor dw = output_like(w.shape(), w.dtype(), w.memory_format());
    backend_.conv2d_backward_filter(input, dy, dw, g);
    parameter_grad(key, std::move(dw));
  });
  return out;
}

int StepRunner::batchnorm2d(const Module& module, int x, const Module* output_relu) {
  const Tensor input = value(x).data;
  if (input.ndim() != 4 || input.size(1) != module.out)
    throw_bad_input("'" + module.path + "' expects (N, " + std::to_string(module.out) + ", H, W) input, got " +
                    shape_string(input.shape()));
  const bool training = options_.mode == Mode::Train;
  if (training && input.size(0) * input.size(2) * input.size(3) < 2)
    throw_bad_input("'" + module.path + "' in train mode needs more than one value per channel, got input " +
                    shape_string(input.shape()) + " (as PyTorch; use a larger batch or --mode eval)");
  const std::string& p = module.path;
  SavedBatchNorm saved{x, input, param(p + ".weight"), output_like({module.out}, DType::F32),
                       output_like({module.out}, DType::F32), BatchNormOptions{}, p, value(x).requires_grad,
                       splits_batchnorm(input.dtype()), false, Tensor()};
  saved.options.mode = training ? BatchNormMode::Training : BatchNormMode::Inference;
  saved.grad_to_probes = saved.split && epilogue_probes(HookWhen::Backward, p);
  Tensor y = output_like(input.shape(), input.dtype(), input.memory_format());
  batchnorm_forward(saved, y, output_relu);
  if (training) ++model_.tensor(p + ".num_batches_tracked").data<int64_t>()[0];
  const int out = tape_.add_value(y, true);
  tape_.record([this, out, saved = std::move(saved)] {
    if (value(out).grad_producer && batchnorm_takes_relu_backward_.contains(out)) {
      const UnwrittenGrad relu_backward = tape_.take_unwritten_grad(out);
      return batchnorm_backward(saved, relu_backward.producer->b, true);  // ReluBackward's dy
    }
    Tensor dy = take_grad(out);
    if (dy.defined()) batchnorm_backward(saved, dy);
  });
  return out;
}

// Whole, or split: the per-channel part now, and the apply left to the module's forward hooks
// (epilogue_probes), or to the ReLU after it where nothing else sees the output (see
// fuses_with_relu), or written at once, where it may probe the convolution's output it reads.
void StepRunner::batchnorm_forward(SavedBatchNorm& s, Tensor& y, const Module* output_relu) {
  const Tensor& bias = param(s.path + ".bias");
  Tensor& running_mean = state_.tensors.at(s.path + ".running_mean");
  Tensor& running_var = state_.tensors.at(s.path + ".running_var");
  if (!s.split) {
    backend_.batchnorm_forward(s.input, s.weight, bias, running_mean, running_var, y, s.save_mean, s.save_invstd,
                               s.options);
    return;
  }
  Tensor coefficients = output_like({2, s.weight.numel()}, s.weight.dtype());
  backend_.batchnorm_forward_coefficients(s.input, s.weight, bias, running_mean, running_var, s.save_mean,
                                          s.save_invstd, coefficients, s.options);
  s.forward_coefficients = coefficients;
  ProducingOp op{ProducingOp::Kind::BatchNormApply, s.input, Tensor(), coefficients};
  if (epilogue_probes(HookWhen::Forward, s.path)) {
    unwritten_output_ = std::move(op);
  } else if (output_relu && fuses_with_relu(s, *output_relu)) {
    const bool takes_relu_backward = s.options.mode == BatchNormMode::Training &&
                                     !hooks_.any(HookWhen::Backward, s.path) &&
                                     !hooks_.any(HookWhen::BackwardPre, s.path);
    unwritten_batchnorm_ = UnwrittenBatchNorm{y, s.input, coefficients, takes_relu_backward};
  } else {
    hooks_.write(op, y);
  }
}

// A batch norm's output that nothing but its ReLU reads (no hook on the batch norm's output or
// the ReLU's input) need not be written: the ReLU computes relu(x * scale + shift) itself. Where
// hooks wait for the convolution's output, the batch norm's pass probes it instead, as before.
bool StepRunner::fuses_with_relu(const SavedBatchNorm& s, const Module& relu) const {
  return !hooks_.any(HookWhen::Forward, s.path) && !hooks_.any(HookWhen::ForwardPre, relu.path) &&
         !hooks_.reads_forward_input(relu.path) && !hooks_.parked_on(s.input);
}

// dweight and dbias, and dx into the input's gradient: split, dx is left to the module's backward
// hooks (grad_to_probes) or written at once, and not computed where the input needs no gradient.
// through_relu: dy is the gradient of the ReLU that computed this batch norm's output, which left
// its mask to this backward (batchnorm_takes_relu_backward_).
void StepRunner::batchnorm_backward(const SavedBatchNorm& s, const Tensor& dy, bool through_relu) {
  Tensor dweight = output_like(s.weight.shape(), s.weight.dtype());
  Tensor dbias = output_like(s.weight.shape(), s.weight.dtype());
  if (!s.split) {
    Tensor dx = output_like(s.input.shape(), s.input.dtype(), s.input.memory_format());
    backend_.batchnorm_backward(dy, s.input, s.weight, s.save_mean, s.save_invstd, dx, dweight, dbias, s.options);
    if (s.input_grad) tape_.accumulate_grad(s.x, std::move(dx));
  } else {
    Tensor coefficients = output_like({through_relu ? 6 : 4, s.weight.numel()}, s.weight.dtype());
    if (through_relu)
      backend_.batchnorm_relu_backward_coefficients(dy, s.input, s.forward_coefficients, s.weight, s.save_mean,
                                                    s.save_invstd, dweight, dbias, coefficients, s.options);
    else
      backend_.batchnorm_backward_coefficients(dy, s.input, s.weight, s.save_mean, s.save_invstd, dweight, dbias,
                                               coefficients, s.options);
    if (s.input_grad) {
      const bool training = s.options.mode == BatchNormMode::Training;
      // Inference's dx reads dy alone.
      ProducingOp op{ProducingOp::Kind::BatchNormDx, dy, training ? s.input : Tensor(), coefficients};
      if (through_relu) op = ProducingOp{ProducingOp::Kind::BatchNormReluDx, dy, s.input, coefficients};
      Tensor dx = output_like(s.input.shape(), s.input.dtype(), s.input.memory_format());
      if (s.grad_to_probes) {
        tape_.accumulate_unwritten_grad(s.x, std::move(dx), std::move(op));
      } else {
        hooks_.write(op, dx);
        tape_.accumulate_grad(s.x, std::move(dx));
      }
    }
  }
  parameter_grad(s.path + ".weight", std::move(dweight));
  parameter_grad(s.path + ".bias", std::move(dbias));
}

// With probes first on its output (or on its input's gradient, where backward hooks wrap it), the
// ReLU leaves the tensor unwritten for them: see epilogue_probes. A block's second ReLU may get its
// input as an unwritten residual sum: it then computes relu(a + b) from the sum's operands.
int StepRunner::relu(const Module& module, int x) {
  const Tensor input = value(x).data;
  ReluOp op = relu_op(input);
  write_unwritten_sum();        // not this ReLU's input after all
  write_unwritten_batchnorm();  // likewise
  Tensor y = output_like(input.shape(), input.dtype(), input.memory_format());
  if (epilogue_probes(HookWhen::Forward, module.path))
    unwritten_output_ = std::move(op.op);
  else
    hooks_.write(op.op, y);
  const int out = tape_.add_value(y, value(x).requires_grad);
  const bool grad_to_probes = epilogue_probes(HookWhen::Backward, module.path);
  // With no backward hook on the ReLU, x is the batch norm's output itself (no wrapper between).
  const bool to_batchnorm = op.backward_to_batchnorm && !hooks_.any(HookWhen::Backward, module.path) &&
                            !hooks_.any(HookWhen::BackwardPre, module.path);
  if (to_batchnorm) batchnorm_takes_relu_backward_.insert(x);
  tape_.record([this, x, out, y, grad_to_probes, to_batchnorm] {
    Tensor dy = take_grad(out);
    if (!dy.defined()) return;
    Tensor dx = output_like(y.shape(), y.dtype(), y.memory_format());
    if (grad_to_probes || to_batchnorm) {
      tape_.accumulate_unwritten_grad(x, std::move(dx), ProducingOp{ProducingOp::Kind::ReluBackward, y, dy, Tensor()});
      return;
    }
    hooks_.write(ProducingOp{ProducingOp::Kind::ReluBackward, y, dy, Tensor()}, dx);  // may probe dy as it reads it
    tape_.accumulate_grad(x, std::move(dx));
  });
  return out;
}

int StepRunner::maxpool2d(const Module& module, int x) {
  const Tensor input = value(x).data;
  const Pool2dGeometry g{module.kernel, module.stride, module.padding};
  const int64_t p = conv_out_size(input.size(2), g.kernel, g.stride, g.padding);
  const int64_t q = conv_out_size(input.size(3), g.kernel, g.stride, g.padding);
  if (p < 1 || q < 1) throw_bad_input("input " + shape_string(input.shape()) + " is too small for '" + module.path + "'");
  Tensor y = output_like({input.size(0), input.size(1), p, q}, input.dtype(), input.memory_format());
  Tensor indices = output_like(y.shape(), DType::I64, y.memory_format());
  backend_.maxpool2d_forward(input, y, indices, g);
  const int out = tape_.add_value(y, value(x).requires_grad);
  const Shape input_shape = input.shape();
  tape_.record([this, x, out, indices, g, input_shape, format = input.memory_format()] {
    Tensor dy = take_grad(out);
    if (!dy.defined()) return;
    Tensor dx = output_like(input_shape, dy.dtype(), format);
    backend_.maxpool2d_backward(dy, indices, dx, g);
    tape_.accumulate_grad(x, std::move(dx));
  });
  return out;
}

int StepRunner::adaptive_avgpool2d(int x) {
  const Tensor input = value(x).data;
  Tensor y = output_like({input.size(0), input.size(1), 1, 1}, input.dtype(), input.memory_format());
  backend_.adaptive_avgpool_forward(input, y);
  const int out = tape_.add_value(y, value(x).requires_grad);
  const Shape input_shape = input.shape();
  tape_.record([this, x, out, input_shape, format = input.memory_format()] {
    Tensor dy = take_grad(out);
    if (!dy.defined()) return;
    Tensor dx = output_like(input_shape, dy.dtype(), format);
    backend_.adaptive_avgpool_backward(dy, dx);
    tape_.accumulate_grad(x, std::move(dx));
  });
  return out;
}

int StepRunner::flatten(int x) {
  // torch.flatten copies a channels-last tensor into NCHW order first (ResNet's (N, C, 1, 1)
  // lies in both, and is only relabelled).
  x = cast(x, value(x).data.dtype(), MemoryFormat::Contiguous);
  const Tensor input = value(x).data;
  const int out = tape_.add_value(input.reshape({input.size(0), input.numel() / input.size(0)}), value(x).requires_grad);
  const Shape input_shape = input.shape();
  tape_.record([this, x, out, input_shape] {
    Tensor dy = take_grad(out);
    if (dy.defined()) tape_.accumulate_grad(x, dy.reshape(input_shape));
  });
  return out;
}

int StepRunner::linear(const Module& module, int x) {
  x = autocast(x);
  const Tensor input = value(x).data;
  if (input.ndim() != 2 || input.size(1) != module.in)
    throw_bad_input("'" + module.path + "' expects (N, " + std::to_string(module.in) + ") input, got " +
                    shape_string(input.shape()));
  const std::string& p = module.path;
  const Tensor w = autocast_param(p + ".weight");
  const Tensor b = autocast_param(p + ".bias");
  Tensor y = output_like({input.size(0), module.out}, input.dtype());
  backend_.linear_forward(input, w, b, y);
  const int out = tape_.add_value(y, true);
  const bool input_grad = value(x).requires_grad;
  tape_.record([this, x, out, input, w, b, p, input_grad] {
    Tensor dy = take_grad(out);
    if (!dy.defined()) return;
    Tensor dx = input_grad ? output_like(input.shape(), input.dtype()) : Tensor();
    Tensor dw = output_like(w.shape(), w.dtype());
    Tensor db = output_like(b.shape(), b.dtype());
    backend_.linear_backward(input, w, dy, dx, dw, db);
    if (input_grad) tape_.accumulate_grad(x, std::move(dx));
    parameter_grad(p + ".weight", std::move(dw));
    parameter_grad(p + ".bias", std::move(db));
  });
  return out;
}

int StepRunner::add(int a, int b, bool into_relu) {
  const Tensor& ta = value(a).data;
  Tensor y = output_like(ta.shape(), ta.dtype(), ta.memory_format());
  if (into_relu) {
    unwritten_sum_ = UnwrittenSum{y, ta, value(b).data};
  } else {
    write_unwritten_batchnorm();  // the add, not the ReLU, reads bn2's output
    hooks_.run_parked();  // likewise: its probes run on their own
    backend_.add(ta, value(b).data, y);
  }
  const int out = tape_.add_value(y, value(a).requires_grad || value(b).requires_grad);
  tape_.record([this, a, b, out] {
    Tensor dy = take_grad(out);
    if (dy.defined()) tape_.accumulate_shared_grad(a, b, std::move(dy));  // one tensor, no copy
  });
  return out;
}

}  // namespace hookrt::detail
