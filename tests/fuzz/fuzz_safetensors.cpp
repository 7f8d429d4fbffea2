// libFuzzer entry point for the safetensors parser: any input must either parse or throw
// hookrt::Error; anything else (a crash, a sanitizer report, another exception) is a bug.
// Build and run: see tests/fuzz/CMakeLists.txt.
#include <cstddef>
#include <cstdint>
#include <string>

#include "hookrt/io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    hookrt::io::parse_safetensors(bytes, "fuzz.safetensors");
  } catch (const hookrt::Error&) {
    // Rejecting malformed input with a hookrt::Error is the expected outcome.
  }
  return 0;
}
