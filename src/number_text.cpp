#include "number_text.h"

#include <sstream>
#include <stdexcept>

namespace hookrt {

std::optional<double> parse_whole_double(const std::string& text) {
  size_t used = 0;
  try {
    const double value = std::stod(text, &used);
    if (used == text.size()) return value;
  } catch (const std::logic_error&) {  // invalid_argument or out_of_range
  }
  return std::nullopt;
}

std::optional<int64_t> parse_whole_int64(const std::string& text) {
  size_t used = 0;
  try {
    const long long value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (const std::logic_error&) {
  }
  return std::nullopt;
}

std::string number_text(double value) {
  std::ostringstream text;
  text << value;
  return text.str();
}

}  // namespace hookrt
