#pragma once
// Parity comparisons: one hooked ResNet18 step (capture,stats on every event of every module and every
// parameter) on a backend, compared firing by firing with PyTorch's (tools/make_reference.py) or with
// another backend's step. Shared by the CPU parity test and the GPU parity test.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "hookrt/backend.h"
#include "hookrt/executor.h"
#include "hookrt/model.h"
#include "hookrt/probes.h"
#include "support/reference_data.h"
#include "support/temp_dir.h"

namespace hookrt::testing {

// The case every parity test runs, from HOOKRT_PARITY_* or the defaults (see parity.cpp).
ReferenceOptions parity_reference_options(Mode mode);

// ---- tolerances ---------------------------------------------------------------------------------
// Tensors are compared element by element as |hookrt - torch| <= atol + rtol * |torch| (llm.c's
// check), with
//   rtol = 1e-4: DESIGN.md's bound for the CPU path against PyTorch over a whole ResNet18 step;
//   atol = 1e-4 * max|torch| over the tensor. hookrt and PyTorch add the same terms in different
//     orders (im2col + BLAS against oneDNN, other per-thread partial sums), so each sum carries a
//     float32 rounding error of order sqrt(K) * 6e-8 times the sum of its |terms| -- not times its
//     result: an element where the terms cancel to ~0 keeps the absolute error of its neighbours,
//     and a bound relative to the element alone would fail on it (BatchNorm's grad_input in train
//     mode is all cancellation). Errors compound through 20 layers forward and again backward;
//     1e-4 of the tensor's scale leaves room for ~1000 such roundings, while a real bug (a wrong
//     stride, a missed term, a weight off by 0.1%, see ComparisonCatchesAConvWeightScaledBy1001)
//     moves elements by 1e-3 of the scale or more.
constexpr double kRtol = 1e-4;
constexpr double kAtolPerScale = 1e-4;
// Stats are float64 sums: mean, std, l1, l2 and abs_max must agree to 1e-4 relative (the tensors
// they describe differ by the noise above). `mean` is relative to mean |x| = l1 / count, because
// some means cancel to ~0 (BatchNorm grad_input: ~1e-13 against a mean |x| of ~1e-3).
constexpr double kStatsRtol = 1e-4;
constexpr size_t kFailuresShown = 20;

struct Tolerance {
  double atol = 0;
  double rtol = kRtol;
  // When defined: one float32 ulp of |rounding_of[i]| is added to element i's bound (for
  // differences of two float32 values, each rounded once).
  Tensor rounding_of;
};

// A host tensor's elements read as double: F32 and F64 in place, other dtypes through a copy.
class Values {
 public:
  explicit Values(const Tensor& t) {
    if (t.dtype() == DType::F32) {
      f32_ = t.data<float>();
    } else {
      f64_tensor_ = t.dtype() == DType::F64 ? t : t.to(DType::F64);
      f64_ = f64_tensor_.data<double>();
    }
  }
  double operator[](int64_t i) const { return f32_ ? f32_[i] : f64_[i]; }

 private:
  const float* f32_ = nullptr;
  const double* f64_ = nullptr;
  Tensor f64_tensor_;
};


double max_abs(const Tensor& t);                      // over the finite elements
Tensor difference(const Tensor& a, const Tensor& b);  // a - b in float64 (exact for float32 operands)
Tolerance scaled_tolerance(const Tensor& want);
std::string index_string(const Shape& shape, int64_t flat);
std::string fmt(double value);

// The result of one element-by-element comparison and its worst element.
struct ElementsCheck {
  int64_t failing = 0;
  int64_t worst = -1;      // the element with the largest |got - want| / bound
  double worst_ratio = 0;  // > 1 past its bound; infinity where the bound is 0 or a value is NaN
  double got = 0, want = 0;
};
// |got - want| / bound: > 1 past the bound; infinity where the bound is 0 or a value is NaN.
double bound_ratio(double got, double want, double bound);
ElementsCheck check_elements(const Tensor& got, const Tensor& want, const Tolerance& tolerance);

// What a comparison found: the failing keys with their worst element, and the worst ratio seen
// overall (how much headroom the tolerances leave).
class ParityReport {
 public:
  explicit ParityReport(std::string what) : what_(std::move(what)) {}

  void fail(const std::string& key, const std::string& why) {
    failures_.push_back({key, why});
    failing_keys_.insert(key);
  }
  // Compares one tensor; records a failure naming the worst element.
  void check_tensor(const std::string& key, const Tensor& got, const Tensor& want,
                    const Tolerance& tolerance) {
    if (got.shape() != want.shape()) {
      fail(key, "shape " + shape_string(got.shape()) + ", torch " + shape_string(want.shape()));
      return;
    }
    const ElementsCheck check = check_elements(got, want, tolerance);
    passed(key, check.worst_ratio);
    if (check.failing == 0) return;
    fail(key, std::to_string(check.failing) + " of " + std::to_string(want.numel()) +
                  " elements off; worst at " + index_string(want.shape(), check.worst) +
                  ": hookrt " + fmt(check.got) + ", torch " + fmt(check.want) + " (|diff| " +
                  fmt(std::abs(check.got - check.want)) + " is " + fmt(check.worst_ratio) +
                  "x the bound; atol " + fmt(tolerance.atol) + ", rtol " + fmt(tolerance.rtol) +
                  ")");
  }
  void check_number(const std::string& key, const std::string& field, double got, double want,
                    double bound) {
    const double ratio = bound_ratio(got, want, bound);
    passed(key, ratio);
    if (ratio <= 1) return;
    fail(key, field + ": hookrt " + fmt(got) + ", torch " + fmt(want) + " (|diff| " +
                  fmt(std::abs(got - want)) + " > " + fmt(bound) + ")");
  }

  // Counts a check and keeps the closest call to its bound.
  void passed(const std::string& key, double ratio = 0) {
    ++checked_;
    if (ratio <= worst_ratio_) return;
    worst_ratio_ = ratio;
    worst_key_ = key;
  }

  bool ok() const { return failures_.empty(); }
  bool failed(const std::string& key) const { return failing_keys_.count(key) > 0; }
  size_t checked() const { return checked_; }
  size_t failing_keys() const { return failing_keys_.size(); }

  // The first kFailuresShown failures, one per line, and how to reproduce the reference.
  std::string describe(const std::string& command) const {
    std::ostringstream out;
    out << what_ << ": " << failures_.size() << " failures in " << failing_keys_.size() << " keys ("
        << checked_ << " checks)\n";
    for (size_t i = 0; i < failures_.size() && i < kFailuresShown; ++i)
      out << "  " << failures_[i].first << ": " << failures_[i].second << "\n";
    if (failures_.size() > kFailuresShown)
      out << "  ... and " << failures_.size() - kFailuresShown << " more\n";
    out << "reference: " << command;
    return out.str();
  }
  std::string headroom() const {
    const std::string passed = what_ + ": " + std::to_string(checked_) + " checks pass";
    return worst_key_.empty()
               ? passed
               : passed + "; worst |diff|/bound " + fmt(worst_ratio_) + " at " + worst_key_;
  }

 private:
  std::string what_;
  std::vector<std::pair<std::string, std::string>> failures_;
  std::set<std::string> failing_keys_;
  size_t checked_ = 0;
  double worst_ratio_ = 0;
  std::string worst_key_;
};


// ---- hookrt's side ------------------------------------------------------------------------------

struct HookedStep {
  std::map<std::string, Tensor> captures;  // by ProbeRecord::capture_key()
  std::map<std::string, StatsResult> stats;
  std::map<std::string, Shape> shapes;     // the shape each record names
  std::vector<std::string> repeated_keys;  // a key delivered twice
  std::vector<std::string> firing_order;   // every record's key, in delivery order
  StepResult result;
  std::map<std::string, Tensor> state_after;  // model state after the step (executor.sync_model())
};

void collect(const ProbeRecord& record, HookedStep& step);
using BackendFactory = std::function<std::unique_ptr<Backend>()>;
// One step with `capture,stats` on every event of every module and every parameter, on the backend
// `make_backend` gives, its activations in `format` (ExecutorOptions::memory_format).
HookedStep run_hooked_step(const ReferenceData& reference, const TensorMap& weights,
                           const BackendFactory& make_backend, MemoryFormat format = MemoryFormat::Contiguous);

// ---- comparisons --------------------------------------------------------------------------------

// The same hook firings as PyTorch: every key it recorded and no other, each once, in its order.
ParityReport compare_firings(const ReferenceStep& reference, const HookedStep& hooked);
// Every hook tensor, then the logits and the loss.
ParityReport compare_tensors(const ReferenceStep& reference, const HookedStep& hooked);
const Tensor& state_before(const ReferenceData& reference, const std::string& key);
// Train mode: the state after one SGD step, and the step itself (after - before).
ParityReport compare_state_after(const ReferenceData& reference, const HookedStep& hooked);
// A stats record's finite, NaN and infinity counts, exactly.
void check_stats_counts(const std::string& key, const StatsResult& got, const StatsResult& want,
                        ParityReport& report);
// Every stats record against PyTorch's float64 statistics of the same tensor.
ParityReport compare_stats(const ReferenceStep& reference, const HookedStep& hooked);

// ---- fixtures -----------------------------------------------------------------------------------
// Each fixture makes its own mode's reference once per test program, and hookrt's step on first
// use: ctest runs every test case as a program of its own, so a test pays only for what it checks.
// `Side` says which backend runs hookrt's step: a struct with make_backend() and unavailable() (why
// that backend cannot run here, "" when it can; the fixture then skips without running PyTorch).

struct CpuSide {
  static std::unique_ptr<Backend> make_backend() { return make_cpu_backend(); }
  static std::string unavailable() { return ""; }
  static constexpr const char* kName = "cpu";
};

struct ModeData {
  std::optional<ReferenceData> reference;
  std::optional<HookedStep> hooked;
  std::string error;  // why the reference or the step could not be made
  std::string skip;   // why the backend cannot run here
};

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A side's step runs in its kMemoryFormat where it names one, else NCHW.
template <class Side>
constexpr MemoryFormat memory_format_of() {
  if constexpr (requires { Side::kMemoryFormat; }) {
    return Side::kMemoryFormat;
  } else {
    return MemoryFormat::Contiguous;
  }
}

template <Mode kMode, class Side>
class ModeParity : public ::testing::Test {
 protected:
  static ModeData& data() {
    static ModeData d;
    return d;
  }
  static void SetUpTestSuite() {
    ModeData& d = data();
    d.skip = Side::unavailable();
    if (!d.skip.empty()) return;
    try {
      const TempDir dir;  // everything is read into memory, so the files go at once
      d.reference = make_reference_data(HOOKRT_SOURCE_DIR "/tools/make_reference.py", dir.path().string(),
                                        parity_reference_options(kMode));
      std::cout << "[ parity   ] " << mode_name(kMode) << ": PyTorch reference made in " << fmt(d.reference->seconds)
                << " s\n";
    } catch (const std::exception& e) {
      d.error = e.what();
    }
  }
  static void TearDownTestSuite() { data() = ModeData(); }
  void SetUp() override {
    if (!data().skip.empty()) GTEST_SKIP() << data().skip;
    if (!data().error.empty()) FAIL() << "cannot run the " << mode_name(kMode) << " parity step: " << data().error;
  }
  static const ReferenceData& reference() { return *data().reference; }
  static const HookedStep& hooked() {
    ModeData& d = data();
    if (!d.hooked) {
      const auto started = std::chrono::steady_clock::now();
      d.hooked = run_hooked_step(*d.reference, d.reference->weights, Side::make_backend, memory_format_of<Side>());
      std::cout << "[ parity   ] " << mode_name(kMode) << ": hookrt's hooked step on " << Side::kName << " took "
                << fmt(seconds_since(started)) << " s\n";
    }
    return *d.hooked;
  }
};

inline constexpr const char* kToleranceReason =
    "tolerance per element: |hookrt - torch| <= 1e-4 * max|torch over the tensor| + 1e-4 * |torch| "
    "(fp32 summation-order noise through a whole ResNet18 step; DESIGN.md's 1e-4)";

inline void expect_pass(const ParityReport& report, const ReferenceData& reference) {
  EXPECT_TRUE(report.ok()) << report.describe(reference.command) << "\n" << kToleranceReason;
  EXPECT_GT(report.checked(), 0u) << "nothing was compared";
  if (report.ok())
    std::cout << "[ parity   ] " << mode_name(reference.step.mode) << " " << report.headroom() << "\n";
}

}  // namespace hookrt::testing
