#pragma once
// The GPU op tests' harness (tests/test_gpu_ops_*.cpp): seeded host inputs, per-tensor comparison
// of a GPU result with the CPU's under a tolerance that says why it was chosen, and OpRun, which
// runs one op on one backend with every output it allocates between guard bytes and starting as
// NaN, as ggml's test-backend-ops does.
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


namespace hookrt::testing::gpu_ops {

// ---- seeded host inputs ---------------------------------------------------------------------------

// FNV-1a of a case name: each case draws its own inputs, the same on every machine and run.
inline uint64_t seed_of(const std::string& name) {
  uint64_t hash = 1469598103934665603ULL;
  for (char ch : name) hash = (hash ^ static_cast<uint8_t>(ch)) * 1099511628211ULL;
  return hash;
}

// Host F32, uniform in [lo, hi).
inline Tensor uniform(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Pcg32 rng(seed);
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(rng.uniform(lo, hi));
  return t;
}

// Host F32 holding the integers 0 .. levels-1: many equal values, so pooling windows hold ties.
inline Tensor small_integers(const Shape& shape, uint64_t seed, uint32_t levels) {
  Pcg32 rng(seed);
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(rng.below(levels));
  return t;
}

// Sets about `fraction` of t's F32 elements, drawn by `seed`, to `value` (NaN, ±inf, ±0).
inline void sprinkle(Tensor& t, uint64_t seed, double fraction, float value) {
  Pcg32 rng(seed);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (rng.uniform() < fraction) p[i] = value;
}

// Host tensor of any dtype filled with random bytes (NaN payloads included): for bit-exact copies.
inline Tensor random_bytes(const Shape& shape, DType dtype, uint64_t seed) {
  Pcg32 rng(seed);
  Tensor t = Tensor::empty(shape, dtype);
  auto* p = static_cast<uint8_t*>(t.raw_data());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(rng.next_u32());
  return t;
}

inline bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         (a.nbytes() == 0 || std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0);
}

inline Tensor labels_below(int64_t n, int64_t classes, uint64_t seed) {
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
  // BF16 results are compared element by element (bf16_tolerance below): |gpu_i - cpu_i| <=
  // bf16_relative·|cpu_i| + bf16_absolute where bf16_relative >= 0; with the default of -1 their
  // bits must be identical, but that a NaN only has to meet a NaN: F32 arithmetic that makes or
  // meets a NaN gives the GPU's one canonical NaN and the host's an operand's NaN, or its own
  // negative one. With nan_bits, NaNs too must have the same bits (sign and payload), for ops that
  // only move or choose values (ReLU, max pooling, the conversion).
  double bf16_relative = -1;
  double bf16_absolute = 0;
  bool nan_bits = false;
};

// No arithmetic (copies, fill, ReLU, max-pool selection) or one correctly rounded IEEE operation
// per element (add, accumulate, multiply_): both backends produce the same bits.
inline constexpr Tolerance kExact{
    .max_relative = 0,
    .why = "no arithmetic, or one correctly rounded IEEE operation per element: identical on both backends"};

// kExact, and BF16 NaNs with the same bits: ops that only move or choose values, which both
// backends store as the host's conversion does (quiet, sign and payload kept).
inline constexpr Tolerance kExactBits{
    .max_relative = 0,
    .why = "values moved or chosen, never computed: the same bits on both backends, NaN payloads included",
    .nan_bits = true};

// F32 arithmetic on both sides: elementwise chains of a few roundings (SGD, BN's normalisation,
// softmax: ~1e-7) and reductions that either backend does in double (pooling, cross-entropy, the
// linear bias) or over at most a few thousand terms (cuBLAS GEMMs over 512 inputs, cuDNN's BN
// statistics over N·H·W ≤ 12544 values, whose blocked sums err by a few 1e-7 of the largest
// result). 1e-5 is the bound asked for these ops, about 80 F32 ulps of the largest element.
inline constexpr Tolerance kFp32{
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
inline constexpr Tolerance kConvolution{
    .max_relative = 1e-4,
    .l2_relative = 1e-5,
    .why = "sums of up to 12544 F32 products in another order or transform (Winograd/FFT): "
           "L2-relative 1e-5, and max-relative 1e-4 against single wrong elements"};

// ---- BF16 results --------------------------------------------------------------------------------
//
// Under Precision::BF16 both backends compute each result in F32 from the same BF16 operands and
// round it to BF16 once (the CPU widens the operands, runs its F32 op and rounds each result; the
// GPU's kernels, cuDNN and cuBLAS accumulate in F32). Ops whose F32 arithmetic is the same on both
// (ReLU, max pooling, the add, accumulate, multiply_, the conversion, average pooling) give the
// same F32 value, hence the same BF16 bits: they are compared with kExact (kExactBits where no
// arithmetic touches a NaN, so that its payload must survive too). Ops that accumulate in
// another order (convolutions, the linear layer, batch norm's statistics) give F32 values g32 and
// c32 that differ by at most some d (the F32 part), and each is then rounded to nearest BF16,
// moving it by at most half a step: |gpu - cpu| <= half a step + d + half a step. (Where d is below
// a step, both round to the same value or to neighbours.) A step (ulp) of a BF16 value x is at
// most 2^-7·|x| (8 significant bits), so
//   |gpu - cpu| <= 2^-7·|cpu| + d
// up to terms of order 2^-8·d (the steps are taken at g32 and c32, not at cpu), which the margin
// in d covers. Near zero, where the relative term vanishes, d alone remains, which is why it
// scales with the operands' magnitudes rather than with the result's.
inline Tolerance bf16_tolerance(double absolute, const char* why) {
  return Tolerance{.max_relative = 0, .why = why, .bf16_relative = 0x1p-7, .bf16_absolute = absolute};
}

// d for two F32 sums of the same n terms, each at most `term` in magnitude, added in different
// orders: each of a sum's n roundings errs by at most 2^-24 of a partial sum, itself at most
// n·term; the errors, of random sign, add up like a random walk (Higham's probabilistic bound:
// √n of them), twice (one sum per backend), and a factor 4 keeps the bound clear of the walk's
// tail: 8·√n·n·2^-24·term. (For ResNet's 3x3 convolutions over 64 channels, n = 576 and |x|,
// |w| < 1, this is 0.0066, where the outputs are about 8.)
inline double f32_sums_may_differ_by(int64_t n, double term) {
  const double terms = static_cast<double>(std::max<int64_t>(n, 1));
  return 8.0 * std::sqrt(terms) * terms * 0x1p-24 * term;
}

// The host BF16 tensor holding t's values rounded to nearest even: an input both backends get.
inline Tensor as_bf16(const Tensor& t) { return t.to(DType::BF16); }

// max |t_i| over t's finite elements (host tensors).
inline double max_abs(const Tensor& t) {
  double most = 0;
  for (int64_t i = 0; i < t.numel(); ++i)
    if (std::isfinite(t.item(i))) most = std::max(most, std::fabs(t.item(i)));
  return most;
}

// Where either value is NaN or infinite: both NaN, or equal infinities.
inline bool same_nonfinite(double g, double c) { return (std::isnan(g) && std::isnan(c)) || g == c; }

inline std::string nonfinite_mismatch(int64_t i, double g, double c) {
  std::ostringstream out;
  out << std::setprecision(9) << "element " << i << ": GPU " << g << ", CPU " << c
      << " (NaN and infinities must match)";
  return out.str();
}

// BF16 results element by element (Tolerance::bf16_relative): NaN at the same positions, equal
// infinities, and every other pair within the bound.
inline ::testing::AssertionResult agrees_in_bf16(const Tensor& gpu, const Tensor& cpu, const Tolerance& tolerance) {
  std::ostringstream out;
  out << std::setprecision(9);
  int64_t outside = 0, worst = -1;
  double worst_excess = 0;
  for (int64_t i = 0; i < cpu.numel(); ++i) {
    const double g = gpu.item(i), c = cpu.item(i);
    if (!std::isfinite(g) || !std::isfinite(c)) {
      if (!same_nonfinite(g, c)) return ::testing::AssertionFailure() << nonfinite_mismatch(i, g, c);
      continue;
    }
    const double bound = tolerance.bf16_relative * std::fabs(c) + tolerance.bf16_absolute;
    const double excess = std::fabs(g - c) - bound;
    if (excess <= 0) continue;
    ++outside;
    if (excess > worst_excess) {
      worst_excess = excess;
      worst = i;
    }
  }
  if (outside == 0) return ::testing::AssertionSuccess();
  const double c = cpu.item(worst);
  out << outside << " of " << cpu.numel() << " elements differ by more than " << tolerance.bf16_relative
      << "·|cpu| + " << tolerance.bf16_absolute << "; worst element " << worst << ": GPU " << gpu.item(worst)
      << ", CPU " << c << " (bound " << tolerance.bf16_relative * std::fabs(c) + tolerance.bf16_absolute << ")";
  return ::testing::AssertionFailure() << out.str();
}

inline ::testing::AssertionResult agrees(const Tensor& gpu, const Tensor& cpu, const Tolerance& tolerance) {
  std::ostringstream out;
  out << std::setprecision(9);
  if (!gpu.defined() || !cpu.defined() || gpu.dtype() != cpu.dtype() || gpu.shape() != cpu.shape()) {
    const auto describe = [](const Tensor& t) {
      return t.defined() ? dtype_name(t.dtype()) + " " + shape_string(t.shape()) : std::string("undefined");
    };
    return ::testing::AssertionFailure() << "GPU result is " << describe(gpu) << ", CPU's " << describe(cpu);
  }
  const int64_t n = cpu.numel();
  const bool half = cpu.dtype() == DType::BF16 || cpu.dtype() == DType::F16;  // element bounds: tolerance.bf16_*
  if (half && tolerance.bf16_relative >= 0) return agrees_in_bf16(gpu, cpu, tolerance);
  if (cpu.dtype() != DType::F32 && cpu.dtype() != DType::F64) {
    const bool halves = cpu.dtype() == DType::BF16 || cpu.dtype() == DType::F16;
    const size_t size = dtype_size(cpu.dtype());
    const auto* g = static_cast<const char*>(gpu.raw_data());
    const auto* c = static_cast<const char*>(cpu.raw_data());
    for (int64_t i = 0; i < n; ++i) {
      if (std::memcmp(g + i * size, c + i * size, size) == 0) continue;
      if (halves && !tolerance.nan_bits && std::isnan(gpu.item(i)) && std::isnan(cpu.item(i))) continue;
      out << "element " << i << ": GPU " << gpu.item(i) << ", CPU " << cpu.item(i)
          << (halves ? " (their bits must be identical)" : " (integers must be identical)");
      return ::testing::AssertionFailure() << out.str();
    }
    return ::testing::AssertionSuccess();
  }
  double max_diff = 0, max_ref = 0, diff_squares = 0, ref_squares = 0;
  int64_t worst = -1;
  for (int64_t i = 0; i < n; ++i) {
    const double g = gpu.item(i), c = cpu.item(i);
    if (!std::isfinite(g) || !std::isfinite(c)) {
      if (!same_nonfinite(g, c)) return ::testing::AssertionFailure() << nonfinite_mismatch(i, g, c);
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
inline constexpr size_t kFrontGuardBytes = 256;
inline constexpr size_t kBackGuardBytes = 64;
// NaN in every float view of its bytes: F32, F64, and both halves as BF16 and as F16 (0x7FF7), so
// that an element an op leaves unwritten fails every comparison, whatever the output's dtype.
inline constexpr uint32_t kGuardWord = 0x7FF77FF7;

inline uint8_t guard_byte(size_t i) { return static_cast<uint8_t>(kGuardWord >> (8 * (i % 4))); }  // little-endian

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

inline Tensor scalar_result(double value) { return Tensor::from_vector(std::vector<double>{value}, {1}); }

inline void expect_gpu_matches_cpu(Backend& gpu, const Op& op, Outputs outputs = Outputs::Guarded) {
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
inline std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.name;
}


}  // namespace hookrt::testing::gpu_ops
