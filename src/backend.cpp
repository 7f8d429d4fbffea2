// Backend's non-virtual conveniences (see hookrt/backend.h).
#include "hookrt/backend.h"

namespace hookrt {

double Backend::cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& probs) {
  Tensor loss;
  cross_entropy_forward(logits, labels, probs, loss);
  return to_host(loss).item(0);
}

}  // namespace hookrt
