#pragma once
// Checking the errors bad input must raise.
#include <functional>
#include <string>

namespace hookrt::testing {

// Runs `action`, requires it to throw Error(BadInput), and returns the message (a failure and ""
// when it throws nothing or another kind).
std::string bad_input_message(const std::function<void()>& action);
// Runs `action`, requires it to throw a hookrt::Error of any kind, and returns the message (a
// failure and "" when it throws none).
std::string error_message(const std::function<void()>& action);

}  // namespace hookrt::testing
