#pragma once
// Probe results compared the way the probe tests need: a ProbeList from its command-line text,
// seeded tensors full of the values probes must get right, and result-by-result comparisons
// (counts, extrema and histograms exactly; sums, means and stds within a relative bound).
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "hookrt/probes.h"
#include "hookrt/tensor.h"

namespace hookrt::testing {

inline constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
inline constexpr float kInf = std::numeric_limits<float>::infinity();

// Probe lists that test the order rule: a changing probe changes what the observers after it see,
// never what those before it saw.
inline const std::vector<std::string> kChangingProbeOrders = {
    "clamp=-1:1,stats",
    "stats,clamp=-1:1",
    "clipnorm=2,stats",
    "stats,clipnorm=2",
    "clamp=-0.5:0.5,clipnorm=1,stats,hist=10:-1:1",
    "clipnorm=1,clamp=-0.01:0.01,stats,zeros",
    "clipnorm=3,clipnorm=0.5,stats",
    "stats,clamp=-1:1,stats,clipnorm=1,stats",
    "capture,clamp=-1:1,capture,capture,stats,clipnorm=0.1,capture",
    "stats,zeros,nonfinite,hist=16:-3:3,channels,clamp=-1:1,stats,zeros,nonfinite,hist=16:-3:3,channels,capture",
};

// "stats,zeros,hist=8:-1:1" as a ProbeList.
ProbeList parse_list(const std::string& text);
// Seeded normal values (offset + spread * N(0, 1)) with NaN, +-Inf, 0, -0 and the clamp/hist
// bounds sprinkled in.
Tensor nasty_tensor(const Shape& shape, uint64_t seed, double offset = 0.0, double spread = 1.5);
// nasty_tensor with its NaN and infinities replaced by zeros: a tensor whose norm, and so whose
// clipnorm scale, is finite.
Tensor finite_tensor(const Shape& shape, uint64_t seed, double offset = 0.0, double spread = 1.5);
// |got - want| <= rel * (|want| + scale); NaN matches NaN and infinities must be equal.
void expect_near_rel(double got, double want, double scale, double rel, const std::string& what);
void expect_same_optional(const std::optional<double>& got, const std::optional<double>& want, double scale,
                          double rel, const std::string& what);
// Same values bit for bit where rel is 0 (NaN matching NaN), else within rel of each other, for
// F32, F16 and BF16; tensors of other dtypes (counters) bit for bit.
// How far a GPU tensor after a clipnorm may lie from the CPU engine's, relative: on F32, 1e-6 (the
// scale is a float from the norm and may round one ulp apart when the GPU's norm, summed in another
// order, lands on a float boundary); on F16 and BF16, 0 (the scale is rounded to the dtype from
// that float, so the two differ only where it lands on the dtype's rounding boundary as well).
double clipnorm_tensor_rel(DType dtype);
void expect_same_floats(const Tensor& got, const Tensor& want, double rel, const std::string& what);
// Counts, extrema and histograms exactly; sums, means and stds within rel (a mean relative to the
// mean absolute value, since means cancel); clipnorm scales and captures within tensor_rel.
void expect_same_results(const std::vector<ProbeResult>& got, const std::vector<ProbeResult>& want, double rel,
                         double tensor_rel, const std::string& what);

}  // namespace hookrt::testing
