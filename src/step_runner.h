#pragma once
// StepRunner — one forward (and backward) pass of a Model on a Backend: runs every module in
// torchvision's order, fires hooks at every module boundary as PyTorch does, and records the
// backward on a Tape.
//
// Hook semantics follow torch.nn.Module._call_impl and torch.utils.hooks.BackwardHook:
//   forward_pre hooks -> [input wrapper] -> module body -> forward hooks -> [output wrapper]
// A hook that changes a tensor (changing probe, host callback) acts on a copy, as a PyTorch hook
// that returns a new tensor: other consumers of the original are unaffected and backward routes
// the gradient through the change (clamp masks it, clipnorm scales it). The wrappers, added only
// where backward hooks exist, are identity nodes: the output wrapper sees the complete
// grad_output (backward_pre hooks); the input wrapper collects what this call's body sends to its
// input (grad_input), fires backward hooks, then passes it on.
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "hook_dispatch.h"
#include "hookrt/backend.h"
#include "hookrt/executor.h"
#include "hookrt/model.h"
#include "loss_scaler.h"
#include "tape.h"

namespace hookrt::detail {

// Device copies of the model's tensors and the per-parameter gradients of the current step.
struct DeviceState {
  std::map<std::string, Tensor> tensors;    // parameters and float buffers, on the backend
  std::map<std::string, Tensor> grads;      // this step's parameter gradients (after grad hooks)
  std::map<std::string, Tensor> momentum;   // SGD momentum buffers
  bool momentum_initialised = false;
  std::unique_ptr<LossScaler> loss_scaler;  // a training step's, under loss scaling
};

// Which of a module call's tensors a producing op reads next: its output (a batch norm's, read by
// the ReLU after it, or a convolution's, read by a batch norm that splits) or its grad_input (a
// convolution's or max pool's after a ReLU, read by that ReLU's backward, or by the batch norm's
// dx that took it over). That op's read may then probe it for the module's hooks
// (HookDispatcher::park_forward, fire_backward's park_grad_input).
struct ReadByOp {
  bool output = false;
  bool grad_input = false;
  const Module* relu = nullptr;  // a batch norm's: the ReLU its output goes to, perhaps through a residual add
};

// The memory format a step's 4-D activations take: options.memory_format, else the device's
// default for the precision.
MemoryFormat step_memory_format(const ExecutorOptions& options, Device device);

class StepRunner {
 public:
  StepRunner(Model& model, Backend& backend, DeviceState& state, const ExecutorOptions& options, int64_t step,
             bool backward, RecordSink sink);

  // Runs the root module on the input (device tensor); returns the logits' value id.
  int forward(const Tensor& input, bool input_requires_grad);
  Tape& tape() { return tape_; }
  // Under loss scaling, once backward has ended: unscales the parameter gradients that no grad
  // hook saw, all in one backend call (see parameter_grad).
  void unscale_deferred_gradients();
  // Delivers the records still queued for a deferring backend (see HookDispatcher); the _noexcept
  // form is for error paths.
  void flush_records() { hooks_.flush_records(); }
  void flush_records_noexcept() noexcept { hooks_.flush_records_noexcept(); }
  // Whether a probe of this step may halt it (its records are then flushed, not handed over).
  bool may_halt() const { return hooks_.may_halt(); }
  // This step's queued records with their sealed deferred results, for the delivery thread.
  HandedOverStep hand_over_records() { return hooks_.hand_over(); }
  // This step's queued records, their deferred results left to come (a recorded step's).
  std::deque<QueuedRecord> take_queued_records() { return hooks_.take_queued_records(); }

 private:
  int run_module(const Module& module, int x, ReadByOp read_by_op = {});
  int body(const Module& module, int x, const ReadByOp& read_by_op);
  int resnet(const Module& module, int x);
  int sequential(const Module& module, int x);
  int basic_block(const Module& module, int x);
  int conv2d(const Module& module, int x);
  int batchnorm2d(const Module& module, int x, const Module* output_relu);
  // What a batch norm's backward needs of its forward.
  struct SavedBatchNorm {
    int x;  // the input's value
    Tensor input, weight, save_mean, save_invstd;
    BatchNormOptions options;
    std::string path;
    bool input_grad;      // the input needs a gradient
    bool split;           // run in two parts (splits_batchnorm)
    bool grad_to_probes;  // split, and dx left unwritten for the backward hooks
    Tensor forward_coefficients;  // split: the forward's (2, C)
  };
  void batchnorm_forward(SavedBatchNorm& saved, Tensor& y, const Module* output_relu);
  bool fuses_with_relu(const SavedBatchNorm& saved, const Module& relu) const;
  // The op that writes a ReLU's output from `input` (see relu_op in the .cpp), and whether the
  // batch norm whose output it computes may take the ReLU's backward into its own.
  struct ReluOp {
    ProducingOp op;
    bool backward_to_batchnorm = false;
  };
  ReluOp relu_op(const Tensor& input);
  // With through_relu, dy is the ReLU's (see batchnorm_takes_relu_backward_).
  void batchnorm_backward(const SavedBatchNorm& saved, const Tensor& dy, bool through_relu = false);
  int relu(const Module& module, int x);
  int maxpool2d(const Module& module, int x);
  int adaptive_avgpool2d(int x);
  int linear(const Module& module, int x);
  int flatten(int x);
  // out = a + b; with `into_relu`, the sum is left unwritten for the ReLU called next, which
  // computes relu(a + b) itself (see unwritten_sum_).
  int add(int a, int b, bool into_relu);

  int forward_pre_hooks(const HookSite& site, int x);
  int forward_hooks(const HookSite& site, int x, int y, std::set<uint64_t>& called, bool output_read_by_op);
  template <class Fire> int through_changing_hooks(int x, Fire fire);
  int wrap_for_backward_hooks(const HookSite& site, int x, int y);
  int wrap_input(const HookSite& site, int x, std::shared_ptr<Tensor> saved_grad_output, bool grad_read_by_op);

  // Fires grad hooks on a parameter's fresh gradient and keeps it for the optimizer; under loss
  // scaling the gradient is unscaled first.
  void parameter_grad(const std::string& key, Tensor grad);
  Tensor take_grad(int id) { return tape_.take_grad(id); }
  // Whether the tensors a module's hooks of `when` see first may be handed to them unwritten.
  bool epilogue_probes(HookWhen when, const std::string& module) const;
  // Whether a batch norm on activations of this dtype runs as its per-channel part and a producing
  // op (see batchnorm2d).
  bool splits_batchnorm(DType activations) const;
  // Whether `next` reads the output of `conv` (called on value x) as a producing op.
  bool batchnorm_reads_conv_output(const Module& conv, const Module& next, int x) const;
  // A new tensor for an op's output or gradient; 4-D ones take the layout of the tensor they are
  // computed from (`format`), which the backend contract makes one per op.
  Tensor output_like(const Shape& shape, DType dtype, MemoryFormat format = MemoryFormat::Contiguous) {
    return backend_.empty(shape, dtype, shape.size() == 4 ? format : MemoryFormat::Contiguous);
  }
  const Tensor& param(const std::string& key) { return state_.tensors.at(key); }
  // Autocast (Precision::BF16 or F16): the dtype convolutions and the linear layer compute in; x cast to
  // it (a step of its own on the tape, whose backward casts the gradient back); and a parameter
  // cast to it, once per step, as autocast caches the casts of leaf tensors. Without autocast both
  // keep their dtype (F32, or F64 in the finite-difference tests). The same casts move 4-D inputs
  // and weights into the step's memory format (channels-last: a model in
  // torch.channels_last), so every activation after the first convolution follows it.
  bool autocasting() const { return options_.precision != Precision::F32; }
  DType compute_dtype(DType dtype) const { return autocasting() ? activation_dtype(options_.precision) : dtype; }
  MemoryFormat compute_format(const Tensor& t) const {
    return t.ndim() == 4 ? memory_format_ : MemoryFormat::Contiguous;
  }
  int autocast(int x) { return cast(x, compute_dtype(value(x).data.dtype()), compute_format(value(x).data)); }
  Tensor autocast_param(const std::string& key);
  // x in `dtype` and `format`: x itself where it already is, else a cast step on the tape whose
  // backward casts the gradient back to x's dtype and format.
  int cast(int x, DType dtype, MemoryFormat format);
  Value& value(int id) { return tape_.value(id); }

  Model& model_;
  Backend& backend_;
  DeviceState& state_;
  const ExecutorOptions& options_;
  const MemoryFormat memory_format_;  // of the 4-D activations and conv weights (resolved options)
  Tape tape_;
  HookDispatcher hooks_;
  std::map<std::string, int> calls_;  // forward calls per module path in this step
  std::map<std::string, Tensor> param_casts_;  // autocast's casts of parameters, this step
  // Parameter gradients left for unscale_deferred_gradients (sharing their storage); held here, so
  // that a step's tensors go with the step, a recorded one's while it records.
  std::vector<Tensor> unscale_later_;
  // The op still to write the output of the module body that just ran (a ReLU's whose first
  // forward hook probes it): its forward hooks are given it (see epilogue_probes).
  std::optional<ProducingOp> unwritten_output_;
  // A block's residual sum, allocated but not written: nothing reads it but the block's ReLU,
  // called next (no hook sees that ReLU's input), which takes relu(a + b) from its operands.
  struct UnwrittenSum {
    Tensor sum, a, b;
  };
  std::optional<UnwrittenSum> unwritten_sum_;
  // Writes the unwritten sum, if any: before anything other than its ReLU could read it.
  void write_unwritten_sum();
  // A batch norm's output y, allocated but not written: the ReLU after it (perhaps through the
  // block's residual sum) computes it from x and the coefficients in its own pass.
  struct UnwrittenBatchNorm {
    Tensor y, x, coefficients;
    // The batch norm may take the ReLU's backward too: a training one, with no backward hook.
    bool takes_relu_backward = false;
  };
  std::optional<UnwrittenBatchNorm> unwritten_batchnorm_;
  // Writes it, if any: before anything other than its ReLU could read it.
  void write_unwritten_batchnorm();
  // The batch norm outputs (value ids) whose ReLU computed them and leaves its backward unwritten
  // (a ReluBackward producer on the value's gradient) for the batch norm's backward, which takes
  // the ReLU's mask again from x (Backend::batchnorm_relu_backward_coefficients): no hook sees the
  // ReLU's grad_input or the batch norm's grad_output, so neither is ever written.
  std::set<int> batchnorm_takes_relu_backward_;
};

}  // namespace hookrt::detail
