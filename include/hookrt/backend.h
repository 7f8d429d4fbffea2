#pragma once
// Backend — the device-facing interface the executor talks to: memory, the ResNet ops and their
// backwards, the optimizer update, and probe execution. src/cpu implements it on the host (the
// reference); cuda/ implements it with cuDNN, cuBLAS and our kernels. Nothing above a backend
// knows which one runs.
//
// Memory formats. A 4-D tensor is NCHW (MemoryFormat::Contiguous) or NHWC (ChannelsLast, as
// torch.channels_last); its shape is the logical NCHW one either way. The 4-D tensors of one op
// share one layout (Tensor::same_layout): conv2d's x, w, y, dx, dw and dy (a channels-last weight
// is KRSC, the executor's cast of the KCRS parameter), batchnorm's x, y, dy, dx, pooling's x, y,
// indices, dx, dy, and the operands of the elementwise ops, which walk them in memory order. Only
// convert changes a format. to_host always returns NCHW, as hooks, captures and files see it.
//
// Dtypes. Parameters, their gradients, optimizer state, batch norm's statistics and the loss are
// F32. Activations and their gradients are F32, or BF16 or F16 when the executor runs under
// Precision::BF16 or Precision::F16 (torch.autocast's bfloat16 or float16); each op then takes
// what PyTorch's does there, with "half" standing for BF16 or F16, one of them per op:
//   conv2d_*, linear_*        every tensor F32, or every tensor half (a half weight is the
//                             executor's cast of the F32 one); products accumulate in F32 and
//                             each result is rounded to half once
//   batchnorm_*               x, y, dy, dx F32 or half; weight, bias, running and saved
//                             statistics, dweight, dbias and coefficients F32 (PyTorch's mixed
//                             batch_norm)
//   add, accumulate, relu_*, maxpool2d_*, adaptive_avgpool_*, multiply_'s tensor
//                             one dtype, F32 or half, computed in F32 and rounded once
//                             (multiply_'s factor: F32 or the tensor's dtype)
//   run_probes, run_producing_op   the tensor's dtype, F32 or half
//   cross_entropy_*, sgd_update, unscale_gradient_(s), update_loss_scale
//                             F32 (autocast runs the loss in F32); the loss scaler's growth
//                             tracker I32
//   convert                   between F32, BF16 and F16 (round to nearest even), and between formats
// The CPU backend also takes F64 wherever F32 is named, for finite-difference tests.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hookrt/probes.h"
#include "hookrt/records.h"
#include "hookrt/tensor.h"

namespace hookrt {

struct Conv2dGeometry {
  int stride = 1;
  int padding = 0;
};

struct Pool2dGeometry {
  int kernel = 3;
  int stride = 2;
  int padding = 1;
};

enum class BatchNormMode { Training, Inference };

struct BatchNormOptions {
  BatchNormMode mode = BatchNormMode::Training;
  double eps = 1e-5;
  double momentum = 0.1;  // PyTorch's: running = (1 - momentum) * running + momentum * batch
};

// One parameter's tensors in an update of many (Backend::sgd_update_all), as sgd_update takes
// them; the pointers are the caller's and outlive the call.
struct SgdTensors {
  Tensor* param;
  const Tensor* grad;
  Tensor* momentum_buffer;
};

// torch.optim.SGD's options.
struct SgdOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

// torch.amp.GradScaler's options: dynamic loss scaling for F16 training. The loss's gradient is
// multiplied by the scale, so that small F16 gradients do not flush to zero; the parameter
// gradients are divided by it before the optimizer; a step whose gradients overflowed is skipped
// and the scale backs off; after growth_interval good steps in a row it grows. A growth_factor
// and backoff_factor of 1 make the scale static.
struct LossScaleOptions {
  double init_scale = 65536.0;  // 2^16
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
};

// How a changing probe on a forward tensor transforms that tensor's gradient in backward (as
// autograd would for a hook that returned t.clamp(lo, hi) or t * scale).
struct GradTransform {
  enum class Kind { Mask, Scale } kind = Kind::Mask;
  Tensor factor;  // Mask: 1/0 per element, same shape (1 where lo <= x <= hi); Scale: one element
};

// The elementwise op that writes a probed tensor, handed to the probe run instead of run before
// it: a backend may then write the tensor and probe it in one pass (probes in the op's epilogue),
// so a probed ReLU output or gradient is not written by one kernel and read again by the next.
struct ProducingOp {
  enum class Kind {
    ReluForward,     // relu(a)
    ReluBackward,    // relu_backward(y = a, dy = b)
    AddReluForward,  // relu(a + b): a block's residual add and its ReLU, the sum never written
    // A batch norm's elementwise pass, its per-channel coefficients computed before (see
    // Backend::splits_batchnorm): batchnorm_apply(x = a, coefficients) and
    // batchnorm_dx(dy = a, x = b, coefficients); b undefined for an inference backward.
    BatchNormApply,
    BatchNormDx,
    // A batch norm's apply and the ReLU after it, the batch norm's output never written (nothing
    // else reads it): relu(batchnorm_apply(x = a)), and with a block's residual add between them,
    // relu(batchnorm_apply(x = a) + b). Each step rounds to the dtype as the ops on their own do.
    BatchNormApplyRelu,
    BatchNormApplyAddRelu,
    // A training batch norm's dx where its output went to a ReLU unwritten (BatchNormApplyRelu):
    // batchnorm_dx(relu_backward(relu(batchnorm_apply(x = b)), dy = a), x = b), the ReLU's
    // gradient never written. coefficients (6, C): batchnorm_relu_backward_coefficients's.
    BatchNormReluDx,
  } kind = Kind::ReluForward;
  Tensor a;
  Tensor b;             // unused by ReluForward, BatchNormApply and BatchNormApplyRelu
  Tensor coefficients;  // the batch norm kinds' only
};

// Probes on one input of a producing op, run in the op's read of that input: a batch norm's
// output, probed where the ReLU after it reads it, so that it is read once for both. They are
// the input's own record (its hook fired before the op's), and only observe: none changes the
// input, captures it or may halt the step.
struct InputProbeRun {
  int input = 0;  // 0: the op's a, 1: its b
  ProbeList probes;
  int channel_axis = 1;
  ProbeRecord* record = nullptr;  // the input's record: results are appended to it
};

struct ProbeRunOptions {
  int channel_axis = 1;          // axis of channels for zeros/channels (0 for parameter grads)
  bool want_grad_transforms = false;  // forward tensors in training: record GradTransforms
  // When set, the tensor is not written yet: the run first writes it with this op (as
  // Backend::run_producing_op would, or fused into its first pass), then probes it. The probe
  // list may then be empty: the run only writes the tensor (and runs probe_input).
  std::optional<ProducingOp> produce;
  // With produce: probes on one of its inputs, read by the same pass where the backend can.
  std::optional<InputProbeRun> probe_input;
};

// What a probe run produced besides the record's results.
struct ProbeRunEffects {
  bool halt = false;              // a nonfinite=halt probe found NaN or Inf
  bool changed = false;           // a changing probe ran (the tensor may differ)
  std::vector<GradTransform> grad_transforms;  // in the order the changing probes ran
  // Set by a backend that finishes probe runs asynchronously (the GPU's: results stay on the
  // device until the step ends). record.results is then left empty, `halt` is not yet known, and
  // both arrive from collect_deferred_probe_results() under this ticket.
  std::optional<uint64_t> deferred;
  // The same for options.probe_input's run (its halt is always false: its probes only observe).
  std::optional<uint64_t> input_deferred;
};

// A deferred probe run, finished.
struct DeferredProbeResults {
  uint64_t ticket = 0;
  std::vector<ProbeResult> results;  // what run_probes would have appended to record.results
  bool halt = false;
};

// The probe runs deferred in one step, on their way to the host: sealing queues their transfer
// without waiting, and finish() waits for it and decodes them, on whichever thread delivers the
// records (the executor's delivery thread), so the thread that drives the device never waits.
class DeferredProbeBatch {
 public:
  virtual ~DeferredProbeBatch() = default;
  // Waits for the runs' results and returns them in the order the runs were queued. Once.
  virtual std::vector<DeferredProbeResults> finish() = 0;
};

// A step's device work, recorded once while it was queued (a CUDA graph) and queued again as a
// whole by replay(): the same kernels on the same buffers, so its inputs are refilled in place
// before each replay and its outputs read after. Held by the executor (see step_graphs.h).
class StepGraph {
 public:
  virtual ~StepGraph() = default;
  // Queues the recorded work once more. The probe runs it deferred are pending again, under the
  // tickets they had while recording, for the next seal_deferred_probe_results().
  virtual void replay() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;

  // ---- memory ----
  virtual Tensor empty(const Shape& shape, DType dtype = DType::F32,
                       MemoryFormat format = MemoryFormat::Contiguous) = 0;
  virtual Tensor zeros(const Shape& shape, DType dtype = DType::F32,
                       MemoryFormat format = MemoryFormat::Contiguous) = 0;
  Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype(), t.memory_format()); }
  // Bytes as they lie (any device pair this backend can reach): src and dst share a layout.
  virtual void copy(const Tensor& src, Tensor& dst) = 0;
  // dst = src in dst's dtype and memory format (same shape, both on this backend): F32 <-> BF16,
  // rounding to nearest even as Tensor.to does; NCHW <-> NHWC, moving the elements; the same
  // dtype and layout is a copy.
  virtual void convert(const Tensor& src, Tensor& dst) = 0;
  // `t` itself where it has `dtype` and lies in `format`, else a new tensor holding it converted.
  Tensor converted(const Tensor& t, DType dtype, MemoryFormat format);
  Tensor converted(const Tensor& t, DType dtype) { return converted(t, dtype, t.memory_format()); }
  // Always a new host tensor, NCHW (Contiguous) whatever the tensor's format.
  virtual Tensor to_host(const Tensor& tensor) = 0;
  virtual Tensor from_host(const Tensor& host) = 0;       // a new tensor on this backend, same format
  // Host memory this backend uploads from fastest (page-locked on CUDA, where from_host is then
  // one asynchronous copy): data loaders fill batches in it. Thread-safe: loader threads call it.
  virtual Tensor empty_host(const Shape& shape, DType dtype = DType::F32) { return Tensor::empty(shape, dtype); }
  virtual void synchronize() = 0;

  // ---- elementwise ----
  virtual void fill(Tensor& tensor, double value) = 0;
  virtual void add(const Tensor& a, const Tensor& b, Tensor& out) = 0;   // out = a + b
  virtual void accumulate(Tensor& dst, const Tensor& src) = 0;           // dst += src
  // t *= factor, where factor has one element or t's shape.
  virtual void multiply_(Tensor& tensor, const Tensor& factor) = 0;

  // ---- ops: x (N,C,H,W), w (K,C,R,S), y (N,K,P,Q) ----
  virtual void conv2d_forward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) = 0;
  virtual void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g) = 0;
  virtual void conv2d_backward_filter(const Tensor& x, const Tensor& dy, Tensor& dw, const Conv2dGeometry& g) = 0;

  // Training: batch statistics normalise y; running stats are updated (unbiased variance);
  // save_mean/save_invstd (C) keep the batch mean and 1/sqrt(var+eps) for backward.
  // Inference: running stats normalise y; save_* receive the running mean and 1/sqrt(rv+eps).
  virtual void batchnorm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                 Tensor& running_mean, Tensor& running_var, Tensor& y,
                                 Tensor& save_mean, Tensor& save_invstd, const BatchNormOptions& o) = 0;
  virtual void batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight,
                                  const Tensor& save_mean, const Tensor& save_invstd, Tensor& dx,
                                  Tensor& dweight, Tensor& dbias, const BatchNormOptions& o) = 0;

  // A batch norm in two parts, so that a probe run may write (and probe) its output or its dx as
  // a ProducingOp once the per-channel work is done. splits_batchnorm: whether this backend runs
  // them, for activations of `dtype`, as fast as the whole op; there they give the bits
  // batchnorm_forward and batchnorm_backward give. By default it does not, and the other four throw.
  virtual bool splits_batchnorm(DType dtype) const;
  // batchnorm_forward without y: the statistics, the running update and coefficients (2, C) in
  // weight's dtype, row 0 the scale and row 1 the shift of y = x * scale[c] + shift[c].
  virtual void batchnorm_forward_coefficients(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                              Tensor& running_mean, Tensor& running_var, Tensor& save_mean,
                                              Tensor& save_invstd, Tensor& coefficients, const BatchNormOptions& o);
  virtual void batchnorm_apply(const Tensor& x, const Tensor& coefficients, Tensor& y);
  // batchnorm_backward without dx: dweight, dbias and coefficients (4, C) in weight's dtype, rows
  // gain, centre, grad_mean and projection of dx = (dy - grad_mean - (x - centre) * projection) *
  // gain (training; inference: dx = dy * gain, x not read).
  virtual void batchnorm_backward_coefficients(const Tensor& dy, const Tensor& x, const Tensor& weight,
                                               const Tensor& save_mean, const Tensor& save_invstd, Tensor& dweight,
                                               Tensor& dbias, Tensor& coefficients, const BatchNormOptions& o);
  // x undefined: inference's dx.
  virtual void batchnorm_dx(const Tensor& dy, const Tensor& x, const Tensor& coefficients, Tensor& dx);
  // batchnorm_backward_coefficients of a batch norm whose output went straight to a ReLU and was
  // never written (ProducingOp::BatchNormApplyRelu), given that ReLU's dy: the batch norm's own dy
  // is relu_backward(relu(batchnorm_apply(x, forward_coefficients)), relu_dy), its mask taken
  // again from x, rounded as the forward rounded it, so that neither y nor that dy is read or
  // written. coefficients (6, C): the four rows of batchnorm_backward_coefficients, then the two
  // of forward_coefficients (the forward's (2, C)), for ProducingOp::BatchNormReluDx. By default
  // the ops in turn, through temporaries: the bits of the unfused ops by construction.
  virtual void batchnorm_relu_backward_coefficients(const Tensor& relu_dy, const Tensor& x,
                                                    const Tensor& forward_coefficients, const Tensor& weight,
                                                    const Tensor& save_mean, const Tensor& save_invstd,
                                                    Tensor& dweight, Tensor& dbias, Tensor& coefficients,
                                                    const BatchNormOptions& o);

  virtual void relu_forward(const Tensor& x, Tensor& y) = 0;
  // dx = dy where y > 0, else 0 (PyTorch's threshold_backward on the result).
  virtual void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) = 0;

  // indices (I64, y's shape) hold the flat h*W+w of each window's max; ties keep the first in
  // scan order and NaN wins, as PyTorch.
  virtual void maxpool2d_forward(const Tensor& x, Tensor& y, Tensor& indices, const Pool2dGeometry& g) = 0;
  virtual void maxpool2d_backward(const Tensor& dy, const Tensor& indices, Tensor& dx, const Pool2dGeometry& g) = 0;

  // (N,C,H,W) -> (N,C,1,1) mean.
  virtual void adaptive_avgpool_forward(const Tensor& x, Tensor& y) = 0;
  virtual void adaptive_avgpool_backward(const Tensor& dy, Tensor& dx) = 0;

  // x (N,K), w (M,K), b (M), y (N,M) = x w^T + b. dx may be undefined (not needed).
  virtual void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) = 0;
  virtual void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dx,
                               Tensor& dw, Tensor& db) = 0;

  // Mean cross-entropy of logits (N,M) against labels (N, I64 or I32, on the host or this backend)
  // into `loss`, a one-element F64 tensor on this backend (allocated when undefined), queued
  // without waiting for the value, so that backward can be queued behind it. probs (N,M) keeps the
  // softmax for backward. Labels out of [0, M) throw Error(BadInput) naming the index and value.
  virtual void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& probs, Tensor& loss) = 0;
  // The same, waiting for the value and returning it.
  double cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& probs);
  // dlogits = (probs - onehot(labels)) / N
  virtual void cross_entropy_backward(const Tensor& probs, const Tensor& labels, Tensor& dlogits) = 0;

  // One torch.optim.SGD update of param given grad. momentum_buffer is undefined-or-unused until
  // `first_step` is false (PyTorch initialises the buffer with the first d_p). skip_if, when
  // defined, is a one-element F32 tensor on this backend (a loss scaler's found_inf): where it
  // holds a nonzero value the update does nothing at all, decided on the device, so that a
  // skipped step (GradScaler.step after an overflow) needs no host wait.
  virtual void sgd_update(Tensor& param, const Tensor& grad, Tensor& momentum_buffer, bool first_step,
                          const SgdOptions& o, const Tensor& skip_if) = 0;
  // sgd_update of every parameter of a step, as few launches as the backend can (torch.optim.SGD's
  // foreach form, with the single-tensor form's roundings): by default one sgd_update each.
  virtual void sgd_update_all(const std::vector<SgdTensors>& tensors, bool first_step, const SgdOptions& o,
                              const Tensor& skip_if);

  // Loss scaling, as torch.amp.GradScaler runs it on the device. scale and found_inf are
  // one-element F32 tensors on this backend; growth_tracker a one-element I32 one.
  // grad (F32) *= inv_scale, the reciprocal of scale taken in F64 and rounded to F32 (GradScaler's
  // inv_scale; grad is left as it is when that is 1), and found_inf = 1 where any element of grad
  // is NaN or +-Inf; found_inf is not cleared, so one flag collects every gradient of a step
  // (torch._amp_foreach_non_finite_check_and_unscale_).
  virtual void unscale_gradient_(Tensor& grad, const Tensor& scale, Tensor& found_inf) = 0;
  // unscale_gradient_ of each gradient, with the same bits, in as few launches as the backend can
  // (the foreach form GradScaler.unscale_ runs): by default one unscale_gradient_ each.
  virtual void unscale_gradients_(const std::vector<Tensor*>& grads, const Tensor& scale, Tensor& found_inf);
  // torch._amp_update_scale_: after a step with found_inf nonzero, scale *= backoff_factor and
  // growth_tracker = 0; otherwise growth_tracker += 1, and when it reaches growth_interval,
  // scale *= growth_factor (kept when that would not be finite) and growth_tracker = 0. The
  // products are taken in F32.
  virtual void update_loss_scale(Tensor& scale, Tensor& growth_tracker, const Tensor& found_inf,
                                 const LossScaleOptions& o) = 0;

  // Runs `probes` on tensor in order: changing probes rewrite it in place, observing probes
  // append their result to record.results. options.produce, when set, writes the tensor first;
  // options.probe_input's probes run on the op's input before that.
  virtual ProbeRunEffects run_probes(const ProbeList& probes, Tensor& tensor, ProbeRecord& record,
                                     const ProbeRunOptions& options) = 0;
  // Queues the transfer of every probe run deferred since the last seal and returns at once; null
  // when none was. Backends that never defer return null. A backend may wait here only for room:
  // when earlier batches, not yet finished, hold all of its host buffers.
  virtual std::unique_ptr<DeferredProbeBatch> seal_deferred_probe_results() { return nullptr; }
  // ---- recording a step (CUDA graphs) ----
  // Starts recording the work queued from now on instead of running it; false (and nothing
  // started) where this backend cannot record. Nothing may wait for the device while recording:
  // to_host, synchronize and host uploads fail, as does anything that would grow a buffer the
  // backend keeps across steps (a warm-up step run the same way first sizes them all).
  virtual bool begin_step_recording() { return false; }
  // Ends the recording and returns it, not yet run. Every tensor made while recording must be
  // freed by then (the executor copies what it keeps into tensors made before). Throws Error
  // naming what could not be recorded; the recording is then dropped as by abandon.
  virtual std::unique_ptr<StepGraph> end_step_recording();
  // Drops a recording after a failure, with the probe runs deferred while it lasted.
  virtual void abandon_step_recording() noexcept {}
  // Writes `out` with `op`: by default through this backend's ops (relu_forward, relu_backward;
  // add then relu_forward in place; batchnorm_apply, batchnorm_dx; batchnorm_apply then add and
  // relu_forward in place; batchnorm_apply, relu_forward, relu_backward and batchnorm_dx through
  // a temporary); a backend may run it as one kernel.
  virtual void run_producing_op(const ProducingOp& op, Tensor& out);
  // Seals and finishes at once: waits for every probe run deferred since the last seal.
  std::vector<DeferredProbeResults> collect_deferred_probe_results() {
    std::unique_ptr<DeferredProbeBatch> batch = seal_deferred_probe_results();
    return batch ? batch->finish() : std::vector<DeferredProbeResults>{};
  }

 protected:
  // run_probes for a run with options.probe_input whose input is not read once for both: the
  // input's probes run on their own (a run_probes of their own), then the rest of the run.
  ProbeRunEffects run_input_probes_apart(const ProbeList& probes, Tensor& tensor, ProbeRecord& record,
                                         const ProbeRunOptions& options);

 private:
  // The default batchnorm_relu_backward_coefficients' and BatchNormReluDx's parts (backend.cpp).
  static Tensor coefficient_rows(const Tensor& coefficients, int64_t first, int64_t count, const char* op);
  Tensor batchnorm_dy_through_relu(const Tensor& relu_dy, const Tensor& x, const Tensor& forward_coefficients);
};

// The CPU reference backend.
std::unique_ptr<Backend> make_cpu_backend();

}  // namespace hookrt
