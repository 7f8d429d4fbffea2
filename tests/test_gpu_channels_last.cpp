// The CUDA backend's channels-last (NHWC) path against the CPU reference on NCHW tensors. Each op
// runs on the GPU with every 4-D operand channels-last (inputs uploaded as they lie on the host,
// outputs viewed channels-last between OpRun's guard bytes) and on the CPU reference in NCHW, from
// the same seeded values; to_host brings the GPU's results back in NCHW, so both are compared
// element by element with the tolerances of the NCHW op tests (tests/support/gpu_ops.h). Also:
// convert between the layouts bit for bit, to_host and from_host, capture probes, and the errors
// for operands in two layouts. GPU tests start with HOOKRT_GPU_OR_SKIP(gpu) and skip, saying why,
// where there is no GPU or no CUDA build.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "hookrt/probes.h"
#include "support/gpu_op_cases.h"
#include "support/gpu_ops.h"
#include "test_gpu_half_tolerance.h"

namespace hookrt {
namespace {

using namespace testing::gpu_ops;

constexpr MemoryFormat kNchw = MemoryFormat::Contiguous;
constexpr MemoryFormat kNhwc = MemoryFormat::ChannelsLast;

// The layout an op runs in here: channels-last on the GPU, NCHW on the CPU reference.
MemoryFormat layout_of(OpRun& run) { return run.backend().device() == Device::CUDA ? kNhwc : kNchw; }

// A host NCHW tensor on the run's backend in the run's layout (from_host keeps the host's format).
Tensor laid_out_input(OpRun& run, const Tensor& host) { return run.input(host.to_memory_format(layout_of(run))); }

// An output between guards seen in the run's layout (its bytes start as the guard pattern, NaN in
// either order), or undefined where the run leaves outputs to the backend.
Tensor in_run_layout(OpRun& run, const Tensor& t) {
  return t.defined() ? Tensor(t.storage(), t.shape(), t.dtype(), t.byte_offset(), layout_of(run)) : t;
}
Tensor laid_out_output(OpRun& run, const Shape& shape, DType dtype = DType::F32) {
  return in_run_layout(run, run.output(shape, dtype));
}
Tensor laid_out_allocated(OpRun& run, const Shape& shape, DType dtype = DType::F32) {
  return in_run_layout(run, run.allocated_output(shape, dtype));
}

// An output the backend allocated must take its inputs' layout.
void expect_allocated_in_run_layout(OpRun& run, const Tensor& t, const char* name) {
  EXPECT_EQ(memory_format_name(t.memory_format()), memory_format_name(layout_of(run)))
      << name << " allocated by " << run.backend().name();
}

// ---- convert between layouts ----------------------------------------------------------------------

struct LayoutConvertCase {
  std::string name;
  Shape shape;
  DType from, to;
};
void PrintTo(const LayoutConvertCase& c, std::ostream* os) { *os << c.name; }

// Shapes whose planes cross the transpose's 32x32 tiles unevenly, planes with a side of at most 8
// (moved a line per thread: ResNet's stem input of 3 channels, 2x2 maps, 5 channels) and a layer's
// activation; each dtype pair the backends convert, and one dtype moved as bits.
const std::vector<LayoutConvertCase> kLayoutConvertCases = {
    {"F32_Odd_2x37x5x7", {2, 37, 5, 7}, DType::F32, DType::F32},
    {"F32_StemInput_2x3x64x64", {2, 3, 64, 64}, DType::F32, DType::F32},
    {"F32ToBf16_StemInput_2x3x30x30", {2, 3, 30, 30}, DType::F32, DType::BF16},
    {"Bf16_FourPixels_3x40x2x2", {3, 40, 2, 2}, DType::BF16, DType::BF16},
    {"F16_FourPixels_3x40x2x2", {3, 40, 2, 2}, DType::F16, DType::F16},
    {"Bf16_ResNetActivation_2x64x56x56", {2, 64, 56, 56}, DType::BF16, DType::BF16},
    {"F32ToBf16_Odd_3x33x9x11", {3, 33, 9, 11}, DType::F32, DType::BF16},
    {"Bf16ToF32_AllBitPatterns_4x37x16x28", {4, 37, 16, 28}, DType::BF16, DType::F32},
    {"F16ToF32_AllBitPatterns_4x37x16x28", {4, 37, 16, 28}, DType::F16, DType::F32},
    {"F32ToF16_Odd_1x65x3x3", {1, 65, 3, 3}, DType::F32, DType::F16},
    {"I64_MaxPoolIndices_2x5x7x3", {2, 5, 7, 3}, DType::I64, DType::I64},
    {"F32_OneChannel_LiesInBothOrders_2x1x5x5", {2, 1, 5, 5}, DType::F32, DType::F32},
    {"Bf16ToF32_OnePixel_LiesInBothOrders_3x8x1x1", {3, 8, 1, 1}, DType::BF16, DType::F32},
};

// Random bytes (NaN payloads, subnormals and infinities among them), with every 16-bit pattern in
// turn for a 16-bit source and, for F32, values exactly halfway between two BF16 and two F16
// values first (they round to the even one).
Tensor layout_convert_source(const LayoutConvertCase& c) {
  Tensor t = random_bytes(c.shape, c.from, seed_of(c.name));
  if (c.from == DType::BF16 || c.from == DType::F16) {
    auto* bits = static_cast<uint16_t*>(t.raw_data());
    for (int64_t i = 0; i < t.numel(); ++i) bits[i] = static_cast<uint16_t>(i);
  } else if (c.from == DType::F32) {
    const float ties[] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -(1.0f + 0x1p-8f), 1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f};
    std::memcpy(t.raw_data(), ties, std::min(sizeof(ties), t.nbytes()));
  }
  return t;
}

// What the host's Tensor::to and Tensor::to_memory_format make of the source, in `format`.
Tensor host_converted(const Tensor& nchw, DType dtype, MemoryFormat format) {
  return nchw.to(dtype).to_memory_format(format);
}

// The device tensor's bytes as they lie (copy moves bytes; to_host would reorder them).
Tensor bytes_of(Backend& gpu, const Tensor& device) {
  Tensor host = Tensor::empty(device.shape(), device.dtype(), device.memory_format());
  gpu.copy(device, host);
  return host;
}

class GpuChannelsLastConvert : public ::testing::TestWithParam<LayoutConvertCase> {};

TEST_P(GpuChannelsLastConvert, NchwToChannelsLastGivesTheHostsBytes) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const LayoutConvertCase& c = GetParam();
  const Tensor src = layout_convert_source(c);
  Tensor dst = gpu->empty(c.shape, c.to, kNhwc);
  gpu->convert(gpu->from_host(src), dst);
  // Bit for bit: Tensor::to's rounding (ties to even, its NaN bits) and Tensor::to_memory_format's order.
  EXPECT_TRUE(same_bytes(bytes_of(*gpu, dst), host_converted(src, c.to, kNhwc)));
}

TEST_P(GpuChannelsLastConvert, ChannelsLastToNchwGivesTheHostsBytes) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const LayoutConvertCase& c = GetParam();
  const Tensor src = layout_convert_source(c);
  Tensor dst = gpu->empty(c.shape, c.to, kNchw);
  gpu->convert(gpu->from_host(src.to_memory_format(kNhwc)), dst);
  EXPECT_TRUE(same_bytes(bytes_of(*gpu, dst), host_converted(src, c.to, kNchw)));
}

TEST_P(GpuChannelsLastConvert, ToHostOfAChannelsLastTensorIsNchw) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const LayoutConvertCase& c = GetParam();
  const Tensor src = layout_convert_source(c).to_memory_format(kNhwc);
  const Tensor device = gpu->from_host(src);
  EXPECT_EQ(memory_format_name(device.memory_format()), "channels_last") << "from_host keeps the host's format";
  const Tensor back = gpu->to_host(device);
  EXPECT_EQ(memory_format_name(back.memory_format()), "contiguous_format");
  EXPECT_TRUE(same_bytes(back, src.contiguous())) << "the round trip moves every element back, NaN payloads too";
}

INSTANTIATE_TEST_SUITE_P(Layouts, GpuChannelsLastConvert, ::testing::ValuesIn(kLayoutConvertCases),
                         case_name<LayoutConvertCase>);

TEST(GpuChannelsLastMemory, CopyAllocatesAnUndefinedDstInTheSourcesFormat) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor host = uniform({2, 3, 4, 5}, 1).to_memory_format(kNhwc);
  const Tensor src = gpu->from_host(host);
  Tensor dst;
  gpu->copy(src, dst);
  EXPECT_EQ(memory_format_name(dst.memory_format()), "channels_last");
  EXPECT_TRUE(same_bytes(gpu->to_host(dst), host.contiguous()));
}

// ---- convolution ----------------------------------------------------------------------------------

// ResNet18's kinds of convolution (the stem's 3 input channels, which tensor-core NHWC kernels
// cannot take as they are), channel counts that are not multiples of 8, and a one-pixel input
// whose tensors lie in both orders.
const std::vector<ConvCase> kConvCases = {
    {"ResNetStem_3to64_64x64_7x7_Stride2_Pad3", 2, 3, 64, 64, 64, 7, 7, 2, 3},
    {"ResNetLayer1_64x56x56_3x3", 2, 64, 56, 56, 64, 3, 3, 1, 1},
    {"ResNetDownsample_64to128_56x56_3x3_Stride2", 2, 64, 56, 56, 128, 3, 3, 2, 1},
    {"ResNetShortcut_64to128_56x56_1x1_Stride2", 2, 64, 56, 56, 128, 1, 1, 2, 0},
    {"ResNetLayer4_512x7x7_3x3", 2, 512, 7, 7, 512, 3, 3, 1, 1},
    {"OddChannels_13to21_17x19_3x3", 3, 13, 17, 19, 21, 3, 3, 1, 1},
    {"Batch1_OddSizes_3x3_Stride2_Pad1", 1, 3, 9, 7, 5, 3, 3, 2, 1},
    {"Batch1_OnePixel_Pointwise", 1, 7, 1, 1, 3, 1, 1, 1, 0},
};

// As the NCHW tests' half bound: one BF16 or F16 step plus what two F32 summation orders of n
// products, each at most max|a|·max|b|, may differ by.
Tolerance conv_half_tolerance(DType half, int64_t n, const Tensor& a, const Tensor& b) {
  return half_tolerance(half, f32_sums_may_differ_by(n, max_abs(a) * max_abs(b)),
                        "half outputs of F32 sums in two orders: one half step (2^-7·|cpu| for BF16, 2^-10·|cpu| "
                        "for F16) plus the F32 order's difference, 8·√n·n·2^-24·max|a|·max|b|");
}

class GpuChannelsLastConv2d : public ::testing::TestWithParam<ConvCase> {
 protected:
  const ConvCase& c() const { return GetParam(); }
  uint64_t seed() const { return seed_of(c().name); }
  // x ⋆ w into y, in `dtype`, each result under `tolerance`.
  Op forward(DType dtype, const Tensor& x, const Tensor& w, const Tolerance& tolerance) const {
    return [this, dtype, x, w, tolerance](OpRun& run) {
      Tensor y = laid_out_output(run, c().y(), dtype);
      run.backend().conv2d_forward(laid_out_input(run, x), laid_out_input(run, w), y, c().geometry());
      expect_allocated_in_run_layout(run, y, "y");
      return Results{{"y", run.result(y), tolerance}};
    };
  }
  Op backward_data(DType dtype, const Tensor& dy, const Tensor& w, const Tolerance& tolerance) const {
    return [this, dtype, dy, w, tolerance](OpRun& run) {
      Tensor dx = laid_out_allocated(run, c().x(), dtype);  // stride hides H and W: allocated by the caller
      run.backend().conv2d_backward_data(laid_out_input(run, dy), laid_out_input(run, w), dx, c().geometry());
      return Results{{"dx", run.result(dx), tolerance}};
    };
  }
  Op backward_filter(DType dtype, const Tensor& x, const Tensor& dy, const Tolerance& tolerance) const {
    return [this, dtype, x, dy, tolerance](OpRun& run) {
      Tensor dw = laid_out_allocated(run, c().weight(), dtype);  // KRSC on the GPU
      run.backend().conv2d_backward_filter(laid_out_input(run, x), laid_out_input(run, dy), dw, c().geometry());
      return Results{{"dw", run.result(dw), tolerance}};
    };
  }
};

// F32 (TF32 off in GPU tests): the NCHW tests' kConvolution, cuDNN's NHWC algorithms summing in
// another order than the CPU's im2col + sgemm as its NCHW ones do.
TEST_P(GpuChannelsLastConv2d, ForwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward(DType::F32, uniform(c().x(), seed()), uniform(c().weight(), seed() + 1),
                                       kConvolution));
}

TEST_P(GpuChannelsLastConv2d, ForwardAllocatesAChannelsLastY) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu,
                         forward(DType::F32, uniform(c().x(), seed()), uniform(c().weight(), seed() + 1), kConvolution),
                         Outputs::Undefined);
}

TEST_P(GpuChannelsLastConv2d, BackwardDataMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, backward_data(DType::F32, uniform(c().y(), seed() + 2),
                                             uniform(c().weight(), seed() + 3), kConvolution));
}

TEST_P(GpuChannelsLastConv2d, BackwardFilterMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, backward_filter(DType::F32, uniform(c().x(), seed() + 4),
                                               uniform(c().y(), seed() + 5), kConvolution));
}

// BF16 and F16, PyTorch's autocast channels_last path on tensor cores: the NCHW tests' half bounds.
TEST_P(GpuChannelsLastConv2d, ForwardInBf16AndF16MatchesCpuWithinOneHalfStep) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    const Tensor x = uniform(c().x(), seed()).to(half), w = uniform(c().weight(), seed() + 1).to(half);
    expect_gpu_matches_cpu(*gpu, forward(half, x, w, conv_half_tolerance(half, c().c * c().r * c().s, x, w)));
  }
}

TEST_P(GpuChannelsLastConv2d, BackwardDataInBf16AndF16MatchesCpuWithinOneHalfStep) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    const Tensor dy = uniform(c().y(), seed() + 2).to(half), w = uniform(c().weight(), seed() + 3).to(half);
    expect_gpu_matches_cpu(*gpu,
                           backward_data(half, dy, w, conv_half_tolerance(half, c().k * c().r * c().s, dy, w)));
  }
}

TEST_P(GpuChannelsLastConv2d, BackwardFilterInBf16AndF16MatchesCpuWithinOneHalfStep) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    const Tensor x = uniform(c().x(), seed() + 4).to(half), dy = uniform(c().y(), seed() + 5).to(half);
    const int64_t terms = c().y()[0] * c().y()[2] * c().y()[3];
    expect_gpu_matches_cpu(*gpu, backward_filter(half, x, dy, conv_half_tolerance(half, terms, x, dy)));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GpuChannelsLastConv2d, ::testing::ValuesIn(kConvCases), case_name<ConvCase>);

// ---- max pooling ----------------------------------------------------------------------------------

const std::vector<MaxPoolCase> kMaxPoolCases = {
    {"ResNet_2x64x112x112_3x3_Stride2_Pad1", {2, 64, 112, 112}, {3, 2, 1}, PoolValues::Random},
    {"ResNetGeometry_Ties", {2, 8, 17, 17}, {3, 2, 1}, PoolValues::Ties},
    {"ResNetGeometry_37Channels_TiesAndNaN", {2, 37, 13, 11}, {3, 2, 1}, PoolValues::TiesAndNaN},
    {"ResNetGeometry_NegativeInfinityWindows", {1, 3, 9, 9}, {3, 2, 1}, PoolValues::MostlyNegativeInfinity},
    {"Kernel2_Stride2_Pad0_Ties", {3, 7, 10, 9}, {2, 2, 0}, PoolValues::Ties},
    {"Kernel3_Stride1_Pad1_Overlapping_Ties", {2, 3, 8, 8}, {3, 1, 1}, PoolValues::Ties},
    {"Kernel5_Stride2_Pad2_TiesAndNaN", {2, 6, 9, 13}, {5, 2, 2}, PoolValues::TiesAndNaN},
};

// The tie, NaN and -inf rules (gpu_op_cases.h's maxpool_input) hold in both layouts.
class GpuChannelsLastMaxPool : public ::testing::TestWithParam<MaxPoolCase> {
 protected:
  const MaxPoolCase& c() const { return GetParam(); }
  uint64_t seed() const { return seed_of(c().name); }
  Op forward(DType dtype, const Tolerance& values) const {
    return [this, dtype, values, x = maxpool_input(c(), seed()).to(dtype)](OpRun& run) {
      Tensor y = laid_out_output(run, c().y(), dtype), indices = laid_out_output(run, c().y(), DType::I64);
      run.backend().maxpool2d_forward(laid_out_input(run, x), y, indices, c().geometry);
      expect_allocated_in_run_layout(run, y, "y");
      expect_allocated_in_run_layout(run, indices, "indices");
      // Indices are the flat h·W + w within each plane in either layout (PyTorch's): identical.
      return Results{{"y", run.result(y), values}, {"indices", run.result(indices), kExact}};
    };
  }
  // dx from the CPU forward's indices, which both backends route the gradients by.
  Op backward(DType dtype, const Tolerance& tolerance) const {
    auto cpu = make_cpu_backend();
    Tensor y, indices;
    cpu->maxpool2d_forward(maxpool_input(c(), seed()).to(dtype), y, indices, c().geometry);
    return [this, dtype, tolerance, indices, dy = uniform(c().y(), seed() + 10).to(dtype)](OpRun& run) {
      Tensor dx = laid_out_allocated(run, c().shape, dtype);
      run.backend().maxpool2d_backward(laid_out_input(run, dy), laid_out_input(run, indices), dx, c().geometry);
      return Results{{"dx", run.result(dx), tolerance}};
    };
  }
};

TEST_P(GpuChannelsLastMaxPool, ForwardMatchesCpuWithIdenticalIndices) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward(DType::F32, kExact));
}

TEST_P(GpuChannelsLastMaxPool, ForwardAllocatesChannelsLastOutputs) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward(DType::F32, kExact), Outputs::Undefined);
}

TEST_P(GpuChannelsLastMaxPool, ForwardInBf16AndF16MatchesCpuBitForBit) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    expect_gpu_matches_cpu(*gpu, forward(half, kExactBits));
  }
}

// Each dx element sums the dy of the windows that chose it in increasing output order, as the NCHW
// kernel does: the NCHW tests' kFp32, and in BF16 and F16 the same bits.
TEST_P(GpuChannelsLastMaxPool, BackwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, backward(DType::F32, kFp32));
}

TEST_P(GpuChannelsLastMaxPool, BackwardInBf16AndF16MatchesCpuBitForBit) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    expect_gpu_matches_cpu(*gpu, backward(half, kExact));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GpuChannelsLastMaxPool, ::testing::ValuesIn(kMaxPoolCases), case_name<MaxPoolCase>);

// ---- adaptive average pooling ---------------------------------------------------------------------

const std::vector<AvgPoolCase> kAvgPoolCases = {
    {"ResNetHead_8x512x7x7", {8, 512, 7, 7}},
    {"Odd_3x13x5x9", {3, 13, 5, 9}},
    {"LargePlanes_2x64x56x56", {2, 64, 56, 56}},
    {"OnePixel_LiesInBothOrders_1x3x1x1", {1, 3, 1, 1}},
};

class GpuChannelsLastAvgPool : public ::testing::TestWithParam<AvgPoolCase> {
 protected:
  Shape y() const { return {GetParam().shape[0], GetParam().shape[1], 1, 1}; }
  uint64_t seed() const { return seed_of(GetParam().name); }
  // Inputs in [0, 2), as after a ReLU. A plane is summed in double in h·W + w order in either
  // layout, as the CPU sums it: kFp32 in F32 and the same bits in BF16, as in the NCHW tests.
  Op forward(DType dtype, const Tolerance& tolerance) const {
    return [this, dtype, tolerance, x = uniform(GetParam().shape, seed(), 0.0, 2.0).to(dtype)](OpRun& run) {
      Tensor y = laid_out_output(run, this->y(), dtype);  // (N, C, 1, 1) lies in both orders
      run.backend().adaptive_avgpool_forward(laid_out_input(run, x), y);
      return Results{{"y", run.result(y), tolerance}};
    };
  }
  Op backward(DType dtype, const Tolerance& tolerance) const {
    return [this, dtype, tolerance, dy = uniform(y(), seed() + 1).to(dtype)](OpRun& run) {
      Tensor dx = laid_out_allocated(run, GetParam().shape, dtype);
      run.backend().adaptive_avgpool_backward(run.input(dy), dx);
      return Results{{"dx", run.result(dx), tolerance}};
    };
  }
};

TEST_P(GpuChannelsLastAvgPool, ForwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward(DType::F32, kFp32));
}

TEST_P(GpuChannelsLastAvgPool, ForwardAllocatesAnUndefinedY) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward(DType::F32, kFp32), Outputs::Undefined);
}

TEST_P(GpuChannelsLastAvgPool, BackwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, backward(DType::F32, kFp32));
}

TEST_P(GpuChannelsLastAvgPool, ForwardInBf16AndF16MatchesCpuBitForBit) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    expect_gpu_matches_cpu(*gpu, forward(half, kExact));
  }
}

TEST_P(GpuChannelsLastAvgPool, BackwardInBf16AndF16MatchesCpuBitForBit) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    SCOPED_TRACE(dtype_name(half));
    expect_gpu_matches_cpu(*gpu, backward(half, kExact));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GpuChannelsLastAvgPool, ::testing::ValuesIn(kAvgPoolCases), case_name<AvgPoolCase>);

// ---- elementwise ops: they walk memory order, so channels-last changes only where each element is -----

struct ElementwiseCase {
  std::string name;
  Shape shape;
};
void PrintTo(const ElementwiseCase& c, std::ostream* os) { *os << c.name; }

const std::vector<ElementwiseCase> kElementwiseCases = {
    {"Odd_3x5x7x9", {3, 5, 7, 9}},
    {"ResNetActivation_2x64x56x56", {2, 64, 56, 56}},
};

// Uniform in [-1, 1) with a NaN and an infinity among them, in `dtype`.
Tensor activation(const Shape& shape, uint64_t seed, DType dtype) {
  Tensor x = uniform(shape, seed);
  sprinkle(x, seed + 1, 1.0 / 32, NAN);
  sprinkle(x, seed + 2, 1.0 / 64, INFINITY);
  return x.to(dtype);
}

class GpuChannelsLastElementwise : public ::testing::TestWithParam<ElementwiseCase> {
 protected:
  const Shape& shape() const { return GetParam().shape; }
  uint64_t seed() const { return seed_of(GetParam().name); }
};

// One correctly rounded operation per element, or none: the same bits as the CPU's, as in NCHW.
TEST_P(GpuChannelsLastElementwise, AddMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    const Tensor a = activation(shape(), seed(), dtype), b = activation(shape(), seed() + 10, dtype);
    expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
      Tensor out = laid_out_output(run, shape(), dtype);
      run.backend().add(laid_out_input(run, a), laid_out_input(run, b), out);
      return Results{{"out " + dtype_name(dtype), run.result(out), kExact}};
    });
  }
}

TEST_P(GpuChannelsLastElementwise, AddAllocatesAChannelsLastOut) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor a = activation(shape(), seed(), DType::F32), b = activation(shape(), seed() + 10, DType::F32);
  expect_gpu_matches_cpu(
      *gpu,
      [&](OpRun& run) {
        Tensor out = laid_out_output(run, shape());
        run.backend().add(laid_out_input(run, a), laid_out_input(run, b), out);
        expect_allocated_in_run_layout(run, out, "out");
        return Results{{"out", run.result(out), kExact}};
      },
      Outputs::Undefined);
}

TEST_P(GpuChannelsLastElementwise, AccumulateMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    const Tensor dst = activation(shape(), seed(), half), src = activation(shape(), seed() + 10, half);
    expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
      Tensor sum = laid_out_input(run, dst);
      run.backend().accumulate(sum, laid_out_input(run, src));
      return Results{{"dst " + dtype_name(half), run.result(sum), kExact}};
    });
  }
}

TEST_P(GpuChannelsLastElementwise, ReluForwardAndBackwardMatchCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    const Tensor x = activation(shape(), seed(), dtype), dy = activation(shape(), seed() + 10, dtype);
    expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
      Tensor y = laid_out_output(run, shape(), dtype), dx = laid_out_output(run, shape(), dtype);
      run.backend().relu_forward(laid_out_input(run, x), y);
      run.backend().relu_backward(y, laid_out_input(run, dy), dx);
      return Results{{"y " + dtype_name(dtype), run.result(y), kExactBits},
                     {"dx " + dtype_name(dtype), run.result(dx), kExactBits}};
    });
  }
}

// The residual add's ReLU as one kernel against the CPU's add then ReLU: the same values (NaN
// aside, as in the NCHW test).
TEST_P(GpuChannelsLastElementwise, AddReluMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : kHalfDtypes) {
    const Tensor a = activation(shape(), seed(), half), b = activation(shape(), seed() + 10, half);
    expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
      Tensor y = laid_out_output(run, shape(), half);
      run.backend().run_producing_op(
          ProducingOp{ProducingOp::Kind::AddReluForward, laid_out_input(run, a), laid_out_input(run, b)}, y);
      return Results{{"y " + dtype_name(half), run.result(y), kExact}};
    });
  }
}

// A clamp's gradient mask comes in the tensor's own layout: multiplied in memory order.
TEST_P(GpuChannelsLastElementwise, MultiplyByAChannelsLastFactorMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor t = activation(shape(), seed(), DType::F32), factor = small_integers(shape(), seed() + 10, 2);
  expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
    Tensor product = laid_out_input(run, t);
    run.backend().multiply_(product, laid_out_input(run, factor));
    return Results{{"tensor", run.result(product), kExact}};
  });
}

INSTANTIATE_TEST_SUITE_P(Shapes, GpuChannelsLastElementwise, ::testing::ValuesIn(kElementwiseCases),
                         case_name<ElementwiseCase>);

// ---- probes: what reaches the host is NCHW ---------------------------------------------------------

TEST(GpuChannelsLastProbes, CaptureOfAChannelsLastTensorReachesTheHostNchw) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor host = activation({2, 37, 5, 7}, 71, DType::BF16);
  Tensor device = gpu->from_host(host.to_memory_format(kNhwc));
  ProbeRecord record;
  testing::run_probes_now(*gpu, ProbeList{probes::Capture{}}, device, record, ProbeRunOptions{});
  ASSERT_EQ(record.results.size(), 1u);
  const auto* capture = std::get_if<CaptureResult>(&record.results.front());
  ASSERT_NE(capture, nullptr);
  EXPECT_EQ(memory_format_name(capture->tensor.memory_format()), "contiguous_format");
  EXPECT_TRUE(same_bytes(capture->tensor, host)) << "the captured values, moved to NCHW order bit for bit";
}

TEST(GpuChannelsLastProbes, ClampMaskOfAChannelsLastTensorLiesInItsLayout) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor host = activation({2, 37, 5, 7}, 72, DType::F32);
  Tensor device = gpu->from_host(host.to_memory_format(kNhwc));
  ProbeRecord record;
  ProbeRunOptions options;
  options.want_grad_transforms = true;
  const ProbeRunEffects effects =
      testing::run_probes_now(*gpu, ProbeList{probes::Clamp{-0.5, 0.5}}, device, record, options);
  ASSERT_EQ(effects.grad_transforms.size(), 1u);
  const Tensor& mask = effects.grad_transforms.front().factor;
  EXPECT_EQ(memory_format_name(mask.memory_format()), "channels_last")
      << "multiplied into the gradient in memory order";
  const Tensor got = gpu->to_host(mask);
  for (int64_t i = 0; i < host.numel(); ++i) {
    const double v = host.item(i);
    ASSERT_EQ(got.item(i), v >= -0.5 && v <= 0.5 ? 1.0 : 0.0) << "element " << i << " = " << v;
  }
}

// ---- errors: operands in two layouts --------------------------------------------------------------

// The message an Error thrown by `call` carries, or "(nothing thrown)".
std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return "(nothing thrown)";
}

struct MixedLayoutCase {
  std::string name;
  std::string message;  // the op, the operand in the other layout, its layout and the op's
  std::function<void(Backend&)> call;
};
void PrintTo(const MixedLayoutCase& c, std::ostream* os) { *os << c.name; }

Tensor on(Backend& b, const Shape& shape, MemoryFormat format, uint64_t seed) {
  return b.from_host(uniform(shape, seed).to_memory_format(format));
}

const std::vector<MixedLayoutCase> kMixedLayoutCases = {
    {"Copy", "copy: dst [2, 3, 4, 4] is contiguous_format; expected channels_last (the layout of src)",
     [](Backend& b) {
       Tensor dst = b.empty({2, 3, 4, 4}, DType::F32);
       b.copy(on(b, {2, 3, 4, 4}, kNhwc, 1), dst);
     }},
    {"Add", "add: b [2, 3, 4, 4] is contiguous_format; expected channels_last (the layout of a)",
     [](Backend& b) {
       Tensor out;
       b.add(on(b, {2, 3, 4, 4}, kNhwc, 1), on(b, {2, 3, 4, 4}, kNchw, 2), out);
     }},
    {"Accumulate", "accumulate: src [2, 3, 4, 4] is channels_last; expected contiguous_format (the layout of dst)",
     [](Backend& b) {
       Tensor dst = on(b, {2, 3, 4, 4}, kNchw, 1);
       b.accumulate(dst, on(b, {2, 3, 4, 4}, kNhwc, 2));
     }},
    {"ReluBackward", "relu_backward: dy [2, 3, 4, 4] is contiguous_format; expected channels_last (the layout of y)",
     [](Backend& b) {
       Tensor dx;
       b.relu_backward(on(b, {2, 3, 4, 4}, kNhwc, 1), on(b, {2, 3, 4, 4}, kNchw, 2), dx);
     }},
    {"Conv2dForward",
     "conv2d_forward: w [4, 3, 3, 3] is contiguous_format; the op's other tensors are channels_last "
     "(as x [1, 3, 8, 8] is)",
     [](Backend& b) {
       Tensor y;
       b.conv2d_forward(on(b, {1, 3, 8, 8}, kNhwc, 1), on(b, {4, 3, 3, 3}, kNchw, 2), y, {.stride = 1, .padding = 1});
     }},
    {"Conv2dBackwardFilter",
     "conv2d_backward_filter: dw [4, 3, 3, 3] is contiguous_format; the op's other tensors are channels_last (as x",
     [](Backend& b) {
       Tensor dw = b.empty({4, 3, 3, 3}, DType::F32);
       b.conv2d_backward_filter(on(b, {1, 3, 8, 8}, kNhwc, 1), on(b, {1, 4, 8, 8}, kNhwc, 2), dw,
                                {.stride = 1, .padding = 1});
     }},
    {"MaxPoolForward",
     "maxpool2d_forward: indices [1, 2, 3, 3] is contiguous_format; the op's other tensors are channels_last (as x",
     [](Backend& b) {
       Tensor y, indices = b.empty({1, 2, 3, 3}, DType::I64);
       b.maxpool2d_forward(on(b, {1, 2, 6, 6}, kNhwc, 1), y, indices, {});
     }},
};

class GpuChannelsLastErrors : public ::testing::TestWithParam<MixedLayoutCase> {};

TEST_P(GpuChannelsLastErrors, OperandsInTwoLayoutsAreRefusedByName) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const std::string message = error_of([&] { GetParam().call(*gpu); });
  EXPECT_NE(message.find(GetParam().message), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(Ops, GpuChannelsLastErrors, ::testing::ValuesIn(kMixedLayoutCases),
                         case_name<MixedLayoutCase>);

// A tensor of one pixel per channel lies in both orders: whatever its label, it pairs with either.
TEST(GpuChannelsLastErrorsNot, OperandsThatLieInBothOrdersAreAccepted) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor a = uniform({2, 3, 1, 1}, 1), b = uniform({2, 3, 1, 1}, 2);
  Tensor out;
  gpu->add(gpu->from_host(a.to_memory_format(kNhwc)), gpu->from_host(b), out);
  const Tensor got = gpu->to_host(out);
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_EQ(got.item(i), static_cast<float>(a.item(i) + b.item(i)));
}

}  // namespace
}  // namespace hookrt
