// The changing probes on the host: clamp and clipnorm rewrite the tensor in place, exactly as a
// PyTorch hook returning `t.clamp(lo, hi)` or `t * clip_coef` would, in the tensor's dtype.
#include <cmath>

#include "cpu/probe_values.h"
#include "cpu/probes.h"

namespace hookrt::cpu {

ClampResult apply_clamp(Tensor& tensor, const probes::Clamp& clamp, Tensor* grad_mask) {
  ProbeValues values(tensor, "clamp");
  float* x = values.data();
  const int64_t n = values.size();
  // torch.clamp compares with and stores the bounds converted to the tensor's dtype, so the result
  // is one of x, lo and hi, and needs no rounding.
  const float lo = clamp_bound(clamp.lo, values.dtype()), hi = clamp_bound(clamp.hi, values.dtype());
  float* mask = nullptr;
  if (grad_mask) {
    *grad_mask = Tensor::empty(tensor.shape(), DType::F32, tensor.memory_format());  // walked with the tensor
    mask = grad_mask->data<float>();
  }
  ClampResult result{clamp.lo, clamp.hi, 0};
  for (int64_t i = 0; i < n; ++i) {
    const float before = x[i];
    // clamp_backward passes the gradient where lo <= x <= hi; NaN fails both tests and gets 0.
    if (mask) mask[i] = (before >= lo && before <= hi) ? 1.0f : 0.0f;
    // min(max(x, lo), hi) with NaN propagated: comparisons with NaN are false, so it stays.
    float after = before;
    if (after < lo) after = lo;
    if (after > hi) after = hi;
    if (after != before && !std::isnan(before)) ++result.changed;  // NaN != NaN, yet unchanged
    x[i] = after;
  }
  values.store();
  return result;
}

double l2_norm(const Tensor& tensor) {
  const ProbeValues values(tensor, "clipnorm");
  const float* x = values.data();
  const int64_t n = values.size();
  double squares = 0;
  for (int64_t i = 0; i < n; ++i) squares += static_cast<double>(x[i]) * x[i];
  return std::sqrt(squares);
}

float clip_coefficient(double norm, double max_norm, DType dtype) {
  // clip_grad_norm_: clip_coef = max_norm / (total_norm + 1e-6), where total_norm is a tensor of
  // the gradients' dtype (float32 for F32), so the sum and `max_norm / t` (Tensor.__rdiv__:
  // t.reciprocal() * max_norm) run in float and round to that dtype at each step; then
  // torch.clamp(clip_coef, max=1.0), which keeps NaN.
  const auto round = [dtype](float x) { return round_to_dtype(x, dtype); };
  const float denominator = round(round(static_cast<float>(norm)) + 1e-6f);
  const float coefficient = round(round(1.0f / denominator) * static_cast<float>(max_norm));
  return coefficient > 1.0f ? 1.0f : coefficient;
}

ClipNormResult apply_clipnorm(Tensor& tensor, const probes::ClipNorm& clip) {
  const double norm = l2_norm(tensor);
  ProbeValues values(tensor, "clipnorm");
  const float scale = clip_coefficient(norm, clip.max_norm, values.dtype());
  float* x = values.data();
  const int64_t n = values.size();
  // Multiplied even when scale is 1, as clip_grad_norm_ does to avoid a host sync.
  for (int64_t i = 0; i < n; ++i) x[i] = values.round(x[i] * scale);
  values.store();
  return ClipNormResult{clip.max_norm, norm, scale};
}

}  // namespace hookrt::cpu
