#pragma once
// The fused probe kernels' work on chunks of the tensor (1 or 4 consecutive elements, in
// registers, as floats whatever the tensor's element type): loading and storing chunks with one
// load or store of four where the address allows, the walk that
// hands out a range's chunks in groups (visit_range), and each probe's step on a chunk
// (histogram binning, clamp, per-channel moments, zeros' alive flags; stats is
// src/probe_thread_stats.h). Each step follows its CPU reference in src/cpu/.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "activation_types.cuh"
#include "batchnorm_terms.cuh"
#include "channel_cursor.h"
#include "element_types.cuh"
#include "probe_accumulators.cuh"
#include "probe_pass_args.cuh"
#include "relu_math.cuh"

namespace hookrt::cuda::detail {

// ---- element types (conversions: element_types.cuh) ----

// Calls fn with a value of the element type's device type (float, __nv_bfloat16, __half): the
// launchers pick each kernel's instantiation with it.
template <class Fn>
void with_element_type(ProbeElement element, Fn fn) {
  switch (element) {
    case ProbeElement::F32: return fn(float{});
    case ProbeElement::BF16: return fn(__nv_bfloat16{});
    case ProbeElement::F16: return fn(__half{});
  }
  throw Error("internal: no probe kernel reads element type " + std::to_string(static_cast<int>(element)));
}

// A chunk of four is one load: a float4 for F32, eight bytes (a uint2) for the 16-bit types.
template <class T>
constexpr int kChunkBytes = 4 * static_cast<int>(sizeof(T));

// ---- loading and storing chunks of 1 or 4 elements ----

template <int N, class T>
__device__ __forceinline__ void load_chunk(const T* p, float (&v)[N]) {
  if constexpr (N == 4 && sizeof(T) == 4) {
    const float4 q = *reinterpret_cast<const float4*>(p);  // visit_range hands out aligned chunks
    v[0] = q.x;
    v[1] = q.y;
    v[2] = q.z;
    v[3] = q.w;
  } else if constexpr (N == 4) {
    const uint2 q = *reinterpret_cast<const uint2*>(p);  // element 0 in the low half of q.x
    v[0] = widen_bits<T>(q.x & 0xFFFFu);
    v[1] = widen_bits<T>(q.x >> 16);
    v[2] = widen_bits<T>(q.y & 0xFFFFu);
    v[3] = widen_bits<T>(q.y >> 16);
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) v[j] = load_float(p, j);  // 16-bit values by their bits, as above
  }
}

// A producer's inputs may sit at another alignment than the tensor: check the address.
template <int N, class T>
__device__ __forceinline__ void load_unaligned_chunk(const T* p, float (&v)[N]) {
  if constexpr (N == 4) {
    if (reinterpret_cast<uintptr_t>(p) % kChunkBytes<T> == 0) {
      load_chunk<4>(p, v);
      return;
    }
  }
#pragma unroll
  for (int j = 0; j < N; ++j) v[j] = load_float(p, j);
}

// The value a producer writes from its inputs' values (relu_math.cuh's rules, as relu.cu's
// kernels compute them in float before their one rounding to T). A ReLU and its backward give one
// of their inputs or zero, which T holds already; only the residual add's sum needs the rounding.
template <class T, ProducerKind kKind>
__device__ __forceinline__ float produced_value(float a, float b) {
  if constexpr (kKind == ProducerKind::ReluForward) return relu_value(a);
  else if constexpr (kKind == ProducerKind::ReluBackward) return relu_grad(a, b);
  else return stored_value<T>(relu_value(a + b));
}

// Where a batch norm's element takes its coefficients (src/channel_cursor.h): found once per
// chunk, stepped along it.
__device__ __forceinline__ ChannelCursor channel_cursor(const FusedProducer& p, int64_t i) {
  return ChannelCursor(p.inner, p.channels, i);
}

// A batch norm's y from x in channel c, and its dx from dy and x (p.b null: inference's, which
// does not read x), with batchnorm_mixed.cu's formulas and its one rounding to T.
template <class T>
__device__ __forceinline__ float batchnorm_apply_value(const FusedProducer& p, uint32_t c, float x) {
  const float* k = p.coefficients;
  return stored_value<T>(batchnorm::normalized(x, __ldg(k + c), __ldg(k + p.channels.divisor() + c)));
}

template <class T>
__device__ __forceinline__ float batchnorm_dx_value(const FusedProducer& p, uint32_t c, float dy, float x) {
  const float* k = p.coefficients;
  const uint32_t rows = p.channels.divisor();
  const float gain = __ldg(k + c);
  if (p.b == nullptr) return stored_value<T>(__fmul_rn(dy, gain));
  return stored_value<T>(
      batchnorm::training_dx(dy, x, gain, __ldg(k + rows + c), __ldg(k + 2 * rows + c), __ldg(k + 3 * rows + c)));
}

// A batch norm's chunk at element i: x = a (BatchNormApply) or dy = a and x = b (BatchNormDx).
template <class T, ProducerKind kKind, int N>
__device__ __forceinline__ void batchnorm_chunk(const FusedProducer& producer, int64_t i, const float (&a)[N],
                                                const float (&b)[N], float (&v)[N]) {
  ChannelCursor at = channel_cursor(producer, i);
#pragma unroll
  for (int j = 0; j < N; ++j) {
    if constexpr (kKind == ProducerKind::BatchNormApply)
      v[j] = batchnorm_apply_value<T>(producer, at.channel, a[j]);
    else
      v[j] = batchnorm_dx_value<T>(producer, at.channel, a[j], b[j]);
    at.next(producer.inner, producer.channels);
  }
}

// The chunk at element i as a producer of kind kKind writes it.
template <class T, ProducerKind kKind, int N>
__device__ __forceinline__ void produce_chunk_of(const FusedProducer& producer, int64_t i, float (&v)[N]) {
  constexpr bool kBatchNorm = kKind == ProducerKind::BatchNormApply || kKind == ProducerKind::BatchNormDx;
  float a[N], b[N] = {};
  load_unaligned_chunk<N>(static_cast<const T*>(producer.a) + i, a);
  if constexpr (kKind != ProducerKind::ReluForward && kKind != ProducerKind::BatchNormApply) {
    if (!kBatchNorm || producer.b != nullptr) load_unaligned_chunk<N>(static_cast<const T*>(producer.b) + i, b);
  }
  if constexpr (kBatchNorm) {
    batchnorm_chunk<T, kKind, N>(producer, i, a, b, v);
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) v[j] = produced_value<T, kKind>(a[j], b[j]);
  }
}

// The same, the kind chosen once per chunk rather than per element.
template <class T, int N>
__device__ __forceinline__ void produce_chunk(const FusedProducer& producer, int64_t i, float (&v)[N]) {
  switch (producer.kind) {
    case ProducerKind::ReluForward: return produce_chunk_of<T, ProducerKind::ReluForward, N>(producer, i, v);
    case ProducerKind::ReluBackward: return produce_chunk_of<T, ProducerKind::ReluBackward, N>(producer, i, v);
    case ProducerKind::BatchNormApply: return produce_chunk_of<T, ProducerKind::BatchNormApply, N>(producer, i, v);
    case ProducerKind::BatchNormDx: return produce_chunk_of<T, ProducerKind::BatchNormDx, N>(producer, i, v);
    default: return produce_chunk_of<T, ProducerKind::AddReluForward, N>(producer, i, v);
  }
}

// Outputs (masks, captures) may sit at another alignment than the tensor: check each address.
template <int N, class T>
__device__ __forceinline__ void store_chunk(T* p, const float (&v)[N]) {
  if constexpr (N == 4) {
    if (reinterpret_cast<uintptr_t>(p) % kChunkBytes<T> == 0) {
      if constexpr (sizeof(T) == 4) {
        *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
      } else {
        *reinterpret_cast<uint2*>(p) = make_uint2(narrow_bits<T>(v[0]) | narrow_bits<T>(v[1]) << 16,
                                                  narrow_bits<T>(v[2]) | narrow_bits<T>(v[3]) << 16);
      }
      return;
    }
  }
#pragma unroll
  for (int j = 0; j < N; ++j) p[j] = from_float<T>(v[j]);
}

// A pass's chunk at element i: read from its tensor of T, or, in a producing run's first pass,
// computed from the producer's inputs of T (write_back is then set: the pass writes the tensor).
template <class T, int N>
__device__ __forceinline__ void load_pass_chunk(const PassArgs& args, int64_t i, float (&v)[N]) {
  if (args.producer.kind != ProducerKind::None) {
    produce_chunk<T, N>(args.producer, i, v);
    return;
  }
  load_chunk<N>(static_cast<const T*>(args.x) + i, v);
}

// A pass's chunk as its ops left it: into the tensor where the pass changes or writes it, and into
// the capture. Each value is one of T already (changing ops round what they compute).
template <class T, int N>
__device__ __forceinline__ void store_pass_chunk(const PassArgs& args, int64_t i, const float (&v)[N]) {
  if (args.write_back) store_chunk<N>(static_cast<T*>(args.x) + i, v);
  if (args.capture) store_chunk<N>(static_cast<T*>(args.capture) + i, v);
}

// Chunk loads a thread issues before it works on any of them: a memory-bound pass needs bytes in
// flight, and the work on a chunk would otherwise wait for each load in turn. (A 16-bit tensor's
// chunks are eight bytes, so it has half as many bytes in flight as an F32 one: wider chunks would
// need eight values to a chunk, twice the registers.)
constexpr int kLoadsInFlight = 4;

// The values a visitor loads per element: 1, or its kValues where it has them (2 for a pass that
// reads both inputs of a producing op: a chunk's array holds the first input's N values, then the
// second's). A group then holds kLoadsInFlight / kValues chunks, the same loads in flight.
template <class Visitor, class = void>
struct ValuesPerElement {
  static constexpr int value = 1;
};
template <class Visitor>
struct ValuesPerElement<Visitor, std::void_t<decltype(Visitor::kValues)>> {
  static constexpr int value = Visitor::kValues;
};

// Loads the chunks of four k, k + stride, ... (G of them) of the body at `body`.
template <int G, int K, class Visitor>
__device__ __forceinline__ void load_group(Visitor& visit, int64_t body, int64_t k, int64_t stride,
                                           float (&v)[G][4 * K]) {
#pragma unroll
  for (int u = 0; u < G; ++u) visit.template load<4>(body + 4 * (k + u * stride), v[u]);
}

// Visits x[begin, end) as participant `index` of `stride`: scalars up to the first kChunkBytes
// boundary, chunks of four (float4 for F32), then scalars for the tail. Every element is visited
// exactly once, and each participant visits its chunks in increasing order. The visitor loads a chunk
// (`load<N>(i, v)`, v holding N * K values, K = ValuesPerElement) and works on a group of G
// chunks at once (`work<G, N>(i, step, v)`, chunk u at element i + u * step): chunks of four come
// G = kLoadsInFlight / K to a group, each group's loads issued before the work on the group
// before it, so that the reads of one overlap the arithmetic of the other; the chunks and scalars
// left over come as groups of one.
template <class T, class Visitor>
__device__ __forceinline__ void visit_range(const T* x, int64_t begin, int64_t end, int64_t index,
                                            int64_t stride, Visitor& visit) {
  constexpr int K = ValuesPerElement<Visitor>::value;
  static_assert(K >= 1 && kLoadsInFlight % K == 0, "a group holds whole chunks");
  constexpr int G = kLoadsInFlight / K;
  if (begin >= end) return;
  const uintptr_t address = reinterpret_cast<uintptr_t>(x + begin);
  constexpr uintptr_t kBytes = kChunkBytes<T>;
  const int64_t to_boundary = static_cast<int64_t>(((kBytes - address % kBytes) % kBytes) / sizeof(T));
  const int64_t body = begin + (to_boundary < end - begin ? to_boundary : end - begin);
  for (int64_t i = begin + index; i < body; i += stride) {
    float v[1][K];
    visit.template load<1>(i, v[0]);
    visit.template work<1, 1>(i, 0, v);
  }
  const int64_t vectors = (end - body) / 4;
  int64_t k = index;
  if (k + (G - 1) * stride < vectors) {
    float v[G][4 * K];
    load_group<G, K>(visit, body, k, stride, v);
    for (;;) {
      const int64_t next = k + G * stride;
      const bool more = next + (G - 1) * stride < vectors;
      float w[G][4 * K];
      if (more) load_group<G, K>(visit, body, next, stride, w);
      visit.template work<G, 4>(body + 4 * k, 4 * stride, v);
      k = next;
      if (!more) break;
#pragma unroll
      for (int u = 0; u < G; ++u)
#pragma unroll
        for (int j = 0; j < 4 * K; ++j) v[u][j] = w[u][j];
    }
  }
  for (; k < vectors; k += stride) {
    float v[1][4 * K];
    visit.template load<4>(body + 4 * k, v[0]);
    visit.template work<1, 4>(body + 4 * k, 0, v);
  }
  for (int64_t i = body + 4 * vectors + index; i < end; i += stride) {
    float v[1][K];
    visit.template load<1>(i, v[0]);
    visit.template work<1, 1>(i, 0, v);
  }
}

// ---- the probes on one chunk ----

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
__device__ __forceinline__ void apply_clamp(const DeviceOp& op, int64_t i, float (&v)[N], ThreadAcc& acc) {
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

// The row (o, c) of flat element i, o * channels + c = i / inner, and the row's channel. Where the
// tensor allows, in 32 bits with the launch's FastDivmods: integer division would cost a
// memory-bound pass more than its reads.
__device__ __forceinline__ int64_t row_of(int64_t i, const PassArgs& args) {
  if (args.fast_channels) return args.inner_div.divide(static_cast<uint32_t>(i));
  return i / args.inner;
}

__device__ __forceinline__ int64_t channel_of_row(int64_t row, const PassArgs& args) {
  if (args.fast_channels) return args.channels_div.remainder(static_cast<uint32_t>(row));
  return row % args.channels;
}

// Where zeros' alive flags are set: the block's byte flags in shared memory (merged into the
// global ones when the block ends, see flush_alive_flags), or the global flags (counters[1 + c])
// for tensors with too many channels for shared memory. A global flag is read before it is
// written, so it is stored only until the store is visible, not once per element.
struct AliveFlags {
  unsigned char* shared;        // (channels) or nullptr
  unsigned long long* global;   // (channels)
  __device__ __forceinline__ void set(int64_t c) const {
    if (shared != nullptr) {
      shared[c] = 1;
    } else if (global[c] == 0) {
      global[c] = 1;
    }
  }
};

// A flat zeros op's flags: its bytes in the block's shared flags where it has some, else global.
__device__ __forceinline__ AliveFlags alive_flags(const DeviceOp& op, unsigned char* shared_alive) {
  return AliveFlags{op.alive_shared >= 0 ? shared_alive + op.alive_shared : nullptr, op.counters + 1};
}

// Whether a chunk holds a value that keeps its channel alive for zeros: > 0, or NaN.
template <int N>
__device__ __forceinline__ bool any_alive(const float (&v)[N]) {
  bool any = false;
#pragma unroll
  for (int j = 0; j < N; ++j) any = any || !(v[j] <= 0.0f);
  return any;
}

// zeros in a flat pass: marks alive the channel of each value of the chunk at i that is > 0 or
// NaN, given that one is. A chunk within one row costs a division and a remainder, each a
// multiply-high, an add and a shift; a second division tells whether the chunk crosses rows,
// unless the launch knows that none does.
template <int N>
__device__ __forceinline__ void mark_chunk_alive(const AliveFlags& alive, const PassArgs& args, int64_t i,
                                                 const float (&v)[N]) {
  const int64_t row = row_of(i, args);
  if (N == 1 || args.chunks_within_rows || row == row_of(i + N - 1, args)) {
    alive.set(channel_of_row(row, args));
    return;
  }
  if constexpr (N > 1) {  // the chunk crosses rows: each value's own channel
#pragma unroll
    for (int j = 0; j < N; ++j)
      if (!(v[j] <= 0.0f)) alive.set(channel_of_row(row_of(i + j, args), args));
  }
}

template <int N>
__device__ __forceinline__ void mark_alive_channels(const AliveFlags& alive, const PassArgs& args, int64_t i,
                                                    const float (&v)[N]) {
  if (any_alive<N>(v)) mark_chunk_alive<N>(alive, args, i, v);
}

}  // namespace hookrt::cuda::detail
