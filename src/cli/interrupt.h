#pragma once
// Ctrl-C and SIGTERM for long commands: the handler only sets a flag, which the command polls
// between steps, so a stop always comes after whole steps whose records are written.
namespace hookrt::cli {

void install_interrupt_handlers();  // SIGINT and SIGTERM
bool interrupt_requested();

}  // namespace hookrt::cli
