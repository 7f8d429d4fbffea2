// CaptureWriter: captured tensors collected in arrival order and written as captures.safetensors
// with keys `step{S}/{when}/{module}[#k]/{tensor}` (DESIGN.md, "Files and formats").
#include "hookrt/io.h"

namespace hookrt::io {
namespace {

// The key itself the first time, then `key#2`, `key#3`...; skips any suffixed name already taken,
// so every stored key is unique even when callers pass suffixed keys themselves.
std::string claim_unique_key(std::map<std::string, int>& key_counts, const std::string& key) {
  int& uses = key_counts[key];
  if (++uses == 1) return key;
  for (;;) {
    const std::string candidate = key + "#" + std::to_string(uses);
    if (!key_counts.contains(candidate)) {
      key_counts[candidate] = 1;
      return candidate;
    }
    ++uses;
  }
}

}  // namespace

void CaptureWriter::add(const ProbeRecord& record) {
  for (const ProbeResult& result : record.results)
    if (const auto* capture = std::get_if<CaptureResult>(&result))
      add(record.capture_key(), capture->tensor);
}

void CaptureWriter::add(const std::string& key, const Tensor& host_tensor) {
  if (!host_tensor.defined()) throw Error("CaptureWriter: capture '" + key + "' holds no tensor");
  if (host_tensor.device() != Device::CPU)
    throw Error("CaptureWriter: capture '" + key + "' is on " + device_name(host_tensor.device()) +
                "; captures must be host copies");
  tensors_.emplace_back(claim_unique_key(key_counts_, key), host_tensor);
}

void CaptureWriter::write() const { write_safetensors(path_, tensors_, {{"format", "pt"}}); }

}  // namespace hookrt::io
