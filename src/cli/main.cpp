// hookrt — command-line entry. Exit status: 0 success, 2 bad usage or input (the message names the
// argument, file or key), 1 any other failure, 3 a training run halted by its explosion policy,
// 130 interrupted.
#include <exception>
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "hookrt/error.h"

int main(int argc, char** argv) {
  CLI::App app{"hookrt: ResNet inference and training with PyTorch-style hooks run as probes"};
  app.require_subcommand(1);
  int status = 0;
  hookrt::cli::add_info_command(app, status);
  hookrt::cli::add_init_weights_command(app, status);
  hookrt::cli::add_run_command(app, status);
  hookrt::cli::add_train_command(app, status);
  hookrt::cli::add_bench_command(app, status);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& help) {
    return app.exit(help);
  } catch (const CLI::CallForAllHelp& help) {
    return app.exit(help);
  } catch (const CLI::ParseError& error) {
    app.exit(error);
    return 2;
  } catch (const hookrt::Error& error) {
    std::cerr << "hookrt: error: " << error.what() << "\n";
    return error.kind() == hookrt::ErrorKind::BadInput ? 2 : 1;
  } catch (const std::exception& error) {
    std::cerr << "hookrt: error: " << error.what() << "\n";
    return 1;
  }
  return status;
}
