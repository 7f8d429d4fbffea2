#pragma once
// Probes — declarative hook programs: what to measure or change on a hooked tensor. A hook holds
// a ProbeList; the probes run in the order written, each seeing what the one before it left
// (`clamp=-1:1,stats` describes the clamped tensor; `stats,clamp=-1:1` the tensor before it).
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "hookrt/tensor.h"

namespace hookrt {
namespace probes {

// count, min, max, mean, std (unbiased), abs_max, l1, l2 over finite elements; nan/posinf/neginf.
struct Stats {
  bool operator==(const Stats&) const = default;
};
// exact-zero count and fraction; dead channels (every value in the batch <= 0).
struct Zeros {
  bool operator==(const Zeros&) const = default;
};
// What to do when a nonfinite probe finds NaN or Inf.
enum class NonFinitePolicy { Record, Halt };
// NaN, +Inf, -Inf counts.
struct NonFinite {
  NonFinitePolicy policy = NonFinitePolicy::Record;
  bool operator==(const NonFinite&) const = default;
};
// Fixed-range histogram: `bins` equal bins over [lo, hi); values == hi land in the last bin.
struct Hist {
  int bins = 64;
  double lo = -1.0;
  double hi = 1.0;
  bool operator==(const Hist&) const = default;
};
// Per-channel mean, std (unbiased) and zero fraction.
struct Channels {
  bool operator==(const Channels&) const = default;
};
// Replaces the tensor by its clamp to [lo, hi]; reports how many elements changed.
struct Clamp {
  double lo = -1.0;
  double hi = 1.0;
  bool operator==(const Clamp&) const = default;
};
// Scales the tensor so its L2 norm is at most max_norm; reports the norm and the scale.
struct ClipNorm {
  double max_norm = 1.0;
  bool operator==(const ClipNorm&) const = default;
};
// Keeps a host copy of the tensor.
struct Capture {
  bool operator==(const Capture&) const = default;
};

}  // namespace probes

using Probe = std::variant<probes::Stats, probes::Zeros, probes::NonFinite, probes::Hist,
                           probes::Channels, probes::Clamp, probes::ClipNorm, probes::Capture>;
using ProbeList = std::vector<Probe>;

// `probes::Stats{} | probes::Zeros{}` builds a ProbeList in the order written.
template <class A, class B>
  requires(std::is_constructible_v<Probe, A> && std::is_constructible_v<Probe, B>)
ProbeList operator|(A a, B b) { return ProbeList{Probe(a), Probe(b)}; }
template <class B>
  requires std::is_constructible_v<Probe, B>
ProbeList operator|(ProbeList list, B b) {
  list.push_back(Probe(b));
  return list;
}

std::string probe_name(const Probe& probe);  // "stats", "hist", ...
bool probe_changes_tensor(const Probe& probe);  // clamp, clipnorm
bool probe_may_halt(const Probe& probe);        // nonfinite=halt

// Parses one probe as written on the command line: `stats`, `zeros`, `nonfinite`,
// `nonfinite=halt`, `hist=BINS:LO:HI`, `channels`, `clamp=LO:HI`, `clipnorm=MAX`, `capture`.
// Throws Error(BadInput) naming the text on anything else.
Probe parse_probe(const std::string& text);

// ---- Results ---------------------------------------------------------------------------------
// Statistics with nothing to describe (no finite element) are nullopt and written as null.

struct StatsResult {
  int64_t count = 0;  // finite elements
  std::optional<double> min, max, mean, std, abs_max;
  double l1 = 0, l2 = 0;
  int64_t nan = 0, posinf = 0, neginf = 0;
};
struct ZerosResult {
  int64_t zeros = 0;
  double zero_fraction = 0;
  int64_t channels = 0;       // size of the channel axis
  int64_t dead_channels = 0;  // channels whose every value is <= 0
};
struct NonFiniteResult { int64_t nan = 0, posinf = 0, neginf = 0; };
struct HistResult {
  int bins = 0;
  double lo = 0, hi = 0;
  std::vector<int64_t> counts;
  int64_t below = 0, above = 0;  // finite values < lo, > hi; NaN is in neither
};
struct ChannelsResult {
  std::vector<std::optional<double>> mean, std;
  std::vector<double> zero_fraction;
};
struct ClampResult { double lo = 0, hi = 0; int64_t changed = 0; };
struct ClipNormResult { double max_norm = 0, norm = 0, scale = 1; };
struct CaptureResult { Tensor tensor; };  // host copy

using ProbeResult = std::variant<StatsResult, ZerosResult, NonFiniteResult, HistResult,
                                 ChannelsResult, ClampResult, ClipNormResult, CaptureResult>;

}  // namespace hookrt
