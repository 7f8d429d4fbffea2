// The observing probes on the host: stats, nonfinite, zeros, channels, hist. Loops in double,
// written for clarity: this is the reference the CUDA kernels are checked against. stats,
// nonfinite and zeros, which hooks put on every tensor, reduce fixed chunks of the tensor in
// parallel (OpenMP) and combine the chunks in order, so their results do not depend on the
// number of threads.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/probe_values.h"
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

// Elements per chunk: large enough that a chunk's loop dwarfs the parallel-for's overhead.
constexpr int64_t kChunk = int64_t{1} << 15;

// reduce(begin, end) over the fixed chunks of [0, n), in parallel; the partials in chunk order.
template <class Partial, class Reduce>
std::vector<Partial> chunk_partials(int64_t n, Reduce reduce) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<Partial> partials(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c)
    partials[static_cast<size_t>(c)] = reduce(c * kChunk, std::min(n, (c + 1) * kChunk));
  return partials;
}

// What stats needs from one chunk's finite values, and its non-finite counts.
struct StatsPartial {
  int64_t count = 0, nan = 0, posinf = 0, neginf = 0;
  double sum = 0, abs_sum = 0, square_sum = 0;
  float lowest = std::numeric_limits<float>::infinity();
  float highest = -std::numeric_limits<float>::infinity();
  float abs_highest = 0;
};

StatsPartial stats_partial(const float* x, int64_t begin, int64_t end) {
  StatsPartial p;
  for (int64_t i = begin; i < end; ++i) {
    const float v = x[i];
    if (!std::isfinite(v)) {
      count_nonfinite_value(v, p);
      continue;
    }
    ++p.count;
    p.sum += v;
    p.abs_sum += std::fabs(v);
    p.square_sum += static_cast<double>(v) * v;
    p.lowest = std::min(p.lowest, v);
    p.highest = std::max(p.highest, v);
    p.abs_highest = std::max(p.abs_highest, std::fabs(v));
  }
  return p;
}

// Unbiased standard deviation about `mean` of the finite values among x[0, n), given how many
// there are: sum((x - mean)^2) / (count - 1), as torch.std. A second pass about the mean keeps it
// accurate when the mean is large against the spread.
std::optional<double> unbiased_std(const float* x, int64_t n, int64_t count, double mean) {
  if (count < 2) return std::nullopt;
  const std::vector<double> partials = chunk_partials<double>(n, [&](int64_t begin, int64_t end) {
    double squares = 0;
    for (int64_t i = begin; i < end; ++i)
      if (std::isfinite(x[i])) {
        const double d = static_cast<double>(x[i]) - mean;
        squares += d * d;
      }
    return squares;
  });
  double squares = 0;
  for (const double part : partials) squares += part;
  return std::sqrt(squares / static_cast<double>(count - 1));
}

}  // namespace

StatsResult compute_stats(const Tensor& tensor) {
  const ProbeValues values(tensor, "stats");
  const float* x = values.data();
  const int64_t n = tensor.numel();
  StatsPartial total;
  for (const StatsPartial& p :
       chunk_partials<StatsPartial>(n, [x](int64_t begin, int64_t end) { return stats_partial(x, begin, end); })) {
    total.count += p.count;
    total.nan += p.nan;
    total.posinf += p.posinf;
    total.neginf += p.neginf;
    total.sum += p.sum;
    total.abs_sum += p.abs_sum;
    total.square_sum += p.square_sum;
    total.lowest = std::min(total.lowest, p.lowest);
    total.highest = std::max(total.highest, p.highest);
    total.abs_highest = std::max(total.abs_highest, p.abs_highest);
  }
  StatsResult stats;
  stats.count = total.count;
  stats.nan = total.nan;
  stats.posinf = total.posinf;
  stats.neginf = total.neginf;
  stats.l1 = total.abs_sum;
  stats.l2 = std::sqrt(total.square_sum);
  if (stats.count == 0) return stats;
  stats.min = total.lowest;
  stats.max = total.highest;
  stats.abs_max = total.abs_highest;
  stats.mean = total.sum / static_cast<double>(stats.count);
  stats.std = unbiased_std(x, n, stats.count, *stats.mean);
  return stats;
}

NonFiniteResult count_nonfinite(const Tensor& tensor) {
  const ProbeValues values(tensor, "nonfinite");
  const float* x = values.data();
  NonFiniteResult counts;
  for (const NonFiniteResult& p : chunk_partials<NonFiniteResult>(tensor.numel(), [x](int64_t begin, int64_t end) {
         NonFiniteResult part;
         for (int64_t i = begin; i < end; ++i)
           if (!std::isfinite(x[i])) count_nonfinite_value(x[i], part);
         return part;
       })) {
    counts.nan += p.nan;
    counts.posinf += p.posinf;
    counts.neginf += p.neginf;
  }
  return counts;
}

ZerosResult compute_zeros(const Tensor& tensor, int channel_axis) {
  const ProbeValues values(tensor, "zeros");
  const float* x = values.data();
  const ChannelLayout layout = channel_layout(tensor.shape(), channel_axis, tensor.memory_format());
  const int64_t n = tensor.numel();
  // Rows (o, c) of `inner` elements, in parallel: each row's zeros and whether some value in it
  // is > 0 (or NaN); then the channels alive in any row, in order.
  const int64_t rows = layout.outer * layout.channels;
  std::vector<int64_t> row_zeros(static_cast<size_t>(rows), 0);
  std::vector<char> row_alive(static_cast<size_t>(rows), 0);
#pragma omp parallel for schedule(static) if (n > kChunk)
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * layout.inner;
    int64_t zeros = 0;
    bool alive = false;
    for (int64_t i = 0; i < layout.inner; ++i) {
      if (row[i] == 0.0f) ++zeros;
      if (!(row[i] <= 0.0f)) alive = true;
    }
    row_zeros[static_cast<size_t>(r)] = zeros;
    row_alive[static_cast<size_t>(r)] = alive ? 1 : 0;
  }
  ZerosResult result;
  std::vector<char> alive(static_cast<size_t>(layout.channels), 0);
  for (int64_t r = 0; r < rows; ++r) {
    result.zeros += row_zeros[static_cast<size_t>(r)];
    if (row_alive[static_cast<size_t>(r)]) alive[static_cast<size_t>(r % layout.channels)] = 1;
  }
  result.zero_fraction = n > 0 ? static_cast<double>(result.zeros) / static_cast<double>(n) : 0.0;
  result.channels = layout.channels;
  result.dead_channels = std::count(alive.begin(), alive.end(), 0);
  return result;
}

ChannelsResult compute_channels(const Tensor& tensor, int channel_axis) {
  const ProbeValues values(tensor, "channels");
  const float* x = values.data();
  const ChannelLayout layout = channel_layout(tensor.shape(), channel_axis, tensor.memory_format());
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
  const ProbeValues values(tensor, "hist");
  const float* x = values.data();
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
