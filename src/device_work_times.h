#pragma once
// Device time by kind of work: how long the GPU spent in each kernel (grouped by the kernel's
// name, without template arguments or parameters, so that one kernel's instantiations and
// cuDNN's many tile variants of one algorithm stay apart only where their names differ) and in
// memcpys and memsets. `hookrt bench` records it for one step of each variant, so that where the
// hooked step's extra time goes is read from the run itself, kernel by kernel, rather than
// guessed from totals. Host code: the CUDA backend's launch counter fills it from CUPTI's records.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace hookrt {

struct DeviceWorkTime {
  std::string name;  // a kernel's family (kernel_family), or "memcpy" or "memset"
  int64_t items = 0;
  double ms = 0;
};

// A kernel's symbol as CUPTI names it (mangled, or plain for extern "C" kernels) reduced to its
// qualified name: demangled, without return type, template arguments, parameters or
// "(anonymous namespace)::". A library's generic entry point (a name ending in ::Kernel,
// ::Kernel2, ::kernel or ::device_kernel, as CUTLASS's and cuDNN's templated kernels are named)
// keeps its first template argument without that argument's own arguments, since that is where
// it says what it runs: "xmma_cudnn::gemm::kernel<xmma_cudnn::implicit_gemm::wgrad_indexed::
// Kernel_traits>". A name that does not demangle is kept as it is.
std::string kernel_family(std::string_view symbol);

// Sums work items into their names.
class DeviceWorkTimes {
 public:
  void add(const std::string& name, double ms, int64_t items = 1);
  void add(const DeviceWorkTimes& other);
  // Every name, most time first (ties by name, so the order is the same on every run).
  std::vector<DeviceWorkTime> by_time() const;
  bool empty() const { return times_.empty(); }

 private:
  std::map<std::string, DeviceWorkTime> times_;
};

double total_ms(const std::vector<DeviceWorkTime>& times);

// One name's time in two runs of the same work with a change between them (absent: zero).
struct DeviceWorkChange {
  std::string name;
  DeviceWorkTime before, after;
  double delta_ms() const { return after.ms - before.ms; }
};

// The `count` names whose time changed most from `before` to `after`, either way: largest growth
// first, savings last (ties in name order), so that a change that saves time shows too.
std::vector<DeviceWorkChange> largest_changes(const std::vector<DeviceWorkTime>& before,
                                              const std::vector<DeviceWorkTime>& after, size_t count);

}  // namespace hookrt
