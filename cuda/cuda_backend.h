#pragma once
// CudaBackend — the Backend on one CUDA device: tensors from a stream-ordered pool, every op queued
// on the backend's one stream (cuDNN for convolution and batch norm, cuBLAS for the linear layer,
// our kernels for the rest), and host copies through a pinned staging buffer, or straight from
// the page-locked batches that empty_host() makes. Methods return once the work is queued;
// results are read with to_host (which waits) or after synchronize(). Dtypes are backend.h's:
// activations and their gradients F32, BF16 or F16 (cuDNN's and cuBLAS's half paths and our
// kernels accumulate in F32 and round each result once; half batch norm runs in our kernels), parameters,
// batch-norm statistics, the loss and the optimizer F32; probes read F32, BF16 and F16. Memory
// formats are backend.h's: the 4-D operands of one op share NCHW or channels-last (NHWC) order,
// which picks cuDNN's descriptors and our kernels, and convert moves tensors between the two on
// the device; to_host and captures hand NCHW to the host. Outputs that are undefined are allocated
// where their shape follows from the inputs, in the inputs' format, as in the CPU backend. Not
// thread-safe, except empty_host (loader threads call it): one executor drives one backend, from
// threads whose current CUDA device is options.device (the constructor makes it current for its
// own thread).
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>

#include "capture_ring.h"
#include "deferred_probe_batch.h"
#include "fused_probes.cuh"
#include "cublas_linear.h"
#include "cudnn_batchnorm.h"
#include "cudnn_conv.h"
#include "hookrt/backend.h"
#include "memory_pool.h"
#include "pinned_host_pool.h"
#include "probe_arena.h"
#include "probe_plan.h"
#include "resources.h"
#include "sgd.cuh"
#include "step_graph.h"
#include "workspace.h"
#include "zeroed_counters.h"

namespace hookrt::cuda {

struct CudaBackendOptions {
  int device = 0;
  // TF32 tensor cores for convolutions (PyTorch's cudnn.allow_tf32, on by default) and for the
  // linear layer's GEMMs (cuda.matmul.allow_tf32, off by default in PyTorch); off keeps full F32
  // products, for comparisons with the CPU reference.
  bool allow_tf32 = true;
  bool allow_tf32_matmul = false;
  // The most workspace one convolution algorithm may use.
  size_t conv_workspace_limit_bytes = size_t{1} << 30;
  // How each convolution shape's algorithms are chosen (cudnn_conv.h).
  ConvAlgorithmChoice conv_algorithms = ConvAlgorithmChoice::Measured;
  // Only deterministic convolution algorithms (cudnn_conv.h).
  bool deterministic_conv = false;
  // F32 batch norms on our kernels, split, rather than cuDNN's (GpuOptions::own_f32_batchnorm).
  bool own_f32_batchnorm = false;
  // The most elements a tensor of one cuDNN call may hold (GpuOptions::max_cudnn_call_elements).
  int64_t max_cudnn_call_elements = INT32_MAX;
  // Pinned host memory for captures in flight (see capture_ring.h).
  size_t capture_ring_bytes = size_t{256} << 20;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaBackendOptions& options = {});
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device device() const override { return Device::CUDA; }
  std::string name() const override;
  // The backend's stream, with every probe run batched so far launched on it (launch_batched_probes):
  // work queued on it after this call runs after them. A caller that queues work of its own after
  // probe runs (an event, the end of a capture) asks for it again, rather than keeping the handle.
  cudaStream_t stream();

  // ---- memory ----
  Tensor empty(const Shape& shape, DType dtype, MemoryFormat format = MemoryFormat::Contiguous) override;
  Tensor zeros(const Shape& shape, DType dtype, MemoryFormat format = MemoryFormat::Contiguous) override;
  void copy(const Tensor& src, Tensor& dst) override;
  // F32, BF16 and F16 into one another (convert.cuh), bit for bit as the host's Tensor::to; between
  // memory formats any dtype, the elements moved by a tiled transpose (and converted on the way).
  void convert(const Tensor& src, Tensor& dst) override;
  Tensor to_host(const Tensor& tensor) override;
  Tensor from_host(const Tensor& host) override;
  Tensor empty_host(const Shape& shape, DType dtype) override { return pinned_->allocate(shape, dtype); }
  void synchronize() override;

  // ---- elementwise ----
  void fill(Tensor& tensor, double value) override;
  void add(const Tensor& a, const Tensor& b, Tensor& out) override;
  void accumulate(Tensor& dst, const Tensor& src) override;
  void multiply_(Tensor& tensor, const Tensor& factor) override;

  // ---- ops ----
  void conv2d_forward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) override;
  void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g) override;
  void conv2d_backward_filter(const Tensor& x, const Tensor& dy, Tensor& dw, const Conv2dGeometry& g) override;
  void batchnorm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                         Tensor& running_var, Tensor& y, Tensor& save_mean, Tensor& save_invstd,
                         const BatchNormOptions& o) override;
  void batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& save_mean,
                          const Tensor& save_invstd, Tensor& dx, Tensor& dweight, Tensor& dbias,
                          const BatchNormOptions& o) override;
  // Where batch norm is our kernels (half activations, and F32 with own_f32_batchnorm), its parts
  // cost what the whole does. cuDNN's F32 batch norm is one call, and stays whole.
  bool splits_batchnorm(DType dtype) const override;
  void batchnorm_forward_coefficients(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                                      Tensor& running_var, Tensor& save_mean, Tensor& save_invstd,
                                      Tensor& coefficients, const BatchNormOptions& o) override;
  void batchnorm_apply(const Tensor& x, const Tensor& coefficients, Tensor& y) override;
  void batchnorm_backward_coefficients(const Tensor& dy, const Tensor& x, const Tensor& weight,
                                       const Tensor& save_mean, const Tensor& save_invstd, Tensor& dweight,
                                       Tensor& dbias, Tensor& coefficients, const BatchNormOptions& o) override;
  void batchnorm_dx(const Tensor& dy, const Tensor& x, const Tensor& coefficients, Tensor& dx) override;
  // One sums pass over the ReLU's dy and x, the mask taken in it (and BatchNormReluDx one pass).
  void batchnorm_relu_backward_coefficients(const Tensor& relu_dy, const Tensor& x, const Tensor& forward_coefficients,
                                            const Tensor& weight, const Tensor& save_mean, const Tensor& save_invstd,
                                            Tensor& dweight, Tensor& dbias, Tensor& coefficients,
                                            const BatchNormOptions& o) override;
  void relu_forward(const Tensor& x, Tensor& y) override;
  void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) override;
  void maxpool2d_forward(const Tensor& x, Tensor& y, Tensor& indices, const Pool2dGeometry& g) override;
  void maxpool2d_backward(const Tensor& dy, const Tensor& indices, Tensor& dx, const Pool2dGeometry& g) override;
  void adaptive_avgpool_forward(const Tensor& x, Tensor& y) override;
  void adaptive_avgpool_backward(const Tensor& dy, Tensor& dx) override;
  void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) override;
  void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dx, Tensor& dw,
                       Tensor& db) override;
  using Backend::cross_entropy_forward;
  void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& probs, Tensor& loss) override;
  void cross_entropy_backward(const Tensor& probs, const Tensor& labels, Tensor& dlogits) override;
  void sgd_update(Tensor& param, const Tensor& grad, Tensor& momentum_buffer, bool first_step,
                  const SgdOptions& o, const Tensor& skip_if) override;
  // One launch for every 64 parameters (cuda/sgd.cuh's sgd_update_list).
  void sgd_update_all(const std::vector<SgdTensors>& tensors, bool first_step, const SgdOptions& o,
                      const Tensor& skip_if) override;
  void unscale_gradient_(Tensor& grad, const Tensor& scale, Tensor& found_inf) override;
  void unscale_gradients_(const std::vector<Tensor*>& grads, const Tensor& scale, Tensor& found_inf) override;
  void update_loss_scale(Tensor& scale, Tensor& growth_tracker, const Tensor& found_inf,
                         const LossScaleOptions& o) override;

  // ---- probes ----
  // A run given the op that writes its tensor (options.produce) computes the tensor in its first
  // pass, in the tensor's dtype, unless that pass needs a clipnorm's norm first: then the op runs
  // on its own before it (run_producing_op).
  // Every probe of a hook on a device tensor is one fused pass (fused_probes.cuh) whose results go
  // to a slot of the step's arena (runs of the common probes wait to share their launch with the
  // runs after them: batch_probe_run); the run is deferred: seal_deferred_probe_results() queues the
  // arena's one copy to the host, and the batch it returns decodes every slot (probe_plan.h). Captures travel through the pinned capture ring. Changing probes rewrite
  // the tensor in the same pass, and their gradient transforms are device tensors.
  ProbeRunEffects run_probes(const ProbeList& probes, Tensor& tensor, ProbeRecord& record,
                             const ProbeRunOptions& options) override;
  void run_producing_op(const ProducingOp& op, Tensor& out) override;
  std::unique_ptr<DeferredProbeBatch> seal_deferred_probe_results() override;

  // ---- recording a step: stream capture into a CUDA graph (step_graph.h) ----
  bool begin_step_recording() override;
  std::unique_ptr<StepGraph> end_step_recording() override;
  void abandon_step_recording() noexcept override;

 private:
  void upload(const void* host_src, void* device_dst, size_t bytes);
  // sgd_update's operands checked, and the momentum buffer made on the first step where it is
  // missing or unlike the parameter; the pointers its kernels take.
  cuda::SgdTensorPointers checked_sgd_tensors(Tensor& param, const Tensor& grad, Tensor& momentum_buffer,
                                              bool first_step, const SgdOptions& o);
  // Throws naming `what` while a step is recorded: it would need the host mid-step.
  void refuse_while_recording(const char* what) const;
  // An output: allocated on the device in `format` when undefined, else checked against shape and
  // dtype (its layout is the caller's to check: require_same_layout, shared_layout).
  void prepare_output(Tensor& t, const Shape& shape, DType dtype, const char* op, const char* name,
                      MemoryFormat format = MemoryFormat::Contiguous);
  // The inputs of the op that writes a probed tensor in the probe pass (probes in its epilogue);
  // nothing where the pass cannot compute it (a batch norm's on more elements than its channel
  // arithmetic takes: the op then runs on its own).
  std::optional<FusedProducer> fused_producer(const ProducingOp& op, const Tensor& out);
  // A batch norm's operands checked as `op` names them, and its per-channel outputs prepared:
  // the forward's statistics (all but y), the backward's dweight and dbias (all but dx).
  BatchNormDims checked_batchnorm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                          const Tensor& running_mean, const Tensor& running_var, Tensor& save_mean,
                                          Tensor& save_invstd, const char* op);
  BatchNormDims checked_batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight,
                                           const Tensor& save_mean, const Tensor& save_invstd, Tensor& dweight,
                                           Tensor& dbias, const char* op);
  // A batch norm's apply with the ReLU after it (ProducingOp::BatchNormApplyRelu and
  // BatchNormApplyAddRelu) as one kernel; and the apply's checks and launch, with or without them.
  void batchnorm_apply_relu(const ProducingOp& op, Tensor& y);
  void apply_batchnorm(const char* op, const Tensor& x, const Tensor& coefficients, const Tensor* residual, bool relu,
                       Tensor& y);
  // batchnorm_dx's checks and launch, and BatchNormReluDx's (through_relu: x defined, six rows).
  void batchnorm_dx_of(const char* op, const Tensor& dy, const Tensor& x, const Tensor& coefficients,
                       bool through_relu, Tensor& dx);
  // A batch norm's producer with its coefficients and channel arithmetic, where the pass takes it.
  std::optional<FusedProducer> with_batchnorm_coefficients(FusedProducer producer, const ProducingOp& op,
                                                           const Tensor& out);
  // run_probes for a run with options.probe_input, where one pass can read the input for both;
  // nothing (and nothing queued) where it cannot.
  std::optional<ProbeRunEffects> run_probes_reading_input_once(const ProbeList& probes, Tensor& tensor,
                                                               const ProbeRunOptions& options);
  // A probe run waiting to share a launch, holding its tensor alive until then.
  struct BatchedRun {
    Tensor tensor;
    std::shared_ptr<const ProbePlan> plan;
    double* slot = nullptr;
    uint64_t ticket = 0;
  };
  // A probe run that can share a launch (fused_probes_can_batch): its slot and ticket now, its kernel
  // with the next runs like it, at launch_batched_probes.
  ProbeRunEffects batch_probe_run(std::shared_ptr<const ProbePlan> plan, const Tensor& tensor);
  // Launches the batched runs as one kernel. Every method that queues work of hookrt's own gets the
  // stream from stream(), which calls this, so that the tensors a batch reads are as its runs found
  // them, and the zeroed counters and scratch it takes at launch are its own.
  void launch_batched_probes();
  // For cuDNN's and cuBLAS's ops, which queue on the stream their handles hold and touch nothing of
  // the probes' (counters, scratch, slots): launches the batched runs only where the op writes a
  // tensor one of them reads (sharing its storage), so that a batch may gather the runs on both
  // sides of a convolution or a batch norm (a parameter's gradient, then the layer's grad_input).
  void launch_batched_probes_before_writing(std::initializer_list<const Tensor*> written);
  // labels (N) as a device I64 tensor, checked to lie in [0, classes) on the host first.
  Tensor checked_device_labels(const Tensor& labels, int64_t n, int64_t classes, const char* op);
  // `t` on the device: itself, or a device copy of a host tensor.
  Tensor on_device(const Tensor& t);

  CudaBackendOptions options_;
  std::shared_ptr<CudaStream> stream_;
  DeviceMemoryPool pool_;
  HostTransfer transfer_;
  std::shared_ptr<PinnedHostPool> pinned_ = PinnedHostPool::create();
  CudnnHandle cudnn_;
  std::shared_ptr<Storage> cublas_workspace_;  // outlives cublas_, which works in it
  CublasHandle cublas_;
  Workspace workspace_;
  CudnnConvolutions convolutions_;
  CudnnBatchNorm batchnorm_;
  CublasLinear linear_;

  ProbeArena arena_;
  ZeroedCounters probe_counters_{pool_};
  Workspace probe_scratch_{pool_, "the probe passes' scratch"};  // block partials, row moments
  CaptureRing capture_ring_;
  std::vector<PendingProbeRun> pending_;
  std::vector<BatchedRun> batched_;  // probe runs waiting to share a launch (batch_probe_run)
  uint64_t next_ticket_ = 0;
  bool recording_ = false;
};

}  // namespace hookrt::cuda
