#pragma once
// CaptureRing — captured tensors on their way to the host. Each capture is copied asynchronously
// into a bounded pinned ring on the compute stream; drain() waits once for the copies in flight and
// moves them into their host tensors. When the ring has no room for the next capture the producer
// drains first (it waits for the device): a slow consumer slows the step down, nothing is dropped.
// A capture larger than the whole ring is copied straight to its host tensor (with a wait).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "hookrt/tensor.h"
#include "memory_pool.h"
#include "resources.h"

namespace hookrt::cuda {

class CaptureRing {
 public:
  CaptureRing(std::shared_ptr<CudaStream> stream, HostTransfer& transfer, size_t bytes);
  ~CaptureRing();
  CaptureRing(const CaptureRing&) = delete;
  CaptureRing& operator=(const CaptureRing&) = delete;

  // Queues a copy of `device` (as it is when the stream reaches this point) into `host`, a host
  // tensor of the same byte size; `host` holds the values once drain() has returned.
  void push(const Tensor& device, Tensor host);
  // Waits for every queued copy and fills the host tensors.
  void drain();
  size_t capacity() const { return bytes_; }

 private:
  struct InFlight {
    Tensor host;
    size_t offset = 0;
  };
  std::shared_ptr<CudaStream> stream_;
  HostTransfer& transfer_;
  size_t bytes_ = 0;
  char* ring_ = nullptr;  // pinned
  size_t head_ = 0;       // next free byte
  std::vector<InFlight> in_flight_;
  CudaEvent landed_;
};

}  // namespace hookrt::cuda
