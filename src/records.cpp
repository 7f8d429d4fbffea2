#include "hookrt/records.h"

#include "hookrt/error.h"

namespace hookrt {

std::string when_name(HookWhen when) {
  switch (when) {
    case HookWhen::ForwardPre: return "forward_pre";
    case HookWhen::Forward: return "forward";
    case HookWhen::BackwardPre: return "backward_pre";
    case HookWhen::Backward: return "backward";
    case HookWhen::Grad: return "grad";
  }
  throw Error("when_name: unknown event");
}

HookWhen parse_when(const std::string& text) {
  for (HookWhen when : {HookWhen::ForwardPre, HookWhen::Forward, HookWhen::BackwardPre, HookWhen::Backward, HookWhen::Grad})
    if (text == when_name(when)) return when;
  throw_bad_input("unknown hook event '" + text + "' (expected forward_pre, forward, backward_pre, backward or grad)");
}

std::string ProbeRecord::capture_key() const {
  std::string key = "step" + std::to_string(step) + "/" + when_name(when) + "/";
  if (when == HookWhen::Grad) {
    key += param;
  } else {
    key += module;
    if (call > 0) {
      key += '#';  // appended piecewise: GCC 12 warns falsely (-Wrestrict) on "#" + std::string
      key += std::to_string(call);
    }
  }
  return key + "/" + tensor;
}

}  // namespace hookrt
