#include "cpu/blas_library.h"

#include <cblas.h>

#include <string_view>

namespace hookrt::cpu {

namespace {

[[maybe_unused]] std::string trimmed(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  return std::string(text);
}

}  // namespace

std::string blas_description() {
#ifdef OPENBLAS_VERSION
  const char* name = openblas_get_corename();
  const std::string kernels = name != nullptr ? trimmed(name) : "unknown";
  std::string text = trimmed(OPENBLAS_VERSION) + " (cblas), " + kernels + " kernels";
  if (kernels == "Prescott")
    text += ", OpenBLAS's fallback for a CPU it does not know (OPENBLAS_CORETYPE=Haswell or SkylakeX picks faster ones)";
  return text;
#else
  return "cblas";
#endif
}

}  // namespace hookrt::cpu
