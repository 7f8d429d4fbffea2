#pragma once
// Numbers read from text a user or a file wrote (options, __metadata__ strings): the whole text
// must be the number, so "12x" or "" is no number rather than 12 or 0. Callers say what range
// they accept, naming the option or key. And numbers written back into messages.
#include <cstdint>
#include <optional>
#include <string>

namespace hookrt {

std::optional<double> parse_whole_double(const std::string& text);    // "nan" and "inf" parse
std::optional<int64_t> parse_whole_int64(const std::string& text);

// As a stream writes it: "1024", "1e-40" (where std::to_string writes "0.000000").
std::string number_text(double value);

}  // namespace hookrt
