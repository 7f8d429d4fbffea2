#pragma once
// The kernel of one planned pass of the fused probe engine, behind its host launcher (a kernel is
// not visible from another .cu file without relocatable device code, which the build leaves off).
#include <cuda_runtime.h>

#include "probe_accumulators.cuh"
#include "probe_pass_args.cuh"

namespace hookrt::cuda::detail {

// Which kernel runs a pass: Rows, the row walk, for a pass with a channels probe (its finishing
// kernels follow, probe_finish.cuh); Common, the flat walk with one accumulator, for a pass of
// only stats, nonfinite and at most one zeros (the probes users put everywhere); Flat, the
// general flat walk, for any other pass.
enum class PassKernel { Rows, Flat, Common };
PassKernel pass_kernel_for(const PlannedPass& pass);

// How many blocks of the kernel, for tensors of `element`, one multiprocessor holds at once, as its
// registers allow; throws Error if the query fails.
int fused_pass_blocks_per_multiprocessor(PassKernel kernel, ProbeElement element);

// Queues the pass on `stream` as `blocks` blocks of kBlock threads of the kernel for args.element; block b leaves op k's flat
// partial at partials[b * kMaxOps + k] (Common: one at partials[b * kMaxOps], its ops' one
// accumulator). A flat pass (Flat, Common) finishes itself and writes
// the slot, given args.done and its ops' counters zeroed, which it leaves zeroed. Shared memory
// is sized from args.shared_hist_words and args.shared_alive_words. Throws Error if the launch
// fails.
void launch_fused_pass(const PassArgs& args, PassKernel kernel, int blocks, FlatAcc* partials,
                       cudaStream_t stream);

// Common passes of several plans (PassKernel::Common, flat, each finishing itself) as one launch:
// consecutive probe runs on different tensors, so that a run's fixed cost (the launch, the last
// block's finish) is paid once for all of them. Pass r runs as blocks [first_block[r],
// first_block[r + 1]) of the grid, with the partials of its own launch at partials[r]: with the
// blocks its own launch would have, its slot gets the same bits. Every pass of a batch reads the
// same element type.
constexpr int kMaxBatchPasses = static_cast<int>(kMaxBatchedProbeRuns);
struct BatchPassArgs {
  int passes;
  int first_block[kMaxBatchPasses + 1];
  FlatAcc* partials[kMaxBatchPasses];
  PassArgs pass[kMaxBatchPasses];
};
// Kernel parameters beyond 4 KiB need CUDA 12.1 and Volta; the batch stays within the classic limit.
static_assert(sizeof(BatchPassArgs) <= 4096, "a batch of passes fits the kernel parameter space");
// Throws Error if the launch fails.
void launch_batch_common_pass(const BatchPassArgs& batch, cudaStream_t stream);

// The passes that write a producing op's output (args: its producer, common ops, possibly none)
// and also run `input`'s ops on one of the op's inputs as they load it, so that the input is read
// once for both. A variant per op and input: ReLU's input, either input of the residual add's
// ReLU, ReLU backward's incoming gradient, and a batch norm's input; -1 for any other. Each is
// instantiated for every element type (args.element: the tensor's and both inputs').
constexpr int kProbingInputVariants = 5;
int probing_input_variant(ProducerKind kind, int input);
int probing_input_blocks_per_multiprocessor(int variant, ProbeElement element);
// Block b leaves the output's partial at partials[b * kMaxOps] and the input's at
// partials[b * kMaxOps + 1]; the last block writes both slots. Otherwise as launch_fused_pass.
void launch_pass_probing_input(const PassArgs& args, const InputPassArgs& input, int variant, int blocks,
                               FlatAcc* partials, cudaStream_t stream);

}  // namespace hookrt::cuda::detail
