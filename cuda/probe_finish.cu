// The finishing kernels of a row pass (see probe_finish.cuh). They combine the pass kernel's
// partials in a fixed order in fp64 (each thread a fixed stride, then the block merge's fixed
// tree, or one thread per channel over o in order), so a slot has the same bits on every run on
// the same GPU. The count of dead channels uses an integer atomic, which is exact in any order.
#include "probe_finish.cuh"

#include <cuda_runtime.h>

#include <cstdint>

#include "probe_flat_finish.cuh"
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

// One block: merges each flat op's block partials and writes the op's slot entries (see
// probe_flat_finish.cuh); after a row pass, whose per-channel ops channel_finish_kernel finished.
__global__ void __launch_bounds__(kBlock) flat_finish_kernel(const PassArgs args, const FlatAcc* partials, int blocks) {
  __shared__ BlockMergeStorage temp;
  for (int k = 0; k < args.n_ops; ++k) {
    const DeviceOp& op = args.ops[k];
    const FlatAcc total = merge_block_partials(partials, blocks, k, temp);
    double* slot = args.slot + op.slot;
    // zeros: channel_finish_kernel, which ran before, counted the dead channels into counters[0].
    if (threadIdx.x == 0)
      write_flat_slot(op, slot, total, op.kind == PlannedOpKind::Zeros ? __ldcg(op.counters) : 0ull);
    if (op.kind == PlannedOpKind::Hist) copy_histogram(op, slot, /*reset=*/false);
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
