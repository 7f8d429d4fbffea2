#pragma once
// The shapes the GPU op tests run an op on, shared by the NCHW tests (test_gpu_ops_*.cpp) and the
// channels-last ones (test_gpu_channels_last.cpp): a convolution's, a max pool's with the values
// that stress its tie and NaN rules, and a global average pool's.
#include <cmath>
#include <cstdint>
#include <ostream>
#include <string>

#include "hookrt/backend.h"
#include "support/gpu_ops.h"

namespace hookrt::testing::gpu_ops {

struct ConvCase {
  std::string name;
  int64_t n, c, h, w, k, r, s;
  int stride, padding;
  Shape x() const { return {n, c, h, w}; }
  Shape weight() const { return {k, c, r, s}; }
  Shape y() const { return {n, k, (h + 2 * padding - r) / stride + 1, (w + 2 * padding - s) / stride + 1}; }
  Conv2dGeometry geometry() const { return {.stride = stride, .padding = padding}; }
};
inline void PrintTo(const ConvCase& c, std::ostream* os) { *os << c.name; }

enum class PoolValues {
  Random,                  // uniform: no ties
  Ties,                    // integers 0-2: most windows hold several maxima
  TiesAndNaN,              // ties and 1 in 10 NaN
  MostlyNegativeInfinity,  // 85% -inf: some windows hold nothing else
};

struct MaxPoolCase {
  std::string name;
  Shape shape;
  Pool2dGeometry geometry;
  PoolValues values;
  Shape y() const {
    const auto out = [&](int64_t size) { return (size + 2 * geometry.padding - geometry.kernel) / geometry.stride + 1; };
    return {shape[0], shape[1], out(shape[2]), out(shape[3])};
  }
};
inline void PrintTo(const MaxPoolCase& c, std::ostream* os) { *os << c.name; }

// Ties put several maxima in a window, so the first in scan order must win; NaN must win wherever
// it is; a window of -inf reports its first valid element.
inline Tensor maxpool_input(const MaxPoolCase& c, uint64_t seed) {
  if (c.values == PoolValues::Random) return uniform(c.shape, seed);
  Tensor x = small_integers(c.shape, seed, 3);
  if (c.values == PoolValues::TiesAndNaN) sprinkle(x, seed + 1, 0.1, NAN);
  if (c.values == PoolValues::MostlyNegativeInfinity) sprinkle(x, seed + 1, 0.85, -INFINITY);
  return x;
}

struct AvgPoolCase {
  std::string name;
  Shape shape;
};
inline void PrintTo(const AvgPoolCase& c, std::ostream* os) { *os << c.name; }

}  // namespace hookrt::testing::gpu_ops
