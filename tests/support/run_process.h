#pragma once
// ChildProcess / run_process — start a program (posix_spawn), capture its stdout and stderr, and
// wait for it with a timeout; for end-to-end tests of the `hookrt` command line.
#include <chrono>
#include <string>
#include <vector>

#include <sys/types.h>

namespace hookrt::testing {

struct ProcessResult {
  int exit_code = -1;      // the exit status when the process exited normally, else -1
  int signal = 0;          // the signal that ended it, 0 when it exited normally
  bool timed_out = false;  // it outlived the timeout and was killed with SIGKILL
  double seconds = 0;      // wall time from the start to the end
  std::string out, err;    // everything it wrote to stdout and stderr

  // "exit 2 after 0.8 s; stderr: ..." — for assertion messages.
  std::string describe() const;
};

// A running child. Its stdout and stderr go to anonymous temporary files (not pipes), so a child
// that writes a lot never blocks on a reader that is busy elsewhere. SIGINT and SIGTERM start at
// their default disposition in the child even where the test runner ignores them.
class ChildProcess {
 public:
  // Starts argv[0] (a path) with argv; throws std::runtime_error when it cannot be started.
  explicit ChildProcess(const std::vector<std::string>& argv);
  ~ChildProcess();  // kills and reaps a child that is still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  void send_signal(int signal_number) const;
  // Waits for the child to end; past `timeout` it is killed and the result says timed_out.
  ProcessResult wait(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int out_fd_ = -1, err_fd_ = -1;
  std::chrono::steady_clock::time_point started_;
};

// Runs argv to completion (or the timeout) and returns what it did.
ProcessResult run_process(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(120));

}  // namespace hookrt::testing
