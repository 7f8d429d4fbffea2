// Whole Precision::F16 training steps on the GPU against the CPU reference, under dynamic loss
// scaling: the same overflows, the same scales and skipped updates step by step, eager and replayed
// as a CUDA graph, and logits within F16's rounding of the CPU's (the dtypes hooks see are checked
// with BF16's in test_gpu_bf16_steps.cpp). Skips without a usable GPU.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "hookrt/backend.h"
#include "hookrt/executor.h"
#include "support/gpu.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::relative_error;
using testing::TinyModelTest;

// A rounding to F16 moves a value by at most 2^-11 of itself; over the tiny ResNet's ~70 roundings
// on a value's path they add like a random walk to about sqrt(70)·2^-11 = 0.004 of the logits, and
// two steps that round apart (the GPU's sums run in another order) lie up to twice that apart.
// Held to four times that: 0.035. The steps run on the step comparisons' batch of four 64-pixel
// images (testing::step_batch_input), where layer4's batch norms normalise 16 values per channel (on the tiny batch, two: the
// F16 gradients below them are then mostly rounding noise, and two machines' differ widely), and
// their updates are kept too small to move the logits by more than that (learning rate 1e-4).
constexpr double kF16LogitsTolerance = 0.035;


struct ScaledRun {
  std::vector<StepResult> results;
};

class GpuFp16Steps : public TinyModelTest {
 protected:
  // The scale jumps between 1 and 2^20: a good step at 1 grows it to 2^20, where the scaled loss
  // gradient (tenths, times 2^20) no longer fits F16, and the overflow backs it off to 1, where
  // the gradients (at most a few units) fit it thousands of times over. Every decision is then far
  // from F16's limit, so the GPU and the CPU make the same ones although their gradients round
  // apart (a scale that lands within a rounding of 65504 would be decided by the rounding).
  static ScaledRun train(std::unique_ptr<Backend> backend, bool graphs, MemoryFormat format) {
    model().load_state_dict(initial_state());
    ExecutorOptions options;
    options.mode = Mode::Train;
    options.precision = Precision::F16;
    options.memory_format = format;
    options.sgd = {.lr = 1e-4, .momentum = 0.9};
    options.replay_graphs = graphs;
    LossScalingOptions scaling;
    scaling.scaler.init_scale = 1;
    scaling.scaler.growth_factor = 0x1p20;
    scaling.scaler.backoff_factor = 0x1p-20;
    scaling.scaler.growth_interval = 1;
    options.loss_scaling = scaling;
    ScaledRun run;
    Executor executor(model(), std::move(backend), options);
    for (int i = 0; i < 8; ++i) run.results.push_back(executor.step(testing::step_batch_input(), testing::step_batch_labels()));
    return run;
  }
};

TEST_F(GpuFp16Steps, OverflowsScalesAndLogitsFollowTheCpu) {
  for (const MemoryFormat format : {MemoryFormat::ChannelsLast, MemoryFormat::Contiguous}) {
    for (const bool graphs : {false, true}) {
      HOOKRT_GPU_OR_SKIP(gpu);
      const ScaledRun cpu = train(make_cpu_backend(), false, format);
      const ScaledRun mine = train(std::move(gpu), graphs, format);
      const std::string what = std::string(memory_format_name(format)) + (graphs ? ", replayed" : ", eager");
      bool any_overflow = false;
      for (size_t i = 0; i < cpu.results.size(); ++i) {
        EXPECT_EQ(mine.results[i].loss_scale, cpu.results[i].loss_scale) << what << ", step " << i;
        EXPECT_EQ(mine.results[i].overflowed, cpu.results[i].overflowed) << what << ", step " << i;
        EXPECT_LT(relative_error(mine.results[i].logits, cpu.results[i].logits), kF16LogitsTolerance)
            << what << ", step " << i;
        any_overflow = any_overflow || cpu.results[i].overflowed;
      }
      EXPECT_TRUE(any_overflow) << "the run must exercise a skipped update";
      EXPECT_FALSE(cpu.results.front().overflowed) << "and an update that runs";
      if (graphs) EXPECT_EQ(mine.results.back().path, StepPath::Replayed) << what;
    }
  }
}

}  // namespace
}  // namespace hookrt
