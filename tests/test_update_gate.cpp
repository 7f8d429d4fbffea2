// The executor's update gate: called once per train step after backward and before SGD; Skip
// leaves every parameter, buffer, counter and momentum buffer as the step found them; scaling
// reaches the optimizer.
#include <gtest/gtest.h>

#include <cstring>

#include "hookrt/error.h"
#include "hookrt/executor.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::TinyModelTest;

class UpdateGate : public TinyModelTest {};

TensorMap deep_copy(const TensorMap& state) {
  TensorMap copy;
  for (const auto& [key, tensor] : state) copy.emplace_back(key, tensor.clone());
  return copy;
}

void expect_same(const TensorMap& a, const TensorMap& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_EQ(std::memcmp(a[i].second.raw_data(), b[i].second.raw_data(), a[i].second.nbytes()), 0) << a[i].first;
  }
}

const SgdOptions kSgd{0.1, 0.9, 0.0, 1e-4, false};

TEST_F(UpdateGate, SkipLeavesParametersBuffersCountersAndMomentumAsTheStepFoundThem) {
  auto executor = testing::cpu_executor(model(), {Mode::Train, kSgd});
  executor->step(testing::tiny_input(), testing::tiny_labels());  // momentum exists from here
  const TensorMap state = deep_copy(model().state_dict());
  const TensorMap momentum = deep_copy(executor->optimizer_state());
  std::vector<int64_t> seen;
  executor->set_update_gate([&](int64_t step, ParameterGradients&) {
    seen.push_back(step);
    return UpdateAction::Skip;
  });
  executor->step(testing::tiny_input(2), testing::tiny_labels());
  EXPECT_TRUE(executor->last_update_skipped());
  EXPECT_EQ(seen, std::vector<int64_t>{1});
  expect_same(model().state_dict(), state);
  expect_same(executor->optimizer_state(), momentum);
  EXPECT_EQ(executor->steps_done(), 2);
}

TEST_F(UpdateGate, ScaledGradientsAreWhatTheOptimizerUses) {
  auto executor = testing::cpu_executor(model(), {Mode::Train, {0.1, 0.0, 0.0, 0.0, false}});
  const Tensor before = model().tensor("fc.weight").clone();
  const Tensor conv_before = model().tensor("conv1.weight").clone();
  executor->set_update_gate([](int64_t, ParameterGradients& grads) {
    grads.scale("fc.weight", 0.0);  // no update for fc.weight, plain SGD for the rest
    return UpdateAction::Apply;
  });
  executor->step(testing::tiny_input(), testing::tiny_labels());
  EXPECT_FALSE(executor->last_update_skipped());
  EXPECT_EQ(std::memcmp(before.raw_data(), model().tensor("fc.weight").raw_data(), before.nbytes()), 0);
  EXPECT_NE(std::memcmp(conv_before.raw_data(), model().tensor("conv1.weight").raw_data(), conv_before.nbytes()), 0);
}

TEST_F(UpdateGate, RunsOnlyForTrainStepsWithLabelsAndRefusesUnknownParameters) {
  int calls = 0;
  auto eval = testing::cpu_executor(model(), {Mode::Eval, kSgd});
  eval->set_update_gate([&](int64_t, ParameterGradients&) { return ++calls, UpdateAction::Apply; });
  eval->step(testing::tiny_input(), testing::tiny_labels());
  auto train = testing::cpu_executor(model(), {Mode::Train, kSgd});
  train->set_update_gate([&](int64_t, ParameterGradients&) { return ++calls, UpdateAction::Apply; });
  train->step(testing::tiny_input());  // no labels: no backward, no update
  EXPECT_EQ(calls, 0);
  train->set_update_gate([](int64_t, ParameterGradients& grads) {
    grads.scale("fc.no_such", 0.5);
    return UpdateAction::Apply;
  });
  EXPECT_THROW(train->step(testing::tiny_input(), testing::tiny_labels()), Error);
}

}  // namespace
}  // namespace hookrt
