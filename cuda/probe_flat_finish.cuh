#pragma once
// Finishing a flat pass on the device: merging each op's block partials in a fixed order (each
// thread a fixed stride over the blocks, then the block merge's fixed tree) and writing the op's
// slot entries.
// Two callers run the same code, so a slot has the same bits either way: flat_finish_kernel
// (probe_finish.cu), a launch of its own after a row pass, and the last block of a flat pass
// kernel to arrive (probe_pass_kernels.cuh), which saves that launch and the counters' memset.
//
// Reads go through L2 (__ldcg): other blocks wrote the partials and counters during the same
// kernel, and this multiprocessor's L1 may hold an older copy of a line they share.
#include <cuda_runtime.h>

#include <cstdint>

#include "probe_accumulators.cuh"
#include "probe_block_merge.cuh"
#include "probe_pass_args.cuh"

namespace hookrt::cuda::detail {

__device__ __forceinline__ FlatAcc load_partial(const FlatAcc* p) {
  FlatAcc a;
  a.count = __ldcg(&p->count);
  a.nan = __ldcg(&p->nan);
  a.posinf = __ldcg(&p->posinf);
  a.neginf = __ldcg(&p->neginf);
  a.zeros = __ldcg(&p->zeros);
  a.shift = __ldcg(&p->shift);
  a.s1 = __ldcg(&p->s1);
  a.s2 = __ldcg(&p->s2);
  a.l1 = __ldcg(&p->l1);
  a.min = __ldcg(&p->min);
  a.max = __ldcg(&p->max);
  a.abs_max = __ldcg(&p->abs_max);
  return a;
}

// The merge of op k's partials over `blocks` blocks (partials[b * kMaxOps + k]); valid in thread 0.
__device__ __forceinline__ FlatAcc merge_block_partials(const FlatAcc* partials, int blocks, int k,
                                                        BlockMergeStorage& temp) {
  FlatAcc acc = empty_flat();
  for (int b = threadIdx.x; b < blocks; b += kBlock)
    acc = MergeFlat{}(acc, load_partial(partials + static_cast<int64_t>(b) * kMaxOps + k));
  return block_merge(acc, temp);
}

// Thread 0: a flat op's slot entries from its merged partials (`dead`: zeros' dead channels).
// Hist, clipnorm and channels write theirs elsewhere.
__device__ __forceinline__ void write_flat_slot(const DeviceOp& op, double* slot, const FlatAcc& total,
                                                unsigned long long dead) {
  namespace s = probe_slot;
  switch (op.kind) {
    case PlannedOpKind::Stats: {
      const ThreadMoments moments = shifted_moments(static_cast<double>(total.count), total.shift, total.s1, total.s2);
      slot[s::kStatsCount] = static_cast<double>(total.count);
      slot[s::kStatsNan] = static_cast<double>(total.nan);
      slot[s::kStatsPosInf] = static_cast<double>(total.posinf);
      slot[s::kStatsNegInf] = static_cast<double>(total.neginf);
      slot[s::kStatsMin] = total.min;
      slot[s::kStatsMax] = total.max;
      slot[s::kStatsAbsMax] = total.abs_max;
      slot[s::kStatsMean] = moments.mean;
      slot[s::kStatsM2] = moments.m2;
      slot[s::kStatsL1] = total.l1;
      slot[s::kStatsSquares] = moments.squares;
      break;
    }
    case PlannedOpKind::NonFinite:
      slot[s::kNonFiniteNan] = static_cast<double>(total.nan);
      slot[s::kNonFinitePosInf] = static_cast<double>(total.posinf);
      slot[s::kNonFiniteNegInf] = static_cast<double>(total.neginf);
      break;
    case PlannedOpKind::Zeros:
      slot[s::kZerosZeros] = static_cast<double>(total.zeros);
      slot[s::kZerosDead] = static_cast<double>(dead);
      break;
    case PlannedOpKind::Clamp: slot[s::kClampChanged] = static_cast<double>(total.count); break;
    case PlannedOpKind::ClipNorm:
    case PlannedOpKind::Hist:
    case PlannedOpKind::Channels:
      break;
  }
}

// The whole block: copies a histogram's counters (below, above, bins) into its slot, and zeroes
// them behind when `reset` (the single-launch pass leaves its counters as it found them).
__device__ __forceinline__ void copy_histogram(const DeviceOp& op, double* slot, bool reset) {
  for (int w = threadIdx.x; w < 2 + op.bins; w += kBlock) {
    slot[w] = static_cast<double>(__ldcg(op.counters + w));
    if (reset) op.counters[w] = 0;
  }
}

// The whole block: the channels of a flat pass's zeros op whose alive flag (counters[1 + c]) was
// never set, zeroing the flags behind; the count is exact (an integer sum in any order) and valid
// in every thread on return.
__device__ __forceinline__ unsigned long long count_dead_channels_and_reset(const DeviceOp& op, int64_t channels,
                                                                            unsigned long long& block_total) {
  unsigned long long dead = 0;
  unsigned long long* alive = op.counters + 1;
  for (int64_t c = threadIdx.x; c < channels; c += kBlock) {
    if (__ldcg(alive + c) == 0) ++dead;
    else alive[c] = 0;
  }
  if (threadIdx.x == 0) block_total = 0;
  __syncthreads();
  if (dead != 0) atomicAdd(&block_total, dead);
  __syncthreads();
  return block_total;
}

}  // namespace hookrt::cuda::detail
