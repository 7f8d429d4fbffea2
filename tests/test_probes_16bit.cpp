// Probes on F16 and BF16 tensors (src/cpu/probe_values.h): observing probes read the values widened
// to float, so they report exactly what they report on the F32 tensor of the same values; changing
// probes work in the tensor's dtype as PyTorch does (clamp bounds and clip_grad_norm_'s coefficient
// in that dtype, each product rounded to it), and captures keep the dtype.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "cpu/probe_values.h"
#include "cpu/probes.h"
#include "hookrt/probes.h"
#include "support/probe_results.h"

namespace hookrt {
namespace {

using namespace hookrt::testing;  // parse_list, nasty_tensor, finite_tensor, expect_same_*

constexpr DType k16BitTypes[] = {DType::BF16, DType::F16};

ProbeRecord run(const std::string& list, Tensor& tensor, ProbeRunEffects* effects = nullptr, int channel_axis = 1) {
  ProbeRecord record;
  ProbeRunOptions options;
  options.channel_axis = channel_axis;
  options.want_grad_transforms = effects != nullptr;
  const ProbeRunEffects got = cpu::run_probes(parse_list(list), tensor, record, options);
  if (effects) *effects = got;
  return record;
}

std::vector<float> floats(const Tensor& tensor) {
  const Tensor f = tensor.to(DType::F32);
  return std::vector<float>(f.data<float>(), f.data<float>() + f.numel());
}

TEST(Probes16Bit, ObservingProbesReportWhatTheyReportOnTheSameValuesInF32) {
  const std::string list = "stats,zeros,nonfinite,hist=16:-3:3,channels";
  for (const DType dtype : k16BitTypes) {
    Tensor narrow = nasty_tensor({3, 5, 4, 7}, 7).to(dtype);
    Tensor wide = narrow.to(DType::F32);
    const ProbeRecord got = run(list, narrow);
    const ProbeRecord want = run(list, wide);
    expect_same_results(got.results, want.results, 0.0, 0.0, dtype_name(dtype));
    EXPECT_EQ(narrow.dtype(), dtype) << "observing probes leave the tensor as it is";
  }
}

TEST(Probes16Bit, CountsInfinitiesThatOnlyTheNarrowTypeHas) {
  // 70000 overflows half to +Inf: the F16 tensor holds an infinity its F32 source did not.
  Tensor t = Tensor::from_vector(std::vector<float>{70000.0f, -1.0f, 0.0f}, {3}).to(DType::F16);
  const ProbeRecord record = run("stats,nonfinite", t);
  const auto& stats = std::get<StatsResult>(record.results.at(0));
  EXPECT_EQ(stats.posinf, 1);
  EXPECT_EQ(stats.count, 2);
  EXPECT_EQ(std::get<NonFiniteResult>(record.results.at(1)).posinf, 1);
}

TEST(Probes16Bit, ClampComparesWithBoundsInTheTensorsDtype) {
  // torch.clamp converts the bounds to the tensor's dtype: 1.001 is 1.0 in bfloat16, so 1.0 is
  // within [1.001, 2] and nothing changes; in F32 it is clamped up.
  Tensor narrow = Tensor::from_vector(std::vector<float>{1.0f, 1.5f}, {2}).to(DType::BF16);
  ProbeRunEffects effects;
  const ProbeRecord record = run("clamp=1.001:2", narrow, &effects, 0);
  EXPECT_EQ(std::get<ClampResult>(record.results.at(0)).changed, 0);
  EXPECT_EQ(floats(narrow), (std::vector<float>{1.0f, 1.5f}));
  ASSERT_EQ(effects.grad_transforms.size(), 1u);
  EXPECT_EQ(floats(effects.grad_transforms[0].factor), (std::vector<float>{1.0f, 1.0f}))
      << "clamp_backward compares in the tensor's dtype too";

  Tensor wide = Tensor::from_vector(std::vector<float>{1.0f, 1.5f}, {2});
  EXPECT_EQ(std::get<ClampResult>(run("clamp=1.001:2", wide, nullptr, 0).results.at(0)).changed, 1);
}

TEST(Probes16Bit, ClampRoundsItsBoundsToTheNarrowType) {
  // lo = 0.1 is 0.0999755859375 in half; hi = +Inf stays infinite.
  Tensor t = Tensor::from_vector(std::vector<float>{60000.0f, -5.0f}, {2}).to(DType::F16);
  const ProbeRecord record = run("clamp=0.1:inf", t, nullptr, 0);
  EXPECT_EQ(std::get<ClampResult>(record.results.at(0)).changed, 1);
  EXPECT_EQ(floats(t), (std::vector<float>{60000.0f, 0.0999755859375f}));
}

TEST(Probes16Bit, ClampRefusesABoundTheNarrowTypeCannotHoldBeforeAnyProbeRuns) {
  // torch.clamp refuses max=1e6 on a half tensor (it overflows the dtype) rather than clamping to
  // +Inf; the same bound is fine in BF16 and F32.
  Tensor half = Tensor::from_vector(std::vector<float>{1.0f, 2.0f}, {2}).to(DType::F16);
  ProbeRecord record;
  try {
    cpu::run_probes(parse_list("stats,clamp=0:1e6"), half, record, {});
    ADD_FAILURE() << "a bound of 1e6 on an F16 tensor was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find("1e+06"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("F16"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(record.results.empty()) << "nothing ran, not even the stats before the clamp";
  Tensor bf16 = half.to(DType::BF16);
  EXPECT_EQ(std::get<ClampResult>(run("clamp=0:1e6", bf16, nullptr, 0).results.at(0)).changed, 0);
}

TEST(Probes16Bit, ClipNormComputesTheCoefficientAndProductsInTheTensorsDtype) {
  // clip_grad_norm_ on [3, 4] with max_norm 1: the coefficient 1 / (5 + 1e-6) is rounded at each
  // step to the gradients' dtype, and so is each product.
  struct Case {
    DType dtype;
    float scale, first, second;
  };
  for (const Case c : {Case{DType::BF16, 0.2001953125f, 0.6015625f, 0.80078125f},
                       Case{DType::F16, 0.199951171875f, 0.599609375f, 0.7998046875f}}) {
    Tensor t = Tensor::from_vector(std::vector<float>{3.0f, 4.0f}, {2}).to(c.dtype);
    const ClipNormResult result = cpu::apply_clipnorm(t, {1.0});
    EXPECT_EQ(result.norm, 5.0) << dtype_name(c.dtype);
    EXPECT_EQ(result.scale, c.scale) << dtype_name(c.dtype);
    EXPECT_EQ(floats(t), (std::vector<float>{c.first, c.second})) << dtype_name(c.dtype);
    EXPECT_EQ(t.dtype(), c.dtype);
  }
  EXPECT_EQ(cpu::clip_coefficient(5.0, 1.0, DType::F32), 0.19999995827674866f)
      << "F32 keeps clip_grad_norm_'s float32 arithmetic: 1 / float(5 + 1e-6)";
}

TEST(Probes16Bit, ObservingProbesAfterAChangeSeeTheRoundedValues) {
  for (const DType dtype : k16BitTypes) {
    Tensor t = finite_tensor({2, 3, 5, 5}, 21).to(dtype);
    const ProbeRecord record = run("clipnorm=0.3,stats", t);
    const ClipNormResult& clip = std::get<ClipNormResult>(record.results.at(0));
    ASSERT_TRUE(std::isfinite(clip.scale) && clip.scale < 1.0) << "a tensor the clipnorm scales";
    const std::optional<double> max = std::get<StatsResult>(record.results.at(1)).max;
    ASSERT_TRUE(max.has_value());
    const double stored_max = *max;
    EXPECT_EQ(cpu::round_to_dtype(static_cast<float>(stored_max), dtype), stored_max)
        << dtype_name(dtype) << ": stats describe the values the tensor now holds";
    Tensor stored = t.to(DType::F32);
    const ProbeRecord again = run("stats", stored);
    expect_same_results({record.results.at(1)}, again.results, 0.0, 0.0, dtype_name(dtype));
  }
}

TEST(Probes16Bit, CaptureKeepsTheDtypeAndTheBits) {
  for (const DType dtype : k16BitTypes) {
    Tensor t = nasty_tensor({4, 6}, 5).to(dtype);
    const ProbeRecord record = run("capture", t);
    const Tensor& captured = std::get<CaptureResult>(record.results.at(0)).tensor;
    EXPECT_EQ(captured.dtype(), dtype);
    EXPECT_EQ(captured.shape(), t.shape());
    expect_same_floats(captured, t, 0.0, dtype_name(dtype));
    EXPECT_EQ(std::memcmp(captured.raw_data(), t.raw_data(), t.nbytes()), 0) << "NaN payloads too";
    EXPECT_NE(captured.raw_data(), t.raw_data()) << "a capture is a copy";
  }
}

TEST(Probes16Bit, ChangingProbesStoreAQuietNaNWithItsBits) {
  // torch.clamp passes NaN through; rewriting the tensor from floats keeps a bfloat16 quiet NaN's
  // sign and payload, and a half NaN's sign (the GPU kernels store the same bits).
  Tensor bf16 = Tensor::zeros({2}, DType::BF16);
  static_cast<uint16_t*>(bf16.raw_data())[0] = 0xFFC1;  // -NaN with a payload
  static_cast<uint16_t*>(bf16.raw_data())[1] = 0x4000;  // 2.0, clamped to 1
  run("clamp=-1:1", bf16, nullptr, 0);
  EXPECT_EQ(static_cast<uint16_t*>(bf16.raw_data())[0], 0xFFC1);
  EXPECT_EQ(static_cast<uint16_t*>(bf16.raw_data())[1], 0x3F80);
  Tensor half = Tensor::zeros({1}, DType::F16);
  static_cast<uint16_t*>(half.raw_data())[0] = 0xFE00;  // -NaN
  run("clamp=-1:1", half, nullptr, 0);
  EXPECT_EQ(static_cast<uint16_t*>(half.raw_data())[0], 0xFE00);
}

TEST(Probes16Bit, OtherDtypesAreRefusedNamingTheDtype) {
  for (const DType dtype : {DType::F64, DType::I64, DType::I32, DType::U8}) {
    Tensor t = Tensor::zeros({3}, dtype);
    ProbeRecord record;
    try {
      cpu::run_probes(parse_list("stats"), t, record, {});
      ADD_FAILURE() << dtype_name(dtype) << " was probed";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(dtype_name(dtype)), std::string::npos) << e.what();
    }
    EXPECT_TRUE(record.results.empty());
  }
}

TEST(RoundToDtype, RoundsToNearestEvenAndKeepsF32) {
  EXPECT_EQ(cpu::round_to_dtype(1.001f, DType::F32), 1.001f);
  EXPECT_EQ(cpu::round_to_dtype(1.001f, DType::BF16), 1.0f);
  EXPECT_EQ(cpu::round_to_dtype(1.0f + 1.0f / 256, DType::BF16), 1.0f) << "a tie goes to the even neighbour";
  EXPECT_EQ(cpu::round_to_dtype(1.0f + 3.0f / 256, DType::BF16), 1.0f + 4.0f / 256);
  EXPECT_EQ(cpu::round_to_dtype(70000.0f, DType::F16), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(cpu::round_to_dtype(std::numeric_limits<float>::quiet_NaN(), DType::F16)));
}

}  // namespace
}  // namespace hookrt
