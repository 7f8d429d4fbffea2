// A training batch norm's backward through the ReLU that computed its output unwritten
// (Backend::batchnorm_relu_backward_coefficients and ProducingOp::BatchNormReluDx) gives the bits
// of the ops it replaces: the ReLU's output computed as BatchNormApplyRelu computes it, the ReLU's
// backward, then the batch norm's two backward parts. The mask is taken again from x and the
// forward's coefficients, so it must round y to the activation dtype exactly as the forward did:
// the cases include channels whose y is so small that it rounds to zero at 16 bits.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "hookrt/backend.h"
#include "support/errors.h"
#include "support/gpu.h"
#include "support/gpu_ops.h"
#include "support/tiny_model.h"  // bitwise_equal

namespace hookrt {
namespace {

using testing::bitwise_equal;
using testing::gpu_ops::uniform;

struct ReluBackwardCase {
  DType dtype;
  MemoryFormat format;
  Shape shape;

  std::string name() const {
    return std::string(dtype_name(dtype)) + (format == MemoryFormat::ChannelsLast ? " NHWC " : " NCHW ") +
           shape_string(shape);
  }
};

// The operands, on `backend`: any per-channel values do, the forward's coefficients included.
// Every third channel's scale is tiny, so that its y rounds to 0 at F16.
struct Operands {
  Tensor x, relu_dy, forward_coefficients, weight, save_mean, save_invstd;
};

Tensor placed(Backend& backend, const Tensor& host, DType dtype, MemoryFormat format) {
  return backend.converted(backend.from_host(host.to(dtype)), dtype, format);
}

Operands operands(Backend& backend, const ReluBackwardCase& c) {
  const DType params = c.dtype == DType::F64 ? DType::F64 : DType::F32;
  const int64_t channels = c.shape[1];
  const uint64_t seed = testing::gpu_ops::seed_of(c.name());
  Tensor forward = uniform({2, channels}, seed + 2, -1.0, 1.0);
  float* rows = forward.data<float>();
  for (int64_t k = 0; k < channels; k += 3) {
    rows[k] = 1e-8f;            // scale: |y| <= 1e-8, below half F16's least subnormal, not BF16's
    rows[channels + k] = 0.0f;  // shift
  }
  Operands o;
  o.x = placed(backend, uniform(c.shape, seed, -1.0, 1.0), c.dtype, c.format);
  o.relu_dy = placed(backend, uniform(c.shape, seed + 1), c.dtype, c.format);
  o.forward_coefficients = backend.from_host(forward.to(params));
  o.weight = backend.from_host(uniform({channels}, seed + 3, 0.5, 1.5).to(params));
  o.save_mean = backend.from_host(uniform({channels}, seed + 4).to(params));
  o.save_invstd = backend.from_host(uniform({channels}, seed + 5, 0.5, 2.0).to(params));
  return o;
}

// What the batch norm's backward leaves, on the host: dweight, dbias, the coefficients' backward
// rows (4, C) and forward rows (2, C), and dx.
struct Results {
  std::vector<Tensor> tensors;
  std::vector<std::string> names{"dweight", "dbias", "backward rows", "forward rows", "dx"};
};

const BatchNormOptions kTraining{BatchNormMode::Training, 1e-5, 0.1};

// Rows [first, first + count) of a host (6, C) tensor.
Tensor host_rows(const Tensor& six, int64_t first, int64_t count) {
  const int64_t channels = six.size(1);
  const size_t offset = static_cast<size_t>(first * channels) * dtype_size(six.dtype());
  return Tensor(six.storage(), Shape{count, channels}, six.dtype(), six.byte_offset() + offset).clone();
}

// The ops the fused ones replace, in the order the unfused step runs them.
Results unfused(Backend& backend, const ReluBackwardCase& c) {
  const Operands o = operands(backend, c);
  Tensor y = backend.empty(c.shape, c.dtype, c.format);
  backend.run_producing_op(ProducingOp{ProducingOp::Kind::BatchNormApplyRelu, o.x, Tensor(), o.forward_coefficients},
                           y);
  Tensor dy = backend.empty(c.shape, c.dtype, c.format);
  backend.relu_backward(y, o.relu_dy, dy);
  Tensor dweight, dbias, coefficients;
  backend.batchnorm_backward_coefficients(dy, o.x, o.weight, o.save_mean, o.save_invstd, dweight, dbias, coefficients,
                                          kTraining);
  Tensor dx = backend.empty(c.shape, c.dtype, c.format);
  backend.batchnorm_dx(dy, o.x, coefficients, dx);
  return Results{{backend.to_host(dweight), backend.to_host(dbias), backend.to_host(coefficients),
                  backend.to_host(o.forward_coefficients), backend.to_host(dx)}};
}

Results fused(Backend& backend, const ReluBackwardCase& c) {
  const Operands o = operands(backend, c);
  Tensor dweight, dbias, coefficients;
  backend.batchnorm_relu_backward_coefficients(o.relu_dy, o.x, o.forward_coefficients, o.weight, o.save_mean,
                                               o.save_invstd, dweight, dbias, coefficients, kTraining);
  EXPECT_EQ(coefficients.shape(), (Shape{6, c.shape[1]})) << c.name();
  Tensor dx = backend.empty(c.shape, c.dtype, c.format);
  backend.run_producing_op(ProducingOp{ProducingOp::Kind::BatchNormReluDx, o.relu_dy, o.x, coefficients}, dx);
  const Tensor rows = backend.to_host(coefficients);
  return Results{{backend.to_host(dweight), backend.to_host(dbias), host_rows(rows, 0, 4), host_rows(rows, 4, 2),
                  backend.to_host(dx)}};
}

void expect_fused_gives_the_unfused_bits(Backend& backend, const ReluBackwardCase& c) {
  const Results want = unfused(backend, c), got = fused(backend, c);
  for (size_t i = 0; i < want.tensors.size(); ++i)
    EXPECT_TRUE(bitwise_equal(got.tensors[i], want.tensors[i])) << backend.name() << " " << c.name() << ": "
                                                                << want.names[i];
}

std::vector<ReluBackwardCase> cases_for(const std::vector<DType>& dtypes) {
  std::vector<ReluBackwardCase> cases;
  for (const DType dtype : dtypes)
    for (const MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast})
      for (const Shape& shape : {Shape{2, 3, 5, 7}, Shape{4, 16, 6, 6}, Shape{3, 5, 1, 1}, Shape{2, 6, 33, 17}})
        cases.push_back(ReluBackwardCase{dtype, format, shape});
  return cases;
}

TEST(BatchNormReluBackward, CpuGivesTheUnfusedOpsBits) {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  for (const ReluBackwardCase& c : cases_for({DType::F64, DType::F32, DType::BF16, DType::F16}))
    expect_fused_gives_the_unfused_bits(*cpu, c);
}

// The mask rounds y as the forward did: a channel whose y is 1e-8·x passes no gradient at F16,
// where y rounds to 0, and passes dy where x > 0 at F32 and BF16, where it does not.
TEST(BatchNormReluBackward, TheMaskFollowsTheDtypesRoundingOfY) {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  for (const DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    const ReluBackwardCase c{dtype, MemoryFormat::Contiguous, Shape{2, 3, 4, 4}};
    const Results got = fused(*cpu, c);
    const Tensor dbias = got.tensors[1].to(DType::F64);
    const bool rounds_to_zero = dtype == DType::F16;
    EXPECT_EQ(dbias.data<double>()[0] == 0.0, rounds_to_zero) << c.name() << ": channel 0's dbias "
                                                              << dbias.data<double>()[0];
  }
}

TEST(BatchNormReluBackward, GpuGivesTheUnfusedOpsBitsAndTheCpusDx) {
  GpuOptions options = testing::gpu_options_for_tests();
  options.own_f32_batchnorm = true;  // F32 on hookrt's kernels too
  testing::GpuForTests gpu = testing::make_gpu_backend_for_tests(options);
  if (!gpu.backend) GTEST_SKIP() << gpu.reason;
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  for (const ReluBackwardCase& c : cases_for({DType::F32, DType::BF16, DType::F16})) {
    expect_fused_gives_the_unfused_bits(*gpu.backend, c);
    // Given the same coefficients, the elementwise pass is the CPU's, mask and all.
    const Operands o = operands(*gpu.backend, c);
    Tensor dweight, dbias, coefficients;
    gpu.backend->batchnorm_relu_backward_coefficients(o.relu_dy, o.x, o.forward_coefficients, o.weight, o.save_mean,
                                                      o.save_invstd, dweight, dbias, coefficients, kTraining);
    const Operands h = operands(*cpu, c);
    const Tensor host_coefficients = cpu->from_host(gpu.backend->to_host(coefficients));
    Tensor gpu_dx = gpu.backend->empty(c.shape, c.dtype, c.format), cpu_dx = cpu->empty(c.shape, c.dtype, c.format);
    gpu.backend->run_producing_op(ProducingOp{ProducingOp::Kind::BatchNormReluDx, o.relu_dy, o.x, coefficients},
                                  gpu_dx);
    cpu->run_producing_op(ProducingOp{ProducingOp::Kind::BatchNormReluDx, h.relu_dy, h.x, host_coefficients}, cpu_dx);
    EXPECT_TRUE(bitwise_equal(gpu.backend->to_host(gpu_dx), cpu->to_host(cpu_dx))) << c.name();
  }
}

TEST(BatchNormReluBackward, CoefficientsWithoutTheForwardRowsAreRefusedByName) {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  const Shape shape{2, 3, 4, 4};
  const Tensor x = uniform(shape, 7), dy = uniform(shape, 8);
  Tensor dx;
  const std::string message = testing::error_message([&] {
    cpu->run_producing_op(ProducingOp{ProducingOp::Kind::BatchNormReluDx, dy, x, Tensor::zeros({4, 3})}, dx);
  });
  EXPECT_NE(message.find("batchnorm_relu_dx"), std::string::npos) << message;
  EXPECT_NE(message.find("(6, C)"), std::string::npos) << message;
}

}  // namespace
}  // namespace hookrt
