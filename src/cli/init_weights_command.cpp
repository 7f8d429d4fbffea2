// `hookrt init-weights`: a torchvision-initialised resnet18 state_dict as safetensors.
#include <iostream>

#include "cli/commands.h"
#include "cli/number_checks.h"
#include "hookrt/io.h"
#include "hookrt/model.h"

namespace hookrt::cli {

void add_init_weights_command(CLI::App& app, int& status) {
  struct Args {
    std::string out;
    int64_t num_classes = 1000;
    uint64_t seed = 0;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("init-weights", "Write torchvision-initialised resnet18 weights");
  cmd->add_option("--out", args->out, "Output .safetensors file")->required();
  cmd->add_option("--num-classes", args->num_classes, "Classes of the final layer")->check(whole_at_least(1));
  cmd->add_option("--seed", args->seed, "Random seed");
  cmd->callback([args, &status] {
    const Model model = Model::resnet18(args->num_classes, args->seed);
    io::write_safetensors(args->out, model.state_dict(), {{"format", "pt"}, {"arch", "resnet18"}});
    std::cout << "wrote " << args->out << " (resnet18, " << args->num_classes << " classes, seed " << args->seed
              << ", " << model.state_keys().size() << " tensors)\n";
    status = 0;
  });
}

}  // namespace hookrt::cli
