#include "cli/precision_option.h"

namespace hookrt::cli {

void add_precision_option(CLI::App& cmd, std::string& precision) {
  cmd.add_option("--precision", precision,
                 "fp32, or bf16: convolutions and the linear layer in BF16 with F32 weights, as "
                 "torch.autocast(dtype=torch.bfloat16)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
}

}  // namespace hookrt::cli
