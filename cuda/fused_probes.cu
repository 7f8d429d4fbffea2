// The fused probe engine's host launcher (see fused_probes.cuh). Each planned pass is one kernel
// that reads the tensor once, with a load per four elements where the address allows, runs the pass's probes
// on each element in registers (changing probes first rewrite the value the later ones see), and
// writes the value back when the pass changed it. Per-block partials go to scratch and are
// combined in a fixed order in fp64, so a slot has the same bits on every run on the same GPU: by
// the last block of a flat pass to finish, which makes a flat pass one launch (its counters are
// zeroed words that it leaves zeroed, so no memset either), or by finishing kernels after a row
// pass. Integer counts (histogram bins, dead channels) use integer atomics, which
// are exact in any order. Passes walk the tensor flat (the whole grid strides over it) unless they
// hold a channels probe, whose per-channel moments need rows: then each warp takes rows (o, c).
// zeros finds dead channels in either walk: in the flat one, an element that is > 0 or NaN sets
// its channel's alive flag.
//
// Where the parts live: probe_pass_args.cuh (what a kernel reads of a pass), probe_accumulators.cuh
// (per-thread accumulators and their merges), probe_chunks.cuh (each probe's step on a chunk of
// elements), probe_pass_kernel.cu (the pass kernel), probe_clip_norm.cu (clipnorm's norm pass),
// probe_flat_finish.cuh (merging the partials), probe_finish.cu (the row pass's finishing
// kernels). This file sizes grids and scratch and queues kernels.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "cpu/probe_values.h"
#include "fused_probes.cuh"
#include "probe_accumulators.cuh"
#include "probe_clip_norm.cuh"
#include "probe_finish.cuh"
#include "probe_pass_args.cuh"
#include "probe_pass_kernel.cuh"
#include "status.h"

namespace hookrt::cuda {
namespace {

using namespace detail;

// Multiprocessors of the current device, asked once per device.
int multiprocessors() {
  static std::mutex mutex;
  static std::vector<int> known;  // by device; 0 until asked
  int device = 0;
  HOOKRT_CUDA_CHECK(cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(mutex);
  if (static_cast<size_t>(device) >= known.size()) known.resize(static_cast<size_t>(device) + 1, 0);
  int& count = known[static_cast<size_t>(device)];
  if (count == 0) HOOKRT_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

// Enough blocks for `items` at `per_block` each, at most `per_multiprocessor` per multiprocessor
// (grid-stride loops cover the rest), at least one so that finishing kernels always have partials
// to read.
int grid_for(int64_t items, int64_t per_block, int per_multiprocessor = 2) {
  const int64_t wanted = (items + per_block - 1) / per_block;
  const int64_t most = static_cast<int64_t>(per_multiprocessor) * multiprocessors();
  return static_cast<int>(std::max<int64_t>(1, std::min(wanted, most)));
}

// A kernel's blocks per multiprocessor, asked of `query` once per device and key (a kernel or
// variant, below `Keys`): as many as are resident at once (a memory-bound pass needs every warp it
// can get to keep loads in flight), at least two.
template <size_t Keys, class Query>
int resident_blocks(std::mutex& mutex, std::vector<std::array<int, Keys>>& known, size_t key, Query query) {
  int device = 0;
  HOOKRT_CUDA_CHECK(cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(mutex);
  if (static_cast<size_t>(device) >= known.size()) known.resize(static_cast<size_t>(device) + 1, std::array<int, Keys>{});
  int& blocks = known[static_cast<size_t>(device)].at(key);
  if (blocks == 0) blocks = std::max(2, query());
  return blocks;
}

int pass_blocks_per_multiprocessor(PassKernel kernel, ProbeElement element) {
  static std::mutex mutex;
  static std::vector<std::array<int, 3 * kProbeElements>> known;  // by device, by kernel and element
  const size_t key = static_cast<size_t>(kernel) * kProbeElements + static_cast<size_t>(element);
  return resident_blocks(mutex, known, key, [&] { return fused_pass_blocks_per_multiprocessor(kernel, element); });
}

// The same for the passes that probe their producer's input, by variant (probing_input_variant)
// and element type.
int probing_input_pass_blocks_per_multiprocessor(int variant, ProbeElement element) {
  if (variant < 0) throw Error("internal: no pass probes that input of its producing op");
  static std::mutex mutex;
  static std::vector<std::array<int, kProbingInputVariants * kProbeElements>> known;  // by device, variant, element
  const size_t key = static_cast<size_t>(variant) * kProbeElements + static_cast<size_t>(element);
  return resident_blocks(mutex, known, key, [&] { return probing_input_blocks_per_multiprocessor(variant, element); });
}

// A flat pass's channel arithmetic in 32 bits when every element index fits FastDivmod.
bool fits_fast_channels(const ProbePlan& plan) {
  return plan.numel > 0 && plan.numel - 1 <= FastDivmod::kMaxDividend && plan.inner >= 1 && plan.channels >= 1 &&
         plan.inner <= FastDivmod::kMaxDividend && plan.channels <= FastDivmod::kMaxDividend;
}

size_t round_up(size_t bytes) { return (bytes + 255) / 256 * 256; }

// Counter words of op k of a pass: hist's (below, above, bins); zeros' dead count, then (flat
// passes) one alive flag per channel.
size_t op_counter_words(const ProbePlan& plan, const PlannedPass& pass, size_t k) {
  const PlannedOp& op = pass.ops[k];
  if (op.kind == PlannedOpKind::Hist) return 2 + static_cast<size_t>(op.bins);
  if (op.kind == PlannedOpKind::Zeros) return 1 + (pass.per_channel() ? 0 : static_cast<size_t>(plan.channels));
  return 0;
}

// Scratch of one pass, carved from one request. A flat pass takes its counters from the zeroed
// words (the first is its `done` count) and needs no memset; a row pass's are scratch.
struct PassScratch {
  FlatAcc* partials = nullptr;       // (blocks, kMaxOps)
  double* norm_partials = nullptr;   // (flat blocks)
  unsigned long long* done = nullptr;      // flat passes
  unsigned long long* to_clear = nullptr;  // row passes: counters to memset before the pass
  size_t clear_bytes = 0;
  std::vector<double*> rows;         // by op
  std::vector<unsigned long long*> op_counters;  // by op
};

// How one pass's scratch is laid out: partials, norm partials, counters (row passes), row moments.
struct PassScratchLayout {
  std::vector<size_t> row_doubles;  // by op
  size_t counters_total = 0;
  size_t partial_bytes = 0, norm_bytes = 0, counter_bytes = 0, row_bytes = 0;
  size_t bytes() const { return partial_bytes + norm_bytes + counter_bytes + row_bytes; }
};

PassScratchLayout pass_scratch_layout(const ProbePlan& plan, const PlannedPass& pass, int blocks, int flat_blocks) {
  const size_t ops = pass.ops.size();
  const bool row_pass = pass.per_channel();
  PassScratchLayout layout;
  layout.row_doubles.assign(ops, 0);
  size_t rows_total = 0;
  for (size_t k = 0; k < ops; ++k) {
    const PlannedOp& op = pass.ops[k];
    if (row_pass && (op.kind == PlannedOpKind::Zeros || op.kind == PlannedOpKind::Channels))
      layout.row_doubles[k] = static_cast<size_t>(plan.rows()) * kRowFields;
    layout.counters_total += op_counter_words(plan, pass, k);
    rows_total += layout.row_doubles[k];
  }
  layout.partial_bytes = round_up(static_cast<size_t>(blocks) * kMaxOps * sizeof(FlatAcc));
  layout.norm_bytes = round_up(static_cast<size_t>(flat_blocks) * sizeof(double));
  layout.counter_bytes = row_pass ? round_up(layout.counters_total * sizeof(unsigned long long)) : 0;
  layout.row_bytes = round_up(rows_total * sizeof(double));
  return layout;
}

// The pass's scratch carved from `base` (layout.bytes() of it).
PassScratch carve_pass_scratch(const ProbePlan& plan, const PlannedPass& pass, const PassScratchLayout& layout,
                               char* base, unsigned long long* zeroed) {
  const size_t ops = pass.ops.size();
  const bool row_pass = pass.per_channel();
  const size_t partial_bytes = layout.partial_bytes, norm_bytes = layout.norm_bytes;
  const size_t counter_bytes = layout.counter_bytes;
  const std::vector<size_t>& row_doubles = layout.row_doubles;
  PassScratch s;
  s.partials = reinterpret_cast<FlatAcc*>(base);
  s.norm_partials = reinterpret_cast<double*>(base + partial_bytes);
  unsigned long long* counters = nullptr;
  if (row_pass) {
    counters = s.to_clear = reinterpret_cast<unsigned long long*>(base + partial_bytes + norm_bytes);
    s.clear_bytes = layout.counters_total * sizeof(unsigned long long);
  } else {
    if (zeroed == nullptr) throw Error("run_fused_probes: a flat pass needs the zeroed counters");
    s.done = zeroed;
    counters = zeroed + 1;
  }
  double* rows = reinterpret_cast<double*>(base + partial_bytes + norm_bytes + counter_bytes);
  for (size_t k = 0; k < ops; ++k) {
    const size_t words = op_counter_words(plan, pass, k);
    s.op_counters.push_back(words ? counters : nullptr);
    s.rows.push_back(row_doubles[k] ? rows : nullptr);
    counters += words;
    rows += row_doubles[k];
  }
  return s;
}

PassScratch allocate_pass_scratch(const ProbePlan& plan, const PlannedPass& pass, int blocks, int flat_blocks,
                                  unsigned long long* zeroed, const ProbeScratchAllocator& scratch) {
  const PassScratchLayout layout = pass_scratch_layout(plan, pass, blocks, flat_blocks);
  return carve_pass_scratch(plan, pass, layout, static_cast<char*>(scratch(layout.bytes())), zeroed);
}

// Where a pass's histograms and flat zeros' alive flags go in the block's shared memory, handed
// out op by op.
struct SharedLayout {
  bool hist = false;   // the pass's histograms count in shared memory
  int next_word = 0;   // the next histogram word
  int next_alive_byte = 0;
};

// Op k of a pass as the kernel reads it, with its share of the pass's scratch and shared memory.
DeviceOp device_op(const ProbePlan& plan, const PlannedOp& op, bool row_pass, const FusedProbeBuffers& buffers,
                   unsigned long long* counters, double* rows, SharedLayout& shared) {
  DeviceOp d{};
  d.kind = op.kind;
  // torch.clamp's bounds, converted to the tensor's dtype (cpu::apply_clamp)
  const DType dtype = probe_element_dtype(buffers.element);
  d.lo = cpu::clamp_bound(op.clamp_lo, dtype);
  d.hi = cpu::clamp_bound(op.clamp_hi, dtype);
  d.mask = op.kind == PlannedOpKind::Clamp ? buffers.clamp_masks.at(op.probe) : nullptr;
  d.scale = op.kind == PlannedOpKind::ClipNorm ? buffers.clip_scales.at(op.probe) : nullptr;
  if (op.kind == PlannedOpKind::ClipNorm && d.scale == nullptr)
    throw Error("run_fused_probes: clipnorm probe " + std::to_string(op.probe) + " has no device scale");
  d.bins = op.bins;
  d.hist_lo = op.hist_lo;
  d.hist_hi = op.hist_hi;
  d.hist_shared = -1;
  if (op.kind == PlannedOpKind::Hist && shared.hist) {
    d.hist_shared = shared.next_word;
    shared.next_word += 2 + op.bins;
  }
  d.alive_shared = -1;
  if (op.kind == PlannedOpKind::Zeros && !row_pass && shared.next_alive_byte + plan.channels <= kMaxSharedAliveChannels) {
    d.alive_shared = shared.next_alive_byte;
    shared.next_alive_byte += static_cast<int>(plan.channels);
  }
  d.counters = counters;
  d.rows = rows;
  d.slot = op.slot;
  return d;
}

// A pass's kernel arguments, its ops included (their shared memory handed out from `shared`).
PassArgs pass_args(const ProbePlan& plan, const PlannedPass& pass, size_t pass_index, const FusedProbeBuffers& buffers,
                   const PassScratch& s, SharedLayout& shared) {
  const bool rows = pass.per_channel();
  PassArgs args{};
  args.element = buffers.element;
  args.x = buffers.tensor;
  args.n = plan.numel;
  if (pass_index == 0) args.producer = buffers.producer;
  args.n_ops = static_cast<int>(pass.ops.size());
  args.write_back = pass.changes_tensor() || args.producer.kind != ProducerKind::None;
  args.capture = pass.captures.empty() ? nullptr : buffers.captures.at(pass_index);
  args.inner = plan.inner;
  args.rows = plan.rows();
  args.channels = plan.channels;
  args.outer = plan.outer;
  args.slot = buffers.slot;
  args.done = s.done;
  args.fast_channels = !rows && fits_fast_channels(plan);
  const uintptr_t chunk_bytes = 4 * dtype_size(probe_element_dtype(buffers.element));
  args.chunks_within_rows =
      !rows && plan.inner % 4 == 0 && reinterpret_cast<uintptr_t>(buffers.tensor) % chunk_bytes == 0;
  if (args.fast_channels) {
    args.inner_div = FastDivmod(static_cast<uint32_t>(plan.inner));
    args.channels_div = FastDivmod(static_cast<uint32_t>(plan.channels));
  }
  int hist_words = 0;
  for (const PlannedOp& op : pass.ops)
    if (op.kind == PlannedOpKind::Hist) hist_words += 2 + op.bins;
  // A block's shared bins count in 32 bits: only where no block can see 2^32 elements (a row pass
  // over a few huge rows runs as few blocks) do histograms count in shared memory.
  shared.hist = hist_words <= kMaxSharedHistWords && plan.numel < (int64_t{1} << 32);
  args.shared_hist_words = shared.hist ? hist_words : 0;
  for (size_t k = 0; k < pass.ops.size(); ++k)
    args.ops[k] = device_op(plan, pass.ops[k], rows, buffers, s.op_counters[k], s.rows[k], shared);
  args.shared_alive_words = (shared.next_alive_byte + 3) / 4;
  return args;
}

void run_pass(const ProbePlan& plan, size_t pass_index, const FusedProbeBuffers& buffers,
              const ProbeScratchAllocator& scratch, cudaStream_t stream) {
  const PlannedPass& pass = plan.passes[pass_index];
  const bool rows = pass.per_channel();
  const PassKernel kernel = pass_kernel_for(pass);
  const ProbeElement element = buffers.element;
  const int flat_blocks = grid_for(plan.numel, int64_t{kBlock} * 4,
                                   pass_blocks_per_multiprocessor(rows ? PassKernel::Flat : kernel, element));
  const int blocks =
      rows ? grid_for(plan.rows(), kWarpsPerBlock, pass_blocks_per_multiprocessor(kernel, element)) : flat_blocks;
  PassScratch s = allocate_pass_scratch(plan, pass, blocks, flat_blocks, buffers.zeroed_counters, scratch);
  if (s.clear_bytes > 0) HOOKRT_CUDA_CHECK(cudaMemsetAsync(s.to_clear, 0, s.clear_bytes, stream));
  SharedLayout shared;
  const PassArgs args = pass_args(plan, pass, pass_index, buffers, s, shared);

  // clipnorm needs the norm of the tensor as the ops before it leave it, before the main pass can
  // scale anything: one norm pass (a read of the tensor) and its finishing kernel per clipnorm,
  // in order, each seeing the scales of the clipnorms before it.
  for (size_t k = 0; k < pass.ops.size(); ++k) {
    const PlannedOp& op = pass.ops[k];
    if (op.kind != PlannedOpKind::ClipNorm) continue;
    launch_clip_norm(args, static_cast<int>(k), flat_blocks, s.norm_partials, op.max_norm,
                     buffers.slot + op.slot, buffers.clip_scales.at(op.probe), stream);
  }

  // A flat pass finishes itself (its last block); a row pass (it holds a channels probe, so it
  // has per-channel ops) needs the finishing kernels.
  launch_fused_pass(args, kernel, blocks, s.partials, stream);
  if (rows) {
    launch_channel_finish(args, grid_for(plan.channels, kBlock), stream);
    launch_flat_finish(args, s.partials, blocks, stream);
  }
}

size_t pass_counter_words(const ProbePlan& plan, const PlannedPass& pass) {
  size_t words = 0;
  for (size_t k = 0; k < pass.ops.size(); ++k) words += op_counter_words(plan, pass, k);
  return words;
}

const PlannedPass& first_pass_or_none(const ProbePlan& plan) {
  static const PlannedPass none;
  return plan.passes.empty() ? none : plan.passes.front();
}

// A producing op's output written and probed (its plan's one pass, or none) in the pass that
// reads the op's inputs and runs one input's probes: the input's counters come after the output's
// in the zeroed words, its alive flags after the output's in shared memory.
void run_pass_probing_input(const ProbePlan& plan, const FusedProbeBuffers& buffers,
                            const ProbeScratchAllocator& scratch, cudaStream_t stream) {
  const PlannedPass& pass = first_pass_or_none(plan);
  const ProbePlan& input_plan = *buffers.input.plan;
  const PlannedPass& input_pass = input_plan.passes.front();
  const int variant = probing_input_variant(buffers.producer.kind, buffers.input.input);
  const int blocks =
      grid_for(plan.numel, int64_t{kBlock} * 4, probing_input_pass_blocks_per_multiprocessor(variant, buffers.element));
  const PassScratch s = allocate_pass_scratch(plan, pass, blocks, blocks, buffers.zeroed_counters, scratch);
  SharedLayout shared;
  PassArgs args = pass_args(plan, pass, 0, buffers, s, shared);
  InputPassArgs input{};
  input.n_ops = static_cast<int>(input_pass.ops.size());
  input.slot = buffers.input.slot;
  unsigned long long* counters = buffers.zeroed_counters + 1 + pass_counter_words(plan, pass);
  for (size_t k = 0; k < input_pass.ops.size(); ++k) {
    const size_t words = op_counter_words(input_plan, input_pass, k);
    input.ops[k] = device_op(input_plan, input_pass.ops[k], false, buffers, words ? counters : nullptr, nullptr, shared);
    counters += words;
  }
  args.shared_alive_words = (shared.next_alive_byte + 3) / 4;
  launch_pass_probing_input(args, input, variant, blocks, s.partials, stream);
}

}  // namespace

bool is_probe_element(DType dtype) { return dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16; }

ProbeElement probe_element(DType dtype, const Shape& shape, const std::string& probe) {
  switch (dtype) {
    case DType::F32: return ProbeElement::F32;
    case DType::BF16: return ProbeElement::BF16;
    case DType::F16: return ProbeElement::F16;
    default: break;
  }
  // the words of cpu::check_probe_tensor, so both backends fail alike
  throw Error("probe " + probe + ": probes run on F32, F16 and BF16 tensors, got " + dtype_name(dtype) + " " +
              shape_string(shape));
}

DType probe_element_dtype(ProbeElement element) {
  switch (element) {
    case ProbeElement::F32: return DType::F32;
    case ProbeElement::BF16: return DType::BF16;
    case ProbeElement::F16: return DType::F16;
  }
  throw Error("internal: probe element type " + std::to_string(static_cast<int>(element)));
}

size_t fused_probe_counter_words(const ProbePlan& plan, const ProbePlan* input_plan) {
  size_t most = 0;
  for (const PlannedPass& pass : plan.passes)
    if (!pass.per_channel()) most = std::max(most, 1 + pass_counter_words(plan, pass));  // 1: done
  if (input_plan != nullptr && !input_plan->passes.empty())
    most = std::max(most, 1 + pass_counter_words(plan, first_pass_or_none(plan)) +
                              pass_counter_words(*input_plan, input_plan->passes.front()));
  return most;
}

// Both plans must have the same layout, even where only one holds a zeros op: the kernel finds
// either tensor's channels with the tensor's (PassArgs) arithmetic.
bool fused_probes_can_probe_input(const ProbePlan& plan, ProducerKind kind, const FusedInputProbes& input) {
  if (probing_input_variant(kind, input.input) < 0 || input.plan == nullptr) return false;
  const ProbePlan& in = *input.plan;
  auto common = [](const PlannedPass& pass) {
    return pass.captures.empty() && pass_kernel_for(pass) == PassKernel::Common;
  };
  return in.numel == plan.numel && in.channels == plan.channels && in.inner == plan.inner && in.passes.size() == 1 &&
         common(in.passes.front()) && plan.passes.size() <= 1 && common(first_pass_or_none(plan));
}

const char* missing_producer_input(const FusedProducer& p) {
  if (p.kind == ProducerKind::None) return nullptr;
  if (p.a == nullptr) return "a";
  const bool reads_b = p.kind == ProducerKind::ReluBackward || p.kind == ProducerKind::AddReluForward;
  if (reads_b && p.b == nullptr) return "b";
  const bool batchnorm = p.kind == ProducerKind::BatchNormApply || p.kind == ProducerKind::BatchNormDx;
  if (batchnorm && p.coefficients == nullptr) return "coefficients";
  return nullptr;
}

// The pass indexes the coefficients' rows (up to four of C) in 32 bits, as it finds channels.
bool fused_batchnorm_fits(int64_t numel, int64_t inner, int64_t channels) {
  return numel >= 1 && inner >= 1 && channels >= 1 && numel - 1 <= FastDivmod::kMaxDividend &&
         4 * channels - 1 <= FastDivmod::kMaxDividend;
}

bool fused_probes_can_produce(const ProbePlan& plan) {
  if (plan.passes.empty()) return false;
  const std::vector<PlannedOp>& ops = plan.passes.front().ops;
  return std::none_of(ops.begin(), ops.end(), [](const PlannedOp& op) { return op.kind == PlannedOpKind::ClipNorm; });
}

bool fused_probes_can_batch(const ProbePlan& plan) {
  return plan.passes.size() == 1 && !plan.changes_tensor && plan.passes.front().captures.empty() &&
         pass_kernel_for(plan.passes.front()) == PassKernel::Common;
}

size_t fused_batch_counter_words(const std::vector<BatchedProbeRun>& runs) {
  size_t words = 0;
  for (const BatchedProbeRun& run : runs) words += fused_probe_counter_words(*run.plan);
  return words;
}

// Each run as its own launch would run it (run_pass: the same blocks, so the same bits), its
// scratch one after another in one request, its counters one after another in the zeroed words.
// A run alone goes as the common pass's own kernel, whose arguments are one pass's, not a batch's.
void run_fused_probe_batch(const std::vector<BatchedProbeRun>& runs, unsigned long long* zeroed_counters,
                           const ProbeScratchAllocator& scratch, cudaStream_t stream) {
  if (runs.empty() || runs.size() > kMaxBatchedProbeRuns)
    throw Error("run_fused_probe_batch: " + std::to_string(runs.size()) + " runs; a batch takes 1 to " +
                std::to_string(kMaxBatchedProbeRuns));
  const ProbeElement element = runs.front().element;
  const int per_multiprocessor = pass_blocks_per_multiprocessor(PassKernel::Common, element);
  std::vector<int> blocks;
  std::vector<PassScratchLayout> layouts;
  size_t scratch_bytes = 0;
  for (const BatchedProbeRun& run : runs) {
    if (!fused_probes_can_batch(*run.plan)) throw Error("run_fused_probe_batch: a run that cannot share a launch");
    if (run.element != element) throw Error("run_fused_probe_batch: runs over tensors of different element types");
    blocks.push_back(grid_for(run.plan->numel, int64_t{kBlock} * 4, per_multiprocessor));
    layouts.push_back(pass_scratch_layout(*run.plan, run.plan->passes.front(), blocks.back(), blocks.back()));
    scratch_bytes += layouts.back().bytes();
  }
  char* base = static_cast<char*>(scratch(scratch_bytes));
  BatchPassArgs batch{};
  batch.passes = static_cast<int>(runs.size());
  unsigned long long* counters = zeroed_counters;
  for (size_t r = 0; r < runs.size(); ++r) {
    const ProbePlan& plan = *runs[r].plan;
    const PassScratch s = carve_pass_scratch(plan, plan.passes.front(), layouts[r], base, counters);
    base += layouts[r].bytes();
    counters += fused_probe_counter_words(plan);
    FusedProbeBuffers buffers;
    buffers.element = element;
    buffers.tensor = const_cast<void*>(runs[r].tensor);  // read only: a batched pass changes nothing
    buffers.slot = runs[r].slot;
    SharedLayout shared;
    batch.pass[r] = pass_args(plan, plan.passes.front(), 0, buffers, s, shared);
    batch.partials[r] = s.partials;
    batch.first_block[r + 1] = batch.first_block[r] + blocks[r];
  }
  if (runs.size() == 1)
    launch_fused_pass(batch.pass[0], PassKernel::Common, blocks[0], batch.partials[0], stream);
  else
    launch_batch_common_pass(batch, stream);
}

void run_fused_probes(const ProbePlan& plan, const FusedProbeBuffers& buffers, const ProbeScratchAllocator& scratch,
                      cudaStream_t stream) {
  if (const char* missing = missing_producer_input(buffers.producer))
    throw Error(std::string("run_fused_probes: the producing op is missing its ") + missing);
  if (buffers.input.plan != nullptr) {
    if (!fused_probes_can_probe_input(plan, buffers.producer.kind, buffers.input))
      throw Error("run_fused_probes: this run cannot probe its producer's input in the pass that writes the tensor");
    run_pass_probing_input(plan, buffers, scratch, stream);
    return;
  }
  if (buffers.producer.kind != ProducerKind::None && !fused_probes_can_produce(plan))
    throw Error("run_fused_probes: this plan's first pass cannot write its tensor (it starts with a norm pass)");
  // No clearing of the slot: each op's finishing kernel (flat, channel, norm) writes every entry of
  // its part of the slot, so a memset would be one more launch per probe run for nothing.
  for (size_t p = 0; p < plan.passes.size(); ++p) run_pass(plan, p, buffers, scratch, stream);
}

}  // namespace hookrt::cuda
