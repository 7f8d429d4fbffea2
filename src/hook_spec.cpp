#include "hookrt/hook_spec.h"

#include <charconv>

namespace hookrt {

static std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  size_t begin = 0;
  while (true) {
    const size_t end = text.find(sep, begin);
    parts.push_back(text.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (end == std::string::npos) return parts;
    begin = end + 1;
  }
}

static int64_t parse_step_count(const std::string& spec, const std::string& name, const std::string& value) {
  int64_t n = 0;
  const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (error != std::errc() || end != value.data() + value.size() || n < 0)
    throw_bad_input("hook '" + spec + "': " + name + "=" + value + " is not a non-negative integer");
  return n;
}

// Cadence and order tokens; returns false when the token is a probe.
static bool parse_option(const std::string& spec, const std::string& token, HookOptions& options) {
  const size_t eq = token.find('=');
  const std::string name = token.substr(0, eq);
  const std::string value = eq == std::string::npos ? "" : token.substr(eq + 1);
  if (name == "prepend" && eq == std::string::npos) {
    options.prepend = true;
  } else if (name == "every") {
    options.every = parse_step_count(spec, name, value);
    if (options.every < 1) throw_bad_input("hook '" + spec + "': every must be at least 1");
  } else if (name == "start") {
    options.start = parse_step_count(spec, name, value);
  } else if (name == "end") {
    options.end = parse_step_count(spec, name, value);
  } else {
    return false;
  }
  return true;
}

HookSpec parse_hook_spec(const std::string& text) {
  HookSpec spec;
  spec.text = text;
  const size_t first = text.find(':');
  const size_t second = first == std::string::npos ? std::string::npos : text.find(':', first + 1);
  if (second == std::string::npos)
    throw_bad_input("hook '" + text + "': expected WHEN:SELECTOR:PROBE[,PROBE...]");
  spec.when = parse_when(text.substr(0, first));
  spec.selector = text.substr(first + 1, second - first - 1);
  for (const std::string& token : split(text.substr(second + 1), ',')) {
    if (token.empty()) throw_bad_input("hook '" + text + "': empty probe in the list");
    if (parse_option(text, token, spec.options)) continue;
    try {
      spec.probes.push_back(parse_probe(token));
    } catch (const Error& error) {
      throw_bad_input("hook '" + text + "': " + error.what());
    }
  }
  if (spec.probes.empty()) throw_bad_input("hook '" + text + "': no probes given");
  if (spec.options.end && *spec.options.end < spec.options.start)
    throw_bad_input("hook '" + text + "': end step is before start step");
  return spec;
}

HookHandle register_hook_spec(Model& model, const HookSpec& spec) {
  try {
    return model.register_hook(spec.when, spec.selector, spec.probes, spec.options);
  } catch (const Error& error) {
    throw Error("hook '" + spec.text + "': " + error.what(), error.kind());
  }
}

}  // namespace hookrt
