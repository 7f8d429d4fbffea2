#include "hookrt/hook_config.h"

#include <optional>
#include <regex>
#include <set>

#include <yaml-cpp/yaml.h>

#include "hookrt/error.h"
#include "io/file_bytes.h"

namespace hookrt {

namespace {

struct Context {
  const std::string& source;
  const Model& model;
};

[[noreturn]] void fail(const Context& c, const std::string& where, const std::string& what) {
  throw_bad_input(c.source + ": " + where + ": " + what);
}

void allow_only(const Context& c, const std::string& where, const YAML::Node& map, const std::set<std::string>& fields) {
  if (!map.IsMap()) fail(c, where, "expected a mapping");
  for (const auto& entry : map) {
    const std::string key = entry.first.as<std::string>();
    if (!fields.contains(key)) {
      std::string known;
      for (const std::string& field : fields) known += (known.empty() ? "" : ", ") + field;
      fail(c, where, "unknown field '" + key + "' (expected " + known + ")");
    }
  }
}

std::vector<std::string> string_list(const Context& c, const std::string& where, const YAML::Node& node) {
  if (node.IsScalar()) return {node.as<std::string>()};
  if (!node.IsSequence()) fail(c, where, "expected a string or a list of strings");
  std::vector<std::string> values;
  for (const auto& item : node) {
    if (!item.IsScalar()) fail(c, where, "expected a list of strings");
    values.push_back(item.as<std::string>());
  }
  return values;
}

template <class T>
T scalar(const Context& c, const std::string& where, const YAML::Node& node) {
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    fail(c, where, "'" + YAML::Dump(node) + "' is not a valid value");
  }
}

bool enabled(const Context& c, const std::string& where, const YAML::Node& map) {
  return !map["enabled"] || scalar<bool>(c, where + ".enabled", map["enabled"]);
}

// The module paths a section's `layers` selects, in definition order.
std::vector<std::string> selected_modules(const Context& c, const std::string& where, const YAML::Node& layers) {
  allow_only(c, where, layers, {"layer_name_regex_pattern", "layer_names", "layer_types", "selector"});
  std::set<std::string> chosen;
  if (layers["layer_name_regex_pattern"]) {
    const std::string pattern = scalar<std::string>(c, where, layers["layer_name_regex_pattern"]);
    std::regex regex;
    try {
      regex = std::regex(pattern);
    } catch (const std::regex_error& error) {
      fail(c, where + ".layer_name_regex_pattern", "'" + pattern + "' is not a regular expression: " + error.what());
    }
    for (const Module& m : c.model.modules())
      if (std::regex_match(m.path, regex)) chosen.insert(m.path);
  }
  if (layers["layer_names"])
    for (const std::string& name : string_list(c, where + ".layer_names", layers["layer_names"])) {
      if (!c.model.has_module(name)) fail(c, where + ".layer_names", "no module '" + name + "'");
      chosen.insert(name);
    }
  if (layers["layer_types"])
    for (const std::string& type : string_list(c, where + ".layer_types", layers["layer_types"])) {
      const ModuleKind kind = parse_kind(type);
      for (const Module& m : c.model.modules())
        if (m.kind == kind) chosen.insert(m.path);
    }
  if (layers["selector"])
    for (const std::string& path : c.model.resolve(HookWhen::Forward, scalar<std::string>(c, where, layers["selector"])))
      chosen.insert(path);
  std::vector<std::string> ordered;
  for (const Module& m : c.model.modules())
    if (chosen.contains(m.path)) ordered.push_back(m.path);
  return ordered;
}

// Grad hooks: the selected modules' parameters, plus parameter keys the pattern or names match.
std::vector<std::string> selected_parameters(const Context& c, const YAML::Node& layers,
                                             const std::vector<std::string>& modules) {
  const std::set<std::string> owners(modules.begin(), modules.end());
  std::optional<std::regex> regex;
  if (layers["layer_name_regex_pattern"]) regex = std::regex(layers["layer_name_regex_pattern"].as<std::string>());
  std::set<std::string> names;
  if (layers["layer_names"])
    for (const std::string& name : string_list(c, "layers", layers["layer_names"])) names.insert(name);
  std::vector<std::string> keys;
  for (const std::string& key : c.model.parameter_names())
    if (owners.contains(c.model.owner_of(key)) || names.contains(key) || (regex && std::regex_match(key, *regex)))
      keys.push_back(key);
  return keys;
}

HookOptions cadence(const Context& c, const std::string& where, const YAML::Node& feature) {
  HookOptions options;
  if (feature["freq"]) options.every = scalar<int64_t>(c, where + ".freq", feature["freq"]);
  if (feature["start_step"]) options.start = scalar<int64_t>(c, where + ".start_step", feature["start_step"]);
  if (feature["end_step"]) options.end = scalar<int64_t>(c, where + ".end_step", feature["end_step"]);
  if (options.every < 1) fail(c, where + ".freq", "must be at least 1");
  if (options.start < 0) fail(c, where + ".start_step", "must not be negative");
  if (options.end && *options.end < options.start) fail(c, where + ".end_step", "is before start_step");
  return options;
}

void add_feature(const Context& c, const std::string& where, const YAML::Node& feature, const YAML::Node& layers,
                 const std::vector<std::string>& modules, std::vector<ConfiguredHook>& hooks) {
  allow_only(c, where, feature, {"enabled", "when", "probes", "freq", "start_step", "end_step"});
  if (!enabled(c, where, feature)) return;
  if (!feature["when"]) fail(c, where, "missing 'when' (forward_pre, forward, backward_pre, backward, grad)");
  if (!feature["probes"]) fail(c, where, "missing 'probes'");
  ProbeList probes;
  for (const std::string& text : string_list(c, where + ".probes", feature["probes"])) probes.push_back(parse_probe(text));
  const HookOptions options = cadence(c, where, feature);
  for (const std::string& event : string_list(c, where + ".when", feature["when"])) {
    ConfiguredHook hook;
    hook.name = where + "/" + event;
    hook.when = parse_when(event);
    hook.targets = hook.when == HookWhen::Grad ? selected_parameters(c, layers, modules) : modules;
    if (hook.targets.empty()) fail(c, where, "the section's layers select no " + std::string(hook.when == HookWhen::Grad ? "parameter" : "module"));
    hook.probes = probes;
    hook.options = options;
    hooks.push_back(std::move(hook));
  }
}

void add_section(const Context& c, const std::string& name, const YAML::Node& section, std::vector<ConfiguredHook>& hooks) {
  allow_only(c, name, section, {"enabled", "layers", "hookrt"});
  if (!enabled(c, name, section)) return;
  if (!section["layers"]) fail(c, name, "missing 'layers'");
  if (!section["hookrt"]) fail(c, name, "missing 'hookrt' (the features to run)");
  const std::vector<std::string> modules = selected_modules(c, name + ".layers", section["layers"]);
  if (!section["hookrt"].IsMap()) fail(c, name + ".hookrt", "expected a mapping of features");
  for (const auto& feature : section["hookrt"])
    add_feature(c, name + ".hookrt." + feature.first.as<std::string>(), feature.second, section["layers"], modules, hooks);
}

}  // namespace

std::vector<ConfiguredHook> parse_hook_config(const std::string& yaml, const std::string& source, const Model& model) {
  const Context c{source, model};
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& error) {
    throw_bad_input(source + ": not valid YAML: " + error.what());
  }
  if (!root.IsMap()) throw_bad_input(source + ": expected a mapping of sections at the top level");
  std::vector<ConfiguredHook> hooks;
  for (const auto& section : root) {
    const std::string name = section.first.as<std::string>();
    try {
      add_section(c, name, section.second, hooks);
    } catch (const YAML::Exception& error) {
      throw_bad_input(source + ": " + name + ": " + error.what());
    } catch (const Error& error) {
      if (error.kind() != ErrorKind::BadInput) throw;
      const std::string message = error.what();
      throw_bad_input(message.rfind(source, 0) == 0 ? message : source + ": " + name + ": " + message);
    }
  }
  return hooks;
}

std::vector<ConfiguredHook> read_hook_config(const std::string& path, const Model& model) {
  return parse_hook_config(io::read_file_bytes(path), path, model);
}

std::vector<HookHandle> register_configured_hooks(Model& model, const std::vector<ConfiguredHook>& hooks) {
  std::vector<HookHandle> handles;
  for (const ConfiguredHook& hook : hooks)
    handles.push_back(model.register_hook_on(hook.when, hook.targets, hook.name, hook.probes, hook.options));
  return handles;
}

}  // namespace hookrt
