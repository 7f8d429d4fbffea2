#include "hookrt/devices.h"

#include "cpu/blas_library.h"
#include "cuda_entry.h"

namespace hookrt {

BuildInfo build_info() {
  BuildInfo info;
  info.version = "0.1.0";
  info.blas = cpu::blas_description();
#ifdef _OPENMP
  info.openmp = true;
#endif
  cuda::fill_build_info(info);
  return info;
}

GpuScan scan_gpus() { return cuda::scan_gpus(); }

DeviceChoice parse_device_choice(const std::string& text) {
  if (text == "auto") return DeviceChoice::Auto;
  if (text == "cpu") return DeviceChoice::Cpu;
  if (text == "cuda") return DeviceChoice::Cuda;
  throw_bad_input("unknown device '" + text + "' (expected auto, cpu or cuda)");
}

BackendSelection select_backend(DeviceChoice choice, const GpuOptions& gpu) {
  if (choice == DeviceChoice::Cpu) return {make_cpu_backend(), "--device cpu"};
  const GpuScan scan = scan_gpus();
  std::string problem = scan.problem;
  if (problem.empty()) {
    if (gpu.device < 0 || gpu.device >= static_cast<int>(scan.gpus.size()))
      throw_bad_input("GPU " + std::to_string(gpu.device) + " does not exist (" + std::to_string(scan.gpus.size()) +
                      " found)");
    return {cuda::make_backend(gpu), "GPU " + std::to_string(gpu.device) + ": " + scan.gpus[gpu.device].name};
  }
  if (choice == DeviceChoice::Cuda) throw Error("--device cuda: " + problem);
  return {make_cpu_backend(), "CPU backend: " + problem};
}

}  // namespace hookrt
