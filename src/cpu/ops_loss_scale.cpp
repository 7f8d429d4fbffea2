// Loss scaling as torch.amp.GradScaler runs it: _amp_foreach_non_finite_check_and_unscale_ and
// _amp_update_scale_, element for element, so that the GPU's kernels have an exact reference.
#include <cmath>

#include "cpu/ops.h"

namespace hookrt::cpu {

bool unscale_gradient(float* grad, int64_t n, float scale) {
  const auto inv_scale = static_cast<float>(1.0 / static_cast<double>(scale));
  int found_inf = 0;
#pragma omp parallel for schedule(static) reduction(| : found_inf) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    const float value = grad[i];
    found_inf |= std::isfinite(value) ? 0 : 1;
    grad[i] = inv_scale == 1.0f ? value : value * inv_scale;
  }
  return found_inf != 0;
}

void update_loss_scale(float& scale, int32_t& growth_tracker, bool found_inf, const LossScaleOptions& o) {
  if (found_inf) {
    scale *= static_cast<float>(o.backoff_factor);
    growth_tracker = 0;
    return;
  }
  const int64_t successful = growth_tracker + 1;
  if (successful == o.growth_interval) {
    const float grown = scale * static_cast<float>(o.growth_factor);
    if (std::isfinite(grown)) scale = grown;  // a scale that overflows F32 would make every step overflow
    growth_tracker = 0;
  } else {
    growth_tracker = static_cast<int32_t>(successful);
  }
}

}  // namespace hookrt::cpu
