// libFuzzer entry point for the JPEG and PNG decoders: any input must either decode or throw
// hookrt::Error; anything else (a crash, a sanitizer report, another exception) is a bug.
// Build and run: see tests/fuzz/CMakeLists.txt.
#include <cstddef>
#include <cstdint>
#include <string>

#include "data/image_decode.h"
#include "hookrt/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    hookrt::data::decode_image_bytes(bytes, "fuzz.img");
  } catch (const hookrt::Error&) {
    // Rejecting malformed input with a hookrt::Error is the expected outcome.
  }
  return 0;
}
