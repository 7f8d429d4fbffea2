#pragma once
// The CPU probe engine: runs a hook's probes on a host F32, F16 or BF16 tensor in the order written, each
// probe seeing what the one before it left. Every probe is also a function of its own, in double
// precision: the reference that tests hold the CUDA probe kernels to.
#include <cstdint>

#include "hookrt/backend.h"
#include "hookrt/probes.h"
#include "hookrt/records.h"
#include "hookrt/tensor.h"

namespace hookrt::cpu {

// Runs `probes` on `tensor` (host, F32, F16 or BF16; see probe_values.h): changing probes (clamp,
// clipnorm) rewrite it in place, observing probes append their result to record.results in order.
// Throws Error for any other dtype or device. record's tensor name and shape are the caller's to set. The tensor must be
// written: options.produce is not run here (produce_and_run_probes runs it first).
ProbeRunEffects run_probes(const ProbeList& probes, Tensor& tensor, ProbeRecord& record,
                           const ProbeRunOptions& options);

// run_probes for a backend that probes with this engine: options.produce, when set, first writes
// the tensor through `backend`'s own op.
ProbeRunEffects produce_and_run_probes(Backend& backend, const ProbeList& probes, Tensor& tensor,
                                       ProbeRecord& record, const ProbeRunOptions& options);

// Throws as clamp_bound (probe_values.h) would for any clamp in `probes` on a tensor of `dtype`:
// run_probes checks this before any probe runs, so that a refused bound changes nothing.
void check_clamp_bounds(const ProbeList& probes, DType dtype);

// Where a tensor's channels lie: element (o, c, i) sits at flat index (o * channels + c) * inner +
// i.
struct ChannelLayout {
  int64_t outer = 1;
  int64_t channels = 1;
  int64_t inner = 1;
};
// `channel_axis` counts from the end when negative and is clamped to [0, rank - 1] (so rank-1
// tensors use axis 0); a rank-0 tensor is a single channel of one element. A channels-last
// (N, C, H, W) tensor keeps its channels fastest: axis 1 is (N·H·W, C, 1); axis 0 is (1, N, C·H·W)
// in either format. Other axes of a channels-last tensor do not lie in this form and throw.
ChannelLayout channel_layout(const Shape& shape, int channel_axis, MemoryFormat format = MemoryFormat::Contiguous);

// ---- observing probes: the tensor is read, never written; sums accumulate in double ----

// count/min/max/mean/abs_max/l1/l2 over the finite elements; std is unbiased (two-pass, about the
// mean) and nullopt below two finite elements; NaN/+Inf/-Inf are counted.
StatsResult compute_stats(const Tensor& tensor);
NonFiniteResult count_nonfinite(const Tensor& tensor);
// Exact zeros (-0.0 included) over all elements. A channel is dead when every value in it is
// <= 0; NaN is not <= 0, and an empty channel is dead (torch's `(t <= 0).all()` over no values).
ZerosResult compute_zeros(const Tensor& tensor, int channel_axis);
// Per channel: mean and unbiased std over its finite values (nullopt below one and two of them),
// zero fraction over all its values, like the zeros probe (0 for an empty channel).
ChannelsResult compute_channels(const Tensor& tensor, int channel_axis);
// -Inf and finite values below lo count `below`, +Inf and values above hi `above`, NaN nowhere.
HistResult compute_hist(const Tensor& tensor, const probes::Hist& hist);
// The bin of a value in [lo, hi]: floor((value - lo) * bins / (hi - lo)) in double, with
// value == hi (or a rounding to `bins`) in the last bin. The CUDA kernel must use this formula.
int hist_bin(double value, const probes::Hist& hist);

// ---- changing probes: the tensor is rewritten in place ----

// x = clamp(x, lo, hi) with lo and hi rounded to the tensor's dtype (through float), as torch.clamp;
// NaN stays NaN. `changed` counts the elements whose value changed. When grad_mask is non-null it
// receives a new F32 tensor of x's shape holding torch's clamp backward mask:
// 1 where lo <= x <= hi before the clamp, else 0 (NaN and out-of-range inputs get 0).
ClampResult apply_clamp(Tensor& tensor, const probes::Clamp& clamp, Tensor* grad_mask);
// x *= clip_coefficient(||x||_2, max_norm, dtype), as torch.nn.utils.clip_grad_norm_ on one
// tensor, each product taken in float and rounded to the tensor's dtype.
// A non-finite norm is not an error (clip_grad_norm_'s default): +Inf gives scale 0, NaN a NaN
// scale, and the tensor is multiplied anyway; the record then holds the non-finite norm/scale.
ClipNormResult apply_clipnorm(Tensor& tensor, const probes::ClipNorm& clip);
// sqrt(sum of x^2) over every element in double; NaN or Inf anywhere makes it NaN or Inf.
double l2_norm(const Tensor& tensor);
// clip_grad_norm_'s coefficient, in its arithmetic for gradients of `dtype` (F32, F16, BF16):
// min(1, max_norm * (1 / (norm + 1e-6))), where NaN stays NaN (torch.clamp) and each step is
// rounded to the dtype, since the norms clip_grad_norm_ sums come back in the gradients' dtype.
float clip_coefficient(double norm, double max_norm, DType dtype = DType::F32);

}  // namespace hookrt::cpu
