// Probe planning (src/probe_plan.h) without a GPU: how a ProbeList becomes passes and a slot
// layout, and that decoding the host reference's slot gives what the CPU probe engine gives, for
// tensors with NaN, infinities, zeros, empty and one-element shapes, several channel axes and the
// changing probes in every order. The kernels fill the slot with the same layout and algorithm.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cpu/probes.h"
#include "hookrt/probes.h"
#include "probe_plan.h"
#include "support/probe_results.h"

namespace hookrt {
namespace {

using namespace hookrt::testing;  // parse_list, nasty_tensor, expect_same_*

// The host reference accumulates in double like the CPU engine, but merges moments in another
// order (Welford vs. a two-pass std): 1e-9 relative is far above that rounding and far below any
// real disagreement.
constexpr double kRel = 1e-9;

// Runs `list` on copies of `tensor` through the CPU engine and through plan → reference → decode,
// and checks that both give the same results, tensor, grad masks and halt flag.
void expect_plan_matches_cpu(const std::string& list_text, const Tensor& tensor, int channel_axis) {
  const std::string what = "[" + list_text + "] on " + shape_string(tensor.shape()) + " axis " +
                           std::to_string(channel_axis);
  const ProbeList list = parse_list(list_text);
  ProbeRunOptions options;
  options.channel_axis = channel_axis;
  options.want_grad_transforms = true;

  Tensor cpu_tensor = tensor.clone();
  ProbeRecord cpu_record;
  const ProbeRunEffects cpu_effects = cpu::run_probes(list, cpu_tensor, cpu_record, options);

  Tensor planned_tensor = tensor.clone();
  const ProbePlan plan = plan_probes(list, tensor, options);
  const ReferenceProbeRun run = accumulate_probe_slot(plan, planned_tensor);
  const DecodedProbes decoded = decode_probe_slot(plan, run.slot, run.captures);

  // Values after a clipnorm are x * scale, equal as long as the scales are.
  expect_same_results(decoded.results, cpu_record.results, kRel, 0.0, what);
  expect_same_floats(planned_tensor, cpu_tensor, 0.0, what + " tensor");
  EXPECT_EQ(decoded.halt, cpu_effects.halt) << what;
  EXPECT_EQ(plan.changes_tensor, cpu_effects.changed) << what;
  size_t mask = 0;
  for (const GradTransform& transform : cpu_effects.grad_transforms) {
    if (transform.kind != GradTransform::Kind::Mask) continue;
    ASSERT_LT(mask, run.masks.size()) << what;
    expect_same_floats(run.masks[mask++], transform.factor, 0.0, what + " mask");
  }
  EXPECT_EQ(mask, run.masks.size()) << what;
}

const std::vector<std::string> kEveryProbeAlone = {
    "stats", "zeros", "nonfinite", "nonfinite=halt", "hist=8:-2:2", "hist=1:0:1", "channels",
    "clamp=-1:1", "clamp=0:inf", "clipnorm=1", "clipnorm=1e9", "capture"};

const std::vector<std::string>& kOrders = kChangingProbeOrders;

// ---- the plan ------------------------------------------------------------------------------------

TEST(ProbePlan, GivesEachProbeItsOwnSlotEntriesInListOrder) {
  const ProbePlan plan = plan_probes(parse_list("stats,hist=4:0:1,channels,clamp=0:1,clipnorm=1,zeros,nonfinite"),
                                     Shape{2, 3, 5}, MemoryFormat::Contiguous, ProbeRunOptions{});
  std::vector<PlannedOp> ops;
  for (const PlannedPass& pass : plan.passes) ops.insert(ops.end(), pass.ops.begin(), pass.ops.end());
  ASSERT_EQ(ops.size(), 7u);
  const int64_t sizes[] = {probe_slot::kStatsSize, probe_slot::kHistCounts + 4, probe_slot::kChannelsArrays * 3,
                           probe_slot::kClampSize, probe_slot::kClipNormSize, probe_slot::kZerosSize,
                           probe_slot::kNonFiniteSize};
  int64_t offset = 0;
  for (size_t k = 0; k < ops.size(); ++k) {
    EXPECT_EQ(ops[k].probe, k);
    EXPECT_EQ(ops[k].slot, offset) << "op " << k;
    offset += sizes[k];
  }
  EXPECT_EQ(plan.slot_size, offset);
}

TEST(ProbePlan, StartsAnotherPassAfterMaxOpsPerPass) {
  const ProbePlan plan = plan_probes(parse_list("stats,stats,stats,stats,stats,stats"), Shape{10}, MemoryFormat::Contiguous, ProbeRunOptions{});
  ASSERT_EQ(plan.passes.size(), 2u);
  EXPECT_EQ(plan.passes[0].ops.size(), kMaxOpsPerPass);
  EXPECT_EQ(plan.passes[1].ops.size(), 6 - kMaxOpsPerPass);
}

TEST(ProbePlan, EndsAPassAtEachCaptureAndSharesItWithCapturesRightAfter) {
  const ProbePlan plan = plan_probes(parse_list("capture,clamp=-1:1,capture,capture,stats"), Shape{10}, MemoryFormat::Contiguous, ProbeRunOptions{});
  ASSERT_EQ(plan.passes.size(), 3u);
  EXPECT_TRUE(plan.passes[0].ops.empty());  // the tensor as given
  EXPECT_EQ(plan.passes[0].captures, std::vector<size_t>{0});
  EXPECT_EQ(plan.passes[1].ops.size(), 1u);
  EXPECT_EQ(plan.passes[1].captures, (std::vector<size_t>{2, 3}));
  EXPECT_EQ(plan.passes[2].ops.size(), 1u);
  EXPECT_TRUE(plan.passes[2].captures.empty());
}

TEST(ProbePlan, WalksRowsOnlyInPassesWithAChannelsProbe) {
  const ProbePlan plan = plan_probes(parse_list("stats,capture,zeros,capture,channels,capture,hist=4:0:1"),
                                     Shape{4, 3, 2}, MemoryFormat::Contiguous, ProbeRunOptions{});
  ASSERT_EQ(plan.passes.size(), 4u);
  EXPECT_FALSE(plan.passes[0].per_channel());
  EXPECT_FALSE(plan.passes[1].per_channel());  // zeros: dead-channel flags from the flat walk
  EXPECT_TRUE(plan.passes[2].per_channel());
  EXPECT_FALSE(plan.passes[3].per_channel());
  EXPECT_EQ(plan.rows(), 12);
  EXPECT_EQ(plan.inner, 2);
}

TEST(ProbePlan, ChangesTheTensorOnlyWithClampOrClipnorm) {
  EXPECT_FALSE(plan_probes(parse_list("stats,zeros,capture"), Shape{3}, MemoryFormat::Contiguous, ProbeRunOptions{}).changes_tensor);
  EXPECT_TRUE(plan_probes(parse_list("stats,clamp=0:1"), Shape{3}, MemoryFormat::Contiguous, ProbeRunOptions{}).changes_tensor);
  EXPECT_TRUE(plan_probes(parse_list("clipnorm=1"), Shape{3}, MemoryFormat::Contiguous, ProbeRunOptions{}).changes_tensor);
}

TEST(ProbePlan, RefusesAHistThatComputeHistWouldRefuseBeforeAnythingRuns) {
  const ProbeList list{probes::Clamp{0, 1}, probes::Hist{0, 0.0, 1.0}};
  EXPECT_THROW(plan_probes(list, Shape{3}, MemoryFormat::Contiguous, ProbeRunOptions{}), Error);
  const ProbeList reversed{probes::Hist{4, 1.0, 1.0}};
  EXPECT_THROW(plan_probes(reversed, Shape{3}, MemoryFormat::Contiguous, ProbeRunOptions{}), Error);
}

// ---- decode(accumulate(t)) against the CPU engine ---------------------------------------------------

TEST(ProbePlanReference, MatchesTheCpuEngineForEveryProbeAloneOnAwkwardSizes) {
  uint64_t seed = 1;
  for (const int64_t n : {1, 3, 5, 7, 1023, 4099})
    for (const std::string& list : kEveryProbeAlone) expect_plan_matches_cpu(list, nasty_tensor({n}, seed++), 0);
}

TEST(ProbePlanReference, MatchesTheCpuEngineForEveryProbeTogether) {
  std::string all;
  for (const std::string& probe : kEveryProbeAlone) all += (all.empty() ? "" : ",") + probe;
  expect_plan_matches_cpu(all, nasty_tensor({4, 6, 5, 7}, 11), 1);
  expect_plan_matches_cpu(all, nasty_tensor({1}, 12), 1);
}

TEST(ProbePlanReference, KeepsTheOrderRuleForChangingProbesInEveryOrder) {
  uint64_t seed = 100;
  for (const std::string& list : kOrders) {
    expect_plan_matches_cpu(list, nasty_tensor({3, 4, 5, 6}, seed++), 1);
    expect_plan_matches_cpu(list, nasty_tensor({1021}, seed++, 0.0, 0.05), 0);
  }
}

TEST(ProbePlanReference, MatchesTheCpuEngineOnHalfAndBfloat16Tensors) {
  uint64_t seed = 300;
  for (const DType dtype : {DType::BF16, DType::F16}) {
    for (const std::string& list : kEveryProbeAlone) expect_plan_matches_cpu(list, nasty_tensor({3, 7, 5}, seed++).to(dtype), 1);
    for (const std::string& list : kOrders) expect_plan_matches_cpu(list, nasty_tensor({1021}, seed++, 0.0, 0.05).to(dtype), 0);
    // Finite values, so that each clipnorm has a finite scale and rounds real products.
    for (const std::string& list : kOrders) {
      expect_plan_matches_cpu(list, finite_tensor({1021}, seed++, 0.0, 0.05).to(dtype), 0);
      expect_plan_matches_cpu(list, finite_tensor({3, 4, 5, 6}, seed++).to(dtype), 1);
    }
  }
}

TEST(ProbePlanReference, MatchesPerChannelProbesOnEveryChannelAxis) {
  uint64_t seed = 200;
  const std::string list = "zeros,channels,clamp=-0.5:inf,zeros,channels";
  for (const int axis : {0, 1, 2, 3, -1, -2, 7, -9}) expect_plan_matches_cpu(list, nasty_tensor({3, 4, 5, 2}, seed++), axis);
  // Channels that are all <= 0 are dead; NaN is alive; the relu-like tensor has dead channels.
  Tensor relu = nasty_tensor({2, 6, 3}, seed++);
  float* p = relu.data<float>();
  for (int64_t i = 0; i < relu.numel(); ++i)
    if ((i / 3) % 6 < 3 && !(p[i] <= 0)) p[i] = -p[i];
  expect_plan_matches_cpu(list, relu, 1);
}

TEST(ProbePlanReference, MatchesOnEmptyTensorsAndEmptyChannels) {
  const std::string all = "stats,zeros,nonfinite,hist=4:0:1,channels,clamp=0:1,clipnorm=1,capture";
  for (const Shape& shape : {Shape{0}, Shape{4, 0, 3}, Shape{0, 5}, Shape{2, 3, 0}})
    for (const int axis : {0, 1, -1}) expect_plan_matches_cpu(all, Tensor::empty(shape), axis);
}

TEST(ProbePlanReference, MatchesOnARankZeroTensor) {
  expect_plan_matches_cpu("stats,zeros,channels,clamp=0:1,capture", Tensor::full({}, -3.0), 1);
}

TEST(ProbePlanReference, MatchesOnTensorsOfOnlyNonFiniteValues) {
  Tensor t = Tensor::from_vector(std::vector<float>{kNaN, kInf, -kInf, kNaN, kInf}, {5});
  expect_plan_matches_cpu("stats,nonfinite=halt,hist=4:-1:1,channels,zeros,clipnorm=1,stats", t, 0);
}

TEST(ProbePlanReference, HaltsOnlyWhenAHaltingNonfiniteProbeFindsSomething) {
  expect_plan_matches_cpu("nonfinite=halt", Tensor::from_vector(std::vector<float>{1, 2, 3}, {3}), 0);
  expect_plan_matches_cpu("nonfinite=halt", Tensor::from_vector(std::vector<float>{1, kNaN, 3}, {3}), 0);
  // A clamp before it cannot remove a NaN; one after it does not hide one.
  expect_plan_matches_cpu("clamp=-1:1,nonfinite=halt", Tensor::from_vector(std::vector<float>{kInf, 0}, {2}), 0);
}

TEST(ProbePlanReference, StdStaysAccurateAboutALargeMean) {
  // Welford/Chan moments, not a sum of squares: mean 1e4, spread 1e-2 would lose every digit.
  expect_plan_matches_cpu("stats,channels", nasty_tensor({4, 3, 50}, 300, 1e4, 1e-2), 1);
}

TEST(ProbePlanReference, BinsValuesOnTheEdgesAsHistBinDoes) {
  std::vector<float> values;
  for (int i = -20; i <= 20; ++i) values.push_back(static_cast<float>(i) / 10.0f);
  values.push_back(std::nextafter(1.0f, 2.0f));
  values.push_back(std::nextafter(-1.0f, -2.0f));
  const Tensor t = Tensor::from_vector(values, {static_cast<int64_t>(values.size())});
  expect_plan_matches_cpu("hist=10:-1:1,hist=3:-1:1,hist=7:-0.3:0.9", t, 0);
}

TEST(ProbePlanDecode, RefusesASlotShorterThanThePlan) {
  const ProbePlan plan = plan_probes(parse_list("stats"), Shape{3}, MemoryFormat::Contiguous, ProbeRunOptions{});
  EXPECT_THROW(decode_probe_slot(plan, std::vector<double>(3, 0.0), {}), Error);
}

TEST(ProbePlanDecode, GivesEachCaptureOfAPassItsOwnCopy) {
  Tensor t = Tensor::from_vector(std::vector<float>{1, 2, 3}, {3});
  const ProbePlan plan = plan_probes(parse_list("capture,capture"), Shape{3}, MemoryFormat::Contiguous, ProbeRunOptions{});
  ReferenceProbeRun run = accumulate_probe_slot(plan, t);
  const DecodedProbes decoded = decode_probe_slot(plan, run.slot, run.captures);
  ASSERT_EQ(decoded.results.size(), 2u);
  const Tensor& a = std::get<CaptureResult>(decoded.results[0]).tensor;
  const Tensor& b = std::get<CaptureResult>(decoded.results[1]).tensor;
  EXPECT_NE(a.raw_data(), b.raw_data());
  EXPECT_EQ(b.data<float>()[2], 3.0f);
}

}  // namespace
}  // namespace hookrt
