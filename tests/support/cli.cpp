#include "support/cli.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace hookrt::testing {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::vector<nlohmann::ordered_json> parse_jsonl(const std::string& text) {
  std::vector<nlohmann::ordered_json> objects;
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    try {
      objects.push_back(nlohmann::ordered_json::parse(line));
    } catch (const std::exception& error) {
      ADD_FAILURE() << "stats.jsonl line " << number << " is not JSON (" << error.what() << "): " << line;
    }
  }
  return objects;
}

}  // namespace hookrt::testing
