#pragma once
// The pass kernels of one element type T (float, __nv_bfloat16, __half) behind launchers, for
// probe_pass_kernel.cu to pick by the tensor's type. Each type's passes and each type's
// input-probing passes are instantiated in a file of their own (probe_pass_<type>.cu,
// probe_input_pass_<type>.cu) so that the build compiles them side by side: in one file, the 27
// kernels took nvcc as long as the rest of the library together, and every build waited on them.
#include <cuda_runtime.h>

#include <cstddef>

#include "probe_accumulators.cuh"
#include "probe_pass_args.cuh"
#include "probe_pass_kernel.cuh"

namespace hookrt::cuda::detail {

// As fused_pass_blocks_per_multiprocessor and launch_fused_pass, for tensors of T.
template <class T>
int pass_blocks_per_multiprocessor(PassKernel kernel);
template <class T>
void launch_pass(const PassArgs& args, PassKernel kernel, int blocks, FlatAcc* partials,
                 size_t shared_bytes, cudaStream_t stream);
// As launch_batch_common_pass, for tensors of T.
template <class T>
void launch_batch_pass(const BatchPassArgs& batch, size_t shared_bytes, cudaStream_t stream);
// As probing_input_blocks_per_multiprocessor and launch_pass_probing_input, for tensors of T.
template <class T>
int input_pass_blocks_per_multiprocessor(int variant);
template <class T>
void launch_input_pass(const PassArgs& args, const InputPassArgs& input, int variant, int blocks,
                       FlatAcc* partials, size_t shared_bytes, cudaStream_t stream);

}  // namespace hookrt::cuda::detail
