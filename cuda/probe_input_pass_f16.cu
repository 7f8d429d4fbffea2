// The passes that probe a producing op's input as they load it, over F16 tensors (see
// probe_pass_launchers.cuh).
#include "probe_pass_kernels.cuh"

namespace hookrt::cuda::detail {

int input_pass_blocks_per_multiprocessor(__half, int variant) {
  return typed_input_pass_blocks_per_multiprocessor<__half>(variant);
}

void launch_input_pass(__half, const PassArgs& args, const InputPassArgs& input, int variant,
                       int blocks, FlatAcc* partials, size_t shared_bytes, cudaStream_t stream) {
  typed_launch_input_pass<__half>(args, input, variant, blocks, partials, shared_bytes, stream);
}

}  // namespace hookrt::cuda::detail
