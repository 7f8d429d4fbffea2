// The elementwise kernels' 16-byte vectors (cuda/vector_access.cuh) at every alignment: ReLU, the
// residual add's ReLU, ReLU backward, add, accumulate, multiply_, fill and convert run on views
// that start 0..15 elements past a 16-byte boundary, their operands at equal offsets (vectors
// after a scalar head) or at offsets that differ (by whole vectors: vectors; otherwise: one element
// at a time), over sizes around one vector (0, 1, 7, 8, 9) and one of a scalar head, 512 vectors
// and a scalar tail (4097). Each result must match the CPU reference bit for bit (kExact or
// kExactBits, as in test_gpu_ops_memory.cpp and test_gpu_ops_relu_pooling.cpp), have the same
// bytes at every alignment (a vector's element and a single one take the same arithmetic and
// rounding, NaN bits included), and leave every byte around the written view as it was.
// GPU tests skip, saying why, where there is no GPU or no CUDA build.
#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <functional>
#include <optional>

#include "support/gpu_ops.h"

namespace hookrt {
namespace {

using namespace testing::gpu_ops;

// ---- operands -----------------------------------------------------------------------------------

// NaNs (quiet and signalling, either sign, with payloads), infinities, signed zeros, a subnormal,
// and values either side of zero: at the start of every float operand, rotated by its index so
// that two operands of an op meet different specials at each position.
const std::vector<uint32_t> kF32Specials = {0x7FC00000, 0xFFC00000,    0x7F800001,    0xFFC12345,
                                            0x7F800000, 0xFF800000,    0x00000000,    0x80000000,
                                            0x00000001, std::bit_cast<uint32_t>(0.5f), std::bit_cast<uint32_t>(-0.5f)};
// The 16-bit dtypes' own NaN payloads, quiet and signalling: they must come out as the CPU stores
// them.
const std::vector<uint16_t> kBf16Nans = {0x7F81, 0xFF85, 0x7FC1, 0xFFC0};
const std::vector<uint16_t> kF16Nans = {0x7C01, 0xFE05, 0x7E01, 0xFC00 /* -inf */};

// Operand `index` of n elements of dtype: uniform in [-2, 2) over many magnitudes, the specials
// first, and about 1/32 each of NaN, +inf, -inf and -0 throughout.
Tensor operand_values(DType dtype, int64_t n, uint64_t seed, size_t index) {
  Tensor t = uniform({n}, seed, -2.0, 2.0);
  Pcg32 rng(seed + 1);
  float* p = t.data<float>();
  for (int64_t i = 0; i < n; ++i) p[i] = std::ldexp(p[i], static_cast<int>(rng.below(40)) - 20);
  sprinkle(t, seed + 2, 1.0 / 32, NAN);
  sprinkle(t, seed + 3, 1.0 / 32, INFINITY);
  sprinkle(t, seed + 4, 1.0 / 32, -INFINITY);
  sprinkle(t, seed + 5, 1.0 / 32, -0.0f);
  for (int64_t i = 0; i < n && i < static_cast<int64_t>(kF32Specials.size()); ++i)
    p[i] = std::bit_cast<float>(kF32Specials[(static_cast<size_t>(i) + index) % kF32Specials.size()]);
  if (dtype == DType::F32) return t;
  Tensor narrow = t.to(dtype);
  const std::vector<uint16_t>& nans = dtype == DType::BF16 ? kBf16Nans : kF16Nans;
  auto* bits = static_cast<uint16_t*>(narrow.raw_data());
  const int64_t first = static_cast<int64_t>(kF32Specials.size());  // after the specials
  for (int64_t i = first; i < n && i < first + static_cast<int64_t>(nans.size()); ++i)
    bits[i] = nans[(static_cast<size_t>(i - first) + index) % nans.size()];
  return narrow;
}

// ---- the ops ------------------------------------------------------------------------------------

using Operands = std::vector<Tensor>;  // the written operand first, then those only read

// What the op does with its first operand: only writes it (it starts as the guard pattern, NaN, so
// that an element left unwritten shows), or reads it first (accumulate, multiply_).
enum class Written { Only, AfterReading };

struct VectorCase {
  std::string name;
  std::vector<DType> dtypes;  // of the operands, the written one first
  Written written;
  Tolerance tolerance;
  std::function<void(Backend&, Operands&)> run;
};
void PrintTo(const VectorCase& c, std::ostream* os) { *os << c.name; }

// A one-element factor on the backend: the scale of multiply_by_scalar, read alone by every thread.
Tensor scale_on(Backend& backend, DType dtype) {
  return backend.from_host(Tensor::from_vector(std::vector<float>{-1.375f}, {1}).to(dtype));
}

std::vector<VectorCase> vector_cases() {
  std::vector<VectorCase> cases;
  for (DType d : {DType::F32, DType::BF16, DType::F16}) {
    const std::string suffix = "_" + dtype_name(d);
    cases.push_back(
        {"ReluForward" + suffix, {d, d}, Written::Only, kExactBits, [](Backend& b, Operands& t) {
           b.relu_forward(t[1], t[0]);
         }});
    cases.push_back(
        {"AddReluForward" + suffix, {d, d, d}, Written::Only, kExact, [](Backend& b, Operands& t) {
           b.run_producing_op(ProducingOp{ProducingOp::Kind::AddReluForward, t[1], t[2]}, t[0]);
         }});
    cases.push_back({"ReluBackward" + suffix,
                     {d, d, d},
                     Written::Only,
                     kExactBits,
                     [](Backend& b, Operands& t) { b.relu_backward(t[1], t[2], t[0]); }});
    cases.push_back({"Add" + suffix, {d, d, d}, Written::Only, kExact, [](Backend& b, Operands& t) {
                       b.add(t[1], t[2], t[0]);
                     }});
    cases.push_back(
        {"Accumulate" + suffix, {d, d}, Written::AfterReading, kExact, [](Backend& b, Operands& t) {
           b.accumulate(t[0], t[1]);
         }});
    cases.push_back({"MultiplyElementwise" + suffix,
                     {d, d},
                     Written::AfterReading,
                     kExact,
                     [](Backend& b, Operands& t) { b.multiply_(t[0], t[1]); }});
    cases.push_back({"MultiplyByScalar" + suffix,
                     {d},
                     Written::AfterReading,
                     kExact,
                     [d](Backend& b, Operands& t) { b.multiply_(t[0], scale_on(b, d)); }});
  }
  // A half gradient times a probe's F32 mask or scale: the factor's vectors are 32 bytes.
  for (DType half : {DType::BF16, DType::F16}) {
    cases.push_back({"MultiplyElementwise_" + dtype_name(half) + "ByF32",
                     {half, DType::F32},
                     Written::AfterReading,
                     kExact,
                     [](Backend& b, Operands& t) { b.multiply_(t[0], t[1]); }});
    cases.push_back({"MultiplyByScalar_" + dtype_name(half) + "ByF32",
                     {half},
                     Written::AfterReading,
                     kExact,
                     [](Backend& b, Operands& t) { b.multiply_(t[0], scale_on(b, DType::F32)); }});
  }
  // fill's vectors are 16 bytes of any dtype: 16 U8 values, 2 F64 or I64 ones.
  const std::pair<DType, double> fills[] = {
      {DType::F32, -0.3}, {DType::BF16, -0.3},   {DType::F16, -0.3}, {DType::F64, -0.3},
      {DType::I64, -3},   {DType::I32, -123456}, {DType::U8, 200}};
  for (const auto& [dtype, value] : fills)
    cases.push_back({"Fill_" + dtype_name(dtype),
                     {dtype},
                     Written::Only,
                     kExactBits,
                     [value = value](Backend& b, Operands& t) { b.fill(t[0], value); }});
  const std::pair<DType, DType> conversions[] = {
      {DType::F32, DType::BF16}, {DType::BF16, DType::F32}, {DType::F32, DType::F16},
      {DType::F16, DType::F32},  {DType::BF16, DType::F16}, {DType::F16, DType::BF16}};
  for (const auto& [from, to] : conversions)
    cases.push_back({"Convert_" + dtype_name(from) + "To" + dtype_name(to),
                     {to, from},
                     Written::Only,
                     kExactBits,
                     [](Backend& b, Operands& t) { b.convert(t[1], t[0]); }});
  return cases;
}

// ---- operands at offsets, between guards
// ----------------------------------------------------------

constexpr int64_t kSizes[] = {0, 1, 7, 8, 9, 4097};
constexpr int64_t kOffsets = 8;      // the written operand's offsets: 0 .. 7 elements
constexpr int64_t kMostOffset = 16;  // any operand's, in elements (OutputOneVectorLater: o + 8)
constexpr size_t kGuardBytes = 64;   // before the furthest offset and after the view

// How the operands' offsets follow the written operand's, o.
enum class Offsets {
  Same,            // all at o: one alignment, vectors after a scalar head
  InputsOneLater,  // read operands at o + 1 (mod 8): every pair of 4- or 2-byte operands misaligned
  LastInputFourLater,  // the last at o + 4 (mod 8): F32 16 bytes apart (vectors), BF16 8 (one at a
                       // time)
  OutputOneVectorLater,  // the written one at o + 8: 16 or 32 bytes apart, vectors again
};
const std::pair<Offsets, const char*> kOffsetPatterns[] = {
    {Offsets::Same, "Same"},
    {Offsets::InputsOneLater, "InputsOneLater"},
    {Offsets::LastInputFourLater, "LastInputFourLater"},
    {Offsets::OutputOneVectorLater, "OutputOneVectorLater"}};

std::vector<int64_t> offsets_of(Offsets pattern, int64_t o, size_t operands) {
  std::vector<int64_t> offsets(operands, o);
  if (pattern == Offsets::OutputOneVectorLater) offsets[0] = o + 8;
  if (pattern == Offsets::InputsOneLater)
    for (size_t k = 1; k < operands; ++k) offsets[k] = (o + 1) % kOffsets;
  if (pattern == Offsets::LastInputFourLater && operands > 1) offsets.back() = (o + 4) % kOffsets;
  return offsets;
}

// An operand on the GPU: a view `offset` elements into a buffer that starts 16-byte aligned, all of
// whose other bytes hold the guard pattern (NaN in every float dtype).
struct Placed {
  Tensor buffer;  // U8
  Tensor view;
  size_t view_begin, view_end;  // bytes of the buffer
};

Placed place(Backend& gpu, DType dtype, int64_t n, int64_t offset, const Tensor* values) {
  const size_t size = dtype_size(dtype);
  const size_t begin = kGuardBytes + static_cast<size_t>(offset) * size;
  const size_t end = begin + static_cast<size_t>(n) * size;
  const size_t bytes =
      kGuardBytes + kMostOffset * size + static_cast<size_t>(n) * size + kGuardBytes;
  Tensor pattern = Tensor::empty({static_cast<int64_t>(bytes)}, DType::U8);
  for (size_t i = 0; i < bytes; ++i) pattern.data<uint8_t>()[i] = guard_byte(i);
  Tensor buffer = gpu.from_host(pattern);
  Tensor view(buffer.storage(), {n}, dtype, buffer.byte_offset() + begin);
  if (values) gpu.copy(*values, view);
  return {buffer, view, begin, end};
}

// The written operand's result on the host, or a failure naming a guard byte that changed.
::testing::AssertionResult read_back(Backend& gpu, const Placed& placed, Tensor& result) {
  const Tensor host = gpu.to_host(placed.buffer);
  const auto* bytes = static_cast<const uint8_t*>(host.raw_data());
  for (size_t i = 0; i < host.nbytes(); ++i)
    if ((i < placed.view_begin || i >= placed.view_end) && bytes[i] != guard_byte(i))
      return ::testing::AssertionFailure()
             << "byte " << i << " of the buffer, outside the view [" << placed.view_begin << ", "
             << placed.view_end << "), was written";
  result = Tensor::empty(placed.view.shape(), placed.view.dtype());
  std::memcpy(result.raw_data(), bytes + placed.view_begin, result.nbytes());
  return ::testing::AssertionSuccess();
}

class GpuElementwiseVectorTest : public ::testing::TestWithParam<VectorCase> {
 protected:
  // The operands' host values: none for an output that is only written.
  std::vector<std::optional<Tensor>> host_operands(int64_t n) const {
    const VectorCase& c = GetParam();
    std::vector<std::optional<Tensor>> values(c.dtypes.size());
    for (size_t k = 0; k < c.dtypes.size(); ++k)
      if (k > 0 || c.written == Written::AfterReading)
        values[k] = operand_values(c.dtypes[k], n, seed_of(c.name) + 101 * n + 7 * k, k);
    return values;
  }

  Tensor cpu_result(const std::vector<std::optional<Tensor>>& values, int64_t n) const {
    const VectorCase& c = GetParam();
    auto cpu = make_cpu_backend();
    Operands t;
    for (size_t k = 0; k < c.dtypes.size(); ++k)
      t.push_back(values[k] ? values[k]->clone() : Tensor::empty({n}, c.dtypes[k]));
    c.run(*cpu, t);
    return t[0];
  }
};

TEST_P(GpuElementwiseVectorTest, EveryAlignmentMatchesCpuBitForBitAndStaysInside) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const VectorCase& c = GetParam();
  for (int64_t n : kSizes) {
    const auto values = host_operands(n);
    const Tensor want = cpu_result(values, n);
    std::optional<Tensor> first;  // the GPU's result at the first alignment
    for (const auto& [pattern, pattern_name] : kOffsetPatterns) {
      for (int64_t o = 0; o < kOffsets; ++o) {
        const std::vector<int64_t> offsets = offsets_of(pattern, o, c.dtypes.size());
        std::string where =
            "n = " + std::to_string(n) + ", offsets " + pattern_name + " (elements:";
        for (int64_t offset : offsets) where += " " + std::to_string(offset);
        SCOPED_TRACE(where + ")");
        std::vector<Placed> placed;
        Operands t;
        for (size_t k = 0; k < c.dtypes.size(); ++k) {
          placed.push_back(
              place(*gpu, c.dtypes[k], n, offsets[k], values[k] ? &*values[k] : nullptr));
          ASSERT_EQ(reinterpret_cast<uintptr_t>(placed.back().buffer.raw_data()) % 16, 0u)
              << "offsets are counted from a 16-byte boundary";
          t.push_back(placed.back().view);
        }
        c.run(*gpu, t);
        Tensor got;
        ASSERT_TRUE(read_back(*gpu, placed[0], got));
        ASSERT_TRUE(agrees(got, want, c.tolerance)) << c.tolerance.why;
        if (!first) first = got;
        ASSERT_TRUE(same_bytes(got, *first)) << "the bytes must not depend on the alignment: "
                                                "vectors and single elements round alike";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, GpuElementwiseVectorTest, ::testing::ValuesIn(vector_cases()),
                         case_name<VectorCase>);

// ---- element counts beyond 2^31
// ---------------------------------------------------------------------

// The values of elements [first, first + count) of a BF16 device tensor, read through a view.
std::vector<double> values_at(Backend& gpu, const Tensor& t, int64_t first, int64_t count) {
  const Tensor view(t.storage(), {count}, DType::BF16,
                    t.byte_offset() + static_cast<size_t>(first) * 2);
  const Tensor host = gpu.to_host(view);
  std::vector<double> values;
  for (int64_t i = 0; i < count; ++i) values.push_back(host.item(i));
  return values;
}

// 2^31 + 13 BF16 elements (4 GiB) starting 3 elements past a 16-byte boundary: a scalar head, 2^28
// vectors, a scalar tail, and element indices past int32's range. fill, then multiply_ by a
// one-element factor; the elements around 2^31 and at both ends are checked, and the 13 after
// the view must keep the buffer's first fill.
TEST(GpuElementwiseVectors, CountsBeyondTwoToThe31) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const int64_t n = (int64_t{1} << 31) + 13, offset = 3, after = 13;
  Tensor buffer;
  try {
    buffer = gpu->empty({offset + n + after}, DType::BF16);
  } catch (const Error& e) {
    GTEST_SKIP() << "no room for 4 GiB on the device: " << e.what();
  }
  gpu->fill(buffer, -7.0);
  Tensor t(buffer.storage(), {n}, DType::BF16, buffer.byte_offset() + offset * 2);
  gpu->fill(t, 1.5);
  gpu->multiply_(t, gpu->from_host(Tensor::from_vector(std::vector<float>{2.0f}, {1})));
  const int64_t looked[][2] = {{0, 16}, {(int64_t{1} << 31) - 16, 32}, {n - 16, 16}};
  for (const auto& [first, count] : looked)
    for (double v : values_at(*gpu, t, first, count))
      ASSERT_EQ(v, 3.0) << "elements from " << first;
  for (double v : values_at(*gpu, buffer, 0, offset)) EXPECT_EQ(v, -7.0) << "before the view";
  for (double v : values_at(*gpu, buffer, offset + n, after))
    EXPECT_EQ(v, -7.0) << "after the view";
}

}  // namespace
}  // namespace hookrt
