#pragma once
// 16-byte accesses for the elementwise kernels (relu.cu, add.cu, multiply.cu, fill.cu, convert.cu):
// a memory-bound kernel needs many bytes in flight per thread to reach a current GPU's HBM
// bandwidth, and one 2-byte load per BF16 element leaves most of it unused. So each thread moves
// a vector of W elements with one 16-byte load or store per operand access (W = 8 BF16 or F16
// values, 4 F32 ones; an F32 operand of a BF16 op takes two). A call's n elements split into
//   head: elements one by one, up to the first element at which every operand is 16-byte aligned,
//   vectors of W elements, each aligned in every operand,
//   tail: the elements after the last whole vector, one by one,
// planned on the host from the operands' addresses (split_for_vectors) and walked by one
// grid-stride loop over the split's items (for_each_item). A vector's elements go through the same
// float arithmetic and the same rounding as single ones, so a result's bits do not depend on
// which path an element took. map_elements is the whole body of a kernel that computes each
// element in float from its operands' elements.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "activation_types.cuh"
#include "element_types.cuh"
#include "launch.cuh"

namespace hookrt::cuda {

constexpr int kVectorBytes = 16;

// Elements to a vector for operands of types T...: 16 bytes of the narrowest, which is one access
// for it and sizeof(T) / sizeof(narrowest) accesses for each wider one.
template <class... T>
constexpr int kVectorWidth = kVectorBytes / static_cast<int>(std::min({sizeof(T)...}));

// The work items of one call over n elements: head single elements, then `vectors` vectors of W,
// then tail single elements, in that order. Where the operands allow vectors, head < W and
// tail < W; where they do not, every element is a single one (head = n).
struct VectorSplit {
  int64_t head = 0;
  int64_t vectors = 0;
  int64_t tail = 0;
  int64_t items() const { return head + vectors + tail; }  // launch_linear's count: one thread each
};

// The split of n elements of the operands at `operands` (one pointer per operand, input or output)
// into vectors of kVectorWidth<T...>. The vectors start at the first element at which every
// operand's address is a multiple of 16 bytes: the operands share one alignment when their
// addresses differ by multiples of 16 bytes at equal element indices (always so for whole
// allocations; byte_offset views may break it). Where they do not (views at element offsets that
// differ by other than a multiple of 16 bytes, or an address not a multiple of its element's
// size), no element is ever aligned in all of them at once and the whole call goes one element
// at a time: the kernels then read and write exactly as they did before they had vectors.
template <class... T>
VectorSplit split_for_vectors(int64_t n, const T*... operands) {
  constexpr int64_t kWidth = kVectorWidth<T...>;
  const uintptr_t addresses[] = {reinterpret_cast<uintptr_t>(operands)...};
  const uintptr_t sizes[] = {sizeof(T)...};
  // Each operand reaches a 16-byte boundary after fewer than 16 / size elements, the narrowest
  // after fewer than kWidth: a common start, if there is one, is the latest of these.
  int64_t head = 0;
  for (size_t k = 0; k < sizeof...(T); ++k)
    head = std::max(head, static_cast<int64_t>((kVectorBytes - addresses[k] % kVectorBytes) %
                                               kVectorBytes / sizes[k]));
  for (size_t k = 0; k < sizeof...(T); ++k)
    if ((addresses[k] + static_cast<uintptr_t>(head) * sizes[k]) % kVectorBytes != 0)
      return VectorSplit{n, 0, 0};
  head = std::min(head, n);
  const int64_t vectors = (n - head) / kWidth;
  return VectorSplit{head, vectors, n - head - vectors * kWidth};
}

// The grid-stride loop over a split's items (`items` = split.items(), the count launch_linear
// sized the grid for): scalar(i) for each element i of the head and the tail, vector(i) for each
// vector, i being its first element. Consecutive threads take consecutive vectors, so a warp's
// accesses to an operand are one contiguous span.
template <int W, class Scalar, class Vector>
__device__ __forceinline__ void for_each_item(int64_t items, const VectorSplit& split,
                                              Scalar scalar, Vector vector) {
  HOOKRT_GRID_STRIDE_LOOP(item, items) {
    const int64_t k = item - split.head;  // the item's place after the head
    if (k < 0)
      scalar(item);
    else if (k < split.vectors)
      vector(split.head + k * W);
    else
      scalar(item +
             split.vectors * (W - 1));  // the tail's element head + vectors·W + (k - vectors)
  }
}

// ---- moving a vector ----

// The bits of the W elements of T (2 or 4 bytes) at p, which is 16-byte aligned: one unsigned per
// element, a 16-bit one in the low half, from W·sizeof(T)/16 loads of 16 bytes (in each 32-bit
// word of a load, the element at the lower address is the low half).
template <int W, class T>
__device__ __forceinline__ void load_vector_bits(const T* p, unsigned (&bits)[W]) {
  static_assert(sizeof(T) == 2 || sizeof(T) == 4, "2- and 4-byte elements");
  static_assert(W * sizeof(T) % kVectorBytes == 0, "whole 16-byte loads");
  constexpr int kPerWord = 4 / sizeof(T);
  const uint4* words = reinterpret_cast<const uint4*>(p);
#pragma unroll
  for (int q = 0; q < static_cast<int>(W * sizeof(T) / kVectorBytes); ++q) {
    const uint4 u = words[q];
    const unsigned word[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int w = 0; w < 4; ++w)
#pragma unroll
      for (int e = 0; e < kPerWord; ++e)
        bits[(4 * q + w) * kPerWord + e] =
            kPerWord == 1 ? word[w] : (word[w] >> (16 * e)) & 0xFFFFu;
  }
}

// W elements of T with the given bits (a 16-bit one's in the low half) into p, 16-byte aligned.
template <int W, class T>
__device__ __forceinline__ void store_vector_bits(T* p, const unsigned (&bits)[W]) {
  static_assert(sizeof(T) == 2 || sizeof(T) == 4, "2- and 4-byte elements");
  static_assert(W * sizeof(T) % kVectorBytes == 0, "whole 16-byte stores");
  constexpr int kPerWord = 4 / sizeof(T);
  uint4* words = reinterpret_cast<uint4*>(p);
#pragma unroll
  for (int q = 0; q < static_cast<int>(W * sizeof(T) / kVectorBytes); ++q) {
    unsigned word[4];
#pragma unroll
    for (int w = 0; w < 4; ++w)
      word[w] = kPerWord == 1 ? bits[4 * q + w]
                              : bits[2 * (4 * q + w)] | (bits[2 * (4 * q + w) + 1] << 16);
    words[q] = make_uint4(word[0], word[1], word[2], word[3]);
  }
}

// A vector's values as floats (an array in a struct, so that functions can return it).
template <int W>
struct VectorValues {
  float v[W];
};

// The W elements of T at p widened to float exactly, as load_float widens each (BF16 and F16 by their bits).
template <int W, class T>
__device__ __forceinline__ VectorValues<W> load_vector(const T* p) {
  unsigned bits[W];
  load_vector_bits<W>(p, bits);
  VectorValues<W> values;
#pragma unroll
  for (int j = 0; j < W; ++j) values.v[j] = widen_bits<T>(bits[j]);
  return values;
}

// values rounded to T into the W elements at p, each as store_float rounds it (narrow_bits).
template <int W, class T>
__device__ __forceinline__ void store_vector(T* p, const VectorValues<W>& values) {
  unsigned bits[W];
#pragma unroll
  for (int j = 0; j < W; ++j) bits[j] = narrow_bits<T>(values.v[j]);
  store_vector_bits<W>(p, bits);
}

// op applied lane by lane: lane j of the result is op(lane j of each operand's values).
template <int W, class Op, class... Values>
__device__ __forceinline__ VectorValues<W> apply_by_lane(Op op, const Values&... operands) {
  VectorValues<W> result;
#pragma unroll
  for (int j = 0; j < W; ++j) result.v[j] = op(operands.v[j]...);
  return result;
}

// ---- an elementwise kernel's body ----

// out[i] = op(in[i]...) for every element of the split (out first, as in an assignment; out may be
// one of the inputs, for ops in place): each input element widened to float by load_float, op
// computed in float, the result rounded once by store_float, alike for single elements and
// vectors. Out and In are activation types (float, __nv_bfloat16, __half). A vector's loads are all issued
// before op works on any of their values.
template <class Op, class Out, class... In>
__device__ __forceinline__ void map_elements(int64_t items, const VectorSplit& split, Op op,
                                             Out* out, const In*... in) {
  constexpr int W = kVectorWidth<Out, In...>;
  for_each_item<W>(
      items, split, [&](int64_t i) { store_float(out, i, op(load_float(in, i)...)); },
      [&](int64_t i) {
        store_vector<W>(out + i, apply_by_lane<W>(op, load_vector<W>(in + i)...));
      });
}

}  // namespace hookrt::cuda
