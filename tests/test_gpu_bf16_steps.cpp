// Whole Precision::BF16 steps on the GPU: a train step and an eval step with labels against the
// same steps on the CPU reference (test_bf16_autocast.cpp holds that to the F32 step), within what
// BF16's rounding allows; the dtypes hooks see; a BF16 step replayed as a CUDA graph bit for bit
// as the same steps run op by op; and the benchmark's probes on a BF16 step, held to the tensors
// they describe and to the CPU's records. Skips where no GPU is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cpu/probes.h"
#include "hookrt/backend.h"
#include "hookrt/executor.h"
#include "hookrt/hook_spec.h"
#include "support/gpu.h"
#include "support/probe_results.h"
#include "support/autocast_dtypes.h"
#include "support/tiny_model.h"
#include "train_step_setup.h"

namespace hookrt {
namespace {

using testing::norm_of;
using testing::relative_error;

using testing::bitwise_equal;
using testing::TinyModelTest;

// ---- tolerances ----------------------------------------------------------------------------------
// test_bf16_autocast.cpp's: a rounding to BF16 moves a value by at most u = 2^-8 of itself, and
// the roundings on a value's path (K = 72 or so over ResNet18) add like a random walk to about
// sqrt(K)·u = 0.035 of the logits; the logits and the loss are held to four times that.
//
// The GPU's BF16 step and the CPU's cast the same weights identically (an elementwise rounding)
// and compute every op on the same BF16 operands with F32 accumulation; they differ only in
// summation order, which moves an F32 result by ~2^-24 of it and so flips its rounding to BF16
// now and then. Once one value differs, everything downstream differs a little, and the flips
// spread: after a few layers the two steps' activation roundings are as good as independent. Each
// step's logits lie within the random walk of the F32 ones, so theirs differ by sqrt(2)·0.035 =
// 0.05 at worst: the same 0.14 holds them with a margin of almost 3.
constexpr double kU = 0x1p-8;
constexpr double kLogitsTolerance = 4.0 * 0.035;
// Gradients (and what the step does with them: the SGD update, batch norm's running statistics)
// are held to the network's own sensitivity to rounding, as test_bf16_autocast.cpp does: s, how
// far the F32 step moves when its weights are rounded to BF16 (one rounding per weight). The BF16
// step's ~3 activation roundings per layer each move a result about as far as that one rounding,
// so one BF16 step lies sqrt(3)·s from the F32 step beyond the shared weight casts; two steps
// whose activation roundings have become independent (above) lie sqrt(2)·sqrt(3)·s = 2.45·s
// apart. Held to twice that, as the CPU test doubles its expectation: 4.9·s. (Not 2·s: the
// difference is not one rounding's worth but that of two independent sets of them.) On the CPU,
// the BF16 step on this batch against the same step on the batch moved by up to 2^-10 of itself
// (enough to make its roundings independent) measures up to 3.2·s over every gradient, update and
// running statistic, in both modes; moved by two F32 ulps, up to 1.9·s.
constexpr double kGpuToCpuBf16ToSensitivity = 2.0 * 2.45;
// The GPU's BF16 step against the F32 step: its roundings stand where the CPU BF16 step's do, so
// the CPU test's bound holds it too: 4·s.
constexpr double kBf16ToF32ToSensitivity = 4.0;
// Norms of gradients and updates within a factor of 2 (as in the CPU test): a lost, doubled or
// misscaled tensor fails even where s is large.
constexpr double kNormRatioSlack = 0.5;
// DESIGN.md's accuracy promise for a probe's float summaries against the float64 reference on the
// same tensor, as test_gpu_probes holds the GPU's probe kernels to it.
constexpr double kProbeRel = 1e-5;
// add_benchmark_probes' records per step: 76 forward firings (68 modules, each block's ReLU twice),
// their 76 grad_outputs and 74 grad_inputs (the root's and conv1's input need none without
// input_grad), and 62 parameter gradients.
constexpr size_t kBenchmarkRecordsPerStep = 288;

// after - before, element by element, in F64 (a parameter's SGD update, a running statistic's move).
Tensor change(const Tensor& after, const Tensor& before) {
  Tensor out = Tensor::empty(after.shape(), DType::F64);
  for (int64_t i = 0; i < after.numel(); ++i) out.data<double>()[i] = after.item(i) - before.item(i);
  return out;
}

bool is_float(const Tensor& t) { return t.dtype() == DType::F32 || t.dtype() == DType::F64; }

// ---- a BF16 step on the GPU against the CPU's ----------------------------------------------------

struct StepOutcome {
  StepResult result;
  std::map<std::string, Tensor> grads;  // host F32, every parameter's, and "input"
  std::map<std::string, Tensor> moves;  // every float state tensor's change over the step (F64)
  std::map<std::string, Tensor> after;  // the state after the step
};

// A mode, and the GPU step's memory format: NHWC is what --precision bf16 runs in on a GPU; NCHW
// is held to the same bounds. (The CPU's channels-last step is its NCHW step bit for bit.)
struct Bf16StepCase {
  Mode mode;
  MemoryFormat format;
};

class GpuBf16StepAgainstCpu : public TinyModelTest, public ::testing::WithParamInterface<Bf16StepCase> {
 protected:
  // One step on `backend` from the initial state (its weights rounded to BF16 first where asked),
  // SGD with lr 0.05 and momentum 0.9 in train mode. Grad hooks copy the gradients out: a host
  // callback, so the GPU step runs op by op.
  StepOutcome run_step(std::unique_ptr<Backend> backend, Precision precision, bool weights_rounded_to_bf16 = false) {
    model().load_state_dict(initial_state());
    if (weights_rounded_to_bf16)
      for (const std::string& key : model().parameter_names()) {
        Tensor& weight = model().tensor(key);
        const Tensor rounded_weight = weight.to(DType::BF16).to(DType::F32);
        std::memcpy(weight.raw_data(), rounded_weight.raw_data(), weight.nbytes());
      }
    std::map<std::string, Tensor> before;
    for (const auto& [key, t] : model().state_dict()) before[key] = t.clone();
    StepOutcome outcome;
    HookHandle handle = model().register_grad_hook(
        "*", TensorCallback([&](const HookEvent& e, TensorRef grad) { outcome.grads[e.param] = grad.clone(); }));
    ExecutorOptions options;
    options.mode = GetParam().mode;
    options.memory_format = GetParam().format;
    options.precision = precision;
    options.input_grad = true;
    options.sgd.lr = 0.05;
    options.sgd.momentum = 0.9;
    {
      Executor executor(model(), std::move(backend), options);
      outcome.result = executor.step(testing::step_batch_input(), testing::step_batch_labels());
      executor.sync_model();
    }
    handle.remove();
    outcome.grads["input"] = outcome.result.input_grad;
    for (const auto& [key, t] : model().state_dict()) {
      outcome.after[key] = t.clone();
      if (is_float(t)) outcome.moves[key] = change(t, before.at(key));
    }
    return outcome;
  }

  // Each tensor of `got` (the GPU's BF16 step) against `bf16` (the CPU's) within
  // kGpuToCpuBf16ToSensitivity of its sensitivity (`weights_rounded` against `f32`, at least one
  // rounding's worth), against `f32` within the CPU test's bound, and its norm within a factor.
  static void expect_within_sensitivity(const std::map<std::string, Tensor>& got,
                                        const std::map<std::string, Tensor>& bf16,
                                        const std::map<std::string, Tensor>& f32,
                                        const std::map<std::string, Tensor>& weights_rounded, const std::string& what,
                                        bool check_norms) {
    ASSERT_EQ(got.size(), bf16.size()) << what;
    for (const auto& [key, want] : bf16) {
      const Tensor& mine = got.at(key);
      ASSERT_EQ(mine.shape(), want.shape()) << what << " of '" << key << "'";
      const double sensitivity = std::max(relative_error(weights_rounded.at(key), f32.at(key)), kU);
      EXPECT_LT(relative_error(mine, want), kGpuToCpuBf16ToSensitivity * sensitivity)
          << what << " of '" << key << "' against the CPU's BF16 step (sensitivity " << sensitivity << ")";
      EXPECT_LT(relative_error(mine, f32.at(key)), kBf16ToF32ToSensitivity * sensitivity)
          << what << " of '" << key << "' against the CPU's F32 step (sensitivity " << sensitivity << ")";
      if (check_norms && norm_of(want) > 0) {
        EXPECT_NEAR(norm_of(mine) / norm_of(want), 1.0, kNormRatioSlack) << what << " of '" << key << "'";
      }
    }
  }
};

TEST_P(GpuBf16StepAgainstCpu, LogitsAndLossWithinBf16Rounding) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const StepOutcome cpu = run_step(make_cpu_backend(), Precision::BF16);
  const StepOutcome mine = run_step(std::move(gpu), Precision::BF16);
  ASSERT_EQ(mine.result.logits.dtype(), DType::F32) << "BF16 logits, widened";
  EXPECT_LT(relative_error(mine.result.logits, cpu.result.logits), kLogitsTolerance);
  ASSERT_TRUE(mine.result.loss.has_value());
  ASSERT_TRUE(cpu.result.loss.has_value());
  EXPECT_NEAR(*mine.result.loss, *cpu.result.loss, kLogitsTolerance * std::abs(*cpu.result.loss));
  const StepOutcome f32 = run_step(make_cpu_backend(), Precision::F32);
  EXPECT_GT(relative_error(mine.result.logits, f32.result.logits), 0.0) << "the GPU's BF16 step rounds";
}

TEST_P(GpuBf16StepAgainstCpu, GradientsWithinTheNetworksOwnSensitivityToRounding) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const StepOutcome f32 = run_step(make_cpu_backend(), Precision::F32);
  const StepOutcome weights_rounded = run_step(make_cpu_backend(), Precision::F32, true);
  const StepOutcome cpu = run_step(make_cpu_backend(), Precision::BF16);
  const StepOutcome mine = run_step(std::move(gpu), Precision::BF16);
  ASSERT_EQ(mine.grads.size(), model().parameter_names().size() + 1) << "every parameter's gradient, and the input's";
  for (const auto& [key, grad] : mine.grads) EXPECT_EQ(grad.dtype(), DType::F32) << "gradient of '" << key << "'";
  expect_within_sensitivity(mine.grads, cpu.grads, f32.grads, weights_rounded.grads, "gradient", true);
}

// The SGD update of every parameter (after - before: the parameters themselves would hide it) and
// the move of every running statistic, held as their gradients are: each is the step's gradient or
// batch statistic times a constant, so the same sensitivity argument holds. An eval step moves
// nothing.
TEST_P(GpuBf16StepAgainstCpu, UpdatesAndRunningStatisticsWithinTheSameBound) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const StepOutcome mine = run_step(std::move(gpu), Precision::BF16);
  if (GetParam().mode == Mode::Eval) {
    for (const auto& [key, before] : initial_state())
      EXPECT_TRUE(bitwise_equal(mine.after.at(key), before)) << "an eval step changed '" << key << "'";
    return;
  }
  const StepOutcome f32 = run_step(make_cpu_backend(), Precision::F32);
  const StepOutcome weights_rounded = run_step(make_cpu_backend(), Precision::F32, true);
  const StepOutcome cpu = run_step(make_cpu_backend(), Precision::BF16);
  // Parameters' updates apart from buffers' moves.
  auto split = [](const std::map<std::string, Tensor>& moves, std::map<std::string, Tensor>& params,
                  std::map<std::string, Tensor>& buffers) {
    const std::vector<std::string>& names = model().parameter_names();
    for (const auto& [key, t] : moves)
      (std::find(names.begin(), names.end(), key) != names.end() ? params : buffers)[key] = t;
  };
  std::map<std::string, Tensor> mine_updates, mine_stats, cpu_updates, cpu_stats, f32_updates, f32_stats,
      rounded_updates, rounded_stats;
  split(mine.moves, mine_updates, mine_stats);
  split(cpu.moves, cpu_updates, cpu_stats);
  split(f32.moves, f32_updates, f32_stats);
  split(weights_rounded.moves, rounded_updates, rounded_stats);
  ASSERT_EQ(mine_updates.size(), model().parameter_names().size());
  ASSERT_FALSE(mine_stats.empty()) << "batch norm's running statistics";
  for (const auto& [key, update] : mine_updates) EXPECT_GT(norm_of(update), 0.0) << "'" << key << "' was not updated";
  expect_within_sensitivity(mine_updates, cpu_updates, f32_updates, rounded_updates, "SGD update", true);
  // Running means of near-zero batch means can move by little in norm: their norms are not held
  // to a factor, only their moves to the bound.
  expect_within_sensitivity(mine_stats, cpu_stats, f32_stats, rounded_stats, "running statistic", false);
  for (const auto& [key, t] : cpu.after) {
    if (is_float(t)) continue;
    EXPECT_TRUE(bitwise_equal(mine.after.at(key), t)) << key << ": the batch counter";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, GpuBf16StepAgainstCpu,
    ::testing::Values(Bf16StepCase{Mode::Eval, MemoryFormat::ChannelsLast}, Bf16StepCase{Mode::Train, MemoryFormat::ChannelsLast},
                      Bf16StepCase{Mode::Train, MemoryFormat::Contiguous}),
    [](const ::testing::TestParamInfo<Bf16StepCase>& info) {
      return mode_name(info.param.mode) + (info.param.format == MemoryFormat::ChannelsLast ? "_nhwc" : "_nchw");
    });

// ---- what hooks see ------------------------------------------------------------------------------

class GpuBf16Step : public TinyModelTest {};

// As on the CPU (test_bf16_autocast.cpp, support/autocast_dtypes.h), for torch.float16 too.
// Each log's hooks stay until the test ends, so each log lives as long.
TEST_F(GpuBf16Step, HooksSeeTheDtypesAutocastGives) {
  std::map<Precision, testing::AutocastDtypeLog> logs;
  for (const Precision precision : {Precision::BF16, Precision::F16}) {
    HOOKRT_GPU_OR_SKIP(gpu);
    testing::AutocastDtypeLog& log = logs[precision];
    log.attach(model());
    ExecutorOptions options;
    options.mode = Mode::Train;
    options.precision = precision;
    options.input_grad = true;
    Executor executor(model(), std::move(gpu), options);
    executor.step(testing::tiny_input(), testing::tiny_labels());
    log.expect_autocast_dtypes(model(), activation_dtype(precision));
  }
}

// ---- a BF16 step replayed as a CUDA graph --------------------------------------------------------

struct StepsRun {
  std::vector<std::string> paths;  // step_path_name of each step's path
  std::string why_eager;           // why the last step ran op by op, if it did
  std::vector<double> losses;
  std::vector<Tensor> logits;
  std::vector<ProbeRecord> records;
  std::map<std::string, Tensor> state;  // after sync_model
};

// `steps` hooked BF16 steps (the benchmark's probes) on seeded batches from the initial state, with
// or without graphs. Both sides get a backend from make_gpu_backend_for_tests: cuDNN's heuristic
// algorithms, so both run the same ones, and deterministic ones only, so no atomics reorder a sum;
// cuBLAS works in a workspace of its own, captured or not. The kernels are then the same, in the
// same order, on the same bytes: a replay must give the eager steps' results bit for bit.
StepsRun run_bf16_steps(std::unique_ptr<Backend> gpu, Model& model, const TensorMap& initial, bool replay_graphs,
                        Mode mode, int steps) {
  model.load_state_dict(initial);
  ExecutorOptions options = bench::train_options();
  options.mode = mode;
  options.precision = Precision::BF16;
  options.replay_graphs = replay_graphs;
  StepsRun out;
  {
    Executor executor(model, std::move(gpu), options);
    executor.subscribe([&out](const ProbeRecord& record) { out.records.push_back(record); });
    for (int i = 0; i < steps; ++i) {
      const StepResult result = executor.step(testing::step_batch_input(100 + i), testing::step_batch_labels());
      out.paths.push_back(step_path_name(result.path));
      if (result.loss) out.losses.push_back(*result.loss);
      out.logits.push_back(result.logits);
    }
    out.why_eager = executor.why_last_step_eager();
    executor.sync_model();
  }
  for (const auto& [key, tensor] : model.state_dict()) out.state[key] = tensor.clone();
  return out;
}

void expect_bit_for_bit(const StepsRun& graphs, const StepsRun& eager) {
  ASSERT_EQ(graphs.losses.size(), eager.losses.size());
  for (size_t i = 0; i < graphs.losses.size(); ++i)
    EXPECT_EQ(std::memcmp(&graphs.losses[i], &eager.losses[i], sizeof(double)), 0)
        << "loss of step " << i << ": " << graphs.losses[i] << " replayed, " << eager.losses[i] << " eager";
  ASSERT_EQ(graphs.logits.size(), eager.logits.size());
  for (size_t i = 0; i < graphs.logits.size(); ++i)
    testing::expect_same_floats(graphs.logits[i], eager.logits[i], 0.0, "logits of step " + std::to_string(i));
  for (const auto& [key, tensor] : eager.state) testing::expect_same_floats(graphs.state.at(key), tensor, 0.0, key);
  ASSERT_EQ(graphs.records.size(), eager.records.size());
  for (size_t i = 0; i < graphs.records.size(); ++i) {
    ASSERT_EQ(graphs.records[i].capture_key(), eager.records[i].capture_key()) << "record " << i;
    testing::expect_same_results(graphs.records[i].results, eager.records[i].results, 0.0, 0.0,
                                 eager.records[i].capture_key());
  }
}

class GpuBf16StepGraphs : public TinyModelTest {};

TEST_F(GpuBf16StepGraphs, ReplayedTrainStepsGiveWhatEagerStepsGiveBitForBit) {
  HOOKRT_GPU_OR_SKIP(graph_gpu);
  bench::add_benchmark_probes(model());
  const StepsRun graphs = run_bf16_steps(std::move(graph_gpu), model(), initial_state(), true, Mode::Train, 5);
  // Step 0 starts momentum, so step 1 is the first of its kind again; step 2 is recorded.
  EXPECT_EQ(graphs.paths, (std::vector<std::string>{"eager", "eager", "recorded", "replayed", "replayed"}))
      << graphs.why_eager;
  HOOKRT_GPU_OR_SKIP(eager_gpu);
  const StepsRun eager = run_bf16_steps(std::move(eager_gpu), model(), initial_state(), false, Mode::Train, 5);
  EXPECT_EQ(eager.paths, std::vector<std::string>(5, "eager"));
  EXPECT_EQ(eager.records.size(), 5 * kBenchmarkRecordsPerStep);
  expect_bit_for_bit(graphs, eager);
}

// An eval step with labels runs backward too (gradients for attribution), in BF16 as in F32.
TEST_F(GpuBf16StepGraphs, ReplayedEvalStepsWithLabelsGiveWhatEagerStepsGiveBitForBit) {
  HOOKRT_GPU_OR_SKIP(graph_gpu);
  bench::add_benchmark_probes(model());
  const StepsRun graphs = run_bf16_steps(std::move(graph_gpu), model(), initial_state(), true, Mode::Eval, 4);
  EXPECT_EQ(graphs.paths, (std::vector<std::string>{"eager", "recorded", "replayed", "replayed"})) << graphs.why_eager;
  HOOKRT_GPU_OR_SKIP(eager_gpu);
  const StepsRun eager = run_bf16_steps(std::move(eager_gpu), model(), initial_state(), false, Mode::Eval, 4);
  EXPECT_EQ(eager.records.size(), 4 * kBenchmarkRecordsPerStep);
  expect_bit_for_bit(graphs, eager);
}

// ---- the benchmark's probes on a BF16 step -------------------------------------------------------

// The records of one hooked BF16 train step: the benchmark's probes (stats, zeros, nonfinite on
// every event), and a capture of every tensor they describe by a second hook on the same events,
// which fires after them and sees the tensor they saw (they change nothing).
struct ProbedStep {
  std::vector<ProbeRecord> probed;     // the benchmark's records, in firing order
  std::map<std::string, Tensor> seen;  // the captured tensor of each, by capture key
};

ProbedStep run_probed_step(std::unique_ptr<Backend> backend, Model& model, const TensorMap& initial) {
  model.load_state_dict(initial);
  model.hooks().clear();
  bench::add_benchmark_probes(model);
  for (const char* spec : {"forward:*:capture", "backward:*:capture", "grad:*:capture"})
    register_hook_spec(model, parse_hook_spec(spec));
  ExecutorOptions options = bench::train_options();
  options.precision = Precision::BF16;
  ProbedStep out;
  std::vector<ProbeRecord> records;
  {
    Executor executor(model, std::move(backend), options);
    executor.subscribe([&records](const ProbeRecord& record) { records.push_back(record); });
    executor.step(testing::step_batch_input(), testing::step_batch_labels());
    executor.flush_records();
  }
  for (ProbeRecord& record : records) {
    if (!record.results.empty() && std::holds_alternative<CaptureResult>(record.results.front())) {
      EXPECT_EQ(out.seen.count(record.capture_key()), 0u) << "two captures of " << record.capture_key();
      out.seen[record.capture_key()] = std::get<CaptureResult>(record.results.front()).tensor;
    } else {
      out.probed.push_back(std::move(record));
    }
  }
  return out;
}

const StatsResult& stats_of(const ProbeRecord& record) { return testing::result_of<StatsResult>(record, 0); }

class GpuBf16Probes : public TinyModelTest {};

// Every record the GPU's probes give (fused into the ReLUs' passes or not) describes the tensor the
// step made: the CPU probe engine on the captured tensor gives the same counts, zeros, dead
// channels and non-finite counts exactly, and the same float summaries within the accuracy promise.
TEST_F(GpuBf16Probes, BenchmarkProbesDescribeTheTensorsTheGpuStepMade) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const ProbedStep mine = run_probed_step(std::move(gpu), model(), initial_state());
  ASSERT_EQ(mine.probed.size(), kBenchmarkRecordsPerStep);
  ASSERT_EQ(mine.seen.size(), mine.probed.size()) << "a capture of every probed tensor";
  const ProbeList list = testing::parse_list("stats,zeros,nonfinite");
  int bf16_tensors = 0;
  for (const ProbeRecord& record : mine.probed) {
    const std::string key = record.capture_key();
    const Tensor& seen = mine.seen.at(key);
    ASSERT_EQ(seen.shape(), record.shape) << key;
    if (seen.dtype() == DType::BF16) ++bf16_tensors;
    ProbeRunOptions options;
    options.channel_axis = (record.when == HookWhen::Grad || seen.ndim() < 2) ? 0 : 1;  // as the executor's
    Tensor copy = seen.clone();
    ProbeRecord reference;
    cpu::run_probes(list, copy, reference, options);
    testing::expect_same_results(record.results, reference.results, kProbeRel, 0.0, key);
  }
  EXPECT_GT(bf16_tensors, 100) << "the probes read BF16 activations and their gradients";
}

// The GPU step's records against the CPU BF16 step's: the same records in the same order, on
// tensors of the same shapes and dtypes, all finite, each count covering the whole tensor. The
// tensors themselves differ by what BF16's rounding allows (above): a forward tensor within the
// logits' bound of the CPU's (the CPU stand-in of the bound's comment measures at most 0.062, in
// layer4), a gradient's norm within a factor of 2 (it measures within 6 %).
TEST_F(GpuBf16Probes, BenchmarkProbesGiveTheCpuStepsRecords) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const ProbedStep mine = run_probed_step(std::move(gpu), model(), initial_state());
  const ProbedStep cpu = run_probed_step(make_cpu_backend(), model(), initial_state());
  ASSERT_EQ(cpu.probed.size(), kBenchmarkRecordsPerStep);
  ASSERT_EQ(mine.probed.size(), cpu.probed.size());
  for (size_t i = 0; i < cpu.probed.size(); ++i) {
    const ProbeRecord& got = mine.probed[i];
    const ProbeRecord& want = cpu.probed[i];
    const std::string key = want.capture_key();
    ASSERT_EQ(got.capture_key(), key) << "record " << i;
    EXPECT_EQ(got.shape, want.shape) << key;
    ASSERT_EQ(got.results.size(), 3u) << key;
    const int64_t numel = shape_numel(want.shape);
    EXPECT_EQ(stats_of(got).count, numel) << key << ": every element finite";
    EXPECT_EQ(stats_of(want).count, numel) << key;
    const ZerosResult& got_zeros = testing::result_of<ZerosResult>(got, 1);
    EXPECT_EQ(got_zeros.channels, testing::result_of<ZerosResult>(want, 1).channels) << key;
    const NonFiniteResult& nonfinite = testing::result_of<NonFiniteResult>(got, 2);
    EXPECT_EQ(nonfinite.nan + nonfinite.posinf + nonfinite.neginf, 0) << key;

    const Tensor& got_tensor = mine.seen.at(key);
    const Tensor& want_tensor = cpu.seen.at(key);
    EXPECT_EQ(got_tensor.dtype(), want_tensor.dtype()) << key;
    if (want.when == HookWhen::Forward) {
      EXPECT_LT(relative_error(got_tensor, want_tensor), kLogitsTolerance) << key;
    } else if (norm_of(want_tensor) > 0) {
      EXPECT_NEAR(norm_of(got_tensor) / norm_of(want_tensor), 1.0, kNormRatioSlack) << key;
    }
  }
}

}  // namespace
}  // namespace hookrt
