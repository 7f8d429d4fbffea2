// The channels-last walks of the mixed batch norm (see batchnorm_channels_last.cuh).
#include "batchnorm_channels_last.cuh"

#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "activation_types.cuh"
#include "status.h"

namespace hookrt::cuda::batchnorm {
namespace {

constexpr int kBlock = 256;
constexpr int kWarp = 32;
// Rows are split over blocks until each thread adds about kRowsPerThread of them; the splits of
// all channel groups stop growing at about kTargetBlocks blocks (several per SM on current GPUs):
// more would not add bandwidth, only partials for the finish to add one by one.
constexpr int64_t kRowsPerThread = 16;
constexpr int64_t kTargetBlocks = 1024;
constexpr int64_t kMaxSplits = 512;
constexpr int64_t kMaxGridY = 65535;
// Rows whose loads a thread issues before it uses any, so that they are in flight together.
constexpr int kRowsInFlight = 4;

// ---- moving a thread's channels --------------------------------------------------------------

// W consecutive elements at p, widened to float (BF16 and F16 by their bits, as load_float): one load of
// 4·W or 2·W bytes, p being aligned to it.
template <int W, class T>
__device__ __forceinline__ void load_lanes(const T* p, float* v) {
  if constexpr (W == 1) {
    v[0] = load_float(p, 0);
  } else if constexpr (std::is_same_v<T, float>) {
    if constexpr (W == 4) {
      const float4 q = *reinterpret_cast<const float4*>(p);
      v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else {
      const float2 q = *reinterpret_cast<const float2*>(p);
      v[0] = q.x, v[1] = q.y;
    }
  } else {  // 16-bit elements: element k in half k % 2 of word k / 2, the low half first
    unsigned words[W / 2];
    if constexpr (W == 4) {
      const uint2 q = *reinterpret_cast<const uint2*>(p);
      words[0] = q.x, words[1] = q.y;
    } else {
      words[0] = *reinterpret_cast<const unsigned*>(p);
    }
#pragma unroll
    for (int k = 0; k < W; ++k) v[k] = widen_bits<T>((words[k / 2] >> (16 * (k % 2))) & 0xFFFFu);
  }
}

// v rounded to T (as store_float) into W consecutive elements at p, in one store.
template <int W, class T>
__device__ __forceinline__ void store_lanes(T* p, const float* v) {
  if constexpr (W == 1) {
    store_float(p, 0, v[0]);
  } else if constexpr (std::is_same_v<T, float>) {
    if constexpr (W == 4)
      *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
    else
      *reinterpret_cast<float2*>(p) = make_float2(v[0], v[1]);
  } else {
    unsigned words[W / 2];
#pragma unroll
    for (int w = 0; w < W / 2; ++w)
      words[w] = narrow_bits<T>(v[2 * w]) | (narrow_bits<T>(v[2 * w + 1]) << 16);
    if constexpr (W == 4)
      *reinterpret_cast<uint2*>(p) = make_uint2(words[0], words[1]);
    else
      *reinterpret_cast<unsigned*>(p) = words[0];
  }
}

// A thread's V channels of one row, moved W at a time: W = V where the addresses allow, else 1.
template <int V, int W, class T>
__device__ __forceinline__ void load_channels(const T* p, float (&v)[V]) {
#pragma unroll
  for (int k = 0; k < V; k += W) load_lanes<W>(p + k, v + k);
}

template <int V, int W, class T>
__device__ __forceinline__ void store_channels(T* p, const float (&v)[V]) {
#pragma unroll
  for (int k = 0; k < V; k += W) store_lanes<W>(p + k, v + k);
}

// ---- a thread's share: V channels (blockIdx.x: the group) over rows (blockIdx.y: the split) ----

template <int V>
__device__ __forceinline__ int64_t first_channel() {
  return (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * V;
}

// Calls body(r, stride, count) for this thread's rows in increasing order: kRowsInFlight of them
// at a time (rows r, r + stride, ...; count is an std::integral_constant), then the rest one by
// one, so that a body can issue a group's loads before it uses any.
template <class Body>
__device__ __forceinline__ void for_rows(int64_t rows, Body body) {
  const int64_t stride = static_cast<int64_t>(gridDim.y) * blockDim.y;
  int64_t r = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y;
  for (; r + (kRowsInFlight - 1) * stride < rows; r += kRowsInFlight * stride)
    body(r, stride, std::integral_constant<int, kRowsInFlight>{});
  for (; r < rows; r += stride) body(r, stride, std::integral_constant<int, 1>{});
}

// ---- the sums ------------------------------------------------------------------------------

// Adds the sums of the block's rows of threads for each lane's V channels in a fixed tree and
// stores them as split blockIdx.y's partials. `tile` holds a pair per thread and channel.
template <int V>
__device__ void store_block_sums(const PairSum (&sums)[V], double* tile, double* partials,
                                 int64_t c0, int64_t channels) {
  double* mine = tile + (threadIdx.y * blockDim.x + threadIdx.x) * V * 2;
#pragma unroll
  for (int k = 0; k < V; ++k) mine[2 * k] = sums[k].first, mine[2 * k + 1] = sums[k].second;
  __syncthreads();
  // Rows [half, blockDim.y) onto rows [0, half), then halving: row 0 ends with the block's sums.
  const unsigned rows = blockDim.y;
  for (unsigned half = rows > 1 ? 1u << (31 - __clz(static_cast<int>(rows - 1))) : 0u; half > 0;
       half /= 2) {
    if (threadIdx.y < half && threadIdx.y + half < rows) {
      const double* other = mine + half * blockDim.x * V * 2;
#pragma unroll
      for (int k = 0; k < 2 * V; ++k) mine[k] += other[k];
    }
    __syncthreads();
  }
  if (threadIdx.y != 0 || c0 >= channels) return;
#pragma unroll
  for (int k = 0; k < V; ++k)
    store_partial(partials, c0 + k, blockIdx.y, gridDim.y, PairSum{mine[2 * k], mine[2 * k + 1]});
}

template <Pass P, class T, int V, int W>
__global__ void sums_kernel(SumsInputs<T> in, BatchNormDims d, double* partials) {
  __shared__ double tile[kBlock * V * 2];
  const int64_t c0 = first_channel<V>();
  PairSum sums[V];
  if (c0 < d.c) {  // lanes past C still take part in the block's tree
    double centre[V];
    float scale[V] = {}, shift[V] = {};
#pragma unroll
    for (int k = 0; k < V; ++k) {
      centre[k] = channel_centre<P>(in, c0 + k, d);
      if constexpr (P == Pass::BackwardThroughRelu) scale[k] = in.scale[c0 + k], shift[k] = in.shift[c0 + k];
    }
    for_rows(d.n * d.hw, [&](int64_t r, int64_t stride, auto count) {
      constexpr int U = decltype(count)::value;
      float a[U][V], b[U][V] = {};
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t at = (r + u * stride) * d.c + c0;
        load_channels<V, W>(in.a + at, a[u]);
        if constexpr (is_backward(P)) load_channels<V, W>(in.b + at, b[u]);
      }
#pragma unroll
      for (int u = 0; u < U; ++u)
#pragma unroll
        for (int k = 0; k < V; ++k)
          add_value<P>(sums[k], centre[k], summed_dy<P, T>(a[u][k], b[u][k], scale[k], shift[k]), b[u][k]);
    });
  }
  store_block_sums<V>(sums, tile, partials, c0, d.c);
}

// ---- the elementwise passes: each thread's coefficients stay in registers over its rows ------

template <ApplyEpilogue E, class T, int V, int W>
__global__ void normalize_kernel(const T* x, const T* residual, T* y, const float* scale,
                                 const float* shift, BatchNormDims d) {
  const int64_t c0 = first_channel<V>();
  if (c0 >= d.c) return;
  float s[V], t[V];
#pragma unroll
  for (int k = 0; k < V; ++k) s[k] = scale[c0 + k], t[k] = shift[c0 + k];
  for_rows(d.n * d.hw, [&](int64_t r, int64_t stride, auto count) {
    constexpr int U = decltype(count)::value;
    float v[U][V], b[U][V] = {};
#pragma unroll
    for (int u = 0; u < U; ++u) {
      load_channels<V, W>(x + (r + u * stride) * d.c + c0, v[u]);
      if constexpr (E == ApplyEpilogue::AddRelu)
        load_channels<V, W>(residual + (r + u * stride) * d.c + c0, b[u]);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
#pragma unroll
      for (int k = 0; k < V; ++k)
        v[u][k] = after_apply<E, T>(normalized(v[u][k], s[k], t[k]), b[u][k]);
      store_channels<V, W>(y + (r + u * stride) * d.c + c0, v[u]);
    }
  });
}

// kThroughRelu: dy is the ReLU's (dy_through_relu; training only).
template <class T, int V, int W, bool kThroughRelu>
__global__ void dx_kernel(const T* dy, const T* x, T* dx, DxCoefficients k, BatchNormDims d,
                          bool training) {
  const int64_t c0 = first_channel<V>();
  if (c0 >= d.c) return;
  float gain[V], centre[V], grad_mean[V], projection[V], scale[V] = {}, shift[V] = {};
#pragma unroll
  for (int j = 0; j < V; ++j) {
    gain[j] = k.gain[c0 + j], centre[j] = k.centre[c0 + j];
    grad_mean[j] = k.grad_mean[c0 + j], projection[j] = k.projection[c0 + j];
    if constexpr (kThroughRelu) scale[j] = k.scale[c0 + j], shift[j] = k.shift[c0 + j];
  }
  for_rows(d.n * d.hw, [&](int64_t r, int64_t stride, auto count) {
    constexpr int U = decltype(count)::value;
    float g[U][V], v[U][V] = {};
#pragma unroll
    for (int u = 0; u < U; ++u) {
      load_channels<V, W>(dy + (r + u * stride) * d.c + c0, g[u]);
      if (training) load_channels<V, W>(x + (r + u * stride) * d.c + c0, v[u]);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
#pragma unroll
      for (int j = 0; j < V; ++j) {
        if constexpr (kThroughRelu) g[u][j] = dy_through_relu<T>(g[u][j], v[u][j], scale[j], shift[j]);
        g[u][j] = training ? training_dx(g[u][j], v[u][j], gain[j], centre[j], grad_mean[j],
                                         projection[j])
                           : __fmul_rn(g[u][j], gain[j]);
      }
      store_channels<V, W>(dx + (r + u * stride) * d.c + c0, g[u]);
    }
  });
}

// ---- launch shapes -------------------------------------------------------------------------

// A call's tiles: V channels per thread, `lanes` threads across a group of channels (groups of
// nearly equal width, so that none is mostly idle), rows_per_block down. vector_loads where every
// tensor's address is aligned to V elements (then so is every thread's first channel in a row).
struct Tiles {
  int v;
  unsigned lanes, rows_per_block, groups;
  bool vector_loads;
};

Tiles tiles_of(const BatchNormDims& d, size_t element_bytes,
               std::initializer_list<const void*> tensors = {}) {
  const int v = d.c % 4 == 0 ? 4 : d.c % 2 == 0 ? 2 : 1;
  const int64_t vectors = std::max<int64_t>(d.c / v, 1);
  const int64_t groups = (vectors + kWarp - 1) / kWarp;
  const int64_t lanes = (vectors + groups - 1) / groups;
  const bool aligned = std::all_of(tensors.begin(), tensors.end(), [&](const void* p) {
    return reinterpret_cast<uintptr_t>(p) % (v * element_bytes) == 0;
  });
  return Tiles{v, static_cast<unsigned>(lanes), static_cast<unsigned>(kBlock / lanes),
               static_cast<unsigned>(groups), aligned};
}

dim3 block_of(const Tiles& t) { return dim3(t.lanes, t.rows_per_block); }

// The elementwise passes' grid: the channel groups by enough blocks of rows for each thread to
// have kRowsInFlight rows (for_rows' stride covers what the grid's height leaves).
dim3 elementwise_grid(const BatchNormDims& d, const Tiles& t) {
  const int64_t per_block = static_cast<int64_t>(t.rows_per_block) * kRowsInFlight;
  const int64_t blocks =
      std::clamp<int64_t>((d.n * d.hw + per_block - 1) / per_block, 1, kMaxGridY);
  return dim3(t.groups, static_cast<unsigned>(blocks));
}

// Calls fn(V, W) as std::integral_constants: V channels per thread, moved W at a time.
template <class Fn>
void with_lanes(const Tiles& t, Fn fn) {
  using Four = std::integral_constant<int, 4>;
  using Two = std::integral_constant<int, 2>;
  using One = std::integral_constant<int, 1>;
  if (t.v == 4) return t.vector_loads ? fn(Four{}, Four{}) : fn(Four{}, One{});
  if (t.v == 2) return t.vector_loads ? fn(Two{}, Two{}) : fn(Two{}, One{});
  return fn(One{}, One{});
}

}  // namespace

int64_t channels_last_splits(const BatchNormDims& d) {
  const Tiles t = tiles_of(d, 1);  // the tiles' shape does not depend on the element size
  const int64_t per_split = static_cast<int64_t>(t.rows_per_block) * kRowsPerThread;
  const int64_t most = std::clamp<int64_t>(kTargetBlocks / t.groups, 1, kMaxSplits);
  return std::clamp<int64_t>((d.n * d.hw + per_split - 1) / per_split, 1, most);
}

template <Pass P, class T>
void channels_last_sums(const SumsInputs<T>& in, const BatchNormDims& d, double* partials,
                        cudaStream_t stream) {
  const Tiles t = tiles_of(d, sizeof(T), {in.a, in.b});
  const dim3 grid(t.groups, static_cast<unsigned>(channels_last_splits(d)));
  with_lanes(t, [&](auto v, auto w) {
    sums_kernel<P, T, decltype(v)::value, decltype(w)::value>
        <<<grid, block_of(t), 0, stream>>>(in, d, partials);
  });
  HOOKRT_CUDA_CHECK(cudaGetLastError());
}

template <ApplyEpilogue E, class T>
void channels_last_normalize(const T* x, const T* residual, T* y, const float* scale,
                             const float* shift, const BatchNormDims& d, cudaStream_t stream) {
  if (d.n * d.c * d.hw == 0) return;
  const Tiles t = tiles_of(d, sizeof(T), {x, residual, y});
  with_lanes(t, [&](auto v, auto w) {
    normalize_kernel<E, T, decltype(v)::value, decltype(w)::value>
        <<<elementwise_grid(d, t), block_of(t), 0, stream>>>(x, residual, y, scale, shift, d);
  });
  HOOKRT_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void channels_last_dx(const T* dy, const T* x, T* dx, const DxCoefficients& k,
                      const BatchNormDims& d, bool training, cudaStream_t stream) {
  if (d.n * d.c * d.hw == 0) return;
  const Tiles t = tiles_of(d, sizeof(T), {dy, x, dx});
  with_lanes(t, [&](auto v, auto w) {
    constexpr int V = decltype(v)::value, W = decltype(w)::value;
    if (k.scale)
      dx_kernel<T, V, W, true><<<elementwise_grid(d, t), block_of(t), 0, stream>>>(dy, x, dx, k, d, training);
    else
      dx_kernel<T, V, W, false><<<elementwise_grid(d, t), block_of(t), 0, stream>>>(dy, x, dx, k, d, training);
  });
  HOOKRT_CUDA_CHECK(cudaGetLastError());
}

#define HOOKRT_INSTANTIATE_CHANNELS_LAST(T)                                                       \
  template void channels_last_sums<Pass::Forward, T>(const SumsInputs<T>&, const BatchNormDims&,  \
                                                     double*, cudaStream_t);                      \
  template void channels_last_sums<Pass::Backward, T>(const SumsInputs<T>&, const BatchNormDims&, \
                                                      double*, cudaStream_t);                     \
  template void channels_last_sums<Pass::BackwardThroughRelu, T>(                                 \
      const SumsInputs<T>&, const BatchNormDims&, double*, cudaStream_t);                         \
  template void channels_last_normalize<ApplyEpilogue::None, T>(                                  \
      const T*, const T*, T*, const float*, const float*, const BatchNormDims&, cudaStream_t);    \
  template void channels_last_normalize<ApplyEpilogue::Relu, T>(                                  \
      const T*, const T*, T*, const float*, const float*, const BatchNormDims&, cudaStream_t);    \
  template void channels_last_normalize<ApplyEpilogue::AddRelu, T>(                               \
      const T*, const T*, T*, const float*, const float*, const BatchNormDims&, cudaStream_t);    \
  template void channels_last_dx<T>(const T*, const T*, T*, const DxCoefficients&,                \
                                    const BatchNormDims&, bool, cudaStream_t);
HOOKRT_INSTANTIATE_CHANNELS_LAST(float)
HOOKRT_INSTANTIATE_CHANNELS_LAST(__nv_bfloat16)
HOOKRT_INSTANTIATE_CHANNELS_LAST(__half)
#undef HOOKRT_INSTANTIATE_CHANNELS_LAST

}  // namespace hookrt::cuda::batchnorm
