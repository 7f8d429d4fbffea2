// Batch norm on the GPU in channels-last (NHWC) order: the forward in training (batch statistics,
// running-statistic updates) and in inference, and both backwards, in F32 (cuDNN with NHWC
// descriptors; our kernels for the inference backward) and in BF16 and F16 (our kernels' NHWC
// walk). Each runs against the CPU reference on the same values in NCHW, with the tolerances of the
// NCHW tests (tests/test_gpu_ops_conv_bn.cpp), and against the GPU's own NCHW results, from which
// it may differ only by the order of its sums. The shapes cover C a multiple of 4 (four channels a
// thread), of 2 only, odd, 1, several channel groups, odd H·W, one pixel per plane, and tensors
// whose addresses do not allow vector loads. GPU tests skip, saying why, where there is no GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "support/gpu_ops.h"
#include "test_gpu_half_tolerance.h"

namespace hookrt {
namespace {

using namespace testing::gpu_ops;

constexpr MemoryFormat kNchw = MemoryFormat::Contiguous;
constexpr MemoryFormat kNhwc = MemoryFormat::ChannelsLast;

struct BatchNormCase {
  std::string name;
  Shape shape;  // (N, C, H, W)
  double momentum = 0.1;
  double eps = 1e-5;
};
void PrintTo(const BatchNormCase& c, std::ostream* os) { *os << c.name; }

const std::vector<BatchNormCase> kCases = {
    {"ResNetLayer1_4x64x56x56", {4, 64, 56, 56}},        // 12544 values a channel
    {"ResNetLayer4_16x512x7x7", {16, 512, 7, 7}},        // several groups of channels
    {"C132_UnevenGroups_2x132x9x9", {2, 132, 9, 9}},     // 33 vectors of 4: two groups
    {"C30_TwoChannelsAThread_3x30x5x7", {3, 30, 5, 7}},  // C even, not a multiple of 4
    {"C13_OneChannelAThread_2x13x3x5", {2, 13, 3, 5}},   // C odd, H·W odd
    {"C1_OneChannel_4x1x5x5", {4, 1, 5, 5}},             // lies in both orders
    {"C6_OnePixel_5x6x1x1", {5, 6, 1, 1}},               // lies in both orders
    {"Momentum0p3_Eps1em3_ManyRows_8x12x33x31", {8, 12, 33, 31}, 0.3, 1e-3},  // many row splits
};

// Channel c holds offset_c + scale_c·u (offsets in [-1, 1), scales in [0.5, 2)), so that the means
// are not all near zero and save_mean is compared against a scale it actually has.
Tensor batchnorm_input(const Shape& shape, uint64_t seed) {
  Tensor x = uniform(shape, seed);
  const Tensor offset = uniform({shape[1]}, seed + 1),
               scale = uniform({shape[1]}, seed + 2, 0.5, 2.0);
  float* p = x.data<float>();
  const int64_t plane = shape[2] * shape[3];
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t c = (i / plane) % shape[1];
    p[i] = offset.data<float>()[c] + scale.data<float>()[c] * p[i];
  }
  return x;
}

// A run's layout: `gpu_layout` on the GPU, NCHW on the CPU reference.
MemoryFormat layout_of(OpRun& run, MemoryFormat gpu_layout) {
  return run.backend().device() == Device::CUDA ? gpu_layout : kNchw;
}

// What to_host gives back, in NCHW whatever it returns.
Tensor nchw_result(OpRun& run, const Tensor& t) {
  const Tensor host = run.result(t);
  return host.defined() ? host.contiguous() : host;
}

// Where a test puts the activations: where the allocator puts tensors, or one element further,
// so that no row's channels are aligned for a load of several (the kernels then move each alone).
enum class Placement { Aligned, OneElementIn };

// An output between guards, in `layout` (undefined where the run leaves outputs to the backend).
Tensor placed_output(OpRun& run, const Shape& shape, DType dtype, MemoryFormat layout,
                     Placement placement) {
  if (placement == Placement::OneElementIn) {
    const Tensor buffer = run.allocated_output({shape_numel(shape) + 1}, dtype);
    return Tensor(buffer.storage(), shape, dtype, buffer.byte_offset() + dtype_size(dtype), layout);
  }
  const Tensor t = run.output(shape, dtype);
  return t.defined() ? Tensor(t.storage(), t.shape(), t.dtype(), t.byte_offset(), layout) : t;
}

// A host NCHW tensor on the run's backend in `layout`.
Tensor placed_input(OpRun& run, const Tensor& host, MemoryFormat layout, Placement placement) {
  const Tensor laid_out = host.to_memory_format(layout);
  if (placement == Placement::Aligned) return run.input(laid_out);
  Tensor t = placed_output(run, host.shape(), host.dtype(), layout, placement);
  run.backend().copy(laid_out, t);
  return t;
}

class GpuBatchNormChannelsLast : public ::testing::TestWithParam<BatchNormCase> {
 protected:
  void SetUp() override {
    const uint64_t seed = seed_of(GetParam().name);
    x_ = batchnorm_input(GetParam().shape, seed);
    dy_ = uniform(GetParam().shape, seed + 3);
    weight_ = uniform(channels(), seed + 4, 0.5, 1.5);
    bias_ = uniform(channels(), seed + 5, -0.5, 0.5);
    running_mean_ = uniform(channels(), seed + 6, -0.5, 0.5);
    running_var_ = uniform(channels(), seed + 7, 0.5, 2.0);
  }

  const Shape& shape() const { return GetParam().shape; }
  Shape channels() const { return {shape()[1]}; }
  BatchNormOptions options(BatchNormMode mode) const {
    return {.mode = mode, .eps = GetParam().eps, .momentum = GetParam().momentum};
  }
  // The activations both backends get: x and dy rounded to BF16 or F16 for a half run.
  Tensor x(DType dtype) const { return dtype == DType::F32 ? x_ : x_.to(dtype); }
  Tensor dy(DType dtype) const { return dtype == DType::F32 ? dy_ : dy_.to(dtype); }

  // The statistics the CPU reference normalises with, from the same activations.
  struct Statistics {
    Tensor mean, invstd;
  };
  Statistics statistics(BatchNormMode mode, DType dtype) const {
    auto cpu = make_cpu_backend();
    Tensor running_mean = running_mean_.clone(), running_var = running_var_.clone(), y, mean,
           invstd;
    cpu->batchnorm_forward(x(dtype), weight_, bias_, running_mean, running_var, y, mean, invstd,
                           options(mode));
    return {mean, invstd};
  }

  // The bounds of test_gpu_ops_conv_bn.cpp's BatchNormHalfTest. Both backends (and both layouts)
  // fold double sums that agree to ~1e-15 into F32 coefficients equal or one F32 step (2^-23)
  // apart, compute each element with the same F32 roundings and round it once to the half dtype:
  // one half step (half_tolerance) apart, plus the effect of a coefficient one step off, 2^-23 of
  // the terms it multiplies, taken 8 times over (2^-20) for the two sides and the few roundings
  // after it:
  //   y  = x·scale + shift                                      terms: |x|·|scale|, |shift|
  //   dx = (dy - mean(dy) - (x - mean)·projection)·gain         terms: (2 + |x̂|)·|dy|·|gain|
  Tolerance activation_tolerance(BatchNormMode mode, DType dtype, bool backward) const {
    if (dtype == DType::F32) return kFp32;
    const Statistics s = statistics(mode, dtype);
    const Tensor x16 = x(dtype);
    const int64_t plane = shape()[2] * shape()[3];
    double scale = 0, shift = 0, normalised = 0;
    for (int64_t c = 0; c < shape()[1]; ++c) {
      const double sc = s.invstd.item(c) * weight_.item(c);
      scale = std::max(scale, std::fabs(sc));
      shift = std::max(shift, std::fabs(bias_.item(c) - s.mean.item(c) * sc));
    }
    for (int64_t i = 0; i < x16.numel(); ++i) {
      const int64_t c = (i / plane) % shape()[1];
      normalised =
          std::max(normalised, std::fabs((x16.item(i) - s.mean.item(c)) * s.invstd.item(c)));
    }
    if (backward)
      return half_tolerance(
          dtype, 0x1p-20 * max_abs(dy(dtype)) * (2.0 + normalised) * scale,
          "dx from F32 coefficients one F32 step apart at most, rounded once to the half dtype");
    return half_tolerance(
        dtype, 0x1p-20 * (max_abs(x16) * scale + shift),
        "y = x·scale + shift with F32 coefficients one F32 step apart at most, rounded once");
  }

  // y and the saved and running statistics of a forward; outputs the backend allocates must take
  // x's layout.
  Op forward(BatchNormMode mode, DType dtype, MemoryFormat gpu_layout,
             Placement placement = Placement::Aligned) const {
    const Tolerance y_tolerance = activation_tolerance(mode, dtype, false);
    return [=, this](OpRun& run) {
      const MemoryFormat layout = layout_of(run, gpu_layout);
      Tensor running_mean = run.in_out(running_mean_), running_var = run.in_out(running_var_);
      const Tensor x_in = placed_input(run, x(dtype), layout, placement);
      Tensor y = placed_output(run, shape(), dtype, layout, placement);
      Tensor mean = run.output(channels()), invstd = run.output(channels());
      run.backend().batchnorm_forward(x_in, run.input(weight_), run.input(bias_), running_mean,
                                      running_var, y, mean, invstd, options(mode));
      EXPECT_EQ(memory_format_name(y.memory_format()), memory_format_name(layout)) << "y";
      // Inference must leave the running statistics untouched, bit for bit.
      const Tolerance& running = mode == BatchNormMode::Training ? kFp32 : kExact;
      return Results{{"y", nchw_result(run, y), y_tolerance},
                     {"save_mean", run.result(mean), kFp32},
                     {"save_invstd", run.result(invstd), kFp32},
                     {"running_mean", run.result(running_mean), running},
                     {"running_var", run.result(running_var), running}};
    };
  }

  // dx, dweight and dbias, both sides differentiating with the CPU forward's saved statistics.
  Op backward(BatchNormMode mode, DType dtype, MemoryFormat gpu_layout,
              Placement placement = Placement::Aligned) const {
    const Statistics s = statistics(mode, dtype);
    const Tolerance dx_tolerance = activation_tolerance(mode, dtype, true);
    return [=, this](OpRun& run) {
      const MemoryFormat layout = layout_of(run, gpu_layout);
      const Tensor dy_in = placed_input(run, dy(dtype), layout, placement);
      const Tensor x_in = placed_input(run, x(dtype), layout, placement);
      Tensor dx = placed_output(run, shape(), dtype, layout, placement);
      Tensor dweight = run.output(channels()), dbias = run.output(channels());
      run.backend().batchnorm_backward(dy_in, x_in, run.input(weight_), run.input(s.mean),
                                       run.input(s.invstd), dx, dweight, dbias, options(mode));
      EXPECT_EQ(memory_format_name(dx.memory_format()), memory_format_name(layout)) << "dx";
      return Results{{"dx", nchw_result(run, dx), dx_tolerance},
                     {"dweight", run.result(dweight), kFp32},
                     {"dbias", run.result(dbias), kFp32}};
    };
  }

  Tensor x_, dy_, weight_, bias_, running_mean_, running_var_;
};

// Every result of the GPU's NHWC run within its tolerance of the GPU's NCHW run: the layouts
// differ only in the order of their sums, which each tolerance covers.
void expect_layouts_agree(Backend& gpu, const std::function<Op(MemoryFormat)>& op) {
  OpRun nchw(gpu, Outputs::Guarded), nhwc(gpu, Outputs::Guarded);
  const Results expected = op(kNchw)(nchw), actual = op(kNhwc)(nhwc);
  EXPECT_EQ(nhwc.problems(), "") << "NHWC run: an out-of-bounds write, or a result off the device";
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i)
    EXPECT_TRUE(agrees(actual[i].value, expected[i].value, actual[i].tolerance))
        << actual[i].name << ", NHWC against NCHW on the GPU (" << actual[i].tolerance.why << ")";
}

void expect_same_bits(const Results& a, const Results& b, const char* what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(same_bytes(a[i].value, b[i].value)) << a[i].name << ": " << what;
}

constexpr BatchNormMode kTraining = BatchNormMode::Training;
constexpr BatchNormMode kInference = BatchNormMode::Inference;

// ---- F32: cuDNN with NHWC descriptors (our kernels for the inference backward) ------------------

TEST_P(GpuBatchNormChannelsLast, F32TrainingForwardMatchesCpuIncludingRunningStatistics) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward(kTraining, DType::F32, kNhwc));
}

TEST_P(GpuBatchNormChannelsLast, F32TrainingForwardAllocatesYInXsLayout) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward(kTraining, DType::F32, kNhwc), Outputs::Undefined);
}

TEST_P(GpuBatchNormChannelsLast, F32TrainingBackwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, backward(kTraining, DType::F32, kNhwc));
}

TEST_P(GpuBatchNormChannelsLast, F32InferenceForwardMatchesCpuAndKeepsRunningStatistics) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward(kInference, DType::F32, kNhwc));
}

TEST_P(GpuBatchNormChannelsLast, F32InferenceBackwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, backward(kInference, DType::F32, kNhwc));
}

TEST_P(GpuBatchNormChannelsLast, F32ResultsMatchTheGpusNchwResults) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (const BatchNormMode mode : {kTraining, kInference}) {
    expect_layouts_agree(*gpu,
                         [&](MemoryFormat layout) { return forward(mode, DType::F32, layout); });
    expect_layouts_agree(*gpu,
                         [&](MemoryFormat layout) { return backward(mode, DType::F32, layout); });
  }
}

// ---- BF16 and F16: our kernels' NHWC walk ----------------------------------------------------

TEST_P(GpuBatchNormChannelsLast, HalfDtypesTrainingForwardMatchesCpuIncludingRunningStatistics) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    expect_gpu_matches_cpu(*gpu, forward(kTraining, half, kNhwc));
  }
}

TEST_P(GpuBatchNormChannelsLast, HalfDtypesTrainingForwardAllocatesYInXsLayout) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    expect_gpu_matches_cpu(*gpu, forward(kTraining, half, kNhwc), Outputs::Undefined);
  }
}

TEST_P(GpuBatchNormChannelsLast, HalfDtypesTrainingBackwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    expect_gpu_matches_cpu(*gpu, backward(kTraining, half, kNhwc));
  }
}

TEST_P(GpuBatchNormChannelsLast, HalfDtypesTrainingBackwardAllocatesDxInXsLayout) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    expect_gpu_matches_cpu(*gpu, backward(kTraining, half, kNhwc), Outputs::Undefined);
  }
}

TEST_P(GpuBatchNormChannelsLast, HalfDtypesInferenceForwardMatchesCpuAndKeepsRunningStatistics) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    expect_gpu_matches_cpu(*gpu, forward(kInference, half, kNhwc));
  }
}

TEST_P(GpuBatchNormChannelsLast, HalfDtypesInferenceBackwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    expect_gpu_matches_cpu(*gpu, backward(kInference, half, kNhwc));
  }
}

TEST_P(GpuBatchNormChannelsLast, HalfDtypesResultsMatchTheGpusNchwResults) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    for (const BatchNormMode mode : {kTraining, kInference}) {
      expect_layouts_agree(*gpu, [&](MemoryFormat layout) { return forward(mode, half, layout); });
      expect_layouts_agree(*gpu, [&](MemoryFormat layout) { return backward(mode, half, layout); });
    }
  }
}

// The NHWC sums add each channel's rows in blocks whose shape depends on the dims alone, in a fixed
// tree, then the blocks' partials in a fixed order: a second run gives the same bits.
TEST_P(GpuBatchNormChannelsLast, HalfDtypesTrainingRunsTwiceToTheSameBits) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    for (const Op& op : {forward(kTraining, half, kNhwc), backward(kTraining, half, kNhwc)}) {
      OpRun first(*gpu, Outputs::Guarded), second(*gpu, Outputs::Guarded);
      expect_same_bits(op(first), op(second), "a second run");
    }
  }
}

// Tensors one element off the allocator's alignment are moved a channel at a time instead of V at
// a time, in the same tiles: the same bits as aligned ones, and nothing written outside them.
TEST_P(GpuBatchNormChannelsLast, HalfDtypesTensorsOffTheVectorAlignmentGiveTheAlignedBits) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (const auto& [half, mode] :
       {std::pair{DType::BF16, kTraining}, std::pair{DType::BF16, kInference},
        std::pair{DType::F16, kTraining}, std::pair{DType::F16, kInference}}) {
    SCOPED_TRACE(dtype_name(half));
    for (const bool is_backward : {false, true}) {
      const auto op = [&](Placement placement) {
        return is_backward ? backward(mode, half, kNhwc, placement)
                           : forward(mode, half, kNhwc, placement);
      };
      OpRun aligned(*gpu, Outputs::Guarded), shifted(*gpu, Outputs::Guarded);
      const Results expected = op(Placement::Aligned)(aligned),
                    actual = op(Placement::OneElementIn)(shifted);
      EXPECT_EQ(shifted.problems(), "");
      expect_same_bits(actual, expected,
                       is_backward ? "backward off the alignment" : "forward off the alignment");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GpuBatchNormChannelsLast, ::testing::ValuesIn(kCases),
                         case_name<BatchNormCase>);

// ---- nonfinite batches --------------------------------------------------------------------------

// As BatchNormHalfNonfinite (test_gpu_ops_conv_bn.cpp) in NHWC: a NaN or an infinity in a
// channel's batch reaches that channel's statistics and outputs as on the CPU (an infinite mean, a
// NaN variance, NaN outputs). Channel 0 holds a NaN, channel 1 a +inf after finite values, channel
// 2 starts with -inf (the value the sums would be taken about); with four channels, the fourth
// stays finite and the kernels move four channels at a time.
class GpuBatchNormChannelsLastNonfinite : public ::testing::TestWithParam<int64_t> {};

TEST_P(GpuBatchNormChannelsLastNonfinite,
       TrainingCarriesNanAndInfinitiesIntoTheStatisticsAsTheCpuDoes) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const int64_t channels = GetParam();
  const Shape shape{2, channels, 2, 2};
  Tensor x = uniform(shape, seed_of("batch norm channels-last nonfinite"));
  float* values = x.data<float>();
  values[1] = NAN;           // sample 0, channel 0, its second value
  values[4 + 2] = INFINITY;  // sample 0, channel 1
  values[8] = -INFINITY;     // sample 0, channel 2, its first value
  const Tensor weight = Tensor::full({channels}, 1.5), bias = Tensor::full({channels}, 0.25);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    const Tensor x_half = x.to(half);
    const Op forward = [&](OpRun& run) {
      const MemoryFormat layout = layout_of(run, kNhwc);
      Tensor running_mean = run.in_out(Tensor::zeros({channels})),
             running_var = run.in_out(Tensor::full({channels}, 1.0));
      Tensor y = placed_output(run, shape, half, layout, Placement::Aligned);
      Tensor mean = run.output({channels}), invstd = run.output({channels});
      run.backend().batchnorm_forward(run.input(x_half.to_memory_format(layout)), run.input(weight),
                                      run.input(bias), running_mean, running_var, y, mean, invstd,
                                      BatchNormOptions{});
      return Results{{"y", nchw_result(run, y), kExact},
                     {"save_mean", run.result(mean), kExact},
                     {"save_invstd", run.result(invstd), kExact},
                     {"running_mean", run.result(running_mean), kExact},
                     {"running_var", run.result(running_var), kExact}};
    };
    expect_gpu_matches_cpu(*gpu, forward);
  }
}

INSTANTIATE_TEST_SUITE_P(Channels, GpuBatchNormChannelsLastNonfinite,
                         ::testing::Values(int64_t{3}, int64_t{4}),
                         [](const ::testing::TestParamInfo<int64_t>& info) {
                           return std::to_string(info.param) + "Channels";
                         });

// ---- operands in two layouts
// ----------------------------------------------------------------------

// The error's message, or "" where `call` throws no Error.
std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

Tensor on_gpu(Backend& gpu, const Shape& shape, MemoryFormat layout, uint64_t seed) {
  return gpu.from_host(uniform(shape, seed).to_memory_format(layout));
}

TEST(GpuBatchNormChannelsLastErrors, ForwardRefusesAYInAnotherLayoutThanX) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Shape shape{2, 3, 4, 4};
  Tensor y = gpu->empty(shape, DType::F32), mean, invstd;
  Tensor running_mean = gpu->from_host(Tensor::zeros({3})),
         running_var = gpu->from_host(Tensor::full({3}, 1.0));
  const std::string message = error_of([&] {
    gpu->batchnorm_forward(on_gpu(*gpu, shape, kNhwc, 1), gpu->from_host(Tensor::full({3}, 1.0)),
                           gpu->from_host(Tensor::zeros({3})), running_mean, running_var, y, mean,
                           invstd, {});
  });
  EXPECT_NE(
      message.find(
          "batchnorm_forward: y [2, 3, 4, 4] is contiguous_format; expected channels_last (the "
          "layout of x)"),
      std::string::npos)
      << message;
}

TEST(GpuBatchNormChannelsLastErrors, BackwardRefusesADyOrDxInAnotherLayoutThanX) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Shape shape{2, 3, 4, 4};
  const Tensor weight = gpu->from_host(Tensor::full({3}, 1.0)),
               mean = gpu->from_host(Tensor::zeros({3}));
  const Tensor invstd = gpu->from_host(Tensor::full({3}, 1.0)), x = on_gpu(*gpu, shape, kNhwc, 1);
  Tensor dx, dweight, dbias;
  const std::string dy_message = error_of([&] {
    gpu->batchnorm_backward(on_gpu(*gpu, shape, kNchw, 2), x, weight, mean, invstd, dx, dweight,
                            dbias, {});
  });
  EXPECT_NE(dy_message.find(
                "batchnorm_backward: dy [2, 3, 4, 4] is contiguous_format; expected channels_last"),
            std::string::npos)
      << dy_message;
  dx = gpu->empty(shape, DType::F32);
  const std::string dx_message = error_of([&] {
    gpu->batchnorm_backward(on_gpu(*gpu, shape, kNhwc, 2), x, weight, mean, invstd, dx, dweight,
                            dbias, {});
  });
  EXPECT_NE(dx_message.find(
                "batchnorm_backward: dx [2, 3, 4, 4] is contiguous_format; expected channels_last"),
            std::string::npos)
      << dx_message;
}

// ---- the cases themselves (no GPU needed) -----------------------------------------------------

TEST(GpuBatchNormChannelsLastCases, CoverEveryChannelWidthOddPlanesAndBothOrderShapes) {
  bool four = false, two_only = false, odd = false, one = false, groups = false, odd_plane = false,
       one_pixel = false;
  for (const BatchNormCase& c : kCases) {
    const int64_t channels = c.shape[1], plane = c.shape[2] * c.shape[3];
    four |= channels % 4 == 0 && channels > 4;
    two_only |= channels % 2 == 0 && channels % 4 != 0;
    odd |= channels % 2 == 1 && channels > 1;
    one |= channels == 1;
    groups |= channels / 4 > 32;  // more than one warp's width of four-channel vectors
    odd_plane |= plane % 2 == 1 && plane > 1;
    one_pixel |= plane == 1;
  }
  EXPECT_TRUE(four && two_only && odd && one && groups && odd_plane && one_pixel);
}

}  // namespace
}  // namespace hookrt
