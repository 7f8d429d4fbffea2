// Build and device information from the CUDA runtime, cuDNN and cuBLAS. Safe on machines without a
// GPU or driver: every failure becomes the scan's `problem` text.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <string>

#include "cuda_backend.h"
#include "cuda_entry.h"

namespace hookrt::cuda {

static std::string version_string(int encoded_major_times_1000) {
  return std::to_string(encoded_major_times_1000 / 1000) + "." + std::to_string((encoded_major_times_1000 % 1000) / 10);
}

void fill_build_info(BuildInfo& info) {
  info.cuda_compiled = true;
  info.cuda_runtime = version_string(CUDART_VERSION);
  info.cudnn = std::to_string(CUDNN_MAJOR) + "." + std::to_string(CUDNN_MINOR) + "." + std::to_string(CUDNN_PATCHLEVEL);
  info.cublas = std::to_string(CUBLAS_VER_MAJOR) + "." + std::to_string(CUBLAS_VER_MINOR) + "." +
                std::to_string(CUBLAS_VER_PATCH);
}

GpuScan scan_gpus() {
  GpuScan scan;
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    scan.problem = std::string("no usable GPU: cudaGetDeviceCount failed: ") + cudaGetErrorString(status);
    cudaGetLastError();  // reset the runtime's last-error state so later calls start clean
    return scan;
  }
  if (count == 0) {
    scan.problem = "no usable GPU: the CUDA runtime found no devices";
    return scan;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    scan.gpus.push_back({i, prop.name, prop.major, prop.minor, static_cast<uint64_t>(prop.totalGlobalMem)});
  }
  if (scan.gpus.empty()) scan.problem = "no usable GPU: device properties could not be read";
  return scan;
}

std::unique_ptr<Backend> make_backend(const GpuOptions& options) {
  CudaBackendOptions backend_options;
  backend_options.device = options.device;
  backend_options.allow_tf32 = options.allow_tf32;
  backend_options.allow_tf32_matmul = options.allow_tf32 && options.allow_tf32_matmul;
  backend_options.conv_algorithms =
      options.measure_conv_algorithms ? ConvAlgorithmChoice::Measured : ConvAlgorithmChoice::Heuristic;
  backend_options.deterministic_conv = options.deterministic;
  backend_options.own_f32_batchnorm = options.own_f32_batchnorm;
  backend_options.max_cudnn_call_elements = options.max_cudnn_call_elements;
  return std::make_unique<CudaBackend>(backend_options);
}

}  // namespace hookrt::cuda
