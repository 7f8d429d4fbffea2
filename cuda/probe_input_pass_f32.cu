// The passes that probe a producing op's input as they load it, over F32 tensors (see
// probe_pass_launchers.cuh).
#include "probe_pass_kernels.cuh"

namespace hookrt::cuda::detail {

int input_pass_blocks_per_multiprocessor(float, int variant) {
  return typed_input_pass_blocks_per_multiprocessor<float>(variant);
}

void launch_input_pass(float, const PassArgs& args, const InputPassArgs& input, int variant,
                       int blocks, FlatAcc* partials, size_t shared_bytes, cudaStream_t stream) {
  typed_launch_input_pass<float>(args, input, variant, blocks, partials, shared_bytes, stream);
}

}  // namespace hookrt::cuda::detail
