// docker/Dockerfile, checked without a Docker engine: it parses (known instructions, continued
// lines), builds on NVIDIA's CUDA + cuDNN development image, copies only what exists, installs a
// package for every library CMakeLists.txt finds, passes only options CMakeLists.txt defines,
// and runs a script that exists.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include "support/cli.h"

namespace hookrt::testing {
namespace {

const std::filesystem::path kRoot = HOOKRT_SOURCE_DIR;

struct Instruction {
  std::string keyword, arguments;
  int line = 0;
};

// Joins continued lines and drops comments, as Docker's parser does.
std::vector<Instruction> parse_dockerfile(const std::string& text) {
  std::vector<Instruction> instructions;
  std::istringstream lines(text);
  std::string line, pending;
  int number = 0, first_line = 0;
  while (std::getline(lines, line)) {
    ++number;
    const size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    if (pending.empty()) first_line = number;
    const bool continued = !line.empty() && line.back() == '\\';
    pending += (continued ? line.substr(0, line.size() - 1) : line) + " ";
    if (continued) continue;
    std::istringstream words(pending);
    Instruction instruction;
    words >> instruction.keyword;
    std::getline(words, instruction.arguments);
    instruction.line = first_line;
    instructions.push_back(instruction);
    pending.clear();
  }
  EXPECT_TRUE(pending.empty()) << "the Dockerfile ends inside a continued line";
  return instructions;
}

class Dockerfile : public ::testing::Test {
 protected:
  void SetUp() override {
    text_ = read_text((kRoot / "docker" / "Dockerfile").string());
    ASSERT_FALSE(text_.empty()) << "docker/Dockerfile is missing";
    instructions_ = parse_dockerfile(text_);
  }
  std::vector<Instruction> all(const std::string& keyword) const {
    std::vector<Instruction> found;
    for (const Instruction& i : instructions_)
      if (i.keyword == keyword) found.push_back(i);
    return found;
  }
  std::string text_;
  std::vector<Instruction> instructions_;
};

TEST_F(Dockerfile, UsesOnlyKnownInstructionsAndStartsFromNvidiasCudnnDevelImage) {
  const std::set<std::string> known = {"FROM", "ARG", "ENV", "RUN", "WORKDIR", "COPY", "CMD", "ENTRYPOINT", "LABEL"};
  for (const Instruction& i : instructions_) EXPECT_TRUE(known.contains(i.keyword)) << "line " << i.line << ": " << i.keyword;
  ASSERT_FALSE(instructions_.empty());
  const Instruction& from = instructions_.front().keyword == "ARG" ? instructions_.at(1) : instructions_.front();
  EXPECT_EQ(from.keyword, "FROM");
  EXPECT_TRUE(std::regex_search(from.arguments, std::regex(R"(nvidia/cuda:\S*cudnn\S*-devel-ubuntu2[4-9])")))
      << from.arguments;
}

TEST_F(Dockerfile, CopiesPathsThatExistAndEverythingTheBuildReads) {
  std::set<std::string> copied;
  for (const Instruction& i : all("COPY")) {
    std::istringstream words(i.arguments);
    std::vector<std::string> parts{std::istream_iterator<std::string>(words), {}};
    ASSERT_GE(parts.size(), 2u) << "line " << i.line;
    for (size_t k = 0; k + 1 < parts.size(); ++k) {
      EXPECT_TRUE(std::filesystem::exists(kRoot / parts[k])) << "line " << i.line << ": " << parts[k];
      copied.insert(parts[k]);
    }
  }
  for (const char* needed : {"CMakeLists.txt", "cmake", "include", "src", "cuda", "tests", "benchmarks", "scripts"})
    EXPECT_TRUE(copied.contains(needed)) << needed << " is read by the build or the demo but not copied";
}

TEST_F(Dockerfile, InstallsAPackageForEveryLibraryTheBuildFinds) {
  const std::string cmake = read_text((kRoot / "CMakeLists.txt").string());
  const std::map<std::string, std::string> package_for = {
      {"nlohmann_json", "nlohmann-json3-dev"}, {"CLI11", "libcli11-dev"}, {"BLAS", "libopenblas-dev"},
      {"JPEG", "libjpeg-turbo8-dev"},          {"PNG", "libpng-dev"},     {"yaml-cpp", "libyaml-cpp-dev"},
      {"GTest", "libgtest-dev"},               {"benchmark", "libbenchmark-dev"}};
  const std::regex find_package(R"(find_package\(([A-Za-z0-9_-]+))");
  for (auto it = std::sregex_iterator(cmake.begin(), cmake.end(), find_package); it != std::sregex_iterator(); ++it) {
    const std::string name = (*it)[1];
    if (name == "Threads" || name == "OpenMP") continue;  // the compiler's own
    ASSERT_TRUE(package_for.contains(name)) << "CMakeLists.txt finds " << name << ": add its package to the Dockerfile and here";
    EXPECT_TRUE(contains(text_, package_for.at(name))) << name;
  }
}

TEST_F(Dockerfile, ConfiguresWithOptionsCMakeListsDefinesAndRunsAnExistingScript) {
  const std::string cmake = read_text((kRoot / "CMakeLists.txt").string());
  bool configured = false;
  for (const Instruction& i : all("RUN")) {
    const std::regex option(R"(-D(HOOKRT_\w+)=)");
    for (auto it = std::sregex_iterator(i.arguments.begin(), i.arguments.end(), option); it != std::sregex_iterator(); ++it) {
      EXPECT_TRUE(contains(cmake, (*it)[1].str())) << (*it)[1] << " is not an option of CMakeLists.txt";
      configured = true;
    }
  }
  EXPECT_TRUE(configured);
  EXPECT_TRUE(contains(text_, "-DHOOKRT_CUDA=ON"));
  const auto cmd = all("CMD");
  ASSERT_EQ(cmd.size(), 1u);
  const std::smatch script = [&] {
    std::smatch m;
    std::regex_search(cmd[0].arguments, m, std::regex(R"re("([^"]+)")re"));
    return m;
  }();
  ASSERT_FALSE(script.empty()) << cmd[0].arguments;
  const auto path = kRoot / script[1].str();
  EXPECT_TRUE(std::filesystem::exists(path)) << path;
  EXPECT_NE(std::filesystem::status(path).permissions() & std::filesystem::perms::owner_exec, std::filesystem::perms::none);
}

}  // namespace
}  // namespace hookrt::testing
