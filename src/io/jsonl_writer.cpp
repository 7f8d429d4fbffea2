// JsonlWriter: stats.jsonl, one JSON object per line. Lines go through stdio's buffer; flush()
// hands them to the operating system, so a run that stops still leaves every record it flushed.
#include <cerrno>
#include <cstring>

#include "hookrt/io.h"

namespace hookrt::io {

JsonlWriter::JsonlWriter(const std::string& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "w");
  if (!file_) throw Error("cannot open '" + path + "' for writing: " + std::strerror(errno));
}

JsonlWriter::~JsonlWriter() {
  // A destructor must not throw; callers who need to know that the data landed call flush().
  if (file_) std::fclose(file_);
}

void JsonlWriter::write(const nlohmann::ordered_json& object) {
  // Invalid UTF-8 in a name becomes U+FFFD rather than losing the record.
  std::string line = object.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  line += '\n';
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size())
    throw Error("cannot write to '" + path_ + "': " + std::strerror(errno));
}

void JsonlWriter::flush() {
  if (std::fflush(file_) != 0) throw Error("cannot flush '" + path_ + "': " + std::strerror(errno));
}

}  // namespace hookrt::io
