// ProbeArena (see probe_arena.h).
#include "probe_arena.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include "hookrt/error.h"
#include "host_waits.h"
#include "status.h"

namespace hookrt::cuda {
namespace {

// 64K doubles (512 KiB): a ResNet18 step with several probes on every tensor fits in one block.
constexpr int64_t kFirstBlockDoubles = int64_t{1} << 16;

}  // namespace

// The pinned buffers, shared by the arena and its landings: a landing may outlive the arena
// (a delivery thread finishing the last step after the backend has gone).
struct ProbeArena::HostBuffers {
  struct Buffer {
    double* data = nullptr;  // pinned
    int64_t capacity = 0;
    CudaEvent landed = CudaEvent::create();  // recorded after the copy into data
    bool held = false;                       // by a Landing
  };
  int device = 0;  // of the stream whose copies land here
  std::mutex mutex;
  std::condition_variable returned;
  Buffer buffers[kHostBuffers];

  HostBuffers() { HOOKRT_CUDA_CHECK(cudaGetDevice(&device)); }

  ~HostBuffers() {
    // No copy is in flight: a buffer comes back only once its copy has landed.
    for (Buffer& buffer : buffers)
      if (buffer.data) HOOKRT_CUDA_LOG(cudaFreeHost(buffer.data));
  }

  // A buffer no landing holds, marked held; waits while every buffer is held.
  int acquire() {
    std::unique_lock lock(mutex);
    auto free_one = [this] { return std::find_if(std::begin(buffers), std::end(buffers), [](const Buffer& b) { return !b.held; }); };
    if (free_one() == std::end(buffers)) {
      count_host_wait();
      returned.wait(lock, [&] { return free_one() != std::end(buffers); });
    }
    Buffer* buffer = free_one();
    buffer->held = true;
    return static_cast<int>(buffer - buffers);
  }

  void release(int index) {
    {
      std::lock_guard lock(mutex);
      buffers[index].held = false;
    }
    returned.notify_one();
  }

  // Grows an idle (held, landed) buffer to `doubles` entries.
  void reserve(int index, int64_t doubles) {
    Buffer& buffer = buffers[index];
    if (doubles <= buffer.capacity) return;
    if (buffer.data) HOOKRT_CUDA_CHECK(cudaFreeHost(buffer.data));
    buffer.data = nullptr;
    buffer.capacity = 0;
    const int64_t capacity = std::max(doubles, kFirstBlockDoubles);
    const size_t bytes = static_cast<size_t>(capacity) * sizeof(double);
    HOOKRT_CUDA_CHECK_BYTES(cudaMallocHost(reinterpret_cast<void**>(&buffer.data), bytes), bytes);
    buffer.capacity = capacity;
  }
};

ProbeArena::ProbeArena(DeviceMemoryPool& pool, std::shared_ptr<CudaStream> stream)
    : pool_(pool), stream_(std::move(stream)), host_(std::make_shared<HostBuffers>()) {}

ProbeArena::~ProbeArena() = default;

void ProbeArena::add_block(int64_t doubles) {
  pool_.refuse_growth_while_recording("the probe results arena");
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

void ProbeArena::queue_copies(double* host) {
  for (const Block& block : blocks_)
    if (block.used > 0)
      HOOKRT_CUDA_CHECK(cudaMemcpyAsync(host + block.start, block.device.raw_data(),
                                        static_cast<size_t>(block.used) * sizeof(double), cudaMemcpyDeviceToHost,
                                        stream_->get()));
}

// One block of the whole size for the next step; the old ones go back to the pool in stream
// order, after the copies have read them.
void ProbeArena::reset_blocks() {
  reserved_ = 0;
  if (blocks_.size() > 1) {
    const int64_t total = blocks_.back().start + blocks_.back().device.numel();
    blocks_.clear();
    add_block(total);
  }
  for (Block& block : blocks_) block.used = 0;
}

void ProbeArena::reserve_as_recorded(int64_t doubles) {
  if (doubles == 0) return;
  if (reserved_ != 0 || blocks_.size() != 1 || blocks_.front().device.numel() < doubles)
    throw Error("internal: a replayed step's probe slots (" + std::to_string(doubles) +
                " entries) are not the arena's as recorded");
  blocks_.front().used = doubles;
  reserved_ = doubles;
}

std::unique_ptr<ProbeArena::Landing> ProbeArena::seal() {
  const int index = host_->acquire();
  auto landing = std::make_unique<Landing>(host_, index);  // hands the buffer back if we throw
  HostBuffers::Buffer& buffer = host_->buffers[index];
  host_->reserve(index, reserved_);
  queue_copies(buffer.data);
  buffer.landed.record(stream_->get());
  reset_blocks();
  return landing;
}

const double* ProbeArena::Landing::wait() {
  HostBuffers::Buffer& buffer = buffers_->buffers[index_];
  if (!landed_) {
    // The waiting thread (a delivery thread) may not have made the device current; without it
    // the runtime would set up a context on device 0 for it.
    HOOKRT_CUDA_CHECK(cudaSetDevice(buffers_->device));
    buffer.landed.synchronize();
    landed_ = true;
  }
  return buffer.data;
}

ProbeArena::Landing::~Landing() {
  // A landing dropped unread (a step that failed) may still have its copy in flight.
  if (!landed_) HOOKRT_CUDA_LOG(cudaEventSynchronize(buffers_->buffers[index_].landed.get()));
  buffers_->release(index_);
}

}  // namespace hookrt::cuda
