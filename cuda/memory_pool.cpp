// DeviceMemoryPool and HostTransfer (see memory_pool.h).
#include "memory_pool.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "hookrt/error.h"
#include "status.h"

namespace hookrt::cuda {
namespace {

// 8 MiB: large enough that the per-chunk launch and sync cost is small next to the copy.
constexpr size_t kChunkBytes = size_t{8} << 20;

}  // namespace

DeviceMemoryPool::DeviceMemoryPool(int device, std::shared_ptr<CudaStream> stream) : stream_(std::move(stream)) {
  HOOKRT_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool_, device));
  // Keep every freed block: the pool then serves each step's allocations from the last step's.
  uint64_t threshold = std::numeric_limits<uint64_t>::max();
  HOOKRT_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &threshold));
}

std::shared_ptr<Storage> DeviceMemoryPool::allocate_bytes(size_t bytes) {
  auto storage = std::make_shared<Storage>();
  storage->device = Device::CUDA;
  storage->bytes = bytes;
  if (bytes == 0) return storage;
  HOOKRT_CUDA_CHECK_BYTES(cudaMallocFromPoolAsync(&storage->data, bytes, pool_, stream_->get()), bytes);
  std::shared_ptr<CudaStream> stream = stream_;
  storage->deleter = [stream](void* data) {
    const cudaError_t status = cudaFreeAsync(data, stream->get());
    // A tensor outliving the CUDA runtime at process exit has nothing left to free; one made by a
    // recording that failed is the recording's, dropped with it.
    if (status == cudaErrorCudartUnloading || status == cudaErrorStreamCaptureInvalidated) return;
    log_if_failed(status, CallSite{"cudaFreeAsync(data, stream)", __FILE__, __LINE__});
  };
  return storage;
}

void DeviceMemoryPool::refuse_growth_while_recording(const char* what) const {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  HOOKRT_CUDA_CHECK(cudaStreamIsCapturing(stream_->get(), &status));
  if (status != cudaStreamCaptureStatusNone)
    throw Error(std::string(what) + " must grow while the step is recorded as a graph (a step of the same "
                "kind run before it should have sized it)");
}

void DeviceMemoryPool::release_cached() { HOOKRT_CUDA_CHECK(cudaMemPoolTrimTo(pool_, 0)); }

Tensor DeviceMemoryPool::allocate(const Shape& shape, DType dtype) {
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  return Tensor(allocate_bytes(bytes), shape, dtype);
}

HostTransfer::HostTransfer(std::shared_ptr<CudaStream> stream)
    : stream_(std::move(stream)), staging_free_(CudaEvent::create()) {
  staging_free_.record(stream_->get());  // first: nothing may throw once the buffer is held
  HOOKRT_CUDA_CHECK_BYTES(cudaMallocHost(&staging_, kChunkBytes), kChunkBytes);
}

HostTransfer::~HostTransfer() {
  // The last from_host chunk may still be reading the buffer.
  HOOKRT_CUDA_LOG(cudaEventSynchronize(staging_free_.get()));
  HOOKRT_CUDA_LOG(cudaFreeHost(staging_));
}

void HostTransfer::to_host(const void* device_src, void* host_dst, size_t bytes) {
  const auto* src = static_cast<const char*>(device_src);
  auto* dst = static_cast<char*>(host_dst);
  for (size_t done = 0; done < bytes; done += kChunkBytes) {
    const size_t chunk = std::min(kChunkBytes, bytes - done);
    HOOKRT_CUDA_CHECK(cudaMemcpyAsync(staging_, src + done, chunk, cudaMemcpyDeviceToHost, stream_->get()));
    staging_free_.record(stream_->get());
    staging_free_.synchronize();
    std::memcpy(dst + done, staging_, chunk);
  }
}

void HostTransfer::from_host(const void* host_src, void* device_dst, size_t bytes) {
  const auto* src = static_cast<const char*>(host_src);
  auto* dst = static_cast<char*>(device_dst);
  for (size_t done = 0; done < bytes; done += kChunkBytes) {
    const size_t chunk = std::min(kChunkBytes, bytes - done);
    staging_free_.synchronize();  // the previous chunk has left the buffer
    std::memcpy(staging_, src + done, chunk);
    HOOKRT_CUDA_CHECK(cudaMemcpyAsync(dst + done, staging_, chunk, cudaMemcpyHostToDevice, stream_->get()));
    staging_free_.record(stream_->get());
  }
}

}  // namespace hookrt::cuda
