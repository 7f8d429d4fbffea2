#pragma once
// Probe planning for the fused GPU probe engine, in host code so that it builds and is tested
// without CUDA. A ProbeList on a shape becomes a ProbePlan: passes (each one read of the tensor
// that applies up to kMaxOpsPerPass probes per element, in registers, and writes the result back
// when it changed it) and a slot layout (where each probe's accumulators lie in an array of
// doubles). The device kernels fill the slot; decode_probe_slot turns a finished slot into the
// ProbeResults that cpu::run_probes would give. accumulate_probe_slot fills a slot on the host with
// exactly the layout the kernels use and the same moments (Welford's, one value at a time; the
// kernels sum shifted values and merge Chan's way per channel row), so that tests can hold
// decode(accumulate(t)) to the CPU reference without a GPU.
//
// The first half of this header is plain C++17 because cuda/fused_probes.cu (device code compiles
// as C++17, see cmake/cuda.cmake) reads plans and writes slots; the second half takes ProbeLists
// and ProbeResults, whose header needs C++20, and is hidden from it.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace hookrt {

// Slot layout: each probe's entries, relative to its PlannedOp::slot. Counts are stored as
// doubles, exact below 2^53 elements.
namespace probe_slot {
// stats: counts, extrema (as float values), Welford moments (mean, sum of squared deviations
// about the mean, M2) over the finite values, and sums of |x| and x^2 over them.
constexpr int64_t kStatsCount = 0, kStatsNan = 1, kStatsPosInf = 2, kStatsNegInf = 3, kStatsMin = 4,
                  kStatsMax = 5, kStatsAbsMax = 6, kStatsMean = 7, kStatsM2 = 8, kStatsL1 = 9,
                  kStatsSquares = 10, kStatsSize = 11;
constexpr int64_t kNonFiniteNan = 0, kNonFinitePosInf = 1, kNonFiniteNegInf = 2, kNonFiniteSize = 3;
constexpr int64_t kZerosZeros = 0, kZerosDead = 1, kZerosSize = 2;
// hist: below, above, then `bins` counts.
constexpr int64_t kHistBelow = 0, kHistAbove = 1, kHistCounts = 2;
// channels: four arrays of `channels` entries each, array a at slot + a * channels.
constexpr int64_t kChannelsCount = 0, kChannelsMean = 1, kChannelsM2 = 2, kChannelsZeros = 3,
                  kChannelsArrays = 4;
constexpr int64_t kClampChanged = 0, kClampSize = 1;
// clipnorm: the L2 norm (double) and the scale (a float value).
constexpr int64_t kClipNormNorm = 0, kClipNormScale = 1, kClipNormSize = 2;
}  // namespace probe_slot

// What one planned step does to an element (a probe other than capture).
enum class PlannedOpKind : int { Clamp, ClipNorm, Stats, NonFinite, Zeros, Hist, Channels };

struct PlannedOp {
  PlannedOpKind kind = PlannedOpKind::Stats;
  size_t probe = 0;   // index in the ProbeList
  int64_t slot = 0;   // first slot entry of this probe's results
  double clamp_lo = 0, clamp_hi = 0;  // clamp bounds as written; applied rounded to float (torch.clamp)
  double max_norm = 0;               // clipnorm
  int bins = 0;                      // hist
  double hist_lo = 0, hist_hi = 0;   // hist
  bool halt_on_nonfinite = false;    // nonfinite=halt
};

// One read of the tensor: ops applied in order to each element; captures (probe indices) copy
// the element as it stands after the last op.
struct PlannedPass {
  std::vector<PlannedOp> ops;
  std::vector<size_t> captures;

  bool changes_tensor() const;  // has a clamp or clipnorm: the pass writes the tensor back
  // Has a channels probe: the pass walks the tensor row by row, so that each row's moments merge
  // in a fixed order. (zeros needs only one flag per channel, set from a flat walk.)
  bool per_channel() const;
};

// Up to this many probes share one read; more start another pass. It bounds the per-thread
// accumulators the kernel keeps in registers.
constexpr size_t kMaxOpsPerPass = 4;

struct ProbePlan {
  int64_t numel = 0;
  // cpu::channel_layout of the shape: element (o, c, i) at (o * channels + c) * inner + i. A
  // "row" is the run of `inner` elements of one (o, c).
  int64_t outer = 1, channels = 1, inner = 1;
  std::vector<PlannedPass> passes;
  int64_t slot_size = 0;   // doubles
  size_t probe_count = 0;  // probes in the list, captures included
  bool changes_tensor = false;

  int64_t rows() const { return outer * channels; }
};

}  // namespace hookrt

#if __cplusplus >= 202002L
#include <span>

#include "hookrt/backend.h"
#include "hookrt/probes.h"
#include "hookrt/tensor.h"

namespace hookrt {

// Plans `probes` on a tensor of `shape` in `format`; options.channel_axis gives the channel layout.
// Throws Error(BadInput) for a hist that compute_hist would refuse, before anything has run.
ProbePlan plan_probes(const ProbeList& probes, const Shape& shape, MemoryFormat format, const ProbeRunOptions& options);
inline ProbePlan plan_probes(const ProbeList& probes, const Tensor& tensor, const ProbeRunOptions& options) {
  return plan_probes(probes, tensor.shape(), tensor.memory_format(), options);
}

// A finished slot turned into results: one per probe, in list order, as cpu::run_probes appends
// them, and whether a nonfinite=halt probe found something.
struct DecodedProbes {
  std::vector<ProbeResult> results;
  bool halt = false;
};
// `captures` holds one host tensor per pass with captures (nullptr-free, in pass order); a pass
// with several captures gives each its own copy.
DecodedProbes decode_probe_slot(const ProbePlan& plan, std::span<const double> slot,
                                const std::vector<Tensor>& captures);

// The host reference of the kernels: runs `plan` on a host F32, F16 or BF16 tensor (as
// cpu/probe_values.h reads and rounds them), rewriting it in place as the passes do, and fills a
// slot in the kernels' layout with their algorithm.
struct ReferenceProbeRun {
  std::vector<double> slot;
  std::vector<Tensor> captures;  // one per pass with captures, as decode_probe_slot takes them
  std::vector<Tensor> masks;     // one per clamp, in list order: 1 where lo <= x <= hi before it
};
ReferenceProbeRun accumulate_probe_slot(const ProbePlan& plan, Tensor& tensor);

}  // namespace hookrt
#endif
