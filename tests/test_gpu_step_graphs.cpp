// Whole steps replayed as CUDA graphs on the GPU: a hooked train step (with and without an update
// gate, and an eval step) recorded once and replayed on new batches gives the losses, logits,
// parameters and probe records that the same steps run op by op give, the pool reserves nothing more while replaying, and a step whose
// hooks need the host runs op by op, saying why. Skips where no GPU is usable.
#include <gtest/gtest.h>

#if HOOKRT_WITH_CUDA
#include <cuda_runtime.h>

#include <map>
#include <string>
#include <vector>

#include "hookrt/hook_spec.h"
#include "support/gpu.h"
#include "support/probe_results.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::TinyModelTest;

struct StepsRun {
  std::vector<StepPath> paths;
  std::vector<double> losses;
  std::vector<Tensor> logits;
  std::vector<ProbeRecord> records;
  std::map<std::string, Tensor> state;  // after sync_model
};

class GpuStepGraphs : public TinyModelTest {
 protected:
  void hook_everything() {
    for (const char* spec : {"forward:*:stats,zeros,nonfinite", "backward:*:stats,zeros,nonfinite",
                             "grad:*:stats,zeros,nonfinite", "forward:layer1.0.bn1:clamp=-2:2,stats"})
      register_hook_spec(model(), parse_hook_spec(spec));
  }

  // `steps` steps on seeded batches from the model's initial state, with or without graphs.
  // Labels in train mode, and in eval mode where `eval_labels` (gradients for attribution).
  StepsRun run_steps(std::unique_ptr<Backend> gpu, bool replay_graphs, bool train, int steps,
                     UpdateGate gate = {}, bool eval_labels = false) {
    model().load_state_dict(initial_state());
    ExecutorOptions options;
    options.mode = train ? Mode::Train : Mode::Eval;
    options.sgd.lr = 0.05;
    options.sgd.momentum = 0.9;
    options.replay_graphs = replay_graphs;
    StepsRun out;
    {
      Executor executor(model(), std::move(gpu), options);
      executor.subscribe([&out](const ProbeRecord& record) { out.records.push_back(record); });
      if (gate) executor.set_update_gate(gate);
      for (int i = 0; i < steps; ++i) {
        const StepResult result =
            executor.step(testing::tiny_input(100 + i), train || eval_labels ? testing::tiny_labels() : Tensor());
        out.paths.push_back(result.path);
        if (result.loss) out.losses.push_back(*result.loss);
        out.logits.push_back(result.logits);
      }
      executor.sync_model();
    }
    for (const auto& [key, tensor] : model().state_dict()) out.state[key] = tensor.clone();
    return out;
  }

  static void expect_same_runs(const StepsRun& graphs, const StepsRun& eager) {
    ASSERT_EQ(graphs.losses.size(), eager.losses.size());
    for (size_t i = 0; i < graphs.losses.size(); ++i)
      testing::expect_near_rel(graphs.losses[i], eager.losses[i], 0.0, 1e-5, "loss of step " + std::to_string(i));
    for (size_t i = 0; i < graphs.logits.size(); ++i)
      testing::expect_same_floats(graphs.logits[i], eager.logits[i], 1e-4, "logits of step " + std::to_string(i));
    for (const auto& [key, tensor] : eager.state)
      testing::expect_same_floats(graphs.state.at(key), tensor, 1e-4, key);
    ASSERT_EQ(graphs.records.size(), eager.records.size());
    for (size_t i = 0; i < graphs.records.size(); ++i) {
      const ProbeRecord& got = graphs.records[i];
      const ProbeRecord& want = eager.records[i];
      ASSERT_EQ(got.capture_key(), want.capture_key()) << "record " << i;
      testing::expect_same_results(got.results, want.results, 1e-4, 1e-4, want.capture_key());
    }
  }
};

TEST_F(GpuStepGraphs, ReplayedTrainStepsGiveWhatEagerStepsGive) {
  HOOKRT_GPU_OR_SKIP(graph_gpu);
  hook_everything();
  const StepsRun graphs = run_steps(std::move(graph_gpu), true, true, 5);
  // Step 0 starts momentum, so step 1 is the first of its kind again; step 2 is recorded.
  EXPECT_EQ(graphs.paths, (std::vector<StepPath>{StepPath::Eager, StepPath::Eager, StepPath::Recorded,
                                                  StepPath::Replayed, StepPath::Replayed}));
  HOOKRT_GPU_OR_SKIP(eager_gpu);
  const StepsRun eager = run_steps(std::move(eager_gpu), false, true, 5);
  EXPECT_GT(graphs.records.size(), 5u * 280);
  expect_same_runs(graphs, eager);
}

// With an update gate the optimizer runs after the graph, on the gradients the replay left.
TEST_F(GpuStepGraphs, ReplayedGatedTrainStepsGiveWhatEagerStepsGive) {
  auto gate = [](int64_t step, ParameterGradients& grads) {
    if (step == 2) return UpdateAction::Skip;
    if (step == 3) grads.scale("fc.weight", 0.5);
    return UpdateAction::Apply;
  };
  HOOKRT_GPU_OR_SKIP(graph_gpu);
  hook_everything();
  const StepsRun graphs = run_steps(std::move(graph_gpu), true, true, 5, gate);
  EXPECT_EQ(graphs.paths, (std::vector<StepPath>{StepPath::Eager, StepPath::Recorded, StepPath::Replayed,
                                                  StepPath::Replayed, StepPath::Replayed}));
  HOOKRT_GPU_OR_SKIP(eager_gpu);
  expect_same_runs(graphs, run_steps(std::move(eager_gpu), false, true, 5, gate));
}

TEST_F(GpuStepGraphs, ReplayedEvalStepsGiveWhatEagerStepsGive) {
  HOOKRT_GPU_OR_SKIP(graph_gpu);
  hook_everything();
  const StepsRun graphs = run_steps(std::move(graph_gpu), true, false, 4);
  EXPECT_EQ(graphs.paths,
            (std::vector<StepPath>{StepPath::Eager, StepPath::Recorded, StepPath::Replayed, StepPath::Replayed}));
  HOOKRT_GPU_OR_SKIP(eager_gpu);
  expect_same_runs(graphs, run_steps(std::move(eager_gpu), false, false, 4));
}

// Eval steps with labels run backward too: their gradients must be freed inside the recording,
// never across its edge (a free in a graph of memory made outside it invalidates the capture).
TEST_F(GpuStepGraphs, ReplayedEvalStepsWithLabelsGiveWhatEagerStepsGive) {
  HOOKRT_GPU_OR_SKIP(graph_gpu);
  hook_everything();
  const StepsRun graphs = run_steps(std::move(graph_gpu), true, false, 4, {}, true);
  EXPECT_EQ(graphs.paths,
            (std::vector<StepPath>{StepPath::Eager, StepPath::Recorded, StepPath::Replayed, StepPath::Replayed}));
  HOOKRT_GPU_OR_SKIP(eager_gpu);
  expect_same_runs(graphs, run_steps(std::move(eager_gpu), false, false, 4, {}, true));
}

TEST_F(GpuStepGraphs, ReplayedStepsReserveNoDeviceMemory) {
  HOOKRT_GPU_OR_SKIP(gpu);
  hook_everything();
  ExecutorOptions options;
  options.mode = Mode::Train;
  Executor executor(model(), std::move(gpu), options);
  for (int i = 0; i < 3; ++i) executor.step(testing::tiny_input(), testing::tiny_labels());
  ASSERT_EQ(executor.step(testing::tiny_input(), testing::tiny_labels()).path, StepPath::Replayed)
      << executor.why_last_step_eager();
  executor.flush_records();
  const uint64_t warm = testing::device_pool_reserved_bytes();
  for (int i = 0; i < 5; ++i) executor.step(testing::tiny_input(), testing::tiny_labels());
  executor.flush_records();
  EXPECT_EQ(testing::device_pool_reserved_bytes(), warm) << "a replayed step made the pool reserve more memory";
}

TEST_F(GpuStepGraphs, AHostCallbackKeepsStepsEagerAndSaysSo) {
  HOOKRT_GPU_OR_SKIP(gpu);
  hook_everything();
  int calls = 0;
  model().register_forward_hook("fc", PairCallback([&calls](const HookEvent&, TensorRef, TensorRef) { ++calls; }));
  Executor executor(model(), std::move(gpu), ExecutorOptions{});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(executor.step(testing::tiny_input()).path, StepPath::Eager);
  EXPECT_EQ(calls, 3);
  EXPECT_NE(executor.why_last_step_eager().find("host callback"), std::string::npos)
      << executor.why_last_step_eager();
}

}  // namespace
}  // namespace hookrt

#else

TEST(GpuStepGraphs, NeedsTheCudaBackend) { GTEST_SKIP() << "hookrt was built without the CUDA backend"; }

#endif
