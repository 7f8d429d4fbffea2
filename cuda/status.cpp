// Status descriptions and the Error text for failed CUDA, cuDNN and cuBLAS calls.
#include "status.h"

#include <cstdio>
#include <string>

#include "hookrt/error.h"

namespace hookrt::cuda {
namespace {

std::string mebibytes(size_t bytes) {
  char text[64];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return text;
}

// "; N bytes were requested; X MiB of Y MiB are free" for out-of-memory failures. Reading the free
// memory is itself a runtime call that may fail; then the message says so instead.
std::string memory_context(size_t requested_bytes) {
  std::string text;
  if (requested_bytes > 0)
    text += "; " + std::to_string(requested_bytes) + " bytes (" + mebibytes(requested_bytes) + ") were requested";
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
    text += "; " + mebibytes(free_bytes) + " of " + mebibytes(total_bytes) + " are free on the device";
  } else {
    cudaGetLastError();  // leave no sticky error behind from the query
    text += "; the free device memory could not be read";
  }
  return text;
}

std::string describe_call(const StatusInfo& info, const CallSite& site) {
  return std::string(info.library) + " call `" + site.call + "` failed at " + site.file + ":" +
         std::to_string(site.line) + ": " + info.text;
}

}  // namespace

StatusInfo describe_status(cudaError_t status) {
  return StatusInfo{status == cudaSuccess, status == cudaErrorMemoryAllocation, "CUDA", cudaGetErrorString(status)};
}

StatusInfo describe_status(cudnnStatus_t status) {
  return StatusInfo{status == CUDNN_STATUS_SUCCESS, status == CUDNN_STATUS_ALLOC_FAILED, "cuDNN",
                    cudnnGetErrorString(status)};
}

StatusInfo describe_status(cublasStatus_t status) {
  return StatusInfo{status == CUBLAS_STATUS_SUCCESS, status == CUBLAS_STATUS_ALLOC_FAILED, "cuBLAS",
                    cublasGetStatusString(status)};
}

void throw_status(const StatusInfo& info, const CallSite& site, size_t requested_bytes) {
  std::string message = describe_call(info, site);
  if (info.out_of_memory) message += memory_context(requested_bytes);
  throw Error(message);
}

void log_status(const StatusInfo& info, const CallSite& site) noexcept {
  std::fprintf(stderr, "hookrt: %s call `%s` failed at %s:%d: %s (ignored: it ran during cleanup)\n", info.library,
               site.call, site.file, site.line, info.text);
}

}  // namespace hookrt::cuda
