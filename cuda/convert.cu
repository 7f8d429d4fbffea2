// Conversion between float dtypes and between memory formats (see convert.cuh).
#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include "convert.cuh"
#include "element_types.cuh"
#include "launch.cuh"
#include "vector_access.cuh"

namespace hookrt::cuda {
namespace {

// x widened to float as the host's Tensor::to widens it: exactly, but for a NaN, which comes back
// quiet with its sign and payload (Tensor::to goes through double, and the host's conversion from
// float to double sets the quiet bit of a signaling NaN).
template <class From>
__device__ __forceinline__ float widen_as_host(From x) {
  float wide;
  if constexpr (std::is_same_v<From, __half>) {
    const unsigned h = __half_as_ushort(x);
    if ((h & 0x7C00u) != 0x7C00u || (h & 0x3FFu) == 0) return __half2float(x);
    // half_to_float's NaN: sign, all-ones exponent, the payload in the top of the mantissa.
    wide = __uint_as_float(((h & 0x8000u) << 16) | 0x7F800000u | ((h & 0x3FFu) << 13));
  } else if constexpr (std::is_same_v<From, __nv_bfloat16>) {
    wide = widen_bits<From>(__bfloat16_as_ushort(x));
  } else {
    wide = x;
  }
  return isnan(wide) ? __uint_as_float(__float_as_uint(wide) | 0x400000u) : wide;
}

// 16 bytes of the narrower dtype per access where both arrays' alignment allows (vector_access.cuh):
// eight values between F32 and a 16-bit dtype, the F32 side's in two accesses of 16 bytes. A
// vector's values are converted exactly as single ones.
template <class From, class To>
__global__ void convert_kernel(int64_t items, VectorSplit split, const From* src, To* dst) {
  constexpr int W = kVectorWidth<From, To>;
  for_each_item<W>(
      items, split, [&](int64_t i) { dst[i] = from_float<To>(widen_as_host(src[i])); },
      [&](int64_t i) {
        unsigned bits[W];
        load_vector_bits<W>(src + i, bits);
#pragma unroll
        for (int j = 0; j < W; ++j) bits[j] = narrow_bits<To>(widen_as_host(from_bits<From>(bits[j])));
        store_vector_bits<W>(dst + i, bits);
      });
}

// Calls fn with a value of dtype's device type, for the dtypes convert takes; nothing for others.
template <class Fn>
void with_float_type(DType dtype, Fn fn) {
  switch (dtype) {
    case DType::F32: return fn(float{});
    case DType::BF16: return fn(__nv_bfloat16{});
    case DType::F16: return fn(__half{});
    default: return;
  }
}

// ---- layout changes: a batched, tiled transpose ------------------------------------------------

// How the transpose carries one value through shared memory: its bits unchanged (one dtype), or
// widened on the way in and rounded on the way out exactly as convert_kernel converts it.
template <class Bits>
struct MoveBits {
  using Src = Bits;
  using Dst = Bits;
  using Staged = Bits;
  __device__ static Staged in(Src x) { return x; }
  __device__ static Dst out(Staged x) { return x; }
};

template <class From, class To>
struct ConvertValue {
  using Src = From;
  using Dst = To;
  using Staged = float;  // a primitive type: shared arrays of the 16-bit classes are avoided
  __device__ static Staged in(Src x) { return widen_as_host(x); }
  __device__ static Dst out(Staged x) { return from_float<To>(x); }
};

// A tile is kTile x kTile elements, moved by kTile x kTileRows threads: each warp reads kTile
// consecutive elements of a source row and writes kTile consecutive elements of a destination row.
constexpr int kTile = 32;
constexpr int kTileRows = 8;
constexpr int64_t kMaxTileBlocks = 65536;  // a grid-stride loop over tiles covers the rest

// Each of `batch` (rows, cols) matrices of the source becomes a (cols, rows) one in the
// destination: an image's (C, H·W) plane going NHWC, its (H·W, C) plane going NCHW.
struct TileGrid {
  int64_t batch, rows, cols;
  int64_t row_tiles, col_tiles, tiles;
};

TileGrid tile_grid(const LayoutChange& change) {
  const bool to_nhwc = change.to == MemoryFormat::ChannelsLast;
  TileGrid g{change.n, to_nhwc ? change.c : change.hw, to_nhwc ? change.hw : change.c, 0, 0, 0};
  g.row_tiles = (g.rows + kTile - 1) / kTile;
  g.col_tiles = (g.cols + kTile - 1) / kTile;
  g.tiles = g.batch * g.row_tiles * g.col_tiles;
  return g;
}

template <class Move>
__global__ void transpose_kernel(TileGrid g, const typename Move::Src* src, typename Move::Dst* dst) {
  // One column of padding: the lanes of a warp reading a tile column hit different banks.
  __shared__ typename Move::Staged tile[kTile][kTile + 1];
  const int x = threadIdx.x, y = threadIdx.y;
  for (int64_t t = blockIdx.x; t < g.tiles; t += gridDim.x) {  // uniform per block: the barriers hold
    const int64_t col0 = t % g.col_tiles * kTile, row0 = t / g.col_tiles % g.row_tiles * kTile;
    const int64_t matrix = t / (g.col_tiles * g.row_tiles) * g.rows * g.cols;
    for (int j = y; j < kTile; j += kTileRows)
      if (row0 + j < g.rows && col0 + x < g.cols) tile[j][x] = Move::in(src[matrix + (row0 + j) * g.cols + col0 + x]);
    __syncthreads();
    for (int j = y; j < kTile; j += kTileRows)
      if (col0 + j < g.cols && row0 + x < g.rows) dst[matrix + (col0 + j) * g.rows + row0 + x] = Move::out(tile[x][j]);
    __syncthreads();  // before the next tile overwrites this one
  }
}

// A plane with a side this short (an RGB batch's three channels, a layer's 2x2 maps) would leave
// most of a tile's lanes idle: 3 of 32 write on each pass of the stem input's tiles.
constexpr int64_t kNarrowSide = 8;

// Such a plane is moved a line per thread instead: a source column of few rows (going NHWC), or a
// source row of few columns (going NCHW). Consecutive threads take consecutive lines, so on the
// long side they read (or write) consecutive elements, and on the short side each thread's
// elements are adjacent, a warp's together one contiguous span.
template <class Move>
__global__ void narrow_transpose_kernel(int64_t lines, TileGrid g, const typename Move::Src* src,
                                        typename Move::Dst* dst) {
  const bool few_rows = g.rows <= g.cols;
  const int64_t lines_per_matrix = few_rows ? g.cols : g.rows;
  HOOKRT_GRID_STRIDE_LOOP(line, lines) {
    const int64_t matrix = line / lines_per_matrix * g.rows * g.cols, k = line % lines_per_matrix;
    if (few_rows) {  // k is a source column
      for (int64_t r = 0; r < g.rows; ++r)
        dst[matrix + k * g.rows + r] = Move::out(Move::in(src[matrix + r * g.cols + k]));
    } else {  // k is a source row
      for (int64_t c = 0; c < g.cols; ++c)
        dst[matrix + c * g.rows + k] = Move::out(Move::in(src[matrix + k * g.cols + c]));
    }
  }
}

template <class Move>
void launch_transpose(const void* src, void* dst, const TileGrid& g, cudaStream_t stream) {
  const auto* in = static_cast<const typename Move::Src*>(src);
  auto* out = static_cast<typename Move::Dst*>(dst);
  if (std::min(g.rows, g.cols) <= kNarrowSide) {
    launch_linear(narrow_transpose_kernel<Move>, g.batch * std::max(g.rows, g.cols), stream, g, in, out);
    return;
  }
  const unsigned blocks = static_cast<unsigned>(std::min(g.tiles, kMaxTileBlocks));
  transpose_kernel<Move><<<blocks, dim3(kTile, kTileRows), 0, stream>>>(g, in, out);
  HOOKRT_CUDA_CHECK(cudaGetLastError());
}

// Calls fn with an unsigned integer of `bytes` bytes (an element's bits); nothing for other sizes.
template <class Fn>
void with_bits_type(size_t bytes, Fn fn) {
  switch (bytes) {
    case 1: return fn(uint8_t{});
    case 2: return fn(uint16_t{});
    case 4: return fn(uint32_t{});
    case 8: return fn(uint64_t{});
    default: return;
  }
}

}  // namespace

void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n,
             cudaStream_t stream) {
  bool launched = false;
  if (src_dtype != dst_dtype) {
    with_float_type(src_dtype, [&](auto from) {
      using From = decltype(from);
      with_float_type(dst_dtype, [&](auto to) {
        using To = decltype(to);
        const auto* in = static_cast<const From*>(src);
        auto* out = static_cast<To*>(dst);
        const VectorSplit split = split_for_vectors(n, in, out);
        launch_linear(convert_kernel<From, To>, split.items(), stream, split, in, out);
        launched = true;
      });
    });
  }
  if (!launched)
    throw Error("convert: no conversion from " + dtype_name(src_dtype) + " to " +
                dtype_name(dst_dtype) + " on the CUDA device (it converts F32, BF16 and F16)");
}

void convert_layout(const void* src, DType src_dtype, void* dst, DType dst_dtype, const LayoutChange& change,
                    cudaStream_t stream) {
  const TileGrid g = tile_grid(change);
  bool launched = false;
  auto launch = [&](auto move) {
    if (g.tiles > 0) launch_transpose<decltype(move)>(src, dst, g, stream);
    launched = true;
  };
  if (src_dtype == dst_dtype) {
    with_bits_type(dtype_size(src_dtype), [&](auto bits) { launch(MoveBits<decltype(bits)>{}); });
  } else {
    with_float_type(src_dtype, [&](auto from) {
      with_float_type(dst_dtype, [&](auto to) {
        using From = decltype(from);
        using To = decltype(to);
        if constexpr (!std::is_same_v<From, To>) launch(ConvertValue<From, To>{});
      });
    });
  }
  if (!launched)
    throw Error("convert: no conversion from " + dtype_name(src_dtype) + " to " + dtype_name(dst_dtype) +
                " between memory formats on the CUDA device (it converts F32, BF16 and F16, and moves any one dtype)");
}

}  // namespace hookrt::cuda
