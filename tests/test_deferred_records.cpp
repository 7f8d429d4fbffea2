// Deferred probe results: a backend that finishes probe runs later (as the GPU's does, at the end
// of the step) must deliver exactly the records, in exactly the order, that the CPU backend
// delivers at once, and a nonfinite=halt must stop the step at the same record. The deferring
// backend here wraps the CPU backend and defers every other probe run, so that deferred and
// immediate records interleave in the dispatcher's queue.
#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "hookrt/backend.h"
#include "hookrt/hook_spec.h"
#include "hookrt/io.h"
#include "support/delegating_backend.h"
#include "support/probe_results.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::TinyModelTest;

// A deep copy of the model's state, by key (state_dict() shares storage with the model).
std::map<std::string, Tensor> snapshot(const Model& model) {
  std::map<std::string, Tensor> copy;
  for (const auto& [key, tensor] : model.state_dict()) copy[key] = tensor.clone();
  return copy;
}

// The CPU backend, except that every other probe run is handed back as deferred.
class DeferringBackend final : public testing::DelegatingBackend {
 public:
  explicit DeferringBackend(bool defer_every_run = false) : defer_every_run_(defer_every_run) {}
  std::string name() const override { return "deferring-cpu"; }

  ProbeRunEffects run_probes(const ProbeList& probes, Tensor& tensor, ProbeRecord& record,
                             const ProbeRunOptions& options) override {
    // An input's probes are a run of their own, deferred or not as any other.
    if (options.probe_input) return run_input_probes_apart(probes, tensor, record, options);
    const bool now = !defer_every_run_ && runs_ % 2 == 0;
    ++runs_;
    if (now) return inner().run_probes(probes, tensor, record, options);
    // Computed now, handed over later: the record stays empty until collect.
    ProbeRecord scratch;
    ProbeRunEffects effects = inner().run_probes(probes, tensor, scratch, options);
    pending_.push_back(DeferredProbeResults{next_ticket_, std::move(scratch.results), effects.halt});
    effects.halt = false;
    effects.deferred = next_ticket_++;
    return effects;
  }
  std::unique_ptr<DeferredProbeBatch> seal_deferred_probe_results() override {
    if (pending_.empty()) return nullptr;
    ++seals_;
    auto batch = std::make_unique<Batch>(std::vector<DeferredProbeResults>(pending_.begin(), pending_.end()), hold_);
    pending_.clear();
    return batch;
  }
  int seals() const { return seals_; }
  int probe_runs() const { return runs_; }
  // While held, finishing a batch blocks, as waiting for a device that has not got there yet.
  void hold() { hold_->set(true); }
  void release() { hold_->set(false); }

 private:
  class Hold {
   public:
    void set(bool held) {
      {
        std::lock_guard lock(mutex_);
        held_ = held;
      }
      changed_.notify_all();
    }
    void wait_released() {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [this] { return !held_; });
    }

   private:
    std::mutex mutex_;
    std::condition_variable changed_;
    bool held_ = false;
  };
  class Batch final : public DeferredProbeBatch {
   public:
    Batch(std::vector<DeferredProbeResults> results, std::shared_ptr<Hold> hold)
        : results_(std::move(results)), hold_(std::move(hold)) {}
    std::vector<DeferredProbeResults> finish() override {
      hold_->wait_released();
      return std::move(results_);
    }

   private:
    std::vector<DeferredProbeResults> results_;
    std::shared_ptr<Hold> hold_;
  };

 private:
  std::deque<DeferredProbeResults> pending_;
  uint64_t next_ticket_ = 100;
  bool defer_every_run_;
  int runs_ = 0;
  int seals_ = 0;
  std::shared_ptr<Hold> hold_ = std::make_shared<Hold>();
};

class DeferredRecordsTest : public TinyModelTest {
 protected:
  // The records of one step, as JSON lines, on the CPU backend or the deferring one.
  static std::vector<std::string> step_records(bool defer, Mode mode, const Tensor& input, bool* halted = nullptr) {
    TinyModelTest::model().load_state_dict(TinyModelTest::initial_state(), "initial state");
    ExecutorOptions options;
    options.mode = mode;
    options.sgd.lr = 0.1;
    std::unique_ptr<Backend> backend = defer ? std::unique_ptr<Backend>(std::make_unique<DeferringBackend>())
                                             : make_cpu_backend();
    Executor executor(TinyModelTest::model(), std::move(backend), options);
    std::vector<std::string> lines;
    executor.subscribe([&lines](const ProbeRecord& r) { lines.push_back(io::record_to_json(r).dump()); });
    try {
      executor.step(input, testing::tiny_labels());
    } catch (const Error& error) {
      if (!halted || error.kind() != ErrorKind::Halted) throw;
      *halted = true;
    }
    executor.sync_model();
    return lines;
  }
};

TEST_F(DeferredRecordsTest, DeliversTheCpuBackendsRecordsInItsOrder) {
  for (const char* spec : {"forward_pre:layer1.*:stats", "forward:*:stats,zeros,nonfinite",
                           "backward_pre:layer2.0.*:hist=8:-1:1", "backward:*:stats,capture", "grad:*.weight:stats",
                           "forward:layer3.0.relu:clamp=-0.5:0.5,stats"})
    register_hook_spec(model(), parse_hook_spec(spec));
  int callbacks = 0;  // a host callback between deferred probe runs changes nothing in the order
  HookHandle callback = model().register_forward_hook("layer2.0", [&](const HookEvent&, Tensor) { ++callbacks; });
  const Tensor input = testing::tiny_input();
  const std::vector<std::string> direct = step_records(false, Mode::Train, input);
  const std::map<std::string, Tensor> after_direct = snapshot(model());
  const std::vector<std::string> deferred = step_records(true, Mode::Train, input);
  ASSERT_GT(direct.size(), 100u);
  EXPECT_EQ(deferred, direct);
  EXPECT_EQ(callbacks, 2);
  for (const auto& [key, tensor] : model().state_dict())
    EXPECT_TRUE(testing::bitwise_equal(tensor, after_direct.at(key))) << key;
}

TEST_F(DeferredRecordsTest, HaltStopsAtTheSameRecordAndBeforeTheOptimizer) {
  // NaN in one input element: conv1's output is non-finite from the first module on.
  Tensor input = testing::tiny_input().clone();
  input.data<float>()[5] = std::numeric_limits<float>::quiet_NaN();
  for (const char* spec : {"forward:*:stats", "forward:layer1.0.bn1:nonfinite=halt", "forward:fc:stats"})
    register_hook_spec(model(), parse_hook_spec(spec));
  bool halted_direct = false, halted_deferred = false;
  const std::vector<std::string> direct = step_records(false, Mode::Train, input, &halted_direct);
  const std::vector<std::string> deferred = step_records(true, Mode::Train, input, &halted_deferred);
  EXPECT_TRUE(halted_direct);
  EXPECT_TRUE(halted_deferred);
  ASSERT_FALSE(direct.empty());
  EXPECT_NE(direct.back().find("layer1.0.bn1"), std::string::npos) << direct.back();
  EXPECT_EQ(deferred, direct);
  // The halted step never reached SGD: every parameter is as it started. (BatchNorm running
  // statistics are not compared: a deferring backend learns of the halt when the step's forward
  // and backward have run, so the BatchNorms after the halting point have updated theirs too.)
  std::map<std::string, Tensor> initial;
  for (const auto& [key, tensor] : initial_state()) initial[key] = tensor;
  const TensorMap state = model().state_dict();
  for (const std::string& key : model().parameter_names())
    for (const auto& [name, tensor] : state)
      if (name == key) EXPECT_TRUE(testing::bitwise_equal(tensor, initial.at(key))) << key;
}

TEST_F(DeferredRecordsTest, ResultsAreSealedOncePerStep) {
  register_hook_spec(model(), parse_hook_spec("forward:*:stats"));
  auto backend = std::make_unique<DeferringBackend>();
  DeferringBackend* deferring = backend.get();
  Executor executor(model(), std::move(backend));
  testing::RecordLog log;
  log.attach(executor);
  executor.step(testing::tiny_input());
  executor.step(testing::tiny_input());
  executor.flush_records();
  EXPECT_EQ(deferring->seals(), 2);
  EXPECT_EQ(log.records().size(), 2 * 76u);  // every module call's forward (8 ReLUs run twice), each step
}

// A block's output is its last ReLU's, a layer's its last block's, a downsample's its batch
// norm's, the model's its fc's: the
// dispatcher runs the probes once per tensor and gives the repeats the same (deferred) results.
TEST_F(DeferredRecordsTest, RepeatedFiringsOnOneTensorRunTheProbesOnce) {
  register_hook_spec(model(), parse_hook_spec("forward:*:stats,zeros"));
  for (const bool every : {false, true}) {
    auto backend = std::make_unique<DeferringBackend>(every);
    DeferringBackend* deferring = backend.get();
    Executor executor(model(), std::move(backend));
    testing::RecordLog log;
    log.attach(executor);
    executor.step(testing::tiny_input());
    executor.flush_records();
    ASSERT_EQ(log.records().size(), 76u);
    EXPECT_EQ(deferring->probe_runs(), 76 - 8 - 4 - 3 - 1)
        << "blocks, layers, downsample Sequentials and the model repeat their last child's output";
    const ProbeRecord block = log.only(HookWhen::Forward, "layer2.1", "output");
    const ProbeRecord relu = log.only(HookWhen::Forward, "layer2.1.relu", "output", 1);
    testing::expect_same_results(block.results, relu.results, 0.0, 0.0, "layer2.1 and its last relu");
  }
}

// In backward a module's grad_output is the grad_input of the module after it (when nothing was
// added into it in place): those repeats share runs too. So do a downsample's and bn2's
// grad_outputs, which are the block's add's gradient, one tensor for both branches, and a block's
// grad_output at its last ReLU, the block and its Sequential, though the block sums another
// gradient in place between them.
TEST_F(DeferredRecordsTest, BackwardRepeatsShareRunsToo) {
  register_hook_spec(model(), parse_hook_spec("backward:*:stats,zeros"));
  auto backend = std::make_unique<DeferringBackend>(/*defer_every_run=*/true);
  DeferringBackend* deferring = backend.get();
  ExecutorOptions options;
  options.mode = Mode::Train;
  Executor executor(model(), std::move(backend), options);
  testing::RecordLog log;
  log.attach(executor);
  executor.step(testing::tiny_input(), testing::tiny_labels());
  executor.flush_records();
  const ProbeRecord bn = log.only(HookWhen::Backward, "layer3.1.bn2", "grad_input");
  const ProbeRecord conv = log.only(HookWhen::Backward, "layer3.1.conv2", "grad_output");
  testing::expect_same_results(bn.results, conv.results, 0.0, 0.0, "bn2's grad_input is conv2's grad_output");
  EXPECT_EQ(log.records().size(), 150u);
  EXPECT_EQ(deferring->probe_runs(), 69) << "runs for " << log.records().size() << " records";
}

// The stepping thread hands the records over and goes on: the steps return while the device (here
// the held batches) has not produced the results, and the delivery thread delivers them later,
// step after step, in order.
TEST_F(DeferredRecordsTest, StepsDoNotWaitForTheirRecords) {
  register_hook_spec(model(), parse_hook_spec("forward:*:stats"));
  auto backend = std::make_unique<DeferringBackend>(/*defer_every_run=*/true);
  DeferringBackend* deferring = backend.get();
  ExecutorOptions options;
  options.mode = Mode::Train;
  Executor executor(model(), std::move(backend), options);
  std::vector<int64_t> steps;
  executor.subscribe([&steps](const ProbeRecord& record) { steps.push_back(record.step); });
  deferring->hold();
  executor.step(testing::tiny_input(), testing::tiny_labels());
  executor.step(testing::tiny_input(), testing::tiny_labels());  // two steps in flight: room for both
  EXPECT_TRUE(steps.empty()) << "a record was delivered before its results existed";
  deferring->release();
  executor.flush_records();
  ASSERT_EQ(steps.size(), 2 * 76u);
  EXPECT_TRUE(std::is_sorted(steps.begin(), steps.end()));
  EXPECT_EQ(steps.front(), 0);
  EXPECT_EQ(steps.back(), 1);
}

TEST_F(DeferredRecordsTest, BackgroundDeliveryGivesTheSameRecordsAsTheCpuBackend) {
  for (const char* spec : {"forward:*:stats,zeros", "backward:*:stats", "grad:*.weight:stats,nonfinite"})
    register_hook_spec(model(), parse_hook_spec(spec));
  auto lines_of = [&](std::unique_ptr<Backend> backend) {
    model().load_state_dict(initial_state(), "initial state");
    ExecutorOptions options;
    options.mode = Mode::Train;
    options.sgd.lr = 0.1;
    Executor executor(model(), std::move(backend), options);
    std::vector<std::string> lines;
    executor.subscribe([&lines](const ProbeRecord& r) { lines.push_back(io::record_to_json(r).dump()); });
    for (int i = 0; i < 2; ++i) executor.step(testing::tiny_input(), testing::tiny_labels());
    executor.sync_model();
    return lines;
  };
  const std::vector<std::string> direct = lines_of(make_cpu_backend());
  const std::vector<std::string> background = lines_of(std::make_unique<DeferringBackend>());
  ASSERT_GT(direct.size(), 200u);
  EXPECT_EQ(background, direct);
}

// A gate decides on the step's records: they have all arrived when it is called.
TEST_F(DeferredRecordsTest, AnUpdateGateSeesEveryRecordOfItsStep) {
  register_hook_spec(model(), parse_hook_spec("forward:*:stats"));
  ExecutorOptions options;
  options.mode = Mode::Train;
  Executor executor(model(), std::make_unique<DeferringBackend>(), options);
  size_t records = 0;
  std::vector<size_t> seen_by_gate;
  executor.subscribe([&records](const ProbeRecord&) { ++records; });
  executor.set_update_gate([&](int64_t, ParameterGradients&) {
    seen_by_gate.push_back(records);
    return UpdateAction::Apply;
  });
  for (int i = 0; i < 2; ++i) executor.step(testing::tiny_input(), testing::tiny_labels());
  EXPECT_EQ(seen_by_gate, (std::vector<size_t>{76u, 152u}));
}

// A subscriber that throws on the delivery thread stops the run at the owner's next call.
TEST_F(DeferredRecordsTest, ASubscribersFailureOnTheDeliveryThreadReachesTheCaller) {
  register_hook_spec(model(), parse_hook_spec("forward:*:stats"));
  Executor executor(model(), std::make_unique<DeferringBackend>());
  executor.subscribe([](const ProbeRecord& record) {
    if (record.module == "layer2.0.conv1") throw Error("disk full while writing " + record.module);
  });
  executor.step(testing::tiny_input());
  try {
    executor.flush_records();
    FAIL() << "the subscriber's failure was lost";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("disk full while writing layer2.0.conv1"), std::string::npos);
  }
  EXPECT_NO_THROW(executor.flush_records()) << "a failure is reported once";
}

}  // namespace
}  // namespace hookrt
