// The loss scaler's device ops against the CPU reference: unscale_gradient_ (one correctly rounded
// product per element, so identical) and its foreach form unscale_gradients_, update_loss_scale
// over a sequence of clean and overflowed steps, and sgd_update's skip flag. Skips without a
// usable GPU.
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "support/cli.h"
#include "support/errors.h"
#include "support/gpu_ops.h"
#include "support/tiny_model.h"  // bitwise_equal

namespace hookrt {
namespace {

using namespace testing::gpu_ops;

Tensor one_f32(float value) { return Tensor::full({1}, value); }

struct UnscaleCase {
  std::string name;
  int64_t size;
  float scale;
  float planted;  // 0: none; else written at a third of the gradient
  float found_inf_before;
};
void PrintTo(const UnscaleCase& c, std::ostream* os) { *os << c.name; }

const float kInf = std::numeric_limits<float>::infinity();
const std::vector<UnscaleCase> kUnscaleCases = {
    {"Clean_4097_By3", 4097, 3.0f, 0.0f, 0.0f},
    {"Clean_1_By65536", 1, 65536.0f, 0.0f, 0.0f},
    {"ScaleOneLeavesValues_1000", 1000, 1.0f, 0.0f, 0.0f},
    {"PositiveInf_333", 333, 1024.0f, kInf, 0.0f},
    {"NegativeInf_17", 17, 8.0f, -kInf, 0.0f},
    {"Nan_70001", 70001, 0.5f, std::numeric_limits<float>::quiet_NaN(), 0.0f},
    {"CleanKeepsAnEarlierFlag_513", 513, 4.0f, 0.0f, 1.0f},
    {"LargerThanTheGrid_20000001", 20000001, 2048.0f, kInf, 0.0f},
};

class UnscaleGradientTest : public ::testing::TestWithParam<UnscaleCase> {};

TEST_P(UnscaleGradientTest, MatchesCpuBitForBitAndFlagsNonFinite) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const UnscaleCase& c = GetParam();
  Tensor grad0 = uniform({c.size}, seed_of(c.name), -1e4, 1e4);
  if (c.planted != 0.0f) grad0.data<float>()[c.size / 3] = c.planted;
  expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
    Tensor grad = run.in_out(grad0), found_inf = run.in_out(one_f32(c.found_inf_before));
    run.backend().unscale_gradient_(grad, run.input(one_f32(c.scale)), found_inf);
    return Results{{"grad", run.result(grad), kExactBits}, {"found_inf", run.result(found_inf), kExact}};
  });
}

INSTANTIATE_TEST_SUITE_P(Cases, UnscaleGradientTest, ::testing::ValuesIn(kUnscaleCases), case_name<UnscaleCase>);

// A gradient that starts 0..3 elements past a 16-byte boundary: a scalar head before the 16-byte
// vectors, and a scalar tail after them, each element unscaled and checked as in the aligned case.
TEST(UnscaleGradientOffsets, EveryStartWithinAVectorMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  constexpr int64_t kSize = 1001;
  for (int64_t offset = 0; offset < 4; ++offset) {
    SCOPED_TRACE("offset " + std::to_string(offset));
    Tensor grad0 = uniform({kSize}, seed_of("unscale offset") + static_cast<uint64_t>(offset), -1e4, 1e4);
    grad0.data<float>()[kSize - 2] = -kInf;  // in the tail
    expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
      Tensor buffer = run.allocated_output({offset + kSize});
      Tensor grad(buffer.storage(), {kSize}, DType::F32, buffer.byte_offset() + offset * sizeof(float));
      run.backend().copy(grad0, grad);
      Tensor found_inf = run.in_out(one_f32(0.0f));
      run.backend().unscale_gradient_(grad, run.input(one_f32(1024.0f)), found_inf);
      return Results{{"grad", run.result(grad), kExactBits}, {"found_inf", run.result(found_inf), kExact}};
    });
  }
}

// The foreach form the loss scaler uses for the gradients no grad hook sees: 80 gradients (two
// launches of at most 64), an empty one among them, a 70001-element one that takes many blocks,
// each with the bits its own unscale_gradient_ gives, and one flag for all of them: set by the one
// gradient with an Inf, kept where set before, clear where nothing was found.
TEST(UnscaleGradientsTest, AllAtOnceGiveEachOnesBitsAndOneFlag) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const std::vector<Shape> shapes = {{1}, {3}, {7, 13}, {1001}, {64, 64, 3, 3}, {70001}, {0}};
  constexpr int kGrads = 80;
  struct Case {
    const char* name;
    int planted;  // the gradient holding an Inf, or -1
    float flag_before;
  };
  for (const Case c : {Case{"an Inf in gradient 67", 67, 0.0f}, Case{"clean", -1, 0.0f},
                       Case{"clean after an earlier overflow", -1, 1.0f}}) {
    SCOPED_TRACE(c.name);
    std::vector<Tensor> alone, together;
    for (int i = 0; i < kGrads; ++i) {
      Tensor host = uniform(shapes[static_cast<size_t>(i) % shapes.size()], seed_of("unscale list") + i, -1e4, 1e4);
      if (i == c.planted) host.data<float>()[host.numel() / 2] = kInf;
      alone.push_back(gpu->from_host(host));
      together.push_back(gpu->from_host(host));
    }
    const Tensor scale = gpu->from_host(one_f32(3.0f));
    Tensor alone_flag = gpu->from_host(one_f32(c.flag_before)), together_flag = gpu->from_host(one_f32(c.flag_before));
    for (Tensor& grad : alone) gpu->unscale_gradient_(grad, scale, alone_flag);
    std::vector<Tensor*> list;
    for (Tensor& grad : together) list.push_back(&grad);
    gpu->unscale_gradients_(list, scale, together_flag);
    for (int i = 0; i < kGrads; ++i)
      EXPECT_TRUE(testing::bitwise_equal(gpu->to_host(together[i]), gpu->to_host(alone[i]))) << "gradient " << i;
    const float expected = c.planted >= 0 ? 1.0f : c.flag_before;
    EXPECT_EQ(gpu->to_host(alone_flag).item(0), expected);
    EXPECT_EQ(gpu->to_host(together_flag).item(0), expected);
  }
}

// Clean steps up to a growth, an overflow, and a growth that would leave F32.
TEST(UpdateLossScaleTest, ASequenceOfStepsMatchesCpu) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const std::vector<float> found = {0, 0, 0, 1, 0, 0, 0, 0, 1, 1};
  for (const float start : {1024.0f, std::numeric_limits<float>::max() / 2}) {
    expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
      LossScaleOptions o;
      o.growth_interval = 3;
      Tensor scale = run.in_out(one_f32(start)), tracker = run.in_out(Tensor::full({1}, 0.0, DType::I32));
      Results results;
      for (size_t step = 0; step < found.size(); ++step) {
        run.backend().update_loss_scale(scale, tracker, run.input(one_f32(found[step])), o);
        results.push_back({"scale after step " + std::to_string(step), run.result(scale), kExact});
        results.push_back({"tracker after step " + std::to_string(step), run.result(tracker), kExact});
      }
      return results;
    });
  }
}

TEST(SgdSkipTest, AFlagOfOneWritesNothingAndZeroUpdatesAsUsual) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const SgdOptions o{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-3};
  const Tensor param0 = uniform({5, 7}, 1), grad0 = uniform({5, 7}, 2);
  expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
    Tensor skipped = run.in_out(param0), updated = run.in_out(param0);
    Tensor skipped_buffer = run.allocated_output({5, 7}), updated_buffer = run.allocated_output({5, 7});
    const Tensor grad = run.input(grad0);
    run.backend().sgd_update(skipped, grad, skipped_buffer, true, o, run.input(one_f32(1.0f)));
    run.backend().sgd_update(updated, grad, updated_buffer, true, o, run.input(one_f32(0.0f)));
    return Results{{"skipped param", run.result(skipped), kExact},
                   {"skipped momentum (still the guard pattern)", run.result(skipped_buffer), kExactBits},
                   {"updated param", run.result(updated), kFp32},
                   {"updated momentum", run.result(updated_buffer), kFp32}};
  });
}

TEST(LossScaleErrors, NameTheOpAndTheTensor) {
  HOOKRT_GPU_OR_SKIP(gpu);
  Tensor grad = gpu->from_host(uniform({4}, 3)), flag = gpu->from_host(one_f32(0));
  const Tensor two = gpu->from_host(Tensor::full({2}, 1.0));
  EXPECT_TRUE(testing::contains(testing::error_message([&] { gpu->unscale_gradient_(grad, two, flag); }),
                                "unscale_gradient_: scale"));
  Tensor tracker = gpu->from_host(Tensor::full({1}, 0.0));  // F32, not I32
  Tensor scale = gpu->from_host(one_f32(8));
  EXPECT_TRUE(testing::contains(
      testing::error_message([&] { gpu->update_loss_scale(scale, tracker, flag, LossScaleOptions{}); }),
      "update_loss_scale: growth_tracker"));
  Tensor half_grad = gpu->from_host(uniform({4}, 4).to(DType::F16));
  EXPECT_TRUE(testing::contains(testing::error_message([&] { gpu->unscale_gradient_(half_grad, scale, flag); }),
                                "unscale_gradient_: grad"));
  EXPECT_TRUE(testing::contains(
      testing::error_message([&] { gpu->unscale_gradients_({&grad, &half_grad}, scale, flag); }),
      "unscale_gradients_: grad"));
  Tensor i32_flag = gpu->from_host(Tensor::full({1}, 0.0, DType::I32));
  EXPECT_TRUE(testing::contains(testing::error_message([&] { gpu->unscale_gradient_(grad, scale, i32_flag); }),
                                "unscale_gradient_: found_inf"));
  Tensor buffer;
  EXPECT_TRUE(testing::contains(
      testing::error_message([&] { gpu->sgd_update(grad, grad, buffer, true, SgdOptions{}, two); }), "sgd_update: skip_if"));
}

}  // namespace
}  // namespace hookrt
