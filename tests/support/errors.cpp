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

}  // namespace hookrt::testing
