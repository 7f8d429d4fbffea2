#pragma once
// Device tensors from a stream-ordered pool, and copies between host and device.
//
// DeviceMemoryPool allocates with cudaMallocFromPoolAsync on one stream from the device's default
// cudaMemPool_t, whose release threshold is raised so that freed blocks stay in the pool and are
// reused by the next allocation instead of going back to the driver (a steady-state step then
// allocates nothing from the driver). A tensor's Storage frees its block with cudaFreeAsync on the
// same stream, so a block is reused only after the work queued before the free has run. Each
// deleter keeps the stream alive, so tensors may outlive the backend that made them.
#include <cuda_runtime.h>

#include <cstddef>
#include <memory>

#include "hookrt/tensor.h"
#include "resources.h"

namespace hookrt::cuda {

class DeviceMemoryPool {
 public:
  // Pools memory of `device` for work on `stream`.
  DeviceMemoryPool(int device, std::shared_ptr<CudaStream> stream);

  // A device tensor with unspecified contents (stream-ordered: valid for work on the stream).
  Tensor allocate(const Shape& shape, DType dtype);
  // Raw stream-ordered bytes whose Storage frees them; for workspaces and scratch.
  std::shared_ptr<Storage> allocate_bytes(size_t bytes);

  cudaStream_t stream() const { return stream_->get(); }

  // Throws Error when the stream is being recorded into a graph: `what`, a buffer kept across
  // steps, must grow, and memory allocated while recording belongs to the recording.
  void refuse_growth_while_recording(const char* what) const;
  // Gives the blocks the pool keeps cached back to the driver (after a step was recorded as a
  // graph, whose temporaries live in the graph's own memory from then on).
  void release_cached();

 private:
  cudaMemPool_t pool_ = nullptr;
  std::shared_ptr<CudaStream> stream_;
};

// Host <-> device copies on one stream through a reusable pinned staging buffer: pageable memory
// cannot be copied asynchronously, and one pinned buffer is far cheaper than pinning every tensor.
// Large copies go through the buffer in chunks.
class HostTransfer {
 public:
  explicit HostTransfer(std::shared_ptr<CudaStream> stream);
  ~HostTransfer();
  HostTransfer(const HostTransfer&) = delete;
  HostTransfer& operator=(const HostTransfer&) = delete;

  // Copies `bytes` from device to host; returns when the host bytes are written.
  void to_host(const void* device_src, void* host_dst, size_t bytes);
  // Queues a copy of `bytes` from host to device; the host bytes may change as soon as it returns.
  void from_host(const void* host_src, void* device_dst, size_t bytes);

 private:
  void* staging_ = nullptr;  // pinned host memory, one chunk (8 MiB)
  std::shared_ptr<CudaStream> stream_;
  CudaEvent staging_free_;  // recorded after the last copy out of the staging buffer
};

}  // namespace hookrt::cuda
