#include "hookrt/model.h"

#include <algorithm>
#include <cmath>

#include "random.h"

namespace hookrt {

std::string kind_name(ModuleKind kind) {
  switch (kind) {
    case ModuleKind::ResNet: return "ResNet";
    case ModuleKind::Conv2d: return "Conv2d";
    case ModuleKind::BatchNorm2d: return "BatchNorm2d";
    case ModuleKind::ReLU: return "ReLU";
    case ModuleKind::MaxPool2d: return "MaxPool2d";
    case ModuleKind::Sequential: return "Sequential";
    case ModuleKind::BasicBlock: return "BasicBlock";
    case ModuleKind::AdaptiveAvgPool2d: return "AdaptiveAvgPool2d";
    case ModuleKind::Linear: return "Linear";
  }
  throw Error("kind_name: unknown module kind");
}

ModuleKind parse_kind(const std::string& name) {
  for (ModuleKind kind : {ModuleKind::ResNet, ModuleKind::Conv2d, ModuleKind::BatchNorm2d, ModuleKind::ReLU,
                          ModuleKind::MaxPool2d, ModuleKind::Sequential, ModuleKind::BasicBlock,
                          ModuleKind::AdaptiveAvgPool2d, ModuleKind::Linear})
    if (kind_name(kind) == name) return kind;
  throw_bad_input("unknown module kind '@" + name +
                  "' (expected one of ResNet Conv2d BatchNorm2d ReLU MaxPool2d Sequential BasicBlock "
                  "AdaptiveAvgPool2d Linear)");
}

static std::string join(const std::string& parent, const std::string& name) {
  return parent.empty() ? name : parent + "." + name;
}

Model Model::resnet18(int64_t num_classes, uint64_t seed) {
  if (num_classes < 1) throw_bad_input("resnet18: num_classes must be at least 1, got " + std::to_string(num_classes));
  Model model;
  model.num_classes_ = num_classes;
  Pcg32 rng(seed);

  auto add = [&](const std::string& parent, const std::string& name, ModuleKind kind) -> Module {
    Module m;
    m.path = parent.empty() && name.empty() ? "" : join(parent, name);
    m.kind = kind;
    if (!m.path.empty()) {
      for (Module& p : model.modules_)
        if (p.path == parent) p.children.push_back(m.path);
    }
    return m;
  };
  // torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu").
  auto conv = [&](const std::string& parent, const std::string& name, int64_t in, int64_t out, int k, int stride, int pad) {
    Module m = add(parent, name, ModuleKind::Conv2d);
    m.in = in, m.out = out, m.kernel = k, m.stride = stride, m.padding = pad;
    model.add_module(m);
    Tensor w = Tensor::empty({out, in, k, k});
    const double std = std::sqrt(2.0 / static_cast<double>(out * k * k));
    float* p = w.data<float>();
    for (int64_t i = 0; i < w.numel(); ++i) p[i] = static_cast<float>(rng.normal() * std);
    model.add_state(m.path, "weight", w, true);
  };
  // torchvision: weight 1, bias 0, running_mean 0, running_var 1.
  auto bn = [&](const std::string& parent, const std::string& name, int64_t features) {
    Module m = add(parent, name, ModuleKind::BatchNorm2d);
    m.in = m.out = features;
    model.add_module(m);
    model.add_state(m.path, "weight", Tensor::full({features}, 1.0), true);
    model.add_state(m.path, "bias", Tensor::zeros({features}), true);
    model.add_state(m.path, "running_mean", Tensor::zeros({features}), false);
    model.add_state(m.path, "running_var", Tensor::full({features}, 1.0), false);
    model.add_state(m.path, "num_batches_tracked", Tensor::zeros({}, DType::I64), false);
  };
  auto leaf = [&](const std::string& parent, const std::string& name, ModuleKind kind) {
    model.add_module(add(parent, name, kind));
  };

  model.add_module(add("", "", ModuleKind::ResNet));
  conv("", "conv1", 3, 64, 7, 2, 3);
  bn("", "bn1", 64);
  leaf("", "relu", ModuleKind::ReLU);
  {
    Module pool = add("", "maxpool", ModuleKind::MaxPool2d);
    pool.kernel = 3, pool.stride = 2, pool.padding = 1;
    model.add_module(pool);
  }
  const int64_t widths[4] = {64, 128, 256, 512};
  int64_t in = 64;
  for (int layer = 0; layer < 4; ++layer) {
    const std::string lname = "layer" + std::to_string(layer + 1);
    model.add_module(add("", lname, ModuleKind::Sequential));
    for (int b = 0; b < 2; ++b) {
      const int stride = (layer > 0 && b == 0) ? 2 : 1;
      const int64_t out = widths[layer];
      const std::string block = std::to_string(b);
      model.add_module(add(lname, block, ModuleKind::BasicBlock));
      const std::string bpath = join(lname, block);
      conv(bpath, "conv1", in, out, 3, stride, 1);
      bn(bpath, "bn1", out);
      leaf(bpath, "relu", ModuleKind::ReLU);
      conv(bpath, "conv2", out, out, 3, 1, 1);
      bn(bpath, "bn2", out);
      if (stride != 1 || in != out) {
        model.add_module(add(bpath, "downsample", ModuleKind::Sequential));
        conv(join(bpath, "downsample"), "0", in, out, 1, stride, 0);
        bn(join(bpath, "downsample"), "1", out);
      }
      in = out;
    }
  }
  leaf("", "avgpool", ModuleKind::AdaptiveAvgPool2d);
  {
    // nn.Linear's default: kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)); bias the same.
    Module fc = add("", "fc", ModuleKind::Linear);
    fc.in = 512, fc.out = num_classes;
    model.add_module(fc);
    const double bound = 1.0 / std::sqrt(512.0);
    Tensor w = Tensor::empty({num_classes, 512});
    Tensor b = Tensor::empty({num_classes});
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = static_cast<float>(rng.uniform(-bound, bound));
    for (int64_t i = 0; i < b.numel(); ++i) b.data<float>()[i] = static_cast<float>(rng.uniform(-bound, bound));
    model.add_state("fc", "weight", w, true);
    model.add_state("fc", "bias", b, true);
  }
  return model;
}

void Model::add_module(Module module) {
  module_index_[module.path] = modules_.size();
  modules_.push_back(std::move(module));
}

void Model::add_state(const std::string& owner, const std::string& name, Tensor tensor, bool trainable) {
  const std::string key = join(owner, name);
  Module& m = modules_[module_index_.at(owner)];
  (trainable ? m.parameters : m.buffers).push_back(key);
  if (trainable) parameter_names_.push_back(key);
  state_keys_.push_back(key);
  state_[key] = std::move(tensor);
  owner_[key] = owner;
}

bool Model::has_module(const std::string& path) const { return module_index_.count(path) != 0; }

const Module& Model::module(const std::string& path) const {
  auto it = module_index_.find(path);
  if (it == module_index_.end()) throw_bad_input("no module named '" + path + "'");
  return modules_[it->second];
}

const std::string& Model::owner_of(const std::string& key) const {
  auto it = owner_.find(key);
  if (it == owner_.end()) throw_bad_input("no parameter or buffer named '" + key + "'");
  return it->second;
}

Tensor& Model::tensor(const std::string& key) {
  auto it = state_.find(key);
  if (it == state_.end()) throw_bad_input("no parameter or buffer named '" + key + "'");
  return it->second;
}

const Tensor& Model::tensor(const std::string& key) const {
  auto it = state_.find(key);
  if (it == state_.end()) throw_bad_input("no parameter or buffer named '" + key + "'");
  return it->second;
}

TensorMap Model::state_dict() const {
  TensorMap out;
  for (const std::string& key : state_keys_) out.emplace_back(key, state_.at(key));
  return out;
}

static bool is_float_dtype(DType d) { return d == DType::F32 || d == DType::F64 || d == DType::F16 || d == DType::BF16; }

void Model::load_state_dict(const TensorMap& state, const std::string& source) {
  std::map<std::string, const Tensor*> given;
  for (const auto& [key, t] : state) {
    if (!state_.count(key)) throw_bad_input(source + ": unexpected key '" + key + "' (not a resnet18 state_dict key)");
    given[key] = &t;
  }
  for (const std::string& key : state_keys_) {
    auto it = given.find(key);
    if (it == given.end()) throw_bad_input(source + ": missing key '" + key + "'");
    const Tensor& t = *it->second;
    Tensor& target = state_.at(key);
    const bool counter = key.ends_with("num_batches_tracked");
    // num_batches_tracked may be stored as a scalar or a one-element tensor.
    const bool shape_ok = t.shape() == target.shape() || (counter && t.numel() == 1);
    if (!shape_ok)
      throw_bad_input(source + ": key '" + key + "' has shape " + shape_string(t.shape()) + ", expected " +
                      shape_string(target.shape()));
    if (counter) {
      if (is_float_dtype(t.dtype())) throw_bad_input(source + ": key '" + key + "' must be an integer tensor, got " + dtype_name(t.dtype()));
    } else if (!is_float_dtype(t.dtype())) {
      throw_bad_input(source + ": key '" + key + "' must be a floating tensor, got " + dtype_name(t.dtype()));
    }
  }
  // Everything checked: now copy, so a bad file leaves the model untouched.
  for (const std::string& key : state_keys_) {
    const Tensor& t = *given.at(key);
    Tensor& target = state_.at(key);
    Tensor converted = t.to(target.dtype());
    std::copy_n(static_cast<const char*>(converted.raw_data()), target.nbytes(), static_cast<char*>(target.raw_data()));
  }
}

// ---- hooks ----

std::vector<std::string> Model::resolve(HookWhen when, const std::string& selector) const {
  const bool by_kind = selector.starts_with("@");
  const bool is_glob = selector.find_first_of("*?") != std::string::npos;
  std::optional<ModuleKind> kind;
  if (by_kind) kind = parse_kind(selector.substr(1));
  auto module_matches = [&](const Module& m) {
    if (kind) return m.kind == *kind;
    return is_glob ? glob_match(selector, m.path) : m.path == selector;
  };
  std::vector<std::string> targets;
  if (when == HookWhen::Grad) {
    // A parameter matches by its own key or by its owning module.
    for (const std::string& key : parameter_names_) {
      const Module& owner = modules_[module_index_.at(owner_.at(key))];
      const bool by_key = !by_kind && (is_glob ? glob_match(selector, key) : key == selector);
      if (by_key || module_matches(owner)) targets.push_back(key);
    }
  } else {
    for (const Module& m : modules_)
      if (module_matches(m)) targets.push_back(m.path);
  }
  if (targets.empty())
    throw_bad_input("hook selector '" + selector + "' matches no " +
                    (when == HookWhen::Grad ? std::string("parameter") : std::string("module")));
  return targets;
}

HookHandle Model::register_hook(HookWhen when, const std::string& selector, HookAction action, HookOptions options) {
  return register_hook_on(when, resolve(when, selector), selector, std::move(action), options);
}

HookHandle Model::register_hook_on(HookWhen when, std::vector<std::string> targets, const std::string& label,
                                   HookAction action, HookOptions options) {
  if (options.every < 1) throw_bad_input("hook cadence: every must be at least 1, got " + std::to_string(options.every));
  if (options.start < 0) throw_bad_input("hook cadence: start must not be negative");
  if (options.end && *options.end < options.start) throw_bad_input("hook cadence: end step is before start step");
  if (options.always_call && when != HookWhen::Forward)
    throw_bad_input("always_call applies to forward hooks only (as in PyTorch)");
  if (auto* pair = std::get_if<PairCallback>(&action); pair && when != HookWhen::Forward && when != HookWhen::Backward)
    throw_bad_input("a two-tensor callback needs a forward or backward hook, not " + when_name(when));
  if (auto* list = std::get_if<ProbeList>(&action); list && list->empty())
    throw_bad_input("hook on '" + label + "' has no probes");
  if (targets.empty()) throw_bad_input("hook '" + label + "' has no targets");
  for (const std::string& target : targets) {
    const bool known = when == HookWhen::Grad
                           ? std::find(parameter_names_.begin(), parameter_names_.end(), target) != parameter_names_.end()
                           : has_module(target);
    if (!known) throw_bad_input("hook '" + label + "': no " + (when == HookWhen::Grad ? "parameter" : "module") + " '" + target + "'");
  }
  Hook hook;
  hook.when = when;
  hook.selector = label;
  hook.targets = std::move(targets);
  hook.action = std::move(action);
  hook.options = options;
  const uint64_t id = hooks_->add(std::move(hook));
  return HookHandle(hooks_, id);
}

HookHandle Model::register_forward_pre_hook(const std::string& s, HookAction a, HookOptions o) {
  return register_hook(HookWhen::ForwardPre, s, std::move(a), o);
}
HookHandle Model::register_forward_hook(const std::string& s, HookAction a, HookOptions o) {
  return register_hook(HookWhen::Forward, s, std::move(a), o);
}
HookHandle Model::register_full_backward_pre_hook(const std::string& s, HookAction a, HookOptions o) {
  return register_hook(HookWhen::BackwardPre, s, std::move(a), o);
}
HookHandle Model::register_full_backward_hook(const std::string& s, HookAction a, HookOptions o) {
  return register_hook(HookWhen::Backward, s, std::move(a), o);
}
HookHandle Model::register_grad_hook(const std::string& s, HookAction a, HookOptions o) {
  return register_hook(HookWhen::Grad, s, std::move(a), o);
}

}  // namespace hookrt
