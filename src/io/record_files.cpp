#include <filesystem>

#include "hookrt/error.h"
#include "hookrt/io.h"

namespace hookrt::io {

RecordFiles::RecordFiles(const std::string& dir) : dir_(dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) throw_bad_input("--out " + dir + ": cannot create the directory: " + error.message());
  stats_ = std::make_unique<JsonlWriter>(file("stats.jsonl"));
  captures_ = std::make_unique<CaptureWriter>(file("captures.safetensors"));
}

void RecordFiles::record(const ProbeRecord& record) {
  std::lock_guard lock(mutex_);
  stats_->write(record);
  captures_->add(record);
}

void RecordFiles::flush() {
  std::lock_guard lock(mutex_);
  stats_->flush();
}

void RecordFiles::finish() {
  std::lock_guard lock(mutex_);
  stats_->flush();
  if (captures_->size() > 0) captures_->write();
}

size_t RecordFiles::captures() const {
  std::lock_guard lock(mutex_);
  return captures_->size();
}

std::string RecordFiles::file(const std::string& name) const { return (std::filesystem::path(dir_) / name).string(); }

}  // namespace hookrt::io
