#include "cli/precision_option.h"

namespace hookrt::cli {

void add_precision_option(CLI::App& cmd, std::string& precision) {
  cmd.add_option("--precision", precision,
                 "fp32, bf16 or fp16: convolutions and the linear layer in BF16 or F16 with F32 "
                 "weights, as torch.autocast(dtype=torch.bfloat16 or torch.float16); fp16 training "
                 "scales its loss (--loss-scale)")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
}

}  // namespace hookrt::cli
