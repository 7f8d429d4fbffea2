// Precision::F16 and loss scaling on the CPU reference: F16 ops (F32 arithmetic, one rounding,
// Inf past 65504), the loss scaler's ops as torch.amp.GradScaler runs them, and F16 training steps
// under dynamic and static scaling: skipped updates after an overflow, the scale's backoff and
// growth, replayed steps, and a resumed scaler.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hookrt/backend.h"
#include "hookrt/executor.h"
#include "random.h"
#include "support/autocast_dtypes.h"
#include "support/cli.h"
#include "support/delegating_backend.h"
#include "support/errors.h"
#include "support/recording_backend.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::bitwise_equal;
using testing::contains;
using testing::error_message;
using testing::relative_error;
using testing::TinyModelTest;

constexpr float kInf = std::numeric_limits<float>::infinity();

Tensor uniform(const Shape& shape, uint64_t seed, DType dtype, double lo = -1.0, double hi = 1.0) {
  Pcg32 rng(seed);
  Tensor t = Tensor::empty(shape, DType::F32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(rng.uniform(lo, hi));
  return t.to(dtype);
}

Tensor one(float value) { return Tensor::full({1}, value); }

// ---- F16 ops ----------------------------------------------------------------------------------------

class F16Ops : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> cpu = make_cpu_backend();
};

TEST_F(F16Ops, ConvolutionRoundsTheF32ResultOnceToF16) {
  const Conv2dGeometry g{1, 1};
  const Tensor x = uniform({2, 3, 7, 7}, 1, DType::F16), w = uniform({4, 3, 3, 3}, 2, DType::F16);
  Tensor y, y32;
  cpu->conv2d_forward(x, w, y, g);
  cpu->conv2d_forward(x.to(DType::F32), w.to(DType::F32), y32, g);
  ASSERT_EQ(y.dtype(), DType::F16);
  EXPECT_TRUE(bitwise_equal(y, y32.to(DType::F16)));
}

// F16's range ends at 65504: a sum past it is Inf, which is what loss scaling must catch.
TEST_F(F16Ops, ResultsPastTheRangeBecomeInfinite) {
  const Tensor a = Tensor::full({3}, 60000.0, DType::F16);
  Tensor sum;
  cpu->add(a, a, sum);
  ASSERT_EQ(sum.dtype(), DType::F16);
  for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(sum.item(i), std::numeric_limits<double>::infinity());
  Tensor relu;
  cpu->relu_forward(a, relu);
  EXPECT_EQ(relu.item(0), 60000.0);
}

TEST_F(F16Ops, RefuseBf16AndF16InOneOpNamingTheTensor) {
  const Tensor a = uniform({4}, 3, DType::F16), b = uniform({4}, 4, DType::BF16);
  Tensor out;
  const std::string message = error_message([&] { cpu->add(a, b, out); });
  EXPECT_TRUE(contains(message, "add: b has dtype BF16; expected F16")) << message;
}

// ---- the loss scaler's ops ----------------------------------------------------------------------------

TEST_F(F16Ops, UnscaleMultipliesByTheF32ReciprocalAndFlagsNonFinite) {
  Tensor grad = uniform({37}, 5, DType::F32, -1e3, 1e3);
  const Tensor before = grad.clone();
  Tensor found_inf = one(0.0f);
  cpu->unscale_gradient_(grad, one(3.0f), found_inf);
  const auto inv = static_cast<float>(1.0 / 3.0);
  for (int64_t i = 0; i < grad.numel(); ++i) ASSERT_EQ(grad.data<float>()[i], before.data<float>()[i] * inv) << i;
  EXPECT_EQ(found_inf.item(0), 0.0) << "finite gradients leave the flag clear";

  for (float bad : {kInf, -kInf, std::numeric_limits<float>::quiet_NaN()}) {
    Tensor g = uniform({9}, 6, DType::F32);
    g.data<float>()[4] = bad;
    Tensor flag = one(0.0f);
    cpu->unscale_gradient_(g, one(1024.0f), flag);
    EXPECT_EQ(flag.item(0), 1.0) << bad;
  }
  Tensor set = one(1.0f);
  Tensor clean = uniform({9}, 7, DType::F32);
  cpu->unscale_gradient_(clean, one(2.0f), set);
  EXPECT_EQ(set.item(0), 1.0) << "the flag collects a whole step: a clean gradient does not clear it";
}

TEST_F(F16Ops, UnscaleByOneLeavesTheGradientAsItIs) {
  Tensor grad = uniform({16}, 8, DType::F32);
  grad.data<float>()[3] = std::numeric_limits<float>::denorm_min();
  const Tensor before = grad.clone();
  Tensor found_inf = one(0.0f);
  cpu->unscale_gradient_(grad, one(1.0f), found_inf);
  EXPECT_TRUE(bitwise_equal(grad, before));
}

TEST_F(F16Ops, UpdateLossScaleBacksOffGrowsAndNeverOverflows) {
  LossScaleOptions o;
  o.growth_interval = 3;
  Tensor scale = one(1024.0f), tracker = Tensor::full({1}, 0.0, DType::I32);
  const Tensor clean = one(0.0f), overflow = one(1.0f);
  cpu->update_loss_scale(scale, tracker, clean, o);
  cpu->update_loss_scale(scale, tracker, clean, o);
  EXPECT_EQ(scale.item(0), 1024.0);
  EXPECT_EQ(tracker.item(0), 2.0);
  cpu->update_loss_scale(scale, tracker, clean, o);
  EXPECT_EQ(scale.item(0), 2048.0) << "grows on the growth_interval-th good step in a row";
  EXPECT_EQ(tracker.item(0), 0.0);
  cpu->update_loss_scale(scale, tracker, clean, o);
  cpu->update_loss_scale(scale, tracker, overflow, o);
  EXPECT_EQ(scale.item(0), 1024.0);
  EXPECT_EQ(tracker.item(0), 0.0) << "an overflow restarts the count";

  Tensor top = one(std::numeric_limits<float>::max()), t = Tensor::full({1}, 2.0, DType::I32);
  cpu->update_loss_scale(top, t, clean, o);
  EXPECT_EQ(top.item(0), static_cast<double>(std::numeric_limits<float>::max())) << "a scale that would overflow is kept";
  EXPECT_EQ(t.item(0), 0.0);
}

TEST_F(F16Ops, SgdSkipsEverythingWhenTheFlagIsSet) {
  const SgdOptions o{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01};
  Tensor param = uniform({8}, 9, DType::F32), momentum;
  const Tensor grad = uniform({8}, 10, DType::F32), before = param.clone();
  cpu->sgd_update(param, grad, momentum, true, o, one(1.0f));
  EXPECT_TRUE(bitwise_equal(param, before));
  Tensor expected = before.clone(), expected_momentum;
  cpu->sgd_update(expected, grad, expected_momentum, true, o, Tensor());
  cpu->sgd_update(param, grad, momentum, true, o, one(0.0f));
  EXPECT_TRUE(bitwise_equal(param, expected));
  EXPECT_TRUE(bitwise_equal(momentum, expected_momentum));
  const std::string message = error_message([&] { cpu->sgd_update(param, grad, momentum, false, o, Tensor::full({2}, 0.0)); });
  EXPECT_TRUE(contains(message, "sgd_update: skip_if")) << message;
}

// ---- F16 steps ---------------------------------------------------------------------------------------

ExecutorOptions f16_training(std::optional<LossScalingOptions> scaling, bool graphs = false) {
  ExecutorOptions o;
  o.mode = Mode::Train;
  o.precision = Precision::F16;
  o.sgd = {.lr = 0.01, .momentum = 0.9};
  o.loss_scaling = scaling;
  o.replay_graphs = graphs;
  return o;
}

LossScalingOptions dynamic_from(double init, int64_t growth_interval = 2000) {
  LossScalingOptions o;
  o.scaler.init_scale = init;
  o.scaler.growth_interval = growth_interval;
  return o;
}

LossScalingOptions static_scale(double scale) {
  LossScalingOptions o = parse_loss_scaling(std::to_string(scale));
  EXPECT_EQ(o.kind, LossScaling::Static);
  return o;
}

struct TrainRun {
  std::vector<StepResult> results;
  TensorMap state, momentum;
  std::map<std::string, Tensor> grads;  // the last step's, as grad hooks saw them
  std::vector<std::string> why_eager;
};

class F16Step : public TinyModelTest {
 protected:
  // Grad hooks keep the last step's parameter gradients unless the steps are to be replayed (a host
  // callback rules graphs out). The tiny batch is `size` pixels square: at the tiny size, layer4's
  // batch norms normalise two values per channel, whose gradient is rounding noise, and an F16
  // step's gradients below them are far from the F32 step's and differ from CPU to CPU (they set
  // where the overflows fall, which the tests keep far from); at 64 they normalise eight.
  static TrainRun train(const ExecutorOptions& options, int steps, std::unique_ptr<Backend> backend = make_cpu_backend(),
                        const std::optional<LossScalerState>& resume = std::nullopt,
                        int64_t size = testing::kTinySize) {
    model().load_state_dict(initial_state());
    TrainRun run;
    HookHandle handle;
    if (!options.replay_graphs)
      handle = model().register_grad_hook(
          "*", TensorCallback([&](const HookEvent& e, TensorRef grad) { run.grads[e.param] = grad.clone(); }));
    {
      Executor executor(model(), std::move(backend), options);
      if (resume) executor.load_loss_scaler_state(*resume);
      for (int i = 0; i < steps; ++i) {
        run.results.push_back(executor.step(testing::tiny_input(1, testing::kTinyBatch, size), testing::tiny_labels()));
        run.why_eager.push_back(executor.why_last_step_eager());
      }
      executor.sync_model();
      run.momentum = executor.optimizer_state();
    }
    if (!options.replay_graphs) handle.remove();
    for (const auto& [key, t] : model().state_dict()) run.state.emplace_back(key, t.clone());
    return run;
  }
  static const Tensor& find(const TensorMap& map, const std::string& key) {
    for (const auto& [k, t] : map)
      if (k == key) return t;
    throw Error("no tensor '" + key + "'");
  }
};

TEST_F(F16Step, HooksSeeF16AsAutocastGivesThem) {
  testing::AutocastDtypeLog log;
  log.attach(model());
  testing::TinyExecutorOptions o;
  o.mode = Mode::Train;
  o.precision = Precision::F16;
  o.input_grad = true;
  auto run = testing::cpu_executor(model(), o);
  run->step(testing::tiny_input(), testing::tiny_labels());
  log.expect_autocast_dtypes(model(), DType::F16);
}

TEST_F(F16Step, DynamicScalingIsTheDefaultForF16TrainingOnly) {
  EXPECT_EQ(default_loss_scaling(Precision::F16).kind, LossScaling::Dynamic);
  EXPECT_EQ(default_loss_scaling(Precision::BF16).kind, LossScaling::Off);
  EXPECT_EQ(default_loss_scaling(Precision::F32).kind, LossScaling::Off);
  const TrainRun run = train(f16_training(std::nullopt), 1);
  ASSERT_TRUE(run.results[0].loss_scale.has_value());
  EXPECT_EQ(*run.results[0].loss_scale, 65536.0);
  ExecutorOptions bf16 = f16_training(std::nullopt);
  bf16.precision = Precision::BF16;
  EXPECT_FALSE(train(bf16, 1).results[0].loss_scale.has_value());
}

// Grad hooks see parameter gradients unscaled, where GradScaler.unscale_ leaves them for clipping:
// at scale 1024 their norms are the unscaled step's, not 1024 times them, while the module
// backward hooks in between see gradients 1024 times the unscaled step's, as PyTorch's do. (On
// the better-conditioned 64-pixel batch, so that the two F16 steps differ only by their rounding.
// Whether the scale also brings the step closer to F32's is not asserted: the bits it keeps
// below F16's normal range are few here, and which run lands closer changes from CPU to CPU.)
TEST_F(F16Step, GradHooksSeeUnscaledGradientsAndModuleHooksScaledOnes) {
  LossScalingOptions off;
  off.kind = LossScaling::Off;
  constexpr int64_t kSize = 64;
  std::map<std::string, double> grad_output_norms[2];
  TrainRun unscaled, scaled;
  for (int scaled_run = 0; scaled_run < 2; ++scaled_run) {
    HookHandle handle = model().register_full_backward_hook(
        "*", PairCallback([&, scaled_run](const HookEvent& e, TensorRef, TensorRef grad_output) {
          grad_output_norms[scaled_run][e.module] = testing::norm_of(grad_output.to(DType::F32));
        }));
    TrainRun& run = scaled_run ? scaled : unscaled;
    run = train(f16_training(scaled_run ? static_scale(1024) : off), 1, make_cpu_backend(), std::nullopt, kSize);
    handle.remove();
  }
  ASSERT_FALSE(scaled.results[0].overflowed);
  ASSERT_FALSE(unscaled.grads.empty());
  for (const auto& [key, grad] : unscaled.grads)
    EXPECT_NEAR(testing::norm_of(scaled.grads.at(key)) / testing::norm_of(grad), 1.0, 0.05) << key;
  ASSERT_FALSE(grad_output_norms[0].empty());
  for (const auto& [module, norm] : grad_output_norms[0])
    EXPECT_NEAR(grad_output_norms[1].at(module) / norm, 1024.0, 1024.0 * 0.05) << module;
  EXPECT_EQ(*scaled.results[0].loss, *unscaled.results[0].loss) << "the loss itself is never scaled";
}

// An overflow skips the update on the device: the parameters and momentum stay as they were,
// batch norm's running statistics move (as under GradScaler), and the scale halves until the
// scaled gradients fit. The first update that runs is then the one a run starting at that scale
// makes, momentum's first step included.
TEST_F(F16Step, OverflowSkipsTheUpdateAndBacksOffUntilTheGradientsFit) {
  const TrainRun run = train(f16_training(dynamic_from(64)), 6);
  std::vector<double> scales;
  int first_good = -1;
  for (size_t i = 0; i < run.results.size(); ++i) {
    scales.push_back(*run.results[i].loss_scale);
    if (i > 0) EXPECT_EQ(scales[i], run.results[i - 1].overflowed ? scales[i - 1] / 2 : scales[i - 1]);
    if (first_good < 0 && !run.results[i].overflowed) first_good = static_cast<int>(i);
  }
  ASSERT_GT(first_good, 0) << "64 overflows the tiny model's F16 gradients";
  ASSERT_LT(first_good, 5) << "and a few halvings make them fit";
  const TrainRun fitting = train(f16_training(static_scale(scales[first_good])), 1);
  const TrainRun same_steps = train(f16_training(dynamic_from(64)), first_good + 1);
  for (const std::string& key : model().parameter_names()) {
    EXPECT_TRUE(bitwise_equal(find(same_steps.state, key), find(fitting.state, key))) << key;
    EXPECT_TRUE(bitwise_equal(find(same_steps.momentum, key), find(fitting.momentum, key))) << key;
  }
  const TrainRun skipped = train(f16_training(dynamic_from(64)), 1);
  ASSERT_TRUE(skipped.results[0].overflowed);
  for (const std::string& key : model().parameter_names())
    EXPECT_TRUE(bitwise_equal(find(skipped.state, key), find(initial_state(), key))) << key;
  EXPECT_TRUE(skipped.momentum.empty()) << "a skipped first step leaves the momentum unstarted";
  EXPECT_FALSE(bitwise_equal(find(skipped.state, "bn1.running_mean"), find(initial_state(), "bn1.running_mean")));
}

TEST_F(F16Step, TheScaleGrowsAfterGrowthIntervalGoodSteps) {
  const TrainRun run = train(f16_training(dynamic_from(1.0, 2)), 5);
  std::vector<double> scales;
  for (const StepResult& r : run.results) {
    ASSERT_FALSE(r.overflowed);
    scales.push_back(*r.loss_scale);
  }
  EXPECT_EQ(scales, (std::vector<double>{1, 1, 2, 2, 4}));
}

TEST_F(F16Step, AStaticScaleNeverMovesButStillSkipsAnOverflow) {
  const TrainRun run = train(f16_training(static_scale(0x1p40)), 3);
  for (const StepResult& r : run.results) {
    EXPECT_TRUE(r.overflowed);
    EXPECT_EQ(*r.loss_scale, 0x1p40);
  }
}

// Replayed steps decide the skip and the new scale inside the recording, as a CUDA graph would.
// The scale jumps between 1 and 2^14: every good step at 1 grows it to 2^14, where the tiny
// model's gradients (thousands) overflow whatever CPU computed them, and the overflow backs it off
// to 1 again; so replayed steps overflow and skip, and replayed steps update.
TEST_F(F16Step, ReplayedStepsScaleSkipAndUpdateAsEagerOnes) {
  LossScalingOptions jumping = dynamic_from(1.0, 1);
  jumping.scaler.growth_factor = 0x1p14;
  jumping.scaler.backoff_factor = 0x1p-14;
  const TrainRun eager = train(f16_training(jumping), 8);
  const TrainRun replayed =
      train(f16_training(jumping, /*graphs=*/true), 8, std::make_unique<testing::RecordingCpuBackend>());
  ASSERT_EQ(replayed.results.back().path, StepPath::Replayed) << replayed.why_eager.back();
  int replayed_overflows = 0, replayed_updates = 0;
  for (size_t i = 0; i < eager.results.size(); ++i) {
    EXPECT_EQ(replayed.results[i].loss_scale, eager.results[i].loss_scale) << i;
    EXPECT_EQ(replayed.results[i].overflowed, eager.results[i].overflowed) << i;
    const StepResult& r = replayed.results[i];
    if (r.path != StepPath::Replayed) continue;
    (r.overflowed ? replayed_overflows : replayed_updates) += 1;
  }
  EXPECT_GT(replayed_overflows, 0) << "an overflow inside a replayed step";
  EXPECT_GT(replayed_updates, 0) << "an update inside a replayed step";
  for (const auto& [key, t] : eager.state) EXPECT_TRUE(bitwise_equal(find(replayed.state, key), t)) << key;
}

// A step whose recording fails at its end, or whose first replay does, runs op by op from the
// host state it began with. Where it is the first update (the step before it overflowed, and was skipped), its
// momentum starts there, as in the plain run: the recording's own update must not leave the
// momentum marked as started. (With dampening, a first update and a later one differ.)
class F16StepFailingGraph : public F16Step, public ::testing::WithParamInterface<testing::RecordingOptions> {};

TEST_P(F16StepFailingGraph, StartsTheMomentumAtTheFirstUpdateAsThePlainRun) {
  LossScalingOptions backing_off = dynamic_from(0x1p14);  // overflows, then 1 from the second step
  backing_off.scaler.backoff_factor = 0x1p-14;
  ExecutorOptions plain = f16_training(backing_off);
  plain.sgd.dampening = 0.5;
  ExecutorOptions graphs = plain;
  graphs.replay_graphs = true;
  ::testing::internal::CaptureStderr();
  const TrainRun failed = train(graphs, 3, std::make_unique<testing::RecordingCpuBackend>(GetParam()));
  const std::string stderr_text = ::testing::internal::GetCapturedStderr();
  const TrainRun eager = train(plain, 3);
  ASSERT_TRUE(eager.results[0].overflowed);
  ASSERT_FALSE(eager.results[1].overflowed);
  EXPECT_NE(stderr_text.find("failed"), std::string::npos) << "the second step was recorded: " << stderr_text;
  for (const StepResult& r : failed.results) EXPECT_EQ(r.path, StepPath::Eager);
  for (const auto& [key, t] : eager.state) EXPECT_TRUE(bitwise_equal(find(failed.state, key), t)) << key;
  for (const auto& [key, t] : eager.momentum) EXPECT_TRUE(bitwise_equal(find(failed.momentum, key), t)) << key;
}

INSTANTIATE_TEST_SUITE_P(Graphs, F16StepFailingGraph,
                         ::testing::Values(testing::RecordingOptions{.fail_at_end = true},
                                           testing::RecordingOptions{.fail_at_replay = 1}),
                         [](const ::testing::TestParamInfo<testing::RecordingOptions>& info) {
                           return std::string(info.param.fail_at_replay ? "FirstReplayFails" : "RecordingFails");
                         });

// Counts the loss scaler's unscales as they reach the backend.
class UnscaleCountingBackend : public testing::DelegatingBackend {
 public:
  void unscale_gradient_(Tensor& grad, const Tensor& scale, Tensor& found_inf) override {
    ++one_at_a_time;
    DelegatingBackend::unscale_gradient_(grad, scale, found_inf);
  }
  void unscale_gradients_(const std::vector<Tensor*>& grads, const Tensor& scale, Tensor& found_inf) override {
    lists.push_back(grads.size());
    DelegatingBackend::unscale_gradients_(grads, scale, found_inf);
  }
  int one_at_a_time = 0;
  std::vector<size_t> lists;  // the size of each list call
};

// A gradient that a grad hook is to see is unscaled as backward produces it; the others wait for
// the end of backward and go in one call (one launch on the GPU, GradScaler's foreach form), with
// the same bits: the step's parameters, and its overflow, are the same as when each went alone.
TEST_F(F16Step, GradientsNoGradHookSeesAreUnscaledTogetherAfterBackward) {
  struct Run {
    bool overflowed;
    TensorMap state;
    int one_at_a_time;
    std::vector<size_t> lists;
  };
  auto run = [&](const std::string& hooked, double scale) {
    model().load_state_dict(initial_state());
    HookHandle handle = model().register_grad_hook(hooked, TensorCallback([](const HookEvent&, TensorRef) {}));
    Run r;
    {
      auto backend = std::make_unique<UnscaleCountingBackend>();
      const UnscaleCountingBackend& counted = *backend;
      Executor executor(model(), std::move(backend), f16_training(static_scale(scale)));
      r.overflowed = executor.step(testing::tiny_input(), testing::tiny_labels()).overflowed;
      executor.sync_model();
      r.one_at_a_time = counted.one_at_a_time;
      r.lists = counted.lists;
    }
    handle.remove();
    for (const auto& [key, t] : model().state_dict()) r.state.emplace_back(key, t.clone());
    return r;
  };
  const size_t parameters = model().parameter_names().size();
  for (const double scale : {2.0, 0x1p40}) {
    const Run one = run("fc.weight", scale), all = run("*", scale);
    EXPECT_EQ(one.one_at_a_time, 1) << "fc.weight's, for its hook";
    EXPECT_EQ(one.lists, std::vector<size_t>{parameters - 1}) << "the others together";
    EXPECT_EQ(all.one_at_a_time, static_cast<int>(parameters));
    EXPECT_TRUE(all.lists.empty());
    EXPECT_EQ(one.overflowed, scale != 2.0) << "2^40 overflows the tiny model's F16 gradients, 2 does not";
    EXPECT_EQ(one.overflowed, all.overflowed);
    for (const auto& [key, t] : all.state) EXPECT_TRUE(bitwise_equal(find(one.state, key), t)) << key << " at " << scale;
  }
}

TEST_F(F16Step, AResumedScalerContinuesWhereItStopped) {
  ExecutorOptions options = f16_training(dynamic_from(4, 3));
  options.sgd.momentum = 0;  // the optimizer state is not under test here
  const TrainRun whole = train(options, 4);
  LossScalerState state;
  {
    model().load_state_dict(initial_state());
    Executor executor(model(), make_cpu_backend(), options);
    executor.step(testing::tiny_input(), testing::tiny_labels());
    executor.step(testing::tiny_input(), testing::tiny_labels());
    state = *executor.loss_scaler_state();
  }
  const TrainRun rest = train(options, 2, make_cpu_backend(), state);
  EXPECT_EQ(rest.results[0].loss_scale, whole.results[2].loss_scale);
  EXPECT_EQ(rest.results[1].loss_scale, whole.results[3].loss_scale);
}

TEST_F(F16Step, LossScalingOptionsAreParsedAndChecked) {
  EXPECT_EQ(parse_loss_scaling("off").kind, LossScaling::Off);
  EXPECT_EQ(parse_loss_scaling("dynamic").kind, LossScaling::Dynamic);
  EXPECT_EQ(loss_scaling_name(parse_loss_scaling("1024")), "static 1024");
  // 1e-39 and 1e-50 are positive, but an F32 holds them as a subnormal or as 0: their reciprocal,
  // which unscales the gradients, would be inf.
  for (const char* bad : {"", "0", "-8", "1e39", "inf", "nan", "12x", "auto", "1e-39", "1e-50"})
    EXPECT_TRUE(contains(error_message([&] { parse_loss_scaling(bad); }), "loss scaling")) << bad;
  EXPECT_EQ(parse_loss_scaling("1e-30").scaler.init_scale, 1e-30);  // small, but normal
  EXPECT_EQ(parse_precision("fp16"), Precision::F16);
  EXPECT_EQ(precision_name(Precision::F16), "fp16");
  ExecutorOptions bad = f16_training(dynamic_from(8.0, 0));
  EXPECT_TRUE(contains(error_message([&] { Executor(model(), make_cpu_backend(), bad); }), "growth interval"));
  const ExecutorOptions subnormal = f16_training(dynamic_from(1e-40));  // its reciprocal is inf in F32
  EXPECT_TRUE(contains(error_message([&] { Executor(model(), make_cpu_backend(), subnormal); }), "scale 1e-40"));
  LossScalingOptions off;
  off.kind = LossScaling::Off;
  Executor unscaled(model(), make_cpu_backend(), f16_training(off));
  EXPECT_FALSE(unscaled.loss_scaler_state().has_value());
  EXPECT_TRUE(contains(error_message([&] { unscaled.load_loss_scaler_state({8.0, 0}); }), "scales no loss"));
}

}  // namespace
}  // namespace hookrt
