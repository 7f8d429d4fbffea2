#include "cli/figures_file.h"

#include <filesystem>
#include <fstream>
#include <system_error>

#include "hookrt/error.h"
#include "io/file_bytes.h"

namespace hookrt::cli {

namespace fs = std::filesystem;

namespace {

// A symlink's target (made absolute, and followed as far as it exists), else the path itself.
std::string resolved(const std::string& path) {
  std::error_code error;
  if (!fs::is_symlink(fs::symlink_status(path, error))) return path;
  const fs::path target = fs::weakly_canonical(path, error);
  return error ? path : target.string();
}

// /dev/stdout, /dev/fd/N, /proc/self/fd/N: a stream the caller opened, whatever it leads to (a
// file behind /dev/stdout is the caller's, written where the stream stands, not replaced).
bool names_a_stream(const std::string& path) {
  return path.starts_with("/dev/std") || path.starts_with("/dev/fd/") || path.starts_with("/proc/");
}

// A regular file, or a path where nothing is yet: a file that can be replaced through a rename.
bool takes_rewrites(const std::string& path) {
  if (names_a_stream(path)) return false;
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  return !fs::exists(status) || fs::is_regular_file(status);
}

}  // namespace

FiguresFile::FiguresFile(std::string path, std::string option)
    : path_(names_a_stream(path) ? path : resolved(path)), option_(std::move(option)),
      rewritable_(takes_rewrites(path_)) {}

void FiguresFile::start(const nlohmann::ordered_json& figures) const {
  try {
    if (rewritable_) {
      write(figures);
      return;
    }
    std::ofstream out(path_, std::ios::app);
    if (!out) throw Error("cannot write '" + path_ + "'");
  } catch (const Error& e) {
    throw_bad_input(option_ + ": " + e.what());
  }
}

void FiguresFile::update(const nlohmann::ordered_json& figures) const {
  if (rewritable_) write(figures);
}

void FiguresFile::finish(const nlohmann::ordered_json& figures) const { write(figures); }

void FiguresFile::write(const nlohmann::ordered_json& figures) const {
  const std::string text = figures.dump(2) + "\n";
  if (rewritable_) {
    io::write_file_atomically(path_, {{text.data(), text.size()}});
    return;
  }
  std::ofstream out(path_);
  out << text;
  out.flush();
  if (!out) throw Error(option_ + " " + path_ + ": cannot write the figures");
}

}  // namespace hookrt::cli
