// The CUDA backend against the CPU reference backend, op by op, forward and backward. Every op runs
// on both backends from the same seeded host inputs (the GPU gets them through from_host) and each
// result is compared per tensor, with a tolerance that says why it was chosen. As in ggml's
// test-backend-ops, every output a test allocates sits between guard bytes that must survive the
// op, and starts as NaN so that an element the op never writes shows. GPU tests start with
// HOOKRT_GPU_OR_SKIP(gpu) and skip, saying why, where there is no GPU or no CUDA build.
// This file: memory (empty, zeros, from_host, to_host, copy), convert, fill, add, accumulate and
// multiply_ (F32, BF16 and F16); the harness is tests/support/gpu_ops.h.
#include <gtest/gtest.h>

#include "support/gpu_ops.h"

namespace hookrt {
namespace {

using namespace testing::gpu_ops;

// ---- memory: empty, zeros, from_host, to_host, copy ----------------------------------------------

struct BytesCase {
  std::string name;
  Shape shape;
  DType dtype;
};
void PrintTo(const BytesCase& c, std::ostream* os) { *os << c.name; }

const std::vector<BytesCase> kBytesCases = {
    {"F32_NoElements", {0}, DType::F32},
    {"F32_OneElement", {1}, DType::F32},
    {"F32_Odd_3x5x7", {3, 5, 7}, DType::F32},
    {"F32_MoreThanOneStagingChunk", {2'500'001}, DType::F32},  // 10 MB through the 8 MiB pinned buffer
    {"F64_JustOverOneStagingChunk", {1'048'577}, DType::F64},
    {"I64_7x9", {7, 9}, DType::I64},
    {"I32_1001", {1001}, DType::I32},
    {"U8_13", {13}, DType::U8},
    {"F16_17", {17}, DType::F16},
    {"BF16_5x3", {5, 3}, DType::BF16},
};

class MemoryTest : public ::testing::TestWithParam<BytesCase> {
 protected:
  Tensor host() const { return random_bytes(GetParam().shape, GetParam().dtype, seed_of(GetParam().name)); }
};

TEST_P(MemoryTest, FromHostThenToHostIsBitExact) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor host = this->host();
  const Tensor device = gpu->from_host(host);
  EXPECT_EQ(device.device(), Device::CUDA);
  EXPECT_EQ(device.shape(), host.shape());
  EXPECT_EQ(device.dtype(), host.dtype());
  EXPECT_TRUE(same_bytes(gpu->to_host(device), host)) << "bytes must survive the round trip unchanged";
}

TEST_P(MemoryTest, CopyFromHostFillsExactlyTheDestination) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor host = this->host();
  OpRun run(*gpu, Outputs::Guarded);
  Tensor dst = run.allocated_output(host.shape(), host.dtype());
  gpu->copy(host, dst);
  EXPECT_TRUE(same_bytes(gpu->to_host(dst), host));
  EXPECT_EQ(run.problems(), "");
}

TEST_P(MemoryTest, CopyOnTheDeviceFillsExactlyTheDestination) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor host = this->host();
  const Tensor src = gpu->from_host(host);
  OpRun run(*gpu, Outputs::Guarded);
  Tensor dst = run.allocated_output(host.shape(), host.dtype());
  gpu->copy(src, dst);
  EXPECT_TRUE(same_bytes(gpu->to_host(dst), host));
  EXPECT_TRUE(same_bytes(gpu->to_host(src), host)) << "the source is left alone";
  EXPECT_EQ(run.problems(), "");
}

TEST_P(MemoryTest, CopyToTheHostFillsExactlyTheDestination) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor host = this->host();
  auto cpu = make_cpu_backend();
  OpRun host_run(*cpu, Outputs::Guarded);  // host memory with the same guards
  Tensor dst = host_run.allocated_output(host.shape(), host.dtype());
  gpu->copy(gpu->from_host(host), dst);
  EXPECT_TRUE(same_bytes(dst, host));
  EXPECT_EQ(host_run.problems(), "");
}

TEST_P(MemoryTest, CopyIntoAnUndefinedTensorAllocatesItOnTheDevice) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor host = this->host();
  Tensor dst;
  gpu->copy(gpu->from_host(host), dst);
  ASSERT_TRUE(dst.defined());
  EXPECT_EQ(dst.device(), Device::CUDA);
  EXPECT_TRUE(same_bytes(gpu->to_host(dst), host));
}

INSTANTIATE_TEST_SUITE_P(Tensors, MemoryTest, ::testing::ValuesIn(kBytesCases), case_name<BytesCase>);

bool all_bytes_zero(const Tensor& host) {
  const auto* p = static_cast<const uint8_t*>(host.raw_data());
  return std::all_of(p, p + host.nbytes(), [](uint8_t b) { return b == 0; });
}

TEST(GpuMemory, EmptyAndZerosHaveTheAskedShapeDtypeAndDevice) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Shape shape{2, 3, 5};
  for (DType dtype : {DType::F32, DType::F64, DType::I64, DType::I32, DType::U8}) {
    const Tensor empty = gpu->empty(shape, dtype), zeros = gpu->zeros(shape, dtype);
    for (const Tensor* t : {&empty, &zeros}) {
      EXPECT_EQ(t->device(), Device::CUDA) << dtype_name(dtype);
      EXPECT_EQ(t->shape(), shape) << dtype_name(dtype);
      EXPECT_EQ(t->dtype(), dtype);
    }
    EXPECT_TRUE(all_bytes_zero(gpu->to_host(zeros))) << dtype_name(dtype);
  }
}

TEST(GpuMemory, ZerosClearMemoryThePoolHandsOutAgain) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Shape shape{(1 << 20) + 3};
  {
    Tensor dirty = gpu->empty(shape, DType::F32);  // back to the pool at the end of this scope
    gpu->fill(dirty, NAN);
  }
  EXPECT_TRUE(all_bytes_zero(gpu->to_host(gpu->zeros(shape, DType::F32))))
      << "a pool block that held NaN must come back cleared";
}

TEST(GpuMemory, CopyBetweenShapesOfOneElementCountKeepsTheOrder) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor host = uniform({6, 4}, 11);
  Tensor dst = gpu->empty({24}, DType::F32);
  gpu->copy(gpu->from_host(host), dst);
  EXPECT_TRUE(same_bytes(gpu->to_host(dst), host.reshape({24}))) << "as the CPU backend: element counts must agree";
}

TEST(GpuMemory, CopyRejectsAnotherDtypeOrElementCount) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor src = gpu->from_host(uniform({5}, 12));
  Tensor other_dtype = gpu->empty({5}, DType::I32), other_count = gpu->empty({6}, DType::F32);
  EXPECT_THROW(gpu->copy(src, other_dtype), Error);
  EXPECT_THROW(gpu->copy(src, other_count), Error);
}

TEST(GpuMemory, ToHostOfAHostTensorIsANewCopy) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor host = uniform({4}, 13);
  Tensor copy = gpu->to_host(host);
  copy.data<float>()[0] = 42.0f;
  EXPECT_NE(host.data<float>()[0], 42.0f) << "to_host always returns a new host tensor";
}

// ---- convert -----------------------------------------------------------------------------------------

struct ConvertCase {
  std::string name;
  DType from, to;
  int64_t n;
};
void PrintTo(const ConvertCase& c, std::ostream* os) { *os << c.name; }

const std::vector<ConvertCase> kConvertCases = {
    {"F32ToBf16_Specials", DType::F32, DType::BF16, 0},  // n = 0: the specials only
    {"F32ToBf16_Odd_100003", DType::F32, DType::BF16, 100'003},
    {"Bf16ToF32_AllBitPatterns", DType::BF16, DType::F32, 65'536},
    {"F32ToF16_Odd_100003", DType::F32, DType::F16, 100'003},
    {"F16ToF32_AllBitPatterns", DType::F16, DType::F32, 65'536},
    {"Bf16ToF16_AllBitPatterns", DType::BF16, DType::F16, 65'536},
    {"F16ToBf16_AllBitPatterns", DType::F16, DType::BF16, 65'536},
    {"F32ToF32_IsACopy", DType::F32, DType::F32, 1'001},
    {"Bf16ToBf16_IsACopy", DType::BF16, DType::BF16, 1'001},
    {"F16ToF16_IsACopy", DType::F16, DType::F16, 1'001},
};

// F32 values that probe the rounding: NaNs (quiet and signalling, either sign, with payloads),
// infinities, signed zeros, subnormals of F32 and of BF16, the largest finite values and those that
// round up to infinity, and ties exactly halfway between two BF16 (or F16) values, which go to the
// even one.
std::vector<float> rounding_specials() {
  const auto from_bits = [](uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  };
  return {NAN, -NAN, from_bits(0x7F800001), from_bits(0xFF812345), from_bits(0x7FC00001), from_bits(0x7FBFFFFF),
          INFINITY, -INFINITY, 0.0f, -0.0f, from_bits(0x00000001), from_bits(0x807FFFFF), from_bits(0x00008000),
          from_bits(0x00018000), FLT_MAX, -FLT_MAX, from_bits(0x7F7F7FFF), from_bits(0x7F7F8000),
          1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -(1.0f + 0x1p-8f), 1.0f + 0x1p-8f + 0x1p-20f, 1.0f + 0x1p-11f,
          1.0f + 3 * 0x1p-11f, 65504.0f, 65520.0f, 0x1p-24f, 0x1p-25f, 3 * 0x1p-26f, 0.1f, -1.0f / 3};
}

// The case's source: random F32 values over many magnitudes after the specials, or every 16-bit
// pattern (NaN payloads, subnormals and infinities among them).
Tensor convert_source(const ConvertCase& c) {
  if (c.from != DType::F32) {
    Tensor t = Tensor::empty({c.n}, c.from);
    auto* bits = static_cast<uint16_t*>(t.raw_data());
    for (int64_t i = 0; i < c.n; ++i) bits[i] = static_cast<uint16_t>(i);
    return t;
  }
  const std::vector<float> specials = rounding_specials();
  const int64_t n = std::max<int64_t>(c.n, static_cast<int64_t>(specials.size()));
  Tensor t = uniform({n}, seed_of(c.name), -1.0, 1.0);
  Pcg32 rng(seed_of(c.name) + 1);
  float* p = t.data<float>();
  for (int64_t i = 0; i < n; ++i) p[i] = std::ldexp(p[i], static_cast<int>(rng.below(80)) - 40);
  std::copy(specials.begin(), specials.end(), p);
  return t;
}

class ConvertTest : public ::testing::TestWithParam<ConvertCase> {};

TEST_P(ConvertTest, MatchesTensorToBitForBit) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor src = convert_source(GetParam());
  OpRun run(*gpu, Outputs::Guarded);
  Tensor dst = run.allocated_output(src.shape(), GetParam().to);
  gpu->convert(run.input(src), dst);
  const Tensor want = src.to(GetParam().to);
  const Tensor got = run.result(dst);
  EXPECT_EQ(run.problems(), "");
  ASSERT_TRUE(same_bytes(got, want));
}

TEST_P(ConvertTest, CpuBackendAgrees) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor src = convert_source(GetParam());
  expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
    Tensor dst = run.allocated_output(src.shape(), GetParam().to);
    run.backend().convert(run.input(src), dst);
    return Results{{"dst", run.result(dst), kExactBits}};
  });
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ConvertTest, ::testing::ValuesIn(kConvertCases), case_name<ConvertCase>);

TEST(GpuConvert, RejectsAnotherElementCountOrAnIntegerDtype) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Tensor src = gpu->from_host(uniform({6}, 1));
  Tensor five = gpu->empty({5}, DType::BF16), integers = gpu->empty({6}, DType::I32);
  EXPECT_THROW(gpu->convert(src, five), Error);
  EXPECT_THROW(gpu->convert(src, integers), Error);
}

// ---- fill --------------------------------------------------------------------------------------------

struct FillCase {
  std::string name;
  DType dtype;
  Shape shape;
  double value;
};
void PrintTo(const FillCase& c, std::ostream* os) { *os << c.name; }

const std::vector<FillCase> kFillCases = {
    {"F32_Odd_1000003", DType::F32, {1'000'003}, 2.5},
    {"F32_OneElement", DType::F32, {1}, -0.75},
    {"F32_NaN", DType::F32, {7}, NAN},
    {"F32_NegativeInfinity", DType::F32, {3, 5}, -INFINITY},
    {"F64_17", DType::F64, {17}, -1.25},
    {"I64_9", DType::I64, {9}, -3},
    {"I32_1025", DType::I32, {1025}, 123456},
    {"U8_31", DType::U8, {31}, 200},
    {"BF16_RoundsToNearestEven_1001", DType::BF16, {1001}, 0.1},
    {"BF16_NaN", DType::BF16, {7}, NAN},
    {"BF16_Tie", DType::BF16, {5}, 1.0 + 0x1p-8},
    {"F16_33", DType::F16, {33}, -0.3},
    {"F16_RoundsToNearestEven_1001", DType::F16, {1001}, 0.1},
    {"F16_NaN", DType::F16, {7}, NAN},
    {"F16_Tie", DType::F16, {5}, 1.0 + 0x1p-11},
};

class FillTest : public ::testing::TestWithParam<FillCase> {};

TEST_P(FillTest, MatchesCpuAndStaysInside) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const FillCase& c = GetParam();
  expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
    Tensor t = run.allocated_output(c.shape, c.dtype);
    run.backend().fill(t, c.value);
    return Results{{"tensor", run.result(t), kExactBits}};  // the host's conversion of the value on both
  });
}

INSTANTIATE_TEST_SUITE_P(Values, FillTest, ::testing::ValuesIn(kFillCases), case_name<FillCase>);

// ---- add, accumulate, multiply_ -------------------------------------------------------------------

struct ElementwiseCase {
  std::string name;
  int64_t n;
};
void PrintTo(const ElementwiseCase& c, std::ostream* os) { *os << c.name; }

const std::vector<ElementwiseCase> kElementwiseCases = {
    {"OneElement", 1},
    {"Seven", 7},
    {"Odd_4099", 4099},
    {"ResNetActivation_2x64x56x56", 2 * 64 * 56 * 56},
    {"Odd_1000003", 1'000'003},
    {"BeyondOneGridOfThreads", (int64_t{1} << 24) + 4099},  // the grid-stride loop's second lap
};

// Uniform in [-2, 2) with about 1/64 each of NaN, +inf and -inf.
Tensor elementwise_operand(int64_t n, uint64_t seed) {
  Tensor t = uniform({n}, seed, -2.0, 2.0);
  sprinkle(t, seed + 1, 1.0 / 64, NAN);
  sprinkle(t, seed + 2, 1.0 / 64, INFINITY);
  sprinkle(t, seed + 3, 1.0 / 64, -INFINITY);
  return t;
}

class ElementwiseTest : public ::testing::TestWithParam<ElementwiseCase> {
 protected:
  void SetUp() override {
    a_ = elementwise_operand(GetParam().n, seed_of(GetParam().name));
    b_ = elementwise_operand(GetParam().n, seed_of(GetParam().name) + 10);
  }
  Op add() const {
    return [this](OpRun& run) {
      Tensor out = run.output(a_.shape());
      run.backend().add(run.input(a_), run.input(b_), out);
      return Results{{"out", run.result(out), kExact}};
    };
  }
  Tensor a_, b_;
};

TEST_P(ElementwiseTest, AddMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, add());
}

TEST_P(ElementwiseTest, AddAllocatesAnUndefinedOut) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, add(), Outputs::Undefined);
}

TEST_P(ElementwiseTest, AccumulateMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, [this](OpRun& run) {
    Tensor dst = run.in_out(a_);
    run.backend().accumulate(dst, run.input(b_));
    return Results{{"dst", run.result(dst), kExact}};
  });
}

// BF16 and F16: each sum is one F32 addition of two half values, rounded once, on both backends (a
// NaN it makes or meets is a NaN on both, its bits the GPU's canonical one or the host's: kExact).
TEST_P(ElementwiseTest, AddInBf16AndF16MatchesCpuBitForBit) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : {DType::BF16, DType::F16}) {
    SCOPED_TRACE(dtype_name(half));
    const Tensor a = a_.to(half), b = b_.to(half);
    for (Outputs outputs : {Outputs::Guarded, Outputs::Undefined}) {
      expect_gpu_matches_cpu(
          *gpu,
          [&](OpRun& run) {
            Tensor out = run.output(a.shape(), half);
            run.backend().add(run.input(a), run.input(b), out);
            return Results{{"out", run.result(out), kExact}};
          },
          outputs);
    }
  }
}

TEST_P(ElementwiseTest, AccumulateInBf16AndF16MatchesCpuBitForBit) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (DType half : {DType::BF16, DType::F16}) {
    SCOPED_TRACE(dtype_name(half));
    const Tensor a = a_.to(half), b = b_.to(half);
    expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
      Tensor dst = run.in_out(a);
      run.backend().accumulate(dst, run.input(b));
      return Results{{"dst", run.result(dst), kExact}};
    });
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, ElementwiseTest, ::testing::ValuesIn(kElementwiseCases),
                         case_name<ElementwiseCase>);

// Where multiply_'s factor comes from: one element or the tensor's shape, on the device or (as a
// probe's GradTransform may hand it over) from the host, possibly in F64.
enum class Factor { OneElementOnDevice, OneElementFromHost, OneElementFromHostAsF64, ElementwiseOnDevice, ElementwiseFromHost };

std::string factor_name(Factor f) {
  switch (f) {
    case Factor::OneElementOnDevice: return "OneElementOnDevice";
    case Factor::OneElementFromHost: return "OneElementFromHost";
    case Factor::OneElementFromHostAsF64: return "OneElementFromHostAsF64";
    case Factor::ElementwiseOnDevice: return "ElementwiseOnDevice";
    case Factor::ElementwiseFromHost: return "ElementwiseFromHost";
  }
  return "?";
}

class MultiplyTest : public ::testing::TestWithParam<std::tuple<ElementwiseCase, Factor>> {};

TEST_P(MultiplyTest, MatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const auto& [c, kind] = GetParam();
  const uint64_t seed = seed_of(c.name + factor_name(kind));
  const Tensor t0 = elementwise_operand(c.n, seed);
  const bool one_element = kind == Factor::OneElementOnDevice || kind == Factor::OneElementFromHost ||
                           kind == Factor::OneElementFromHostAsF64;
  Tensor factor = one_element ? uniform({1}, seed + 10, -2.0, 2.0) : elementwise_operand(c.n, seed + 10);
  if (kind == Factor::OneElementFromHostAsF64) factor = factor.to(DType::F64);  // exact: F32 values
  const bool on_device = kind == Factor::OneElementOnDevice || kind == Factor::ElementwiseOnDevice;
  expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
    Tensor t = run.in_out(t0);
    run.backend().multiply_(t, on_device ? run.input(factor) : factor);
    return Results{{"tensor", run.result(t), kExact}};
  });
}

// A BF16 or F16 tensor (a gradient under Precision::BF16 or F16) times an F32 factor (a probe's
// GradTransform) or one of its own dtype: each product is one F32 multiplication, rounded once to
// the half dtype, on both backends (NaN bits aside, as for the add).
TEST_P(MultiplyTest, HalfTensorMatchesCpuBitForBit) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const auto& [c, kind] = GetParam();
  for (DType half : {DType::BF16, DType::F16}) {
    SCOPED_TRACE(dtype_name(half));
    // The BF16 run keeps the inputs it always drew.
    const uint64_t seed = seed_of(c.name + factor_name(kind) + (half == DType::BF16 ? "Bf16" : "F16"));
    const Tensor t0 = elementwise_operand(c.n, seed).to(half);
    const bool one_element = kind == Factor::OneElementOnDevice || kind == Factor::OneElementFromHost ||
                             kind == Factor::OneElementFromHostAsF64;
    const Tensor f32 = one_element ? uniform({1}, seed + 10, -2.0, 2.0) : elementwise_operand(c.n, seed + 10);
    const bool on_device = kind == Factor::OneElementOnDevice || kind == Factor::ElementwiseOnDevice;
    std::vector<Tensor> factors = {kind == Factor::OneElementFromHostAsF64 ? f32.to(DType::F64) : f32};
    if (on_device) factors.push_back(f32.to(half));  // the tensor's own dtype
    for (const Tensor& factor : factors) {
      expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
        Tensor t = run.in_out(t0);
        run.backend().multiply_(t, on_device ? run.input(factor) : factor);
        return Results{{"tensor", run.result(t), kExact}};
      });
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    SizesAndFactors, MultiplyTest,
    ::testing::Combine(::testing::ValuesIn(kElementwiseCases),
                       ::testing::Values(Factor::OneElementOnDevice, Factor::OneElementFromHost,
                                         Factor::OneElementFromHostAsF64, Factor::ElementwiseOnDevice,
                                         Factor::ElementwiseFromHost)),
    [](const auto& info) { return std::get<0>(info.param).name + "_" + factor_name(std::get<1>(info.param)); });

}  // namespace
}  // namespace hookrt
