// Page-locked batches (Backend::empty_host) on the GPU: they upload with one asynchronous copy and
// no host wait, a recycled block is not overwritten while a copy still reads it, and ordinary
// host memory still goes through the staging buffer. Skips where no GPU is usable; on the CPU,
// empty_host is plain host memory.
#include <gtest/gtest.h>

#include "hookrt/backend.h"
#include "hookrt/devices.h"
#include "support/gpu.h"

#if HOOKRT_WITH_CUDA
#include "host_waits.h"
#endif

namespace hookrt {
namespace {

Tensor filled(Backend& backend, const Shape& shape, float value) {
  Tensor t = backend.empty_host(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = value + static_cast<float>(i % 7);
  return t;
}

void expect_values(const Tensor& host, float value) {
  for (int64_t i = 0; i < host.numel(); ++i) ASSERT_EQ(host.data<float>()[i], value + static_cast<float>(i % 7)) << i;
}

TEST(PinnedUpload, OnTheCpuEmptyHostIsPlainHostMemory) {
  auto cpu = select_backend(DeviceChoice::Cpu, {}).backend;
  Tensor t = cpu->empty_host({2, 3});
  EXPECT_EQ(t.device(), Device::CPU);
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
}

#if HOOKRT_WITH_CUDA
TEST(PinnedUpload, APageLockedBatchUploadsWithoutAHostWait) {
  HOOKRT_GPU_OR_SKIP(gpu);
  gpu->synchronize();
  const Tensor host = filled(*gpu, {64, 3, 32, 32}, 1.0f);
  const uint64_t waits = cuda::host_waits();
  const Tensor device = gpu->from_host(host);
  EXPECT_EQ(cuda::host_waits(), waits) << "the upload of a page-locked batch waited for the device";
  expect_values(gpu->to_host(device), 1.0f);
}

// 48 MiB: larger than the staging buffer, so a copy in flight takes long enough to be overrun if
// the pool handed the block out again before the copy's fence.
TEST(PinnedUpload, ARecycledBlockWaitsForTheCopyStillReadingIt) {
  HOOKRT_GPU_OR_SKIP(gpu);
  const Shape shape{16, 3, 512, 512};
  Tensor first = filled(*gpu, shape, 1.0f);
  const void* block = first.raw_data();
  const Tensor device = gpu->from_host(first);
  first = Tensor();  // back to the pool while the copy may still run
  const Tensor second = filled(*gpu, shape, 5.0f);
  EXPECT_EQ(second.raw_data(), block) << "the pool did not recycle the block";
  expect_values(gpu->to_host(device), 1.0f);
}

TEST(PinnedUpload, OrdinaryHostMemoryStillUploads) {
  HOOKRT_GPU_OR_SKIP(gpu);
  Tensor host = Tensor::empty({1000});
  for (int64_t i = 0; i < host.numel(); ++i) host.data<float>()[i] = 2.0f + static_cast<float>(i % 7);
  expect_values(gpu->to_host(gpu->from_host(host)), 2.0f);
  // copy() from a page-locked tensor takes the same direct path.
  Tensor pinned = filled(*gpu, {4, 250}, 3.0f);
  Tensor device = gpu->empty({1000});
  gpu->copy(pinned, device);
  expect_values(gpu->to_host(device), 3.0f);
}
#else
TEST(PinnedUpload, OnTheGpuNeedsTheCudaBackend) { GTEST_SKIP() << "hookrt was built without the CUDA backend"; }
#endif

}  // namespace
}  // namespace hookrt
