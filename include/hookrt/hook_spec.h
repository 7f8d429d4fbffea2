#pragma once
// HookSpec — a hook as written on the command line: `WHEN:SELECTOR:PROBE[,PROBE...]`, e.g.
// `forward:layer1.*.conv*:stats,zeros`, `backward:@Conv2d:capture`, `forward::capture` (root).
// Cadence and order options may join the probe list: `every=N`, `start=S`, `end=E`, `prepend`.
#include <string>

#include "hookrt/hooks.h"
#include "hookrt/model.h"
#include "hookrt/probes.h"

namespace hookrt {

struct HookSpec {
  std::string text;  // as written, for messages
  HookWhen when = HookWhen::Forward;
  std::string selector;
  ProbeList probes;
  HookOptions options;
};

// Throws Error(BadInput) naming the spec and what is wrong with it.
HookSpec parse_hook_spec(const std::string& text);

// Registers the spec's probes on the model; a selector matching nothing throws naming the spec.
HookHandle register_hook_spec(Model& model, const HookSpec& spec);

}  // namespace hookrt
