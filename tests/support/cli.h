#pragma once
// Running the built `hookrt` program in tests: its path comes from the test program's
// HOOKRT_CLI_PATH, so hookrt_cli is inline here and compiled into each CLI test program.
#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/run_process.h"

namespace hookrt::testing {

// Only a guard against a hung run: on a loaded 2-core machine a run here takes 1-5 s.
inline constexpr std::chrono::seconds kCliTimeout{120};

#ifdef HOOKRT_CLI_PATH
// `hookrt ARGS...`, waited for.
inline ProcessResult hookrt_cli(std::vector<std::string> args) {
  args.insert(args.begin(), HOOKRT_CLI_PATH);
  return run_process(args, kCliTimeout);
}
#endif

std::string read_text(const std::string& path);  // "" when the file cannot be read
void write_text(const std::string& path, const std::string& text);
bool contains(const std::string& text, const std::string& part);
// Each line of a JSON-lines text parsed; a line that is not JSON fails the test, naming it.
std::vector<nlohmann::ordered_json> parse_jsonl(const std::string& text);

}  // namespace hookrt::testing
