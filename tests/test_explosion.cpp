// The gradient-explosion localizer on synthetic record sequences, built in the order hookrt
// delivers them: the first flagged series in backward order, K and the window of the running
// median, min_history, where non-finite values start, parameter grads, repeated calls, the clip
// threshold and the per-series summaries.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "hookrt/error.h"
#include "hookrt/explosion.h"

namespace hookrt {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// A stats result for a tensor of the given norm; NaN or Inf stand for a tensor holding one.
StatsResult stats_of(double norm) {
  StatsResult stats;
  stats.count = 16;
  stats.l2 = std::isfinite(norm) ? norm : 1.0;  // the finite elements' norm stays finite
  if (std::isnan(norm)) stats.nan = 1;
  if (std::isinf(norm)) stats.posinf = 1;
  return stats;
}

NonFiniteResult nonfinite_of(bool nonfinite) {
  NonFiniteResult counts;
  counts.nan = nonfinite ? 3 : 0;
  return counts;
}

// One step's records, in delivery order.
class StepRecords {
 public:
  explicit StepRecords(int64_t step) : step_(step) {}

  // A backward firing as the dispatcher delivers it: grad_input first, then grad_output.
  StepRecords& backward(const std::string& module, double grad_output, double grad_input,
                        int call = 0) {
    add(HookWhen::Backward, module, call, "grad_input", stats_of(grad_input));
    return add(HookWhen::Backward, module, call, "grad_output", stats_of(grad_output));
  }
  // A firing without grad_input (the root, or the first module without input gradients).
  StepRecords& backward_output(const std::string& module, double grad_output) {
    return add(HookWhen::Backward, module, 0, "grad_output", stats_of(grad_output));
  }
  StepRecords& grad(const std::string& param, const std::string& owner, double norm) {
    add(HookWhen::Grad, owner, 0, "grad", stats_of(norm));
    records_.back().param = param;
    return *this;
  }
  // forward_pre:*:nonfinite, which fires before the module (and before a container's children).
  StepRecords& input(const std::string& module, bool nonfinite, int call = 0) {
    return add(HookWhen::ForwardPre, module, call, "input", nonfinite_of(nonfinite));
  }
  // forward:*:stats, after the module (and after a container's children).
  StepRecords& output(const std::string& module, bool nonfinite, int call = 0) {
    return add(HookWhen::Forward, module, call, "output", stats_of(nonfinite ? kNaN : 1.0));
  }
  // A leaf module's forward: its input record, then its output record.
  StepRecords& forward(const std::string& module, bool input_nonfinite, bool output_nonfinite) {
    input(module, input_nonfinite);
    return output(module, output_nonfinite);
  }
  StepRecords& add(HookWhen when, const std::string& module, int call, const std::string& tensor,
                   ProbeResult result) {
    ProbeRecord record;
    record.step = step_;
    record.when = when;
    record.module = module;
    record.call = call;
    record.tensor = tensor;
    record.shape = {4, 4};
    record.results.push_back(std::move(result));
    records_.push_back(std::move(record));
    return *this;
  }

  void feed(ExplosionLocalizer& localizer) const {
    for (const ProbeRecord& record : records_) localizer.observe(record);
  }
  StepVerdict finish(ExplosionLocalizer& localizer) const {
    feed(localizer);
    return localizer.finish_step(step_);
  }

 private:
  int64_t step_;
  std::vector<ProbeRecord> records_;
};

// Steps [0, count) in which one series (fc's grad_input) takes the given norms, in order.
void feed_grad_input_norms(ExplosionLocalizer& localizer, const std::vector<double>& norms) {
  for (size_t step = 0; step < norms.size(); ++step)
    StepRecords(static_cast<int64_t>(step)).backward("fc", 1.0, norms[step]).finish(localizer);
}

std::vector<std::string> flagged_series(const StepVerdict& verdict) {
  std::vector<std::string> names;
  for (const LayerFlag& flag : verdict.flags) names.push_back(flag.layer + "/" + flag.tensor);
  return names;
}

// ---- which layer is named -----------------------------------------------------------------------

TEST(ExplosionLocalizer, NamesTheFirstExplodingLayerInBackwardOrderNotTheLargest) {
  ExplosionLocalizer localizer;
  auto step = [](int64_t s, double conv2_in, double conv1_in) {
    return StepRecords(s)
        .backward("fc", 1, 1)
        .backward("layer4.1.conv2", 1, conv2_in)
        .backward("layer3.0.conv1", 1, conv1_in);
  };
  for (int64_t s = 0; s < 5; ++s) EXPECT_FALSE(step(s, 1, 1).finish(localizer).flagged());
  const StepVerdict verdict = step(5, 20, 1000).finish(localizer);
  ASSERT_NE(verdict.first(), nullptr);
  EXPECT_EQ(verdict.first()->layer, "layer4.1.conv2");
  EXPECT_EQ(verdict.first()->tensor, "grad_input");
  EXPECT_EQ(verdict.first()->reason, FlagReason::Explosion);
  EXPECT_EQ(verdict.first()->norm, 20);
  EXPECT_EQ(verdict.first()->median, 1.0);
  EXPECT_EQ(verdict.first()->step, 5);
  EXPECT_EQ(flagged_series(verdict),
            (std::vector<std::string>{"layer4.1.conv2/grad_input", "layer3.0.conv1/grad_input"}));
  EXPECT_LT(verdict.flags[0].backward_index, verdict.flags[1].backward_index);
  EXPECT_FALSE(verdict.origin.has_value());
}

TEST(ExplosionLocalizer, GradOutputComesBeforeGradInputOfTheSameFiring) {
  ExplosionLocalizer localizer;
  for (int64_t s = 0; s < 5; ++s) StepRecords(s).backward("layer2.0.conv1", 1, 1).finish(localizer);
  // Delivered grad_input first; the gradient arrived (grad_output) before it was passed on.
  const StepVerdict verdict = StepRecords(5).backward("layer2.0.conv1", 50, 50).finish(localizer);
  EXPECT_EQ(flagged_series(verdict),
            (std::vector<std::string>{"layer2.0.conv1/grad_output", "layer2.0.conv1/grad_input"}));
  EXPECT_EQ(verdict.flags[0].backward_index, 0);
  EXPECT_EQ(verdict.flags[1].backward_index, 1);
}

// The root's backward hook fires first (its input needs no gradient) with the same grad_output as
// fc; layer4.1 fires after its children with relu#1's grad_output. Leaves are named first.
TEST(ExplosionLocalizer, LeavesComeBeforeContainersHoldingTheSameGradient) {
  ExplosionLocalizer localizer;
  auto step = [](int64_t s, double loss_grad, double block_grad) {
    return StepRecords(s)
        .backward_output("", loss_grad)
        .grad("fc.weight", "fc", 1)
        .backward("fc", loss_grad, 1)
        .backward("layer4.1.relu", block_grad, 1, 1)
        .backward("layer4.1.conv1", 1, 1)
        .backward("layer4.1", block_grad, 1)
        .backward("layer4", block_grad, 1);
  };
  for (int64_t s = 0; s < 5; ++s) step(s, 1, 1).finish(localizer);
  const StepVerdict loss_spike = step(5, 100, 1).finish(localizer);
  EXPECT_EQ(flagged_series(loss_spike),
            (std::vector<std::string>{"fc/grad_output", "/grad_output"}));
  EXPECT_EQ(loss_spike.flags[0].backward_index, 0);
  EXPECT_EQ(loss_spike.flags[1].backward_index, 11);  // the last of the step's 12 series

  const StepVerdict block_spike = step(6, 1, 100).finish(localizer);
  EXPECT_EQ(flagged_series(block_spike),
            (std::vector<std::string>{"layer4.1.relu#1/grad_output", "layer4.1/grad_output",
                                      "layer4/grad_output"}));

  const auto summaries = localizer.summaries();
  ASSERT_EQ(summaries.size(), 12u);
  EXPECT_EQ(summaries.front().layer, "fc");
  EXPECT_EQ(summaries.front().tensor, "grad_output");
  EXPECT_EQ(summaries[2].layer, "fc.weight");  // a module's parameter grads follow its gradients
  EXPECT_EQ(summaries.back().layer, "");
}

// ---- K, the window, min_history
// ------------------------------------------------------------------

TEST(ExplosionLocalizer, FlagsOnlyNormsAboveFactorTimesMedian) {
  ExplosionLocalizer localizer({.factor = 4, .window = 3, .min_history = 3});
  feed_grad_input_norms(localizer, {1, 1, 1});
  const auto below = StepRecords(3).backward("fc", 1, 3.999).finish(localizer);
  EXPECT_FALSE(below.flagged()) << "3.999 is just below 4 x median 1";
  const auto above = StepRecords(4).backward("fc", 1, 4.001).finish(localizer);
  ASSERT_EQ(above.flags.size(), 1u) << "4.001 is just above 4 x median 1";
  EXPECT_EQ(above.flags[0].median, 1.0);
}

TEST(ExplosionLocalizer, MedianCoversOnlyTheLastWindowValues) {
  ExplosionLocalizer localizer({.factor = 4, .window = 3, .min_history = 3});
  feed_grad_input_norms(localizer, {10, 10, 10, 1, 1, 1});
  // Over all six values the median would be 5.5 and 5 would pass; over the last three it is 1.
  const auto verdict = StepRecords(6).backward("fc", 1, 5).finish(localizer);
  ASSERT_EQ(verdict.flags.size(), 1u);
  EXPECT_EQ(verdict.flags[0].median, 1.0);
}

TEST(ExplosionLocalizer, CurrentValueIsNotPartOfItsOwnMedian) {
  ExplosionLocalizer localizer({.factor = 2, .window = 10, .min_history = 2});
  feed_grad_input_norms(localizer, {1, 3});
  // median(1, 3) = 2, bound 4; with 5 itself in the median it would be 3, bound 6.
  const auto verdict = StepRecords(2).backward("fc", 1, 5).finish(localizer);
  ASSERT_EQ(verdict.flags.size(), 1u);
  EXPECT_EQ(verdict.flags[0].median, 2.0);
}

TEST(ExplosionLocalizer, NoExplosionFlagBeforeMinHistory) {
  ExplosionLocalizer localizer({.factor = 10, .window = 50, .min_history = 5});
  feed_grad_input_norms(localizer, {1, 1, 1, 1});
  EXPECT_FALSE(StepRecords(4).backward("fc", 1, 1000).finish(localizer).flagged())
      << "only four values before this one";
  EXPECT_EQ(StepRecords(5).backward("fc", 1, 1000).finish(localizer).flags.size(), 1u)
      << "five values, median 1";
}

TEST(ExplosionLocalizer, NonFiniteIsFlaggedEvenWithoutHistory) {
  ExplosionLocalizer localizer;
  const auto verdict = StepRecords(0).backward("fc", 1, kNaN).finish(localizer);
  ASSERT_EQ(verdict.flags.size(), 1u);
  EXPECT_EQ(verdict.flags[0].reason, FlagReason::NonFinite);
  EXPECT_EQ(verdict.flags[0].norm, kInf);
  EXPECT_FALSE(verdict.flags[0].median.has_value());
}

TEST(ExplosionLocalizer, PersistingExplosionStaysFlagged) {
  ExplosionLocalizer localizer({.factor = 10, .window = 4, .min_history = 2});
  feed_grad_input_norms(localizer, {1, 1});
  for (int64_t s = 2; s < 10; ++s) {
    const auto verdict = StepRecords(s).backward("fc", 1, 100).finish(localizer);
    EXPECT_EQ(verdict.flags.size(), 1u)
        << "step " << s << ": flagged values stay out of the median";
  }
  EXPECT_EQ(localizer.clip_threshold("fc", "grad_input"), 10.0);
}

// ---- non-finite origins
// --------------------------------------------------------------------------

TEST(ExplosionLocalizer, ForwardNaNNamesTheProducerAndItsPropagators) {
  ExplosionLocalizer localizer;
  StepRecords step(0);
  step.input("", false)
      .forward("conv1", false, false)
      .forward("bn1", false, true)
      .forward("relu", true, true)
      .forward("maxpool", true, true)
      .output("", true)
      .backward("fc", kNaN, kNaN);
  step.feed(localizer);
  localizer.observe_loss(0, kNaN);
  const StepVerdict verdict = localizer.finish_step(0);
  ASSERT_TRUE(verdict.origin.has_value());
  EXPECT_EQ(verdict.origin->phase, "forward");
  EXPECT_EQ(verdict.origin->producer, "bn1");
  EXPECT_EQ(verdict.origin->propagators, (std::vector<std::string>{"relu", "maxpool", ""}));
}

// A block's residual add is the block's own code: relu#1 receives NaN from it.
TEST(ExplosionLocalizer, ContainerIsTheProducerWhenNoChildProducedTheValues) {
  ExplosionLocalizer localizer;
  const StepVerdict verdict = StepRecords(0)
                                  .input("layer1.0", false)
                                  .forward("layer1.0.conv1", false, false)
                                  .forward("layer1.0.bn2", false, false)
                                  .input("layer1.0.relu", true, 1)
                                  .output("layer1.0.relu", true, 1)
                                  .output("layer1.0", true)
                                  .finish(localizer);
  ASSERT_TRUE(verdict.origin.has_value());
  EXPECT_EQ(verdict.origin->phase, "forward");
  EXPECT_EQ(verdict.origin->producer, "layer1.0");
  EXPECT_EQ(verdict.origin->propagators, (std::vector<std::string>{"layer1.0.relu#1"}));
}

TEST(ExplosionLocalizer, NonFiniteBatchIsAnInputOrigin) {
  ExplosionLocalizer localizer;
  const StepVerdict verdict = StepRecords(0)
                                  .input("", true)
                                  .forward("conv1", true, true)
                                  .output("", true)
                                  .finish(localizer);
  ASSERT_TRUE(verdict.origin.has_value());
  EXPECT_EQ(verdict.origin->phase, "input");
  EXPECT_EQ(verdict.origin->producer, "");
  EXPECT_EQ(verdict.origin->propagators, (std::vector<std::string>{"conv1", ""}));
}

TEST(ExplosionLocalizer, BackwardNaNNamesTheModuleWhoseGradInputTurnedNonFinite) {
  ExplosionLocalizer localizer;
  const StepVerdict verdict = StepRecords(0)
                                  .forward("fc", false, false)
                                  .backward("fc", 1, 1)
                                  .backward("layer4.1.relu", 1, kNaN, 1)
                                  .grad("layer4.1.bn2.weight", "layer4.1.bn2", kNaN)
                                  .backward("layer4.1.bn2", kNaN, kNaN)
                                  .backward("layer4.1.conv2", kNaN, kNaN)
                                  .finish(localizer);
  ASSERT_TRUE(verdict.origin.has_value());
  EXPECT_EQ(verdict.origin->phase, "backward");
  EXPECT_EQ(verdict.origin->producer, "layer4.1.relu#1");
  EXPECT_EQ(verdict.origin->propagators,
            (std::vector<std::string>{"layer4.1.bn2", "layer4.1.conv2"}));
  EXPECT_EQ(flagged_series(verdict),
            (std::vector<std::string>{"layer4.1.relu#1/grad_input", "layer4.1.bn2/grad_output",
                                      "layer4.1.bn2/grad_input", "layer4.1.bn2.weight/grad",
                                      "layer4.1.conv2/grad_output", "layer4.1.conv2/grad_input"}));
  for (const LayerFlag& flag : verdict.flags) EXPECT_EQ(flag.reason, FlagReason::NonFinite);
}

TEST(ExplosionLocalizer, NonFiniteParameterGradWithFiniteGradOutputIsTheProducer) {
  ExplosionLocalizer localizer;
  const StepVerdict verdict = StepRecords(0)
                                  .grad("layer1.0.conv1.weight", "layer1.0.conv1", kInf)
                                  .backward("layer1.0.conv1", 1, 1)
                                  .finish(localizer);
  ASSERT_TRUE(verdict.origin.has_value());
  EXPECT_EQ(verdict.origin->phase, "backward");
  EXPECT_EQ(verdict.origin->producer, "layer1.0.conv1.weight");
  EXPECT_TRUE(verdict.origin->propagators.empty());
}

TEST(ExplosionLocalizer, NonFiniteLossAfterFiniteForwardIsALossOrigin) {
  ExplosionLocalizer localizer;
  StepRecords finite(0);
  finite.forward("fc", false, false).backward("fc", 1, 1);
  finite.feed(localizer);
  localizer.observe_loss(0, 2.3);
  EXPECT_FALSE(localizer.finish_step(0).flagged());

  StepRecords step(1);
  step.forward("fc", false, false).backward("fc", kNaN, kNaN).backward("avgpool", kNaN, kNaN);
  step.feed(localizer);
  localizer.observe_loss(1, kInf);
  const StepVerdict verdict = localizer.finish_step(1);
  ASSERT_TRUE(verdict.origin.has_value());
  EXPECT_EQ(verdict.origin->phase, "loss");
  EXPECT_EQ(verdict.origin->producer, "");
  EXPECT_EQ(verdict.origin->propagators, (std::vector<std::string>{"fc", "avgpool"}));
}

// ---- series and names
// ----------------------------------------------------------------------------

TEST(ExplosionLocalizer, ParameterGradIsItsOwnSeries) {
  ExplosionLocalizer localizer;
  for (int64_t s = 0; s < 5; ++s)
    StepRecords(s).grad("layer1.0.conv1.weight", "layer1.0.conv1", 2).finish(localizer);
  const StepVerdict verdict =
      StepRecords(5).grad("layer1.0.conv1.weight", "layer1.0.conv1", 50).finish(localizer);
  ASSERT_EQ(verdict.flags.size(), 1u);
  EXPECT_EQ(verdict.flags[0].layer, "layer1.0.conv1.weight");
  EXPECT_EQ(verdict.flags[0].tensor, "grad");
  EXPECT_EQ(verdict.flags[0].median, 2.0);
  EXPECT_EQ(localizer.clip_threshold("layer1.0.conv1.weight", "grad"), 20.0);
  EXPECT_FALSE(localizer.clip_threshold("layer1.0.conv1", "grad_output").has_value());
}

TEST(ExplosionLocalizer, SecondCallOfAModuleIsNamedWithHashOne) {
  ExplosionLocalizer localizer;
  auto step = [](int64_t s, double second_call) {
    return StepRecords(s)
        .backward("layer1.0.relu", second_call, second_call, 1)
        .backward("layer1.0.relu", 1, 1, 0);
  };
  for (int64_t s = 0; s < 5; ++s) step(s, 1).finish(localizer);
  const StepVerdict verdict = step(5, 30).finish(localizer);
  EXPECT_EQ(flagged_series(verdict), (std::vector<std::string>{"layer1.0.relu#1/grad_output",
                                                               "layer1.0.relu#1/grad_input"}));
  const auto summaries = localizer.summaries();
  ASSERT_EQ(summaries.size(), 4u);
  EXPECT_EQ(summaries[0].layer, "layer1.0.relu#1");
  EXPECT_EQ(summaries[2].layer, "layer1.0.relu");
  EXPECT_EQ(summaries[2].flags, 0);
}

TEST(ExplosionLocalizer, ClipThresholdIsFactorTimesTheRunningMedian) {
  ExplosionLocalizer localizer({.factor = 3, .window = 5, .min_history = 3});
  EXPECT_FALSE(localizer.clip_threshold("fc", "grad_input").has_value()) << "unknown series";
  feed_grad_input_norms(localizer, {2, 4});
  EXPECT_FALSE(localizer.clip_threshold("fc", "grad_input").has_value()) << "two values of three";
  StepRecords(2).backward("fc", 1, 6).finish(localizer);
  EXPECT_EQ(localizer.clip_threshold("fc", "grad_input"), 12.0) << "3 x median(2, 4, 6)";
  // While step 3 is open its records are not yet history: the bound it will be judged against.
  StepRecords open(3);
  open.backward("fc", 1, 100).feed(localizer);
  EXPECT_EQ(localizer.clip_threshold("fc", "grad_input"), 12.0);
  ASSERT_EQ(localizer.finish_step(3).flags.size(), 1u);
  EXPECT_EQ(localizer.clip_threshold("fc", "grad_input"), 12.0) << "the flagged 100 stays out";
}

TEST(ExplosionLocalizer, SummariesDescribeEverySeries) {
  ExplosionLocalizer localizer({.factor = 10, .window = 50, .min_history = 2});
  StepRecords(0)
      .backward("fc", 2, 4)
      .grad("fc.weight", "fc", 3)
      .backward("avgpool", 1, 1)
      .finish(localizer);
  StepRecords(1).backward("fc", 2, 6).grad("fc.weight", "fc", 3).finish(localizer);
  StepRecords(2).backward("fc", 2, kNaN).grad("fc.weight", "fc", 3).finish(localizer);
  const auto summaries = localizer.summaries();
  ASSERT_EQ(summaries.size(), 5u);

  const LayerGradientSummary& output = summaries[0];
  EXPECT_EQ(output.layer, "fc");
  EXPECT_EQ(output.tensor, "grad_output");
  EXPECT_EQ(output.observations, 3);
  EXPECT_EQ(output.last, 2);
  EXPECT_EQ(output.median, 2);
  EXPECT_EQ(output.max, 2);
  EXPECT_DOUBLE_EQ(output.mean_ratio, 2.5) << "ratios 4/2 and 6/2; the NaN step has none";
  EXPECT_EQ(output.step_norm, 2);
  EXPECT_TRUE(std::isnan(output.step_ratio));

  const LayerGradientSummary& input = summaries[1];
  EXPECT_EQ(input.tensor, "grad_input");
  EXPECT_EQ(input.observations, 3);
  EXPECT_EQ(input.last, 6);
  EXPECT_EQ(input.median, 5) << "median of 4 and 6";
  EXPECT_EQ(input.max, 6);
  EXPECT_DOUBLE_EQ(input.mean_ratio, 2.5);
  EXPECT_EQ(input.flags, 1);
  EXPECT_EQ(input.nonfinite_steps, 1);
  EXPECT_EQ(input.step_norm, kInf);

  const LayerGradientSummary& weight = summaries[2];
  EXPECT_EQ(weight.layer, "fc.weight");
  EXPECT_EQ(weight.tensor, "grad");
  EXPECT_TRUE(std::isnan(weight.mean_ratio));
  EXPECT_EQ(weight.step_norm, 3);

  const LayerGradientSummary& pool = summaries[3];
  EXPECT_EQ(pool.layer, "avgpool");
  EXPECT_EQ(pool.observations, 1);
  EXPECT_EQ(pool.last, 1);
  EXPECT_TRUE(std::isnan(pool.step_norm)) << "not delivered in the last step";
}

// ---- contract
// --------------------------------------------------------------------------------------

TEST(ExplosionLocalizer, IgnoresRecordsItDoesNotUse) {
  ExplosionLocalizer localizer;
  StepRecords(0)
      .add(HookWhen::BackwardPre, "fc", 0, "grad_output", stats_of(kNaN))
      .add(HookWhen::Backward, "fc", 0, "grad_output", ZerosResult{})
      .add(HookWhen::Forward, "fc", 0, "input", stats_of(kNaN))
      .finish(localizer);
  EXPECT_TRUE(localizer.summaries().empty());
}

TEST(ExplosionLocalizer, OptionsAreChecked) {
  auto message_of = [](LocalizerOptions options) -> std::string {
    try {
      ExplosionLocalizer localizer(options);
    } catch (const Error& error) {
      EXPECT_EQ(error.kind(), ErrorKind::BadInput);
      return error.what();
    }
    return "";
  };
  EXPECT_NE(message_of({.factor = 0}).find("factor"), std::string::npos);
  EXPECT_NE(message_of({.factor = kNaN}).find("factor"), std::string::npos);
  EXPECT_NE(message_of({.window = 0}).find("window"), std::string::npos);
  EXPECT_NE(message_of({.window = 3, .min_history = 4}).find("min_history"), std::string::npos);
  EXPECT_NE(message_of({.min_history = 0}).find("min_history"), std::string::npos);
}

TEST(ExplosionLocalizer, StepsAreFinishedOnceAndInOrder) {
  ExplosionLocalizer localizer;
  StepRecords(1).backward("fc", 1, 1).feed(localizer);
  EXPECT_THROW(StepRecords(2).backward("fc", 1, 1).feed(localizer), Error) << "step 1 is open";
  EXPECT_THROW(localizer.finish_step(2), Error);
  localizer.finish_step(1);
  EXPECT_THROW(localizer.finish_step(1), Error) << "finished already";
  EXPECT_THROW(localizer.observe_loss(0, 1.0), Error);
}

TEST(ExplosionLocalizer, FlagReasonNames) {
  EXPECT_EQ(flag_reason_name(FlagReason::Explosion), "explosion");
  EXPECT_EQ(flag_reason_name(FlagReason::NonFinite), "nonfinite");
}

}  // namespace
}  // namespace hookrt
