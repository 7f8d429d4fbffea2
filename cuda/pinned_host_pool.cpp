#include "pinned_host_pool.h"

#include <algorithm>

#include "status.h"

namespace hookrt::cuda {

PinnedHostPool::~PinnedHostPool() {
  // Only free blocks remain (a tensor's deleter keeps the pool alive); wait for their last uploads.
  for (auto& [bytes, block] : free_) {
    if (block->fence.get()) HOOKRT_CUDA_LOG(cudaEventSynchronize(block->fence.get()));
    HOOKRT_CUDA_LOG(cudaFreeHost(block->data));
  }
}

std::unique_ptr<PinnedHostPool::Block> PinnedHostPool::take_free(size_t bytes) {
  std::lock_guard lock(mutex_);
  auto found = free_.find(bytes);
  if (found == free_.end()) return nullptr;
  std::unique_ptr<Block> block = std::move(found->second);
  free_.erase(found);
  return block;
}

Tensor PinnedHostPool::allocate(const Shape& shape, DType dtype) {
  const size_t bytes = std::max<size_t>(1, static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype));
  std::unique_ptr<Block> block = take_free(bytes);
  if (block && block->fence.get()) block->fence.synchronize();  // its last upload has read it
  if (!block) {
    block = std::make_unique<Block>();
    block->bytes = bytes;
    // Portable: usable from every device's streams, whichever device this thread has current.
    HOOKRT_CUDA_CHECK_BYTES(cudaHostAlloc(&block->data, bytes, cudaHostAllocPortable), bytes);
  }
  auto storage = std::make_shared<Storage>();
  storage->data = block->data;
  storage->bytes = bytes;
  storage->device = Device::CPU;
  storage->deleter = [pool = shared_from_this()](void* data) { pool->release(data); };
  {
    std::lock_guard lock(mutex_);
    in_use_.emplace(static_cast<const char*>(block->data), std::move(block));
  }
  return Tensor(std::move(storage), shape, dtype);
}

void PinnedHostPool::release(void* data) {
  std::lock_guard lock(mutex_);
  auto found = in_use_.find(static_cast<const char*>(data));
  if (found == in_use_.end()) return;
  std::unique_ptr<Block> block = std::move(found->second);
  in_use_.erase(found);
  const size_t bytes = block->bytes;
  free_.emplace(bytes, std::move(block));
}

bool PinnedHostPool::upload(const void* host_src, void* device_dst, size_t bytes, cudaStream_t stream) {
  const char* src = static_cast<const char*>(host_src);
  std::lock_guard lock(mutex_);
  auto after = in_use_.upper_bound(src);
  if (after == in_use_.begin()) return false;
  Block& block = *std::prev(after)->second;
  const char* begin = static_cast<const char*>(block.data);
  if (src < begin || src + bytes > begin + block.bytes) return false;
  HOOKRT_CUDA_CHECK(cudaMemcpyAsync(device_dst, src, bytes, cudaMemcpyHostToDevice, stream));
  if (!block.fence.get()) block.fence = CudaEvent::create();  // on the stream's device (this thread's)
  block.fence.record(stream);
  return true;
}

}  // namespace hookrt::cuda
