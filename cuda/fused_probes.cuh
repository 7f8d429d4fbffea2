#pragma once
// The fused probe engine on the device: runs a ProbePlan (src/probe_plan.h) on an F32, BF16 or F16
// device tensor, one read of the tensor per planned pass (plus one norm read before each clipnorm),
// and leaves every probe's results in a device slot laid out as probe_slot says. 16-bit values are
// widened to float as they are loaded, and what changing probes compute is rounded to the tensor's
// dtype as it is, as cpu/probe_values.h describes: the kernels then see what the CPU engine sees.
#include <cuda_runtime.h>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "fast_divmod.h"
#include "hookrt/tensor.h"
#include "probe_plan.h"

namespace hookrt::cuda {

// The element types the probe kernels read.
enum class ProbeElement : int { F32, BF16, F16 };
constexpr int kProbeElements = 3;
// Whether the probe kernels read tensors of this dtype (F32, BF16 and F16).
bool is_probe_element(DType dtype);
// A tensor's dtype as a ProbeElement; throws Error naming `probe` and the tensor for any dtype
// but F32, BF16 and F16.
ProbeElement probe_element(DType dtype, const Shape& shape, const std::string& probe);
DType probe_element_dtype(ProbeElement element);

// An elementwise op that writes the tensor in the plan's first pass instead of before it (probes
// in the op's epilogue): the pass computes each element from the inputs, probes it and stores it,
// so the tensor is written once and never read. ReLU's rules are relu_math.cuh's, batch norm's
// batchnorm_terms.cuh's.
enum class ProducerKind : int { None, ReluForward, ReluBackward, AddReluForward, BatchNormApply, BatchNormDx };

// The inputs, (plan.numel) each, as ProducingOp has them: relu(a), relu_backward(y = a, dy = b),
// relu(a + b), a batch norm's y from x = a, its dx from dy = a and x = b (null: inference). They
// have the tensor's element type (F32, BF16 or F16); each value is computed in float and rounded
// once to that type, as the op's own kernel (relu.cu, batchnorm_mixed.cu) computes and stores it.
struct FusedProducer {
  ProducerKind kind = ProducerKind::None;
  const void* a = nullptr;
  const void* b = nullptr;  // unused by ReluForward and BatchNormApply
  // The batch-norm kinds: their F32 coefficients, rows of C (batchnorm_mixed.cuh's), and element
  // i's channel, (i / inner) % C, by these divisors (the tensor's elements all fit FastDivmod).
  const float* coefficients = nullptr;
  FastDivmod inner, channels;
};

// The operand a producer lacks ("a", "b" or "coefficients"), or nullptr when it has what its kind
// reads: b for the ReLU backward and the residual add (a batch norm's dx reads x = b in training
// only), coefficients for the batch-norm kinds.
const char* missing_producer_input(const FusedProducer& producer);

// Whether a pass can compute a batch norm's elements on a tensor of `numel` elements, `inner`
// consecutive ones to a channel in turn (its channel arithmetic is FastDivmod's).
bool fused_batchnorm_fits(int64_t numel, int64_t inner, int64_t channels);

// Probes on one input of the producer, run in the pass that reads that input to write the tensor
// (ProbeRunOptions::probe_input): a batch norm's output, probed where its ReLU reads it.
struct FusedInputProbes {
  const ProbePlan* plan = nullptr;  // the input's probes on its shape (the tensor's); nullptr: none
  int input = 0;                    // 0: producer.a, 1: producer.b
  double* slot = nullptr;           // (plan->slot_size) its results
};

// Whether run_fused_probes can run `input` in the pass that writes the tensor: a ReLU's input,
// either input of the residual add's ReLU, ReLU backward's incoming gradient (b), or a batch norm's
// input (the convolution's output it normalises), and both plans
// (the tensor's may have no pass at all) one pass of the common probes (stats, nonfinite, at most
// one zeros) with no capture, on the same layout. Elsewhere the input's probes run on their own.
bool fused_probes_can_probe_input(const ProbePlan& plan, ProducerKind kind, const FusedInputProbes& input);

// Whether the plan's first pass can write the tensor itself: it has one, and no clipnorm in it
// needs the tensor's norm before the pass runs (the norm pass would read a tensor not yet written).
bool fused_probes_can_produce(const ProbePlan& plan);

// The device memory a plan reads and writes, owned by the caller and valid on the stream.
struct FusedProbeBuffers {
  // The tensor's producer, for a plan that fused_probes_can_produce; kind None: the tensor is
  // already written.
  FusedProducer producer;
  ProbeElement element = ProbeElement::F32;  // the tensor's and the captures'
  void* tensor = nullptr;  // (plan.numel) probed, and rewritten in place by changing probes
  double* slot = nullptr;   // (plan.slot_size) results
  // By probe index (plan.probe_count entries, nullptr elsewhere):
  std::vector<float*> clamp_masks;  // (plan.numel) a clamp's grad mask, or nullptr for none
  std::vector<float*> clip_scales;  // (1) a clipnorm's scale; required for every clipnorm
  // By pass index: (plan.numel) the tensor at the pass's end; required for passes with captures.
  std::vector<void*> captures;
  // Probes on the producer's input, run in the first pass (fused_probes_can_probe_input).
  FusedInputProbes input;
  // fused_probe_counter_words(plan, input.plan) words, all zero, which the kernels leave zero: the counters
  // of flat passes, kept from run to run so that such a pass is one launch and no memset. Runs
  // on one stream may share them (stream order keeps them apart).
  unsigned long long* zeroed_counters = nullptr;
};

// The zeroed counter words the plan's flat passes need (the most any one of them needs), with those
// of the input's plan where its probes run in the first pass.
size_t fused_probe_counter_words(const ProbePlan& plan, const ProbePlan* input_plan = nullptr);

// Device scratch of at least `bytes` bytes for the work queued next on the stream: a pass's block
// partials and row moments, which its own kernels consume. Later requests may hand out the same
// memory (the backend keeps one buffer), as stream order runs their work after this one's.
using ProbeScratchAllocator = std::function<void*(size_t bytes)>;

// Queues the plan's kernels on `stream`; the slot is complete when the stream reaches this point.
void run_fused_probes(const ProbePlan& plan, const FusedProbeBuffers& buffers,
                      const ProbeScratchAllocator& scratch, cudaStream_t stream);

// Probe runs that may share one launch with others (run_fused_probe_batch): one pass of the common
// probes (stats, nonfinite, at most one zeros), which read the tensor and change nothing, with no
// capture and no op to write the tensor first.
bool fused_probes_can_batch(const ProbePlan& plan);

// One run of a batch: its plan (fused_probes_can_batch), its tensor and its slot.
struct BatchedProbeRun {
  const ProbePlan* plan = nullptr;
  ProbeElement element = ProbeElement::F32;  // the same for every run of a batch
  const void* tensor = nullptr;  // (plan->numel)
  double* slot = nullptr;         // (plan->slot_size)
};
// The most runs one launch takes (its arguments are kernel parameters).
constexpr size_t kMaxBatchedProbeRuns = 6;

// The zeroed counter words a batch needs: each run's own, one after another.
size_t fused_batch_counter_words(const std::vector<BatchedProbeRun>& runs);

// Queues the runs (1 to kMaxBatchedProbeRuns, of one element type) on `stream` as one kernel; each slot gets the bits
// run_fused_probes would give it (a run alone is exactly its launch). `zeroed_counters`: fused_batch_counter_words(runs) words, all
// zero, which the kernel leaves zero.
void run_fused_probe_batch(const std::vector<BatchedProbeRun>& runs, unsigned long long* zeroed_counters,
                           const ProbeScratchAllocator& scratch, cudaStream_t stream);

}  // namespace hookrt::cuda
