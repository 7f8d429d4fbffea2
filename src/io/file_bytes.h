#pragma once
// Whole-file reads and crash-safe whole-file writes for the file formats in src/io. Every failure
// is a hookrt::Error naming the path and the operating system's reason.
#include <cstddef>
#include <string>
#include <vector>

namespace hookrt::io {

// Reads the whole file. A path that cannot be opened (missing, unreadable) or is a directory is
// the user's input, so Error(BadInput); a failing read() is Error(Runtime).
std::string read_file_bytes(const std::string& path);

// A run of bytes to write; chunks avoid concatenating large tensors into one buffer.
struct ByteChunk {
  const void* data = nullptr;
  size_t size = 0;
};

// Writes the chunks to a temporary file beside `path`, syncs it and renames it over `path`, so a
// crash leaves either the old file or the complete new one, never half a file. On failure the
// temporary file is removed and Error(Runtime) names `path` and strerror.
void write_file_atomically(const std::string& path, const std::vector<ByteChunk>& chunks);

}  // namespace hookrt::io
