#pragma once
// A float64 central-difference gradient checker. Perturb one element of a tensor by ±step, rerun
// a scalar function, and compare (f(t+h) - f(t-h)) / 2h with the analytic gradient. Used for
// every op's backward and for whole-network checks (where a seeded sample of elements is enough).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "hookrt/tensor.h"

namespace hookrt::testing {

struct FiniteDiffOptions {
  double step = 1e-6;        // h; central differences have O(h²) truncation error
  int64_t max_elements = 0;  // 0: every element; else this many, drawn without replacement by `seed`
  uint64_t seed = 1;
};

// The numeric derivative of f at each checked element of `t` (host F64, restored after each probe).
struct NumericGradient {
  std::vector<int64_t> indices;  // flat indices into t, ascending
  std::vector<double> values;    // d f / d t[indices[i]]
};

NumericGradient numeric_gradient(const std::function<double()>& f, Tensor& t,
                                 const FiniteDiffOptions& options = {});

struct GradientComparison {
  bool ok = true;
  int64_t checked = 0;
  int64_t failures = 0;
  double worst_excess = 0;  // largest |analytic - numeric| - (atol + rtol·|numeric|)
  std::string message;      // the worst element, or "" when ok
};

// Holds analytic (any float dtype, t's shape) to numeric element by element:
// |analytic - numeric| <= atol + rtol * |numeric|.
GradientComparison compare_gradient(const Tensor& analytic, const NumericGradient& numeric, double atol,
                                    double rtol);

// Σ y·weights in double: a scalar loss whose gradient with respect to y is `weights`.
double weighted_sum(const Tensor& y, const Tensor& weights);

}  // namespace hookrt::testing
