// Probes through the executor on the CPU backend: what clamp and clipnorm change in each of the
// five events (values downstream, gradients upstream, what the optimizer applies), the order of
// probes inside one hook, and non-finite detection and halting on injected NaN/Inf.
//
// Most checks sit at layer3.0.bn1 in eval mode, where BatchNorm's backward is elementwise
// (dx = dy * weight / sqrt(running_var + eps)), so the gradient a change produces can be predicted
// element by element. Bounds are set from a first measuring step, so every change really changes
// something (each test asserts that as a precondition: every test must be able to fail).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "hookrt/executor.h"
#include "hookrt/model.h"
#include "support/naive_ops.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::captured;
using testing::RecordLog;
using testing::result_of;
using testing::TinyModelTest;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

constexpr const char* kSite = "layer3.0.bn1";  // the hooked module: BatchNorm2d, (2, 256, 2, 2)
constexpr const char* kUpstream = "layer3.0.conv1";   // produces kSite's input
constexpr const char* kDownstream = "layer3.0.relu";  // call 0 consumes kSite's output

// Size of a tensor, from a measuring step: what the changing probe's bounds are set from.
struct Scale {
  double abs_max = 0, l2 = 0;
};

// Runs one step with a stats hook on (when, selector) and returns the size of `tensor` there.
Scale measure(Model& model, HookWhen when, const std::string& selector, const std::string& tensor,
              const testing::TinyExecutorOptions& options, bool labels) {
  HookHandle hook = model.register_hook(when, selector, ProbeList{probes::Stats{}});
  hook.scoped();
  auto executor = testing::cpu_executor(model, options);
  RecordLog log;
  log.attach(*executor);
  executor->step(testing::tiny_input(), labels ? testing::tiny_labels() : Tensor());
  for (const ProbeRecord& r : log.records())
    if (r.tensor == tensor) {
      const StatsResult& stats = result_of<StatsResult>(r, 0);
      return Scale{*stats.abs_max, stats.l2};
    }
  throw Error("measure: no " + tensor + " record at '" + selector + "'");
}

// ---- the changing probes, and what they must leave
// -----------------------------------------------

struct ChangeCase {
  std::string name;
  bool clamp = true;  // clamp, else clipnorm
};

void PrintTo(const ChangeCase& c, std::ostream* os) { *os << c.name; }

// Asymmetric clamp bounds inside the tensor's range (a swapped lo/hi shows), or a clip to a
// quarter of its norm.
Probe sized_probe(const ChangeCase& c, Scale s) {
  if (c.clamp) return probes::Clamp{-s.abs_max / 4, s.abs_max / 3};
  return probes::ClipNorm{s.l2 / 4};
}

double l2_of(const Tensor& t) {
  double squares = 0;
  for (int64_t i = 0; i < t.numel(); ++i) squares += t.item(i) * t.item(i);
  return std::sqrt(squares);
}

// Checks the probe's reported result against the raw tensor and returns the tensor the probe must
// have left: torch.clamp(raw, lo, hi) in float, or raw * clip_coef.
Tensor expected_change(const Probe& probe, const Tensor& raw, const ProbeResult& result) {
  Tensor out = raw.clone();
  float* p = out.data<float>();
  if (const auto* clamp = std::get_if<probes::Clamp>(&probe)) {
    const auto& r = std::get<ClampResult>(result);
    const float lo = static_cast<float>(clamp->lo), hi = static_cast<float>(clamp->hi);
    int64_t changed = 0;
    for (int64_t i = 0; i < out.numel(); ++i) {
      const float clamped = std::min(std::max(p[i], lo), hi);
      changed += clamped != p[i];
      p[i] = clamped;
    }
    EXPECT_EQ(r.lo, clamp->lo);
    EXPECT_EQ(r.hi, clamp->hi);
    EXPECT_EQ(r.changed, changed) << "clamp reports how many elements it changed";
    EXPECT_GT(changed, 0) << "precondition: the clamp changes something";
    return out;
  }
  const auto& clip = std::get<probes::ClipNorm>(probe);
  const auto& r = std::get<ClipNormResult>(result);
  const double norm = l2_of(raw);
  EXPECT_NEAR(r.norm, norm, 1e-9 * norm)
      << "the reported norm is the raw tensor's (double sums either way)";
  // clip_grad_norm_'s clip_coef = max / (norm + 1e-6), computed in float: 1e-6 relative.
  const double coefficient = clip.max_norm / (norm + 1e-6);
  EXPECT_NEAR(r.scale, coefficient, 1e-6 * coefficient) << "clip_coef";
  EXPECT_LT(r.scale, 1.0) << "precondition: the clip changes something";
  const float scale = static_cast<float>(r.scale);
  for (int64_t i = 0; i < out.numel(); ++i) p[i] *= scale;
  EXPECT_LE(l2_of(out), clip.max_norm * (1 + 1e-6))
      << "the result's norm is at most max (float rounding aside)";
  return out;
}

// d(changed)/d(raw) elementwise: clamp's mask (1 where lo <= raw <= hi), or clipnorm's scale.
Tensor grad_factor(const Probe& probe, const Tensor& raw, const ProbeResult& result) {
  Tensor factor = Tensor::empty(raw.shape());
  float* f = factor.data<float>();
  for (int64_t i = 0; i < raw.numel(); ++i) {
    if (const auto* clamp = std::get_if<probes::Clamp>(&probe)) {
      const float x = raw.data<float>()[i];
      f[i] =
          (x >= static_cast<float>(clamp->lo) && x <= static_cast<float>(clamp->hi)) ? 1.0f : 0.0f;
    } else {
      f[i] = static_cast<float>(std::get<ClipNormResult>(result).scale);
    }
  }
  return factor;
}

class ChangingProbes : public TinyModelTest, public ::testing::WithParamInterface<ChangeCase> {
 protected:
  // kSite's eval-mode backward: grad_input = scale(dy) elementwise, per channel of (2, C, 2, 2).
  void expect_batchnorm_backward(const Tensor& grad_input, const Tensor& used_grad_output) {
    const Tensor& weight = model().tensor(std::string(kSite) + ".weight");
    const Tensor& running_var = model().tensor(std::string(kSite) + ".running_var");
    const int64_t channels = grad_input.size(1), plane = grad_input.size(2) * grad_input.size(3);
    int64_t bad = 0;
    for (int64_t i = 0; i < grad_input.numel(); ++i) {
      const int64_t c = (i / plane) % channels;
      const double gain = weight.item(c) / std::sqrt(running_var.item(c) + 1e-5);
      const double expected = used_grad_output.item(i) * gain;
      // Three float roundings (the change, the gain, the product): 1e-6 relative is ample.
      if (std::fabs(grad_input.item(i) - expected) > 1e-6 * std::fabs(expected) + 1e-30) ++bad;
    }
    EXPECT_EQ(bad, 0)
        << "elements where grad_input != used grad_output * weight / sqrt(running_var + eps)";
  }
  static Tensor product(const Tensor& a, const Tensor& b) {
    Tensor out = a.clone();
    for (int64_t i = 0; i < out.numel(); ++i) out.data<float>()[i] *= b.data<float>()[i];
    return out;
  }
};

TEST_P(ChangingProbes, ForwardChangeIsWhatDownstreamSees) {
  const Probe probe =
      sized_probe(GetParam(), measure(model(), HookWhen::Forward, kSite, "output", {}, false));
  model().register_forward_hook(kSite, ProbeList{probes::Capture{}, probe});
  model().register_forward_pre_hook(kDownstream, ProbeList{probes::Capture{}});
  auto executor = testing::cpu_executor(model());
  RecordLog log;
  log.attach(*executor);
  executor->step(testing::tiny_input());
  const ProbeRecord hooked = log.only(HookWhen::Forward, kSite, "output");
  const Tensor expected = expected_change(probe, captured(hooked), hooked.results.at(1));
  const Tensor seen = captured(log.only(HookWhen::ForwardPre, kDownstream, "input", 0));
  EXPECT_TRUE(testing::bitwise_equal(seen, expected))
      << "the next module's input is the changed output";
}

TEST_P(ChangingProbes, ForwardChangeTransformsTheGradientAsAutogradWould) {
  // A hook returning t.clamp(lo, hi) (or t * coef) puts that op on the autograd graph: the module's
  // own backward receives grad_output * mask (or * coef).
  const Probe probe =
      sized_probe(GetParam(), measure(model(), HookWhen::Forward, kSite, "output", {}, false));
  model().register_forward_hook(kSite, ProbeList{probes::Capture{}, probe});
  model().register_full_backward_hook(kSite, ProbeList{probes::Capture{}});
  auto executor = testing::cpu_executor(model());
  RecordLog log;
  log.attach(*executor);
  executor->step(testing::tiny_input(), testing::tiny_labels());
  const ProbeRecord hooked = log.only(HookWhen::Forward, kSite, "output");
  const Tensor factor = grad_factor(probe, captured(hooked), hooked.results.at(1));
  const Tensor grad_output = captured(log.only(HookWhen::Backward, kSite, "grad_output"));
  const Tensor grad_input = captured(log.only(HookWhen::Backward, kSite, "grad_input"));
  expect_batchnorm_backward(grad_input, product(grad_output, factor));
  int64_t masked_live = 0;
  for (int64_t i = 0; i < factor.numel(); ++i)
    masked_live += factor.item(i) != 1.0 && grad_output.item(i) != 0.0;
  EXPECT_GT(masked_live, 0) << "precondition: some gradient is really masked or scaled";
}

TEST_P(ChangingProbes, ForwardPreChangeReachesOnlyThatModule) {
  // On layer1.0.conv1's input, which is also the block's identity: the change is conv1's alone.
  const std::string conv = "layer1.0.conv1";
  const Probe probe =
      sized_probe(GetParam(), measure(model(), HookWhen::ForwardPre, conv, "input", {}, false));
  model().register_forward_pre_hook(conv, ProbeList{probes::Capture{}, probe});
  model().register_forward_hook(conv, ProbeList{probes::Capture{}});
  model().register_forward_hook("layer1.0.bn2", ProbeList{probes::Capture{}});
  model().register_forward_pre_hook("layer1.0.relu", ProbeList{probes::Capture{}});
  auto executor = testing::cpu_executor(model());
  RecordLog log;
  log.attach(*executor);
  executor->step(testing::tiny_input());
  const ProbeRecord hooked = log.only(HookWhen::ForwardPre, conv, "input");
  const Tensor raw = captured(hooked);
  const Tensor changed = expected_change(probe, raw, hooked.results.at(1));

  const Tensor weight = model().tensor(conv + ".weight").to(DType::F64);
  const Tensor conv_out = captured(log.only(HookWhen::Forward, conv, "output"));
  const Tensor oracle = testing::naive_conv2d(changed.to(DType::F64), weight, 1, 1);
  // fp32 sums of 576 products against float64: 1e-5 of the output's scale.
  const double tolerance = 1e-5 * testing::abs_max(oracle);
  EXPECT_LE(testing::max_abs_diff(conv_out, oracle), tolerance) << "conv1 ran on the changed input";
  ASSERT_GT(testing::max_abs_diff(testing::naive_conv2d(raw.to(DType::F64), weight, 1, 1), oracle),
            10 * tolerance)
      << "precondition: the change shows in conv1's output";

  const Tensor residual = captured(log.only(HookWhen::Forward, "layer1.0.bn2", "output"));
  const Tensor summed = captured(log.only(HookWhen::ForwardPre, "layer1.0.relu", "input", 1));
  Tensor with_raw_identity = residual.clone();
  for (int64_t i = 0; i < raw.numel(); ++i)
    with_raw_identity.data<float>()[i] += raw.data<float>()[i];
  EXPECT_TRUE(testing::bitwise_equal(summed, with_raw_identity))
      << "the identity path sees the unchanged input";
}

TEST_P(ChangingProbes, BackwardPreChangeIsWhatTheModulesBackwardUses) {
  const Probe probe = sized_probe(
      GetParam(), measure(model(), HookWhen::BackwardPre, kSite, "grad_output", {}, true));
  model().register_full_backward_pre_hook(kSite, ProbeList{probes::Capture{}, probe});
  model().register_full_backward_hook(kSite, ProbeList{probes::Capture{}});
  auto executor = testing::cpu_executor(model());
  RecordLog log;
  log.attach(*executor);
  executor->step(testing::tiny_input(), testing::tiny_labels());
  const ProbeRecord hooked = log.only(HookWhen::BackwardPre, kSite, "grad_output");
  const Tensor changed = expected_change(probe, captured(hooked), hooked.results.at(1));
  // PyTorch's BackwardHook hands the full backward hook the grad_output the pre-hooks returned.
  EXPECT_TRUE(testing::bitwise_equal(captured(log.only(HookWhen::Backward, kSite, "grad_output")),
                                     changed));
  expect_batchnorm_backward(captured(log.only(HookWhen::Backward, kSite, "grad_input")), changed);
}

TEST_P(ChangingProbes, BackwardChangeActsOnGradInputOnly) {
  const Probe probe =
      sized_probe(GetParam(), measure(model(), HookWhen::Backward, kSite, "grad_input", {}, true));
  model().register_full_backward_hook(kSite, ProbeList{probes::Capture{}});
  model().register_full_backward_hook(kSite, ProbeList{probe, probes::Capture{}});
  model().register_full_backward_pre_hook(kUpstream, ProbeList{probes::Capture{}});
  auto executor = testing::cpu_executor(model());
  RecordLog log;
  log.attach(*executor);
  executor->step(testing::tiny_input(), testing::tiny_labels());
  const std::vector<ProbeRecord> grad_in = log.find(HookWhen::Backward, kSite, "grad_input");
  const std::vector<ProbeRecord> grad_out = log.find(HookWhen::Backward, kSite, "grad_output");
  ASSERT_EQ(grad_in.size(), 2u);
  ASSERT_EQ(grad_out.size(), 2u);
  const Tensor changed = expected_change(probe, captured(grad_in[0]), grad_in[1].results.at(0));
  EXPECT_TRUE(testing::bitwise_equal(captured(grad_in[1]), changed))
      << "the later probe sees the changed grad_input";
  EXPECT_TRUE(testing::bitwise_equal(
      captured(log.only(HookWhen::BackwardPre, kUpstream, "grad_output")), changed))
      << "earlier layers receive the changed grad_input";
  EXPECT_EQ(grad_out[1].results.size(), 1u) << "only observing probes report on grad_output";
  EXPECT_TRUE(testing::bitwise_equal(captured(grad_out[1]), captured(grad_out[0])))
      << "grad_output is unchanged";
}

TEST_P(ChangingProbes, GradChangeIsWhatSgdApplies) {
  // momentum 0, no weight decay: p <- p - lr * (changed grad), in float.
  const std::string key = "layer3.0.conv1.weight";
  const Probe probe =
      sized_probe(GetParam(), measure(model(), HookWhen::Grad, key, "grad",
                                      {.mode = Mode::Train, .sgd = {.lr = 0.0}}, true));
  model().register_grad_hook(key, ProbeList{probes::Capture{}, probe});
  auto executor = testing::cpu_executor(model(), {.mode = Mode::Train, .sgd = {.lr = 0.1}});
  RecordLog log;
  log.attach(*executor);
  const Tensor before = model().tensor(key).clone();
  executor->step(testing::tiny_input(), testing::tiny_labels());
  const ProbeRecord hooked = log.only(HookWhen::Grad, kUpstream, "grad");
  EXPECT_EQ(hooked.param, key);
  const Tensor raw = captured(hooked);
  const Tensor changed = expected_change(probe, raw, hooked.results.at(1));
  const Tensor& after = model().tensor(key);
  int64_t bad = 0, raw_would_differ = 0;
  for (int64_t i = 0; i < after.numel(); ++i) {
    const float p = before.data<float>()[i];
    // Two float roundings at most (a fused multiply-add would differ by one): 2.5e-7 of |p|.
    const double tolerance = 2.5e-7 * std::fabs(p) + 1e-12;
    bad += std::fabs(after.item(i) - (p - 0.1f * changed.data<float>()[i])) > tolerance;
    raw_would_differ += std::fabs(after.item(i) - (p - 0.1f * raw.data<float>()[i])) > tolerance;
  }
  EXPECT_EQ(bad, 0) << "elements not updated by -lr * changed grad";
  EXPECT_GT(raw_would_differ, 0) << "precondition: the raw gradient would give another update";
}

INSTANTIATE_TEST_SUITE_P(Probes, ChangingProbes,
                         ::testing::Values(ChangeCase{"clamp", true},
                                           ChangeCase{"clipnorm", false}),
                         [](const ::testing::TestParamInfo<ChangeCase>& info) {
                           return info.param.name;
                         });

// ---- clipnorm's report, probe order ------------------------------------------------------------

class HookProbes : public TinyModelTest {
 protected:
  // Runs one eval forward with `probes` on kSite's output; returns that hook's record.
  ProbeRecord forward_at_site(const ProbeList& list) {
    model().register_forward_hook(kSite, list);
    auto executor = testing::cpu_executor(model());
    log.attach(*executor);
    executor->step(testing::tiny_input());
    return log.only(HookWhen::Forward, kSite, "output");
  }
  RecordLog log;
};

TEST_F(HookProbes, ClipNormReportsNormAndScaleAndLeavesTheNormAtMostMax) {
  const ProbeRecord r =
      forward_at_site(ProbeList{probes::Capture{}, probes::ClipNorm{2.0}, probes::Stats{}});
  const Tensor raw = captured(r);
  const auto& clip = result_of<ClipNormResult>(r, 1);
  const auto& stats = result_of<StatsResult>(r, 2);
  ASSERT_GT(l2_of(raw), 2.0) << "precondition: the output is larger than the clip";
  EXPECT_EQ(clip.max_norm, 2.0);
  EXPECT_NEAR(clip.norm, l2_of(raw), 1e-9 * l2_of(raw));
  const double coefficient = 2.0 / (l2_of(raw) + 1e-6);
  EXPECT_NEAR(clip.scale, coefficient, 1e-6 * coefficient) << "max / (norm + 1e-6), in float";
  EXPECT_LE(stats.l2, 2.0 * (1 + 1e-6)) << "the clipped tensor's norm, float rounding aside";
  EXPECT_NEAR(stats.l2, 2.0, 1e-5) << "clipping lands on the max norm";
}

TEST_F(HookProbes, ClipNormAboveTheNormLeavesTheTensorUnchanged) {
  const ProbeRecord r =
      forward_at_site(ProbeList{probes::Capture{}, probes::ClipNorm{1e9}, probes::Capture{}});
  EXPECT_EQ(result_of<ClipNormResult>(r, 1).scale, 1.0);
  EXPECT_TRUE(testing::bitwise_equal(result_of<CaptureResult>(r, 0).tensor,
                                     result_of<CaptureResult>(r, 2).tensor));
}

TEST_F(HookProbes, StatsAfterClampDescribeTheClampedTensor) {
  const ProbeRecord r =
      forward_at_site(ProbeList{probes::Capture{}, probes::Clamp{-0.5, 0.75}, probes::Stats{}});
  const Tensor clamped = expected_change(probes::Clamp{-0.5, 0.75}, captured(r), r.results.at(1));
  const auto& stats = result_of<StatsResult>(r, 2);
  EXPECT_EQ(*stats.min, -0.5);
  EXPECT_EQ(*stats.max, 0.75);
  EXPECT_NEAR(stats.l2, l2_of(clamped), 1e-5 * l2_of(clamped)) << "DESIGN.md: 1e-5 relative on l2";
}

TEST_F(HookProbes, StatsBeforeClampDescribeTheRawTensor) {
  const ProbeRecord r =
      forward_at_site(ProbeList{probes::Capture{}, probes::Stats{}, probes::Clamp{-0.5, 0.75}});
  const Tensor raw = captured(r);
  const std::vector<float> values = testing::values_of(raw);
  const auto& stats = result_of<StatsResult>(r, 1);
  EXPECT_EQ(*stats.min, *std::min_element(values.begin(), values.end()));
  EXPECT_EQ(*stats.max, *std::max_element(values.begin(), values.end()));
  ASSERT_GT(*stats.max, 0.75) << "precondition: the clamp changes something";
  ASSERT_LT(*stats.min, -0.5) << "precondition: the clamp changes something";
}

TEST_F(HookProbes, ALaterHookSeesWhatAnEarlierProbeHookChanged) {
  model().register_forward_hook(kSite, ProbeList{probes::Clamp{-0.5, 0.75}});
  model().register_forward_hook(kSite, ProbeList{probes::Stats{}});
  auto executor = testing::cpu_executor(model());
  log.attach(*executor);
  executor->step(testing::tiny_input());
  const std::vector<ProbeRecord> records = log.find(HookWhen::Forward, kSite, "output");
  ASSERT_EQ(records.size(), 2u) << "the clamp hook's record, then the stats hook's";
  const auto& stats = result_of<StatsResult>(records[1], 0);
  EXPECT_EQ(*stats.max, 0.75);
  EXPECT_EQ(*stats.min, -0.5);
}

// ---- non-finite values -------------------------------------------------------------------------

class HookNonFinite : public TinyModelTest {};

TEST_F(HookNonFinite, ProbesCountNaNAndInfInjectedIntoTheInputAndDescribeOnlyFiniteValues) {
  const Tensor input = testing::tiny_input();
  model().register_forward_pre_hook("", TensorCallback([](const HookEvent&, TensorRef x) {
                                      float* p = x.data<float>();
                                      p[0] = kNaN;
                                      p[10] = kInf;
                                      p[20] = kInf;
                                      p[30] = -kInf;
                                    }));
  model().register_forward_pre_hook("conv1", ProbeList{probes::Stats{}, probes::NonFinite{}});
  auto executor = testing::cpu_executor(model());
  RecordLog log;
  log.attach(*executor);
  executor->step(input);
  const ProbeRecord r = log.only(HookWhen::ForwardPre, "conv1", "input");
  const auto& stats = result_of<StatsResult>(r, 0);
  const auto& counts = result_of<NonFiniteResult>(r, 1);
  EXPECT_EQ(counts.nan, 1);
  EXPECT_EQ(counts.posinf, 2);
  EXPECT_EQ(counts.neginf, 1);
  EXPECT_EQ(stats.nan, 1);
  EXPECT_EQ(stats.posinf, 2);
  EXPECT_EQ(stats.neginf, 1);
  EXPECT_EQ(stats.count, input.numel() - 4) << "stats describe the finite elements";
  std::vector<float> finite = testing::values_of(input);
  for (int64_t i : {30, 20, 10, 0}) finite.erase(finite.begin() + i);
  EXPECT_EQ(*stats.min, *std::min_element(finite.begin(), finite.end()));
  EXPECT_EQ(*stats.max, *std::max_element(finite.begin(), finite.end()));
}

TEST_F(HookNonFinite, NaNWrittenByAForwardCallbackReachesDownstreamProbes) {
  // Eval mode keeps samples apart: the NaN put into sample 0 spreads over sample 0 only.
  model().register_forward_hook(
      "layer2.0.conv1",
      TensorCallback([](const HookEvent&, TensorRef out) { out.data<float>()[0] = kNaN; }));
  model().register_forward_pre_hook("layer2.0.bn1", ProbeList{probes::NonFinite{}});
  model().register_forward_hook("fc", ProbeList{probes::NonFinite{}});
  auto executor = testing::cpu_executor(model());
  RecordLog log;
  log.attach(*executor);
  const StepResult result = executor->step(testing::tiny_input());
  EXPECT_EQ(
      result_of<NonFiniteResult>(log.only(HookWhen::ForwardPre, "layer2.0.bn1", "input"), 0).nan,
      1);
  EXPECT_EQ(result_of<NonFiniteResult>(log.only(HookWhen::Forward, "fc", "output"), 0).nan,
            testing::kTinyClasses)
      << "every logit of sample 0";
  for (int64_t k = 0; k < testing::kTinyClasses; ++k) {
    EXPECT_TRUE(std::isnan(result.logits.item(k))) << "sample 0, class " << k;
    EXPECT_TRUE(std::isfinite(result.logits.item(testing::kTinyClasses + k)))
        << "sample 1, class " << k;
  }
}

TEST_F(HookNonFinite, HaltStopsTheStepAfterDeliveringItsRecord) {
  model().register_forward_hook(
      "layer2.0.conv1",
      TensorCallback([](const HookEvent&, TensorRef out) { out.data<float>()[5] = kNaN; }));
  model().register_forward_hook("layer1.0.conv1", ProbeList{probes::Stats{}});
  model().register_forward_pre_hook("layer2.0.bn1",
                                    ProbeList{probes::NonFinite{probes::NonFinitePolicy::Halt}});
  model().register_forward_hook("fc", ProbeList{probes::Stats{}});
  auto executor = testing::cpu_executor(model());
  RecordLog log;
  log.attach(*executor);
  try {
    executor->step(testing::tiny_input());
    ADD_FAILURE() << "nonfinite=halt must stop the step";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::Halted) << error.what();
    EXPECT_NE(std::string(error.what()).find("layer2.0.bn1"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("forward_pre"), std::string::npos) << error.what();
  }
  ASSERT_EQ(log.records().size(), 2u) << "the earlier record and the halting one; nothing after";
  EXPECT_EQ(log.records()[0].module, "layer1.0.conv1");
  EXPECT_EQ(log.records()[1].module, "layer2.0.bn1");
  EXPECT_EQ(result_of<NonFiniteResult>(log.records()[1], 0).nan, 1);
}

TEST_F(HookNonFinite, HaltOnAGradientStopsBeforeTheOptimizerStep) {
  model().register_grad_hook("fc.weight", TensorCallback([](const HookEvent&, TensorRef g) {
                               g.data<float>()[3] = kInf;
                             }));
  model().register_grad_hook("fc.weight",
                             ProbeList{probes::NonFinite{probes::NonFinitePolicy::Halt}});
  auto executor = testing::cpu_executor(model(), {.mode = Mode::Train, .sgd = {.lr = 0.1}});
  RecordLog log;
  log.attach(*executor);
  try {
    executor->step(testing::tiny_input(), testing::tiny_labels());
    ADD_FAILURE() << "nonfinite=halt must stop the step";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::Halted) << error.what();
    EXPECT_NE(std::string(error.what()).find("fc.weight"), std::string::npos) << error.what();
  }
  const ProbeRecord r = log.only(HookWhen::Grad, "fc", "grad");
  EXPECT_EQ(r.param, "fc.weight");
  EXPECT_EQ(result_of<NonFiniteResult>(r, 0).posinf, 1);
  for (const auto& [key, initial] : initial_state()) {
    const bool buffer = key.ends_with("running_mean") || key.ends_with("running_var") ||
                        key.ends_with("num_batches_tracked");  // train-mode forward moved these
    if (!buffer) {
      EXPECT_TRUE(testing::bitwise_equal(model().tensor(key), initial))
          << key << " was updated after a halt";
    }
  }
}

}  // namespace
}  // namespace hookrt
