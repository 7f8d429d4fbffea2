#pragma once
// What the fused probe kernels accumulate besides a thread's ThreadAcc (probe_thread_stats.h):
// FlatAcc for a flat op's merged partials, RowAcc for one row of a per-channel op, and how two
// accumulators merge: shifted sums moved to one shift (flat ops) and Chan's merge of Welford
// moments (rows), so that partials combine in a fixed order in fp64 and a slot has the same bits
// on every run on the same GPU. Used by the pass kernels (probe_pass_kernels.cuh) and the finishing kernels (probe_finish.cu).
#include <cuda_runtime.h>

#include <cmath>

#include "probe_pass_args.cuh"
#include "probe_thread_stats.h"

namespace hookrt::cuda::detail {

// What a warp, a block or a whole pass accumulates for one flat op: a ThreadAcc whose counts
// may pass 2^32. count is the finite count for stats and the changed count for clamp (whose sums
// stay 0); s1 and s2 are sums of (x - shift) and its square over the finite values, the shift
// being one of them or within their range (move_sums, shifted_moments).
struct FlatAcc {
  unsigned long long count, nan, posinf, neginf, zeros;
  double shift, s1, s2, l1;
  float min, max, abs_max;
};

// What one lane accumulates over one row for a per-channel op.
struct RowAcc {
  unsigned long long count, zeros;
  double mean, m2;
  unsigned alive;
};

__device__ __forceinline__ FlatAcc empty_flat() {
  FlatAcc a;
  a.count = a.nan = a.posinf = a.neginf = a.zeros = 0;
  a.shift = a.s1 = a.s2 = a.l1 = 0;
  a.min = INFINITY;
  a.max = -INFINITY;
  a.abs_max = 0;
  return a;
}

__device__ __forceinline__ RowAcc empty_row() { return RowAcc{0, 0, 0.0, 0.0, 0u}; }

// Chan's merge of moments (count_b, mean_b, m2_b) into (count, mean, m2): exact in count, and
// stable for the std where a sum of squares would cancel.
__device__ __forceinline__ void merge_moments(unsigned long long& count, double& mean, double& m2,
                                              unsigned long long count_b, double mean_b, double m2_b) {
  if (count_b == 0) return;
  if (count == 0) {
    count = count_b;
    mean = mean_b;
    m2 = m2_b;
    return;
  }
  const unsigned long long total = count + count_b;
  const double delta = mean_b - mean;
  const double weight_b = static_cast<double>(count_b) / static_cast<double>(total);
  mean += delta * weight_b;
  m2 += m2_b + delta * delta * static_cast<double>(count) * weight_b;
  count = total;
}

// b's sums into a's, at a's shift (or b's, while a has none): partials merged one pair at a time
// in a fixed order.
struct MergeFlat {
  __device__ __forceinline__ FlatAcc operator()(FlatAcc a, FlatAcc b) const {
    if (a.count == 0)
      a.shift = b.shift;
    else if (b.count != 0)
      move_sums(static_cast<double>(b.count), b.shift, a.shift, b.s1, b.s2);
    a.s1 += b.s1;
    a.s2 += b.s2;
    a.count += b.count;
    a.nan += b.nan;
    a.posinf += b.posinf;
    a.neginf += b.neginf;
    a.zeros += b.zeros;
    a.l1 += b.l1;
    a.min = fminf(a.min, b.min);
    a.max = fmaxf(a.max, b.max);
    a.abs_max = fmaxf(a.abs_max, b.abs_max);
    return a;
  }
};

// Lane 0 gets the merge of the warp's row accumulators (a fixed tree, so a fixed order).
__device__ __forceinline__ RowAcc warp_merge_rows(RowAcc a) {
  constexpr unsigned kAll = 0xffffffffu;
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const unsigned long long count = __shfl_down_sync(kAll, a.count, offset);
    const unsigned long long zeros = __shfl_down_sync(kAll, a.zeros, offset);
    const double mean = __shfl_down_sync(kAll, a.mean, offset);
    const double m2 = __shfl_down_sync(kAll, a.m2, offset);
    const unsigned alive = __shfl_down_sync(kAll, a.alive, offset);
    merge_moments(a.count, a.mean, a.m2, count, mean, m2);
    a.zeros += zeros;
    a.alive |= alive;
  }
  return a;
}

}  // namespace hookrt::cuda::detail
