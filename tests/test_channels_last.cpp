// Channels-last (NHWC) tensors, as torch.channels_last: the layout itself, the CPU reference's ops
// on it (each exactly its NCHW op, so that the GPU's NHWC kernels have an exact reference), the
// probes' channel layout, and whole steps in channels-last, which must give the NCHW step's
// results bit for bit while hooks, captures and callbacks still see NCHW tensors.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cpu/probes.h"
#include "hookrt/backend.h"
#include "hookrt/executor.h"
#include "random.h"
#include "support/cli.h"
#include "support/errors.h"
#include "support/delegating_backend.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::bitwise_equal;

constexpr MemoryFormat kNhwc = MemoryFormat::ChannelsLast;
constexpr MemoryFormat kNchw = MemoryFormat::Contiguous;

// Host values uniform in [lo, hi) drawn with `seed`, in `dtype` (rounded from F32), NCHW.
Tensor uniform(const Shape& shape, uint64_t seed, DType dtype = DType::F32, double lo = -1.0, double hi = 1.0) {
  Pcg32 rng(seed);
  Tensor t = Tensor::empty(shape, DType::F32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(rng.uniform(lo, hi));
  return t.to(dtype);
}

Tensor nhwc(const Tensor& t) { return t.to_memory_format(kNhwc); }

using testing::contains;
using testing::error_message;

// ---- the layout ----------------------------------------------------------------------------------------

TEST(ChannelsLastTensor, PutsChannelsFastestAndComesBackUnchanged) {
  const Tensor x = uniform({2, 3, 4, 5}, 1);
  const Tensor y = nhwc(x);
  EXPECT_EQ(y.memory_format(), kNhwc);
  EXPECT_EQ(y.shape(), x.shape()) << "the shape stays the logical NCHW one";
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t h = 0; h < 4; ++h)
        for (int64_t w = 0; w < 5; ++w)
          ASSERT_EQ(y.item(((n * 4 + h) * 5 + w) * 3 + c), x.item(((n * 3 + c) * 4 + h) * 5 + w));
  const Tensor back = y.contiguous();
  EXPECT_EQ(back.memory_format(), kNchw);
  EXPECT_TRUE(bitwise_equal(back, x));
}

TEST(ChannelsLastTensor, OneChannelOrOnePixelLiesInBothOrdersAndIsOnlyRelabelled) {
  for (const Shape& shape : {Shape{2, 1, 3, 3}, Shape{2, 8, 1, 1}}) {
    const Tensor x = uniform(shape, 2);
    EXPECT_TRUE(x.is_contiguous(kNhwc)) << shape_string(shape);
    const Tensor y = nhwc(x);
    EXPECT_EQ(y.raw_data(), x.raw_data()) << "nothing to move for " << shape_string(shape);
    EXPECT_EQ(y.memory_format(), kNhwc);
    EXPECT_TRUE(y.same_layout(x));
  }
  const Tensor x = uniform({2, 3, 2, 2}, 3);
  EXPECT_FALSE(x.is_contiguous(kNhwc));
  EXPECT_FALSE(nhwc(x).is_contiguous(kNchw));
  EXPECT_FALSE(nhwc(x).same_layout(x));
  EXPECT_FALSE(uniform({6, 4}, 4).is_contiguous(kNhwc)) << "torch: only 4-D tensors are channels_last";
}

TEST(ChannelsLastTensor, CloneAndToKeepTheFormat) {
  const Tensor y = nhwc(uniform({2, 3, 2, 2}, 5));
  EXPECT_EQ(y.clone().memory_format(), kNhwc);
  const Tensor rounded = y.to(DType::BF16);
  EXPECT_EQ(rounded.memory_format(), kNhwc);
  EXPECT_TRUE(bitwise_equal(rounded.contiguous(), y.contiguous().to(DType::BF16)));
}

TEST(ChannelsLastTensor, ReshapeRefusesToReinterpretTheLayout) {
  const Tensor y = nhwc(uniform({2, 3, 2, 2}, 6));
  const std::string message = error_message([&] { (void)y.reshape({2, 12}); });
  EXPECT_TRUE(contains(message, "channels_last")) << message;
  const Tensor pooled = nhwc(uniform({2, 8, 1, 1}, 7));
  EXPECT_EQ(pooled.reshape({2, 8}).shape(), (Shape{2, 8})) << "(N, C, 1, 1) lies in NCHW order too";
}

TEST(ChannelsLastTensor, NeedsFourDimensions) {
  const std::string message = error_message([] { (void)Tensor::empty({2, 3, 4}, DType::F32, kNhwc); });
  EXPECT_TRUE(contains(message, "4-D")) << message;
}

TEST(ChannelsLastTensor, ParsesTorchsNames) {
  EXPECT_EQ(parse_memory_format("channels_last"), kNhwc);
  EXPECT_EQ(parse_memory_format("contiguous"), kNchw);
  EXPECT_EQ(parse_memory_format("contiguous_format"), kNchw);
  EXPECT_EQ(memory_format_name(kNhwc), "channels_last");
  EXPECT_TRUE(contains(testing::bad_input_message([] { (void)parse_memory_format("nhwc"); }), "'nhwc'"));
}

TEST(ChannelsLastTensor, DefaultsToChannelsLastOnlyForBf16OnCuda) {
  EXPECT_EQ(default_memory_format(Device::CUDA, Precision::BF16), kNhwc);
  EXPECT_EQ(default_memory_format(Device::CUDA, Precision::F32), kNchw);
  EXPECT_EQ(default_memory_format(Device::CPU, Precision::BF16), kNchw);
}

// ---- the CPU reference's ops -------------------------------------------------------------------------
// Each channels-last op must give its NCHW op's result exactly, in channels-last.

class ChannelsLastOps : public ::testing::TestWithParam<DType> {
 protected:
  DType dtype() const { return GetParam(); }
  Tensor input(const Shape& shape, uint64_t seed) const { return uniform(shape, seed, dtype()); }
  // An output the op gets allocated, in `format`.
  Tensor allocated(const Shape& shape, MemoryFormat format) const { return Tensor::empty(shape, dtype(), format); }
  // The NHWC result, moved back to NCHW, is the NCHW result bit for bit.
  static void expect_same(const Tensor& got_nhwc, const Tensor& want, const char* what) {
    EXPECT_EQ(got_nhwc.memory_format(), kNhwc) << what;
    EXPECT_TRUE(bitwise_equal(got_nhwc.contiguous(), want)) << what;
  }

  std::unique_ptr<Backend> cpu = make_cpu_backend();
};

TEST_P(ChannelsLastOps, ConvolutionsAreTheirNchwResults) {
  const Conv2dGeometry g{2, 1};
  const Tensor x = input({2, 3, 7, 6}, 1), w = input({4, 3, 3, 3}, 2);
  Tensor y, y_nhwc;
  cpu->conv2d_forward(x, w, y, g);
  cpu->conv2d_forward(nhwc(x), nhwc(w), y_nhwc, g);
  expect_same(y_nhwc, y, "y");

  const Tensor dy = input(y.shape(), 3);
  Tensor dx = allocated(x.shape(), kNchw), dx_nhwc = allocated(x.shape(), kNhwc);
  cpu->conv2d_backward_data(dy, w, dx, g);
  cpu->conv2d_backward_data(nhwc(dy), nhwc(w), dx_nhwc, g);
  expect_same(dx_nhwc, dx, "dx");

  Tensor dw = allocated(w.shape(), kNchw), dw_nhwc = allocated(w.shape(), kNhwc);
  cpu->conv2d_backward_filter(x, dy, dw, g);
  cpu->conv2d_backward_filter(nhwc(x), nhwc(dy), dw_nhwc, g);
  expect_same(dw_nhwc, dw, "dw (KRSC)");
}

TEST_P(ChannelsLastOps, BatchNormIsItsNchwResult) {
  const Tensor x = input({3, 5, 4, 3}, 4);
  for (const BatchNormMode mode : {BatchNormMode::Training, BatchNormMode::Inference}) {
    const BatchNormOptions o{mode};
    const Tensor weight = uniform({5}, 5), bias = uniform({5}, 6);
    Tensor mean = uniform({5}, 7), var = uniform({5}, 8, DType::F32, 0.5, 2.0);
    Tensor mean_nhwc = mean.clone(), var_nhwc = var.clone();
    Tensor y, save_mean, save_invstd, y_nhwc, save_mean_nhwc, save_invstd_nhwc;
    cpu->batchnorm_forward(x, weight, bias, mean, var, y, save_mean, save_invstd, o);
    cpu->batchnorm_forward(nhwc(x), weight, bias, mean_nhwc, var_nhwc, y_nhwc, save_mean_nhwc, save_invstd_nhwc, o);
    expect_same(y_nhwc, y, "y");
    EXPECT_TRUE(bitwise_equal(save_mean_nhwc, save_mean));
    EXPECT_TRUE(bitwise_equal(save_invstd_nhwc, save_invstd));
    EXPECT_TRUE(bitwise_equal(mean_nhwc, mean)) << "running mean";
    EXPECT_TRUE(bitwise_equal(var_nhwc, var)) << "running var";

    const Tensor dy = input(x.shape(), 9);
    Tensor dx, dweight, dbias, dx_nhwc, dweight_nhwc, dbias_nhwc;
    cpu->batchnorm_backward(dy, x, weight, save_mean, save_invstd, dx, dweight, dbias, o);
    cpu->batchnorm_backward(nhwc(dy), nhwc(x), weight, save_mean, save_invstd, dx_nhwc, dweight_nhwc, dbias_nhwc, o);
    expect_same(dx_nhwc, dx, "dx");
    EXPECT_TRUE(bitwise_equal(dweight_nhwc, dweight));
    EXPECT_TRUE(bitwise_equal(dbias_nhwc, dbias));
  }
}

TEST_P(ChannelsLastOps, PoolingIsItsNchwResultWithTheSameIndices) {
  const Pool2dGeometry g{3, 2, 1};
  const Tensor x = input({2, 3, 7, 8}, 10);
  Tensor y, indices, y_nhwc, indices_nhwc;
  cpu->maxpool2d_forward(x, y, indices, g);
  cpu->maxpool2d_forward(nhwc(x), y_nhwc, indices_nhwc, g);
  expect_same(y_nhwc, y, "maxpool y");
  expect_same(indices_nhwc, indices, "maxpool indices (flat h*W+w, whatever the layout)");

  const Tensor dy = input(y.shape(), 11);
  Tensor dx = allocated(x.shape(), kNchw), dx_nhwc = allocated(x.shape(), kNhwc);
  cpu->maxpool2d_backward(dy, indices, dx, g);
  cpu->maxpool2d_backward(nhwc(dy), indices_nhwc, dx_nhwc, g);
  expect_same(dx_nhwc, dx, "maxpool dx");

  Tensor mean, mean_nhwc;
  cpu->adaptive_avgpool_forward(x, mean);
  cpu->adaptive_avgpool_forward(nhwc(x), mean_nhwc);
  EXPECT_TRUE(bitwise_equal(mean_nhwc, mean)) << "(N, C, 1, 1) lies the same in both layouts";
  const Tensor dmean = input(mean.shape(), 12);
  Tensor dpooled = allocated(x.shape(), kNchw), dpooled_nhwc = allocated(x.shape(), kNhwc);
  cpu->adaptive_avgpool_backward(dmean, dpooled);
  cpu->adaptive_avgpool_backward(dmean, dpooled_nhwc);
  expect_same(dpooled_nhwc, dpooled, "avgpool dx");
}

TEST_P(ChannelsLastOps, ElementwiseOpsWalkMemoryOrderAndKeepTheLayout) {
  const Tensor a = input({2, 3, 3, 2}, 13), b = input({2, 3, 3, 2}, 14);
  Tensor sum, sum_nhwc;
  cpu->add(a, b, sum);
  cpu->add(nhwc(a), nhwc(b), sum_nhwc);
  expect_same(sum_nhwc, sum, "add");
  Tensor y, y_nhwc, dx, dx_nhwc;
  cpu->relu_forward(a, y);
  cpu->relu_forward(nhwc(a), y_nhwc);
  expect_same(y_nhwc, y, "relu");
  cpu->relu_backward(y, b, dx);
  cpu->relu_backward(y_nhwc, nhwc(b), dx_nhwc);
  expect_same(dx_nhwc, dx, "relu backward");
  Tensor acc = a.clone(), acc_nhwc = nhwc(a);
  cpu->accumulate(acc, b);
  cpu->accumulate(acc_nhwc, nhwc(b));
  expect_same(acc_nhwc, acc, "accumulate");
}

TEST_P(ChannelsLastOps, ConvertMovesBetweenLayoutsAndDtypes) {
  const Tensor x = uniform({2, 3, 4, 5}, 15);
  Tensor to_nhwc = Tensor::empty(x.shape(), dtype(), kNhwc);
  cpu->convert(x, to_nhwc);
  expect_same(to_nhwc, x.to(dtype()), "F32 NCHW into NHWC");
  Tensor back = Tensor::empty(x.shape(), DType::F32, kNchw);
  cpu->convert(to_nhwc, back);
  EXPECT_TRUE(bitwise_equal(back, x.to(dtype()).to(DType::F32)));
  const Tensor host = cpu->to_host(to_nhwc);
  EXPECT_EQ(host.memory_format(), kNchw) << "to_host always gives NCHW";
  EXPECT_TRUE(bitwise_equal(host, x.to(dtype())));
  EXPECT_EQ(cpu->converted(to_nhwc, dtype(), kNhwc).raw_data(), to_nhwc.raw_data()) << "nothing to convert";
}

TEST_P(ChannelsLastOps, RefuseMixedLayoutsNamingTheTensor) {
  const Tensor x = input({2, 3, 5, 5}, 16), w = input({4, 3, 3, 3}, 17);
  Tensor y;
  std::string message = error_message([&] { cpu->conv2d_forward(nhwc(x), w, y, {}); });
  EXPECT_TRUE(contains(message, "conv2d_forward: w")) << message;
  EXPECT_TRUE(contains(message, "contiguous_format")) << message;
  Tensor sum;
  message = error_message([&] { cpu->add(nhwc(x), x, sum); });
  EXPECT_TRUE(contains(message, "add: b")) << message;
  EXPECT_TRUE(contains(message, "expected channels_last")) << message;
  Tensor relu_out = allocated(x.shape(), kNchw);
  message = error_message([&] { cpu->relu_forward(nhwc(x), relu_out); });
  EXPECT_TRUE(contains(message, "relu_forward: y")) << message;
  Tensor copy_dst = allocated(x.shape(), kNchw);
  message = error_message([&] { cpu->copy(nhwc(x), copy_dst); });
  EXPECT_TRUE(contains(message, "copy: dst")) << message;
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ChannelsLastOps, ::testing::Values(DType::F32, DType::BF16),
                         [](const ::testing::TestParamInfo<DType>& info) { return dtype_name(info.param); });

// ---- probes -------------------------------------------------------------------------------------------

TEST(ChannelsLastProbes, ChannelsAreTheFastestAxis) {
  const cpu::ChannelLayout layout = cpu::channel_layout({2, 3, 4, 5}, 1, kNhwc);
  EXPECT_EQ(layout.outer, 2 * 4 * 5);
  EXPECT_EQ(layout.channels, 3);
  EXPECT_EQ(layout.inner, 1);
  const cpu::ChannelLayout by_image = cpu::channel_layout({2, 3, 4, 5}, 0, kNhwc);
  EXPECT_EQ(by_image.channels, 2);
  EXPECT_EQ(by_image.inner, 3 * 4 * 5);
  EXPECT_THROW((void)cpu::channel_layout({2, 3, 4, 5}, 2, kNhwc), Error);
}

// Per-channel results name the same channels in either layout; captures are NCHW.
TEST(ChannelsLastProbes, DescribeTheSameChannelsAndCaptureNchw) {
  Tensor x = uniform({2, 4, 3, 3}, 18);
  for (int64_t i = 0; i < x.numel(); i += 4) x.data<float>()[i] = 0.0f;  // some zeros
  for (int64_t i = 0; i < 18; ++i) x.data<float>()[(1 * 9) + (i % 9) + (i / 9) * 36] = -1.0f;  // channel 1 dead
  const ProbeList probes{parse_probe("zeros"), parse_probe("channels"), parse_probe("capture")};
  ProbeRecord nchw_record, nhwc_record;
  Tensor a = x.clone(), b = nhwc(x);
  ProbeRunOptions options;
  cpu::run_probes(probes, a, nchw_record, options);
  cpu::run_probes(probes, b, nhwc_record, options);
  const auto& zeros = std::get<ZerosResult>(nhwc_record.results[0]);
  EXPECT_EQ(zeros.dead_channels, 1);
  EXPECT_EQ(zeros.zeros, std::get<ZerosResult>(nchw_record.results[0]).zeros);
  const auto& channels = std::get<ChannelsResult>(nhwc_record.results[1]);
  const auto& want = std::get<ChannelsResult>(nchw_record.results[1]);
  EXPECT_EQ(channels.mean, want.mean) << "each channel's values, summed in the same order";
  EXPECT_EQ(channels.zero_fraction, want.zero_fraction);
  const Tensor& captured = std::get<CaptureResult>(nhwc_record.results[2]).tensor;
  EXPECT_EQ(captured.memory_format(), kNchw);
  EXPECT_TRUE(bitwise_equal(captured, x));
}

TEST(ChannelsLastProbes, ClampsMaskLiesWithItsTensor) {
  const Tensor x = uniform({2, 3, 2, 2}, 19, DType::F32, -2.0, 2.0);
  Tensor t = nhwc(x);
  ProbeRecord record;
  ProbeRunOptions options;
  options.want_grad_transforms = true;
  const ProbeRunEffects effects = cpu::run_probes(ProbeList{parse_probe("clamp=-1:1")}, t, record, options);
  ASSERT_EQ(effects.grad_transforms.size(), 1u);
  const Tensor& mask = effects.grad_transforms[0].factor;
  EXPECT_EQ(mask.memory_format(), kNhwc);
  for (int64_t i = 0; i < t.numel(); ++i)
    EXPECT_EQ(mask.item(i), std::abs(nhwc(x).item(i)) <= 1.0 ? 1.0 : 0.0) << "element " << i << " in memory order";
}

// ---- whole steps -----------------------------------------------------------------------------------

struct StepCase {
  Precision precision;
  Mode mode;
};

struct StepOutcome {
  StepResult result;
  std::map<std::string, Tensor> grads;        // every parameter's
  std::map<std::string, Tensor> captures;     // every record's capture, by key
  std::map<std::string, Tensor> callback_seen; // what host callbacks were handed
  std::map<std::string, Tensor> state;         // after the update
};

class ChannelsLastStep : public testing::TinyModelTest, public ::testing::WithParamInterface<StepCase> {
 protected:
  StepOutcome run_step(MemoryFormat format) {
    model().load_state_dict(initial_state());
    StepOutcome outcome;
    std::vector<HookHandle> handles;
    handles.push_back(model().register_grad_hook(
        "*", TensorCallback([&](const HookEvent& e, TensorRef grad) { outcome.grads[e.param] = grad.clone(); })));
    handles.push_back(model().register_forward_hook("*", ProbeList{parse_probe("zeros"), parse_probe("capture")}));
    handles.push_back(model().register_full_backward_hook("*", ProbeList{parse_probe("capture")}));
    // A host callback that reads and writes an activation: it sees NCHW, and its write goes back.
    handles.push_back(model().register_forward_hook(
        "layer1.0.bn2", TensorCallback([&](const HookEvent&, TensorRef out) {
          outcome.callback_seen["layer1.0.bn2"] = out.clone();
          for (int64_t i = 0; i < out.numel(); i += 7) {
            if (out.dtype() == DType::F32) out.data<float>()[i] = 0.5f;
            if (out.dtype() == DType::BF16) static_cast<uint16_t*>(out.raw_data())[i] = float_to_bfloat16(0.5f);
          }
        })));
    testing::TinyExecutorOptions o;
    o.mode = GetParam().mode;
    o.precision = GetParam().precision;
    o.input_grad = true;
    o.memory_format = format;
    auto run = testing::cpu_executor(model(), o);
    testing::RecordLog log;
    log.attach(*run);
    outcome.result = run->step(testing::tiny_input(1, 2, 48), testing::tiny_labels());
    run->flush_records();
    run->sync_model();
    for (const ProbeRecord& record : log.records())
      for (const ProbeResult& r : record.results)
        if (const auto* capture = std::get_if<CaptureResult>(&r)) outcome.captures[record.capture_key()] = capture->tensor;
    for (const auto& [key, t] : model().state_dict()) outcome.state[key] = t.clone();
    for (HookHandle& handle : handles) handle.remove();
    return outcome;
  }
};

TEST_P(ChannelsLastStep, GivesTheNchwStepBitForBitAndHooksSeeNchw) {
  const StepOutcome nchw = run_step(kNchw);
  const StepOutcome nhwc_step = run_step(kNhwc);
  EXPECT_TRUE(bitwise_equal(nhwc_step.result.logits, nchw.result.logits));
  EXPECT_EQ(nhwc_step.result.loss, nchw.result.loss);
  EXPECT_TRUE(bitwise_equal(nhwc_step.result.input_grad, nchw.result.input_grad));
  ASSERT_EQ(nhwc_step.grads.size(), nchw.grads.size());
  for (const auto& [key, grad] : nchw.grads) {
    EXPECT_EQ(nhwc_step.grads.at(key).memory_format(), kNchw) << key << ": parameter gradients stay NCHW";
    EXPECT_TRUE(bitwise_equal(nhwc_step.grads.at(key), grad)) << "gradient of " << key;
  }
  ASSERT_EQ(nhwc_step.captures.size(), nchw.captures.size());
  ASSERT_GT(nchw.captures.size(), 40u);
  for (const auto& [key, captured] : nchw.captures) {
    EXPECT_EQ(nhwc_step.captures.at(key).memory_format(), kNchw) << key;
    EXPECT_TRUE(bitwise_equal(nhwc_step.captures.at(key), captured)) << "capture " << key;
  }
  const Tensor& seen = nhwc_step.callback_seen.at("layer1.0.bn2");
  EXPECT_EQ(seen.memory_format(), kNchw) << "host callbacks are handed NCHW tensors";
  EXPECT_TRUE(bitwise_equal(seen, nchw.callback_seen.at("layer1.0.bn2")));
  for (const auto& [key, t] : nchw.state) EXPECT_TRUE(bitwise_equal(nhwc_step.state.at(key), t)) << key;
}

// The layouts that reach the backend's layout-aware ops: every 4-D activation, gradient and conv
// weight lies channels-last (so the step above compared a channels-last step, not an NCHW one; a
// 1x1 downsample weight lies in both orders and is not cast).
class LayoutLog final : public testing::DelegatingBackend {
 public:
  void conv2d_forward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) override {
    note("conv2d_forward x", x);
    note("conv2d_forward w", w);
    DelegatingBackend::conv2d_forward(x, w, y, g);
    note("conv2d_forward y", y);
  }
  void conv2d_backward_filter(const Tensor& x, const Tensor& dy, Tensor& dw, const Conv2dGeometry& g) override {
    note("conv2d_backward_filter dy", dy);
    note("conv2d_backward_filter dw", dw);
    DelegatingBackend::conv2d_backward_filter(x, dy, dw, g);
  }
  void batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& save_mean,
                          const Tensor& save_invstd, Tensor& dx, Tensor& dweight, Tensor& dbias,
                          const BatchNormOptions& o) override {
    note("batchnorm_backward dy", dy);
    DelegatingBackend::batchnorm_backward(dy, x, weight, save_mean, save_invstd, dx, dweight, dbias, o);
  }
  // The same backward in two parts, as the CPU backend runs it where probes may take the second.
  void batchnorm_backward_coefficients(const Tensor& dy, const Tensor& x, const Tensor& weight,
                                       const Tensor& save_mean, const Tensor& save_invstd, Tensor& dweight,
                                       Tensor& dbias, Tensor& coefficients, const BatchNormOptions& o) override {
    note("batchnorm_backward dy", dy);
    DelegatingBackend::batchnorm_backward_coefficients(dy, x, weight, save_mean, save_invstd, dweight, dbias,
                                                       coefficients, o);
  }
  void maxpool2d_forward(const Tensor& x, Tensor& y, Tensor& indices, const Pool2dGeometry& g) override {
    note("maxpool2d_forward x", x);
    DelegatingBackend::maxpool2d_forward(x, y, indices, g);
  }
  std::map<std::string, std::vector<bool>> seen;  // whether each lay channels-last

 private:
  void note(const std::string& what, const Tensor& t) { seen[what].push_back(t.is_contiguous(kNhwc)); }
};

using ChannelsLastLayouts = testing::TinyModelTest;

TEST_F(ChannelsLastLayouts, StepHandsTheOpsChannelsLastTensors) {
  auto backend = std::make_unique<LayoutLog>();
  LayoutLog& log = *backend;
  ExecutorOptions o;
  o.mode = Mode::Train;
  o.memory_format = kNhwc;
  Executor run(model(), std::move(backend), o);
  run.step(testing::tiny_input(), testing::tiny_labels());
  for (const char* what : {"conv2d_forward x", "conv2d_forward w", "conv2d_forward y", "conv2d_backward_filter dy",
                           "conv2d_backward_filter dw", "batchnorm_backward dy", "maxpool2d_forward x"}) {
    ASSERT_FALSE(log.seen[what].empty()) << what;
    for (const bool channels_last : log.seen[what]) EXPECT_TRUE(channels_last) << what;
  }
  EXPECT_EQ(log.seen["conv2d_forward x"].size(), 20u) << "every convolution, conv1 on the cast of the NCHW batch";
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ChannelsLastStep,
    ::testing::Values(StepCase{Precision::F32, Mode::Train}, StepCase{Precision::F32, Mode::Eval},
                      StepCase{Precision::BF16, Mode::Train}),
    [](const ::testing::TestParamInfo<StepCase>& info) {
      return precision_name(info.param.precision) + "_" + mode_name(info.param.mode);
    });

}  // namespace
}  // namespace hookrt
