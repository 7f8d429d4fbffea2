// The observing probes on the host: stats, nonfinite, zeros, channels, hist. Straight loops in
// double, written for clarity: this is the reference the CUDA kernels are checked against.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/probes.h"

namespace hookrt::cpu {

namespace {

// Adds a non-finite value to the NaN/+Inf/-Inf counts.
template <class Counts>
void count_nonfinite_value(float value, Counts& counts) {
  if (std::isnan(value))
    ++counts.nan;
  else if (value > 0)
    ++counts.posinf;
  else
    ++counts.neginf;
}

// Unbiased standard deviation about `mean` of the finite values among x[0, n), given how many
// there are: sum((x - mean)^2) / (count - 1), as torch.std. A second pass about the mean keeps it
// accurate when the mean is large against the spread.
std::optional<double> unbiased_std(const float* x, int64_t n, int64_t count, double mean) {
  if (count < 2) return std::nullopt;
  double squares = 0;
  for (int64_t i = 0; i < n; ++i)
    if (std::isfinite(x[i])) {
      const double d = static_cast<double>(x[i]) - mean;
      squares += d * d;
    }
  return std::sqrt(squares / static_cast<double>(count - 1));
}

}  // namespace

StatsResult compute_stats(const Tensor& tensor) {
  const float* x = probe_data(tensor, "stats");
  const int64_t n = tensor.numel();
  StatsResult stats;
  double sum = 0, abs_sum = 0, square_sum = 0;
  float lowest = std::numeric_limits<float>::infinity();
  float highest = -lowest, abs_highest = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (!std::isfinite(v)) {
      count_nonfinite_value(v, stats);
      continue;
    }
    ++stats.count;
    sum += v;
    abs_sum += std::fabs(v);
    square_sum += static_cast<double>(v) * v;
    lowest = std::min(lowest, v);
    highest = std::max(highest, v);
    abs_highest = std::max(abs_highest, std::fabs(v));
  }
  stats.l1 = abs_sum;
  stats.l2 = std::sqrt(square_sum);
  if (stats.count == 0) return stats;
  stats.min = lowest;
  stats.max = highest;
  stats.abs_max = abs_highest;
  stats.mean = sum / static_cast<double>(stats.count);
  stats.std = unbiased_std(x, n, stats.count, *stats.mean);
  return stats;
}

NonFiniteResult count_nonfinite(const Tensor& tensor) {
  const float* x = probe_data(tensor, "nonfinite");
  const int64_t n = tensor.numel();
  NonFiniteResult counts;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) count_nonfinite_value(x[i], counts);
  return counts;
}

ZerosResult compute_zeros(const Tensor& tensor, int channel_axis) {
  const float* x = probe_data(tensor, "zeros");
  const ChannelLayout layout = channel_layout(tensor.shape(), channel_axis);
  const int64_t n = tensor.numel();
  ZerosResult result;
  std::vector<char> alive(static_cast<size_t>(layout.channels), 0);  // some value > 0 (or NaN)
  for (int64_t o = 0; o < layout.outer; ++o)
    for (int64_t c = 0; c < layout.channels; ++c) {
      const float* row = x + (o * layout.channels + c) * layout.inner;
      for (int64_t i = 0; i < layout.inner; ++i) {
        if (row[i] == 0.0f) ++result.zeros;
        if (!(row[i] <= 0.0f)) alive[c] = 1;
      }
    }
  result.zero_fraction = n > 0 ? static_cast<double>(result.zeros) / static_cast<double>(n) : 0.0;
  result.channels = layout.channels;
  result.dead_channels = std::count(alive.begin(), alive.end(), 0);
  return result;
}

ChannelsResult compute_channels(const Tensor& tensor, int channel_axis) {
  const float* x = probe_data(tensor, "channels");
  const ChannelLayout layout = channel_layout(tensor.shape(), channel_axis);
  const size_t channels = static_cast<size_t>(layout.channels);
  std::vector<int64_t> finite(channels, 0), zeros(channels, 0);
  std::vector<double> sum(channels, 0.0), squares(channels, 0.0);
  const auto row = [&](int64_t o, size_t c) {
    return x + (o * layout.channels + c) * layout.inner;
  };

  for (int64_t o = 0; o < layout.outer; ++o)
    for (size_t c = 0; c < channels; ++c)
      for (int64_t i = 0; i < layout.inner; ++i) {
        const float v = row(o, c)[i];
        if (v == 0.0f) ++zeros[c];
        if (!std::isfinite(v)) continue;
        ++finite[c];
        sum[c] += v;
      }

  ChannelsResult result;
  result.mean.resize(channels);
  result.std.resize(channels);
  result.zero_fraction.resize(channels);
  const int64_t per_channel = layout.outer * layout.inner;
  for (size_t c = 0; c < channels; ++c) {
    result.zero_fraction[c] = per_channel > 0 ? static_cast<double>(zeros[c]) / per_channel : 0.0;
    if (finite[c] > 0) result.mean[c] = sum[c] / static_cast<double>(finite[c]);
  }

  // Second pass about each channel's mean, as in unbiased_std.
  for (int64_t o = 0; o < layout.outer; ++o)
    for (size_t c = 0; c < channels; ++c) {
      if (finite[c] < 2) continue;
      for (int64_t i = 0; i < layout.inner; ++i) {
        const float v = row(o, c)[i];
        if (!std::isfinite(v)) continue;
        const double d = static_cast<double>(v) - *result.mean[c];
        squares[c] += d * d;
      }
    }
  for (size_t c = 0; c < channels; ++c)
    if (finite[c] >= 2) result.std[c] = std::sqrt(squares[c] / static_cast<double>(finite[c] - 1));
  return result;
}

int hist_bin(double value, const probes::Hist& hist) {
  const double position = std::floor((value - hist.lo) * hist.bins / (hist.hi - hist.lo));
  return static_cast<int>(std::clamp(position, 0.0, static_cast<double>(hist.bins - 1)));
}

HistResult compute_hist(const Tensor& tensor, const probes::Hist& hist) {
  const float* x = probe_data(tensor, "hist");
  const int64_t n = tensor.numel();
  // parse_probe checks these; a Hist built in code reaches here unchecked.
  if (hist.bins < 1 || !(hist.lo < hist.hi) || !std::isfinite(hist.hi - hist.lo))
    throw Error("probe hist: needs bins >= 1 and finite lo < hi, got " + std::to_string(hist.bins) +
                    " bins over [" + std::to_string(hist.lo) + ", " + std::to_string(hist.hi) + "]",
                ErrorKind::BadInput);
  HistResult result;
  result.bins = hist.bins;
  result.lo = hist.lo;
  result.hi = hist.hi;
  result.counts.assign(static_cast<size_t>(hist.bins), 0);
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    if (std::isnan(v)) continue;
    if (v < hist.lo)
      ++result.below;
    else if (v > hist.hi)
      ++result.above;
    else
      ++result.counts[static_cast<size_t>(hist_bin(v, hist))];
  }
  return result;
}

}  // namespace hookrt::cpu
