// The CUDA backend against the CPU reference backend, op by op, forward and backward. Every op runs
// on both backends from the same seeded host inputs (the GPU gets them through from_host) and each
// result is compared per tensor, with a tolerance that says why it was chosen. As in ggml's
// test-backend-ops, every output a test allocates sits between guard bytes that must survive the
// op, and starts as NaN so that an element the op never writes shows. GPU tests start with
// HOOKRT_GPU_OR_SKIP(gpu) and skip, saying why, where there is no GPU or no CUDA build.
// This file: convolution (forward, backward data and filter) and batch norm (training and
// inference), in F32, BF16 and F16; the harness is tests/support/gpu_ops.h.
#include <gtest/gtest.h>

#include "support/gpu_op_cases.h"
#include "support/gpu_ops.h"
#include "test_gpu_half_tolerance.h"

namespace hookrt {
namespace {

using namespace testing::gpu_ops;

// ---- convolution ---------------------------------------------------------------------------------

// Shapes drawn from a fixed seed: kernels 1/3/5/7 (sometimes rectangular), strides 1-3, padding up
// to half the smaller kernel side, 1-20 channels, inputs at least as large as the padded kernel.
std::vector<ConvCase> seeded_conv_cases(int count) {
  Pcg32 rng(0xC0417);
  const int64_t kernels[] = {1, 3, 5, 7};
  std::vector<ConvCase> cases;
  for (int i = 0; i < count; ++i) {
    ConvCase c{};
    c.n = 1 + rng.below(3);
    c.c = 1 + rng.below(20);
    c.k = 1 + rng.below(20);
    c.r = kernels[rng.below(4)];
    c.s = rng.below(4) == 0 ? kernels[rng.below(4)] : c.r;
    c.stride = 1 + static_cast<int>(rng.below(3));
    c.padding = static_cast<int>(rng.below(static_cast<uint32_t>(std::min(c.r, c.s) / 2 + 1)));
    c.h = std::max<int64_t>(c.r - 2 * c.padding, 1) + rng.below(20);
    c.w = std::max<int64_t>(c.s - 2 * c.padding, 1) + rng.below(20);
    c.name = "Seeded" + std::to_string(i) + "_N" + std::to_string(c.n) + "C" + std::to_string(c.c) + "H" +
             std::to_string(c.h) + "W" + std::to_string(c.w) + "_K" + std::to_string(c.k) + "_" +
             std::to_string(c.r) + "x" + std::to_string(c.s) + "_Stride" + std::to_string(c.stride) + "_Pad" +
             std::to_string(c.padding);
    cases.push_back(c);
  }
  return cases;
}

std::vector<ConvCase> conv_cases() {
  std::vector<ConvCase> cases = {
      {"ResNetStem_3to64_64x64_7x7_Stride2_Pad3", 2, 3, 64, 64, 64, 7, 7, 2, 3},
      {"ResNetLayer1_64x56x56_3x3", 4, 64, 56, 56, 64, 3, 3, 1, 1},
      {"ResNetDownsample_64to128_56x56_3x3_Stride2", 2, 64, 56, 56, 128, 3, 3, 2, 1},
      {"ResNetShortcut_64to128_56x56_1x1_Stride2", 2, 64, 56, 56, 128, 1, 1, 2, 0},
      {"ResNetLayer4_512x7x7_3x3", 2, 512, 7, 7, 512, 3, 3, 1, 1},
      {"Batch1_OddSizes_3x3_Stride2_Pad1", 1, 3, 9, 7, 5, 3, 3, 2, 1},
      {"OddChannels_13to21_17x19_3x3", 3, 13, 17, 19, 21, 3, 3, 1, 1},
      {"Pointwise_37to29_11x11", 2, 37, 11, 11, 29, 1, 1, 1, 0},
      {"Batch1_7x7_Stride1_Pad3", 1, 5, 15, 15, 6, 7, 7, 1, 3},
      {"StrideLeavesTheLastRowUnused_3x3_Stride2_Pad0", 2, 4, 8, 8, 3, 3, 3, 2, 0},
      {"Rectangular_1x3_Stride2", 2, 4, 8, 9, 5, 1, 3, 2, 0},
      {"Batch1_OnePixel_Pointwise", 1, 7, 1, 1, 3, 1, 1, 1, 0},
  };
  for (const ConvCase& c : seeded_conv_cases(4)) cases.push_back(c);
  return cases;
}

const std::vector<ConvCase> kConvCases = conv_cases();

class Conv2dTest : public ::testing::TestWithParam<ConvCase> {
 protected:
  const ConvCase& c() const { return GetParam(); }
  uint64_t seed() const { return seed_of(c().name); }
  Op forward() const {
    return [this, x = uniform(c().x(), seed()), w = uniform(c().weight(), seed() + 1)](OpRun& run) {
      Tensor y = run.output(c().y());
      run.backend().conv2d_forward(run.input(x), run.input(w), y, c().geometry());
      return Results{{"y", run.result(y), kConvolution}};
    };
  }
};

TEST_P(Conv2dTest, ForwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward());
}

TEST_P(Conv2dTest, ForwardAllocatesAnUndefinedY) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward(), Outputs::Undefined);
}

TEST_P(Conv2dTest, BackwardDataMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor dy = uniform(c().y(), seed() + 2), w = uniform(c().weight(), seed() + 3);
  expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
    Tensor dx = run.allocated_output(c().x());  // both backends need dx allocated: stride hides H, W
    run.backend().conv2d_backward_data(run.input(dy), run.input(w), dx, c().geometry());
    return Results{{"dx", run.result(dx), kConvolution}};
  });
}

TEST_P(Conv2dTest, BackwardFilterMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor x = uniform(c().x(), seed() + 4), dy = uniform(c().y(), seed() + 5);
  expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
    Tensor dw = run.allocated_output(c().weight());  // both backends need dw allocated
    run.backend().conv2d_backward_filter(run.input(x), run.input(dy), dw, c().geometry());
    return Results{{"dw", run.result(dw), kConvolution}};
  });
}

// BF16 and F16: x, w and y (dy, dx, dw) all of one half dtype; each output sums n products in F32
// (forward: C·R·S, backward data: at most K·R·S, backward filter: N·P·Q) in cuDNN's order and the
// CPU's, then rounds once. The products of the half inputs drawn here are at most max|a|·max|b|
// (< 1), hence the bound of half_tolerance with f32_sums_may_differ_by(n, max|a|·max|b|).
Tolerance conv_half_tolerance(DType half, int64_t n, const Tensor& a, const Tensor& b) {
  return half_tolerance(half, f32_sums_may_differ_by(n, max_abs(a) * max_abs(b)),
                        "half outputs of F32 sums in two orders: one half step (2^-7·|cpu| for BF16, 2^-10·|cpu| "
                        "for F16) plus the F32 order's difference, 8·√n·n·2^-24·max|a|·max|b|");
}

TEST_P(Conv2dTest, ForwardInBf16AndF16MatchesCpuWithinOneHalfStep) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    const Tensor x = uniform(c().x(), seed()).to(half), w = uniform(c().weight(), seed() + 1).to(half);
    const Tolerance tolerance = conv_half_tolerance(half, c().c * c().r * c().s, x, w);
    expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
      Tensor y = run.output(c().y(), half);
      run.backend().conv2d_forward(run.input(x), run.input(w), y, c().geometry());
      return Results{{"y", run.result(y), tolerance}};
    });
  }
}

TEST_P(Conv2dTest, BackwardDataInBf16AndF16MatchesCpuWithinOneHalfStep) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    const Tensor dy = uniform(c().y(), seed() + 2).to(half), w = uniform(c().weight(), seed() + 3).to(half);
    const Tolerance tolerance = conv_half_tolerance(half, c().k * c().r * c().s, dy, w);
    expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
      Tensor dx = run.allocated_output(c().x(), half);
      run.backend().conv2d_backward_data(run.input(dy), run.input(w), dx, c().geometry());
      return Results{{"dx", run.result(dx), tolerance}};
    });
  }
}

TEST_P(Conv2dTest, BackwardFilterInBf16AndF16MatchesCpuWithinOneHalfStep) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    const Tensor x = uniform(c().x(), seed() + 4).to(half), dy = uniform(c().y(), seed() + 5).to(half);
    const Tolerance tolerance = conv_half_tolerance(half, c().y()[0] * c().y()[2] * c().y()[3], x, dy);
    expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
      Tensor dw = run.allocated_output(c().weight(), half);
      run.backend().conv2d_backward_filter(run.input(x), run.input(dy), dw, c().geometry());
      return Results{{"dw", run.result(dw), tolerance}};
    });
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Conv2dTest, ::testing::ValuesIn(kConvCases), case_name<ConvCase>);

// An empty batch: no output, no dx, and a zero dw, which the GPU writes itself (cuDNN is not
// called on an empty tensor, as PyTorch does not call it).
TEST(Conv2dEmptyBatch, GivesAZeroFilterGradient) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const ConvCase c{"EmptyBatch", 0, 3, 8, 8, 4, 3, 3, 1, 1};
  const Tensor x = uniform(c.x(), 1), w = uniform(c.weight(), 2), dy = uniform(c.y(), 3);
  expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
    Tensor y = run.output(c.y());
    Tensor dx = run.allocated_output(c.x()), dw = run.allocated_output(c.weight());
    run.backend().conv2d_forward(run.input(x), run.input(w), y, c.geometry());
    run.backend().conv2d_backward_data(run.input(dy), run.input(w), dx, c.geometry());
    run.backend().conv2d_backward_filter(run.input(x), run.input(dy), dw, c.geometry());
    return Results{{"y", run.result(y), kExact}, {"dx", run.result(dx), kExact}, {"dw", run.result(dw), kExact}};
  });
}

// ---- batch norm ----------------------------------------------------------------------------------

struct BatchNormCase {
  std::string name;
  Shape shape;  // (N, C, ...)
  double momentum = 0.1;
  double eps = 1e-5;
};
void PrintTo(const BatchNormCase& c, std::ostream* os) { *os << c.name; }

std::vector<BatchNormCase> batchnorm_cases() {
  std::vector<BatchNormCase> cases = {
      {"ResNetLayer1_4x64x56x56", {4, 64, 56, 56}},
      {"ResNetLayer4_16x512x7x7", {16, 512, 7, 7}},
      {"Batch1_OddSizes_13Channels_5x7", {1, 13, 5, 7}},
      {"OneValuePerPlane_2x21x1x1", {2, 21, 1, 1}},
      {"Features_5x10", {5, 10}},
      {"Momentum0.3_Eps1e-3_3x7x6x5", {3, 7, 6, 5}, 0.3, 1e-3},
  };
  cases[5].name = "Momentum0p3_Eps1em3_3x7x6x5";  // gtest names: letters, digits and _
  Pcg32 rng(0xBA7C4);
  for (int i = 0; i < 3; ++i) {
    BatchNormCase c;
    const int64_t n = 1 + rng.below(4), channels = 1 + rng.below(20);
    int64_t h = 1 + rng.below(9);
    const int64_t w = 1 + rng.below(9);
    if (n * h * w < 2) h = 2;  // training needs more than one value per channel
    c.shape = {n, channels, h, w};
    c.name = "Seeded" + std::to_string(i) + "_" + std::to_string(n) + "x" + std::to_string(channels) + "x" +
             std::to_string(h) + "x" + std::to_string(w);
    cases.push_back(c);
  }
  return cases;
}

const std::vector<BatchNormCase> kBatchNormCases = batchnorm_cases();

// Channel c holds offset_c + scale_c·u with offsets in [-1, 1) and scales in [0.5, 2): batch means
// are not all near zero, so save_mean is compared against a scale it actually has.
Tensor batchnorm_input(const Shape& shape, uint64_t seed) {
  Tensor x = uniform(shape, seed);
  const int64_t n = shape[0], channels = shape[1], plane = x.numel() / std::max<int64_t>(n * channels, 1);
  const Tensor offset = uniform({channels}, seed + 1), scale = uniform({channels}, seed + 2, 0.5, 2.0);
  float* p = x.data<float>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t j = 0; j < plane; ++j) {
        float& v = p[(i * channels + c) * plane + j];
        v = offset.data<float>()[c] + scale.data<float>()[c] * v;
      }
  return x;
}

class BatchNormTest : public ::testing::TestWithParam<BatchNormCase> {
 protected:
  void SetUp() override {
    const uint64_t seed = seed_of(GetParam().name);
    const Shape channels{GetParam().shape[1]};
    x_ = batchnorm_input(GetParam().shape, seed);
    dy_ = uniform(GetParam().shape, seed + 3);
    weight_ = uniform(channels, seed + 4, 0.5, 1.5);
    bias_ = uniform(channels, seed + 5, -0.5, 0.5);
    running_mean_ = uniform(channels, seed + 6, -0.5, 0.5);
    running_var_ = uniform(channels, seed + 7, 0.5, 2.0);
  }
  BatchNormOptions options(BatchNormMode mode) const {
    return {.mode = mode, .eps = GetParam().eps, .momentum = GetParam().momentum};
  }
  Shape channels() const { return {GetParam().shape[1]}; }

  Op forward(BatchNormMode mode) const {
    return [this, mode](OpRun& run) {
      Tensor running_mean = run.in_out(running_mean_), running_var = run.in_out(running_var_);
      Tensor y = run.output(x_.shape()), mean = run.output(channels()), invstd = run.output(channels());
      run.backend().batchnorm_forward(run.input(x_), run.input(weight_), run.input(bias_), running_mean, running_var,
                                      y, mean, invstd, options(mode));
      // Inference must leave the running statistics untouched (the CPU's are), bit for bit.
      const Tolerance& running = mode == BatchNormMode::Training ? kFp32 : kExact;
      return Results{{"y", run.result(y), kFp32},
                     {"save_mean", run.result(mean), kFp32},
                     {"save_invstd", run.result(invstd), kFp32},
                     {"running_mean", run.result(running_mean), running},
                     {"running_var", run.result(running_var), running}};
    };
  }

  // Both backends differentiate with the saved statistics of the CPU's forward, so that the
  // backward is compared on identical inputs.
  Op backward(BatchNormMode mode) const {
    auto cpu = make_cpu_backend();
    Tensor running_mean = running_mean_.clone(), running_var = running_var_.clone(), y, mean, invstd;
    cpu->batchnorm_forward(x_, weight_, bias_, running_mean, running_var, y, mean, invstd, options(mode));
    return [this, mode, mean, invstd](OpRun& run) {
      Tensor dx = run.output(x_.shape()), dweight = run.output(channels()), dbias = run.output(channels());
      run.backend().batchnorm_backward(run.input(dy_), run.input(x_), run.input(weight_), run.input(mean),
                                       run.input(invstd), dx, dweight, dbias, options(mode));
      return Results{{"dx", run.result(dx), kFp32},
                     {"dweight", run.result(dweight), kFp32},
                     {"dbias", run.result(dbias), kFp32}};
    };
  }

  Tensor x_, dy_, weight_, bias_, running_mean_, running_var_;
};

TEST_P(BatchNormTest, TrainingForwardMatchesCpuIncludingRunningStatistics) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward(BatchNormMode::Training));
}

TEST_P(BatchNormTest, TrainingForwardAllocatesUndefinedOutputs) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward(BatchNormMode::Training), Outputs::Undefined);
}

TEST_P(BatchNormTest, TrainingBackwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, backward(BatchNormMode::Training));
}

TEST_P(BatchNormTest, TrainingBackwardAllocatesUndefinedOutputs) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, backward(BatchNormMode::Training), Outputs::Undefined);
}

TEST_P(BatchNormTest, InferenceForwardMatchesCpuAndKeepsRunningStatistics) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward(BatchNormMode::Inference));
}

TEST_P(BatchNormTest, InferenceBackwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, backward(BatchNormMode::Inference));
}

// ---- batch norm on BF16 and F16 activations ------------------------------------------------------
//
// x, y, dy and dx BF16 or F16; weight, bias, the running and saved statistics, dweight and dbias
// F32. Both backends take the statistics and the backward's sums in double (in different orders: they agree
// to ~1e-15, so kFp32 for the F32 outputs) and fold them into per-channel F32 coefficients that
// then agree but where a double value lies at an F32 rounding boundary, where one differs by one F32
// step (2^-23 of it). Each element is then computed with the same F32 roundings and rounded once
// to the half dtype: one half step (half_tolerance) apart at most, plus the effect of a coefficient one F32 step
// off, 2^-23 of the terms it multiplies, taken 8 times over (2^-20) for the two backends and the
// few roundings after it:
//   y  = x·scale + shift,                                scale = invstd·w, shift = b - mean·scale
//   dx = (dy - mean(dy) - (x - mean)·projection)·gain,   gain = invstd·w, where the three terms
//        are at most max|dy|, max|dy| and |x̂|·max|dy| (Cauchy-Schwarz), x̂ = (x - mean)·invstd
class BatchNormHalfTest : public BatchNormTest {
 protected:
  void SetUp() override {
    BatchNormTest::SetUp();
    x32_ = x_;
    dy32_ = dy_;
  }
  // Runs the following ops on x and dy rounded to `half`.
  void use(DType half) {
    half_ = half;
    x_ = x32_.to(half);
    dy_ = dy32_.to(half);
  }
  // The statistics y is normalised with (the CPU's, which the GPU's match to ~1e-15).
  struct Statistics {
    Tensor mean, invstd;
  };
  Statistics statistics(BatchNormMode mode) const {
    auto cpu = make_cpu_backend();
    Tensor running_mean = running_mean_.clone(), running_var = running_var_.clone(), y, mean, invstd;
    cpu->batchnorm_forward(x_, weight_, bias_, running_mean, running_var, y, mean, invstd, options(mode));
    return {mean, invstd};
  }
  // max over channels of |scale|, |shift| and |gain| (= |scale|), and max |x̂|.
  struct Magnitudes {
    double scale = 0, shift = 0, normalised = 0;
  };
  Magnitudes magnitudes(const Statistics& s) const {
    Magnitudes m;
    const int64_t samples = GetParam().shape[0], channels = GetParam().shape[1];
    const int64_t plane = x_.numel() / std::max<int64_t>(samples * channels, 1);
    for (int64_t c = 0; c < channels; ++c) {
      const double scale = s.invstd.item(c) * weight_.item(c);
      m.scale = std::max(m.scale, std::fabs(scale));
      m.shift = std::max(m.shift, std::fabs(bias_.item(c) - s.mean.item(c) * scale));
      for (int64_t i = 0; i < samples; ++i)
        for (int64_t j = 0; j < plane; ++j) {
          const double x = x_.item((i * channels + c) * plane + j);
          m.normalised = std::max(m.normalised, std::fabs((x - s.mean.item(c)) * s.invstd.item(c)));
        }
    }
    return m;
  }

  Op forward_half(BatchNormMode mode) const {
    const Magnitudes m = magnitudes(statistics(mode));
    const Tolerance y_tolerance = half_tolerance(
        half_, 0x1p-20 * (max_abs(x_) * m.scale + m.shift),
        "y = x·scale + shift with F32 coefficients one F32 step apart at most, rounded once to the half dtype");
    return [this, mode, y_tolerance](OpRun& run) {
      Tensor running_mean = run.in_out(running_mean_), running_var = run.in_out(running_var_);
      Tensor y = run.output(x_.shape(), half_), mean = run.output(channels()), invstd = run.output(channels());
      run.backend().batchnorm_forward(run.input(x_), run.input(weight_), run.input(bias_), running_mean, running_var,
                                      y, mean, invstd, options(mode));
      const Tolerance& running = mode == BatchNormMode::Training ? kFp32 : kExact;
      return Results{{"y", run.result(y), y_tolerance},
                     {"save_mean", run.result(mean), kFp32},
                     {"save_invstd", run.result(invstd), kFp32},
                     {"running_mean", run.result(running_mean), running},
                     {"running_var", run.result(running_var), running}};
    };
  }

  // Both backends differentiate with the saved statistics of the CPU's forward.
  Op backward_half(BatchNormMode mode) const {
    const Statistics s = statistics(mode);
    const Magnitudes m = magnitudes(s);
    const Tolerance dx_tolerance = half_tolerance(
        half_, 0x1p-20 * max_abs(dy_) * (2.0 + m.normalised) * m.scale,
        "dx from F32 coefficients one F32 step apart at most, rounded once to the half dtype");
    return [this, mode, s, dx_tolerance](OpRun& run) {
      Tensor dx = run.output(x_.shape(), half_), dweight = run.output(channels()), dbias = run.output(channels());
      run.backend().batchnorm_backward(run.input(dy_), run.input(x_), run.input(weight_), run.input(s.mean),
                                       run.input(s.invstd), dx, dweight, dbias, options(mode));
      return Results{{"dx", run.result(dx), dx_tolerance},
                     {"dweight", run.result(dweight), kFp32},
                     {"dbias", run.result(dbias), kFp32}};
    };
  }

  // body() for BF16 and then F16, with x and dy rounded to each.
  template <class Body>
  void for_each_half(Body body) {
    for (DType half : kHalfDtypes) {
      SCOPED_TRACE(dtype_name(half));
      use(half);
      body();
    }
  }

  Tensor x32_, dy32_;  // x and dy as drawn, before rounding
  DType half_ = DType::BF16;
};

TEST_P(BatchNormHalfTest, TrainingForwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for_each_half([&] { expect_gpu_matches_cpu(*gpu, forward_half(BatchNormMode::Training)); });
}

TEST_P(BatchNormHalfTest, TrainingForwardAllocatesUndefinedOutputs) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for_each_half([&] { expect_gpu_matches_cpu(*gpu, forward_half(BatchNormMode::Training), Outputs::Undefined); });
}

TEST_P(BatchNormHalfTest, TrainingBackwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for_each_half([&] { expect_gpu_matches_cpu(*gpu, backward_half(BatchNormMode::Training)); });
}

TEST_P(BatchNormHalfTest, InferenceForwardMatchesCpuAndKeepsRunningStatistics) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for_each_half([&] { expect_gpu_matches_cpu(*gpu, forward_half(BatchNormMode::Inference)); });
}

TEST_P(BatchNormHalfTest, InferenceBackwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for_each_half([&] { expect_gpu_matches_cpu(*gpu, backward_half(BatchNormMode::Inference)); });
}

// The GPU's half batch norm adds each channel's sums in blocks and then adds the blocks' partial
// sums in a fixed order: a second run gives the same bits.
TEST_P(BatchNormHalfTest, TrainingRunsTwiceToTheSameBits) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for_each_half([&] {
    const Op forward = forward_half(BatchNormMode::Training), backward = backward_half(BatchNormMode::Training);
    for (const Op& op : {forward, backward}) {
      OpRun first(*gpu, Outputs::Guarded), second(*gpu, Outputs::Guarded);
      const Results a = op(first), b = op(second);
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same_bytes(a[i].value, b[i].value)) << a[i].name;
    }
  });
}

// A NaN or an infinity in a channel's batch reaches that channel's statistics and outputs as on the
// CPU (an infinite mean, a NaN variance, NaN outputs) rather than being lost in the sums, so that
// the nonfinite probes downstream see the blow-up. Channel 0 holds a NaN, channel 1 a +inf after
// finite values, channel 2 starts with -inf (the value the GPU's sums would be taken about).
TEST(BatchNormHalfNonfinite, TrainingCarriesNanAndInfinitiesIntoTheStatisticsAsTheCpuDoes) {
  HOOKRT_GPU_OR_SKIP(gpu);
  Tensor x = uniform({2, 3, 2, 2}, seed_of("batch norm nonfinite"));
  float* values = x.data<float>();
  values[1] = NAN;             // sample 0, channel 0, its second value
  values[4 + 2] = INFINITY;    // sample 0, channel 1
  values[8] = -INFINITY;       // sample 0, channel 2, its first value
  const Tensor weight = Tensor::full({3}, 1.5), bias = Tensor::full({3}, 0.25);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    const Tensor x_half = x.to(half);
    expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
      Tensor running_mean = run.in_out(Tensor::zeros({3})), running_var = run.in_out(Tensor::full({3}, 1.0));
      Tensor y = run.output(x.shape(), half), mean = run.output({3}), invstd = run.output({3});
      run.backend().batchnorm_forward(run.input(x_half), run.input(weight), run.input(bias), running_mean,
                                      running_var, y, mean, invstd, BatchNormOptions{});
      return Results{{"y", run.result(y), kExact},
                     {"save_mean", run.result(mean), kExact},
                     {"save_invstd", run.result(invstd), kExact},
                     {"running_mean", run.result(running_mean), kExact},
                     {"running_var", run.result(running_var), kExact}};
    });
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, BatchNormTest, ::testing::ValuesIn(kBatchNormCases), case_name<BatchNormCase>);
INSTANTIATE_TEST_SUITE_P(Shapes, BatchNormHalfTest, ::testing::ValuesIn(kBatchNormCases), case_name<BatchNormCase>);

TEST(GpuOpsCases, ConvolutionsCoverBatch1Stride2Padding1x1And7x7OddChannelsAndResNetShapes) {
  bool batch1 = false, stride2 = false, padded = false, pointwise = false, seven = false, odd_channels = false,
       resnet = false;
  for (const ConvCase& c : kConvCases) {
    batch1 |= c.n == 1;
    stride2 |= c.stride == 2;
    padded |= c.padding > 0;
    pointwise |= c.r == 1 && c.s == 1;
    seven |= c.r == 7 && c.s == 7;
    odd_channels |= c.c % 8 != 0 && c.k % 8 != 0;
    resnet |= c.c == 64 && c.h == 56 && c.w == 56 && c.r == 3;
  }
  EXPECT_TRUE(batch1 && stride2 && padded && pointwise && seven && odd_channels && resnet);
}

}  // namespace
}  // namespace hookrt
