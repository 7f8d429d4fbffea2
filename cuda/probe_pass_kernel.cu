// The pass kernels' launchers (see probe_pass_kernel.cuh): each calls the launcher of the
// tensor's element type (probe_pass_launchers.cuh; the kernels are in probe_pass_kernels.cuh).
#include "probe_pass_kernel.cuh"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <string>

#include "probe_chunks.cuh"
#include "probe_pass_launchers.cuh"
#include "status.h"

namespace hookrt::cuda::detail {

int probing_input_variant(ProducerKind kind, int input) {
  if (kind == ProducerKind::ReluForward && input == 0) return 0;
  if (kind == ProducerKind::AddReluForward && input == 0) return 1;
  if (kind == ProducerKind::AddReluForward && input == 1) return 2;
  if (kind == ProducerKind::ReluBackward && input == 1) return 3;
  if (kind == ProducerKind::BatchNormApply && input == 0) return 4;
  return -1;
}

int probing_input_blocks_per_multiprocessor(int variant, ProbeElement element) {
  int blocks = 0;
  with_element_type(
      element, [&](auto value) { blocks = input_pass_blocks_per_multiprocessor(value, variant); });
  return blocks;
}

void launch_pass_probing_input(const PassArgs& args, const InputPassArgs& input, int variant,
                               int blocks, FlatAcc* partials, cudaStream_t stream) {
  const size_t shared_bytes = static_cast<size_t>(args.shared_alive_words) * sizeof(unsigned);
  with_element_type(args.element, [&](auto value) {
    launch_input_pass(value, args, input, variant, blocks, partials, shared_bytes, stream);
  });
  HOOKRT_CUDA_CHECK(cudaGetLastError());
}

PassKernel pass_kernel_for(const PlannedPass& pass) {
  if (pass.per_channel()) return PassKernel::Rows;
  int zeros = 0;
  for (const PlannedOp& op : pass.ops) {
    if (op.kind == PlannedOpKind::Zeros)
      ++zeros;
    else if (op.kind != PlannedOpKind::Stats && op.kind != PlannedOpKind::NonFinite)
      return PassKernel::Flat;
  }
  return zeros <= 1 ? PassKernel::Common : PassKernel::Flat;
}

int fused_pass_blocks_per_multiprocessor(PassKernel kernel, ProbeElement element) {
  int blocks = 0;
  with_element_type(element,
                    [&](auto value) { blocks = pass_blocks_per_multiprocessor(value, kernel); });
  return blocks;
}

void launch_batch_common_pass(const BatchPassArgs& batch, cudaStream_t stream) {
  if (batch.passes < 1 || batch.passes > kMaxBatchPasses)
    throw Error("internal: a batch of " + std::to_string(batch.passes) + " probe passes");
  int shared_words = 0;
  for (int r = 0; r < batch.passes; ++r)
    shared_words = std::max(shared_words, batch.pass[r].shared_alive_words);
  const size_t shared_bytes = static_cast<size_t>(shared_words) * sizeof(unsigned);
  with_element_type(batch.pass[0].element,
                    [&](auto value) { launch_batch_pass(value, batch, shared_bytes, stream); });
  HOOKRT_CUDA_CHECK(cudaGetLastError());
}

void launch_fused_pass(const PassArgs& args, PassKernel kernel, int blocks, FlatAcc* partials,
                       cudaStream_t stream) {
  const size_t shared_bytes =
      static_cast<size_t>(args.shared_hist_words + args.shared_alive_words) * sizeof(unsigned);
  with_element_type(args.element, [&](auto value) {
    launch_pass(value, args, kernel, blocks, partials, shared_bytes, stream);
  });
  HOOKRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace hookrt::cuda::detail
