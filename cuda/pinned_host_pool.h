#pragma once
// PinnedHostPool — page-locked host tensors for data loaders, recycled by size, so that a batch is
// uploaded with one asynchronous copy instead of going through the staging buffer (a host memcpy
// and a wait per 8 MiB chunk). Loader threads allocate and fill batches while the GPU computes.
//
// A block that an upload reads from carries a fence, an event recorded after the copy. A freed
// block is handed out again only once its fence has passed, so a loader thread never overwrites
// bytes a copy is still reading; that wait happens on the loader's thread, not the executor's.
// Thread-safe. Each tensor's deleter keeps the pool alive.
#include <cuda_runtime.h>

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>

#include "hookrt/tensor.h"
#include "resources.h"

namespace hookrt::cuda {

class PinnedHostPool : public std::enable_shared_from_this<PinnedHostPool> {
 public:
  static std::shared_ptr<PinnedHostPool> create() { return std::shared_ptr<PinnedHostPool>(new PinnedHostPool()); }
  ~PinnedHostPool();
  PinnedHostPool(const PinnedHostPool&) = delete;
  PinnedHostPool& operator=(const PinnedHostPool&) = delete;

  // A host tensor in page-locked memory, unspecified contents.
  Tensor allocate(const Shape& shape, DType dtype);
  // When [host_src, host_src + bytes) lies in a block of this pool that a tensor holds, queues the
  // copy to device_dst on `stream`, fences the block and returns true; otherwise returns false
  // (the caller copies through its staging buffer). Call on a thread whose device is the stream's.
  bool upload(const void* host_src, void* device_dst, size_t bytes, cudaStream_t stream);

 private:
  struct Block {
    void* data = nullptr;
    size_t bytes = 0;
    CudaEvent fence;  // recorded after the last upload from the block; empty before the first
  };
  PinnedHostPool() = default;
  std::unique_ptr<Block> take_free(size_t bytes);
  void release(void* data);

  std::mutex mutex_;
  std::multimap<size_t, std::unique_ptr<Block>> free_;      // by size
  std::map<const char*, std::unique_ptr<Block>> in_use_;     // by address, for range lookups
};

}  // namespace hookrt::cuda
