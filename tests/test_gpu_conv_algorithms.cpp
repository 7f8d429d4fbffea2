// Measured convolution algorithms (the CUDA backend's default, as PyTorch's cudnn.benchmark): on
// every convolution shape of ResNet18, forward, backward-data and backward-filter with the
// algorithms cuDNN timed fastest agree with the heuristic ones the other GPU tests use (which are
// held to the CPU reference), and measuring never fell back. Skips where there is no GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "hookrt/backend.h"
#include "hookrt/devices.h"
#include "support/gpu.h"
#include "support/probe_results.h"

namespace hookrt {
namespace {

struct ConvShape {
  int64_t c, k, size;  // input channels, output channels, input height and width
  int kernel;
  Conv2dGeometry g;
};

// Every convolution shape of ResNet18 at 224², batch 4.
const std::vector<ConvShape> kResnet18Convs = {
    {3, 64, 224, 7, {2, 3}},    {64, 64, 56, 3, {1, 1}},    {64, 128, 56, 3, {2, 1}},  {64, 128, 56, 1, {2, 0}},
    {128, 128, 28, 3, {1, 1}},  {128, 256, 28, 3, {2, 1}},  {128, 256, 28, 1, {2, 0}}, {256, 256, 14, 3, {1, 1}},
    {256, 512, 14, 3, {2, 1}},  {256, 512, 14, 1, {2, 0}},  {512, 512, 7, 3, {1, 1}},
};
constexpr int64_t kBatch = 4;

// Algorithms differ in summation order (and FFT and Winograd transform their operands), so the
// two agree to F32 rounding over sums of up to 4608 products, not bit for bit: 1e-4 of the
// output's largest magnitude (normwise, since single elements may cancel to near zero).
constexpr double kNormwiseRel = 1e-4;

Tensor seeded(const Shape& shape, uint64_t seed) { return testing::nasty_tensor(shape, seed, 0.0, 1.0); }

// Finite values only: NaN or Inf would spread through every product of a convolution.
Tensor finite(const Shape& shape, uint64_t seed) {
  Tensor t = seeded(shape, seed);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(p[i])) p[i] = 0.5f;
  return t;
}

void expect_normwise_close(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  double largest = 0, worst = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    largest = std::max(largest, std::fabs(static_cast<double>(want.data<float>()[i])));
    worst = std::max(worst, std::fabs(static_cast<double>(got.data<float>()[i]) - want.data<float>()[i]));
  }
  EXPECT_LE(worst, kNormwiseRel * largest) << what << ": worst difference " << worst << " of largest " << largest;
}

TEST(GpuConvAlgorithms, MeasuredAlgorithmsAgreeWithTheHeuristicOnesOnEveryResnet18Shape) {
  GpuOptions measured_options;
  measured_options.allow_tf32 = false;
  measured_options.measure_conv_algorithms = true;
  auto measured_for_tests = testing::make_gpu_backend_for_tests(measured_options);
  if (!measured_for_tests.backend) GTEST_SKIP() << measured_for_tests.reason;
  Backend& measured = *measured_for_tests.backend;
  HOOKRT_GPU_OR_SKIP(heuristic);

  ::testing::internal::CaptureStderr();
  uint64_t seed = 1;
  for (const ConvShape& s : kResnet18Convs) {
    const int64_t out = (s.size + 2 * s.g.padding - s.kernel) / s.g.stride + 1;
    const Tensor x = finite({kBatch, s.c, s.size, s.size}, seed++);
    const Tensor w = finite({s.k, s.c, s.kernel, s.kernel}, seed++);
    const Tensor dy = finite({kBatch, s.k, out, out}, seed++);
    const std::string what = shape_string(x.shape()) + " * " + shape_string(w.shape()) + " stride " +
                             std::to_string(s.g.stride);
    Tensor results[2][3];  // by backend: y, dx, dw
    Backend* backends[2] = {&measured, heuristic.get()};
    for (int b = 0; b < 2; ++b) {
      Backend& gpu = *backends[b];
      const Tensor device_x = gpu.from_host(x), device_w = gpu.from_host(w), device_dy = gpu.from_host(dy);
      // The gradients come allocated, as the backend's contract asks (with stride 2, dy's size
      // does not say the input's).
      Tensor y, dx = gpu.empty(x.shape()), dw = gpu.empty(w.shape());
      gpu.conv2d_forward(device_x, device_w, y, s.g);
      gpu.conv2d_backward_data(device_dy, device_w, dx, s.g);
      gpu.conv2d_backward_filter(device_x, device_dy, dw, s.g);
      results[b][0] = gpu.to_host(y);
      results[b][1] = gpu.to_host(dx);
      results[b][2] = gpu.to_host(dw);
    }
    expect_normwise_close(results[0][0], results[1][0], "forward " + what);
    expect_normwise_close(results[0][1], results[1][1], "backward-data " + what);
    expect_normwise_close(results[0][2], results[1][2], "backward-filter " + what);
  }
  const std::string notes = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(notes.find("heuristic"), std::string::npos) << "measuring fell back: " << notes;
}

}  // namespace
}  // namespace hookrt
