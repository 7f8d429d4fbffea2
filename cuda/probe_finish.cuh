#pragma once
// The kernels that finish a row pass of the fused probe engine once its pass kernel has run: they
// combine the pass's partials in a fixed order and write each op's slot entries (a flat pass
// finishes itself in its last block). Host launchers, since the kernels live in probe_finish.cu
// (no relocatable device code).
#include <cuda_runtime.h>

#include "probe_accumulators.cuh"
#include "probe_pass_args.cuh"

namespace hookrt::cuda::detail {

// Per-channel ops (zeros, channels): merges each channel's row partials; writes channels' slot
// arrays and counts zeros' dead channels into its counters[0].
// `blocks` blocks of kBlock threads, one thread per channel in a grid-stride loop.
void launch_channel_finish(const PassArgs& args, int blocks, cudaStream_t stream);

// Flat ops: merges the `blocks` block partials of each op (partials[b * kMaxOps + k]) in one block
// and writes the op's slot entries; hist copies its counters. Runs after launch_channel_finish,
// whose dead-channel count zeros' slot reads. Both throw Error if the launch fails.
void launch_flat_finish(const PassArgs& args, const FlatAcc* partials, int blocks,
                        cudaStream_t stream);

}  // namespace hookrt::cuda::detail
