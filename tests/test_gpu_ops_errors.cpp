// The CUDA backend against the CPU reference backend, op by op, forward and backward. Every op runs
// on both backends from the same seeded host inputs (the GPU gets them through from_host) and each
// result is compared per tensor, with a tolerance that says why it was chosen. As in ggml's
// test-backend-ops, every output a test allocates sits between guard bytes that must survive the
// op, and starts as NaN so that an element the op never writes shows. GPU tests start with
// HOOKRT_GPU_OR_SKIP(gpu) and skip, saying why, where there is no GPU or no CUDA build.
// This file: argument errors, and the harness's own checks (which need no GPU); the harness is tests/support/gpu_ops.h.
#include <gtest/gtest.h>

#include "support/gpu_ops.h"

namespace hookrt {
namespace {

using namespace testing::gpu_ops;

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
Tensor bf16_on(Backend& b, const Shape& shape, uint64_t seed) { return b.from_host(as_bf16(uniform(shape, seed))); }

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
       b.sgd_update(param, on(b, {4}, 2), buffer, false, {.lr = 0.1, .momentum = 0.9}, Tensor());
     }},
    // Operands of one op in two dtypes: the one that differs from the op's dtype is named.
    {"Conv2dForward_F32FilterOnBf16Input", "conv2d_forward: w has dtype F32; expected BF16",
     [](Backend& b) {
       Tensor y;
       b.conv2d_forward(bf16_on(b, {1, 3, 8, 8}, 1), on(b, {4, 3, 3, 3}, 2), y, {.stride = 1, .padding = 1});
     }},
    {"Conv2dForward_Bf16FilterOnF32Input", "conv2d_forward: w has dtype BF16; expected F32",
     [](Backend& b) {
       Tensor y;
       b.conv2d_forward(on(b, {1, 3, 8, 8}, 1), bf16_on(b, {4, 3, 3, 3}, 2), y, {.stride = 1, .padding = 1});
     }},
    {"Conv2dBackwardData_Bf16GradientThroughF32Filter", "conv2d_backward_data: dy has dtype BF16; expected F32",
     [](Backend& b) {
       Tensor dx = b.empty({1, 3, 8, 8}, DType::F32);
       b.conv2d_backward_data(bf16_on(b, {1, 4, 8, 8}, 1), on(b, {4, 3, 3, 3}, 2), dx, {.stride = 1, .padding = 1});
     }},
    {"Add_F32ToBf16", "add: b has dtype F32; expected BF16",
     [](Backend& b) {
       Tensor out;
       b.add(bf16_on(b, {2, 3}, 1), on(b, {2, 3}, 2), out);
     }},
    {"ReluBackward_F32GradientOfBf16Output", "relu_backward: dy has dtype F32; expected BF16",
     [](Backend& b) {
       Tensor dx;
       b.relu_backward(bf16_on(b, {2, 5}, 1), on(b, {2, 5}, 2), dx);
     }},
    {"LinearForward_F32BiasWithBf16Input", "linear_forward: b has dtype F32; expected BF16",
     [](Backend& b) {
       Tensor y;
       b.linear_forward(bf16_on(b, {4, 6}, 1), bf16_on(b, {5, 6}, 2), on(b, {5}, 3), y);
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
    gpu->sgd_update(param, on(*gpu, {4}, 2), buffer, true, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}, Tensor());
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
  for (DType half : {DType::BF16, DType::F16}) {
    const Tensor t = run.allocated_output({4}, half);
    for (int64_t i = 0; i < t.numel(); ++i) EXPECT_TRUE(std::isnan(t.item(i))) << dtype_name(half) << " element " << i;
  }
}

TEST(GpuOpsHarness, Bf16ToleranceAllowsOneBf16StepAndTheAbsoluteTermButNoMore) {
  const auto bf16 = [](std::vector<float> v) {
    return as_bf16(Tensor::from_vector(v, {static_cast<int64_t>(v.size())}));
  };
  const Tolerance within = bf16_tolerance(1e-3, "one BF16 step plus 1e-3");
  EXPECT_TRUE(agrees(bf16({1.0f, 256.0f}), bf16({1.0f + 0x1p-7f, 258.0f}), within)) << "neighbours: one step apart";
  EXPECT_FALSE(agrees(bf16({1.0f}), bf16({1.0f + 0x1p-6f}), within)) << "two steps apart";
  EXPECT_TRUE(agrees(bf16({0.0f}), bf16({0x1p-11f}), within)) << "near zero the absolute term holds";
  EXPECT_FALSE(agrees(bf16({0.0f}), bf16({0x1p-9f}), within)) << "beyond it";
  EXPECT_FALSE(agrees(bf16({NAN}), bf16({1.0f}), within));
  EXPECT_FALSE(agrees(bf16({-INFINITY}), bf16({INFINITY}), within));
  EXPECT_FALSE(agrees(bf16({1.0f}), bf16({1.0f + 0x1p-7f}), kExact)) << "kExact: BF16 bits must be identical";
  EXPECT_FALSE(agrees(bf16({0.0f}), bf16({-0.0f}), kExact)) << "signs of zero included";
  Tensor canonical = bf16({NAN}), quieted = bf16({NAN});
  static_cast<uint16_t*>(canonical.raw_data())[0] = 0x7FFF;  // the GPU's NaN after arithmetic
  static_cast<uint16_t*>(quieted.raw_data())[0] = 0xFFC1;    // the host's, an operand's quieted
  EXPECT_TRUE(agrees(canonical, quieted, kExact)) << "kExact: a NaN only has to meet a NaN";
  EXPECT_FALSE(agrees(canonical, quieted, kExactBits)) << "kExactBits: NaN payloads too";
  EXPECT_NEAR(f32_sums_may_differ_by(576, 1.0), 8 * 24 * 576 * 0x1p-24, 1e-12);
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

}  // namespace
}  // namespace hookrt
