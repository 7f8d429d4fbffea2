// CaptureRing (see capture_ring.h).
#include "capture_ring.h"

#include <cstring>
#include <string>

#include "status.h"

namespace hookrt::cuda {
namespace {

constexpr size_t kAlignment = 256;  // each capture starts on its own aligned offset

size_t aligned(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

CaptureRing::CaptureRing(std::shared_ptr<CudaStream> stream, HostTransfer& transfer, size_t bytes)
    : stream_(std::move(stream)), transfer_(transfer), bytes_(bytes), landed_(CudaEvent::create()) {
  HOOKRT_CUDA_CHECK_BYTES(cudaMallocHost(reinterpret_cast<void**>(&ring_), bytes_), bytes_);
}

CaptureRing::~CaptureRing() {
  HOOKRT_CUDA_LOG(cudaStreamSynchronize(stream_->get()));  // copies into the ring may be in flight
  HOOKRT_CUDA_LOG(cudaFreeHost(ring_));
}

void CaptureRing::push(const Tensor& device, Tensor host) {
  const size_t bytes = device.nbytes();
  if (host.nbytes() != bytes)
    throw Error("capture: host tensor of " + std::to_string(host.nbytes()) + " bytes for a device tensor of " +
                std::to_string(bytes));
  if (bytes == 0) return;
  if (bytes > bytes_) {
    transfer_.to_host(device.raw_data(), host.raw_data(), bytes);  // waits; larger than the whole ring
    return;
  }
  if (head_ + bytes > bytes_) drain();  // the producer waits for the consumer: nothing is dropped
  HOOKRT_CUDA_CHECK(
      cudaMemcpyAsync(ring_ + head_, device.raw_data(), bytes, cudaMemcpyDeviceToHost, stream_->get()));
  in_flight_.push_back({std::move(host), head_});
  head_ += aligned(bytes);
}

void CaptureRing::drain() {
  if (in_flight_.empty()) return;
  landed_.record(stream_->get());
  landed_.synchronize();
  for (InFlight& capture : in_flight_) std::memcpy(capture.host.raw_data(), ring_ + capture.offset, capture.host.nbytes());
  in_flight_.clear();
  head_ = 0;
}

}  // namespace hookrt::cuda
