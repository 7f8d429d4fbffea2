#include "cli/memory_format_option.h"

namespace hookrt::cli {

void add_memory_format_option(CLI::App& cmd, std::string& format) {
  cmd.add_option("--memory-format", format,
                 "auto (channels_last for bf16 and fp16 on a GPU, else contiguous), contiguous (NCHW), or "
                 "channels_last (NHWC, as torch.channels_last): the layout of activations inside a step")
      ->check(CLI::IsMember({"auto", "contiguous", "channels_last"}));
}

std::optional<MemoryFormat> memory_format_choice(const std::string& format) {
  if (format == "auto") return std::nullopt;
  return parse_memory_format(format);
}

}  // namespace hookrt::cli
