// Probes in the ReLU's epilogue on the GPU: a probe run handed the op that writes its tensor
// (ProbeRunOptions::produce: a ReLU, its backward, or a residual add with its ReLU) writes it and
// probes it in one pass, on F32, BF16 and F16 tensors (batch norms' passes:
// test_gpu_batchnorm_epilogue_probes). Against the CPU backend's ops followed by
// the CPU probe engine: the tensor bit for bit, every result as test_gpu_probes holds them, on
// sizes that are not multiples of 4, inputs and outputs at different alignments, one element, a
// tensor larger than the grid, and lists whose first pass cannot write the tensor (a clipnorm
// needs its norm first) or that take several passes. Then whole steps in each precision: the GPU
// executor with and without epilogue probes gives the same step. Skips where there is no GPU.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cpu/probes.h"
#include "cuda_entry.h"
#include "hookrt/backend.h"
#include "hookrt/executor.h"
#include "hookrt/hook_spec.h"
#include "support/gpu.h"
#include "support/probe_results.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using namespace hookrt::testing;  // parse_list, nasty_tensor, expect_same_*

constexpr double kRel = 1e-5;        // DESIGN.md's accuracy promise, as in test_gpu_probes
constexpr float kSentinel = 7.0f;    // a value of every dtype below

constexpr DType kDtypes[] = {DType::F32, DType::BF16, DType::F16};

const std::vector<std::string> kLists = {
    "stats,zeros,nonfinite",
    "capture,stats",
    "hist=8:-2:2,channels,zeros",  // a row pass
    "clamp=-1:1,stats,capture",
    "clipnorm=1,stats",       // the first pass needs the norm: the ReLU runs on its own first
    "stats,clipnorm=1,stats",
    "stats,zeros,nonfinite,hist=16:-3:3,channels,clamp=-1:1,stats",  // two passes
};

// A device view of `dtype`, `offset` elements into an allocation filled with the sentinel: for
// 16-bit types an offset of one element is 2 bytes, off the pass's 8-byte chunks.
Tensor sentinel_view(Backend& gpu, const Shape& shape, size_t offset, DType dtype) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  Tensor backing = gpu.empty({n + 4}, dtype);
  gpu.fill(backing, kSentinel);
  return Tensor(backing.storage(), shape, dtype, offset * dtype_size(dtype));
}

// The sentinels after a sentinel_view `offset` elements in are still there.
void expect_nothing_written_past(Backend& gpu, const Tensor& view, size_t offset, const std::string& name) {
  const Tensor backing = gpu.to_host(Tensor(view.storage(), {view.numel() + 4 - static_cast<int64_t>(offset)},
                                            view.dtype(), offset * dtype_size(view.dtype())))
                             .to(DType::F32);
  for (int64_t i = view.numel(); i < backing.numel(); ++i)
    EXPECT_EQ(backing.data<float>()[i], kSentinel) << name << ": written past the end at " << i;
}

// The op's inputs on the device (b undefined where host_b is), each in a sentinel_view of their
// dtype, inputs at `input_offset` and 3 - input_offset, and its output's view at `output_offset`.
struct DeviceOperands {
  Tensor a, b, out;
};
DeviceOperands device_operands(Backend& gpu, const Tensor& host_a, const Tensor& host_b, const Shape& shape,
                               size_t input_offset, size_t output_offset) {
  const DType dtype = host_a.dtype();
  DeviceOperands d;
  d.a = sentinel_view(gpu, shape, input_offset, dtype);
  gpu.copy(host_a, d.a);
  if (host_b.defined()) {
    d.b = sentinel_view(gpu, shape, 3 - input_offset, dtype);
    gpu.copy(host_b, d.b);
  }
  d.out = sentinel_view(gpu, shape, output_offset, dtype);
  return d;
}

std::string kind_name(ProducingOp::Kind kind) {
  switch (kind) {
    case ProducingOp::Kind::ReluForward: return "relu_forward";
    case ProducingOp::Kind::ReluBackward: return "relu_backward";
    case ProducingOp::Kind::AddReluForward: return "add_relu_forward";
    case ProducingOp::Kind::BatchNormApply: return "batchnorm_apply";
    case ProducingOp::Kind::BatchNormDx: return "batchnorm_dx";
    case ProducingOp::Kind::BatchNormApplyRelu: return "batchnorm_apply_relu";
    case ProducingOp::Kind::BatchNormApplyAddRelu: return "batchnorm_apply_add_relu";
    case ProducingOp::Kind::BatchNormReluDx: return "batchnorm_relu_dx";
  }
  return "?";
}

constexpr ProducingOp::Kind kKinds[] = {ProducingOp::Kind::ReluForward, ProducingOp::Kind::ReluBackward,
                                         ProducingOp::Kind::AddReluForward};

struct Case {
  ProducingOp::Kind kind;
  Shape shape;
  size_t input_offset, output_offset;
  std::string list;
  uint64_t seed;
  DType dtype = DType::F32;

  std::string name() const {
    return kind_name(kind) + " [" + list + "] on " + dtype_name(dtype) + " " + shape_string(shape) +
           ", inputs at +" + std::to_string(input_offset) + ", output at +" + std::to_string(output_offset);
  }
};

void expect_fused_run_matches_cpu(Backend& gpu, const Case& c) {
  const bool one_operand = c.kind == ProducingOp::Kind::ReluForward;
  const Tensor host_a = nasty_tensor(c.shape, c.seed).to(c.dtype);
  const Tensor host_b = one_operand ? Tensor() : nasty_tensor(c.shape, c.seed + 1).to(c.dtype);
  ProbeRunOptions options;
  options.channel_axis = c.shape.size() > 1 ? 1 : 0;
  options.want_grad_transforms = true;

  // The CPU backend writes the tensor with its ops, then the CPU engine probes it.
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  Tensor want = Tensor::empty(c.shape, c.dtype);
  cpu->run_producing_op(ProducingOp{c.kind, host_a, host_b}, want);
  ProbeRecord want_record;
  const ProbeList list = parse_list(c.list);
  const ProbeRunEffects want_effects = cpu::run_probes(list, want, want_record, options);

  auto [a, b, out] = device_operands(gpu, host_a, host_b, c.shape, c.input_offset, c.output_offset);
  options.produce = ProducingOp{c.kind, a, b};
  ProbeRecord got_record;
  const ProbeRunEffects got_effects = run_probes_now(gpu, list, out, got_record, options);

  const bool scaled = c.list.find("clipnorm") != std::string::npos;
  const double tensor_rel = scaled ? clipnorm_tensor_rel(c.dtype) : 0.0;
  expect_same_results(got_record.results, want_record.results, kRel, tensor_rel, c.name());
  const Tensor got = gpu.to_host(out);
  EXPECT_EQ(got.dtype(), c.dtype) << c.name();
  expect_same_floats(got, want, tensor_rel, c.name() + " tensor");
  EXPECT_EQ(got_effects.changed, want_effects.changed) << c.name();
  EXPECT_EQ(got_effects.grad_transforms.size(), want_effects.grad_transforms.size()) << c.name();
  expect_nothing_written_past(gpu, out, c.output_offset, c.name());
}

TEST(GpuEpilogueProbes, WriteTheReluAndProbeItAsTheCpuBackendDoes) {
  HOOKRT_GPU_OR_SKIP(gpu);
  uint64_t seed = 700;
  const std::vector<Shape> shapes = {{2, 3, 5, 7}, {1}, {4, 16, 9, 9}};
  for (const DType dtype : kDtypes)
    for (const ProducingOp::Kind kind : kKinds)
      for (const Shape& shape : shapes)
        for (const std::string& list : kLists)
          for (const auto& [input_offset, output_offset] : {std::pair<size_t, size_t>{0, 0}, {1, 0}, {0, 3}, {2, 1}})
            expect_fused_run_matches_cpu(*gpu, Case{kind, shape, input_offset, output_offset, list, seed += 2, dtype});
}

TEST(GpuEpilogueProbes, WriteATensorLargerThanTheGrid) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (const DType dtype : kDtypes)
    for (const ProducingOp::Kind kind : kKinds)
      expect_fused_run_matches_cpu(*gpu, Case{kind, {3, 64, 130, 131}, 1, 0, "stats,zeros,nonfinite", 900, dtype});
}

// A 16-bit tensor's pass writes it in one launch, as an F32 one's does: the op runs in the pass.
TEST(GpuEpilogueProbes, WriteA16BitTensorInTheProbePassItself) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (const DType dtype : {DType::BF16, DType::F16})
    for (const ProducingOp::Kind kind : kKinds) {
      const std::string name = kind_name(kind) + " on " + dtype_name(dtype);
      const Shape shape{2, 8, 6, 6};
      const Tensor a = gpu->from_host(nasty_tensor(shape, 40).to(dtype));
      const Tensor b = kind == ProducingOp::Kind::ReluForward ? Tensor() : gpu->from_host(nasty_tensor(shape, 41).to(dtype));
      Tensor out = gpu->empty(shape, dtype);
      ProbeRunOptions options;
      options.produce = ProducingOp{kind, a, b};
      ProbeRecord record;
      std::string why_not_counted;
      const std::optional<cuda::LaunchCounts> counts = cuda::count_launches(
          [&] { run_probes_now(*gpu, parse_list("stats,zeros,nonfinite"), out, record, options); }, &why_not_counted);
      if (!counts) GTEST_SKIP() << "launches cannot be counted here: " << why_not_counted;
      EXPECT_EQ(counts->kernels, 1) << name;
    }
}

// Probes on the op's input (ProbeRunOptions::probe_input), run where the op reads it: a batch
// norm's output probed by its ReLU's pass. One pass where both lists are common probes (counted
// where launches can be), the input's probes on their own elsewhere; either way, against the CPU
// engine on the input and the CPU op and engine on the output.
struct InputCase {
  ProducingOp::Kind kind;
  int input;
  Shape shape;
  size_t input_offset, output_offset;
  std::string input_list, output_list;  // output_list may be empty: the run only writes the tensor
  bool common;                          // both lists are common probes (stats, nonfinite, one zeros)
  uint64_t seed;
  double value_offset = 0.0;  // below zero: most values negative, so ReLUs leave channels dead
  DType dtype = DType::F32;

  // Every input but ReLU backward's y (a ReLU's output, never probed waiting for its gradient).
  bool one_pass() const { return common && !(kind == ProducingOp::Kind::ReluBackward && input == 0); }
  std::string name() const {
    return kind_name(kind) + " probing input " + std::to_string(input) + " [" + input_list + "], output [" +
           output_list + "] on " + dtype_name(dtype) + " " + shape_string(shape) + ", inputs at +" +
           std::to_string(input_offset) +
           ", output at +" + std::to_string(output_offset) + ", values offset by " + std::to_string(value_offset);
  }
};

void expect_input_probes_match_cpu(Backend& gpu, const InputCase& c) {
  const bool one_operand = c.kind == ProducingOp::Kind::ReluForward;
  const Tensor host_a = nasty_tensor(c.shape, c.seed, c.value_offset, 1.0).to(c.dtype);
  const Tensor host_b = one_operand ? Tensor() : nasty_tensor(c.shape, c.seed + 1, c.value_offset, 1.0).to(c.dtype);
  const ProbeList input_list = parse_list(c.input_list);
  const ProbeList output_list = c.output_list.empty() ? ProbeList{} : parse_list(c.output_list);
  ProbeRunOptions options;
  options.channel_axis = c.shape.size() > 1 ? 1 : 0;

  std::unique_ptr<Backend> cpu = make_cpu_backend();
  ProbeRecord want_input;
  Tensor host_input = c.input == 0 ? host_a : host_b;
  cpu::run_probes(input_list, host_input, want_input, options);
  Tensor want = Tensor::empty(c.shape, c.dtype);
  cpu->run_producing_op(ProducingOp{c.kind, host_a, host_b}, want);
  ProbeRecord want_output;
  cpu::run_probes(output_list, want, want_output, options);

  auto [a, b, out] = device_operands(gpu, host_a, host_b, c.shape, c.input_offset, c.output_offset);
  gpu.synchronize();
  ProbeRecord got_input, got_output;
  options.produce = ProducingOp{c.kind, a, b};
  options.probe_input = InputProbeRun{c.input, input_list, options.channel_axis, &got_input};
  auto run = [&] { run_probes_now(gpu, output_list, out, got_output, options); };
  std::string why_not_counted;
  if (const std::optional<cuda::LaunchCounts> counts = cuda::count_launches(run, &why_not_counted)) {
    if (c.one_pass())
      EXPECT_EQ(counts->kernels, 1) << c.name() << ": the input is read by the pass that writes the tensor";
    else
      EXPECT_GE(counts->kernels, 2) << c.name() << ": the input's probes run on their own";
  } else {
    run();
  }

  expect_same_results(got_input.results, want_input.results, kRel, 0.0, c.name() + " input");
  expect_same_results(got_output.results, want_output.results, kRel, 0.0, c.name() + " output");
  expect_same_floats(gpu.to_host(out), want, 0.0, c.name() + " tensor");
  expect_same_floats(gpu.to_host(c.input == 0 ? a : b), host_input, 0.0, c.name() + " input, unchanged");
  expect_nothing_written_past(gpu, out, c.output_offset, c.name());
}

TEST(GpuEpilogueProbes, ProbeTheOpsInputAsTheCpuBackendDoes) {
  HOOKRT_GPU_OR_SKIP(gpu);
  uint64_t seed = 1100;
  struct Lists {
    std::string input, output;
    bool common;
  };
  const std::vector<Lists> lists = {
      {"stats,zeros,nonfinite", "", true},
      {"stats,zeros,nonfinite", "stats,zeros,nonfinite", true},
      {"zeros", "stats", true},
      {"stats,nonfinite", "zeros,stats", true},
      {"stats,zeros,nonfinite", "capture,stats", false},      // the output's list is not common: apart
      {"hist=8:-2:2,stats", "stats,zeros,nonfinite", false},  // nor the input's
  };
  const std::vector<std::pair<size_t, size_t>> offsets = {{0, 0}, {1, 0}, {0, 3}, {2, 1}};
  for (const DType dtype : kDtypes)
    for (const ProducingOp::Kind kind : kKinds)
      for (int input = 0; input < (kind == ProducingOp::Kind::ReluForward ? 1 : 2); ++input) {
        for (const Shape& shape : {Shape{2, 3, 5, 7}, Shape{1}, Shape{4, 16, 9, 9}})
          for (const Lists& l : lists)
            for (const auto& [input_offset, output_offset] : offsets)
              expect_input_probes_match_cpu(*gpu, InputCase{kind, input, shape, input_offset, output_offset, l.input,
                                                            l.output, l.common, seed += 2, 0.0, dtype});
        // Larger than the grid; most values negative, so that many channels are dead in both tensors.
        for (const double value_offset : {0.0, -2.5})
          expect_input_probes_match_cpu(*gpu, InputCase{kind, input, {3, 64, 130, 131}, 1, 0, lists[1].input,
                                                        lists[1].output, true, seed += 2, value_offset, dtype});
      }
}

// Alive flags of two zeros ops in one pass: in the block's shared memory while both tensors' fit,
// the input's in global memory once the output's take the room, both there beyond it.
TEST(GpuEpilogueProbes, ProbeTheOpsInputWithManyChannels) {
  HOOKRT_GPU_OR_SKIP(gpu);
  uint64_t seed = 1500;
  const std::pair<ProducingOp::Kind, int> probed_inputs[] = {
      {ProducingOp::Kind::ReluForward, 0}, {ProducingOp::Kind::AddReluForward, 0}, {ProducingOp::Kind::ReluBackward, 1}};
  for (const DType dtype : kDtypes)
    for (const auto& [kind, input] : probed_inputs)
      for (const Shape& shape : {Shape{2, 2048, 3, 3}, Shape{2, 3000, 3, 3}, Shape{1, 5000, 2, 2}})
        for (const std::string& output_list : {std::string("stats,zeros"), std::string()})
          for (const double value_offset : {0.0, -2.5})
            expect_input_probes_match_cpu(*gpu, InputCase{kind, input, shape, 0, 0, "zeros,stats", output_list, true,
                                                          seed += 2, value_offset, dtype});
}

// Without probes, each op runs as the backend's own kernel (the residual add and its ReLU as one).
TEST(GpuEpilogueProbes, ProducingOpsOnTheirOwnMatchTheCpuBackend) {
  HOOKRT_GPU_OR_SKIP(gpu);
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  uint64_t seed = 950;
  for (const ProducingOp::Kind kind : kKinds)
    for (const Shape& shape : {Shape{1}, Shape{2, 3, 5, 7}, Shape{3, 64, 130, 131}}) {
      const Tensor a = nasty_tensor(shape, seed++), b = nasty_tensor(shape, seed++);
      const Tensor second = kind == ProducingOp::Kind::ReluForward ? Tensor() : b;
      Tensor want = Tensor::empty(shape);
      cpu->run_producing_op(ProducingOp{kind, a, second}, want);
      Tensor got;  // allocated by the op, as the backend's ops allocate undefined outputs
      gpu->run_producing_op(ProducingOp{kind, gpu->from_host(a), second.defined() ? gpu->from_host(second) : Tensor()},
                            got);
      expect_same_floats(gpu->to_host(got), want, 0.0, kind_name(kind) + " on " + shape_string(shape));
    }
}

// Whole steps: every hooked ReLU tensor written by its probe run, against the same steps with
// the ReLUs run as ops (graphs off on both sides, so that only this differs).
class GpuEpilogueSteps : public TinyModelTest {
 protected:
  struct Run {
    std::vector<double> losses;
    std::vector<ProbeRecord> records;
    std::map<std::string, Tensor> state;
  };

  Run run(std::unique_ptr<Backend> gpu, bool epilogues, Precision precision) {
    model().load_state_dict(initial_state());
    ExecutorOptions options;
    options.mode = Mode::Train;
    options.precision = precision;  // half precisions in the GPU's default layout, channels-last
    if (precision == Precision::F16)  // no scale: every step updates (the scaler is not under test)
      options.loss_scaling = LossScalingOptions{LossScaling::Off, LossScaleOptions{}};
    options.sgd.lr = 0.05;
    options.sgd.momentum = 0.9;
    options.replay_graphs = false;
    options.probes_in_epilogues = epilogues;
    Run out;
    {
      Executor executor(model(), std::move(gpu), options);
      executor.subscribe([&out](const ProbeRecord& record) { out.records.push_back(record); });
      for (int i = 0; i < 3; ++i) out.losses.push_back(*executor.step(tiny_input(200 + i), tiny_labels()).loss);
      executor.sync_model();
    }
    for (const auto& [key, tensor] : model().state_dict()) out.state[key] = tensor.clone();
    return out;
  }
  // The registered hooks' steps on `fused_gpu` with epilogue probes against a new GPU backend's
  // steps without them, made with `options`.
  void expect_same_steps(std::unique_ptr<Backend> fused_gpu, Precision precision = Precision::F32,
                         const GpuOptions& options = gpu_options_for_tests());
};

TEST_F(GpuEpilogueSteps, GiveTheStepsTheReluOpsGive) {
  HOOKRT_GPU_OR_SKIP(fused_gpu);
  for (const char* spec : {"forward:*:stats,zeros,nonfinite", "backward:*:stats,zeros,nonfinite,hist=8:-0.1:0.1",
                           "grad:*:stats", "forward:layer2.0.relu:capture,stats"})
    register_hook_spec(model(), parse_hook_spec(spec));
  expect_same_steps(std::move(fused_gpu));
}

// The hooks of the hooked benchmark: every tensor a ReLU pass reads is probed in it, forward (the
// batch norms' outputs) and backward (the gradients conv2 and maxpool send to a ReLU).
TEST_F(GpuEpilogueSteps, GiveTheStepsTheReluOpsGiveWithTheirInputsProbedInThem) {
  HOOKRT_GPU_OR_SKIP(fused_gpu);
  for (const char* spec : {"forward:*:stats,zeros,nonfinite", "backward:*:stats,zeros,nonfinite", "grad:*:stats"})
    register_hook_spec(model(), parse_hook_spec(spec));
  expect_same_steps(std::move(fused_gpu));
}

// The same in BF16 and F16 autocast (NHWC): the ReLU passes write 16-bit tensors themselves.
TEST_F(GpuEpilogueSteps, GiveTheHalfPrecisionStepsTheReluOpsGive) {
  for (const char* spec : {"forward:*:stats,zeros,nonfinite", "backward:*:stats,zeros,nonfinite", "grad:*:stats",
                           "forward:layer2.0.relu:capture,stats"})
    register_hook_spec(model(), parse_hook_spec(spec));
  for (const Precision precision : {Precision::BF16, Precision::F16}) {
    SCOPED_TRACE(precision_name(precision));
    HOOKRT_GPU_OR_SKIP(fused_gpu);
    expect_same_steps(std::move(fused_gpu), precision);
  }
}

// With hookrt's own F32 batch norms (--own-batchnorm), split: their passes write and probe their
// outputs and gradients and probe the convolution outputs, as at 16 bits.
TEST_F(GpuEpilogueSteps, GiveTheStepsTheirOwnF32BatchNormsGive) {
  for (const char* spec : {"forward:*:stats,zeros,nonfinite", "backward:*:stats,zeros,nonfinite", "grad:*:stats"})
    register_hook_spec(model(), parse_hook_spec(spec));
  GpuOptions options = gpu_options_for_tests();
  options.own_f32_batchnorm = true;
  GpuForTests fused_gpu = make_gpu_backend_for_tests(options);
  if (!fused_gpu.backend) GTEST_SKIP() << fused_gpu.reason;
  EXPECT_TRUE(fused_gpu.backend->splits_batchnorm(DType::F32));
  expect_same_steps(std::move(fused_gpu.backend), Precision::F32, options);
}

void GpuEpilogueSteps::expect_same_steps(std::unique_ptr<Backend> fused_gpu, Precision precision,
                                         const GpuOptions& options) {
  const Run fused = run(std::move(fused_gpu), true, precision);
  GpuForTests op_gpu = make_gpu_backend_for_tests(options);
  ASSERT_TRUE(op_gpu.backend) << op_gpu.reason;
  const Run ops = run(std::move(op_gpu.backend), false, precision);
  ASSERT_EQ(fused.losses.size(), ops.losses.size());
  for (size_t i = 0; i < ops.losses.size(); ++i)
    expect_near_rel(fused.losses[i], ops.losses[i], 0.0, 1e-5, "loss of step " + std::to_string(i));
  ASSERT_EQ(fused.records.size(), ops.records.size());
  for (size_t i = 0; i < ops.records.size(); ++i) {
    ASSERT_EQ(fused.records[i].capture_key(), ops.records[i].capture_key()) << "record " << i;
    expect_same_results(fused.records[i].results, ops.records[i].results, 1e-4, 1e-4, ops.records[i].capture_key());
  }
  for (const auto& [key, tensor] : ops.state) expect_same_floats(fused.state.at(key), tensor, 1e-4, key);
}

}  // namespace
}  // namespace hookrt
