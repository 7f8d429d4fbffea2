#pragma once
// TempDir — a fresh directory under the system temp folder, removed with its contents on scope exit.
#include <filesystem>
#include <string>

namespace hookrt::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace hookrt::testing
