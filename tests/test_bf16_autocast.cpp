// Precision::BF16 on the CPU reference, torch.autocast(dtype=torch.bfloat16)'s semantics: each
// op's BF16 form (F32 arithmetic on the widened operands, each result rounded once), the dtypes
// hooks see in a step (those PyTorch's hooks see under autocast), and a BF16 step against the F32
// step of the same model and batch, within what BF16's rounding allows.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hookrt/backend.h"
#include "hookrt/executor.h"
#include "random.h"
#include "support/autocast_dtypes.h"
#include "support/cli.h"
#include "support/errors.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::norm_of;
using testing::relative_error;

using testing::bitwise_equal;
using testing::TinyModelTest;

// Host BF16 values drawn uniform in [lo, hi), rounded from F32.
Tensor bf16_uniform(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Pcg32 rng(seed);
  Tensor t = Tensor::empty(shape, DType::F32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(rng.uniform(lo, hi));
  return t.to(DType::BF16);
}

Tensor widened(const Tensor& t) { return t.to(DType::F32); }
Tensor rounded(const Tensor& t) { return t.to(DType::BF16); }
Tensor empty_bf16(const Shape& shape) { return Tensor::empty(shape, DType::BF16); }

using testing::contains;
using testing::error_message;

// ---- ops: what a BF16 op computes ------------------------------------------------------------------
// Each must give exactly its F32 op's result on the widened operands, rounded to BF16 once (what
// cuDNN's and cuBLAS's BF16 paths with F32 accumulation, and PyTorch's BF16 kernels, compute).

class Bf16Ops : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> cpu = make_cpu_backend();
};

TEST_F(Bf16Ops, ConvolutionsRoundTheF32ResultOfTheWidenedOperandsOnce) {
  const Conv2dGeometry g{2, 1};
  const Tensor x = bf16_uniform({2, 3, 9, 9}, 1), w = bf16_uniform({4, 3, 3, 3}, 2);
  Tensor y, y32;
  cpu->conv2d_forward(x, w, y, g);
  cpu->conv2d_forward(widened(x), widened(w), y32, g);
  ASSERT_EQ(y.dtype(), DType::BF16) << "an output the op allocates takes the operands' dtype";
  EXPECT_TRUE(bitwise_equal(y, rounded(y32)));

  const Tensor dy = bf16_uniform(y.shape(), 3);
  Tensor dx = empty_bf16(x.shape()), dx32 = Tensor::empty(x.shape());
  cpu->conv2d_backward_data(dy, w, dx, g);
  cpu->conv2d_backward_data(widened(dy), widened(w), dx32, g);
  EXPECT_TRUE(bitwise_equal(dx, rounded(dx32)));
  Tensor dw = empty_bf16(w.shape()), dw32 = Tensor::empty(w.shape());
  cpu->conv2d_backward_filter(x, dy, dw, g);
  cpu->conv2d_backward_filter(widened(x), widened(dy), dw32, g);
  EXPECT_TRUE(bitwise_equal(dw, rounded(dw32)));
}

TEST_F(Bf16Ops, LinearAddsItsBiasBeforeTheOneRounding) {
  const Tensor x = bf16_uniform({3, 8}, 4), w = bf16_uniform({5, 8}, 5), b = bf16_uniform({5}, 6, 10.0, 20.0);
  Tensor y, y32;
  cpu->linear_forward(x, w, b, y);
  cpu->linear_forward(widened(x), widened(w), widened(b), y32);
  ASSERT_EQ(y.dtype(), DType::BF16);
  EXPECT_TRUE(bitwise_equal(y, rounded(y32)));

  const Tensor dy = bf16_uniform({3, 5}, 7);
  Tensor dx = empty_bf16(x.shape()), dw, db, dx32 = Tensor::empty(x.shape()), dw32, db32;
  cpu->linear_backward(x, w, dy, dx, dw, db);
  cpu->linear_backward(widened(x), widened(w), widened(dy), dx32, dw32, db32);
  EXPECT_TRUE(bitwise_equal(dx, rounded(dx32)));
  EXPECT_TRUE(bitwise_equal(dw, rounded(dw32)));
  EXPECT_TRUE(bitwise_equal(db, rounded(db32)));
  Tensor no_dx, dw2, db2;
  cpu->linear_backward(x, w, dy, no_dx, dw2, db2);
  EXPECT_FALSE(no_dx.defined()) << "an undefined dx is not wanted, as in F32";
}

// PyTorch's batch_norm takes a BF16 input with F32 parameters: the statistics stay F32.
TEST_F(Bf16Ops, BatchNormKeepsItsParametersAndStatisticsInF32) {
  const Tensor x = bf16_uniform({2, 3, 4, 4}, 8, -2.0, 3.0);
  const Tensor weight = Tensor::full({3}, 1.5), bias = Tensor::full({3}, -0.25);
  Tensor mean = Tensor::zeros({3}), var = Tensor::full({3}, 1.0), mean32 = mean.clone(), var32 = var.clone();
  Tensor y, save_mean, save_invstd, y32, save_mean32, save_invstd32;
  const BatchNormOptions o;
  cpu->batchnorm_forward(x, weight, bias, mean, var, y, save_mean, save_invstd, o);
  cpu->batchnorm_forward(widened(x), weight, bias, mean32, var32, y32, save_mean32, save_invstd32, o);
  ASSERT_EQ(y.dtype(), DType::BF16);
  EXPECT_TRUE(bitwise_equal(y, rounded(y32)));
  EXPECT_EQ(save_mean.dtype(), DType::F32);
  EXPECT_TRUE(bitwise_equal(save_mean, save_mean32));
  EXPECT_TRUE(bitwise_equal(save_invstd, save_invstd32));
  EXPECT_TRUE(bitwise_equal(mean, mean32)) << "the running statistics are updated in F32";
  EXPECT_TRUE(bitwise_equal(var, var32));

  const Tensor dy = bf16_uniform(x.shape(), 9);
  Tensor dx, dweight, dbias, dx32, dweight32, dbias32;
  cpu->batchnorm_backward(dy, x, weight, save_mean, save_invstd, dx, dweight, dbias, o);
  cpu->batchnorm_backward(widened(dy), widened(x), weight, save_mean, save_invstd, dx32, dweight32, dbias32, o);
  EXPECT_TRUE(bitwise_equal(dx, rounded(dx32)));
  EXPECT_EQ(dweight.dtype(), DType::F32);
  EXPECT_TRUE(bitwise_equal(dweight, dweight32));
  EXPECT_TRUE(bitwise_equal(dbias, dbias32));
}

TEST_F(Bf16Ops, ElementwiseAndPoolingOpsRoundOnceLikeTheirF32Forms) {
  const Tensor a = bf16_uniform({2, 3, 6, 6}, 10), b = bf16_uniform({2, 3, 6, 6}, 11);
  Tensor sum, sum32;
  cpu->add(a, b, sum);
  cpu->add(widened(a), widened(b), sum32);
  EXPECT_TRUE(bitwise_equal(sum, rounded(sum32)));

  Tensor acc = a.clone(), acc32 = widened(a);
  cpu->accumulate(acc, b);
  cpu->accumulate(acc32, widened(b));
  EXPECT_TRUE(bitwise_equal(acc, rounded(acc32)));

  Tensor scaled = a.clone(), scaled32 = widened(a);
  const Tensor factor = Tensor::full({1}, 0.3);  // an F32 factor on a BF16 tensor (clipnorm's)
  cpu->multiply_(scaled, factor);
  cpu->multiply_(scaled32, factor);
  EXPECT_TRUE(bitwise_equal(scaled, rounded(scaled32)));

  Tensor relu, relu32, drelu, drelu32;
  cpu->relu_forward(a, relu);
  cpu->relu_forward(widened(a), relu32);
  EXPECT_TRUE(bitwise_equal(relu, rounded(relu32)));
  cpu->relu_backward(relu, b, drelu);
  cpu->relu_backward(widened(relu), widened(b), drelu32);
  EXPECT_TRUE(bitwise_equal(drelu, rounded(drelu32)));

  const Pool2dGeometry g;
  Tensor pooled, indices, pooled32, indices32;
  cpu->maxpool2d_forward(a, pooled, indices, g);
  cpu->maxpool2d_forward(widened(a), pooled32, indices32, g);
  EXPECT_TRUE(bitwise_equal(pooled, rounded(pooled32)));
  EXPECT_TRUE(bitwise_equal(indices, indices32));
  const Tensor dpooled = bf16_uniform(pooled.shape(), 12);
  Tensor dunpooled = empty_bf16(a.shape()), dunpooled32 = Tensor::empty(a.shape());
  cpu->maxpool2d_backward(dpooled, indices, dunpooled, g);
  cpu->maxpool2d_backward(widened(dpooled), indices, dunpooled32, g);
  EXPECT_TRUE(bitwise_equal(dunpooled, rounded(dunpooled32)));

  Tensor mean, mean32;
  cpu->adaptive_avgpool_forward(a, mean);
  cpu->adaptive_avgpool_forward(widened(a), mean32);
  EXPECT_TRUE(bitwise_equal(mean, rounded(mean32)));
  const Tensor dmean = bf16_uniform(mean.shape(), 13);
  Tensor dspread = empty_bf16(a.shape()), dspread32 = Tensor::empty(a.shape());
  cpu->adaptive_avgpool_backward(dmean, dspread);
  cpu->adaptive_avgpool_backward(widened(dmean), dspread32);
  EXPECT_TRUE(bitwise_equal(dspread, rounded(dspread32)));
}

// Autocast's cast: round to nearest, ties to even, as Tensor.to(torch.bfloat16).
TEST_F(Bf16Ops, ConvertRoundsToNearestEvenAndKeepsInfinitiesAndNan) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> values = {1.0f + 0x1p-8f,          // halfway between 1 and 1 + 2^-7: even is 1
                                     1.0f + 3 * 0x1p-8f,      // halfway, rounds up to the even 1 + 2^-6
                                     1.0f + 0x1p-8f + 0x1p-20f,  // past halfway: up
                                     -0.0f, inf, -inf, std::numeric_limits<float>::max()};
  const Tensor src = Tensor::from_vector(values, {static_cast<int64_t>(values.size())});
  Tensor dst = empty_bf16(src.shape());
  cpu->convert(src, dst);
  const std::vector<float> expected = {1.0f, 1.0f + 0x1p-6f, 1.0f + 0x1p-7f, -0.0f, inf, -inf, inf};
  for (size_t i = 0; i < expected.size(); ++i) {
    const float got = static_cast<float>(dst.item(static_cast<int64_t>(i)));
    EXPECT_EQ(std::memcmp(&got, &expected[i], sizeof got), 0) << "element " << i << ": " << got;
  }
  Tensor nan = Tensor::full({1}, std::nan("")), nan_bf16 = empty_bf16({1});
  cpu->convert(nan, nan_bf16);
  EXPECT_TRUE(std::isnan(nan_bf16.item(0)));

  Tensor back = Tensor::empty(dst.shape());
  cpu->convert(dst, back);  // BF16 -> F32 is exact
  EXPECT_TRUE(bitwise_equal(back, widened(dst)));
  EXPECT_TRUE(contains(error_message([&] {
                         Tensor wrong = empty_bf16({3});
                         cpu->convert(src, wrong);
                       }),
                       "differ in element count"));
}

TEST_F(Bf16Ops, RefuseMixedDtypesNamingTheTensor) {
  const Tensor x = bf16_uniform({1, 2, 4, 4}, 14);
  Tensor y;
  EXPECT_TRUE(contains(error_message([&] { cpu->conv2d_forward(x, Tensor::zeros({2, 2, 3, 3}), y, {}); }),
                       "conv2d_forward: w has dtype F32; expected BF16"));
  Tensor mean = Tensor::zeros({2}), var = Tensor::full({2}, 1.0), save_mean, save_invstd;
  EXPECT_TRUE(contains(error_message([&] {
                         cpu->batchnorm_forward(x, Tensor::full({2}, 1.0).to(DType::BF16), Tensor::zeros({2}), mean,
                                                var, y, save_mean, save_invstd, {});
                       }),
                       "weight has dtype BF16"));
  Tensor probs, loss;
  EXPECT_TRUE(contains(error_message([&] {
                         cpu->cross_entropy_forward(bf16_uniform({2, 3}, 15), Tensor::zeros({2}, DType::I64), probs, loss);
                       }),
                       "logits has dtype BF16"))
      << "autocast runs the loss in F32: the executor casts the logits first";
  Tensor param = bf16_uniform({4}, 16), momentum;
  EXPECT_TRUE(contains(error_message([&] { cpu->sgd_update(param, param, momentum, true, {}, Tensor()); }),
                       "param has dtype BF16"))
      << "parameters stay F32 under autocast";
}

// ---- a step under Precision::BF16 ------------------------------------------------------------------

class Bf16Step : public TinyModelTest {
 protected:
  static std::unique_ptr<Executor> executor(Precision precision, Mode mode = Mode::Train, bool input_grad = false) {
    testing::TinyExecutorOptions o;
    o.mode = mode;
    o.precision = precision;
    o.input_grad = input_grad;
    return testing::cpu_executor(model(), o);
  }
};

// See support/autocast_dtypes.h.
TEST_F(Bf16Step, HooksSeeTheDtypesAutocastGives) {
  testing::AutocastDtypeLog log;
  log.attach(model());
  auto run = executor(Precision::BF16, Mode::Train, /*input_grad=*/true);
  run->step(testing::tiny_input(), testing::tiny_labels());
  log.expect_autocast_dtypes(model());
}

TEST_F(Bf16Step, ResultsAndStateStayF32) {
  auto run = executor(Precision::BF16, Mode::Train, /*input_grad=*/true);
  const StepResult result = run->step(testing::tiny_input(), testing::tiny_labels());
  EXPECT_EQ(result.logits.dtype(), DType::F32) << "BF16 logits, widened";
  EXPECT_EQ(result.input_grad.dtype(), DType::F32);
  ASSERT_TRUE(result.loss.has_value());
  EXPECT_TRUE(std::isfinite(*result.loss));
  run->sync_model();
  for (const auto& [key, t] : model().state_dict())
    if (!key.ends_with("num_batches_tracked")) EXPECT_EQ(t.dtype(), DType::F32) << key;
  for (const auto& [key, before] : initial_state())
    if (key == "bn1.running_mean")
      EXPECT_FALSE(bitwise_equal(model().tensor(key), before)) << "batch norm's running statistics moved";
}

// Probes read the BF16 tensors the hooks see; capture keeps their dtype.
TEST_F(Bf16Step, ProbesDescribeAndCaptureTheBf16Tensors) {
  testing::RecordLog log;
  model().register_forward_hook("layer1.0.bn1", ProbeList{parse_probe("stats"), parse_probe("capture")});
  auto run = executor(Precision::BF16, Mode::Eval);
  log.attach(*run);
  run->step(testing::tiny_input());
  run->flush_records();
  const ProbeRecord record = log.only(HookWhen::Forward, "layer1.0.bn1", "output");
  const Tensor captured = testing::captured(record);
  ASSERT_EQ(captured.dtype(), DType::BF16);
  double sum = 0;
  for (int64_t i = 0; i < captured.numel(); ++i) sum += captured.item(i);
  const StatsResult& stats = testing::result_of<StatsResult>(record, 0);
  ASSERT_TRUE(stats.mean.has_value());
  EXPECT_NEAR(*stats.mean, sum / static_cast<double>(captured.numel()), 1e-6);
}

// ---- a BF16 step against the F32 step ---------------------------------------------------------------
// Every rounding to BF16 moves a value by at most u = 2^-8 of itself, and the roundings on a
// value's path (about four per layer over ResNet18's 18 layers: K = 72 or so) add like a random
// walk, to about sqrt(K)·u: 0.035 of the logits. The logits and the loss are held to four times
// that, 0.14 normwise relative.
//
// Gradients cannot be held to such a bound: this network at initialisation amplifies a rounding
// in its gradients hundreds of times (batch norm's backward subtracts nearly equal terms), so even
// the F32 step, given weights rounded to BF16 (autocast's cast, one rounding per weight), moves
// its early gradients by 15-25 %. That movement is the network's own sensitivity to one rounding
// of its inputs; the BF16 step rounds each activation about three more times (convolution, batch
// norm, the residual add), which adds like sqrt(1 + 3) = 2 times the movement. Each gradient is
// held to twice that, 4x the F32 step's movement (it measures 1.3-2.6x), and its norm to within a
// factor of 2 of the F32 norm, so that a lost or doubled gradient fails.
constexpr double kU = 0x1p-8;
constexpr double kLogitsTolerance = 4.0 * 0.035;
constexpr double kGradientToSensitivity = 4.0;

struct StepOutcome {
  StepResult result;
  std::map<std::string, Tensor> grads;  // every parameter's, and "input"
};

class Bf16StepAgainstF32 : public Bf16Step, public ::testing::WithParamInterface<Mode> {
 protected:
  StepOutcome run_step(Precision precision, bool weights_rounded_to_bf16) {
    model().load_state_dict(initial_state());
    if (weights_rounded_to_bf16)
      for (const std::string& key : model().parameter_names()) {
        Tensor& weight = model().tensor(key);
        const Tensor rounded_weight = weight.to(DType::BF16).to(DType::F32);
        std::memcpy(weight.raw_data(), rounded_weight.raw_data(), weight.nbytes());
      }
    StepOutcome outcome;
    HookHandle handle = model().register_grad_hook(
        "*", TensorCallback([&](const HookEvent& e, TensorRef grad) { outcome.grads[e.param] = grad.clone(); }));
    auto run = executor(precision, GetParam(), /*input_grad=*/true);
    outcome.result = run->step(testing::step_batch_input(), testing::step_batch_labels());
    outcome.grads["input"] = outcome.result.input_grad;
    handle.remove();
    return outcome;
  }
};

TEST_P(Bf16StepAgainstF32, LogitsAndLossWithinBf16Rounding) {
  const StepOutcome f32 = run_step(Precision::F32, false);
  const StepOutcome bf16 = run_step(Precision::BF16, false);
  EXPECT_LT(relative_error(bf16.result.logits, f32.result.logits), kLogitsTolerance);
  EXPECT_NEAR(*bf16.result.loss, *f32.result.loss, kLogitsTolerance * std::abs(*f32.result.loss));
  EXPECT_GT(relative_error(bf16.result.logits, f32.result.logits), 0.0) << "the BF16 step rounds";
}

TEST_P(Bf16StepAgainstF32, GradientsWithinTheNetworksOwnSensitivityToRounding) {
  const StepOutcome f32 = run_step(Precision::F32, false);
  const StepOutcome weights_rounded = run_step(Precision::F32, true);
  const StepOutcome bf16 = run_step(Precision::BF16, false);
  ASSERT_EQ(bf16.grads.size(), f32.grads.size());
  for (const auto& [key, grad] : f32.grads) {
    const Tensor& got = bf16.grads.at(key);
    ASSERT_EQ(got.dtype(), DType::F32) << key;
    // At least one rounding's worth: a gradient the weights' rounding cannot move is compared at u.
    const double sensitivity = std::max(relative_error(weights_rounded.grads.at(key), grad), kU);
    EXPECT_LT(relative_error(got, grad), kGradientToSensitivity * sensitivity) << "gradient of '" << key << "'";
    EXPECT_NEAR(norm_of(got) / norm_of(grad), 1.0, 0.5) << "gradient of '" << key << "'";
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, Bf16StepAgainstF32, ::testing::Values(Mode::Eval, Mode::Train),
                         [](const ::testing::TestParamInfo<Mode>& info) { return mode_name(info.param); });

}  // namespace
}  // namespace hookrt
