#pragma once
// The channels-last (NHWC) walks of the mixed batch norm (batchnorm_mixed.cuh), queued on
// `stream`: its sums pass and its elementwise passes over x, y, dy, dx (N, C, HW) in NHWC order,
// that is (rows, C) with rows = N·HW and the channel the fastest axis. Instantiated for float,
// __nv_bfloat16 and __half. The per-channel steps between the passes are the NCHW path's.
//
// A block is a tile of `lanes` threads across a group of channels by rows_per_block threads down
// the rows. Each thread owns V adjacent channels (4, 2 or 1: the most that divide C), moved with
// one load or store of V elements where every tensor's address is aligned to V elements, so a
// warp reads adjacent channels of consecutive rows; it keeps its channels' sums or coefficients in
// registers over all its rows and issues several rows' loads before it uses any. The tiles depend
// on the dims alone, and the sums of a block's rows meet in shared memory in a fixed tree: every
// (channel, split) partial, and so every result, is the same on every run.
#include <cuda_runtime.h>

#include <cstdint>

#include "batchnorm_args.h"
#include "batchnorm_terms.cuh"

namespace hookrt::cuda::batchnorm {

// The splits channels_last_sums divides the rows into: the partials per channel it writes.
int64_t channels_last_splits(const BatchNormDims& d);

// Pass P's sums over `in` into partials (C, channels_last_splits(d), 2).
template <Pass P, class T>
void channels_last_sums(const SumsInputs<T>& in, const BatchNormDims& d, double* partials,
                        cudaStream_t stream);

// y = x * scale[c] + shift[c] (batchnorm_terms.cuh's `normalized`), then E's ReLU, after adding
// `residual` (AddRelu; unread otherwise).
template <ApplyEpilogue E, class T>
void channels_last_normalize(const T* x, const T* residual, T* y, const float* scale,
                             const float* shift, const BatchNormDims& d, cudaStream_t stream);

// dx from dy (and x in training) with the per-channel coefficients k (through a ReLU where k
// has the forward's scale).
template <class T>
void channels_last_dx(const T* dy, const T* x, T* dx, const DxCoefficients& k,
                      const BatchNormDims& d, bool training, cudaStream_t stream);

}  // namespace hookrt::cuda::batchnorm
