#pragma once
// Conversion between float dtypes and between memory formats on the device, queued on `stream`:
// Backend::convert.
#include <cuda_runtime.h>

#include <cstdint>

#include "hookrt/tensor.h"

namespace hookrt::cuda {

// dst (n elements of dst_dtype) = src (n elements of src_dtype), for F32, BF16 and F16 (two
// different ones). Each value widens to F32 exactly and rounds to nearest even, a NaN keeping the
// bits the host's Tensor::to gives it, so the result is Tensor::to's bit for bit. Throws Error
// naming both dtypes for any other pair.
void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n,
             cudaStream_t stream);

// An (N, C, H, W) tensor moving from one memory format to the other.
struct LayoutChange {
  int64_t n, c, hw;  // images, channels, pixels per image (H·W)
  MemoryFormat to;   // ChannelsLast: an NCHW src into an NHWC dst; Contiguous: the reverse
};

// dst = src with every element moved to its place in change.to's order: a batched transpose of
// each image's (C, H·W) plane, tiled through shared memory so that both the reads and the writes
// are coalesced (a plane with a side of at most 8, as the 3-channel input batch, moves a line per
// thread instead, which keeps them coalesced without idle lanes). Between two dtypes of F32, BF16 and F16 each value is converted as convert()
// converts it (Tensor::to's bits); within one dtype, of any size, the bits move unchanged (NaN
// payloads too), as the host's Tensor::to_memory_format moves them. Throws Error naming both
// dtypes for any other pair.
void convert_layout(const void* src, DType src_dtype, void* dst, DType dst_dtype, const LayoutChange& change,
                    cudaStream_t stream);

}  // namespace hookrt::cuda
