#include "loss_scaler.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "number_text.h"

namespace hookrt::detail {
namespace {

// A host tensor moved onto the backend (the CPU backend's own tensors are host tensors).
Tensor on_backend(Backend& backend, const Tensor& host) {
  return backend.device() == Device::CPU ? host : backend.from_host(host);
}

// Static scaling is dynamic scaling that never moves: an overflowed step is still skipped.
LossScaleOptions effective(const LossScalingOptions& options) {
  LossScaleOptions o = options.scaler;
  if (options.kind == LossScaling::Static) o.growth_factor = o.backoff_factor = 1.0;
  return o;
}

void check(const LossScaleOptions& o) {
  if (!usable_loss_scale(o.init_scale))
    throw_bad_input("loss scaling: scale " + number_text(o.init_scale) + " is not a positive normal F32 value");
  if (!(o.growth_factor >= 1) || !std::isfinite(o.growth_factor))
    throw_bad_input("loss scaling: growth factor " + std::to_string(o.growth_factor) + " is not >= 1");
  if (!(o.backoff_factor > 0 && o.backoff_factor <= 1))
    throw_bad_input("loss scaling: backoff factor " + std::to_string(o.backoff_factor) + " is not in (0, 1]");
  if (o.growth_interval < 1 || o.growth_interval > std::numeric_limits<int32_t>::max())
    throw_bad_input("loss scaling: growth interval " + std::to_string(o.growth_interval) +
                    " is outside [1, 2^31) (the tracker is an I32, as GradScaler's)");
}

}  // namespace

bool usable_loss_scale(double scale) { return scale > 0 && std::isnormal(static_cast<float>(scale)); }

LossScaler::LossScaler(Backend& backend, const LossScalingOptions& options)
    : backend_(backend), options_(options), scale_used_(static_cast<float>(options.scaler.init_scale)) {
  check(options.scaler);
  options_.scaler = effective(options);
  scale_ = on_backend(backend, Tensor::full({1}, options.scaler.init_scale));
  growth_tracker_ = on_backend(backend, Tensor::full({1}, 0.0, DType::I32));
  found_inf_ = on_backend(backend, Tensor::full({1}, 0.0));
}

void LossScaler::begin_step() { backend_.fill(found_inf_, 0.0); }

void LossScaler::scale_loss_gradient(Tensor& dlogits) { backend_.multiply_(dlogits, scale_); }

void LossScaler::unscale(Tensor& grad) { backend_.unscale_gradient_(grad, scale_, found_inf_); }

void LossScaler::unscale_all(const std::vector<Tensor*>& grads) {
  if (!grads.empty()) backend_.unscale_gradients_(grads, scale_, found_inf_);
}

void LossScaler::update() { backend_.update_loss_scale(scale_, growth_tracker_, found_inf_, options_.scaler); }

bool LossScaler::read_found_inf() { return backend_.to_host(found_inf_).item(0) != 0.0; }

void LossScaler::read_scale() { scale_used_ = backend_.to_host(scale_).item(0); }

LossScalerState LossScaler::state() {
  read_scale();
  return {scale_used_, static_cast<int64_t>(backend_.to_host(growth_tracker_).item(0))};
}

void LossScaler::load_state(const LossScalerState& state) {
  if (!usable_loss_scale(state.scale))
    throw_bad_input("loss scaler state: scale " + number_text(state.scale) + " is not a positive normal F32 value");
  if (state.growth_tracker < 0 || state.growth_tracker >= options_.scaler.growth_interval)
    throw_bad_input("loss scaler state: growth tracker " + std::to_string(state.growth_tracker) +
                    " is outside [0, growth interval " + std::to_string(options_.scaler.growth_interval) + ")");
  Tensor scale = Tensor::full({1}, state.scale);
  Tensor tracker = Tensor::full({1}, static_cast<double>(state.growth_tracker), DType::I32);
  backend_.copy(on_backend(backend_, scale), scale_);
  backend_.copy(on_backend(backend_, tracker), growth_tracker_);
  scale_used_ = static_cast<float>(state.scale);
}

}  // namespace hookrt::detail
