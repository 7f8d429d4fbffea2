#pragma once
// clipnorm's norm pass: clipnorm scales the tensor by the norm the ops before it leave, so before
// a pass with a clipnorm can run, the norm takes a read of its own and a finishing kernel turns it
// into the scale. Host launcher, since the kernels live in probe_clip_norm.cu.
#include <cuda_runtime.h>

#include "probe_pass_args.cuh"

namespace hookrt::cuda::detail {

// Queues, for the clipnorm at op `end` of the pass: a norm pass of `blocks` blocks (kBlock threads)
// over the tensor as ops [0, end) leave it, with block partials in `partials` (blocks doubles),
// then one block that writes the norm and the scale to `slot` (the op's slot entries) and the
// scale to `scale`, the clipnorm's device scale. Throws Error if a launch fails.
void launch_clip_norm(const PassArgs& args, int end, int blocks, double* partials, double max_norm,
                      double* slot, float* scale, cudaStream_t stream);

}  // namespace hookrt::cuda::detail
