// `hookrt info`: build configuration, devices found, and which backend auto picks and why.
#include <iostream>

#include "cli/commands.h"
#include "hookrt/devices.h"

namespace hookrt::cli {

static void print_info() {
  const BuildInfo build = build_info();
  std::cout << "hookrt " << build.version << "\n";
  std::cout << "  CPU backend     : yes (" << build.blas << ", OpenMP " << (build.openmp ? "on" : "off") << ")\n";
  if (build.cuda_compiled) {
    std::cout << "  CUDA compiled in: yes (CUDA runtime " << build.cuda_runtime << ", cuDNN " << build.cudnn
              << ", cuBLAS " << build.cublas << ")\n";
  } else {
    std::cout << "  CUDA compiled in: no\n";
  }
  const GpuScan scan = scan_gpus();
  std::cout << "  GPUs            : ";
  if (scan.gpus.empty()) {
    std::cout << "none (" << scan.problem << ")\n";
  } else {
    std::cout << scan.gpus.size() << "\n";
    for (const GpuInfo& gpu : scan.gpus)
      std::cout << "    [" << gpu.index << "] " << gpu.name << ", compute " << gpu.compute_major << "."
                << gpu.compute_minor << ", " << (gpu.memory_bytes >> 20) << " MiB\n";
  }
  const BackendSelection selection = select_backend(DeviceChoice::Auto);
  std::cout << "  --device auto   : " << selection.backend->name() << " (" << selection.reason << ")\n";
}

void add_info_command(CLI::App& app, int& status) {
  CLI::App* info = app.add_subcommand("info", "Build configuration, devices found, and which backend auto picks");
  info->callback([&status] {
    print_info();
    status = 0;
  });
}

}  // namespace hookrt::cli
