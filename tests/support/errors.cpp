#include "support/errors.h"

#include <gtest/gtest.h>

#include "hookrt/error.h"

namespace hookrt::testing {

std::string bad_input_message(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    EXPECT_EQ(static_cast<int>(e.kind()), static_cast<int>(ErrorKind::BadInput)) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected hookrt::Error(BadInput), nothing was thrown";
  return "";
}

std::string error_message(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a hookrt::Error";
  return "";
}

}  // namespace hookrt::testing
