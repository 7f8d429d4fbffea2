#include "support/finite_diff.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "random.h"

namespace hookrt::testing {
namespace {

// `count` distinct indices in [0, n), ascending, by a seeded partial Fisher-Yates shuffle.
std::vector<int64_t> sample_indices(int64_t n, int64_t count, uint64_t seed) {
  std::vector<int64_t> all(static_cast<size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  if (count <= 0 || count >= n) return all;
  Pcg32 rng(seed);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t j = i + static_cast<int64_t>(rng.below(static_cast<uint32_t>(n - i)));
    std::swap(all[static_cast<size_t>(i)], all[static_cast<size_t>(j)]);
  }
  all.resize(static_cast<size_t>(count));
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace

NumericGradient numeric_gradient(const std::function<double()>& f, Tensor& t, const FiniteDiffOptions& options) {
  if (!t.defined() || t.dtype() != DType::F64 || t.device() != Device::CPU)
    throw Error("numeric_gradient: the perturbed tensor must be a host F64 tensor (finite differences need float64)");
  NumericGradient gradient;
  gradient.indices = sample_indices(t.numel(), options.max_elements, options.seed);
  double* data = t.data<double>();
  for (int64_t index : gradient.indices) {
    const double original = data[index];
    data[index] = original + options.step;
    const double plus = f();
    data[index] = original - options.step;
    const double minus = f();
    data[index] = original;
    gradient.values.push_back((plus - minus) / (2 * options.step));
  }
  return gradient;
}

GradientComparison compare_gradient(const Tensor& analytic, const NumericGradient& numeric, double atol, double rtol) {
  GradientComparison result;
  result.checked = static_cast<int64_t>(numeric.indices.size());
  double worst = -INFINITY;
  for (size_t i = 0; i < numeric.indices.size(); ++i) {
    const int64_t index = numeric.indices[i];
    const double a = analytic.item(index), n = numeric.values[i];
    const double excess = std::fabs(a - n) - (atol + rtol * std::fabs(n));
    const bool bad = !(excess <= 0);  // NaN fails too
    result.failures += bad;
    if (bad && (std::isnan(excess) || excess > worst)) {
      worst = std::isnan(excess) ? INFINITY : excess;
      std::ostringstream message;
      message.precision(12);
      message << "element " << index << ": analytic " << a << " vs numeric " << n << " (tolerance " << atol
              << " + " << rtol << "·|numeric|)";
      result.message = message.str();
    }
  }
  result.ok = result.failures == 0;
  result.worst_excess = result.ok ? 0 : worst;
  if (!result.ok) result.message = std::to_string(result.failures) + " of " + std::to_string(result.checked) +
                                   " elements differ; worst " + result.message;
  return result;
}

double weighted_sum(const Tensor& y, const Tensor& weights) {
  if (y.numel() != weights.numel())
    throw Error("weighted_sum: " + shape_string(y.shape()) + " and " + shape_string(weights.shape()) + " differ in size");
  double sum = 0;
  if (y.dtype() == DType::F64 && weights.dtype() == DType::F64) {  // the common case, without item()'s dispatch
    const double* a = y.data<double>();
    const double* b = weights.data<double>();
    for (int64_t i = 0; i < y.numel(); ++i) sum += a[i] * b[i];
    return sum;
  }
  for (int64_t i = 0; i < y.numel(); ++i) sum += y.item(i) * weights.item(i);
  return sum;
}

}  // namespace hookrt::testing
