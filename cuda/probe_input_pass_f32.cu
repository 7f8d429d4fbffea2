// The passes that probe a producing op's input as they load it, over F32 tensors (see
// probe_pass_launchers.cuh).
#include "probe_pass_kernels.cuh"

namespace hookrt::cuda::detail {

template int input_pass_blocks_per_multiprocessor<float>(int);
template void launch_input_pass<float>(const PassArgs&, const InputPassArgs&, int, int, FlatAcc*,
                                       size_t, cudaStream_t);

}  // namespace hookrt::cuda::detail
