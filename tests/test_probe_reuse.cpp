// Probe results shared between firings on one tensor (src/probed_tensors.h) must describe the
// tensor as each firing sees it. Every stats record of a whole train step is held to the stats of
// the capture that a second hook took at the same firing: a stale result (a gradient accumulated
// in place since, a callback that wrote the tensor) would differ from its capture. And a gradient
// summed in place forgets only its own runs: the tensors around it are not probed again.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "cpu/probes.h"
#include "hookrt/hook_spec.h"
#include "support/delegating_backend.h"
#include "support/probe_results.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::TinyModelTest;
using FiringKey = std::tuple<int, std::string, int, std::string, std::string>;

FiringKey key_of(const ProbeRecord& r) { return {static_cast<int>(r.when), r.module, r.call, r.param, r.tensor}; }

class ProbeReuse : public TinyModelTest {};

// Hooks stats,zeros and then capture on every firing of `specs` (WHEN:SELECTOR), runs a train step
// and holds each stats record to its capture.
void expect_records_match_their_captures(Model& model, const std::vector<std::string>& specs, size_t at_least) {
  for (const std::string& spec : specs) {
    register_hook_spec(model, parse_hook_spec(spec + ":stats,zeros"));
    register_hook_spec(model, parse_hook_spec(spec + ":capture"));
  }
  testing::TinyExecutorOptions options;
  options.mode = Mode::Train;
  options.sgd.lr = 0.1;
  auto executor = testing::cpu_executor(model, options);
  std::map<FiringKey, ProbeRecord> stats, captures;
  executor->subscribe([&](const ProbeRecord& r) {
    auto& into = std::holds_alternative<CaptureResult>(r.results.at(0)) ? captures : stats;
    into[key_of(r)] = r;
  });
  executor->step(testing::tiny_input(), testing::tiny_labels());
  executor->flush_records();

  ASSERT_GE(stats.size(), at_least);
  ASSERT_EQ(stats.size(), captures.size());
  for (const auto& [key, record] : stats) {
    const auto capture = captures.find(key);
    ASSERT_NE(capture, captures.end()) << record.module << " " << record.tensor;
    Tensor captured = std::get<CaptureResult>(capture->second.results.at(0)).tensor.clone();
    ProbeRecord expected;
    ProbeRunOptions probe_options;
    probe_options.channel_axis = record.when == HookWhen::Grad || captured.ndim() < 2 ? 0 : 1;
    cpu::run_probes(probes::Stats{} | probes::Zeros{}, captured, expected, probe_options);
    testing::expect_same_results(record.results, expected.results, 0.0, 0.0,
                                 when_name(record.when) + " " + record.module + "#" + std::to_string(record.call) +
                                     " " + record.param + " " + record.tensor);
  }
}

TEST_F(ProbeReuse, EveryRecordDescribesTheTensorAsItsFiringSawIt) {
  // A callback that writes the tensor it is given, between the ReLU's firings and its block's:
  // the block's records must see the doubled values, not the ReLU's.
  model().register_forward_hook("layer1.0.relu", [](const HookEvent&, Tensor output) {
    float* p = output.data<float>();
    for (int64_t i = 0; i < output.numel(); ++i) p[i] *= 2.0f;
  });
  expect_records_match_their_captures(model(), {"forward_pre:*", "forward:*", "backward_pre:*", "backward:*", "grad:*"},
                                      250);
}

// Backward runs layer2.0's downsample first: its grad_input becomes layer1's output gradient, and
// the conv path's gradient is then added into it in place. layer1's grad_output is that same
// tensor, summed: the downsample's result must not stand in for it.
TEST_F(ProbeReuse, AGradientAccumulatedInPlaceIsProbedAgain) {
  expect_records_match_their_captures(model(), {"backward:layer2.0.downsample", "backward:layer1.1", "backward:layer1"},
                                      5);
}

// Probe runs that reach the backend.
class RunCountingBackend final : public testing::DelegatingBackend {
 public:
  explicit RunCountingBackend(int& runs) : runs_(runs) {}
  ProbeRunEffects run_probes(const ProbeList& probes, Tensor& tensor, ProbeRecord& record,
                             const ProbeRunOptions& options) override {
    ++runs_;
    return DelegatingBackend::run_probes(probes, tensor, record, options);
  }

 private:
  int& runs_;
};

// layer2.0's output gradient fires twice: as the grad_output of its last ReLU, then of the block.
// Between them the block sums its conv path's gradient into its downsample's in place (its
// grad_input), which must not cost the output gradient its run.
TEST_F(ProbeReuse, AGradientSummedInPlaceForgetsOnlyItsOwnRuns) {
  register_hook_spec(model(), parse_hook_spec("backward:layer2.0.relu:stats,zeros"));
  register_hook_spec(model(), parse_hook_spec("backward:layer2.0:stats,zeros"));
  ExecutorOptions options;
  options.mode = Mode::Train;
  int runs = 0;
  Executor executor(model(), std::make_unique<RunCountingBackend>(runs), options);
  int records = 0;
  executor.subscribe([&](const ProbeRecord&) { ++records; });
  executor.step(testing::tiny_input(), testing::tiny_labels());
  executor.flush_records();
  EXPECT_EQ(records, 6);  // the ReLU's two calls and the block, a grad_input and a grad_output each
  // The ReLU's four runs and the block's grad_input (the sum); the block's grad_output is the
  // ReLU's second call's.
  EXPECT_EQ(runs, 5);
}

}  // namespace
}  // namespace hookrt
