#pragma once
// The fused probe kernels' work on one chunk of the tensor (1 or 4 consecutive elements, in
// registers): loading and storing chunks with float4 where the address allows, the visitor that
// hands out a range's chunks, and each probe's step on a chunk (stats, nonfinite, histogram
// binning, clamp, zeros' alive flags). Each step follows its CPU reference in src/cpu/.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "probe_accumulators.cuh"
#include "probe_pass_args.cuh"
#include "relu_math.cuh"

namespace hookrt::cuda::detail {

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

// A producer's inputs may sit at another alignment than the tensor: check the address.
template <int N>
__device__ __forceinline__ void load_unaligned_chunk(const float* p, float (&v)[N]) {
  if constexpr (N == 4) {
    if (reinterpret_cast<uintptr_t>(p) % 16 == 0) {
      load_chunk<4>(p, v);
      return;
    }
  }
#pragma unroll
  for (int j = 0; j < N; ++j) v[j] = p[j];
}

// The chunk at element i as the producer writes it (relu_math.cuh's rules, as relu.cu's kernels).
template <int N>
__device__ __forceinline__ void produce_chunk(const FusedProducer& producer, int64_t i, float (&v)[N]) {
  float a[N];
  load_unaligned_chunk<N>(producer.a + i, a);
  if (producer.kind == ProducerKind::ReluForward) {
#pragma unroll
    for (int j = 0; j < N; ++j) v[j] = relu_value(a[j]);
    return;
  }
  float b[N];
  load_unaligned_chunk<N>(producer.b + i, b);
  if (producer.kind == ProducerKind::AddReluForward) {
#pragma unroll
    for (int j = 0; j < N; ++j) v[j] = relu_value(a[j] + b[j]);
    return;
  }
#pragma unroll
  for (int j = 0; j < N; ++j) v[j] = relu_grad(a[j], b[j]);
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

}  // namespace hookrt::cuda::detail
