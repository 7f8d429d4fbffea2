#pragma once
// Tape — the reverse-mode record of one step. Every op the forward runs appends a backward closure;
// backward runs them newest first. Values are the step's tensors with their accumulated gradients.
// The graph is what ResNet needs (each value's producer runs before all its consumers), so reverse
// recording order is a valid topological order.
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "hookrt/backend.h"
#include "hookrt/tensor.h"

namespace hookrt::detail {

struct Value {
  Tensor data;
  Tensor grad;  // undefined until a gradient flows in
  bool requires_grad = false;
  // Set while `grad` is allocated but not yet written: this op writes it, in the probe run of the
  // backward hook that reads it first, or when anything else takes or adds to it.
  std::optional<ProducingOp> grad_producer;
};

// A gradient taken off the tape, perhaps still to be written by `producer`.
struct UnwrittenGrad {
  Tensor grad;
  std::optional<ProducingOp> producer;
};

class Tape {
 public:
  Tape(Backend& backend, bool enabled) : backend_(backend), enabled_(enabled) {}

  bool enabled() const { return enabled_; }
  int add_value(Tensor data, bool requires_grad);
  Value& value(int id) { return values_.at(static_cast<size_t>(id)); }
  const Value& value(int id) const { return values_.at(static_cast<size_t>(id)); }

  // Called with a gradient about to be accumulated into in place (what was known about its values
  // no longer holds).
  void on_write_in_place(std::function<void(const Tensor&)> observer) { write_observer_ = std::move(observer); }
  // Records a backward closure (no-op when the tape is disabled: forward-only steps).
  void record(std::function<void()> backward);
  // Adds g into the value's gradient. g must not be referenced elsewhere afterwards (unless it is
  // shared, below): the value may adopt its storage and later accumulate into it in place.
  void accumulate_grad(int id, Tensor g);
  // Gives g to both values (a residual add's backward), without a copy: a gradient held by two
  // values is never written in place. Accumulating into it makes a new tensor; a hook that may
  // write it gets a copy (own_grad).
  void accumulate_shared_grad(int a, int b, Tensor g);
  // `grad` itself, or a copy of it when the tape shares it between values: a tensor the caller
  // may write in place.
  Tensor own_grad(Tensor grad);
  // accumulate_grad of a gradient that `op` writes: kept unwritten while it is the value's only
  // one (for take_unwritten_grad), written at once when there is one already, and never written
  // when the value needs no gradient.
  void accumulate_unwritten_grad(int id, Tensor g, ProducingOp op);
  // The value's gradient, written; the value has none afterwards.
  Tensor take_grad(int id);
  // The value's gradient with the op still to write it, if it was left unwritten.
  UnwrittenGrad take_unwritten_grad(int id);
  // The value's gradient, written (undefined when none flowed in).
  const Tensor& written_grad(int id);
  void run_backward();

 private:
  void write_grad(Value& v);
  bool shared(const Tensor& grad);

  // Storages of gradients given to two values; weak, so that a freed one can neither be kept
  // alive nor mistaken for a new tensor at the same address.
  std::vector<std::weak_ptr<Storage>> shared_grads_;
  Backend& backend_;
  bool enabled_;
  std::deque<Value> values_;  // deque: references stay valid as values are added
  std::vector<std::function<void()>> nodes_;
  std::function<void(const Tensor&)> write_observer_;
};

}  // namespace hookrt::detail
