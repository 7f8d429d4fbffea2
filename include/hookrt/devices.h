#pragma once
// Devices — what this build contains, which GPUs are present, and choosing a backend for
// `--device auto|cpu|cuda`.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hookrt/backend.h"

namespace hookrt {

struct BuildInfo {
  std::string version;
  bool cuda_compiled = false;
  std::string cuda_runtime;  // versions compiled in, "" without CUDA
  std::string cudnn;
  std::string cublas;
  std::string blas;
  bool openmp = false;
};
BuildInfo build_info();

struct GpuInfo {
  int index = 0;
  std::string name;
  int compute_major = 0, compute_minor = 0;
  uint64_t memory_bytes = 0;
};

struct GpuScan {
  std::vector<GpuInfo> gpus;
  std::string problem;  // why none are usable ("" when some are)
};
// Asks the CUDA runtime for devices; without the CUDA backend compiled in, says so.
GpuScan scan_gpus();

enum class DeviceChoice { Auto, Cpu, Cuda };

// How the CUDA backend computes, where it is chosen.
struct GpuOptions {
  int device = 0;
  // TF32 tensor cores for convolutions, PyTorch's default (torch.backends.cudnn.allow_tf32); off
  // (`--no-tf32`) keeps full F32 products, as parity tests against the CPU reference need.
  bool allow_tf32 = true;
  // TF32 for the linear layer's GEMMs too (torch.backends.cuda.matmul.allow_tf32, which PyTorch
  // leaves off); only where allow_tf32 is on.
  bool allow_tf32_matmul = false;
  // Convolution algorithms timed on their first call of each shape, the fastest kept (PyTorch's
  // torch.backends.cudnn.benchmark = True); off: cuDNN's heuristic ranking, the same algorithms
  // on every run.
  bool measure_conv_algorithms = true;
  // Only convolution algorithms that give the same bits on every run (PyTorch's
  // torch.backends.cudnn.deterministic = True): some of cuDNN's backward algorithms add with
  // atomics, in whatever order the threads arrive. hookrt's own kernels and cuBLAS are
  // deterministic on one GPU either way.
  bool deterministic = false;
  // F32 batch norms on hookrt's own kernels, as BF16 and F16 ones always are, rather than cuDNN's
  // one call: they then run in two parts, so that probes on a convolution's output and on a batch
  // norm's output and gradient run in the batch norm's own passes (see Backend::splits_batchnorm).
  // Off by default until the device check says which is faster.
  bool own_f32_batchnorm = false;
  // The most elements a tensor of one cuDNN call may hold: cuDNN's legacy API counts them in
  // 32-bit ints. A convolution over a larger batch runs as calls over slices of it, and an F32
  // batch norm over one runs on hookrt's kernels, as PyTorch's cuDNN path does. Lowered only to
  // test those paths on small tensors.
  int64_t max_cudnn_call_elements = INT32_MAX;
};
DeviceChoice parse_device_choice(const std::string& text);  // throws Error(BadInput)

struct BackendSelection {
  std::unique_ptr<Backend> backend;
  std::string reason;  // why this backend, for `info` and the auto note
};
// Cpu: the CPU backend. Cuda: the CUDA backend, or Error (Runtime) saying why there is none.
// Auto: the CUDA backend when it is built and a GPU is present, else the CPU with the reason.
BackendSelection select_backend(DeviceChoice choice, const GpuOptions& gpu = {});

}  // namespace hookrt
