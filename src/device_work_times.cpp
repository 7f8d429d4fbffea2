// Device time by kind of work (see device_work_times.h).
#include "device_work_times.h"

#include <cxxabi.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>

namespace hookrt {

namespace {

// The demangled name, or the symbol itself where it does not demangle (extern "C" kernels,
// such as many of cuDNN's and cuBLAS's, are named plainly).
std::string demangle(std::string_view symbol) {
  const std::string mangled(symbol);
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> text(abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status),
                                              std::free);
  return status == 0 && text ? std::string(text.get()) : mangled;
}

// `name` without anything inside <...> or (...), at any depth. "operator<" and the like do not
// name kernels, so every bracket is a bracket.
std::string without_brackets(const std::string& name) {
  std::string out;
  int depth = 0;
  for (const char c : name) {
    if (c == '<' || c == '(') ++depth;
    if (depth == 0) out += c;
    if ((c == '>' || c == ')') && depth > 0) --depth;
  }
  return out;
}

void erase_all(std::string& text, std::string_view part) {
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at)) text.erase(at, part.size());
}

std::string trimmed(const std::string& text) {
  const size_t first = text.find_first_not_of(' ');
  if (first == std::string::npos) return {};
  return text.substr(first, text.find_last_not_of(' ') - first + 1);
}

// Whether a kernel's plain name says only that it is a library's kernel (cutlass::Kernel2,
// xmma's gemm::kernel, cutlass::device_kernel), so that what it runs, a convolution's direction
// or a GEMM's tiles, is in its first template argument.
bool generic_entry(const std::string& family) {
  const size_t colons = family.rfind("::");
  const std::string last = colons == std::string::npos ? family : family.substr(colons + 2);
  return last == "Kernel" || last == "Kernel2" || last == "kernel" || last == "device_kernel";
}

// The first template argument after `family` in the demangled `name`, without its own
// arguments ("" where there is none).
std::string first_template_argument(const std::string& name, const std::string& family) {
  const size_t open = name.find(family + "<");
  if (open == std::string::npos) return {};
  std::string argument;
  int depth = 0;
  for (size_t i = open + family.size() + 1; i < name.size(); ++i) {
    const char c = name[i];
    if (depth == 0 && (c == ',' || c == '>')) break;
    if (c == '<' || c == '(') ++depth;
    if (c == '>' || c == ')') --depth;
    argument += c;
  }
  return trimmed(without_brackets(argument));
}

}  // namespace

std::string kernel_family(std::string_view symbol) {
  std::string name = demangle(symbol);
  erase_all(name, "(anonymous namespace)::");
  // The parameter list ends the name; a return type ("void ") comes before it, split off at the
  // last space outside brackets.
  std::string family = trimmed(without_brackets(name));
  if (const size_t space = family.rfind(' '); space != std::string::npos) family = family.substr(space + 1);
  if (family.empty()) return std::string(symbol);
  if (generic_entry(family))
    if (const std::string argument = first_template_argument(name, family); !argument.empty())
      family += "<" + argument + ">";
  return family;
}

void DeviceWorkTimes::add(const std::string& name, double ms, int64_t items) {
  DeviceWorkTime& time = times_[name];
  time.name = name;
  time.items += items;
  time.ms += ms;
}

void DeviceWorkTimes::add(const DeviceWorkTimes& other) {
  for (const auto& [name, time] : other.times_) add(name, time.ms, time.items);
}

std::vector<DeviceWorkTime> DeviceWorkTimes::by_time() const {
  std::vector<DeviceWorkTime> out;
  out.reserve(times_.size());
  for (const auto& entry : times_) out.push_back(entry.second);
  std::stable_sort(out.begin(), out.end(), [](const DeviceWorkTime& a, const DeviceWorkTime& b) { return a.ms > b.ms; });
  return out;
}

double total_ms(const std::vector<DeviceWorkTime>& times) {
  double sum = 0;
  for (const DeviceWorkTime& time : times) sum += time.ms;
  return sum;
}

std::vector<DeviceWorkChange> largest_changes(const std::vector<DeviceWorkTime>& before,
                                              const std::vector<DeviceWorkTime>& after, size_t count) {
  std::map<std::string, DeviceWorkChange> changes;
  for (const DeviceWorkTime& time : before) {
    DeviceWorkChange& change = changes[time.name];
    change.name = time.name;
    change.before = time;
  }
  for (const DeviceWorkTime& time : after) {
    DeviceWorkChange& change = changes[time.name];
    change.name = time.name;
    change.after = time;
  }
  std::vector<DeviceWorkChange> out;
  for (const auto& entry : changes) out.push_back(entry.second);
  // The largest changes either way (stable: ties stay in name order), then growth before saving.
  std::stable_sort(out.begin(), out.end(), [](const DeviceWorkChange& a, const DeviceWorkChange& b) {
    return std::fabs(a.delta_ms()) > std::fabs(b.delta_ms());
  });
  if (out.size() > count) out.resize(count);
  std::stable_sort(out.begin(), out.end(),
                   [](const DeviceWorkChange& a, const DeviceWorkChange& b) { return a.delta_ms() > b.delta_ms(); });
  return out;
}

}  // namespace hookrt
