// Probes: parsing, the CPU probe engine (each probe's semantics, order, grad transforms, halt),
// checked against hand-worked values, PyTorch 1.13's own outputs and a long-double reference.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/probes.h"
#include "hookrt/probes.h"
#include "random.h"

namespace hookrt {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

Tensor f32(const std::vector<float>& values, Shape shape = {}) {
  if (shape.empty()) shape = {static_cast<int64_t>(values.size())};
  return Tensor::from_vector(values, shape);
}

std::vector<float> values_of(const Tensor& tensor) {
  const float* p = tensor.data<float>();
  return std::vector<float>(p, p + tensor.numel());
}

// Runs probes through the engine and returns the record it filled.
ProbeRecord run(const ProbeList& probes, Tensor& tensor, ProbeRunEffects* effects = nullptr,
                const ProbeRunOptions& options = {}) {
  ProbeRecord record;
  ProbeRunEffects got = cpu::run_probes(probes, tensor, record, options);
  if (effects) *effects = got;
  return record;
}

template <class Result>
const Result& result_at(const ProbeRecord& record, size_t index) {
  EXPECT_LT(index, record.results.size());
  return std::get<Result>(record.results.at(index));
}

// A tensor of n values drawn from offset + spread * N(0, 1) with a fixed seed.
Tensor normal_tensor(Shape shape, double offset, double spread, uint64_t seed) {
  Pcg32 rng(seed);
  Tensor t = Tensor::empty(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(offset + spread * rng.normal());
  return t;
}

// ---- parsing -----------------------------------------------------------------------------------

TEST(ParseProbe, AcceptsEveryProbeAsWritten) {
  EXPECT_TRUE(std::holds_alternative<probes::Stats>(parse_probe("stats")));
  EXPECT_TRUE(std::holds_alternative<probes::Zeros>(parse_probe("zeros")));
  EXPECT_TRUE(std::holds_alternative<probes::Channels>(parse_probe("channels")));
  EXPECT_TRUE(std::holds_alternative<probes::Capture>(parse_probe("capture")));
  EXPECT_EQ(std::get<probes::NonFinite>(parse_probe("nonfinite")).policy,
            probes::NonFinitePolicy::Record);
  EXPECT_EQ(std::get<probes::NonFinite>(parse_probe("nonfinite=record")).policy,
            probes::NonFinitePolicy::Record);
  EXPECT_EQ(std::get<probes::NonFinite>(parse_probe("nonfinite=halt")).policy,
            probes::NonFinitePolicy::Halt);
  const auto hist = std::get<probes::Hist>(parse_probe("hist=32:-2.5:1e1"));
  EXPECT_EQ(hist.bins, 32);
  EXPECT_EQ(hist.lo, -2.5);
  EXPECT_EQ(hist.hi, 10.0);
  const auto clamp = std::get<probes::Clamp>(parse_probe("clamp=-1:0.5"));
  EXPECT_EQ(clamp.lo, -1.0);
  EXPECT_EQ(clamp.hi, 0.5);
  EXPECT_EQ(std::get<probes::ClipNorm>(parse_probe("clipnorm=2.5")).max_norm, 2.5);
}

TEST(ParseProbe, ClampAcceptsAnInfiniteBoundLikeTorchClamp) {
  const auto clamp = std::get<probes::Clamp>(parse_probe("clamp=0:inf"));
  EXPECT_EQ(clamp.lo, 0.0);
  EXPECT_EQ(clamp.hi, std::numeric_limits<double>::infinity());
}

// Expects parse_probe(text) to throw Error(BadInput) whose message names the text and `why`.
void expect_rejected(const std::string& text, const std::string& why) {
  try {
    parse_probe(text);
    ADD_FAILURE() << "'" << text << "' was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput) << text;
    EXPECT_NE(std::string(e.what()).find("'" + text + "'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
  }
}

TEST(ParseProbe, RejectsUnknownProbesNamingTheText) {
  for (const char* text : {"", "stat", "Stats", "stats ", "mean", "=1"})
    expect_rejected(text, "unknown probe");
  expect_rejected("stats=1", "takes no argument");
  expect_rejected("capture=", "takes no argument");
  expect_rejected("nonfinite=stop", "'record' or 'halt'");
}

TEST(ParseProbe, RejectsMissingOrMisshapenArguments) {
  expect_rejected("hist", "hist=BINS:LO:HI");
  expect_rejected("hist=10:0", "hist=BINS:LO:HI");
  expect_rejected("hist=10:0:1:2", "hist=BINS:LO:HI");
  expect_rejected("clamp", "clamp=LO:HI");
  expect_rejected("clamp=1", "clamp=LO:HI");
  expect_rejected("clipnorm", "clipnorm=MAX");
}

TEST(ParseProbe, RejectsBadNumbers) {
  expect_rejected("hist=ten:0:1", "BINS 'ten' is not a whole number");
  expect_rejected("hist=1.5:0:1", "BINS '1.5' is not a whole number");
  expect_rejected("hist=10:x:1", "LO 'x' is not a number");
  expect_rejected("hist=10:0:1y", "HI '1y' is not a number");
  expect_rejected("hist=10:0:inf", "HI must be finite");
  expect_rejected("clamp=nan:1", "LO is NaN");
  expect_rejected("clamp=:1", "LO '' is not a number");
  expect_rejected("clamp=-1e39:1", "LO overflows F32");  // torch.clamp refuses it on any tensor
  expect_rejected("clamp=0:4e38", "HI overflows F32");
  expect_rejected("clipnorm=", "MAX '' is not a number");
  expect_rejected("clipnorm=1,5", "MAX '1,5' is not a number");
}

TEST(ParseProbe, RejectsEmptyRangesAndNonPositiveLimits) {
  expect_rejected("hist=0:0:1", "BINS must be at least 1");
  expect_rejected("hist=-4:0:1", "BINS must be at least 1");
  expect_rejected("hist=100000000:0:1", "BINS must be at most");
  expect_rejected("hist=10:1:1", "LO must be less than HI");
  expect_rejected("hist=10:2:1", "LO must be less than HI");
  expect_rejected("clamp=1:1", "LO must be less than HI");
  expect_rejected("clamp=1:-1", "LO must be less than HI");
  expect_rejected("clipnorm=0", "MAX must be positive");
  expect_rejected("clipnorm=-1", "MAX must be positive");
}

TEST(ProbeName, NamesEveryProbeAndKnowsWhichChangeTheTensor) {
  const ProbeList all = {probes::Stats{},    probes::Zeros{},    probes::NonFinite{},
                         probes::Hist{},     probes::Channels{}, probes::Clamp{},
                         probes::ClipNorm{}, probes::Capture{}};
  const std::vector<std::string> names = {"stats",    "zeros", "nonfinite", "hist",
                                          "channels", "clamp", "clipnorm",  "capture"};
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(probe_name(all[i]), names[i]);
    EXPECT_EQ(probe_changes_tensor(all[i]), names[i] == "clamp" || names[i] == "clipnorm")
        << names[i];
  }
}

// ---- the engine
// ----------------------------------------------------------------------------------

TEST(RunProbes, RejectsTensorsThatAreNotHostFloats) {
  ProbeRecord record;
  Tensor f64 = Tensor::zeros({4}, DType::F64);
  EXPECT_THROW(cpu::run_probes({probes::Stats{}}, f64, record, {}), Error);
  Tensor undefined;
  EXPECT_THROW(cpu::run_probes({probes::Stats{}}, undefined, record, {}), Error);
  // Host memory dressed as a device tensor: the CPU engine must refuse rather than read it.
  Tensor host = Tensor::zeros({4});
  auto storage = std::make_shared<Storage>();
  storage->data = host.raw_data();
  storage->bytes = host.nbytes();
  storage->device = Device::CUDA;
  Tensor device(storage, {4}, DType::F32);
  EXPECT_THROW(cpu::run_probes({probes::Clamp{}}, device, record, {}), Error);
  EXPECT_TRUE(record.results.empty()) << "no probe may run on a rejected tensor";
}

TEST(RunProbes, AppendsObservingResultsInTheOrderWritten) {
  Tensor t = f32({1, 2, 3});
  ProbeRunEffects effects;
  const ProbeRecord record = run(probes::Hist{} | probes::Stats{} | probes::Zeros{}, t, &effects);
  ASSERT_EQ(record.results.size(), 3u);
  EXPECT_TRUE(std::holds_alternative<HistResult>(record.results[0]));
  EXPECT_TRUE(std::holds_alternative<StatsResult>(record.results[1]));
  EXPECT_TRUE(std::holds_alternative<ZerosResult>(record.results[2]));
  EXPECT_FALSE(effects.changed) << "only clamp and clipnorm change the tensor";
  EXPECT_FALSE(effects.halt);
  EXPECT_TRUE(effects.grad_transforms.empty());
}

TEST(RunProbes, StatsBeforeClampDescribesTheTensorBeforeIt) {
  Tensor t = f32({-3, 0.5f, 4});
  const ProbeRecord record = run(probes::Stats{} | probes::Clamp{-1, 1}, t);
  EXPECT_EQ(*result_at<StatsResult>(record, 0).max, 4.0f);
  EXPECT_EQ(values_of(t), (std::vector<float>{-1, 0.5f, 1}))
      << "downstream sees the clamped tensor";
}

TEST(RunProbes, ClampBeforeStatsDescribesTheClampedTensor) {
  Tensor t = f32({-3, 0.5f, 4});
  const ProbeRecord record = run(probes::Clamp{-1, 1} | probes::Stats{}, t);
  const auto& stats = result_at<StatsResult>(record, 1);
  EXPECT_EQ(*stats.min, -1.0f);
  EXPECT_EQ(*stats.max, 1.0f);
  EXPECT_DOUBLE_EQ(stats.l1, 2.5);
}

// ---- stats
// ---------------------------------------------------------------------------------------

TEST(StatsProbe, DescribesTheFiniteElementsAndCountsTheRest) {
  const StatsResult s = cpu::compute_stats(f32({1, kNaN, kInf, -kInf, -2, 3, kNaN}));
  EXPECT_EQ(s.count, 3);
  EXPECT_EQ(s.nan, 2);
  EXPECT_EQ(s.posinf, 1);
  EXPECT_EQ(s.neginf, 1);
  EXPECT_EQ(*s.min, -2.0);
  EXPECT_EQ(*s.max, 3.0);
  EXPECT_EQ(*s.abs_max, 3.0);
  EXPECT_DOUBLE_EQ(*s.mean, 2.0 / 3.0);
  // torch.std([1., -2., 3.]) = sqrt(((1/3)^2 + (8/3)^2 + (7/3)^2) / 2) = sqrt(19/3).
  EXPECT_DOUBLE_EQ(*s.std, std::sqrt(19.0 / 3.0));
  EXPECT_DOUBLE_EQ(s.l1, 6.0);
  EXPECT_DOUBLE_EQ(s.l2, std::sqrt(14.0));
}

TEST(StatsProbe, NoFiniteElementLeavesEverythingButTheCountsEmpty) {
  const StatsResult s = cpu::compute_stats(f32({kNaN, kInf, -kInf}));
  EXPECT_EQ(s.count, 0);
  EXPECT_FALSE(s.min || s.max || s.mean || s.std || s.abs_max);
  EXPECT_EQ(s.l1, 0.0);
  EXPECT_EQ(s.l2, 0.0);
  EXPECT_EQ(s.nan + s.posinf + s.neginf, 3);
}

TEST(StatsProbe, OneElementHasNoUnbiasedStd) {
  const StatsResult s = cpu::compute_stats(f32({-2.5f}));
  EXPECT_EQ(s.count, 1);
  EXPECT_EQ(*s.mean, -2.5);
  EXPECT_EQ(*s.abs_max, 2.5);
  EXPECT_FALSE(s.std) << "torch.std of one element is NaN: written as null";
}

TEST(StatsProbe, EmptyTensorCountsNothing) {
  const StatsResult s = cpu::compute_stats(Tensor::empty({0, 3}));
  EXPECT_EQ(s.count, 0);
  EXPECT_FALSE(s.mean);
  EXPECT_EQ(s.nan + s.posinf + s.neginf, 0);
}

// A long-double reference over the finite elements, straight from the definitions.
struct ReferenceStats {
  long double mean = 0, std = 0, l1 = 0, l2 = 0;
};
ReferenceStats reference_stats(const std::vector<float>& values) {
  ReferenceStats r;
  long double sum = 0, squares = 0;
  for (float v : values) {
    sum += v;
    r.l1 += std::fabs(v);
    squares += static_cast<long double>(v) * v;
  }
  r.mean = sum / values.size();
  long double centred = 0;
  for (float v : values) centred += (v - r.mean) * (v - r.mean);
  r.std = std::sqrt(centred / (values.size() - 1));
  r.l2 = std::sqrt(squares);
  return r;
}

TEST(StatsProbe, MatchesAFloat64ReferenceOnALargeTensor) {
  // Offset 100 against spread 0.5 makes std sensitive to how squares are accumulated (an fp32
  // one-pass sum of squares, as a careless kernel would do, loses it): the oracle for CUDA too.
  const Tensor t = normal_tensor({8, 64, 32, 32}, 100.0, 0.5, 0xdeadbeef);
  const std::vector<float> values = values_of(t);
  const StatsResult s = cpu::compute_stats(t);
  const ReferenceStats r = reference_stats(values);
  const double rel = 1e-5;  // DESIGN.md's accuracy target for mean/std/l1/l2 on fp32 tensors
  EXPECT_EQ(s.count, static_cast<int64_t>(values.size()));
  EXPECT_NEAR(*s.mean, static_cast<double>(r.mean), rel * std::fabs(static_cast<double>(r.mean)));
  EXPECT_NEAR(*s.std, static_cast<double>(r.std), rel * static_cast<double>(r.std));
  EXPECT_NEAR(s.l1, static_cast<double>(r.l1), rel * static_cast<double>(r.l1));
  EXPECT_NEAR(s.l2, static_cast<double>(r.l2), rel * static_cast<double>(r.l2));
  EXPECT_EQ(*s.min, *std::min_element(values.begin(), values.end())) << "min is exact";
  EXPECT_EQ(*s.max, *std::max_element(values.begin(), values.end())) << "max is exact";
}

// ---- nonfinite
// -----------------------------------------------------------------------------------

TEST(NonFiniteProbe, CountsEachKind) {
  const NonFiniteResult r = cpu::count_nonfinite(f32({kNaN, 1, -kInf, kNaN, kInf, -kInf, 0}));
  EXPECT_EQ(r.nan, 2);
  EXPECT_EQ(r.posinf, 1);
  EXPECT_EQ(r.neginf, 2);
}

TEST(NonFiniteProbe, HaltPolicyAsksToHaltOnlyWhenSomethingIsFound) {
  const probes::NonFinite halt{probes::NonFinitePolicy::Halt};
  ProbeRunEffects effects;
  Tensor clean = f32({1, 2, 3});
  run({halt}, clean, &effects);
  EXPECT_FALSE(effects.halt);
  Tensor dirty = f32({1, kInf, 3});
  run({probes::NonFinite{}}, dirty, &effects);
  EXPECT_FALSE(effects.halt) << "the record policy never halts";
  const ProbeRecord record = run(ProbeList{halt} | probes::Stats{}, dirty, &effects);
  EXPECT_TRUE(effects.halt);
  EXPECT_EQ(record.results.size(), 2u) << "the whole record is delivered before the run stops";
  EXPECT_EQ(result_at<NonFiniteResult>(record, 0).posinf, 1);
}

// ---- zeros
// ---------------------------------------------------------------------------------------

TEST(ZerosProbe, CountsExactZerosIncludingNegativeZero) {
  const ZerosResult r = cpu::compute_zeros(f32({0.0f, -0.0f, 1e-30f, kNaN, 2, 0}), 1);
  EXPECT_EQ(r.zeros, 3);
  EXPECT_DOUBLE_EQ(r.zero_fraction, 0.5);
}

TEST(ZerosProbe, FindsDeadChannelsAcrossTheBatch) {
  // (N=2, C=4, H=1, W=2): channel 0 is <= 0 everywhere; channel 1 fires once in the second
  // sample; channel 2 holds a NaN (not <= 0, so not dead); channel 3 is all zeros (dead).
  // clang-format off
  const Tensor t = f32({-1, 0,     -1, -2,    -1, -1,    0, 0,    // sample 0: channels 0..3
                        -3, -0.0f, -1, 0.1f,  kNaN, -1,  0, 0},   // sample 1
                       {2, 4, 1, 2});
  // clang-format on
  const ZerosResult r = cpu::compute_zeros(t, 1);
  EXPECT_EQ(r.channels, 4);
  EXPECT_EQ(r.dead_channels, 2);
  EXPECT_EQ(r.zeros, 6);
}

TEST(ZerosProbe, ParameterGradientsUseAxisZero) {
  // A (3, 2) weight gradient: rows are output channels; row 1 is dead.
  const Tensor t = f32({1, -1, -1, -1, -1, 2}, {3, 2});  // rows 0, 1, 2
  const ZerosResult r = cpu::compute_zeros(t, 0);
  EXPECT_EQ(r.channels, 3);
  EXPECT_EQ(r.dead_channels, 1);
}

TEST(ZerosProbe, RankOneTensorsUseAxisZeroAndScalarsAreOneChannel) {
  const ZerosResult vector = cpu::compute_zeros(f32({1, 0, -1, 2}), 1);
  EXPECT_EQ(vector.channels, 4) << "axis 1 is clamped to the last axis, 0";
  EXPECT_EQ(vector.dead_channels, 2);
  const ZerosResult scalar = cpu::compute_zeros(f32({0}, Shape{}).reshape({}), 1);
  EXPECT_EQ(scalar.channels, 1);
  EXPECT_EQ(scalar.dead_channels, 1);
}

TEST(ZerosProbe, EmptyTensorHasZeroFractionZero) {
  const ZerosResult r = cpu::compute_zeros(Tensor::empty({0, 3, 2, 2}), 1);
  EXPECT_EQ(r.zeros, 0);
  EXPECT_EQ(r.zero_fraction, 0.0);
  EXPECT_EQ(r.channels, 3);
  EXPECT_EQ(r.dead_channels, 3) << "torch: (t <= 0).all() over no values is true";
}

// ---- hist
// ----------------------------------------------------------------------------------------

TEST(HistProbe, PutsBinEdgesInTheUpperBinAndHiInTheLast) {
  // 4 bins over [-1, 1]: [-1,-0.5) [-0.5,0) [0,0.5) [0.5,1].
  const HistResult r =
      cpu::compute_hist(f32({-1, -0.75f, -0.5f, -0.0f, 0, 0.25f, 0.5f, 1}), {4, -1, 1});
  EXPECT_EQ(r.counts, (std::vector<int64_t>{2, 1, 3, 2}));
  EXPECT_EQ(r.below, 0);
  EXPECT_EQ(r.above, 0);
  EXPECT_EQ(r.bins, 4);
  EXPECT_EQ(r.lo, -1.0);
  EXPECT_EQ(r.hi, 1.0);
}

TEST(HistProbe, CountsOutOfRangeAndInfinitiesOutsideAndNaNNowhere) {
  const HistResult r =
      cpu::compute_hist(f32({-1.5f, -kInf, 1.0001f, kInf, kInf, kNaN, 0.1f}), {2, -1, 1});
  EXPECT_EQ(r.below, 2);
  EXPECT_EQ(r.above, 3);
  EXPECT_EQ(r.counts, (std::vector<int64_t>{0, 1}));
}

TEST(HistProbe, EmptyTensorHasEmptyBins) {
  const HistResult r = cpu::compute_hist(Tensor::empty({0}), {3, 0, 1});
  EXPECT_EQ(r.counts, (std::vector<int64_t>{0, 0, 0}));
}

TEST(HistProbe, RejectsAnEmptyRangeBuiltInCode) {
  EXPECT_THROW(cpu::compute_hist(f32({1}), {0, 0, 1}), Error);
  EXPECT_THROW(cpu::compute_hist(f32({1}), {4, 1, 1}), Error);
}

// ---- channels
// ------------------------------------------------------------------------------------

TEST(ChannelsProbe, RankTwoDescribesEachColumn) {
  // (N=3, C=2): column 0 = {1, 2, 6}, column 1 = {0, 0, 3}.
  const ChannelsResult r = cpu::compute_channels(f32({1, 0, 2, 0, 6, 3}, {3, 2}), 1);
  ASSERT_EQ(r.mean.size(), 2u);
  EXPECT_DOUBLE_EQ(*r.mean[0], 3.0);
  EXPECT_DOUBLE_EQ(*r.std[0], std::sqrt(7.0));  // ((-2)^2 + (-1)^2 + 3^2) / 2 = 7
  EXPECT_DOUBLE_EQ(*r.mean[1], 1.0);
  EXPECT_DOUBLE_EQ(*r.std[1], std::sqrt(3.0));  // (1 + 1 + 4) / 2 = 3
  EXPECT_DOUBLE_EQ(r.zero_fraction[0], 0.0);
  EXPECT_DOUBLE_EQ(r.zero_fraction[1], 2.0 / 3.0);
}

TEST(ChannelsProbe, RankFourSkipsNonFiniteValuesInMeanAndStd) {
  // (N=2, C=3, H=1, W=2). Channel 0: {1, 3, 5, 7}; channel 1: {0, NaN, 0, 4}; channel 2: one
  // finite value among infinities (no std) .
  // clang-format off
  const Tensor t = f32({1, 3,  0, kNaN,  kInf, 2,       // sample 0: channels 0..2
                        5, 7,  0, 4,     -kInf, kNaN},  // sample 1
                       {2, 3, 1, 2});
  // clang-format on
  const ChannelsResult r = cpu::compute_channels(t, 1);
  ASSERT_EQ(r.mean.size(), 3u);
  EXPECT_DOUBLE_EQ(*r.mean[0], 4.0);
  EXPECT_DOUBLE_EQ(*r.std[0], std::sqrt(20.0 / 3.0));
  EXPECT_DOUBLE_EQ(*r.mean[1], 4.0 / 3.0);
  EXPECT_DOUBLE_EQ(*r.std[1], std::sqrt((16.0 / 9 + 16.0 / 9 + 64.0 / 9) / 2));
  EXPECT_DOUBLE_EQ(r.zero_fraction[1], 0.5) << "zero fraction is over all of the channel's values";
  EXPECT_DOUBLE_EQ(*r.mean[2], 2.0);
  EXPECT_FALSE(r.std[2]);
}

TEST(ChannelsProbe, ChannelWithNoFiniteValueHasNoMean) {
  const ChannelsResult r = cpu::compute_channels(f32({kNaN, 1, kInf, 2}, {2, 2}), 1);
  EXPECT_FALSE(r.mean[0]);
  EXPECT_FALSE(r.std[0]);
  EXPECT_EQ(r.zero_fraction[0], 0.0);
}

TEST(ChannelsProbe, MatchesAFloat64ReferencePerChannel) {
  const Shape shape = {4, 16, 12, 12};
  const Tensor t = normal_tensor(shape, -3.0, 2.0, 0x5eed);
  const ChannelsResult r = cpu::compute_channels(t, 1);
  const float* x = t.data<float>();
  for (int64_t c = 0; c < 16; ++c) {
    std::vector<float> channel;
    for (int64_t n = 0; n < 4; ++n)
      for (int64_t i = 0; i < 144; ++i) channel.push_back(x[(n * 16 + c) * 144 + i]);
    const ReferenceStats ref = reference_stats(channel);
    const double rel = 1e-5;  // DESIGN.md's accuracy target
    EXPECT_NEAR(*r.mean[c], static_cast<double>(ref.mean),
                rel * std::fabs(static_cast<double>(ref.mean)))
        << c;
    EXPECT_NEAR(*r.std[c], static_cast<double>(ref.std), rel * static_cast<double>(ref.std)) << c;
  }
}

// ---- clamp
// ---------------------------------------------------------------------------------------

TEST(ClampProbe, ClampsInPlaceKeepsNaNAndCountsChanges) {
  Tensor t = f32({-2, -1, 0, 0.5f, 1, 3, kNaN, kInf, -kInf});
  const ClampResult r = cpu::apply_clamp(t, {-1, 1}, nullptr);
  const std::vector<float> after = values_of(t);
  const std::vector<float> expected = {-1, -1, 0, 0.5f, 1, 1, kNaN, 1, -1};
  for (size_t i = 0; i < after.size(); ++i)
    EXPECT_EQ(std::bit_cast<uint32_t>(after[i]), std::bit_cast<uint32_t>(expected[i])) << i;
  EXPECT_EQ(r.changed, 4) << "-2, 3, +Inf and -Inf changed; NaN stays NaN as in torch.clamp";
  EXPECT_EQ(r.lo, -1.0);
  EXPECT_EQ(r.hi, 1.0);
}

TEST(ClampProbe, GradMaskMatchesTorchClampBackward) {
  // torch 1.13: x.clamp(-1, 1).backward(ones) gives these gradients for these inputs.
  Tensor t = f32({kNaN, -2, -1, 0, 1, 2, kInf, -kInf});
  ProbeRunEffects effects;
  run({probes::Clamp{-1, 1}}, t, &effects, {.channel_axis = 1, .want_grad_transforms = true});
  ASSERT_EQ(effects.grad_transforms.size(), 1u);
  const GradTransform& mask = effects.grad_transforms[0];
  EXPECT_EQ(mask.kind, GradTransform::Kind::Mask);
  EXPECT_EQ(mask.factor.shape(), t.shape());
  EXPECT_EQ(values_of(mask.factor), (std::vector<float>{0, 0, 1, 1, 1, 0, 0, 0}));
  EXPECT_TRUE(effects.changed);
}

TEST(ClampProbe, ComparesWithBoundsRoundedToFloatLikeTorch) {
  // torch: x = tensor([0.1]); x.clamp(0, 0.1) passes the gradient (0.1f <= float(0.1)).
  Tensor t = f32({0.1f});
  Tensor mask;
  const ClampResult r = cpu::apply_clamp(t, {0.0, 0.1}, &mask);
  EXPECT_EQ(mask.item(0), 1.0);
  EXPECT_EQ(r.changed, 0);
}

TEST(ClampProbe, RecordsNoGradTransformUnlessAsked) {
  Tensor t = f32({5});
  ProbeRunEffects effects;
  run({probes::Clamp{-1, 1}}, t, &effects);
  EXPECT_TRUE(effects.changed);
  EXPECT_TRUE(effects.grad_transforms.empty());
}

// ---- clipnorm
// ------------------------------------------------------------------------------------

// Expects the tensor's bits to equal what torch.nn.utils.clip_grad_norm_ left (printed by
// torch 1.13).
void expect_bits(const Tensor& t, const std::vector<uint32_t>& torch_bits) {
  const std::vector<float> got = values_of(t);
  ASSERT_EQ(got.size(), torch_bits.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_EQ(std::bit_cast<uint32_t>(got[i]), torch_bits[i]) << "element " << i << " = " << got[i];
}

TEST(ClipNormProbe, ScalesLikeClipGradNormBitForBit) {
  Tensor t = f32({3, 4});
  const ClipNormResult r = cpu::apply_clipnorm(t, {1.0});
  EXPECT_DOUBLE_EQ(r.norm, 5.0);
  EXPECT_EQ(r.max_norm, 1.0);
  EXPECT_NEAR(r.scale, 1.0 / (5.0 + 1e-6), 1e-7);
  expect_bits(t, {0x3f199998, 0x3f4cccca});
}

TEST(ClipNormProbe, KeepsTheEpsilonInTheDenominator) {
  // Tiny norms: 1e-6 is most of the denominator, so the result is far below max_norm.
  Tensor t = f32({3e-7f, 4e-7f});
  cpu::apply_clipnorm(t, {1e-7});
  expect_bits(t, {0x32abcc77, 0x32e5109e});
}

TEST(ClipNormProbe, LeavesTensorsWithinTheLimitUnchanged) {
  Tensor t = f32({0.3f, -0.4f});
  const ClipNormResult r = cpu::apply_clipnorm(t, {1.0});
  EXPECT_EQ(r.scale, 1.0);
  EXPECT_EQ(values_of(t), (std::vector<float>{0.3f, -0.4f}));
  Tensor zeros = f32({0, 0});
  EXPECT_EQ(cpu::apply_clipnorm(zeros, {1.0}).scale, 1.0);
}

TEST(ClipNormProbe, InfiniteNormScalesByZeroLikeClipGradNorm) {
  // clip_grad_norm_([1, inf, -2], 1.0) leaves [0, nan, -0] and returns inf.
  Tensor t = f32({1, kInf, -2});
  const ClipNormResult r = cpu::apply_clipnorm(t, {1.0});
  EXPECT_EQ(r.norm, std::numeric_limits<double>::infinity());
  EXPECT_EQ(r.scale, 0.0);
  expect_bits(t, {0x00000000, 0xffc00000, 0x80000000});
}

TEST(ClipNormProbe, NaNNormPoisonsTheTensorLikeClipGradNorm) {
  Tensor t = f32({1, kNaN, -2});
  const ClipNormResult r = cpu::apply_clipnorm(t, {1.0});
  EXPECT_TRUE(std::isnan(r.norm));
  EXPECT_TRUE(std::isnan(r.scale));
  for (float v : values_of(t)) EXPECT_TRUE(std::isnan(v));
}

TEST(ClipNormProbe, GradTransformIsTheScale) {
  Tensor t = f32({3, 4});
  ProbeRunEffects effects;
  const ProbeRecord record =
      run({probes::ClipNorm{1.0}}, t, &effects, {.channel_axis = 1, .want_grad_transforms = true});
  ASSERT_EQ(effects.grad_transforms.size(), 1u);
  const GradTransform& scale = effects.grad_transforms[0];
  EXPECT_EQ(scale.kind, GradTransform::Kind::Scale);
  EXPECT_EQ(scale.factor.numel(), 1);
  EXPECT_EQ(scale.factor.item(0), result_at<ClipNormResult>(record, 0).scale);
  EXPECT_TRUE(effects.changed);
}

TEST(ClipNormProbe, GradTransformsFollowTheOrderOfTheChangingProbes) {
  Tensor t = f32({3, -4, 10});
  ProbeRunEffects effects;
  run(probes::Clamp{-5, 5} | probes::Stats{} | probes::ClipNorm{1.0}, t, &effects,
      {.channel_axis = 1, .want_grad_transforms = true});
  ASSERT_EQ(effects.grad_transforms.size(), 2u);
  EXPECT_EQ(effects.grad_transforms[0].kind, GradTransform::Kind::Mask);
  EXPECT_EQ(effects.grad_transforms[1].kind, GradTransform::Kind::Scale);
  EXPECT_NEAR(effects.grad_transforms[1].factor.item(0), 1.0 / std::sqrt(50.0), 1e-6)
      << "clipnorm sees the clamped tensor [3, -4, 5]";
}

// ---- capture
// -------------------------------------------------------------------------------------

TEST(CaptureProbe, KeepsADeepCopyOfTheTensorAsItWasAtThatPoint) {
  Tensor t = f32({-3, 0.5f, 4}, {1, 3});
  const ProbeRecord record = run(probes::Capture{} | probes::Clamp{-1, 1} | probes::Capture{}, t);
  const Tensor& before = result_at<CaptureResult>(record, 0).tensor;
  const Tensor& after = result_at<CaptureResult>(record, 2).tensor;
  EXPECT_EQ(before.shape(), (Shape{1, 3}));
  EXPECT_EQ(values_of(before), (std::vector<float>{-3, 0.5f, 4}));
  EXPECT_EQ(values_of(after), (std::vector<float>{-1, 0.5f, 1}));
  t.data<float>()[1] = 42;
  EXPECT_EQ(after.item(1), 0.5) << "a capture must not share the hooked tensor's storage";
}

}  // namespace
}  // namespace hookrt
