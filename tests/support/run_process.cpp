#include "support/run_process.h"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace hookrt::testing {

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("run_process: " + what + ": " + std::strerror(errno));
}

// An unlinked temporary file: the child writes it, we read it back, nothing is left on disk.
int anonymous_file() {
  std::string name = "/tmp/hookrt-child-output-XXXXXX";
  const int fd = ::mkstemp(name.data());
  if (fd < 0) fail("mkstemp " + name);
  ::unlink(name.c_str());
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);  // only the dup2'ed copies reach the child
  return fd;
}

std::string read_all(int fd) {
  std::string text;
  if (::lseek(fd, 0, SEEK_SET) < 0) fail("lseek");
  char buffer[65536];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("read");
    if (n == 0) return text;
    text.append(buffer, static_cast<size_t>(n));
  }
}

// posix_spawn's attributes and file actions, destroyed on every way out.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;

  SpawnSetup(int out_fd, int err_fd) {
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err_fd, STDERR_FILENO);
    posix_spawnattr_init(&attributes);
    // A runner started in the background may ignore SIGINT, and ignored signals survive exec:
    // the child starts with the defaults and nothing blocked, as it would from a terminal.
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
  }
};

}  // namespace

std::string ProcessResult::describe() const {
  std::string text;
  if (timed_out)
    text = "timed out and was killed";
  else if (signal != 0)
    text = "killed by signal " + std::to_string(signal);
  else
    text = "exit " + std::to_string(exit_code);
  text += " after " + std::to_string(seconds) + " s";
  return text + "\n--- stderr ---\n" + err + "\n--- stdout ---\n" + out.substr(0, 4000);
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv) {
  if (argv.empty()) throw std::runtime_error("run_process: no program given");
  out_fd_ = anonymous_file();
  err_fd_ = anonymous_file();
  std::vector<char*> pointers;
  for (const std::string& arg : argv) pointers.push_back(const_cast<char*>(arg.c_str()));
  pointers.push_back(nullptr);
  SpawnSetup setup(out_fd_, err_fd_);
  started_ = std::chrono::steady_clock::now();
  const int error = ::posix_spawn(&pid_, argv[0].c_str(), &setup.actions, &setup.attributes,
                                  pointers.data(), environ);
  if (error != 0) {
    errno = error;
    fail("posix_spawn " + argv[0]);
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
}

void ChildProcess::send_signal(int signal_number) const {
  if (reaped_) throw std::runtime_error("run_process: signal to a child that has already ended");
  if (::kill(pid_, signal_number) != 0) fail("kill " + std::to_string(pid_));
}

ProcessResult ChildProcess::wait(std::chrono::milliseconds timeout) {
  if (reaped_) throw std::runtime_error("run_process: wait() called twice");
  ProcessResult result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (true) {
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done < 0 && errno == EINTR) continue;
    if (done < 0) fail("waitpid");
    if (done == pid_) break;
    if (std::chrono::steady_clock::now() > deadline) {
      result.timed_out = true;
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  reaped_ = true;
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  result.out = read_all(out_fd_);
  result.err = read_all(err_fd_);
  return result;
}

ProcessResult run_process(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  ChildProcess child(argv);
  return child.wait(timeout);
}

}  // namespace hookrt::testing
