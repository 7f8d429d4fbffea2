// The CUDA backend against the CPU reference backend, op by op, forward and backward. Every op runs
// on both backends from the same seeded host inputs (the GPU gets them through from_host) and each
// result is compared per tensor, with a tolerance that says why it was chosen. As in ggml's
// test-backend-ops, every output a test allocates sits between guard bytes that must survive the
// op, and starts as NaN so that an element the op never writes shows. GPU tests start with
// HOOKRT_GPU_OR_SKIP(gpu) and skip, saying why, where there is no GPU or no CUDA build.
// This file: ReLU (and the residual add's ReLU), max pooling and adaptive average pooling, in F32,
// BF16 and F16; the harness is tests/support/gpu_ops.h.
#include <gtest/gtest.h>

#include "support/gpu_op_cases.h"
#include "support/gpu_ops.h"
#include "test_gpu_half_tolerance.h"

namespace hookrt {
namespace {

using namespace testing::gpu_ops;

// ---- ReLU ------------------------------------------------------------------------------------------

struct ReluCase {
  std::string name;
  Shape shape;
};
void PrintTo(const ReluCase& c, std::ostream* os) { *os << c.name; }

const std::vector<ReluCase> kReluCases = {
    {"OneElement", {1}},
    {"Seven", {7}},
    {"Odd_3x5x7x9", {3, 5, 7, 9}},
    {"ResNetActivation_2x64x56x56", {2, 64, 56, 56}},
};

// Uniform in [-1, 1) with ±0, NaN and ±inf sprinkled in; seven or more elements start with one of each.
Tensor relu_input(const Shape& shape, uint64_t seed) {
  Tensor x = uniform(shape, seed);
  sprinkle(x, seed + 1, 1.0 / 16, 0.0f);
  sprinkle(x, seed + 2, 1.0 / 16, -0.0f);
  sprinkle(x, seed + 3, 1.0 / 32, NAN);
  sprinkle(x, seed + 4, 1.0 / 64, INFINITY);
  sprinkle(x, seed + 5, 1.0 / 64, -INFINITY);
  const float specials[] = {NAN, 0.0f, -0.0f, INFINITY, -INFINITY, 0.5f, -0.5f};
  if (x.numel() >= 7) std::copy(std::begin(specials), std::end(specials), x.data<float>());
  return x;
}

class ReluTest : public ::testing::TestWithParam<ReluCase> {
 protected:
  uint64_t seed() const { return seed_of(GetParam().name); }
  Op forward() const {
    return [this, x = relu_input(GetParam().shape, seed())](OpRun& run) {
      Tensor y = run.output(x.shape());
      run.backend().relu_forward(run.input(x), y);
      return Results{{"y", run.result(y), kExact}};
    };
  }
};

TEST_P(ReluTest, ForwardMatchesCpuKeepingNaN) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward());
}

TEST_P(ReluTest, ForwardAllocatesAnUndefinedY) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward(), Outputs::Undefined);
}

TEST_P(ReluTest, BackwardMatchesCpuOnZerosAndNaN) {
  HOOKRT_GPU_OR_SKIP(gpu);
  // y as ReLU leaves it: exact zeros where x <= 0, NaN where x was NaN; dy has NaN of its own.
  Tensor y = relu_input(GetParam().shape, seed());
  for (int64_t i = 0; i < y.numel(); ++i) {
    float& v = y.data<float>()[i];
    if (!(v > 0.0f || std::isnan(v))) v = 0.0f;
  }
  Tensor dy = uniform(GetParam().shape, seed() + 10);
  sprinkle(dy, seed() + 11, 1.0 / 32, NAN);
  expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
    Tensor dx = run.output(y.shape());
    run.backend().relu_backward(run.input(y), run.input(dy), dx);
    return Results{{"dx", run.result(dx), kExact}};
  });
}

// relu_input in a half dtype, with two signalling NaNs carrying payloads where there is room: a NaN
// must come out as the CPU stores it (quiet, sign kept, and BF16's payload), not as one canonical
// NaN.
Tensor relu_input_half(const Shape& shape, uint64_t seed, DType half) {
  Tensor x = relu_input(shape, seed).to(half);
  auto* bits = static_cast<uint16_t*>(x.raw_data());
  if (x.numel() >= 9) {
    bits[7] = half == DType::BF16 ? 0x7F81 : 0x7C01;
    bits[8] = half == DType::BF16 ? 0xFF85 : 0xFC05;
  }
  return x;
}

// y as ReLU leaves it, in a half dtype: zeros where x <= 0, NaN where x was NaN.
Tensor relu_output_half(const Shape& shape, uint64_t seed, DType half) {
  Tensor y = relu_input(shape, seed);
  for (int64_t i = 0; i < y.numel(); ++i) {
    float& v = y.data<float>()[i];
    if (!(v > 0.0f || std::isnan(v))) v = 0.0f;
  }
  return y.to(half);
}

// BF16 and F16: ReLU compares and passes values (each rounded once, from a value that is already
// half), so both backends give the same bits, NaN signs and BF16 payloads included.
TEST_P(ReluTest, ForwardInBf16AndF16MatchesCpuBitForBit) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    const Tensor x = relu_input_half(GetParam().shape, seed(), half);
    expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
      Tensor y = run.output(x.shape(), half);
      run.backend().relu_forward(run.input(x), y);
      return Results{{"y", run.result(y), kExactBits}};
    });
  }
}

TEST_P(ReluTest, BackwardInBf16AndF16MatchesCpuBitForBit) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    const Tensor y = relu_output_half(GetParam().shape, seed(), half);
    Tensor dy = uniform(GetParam().shape, seed() + 10);
    sprinkle(dy, seed() + 11, 1.0 / 32, NAN);
    dy = dy.to(half);
    expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
      Tensor dx = run.output(y.shape(), half);
      run.backend().relu_backward(run.input(y), run.input(dy), dx);
      return Results{{"dx", run.result(dx), kExactBits}};
    });
  }
}

// The residual add's ReLU as one GPU kernel (the sum rounded after the ReLU) against the CPU's add
// then ReLU (the sum rounded before it): rounding keeps signs and ReLU sends every value not above
// 0 to +0, so both orders give the same bits (but a NaN's: the add makes the GPU's canonical one).
TEST_P(ReluTest, AddReluInBf16AndF16MatchesCpuAddThenRelu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    const Tensor a = relu_input_half(GetParam().shape, seed(), half);
    const Tensor b = relu_input_half(GetParam().shape, seed() + 20, half);
    expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
      Tensor y = run.output(a.shape(), half);
      run.backend().run_producing_op(ProducingOp{ProducingOp::Kind::AddReluForward, run.input(a), run.input(b)}, y);
      return Results{{"y", run.result(y), kExact}};
    });
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ReluTest, ::testing::ValuesIn(kReluCases), case_name<ReluCase>);

// ---- max pooling -----------------------------------------------------------------------------------

std::vector<MaxPoolCase> maxpool_cases() {
  std::vector<MaxPoolCase> cases = {
      {"ResNet_2x64x112x112_3x3_Stride2_Pad1", {2, 64, 112, 112}, {3, 2, 1}, PoolValues::Random},
      {"ResNetGeometry_Ties", {2, 8, 17, 17}, {3, 2, 1}, PoolValues::Ties},
      {"ResNetGeometry_TiesAndNaN", {2, 5, 13, 11}, {3, 2, 1}, PoolValues::TiesAndNaN},
      {"ResNetGeometry_NegativeInfinityWindows", {1, 3, 9, 9}, {3, 2, 1}, PoolValues::MostlyNegativeInfinity},
      {"Kernel2_Stride2_Pad0_Ties", {3, 7, 10, 9}, {2, 2, 0}, PoolValues::Ties},
      {"Kernel3_Stride1_Pad1_Overlapping_Ties", {2, 3, 8, 8}, {3, 1, 1}, PoolValues::Ties},
      {"Kernel3_Stride3_Pad0_LeavesRowsUnused", {1, 4, 11, 10}, {3, 3, 0}, PoolValues::Random},
      {"Batch1_OnePixel_Kernel1", {1, 1, 1, 1}, {1, 1, 0}, PoolValues::Random},
      {"Kernel5_Stride2_Pad2_TiesAndNaN", {2, 6, 9, 13}, {5, 2, 2}, PoolValues::TiesAndNaN},
  };
  Pcg32 rng(0x900L);
  const int kernels[] = {1, 2, 3, 5};
  for (int i = 0; i < 3; ++i) {
    MaxPoolCase c{};
    const int kernel = kernels[rng.below(4)];
    const int stride = 1 + static_cast<int>(rng.below(3));
    const int padding = static_cast<int>(rng.below(static_cast<uint32_t>(kernel / 2 + 1)));
    const int64_t n = 1 + rng.below(3), channels = 1 + rng.below(20);
    const int64_t h = std::max(kernel - 2 * padding, 1) + rng.below(15);
    const int64_t w = std::max(kernel - 2 * padding, 1) + rng.below(15);
    c.shape = {n, channels, h, w};
    c.geometry = {.kernel = kernel, .stride = stride, .padding = padding};
    c.values = i == 0 ? PoolValues::Random : PoolValues::TiesAndNaN;
    c.name = "Seeded" + std::to_string(i) + "_" + std::to_string(n) + "x" + std::to_string(channels) + "x" +
             std::to_string(h) + "x" + std::to_string(w) + "_Kernel" + std::to_string(kernel) + "_Stride" +
             std::to_string(stride) + "_Pad" + std::to_string(padding) + (i == 0 ? "_Random" : "_TiesAndNaN");
    cases.push_back(c);
  }
  return cases;
}

const std::vector<MaxPoolCase> kMaxPoolCases = maxpool_cases();

class MaxPoolTest : public ::testing::TestWithParam<MaxPoolCase> {
 protected:
  const MaxPoolCase& c() const { return GetParam(); }
  uint64_t seed() const { return seed_of(c().name); }
  Op forward() const {
    return [this, x = maxpool_input(c(), seed())](OpRun& run) {
      Tensor y = run.output(c().y()), indices = run.output(c().y(), DType::I64);
      run.backend().maxpool2d_forward(run.input(x), y, indices, c().geometry);
      // Ties keep the first maximum in scan order, NaN wins, a window of -inf reports its first
      // valid element: PyTorch's rules, the same on both backends, so indices are identical.
      return Results{{"y", run.result(y), kExact}, {"indices", run.result(indices), kExact}};
    };
  }
};

TEST_P(MaxPoolTest, ForwardMatchesCpuWithIdenticalIndices) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward());
}

TEST_P(MaxPoolTest, ForwardAllocatesUndefinedOutputs) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward(), Outputs::Undefined);
}

TEST_P(MaxPoolTest, BackwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  // The indices both backends route gradients by: the CPU forward's.
  auto cpu = make_cpu_backend();
  Tensor y, indices;
  cpu->maxpool2d_forward(maxpool_input(c(), seed()), y, indices, c().geometry);
  const Tensor dy = uniform(c().y(), seed() + 10);
  expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
    Tensor dx = run.allocated_output(c().shape);  // both backends need dx allocated
    run.backend().maxpool2d_backward(run.input(dy), run.input(indices), dx, c().geometry);
    // Each dx element sums the dy of the windows that chose it (up to 9 here), in window order.
    return Results{{"dx", run.result(dx), kFp32}};
  });
}

// BF16 and F16: the window's maximum is one of its values, found by the same comparisons on both
// backends, and each dx element sums its windows' gradients in F32 in increasing output order from
// +0 on both (the GPU gathers, the CPU scatters in output order), rounded once: the same bits.
TEST_P(MaxPoolTest, ForwardInBf16AndF16MatchesCpuBitForBit) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    const Tensor x = maxpool_input(c(), seed()).to(half);
    expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
      Tensor y = run.output(c().y(), half), indices = run.output(c().y(), DType::I64);
      run.backend().maxpool2d_forward(run.input(x), y, indices, c().geometry);
      return Results{{"y", run.result(y), kExactBits}, {"indices", run.result(indices), kExact}};
    });
  }
}

TEST_P(MaxPoolTest, BackwardInBf16AndF16MatchesCpuBitForBit) {
  HOOKRT_GPU_OR_SKIP(gpu);
  auto cpu = make_cpu_backend();
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    Tensor y, indices;
    cpu->maxpool2d_forward(maxpool_input(c(), seed()).to(half), y, indices, c().geometry);
    const Tensor dy = uniform(c().y(), seed() + 10).to(half);
    expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
      Tensor dx = run.allocated_output(c().shape, half);
      run.backend().maxpool2d_backward(run.input(dy), run.input(indices), dx, c().geometry);
      return Results{{"dx", run.result(dx), kExact}};
    });
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, MaxPoolTest, ::testing::ValuesIn(kMaxPoolCases), case_name<MaxPoolCase>);

// ---- adaptive average pooling ------------------------------------------------------------------------

const std::vector<AvgPoolCase> kAvgPoolCases = {
    {"ResNetHead_8x512x7x7", {8, 512, 7, 7}},
    {"Batch1_OnePixel_1x3x1x1", {1, 3, 1, 1}},
    {"Odd_3x13x5x9", {3, 13, 5, 9}},
    {"LargePlanes_2x64x56x56", {2, 64, 56, 56}},
};

class AvgPoolTest : public ::testing::TestWithParam<AvgPoolCase> {
 protected:
  Shape y() const { return {GetParam().shape[0], GetParam().shape[1], 1, 1}; }
  uint64_t seed() const { return seed_of(GetParam().name); }
  Op forward() const {
    // Inputs in [0, 2) as after a ReLU (ResNet's case): means are well away from zero.
    return [this, x = uniform(GetParam().shape, seed(), 0.0, 2.0)](OpRun& run) {
      Tensor y = run.output(this->y());
      run.backend().adaptive_avgpool_forward(run.input(x), y);
      return Results{{"y", run.result(y), kFp32}};
    };
  }
};

TEST_P(AvgPoolTest, ForwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward());
}

TEST_P(AvgPoolTest, ForwardAllocatesAnUndefinedY) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward(), Outputs::Undefined);
}

TEST_P(AvgPoolTest, BackwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor dy = uniform(y(), seed() + 1);
  expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
    Tensor dx = run.allocated_output(GetParam().shape);  // both backends need dx allocated
    run.backend().adaptive_avgpool_backward(run.input(dy), dx);
    return Results{{"dx", run.result(dx), kFp32}};
  });
}

// BF16 and F16: both backends sum a plane in double in element order and divide in double (the
// GPU's kernel is the CPU reference's loop), then round to F32 and once to the half dtype, so even
// this accumulating op gives the same bits.
TEST_P(AvgPoolTest, ForwardInBf16AndF16MatchesCpuBitForBit) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    const Tensor x = uniform(GetParam().shape, seed(), 0.0, 2.0).to(half);
    expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
      Tensor y = run.output(this->y(), half);
      run.backend().adaptive_avgpool_forward(run.input(x), y);
      return Results{{"y", run.result(y), kExact}};
    });
  }
}

TEST_P(AvgPoolTest, BackwardInBf16AndF16MatchesCpuBitForBit) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    const Tensor dy = uniform(y(), seed() + 1).to(half);
    expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
      Tensor dx = run.allocated_output(GetParam().shape, half);
      run.backend().adaptive_avgpool_backward(run.input(dy), dx);
      return Results{{"dx", run.result(dx), kExact}};
    });
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, AvgPoolTest, ::testing::ValuesIn(kAvgPoolCases), case_name<AvgPoolCase>);

TEST(GpuOpsCases, MaxPoolingCoversTiesNaNAndNegativeInfinity) {
  bool ties = false, nan = false, negative_infinity = false;
  for (const MaxPoolCase& c : kMaxPoolCases) {
    ties |= c.values != PoolValues::Random;
    nan |= c.values == PoolValues::TiesAndNaN;
    negative_infinity |= c.values == PoolValues::MostlyNegativeInfinity;
  }
  EXPECT_TRUE(ties && nan && negative_infinity);
}

}  // namespace
}  // namespace hookrt
