#pragma once
// Hooks — PyTorch's register_forward_hook / register_full_backward_hook, as probes (declarative,
// the fast path) or host callbacks (synchronous, read/write, the PyTorch way). Selectors: an exact
// module path, a glob (`*` any characters, dots included; `?` one), or `@Kind`. For grad events a
// selector matches a parameter by its state_dict key or by its owning module.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "hookrt/probes.h"
#include "hookrt/records.h"
#include "hookrt/tensor.h"

namespace hookrt {

enum class ModuleKind;

// What a host callback is told about the firing.
struct HookEvent {
  int64_t step = 0;
  HookWhen when = HookWhen::Forward;
  std::string module;  // path; "" is the root
  ModuleKind kind{};
  int call = 0;        // k-th call of this module in the step
  std::string param;   // grad events: the parameter's state_dict key
};

// forward_pre(input), backward_pre(grad_output), grad(grad): one tensor, writable.
using TensorCallback = std::function<void(const HookEvent&, TensorRef tensor)>;
// forward(input, output) and backward(grad_input, grad_output). The second tensor of forward and
// the first of backward are the ones whose writes flow on; grad_input is undefined where the
// module's input needs no gradient.
using PairCallback = std::function<void(const HookEvent&, TensorRef first, TensorRef second)>;

using HookAction = std::variant<ProbeList, TensorCallback, PairCallback>;

struct HookOptions {
  bool prepend = false;      // run before the hooks already registered on the event
  bool always_call = false;  // forward hooks: run even when the module's forward raised
  int64_t every = 1;         // cadence: fire on steps start, start+every, ...
  int64_t start = 0;
  std::optional<int64_t> end;  // last step that fires (inclusive); none: no end
  bool fires_at(int64_t step) const;
};

// Whether `pattern` (a glob with * and ?) matches `text` entirely.
bool glob_match(const std::string& pattern, const std::string& text);

struct Hook {
  uint64_t id = 0;
  HookWhen when = HookWhen::Forward;
  std::string selector;
  std::vector<std::string> targets;  // resolved module paths, or parameter keys for grad
  HookAction action;
  HookOptions options;
};

class HookRegistry;

// Like torch.utils.hooks.RemovableHandle: remove() detaches the hook; destroying a handle keeps
// the hook unless the handle was made scoped.
class HookHandle {
 public:
  HookHandle() = default;
  HookHandle(std::weak_ptr<HookRegistry> registry, uint64_t id) : registry_(std::move(registry)), id_(id) {}
  HookHandle(HookHandle&& other) noexcept;
  HookHandle& operator=(HookHandle&& other) noexcept;
  HookHandle(const HookHandle&) = delete;
  HookHandle& operator=(const HookHandle&) = delete;
  ~HookHandle();

  void remove();
  // From now on, destroying this handle removes the hook.
  HookHandle& scoped() { scoped_ = true; return *this; }
  uint64_t id() const { return id_; }

 private:
  std::weak_ptr<HookRegistry> registry_;
  uint64_t id_ = 0;
  bool scoped_ = false;
};

// Holds the hooks of one model, per event in firing order.
class HookRegistry {
 public:
  uint64_t add(Hook hook);  // assigns the id; honours options.prepend
  void remove(uint64_t id);
  void clear();
  // Hooks of `when` whose targets include `target`, in firing order. Shared, so that a callback
  // may remove hooks (its own included) while they fire.
  std::vector<std::shared_ptr<const Hook>> hooks_for(HookWhen when, const std::string& target) const;
  const std::vector<std::shared_ptr<const Hook>>& hooks(HookWhen when) const;
  bool has_host_callbacks() const;
  bool empty() const;

 private:
  std::vector<std::shared_ptr<const Hook>> hooks_[5];
  uint64_t next_id_ = 1;
};

}  // namespace hookrt
