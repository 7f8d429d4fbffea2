#pragma once
// Tape — the reverse-mode record of one step. Every op the forward runs appends a backward closure;
// backward runs them newest first. Values are the step's tensors with their accumulated gradients.
// The graph is what ResNet needs (each value's producer runs before all its consumers), so reverse
// recording order is a valid topological order.
#include <deque>
#include <functional>
#include <vector>

#include "hookrt/backend.h"
#include "hookrt/tensor.h"

namespace hookrt::detail {

struct Value {
  Tensor data;
  Tensor grad;  // undefined until a gradient flows in
  bool requires_grad = false;
};

class Tape {
 public:
  Tape(Backend& backend, bool enabled) : backend_(backend), enabled_(enabled) {}

  bool enabled() const { return enabled_; }
  int add_value(Tensor data, bool requires_grad);
  Value& value(int id) { return values_.at(static_cast<size_t>(id)); }

  // Called before a gradient is accumulated into a tensor in place (what was known about its
  // values no longer holds).
  void on_write_in_place(std::function<void()> observer) { write_observer_ = std::move(observer); }
  // Records a backward closure (no-op when the tape is disabled: forward-only steps).
  void record(std::function<void()> backward);
  // Adds g into the value's gradient. g must not be referenced elsewhere afterwards: the value
  // may adopt its storage and later accumulate into it in place.
  void accumulate_grad(int id, Tensor g);
  void run_backward();

 private:
  Backend& backend_;
  bool enabled_;
  std::deque<Value> values_;  // deque: references stay valid as values are added
  std::vector<std::function<void()>> nodes_;
  std::function<void()> write_observer_;
};

}  // namespace hookrt::detail
