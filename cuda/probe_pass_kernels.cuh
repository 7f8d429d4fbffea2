#pragma once
// The pass kernels, launched through probe_pass_kernel.cuh. Each planned pass is one kernel that
// reads the tensor once (or, in a producing run's first pass, computes it from the op's inputs
// and writes it), with one load per chunk of four elements where the address allows, runs the
// pass's probes on each element in registers (changing probes first rewrite the value the later ones see), and
// writes the value back when the pass changed it. Per-block partials go to scratch; a flat pass's
// last block finishes it, a row pass's are finished by the kernels of probe_finish.cu. Histogram
// bins use integer atomics, which are exact in any order.
// Passes walk the tensor flat (the whole grid strides over it) unless they hold a channels probe,
// whose per-channel moments need rows: then each warp takes rows (o, c). zeros finds dead channels
// in either walk: in the flat one, an element that is > 0 or NaN sets its channel's alive flag
// (in the block's shared memory, merged into the global flags when the block is done).
// Each kernel is instantiated for the element types probes read (F32, BF16, F16: loaded as floats,
// stored rounded back, probe_chunks.cuh); a producing pass reads its op's inputs and writes the
// tensor in that type.
// Per element a pass does F32 and 32-bit integer work only (ThreadAcc); fp64 comes in once per
// group of chunks a thread loads together, and in the merges, so that the pass runs at the speed
// of its reads.
// Included only by the files that define the launchers of one element type (probe_pass_<type>.cu,
// probe_input_pass_<type>.cu; see probe_pass_launchers.cuh): everything here sits in an unnamed
// namespace, each such file's own, as device code without relocatable device code is anyway.
#include <cuda/atomic>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "probe_chunks.cuh"
#include "probe_flat_finish.cuh"
#include "probe_pass_kernel.cuh"
#include "probe_pass_launchers.cuh"
#include "status.h"

namespace hookrt::cuda::detail {
namespace {

// Runs a pass's ops, in order, on chunks of its tensor of T; kRows: the pass walks whole rows, so
// per-channel ops accumulate into the row's accumulators.
template <bool kRows, class T>
struct PassVisitor {
  const PassArgs& args;
  ThreadAcc (&flat)[kMaxOps];
  RowAcc (&row)[kMaxOps];
  const float (&scales)[kMaxOps];
  unsigned* shared_hist;
  unsigned char* shared_alive;  // the block's alive flag bytes

  template <int N>
  __device__ __forceinline__ void load(int64_t i, float (&v)[N]) const {
    load_pass_chunk<T, N>(args, i, v);
  }

  // The pass's ops, in order, each on the whole group: the ops work value by value, so each
  // still sees what the ops before it left.
  template <int G, int N>
  __device__ __forceinline__ void work(int64_t i, int64_t step, float (&v)[G][N]) {
#pragma unroll
    for (int k = 0; k < kMaxOps; ++k) {
      if (k >= args.n_ops) break;
      const DeviceOp& op = args.ops[k];
      switch (op.kind) {
        case PlannedOpKind::Clamp:
#pragma unroll
          for (int u = 0; u < G; ++u) apply_clamp<N>(op, i + u * step, v[u], flat[k]);
          break;
        case PlannedOpKind::ClipNorm:
#pragma unroll
          for (int u = 0; u < G; ++u)
#pragma unroll
            for (int j = 0; j < N; ++j) v[u][j] = round_to<T>(v[u][j] * scales[k]);
          break;
        case PlannedOpKind::Stats: accumulate_stats_group<G, N>(v, flat[k]); break;
        case PlannedOpKind::NonFinite:
#pragma unroll
          for (int u = 0; u < G; ++u)
#pragma unroll
            for (int j = 0; j < N; ++j)
              if (!is_finite_f32(v[u][j])) count_nonfinite(v[u][j], flat[k]);
          break;
        case PlannedOpKind::Zeros:
#pragma unroll
          for (int u = 0; u < G; ++u) {
#pragma unroll
            for (int j = 0; j < N; ++j) {
              if (v[u][j] == 0.0f) ++flat[k].zeros;
              if constexpr (kRows) {
                if (!(v[u][j] <= 0.0f)) row[k].alive = 1u;
              }
            }
            if constexpr (!kRows) mark_alive_channels<N>(alive_flags(op, shared_alive), args, i + u * step, v[u]);
          }
          break;
        case PlannedOpKind::Hist:
#pragma unroll
          for (int u = 0; u < G; ++u)
#pragma unroll
            for (int j = 0; j < N; ++j) hist_add(op, v[u][j], shared_hist);
          break;
        case PlannedOpKind::Channels:
          if constexpr (kRows) {
#pragma unroll
            for (int u = 0; u < G; ++u) accumulate_channel<N>(v[u], row[k]);
          }
          break;
      }
    }
#pragma unroll
    for (int u = 0; u < G; ++u) store_pass_chunk<T, N>(args, i + u * step, v[u]);
  }
};

// The common ops on a group of G chunks at element i (chunk u at i + u * step): stats tells, per
// group, whether every value was finite, and then each chunk's largest value: all that zeros'
// alive test needs, so a chunk of a group like that costs it one comparison.
template <int G, int N>
__device__ __forceinline__ void probe_common_group(const PassArgs& args, ThreadAcc& acc, const AliveFlags& alive,
                                                   bool zeros, int64_t i, int64_t step, const float (&v)[G][N]) {
  const StatsGroup<G> group = accumulate_stats_group<G, N>(v, acc);
#pragma unroll
  for (int u = 0; u < G; ++u)
#pragma unroll
    for (int j = 0; j < N; ++j)
      if (v[u][j] == 0.0f) ++acc.zeros;
  if (zeros) {
#pragma unroll
    for (int u = 0; u < G; ++u) {
      const bool any = group.fast ? group.chunk_max[u] > 0.0f : any_alive<N>(v[u]);
      if (any) mark_chunk_alive<N>(alive, args, i + u * step, v[u]);
    }
  }
}

// The common pass: stats, nonfinite and at most one zeros, none of which changes the tensor. One
// ThreadAcc holds all three, as stats counts the non-finite values that nonfinite reports and
// zeros adds its count beside them: a handful of registers rather than one accumulator per op,
// so that more warps fit on a multiprocessor and keep more loads in flight. Each op's slot reads
// only its own fields, so the slots have the bits the general pass gives them.
template <class T>
struct CommonVisitor {
  const PassArgs& args;
  ThreadAcc& acc;
  AliveFlags alive;  // the zeros op's, when there is one
  bool zeros;

  template <int N>
  __device__ __forceinline__ void load(int64_t i, float (&v)[N]) const {
    load_pass_chunk<T, N>(args, i, v);
  }

  template <int G, int N>
  __device__ __forceinline__ void work(int64_t i, int64_t step, float (&v)[G][N]) {
    probe_common_group<G, N>(args, acc, alive, zeros, i, step, v);
#pragma unroll
    for (int u = 0; u < G; ++u) store_pass_chunk<T, N>(args, i + u * step, v[u]);
  }
};

// What a pass that probes its producing op's input keeps besides the values: both tensors'
// accumulators and alive flags. The input's ops run on the input as loaded; the output's (when it
// has any) on the op's result, which is then stored as a T. One more accumulator than the common
// pass, and the input never read twice.
template <class T>
struct InputProbing {
  const PassArgs& args;
  ThreadAcc& acc;
  ThreadAcc& input_acc;
  AliveFlags alive, input_alive;
  bool zeros, input_zeros;

  template <int G, int N>
  __device__ __forceinline__ void input(int64_t i, int64_t step, const float (&x)[G][N]) {
    probe_common_group<G, N>(args, input_acc, input_alive, input_zeros, i, step, x);
  }
  template <int G, int N>
  __device__ __forceinline__ void output(int64_t i, int64_t step, const float (&y)[G][N]) {
    if (args.n_ops > 0) probe_common_group<G, N>(args, acc, alive, zeros, i, step, y);
#pragma unroll
    for (int u = 0; u < G; ++u) store_pass_chunk<T, N>(args, i + u * step, y[u]);
  }
};

// The pass of an op with one input (a ReLU, a batch norm's apply) over tensors of T, probing that
// input as it loads it.
template <class T, ProducerKind kKind>
struct OneInputVisitor {
  InputProbing<T> probing;

  template <int N>
  __device__ __forceinline__ void load(int64_t i, float (&v)[N]) const {
    load_unaligned_chunk<N>(static_cast<const T*>(probing.args.producer.a) + i, v);
  }

  template <int G, int N>
  __device__ __forceinline__ void work(int64_t i, int64_t step, float (&v)[G][N]) {
    probing.template input<G, N>(i, step, v);
    const FusedProducer& producer = probing.args.producer;
#pragma unroll
    for (int u = 0; u < G; ++u) {
      if constexpr (kKind == ProducerKind::BatchNormApply) {
        ChannelCursor at = channel_cursor(producer, i + u * step);
#pragma unroll
        for (int j = 0; j < N; ++j) {
          v[u][j] = batchnorm_apply_value<T>(producer, at.channel, v[u][j]);
          at.next(producer.inner, producer.channels);
        }
      } else {
#pragma unroll
        for (int j = 0; j < N; ++j) v[u][j] = relu_value(v[u][j]);
      }
    }
    probing.template output<G, N>(i, step, v);
  }
};

// The pass of an op that reads two inputs (a residual add's ReLU, a ReLU backward) of T, probing
// input kInput: it loads both (kValues: a chunk's array holds a's values, then b's), so that it
// keeps as many loads in flight as the common pass with half as many chunks to a group.
template <class T, ProducerKind kKind, int kInput>
struct TwoInputVisitor {
  static constexpr int kValues = 2;
  InputProbing<T> probing;

  template <int N>
  __device__ __forceinline__ void load(int64_t i, float (&v)[2 * N]) const {
    load_unaligned_chunk<N>(static_cast<const T*>(probing.args.producer.a) + i, reinterpret_cast<float(&)[N]>(v[0]));
    load_unaligned_chunk<N>(static_cast<const T*>(probing.args.producer.b) + i, reinterpret_cast<float(&)[N]>(v[N]));
  }

  template <int G, int N>
  __device__ __forceinline__ void work(int64_t i, int64_t step, float (&v)[G][2 * N]) {
    float x[G][N];
#pragma unroll
    for (int u = 0; u < G; ++u)
#pragma unroll
      for (int j = 0; j < N; ++j) x[u][j] = v[u][kInput * N + j];
    probing.template input<G, N>(i, step, x);
#pragma unroll
    for (int u = 0; u < G; ++u)
#pragma unroll
      for (int j = 0; j < N; ++j) x[u][j] = produced_value<T, kKind>(v[u][j], v[u][N + j]);
    probing.template output<G, N>(i, step, x);
  }
};

template <class T, ProducerKind kKind, int kInput>
struct ProbingInputVisitor {
  using type = TwoInputVisitor<T, kKind, kInput>;
};
template <class T>
struct ProbingInputVisitor<T, ProducerKind::ReluForward, 0> {
  using type = OneInputVisitor<T, ProducerKind::ReluForward>;
};
template <class T>
struct ProbingInputVisitor<T, ProducerKind::BatchNormApply, 0> {
  using type = OneInputVisitor<T, ProducerKind::BatchNormApply>;
};

// After the walk (and a __syncthreads): the block's shared alive flags into the global ones, each
// flag set once per block at most, before the block counts itself done.
__device__ __forceinline__ void flush_alive_flags(const DeviceOp* ops, int n_ops, int64_t channels,
                                                  const unsigned char* shared_alive) {
  for (int k = 0; k < n_ops; ++k) {
    const DeviceOp& op = ops[k];
    if (op.kind != PlannedOpKind::Zeros || op.alive_shared < 0) continue;
    const unsigned char* flags = shared_alive + op.alive_shared;
    unsigned long long* global = op.counters + 1;
    for (int64_t c = threadIdx.x; c < channels; c += kBlock)
      if (flags[c] != 0 && __ldcg(global + c) == 0) global[c] = 1;
  }
}

__device__ __forceinline__ void flush_alive_flags(const PassArgs& args, const unsigned char* shared_alive) {
  flush_alive_flags(args.ops, args.n_ops, args.channels, shared_alive);
}

// A flat pass is finished by its last block to arrive, so that the block that counts last sees
// every other block's writes (partials, histogram counts, alive flags) in finish_ops. The barrier
// orders the block's writes before thread 0's count, and thread 0 counts with a device-scope
// acquire-release add: PTX's release is cumulative, so it publishes what the barrier ordered
// before it, and the last block's acquire makes the other blocks' writes visible to its reads
// (through L2, __ldcg) after the second barrier. One fence per block in one thread, where
// __threadfence() in every thread cost each warp a sequentially consistent fence and an L1
// invalidation at the end of every block. `blocks`: how many blocks the pass has (the grid's, or
// its share of a batch's grid).
__device__ __forceinline__ bool last_block_to_finish(const PassArgs& args, int blocks) {
  __shared__ bool last;
  __syncthreads();
  if (threadIdx.x == 0) {
    ::cuda::atomic_ref<unsigned long long, ::cuda::thread_scope_device> done(*args.done);
    last = done.fetch_add(1ull, ::cuda::memory_order_acq_rel) == static_cast<unsigned long long>(blocks) - 1;
  }
  __syncthreads();
  return last;  // the same for the whole block
}

// The last block: each op's slot from its merged partials, partials[b * kMaxOps + k] for op k, or
// partials[b * kMaxOps + shared_partial] for every op where the ops share one accumulator. It
// merges them in block order with flat_finish_kernel's code, so the slot has the same bits as a
// separate finishing launch would give, and it zeroes the counters behind it: the pass needs
// neither a memset before it nor a kernel after it.
__device__ __forceinline__ void finish_ops(const DeviceOp* ops, int n_ops, double* slot_base, int64_t channels,
                                           const FlatAcc* partials, int blocks, int shared_partial,
                                           BlockMergeStorage& temp) {
  __shared__ unsigned long long dead_total;
  // Ops that share one accumulator share its merge: one pass over the partials and one block
  // reduction, however many ops (the finish is the pass's tail, where one block works alone).
  FlatAcc shared_total = empty_flat();
  if (shared_partial >= 0 && n_ops > 0) {
    shared_total = merge_block_partials(partials, blocks, shared_partial, temp);
    __syncthreads();  // temp is reused below
  }
  for (int k = 0; k < n_ops; ++k) {
    const DeviceOp& op = ops[k];
    const FlatAcc total =
        shared_partial >= 0 ? shared_total : merge_block_partials(partials, blocks, k, temp);
    const unsigned long long dead =
        op.kind == PlannedOpKind::Zeros ? count_dead_channels_and_reset(op, channels, dead_total) : 0ull;
    double* slot = slot_base + op.slot;
    if (threadIdx.x == 0) write_flat_slot(op, slot, total, dead);
    if (op.kind == PlannedOpKind::Hist) copy_histogram(op, slot, /*reset=*/true);
    __syncthreads();  // temp and dead_total are reused by the next op
  }
}

__device__ __forceinline__ void finish_if_last_block(const PassArgs& args, const FlatAcc* partials,
                                                     BlockMergeStorage& temp) {
  const int blocks = static_cast<int>(gridDim.x);
  if (!last_block_to_finish(args, blocks)) return;
  finish_ops(args.ops, args.n_ops, args.slot, args.channels, partials, blocks, -1, temp);
  if (threadIdx.x == 0) *args.done = 0;
}

// One pass over a tensor of T. Flat mode: a grid-stride walk over the whole tensor. Row mode: each
// warp takes rows (o, c) in a grid-stride walk and leaves one partial per row and per-channel op.
template <bool kRows, class T>
__global__ void __launch_bounds__(kBlock) fused_pass_kernel(const PassArgs args, FlatAcc* partials) {
  // (args.shared_hist_words) histogram words, then (args.shared_alive_words) words of alive flags
  extern __shared__ unsigned shared_words[];
  unsigned* shared_hist = shared_words;
  for (int w = threadIdx.x; w < args.shared_hist_words + args.shared_alive_words; w += kBlock) shared_words[w] = 0;
  unsigned char* shared_alive = reinterpret_cast<unsigned char*>(shared_words + args.shared_hist_words);
  __syncthreads();

  ThreadAcc flat[kMaxOps];
  RowAcc row[kMaxOps];
  float scales[kMaxOps];
#pragma unroll
  for (int k = 0; k < kMaxOps; ++k) {
    flat[k] = empty_thread();
    row[k] = empty_row();
    scales[k] = (k < args.n_ops && args.ops[k].kind == PlannedOpKind::ClipNorm) ? *args.ops[k].scale : 1.0f;
  }
  PassVisitor<kRows, T> visit{args, flat, row, scales, shared_hist, shared_alive};
  const T* x = static_cast<const T*>(args.x);

  if constexpr (!kRows) {
    visit_range(x, 0, args.n, static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x,
                static_cast<int64_t>(gridDim.x) * kBlock, visit);
  } else {
    const int lane = threadIdx.x % kWarpSize;
    const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
    // r is the same for every lane of a warp, so the whole warp reaches the shuffles below.
    for (int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarpSize; r < args.rows;
         r += warps) {
#pragma unroll
      for (int k = 0; k < kMaxOps; ++k) row[k] = empty_row();
      visit_range(x, r * args.inner, (r + 1) * args.inner, lane, kWarpSize, visit);
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

  __syncthreads();  // the block's shared histograms and alive flags are complete
  for (int k = 0; k < args.n_ops; ++k) {
    const DeviceOp& op = args.ops[k];
    if (op.kind != PlannedOpKind::Hist || op.hist_shared < 0) continue;
    for (int w = threadIdx.x; w < 2 + op.bins; w += kBlock) {
      const unsigned count = shared_hist[op.hist_shared + w];
      if (count != 0) atomicAdd(op.counters + w, static_cast<unsigned long long>(count));
    }
  }
  if constexpr (!kRows) flush_alive_flags(args, shared_alive);

  __shared__ BlockMergeStorage temp;
#pragma unroll
  for (int k = 0; k < kMaxOps; ++k) {
    if (k >= args.n_ops) break;  // n_ops is the same for the whole block
    const FlatAcc total = block_merge(flat[k], temp);
    if (threadIdx.x == 0) partials[static_cast<int64_t>(blockIdx.x) * kMaxOps + k] = total;
    __syncthreads();  // temp is reused by the next reduction
  }
  if constexpr (!kRows) finish_if_last_block(args, partials, temp);
}

// The common pass (CommonVisitor) over a tensor of T, flat, finished by its last block as the
// general flat pass is, run by block `block` of the pass's `blocks` (a grid's, or a share of a
// batch's grid).
template <class T>
__device__ __forceinline__ void common_pass(const PassArgs& args, FlatAcc* partials, int block, int blocks) {
  extern __shared__ unsigned shared_words[];  // (args.shared_alive_words) words of alive flags
  for (int w = threadIdx.x; w < args.shared_alive_words; w += kBlock) shared_words[w] = 0;
  unsigned char* shared_alive = reinterpret_cast<unsigned char*>(shared_words);
  __syncthreads();

  int zeros_op = -1;
  for (int k = 0; k < args.n_ops; ++k)
    if (args.ops[k].kind == PlannedOpKind::Zeros) zeros_op = k;
  ThreadAcc acc = empty_thread();
  CommonVisitor<T> visit{args, acc,
                         zeros_op >= 0 ? alive_flags(args.ops[zeros_op], shared_alive) : AliveFlags{nullptr, nullptr},
                         zeros_op >= 0};
  visit_range(static_cast<const T*>(args.x), 0, args.n, static_cast<int64_t>(block) * kBlock + threadIdx.x,
              static_cast<int64_t>(blocks) * kBlock, visit);

  __syncthreads();  // the block's shared alive flags are complete
  flush_alive_flags(args, shared_alive);
  __shared__ BlockMergeStorage temp;
  const FlatAcc total = block_merge(acc, temp);
  if (threadIdx.x == 0) partials[static_cast<int64_t>(block) * kMaxOps] = total;  // every op's
  __syncthreads();  // temp is reused by the finish
  if (!last_block_to_finish(args, blocks)) return;
  finish_ops(args.ops, args.n_ops, args.slot, args.channels, partials, blocks, 0, temp);
  if (threadIdx.x == 0) *args.done = 0;
}

template <class T>
__global__ void __launch_bounds__(kBlock, 2) common_pass_kernel(const PassArgs args, FlatAcc* partials) {
  common_pass<T>(args, partials, static_cast<int>(blockIdx.x), static_cast<int>(gridDim.x));
}

// Several common passes over tensors of T as one grid: pass r has blocks [first_block[r],
// first_block[r + 1]) and its partials at partials[r]. The arguments stay in the kernel's parameter space
// (__grid_constant__), where a block indexes them by its pass without copying them.
template <class T>
__global__ void __launch_bounds__(kBlock, 2) batch_common_pass_kernel(const __grid_constant__ BatchPassArgs batch) {
  const int b = static_cast<int>(blockIdx.x);
  int r = 0;
  while (r + 1 < batch.passes && b >= batch.first_block[r + 1]) ++r;
  common_pass<T>(batch.pass[r], batch.partials[r], b - batch.first_block[r], batch.first_block[r + 1] - batch.first_block[r]);
}

// The common pass of a producing op's output with its input's probes (OneInputVisitor,
// TwoInputVisitor), over tensors of T, finished by its last block: the output's ops from
// partial 0, the input's from partial 1.
template <class T, ProducerKind kKind, int kInput>
__global__ void __launch_bounds__(kBlock, 2)
    probing_input_kernel(const PassArgs args, const InputPassArgs input, FlatAcc* partials) {
  extern __shared__ unsigned shared_words[];  // (args.shared_alive_words) words: both tensors' flags
  for (int w = threadIdx.x; w < args.shared_alive_words; w += kBlock) shared_words[w] = 0;
  unsigned char* shared_alive = reinterpret_cast<unsigned char*>(shared_words);
  __syncthreads();

  int zeros_op = -1, input_zeros_op = -1;
  for (int k = 0; k < args.n_ops; ++k)
    if (args.ops[k].kind == PlannedOpKind::Zeros) zeros_op = k;
  for (int k = 0; k < input.n_ops; ++k)
    if (input.ops[k].kind == PlannedOpKind::Zeros) input_zeros_op = k;
  const AliveFlags none{nullptr, nullptr};
  ThreadAcc acc = empty_thread();
  ThreadAcc input_acc = empty_thread();
  typename ProbingInputVisitor<T, kKind, kInput>::type visit{
      InputProbing<T>{args, acc, input_acc,
                   zeros_op >= 0 ? alive_flags(args.ops[zeros_op], shared_alive) : none,
                   input_zeros_op >= 0 ? alive_flags(input.ops[input_zeros_op], shared_alive) : none,
                   zeros_op >= 0, input_zeros_op >= 0}};
  const int blocks = static_cast<int>(gridDim.x);
  visit_range(static_cast<const T*>(args.x), 0, args.n, static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x,
              static_cast<int64_t>(blocks) * kBlock, visit);

  __syncthreads();  // the block's shared alive flags are complete
  flush_alive_flags(args, shared_alive);
  flush_alive_flags(input.ops, input.n_ops, args.channels, shared_alive);
  __shared__ BlockMergeStorage temp;
  const FlatAcc total = block_merge(acc, temp);
  if (threadIdx.x == 0) partials[static_cast<int64_t>(blockIdx.x) * kMaxOps] = total;
  __syncthreads();  // temp is reused
  const FlatAcc input_total = block_merge(input_acc, temp);
  if (threadIdx.x == 0) partials[static_cast<int64_t>(blockIdx.x) * kMaxOps + 1] = input_total;
  __syncthreads();  // temp is reused by the finish
  if (!last_block_to_finish(args, blocks)) return;
  finish_ops(args.ops, args.n_ops, args.slot, args.channels, partials, blocks, 0, temp);
  finish_ops(input.ops, input.n_ops, input.slot, args.channels, partials, blocks, 1, temp);
  if (threadIdx.x == 0) *args.done = 0;
}

}  // namespace

// ---- the launchers of one element type, for probe_pass_<type>.cu and probe_input_pass_<type>.cu
// to define probe_pass_launchers.cuh's functions with ----

namespace {

template <class T>
int typed_pass_blocks_per_multiprocessor(PassKernel kernel) {
  int blocks = 0;
  const auto query = [&](auto pass_kernel) {
    HOOKRT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, pass_kernel, kBlock, 0));
  };
  switch (kernel) {
    case PassKernel::Rows: query(fused_pass_kernel<true, T>); break;
    case PassKernel::Flat: query(fused_pass_kernel<false, T>); break;
    case PassKernel::Common: query(common_pass_kernel<T>); break;
  }
  return blocks;
}

template <class T>
void typed_launch_pass(const PassArgs& args, PassKernel kernel, int blocks, FlatAcc* partials, size_t shared_bytes,
                       cudaStream_t stream) {
  switch (kernel) {
    case PassKernel::Rows: fused_pass_kernel<true, T><<<blocks, kBlock, shared_bytes, stream>>>(args, partials); break;
    case PassKernel::Flat: fused_pass_kernel<false, T><<<blocks, kBlock, shared_bytes, stream>>>(args, partials); break;
    case PassKernel::Common: common_pass_kernel<T><<<blocks, kBlock, shared_bytes, stream>>>(args, partials); break;
  }
}

template <class T>
void typed_launch_batch_pass(const BatchPassArgs& batch, size_t shared_bytes, cudaStream_t stream) {
  batch_common_pass_kernel<T><<<batch.first_block[batch.passes], kBlock, shared_bytes, stream>>>(batch);
}

// Calls fn with the kernel of a variant (probing_input_variant) over tensors of T.
template <class T, class Fn>
void with_input_pass_kernel(int variant, Fn fn) {
  switch (variant) {
    case 0: return fn(probing_input_kernel<T, ProducerKind::ReluForward, 0>);
    case 1: return fn(probing_input_kernel<T, ProducerKind::AddReluForward, 0>);
    case 2: return fn(probing_input_kernel<T, ProducerKind::AddReluForward, 1>);
    case 3: return fn(probing_input_kernel<T, ProducerKind::ReluBackward, 1>);
    case 4: return fn(probing_input_kernel<T, ProducerKind::BatchNormApply, 0>);
  }
  throw Error("internal: no pass probes input " + std::to_string(variant) + " of its producing op that way");
}

template <class T>
int typed_input_pass_blocks_per_multiprocessor(int variant) {
  int blocks = 0;
  with_input_pass_kernel<T>(variant, [&](auto kernel) {
    HOOKRT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, kBlock, 0));
  });
  return blocks;
}

template <class T>
void typed_launch_input_pass(const PassArgs& args, const InputPassArgs& input, int variant, int blocks,
                             FlatAcc* partials, size_t shared_bytes, cudaStream_t stream) {
  with_input_pass_kernel<T>(variant, [&](auto kernel) {
    kernel<<<blocks, kBlock, shared_bytes, stream>>>(args, input, partials);
  });
}

}  // namespace

}  // namespace hookrt::cuda::detail
