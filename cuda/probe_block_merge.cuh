#pragma once
// Merging a flat op's accumulators over a block: each warp first (counts and extrema, which are
// exact in any order, by warp reductions; the sums moved to the shift of the warp's first lane
// with values and added in a fixed butterfly), then the block's warps by warp 0 the same way.
//
// Why not a general block reduction of FlatAcc with a merge functor: a block's merge is part of
// every probe pass's fixed cost (each block does one, the last block one more), and a merge of
// Welford moments carries an fp64 division (with its slow-path call) into every step of the
// tree. Here a step is a few shuffles and adds, and the code a warp runs once per block is short.
// Every lane of a warp must call these together (full-mask shuffles); the order of every fp64
// addition is fixed, so a slot has the same bits on every run.
#include <cuda_runtime.h>

#include "probe_accumulators.cuh"
#include "probe_pass_args.cuh"
#include "probe_thread_stats.h"

namespace hookrt::cuda::detail {

constexpr unsigned kAllLanes = 0xffffffffu;

template <class T>
__device__ __forceinline__ T warp_sum(T value) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(kAllLanes, value, offset);
  return value;
}

// The lanes' 32-bit counts (ThreadAcc's) summed over a warp, exactly: a warp's total can pass
// 2^32 where one warp walks a whole row of a row pass. Summed as two 16-bit halves, each of whose
// warp sums fits in 32 bits, by one warp reduction each where the chip has it.
__device__ __forceinline__ unsigned warp_sum_u32(unsigned value) {
#if __CUDA_ARCH__ >= 800
  return __reduce_add_sync(kAllLanes, value);
#else
  return warp_sum(value);
#endif
}

__device__ __forceinline__ unsigned long long warp_count(unsigned value) {
  const unsigned long long low = warp_sum_u32(value & 0xffffu);
  const unsigned long long high = warp_sum_u32(value >> 16);
  return (high << 16) + low;
}

// 64-bit counts: block and pass totals, which may pass 2^32.
__device__ __forceinline__ unsigned long long warp_count(unsigned long long value) { return warp_sum(value); }

__device__ __forceinline__ float warp_min(float value) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) value = fminf(value, __shfl_xor_sync(kAllLanes, value, offset));
  return value;
}

__device__ __forceinline__ float warp_max(float value) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) value = fmaxf(value, __shfl_xor_sync(kAllLanes, value, offset));
  return value;
}

// The warp's shifted sums (each lane's `count` values summed relative to its `shift`) at the
// shift of its first lane with values, into `out` in every lane.
__device__ __forceinline__ void warp_merge_sums(double count, double shift, double s1, double s2, double l1,
                                                FlatAcc& out) {
  const unsigned with_values = __ballot_sync(kAllLanes, count != 0);
  const double common = __shfl_sync(kAllLanes, shift, with_values != 0 ? __ffs(with_values) - 1 : 0);
  if (count != 0) move_sums(count, shift, common, s1, s2);
  out.shift = common;
  out.s1 = warp_sum(s1);
  out.s2 = warp_sum(s2);
  out.l1 = warp_sum(l1);
}

// The warp's accumulators (ThreadAcc, or FlatAcc for block and pass totals) merged, in every lane.
template <class Acc>
__device__ __forceinline__ FlatAcc warp_merge(const Acc& a) {
  FlatAcc out;
  out.count = warp_count(a.count);
  out.nan = warp_count(a.nan);
  out.posinf = warp_count(a.posinf);
  out.neginf = warp_count(a.neginf);
  out.zeros = warp_count(a.zeros);
  warp_merge_sums(static_cast<double>(a.count), a.shift, a.s1, a.s2, a.l1, out);
  out.min = warp_min(a.min);
  out.max = warp_max(a.max);
  out.abs_max = warp_max(a.abs_max);
  return out;
}

// Shared memory for one block merge: each warp's merge. A caller that merges again with the same
// storage passes a __syncthreads() first.
struct BlockMergeStorage {
  FlatAcc warps[kWarpsPerBlock];
};

// The block's warp merges (`warp`, the same in every lane of a warp) merged by warp 0: valid in
// thread 0.
__device__ __forceinline__ FlatAcc block_merge_warps(const FlatAcc& warp, BlockMergeStorage& storage) {
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int w = static_cast<int>(threadIdx.x) / kWarpSize;
  if (lane == 0) storage.warps[w] = warp;
  __syncthreads();
  if (w != 0) return empty_flat();
  return warp_merge(lane < kWarpsPerBlock ? storage.warps[lane] : empty_flat());
}

// Every thread's accumulator (ThreadAcc, or FlatAcc) merged over the block: valid in thread 0.
template <class Acc>
__device__ __forceinline__ FlatAcc block_merge(const Acc& a, BlockMergeStorage& storage) {
  return block_merge_warps(warp_merge(a), storage);
}

}  // namespace hookrt::cuda::detail
