// The CUDA backend against the CPU reference backend, op by op, forward and backward. Every op runs
// on both backends from the same seeded host inputs (the GPU gets them through from_host) and each
// result is compared per tensor, with a tolerance that says why it was chosen. As in ggml's
// test-backend-ops, every output a test allocates sits between guard bytes that must survive the
// op, and starts as NaN so that an element the op never writes shows. GPU tests start with
// HOOKRT_GPU_OR_SKIP(gpu) and skip, saying why, where there is no GPU or no CUDA build.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <functional>
#include <iomanip>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "hookrt/backend.h"
#include "hookrt/error.h"
#include "hookrt/tensor.h"
#include "random.h"
#include "support/gpu.h"

namespace hookrt {
namespace {

// ---- seeded host inputs ---------------------------------------------------------------------------

// FNV-1a of a case name: each case draws its own inputs, the same on every machine and run.
uint64_t seed_of(const std::string& name) {
  uint64_t hash = 1469598103934665603ULL;
  for (char ch : name) hash = (hash ^ static_cast<uint8_t>(ch)) * 1099511628211ULL;
  return hash;
}

// Host F32, uniform in [lo, hi).
Tensor uniform(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Pcg32 rng(seed);
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(rng.uniform(lo, hi));
  return t;
}

// Host F32 holding the integers 0 .. levels-1: many equal values, so pooling windows hold ties.
Tensor small_integers(const Shape& shape, uint64_t seed, uint32_t levels) {
  Pcg32 rng(seed);
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(rng.below(levels));
  return t;
}

// Sets about `fraction` of t's F32 elements, drawn by `seed`, to `value` (NaN, ±inf, ±0).
void sprinkle(Tensor& t, uint64_t seed, double fraction, float value) {
  Pcg32 rng(seed);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (rng.uniform() < fraction) p[i] = value;
}

// Host tensor of any dtype filled with random bytes (NaN payloads included): for bit-exact copies.
Tensor random_bytes(const Shape& shape, DType dtype, uint64_t seed) {
  Pcg32 rng(seed);
  Tensor t = Tensor::empty(shape, dtype);
  auto* p = static_cast<uint8_t*>(t.raw_data());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(rng.next_u32());
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         (a.nbytes() == 0 || std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0);
}

Tensor labels_below(int64_t n, int64_t classes, uint64_t seed) {
  Pcg32 rng(seed);
  std::vector<int64_t> labels(static_cast<size_t>(n));
  for (int64_t& label : labels) label = rng.below(static_cast<uint32_t>(classes));
  return Tensor::from_vector(labels, {n});
}

// ---- comparing a GPU result with the CPU's --------------------------------------------------------
//
// Errors are measured per tensor, never per element (as ggml's test-backend-ops does):
//   max-relative = max_i |gpu_i - cpu_i| / max(max_i |cpu_i|, FLT_MIN)
//   L2-relative  = ||gpu - cpu||_2 / max(||cpu||_2, FLT_MIN)
// over the elements finite on both sides. NaN must sit at the same positions and infinities must
// be equal, sign included. FLT_MIN (the "tiny" scale) makes an all-zero reference demand an
// all-zero result. Integer tensors (max-pool indices) must be identical. The CPU reference
// computes in F32 too (its reductions mostly in double), so a bound covers both sides' rounding.
struct Tolerance {
  double max_relative;                                           // 0: identical values
  double l2_relative = std::numeric_limits<double>::infinity();  // checked when finite
  const char* why = "";
};

// No arithmetic (copies, fill, ReLU, max-pool selection) or one correctly rounded IEEE operation
// per element (add, accumulate, multiply_): both backends produce the same bits.
constexpr Tolerance kExact{
    .max_relative = 0,
    .why = "no arithmetic, or one correctly rounded IEEE operation per element: identical on both backends"};

// F32 arithmetic on both sides: elementwise chains of a few roundings (SGD, BN's normalisation,
// softmax: ~1e-7) and reductions that either backend does in double (pooling, cross-entropy, the
// linear bias) or over at most a few thousand terms (cuBLAS GEMMs over 512 inputs, cuDNN's BN
// statistics over N·H·W ≤ 12544 values, whose blocked sums err by a few 1e-7 of the largest
// result). 1e-5 is the bound asked for these ops, about 80 F32 ulps of the largest element.
constexpr Tolerance kFp32{
    .max_relative = 1e-5,
    .why = "F32 on both sides: a few roundings per element or short/blocked reductions, ~1e-7 expected"};

// Convolutions sum C·R·S (forward), K·R·S (backward data) or N·P·Q (backward filter: up to 12544
// here) products. cuDNN picks its algorithm by heuristics (implicit GEMM, Winograd, FFT), whose
// rounding differs from the CPU's im2col + sgemm in order and, for Winograd and FFT, in the
// transforms. Errors of such sums grow like sqrt(terms)·eps·rms(term), as do the outputs, so the
// typical relative error does not depend on the size; but on a tensor of a million outputs the
// max-relative ratio pits one extreme error against one extreme output and is mostly noise. So
// the bound of 1e-5 applies to the L2-relative error (the typical error against the typical
// output); the max-relative bound of 1e-4 is a second line that still catches one wrong element.
// Seen on an H100 (cuDNN 9, TF32 off): ResNetLayer1's backward filter errs by 5.4e-6 L2-relative
// and 1.7e-5 max-relative, the worst case here (the CPU's own F32 error is 3e-7: the rest is
// cuDNN's algorithm); forward and backward data stay below 1.2e-6 L2 and 2e-6 max.
constexpr Tolerance kConvolution{
    .max_relative = 1e-4,
    .l2_relative = 1e-5,
    .why = "sums of up to 12544 F32 products in another order or transform (Winograd/FFT): "
           "L2-relative 1e-5, and max-relative 1e-4 against single wrong elements"};

::testing::AssertionResult agrees(const Tensor& gpu, const Tensor& cpu, const Tolerance& tolerance) {
  std::ostringstream out;
  out << std::setprecision(9);
  if (!gpu.defined() || !cpu.defined() || gpu.dtype() != cpu.dtype() || gpu.shape() != cpu.shape()) {
    const auto describe = [](const Tensor& t) {
      return t.defined() ? dtype_name(t.dtype()) + " " + shape_string(t.shape()) : std::string("undefined");
    };
    return ::testing::AssertionFailure() << "GPU result is " << describe(gpu) << ", CPU's " << describe(cpu);
  }
  const int64_t n = cpu.numel();
  if (cpu.dtype() != DType::F32 && cpu.dtype() != DType::F64) {
    const size_t size = dtype_size(cpu.dtype());
    const auto* g = static_cast<const char*>(gpu.raw_data());
    const auto* c = static_cast<const char*>(cpu.raw_data());
    for (int64_t i = 0; i < n; ++i)
      if (std::memcmp(g + i * size, c + i * size, size) != 0) {
        out << "element " << i << ": GPU " << gpu.item(i) << ", CPU " << cpu.item(i)
            << " (integers must be identical)";
        return ::testing::AssertionFailure() << out.str();
      }
    return ::testing::AssertionSuccess();
  }
  double max_diff = 0, max_ref = 0, diff_squares = 0, ref_squares = 0;
  int64_t worst = -1;
  for (int64_t i = 0; i < n; ++i) {
    const double g = gpu.item(i), c = cpu.item(i);
    if (std::isnan(g) || std::isnan(c) || std::isinf(g) || std::isinf(c)) {
      if (!(std::isnan(g) && std::isnan(c)) && g != c) {
        out << "element " << i << ": GPU " << g << ", CPU " << c << " (NaN and infinities must match)";
        return ::testing::AssertionFailure() << out.str();
      }
      continue;
    }
    const double diff = std::fabs(g - c);
    if (diff > max_diff) {
      max_diff = diff;
      worst = i;
    }
    max_ref = std::max(max_ref, std::fabs(c));
    diff_squares += diff * diff;
    ref_squares += c * c;
  }
  const double tiny = FLT_MIN;
  const double max_relative = max_diff / std::max(max_ref, tiny);
  const double l2_relative = std::sqrt(diff_squares) / std::max(std::sqrt(ref_squares), tiny);
  if (max_relative <= tolerance.max_relative && l2_relative <= tolerance.l2_relative)
    return ::testing::AssertionSuccess();
  out << "max-relative error " << max_relative << " (bound " << tolerance.max_relative << "), L2-relative "
      << l2_relative << " (bound " << tolerance.l2_relative << "); max|CPU| " << max_ref;
  if (worst >= 0) out << "; worst element " << worst << ": GPU " << gpu.item(worst) << ", CPU " << cpu.item(worst);
  return ::testing::AssertionFailure() << out.str();
}

// ---- running one op on one backend ---------------------------------------------------------------

// Outputs the test allocates between guards, or leaves undefined for the backend to allocate.
enum class Outputs { Guarded, Undefined };

// Guard bytes around each allocated output. 256 in front keep the view as aligned as the
// allocator's own blocks (vector loads, cuDNN and cuBLAS kernels see the alignment they would).
constexpr size_t kFrontGuardBytes = 256;
constexpr size_t kBackGuardBytes = 64;
constexpr uint32_t kGuardWord = 0x7FF5A5A5;  // a quiet NaN as F32; the F64 and I64 views are NaN/huge too

uint8_t guard_byte(size_t i) { return static_cast<uint8_t>(kGuardWord >> (8 * (i % 4))); }  // little-endian

// One run of an op on one backend: host inputs go in through from_host, outputs are allocated
// between guard bytes (whose interior starts as the guard pattern: NaN in F32), results come back
// to the host. problems() then says whether any guard was overwritten or a result lived elsewhere.
class OpRun {
 public:
  OpRun(Backend& backend, Outputs outputs) : backend_(backend), outputs_(outputs) {}

  Backend& backend() { return backend_; }
  Tensor input(const Tensor& host) { return backend_.from_host(host); }
  // An output the backend could allocate itself: guarded, or undefined in Outputs::Undefined.
  Tensor output(const Shape& shape, DType dtype = DType::F32) {
    return outputs_ == Outputs::Undefined ? Tensor() : allocated_output(shape, dtype);
  }
  // An output the backend needs allocated (conv and pooling dx, conv dw): always guarded.
  Tensor allocated_output(const Shape& shape, DType dtype = DType::F32) {
    const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
    Tensor pattern = Tensor::empty({static_cast<int64_t>(kFrontGuardBytes + bytes + kBackGuardBytes)}, DType::U8);
    auto* p = pattern.data<uint8_t>();
    for (int64_t i = 0; i < pattern.numel(); ++i) p[i] = guard_byte(static_cast<size_t>(i));
    Tensor buffer = backend_.from_host(pattern);
    guarded_.push_back({buffer, bytes, shape_string(shape)});
    return Tensor(buffer.storage(), shape, dtype, buffer.byte_offset() + kFrontGuardBytes);
  }
  // An input that the op updates in place (running statistics, parameters): guarded, holding host.
  Tensor in_out(const Tensor& host) {
    Tensor t = allocated_output(host.shape(), host.dtype());
    backend_.copy(host, t);
    return t;
  }
  // The host copy of a result, which must live on this backend.
  Tensor result(const Tensor& t) {
    if (!t.defined()) {
      problems_ += "a result is undefined; ";
      return Tensor();
    }
    if (t.device() != backend_.device())
      problems_ += "a result " + shape_string(t.shape()) + " lives on " + device_name(t.device()) + "; ";
    return backend_.to_host(t);
  }

  // "" when every guard holds its pattern and every result lived on this backend.
  std::string problems() {
    std::string found = problems_;
    for (const Guarded& g : guarded_) {
      const Tensor host = backend_.to_host(g.buffer);
      const auto* p = static_cast<const uint8_t*>(host.raw_data());
      const size_t back = kFrontGuardBytes + g.view_bytes;
      for (size_t i = 0; i < kFrontGuardBytes; ++i)
        if (p[i] != guard_byte(i)) {
          found += "byte " + std::to_string(kFrontGuardBytes - i) + " before output " + g.shape + " was written; ";
          break;
        }
      for (size_t i = back; i < back + kBackGuardBytes; ++i)
        if (p[i] != guard_byte(i)) {
          found += "byte " + std::to_string(i - back) + " after output " + g.shape + " was written; ";
          break;
        }
    }
    return found;
  }

 private:
  struct Guarded {
    Tensor buffer;  // U8: front guard, the view, back guard
    size_t view_bytes;
    std::string shape;
  };
  Backend& backend_;
  Outputs outputs_;
  std::vector<Guarded> guarded_;
  std::string problems_;
};

// A named host result of one run and how closely the GPU's must follow the CPU's.
struct Result {
  std::string name;
  Tensor value;
  Tolerance tolerance;
};
using Results = std::vector<Result>;
// An op as a test runs it: the same function runs on the CPU reference and on the GPU.
using Op = std::function<Results(OpRun&)>;

Tensor scalar_result(double value) { return Tensor::from_vector(std::vector<double>{value}, {1}); }

void expect_gpu_matches_cpu(Backend& gpu, const Op& op, Outputs outputs = Outputs::Guarded) {
  auto cpu = make_cpu_backend();
  OpRun cpu_run(*cpu, outputs), gpu_run(gpu, outputs);
  const Results expected = op(cpu_run);
  const Results actual = op(gpu_run);
  EXPECT_EQ(cpu_run.problems(), "") << "CPU reference run";
  EXPECT_EQ(gpu_run.problems(), "") << "GPU run: an out-of-bounds write, or a result off the device";
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i)
    EXPECT_TRUE(agrees(actual[i].value, expected[i].value, actual[i].tolerance))
        << actual[i].name << " (" << actual[i].tolerance.why << ")";
}

// A case's test name: its `name`, of letters, digits and _ only. Each case struct also has a
// PrintTo that prints the name where gtest would print the case's bytes.
template <class Case>
std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.name;
}

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
};

class FillTest : public ::testing::TestWithParam<FillCase> {};

TEST_P(FillTest, MatchesCpuAndStaysInside) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const FillCase& c = GetParam();
  expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
    Tensor t = run.allocated_output(c.shape, c.dtype);
    run.backend().fill(t, c.value);
    return Results{{"tensor", run.result(t), kExact}};
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

INSTANTIATE_TEST_SUITE_P(
    SizesAndFactors, MultiplyTest,
    ::testing::Combine(::testing::ValuesIn(kElementwiseCases),
                       ::testing::Values(Factor::OneElementOnDevice, Factor::OneElementFromHost,
                                         Factor::OneElementFromHostAsF64, Factor::ElementwiseOnDevice,
                                         Factor::ElementwiseFromHost)),
    [](const auto& info) { return std::get<0>(info.param).name + "_" + factor_name(std::get<1>(info.param)); });

// ---- convolution ---------------------------------------------------------------------------------

struct ConvCase {
  std::string name;
  int64_t n, c, h, w, k, r, s;
  int stride, padding;
  Shape x() const { return {n, c, h, w}; }
  Shape weight() const { return {k, c, r, s}; }
  Shape y() const { return {n, k, (h + 2 * padding - r) / stride + 1, (w + 2 * padding - s) / stride + 1}; }
  Conv2dGeometry geometry() const { return {.stride = stride, .padding = padding}; }
};
void PrintTo(const ConvCase& c, std::ostream* os) { *os << c.name; }

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

INSTANTIATE_TEST_SUITE_P(Shapes, Conv2dTest, ::testing::ValuesIn(kConvCases), case_name<ConvCase>);

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

INSTANTIATE_TEST_SUITE_P(Shapes, BatchNormTest, ::testing::ValuesIn(kBatchNormCases), case_name<BatchNormCase>);

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

INSTANTIATE_TEST_SUITE_P(Shapes, ReluTest, ::testing::ValuesIn(kReluCases), case_name<ReluCase>);

// ---- max pooling -----------------------------------------------------------------------------------

enum class PoolValues {
  Random,                  // uniform: no ties
  Ties,                    // integers 0-2: most windows hold several maxima
  TiesAndNaN,              // ties and 1 in 10 NaN
  MostlyNegativeInfinity,  // 85% -inf: some windows hold nothing else
};

struct MaxPoolCase {
  std::string name;
  Shape shape;
  Pool2dGeometry geometry;
  PoolValues values;
  Shape y() const {
    const auto out = [&](int64_t size) { return (size + 2 * geometry.padding - geometry.kernel) / geometry.stride + 1; };
    return {shape[0], shape[1], out(shape[2]), out(shape[3])};
  }
};
void PrintTo(const MaxPoolCase& c, std::ostream* os) { *os << c.name; }

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

Tensor maxpool_input(const MaxPoolCase& c, uint64_t seed) {
  if (c.values == PoolValues::Random) return uniform(c.shape, seed);
  Tensor x = small_integers(c.shape, seed, 3);
  if (c.values == PoolValues::TiesAndNaN) sprinkle(x, seed + 1, 0.1, NAN);
  if (c.values == PoolValues::MostlyNegativeInfinity) sprinkle(x, seed + 1, 0.85, -INFINITY);
  return x;
}

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

INSTANTIATE_TEST_SUITE_P(Shapes, MaxPoolTest, ::testing::ValuesIn(kMaxPoolCases), case_name<MaxPoolCase>);

// ---- adaptive average pooling ------------------------------------------------------------------------

struct AvgPoolCase {
  std::string name;
  Shape shape;
};
void PrintTo(const AvgPoolCase& c, std::ostream* os) { *os << c.name; }

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

INSTANTIATE_TEST_SUITE_P(Shapes, AvgPoolTest, ::testing::ValuesIn(kAvgPoolCases), case_name<AvgPoolCase>);

// ---- linear ------------------------------------------------------------------------------------------

struct LinearCase {
  std::string name;
  int64_t n, in, out;
  bool image_input;  // x as (N, in, 1, 1), as the pooled ResNet features arrive
  Shape x() const { return image_input ? Shape{n, in, 1, 1} : Shape{n, in}; }
};
void PrintTo(const LinearCase& c, std::ostream* os) { *os << c.name; }

std::vector<LinearCase> linear_cases() {
  std::vector<LinearCase> cases = {
      {"ResNetFc_8x512to1000_FromPooledImage", 8, 512, 1000, true},
      {"Batch1_512to10", 1, 512, 10, false},
      {"Odd_3x13to7", 3, 13, 7, false},
      {"OneByOne", 1, 1, 1, false},
  };
  Pcg32 rng(0x11AEA);
  for (int i = 0; i < 2; ++i) {
    LinearCase c{};
    c.n = 1 + rng.below(9);
    c.in = 1 + rng.below(70);
    c.out = 1 + rng.below(40);
    c.image_input = i == 1;
    c.name = "Seeded" + std::to_string(i) + "_" + std::to_string(c.n) + "x" + std::to_string(c.in) + "to" +
             std::to_string(c.out);
    cases.push_back(c);
  }
  return cases;
}

const std::vector<LinearCase> kLinearCases = linear_cases();

class LinearTest : public ::testing::TestWithParam<LinearCase> {
 protected:
  void SetUp() override {
    const LinearCase& c = GetParam();
    const uint64_t seed = seed_of(c.name);
    x_ = uniform(c.x(), seed);
    w_ = uniform({c.out, c.in}, seed + 1);
    b_ = uniform({c.out}, seed + 2);
    dy_ = uniform({c.n, c.out}, seed + 3);
  }
  Op forward() const {
    return [this](OpRun& run) {
      Tensor y = run.output({GetParam().n, GetParam().out});
      run.backend().linear_forward(run.input(x_), run.input(w_), run.input(b_), y);
      return Results{{"y", run.result(y), kFp32}};
    };
  }
  Op backward_with_dx() const {
    return [this](OpRun& run) {
      Tensor dx = run.allocated_output(x_.shape());  // allocated: an undefined dx means "not needed"
      Tensor dw = run.output(w_.shape()), db = run.output(b_.shape());
      run.backend().linear_backward(run.input(x_), run.input(w_), run.input(dy_), dx, dw, db);
      return Results{{"dx", run.result(dx), kFp32}, {"dw", run.result(dw), kFp32}, {"db", run.result(db), kFp32}};
    };
  }
  Tensor x_, w_, b_, dy_;
};

TEST_P(LinearTest, ForwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward());
}

TEST_P(LinearTest, ForwardAllocatesAnUndefinedY) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, forward(), Outputs::Undefined);
}

TEST_P(LinearTest, BackwardWithDxMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, backward_with_dx());
}

TEST_P(LinearTest, BackwardAllocatesUndefinedDwAndDb) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, backward_with_dx(), Outputs::Undefined);
}

TEST_P(LinearTest, BackwardWithoutDxLeavesItUndefined) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, [this](OpRun& run) {
    Tensor dx, dw = run.output(w_.shape()), db = run.output(b_.shape());
    run.backend().linear_backward(run.input(x_), run.input(w_), run.input(dy_), dx, dw, db);
    EXPECT_FALSE(dx.defined()) << run.backend().name() << ": an undefined dx means the input needs no gradient";
    return Results{{"dw", run.result(dw), kFp32}, {"db", run.result(db), kFp32}};
  });
}

INSTANTIATE_TEST_SUITE_P(Shapes, LinearTest, ::testing::ValuesIn(kLinearCases), case_name<LinearCase>);

// ---- cross-entropy -----------------------------------------------------------------------------------

// How labels reach the op: the GPU backend takes I64 or I32 labels on the device or the host.
enum class Labels { I64OnDevice, I32OnDevice, I64FromHost };

// The labels argument as a run hands it to its backend.
Tensor labels_for(OpRun& run, const Tensor& labels, Labels how) {
  if (how == Labels::I64FromHost) return labels;
  return run.input(how == Labels::I32OnDevice ? labels.to(DType::I32) : labels);
}

struct CrossEntropyCase {
  std::string name;
  int64_t n, m;
  double logit_scale;  // logits uniform in [-scale, scale)
  Labels labels;
};
void PrintTo(const CrossEntropyCase& c, std::ostream* os) { *os << c.name; }

const std::vector<CrossEntropyCase> kCrossEntropyCases = {
    {"ResNet_8x1000", 8, 1000, 3.0, Labels::I64OnDevice},
    {"Batch1_10Classes", 1, 10, 1.0, Labels::I64OnDevice},
    {"Odd_3x7_I32Labels", 3, 7, 2.0, Labels::I32OnDevice},
    {"OneClass_5x1", 5, 1, 1.0, Labels::I64OnDevice},  // loss 0, probabilities 1
    {"HugeLogits_4x13", 4, 13, 1e4, Labels::I64OnDevice},  // exp overflows without the max shift
    {"LabelsFromHost_6x9", 6, 9, 2.0, Labels::I64FromHost},
};

class CrossEntropyTest : public ::testing::TestWithParam<CrossEntropyCase> {
 protected:
  void SetUp() override {
    const CrossEntropyCase& c = GetParam();
    const uint64_t seed = seed_of(c.name);
    logits_ = uniform({c.n, c.m}, seed, -c.logit_scale, c.logit_scale);
    labels_ = labels_below(c.n, c.m, seed + 1);
  }
  Tensor logits_, labels_;
};

TEST_P(CrossEntropyTest, ForwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (Outputs outputs : {Outputs::Guarded, Outputs::Undefined}) {
    expect_gpu_matches_cpu(
        *gpu,
        [this](OpRun& run) {
          Tensor probs = run.output(logits_.shape());
          const double loss = run.backend().cross_entropy_forward(run.input(logits_),
                                                                  labels_for(run, labels_, GetParam().labels), probs);
          return Results{{"loss", scalar_result(loss), kFp32}, {"probs", run.result(probs), kFp32}};
        },
        outputs);
  }
}

TEST_P(CrossEntropyTest, BackwardMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  auto cpu = make_cpu_backend();
  Tensor probs;  // both backends differentiate the CPU forward's probabilities
  cpu->cross_entropy_forward(logits_, labels_, probs);
  for (Outputs outputs : {Outputs::Guarded, Outputs::Undefined}) {
    expect_gpu_matches_cpu(
        *gpu,
        [&](OpRun& run) {
          Tensor dlogits = run.output(probs.shape());
          run.backend().cross_entropy_backward(run.input(probs), labels_for(run, labels_, GetParam().labels),
                                               dlogits);
          return Results{{"dlogits", run.result(dlogits), kFp32}};
        },
        outputs);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, CrossEntropyTest, ::testing::ValuesIn(kCrossEntropyCases),
                         case_name<CrossEntropyCase>);

struct BadLabelCase {
  std::string name;
  int64_t bad_label;  // given to sample 1 of 3, with 5 classes
  Labels labels;
  bool backward;
};
void PrintTo(const BadLabelCase& c, std::ostream* os) { *os << c.name; }

const std::vector<BadLabelCase> kBadLabelCases = {
    {"Forward_TooLarge_I64OnDevice", 5, Labels::I64OnDevice, false},
    {"Forward_Negative_I64FromHost", -1, Labels::I64FromHost, false},
    {"Forward_TooLarge_I32OnDevice", 5, Labels::I32OnDevice, false},
    {"Backward_TooLarge_I64OnDevice", 5, Labels::I64OnDevice, true},
    {"Backward_Negative_I64FromHost", -1, Labels::I64FromHost, true},
};

class BadLabelTest : public ::testing::TestWithParam<BadLabelCase> {};

TEST_P(BadLabelTest, GpuThrowsBadInputNamingSampleAndLabel) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const BadLabelCase& c = GetParam();
  OpRun run(*gpu, Outputs::Guarded);
  const Tensor labels = labels_for(run, Tensor::from_vector(std::vector<int64_t>{0, c.bad_label, 2}, {3}), c.labels);
  const Tensor logits = run.input(uniform({3, 5}, 21));
  Tensor out;
  try {
    if (c.backward) {
      gpu->cross_entropy_backward(logits, labels, out);
    } else {
      gpu->cross_entropy_forward(logits, labels, out);
    }
    FAIL() << "label " << c.bad_label << " of 5 classes must be rejected";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput) << e.what();
    const std::string expected = "label " + std::to_string(c.bad_label) + " of sample 1";
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Labels, BadLabelTest, ::testing::ValuesIn(kBadLabelCases), case_name<BadLabelCase>);

// ---- SGD -----------------------------------------------------------------------------------------------

struct SgdCase {
  std::string name;
  Shape shape;
  SgdOptions options;
};
void PrintTo(const SgdCase& c, std::ostream* os) { *os << c.name; }

const std::vector<SgdCase> kSgdCases = {
    {"Plain", {7, 13}, {.lr = 0.1}},
    {"WeightDecay", {7, 13}, {.lr = 0.1, .weight_decay = 1e-2}},
    {"Momentum", {7, 13}, {.lr = 0.1, .momentum = 0.9}},
    {"MomentumWithDampening", {7, 13}, {.lr = 0.05, .momentum = 0.9, .dampening = 0.25}},
    {"MomentumDampeningWeightDecay_1001", {1001}, {.lr = 0.05, .momentum = 0.8, .dampening = 0.5, .weight_decay = 1e-3}},
    {"Nesterov", {7, 13}, {.lr = 0.1, .momentum = 0.9, .nesterov = true}},
    {"NesterovWeightDecay_ResNetConv_64x64x3x3",
     {64, 64, 3, 3},
     {.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4, .nesterov = true}},
};

class SgdTest : public ::testing::TestWithParam<SgdCase> {
 protected:
  // Three steps (the first initialises the momentum buffer with d_p, the later ones read it), each
  // with its own gradient; the parameter is compared after every step.
  Op three_steps() const {
    const SgdCase& c = GetParam();
    const uint64_t seed = seed_of(c.name);
    std::vector<Tensor> grads;
    for (int step = 0; step < 3; ++step) grads.push_back(uniform(c.shape, seed + 1 + step));
    return [&c, grads, param0 = uniform(c.shape, seed)](OpRun& run) {
      // Guarded, the buffer starts as NaN: a first step that read it would spread NaN.
      Tensor param = run.in_out(param0), buffer = run.output(c.shape);
      Results results;
      for (int step = 0; step < 3; ++step) {
        run.backend().sgd_update(param, run.input(grads[static_cast<size_t>(step)]), buffer, step == 0, c.options);
        results.push_back({"param after step " + std::to_string(step + 1), run.result(param), kFp32});
      }
      if (c.options.momentum != 0.0) results.push_back({"momentum_buffer", run.result(buffer), kFp32});
      return results;
    };
  }
};

// kFp32: the kernel rounds every product and sum on its own like the reference, but the host
// compiler may contract the reference's into FMAs; either way a few roundings per step.
TEST_P(SgdTest, ThreeStepsMatchCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, three_steps());
}

TEST_P(SgdTest, ThreeStepsAllocateAnUndefinedMomentumBuffer) {
  HOOKRT_GPU_OR_SKIP(gpu);
  expect_gpu_matches_cpu(*gpu, three_steps(), Outputs::Undefined);
}

INSTANTIATE_TEST_SUITE_P(Options, SgdTest, ::testing::ValuesIn(kSgdCases), case_name<SgdCase>);

// ---- argument errors -------------------------------------------------------------------------------

// An op called with a wrong-shaped (or missing, or wrong-dtype) output, and the words its error
// must contain: both backends check through backend_checks and say the same thing.
struct WrongOutputCase {
  std::string name;
  std::string message;
  std::function<void(Backend&)> call;
};
void PrintTo(const WrongOutputCase& c, std::ostream* os) { *os << c.name; }

Tensor on(Backend& b, const Shape& shape, uint64_t seed) { return b.from_host(uniform(shape, seed)); }

const std::vector<WrongOutputCase> kWrongOutputCases = {
    {"Add_Out", "add: out has shape",
     [](Backend& b) {
       Tensor out = b.empty({3, 2}, DType::F32);
       b.add(on(b, {2, 3}, 1), on(b, {2, 3}, 2), out);
     }},
    {"Conv2dForward_Y", "conv2d_forward: y has shape",
     [](Backend& b) {
       Tensor y = b.empty({1, 4, 7, 7}, DType::F32);
       b.conv2d_forward(on(b, {1, 3, 8, 8}, 1), on(b, {4, 3, 3, 3}, 2), y, {.stride = 1, .padding = 1});
     }},
    {"Conv2dBackwardData_UndefinedDx", "conv2d_backward_data: dx must be allocated",
     [](Backend& b) {
       Tensor dx;
       b.conv2d_backward_data(on(b, {1, 4, 8, 8}, 1), on(b, {4, 3, 3, 3}, 2), dx, {.stride = 1, .padding = 1});
     }},
    {"Conv2dBackwardFilter_DwOfAnotherSize", "conv2d_backward_filter: dy has shape",
     [](Backend& b) {
       Tensor dw = b.empty({4, 3, 5, 5}, DType::F32);
       b.conv2d_backward_filter(on(b, {1, 3, 8, 8}, 1), on(b, {1, 4, 8, 8}, 2), dw, {.stride = 1, .padding = 1});
     }},
    {"BatchNormForward_SaveMean", "batchnorm_forward: save_mean has shape",
     [](Backend& b) {
       Tensor rm = on(b, {3}, 3), rv = b.from_host(uniform({3}, 4, 0.5, 2.0)), y, invstd;
       Tensor mean = b.empty({4}, DType::F32);
       b.batchnorm_forward(on(b, {2, 3, 4, 4}, 1), on(b, {3}, 2), on(b, {3}, 5), rm, rv, y, mean, invstd, {});
     }},
    {"ReluBackward_Dx", "relu_backward: dx has shape",
     [](Backend& b) {
       Tensor dx = b.empty({10}, DType::F32);
       b.relu_backward(on(b, {2, 5}, 1), on(b, {2, 5}, 2), dx);
     }},
    {"MaxPoolForward_Indices", "maxpool2d_forward: indices has shape",
     [](Backend& b) {
       Tensor y, indices = b.empty({1, 2, 4, 4}, DType::I64);
       b.maxpool2d_forward(on(b, {1, 2, 6, 6}, 1), y, indices, {});
     }},
    {"MaxPoolForward_IndicesAsF32", "maxpool2d_forward: indices has dtype F32",
     [](Backend& b) {
       Tensor y, indices = b.empty({1, 2, 3, 3}, DType::F32);
       b.maxpool2d_forward(on(b, {1, 2, 6, 6}, 1), y, indices, {});
     }},
    {"AdaptiveAvgPoolForward_Y", "adaptive_avgpool_forward: y has shape",
     [](Backend& b) {
       Tensor y = b.empty({2, 3}, DType::F32);
       b.adaptive_avgpool_forward(on(b, {2, 3, 4, 4}, 1), y);
     }},
    {"LinearBackward_Dw", "linear_backward: dw has shape",
     [](Backend& b) {
       Tensor dx, dw = b.empty({6, 5}, DType::F32), db;
       b.linear_backward(on(b, {4, 6}, 1), on(b, {5, 6}, 2), on(b, {4, 5}, 3), dx, dw, db);
     }},
    {"CrossEntropyForward_Probs", "cross_entropy_forward: probs has shape",
     [](Backend& b) {
       Tensor probs = b.empty({3, 4}, DType::F32);
       b.cross_entropy_forward(on(b, {3, 5}, 1), Tensor::from_vector(std::vector<int64_t>{0, 1, 2}, {3}), probs);
     }},
    {"SgdUpdate_MomentumBufferOnALaterStep", "sgd_update: momentum_buffer has shape",
     [](Backend& b) {
       Tensor param = on(b, {4}, 1), buffer = b.empty({5}, DType::F32);
       b.sgd_update(param, on(b, {4}, 2), buffer, false, {.lr = 0.1, .momentum = 0.9});
     }},
};

class WrongOutputTest : public ::testing::TestWithParam<WrongOutputCase> {
 protected:
  static std::string error_of(Backend& b) {
    try {
      GetParam().call(b);
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  }
};

TEST_P(WrongOutputTest, GpuThrowsNamingTheOutput) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const std::string message = error_of(*gpu);
  EXPECT_NE(message.find(GetParam().message), std::string::npos) << message;
}

// No GPU needed: the CPU reference rejects the same call in the same words, which also shows that
// each case is wrong only in the way its name says.
TEST_P(WrongOutputTest, CpuReferenceThrowsTheSameError) {
  auto cpu = make_cpu_backend();
  const std::string message = error_of(*cpu);
  EXPECT_NE(message.find(GetParam().message), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(Ops, WrongOutputTest, ::testing::ValuesIn(kWrongOutputCases), case_name<WrongOutputCase>);

TEST(GpuErrors, NesterovWithDampeningIsBadInput) {
  HOOKRT_GPU_OR_SKIP(gpu);
  Tensor param = on(*gpu, {4}, 1), buffer;
  try {
    gpu->sgd_update(param, on(*gpu, {4}, 2), buffer, true, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true});
    FAIL() << "torch.optim.SGD refuses Nesterov momentum with dampening";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput) << e.what();
  }
}

TEST(GpuErrors, TrainingBatchNormWithOneValuePerChannelIsBadInput) {
  HOOKRT_GPU_OR_SKIP(gpu);
  Tensor rm = on(*gpu, {3}, 1), rv = gpu->from_host(uniform({3}, 2, 0.5, 2.0)), y, mean, invstd;
  try {
    gpu->batchnorm_forward(on(*gpu, {1, 3, 1, 1}, 3), on(*gpu, {3}, 4), on(*gpu, {3}, 5), rm, rv, y, mean, invstd, {});
    FAIL() << "one value per channel has no batch variance (PyTorch raises)";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput) << e.what();
  }
}

// ---- the harness itself (no GPU needed) ---------------------------------------------------------------

TEST(GpuOpsHarness, GuardsCatchAWriteJustOutsideAnOutput) {
  auto cpu = make_cpu_backend();
  for (int64_t offset : {-1, 0, 5}) {  // before, inside, just after an output of 5 elements
    OpRun run(*cpu, Outputs::Guarded);
    Tensor t = run.allocated_output({5});
    t.data<float>()[offset] = 1.0f;
    EXPECT_EQ(run.problems().empty(), offset == 0) << "write at element " << offset << ": " << run.problems();
  }
}

TEST(GpuOpsHarness, OutputsStartAsNaNSoUnwrittenElementsShow) {
  auto cpu = make_cpu_backend();
  OpRun run(*cpu, Outputs::Guarded);
  const Tensor f32 = run.allocated_output({3}), f64 = run.allocated_output({3}, DType::F64);
  EXPECT_TRUE(std::isnan(f32.item(2)) && std::isnan(f64.item(2)));
  EXPECT_FALSE(agrees(f32, uniform({3}, 1), kFp32)) << "an unwritten output must not pass for a result";
}

TEST(GpuOpsHarness, AgreesDemandsMatchingNaNAndInfinitiesAndIdenticalIntegers) {
  const auto f = [](std::vector<float> v) { return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}); };
  EXPECT_TRUE(agrees(f({1, NAN, INFINITY}), f({1, NAN, INFINITY}), kExact));
  EXPECT_FALSE(agrees(f({1, NAN}), f({1, 2}), kFp32));
  EXPECT_FALSE(agrees(f({1, 2}), f({1, NAN}), kFp32));
  EXPECT_FALSE(agrees(f({INFINITY}), f({-INFINITY}), kFp32));
  EXPECT_TRUE(agrees(f({0, 2.00001f}), f({0, 2}), kFp32)) << "5e-6 of max|cpu|";
  EXPECT_FALSE(agrees(f({0, 2.0001f}), f({0, 2}), kFp32)) << "5e-5 of max|cpu|";
  EXPECT_FALSE(agrees(f({1e-30f}), f({0}), kFp32)) << "an all-zero reference demands zeros";
  const auto i64 = [](std::vector<int64_t> v) { return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}); };
  EXPECT_TRUE(agrees(i64({4, 7}), i64({4, 7}), kFp32));
  EXPECT_FALSE(agrees(i64({4, 7}), i64({4, 8}), kFp32)) << "indices are never compared with a tolerance";
}

TEST(GpuOpsCases, CoverBatch1Stride2Padding1x1And7x7OddChannelsAndResNetShapes) {
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
