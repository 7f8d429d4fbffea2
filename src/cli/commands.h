#pragma once
// The hookrt subcommands. Each registers its flags on the CLI11 app and returns the exit status
// through the callback it installs.
#include <CLI/CLI.hpp>

namespace hookrt::cli {

void add_info_command(CLI::App& app, int& status);
void add_init_weights_command(CLI::App& app, int& status);
void add_run_command(CLI::App& app, int& status);
void add_train_command(CLI::App& app, int& status);
void add_bench_command(CLI::App& app, int& status);

}  // namespace hookrt::cli
