#pragma once
// The pass kernels of one element type (float, __nv_bfloat16, __half: the first argument picks
// it) behind launchers, for probe_pass_kernel.cu to call by the tensor's type. Each type's passes
// and each type's input-probing passes are defined in a file of their own (probe_pass_<type>.cu,
// probe_input_pass_<type>.cu) so that the build compiles them side by side: in one file, the 27
// kernels took nvcc as long as the rest of the library together, and every build waited on them.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "probe_accumulators.cuh"
#include "probe_pass_args.cuh"
#include "probe_pass_kernel.cuh"

namespace hookrt::cuda::detail {

// As fused_pass_blocks_per_multiprocessor, launch_fused_pass and launch_batch_common_pass, for
// tensors of the first argument's type (probe_pass_<type>.cu).
#define HOOKRT_PASS_LAUNCHERS(T)                                                                           \
  int pass_blocks_per_multiprocessor(T, PassKernel kernel);                                                \
  void launch_pass(T, const PassArgs& args, PassKernel kernel, int blocks, FlatAcc* partials,              \
                   size_t shared_bytes, cudaStream_t stream);                                              \
  void launch_batch_pass(T, const BatchPassArgs& batch, size_t shared_bytes, cudaStream_t stream);
// As probing_input_blocks_per_multiprocessor and launch_pass_probing_input, for tensors of the
// first argument's type (probe_input_pass_<type>.cu).
#define HOOKRT_INPUT_PASS_LAUNCHERS(T)                                                                     \
  int input_pass_blocks_per_multiprocessor(T, int variant);                                                \
  void launch_input_pass(T, const PassArgs& args, const InputPassArgs& input, int variant, int blocks,      \
                         FlatAcc* partials, size_t shared_bytes, cudaStream_t stream);

HOOKRT_PASS_LAUNCHERS(float)
HOOKRT_PASS_LAUNCHERS(__nv_bfloat16)
HOOKRT_PASS_LAUNCHERS(__half)
HOOKRT_INPUT_PASS_LAUNCHERS(float)
HOOKRT_INPUT_PASS_LAUNCHERS(__nv_bfloat16)
HOOKRT_INPUT_PASS_LAUNCHERS(__half)

#undef HOOKRT_PASS_LAUNCHERS
#undef HOOKRT_INPUT_PASS_LAUNCHERS

}  // namespace hookrt::cuda::detail
