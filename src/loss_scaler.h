#pragma once
// LossScaler — torch.amp.GradScaler inside a training step, kept on the backend's device: the
// scale, its growth tracker and the step's found_inf flag are device tensors, read and written
// only by backend ops queued on the step's stream. So a scaled step waits for the host nowhere,
// a skipped update is decided on the device (sgd_update's skip_if), and the whole step, scaler
// included, can be recorded as one graph and replayed. The host reads the flag and the scale back
// once a step has ended, with the loss, to report them and to know whether the optimizer's
// momentum has started.
//
// Where each piece sits in a step (GradScaler's recipe):
//   begin_step()            found_inf = 0, before backward
//   scale_loss_gradient()   d(loss)/d(logits) *= scale: the whole backward runs scaled
//   unscale()               a parameter gradient /= scale as backward produces it, and
//                           found_inf |= any NaN or Inf in it (GradScaler.unscale_), where a
//                           grad hook is to see it unscaled
//   unscale_all()           the same for the gradients nothing reads before backward ends, all
//                           in one backend call once it has (one launch on the GPU, as
//                           GradScaler's foreach form)
//   found_inf()             the optimizer's skip_if (GradScaler.step)
//   update()                the scale backs off or grows (GradScaler.update)
#include <cstdint>
#include <vector>

#include "hookrt/backend.h"
#include "hookrt/executor.h"

namespace hookrt::detail {

// Whether a loss scale is usable: the device holds it as an F32, and its reciprocal unscales the
// gradients, so both must be finite: a positive normal F32 (1.2e-38 to 3.4e38).
bool usable_loss_scale(double scale);

class LossScaler {
 public:
  LossScaler(Backend& backend, const LossScalingOptions& options);

  void begin_step();
  void scale_loss_gradient(Tensor& dlogits);
  void unscale(Tensor& grad);
  void unscale_all(const std::vector<Tensor*>& grads);
  const Tensor& found_inf() const { return found_inf_; }
  void update();

  // After a step has ended: its flag and the scale its backward ran with (a host wait).
  bool read_found_inf();
  double scale_of_last_step() const { return scale_used_; }
  // Reads the scale update() left for the next step; call after read_found_inf.
  void read_scale();
  LossScalerState state();
  void load_state(const LossScalerState& state);

 private:
  Backend& backend_;
  LossScalingOptions options_;
  Tensor scale_;           // F32 [1]
  Tensor growth_tracker_;  // I32 [1]
  Tensor found_inf_;       // F32 [1]
  double scale_used_;      // the host's copy of the scale the next (or current) step runs with
};

}  // namespace hookrt::detail
