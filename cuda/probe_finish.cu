// The finishing kernels of a pass (see probe_finish.cuh). They combine the pass kernel's partials
// in a fixed order in fp64 (each thread a fixed stride, then CUB's fixed tree, or one thread per
// channel over o in order), so a slot has the same bits on every run on the same GPU. The count of
// dead channels uses an integer atomic, which is exact in any order.
#include "probe_finish.cuh"

#include <cub/block/block_reduce.cuh>
#include <cuda_runtime.h>

#include <cstdint>

#include "status.h"

namespace hookrt::cuda::detail {
namespace {

// Per channel (one thread each): merges the channel's row partials over o in order.
__global__ void channel_finish_kernel(const PassArgs args) {
  const int64_t channels = args.channels;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < channels;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    for (int k = 0; k < args.n_ops; ++k) {
      const DeviceOp& op = args.ops[k];
      if (!per_channel_kind(op.kind)) continue;
      if (op.kind == PlannedOpKind::Zeros && op.rows == nullptr) {  // a flat pass: its alive flags
        if (op.counters[1 + c] == 0) atomicAdd(op.counters, 1ull);
        continue;
      }
      unsigned long long count = 0, zeros = 0;
      double mean = 0, m2 = 0;
      bool alive = false;
      for (int64_t o = 0; o < args.outer; ++o) {
        const double* p = op.rows + (o * channels + c) * kRowFields;
        merge_moments(count, mean, m2, static_cast<unsigned long long>(p[0]), p[1], p[2]);
        zeros += static_cast<unsigned long long>(p[3]);
        alive = alive || p[4] != 0.0;
      }
      if (op.kind == PlannedOpKind::Zeros) {
        if (!alive) atomicAdd(op.counters, 1ull);  // an integer count: exact in any order
        continue;
      }
      double* slot = args.slot + op.slot;
      slot[probe_slot::kChannelsCount * channels + c] = static_cast<double>(count);
      slot[probe_slot::kChannelsMean * channels + c] = mean;
      slot[probe_slot::kChannelsM2 * channels + c] = m2;
      slot[probe_slot::kChannelsZeros * channels + c] = static_cast<double>(zeros);
    }
  }
}

// One block: merges each flat op's block partials (each thread a fixed stride, then CUB's fixed
// tree) and writes the op's slot entries.
__global__ void __launch_bounds__(kBlock) flat_finish_kernel(const PassArgs args, const FlatAcc* partials, int blocks) {
  using Reduce = cub::BlockReduce<FlatAcc, kBlock>;
  __shared__ typename Reduce::TempStorage temp;
  namespace s = probe_slot;
  for (int k = 0; k < args.n_ops; ++k) {
    const DeviceOp& op = args.ops[k];
    FlatAcc acc = empty_flat();
    for (int b = threadIdx.x; b < blocks; b += kBlock) acc = MergeFlat{}(acc, partials[static_cast<int64_t>(b) * kMaxOps + k]);
    const FlatAcc total = Reduce(temp).Reduce(acc, MergeFlat{});
    double* slot = args.slot + op.slot;
    if (threadIdx.x == 0) {
      switch (op.kind) {
        case PlannedOpKind::Stats:
          slot[s::kStatsCount] = static_cast<double>(total.count);
          slot[s::kStatsNan] = static_cast<double>(total.nan);
          slot[s::kStatsPosInf] = static_cast<double>(total.posinf);
          slot[s::kStatsNegInf] = static_cast<double>(total.neginf);
          slot[s::kStatsMin] = total.min;
          slot[s::kStatsMax] = total.max;
          slot[s::kStatsAbsMax] = total.abs_max;
          slot[s::kStatsMean] = total.mean;
          slot[s::kStatsM2] = total.m2;
          slot[s::kStatsL1] = total.l1;
          slot[s::kStatsSquares] = total.squares;
          break;
        case PlannedOpKind::NonFinite:
          slot[s::kNonFiniteNan] = static_cast<double>(total.nan);
          slot[s::kNonFinitePosInf] = static_cast<double>(total.posinf);
          slot[s::kNonFiniteNegInf] = static_cast<double>(total.neginf);
          break;
        case PlannedOpKind::Zeros:
          slot[s::kZerosZeros] = static_cast<double>(total.zeros);
          slot[s::kZerosDead] = static_cast<double>(*op.counters);  // channel_finish_kernel ran before
          break;
        case PlannedOpKind::Clamp: slot[s::kClampChanged] = static_cast<double>(total.count); break;
        case PlannedOpKind::ClipNorm:  // its norm pass wrote its entries
        case PlannedOpKind::Hist:      // below
        case PlannedOpKind::Channels:  // channel_finish_kernel
          break;
      }
    }
    if (op.kind == PlannedOpKind::Hist)
      for (int w = threadIdx.x; w < 2 + op.bins; w += kBlock) slot[w] = static_cast<double>(op.counters[w]);
    __syncthreads();  // temp is reused by the next reduction
  }
}

}  // namespace

void launch_channel_finish(const PassArgs& args, int blocks, cudaStream_t stream) {
  channel_finish_kernel<<<blocks, kBlock, 0, stream>>>(args);
  HOOKRT_CUDA_CHECK(cudaGetLastError());
}

void launch_flat_finish(const PassArgs& args, const FlatAcc* partials, int blocks,
                        cudaStream_t stream) {
  flat_finish_kernel<<<1, kBlock, 0, stream>>>(args, partials, blocks);
  HOOKRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace hookrt::cuda::detail
