// Probe result comparisons (see probe_results.h).
#include "support/probe_results.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <sstream>

#include "random.h"

namespace hookrt::testing {

ProbeList parse_list(const std::string& text) {
  ProbeList list;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) list.push_back(parse_probe(item));
  return list;
}

// Seeded normal values with NaN, +-Inf, 0, -0 and the clamp/hist bounds sprinkled in.
Tensor nasty_tensor(const Shape& shape, uint64_t seed, double offset, double spread) {
  Pcg32 rng(seed);
  Tensor t = Tensor::empty(shape);
  float* p = t.data<float>();
  const float specials[] = {kNaN, kInf, -kInf, 0.0f, -0.0f, 1.0f, -1.0f, 2.0f, -2.0f};
  for (int64_t i = 0; i < t.numel(); ++i) {
    const uint32_t pick = rng.below(16);
    p[i] = pick < 9 && rng.below(4) == 0 ? specials[pick] : static_cast<float>(offset + spread * rng.normal());
  }
  return t;
}

Tensor finite_tensor(const Shape& shape, uint64_t seed, double offset, double spread) {
  Tensor t = nasty_tensor(shape, seed, offset, spread);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(p[i])) p[i] = 0.0f;
  return t;
}

void expect_near_rel(double got, double want, double scale, double rel, const std::string& what) {
  if (std::isnan(want)) {
    EXPECT_TRUE(std::isnan(got)) << what;
    return;
  }
  if (std::isinf(want)) {
    EXPECT_EQ(got, want) << what;
    return;
  }
  EXPECT_NEAR(got, want, rel * (std::fabs(want) + scale)) << what;
}

void expect_same_optional(const std::optional<double>& got, const std::optional<double>& want, double scale,
                          double rel, const std::string& what) {
  ASSERT_EQ(got.has_value(), want.has_value()) << what;
  if (want) expect_near_rel(*got, *want, scale, rel, what);
}

// Same values bit for bit where rel is 0 (NaN matching NaN), else within rel of each other.
void expect_same_floats(const Tensor& got, const Tensor& want, double rel, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  if (want.dtype() == DType::F16 || want.dtype() == DType::BF16) {  // as floats: every NaN is alike
    expect_same_floats(got.to(DType::F32), want.to(DType::F32), rel, what);
    return;
  }
  if (want.dtype() != DType::F32) {  // counters such as num_batches_tracked: exactly
    EXPECT_EQ(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()), 0) << what;
    return;
  }
  const float* g = got.data<float>();
  const float* w = want.data<float>();
  for (int64_t i = 0; i < want.numel(); ++i) {
    if (std::isnan(w[i])) {
      ASSERT_TRUE(std::isnan(g[i])) << what << " element " << i;
    } else if (rel == 0 || std::isinf(w[i])) {
      ASSERT_EQ(g[i], w[i]) << what << " element " << i;
    } else {
      ASSERT_NEAR(g[i], w[i], rel * std::fabs(w[i])) << what << " element " << i;
    }
  }
}

// Counts, extrema and histograms exactly; sums, means and stds within rel. A mean's rounding is
// relative to the size of the values summed, not to a mean that cancels to near zero, so its
// tolerance scales with the mean absolute value (l1 / count) too.
void expect_same_results(const std::vector<ProbeResult>& got, const std::vector<ProbeResult>& want, double rel,
                         double tensor_rel, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    const std::string where = what + " result " + std::to_string(i);
    ASSERT_EQ(got[i].index(), want[i].index()) << where;
    if (const auto* w = std::get_if<StatsResult>(&want[i])) {
      const auto& g = std::get<StatsResult>(got[i]);
      EXPECT_EQ(g.count, w->count) << where;
      EXPECT_EQ(g.nan, w->nan) << where;
      EXPECT_EQ(g.posinf, w->posinf) << where;
      EXPECT_EQ(g.neginf, w->neginf) << where;
      EXPECT_EQ(g.min, w->min) << where;
      EXPECT_EQ(g.max, w->max) << where;
      EXPECT_EQ(g.abs_max, w->abs_max) << where;
      const double mean_abs = w->count > 0 ? w->l1 / static_cast<double>(w->count) : 0.0;
      expect_same_optional(g.mean, w->mean, mean_abs, rel, where + " mean");
      expect_same_optional(g.std, w->std, 0.0, rel, where + " std");
      expect_near_rel(g.l1, w->l1, 0.0, rel, where + " l1");
      expect_near_rel(g.l2, w->l2, 0.0, rel, where + " l2");
    } else if (const auto* w = std::get_if<NonFiniteResult>(&want[i])) {
      const auto& g = std::get<NonFiniteResult>(got[i]);
      EXPECT_EQ(g.nan, w->nan) << where;
      EXPECT_EQ(g.posinf, w->posinf) << where;
      EXPECT_EQ(g.neginf, w->neginf) << where;
    } else if (const auto* w = std::get_if<ZerosResult>(&want[i])) {
      const auto& g = std::get<ZerosResult>(got[i]);
      EXPECT_EQ(g.zeros, w->zeros) << where;
      EXPECT_EQ(g.zero_fraction, w->zero_fraction) << where;
      EXPECT_EQ(g.channels, w->channels) << where;
      EXPECT_EQ(g.dead_channels, w->dead_channels) << where;
    } else if (const auto* w = std::get_if<HistResult>(&want[i])) {
      const auto& g = std::get<HistResult>(got[i]);
      EXPECT_EQ(g.bins, w->bins) << where;
      EXPECT_EQ(g.lo, w->lo) << where;
      EXPECT_EQ(g.hi, w->hi) << where;
      EXPECT_EQ(g.counts, w->counts) << where;
      EXPECT_EQ(g.below, w->below) << where;
      EXPECT_EQ(g.above, w->above) << where;
    } else if (const auto* w = std::get_if<ChannelsResult>(&want[i])) {
      const auto& g = std::get<ChannelsResult>(got[i]);
      ASSERT_EQ(g.mean.size(), w->mean.size()) << where;
      EXPECT_EQ(g.zero_fraction, w->zero_fraction) << where;
      for (size_t c = 0; c < w->mean.size(); ++c) {
        const double spread = w->std[c].value_or(0.0);
        expect_same_optional(g.mean[c], w->mean[c], spread, rel, where + " mean of channel " + std::to_string(c));
        expect_same_optional(g.std[c], w->std[c], 0.0, rel, where + " std of channel " + std::to_string(c));
      }
    } else if (const auto* w = std::get_if<ClampResult>(&want[i])) {
      const auto& g = std::get<ClampResult>(got[i]);
      EXPECT_EQ(g.lo, w->lo) << where;
      EXPECT_EQ(g.hi, w->hi) << where;
      EXPECT_EQ(g.changed, w->changed) << where;
    } else if (const auto* w = std::get_if<ClipNormResult>(&want[i])) {
      const auto& g = std::get<ClipNormResult>(got[i]);
      EXPECT_EQ(g.max_norm, w->max_norm) << where;
      expect_near_rel(g.norm, w->norm, 0.0, rel, where + " norm");
      // The scale is a float computed from the norm: equal unless the norms round apart.
      expect_near_rel(g.scale, w->scale, 0.0, tensor_rel, where + " scale");
    } else if (const auto* w = std::get_if<CaptureResult>(&want[i])) {
      expect_same_floats(std::get<CaptureResult>(got[i]).tensor, w->tensor, tensor_rel, where + " capture");
    }
  }
}

double clipnorm_tensor_rel(DType dtype) { return dtype == DType::F32 ? 1e-6 : 0.0; }

}  // namespace hookrt::testing
