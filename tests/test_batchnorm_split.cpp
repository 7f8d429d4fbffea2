// A batch norm in two parts (Backend::splits_batchnorm): the per-channel part and the elementwise
// part, run one after the other or the second as a ProducingOp, give the whole op's bits, forward
// and backward, in training and inference, in NCHW and channels-last, for every activation dtype
// the backend splits. On the CPU backend always (F64, F32, BF16, F16); on the GPU where there is
// one (BF16 and F16, the dtypes it splits; its F32 batch norm is cuDNN's, whole).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "hookrt/backend.h"
#include "support/errors.h"
#include "support/gpu.h"
#include "support/gpu_ops.h"
#include "support/delegating_backend.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::bitwise_equal;
using testing::gpu_ops::uniform;

struct SplitCase {
  DType dtype;
  MemoryFormat format;
  BatchNormMode mode;
  Shape shape;

  std::string name() const {
    return std::string(dtype_name(dtype)) + (format == MemoryFormat::ChannelsLast ? " NHWC " : " NCHW ") +
           (mode == BatchNormMode::Training ? "training " : "inference ") + shape_string(shape);
  }
};

// A host tensor on `backend` in the case's dtype and layout.
Tensor placed(Backend& backend, const Tensor& host, DType dtype, MemoryFormat format) {
  return backend.converted(backend.from_host(host.to(dtype)), dtype, format);
}

// Every tensor one forward and one backward leave, on the host.
struct BatchNormResults {
  std::vector<Tensor> tensors;
  std::vector<std::string> names;
};

BatchNormResults results_of(Backend& backend, const std::vector<std::pair<Tensor, std::string>>& named) {
  BatchNormResults r;
  for (const auto& [t, name] : named) {
    r.tensors.push_back(backend.to_host(t));
    r.names.push_back(name);
  }
  return r;
}

// The operands of one case, made afresh for each run (the running statistics are updated).
struct Operands {
  Tensor x, dy, weight, bias, running_mean, running_var;
};

Operands operands(Backend& backend, const SplitCase& c) {
  const DType params = c.dtype == DType::F64 ? DType::F64 : DType::F32;
  const Shape channels{c.shape[1]};
  const uint64_t seed = testing::gpu_ops::seed_of(c.name());
  Operands o;
  o.x = placed(backend, uniform(c.shape, seed, -1.0, 3.0), c.dtype, c.format);
  o.dy = placed(backend, uniform(c.shape, seed + 1), c.dtype, c.format);
  o.weight = backend.from_host(uniform(channels, seed + 2, 0.5, 1.5).to(params));
  o.bias = backend.from_host(uniform(channels, seed + 3).to(params));
  o.running_mean = backend.from_host(uniform(channels, seed + 4).to(params));
  o.running_var = backend.from_host(uniform(channels, seed + 5, 0.5, 2.0).to(params));
  return o;
}

BatchNormResults run_whole(Backend& backend, const SplitCase& c) {
  Operands o = operands(backend, c);
  const BatchNormOptions options{c.mode, 1e-5, 0.1};
  Tensor y = backend.empty(c.shape, c.dtype, c.format), save_mean, save_invstd;
  backend.batchnorm_forward(o.x, o.weight, o.bias, o.running_mean, o.running_var, y, save_mean, save_invstd, options);
  Tensor dx = backend.empty(c.shape, c.dtype, c.format), dweight, dbias;
  backend.batchnorm_backward(o.dy, o.x, o.weight, save_mean, save_invstd, dx, dweight, dbias, options);
  return results_of(backend, {{y, "y"}, {save_mean, "save_mean"}, {save_invstd, "save_invstd"},
                              {o.running_mean, "running_mean"}, {o.running_var, "running_var"}, {dx, "dx"},
                              {dweight, "dweight"}, {dbias, "dbias"}});
}

// The parts, the elementwise ones as the backend's ops or as producing ops.
BatchNormResults run_parts(Backend& backend, const SplitCase& c, bool as_producing_ops) {
  Operands o = operands(backend, c);
  const BatchNormOptions options{c.mode, 1e-5, 0.1};
  Tensor save_mean, save_invstd, forward_coefficients;
  backend.batchnorm_forward_coefficients(o.x, o.weight, o.bias, o.running_mean, o.running_var, save_mean, save_invstd,
                                         forward_coefficients, options);
  Tensor y = backend.empty(c.shape, c.dtype, c.format);
  if (as_producing_ops)
    backend.run_producing_op(ProducingOp{ProducingOp::Kind::BatchNormApply, o.x, Tensor(), forward_coefficients}, y);
  else
    backend.batchnorm_apply(o.x, forward_coefficients, y);
  Tensor dweight, dbias, backward_coefficients;
  backend.batchnorm_backward_coefficients(o.dy, o.x, o.weight, save_mean, save_invstd, dweight, dbias,
                                          backward_coefficients, options);
  const Tensor x_read = c.mode == BatchNormMode::Training ? o.x : Tensor();  // inference's dx reads dy alone
  Tensor dx = backend.empty(c.shape, c.dtype, c.format);
  if (as_producing_ops)
    backend.run_producing_op(ProducingOp{ProducingOp::Kind::BatchNormDx, o.dy, x_read, backward_coefficients}, dx);
  else
    backend.batchnorm_dx(o.dy, x_read, backward_coefficients, dx);
  return results_of(backend, {{y, "y"}, {save_mean, "save_mean"}, {save_invstd, "save_invstd"},
                              {o.running_mean, "running_mean"}, {o.running_var, "running_var"}, {dx, "dx"},
                              {dweight, "dweight"}, {dbias, "dbias"}});
}

void expect_parts_give_the_whole_ops_bits(Backend& backend, const SplitCase& c) {
  ASSERT_TRUE(backend.splits_batchnorm(c.dtype)) << backend.name() << " " << c.name();
  const BatchNormResults whole = run_whole(backend, c);
  for (const bool as_producing_ops : {false, true}) {
    const BatchNormResults parts = run_parts(backend, c, as_producing_ops);
    for (size_t i = 0; i < whole.tensors.size(); ++i)
      EXPECT_TRUE(bitwise_equal(parts.tensors[i], whole.tensors[i]))
          << backend.name() << " " << c.name() << ": " << whole.names[i]
          << (as_producing_ops ? " (producing ops)" : " (ops)");
  }
}

std::vector<SplitCase> cases_for(const std::vector<DType>& dtypes) {
  std::vector<SplitCase> cases;
  for (const DType dtype : dtypes)
    for (const MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast})
      for (const BatchNormMode mode : {BatchNormMode::Training, BatchNormMode::Inference})
        for (const Shape& shape : {Shape{2, 3, 5, 7}, Shape{4, 16, 6, 6}, Shape{3, 5, 1, 1}})
          cases.push_back(SplitCase{dtype, format, mode, shape});
  return cases;
}

TEST(BatchNormSplit, CpuPartsGiveTheWholeOpsBits) {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  for (const SplitCase& c : cases_for({DType::F64, DType::F32, DType::BF16, DType::F16}))
    expect_parts_give_the_whole_ops_bits(*cpu, c);
}

TEST(BatchNormSplit, GpuPartsGiveTheWholeOpsBits) {
  HOOKRT_GPU_OR_SKIP(gpu);
  EXPECT_FALSE(gpu->splits_batchnorm(DType::F32)) << "F32 batch norm is cuDNN's, one call";
  for (const SplitCase& c : cases_for({DType::BF16, DType::F16})) expect_parts_give_the_whole_ops_bits(*gpu, c);
}

// --own-batchnorm: F32 on hookrt's kernels, whole and split alike, and within F32's rounding of
// the CPU reference (as test_gpu_batchnorm_channels_last holds the F32 NHWC ones).
TEST(BatchNormSplit, GpuOwnF32PartsGiveTheWholeOpsBitsAndTheCpusValues) {
  GpuOptions options = testing::gpu_options_for_tests();
  options.own_f32_batchnorm = true;
  testing::GpuForTests gpu = testing::make_gpu_backend_for_tests(options);
  if (!gpu.backend) GTEST_SKIP() << gpu.reason;
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  for (const SplitCase& c : cases_for({DType::F32})) {
    expect_parts_give_the_whole_ops_bits(*gpu.backend, c);
    const BatchNormResults got = run_whole(*gpu.backend, c), want = run_whole(*cpu, c);
    for (size_t i = 0; i < want.tensors.size(); ++i)
      EXPECT_TRUE(testing::gpu_ops::agrees(got.tensors[i], want.tensors[i], testing::gpu_ops::kFp32))
          << c.name() << ": " << want.names[i];
  }
}

// Planes with no values (H = 0) give empty outputs, as the CPU's and PyTorch's do, in both layouts
// and both dx forms.
void expect_empty_planes_give_empty_outputs(Backend& backend, DType dtype) {
  for (const MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
    const Shape shape{2, 3, 0, 4};
    const Tensor x = backend.empty(shape, dtype, format);
    Tensor y = backend.empty(shape, dtype, format), dx = backend.empty(shape, dtype, format),
           inference_dx = backend.empty(shape, dtype, format);
    backend.batchnorm_apply(x, backend.from_host(Tensor::zeros({2, 3})), y);
    const Tensor backward_rows = backend.from_host(Tensor::zeros({4, 3}));
    backend.batchnorm_dx(x, x, backward_rows, dx);
    backend.batchnorm_dx(x, Tensor(), backward_rows, inference_dx);
    EXPECT_EQ(y.shape(), shape);
    EXPECT_EQ(dx.numel() + inference_dx.numel(), 0);
  }
}

TEST(BatchNormSplit, CpuEmptyPlanesGiveEmptyOutputs) {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  for (const DType dtype : {DType::F32, DType::BF16}) expect_empty_planes_give_empty_outputs(*cpu, dtype);
}

TEST(BatchNormSplit, GpuEmptyPlanesGiveEmptyOutputs) {
  HOOKRT_GPU_OR_SKIP(gpu);
  for (const DType dtype : {DType::BF16, DType::F16}) expect_empty_planes_give_empty_outputs(*gpu, dtype);
}

TEST(BatchNormSplit, CoefficientsOfTheWrongShapeOrDtypeAreRefusedByName) {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  const Shape shape{2, 3, 4, 4};
  const Tensor x = uniform(shape, 7), dy = uniform(shape, 8);
  Tensor y, dx;
  const std::string apply =
      testing::error_message([&] { cpu->batchnorm_apply(x, Tensor::zeros({4, 3}), y); });
  EXPECT_NE(apply.find("batchnorm_apply"), std::string::npos) << apply;
  EXPECT_NE(apply.find("coefficients"), std::string::npos) << apply;
  const std::string backward =
      testing::error_message([&] { cpu->batchnorm_dx(dy, x, Tensor::zeros({4, 3}, DType::F64), dx); });
  EXPECT_NE(backward.find("batchnorm_dx"), std::string::npos) << backward;
  EXPECT_NE(backward.find("coefficients"), std::string::npos) << backward;
}

// A backend that runs batch norms whole (Backend's defaults) says so, and its parts refuse by name.
TEST(BatchNormSplit, ABackendThatRunsThemWholeRefusesTheParts) {
  testing::DelegatingBackend backend;
  Backend& whole = backend;
  EXPECT_FALSE(whole.Backend::splits_batchnorm(DType::F32));
  Tensor y;
  const std::string message = testing::error_message(
      [&] { whole.Backend::batchnorm_apply(uniform({1, 2, 2, 2}, 9), Tensor::zeros({2, 2}), y); });
  EXPECT_NE(message.find("batchnorm_apply"), std::string::npos) << message;
  EXPECT_NE(message.find("whole"), std::string::npos) << message;
}

}  // namespace
}  // namespace hookrt
