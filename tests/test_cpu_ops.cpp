// The CPU reference ops: every forward against the naive double-precision definition, every
// backward against float64 central differences, PyTorch's conventions (BN running statistics,
// max-pool ties and NaN, SGD's momentum/weight decay/Nesterov), and CpuBackend's fp32 path against
// its fp64 path through the Backend interface.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "cpu/ops.h"
#include "hookrt/backend.h"
#include "random.h"
#include "support/tiny_model.h"  // bitwise_equal
#include "support/finite_diff.h"
#include "support/naive_ops.h"

namespace hookrt {
namespace {

using testing::compare_gradient;
using testing::FiniteDiffOptions;
using testing::numeric_gradient;
using testing::weighted_sum;

Tensor random_tensor(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Pcg32 rng(seed);
  Tensor t = Tensor::empty(shape, DType::F64);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = rng.uniform(lo, hi);
  return t;
}

// Largest |a - b| over |b|'s largest magnitude (or 1): one number per tensor, like an NMSE.
double relative_difference(const Tensor& a, const Tensor& b) {
  double diff = 0, scale = 1e-300;
  for (int64_t i = 0; i < b.numel(); ++i) {
    const double x = a.item(i), y = b.item(i);
    diff = std::isnan(x) != std::isnan(y) ? INFINITY
                                          : std::max(diff, std::isnan(y) ? 0.0 : std::fabs(x - y));
    scale = std::max(scale, std::fabs(y));
  }
  return diff / std::max(scale, 1.0);
}

// Double-precision ops against double-precision oracles differ only in summation order.
constexpr double kDoubleTolerance = 1e-12;

// ---- convolution
// ---------------------------------------------------------------------------------

struct ConvCase {
  std::string name;
  cpu::ConvShape shape;
};

const std::vector<ConvCase> kConvCases = {
    {"Batch1_3x3_Stride1_Pad1", {1, 3, 7, 7, 4, 3, 3, 1, 1}},
    {"Batch1_WideGemm_3x3", {1, 2, 20, 20, 3, 3, 3, 1, 1}},
    {"Batch1_WideGemm_Pointwise", {1, 3, 16, 16, 4, 1, 1, 1, 0}},
    {"OddSizes_3x3_Stride2_Pad1", {2, 3, 9, 7, 5, 3, 3, 2, 1}},
    {"Pointwise_Stride1", {2, 4, 5, 5, 3, 1, 1, 1, 0}},
    {"Pointwise_Stride2_Downsample", {2, 4, 7, 7, 3, 1, 1, 2, 0}},
    {"Stem_7x7_Stride2_Pad3", {2, 3, 11, 11, 4, 7, 7, 2, 3}},
    {"Rectangular_2x3_Stride1_Pad0", {2, 2, 6, 5, 3, 2, 3, 1, 0}},
    {"Rectangular_3x1_Stride3_Pad2", {3, 2, 8, 7, 2, 3, 1, 3, 2}},
    {"OneSamplePerThread_3x3", {2, 2, 12, 12, 3, 3, 3, 1, 1}},
    {"OneSamplePerThread_Pointwise", {2, 3, 12, 12, 4, 1, 1, 1, 0}},
    {"RaggedChunks_3x3", {5, 2, 10, 10, 3, 3, 3, 1, 1}},
};

// Sets the ops' thread count for one test, so that the layouts a test covers do not depend on
// the machine it runs on.
class ScopedOpsThreads {
 public:
  explicit ScopedOpsThreads(int threads) : saved_(cpu::ops_threads()) {
    cpu::set_ops_threads(threads);
  }
  ~ScopedOpsThreads() { cpu::set_ops_threads(saved_); }

 private:
  int saved_;
};

// Two threads: batches of one run chunks in turn (GEMMs split by columns), larger batches hand
// chunks to threads; Conv2dPlan below checks that the cases cover both.
constexpr int kConvTestThreads = 2;

class Conv2dTest : public ::testing::TestWithParam<ConvCase> {
 protected:
  ScopedOpsThreads threads_{kConvTestThreads};
  const cpu::ConvShape& s() const { return GetParam().shape; }
  Shape x_shape() const { return {s().n, s().c, s().h, s().w}; }
  Shape w_shape() const { return {s().k, s().c, s().r, s().s}; }
  Shape y_shape() const { return {s().n, s().k, s().p(), s().q()}; }
};

TEST_P(Conv2dTest, ForwardMatchesNaiveConvolutionInDouble) {
  const Tensor x = random_tensor(x_shape(), 1), w = random_tensor(w_shape(), 2);
  Tensor y = Tensor::full(y_shape(), NAN, DType::F64);  // NaN catches elements never written
  cpu::conv2d_forward(x.data<double>(), w.data<double>(), y.data<double>(), s());
  EXPECT_LE(relative_difference(y, testing::naive_conv2d(x, w, s().stride, s().padding)),
            kDoubleTolerance)
      << "double conv and the 7-loop oracle differ only in summation order";
}

TEST_P(Conv2dTest, ForwardInFloatMatchesNaiveConvolution) {
  const Tensor x = random_tensor(x_shape(), 3), w = random_tensor(w_shape(), 4);
  Tensor y = Tensor::full(y_shape(), NAN, DType::F32);
  cpu::conv2d_forward(x.to(DType::F32).data<float>(), w.to(DType::F32).data<float>(),
                      y.data<float>(), s());
  EXPECT_LE(relative_difference(y, testing::naive_conv2d(x, w, s().stride, s().padding)), 1e-5)
      << "fp32 inputs and sums of at most 147 products stay within 1e-5 of the fp64 oracle";
}

// Convolution is linear in x and in w, so central differences are exact up to rounding and a
// large step keeps the rounding small.
const FiniteDiffOptions kLinearOpDifferences{.step = 1e-2, .max_elements = 96, .seed = 7};

TEST_P(Conv2dTest, BackwardDataMatchesFiniteDifferences) {
  Tensor x = random_tensor(x_shape(), 5);
  const Tensor w = random_tensor(w_shape(), 6), dy = random_tensor(y_shape(), 7);
  Tensor y = Tensor::empty(y_shape(), DType::F64), dx = Tensor::full(x_shape(), NAN, DType::F64);
  cpu::conv2d_backward_data(dy.data<double>(), w.data<double>(), dx.data<double>(), s());
  const auto loss = [&] {
    cpu::conv2d_forward(x.data<double>(), w.data<double>(), y.data<double>(), s());
    return weighted_sum(y, dy);
  };
  const auto check =
      compare_gradient(dx, numeric_gradient(loss, x, kLinearOpDifferences), 1e-9, 1e-9);
  EXPECT_TRUE(check.ok) << check.message << " (linear op: only rounding separates them)";
}

TEST_P(Conv2dTest, BackwardFilterMatchesFiniteDifferences) {
  const Tensor x = random_tensor(x_shape(), 8), dy = random_tensor(y_shape(), 9);
  Tensor w = random_tensor(w_shape(), 10);
  Tensor y = Tensor::empty(y_shape(), DType::F64), dw = Tensor::full(w_shape(), NAN, DType::F64);
  cpu::conv2d_backward_filter(x.data<double>(), dy.data<double>(), dw.data<double>(), s());
  const auto loss = [&] {
    cpu::conv2d_forward(x.data<double>(), w.data<double>(), y.data<double>(), s());
    return weighted_sum(y, dy);
  };
  const auto check =
      compare_gradient(dw, numeric_gradient(loss, w, kLinearOpDifferences), 1e-9, 1e-9);
  EXPECT_TRUE(check.ok) << check.message << " (linear op: only rounding separates them)";
}

INSTANTIATE_TEST_SUITE_P(Shapes, Conv2dTest, ::testing::ValuesIn(kConvCases),
                         [](const auto& info) { return info.param.name; });

TEST(Conv2dPlan, ShapeCasesCoverEveryLayout) {
  bool one_sample = false, pointwise_direct = false, batched = false, ragged = false,
       across = false, in_turn = false;
  for (const ConvCase& c : kConvCases) {
    const cpu::ConvPlan plan = cpu::plan_conv(c.shape, kConvTestThreads);
    const bool pointwise =
        c.shape.r == 1 && c.shape.s == 1 && c.shape.stride == 1 && c.shape.padding == 0;
    one_sample |= plan.samples_per_gemm == 1 && !pointwise;
    pointwise_direct |= plan.samples_per_gemm == 1 && pointwise;
    batched |= plan.samples_per_gemm > 1;
    ragged |= c.shape.n % plan.samples_per_gemm != 0;
    across |= plan.chunks_across_threads;
    in_turn |=
        !plan.chunks_across_threads && c.shape.p() * c.shape.q() >= 128;  // wide enough to split
  }
  EXPECT_TRUE(one_sample) << "a case must take one sample per GEMM through im2col";
  EXPECT_TRUE(pointwise_direct) << "a case must take the pointwise path without im2col";
  EXPECT_TRUE(batched) << "a case must batch samples into one GEMM";
  EXPECT_TRUE(ragged) << "a case must end with a short chunk";
  EXPECT_TRUE(in_turn) << "a case must run chunks in turn with GEMMs split across threads";
  EXPECT_TRUE(across) << "a case must hand whole chunks to threads";
}

TEST(Conv2dPlan, ResultsAgreeAtEveryThreadCount) {
  const cpu::ConvShape s{5, 3, 12, 12, 4, 3, 3, 1, 1};
  const Tensor x = random_tensor({5, 3, 12, 12}, 61), w = random_tensor({4, 3, 3, 3}, 62);
  const Tensor dy = random_tensor({5, 4, 12, 12}, 63);
  std::vector<Tensor> reference;
  for (int threads : {1, 2, 3, 4}) {
    ScopedOpsThreads scoped(threads);
    Tensor y = Tensor::empty(dy.shape(), DType::F64), dx = Tensor::empty(x.shape(), DType::F64);
    Tensor dw = Tensor::empty(w.shape(), DType::F64);
    cpu::conv2d_forward(x.data<double>(), w.data<double>(), y.data<double>(), s);
    cpu::conv2d_backward_data(dy.data<double>(), w.data<double>(), dx.data<double>(), s);
    cpu::conv2d_backward_filter(x.data<double>(), dy.data<double>(), dw.data<double>(), s);
    if (reference.empty()) reference = {y, dx, dw};
    for (size_t i = 0; i < 3; ++i)
      EXPECT_LE(relative_difference(std::vector<Tensor>{y, dx, dw}[i], reference[i]),
                kDoubleTolerance)
          << "output " << i << " with " << threads << " threads: only summation order may differ";
  }
}

// ---- batch norm
// ----------------------------------------------------------------------------------

struct BatchNormCase {
  std::string name;
  cpu::BatchNormShape shape;
};

class BatchNormTest : public ::testing::TestWithParam<BatchNormCase> {
 protected:
  const cpu::BatchNormShape& s() const { return GetParam().shape; }
  Shape x_shape() const { return {s().n, s().c, s().hw}; }
  Tensor x = random_tensor(x_shape(), 11, -2, 3);
  Tensor weight = random_tensor({s().c}, 12, 0.5, 1.5), bias = random_tensor({s().c}, 13);
  Tensor running_mean = random_tensor({s().c}, 14),
         running_var = random_tensor({s().c}, 15, 0.5, 2);
  Tensor y = Tensor::empty(x_shape(), DType::F64);
  Tensor save_mean = Tensor::empty({s().c}, DType::F64),
         save_invstd = Tensor::empty({s().c}, DType::F64);

  void forward(BatchNormMode mode) {
    if (mode == BatchNormMode::Training) {
      Tensor rm = running_mean.clone(), rv = running_var.clone();  // finite differences rerun this
      cpu::batchnorm_forward_training(x.data<double>(), weight.data<double>(), bias.data<double>(),
                                      rm.data<double>(), rv.data<double>(), y.data<double>(),
                                      save_mean.data<double>(), save_invstd.data<double>(), s(),
                                      1e-5, 0.1);
    } else {
      cpu::batchnorm_forward_inference(x.data<double>(), weight.data<double>(), bias.data<double>(),
                                       running_mean.data<double>(), running_var.data<double>(),
                                       y.data<double>(), save_mean.data<double>(),
                                       save_invstd.data<double>(), s(), 1e-5);
    }
  }

  // Analytic gradients from one backward, each held to central differences of Σ y·dy.
  void expect_backward_matches_finite_differences(BatchNormMode mode) {
    const Tensor dy = random_tensor(x_shape(), 16);
    Tensor dx = Tensor::empty(x_shape(), DType::F64);
    Tensor dweight = Tensor::empty({s().c}, DType::F64), dbias = Tensor::empty({s().c}, DType::F64);
    forward(mode);
    cpu::batchnorm_backward(dy.data<double>(), x.data<double>(), weight.data<double>(),
                            save_mean.data<double>(), save_invstd.data<double>(), dx.data<double>(),
                            dweight.data<double>(), dbias.data<double>(), s(), mode);
    const auto loss = [&] {
      forward(mode);
      return weighted_sum(y, dy);
    };
    const FiniteDiffOptions options{.step = 1e-5, .max_elements = 120};
    for (auto [analytic, input, name] :
         {std::tuple{dx, x, "dx"}, {dweight, weight, "dweight"}, {dbias, bias, "dbias"}}) {
      const auto check =
          compare_gradient(analytic, numeric_gradient(loss, input, options), 1e-7, 1e-6);
      EXPECT_TRUE(check.ok) << name << ": " << check.message
                            << " (step 1e-5: truncation error ~1e-10)";
    }
  }
};

TEST_P(BatchNormTest, TrainingForwardMatchesNaiveBatchStatistics) {
  Tensor rm = running_mean.clone(), rv = running_var.clone();
  cpu::batchnorm_forward_training(x.data<double>(), weight.data<double>(), bias.data<double>(),
                                  rm.data<double>(), rv.data<double>(), y.data<double>(),
                                  save_mean.data<double>(), save_invstd.data<double>(), s(), 1e-5,
                                  0.1);
  const auto expected =
      testing::naive_batchnorm_training(x, weight, bias, running_mean, running_var, 1e-5, 0.1);
  EXPECT_LE(relative_difference(y, expected.y), kDoubleTolerance) << "y";
  EXPECT_LE(relative_difference(save_mean, expected.mean), kDoubleTolerance) << "save_mean";
  EXPECT_LE(relative_difference(save_invstd, expected.invstd), kDoubleTolerance) << "save_invstd";
  EXPECT_LE(relative_difference(rm, expected.running_mean), kDoubleTolerance) << "running_mean";
  EXPECT_LE(relative_difference(rv, expected.running_var), kDoubleTolerance) << "running_var";
}

TEST_P(BatchNormTest, InferenceForwardUsesRunningStatistics) {
  forward(BatchNormMode::Inference);
  EXPECT_LE(relative_difference(y, testing::naive_batchnorm_inference(x, weight, bias, running_mean,
                                                                      running_var, 1e-5)),
            kDoubleTolerance);
  EXPECT_DOUBLE_EQ(save_mean.item(0), running_mean.item(0)) << "inference reports the running mean";
  EXPECT_DOUBLE_EQ(save_invstd.item(0), 1.0 / std::sqrt(running_var.item(0) + 1e-5));
}

TEST_P(BatchNormTest, TrainingBackwardMatchesFiniteDifferences) {
  expect_backward_matches_finite_differences(BatchNormMode::Training);
}

TEST_P(BatchNormTest, InferenceBackwardMatchesFiniteDifferences) {
  expect_backward_matches_finite_differences(BatchNormMode::Inference);
}

INSTANTIATE_TEST_SUITE_P(Shapes, BatchNormTest,
                         ::testing::Values(BatchNormCase{"Batch1_Spatial", {1, 3, 10}},
                                           BatchNormCase{"Batch4_Spatial3x3", {4, 2, 9}},
                                           BatchNormCase{"NoSpatial", {5, 3, 1}},
                                           BatchNormCase{"OddSizes", {3, 5, 7}}),
                         [](const auto& info) { return info.param.name; });

TEST(BatchNorm, RunningStatisticsFollowPyTorchWithUnbiasedVariance) {
  // One channel holding 1, 2, 3, 4: mean 2.5, biased var 1.25, unbiased var 5/3. From running
  // mean 0 and var 1 with momentum 0.1, torch.nn.BatchNorm2d gives 0.25 and 0.9 + 0.1·5/3.
  const std::vector<double> x{1, 2, 3, 4};
  const double weight = 1, bias = 0;
  double running_mean = 0, running_var = 1, save_mean = 0, save_invstd = 0;
  std::vector<double> y(4);
  cpu::batchnorm_forward_training(x.data(), &weight, &bias, &running_mean, &running_var, y.data(),
                                  &save_mean, &save_invstd, cpu::BatchNormShape{2, 1, 2}, 1e-5,
                                  0.1);
  EXPECT_DOUBLE_EQ(running_mean, 0.25);
  EXPECT_NEAR(running_var, 0.9 + 0.1 * 5.0 / 3.0, 1e-15);
  EXPECT_DOUBLE_EQ(save_mean, 2.5);
  EXPECT_NEAR(save_invstd, 1.0 / std::sqrt(1.25 + 1e-5), 1e-15)
      << "normalisation uses the biased variance";
}

TEST(BatchNorm, InferenceBackwardDoesNotReadXSoAnInfiniteXLeavesDxFinite) {
  // With running statistics the normalisation is affine in x: PyTorch's dx is dy·invstd·weight.
  const std::vector<double> x{1, INFINITY, -INFINITY, NAN}, dy{1, 2, 3, 4};
  const double weight = 2, mean = 0.5, invstd = 0.25;
  std::vector<double> dx(4);
  double dweight = 0, dbias = 0;
  cpu::batchnorm_backward(dy.data(), x.data(), &weight, &mean, &invstd, dx.data(), &dweight, &dbias,
                          cpu::BatchNormShape{1, 1, 4}, BatchNormMode::Inference);
  EXPECT_EQ(dx, (std::vector<double>{0.5, 1.0, 1.5, 2.0}));
  EXPECT_EQ(dbias, 10);
}

TEST(BatchNorm, TrainingWithOneValuePerChannelIsBadInput) {
  const double x = 1, weight = 1, bias = 0;
  double rm = 0, rv = 1, y = 0, mean = 0, invstd = 0;
  try {
    cpu::batchnorm_forward_training(&x, &weight, &bias, &rm, &rv, &y, &mean, &invstd,
                                    cpu::BatchNormShape{1, 1, 1}, 1e-5, 0.1);
    FAIL() << "PyTorch refuses training batch norm with one value per channel";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find("more than 1 value per channel"), std::string::npos)
        << e.what();
  }
}

// ---- ReLU --------------------------------------------------------------------------------------

TEST(Relu, ForwardZeroesNegativesAndKeepsNaN) {
  const std::vector<double> x{-2, -0.0, 0, 3, NAN};
  std::vector<double> y(x.size());
  cpu::relu_forward(x.data(), y.data(), 5);
  EXPECT_EQ(y[0], 0);
  EXPECT_EQ(y[2], 0);
  EXPECT_EQ(y[3], 3);
  EXPECT_TRUE(std::isnan(y[4])) << "torch.relu(nan) is nan";
}

TEST(Relu, BackwardPassesGradientWhereOutputIsPositiveOrNaN) {
  const std::vector<double> y{0, 2, 0.5, NAN}, dy{10, 20, 30, 40};
  std::vector<double> dx(4);
  cpu::relu_backward(y.data(), dy.data(), dx.data(), 4);
  EXPECT_EQ(dx, (std::vector<double>{0, 20, 30, 40}))
      << "threshold_backward(dy, y, 0): zero where y <= 0";
}

// ---- pooling
// -------------------------------------------------------------------------------------

struct PoolCase {
  std::string name;
  cpu::PoolShape shape;
};

class MaxPoolTest : public ::testing::TestWithParam<PoolCase> {
 protected:
  const cpu::PoolShape& s() const { return GetParam().shape; }
  Shape x_shape() const { return {s().n, s().c, s().h, s().w}; }
  Shape y_shape() const { return {s().n, s().c, s().p(), s().q()}; }
};

TEST_P(MaxPoolTest, ForwardMatchesNaiveIncludingTiesAndNaN) {
  // Values from {-2, ..., 2} make ties common; a few NaN and -inf test the other rules.
  Pcg32 rng(21);
  Tensor x = Tensor::empty(x_shape(), DType::F64);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const uint32_t draw = rng.below(40);
    x.data<double>()[i] = draw == 0   ? NAN
                          : draw == 1 ? -INFINITY
                                      : static_cast<double>(draw % 5) - 2;
  }
  Tensor y = Tensor::empty(y_shape(), DType::F64), indices = Tensor::empty(y_shape(), DType::I64);
  cpu::maxpool2d_forward(x.data<double>(), y.data<double>(), indices.data<int64_t>(), s());
  const auto expected = testing::naive_maxpool2d(x, s().kernel, s().stride, s().padding);
  for (int64_t i = 0; i < y.numel(); ++i) {
    ASSERT_EQ(indices.data<int64_t>()[i], expected.indices.data<int64_t>()[i]) << "output " << i;
    ASSERT_TRUE(y.item(i) == expected.y.item(i) ||
                (std::isnan(y.item(i)) && std::isnan(expected.y.item(i))));
  }
}

TEST_P(MaxPoolTest, BackwardMatchesFiniteDifferences) {
  // Distinct values 0.1 apart: a step of 1e-4 never changes which element wins.
  Tensor x = Tensor::empty(x_shape(), DType::F64);
  Pcg32 rng(22);
  std::vector<int64_t> order(static_cast<size_t>(x.numel()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  for (size_t i = order.size(); i > 1; --i)
    std::swap(order[i - 1], order[rng.below(static_cast<uint32_t>(i))]);
  for (int64_t i = 0; i < x.numel(); ++i)
    x.data<double>()[i] = 0.1 * static_cast<double>(order[static_cast<size_t>(i)]);
  const Tensor dy = random_tensor(y_shape(), 23);
  Tensor y = Tensor::empty(y_shape(), DType::F64), indices = Tensor::empty(y_shape(), DType::I64);
  Tensor dx = Tensor::full(x_shape(), NAN, DType::F64);
  cpu::maxpool2d_forward(x.data<double>(), y.data<double>(), indices.data<int64_t>(), s());
  cpu::maxpool2d_backward(dy.data<double>(), indices.data<int64_t>(), dx.data<double>(), s());
  const auto loss = [&] {
    cpu::maxpool2d_forward(x.data<double>(), y.data<double>(), indices.data<int64_t>(), s());
    return weighted_sum(y, dy);
  };
  const auto check = compare_gradient(dx, numeric_gradient(loss, x, {.step = 1e-4}), 1e-9, 1e-9);
  EXPECT_TRUE(check.ok) << check.message << " (piecewise linear: exact up to rounding)";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MaxPoolTest,
    ::testing::Values(PoolCase{"ResNet_3x3_Stride2_Pad1", {2, 2, 9, 9, 3, 2, 1}},
                      PoolCase{"OddSizes_3x3_Stride2_Pad1", {1, 3, 7, 6, 3, 2, 1}},
                      PoolCase{"Batch1_2x2_Stride2_Pad0", {1, 2, 6, 6, 2, 2, 0}},
                      PoolCase{"Overlapping_3x3_Stride1_Pad1", {1, 1, 5, 5, 3, 1, 1}}),
    [](const auto& info) { return info.param.name; });

// The three cases below were run through torch 1.13's max_pool2d(x, 3, 2, 1, return_indices=True).
std::vector<int64_t> maxpool_indices_3x3(const std::vector<float>& plane) {
  std::vector<float> y(4);
  std::vector<int64_t> indices(4);
  cpu::maxpool2d_forward(plane.data(), y.data(), indices.data(),
                         cpu::PoolShape{1, 1, 3, 3, 3, 2, 1});
  return indices;
}

TEST(MaxPool, TiesKeepTheFirstMaximumInScanOrderAsPyTorch) {
  EXPECT_EQ(maxpool_indices_3x3(std::vector<float>(9, 3.0f)), (std::vector<int64_t>{0, 1, 3, 4}));
}

TEST(MaxPool, NaNWinsOverLargerValuesAsPyTorch) {
  EXPECT_EQ(maxpool_indices_3x3({1, 2, 2, NAN, 5, NAN, 5, 0, 1}),
            (std::vector<int64_t>{3, 5, 3, 5}));
}

TEST(MaxPool, WindowOfNegativeInfinityReportsItsFirstElementAsPyTorch) {
  EXPECT_EQ(maxpool_indices_3x3(std::vector<float>(9, -INFINITY)),
            (std::vector<int64_t>{0, 1, 3, 4}));
}

TEST(AdaptiveAvgPool, ForwardMatchesNaiveMean) {
  const Tensor x = random_tensor({2, 3, 5, 7}, 31);
  Tensor y = Tensor::empty({2, 3, 1, 1}, DType::F64);
  cpu::adaptive_avgpool_forward(x.data<double>(), y.data<double>(), 6, 35);
  EXPECT_LE(relative_difference(y, testing::naive_adaptive_avgpool(x)), kDoubleTolerance);
}

TEST(AdaptiveAvgPool, BackwardMatchesFiniteDifferences) {
  Tensor x = random_tensor({2, 3, 5, 7}, 32);
  const Tensor dy = random_tensor({2, 3, 1, 1}, 33);
  Tensor y = Tensor::empty({2, 3, 1, 1}, DType::F64), dx = Tensor::empty(x.shape(), DType::F64);
  cpu::adaptive_avgpool_backward(dy.data<double>(), dx.data<double>(), 6, 35);
  const auto loss = [&] {
    cpu::adaptive_avgpool_forward(x.data<double>(), y.data<double>(), 6, 35);
    return weighted_sum(y, dy);
  };
  const auto check =
      compare_gradient(dx, numeric_gradient(loss, x, kLinearOpDifferences), 1e-10, 1e-9);
  EXPECT_TRUE(check.ok) << check.message;
}

// ---- linear ------------------------------------------------------------------------------------

TEST(Linear, ForwardMatchesNaive) {
  const Tensor x = random_tensor({3, 7}, 41), w = random_tensor({5, 7}, 42),
               b = random_tensor({5}, 43);
  Tensor y = Tensor::full({3, 5}, NAN, DType::F64);
  cpu::linear_forward(x.data<double>(), w.data<double>(), b.data<double>(), y.data<double>(),
                      {3, 7, 5});
  EXPECT_LE(relative_difference(y, testing::naive_linear(x, w, b)), kDoubleTolerance);
}

TEST(Linear, BackwardMatchesFiniteDifferences) {
  const cpu::LinearShape s{3, 7, 5};
  Tensor x = random_tensor({3, 7}, 44), w = random_tensor({5, 7}, 45), b = random_tensor({5}, 46);
  const Tensor dy = random_tensor({3, 5}, 47);
  Tensor y = Tensor::empty({3, 5}, DType::F64);
  Tensor dx = Tensor::empty(x.shape(), DType::F64), dw = Tensor::empty(w.shape(), DType::F64);
  Tensor db = Tensor::empty(b.shape(), DType::F64);
  cpu::linear_backward(x.data<double>(), w.data<double>(), dy.data<double>(), dx.data<double>(),
                       dw.data<double>(), db.data<double>(), s);
  const auto loss = [&] {
    cpu::linear_forward(x.data<double>(), w.data<double>(), b.data<double>(), y.data<double>(), s);
    return weighted_sum(y, dy);
  };
  for (auto [analytic, input, name] : {std::tuple{dx, x, "dx"}, {dw, w, "dw"}, {db, b, "db"}}) {
    const auto check = compare_gradient(
        analytic, numeric_gradient(loss, input, kLinearOpDifferences), 1e-10, 1e-9);
    EXPECT_TRUE(check.ok) << name << ": " << check.message;
  }
}

// ---- cross-entropy
// -------------------------------------------------------------------------------

TEST(CrossEntropy, ForwardMatchesNaiveAndStaysFiniteForHugeLogits) {
  Tensor logits = random_tensor({4, 6}, 51, -3, 3);
  logits.data<double>()[0] = 1000;   // exp would overflow without the max shift
  logits.data<double>()[7] = -1000;  // the label of sample 1 below: log-probability ~ -1000
  const Tensor labels = Tensor::from_vector(std::vector<int64_t>{2, 1, 5, 0}, {4});
  Tensor probs = Tensor::empty({4, 6}, DType::F64);
  const double loss = cpu::cross_entropy_forward(logits.data<double>(), labels.data<int64_t>(),
                                                 probs.data<double>(), 4, 6);
  EXPECT_NEAR(loss, testing::naive_cross_entropy(logits, labels), 1e-12 * std::fabs(loss));
  for (int64_t i = 0; i < 4; ++i) {
    double sum = 0;
    for (int64_t j = 0; j < 6; ++j) sum += probs.item(i * 6 + j);
    EXPECT_NEAR(sum, 1.0, 1e-12) << "probs of sample " << i << " are a softmax";
  }
}

TEST(CrossEntropy, BackwardMatchesFiniteDifferencesOfTheMeanLoss) {
  Tensor logits = random_tensor({4, 6}, 52, -3, 3);
  const Tensor labels = Tensor::from_vector(std::vector<int64_t>{2, 1, 5, 0}, {4});
  Tensor probs = Tensor::empty({4, 6}, DType::F64), dlogits = Tensor::empty({4, 6}, DType::F64);
  cpu::cross_entropy_forward(logits.data<double>(), labels.data<int64_t>(), probs.data<double>(), 4,
                             6);
  cpu::cross_entropy_backward(probs.data<double>(), labels.data<int64_t>(), dlogits.data<double>(),
                              4, 6);
  const auto loss = [&] {
    return cpu::cross_entropy_forward(logits.data<double>(), labels.data<int64_t>(),
                                      probs.data<double>(), 4, 6);
  };
  const auto check =
      compare_gradient(dlogits, numeric_gradient(loss, logits, {.step = 1e-5}), 1e-9, 1e-7);
  EXPECT_TRUE(check.ok) << check.message << " (step 1e-5: truncation error ~1e-10)";
}

void expect_bad_label_error(std::vector<int64_t> labels, const std::string& named) {
  const std::vector<float> logits(3 * 4, 0.0f);
  std::vector<float> probs(logits.size());
  try {
    cpu::cross_entropy_forward(logits.data(), labels.data(), probs.data(), 3, 4);
    FAIL() << "labels outside [0, 4) must be rejected";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find(named), std::string::npos) << e.what();
  }
}

TEST(CrossEntropy, LabelTooLargeIsBadInputNamingSampleAndValue) {
  expect_bad_label_error({0, 4, 1}, "label 4 of sample 1");
}

TEST(CrossEntropy, NegativeLabelIsBadInputNamingSampleAndValue) {
  expect_bad_label_error({0, 1, -1}, "label -1 of sample 2");
}

// ---- SGD
// -----------------------------------------------------------------------------------------

struct SgdCase {
  std::string name;
  SgdOptions options;
  std::vector<double>
      expected;  // the parameter after each of 3 steps from 1.0 with grads 0.5, -0.25, 1
};

class SgdTest : public ::testing::TestWithParam<SgdCase> {};

TEST_P(SgdTest, ThreeStepsMatchTorchOptimSgd) {
  double param = 1.0, buffer = 0.0;
  const double grads[] = {0.5, -0.25, 1.0};
  for (int step = 0; step < 3; ++step) {
    cpu::sgd_update(&param, &grads[step], &buffer, 1, step == 0, GetParam().options);
    EXPECT_NEAR(param, GetParam().expected[static_cast<size_t>(step)], 1e-15)
        << "after step " << step + 1;
  }
}

// Expected values by hand, confirmed with torch.optim.SGD in float64. For NesterovWithWeightDecay:
// d_p = 0.5 + 0.01 = 0.51 = buf; p = 1 - 0.1(0.51 + 0.9·0.51) = 0.9031; then d_p = -0.25 +
// 0.009031, buf = 0.9·0.51 + d_p = 0.218031, p = 0.9031 - 0.1(d_p + 0.9 buf) = 0.90757411; and so
// on.
INSTANTIATE_TEST_SUITE_P(
    Sequences, SgdTest,
    ::testing::Values(SgdCase{"NesterovWithWeightDecay",
                              {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true},
                              {0.9031, 0.90757411, 0.6981892081909999}},
                      SgdCase{"MomentumWithDampeningClonesFirstGrad",
                              {.lr = 0.1, .momentum = 0.9, .dampening = 0.5},
                              {0.95, 0.9175, 0.8382499999999999}},
                      SgdCase{"PlainWithWeightDecay",
                              {.lr = 0.1, .weight_decay = 0.1},
                              {0.94, 0.9555999999999999, 0.846044}}),
    [](const auto& info) { return info.param.name; });

// ---- CpuBackend: fp32 against fp64 through the Backend interface
// ----------------------------------

Tensor input(const Shape& shape, uint64_t seed, DType dtype, double lo = -1.0, double hi = 1.0) {
  return random_tensor(shape, seed, lo, hi).to(dtype);
}

// Runs ops through the Backend interface on seeded inputs of one dtype and returns their outputs.
struct BackendOpCase {
  std::string name;
  std::function<std::vector<Tensor>(Backend&, DType)> run;
};

const std::vector<BackendOpCase> kBackendOpCases = {
    {"Conv2d",
     [](Backend& b, DType d) {
       const Tensor x = input({2, 3, 9, 9}, 1, d), w = input({4, 3, 3, 3}, 2, d),
                    dy = input({2, 4, 5, 5}, 3, d);
       Tensor y, dx = b.zeros(x.shape(), d), dw = b.zeros(w.shape(), d);
       b.conv2d_forward(x, w, y, {.stride = 2, .padding = 1});
       b.conv2d_backward_data(dy, w, dx, {.stride = 2, .padding = 1});
       b.conv2d_backward_filter(x, dy, dw, {.stride = 2, .padding = 1});
       return std::vector<Tensor>{y, dx, dw};
     }},
    {"BatchNormTrainingAndInference",
     [](Backend& b, DType d) {
       const Tensor x = input({3, 4, 5, 5}, 4, d, -2, 3), dy = input(x.shape(), 5, d);
       const Tensor weight = input({4}, 6, d, 0.5, 1.5), bias = input({4}, 7, d);
       Tensor rm = input({4}, 8, d), rv = input({4}, 9, d, 0.5, 2), outputs[2][6];
       for (BatchNormMode mode : {BatchNormMode::Training, BatchNormMode::Inference}) {
         auto& [y, mean, invstd, dx, dweight, dbias] =
             outputs[mode == BatchNormMode::Training ? 0 : 1];
         b.batchnorm_forward(x, weight, bias, rm, rv, y, mean, invstd, {.mode = mode});
         b.batchnorm_backward(dy, x, weight, mean, invstd, dx, dweight, dbias, {.mode = mode});
       }
       std::vector<Tensor> all{rm, rv};
       for (auto& run : outputs) all.insert(all.end(), std::begin(run), std::end(run));
       return all;
     }},
    {"ReluMaxPoolAvgPool",
     [](Backend& b, DType d) {
       const Tensor x = input({2, 3, 9, 9}, 10, d);
       Tensor r, dr, m, indices, dm = b.zeros(x.shape(), d), a, da = b.zeros({2, 3, 5, 5}, d);
       b.relu_forward(x, r);
       b.relu_backward(r, input(x.shape(), 11, d), dr);
       b.maxpool2d_forward(r, m, indices, {});
       b.maxpool2d_backward(input(m.shape(), 12, d), indices, dm, {});
       b.adaptive_avgpool_forward(m, a);
       b.adaptive_avgpool_backward(input(a.shape(), 13, d), da);
       return std::vector<Tensor>{r, dr, m, indices, dm, a, da};
     }},
    {"LinearAndCrossEntropy",
     [](Backend& b, DType d) {
       const Tensor x = input({4, 6, 1, 1}, 14, d), w = input({5, 6}, 15, d),
                    bias = input({5}, 16, d);
       const Tensor labels = Tensor::from_vector(std::vector<int64_t>{4, 0, 2, 2}, {4});
       Tensor logits, probs, dlogits, dx = b.empty(x.shape(), d), dw, db;
       b.linear_forward(x, w, bias, logits);
       const double loss = b.cross_entropy_forward(logits, labels, probs);
       b.cross_entropy_backward(probs, labels, dlogits);
       b.linear_backward(x, w, dlogits, dx, dw, db);
       return std::vector<Tensor>{Tensor::full({1}, loss, d), logits, probs, dlogits, dx, dw, db};
     }},
    {"ElementwiseAndSgd",
     [](Backend& b, DType d) {
       Tensor param = input({3, 7}, 17, d), grad = input({3, 7}, 18, d), sum, buffer;
       b.add(param, grad, sum);
       b.accumulate(sum, grad);
       b.multiply_(sum, Tensor::full({1}, 0.5, DType::F32));
       const SgdOptions options{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4, .nesterov = true};
       for (int step = 0; step < 3; ++step) b.sgd_update(param, sum, buffer, step == 0, options, Tensor());
       return std::vector<Tensor>{sum, param, buffer};
     }},
};

class CpuBackendPrecisionTest : public ::testing::TestWithParam<BackendOpCase> {};

TEST_P(CpuBackendPrecisionTest, Fp32AgreesWithFp64) {
  auto backend = make_cpu_backend();
  const std::vector<Tensor> f32 = GetParam().run(*backend, DType::F32),
                            f64 = GetParam().run(*backend, DType::F64);
  ASSERT_EQ(f32.size(), f64.size());
  for (size_t i = 0; i < f32.size(); ++i) {
    if (f64[i].dtype() == DType::F64)
      EXPECT_EQ(f32[i].dtype(), DType::F32) << "output " << i << " keeps fp32";
    EXPECT_LE(relative_difference(f32[i], f64[i]), 2e-6)
        << "output " << i
        << ": fp32 rounding (~6e-8) grown by short sums and double accumulation stays below 2e-6";
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, CpuBackendPrecisionTest, ::testing::ValuesIn(kBackendOpCases),
                         [](const auto& info) { return info.param.name; });

// ---- CpuBackend: checks and allocation ---------------------------------------------------------

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(CpuBackend, ConvChannelMismatchErrorNamesTheOpAndShapes) {
  auto b = make_cpu_backend();
  Tensor y;
  const std::string message = error_of([&] {
    b->conv2d_forward(Tensor::zeros({1, 3, 8, 8}), Tensor::zeros({4, 2, 3, 3}), y, {});
  });
  for (const char* part : {"conv2d_forward", "[1, 3, 8, 8]", "[4, 2, 3, 3]"})
    EXPECT_NE(message.find(part), std::string::npos) << message;
}

TEST(CpuBackend, MixedDtypesAreRejectedNamingTheTensor) {
  auto b = make_cpu_backend();
  Tensor out;
  const std::string message =
      error_of([&] { b->add(Tensor::zeros({2}), Tensor::zeros({2}, DType::F64), out); });
  EXPECT_NE(message.find("add: b has dtype F64"), std::string::npos) << message;
}

TEST(CpuBackend, UndefinedOutputsAreAllocatedWithTheirShapes) {
  auto b = make_cpu_backend();
  Tensor y, pooled, indices;
  b->conv2d_forward(Tensor::zeros({2, 3, 8, 8}), Tensor::zeros({5, 3, 3, 3}), y,
                    {.stride = 2, .padding = 1});
  EXPECT_EQ(y.shape(), (Shape{2, 5, 4, 4}));
  b->maxpool2d_forward(y, pooled, indices, {});
  EXPECT_EQ(pooled.shape(), (Shape{2, 5, 2, 2}));
  EXPECT_EQ(indices.dtype(), DType::I64);
}

TEST(CpuBackend, ConvBackwardDataNeedsAnAllocatedDx) {
  auto b = make_cpu_backend();
  Tensor dx;
  const std::string message = error_of([&] {
    b->conv2d_backward_data(Tensor::zeros({1, 4, 4, 4}), Tensor::zeros({4, 3, 3, 3}), dx, {});
  });
  EXPECT_NE(message.find("dx must be allocated"), std::string::npos)
      << message << " (stride 2 hides H and W)";
}

TEST(CpuBackend, LinearBackwardLeavesAnUndefinedDxUndefined) {
  auto b = make_cpu_backend();
  Tensor dx, dw, db;
  b->linear_backward(Tensor::zeros({2, 3}), Tensor::zeros({4, 3}), Tensor::zeros({2, 4}), dx, dw,
                     db);
  EXPECT_FALSE(dx.defined());
  EXPECT_EQ(dw.shape(), (Shape{4, 3}));
}

TEST(CpuBackend, CrossEntropyTakesInt32LabelsAndRejectsOutOfRangeOnes) {
  auto b = make_cpu_backend();
  Tensor probs;
  const Tensor good = Tensor::from_vector(std::vector<int64_t>{1, 2}, {2}).to(DType::I32);
  EXPECT_NEAR(b->cross_entropy_forward(Tensor::zeros({2, 3}), good, probs), std::log(3.0), 1e-6)
      << "uniform logits over 3 classes: loss log 3";
  const Tensor bad = Tensor::from_vector(std::vector<int64_t>{1, 3}, {2}).to(DType::I32);
  try {
    b->cross_entropy_forward(Tensor::zeros({2, 3}), bad, probs);
    FAIL() << "label 3 of 3 classes must be rejected";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find("label 3 of sample 1"), std::string::npos) << e.what();
  }
}

TEST(CpuBackend, SgdAllocatesTheMomentumBufferOnTheFirstStep) {
  auto b = make_cpu_backend();
  Tensor param = Tensor::full({3}, 1.0), grad = Tensor::full({3}, 0.5), buffer;
  b->sgd_update(param, grad, buffer, true, {.lr = 0.1, .momentum = 0.9}, Tensor());
  ASSERT_TRUE(buffer.defined());
  EXPECT_FLOAT_EQ(buffer.item(2), 0.5f) << "the first buffer is a copy of d_p";
  EXPECT_FLOAT_EQ(param.item(2), 0.95f);
}

// The update of many parameters at once (by default one sgd_update each) updates each as it
// alone would, allocates each one's momentum buffer on the first step, and skips them all on a
// nonzero skip_if.
TEST(CpuBackend, SgdUpdateAllUpdatesEachParameterAsItsOwnUpdate) {
  auto b = make_cpu_backend();
  const SgdOptions o{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-2};
  std::vector<Tensor> params{Tensor::full({3}, 1.0), Tensor::full({2, 2}, -2.0)}, buffers(2);
  const std::vector<Tensor> grads{Tensor::full({3}, 0.5), Tensor::full({2, 2}, 0.25)};
  std::vector<Tensor> expected{params[0].clone(), params[1].clone()}, expected_buffers(2);
  const std::vector<SgdTensors> list{{&params[0], &grads[0], &buffers[0]}, {&params[1], &grads[1], &buffers[1]}};
  for (int step = 0; step < 2; ++step) {
    b->sgd_update_all(list, step == 0, o, Tensor::full({1}, 0.0));
    for (size_t i = 0; i < 2; ++i) b->sgd_update(expected[i], grads[i], expected_buffers[i], step == 0, o, Tensor());
  }
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_TRUE(buffers[i].defined()) << i;
    EXPECT_TRUE(testing::bitwise_equal(params[i], expected[i])) << i;
    EXPECT_TRUE(testing::bitwise_equal(buffers[i], expected_buffers[i])) << i;
  }
  b->sgd_update_all(list, false, o, Tensor::full({1}, 1.0));
  for (size_t i = 0; i < 2; ++i) EXPECT_TRUE(testing::bitwise_equal(params[i], expected[i])) << "skipped: " << i;
}

}  // namespace
}  // namespace hookrt
