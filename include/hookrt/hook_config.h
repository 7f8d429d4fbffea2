#pragma once
// Hook configuration files — hooks from YAML, in the spirit of NVIDIA's nvidia-dlfw-inspect
// configs: named sections, each selecting layers and running features with a cadence.
//
//   conv_activations:                 # a section; any name
//     enabled: true                   # optional (default true)
//     layers:                         # the union of what these select
//       layer_name_regex_pattern: 'layer\d\.\d\.conv\d'   # full match over module paths
//       layer_names: [conv1, fc]      # exact module paths ("" is the root)
//       layer_types: [Conv2d]         # module kinds
//       selector: '@BatchNorm2d'      # a --hook selector (glob or @Kind)
//     hookrt:                         # the namespace, as `transformer_engine:` there
//       Probes:                       # a feature; any name, several allowed
//         enabled: true
//         when: [forward, backward]   # hook events
//         probes: [stats, zeros, 'hist=64:-1:1']
//         freq: 10                    # cadence: every 10th step ...
//         start_step: 0               # ... from this step ...
//         end_step: 1000              # ... to this one (inclusive)
//
// For `grad` events a selected module selects its parameters, and the regular expression and
// names also match parameter keys. Unknown fields, events or probes and a section selecting
// nothing are errors naming the file and the section.
#include <string>
#include <vector>

#include "hookrt/hooks.h"
#include "hookrt/model.h"

namespace hookrt {

struct ConfiguredHook {
  std::string name;  // "section/feature/when", for messages and listings
  HookWhen when = HookWhen::Forward;
  std::vector<std::string> targets;  // module paths, or parameter keys for grad
  ProbeList probes;
  HookOptions options;
};

// `source` names the file in messages.
std::vector<ConfiguredHook> parse_hook_config(const std::string& yaml, const std::string& source, const Model& model);
std::vector<ConfiguredHook> read_hook_config(const std::string& path, const Model& model);
std::vector<HookHandle> register_configured_hooks(Model& model, const std::vector<ConfiguredHook>& hooks);

}  // namespace hookrt
