// Probe planning, slot decoding and the host reference of the fused probe kernels (see
// probe_plan.h).
#include "probe_plan.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <variant>

#include "cpu/probe_values.h"
#include "cpu/probes.h"
#include "hookrt/error.h"

namespace hookrt {

bool PlannedPass::changes_tensor() const {
  return std::any_of(ops.begin(), ops.end(), [](const PlannedOp& op) {
    return op.kind == PlannedOpKind::Clamp || op.kind == PlannedOpKind::ClipNorm;
  });
}

bool PlannedPass::per_channel() const {
  return std::any_of(ops.begin(), ops.end(), [](const PlannedOp& op) { return op.kind == PlannedOpKind::Channels; });
}

namespace {

// The slot entries of one op on a layout with `channels` channels.
int64_t slot_entries(const PlannedOp& op, int64_t channels) {
  switch (op.kind) {
    case PlannedOpKind::Clamp: return probe_slot::kClampSize;
    case PlannedOpKind::ClipNorm: return probe_slot::kClipNormSize;
    case PlannedOpKind::Stats: return probe_slot::kStatsSize;
    case PlannedOpKind::NonFinite: return probe_slot::kNonFiniteSize;
    case PlannedOpKind::Zeros: return probe_slot::kZerosSize;
    case PlannedOpKind::Hist: return probe_slot::kHistCounts + op.bins;
    case PlannedOpKind::Channels: return probe_slot::kChannelsArrays * channels;
  }
  return 0;
}

// The op a probe other than capture becomes.
struct MakeOp {
  PlannedOp operator()(const probes::Stats&) const { return {.kind = PlannedOpKind::Stats}; }
  PlannedOp operator()(const probes::Zeros&) const { return {.kind = PlannedOpKind::Zeros}; }
  PlannedOp operator()(const probes::NonFinite& p) const {
    return {.kind = PlannedOpKind::NonFinite,
            .halt_on_nonfinite = p.policy == probes::NonFinitePolicy::Halt};
  }
  PlannedOp operator()(const probes::Hist& p) const {
    // The same check and words as cpu::compute_hist, made before any probe has run.
    if (p.bins < 1 || !(p.lo < p.hi) || !std::isfinite(p.hi - p.lo))
      throw Error("probe hist: needs bins >= 1 and finite lo < hi, got " + std::to_string(p.bins) +
                      " bins over [" + std::to_string(p.lo) + ", " + std::to_string(p.hi) + "]",
                  ErrorKind::BadInput);
    return {.kind = PlannedOpKind::Hist, .bins = p.bins, .hist_lo = p.lo, .hist_hi = p.hi};
  }
  PlannedOp operator()(const probes::Channels&) const { return {.kind = PlannedOpKind::Channels}; }
  PlannedOp operator()(const probes::Clamp& p) const {
    return {.kind = PlannedOpKind::Clamp,
            .clamp_lo = p.lo, .clamp_hi = p.hi};
  }
  PlannedOp operator()(const probes::ClipNorm& p) const {
    return {.kind = PlannedOpKind::ClipNorm, .max_norm = p.max_norm};
  }
  PlannedOp operator()(const probes::Capture&) const { return {}; }  // never asked: see plan_probes
};

}  // namespace

ProbePlan plan_probes(const ProbeList& probes, const Shape& shape, MemoryFormat format, const ProbeRunOptions& options) {
  ProbePlan plan;
  plan.numel = shape_numel(shape);
  const cpu::ChannelLayout layout = cpu::channel_layout(shape, options.channel_axis, format);
  plan.outer = layout.outer;
  plan.channels = layout.channels;
  plan.inner = layout.inner;
  plan.probe_count = probes.size();

  PlannedPass current;
  const auto close_pass = [&] {
    plan.passes.push_back(std::move(current));
    current = PlannedPass{};
  };
  for (size_t index = 0; index < probes.size(); ++index) {
    if (std::holds_alternative<probes::Capture>(probes[index])) {
      // Nothing has changed the tensor since the last pass ended: its copy serves this capture.
      if (current.ops.empty() && !plan.passes.empty()) {
        plan.passes.back().captures.push_back(index);
        continue;
      }
      current.captures.push_back(index);
      close_pass();
      continue;
    }
    if (current.ops.size() == kMaxOpsPerPass) close_pass();
    PlannedOp op = std::visit(MakeOp{}, probes[index]);
    op.probe = index;
    op.slot = plan.slot_size;
    plan.slot_size += slot_entries(op, plan.channels);
    if (op.kind == PlannedOpKind::Clamp || op.kind == PlannedOpKind::ClipNorm) plan.changes_tensor = true;
    current.ops.push_back(op);
  }
  if (!current.ops.empty()) close_pass();
  return plan;
}

// ---- decoding -----------------------------------------------------------------------------------

namespace {

// Entry `index` of the slot; decode_probe_slot checked the slot's size against the plan, so a
// failure here is a planning bug.
double slot_entry(std::span<const double> slot, int64_t index) {
  if (index < 0 || static_cast<size_t>(index) >= slot.size())
    throw Error("decode_probe_slot: entry " + std::to_string(index) + " is outside the slot of " +
                std::to_string(slot.size()));
  return slot[static_cast<size_t>(index)];
}

int64_t count_at(std::span<const double> slot, int64_t index) { return static_cast<int64_t>(slot_entry(slot, index)); }

// sqrt(M2 / (count - 1)): torch.std's unbiased estimate, defined from two values on.
std::optional<double> unbiased_std(int64_t count, double m2) {
  if (count < 2) return std::nullopt;
  return std::sqrt(m2 / static_cast<double>(count - 1));
}

ProbeResult decode_op(const ProbePlan& plan, const PlannedOp& op, std::span<const double> slot) {
  namespace s = probe_slot;
  const auto at = [&](int64_t offset) { return slot_entry(slot, op.slot + offset); };
  switch (op.kind) {
    case PlannedOpKind::Stats: {
      StatsResult r;
      r.count = count_at(slot, op.slot + s::kStatsCount);
      r.nan = count_at(slot, op.slot + s::kStatsNan);
      r.posinf = count_at(slot, op.slot + s::kStatsPosInf);
      r.neginf = count_at(slot, op.slot + s::kStatsNegInf);
      r.l1 = at(s::kStatsL1);
      r.l2 = std::sqrt(at(s::kStatsSquares));
      if (r.count == 0) return r;  // nothing finite: every optional stays null, as compute_stats
      r.min = at(s::kStatsMin);
      r.max = at(s::kStatsMax);
      r.abs_max = at(s::kStatsAbsMax);
      r.mean = at(s::kStatsMean);
      r.std = unbiased_std(r.count, at(s::kStatsM2));
      return r;
    }
    case PlannedOpKind::NonFinite:
      return NonFiniteResult{count_at(slot, op.slot + s::kNonFiniteNan),
                             count_at(slot, op.slot + s::kNonFinitePosInf),
                             count_at(slot, op.slot + s::kNonFiniteNegInf)};
    case PlannedOpKind::Zeros: {
      ZerosResult r;
      r.zeros = count_at(slot, op.slot + s::kZerosZeros);
      r.zero_fraction = plan.numel > 0 ? static_cast<double>(r.zeros) / static_cast<double>(plan.numel) : 0.0;
      r.channels = plan.channels;
      r.dead_channels = count_at(slot, op.slot + s::kZerosDead);
      return r;
    }
    case PlannedOpKind::Hist: {
      HistResult r;
      r.bins = op.bins;
      r.lo = op.hist_lo;
      r.hi = op.hist_hi;
      r.below = count_at(slot, op.slot + s::kHistBelow);
      r.above = count_at(slot, op.slot + s::kHistAbove);
      r.counts.resize(static_cast<size_t>(op.bins));
      for (int b = 0; b < op.bins; ++b) r.counts[static_cast<size_t>(b)] = count_at(slot, op.slot + s::kHistCounts + b);
      return r;
    }
    case PlannedOpKind::Channels: {
      const int64_t channels = plan.channels;
      const int64_t per_channel = plan.outer * plan.inner;
      ChannelsResult r;
      r.mean.resize(static_cast<size_t>(channels));
      r.std.resize(static_cast<size_t>(channels));
      r.zero_fraction.resize(static_cast<size_t>(channels));
      for (int64_t c = 0; c < channels; ++c) {
        const size_t k = static_cast<size_t>(c);
        const int64_t count = count_at(slot, op.slot + s::kChannelsCount * channels + c);
        const double zeros = at(s::kChannelsZeros * channels + c);
        r.zero_fraction[k] = per_channel > 0 ? zeros / static_cast<double>(per_channel) : 0.0;
        if (count > 0) r.mean[k] = at(s::kChannelsMean * channels + c);
        r.std[k] = unbiased_std(count, at(s::kChannelsM2 * channels + c));
      }
      return r;
    }
    case PlannedOpKind::Clamp:
      return ClampResult{op.clamp_lo, op.clamp_hi, count_at(slot, op.slot + s::kClampChanged)};
    case PlannedOpKind::ClipNorm:
      return ClipNormResult{op.max_norm, at(s::kClipNormNorm), at(s::kClipNormScale)};
  }
  throw Error("decode_probe_slot: unknown op kind");
}

}  // namespace

DecodedProbes decode_probe_slot(const ProbePlan& plan, std::span<const double> slot,
                                const std::vector<Tensor>& captures) {
  if (static_cast<int64_t>(slot.size()) < plan.slot_size)
    throw Error("decode_probe_slot: the slot holds " + std::to_string(slot.size()) + " entries; the plan needs " +
                std::to_string(plan.slot_size));
  std::vector<std::optional<ProbeResult>> results(plan.probe_count);
  DecodedProbes decoded;
  size_t capture_index = 0;
  for (const PlannedPass& pass : plan.passes) {
    for (const PlannedOp& op : pass.ops) {
      results[op.probe] = decode_op(plan, op, slot);
      if (op.halt_on_nonfinite) {
        const auto& counts = std::get<NonFiniteResult>(*results[op.probe]);
        if (counts.nan + counts.posinf + counts.neginf > 0) decoded.halt = true;
      }
    }
    if (pass.captures.empty()) continue;
    if (capture_index >= captures.size())
      throw Error("decode_probe_slot: the plan has more passes with captures than the " +
                  std::to_string(captures.size()) + " captured tensors given");
    const Tensor& captured = captures[capture_index++];
    for (size_t k = 0; k < pass.captures.size(); ++k)
      results[pass.captures[k]] = CaptureResult{k == 0 ? captured : captured.clone()};
  }
  decoded.results.reserve(results.size());
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i]) throw Error("decode_probe_slot: probe " + std::to_string(i) + " has no planned result");
    decoded.results.push_back(std::move(*results[i]));
  }
  return decoded;
}

// ---- the host reference of the kernels ------------------------------------------------------------

namespace {

// Welford's running moments, one value at a time (the kernels sum values shifted by one of them,
// and merge per-channel rows with Chan's formula: the same moments up to rounding).
struct Moments {
  int64_t count = 0;
  double mean = 0, m2 = 0;
  void add(double value) {
    ++count;
    const double delta = value - mean;
    mean += delta / static_cast<double>(count);
    m2 += delta * (value - mean);
  }
};

// Everything one op accumulates over a pass; each kind uses its own part.
struct OpAccumulator {
  int64_t nan = 0, posinf = 0, neginf = 0, zeros = 0, changed = 0;
  Moments moments;  // finite values
  float lowest = std::numeric_limits<float>::infinity(), highest = -lowest, abs_highest = 0;
  double l1 = 0, squares = 0;
  std::vector<int64_t> hist;        // below, above, bins
  std::vector<Moments> channel;     // per channel, finite values
  std::vector<int64_t> channel_zeros;
  std::vector<char> channel_alive;  // some value > 0 or NaN
  float scale = 1;                  // clipnorm
};

// The bin of a value by cpu::hist_bin's formula, which the kernel repeats in double.
int64_t hist_slot_index(double value, const PlannedOp& op) {
  if (value < op.hist_lo) return probe_slot::kHistBelow;
  if (value > op.hist_hi) return probe_slot::kHistAbove;
  return probe_slot::kHistCounts + cpu::hist_bin(value, probes::Hist{op.bins, op.hist_lo, op.hist_hi});
}

// x after ops [0, end) of a pass, without any side effect: what a clipnorm's norm pass sees. Each
// changing op's result is rounded to the tensor's dtype, as it is stored.
float transformed(float x, const std::vector<PlannedOp>& ops, const std::vector<OpAccumulator>& acc, size_t end,
                  DType dtype) {
  for (size_t k = 0; k < end; ++k) {
    if (ops[k].kind == PlannedOpKind::Clamp) {
      const float lo = cpu::clamp_bound(ops[k].clamp_lo, dtype), hi = cpu::clamp_bound(ops[k].clamp_hi, dtype);
      if (x < lo) x = lo;
      if (x > hi) x = hi;
    } else if (ops[k].kind == PlannedOpKind::ClipNorm) {
      x = cpu::round_to_dtype(x * acc[k].scale, dtype);
    }
  }
  return x;
}

}  // namespace

ReferenceProbeRun accumulate_probe_slot(const ProbePlan& plan, Tensor& tensor) {
  cpu::ProbeValues values(tensor, "accumulate_probe_slot");
  float* x = values.data();
  const DType dtype = values.dtype();
  if (tensor.numel() != plan.numel)
    throw Error("accumulate_probe_slot: the tensor has " + std::to_string(tensor.numel()) +
                " elements; the plan was made for " + std::to_string(plan.numel));
  namespace s = probe_slot;
  ReferenceProbeRun run;
  run.slot.assign(static_cast<size_t>(plan.slot_size), 0.0);
  const int64_t n = plan.numel;
  const size_t channels = static_cast<size_t>(plan.channels);
  const auto channel_of = [&](int64_t i) {
    return static_cast<size_t>((i / plan.inner) % plan.channels);  // i < n implies inner, channels > 0
  };
  const auto put = [&](const PlannedOp& op, int64_t offset, double value) {
    run.slot[static_cast<size_t>(op.slot + offset)] = value;
  };

  for (const PlannedPass& pass : plan.passes) {
    const std::vector<PlannedOp>& ops = pass.ops;
    std::vector<OpAccumulator> acc(ops.size());
    std::vector<Tensor> masks(ops.size());
    for (size_t k = 0; k < ops.size(); ++k) {
      if (ops[k].kind == PlannedOpKind::Hist) acc[k].hist.assign(static_cast<size_t>(2 + ops[k].bins), 0);
      if (ops[k].kind == PlannedOpKind::Channels) {
        acc[k].channel.resize(channels);
        acc[k].channel_zeros.assign(channels, 0);
      }
      if (ops[k].kind == PlannedOpKind::Zeros) acc[k].channel_alive.assign(channels, 0);
      if (ops[k].kind == PlannedOpKind::Clamp) masks[k] = Tensor::empty(tensor.shape(), DType::F32);
      if (ops[k].kind != PlannedOpKind::ClipNorm) continue;
      // The norm pass: the norm of the tensor as the ops before this clipnorm leave it.
      double squares = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double v = transformed(x[i], ops, acc, k, dtype);
        squares += v * v;
      }
      const double norm = std::sqrt(squares);
      acc[k].scale = cpu::clip_coefficient(norm, ops[k].max_norm, dtype);
      put(ops[k], s::kClipNormNorm, norm);
      put(ops[k], s::kClipNormScale, acc[k].scale);
    }

    Tensor capture;
    if (!pass.captures.empty()) capture = Tensor::empty(tensor.shape(), DType::F32);
    for (int64_t i = 0; i < n; ++i) {
      float v = x[i];
      for (size_t k = 0; k < ops.size(); ++k) {
        const PlannedOp& op = ops[k];
        OpAccumulator& a = acc[k];
        const bool finite = std::isfinite(v);
        switch (op.kind) {
          case PlannedOpKind::Clamp: {
            // torch.clamp compares with and stores the bounds in the tensor's dtype.
            const float lo = cpu::clamp_bound(op.clamp_lo, dtype), hi = cpu::clamp_bound(op.clamp_hi, dtype);
            masks[k].data<float>()[i] = (v >= lo && v <= hi) ? 1.0f : 0.0f;
            float after = v;
            if (after < lo) after = lo;
            if (after > hi) after = hi;
            if (after != v && !std::isnan(v)) ++a.changed;
            v = after;
            break;
          }
          case PlannedOpKind::ClipNorm: v = cpu::round_to_dtype(v * a.scale, dtype); break;
          case PlannedOpKind::Stats:
          case PlannedOpKind::NonFinite:
            if (!finite) {
              if (std::isnan(v)) ++a.nan;
              else if (v > 0) ++a.posinf;
              else ++a.neginf;
              break;
            }
            if (op.kind == PlannedOpKind::NonFinite) break;
            a.moments.add(v);
            a.lowest = std::min(a.lowest, v);
            a.highest = std::max(a.highest, v);
            a.abs_highest = std::max(a.abs_highest, std::fabs(v));
            a.l1 += std::fabs(v);
            a.squares += static_cast<double>(v) * v;
            break;
          case PlannedOpKind::Zeros:
            if (v == 0.0f) ++a.zeros;
            if (!(v <= 0.0f)) a.channel_alive[channel_of(i)] = 1;
            break;
          case PlannedOpKind::Hist:
            if (!std::isnan(v)) ++a.hist[static_cast<size_t>(hist_slot_index(v, op))];
            break;
          case PlannedOpKind::Channels: {
            const size_t c = channel_of(i);
            if (v == 0.0f) ++a.channel_zeros[c];
            if (finite) a.channel[c].add(v);
            break;
          }
        }
      }
      if (pass.changes_tensor()) x[i] = v;
      if (capture.defined()) capture.data<float>()[i] = v;
    }

    for (size_t k = 0; k < ops.size(); ++k) {
      const PlannedOp& op = ops[k];
      const OpAccumulator& a = acc[k];
      switch (op.kind) {
        case PlannedOpKind::Clamp:
          put(op, s::kClampChanged, static_cast<double>(a.changed));
          run.masks.push_back(masks[k]);
          break;
        case PlannedOpKind::ClipNorm: break;  // written by its norm pass
        case PlannedOpKind::Stats:
          put(op, s::kStatsCount, static_cast<double>(a.moments.count));
          put(op, s::kStatsNan, static_cast<double>(a.nan));
          put(op, s::kStatsPosInf, static_cast<double>(a.posinf));
          put(op, s::kStatsNegInf, static_cast<double>(a.neginf));
          put(op, s::kStatsMin, a.lowest);
          put(op, s::kStatsMax, a.highest);
          put(op, s::kStatsAbsMax, a.abs_highest);
          put(op, s::kStatsMean, a.moments.mean);
          put(op, s::kStatsM2, a.moments.m2);
          put(op, s::kStatsL1, a.l1);
          put(op, s::kStatsSquares, a.squares);
          break;
        case PlannedOpKind::NonFinite:
          put(op, s::kNonFiniteNan, static_cast<double>(a.nan));
          put(op, s::kNonFinitePosInf, static_cast<double>(a.posinf));
          put(op, s::kNonFiniteNegInf, static_cast<double>(a.neginf));
          break;
        case PlannedOpKind::Zeros:
          put(op, s::kZerosZeros, static_cast<double>(a.zeros));
          put(op, s::kZerosDead,
              static_cast<double>(std::count(a.channel_alive.begin(), a.channel_alive.end(), 0)));
          break;
        case PlannedOpKind::Hist:
          for (size_t b = 0; b < a.hist.size(); ++b) put(op, static_cast<int64_t>(b), static_cast<double>(a.hist[b]));
          break;
        case PlannedOpKind::Channels: {
          const int64_t c_count = plan.channels;
          for (int64_t c = 0; c < c_count; ++c) {
            const size_t ci = static_cast<size_t>(c);
            put(op, s::kChannelsCount * c_count + c, static_cast<double>(a.channel[ci].count));
            put(op, s::kChannelsMean * c_count + c, a.channel[ci].mean);
            put(op, s::kChannelsM2 * c_count + c, a.channel[ci].m2);
            put(op, s::kChannelsZeros * c_count + c, static_cast<double>(a.channel_zeros[ci]));
          }
          break;
        }
      }
    }
    if (pass.changes_tensor()) values.store();
    // The values are those of the tensor's dtype: converting the copy back is exact.
    if (capture.defined()) run.captures.push_back(dtype == DType::F32 ? capture : capture.to(dtype));
  }
  return run;
}

}  // namespace hookrt
