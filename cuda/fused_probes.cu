// The fused probe kernels (see fused_probes.cuh). Each planned pass is one kernel that reads the
// tensor once, with float4 loads where the address allows, runs the pass's probes on each element
// in registers (changing probes first rewrite the value the later ones see), and writes the value
// back when the pass changed it. Per-block partials go to scratch; small finishing kernels combine
// them in a fixed order in fp64, so a slot has the same bits on every run on the same GPU. Integer
// counts (histogram bins, dead channels) use integer atomics, which are exact in any order.
// Passes walk the tensor flat (the whole grid strides over it) unless they hold a channels probe,
// whose per-channel moments need rows: then each warp takes rows (o, c). zeros finds dead channels
// in either walk: in the flat one, an element that is > 0 or NaN sets its channel's alive flag.
#include <cub/block/block_reduce.cuh>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "fused_probes.cuh"
#include "status.h"

namespace hookrt::cuda {
namespace {

constexpr int kBlock = 256;
constexpr int kWarpSize = 32;
constexpr int kWarpsPerBlock = kBlock / kWarpSize;
constexpr int kMaxOps = static_cast<int>(kMaxOpsPerPass);
// A row partial of a per-channel op: finite count, mean, M2, zeros, alive (some value > 0 or NaN).
constexpr int kRowFields = 5;
// Histograms of a pass live in shared memory when they fit in 32 KiB (under the 48 KiB a block
// gets without opting in, beside CUB's reduction storage); larger ones count in global memory.
constexpr int kMaxSharedHistWords = 8192;

// One op of a pass as the kernel reads it (a kernel parameter, so it sits in constant memory).
struct DeviceOp {
  PlannedOpKind kind;
  float lo, hi;                     // clamp, bounds rounded to float as torch.clamp on F32
  float* mask;                      // clamp's grad mask (numel) or nullptr
  const float* scale;               // clipnorm's scale (1)
  int bins;                         // hist
  double hist_lo, hist_hi;          // hist
  int hist_shared;                  // hist: first word in the block's shared histogram, or -1
  unsigned long long* counters;     // hist: (2 + bins) below, above, bins; zeros: (1) dead channels,
                                    // then in a flat pass (channels) alive flags
  double* rows;                     // row passes only, zeros and channels: (rows, kRowFields) partials
  int64_t slot;                     // first slot entry
};

struct PassArgs {
  float* x;  // (n) the tensor
  int64_t n;
  int n_ops;
  DeviceOp ops[kMaxOps];
  bool write_back;   // some op changes the tensor
  float* capture;    // (n) copy of the tensor at the pass's end, or nullptr
  int64_t inner;     // row length (row mode)
  int64_t rows;      // outer * channels (row mode)
  int64_t channels;  // channel finishing
  int64_t outer;     // channel finishing
  int shared_hist_words;
  double* slot;
};

// What one thread accumulates for one flat op. count is the finite count for stats and the
// changed count for clamp; the moments are Welford's over the finite values.
struct FlatAcc {
  unsigned long long count, nan, posinf, neginf, zeros;
  double mean, m2, l1, squares;
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
  a.mean = a.m2 = a.l1 = a.squares = 0;
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

struct MergeFlat {
  __device__ __forceinline__ FlatAcc operator()(FlatAcc a, const FlatAcc& b) const {
    merge_moments(a.count, a.mean, a.m2, b.count, b.mean, b.m2);
    a.nan += b.nan;
    a.posinf += b.posinf;
    a.neginf += b.neginf;
    a.zeros += b.zeros;
    a.l1 += b.l1;
    a.squares += b.squares;
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

// ---- loading and storing chunks of 1 or 4 elements ----

template <int N>
__device__ __forceinline__ void load_chunk(const float* p, float (&v)[N]) {
  if constexpr (N == 4) {
    const float4 q = *reinterpret_cast<const float4*>(p);  // visit_range hands out aligned chunks
    v[0] = q.x;
    v[1] = q.y;
    v[2] = q.z;
    v[3] = q.w;
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) v[j] = p[j];
  }
}

// Outputs (masks, captures) may sit at another alignment than the tensor: check each address.
template <int N>
__device__ __forceinline__ void store_chunk(float* p, const float (&v)[N]) {
  if constexpr (N == 4) {
    if (reinterpret_cast<uintptr_t>(p) % 16 == 0) {
      *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
      return;
    }
  }
#pragma unroll
  for (int j = 0; j < N; ++j) p[j] = v[j];
}

// Visits x[begin, end) as participant `index` of `stride`: scalars up to the first 16-byte
// boundary, float4 chunks, then scalars for the tail. Every element is visited exactly once.
template <class Visitor>
__device__ __forceinline__ void visit_range(const float* x, int64_t begin, int64_t end, int64_t index,
                                            int64_t stride, Visitor& visit) {
  if (begin >= end) return;
  const uintptr_t address = reinterpret_cast<uintptr_t>(x + begin);
  const int64_t to_boundary = static_cast<int64_t>(((16 - address % 16) % 16) / sizeof(float));
  const int64_t body = begin + (to_boundary < end - begin ? to_boundary : end - begin);
  for (int64_t i = begin + index; i < body; i += stride) visit.template chunk<1>(i);
  const int64_t vectors = (end - body) / 4;
  for (int64_t k = index; k < vectors; k += stride) visit.template chunk<4>(body + 4 * k);
  for (int64_t i = body + 4 * vectors + index; i < end; i += stride) visit.template chunk<1>(i);
}

// ---- the probes on one chunk ----

__device__ __forceinline__ void count_nonfinite(float x, FlatAcc& acc) {
  if (isnan(x))
    ++acc.nan;
  else if (x > 0)
    ++acc.posinf;
  else
    ++acc.neginf;
}

// The chunk's own moments over its `finite` finite values (summing to `sum`), merged into
// (count, mean, m2) at once: one division per chunk rather than per element.
template <int N>
__device__ __forceinline__ void merge_chunk_moments(const float (&v)[N], unsigned long long finite, double sum,
                                                    unsigned long long& count, double& mean, double& m2) {
  if (finite == 0) return;
  const double chunk_mean = sum / static_cast<double>(finite);
  double chunk_m2 = 0;
#pragma unroll
  for (int j = 0; j < N; ++j)
    if (isfinite(v[j])) {
      const double d = static_cast<double>(v[j]) - chunk_mean;
      chunk_m2 += d * d;
    }
  merge_moments(count, mean, m2, finite, chunk_mean, chunk_m2);
}

template <int N>
__device__ __forceinline__ void accumulate_stats(const float (&v)[N], FlatAcc& acc) {
  unsigned long long finite = 0;
  double sum = 0;
#pragma unroll
  for (int j = 0; j < N; ++j) {
    const float x = v[j];
    if (!isfinite(x)) {
      count_nonfinite(x, acc);
      continue;
    }
    ++finite;
    sum += x;
    acc.l1 += fabsf(x);
    acc.squares += static_cast<double>(x) * x;
    acc.min = fminf(acc.min, x);
    acc.max = fmaxf(acc.max, x);
    acc.abs_max = fmaxf(acc.abs_max, fabsf(x));
  }
  merge_chunk_moments<N>(v, finite, sum, acc.count, acc.mean, acc.m2);
}

template <int N>
__device__ __forceinline__ void accumulate_channel(const float (&v)[N], RowAcc& row) {
  unsigned long long finite = 0;
  double sum = 0;
#pragma unroll
  for (int j = 0; j < N; ++j) {
    if (v[j] == 0.0f) ++row.zeros;
    if (!isfinite(v[j])) continue;
    ++finite;
    sum += v[j];
  }
  merge_chunk_moments<N>(v, finite, sum, row.count, row.mean, row.m2);
}

// cpu::hist_bin's formula in double, so every value lands in the bin the CPU reference gives it.
__device__ __forceinline__ void hist_add(const DeviceOp& op, float value, unsigned* shared_hist) {
  if (isnan(value)) return;
  const double v = value;
  int index;
  if (v < op.hist_lo) {
    index = static_cast<int>(probe_slot::kHistBelow);
  } else if (v > op.hist_hi) {
    index = static_cast<int>(probe_slot::kHistAbove);
  } else {
    const double position = floor((v - op.hist_lo) * op.bins / (op.hist_hi - op.hist_lo));
    index = static_cast<int>(probe_slot::kHistCounts) +
            static_cast<int>(fmin(fmax(position, 0.0), static_cast<double>(op.bins - 1)));
  }
  if (op.hist_shared >= 0)
    atomicAdd(shared_hist + op.hist_shared + index, 1u);
  else
    atomicAdd(op.counters + index, 1ull);
}

// x = clamp(x, lo, hi) as torch.clamp on F32 (NaN stays), with the grad mask and changed count
// of cpu::apply_clamp.
template <int N>
__device__ __forceinline__ void apply_clamp(const DeviceOp& op, int64_t i, float (&v)[N], FlatAcc& acc) {
  float mask[N];
#pragma unroll
  for (int j = 0; j < N; ++j) {
    const float before = v[j];
    mask[j] = (before >= op.lo && before <= op.hi) ? 1.0f : 0.0f;
    float after = before;
    if (after < op.lo) after = op.lo;
    if (after > op.hi) after = op.hi;
    if (after != before && !isnan(before)) ++acc.count;
    v[j] = after;
  }
  if (op.mask) store_chunk<N>(op.mask + i, mask);
}

// The row (o, c) of flat element i, o * channels + c = i / inner, in 32-bit arithmetic where the
// tensor allows (integer division is the costliest thing a memory-bound pass does per chunk).
__device__ __forceinline__ int64_t row_of(int64_t i, const PassArgs& args) {
  if (args.n <= 0xffffffffll) return static_cast<uint32_t>(i) / static_cast<uint32_t>(args.inner);
  return i / args.inner;
}

__device__ __forceinline__ int64_t channel_of_row(int64_t row, const PassArgs& args) {
  if (args.n <= 0xffffffffll) return static_cast<uint32_t>(row) % static_cast<uint32_t>(args.channels);
  return row % args.channels;
}

// zeros in a flat pass: sets the alive flag (counters[1 + c]) of each channel with a value > 0 or
// NaN in the chunk. A chunk within one row costs two divisions and a remainder; the flag is read
// before it is written, so a channel's flag is stored only until the store is visible, not once
// per element.
template <int N>
__device__ __forceinline__ void mark_alive_channels(const DeviceOp& op, const PassArgs& args, int64_t i,
                                                    const float (&v)[N]) {
  bool any = false;
#pragma unroll
  for (int j = 0; j < N; ++j) any = any || !(v[j] <= 0.0f);
  if (!any) return;
  unsigned long long* alive = op.counters + 1;
  const int64_t row = row_of(i, args);
  if (N == 1 || row == row_of(i + N - 1, args)) {
    const int64_t c = channel_of_row(row, args);
    if (alive[c] == 0) alive[c] = 1;
    return;
  }
  if constexpr (N > 1) {  // the chunk crosses rows: each element's own channel
#pragma unroll
    for (int j = 0; j < N; ++j)
      if (!(v[j] <= 0.0f)) {
        const int64_t c = channel_of_row(row_of(i + j, args), args);
        if (alive[c] == 0) alive[c] = 1;
      }
  }
}

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
    load_chunk<N>(args.x + i, v);
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

__device__ __forceinline__ bool per_channel_kind(PlannedOpKind kind) {
  return kind == PlannedOpKind::Zeros || kind == PlannedOpKind::Channels;
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

  using Reduce = cub::BlockReduce<FlatAcc, kBlock>;
  __shared__ typename Reduce::TempStorage temp;
#pragma unroll
  for (int k = 0; k < kMaxOps; ++k) {
    if (k >= args.n_ops) break;  // n_ops is the same for the whole block
    const FlatAcc total = Reduce(temp).Reduce(flat[k], MergeFlat{});
    if (threadIdx.x == 0) partials[static_cast<int64_t>(blockIdx.x) * kMaxOps + k] = total;
    __syncthreads();  // temp is reused by the next reduction
  }
}

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

// ---- clipnorm's norm pass ----

// The sum of squares of every element as ops [0, end) of the pass leave it (without their side
// effects: no masks, no counts, no writes).
struct NormVisitor {
  const PassArgs& args;
  int end;
  const float (&scales)[kMaxOps];
  double squares;

  template <int N>
  __device__ __forceinline__ void chunk(int64_t i) {
    float v[N];
    load_chunk<N>(args.x + i, v);
#pragma unroll
    for (int k = 0; k < kMaxOps; ++k) {
      if (k >= end) break;
      const DeviceOp& op = args.ops[k];
#pragma unroll
      for (int j = 0; j < N; ++j) {
        if (op.kind == PlannedOpKind::Clamp) {
          if (v[j] < op.lo) v[j] = op.lo;
          if (v[j] > op.hi) v[j] = op.hi;
        } else if (op.kind == PlannedOpKind::ClipNorm) {
          v[j] *= scales[k];
        }
      }
    }
#pragma unroll
    for (int j = 0; j < N; ++j) squares += static_cast<double>(v[j]) * v[j];
  }
};

__global__ void __launch_bounds__(kBlock) norm_pass_kernel(const PassArgs args, int end, double* partials) {
  float scales[kMaxOps];
#pragma unroll
  for (int k = 0; k < kMaxOps; ++k)
    scales[k] = (k < end && args.ops[k].kind == PlannedOpKind::ClipNorm) ? *args.ops[k].scale : 1.0f;
  NormVisitor visit{args, end, scales, 0.0};
  visit_range(args.x, 0, args.n, static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x,
              static_cast<int64_t>(gridDim.x) * kBlock, visit);
  using Reduce = cub::BlockReduce<double, kBlock>;
  __shared__ typename Reduce::TempStorage temp;
  const double total = Reduce(temp).Sum(visit.squares);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// cpu::clip_coefficient, in the same float32 arithmetic.
__device__ __forceinline__ float clip_coefficient(double norm, double max_norm) {
  const float denominator = static_cast<float>(norm) + 1e-6f;
  const float coefficient = (1.0f / denominator) * static_cast<float>(max_norm);
  return coefficient > 1.0f ? 1.0f : coefficient;
}

// One block: the norm from the block partials in a fixed order, then the scale into the slot and
// the clipnorm's device scale (which the main pass and the gradient transform read).
__global__ void __launch_bounds__(kBlock) norm_finish_kernel(const double* partials, int blocks, double max_norm,
                                                            double* slot, float* scale) {
  double sum = 0;
  for (int b = threadIdx.x; b < blocks; b += kBlock) sum += partials[b];
  using Reduce = cub::BlockReduce<double, kBlock>;
  __shared__ typename Reduce::TempStorage temp;
  const double total = Reduce(temp).Sum(sum);
  if (threadIdx.x != 0) return;
  const double norm = sqrt(total);
  const float coefficient = clip_coefficient(norm, max_norm);
  slot[probe_slot::kClipNormNorm] = norm;
  slot[probe_slot::kClipNormScale] = coefficient;
  *scale = coefficient;
}

// ---- host side ----

// Multiprocessors of the current device, asked once per device.
int multiprocessors() {
  static std::mutex mutex;
  static std::vector<int> known;  // by device; 0 until asked
  int device = 0;
  HOOKRT_CUDA_CHECK(cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(mutex);
  if (static_cast<size_t>(device) >= known.size()) known.resize(static_cast<size_t>(device) + 1, 0);
  int& count = known[static_cast<size_t>(device)];
  if (count == 0) HOOKRT_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

// Enough blocks for `items` at `per_block` each, at most two per multiprocessor (grid-stride
// loops cover the rest), at least one so that finishing kernels always have partials to read.
int grid_for(int64_t items, int64_t per_block) {
  const int64_t wanted = (items + per_block - 1) / per_block;
  const int64_t most = 2 * static_cast<int64_t>(multiprocessors());
  return static_cast<int>(std::max<int64_t>(1, std::min(wanted, most)));
}

size_t round_up(size_t bytes) { return (bytes + 255) / 256 * 256; }

void check_launch() { HOOKRT_CUDA_CHECK(cudaGetLastError()); }

// Scratch of one pass, carved from one allocation.
struct PassScratch {
  std::shared_ptr<Storage> storage;
  FlatAcc* partials = nullptr;       // (blocks, kMaxOps)
  double* norm_partials = nullptr;   // (flat blocks)
  unsigned long long* counters = nullptr;
  size_t counter_bytes = 0;
  std::vector<double*> rows;         // by op
  std::vector<unsigned long long*> op_counters;  // by op
};

PassScratch allocate_pass_scratch(const ProbePlan& plan, const PlannedPass& pass, int blocks, int flat_blocks,
                                  const ProbeScratchAllocator& scratch) {
  const size_t ops = pass.ops.size();
  const bool row_pass = pass.per_channel();
  std::vector<size_t> counter_words(ops, 0), row_doubles(ops, 0);
  size_t counters_total = 0, rows_total = 0;
  for (size_t k = 0; k < ops; ++k) {
    const PlannedOp& op = pass.ops[k];
    if (op.kind == PlannedOpKind::Hist) counter_words[k] = 2 + static_cast<size_t>(op.bins);
    // zeros: the dead count, then (flat passes) one alive flag per channel.
    if (op.kind == PlannedOpKind::Zeros) counter_words[k] = 1 + (row_pass ? 0 : static_cast<size_t>(plan.channels));
    if (row_pass && (op.kind == PlannedOpKind::Zeros || op.kind == PlannedOpKind::Channels))
      row_doubles[k] = static_cast<size_t>(plan.rows()) * kRowFields;
    counters_total += counter_words[k];
    rows_total += row_doubles[k];
  }
  const size_t partial_bytes = round_up(static_cast<size_t>(blocks) * kMaxOps * sizeof(FlatAcc));
  const size_t norm_bytes = round_up(static_cast<size_t>(flat_blocks) * sizeof(double));
  const size_t counter_bytes = round_up(counters_total * sizeof(unsigned long long));
  const size_t row_bytes = round_up(rows_total * sizeof(double));

  PassScratch s;
  s.storage = scratch(partial_bytes + norm_bytes + counter_bytes + row_bytes);
  char* base = static_cast<char*>(s.storage->data);
  s.partials = reinterpret_cast<FlatAcc*>(base);
  s.norm_partials = reinterpret_cast<double*>(base + partial_bytes);
  s.counters = reinterpret_cast<unsigned long long*>(base + partial_bytes + norm_bytes);
  s.counter_bytes = counters_total * sizeof(unsigned long long);
  double* rows = reinterpret_cast<double*>(base + partial_bytes + norm_bytes + counter_bytes);
  unsigned long long* counters = s.counters;
  for (size_t k = 0; k < ops; ++k) {
    s.op_counters.push_back(counter_words[k] ? counters : nullptr);
    s.rows.push_back(row_doubles[k] ? rows : nullptr);
    counters += counter_words[k];
    rows += row_doubles[k];
  }
  return s;
}

void run_pass(const ProbePlan& plan, size_t pass_index, const FusedProbeBuffers& buffers,
              const ProbeScratchAllocator& scratch, cudaStream_t stream) {
  const PlannedPass& pass = plan.passes[pass_index];
  const bool rows = pass.per_channel();
  const int flat_blocks = grid_for(plan.numel, int64_t{kBlock} * 4);
  const int blocks = rows ? grid_for(plan.rows(), kWarpsPerBlock) : flat_blocks;
  PassScratch s = allocate_pass_scratch(plan, pass, blocks, flat_blocks, scratch);
  if (s.counter_bytes > 0) HOOKRT_CUDA_CHECK(cudaMemsetAsync(s.counters, 0, s.counter_bytes, stream));

  PassArgs args{};
  args.x = buffers.tensor;
  args.n = plan.numel;
  args.n_ops = static_cast<int>(pass.ops.size());
  args.write_back = pass.changes_tensor();
  args.capture = pass.captures.empty() ? nullptr : buffers.captures.at(pass_index);
  args.inner = plan.inner;
  args.rows = plan.rows();
  args.channels = plan.channels;
  args.outer = plan.outer;
  args.slot = buffers.slot;
  int hist_words = 0;
  for (const PlannedOp& op : pass.ops)
    if (op.kind == PlannedOpKind::Hist) hist_words += 2 + op.bins;
  const bool shared_hist = hist_words <= kMaxSharedHistWords;
  args.shared_hist_words = shared_hist ? hist_words : 0;
  int next_word = 0;
  bool per_channel_ops = false;
  for (size_t k = 0; k < pass.ops.size(); ++k) {
    const PlannedOp& op = pass.ops[k];
    DeviceOp& d = args.ops[k];
    d.kind = op.kind;
    d.lo = static_cast<float>(op.clamp_lo);
    d.hi = static_cast<float>(op.clamp_hi);
    d.mask = op.kind == PlannedOpKind::Clamp ? buffers.clamp_masks.at(op.probe) : nullptr;
    d.scale = op.kind == PlannedOpKind::ClipNorm ? buffers.clip_scales.at(op.probe) : nullptr;
    if (op.kind == PlannedOpKind::ClipNorm && d.scale == nullptr)
      throw Error("run_fused_probes: clipnorm probe " + std::to_string(op.probe) + " has no device scale");
    d.bins = op.bins;
    d.hist_lo = op.hist_lo;
    d.hist_hi = op.hist_hi;
    d.hist_shared = -1;
    if (op.kind == PlannedOpKind::Hist && shared_hist) {
      d.hist_shared = next_word;
      next_word += 2 + op.bins;
    }
    d.counters = s.op_counters[k];
    d.rows = s.rows[k];
    d.slot = op.slot;
    per_channel_ops = per_channel_ops || op.kind == PlannedOpKind::Zeros || op.kind == PlannedOpKind::Channels;
  }

  // clipnorm needs the norm of the tensor as the ops before it leave it, before the main pass can
  // scale anything: one norm pass (a read of the tensor) and its finishing kernel per clipnorm,
  // in order, each seeing the scales of the clipnorms before it.
  for (size_t k = 0; k < pass.ops.size(); ++k) {
    const PlannedOp& op = pass.ops[k];
    if (op.kind != PlannedOpKind::ClipNorm) continue;
    norm_pass_kernel<<<flat_blocks, kBlock, 0, stream>>>(args, static_cast<int>(k), s.norm_partials);
    check_launch();
    norm_finish_kernel<<<1, kBlock, 0, stream>>>(s.norm_partials, flat_blocks, op.max_norm, buffers.slot + op.slot,
                                                 buffers.clip_scales.at(op.probe));
    check_launch();
  }

  const size_t shared_bytes = static_cast<size_t>(args.shared_hist_words) * sizeof(unsigned);
  if (rows)
    fused_pass_kernel<true><<<blocks, kBlock, shared_bytes, stream>>>(args, s.partials);
  else
    fused_pass_kernel<false><<<blocks, kBlock, shared_bytes, stream>>>(args, s.partials);
  check_launch();
  if (per_channel_ops) {
    channel_finish_kernel<<<grid_for(plan.channels, kBlock), kBlock, 0, stream>>>(args);
    check_launch();
  }
  if (!pass.ops.empty()) {
    flat_finish_kernel<<<1, kBlock, 0, stream>>>(args, s.partials, blocks);
    check_launch();
  }
  // s.storage is freed stream-ordered, after the kernels above have used it.
}

}  // namespace

void run_fused_probes(const ProbePlan& plan, const FusedProbeBuffers& buffers, const ProbeScratchAllocator& scratch,
                      cudaStream_t stream) {
  // No clearing of the slot: each op's finishing kernel (flat, channel, norm) writes every entry of
  // its part of the slot, so a memset would be one more launch per probe run for nothing.
  for (size_t p = 0; p < plan.passes.size(); ++p) run_pass(plan, p, buffers, scratch, stream);
}

}  // namespace hookrt::cuda
