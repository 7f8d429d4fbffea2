#pragma once
// Model — torchvision's ResNet graph with torchvision's module paths, kinds and state_dict keys,
// holding the parameters and buffers on the host and the model's hooks.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "hookrt/hooks.h"
#include "hookrt/tensor.h"

namespace hookrt {

enum class ModuleKind { ResNet, Conv2d, BatchNorm2d, ReLU, MaxPool2d, Sequential, BasicBlock, AdaptiveAvgPool2d, Linear };
std::string kind_name(ModuleKind kind);  // "Conv2d", ...
ModuleKind parse_kind(const std::string& name);  // throws Error(BadInput)

struct Module {
  std::string path;  // "" for the root, "layer1.0.conv1", ...
  ModuleKind kind{};
  std::vector<std::string> children;  // paths, in definition order
  // Conv2d: in/out channels, kernel, stride, padding. BatchNorm2d: features = out. Linear: in/out.
  int64_t in = 0, out = 0;
  int kernel = 0, stride = 1, padding = 0;
  std::vector<std::string> parameters;  // state_dict keys of trainable tensors it owns directly
  std::vector<std::string> buffers;     // running_mean, running_var, num_batches_tracked keys
};

// An ordered list of named tensors, as state_dict() gives them.
using TensorMap = std::vector<std::pair<std::string, Tensor>>;

class Model {
 public:
  // torchvision.models.resnet18(num_classes=...) with torchvision's initialisation, seeded.
  static Model resnet18(int64_t num_classes = 1000, uint64_t seed = 0);
  Model(Model&&) = default;
  Model& operator=(Model&&) = default;
  Model(const Model&) = delete;  // state and hooks are shared by handles: copy explicitly
  Model& operator=(const Model&) = delete;

  const std::vector<Module>& modules() const { return modules_; }  // named_modules() order
  const Module& module(const std::string& path) const;             // throws naming the path
  bool has_module(const std::string& path) const;
  int64_t num_classes() const { return num_classes_; }

  // Every parameter and buffer key in state_dict() order.
  const std::vector<std::string>& state_keys() const { return state_keys_; }
  // Trainable parameters in named_parameters() order.
  const std::vector<std::string>& parameter_names() const { return parameter_names_; }
  // The module that owns a state key ("layer1.0.bn1.weight" -> "layer1.0.bn1").
  const std::string& owner_of(const std::string& key) const;

  Tensor& tensor(const std::string& key);  // host state; throws naming an unknown key
  const Tensor& tensor(const std::string& key) const;
  TensorMap state_dict() const;  // shares storage with the model
  // Loads every key with a matching shape, converting F16/BF16/F64 to F32. Missing, unexpected or
  // mis-shaped keys throw Error(BadInput) naming the key (`source` names the file in messages).
  void load_state_dict(const TensorMap& state, const std::string& source = "state_dict");

  // Hooks. Each returns a handle; a selector that matches nothing throws Error(BadInput).
  HookHandle register_hook(HookWhen when, const std::string& selector, HookAction action, HookOptions options = {});
  HookHandle register_forward_pre_hook(const std::string& selector, HookAction action, HookOptions options = {});
  HookHandle register_forward_hook(const std::string& selector, HookAction action, HookOptions options = {});
  HookHandle register_full_backward_pre_hook(const std::string& selector, HookAction action, HookOptions options = {});
  HookHandle register_full_backward_hook(const std::string& selector, HookAction action, HookOptions options = {});
  HookHandle register_grad_hook(const std::string& selector, HookAction action, HookOptions options = {});
  // A hook on targets already resolved (module paths, or parameter keys for grad), e.g. by a
  // config file's regular expression; `label` names it in messages. Unknown targets throw.
  HookHandle register_hook_on(HookWhen when, std::vector<std::string> targets, const std::string& label,
                              HookAction action, HookOptions options = {});
  // Module paths (or parameter keys for grad) a selector matches, in definition order.
  std::vector<std::string> resolve(HookWhen when, const std::string& selector) const;
  HookRegistry& hooks() { return *hooks_; }
  const HookRegistry& hooks() const { return *hooks_; }

 private:
  Model() = default;
  void add_module(Module module);
  void add_state(const std::string& owner, const std::string& name, Tensor tensor, bool trainable);

  int64_t num_classes_ = 0;
  std::vector<Module> modules_;
  std::map<std::string, size_t> module_index_;
  std::vector<std::string> state_keys_;
  std::vector<std::string> parameter_names_;
  std::map<std::string, Tensor> state_;
  std::map<std::string, std::string> owner_;
  std::shared_ptr<HookRegistry> hooks_ = std::make_shared<HookRegistry>();
};

}  // namespace hookrt
