#include "io/file_bytes.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "hookrt/error.h"

namespace hookrt::io {
namespace {

std::string os_reason(int error_number) { return std::strerror(error_number); }

// Closes a file descriptor when it goes out of scope (errors on close are reported by callers
// that care, through close_checked).
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }
  // Closes now and returns 0 or the errno of close().
  int close_checked() {
    const int result = ::close(fd_);
    fd_ = -1;
    return result == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

void read_all(int fd, const std::string& path, std::string& bytes) {
  constexpr size_t kMinimumRead = 1 << 20;
  size_t used = 0;
  for (;;) {
    // Grow into the reserved capacity first, so a file of the expected size needs no reallocation.
    if (bytes.size() == used) bytes.resize(std::max(bytes.capacity(), used + kMinimumRead));
    const ssize_t got = ::read(fd, bytes.data() + used, bytes.size() - used);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw Error("cannot read '" + path + "': " + os_reason(errno));
    }
    if (got == 0) break;
    used += static_cast<size_t>(got);
  }
  bytes.resize(used);
}

void write_all(int fd, const ByteChunk& chunk, const std::string& what) {
  const char* data = static_cast<const char*>(chunk.data);
  size_t left = chunk.size;
  while (left > 0) {
    const ssize_t wrote = ::write(fd, data, left);
    if (wrote < 0) {
      if (errno == EINTR) continue;
      throw Error(what + ": " + os_reason(errno));
    }
    data += wrote;
    left -= static_cast<size_t>(wrote);
  }
}

// A name beside `path` (same directory, so rename() stays on one filesystem) that no other
// writer in this or another process uses at the same time.
std::string temporary_name(const std::string& path) {
  static std::atomic<unsigned long> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

// Opens a fresh temporary file with the default permissions (0666 less the umask), as fopen would.
int create_temporary(const std::string& path, std::string& temporary) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    temporary = temporary_name(path);
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return fd;
    if (errno != EEXIST)
      throw Error("cannot write '" + path + "': " + os_reason(errno) + " (creating '" + temporary +
                  "')");
  }
  throw Error("cannot write '" + path + "': no free temporary file name beside it");
}

}  // namespace

std::string read_file_bytes(const std::string& path) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw_bad_input("cannot open '" + path + "': " + os_reason(errno));
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) throw Error("cannot stat '" + path + "': " + os_reason(errno));
  if (S_ISDIR(info.st_mode)) throw_bad_input("cannot read '" + path + "': it is a directory");
  std::string bytes;
  // The size is only a hint: pipes and growing files are read to their end.
  if (S_ISREG(info.st_mode)) bytes.reserve(static_cast<size_t>(info.st_size) + 1);
  read_all(fd.get(), path, bytes);
  return bytes;
}

void write_file_atomically(const std::string& path, const std::vector<ByteChunk>& chunks) {
  std::string temporary;
  FileDescriptor fd(create_temporary(path, temporary));
  const std::string what = "cannot write '" + path + "' (temporary '" + temporary + "')";
  try {
    for (const ByteChunk& chunk : chunks) write_all(fd.get(), chunk, what);
    if (::fsync(fd.get()) != 0) throw Error(what + ": fsync: " + os_reason(errno));
    if (const int error = fd.close_checked()) throw Error(what + ": close: " + os_reason(error));
    if (::rename(temporary.c_str(), path.c_str()) != 0)
      throw Error("cannot write '" + path + "': rename from '" + temporary +
                  "': " + os_reason(errno));
  } catch (...) {
    ::unlink(temporary.c_str());
    throw;
  }
}

}  // namespace hookrt::io
