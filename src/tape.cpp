#include "tape.h"

#include <algorithm>
#include <utility>

namespace hookrt::detail {

int Tape::add_value(Tensor data, bool requires_grad) {
  Value& added = values_.emplace_back();
  added.data = std::move(data);
  added.requires_grad = requires_grad && enabled_;
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
    return;
  }
  write_grad(v);
  if (shared(v.grad)) {  // out of place: the other value still holds it
    Tensor sum = backend_.empty_like(v.grad);
    backend_.add(v.grad, g, sum);
    v.grad = std::move(sum);
    return;
  }
  if (write_observer_) write_observer_(v.grad);
  backend_.accumulate(v.grad, g);
}

void Tape::accumulate_shared_grad(int a, int b, Tensor g) {
  std::erase_if(shared_grads_, [](const std::weak_ptr<Storage>& s) { return s.expired(); });
  shared_grads_.push_back(g.storage());
  accumulate_grad(a, g);
  accumulate_grad(b, std::move(g));
}

bool Tape::shared(const Tensor& grad) {
  const std::shared_ptr<Storage>& storage = grad.storage();
  if (!storage) return false;
  return std::any_of(shared_grads_.begin(), shared_grads_.end(), [&](const std::weak_ptr<Storage>& s) {
    return !s.owner_before(storage) && !storage.owner_before(s);
  });
}

Tensor Tape::own_grad(Tensor grad) {
  if (!grad.defined() || !shared(grad)) return grad;
  Tensor copy = backend_.empty_like(grad);
  backend_.copy(grad, copy);
  return copy;
}

void Tape::accumulate_unwritten_grad(int id, Tensor g, ProducingOp op) {
  Value& v = value(id);
  if (!v.requires_grad) return;
  if (v.grad.defined()) {
    backend_.run_producing_op(op, g);
    accumulate_grad(id, std::move(g));
    return;
  }
  v.grad = std::move(g);
  v.grad_producer = std::move(op);
}

void Tape::write_grad(Value& v) {
  if (!v.grad_producer) return;
  const ProducingOp op = std::move(*v.grad_producer);
  v.grad_producer.reset();
  backend_.run_producing_op(op, v.grad);
}

Tensor Tape::take_grad(int id) {
  Value& v = value(id);
  write_grad(v);
  return std::exchange(v.grad, Tensor());
}

UnwrittenGrad Tape::take_unwritten_grad(int id) {
  Value& v = value(id);
  UnwrittenGrad taken{std::exchange(v.grad, Tensor()), std::move(v.grad_producer)};
  v.grad_producer.reset();
  return taken;
}

const Tensor& Tape::written_grad(int id) {
  Value& v = value(id);
  write_grad(v);
  return v.grad;
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
