// Whole-step graph replay, on the CPU: the recording backend behaves as the GPU's does with CUDA
// graphs (ops recorded, not run; probe results deferred; replays rerun the ops on the same
// tensors), so a step that is recorded and then replayed runs the very same CPU code on the very
// same data as a plain executor's step. Every logit, loss, parameter, buffer, momentum buffer and
// probe record must therefore equal the plain run's bit for bit, and each step must take the path
// (eager, recorded, replayed) that its signature and hooks call for.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "hookrt/backend.h"
#include "hookrt/executor.h"
#include "hookrt/hook_spec.h"
#include "hookrt/io.h"
#include "support/recording_backend.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::RecordingCpuBackend;
using testing::RecordingOptions;
using testing::TinyModelTest;

constexpr StepPath E = StepPath::Eager;
constexpr StepPath R = StepPath::Recorded;
constexpr StepPath P = StepPath::Replayed;

struct StepData {
  Tensor input;
  Tensor labels;  // undefined: a forward-only step
};

// Seeded inputs, a different one each step, and labels that change too (a replay must refill both).
std::vector<StepData> seeded_steps(int count, bool with_labels, int64_t batch = testing::kTinyBatch,
                                   uint64_t first_seed = 10) {
  std::vector<StepData> steps;
  for (int i = 0; i < count; ++i) {
    StepData step{testing::tiny_input(first_seed + i, batch), Tensor()};
    if (with_labels) {
      std::vector<int64_t> labels;
      for (int64_t n = 0; n < batch; ++n) labels.push_back((i + 3 * n + 1) % testing::kTinyClasses);
      step.labels = Tensor::from_vector(labels, {batch});
    }
    steps.push_back(step);
  }
  return steps;
}

// Everything a run produces that a replayed step could get wrong.
struct RunOutcome {
  std::vector<StepPath> paths;
  std::vector<std::string> why_eager;  // after each step
  std::vector<int64_t> eager_ops;      // ops the recording backend ran outside a graph, per step
  std::vector<std::optional<double>> losses;
  std::vector<Tensor> logits;
  std::vector<Tensor> input_grads;  // undefined unless options.input_grad
  std::optional<int64_t> halted_at;  // the step that threw Error(Halted), the run's last
  std::string halt_message;
  std::vector<ProbeRecord> records;
  std::vector<std::string> lines;  // the records as stats.jsonl lines
  TensorMap state;                 // parameters and buffers after sync_model, deep copies
  TensorMap momentum;
  // The recording backend's counts at the end of the run.
  int recordings_begun = 0, recordings_ended = 0, replays = 0;
};

std::set<uint64_t> hook_ids(const HookRegistry& hooks) {
  std::set<uint64_t> ids;
  for (HookWhen when : {HookWhen::ForwardPre, HookWhen::Forward, HookWhen::BackwardPre,
                        HookWhen::Backward, HookWhen::Grad})
    for (const auto& hook : hooks.hooks(when)) ids.insert(hook->id);
  return ids;
}

// Called before each step, e.g. to change the learning rate or add a hook (removed after the run).
using BeforeStep = std::function<void(Executor&, int64_t step)>;

// Runs `steps` from the model's initial state on `backend`.
RunOutcome run_steps(std::unique_ptr<Backend> backend, const ExecutorOptions& options,
                     const std::vector<StepData>& steps, const BeforeStep& before = {}) {
  Model& model = TinyModelTest::model();
  model.load_state_dict(TinyModelTest::initial_state(), "initial state");
  const std::set<uint64_t> hooks_before = hook_ids(model.hooks());
  const auto* recording = dynamic_cast<const RecordingCpuBackend*>(backend.get());
  RunOutcome run;
  {
    Executor executor(model, std::move(backend), options);
    executor.subscribe([&run](const ProbeRecord& record) {
      run.records.push_back(record);
      run.lines.push_back(io::record_to_json(record).dump());
    });
    for (size_t i = 0; i < steps.size(); ++i) {
      if (before) before(executor, static_cast<int64_t>(i));
      const int64_t ops_before = recording ? recording->eager_ops() : 0;
      StepResult result;
      try {
        result = executor.step(steps[i].input, steps[i].labels);
      } catch (const Error& error) {
        if (error.kind() != ErrorKind::Halted) throw;
        run.halted_at = static_cast<int64_t>(i);
        run.halt_message = error.what();
        break;
      }
      run.eager_ops.push_back(recording ? recording->eager_ops() - ops_before : 0);
      run.paths.push_back(result.path);
      run.why_eager.push_back(executor.why_last_step_eager());
      run.losses.push_back(result.loss);
      run.logits.push_back(result.logits);
      run.input_grads.push_back(result.input_grad);
    }
    executor.sync_model();
    for (const auto& [key, tensor] : model.state_dict())
      run.state.emplace_back(key, tensor.clone());
    run.momentum = executor.optimizer_state();
    if (recording) {
      run.recordings_begun = recording->recordings_begun();
      run.recordings_ended = recording->recordings_ended();
      run.replays = recording->replays();
    }
  }
  for (uint64_t id : hook_ids(model.hooks()))
    if (!hooks_before.count(id)) model.hooks().remove(id);
  return run;
}

ExecutorOptions plain_options(ExecutorOptions options) {
  options.replay_graphs = false;
  return options;
}

std::string paths_text(const std::vector<StepPath>& paths) {
  std::string text;
  for (StepPath path : paths) text += (text.empty() ? "" : " ") + step_path_name(path);
  return text;
}

void expect_same_maps(const TensorMap& got, const TensorMap& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].first, want[i].first) << what;
    EXPECT_TRUE(testing::bitwise_equal(got[i].second, want[i].second))
        << what << " " << got[i].first;
  }
}

// The same CPU code on the same data: equal to the last bit (0 ulp), records included.
void expect_same_results(const RunOutcome& got, const RunOutcome& want) {
  ASSERT_EQ(got.logits.size(), want.logits.size());
  EXPECT_EQ(got.halted_at, want.halted_at);
  EXPECT_EQ(got.halt_message, want.halt_message);
  for (size_t i = 0; i < got.logits.size(); ++i) {
    ASSERT_EQ(got.input_grads[i].defined(), want.input_grads[i].defined()) << "input grad of step " << i;
    if (want.input_grads[i].defined())
      EXPECT_TRUE(testing::bitwise_equal(got.input_grads[i], want.input_grads[i])) << "input grad of step " << i;
    EXPECT_EQ(got.losses[i], want.losses[i]) << "loss of step " << i;
    EXPECT_TRUE(testing::bitwise_equal(got.logits[i], want.logits[i]))
        << "logits of step " << i << " differ by up to "
        << testing::max_abs_diff(got.logits[i], want.logits[i]);
  }
  EXPECT_EQ(got.lines.size(), want.lines.size()) << "records delivered";
  for (size_t i = 0; i < std::min(got.lines.size(), want.lines.size()); ++i)
    if (got.lines[i] != want.lines[i]) {
      ADD_FAILURE() << "record " << i << " differs (the first that does):\n got: " << got.lines[i]
                    << "\nwant: " << want.lines[i];
      break;
    }
  expect_same_maps(got.state, want.state, "state_dict");
  expect_same_maps(got.momentum, want.momentum, "momentum buffer");
}

// A step that ran from a graph ran none of its work op by op.
void expect_graph_steps_ran_no_eager_ops(const RunOutcome& run) {
  for (size_t i = 0; i < run.paths.size(); ++i)
    if (run.paths[i] != E)
      EXPECT_EQ(run.eager_ops[i], 0) << "step " << i << " (" << step_path_name(run.paths[i]) << ")";
}

ExecutorOptions train_options(bool deliver_in_background = true) {
  ExecutorOptions options;
  options.mode = Mode::Train;
  options.sgd = SgdOptions{0.05, 0.9, 0.0, 1e-4, false};
  options.deliver_in_background = deliver_in_background;
  return options;
}

// The test backend itself: recording runs nothing, replays run everything on the same tensors, and
// each replay's probe results wait under the recording's ticket for the next seal.
TEST(RecordingCpuBackendTest, RecordsInsteadOfRunningAndReplaysOnTheSameTensors) {
  RecordingCpuBackend backend;
  Tensor x = Tensor::from_vector(std::vector<float>{-1, 2, -3, 4}, {4});
  Tensor y = backend.empty({4}, DType::F32);
  backend.fill(y, 7.0);
  ASSERT_TRUE(backend.begin_step_recording());
  backend.relu_forward(x, y);
  ProbeRecord record;
  const ProbeRunEffects effects =
      backend.run_probes(ProbeList{probes::Stats{}}, y, record, ProbeRunOptions{});
  EXPECT_THROW(backend.to_host(y), Error);
  std::unique_ptr<StepGraph> graph = backend.end_step_recording();
  EXPECT_EQ(testing::values_of(y), (std::vector<float>{7, 7, 7, 7}))
      << "nothing runs while recording";
  ASSERT_TRUE(effects.deferred.has_value());
  EXPECT_TRUE(record.results.empty());
  EXPECT_EQ(backend.seal_deferred_probe_results(), nullptr) << "no replay, no results";
  for (const float scale : {1.0f, -2.0f}) {
    for (int64_t i = 0; i < 4; ++i) x.data<float>()[i] = scale * static_cast<float>(i + 1);
    graph->replay();
    const std::vector<DeferredProbeResults> results = backend.collect_deferred_probe_results();
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].ticket, *effects.deferred);
    const double max = std::get<StatsResult>(results[0].results.at(0)).max.value();
    EXPECT_EQ(max, scale > 0 ? 4.0 : 0.0) << "the replay read x as it is now";
  }
  EXPECT_EQ(backend.replays(), 2);
}

class StepGraphs : public TinyModelTest {
 protected:
  static void hook(const std::string& spec) { register_hook_spec(model(), parse_hook_spec(spec)); }
  static void hook_everything() {
    for (const char* spec : {"forward:*:stats,zeros,nonfinite", "backward:*:stats,zeros,nonfinite",
                             "grad:*:stats,zeros,nonfinite"})
      hook(spec);
  }
};

// Train with momentum: step 0 starts the momentum buffers, so step 1 is a new kind of step (its
// warm-up), step 2 is recorded and the rest replay.
TEST_F(StepGraphs, TrainStepsReplayToThePlainRunsResults) {
  hook_everything();
  const std::vector<StepData> steps = seeded_steps(5, true);
  for (const bool background : {true, false}) {
    SCOPED_TRACE(background ? "records delivered in the background"
                            : "records delivered by each step");
    const ExecutorOptions options = train_options(background);
    const RunOutcome plain = run_steps(make_cpu_backend(), plain_options(options), steps);
    const RunOutcome replayed = run_steps(std::make_unique<RecordingCpuBackend>(), options, steps);

    EXPECT_EQ(paths_text(replayed.paths), paths_text({E, E, R, P, P}));
    EXPECT_EQ(paths_text(plain.paths), paths_text({E, E, E, E, E}));
    ASSERT_GT(plain.lines.size(), 5 * 200u);
    expect_same_results(replayed, plain);
    EXPECT_EQ(replayed.records.back().step, 4);
    expect_graph_steps_ran_no_eager_ops(replayed);
    for (size_t i = 0; i < replayed.paths.size(); ++i)
      EXPECT_EQ(replayed.why_eager[i].empty(), replayed.paths[i] != E)
          << "step " << i << ": " << replayed.why_eager[i];
    EXPECT_EQ(replayed.recordings_ended, 1);
    EXPECT_EQ(replayed.replays, 3) << "one to run the recorded step, one per replayed step";
  }
}

// The backend's counts for the run above: one recording, replayed once to run it and once per
// replayed step.
TEST_F(StepGraphs, OneRecordingServesEveryStepOfItsKind) {
  hook("forward:*:stats");
  auto backend = std::make_unique<RecordingCpuBackend>();
  RecordingCpuBackend* recording = backend.get();
  model().load_state_dict(initial_state(), "initial state");
  Executor executor(model(), std::move(backend), train_options());
  for (const StepData& step : seeded_steps(5, true)) executor.step(step.input, step.labels);
  executor.flush_records();
  EXPECT_EQ(recording->recordings_begun(), 1);
  EXPECT_EQ(recording->recordings_ended(), 1);
  EXPECT_EQ(recording->replays(), 3);
  EXPECT_FALSE(recording->recording());
}

TEST_F(StepGraphs, EvalStepsReplayToThePlainRunsResults) {
  hook("forward:*:stats,zeros,nonfinite");
  hook("forward_pre:layer1.*:stats,hist=8:-2:2");
  const std::vector<StepData> steps = seeded_steps(3, false);
  ExecutorOptions options;
  const RunOutcome plain = run_steps(make_cpu_backend(), plain_options(options), steps);
  const RunOutcome replayed = run_steps(std::make_unique<RecordingCpuBackend>(), options, steps);
  EXPECT_EQ(paths_text(replayed.paths), paths_text({E, R, P}));
  ASSERT_GT(plain.lines.size(), 3 * 70u);
  expect_same_results(replayed, plain);
  expect_graph_steps_ran_no_eager_ops(replayed);
}

// Eval steps with labels run backward (gradients for attribution) and are recorded like any other.
TEST_F(StepGraphs, EvalStepsWithLabelsReplayToThePlainRunsResults) {
  hook("backward:*:stats,zeros,nonfinite");
  hook("grad:*.weight:stats");
  const std::vector<StepData> steps = seeded_steps(4, true);
  ExecutorOptions options;
  options.input_grad = true;
  const RunOutcome plain = run_steps(make_cpu_backend(), plain_options(options), steps);
  const RunOutcome replayed = run_steps(std::make_unique<RecordingCpuBackend>(), options, steps);
  EXPECT_EQ(paths_text(replayed.paths), paths_text({E, R, P, P}));
  ASSERT_GT(plain.lines.size(), 4 * 70u);
  expect_same_results(replayed, plain);
  expect_graph_steps_ran_no_eager_ops(replayed);
}

// Clamp and clipnorm change tensors and, on forward tensors, the gradients that flow back through
// them (masks and scales filled in by each replay).
TEST_F(StepGraphs, ChangingProbesReplayLikeThePlainRun) {
  hook("forward:layer2.0.relu:clamp=-0.3:0.3,stats");
  hook("forward:layer3.0.conv1:clipnorm=2,stats");
  hook("backward:layer1.0.conv2:clipnorm=0.001,stats");
  hook("grad:fc.weight:clamp=-0.01:0.01,stats");
  hook("forward:*:stats");
  hook("backward:layer1.*:stats");
  const std::vector<StepData> steps = seeded_steps(5, true);
  const ExecutorOptions options = train_options();
  const RunOutcome plain = run_steps(make_cpu_backend(), plain_options(options), steps);
  const RunOutcome replayed = run_steps(std::make_unique<RecordingCpuBackend>(), options, steps);
  EXPECT_EQ(paths_text(replayed.paths), paths_text({E, E, R, P, P}));
  int64_t clamped = 0;
  for (const ProbeRecord& record : plain.records)
    for (const ProbeResult& result : record.results)
      if (const auto* clamp = std::get_if<ClampResult>(&result)) clamped += clamp->changed;
  EXPECT_GT(clamped, 0) << "the clamps must change something for this test to mean anything";
  expect_same_results(replayed, plain);
}

// After three steps of one kind (E E R), something changes at step 3: that step runs op by op as
// the new kind's warm-up, the next is recorded, the one after replays.
class StepGraphsRerecord : public StepGraphs {
 protected:
  void expect_rerecorded(const std::vector<StepData>& steps, const BeforeStep& before) {
    const ExecutorOptions options = train_options();
    const RunOutcome plain = run_steps(make_cpu_backend(), plain_options(options), steps, before);
    const RunOutcome replayed =
        run_steps(std::make_unique<RecordingCpuBackend>(), options, steps, before);
    EXPECT_EQ(paths_text(replayed.paths), paths_text({E, E, R, E, R, P}));
    EXPECT_FALSE(replayed.why_eager[3].empty());
    expect_same_results(replayed, plain);
  }
};

TEST_F(StepGraphsRerecord, ANewBatchSize) {
  hook("forward:*:stats");
  std::vector<StepData> steps = seeded_steps(3, true);
  for (const StepData& step : seeded_steps(3, true, 3, 20)) steps.push_back(step);
  expect_rerecorded(steps, {});
}

TEST_F(StepGraphsRerecord, ANewLearningRate) {
  hook("forward:*:stats");
  expect_rerecorded(seeded_steps(6, true), [](Executor& executor, int64_t step) {
    if (step == 3) executor.set_learning_rate(0.02);
  });
}

TEST_F(StepGraphsRerecord, AHookAdded) {
  hook("forward:*:stats");
  expect_rerecorded(seeded_steps(6, true), [](Executor&, int64_t step) {
    if (step == 3) register_hook_spec(model(), parse_hook_spec("backward:layer4.*:stats,zeros"));
  });
}

TEST_F(StepGraphsRerecord, AHookThatStartsFiring) {
  hook("forward:*:stats");
  hook("grad:*.weight:stats,start=3");
  expect_rerecorded(seeded_steps(6, true), {});
}

// A hook firing every other step makes neighbouring steps different kinds: each step is the
// warm-up of its kind until the hook stops (end=2), then the steps settle into one kind.
TEST_F(StepGraphs, AHookEveryOtherStepChangesTheKindOfStep) {
  hook("forward:*:stats");
  hook("forward:layer2.*:zeros,every=2,end=2");
  const std::vector<StepData> steps = seeded_steps(6, false);
  ExecutorOptions options;
  const RunOutcome plain = run_steps(make_cpu_backend(), plain_options(options), steps);
  const RunOutcome replayed = run_steps(std::make_unique<RecordingCpuBackend>(), options, steps);
  EXPECT_EQ(paths_text(replayed.paths), paths_text({E, E, E, E, R, P}));
  expect_same_results(replayed, plain);
}

// An update gate reads every record of its step before the update: the optimizer then runs
// after the graph, on the gradients the replay left, so a learning rate that changes every step
// (a schedule) needs no new recording. A gate that skips a step and one that scales a gradient
// give the plain run's results.
TEST_F(StepGraphs, GatedStepsReplayWithTheGateAndTheUpdateAfterTheGraph) {
  hook_everything();
  const std::vector<StepData> steps = seeded_steps(6, true);
  auto schedule = [](std::vector<size_t>* gate_saw) -> BeforeStep {
    auto delivered = std::make_shared<std::map<int64_t, size_t>>();
    return [gate_saw, delivered](Executor& executor, int64_t step) {
      executor.set_learning_rate(0.05 / static_cast<double>(1 + step));
      if (step != 0) return;
      executor.subscribe([delivered](const ProbeRecord& record) { ++(*delivered)[record.step]; });
      executor.set_update_gate([gate_saw, delivered](int64_t at, ParameterGradients& grads) {
        gate_saw->push_back((*delivered)[at]);
        if (at == 3) return UpdateAction::Skip;
        if (at == 4) grads.scale("fc.weight", 0.5);
        return UpdateAction::Apply;
      });
    };
  };
  std::vector<size_t> plain_gate_saw, replayed_gate_saw;
  const ExecutorOptions options = train_options();
  const RunOutcome plain = run_steps(make_cpu_backend(), plain_options(options), steps, schedule(&plain_gate_saw));
  const RunOutcome replayed =
      run_steps(std::make_unique<RecordingCpuBackend>(), options, steps, schedule(&replayed_gate_saw));
  EXPECT_EQ(paths_text(replayed.paths), paths_text({E, R, P, P, P, P}));
  ASSERT_EQ(plain_gate_saw.size(), 6u);
  EXPECT_GT(plain_gate_saw[5], 100u);
  EXPECT_EQ(replayed_gate_saw, plain_gate_saw) << "the gate saw every record of its step, as in the plain run";
  expect_same_results(replayed, plain);
}

// A nonfinite=halt probe stops a replayed step where it stops the plain step: the records up to
// the halting one delivered, Error(Halted) thrown, no update. Batch norm's running statistics
// differ by design: the CPU stops its forward at the halting probe, while a replayed step (like
// any GPU step, whose results come later) has run its whole forward (see hook_dispatch.h).
TEST_F(StepGraphs, AHaltInAReplayedStepStopsItWhereThePlainStepStops) {
  hook("forward:*:stats");
  hook("forward:layer1.0.conv1:nonfinite=halt");
  std::vector<StepData> steps = seeded_steps(5, true);
  steps[3].input.data<float>()[7] = std::numeric_limits<float>::quiet_NaN();
  const ExecutorOptions options = train_options();
  const RunOutcome plain = run_steps(make_cpu_backend(), plain_options(options), steps);
  const RunOutcome replayed = run_steps(std::make_unique<RecordingCpuBackend>(), options, steps);
  ASSERT_EQ(plain.halted_at, std::optional<int64_t>(3));
  EXPECT_NE(plain.halt_message.find("layer1.0.conv1"), std::string::npos) << plain.halt_message;
  EXPECT_EQ(paths_text(replayed.paths), paths_text({E, R, P}));
  auto parameters_only = [](RunOutcome run) {
    const auto& names = model().parameter_names();
    std::erase_if(run.state, [&names](const auto& entry) {
      return std::find(names.begin(), names.end(), entry.first) == names.end();
    });
    return run;
  };
  expect_same_results(parameters_only(replayed), parameters_only(plain));
}

// The input's gradient (saliency) is copied out of the graph after each replay.
TEST_F(StepGraphs, InputGradientsReplayToThePlainRunsValues) {
  hook("forward:*:stats");
  const std::vector<StepData> steps = seeded_steps(4, true);
  ExecutorOptions options = train_options();
  options.input_grad = true;
  const RunOutcome plain = run_steps(make_cpu_backend(), plain_options(options), steps);
  const RunOutcome replayed = run_steps(std::make_unique<RecordingCpuBackend>(), options, steps);
  EXPECT_EQ(paths_text(replayed.paths), paths_text({E, E, R, P}));
  ASSERT_TRUE(replayed.input_grads.back().defined());
  expect_same_results(replayed, plain);
  expect_graph_steps_ran_no_eager_ops(replayed);
}

// Whatever needs the host mid-step keeps every step eager, and says so. (An update gate, a
// nonfinite=halt probe and the input's gradient do not: see the tests above.)
struct Blocker {
  std::string name;
  std::function<void(Model&, ExecutorOptions&)> setup;
  std::function<void(Executor&)> setup_executor;  // may be empty
  std::string reason;                             // must appear in why_last_step_eager()
  RecordingOptions backend;
  // The first step that must name the reason: a backend that cannot record is found out only
  // when a step would be recorded (the third: two warm-ups, as momentum starts after the first).
  int64_t named_from = 0;
};

void PrintTo(const Blocker& blocker, std::ostream* out) { *out << blocker.name; }

class StepGraphBlockers : public TinyModelTest, public ::testing::WithParamInterface<Blocker> {};

TEST_P(StepGraphBlockers, KeepEveryStepEagerAndNameTheReason) {
  const Blocker& blocker = GetParam();
  register_hook_spec(model(), parse_hook_spec("forward:*:stats"));
  ExecutorOptions options = train_options();
  blocker.setup(model(), options);
  auto backend = std::make_unique<RecordingCpuBackend>(blocker.backend);
  RecordingCpuBackend* recording = backend.get();
  Executor executor(model(), std::move(backend), options);
  if (blocker.setup_executor) blocker.setup_executor(executor);
  for (const StepData& step : seeded_steps(5, true)) {
    const StepResult result = executor.step(step.input, step.labels);
    EXPECT_EQ(step_path_name(result.path), step_path_name(E)) << "step " << result.step;
    if (result.step < blocker.named_from) continue;
    EXPECT_NE(executor.why_last_step_eager().find(blocker.reason), std::string::npos)
        << "step " << result.step << ": '" << executor.why_last_step_eager() << "' does not name "
        << blocker.reason;
  }
  EXPECT_EQ(recording->recordings_ended(), 0);
  EXPECT_EQ(recording->replays(), 0);
  EXPECT_EQ(recording->begin_calls(), blocker.backend.refuse_recording ? 1 : 0)
      << "a refusing backend is asked once; blocked steps never ask";
}

void no_change(Model&, ExecutorOptions&) {}
void add_hook(Model& model, const char* spec) { register_hook_spec(model, parse_hook_spec(spec)); }

INSTANTIATE_TEST_SUITE_P(
    Each, StepGraphBlockers,
    ::testing::Values(
        Blocker{"HostCallback",
                [](Model& m, ExecutorOptions&) {
                  m.register_forward_hook("layer1.0",
                                          [](const HookEvent&, TensorRef, TensorRef) {});
                },
                {},
                "host callback",
                {}},
        Blocker{"CaptureProbe",
                [](Model& m, ExecutorOptions&) { add_hook(m, "forward:layer1.0.conv1:capture"); },
                {},
                "capture",
                {}},
        Blocker{"ReplayGraphsOff",
                [](Model&, ExecutorOptions& o) { o.replay_graphs = false; },
                {},
                "turned off",
                {}},
        Blocker{"BackendRefuses", no_change, {}, "recording-cpu", RecordingOptions{true, 0}, 2}),
    [](const ::testing::TestParamInfo<Blocker>& info) { return info.param.name; });

// A blocker counts only at the steps where it fires: a capture that stops after step 0.
TEST_F(StepGraphs, ABlockerBlocksOnlyTheStepsItFiresAt) {
  hook("forward:*:stats");
  hook("forward:layer1.0.conv1:capture,end=0");
  const std::vector<StepData> steps = seeded_steps(4, false);
  ExecutorOptions options;
  const RunOutcome plain = run_steps(make_cpu_backend(), plain_options(options), steps);
  const RunOutcome replayed = run_steps(std::make_unique<RecordingCpuBackend>(), options, steps);
  EXPECT_EQ(paths_text(replayed.paths), paths_text({E, E, R, P}));
  EXPECT_NE(replayed.why_eager[0].find("capture"), std::string::npos) << replayed.why_eager[0];
  expect_same_results(replayed, plain);
}

// A recording that fails (here: the backend cannot record its N-th op) costs nothing but speed:
// the step runs op by op with the plain run's results, and graphs stay off for the executor.
class StepGraphRecordingFailure : public TinyModelTest,
                                  public ::testing::WithParamInterface<int> {};

TEST_P(StepGraphRecordingFailure, FallsBackToEagerStepsWithThePlainRunsResults) {
  register_hook_spec(model(), parse_hook_spec("forward:*:stats,zeros"));
  register_hook_spec(model(), parse_hook_spec("forward:layer2.0.relu:clamp=-0.3:0.3,stats"));
  register_hook_spec(model(), parse_hook_spec("grad:*:stats"));
  const std::vector<StepData> steps = seeded_steps(5, true);
  const ExecutorOptions options = train_options();
  const RunOutcome plain = run_steps(make_cpu_backend(), plain_options(options), steps);
  ::testing::internal::CaptureStderr();
  const RunOutcome failed = run_steps(
      std::make_unique<RecordingCpuBackend>(RecordingOptions{false, GetParam()}), options, steps);
  const std::string stderr_text = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(paths_text(failed.paths), paths_text({E, E, E, E, E}));
  expect_same_results(failed, plain);
  for (size_t i = 2; i < failed.why_eager.size(); ++i)
    EXPECT_NE(
        failed.why_eager[i].find("injected failure at recorded op " + std::to_string(GetParam())),
        std::string::npos)
        << "step " << i << ": " << failed.why_eager[i];
  EXPECT_NE(stderr_text.find("injected failure"), std::string::npos) << stderr_text;
  EXPECT_EQ(std::count(stderr_text.begin(), stderr_text.end(), '\n'), 1)
      << "one line, once: " << stderr_text;
  EXPECT_EQ(failed.recordings_begun, 1) << "graphs stay off after a failed recording";
  EXPECT_EQ(failed.recordings_ended, 0);
  EXPECT_EQ(failed.replays, 0);
}

// The first op, one in the forward, one in the backward (a recorded step here has about 350 ops).
INSTANTIATE_TEST_SUITE_P(AtOp, StepGraphRecordingFailure, ::testing::Values(1, 60, 300));

// A replay that fails (here: the backend's N-th replay throws before running anything) costs
// nothing but speed either: that step runs op by op, and so does every later one.
class StepGraphReplayFailure : public TinyModelTest, public ::testing::WithParamInterface<int> {};

TEST_P(StepGraphReplayFailure, FallsBackToEagerStepsWithThePlainRunsResults) {
  register_hook_spec(model(), parse_hook_spec("forward:*:stats,zeros"));
  register_hook_spec(model(), parse_hook_spec("backward:*relu:stats,nonfinite"));
  const std::vector<StepData> steps = seeded_steps(5, true);
  const ExecutorOptions options = train_options();
  const RunOutcome plain = run_steps(make_cpu_backend(), plain_options(options), steps);
  RecordingOptions failing;
  failing.fail_at_replay = GetParam();
  ::testing::internal::CaptureStderr();
  const RunOutcome failed = run_steps(std::make_unique<RecordingCpuBackend>(failing), options, steps);
  const std::string stderr_text = ::testing::internal::GetCapturedStderr();
  // Steps 0 and 1 warm up (momentum starts after step 0); step 2 is recorded and replayed once.
  const std::vector<StepPath> want = GetParam() == 1 ? std::vector<StepPath>{E, E, E, E, E}
                                                     : std::vector<StepPath>{E, E, R, E, E};
  EXPECT_EQ(paths_text(failed.paths), paths_text(want));
  expect_same_results(failed, plain);
  for (size_t i = static_cast<size_t>(GetParam()) + 1; i < failed.why_eager.size(); ++i)
    EXPECT_NE(failed.why_eager[i].find("replaying a recorded step failed"), std::string::npos)
        << "step " << i << ": " << failed.why_eager[i];
  EXPECT_EQ(std::count(stderr_text.begin(), stderr_text.end(), '\n'), 1) << "one line, once: " << stderr_text;
  EXPECT_EQ(failed.recordings_ended, 1) << "graphs stay off after a failed replay";
  EXPECT_EQ(failed.replays, GetParam() - 1);
}

INSTANTIATE_TEST_SUITE_P(AtReplay, StepGraphReplayFailure, ::testing::Values(1, 2));

}  // namespace
}  // namespace hookrt
