// The CUDA backend against the CPU reference backend, op by op, forward and backward. Every op runs
// on both backends from the same seeded host inputs (the GPU gets them through from_host) and each
// result is compared per tensor, with a tolerance that says why it was chosen. As in ggml's
// test-backend-ops, every output a test allocates sits between guard bytes that must survive the
// op, and starts as NaN so that an element the op never writes shows. GPU tests start with
// HOOKRT_GPU_OR_SKIP(gpu) and skip, saying why, where there is no GPU or no CUDA build.
// This file: the linear layer (F32, BF16 and F16), cross-entropy and the SGD update (F32: autocast runs
// the loss in F32); the harness is tests/support/gpu_ops.h.
#include <gtest/gtest.h>

#include "support/gpu_ops.h"
#include "support/tiny_model.h"  // bitwise_equal
#include "test_gpu_half_tolerance.h"

namespace hookrt {
namespace {

using namespace testing::gpu_ops;

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
      // Empty dimensions: y is the bias, or nothing flows back (cuBLAS takes neither as a GEMM).
      {"NoInputFeatures_4x0to3", 4, 0, 3, false},
      {"NoOutputFeatures_4x5to0", 4, 5, 0, false},
      // An empty batch: dw and db are zeros, written without a GEMM over an empty inner dimension.
      {"EmptyBatch_0x5to3", 0, 5, 3, false},
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

// BF16 and F16: every tensor of one half dtype. y sums `in` products and the bias in F32 (cuBLAS
// with beta = 1 on the broadcast bias; the CPU's GEMM onto the bias) and rounds once; dx sums `out`
// products, dw sums N. Hence one half step plus f32_sums_may_differ_by(terms, largest term) (see
// half_tolerance). db sums dy in double in row order on both backends, then rounds to F32 and to the
// half dtype: the same bits.
class LinearHalfTest : public LinearTest {
 protected:
  void SetUp() override {
    LinearTest::SetUp();
    x32_ = x_, w32_ = w_, b32_ = b_, dy32_ = dy_;
  }
  // body() for BF16 and then F16, with every input rounded to each.
  template <class Body>
  void for_each_half(Body body) {
    for (DType half : kHalfDtypes) {
      SCOPED_TRACE(dtype_name(half));
      half_ = half;
      x_ = x32_.to(half), w_ = w32_.to(half), b_ = b32_.to(half), dy_ = dy32_.to(half);
      body();
    }
  }
  Tolerance sums_of(int64_t n, double term) const {
    return half_tolerance(half_, f32_sums_may_differ_by(n, term),
                          "half results of F32 sums in two orders: one half step (2^-7·|cpu| for BF16, "
                          "2^-10·|cpu| for F16) plus the F32 order's difference, 8·√n·n·2^-24·max|term|");
  }

  Tensor x32_, w32_, b32_, dy32_;  // the inputs as drawn, before rounding
  DType half_ = DType::BF16;
};

TEST_P(LinearHalfTest, ForwardInBf16AndF16MatchesCpuWithinOneHalfStep) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const LinearCase& c = GetParam();
  for_each_half([&] {
    const Tolerance tolerance = sums_of(c.in + 1, std::max(max_abs(x_) * max_abs(w_), max_abs(b_)));
    for (Outputs outputs : {Outputs::Guarded, Outputs::Undefined}) {
      expect_gpu_matches_cpu(
          *gpu,
          [&](OpRun& run) {
            Tensor y = run.output({c.n, c.out}, half_);
            run.backend().linear_forward(run.input(x_), run.input(w_), run.input(b_), y);
            return Results{{"y", run.result(y), tolerance}};
          },
          outputs);
    }
  });
}

TEST_P(LinearHalfTest, BackwardInBf16AndF16MatchesCpuWithinOneHalfStep) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const LinearCase& c = GetParam();
  for_each_half([&] {
    const Tolerance dx_tolerance = sums_of(c.out, max_abs(dy_) * max_abs(w_));
    const Tolerance dw_tolerance = sums_of(c.n, max_abs(dy_) * max_abs(x_));
    expect_gpu_matches_cpu(*gpu, [&](OpRun& run) {
      Tensor dx = run.allocated_output(x_.shape(), half_);
      Tensor dw = run.output(w_.shape(), half_), db = run.output(b_.shape(), half_);
      run.backend().linear_backward(run.input(x_), run.input(w_), run.input(dy_), dx, dw, db);
      return Results{{"dx", run.result(dx), dx_tolerance},
                     {"dw", run.result(dw), dw_tolerance},
                     {"db", run.result(db), kExact}};
    });
  });
}

INSTANTIATE_TEST_SUITE_P(Shapes, LinearTest, ::testing::ValuesIn(kLinearCases), case_name<LinearCase>);
INSTANTIATE_TEST_SUITE_P(Shapes, LinearHalfTest, ::testing::ValuesIn(kLinearCases), case_name<LinearCase>);

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
        run.backend().sgd_update(param, run.input(grads[static_cast<size_t>(step)]), buffer, step == 0, c.options, Tensor());
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

// sgd_update_all (one launch for every 64 parameters) gives each parameter and momentum buffer
// the bits sgd_update gives it alone: 80 parameters, from one element to many blocks' worth; the
// 11 empty ones are passed over, and the other 69 spill into a second launch. A nonzero skip_if
// leaves every one as it was.
TEST_P(SgdTest, AllAtOnceGiveEachOnesBits) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const SgdCase& c = GetParam();
  constexpr int kParams = 80;
  const std::vector<Shape> shapes = {{1}, {3}, {7, 13}, {1001}, {64, 64, 3, 3}, {70001}, {0}};
  std::vector<Tensor> alone, together, alone_buffers(kParams), together_buffers(kParams);
  for (int i = 0; i < kParams; ++i) {
    const Tensor host = uniform(shapes[static_cast<size_t>(i) % shapes.size()], seed_of(c.name) + i);
    alone.push_back(gpu->from_host(host));
    together.push_back(gpu->from_host(host));
  }
  auto expect_same = [&](const std::string& when) {
    for (int i = 0; i < kParams; ++i) {
      EXPECT_TRUE(testing::bitwise_equal(gpu->to_host(together[i]), gpu->to_host(alone[i])))
          << c.name << ", parameter " << i << " " << when;
      if (c.options.momentum != 0.0 && alone[i].numel() > 0)
        EXPECT_TRUE(testing::bitwise_equal(gpu->to_host(together_buffers[i]), gpu->to_host(alone_buffers[i])))
            << c.name << ", momentum buffer " << i << " " << when;
    }
  };
  const Tensor go = gpu->from_host(Tensor::zeros({1})), skip = gpu->from_host(Tensor::full({1}, 1.0));
  for (int step = 0; step < 3; ++step) {
    std::vector<Tensor> grads;
    for (int i = 0; i < kParams; ++i)
      grads.push_back(gpu->from_host(uniform(alone[i].shape(), 1000 * (step + 1) + i)));
    std::vector<SgdTensors> list;
    for (int i = 0; i < kParams; ++i) list.push_back(SgdTensors{&together[i], &grads[i], &together_buffers[i]});
    const bool skipped = step == 2;
    gpu->sgd_update_all(list, step == 0, c.options, skipped ? skip : go);
    if (!skipped)
      for (int i = 0; i < kParams; ++i) gpu->sgd_update(alone[i], grads[i], alone_buffers[i], step == 0, c.options, go);
    expect_same(skipped ? "after a skipped step" : "after step " + std::to_string(step + 1));
  }
}

INSTANTIATE_TEST_SUITE_P(Options, SgdTest, ::testing::ValuesIn(kSgdCases), case_name<SgdCase>);

}  // namespace
}  // namespace hookrt
