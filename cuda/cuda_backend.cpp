// CudaBackend: memory, elementwise ops and probes (the layer ops are in cuda_backend_ops.cpp).
#include "cuda_backend.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <variant>
#include <vector>

#include "add.cuh"
#include "convert.cuh"
#include "cpu/probes.h"
#include "fill.cuh"
#include "fused_probes.cuh"
#include "multiply.cuh"
#include "probe_plan.h"
#include "relu.cuh"
#include "status.h"
#include "tensor_checks.h"

namespace hookrt::cuda {
namespace {

// Makes `device` current for this thread and creates the backend's stream on it.
std::shared_ptr<CudaStream> stream_on(int device) {
  HOOKRT_CUDA_CHECK(cudaSetDevice(device));
  return std::make_shared<CudaStream>(CudaStream::create());
}

void require_host(const Tensor& t, const char* op, const char* name) {
  if (!t.defined()) throw Error(std::string(op) + ": " + name + " is undefined");
  if (t.device() != Device::CPU)
    throw Error(std::string(op) + ": " + name + " is on " + device_name(t.device()) + ", not the host");
}

}  // namespace

CudaBackend::CudaBackend(const CudaBackendOptions& options)
    : options_(options),
      stream_(stream_on(options.device)),
      pool_(options.device, stream_),
      transfer_(stream_),
      cudnn_(CudnnHandle::create(stream_->get())),
      cublas_workspace_(pool_.allocate_bytes(cublas_workspace_bytes(options.device))),
      cublas_(CublasHandle::create(stream_->get(), options.allow_tf32_matmul, cublas_workspace_->data,
                                   cublas_workspace_bytes(options.device))),
      workspace_(pool_, "cuDNN's workspace"),
      convolutions_(cudnn_.get(), stream_->get(), pool_, workspace_,
                    ConvolutionOptions{options.allow_tf32, options.conv_workspace_limit_bytes, options.conv_algorithms,
                                       options.deterministic_conv, options.max_cudnn_call_elements}),
      batchnorm_(cudnn_.get(), stream_->get(), pool_, options.own_f32_batchnorm, options.max_cudnn_call_elements),
      linear_(cublas_.get(), stream_->get()),
      arena_(pool_, stream_),
      capture_ring_(stream_, transfer_, options.capture_ring_bytes) {}

CudaBackend::~CudaBackend() {
  // Queued work may still use the workspace and the handles destroyed below.
  HOOKRT_CUDA_LOG(cudaStreamSynchronize(stream_->get()));
}

std::string CudaBackend::name() const { return "cuda:" + std::to_string(options_.device); }

// ---- memory ---------------------------------------------------------------------------------------

Tensor CudaBackend::empty(const Shape& shape, DType dtype, MemoryFormat format) {
  const Tensor t = pool_.allocate(shape, dtype);
  return Tensor(t.storage(), t.shape(), t.dtype(), t.byte_offset(), format);
}

Tensor CudaBackend::zeros(const Shape& shape, DType dtype, MemoryFormat format) {
  Tensor t = empty(shape, dtype, format);
  if (t.nbytes() > 0) HOOKRT_CUDA_CHECK(cudaMemsetAsync(t.raw_data(), 0, t.nbytes(), stream()));
  return t;
}

void CudaBackend::copy(const Tensor& src, Tensor& dst) {
  if (!src.defined()) throw Error("copy: src is undefined");
  if (!dst.defined()) {
    const MemoryFormat format = src.memory_format();
    dst = src.device() == Device::CUDA ? empty(src.shape(), src.dtype(), format)
                                       : Tensor::empty(src.shape(), src.dtype(), format);
  }
  if (dst.dtype() != src.dtype())
    throw Error("copy: dst has dtype " + dtype_name(dst.dtype()) + "; expected " + dtype_name(src.dtype()));
  if (dst.numel() != src.numel())
    throw Error("copy: src " + shape_string(src.shape()) + " and dst " + shape_string(dst.shape()) +
                " differ in element count");
  require_same_layout(dst, src, "copy", "dst", "src");  // bytes move as they lie: convert changes a layout
  const size_t bytes = src.nbytes();
  if (bytes == 0 || src.raw_data() == dst.raw_data()) return;
  const bool from_device = src.device() == Device::CUDA, to_device = dst.device() == Device::CUDA;
  if (from_device && to_device) {
    HOOKRT_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), bytes, cudaMemcpyDeviceToDevice, stream()));
  } else if (from_device) {
    refuse_while_recording("copy to the host");
    transfer_.to_host(src.raw_data(), dst.raw_data(), bytes);
  } else if (to_device) {
    upload(src.raw_data(), dst.raw_data(), bytes);
  } else {
    std::memmove(dst.raw_data(), src.raw_data(), bytes);
  }
}

// Where the elements already lie in one order only the dtype can change, element by element in
// memory order; otherwise they move (a tiled transpose per image), converted on the way.
void CudaBackend::convert(const Tensor& src, Tensor& dst) {
  require_device(src, "convert", "src");
  require_device(dst, "convert", "dst");
  if (!src.same_layout(dst)) {
    require_shape(dst, src.shape(), "convert", "dst");  // a 4-D shape, read in two orders
    const Shape& s = src.shape();
    cuda::convert_layout(src.raw_data(), src.dtype(), dst.raw_data(), dst.dtype(),
                         LayoutChange{s[0], s[1], s[2] * s[3], dst.memory_format()}, stream());
    return;
  }
  if (dst.numel() != src.numel())
    throw Error("convert: src " + shape_string(src.shape()) + " and dst " + shape_string(dst.shape()) +
                " differ in element count");
  if (src.dtype() == dst.dtype()) return copy(src, dst);
  cuda::convert(src.raw_data(), src.dtype(), dst.raw_data(), dst.dtype(), src.numel(), stream());
}

// A channels-last tensor comes down NCHW: moved on the device (a coalesced transpose) into a
// temporary, then copied, so that the host never walks it element by element.
Tensor CudaBackend::to_host(const Tensor& tensor) {
  if (!tensor.defined()) throw Error("to_host: tensor is undefined");
  if (tensor.device() == Device::CPU) return tensor.contiguous().clone();  // a new tensor, even where NCHW already
  refuse_while_recording("to_host");
  const Tensor nchw = converted(tensor, tensor.dtype(), MemoryFormat::Contiguous);
  Tensor host = Tensor::empty(nchw.shape(), nchw.dtype());
  transfer_.to_host(nchw.raw_data(), host.raw_data(), nchw.nbytes());
  return host;
}

Tensor CudaBackend::from_host(const Tensor& host) {
  require_host(host, "from_host", "host");
  Tensor device_tensor = empty(host.shape(), host.dtype(), host.memory_format());
  upload(host.raw_data(), device_tensor.raw_data(), host.nbytes());
  return device_tensor;
}

// Page-locked batches from empty_host() go up in one asynchronous copy; other host memory
// through the staging buffer.
void CudaBackend::upload(const void* host_src, void* device_dst, size_t bytes) {
  refuse_while_recording("copy from the host");
  if (!pinned_->upload(host_src, device_dst, bytes, stream())) transfer_.from_host(host_src, device_dst, bytes);
}

cudaStream_t CudaBackend::stream() {
  launch_batched_probes();
  return stream_->get();
}

void CudaBackend::synchronize() {
  refuse_while_recording("synchronize");
  launch_batched_probes();
  stream_->synchronize();
}

// A graph copies from the host address it was recorded with, each time it is replayed, and a
// wait for the device cannot be recorded at all.
void CudaBackend::refuse_while_recording(const char* what) const {
  if (recording_)
    throw Error(std::string(what) + " needs the host while the step is recorded as a graph, which cannot hold it");
}

// ---- recording a step -----------------------------------------------------------------------------

bool CudaBackend::begin_step_recording() {
  if (recording_) throw Error("internal: a step is recorded while another recording is under way");
  if (!pending_.empty() || arena_.reserved() != 0)
    throw Error("internal: a step is recorded before the probe runs of the one before were sealed");
  begin_capture(stream());
  recording_ = true;
  return true;
}

// The recorded probe runs leave the backend with the recording: each replay makes them pending
// again, with their slots reserved in the arena as they were.
std::unique_ptr<StepGraph> CudaBackend::end_step_recording() {
  if (!recording_) throw Error("internal: end_step_recording without a recording under way");
  Graph graph = end_capture(stream());  // if it throws, abandon_step_recording still has work to do
  recording_ = false;
  std::vector<PendingProbeRun> runs = std::move(pending_);
  pending_.clear();
  const int64_t slots = arena_.reserved();
  arena_.drop_reservations();
  // The warm-up step's temporaries stay cached in the pool; the recorded ones live in the graph.
  pool_.release_cached();
  auto check_ready = [this] {
    if (!pending_.empty() || arena_.reserved() != 0)
      throw Error("internal: a recorded step is replayed before the probe runs of the one before were sealed");
  };
  auto rearm = [this, runs = std::move(runs), slots] {
    arena_.reserve_as_recorded(slots);
    pending_ = runs;
  };
  return std::make_unique<CudaStepGraph>(graph, stream_, std::move(check_ready), std::move(rearm));
}

void CudaBackend::abandon_step_recording() noexcept {
  if (!recording_) return;
  recording_ = false;
  batched_.clear();  // recorded runs, dropped with the capture unlaunched
  drop_capture(stream_->get());
  pending_.clear();
  arena_.drop_reservations();
}

Tensor CudaBackend::on_device(const Tensor& t) { return t.device() == Device::CUDA ? t : from_host(t); }

void CudaBackend::prepare_output(Tensor& t, const Shape& shape, DType dtype, const char* op, const char* name,
                                 MemoryFormat format) {
  if (!t.defined()) {
    t = empty(shape, dtype, format);
    return;
  }
  require_dtype(t, dtype, op, name);
  require_shape(t, shape, op, name);
}

// ---- elementwise ----------------------------------------------------------------------------------

void CudaBackend::fill(Tensor& tensor, double value) {
  require_device(tensor, "fill", "tensor");
  cuda::fill(tensor.raw_data(), tensor.dtype(), tensor.numel(), value, stream());
}

void CudaBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  require_activation(a, "add", "a");
  require_same_dtype(b, a, "add", "b", "a");
  require_shape(b, a.shape(), "add", "b");
  require_same_layout(b, a, "add", "b", "a");
  prepare_output(out, a.shape(), a.dtype(), "add", "out", a.memory_format());
  require_same_layout(out, a, "add", "out", "a");
  cuda::add(a.raw_data(), b.raw_data(), out.raw_data(), a.dtype(), a.numel(), stream());
}

void CudaBackend::accumulate(Tensor& dst, const Tensor& src) {
  require_activation(dst, "accumulate", "dst");
  require_same_dtype(src, dst, "accumulate", "src", "dst");
  require_shape(src, dst.shape(), "accumulate", "src");
  require_same_layout(src, dst, "accumulate", "src", "dst");
  cuda::accumulate(dst.raw_data(), src.raw_data(), dst.dtype(), dst.numel(), stream());
}

// The factor is F32 or the tensor's dtype (a half gradient's clamp mask or clipnorm scale is F32).
void CudaBackend::multiply_(Tensor& tensor, const Tensor& factor) {
  require_activation(tensor, "multiply_", "tensor");
  if (!factor.defined()) throw Error("multiply_: factor is undefined");
  if (factor.numel() != 1 && factor.shape() != tensor.shape())
    throw Error("multiply_: factor " + shape_string(factor.shape()) + " is neither one element nor the tensor's shape " +
                shape_string(tensor.shape()));
  if (factor.numel() != 1) require_same_layout(factor, tensor, "multiply_", "factor", "tensor");
  // The factor may come from the host (a probe's GradTransform) and in another float dtype.
  const bool usable = factor.dtype() == DType::F32 || factor.dtype() == tensor.dtype();
  const Tensor host_f32 = factor.device() == Device::CPU && !usable ? factor.to(DType::F32) : factor;
  const Tensor f = on_device(host_f32);
  if (f.dtype() != tensor.dtype()) require_f32(f, "multiply_", "factor");
  if (f.numel() == 1 && tensor.numel() != 1) {
    multiply_by_scalar(tensor.raw_data(), tensor.dtype(), f.raw_data(), f.dtype(), tensor.numel(), stream());
  } else {
    multiply_elementwise(tensor.raw_data(), tensor.dtype(), f.raw_data(), f.dtype(), tensor.numel(), stream());
  }
}

// ---- probes ---------------------------------------------------------------------------------------

// Queues one fused probe run whose results land in this step's arena slot; the record is finished
// when the step's batch of deferred runs is sealed and finished (normally at the step's end). Nothing here waits
// for the device (a capture may, when the capture ring is full).
ProbeRunEffects CudaBackend::run_probes(const ProbeList& probes, Tensor& tensor, ProbeRecord& record,
                                        const ProbeRunOptions& options) {
  if (options.probe_input) {
    if (std::optional<ProbeRunEffects> effects = run_probes_reading_input_once(probes, tensor, options)) return *effects;
    return run_input_probes_apart(probes, tensor, record, options);
  }
  if (tensor.device() != Device::CUDA || probes.empty()) return cpu::produce_and_run_probes(*this, probes, tensor, record, options);
  const ProbeElement element = probe_element(tensor.dtype(), tensor.shape(), probe_name(probes.front()));
  cpu::check_clamp_bounds(probes, tensor.dtype());  // before anything is queued
  auto plan = std::make_shared<const ProbePlan>(plan_probes(probes, tensor, options));
  if (!options.produce && fused_probes_can_batch(*plan)) return batch_probe_run(std::move(plan), tensor);
  launch_batched_probes();  // before this run takes the zeroed counters and scratch the batch shares
  FusedProducer producer;
  if (options.produce) {
    // A pass that needs the tensor's norm before it can write it: the op first, then the passes.
    std::optional<FusedProducer> fused;
    if (fused_probes_can_produce(*plan)) fused = fused_producer(*options.produce, tensor);
    if (fused)
      producer = *fused;
    else
      run_producing_op(*options.produce, tensor);
  }
  ProbeRunEffects effects;

  // Device buffers the kernels write: the arena slot, each clamp's grad mask (only when the
  // executor wants gradient transforms), each clipnorm's scale (always: the main pass reads it),
  // and one copy per pass that ends in captures.
  const ProbeArena::Slot slot = arena_.reserve(plan->slot_size);
  FusedProbeBuffers buffers;
  buffers.producer = producer;
  buffers.element = element;
  buffers.tensor = tensor.raw_data();
  buffers.slot = slot.device;
  buffers.zeroed_counters = probe_counters_.words(fused_probe_counter_words(*plan));
  buffers.clamp_masks.assign(probes.size(), nullptr);
  buffers.clip_scales.assign(probes.size(), nullptr);
  std::vector<Tensor> factors(probes.size());  // by probe: a clamp's mask or a clipnorm's scale
  for (size_t i = 0; i < probes.size(); ++i) {
    if (std::holds_alternative<probes::Clamp>(probes[i]) && options.want_grad_transforms) {
      factors[i] = empty(tensor.shape(), DType::F32, tensor.memory_format());  // written in the tensor's order
      buffers.clamp_masks[i] = factors[i].data<float>();
    } else if (std::holds_alternative<probes::ClipNorm>(probes[i])) {
      factors[i] = empty({1}, DType::F32);
      buffers.clip_scales[i] = factors[i].data<float>();
    }
  }
  std::vector<Tensor> captures(plan->passes.size());
  buffers.captures.assign(plan->passes.size(), nullptr);
  for (size_t p = 0; p < plan->passes.size(); ++p)
    if (!plan->passes[p].captures.empty()) {
      refuse_while_recording("a capture probe");  // the capture ring waits for the host
      // The dtype and the order of the pass's reads (it writes the capture as it reads the tensor).
      captures[p] = empty(tensor.shape(), tensor.dtype(), tensor.memory_format());
      buffers.captures[p] = captures[p].raw_data();
    }

  // The raw stream: the batch went before this run took the zeroed counters, and a launch now
  // could grow them under it.
  run_fused_probes(*plan, buffers, [this](size_t bytes) { return probe_scratch_.reserve(bytes); }, stream_->get());

  PendingProbeRun pending{next_ticket_++, plan, slot.offset, {}};
  for (const Tensor& capture : captures) {
    if (!capture.defined()) continue;
    // Captures reach the host NCHW, as to_host gives tensors. A channels-last one is moved on the
    // device first, queued on the stream before the copy: the handover stays one asynchronous
    // copy into the ring (nothing waits, nothing needs the host, as a graph would require), and
    // the delivery thread never reorders a large tensor element by element on the host.
    const Tensor nchw = converted(capture, capture.dtype(), MemoryFormat::Contiguous);
    pending.captures.push_back(Tensor::empty(nchw.shape(), nchw.dtype()));
    capture_ring_.push(nchw, pending.captures.back());  // the device copies are freed in stream order
  }
  effects.deferred = pending.ticket;
  pending_.push_back(std::move(pending));
  effects.changed = plan->changes_tensor;
  if (options.want_grad_transforms)
    for (size_t i = 0; i < probes.size(); ++i) {
      if (std::holds_alternative<probes::Clamp>(probes[i]))
        effects.grad_transforms.push_back(GradTransform{GradTransform::Kind::Mask, factors[i]});
      else if (std::holds_alternative<probes::ClipNorm>(probes[i]))
        effects.grad_transforms.push_back(GradTransform{GradTransform::Kind::Scale, factors[i]});
    }
  return effects;
}

ProbeRunEffects CudaBackend::batch_probe_run(std::shared_ptr<const ProbePlan> plan, const Tensor& tensor) {
  // A batch reads one element type: a run of another goes in the next batch.
  if (!batched_.empty() && batched_.front().tensor.dtype() != tensor.dtype()) launch_batched_probes();
  const ProbeArena::Slot slot = arena_.reserve(plan->slot_size);
  batched_.push_back(BatchedRun{tensor, plan, slot.device, next_ticket_});
  PendingProbeRun pending{next_ticket_++, std::move(plan), slot.offset, {}};
  ProbeRunEffects effects;
  effects.deferred = pending.ticket;
  pending_.push_back(std::move(pending));
  if (batched_.size() == kMaxBatchedProbeRuns) launch_batched_probes();
  return effects;
}

// The batched runs as one launch (run_fused_probe_batch). Where the launch fails, the runs' records
// come with no results (PendingProbeRun::launched), and the error goes on.
void CudaBackend::launch_batched_probes() {
  if (batched_.empty()) return;
  const std::vector<BatchedRun> launching = std::move(batched_);
  batched_.clear();  // (a launch that throws leaves no batch behind)
  std::vector<BatchedProbeRun> runs;
  for (const BatchedRun& run : launching) {
    const ProbeElement element = probe_element(run.tensor.dtype(), run.tensor.shape(), "batch");
    runs.push_back(BatchedProbeRun{run.plan.get(), element, run.tensor.raw_data(), run.slot});
  }
  try {
    run_fused_probe_batch(runs, probe_counters_.words(fused_batch_counter_words(runs)),
                          [this](size_t bytes) { return probe_scratch_.reserve(bytes); }, stream_->get());
  } catch (...) {
    for (PendingProbeRun& pending : pending_)
      for (const BatchedRun& run : launching)
        if (pending.ticket == run.ticket) pending.launched = false;
    throw;
  }
}

void CudaBackend::launch_batched_probes_before_writing(std::initializer_list<const Tensor*> written) {
  for (const BatchedRun& run : batched_)
    for (const Tensor* tensor : written)
      if (tensor->defined() && tensor->storage() == run.tensor.storage()) return launch_batched_probes();
}

namespace {

// What the op is called and its operands, in the words of the backend's own methods.
struct ProducingOpNames {
  const char* op;
  const char* a;
  const char* b;  // nullptr: the op has no second operand
};

ProducingOpNames names_of(ProducingOp::Kind kind) {
  switch (kind) {
    case ProducingOp::Kind::ReluForward: return {"relu_forward", "x", nullptr};
    case ProducingOp::Kind::ReluBackward: return {"relu_backward", "y", "dy"};
    case ProducingOp::Kind::AddReluForward: return {"add_relu_forward", "a", "b"};
    case ProducingOp::Kind::BatchNormApply: return {"batchnorm_apply", "x", nullptr};
    case ProducingOp::Kind::BatchNormDx: return {"batchnorm_dx", "dy", "x"};  // x: training only
    case ProducingOp::Kind::BatchNormApplyRelu: return {"batchnorm_apply_relu", "x", nullptr};
    case ProducingOp::Kind::BatchNormApplyAddRelu: return {"batchnorm_apply_add_relu", "x", "b"};
    case ProducingOp::Kind::BatchNormReluDx: return {"batchnorm_relu_dx", "dy", "x"};
  }
  throw Error("internal: unknown producing op");
}

ProducerKind producer_kind(ProducingOp::Kind kind) {
  switch (kind) {
    case ProducingOp::Kind::ReluForward: return ProducerKind::ReluForward;
    case ProducingOp::Kind::ReluBackward: return ProducerKind::ReluBackward;
    case ProducingOp::Kind::AddReluForward: return ProducerKind::AddReluForward;
    case ProducingOp::Kind::BatchNormApply: return ProducerKind::BatchNormApply;
    case ProducingOp::Kind::BatchNormDx: return ProducerKind::BatchNormDx;
    // No probe pass computes these: their kernel runs first (fused_producer).
    case ProducingOp::Kind::BatchNormApplyRelu:
    case ProducingOp::Kind::BatchNormApplyAddRelu:
    case ProducingOp::Kind::BatchNormReluDx: return ProducerKind::None;
  }
  throw Error("internal: unknown producing op");
}

}  // namespace

// The producing op's inputs as the probe pass reads them, checked as the backend's ops check
// theirs: the output's dtype (F32, BF16 or F16), shape and layout.
std::optional<FusedProducer> CudaBackend::fused_producer(const ProducingOp& op, const Tensor& out) {
  if (producer_kind(op.kind) == ProducerKind::None) return std::nullopt;  // its own kernel first
  const ProducingOpNames names = names_of(op.kind);
  require_activation(out, names.op, "the output");
  require_same_dtype(op.a, out, names.op, names.a, "the output");
  require_shape(op.a, out.shape(), names.op, names.a);
  require_same_layout(op.a, out, names.op, names.a, "the output");  // the pass walks both in memory order
  FusedProducer producer;
  producer.kind = producer_kind(op.kind);
  producer.a = op.a.raw_data();
  if (names.b && op.b.defined()) {  // (a batch norm's inference dx has no x)
    require_same_dtype(op.b, out, names.op, names.b, "the output");
    require_shape(op.b, out.shape(), names.op, names.b);
    require_same_layout(op.b, out, names.op, names.b, "the output");
    producer.b = op.b.raw_data();
  } else if (names.b && op.kind != ProducingOp::Kind::BatchNormDx) {
    throw Error(std::string(names.op) + ": " + names.b + " is not defined");
  }
  if (op.kind == ProducingOp::Kind::BatchNormApply || op.kind == ProducingOp::Kind::BatchNormDx)
    return with_batchnorm_coefficients(producer, op, out);
  return producer;
}

// A batch norm's pass finds each element's channel as its own kernel does: (i / inner) % C, with
// inner = H*W in NCHW and 1 channels-last.
std::optional<FusedProducer> CudaBackend::with_batchnorm_coefficients(FusedProducer producer, const ProducingOp& op,
                                                                      const Tensor& out) {
  const char* name = producer.kind == ProducerKind::BatchNormApply ? "batchnorm_apply" : "batchnorm_dx";
  const int64_t rows = producer.kind == ProducerKind::BatchNormApply ? 2 : 4;
  if (out.ndim() < 2) throw Error(std::string(name) + ": the output has shape " + shape_string(out.shape()) +
                                  "; expected (N, C, ...)");
  require_f32(op.coefficients, name, "coefficients");
  require_shape(op.coefficients, Shape{rows, out.size(1)}, name, "coefficients");
  const int64_t channels = out.size(1);
  const int64_t planes = out.size(0) * channels;
  const int64_t inner = !out.is_contiguous() ? 1 : planes > 0 ? out.numel() / planes : 1;
  if (!fused_batchnorm_fits(out.numel(), inner, channels)) return std::nullopt;
  producer.coefficients = op.coefficients.data<float>();
  producer.inner = FastDivmod(static_cast<uint32_t>(inner));
  producer.channels = FastDivmod(static_cast<uint32_t>(channels));
  return producer;
}

// The residual add and its ReLU as one kernel, a batch norm's apply with them or with a ReLU
// alone, and its dx through a ReLU; the other ops are the backend's own. F32, BF16 or F16.
void CudaBackend::run_producing_op(const ProducingOp& op, Tensor& out) {
  if (op.kind == ProducingOp::Kind::BatchNormApplyRelu || op.kind == ProducingOp::Kind::BatchNormApplyAddRelu)
    return batchnorm_apply_relu(op, out);
  if (op.kind == ProducingOp::Kind::BatchNormReluDx)
    return batchnorm_dx_of("batchnorm_relu_dx", op.a, op.b, op.coefficients, true, out);
  if (op.kind != ProducingOp::Kind::AddReluForward) return Backend::run_producing_op(op, out);
  const char* name = "add_relu_forward";
  require_activation(op.a, name, "a");
  require_same_dtype(op.b, op.a, name, "b", "a");
  require_shape(op.b, op.a.shape(), name, "b");
  require_same_layout(op.b, op.a, name, "b", "a");
  prepare_output(out, op.a.shape(), op.a.dtype(), name, "y", op.a.memory_format());
  require_same_layout(out, op.a, name, "y", "a");
  cuda::add_relu_forward(op.a.raw_data(), op.b.raw_data(), out.raw_data(), out.dtype(), out.numel(), stream());
}

// A producing op's output (a ReLU's, the residual add's ReLU's, a ReLU backward's gradient)
// written, and probed where it has probes, by the pass that reads the op's inputs and probes one
// of them for options.probe_input: a batch norm's output, or a gradient into a ReLU, read once,
// not twice. Only common probes on both (fused_probes_can_probe_input): none changes or captures,
// so the run is only its slots, read when the step's results are.
std::optional<ProbeRunEffects> CudaBackend::run_probes_reading_input_once(const ProbeList& probes, Tensor& tensor,
                                                                          const ProbeRunOptions& options) {
  const InputProbeRun& run = *options.probe_input;
  if (!options.produce || run.record == nullptr || run.input < 0 || run.input > 1)
    return std::nullopt;  // run_input_probes_apart says what is missing
  const Tensor& input = run.input == 0 ? options.produce->a : options.produce->b;
  if (tensor.device() != Device::CUDA || !is_probe_element(tensor.dtype()) || !input.defined() ||
      input.device() != Device::CUDA || input.dtype() != tensor.dtype() || input.shape() != tensor.shape() ||
      !input.same_layout(tensor))
    return std::nullopt;  // (dtypes or layouts that differ: the producing op's own checks refuse them)
  ProbeRunOptions input_options;
  input_options.channel_axis = run.channel_axis;
  auto input_plan = std::make_shared<const ProbePlan>(plan_probes(run.probes, input, input_options));
  auto plan = std::make_shared<const ProbePlan>(plan_probes(probes, tensor, options));
  const ProducerKind kind = producer_kind(options.produce->kind);
  if (!fused_probes_can_probe_input(*plan, kind, FusedInputProbes{input_plan.get(), run.input, nullptr}))
    return std::nullopt;
  const std::optional<FusedProducer> producer = fused_producer(*options.produce, tensor);
  if (!producer) return std::nullopt;

  launch_batched_probes();  // before this run takes the zeroed counters and scratch the batch shares
  const ProbeArena::Slot input_slot = arena_.reserve(input_plan->slot_size);
  const bool output_probed = !probes.empty();  // else the run only writes the tensor
  const ProbeArena::Slot slot = output_probed ? arena_.reserve(plan->slot_size) : ProbeArena::Slot{};
  FusedProbeBuffers buffers;
  buffers.producer = *producer;
  buffers.element = probe_element(tensor.dtype(), tensor.shape(), "input");
  buffers.tensor = tensor.raw_data();
  buffers.slot = slot.device;
  buffers.input = FusedInputProbes{input_plan.get(), run.input, input_slot.device};
  buffers.zeroed_counters = probe_counters_.words(fused_probe_counter_words(*plan, input_plan.get()));
  run_fused_probes(*plan, buffers, [this](size_t bytes) { return probe_scratch_.reserve(bytes); }, stream_->get());

  ProbeRunEffects effects;
  effects.input_deferred = next_ticket_;
  pending_.push_back(PendingProbeRun{next_ticket_++, input_plan, input_slot.offset, {}});
  if (output_probed) {
    effects.deferred = next_ticket_;
    pending_.push_back(PendingProbeRun{next_ticket_++, plan, slot.offset, {}});
  }
  return effects;
}

// One copy of the arena, queued; the captures' copies are waited for here (the capture ring is
// the backend's), the arena's by whoever finishes the batch.
std::unique_ptr<DeferredProbeBatch> CudaBackend::seal_deferred_probe_results() {
  if (pending_.empty()) return nullptr;
  refuse_while_recording("sealing probe results");  // it records an event and may wait for room
  launch_batched_probes();  // before the arena's copy, which its own handle on the stream queues
  std::vector<PendingProbeRun> runs = std::move(pending_);
  pending_.clear();
  capture_ring_.drain();
  return std::make_unique<CudaProbeBatch>(arena_.seal(), std::move(runs));
}

}  // namespace hookrt::cuda
