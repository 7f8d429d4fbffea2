#pragma once
// What one thread of the fused probe pass (cuda/probe_pass_kernels.cuh) accumulates for stats and
// nonfinite, and how it takes in the values it loads. Plain C++ for both sides: the kernels run
// it, and the CPU tests hold it to a float64 reference.
//
// The pass is memory-bound only if each element costs a few F32 instructions: a thread loads
// groups of G chunks of N values (G float4 loads in flight), and a group of finite values with
// an ordinary spread costs per element three adds, a subtraction, a multiply-add and the extrema;
// its sums reach the thread's fp64 sums once per group. A group holding NaN or Inf, or values
// whose offsets F32 cannot square (exploding or vanishing values, which stats exists to report),
// goes chunk by chunk through the careful path instead, which counts the non-finite values and
// sums the rest in fp64 where F32 would lose them.
#include <cfloat>
#include <cmath>

#include "host_device.h"

namespace hookrt {

// One thread's share of a pass: 32-bit counts (a thread never sees 2^32 elements), and the
// moments as sums shifted by a value within the range of the thread's own, so that the variance
// of values far from zero does not cancel. thread_moments turns them into Welford's moments.
struct ThreadAcc {
  unsigned count, nan, posinf, neginf, zeros;
  double shift, s1, s2, l1;  // shift: the first sums' reference; s1, s2: sums of (x - shift), its square
  float min, max, abs_max;
};

HOOKRT_HOST_DEVICE_INLINE ThreadAcc empty_thread() {
  ThreadAcc a;
  a.count = a.nan = a.posinf = a.neginf = a.zeros = 0;
  a.shift = a.s1 = a.s2 = a.l1 = 0;
  a.min = INFINITY;
  a.max = -INFINITY;
  a.abs_max = 0;
  return a;
}

// One comparison of |x| (NaN compares false), where isfinite may cost more.
HOOKRT_HOST_DEVICE_INLINE bool is_finite_f32(float x) { return fabsf(x) <= FLT_MAX; }

// x, not finite, into its count.
HOOKRT_HOST_DEVICE_INLINE void count_nonfinite(float x, ThreadAcc& acc) {
  if (x != x)
    ++acc.nan;
  else if (x > 0)
    ++acc.posinf;
  else
    ++acc.neginf;
}

// Folds sums taken relative to `reference`, a value within the values' range (offsets' sum t1,
// their squares' sum t2, the |x| sum l1, over `finite` values), into the thread's shifted fp64
// sums: x - shift = d + D, D = reference - shift.
HOOKRT_HOST_DEVICE_INLINE void fold_sums(ThreadAcc& acc, float reference, unsigned finite, double t1, double t2,
                                         double l1) {
  if (acc.count == 0) acc.shift = reference;
  const double n = static_cast<double>(finite);
  const double to_shift = static_cast<double>(reference) - acc.shift;
  acc.s1 += fma(n, to_shift, t1);
  acc.s2 += fma(to_shift, fma(n, to_shift, 2.0 * t1), t2);
  acc.l1 += l1;
  acc.count += finite;
}

// Offsets whose squares F32 holds as normal numbers, and sixteen of them without overflow: F32
// sums of them are then good to a few units of F32 rounding, as the float64 reference needs.
constexpr float kSmallestF32Offset = 0x1p-50f;
constexpr float kLargestF32Offset = 0x1p50f;

HOOKRT_HOST_DEVICE_INLINE bool f32_can_square(float widest_offset) {
  return widest_offset == 0.0f || (widest_offset >= kSmallestF32Offset && widest_offset <= kLargestF32Offset);
}

// The careful path, one chunk: non-finite values counted, the finite ones summed relative to the
// chunk's first finite value, in F32 where the offsets allow and in fp64 where they do not.
template <int N>
HOOKRT_HOST_DEVICE_INLINE void accumulate_stats_chunk(const float (&v)[N], ThreadAcc& acc) {
  float first = 0;
  bool found = false;
  HOOKRT_UNROLL
  for (int j = 0; j < N; ++j)
    if (!found && is_finite_f32(v[j])) {
      first = v[j];
      found = true;
    }
  unsigned finite = 0;
  float t1 = 0, t2 = 0, l1 = 0, widest = 0;
  HOOKRT_UNROLL
  for (int j = 0; j < N; ++j) {
    const float x = v[j];
    if (!is_finite_f32(x)) {
      count_nonfinite(x, acc);
      continue;
    }
    ++finite;
    const float d = x - first;
    t1 += d;
    t2 = fmaf(d, d, t2);
    l1 += fabsf(x);
    widest = fmaxf(widest, fabsf(d));
    acc.min = fminf(acc.min, x);
    acc.max = fmaxf(acc.max, x);
    acc.abs_max = fmaxf(acc.abs_max, fabsf(x));
  }
  if (finite == 0) return;
  if (f32_can_square(widest) && is_finite_f32(l1)) {
    fold_sums(acc, first, finite, t1, t2, l1);
    return;
  }
  double d1 = 0, d2 = 0, a1 = 0;
  HOOKRT_UNROLL
  for (int j = 0; j < N; ++j) {
    if (!is_finite_f32(v[j])) continue;
    const double d = static_cast<double>(v[j]) - static_cast<double>(first);
    d1 += d;
    d2 = fma(d, d, d2);
    a1 += fabs(static_cast<double>(v[j]));
  }
  fold_sums(acc, first, finite, d1, d2, a1);
}

// What a group left besides its sums: whether it took the fast path (every value finite, offsets
// F32 can square) and, then, each chunk's largest value (zeros' alive test needs no more).
template <int G>
struct StatsGroup {
  bool fast;
  float chunk_max[G];
};

// stats (with nonfinite's counts) on a group of G chunks of N values. The fast path takes the
// group's extrema and sums first, then sums the offsets from the group's F32 mean: centred there,
// the squared offsets sum to the group's own spread, so F32's rounding of them stays a few units
// of the spread however the values lie. Any NaN or Inf makes the mean or an offset non-finite, and
// so t2: the test for the careful path costs a few instructions per group, not per element.
template <int G, int N>
HOOKRT_HOST_DEVICE_INLINE StatsGroup<G> accumulate_stats_group(const float (&v)[G][N], ThreadAcc& acc) {
  StatsGroup<G> group;
  float sum = 0, l1 = 0, lo = v[0][0], hi = v[0][0];
  HOOKRT_UNROLL
  for (int u = 0; u < G; ++u) {
    float chunk_lo = v[u][0], chunk_hi = v[u][0];
    HOOKRT_UNROLL
    for (int j = 0; j < N; ++j) {
      sum += v[u][j];
      l1 += fabsf(v[u][j]);
      chunk_lo = fminf(chunk_lo, v[u][j]);
      chunk_hi = fmaxf(chunk_hi, v[u][j]);
    }
    group.chunk_max[u] = chunk_hi;
    lo = fminf(lo, chunk_lo);
    hi = fmaxf(hi, chunk_hi);
  }
  // The mean, kept within [lo, hi] where the F32 sum rounded past them (a constant group then keeps
  // its exact zero spread) or overflowed (NaN lands on lo: its own offset sends the group careful).
  const float centre = fminf(fmaxf(sum * (1.0f / static_cast<float>(G * N)), lo), hi);
  float t1 = 0, t2 = 0;
  HOOKRT_UNROLL
  for (int u = 0; u < G; ++u) {
    HOOKRT_UNROLL
    for (int j = 0; j < N; ++j) {
      const float d = v[u][j] - centre;
      t1 += d;
      t2 = fmaf(d, d, t2);
    }
  }
  group.fast = is_finite_f32(t2) && is_finite_f32(l1) && f32_can_square(hi - lo);  // hi - lo bounds each offset
  if (!group.fast) {
    HOOKRT_UNROLL
    for (int u = 0; u < G; ++u) accumulate_stats_chunk<N>(v[u], acc);
    return group;
  }
  fold_sums(acc, centre, static_cast<unsigned>(G * N), t1, t2, l1);
  acc.min = fminf(acc.min, lo);
  acc.max = fmaxf(acc.max, hi);
  acc.abs_max = fmaxf(acc.abs_max, fmaxf(fabsf(lo), fabsf(hi)));
  return group;
}

// Sums (s1, s2) of (x - from) and of its square over n values, moved to sums of (x - to):
// x - to = (x - from) + D with D = from - to. How accumulators with different shifts merge
// (the probe pass's warps, blocks and partials): no division, so no slow path in the merge.
HOOKRT_HOST_DEVICE_INLINE void move_sums(double n, double from, double to, double& s1, double& s2) {
  const double d = from - to;
  s2 = fma(d, fma(n, d, 2.0 * s1), s2);  // fused in the source, so host and device round alike
  s1 = fma(n, d, s1);
}

// Welford's moments of n values from their sums shifted by one of them (or by any value within
// their range): m2 = s2 - s1^2 / n. With the shift in the range, s2 <= n * range^2 <= 2n * m2, so
// the subtraction loses at most about log2(2n) bits of fp64. The sum of squares follows as
// m2 + n * mean^2, a sum of two non-negative terms.
struct ThreadMoments {
  double mean, m2, squares;
};

HOOKRT_HOST_DEVICE_INLINE ThreadMoments shifted_moments(double n, double shift, double s1, double s2) {
  if (n == 0) return ThreadMoments{0, 0, 0};
  const double centre = s1 / n;  // mean - shift
  const double mean = shift + centre;
  const double m2 = fmax(0.0, s2 - s1 * centre);
  return ThreadMoments{mean, m2, m2 + n * mean * mean};
}

// The moments of the thread's finite values.
HOOKRT_HOST_DEVICE_INLINE ThreadMoments thread_moments(const ThreadAcc& t) {
  return shifted_moments(static_cast<double>(t.count), t.shift, t.s1, t.s2);
}

}  // namespace hookrt
