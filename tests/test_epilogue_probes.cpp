// Probes in the epilogues: where the first hook on a ReLU's output (forward) or on its input's
// gradient (backward) is a probe hook, the executor hands that tensor to the probe run unwritten,
// with the op that writes it (ProbeRunOptions::produce), so a backend can write and probe it in one
// pass; so too a batch norm's output and dx where the backend runs batch norms in two parts. Whatever
// the hooks, a step must deliver the same records and leave the same state as with
// ExecutorOptions::probes_in_epilogues off; these tests hold it to that on the CPU backend and
// count which ReLUs and batch norms reached the backend how.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hookrt/hook_spec.h"
#include "hookrt/io.h"
#include "support/delegating_backend.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::TinyModelTest;

// The CPU backend, counting the ReLUs and batch norms it runs as ops and those handed to probe
// runs. `split_batchnorm`: whether it runs batch norms in two parts (Backend::splits_batchnorm), as
// the CPU backend does and the GPU's at 16 bits; off, they run whole, as on the GPU at F32.
class CountingBackend final : public testing::DelegatingBackend {
 public:
  struct Counts {
    int relu_forward = 0, relu_backward = 0;          // run as ops
    int produced_forward = 0, produced_backward = 0;  // handed to a probe run
    int adds = 0;                                     // sums written (forward: residual sums)
    int add_relus = 0;                                // residual adds with their ReLU, run as ops
    // Runs also handed probes on their op's input: a batch norm's output (read by its ReLU), a
    // gradient into a ReLU, a convolution's output (read by a batch norm that splits).
    int input_probes = 0;
    int batchnorms_whole = 0;                     // forward and backward batch norms run whole
    int batchnorm_applies = 0, batchnorm_dxs = 0;  // their elementwise parts, run as ops
    int produced_batchnorm_forward = 0, produced_batchnorm_backward = 0;  // handed to a probe run
    int batchnorm_relus = 0;  // batch norm applies computed by their ReLU's op, their output unwritten
    // Batch norm backwards that took their ReLU's over: coefficients passes, and dx ops.
    int batchnorm_relu_backwards = 0, batchnorm_relu_dxs = 0;
  };
  CountingBackend(Counts& counts, bool split_batchnorm = false) : counts_(counts), split_(split_batchnorm) {}

  void relu_forward(const Tensor& x, Tensor& y) override {
    ++counts_.relu_forward;
    DelegatingBackend::relu_forward(x, y);
  }
  void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) override {
    ++counts_.relu_backward;
    DelegatingBackend::relu_backward(y, dy, dx);
  }
  void add(const Tensor& a, const Tensor& b, Tensor& out) override {
    ++counts_.adds;
    DelegatingBackend::add(a, b, out);
  }
  bool splits_batchnorm(DType dtype) const override { return split_ && DelegatingBackend::splits_batchnorm(dtype); }
  void batchnorm_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& rm, Tensor& rv, Tensor& y,
                         Tensor& sm, Tensor& si, const BatchNormOptions& o) override {
    ++counts_.batchnorms_whole;
    DelegatingBackend::batchnorm_forward(x, w, b, rm, rv, y, sm, si, o);
  }
  void batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& sm, const Tensor& si,
                          Tensor& dx, Tensor& dw, Tensor& db, const BatchNormOptions& o) override {
    ++counts_.batchnorms_whole;
    DelegatingBackend::batchnorm_backward(dy, x, w, sm, si, dx, dw, db, o);
  }
  void batchnorm_apply(const Tensor& x, const Tensor& k, Tensor& y) override {
    ++counts_.batchnorm_applies;
    DelegatingBackend::batchnorm_apply(x, k, y);
  }
  void batchnorm_dx(const Tensor& dy, const Tensor& x, const Tensor& k, Tensor& dx) override {
    ++counts_.batchnorm_dxs;
    DelegatingBackend::batchnorm_dx(dy, x, k, dx);
  }
  void batchnorm_relu_backward_coefficients(const Tensor& relu_dy, const Tensor& x, const Tensor& forward,
                                            const Tensor& w, const Tensor& sm, const Tensor& si, Tensor& dw,
                                            Tensor& db, Tensor& k, const BatchNormOptions& o) override {
    ++counts_.batchnorm_relu_backwards;
    DelegatingBackend::batchnorm_relu_backward_coefficients(relu_dy, x, forward, w, sm, si, dw, db, k, o);
  }
  // A residual add with its ReLU counts as itself, not as the add and ReLU the CPU runs it as;
  // so do a batch norm's apply with its ReLU and its dx through one.
  void run_producing_op(const ProducingOp& op, Tensor& out) override {
    switch (op.kind) {
      case ProducingOp::Kind::AddReluForward: ++counts_.add_relus; break;
      case ProducingOp::Kind::BatchNormApplyRelu:
      case ProducingOp::Kind::BatchNormApplyAddRelu: ++counts_.batchnorm_relus; break;
      case ProducingOp::Kind::BatchNormReluDx: ++counts_.batchnorm_relu_dxs; break;
      default: return DelegatingBackend::run_producing_op(op, out);
    }
    inner().run_producing_op(op, out);
  }
  ProbeRunEffects run_probes(const ProbeList& probes, Tensor& tensor, ProbeRecord& record,
                             const ProbeRunOptions& options) override {
    if (options.probe_input) ++counts_.input_probes;
    if (options.produce && probes.empty()) {  // the op, run where its input is probed
      count_op(options.produce->kind);
    } else if (options.produce) {
      ++produced(options.produce->kind);
    }
    return DelegatingBackend::run_probes(probes, tensor, record, options);
  }

 private:
  void count_op(ProducingOp::Kind kind) {
    switch (kind) {
      case ProducingOp::Kind::ReluForward: ++counts_.relu_forward; break;
      case ProducingOp::Kind::ReluBackward: ++counts_.relu_backward; break;
      case ProducingOp::Kind::AddReluForward: ++counts_.add_relus; break;
      case ProducingOp::Kind::BatchNormApply: ++counts_.batchnorm_applies; break;
      case ProducingOp::Kind::BatchNormDx: ++counts_.batchnorm_dxs; break;
      case ProducingOp::Kind::BatchNormApplyRelu:
      case ProducingOp::Kind::BatchNormApplyAddRelu: ++counts_.batchnorm_relus; break;
      case ProducingOp::Kind::BatchNormReluDx: ++counts_.batchnorm_relu_dxs; break;
    }
  }
  int& produced(ProducingOp::Kind kind) {
    switch (kind) {
      case ProducingOp::Kind::ReluBackward: return counts_.produced_backward;
      case ProducingOp::Kind::BatchNormApply: return counts_.produced_batchnorm_forward;
      case ProducingOp::Kind::BatchNormDx:
      case ProducingOp::Kind::BatchNormReluDx: return counts_.produced_batchnorm_backward;
      default: return counts_.produced_forward;
    }
  }

  Counts& counts_;
  bool split_;
};

// What one train step delivered and left.
struct StepOutcome {
  std::vector<std::string> records;         // as JSON lines, in delivery order
  std::map<std::string, Tensor> captures;   // by capture key
  std::map<std::string, Tensor> state;      // deep copies, after the optimizer
  double loss = 0;
  CountingBackend::Counts counts;
};

class EpilogueProbesTest : public TinyModelTest {
 protected:
  static StepOutcome train_step(bool epilogues, int steps = 1, bool split_batchnorm = false) {
    model().load_state_dict(initial_state(), "initial state");
    StepOutcome outcome;
    ExecutorOptions options;
    options.mode = Mode::Train;
    options.sgd.lr = 0.1;
    options.sgd.momentum = 0.9;
    options.probes_in_epilogues = epilogues;
    Executor executor(model(), std::make_unique<CountingBackend>(outcome.counts, split_batchnorm), options);
    executor.subscribe([&outcome](const ProbeRecord& r) {
      outcome.records.push_back(io::record_to_json(r).dump());
      for (const ProbeResult& result : r.results)
        if (const auto* capture = std::get_if<CaptureResult>(&result))
          outcome.captures[r.capture_key()] = capture->tensor.clone();
    });
    for (int step = 0; step < steps; ++step)
      outcome.loss = *executor.step(testing::tiny_input(), testing::tiny_labels()).loss;
    executor.flush_records();
    executor.sync_model();
    for (const auto& [key, tensor] : model().state_dict()) outcome.state[key] = tensor.clone();
    return outcome;
  }

  static void register_specs(const std::vector<std::string>& specs) {
    for (const std::string& spec : specs) register_hook_spec(model(), parse_hook_spec(spec));
  }

  static void expect_same_outcome(const StepOutcome& fused, const StepOutcome& unfused) {
    EXPECT_EQ(fused.loss, unfused.loss);
    EXPECT_EQ(fused.records, unfused.records);
    ASSERT_EQ(fused.captures.size(), unfused.captures.size());
    for (const auto& [key, tensor] : unfused.captures) {
      ASSERT_TRUE(fused.captures.count(key)) << key;
      EXPECT_TRUE(testing::bitwise_equal(fused.captures.at(key), tensor)) << key;
    }
    for (const auto& [key, tensor] : unfused.state)
      EXPECT_TRUE(testing::bitwise_equal(fused.state.at(key), tensor)) << key;
  }
};

// 17 ReLU calls per forward: the stem's, and two in each of the eight blocks, whose second adds
// the residual. Each reads a batch norm's output: the stem's bn1, a block's bn1 and bn2.
constexpr int kReluCalls = 17;
constexpr int kBlocks = 8;
constexpr int kBatchNormsIntoRelus = kReluCalls;
// In backward, each block's conv2 and the stem's maxpool send their grad_input to a ReLU alone.
constexpr int kGradInputsIntoRelus = kBlocks + 1;

TEST_F(EpilogueProbesTest, EveryProbedReluTensorIsWrittenByItsProbeRun) {
  register_specs({"forward:*:stats,zeros,nonfinite", "backward:*:stats,zeros,nonfinite", "grad:*:stats"});
  const StepOutcome fused = train_step(true);
  const StepOutcome unfused = train_step(false);
  EXPECT_EQ(fused.counts.produced_forward, kReluCalls);
  EXPECT_EQ(fused.counts.produced_backward, kReluCalls);
  EXPECT_EQ(fused.counts.relu_forward, 0);
  EXPECT_EQ(fused.counts.relu_backward, 0);
  EXPECT_EQ(fused.counts.input_probes, kBatchNormsIntoRelus + kGradInputsIntoRelus);
  EXPECT_EQ(unfused.counts.produced_forward + unfused.counts.produced_backward, 0);
  EXPECT_EQ(unfused.counts.input_probes, 0);
  EXPECT_EQ(unfused.counts.relu_forward, kReluCalls - kBlocks);
  EXPECT_EQ(unfused.counts.add_relus, kBlocks);
  EXPECT_EQ(unfused.counts.relu_backward, kReluCalls);
  ASSERT_GT(unfused.records.size(), 250u);
  expect_same_outcome(fused, unfused);
}

TEST_F(EpilogueProbesTest, CapturesOfAProducedTensorHoldItsValues) {
  register_specs({"forward:layer1.0.relu:capture,stats", "backward:layer2.1.relu:capture,hist=8:-0.01:0.01"});
  const StepOutcome fused = train_step(true);
  EXPECT_EQ(fused.counts.produced_forward, 2);   // both calls of layer1.0.relu
  EXPECT_EQ(fused.counts.produced_backward, 2);  // both calls of layer2.1.relu
  const StepOutcome unfused = train_step(false);
  ASSERT_EQ(unfused.captures.size(), 6u);  // forward: 2 outputs; backward: 2 grad_inputs, 2 grad_outputs
  expect_same_outcome(fused, unfused);
  for (const auto& [key, tensor] : fused.captures) {
    EXPECT_GT(testing::abs_max(tensor), 0.0) << key;  // written, not a fresh buffer's zeros
    if (key.find("/forward/") == std::string::npos) continue;
    for (float v : testing::values_of(tensor)) ASSERT_GE(v, 0.0f) << key;  // a ReLU's output
  }
}

TEST_F(EpilogueProbesTest, ChangingForwardHooksGetTheWrittenOutput) {
  // A changing hook acts on a copy of the output, so the ReLU writes it first; backward still
  // hands its gradient over.
  register_specs({"forward:*relu:clamp=0:0.5,stats", "backward:*relu:stats,clipnorm=0.01,stats"});
  const StepOutcome fused = train_step(true);
  EXPECT_EQ(fused.counts.produced_forward, 0);
  EXPECT_EQ(fused.counts.relu_forward + fused.counts.add_relus, kReluCalls);
  EXPECT_EQ(fused.counts.produced_backward, kReluCalls);
  expect_same_outcome(fused, train_step(false));
}

TEST_F(EpilogueProbesTest, ACallbackFiringFirstSeesTheWrittenTensor) {
  std::vector<float> forward_seen, backward_seen;
  HookHandle forward = model().register_forward_hook(
      "layer1.1.relu", [&](const HookEvent&, Tensor out) { forward_seen = testing::values_of(out); });
  HookHandle backward = model().register_full_backward_hook(
      "layer3.0.relu", [&](const HookEvent&, Tensor grad_input, Tensor) { backward_seen = testing::values_of(grad_input); });
  register_specs({"forward:*:stats", "backward:*:stats"});
  const StepOutcome fused = train_step(true);
  const std::vector<float> fused_forward = forward_seen, fused_backward = backward_seen;
  // The callbacks fire first on their ReLUs, which therefore write their tensors as ops.
  EXPECT_EQ(fused.counts.relu_forward + fused.counts.add_relus, 2);
  EXPECT_EQ(fused.counts.relu_backward, 2);
  EXPECT_EQ(fused.counts.produced_forward, kReluCalls - 2);
  EXPECT_EQ(fused.counts.produced_backward, kReluCalls - 2);
  const StepOutcome unfused = train_step(false);
  expect_same_outcome(fused, unfused);
  ASSERT_FALSE(fused_forward.empty());
  ASSERT_FALSE(fused_backward.empty());
  EXPECT_EQ(fused_forward, forward_seen);
  EXPECT_EQ(fused_backward, backward_seen);
}

TEST_F(EpilogueProbesTest, ACallbackAfterTheProbesSeesWhatTheyWrote) {
  std::vector<float> forward_seen, backward_seen;
  register_specs({"forward:*:stats,zeros", "backward:*:nonfinite,stats"});
  HookHandle forward = model().register_forward_hook(
      "relu", [&](const HookEvent&, Tensor out) { forward_seen = testing::values_of(out); });
  HookHandle backward = model().register_full_backward_hook(
      "layer4.1.relu", [&](const HookEvent&, Tensor grad_input, Tensor) { backward_seen = testing::values_of(grad_input); });
  const StepOutcome fused = train_step(true);
  const std::vector<float> fused_forward = forward_seen, fused_backward = backward_seen;
  // A forward callback may write the output, so its hooks work on a copy: the stem's ReLU writes
  // first. Backward hooks act on grad_input itself, which the probe run writes before the callback.
  EXPECT_EQ(fused.counts.produced_forward, kReluCalls - 1);
  EXPECT_EQ(fused.counts.produced_backward, kReluCalls);
  const StepOutcome unfused = train_step(false);
  expect_same_outcome(fused, unfused);
  ASSERT_FALSE(fused_forward.empty());
  EXPECT_EQ(fused_forward, forward_seen);
  EXPECT_EQ(fused_backward, backward_seen);
  EXPECT_TRUE(std::any_of(fused_backward.begin(), fused_backward.end(), [](float v) { return v != 0.0f; }));
}

TEST_F(EpilogueProbesTest, StepsWhereTheHookRestsWriteTheirRelusAsOps) {
  // Fires on steps 0 and 2 only: step 1's ReLUs have no hook to hand their tensors to.
  register_specs({"forward:*relu:stats,every=2", "backward:*relu:stats,every=2"});
  const StepOutcome fused = train_step(true, 3);
  EXPECT_EQ(fused.counts.produced_forward, 2 * kReluCalls);
  EXPECT_EQ(fused.counts.produced_backward, 2 * kReluCalls);
  EXPECT_EQ(fused.counts.relu_forward + fused.counts.add_relus, kReluCalls);
  EXPECT_EQ(fused.counts.relu_backward, kReluCalls);
  expect_same_outcome(fused, train_step(false, 3));
}

// A block's residual sum is written only where a hook sees the ReLU's input (a forward_pre hook,
// a forward callback taking (input, output)); elsewhere the ReLU computes relu(a + b) itself.
// Forward-only steps, so that every add counted is a residual sum.
TEST_F(EpilogueProbesTest, ResidualSumsAreWrittenOnlyForHooksThatReadThem) {
  auto forward_step = [](CountingBackend::Counts& counts) {
    model().load_state_dict(initial_state(), "initial state");
    Executor executor(model(), std::make_unique<CountingBackend>(counts), ExecutorOptions{});
    testing::RecordLog log;
    log.attach(executor);
    const Tensor logits = executor.step(testing::tiny_input()).logits;
    executor.flush_records();
    return std::make_pair(logits, log.records().size());
  };
  CountingBackend::Counts unhooked_counts;
  const auto [unhooked_logits, no_records] = forward_step(unhooked_counts);
  EXPECT_EQ(unhooked_counts.adds, 0);
  EXPECT_EQ(unhooked_counts.add_relus, kBlocks);
  EXPECT_EQ(no_records, 0u);

  std::vector<float> seen_sum;
  HookHandle pair = model().register_forward_hook(
      "layer3.1.relu", [&](const HookEvent& e, Tensor input, Tensor) {
        if (e.call == 1) seen_sum = testing::values_of(input);
      });
  register_specs({"forward_pre:layer1.0.relu:stats"});
  CountingBackend::Counts hooked_counts;
  const auto [hooked_logits, records] = forward_step(hooked_counts);
  EXPECT_EQ(hooked_counts.adds, 2) << "layer1.0's and layer3.1's sums";
  EXPECT_EQ(hooked_counts.add_relus, kBlocks - 2);
  EXPECT_TRUE(testing::bitwise_equal(hooked_logits, unhooked_logits));
  EXPECT_EQ(records, 2u);  // both calls of layer1.0.relu, the second on the sum
  ASSERT_FALSE(seen_sum.empty());
  EXPECT_TRUE(std::any_of(seen_sum.begin(), seen_sum.end(), [](float v) { return v < 0.0f; }))
      << "the callback saw the sum before its ReLU";
}

// A batch norm's output is probed where the ReLU after it reads it, even where the ReLU has no
// hook of its own: its record keeps its place, before the records of what ran in between
// (downsample's, between bn2 and the residual add).
TEST_F(EpilogueProbesTest, BatchNormOutputsAreProbedWhereTheirReluReadsThem) {
  register_specs({"forward:*bn1:stats,zeros,nonfinite", "forward:*bn2:stats,zeros", "forward:*downsample*:stats",
                  "grad:*bn2.weight:stats"});
  const StepOutcome fused = train_step(true, 2);
  EXPECT_EQ(fused.counts.input_probes, 2 * kBatchNormsIntoRelus);
  EXPECT_EQ(fused.counts.relu_forward + fused.counts.add_relus, 2 * kReluCalls) << "each ReLU wrote its output there";
  const StepOutcome unfused = train_step(false, 2);
  EXPECT_EQ(unfused.counts.input_probes, 0);
  expect_same_outcome(fused, unfused);
}

// In backward, the gradient a convolution or max pool sends to the ReLU before it is probed where
// that ReLU's backward reads it: whether the ReLU has backward hooks of its own (its grad_output is
// then that same gradient, and its record takes the parked run's results) or none, and whether a
// backward_pre hook fires on that gradient first (the parked run then runs before it, and serves it).
TEST_F(EpilogueProbesTest, GradientsIntoAReluAreProbedWhereItsBackwardReadsThem) {
  register_specs({"backward:*conv2:stats,zeros,nonfinite", "backward:maxpool:stats,zeros", "backward:layer1.*relu:stats",
                  "backward_pre:layer4.0.relu:stats,zeros,nonfinite"});
  const StepOutcome fused = train_step(true, 2);
  // layer4.0's conv2 sends its grad_input to a ReLU whose backward_pre hook reads it first.
  EXPECT_EQ(fused.counts.input_probes, 2 * (kGradInputsIntoRelus - 1));
  const StepOutcome unfused = train_step(false, 2);
  EXPECT_EQ(unfused.counts.input_probes, 0);
  ASSERT_GT(unfused.records.size(), 40u);
  expect_same_outcome(fused, unfused);
}

// What may read or write a batch norm's output before its ReLU (a forward_pre hook, a residual sum
// written for a hook, a host callback) has it probed first, on its own.
TEST_F(EpilogueProbesTest, ReadersBeforeTheReluHaveTheBatchNormOutputProbedFirst) {
  std::vector<std::string> events;
  HookHandle sum_reader = model().register_forward_hook(
      "layer3.1.relu", [&](const HookEvent& e, Tensor, Tensor) { events.push_back("pair " + std::to_string(e.call)); });
  HookHandle between = model().register_forward_hook(
      "layer2.0.downsample.0", [&](const HookEvent&, Tensor) { events.push_back("callback"); });
  register_specs({"forward:*bn?:stats,zeros", "forward_pre:layer1.0.relu:stats"});
  auto run = [&](bool epilogues) {
    events.clear();
    model().load_state_dict(initial_state(), "initial state");
    CountingBackend::Counts counts;
    ExecutorOptions options;
    options.probes_in_epilogues = epilogues;
    Executor executor(model(), std::make_unique<CountingBackend>(counts), options);
    executor.subscribe([&](const ProbeRecord& r) { events.push_back(r.capture_key()); });
    executor.step(testing::tiny_input());
    executor.flush_records();
    return std::make_pair(events, counts);
  };
  const auto [fused_events, fused_counts] = run(true);
  const auto [unfused_events, unfused_counts] = run(false);
  EXPECT_EQ(fused_events, unfused_events) << "records and callbacks in the same order";
  // layer1.0.bn1 (its ReLU has a forward_pre hook), layer1.0.bn2 and layer3.1.bn2 (their sums
  // are written for the hooks that read them) and layer2.0.bn2 (a callback fires before its add).
  EXPECT_EQ(fused_counts.input_probes, kBatchNormsIntoRelus - 4);
  ASSERT_GT(fused_events.size(), 20u);
}

// A nonfinite=halt between a batch norm's output and its ReLU stops the step with the batch
// norm's record delivered, as when nothing waits.
TEST_F(EpilogueProbesTest, AHaltWhileABatchNormOutputWaitsDeliversItsRecord) {
  register_specs({"forward:*bn2:stats", "forward:layer2.0.downsample.0:nonfinite=halt"});
  Tensor input = testing::tiny_input();
  input.data<float>()[5] = std::numeric_limits<float>::quiet_NaN();
  auto run = [&](bool epilogues) {
    model().load_state_dict(initial_state(), "initial state");
    CountingBackend::Counts counts;
    ExecutorOptions options;
    options.probes_in_epilogues = epilogues;
    Executor executor(model(), std::make_unique<CountingBackend>(counts), options);
    std::vector<std::string> records;
    executor.subscribe([&](const ProbeRecord& r) { records.push_back(io::record_to_json(r).dump()); });
    try {
      executor.step(input);
      ADD_FAILURE() << "the step did not halt";
    } catch (const Error& error) {
      EXPECT_EQ(error.kind(), ErrorKind::Halted) << error.what();
    }
    executor.flush_records();
    return std::make_pair(records, counts.input_probes);
  };
  const auto [fused, fused_input_probes] = run(true);
  const auto [unfused, unfused_input_probes] = run(false);
  EXPECT_EQ(fused, unfused);
  ASSERT_EQ(fused.size(), 4u) << "layer1's two bn2s, layer2.0.bn2, then the halting record";
  EXPECT_NE(fused[2].find("layer2.0.bn2"), std::string::npos) << fused[2];
  EXPECT_EQ(fused_input_probes, 2) << "layer1's bn2s, read by their ReLUs";
}

// A backend whose runs fail where they would probe their op's input.
class FailingInputProbes final : public testing::DelegatingBackend {
 public:
  explicit FailingInputProbes(bool split_batchnorm = false) : split_(split_batchnorm) {}
  bool splits_batchnorm(DType dtype) const override { return split_ && DelegatingBackend::splits_batchnorm(dtype); }
  ProbeRunEffects run_probes(const ProbeList& probes, Tensor& tensor, ProbeRecord& record,
                             const ProbeRunOptions& options) override {
    if (options.probe_input) throw Error("the device refused the pass");
    return DelegatingBackend::run_probes(probes, tensor, record, options);
  }

 private:
  bool split_;
};

// A step on FailingInputProbes with a stats hook on `module`'s output, which waits for the pass
// that fails: the step throws, and the hook's record is delivered from a run of its own.
void expect_waiting_record_delivered_after_the_failure(const std::string& module, bool split_batchnorm) {
  register_hook_spec(TinyModelTest::model(), parse_hook_spec("forward:" + module + ":stats"));
  Executor executor(TinyModelTest::model(), std::make_unique<FailingInputProbes>(split_batchnorm), ExecutorOptions{});
  testing::RecordLog log;
  log.attach(executor);
  EXPECT_THROW(executor.step(testing::tiny_input()), Error);
  executor.flush_records();
  const ProbeRecord record = log.only(HookWhen::Forward, module, "output");
  EXPECT_EQ(testing::result_of<StatsResult>(record, 0).count, 2 * 64 * 8 * 8);
}

// Nothing recorded is lost when the run that was to probe a waiting tensor fails: the step stops
// with the failure, and the waiting record is delivered from a run of its own.
TEST_F(EpilogueProbesTest, AFailedRunDeliversTheRecordThatWaitedForIt) {
  expect_waiting_record_delivered_after_the_failure("layer1.0.bn1", false);
}

TEST_F(EpilogueProbesTest, EvalStepsWithoutLabelsHandOverForwardOutputsOnly) {
  register_specs({"forward:*relu:stats", "backward:*relu:stats"});
  model().load_state_dict(initial_state(), "initial state");
  CountingBackend::Counts counts;
  Executor executor(model(), std::make_unique<CountingBackend>(counts), ExecutorOptions{});
  testing::RecordLog log;
  log.attach(executor);
  executor.step(testing::tiny_input());
  executor.flush_records();
  EXPECT_EQ(counts.produced_forward, kReluCalls);
  EXPECT_EQ(counts.produced_backward + counts.relu_backward, 0);
  EXPECT_EQ(log.records().size(), static_cast<size_t>(kReluCalls));
}

// ---- batch norms in two parts (Backend::splits_batchnorm) ----

// 20 batch norms per forward: the stem's, two in each of the eight blocks, and the three
// downsamples'. Each reads a convolution's output.
constexpr int kBatchNorms = 20;

// Where the backend splits batch norms, each hooked one's output and dx are written by their probe
// runs, and every convolution output is probed where its batch norm's elementwise pass reads it:
// no batch norm runs whole, none of their parts runs on its own.
TEST_F(EpilogueProbesTest, SplitBatchNormsWriteTheirOutputsAndGradientsInTheirProbeRuns) {
  register_specs({"forward:*:stats,zeros,nonfinite", "backward:*:stats,zeros,nonfinite", "grad:*:stats"});
  const StepOutcome fused = train_step(true, 2, true);
  EXPECT_EQ(fused.counts.batchnorms_whole, 0);
  EXPECT_EQ(fused.counts.batchnorm_applies + fused.counts.batchnorm_dxs, 0);
  EXPECT_EQ(fused.counts.produced_batchnorm_forward, 2 * kBatchNorms);
  EXPECT_EQ(fused.counts.produced_batchnorm_backward, 2 * kBatchNorms);
  EXPECT_EQ(fused.counts.produced_forward, 2 * kReluCalls);
  EXPECT_EQ(fused.counts.produced_backward, 2 * kReluCalls);
  // The batch norms' outputs are probed in their own passes now, not in their ReLUs' reads.
  EXPECT_EQ(fused.counts.input_probes, 2 * (kBatchNorms + kGradInputsIntoRelus));
  const StepOutcome whole = train_step(true, 2, false);
  EXPECT_EQ(whole.counts.batchnorms_whole, 2 * 2 * kBatchNorms);
  ASSERT_GT(whole.records.size(), 500u);
  expect_same_outcome(fused, whole);
  expect_same_outcome(fused, train_step(false, 2, true));
}

// With hooks on the convolutions alone, each batch norm's elementwise pass is the run that probes
// its input; in backward, with no hook on the batch norms, their dx is written by the op on its own.
TEST_F(EpilogueProbesTest, ConvolutionOutputsAreProbedWhereTheirBatchNormReadsThem) {
  register_specs({"forward:*conv*:stats,zeros,nonfinite", "forward:*downsample.0:stats,zeros"});
  const StepOutcome fused = train_step(true, 2, true);
  EXPECT_EQ(fused.counts.input_probes, 2 * kBatchNorms);
  EXPECT_EQ(fused.counts.batchnorm_applies, 2 * kBatchNorms) << "each written where its input was probed";
  EXPECT_EQ(fused.counts.batchnorm_dxs, 2 * kBatchNorms);
  EXPECT_EQ(fused.counts.batchnorm_relu_dxs, 0) << "their outputs were written: their ReLUs' backwards run";
  EXPECT_EQ(fused.counts.produced_batchnorm_forward + fused.counts.produced_batchnorm_backward, 0);
  EXPECT_EQ(fused.counts.batchnorms_whole, 0);
  const StepOutcome whole = train_step(true, 2, false);
  EXPECT_EQ(whole.counts.input_probes, 0) << "a whole batch norm reads its input where no probe can";
  expect_same_outcome(fused, whole);
}

// Hooks that may change a convolution's output or a batch norm's, or host callbacks, get written
// tensors; backward hooks on a batch norm whose first hook is a callback see its dx written.
TEST_F(EpilogueProbesTest, SplitBatchNormsWriteTheirTensorsFirstForHooksThatChangeOrCallBack) {
  std::vector<float> seen_dx;
  HookHandle backward = model().register_full_backward_hook(
      "layer2.1.bn1", [&](const HookEvent&, Tensor grad_input, Tensor) { seen_dx = testing::values_of(grad_input); });
  register_specs({"forward:*conv1:clamp=-0.5:0.5,stats", "forward:*bn2:clamp=-1:1,zeros", "backward:*bn?:stats"});
  const StepOutcome fused = train_step(true, 1, true);
  const std::vector<float> fused_dx = seen_dx;
  EXPECT_EQ(fused.counts.produced_batchnorm_forward, 0) << "changing hooks work on written copies";
  // The stem's bn1 and the blocks' bn1 and bn2, but layer2.1.bn1, whose dx is written for its callback.
  EXPECT_EQ(fused.counts.produced_batchnorm_backward, 1 + 2 * kBlocks - 1);
  const StepOutcome whole = train_step(true, 1, false);
  expect_same_outcome(fused, whole);
  ASSERT_FALSE(fused_dx.empty());
  EXPECT_EQ(fused_dx, seen_dx);
  EXPECT_TRUE(std::any_of(fused_dx.begin(), fused_dx.end(), [](float v) { return v != 0.0f; }));
}

// Eval steps split their batch norms too, with the running statistics: the same logits and
// records as whole ones.
TEST_F(EpilogueProbesTest, SplitBatchNormsInEvalStepsGiveTheWholeOnesLogits) {
  register_specs({"forward:*:stats,zeros,nonfinite"});
  auto eval_step = [](bool split, CountingBackend::Counts& counts) {
    model().load_state_dict(initial_state(), "initial state");
    Executor executor(model(), std::make_unique<CountingBackend>(counts, split), ExecutorOptions{});
    testing::RecordLog log;
    log.attach(executor);
    const Tensor logits = executor.step(testing::tiny_input()).logits;
    executor.flush_records();
    std::vector<std::string> records;
    for (const ProbeRecord& r : log.records()) records.push_back(io::record_to_json(r).dump());
    return std::make_pair(logits, records);
  };
  CountingBackend::Counts split_counts, whole_counts;
  const auto [split_logits, split_records] = eval_step(true, split_counts);
  const auto [whole_logits, whole_records] = eval_step(false, whole_counts);
  EXPECT_EQ(split_counts.produced_batchnorm_forward, kBatchNorms);
  EXPECT_EQ(whole_counts.batchnorms_whole, kBatchNorms);
  EXPECT_TRUE(testing::bitwise_equal(split_logits, whole_logits));
  EXPECT_EQ(split_records, whole_records);
}

// Nothing recorded is lost when the batch norm's pass that was to probe a convolution's output
// fails: the step stops, and the convolution's record is delivered from a run of its own.
TEST_F(EpilogueProbesTest, AFailedBatchNormPassDeliversTheConvolutionsRecord) {
  expect_waiting_record_delivered_after_the_failure("layer1.0.conv1", true);
}

// A batch norm's output that only its ReLU reads is never written: the ReLU's op computes it, in
// the stem and both of each block's ReLUs (bn2 through the residual add). The downsamples' batch
// norms, read by the add as its second operand, are written.
TEST_F(EpilogueProbesTest, BatchNormOutputsOnlyTheirReluReadsAreComputedByIt) {
  const StepOutcome fused = train_step(true, 2, true);
  EXPECT_EQ(fused.counts.batchnorm_relus, 2 * kReluCalls);
  EXPECT_EQ(fused.counts.batchnorm_applies, 2 * (kBatchNorms - kReluCalls));
  EXPECT_EQ(fused.counts.relu_forward + fused.counts.add_relus, 0);
  const StepOutcome whole = train_step(true, 2, false);
  EXPECT_EQ(whole.counts.batchnorm_relus, 0);
  EXPECT_EQ(fused.counts.adds, whole.counts.adds) << "no residual sum written (backward's sums alike)";
  expect_same_outcome(fused, whole);
  expect_same_outcome(train_step(false, 2, true), whole);
}

// Where something else sees a batch norm's output (a hook on it, a forward_pre hook or a callback
// taking (input, output) on its ReLU, a hook on the convolution before it, whose probes its pass
// runs), the batch norm writes it, as before.
TEST_F(EpilogueProbesTest, BatchNormOutputsSeenByHooksAreWritten) {
  std::vector<float> seen_sum;
  HookHandle pair = model().register_forward_hook(
      "layer3.1.relu", [&](const HookEvent& e, Tensor input, Tensor) {
        if (e.call == 1) seen_sum = testing::values_of(input);
      });
  register_specs({"forward_pre:layer1.0.relu:stats", "forward:layer2.0.bn2:stats", "forward:layer4.1.conv1:zeros"});
  const StepOutcome fused = train_step(true, 1, true);
  const std::vector<float> fused_sum = seen_sum;
  // Not layer1.0's bn1 and bn2 (their ReLU's forward_pre hook), layer2.0.bn2 (hooked), layer3.1's
  // (the callback takes its ReLU's input) nor layer4.1.bn1 (its pass probes conv1's output).
  EXPECT_EQ(fused.counts.batchnorm_relus, kReluCalls - 6);
  const StepOutcome whole = train_step(true, 1, false);
  EXPECT_EQ(fused.counts.adds, whole.counts.adds) << "layer1.0's and layer3.1's sums, which hooks read";
  expect_same_outcome(fused, whole);
  ASSERT_FALSE(fused_sum.empty());
  EXPECT_EQ(fused_sum, seen_sum);
}

// The batch norms whose output a ReLU computed unwritten and goes nowhere else (the stem's bn1 and
// each block's bn1; a block's bn2 goes through the residual add, whose gradient the identity path
// shares) take that ReLU's backward into their own: the ReLU's gradient is never written, and the
// batch norm's passes read x and the ReLU's dy only.
constexpr int kBatchNormsTakingReluBackwards = kBlocks + 1;

TEST_F(EpilogueProbesTest, BatchNormsTakeTheBackwardOfTheReluThatComputedTheirOutput) {
  const StepOutcome fused = train_step(true, 2, true);
  EXPECT_EQ(fused.counts.batchnorm_relu_backwards, 2 * kBatchNormsTakingReluBackwards);
  EXPECT_EQ(fused.counts.batchnorm_relu_dxs, 2 * kBatchNormsTakingReluBackwards);
  EXPECT_EQ(fused.counts.relu_backward, 2 * kBlocks) << "the ReLUs after the residual adds";
  EXPECT_EQ(fused.counts.batchnorm_dxs, 2 * (kBatchNorms - kBatchNormsTakingReluBackwards));
  const StepOutcome whole = train_step(true, 2, false);
  EXPECT_EQ(whole.counts.batchnorm_relu_backwards + whole.counts.batchnorm_relu_dxs, 0);
  EXPECT_EQ(whole.counts.relu_backward, 2 * kReluCalls);
  expect_same_outcome(fused, whole);
}

// A hook on the gradients between them (the ReLU's backward, the batch norm's backward_pre or
// backward) keeps the ReLU's backward its own; a hook on the gradient into the ReLU (maxpool's or a
// conv2's grad_input) is probed where the batch norm's dx reads it, and a grad hook on the batch
// norm's weight sees the same gradient either way.
TEST_F(EpilogueProbesTest, HooksOnTheGradientsBetweenKeepTheReluBackwardItsOwn) {
  std::vector<float> seen_dy;
  HookHandle callback = model().register_full_backward_hook(
      "maxpool", [&](const HookEvent&, Tensor grad_input, Tensor) { seen_dy = testing::values_of(grad_input); });
  register_specs({"backward:layer1.0.relu:stats", "backward_pre:layer2.0.bn1:stats", "backward:layer3.1.bn1:zeros",
                  "backward:layer4.0.conv2:stats,nonfinite", "grad:layer4.0.bn1.weight:stats"});
  const StepOutcome fused = train_step(true, 1, true);
  const std::vector<float> fused_dy = seen_dy;
  EXPECT_EQ(fused.counts.batchnorm_relu_backwards, kBatchNormsTakingReluBackwards - 3);
  EXPECT_EQ(fused.counts.batchnorm_relu_dxs, kBatchNormsTakingReluBackwards - 3);
  EXPECT_EQ(fused.counts.input_probes, 1) << "layer4.0.conv2's grad_input, where layer4.0.bn1's dx reads it";
  const StepOutcome whole = train_step(true, 1, false);
  EXPECT_EQ(whole.counts.batchnorm_relu_backwards, 0);
  expect_same_outcome(fused, whole);
  ASSERT_FALSE(fused_dy.empty());
  EXPECT_EQ(fused_dy, seen_dy);
}

}  // namespace
}  // namespace hookrt
