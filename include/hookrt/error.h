#pragma once
// hookrt::Error — the one exception type the library throws. Its message names what failed: the
// file and offset or key, the module selector, the library call and its error string.
#include <stdexcept>
#include <string>

namespace hookrt {

// What kind of failure an Error is; the CLI maps BadInput to exit status 2 and the rest to 1.
enum class ErrorKind {
  BadInput,   // malformed or inconsistent input from the user: files, flags, selectors, shapes
  Runtime,    // anything else: backend failures, I/O errors, internal invariants
  Halted,     // a probe's halt policy stopped the run (non-finite values found)
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, ErrorKind kind = ErrorKind::Runtime)
      : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

// Throws Error(message) of kind BadInput; for parsers and argument checks.
[[noreturn]] inline void throw_bad_input(const std::string& message) {
  throw Error(message, ErrorKind::BadInput);
}

}  // namespace hookrt

// Internal invariant check: throws hookrt::Error naming the condition and where it failed.
#define HOOKRT_CHECK(cond, message)                                                       \
  do {                                                                                    \
    if (!(cond))                                                                          \
      throw ::hookrt::Error(std::string(message) + " (check `" #cond "` failed at " +     \
                            __FILE__ + ":" + std::to_string(__LINE__) + ")");             \
  } while (0)
