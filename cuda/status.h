#pragma once
// One status check for the three libraries the CUDA backend calls: the CUDA runtime, cuDNN and
// cuBLAS. HOOKRT_CUDA_CHECK(call) throws hookrt::Error naming the call's text, file:line and the
// library's own error string; an out-of-memory status also says how much device memory is free.
// HOOKRT_CUDA_CHECK_BYTES(call, bytes) is the same for allocations, naming the bytes asked for.
// HOOKRT_CUDA_LOG(call) only logs, for destructors and other places that must not throw.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>

namespace hookrt::cuda {

// What a library status says, in one shape for all three libraries.
struct StatusInfo {
  bool ok = true;
  bool out_of_memory = false;
  const char* library = "";
  const char* text = "";
};

StatusInfo describe_status(cudaError_t status);
StatusInfo describe_status(cudnnStatus_t status);
StatusInfo describe_status(cublasStatus_t status);

// Where a checked call was made and what it was.
struct CallSite {
  const char* call;
  const char* file;
  int line;
};

// Throws Error for a failed status; `requested_bytes` (0 when unknown) is named for out-of-memory.
[[noreturn]] void throw_status(const StatusInfo& info, const CallSite& site, size_t requested_bytes);
// Writes a failed status to stderr; never throws.
void log_status(const StatusInfo& info, const CallSite& site) noexcept;

template <class Status>
inline void check_status(Status status, const CallSite& site, size_t requested_bytes = 0) {
  const StatusInfo info = describe_status(status);
  if (!info.ok) throw_status(info, site, requested_bytes);
}

template <class Status>
inline void log_if_failed(Status status, const CallSite& site) noexcept {
  const StatusInfo info = describe_status(status);
  if (!info.ok) log_status(info, site);
}

}  // namespace hookrt::cuda

#define HOOKRT_CUDA_CHECK(call) \
  ::hookrt::cuda::check_status((call), ::hookrt::cuda::CallSite{#call, __FILE__, __LINE__})
#define HOOKRT_CUDA_CHECK_BYTES(call, bytes) \
  ::hookrt::cuda::check_status((call), ::hookrt::cuda::CallSite{#call, __FILE__, __LINE__}, (bytes))
#define HOOKRT_CUDA_LOG(call) \
  ::hookrt::cuda::log_if_failed((call), ::hookrt::cuda::CallSite{#call, __FILE__, __LINE__})
