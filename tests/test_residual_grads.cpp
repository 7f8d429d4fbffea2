// A block's residual add hands its gradient to both of its inputs as one tensor, with no copy.
// That is sound only while nothing writes the shared tensor in place: accumulating into it makes a
// new tensor, and a hook that may write a gradient (a changing probe, a callback) gets its own
// copy, so whatever one branch's hooks do, the other branch sees the add's gradient as it was.
// (That the sums are right is held by the parity tests against PyTorch.)
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "hookrt/hook_spec.h"
#include "support/delegating_backend.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::TinyModelTest;

class CopyCountingBackend final : public testing::DelegatingBackend {
 public:
  explicit CopyCountingBackend(int& copies) : copies_(copies) {}
  void copy(const Tensor& src, Tensor& dst) override {
    ++copies_;
    DelegatingBackend::copy(src, dst);
  }

 private:
  int& copies_;
};

class ResidualGradsTest : public TinyModelTest {
 protected:
  // One train step from the initial state; returns its records.
  static testing::RecordLog train_step(int* copies = nullptr) {
    model().load_state_dict(initial_state(), "initial state");
    ExecutorOptions options;
    options.mode = Mode::Train;
    options.sgd.lr = 0.1;
    int ignored = 0;
    Executor executor(model(), std::make_unique<CopyCountingBackend>(copies ? *copies : ignored), options);
    testing::RecordLog log;
    log.attach(executor);
    executor.step(testing::tiny_input(), testing::tiny_labels());
    executor.flush_records();
    return log;
  }
};

TEST_F(ResidualGradsTest, AnUnhookedStepCopiesNoGradient) {
  int copies = 0;
  train_step(&copies);
  EXPECT_EQ(copies, 0);
}

// layer2.0's bn2 received the gradient its add was given, which reached the block's second ReLU
// call as its grad_input. (Results are copied out: only() returns a record by value.)
void expect_bn2_got_the_adds_gradient(const testing::RecordLog& log) {
  const StatsResult added = testing::result_of<StatsResult>(
      log.only(HookWhen::Backward, "layer2.0.relu", "grad_input", 1), 0);
  const StatsResult bn2 =
      testing::result_of<StatsResult>(log.only(HookWhen::BackwardPre, "layer2.0.bn2", "grad_output"), 0);
  ASSERT_GT(added.l2, 0.0);
  EXPECT_EQ(bn2.l2, added.l2);
  EXPECT_EQ(bn2.min, added.min);
  EXPECT_EQ(bn2.max, added.max);
}

// layer2.0 has a downsample: its backward runs before bn2's and all but zeroes what it is given.
TEST_F(ResidualGradsTest, AChangingProbeOnOneBranchLeavesTheOtherBranchsGradient) {
  for (const char* spec : {"backward_pre:layer2.0.downsample:clamp=0:1e-30", "backward_pre:layer2.0.bn2:stats",
                           "backward:layer2.0.relu:stats", "grad:layer2.0.downsample.0.weight:stats"})
    register_hook_spec(model(), parse_hook_spec(spec));
  const testing::RecordLog log = train_step();
  expect_bn2_got_the_adds_gradient(log);
  const StatsResult weight = testing::result_of<StatsResult>(
      log.only(HookWhen::Grad, "layer2.0.downsample.0", "grad"), 0);
  EXPECT_LT(weight.l2, 1e-20) << "the clamp did all but zero the downsample's gradient";
}

TEST_F(ResidualGradsTest, ACallbackWritingItsGradientLeavesTheOtherBranchs) {
  HookHandle zeroing = model().register_full_backward_pre_hook(
      "layer2.0.downsample", [](const HookEvent&, Tensor grad_output) {
        float* p = grad_output.data<float>();
        for (int64_t i = 0; i < grad_output.numel(); ++i) p[i] = 0.0f;
      });
  for (const char* spec : {"backward_pre:layer2.0.bn2:stats", "backward:layer2.0.relu:stats"})
    register_hook_spec(model(), parse_hook_spec(spec));
  expect_bn2_got_the_adds_gradient(train_step());
}

}  // namespace
}  // namespace hookrt
