// The pass kernel (see probe_pass_kernel.cuh). Each planned pass is one kernel that reads the
// tensor once (or, in a producing run's first pass, computes it from the op's inputs and writes
// it), with float4 loads where the address allows, runs the pass's probes on each element
// in registers (changing probes first rewrite the value the later ones see), and writes the value
// back when the pass changed it. Per-block partials go to scratch; a flat pass's last block
// finishes it, a row pass's are finished by the kernels of probe_finish.cu. Histogram bins use
// integer atomics, which are exact in any order.
// Passes walk the tensor flat (the whole grid strides over it) unless they hold a channels probe,
// whose per-channel moments need rows: then each warp takes rows (o, c). zeros finds dead channels
// in either walk: in the flat one, an element that is > 0 or NaN sets its channel's alive flag.
#include "probe_pass_kernel.cuh"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "probe_chunks.cuh"
#include "probe_flat_finish.cuh"
#include "status.h"

namespace hookrt::cuda::detail {
namespace {

// Runs a pass's ops, in order, on chunks of the tensor; kRows: the pass walks whole rows, so
// per-channel ops accumulate into the row's accumulators.
template <bool kRows>
struct PassVisitor {
  const PassArgs& args;
  FlatAcc (&flat)[kMaxOps];
  RowAcc (&row)[kMaxOps];
  const float (&scales)[kMaxOps];
  unsigned* shared_hist;

  template <int N>
  __device__ __forceinline__ void chunk(int64_t i) {
    float v[N];
    if (args.producer.kind == ProducerKind::None)
      load_chunk<N>(args.x + i, v);
    else
      produce_chunk<N>(args.producer, i, v);  // write_back is set: the pass writes the tensor
#pragma unroll
    for (int k = 0; k < kMaxOps; ++k) {
      if (k >= args.n_ops) break;
      const DeviceOp& op = args.ops[k];
      switch (op.kind) {
        case PlannedOpKind::Clamp: apply_clamp<N>(op, i, v, flat[k]); break;
        case PlannedOpKind::ClipNorm:
#pragma unroll
          for (int j = 0; j < N; ++j) v[j] *= scales[k];
          break;
        case PlannedOpKind::Stats: accumulate_stats<N>(v, flat[k]); break;
        case PlannedOpKind::NonFinite:
#pragma unroll
          for (int j = 0; j < N; ++j)
            if (!isfinite(v[j])) count_nonfinite(v[j], flat[k]);
          break;
        case PlannedOpKind::Zeros:
#pragma unroll
          for (int j = 0; j < N; ++j) {
            if (v[j] == 0.0f) ++flat[k].zeros;
            if constexpr (kRows) {
              if (!(v[j] <= 0.0f)) row[k].alive = 1u;
            }
          }
          if constexpr (!kRows) mark_alive_channels<N>(op, args, i, v);
          break;
        case PlannedOpKind::Hist:
#pragma unroll
          for (int j = 0; j < N; ++j) hist_add(op, v[j], shared_hist);
          break;
        case PlannedOpKind::Channels:
          if constexpr (kRows) accumulate_channel<N>(v, row[k]);
          break;
      }
    }
    if (args.write_back) store_chunk<N>(args.x + i, v);
    if (args.capture) store_chunk<N>(args.capture + i, v);
  }
};

// A flat pass is finished by its last block to arrive (the threadfence-reduction pattern): each
// thread fences its writes (partials, histogram counts, alive flags) before the block counts
// itself done, so the block that counts last sees every other block's. It merges the partials in
// block order with flat_finish_kernel's code, so the slot has the same bits as a separate
// finishing launch would give, and it zeroes the counters behind it: the pass needs neither a
// memset before it nor a kernel after it.
__device__ __forceinline__ void finish_if_last_block(const PassArgs& args, const FlatAcc* partials,
                                                     typename FlatReduce::TempStorage& temp) {
  __shared__ bool last;
  __shared__ unsigned long long dead_total;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(args.done, 1ull) == static_cast<unsigned long long>(gridDim.x) - 1;
  __syncthreads();
  if (!last) return;  // the same for the whole block
  for (int k = 0; k < args.n_ops; ++k) {
    const DeviceOp& op = args.ops[k];
    const FlatAcc total = merge_block_partials(partials, static_cast<int>(gridDim.x), k, temp);
    const unsigned long long dead =
        op.kind == PlannedOpKind::Zeros ? count_dead_channels_and_reset(op, args.channels, dead_total) : 0ull;
    double* slot = args.slot + op.slot;
    if (threadIdx.x == 0) write_flat_slot(op, slot, total, dead);
    if (op.kind == PlannedOpKind::Hist) copy_histogram(op, slot, /*reset=*/true);
    __syncthreads();  // temp and dead_total are reused by the next op
  }
  if (threadIdx.x == 0) *args.done = 0;
}

// One pass. Flat mode: a grid-stride walk over the whole tensor. Row mode: each warp takes rows
// (o, c) in a grid-stride walk and leaves one partial per row and per-channel op.
template <bool kRows>
__global__ void __launch_bounds__(kBlock) fused_pass_kernel(const PassArgs args, FlatAcc* partials) {
  extern __shared__ unsigned shared_hist[];  // (args.shared_hist_words)
  for (int w = threadIdx.x; w < args.shared_hist_words; w += kBlock) shared_hist[w] = 0;
  __syncthreads();

  FlatAcc flat[kMaxOps];
  RowAcc row[kMaxOps];
  float scales[kMaxOps];
#pragma unroll
  for (int k = 0; k < kMaxOps; ++k) {
    flat[k] = empty_flat();
    row[k] = empty_row();
    scales[k] = (k < args.n_ops && args.ops[k].kind == PlannedOpKind::ClipNorm) ? *args.ops[k].scale : 1.0f;
  }
  PassVisitor<kRows> visit{args, flat, row, scales, shared_hist};

  if constexpr (!kRows) {
    visit_range(args.x, 0, args.n, static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x,
                static_cast<int64_t>(gridDim.x) * kBlock, visit);
  } else {
    const int lane = threadIdx.x % kWarpSize;
    const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
    // r is the same for every lane of a warp, so the whole warp reaches the shuffles below.
    for (int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarpSize; r < args.rows;
         r += warps) {
#pragma unroll
      for (int k = 0; k < kMaxOps; ++k) row[k] = empty_row();
      visit_range(args.x, r * args.inner, (r + 1) * args.inner, lane, kWarpSize, visit);
#pragma unroll
      for (int k = 0; k < kMaxOps; ++k) {
        if (k >= args.n_ops || !per_channel_kind(args.ops[k].kind)) continue;
        const RowAcc total = warp_merge_rows(row[k]);
        if (lane == 0) {
          double* out = args.ops[k].rows + r * kRowFields;
          out[0] = static_cast<double>(total.count);
          out[1] = total.mean;
          out[2] = total.m2;
          out[3] = static_cast<double>(total.zeros);
          out[4] = total.alive ? 1.0 : 0.0;
        }
      }
    }
  }

  __syncthreads();  // the block's shared histograms are complete
  for (int k = 0; k < args.n_ops; ++k) {
    const DeviceOp& op = args.ops[k];
    if (op.kind != PlannedOpKind::Hist || op.hist_shared < 0) continue;
    for (int w = threadIdx.x; w < 2 + op.bins; w += kBlock) {
      const unsigned count = shared_hist[op.hist_shared + w];
      if (count != 0) atomicAdd(op.counters + w, static_cast<unsigned long long>(count));
    }
  }

  __shared__ typename FlatReduce::TempStorage temp;
#pragma unroll
  for (int k = 0; k < kMaxOps; ++k) {
    if (k >= args.n_ops) break;  // n_ops is the same for the whole block
    const FlatAcc total = FlatReduce(temp).Reduce(flat[k], MergeFlat{});
    if (threadIdx.x == 0) partials[static_cast<int64_t>(blockIdx.x) * kMaxOps + k] = total;
    __syncthreads();  // temp is reused by the next reduction
  }
  if constexpr (!kRows) finish_if_last_block(args, partials, temp);
}

}  // namespace

void launch_fused_pass(const PassArgs& args, bool rows, int blocks, FlatAcc* partials,
                       cudaStream_t stream) {
  const size_t shared_bytes = static_cast<size_t>(args.shared_hist_words) * sizeof(unsigned);
  if (rows)
    fused_pass_kernel<true><<<blocks, kBlock, shared_bytes, stream>>>(args, partials);
  else
    fused_pass_kernel<false><<<blocks, kBlock, shared_bytes, stream>>>(args, partials);
  HOOKRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace hookrt::cuda::detail
