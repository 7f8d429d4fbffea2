#pragma once
// What a fused probe kernel reads: the launch shape the probe kernels share, and one pass of a
// ProbePlan (src/probe_plan.h) as kernel parameters: PassArgs, with a DeviceOp per planned op.
// The host launcher (fused_probes.cu) fills PassArgs once per pass; the pass kernel, the clipnorm
// norm pass and the finishing kernels all take it by value, so it sits in constant memory.
#include <cuda_runtime.h>

#include <cstdint>

#include "fast_divmod.h"
#include "fused_probes.cuh"
#include "probe_plan.h"

namespace hookrt::cuda::detail {

constexpr int kBlock = 256;
constexpr int kWarpSize = 32;
constexpr int kWarpsPerBlock = kBlock / kWarpSize;
constexpr int kMaxOps = static_cast<int>(kMaxOpsPerPass);
// A row partial of a per-channel op: finite count, mean, M2, zeros, alive (some value > 0 or NaN).
constexpr int kRowFields = 5;
// Histograms of a pass live in shared memory when they fit in 32 KiB (under the 48 KiB a block
// gets without opting in, beside CUB's reduction storage) and the tensor has fewer than 2^32
// elements (a block's shared bins are 32-bit); others count in global memory.
constexpr int kMaxSharedHistWords = 8192;
// zeros' alive flags of a flat pass live in shared memory, a byte per channel, for tensors of up to
// this many channels (every ResNet layer has at most 2048); more are flagged in global memory.
constexpr int kMaxSharedAliveChannels = 4096;

// One op of a pass as the kernel reads it (a kernel parameter, so it sits in constant memory).
struct DeviceOp {
  PlannedOpKind kind;
  float lo, hi;                     // clamp, bounds rounded to the tensor's dtype as torch.clamp
  float* mask;                      // clamp's grad mask (numel) or nullptr
  const float* scale;               // clipnorm's scale (1), a value of the tensor's dtype
  int bins;                         // hist
  double hist_lo, hist_hi;          // hist
  int hist_shared;                  // hist: first word in the block's shared histogram, or -1
  int alive_shared;                 // zeros in a flat pass: first byte of its shared alive flags, or -1
  unsigned long long* counters;     // hist: (2 + bins) below, above, bins; zeros: (1) dead channels,
                                    // then in a flat pass (channels) alive flags
  double* rows;                     // row passes only, zeros and channels: (rows, kRowFields) partials
  int64_t slot;                     // first slot entry
};

struct PassArgs {
  ProbeElement element;  // x's and capture's; the kernel that runs the pass is instantiated for it
  void* x;               // (n) the tensor
  int64_t n;
  FusedProducer producer;  // kind None: x is read; else x is written from the producer's inputs
  int n_ops;
  DeviceOp ops[kMaxOps];
  bool write_back;   // some op changes the tensor
  void* capture;     // (n) copy of the tensor at the pass's end, or nullptr
  int64_t inner;     // row length (row mode)
  int64_t rows;      // outer * channels (row mode)
  int64_t channels;  // channel finishing
  int64_t outer;     // channel finishing
  // Flat passes: the row and channel of an element with FastDivmods (when n fits them, else
  // 64-bit division): inner_div divides by inner, channels_div by channels.
  bool fast_channels;
  FastDivmod inner_div, channels_div;
  // Flat passes: no chunk of four spans two rows (rows are whole chunks long and the tensor starts
  // on a chunk boundary), so a chunk's first element tells its channel.
  bool chunks_within_rows;
  // Dynamic shared memory: histogram words, then alive flag bytes (rounded up to whole words).
  int shared_hist_words;
  int shared_alive_words;
  double* slot;
  // Flat passes: how many blocks have finished (zero at launch); the last to finish merges the
  // partials and writes the slot (probe_pass_kernels.cuh), and leaves this and the ops' counters
  // zero again. nullptr for row passes, which finishing kernels complete.
  unsigned long long* done;
};

// The probes on a producing pass's input (FusedInputProbes), read where the pass loads that input:
// common ops only (stats, nonfinite, at most one zeros), with the pass's layout and alignment.
struct InputPassArgs {
  int n_ops;
  DeviceOp ops[kMaxOps];  // counters and shared alive flags after the pass's own
  double* slot;           // the input's slot (ops' slot entries are relative to it)
};

__device__ __forceinline__ bool per_channel_kind(PlannedOpKind kind) {
  return kind == PlannedOpKind::Zeros || kind == PlannedOpKind::Channels;
}

}  // namespace hookrt::cuda::detail
