// The probe pass's per-thread stats (src/probe_thread_stats.h, run by the CUDA kernels) against a
// float64 reference, on the host: a thread's stream of groups (4 chunks of 4 values, as a thread
// loads them, and the groups of one chunk or one value left at the ends of a range) over
// ordinary data, which takes the fast path, and over NaN, Inf, exploding and vanishing values,
// which must take the careful path and still agree. The design's accuracy: counts, min and max
// exact; mean, std, l1 and l2 to 1e-5 relative. The fast path, centred on each group's mean, does
// better: a few units of F32 rounding, held here to 1e-6 on data that puts outliers anywhere.
#include "probe_thread_stats.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "random.h"

namespace hookrt {
namespace {

constexpr double kRel = 1e-5;
constexpr double kFastRel = 1e-6;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// What the CPU engine reports, in float64 over the finite values.
struct Reference {
  unsigned count = 0, nan = 0, posinf = 0, neginf = 0;
  float min = kInf, max = -kInf, abs_max = 0;
  double mean = 0, m2 = 0, l1 = 0, squares = 0;
};

Reference reference_of(const std::vector<float>& values) {
  Reference r;
  double sum = 0;
  for (float x : values) {
    if (std::isnan(x)) ++r.nan;
    else if (x == kInf) ++r.posinf;
    else if (x == -kInf) ++r.neginf;
    else {
      ++r.count;
      sum += x;
      r.l1 += std::fabs(static_cast<double>(x));
      r.squares += static_cast<double>(x) * x;
      r.min = std::min(r.min, x);
      r.max = std::max(r.max, x);
      r.abs_max = std::max(r.abs_max, std::fabs(x));
    }
  }
  if (r.count == 0) return r;
  r.mean = sum / r.count;
  for (float x : values)
    if (std::isfinite(x)) r.m2 += (x - r.mean) * (x - r.mean);
  return r;
}

// How a thread takes in `values`: whole groups of 4 chunks of 4, then chunks of 4, then single
// values, as visit_range hands them out. Returns how many groups took the fast path.
struct Fed {
  ThreadAcc acc = empty_thread();
  int fast_groups = 0, groups = 0;
};

Fed feed(const std::vector<float>& values) {
  Fed fed;
  size_t i = 0;
  for (; i + 16 <= values.size(); i += 16) {
    float v[4][4];
    for (int u = 0; u < 4; ++u)
      for (int j = 0; j < 4; ++j) v[u][j] = values[i + 4 * u + j];
    const StatsGroup<4> group = accumulate_stats_group<4, 4>(v, fed.acc);
    fed.fast_groups += group.fast;
    ++fed.groups;
    if (group.fast)
      for (int u = 0; u < 4; ++u) EXPECT_EQ(group.chunk_max[u], *std::max_element(v[u], v[u] + 4));
  }
  for (; i + 4 <= values.size(); i += 4) {
    float v[1][4] = {{values[i], values[i + 1], values[i + 2], values[i + 3]}};
    fed.fast_groups += accumulate_stats_group<1, 4>(v, fed.acc).fast;
    ++fed.groups;
  }
  for (; i < values.size(); ++i) {
    float v[1][1] = {{values[i]}};
    fed.fast_groups += accumulate_stats_group<1, 1>(v, fed.acc).fast;
    ++fed.groups;
  }
  return fed;
}

double relative(double got, double want, double scale) {
  return scale == 0 ? std::fabs(got - want) : std::fabs(got - want) / scale;
}

void expect_matches(const ThreadAcc& acc, const std::vector<float>& values, const std::string& what,
                    double rel = kRel) {
  const Reference want = reference_of(values);
  EXPECT_EQ(acc.count, want.count) << what;
  EXPECT_EQ(acc.nan, want.nan) << what;
  EXPECT_EQ(acc.posinf, want.posinf) << what;
  EXPECT_EQ(acc.neginf, want.neginf) << what;
  if (want.count == 0) return;
  EXPECT_EQ(acc.min, want.min) << what;
  EXPECT_EQ(acc.max, want.max) << what;
  EXPECT_EQ(acc.abs_max, want.abs_max) << what;
  const ThreadMoments got = thread_moments(acc);
  const double std_want = want.count > 1 ? std::sqrt(want.m2 / (want.count - 1)) : 0.0;
  const double std_got = want.count > 1 ? std::sqrt(got.m2 / (want.count - 1)) : 0.0;
  // The mean of values spread around zero is judged against their spread.
  EXPECT_LE(relative(got.mean, want.mean, std::fabs(want.mean) + std_want), rel)
      << what << ": mean " << got.mean << " vs " << want.mean;
  EXPECT_LE(relative(std_got, std_want, std_want), rel) << what << ": std " << std_got << " vs " << std_want;
  EXPECT_LE(relative(acc.l1, want.l1, want.l1), rel) << what << ": l1 " << acc.l1 << " vs " << want.l1;
  EXPECT_LE(relative(std::sqrt(got.squares), std::sqrt(want.squares), std::sqrt(want.squares)), rel)
      << what << ": l2 " << std::sqrt(got.squares) << " vs " << std::sqrt(want.squares);
}

// 4099 values: 256 whole groups, then a chunk of 4 and 3 single values.
std::vector<float> sample(const std::function<float(Pcg32&, size_t)>& value, uint64_t seed) {
  Pcg32 rng(seed);
  std::vector<float> out(4099);
  for (size_t i = 0; i < out.size(); ++i) out[i] = value(rng, i);
  return out;
}

struct Case {
  std::string name;
  std::function<float(Pcg32&, size_t)> value;
};

std::vector<Case> ordinary_cases() {
  return {
      {"normal", [](Pcg32& r, size_t) { return static_cast<float>(r.normal()); }},
      {"far from zero with a small spread (cancels in a plain sum of squares)",
       [](Pcg32& r, size_t) { return static_cast<float>(1e4 + 1e-2 * r.normal()); }},
      {"relu output (half zeros)",
       [](Pcg32& r, size_t) { return std::max(0.0f, static_cast<float>(r.normal())); }},
      {"each chunk its own scale (a group's chunks lie in different channels)",
       [](Pcg32& r, size_t i) {
         return static_cast<float>(std::pow(10.0, static_cast<double>((i / 4) % 7) - 3.0) * (1 + r.normal()));
       }},
      {"gradients around 1e-6", [](Pcg32& r, size_t) { return static_cast<float>(1e-6 * r.normal()); }},
      {"an outlier first in every group", [](Pcg32&, size_t i) { return i % 16 == 0 ? 0.0f : 1.8118352890014648f; }},
      {"an outlier first in every group, the rest spread",
       [](Pcg32& r, size_t i) { return i % 16 == 0 ? 0.0f : static_cast<float>(r.uniform(1.0, 1.0001)); }},
      {"an outlier last in every group", [](Pcg32& r, size_t i) {
         return i % 16 == 15 ? 100.0f : static_cast<float>(r.normal());
       }},
      {"constant", [](Pcg32&, size_t) { return 0.75f; }},
      {"constant, summing with rounding", [](Pcg32&, size_t) { return 1.1f; }},
      {"all zeros", [](Pcg32&, size_t) { return 0.0f; }},
  };
}

TEST(ProbeThreadStats, OrdinaryDataTakesTheFastPathAndMatchesFloat64) {
  for (const Case& c : ordinary_cases()) {
    const std::vector<float> values = sample(c.value, 11);
    const Fed fed = feed(values);
    EXPECT_EQ(fed.fast_groups, fed.groups) << c.name;
    expect_matches(fed.acc, values, c.name, kFastRel);
  }
}

TEST(ProbeThreadStats, NonFiniteValuesTakeTheCarefulPathAndAreCountedApart) {
  const float specials[] = {kNaN, kInf, -kInf};
  for (const Case& c : ordinary_cases()) {
    std::vector<float> values = sample(c.value, 12);
    Pcg32 rng(13);
    for (int k = 0; k < 60; ++k) values[rng.next_u32() % values.size()] = specials[k % 3];
    values[0] = kNaN;  // a group whose first value, the fast path's shift, is not finite
    values[17] = kInf;
    const Fed fed = feed(values);
    EXPECT_LT(fed.fast_groups, fed.groups) << c.name;
    expect_matches(fed.acc, values, c.name + " with NaN and Inf");
  }
}

TEST(ProbeThreadStats, ExplodingAndVanishingValuesKeepTheirMoments) {
  const std::vector<Case> cases = {
      {"exploding: 1e30 spread by 1e29", [](Pcg32& r, size_t) { return static_cast<float>(1e30 + 1e29 * r.normal()); }},
      {"past F32's square root of its largest value", [](Pcg32& r, size_t) { return static_cast<float>(1e20 * r.normal()); }},
      {"vanishing: 1e-30", [](Pcg32& r, size_t) { return static_cast<float>(1e-30 * r.normal()); }},
      {"|x| sum past FLT_MAX", [](Pcg32& r, size_t) { return static_cast<float>(3e37 * (1 + 0.1 * r.normal())); }},
      {"from 1e-30 to 1e30 in one group",
       [](Pcg32& r, size_t i) { return static_cast<float>(std::pow(10.0, static_cast<double>(i % 61) - 30.0) * r.normal()); }},
  };
  for (const Case& c : cases) {
    const std::vector<float> values = sample(c.value, 14);
    const Fed fed = feed(values);
    EXPECT_LT(fed.fast_groups, fed.groups) << c.name;
    expect_matches(fed.acc, values, c.name);
  }
}

TEST(ProbeThreadStats, ShortRangesAndTheEmptyAccumulator) {
  const ThreadMoments none = thread_moments(empty_thread());
  EXPECT_EQ(none.mean, 0.0);
  EXPECT_EQ(none.m2, 0.0);
  EXPECT_EQ(none.squares, 0.0);
  for (size_t n : {1u, 2u, 3u, 5u, 15u, 17u, 33u}) {
    std::vector<float> values(n);
    Pcg32 rng(15 + n);
    for (float& x : values) x = static_cast<float>(3 + rng.normal());
    const Fed fed = feed(values);
    expect_matches(fed.acc, values, std::to_string(n) + " values");
  }
  const std::vector<float> only_nan = {kNaN, kNaN, -kInf};
  expect_matches(feed(only_nan).acc, only_nan, "no finite value");
}

// The shifted sums of a warp, a block or a pass, as the probe pass's merges hold them.
struct Sums {
  double n = 0, shift = 0, s1 = 0, s2 = 0;
};

Sums sums_of(const ThreadAcc& t) { return {static_cast<double>(t.count), t.shift, t.s1, t.s2}; }

// A warp's or a block's merge (probe_block_merge.cuh): every part moved to the shift of the
// first part with values, then added.
Sums merge_at_first_shift(const std::vector<Sums>& parts) {
  Sums out;
  for (const Sums& p : parts)
    if (p.n != 0) {
      out.shift = p.shift;
      break;
    }
  for (Sums p : parts) {
    if (p.n != 0) move_sums(p.n, p.shift, out.shift, p.s1, p.s2);
    out.n += p.n;
    out.s1 += p.s1;
    out.s2 += p.s2;
  }
  return out;
}

// The last block's merge of partials one pair at a time (MergeFlat): b moved to a's shift, or a
// taking b's while it has none.
Sums merge_pair(Sums a, Sums b) {
  if (a.n == 0)
    a.shift = b.shift;
  else if (b.n != 0)
    move_sums(b.n, b.shift, a.shift, b.s1, b.s2);
  return {a.n + b.n, a.shift, a.s1 + b.s1, a.s2 + b.s2};
}

// A pass over `values` with the kernels' merge tree on the host: 4096 threads of 16 values each in
// a grid-stride walk, warps of 32, blocks of 8 warps, and the blocks' partials merged by 256
// threads in turn, then those 256 by the block merge.
Sums pass_sums(const std::vector<float>& values) {
  constexpr size_t kThreads = 4096, kWarp = 32, kWarpsPerBlock = 8, kFinishThreads = 256;
  std::vector<std::vector<float>> per_thread(kThreads);
  for (size_t i = 0; i < values.size(); ++i) per_thread[(i / 16) % kThreads].push_back(values[i]);
  std::vector<Sums> warps;
  for (size_t w = 0; w < kThreads / kWarp; ++w) {
    std::vector<Sums> lanes;
    for (size_t l = 0; l < kWarp; ++l) lanes.push_back(sums_of(feed(per_thread[w * kWarp + l]).acc));
    warps.push_back(merge_at_first_shift(lanes));
  }
  std::vector<Sums> blocks;
  for (size_t b = 0; b < warps.size() / kWarpsPerBlock; ++b)
    blocks.push_back(merge_at_first_shift(
        std::vector<Sums>(warps.begin() + b * kWarpsPerBlock, warps.begin() + (b + 1) * kWarpsPerBlock)));
  std::vector<Sums> finishers(kFinishThreads);
  for (size_t b = 0; b < blocks.size(); ++b) finishers[b % kFinishThreads] = merge_pair(finishers[b % kFinishThreads], blocks[b]);
  return merge_at_first_shift(finishers);
}

// The pass's sums, moved across shifts at every warp, block and partial, keep the accuracy of a
// single thread's: the same bounds against float64 as the thread tests above, over 2^18 values
// from the ordinary, exploding and vanishing cases, with NaN and Inf among them.
TEST(ProbeThreadStats, SumsMovedToOneShiftAcrossWarpsBlocksAndPartialsMatchFloat64) {
  std::vector<Case> cases = ordinary_cases();
  cases.push_back({"exploding: 1e30 spread by 1e29", [](Pcg32& r, size_t) { return static_cast<float>(1e30 + 1e29 * r.normal()); }});
  cases.push_back({"vanishing: 1e-30", [](Pcg32& r, size_t) { return static_cast<float>(1e-30 * r.normal()); }});
  cases.push_back({"one huge value first, the shift of the first warp",
                   [](Pcg32& r, size_t i) { return i == 0 ? 1e12f : static_cast<float>(r.normal()); }});
  for (const Case& c : cases) {
    Pcg32 rng(21);
    std::vector<float> values((size_t{1} << 18) + 5);
    for (size_t i = 0; i < values.size(); ++i) values[i] = c.value(rng, i);
    for (size_t i = 7; i < values.size(); i += 40009) values[i] = (i / 40009) % 2 ? kNaN : kInf;
    const Sums sums = pass_sums(values);
    const Reference want = reference_of(values);
    ASSERT_EQ(sums.n, static_cast<double>(want.count)) << c.name;
    const ThreadMoments got = shifted_moments(sums.n, sums.shift, sums.s1, sums.s2);
    const double std_want = std::sqrt(want.m2 / (want.count - 1));
    const double std_got = std::sqrt(got.m2 / (want.count - 1));
    EXPECT_LE(relative(got.mean, want.mean, std::fabs(want.mean) + std_want), kRel)
        << c.name << ": mean " << got.mean << " vs " << want.mean;
    EXPECT_LE(relative(std_got, std_want, std_want), kRel) << c.name << ": std " << std_got << " vs " << std_want;
    EXPECT_LE(relative(std::sqrt(got.squares), std::sqrt(want.squares), std::sqrt(want.squares)), kRel)
        << c.name << ": l2 " << std::sqrt(got.squares) << " vs " << std::sqrt(want.squares);
  }
}

TEST(ProbeThreadStats, MovingSumsToAnotherShiftAndBackKeepsThem) {
  double s1 = 3.5, s2 = 20.25;  // 4 values shifted by 2: offsets summing to 3.5, squares to 20.25
  move_sums(4, 2.0, -1.0, s1, s2);
  EXPECT_DOUBLE_EQ(s1, 3.5 + 4 * 3.0);
  EXPECT_DOUBLE_EQ(s2, 20.25 + 2 * 3.0 * 3.5 + 4 * 9.0);
  move_sums(4, -1.0, 2.0, s1, s2);
  EXPECT_DOUBLE_EQ(s1, 3.5);
  EXPECT_DOUBLE_EQ(s2, 20.25);
  const ThreadMoments none = shifted_moments(0, 5.0, 0, 0);
  EXPECT_EQ(none.mean, 0.0);
  EXPECT_EQ(none.m2, 0.0);
}

}  // namespace
}  // namespace hookrt
