// The fused GPU probe engine against the CPU probe engine, through the Backend interface: every
// probe alone and together, the changing probes in every order, sizes that are not multiples of
// 4, a tensor whose data does not start on a chunk boundary, empty and one-element tensors, a
// tensor larger than the grid or past 2^32 elements, counters left zero for the next run, gradient
// transforms, halting, bit-identical results from run to run, and BF16 and F16 tensors. Each test
// skips, saying why, where there is no GPU. The comparisons are those of test_probe_plan.cpp
// (tests/support/probe_results), which holds the host reference to the same CPU engine.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cpu/probes.h"
#include "hookrt/backend.h"
#include "hookrt/probes.h"
#include "random.h"
#include "support/probe_results.h"
#include "support/gpu.h"

namespace hookrt {
namespace {

using namespace hookrt::testing;  // parse_list, nasty_tensor, finite_tensor, expect_same_*

// DESIGN.md's accuracy promise for fp32 tensors: mean/std/l1/l2 within 1e-5 relative of a float64
// reference (the kernels sum chunks of 4 in F32 and everything else in fp64, so they are much
// closer than that in practice).
constexpr double kRel = 1e-5;
// Tensors after a clipnorm: within clipnorm_tensor_rel (support/probe_results.h) of the CPU's.

bool has_clipnorm(const ProbeList& list) {
  for (const Probe& probe : list)
    if (std::holds_alternative<probes::ClipNorm>(probe)) return true;
  return false;
}

struct GpuRun {
  ProbeRecord record;
  ProbeRunEffects effects;
  Tensor tensor;  // host copy of the probed tensor afterwards
};

// Runs `list` on the GPU on `device_tensor` (already holding the values) and brings back what
// came out.
GpuRun run_on_gpu(Backend& gpu, const ProbeList& list, Tensor& device_tensor, const ProbeRunOptions& options) {
  GpuRun run;
  run.effects = testing::run_probes_now(gpu, list, device_tensor, run.record, options);
  run.tensor = gpu.to_host(device_tensor);
  return run;
}

// The GPU run of `list` on `device_tensor` against the CPU engine's run on `host` (same values).
void expect_gpu_matches_cpu(Backend& gpu, const ProbeList& list, const Tensor& host, Tensor& device_tensor,
                            const ProbeRunOptions& options, const std::string& what) {
  Tensor cpu_tensor = host.clone();
  ProbeRecord cpu_record;
  const ProbeRunEffects cpu_effects = cpu::run_probes(list, cpu_tensor, cpu_record, options);
  const GpuRun got = run_on_gpu(gpu, list, device_tensor, options);

  const double tensor_rel = has_clipnorm(list) ? clipnorm_tensor_rel(host.dtype()) : 0.0;
  expect_same_results(got.record.results, cpu_record.results, kRel, tensor_rel, what);
  expect_same_floats(got.tensor, cpu_tensor, tensor_rel, what + " tensor");
  EXPECT_EQ(got.effects.halt, cpu_effects.halt) << what;
  EXPECT_EQ(got.effects.changed, cpu_effects.changed) << what;
  ASSERT_EQ(got.effects.grad_transforms.size(), cpu_effects.grad_transforms.size()) << what;
  for (size_t i = 0; i < cpu_effects.grad_transforms.size(); ++i) {
    const GradTransform& g = got.effects.grad_transforms[i];
    const GradTransform& w = cpu_effects.grad_transforms[i];
    ASSERT_EQ(g.kind, w.kind) << what;
    ASSERT_EQ(g.factor.device(), Device::CUDA) << what << " transform " << i << " stays on the device";
    ASSERT_EQ(g.factor.dtype(), DType::F32) << what;
    expect_same_floats(gpu.to_host(g.factor), w.factor, g.kind == GradTransform::Kind::Scale ? clipnorm_tensor_rel(host.dtype()) : 0.0,
                       what + " transform " + std::to_string(i));
  }
}

void expect_gpu_matches_cpu(Backend& gpu, const std::string& list_text, const Tensor& host, int channel_axis,
                            bool want_grad_transforms = true) {
  ProbeRunOptions options;
  options.channel_axis = channel_axis;
  options.want_grad_transforms = want_grad_transforms;
  Tensor device_tensor = gpu.from_host(host);
  expect_gpu_matches_cpu(gpu, parse_list(list_text), host, device_tensor, options,
                         "[" + list_text + "] on " + shape_string(host.shape()) + " axis " +
                             std::to_string(channel_axis));
}

const std::vector<std::string> kEveryProbeAlone = {
    "stats", "zeros", "nonfinite", "nonfinite=halt", "hist=8:-2:2", "hist=1:0:1", "hist=5000:-3:3",
    "channels", "clamp=-1:1", "clamp=0:inf", "clipnorm=1", "clipnorm=1e9", "capture"};

std::string every_probe_together() {
  std::string all;
  for (const std::string& probe : kEveryProbeAlone) all += (all.empty() ? "" : ",") + probe;
  return all;
}

// The shared orders, and histograms too large for the kernel's shared memory.
const std::vector<std::string> kOrders = [] {
  std::vector<std::string> orders = kChangingProbeOrders;
  orders.push_back("hist=9000:-2:2,hist=9000:-2:2,clamp=-1:1,hist=9000:-2:2");
  return orders;
}();

TEST(GpuProbes, MatchTheCpuEngineForEveryProbeAloneOnSizesThatAreNotMultiplesOfFour) {
  HOOKRT_GPU_OR_SKIP(gpu);
  uint64_t seed = 1;
  for (const int64_t n : {1, 3, 5, 7, 1023, 4099})
    for (const std::string& list : kEveryProbeAlone) expect_gpu_matches_cpu(*gpu, list, nasty_tensor({n}, seed++), 0);
}

TEST(GpuProbes, MatchTheCpuEngineForEveryProbeTogether) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, every_probe_together(), nasty_tensor({4, 6, 5, 7}, 11), 1);
  expect_gpu_matches_cpu(*gpu, every_probe_together(), nasty_tensor({8, 64, 9, 9}, 12), 1);
  expect_gpu_matches_cpu(*gpu, every_probe_together(), nasty_tensor({1}, 13), 1);
}

TEST(GpuProbes, KeepTheOrderRuleForChangingProbesInEveryOrder) {
  HOOKRT_GPU_OR_SKIP(gpu);
  uint64_t seed = 100;
  for (const std::string& list : kOrders) {
    expect_gpu_matches_cpu(*gpu, list, nasty_tensor({3, 4, 5, 6}, seed++), 1);
    expect_gpu_matches_cpu(*gpu, list, nasty_tensor({16, 32, 7, 7}, seed++, 0.0, 0.05), 1);
    expect_gpu_matches_cpu(*gpu, list, nasty_tensor({1021}, seed++), 0, false);
  }
}

TEST(GpuProbes, MatchPerChannelProbesOnEveryChannelAxis) {
  HOOKRT_GPU_OR_SKIP(gpu);
  uint64_t seed = 200;
  const std::string list = "zeros,channels,clamp=-0.5:inf,zeros,channels";
  for (const int axis : {0, 1, 2, 3, -1, -2, 7, -9})
    expect_gpu_matches_cpu(*gpu, list, nasty_tensor({3, 40, 5, 9}, seed++), axis);
  // Dead channels among live ones, on a ReLU-like tensor.
  Tensor relu = nasty_tensor({4, 64, 3, 3}, seed++);
  float* p = relu.data<float>();
  for (int64_t i = 0; i < relu.numel(); ++i)
    if ((i / 9) % 64 < 20 && !(p[i] <= 0)) p[i] = -p[i];
  expect_gpu_matches_cpu(*gpu, list, relu, 1);
  // A rank-1 tensor: every element is its own channel.
  expect_gpu_matches_cpu(*gpu, list, nasty_tensor({1000}, seed++), 0);
}

// Without a channels probe, zeros finds dead channels from a flat walk (an alive flag per
// channel): chunks of four elements that cross rows, channels of one element, and dead channels
// among live ones must all come out as the CPU's.
TEST(GpuProbes, MatchDeadChannelsFromTheFlatWalkOnEveryLayout) {
  HOOKRT_GPU_OR_SKIP(gpu);
  uint64_t seed = 300;
  const std::string list = "zeros,stats,nonfinite";
  for (const Shape& shape : {Shape{7, 3}, Shape{5, 3, 1}, Shape{6, 5, 2}, Shape{3, 40, 5, 9}, Shape{1001}})
    for (const int axis : {0, 1, -1}) {
      // Most values <= 0, so that a channel lives only through an odd element or two.
      Tensor t = nasty_tensor(shape, seed++, -2.5, 1.0);
      expect_gpu_matches_cpu(*gpu, list, t, axis);
    }
  Tensor relu = nasty_tensor({4, 64, 3, 3}, seed++);
  float* p = relu.data<float>();
  for (int64_t i = 0; i < relu.numel(); ++i)
    if ((i / 9) % 64 < 20 && !(p[i] <= 0)) p[i] = -p[i];
  expect_gpu_matches_cpu(*gpu, list, relu, 1);
  expect_gpu_matches_cpu(*gpu, "clamp=-1:0,zeros", relu, 1);  // every channel dead after the clamp
}

TEST(GpuProbes, MatchOnEmptyAndOneElementTensors) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const std::string all = "stats,zeros,nonfinite,hist=4:0:1,channels,clamp=0:1,clipnorm=1,capture";
  for (const Shape& shape : {Shape{0}, Shape{4, 0, 3}, Shape{0, 5}})
    for (const int axis : {0, 1, -1}) expect_gpu_matches_cpu(*gpu, all, Tensor::empty(shape), axis);
  expect_gpu_matches_cpu(*gpu, all, Tensor::full({}, -3.0), 1);
  expect_gpu_matches_cpu(*gpu, all, Tensor::full({1, 1, 1, 1}, 0.25), 1);
  expect_gpu_matches_cpu(*gpu, all, Tensor::from_vector(std::vector<float>{kNaN}, {1}), 0);
}

// Vanishing and exploding values, which stats exists to report: the common pass keeps each chunk's
// offsets in F32, and those whose squares F32 cannot hold (below 1e-19, above 1e19, sums of
// |x| past FLT_MAX) must take the fp64 path, matching the CPU's float64 reference all the same.
TEST(GpuProbes, MatchTheCpuEngineOnVanishingAndExplodingValues) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (const double spread : {1e-30, 1e-22, 1e-19, 4e18, 1e25, 1e37}) {
    Tensor t = Tensor::empty({8, 16, 7, 9});  // rows that do not split into chunks of 4
    Pcg32 rng(static_cast<uint64_t>(std::log10(spread) + 100));
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(spread * rng.normal());
    p[3] = 0.0f;
    p[10] = std::numeric_limits<float>::max();  // with the spread's values: offsets that overflow F32
    for (const std::string list : {"stats,zeros,nonfinite", "stats", "stats,clamp=-1e38:1e38,stats"})
      expect_gpu_matches_cpu(*gpu, list, t, 1);
  }
}


// ---- F16 and BF16 tensors: read as floats, changes rounded to the dtype (cpu/probe_values.h) ----

constexpr DType k16BitTypes[] = {DType::BF16, DType::F16};

TEST(GpuProbes, MatchTheCpuEngineForEveryProbeOnBfloat16AndHalfTensors) {
  HOOKRT_GPU_OR_SKIP(gpu);
  uint64_t seed = 600;
  for (const DType dtype : k16BitTypes) {
    for (const int64_t n : {1, 3, 5, 7, 1023, 4099})
      for (const std::string& list : kEveryProbeAlone)
        expect_gpu_matches_cpu(*gpu, list, nasty_tensor({n}, seed++).to(dtype), 0);
    expect_gpu_matches_cpu(*gpu, every_probe_together(), nasty_tensor({8, 64, 9, 9}, seed++).to(dtype), 1);
    for (const std::string& list : kOrders) {
      expect_gpu_matches_cpu(*gpu, list, nasty_tensor({3, 4, 5, 6}, seed++).to(dtype), 1);
      expect_gpu_matches_cpu(*gpu, list, nasty_tensor({1021}, seed++, 0.0, 0.05).to(dtype), 0);
      // Finite values: each clipnorm's scale is finite, so real products are rounded, by groups of
      // chunks as well as alone.
      expect_gpu_matches_cpu(*gpu, list, finite_tensor({8, 64, 9, 9}, seed++).to(dtype), 1);
      expect_gpu_matches_cpu(*gpu, list, finite_tensor({4099}, seed++, 0.0, 0.05).to(dtype), 0);
    }
  }
}

// A chunk of four is one 16-byte load for F32 and one 8-byte load for F16 and BF16: views one to
// three elements into an allocation of sentinels start the tensor at every place in its first
// chunk, and the sentinels must be left as they were.
TEST(GpuProbes, MatchOnATensorWhoseDataIsNotOnAChunkBoundary) {
  HOOKRT_GPU_OR_SKIP(gpu);
  uint64_t seed = 400;
  for (const DType dtype : {DType::F32, DType::BF16, DType::F16})
    for (const int64_t n : {int64_t{1}, int64_t{3}, int64_t{4}, int64_t{5}, int64_t{1023}, int64_t{4099}})
      for (const size_t offset : {size_t{1}, size_t{2}, size_t{3}}) {
        Tensor backing = gpu->from_host(Tensor::full({n + 4}, 7.0, dtype));
        Tensor view(backing.storage(), {n}, dtype, offset * dtype_size(dtype));
        // Finite values at one offset, so that the clipnorm's scale is finite there.
        const Tensor host = (offset == 2 ? finite_tensor({n}, seed++) : nasty_tensor({n}, seed++)).to(dtype);
        gpu->copy(host, view);
        ProbeRunOptions options;
        options.channel_axis = 0;
        options.want_grad_transforms = true;
        const std::string list = "stats,clamp=-1:1,capture,hist=8:-2:2,clipnorm=1,zeros,channels,nonfinite";
        expect_gpu_matches_cpu(*gpu, parse_list(list), host, view, options,
                               dtype_name(dtype) + " [" + list + "] at offset " + std::to_string(offset) + ", n " +
                                   std::to_string(n));
        const Tensor all = gpu->to_host(backing);
        for (int64_t i = 0; i < n + 4; ++i)
          if (i < static_cast<int64_t>(offset) || i >= n + static_cast<int64_t>(offset))
            EXPECT_EQ(all.item(i), 7.0) << dtype_name(dtype) << " sentinel " << i;
      }
}

TEST(GpuProbes, RefuseOtherDtypesInTheCpuEnginesWords) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (const DType dtype : {DType::F64, DType::I64, DType::U8}) {
    Tensor t = gpu->from_host(Tensor::zeros({3}, dtype));
    ProbeRecord record;
    try {
      gpu->run_probes(parse_list("stats"), t, record, {});
      ADD_FAILURE() << dtype_name(dtype) << " was probed";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("probes run on F32, F16 and BF16 tensors, got " + dtype_name(dtype)),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(GpuProbes, RefuseAClampBoundTheDtypeCannotHoldLikeTheCpuEngine) {
  HOOKRT_GPU_OR_SKIP(gpu);
  Tensor half = gpu->from_host(Tensor::zeros({4}, DType::F16));
  ProbeRecord record;
  try {
    testing::run_probes_now(*gpu, parse_list("stats,clamp=0:1e6"), half, record, {});
    ADD_FAILURE() << "a bound of 1e6 on an F16 tensor was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput) << e.what();
  }
  EXPECT_TRUE(record.results.empty());
  EXPECT_TRUE(gpu->collect_deferred_probe_results().empty()) << "nothing was queued";
}

TEST(GpuProbes, RoundClipnormsInTheTensorsDtypeLikeTheCpuEngine) {
  HOOKRT_GPU_OR_SKIP(gpu);
  // clip_grad_norm_ on [3, 4] with max_norm 1: the scale and products in the dtype (the CPU
  // engine's own test spells out the bits).
  for (const DType dtype : k16BitTypes) {
    const Tensor host = Tensor::from_vector(std::vector<float>{3.0f, 4.0f}, {2}).to(dtype);
    Tensor device_tensor = gpu->from_host(host);
    ProbeRecord record;
    testing::run_probes_now(*gpu, parse_list("clipnorm=1"), device_tensor, record, {});
    Tensor cpu_tensor = host.clone();
    const ClipNormResult want = cpu::apply_clipnorm(cpu_tensor, {1.0});
    EXPECT_EQ(std::get<ClipNormResult>(record.results.at(0)).scale, want.scale) << dtype_name(dtype);
    expect_same_floats(gpu->to_host(device_tensor), cpu_tensor, 0.0, dtype_name(dtype));
  }
}

TEST(GpuProbes, MatchOnATensorLargerThanTheGrid) {
  HOOKRT_GPU_OR_SKIP(gpu);
  // 20M elements: many grid-stride iterations per thread in flat and row passes alike.
  const Tensor host = nasty_tensor({20, 1000, 1000}, 500, 0.5, 2.0);
  expect_gpu_matches_cpu(*gpu, "stats,nonfinite,hist=64:-4:4,zeros,clamp=-3:3,channels,clipnorm=100,stats", host, 1);
  expect_gpu_matches_cpu(*gpu, "stats,capture", host, 0, false);
}

TEST(GpuProbes, GiveBitIdenticalResultsOnEveryRun) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor host = nasty_tensor({16, 64, 33, 33}, 600, 0.1, 3.0);
  const ProbeList list = parse_list("stats,channels,clipnorm=10,stats,hist=32:-2:2,zeros");
  ProbeRunOptions options;
  Tensor first_tensor = gpu->from_host(host);
  const GpuRun first = run_on_gpu(*gpu, list, first_tensor, options);
  for (int repeat = 0; repeat < 3; ++repeat) {
    Tensor again_tensor = gpu->from_host(host);
    const GpuRun again = run_on_gpu(*gpu, list, again_tensor, options);
    expect_same_results(again.record.results, first.record.results, 0.0, 0.0, "run " + std::to_string(repeat));
    expect_same_floats(again.tensor, first.tensor, 0.0, "tensor of run " + std::to_string(repeat));
  }
}

// A flat pass finishes in its last block and zeroes its counters (alive flags, histogram bins,
// the count of finished blocks) behind it, for the next run: a run after one with many live
// channels and full bins must count from zero, on a global histogram and a shared one alike.
TEST(GpuProbes, FlatPassesLeaveTheirCountersZeroForTheNextRun) {
  HOOKRT_GPU_OR_SKIP(gpu);
  Tensor lively = nasty_tensor({8, 96, 17, 17}, 650, 0.5, 2.0);
  Tensor dead = Tensor::full({3, 40, 5, 5}, -1.0);
  dead.data<float>()[7] = 2.0f;  // one live channel
  for (const char* list : {"zeros,hist=9000:-2:2,stats", "hist=16:-2:2,zeros"})
    for (int repeat = 0; repeat < 2; ++repeat) {
      expect_gpu_matches_cpu(*gpu, list, lively, 1);
      expect_gpu_matches_cpu(*gpu, list, dead, 1);
      expect_gpu_matches_cpu(*gpu, list, dead, 0);
    }
}

// Past 2^32 elements the flat walk finds an element's channel in 64-bit arithmetic (below, in
// 32-bit, for speed): on a tensor of 4.5e9 elements (18 GB) the channel of an element beyond
// 2^32 must not wrap onto another. Known values stand in for the CPU reference, which would take
// 18 GB of host memory and minutes.
TEST(GpuProbes, FindDeadChannelsAndCountBinsPastTwoToThe32Elements) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const int64_t outer = 2, channels = 3, inner = 750'000'000, n = outer * channels * inner;
  Tensor big;
  try {
    big = gpu->empty({outer, channels, inner}, DType::F32);
  } catch (const Error& error) {
    GTEST_SKIP() << "needs 18 GB of device memory: " << error.what();
  }
  gpu->fill(big, -1.0);
  // Element i lies in row i / inner = o * channels + c.
  auto set = [&](int64_t i, float value) {
    Tensor one(big.storage(), {1}, DType::F32, static_cast<size_t>(i) * sizeof(float));
    gpu->copy(Tensor::from_vector(std::vector<float>{value}, {1}), one);
  };
  set(4'294'967'300, 0.0f);    // row 5 (o 1, c 2), past 2^32: a zero
  set(4'400'000'000, 2.0f);    // row 5: channel 2 lives; wrapped to 32 bits it would be row 0
  set(800'000'000, 3.0f);      // row 1: channel 1 lives
  ProbeRecord record;
  ProbeRunOptions options;
  options.channel_axis = 1;
  testing::run_probes_now(*gpu, parse_list("zeros,stats"), big, record, options);
  ASSERT_EQ(record.results.size(), 2u);
  const auto& zeros = std::get<ZerosResult>(record.results[0]);
  EXPECT_EQ(zeros.zeros, 1);
  EXPECT_EQ(zeros.channels, channels);
  EXPECT_EQ(zeros.dead_channels, 1) << "channel 0 alone is dead";
  const auto& stats = std::get<StatsResult>(record.results[1]);
  EXPECT_EQ(stats.count, n);
  EXPECT_EQ(stats.min, -1.0);
  EXPECT_EQ(stats.max, 3.0);

  // With a channels probe the pass walks rows, and these 6 rows make one block: one block counts
  // all 4.5e9 elements into the histogram, past what 32-bit bins hold. 2.0 is hi, the last bin's.
  ProbeRecord binned;
  testing::run_probes_now(*gpu, parse_list("hist=4:-2:2,channels"), big, binned, options);
  ASSERT_EQ(binned.results.size(), 2u);
  const auto& hist = std::get<HistResult>(binned.results[0]);
  EXPECT_EQ(hist.counts, (std::vector<int64_t>{0, n - 3, 1, 1}));
  EXPECT_EQ(hist.below, 0);
  EXPECT_EQ(hist.above, 1);

  // The same storage as one row of 4.5e9 elements: one warp walks it all, and the stats beside
  // the channels probe count past 2^32 within that warp.
  Tensor one_row(big.storage(), {1, 1, n}, DType::F32);
  ProbeRecord row;
  testing::run_probes_now(*gpu, parse_list("stats,zeros,channels"), one_row, row, options);
  ASSERT_EQ(row.results.size(), 3u);
  const auto& row_stats = std::get<StatsResult>(row.results[0]);
  EXPECT_EQ(row_stats.count, n);
  EXPECT_EQ(row_stats.min, -1.0);
  EXPECT_EQ(row_stats.max, 3.0);
  const double mean = (8.0 - static_cast<double>(n)) / static_cast<double>(n);  // n - 3 values of -1, and 0, 2, 3
  ASSERT_TRUE(row_stats.mean.has_value());
  EXPECT_NEAR(*row_stats.mean, mean, 1e-12);
  EXPECT_EQ(std::get<ZerosResult>(row.results[1]).zeros, 1);
  const auto& channel = std::get<ChannelsResult>(row.results[2]);
  ASSERT_EQ(channel.mean.size(), 1u);
  ASSERT_TRUE(channel.mean[0].has_value());
  EXPECT_NEAR(*channel.mean[0], mean, 1e-12);
}

TEST(GpuProbes, LeaveGradTransformsThatTheBackendCanApply) {
  HOOKRT_GPU_OR_SKIP(gpu);
  // Finite values, so that the norm, the scale and every product are finite numbers.
  Tensor host = nasty_tensor({2, 8, 4, 4}, 700);
  for (int64_t i = 0; i < host.numel(); ++i)
    if (!std::isfinite(host.data<float>()[i])) host.data<float>()[i] = 0.5f;
  ProbeRunOptions options;
  options.want_grad_transforms = true;
  Tensor probed = gpu->from_host(host);
  ProbeRecord record;
  const ProbeRunEffects effects =
      testing::run_probes_now(*gpu, parse_list("clamp=-1:1,clipnorm=0.5"), probed, record, options);
  ASSERT_EQ(effects.grad_transforms.size(), 2u);
  EXPECT_EQ(effects.grad_transforms[0].kind, GradTransform::Kind::Mask);
  EXPECT_EQ(effects.grad_transforms[0].factor.shape(), host.shape());
  EXPECT_EQ(effects.grad_transforms[1].kind, GradTransform::Kind::Scale);
  EXPECT_EQ(effects.grad_transforms[1].factor.numel(), 1);
  // grad * mask * scale, as backward applies them.
  Tensor grad = gpu->from_host(Tensor::full(host.shape(), 2.0));
  for (const GradTransform& transform : effects.grad_transforms) gpu->multiply_(grad, transform.factor);
  const Tensor got = gpu->to_host(grad);
  const Tensor mask = gpu->to_host(effects.grad_transforms[0].factor);
  const float scale = static_cast<float>(std::get<ClipNormResult>(record.results[1]).scale);
  for (int64_t i = 0; i < host.numel(); ++i)
    ASSERT_EQ(got.data<float>()[i], 2.0f * mask.data<float>()[i] * scale) << "element " << i;
}

TEST(GpuProbes, ReportHaltOnlyForAHaltingNonfiniteProbeThatFindsSomething) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, "nonfinite=halt", Tensor::from_vector(std::vector<float>{1, 2, 3}, {3}), 0);
  expect_gpu_matches_cpu(*gpu, "nonfinite=halt", Tensor::from_vector(std::vector<float>{1, kNaN, 3}, {3}), 0);
  expect_gpu_matches_cpu(*gpu, "nonfinite", Tensor::from_vector(std::vector<float>{kInf, 0}, {2}), 0);
}

}  // namespace
}  // namespace hookrt
