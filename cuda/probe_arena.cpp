// ProbeArena (see probe_arena.h).
#include "probe_arena.h"

#include <algorithm>

#include "host_waits.h"
#include "status.h"

namespace hookrt::cuda {
namespace {

// 64K doubles (512 KiB): a ResNet18 step with several probes on every tensor fits in one block.
constexpr int64_t kFirstBlockDoubles = int64_t{1} << 16;

}  // namespace

ProbeArena::ProbeArena(DeviceMemoryPool& pool, std::shared_ptr<CudaStream> stream)
    : pool_(pool), stream_(std::move(stream)), landed_(CudaEvent::create()) {}

ProbeArena::~ProbeArena() {
  if (!host_) return;
  HOOKRT_CUDA_LOG(cudaStreamSynchronize(stream_->get()));  // a copy into host_ may be in flight
  HOOKRT_CUDA_LOG(cudaFreeHost(host_));
}

void ProbeArena::add_block(int64_t doubles) {
  Block block;
  block.device = pool_.allocate({doubles}, DType::F64);
  block.start = reserved_;
  blocks_.push_back(std::move(block));
}

ProbeArena::Slot ProbeArena::reserve(int64_t doubles) {
  doubles = std::max<int64_t>(doubles, 1);
  if (blocks_.empty()) add_block(std::max(kFirstBlockDoubles, doubles));
  Block* block = &blocks_.back();
  if (block->used + doubles > block->device.numel()) {
    add_block(std::max(block->device.numel() * 2, doubles));
    block = &blocks_.back();
  }
  Slot slot{block->device.data<double>() + block->used, reserved_};
  block->used += doubles;
  reserved_ += doubles;
  return slot;
}

void ProbeArena::ensure_host_capacity(int64_t doubles) {
  if (doubles <= host_capacity_) return;
  if (host_) {
    HOOKRT_CUDA_CHECK(cudaStreamSynchronize(stream_->get()));  // the last copy may still target it
    HOOKRT_CUDA_CHECK(cudaFreeHost(host_));
    host_ = nullptr;
    host_capacity_ = 0;
  }
  const int64_t capacity = std::max(doubles, kFirstBlockDoubles);
  const size_t bytes = static_cast<size_t>(capacity) * sizeof(double);
  HOOKRT_CUDA_CHECK_BYTES(cudaMallocHost(reinterpret_cast<void**>(&host_), bytes), bytes);
  host_capacity_ = capacity;
}

const double* ProbeArena::collect() {
  ensure_host_capacity(reserved_);
  for (const Block& block : blocks_)
    if (block.used > 0)
      HOOKRT_CUDA_CHECK(cudaMemcpyAsync(host_ + block.start, block.device.raw_data(),
                                        static_cast<size_t>(block.used) * sizeof(double), cudaMemcpyDeviceToHost,
                                        stream_->get()));
  landed_.record(stream_->get());
  landed_.synchronize();
  // One block of the whole size for the next step; the old ones go back to the pool in stream
  // order, after the copy above has read them.
  reserved_ = 0;
  if (blocks_.size() > 1) {
    const int64_t total = blocks_.back().start + blocks_.back().device.numel();
    blocks_.clear();
    add_block(total);
  }
  for (Block& block : blocks_) block.used = 0;
  return host_;
}

}  // namespace hookrt::cuda
