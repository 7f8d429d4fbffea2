#pragma once
// ProbeRecord — what one probe firing delivers: where and when it fired, the tensor's shape, and
// the results of the hook's observing probes in the order written. Written as one stats.jsonl line.
#include <cstdint>
#include <string>
#include <vector>

#include "hookrt/probes.h"
#include "hookrt/tensor.h"

namespace hookrt {

// The five hook events, as DESIGN.md names them.
enum class HookWhen { ForwardPre, Forward, BackwardPre, Backward, Grad };

std::string when_name(HookWhen when);  // "forward_pre", "forward", "backward_pre", "backward", "grad"
HookWhen parse_when(const std::string& text);  // throws Error(BadInput) naming the text

struct ProbeRecord {
  int64_t step = 0;
  HookWhen when = HookWhen::Forward;
  std::string module;  // module path ("" is the root); for Grad events the owning module
  int call = 0;        // k-th call of the module within the step (0 for the first)
  std::string param;   // Grad events: the parameter's state_dict key
  std::string tensor;  // input, output, grad_input, grad_output, grad
  Shape shape;
  std::vector<ProbeResult> results;

  // `step{S}/{when}/{module}[#k]/{tensor}`; for Grad events the module part is the parameter name.
  std::string capture_key() const;
};

}  // namespace hookrt
