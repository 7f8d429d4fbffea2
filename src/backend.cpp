// Backend's non-virtual conveniences (see hookrt/backend.h).
#include "hookrt/backend.h"

#include "hookrt/error.h"

namespace hookrt {

double Backend::cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& probs) {
  Tensor loss;
  cross_entropy_forward(logits, labels, probs, loss);
  return to_host(loss).item(0);
}

std::unique_ptr<StepGraph> Backend::end_step_recording() {
  throw Error("internal: backend " + name() + " records no steps, so there is no recording to end");
}

}  // namespace hookrt
