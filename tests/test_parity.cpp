// PyTorch parity: one hooked ResNet18 step on the CPU backend against torchvision's, firing by
// firing. tools/make_reference.py runs torchvision's resnet18 (torch 1.13) with a hook on every
// event of every module and parameter and writes every tensor those hooks saw; hookrt runs the
// same weights, batch and labels with `capture,stats` on every event of every module ("*" includes
// the root "") and every parameter. The hook keys, each captured tensor, the logits, the loss, the
// state after the SGD step and every stats record must agree with PyTorch.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "support/parity.h"

namespace hookrt {
namespace {

using namespace hookrt::testing;  // the parity vocabulary: ParityReport, HookedStep, compare_*

using TrainStepParity = ModeParity<Mode::Train, CpuSide>;
using EvalStepParity = ModeParity<Mode::Eval, CpuSide>;

// ---- train: model.train(), cross-entropy, backward, SGD(lr 0.1, momentum 0.9, wd 1e-4, Nesterov)
// ---

TEST_F(TrainStepParity, FiresTheHooksPyTorchFiresInItsOrder) {
  expect_pass(compare_firings(reference().step, hooked()), reference());
}

TEST_F(TrainStepParity, HookTensorsLogitsAndLossMatchPyTorch) {
  expect_pass(compare_tensors(reference().step, hooked()), reference());
}

TEST_F(TrainStepParity, StatsRecordsMatchTheFloat64Reference) {
  expect_pass(compare_stats(reference().step, hooked()), reference());
}

TEST_F(TrainStepParity, StateAfterSgdMatchesPyTorch) {
  expect_pass(compare_state_after(reference(), hooked()), reference());
}

// ---- eval: model.eval(), cross-entropy and backward (gradients for attribution), no step
// ---------

TEST_F(EvalStepParity, FiresTheHooksPyTorchFiresInItsOrder) {
  expect_pass(compare_firings(reference().step, hooked()), reference());
}

TEST_F(EvalStepParity, HookTensorsLogitsAndLossMatchPyTorch) {
  expect_pass(compare_tensors(reference().step, hooked()), reference());
}

TEST_F(EvalStepParity, StatsRecordsMatchTheFloat64Reference) {
  expect_pass(compare_stats(reference().step, hooked()), reference());
}

TEST_F(EvalStepParity, StepLeavesEveryParameterAndBufferUnchanged) {
  // PyTorch's eval BatchNorm reads its running statistics without updating them, and the
  // reference takes no optimizer step: every state tensor must come back bit for bit.
  ParityReport report("state after an eval step");
  for (const auto& [key, before] : reference().weights) {
    const auto got = hooked().state_after.find(key);
    if (got == hooked().state_after.end())
      report.fail(key, "hookrt's model has no such state key");
    else if (before.dtype() == DType::I64)
      report.check_number(key, "value", got->second.item(0), before.item(0), 0);
    else
      report.check_tensor(key, got->second, before, Tolerance{0, 0, Tensor()});
  }
  EXPECT_TRUE(report.ok()) << report.describe(reference().command)
                           << "\ntolerance: none (nothing may change)";
}

// ---- the comparison itself can fail -------------------------------------------------------------

TEST_F(EvalStepParity, ComparisonCatchesAConvWeightScaledBy1001) {
  // Eval mode, because train-mode BatchNorm would normalise most of the 0.1% away downstream. The
  // scaled conv's output and grad_input move by 1e-3 of their scale, 10x the tolerance; what runs
  // before it must still match, so the checker tells a wrong layer from a right one.
  const std::string scaled = "layer3.0.conv2.weight";
  TensorMap weights = reference().weights;
  for (auto& [key, tensor] : weights) {
    if (key != scaled) continue;
    tensor = tensor.clone();
    for (int64_t i = 0; i < tensor.numel(); ++i) tensor.data<float>()[i] *= 1.001f;
  }
  const HookedStep perturbed = run_hooked_step(reference(), weights, CpuSide::make_backend);

  const ParityReport keys = compare_firings(reference().step, perturbed);
  EXPECT_TRUE(keys.ok()) << keys.describe(reference().command);
  const ParityReport tensors = compare_tensors(reference().step, perturbed);
  EXPECT_FALSE(tensors.ok()) << "a 0.1% weight change went unnoticed";
  EXPECT_TRUE(tensors.failed("step0/forward/layer3.0.conv2/output"))
      << tensors.describe(reference().command);
  EXPECT_TRUE(tensors.failed("step0/backward/layer3.0.conv2/grad_input"))
      << tensors.describe(reference().command);
  EXPECT_FALSE(tensors.failed("step0/forward/layer3.0.conv1/output"))
      << tensors.describe(reference().command);
  EXPECT_FALSE(tensors.failed("step0/forward/layer2/output"))
      << tensors.describe(reference().command);
  const ParityReport stats = compare_stats(reference().step, perturbed);
  EXPECT_TRUE(stats.failed("step0/forward/layer3.0.conv2/output"))
      << stats.describe(reference().command);
}

TEST_F(TrainStepParity, StateComparisonCatchesAStepWithoutWeightDecay) {
  // PyTorch's own state passes. Nesterov's first step moves p by lr * (1 + momentum) * (g + wd *
  // p); dropping wd * p moves a BatchNorm weight (in [0.5, 1.5)) by ~2e-5: within the parameter's
  // own tolerance (1e-4 of max |p|), but a large part of the step, which the step check sees.
  HookedStep truth;
  for (const auto& [key, before] : reference().weights)
    truth.state_after[key] = reference().step.tensors.at("after/" + key);
  const ParityReport itself = compare_state_after(reference(), truth);
  EXPECT_TRUE(itself.ok()) << itself.describe(reference().command);

  const SgdOptions& sgd = reference().step.sgd.value();
  HookedStep without_decay = truth;
  for (const std::string& key : {std::string("bn1.weight"), std::string("layer4.1.bn2.weight")}) {
    Tensor after = truth.state_after.at(key).clone();
    const Values p(state_before(reference(), key));
    for (int64_t i = 0; i < after.numel(); ++i)
      after.data<float>()[i] +=
          static_cast<float>(sgd.lr * (1 + sgd.momentum) * sgd.weight_decay * p[i]);
    without_decay.state_after[key] = after;
  }
  const ParityReport report = compare_state_after(reference(), without_decay);
  EXPECT_TRUE(report.failed("after/bn1.weight - before")) << report.describe(reference().command);
  EXPECT_TRUE(report.failed("after/layer4.1.bn2.weight - before"))
      << report.describe(reference().command);
  EXPECT_FALSE(report.failed("after/bn1.weight")) << report.describe(reference().command);
}

TEST_F(EvalStepParity, FiringComparisonCatchesAMissingKeyAnUnexpectedKeyAndASwap) {
  // PyTorch's own firings pass; without one of them, with one PyTorch never makes, or with two
  // forward firings swapped, they fail.
  HookedStep truth;
  for (const std::string& key : reference().step.capture_keys)
    truth.captures[key] = reference().step.tensors.at(key);
  truth.firing_order = reference().step.capture_keys;
  const ParityReport itself = compare_firings(reference().step, truth);
  EXPECT_TRUE(itself.ok()) << itself.describe(reference().command);

  const std::string dropped = "step0/forward/layer2.0.relu#1/output";
  const std::string invented = "step0/backward/conv1/grad_input";  // PyTorch passes None there
  HookedStep altered = truth;                                      // shares the tensors
  ASSERT_EQ(altered.captures.erase(dropped), 1u) << "the reference has no key " << dropped;
  altered.captures[invented] = Tensor::zeros({1});
  const ParityReport keys = compare_firings(reference().step, altered);
  EXPECT_TRUE(keys.failed(dropped)) << keys.describe(reference().command);
  EXPECT_TRUE(keys.failed(invented)) << keys.describe(reference().command);
  EXPECT_EQ(keys.failing_keys(), 2u) << keys.describe(reference().command);

  HookedStep swapped = truth;
  auto& order = swapped.firing_order;
  const auto first = std::find(order.begin(), order.end(), "step0/forward/layer1.0.relu/output");
  ASSERT_NE(first, order.end());
  std::iter_swap(first, first + 1);
  const ParityReport reordered = compare_firings(reference().step, swapped);
  EXPECT_TRUE(reordered.failed("step0/forward/layer1.0.relu/output"))
      << reordered.describe(reference().command);
}

}  // namespace
}  // namespace hookrt
