// Backend's non-virtual conveniences (see hookrt/backend.h).
#include "hookrt/backend.h"

#include "hookrt/error.h"

namespace hookrt {

double Backend::cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& probs) {
  Tensor loss;
  cross_entropy_forward(logits, labels, probs, loss);
  return to_host(loss).item(0);
}

void Backend::run_producing_op(const ProducingOp& op, Tensor& out) {
  switch (op.kind) {
    case ProducingOp::Kind::ReluForward: relu_forward(op.a, out); return;
    case ProducingOp::Kind::ReluBackward: relu_backward(op.a, op.b, out); return;
    case ProducingOp::Kind::AddReluForward:
      add(op.a, op.b, out);
      relu_forward(out, out);
      return;
  }
  throw Error("internal: unknown producing op");
}

std::unique_ptr<StepGraph> Backend::end_step_recording() {
  throw Error("internal: backend " + name() + " records no steps, so there is no recording to end");
}

}  // namespace hookrt
