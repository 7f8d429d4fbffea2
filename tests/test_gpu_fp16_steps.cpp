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
// Held to four times that: 0.035.
constexpr double kF16LogitsTolerance = 0.035;

struct ScaledRun {
  std::vector<StepResult> results;
};

class GpuFp16Steps : public TinyModelTest {
 protected:
  // From a scale the tiny model's F16 gradients overflow at (its conv1 weight gradient reaches
  // thousands), growing every 2 good steps: overflows, backoffs and growth all happen in 8 steps.
  static ScaledRun train(std::unique_ptr<Backend> backend, bool graphs, MemoryFormat format) {
    model().load_state_dict(initial_state());
    ExecutorOptions options;
    options.mode = Mode::Train;
    options.precision = Precision::F16;
    options.memory_format = format;
    options.sgd = {.lr = 0.01, .momentum = 0.9};
    options.replay_graphs = graphs;
    LossScalingOptions scaling;
    scaling.scaler.init_scale = 64;
    scaling.scaler.growth_interval = 2;
    options.loss_scaling = scaling;
    ScaledRun run;
    Executor executor(model(), std::move(backend), options);
    for (int i = 0; i < 8; ++i) run.results.push_back(executor.step(testing::tiny_input(), testing::tiny_labels()));
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
      if (graphs) EXPECT_EQ(mine.results.back().path, StepPath::Replayed) << what;
    }
  }
}

}  // namespace
}  // namespace hookrt
