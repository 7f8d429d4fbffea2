#include "hookrt/probes.h"

#include <charconv>
#include <cmath>
#include <type_traits>

#include "hookrt/error.h"

namespace hookrt {

namespace {

// Histograms larger than this are almost certainly a typo; refusing them keeps a mistyped
// `hist=100000000:0:1` from allocating gigabytes per firing.
constexpr int kMaxHistBins = 1 << 20;

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  size_t begin = 0;
  for (size_t end; (end = text.find(separator, begin)) != std::string::npos; begin = end + 1)
    parts.push_back(text.substr(begin, end - begin));
  parts.push_back(text.substr(begin));
  return parts;
}

[[noreturn]] void reject(const std::string& text, const std::string& why) {
  throw_bad_input("bad probe '" + text + "': " + why);
}

// The whole of `field` as a double; from_chars is locale-independent, unlike stod.
double parse_number(const std::string& text, const std::string& field, const char* what) {
  double value = 0;
  const char* end = field.data() + field.size();
  const auto [ptr, ec] = std::from_chars(field.data(), end, value);
  if (field.empty() || ec != std::errc() || ptr != end)
    reject(text, std::string(what) + " '" + field + "' is not a number");
  if (std::isnan(value)) reject(text, std::string(what) + " is NaN");
  return value;
}

double parse_finite(const std::string& text, const std::string& field, const char* what) {
  const double value = parse_number(text, field, what);
  if (!std::isfinite(value)) reject(text, std::string(what) + " must be finite");
  return value;
}

int parse_bins(const std::string& text, const std::string& field) {
  long long value = 0;
  const char* end = field.data() + field.size();
  const auto [ptr, ec] = std::from_chars(field.data(), end, value);
  if (field.empty() || ec != std::errc() || ptr != end)
    reject(text, "BINS '" + field + "' is not a whole number");
  if (value < 1) reject(text, "BINS must be at least 1");
  if (value > kMaxHistBins) reject(text, "BINS must be at most " + std::to_string(kMaxHistBins));
  return static_cast<int>(value);
}

// `argument` split on ':' into exactly `count` fields, or an error naming the expected form.
std::vector<std::string> fields(const std::string& text, const std::string& argument, size_t count,
                                const char* form) {
  std::vector<std::string> parts = split(argument, ':');
  if (parts.size() != count) reject(text, std::string("expected ") + form);
  return parts;
}

Probe parse_hist(const std::string& text, const std::string& argument) {
  const auto parts = fields(text, argument, 3, "hist=BINS:LO:HI");
  probes::Hist hist;
  hist.bins = parse_bins(text, parts[0]);
  hist.lo = parse_finite(text, parts[1], "LO");
  hist.hi = parse_finite(text, parts[2], "HI");
  if (!(hist.lo < hist.hi)) reject(text, "LO must be less than HI");
  return hist;
}

// Clamp bounds may be infinite (`clamp=0:inf` clamps below only), as torch.clamp allows.
Probe parse_clamp(const std::string& text, const std::string& argument) {
  const auto parts = fields(text, argument, 2, "clamp=LO:HI");
  probes::Clamp clamp;
  clamp.lo = parse_number(text, parts[0], "LO");
  clamp.hi = parse_number(text, parts[1], "HI");
  if (!(clamp.lo < clamp.hi)) reject(text, "LO must be less than HI");
  // torch.clamp refuses a finite bound that overflows the tensor's dtype. No dtype a probe reads
  // is wider than F32, so a bound beyond F32's range could never apply: say so now, not at the
  // first hook that fires. (F16's narrower range is checked where a clamp meets a half tensor.)
  if (std::isfinite(clamp.lo) && std::isinf(static_cast<float>(clamp.lo))) reject(text, "LO overflows F32");
  if (std::isfinite(clamp.hi) && std::isinf(static_cast<float>(clamp.hi))) reject(text, "HI overflows F32");
  return clamp;
}

Probe parse_clipnorm(const std::string& text, const std::string& argument) {
  probes::ClipNorm clip;
  clip.max_norm = parse_finite(text, argument, "MAX");
  if (!(clip.max_norm > 0)) reject(text, "MAX must be positive");
  return clip;
}

Probe parse_nonfinite(const std::string& text, const std::string& argument) {
  if (argument == "record") return probes::NonFinite{probes::NonFinitePolicy::Record};
  if (argument == "halt") return probes::NonFinite{probes::NonFinitePolicy::Halt};
  reject(text, "the policy must be 'record' or 'halt'");
}

}  // namespace

std::string probe_name(const Probe& probe) {
  return std::visit(
      [](const auto& p) -> std::string {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, probes::Stats>) return "stats";
        if constexpr (std::is_same_v<P, probes::Zeros>) return "zeros";
        if constexpr (std::is_same_v<P, probes::NonFinite>) return "nonfinite";
        if constexpr (std::is_same_v<P, probes::Hist>) return "hist";
        if constexpr (std::is_same_v<P, probes::Channels>) return "channels";
        if constexpr (std::is_same_v<P, probes::Clamp>) return "clamp";
        if constexpr (std::is_same_v<P, probes::ClipNorm>) return "clipnorm";
        if constexpr (std::is_same_v<P, probes::Capture>) return "capture";
      },
      probe);
}

bool probe_changes_tensor(const Probe& probe) {
  return std::holds_alternative<probes::Clamp>(probe) ||
         std::holds_alternative<probes::ClipNorm>(probe);
}

bool probe_may_halt(const Probe& probe) {
  const auto* nonfinite = std::get_if<probes::NonFinite>(&probe);
  return nonfinite && nonfinite->policy == probes::NonFinitePolicy::Halt;
}

Probe parse_probe(const std::string& text) {
  const size_t equals = text.find('=');
  const std::string name = text.substr(0, equals);
  const bool has_argument = equals != std::string::npos;
  const std::string argument = has_argument ? text.substr(equals + 1) : "";
  const auto require_argument = [&](const char* form) {
    if (!has_argument) reject(text, std::string("expected ") + form);
  };

  if (name == "hist") {
    require_argument("hist=BINS:LO:HI");
    return parse_hist(text, argument);
  }
  if (name == "clamp") {
    require_argument("clamp=LO:HI");
    return parse_clamp(text, argument);
  }
  if (name == "clipnorm") {
    require_argument("clipnorm=MAX");
    return parse_clipnorm(text, argument);
  }
  if (name == "nonfinite")
    return has_argument ? parse_nonfinite(text, argument) : probes::NonFinite{};

  Probe plain;
  if (name == "stats")
    plain = probes::Stats{};
  else if (name == "zeros")
    plain = probes::Zeros{};
  else if (name == "channels")
    plain = probes::Channels{};
  else if (name == "capture")
    plain = probes::Capture{};
  else
    reject(text,
           "unknown probe (expected stats, zeros, nonfinite[=record|halt], hist=BINS:LO:HI, "
           "channels, clamp=LO:HI, clipnorm=MAX or capture)");
  if (has_argument) reject(text, name + " takes no argument");
  return plain;
}

}  // namespace hookrt
