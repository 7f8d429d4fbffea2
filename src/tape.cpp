#include "tape.h"

namespace hookrt::detail {

int Tape::add_value(Tensor data, bool requires_grad) {
  values_.push_back(Value{std::move(data), Tensor(), requires_grad && enabled_});
  return static_cast<int>(values_.size() - 1);
}

void Tape::record(std::function<void()> backward) {
  if (enabled_) nodes_.push_back(std::move(backward));
}

void Tape::accumulate_grad(int id, Tensor g) {
  Value& v = value(id);
  if (!v.requires_grad) return;
  if (!v.grad.defined()) {
    v.grad = std::move(g);
  } else {
    if (write_observer_) write_observer_();
    backend_.accumulate(v.grad, g);
  }
}

void Tape::run_backward() {
  // Pop as we go: each closure's saved tensors are released once it has run.
  while (!nodes_.empty()) {
    std::function<void()> node = std::move(nodes_.back());
    nodes_.pop_back();
    node();
  }
}

}  // namespace hookrt::detail
