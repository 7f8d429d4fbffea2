// Tensors past what one cuDNN call takes: cuDNN's legacy API counts a tensor's elements in 32-bit
// ints, so a convolution over a larger batch runs as calls over slices of the batch, and an F32
// batch norm over one runs on hookrt's own kernels, as PyTorch's cuDNN path does. Past 2^31
// elements the CPU reference cannot follow, so these tests lower the limit
// (GpuOptions::max_cudnn_call_elements) and hold the sliced calls to the CPU reference and to the
// calls they are made of. GPU tests: they skip, saying why, without a GPU.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "support/gpu.h"
#include "support/gpu_op_cases.h"
#include "support/gpu_ops.h"
#include "test_gpu_half_tolerance.h"

namespace hookrt {
namespace {

using namespace testing::gpu_ops;
using testing::GpuForTests;

GpuForTests gpu_with_cudnn_calls_of(int64_t elements) {
  GpuOptions options = testing::gpu_options_for_tests();
  options.max_cudnn_call_elements = elements;
  return testing::make_gpu_backend_for_tests(options);
}

// 5 images of 4x8x8 in and out (256 elements each): within 600 elements a call, slices of 2, 2
// and 1 images. An image is 512 bytes even at 16 bits, so every slice starts as aligned as the
// batch, as at 224²: cuDNN may pick its kernel by a pointer's alignment.
const ConvCase kSliced{"Sliced_5x4x8x8_to4_3x3", 5, 4, 8, 8, 4, 3, 3, 1, 1};
constexpr int64_t kSliceLimit = 600;
struct Slice {
  int64_t first, images;
};
const std::vector<Slice> kSlices = {{0, 2}, {2, 2}, {4, 1}};

// Images [first, first + images) of a host batch.
Tensor images_of(const Tensor& batch, const Slice& s) {
  Shape shape = batch.shape();
  shape[0] = s.images;
  Tensor part = Tensor::empty(shape, batch.dtype());
  const size_t image_bytes =
      static_cast<size_t>(batch.numel() / batch.size(0)) * dtype_size(batch.dtype());
  std::memcpy(part.raw_data(), static_cast<const char*>(batch.raw_data()) + s.first * image_bytes,
              s.images * image_bytes);
  return part;
}

// Both layouts the GPU convolves in; the CPU reference runs NCHW. N is outermost in either, so a
// slice of the batch is a run of whole images.
constexpr MemoryFormat kLayouts[] = {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast};

MemoryFormat run_layout(OpRun& run, MemoryFormat gpu) {
  return run.backend().device() == Device::CUDA ? gpu : MemoryFormat::Contiguous;
}
// A host NCHW tensor on the run's backend in its layout, and a guarded output seen in it.
Tensor input_in(OpRun& run, const Tensor& host, MemoryFormat gpu) {
  return run.input(host.to_memory_format(run_layout(run, gpu)));
}
Tensor output_in(OpRun& run, const Tensor& t, MemoryFormat gpu) {
  return Tensor(t.storage(), t.shape(), t.dtype(), t.byte_offset(), run_layout(run, gpu));
}

Tolerance conv_tolerance(DType dtype, int64_t terms, const Tensor& a, const Tensor& b) {
  if (dtype == DType::F32) return kConvolution;
  return half_tolerance(
      dtype, f32_sums_may_differ_by(terms, max_abs(a) * max_abs(b)),
      "half outputs of F32 sums in two orders: one half step plus the F32 order's difference");
}

TEST(GpuCudnnCallLimits, ConvolutionsOverBatchSlicesMatchCpuInEveryDtype) {
  GpuForTests sliced = gpu_with_cudnn_calls_of(kSliceLimit);
  if (!sliced.backend) GTEST_SKIP() << sliced.reason;
  const ConvCase& c = kSliced;
  for (MemoryFormat layout : kLayouts)
    for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
      SCOPED_TRACE(memory_format_name(layout) + " " + dtype_name(dtype));
      const Tensor x = uniform(c.x(), 1).to(dtype), w = uniform(c.weight(), 2).to(dtype);
      const Tensor dy = uniform(c.y(), 3).to(dtype);
      const Tolerance y_tolerance = conv_tolerance(dtype, c.c * c.r * c.s, x, w);
      const Tolerance dx_tolerance = conv_tolerance(dtype, c.k * c.r * c.s, dy, w);
      expect_gpu_matches_cpu(*sliced.backend, [&](OpRun& run) {
        Tensor y = output_in(run, run.allocated_output(c.y(), dtype), layout);
        Tensor dx = output_in(run, run.allocated_output(c.x(), dtype), layout);
        const Tensor w_in = input_in(run, w, layout);
        run.backend().conv2d_forward(input_in(run, x, layout), w_in, y, c.geometry());
        run.backend().conv2d_backward_data(input_in(run, dy, layout), w_in, dx, c.geometry());
        return Results{{"y", run.result(y), y_tolerance}, {"dx", run.result(dx), dx_tolerance}};
      });
    }
}

// F32: each slice's dw added into dw by cuDNN (beta 1), in F32 like the CPU's one sum.
TEST(GpuCudnnCallLimits, F32FilterGradientOverBatchSlicesMatchesCpu) {
  GpuForTests sliced = gpu_with_cudnn_calls_of(kSliceLimit);
  if (!sliced.backend) GTEST_SKIP() << sliced.reason;
  const ConvCase& c = kSliced;
  const Tensor x = uniform(c.x(), 4), dy = uniform(c.y(), 5);
  for (MemoryFormat layout : kLayouts) {
    SCOPED_TRACE(memory_format_name(layout));
    expect_gpu_matches_cpu(*sliced.backend, [&](OpRun& run) {
      Tensor dw = output_in(run, run.allocated_output(c.weight()), layout);
      run.backend().conv2d_backward_filter(input_in(run, x, layout), input_in(run, dy, layout), dw,
                                           c.geometry());
      return Results{{"dw", run.result(dw), kConvolution}};
    });
  }
}

// BF16 and F16: each slice's dw, as one call on those images gives it, widened to F32, summed
// in slice order and rounded once, bit for bit (PyTorch's F32 accumulator). The tests' backends
// take cuDNN's deterministic heuristic choice, the same algorithm for the same shape.
TEST(GpuCudnnCallLimits, HalfFilterGradientIsTheSlicesGradientsSummedInF32) {
  GpuForTests sliced = gpu_with_cudnn_calls_of(kSliceLimit);
  if (!sliced.backend) GTEST_SKIP() << sliced.reason;
  GpuForTests whole = testing::make_gpu_backend_for_tests();
  ASSERT_TRUE(whole.backend) << whole.reason;
  const ConvCase& c = kSliced;
  Backend& one_call = *whole.backend;
  Backend& in_slices = *sliced.backend;
  for (MemoryFormat layout : kLayouts)
    for (DType half : kHalfDtypes) {
      SCOPED_TRACE(memory_format_name(layout) + " " + dtype_name(half));
      const Tensor x = uniform(c.x(), 6).to(half), dy = uniform(c.y(), 7).to(half);
      const auto on = [&](Backend& gpu, const Tensor& host) {
        return gpu.from_host(host.to_memory_format(layout));
      };
      Tensor sums;  // the first slice's, then each later one's added
      for (const Slice& s : kSlices) {
        Tensor part = one_call.empty(c.weight(), half, layout);
        one_call.conv2d_backward_filter(on(one_call, images_of(x, s)),
                                        on(one_call, images_of(dy, s)), part, c.geometry());
        const Tensor widened = one_call.to_host(part).to(DType::F32);  // NCHW on the host
        if (!sums.defined()) {
          sums = widened;
          continue;
        }
        for (int64_t i = 0; i < sums.numel(); ++i)
          sums.data<float>()[i] += widened.data<float>()[i];
      }
      Tensor dw = in_slices.empty(c.weight(), half, layout);
      in_slices.conv2d_backward_filter(on(in_slices, x), on(in_slices, dy), dw, c.geometry());
      EXPECT_TRUE(same_bytes(in_slices.to_host(dw), sums.to(half)));
    }
}

TEST(GpuCudnnCallLimits, AnImagePastTheLimitIsAnErrorThatSaysSo) {
  GpuForTests sliced = gpu_with_cudnn_calls_of(200);  // one image's input alone has 256 elements
  if (!sliced.backend) GTEST_SKIP() << sliced.reason;
  const ConvCase& c = kSliced;
  Tensor y;
  try {
    sliced.backend->conv2d_forward(sliced.backend->from_host(uniform(c.x(), 8)),
                                   sliced.backend->from_host(uniform(c.weight(), 9)), y,
                                   c.geometry());
    FAIL() << "expected an Error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("more than the 200 a cuDNN call takes"),
              std::string::npos)
        << error.what();
  }
}

// An F32 batch norm past the limit runs on hookrt's kernels: the bits --own-batchnorm gives.
TEST(GpuCudnnCallLimits, F32BatchNormPastTheLimitRunsOnHookrtsKernels) {
  GpuForTests limited = gpu_with_cudnn_calls_of(100);
  if (!limited.backend) GTEST_SKIP() << limited.reason;
  GpuOptions own_options = testing::gpu_options_for_tests();
  own_options.own_f32_batchnorm = true;
  GpuForTests own = testing::make_gpu_backend_for_tests(own_options);
  ASSERT_TRUE(own.backend) << own.reason;
  const Shape shape{3, 5, 4, 6}, channels{5};  // 360 elements
  const Tensor x = uniform(shape, 10), dy = uniform(shape, 11);
  const Tensor weight = uniform(channels, 12, 0.5, 1.5), bias = uniform(channels, 13, -0.5, 0.5);
  const BatchNormOptions options{.mode = BatchNormMode::Training};
  std::vector<Tensor> results[2];
  Backend* backends[2] = {limited.backend.get(), own.backend.get()};
  for (int b = 0; b < 2; ++b) {
    Backend& gpu = *backends[b];
    Tensor running_mean = gpu.from_host(Tensor::zeros(channels)),
           running_var = gpu.from_host(Tensor::zeros(channels));
    Tensor y, mean, invstd, dx = gpu.empty(shape, DType::F32), dweight, dbias;
    const Tensor gx = gpu.from_host(x), gweight = gpu.from_host(weight);
    gpu.batchnorm_forward(gx, gweight, gpu.from_host(bias), running_mean, running_var, y, mean,
                          invstd, options);
    gpu.batchnorm_backward(gpu.from_host(dy), gx, gweight, mean, invstd, dx, dweight, dbias,
                           options);
    for (const Tensor* t : {&y, &mean, &invstd, &running_mean, &running_var, &dx, &dweight, &dbias})
      results[b].push_back(gpu.to_host(*t));
  }
  const char* names[] = {"y",           "save_mean", "save_invstd", "running_mean",
                         "running_var", "dx",        "dweight",     "dbias"};
  for (size_t i = 0; i < results[0].size(); ++i)
    EXPECT_TRUE(same_bytes(results[0][i], results[1][i])) << names[i];
}

}  // namespace
}  // namespace hookrt
